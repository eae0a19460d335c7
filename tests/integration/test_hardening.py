"""Failing dependencies, signals and limits: Redis slow, killed under load and restarted;
FreshBooks refusing connections, rate-limiting and slow; oversized input; clients that
leave mid-response; thread and FreshBooks-call limits; SIGHUP; no core dumps."""
import concurrent.futures
import os
import signal
import socket
import threading
import time
import urllib.parse
import uuid
from test_process import start_own

import fcgi
from checks import check, wait_until
from web import Browser, request


def email():
    return f"hard-{uuid.uuid4().hex[:10]}@example.com"


def stop_own(p):
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=30) == 0, "exit status")


def test_redis_slow(stack):
    b = Browser(stack)
    check(b.connect(email()).status == 303, "connect")
    stack.redis("CLIENT", "PAUSE", "1500", "ALL")
    t0 = time.monotonic()
    r = b.status()
    took = time.monotonic() - t0
    check(r.status == 503, f"/status while Redis stalls: {r.status}")
    check(took < 1.4, f"a stalled Redis held the request {took:.2f}s (timeout 0.5 s)")
    check(request("GET", stack.site("healthz")).status == 200, "healthz while Redis stalls")
    wait_until(lambda: b.status().status == 200, timeout=5, what="recovery after the stall")
    check(b.status().json()["connected"], "connection lost after a stall")


def test_redis_killed_under_load_loses_nothing(stack):
    users = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=10) as pool:
        def conn(_):
            b = Browser(stack)
            r = b.connect(email())
            return b if r.status == 303 else None
        users = [u for u in pool.map(conn, range(30)) if u]
    check(len(users) == 30, "connects before the kill")
    time.sleep(1.2)  # appendfsync everysec: what was stored a second ago is on disk
    statuses, stop = [], threading.Event()

    def load(b):
        while not stop.is_set():
            try:
                statuses.append(b.status().status)
                statuses.append(stack.internal_get("auth", cookies=b.cookies).status)
            except Exception as e:  # noqa: BLE001
                statuses.append(repr(e))

    threads = [threading.Thread(target=load, args=(u,)) for u in users[:8]]
    for t in threads:
        t.start()
    time.sleep(0.3)
    stack.run("kill-redis")
    time.sleep(0.5)
    stack.run("start-redis")
    time.sleep(0.3)
    stop.set()
    for t in threads:
        t.join(30)
    bad = [s for s in statuses if s not in (200, 503)]
    check(not bad, f"answers other than 200/503 while Redis died: {bad[:5]}")
    check(503 in statuses, "no request ever saw Redis down")
    # The first requests after Redis is back succeed, and nobody lost their connection.
    for b in users:
        r = b.status()
        check(r.status == 200 and r.json()["connected"], f"a connection was lost: {r.status}")
    for sock in ("fbconnect.sock", "fbconnect2.sock"):
        c = fcgi.Connection(os.path.join(stack.dir, sock))
        check(c.request(fcgi.params("/healthz"))[0] == 200, f"{sock} hurt")
        c.close()


def test_provider_refusing_connections(stack):
    with stack.settings({"FBCONNECT_TOKEN_URL": "https://127.0.0.1:1/auth/oauth/token"}):
        b = Browser(stack)
        _, link = b.start()
        t0 = time.monotonic()
        r = b.get(stack.local(b.approve(link, email())))
        check(r.status == 502 and time.monotonic() - t0 < 2, f"refused connection: {r.status}")
        check(not b.status().json()["connected"], "stored something")


def test_oversized_input_and_clients_that_leave(stack):
    p, sock = start_own(stack, "limits")
    try:
        c = fcgi.Connection(sock)
        status, _, _ = c.request(fcgi.params("/disconnect", method="POST", CONTENT_LENGTH=str(10 << 20),
                                             CONTENT_TYPE="application/x-www-form-urlencoded"))
        check(status == 413, f"10 MB body announced: {status}")
        c = fcgi.Connection(sock)
        status, _, _ = c.request(fcgi.params("/status", HTTP_COOKIE="a=" + "b" * 20000))
        check(status == 431, f"20 KB Cookie header: {status}")
        status, _, _ = c.request(fcgi.params("/connect", query="x=" + "y" * 20000))
        check(status == 414, f"20 KB query string: {status}")
        c.close()
        for _ in range(200):  # ask for a page and hang up without reading it
            raw = socket.socket(socket.AF_UNIX)
            raw.connect(sock)
            conn = fcgi.Connection.__new__(fcgi.Connection)
            conn.sock, conn.req_id = raw, 0
            data = fcgi._record(fcgi.BEGIN, 1, b"\0\1\1\0\0\0\0\0")
            data += fcgi._record(fcgi.PARAMS, 1, b"".join(fcgi._nv(k, v) for k, v in fcgi.params("/connect").items()))
            data += fcgi._record(fcgi.PARAMS, 1, b"") + fcgi._record(fcgi.STDIN, 1, b"")
            raw.sendall(data)
            raw.close()
        c = fcgi.Connection(sock)
        check(c.request(fcgi.params("/healthz"))[0] == 200 and p.poll() is None, "hurt by clients that left")
        c.close()
    finally:
        stop_own(p)


def test_threads_never_exceed_the_limit(stack):
    p, sock = start_own(stack, "threads", FBCONNECT_THREADS="4")
    try:
        def threads():
            with open(f"/proc/{p.pid}/status") as f:
                return int(next(l for l in f if l.startswith("Threads:")).split()[1])
        seen = []

        def hit(_):
            c = fcgi.Connection(sock)
            for _ in range(5):
                c.request(fcgi.params("/connect"))
                seen.append(threads())
            c.close()

        with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
            list(pool.map(hit, range(50)))
        # 4 workers + main + the store-again thread.
        check(max(seen) == 6 and min(seen) == 6, f"thread counts seen: {sorted(set(seen))}")
        with open(f"/proc/{p.pid}/limits") as f:
            core = next(l for l in f if l.startswith("Max core file size")).split()
        check(core[4:6] == ["0", "0"], f"core dumps allowed: {core}")
        p.send_signal(signal.SIGHUP)
        time.sleep(0.2)
        c = fcgi.Connection(sock)
        check(p.poll() is None and c.request(fcgi.params("/healthz"))[0] == 200, "SIGHUP")
        c.close()
    finally:
        stop_own(p)


def callback_params(stack, b, callback):
    query = urllib.parse.urlsplit(callback).query
    cookie = "; ".join(f"{k}={v}" for k, v in b.cookies.items())
    return fcgi.params("/callback", query=query, HTTP_COOKIE=cookie)


def test_freshbooks_calls_capped(stack):
    p, sock = start_own(stack, "capped", FBCONNECT_THREADS="4")  # at most 2 calls in flight
    try:
        flows = []
        for _ in range(4):
            b = Browser(stack)
            _, link = b.start()
            flows.append(callback_params(stack, b, b.approve(link, email())))
        stack.fault("token", "slow", delay_ms=1500)  # under the 2 s HTTP timeout
        before = stack.stats()["token_calls"]
        results = {}

        def go(i):
            c = fcgi.Connection(sock, timeout=20)
            t0 = time.monotonic()
            results[i] = (c.request(flows[i])[0], time.monotonic() - t0)
            c.close()

        threads = [threading.Thread(target=go, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        wait_until(lambda: stack.stats()["token_calls"] >= before + 2, what="two slow calls")
        time.sleep(0.4)
        c = fcgi.Connection(sock)
        t0 = time.monotonic()
        check(c.request(fcgi.params("/healthz"))[0] == 200, "healthz")
        check(time.monotonic() - t0 < 0.5, "health starved by a slow FreshBooks")
        c.close()
        for t in threads:
            t.join(30)
        codes = sorted(s for s, _ in results.values())
        check(codes == [303, 303, 503, 503], f"callbacks: {results}")
        check(all(d < 1.5 for s, d in results.values() if s == 503), f"refusals not quick: {results}")
        check(stack.stats()["token_calls"] == before + 2, "more calls in flight than the cap")
    finally:
        stack.fault("token", "none")
        stop_own(p)


def test_app_wide_pause_after_429(stack):
    p, sock = start_own(stack, "paused")
    try:
        flows = []
        for _ in range(3):
            b = Browser(stack)
            _, link = b.start()
            flows.append(callback_params(stack, b, b.approve(link, email())))
        stack.fault("token", "rate_limit", count=1)  # answers 429 with Retry-After: 2
        c = fcgi.Connection(sock)
        check(c.request(flows[0])[0] == 503, "429 from FreshBooks")
        calls = stack.stats()["token_calls"]
        check(c.request(flows[1])[0] == 503, "during the pause")
        check(stack.stats()["token_calls"] == calls, "called FreshBooks during the pause")
        time.sleep(2.2)
        check(c.request(flows[2])[0] == 303, "after the pause")
        c.close()
    finally:
        stop_own(p)
