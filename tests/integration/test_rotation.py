"""Key rotation: old keys still open records and verify states and CSRF values; records
are re-sealed with the current key on use or by `fbconnect rekey`; key names never move."""
import base64
import os
import re
import subprocess
import uuid

from checks import check
from web import Browser


def email():
    return f"rot-{uuid.uuid4().hex[:10]}@example.com"


def key_file(stack, name, raw):
    path = os.path.join(stack.dir, "secrets", name)
    with open(path, "w") as f:
        f.write(base64.b64encode(raw).decode() + "\n")
    return path


def kids_in_use(stack):
    """The key ids (4 bytes after "r1:<version>:") of every stored record."""
    kids = set()
    for k in stack.keys("fbc:c:*") + stack.keys("fbc:p:*"):
        raw = subprocess.run(["redis-cli", "-p", str(stack.redis_port), "--no-raw", "GET", k],
                             capture_output=True, timeout=10).stdout
        value = raw.decode("unicode_escape").encode("latin-1").strip().strip(b'"')
        m = re.match(rb"r1:\d+:(.{4})", value, re.S)
        if m:
            kids.add(m.group(1))
    return kids


def test_rotation_and_rekey(stack):
    key_a = stack.secret_key()
    key_b = os.urandom(32)
    file_a = os.path.join(stack.dir, "secrets", "secret_key")
    file_b = key_file(stack, "secret_key_b", key_b)
    a_b64 = base64.b64encode(key_a).decode()

    used, idle = Browser(stack), Browser(stack)
    check(used.connect(email()).status == 303 and idle.connect(email()).status == 303, "connect under A")
    page = used.get(stack.site("connect"))
    csrf_a = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    pending = Browser(stack)
    _, link = pending.start()  # a state issued under key A, completed after the rotation
    callback = pending.approve(link, email())
    names_before = set(stack.keys("fbc:[scpu]:*"))

    # Rotate: B is current, A still accepted.
    with stack.settings({"FBCONNECT_SECRET_KEY_FILE": file_b, "FBCONNECT_OLD_SECRET_KEYS": a_b64}):
        check(pending.get(stack.local(callback)).status == 303, "a state issued under the old key")
        check(used.status().json()["connected"], "a record sealed under the old key does not open")
        check(used.post(stack.site("disconnect"), {"csrf": "x"}).status == 403, "csrf check")
        r = stack.fbconnect_cmd("rekey", FBCONNECT_SECRET_KEY_FILE=file_b, FBCONNECT_OLD_SECRET_KEYS=a_b64)
        check(r.returncode == 0 and "re-sealed" in r.stdout, f"rekey: {r.returncode} {r.stdout} {r.stderr}")
        m = re.search(r"(\d+) re-sealed", r.stdout)
        check(int(m.group(1)) >= 1, f"rekey re-sealed nothing: {r.stdout}")
        check(set(stack.keys("fbc:[scpu]:*")) >= names_before, "rotation renamed or dropped Redis keys")

        # Retire A: everything still opens with B alone.
        stack.restart_fbconnect({"FBCONNECT_SECRET_KEY_FILE": file_b})
        for b in (used, idle, pending):
            check(b.status().json()["connected"], "a connection lost after retiring the old key")
        check(len(kids_in_use(stack)) == 1, "records under more than one key after rekey")
        # The old key's CSRF value no longer works; a fresh one does.
        check(used.post(stack.site("disconnect"), {"csrf": csrf_a}).status == 403, "retired key's csrf accepted")

        # Rotate back so the rest of the suite keeps its key.
        r = stack.fbconnect_cmd("rekey", FBCONNECT_SECRET_KEY_FILE=file_a,
                          FBCONNECT_OLD_SECRET_KEYS=base64.b64encode(key_b).decode())
        check(r.returncode == 0, f"rekey back: {r.stdout} {r.stderr}")



def test_csrf_from_before_rotation(stack):
    b = Browser(stack)
    check(b.connect(email()).status == 303, "connect")
    page = b.get(stack.site("connect"))
    csrf = re.search(r'name="csrf" value="([^"]+)"', page.text).group(1)
    key_b = os.urandom(32)
    with stack.settings({"FBCONNECT_SECRET_KEY_FILE": key_file(stack, "secret_key_c", key_b),
                             "FBCONNECT_OLD_SECRET_KEYS": base64.b64encode(stack.secret_key()).decode()}):
        r = b.post(stack.site("disconnect"), {"csrf": csrf})
        check(r.status == 303, f"a CSRF value from before the rotation: {r.status}")
