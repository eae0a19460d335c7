"""An independent implementation of fbconnect's formats, for tests that forge or inspect
what fbconnect writes: key names, states."""
import base64
import hashlib
import hmac
import os
import struct


def redis_name(purpose, value):
    """The 128-bit name inside a Redis key (src/ids.c name_hash)."""
    d = hashlib.blake2b(purpose.encode() + b"\0" + value.encode(), digest_size=16).digest()
    return base64.urlsafe_b64encode(d).rstrip(b"=").decode()


def session_key(browser, prefix="fbc:"):
    """The Redis key of a browser session's owner pointer."""
    return prefix + "s:" + redis_name("session", browser.session)


def kdf(master, subkey_id, length=32):
    """libsodium crypto_kdf_derive_from_key with context "fbconnct"."""
    return hashlib.blake2b(b"", digest_size=length, key=master,
                           salt=struct.pack("<Q", subkey_id) + b"\0" * 8,
                           person=b"fbconnct" + b"\0" * 8).digest()


def pointer(master, owner, record, gen, business="-"):
    """An owner pointer as src/pointer.c makes it ("<record>/<gen>/<business or ->/<tag>");
    business None: 0.2's "<record>/<gen>/<tag>", labelled apart.  owner: "s:…" or "u:…"."""
    h = hashlib.blake2b(digest_size=16, key=kdf(master, 5))
    label = b"fbconnect-pointer-1" if business is None else b"fbconnect-pointer-2"
    parts = [label, owner.encode(), record.encode(), gen.encode()]
    if business is not None:
        parts.append(str(business).encode())
    for part in parts:
        h.update(part + b"\0")
    tag = base64.urlsafe_b64encode(h.digest()).rstrip(b"=").decode()
    return f"{record}/{gen}/{tag}" if business is None else f"{record}/{gen}/{business}/{tag}"


def make_state(master, session_id, expires, site_user=None, return_to=b"", nonce=None):
    kid = kdf(master, 4, 16)[:4]
    state_key = kdf(master, 2)
    sbind = hashlib.blake2b(b"state-session\0" + session_id.encode(), digest_size=16).digest()
    ubind = (hashlib.blake2b(b"state-user\0" + site_user.encode(), digest_size=16).digest()
             if site_user else b"\0" * 16)
    body = (b"\x01" + kid + (nonce or os.urandom(32)) + struct.pack(">Q", expires) + sbind +
            ubind + struct.pack(">H", len(return_to)) + return_to)
    mac = hmac.new(state_key, body, hashlib.sha512).digest()[:32]
    return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode()


def pkce_verifier(master, state):
    """The PKCE code_verifier fbconnect derives from a state (src/state.c)."""
    mac = hmac.new(kdf(master, 6), b"pkce\0" + state.encode(), hashlib.sha512).digest()[:32]
    return base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def pkce_challenge(verifier):
    """S256: base64url(SHA-256(verifier))."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def with_state(link, master, state):
    """An authorize link carrying another state (and that state's PKCE challenge)."""
    import urllib.parse
    u = urllib.parse.urlsplit(link)
    q = dict(urllib.parse.parse_qsl(u.query, keep_blank_values=True))
    q["state"] = state
    if "code_challenge" in q:
        q["code_challenge"] = pkce_challenge(pkce_verifier(master, state))
    return urllib.parse.urlunsplit(u._replace(query=urllib.parse.urlencode(q)))
