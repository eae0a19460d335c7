"""The operator's command line: connections, disconnect, purge, --check-config's Redis check."""
import uuid

from checks import check
from flows import auth, bearer
from web import Browser


def connected(stack):
    b = Browser(stack)
    who = f"cli-{uuid.uuid4().hex[:8]}@example.com"
    check(b.connect(who).status == 303, "connect")
    return b, who, b.status().json()["user"]["id"]


def test_connections_lists_without_tokens(stack):
    b, who, uid = connected(stack)
    token = bearer(auth(stack, b))
    r = stack.fbconnect_cmd("connections")
    check(r.returncode == 0, f"exit {r.returncode}: {r.stderr}")
    line = [l for l in r.stdout.splitlines() if who in l]
    check(line and "connected" in line[0] and str(uid) in line[0], f"listing: {r.stdout[-500:]}")
    check(token not in r.stdout and token[:40] not in r.stdout, "a token in the listing")
    check("current-key" in line[0], "key column")


def test_disconnect_and_purge(stack):
    b, who, uid = connected(stack)
    before = stack.stats()["revocations"]
    r = stack.fbconnect_cmd("disconnect", "--identity", str(uid))
    check(r.returncode == 0 and "confirmed" in r.stdout, f"disconnect: {r.returncode} {r.stdout} {r.stderr}")
    check(stack.stats()["revocations"] == before + 2, "not revoked at FreshBooks")
    check(not b.status().json()["connected"], "still connected")
    r = stack.fbconnect_cmd("disconnect", "--identity", str(uid))
    check(r.returncode == 3, f"second disconnect: exit {r.returncode}")

    b, who, uid = connected(stack)
    before = stack.stats()["revocations"]
    r = stack.fbconnect_cmd("purge", "--identity", str(uid))
    check(r.returncode == 0 and stack.stats()["revocations"] == before, f"purge: {r.returncode}")
    check(not b.status().json()["connected"], "still connected after purge")

    b, who, uid = connected(stack)
    stack.fault("revoke", "status", status=503)
    r = stack.fbconnect_cmd("disconnect", "--identity", str(uid))
    check(r.returncode == 4, f"disconnect with FreshBooks down: exit {r.returncode}")
    check(not b.status().json()["connected"], "not deleted when FreshBooks is down")

    for args in (["disconnect"], ["purge", "--identity", "abc"], ["disconnect", "--user", "x"],
                 ["purge", "--bogus", "1"]):
        r = stack.fbconnect_cmd(*args)
        check(r.returncode == 2, f"{args}: exit {r.returncode}")
    r = stack.fbconnect_cmd("disconnect", "--identity", "1", FBCONNECT_REDIS_URL="redis://127.0.0.1:1")
    check(r.returncode == 1, f"Redis down: exit {r.returncode}")


def test_disconnect_site_user(stack):
    with stack.settings({"FBCONNECT_USER_PARAM": "TEST_SITE_USER"}):
        user = "cli-" + uuid.uuid4().hex[:6]
        b = Browser(stack, site_user=user)
        check(b.connect(f"{user}@example.com").status == 303, "connect")
        r = stack.fbconnect_cmd("disconnect", "--user", user, FBCONNECT_USER_PARAM="TEST_SITE_USER")
        check(r.returncode == 0, f"disconnect --user: {r.returncode} {r.stdout} {r.stderr}")
        check(not b.status().json()["connected"], "site user still connected")
        r = stack.fbconnect_cmd("disconnect", "--user", user, FBCONNECT_USER_PARAM="TEST_SITE_USER")
        check(r.returncode == 3, f"again: exit {r.returncode}")


def test_check_config_warns_about_eviction(stack):
    stack.redis("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
    try:
        r = stack.fbconnect_cmd("--check-config")
        check(r.returncode == 0 and "maxmemory-policy is allkeys-lru" in r.stdout,
              f"no eviction warning: {r.stdout[-400:]}")
    finally:
        stack.redis("CONFIG", "SET", "maxmemory-policy", "noeviction")
    r = stack.fbconnect_cmd("--check-config")
    check("warning" not in r.stdout, f"warning with noeviction: {r.stdout[-300:]}")


def test_rough_edges(stack):
    """--opt=value forms, the plural, no header before a Redis failure, --help's order,
    every configuration problem at once, typos named, a redirect URI off the base path."""
    b, who, uid = connected(stack)
    r = stack.fbconnect_cmd("purge", f"--identity={uid}")
    check(r.returncode == 0 and "purged" in r.stdout, f"--identity=N: {r.returncode} {r.stdout} {r.stderr}")
    r = stack.fbconnect_cmd("connections")
    last = r.stdout.strip().splitlines()[-1]
    check(last.split()[1] == ("connection" if last.split()[0] == "1" else "connections"), f"plural: {last}")
    r = stack.fbconnect_cmd("connections", FBCONNECT_REDIS_URL="redis://127.0.0.1:1")
    check(r.returncode == 1 and r.stdout == "" and "Redis unavailable" in r.stderr,
          f"Redis down: {r.returncode} {r.stdout!r} {r.stderr!r}")
    r = stack.fbconnect_cmd("--help")
    check(r.stdout.index("--help") < r.stdout.index("Exit status"), "--help: exit statuses before the options")
    r = stack.fbconnect_cmd("--check-config", FBCONNECT_SESSION_TTL="abc", FBCONNECT_COOKIE_NAME="bad name!",
                            FBCONNECT_REDIRCT_URI="https://example.com/callback")
    check(r.returncode == 1, f"bad config: exit {r.returncode}")
    check("FBCONNECT_SESSION_TTL" in r.stderr and "FBCONNECT_COOKIE_NAME" in r.stderr,
          f"not every problem reported: {r.stderr}")
    check("FBCONNECT_REDIRCT_URI is not a setting" in r.stderr and "did you mean FBCONNECT_REDIRECT_URI" in r.stderr,
          f"typo not named: {r.stderr}")
    r = stack.fbconnect_cmd("--check-config", FBCONNECT_BASE_PATH="/freshbooks/")
    check(r.returncode == 1 and "FBCONNECT_REDIRECT_URI" in r.stderr and "/freshbooks/callback" in r.stderr,
          f"redirect URI off the base path accepted: {r.returncode} {r.stderr}")
    import os
    path = os.path.join(stack.dir, "short-key")
    with open(path, "w") as f:
        f.write("too-short\n")
    r = stack.fbconnect_cmd("--check-config", FBCONNECT_SECRET_KEY_FILE=path)
    check(r.returncode == 1 and path in r.stderr, f"the file of a bad secret not named: {r.stderr}")
