"""Test harness: the local stack (scripts/stack.sh) on free ports, a small browser with a
cookie jar that never follows redirects, the sandbox's control interface, and Redis
inspection.  Standard library only."""

import hashlib
import hmac
import html
import http.client
import json
import os
import re
import socket
import struct
import subprocess
import time
import urllib.parse

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


class TestFailure(AssertionError):
    pass


def check(cond, message):
    if not cond:
        raise TestFailure(message)


def wait_until(cond, timeout=10.0, what="condition"):
    """A latch: polls cond() until it is true, failing after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TestFailure(f"timed out waiting for {what}")
        time.sleep(0.02)


class Response:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers  # list of (name, value)
        self.body = body

    def header(self, name):
        for k, v in self.headers:
            if k.lower() == name.lower():
                return v
        return None

    def headers_named(self, name):
        return [v for k, v in self.headers if k.lower() == name.lower()]

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)


def request(method, url, body=None, headers=None, timeout=30, cafile=None):
    u = urllib.parse.urlsplit(url)
    if u.scheme == "https":
        import ssl
        ctx = ssl.create_default_context(cafile=cafile)
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=ctx)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    path = u.path or "/"
    if u.query:
        path += "?" + u.query
    try:
        conn.request(method, path, body=body, headers=headers or {})
        r = conn.getresponse()
        return Response(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


class Browser:
    """Cookies by name (every test host is loopback), no redirects followed."""

    def __init__(self, stack, site_user=None):
        self.stack = stack
        self.cookies = {}
        self.site_user = site_user

    def _send(self, method, url, body=None, headers=None):
        h = dict(headers or {})
        if self.cookies:
            h["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        if self.site_user:
            h["X-Test-Site-User"] = self.site_user
        r = request(method, url, body, h)
        for sc in r.headers_named("Set-Cookie"):
            name, _, rest = sc.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in sc:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return r

    def get(self, url, headers=None):
        return self._send("GET", url, headers=headers)

    def post(self, url, form, headers=None):
        h = {"Content-Type": "application/x-www-form-urlencoded"}
        h.update(headers or {})
        return self._send("POST", url, urllib.parse.urlencode(form).encode(), h)

    @property
    def session(self):
        return self.cookies.get(self.stack.cookie_name)

    def authorize_link(self, connect_path="connect"):
        r = self.get(self.stack.site(connect_path))
        check(r.status == 200, f"/connect answered {r.status}")
        m = re.search(r'<a class="button" href="([^"]+)"', r.text)
        check(m, "no authorize link on the connect page")
        return html.unescape(m.group(1)), r

    def start(self, connect_path="connect"):
        """Opens the connect page and returns the state of its authorize link."""
        link, _ = self.authorize_link(connect_path)
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
        return q["state"][0], link

    def approve(self, link, email, action="authorize"):
        """Acts at the sandbox's authorize page; returns the callback URL it redirects to."""
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
        page = request("GET", link)
        check(page.status == 200, f"sandbox authorize page answered {page.status}")
        form = {
            "client_id": q["client_id"][0],
            "redirect_uri": q["redirect_uri"][0],
            "state": q.get("state", [""])[0],
            "scope": q.get("scope", [""])[0],
            "email": email,
            "action": action,
        }
        r = request("POST", link.split("?")[0], urllib.parse.urlencode(form).encode(),
                    {"Content-Type": "application/x-www-form-urlencoded"})
        check(r.status == 302, f"sandbox authorize POST answered {r.status}")
        return r.header("Location")

    def connect(self, email, connect_path="connect"):
        """The whole flow; returns the callback's response."""
        _, link = self.start(connect_path)
        callback = self.approve(link, email)
        return self.get(self.stack.local(callback))

    def status(self):
        r = self.get(self.stack.site("status"))
        return r


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


# ---- an independent implementation of fbconnect's state format, for forging tests ----

def kdf(master, subkey_id, length=32):
    """libsodium crypto_kdf_derive_from_key with context "fbconnct"."""
    return hashlib.blake2b(b"", digest_size=length, key=master,
                           salt=struct.pack("<Q", subkey_id) + b"\0" * 8,
                           person=b"fbconnct" + b"\0" * 8).digest()


def make_state(master, session_id, expires, site_user=None, return_to=b"", nonce=None):
    kid = kdf(master, 4, 16)[:4]
    state_key = kdf(master, 2)
    sbind = hashlib.blake2b(b"state-session\0" + session_id.encode(), digest_size=16).digest()
    ubind = (hashlib.blake2b(b"state-user\0" + site_user.encode(), digest_size=16).digest()
             if site_user else b"\0" * 16)
    body = (b"\x01" + kid + (nonce or os.urandom(32)) + struct.pack(">Q", expires) + sbind +
            ubind + struct.pack(">H", len(return_to)) + return_to)
    mac = hmac.new(state_key, body, hashlib.sha512).digest()[:32]
    import base64
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()
