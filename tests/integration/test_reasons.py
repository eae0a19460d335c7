"""Reconnect reasons: why a connection needs connecting again, in /status, the 409 of
/internal/token, the connect page's words and /metrics — refresh_refused (FreshBooks refused
the refresh token) and scopes_changed (FBCONNECT_SCOPES asks for more than the pair was
granted: found at use, without asking FreshBooks)."""
import uuid

from checks import check
from flows import auth, connect_expiring, email, metrics, series
from web import Browser, request


def marks(stack, reason):
    m = metrics(stack)
    check(f'fbconnect_reconnect_marks_total{{reason="{reason}"}}' in m, f"no reconnect marks metric for {reason}")
    return series(m, "fbconnect_reconnect_marks_total", reason=reason)


def test_refresh_refused(stack):
    b = connect_expiring(stack)
    before = marks(stack, "refresh_refused")
    stack.fault("token", "invalid_grant", count=1)
    check(auth(stack, b).status == 401, "/auth after invalid_grant")
    j = b.status().json()
    check(j["reconnect_required"] and j["reconnect_reason"] == "refresh_refused", f"status {j}")
    check(marks(stack, "refresh_refused") == before + 1, "mark not counted")
    page = b.get(stack.site("connect")).text
    check("no longer accepts it" in page and "more access" not in page, "connect page words")
    check(b.connect(j["user"]["email"]).status == 303, "reconnect")
    j = b.status().json()
    check(j["connected"] and j["reconnect_reason"] is None, f"a new connect kept the mark: {j}")


def test_scopes_changed(stack):
    narrow = "user:profile:read user:clients:read"
    wide = narrow + " user:projects:read"
    with stack.settings({"FBCONNECT_SCOPES": narrow, "FBCONNECT_USER_PARAM": "TEST_SITE_USER"}):
        b = Browser(stack, site_user="scopes-" + uuid.uuid4().hex[:6])
        check(b.connect(email()).status == 303, "connect")
        j = b.status().json()
        check(j["connected"] and set(j["scope"].split()) == set(narrow.split()), f"granted {j['scope']}")
        # Asking for the same scopes in another order, or fewer, is no change.
        stack.restart_fbconnect({"FBCONNECT_SCOPES": "user:clients:read user:profile:read",
                                 "FBCONNECT_USER_PARAM": "TEST_SITE_USER"})
        check(b.status().json()["connected"], "the same scopes reordered marked the connection")
        stack.restart_fbconnect({"FBCONNECT_SCOPES": wide, "FBCONNECT_USER_PARAM": "TEST_SITE_USER"})
        before, stats = marks(stack, "scopes_changed"), stack.stats()
        j = b.status().json()
        check(j["reconnect_required"] and not j["connected"] and j["reconnect_reason"] == "scopes_changed",
              f"status after FBCONNECT_SCOPES grew: {j}")
        after = stack.stats()
        check(after["token_calls"] == stats["token_calls"] and after.get("me_calls") == stats.get("me_calls"),
              "FreshBooks was asked to find it")
        check(marks(stack, "scopes_changed") == before + 1, "mark not counted")
        check(auth(stack, b).status == 401, "/auth with too few scopes")
        r = request("GET", stack.internal(f"internal/token?user={b.site_user}"))
        check(r.status == 409 and r.json() == {"reconnect_required": True, "reconnect_reason": "scopes_changed"},
              f"/internal/token: {r.status} {r.text}")
        page = b.get(stack.site("connect")).text
        check("more access" in page and "Reconnect to FreshBooks" in page, "connect page words")
        check(marks(stack, "scopes_changed") == before + 1, "marked again at every use")
        # Connecting again grants the wider scopes and clears the mark.
        check(b.connect(j["user"]["email"]).status == 303, "reconnect")
        j = b.status().json()
        check(j["connected"] and j["reconnect_reason"] is None and "user:projects:read" in j["scope"],
              f"after reconnect: {j}")


def test_fewer_scopes_granted_at_connect_stores_nothing(stack):
    """FreshBooks granting less than FBCONNECT_SCOPES asks: stored, the pair would be marked
    scopes_changed at once; instead the callback gives it back and says so."""
    import urllib.parse
    wide = "user:profile:read user:clients:read"
    with stack.settings({"FBCONNECT_SCOPES": wide}):
        b = Browser(stack)
        _, link = b.start()
        u = urllib.parse.urlsplit(link)
        q = dict(urllib.parse.parse_qsl(u.query))
        q["scope"] = "user:profile:read"  # what the person's grant came to
        before = stack.stats()
        r = b.get(stack.local(b.approve(urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q))),
                                        email())))
        check(r.status == 502 and "less access" in r.text, f"callback: {r.status} {r.text[:300]}")
        check(not b.status().json()["connected"], "stored anyway")
        check(stack.stats()["revocations"] >= before["revocations"] + 2, "the pair was not given back")
        check("fewer scopes than FBCONNECT_SCOPES" in stack.log("fbconnect.log"), "not logged")
