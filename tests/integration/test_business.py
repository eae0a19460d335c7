"""Which books: one business chosen at connect, several sent to the chooser, none; the
choice belongs to the owner (session or site user), survives a reconnect, is cleared when
FreshBooks stops listing the business; /auth and /internal/token say only the chosen one;
the API proxy's business-relative paths."""
import html
import re
import urllib.parse
import uuid

from checks import check, wait_until
from flows import auth, email
from web import Browser, request

ROLE_WORDS = {"owner": "Owner", "client": "Client", "admin": "Admin", "business_employee": "Team member"}


def chooser(b, stack, return_to=None):
    """GET /business: (page, csrf, [(account_id, current?)])."""
    path = "business" + (f"?return_to={urllib.parse.quote(return_to, safe='')}" if return_to else "")
    page = b.get(stack.site(path))
    check(page.status == 200, f"/business {page.status} {page.text[:200]}")
    m = re.search(r'name="csrf" value="([^"]+)"', page.text)
    check(m, "no csrf on the chooser")
    buttons = re.findall(r'<button type="submit" name="account_id" value="([^"]+)"( aria-current="true")?',
                         page.text)
    return page, html.unescape(m.group(1)), [(html.unescape(v), bool(cur)) for v, cur in buttons]


def choose(b, stack, account_id, csrf, return_to=None):
    form = {"csrf": csrf, "account_id": account_id}
    if return_to:
        form["return_to"] = return_to
    return b.post(stack.site("business"), form)


def business_headers(r):
    return {h: r.header(h) for h in ("X-FreshBooks-Account-Id", "X-FreshBooks-Business-Id",
                                     "X-FreshBooks-Business-Uuid")}


def test_one_business_is_chosen_at_connect(stack):
    b = Browser(stack)
    r = b.connect(email(), businesses=1)
    check(r.status == 303 and r.header("Location") == "/connected", f"callback {r.status} {r.header('Location')}")
    j = b.status().json()
    check(len(j["businesses"]) == 1, f"businesses {j['businesses']}")
    biz = j["businesses"][0]
    check(set(biz) == {"id", "uuid", "name", "account_id", "role"}, f"business fields {set(biz)}")
    check(biz["role"] == "owner" and len(biz["uuid"]) == 36 and biz["id"] > 0, f"business {biz}")
    check(j["business"] == biz and j["reconnect_reason"] is None, f"chosen {j['business']}")
    me = stack.provider("GET", "/auth/api/v1/users/me",
                        headers={"Authorization": "Bearer " + auth(stack, b).header("X-FreshBooks-Authorization")[7:]})
    membership = me.json()["response"]["business_memberships"][0]
    check(membership["id"] != biz["id"] and membership["business"]["id"] == biz["id"],
          "the membership id was taken for the business id")
    check(business_headers(auth(stack, b)) == {"X-FreshBooks-Account-Id": biz["account_id"],
                                               "X-FreshBooks-Business-Id": str(biz["id"]),
                                               "X-FreshBooks-Business-Uuid": biz["uuid"]}, "auth headers")
    page = b.get(stack.site("connect")).text
    check("Working with" in page and biz["name"] in html.unescape(page), "connect page: the chosen business")
    check("Change business" not in page, "a 'Change business' link with nothing to change")


def test_several_businesses_go_to_the_chooser_first(stack):
    b = Browser(stack)
    _, link = b.start("connect?return_to=/invoices%3Fpage%3D2")
    r = b.get(stack.local(b.approve(link, email(), businesses=3)))
    check(r.status == 303, f"callback {r.status}")
    check(r.header("Location") == "/business?return_to=%2Finvoices%3Fpage%3D2",
          f"not sent to the chooser: {r.header('Location')}")
    j = b.status().json()
    check(j["connected"] and j["business"] is None and len(j["businesses"]) == 3, f"status {j}")
    check([x["role"] for x in j["businesses"]] == ["owner", "client", "admin"], "roles")
    check(len({x["id"] for x in j["businesses"]}) == 3, "business ids")
    a = auth(stack, b)
    check(a.status == 200 and business_headers(a) == dict.fromkeys(business_headers(a)),
          f"/auth guessed a business: {business_headers(a)}")
    check("Choose the business" in b.get(stack.site("connect")).text, "connect page: no prompt to choose")

    page, csrf, buttons = chooser(b, stack, "/invoices?page=2")
    check([v for v, _ in buttons] == [x["account_id"] for x in j["businesses"]], f"buttons {buttons}")
    check(not any(cur for _, cur in buttons), "a business marked current before any choice")
    for x in j["businesses"]:
        check(x["name"] in html.unescape(page.text) and ROLE_WORDS[x["role"]] in page.text, f"{x['name']} in words")
    check('name="return_to" value="/invoices?page=2"' in page.text, "return_to not kept through the form")
    check('method="post" action="/business"' in page.text, "form action")
    csp = page.header("Content-Security-Policy") or ""
    check("script-src" not in csp and "default-src 'none'" in csp and "<script" not in page.text, "strict CSP, no JS")
    check('name="viewport"' in page.text, "not made for phones")

    second = j["businesses"][1]
    before = b.status().json()
    r = b.post(stack.site("business"), {"account_id": second["account_id"]})
    check(r.status == 403, f"POST without csrf: {r.status}")
    r = choose(b, stack, second["account_id"], "x" + csrf[1:])
    check(r.status == 403, f"POST with a wrong csrf: {r.status}")
    r = choose(b, stack, "not-mine", csrf)
    check(r.status == 400, f"unknown account_id: {r.status}")
    check(b.status().json() == before, "a refused choice changed something")
    r = choose(b, stack, second["account_id"], csrf, "/invoices?page=2")
    check(r.status == 303 and r.header("Location") == "/invoices?page=2", f"choice {r.status} {r.header('Location')}")
    j = b.status().json()
    check(j["business"] == second, f"chosen {j['business']}")
    check(business_headers(auth(stack, b))["X-FreshBooks-Business-Id"] == str(second["id"]), "auth: chosen id")
    _, _, buttons = chooser(b, stack)
    check([cur for _, cur in buttons] == [False, True, False], f"current marked: {buttons}")
    page = b.get(stack.site("connect")).text
    check("Working with" in page and second["name"] in html.unescape(page) and "Change business" in page,
          "connect page: chosen business and a change link")
    r = choose(b, stack, j["businesses"][0]["account_id"], csrf)
    check(r.status == 303 and r.header("Location") == "/connected", "changed again, no return_to")
    check(b.status().json()["business"]["id"] == j["businesses"][0]["id"], "change not stored")


def test_no_business(stack):
    b = Browser(stack)
    r = b.connect(email(), businesses=0)
    check(r.status == 303 and r.header("Location") == "/connected", f"callback {r.status} {r.header('Location')}")
    j = b.status().json()
    check(j["connected"] and j["businesses"] == [] and j["business"] is None, f"status {j}")
    a = auth(stack, b)
    check(a.status == 200 and a.header("X-FreshBooks-Account-Id") is None, "auth without a business")
    page, _, buttons = chooser(b, stack)
    check(buttons == [] and "doesn't belong to any business" in page.text, "chooser with no business")


def test_chooser_needs_a_connection(stack):
    b = Browser(stack)
    r = b.get(stack.site("business"))
    check(r.status == 303 and r.header("Location") == "/connect", f"GET unconnected: {r.status}")
    page = b.get(stack.site("connect"))
    check(page.status == 200, "connect page")
    r = b.post(stack.site("business"), {"account_id": "x"})
    check(r.status == 403, f"POST unconnected without csrf: {r.status}")
    r = b.get(stack.site("business?return_to=//evil.example"))
    check(r.status in (303, 400), f"foreign return_to: {r.status}")
    check(request("PUT", stack.site("business")).status == 405, "PUT /business")
    connected = Browser(stack)
    check(connected.connect(email(), businesses=2).status == 303, "connect")
    check(connected.get(stack.site("business?return_to=//evil.example")).status == 400, "foreign return_to")


def test_reconnect_keeps_the_choice_and_the_choice_is_the_owners(stack):
    who = email()
    b = Browser(stack)
    _, first = b.start()
    _, again = b.start()  # links this browser connects with later (its own: see test_own_links)
    _, as_other = b.start()
    check(b.get(stack.local(b.approve(first, who, businesses=3))).status == 303, "connect")
    _, csrf, buttons = chooser(b, stack)
    third = b.status().json()["businesses"][2]
    check(choose(b, stack, third["account_id"], csrf).status == 303, "choose")
    # The same browser connects the same FreshBooks user again: straight on, choice kept.
    r = b.get(stack.local(b.approve(again, who)))
    check(r.status == 303 and r.header("Location") == "/connected", f"reconnect went to {r.header('Location')}")
    check(b.status().json()["business"] == third, "choice lost at reconnect")
    # Another browser of the same FreshBooks user has its own (no) choice.
    other = Browser(stack)
    r = other.connect(who)
    check(r.header("Location") == "/business", f"another owner inherited a choice: {r.header('Location')}")
    check(other.status().json()["business"] is None and b.status().json()["business"] == third,
          "choices are not per owner")
    # Connecting as another FreshBooks user drops the choice (not that user's business).
    r = b.get(stack.local(b.approve(as_other, email(), businesses=2)))
    check(r.header("Location") == "/business" and b.status().json()["business"] is None,
          "a choice carried to another FreshBooks user")


def test_reconnect_after_a_refused_refresh_keeps_the_choice(stack):
    who = email()
    stack.sandbox("config", {"expires_in": 200})
    try:
        b = Browser(stack)
        check(b.connect(who, businesses=3).status == 303, "connect")
    finally:
        stack.sandbox("config", {"expires_in": 43200})
    _, csrf, _ = chooser(b, stack)
    pick = b.status().json()["businesses"][1]
    check(choose(b, stack, pick["account_id"], csrf).status == 303, "choose")
    stack.fault("token", "invalid_grant", count=1)
    check(auth(stack, b).status == 401 and b.status().json()["reconnect_required"], "marked")
    check(b.get(stack.site("business")).header("Location") == "/connect", "chooser while marked")
    r = b.connect(who)
    check(r.status == 303 and r.header("Location") == "/connected", f"reconnect went to {r.header('Location')}")
    j = b.status().json()
    check(j["connected"] and j["business"] == pick, f"choice after reconnect: {j['business']}")


def test_two_site_users_sharing_a_freshbooks_user_choose_differently(stack):
    with stack.settings({"FBCONNECT_USER_PARAM": "TEST_SITE_USER"}):
        who = email()
        alice = Browser(stack, site_user="alice-" + uuid.uuid4().hex[:6])
        bob = Browser(stack, site_user="bob-" + uuid.uuid4().hex[:6])
        check(alice.connect(who, businesses=3).status == 303, "alice connects")
        check(bob.connect(who).status == 303, "bob connects")
        businesses = alice.status().json()["businesses"]
        for person, pick in ((alice, businesses[0]), (bob, businesses[2])):
            _, csrf, _ = chooser(person, stack)
            check(choose(person, stack, pick["account_id"], csrf).status == 303, "choose")
        for person, pick in ((alice, businesses[0]), (bob, businesses[2])):
            r = request("GET", stack.internal(f"internal/token?user={person.site_user}"))
            j = r.json()
            check(r.status == 200 and j["business"] == pick, f"{person.site_user}: {j.get('business')}")
            check(j["account_ids"] == [x["account_id"] for x in businesses], "account_ids lists every business")
        # Alice, from another browser, still works with her choice; without a site user: 403.
        check(Browser(stack, site_user=alice.site_user).status().json()["business"] == businesses[0],
              "the choice did not follow the site user")
        check(Browser(stack).get(stack.site("business")).status == 403, "chooser without a site user")


def two_owners_choosing(stack, who):
    """Two browsers of one FreshBooks user of three businesses, with pairs the next /auth
    refreshes (reading users/me again): b chose the third business, keeper the first.
    Returns (b, keeper, the businesses as listed)."""
    stack.sandbox("config", {"expires_in": 200})
    try:
        b, keeper = Browser(stack), Browser(stack)
        check(b.connect(who, businesses=3).status == 303, "connect")
        check(keeper.connect(who).status == 303, "second owner")
    finally:
        stack.sandbox("config", {"expires_in": 43200})
    listed = b.status().json()["businesses"]
    for person, pick in ((b, listed[2]), (keeper, listed[0])):
        _, csrf, _ = chooser(person, stack)
        check(choose(person, stack, pick["account_id"], csrf).status == 303, "choose")
    return b, keeper, listed


def test_a_business_gone_at_freshbooks_clears_the_choice(stack):
    who = email()
    b, keeper, listed = two_owners_choosing(stack, who)
    stack.sandbox("user", {"email": who, "businesses": 2})  # the third is gone at FreshBooks
    calls = stack.stats()["token_calls"]
    r = auth(stack, b)
    check(r.status == 200 and stack.stats()["token_calls"] == calls + 1, "no refresh")
    wait_until(lambda: len(b.status().json()["businesses"]) == 2, timeout=10,
               what="the identity read again after the refresh")
    j = b.status().json()
    check(j["business"] is None and j["connected"], f"choice of a gone business kept: {j['business']}")
    check(business_headers(auth(stack, b))["X-FreshBooks-Business-Id"] is None, "auth still names it")
    check(keeper.status().json()["business"] == listed[0], "a choice still listed was cleared")


def test_api_proxy_business_paths(stack):
    b = Browser(stack)
    check(b.connect(email(), businesses=2).status == 303, "connect")
    for path in ("api/account/users/clients", "api/business/projects/projects",
                 "api/business/timetracking/time_entries"):
        r = b.get(stack.site(path))
        check(r.status == 409 and r.json()["error"] == "no_business_chosen", f"{path} before a choice: {r.status}")
    r = b.post(stack.site("api/account/users/clients"), {"x": "1"})
    check(r.status == 403, f"POST without the custom header stays 403: {r.status}")
    check(Browser(stack).get(stack.site("api/account/users/clients")).status == 401, "no session: 401")
    second = b.status().json()["businesses"][1]
    _, csrf, _ = chooser(b, stack)
    check(choose(b, stack, second["account_id"], csrf).status == 303, "choose")
    r = b.get(stack.site("api/account/users/clients?page=1"))
    check(r.status == 200, f"/api/account/ {r.status} {r.text[:200]}")
    check(r.json()["response"]["result"]["clients"][0]["id"] == second["id"] * 10 + 1, "not the chosen account")
    for path, kind in (("api/business/projects/projects", "projects"),
                       ("api/business/timetracking/time_entries", "time_entries")):
        r = b.get(stack.site(path))
        check(r.status == 200 and r.json()["business_id"] == second["id"] and r.json()["kind"] == kind,
              f"{path}: {r.status} {r.text[:200]}")
    r = b.post(stack.site("api/account/users/clients"), {"x": "1"}, headers={"X-FBConnect-Request": "1"})
    check(r.status == 200 and r.json()["response"]["result"]["created"], f"POST with the header: {r.status}")
    check(b.get(stack.site("api/account/users/clients%20x")).status == 404, "odd characters in the rest")
