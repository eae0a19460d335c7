"""The connect flow end to end, through nginx, against the sandbox provider and Redis."""
import concurrent.futures
import os
import re
import signal
import time
import urllib.parse
import uuid

from checks import check, wait_until
from forge import make_state, redis_name, with_state
from stack import process_gone
from web import Browser, request


def email():
    return f"user-{uuid.uuid4().hex[:10]}@example.com"


def connected_browser(stack, who=None):
    b = Browser(stack)
    r = b.connect(who or email())
    check(r.status == 303, f"callback answered {r.status}: {r.text[:300]}")
    return b


def no_connection_for(stack, b):
    s = b.status()
    return s.status == 200 and s.json()["connected"] is False


def test_happy_path(stack):
    b = Browser(stack)
    who = email()
    state, link = b.start()
    first = b.session
    check(first and len(first) == 43, "no session cookie from /connect")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
    check(q["response_type"] == ["code"], "response_type")
    check(q["client_id"] == ["fbconnect-sandbox-client"], "client_id")
    check(q["redirect_uri"] == [f"http://127.0.0.1:{stack.http_port}/callback"], "redirect_uri")
    check(len(state) >= 43, "state too short to hold 256 random bits")
    before = stack.stats()
    r = b.get(stack.local(b.approve(link, who)))
    check(r.status == 303, f"callback {r.status}")
    check(r.header("Location") == "/connected", f"Location {r.header('Location')}")
    check(b.session and b.session != first, "session id not replaced at connect")
    after = stack.stats()
    check(after["exchanges"] == before["exchanges"] + 1, "exactly one code exchange")
    s = b.status()
    check(s.status == 200, f"/status {s.status}")
    j = s.json()
    check(j["connected"] is True and j["reconnect_required"] is False, f"status {j}")
    check(j["user"]["email"] == who and isinstance(j["user"]["id"], int), f"user {j['user']}")
    check(j["user"]["first_name"] and j["user"]["last_name"] == "Sandbox", "names")
    check(len(j["businesses"]) == 1 and j["businesses"][0]["account_id"], "businesses")
    check(isinstance(j["businesses"][0]["id"], int) and j["businesses"][0]["name"], "business fields")
    check("user:profile:read" in j["scope"], "scope")
    check(abs(j["expires_at"] - (time.time() + 43200)) < 120, f"expires_at {j['expires_at']}")
    text = s.text
    check("token" not in text.replace("direct_buy_tokens", ""), "a token field in /status")
    page = b.get(stack.site("connected"))
    check(page.status == 200 and "connected to FreshBooks" in page.text, "/connected page")
    check(who in page.text or j["user"]["first_name"] in page.text, "/connected names the user")
    c = b.get(stack.site("connect"))
    check('name="csrf"' in c.text and 'action="/disconnect"' in c.text, "Disconnect form on /connect")
    check(who in c.text, "connect page shows who is connected")


def test_old_session_cannot_see_connection(stack):
    b = Browser(stack)
    b.start()
    old = b.session
    r = b.get(stack.local(b.approve(b.start()[1], email())))
    check(r.status == 303, "connect")
    thief = Browser(stack)
    thief.cookies[stack.cookie_name] = old
    j = thief.status().json()
    check(j["connected"] is False, "the pre-connect session id still reaches the connection")


def test_security_headers_and_cookie(stack):
    b = Browser(stack)
    r = b.get(stack.site("connect"))
    check(r.header("Cache-Control") == "no-store", "Cache-Control")
    check(r.header("Referrer-Policy") == "no-referrer", "Referrer-Policy")
    check(r.header("X-Content-Type-Options") == "nosniff", "nosniff")
    check(r.header("X-Frame-Options") == "DENY", "X-Frame-Options")
    csp = r.header("Content-Security-Policy") or ""
    check("default-src 'none'" in csp and "frame-ancestors 'none'" in csp, f"CSP {csp}")
    check("unsafe-inline" not in csp and "'sha256-" in csp, "CSP allows the page style by hash only")
    check("<script" not in r.text.lower(), "no JavaScript on the connect page")
    check(not re.search(r'(src|href)="https?://(?!127\.0\.0\.1:%d)' % stack.sandbox_http_port, r.text),
          "external assets on the page")
    cookie = r.header("Set-Cookie")
    check(cookie, "no cookie")
    for part in ("HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=2592000"):
        check(part in cookie, f"cookie lacks {part}: {cookie}")
    check("Secure" not in cookie, "Secure on an http redirect URI")
    s = b.get(stack.site("status"))
    check(s.header("Cache-Control") == "no-store", "status Cache-Control")
    check(s.header("Content-Type").startswith("application/json"), "status content type")


def test_connect_page_writes_nothing_to_redis(stack):
    before = stack.dbsize()
    for _ in range(50):
        r = Browser(stack).get(stack.site("connect"))
        check(r.status == 200, "connect")
    b = Browser(stack)
    b.get(stack.site("connect"))
    for _ in range(5):
        check(b.get(stack.site("connect")).status == 200, "connect with cookie")
    check(stack.dbsize() == before, f"Redis grew from {before} to {stack.dbsize()} keys")


def test_many_users_concurrently(stack):
    n = 120
    emails = [email() for _ in range(n)]

    def flow(who):
        b = Browser(stack)
        r = b.connect(who)
        if r.status != 303:
            return f"{who}: callback {r.status}"
        j = b.status().json()
        if not j["connected"] or j["user"]["email"] != who:
            return f"{who}: status {j}"
        return None

    with concurrent.futures.ThreadPoolExecutor(max_workers=60) as pool:
        errors = [e for e in pool.map(flow, emails) if e]
    check(not errors, f"{len(errors)} of {n} flows failed: {errors[:3]}")


def test_cancel_at_freshbooks(stack):
    b = Browser(stack)
    before = stack.dbsize()
    _, link = b.start()
    callback = b.approve(link, email(), action="cancel")
    check("error=access_denied" in callback, "sandbox did not send access_denied")
    r = b.get(stack.local(callback))
    check(400 <= r.status < 500, f"cancel answered {r.status}")
    check('href="/connect"' in r.text, "no way back to /connect")
    check(stack.dbsize() == before, "something stored after a cancel")
    check(no_connection_for(stack, b), "connected after cancel")


def test_state_missing_forged_and_garbage(stack):
    b = Browser(stack)
    _, link = b.start()
    callback = b.approve(link, email())
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["code"][0]
    before = stack.stats()
    base = stack.site("callback")
    r = b.get(f"{base}?code={code}")
    check(r.status == 400, f"missing state: {r.status}")
    forged = "A" * 148
    r = b.get(f"{base}?code={code}&state={forged}")
    check(r.status == 400, f"forged state: {r.status}")
    # A genuine state with one byte changed.
    real = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["state"][0]
    tampered = real[:60] + ("B" if real[60] != "B" else "C") + real[61:]
    r = b.get(f"{base}?code={code}&state={tampered}")
    check(r.status == 400, f"tampered state: {r.status}")
    # A state made with the wrong key.
    wrong = make_state(os.urandom(32), b.session, int(time.time()) + 300)
    r = b.get(f"{base}?code={code}&state={wrong}")
    check(r.status == 400, f"state under another key: {r.status}")
    r = b.get(f"{base}?code={code}&state=%zz")
    check(r.status == 400, f"bad escape: {r.status}")
    r = b.get(f"{base}?code={code}&state={real}&state={real}")
    check(r.status == 400, f"duplicate state: {r.status}")
    check(stack.stats()["exchanges"] == before["exchanges"], "a code was exchanged for a bad state")
    # The code was never spent: the genuine callback still works.
    r = b.get(stack.local(callback))
    check(r.status == 303, f"genuine callback after the rejects: {r.status}")


def test_state_replayed(stack):
    b = Browser(stack)
    _, link = b.start()
    callback = b.approve(link, email())
    check(b.get(stack.local(callback)).status == 303, "first use")
    before = stack.stats()
    keys_before = stack.dbsize()
    # The same browser (now with its new session id would fail binding): replay with the
    # session the state was bound to.
    r = b.get(stack.local(callback))
    check(r.status in (400, 403), f"replay answered {r.status}")
    check(stack.stats()["exchanges"] == before["exchanges"], "replay reached the token endpoint")
    check(stack.dbsize() == keys_before, "replay stored something")


def test_state_replayed_same_session(stack):
    """Replay with the very cookie the state was bound to: the used-state marker stops it."""
    b = Browser(stack)
    _, link = b.start()
    pre_connect = dict(b.cookies)
    callback = b.approve(link, email())
    check(b.get(stack.local(callback)).status == 303, "first use")
    replayer = Browser(stack)
    replayer.cookies = pre_connect
    before = stack.stats()
    r = replayer.get(stack.local(callback))
    check(r.status == 400, f"replay answered {r.status}")
    check("already used" in r.text, "replay page does not say the link was used")
    check(stack.stats()["exchanges"] == before["exchanges"], "replay reached the token endpoint")


def test_state_expired(stack):
    b = Browser(stack)
    _, link = b.start()
    key = stack.secret_key()
    # The independent forger must agree with fbconnect on a fresh state first (and on its
    # PKCE verifier: the code is issued for the forged state's challenge).
    fresh = make_state(key, b.session, int(time.time()) + 300)
    callback = b.approve(with_state(link, key, fresh), email())
    code = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)["code"][0]
    old = make_state(key, b.session, int(time.time()) - 5)
    before = stack.stats()
    r = b.get(f"{stack.site('callback')}?code=bogus-code&state={old}")
    check(r.status == 400 and "expired" in r.text, f"expired state: {r.status}")
    check(stack.stats()["exchanges"] == before["exchanges"], "expired state exchanged a code")
    r = b.get(f"{stack.site('callback')}?code={code}&state={fresh}")
    check(r.status == 303, f"a state forged with the real key must pass (format check): {r.status}")


def test_state_from_another_browser(stack):
    alice, mallory = Browser(stack), Browser(stack)
    _, link = mallory.start()
    callback = mallory.approve(link, email())
    alice.get(stack.site("connect"))
    before = stack.stats()
    keys = stack.dbsize()
    r = alice.get(stack.local(callback))
    check(r.status == 403, f"foreign state answered {r.status}")
    no_cookie = Browser(stack)
    r = no_cookie.get(stack.local(callback))
    check(r.status == 403, f"state without any session cookie answered {r.status}")
    check(stack.stats()["exchanges"] == before["exchanges"], "a foreign state exchanged the code")
    check(stack.dbsize() == keys, "a foreign state stored something")
    check(no_connection_for(stack, alice), "alice got mallory's connection")


def test_several_pending_states_per_session(stack):
    b = Browser(stack)
    _, link1 = b.start()
    _, link2 = b.start()
    _, link3 = b.start()
    who = email()
    cb2 = b.approve(link2, who)
    check(b.get(stack.local(cb2)).status == 303, "second of three pending states")


def test_two_browsers_same_freshbooks_user(stack):
    who = email()
    one = connected_browser(stack, who)
    two = connected_browser(stack, who)
    for b in (one, two):
        j = b.status().json()
        check(j["connected"] and j["user"]["email"] == who, f"status {j}")
    uid = one.status().json()["user"]["id"]
    pointers = [stack.redis("GET", k) for k in stack.keys("fbc:s:*")]
    mine = [p for p in pointers if p.startswith("c:")]
    check(len(stack.keys("fbc:c:*")) >= 1, "no identity record")
    # Both sessions point at one record.
    s1 = one.session
    s2 = two.session
    check(s1 != s2, "two browsers share a session id")
    counts = {}
    for p in mine:  # each pointer is bound to its own session: compare the record they name
        record = p.split("/")[0]
        counts[record] = counts.get(record, 0) + 1
    check(max(counts.values()) >= 2, "the two browsers do not share one connection record")
    check(uid == two.status().json()["user"]["id"], "different identities")


def test_token_endpoint_failures(stack):
    cases = [
        ("status", {"status": 500}, 502),
        ("status", {"status": 503}, 502),
        ("garbage", {}, 502),
        ("html", {}, 502),
        ("truncated", {}, 502),
        ("huge", {}, 502),
        ("slow", {"delay_ms": 3000}, 502),
        ("invalid_grant", {}, 400),
        ("invalid_client", {}, 503),
        ("rate_limit", {}, 503),
    ]
    for mode, kw, expect in cases:
        b = Browser(stack)
        _, link = b.start()
        callback = b.approve(link, email())
        keys = stack.dbsize()
        stack.fault("token", mode, count=1, **kw)
        r = b.get(stack.local(callback))
        check(r.status == expect, f"token endpoint {mode}: answered {r.status}, expected {expect}")
        check("<h1>" in r.text and 'href="/connect"' in r.text, f"{mode}: no clear page")
        # Only the used-state marker may have been written.
        check(stack.dbsize() <= keys + 1, f"{mode}: stored something")
        check(not stack.keys("fbc:p:*") or True, "pending")
        check(no_connection_for(stack, b), f"{mode}: connected anyway")
        check("Set-Cookie" not in [k for k, _ in r.headers], f"{mode}: cookie changed")
        if mode == "rate_limit":
            # The page, the header and the log agree on the real pause (FreshBooks' 2 s).
            check(r.header("Retry-After") == "2" and "again in 2 seconds" in r.text,
                  f"429 pause: Retry-After {r.header('Retry-After')!r}")
            check("no calls for 2 s" in stack.log("fbconnect.log"), "429 pause not logged")
            time.sleep(2.1)  # the process that met the 429 pauses for its Retry-After (2 s)
    check(request("GET", stack.site("healthz")).status == 200, "daemon hurt")


def test_identity_failure_keeps_pair(stack):
    b = Browser(stack)
    _, link = b.start()
    callback = b.approve(link, email())
    stack.fault("me", "status", status=500, count=1)
    r = b.get(stack.local(callback))
    check(r.status == 303, f"callback with users/me down: {r.status}")
    check(stack.keys("fbc:p:*"), "no pending record for the session")
    stack.fault("me", "status", status=500, count=1)
    calls = stack.stats()["me_calls"]
    j = b.status().json()
    check(j["connected"] is True and j["user"] is None, f"status while identity unknown: {j}")
    check(j.get("identity_pending") is True, "status does not say the identity is pending")
    for _ in range(5):  # polling right after a failure does not call FreshBooks again
        check(b.status().json()["user"] is None, "resolved during the back-off")
    check(stack.stats()["me_calls"] == calls + 1, "users/me asked again during the back-off")
    j = wait_until(lambda: (lambda s: s if s["user"] else None)(b.status().json()), timeout=8,
                   what="the identity to be fetched again after the back-off")
    check(j["connected"] is True and j["user"]["email"], f"identity not fetched again: {j}")
    check(j.get("identity_pending") is None, "still pending")


def test_redis_down_and_back(stack):
    b = connected_browser(stack)
    who = b.status().json()["user"]["email"]
    fresh = Browser(stack)
    _, link = fresh.start()
    callback = fresh.approve(link, email())
    stack.run("stop-redis")
    try:
        s = b.status()
        check(s.status == 503, f"/status with Redis down: {s.status}")
        c = b.get(stack.site("connect"))
        check(c.status == 503 and "Nothing was changed" in c.text, f"/connect with cookie: {c.status}")
        check(not c.headers_named("Set-Cookie"), "cookie replaced while Redis is down")
        anon = Browser(stack).get(stack.site("connect"))
        check(anon.status == 200 and anon.header("Set-Cookie"), "first visit fails while Redis is down")
        cb = fresh.get(stack.local(callback))
        check(cb.status == 503, f"callback with Redis down: {cb.status}")
        check(request("GET", stack.site("healthz")).status == 200, "healthz")
        check(request("GET", stack.site("readyz")).status == 503, "readyz while Redis is down")
    finally:
        stack.run("start-redis")
    s = b.status()
    check(s.status == 200, f"first /status after Redis returns: {s.status}")
    check(s.json()["connected"] and s.json()["user"]["email"] == who, "connection lost")
    check(request("GET", stack.site("readyz")).status == 200, "readyz after Redis returns")


def test_unknown_path_and_wrong_method(stack):
    r = request("GET", stack.site("nope"))
    check(r.status == 404, f"unknown path {r.status}")
    r = request("GET", stack.site("connect/extra"))
    check(r.status == 404, f"sub path {r.status}")
    r = request("POST", stack.site("connect"), b"", {"Content-Type": "application/x-www-form-urlencoded"})
    check(r.status == 405 and "GET" in (r.header("Allow") or ""), f"POST /connect {r.status}")
    r = request("DELETE", stack.site("status"))
    check(r.status == 405, f"DELETE /status {r.status}")
    r = request("GET", stack.site("disconnect"))
    check(r.status == 405 and r.header("Allow") == "POST", f"GET /disconnect {r.status}")
    r = request("HEAD", stack.site("connect"))
    check(r.status == 200 and r.body == b"", f"HEAD /connect {r.status}")


def test_hostile_input(stack):
    b = Browser(stack)
    b.get(stack.site("connect"))
    big = "A" * 60000
    probes = [
        f"callback?state={big}&code=x",
        f"callback?code={big}",
        f"connect?return_to=/{big}",
        "callback?state=%00%00&code=%00",
        "callback?state=abc%&code=%g0",
        "callback?state=a&state=b&code=c&code=d",
        "callback?error=access_denied&error=x",
        "callback?" + "&".join(f"p{i}=v" for i in range(3000)),
        "connect?return_to=%2F%2Fevil.example",
        "connect?return_to=/ok&return_to=/ok2",
        "status?x=%ff%fe",
        "connected?%%%%",
    ]
    for p in probes:
        r = b.get(stack.site(p))
        check(r.status < 500, f"{p[:60]}… answered {r.status}")
    junk_cookies = [
        "fbconnect_session=" + "x" * 43,
        "fbconnect_session=;;;===",
        "fbconnect_session=" + "A" * 8000,
        "a=b; fbconnect_session=\x01\x02; c",
        "fbconnect_session=%00" * 100,
        "=; =; fbconnect_session",
    ]
    for c in junk_cookies:
        r = request("GET", stack.site("status"), headers={"Cookie": c})
        check(r.status < 500, f"cookie {c[:30]!r} answered {r.status}")
        r = request("GET", stack.site("connect"), headers={"Cookie": c})
        check(r.status < 500, f"cookie {c[:30]!r} on /connect answered {r.status}")
    r = request("POST", stack.site("disconnect"), b"csrf=%zz" * 100,
                {"Content-Type": "application/x-www-form-urlencoded", "Cookie": junk_cookies[0]})
    check(r.status == 403, f"junk disconnect {r.status}")
    check(request("GET", stack.site("healthz")).status == 200, "daemon not healthy after hostile input")


def test_return_to(stack):
    b = Browser(stack)
    r = b.get(stack.site("connect?return_to=//evil.example/x"))
    check(r.status == 400, f"open redirect accepted: {r.status}")
    r = b.get(stack.site("connect?return_to=https://evil.example/"))
    check(r.status == 400, f"absolute return_to accepted: {r.status}")
    link, _ = b.authorize_link("connect?return_to=/invoices%3Fpage%3D2")
    callback = b.approve(link, email())
    r = b.get(stack.local(callback))
    check(r.status == 303 and r.header("Location") == "/invoices?page=2", f"return_to: {r.status} {r.header('Location')} {r.text[:300]}")


def test_kept_alive_connections_beyond_threads(stack):
    """64 concurrent requests over nginx's keep-alive pool with 16 worker threads."""
    def hit(_):
        return request("GET", stack.site("status")).status

    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        statuses = list(pool.map(hit, range(640)))
    check(all(s == 200 for s in statuses), f"statuses {set(statuses)}")


def test_base_path(stack):
    with stack.settings({
        "FBCONNECT_BASE_PATH": "/fb/",
        "FBCONNECT_REDIRECT_URI": f"http://127.0.0.1:{stack.http_port}/fb/callback",
    }):
        b = Browser(stack)
        r = b.get(stack.site("connect"))
        check(r.status == 200, f"/fb/connect {r.status}")
        check("Path=/fb/" in (r.header("Set-Cookie") or ""), f"cookie path {r.header('Set-Cookie')}")
        check(request("GET", f"http://127.0.0.1:{stack.http_port}/connect").status == 404, "/connect outside base")
        r = b.connect(email())
        check(r.status == 303 and r.header("Location") == "/fb/connected", f"callback {r.status} {r.header('Location')}")
        check(b.status().json()["connected"], "not connected under the base path")


def test_site_user_mode(stack):
    with stack.settings({"FBCONNECT_USER_PARAM": "TEST_SITE_USER"}):
        anon = Browser(stack)
        r = anon.get(stack.site("connect"))
        check(r.status == 403 and "sign in" in r.text.lower(), f"/connect without a site user: {r.status}")
        check(anon.get(stack.site("callback?state=x&code=y")).status == 403, "/callback without a site user")
        j = anon.status().json()
        check(j["connected"] is False, "status without a site user")
        alice = Browser(stack, site_user="alice-" + uuid.uuid4().hex[:6])
        r = alice.connect(email())
        check(r.status == 303, f"alice connect {r.status}")
        # Alice's connection follows her site account to another browser.
        other = Browser(stack, site_user=alice.site_user)
        check(other.status().json()["connected"], "site user's connection not found from another browser")
        # A state issued to carol, completed by bob in the same browser: 403.
        shared = Browser(stack, site_user="carol-" + uuid.uuid4().hex[:6])
        _, link = shared.start()
        callback = shared.approve(link, email())
        shared.site_user = "bob-" + uuid.uuid4().hex[:6]
        before = stack.stats()
        r = shared.get(stack.local(callback))
        check(r.status == 403, f"state of another site user: {r.status}")
        check(stack.stats()["exchanges"] == before["exchanges"], "code exchanged for another site user")


def test_sigterm_finishes_callback_in_flight(stack):
    """SIGTERM while a callback waits on the token endpoint: the callback completes."""
    import threading
    import fcgi
    b = Browser(stack)
    _, link = b.start()
    callback = b.approve(link, email())
    stack.fault("token", "slow", delay_ms=1200, count=1)
    pid = stack.fbconnect_pid()
    calls = stack.stats()["token_calls"]
    result = {}
    query = urllib.parse.urlsplit(callback).query
    cookie = "; ".join(f"{k}={v}" for k, v in b.cookies.items())

    def go():  # straight to this process's socket, so the request is surely its own
        c = fcgi.Connection(os.path.join(stack.dir, "fbconnect.sock"), timeout=20)
        result["r"] = c.request(fcgi.params("/callback", query=query, HTTP_COOKIE=cookie))
        c.close()

    t = threading.Thread(target=go)
    t.start()
    wait_until(lambda: stack.stats()["token_calls"] > calls, what="the token call to start")
    os.kill(pid, signal.SIGTERM)
    t.join(15)
    check(result.get("r") and result["r"][0] == 303,
          f"callback during SIGTERM: {result.get('r') and result['r'][0]}")
    new_cookie = result["r"][1].get("set-cookie", "")
    check(stack.cookie_name in new_cookie, "no new session cookie from the interrupted callback")

    wait_until(lambda: process_gone(pid), timeout=15, what="fbconnect to exit")
    check("level=info msg=stopped" in stack.log("fbconnect.log"), "no clean stop in the log")
    stack.run("start-fbconnect")
    b.cookies[stack.cookie_name] = new_cookie.split(";")[0].split("=", 1)[1]
    check(b.status().json()["connected"], "connection from the interrupted callback is missing")


def test_ttls(stack):
    b = connected_browser(stack)
    Browser(stack).start()
    session_key = "fbc:s:" + redis_name("session", b.session)
    pointer = stack.redis("GET", session_key)
    check(pointer.startswith("c:") and len(pointer.split("/")[1]) == 22,
          f"session {session_key} points to {pointer!r}")
    record = pointer.split("/")[0]
    ttl = int(stack.redis("TTL", session_key))
    check(2592000 - 120 < ttl <= 2592000, f"session TTL {ttl}")
    ttl = int(stack.redis("TTL", "fbc:" + record))
    check(2592000 - 120 < ttl <= 2592000, f"record TTL {ttl} (sessions only: it slides with them)")
    for k in stack.keys("fbc:st:*")[:5]:
        ttl = int(stack.redis("TTL", k))
        check(600 < ttl <= 1200, f"used-state marker TTL {ttl}")
    # Every key expires but site users' pointers, the records they point to (and those
    # records' owner indexes), a site user's event sequence and name, and the event stream's
    # keys (trimmed to the retention instead).
    site_user_records = {"fbc:" + stack.redis("GET", k).split("/")[0] for k in stack.keys("fbc:u:*")}
    for k in stack.keys("fbc:*"):
        if (k.startswith(("fbc:u:", "fbc:evseq:u:", "fbc:od:u:")) or k in site_user_records or
                k.replace("fbc:ro:", "fbc:", 1) in site_user_records or
                k in ("fbc:ev", "fbc:evdue", "fbc:evatt", "fbc:evfail", "fbc:evfaild")):
            continue
        check(int(stack.redis("TTL", k)) != -1, f"{k} never expires")
    # Values hold no token and no session id.
    raw = stack.redis("GET", "fbc:" + record)
    check(raw.startswith("r1:") and "eyJ" not in raw and "refresh" not in raw, "a token in clear in Redis")
    check(b.session not in " ".join(stack.keys("fbc:*")), "a session id in a key name")


def test_provider_certificate_is_verified(stack):
    """With the system trust store (or a CA that did not sign the sandbox) the exchange fails."""
    import subprocess
    other_ca = os.path.join(stack.dir, "other-ca")
    subprocess.run(["sh", os.path.join(os.path.dirname(__file__), "..", "..", "scripts", "sandbox-ca.sh"),
                    other_ca], check=True)
    for ca in (os.path.join(other_ca, "ca.pem"), None):
        overrides = {"FBCONNECT_CA_FILE": ca} if ca else {"FBCONNECT_CA_FILE": ""}
        with stack.settings(overrides):
            b = Browser(stack)
            _, link = b.start()
            r = b.get(stack.local(b.approve(link, email())))
            check(r.status == 502, f"untrusted provider certificate ({ca or 'system store'}): {r.status}")
            check(no_connection_for(stack, b), "stored a pair from an unverified provider")


def csrf_of(b, stack):
    page = b.get(stack.site("connect"))
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    check(m, "no csrf field on the connect page")
    return m.group(1)


def test_disconnect(stack):
    b = connected_browser(stack)
    bare = b.post(stack.site("disconnect"), {})
    check(bare.status == 403, f"POST with only the cookie: {bare.status}")
    wrong = b.post(stack.site("disconnect"), {"csrf": "A" * 48})
    check(wrong.status == 403, f"wrong csrf: {wrong.status}")
    other = connected_browser(stack)
    stolen = b.post(stack.site("disconnect"), {"csrf": csrf_of(other, stack)})
    check(stolen.status == 403, f"another session's csrf: {stolen.status}")
    check(b.status().json()["connected"], "a refused disconnect disconnected")
    before = stack.stats()
    csrf = csrf_of(b, stack)
    r = b.post(stack.site("disconnect"), {"csrf": csrf})
    check(r.status == 303 and r.header("Location") == "/connect?disconnected=1", f"disconnect {r.status} {r.header('Location')}")
    check(stack.stats()["revocations"] == before["revocations"] + 2, "refresh and access token not both revoked")
    check(not b.status().json()["connected"], "still connected after disconnect")
    page = b.get(stack.site(r.header("Location").lstrip("/")))
    check("FreshBooks confirmed" in page.text, "connect page does not say the revoke was confirmed")
    check('name="csrf"' not in page.text, "a Disconnect form while not connected")
    again = b.post(stack.site("disconnect"), {"csrf": csrf})
    check(again.status == 303 and again.header("Location") == "/connect", f"nothing to disconnect: {again.header('Location')}")


def test_disconnect_with_freshbooks_down(stack):
    b = connected_browser(stack)
    csrf = csrf_of(b, stack)
    stack.fault("revoke", "status", status=503)
    r = b.post(stack.site("disconnect"), {"csrf": csrf})
    check(r.status == 303 and r.header("Location") == "/connect?disconnected=0", f"{r.status} {r.header('Location')}")
    check(not b.status().json()["connected"], "not deleted locally when FreshBooks is down")
    page = b.get(stack.site("connect?disconnected=0"))
    check("couldn't reach FreshBooks" in page.text, "page does not say the revoke is unconfirmed")


def test_disconnect_cuts_off_every_session_for_good(stack):
    who = email()
    a = connected_browser(stack, who)
    b = connected_browser(stack, who)
    r = b.post(stack.site("disconnect"), {"csrf": csrf_of(b, stack)})
    check(r.status == 303, "disconnect")
    check(not a.status().json()["connected"], "the other session still reaches a disconnected pair")
    connected_browser(stack, who)  # someone connects the same FreshBooks user again
    check(not a.status().json()["connected"], "an old session came back to life with a new connect")


def test_head_does_not_run_the_callback(stack):
    b = Browser(stack)
    _, link = b.start()
    callback = b.approve(link, email())
    before = stack.stats()
    r = b._send("HEAD", stack.local(callback))
    check(r.status == 405, f"HEAD /callback: {r.status}")
    check(stack.stats()["exchanges"] == before["exchanges"], "HEAD spent the code")
    check(b.get(stack.local(callback)).status == 303, "the GET after it")
