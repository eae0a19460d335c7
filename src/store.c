#include "store.h"

#include <hiredis.h>
#include <jansson.h>
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
    SCRIPT_EVENTS_GROUP,
    SCRIPT_EVENTS_DUE,
    SCRIPT_EVENTS_SETTLE,
    SCRIPT_EVENTS_RETRY,
    SCRIPT_EVENTS_TRIM,
    SCRIPT__MAX
};

struct store {
    const struct config *cfg;
    struct redis *r;       /* the link (redis.c) */
    const char *site_user; /* the request's (store_set_site_user) */
};

#define SITE_USER_DISPLAY_MAX 512 /* as session.c accepts them */

#define KEY_MAX 256

/* ---- scripts: run with EVALSHA, loaded on demand (again after NOSCRIPT) ---- */

/* Every script that reads a record's version starts with record.h's version_of(), the
 * format's one rule in Lua. */
#define LUA_VERSION_OF RECORD_LUA_VERSION_OF

/* ---- connection events: recorded by the script that commits their change ---- */

/* Every script that commits a change with an event ends with emit(base): ARGV[base..+9] as
 * event_args() lays them out (type "" records nothing):
 *   +0 type  +1 key prefix  +2 when (ms)  +3 data  +4 mode  +5 +6 +7 (by mode)  +8 a token
 *   that records the event once however often the change is written ("" none)  +9 retention
 * Mode "one": +5 the owner's name, +6 its business id ("" none), +7 a site user's display
 * ("u:<site user>", remembered at od:<owner>; "" for a session or when known already).
 * Mode "all" or "gone:<id>,<id>,…": +5 a record, +6 its generation, +7 owners left out
 * (space-separated): every other owner of ro:<record> whose pointer still names that
 * generation gets one event with the business its pointer chose — with "gone:", only those
 * whose choice is among the ids, with no business.  Stale owner names are dropped.  Each
 * event is an XADD to <prefix>ev with the owner's next sequence number (evseq:<owner>, kept
 * as long as the owner and a retention more).  A site user whose name is not known (from
 * before the events) is skipped: an event must name its owner. */
#define LUA_EMIT                                                                              \
    "local function ev_tag(owner)\n"                                                         \
    "  local B = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_'\n"       \
    "  local n = 0\n"                                                                        \
    "  for i = 3, 8 do n = n * 64 + (string.find(B, string.sub(owner, i, i), 1, true) or 1) - 1 end\n" \
    "  return string.format('%08x', math.floor(n / 16))\n"                                   \
    "end\n"                                                                                  \
    "local function ev_display(p, owner, given)\n"                                           \
    "  if string.sub(owner, 1, 2) ~= 'u:' then return 's:' .. ev_tag(owner) end\n"           \
    "  if given ~= '' then redis.call('SET', p .. 'od:' .. owner, given) return given end\n" \
    "  return redis.call('GET', p .. 'od:' .. owner)\n"                                      \
    "end\n"                                                                                  \
    "local function ev_one(E, owner, display, biz)\n"                                        \
    "  if not display then return end\n"                                                     \
    "  local sk = E.p .. 'evseq:' .. owner\n"                                                \
    "  local q = redis.call('INCR', sk)\n"                                                   \
    "  local t = redis.call('TTL', E.p .. owner)\n"                                          \
    "  if t > 0 then redis.call('EXPIRE', sk, t + E.keep) else redis.call('PERSIST', sk) end\n" \
    "  redis.call('XADD', E.p .. 'ev', '*', 't', E.type, 'ts', E.ts,\n"                      \
    "    'o', display, 'q', q, 'b', biz, 'd', E.data)\n"                                     \
    "end\n"                                                                                  \
    "local function emit(base)\n"                                                            \
    "  local E = {type = ARGV[base], p = ARGV[base + 1], ts = ARGV[base + 2],\n"             \
    "    data = ARGV[base + 3], keep = tonumber(ARGV[base + 9])}\n"                          \
    "  if E.type == '' then return end\n"                                                    \
    "  local token = ARGV[base + 8]\n"                                                       \
    "  if token ~= '' and not redis.call('SET', E.p .. 'evtok:' .. token, '1', 'NX', 'EX', E.keep) then\n" \
    "    return\n"                                                                           \
    "  end\n"                                                                                \
    "  local mode, a, b, c = ARGV[base + 4], ARGV[base + 5], ARGV[base + 6], ARGV[base + 7]\n" \
    "  if mode == 'one' then\n"                                                              \
    "    ev_one(E, a, ev_display(E.p, a, c), b)\n"                                           \
    "    return\n"                                                                           \
    "  end\n"                                                                                \
    "  local gone = nil\n"                                                                   \
    "  if string.sub(mode, 1, 5) == 'gone:' then\n"                                         \
    "    gone = {}\n"                                                                        \
    "    for id in string.gmatch(string.sub(mode, 6), '%d+') do gone[id] = true end\n"      \
    "  end\n"                                                                                \
    "  local skip = {}\n"                                                                    \
    "  for o in string.gmatch(c, '%S+') do skip[o] = true end\n"                             \
    "  local rk = E.p .. 'ro:' .. a\n"                                                       \
    "  local head = a .. '/' .. b .. '/'\n"                                                  \
    "  for _, owner in ipairs(redis.call('SMEMBERS', rk)) do\n"                              \
    "    local ptr = redis.call('GET', E.p .. owner)\n"                                      \
    "    if ptr and string.sub(ptr, 1, #head) == head then\n"                                \
    "      local biz = string.match(string.sub(ptr, #head + 1), '^(%d+)/') or ''\n"          \
    "      if not skip[owner] and (not gone or gone[biz]) then\n"                            \
    "        ev_one(E, owner, ev_display(E.p, owner, ''), gone and '' or biz)\n"             \
    "      end\n"                                                                            \
    "    else redis.call('SREM', rk, owner) end\n"                                           \
    "  end\n"                                                                                \
    "end\n"                                                                                  \
    /* ro:<record>, the owners that point at a record, for every-owner events; od:<owner>, a \
       site user's name */                                                                   \
    "local function index_owner(p, rk, owner, ttl, display)\n"                               \
    "  redis.call('SADD', rk, owner)\n"                                                      \
    "  if tonumber(ttl) > 0 then redis.call('EXPIRE', rk, ttl) else redis.call('PERSIST', rk) end\n" \
    "  if display ~= '' then redis.call('SET', p .. 'od:' .. owner, display) end\n"          \
    "end\n"
#define EVENT_ARGS 10

/* KEYS[1] record; ARGV[1] expected version ("0": none, or one without a version this code
 * understands); ARGV[2] value; ARGV[3] ttl (0: none); ARGV[4…] an event. */
static const char script_record_put[] =
    LUA_VERSION_OF LUA_EMIT
    "if (version_of(redis.call('GET', KEYS[1])) or '0') ~= ARGV[1] then return 0 end\n"
    "if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
    "else redis.call('SET', KEYS[1], ARGV[2]) end\n"
    "emit(4)\n"
    "return 1\n";

/* KEYS[1] record; KEYS[2] its owner index; ARGV[1] expected version; ARGV[2…] an event
 * (recorded before the index goes).  1 deleted, 0 version moved, -1 missing. */
static const char script_record_delete[] =
    LUA_VERSION_OF LUA_EMIT
    "local v = version_of(redis.call('GET', KEYS[1]))\n"
    "if not v then return -1 end\n"
    "if v ~= ARGV[1] then return 0 end\n"
    "redis.call('DEL', KEYS[1])\n"
    "emit(2)\n"
    "redis.call('DEL', KEYS[2])\n"
    "return 1\n";

/* KEYS[1] owner; KEYS[2] previous owner to delete (KEYS[1] again when none); KEYS[3] the
 * owner index of the record pointed at; ARGV[1] pointer; ARGV[2] ttl (0: none); ARGV[3]
 * the owner's name; ARGV[4…] an event.  One script, so a failed SET deletes nothing. */
static const char script_owner_set[] =
    LUA_EMIT
    "if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "else redis.call('SET', KEYS[1], ARGV[1]) end\n"
    "if KEYS[2] ~= KEYS[1] then redis.call('DEL', KEYS[2]) end\n"
    "index_owner(ARGV[5], KEYS[3], ARGV[3], ARGV[2], ARGV[11])\n"
    "emit(4)\n"
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

/* KEYS[1] owner; ARGV[1] ttl (0: none); ARGV[2] key prefix; ARGV[3] the events'
 * retention; ARGV[4] a site user's display ("" none).  An owner's pointer and the record it
 * names, in one round trip: false, {pointer}, or {pointer, record}.  The record's key comes
 * from the pointer, so it cannot be declared (no Redis Cluster).  Sliding TTLs are renewed
 * only once they have run down by a day (or a tenth, when shorter), so a busy session does
 * not turn every read into a write for the AOF and the replicas; the owner's event sequence
 * slides with the owner.  The record's owner index gains the owner (an owner from before
 * the index existed), and a site user's name is remembered for its events. */
static const char script_load_owner[] =
    "local ttl = tonumber(ARGV[1])\n"
    "local slack = math.min(86400, math.floor(ttl / 10))\n"
    "local function get(k)\n"
    "  local v = redis.call('GET', k)\n"
    "  if v and ttl > 0 and redis.call('TTL', k) < ttl - slack then\n"
    "    redis.call('EXPIRE', k, ttl)\n"
    "    return v, true\n"
    "  end\n"
    "  return v, false\n"
    "end\n"
    "local ptr, slid = get(KEYS[1])\n"
    "if not ptr then return false end\n"
    "local owner = string.sub(KEYS[1], #ARGV[2] + 1)\n"
    "if slid then redis.call('EXPIRE', ARGV[2] .. 'evseq:' .. owner, ttl + tonumber(ARGV[3])) end\n"
    "if ARGV[4] ~= '' then redis.call('SET', ARGV[2] .. 'od:' .. owner, ARGV[4], 'NX') end\n"
    "local name = string.match(ptr, '^([cp]:[^/]+)/')\n"
    "if not name then return {ptr} end\n"
    "local rec = get(ARGV[2] .. name)\n"
    "if not rec then return {ptr} end\n"
    "local rk = ARGV[2] .. 'ro:' .. name\n"
    "if redis.call('SADD', rk, owner) == 1 or (ttl > 0 and redis.call('TTL', rk) < ttl - slack) then\n"
    "  if ttl > 0 then redis.call('EXPIRE', rk, ttl) end\n"
    "end\n"
    "return {ptr, rec}\n";

/* KEYS[1] record; KEYS[2] owner; KEYS[3] previous owner (KEYS[2] again when none);
 * KEYS[4] the record's owner index; ARGV[1] record value; ARGV[2] record ttl; ARGV[3]
 * pointer; ARGV[4] owner ttl (0: none); ARGV[5] the owner's name; ARGV[6…] an event.
 * A new record and its owner's pointer in one round trip: 0 when the record exists. */
static const char script_create_point[] =
    LUA_EMIT
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "if tonumber(ARGV[2]) > 0 then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])\n"
    "else redis.call('SET', KEYS[1], ARGV[1]) end\n"
    "if tonumber(ARGV[4]) > 0 then redis.call('SET', KEYS[2], ARGV[3], 'EX', ARGV[4])\n"
    "else redis.call('SET', KEYS[2], ARGV[3]) end\n"
    "if KEYS[3] ~= KEYS[2] then redis.call('DEL', KEYS[3]) end\n"
    "index_owner(ARGV[7], KEYS[4], ARGV[5], ARGV[2], ARGV[13])\n"
    "emit(6)\n"
    "return 1\n";

/* KEYS[1] owner; ARGV[1] pointer expected; ARGV[2] new pointer; ARGV[3…] an event.
 * Replaces the pointer, keeping its TTL, only if it is still the one expected: 1
 * replaced, 0 not. */
static const char script_owner_rebind[] =
    LUA_EMIT
    "if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end\n"
    "redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')\n"
    "emit(3)\n"
    "return 1\n";

/* The delivery side.  Keys: <prefix>ev the stream, group "fbconnect"; evdue a ZSET of
 * event ids due for another attempt (score: when, ms); evatt a HASH id → attempts made;
 * evfail a ZSET of ids given up (score: when) with evfaild, a HASH id → the entry as
 * JSON, so a failure outlives the stream's trimming (kept one retention more). */

/* KEYS[1] stream.  Creates the group (reading from the stream's start) unless it exists. */
static const char script_events_group[] =
    "local r = redis.pcall('XGROUP', 'CREATE', KEYS[1], 'fbconnect', '0', 'MKSTREAM')\n"
    "if type(r) == 'table' and r.err and not string.find(r.err, 'BUSYGROUP', 1, true) then\n"
    "  return redis.error_reply(r.err)\n"
    "end\n"
    "return 1\n";

/* KEYS[1] evdue; ARGV[1] now (ms); ARGV[2] lease (ms); ARGV[3] count.  Takes up to count
 * ids due by now, pushing each one's due time to now + lease: should this process die
 * holding them, another takes them once the lease has run out. */
static const char script_events_due[] =
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])\n"
    "for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[1] + ARGV[2], id) end\n"
    "return ids\n";

/* KEYS[1] stream; KEYS[2] evdue; KEYS[3] evatt; KEYS[4] evfail; KEYS[5] evfaild; ARGV[1]
 * id; ARGV[2] "ok", "retry" or "fail"; ARGV[3] when (ms: the next attempt, or now);
 * ARGV[4] the entry as JSON ("fail").  One attempt's outcome, atomically: the id leaves
 * the group's pending list and is, by outcome, forgotten, due again, or given up.
 * Returns the attempts made so far. */
static const char script_events_settle[] =
    "redis.call('XACK', KEYS[1], 'fbconnect', ARGV[1])\n"
    "if ARGV[2] == 'ok' then\n"
    "  redis.call('ZREM', KEYS[2], ARGV[1]) redis.call('ZREM', KEYS[4], ARGV[1])\n"
    "  redis.call('HDEL', KEYS[5], ARGV[1])\n"
    "  local n = tonumber(redis.call('HGET', KEYS[3], ARGV[1]) or '0') + 1\n"
    "  redis.call('HDEL', KEYS[3], ARGV[1])\n"
    "  return n\n"
    "end\n"
    "local n = redis.call('HINCRBY', KEYS[3], ARGV[1], 1)\n"
    "if ARGV[2] == 'retry' then redis.call('ZADD', KEYS[2], ARGV[3], ARGV[1]) return n end\n"
    "redis.call('ZREM', KEYS[2], ARGV[1]) redis.call('HDEL', KEYS[3], ARGV[1])\n"
    "redis.call('ZADD', KEYS[4], ARGV[3], ARGV[1]) redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])\n"
    "return n\n";

/* KEYS[1] evdue; KEYS[2] evfail; KEYS[3] evfaild; KEYS[4] stream; ARGV[1] id ("" every
 * failed one); ARGV[2] now (ms).  Makes the id (or every failed id) due now: 1 per id
 * made due, 0 when the id is neither in the stream nor failed. */
static const char script_events_retry[] =
    "local ids = {ARGV[1]}\n"
    "if ARGV[1] == '' then ids = redis.call('ZRANGE', KEYS[2], 0, -1) end\n"
    "local n = 0\n"
    "for _, id in ipairs(ids) do\n"
    "  local e = redis.call('XRANGE', KEYS[4], id, id)\n"
    "  if #e > 0 then id = e[1][1] end\n" /* as the stream spells it */
    "  if #e > 0 or redis.call('ZSCORE', KEYS[2], id) then\n"
    "    redis.call('ZADD', KEYS[1], ARGV[2], id) n = n + 1\n"
    "  end\n"
    "end\n"
    "return n\n";

/* KEYS[1] stream; KEYS[2] evdue; KEYS[3] evatt; KEYS[4] evfail; KEYS[5] evfaild; ARGV[1]
 * the oldest id kept ("<ms>-0"); ARGV[2] now (ms); ARGV[3] forget failures given up before
 * (ms); ARGV[4] consumers idle this long with nothing pending are dropped (ms).  Trims the
 * stream to the retention, first giving up every event below it not yet delivered (unread,
 * read and unsettled, or due again: kept as failed, like any given up); forgets old
 * failures.  Returns how many it gave up. */
static const char script_events_trim[] =
    "local ev, due, att, fail, faild = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]\n"
    "local minid, now = ARGV[1], ARGV[2]\n"
    "local function ms(id) return tonumber(string.match(id, '^(%d+)')) or 0 end\n"
    "local cut = ms(minid)\n"
    "local n = 0\n"
    "local function give_up(id)\n"
    "  local e = redis.call('XRANGE', ev, id, id)\n"
    "  redis.call('XACK', ev, 'fbconnect', id)\n"
    "  redis.call('ZREM', due, id)\n"
    "  redis.call('HDEL', att, id)\n"
    "  if #e == 0 then return end\n"
    "  local f = {}\n"
    "  for i = 1, #e[1][2], 2 do f[e[1][2][i]] = e[1][2][i + 1] end\n"
    "  local j = cjson.encode({t = f.t or '', o = f.o or '', b = f.b or '', d = f.d or '',\n"
    "    ts = tonumber(f.ts) or 0, q = tonumber(f.q) or 0})\n"
    "  redis.call('ZADD', fail, now, id)\n"
    "  redis.call('HSET', faild, id, j)\n"
    "  n = n + 1\n"
    "end\n"
    "if redis.call('EXISTS', ev) == 0 then return 0 end\n"
    "local last = '0-0'\n"
    "for _, g in ipairs(redis.pcall('XINFO', 'GROUPS', ev)) do\n"
    "  local h = {}\n"
    "  for i = 1, #g, 2 do h[g[i]] = g[i + 1] end\n"
    "  if h.name == 'fbconnect' then last = h['last-delivered-id'] end\n"
    "end\n"
    "for _, p in ipairs(redis.call('XPENDING', ev, 'fbconnect', '-', '(' .. minid, 1000)) do\n"
    "  give_up(p[1])\n"
    "end\n"
    "for _, id in ipairs(redis.call('ZRANGE', due, 0, -1)) do\n"
    "  if ms(id) < cut then give_up(id) end\n"
    "end\n"
    "for _, e in ipairs(redis.call('XRANGE', ev, '(' .. last, '(' .. minid, 'COUNT', 1000)) do\n"
    "  give_up(e[1])\n"
    "end\n"
    "redis.call('XTRIM', ev, 'MINID', minid)\n"
    "for _, id in ipairs(redis.call('ZRANGEBYSCORE', fail, '-inf', '(' .. ARGV[3], 'LIMIT', 0, 1000)) do\n"
    "  redis.call('ZREM', fail, id) redis.call('HDEL', faild, id)\n"
    "end\n"
    "for _, c in ipairs(redis.pcall('XINFO', 'CONSUMERS', ev, 'fbconnect')) do\n"
    "  local h = {}\n"
    "  for i = 1, #c, 2 do h[c[i]] = c[i + 1] end\n"
    "  if h.pending == 0 and h.idle > tonumber(ARGV[4]) then\n"
    "    redis.call('XGROUP', 'DELCONSUMER', ev, 'fbconnect', h.name)\n"
    "  end\n"
    "end\n"
    "return n\n";

static const char *const scripts[SCRIPT__MAX] = {
    script_record_put, script_record_delete, script_owner_set,  script_lock_try,
    script_lock_release, script_watch,       script_load_owner, script_create_point,
    script_owner_rebind, script_events_group, script_events_due, script_events_settle,
    script_events_retry, script_events_trim};

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

void store_set_site_user(struct store *s, const char *site_user)
{
    s->site_user = site_user;
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

/* The EVENT_ARGS arguments of emit() for ev (type "" when none, or events are off) into
 * args/lens; num holds their numbers.  The prefix, retention and — when `owner` is the
 * request's site user's — the display are filled in either way (the owner index and the
 * site user's name are kept whether events are on or not). */
typedef char owner_display_text[2 + SITE_USER_DISPLAY_MAX + 1];
struct event_num {
    char ts[24], business[24], keep[24], token[33];
    owner_display_text display;
};

/* The name events give `owner` when it is the request's site user's: "u:<site user>"
 * (store_set_site_user); "" for a session or another owner. */
static void owner_display(const struct store *s, const char *owner, owner_display_text out)
{
    out[0] = '\0';
    if (owner && strncmp(owner, "u:", 2) == 0 && s->site_user &&
        strlen(s->site_user) <= SITE_USER_DISPLAY_MAX)
        snprintf(out, sizeof(owner_display_text), "u:%s", s->site_user);
}
static void event_args(const struct store *s, const struct store_event *ev, const char *owner,
                       const char **args, size_t *lens, struct event_num *num)
{
    bool on = ev && ev->type && s->cfg->events_url;
    bool one = on && ev->owner;
    snprintf(num->ts, sizeof num->ts, "%lld", (long long)(on ? ev->ts_ms : 0));
    snprintf(num->keep, sizeof num->keep, "%ld", s->cfg->events_retention);
    num->business[0] = num->display[0] = num->token[0] = '\0';
    if (one && ev->business > 0)
        snprintf(num->business, sizeof num->business, "%lld", (long long)ev->business);
    owner_display(s, owner, num->display);
    if (on && ev->once)
        snprintf(num->token, sizeof num->token, "%s", ev->once);
    const char *v[EVENT_ARGS] = {
        on ? ev->type : "",
        s->cfg->redis_prefix,
        num->ts,
        on && ev->data ? ev->data : "",
        !on ? "" : one ? "one" : ev->gone ? ev->gone : "all",
        !on ? "" : one ? ev->owner : ev->record,
        !on ? "" : one ? num->business : ev->generation,
        one || !on ? num->display : (ev->except ? ev->except : ""),
        num->token,
        num->keep,
    };
    for (int i = 0; i < EVENT_ARGS; i++) {
        args[i] = v[i] ? v[i] : "";
        lens[i] = strlen(args[i]);
    }
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

/* command() for arguments that are all NUL-terminated strings. */
static redisReply *command_strs(struct store *s, int argc, const char **argv)
{
    size_t lens[16];
    if (argc > 16)
        abort(); /* a programming error */
    for (int i = 0; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return command(s, argc, argv, lens);
}

/* eval() for arguments that are all NUL-terminated strings. */
static redisReply *eval_strs(struct store *s, enum script_id id, int nkeys, const char **keys,
                             int nargs, const char **args)
{
    size_t lens[16];
    if (nargs > 16)
        abort(); /* a programming error */
    for (int i = 0; i < nargs; i++)
        lens[i] = strlen(args[i]);
    return eval(s, id, nkeys, keys, nargs, args, lens);
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
    redisReply *r = command_strs(s, 6, argv);
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
    redisReply *r = command_strs(s, 7, argv);
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

enum store_result store_owner_set(struct store *s, const char *owner, const char *record_name,
                                  const char *pointer, long ttl, const char *old_owner,
                                  const struct store_event *ev)
{
    char owner_key[KEY_MAX], old_key[KEY_MAX], index_key[KEY_MAX], ttl_s[24];
    key_of(owner_key, s, "", owner);
    key_of(old_key, s, "", old_owner ? old_owner : owner);
    key_of(index_key, s, "ro:", record_name);
    snprintf(ttl_s, sizeof ttl_s, "%ld", ttl > 0 ? ttl : 0);
    const char *keys[] = {owner_key, old_key, index_key};
    const char *args[3 + EVENT_ARGS] = {pointer, ttl_s, owner};
    size_t lens[3 + EVENT_ARGS] = {strlen(pointer), strlen(ttl_s), strlen(owner)};
    struct event_num num;
    event_args(s, ev, owner, args + 3, lens + 3, &num);
    redisReply *r = eval(s, SCRIPT_OWNER_SET, 3, keys, 3 + EVENT_ARGS, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    freeReplyObject(r);
    return STORE_OK;
}

enum store_result store_owner_delete(struct store *s, const char *owner)
{
    char key[KEY_MAX], name_key[KEY_MAX];
    key_of(key, s, "", owner);
    key_of(name_key, s, "od:", owner); /* a site user's name, kept for its events */
    const char *argv[] = {"DEL", key, name_key};
    size_t lens[] = {3, strlen(key), strlen(name_key)};
    redisReply *r = command(s, 3, argv, lens);
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
                                   long ttl, const struct store_event *ev)
{
    char ver[24], ttl_s[24], key[KEY_MAX];
    snprintf(ver, sizeof ver, "%llu", (unsigned long long)expected_version);
    snprintf(ttl_s, sizeof ttl_s, "%ld", ttl > 0 ? ttl : 0);
    key_of(key, s, "", record_name);
    const char *keys[] = {key};
    const char *args[3 + EVENT_ARGS] = {ver, data, ttl_s};
    size_t lens[3 + EVENT_ARGS] = {strlen(ver), len, strlen(ttl_s)};
    struct event_num num;
    event_args(s, ev, NULL, args + 3, lens + 3, &num);
    redisReply *r = eval(s, SCRIPT_RECORD_PUT, 1, keys, 3 + EVENT_ARGS, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = (r->type == REDIS_REPLY_INTEGER && r->integer == 1) ? STORE_OK
                                                                                : STORE_CONFLICT;
    freeReplyObject(r);
    return res;
}

enum store_result store_record_delete(struct store *s, const char *record_name,
                                      uint64_t expected_version, const struct store_event *ev)
{
    char ver[24], key[KEY_MAX], index_key[KEY_MAX];
    snprintf(ver, sizeof ver, "%llu", (unsigned long long)expected_version);
    key_of(key, s, "", record_name);
    key_of(index_key, s, "ro:", record_name);
    const char *keys[] = {key, index_key};
    const char *args[1 + EVENT_ARGS] = {ver};
    size_t lens[1 + EVENT_ARGS] = {strlen(ver)};
    struct event_num num;
    event_args(s, ev, NULL, args + 1, lens + 1, &num);
    redisReply *r = eval(s, SCRIPT_RECORD_DELETE, 2, keys, 1 + EVENT_ARGS, args, lens);
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
            redisReply *r = command_strs(s, 6, argv);
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
                                     const char *pointer, const struct store_event *ev)
{
    char key[KEY_MAX];
    key_of(key, s, "", owner);
    const char *keys[] = {key};
    const char *args[2 + EVENT_ARGS] = {was, pointer};
    size_t lens[2 + EVENT_ARGS] = {strlen(was), strlen(pointer)};
    struct event_num num;
    event_args(s, ev, owner, args + 2, lens + 2, &num);
    redisReply *r = eval(s, SCRIPT_OWNER_REBIND, 1, keys, 2 + EVENT_ARGS, args, lens);
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
    char keep[24];
    snprintf(keep, sizeof keep, "%ld", s->cfg->events_retention);
    owner_display_text display;
    owner_display(s, owner, display);
    const char *keys[] = {key};
    const char *args[] = {ttl_s, s->cfg->redis_prefix, keep, display};
    redisReply *r = eval_strs(s, SCRIPT_LOAD_OWNER, 1, keys, 4, args);
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
                                      const char *old_owner, const struct store_event *ev)
{
    char rkey[KEY_MAX], okey[KEY_MAX], oldkey[KEY_MAX], index_key[KEY_MAX], ttl_s[24];
    key_of(rkey, s, "", record_name);
    key_of(okey, s, "", owner);
    key_of(oldkey, s, "", old_owner ? old_owner : owner);
    key_of(index_key, s, "ro:", record_name);
    snprintf(ttl_s, sizeof ttl_s, "%ld", ttl > 0 ? ttl : 0);
    const char *keys[] = {rkey, okey, oldkey, index_key};
    const char *args[5 + EVENT_ARGS] = {data, ttl_s, pointer, ttl_s, owner};
    size_t lens[5 + EVENT_ARGS] = {len, strlen(ttl_s), strlen(pointer), strlen(ttl_s), strlen(owner)};
    struct event_num num;
    event_args(s, ev, owner, args + 5, lens + 5, &num);
    redisReply *r = eval(s, SCRIPT_CREATE_POINT, 4, keys, 5 + EVENT_ARGS, args, lens);
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


/* ---- delivering events ---- */

/* The delivery keys: ev (stream), evdue, evatt, evfail, evfaild. */
struct event_keys {
    char ev[KEY_MAX], due[KEY_MAX], att[KEY_MAX], fail[KEY_MAX], faild[KEY_MAX];
};

static void event_keys(const struct store *s, struct event_keys *k)
{
    key_of(k->ev, s, "", "ev");
    key_of(k->due, s, "", "evdue");
    key_of(k->att, s, "", "evatt");
    key_of(k->fail, s, "", "evfail");
    key_of(k->faild, s, "", "evfaild");
}

static int64_t id_ms(const char *id)
{
    return strtoll(id, NULL, 10);
}

/* One stream entry, [id, [field, value, …]], into e (arena).  False when malformed. */
static bool entry_of(const redisReply *r, struct arena *a, struct store_event_entry *e)
{
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || r->element[0]->type != REDIS_REPLY_STRING ||
        r->element[1]->type != REDIS_REPLY_ARRAY)
        return false;
    memset(e, 0, sizeof *e);
    e->id = arena_strndup(a, r->element[0]->str, r->element[0]->len);
    const redisReply *f = r->element[1];
    for (size_t i = 0; i + 1 < f->elements; i += 2) {
        const redisReply *k = f->element[i], *v = f->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        char *val = arena_strndup(a, v->str, v->len);
        if (strcmp(k->str, "t") == 0)
            e->type = val;
        else if (strcmp(k->str, "o") == 0)
            e->owner = val;
        else if (strcmp(k->str, "b") == 0)
            e->business = val;
        else if (strcmp(k->str, "d") == 0)
            e->data = val;
        else if (strcmp(k->str, "ts") == 0)
            e->ts_ms = strtoll(val, NULL, 10);
        else if (strcmp(k->str, "q") == 0)
            e->sequence = strtoll(val, NULL, 10);
    }
    return e->type && e->owner && e->data;
}

/* The entries of an array reply, up to max; malformed ones are skipped. */
static int entries_of(const redisReply *list, struct arena *a, int max,
                      struct store_event_entry *out)
{
    int n = 0;
    for (size_t i = 0; list && list->type == REDIS_REPLY_ARRAY && i < list->elements && n < max; i++)
        if (entry_of(list->element[i], a, &out[n]))
            n++;
    return n;
}

/* A failure's entry as kept in evfaild (JSON; the same fields as the stream's). */
static char *entry_json(const struct store_event_entry *e)
{
    json_t *j = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "t", e->type, "o", e->owner, "b",
                          e->business ? e->business : "", "d", e->data, "ts", (json_int_t)e->ts_ms,
                          "q", (json_int_t)e->sequence);
    char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    return text;
}

static bool entry_from_json(const char *id, const char *text, struct arena *a,
                            struct store_event_entry *e)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    const char *t = NULL, *o = NULL, *b = NULL, *d = NULL;
    json_int_t ts = 0, q = 0;
    bool ok = j && json_unpack(j, "{s:s,s:s,s:s,s:s,s:I,s:I}", "t", &t, "o", &o, "b", &b, "d", &d,
                               "ts", &ts, "q", &q) == 0;
    if (ok) {
        *e = (struct store_event_entry){.id = arena_strdup(a, id), .type = arena_strdup(a, t),
                                        .owner = arena_strdup(a, o), .business = arena_strdup(a, b),
                                        .data = arena_strdup(a, d), .ts_ms = ts, .sequence = q};
    }
    json_decref(j);
    return ok;
}

enum store_result store_events_group(struct store *s)
{
    struct event_keys k;
    event_keys(s, &k);
    const char *keys[] = {k.ev};
    redisReply *r = eval(s, SCRIPT_EVENTS_GROUP, 1, keys, 0, NULL, NULL);
    if (!r)
        return STORE_UNAVAILABLE;
    freeReplyObject(r);
    return STORE_OK;
}

int store_events_read(struct store *s, const char *consumer, int max, struct arena *a,
                      struct store_event_entry *out)
{
    struct event_keys k;
    event_keys(s, &k);
    char count[16];
    snprintf(count, sizeof count, "%d", max);
    const char *argv[] = {"XREADGROUP", "GROUP", "fbconnect", consumer, "COUNT", count,
                          "STREAMS", k.ev, ">"};
    redisReply *r = command_strs(s, 9, argv);
    if (!r)
        return -1;
    int n = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2)
        n = entries_of(r->element[0]->element[1], a, max, out);
    freeReplyObject(r);
    return n;
}

int store_events_claim(struct store *s, const char *consumer, long min_idle_ms, int max,
                       struct arena *a, struct store_event_entry *out)
{
    struct event_keys k;
    event_keys(s, &k);
    char idle[24], count[16];
    snprintf(idle, sizeof idle, "%ld", min_idle_ms);
    snprintf(count, sizeof count, "%d", max);
    const char *argv[] = {"XAUTOCLAIM", k.ev, "fbconnect", consumer, idle, "0-0", "COUNT", count};
    redisReply *r = command_strs(s, 8, argv);
    if (!r)
        return -1;
    int n = 0;
    if (r->type == REDIS_REPLY_ARRAY && r->elements >= 2)
        n = entries_of(r->element[1], a, max, out);
    freeReplyObject(r);
    return n;
}

/* Event `id` from the stream or, once trimmed, from the failures kept: STORE_OK,
 * STORE_NOT_FOUND or STORE_UNAVAILABLE. */
static enum store_result event_get(struct store *s, const struct event_keys *k, const char *id,
                                   struct arena *a, struct store_event_entry *e)
{
    const char *argv[] = {"XRANGE", k->ev, id, id};
    redisReply *r = command_strs(s, 4, argv);
    if (!r)
        return STORE_UNAVAILABLE;
    bool found = entries_of(r, a, 1, e) == 1;
    freeReplyObject(r);
    if (found)
        return STORE_OK;
    const char *hargv[] = {"HGET", k->faild, id};
    r = command_strs(s, 3, hargv);
    if (!r)
        return STORE_UNAVAILABLE;
    found = r->type == REDIS_REPLY_STRING && entry_from_json(id, r->str, a, e);
    freeReplyObject(r);
    return found ? STORE_OK : STORE_NOT_FOUND;
}

int store_events_due(struct store *s, int64_t now_ms, long lease_ms, int max, struct arena *a,
                     struct store_event_entry *out)
{
    struct event_keys k;
    event_keys(s, &k);
    char now[24], lease[24], count[16];
    snprintf(now, sizeof now, "%lld", (long long)now_ms);
    snprintf(lease, sizeof lease, "%ld", lease_ms);
    snprintf(count, sizeof count, "%d", max);
    const char *keys[] = {k.due};
    const char *args[] = {now, lease, count};
    redisReply *r = eval_strs(s, SCRIPT_EVENTS_DUE, 1, keys, 3, args);
    if (!r)
        return -1;
    int n = 0;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements && n < max; i++) {
        if (r->element[i]->type != REDIS_REPLY_STRING)
            continue;
        const char *id = arena_strdup(a, r->element[i]->str);
        enum store_result got = event_get(s, &k, id, a, &out[n]);
        if (got == STORE_OK) {
            out[n].due = true;
            n++;
        } else if (got == STORE_NOT_FOUND) { /* trimmed meanwhile: nothing left to send */
            const char *zargv[] = {"ZREM", k.due, id};
            redisReply *z = command_strs(s, 3, zargv);
            if (z)
                freeReplyObject(z);
        }
    }
    freeReplyObject(r);
    return n;
}

enum store_result store_events_settle(struct store *s, const struct store_event_entry *e,
                                      enum store_settle how, int64_t when_ms, unsigned *attempts)
{
    struct event_keys k;
    event_keys(s, &k);
    char when[24];
    snprintf(when, sizeof when, "%lld", (long long)when_ms);
    char *json = how == SETTLE_GIVE_UP ? entry_json(e) : NULL;
    const char *keys[] = {k.ev, k.due, k.att, k.fail, k.faild};
    const char *args[] = {e->id, how == SETTLE_DELIVERED ? "ok" : how == SETTLE_RETRY ? "retry" : "fail",
                          when, json ? json : ""};
    redisReply *r = eval_strs(s, SCRIPT_EVENTS_SETTLE, 5, keys, 4, args);
    free(json);
    if (!r)
        return STORE_UNAVAILABLE;
    if (attempts)
        *attempts = r->type == REDIS_REPLY_INTEGER && r->integer > 0 ? (unsigned)r->integer : 1;
    freeReplyObject(r);
    return STORE_OK;
}

enum store_result store_events_touch(struct store *s, const char *consumer,
                                     const struct store_event_entry *e, long lease_ms)
{
    struct event_keys k;
    event_keys(s, &k);
    char until[24];
    snprintf(until, sizeof until, "%lld", (long long)(clock_wall_ms() + lease_ms));
    const char *zargv[] = {"ZADD", k.due, "XX", until, e->id};
    const char *xargv[] = {"XCLAIM", k.ev, "fbconnect", consumer, "0", e->id, "JUSTID"};
    const char **argv = e->due ? zargv : xargv;
    int argc = e->due ? 5 : 7;
    redisReply *r = command_strs(s, argc, argv);
    if (!r)
        return STORE_UNAVAILABLE;
    freeReplyObject(r);
    return STORE_OK;
}

unsigned store_events_attempts(struct store *s, const char *id)
{
    struct event_keys k;
    event_keys(s, &k);
    const char *argv[] = {"HGET", k.att, id};
    redisReply *r = command_strs(s, 3, argv);
    unsigned n = r && r->type == REDIS_REPLY_STRING ? (unsigned)strtoul(r->str, NULL, 10) : 0;
    if (r)
        freeReplyObject(r);
    return n;
}

enum store_result store_events_retry(struct store *s, const char *id, int *n)
{
    struct event_keys k;
    event_keys(s, &k);
    char now[24];
    snprintf(now, sizeof now, "%lld", (long long)clock_wall_ms());
    const char *keys[] = {k.due, k.fail, k.faild, k.ev};
    const char *args[] = {id ? id : "", now};
    redisReply *r = eval_strs(s, SCRIPT_EVENTS_RETRY, 4, keys, 2, args);
    if (!r)
        return STORE_UNAVAILABLE;
    *n = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
    freeReplyObject(r);
    return id && *n == 0 ? STORE_NOT_FOUND : STORE_OK;
}

int store_events_trim(struct store *s, int64_t before_ms, int64_t forget_ms, long idle_ms)
{
    struct event_keys k;
    event_keys(s, &k);
    char minid[32], now[24], forget[24], idle[24];
    snprintf(minid, sizeof minid, "%lld-0", (long long)(before_ms > 0 ? before_ms : 0));
    snprintf(now, sizeof now, "%lld", (long long)clock_wall_ms());
    snprintf(forget, sizeof forget, "%lld", (long long)forget_ms);
    snprintf(idle, sizeof idle, "%ld", idle_ms);
    const char *keys[] = {k.ev, k.due, k.att, k.fail, k.faild};
    const char *args[] = {minid, now, forget, idle};
    redisReply *r = eval_strs(s, SCRIPT_EVENTS_TRIM, 5, keys, 4, args);
    if (!r)
        return -1;
    int n = r->type == REDIS_REPLY_INTEGER ? (int)r->integer : 0;
    freeReplyObject(r);
    return n;
}

/* Whether id (a stream id) sorts after `last` (the group's last delivered id). */
static bool id_after(const char *id, const char *last)
{
    long long a_ms = 0, a_seq = 0, b_ms = 0, b_seq = 0;
    sscanf(id, "%lld-%lld", &a_ms, &a_seq);
    sscanf(last, "%lld-%lld", &b_ms, &b_seq);
    return a_ms > b_ms || (a_ms == b_ms && a_seq > b_seq);
}

/* The undelivered set: the group's pending list, the ids due again, and where the group
 * has read up to (ids after it are unread).  Replies to free. */
struct backlog {
    redisReply *pel, *due, *groups;
    char last[48];
    long lag; /* entries the group has not read */
};

static enum store_result backlog_read(struct store *s, const struct event_keys *k, struct backlog *b)
{
    memset(b, 0, sizeof b[0]);
    strcpy(b->last, "0-0");
    const char *pargv[] = {"XPENDING", k->ev, "fbconnect", "-", "+", "10000"};
    const char *dargv[] = {"ZRANGE", k->due, "0", "9999"};
    const char *gargv[] = {"XINFO", "GROUPS", k->ev};
    if (!(b->groups = command_strs(s, 3, gargv)))
        return STORE_UNAVAILABLE; /* also: no stream yet */
    if (!(b->pel = command_strs(s, 6, pargv)) || !(b->due = command_strs(s, 4, dargv)))
        return STORE_UNAVAILABLE;
    for (size_t g = 0; b->groups->type == REDIS_REPLY_ARRAY && g < b->groups->elements; g++) {
        const redisReply *f = b->groups->element[g];
        const char *name = NULL, *last = NULL;
        for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2) {
            if (f->element[i]->type != REDIS_REPLY_STRING || f->element[i + 1]->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(f->element[i]->str, "name") == 0)
                name = f->element[i + 1]->str;
            else if (strcmp(f->element[i]->str, "last-delivered-id") == 0)
                last = f->element[i + 1]->str;
        }
        for (size_t i = 0; f->type == REDIS_REPLY_ARRAY && i + 1 < f->elements; i += 2)
            if (name && strcmp(name, "fbconnect") == 0 && f->element[i]->type == REDIS_REPLY_STRING &&
                strcmp(f->element[i]->str, "lag") == 0 && f->element[i + 1]->type == REDIS_REPLY_INTEGER)
                b->lag = (long)f->element[i + 1]->integer;
        if (name && last && strcmp(name, "fbconnect") == 0)
            snprintf(b->last, sizeof b->last, "%s", last);
    }
    return STORE_OK;
}

static void backlog_free(struct backlog *b)
{
    if (b->pel)
        freeReplyObject(b->pel);
    if (b->due)
        freeReplyObject(b->due);
    if (b->groups)
        freeReplyObject(b->groups);
}

static bool backlog_has(const struct backlog *b, const char *id)
{
    if (id_after(id, b->last))
        return true;
    for (size_t i = 0; b->pel->type == REDIS_REPLY_ARRAY && i < b->pel->elements; i++) {
        const redisReply *p = b->pel->element[i];
        if (p->type == REDIS_REPLY_ARRAY && p->elements >= 1 && strcmp(p->element[0]->str, id) == 0)
            return true;
    }
    for (size_t i = 0; b->due->type == REDIS_REPLY_ARRAY && i < b->due->elements; i++)
        if (strcmp(b->due->element[i]->str, id) == 0)
            return true;
    return false;
}

int store_events_list(struct store *s, struct arena *a, int max, struct store_event_entry *out,
                      enum event_state *state)
{
    struct event_keys k;
    event_keys(s, &k);
    char count[16];
    snprintf(count, sizeof count, "%d", max);
    const char *argv[] = {"XREVRANGE", k.ev, "+", "-", "COUNT", count};
    redisReply *r = command_strs(s, 6, argv);
    if (!r)
        return -1;
    int n = entries_of(r, a, max, out);
    freeReplyObject(r);
    /* the failures, with their entries (so those trimmed from the stream are listed too) */
    const char *fargv[] = {"HGETALL", k.faild};
    redisReply *failed = command_strs(s, 2, fargv);
    if (!failed)
        return -1;
    size_t n_failed = failed->type == REDIS_REPLY_ARRAY ? failed->elements / 2 : 0;
    for (size_t i = 0; i < n_failed && n < max; i++) {
        const char *id = failed->element[2 * i]->str;
        bool listed = false;
        for (int j = 0; j < n && !listed; j++)
            listed = strcmp(out[j].id, id) == 0;
        if (!listed && entry_from_json(id, failed->element[2 * i + 1]->str, a, &out[n]))
            n++;
    }
    /* newest first, by id */
    for (int i = 1; i < n; i++)
        for (int j = i; j > 0 && id_after(out[j].id, out[j - 1].id); j--) {
            struct store_event_entry t = out[j];
            out[j] = out[j - 1];
            out[j - 1] = t;
        }
    struct backlog b;
    if (n > 0 && backlog_read(s, &k, &b) != STORE_OK) {
        backlog_free(&b);
        freeReplyObject(failed);
        return -1; /* states unknown: not reported as delivered */
    }
    for (int i = 0; i < n; i++) {
        bool gave_up = false; /* pending again (a retry) wins over failed */
        for (size_t f = 0; f < n_failed && !gave_up; f++)
            gave_up = strcmp(failed->element[2 * f]->str, out[i].id) == 0;
        state[i] = backlog_has(&b, out[i].id) ? EVENT_PENDING : gave_up ? EVENT_FAILED : EVENT_DELIVERED;
    }
    if (n > 0)
        backlog_free(&b);
    freeReplyObject(failed);
    return n;
}

enum store_result store_events_backlog(struct store *s, int64_t now_ms, long *pending,
                                       int64_t *oldest_ms, long *recorded)
{
    struct event_keys k;
    event_keys(s, &k);
    struct backlog b;
    *pending = 0;
    *oldest_ms = 0;
    enum store_result got = backlog_read(s, &k, &b);
    if (got != STORE_OK) {
        backlog_free(&b);
        return got;
    }
    int64_t oldest = 0;
    for (size_t i = 0; b.pel->type == REDIS_REPLY_ARRAY && i < b.pel->elements; i++) {
        const redisReply *p = b.pel->element[i];
        if (p->type != REDIS_REPLY_ARRAY || p->elements < 1)
            continue;
        (*pending)++;
        int64_t ms = id_ms(p->element[0]->str);
        if (!oldest || ms < oldest)
            oldest = ms;
    }
    for (size_t i = 0; b.due->type == REDIS_REPLY_ARRAY && i < b.due->elements; i++) {
        (*pending)++;
        int64_t ms = id_ms(b.due->element[i]->str);
        if (!oldest || ms < oldest)
            oldest = ms;
    }
    /* unread: after the group's last delivered id (how many: the group's lag) */
    *pending += b.lag;
    char after[52];
    snprintf(after, sizeof after, "(%s", b.last);
    const char *argv[] = {"XRANGE", k.ev, after, "+", "COUNT", "1"};
    redisReply *r = command_strs(s, 6, argv);
    if (r && r->type == REDIS_REPLY_ARRAY && r->elements == 1 && r->element[0]->type == REDIS_REPLY_ARRAY &&
        r->element[0]->elements == 2 && r->element[0]->element[0]->type == REDIS_REPLY_STRING) {
        int64_t ms = id_ms(r->element[0]->element[0]->str);
        if (!oldest || ms < oldest)
            oldest = ms;
    }
    if (r)
        freeReplyObject(r);
    backlog_free(&b);
    const char *iargv[] = {"XINFO", "STREAM", k.ev};
    *recorded = 0;
    if ((r = command_strs(s, 3, iargv))) {
        for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
            if (r->element[i]->type == REDIS_REPLY_STRING && strcmp(r->element[i]->str, "entries-added") == 0 &&
                r->element[i + 1]->type == REDIS_REPLY_INTEGER)
                *recorded = (long)r->element[i + 1]->integer;
        freeReplyObject(r);
    }
    *oldest_ms = oldest ? now_ms - oldest : 0;
    return STORE_OK;
}
