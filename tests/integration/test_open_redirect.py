"""return_to against 800 known open-redirect payloads (tests/data/open-redirect-payloads.txt):
each is refused at /connect, or — when it is a harmless same-site path — comes back from the
callback as a Location that a browser resolves on this site."""
import os
import urllib.parse
import uuid

from checks import check
from stack import ROOT
from web import Browser, request


def payloads():
    with open(os.path.join(ROOT, "tests", "data", "open-redirect-payloads.txt")) as f:
        return [l.rstrip("\n") for l in f if l.strip()]


def stays_on_site(location):
    base = "https://site.example/app/page"
    joined = urllib.parse.urljoin(base, location)
    u = urllib.parse.urlsplit(joined)
    return (u.scheme == "https" and u.netloc == "site.example" and location.startswith("/")
            and not location.startswith("//") and "\\" not in location
            and all(32 < ord(ch) < 127 for ch in location))


def test_open_redirect_payloads(stack):
    items = payloads()
    check(len(items) >= 300, f"only {len(items)} payloads")
    b = Browser(stack)
    b.get(stack.site("connect"))
    accepted = []
    for p in items:
        r = request("GET", stack.site("connect?return_to=" + p.replace(" ", "%20")),
                    headers={"Cookie": f"{stack.cookie_name}={b.session}"})
        check(r.status in (200, 400), f"{p!r}: status {r.status}")
        if r.status == 200:
            accepted.append(p)
    # Whatever was accepted must come back as an on-site Location after a real connect.
    for p in accepted:
        fresh = Browser(stack)
        link, _ = fresh.authorize_link("connect?return_to=" + p.replace(" ", "%20"))
        r = fresh.get(stack.local(fresh.approve(link, f"or-{uuid.uuid4().hex[:6]}@example.com")))
        check(r.status == 303, f"{p!r}: callback {r.status}")
        loc = r.header("Location")
        check(stays_on_site(loc), f"payload {p!r} redirects to {loc!r}")
    check(len(accepted) < len(items) // 10, f"{len(accepted)} payloads accepted: {accepted[:10]}")
    print(f"     # {len(items)} payloads: {len(items) - len(accepted)} refused, "
          f"{len(accepted)} harmless same-site paths accepted")
