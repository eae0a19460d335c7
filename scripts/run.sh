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
export HTTP_PORT

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
cat <<MSG

  fbconnect is running with the sandbox FreshBooks provider.

    Open  http://$PUBLIC_HOST:$HTTP_PORT/connect

  Sign in at the sandbox with any email address.  Logs follow; Ctrl-C stops everything.

MSG
tail -n 0 -F "$RUN/logs/fbconnect.log" "$RUN/logs/fbsandbox.log" "$RUN/logs/nginx-error.log" &
tail_pid=$!
wait "$tail_pid"
