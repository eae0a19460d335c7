#!/bin/sh
# `make run`: the whole stack on this machine, in ./run, in the foreground.
# Ctrl-C stops everything.  Settings as in scripts/stack.sh; a .env file in the project
# folder is read first (FBCONNECT_* variables).
set -eu
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
if [ -f .env ]; then
    set -a
    # shellcheck disable=SC1091
    . ./.env
    set +a
fi
RUN=${RUN_DIR:-$ROOT/run}
export REDIS_PERSIST=${REDIS_PERSIST:-1}
export PUBLIC_HOST=${PUBLIC_HOST:-localhost}
HTTP_PORT=${HTTP_PORT:-8080}
HTTPS_PORT=${HTTPS_PORT:-8443}
export HTTP_PORT HTTPS_PORT

# Real FreshBooks credentials (environment or .env) replace the sandbox.
if [ -n "${FBCONNECT_CLIENT_ID:-}" ]; then
    if [ -z "${FBCONNECT_CLIENT_SECRET:-}${FBCONNECT_CLIENT_SECRET_FILE:-}" ]; then
        echo "make run: FBCONNECT_CLIENT_ID is set but FBCONNECT_CLIENT_SECRET is not (put both in .env)" >&2
        exit 1
    fi
    export REAL_FRESHBOOKS=1
    # FreshBooks accepts only HTTPS redirect URIs: the local site is also served over TLS.
    export SANDBOX_PORT=${SANDBOX_PORT:-18443}
    export FBCONNECT_REDIRECT_URI=${FBCONNECT_REDIRECT_URI:-https://$PUBLIC_HOST:$HTTPS_PORT/callback}
fi

stop() {
    trap - INT TERM EXIT
    echo
    echo "Stopping…"
    sh "$ROOT/scripts/stack.sh" stop "$RUN"
    [ -n "${tail_pid:-}" ] && kill "$tail_pid" 2>/dev/null
    echo "Stopped. Data is kept in $RUN (delete the folder to start afresh)."
    exit 0
}
trap stop INT TERM
trap 'sh "$ROOT/scripts/stack.sh" stop "$RUN"' EXIT

sh "$ROOT/scripts/stack.sh" stop "$RUN" >/dev/null 2>&1 || true
sh "$ROOT/scripts/stack.sh" start "$RUN"
if [ "${REAL_FRESHBOOKS:-0}" = 1 ]; then
    cat <<MSG

  fbconnect is running against the real FreshBooks (client id $FBCONNECT_CLIENT_ID).

    Register this redirect URI in your FreshBooks app's settings:
        $FBCONNECT_REDIRECT_URI

    Then open  https://$PUBLIC_HOST:$HTTPS_PORT/connect
    (your browser warns once about the local certificate, made for this machine in
    $RUN/ca; accept it to continue).  Logs follow; Ctrl-C stops everything.

MSG
else
    cat <<MSG

  fbconnect is running with the sandbox FreshBooks provider.

    Open  http://$PUBLIC_HOST:$HTTP_PORT/connect

  Sign in at the sandbox with any email address.  Logs follow; Ctrl-C stops everything.

MSG
fi
if [ -n "${FBCONNECT_EVENTS_URL:-}" ]; then
    echo "  Connection events go to $FBCONNECT_EVENTS_URL (signed with FBCONNECT_EVENTS_SECRET);"
    echo "  \`$ROOT/build/fbconnect events\` lists them (with the same .env)."
else
    echo "  Connection events are off: set FBCONNECT_EVENTS_URL (your back end's webhook URL)"
    echo "  and FBCONNECT_EVENTS_SECRET (\`build/fbconnect keygen --events\`) in .env to get them."
fi
echo
logs="$RUN/logs/fbconnect.log $RUN/logs/nginx-error.log"
[ "${REAL_FRESHBOOKS:-0}" = 1 ] || logs="$logs $RUN/logs/fbsandbox.log"
# shellcheck disable=SC2086
touch $logs
# shellcheck disable=SC2086
tail -n 0 -F $logs &
tail_pid=$!
wait "$tail_pid"
