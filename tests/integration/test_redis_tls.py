"""Redis over TLS, natively: a TLS-only Redis (no plaintext port) with its own test CA and
client certificates required.  The whole flow and the token lifecycle over TLS; a wrong CA,
a wrong server name, a missing client certificate each refused with one clear line and 503s
(never plaintext); Redis restarted; a Sentinel failover with every node TLS-only."""
import os
import re
import subprocess
import time
import uuid

from checks import check, wait_until
from flows import auth, bearer, connect_expiring, email, works_at_freshbooks
from stack import free_ports
from tlsredis import TlsRedis
from web import Browser, request


def log_marks(stack):
    """Where each fbconnect process's log ends now."""
    d = os.path.join(stack.dir, "logs")
    return {f: os.path.getsize(os.path.join(d, f)) for f in os.listdir(d)
            if f.startswith("fbconnect") and f.endswith(".log")}


def tls_lines(stack, marks):
    """The 'redis connect failed' lines every process logged since marks."""
    d = os.path.join(stack.dir, "logs")
    out = []
    for f in sorted(os.listdir(d)):
        if f.startswith("fbconnect") and f.endswith(".log"):
            with open(os.path.join(d, f), errors="replace") as fh:
                fh.seek(marks.get(f, 0))
                out += [l for l in fh.read().splitlines() if "redis connect failed" in l]
    return out


def test_whole_flow_over_tls(stack):
    r = TlsRedis(stack)
    r.start()
    try:
        plain_keys = stack.dbsize()
        with stack.settings(r.env()):
            check(request("GET", stack.site("readyz")).status == 200, "readyz over TLS")
            b = Browser(stack)
            check(b.connect(email()).status == 303, "connect over TLS")
            token = bearer(auth(stack, b))
            check(works_at_freshbooks(stack, token), "token")
            check(r.cli("DBSIZE") not in ("", "0"), "nothing stored in the TLS Redis")
            # the token lifecycle: a refresh over TLS, a large value across many TLS records
            e = connect_expiring(stack)
            before = stack.stats()["refreshes"]
            check(auth(stack, e).status == 200 and stack.stats()["refreshes"] == before + 1, "refresh over TLS")
            out = stack.fbconnect_cmd("connections", **r.env())
            check(out.returncode == 0 and "connection" in out.stdout.splitlines()[-1], f"CLI over TLS: {out.stderr}")
            csrf = re.search(r'name="csrf" value="([^"]+)"', b.get(stack.site("connect")).text).group(1)
            check(b.post(stack.site("disconnect"), {"csrf": csrf}).status == 303, "disconnect over TLS")
            check(not b.status().json()["connected"], "still connected")
        check(stack.dbsize() <= plain_keys + 2, "the plaintext Redis was written to")
        # The TLS Redis has no plaintext port: a plain client gets nowhere.
        plain = subprocess.run(["redis-cli", "-h", "127.0.0.1", "-p", str(r.port), "PING"],
                               capture_output=True, text=True, timeout=10)
        check("PONG" not in plain.stdout, "the TLS port answered plaintext")
    finally:
        r.stop()


def test_untrusted_or_refused_tls_is_one_clear_line_and_503(stack):
    r = TlsRedis(stack)
    r.start()
    pki = r.pki
    cases = [
        ("wrong CA", r.env(FBCONNECT_REDIS_CA_FILE=f"{pki}/other-ca.pem"), "does not verify"),
        ("wrong server name", r.env(FBCONNECT_REDIS_TLS_SERVER_NAME="wrong.example"), "wrong.example"),
        ("no client certificate", r.env(FBCONNECT_REDIS_CERT_FILE=None, FBCONNECT_REDIS_KEY_FILE=None),
         "FBCONNECT_REDIS_CERT_FILE is not set"),
    ]
    try:
        for name, env, words in cases:
            since = log_marks(stack)
            with stack.settings(env):  # starts: a Redis problem is never a startup failure
                for _ in range(6):
                    check(request("GET", stack.site("readyz")).status == 503, f"{name}: readyz")
                    check(request("GET", stack.site("healthz")).status == 200, f"{name}: healthz")
                    check(Browser(stack).get(stack.site("status")).status in (200, 503), f"{name}: status")
                lines = tls_lines(stack, since)
                check(lines and all(words in l for l in lines), f"{name}: {lines[:2]}")
                check(len(lines) <= 2, f"{name}: logged {len(lines)} times (once per process expected)")
                out = stack.fbconnect_cmd("--check-config", **env)
                check(out.returncode == 1 and words in out.stdout, f"{name}: --check-config {out.returncode} {out.stdout[-300:]}")
        # the right name given explicitly verifies
        with stack.settings(r.env(FBCONNECT_REDIS_TLS_SERVER_NAME="redis.test", host="127.0.0.1")):
            check(request("GET", stack.site("readyz")).status == 200, "TLS server name")
        # a TLS setting without rediss:// is a startup error naming it
        out = stack.fbconnect_cmd("--check-config", FBCONNECT_REDIS_CA_FILE=f"{pki}/ca.pem")
        check(out.returncode == 1 and "FBCONNECT_REDIS_CA_FILE" in out.stderr, f"CA without rediss: {out.stderr}")
    finally:
        r.stop()


def test_tls_redis_restarted(stack):
    r = TlsRedis(stack)
    r.start()
    try:
        with stack.settings(r.env()):
            b = Browser(stack)
            check(b.connect(email()).status == 303, "connect")
            r.stop()
            check(b.status().status == 503, "Redis down: 503")
            r.start()
            t0 = time.monotonic()
            wait_until(lambda: b.status().status == 200, timeout=10, what="back after the restart")
            check(b.status().json()["connected"], "lost in the restart")
            print(f"     # TLS Redis restarted: back in {time.monotonic() - t0:.2f}s", flush=True)
    finally:
        r.stop()


def test_sentinel_failover_over_tls(stack):
    """Primary, replica and three sentinels, all TLS-only; a graceful failover loses no pair."""
    master = "fbctls"
    data_ports = free_ports(2)
    primary = TlsRedis(stack, "tls-primary", data_ports[0], ["--tls-replication", "yes"])
    replica = TlsRedis(stack, "tls-replica", data_ports[1],
                       ["--tls-replication", "yes", "--replicaof", "127.0.0.1", str(data_ports[0])])
    sentinel_ports = free_ports(3)
    primary.start()
    replica.start()
    pki = primary.pki
    try:
        for port in sentinel_ports:
            d = os.path.join(stack.dir, f"tls-sentinel-{port}")
            os.makedirs(d, exist_ok=True)
            with open(f"{d}/sentinel.conf", "w") as f:
                f.write(f"port 0\ntls-port {port}\nbind 127.0.0.1\ndir {d}\ndaemonize yes\n"
                        f"pidfile {d}/sentinel.pid\nlogfile {d}/sentinel.log\n"
                        f"tls-cert-file {pki}/server.pem\ntls-key-file {pki}/server.key\n"
                        f"tls-ca-cert-file {pki}/ca.pem\ntls-auth-clients yes\ntls-replication yes\n"
                        f"sentinel monitor {master} 127.0.0.1 {data_ports[0]} 2\n"
                        f"sentinel down-after-milliseconds {master} 1000\n"
                        f"sentinel failover-timeout {master} 4000\n")
            subprocess.run(["redis-sentinel", f"{d}/sentinel.conf"], check=True)

        def named():
            out = primary.cli("SENTINEL", "get-master-addr-by-name", master, port=sentinel_ports[0]).split()
            return int(out[1]) if len(out) == 2 else None

        def settled():
            p = named()
            info = primary.cli("INFO", "replication", port=p) if p else ""
            sentinels = primary.cli("SENTINEL", "sentinels", master, port=sentinel_ports[0])
            return p and "connected_slaves:1" in info and "state=online" in info and sentinels.count("ip") >= 2

        wait_until(settled, timeout=40, what="TLS sentinels to settle")
        env = {"FBCONNECT_REDIS_URL": "rediss://127.0.0.1:1", "FBCONNECT_REDIS_MASTER": master,
               "FBCONNECT_REDIS_SENTINELS": ",".join(f"127.0.0.1:{p}" for p in sentinel_ports),
               "FBCONNECT_REDIS_CA_FILE": f"{pki}/ca.pem", "FBCONNECT_REDIS_CERT_FILE": f"{pki}/client.pem",
               "FBCONNECT_REDIS_KEY_FILE": f"{pki}/client.key", "FBCONNECT_REDIS_TIMEOUT_MS": "500",
               "FBCONNECT_REDIS_WAIT_TIMEOUT_MS": "500"}
        # Sentinels refusing a missing client certificate: said, and --check-config fails.
        out = stack.fbconnect_cmd("--check-config", **{**env, "FBCONNECT_REDIS_CERT_FILE": "",
                                                      "FBCONNECT_REDIS_KEY_FILE": ""})
        check(out.returncode == 1 and "FBCONNECT_REDIS_CERT_FILE is not set" in out.stdout,
              f"sentinels without a client certificate: {out.returncode} {out.stdout[-300:]} {out.stderr[-300:]}")
        with stack.settings(env):
            users = []
            for _ in range(6):
                b = Browser(stack)
                check(b.connect(f"tlsfo-{uuid.uuid4().hex[:8]}@example.com").status == 303, "connect over TLS sentinels")
                users.append(b)
            old = named()
            primary.cli("SENTINEL", "failover", master, port=sentinel_ports[0])
            wait_until(lambda: named() not in (None, old), timeout=30, what="a new primary")
            wait_until(lambda: all(u.status().status == 200 for u in users), timeout=20,
                       what="every user served by the new primary")
            lost = [u for u in users if not u.status().json()["connected"]]
            check(not lost, f"{len(lost)} connections lost in a failover over TLS")
            check(all(auth(stack, u).status == 200 for u in users), "auth after the failover")
            b = Browser(stack)
            check(b.connect(email()).status == 303, "connect on the new primary")
    finally:
        for port in sentinel_ports:
            primary.cli("SHUTDOWN", port=port)
        for node in (replica, primary):
            for port in data_ports:
                node.cli("SHUTDOWN", "NOSAVE", port=port)
