#!/bin/sh
# Starts and stops the local stack — Redis, the sandbox FreshBooks, fbconnect and nginx —
# in one directory, on loopback and unprivileged ports.  Used by `make run`, the tests and
# the benchmark.
#
#   stack.sh start DIR          everything (makes DIR/ca, secrets, configs on first use)
#   stack.sh stop DIR           everything
#   stack.sh start-redis DIR | stop-redis DIR | kill-redis DIR
#   stack.sh start-fbconnect DIR | stop-fbconnect DIR
#   stack.sh env DIR            print the fbconnect environment in use
#
# Settings (environment): BUILD (binaries, default build), HTTP_PORT (8080), INTERNAL_PORT
# (8082), SANDBOX_PORT (8443, HTTPS), SANDBOX_HTTP_PORT (8081), REDIS_PORT (6390),
# PUBLIC_HOST (localhost: the host your browser uses), REDIS_PERSIST (1: keep Redis data in
# DIR between runs), FBCONNECT_INSTANCES (fbconnect processes behind one upstream, 1),
# REAL_FRESHBOOKS (1: no sandbox; fbconnect talks to FreshBooks with your FBCONNECT_CLIENT_ID
# and secret, and the site is also served over TLS on HTTPS_PORT, 8443),
# FBCONNECT_WRAPPER (e.g. valgrind), and any FBCONNECT_* variable, which overrides the
# generated one.
set -eu

cmd=${1:?usage: stack.sh start|stop|... DIR}
DIR=${2:?usage: stack.sh $cmd DIR}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
BUILD=${BUILD:-$ROOT/build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
HTTP_PORT=${HTTP_PORT:-8080}
INTERNAL_PORT=${INTERNAL_PORT:-8082}
SANDBOX_PORT=${SANDBOX_PORT:-8443}
SANDBOX_HTTP_PORT=${SANDBOX_HTTP_PORT:-8081}
REDIS_PORT=${REDIS_PORT:-6390}
PUBLIC_HOST=${PUBLIC_HOST:-localhost}
REDIS_PERSIST=${REDIS_PERSIST:-0}
INSTANCES=${FBCONNECT_INSTANCES:-1}
REAL=${REAL_FRESHBOOKS:-0}
HTTPS_PORT=${HTTPS_PORT:-8443}
SANDBOX_CLIENT_ID=fbconnect-sandbox-client

die() { echo "stack: $*" >&2; exit 1; }

# port_free VARIABLE PORT: dies, naming the port and the variable that moves it, when
# another program listens there (nothing of ours is started on a busy port).
port_free() {
    command -v python3 >/dev/null 2>&1 || return 0
    python3 - "$2" <<'PY' && return 0
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)
PY
    die "port $2 is already in use by another program; choose another with $1 (e.g. make run $1=$(($2 + 1000)))"
}

# wait_for DESCRIPTION COMMAND...: retries for up to 10 s.
wait_for() {
    what=$1; shift
    i=0
    while ! "$@" >/dev/null 2>&1; do
        i=$((i + 1))
        [ $i -gt 200 ] && die "$what did not come up (see $DIR/logs)"
        sleep 0.05
    done
}

# A process is alive unless gone or a zombie (an exited child of ours that init has not
# reaped yet still answers kill -0).
running() { kill -0 "$1" 2>/dev/null && [ "$(sed 's/.*) //' "/proc/$1/stat" 2>/dev/null | cut -c1)" != Z ]; }
pid_alive() { [ -s "$1" ] && running "$(cat "$1")"; }

stop_pid() { # stop_pid PIDFILE [SIGNAL]
    [ -s "$1" ] || return 0
    pid=$(cat "$1")
    kill "-${2:-TERM}" "$pid" 2>/dev/null || true
    i=0
    while running "$pid"; do
        i=$((i + 1))
        if [ $i -gt 600 ]; then kill -KILL "$pid" 2>/dev/null || true; break; fi
        sleep 0.05
    done
    rm -f "$1"
}

prepare() {
    mkdir -p "$DIR/logs" "$DIR/secrets" "$DIR/redis" "$DIR/nginx"
    chmod 700 "$DIR/secrets"
    sh "$ROOT/scripts/sandbox-ca.sh" "$DIR/ca"
    [ -s "$DIR/secrets/secret_key" ] || (umask 077 && "$BUILD/fbconnect" keygen > "$DIR/secrets/secret_key")
    [ -s "$DIR/secrets/client_secret" ] ||
        (umask 077 && head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$DIR/secrets/client_secret")
}

# The fbconnect environment: generated defaults, overridden by FBCONNECT_* already set.
fbconnect_env() {
    if [ "$REAL" = 1 ]; then
        cat <<ENV
FBCONNECT_THREADS=16
FBCONNECT_SECRET_KEY_FILE=$DIR/secrets/secret_key
FBCONNECT_REDIRECT_URI=https://$PUBLIC_HOST:$HTTPS_PORT/callback
FBCONNECT_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
FBCONNECT_TEMPLATE_DIR=$ROOT/templates
ENV
        return
    fi
    cat <<ENV
FBCONNECT_THREADS=16
FBCONNECT_CLIENT_ID=$SANDBOX_CLIENT_ID
FBCONNECT_CLIENT_SECRET_FILE=$DIR/secrets/client_secret
FBCONNECT_SECRET_KEY_FILE=$DIR/secrets/secret_key
FBCONNECT_REDIRECT_URI=http://$PUBLIC_HOST:$HTTP_PORT/callback
FBCONNECT_AUTHORIZE_URL=http://$PUBLIC_HOST:$SANDBOX_HTTP_PORT/oauth/authorize
FBCONNECT_TOKEN_URL=https://127.0.0.1:$SANDBOX_PORT/auth/oauth/token
FBCONNECT_REVOKE_URL=https://127.0.0.1:$SANDBOX_PORT/auth/oauth/revoke
FBCONNECT_API_URL=https://127.0.0.1:$SANDBOX_PORT
FBCONNECT_CA_FILE=$DIR/ca/ca.pem
FBCONNECT_REDIS_URL=redis://127.0.0.1:$REDIS_PORT
FBCONNECT_TEMPLATE_DIR=$ROOT/templates
ENV
}

# instance N's files: fbconnect.sock/.pid/.log for 1, fbconnectN.* for the others
inst() { [ "$1" = 1 ] && echo fbconnect || echo "fbconnect$1"; }

start_fbconnect() {
    fbconnect_env > "$DIR/fbconnect.env.generated"
    # Export generated values only where the caller did not set the variable.
    while IFS='=' read -r key value; do
        eval "[ -n \"\${$key+x}\" ]" || export "$key=$value"
    done < "$DIR/fbconnect.env.generated"
    env | grep '^FBCONNECT_' | grep -v -e '_WRAPPER=' -e '_INSTANCES=' | sort > "$DIR/fbconnect.env"
    n=1
    while [ $n -le "$INSTANCES" ]; do
        name=$(inst $n)
        if ! pid_alive "$DIR/$name.pid"; then
            rm -f "$DIR/$name.sock"
            # shellcheck disable=SC2086
            FBCONNECT_LISTEN=unix:$DIR/$name.sock nohup env -u FBCONNECT_WRAPPER -u FBCONNECT_INSTANCES \
                ${FBCONNECT_WRAPPER:-} "$BUILD/fbconnect" \
                >> "$DIR/logs/$name.log" 2>&1 &
            echo $! > "$DIR/$name.pid"
        fi
        n=$((n + 1))
    done
    n=1
    while [ $n -le "$INSTANCES" ]; do
        wait_for "fbconnect" test -S "$DIR/$(inst $n).sock"
        n=$((n + 1))
    done
}

stop_fbconnect() {
    for pidfile in "$DIR"/fbconnect.pid "$DIR"/fbconnect[0-9]*.pid; do
        [ -e "$pidfile" ] && stop_pid "$pidfile"
    done
    return 0
}

start_sandbox() {
    pid_alive "$DIR/fbsandbox.pid" && return 0
    rm -f "$DIR/fbsandbox.sock"
    FBSANDBOX_LISTEN=unix:$DIR/fbsandbox.sock \
    FBSANDBOX_CLIENT_ID=$SANDBOX_CLIENT_ID \
    FBSANDBOX_CLIENT_SECRET=$(cat "$DIR/secrets/client_secret") \
    FBSANDBOX_REDIRECT_URIS=${FBSANDBOX_REDIRECT_URIS:-http://$PUBLIC_HOST:$HTTP_PORT/callback} \
        nohup "$BUILD/fbsandbox" >> "$DIR/logs/fbsandbox.log" 2>&1 &
    echo $! > "$DIR/fbsandbox.pid"
    wait_for "fbsandbox" test -S "$DIR/fbsandbox.sock"
}

start_redis() {
    pid_alive "$DIR/redis.pid" && return 0
    rm -f "$DIR/redis.pid"
    port_free REDIS_PORT "$REDIS_PORT"
    if [ "$REDIS_PERSIST" = 1 ]; then persist="appendonly yes
appendfsync everysec"; else persist="appendonly no
save \"\""; fi
    cat > "$DIR/redis.conf" <<CONF
bind 127.0.0.1
port $REDIS_PORT
dir $DIR/redis
daemonize yes
pidfile $DIR/redis.pid
logfile $DIR/logs/redis.log
maxmemory-policy noeviction
$persist
CONF
    redis-server "$DIR/redis.conf"
    wait_for "redis" redis-cli -p "$REDIS_PORT" ping
}

# The shipped nginx files (nginx/*.conf), rendered for this folder: socket paths, log
# paths, include paths, and the API proxy pointed at the sandbox and its test CA.
render_nginx_conf() {
    servers=""
    n=1
    while [ $n -le "$INSTANCES" ]; do
        servers="$servers    server unix:$DIR/$(inst $n).sock;\\n"
        n=$((n + 1))
    done
    mkdir -p "$DIR/nginx-conf"
    if [ "$REAL" = 1 ]; then
        api_url=https://api.freshbooks.com api_name=api.freshbooks.com
        api_ca=/etc/ssl/certs/ca-certificates.crt
        resolver=$(awk '/^nameserver/ { print $2; exit }' /etc/resolv.conf 2>/dev/null)
    else
        api_url=https://127.0.0.1:$SANDBOX_PORT api_name=localhost api_ca=$DIR/ca/ca.pem
        resolver=127.0.0.53
    fi
    case "$resolver" in *:*) resolver="[$resolver]" ;; "") resolver=127.0.0.53 ;; esac
    for f in "$ROOT"/nginx/*.conf; do
        sed -e "s|include fastcgi_params;|include /etc/nginx/fastcgi_params;|" \
            -e "s|/etc/nginx/fbconnect/|$DIR/nginx-conf/|g" \
            -e "s|/var/log/nginx/fbconnect.access.log|$DIR/logs/nginx-access.log|g" \
            -e "s|/var/log/nginx/fbsandbox.access.log|$DIR/logs/nginx-sandbox-access.log|g" \
            -e "s|^    server unix:/run/fbconnect/fbconnect.sock;|$servers|" \
            -e "s|https://api.freshbooks.com|$api_url|" \
            -e "s|proxy_ssl_name api.freshbooks.com|proxy_ssl_name $api_name|" \
            -e "s|/etc/ssl/certs/ca-certificates.crt|$api_ca|" \
            -e "s|resolver 127.0.0.53 |resolver $resolver |" \
            "$f" > "$DIR/nginx-conf/$(basename "$f")"
    done
    if [ "$REAL" = 1 ]; then
        : > "$DIR/sandbox-server.conf"
    else
        sed -e "s|@RUN@|$DIR|g" -e "s|@SANDBOX_PORT@|$SANDBOX_PORT|g" \
            -e "s|@SANDBOX_HTTP_PORT@|$SANDBOX_HTTP_PORT|g" \
            "$ROOT/nginx/local-sandbox.conf.in" > "$DIR/sandbox-server.conf"
    fi
}

nginx_ports_free() {
    port_free HTTP_PORT "$HTTP_PORT"
    port_free INTERNAL_PORT "$INTERNAL_PORT"
    if [ "$REAL" = 1 ]; then port_free HTTPS_PORT "$HTTPS_PORT"; else
        port_free SANDBOX_PORT "$SANDBOX_PORT"; port_free SANDBOX_HTTP_PORT "$SANDBOX_HTTP_PORT"; fi
}

start_nginx() {
    pid_alive "$DIR/nginx.pid" && return 0
    rm -f "$DIR/nginx.pid"
    nginx_ports_free
    user=""
    [ "$(id -u)" = 0 ] && user="user root;"
    render_nginx_conf
    tls=""
    # With real FreshBooks the site is HTTPS (FreshBooks takes only HTTPS redirect URIs, and the
    # cookie is Secure): plain HTTP is sent there, never served a page whose cookie is dropped.
    [ "$REAL" = 1 ] && tls="listen 127.0.0.1:$HTTPS_PORT ssl; ssl_certificate $DIR/ca/sandbox.pem; ssl_certificate_key $DIR/ca/sandbox.key; if (\$scheme = http) { return 301 https://\$host:$HTTPS_PORT\$request_uri; }"
    sed -e "s|@RUN@|$DIR|g" -e "s|@ROOT@|$ROOT|g" -e "s|@USER@|$user|" \
        -e "s|@HTTP_PORT@|$HTTP_PORT|g" -e "s|@INTERNAL_PORT@|$INTERNAL_PORT|g" \
        -e "s|@SITE_TLS@|$tls|" \
        "$ROOT/nginx/local.conf.in" > "$DIR/nginx.conf"
    nginx -q -t -c "$DIR/nginx.conf" -p "$DIR/nginx" 2>>"$DIR/logs/nginx-error.log" ||
        die "nginx rejected $DIR/nginx.conf (see $DIR/logs/nginx-error.log)"
    if ! nginx -c "$DIR/nginx.conf" -p "$DIR/nginx" 2>>"$DIR/logs/nginx-error.log"; then
        rm -f "$DIR/nginx.pid"
        die "nginx did not start: $(tail -n 1 "$DIR/logs/nginx-error.log")"
    fi
    wait_for "nginx" test -s "$DIR/nginx.pid"
}

case "$cmd" in
start)
    [ -x "$BUILD/fbconnect" ] || die "build first: $BUILD/fbconnect is missing"
    # Every port first: a busy one is named before anything starts.
    pid_alive "$DIR/redis.pid" || port_free REDIS_PORT "$REDIS_PORT"
    pid_alive "$DIR/nginx.pid" || nginx_ports_free
    prepare
    start_redis
    [ "$REAL" = 1 ] || start_sandbox
    start_fbconnect
    start_nginx
    ;;
stop)
    stop_pid "$DIR/nginx.pid" QUIT
    stop_fbconnect
    stop_pid "$DIR/fbsandbox.pid"
    stop_pid "$DIR/redis.pid"
    ;;
start-redis) start_redis ;;
stop-redis) stop_pid "$DIR/redis.pid" ;;
kill-redis) stop_pid "$DIR/redis.pid" KILL ;;
start-fbconnect) start_fbconnect ;;
stop-fbconnect) stop_fbconnect ;;
env) cat "$DIR/fbconnect.env" ;;
*) die "unknown command $cmd" ;;
esac
