#include "store.h"

#include <hiredis.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
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

/* Every command's latency, and the failures. */
static struct {
    struct metric_histogram latency;
    metric_counter errors;
} redis_metrics;

static void redis_observed(bool ok, int64_t duration_us)
{
    metric_observe(&redis_metrics.latency, duration_us);
    if (!ok)
        metric_add(&redis_metrics.errors);
}

void store_metrics_render(struct buf *out)
{
    metric_family(out, "fbconnect_redis_errors_total", "counter",
                  "Redis commands that failed (unreachable, timeout, error reply).");
    metric_sample(out, "fbconnect_redis_errors_total", "", metric_get(&redis_metrics.errors));
    metric_family(out, "fbconnect_redis_seconds", "histogram", "Redis command latency.");
    metric_histogram(out, "fbconnect_redis_seconds", "", &redis_metrics.latency);
}

struct store {
    const struct config *cfg;
    redisContext *rc;
    uint64_t serial;  /* names the current connection (process-wide, never reused) */
    unsigned epoch;   /* the primary marker when the current connection was made */
    bool permanent;   /* the last command failed in a way that retrying cannot mend */
    bool stale;       /* made again before the next command (a WAIT fell short on it) */
    bool moved_here;  /* connect_redis: this connection's own checks moved the marker */
    int64_t deadline_us; /* the request's: no socket wait goes beyond it (0: none) */
    long socket_ms;      /* the timeout set on the current connection's socket */
    char key[256];                   /* scratch for prefixed key names */
    char script_sha[SCRIPT__MAX][41]; /* this thread's copy: no lock on the hot path */
    int wait_n;                       /* replicas a pair's write must reach (WAIT) */
    int64_t replication_checked;      /* when wait_n was worked out (monotonic us) */
};

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
    return s;
}

static void primary_forget(const struct config *cfg);

/* Closes the connection without forgetting where the primary is. */
static void close_connection(struct store *s)
{
    if (s->rc) {
        redisFree(s->rc);
        s->rc = NULL;
    }
}

/* Drops the connection (dead after any error in hiredis); in sentinel mode the primary's
 * address is forgotten too, so the next connection asks the sentinels again. */
static void drop(struct store *s)
{
    if (s->rc) {
        close_connection(s);
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
    char replid[41]; /* of the primary connected to last */
    long long config_epoch; /* the sentinels' failover count of the primary named last */
    int64_t failing_since_us; /* the named primary has failed every connect since (0: no) */
} topo = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* The current-primary marker: moves whenever any thread learns that the primary may have
 * changed (READONLY, a failed WAIT, the sentinels naming another node, a new replication
 * id); every connection made under an older value is made again before its next command,
 * so no thread goes on reading from or writing to a demoted primary. */
static atomic_uint primary_epoch;
static atomic_uint_fast64_t connection_serials;

static void primary_moved(const struct config *cfg, const char *why)
{
    static atomic_llong logged_us;
    atomic_fetch_add(&primary_epoch, 1);
    primary_forget(cfg);
    long long now = clock_mono_us(), last = atomic_load(&logged_us);
    if (now - last > 1000000 && atomic_compare_exchange_strong(&logged_us, &last, now))
        log_msg(LOG_WARN, "redis: %s; every connection finds the primary again", why);
}

/* Forgets the primary's address (sentinel mode): the next connection asks the sentinels. */
static void primary_forget(const struct config *cfg)
{
    if (cfg->n_sentinels == 0)
        return;
    pthread_mutex_lock(&topo.mu);
    topo.known = false;
    pthread_mutex_unlock(&topo.mu);
}

static struct timeval tv_of_ms(long ms)
{
    return (struct timeval){.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
}

static struct timeval timeout_of(const struct config *cfg)
{
    return tv_of_ms(cfg->redis_timeout_ms);
}

/* How long the next socket wait may last: want_ms, or less when the request's deadline is
 * nearer; 0 when it has passed. */
static long step_ms(const struct store *s, long want_ms)
{
    return clock_cap_ms(s->deadline_us, want_ms);
}

/* Sets the current connection's socket timeout to ms unless it is set so already. */
static bool socket_timeout(struct store *s, long ms)
{
    if (!s->rc)
        return false;
    if (s->socket_ms == ms)
        return true;
    if (redisSetTimeout(s->rc, tv_of_ms(ms)) != REDIS_OK)
        return false;
    s->socket_ms = ms;
    return true;
}

void store_set_deadline(struct store *s, int64_t deadline_us)
{
    s->deadline_us = deadline_us;
}

/* Asks the sentinels, in turn, for the primary of FBCONNECT_REDIS_MASTER (logging the
 * ones that fail unless quiet). */
static bool ask_sentinels(const struct config *cfg, struct timeval tv, char *host, size_t hostsz,
                          int *port, long long *config_epoch, bool quiet)
{
    pthread_mutex_lock(&topo.mu);
    unsigned first = topo.next_sentinel++;
    pthread_mutex_unlock(&topo.mu);
    for (size_t i = 0; i < cfg->n_sentinels; i++) {
        const struct redis_endpoint *e = &cfg->sentinels[(first + i) % cfg->n_sentinels];
        redisContext *rc = redisConnectWithTimeout(e->host, e->port, tv);
        if (!rc || rc->err || redisSetTimeout(rc, tv) != REDIS_OK) {
            if (!quiet)
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
        /* SENTINEL MASTER rather than get-master-addr-by-name: its config-epoch tells a
         * sentinel that has not heard of a failover yet from one that has. */
        redisReply *r = ok ? redisCommand(rc, "SENTINEL MASTER %s", cfg->sentinel_master) : NULL;
        bool found = false;
        const char *ip = NULL, *pt = NULL, *ep = NULL;
        for (size_t f = 0; r && r->type == REDIS_REPLY_ARRAY && f + 1 < r->elements; f += 2) {
            redisReply *key = r->element[f], *val = r->element[f + 1];
            if (key->type != REDIS_REPLY_STRING || val->type != REDIS_REPLY_STRING)
                continue;
            if (strcmp(key->str, "ip") == 0)
                ip = val->str;
            else if (strcmp(key->str, "port") == 0)
                pt = val->str;
            else if (strcmp(key->str, "config-epoch") == 0)
                ep = val->str;
        }
        if (ip && pt && atoi(pt) > 0) {
            found = true;
            snprintf(host, hostsz, "%s", ip);
            *port = atoi(pt);
            *config_epoch = ep ? strtoll(ep, NULL, 10) : 0;
        } else {
            if (!quiet)
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

/* Reads ROLE and INFO replication of a fresh connection: false when the server is not a
 * primary; sets s->wait_n, the replicas a pair's write must reach.  A primary whose
 * replication id differs from the one connected to before is a new primary (a failover
 * behind the same address): every other connection is made again. */
/* Records the primary a sentinel names, unless an answer of a later failover (a higher
 * config epoch) was seen already; another primary than before moves the marker (true). */
static bool primary_named(const char *host, int port, long long config_epoch)
{
    pthread_mutex_lock(&topo.mu);
    if (config_epoch < topo.config_epoch) {
        topo.known = topo.host[0] != '\0';
        pthread_mutex_unlock(&topo.mu);
        return false;
    }
    topo.config_epoch = config_epoch;
    bool moved = topo.host[0] && (strcmp(topo.host, host) != 0 || topo.port != port);
    snprintf(topo.host, sizeof topo.host, "%s", host);
    topo.port = port;
    topo.known = true;
    pthread_mutex_unlock(&topo.mu);
    if (moved) {
        atomic_fetch_add(&primary_epoch, 1);
        log_msg(LOG_WARN, "redis: the sentinels name a new primary, %s:%d; every connection moves there",
                host, port);
    }
    return moved;
}

/* ---- following the sentinels: one thread per process asks them every FOLLOW_MS, so a
 * failover reaches every thread within that time, not only those whose command fails ---- */

#define FOLLOW_MS 250

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool stopping, started;
    pthread_t thread;
    const struct config *cfg;
} follow = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void *follow_main(void *unused)
{
    (void)unused;
    pthread_mutex_lock(&follow.mu);
    while (!follow.stopping) {
        struct timespec until = clock_realtime_in(FOLLOW_MS);
        pthread_cond_timedwait(&follow.cv, &follow.mu, &until);
        if (follow.stopping)
            break;
        pthread_mutex_unlock(&follow.mu);
        char host[256];
        int port;
        long long config_epoch;
        if (ask_sentinels(follow.cfg, timeout_of(follow.cfg), host, sizeof host, &port,
                          &config_epoch, true))
            primary_named(host, port, config_epoch);
        pthread_mutex_lock(&follow.mu);
    }
    pthread_mutex_unlock(&follow.mu);
    return NULL;
}

int store_follow_start(const struct config *cfg)
{
    if (cfg->n_sentinels == 0 || follow.started)
        return 0;
    follow.cfg = cfg;
    follow.stopping = false;
    if (pthread_create(&follow.thread, NULL, follow_main, NULL) != 0)
        return -1;
    follow.started = true;
    return 0;
}

void store_follow_stop(void)
{
    if (!follow.started)
        return;
    pthread_mutex_lock(&follow.mu);
    follow.stopping = true;
    pthread_cond_signal(&follow.cv);
    pthread_mutex_unlock(&follow.mu);
    pthread_join(follow.thread, NULL);
    follow.started = false;
}

/* After a connect to the primary the sentinels named: a primary that failed every connect
 * for 5 s makes any sentinel's answer acceptable again, whatever its config epoch (a
 * sentinel fleet rebuilt from scratch counts from 0 again). */
static void primary_reached(const struct config *cfg, bool ok)
{
    if (cfg->n_sentinels == 0)
        return;
    int64_t now = clock_mono_us();
    pthread_mutex_lock(&topo.mu);
    if (ok) {
        topo.failing_since_us = 0;
    } else if (!topo.failing_since_us) {
        topo.failing_since_us = now;
    } else if (now - topo.failing_since_us > 5000000 && topo.config_epoch > LLONG_MIN) {
        topo.config_epoch = LLONG_MIN;
        log_msg(LOG_WARN, "redis: the primary the sentinels named last has failed for 5 s; "
                          "taking any sentinel's answer again");
    }
    pthread_mutex_unlock(&topo.mu);
}

static bool read_replication(struct store *s);

static bool check_primary(struct store *s)
{
    redisReply *r = redisCommand(s->rc, "ROLE");
    if (!r)
        return false;
    /* A Redis that refuses ROLE (renamed by a hosting provider) is taken as a primary. */
    bool primary = r->type == REDIS_REPLY_ERROR ||
                   (r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                    r->element[0]->type == REDIS_REPLY_STRING && strcmp(r->element[0]->str, "master") == 0);
    freeReplyObject(r);
    if (!primary) {
        log_msg(LOG_WARN, "redis at the configured address is not a primary (yet)");
        return false;
    }
    return read_replication(s);
}

/* INFO replication: sets s->wait_n; a new replication id moves the marker.  False when
 * Redis did not answer. */
static bool read_replication(struct store *s)
{
    const struct config *cfg = s->cfg;
    s->replication_checked = clock_mono_us();
    redisReply *r;
    r = redisCommand(s->rc, "INFO replication");
    if (!r)
        return false;
    const char *info = r->type == REDIS_REPLY_STRING ? r->str : "";
    const char *rep = strstr(info, "connected_slaves:");
    const char *id = strstr(info, "master_replid:");
    long replicas = rep ? atol(rep + strlen("connected_slaves:")) : 0;
    char replid[41] = "";
    if (id)
        sscanf(id + strlen("master_replid:"), "%40[0-9a-f]", replid);
    freeReplyObject(r);
    pthread_mutex_lock(&topo.mu);
    bool moved = replid[0] && topo.replid[0] && strcmp(replid, topo.replid) != 0;
    if (replid[0])
        snprintf(topo.replid, sizeof topo.replid, "%s", replid);
    /* Replication ids of primaries seen with replicas: writes to them must be acknowledged
     * by a replica, also once the replicas are gone (a demoted primary's last writes). */
    bool known = false;
    for (unsigned i = 0; i < topo.n_replids && i < 16 && !known; i++)
        known = replid[0] && strcmp(topo.replids[i], replid) == 0;
    if (!known && replicas > 0 && replid[0]) {
        snprintf(topo.replids[topo.n_replids % 16], 41, "%s", replid);
        topo.n_replids++;
        known = true;
    }
    pthread_mutex_unlock(&topo.mu);
    if (moved) {
        atomic_fetch_add(&primary_epoch, 1);
        s->moved_here = true;
        log_msg(LOG_WARN, "redis: a new primary (replication id changed); every connection finds it again");
    }
    s->wait_n = cfg->wait_replicas >= 0 ? cfg->wait_replicas : known ? 1 : 0;
    return true;
}

static bool connect_redis(struct store *s)
{
    const struct config *cfg = s->cfg;
    long ms = step_ms(s, cfg->redis_timeout_ms);
    if (ms <= 0)
        return false; /* the request's time is up */
    struct timeval tv = tv_of_ms(ms);
    /* The marker is read before the primary's address: a move announced meanwhile makes
     * this connection stale at once rather than trusted.  A move this connection's own
     * checks make (a sentinel's answer, a new replication id) is the one it follows. */
    unsigned epoch = atomic_load(&primary_epoch);
    s->moved_here = false;
    if (cfg->n_sentinels > 0) {
        char host[256];
        int port = 0;
        pthread_mutex_lock(&topo.mu);
        bool known = topo.known;
        snprintf(host, sizeof host, "%s", topo.host);
        port = topo.port;
        pthread_mutex_unlock(&topo.mu);
        if (!known) {
            long long config_epoch;
            if (!ask_sentinels(cfg, tv, host, sizeof host, &port, &config_epoch, false)) {
                log_msg(LOG_ERROR, "no sentinel names a primary for %s", cfg->sentinel_master);
                return false;
            }
            /* A sentinel behind the others names an older primary: use the newest known. */
            s->moved_here = primary_named(host, port, config_epoch);
            pthread_mutex_lock(&topo.mu);
            snprintf(host, sizeof host, "%s", topo.host);
            port = topo.port;
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
        primary_reached(cfg, false);
        drop(s);
        return false;
    }
    /* hiredis 0.14: the command timeout must be set again on every new connection. */
    s->socket_ms = 0;
    if (!socket_timeout(s, ms)) {
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
    primary_reached(cfg, ok);
    if (!ok) {
        drop(s);
        return false;
    }
    s->epoch = s->moved_here ? atomic_load(&primary_epoch) : epoch;
    s->stale = false;
    s->serial = atomic_fetch_add(&connection_serials, 1) + 1;
    return true;
}

/* Sends a command (argv form) and returns its reply, or NULL after dropping the connection
 * when Redis is unreachable or answers an error.  A connection found closed (Redis
 * restarted while it was idle) is replaced and the command sent once more; a timeout is
 * not retried, since the command may have run and its reply be late (a second SET NX
 * would then wrongly find its own key).  The caller frees the reply. */
static redisReply *command_send(struct store *s, int argc, const char **argv,
                                const size_t *lens, bool may_reconnect, long extra_ms);

static redisReply *command(struct store *s, int argc, const char **argv, const size_t *lens)
{
    int64_t t0 = clock_mono_us();
    redisReply *r = command_send(s, argc, argv, lens, true, 0);
    redis_observed(r != NULL, clock_mono_us() - t0);
    return r;
}

/* Sends on the current connection only (NULL when there is none or it fails): for WAIT,
 * which speaks for the writes of this very connection and means nothing on another. */
static redisReply *command_here(struct store *s, int argc, const char **argv, const size_t *lens)
{
    int64_t t0 = clock_mono_us();
    redisReply *r = s->rc ? command_send(s, argc, argv, lens, false, 0) : NULL;
    redis_observed(r != NULL, clock_mono_us() - t0);
    return r;
}

/* Errors after which a command may succeed when tried again, perhaps elsewhere; any
 * other error (WRONGTYPE, OOM, a script error, …) is permanent: no retry mends it. */
static bool error_may_heal(const char *e)
{
    static const char *const healing[] = {"READONLY", "LOADING", "MASTERDOWN", "NOREPLICAS",
                                          "BUSY", "TRYAGAIN", "CLUSTERDOWN", "NOAUTH"};
    for (size_t i = 0; i < sizeof healing / sizeof healing[0]; i++)
        if (strncmp(e, healing[i], strlen(healing[i])) == 0)
            return true;
    return false;
}

static redisReply *command_send(struct store *s, int argc, const char **argv,
                                const size_t *lens, bool may_reconnect, long extra_ms)
{
    s->permanent = false;
    /* A connection made before the primary moved is made again first. */
    if (may_reconnect && s->rc && (s->stale || s->epoch != atomic_load(&primary_epoch)))
        close_connection(s);
    for (int attempt = 0; attempt < (may_reconnect ? 2 : 1); attempt++) {
        if (!s->rc && (!may_reconnect || !connect_redis(s)))
            return NULL;
        long ms = step_ms(s, s->cfg->redis_timeout_ms + extra_ms);
        if (ms <= 0 || !socket_timeout(s, ms))
            return NULL; /* the request's time is up: no wait beyond its deadline */
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
            if (!error_may_heal(r->str)) {
                s->permanent = true;
                log_msg(LOG_ERROR, "redis refused a command, which no retry will mend (not "
                                   "retried; check the data under FBCONNECT_REDIS_PREFIX and Redis's "
                                   "memory): %.200s", r->str);
            } else {
                log_msg(LOG_ERROR, "redis error: %.200s", r->str);
                if (strncmp(r->str, "READONLY", 8) == 0 || strncmp(r->str, "MASTERDOWN", 10) == 0)
                    primary_moved(s->cfg, "the node connected to is no longer the primary");
                else
                    drop(s);
            }
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

/* EVALSHA with the script's cached sha, (re)loading it when Redis does not know it; on
 * the current connection only when `here` (NULL when there is none or it fails). */
static redisReply *eval_on(struct store *s, bool here, enum script_id id, int nkeys,
                           const char **keys, int nargs, const char **args,
                           const size_t *arglens)
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
            redisReply *r = here ? command_here(s, 3, la, ll) : command(s, 3, la, ll);
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
        redisReply *r = here ? command_here(s, argc, argv, lens) : command(s, argc, argv, lens);
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

static redisReply *eval(struct store *s, enum script_id id, int nkeys, const char **keys,
                        int nargs, const char **args, const size_t *arglens)
{
    return eval_on(s, false, id, nkeys, keys, nargs, args, arglens);
}

static redisReply *eval_here(struct store *s, enum script_id id, int nkeys, const char **keys,
                             int nargs, const char **args, const size_t *arglens)
{
    return eval_on(s, true, id, nkeys, keys, nargs, args, arglens);
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

enum store_result store_lock_try(struct store *s, const char *record_name,
                                 struct store_lock *lock, long ttl_ms)
{
    char lkey[256], cool[256], ttl[24];
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
        lock->connection = s->serial;
        lock->epoch = s->epoch;
        lock->expires_us = t0 + ttl_ms * 1000;
    }
    return res;
}

/* The release script on this store's current connection, or (elsewhere) on the current
 * primary.  True when Redis ran it. */
static bool release_once(struct store *s, const char *record_name, const struct store_lock *lock,
                         long cooldown_ms, bool here)
{
    char lkey[256], cool[256], ms[24];
    lock_keys(s, record_name, lkey, cool, sizeof lkey);
    snprintf(ms, sizeof ms, "%ld", cooldown_ms > 0 ? cooldown_ms : 0);
    const char *keys[] = {lkey, cool};
    const char *args[] = {lock->owner, ms};
    size_t lens[] = {strlen(lock->owner), strlen(ms)};
    redisReply *r = here ? eval_here(s, SCRIPT_LOCK_RELEASE, 2, keys, 2, args, lens)
                         : eval(s, SCRIPT_LOCK_RELEASE, 2, keys, 2, args, lens);
    if (!r)
        return false;
    freeReplyObject(r);
    return true;
}

enum store_result store_lock_release(struct store *s, const char *record_name,
                                     const struct store_lock *lock, long cooldown_ms)
{
    /* On the node that holds it, while this store is still connected there. */
    bool on_holder = s->rc && s->serial == lock->connection;
    bool moved_on = s->stale; /* read first: a release here does not make it fresh */
    bool released = on_holder && release_once(s, record_name, lock, cooldown_ms, true);
    /* When the primary may have moved since the lock was taken (the marker moved, or a WAIT
     * fell short on this connection), the lock may have reached the new primary too,
     * promoted with a replica that had it: release it there as well.  Deleting only this
     * owner's token, the script is safe to run anywhere. */
    if (released && !moved_on && lock->epoch == atomic_load(&primary_epoch))
        return STORE_OK;
    return release_once(s, record_name, lock, cooldown_ms, false) ? STORE_OK : STORE_UNAVAILABLE;
}

bool store_may_heal(const struct store *s)
{
    return !s->permanent;
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

/* SCAN for every key of the given kinds ("c:*", …), calling fn with each name without
 * the prefix.  Returns how many, or -1 when Redis failed. */
static int scan_kinds(struct store *s, const char *const *kinds, size_t n_kinds,
                      void (*fn)(const char *name, void *arg), void *arg)
{
    char cursor[32] = "0", pattern[128];
    size_t prefix_len = strlen(s->cfg->redis_prefix);
    int seen = 0;
    for (size_t kind = 0; kind < n_kinds; kind++) {
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
    redisReply *r = command1(s, "EXISTS", k(s, name));
    if (!r)
        return STORE_UNAVAILABLE;
    enum store_result res = r->type == REDIS_REPLY_INTEGER && r->integer == 1 ? STORE_OK
                                                                               : STORE_NOT_FOUND;
    freeReplyObject(r);
    return res;
}

enum store_result store_flag_set(struct store *s, const char *name)
{
    const char *argv[] = {"SET", k(s, name), "1"};
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
    char key[256];
    snprintf(key, sizeof key, "%s%s", s->cfg->redis_prefix, owner);
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
        !read_replication(s)) {
        drop(s);
        return STORE_UNAVAILABLE;
    }
    if (s->wait_n <= 0)
        return STORE_OK;
    /* WAIT blocks up to its timeout on the server: the socket gets that long beyond the
     * usual timeout; both end by the request's deadline. */
    long wait_ms = step_ms(s, s->cfg->wait_timeout_ms);
    if (wait_ms <= 0)
        return STORE_UNAVAILABLE; /* the request's time is up: not durable, not a failover */
    char n[16], ms[24];
    snprintf(n, sizeof n, "%d", s->wait_n);
    snprintf(ms, sizeof ms, "%ld", wait_ms);
    const char *argv[] = {"WAIT", n, ms};
    size_t lens[] = {4, strlen(n), strlen(ms)};
    int64_t t0 = clock_mono_us();
    redisReply *r = command_send(s, 3, argv, lens, false, wait_ms);
    redis_observed(r != NULL, clock_mono_us() - t0);
    long long acks = r && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    if (r)
        freeReplyObject(r);
    if (acks >= s->wait_n)
        return STORE_OK;
    log_msg(LOG_WARN, "redis: %lld of %d replicas acknowledged a write in %ld ms; treating it as not durable",
            acks < 0 ? 0 : acks, s->wait_n, s->cfg->wait_timeout_ms);
    /* A failover may be under way: this connection is made again before its next command
     * (it stays open until then, so a lock just taken on it can still be released on the
     * node that holds it), and with sentinels they are asked again — the marker moves, and
     * every thread follows, only if the primary did move.  Replicas merely slow or gone
     * cost this one connection, not the process. */
    s->stale = true;
    primary_forget(s->cfg);
    return STORE_UNAVAILABLE;
}
