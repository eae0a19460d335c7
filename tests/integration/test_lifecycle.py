"""The token lifecycle: /auth and the API proxy, single-flight refresh across two fbconnect
processes, FreshBooks failing during refresh, /internal/token, internal-route guards."""
import concurrent.futures
import json
import threading
import time
import uuid

from checks import check, wait_until
from flows import auth, bearer, connect_expiring, email, works_at_freshbooks
from web import Browser, request


def test_auth_answers(stack):
    b = Browser(stack)
    r = b.connect(email())
    check(r.status == 303, "connect")
    a = auth(stack, b)
    check(a.status == 200, f"/auth {a.status}")
    token = bearer(a)
    check(works_at_freshbooks(stack, token), "the token does not work at FreshBooks")
    st = b.status().json()
    check(a.header("X-FreshBooks-Account-Id") == st["businesses"][0]["account_id"], "account id")
    for method in ("POST", "DELETE", "PUT"):
        r = request(method, stack.internal("auth"), b"", {"Cookie": f"{stack.cookie_name}={b.session}"})
        check(r.status == 200, f"/auth with {method}: {r.status}")
    check(stack.internal_get("auth").status == 401, "/auth without a session")
    stranger = Browser(stack)
    stranger.get(stack.site("connect"))
    check(auth(stack, stranger).status == 401, "/auth for a session never connected")
    # Internal routes do not exist from the public side.
    check(b.get(stack.site("auth")).status == 404, "/auth reachable from the public")
    check(request("GET", stack.site("internal/token?user=x")).status == 404, "/internal/token public")
    check("Bearer" not in b.get(stack.site("status")).text, "token in /status")


def test_api_proxy(stack):
    b = Browser(stack)
    check(b.connect(email()).status == 303, "connect")
    me = b.get(stack.site("api/auth/api/v1/users/me"))
    check(me.status == 200 and me.json()["response"]["email"], f"proxied users/me: {me.status} {me.text[:200]}")
    acct = b.status().json()["businesses"][0]["account_id"]
    path = f"api/accounting/account/{acct}/users/clients"
    r = b.get(stack.site(path))
    check(r.status == 200, f"proxied GET {r.status} {r.text[:200]}")
    j = r.json()["response"]["result"]
    check(j["received_cookie"] is False, "the site's cookie reached FreshBooks")
    check(j["api_version"] == "alpha", "Api-Version not sent")
    r = b.post(stack.site(path), {"x": "1"})
    check(r.status == 403, f"POST without the custom header: {r.status}")
    r = b.post(stack.site(path), {"x": "1"}, headers={"X-FBConnect-Request": "1"})
    check(r.status == 200 and r.json()["response"]["result"]["created"], f"POST with the header: {r.status}")
    r = b._send("PATCH", stack.site(path), b"{}", {"X-FBConnect-Request": "1"})
    check(r.status == 405, f"PATCH: {r.status}")
    check(Browser(stack).get(stack.site("api/auth/api/v1/users/me")).status == 401, "proxy without a session")
    r = b.get(stack.site("api/some/other/path"))
    check(r.status == 404, f"a path outside the allowed prefixes: {r.status}")


def storm(stack, n=100, slow_ms=0):
    b = connect_expiring(stack)
    before = stack.stats()
    if slow_ms:
        stack.fault("token", "slow", delay_ms=slow_ms, count=1)
    cookies = dict(b.cookies)

    def hit(_):
        t0 = time.monotonic()
        r = stack.internal_get("auth", cookies=cookies)
        return r.status, r.header("X-FreshBooks-Authorization"), time.monotonic() - t0

    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        results = list(pool.map(hit, range(n)))
    after = stack.stats()
    statuses = {s for s, _, _ in results}
    tokens = {t[7:] for _, t, _ in results}
    check(statuses == {200}, f"statuses {statuses}")
    check(after["refreshes"] - before["refreshes"] == 1,
          f"{after['refreshes'] - before['refreshes']} refreshes at the provider for one identity")
    check(after["spent_refresh_presented"] == before["spent_refresh_presented"],
          "the provider saw a spent refresh token")
    # The old token is still usable: it is served at once while the refresh is in flight;
    # everything else is the one refreshed token, the one stored.
    new = bearer(auth(stack, b))
    check(new in tokens, "the stored token was not handed out during the storm")
    check(len(tokens - {new}) <= 1, f"{len(tokens)} different tokens handed out")
    for token in tokens:
        check(works_at_freshbooks(stack, token), "a handed-out token does not work")
    exp = b.status().json()["expires_at"]
    check(exp > time.time() + 40000, f"stored pair not the refreshed one (expires_at {exp})")
    if slow_ms:
        # Only the request performing the refresh waits for FreshBooks.
        slow = sorted(d for _, _, d in results)
        check(slow[-2] < slow_ms / 1000 * 0.8,
              f"requests with a usable token were held by a slow refresh: {slow[-5:]}")
    return results


def test_refresh_storm_two_processes(stack):
    for _ in range(5):
        storm(stack)


def test_refresh_storm_slow_provider(stack):
    storm(stack, slow_ms=1500)


def test_two_browsers_share_refreshed_pair(stack):
    who = email()
    one = connect_expiring(stack, who)
    two = connect_expiring(stack, who)
    before = stack.stats()
    t1 = bearer(auth(stack, one))
    t2 = bearer(auth(stack, two))
    check(t1 == t2, "the second browser got a different token")
    check(stack.stats()["refreshes"] == before["refreshes"] + 1, "two refreshes for one identity")
    check(works_at_freshbooks(stack, t1), "token dead")
    for b in (one, two):
        check(b.status().json()["connected"], "a browser lost the connection")


def test_invalid_grant_marks_reconnect(stack):
    b = connect_expiring(stack)
    stack.fault("token", "invalid_grant", count=1)
    r = auth(stack, b)
    check(r.status == 401, f"/auth after invalid_grant: {r.status}")
    j = b.status().json()
    check(j["reconnect_required"] is True and j["connected"] is False, f"status {j}")
    check(j["reconnect_reason"] == "refresh_refused", f"reason {j['reconnect_reason']}")
    page = b.get(stack.site("connect"))
    check("Reconnect to FreshBooks" in page.text and "no longer accepts it" in page.text, "no reconnect prompt")
    before = stack.stats()
    check(auth(stack, b).status == 401, "second /auth")
    check(stack.stats()["token_calls"] == before["token_calls"], "a marked connection refreshed again")
    # Connecting again clears it.
    again = b.connect(j["user"]["email"])
    check(again.status == 303 and b.status().json()["connected"], "reconnect did not clear the mark")


def test_invalid_client_marks_nobody(stack):
    b = connect_expiring(stack, expires_in=3)  # unusable token: a refresh is required
    stack.fault("token", "invalid_client")
    r = auth(stack, b)
    check(r.status == 503, f"/auth with invalid_client: {r.status}")
    j = b.status().json()
    check(j["reconnect_required"] is False, "user marked for the app's misconfiguration")
    check("invalid_client" in stack.log("fbconnect.log"), "invalid_client not logged")


def test_provider_down_during_refresh(stack):
    b = connect_expiring(stack)  # still valid for 200 s
    stack.fault("token", "status", status=503)
    before = stack.stats()
    r = auth(stack, b)
    check(r.status == 200, f"/auth with FreshBooks down and a still-valid token: {r.status}")
    old = bearer(r)
    check(works_at_freshbooks(stack, old), "the kept token is dead")
    calls = stack.stats()["token_calls"]
    for _ in range(3):
        check(bearer(auth(stack, b)) == old, "token changed while FreshBooks is down")
    check(stack.stats()["token_calls"] == calls, "no cooldown: FreshBooks asked again at once")
    stack.fault("token", "none")
    new = wait_until(lambda: (lambda t: t if t != old else None)(bearer(auth(stack, b))), timeout=10,
                     what="a refresh after the cooldown")
    check(works_at_freshbooks(stack, new), "new token dead")
    check(stack.stats()["spent_refresh_presented"] == before["spent_refresh_presented"], "spent token")
    # An expired token with FreshBooks down: 503, nothing marked.
    b2 = connect_expiring(stack, expires_in=3)
    stack.fault("token", "slow", delay_ms=3000)
    r = auth(stack, b2)
    check(r.status == 503, f"/auth with an expired token and FreshBooks timing out: {r.status}")
    check(b2.status().json()["reconnect_required"] is False, "marked on a timeout")


def test_refreshed_pair_survives_a_redis_blip(stack):
    b = connect_expiring(stack)
    stack.fault("token", "slow", delay_ms=1500, count=1)
    calls = stack.stats()["token_calls"]
    result = {}

    def go():
        result["r"] = auth(stack, b)

    t = threading.Thread(target=go)
    t.start()
    wait_until(lambda: stack.stats()["token_calls"] > calls, what="the refresh to start")
    stack.run("stop-redis")
    t.join(20)
    stack.run("start-redis")
    r = result["r"]
    check(r.status == 200, f"/auth whose store failed: {r.status}")
    token = bearer(r)
    check(works_at_freshbooks(stack, token), "the pair kept in memory is not the live one")
    wait_until(lambda: b.status().status == 200 and b.status().json()["expires_at"] > time.time() + 40000,
               timeout=15, what="the kept pair to be stored once Redis is back")
    check(bearer(auth(stack, b)) == token, "a different token after the kept pair was stored")


def csrf_of(stack, b):
    import re
    m = re.search(r'name="csrf" value="([^"]+)"', b.get(stack.site("connect")).text)
    check(m, "no csrf field on the connect page")
    return m.group(1)


def test_reconnect_during_a_refresh_keeps_the_new_connection(stack):
    """A refresh in flight while its connection is disconnected and connected again: the
    refreshed pair belongs to the old connection; it is revoked, never stored over the new."""
    who = email()
    old = connect_expiring(stack, who)
    # FreshBooks spends the refresh token at once and answers late (under the tests' 2 s
    # HTTP timeout).  The reconnect below kills that new pair at FreshBooks too.
    stack.fault("token", "late", delay_ms=1500, count=1)
    before = stack.stats()
    result = {}
    t = threading.Thread(target=lambda: result.update(r=auth(stack, old)))
    t.start()
    wait_until(lambda: stack.keys("fbc:lock:*"), what="the refresh to take its lock")
    other = Browser(stack)
    check(other.connect(who).status == 303, "second browser connects")
    r = other.post(stack.site("disconnect"), {"csrf": csrf_of(stack, other)})
    check(r.status == 303, f"disconnect {r.status}")
    check(other.connect(who).status == 303, "connects again")
    token = bearer(auth(stack, other))
    t.join(20)
    check(result["r"].status != 200, f"the disconnected session got a token: {result['r'].status}")
    check(bearer(auth(stack, other)) == token,
          "the old connection's refreshed pair replaced the new connection's")
    check(works_at_freshbooks(stack, token), "the new connection's token is dead")
    wait_until(lambda: stack.stats()["revocations"] >= before["revocations"] + 4, timeout=10,
               what="the refreshed pair of the old connection to be revoked")


def test_internal_token(stack):
    with stack.settings({"FBCONNECT_USER_PARAM": "TEST_SITE_USER"}):
        user = "backend-" + uuid.uuid4().hex[:6]
        b = Browser(stack, site_user=user)
        stack.sandbox("config", {"expires_in": 200})
        try:
            check(b.connect(email()).status == 303, "connect")
        finally:
            stack.sandbox("config", {"expires_in": 43200})
        r = request("GET", stack.internal(f"internal/token?user={user}"))
        check(r.status == 200, f"/internal/token {r.status} {r.text[:200]}")
        j = r.json()
        check(set(j) == {"access_token", "expires_at", "account_ids", "business"}, f"fields {set(j)}")
        check(j["business"] and j["business"]["account_id"] == j["account_ids"][0], "the one business, chosen")
        check(j["expires_at"] > time.time() + 40000, "not refreshed although close to expiry")
        check(works_at_freshbooks(stack, j["access_token"]) and len(j["account_ids"]) == 1, "token/account ids")
        check(r.header("Cache-Control") == "no-store", "cacheable token")
        check(request("GET", stack.internal("internal/token")).status == 400, "without user")
        check(request("GET", stack.internal("internal/token?user=nobody-" + uuid.uuid4().hex)).status == 404,
              "unknown user")
        check(request("GET", stack.site(f"internal/token?user={user}")).status == 404, "public access")
        # /auth for the site user (any browser of theirs).
        other = Browser(stack, site_user=user)
        check(request("GET", stack.internal("auth"), headers={"X-Test-Site-User": user}).status in (200, 401),
              "auth")
        b2 = Browser(stack, site_user="marked-" + uuid.uuid4().hex[:6])
        stack.sandbox("config", {"expires_in": 200})
        try:
            check(b2.connect(email()).status == 303, "connect 2")
        finally:
            stack.sandbox("config", {"expires_in": 43200})
        stack.fault("token", "invalid_grant", count=1)
        r = request("GET", stack.internal(f"internal/token?user={b2.site_user}"))
        check(r.status == 409 and r.json() == {"reconnect_required": True, "reconnect_reason": "refresh_refused"},
              f"reconnect required: {r.status} {r.text}")
        del other


def test_internal_token_needs_user_param(stack):
    r = request("GET", stack.internal("internal/token?user=x"))
    check(r.status == 404, f"/internal/token without FBCONNECT_USER_PARAM: {r.status}")


def test_worker_caches_never_serve_a_replaced_connection(stack):
    """Workers cache owners' pointers and opened records; a disconnect and a new connect of
    the same FreshBooks identity (a new record, version 1 again) must show at once."""
    import re as _re
    who = email()
    one = Browser(stack)
    check(one.connect(who).status == 303, "connect")
    old = {bearer(auth(stack, one)) for _ in range(40)}  # warm every worker's cache
    check(len(old) == 1, "one token")
    page = one.get(stack.site("connect"))
    csrf = _re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    check(one.post(stack.site("disconnect"), {"csrf": csrf}).status == 303, "disconnect")
    check(all(auth(stack, one).status == 401 for _ in range(20)), "a disconnected session still authorized")
    two = Browser(stack)
    check(two.connect(who).status == 303, "connect again")
    new = {bearer(auth(stack, two)) for _ in range(40)}
    check(len(new) == 1 and new != old, f"stale tokens served: {len(new)} distinct, old reused: {new == old}")
    check(works_at_freshbooks(stack, new.pop()), "the token served is not the live one")
