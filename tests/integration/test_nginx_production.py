"""The shipped production nginx files (nginx/fbconnect-site.conf and what it includes), run
for real in a second nginx over TLS against the stack's fbconnect processes."""
import http.client
import os
import re
import ssl
import subprocess
import time
import uuid

from checks import check, wait_until
from stack import free_ports
from web import Browser


class Prod:
    def __init__(self, stack):
        self.stack = stack
        self.https_port, self.http_port = free_ports(2)
        self.ca = os.path.join(stack.dir, "ca", "ca.pem")
        self.dir = os.path.join(stack.dir, "prod")
        os.makedirs(os.path.join(self.dir, "www"), exist_ok=True)
        os.makedirs(os.path.join(self.dir, "tmp"), exist_ok=True)
        with open(os.path.join(self.dir, "www", "index.html"), "w") as f:
            f.write('<!doctype html><title>site</title><link rel="stylesheet" href="/site.css">'
                    '<script src="/site.js"></script><p>the site\n')
        with open(os.path.join(self.dir, "www", "site.css"), "w") as f:
            f.write("p { color: rgb(1, 2, 3); }\n")
        with open(os.path.join(self.dir, "www", "site.js"), "w") as f:
            f.write("document.documentElement.dataset.ran = 'yes';\n")
        site = open(os.path.join(stack.dir, "nginx-conf", "fbconnect-site.conf")).read()
        site = re.sub(r"\n\s*listen \[::\]:\d+[^;]*;", "", site)
        site = site.replace("listen 80;", f"listen 127.0.0.1:{self.http_port};")
        site = site.replace("listen 443 ssl http2;", f"listen 127.0.0.1:{self.https_port} ssl http2;")
        site = site.replace("/etc/letsencrypt/live/example.com/fullchain.pem",
                            os.path.join(stack.dir, "ca", "sandbox.pem"))
        site = site.replace("/etc/letsencrypt/live/example.com/privkey.pem",
                            os.path.join(stack.dir, "ca", "sandbox.key"))
        site = site.replace("server_name example.com;", "server_name localhost;")
        site = site.replace("/var/www/example", os.path.join(self.dir, "www"))
        self.access_log = os.path.join(stack.dir, "logs", "nginx-access.log")
        tmp = os.path.join(self.dir, "tmp")
        conf = f"""{'user root;' if os.getuid() == 0 else ''}
worker_processes 1;
pid {self.dir}/nginx.pid;
error_log {stack.dir}/logs/prod-nginx-error.log warn;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    client_body_temp_path {tmp}/body; fastcgi_temp_path {tmp}/fcgi; proxy_temp_path {tmp}/proxy;
    uwsgi_temp_path {tmp}/uwsgi; scgi_temp_path {tmp}/scgi;
    include {stack.dir}/nginx-conf/fbconnect.conf;
    {site}
}}
"""
        self.conf = os.path.join(self.dir, "nginx.conf")
        with open(self.conf, "w") as f:
            f.write(conf)

    def start(self):
        r = subprocess.run(["nginx", "-q", "-t", "-c", self.conf, "-p", self.dir], capture_output=True, text=True)
        check(r.returncode == 0, f"nginx rejects the production config: {r.stderr}")
        subprocess.run(["nginx", "-c", self.conf, "-p", self.dir], check=True)
        wait_until(lambda: os.path.exists(os.path.join(self.dir, "nginx.pid")), what="production nginx")

    def stop(self):
        subprocess.run(["nginx", "-c", self.conf, "-p", self.dir, "-s", "quit"], capture_output=True)

    def get(self, path, headers=None, source="127.0.0.1", https=True):
        if https:
            ctx = ssl.create_default_context(cafile=self.ca)
            c = http.client.HTTPSConnection("localhost", self.https_port, context=ctx, timeout=10,
                                            source_address=(source, 0))
        else:
            c = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            c.request("GET", path, headers=headers or {})
            r = c.getresponse()
            return r.status, r.getheaders(), r.read()
        finally:
            c.close()


def named(headers, name):
    return [v for k, v in headers if k.lower() == name.lower()]


def test_production_nginx(stack):
    prod = Prod(stack)
    prod.start()
    try:
        status, headers, body = prod.get("/connect")
        check(status == 200 and b"Connect to FreshBooks" in body, f"/connect over TLS: {status}")
        check(named(headers, "Strict-Transport-Security") == ["max-age=63072000; includeSubDomains"], "HSTS")
        for h in ("X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy", "Content-Security-Policy",
                  "Cache-Control"):
            check(len(named(headers, h)) == 1, f"{h} sent {len(named(headers, h))} times")
        check("'sha256-" in named(headers, "Content-Security-Policy")[0], "fbconnect's page CSP replaced")
        # The site's own pages get the site's headers, not fbconnect's: nothing blocks its
        # stylesheets and scripts, nothing stops caching them.
        status, headers, body = prod.get("/")
        check(status == 200 and b"the site" in body, "the site's own location")
        check(not named(headers, "Content-Security-Policy"), f"a CSP on the site's page: {named(headers, 'Content-Security-Policy')}")
        check(not named(headers, "Cache-Control"), "no-store on the site's page")
        check(named(headers, "Strict-Transport-Security") and named(headers, "X-Content-Type-Options") == ["nosniff"],
              "the site's page lacks the transport and sniffing headers")
        for path, kind in (("/site.css", "text/css"), ("/site.js", "javascript")):
            status, headers, _ = prod.get(path)
            check(status == 200 and kind in named(headers, "Content-Type")[0] and
                  not named(headers, "Content-Security-Policy"), f"{path}: {status} {headers}")

        status, headers, _ = prod.get("/connect", https=False)
        check(status == 301 and named(headers, "Location")[0].startswith("https://"), f"http: {status}")

        check(prod.get("/auth")[0] == 404, "/auth reachable from outside")
        check(prod.get("/metrics")[0] == 200, "/metrics from a trusted address")
        check(prod.get("/metrics", source="127.0.0.2")[0] == 403, "/metrics from an untrusted address")
        check(prod.get("/internal/token?user=x", source="127.0.0.2")[0] == 403, "/internal/ untrusted")
        check(prod.get("/healthz")[0] == 200, "healthz")

        # The API proxy, as a connected browser (the sandbox stands in for api.freshbooks.com).
        b = Browser(stack)
        check(b.connect(f"prod-{uuid.uuid4().hex[:6]}@example.com").status == 303, "connect")
        cookie = {"Cookie": f"{stack.cookie_name}={b.session}"}
        status, headers, body = prod.get("/api/auth/api/v1/users/me", headers=cookie)
        check(status == 200 and b'"email"' in body, f"API proxy: {status} {body[:200]}")
        check(prod.get("/api/auth/api/v1/users/me")[0] == 401, "API proxy without a session")

        # The business-relative paths: 409 until a business is chosen, then that business's.
        b = Browser(stack)
        check(b.connect(f"prod-{uuid.uuid4().hex[:6]}@example.com", businesses=2).status == 303, "connect")
        cookie = {"Cookie": f"{stack.cookie_name}={b.session}"}
        status, _, body = prod.get("/api/business/projects/projects", headers=cookie)
        check(status == 409 and b"no_business_chosen" in body, f"no business chosen: {status} {body[:200]}")
        status, _, body = prod.get("/business", headers=cookie)
        check(status == 200 and b'name="account_id"' in body, f"/business over TLS: {status}")
        csrf = re.search(rb'name="csrf" value="([^"]+)"', body).group(1).decode()
        pick = b.status().json()["businesses"][1]
        check(b.post(stack.site("business"), {"csrf": csrf, "account_id": pick["account_id"]}).status == 303,
              "choose")
        for path, field in (("/api/business/projects/projects", "business_id"),
                            ("/api/business/timetracking/time_entries", "business_id")):
            status, _, body = prod.get(path, headers=cookie)
            check(status == 200 and f'"{field}":{pick["id"]}'.encode() in body.replace(b" ", b""),
                  f"{path}: {status} {body[:200]}")
        status, _, body = prod.get("/api/account/users/clients", headers=cookie)
        check(status == 200 and str(pick["id"] * 10 + 1).encode() in body, f"/api/account/: {status} {body[:200]}")

        # Query strings never reach the access log.
        secret = "code-" + uuid.uuid4().hex
        prod.get(f"/callback?code={secret}&state={secret}")
        time.sleep(0.2)
        log = open(prod.access_log).read()
        check("/callback" in log and secret not in log and "?" not in log, "query strings in the access log")

        # Past the burst: 429, with the security headers nginx adds itself, and a page that
        # tells the person (who may have just approved at FreshBooks) to reload in a moment.
        codes = [prod.get("/callback?code=x&state=y")[0] for _ in range(40)]
        check(429 in codes, f"no 429 on /callback after 40 quick requests: {set(codes)}")
        status, headers, body = next((r for r in (prod.get("/callback?code=x&state=y") for _ in range(5))
                                      if r[0] == 429), (None, [], b""))
        check(status == 429 and b"reload this page" in body and b"nothing was lost" in body,
              f"429 page on /callback: {status} {body[:300]}")
        check(named(headers, "Retry-After") == ["5"] and "text/html" in named(headers, "Content-Type")[0],
              f"429 headers: {headers}")
        time.sleep(4.5)  # the bucket drains (5 r/s)
        codes = [prod.get("/connect")[0] for _ in range(40)]
        check(429 in codes, f"no 429 after 40 quick requests: {set(codes)}")
        status, headers, _ = next((r for r in (prod.get("/connect") for _ in range(5)) if r[0] == 429),
                                  (None, [], b""))
        check(status == 429, "no 429 to inspect")
        check(named(headers, "Content-Security-Policy") == ["default-src 'none'; frame-ancestors 'none'; base-uri 'none'"],
              f"CSP on nginx's 429: {named(headers, 'Content-Security-Policy')}")
        check(named(headers, "Cache-Control") == ["no-store"] and named(headers, "Strict-Transport-Security"),
              "headers on nginx's 429")
    finally:
        prod.stop()
