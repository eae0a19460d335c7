#!/usr/bin/env python3
"""Writes the seed corpus of each fuzz target into tests/fuzz/corpus/<target>/.  Run once
when a target or the formats change; the seeds are committed.

usage: make_seeds.py [TARGET...]   (default: every target; the state seeds differ per run)"""
import base64
import hashlib
import hmac
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "lib"))
from forge import kdf, make_state, pointer  # noqa: E402
import fcgi  # noqa: E402

SESSION = "A" * 43
KEY = b"\x11" * 32
OLD = b"\x22" * 32


def write(target, name, data):
    d = os.path.join(HERE, "corpus", target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


token = {"access_token": "eyJhbGciOiJSUzI1NiJ9." + "A" * 300 + ".sig", "token_type": "Bearer",
         "expires_in": 43200, "refresh_token": "a" * 64, "scope": "user:profile:read",
         "created_at": 1764400000, "direct_buy_tokens": {}}
me = {"response": {"id": 123, "identity_id": 123, "first_name": "Ada", "last_name": "Lovelace",
                   "email": "ada@example.com", "business_memberships": [
                       {"id": 9, "role": "owner", "business": {"id": 77, "name": "Ada & Co", "account_id": "xZ12k"}}]}}


GEN = "G" * 21 + "A"


def fcgi_seeds():
    """FastCGI input as nginx sends it, and as nothing should."""
    hz = fcgi.params("/healthz", HTTP_COOKIE="fbconnect_session=" + SESSION)
    post = fcgi.params("/disconnect", method="POST", CONTENT_LENGTH="9",
                       CONTENT_TYPE="application/x-www-form-urlencoded")
    big = fcgi.params("/connect", query="x=" + "y" * 300, HTTP_USER_AGENT="u" * 200)
    values = fcgi._record(fcgi.GET_VALUES, 0, b"".join(
        fcgi._nv(n, "") for n in ("FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS")))
    pairs = b"".join(fcgi._nv(k, v) for k, v in hz.items())
    return [
        fcgi.request_bytes(1, hz),
        fcgi.request_bytes(1, post, body=b"csrf=abcd"),
        fcgi.request_bytes(1, big, keep=False),
        fcgi.request_bytes(1, hz) + fcgi.request_bytes(2, hz) + fcgi.request_bytes(1, post, body=b"csrf=x"),
        values + fcgi.request_bytes(3, hz),
        fcgi.begin(1) + fcgi.begin(2) + fcgi.request_bytes(1, hz)[16:],
        fcgi.begin(5, role=fcgi.AUTHORIZER) + fcgi.request_bytes(6, hz),
        fcgi.begin(5, role=fcgi.FILTER, keep=False),
        fcgi.begin(3) + fcgi._record(fcgi.PARAMS, 3, pairs) + fcgi._record(fcgi.ABORT, 3, b"") + fcgi.request_bytes(4, hz),
        fcgi._record(77, 0, b"?") + fcgi.request_bytes(1, hz),
        fcgi.begin(1) + fcgi._record(fcgi.PARAMS, 1, b"\x80\x00\x00\x02\x80\x00\x00\x01ABc") +
        fcgi._record(fcgi.PARAMS, 1, b"") + fcgi._record(fcgi.STDIN, 1, b"z" * 70000) + fcgi._record(fcgi.STDIN, 1, b""),
        b"\x02" + fcgi.request_bytes(1, hz)[1:],
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        fcgi.begin(1) + fcgi._record(fcgi.PARAMS, 1, b"\x01\xff\xff\xff\xffA"),
        fcgi.begin(1) + fcgi._record(fcgi.PARAMS, 1, b"\x05\x03ab") + fcgi._record(fcgi.PARAMS, 1, b""),
        fcgi.begin(1) + fcgi._record(fcgi.STDOUT, 1, b"hi"),
        fcgi.request_bytes(1, hz)[:37],
    ]


seeds = {
    "fuzz_query": ["state=abc&code=def", "code=x&state=" + "A" * 150, "error=access_denied&state=s",
                   "return_to=%2Finvoices%3Fpage%3D2", "st%61te=1&state=2", "a=%zz&state=%00",
                   "return_to=/a+b", "disconnected=1", "user=alice%40example.com", "&&&==&", ""],
    "fuzz_form": ["csrf=AAAA", "email=ada%40example.com&action=authorize",
                  "client_id=c&redirect_uri=http%3A%2F%2Fx%2Fcb&state=s", "csrf=a&csrf=b", "%63srf=x"],
    "fuzz_cookie": ["fbconnect_session=" + SESSION, "a=b; fbconnect_session=" + SESSION + "; c=d",
                    "__Host-fbconnect_session=" + SESSION, "fbconnect_session=short",
                    "fbconnect_session=" + "A" * 42 + "\x80", ";;; =;", ""],
    "fuzz_return_to": ["/", "/invoices?page=2#top", "/caf%C3%A9", "//evil.example", "/\\evil",
                       "/%2f%2fevil", "javascript:alert(1)", "/%0d%0aSet-Cookie:x", "/%25", "/a b"],
    "fuzz_token_json": [b"\x00" + json.dumps(token).encode(),
                        b"\x01" + json.dumps({"error": "invalid_grant"}).encode(),
                        b"\x02" + json.dumps({"error": "invalid_client"}).encode(),
                        b"\x00" + b'{"access_token":"a","refresh_token":"b","expires_in":"x"}',
                        b"\x00<html>Service Unavailable</html>", b"\x05" + b"{}"],
    "fuzz_identity_json": [b"\x01" + json.dumps(me).encode(), b"\x01{\"response\":{}}", b"\x00{}",
                           b"\x01" + json.dumps({"response": {"id": 1, "business_memberships": [{}, {"business": {"id": "x"}}]}}).encode()],
    "fuzz_record": [json.dumps({"g": "G" * 22, "at": "a", "rt": "r", "sc": "", "ca": 1, "ex": 2, "rr": False,
                                "ct": 1, "u": {"id": 5, "em": "e", "fn": "f", "ln": "l"},
                                "b": [{"id": 1, "n": "n", "a": "a"}]}),
                    json.dumps({"at": "a", "rt": "r", "sc": "s", "u": None, "b": []}),
                    "r1:5:" + "x" * 60, "r1:99999999999999999999:abc", "r2:1:zz", "{}",
                    json.dumps({"at": "a", "rt": "r", "sc": "s", "alt": ["r2", "r3", 7, None]})],
    "fuzz_pointer": [pointer(KEY, "s:fuzz-owner", "c:" + "R" * 22, GEN),
                     pointer(OLD, "s:fuzz-owner", "p:" + "P" * 22, GEN),
                     pointer(KEY, "s:other-owner", "c:" + "R" * 22, GEN),
                     pointer(KEY, "s:fuzz-owner", "c:" + "R" * 22, GEN, "77"),
                     pointer(KEY, "s:fuzz-owner", "c:" + "R" * 22, GEN, None),
                     "c:" + "R" * 22 + "/" + GEN, "c:r/" + GEN + "/", "x:r/" + GEN + "/" + "A" * 22, "/"],
    "fuzz_state": [make_state(KEY, SESSION, 1764400000 + 300),
                   make_state(OLD, SESSION, 1764400000 + 300, return_to=b"/back"),
                   make_state(KEY, "B" * 43, 1764400000 + 300),
                   make_state(KEY, SESSION, 1764400000 - 10), "A" * 148, "%%%"],
    "fuzz_fcgi": fcgi_seeds(),
    "fuzz_template": ["<p>{{x}}</p>", "{{#flag}}<b>{{y}}</b>{{/flag}}{{^flag}}no{{/flag}}",
                      "{{#list}}<li>{{name}}</li>{{/list}}", "<style>p{}</style>{{{x}}}",
                      "{{#a}}{{#b}}{{/b}}{{/a}}", "{{", "{{#x}}", "{{/x}}", "<style media=x>{{x}}</style>"],
}

chosen = sys.argv[1:] or list(seeds)
for target in chosen:
    for i, data in enumerate(seeds[target]):
        write(target, f"seed-{i:02d}", data)
print("seeds written for", len(chosen), "targets")
