#include "events.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ids.h"

static const char *const type_names[EVENT__MAX] = {
    [EVENT_NONE] = NULL,
    [EVENT_CONNECTED] = "connection.connected",
    [EVENT_BUSINESS_CHOSEN] = "connection.business_chosen",
    [EVENT_RECONNECT_REQUIRED] = "connection.reconnect_required",
    [EVENT_DISCONNECTED] = "connection.disconnected",
};

const char *event_type_name(enum event_type t)
{
    return t > EVENT_NONE && t < EVENT__MAX ? type_names[t] : NULL;
}

json_t *business_json(const struct business *b)
{
    if (!b)
        return json_null();
    return json_pack("{s:I,s:s,s:s,s:s,s:s}", "id", (json_int_t)b->id, "uuid", b->uuid ? b->uuid : "",
                     "name", b->name ? b->name : "", "account_id", b->account_id ? b->account_id : "",
                     "role", b->role ? b->role : "");
}

char *event_data(const struct event_change *ch)
{
    const struct identity *id = ch->ident;
    json_t *d = json_object();
    json_object_set_new(d, "freshbooks_user_id", id ? json_integer(id->user_id) : json_null());
    json_object_set_new(d, "email", id && id->email && *id->email ? json_string(id->email) : json_null());
    if (ch->every_owner) {
        json_t *all = json_object();
        for (size_t i = 0; id && i < id->n_businesses; i++) {
            char key[24];
            snprintf(key, sizeof key, "%" PRId64, id->businesses[i].id);
            json_object_set_new(all, key, business_json(&id->businesses[i]));
        }
        json_object_set_new(d, "businesses", all);
    } else {
        json_object_set_new(d, "business", business_json(ch->business));
    }
    if (ch->type == EVENT_RECONNECT_REQUIRED)
        json_object_set_new(d, "reason", json_string(reconnect_reason_name(ch->reason)));
    if (ch->type == EVENT_DISCONNECTED) {
        json_object_set_new(d, "by", json_string(ch->by ? ch->by : "user"));
        json_object_set_new(d, "revoked", json_boolean(ch->revoked));
    }
    char *text = json_dumps(d, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(d);
    if (!text)
        abort();
    return text;
}

void event_session_tag(const char *owner, char out[9])
{
    uint8_t raw[NAME_BYTES];
    size_t n = 0;
    out[0] = '\0';
    if (strncmp(owner, "s:", 2) != 0 ||
        b64url_decode(owner + 2, strlen(owner + 2), raw, sizeof raw, &n) != 0 || n < 4)
        return;
    sodium_bin2hex(out, 9, raw, 4);
}

/* RFC 3339 in UTC with milliseconds: 2026-12-02T03:04:05.678Z. */
static void rfc3339(int64_t ms, char out[32])
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&s, &tm);
    size_t n = strftime(out, 32, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + n, 32 - n, ".%03dZ", (int)(ms % 1000));
}

char *event_body(const char *type, int64_t ts_ms, const char *owner, int64_t sequence,
                 const char *business, const char *data)
{
    json_error_t err;
    json_t *d = data ? json_loads(data, 0, &err) : NULL;
    if (!type || !owner || ts_ms < 0 || !json_is_object(d) ||
        (strncmp(owner, "u:", 2) != 0 && strncmp(owner, "s:", 2) != 0)) {
        json_decref(d);
        return NULL;
    }
    bool user = owner[0] == 'u';
    json_t *name = json_string(owner + 2);
    if (!name) { /* not UTF-8 (the site's own param): each byte beyond ASCII becomes '?' */
        char *ascii = strdup(owner + 2);
        if (!ascii)
            abort();
        for (char *p = ascii; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
        name = json_string(ascii);
        free(ascii);
    }
    json_t *out = json_object();
    json_t *o = json_pack("{s:o,s:o}", "site_user", user ? name : json_null(), "session",
                          user ? json_null() : name);
    json_t *body = json_object();
    json_object_set_new(body, "owner", o);
    json_object_set_new(body, "sequence", json_integer(sequence));
    json_object_set(body, "freshbooks_user_id", json_object_get(d, "freshbooks_user_id"));
    json_object_set(body, "email", json_object_get(d, "email"));
    json_t *b = json_object_get(d, "business");
    json_t *all = json_object_get(d, "businesses");
    if (all)
        b = business && *business ? json_object_get(all, business) : NULL;
    json_object_set(body, "business", b ? b : json_null());
    const char *key;
    json_t *v;
    json_object_foreach(d, key, v)
    {
        if (strcmp(key, "freshbooks_user_id") && strcmp(key, "email") && strcmp(key, "business") &&
            strcmp(key, "businesses"))
            json_object_set(body, key, v);
    }
    if (!json_object_get(body, "email"))
        json_object_set_new(body, "email", json_null());
    if (!json_object_get(body, "freshbooks_user_id"))
        json_object_set_new(body, "freshbooks_user_id", json_null());
    char when[32];
    rfc3339(ts_ms, when);
    json_object_set_new(out, "type", json_string(type));
    json_object_set_new(out, "timestamp", json_string(when));
    json_object_set_new(out, "data", body);
    char *text = json_dumps(out, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(out);
    json_decref(d);
    return text;
}

void event_sign(const uint8_t *key, size_t key_len, const char *id, int64_t timestamp,
                const char *body, size_t body_len, char out[EVENT_SIGNATURE_MAX])
{
    crypto_auth_hmacsha256_state st;
    char ts[24];
    int n = snprintf(ts, sizeof ts, "%" PRId64, timestamp);
    crypto_auth_hmacsha256_init(&st, key, key_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)id, strlen(id));
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, (size_t)n);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)".", 1);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, body_len);
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    crypto_auth_hmacsha256_final(&st, mac);
    memcpy(out, "v1,", 3);
    sodium_bin2base64(out + 3, EVENT_SIGNATURE_MAX - 3, mac, sizeof mac,
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(&st, sizeof st);
}

int64_t event_retry_delay_ms(unsigned attempt, double jitter)
{
    int64_t d = EVENT_RETRY_FIRST_MS;
    for (unsigned i = 1; i < attempt && d < EVENT_RETRY_MAX_MS; i++)
        d *= 2;
    if (d > EVENT_RETRY_MAX_MS)
        d = EVENT_RETRY_MAX_MS;
    if (jitter < 0.75)
        jitter = 0.75;
    if (jitter > 1.25)
        jitter = 1.25;
    return (int64_t)((double)d * jitter);
}
