#include "redis.h"

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
#include "log.h"
#include "metrics.h"
#include "wire.h"

struct redis {
    const struct config *cfg;
    struct wire *rc; /* the socket (wire.h: TCP, unix or TLS) */
    uint64_t serial;  /* names the current connection (process-wide, never reused) */
    unsigned epoch;   /* the primary marker when the current connection was made */
    bool permanent;   /* the last command failed in a way that retrying cannot mend */
    bool stale;       /* made again before the next command (a WAIT fell short on it) */
    bool moved_here;  /* connect_redis: this connection's own checks moved the marker */
    int64_t deadline_us; /* the request's: no socket wait goes beyond it (0: none) */
    long socket_ms;      /* the time each command of the current connection is given */
    char script_sha[REDIS_SCRIPTS_MAX][41]; /* this thread's copy: no lock on the hot path */
    int wait_n;                       /* replicas a pair's write must reach (WAIT) */
    int64_t replication_checked;      /* when wait_n was worked out (monotonic us) */
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

void redis_metrics_render(struct buf *out)
{
    metric_family(out, "fbconnect_redis_errors_total", "counter",
                  "Redis commands that failed (unreachable, timeout, error reply).");
    metric_sample(out, "fbconnect_redis_errors_total", "", metric_get(&redis_metrics.errors));
    metric_family(out, "fbconnect_redis_seconds", "histogram", "Redis command latency.");
    metric_histogram(out, "fbconnect_redis_seconds", "", &redis_metrics.latency);
}

struct redis *redis_new(const struct config *cfg)
{
    struct redis *s = calloc(1, sizeof *s);
    if (!s)
        abort();
    s->cfg = cfg;
    return s;
}

static void primary_forget(const struct config *cfg);

/* Closes the connection without forgetting where the primary is. */
static void close_connection(struct redis *s)
{
    if (s->rc) {
        wire_close(s->rc);
        s->rc = NULL;
    }
}

/* Drops the connection (dead after any error in hiredis); in sentinel mode the primary's
 * address is forgotten too, so the next connection asks the sentinels again. */
static void drop(struct redis *s)
{
    if (s->rc) {
        close_connection(s);
        primary_forget(s->cfg);
    }
}

void redis_free(struct redis *s)
{
    if (!s)
        return;
    drop(s);
    free(s);
}

/* Runs a command on a fresh connection during setup; true on a non-error reply. */
static bool setup_command(struct redis *s, const char *what, redisReply *r)
{
    bool ok = r && r->type != REDIS_REPLY_ERROR;
    if (!ok && (r || wire_failure(s->rc) != WIRE_TLS)) /* a TLS refusal: logged once by the caller */
        log_msg(LOG_ERROR, "redis %s failed: %s", what, r ? r->str : wire_error(s->rc));
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
static long step_ms(const struct redis *s, long want_ms)
{
    return clock_cap_ms(s->deadline_us, want_ms);
}

/* Gives the current connection's commands ms each. */
static bool socket_timeout(struct redis *s, long ms)
{
    if (!s->rc)
        return false;
    s->socket_ms = ms;
    return true;
}

/* The wire target of a node: TLS with rediss:// (verified against
 * FBCONNECT_REDIS_TLS_SERVER_NAME when set, unless it is a sentinel: always its host). */
static struct wire_target target_of(const struct config *cfg, const char *host, int port,
                                    bool sentinel)
{
    return (struct wire_target){.host = host, .port = port, .tls = cfg->redis_tls,
                                .server_name = sentinel ? NULL : cfg->redis_tls_server_name};
}

/* Connect failures, logged once per change of the failure (not once per request). */
static struct {
    pthread_mutex_t mu;
    char last[256];
    enum wire_failure kind;
} failing = {.mu = PTHREAD_MUTEX_INITIALIZER};

/* What makes two failures the same one: the message up to its details in parentheses. */
static size_t failure_key_len(const char *msg)
{
    /* "…refused the connection after the handshake (details)": the details race; other
     * TLS lines name their check before any parenthesis ("does not verify: hostname
     * mismatch (…)"), so a new reason is a change. */
    const char *race = strstr(msg, " refused the connection after the handshake");
    if (race)
        return (size_t)(race - msg) + strlen(" refused the connection after the handshake");
    const char *paren = strstr(msg, " (");
    return paren ? (size_t)(paren - msg) : strlen(msg);
}

static void connect_failed(enum wire_failure kind, const char *msg)
{
    pthread_mutex_lock(&failing.mu);
    size_t k = failure_key_len(msg);
    bool same = failure_key_len(failing.last) == k && strncmp(failing.last, msg, k) == 0;
    snprintf(failing.last, sizeof failing.last, "%s", msg);
    failing.kind = kind;
    pthread_mutex_unlock(&failing.mu);
    if (!same)
        log_msg(kind == WIRE_TLS ? LOG_ERROR : LOG_WARN, "redis connect failed: %s%s", msg,
                kind == WIRE_TLS ? " (no plaintext fallback: 503 until this is fixed)" : "");
}

static void connect_succeeded(void)
{
    pthread_mutex_lock(&failing.mu);
    bool was = failing.last[0] != '\0';
    failing.last[0] = '\0';
    failing.kind = WIRE_OK;
    pthread_mutex_unlock(&failing.mu);
    if (was)
        log_msg(LOG_INFO, "redis connected again");
}

bool redis_last_failure(char *out, size_t outsz, bool *certificate)
{
    pthread_mutex_lock(&failing.mu);
    bool any = failing.last[0] != '\0';
    snprintf(out, outsz, "%s", failing.last);
    *certificate = failing.kind == WIRE_TLS;
    pthread_mutex_unlock(&failing.mu);
    return any;
}

void redis_set_deadline(struct redis *s, int64_t deadline_us)
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
    long ms = (long)tv.tv_sec * 1000 + tv.tv_usec / 1000;
    char tls_trouble[256] = ""; /* a sentinel's certificate or handshake refused, if any */
    for (size_t i = 0; i < cfg->n_sentinels; i++) {
        const struct redis_endpoint *e = &cfg->sentinels[(first + i) % cfg->n_sentinels];
        int64_t until = clock_mono_us() + (int64_t)ms * 1000; /* each sentinel: ms in all */
        struct wire_target t = target_of(cfg, e->host, e->port, true);
        enum wire_failure why;
        char msg[256];
        struct wire *rc = wire_connect(&t, ms, &why, msg, sizeof msg);
        if (!rc) {
            if (why == WIRE_TLS)
                snprintf(tls_trouble, sizeof tls_trouble, "%s", msg);
            else if (!quiet)
                log_msg(LOG_WARN, "sentinel %s:%d unreachable: %s", e->host, e->port, msg);
            continue;
        }
        bool ok = true;
        if (cfg->sentinel_password) {
            redisReply *a = wire_commandv(rc, clock_cap_ms(until, ms), 2, "AUTH", cfg->sentinel_password);
            ok = a && a->type != REDIS_REPLY_ERROR;
            if (a)
                freeReplyObject(a);
        }
        /* SENTINEL MASTER rather than get-master-addr-by-name: its config-epoch tells a
         * sentinel that has not heard of a failover yet from one that has. */
        redisReply *r = ok ? wire_commandv(rc, clock_cap_ms(until, ms), 3, "SENTINEL", "MASTER",
                                           cfg->sentinel_master)
                           : NULL;
        if (!r && wire_failure(rc) == WIRE_TLS) /* refused at the first exchange (TLS 1.3) */
            snprintf(tls_trouble, sizeof tls_trouble, "%s", wire_error(rc));
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
            if (!quiet && !tls_trouble[0])
                log_msg(LOG_WARN, "sentinel %s:%d does not name a primary for %s", e->host, e->port,
                    cfg->sentinel_master);
        }
        if (r)
            freeReplyObject(r);
        wire_close(rc);
        if (found)
            return true;
    }
    /* No sentinel answered: a certificate or handshake problem is the reason to report
     * (once), not that they are "unreachable".  The follow thread stays quiet. */
    if (!quiet && tls_trouble[0])
        connect_failed(WIRE_TLS, tls_trouble);
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

int redis_follow_start(const struct config *cfg)
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

void redis_follow_stop(void)
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

static bool read_replication(struct redis *s);

static bool check_primary(struct redis *s)
{
    redisReply *r = wire_commandv(s->rc, s->socket_ms, 1, "ROLE");
    if (!r) {
        if (wire_failure(s->rc) != WIRE_TLS) /* a TLS refusal is logged once, by the caller */
            log_msg(LOG_WARN, "redis did not answer ROLE: %s", wire_error(s->rc));
        return false;
    }
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
static bool read_replication(struct redis *s)
{
    const struct config *cfg = s->cfg;
    s->replication_checked = clock_mono_us();
    redisReply *r;
    r = wire_commandv(s->rc, s->socket_ms, 2, "INFO", "replication");
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

static bool connect_redis(struct redis *s)
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
    int64_t connect_until = clock_mono_us() + (int64_t)ms * 1000;
    enum wire_failure why = WIRE_OK;
    char msg[256] = "";
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
                char last[256];
                bool certificate = false; /* a sentinel's certificate trouble stays the reason */
                if (!redis_last_failure(last, sizeof last, &certificate) || !certificate)
                    connect_failed(WIRE_UNREACHABLE, "no sentinel names a primary (see the lines before)");
                return false;
            }
            /* A sentinel behind the others names an older primary: use the newest known. */
            s->moved_here = primary_named(host, port, config_epoch);
            pthread_mutex_lock(&topo.mu);
            snprintf(host, sizeof host, "%s", topo.host);
            port = topo.port;
            pthread_mutex_unlock(&topo.mu);
        }
        struct wire_target t = target_of(cfg, host, port, false);
        s->rc = wire_connect(&t, ms, &why, msg, sizeof msg);
    } else if (cfg->redis.path) {
        struct wire_target t = {.path = cfg->redis.path};
        s->rc = wire_connect(&t, ms, &why, msg, sizeof msg);
    } else {
        struct wire_target t = target_of(cfg, cfg->redis.host, cfg->redis.port, false);
        s->rc = wire_connect(&t, ms, &why, msg, sizeof msg);
    }
    if (!s->rc) {
        connect_failed(why, msg);
        primary_reached(cfg, false);
        primary_forget(cfg); /* asked of the sentinels again next time */
        return false;
    }
    /* AUTH, SELECT, ROLE and INFO share what is left of the connect's time. */
    socket_timeout(s, clock_cap_ms(connect_until, ms));
    bool ok = true;
    if (cfg->redis_password) {
        redisReply *r = cfg->redis_user
                            ? wire_commandv(s->rc, s->socket_ms, 3, "AUTH", cfg->redis_user, cfg->redis_password)
                            : wire_commandv(s->rc, s->socket_ms, 2, "AUTH", cfg->redis_password);
        ok = setup_command(s, "AUTH", r);
    }
    socket_timeout(s, clock_cap_ms(connect_until, ms));
    if (ok && cfg->redis_db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", cfg->redis_db);
        ok = setup_command(s, "SELECT", wire_commandv(s->rc, s->socket_ms, 2, "SELECT", db));
    }
    socket_timeout(s, clock_cap_ms(connect_until, ms));
    if (ok)
        ok = check_primary(s);
    primary_reached(cfg, ok);
    if (!ok) {
        if (wire_failure(s->rc) == WIRE_TLS) /* refused at the first exchange (TLS 1.3) */
            connect_failed(WIRE_TLS, wire_error(s->rc));
        drop(s);
        return false;
    }
    connect_succeeded();
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
static redisReply *command_send(struct redis *s, int argc, const char **argv,
                                const size_t *lens, bool may_reconnect, long extra_ms);

redisReply *redis_command(struct redis *s, int argc, const char **argv, const size_t *lens)
{
    int64_t t0 = clock_mono_us();
    redisReply *r = command_send(s, argc, argv, lens, true, 0);
    redis_observed(r != NULL, clock_mono_us() - t0);
    return r;
}

/* Sends on the current connection only (NULL when there is none or it fails): for WAIT,
 * which speaks for the writes of this very connection and means nothing on another. */
static redisReply *command_here(struct redis *s, int argc, const char **argv, const size_t *lens)
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

static redisReply *command_send(struct redis *s, int argc, const char **argv,
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
        redisReply *r = wire_command(s->rc, argc, argv, lens, s->socket_ms);
        if (!r) {
            /* A connection that died while idle (Redis restarted) fails on first use: try
             * once more on a fresh one.  A timeout does not get a second try. */
            bool timed_out = wire_failure(s->rc) == WIRE_TIMEOUT;
            log_msg(LOG_WARN, "redis command failed: %s", wire_error(s->rc));
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

/* EVALSHA with the script's cached sha, (re)loading it when Redis does not know it; on
 * the current connection only when `here` (NULL when there is none or it fails). */
redisReply *redis_eval(struct redis *s, unsigned id, const char *text, bool here, int nkeys,
                       const char **keys, int nargs, const char **args, const size_t *arglens)
{
    enum { EVAL_ARGS_MAX = 24 };
    if (id >= REDIS_SCRIPTS_MAX || nkeys + nargs > EVAL_ARGS_MAX)
        abort(); /* a programming error: more scripts or arguments than room */
    const char *argv[3 + EVAL_ARGS_MAX];
    size_t lens[3 + EVAL_ARGS_MAX];
    char nk[4];
    snprintf(nk, sizeof nk, "%d", nkeys);
    for (int attempt = 0; attempt < 2; attempt++) {
        char *sha = s->script_sha[id];
        if (!sha[0]) {
            const char *la[] = {"SCRIPT", "LOAD", text};
            size_t ll[] = {6, 4, strlen(text)};
            redisReply *r = here ? command_here(s, 3, la, ll) : redis_command(s, 3, la, ll);
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
        redisReply *r = here ? command_here(s, argc, argv, lens) : redis_command(s, argc, argv, lens);
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


bool redis_may_heal(const struct redis *s)
{
    return !s->permanent;
}

bool redis_wait_durable(struct redis *s)
{
    if (!s->rc)
        return false;
    /* Replicas come and go: look again now and then on a long-lived connection. */
    if (s->cfg->wait_replicas < 0 && clock_mono_us() - s->replication_checked > 5000000 &&
        (!socket_timeout(s, step_ms(s, s->cfg->redis_timeout_ms)) || s->socket_ms <= 0 ||
         !read_replication(s))) {
        drop(s);
        return false;
    }
    if (s->wait_n <= 0)
        return true;
    /* WAIT blocks up to its timeout on the server: the socket gets that long beyond the
     * usual timeout; both end by the request's deadline. */
    long wait_ms = step_ms(s, s->cfg->wait_timeout_ms);
    if (wait_ms <= 0)
        return false; /* the request's time is up: not durable, not a failover */
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
        return true;
    log_msg(LOG_WARN, "redis: %lld of %d replicas acknowledged a write in %ld ms; treating it as not durable",
            acks < 0 ? 0 : acks, s->wait_n, s->cfg->wait_timeout_ms);
    /* A failover may be under way: this connection is made again before its next command
     * (it stays open until then, so a lock just taken on it can still be released on the
     * node that holds it), and with sentinels they are asked again — the marker moves, and
     * every thread follows, only if the primary did move.  Replicas merely slow or gone
     * cost this one connection, not the process. */
    s->stale = true;
    primary_forget(s->cfg);
    return false;
}

uint64_t redis_connection(const struct redis *s)
{
    return s->rc ? s->serial : 0;
}

unsigned redis_epoch(const struct redis *s)
{
    return s->epoch;
}

bool redis_moved_since(const struct redis *s, unsigned epoch)
{
    return s->stale || epoch != atomic_load(&primary_epoch);
}
