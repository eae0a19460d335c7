#include "store.h"

#include <hiredis.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "ids.h"
#include "redis.h"
#include "record.h"

enum script_id {
    SCRIPT_RECORD_PUT,
    SCRIPT_RECORD_DELETE,
    SCRIPT_OWNER_SET,
    SCRIPT_LOCK_TRY,
    SCRIPT_LOCK_RELEASE,
    SCRIPT_WATCH,
    SCRIPT_LOAD_OWNER,
    SCRIPT_CREATE_POINT,
    SCRIPT_OWNER_REBIND,
    SCRIPT__MAX
};

struct store {
    const struct config *cfg;
    struct redis *r; /* the link (redis.c) */
};

#define KEY_MAX 256

/* ---- scripts: run with EVALSHA, loaded on demand (again after NOSCRIPT) ---- */

/* Every script that reads a record's version starts with record.h's version_of(), the
 * format's one rule in Lua. */
#define LUA_VERSION_OF RECORD_LUA_VERSION_OF

/* KEYS[1] record; ARGV[1] expected version ("0": none, or one without a version this code
 * understands); ARGV[2] value; ARGV[3] ttl (0: none). */
static const char script_record_put[] =
    LUA_VERSION_OF
    "if (version_of(redis.call('GET', KEYS[1])) or '0') ~= ARGV[1] then return 0 end\n"
    "if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
    "else redis.call('SET', KEYS[1], ARGV[2]) end\n"
    "return 1\n";

/* KEYS[1] record; ARGV[1] expected version.  1 deleted, 0 version moved, -1 missing. */
static const char script_record_delete[] =
    LUA_VERSION_OF
    "local v = version_of(redis.call('GET', KEYS[1]))\n"
    "if not v then return -1 end\n"
    "if v ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "return 1\n";

/* KEYS[1] owner; KEYS[2] previous owner to delete (KEYS[1] again when none); ARGV[1]
 * pointer; ARGV[2] ttl (0: none).  One script, so a failed SET deletes nothing. */
static const char script_owner_set[] =
    "if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "else redis.call('SET', KEYS[1], ARGV[1]) end\n"
    "if KEYS[2] ~= KEYS[1] then redis.call('DEL', KEYS[2]) end\n"
    "return 1\n";

/* KEYS[1] lock; KEYS[2] cooldown; ARGV[1] owner token; ARGV[2] lock TTL ms.
 * -1 cooling down, 1 taken, 0 held by someone else. */
static const char script_lock_try[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return 1 end\n" /* ours (a resend) */
    "if redis.call('EXISTS', KEYS[2]) == 1 then return -1 end\n"
    "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end\n"
    "return 0\n";

/* KEYS[1] lock; KEYS[2] cooldown; ARGV[1] owner token; ARGV[2] cooldown ms (0: none).
 * Deletes the lock only when this owner holds it. */
static const char script_lock_release[] =
    "if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[2], '1', 'PX', ARGV[2]) end\n"
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) return 1 end\n"
    "return 0\n";

/* KEYS[1] record; KEYS[2] lock.  {version (-1: no record), lock held 0/1}: a waiter's poll,
 * without moving the sealed record over the wire. */
static const char script_watch[] =
    LUA_VERSION_OF
    "local v = version_of(redis.call('GET', KEYS[1]))\n"
    "return {v and tonumber(v) or -1, redis.call('EXISTS', KEYS[2])}\n";

/* KEYS[1] owner; ARGV[1] ttl (0: none); ARGV[2] key prefix.  An owner's pointer and the
 * record it names, in one round trip: false, {pointer}, or {pointer, record}.  The record's
 * key comes from the pointer, so it cannot be declared (no Redis Cluster).  Sliding TTLs
 * are renewed only once they have run down by a day (or a tenth, when shorter), so a busy
 * session does not turn every read into a write for the AOF and the replicas. */
static const char script_load_owner[] =
    "local ttl = tonumber(ARGV[1])\n"
    "local slack = math.min(86400, math.floor(ttl / 10))\n"
    "local function get(k)\n"
    "  local v = redis.call('GET', k)\n"
    "  if v and ttl > 0 and redis.call('TTL', k) < ttl - slack then\n"
    "    redis.call('EXPIRE', k, ttl)\n"
    "  end\n"
    "  return v\n"
    "end\n"
    "local ptr = get(KEYS[1])\n"
    "if not ptr then return false end\n"
    "local name = string.match(ptr, '^([cp]:[^/]+)/')\n"
    "if not name then return {ptr} end\n"
    "local rec = get(ARGV[2] .. name)\n"
    "if not rec then return {ptr} end\n"
    "return {ptr, rec}\n";

/* KEYS[1] record; KEYS[2] owner; KEYS[3] previous owner (KEYS[2] again when none);
 * ARGV[1] record value; ARGV[2] record ttl; ARGV[3] pointer; ARGV[4] owner ttl (0: none).
 * A new record and its owner's pointer in one round trip: 0 when the record exists. */
static const char script_create_point[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "else redis.call('SET', KEYS[1], ARGV[1]) end\n"
    "if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])\n"
    "else redis.call('SET', KEYS[2], ARGV[3]) end\n"
    "if KEYS[3] ~= KEYS[2] then redis.call('DEL', KEYS[3]) end\n"
    "return 1\n";

/* KEYS[1] owner; ARGV[1] pointer expected; ARGV[2] new pointer.  Replaces the pointer,
 * keeping its TTL, only if it is still the one expected: 1 replaced, 0 not. */
static const char script_owner_rebind[] =
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')\n"
    "return 1\n";

static const char *const scripts[SCRIPT__MAX] = {
    script_record_put, script_record_delete, script_owner_set,  script_lock_try,
    script_lock_release, script_watch,       script_load_owner, script_create_point,
    script_owner_rebind};

const char *store_owner_of_session(struct arena *a, const char *session_id)
{
    name_text h;
    name_hash("session", session_id, strlen(session_id), h);
    return arena_printf(a, "s:%s", h);
}

const char *store_owner_of_user(struct arena *a, const char *site_user)
{
    name_text h;
    name_hash("user", site_user, strlen(site_user), h);
    return arena_printf(a, "u:%s", h);
}

struct store *store_new(const struct config *cfg)
{
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->cfg = cfg;
    s->r = redis_new(cfg);
    return s;
}

void store_free(struct store *s)
{
    if (!s)
        return;
    redis_free(s->r);
    free(s);
}

void store_set_deadline(struct store *s, int64_t deadline_us)
{
    redis_set_deadline(s->r, deadline_us);
}

enum store_result store_wait_durable(struct store *s)
{
    return redis_wait_durable(s->r) ? STORE_OK : STORE_UNAVAILABLE;
}

bool store_may_heal(const struct store *s)
{
    return redis_may_heal(s->r);
}

/* The one key-name builder: <prefix><kind><name> into out (KEY_MAX bytes); kind is "" or
 * a kind of its own ("lock:", "cool:") before a record's name. */
static const char *key_of(char out[KEY_MAX], const struct store *s, const char *kind,
                          const char *name)
{
    snprintf(out, KEY_MAX, "%s%s%s", s->cfg->redis_prefix, kind, name);
    return out;
}

static redisReply *command(struct store *s, int argc, const char **argv, const size_t *lens)
{
    return redis_command(s->r, argc, argv, lens);
}

static redisReply *eval_on(struct store *s, bool here, enum script_id id, int nkeys,
                           const char **keys, int nargs, const char **args, const size_t *lens)
{
    return redis_eval(s->r, id, scripts[id], here, nkeys, keys, nargs, args, lens);
}

static redisReply *eval(struct store *s, enum script_id id, int nkeys, const char **keys,
                        int nargs, const char **args, const size_t *lens)
{
    return eval_on(s, false, id, nkeys, keys, nargs, args, lens);
}

static redisReply *command1(struct store *s, const char *a0, const char *a1)
{
    const char *argv[] = {a0, a1};
    size_t lens[] = {strlen(a0), strlen(a1)};
    return command(s, 2, argv, lens);
}

enum store_result store_ping(struct store *s)
{
    const char *argv[] = {"PING"};
    size_t lens[] = {4};
    redisReply *r = command(s, 1, argv, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    freeReplyObject(r);
    return STORE_OK;
}

/* SET <prefix><name> 1 NX <unit> <value>: STORE_OK when set, STORE_EXISTS when the key was
 * there. */
static enum store_result set_nx(struct store *s, const char *name, const char *unit,
                                long long value)
{
    char v[24];
    snprintf(v, sizeof v, "%lld", value);
    char key[KEY_MAX];
    const char *argv[] = {"SET", key_of(key, s, "", name), "1", "NX", unit, v};
    size_t lens[6];
    for (int i = 0; i < 6; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = command(s, 6, argv, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = r->type == REDIS_REPLY_NIL ? STORE_EXISTS : STORE_OK;
    freeReplyObject(r);
    return res;
}

enum store_result store_state_use(struct store *s, const char *used_id, int64_t expire_at)
{
    /* SET … NX GET with a token of this call: should a lost reply make the command go out
     * twice, the second copy finds this call's own token, not a replay. */
    char name[96], at[24], token[23];
    name_new(token);
    snprintf(name, sizeof name, "st:%s", used_id);
    snprintf(at, sizeof at, "%lld", (long long)expire_at);
    char key[KEY_MAX];
    const char *argv[] = {"SET", key_of(key, s, "", name), token, "NX", "EXAT", at, "GET"};
    size_t lens[7];
    for (int i = 0; i < 7; i++)
        lens[i] = strlen(argv[i]);
    redisReply *r = command(s, 7, argv, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = r->type == REDIS_REPLY_NIL ? STORE_OK
                            : r->type == REDIS_REPLY_STRING && strcmp(r->str, token) == 0
                                ? STORE_OK
                                : STORE_EXISTS;
    freeReplyObject(r);
    return res;
}

/* GET, or GETEX … EX ttl to slide the key's lifetime. */
static enum store_result get_sliding(struct store *s, const char *name, long ttl,
                                     struct arena *a, char **data, size_t *len)
{
    char ttl_s[24];
    snprintf(ttl_s, sizeof ttl_s, "%ld", ttl);
    char key[KEY_MAX];
    const char *argv[] = {ttl > 0 ? "GETEX" : "GET", key_of(key, s, "", name), "EX", ttl_s};
    size_t lens[] = {strlen(argv[0]), strlen(argv[1]), 2, strlen(ttl_s)};
    redisReply *r = command(s, ttl > 0 ? 4 : 2, argv, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = STORE_NOT_FOUND;
    if (r->type == REDIS_REPLY_STRING) {
        *data = arena_strndup(a, r->str, r->len);
        if (len)
            *len = r->len;
        res = STORE_OK;
    }
    freeReplyObject(r);
    return res;
}

enum store_result store_owner_set(struct store *s, const char *owner, const char *pointer,
                                  long ttl, const char *old_owner)
{
    char owner_key[KEY_MAX], old_key[KEY_MAX], ttl_s[24];
    key_of(owner_key, s, "", owner);
    key_of(old_key, s, "", old_owner ? old_owner : owner);
    snprintf(ttl_s, sizeof ttl_s, "%ld", ttl > 0 ? ttl : 0);
    const char *keys[] = {owner_key, old_key};
    const char *args[] = {pointer, ttl_s};
    size_t lens[] = {strlen(pointer), strlen(ttl_s)};
    redisReply *r = eval(s, SCRIPT_OWNER_SET, 2, keys, 2, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    freeReplyObject(r);
    return STORE_OK;
}

enum store_result store_owner_delete(struct store *s, const char *owner)
{
    char key[KEY_MAX];
    redisReply *r = command1(s, "DEL", key_of(key, s, "", owner));
    if (!r)
        return STORE_UNAVAILABLE;
    freeReplyObject(r);
    return STORE_OK;
}

enum store_result store_record_get(struct store *s, const char *record_name, long ttl,
                                   struct arena *a, char **data, size_t *len)
{
    return get_sliding(s, record_name, ttl, a, data, len);
}

enum store_result store_record_put(struct store *s, const char *record_name,
                                   uint64_t expected_version, const char *data, size_t len,
                                   long ttl)
{
    char ver[24], ttl_s[24], key[KEY_MAX];
    snprintf(ver, sizeof ver, "%llu", (unsigned long long)expected_version);
    snprintf(ttl_s, sizeof ttl_s, "%ld", ttl > 0 ? ttl : 0);
    key_of(key, s, "", record_name);
    const char *keys[] = {key};
    const char *args[] = {ver, data, ttl_s};
    size_t lens[] = {strlen(ver), len, strlen(ttl_s)};
    redisReply *r = eval(s, SCRIPT_RECORD_PUT, 1, keys, 3, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = (r->type == REDIS_REPLY_INTEGER && r->integer == 1) ? STORE_OK
                                                                                : STORE_CONFLICT;
    freeReplyObject(r);
    return res;
}

enum store_result store_record_delete(struct store *s, const char *record_name,
                                      uint64_t expected_version)
{
    char ver[24], key[KEY_MAX];
    snprintf(ver, sizeof ver, "%llu", (unsigned long long)expected_version);
    key_of(key, s, "", record_name);
    const char *keys[] = {key};
    const char *args[] = {ver};
    size_t lens[] = {strlen(ver)};
    redisReply *r = eval(s, SCRIPT_RECORD_DELETE, 1, keys, 1, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = STORE_CONFLICT;
    if (r->type == REDIS_REPLY_INTEGER)
        res = r->integer == 1 ? STORE_OK : r->integer == -1 ? STORE_NOT_FOUND : STORE_CONFLICT;
    freeReplyObject(r);
    return res;
}

/* The lock and cooldown keys of a record: lock:<record>, cool:<record>. */
static void lock_keys(struct store *s, const char *record_name, char *lock, char *cool, size_t n)
{
    (void)n;
    key_of(lock, s, "lock:", record_name);
    key_of(cool, s, "cool:", record_name);
}

enum store_result store_lock_try(struct store *s, const char *record_name,
                                 struct store_lock *lock, long ttl_ms)
{
    char lkey[KEY_MAX], cool[KEY_MAX], ttl[24];
    lock_keys(s, record_name, lkey, cool, sizeof lkey);
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    const char *keys[] = {lkey, cool};
    const char *args[] = {lock->owner, ttl};
    size_t lens[] = {strlen(lock->owner), strlen(ttl)};
    int64_t t0 = clock_mono_us();
    redisReply *r = eval(s, SCRIPT_LOCK_TRY, 2, keys, 2, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = STORE_UNAVAILABLE;
    if (r->type == REDIS_REPLY_INTEGER)
        res = r->integer == 1 ? STORE_OK : r->integer == 0 ? STORE_EXISTS : STORE_CONFLICT;
    freeReplyObject(r);
    if (res == STORE_OK) {
        lock->connection = redis_connection(s->r);
        lock->epoch = redis_epoch(s->r);
        lock->expires_us = t0 + ttl_ms * 1000;
    }
    return res;
}

/* The release script on this store's current connection, or (elsewhere) on the current
 * primary.  True when Redis ran it. */
static bool release_once(struct store *s, const char *record_name, const struct store_lock *lock,
                         long cooldown_ms, bool here)
{
    char lkey[KEY_MAX], cool[KEY_MAX], ms[24];
    lock_keys(s, record_name, lkey, cool, sizeof lkey);
    snprintf(ms, sizeof ms, "%ld", cooldown_ms > 0 ? cooldown_ms : 0);
    const char *keys[] = {lkey, cool};
    const char *args[] = {lock->owner, ms};
    size_t lens[] = {strlen(lock->owner), strlen(ms)};
    redisReply *r = eval_on(s, here, SCRIPT_LOCK_RELEASE, 2, keys, 2, args, lens);
    if (!r)
        return false;
    freeReplyObject(r);
    return true;
}

enum store_result store_lock_release(struct store *s, const char *record_name,
                                     const struct store_lock *lock, long cooldown_ms)
{
    /* On the node that holds it, while this store is still connected there. */
    bool on_holder = lock->connection && redis_connection(s->r) == lock->connection;
    bool moved_on = redis_moved_since(s->r, lock->epoch); /* before: a release does not clear it */
    bool released = on_holder && release_once(s, record_name, lock, cooldown_ms, true);
    /* When the primary may have moved since the lock was taken (the marker moved, or a WAIT
     * fell short on this connection), the lock may have reached the new primary too,
     * promoted with a replica that had it: release it there as well.  Deleting only this
     * owner's token, the script is safe to run anywhere. */
    if (released && !moved_on)
        return STORE_OK;
    return release_once(s, record_name, lock, cooldown_ms, false) ? STORE_OK : STORE_UNAVAILABLE;
}


enum store_result store_watch(struct store *s, const char *record_name, int64_t *version,
                              bool *locked)
{
    char lock[KEY_MAX], cool[KEY_MAX], key[KEY_MAX];
    lock_keys(s, record_name, lock, cool, sizeof lock);
    key_of(key, s, "", record_name);
    const char *keys[] = {key, lock};
    redisReply *r = eval(s, SCRIPT_WATCH, 2, keys, 0, NULL, NULL);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = STORE_UNAVAILABLE;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
        r->element[0]->type == REDIS_REPLY_INTEGER && r->element[1]->type == REDIS_REPLY_INTEGER) {
        *version = r->element[0]->integer;
        *locked = r->element[1]->integer == 1;
        res = STORE_OK;
    }
    freeReplyObject(r);
    return res;
}

/* SCAN for every key of the given kinds ("c:*", …), calling fn with each name without
 * the prefix.  Returns how many, or -1 when Redis failed. */
static int scan_kinds(struct store *s, const char *const *kinds, size_t n_kinds,
                      void (*fn)(const char *name, void *arg), void *arg)
{
    char cursor[32] = "0", pattern[KEY_MAX];
    size_t prefix_len = strlen(s->cfg->redis_prefix);
    int seen = 0;
    for (size_t kind = 0; kind < n_kinds; kind++) {
        key_of(pattern, s, "", kinds[kind]);
        strcpy(cursor, "0");
        do {
            const char *argv[] = {"SCAN", cursor, "MATCH", pattern, "COUNT", "500"};
            size_t lens[6];
            for (int i = 0; i < 6; i++)
                lens[i] = strlen(argv[i]);
            redisReply *r = command(s, 6, argv, lens);
            if (!r)
                return -1;
            if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
                r->element[0]->type != REDIS_REPLY_STRING) {
                freeReplyObject(r);
                return -1;
            }
            snprintf(cursor, sizeof cursor, "%s", r->element[0]->str);
            redisReply *keys = r->element[1];
            for (size_t i = 0; keys->type == REDIS_REPLY_ARRAY && i < keys->elements; i++) {
                const char *name = keys->element[i]->str;
                if (keys->element[i]->type == REDIS_REPLY_STRING && strlen(name) > prefix_len) {
                    fn(name + prefix_len, arg);
                    seen++;
                }
            }
            freeReplyObject(r);
        } while (strcmp(cursor, "0") != 0);
    }
    return seen;
}

int store_scan_records(struct store *s, void (*fn)(const char *record_name, void *arg), void *arg)
{
    static const char *const kinds[] = {"c:*", "p:*"};
    return scan_kinds(s, kinds, 2, fn, arg);
}

int store_scan_owners(struct store *s, void (*fn)(const char *owner, void *arg), void *arg)
{
    static const char *const kinds[] = {"s:*", "u:*"};
    return scan_kinds(s, kinds, 2, fn, arg);
}

enum store_result store_flag_get(struct store *s, const char *name)
{
    char key[KEY_MAX];
    redisReply *r = command1(s, "EXISTS", key_of(key, s, "", name));
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? STORE_OK
                                                                               : STORE_NOT_FOUND;
    freeReplyObject(r);
    return res;
}

enum store_result store_flag_set(struct store *s, const char *name)
{
    char key[KEY_MAX];
    const char *argv[] = {"SET", key_of(key, s, "", name), "1"};
    size_t lens[] = {3, strlen(argv[1]), 1};
    redisReply *r = command(s, 3, argv, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    freeReplyObject(r);
    return STORE_OK;
}

enum store_result store_owner_get(struct store *s, const char *owner, struct arena *a,
                                  char **pointer)
{
    return get_sliding(s, owner, 0, a, pointer, NULL);
}

enum store_result store_owner_rebind(struct store *s, const char *owner, const char *was,
                                     const char *pointer)
{
    char key[KEY_MAX];
    key_of(key, s, "", owner);
    const char *keys[] = {key};
    const char *args[] = {was, pointer};
    size_t lens[] = {strlen(was), strlen(pointer)};
    redisReply *r = eval(s, SCRIPT_OWNER_REBIND, 1, keys, 2, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? STORE_OK
                                                                               : STORE_CONFLICT;
    freeReplyObject(r);
    return res;
}

enum store_result store_claim(struct store *s, const char *name, long ms)
{
    return set_nx(s, name, "PX", ms);
}

enum store_result store_config_get(struct store *s, const char *name, char *out, size_t outsz)
{
    const char *argv[] = {"CONFIG", "GET", name};
    size_t lens[] = {6, 3, strlen(name)};
    redisReply *r = command(s, 3, argv, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = STORE_NOT_FOUND;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2 && r->element[1]->type == REDIS_REPLY_STRING) {
        snprintf(out, outsz, "%s", r->element[1]->str);
        res = STORE_OK;
    }
    freeReplyObject(r);
    return res;
}

enum store_result store_owner_load(struct store *s, const char *owner, long ttl, struct arena *a,
                                   char **pointer, char **data, size_t *len)
{
    char key[KEY_MAX], ttl_s[24];
    key_of(key, s, "", owner);
    snprintf(ttl_s, sizeof ttl_s, "%ld", ttl > 0 ? ttl : 0);
    const char *keys[] = {key};
    const char *args[] = {ttl_s, s->cfg->redis_prefix};
    size_t lens[] = {strlen(ttl_s), strlen(s->cfg->redis_prefix)};
    redisReply *r = eval(s, SCRIPT_LOAD_OWNER, 1, keys, 2, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = STORE_NOT_FOUND;
    *pointer = *data = NULL;
    *len = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING) {
        *pointer = arena_strndup(a, r->element[0]->str, r->element[0]->len);
        if (r->elements >= 2 && r->element[1]->type == REDIS_REPLY_STRING) {
            *data = arena_strndup(a, r->element[1]->str, r->element[1]->len);
            *len = r->element[1]->len;
        }
        res = STORE_OK;
    }
    freeReplyObject(r);
    return res;
}

enum store_result store_record_create(struct store *s, const char *record_name, const char *data,
                                      size_t len, long ttl, const char *owner, const char *pointer,
                                      const char *old_owner)
{
    char rkey[KEY_MAX], okey[KEY_MAX], oldkey[KEY_MAX], ttl_s[24];
    key_of(rkey, s, "", record_name);
    key_of(okey, s, "", owner);
    key_of(oldkey, s, "", old_owner ? old_owner : owner);
    snprintf(ttl_s, sizeof ttl_s, "%ld", ttl > 0 ? ttl : 0);
    const char *keys[] = {rkey, okey, oldkey};
    const char *args[] = {data, ttl_s, pointer, ttl_s};
    size_t lens[] = {len, strlen(ttl_s), strlen(pointer), strlen(ttl_s)};
    redisReply *r = eval(s, SCRIPT_CREATE_POINT, 3, keys, 4, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = (r->type == REDIS_REPLY_INTEGER && r->integer == 1) ? STORE_OK : STORE_EXISTS;
    freeReplyObject(r);
    return res;
}

enum store_result store_get2(struct store *s, const char *name1, const char *name2,
                             struct arena *a, char **v1, char **v2, size_t *len2)
{
    char k1[KEY_MAX], k2[KEY_MAX];
    key_of(k1, s, "", name1);
    key_of(k2, s, "", name2);
    const char *argv[] = {"MGET", k1, k2};
    size_t lens[] = {4, strlen(k1), strlen(k2)};
    redisReply *r = command(s, 3, argv, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    *v1 = *v2 = NULL;
    *len2 = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements == 2) {
        if (r->element[0]->type == REDIS_REPLY_STRING)
            *v1 = arena_strndup(a, r->element[0]->str, r->element[0]->len);
        if (r->element[1]->type == REDIS_REPLY_STRING) {
            *v2 = arena_strndup(a, r->element[1]->str, r->element[1]->len);
            *len2 = r->element[1]->len;
        }
    }
    freeReplyObject(r);
    return STORE_OK;
}

