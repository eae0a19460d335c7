"""The flows many tests share: a browser connected with a pair about to expire, /auth, the
bearer token it carries, whether FreshBooks (the sandbox) takes that token, /metrics summed
over the processes."""
import glob
import os
import uuid

import fcgi

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


def metrics(stack):
    """Every series summed over the fbconnect processes, each asked on its own socket."""
    out = {}
    socks = sorted(glob.glob(os.path.join(stack.dir, "fbconnect*.sock")))
    check(socks, "no fbconnect socket")
    for sock in socks:
        c = fcgi.Connection(sock)
        status, headers, body = c.request(fcgi.params("/metrics", FBCONNECT_INTERNAL="1"))
        c.close()
        check(status == 200, f"/metrics {status}")
        check(headers["content-type"].startswith("text/plain; version=0.0.4"), "content type")
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                name, _, value = line.rpartition(" ")
                out[name] = out.get(name, 0) + float(value)
    return out


def series(m, name, **labels):
    want = ",".join(f'{k}="{v}"' for k, v in labels.items())
    total = 0.0
    for k, v in m.items():
        if k.startswith(name + "{") and all(f'{a}="{b}"' in k for a, b in labels.items()):
            total += v
        elif k == name and not want:
            total += v
    return total
