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
#include "ids.h"
#include "log.h"
#include "metrics.h"

#define COOLDOWN_MS 5000     /* after a timeout, 5xx or refusal: one attempt per record per 5 s */
#define SLACK_S 5            /* a token with less than this left is not handed out */

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static int64_t mono_ms(void)
{
    return clock_mono_us() / 1000;
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

/* ---- metrics: refresh decisions by outcome ---- */

enum refresh_metric {
    RM_REFRESHED,      /* this process spent a refresh token and stored the new pair */
    RM_ALREADY_FRESH,  /* another process or host had refreshed when the lock was taken */
    RM_WAITED,         /* waited for another thread, process or host to refresh */
    RM_INVALID_GRANT,  /* marked reconnect-required */
    RM_INVALID_CLIENT, /* the app's credentials were refused */
    RM_TRANSIENT,      /* timeout, 5xx or 429: pair kept, cooldown started */
    RM_COOLDOWN,       /* skipped: the connection is cooling down */
    RM_KEPT_IN_MEMORY, /* refreshed, but Redis failed: kept in memory until stored */
    RM__MAX
};
static const char *const refresh_metric_names[RM__MAX] = {
    "refreshed", "already_fresh", "waited", "invalid_grant",
    "invalid_client", "transient", "cooldown", "kept_in_memory"};
static metric_counter refresh_counts[RM__MAX];

static void metrics_refresh(enum refresh_metric m)
{
    metric_add(&refresh_counts[m]);
}

/* ---- the vault: new pairs Redis could not take, stored again by a background thread ---- */

struct vault_entry {
    char name[80];
    char generation[GENERATION_LEN + 1]; /* of the connection the pair belongs to */
    int64_t created_at;
    struct buf value; /* the record as sealed (its version is the stored one's when written) */
    /* The refresh lock, held until the pair is stored: until then the record in Redis holds
     * a spent refresh token, which no other host may try (or mark, or move). */
    struct store_lock lock;
    bool settled; /* stored, or no longer wanted (vault_flush) */
    struct vault_entry *next;
};

/* A lock release Redis did not take (the primary exiting, a failover): tried again in the
 * background until it succeeds or the lock's TTL has ended it anyway. */
struct pending_release {
    char name[80];
    struct store_lock lock;
    long cooldown_ms;
    struct pending_release *next;
};

/* A connection whose identity is still unknown, to be asked in the background (a request
 * with a usable token never waits for users/me). */
struct pending_identity {
    char name[80];
    char owner[64];
    struct pending_identity *next;
};
#define PENDING_IDENTITIES_MAX 64

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct vault_entry *entries;
    struct pending_identity *identities;
    unsigned n_identities;
    struct vault_entry *flushing; /* being stored by the background thread: still readable */
    struct pending_release *releases;
    bool stopping, started;
    pthread_t thread;
    const struct config *cfg;
    const struct keyring *keys;
    atomic_uint count; /* entries and flushing: read without the lock on every request */
} vault = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static void vault_entry_free(struct vault_entry *e);
static void release_later_locked(const char *name, const struct store_lock *lock);

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
    for (struct vault_entry *e = vault.flushing; e; e = e->next)
        n++;
    atomic_store(&vault.count, n);
}

/* Keeps a pair Redis could not take, and takes over *lock (its owner is cleared: the
 * caller no longer releases it; the vault does once the pair is stored). */
static void vault_put(const struct keyring *keys, const char *name, const struct connection *fresh,
                      struct store_lock *lock)
{
    struct vault_entry *e = xmalloc(sizeof *e);
    memset(e, 0, sizeof *e);
    snprintf(e->name, sizeof e->name, "%s", name);
    snprintf(e->generation, sizeof e->generation, "%s", fresh->generation);
    e->created_at = fresh->pair.created_at;
    record_encode(keys, name, fresh, 1, &e->value); /* sealed in memory too */
    e->lock = *lock;
    lock->owner[0] = '\0';
    pthread_mutex_lock(&vault.mu);
    /* A newer entry for the same record replaces an older one. */
    for (struct vault_entry **p = &vault.entries; *p; p = &(*p)->next) {
        if (strcmp((*p)->name, name) == 0) {
            struct vault_entry *old = *p;
            *p = old->next;
            release_later_locked(old->name, &old->lock);
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
static bool vault_get(struct svc *svc, const char *name, const struct connection *than,
                      struct connection *out)
{
    if (atomic_load(&vault.count) == 0)
        return false;
    bool found = false;
    struct buf copy = {0};
    pthread_mutex_lock(&vault.mu);
    for (int list = 0; list < 2 && !found; list++)
        for (struct vault_entry *e = list ? vault.flushing : vault.entries; e && !found; e = e->next)
            if (strcmp(e->name, name) == 0 && e->created_at > than->pair.created_at &&
                strcmp(e->generation, than->generation) == 0) {
                buf_append(&copy, e->value.data, e->value.len);
                found = true;
            }
    pthread_mutex_unlock(&vault.mu);
    if (found)
        found = record_decode(svc->arena, svc->keys, name, copy.data, copy.len, out) == RECORD_OK;
    if (copy.data)
        sodium_memzero(copy.data, copy.cap);
    buf_free(&copy);
    return found;
}

/* A kept pair whose connection was disconnected meanwhile: revoked at FreshBooks, so it
 * does not outlive the disconnect. */
static void vault_revoke(struct svc *bg, const struct vault_entry *e)
{
    struct connection c;
    if (record_decode(bg->arena, bg->keys, e->name, e->value.data, e->value.len, &c) != RECORD_OK)
        return;
    oauth_revoke(bg->oauth, c.pair.refresh_token);
    oauth_revoke(bg->oauth, c.pair.access_token);
}

/* Tries to store one vault entry.  True when it is settled: stored, or no longer wanted
 * (a newer pair is stored, or the connection was deleted meanwhile: then revoked). */
struct kept {
    const struct connection *mine;
    bool disconnected;
};

static enum update_step kept_step(const struct connection *cur, struct connection *next, void *arg)
{
    struct kept *k = arg;
    if (!cur || strcmp(cur->generation, k->mine->generation) != 0) {
        k->disconnected = true;
        return STEP_KEEP;
    }
    if (!record_merge_pair(cur, &k->mine->pair, &next->pair))
        return STEP_KEEP; /* a newer pair is stored: ours is dead already */
    next->reconnect_required = false;
    return STEP_WRITE;
}

/* Tries to store one vault entry.  True when it is settled: stored, or no longer wanted
 * (a newer pair is stored, or the connection was deleted meanwhile: then revoked).  A
 * record no configured key opens is neither written over (ours may be the older pair)
 * nor given up. */
static bool vault_store(struct svc *bg, struct vault_entry *e)
{
    struct connection mine, now;
    if (record_decode(bg->arena, bg->keys, e->name, e->value.data, e->value.len, &mine) != RECORD_OK)
        return true; /* sealed with a key no longer configured: cannot happen in-process */
    struct kept k = {.mine = &mine};
    struct record_change change = {.decide = kept_step, .arg = &k, .flags = UPDATE_DURABLE};
    switch (record_update(bg, e->name, NULL, &change, &now)) {
    case UPDATE_WRITTEN:
        log_msg(LOG_INFO, "a kept token pair is stored now");
        return true;
    case UPDATE_KEPT:
    case UPDATE_GONE:
        if (k.disconnected) {
            log_msg(LOG_WARN, "a kept token pair's connection was disconnected meanwhile; "
                              "revoking and dropping it");
            vault_revoke(bg, e);
        }
        return true;
    case UPDATE_NOT_DURABLE: /* stored, but maybe not beyond a failover: again later */
    case UPDATE_UNREADABLE:
    case UPDATE_UNAVAILABLE:
        break;
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

/* Called with vault.mu held: queues the release of lock (when it holds one) for the
 * background thread. */
static void release_later_locked(const char *name, const struct store_lock *lock)
{
    if (!lock->owner[0])
        return;
    struct pending_release *p = xmalloc(sizeof *p);
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->lock = *lock;
    p->next = vault.releases;
    vault.releases = p;
    pthread_cond_signal(&vault.cv);
}

/* Releases a lock (store_lock_release), leaving it to the background thread when Redis
 * does not take the release now. */
static void release_lock(struct store *s, const char *name, const struct store_lock *lock,
                         long cooldown_ms)
{
    if (!lock->owner[0] || store_lock_release(s, name, lock, cooldown_ms) == STORE_OK)
        return;
    pthread_mutex_lock(&vault.mu);
    release_later_locked(name, lock);
    vault.releases->cooldown_ms = cooldown_ms;
    pthread_mutex_unlock(&vault.mu);
    log_msg(LOG_WARN, "a refresh lock could not be released (Redis unavailable); releasing it in the "
                      "background");
}

/* Stores every entry it can (releasing its lock once stored); returns how many are left.
 * The entries being stored stay visible to vault_get (vault.flushing), but out of
 * vault_put's way, so request threads never wait on the vault's lock for Redis. */
static unsigned vault_flush(struct svc *bg)
{
    pthread_mutex_lock(&vault.mu);
    struct vault_entry *todo = vault.entries;
    vault.flushing = todo;
    vault.entries = NULL;
    pthread_mutex_unlock(&vault.mu);
    for (struct vault_entry *e = todo; e; e = e->next) {
        arena_reset(bg->arena);
        e->settled = vault_store(bg, e);
        if (e->settled)
            release_lock(bg->store, e->name, &e->lock, 0);
    }
    unsigned n_left = 0;
    pthread_mutex_lock(&vault.mu);
    vault.flushing = NULL;
    while (todo) {
        struct vault_entry *e = todo;
        todo = e->next;
        bool superseded = false; /* a newer pair for the record arrived meanwhile */
        for (struct vault_entry *n = vault.entries; n && !superseded && !e->settled; n = n->next)
            superseded = strcmp(n->name, e->name) == 0;
        if (e->settled || superseded) {
            if (superseded)
                release_later_locked(e->name, &e->lock);
            vault_entry_free(e);
        } else {
            e->next = vault.entries;
            vault.entries = e;
            n_left++;
        }
    }
    vault_recount_locked();
    pthread_mutex_unlock(&vault.mu);
    return n_left;
}

/* Queues an identity call for the background thread (once per record; a full queue drops
 * it: the next request asks again). */
static void resolve_later(const char *name, const char *owner)
{
    pthread_mutex_lock(&vault.mu);
    bool queued = vault.n_identities >= PENDING_IDENTITIES_MAX;
    for (struct pending_identity *p = vault.identities; p && !queued; p = p->next)
        queued = strcmp(p->name, name) == 0;
    if (!queued && strlen(name) < sizeof vault.identities->name &&
        strlen(owner) < sizeof vault.identities->owner) {
        struct pending_identity *p = xmalloc(sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", name);
        snprintf(p->owner, sizeof p->owner, "%s", owner);
        p->next = vault.identities;
        vault.identities = p;
        vault.n_identities++;
        pthread_cond_signal(&vault.cv);
    }
    pthread_mutex_unlock(&vault.mu);
}

/* Asks FreshBooks for every queued identity once (connection_move_to_identity, or
 * connection_reread_identity for a record that has one). */
static void identities_flush(struct svc *bg)
{
    pthread_mutex_lock(&vault.mu);
    struct pending_identity *todo = vault.identities;
    vault.identities = NULL;
    vault.n_identities = 0;
    pthread_mutex_unlock(&vault.mu);
    while (todo) {
        struct pending_identity *p = todo;
        todo = p->next;
        svc_begin(bg, 0);
        struct loaded l = {.owner = p->owner, .record_name = p->name};
        bool read = connection_read(bg, p->name, &l.c) == STORE_OK;
        if (read && l.c.has_identity)
            connection_reread_identity(bg, p->name); /* after a refresh */
        else if (read)
            connection_move_to_identity(bg, &l, false);
        free(p);
    }
}

/* Tries every pending release once; returns how many are left. */
static unsigned releases_flush(struct svc *bg)
{
    pthread_mutex_lock(&vault.mu);
    struct pending_release *todo = vault.releases;
    vault.releases = NULL;
    pthread_mutex_unlock(&vault.mu);
    unsigned left = 0;
    while (todo) {
        struct pending_release *p = todo;
        todo = p->next;
        if (clock_mono_us() >= p->lock.expires_us ||
            store_lock_release(bg->store, p->name, &p->lock, p->cooldown_ms) == STORE_OK) {
            free(p);
            continue;
        }
        pthread_mutex_lock(&vault.mu);
        p->next = vault.releases;
        vault.releases = p;
        pthread_mutex_unlock(&vault.mu);
        left++;
    }
    return left;
}

static void *vault_main(void *unused)
{
    (void)unused;
    struct svc bg;
    svc_open(&bg, vault.cfg, vault.keys);
    long pause_ms = 200;
    unsigned was_left = 0;
    pthread_mutex_lock(&vault.mu);
    while (!vault.stopping) {
        if (!vault.entries && !vault.releases && !vault.identities) {
            pthread_cond_wait(&vault.cv, &vault.mu);
            continue;
        }
        pthread_mutex_unlock(&vault.mu);
        identities_flush(&bg);
        unsigned left = vault_flush(&bg) + releases_flush(&bg);
        /* Every 200 ms while Redis comes back; slower (up to 5 s) while nothing moves. */
        pause_ms = left && left >= was_left ? (pause_ms < 2500 ? pause_ms * 2 : 5000) : 200;
        was_left = left;
        if (left)
            sleep_ms(pause_ms);
        pthread_mutex_lock(&vault.mu);
    }
    pthread_mutex_unlock(&vault.mu);
    releases_flush(&bg);
    while (vault.releases) { /* left to their TTLs */
        struct pending_release *p = vault.releases;
        vault.releases = p->next;
        free(p);
    }
    while (vault.identities) { /* asked again after the restart */
        struct pending_identity *p = vault.identities;
        vault.identities = p->next;
        free(p);
    }
    unsigned lost = vault_flush(&bg);
    if (lost)
        log_msg(LOG_ERROR, "stopping with %u refreshed token pairs that Redis never took: those users "
                           "must connect again", lost);
    svc_close(&bg);
    return NULL;
}

int refresh_init(const struct config *cfg, const struct keyring *keys)
{
    vault.cfg = cfg;
    vault.keys = keys;
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

/* A follower's wait until the monotonic time until_ms.  Returns the leader's result, or
 * FRESH_UNAVAILABLE when it took too long (the leader goes on without us). */
static enum fresh_result flight_wait(struct flight *f, int64_t until_ms)
{
    struct timespec deadline = clock_realtime_in(until_ms - mono_ms());
    pthread_mutex_lock(&flights_mu);
    while (!f->done)
        if (pthread_cond_timedwait(&f->cv, &flights_mu, &deadline) == ETIMEDOUT)
            break;
    enum fresh_result r = f->done ? f->result : FRESH_UNAVAILABLE;
    flight_unref_locked(f);
    pthread_mutex_unlock(&flights_mu);
    return r;
}

/* A follower that does not wait (its token is usable). */
static void flight_leave(struct flight *f)
{
    pthread_mutex_lock(&flights_mu);
    flight_unref_locked(f);
    pthread_mutex_unlock(&flights_mu);
}

/* ---- the refresh itself ---- */

/* Marks the record reconnect-required (refresh_refused) by compare-and-set.  When another
 * pair was stored meanwhile, marks nothing and takes it instead (FRESH_OK when usable). */
static enum fresh_result mark_reconnect(struct svc *svc, struct loaded *l)
{
    struct connection now;
    switch (connection_mark_reconnect(svc, l, RECONNECT_REFRESH_REFUSED, &now)) {
    case UPDATE_WRITTEN:
    case UPDATE_NOT_DURABLE:
        l->c = now;
        return FRESH_RECONNECT;
    case UPDATE_KEPT:
        if (strcmp(now.generation, l->c.generation) != 0)
            return FRESH_RECONNECT;
        if (now.reconnect_required) { /* marked meanwhile, by someone else */
            l->c = now;
            return FRESH_RECONNECT;
        }
        /* Another pair was stored meanwhile (a connect, a refresh elsewhere): it is served,
         * or refreshed next. */
        l->c = now;
        return usable(&now, clock_wall()) ? FRESH_OK : FRESH_UNAVAILABLE;
    default:
        return FRESH_RECONNECT; /* not marked: the next attempt meets invalid_grant again */
    }
}

/* Stores a pair just obtained for the refresh token `spent` by compare-and-set against
 * l->c.version (the record may move meanwhile only by a connect, which keeps the newer
 * pair — record_merge_pair —, a re-seal, or a disconnect).  Updates l. */
struct refreshed {
    const struct token_pair *pair;
    const char *spent, *generation;
};

static enum update_step refreshed_step(const struct connection *cur, struct connection *next,
                                       void *arg)
{
    const struct refreshed *r = arg;
    if (!cur || strcmp(cur->generation, r->generation) != 0)
        return STEP_KEEP; /* disconnected (and maybe connected again) meanwhile */
    if (strcmp(cur->pair.refresh_token, r->spent) == 0)
        next->pair = *r->pair; /* the pair we refreshed (perhaps re-sealed): ours is newer */
    else if (!record_merge_pair(cur, r->pair, &next->pair))
        return STEP_KEEP;      /* a connect stored a newer pair: ours is dead */
    next->reconnect_required = false;
    return STEP_WRITE;
}

/* Stores a pair just obtained for the refresh token `spent`, by record_update from l->c
 * (the record may move meanwhile only by a connect, which keeps the newer pair, a re-seal,
 * or a disconnect: then the new pair is revoked).  A pair Redis does not take, or takes
 * without a replica's acknowledgement, is kept in memory with the lock.  Updates l. */
static enum fresh_result store_refreshed(struct svc *svc, struct loaded *l,
                                         const struct token_pair *pair, const char *spent,
                                         struct store_lock *lock)
{
    struct refreshed r = {.pair = pair, .spent = spent, .generation = l->c.generation};
    struct record_change change = {.decide = refreshed_step, .arg = &r, .flags = UPDATE_DURABLE};
    struct connection now;
    switch (record_update(svc, l->record_name, &l->c, &change, &now)) {
    case UPDATE_WRITTEN:
        l->c = now;
        return FRESH_OK;
    case UPDATE_KEPT:
        if (strcmp(now.generation, l->c.generation) == 0) {
            l->c = now;
            return usable(&now, clock_wall()) ? FRESH_OK : FRESH_RECONNECT;
        }
        /* a later connection's record */
        /* fall through */
    case UPDATE_GONE:
        /* Disconnected (and maybe connected again) while we refreshed: the new pair must
         * not outlive that, nor land in a later connection. */
        oauth_revoke(svc->oauth, pair->refresh_token);
        oauth_revoke(svc->oauth, pair->access_token);
        return FRESH_RECONNECT;
    case UPDATE_NOT_DURABLE:
    case UPDATE_UNREADABLE:
    case UPDATE_UNAVAILABLE:
        break;
    }
    /* The only valid refresh token now exists in this process alone. */
    struct connection fresh = l->c;
    fresh.pair = *pair;
    fresh.reconnect_required = false;
    vault_put(svc->keys, l->record_name, &fresh, lock);
    metrics_refresh(RM_KEPT_IN_MEMORY);
    l->c = fresh;
    return FRESH_OK;
}
/* Holding the lock: spend the refresh token and store the new pair.  When FreshBooks
 * refuses it and pairs issued in the same second are kept as alternates, each of their
 * refresh tokens is tried once (one of them may be the live one) before the connection
 * is marked reconnect-required. */
static enum fresh_result refresh_locked(struct svc *svc, struct loaded *l, struct store_lock *lock,
                                        long *cooldown_ms, enum refresh_outcome *why)
{
    struct token_pair pair;
    struct oauth *o = svc->oauth;
    const char *spent = l->c.pair.refresh_token;
    enum oauth_result r = oauth_refresh(o, svc->arena, spent, &pair);
    size_t tried = 0;
    /* Another call only while the lock surely outlives it: no second refresh may start. */
    int64_t last_start = lock->expires_us - (svc->cfg->http_timeout_ms + 1000) * 1000;
    for (; r == OAUTH_INVALID_GRANT && tried < l->c.pair.n_alternates &&
           clock_mono_us() < last_start;
         tried++) {
        spent = l->c.pair.alternates[tried];
        r = oauth_refresh(o, svc->arena, spent, &pair);
        if (r == OAUTH_OK)
            log_msg(LOG_INFO, "connection %.10s…: a pair issued in the same second was the live one",
                    l->record_name);
    }
    if (r == OAUTH_INVALID_GRANT && tried < l->c.pair.n_alternates)
        r = OAUTH_UNAVAILABLE; /* alternates left untried: again after the cooldown */
    int64_t now = clock_wall();
    switch (r) {
    case OAUTH_OK:
        *why = RO_REFRESHED;
        metrics_refresh(RM_REFRESHED);
        return store_refreshed(svc, l, &pair, spent, lock);
    case OAUTH_INVALID_GRANT:
        log_msg(LOG_WARN, "refresh token refused (invalid_grant): connection %.10s… needs reconnecting",
                l->record_name);
        *why = RO_INVALID_GRANT;
        metrics_refresh(RM_INVALID_GRANT);
        return mark_reconnect(svc, l);
    case OAUTH_INVALID_CLIENT:
        log_msg(LOG_ERROR, "FreshBooks refuses this app's client id/secret (invalid_client) at refresh: "
                           "check FBCONNECT_CLIENT_ID and FBCONNECT_CLIENT_SECRET; no user is marked");
        *why = RO_INVALID_CLIENT;
        metrics_refresh(RM_INVALID_CLIENT);
        *cooldown_ms = COOLDOWN_MS;
        /* The app's problem, not the user's: their token is served while it lasts. */
        return usable(&l->c, now) ? FRESH_OK : FRESH_MISCONFIGURED;
    case OAUTH_RATE_LIMITED:
        *cooldown_ms = oauth_retry_after(o) > 0 ? oauth_retry_after(o) * 1000 : COOLDOWN_MS;
        break;
    case OAUTH_REJECTED:
    case OAUTH_UNAVAILABLE:
        *cooldown_ms = COOLDOWN_MS;
        break;
    case OAUTH_BUSY: /* never reached FreshBooks: no cooldown, the next request tries */
        *why = RO_BUSY;
        return usable(&l->c, now) ? FRESH_OK : FRESH_UNAVAILABLE;
    }
    log_msg(LOG_WARN, "refresh failed (%s); keeping the pair, next attempt in %ld ms",
            oauth_last_error(o), *cooldown_ms);
    *why = RO_TRANSIENT;
    metrics_refresh(RM_TRANSIENT);
    return usable(&l->c, now) ? FRESH_OK : FRESH_UNAVAILABLE;
}

/* What a fresh look at the record says, after someone else may have refreshed it:
 * FRESH_OK when it holds a pair to use, FRESH_RECONNECT when marked or gone,
 * FRESH_UNAVAILABLE when Redis failed, and -1 when it still needs a refresh. */
static int look_again(struct svc *svc, struct loaded *l, uint64_t seen_version)
{
    struct connection cur;
    enum store_result got = connection_read(svc, l->record_name, &cur);
    if (got == STORE_UNAVAILABLE || got == STORE_UNREADABLE)
        return FRESH_UNAVAILABLE;
    if (got == STORE_NOT_FOUND || !same_generation(&l->c, &cur))
        return FRESH_RECONNECT;
    l->c = cur;
    if (cur.reconnect_required)
        return FRESH_RECONNECT;
    int64_t now = clock_wall();
    /* A pair stored since we looked is as fresh as FreshBooks makes them: take it even when
     * the margin is longer than its lifetime. */
    if (!needs_refresh(&cur, svc->cfg, now) || (cur.version != seen_version && usable(&cur, now)))
        return FRESH_OK;
    return -1;
}

/* Takes the lock: STORE_OK held (and durable), STORE_EXISTS held by someone else,
 * STORE_CONFLICT cooling down, STORE_UNAVAILABLE Redis failed or the lock was not durable
 * (then given up again). */
static enum store_result take_lock(struct svc *svc, struct loaded *l, struct store_lock *lock,
                                   enum refresh_outcome *why)
{
    long ttl = config_lock_ttl_ms(svc->cfg);
    enum store_result r = store_lock_try(svc->store, l->record_name, lock, ttl);
    if (r == STORE_OK && store_wait_durable(svc->store) != STORE_OK) {
        /* A lock the replicas have not seen could vanish in a failover and let another
         * host refresh too: give it up rather than spend the refresh token under it. */
        release_lock(svc->store, l->record_name, lock, 0);
        *why = RO_LOCK_NOT_DURABLE;
        return STORE_UNAVAILABLE;
    }
    return r;
}

/* While a request waits for someone else's refresh, its Redis commands end by the wait's
 * end too (and a last look 100 ms after it), so the wait is not stretched by a slow Redis. */
static void waiting_until(struct svc *svc, int64_t until_ms)
{
    int64_t d = (until_ms + 100) * 1000;
    store_set_deadline(svc->store, svc->deadline_us && svc->deadline_us < d ? svc->deadline_us : d);
}

static void waiting_done(struct svc *svc)
{
    store_set_deadline(svc->store, svc->deadline_us);
}

/* Someone else holds the lock: polls until the record moves, the lock goes away or
 * until_ms passes.  FRESH_* when that settles it, -1 when the lock went away with the
 * record still stale (the caller may try to take it). */
static int wait_for_holder(struct svc *svc, struct loaded *l, uint64_t seen, int64_t until_ms,
                           enum refresh_outcome *why)
{
    *why = RO_WAITED;
    metrics_refresh(RM_WAITED);
    long pause = 10;
    for (;;) {
        int64_t left = until_ms - mono_ms();
        if (left <= 0)
            break;
        sleep_ms(pause < left ? pause : left);
        pause = pause < 160 ? pause * 2 : 200;
        int64_t version = -1;
        bool locked = true;
        if (store_watch(svc->store, l->record_name, &version, &locked) == STORE_UNAVAILABLE)
            return FRESH_UNAVAILABLE;
        if (version < 0)
            return FRESH_RECONNECT;
        if ((uint64_t)version != seen || !locked)
            break;
    }
    int again = look_again(svc, l, seen);
    if (again >= 0)
        return again;
    return mono_ms() < until_ms ? -1 : FRESH_UNAVAILABLE;
}

/* The leader's work: the lock and the refresh, or a wait (until until_ms) for whoever
 * holds the lock.  A usable token is served at once whenever someone else refreshes, is
 * cooling down or Redis fails; only the refresh this request performs itself is waited
 * for (bounded by FBCONNECT_HTTP_TIMEOUT_MS). */
static enum fresh_result lead(struct svc *svc, struct loaded *l, int64_t until_ms,
                              enum refresh_outcome *why)
{
    struct store_lock lock = {0};
    uint8_t raw[16];
    random_bytes(raw, sizeof raw);
    sodium_bin2hex(lock.owner, sizeof lock.owner, raw, sizeof raw);
    uint64_t seen = l->c.version;
    for (;;) {
        enum store_result lr = take_lock(svc, l, &lock, why);
        if (lr == STORE_OK)
            break;
        if (lr == STORE_UNAVAILABLE)
            return usable(&l->c, clock_wall()) ? FRESH_OK : FRESH_UNAVAILABLE;
        if (lr == STORE_CONFLICT) { /* cooling down after a failure */
            int again = usable(&l->c, clock_wall()) ? FRESH_OK : look_again(svc, l, seen);
            if (again >= 0)
                return (enum fresh_result)again;
            *why = RO_COOLDOWN;
            metrics_refresh(RM_COOLDOWN);
            return FRESH_UNAVAILABLE;
        }
        /* Held elsewhere. */
        if (usable(&l->c, clock_wall())) {
            *why = RO_ELSEWHERE;
            return FRESH_OK;
        }
        waiting_until(svc, until_ms);
        int waited = wait_for_holder(svc, l, seen, until_ms, why);
        waiting_done(svc);
        if (waited >= 0)
            return (enum fresh_result)waited;
        /* The lock went away and nobody refreshed: try to take it ourselves. */
    }

    /* We hold the lock: another host may have refreshed before we took it. */
    long cooldown_ms = 0;
    enum fresh_result res;
    int again = look_again(svc, l, seen);
    if (again >= 0) {
        res = (enum fresh_result)again;
        if (res == FRESH_OK) {
            *why = RO_ALREADY_FRESH;
            metrics_refresh(RM_ALREADY_FRESH);
        }
    } else if (!l->c.has_identity && connection_move_to_identity(svc, l, true)) {
        /* Its identity first, under this lock: another browser of the same FreshBooks user
         * may have connected since, killing this pair's refresh token, and only the
         * identity's record knows the live one.  The caller refreshes that record. */
        res = FRESH_MOVED;
    } else {
        res = refresh_locked(svc, l, &lock, &cooldown_ms, why);
    }
    release_lock(svc->store, l->record_name, &lock, cooldown_ms);
    return res;
}

enum fresh_result refresh_ensure_fresh(struct svc *svc, struct loaded *l, enum refresh_outcome *why)
{
    struct connection kept; /* a pair kept in memory is newer than any mark */
    if (vault_get(svc, l->record_name, &l->c, &kept))
        l->c = kept;
    if (l->c.reconnect_required)
        return FRESH_RECONNECT;
    int64_t now = clock_wall();
    if (!needs_refresh(&l->c, svc->cfg, now))
        return FRESH_OK;
    /* The longest this request waits for anyone else's refresh. */
    int64_t until_ms = mono_ms() + svc->cfg->refresh_wait_ms;
    if (svc->deadline_us && until_ms > svc->deadline_us / 1000)
        until_ms = svc->deadline_us / 1000;

    bool leader;
    struct flight *f = flight_join(l->record_name, &leader);
    if (leader) {
        enum fresh_result res = lead(svc, l, until_ms, why);
        flight_land(f, res);
        return res;
    }
    if (usable(&l->c, now)) { /* another thread of this process is refreshing it */
        flight_leave(f);
        *why = RO_ELSEWHERE;
        return FRESH_OK;
    }
    uint64_t seen = l->c.version;
    enum fresh_result led = flight_wait(f, until_ms);
    *why = RO_WAITED;
    metrics_refresh(RM_WAITED);
    waiting_until(svc, until_ms);
    int again = look_again(svc, l, seen);
    waiting_done(svc);
    if (again == FRESH_UNAVAILABLE && vault_get(svc, l->record_name, &l->c, &kept)) {
        l->c = kept;
        return FRESH_OK;
    }
    if (again >= 0)
        return (enum fresh_result)again;
    /* Still stale: the leader failed (transient or misconfigured), or is still at it. */
    if (led == FRESH_MISCONFIGURED)
        return led;
    return FRESH_UNAVAILABLE;
}

enum token_result refresh_valid_token(struct svc *svc, const char *owner, struct loaded *l,
                                     enum refresh_outcome *why)
{
    *why = RO_NONE;
    enum fresh_result fr = FRESH_UNAVAILABLE;
    /* Twice at most: once more when the pair moved to its identity's record meanwhile. */
    for (int round = 0; round < 2; round++) {
        switch (connection_load(svc, owner, l)) {
        case LOOKUP_UNAVAILABLE:
            *why = RO_REDIS_UNAVAILABLE;
            return TOKEN_UNAVAILABLE;
        case LOOKUP_NONE:
            return TOKEN_NONE;
        case LOOKUP_FOUND:
            break;
        }
        fr = refresh_ensure_fresh(svc, l, why);
        bool gone = fr == FRESH_RECONNECT && !l->c.reconnect_required; /* not marked: gone */
        if (fr != FRESH_MOVED && !gone)
            break;
    }
    switch (fr) {
    case FRESH_OK:
        break;
    case FRESH_RECONNECT:
    case FRESH_MOVED:
        return TOKEN_RECONNECT;
    case FRESH_UNAVAILABLE:
    case FRESH_MISCONFIGURED:
        return TOKEN_UNAVAILABLE;
    }
    /* Asked in the background, this request not waiting: an identity still unknown, or
     * (after a refresh) read again, so businesses gone at FreshBooks go here too. */
    if (!l->c.has_identity || *why == RO_REFRESHED)
        resolve_later(l->record_name, l->owner);
    return TOKEN_OK;
}

static const char *const outcome_names[RO__MAX] = {
    [RO_NONE] = NULL,
    [RO_REFRESHED] = "refreshed",
    [RO_ALREADY_FRESH] = "already_fresh",
    [RO_WAITED] = "refresh_waited",
    [RO_ELSEWHERE] = "refresh_elsewhere",
    [RO_COOLDOWN] = "refresh_cooldown",
    [RO_INVALID_GRANT] = "refresh_invalid_grant",
    [RO_INVALID_CLIENT] = "refresh_invalid_client",
    [RO_TRANSIENT] = "refresh_transient",
    [RO_BUSY] = "refresh_busy",
    [RO_LOCK_NOT_DURABLE] = "refresh_lock_not_durable",
    [RO_REDIS_UNAVAILABLE] = "redis_unavailable",
};

const char *refresh_outcome_name(enum token_result r, enum refresh_outcome why)
{
    switch (r) {
    case TOKEN_NONE:
        return "not_connected";
    case TOKEN_RECONNECT:
        return "reconnect_required";
    case TOKEN_UNAVAILABLE:
        return outcome_names[why] ? outcome_names[why] : "unavailable";
    case TOKEN_OK:
        break;
    }
    return outcome_names[why];
}

void refresh_metrics_render(struct buf *out)
{
    metric_family(out, "fbconnect_pairs_kept_in_memory", "gauge",
                  "Refreshed pairs Redis has not taken yet.");
    metric_sample(out, "fbconnect_pairs_kept_in_memory", "", refresh_kept_count());
    metric_family(out, "fbconnect_refresh_total", "counter", "Refresh decisions by outcome.");
    char labels[48];
    for (size_t i = 0; i < RM__MAX; i++) {
        snprintf(labels, sizeof labels, "outcome=\"%s\"", refresh_metric_names[i]);
        metric_sample(out, "fbconnect_refresh_total", labels, metric_get(&refresh_counts[i]));
    }
}
