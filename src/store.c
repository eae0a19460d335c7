#include "store.h"

#include <hiredis.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"

enum script_id {
    SCRIPT_RECORD_PUT,
    SCRIPT_RECORD_DELETE,
    SCRIPT_OWNER_SET,
    SCRIPT_LOCK_TRY,
    SCRIPT_LOCK_RELEASE,
    SCRIPT_WATCH,
    SCRIPT_LOAD_OWNER,
    SCRIPT_CREATE_POINT,
    SCRIPT__MAX
};

struct store {
    const struct config *cfg;
    redisContext *rc;
    char key[256];                   /* scratch for prefixed key names */
    char script_sha[SCRIPT__MAX][41]; /* this thread's copy: no lock on the hot path */
    int wait_n;                       /* replicas a pair's write must reach (WAIT) */
    int64_t replication_checked;      /* when wait_n was worked out (monotonic us) */
};

/* ---- scripts: run with EVALSHA, loaded on demand (again after NOSCRIPT) ---- */

/* KEYS[1] record; ARGV[1] expected version; ARGV[2] value; ARGV[3] ttl (0: none).
 * A value without a version this code understands counts as version 0 (overwritable),
 * as record_version() says. */
static const char script_record_put[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "local v = 0\n"
    "if cur then v = tonumber(string.match(cur, '^r1:(%d+):')) or 0 end\n"
    "if v ~= tonumber(ARGV[1]) then return 0 end\n"
    "if tonumber(ARGV[3]) > 0 then redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])\n"
    "else redis.call('SET', KEYS[1], ARGV[2]) end\n"
    "return 1\n";

/* KEYS[1] record; ARGV[1] expected version.  1 deleted, 0 version moved, -1 missing. */
static const char script_record_delete[] =
    "local cur = redis.call('GET', KEYS[1])\n"
    "if not cur then return -1 end\n"
    "local v = tonumber(string.match(cur, '^r1:(%d+):')) or -1\n"
    "if v ~= tonumber(ARGV[1]) then return 0 end\n"
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
    "local cur = redis.call('GET', KEYS[1])\n"
    "local v = -1\n"
    "if cur then v = tonumber(string.match(cur, '^r1:(%d+):')) or 0 end\n"
    "return {v, redis.call('EXISTS', KEYS[2])}\n";

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

static const char *const scripts[SCRIPT__MAX] = {script_record_put,   script_record_delete,
                                                 script_owner_set,    script_lock_try,
                                                 script_lock_release, script_watch,
                                                 script_load_owner,   script_create_point};

struct store *store_new(const struct config *cfg)
{
    struct store *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->cfg = cfg;
    return s;
}

static void primary_forget(const struct config *cfg);

/* Drops the connection (dead after any error in hiredis); in sentinel mode the primary's
 * address is forgotten too, so the next connection asks the sentinels again. */
static void drop(struct store *s)
{
    if (s->rc) {
        redisFree(s->rc);
        s->rc = NULL;
        primary_forget(s->cfg);
    }
}

void store_free(struct store *s)
{
    if (!s)
        return;
    drop(s);
    free(s);
}

static const char *k(struct store *s, const char *name)
{
    snprintf(s->key, sizeof s->key, "%s%s", s->cfg->redis_prefix, name);
    return s->key;
}

/* Runs a command on a fresh connection during setup; true on a non-error reply. */
static bool setup_command(struct store *s, const char *what, redisReply *r)
{
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok)
        log_msg(LOG_ERROR, "redis %s failed: %s", what,
                r ? r->str : (s->rc->errstr[0] ? s->rc->errstr : "no reply"));
    if (r)
        freeReplyObject(r);
    return ok;
}

/* ---- finding the primary: FBCONNECT_REDIS_URL's address, or the one the sentinels name
 * (asked again after any failure of the connection to it) ---- */

static struct {
    pthread_mutex_t mu;
    bool known;
    char host[256];
    int port;
    unsigned next_sentinel;
    /* Replication ids of primaries seen with replicas: writes to them must be acknowledged
     * by a replica, also once the replicas are gone (a demoted primary's last writes). */
    char replids[16][41];
    unsigned n_replids;
} topo = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* Forgets the primary's address (sentinel mode): the next connection asks the sentinels. */
static void primary_forget(const struct config *cfg)
{
    if (cfg->n_sentinels == 0)
        return;
    pthread_mutex_lock(&topo.mu);
    topo.known = false;
    pthread_mutex_unlock(&topo.mu);
}

static struct timeval timeout_of(const struct config *cfg)
{
    return (struct timeval){.tv_sec = cfg->redis_timeout_ms / 1000,
                            .tv_usec = (cfg->redis_timeout_ms % 1000) * 1000};
}

/* Asks the sentinels, in turn, for the primary of FBCONNECT_REDIS_MASTER. */
static bool ask_sentinels(const struct config *cfg, char *host, size_t hostsz, int *port)
{
    pthread_mutex_lock(&topo.mu);
    unsigned first = topo.next_sentinel++;
    pthread_mutex_unlock(&topo.mu);
    for (size_t i = 0; i < cfg->n_sentinels; i++) {
        const struct redis_endpoint *e = &cfg->sentinels[(first + i) % cfg->n_sentinels];
        redisContext *rc = redisConnectWithTimeout(e->host, e->port, timeout_of(cfg));
        if (!rc || rc->err || redisSetTimeout(rc, timeout_of(cfg)) != REDIS_OK) {
            log_msg(LOG_WARN, "sentinel %s:%d unreachable", e->host, e->port);
            if (rc)
                redisFree(rc);
            continue;
        }
        bool ok = true;
        if (cfg->sentinel_password) {
            redisReply *a = redisCommand(rc, "AUTH %s", cfg->sentinel_password);
            ok = a && a->type != REDIS_REPLY_ERROR;
            if (a)
                freeReplyObject(a);
        }
        redisReply *r = ok ? redisCommand(rc, "SENTINEL get-master-addr-by-name %s", cfg->sentinel_master) : NULL;
        bool found = r && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
                     r->element[0]->type == REDIS_REPLY_STRING && r->element[1]->type == REDIS_REPLY_STRING;
        if (found) {
            snprintf(host, hostsz, "%s", r->element[0]->str);
            *port = atoi(r->element[1]->str);
        } else {
            log_msg(LOG_WARN, "sentinel %s:%d does not name a primary for %s", e->host, e->port,
                    cfg->sentinel_master);
        }
        if (r)
            freeReplyObject(r);
        redisFree(rc);
        if (found)
            return true;
    }
    return false;
}

static bool check_replicas(struct store *s);

/* Reads ROLE and INFO replication of a fresh connection: false when the server is not a
 * primary; sets s->wait_n, the replicas a pair's write must reach. */
static bool check_primary(struct store *s)
{
    const struct config *cfg = s->cfg;
    redisReply *r = redisCommand(s->rc, "ROLE");
    if (!r)
        return false;
    /* A Redis that refuses ROLE (renamed by a hosting provider) is taken as a primary. */
    bool primary = r->type == REDIS_REPLY_ERROR ||
                   (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                    r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0);
    if (r)
        freeReplyObject(r);
    if (!primary) {
        log_msg(LOG_WARN, "redis at the configured address is not a primary (yet)");
        return false;
    }
    if (cfg->wait_replicas >= 0) {
        s->wait_n = cfg->wait_replicas;
        return true;
    }
    return check_replicas(s);
}

/* Auto mode: wait for one replica when this primary has (or, by its replication id, had)
 * replicas.  Returns false only when Redis did not answer. */
static bool check_replicas(struct store *s)
{
    s->replication_checked = clock_mono_us();
    redisReply *r = redisCommand(s->rc, "INFO replication");
    if (!r)
        return false;
    const char *info = r && r->type == REDIS_REPLY_STRING ? r->str : "";
    const char *rep = strstr(info, "connected_slaves:");
    const char *id = strstr(info, "master_replid:");
    long replicas = rep ? atol(rep + strlen("connected_slaves:")) : 0;
    char replid[41] = "";
    if (id)
        sscanf(id + strlen("master_replid:"), "%40[0-9a-f]", replid);
    pthread_mutex_lock(&topo.mu);
    bool known = false;
    for (unsigned i = 0; i < topo.n_replids && i < 16 && !known; i++)
        known = replid[0] && strcmp(topo.replids[i], replid) == 0;
    if (!known && replicas > 0 && replid[0]) {
        snprintf(topo.replids[topo.n_replids % 16], 41, "%s", replid);
        topo.n_replids++;
        known = true;
    }
    pthread_mutex_unlock(&topo.mu);
    s->wait_n = known ? 1 : 0;
    freeReplyObject(r);
    return true;
}

static bool connect_redis(struct store *s)
{
    const struct config *cfg = s->cfg;
    struct timeval tv = timeout_of(cfg);
    if (cfg->n_sentinels > 0) {
        char host[256];
        int port = 0;
        pthread_mutex_lock(&topo.mu);
        bool known = topo.known;
        snprintf(host, sizeof host, "%s", topo.host);
        port = topo.port;
        pthread_mutex_unlock(&topo.mu);
        if (!known) {
            if (!ask_sentinels(cfg, host, sizeof host, &port)) {
                log_msg(LOG_ERROR, "no sentinel names a primary for %s", cfg->sentinel_master);
                return false;
            }
            pthread_mutex_lock(&topo.mu);
            snprintf(topo.host, sizeof topo.host, "%s", host);
            topo.port = port;
            topo.known = true;
            pthread_mutex_unlock(&topo.mu);
        }
        s->rc = redisConnectWithTimeout(host, port, tv);
    } else if (cfg->redis.path) {
        s->rc = redisConnectUnixWithTimeout(cfg->redis.path, tv);
    } else {
        s->rc = redisConnectWithTimeout(cfg->redis.host, cfg->redis.port, tv);
    }
    if (!s->rc || s->rc->err) {
        log_msg(LOG_WARN, "redis connect failed: %s", s->rc ? s->rc->errstr : "out of memory");
        drop(s);
        return false;
    }
    /* hiredis 0.14: the command timeout must be set again on every new connection. */
    if (redisSetTimeout(s->rc, tv) != REDIS_OK) {
        drop(s);
        return false;
    }
    bool ok = true;
    if (cfg->redis_password) {
        redisReply *r = cfg->redis_user
                            ? redisCommand(s->rc, "AUTH %s %s", cfg->redis_user, cfg->redis_password)
                            : redisCommand(s->rc, "AUTH %s", cfg->redis_password);
        ok = setup_command(s, "AUTH", r);
    }
    if (ok && cfg->redis_db != 0)
        ok = setup_command(s, "SELECT", redisCommand(s->rc, "SELECT %d", cfg->redis_db));
    if (ok)
        ok = check_primary(s);
    if (!ok)
        drop(s);
    return ok;
}

/* Sends a command (argv form) and returns its reply, or NULL after dropping the connection
 * when Redis is unreachable or answers an error.  A connection found closed (Redis
 * restarted while it was idle) is replaced and the command sent once more; a timeout is
 * not retried, since the command may have run and its reply be late (a second SET NX
 * would then wrongly find its own key).  The caller frees the reply. */
static redisReply *command_send(struct store *s, int argc, const char **argv,
                                const size_t *lens, bool may_reconnect);

static redisReply *command(struct store *s, int argc, const char **argv, const size_t *lens)
{
    int64_t t0 = clock_mono_us();
    redisReply *r = command_send(s, argc, argv, lens, true);
    metrics_redis(r != NULL, clock_mono_us() - t0);
    return r;
}

/* Sends on the current connection only (NULL when there is none or it fails): for WAIT,
 * which speaks for the writes of this very connection and means nothing on another. */
static redisReply *command_here(struct store *s, int argc, const char **argv, const size_t *lens)
{
    int64_t t0 = clock_mono_us();
    redisReply *r = s->rc ? command_send(s, argc, argv, lens, false) : NULL;
    metrics_redis(r != NULL, clock_mono_us() - t0);
    return r;
}

static redisReply *command_send(struct store *s, int argc, const char **argv,
                                const size_t *lens, bool may_reconnect)
{
    for (int attempt = 0; attempt < (may_reconnect ? 2 : 1); attempt++) {
        if (!s->rc && (!may_reconnect || !connect_redis(s)))
            return NULL;
        redisReply *r = redisCommandArgv(s->rc, argc, argv, lens);
        if (!r) {
            /* A connection that died while idle (Redis restarted) fails on first use: try
             * once more on a fresh one.  A timeout does not get a second try. */
            bool timed_out = s->rc->err == REDIS_ERR_IO && strstr(s->rc->errstr, "temporarily");
            log_msg(LOG_WARN, "redis command failed: %s", s->rc->errstr);
            drop(s);
            if (timed_out || attempt == 1)
                return NULL;
            continue;
        }
        if (r->type == REDIS_REPLY_ERROR && strncmp(r->str, "NOSCRIPT", 8) != 0) {
            log_msg(LOG_ERROR, "redis error: %.200s", r->str);
            if (strncmp(r->str, "READONLY", 8) == 0 || strncmp(r->str, "LOADING", 7) == 0 ||
                strncmp(r->str, "NOAUTH", 6) == 0 || strncmp(r->str, "MASTERDOWN", 10) == 0)
                drop(s);
            freeReplyObject(r);
            return NULL;
        }
        return r;
    }
    return NULL;
}

static redisReply *command1(struct store *s, const char *a0, const char *a1)
{
    const char *argv[] = {a0, a1};
    size_t lens[] = {strlen(a0), strlen(a1)};
    return command(s, 2, argv, lens);
}

/* EVALSHA with the script's cached sha, (re)loading it when Redis does not know it. */
static redisReply *eval(struct store *s, enum script_id id, int nkeys, const char **keys,
                        int nargs, const char **args, const size_t *arglens)
{
    const char *argv[12];
    size_t lens[12];
    char nk[4];
    snprintf(nk, sizeof nk, "%d", nkeys);
    for (int attempt = 0; attempt < 2; attempt++) {
        char *sha = s->script_sha[id];
        if (!sha[0]) {
            const char *la[] = {"SCRIPT", "LOAD", scripts[id]};
            size_t ll[] = {6, 4, strlen(scripts[id])};
            redisReply *r = command(s, 3, la, ll);
            if (!r)
                return NULL;
            if (r->type != REDIS_REPLY_STRING || r->len != 40) {
                freeReplyObject(r);
                return NULL;
            }
            memcpy(sha, r->str, 40);
            sha[40] = '\0';
            freeReplyObject(r);
        }
        int argc = 0;
        argv[argc] = "EVALSHA";
        lens[argc++] = 7;
        argv[argc] = sha;
        lens[argc++] = 40;
        argv[argc] = nk;
        lens[argc++] = strlen(nk);
        for (int i = 0; i < nkeys; i++) {
            argv[argc] = keys[i];
            lens[argc++] = strlen(keys[i]);
        }
        for (int i = 0; i < nargs; i++) {
            argv[argc] = args[i];
            lens[argc++] = arglens[i];
        }
        redisReply *r = command(s, argc, argv, lens);
        if (!r)
            return NULL;
        if (r->type == REDIS_REPLY_ERROR) { /* NOSCRIPT: Redis restarted or flushed */
            freeReplyObject(r);
            sha[0] = '\0';
            continue;
        }
        return r;
    }
    return NULL;
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
    const char *argv[] = {"SET", k(s, name), "1", "NX", unit, v};
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
    const char *argv[] = {"SET", k(s, name), token, "NX", "EXAT", at, "GET"};
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
    const char *argv[] = {ttl > 0 ? "GETEX" : "GET", k(s, name), "EX", ttl_s};
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
    char owner_key[256], old_key[256], ttl_s[24];
    snprintf(owner_key, sizeof owner_key, "%s%s", s->cfg->redis_prefix, owner);
    snprintf(old_key, sizeof old_key, "%s%s", s->cfg->redis_prefix, old_owner ? old_owner : owner);
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
    redisReply *r = command1(s, "DEL", k(s, owner));
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
    char ver[24], ttl_s[24], key[256];
    snprintf(ver, sizeof ver, "%llu", (unsigned long long)expected_version);
    snprintf(ttl_s, sizeof ttl_s, "%ld", ttl > 0 ? ttl : 0);
    snprintf(key, sizeof key, "%s%s", s->cfg->redis_prefix, record_name);
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
    char ver[24], key[256];
    snprintf(ver, sizeof ver, "%llu", (unsigned long long)expected_version);
    snprintf(key, sizeof key, "%s%s", s->cfg->redis_prefix, record_name);
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
    snprintf(lock, n, "%slock:%s", s->cfg->redis_prefix, record_name);
    snprintf(cool, n, "%scool:%s", s->cfg->redis_prefix, record_name);
}

enum store_result store_lock_try(struct store *s, const char *record_name, const char *owner,
                                 long ttl_ms)
{
    char lock[256], cool[256], ttl[24];
    lock_keys(s, record_name, lock, cool, sizeof lock);
    snprintf(ttl, sizeof ttl, "%ld", ttl_ms);
    const char *keys[] = {lock, cool};
    const char *args[] = {owner, ttl};
    size_t lens[] = {strlen(owner), strlen(ttl)};
    redisReply *r = eval(s, SCRIPT_LOCK_TRY, 2, keys, 2, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = STORE_UNAVAILABLE;
    if (r->type == REDIS_REPLY_INTEGER)
        res = r->integer == 1 ? STORE_OK : r->integer == 0 ? STORE_EXISTS : STORE_CONFLICT;
    freeReplyObject(r);
    return res;
}

enum store_result store_lock_release(struct store *s, const char *record_name, const char *owner,
                                     long cooldown_ms)
{
    char lock[256], cool[256], ms[24];
    lock_keys(s, record_name, lock, cool, sizeof lock);
    snprintf(ms, sizeof ms, "%ld", cooldown_ms > 0 ? cooldown_ms : 0);
    const char *keys[] = {lock, cool};
    const char *args[] = {owner, ms};
    size_t lens[] = {strlen(owner), strlen(ms)};
    redisReply *r = eval(s, SCRIPT_LOCK_RELEASE, 2, keys, 2, args, lens);
    if (!r)
        return STORE_UNAVAILABLE;
    freeReplyObject(r);
    return STORE_OK;
}

enum store_result store_watch(struct store *s, const char *record_name, int64_t *version,
                              bool *locked)
{
    char lock[256], cool[256], key[256];
    lock_keys(s, record_name, lock, cool, sizeof lock);
    snprintf(key, sizeof key, "%s%s", s->cfg->redis_prefix, record_name);
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

int store_scan_records(struct store *s, void (*fn)(const char *record_name, void *arg), void *arg)
{
    char cursor[32] = "0", pattern[128];
    size_t prefix_len = strlen(s->cfg->redis_prefix);
    int seen = 0;
    static const char *const kinds[] = {"c:*", "p:*"};
    for (size_t kind = 0; kind < 2; kind++) {
        snprintf(pattern, sizeof pattern, "%s%s", s->cfg->redis_prefix, kinds[kind]);
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
    char key[256], ttl_s[24];
    snprintf(key, sizeof key, "%s%s", s->cfg->redis_prefix, owner);
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
    char rkey[256], okey[256], oldkey[256], ttl_s[24];
    snprintf(rkey, sizeof rkey, "%s%s", s->cfg->redis_prefix, record_name);
    snprintf(okey, sizeof okey, "%s%s", s->cfg->redis_prefix, owner);
    snprintf(oldkey, sizeof oldkey, "%s%s", s->cfg->redis_prefix, old_owner ? old_owner : owner);
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
    char k1[256], k2[256];
    snprintf(k1, sizeof k1, "%s%s", s->cfg->redis_prefix, name1);
    snprintf(k2, sizeof k2, "%s%s", s->cfg->redis_prefix, name2);
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

enum store_result store_wait_durable(struct store *s)
{
    if (!s->rc)
        return STORE_UNAVAILABLE;
    /* Replicas come and go: look again now and then on a long-lived connection. */
    if (s->cfg->wait_replicas < 0 && clock_mono_us() - s->replication_checked > 5000000 &&
        !check_replicas(s)) {
        drop(s);
        return STORE_UNAVAILABLE;
    }
    if (s->wait_n <= 0)
        return STORE_OK;
    char n[16], ms[24];
    snprintf(n, sizeof n, "%d", s->wait_n);
    snprintf(ms, sizeof ms, "%ld", s->cfg->wait_timeout_ms);
    const char *argv[] = {"WAIT", n, ms};
    size_t lens[] = {4, strlen(n), strlen(ms)};
    /* WAIT blocks up to wait_timeout_ms: give the socket that long beyond the usual timeout. */
    struct timeval tv = {.tv_sec = (s->cfg->redis_timeout_ms + s->cfg->wait_timeout_ms) / 1000,
                         .tv_usec = ((s->cfg->redis_timeout_ms + s->cfg->wait_timeout_ms) % 1000) * 1000};
    redisSetTimeout(s->rc, tv);
    redisReply *r = command_here(s, 3, argv, lens);
    if (s->rc)
        redisSetTimeout(s->rc, timeout_of(s->cfg));
    long long acks = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    if (acks >= s->wait_n)
        return STORE_OK;
    log_msg(LOG_WARN, "redis: %lld of %d replicas acknowledged a write in %ld ms; treating it as not durable",
            acks < 0 ? 0 : acks, s->wait_n, s->cfg->wait_timeout_ms);
    drop(s); /* a failover may be under way: find the primary again */
    return STORE_UNAVAILABLE;
}
