"""fbconnect as a process: SIGTERM, idle keep-alive connections, startup checks."""
import os
import signal
import subprocess
import time

import fcgi
from checks import check, wait_until
from stack import ROOT


def own_env(stack, sock, **overrides):
    return stack.fbconnect_env(**{"FBCONNECT_LISTEN": "unix:" + sock, **overrides})


def start_own(stack, name, **overrides):
    sock = os.path.join(stack.dir, name + ".sock")
    log = open(os.path.join(stack.dir, "logs", name + ".log"), "w")
    p = subprocess.Popen([os.path.join(stack.build, "fbconnect")], env=own_env(stack, sock, **overrides),
                         stdout=log, stderr=subprocess.STDOUT)
    wait_until(lambda: os.path.exists(sock) or p.poll() is not None, what="fbconnect socket")
    check(p.poll() is None, f"fbconnect exited at start: {open(log.name).read()}")
    return p, sock


def test_sigterm_closes_idle_connections_and_exits_zero(stack):
    p, sock = start_own(stack, "term")
    idle = fcgi.Connection(sock)
    status, _, body = idle.request(fcgi.params("/healthz"))
    check(status == 200 and body == b"ok\n", f"healthz over FastCGI: {status}")
    busy = fcgi.Connection(sock)
    busy.request(fcgi.params("/healthz"))
    t0 = time.monotonic()
    p.send_signal(signal.SIGTERM)
    check(idle.is_closed_by_peer(), "an idle kept-alive connection stayed open after SIGTERM")
    rc = p.wait(timeout=30)
    check(rc == 0, f"exit status {rc}")
    check(time.monotonic() - t0 < 5, "slow to stop with nothing in flight")
    check(not os.path.exists(sock), "socket file left behind")
    idle.close()
    busy.close()


def test_kept_connection_serves_many_requests(stack):
    p, sock = start_own(stack, "keep", FBCONNECT_THREADS="2")
    try:
        conns = [fcgi.Connection(sock) for _ in range(8)]  # more kept connections than threads
        for _ in range(5):
            for c in conns:
                status, _, _ = c.request(fcgi.params("/healthz"))
                check(status == 200, f"status {status}")
        status, headers, _ = conns[0].request(fcgi.params("/status", FBCONNECT_INTERNAL="1"))
        check(status == 200, "status")
        for c in conns:
            c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def test_malformed_fastcgi_does_not_kill_the_daemon(stack):
    p, sock = start_own(stack, "junk")
    try:
        import socket as s
        for junk in (b"\x00" * 64, b"GET / HTTP/1.1\r\n\r\n", b"\x01\x01\x00\x01\x00\x08\x00\x00\x00\x01",
                     b"\x01\x04\x00\x01\xff\xff\x00\x00" + b"A" * 100):
            c = s.socket(s.AF_UNIX, s.SOCK_STREAM)
            c.connect(sock)
            c.sendall(junk)
            c.close()
        ok = fcgi.Connection(sock)
        status, _, _ = ok.request(fcgi.params("/healthz"))
        check(status == 200 and p.poll() is None, "daemon hurt by malformed records")
        ok.close()
    finally:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=30)


def test_startup_refuses_bad_configuration(stack):
    cases = {
        "FBCONNECT_REDIRECT_URI": "https://example.com/callback?x=1",
        "FBCONNECT_TOKEN_URL": "http://api.example.com/token",
        "FBCONNECT_SECRET_KEY_FILE": "/nonexistent/key",
        "FBCONNECT_THREADS": "lots",
        "FBCONNECT_USER_PARAM": "HTTP_X_USER",
        "FBCONNECT_LISTEN": "0.0.0.0:9000",
    }
    for var, value in cases.items():
        env = own_env(stack, os.path.join(stack.dir, "bad.sock"), **{var: value})
        r = subprocess.run([os.path.join(stack.build, "fbconnect")], env=env, capture_output=True,
                           text=True, timeout=10)
        lines = [l for l in r.stderr.splitlines() if l.strip()]
        check(r.returncode != 0, f"{var}={value} accepted")
        check(len(lines) == 1 and var.replace("_FILE", "") in lines[0],
              f"{var}: expected one line naming it, got {lines}")
    env = own_env(stack, os.path.join(stack.dir, "cc.sock"), FBCONNECT_REDIS_URL="redis://127.0.0.1:1")
    r = subprocess.run([os.path.join(stack.build, "fbconnect"), "--check-config"], env=env,
                       capture_output=True, text=True, timeout=10)
    check(r.returncode == 0 and "configuration OK" in r.stdout, "--check-config with Redis down")
    secret = open(os.path.join(stack.dir, "secrets", "client_secret")).read().strip()
    check(secret not in r.stdout and secret not in r.stderr, "--check-config printed the client secret")


def test_starts_with_redis_and_provider_down(stack):
    p, sock = start_own(stack, "down", FBCONNECT_REDIS_URL="redis://127.0.0.1:1",
                        FBCONNECT_TOKEN_URL="https://127.0.0.1:1/token")
    try:
        c = fcgi.Connection(sock)
        check(c.request(fcgi.params("/healthz"))[0] == 200, "healthz")
        check(c.request(fcgi.params("/readyz"))[0] == 503, "readyz with Redis down")
        check(c.request(fcgi.params("/connect"))[0] == 200, "first visit with Redis down")
        c.close()
    finally:
        p.send_signal(signal.SIGTERM)
        check(p.wait(timeout=30) == 0, "exit status")
