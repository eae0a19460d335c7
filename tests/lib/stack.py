"""The local stack (scripts/stack.sh) in its own folder on free ports: Redis, the sandbox
FreshBooks, fbconnect (two processes) and nginx; the sandbox's control interface; Redis
inspection; fbconnect's settings changed for a block and restored."""
import contextlib
import json
import os
import socket
import subprocess

from checks import TestFailure, check
from web import request

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def process_gone(pid):
    """True when pid has exited (a zombie waiting for init counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return True


class Stack:
    """The local stack in its own folder on free ports."""

    def __init__(self, workdir, build, extra_env=None):
        self.dir = workdir
        self.build = build
        (self.http_port, self.internal_port, self.sandbox_port, self.sandbox_http_port,
         self.redis_port) = free_ports(5)
        self.base_path = "/"
        self.cookie_name = "fbconnect_session"
        self.extra_env = dict(extra_env or {})
        self.overrides = {}  # fbconnect's settings beyond the stack's own, while a test runs

    def env(self, overrides=None):
        e = dict(os.environ)
        for k in list(e):
            if k.startswith("FBCONNECT_") or k.startswith("FBSANDBOX_"):
                del e[k]
        e.update({
            "BUILD": self.build,
            "HTTP_PORT": str(self.http_port),
            "INTERNAL_PORT": str(self.internal_port),
            "SANDBOX_PORT": str(self.sandbox_port),
            "SANDBOX_HTTP_PORT": str(self.sandbox_http_port),
            "REDIS_PORT": str(self.redis_port),
            "PUBLIC_HOST": "127.0.0.1",
            "REDIS_PERSIST": "1",
            "FBSANDBOX_REDIRECT_URIS": ",".join(
                f"http://127.0.0.1:{self.http_port}{p}callback" for p in ("/", "/fb/")),
        })
        e.update(self.extra_env)
        e.update(overrides or {})
        return e

    def run(self, *args, overrides=None, check_rc=True):
        r = subprocess.run(["sh", os.path.join(ROOT, "scripts", "stack.sh"), *args, self.dir],
                           env=self.env(overrides), capture_output=True, text=True)
        if check_rc and r.returncode != 0:
            raise TestFailure(f"stack.sh {' '.join(args)} failed: {r.stderr.strip()}")
        return r

    def start(self):
        self.run("start")

    def stop(self):
        self.run("stop", check_rc=False)

    def restart_fbconnect(self, overrides=None):
        self.run("stop-fbconnect")
        self.run("start-fbconnect", overrides=overrides)
        self.base_path = (overrides or {}).get("FBCONNECT_BASE_PATH", "/")
        self.overrides = dict(overrides or {})

    @contextlib.contextmanager
    def settings(self, overrides):
        """fbconnect restarted with these settings for a block (it may restart again inside);
        the stack's own settings are back afterwards, whatever happened."""
        self.restart_fbconnect(overrides)
        try:
            yield self
        finally:
            self.restart_fbconnect()

    # URLs
    def site(self, path=""):
        return f"http://127.0.0.1:{self.http_port}{self.base_path}{path}"

    def internal(self, path=""):
        return f"http://127.0.0.1:{self.internal_port}{self.base_path}{path}"

    def local(self, url):
        check(url and url.startswith(f"http://127.0.0.1:{self.http_port}/"), f"unexpected URL {url!r}")
        return url

    # The sandbox's control interface (plain HTTP port, loopback).
    def sandbox(self, what, body=None):
        url = f"http://127.0.0.1:{self.sandbox_http_port}/_sandbox/{what}"
        if body is None and what in ("stats", "user"):
            r = request("GET", url)
        else:
            r = request("POST", url, json.dumps(body or {}).encode(),
                        {"Content-Type": "application/json"})
        check(r.status == 200, f"sandbox {what} answered {r.status}: {r.text}")
        return r.json()

    def provider(self, method, path, body=None, headers=None):
        """A call to the sandbox's HTTPS API, trusting only its test CA."""
        return request(method, f"https://127.0.0.1:{self.sandbox_port}{path}", body, headers,
                       cafile=os.path.join(self.dir, "ca", "ca.pem"))

    def client_secret(self):
        with open(os.path.join(self.dir, "secrets", "client_secret")) as f:
            return f.read().strip()

    def fault(self, endpoint, mode, **kw):
        self.sandbox("fault", dict(endpoint=endpoint, mode=mode, **kw))

    def clear_faults(self):
        for ep in ("authorize", "token", "revoke", "me"):
            self.fault(ep, "none")

    def stats(self):
        return self.sandbox("stats")

    # Redis
    def redis(self, *args):
        r = subprocess.run(["redis-cli", "-p", str(self.redis_port), "--raw", *args],
                           capture_output=True, text=True, errors="replace", timeout=10)
        return r.stdout.strip()

    def keys(self, pattern):
        out = self.redis("--scan", "--pattern", pattern)
        return [k for k in out.splitlines() if k]

    def dbsize(self):
        return int(self.redis("DBSIZE") or 0)

    def fbconnect_pid(self):
        with open(os.path.join(self.dir, "fbconnect.pid")) as f:
            return int(f.read().strip())

    def internal_get(self, path, cookies=None, headers=None):
        h = dict(headers or {})
        if cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        return request("GET", self.internal(path), headers=h)

    def fbconnect_env(self, **overrides):
        """The environment the stack's fbconnect runs with, plus overrides."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("FBCONNECT_")}
        with open(os.path.join(self.dir, "fbconnect.env")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                env[k] = v
        env.update(overrides)
        return env

    def fbconnect_cmd(self, *args, **overrides):
        """Runs build/fbconnect with a command (rekey, connections, …)."""
        return subprocess.run([os.path.join(self.build, "fbconnect"), *args],
                              env=self.fbconnect_env(**overrides), capture_output=True, text=True,
                              timeout=60)

    def log(self, name):
        if name == "fbconnect.log":  # every instance's
            logs = sorted(f for f in os.listdir(os.path.join(self.dir, "logs"))
                          if f.startswith("fbconnect") and f.endswith(".log"))
            return "".join(self.log_file(f) for f in logs)
        return self.log_file(name)

    def log_file(self, name):
        p = os.path.join(self.dir, "logs", name)
        if not os.path.exists(p):
            return ""
        with open(p, errors="replace") as f:
            return f.read()

    def secret_key(self):
        import base64
        with open(os.path.join(self.dir, "secrets", "secret_key")) as f:
            return base64.b64decode(f.read().strip())
