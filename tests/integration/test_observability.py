"""Observability: /metrics moves with a flow; logs carry no secret, token, code or state."""
import base64
import os
import re
import urllib.parse
import uuid

from checks import check
from flows import metrics, series
from web import Browser, request


def test_metrics_move_with_a_flow(stack):
    check(request("GET", stack.site("metrics")).status == 404, "/metrics reachable from the public")
    before = metrics(stack)
    b = Browser(stack)
    check(b.connect(f"m-{uuid.uuid4().hex[:8]}@example.com").status == 303, "connect")
    after = metrics(stack)

    def moved(name, **labels):
        return series(after, name, **labels) - series(before, name, **labels)

    check(moved("fbconnect_requests_seconds_count", route="callback", status="303") >= 1, "callback count")
    check(moved("fbconnect_requests_seconds_count", route="connect", status="200") >= 1, "connect count")
    check(moved("fbconnect_callback_outcomes_total", outcome="connected") >= 1, "connect outcome")
    check(moved("fbconnect_freshbooks_calls_total", call="exchange", result="ok") >= 1, "exchange call")
    check(moved("fbconnect_freshbooks_calls_total", call="identity", result="ok") >= 1, "identity call")
    check(moved("fbconnect_redis_seconds_count") >= 2, "redis commands")
    check(series(after, "fbconnect_requests_seconds_bucket", route="callback", status="303", le="+Inf")
          >= 1, "histogram buckets")
    check(series(after, "fbconnect_threads") >= 1 and "fbconnect_threads_busy" in after, "thread gauges")


def test_refresh_metrics(stack):
    from flows import auth, connect_expiring
    b = connect_expiring(stack)
    before = metrics(stack)
    check(auth(stack, b).status == 200, "/auth")
    b2 = connect_expiring(stack)
    stack.fault("token", "status", status=503, count=1)
    check(auth(stack, b2).status == 200, "/auth with FreshBooks down (token still valid)")
    after = metrics(stack)
    d = lambda **l: series(after, "fbconnect_refresh_total", **l) - series(before, "fbconnect_refresh_total", **l)  # noqa: E731
    check(d(outcome="refreshed") >= 1, "refreshed not counted")
    check(d(outcome="transient") >= 1, "transient failure not counted")
    check(series(after, "fbconnect_freshbooks_calls_total", call="refresh", result="unavailable") >
          series(before, "fbconnect_freshbooks_calls_total", call="refresh", result="unavailable"),
          "failed refresh call not counted")


def test_logs_hold_no_secret(stack):
    """A whole flow, then every log is searched for every secret value it carried."""
    b = Browser(stack)
    secrets = set()
    secrets.add(b.get(stack.site("connect")).header("Set-Cookie").split(";")[0].split("=", 1)[1])
    state, link = b.start()
    callback = b.approve(link, f"logs-{uuid.uuid4().hex[:8]}@example.com")
    q = urllib.parse.parse_qs(urllib.parse.urlsplit(callback).query)
    secrets.update([state, q["code"][0], q["state"][0]])
    r = b.get(stack.local(callback))
    check(r.status == 303, "callback")
    secrets.add(b.session)
    from flows import auth, bearer
    token = bearer(auth(stack, b))
    secrets.add(token)
    secrets.add(token.split(".")[2])  # the JWT's signature part alone
    page = b.get(stack.site("connect"))
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    secrets.add(csrf)
    b.post(stack.site("disconnect"), {"csrf": csrf})
    secrets.add(stack.client_secret())
    secrets.add(base64.b64encode(stack.secret_key()).decode())
    logs = {name: stack.log_file(name) for name in os.listdir(os.path.join(stack.dir, "logs"))}
    check("nginx-access.log" in logs and logs["nginx-access.log"], "no nginx access log to search")
    check("/callback" in logs["nginx-access.log"], "callback missing from the access log")
    for name, text in logs.items():
        for s in secrets:
            check(s not in text, f"{name} contains a secret value ({s[:6]}…)")
    lines = [l for l in stack.log("fbconnect.log").splitlines() if "route=callback" in l]
    check(lines and all(re.search(r"req=[0-9a-f]{32} ", l) for l in lines[-3:]),
          "request lines without nginx's request id")
    check(all("dur_ms=" in l and "session=" in l and "status=" in l for l in lines), "log fields")
