#!/bin/sh
# Installs the Debian packages fbconnect needs to build, test and run, when missing.
# Usage: scripts/install-deps.sh [build|test|run|bench]...   (default: test)
set -eu

want="pkg-config make gcc libc6-dev libcurl4-openssl-dev libssl-dev libjansson-dev libhiredis-dev libsodium-dev"
for kind in "${@:-test}"; do
    case "$kind" in
    build) ;;
    test) want="$want libcmocka-dev redis-server redis-tools nginx openssl python3 ca-certificates chromium systemd valgrind clang libclang-rt-14-dev redis-sentinel"
          command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || want="$want nodejs npm" ;;
    run) want="$want redis-server redis-tools nginx openssl ca-certificates" ;;
    bench) want="$want libfcgi-dev redis-server redis-tools nginx openssl python3 wrk ca-certificates" ;;  # libfcgi: bench/baseline only
    *) echo "install-deps: unknown kind '$kind'" >&2; exit 2 ;;
    esac
done

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

echo "install-deps: installing:$missing"
if [ "$(id -u)" -eq 0 ]; then
    sudo=""
elif command -v sudo >/dev/null 2>&1; then
    sudo="sudo"
else
    echo "install-deps: need root (or sudo) to install:$missing" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep package scripts from starting system-wide nginx/redis services: we start our own.
policy=/usr/sbin/policy-rc.d
created_policy=""
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null && $sudo chmod 755 "$policy" && created_policy=1
fi
$sudo apt-get update -qq
# shellcheck disable=SC2086
$sudo apt-get install -y -qq --no-install-recommends $missing >/dev/null
[ -n "$created_policy" ] && $sudo rm -f "$policy"
exit 0
