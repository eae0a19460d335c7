#include "refresh.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "metrics.h"

#define LOCK_EXTRA_MS 5000   /* lock TTL = token call timeout + this */
#define COOLDOWN_MS 5000     /* after a timeout, 5xx or refusal: one attempt per record per 5 s */
#define SLACK_S 5            /* a token with less than this left is not handed out */
#define CAS_ATTEMPTS 6

const char *fresh_result_name(enum fresh_result r)
{
    switch (r) {
    case FRESH_OK: return "ok";
    case FRESH_RECONNECT: return "reconnect_required";
    case FRESH_UNAVAILABLE: return "unavailable";
    case FRESH_MISCONFIGURED: break;
    }
    return "misconfigured";
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    return clock_mono_us() / 1000;
}

static long lock_ttl_ms(const struct config *cfg)
{
    return cfg->http_timeout_ms + LOCK_EXTRA_MS;
}

static bool needs_refresh(const struct connection *c, const struct config *cfg, int64_t now)
{
    return c->pair.expires_at - now <= cfg->refresh_margin;
}

static bool usable(const struct connection *c, int64_t now)
{
    return !c->reconnect_required && c->pair.expires_at > now + SLACK_S;
}

/* False when the record was deleted and made again (a disconnect, then a connect) since
 * `was` was read: a pair of the old connection must not land in the new one. */
static bool same_generation(const struct connection *was, const struct connection *now)
{
    return strcmp(was->generation, now->generation) == 0;
}

/* ---- the vault: new pairs Redis could not take, stored again by a background thread ---- */

struct vault_entry {
    char name[80];
    char generation[GENERATION_LEN + 1]; /* of the connection the pair belongs to */
    int64_t created_at;
    struct buf value; /* the encoded record; its version is rewritten when stored */
    struct vault_entry *next;
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct vault_entry *entries;
    bool stopping, started;
    pthread_t thread;
    const struct app *app;
    atomic_uint count; /* entries: read without the lock on every request's fast path */
} vault = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void vault_entry_free(struct vault_entry *e);

unsigned refresh_kept_count(void)
{
    return atomic_load(&vault.count);
}

/* Called with vault.mu held, after changing the list. */
static void vault_recount_locked(void)
{
    unsigned n = 0;
    for (struct vault_entry *e = vault.entries; e; e = e->next)
        n++;
    atomic_store(&vault.count, n);
}

static void vault_put(const char *name, const char *generation, int64_t created_at,
                      const struct buf *value)
{
    struct vault_entry *e = xmalloc(sizeof *e);
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->generation, sizeof e->generation, "%s", generation);
    e->created_at = created_at;
    buf_append(&e->value, value->data, value->len);
    pthread_mutex_lock(&vault.mu);
    /* A newer entry for the same record replaces an older one. */
    for (struct vault_entry **p = &vault.entries; *p; p = &(*p)->next) {
        if (strcmp((*p)->name, name) == 0) {
            struct vault_entry *old = *p;
            *p = old->next;
            vault_entry_free(old);
            break;
        }
    }
    e->next = vault.entries;
    vault.entries = e;
    vault_recount_locked();
    pthread_cond_signal(&vault.cv);
    pthread_mutex_unlock(&vault.mu);
    log_msg(LOG_ERROR, "a refreshed token pair could not be stored (Redis unavailable); kept in memory "
                       "and stored again as soon as Redis answers");
}

/* The vault's pair for this record, when it is newer than the pair of `than` and of the
 * same connection: decoded into *out. */
static bool vault_get(struct ctx *ctx, const char *name, const struct connection *than,
                      struct connection *out)
{
    if (atomic_load(&vault.count) == 0)
        return false;
    bool found = false;
    struct buf copy = {0};
    pthread_mutex_lock(&vault.mu);
    for (struct vault_entry *e = vault.entries; e; e = e->next)
        if (strcmp(e->name, name) == 0 && e->created_at > than->pair.created_at &&
            strcmp(e->generation, than->generation) == 0) {
            buf_append(&copy, e->value.data, e->value.len);
            found = true;
        }
    pthread_mutex_unlock(&vault.mu);
    if (found)
        found = record_decode(ctx->arena, &ctx->app->keys, name, copy.data, copy.len, out) == RECORD_OK;
    if (copy.data)
        sodium_memzero(copy.data, copy.cap);
    buf_free(&copy);
    return found;
}

/* A kept pair whose connection was disconnected meanwhile: revoked at FreshBooks, so it
 * does not outlive the disconnect. */
static void vault_revoke(struct oauth *o, struct arena *a, const struct vault_entry *e)
{
    struct connection c;
    if (record_decode(a, &vault.app->keys, e->name, e->value.data, e->value.len, &c) != RECORD_OK)
        return;
    oauth_revoke(o, c.pair.refresh_token);
    oauth_revoke(o, c.pair.access_token);
}

/* Tries to store one vault entry.  True when it is settled: stored, or no longer wanted
 * (a newer pair is stored, or the connection was deleted meanwhile: then revoked). */
static bool vault_store(struct store *s, struct oauth *o, struct arena *a, struct vault_entry *e)
{
    for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        char *data = NULL;
        size_t len = 0;
        enum store_result r = store_record_get(s, e->name, 0, a, &data, &len);
        if (r == STORE_UNAVAILABLE)
            return false;
        struct connection cur;
        bool decoded = r == STORE_OK &&
                       record_decode(a, &vault.app->keys, e->name, data, len, &cur) == RECORD_OK;
        if (r == STORE_NOT_FOUND || (decoded && strcmp(cur.generation, e->generation) != 0)) {
            log_msg(LOG_WARN, "a kept token pair's connection was disconnected meanwhile; "
                              "revoking and dropping it");
            vault_revoke(o, a, e);
            return true;
        }
        if (decoded && cur.pair.created_at > e->created_at && !cur.reconnect_required)
            return true; /* a newer pair is stored: ours is dead already */
        uint64_t version = record_version(data, len);
        record_set_version(&e->value, version + 1);
        r = store_record_put(s, e->name, version, e->value.data, e->value.len,
                             vault.app->cfg.user_param ? 0 : vault.app->cfg.session_ttl);
        if (r == STORE_OK && store_wait_durable(s) != STORE_OK)
            return false; /* stored, but maybe not beyond a failover: again later */
        if (r == STORE_OK) {
            log_msg(LOG_INFO, "a kept token pair is stored now");
            return true;
        }
        if (r == STORE_UNAVAILABLE)
            return false;
    }
    return false;
}

static void vault_entry_free(struct vault_entry *e)
{
    if (e->value.data)
        sodium_memzero(e->value.data, e->value.cap);
    buf_free(&e->value);
    free(e);
}

/* Stores every entry it can; returns how many are left.  The entries are taken out while
 * Redis is tried, so request threads never wait on the vault's lock for Redis. */
static unsigned vault_flush(struct store *s, struct oauth *o, struct arena *a)
{
    pthread_mutex_lock(&vault.mu);
    struct vault_entry *todo = vault.entries, *left = NULL;
    vault.entries = NULL;
    pthread_mutex_unlock(&vault.mu);
    unsigned n_left = 0;
    while (todo) {
        struct vault_entry *e = todo;
        todo = e->next;
        arena_reset(a);
        if (vault_store(s, o, a, e)) {
            vault_entry_free(e);
        } else {
            e->next = left;
            left = e;
            n_left++;
        }
    }
    pthread_mutex_lock(&vault.mu);
    while (left) {
        struct vault_entry *e = left;
        left = e->next;
        bool superseded = false;
        for (struct vault_entry *n = vault.entries; n && !superseded; n = n->next)
            superseded = strcmp(n->name, e->name) == 0;
        if (superseded) { /* a newer pair for the record arrived meanwhile */
            vault_entry_free(e);
            n_left--;
        } else {
            e->next = vault.entries;
            vault.entries = e;
        }
    }
    vault_recount_locked();
    pthread_mutex_unlock(&vault.mu);
    return n_left;
}

static void *vault_main(void *unused)
{
    (void)unused;
    struct store *s = store_new(&vault.app->cfg);
    struct oauth *o = oauth_new(&vault.app->cfg);
    struct arena a;
    arena_init(&a, 16384);
    pthread_mutex_lock(&vault.mu);
    while (!vault.stopping) {
        if (!vault.entries) {
            pthread_cond_wait(&vault.cv, &vault.mu);
            continue;
        }
        pthread_mutex_unlock(&vault.mu);
        unsigned left = vault_flush(s, o, &a);
        if (left)
            sleep_ms(200);
        pthread_mutex_lock(&vault.mu);
    }
    pthread_mutex_unlock(&vault.mu);
    unsigned lost = vault_flush(s, o, &a);
    if (lost)
        log_msg(LOG_ERROR, "stopping with %u refreshed token pairs that Redis never took: those users "
                           "must connect again", lost);
    arena_destroy(&a);
    oauth_free(o);
    store_free(s);
    return NULL;
}

int refresh_init(const struct app *app)
{
    vault.app = app;
    if (pthread_create(&vault.thread, NULL, vault_main, NULL) != 0)
        return -1;
    vault.started = true;
    return 0;
}

void refresh_shutdown(void)
{
    if (!vault.started)
        return;
    pthread_mutex_lock(&vault.mu);
    vault.stopping = true;
    pthread_cond_signal(&vault.cv);
    pthread_mutex_unlock(&vault.mu);
    pthread_join(vault.thread, NULL);
    vault.started = false;
}

/* ---- flights: one refresh per record in this process, the other threads wait ---- */

struct flight {
    char name[80];
    pthread_cond_t cv;
    bool done;
    enum fresh_result result;
    unsigned refs;
    struct flight *next;
};

static pthread_mutex_t flights_mu = PTHREAD_MUTEX_INITIALIZER;
static struct flight *flights;

/* Joins the flight for `name`, or starts one (*leader = true). */
static struct flight *flight_join(const char *name, bool *leader)
{
    pthread_mutex_lock(&flights_mu);
    struct flight *f = flights;
    while (f && strcmp(f->name, name) != 0)
        f = f->next;
    *leader = f == NULL;
    if (!f) {
        f = xmalloc(sizeof *f);
        memset(f, 0, sizeof *f);
        snprintf(f->name, sizeof f->name, "%s", name);
        pthread_cond_init(&f->cv, NULL);
        f->next = flights;
        flights = f;
    }
    f->refs++;
    pthread_mutex_unlock(&flights_mu);
    return f;
}

static void flight_unref_locked(struct flight *f)
{
    if (--f->refs == 0) {
        pthread_cond_destroy(&f->cv);
        free(f);
    }
}

/* The leader's end: publishes the result and takes the flight off the table. */
static void flight_land(struct flight *f, enum fresh_result result)
{
    pthread_mutex_lock(&flights_mu);
    for (struct flight **p = &flights; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    f->result = result;
    f->done = true;
    pthread_cond_broadcast(&f->cv);
    flight_unref_locked(f);
    pthread_mutex_unlock(&flights_mu);
}

/* A follower's wait, up to timeout_ms.  Returns the leader's result, or FRESH_UNAVAILABLE
 * when it took too long. */
static enum fresh_result flight_wait(struct flight *f, long timeout_ms)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += timeout_ms / 1000;
    deadline.tv_nsec += (timeout_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&flights_mu);
    while (!f->done)
        if (pthread_cond_timedwait(&f->cv, &flights_mu, &deadline) == ETIMEDOUT)
            break;
    enum fresh_result r = f->done ? f->result : FRESH_UNAVAILABLE;
    flight_unref_locked(f);
    pthread_mutex_unlock(&flights_mu);
    return r;
}

/* ---- the refresh itself ---- */

/* Marks the record reconnect-required by compare-and-set.  When a newer usable pair was
 * stored meanwhile, takes it instead (FRESH_OK). */
static enum fresh_result mark_reconnect(struct ctx *ctx, struct loaded *l)
{
    struct buf value = {0};
    enum fresh_result res = FRESH_RECONNECT;
    for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        struct connection marked = l->c;
        marked.reconnect_required = true;
        record_encode(&ctx->app->keys, l->record_name, &marked, l->c.version + 1, &value);
        enum store_result r = store_record_put(ctx->w->store, l->record_name, l->c.version,
                                               value.data, value.len, connection_ttl(ctx));
        if (r == STORE_OK) {
            l->c = marked;
            l->c.version++;
            break;
        }
        if (r == STORE_UNAVAILABLE)
            break; /* not marked: the next attempt meets invalid_grant again */
        struct connection cur;
        if (connection_read(ctx, l->record_name, &cur) != STORE_OK)
            break;
        if (!same_generation(&l->c, &cur))
            break; /* disconnected and connected again: that connection is not ours to mark */
        if (cur.pair.created_at > l->c.pair.created_at && usable(&cur, clock_wall())) {
            l->c = cur;
            res = FRESH_OK;
            break;
        }
        l->c = cur;
    }
    if (value.data)
        sodium_memzero(value.data, value.cap);
    buf_free(&value);
    return res;
}

/* Stores a pair just obtained by compare-and-set against l->c.version (the record may move
 * meanwhile only by a connect, which keeps the newer pair, or a disconnect).  Updates l. */
static enum fresh_result store_refreshed(struct ctx *ctx, struct loaded *l,
                                         const struct token_pair *pair)
{
    struct connection fresh = l->c;
    fresh.pair = *pair;
    fresh.reconnect_required = false;
    struct buf value = {0};
    enum fresh_result res = FRESH_UNAVAILABLE;
    for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        record_encode(&ctx->app->keys, l->record_name, &fresh, l->c.version + 1, &value);
        enum store_result r = store_record_put(ctx->w->store, l->record_name, l->c.version,
                                               value.data, value.len, connection_ttl(ctx));
        if (r == STORE_OK && store_wait_durable(ctx->w->store) != STORE_OK)
            r = STORE_UNAVAILABLE; /* not on a replica: keep it in memory, store it again */
        if (r == STORE_OK) {
            l->c = fresh;
            l->c.version++;
            res = FRESH_OK;
            break;
        }
        struct connection cur;
        enum store_result got = r == STORE_CONFLICT ? connection_read(ctx, l->record_name, &cur) : r;
        if (got == STORE_UNAVAILABLE) {
            /* The only valid refresh token now exists in this process alone. */
            vault_put(l->record_name, fresh.generation, fresh.pair.created_at, &value);
            metrics_refresh(RM_KEPT_IN_MEMORY);
            l->c = fresh;
            res = FRESH_OK;
            break;
        }
        if (got == STORE_NOT_FOUND || !same_generation(&fresh, &cur)) {
            /* Disconnected (and maybe connected again) while we refreshed: the new pair must
             * not outlive that, nor land in a later connection. */
            oauth_revoke(ctx->w->oauth, pair->refresh_token);
            oauth_revoke(ctx->w->oauth, pair->access_token);
            res = FRESH_RECONNECT;
            break;
        }
        if (cur.pair.created_at > fresh.pair.created_at) {
            l->c = cur; /* a connect stored a newer pair: ours is dead */
            res = usable(&cur, clock_wall()) ? FRESH_OK : FRESH_RECONNECT;
            break;
        }
        l->c = cur;
        fresh.version = cur.version;
        fresh.ident = cur.ident;
        fresh.has_identity = cur.has_identity;
    }
    if (value.data)
        sodium_memzero(value.data, value.cap);
    buf_free(&value);
    return res;
}

/* Holding the lock: spend the refresh token and store the new pair. */
static enum fresh_result refresh_locked(struct ctx *ctx, struct loaded *l, long *cooldown_ms)
{
    struct token_pair pair;
    struct oauth *o = ctx->w->oauth;
    enum oauth_result r = oauth_refresh(o, ctx->arena, l->c.pair.refresh_token, &pair);
    int64_t now = clock_wall();
    switch (r) {
    case OAUTH_OK:
        ctx->outcome = "refreshed";
        metrics_refresh(RM_REFRESHED);
        return store_refreshed(ctx, l, &pair);
    case OAUTH_INVALID_GRANT:
        log_msg(LOG_WARN, "refresh token refused (invalid_grant): connection %.10s… needs reconnecting",
                l->record_name);
        ctx->outcome = "refresh_invalid_grant";
        metrics_refresh(RM_INVALID_GRANT);
        return mark_reconnect(ctx, l);
    case OAUTH_INVALID_CLIENT:
        log_msg(LOG_ERROR, "FreshBooks refuses this app's client id/secret (invalid_client) at refresh: "
                           "check FBCONNECT_CLIENT_ID and FBCONNECT_CLIENT_SECRET; no user is marked");
        ctx->outcome = "refresh_invalid_client";
        metrics_refresh(RM_INVALID_CLIENT);
        *cooldown_ms = COOLDOWN_MS;
        return FRESH_MISCONFIGURED;
    case OAUTH_RATE_LIMITED:
        *cooldown_ms = oauth_retry_after(o) > 0 ? oauth_retry_after(o) * 1000 : COOLDOWN_MS;
        break;
    case OAUTH_REJECTED:
    case OAUTH_UNAVAILABLE:
        *cooldown_ms = COOLDOWN_MS;
        break;
    case OAUTH_BUSY: /* never reached FreshBooks: no cooldown, the next request tries */
        ctx->outcome = "refresh_busy";
        return usable(&l->c, now) ? FRESH_OK : FRESH_UNAVAILABLE;
    }
    log_msg(LOG_WARN, "refresh failed (%s); keeping the pair, next attempt in %ld ms",
            oauth_last_error(o), *cooldown_ms);
    ctx->outcome = "refresh_transient";
    metrics_refresh(RM_TRANSIENT);
    return usable(&l->c, now) ? FRESH_OK : FRESH_UNAVAILABLE;
}

/* What a fresh look at the record says, after someone else may have refreshed it:
 * FRESH_OK when it holds a pair to use, FRESH_RECONNECT when marked or gone,
 * FRESH_UNAVAILABLE when Redis failed, and -1 when it still needs a refresh. */
static int look_again(struct ctx *ctx, struct loaded *l, uint64_t seen_version)
{
    struct connection cur;
    enum store_result got = connection_read(ctx, l->record_name, &cur);
    if (got == STORE_UNAVAILABLE)
        return FRESH_UNAVAILABLE;
    if (got == STORE_NOT_FOUND || !same_generation(&l->c, &cur))
        return FRESH_RECONNECT;
    l->c = cur;
    if (cur.reconnect_required)
        return FRESH_RECONNECT;
    int64_t now = clock_wall();
    /* A pair stored since we looked is as fresh as FreshBooks makes them: take it even when
     * the margin is longer than its lifetime. */
    if (!needs_refresh(&cur, ctx->cfg, now) || (cur.version != seen_version && usable(&cur, now)))
        return FRESH_OK;
    return -1;
}

/* The leader's work: the lock, or a wait for whoever holds it. */
static enum fresh_result lead(struct ctx *ctx, struct loaded *l)
{
    const struct config *cfg = ctx->cfg;
    uint8_t raw[16];
    char owner[33];
    random_bytes(raw, sizeof raw);
    sodium_bin2hex(owner, sizeof owner, raw, sizeof raw);
    uint64_t seen = l->c.version;
    int64_t deadline = mono_ms() + lock_ttl_ms(cfg) + 1000;
    for (;;) {
        enum store_result lr = store_lock_try(ctx->w->store, l->record_name, owner, lock_ttl_ms(cfg));
        if (lr == STORE_OK && store_wait_durable(ctx->w->store) != STORE_OK) {
            /* A lock the replicas have not seen could vanish in a failover and let another
             * host refresh too: give it up rather than spend the refresh token under it. */
            store_lock_release(ctx->w->store, l->record_name, owner, 0);
            ctx->outcome = "refresh_lock_not_durable";
            return usable(&l->c, clock_wall()) ? FRESH_OK : FRESH_UNAVAILABLE;
        }
        if (lr == STORE_OK)
            break;
        if (lr == STORE_UNAVAILABLE)
            return usable(&l->c, clock_wall()) ? FRESH_OK : FRESH_UNAVAILABLE;
        if (lr == STORE_CONFLICT) { /* cooling down after a failure */
            int again = look_again(ctx, l, seen);
            if (again >= 0)
                return (enum fresh_result)again;
            ctx->outcome = "refresh_cooldown";
            metrics_refresh(RM_COOLDOWN);
            return usable(&l->c, clock_wall()) ? FRESH_OK : FRESH_UNAVAILABLE;
        }
        /* Held elsewhere: poll until the record moves or the lock goes away. */
        ctx->outcome = "refresh_waited";
        metrics_refresh(RM_WAITED);
        long pause = 10;
        for (;;) {
            sleep_ms(pause);
            pause = pause < 160 ? pause * 2 : 200;
            int64_t version = -1;
            bool locked = true;
            enum store_result wr = store_watch(ctx->w->store, l->record_name, &version, &locked);
            if (wr == STORE_UNAVAILABLE)
                return usable(&l->c, clock_wall()) ? FRESH_OK : FRESH_UNAVAILABLE;
            if (version < 0)
                return FRESH_RECONNECT;
            if ((uint64_t)version != seen || !locked || mono_ms() > deadline)
                break;
        }
        int again = look_again(ctx, l, seen);
        if (again >= 0)
            return (enum fresh_result)again;
        if (mono_ms() > deadline)
            return usable(&l->c, clock_wall()) ? FRESH_OK : FRESH_UNAVAILABLE;
        /* The lock went away and nobody refreshed: try to take it ourselves. */
    }

    /* We hold the lock: another host may have refreshed before we took it. */
    long cooldown_ms = 0;
    enum fresh_result res;
    int again = look_again(ctx, l, seen);
    if (again >= 0) {
        res = (enum fresh_result)again;
        if (res == FRESH_OK) {
            ctx->outcome = "already_fresh";
            metrics_refresh(RM_ALREADY_FRESH);
        }
    } else {
        res = refresh_locked(ctx, l, &cooldown_ms);
    }
    store_lock_release(ctx->w->store, l->record_name, owner, cooldown_ms);
    return res;
}

enum fresh_result refresh_ensure_fresh(struct ctx *ctx, struct loaded *l)
{
    if (l->c.reconnect_required)
        return FRESH_RECONNECT;
    struct connection kept;
    if (vault_get(ctx, l->record_name, &l->c, &kept))
        l->c = kept;
    int64_t now = clock_wall();
    if (!needs_refresh(&l->c, ctx->cfg, now))
        return FRESH_OK;

    bool leader;
    struct flight *f = flight_join(l->record_name, &leader);
    if (leader) {
        enum fresh_result res = lead(ctx, l);
        flight_land(f, res);
        return res;
    }
    uint64_t seen = l->c.version;
    enum fresh_result led = flight_wait(f, lock_ttl_ms(ctx->cfg) * 2);
    ctx->outcome = "refresh_waited";
    metrics_refresh(RM_WAITED);
    int again = look_again(ctx, l, seen);
    if (again == FRESH_UNAVAILABLE && vault_get(ctx, l->record_name, &l->c, &kept)) {
        l->c = kept;
        return FRESH_OK;
    }
    if (again >= 0)
        return (enum fresh_result)again;
    /* Still stale: the leader failed (transient or misconfigured). */
    if (led == FRESH_MISCONFIGURED)
        return led;
    return usable(&l->c, clock_wall()) ? FRESH_OK : FRESH_UNAVAILABLE;
}

enum token_result refresh_valid_token(struct ctx *ctx, struct loaded *l)
{
    switch (connection_load(ctx, l)) {
    case LOOKUP_UNAVAILABLE:
        ctx->outcome = "redis_unavailable";
        return TOKEN_UNAVAILABLE;
    case LOOKUP_NONE:
        ctx->outcome = "not_connected";
        return TOKEN_NONE;
    case LOOKUP_FOUND:
        break;
    }
    switch (refresh_ensure_fresh(ctx, l)) {
    case FRESH_OK:
        break;
    case FRESH_RECONNECT:
        ctx->outcome = "reconnect_required";
        return TOKEN_RECONNECT;
    case FRESH_UNAVAILABLE:
    case FRESH_MISCONFIGURED:
        if (!ctx->outcome)
            ctx->outcome = "unavailable";
        return TOKEN_UNAVAILABLE;
    }
    connection_resolve_identity(ctx, l);
    return TOKEN_OK;
}
