"""fbconnect's own FastCGI layer, on its socket: thousands of idle connections and
half-sent requests do not starve nginx's requests, descriptors past 1024 are served, the
deadlines close silent and unfinished connections without holding a thread, and malformed
records get the right answer or a close."""
import concurrent.futures
import os
import re
import resource
import select
import signal
import socket
import struct
import subprocess
import time
import uuid
from test_process import own_env, start_own

import fcgi
from checks import check, wait_until
from web import Browser, request


# server.c's deadlines, in seconds.
FRESH_TIMEOUT, READ_DEADLINE, IDLE_TIMEOUT = 5.0, 10.0, 75.0
HEALTHZ = fcgi.params("/healthz")


def email():
    return f"sock-{uuid.uuid4().hex[:10]}@example.com"


def raw(path, timeout=10):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    return s


def kept_alive(path, n):
    """n connections, each kept alive after answering one /healthz."""
    def one(_):
        c = fcgi.Connection(path, timeout=30)
        return c, c.request(HEALTHZ)[0]
    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        done = list(pool.map(one, range(n)))
    bad = [status for _, status in done if status != 200]
    check(not bad, f"{len(bad)} of {n} kept-alive connections not answered 200")
    return [c for c, _ in done]


def half_sent(path, req_id=1):
    """A connection that sent BEGIN_REQUEST and half a PARAMS record, and then nothing."""
    s = raw(path)
    pairs = b"".join(fcgi._nv(k, v) for k, v in HEALTHZ.items())
    params = fcgi._record(fcgi.PARAMS, req_id, pairs)
    s.sendall(fcgi.begin(req_id) + params[:len(params) // 2])
    return s


def still_open(s):
    """True when s has neither been closed nor been sent anything by fbconnect."""
    s.setblocking(False)
    try:
        return s.recv(1, socket.MSG_PEEK) not in (b"",)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        s.setblocking(True)


def closed_by_peer(s, timeout=5):
    """True when fbconnect closes s (EOF or reset) within timeout without sending a byte."""
    s.settimeout(timeout)
    try:
        return s.recv(65536) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True
    except socket.timeout:
        return False


def send_ignoring_close(s, data):
    try:
        s.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # fbconnect may close before it has read everything


def answer(s, req_id):
    """Reads one request's answer: (status, END_REQUEST protocol status)."""
    out = b""
    while True:
        rec = fcgi.read_record(s)
        check(rec is not None, "closed before the answer ended")
        rtype, rid, content = rec
        check(rid == req_id, f"a record for request {rid}, expected {req_id}")
        if rtype == fcgi.STDOUT:
            out += content
        elif rtype == fcgi.END:
            status = re.match(rb"Status: (\d+)", out)
            return (int(status.group(1)) if status else None), content[4]


def open_fds(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def pid_of(stack, name):
    with open(os.path.join(stack.dir, name + ".pid")) as f:
        return int(f.read())


def logged(text, pattern):
    """The sum of a count over fbconnect's 'closed connections' lines."""
    return sum(int(m.group(1)) for m in re.finditer(pattern, text))


def sanitizer_clean(log_path):
    """Fails on a sanitizer report in an fbconnect log (the runner checks only the stack's)."""
    text = open(log_path).read()
    bad = [l for l in text.splitlines() if "Sanitizer" in l or "runtime error" in l]
    check(not bad, f"sanitizer reports in {os.path.basename(log_path)}: {bad[:5]}")
    return text


def stop(p):
    p.send_signal(signal.SIGTERM)
    check(p.wait(timeout=30) == 0, "exit status")


# (a) -----------------------------------------------------------------------------------

def test_idle_and_half_sent_connections_do_not_starve_nginx(stack):
    """2000 kept-alive idle connections and 100 half-sent requests on each fbconnect's own
    socket (16 threads each): 40 whole connect flows through nginx all succeed and
    /healthz answers at once."""
    names = ("fbconnect", "fbconnect2")
    held, half = [], []
    try:
        for name in names:
            held += kept_alive(os.path.join(stack.dir, name + ".sock"), 2000)
        t0 = time.monotonic()
        for name in names:
            half += [half_sent(os.path.join(stack.dir, name + ".sock")) for _ in range(100)]
        for name in names:  # accepted and held by fbconnect, not waiting in the backlog
            pid = pid_of(stack, name)
            wait_until(lambda: open_fds(pid) >= 2100, timeout=5, what=f"{name} to hold 2100 connections")
        health = []
        for _ in range(5):
            t = time.monotonic()
            check(request("GET", stack.site("healthz")).status == 200, "healthz through nginx")
            health.append(time.monotonic() - t)

        def flow(_):
            return Browser(stack).connect(email()).status
        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(pool.map(flow, range(40)))
        took = time.monotonic() - t0
        check(statuses == [303] * 40, f"callbacks: {sorted(statuses)}")
        check(max(health) < 1.0, f"/healthz through nginx took {max(health):.2f}s")
        # The half-sent requests were held the whole time (else this proved nothing) ...
        check(took < READ_DEADLINE - 0.5, f"the flows took {took:.1f}s, past the read deadline")
        check(all(still_open(s) for s in half), "a half-sent request was closed early")
        # ... and the idle connections are still there and still served.
        for c in held[::97]:
            check(c.request(HEALTHZ)[0] == 200, "an idle kept-alive connection after the flows")
        print(f"     # 4000 idle + 200 half-sent held; 40 flows in {took:.2f}s; "
              f"healthz max {1000 * max(health):.1f} ms")
    finally:
        for c in held:
            c.close()
        for s in half:
            s.close()


# (b) -----------------------------------------------------------------------------------

def test_descriptors_past_1024_are_served(stack):
    """Started with a soft RLIMIT_NOFILE of 1024, fbconnect raises it to the hard limit and
    serves connections on descriptors past 1024 (libfcgi's select() closed them at once)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    check(hard >= 4096, f"this test needs a hard RLIMIT_NOFILE of 4096 or more, not {hard}")
    sock = os.path.join(stack.dir, "fds.sock")
    log = open(os.path.join(stack.dir, "logs", "fds.log"), "w")
    p = subprocess.Popen([os.path.join(stack.build, "fbconnect")], env=own_env(stack, sock),
                         stdout=log, stderr=subprocess.STDOUT,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (1024, hard)))
    conns = []
    try:
        wait_until(lambda: os.path.exists(sock) or p.poll() is not None, what="fbconnect socket")
        with open(f"/proc/{p.pid}/limits") as f:
            line = next(l for l in f if l.startswith("Max open files")).split()
        check(line[3:5] == [str(hard), str(hard)], f"soft limit not raised to the hard limit: {line}")
        conns = kept_alive(sock, 1100)
        fds = open_fds(p.pid)
        check(fds > 1100, f"fbconnect holds {fds} descriptors")
        late = fcgi.Connection(sock)
        check(late.request(HEALTHZ)[0] == 200, "a connection past fd 1024")
        conns.append(late)
        for c in (conns[0], conns[600], conns[-2]):
            check(c.request(HEALTHZ)[0] == 200, "a kept-alive connection")
        t0 = time.monotonic()
        stop(p)
        check(time.monotonic() - t0 < 5, "slow to stop with 1100 idle connections")
        text = sanitizer_clean(log.name)
        check(f"file descriptors: {hard} (RLIMIT_NOFILE soft limit, was 1024)" in text,
              f"the raised limit is not logged: {text[-500:]}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for c in conns:
            c.close()


def test_at_the_limit_the_longest_idle_connection_makes_room(stack):
    """With RLIMIT_NOFILE at 512, fbconnect keeps descriptors for Redis and FreshBooks and
    takes connections up to the rest; past that, each new connection from nginx closes the
    longest-idle one instead of being refused, logged once for the burst."""
    sock = os.path.join(stack.dir, "limit.sock")
    log = open(os.path.join(stack.dir, "logs", "limit.log"), "w")
    p = subprocess.Popen([os.path.join(stack.build, "fbconnect")],
                         env=own_env(stack, sock, FBCONNECT_THREADS="4"), stdout=log,
                         stderr=subprocess.STDOUT,
                         preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (512, 512)))
    conns = []
    try:
        wait_until(lambda: os.path.exists(sock) or p.poll() is not None, what="fbconnect socket")
        m = re.search(r"up to (\d+) connections from nginx", open(log.name).read())
        check(m and int(m.group(1)) == 512 - 4 * 2 - 64, f"connection limit: {m and m.group(0)}")
        limit = int(m.group(1))
        conns = kept_alive(sock, limit)
        for c in conns[10:]:  # the first 10 are now the longest idle
            check(c.request(HEALTHZ)[0] == 200, "a kept-alive connection")
        fresh = []
        for _ in range(10):
            c = fcgi.Connection(sock)
            check(c.request(HEALTHZ)[0] == 200, "a new connection at the limit")
            fresh.append(c)
        conns += fresh
        check(all(closed_by_peer(c.sock, timeout=3) for c in conns[:10]), "the longest-idle were not closed")
        for c in (conns[10], conns[limit // 2], conns[limit - 1], *fresh):
            check(c.request(HEALTHZ)[0] == 200, "a connection that should have stayed")
        stop(p)
        text = sanitizer_clean(log.name)
        check(text.count("closing the longest-idle ones to make room") == 1, f"burst not logged once: {text[-800:]}")
        check(logged(text, r"(\d+) to make room") == 10, f"closes not counted: {text[-800:]}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        for c in conns:
            c.close()


# (c) -----------------------------------------------------------------------------------

def test_deadlines_close_silent_and_unfinished_connections(stack):
    """A silent connection is closed after the fresh-connection timeout, a half-sent request
    and one trickling a byte a second after the read deadline, all without holding either
    of 2 workers; an idle kept-alive connection outlives both deadlines."""
    p, sock = start_own(stack, "deadlines", FBCONNECT_THREADS="2")
    try:
        idle = fcgi.Connection(sock)
        check(idle.request(HEALTHZ)[0] == 200, "healthz")
        t0 = time.monotonic()
        silent = raw(sock)
        half = half_sent(sock)
        trickle = raw(sock)
        trickle_bytes = fcgi.request_bytes(1, HEALTHZ)
        trickle.sendall(trickle_bytes[:8])
        extra = [half_sent(sock) for _ in range(10)]  # more than the 2 workers
        c = fcgi.Connection(sock)
        t = time.monotonic()
        check(c.request(HEALTHZ)[0] == 200, "healthz beside 11 half-sent requests")
        check(time.monotonic() - t < 1.0, "half-sent requests held the workers")
        c.close()

        watched = {silent.fileno(): ("silent", silent), half.fileno(): ("half-sent", half),
                   trickle.fileno(): ("trickle", trickle)}
        poller = select.poll()
        for fd in watched:
            poller.register(fd, select.POLLIN)
        closed, sent, next_byte = {}, 8, t0 + 1
        while len(closed) < 3 and time.monotonic() - t0 < READ_DEADLINE + 8:
            for fd, _ in poller.poll(50):
                what, s = watched[fd]
                try:
                    data = s.recv(4096)
                except ConnectionResetError:
                    data = b""
                check(data == b"", f"{what}: fbconnect sent {data[:40]!r}")
                closed[what] = time.monotonic() - t0
                poller.unregister(fd)
            if "trickle" not in closed and time.monotonic() >= next_byte:
                trickle.send(trickle_bytes[sent:sent + 1])  # never the whole request
                sent += 1
                next_byte += 1
        check(set(closed) == {"silent", "half-sent", "trickle"}, f"not closed in time: {closed}")
        check(FRESH_TIMEOUT - 0.1 <= closed["silent"] <= FRESH_TIMEOUT + 5,
              f"silent connection closed after {closed['silent']:.2f}s (timeout {FRESH_TIMEOUT}s)")
        for what in ("half-sent", "trickle"):
            check(READ_DEADLINE - 0.1 <= closed[what] <= READ_DEADLINE + 5,
                  f"{what} request closed after {closed[what]:.2f}s (deadline {READ_DEADLINE}s)")
        check(sent >= 9, "the trickle did not keep sending")
        check(all(closed_by_peer(s, timeout=3) for s in extra), "a half-sent request outlived the deadline")
        check(time.monotonic() - t0 > READ_DEADLINE and still_open(idle.sock),
              "an idle kept-alive connection was closed by a shorter deadline")
        check(idle.request(HEALTHZ)[0] == 200, "the idle connection after the deadlines")
        print(f"     # closed after: silent {closed['silent']:.2f}s, half-sent {closed['half-sent']:.2f}s, "
              f"trickle {closed['trickle']:.2f}s")
        idle.close()
        for s in (silent, half, trickle, *extra):
            s.close()
    finally:
        stop(p)
    text = sanitizer_clean(os.path.join(stack.dir, "logs", "deadlines.log"))
    check(logged(text, r"(\d+) silent for 5 s after connecting") == 1 and
          logged(text, r"(\d+) with a request unfinished after 10 s") == 12,
          f"the closes are not logged: {text[-1200:]}")


# (d) -----------------------------------------------------------------------------------

def test_malformed_records_answered_or_closed(stack):
    """Bad versions, oversize lengths, garbage and records a web server does not send close
    the connection; a second request id, an unknown role, GET_VALUES, an unknown
    management type and an abort get their FastCGI answers; the daemon serves on."""
    p, sock = start_own(stack, "malformed")
    try:
        huge_pair = fcgi._nv("X", "v" * (200 << 10))  # 200 KB of params: past the 128 KB cap
        huge_params = b"".join(fcgi._record(fcgi.PARAMS, 1, huge_pair[i:i + 65535])
                               for i in range(0, len(huge_pair), 65535))
        closes = {
            "version 2": b"\x02" + fcgi.begin(1)[1:],
            "version 0": b"\x00" * 16,
            "HTTP": b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
            "BEGIN_REQUEST of 65535 bytes": struct.pack(">BBHHBx", 1, fcgi.BEGIN, 1, 65535, 0) + b"\0" * 65535,
            "params past the cap": fcgi.begin(1) + huge_params,
            "a 2 GB param length": fcgi.begin(1) + fcgi._record(fcgi.PARAMS, 1, b"\x01\xff\xff\xff\xffA"),
            "params that do not add up": fcgi.begin(1) + fcgi._record(fcgi.PARAMS, 1, b"\x05\x03ab")
                                          + fcgi._record(fcgi.PARAMS, 1, b""),
            "BEGIN_REQUEST twice": fcgi.begin(1) + fcgi.begin(1),
            "STDOUT from the web server": fcgi.begin(1) + fcgi._record(fcgi.STDOUT, 1, b"hi"),
            "record type 200": fcgi._record(200, 1, b""),
        }
        for what, data in closes.items():
            s = raw(sock)
            send_ignoring_close(s, data)
            check(closed_by_peer(s), f"{what}: not closed")
            s.close()

        # A second request id while one is open: CANT_MPX_CONN; the first is served.
        s = raw(sock)
        s.sendall(fcgi.begin(1) + fcgi.begin(2))
        rtype, rid, content = fcgi.read_record(s)
        check((rtype, rid, content[4]) == (fcgi.END, 2, fcgi.CANT_MPX_CONN), f"multiplexed: {rtype} {rid} {content!r}")
        s.sendall(fcgi.request_bytes(1, HEALTHZ)[16:])  # the rest of request 1
        check(answer(s, 1) == (200, fcgi.REQUEST_COMPLETE), "the first request")
        # An unknown role: UNKNOWN_ROLE, and the connection goes on.
        s.sendall(fcgi.begin(5, role=fcgi.AUTHORIZER))
        rtype, rid, content = fcgi.read_record(s)
        check((rtype, rid, content[4]) == (fcgi.END, 5, fcgi.UNKNOWN_ROLE), f"unknown role: {rtype} {rid} {content!r}")
        # GET_VALUES.
        ask = b"".join(fcgi._nv(n, "") for n in ("FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"))
        s.sendall(fcgi._record(fcgi.GET_VALUES, 0, ask))
        rtype, rid, content = fcgi.read_record(s)
        values = fcgi.parse_pairs(content)
        check(rtype == fcgi.GET_VALUES_RESULT and rid == 0 and values.get("FCGI_MPXS_CONNS") == "0",
              f"GET_VALUES: {rtype} {values}")
        check(int(values["FCGI_MAX_CONNS"]) > 1024 and values["FCGI_MAX_REQS"] == values["FCGI_MAX_CONNS"],
              f"GET_VALUES: {values}")
        # An unknown management type.
        s.sendall(fcgi._record(77, 0, b"?"))
        rtype, rid, content = fcgi.read_record(s)
        check((rtype, rid, content[0]) == (fcgi.UNKNOWN_TYPE, 0, 77), f"unknown type: {rtype} {rid} {content!r}")
        # An abort in the middle of a request: END_REQUEST, and the connection goes on.
        pairs = b"".join(fcgi._nv(k, v) for k, v in HEALTHZ.items())
        s.sendall(fcgi.begin(3) + fcgi._record(fcgi.PARAMS, 3, pairs) + fcgi._record(fcgi.ABORT, 3, b""))
        rtype, rid, content = fcgi.read_record(s)
        check((rtype, rid, content[4]) == (fcgi.END, 3, fcgi.REQUEST_COMPLETE), f"abort: {rtype} {rid} {content!r}")
        s.sendall(fcgi.request_bytes(4, HEALTHZ))
        check(answer(s, 4) == (200, fcgi.REQUEST_COMPLETE), "a request after all that")
        # Without FCGI_KEEP_CONN: answered, then closed.
        s.sendall(fcgi.request_bytes(6, HEALTHZ, keep=False))
        check(answer(s, 6)[0] == 200 and closed_by_peer(s), "a request without keep-conn")
        s.close()
        # An unknown role without FCGI_KEEP_CONN: UNKNOWN_ROLE, then closed.
        s = raw(sock)
        s.sendall(fcgi.begin(9, role=fcgi.FILTER, keep=False))
        rtype, rid, content = fcgi.read_record(s)
        check((rtype, rid, content[4]) == (fcgi.END, 9, fcgi.UNKNOWN_ROLE) and closed_by_peer(s),
              "unknown role without keep-conn")
        s.close()

        ok = fcgi.Connection(sock)
        check(ok.request(HEALTHZ)[0] == 200 and p.poll() is None, "daemon hurt by malformed records")
        ok.close()
    finally:
        stop(p)
    text = sanitizer_clean(os.path.join(stack.dir, "logs", "malformed.log"))
    check(logged(text, r"(\d+) for malformed FastCGI") == len(closes), f"malformed closes not logged: {text[-800:]}")
