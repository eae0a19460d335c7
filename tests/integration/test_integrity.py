"""What a writer to Redis (or bad data in it) can and cannot do: owner pointers are bound to
their owner; a record version outside the one format is overwritable, not stuck; an error
no retry mends fails fast."""
import os
import re
import time

from checks import check
from flows import auth, bearer, email, works_at_freshbooks
from forge import pointer, redis_name
from web import Browser


def session_key(b):
    return "fbc:s:" + redis_name("session", b.session)


def test_copied_pointer_is_not_connected(stack):
    victim = Browser(stack)
    check(victim.connect(email()).status == 303, "victim connects")
    attacker = Browser(stack)
    attacker.get(stack.site("connect"))  # a session cookie of its own
    check(attacker.session, "no session for the attacker")
    stolen = stack.redis("GET", session_key(victim))
    check(stolen.count("/") == 3, f"pointer not bound: {stolen!r}")
    stack.redis("SET", session_key(attacker), stolen, "EX", "600")
    j = attacker.status().json()
    check(j["connected"] is False and j["user"] is None, f"a copied pointer connects: {j}")
    check(auth(stack, attacker).status == 401, "a copied pointer gets a token")
    check("not bound to its owner" in stack.log("fbconnect.log"), "refusal not logged")
    # An edited one neither; the victim is untouched.
    stack.redis("SET", session_key(attacker), stolen[:-1] + ("A" if stolen[-1] != "A" else "B"))
    check(attacker.status().json()["connected"] is False, "an edited pointer connects")
    check(victim.status().json()["connected"] is True, "the victim lost the connection")
    check(works_at_freshbooks(stack, bearer(auth(stack, victim))), "the victim's token")


def test_unbound_pointer_refused_until_bound_once(stack):
    """A pointer from before pointers were bound ("<record>/<generation>") is refused and left
    in place; `rekey` leaves it so; `rekey --bind-unbound` binds it, once per Redis: after
    that an unbound pointer can only be a forgery, which no rekey binds."""
    b = Browser(stack)
    check(b.connect(email()).status == 303, "connect")
    bound = stack.redis("GET", session_key(b))
    ttl = int(stack.redis("TTL", session_key(b)))
    unbound = "/".join(bound.split("/")[:2])  # "<record>/<generation>", as 0.1 wrote it
    stack.redis("SET", session_key(b), unbound, "EX", str(ttl))
    check(b.status().json()["connected"] is False, "an unbound pointer is accepted")
    check(stack.redis("GET", session_key(b)) == unbound, "the unbound pointer was deleted")
    r = stack.fbconnect_cmd("rekey")
    check(re.search(r"[1-9]\d* unbound \(refused", r.stdout), f"rekey: {r.stdout}")
    check(stack.redis("GET", session_key(b)) == unbound, "plain rekey bound an unbound pointer")
    r = stack.fbconnect_cmd("rekey", "--bind-unbound")
    check(r.returncode == 0, f"rekey --bind-unbound: {r.returncode} {r.stdout} {r.stderr}")
    check(re.search(r"owner pointers: [1-9]\d* bound with the current key", r.stdout), r.stdout)
    check(stack.redis("GET", session_key(b)).startswith(unbound + "/-/"), "rekey did not bind the pointer")
    check(int(stack.redis("TTL", session_key(b))) > ttl - 60, "rekey changed the pointer's TTL")
    check(b.status().json()["connected"] is True, "not connected after rekey")
    # The forgery the review found: a victim's pointer, tag stripped, under the attacker's key.
    attacker = Browser(stack)
    attacker.get(stack.site("connect"))
    stack.redis("SET", session_key(attacker), unbound, "EX", "600")
    for args in (("rekey",), ("rekey", "--bind-unbound")):
        r = stack.fbconnect_cmd(*args)
        check(stack.redis("GET", session_key(attacker)) == unbound, f"{' '.join(args)} bound a forgery")
    check(r.returncode == 1 and "done already" in r.stdout, f"a second --bind-unbound: {r.stdout}")
    check(attacker.status().json()["connected"] is False, "the forged pointer connects")
    check(auth(stack, attacker).status == 401, "the forged pointer gets a token")


def test_record_version_beyond_the_format(stack):
    """A 19-digit version (more than the compare-and-set scripts read exactly) used to make
    the record impossible to overwrite: every reconnect spent the code and lost the pair."""
    who = email()
    b = Browser(stack)
    check(b.connect(who).status == 303, "connect")
    record = "fbc:" + stack.redis("GET", session_key(b)).split("/")[0]
    for bad in ("r1:1234567890123456789:junk", "r1:0042:junk", "r1:9999999999999999:junk"):
        stack.redis("SET", record, bad)
        again = Browser(stack)
        t0 = time.monotonic()
        r = again.connect(who)
        check(r.status == 303, f"reconnect over version {bad[:24]!r}: {r.status}")
        check(time.monotonic() - t0 < 3, "reconnect took long: retried a stuck record")
        check(stack.redis("GET", record).startswith("r1:") and
              stack.redis("GET", record) != bad, "the record was not overwritten")
        check(works_at_freshbooks(stack, bearer(auth(stack, again))), "reconnected, no token")


def test_wrong_type_fails_fast(stack):
    """A key of the wrong type is an error no retry mends: 503 at once, a clear log line —
    not 20 s of retries."""
    who = email()
    b = Browser(stack)
    check(b.connect(who).status == 303, "connect")
    record = "fbc:" + stack.redis("GET", session_key(b)).split("/")[0]
    stack.redis("DEL", record)
    stack.redis("LPUSH", record, "not-a-record")
    try:
        again = Browser(stack)
        t0 = time.monotonic()
        r = again.connect(who)
        took = time.monotonic() - t0
        check(r.status == 503, f"callback over a wrong-type key: {r.status}")
        check(took < 2.5, f"callback retried a permanent error for {took:.1f}s")
        check("no retry will mend" in stack.log("fbconnect.log"), "no clear log line")
    finally:
        stack.redis("DEL", record)
    check(Browser(stack).connect(who).status == 303, "connect once the key is fixed")


def test_pointer_from_0_2_still_connects_and_is_made_again(stack):
    """A pointer 0.2 wrote ("<record>/<generation>/<tag>", without the business) is still its
    owner's: the connection works, and the pointer is written again in today's format."""
    b = Browser(stack)
    check(b.connect(email(), businesses=1).status == 303, "connect")
    now = stack.redis("GET", session_key(b))
    record, gen = now.split("/")[:2]
    owner = "s:" + redis_name("session", b.session)
    old = pointer(stack.secret_key(), owner, record, gen, None)
    stack.redis("SET", session_key(b), old, "KEEPTTL")
    check(pointer(stack.secret_key(), owner, record, gen, now.split("/")[2]) == now,
          "forge.pointer is not fbconnect's format")
    j = b.status().json()
    check(j["connected"] is True, f"a 0.2 pointer no longer connects: {j}")
    check(j["business"] == j["businesses"][0], "the only business is not chosen after the upgrade")
    check(auth(stack, b).header("X-FreshBooks-Account-Id") == j["businesses"][0]["account_id"],
          "/auth lost the account id at the upgrade")
    again = stack.redis("GET", session_key(b))
    check(again.count("/") == 3 and again.startswith(f"{record}/{gen}/{j['business']['id']}/"),
          f"not made again: {again!r}")
    # Copied under another owner it is refused like any other.
    attacker = Browser(stack)
    attacker.get(stack.site("connect"))
    stack.redis("SET", session_key(attacker), old, "EX", "600")
    check(attacker.status().json()["connected"] is False, "a copied 0.2 pointer connects")
