"""The pages in a real browser: Debian's headless Chromium, driven by playwright-core,
clicks through connect → sandbox authorize → connected → disconnect → the business chooser
at desktop and phone width, with no console error and no CSP violation
(tests/browser/flow.mjs)."""
import os
import subprocess
import uuid

from checks import check
from stack import ROOT


def test_pages_in_chromium(stack):
    out = os.path.join(ROOT, "tests", "out", "screens")
    script = os.path.join(ROOT, "tests", "browser", "flow.mjs")
    r = subprocess.run(["node", script, stack.site(), out, f"browser-{uuid.uuid4().hex[:6]}@example.com"],
                       capture_output=True, text=True, timeout=120, cwd=os.path.dirname(script))
    detail = (r.stdout + r.stderr).strip()[-3000:]
    check(r.returncode == 0 and "browser flow: ok" in r.stdout, f"browser flow failed:\n{detail}")
    for name in ("1-connect", "2-sandbox-authorize", "3-connected", "4-connect-connected",
                 "5-disconnected", "6-error", "7-business", "8-business-chosen"):
        for suffix in ("", "-phone"):
            p = os.path.join(out, f"{name}{suffix}.png")
            check(os.path.exists(p) and os.path.getsize(p) > 5000, f"no screenshot {name}{suffix}")
