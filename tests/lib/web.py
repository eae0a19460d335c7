"""HTTP for the tests: request() over http or https (trusting a given CA), and a small
browser with a cookie jar that never follows redirects and knows the connect flow."""
import html
import json
import http.client
import re
import urllib.parse

from checks import check


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

    def approve(self, link, email, action="authorize", businesses=None):
        """Acts at the sandbox's authorize page (signing in with `businesses` businesses, 0-5,
        when given); returns the callback URL it redirects to."""
        q = urllib.parse.parse_qs(urllib.parse.urlsplit(link).query)
        page = request("GET", link)
        check(page.status == 200, f"sandbox authorize page answered {page.status}")
        form = {
            "client_id": q["client_id"][0],
            "redirect_uri": q["redirect_uri"][0],
            "state": q.get("state", [""])[0],
            "scope": q.get("scope", [""])[0],
            "code_challenge": q.get("code_challenge", [""])[0],
            "code_challenge_method": q.get("code_challenge_method", [""])[0],
            "email": email,
            "action": action,
        }
        if businesses is not None:
            form["businesses"] = str(businesses)
        r = request("POST", link.split("?")[0], urllib.parse.urlencode(form).encode(),
                    {"Content-Type": "application/x-www-form-urlencoded"})
        check(r.status == 302, f"sandbox authorize POST answered {r.status}")
        return r.header("Location")

    def connect(self, email, connect_path="connect", businesses=None):
        """The whole flow; returns the callback's response."""
        _, link = self.start(connect_path)
        callback = self.approve(link, email, businesses=businesses)
        return self.get(self.stack.local(callback))

    def status(self):
        r = self.get(self.stack.site("status"))
        return r
