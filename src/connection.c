#include "connection.h"

#include <inttypes.h>
#include <stdlib.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "events.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "pointer.h"

#define STORE_ATTEMPTS 4
#define STORE_BUDGET_MS 4000 /* the longest a connect retries Redis (README: time bounds) */
#define IDENTITY_RETRY_MS 5000

static metric_counter revokes[2]; /* disconnects' revokes: [1] confirmed by FreshBooks */
static metric_counter marks[RECONNECT__MAX]; /* connections marked, by reason */

void connection_metrics_render(struct buf *out)
{
    metric_family(out, "fbconnect_revokes_total", "counter",
                  "Disconnects by whether FreshBooks confirmed the revoke.");
    metric_sample(out, "fbconnect_revokes_total", "result=\"confirmed\"", metric_get(&revokes[1]));
    metric_sample(out, "fbconnect_revokes_total", "result=\"unconfirmed\"", metric_get(&revokes[0]));
    metric_family(out, "fbconnect_reconnect_marks_total", "counter",
                  "Connections marked as needing a new connect, by reason.");
    for (int i = 0; i < RECONNECT__MAX; i++) {
        char labels[48];
        snprintf(labels, sizeof labels, "reason=\"%s\"", reconnect_reason_name((enum reconnect_reason)i));
        metric_sample(out, "fbconnect_reconnect_marks_total", labels, metric_get(&marks[i]));
    }
}

/* Sleeps ms, but not beyond until_us (monotonic). */
static void pause_ms(long ms, int64_t until_us)
{
    ms = clock_cap_ms(until_us, ms);
    if (ms <= 0)
        return;
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* ---- record_update ---- */

#define UPDATE_ATTEMPTS 8

/* ---- connection events (events.h): made here, recorded by the store with the change ---- */

/* ev for change ch — to one owner, or to every owner of record/generation (owner NULL) —
 * with its data in svc->arena; NULL when events are off. */
static struct store_event *event_make(struct svc *svc, struct store_event *ev,
                                      const struct event_change *ch, const char *owner,
                                      const char *record, const char *generation)
{
    if (!svc->cfg->events_url)
        return NULL;
    char *data = event_data(ch);
    *ev = (struct store_event){.type = event_type_name(ch->type),
                               .data = arena_strdup(svc->arena, data),
                               .ts_ms = clock_wall_ms(),
                               .owner = owner,
                               .business = ch->business ? ch->business->id : 0,
                               .record = record,
                               .generation = generation};
    free(data);
    return ev;
}

/* "gone:<id>,…" of the businesses `was` lists and `now` does not; NULL when none went. */
static const char *businesses_gone(struct svc *svc, const struct connection *was,
                                   const struct connection *now)
{
    if (!was || !was->has_identity || !now->has_identity)
        return NULL;
    struct buf ids = {0};
    for (size_t i = 0; i < was->ident.n_businesses; i++) {
        bool kept = false;
        for (size_t j = 0; j < now->ident.n_businesses && !kept; j++)
            kept = now->ident.businesses[j].id == was->ident.businesses[i].id;
        if (!kept)
            buf_printf(&ids, "%s%" PRId64, ids.len ? "," : "gone:", was->ident.businesses[i].id);
    }
    const char *out = ids.len ? arena_strndup(svc->arena, ids.data, ids.len) : NULL;
    buf_free(&ids);
    return out;
}

/* The event a record write tells every owner of, from what it changes: marked for a new
 * connect (reconnect_required), the mark cleared by one owner's connect (connected, to
 * the others: change->except told themselves), or businesses gone from the identity
 * (business_chosen, to those who had chosen one of them).  NULL when none or events off. */
static const struct store_event *record_event(struct svc *svc, struct store_event *ev,
                                              const char *name, const struct connection *cur,
                                              const struct connection *next,
                                              const struct record_change *change)
{
    struct event_change ch = {.ident = next->has_identity ? &next->ident : NULL,
                              .every_owner = true, .reason = next->reconnect_reason};
    const char *gone = NULL;
    if (next->reconnect_required && !(cur && cur->reconnect_required))
        ch.type = EVENT_RECONNECT_REQUIRED;
    else if (cur && cur->reconnect_required && !next->reconnect_required)
        ch.type = EVENT_CONNECTED;
    else if ((gone = businesses_gone(svc, cur, next)))
        ch.type = EVENT_BUSINESS_CHOSEN;
    else
        return NULL;
    struct store_event *e = event_make(svc, ev, &ch, NULL, name, next->generation);
    if (e) {
        e->gone = gone;
        e->except = change->except;
    }
    return e;
}

enum update_result record_update(struct svc *svc, const char *name, const struct connection *known,
                                 const struct record_change *change, struct connection *out)
{
    struct buf value = {0};
    enum update_result res = UPDATE_UNAVAILABLE;
    long ttl = config_record_ttl(svc->cfg);
    struct connection stored;
    const struct connection *cur = NULL;
    uint64_t version = 0; /* the stored version the write compares against (0: none) */
    bool have = known != NULL;
    if (known) {
        stored = *known;
        cur = &stored;
        version = known->version;
    }
    for (int attempt = 0, blips = 0; attempt < UPDATE_ATTEMPTS; attempt++) {
        if (!have) {
            char *data = NULL;
            size_t len = 0;
            enum store_result got = store_record_get(svc->store, name, 0, svc->arena, &data, &len);
            if (got == STORE_UNAVAILABLE) {
                res = UPDATE_UNAVAILABLE;
                if (!change->retry_until_us || !store_may_heal(svc->store) ||
                    clock_mono_us() >= change->retry_until_us)
                    break;
                pause_ms(100L << (blips < 3 ? blips : 3), change->retry_until_us);
                blips++;
                continue;
            }
            cur = NULL;
            version = 0;
            if (got == STORE_OK) {
                version = record_version(data, len);
                if (record_decode(svc->arena, svc->keys, name, data, len, &stored) == RECORD_OK) {
                    cur = &stored;
                } else if (!(change->flags & UPDATE_OVER_UNREADABLE)) {
                    log_msg(LOG_ERROR, "connection record %.12s… does not open with any configured key "
                                       "(every host needs every key of a rotation: "
                                       "FBCONNECT_OLD_SECRET_KEYS); not written",
                            name);
                    res = UPDATE_UNREADABLE;
                    break;
                }
            }
        }
        have = false;
        struct connection next;
        if (cur)
            next = *cur;
        else
            memset(&next, 0, sizeof next);
        if (change->decide(cur, &next, change->arg) == STEP_KEEP) {
            if (cur)
                *out = *cur;
            res = cur ? UPDATE_KEPT : UPDATE_GONE;
            break;
        }
        uint64_t next_version = version ? record_next_version(version) : record_first_version();
        record_encode(svc->keys, name, &next, next_version, &value);
        /* What the write changes for every owner is told them in the write itself. */
        struct store_event ev_buf;
        const struct store_event *ev = record_event(svc, &ev_buf, name, cur, &next, change);
        enum store_result r = store_record_put(svc->store, name, version, value.data, value.len,
                                               ttl, ev);
        if (r == STORE_OK) {
            next.version = next_version;
            next.opened_with_old_key = false;
            *out = next;
            res = (change->flags & UPDATE_DURABLE) && store_wait_durable(svc->store) != STORE_OK
                      ? UPDATE_NOT_DURABLE
                      : UPDATE_WRITTEN;
            break;
        }
        if (r == STORE_UNAVAILABLE) {
            res = UPDATE_UNAVAILABLE;
            if (!change->retry_until_us || !store_may_heal(svc->store) ||
                clock_mono_us() >= change->retry_until_us)
                break;
            pause_ms(100L << (blips < 3 ? blips : 3), change->retry_until_us);
            blips++;
        }
        /* lost the compare-and-set, or a blip: read again */
    }
    if (value.data)
        sodium_memzero(value.data, value.cap);
    buf_free(&value);
    return res;
}

static enum update_step reseal_step(const struct connection *cur, struct connection *next,
                                    void *arg)
{
    (void)next;
    (void)arg;
    return cur && cur->opened_with_old_key ? STEP_WRITE : STEP_KEEP;
}

enum update_result connection_reseal(struct svc *svc, const char *name, const struct connection *known,
                                     struct connection *out)
{
    struct record_change change = {.decide = reseal_step};
    return record_update(svc, name, known, &change, out);
}

static void reseal(struct svc *svc, struct loaded *l)
{
    struct connection now;
    if (connection_reseal(svc, l->record_name, &l->c, &now) == UPDATE_WRITTEN) {
        l->c = now;
        log_msg(LOG_INFO, "re-sealed connection %.10s… with the current key", l->record_name);
    }
}

/* ---- reconnect marks ---- */

struct mark {
    enum reconnect_reason reason;
    const char *generation, *refused; /* the connection, and its refresh token as l read it */
};

static enum update_step mark_step(const struct connection *cur, struct connection *next, void *arg)
{
    const struct mark *m = arg;
    /* Gone, or disconnected and connected again (not ours to mark), or another pair stored
     * meanwhile (not the one judged): nobody is marked.  A mark stays as it was. */
    if (!cur || cur->reconnect_required || strcmp(cur->generation, m->generation) != 0 ||
        strcmp(cur->pair.refresh_token, m->refused) != 0)
        return STEP_KEEP;
    next->reconnect_required = true;
    next->reconnect_reason = m->reason;
    return STEP_WRITE;
}

enum update_result connection_mark_reconnect(struct svc *svc, const struct loaded *l,
                                             enum reconnect_reason reason, struct connection *now)
{
    struct mark m = {.reason = reason, .generation = l->c.generation,
                     .refused = l->c.pair.refresh_token};
    struct record_change change = {.decide = mark_step, .arg = &m};
    enum update_result r = record_update(svc, l->record_name, &l->c, &change, now);
    if (r == UPDATE_WRITTEN || r == UPDATE_NOT_DURABLE) {
        metric_add(&marks[reason]);
        log_msg(LOG_WARN, "connection %.10s… needs connecting again: %s", l->record_name,
                reconnect_reason_name(reason));
    }
    return r;
}

/* ---- the per-worker cache ---- */

#define CACHE_SLOTS 8
#define POINTER_RECHECK_S 60 /* a cached pointer goes through the sliding script this often */

struct cached_owner {
    char owner[48];
    char pointer[160]; /* as stored: "<record name>/<generation>/<business>/<tag>" */
    int64_t checked_at;
};

struct cached_record {
    char name[48];
    uint64_t version; /* 0: empty */
    uint8_t nonce[RECORD_SEAL_NONCE_BYTES]; /* the seal's nonce: names these exact sealed bytes */
    struct arena arena;
    struct connection c;
};

struct conn_cache {
    struct cached_owner owners[CACHE_SLOTS];
    struct cached_record records[CACHE_SLOTS];
};

struct conn_cache *connection_cache_new(void)
{
    struct conn_cache *cc = xmalloc(sizeof *cc);
    memset(cc, 0, sizeof *cc);
    for (int i = 0; i < CACHE_SLOTS; i++)
        arena_init(&cc->records[i].arena, 4096);
    return cc;
}

void connection_cache_free(struct conn_cache *cc)
{
    if (!cc)
        return;
    for (int i = 0; i < CACHE_SLOTS; i++)
        arena_destroy(&cc->records[i].arena);
    sodium_memzero(cc, sizeof *cc);
    free(cc);
}

static size_t slot_of(const char *name)
{
    size_t h = 5381;
    for (const char *p = name; *p; p++)
        h = h * 33 + (unsigned char)*p;
    return h % CACHE_SLOTS;
}

/* Opens a stored record, from the cache when these very sealed bytes were opened before
 * (same name, version and seal nonce: a record deleted and made again may repeat a
 * version, never a nonce). */
static enum record_result open_record(struct svc *svc, const char *name, const char *data,
                                      size_t len, struct connection *out)
{
    struct cached_record *slot = &svc->cache->records[slot_of(name)];
    uint64_t version = record_version(data, len);
    const uint8_t *nonce = record_seal_nonce(data, len);
    if (version && nonce && slot->version == version && strcmp(slot->name, name) == 0 &&
        memcmp(slot->nonce, nonce, sizeof slot->nonce) == 0) {
        record_copy(svc->arena, &slot->c, out);
        return RECORD_OK;
    }
    enum record_result r = record_decode(svc->arena, svc->keys, name, data, len, out);
    if (r == RECORD_OK && nonce && strlen(name) < sizeof slot->name) {
        arena_reset(&slot->arena);
        record_copy(&slot->arena, out, &slot->c);
        snprintf(slot->name, sizeof slot->name, "%s", name);
        slot->version = version;
        memcpy(slot->nonce, nonce, sizeof slot->nonce);
    }
    return r;
}

/* The owner's pointer and record: from a cached pointer checked with one MGET, else by the
 * sliding-TTL script (which refreshes the cache). */
static enum store_result fetch_owner(struct svc *svc, const char *owner, char **pointer,
                                     char **data, size_t *len)
{
    struct cached_owner *slot = &svc->cache->owners[slot_of(owner)];
    int64_t now = clock_wall();
    if (strcmp(slot->owner, owner) == 0 && now - slot->checked_at < POINTER_RECHECK_S) {
        char name[96];
        snprintf(name, sizeof name, "%s", slot->pointer);
        char *slash = strchr(name, '/');
        if (slash) {
            *slash = '\0';
            char *ptr = NULL;
            enum store_result r = store_get2(svc->store, owner, name, svc->arena, &ptr, data, len);
            if (r == STORE_UNAVAILABLE)
                return r;
            if (ptr && *data && strcmp(ptr, slot->pointer) == 0) {
                *pointer = ptr;
                return STORE_OK;
            }
        }
        slot->owner[0] = '\0'; /* moved or gone: ask the script */
    }
    long ttl = config_record_ttl(svc->cfg);
    enum store_result r = store_owner_load(svc->store, owner, ttl, svc->arena, pointer, data, len);
    if (r == STORE_OK && *data && strlen(owner) < sizeof slot->owner &&
        strlen(*pointer) < sizeof slot->pointer) {
        snprintf(slot->owner, sizeof slot->owner, "%s", owner);
        snprintf(slot->pointer, sizeof slot->pointer, "%s", *pointer);
        slot->checked_at = now;
    }
    return r;
}

/* The business with id `id` among c's identity's, or NULL. */
static const struct business *business_listed(const struct connection *c, int64_t id)
{
    if (id <= 0 || !c->has_identity)
        return NULL;
    for (size_t i = 0; i < c->ident.n_businesses; i++)
        if (c->ident.businesses[i].id == id)
            return &c->ident.businesses[i];
    return NULL;
}

const struct business *connection_business_of(const struct loaded *l, const char *key)
{
    if (!l->c.has_identity || !key || !*key)
        return NULL;
    for (size_t i = 0; i < l->c.ident.n_businesses; i++) {
        const struct business *b = &l->c.ident.businesses[i];
        char id[24];
        snprintf(id, sizeof id, "%" PRId64, b->id);
        if (strcmp(b->account_id[0] ? b->account_id : id, key) == 0)
            return b;
    }
    return NULL;
}

const char *connection_business_key(struct arena *a, const struct business *b)
{
    return b->account_id[0] ? b->account_id : arena_printf(a, "%" PRId64, b->id);
}

/* connection_choose, telling the owner (connection.business_chosen) only when announce:
 * a choice cleared because its business went has been told with the identity's change. */
static enum store_result choose(struct svc *svc, struct loaded *l, const struct business *b,
                                bool announce)
{
    char *now = pointer_make(svc->arena, svc->keys, l->owner, l->record_name, l->c.generation,
                             b ? b->id : 0);
    struct event_change ch = {.type = EVENT_BUSINESS_CHOSEN,
                              .ident = l->c.has_identity ? &l->c.ident : NULL, .business = b};
    struct store_event ev;
    enum store_result r = store_owner_rebind(svc->store, l->owner, l->pointer, now,
                                             announce ? event_make(svc, &ev, &ch, l->owner, NULL, NULL)
                                                      : NULL);
    if (r == STORE_OK) {
        l->pointer = now;
        l->business = b;
    }
    return r;
}

enum store_result connection_choose(struct svc *svc, struct loaded *l, const struct business *b)
{
    return choose(svc, l, b, true);
}

int64_t connection_choice_of(struct svc *svc, const char *owner, const char *record_name)
{
    char *pointer = NULL;
    const char *name, *generation;
    int64_t business = 0;
    if (!owner || store_owner_get(svc->store, owner, svc->arena, &pointer) != STORE_OK)
        return 0;
    enum pointer_result pr = pointer_open(svc->arena, svc->keys, owner, pointer, &name,
                                          &generation, &business);
    return (pr == POINTER_OK || pr == POINTER_OLD_KEY) && strcmp(name, record_name) == 0
               ? business
               : 0;
}

enum lookup_result connection_load(struct svc *svc, const char *owner, struct loaded *out)
{
    memset(out, 0, sizeof *out);
    out->owner = owner;
    if (!owner)
        return LOOKUP_NONE;
    char *pointer = NULL, *data = NULL;
    size_t len = 0;
    switch (fetch_owner(svc, out->owner, &pointer, &data, &len)) {
    case STORE_OK:
        break;
    case STORE_UNAVAILABLE:
        return LOOKUP_UNAVAILABLE;
    default:
        return LOOKUP_NONE;
    }
    const char *name = NULL, *generation = NULL;
    int64_t choice = 0;
    enum pointer_result pr = pointer_open(svc->arena, svc->keys, out->owner, pointer, &name,
                                          &generation, &choice);
    if (pr == POINTER_UNBOUND || pr == POINTER_BAD) {
        /* Copied from another owner, edited, or from before pointers were bound (`fbconnect
         * rekey` binds those): not this owner's connection.  Left in place for rekey. */
        log_msg(LOG_WARN, "an owner pointer that is not bound to its owner was refused (%s)",
                pr == POINTER_UNBOUND ? "unbound: from before 0.2, see fbconnect rekey --bind-unbound" : "does not verify");
        return LOOKUP_NONE;
    }
    out->record_name = name;
    out->pointer = pointer;
    enum store_result got = data ? STORE_OK : STORE_NOT_FOUND;
    if (got == STORE_OK && open_record(svc, name, data, len, &out->c) != RECORD_OK) {
        log_msg(LOG_ERROR, "connection record %.12s… does not open with any configured key", name);
        return LOOKUP_NONE;
    }
    if (got != STORE_OK || sodium_memcmp(out->c.generation, generation, GENERATION_LEN) != 0) {
        /* Disconnected (and maybe connected again since by someone else): this owner's
         * pointer is stale and must never reach the record again. */
        store_owner_delete(svc->store, out->owner);
        return LOOKUP_NONE;
    }
    if (out->c.opened_with_old_key)
        reseal(svc, out);
    if (!out->c.reconnect_required && oauth_scopes_missing(svc->cfg->scopes, out->c.pair.scope)) {
        /* FreshBooks cannot widen a token: only a new connect grants what is asked now. */
        struct connection now;
        enum update_result m = connection_mark_reconnect(svc, out, RECONNECT_SCOPES_CHANGED, &now);
        if ((m == UPDATE_WRITTEN || m == UPDATE_NOT_DURABLE || m == UPDATE_KEPT) &&
            strcmp(now.generation, out->c.generation) == 0)
            out->c = now;
    }
    out->business = business_listed(&out->c, choice);
    const struct business *only =
        out->c.has_identity && out->c.ident.n_businesses == 1 ? &out->c.ident.businesses[0] : NULL;
    if (choice && !out->business) {
        /* The identity no longer lists the business chosen: the choice is cleared (or, when
         * one business is left, that one is the choice, as at a connect). */
        log_msg(LOG_INFO, "a chosen business is no longer among the identity's: choice %s",
                only ? "moved to the only one left" : "cleared");
        choose(svc, out, only, only != NULL);
    } else if (!choice && only) {
        /* One business and no choice stored (a pointer from before businesses were chosen,
         * a connection whose identity came later): that one, as at a connect. */
        connection_choose(svc, out, only);
        out->business = only;
    } else if (pr == POINTER_OLD_KEY) { /* bound before a key rotation: bind it anew */
        char *now = pointer_make(svc->arena, svc->keys, out->owner, name, generation, choice);
        if (store_owner_rebind(svc->store, out->owner, pointer, now, NULL) == STORE_OK)
            out->pointer = now;
    }
    return LOOKUP_FOUND;
}

enum store_result connection_read(struct svc *svc, const char *name, struct connection *out)
{
    char *data = NULL;
    size_t len = 0;
    enum store_result r = store_record_get(svc->store, name, 0, svc->arena, &data, &len);
    if (r != STORE_OK)
        return r;
    if (record_decode(svc->arena, svc->keys, name, data, len, out) != RECORD_OK) {
        log_msg(LOG_ERROR, "connection record %.12s… does not open with any configured key "
                           "(every host needs every key of a rotation: FBCONNECT_OLD_SECRET_KEYS)",
                name);
        return STORE_UNREADABLE;
    }
    return STORE_OK;
}

const char *connection_identity_record(struct svc *svc, int64_t user_id)
{
    /* client id, a NUL, the FreshBooks user id in decimal */
    struct buf material = {0};
    buf_puts(&material, svc->cfg->client_id);
    buf_printf(&material, "%c%" PRId64, '\0', user_id);
    name_text h;
    name_hash("conn", material.data, material.len, h);
    buf_free(&material);
    return arena_printf(svc->arena, "c:%s", h);
}

static void new_generation(char out[GENERATION_LEN + 1])
{
    uint8_t raw[16];
    random_bytes(raw, sizeof raw);
    b64url_encode(raw, sizeof raw, out);
}

struct newest {
    const struct connection *fresh;
};

/* A pair just issued goes in unless the stored one is newer (record_merge_pair); a record
 * already there keeps its generation, so every owner pointing at it stays connected. */
static enum update_step newest_step(const struct connection *cur, struct connection *next,
                                    void *arg)
{
    const struct newest *n = arg;
    *next = *n->fresh;
    if (cur && cur->generation[0]) {
        memcpy(next->generation, cur->generation, sizeof cur->generation);
        if (!record_merge_pair(cur, &n->fresh->pair, &next->pair))
            return STEP_KEEP;
    } else {
        new_generation(next->generation);
    }
    return STEP_WRITE;
}

/* Writes `fresh` into record `name` unless the stored pair is newer (FreshBooks issued it
 * later, so `fresh` is already dead; a pair of the same second is kept as an alternate).
 * Sets fresh->generation to the record's, for owner pointers.  A record that does not open
 * is written over (the pair was just issued).  Retries a Redis blip until until_us
 * (monotonic), not an error no retry mends.  STORE_OK or STORE_UNAVAILABLE. */
static enum store_result put_newest(struct svc *svc, const char *name, struct connection *fresh,
                                    int64_t until_us, const char *told)
{
    struct newest n = {.fresh = fresh};
    struct record_change change = {.decide = newest_step, .arg = &n,
                                   .flags = UPDATE_OVER_UNREADABLE, .retry_until_us = until_us,
                                   .except = told};
    struct connection now;
    switch (record_update(svc, name, NULL, &change, &now)) {
    case UPDATE_WRITTEN:
    case UPDATE_KEPT:
        memcpy(fresh->generation, now.generation, sizeof now.generation);
        return STORE_OK;
    default:
        return STORE_UNAVAILABLE;
    }
}

enum store_result connection_connect(struct svc *svc, const struct token_pair *pair,
                                     const struct identity *ident, const char *owner,
                                     const char *old_owner, int64_t business)
{
    struct connection fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.pair = *pair;
    fresh.connected_at = clock_wall();
    const char *name;
    if (ident) {
        fresh.has_identity = true;
        fresh.ident = *ident;
        name = connection_identity_record(svc, ident->user_id);
    } else {
        name_text id;
        name_new(id);
        name = arena_printf(svc->arena, "p:%s", id);
    }
    long ttl = config_record_ttl(svc->cfg);
    int64_t until = clock_mono_us() + STORE_BUDGET_MS * 1000;
    if (svc->deadline_us && until > svc->deadline_us)
        until = svc->deadline_us;
    const struct business *chosen = NULL;
    for (size_t i = 0; ident && business && i < ident->n_businesses; i++)
        if (ident->businesses[i].id == business)
            chosen = &ident->businesses[i];
    struct event_change ch = {.type = EVENT_CONNECTED, .ident = ident, .business = chosen};
    struct store_event ev_buf;
    struct store_event *ev = event_make(svc, &ev_buf, &ch, owner, NULL, NULL);
    if (ev) { /* one event, however many times a failover makes this write again */
        name_text once;
        name_new(once);
        ev->once = arena_strdup(svc->arena, once);
    }
    /* the record's other owners hear of a mark this connect clears; these two do not */
    const char *told = arena_printf(svc->arena, "%s %s", owner, old_owner ? old_owner : "");
    /* A write a replica has not acknowledged may vanish in a failover: store it again (on
     * the primary found anew) until one does. */
    for (int attempt = 0; attempt < STORE_ATTEMPTS && clock_mono_us() < until; attempt++) {
        if (attempt && !store_may_heal(svc->store))
            break;
        if (attempt)
            pause_ms(250L * attempt, until);
        fresh.pair = *pair;
        /* The usual case, a FreshBooks identity connecting for the first time: record and
         * pointer in one round trip. */
        new_generation(fresh.generation);
        struct buf value = {0};
        record_encode(svc->keys, name, &fresh, record_first_version(), &value);
        char *pointer = pointer_make(svc->arena, svc->keys, owner, name, fresh.generation, business);
        enum store_result r = store_record_create(svc->store, name, value.data, value.len, ttl,
                                                  owner, pointer, old_owner, ev);
        sodium_memzero(value.data, value.cap);
        buf_free(&value);
        if (r != STORE_OK) {
            /* The identity is connected already (another browser), or Redis blipped: the
             * newest pair wins by compare-and-set, keeping the record's generation. */
            if (put_newest(svc, name, &fresh, until, told) != STORE_OK)
                continue;
            pointer = pointer_make(svc->arena, svc->keys, owner, name, fresh.generation, business);
            r = store_owner_set(svc->store, owner, name, pointer, ttl, old_owner, ev);
            if (r != STORE_OK)
                continue;
        }
        if (store_wait_durable(svc->store) == STORE_OK)
            return STORE_OK;
    }
    return STORE_UNAVAILABLE;
}

/* At most one users/me attempt per pending record every IDENTITY_RETRY_MS, across every
 * thread, process and host: polling /status cannot pin threads on a slow FreshBooks or
 * spend its rate limit.  A Redis failure skips the attempt. */
static bool identity_retry_due(struct svc *svc, const char *name)
{
    char key[96];
    snprintf(key, sizeof key, "idr:%s", name);
    return store_claim(svc->store, key, IDENTITY_RETRY_MS) == STORE_OK;
}

bool connection_move_to_identity(struct svc *svc, struct loaded *l, bool lock_held)
{
    /* An expired access token cannot ask; the next refresh's leader asks first. */
    if (l->c.has_identity || l->c.reconnect_required || l->c.pair.expires_at <= clock_wall() ||
        !identity_retry_due(svc, l->record_name))
        return false;
    struct identity ident;
    enum oauth_result r = oauth_fetch_identity(svc->oauth, svc->arena, l->c.pair.access_token, &ident);
    if (r != OAUTH_OK) {
        log_msg(LOG_WARN, "identity still unknown: %s", oauth_last_error(svc->oauth));
        return false;
    }
    /* The move holds the record's refresh lock: a refresh of this record in flight (or a
     * refreshed pair still waiting in memory for Redis) holds it, and moving the pair it
     * spent would lose the user.  Held: the move waits for a later request. */
    struct store_lock lock = {0};
    if (!lock_held) {
        uint8_t raw[16];
        random_bytes(raw, sizeof raw);
        sodium_bin2hex(lock.owner, sizeof lock.owner, raw, sizeof raw);
        if (store_lock_try(svc->store, l->record_name, &lock, config_lock_ttl_ms(svc->cfg)) !=
            STORE_OK)
            return false;
    }
    bool moved_it = false;
    struct connection cur; /* under the lock: the pair as stored now */
    if (connection_read(svc, l->record_name, &cur) == STORE_OK &&
        strcmp(cur.generation, l->c.generation) == 0 && !cur.reconnect_required) {
        struct connection moved = cur;
        moved.has_identity = true;
        moved.ident = ident;
        const char *name = connection_identity_record(svc, ident.user_id);
        char *pointer = NULL;
        if (put_newest(svc, name, &moved, clock_mono_us() + STORE_BUDGET_MS * 1000, l->owner) ==
            STORE_OK)
            pointer = pointer_make(svc->arena, svc->keys, l->owner, name, moved.generation,
                                   ident.n_businesses == 1 ? ident.businesses[0].id : 0);
        if (pointer &&
            store_owner_set(svc->store, l->owner, name, pointer, config_record_ttl(svc->cfg), NULL,
                            NULL) == STORE_OK) {
            store_record_delete(svc->store, l->record_name, cur.version, NULL);
            moved_it = true;
        }
    }
    if (!lock_held)
        store_lock_release(svc->store, l->record_name, &lock, 0); /* else its TTL ends it */
    return moved_it;
}

static bool text_same(const char *a, const char *b)
{
    return strcmp(a ? a : "", b ? b : "") == 0;
}

/* Whether two identities say the same (user, names, every business as listed). */
static bool identity_same(const struct identity *a, const struct identity *b)
{
    if (a->user_id != b->user_id || !text_same(a->email, b->email) ||
        !text_same(a->first_name, b->first_name) || !text_same(a->last_name, b->last_name) ||
        a->n_businesses != b->n_businesses)
        return false;
    for (size_t i = 0; i < a->n_businesses; i++) {
        const struct business *x = &a->businesses[i], *y = &b->businesses[i];
        if (x->id != y->id || !text_same(x->uuid, y->uuid) || !text_same(x->name, y->name) ||
            !text_same(x->account_id, y->account_id) || !text_same(x->role, y->role))
            return false;
    }
    return true;
}

struct reread {
    const char *generation, *access_token;
    const struct identity *ident;
};

/* The identity just read goes into the record it was read for — the same connection still
 * holding the pair it was read with (a connect meanwhile brought an identity of its own,
 * newer than this one) — unless it says what the record says already. */
static enum update_step reread_step(const struct connection *cur, struct connection *next,
                                    void *arg)
{
    const struct reread *r = arg;
    if (!cur || !cur->has_identity || strcmp(cur->generation, r->generation) != 0 ||
        strcmp(cur->pair.access_token, r->access_token) != 0 ||
        cur->ident.user_id != r->ident->user_id || identity_same(&cur->ident, r->ident))
        return STEP_KEEP;
    next->ident = *r->ident;
    return STEP_WRITE;
}

bool connection_reread_identity(struct svc *svc, const char *name)
{
    struct connection c;
    if (connection_read(svc, name, &c) != STORE_OK || !c.has_identity || c.reconnect_required ||
        c.pair.expires_at <= clock_wall())
        return false;
    struct identity ident;
    if (oauth_fetch_identity(svc->oauth, svc->arena, c.pair.access_token, &ident) != OAUTH_OK) {
        log_msg(LOG_WARN, "identity re-read failed (kept as it was): %s", oauth_last_error(svc->oauth));
        return false;
    }
    if (ident.user_id != c.ident.user_id) {
        log_msg(LOG_ERROR, "users/me answered for another FreshBooks user than the record's: "
                           "identity not updated");
        return false;
    }
    if (ident.n_businesses == 0 && c.ident.n_businesses > 0) {
        /* Every business gone at once clears every owner's choice: ask once more first. */
        struct identity again;
        if (oauth_fetch_identity(svc->oauth, svc->arena, c.pair.access_token, &again) != OAUTH_OK ||
            again.n_businesses != 0)
            return false;
    }
    struct reread r = {.generation = c.generation, .access_token = c.pair.access_token,
                       .ident = &ident};
    struct record_change change = {.decide = reread_step, .arg = &r};
    struct connection now;
    if (record_update(svc, name, &c, &change, &now) != UPDATE_WRITTEN)
        return false;
    log_msg(LOG_INFO, "identity of connection %.10s… updated: %zu businesses", name,
            ident.n_businesses);
    return true;
}

void connection_resolve_identity(struct svc *svc, struct loaded *l)
{
    /* Report what is now stored (the identity record may hold a newer pair). */
    struct loaded again;
    if (connection_move_to_identity(svc, l, false) &&
        connection_load(svc, l->owner, &again) == LOOKUP_FOUND)
        *l = again;
}

enum store_result connection_delete(struct svc *svc, struct loaded *l, bool revoke,
                                    const char *by, bool *confirmed)
{
    *confirmed = true;
    for (int attempt = 0; attempt < 3; attempt++) {
        if (revoke) {
            enum oauth_result r1 = oauth_revoke(svc->oauth, l->c.pair.refresh_token);
            enum oauth_result r2 = oauth_revoke(svc->oauth, l->c.pair.access_token);
            bool ok = r1 == OAUTH_OK && r2 == OAUTH_OK;
            metric_add(&revokes[ok]);
            if (!ok) {
                *confirmed = false;
                log_msg(LOG_WARN, "revoke not confirmed by FreshBooks (%s); deleting the connection anyway",
                        oauth_last_error(svc->oauth));
            }
        }
        struct event_change ch = {.type = EVENT_DISCONNECTED,
                                  .ident = l->c.has_identity ? &l->c.ident : NULL,
                                  .every_owner = true, .by = by, .revoked = revoke && *confirmed};
        struct store_event ev;
        enum store_result d =
            store_record_delete(svc->store, l->record_name, l->c.version,
                                event_make(svc, &ev, &ch, NULL, l->record_name, l->c.generation));
        if (d == STORE_UNAVAILABLE)
            return d;
        if (d != STORE_CONFLICT)
            break;
        enum store_result again = connection_read(svc, l->record_name, &l->c);
        if (again == STORE_UNAVAILABLE || again == STORE_UNREADABLE)
            return STORE_UNAVAILABLE; /* nothing we cannot read is deleted */
        if (again == STORE_NOT_FOUND)
            break;
    }
    if (l->owner && store_owner_delete(svc->store, l->owner) != STORE_OK)
        return STORE_UNAVAILABLE;
    return STORE_OK;
}
