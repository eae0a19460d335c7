"""PKCE (RFC 7636, S256): the authorize link carries a challenge derived from the state, the
exchange the matching verifier; the sandbox refuses a code without it; FBCONNECT_PKCE=off
sends neither."""
import urllib.parse

from checks import check
from flows import email
from forge import pkce_challenge, pkce_verifier
from web import Browser


def query(link):
    return dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(link).query))


def test_pkce_challenge_in_the_link_and_verifier_at_the_exchange(stack):
    b = Browser(stack)
    state, link = b.start()
    q = query(link)
    check(q.get("code_challenge_method") == "S256", f"no S256 challenge: {q}")
    check(len(q.get("code_challenge", "")) == 43, f"challenge {q.get('code_challenge')!r}")
    # The challenge is the verifier's S256, the verifier the state's (an independent check).
    check(q["code_challenge"] == pkce_challenge(pkce_verifier(stack.secret_key(), state)),
          "the challenge is not the S256 of the state's verifier")
    check(b.get(stack.local(b.approve(link, email()))).status == 303, "connect with PKCE")
    check(b.status().json()["connected"], "not connected")


def test_a_code_for_another_challenge_is_refused(stack):
    """The code was issued for a challenge whose verifier fbconnect does not have (as when
    an attacker's code is injected): the sandbox refuses it, nothing is stored."""
    b = Browser(stack)
    _, link = b.start()
    u = urllib.parse.urlsplit(link)
    q = dict(urllib.parse.parse_qsl(u.query))
    q["code_challenge"] = pkce_challenge("x" * 43)
    other = urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))
    before = stack.stats()
    r = b.get(stack.local(b.approve(other, email())))
    check(r.status == 400, f"a code with a foreign challenge: {r.status}")
    check(stack.stats()["exchanges"] == before["exchanges"], "the sandbox exchanged it anyway")
    check(not b.status().json()["connected"], "connected without the verifier")


def test_pkce_off(stack):
    with stack.settings({"FBCONNECT_PKCE": "off"}):
        b = Browser(stack)
        _, link = b.start()
        q = query(link)
        check("code_challenge" not in q and "code_challenge_method" not in q, f"challenge sent: {q}")
        check(b.get(stack.local(b.approve(link, email()))).status == 303, "connect without PKCE")
