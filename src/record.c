#include "record.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ids.h"
#include "log.h"
#include "seal.h"

static const char *const reason_names[RECONNECT__MAX] = {
    [RECONNECT_REFRESH_REFUSED] = "refresh_refused",
    [RECONNECT_SCOPES_CHANGED] = "scopes_changed",
};

const char *reconnect_reason_name(enum reconnect_reason r)
{
    return (unsigned)r < RECONNECT__MAX ? reason_names[r] : reason_names[RECONNECT_REFRESH_REFUSED];
}

#define FORMAT "r1"
#define AD_LABEL "fbconnect-record-1"

static void make_ad(const char *record_name, struct buf *ad)
{
    buf_reset(ad);
    buf_append(ad, AD_LABEL, sizeof AD_LABEL); /* label and its NUL */
    buf_puts(ad, record_name);
}

void record_encode(const struct keyring *kr, const char *record_name, const struct connection *c,
                   uint64_t version, struct buf *out)
{
    json_t *businesses = json_array();
    for (size_t i = 0; i < c->ident.n_businesses; i++) {
        const struct business *b = &c->ident.businesses[i];
        json_array_append_new(businesses, json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)b->id,
                                                    "n", b->name ? b->name : "", "a",
                                                    b->account_id ? b->account_id : "", "u",
                                                    b->uuid ? b->uuid : "", "r", b->role ? b->role : ""));
    }
    json_t *user = json_null();
    if (c->has_identity)
        user = json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)c->ident.user_id, "em",
                         c->ident.email ? c->ident.email : "", "fn",
                         c->ident.first_name ? c->ident.first_name : "", "ln",
                         c->ident.last_name ? c->ident.last_name : "");
    json_t *alternates = json_array();
    for (size_t i = 0; i < c->pair.n_alternates && i < PAIR_ALTERNATES; i++)
        json_array_append_new(alternates, json_string(c->pair.alternates[i]));
    json_t *root = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I,s:b,s:I,s:o,s:o}", "g", c->generation,
                             "at", c->pair.access_token,
                             "rt", c->pair.refresh_token, "sc",
                             c->pair.scope ? c->pair.scope : "", "ca",
                             (json_int_t)c->pair.created_at, "ex", (json_int_t)c->pair.expires_at,
                             "rr", c->reconnect_required, "ct", (json_int_t)c->connected_at, "u",
                             user, "b", businesses);
    if (root && json_array_size(alternates))
        json_object_set(root, "alt", alternates);
    if (root && c->reconnect_required)
        json_object_set_new(root, "rq", json_string(reconnect_reason_name(c->reconnect_reason)));
    json_decref(alternates);
    char *json = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (!json) { /* only non-UTF-8 strings make json_pack fail, and every string came from jansson */
        log_msg(LOG_ERROR, "record_encode: cannot serialise a connection record");
        abort();
    }

    struct buf ad = {0};
    make_ad(record_name, &ad);
    buf_reset(out);
    buf_printf(out, FORMAT ":%" PRIu64 ":", version);
    seal_box(kr, ad.data, ad.len, json, strlen(json), out);
    sodium_memzero(json, strlen(json));
    free(json);
    buf_free(&ad);
}

uint64_t record_version(const char *data, size_t len)
{
    if (len < 5 || memcmp(data, FORMAT ":", 3) != 0 || data[3] < '1' || data[3] > '9')
        return 0;
    uint64_t v = 0;
    size_t i = 3;
    for (; i < len && i < 3 + RECORD_VERSION_DIGITS && data[i] >= '0' && data[i] <= '9'; i++)
        v = v * 10 + (uint64_t)(data[i] - '0');
    return (i < len && data[i] == ':') ? v : 0;
}

const uint8_t *record_seal_nonce(const char *data, size_t len)
{
    const char *body = len > 3 ? memchr(data + 3, ':', len - 3) : NULL;
    if (!body || (size_t)(body + 1 - data) + KID_BYTES + RECORD_SEAL_NONCE_BYTES > len)
        return NULL;
    return (const uint8_t *)body + 1 + KID_BYTES; /* after ':' and the key id */
}

uint64_t record_first_version(void)
{
    uint64_t v;
    random_bytes(&v, sizeof v);
    return 1 + v % ((UINT64_C(1) << 48) - 1);
}

uint64_t record_next_version(uint64_t version)
{
    /* Unreachable in practice (10^15 writes), but a version is never written that the
     * parsers would not read back. */
    return version + 1 <= RECORD_VERSION_MAX ? version + 1 : 1;
}

/* Adds t to p's alternates unless it is p's own refresh token or there already. */
static void add_alternate(struct token_pair *p, const char *t)
{
    if (!t || !*t || strcmp(t, p->refresh_token) == 0 || p->n_alternates >= PAIR_ALTERNATES)
        return;
    for (size_t i = 0; i < p->n_alternates; i++)
        if (strcmp(p->alternates[i], t) == 0)
            return;
    p->alternates[p->n_alternates++] = t;
}

bool record_merge_pair(const struct connection *cur, const struct token_pair *fresh,
                       struct token_pair *out)
{
    bool live = cur && !cur->reconnect_required;
    if (live && cur->pair.created_at > fresh->created_at)
        return false;
    *out = *fresh;
    if (live && cur->pair.created_at == fresh->created_at) {
        add_alternate(out, cur->pair.refresh_token);
        for (size_t i = 0; i < cur->pair.n_alternates; i++)
            add_alternate(out, cur->pair.alternates[i]);
    }
    return true;
}

static const char *copy_str(struct arena *a, const char *s)
{
    return s ? arena_strdup(a, s) : NULL;
}

void record_copy(struct arena *a, const struct connection *src, struct connection *dst)
{
    *dst = *src;
    dst->pair.access_token = copy_str(a, src->pair.access_token);
    dst->pair.refresh_token = copy_str(a, src->pair.refresh_token);
    dst->pair.scope = copy_str(a, src->pair.scope);
    for (size_t i = 0; i < src->pair.n_alternates; i++)
        dst->pair.alternates[i] = copy_str(a, src->pair.alternates[i]);
    dst->ident.email = copy_str(a, src->ident.email);
    dst->ident.first_name = copy_str(a, src->ident.first_name);
    dst->ident.last_name = copy_str(a, src->ident.last_name);
    size_t nb = src->ident.n_businesses;
    dst->ident.businesses = arena_alloc(a, (nb ? nb : 1) * sizeof(struct business));
    for (size_t i = 0; i < nb; i++) {
        dst->ident.businesses[i] = src->ident.businesses[i];
        dst->ident.businesses[i].name = copy_str(a, src->ident.businesses[i].name);
        dst->ident.businesses[i].account_id = copy_str(a, src->ident.businesses[i].account_id);
        dst->ident.businesses[i].uuid = copy_str(a, src->ident.businesses[i].uuid);
        dst->ident.businesses[i].role = copy_str(a, src->ident.businesses[i].role);
    }
}

static const char *dup_str(struct arena *a, json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? arena_strdup(a, s) : NULL;
}

enum record_result record_decode(struct arena *a, const struct keyring *kr,
                                 const char *record_name, const char *data, size_t len,
                                 struct connection *out)
{
    memset(out, 0, sizeof *out);
    uint64_t version = record_version(data, len);
    if (version == 0)
        return RECORD_CORRUPT;
    const char *body = memchr(data + 3, ':', len - 3);
    if (!body)
        return RECORD_CORRUPT;
    body++;
    struct buf ad = {0}, plain = {0};
    make_ad(record_name, &ad);
    bool old_key = false;
    int rc = seal_open(kr, ad.data, ad.len, body, len - (size_t)(body - data), &plain, &old_key);
    buf_free(&ad);
    if (rc != 0) {
        buf_free(&plain);
        return RECORD_CORRUPT;
    }
    json_error_t jerr;
    json_t *root = json_loadb(plain.data, plain.len, 0, &jerr);
    sodium_memzero(plain.data, plain.len);
    buf_free(&plain);
    if (!json_is_object(root)) {
        json_decref(root);
        return RECORD_CORRUPT;
    }
    enum record_result result = RECORD_CORRUPT;
    out->version = version;
    out->opened_with_old_key = old_key;
    const char *gen = json_string_value(json_object_get(root, "g"));
    if (gen && strlen(gen) == GENERATION_LEN)
        memcpy(out->generation, gen, GENERATION_LEN + 1);
    out->pair.access_token = dup_str(a, root, "at");
    out->pair.refresh_token = dup_str(a, root, "rt");
    out->pair.scope = dup_str(a, root, "sc");
    out->pair.created_at = json_integer_value(json_object_get(root, "ca"));
    out->pair.expires_at = json_integer_value(json_object_get(root, "ex"));
    out->reconnect_required = json_is_true(json_object_get(root, "rr"));
    /* A mark without a reason is from before reasons: FreshBooks refused its refresh. */
    const char *why = json_string_value(json_object_get(root, "rq"));
    out->reconnect_reason = RECONNECT_REFRESH_REFUSED;
    for (int i = 0; why && i < RECONNECT__MAX; i++)
        if (strcmp(why, reconnect_reason_name((enum reconnect_reason)i)) == 0)
            out->reconnect_reason = (enum reconnect_reason)i;
    out->connected_at = json_integer_value(json_object_get(root, "ct"));
    if (!out->pair.access_token || !out->pair.refresh_token || !out->pair.scope)
        goto done;
    json_t *alt = json_object_get(root, "alt");
    for (size_t i = 0; i < json_array_size(alt) && out->pair.n_alternates < PAIR_ALTERNATES; i++) {
        const char *t = json_string_value(json_array_get(alt, i));
        if (t)
            out->pair.alternates[out->pair.n_alternates++] = arena_strdup(a, t);
    }
    json_t *user = json_object_get(root, "u");
    if (json_is_object(user)) {
        out->has_identity = true;
        out->ident.user_id = json_integer_value(json_object_get(user, "id"));
        out->ident.email = dup_str(a, user, "em");
        out->ident.first_name = dup_str(a, user, "fn");
        out->ident.last_name = dup_str(a, user, "ln");
    }
    json_t *bs = json_object_get(root, "b");
    size_t nb = json_array_size(bs);
    out->ident.businesses = arena_calloc(a, (nb ? nb : 1) * sizeof(struct business));
    for (size_t i = 0; i < nb; i++) {
        json_t *b = json_array_get(bs, i);
        struct business *ob = &out->ident.businesses[out->ident.n_businesses];
        ob->id = json_integer_value(json_object_get(b, "id"));
        ob->name = dup_str(a, b, "n");
        ob->account_id = dup_str(a, b, "a");
        ob->uuid = dup_str(a, b, "u");
        ob->role = dup_str(a, b, "r");
        if (!ob->uuid) /* records written before uuids and roles were kept */
            ob->uuid = "";
        if (!ob->role)
            ob->role = "";
        if (ob->name && ob->account_id)
            out->ident.n_businesses++;
    }
    result = RECORD_OK;
done:
    json_decref(root);
    return result;
}
