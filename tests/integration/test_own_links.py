"""A browser's own earlier links stay its own: a connect replaces the session id (no
fixation), yet a state this browser was given before — a second tab, Back then Authorize
again, a reload of the callback — is still its own: unused it completes, used it gets 400
"already used" saying the browser is connected.  Only a state never this browser's is 403."""
from checks import check
from flows import email
from web import Browser


def earlier_cookie(r, stack):
    for sc in r.headers_named("Set-Cookie"):
        if sc.startswith(stack.cookie_name + "_earlier="):
            return sc
    return None


def test_second_tab_completes_after_the_first_connected(stack):
    b = Browser(stack)
    _, tab1 = b.start()
    _, tab2 = b.start()  # the same session, another state
    first = b.session
    r = b.get(stack.local(b.approve(tab1, email())))
    check(r.status == 303 and b.session != first, f"first tab {r.status}")
    sc = earlier_cookie(r, stack)
    check(sc and "Path=/callback" in sc and "HttpOnly" in sc and "Max-Age=600" in sc and "SameSite=Lax" in sc,
          f"earlier-sessions cookie: {sc}")
    check(first not in sc, "the earlier session id itself stored in a cookie")
    second_id = b.session
    r = b.get(stack.local(b.approve(tab2, email())))
    check(r.status == 303 and r.header("Location") == "/connected", f"second tab: {r.status} {r.text[:300]}")
    check(b.session not in (first, second_id), "the second tab's connect kept a session id")
    check(b.status().json()["connected"], "not connected after the second tab")


def test_reload_of_the_callback_says_connected(stack):
    b = Browser(stack)
    _, link = b.start()
    callback = b.approve(link, email())
    check(b.get(stack.local(callback)).status == 303, "callback")
    before = stack.stats()
    r = b.get(stack.local(callback))
    check(r.status == 400 and "already used" in r.text and "connected to FreshBooks" in r.text,
          f"reload: {r.status} {r.text[:400]}")
    check('href="/connected"' in r.text, "the page does not link on")
    check(stack.stats()["exchanges"] == before["exchanges"], "the code was spent again")
    check(b.status().json()["connected"], "the reload disconnected the browser")


def test_back_then_authorize_again(stack):
    b = Browser(stack)
    _, link = b.start()
    check(b.get(stack.local(b.approve(link, email()))).status == 303, "connect")
    # Back to the connect page as it was (same link, same state), Authorize again: a new code.
    r = b.get(stack.local(b.approve(link, email())))
    check(r.status == 400 and "already used" in r.text and "connected to FreshBooks" in r.text,
          f"back and authorize again: {r.status} {r.text[:300]}")
    check(b.status().json()["connected"], "the browser lost its connection")


def test_a_state_never_this_browsers_is_still_403(stack):
    victim = Browser(stack)
    check(victim.connect(email()).status == 303, "victim connects")
    attacker = Browser(stack)
    _, link = attacker.start()
    planted = attacker.approve(link, email())  # the attacker's code and state
    before = victim.status().json()
    r = victim.get(stack.local(planted))
    check(r.status == 403, f"another browser's state: {r.status}")
    check(victim.status().json() == before, "the victim's connection changed")
    # Nor does an earlier-sessions cookie tossed in from elsewhere (a sibling subdomain can
    # set one for /callback): made up, or the attacker's own genuine one naming the state's
    # session, it is MAC'd for another session id than the victim's and counts for nothing.
    earlier = stack.cookie_name + "_earlier"
    victim.cookies[earlier] = "A" * 22
    check(victim.get(stack.local(planted)).status == 403, "made-up earlier cookie")
    attacker = Browser(stack)
    _, first = attacker.start()
    _, second = attacker.start()  # a second tab of the attacker's, same session
    check(attacker.get(stack.local(attacker.approve(first, email()))).status == 303, "attacker connects")
    check(earlier in attacker.cookies, "no earlier cookie for the attacker")
    again = attacker.approve(second, email())  # bound to the attacker's earlier session
    victim.cookies[earlier] = attacker.cookies[earlier]  # genuine, naming that session
    check(victim.get(stack.local(again)).status == 403, "another browser's earlier cookie")
    check(attacker.get(stack.local(again)).status == 303, "the same link in its own browser completes")

def test_a_planted_session_id_never_rides_the_connection(stack):
    """Anti-fixation holds: an attacker who planted session id X in the victim's browser
    still holds X after the victim connects, but X is no longer connected, and a state of
    X's completes only as a connect of X's holder (into the attacker's own browser)."""
    victim = Browser(stack)
    victim.get(stack.site("connect"))
    planted = victim.session
    who = email()
    check(victim.connect(who).status == 303 and victim.session != planted, "victim connects")
    attacker = Browser(stack)
    attacker.cookies[stack.cookie_name] = planted
    check(attacker.status().json()["connected"] is False, "the replaced session id is still connected")
    _, link = attacker.start()  # a state bound to X
    r = attacker.get(stack.local(attacker.approve(link, email())))
    check(r.status == 303 and attacker.session != planted, f"the attacker's own connect: {r.status}")
    check(victim.status().json()["user"]["email"] == who, "the victim's connection changed")
