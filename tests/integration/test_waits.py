"""Waiting is bounded by the request, never by a lock: a usable token is served at once
while someone else refreshes, cools down or holds an orphaned lock; without one a request
waits at most FBCONNECT_REFRESH_WAIT_MS (1.5 s) and gets 503 with Retry-After: 1.
invalid_client answers the same on every route: 200 while the token lasts, then 503,
nobody marked."""
import concurrent.futures
import time

from checks import check
from flows import auth, bearer, connect_expiring, email, works_at_freshbooks
from forge import redis_name
from web import Browser


WAIT_S = 1.5  # FBCONNECT_REFRESH_WAIT_MS's default


def record_of(stack, b):
    pointer = stack.redis("GET", "fbc:s:" + redis_name("session", b.session))
    check(pointer.startswith("c:"), f"no pointer for the browser: {pointer!r}")
    return pointer.split("/")[0]


def orphan_lock(stack, b, ms=15000):
    """A lock whose holder vanished (a crash, a failover): nobody will release it."""
    check(stack.redis("SET", f"fbc:lock:{record_of(stack, b)}", "vanished-holder", "PX", str(ms))
          == "OK", "could not plant the lock")


def timed(fn):
    t0 = time.monotonic()
    r = fn()
    return r, time.monotonic() - t0


def concurrently(n, fn):
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as pool:
        return list(pool.map(lambda _: timed(fn), range(n)))


def test_orphaned_lock_with_a_usable_token(stack):
    """Before: each of three /auth calls took ~15 s (the lock's TTL).  Now: at once."""
    b = connect_expiring(stack)  # 200 s left: in the refresh margin, still usable
    orphan_lock(stack, b)
    before = stack.stats()
    results = concurrently(3, lambda: auth(stack, b))
    for r, took in results:
        check(r.status == 200, f"/auth under an orphaned lock: {r.status}")
        check(took < 0.5, f"/auth held {took:.2f}s by a lock whose holder vanished")
        check(works_at_freshbooks(stack, bearer(r)), "the served token does not work")
    check(stack.stats()["refreshes"] == before["refreshes"], "a refresh under someone else's lock")
    print(f"     # orphaned lock, usable token: {max(t for _, t in results):.3f}s at most", flush=True)


def test_orphaned_lock_without_a_usable_token(stack):
    b = connect_expiring(stack, expires_in=3)  # under the 5 s slack: not usable
    orphan_lock(stack, b)
    results = concurrently(3, lambda: auth(stack, b))
    for r, took in results:
        check(r.status == 503, f"/auth with no usable token under an orphaned lock: {r.status}")
        check(r.header("Retry-After") == "1", f"Retry-After {r.header('Retry-After')!r}")
        check(took < WAIT_S + 1.0, f"/auth waited {took:.2f}s (bound {WAIT_S + 1.0}s)")
    check(b.status().json()["reconnect_required"] is False, "marked for someone else's lock")
    # The lock is never broken: it runs out by its TTL, then the user is served again.
    stack.redis("PEXPIRE", f"fbc:lock:{record_of(stack, b)}", "1")
    r = auth(stack, b)
    check(r.status == 200 and works_at_freshbooks(stack, bearer(r)), f"after the lock ran out: {r.status}")
    print(f"     # orphaned lock, no usable token: 503 in {max(t for _, t in results):.3f}s at most",
          flush=True)


def test_slow_refresh_elsewhere_does_not_hold_usable_tokens(stack):
    """One request performs a slow refresh (1.8 s at FreshBooks; the tests' HTTP timeout is
    2 s) on one of the two processes; every other request with the still-usable token, on
    either process, is answered at once."""
    b = connect_expiring(stack)
    stack.fault("token", "slow", delay_ms=1800, count=1)
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        leader = pool.submit(timed, lambda: auth(stack, b))
        time.sleep(0.3)  # the leader holds the lock now
        check(stack.keys("fbc:lock:*"), "the slow refresh holds no lock")
        others = [pool.submit(timed, lambda: auth(stack, b)) for _ in range(20)]
        results = [f.result() for f in others]
        lead_r, lead_t = leader.result()
    check(lead_r.status == 200, f"the refreshing request: {lead_r.status}")
    check(lead_t >= 1.6, f"the refreshing request took {lead_t:.2f}s: the fault did not hold it")
    for r, took in results:
        check(r.status == 200, f"/auth during a slow refresh: {r.status}")
        check(took < 0.5, f"/auth with a usable token held {took:.2f}s by a refresh elsewhere")
    print(f"     # slow refresh elsewhere: others answered in {max(t for _, t in results):.3f}s at most",
          flush=True)


def test_someone_elses_refresh_is_waited_for_at_most_the_bound(stack):
    """No usable token, a slow refresh under way: waiters give up after the bound with 503
    Retry-After: 1; the one performing it gets the new token."""
    b = connect_expiring(stack, expires_in=3)
    stack.fault("token", "slow", delay_ms=1900, count=1)  # longer than the wait, within 2 s
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        leader = pool.submit(timed, lambda: auth(stack, b))
        time.sleep(0.3)
        waiters = [pool.submit(timed, lambda: auth(stack, b)) for _ in range(6)]
        results = [f.result() for f in waiters]
        lead_r, _ = leader.result()
    for r, took in results:
        check(r.status == 503 and r.header("Retry-After") == "1",
              f"waiter: {r.status} Retry-After {r.header('Retry-After')!r}")
        check(WAIT_S - 0.2 < took < WAIT_S + 1.0, f"waiter answered after {took:.2f}s")
    check(lead_r.status == 200 and works_at_freshbooks(stack, bearer(lead_r)), "the refresher's token")
    check(bearer(auth(stack, b)) == bearer(lead_r), "the refreshed pair is not the one stored")


def test_invalid_client_answered_one_way(stack):
    """Browser sessions: /auth (and the API proxy on it) and /status."""
    b = connect_expiring(stack)
    b2 = connect_expiring(stack, expires_in=3)
    stack.fault("token", "invalid_client")
    # A usable token: served, however many refreshes FreshBooks refuses.
    for _ in range(4):  # nginx spreads these over both processes
        r = auth(stack, b)
        check(r.status == 200, f"/auth, invalid_client, usable token: {r.status}")
    me = b.get(stack.site("api/auth/api/v1/users/me"))
    check(me.status == 200, f"API proxy, invalid_client, usable token: {me.status}")
    j = b.status().json()
    check(j["connected"] and not j["reconnect_required"], f"status {j}")
    # No usable token: 503 with Retry-After, every time, on both processes; nobody marked.
    for _ in range(4):
        r = auth(stack, b2)
        check(r.status == 503 and r.header("Retry-After") == "1",
              f"invalid_client, no usable token: {r.status} {r.header('Retry-After')!r}")
    me = b2.get(stack.site("api/auth/api/v1/users/me"))
    check(me.status == 503 and me.header("Retry-After") == "1",
          f"API proxy, invalid_client, no usable token: {me.status} {me.header('Retry-After')!r}")
    j = b2.status().json()
    check(j["connected"] and not j["reconnect_required"], f"marked for the app's problem: {j}")
    check("invalid_client" in stack.log("fbconnect.log"), "invalid_client not logged")


def test_invalid_client_internal_token(stack):
    """Site users: /internal/token answers as /auth does."""
    with stack.settings({"FBCONNECT_USER_PARAM": "TEST_SITE_USER"}):
        results = {}
        for name, expires_in in (("usable", 200), ("expired", 3)):
            user = f"ic-{name}-" + email()
            b = Browser(stack, site_user=user)
            stack.sandbox("config", {"expires_in": expires_in})
            try:
                check(b.connect(email()).status == 303, "connect")
            finally:
                stack.sandbox("config", {"expires_in": 43200})
            results[name] = (b, user)
        stack.fault("token", "invalid_client")
        b, user = results["usable"]
        for _ in range(4):
            r = stack.internal_get(f"internal/token?user={user}")
            check(r.status == 200 and r.json()["access_token"], f"/internal/token, usable: {r.status}")
        b, user = results["expired"]
        for _ in range(4):
            r = stack.internal_get(f"internal/token?user={user}")
            check(r.status == 503 and r.header("Retry-After") == "1",
                  f"/internal/token, expired: {r.status} {r.header('Retry-After')!r}")
        for b, _ in results.values():
            j = b.status().json()
            check(j["connected"] and not j["reconnect_required"], f"marked for the app's problem: {j}")


def test_a_release_redis_did_not_take_is_retried(stack):
    """Redis goes away while a refresh holds the lock: the release fails, the refreshed pair
    is kept in memory, and once Redis is back (with the lock in its saved data) the release
    is retried in the background — the lock does not live out its TTL."""
    import threading
    from checks import wait_until
    b = connect_expiring(stack)
    record = record_of(stack, b)
    stack.fault("token", "slow", delay_ms=1200, count=1)
    result = {}
    t = threading.Thread(target=lambda: result.update(r=auth(stack, b)))
    t.start()
    wait_until(lambda: stack.keys(f"fbc:lock:{record}"), what="the refresh to take its lock")
    ttl_ms = int(stack.redis("PTTL", f"fbc:lock:{record}"))
    stack.run("stop-redis")  # saves its data, lock included
    t.join(20)
    check(result["r"].status == 200, f"the refreshing request: {result['r'].status}")
    stack.run("start-redis")
    back = time.monotonic()
    wait_until(lambda: not stack.keys(f"fbc:lock:{record}"), timeout=ttl_ms / 1000,
               what="the background release of the lock")
    gone = time.monotonic() - back
    check(gone < 2.0, f"the lock lived {gone:.1f}s after Redis came back (TTL {ttl_ms} ms)")
    # (a Redis still loading its data answers LOADING: 503 until it has)
    after = wait_until(lambda: (lambda r: r if r.status == 200 else None)(auth(stack, b)), timeout=10,
                       what="/auth once Redis has loaded its data")
    check(bearer(after) == bearer(result["r"]), "the kept pair was not stored")
    print(f"     # lock released {gone:.2f}s after Redis came back (its TTL had {ttl_ms} ms)",
          flush=True)
