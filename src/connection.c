#include "connection.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "session.h"

#define STORE_ATTEMPTS 4

long connection_ttl(const struct ctx *ctx)
{
    return ctx->cfg->user_param ? 0 : ctx->cfg->session_ttl;
}

static void pause_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

enum lookup_result connection_load(struct ctx *ctx, struct loaded *out)
{
    memset(out, 0, sizeof *out);
    out->owner = session_owner(ctx);
    if (!out->owner)
        return LOOKUP_NONE;
    long ttl = connection_ttl(ctx);
    char *name = NULL;
    switch (store_owner_get(ctx->w->store, out->owner, ttl, ctx->arena, &name)) {
    case STORE_OK:
        break;
    case STORE_UNAVAILABLE:
        return LOOKUP_UNAVAILABLE;
    default:
        return LOOKUP_NONE;
    }
    if (strlen(name) > 64 || (strncmp(name, "c:", 2) != 0 && strncmp(name, "p:", 2) != 0))
        return LOOKUP_NONE;
    out->record_name = name;
    char *data = NULL;
    size_t len = 0;
    switch (store_record_get(ctx->w->store, name, ttl, ctx->arena, &data, &len)) {
    case STORE_OK:
        break;
    case STORE_UNAVAILABLE:
        return LOOKUP_UNAVAILABLE;
    default:
        return LOOKUP_NONE;
    }
    if (record_decode(ctx->arena, &ctx->app->keys, name, data, len, &out->c) != RECORD_OK) {
        log_msg(LOG_ERROR, "connection record %.12s… does not open with any configured key", name);
        return LOOKUP_NONE;
    }
    return LOOKUP_FOUND;
}

static const char *identity_record_name(struct ctx *ctx, int64_t user_id)
{
    /* client id, a NUL, the FreshBooks user id in decimal */
    struct buf material = {0};
    buf_puts(&material, ctx->cfg->client_id);
    buf_printf(&material, "%c%" PRId64, '\0', user_id);
    id_text h;
    id_hash("conn", material.data, material.len, h);
    buf_free(&material);
    return arena_printf(ctx->arena, "c:%s", h);
}

/* Writes `fresh` into record `name` by compare-and-set, unless the stored pair is newer
 * (FreshBooks issued it later, so `fresh` is already dead).  STORE_OK or
 * STORE_UNAVAILABLE. */
static enum store_result put_newest(struct ctx *ctx, const char *name, const struct connection *fresh)
{
    struct buf value = {0};
    enum store_result res = STORE_UNAVAILABLE;
    long ttl = connection_ttl(ctx);
    for (int attempt = 0; attempt < STORE_ATTEMPTS * 2; attempt++) {
        char *data = NULL;
        size_t len = 0;
        uint64_t version = 0;
        enum store_result got = store_record_get(ctx->w->store, name, 0, ctx->arena, &data, &len);
        if (got == STORE_UNAVAILABLE) {
            res = got;
            pause_ms(100L << (attempt < 3 ? attempt : 3));
            continue;
        }
        if (got == STORE_OK) {
            struct connection cur;
            version = record_version(data, len);
            if (record_decode(ctx->arena, &ctx->app->keys, name, data, len, &cur) == RECORD_OK &&
                cur.pair.created_at > fresh->pair.created_at && !cur.reconnect_required) {
                res = STORE_OK;
                break;
            }
        }
        record_encode(&ctx->app->keys, name, fresh, version + 1, &value);
        res = store_record_put(ctx->w->store, name, version, value.data, value.len, ttl);
        if (res == STORE_OK)
            break;
        if (res == STORE_UNAVAILABLE)
            pause_ms(100L << (attempt < 3 ? attempt : 3));
        res = STORE_UNAVAILABLE;
    }
    if (value.data)
        sodium_memzero(value.data, value.cap);
    buf_free(&value);
    return res;
}

enum store_result connection_store_new(struct ctx *ctx, const struct token_pair *pair,
                                       const struct identity *ident, char **record_name)
{
    struct connection fresh;
    memset(&fresh, 0, sizeof fresh);
    fresh.pair = *pair;
    fresh.connected_at = clock_wall();
    if (ident) {
        fresh.has_identity = true;
        fresh.ident = *ident;
        *record_name = (char *)identity_record_name(ctx, ident->user_id);
    } else {
        id_text id;
        id_new(id);
        *record_name = arena_printf(ctx->arena, "p:%s", id);
    }
    return put_newest(ctx, *record_name, &fresh);
}

void connection_resolve_identity(struct ctx *ctx, struct loaded *l)
{
    if (l->c.has_identity || l->c.reconnect_required)
        return;
    struct identity ident;
    enum oauth_result r = oauth_fetch_identity(ctx->w->oauth, ctx->arena, l->c.pair.access_token, &ident);
    if (r != OAUTH_OK) {
        log_msg(LOG_WARN, "identity still unknown: %s", oauth_last_error(ctx->w->oauth));
        return;
    }
    struct connection moved = l->c;
    moved.has_identity = true;
    moved.ident = ident;
    const char *name = identity_record_name(ctx, ident.user_id);
    if (put_newest(ctx, name, &moved) != STORE_OK)
        return;
    if (store_owner_set(ctx->w->store, l->owner, name, connection_ttl(ctx), NULL) != STORE_OK)
        return;
    store_record_delete(ctx->w->store, l->record_name, l->c.version);
    /* Report what is now stored (the identity record may hold a newer pair). */
    struct loaded again;
    if (connection_load(ctx, &again) == LOOKUP_FOUND)
        *l = again;
}
