"""Connection events: signed, durable webhooks to the site's back end.  A receiver
(tests/browser/receiver.mjs) verifies every delivery with the `standardwebhooks` npm package
(the specification's reference implementation) and checks that a tampered body is
rejected.  Every type with its fields, sequences per owner, no secret anywhere, deliveries
after the back end returns, retries with the same id, a hanging back end not slowing
callbacks, a killed process's events delivered by the other, give-up after the retention,
the CLI's listing and retry."""
import atexit
import base64
import hashlib
import os
import re
import signal
import subprocess
import time
import types
import uuid

from checks import check, wait_until
from flows import auth, connect_expiring, email, metrics, series
from stack import ROOT, free_ports
from web import Browser, request

SECRET = "whsec_" + base64.b64encode(b"fbconnect-events-test-secret-32b").decode()
TYPES = {"connection.connected", "connection.business_chosen", "connection.reconnect_required",
         "connection.disconnected"}


class Receiver:
    """The site's back end, in Node, on a port of its own."""

    def __init__(self):
        self.port = free_ports(1)[0]
        self.proc = subprocess.Popen(
            ["node", os.path.join(ROOT, "tests", "browser", "receiver.mjs"), str(self.port), SECRET],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        line = self.proc.stdout.readline()
        check(line.startswith("listening"), f"receiver did not start: {line!r}")
        atexit.register(self.proc.kill)
        self.url = f"http://127.0.0.1:{self.port}/hook"

    def get(self):
        r = request("GET", f"http://127.0.0.1:{self.port}/_rx")
        check(r.status == 200, "receiver state")
        j = r.json()
        check(j["rejected"] == 0, f"{j['rejected']} deliveries did not verify with standardwebhooks")
        check(j["tamper_accepted"] == 0, "a tampered body verified")
        return j

    def mode(self, m):
        request("POST", f"http://127.0.0.1:{self.port}/_rx/mode", m.encode())

    def reset(self):
        request("POST", f"http://127.0.0.1:{self.port}/_rx/reset", b"")
        self.mode("ok")

    def delivered(self):
        return [d for d in self.get()["deliveries"] if d["mode"] == "ok"]

    def wait(self, pred, n=1, timeout=15, what="events"):
        return wait_until(lambda: (lambda got: got if len(got) >= n else None)(
            [d for d in self.delivered() if pred(d["json"])]), timeout=timeout, what=what)


_receiver = None


def receiver():
    global _receiver
    if _receiver is None:
        _receiver = Receiver()
    _receiver.reset()
    return _receiver


def events_env(rx, **more):
    env = {"FBCONNECT_EVENTS_URL": rx.url, "FBCONNECT_EVENTS_SECRET": SECRET,
           "FBCONNECT_EVENTS_TIMEOUT_MS": "1000"}
    env.update(more)
    return env


def of_session(tag):
    return lambda j: j["data"]["owner"]["session"] == tag


def of_user(u):
    return lambda j: j["data"]["owner"]["site_user"] == u


def strings(x):
    if isinstance(x, dict):
        for k, v in x.items():
            yield k
            yield from strings(v)
    elif isinstance(x, list):
        for v in x:
            yield from strings(v)
    elif isinstance(x, str):
        yield x


def session_tag_of(stack, b):
    """The 8 hex digits b's session's events (and log lines) carry: BLAKE2b-128 of
    "session", a NUL and the session id, its first 4 bytes."""
    sid = b.session
    check(sid, "no session cookie")
    return hashlib.blake2b(b"session\0" + sid.encode(), digest_size=16).hexdigest()[:8]


def test_every_type_with_its_fields(stack):
    rx = receiver()
    with stack.settings(events_env(rx)):
        b = Browser(stack)
        who = email()
        check(b.connect(who, businesses=2).status == 303, "connect")
        st = b.status().json()
        tag = session_tag_of(stack, b)
        [c] = rx.wait(of_session(tag), what="connection.connected")
        j = c["json"]
        check(set(j) == {"type", "timestamp", "data"} and j["type"] == "connection.connected", f"body {j}")
        check(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z", j["timestamp"]), j["timestamp"])
        d = j["data"]
        check(d["owner"] == {"site_user": None, "session": tag}, f"owner {d['owner']}")
        check(d["sequence"] == 1 and d["freshbooks_user_id"] == st["user"]["id"] and d["email"] == who,
              f"data {d}")
        check(d["business"] is None, "two businesses: none is chosen at connect")
        check(c["headers"]["content-type"] == "application/json", c["headers"]["content-type"])
        check(re.fullmatch(r"\d+", c["headers"]["webhook-timestamp"]), "webhook-timestamp")

        # business chosen at /business
        from test_business import chooser, choose
        _, csrf, buttons = chooser(b, stack)
        check(b.post and choose(b, stack, buttons[1][0], csrf).status == 303, "choose")
        [bc] = rx.wait(lambda j: of_session(tag)(j) and j["type"] == "connection.business_chosen")
        chosen = b.status().json()["business"]
        check(bc["json"]["data"]["business"] == chosen and bc["json"]["data"]["sequence"] == 2,
              f"business_chosen {bc['json']}")

        # disconnected by the user (FreshBooks confirms)
        page = b.get(stack.site("connect")).text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
        check(b.post(stack.site("disconnect"), {"csrf": csrf}).status == 303, "disconnect")
        [dc] = rx.wait(lambda j: of_session(tag)(j) and j["type"] == "connection.disconnected")
        dd = dc["json"]["data"]
        check(dd["by"] == "user" and dd["revoked"] is True and dd["sequence"] == 3 and
              dd["business"] == chosen and dd["freshbooks_user_id"] == st["user"]["id"], f"disconnected {dd}")

        # reconnect_required, refresh refused
        b2 = connect_expiring(stack)
        tag2 = session_tag_of(stack, b2)
        rx.wait(of_session(tag2), what="the second browser's connect")
        stack.fault("token", "invalid_grant", count=1)
        check(auth(stack, b2).status == 401, "/auth after invalid_grant")
        [rr] = rx.wait(lambda j: of_session(tag2)(j) and j["type"] == "connection.reconnect_required")
        check(rr["json"]["data"]["reason"] == "refresh_refused" and rr["json"]["data"]["sequence"] == 2,
              f"reconnect_required {rr['json']}")

        got = rx.get()
        ids = [d["headers"]["webhook-id"] for d in got["deliveries"]]
        check(len(ids) == len(set(ids)), "one webhook-id delivered twice")
        check({d["json"]["type"] for d in got["deliveries"]} == TYPES, "every type seen")

        # Nothing secret in any body or header: no code or token the sandbox issued, no cookie,
        # no state, no key.
        values = set()
        for dl in got["deliveries"]:
            values.update(strings(dl["json"]))
            values.update(v for k, v in dl["headers"].items())
            values.update(re.findall(r"[A-Za-z0-9._~+/=-]{16,}", dl["body"]))
        issued = stack.sandbox("issued", {"values": sorted(values)})["issued"]
        check(issued == [], f"an issued code or token in an event: {issued[:1]}")
        secrets = set(b.cookies.values()) | set(b2.cookies.values()) | {SECRET, SECRET[6:], stack.client_secret()}
        blob = " ".join(dl["body"] + repr(dl["headers"]) for dl in got["deliveries"])
        check(not any(s and s in blob for s in secrets), "a cookie or secret in an event")
        m = metrics(stack)
        check(series(m, "fbconnect_events_delivered_total") >= len(got["deliveries"]), "delivered metric")
        # recorded: the stream's own count, the same from every process (sampled every 2 s)
        wait_until(lambda: series(metrics(stack), "fbconnect_events_recorded_total") >= 2 * len(got["deliveries"]),
                   what="the recorded metric")


def test_site_user_sequences_and_operator(stack):
    rx = receiver()
    with stack.settings(events_env(rx, FBCONNECT_USER_PARAM="TEST_SITE_USER")):
        user = "ev-" + uuid.uuid4().hex[:8]
        b = Browser(stack, site_user=user)
        who = email()
        check(b.connect(who, businesses=1).status == 303, "connect")
        [c] = rx.wait(of_user(user))
        d = c["json"]["data"]
        check(d["owner"] == {"site_user": user, "session": None} and d["sequence"] == 1, f"owner {d}")
        check(d["business"] is not None and d["business"] == b.status().json()["business"],
              "one business is chosen at connect, and said")
        r = stack.fbconnect_cmd("disconnect", "--user", user)
        check(r.returncode == 0, f"disconnect: {r.stdout}{r.stderr}")
        [dc] = rx.wait(lambda j: of_user(user)(j) and j["type"] == "connection.disconnected")
        check(dc["json"]["data"]["by"] == "operator" and dc["json"]["data"]["revoked"] is True and
              dc["json"]["data"]["sequence"] == 2, f"operator disconnect {dc['json']}")
        check(b.connect(who, businesses=1).status == 303, "connect again")
        r = stack.fbconnect_cmd("purge", "--user", user)
        check(r.returncode == 0, f"purge: {r.stdout}{r.stderr}")
        evs = rx.wait(of_user(user), n=4)
        seqs = [e["json"]["data"]["sequence"] for e in evs]
        check(sorted(seqs) == [1, 2, 3, 4], f"sequences {seqs}")
        last = max(evs, key=lambda e: e["json"]["data"]["sequence"])["json"]
        check(last["type"] == "connection.disconnected" and last["data"]["revoked"] is False and
              last["data"]["by"] == "operator", f"purge event {last}")

        # The history: newest first, delivered, filtered by user and identity.
        r = stack.fbconnect_cmd("events", "--user", user)
        check(r.returncode == 0, r.stderr)
        lines = r.stdout.strip().splitlines()
        check(lines[-1] == "4 events" and len(lines) == 5, f"events --user: {r.stdout}")
        check([l.split()[2] for l in lines[:4]] == ["connection.disconnected", "connection.connected",
                                                    "connection.disconnected", "connection.connected"],
              f"newest first: {r.stdout}")
        check(all(l.split()[-1] == "delivered" and f"site_user={user}" in l for l in lines[:4]), r.stdout)
        ids = [l.split()[1] for l in lines[:4]]
        check(ids[0] == max(evs, key=lambda e: e["json"]["data"]["sequence"])["headers"]["webhook-id"],
              "the listing's id is the webhook-id")
        fb_id = d["freshbooks_user_id"]
        r = stack.fbconnect_cmd("events", "--identity", str(fb_id))
        check(r.returncode == 0 and r.stdout.strip().endswith("4 events"), f"--identity: {r.stdout}")
        check(SECRET not in r.stdout and "token" not in r.stdout.lower(), "a secret in the listing")
        # retry sends it again, with the same id and body
        n_before = len([x for x in rx.delivered() if x["headers"]["webhook-id"] == ids[0]])
        r = stack.fbconnect_cmd("events", "retry", ids[0])
        check(r.returncode == 0, f"retry: {r.stdout}{r.stderr}")
        again = wait_until(lambda: [x for x in rx.delivered() if x["headers"]["webhook-id"] == ids[0]][n_before:],
                           what="the retried event")
        check(again[0]["body"] == [x for x in rx.delivered() if x["headers"]["webhook-id"] == ids[0]][0]["body"],
              "a retry's body differs")
        check(stack.fbconnect_cmd("events", "retry", "1-0").returncode == 3, "retry of no such event")
        check(stack.fbconnect_cmd("events", "--bogus").returncode == 2, "usage")
    r = stack.fbconnect_cmd("events")
    check(r.returncode == 1 and "FBCONNECT_EVENTS_URL" in r.stderr, "events with events off")


def test_back_end_down_then_back(stack):
    rx = receiver()
    with stack.settings(events_env(rx)):
        rx.mode("fail")
        m0 = series(metrics(stack), "fbconnect_events_retried_total")
        b = Browser(stack)
        check(b.connect(email()).status == 303, "connect while the back end fails")
        tag = session_tag_of(stack, b)
        tries = wait_until(lambda: (lambda a: a if len(a) >= 3 else None)(
            [x for x in rx.get()["deliveries"] if x["json"]["data"]["owner"]["session"] == tag]),
            timeout=15, what="three attempts")
        check(len({x["headers"]["webhook-id"] for x in tries}) == 1, "a retry changed the webhook-id")
        check(len({x["body"] for x in tries}) == 1, "a retry changed the body")
        gaps = [(tries[i + 1]["at"] - tries[i]["at"]) / 1000 for i in range(len(tries) - 1)]
        check(0.6 < gaps[0] < 2.5 and gaps[1] > gaps[0] * 1.1, f"delays do not grow: {gaps}")
        check(series(metrics(stack), "fbconnect_events_retried_total") >= m0 + 2, "retried metric")
        r = stack.fbconnect_cmd("events")
        check(" pending" in r.stdout, f"undelivered not pending: {r.stdout}")
        m = metrics(stack)
        check(series(m, "fbconnect_events_pending") >= 1, "pending gauge")
        rx.mode("ok")
        [ok] = rx.wait(of_session(tag), timeout=15, what="delivery once the back end is back")
        check(ok["headers"]["webhook-id"] == tries[0]["headers"]["webhook-id"], "delivered under another id")


def test_hanging_back_end_does_not_slow_callbacks(stack):
    rx = receiver()
    with stack.settings(events_env(rx)):
        rx.mode("hang")
        slowest = 0.0
        tags = []
        for _ in range(4):
            b = Browser(stack)
            _, link = b.start()
            cb = b.approve(link, email())
            t0 = time.monotonic()
            r = b.get(stack.local(cb))
            slowest = max(slowest, time.monotonic() - t0)
            check(r.status == 303, f"callback {r.status}")
            tags.append(session_tag_of(stack, b))
        check(slowest < 0.5, f"a callback took {slowest:.2f}s while the back end hangs")
        rx.mode("ok")
        for t in tags:
            rx.wait(of_session(t), timeout=20, what="delivery after the hang")


def test_killed_process_events_taken_over(stack):
    """A process dies holding an event it was sending: another delivers it within 60 s."""
    rx = receiver()
    with stack.settings(events_env(rx, FBCONNECT_EVENTS_TIMEOUT_MS="30000")):
        rx.mode("hang")
        b = Browser(stack)
        check(b.connect(email()).status == 303, "connect")
        tag = session_tag_of(stack, b)
        first = wait_until(lambda: rx.get()["attempts"], what="the attempt in flight")[0]
        pending = stack.redis("XPENDING", "fbc:ev", "fbconnect", "-", "+", "10").split()
        check(len(pending) >= 2, f"no pending entry: {pending}")
        holder = int(pending[1].split(":")[-2])  # consumer host:pid:random
        os.kill(holder, signal.SIGKILL)
        t0 = time.monotonic()
        rx.mode("ok")
        [d] = rx.wait(of_session(tag), timeout=75, what="the other process's delivery")
        took = time.monotonic() - t0
        check(d["headers"]["webhook-id"] == first["id"], "taken over under another id")
        check(took <= 66, f"taken over after {took:.0f}s")
        check("took over" in stack.log("fbconnect.log"), "no log line for the takeover")


def test_given_up_after_retention_and_retried(stack):
    rx = receiver()
    with stack.settings(events_env(rx, FBCONNECT_EVENTS_RETENTION="5")):
        rx.mode("fail")
        g0 = series(metrics(stack), "fbconnect_events_given_up_total")
        b = Browser(stack)
        check(b.connect(email()).status == 303, "connect")
        wait_until(lambda: series(metrics(stack), "fbconnect_events_given_up_total") >= g0 + 1,
                   timeout=15, what="give-up")
        check("given up after" in stack.log("fbconnect.log"), "no log line for the give-up")
        r = stack.fbconnect_cmd("events", "--failed")
        lines = r.stdout.strip().splitlines()
        check(r.returncode == 0 and len(lines) >= 2 and lines[0].endswith(" failed"), f"--failed: {r.stdout}")
        failed_id = lines[0].split()[1]
        rx.mode("ok")
        r = stack.fbconnect_cmd("events", "retry", "--failed")
        check(r.returncode == 0 and "due again" in r.stdout, f"retry --failed: {r.stdout}")
        wait_until(lambda: [x for x in rx.delivered() if x["headers"]["webhook-id"] == failed_id],
                   what="the failed event sent again")
        r = stack.fbconnect_cmd("events", "--failed")
        check(failed_id not in r.stdout, f"still failed after delivery: {r.stdout}")


def test_sentinel_failover_loses_no_event(stack):
    """Events recorded while the back end fails, then a graceful failover: the stream, the
    group and the retries all come through, and every event is delivered."""
    from test_failover import MASTER, Cluster
    rx = receiver()
    cluster = Cluster(stack)
    cluster.start()
    try:
        with stack.settings({**cluster.env(), **events_env(rx)}):
            rx.mode("fail")
            tags = []
            for _ in range(6):
                b = Browser(stack)
                check(b.connect(email()).status == 303, "connect through sentinels")
                tags.append(session_tag_of(stack, b))
            wait_until(lambda: len({x["json"]["data"]["owner"]["session"] for x in rx.get()["deliveries"]}) >= 6,
                       what="a first attempt of each")
            old = cluster.primary()
            cluster.sentinel("failover", MASTER)
            wait_until(lambda: cluster.primary() not in (None, old), timeout=30, what="a new primary")
            for _ in range(2):  # and some recorded on the new primary
                b = Browser(stack)
                wait_until(lambda: b.connect(email()).status == 303, timeout=15, what="a connect after the failover")
                tags.append(session_tag_of(stack, b))
            rx.mode("ok")
            for t in tags:
                rx.wait(of_session(t), timeout=30, what=f"event of {t} after the failover")
    finally:
        cluster.stop()


def test_readme_verifiers_accept_the_readme_example(stack):
    """The README's Python and Node verifiers accept its example delivery, refuse it
    tampered, and accept a real delivery (they are what a back end copies)."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    py = re.search(r"```python\n(import base64, hashlib, hmac, time.*?)```", readme, re.S).group(1)
    js = re.search(r"```js\n(import crypto from \"node:crypto\";.*?)```", readme, re.S).group(1)
    body = re.search(r"\n(\{\"type\":\"connection\.disconnected\".*\})\n", readme).group(1)
    sig = re.search(r"webhook-signature: (v1,\S+)", readme).group(1)
    secret = re.search(r"example secret `(whsec_[A-Za-z0-9+/=]+)`", readme).group(1)
    wid = re.search(r"webhook-id: (\S+)", readme).group(1)
    ts = re.search(r"webhook-timestamp: (\d+)", readme).group(1)
    rx = receiver()
    with stack.settings(events_env(rx)):
        check(Browser(stack).connect(email()).status == 303, "connect")
        real = rx.wait(lambda j: True)[0]
    cases = [(secret, {"webhook-id": wid, "webhook-timestamp": ts, "webhook-signature": sig}, body, ts, True),
             (secret, {"webhook-id": wid, "webhook-timestamp": ts, "webhook-signature": sig}, body + " ", ts, False),
             (SECRET, {k: real["headers"][k] for k in ("webhook-id", "webhook-timestamp", "webhook-signature")},
              real["body"], real["headers"]["webhook-timestamp"], True)]
    for secret_, headers, b, now, want in cases:
        ns = {}
        exec(py, ns)
        ns["time"] = types.SimpleNamespace(time=lambda: int(now))  # the snippet's clock, here
        check(ns["verify"](secret_, headers, b.encode()) is want, f"README Python verifier: want {want}")
        prog = (js + f"\nDate.now = () => {int(now) * 1000};\n"
                f"process.stdout.write(String(verify({json_s(secret_)}, {json_s(headers)}, {json_s(b)})));\n")
        r = subprocess.run(["node", "--input-type=module", "-e", prog], capture_output=True, text=True, timeout=30)
        check(r.stdout == ("true" if want else "false"), f"README Node verifier: {r.stdout}{r.stderr}")


def json_s(x):
    import json
    return json.dumps(x)


def test_a_business_gone_tells_the_owners_who_chose_it(stack):
    from test_business import two_owners_choosing
    rx = receiver()
    with stack.settings(events_env(rx)):
        who = email()
        b, keeper, _ = two_owners_choosing(stack, who)
        tb, tk = session_tag_of(stack, b), session_tag_of(stack, keeper)
        chosen = lambda t: (lambda j: of_session(t)(j) and j["type"] == "connection.business_chosen")
        rx.wait(chosen(tb)), rx.wait(chosen(tk))
        stack.sandbox("user", {"email": who, "businesses": 2})  # the third is gone at FreshBooks
        check(auth(stack, b).status == 200, "auth")
        evs = rx.wait(chosen(tb), n=2, what="business_chosen: none, once the business went")
        last = max(evs, key=lambda x: x["json"]["data"]["sequence"])["json"]["data"]
        check(last["business"] is None and last["sequence"] == 3, f"gone: {last}")
        check(b.status().json()["business"] is None, "choice kept")
        time.sleep(0.5)
        check(len([x for x in rx.delivered() if chosen(tb)(x["json"])]) == 2, "told twice")
        check(len([x for x in rx.delivered() if chosen(tk)(x["json"])]) == 1,
              "an owner whose business is still listed was told")


def test_one_event_per_owner_and_a_reconnect_tells_the_others(stack):
    rx = receiver()
    with stack.settings(events_env(rx)):
        who = email()
        b1 = connect_expiring(stack, who)
        b2 = connect_expiring(stack, who)  # the same FreshBooks user: one record, two owners
        t1, t2 = session_tag_of(stack, b1), session_tag_of(stack, b2)
        stack.fault("token", "invalid_grant", count=1)
        check(auth(stack, b1).status == 401, "/auth after invalid_grant")
        rr = lambda t: (lambda j: of_session(t)(j) and j["type"] == "connection.reconnect_required")
        rx.wait(rr(t1)), rx.wait(rr(t2))
        check(b1.connect(who).status == 303, "b1 reconnects")
        t1new = session_tag_of(stack, b1)
        conn = lambda t: (lambda j: of_session(t)(j) and j["type"] == "connection.connected")
        rx.wait(conn(t1new), what="the reconnecting browser's connected")
        [other] = [x for x in rx.wait(conn(t2), n=2, what="the other browser told it is back")
                   if x["json"]["data"]["sequence"] > 1]
        check(other["json"]["data"]["freshbooks_user_id"] is not None, f"{other['json']}")
        time.sleep(0.5)
        check(not [x for x in rx.delivered() if conn(t1)(x["json"]) and x["json"]["data"]["sequence"] > 1],
              "the reconnecting browser's old session was told too")
        check(len([x for x in rx.delivered() if rr(t1)(x["json"]) or rr(t2)(x["json"])]) == 2,
              "not one reconnect_required per owner")
