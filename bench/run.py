#!/usr/bin/env python3
"""make bench: fbconnect side by side with a minimal FastCGI baseline (bench/baseline.c)
behind the same nginx, on this machine, with connection events on (delivered to a small
receiver here).  Prints a table and writes it to OUT (build/bench/BENCHMARKS.md; the
repository's BENCHMARKS.md is a copy kept from a measured run).

usage: bench/run.py [--build DIR] [--seconds N] [--no-events] [--out FILE]
"""
import argparse
import base64
import http.server
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "lib"))
from checks import wait_until  # noqa: E402
from stack import Stack, free_ports  # noqa: E402
from web import Browser, request  # noqa: E402


def wrk(url, conns, seconds, headers=None):
    threads = 1 if conns < 2 else 2
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{seconds}s", "--latency"]
    for k, v in (headers or {}).items():
        cmd += ["-H", f"{k}: {v}"]
    out = subprocess.run(cmd + [url], capture_output=True, text=True, timeout=seconds + 60).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))

    def pct(p):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        if not m:
            return float("nan")
        v, unit = float(m.group(1)), m.group(2)
        return v / 1000 if unit == "us" else v * 1000 if unit == "s" else v
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: .*", out)
    return {"rps": rps, "p50_ms": pct(50), "p99_ms": pct(99),
            "non2xx": int(errors.group(1)) if errors else 0, "socket_errors": sock.group(0) if sock else ""}


def paired(ours, theirs, rounds=5):
    """Runs ours and theirs alternately; returns the pair whose ratio is the median."""
    pairs = []
    for _ in range(rounds):
        a, b = ours(), theirs()
        pairs.append((a["rps"] / b["rps"], a, b))
    pairs.sort(key=lambda p: p[0])
    _, a, b = pairs[len(pairs) // 2]
    a["ratios"] = [round(p[0], 3) for p in pairs]
    return a, b


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        kb = int(next(l for l in f if l.startswith("VmRSS:")).split()[1])
    return kb / 1024


def threads_of(pid):
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("Threads:")).split()[1])


def machine():
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            m = re.search(r"model name\s*:\s*(.*)", f.read())
            cpu = m.group(1).strip() if m else cpu
    except OSError:
        pass
    with open("/proc/meminfo") as f:
        mem = int(re.search(r"MemTotal:\s+(\d+)", f.read()).group(1)) / 1024 / 1024
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    redis = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()[2]
    return (f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} "
            f"{platform.release()}; {nginx.replace('nginx version: ', '')}, Redis {redis.replace('v=', '')}")


def callback_overhead(log_text):
    """dur_ms - fb_ms of every successful callback in fbconnect's log."""
    vals = []
    for l in log_text.splitlines():
        if "route=callback" in l and "status=303" in l:
            d = re.search(r"dur_ms=([\d.]+)", l)
            f = re.search(r"fb_ms=([\d.]+)", l)
            if d and f:
                vals.append(float(d.group(1)) - float(f.group(1)))
    vals.sort()
    if not vals:
        return float("nan"), float("nan"), 0
    return vals[len(vals) // 2], vals[int(len(vals) * 0.99)], len(vals)


class Receiver(http.server.ThreadingHTTPServer):
    """The site's back end for connection events: 204 to each, counted."""
    daemon_threads = True

    def __init__(self):
        self.count = 0

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(h):
                h.rfile.read(int(h.headers.get("Content-Length") or 0))
                self.count += 1
                h.send_response(204)
                h.end_headers()

            def log_message(h, *a):
                pass
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default="build")
    ap.add_argument("--seconds", type=int, default=10)
    ap.add_argument("--no-events", action="store_true")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    build = os.path.abspath(os.path.join(ROOT, args.build))
    out_path = args.out or os.path.join(build, "bench", "BENCHMARKS.md")
    secs = args.seconds
    work = tempfile.mkdtemp(prefix="fbconnect-bench-")
    env = {"FBCONNECT_THREADS": "64", "REDIS_PERSIST": "0"}
    rx = None
    if not args.no_events:
        rx = Receiver()
        env.update({"FBCONNECT_EVENTS_URL": f"http://127.0.0.1:{rx.server_address[1]}/hook",
                    "FBCONNECT_EVENTS_SECRET": "whsec_" + base64.b64encode(os.urandom(32)).decode()})
    stack = Stack(work, build, env)
    base_port, = free_ports(1)
    with open(os.path.join(work, "extra-bench.conf"), "w") as f:
        f.write(f"""upstream baseline {{
    server unix:{work}/baseline.sock;
    keepalive 8;
}}
server {{
    listen 127.0.0.1:{base_port};
    location / {{
        include /etc/nginx/fastcgi_params;
        fastcgi_param REQUEST_ID $request_id;
        fastcgi_keep_conn on;
        fastcgi_pass baseline;
    }}
}}
""")
    results = {"machine": machine()}
    baseline = None
    try:
        stack.start()
        baseline = subprocess.Popen([os.path.join(build, "bench", "baseline"), f"unix:{work}/baseline.sock",
                                     "64", str(stack.redis_port)])
        wait_until(lambda: os.path.exists(f"{work}/baseline.sock"), what="baseline")
        os.chmod(f"{work}/baseline.sock", 0o666)
        stack.redis("SET", "bench:key", "x" * 64)
        site = stack.site()
        base = f"http://127.0.0.1:{base_port}/"
        print(f"# {results['machine']}", flush=True)

        # Warm-up, then /connect and its baseline, alternating five times: the ratio is the
        # median of five side-by-side pairs (this machine's speed drifts between runs).
        wrk(site + "connect", 64, 2)
        wrk(base + "connect", 64, 2)
        results["connect"], results["baseline_connect"] = paired(
            lambda: wrk(site + "connect", 64, secs), lambda: wrk(base + "connect", 64, secs))
        print(f"# /connect {results['connect']['rps']:.0f}/s, baseline {results['baseline_connect']['rps']:.0f}/s", flush=True)

        # Full flows (the sandbox answers at once): throughput with 16 drivers, which
        # saturate the two cores; latency with 4, just below saturation, where queueing for
        # a CPU does not swamp what fbconnect itself adds.
        flows_bin = os.path.join(build, "bench", "flows")
        used0 = int(re.search(r"used_memory:(\d+)", stack.redis("INFO", "memory")).group(1))
        keys0 = stack.dbsize()
        out = subprocess.run([flows_bin, site, "16", str(secs)], capture_output=True, text=True,
                             timeout=secs + 120)
        results["flows"] = json.loads(out.stdout)
        if rx:  # every flow's connect records an event: all delivered shortly after
            want = results["flows"]["flows"]
            t0 = time.monotonic()
            while rx.count < want and time.monotonic() - t0 < 60:
                time.sleep(0.05)
            results["events"] = {"recorded": want, "delivered": rx.count,
                                 "drain_s": time.monotonic() - t0}
        used1 = int(re.search(r"used_memory:(\d+)", stack.redis("INFO", "memory")).group(1))
        n_users = results["flows"]["flows"]
        log_before = len(stack.log("fbconnect.log"))
        out = subprocess.run([flows_bin, site, "4", str(secs)], capture_output=True, text=True,
                             timeout=secs + 120)
        results["flows4"] = json.loads(out.stdout)
        p50, p99, n = callback_overhead(stack.log("fbconnect.log")[log_before:])
        results["callback_overhead"] = {"p50_ms": p50, "p99_ms": p99, "samples": n}
        print(f"# flows {results['flows']} / 4 drivers {results['flows4']}", flush=True)

        # Redis memory per connected user: everything a connect leaves (session pointer,
        # record) with and without the 20-minute used-state marker.
        markers = stack.keys("fbc:st:*")
        marker_bytes = sum(int(stack.redis("MEMORY", "USAGE", k) or 0) for k in markers[:200]) / max(1, min(200, len(markers)))
        results["redis"] = {"users": n_users, "keys_added": stack.dbsize() - keys0,
                            "per_user_bytes": (used1 - used0) / max(1, n_users),
                            "marker_bytes": marker_bytes}
        sess = stack.keys("fbc:s:*")[:200]
        sample = []
        for k in sess:
            ptr = stack.redis("GET", k)
            rec = "fbc:" + ptr.split("/")[0]
            sample.append(int(stack.redis("MEMORY", "USAGE", k) or 0) + int(stack.redis("MEMORY", "USAGE", rec) or 0))
        results["redis"]["session_plus_record_bytes"] = sum(sample) / max(1, len(sample))

        # /auth for one connected session, and the baseline with one Redis GET.
        b = Browser(stack)
        b.connect("bench-auth@example.com")
        cookie = {"Cookie": f"{stack.cookie_name}={b.session}"}
        wrk(stack.internal("auth"), 64, 2, cookie)
        results["auth"], results["baseline_redis"] = paired(
            lambda: wrk(stack.internal("auth"), 64, secs, cookie), lambda: wrk(base + "redis", 64, secs))
        print(f"# /auth {results['auth']['rps']:.0f}/s, baseline+GET {results['baseline_redis']['rps']:.0f}/s", flush=True)

        pid = stack.fbconnect_pid()
        results["rss_mb"] = rss_mb(pid)
        results["threads"] = threads_of(pid)

        # Scaling curve.
        results["scaling"] = []
        for c in (1, 16, 64, 256):
            cn = wrk(site + "connect", c, max(3, secs // 2))
            au = wrk(stack.internal("auth"), c, max(3, secs // 2), cookie)
            results["scaling"].append({"conns": c, "connect": cn, "auth": au})
            print(f"# {c} conns: connect {cn['rps']:.0f}/s p99 {cn['p99_ms']:.2f} ms, auth {au['rps']:.0f}/s p99 {au['p99_ms']:.2f} ms", flush=True)

        # /auth with Redis over TLS (mutual TLS, a TLS-only Redis) against plain TCP, side by side.
        from tlsredis import TlsRedis
        tls = TlsRedis(stack, "bench-tls-redis")
        tls.start()
        try:
            stack.restart_fbconnect(tls.env())
            bt = Browser(stack)
            bt.connect("bench-tls@example.com")
            tcookie = {"Cookie": f"{stack.cookie_name}={bt.session}"}
            wrk(stack.internal("auth"), 64, 2, tcookie)
            results["auth_tls"] = wrk(stack.internal("auth"), 64, secs, tcookie)
            stack.restart_fbconnect()
            wrk(stack.internal("auth"), 64, 2, cookie)
            results["auth_tcp"] = wrk(stack.internal("auth"), 64, secs, cookie)
            print(f"# /auth over TLS {results['auth_tls']['rps']:.0f}/s, over TCP {results['auth_tcp']['rps']:.0f}/s",
                  flush=True)
        finally:
            tls.stop()

        # Memory with the system trust store (one CA store shared by every curl handle).
        stack.restart_fbconnect({"FBCONNECT_CA_FILE": ""})
        subprocess.run([os.path.join(build, "bench", "flows"), site, "16", "3"], capture_output=True, timeout=120)
        wrk(stack.internal("auth"), 64, 2, cookie)
        results["rss_mb_system_store"] = rss_mb(stack.fbconnect_pid())
    finally:
        if baseline:
            baseline.terminate()
            try:
                baseline.wait(timeout=3)
            except subprocess.TimeoutExpired:
                baseline.kill()
                baseline.wait()
        stack.stop()
        if rx:
            rx.shutdown()
        shutil.rmtree(work, ignore_errors=True)
    report(results, out_path)


def report(r, path):
    c, bc, a, ba = r["connect"], r["baseline_connect"], r["auth"], r["baseline_redis"]
    f, f4, co, rd = r["flows"], r["flows4"], r["callback_overhead"], r["redis"]
    rows = [
        ("/connect (64 conns, first visits)", f"{c['rps']:,.0f} req/s", f"baseline {bc['rps']:,.0f} req/s",
         f"{100 * c['rps'] / bc['rps']:.0f}% of baseline (5 pairs: {', '.join(f'{100 * x:.0f}%' for x in c['ratios'])})",
         "≥ 80%"),
        ("/auth (64 conns, connected session)", f"{a['rps']:,.0f} req/s", f"baseline + 1 Redis GET {ba['rps']:,.0f} req/s",
         f"{100 * a['rps'] / ba['rps']:.0f}% of baseline (5 pairs: {', '.join(f'{100 * x:.0f}%' for x in a['ratios'])})",
         "≥ 80%"),
        ("full connect flows (16 drivers)", f"{f['flows_per_s']:,.0f} flows/s",
         f"callback p50 {f['callback_p50_ms']:.2f} ms, p99 {f['callback_p99_ms']:.2f} ms", f"{f['errors']} errors", ""),
        ("full connect flows (4 drivers)", f"{f4['flows_per_s']:,.0f} flows/s",
         f"callback p50 {f4['callback_p50_ms']:.2f} ms, p99 {f4['callback_p99_ms']:.2f} ms", f"{f4['errors']} errors", ""),
        ("callback time beyond the provider's (4 drivers)", f"p50 {co['p50_ms']:.2f} ms", f"p99 {co['p99_ms']:.2f} ms",
         f"{co['samples']} callbacks", "≤ 2 ms at p50"),
        ("/auth with Redis over TLS (64 conns)", f"{r['auth_tls']['rps']:,.0f} req/s",
         f"plain TCP {r['auth_tcp']['rps']:,.0f} req/s",
         f"{100 * r['auth_tls']['rps'] / r['auth_tcp']['rps']:.0f}% of TCP, p99 {r['auth_tls']['p99_ms']:.2f} ms vs "
         f"{r['auth_tcp']['p99_ms']:.2f} ms", ""),
        ("fbconnect RSS after the load", f"{r['rss_mb']:.1f} MB", f"{r['threads']} threads (64 workers)",
         f"system trust store: {r['rss_mb_system_store']:.1f} MB", "≤ 32 MB"),
        ("connection events (events on)" if r.get("events") else "connection events",
         f"{r['events']['delivered']:,} of {r['events']['recorded']:,} delivered" if r.get("events") else "off",
         f"all within {r['events']['drain_s']:.1f} s after the flows" if r.get("events") else "--no-events",
         "every connect's event, signed, to a local receiver" if r.get("events") else "", ""),
        ("Redis per connected user", f"{rd['session_plus_record_bytes']:,.0f} B",
         f"+ used-state marker {rd['marker_bytes']:,.0f} B for 20 min",
         f"INFO delta {rd['per_user_bytes']:,.0f} B/flow ({rd['users']} users)", "≤ 2 KB"),
    ]
    lines = ["| measure | fbconnect | compared with | result | target |", "|---|---|---|---|---|"]
    lines += [f"| {' | '.join(row)} |" for row in rows]
    scale = ["| connections | /connect req/s | /connect p99 | /auth req/s | /auth p99 |", "|---|---|---|---|---|"]
    for s in r["scaling"]:
        scale.append(f"| {s['conns']} | {s['connect']['rps']:,.0f} | {s['connect']['p99_ms']:.2f} ms | "
                     f"{s['auth']['rps']:,.0f} | {s['auth']['p99_ms']:.2f} ms |")
    table = "\n".join(lines)
    print("\n" + table + "\n\n" + "\n".join(scale))
    tracked = os.path.join(ROOT, "BENCHMARKS.md")
    src = path if os.path.exists(path) else tracked
    head = open(src).read().split("<!-- results -->")[0] if os.path.exists(src) else "# Benchmarks\n\n"
    os.makedirs(os.path.dirname(path), exist_ok=True)
    print(f"\n# written to {path}")
    with open(path, "w") as out:
        out.write(head + "<!-- results -->\n")
        out.write(f"Measured by `make bench` on {time.strftime('%Y-%m-%d')}: {r['machine']}. "
                  "wrk, the flow driver, nginx (2 workers), Redis, the sandbox and fbconnect "
                  "(64 threads) all share the machine.\n\n")
        out.write(table + "\n\nScaling (`/connect` through nginx, `/auth` on the internal port, "
                  "wrk with 1–2 threads):\n\n" + "\n".join(scale) + "\n")


if __name__ == "__main__":
    main()
