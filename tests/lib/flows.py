"""The flows many tests share: a browser connected with a pair about to expire, /auth, the
bearer token it carries, whether FreshBooks (the sandbox) takes that token."""
import uuid

from checks import check
from web import Browser


def email():
    return f"life-{uuid.uuid4().hex[:10]}@example.com"


def connect_expiring(stack, who=None, expires_in=200):
    """A browser connected with a pair that is already within the refresh margin (300 s)."""
    stack.sandbox("config", {"expires_in": expires_in})
    try:
        b = Browser(stack)
        r = b.connect(who or email())
        check(r.status == 303, f"connect {r.status}")
    finally:
        stack.sandbox("config", {"expires_in": 43200})
    return b


def auth(stack, b):
    return stack.internal_get("auth", cookies=b.cookies)


def bearer(r):
    v = r.header("X-FreshBooks-Authorization") or ""
    check(v.startswith("Bearer ") and len(v) > 400, f"no bearer token: {v[:20]!r}")
    return v[7:]


def works_at_freshbooks(stack, token):
    me = stack.provider("GET", "/auth/api/v1/users/me", headers={"Authorization": "Bearer " + token})
    return me.status == 200
