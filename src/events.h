/* events.h — connection events as data: the type names, the change's data as recorded, the
 * body a delivery sends, its Standard Webhooks signature and the retry schedule.  Pure (no
 * I/O): the store records events (store.h), the delivery thread sends them (outbox.h).
 *
 * An event is recorded as a Redis stream entry of fields
 *   t  type name ("connection.connected", …)     ts  when the change happened (ms)
 *   o  owner: "u:<site user>" or "s:<session tag>" q   the owner's sequence number
 *   b  the owner's chosen business id ("" none)   d   the change's data (event_data)
 * and turned into the same body on every attempt (event_body). */
#ifndef FBC_EVENTS_H
#define FBC_EVENTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "record.h"

enum event_type {
    EVENT_NONE,
    EVENT_CONNECTED,
    EVENT_BUSINESS_CHOSEN,
    EVENT_RECONNECT_REQUIRED,
    EVENT_DISCONNECTED,
    EVENT__MAX
};

/* "connection.connected", …; NULL for EVENT_NONE. */
const char *event_type_name(enum event_type t);

/* What a change says about its connection, beyond the owner and sequence the store adds. */
struct event_change {
    enum event_type type;
    const struct identity *ident;    /* NULL: not known (freshbooks_user_id and email null) */
    const struct business *business; /* the one owner's choice (NULL: none) */
    bool every_owner; /* one event per owner of the record, each with its own choice: the
                         data lists every business and the store picks each owner's */
    enum reconnect_reason reason;     /* EVENT_RECONNECT_REQUIRED */
    const char *by;                   /* EVENT_DISCONNECTED: "user" or "operator" */
    bool revoked;                     /* EVENT_DISCONNECTED */
};

/* The `d` field of a change (malloc'd JSON text; the caller frees): freshbooks_user_id,
 * email, then "business" (one owner) or "businesses" keyed by id (every owner), then the
 * type's own fields.  Never holds a token or anything secret. */
char *event_data(const struct event_change *ch);

/* A business as /status shows it (jansson; json null for NULL).  New reference. */
struct json_t *business_json(const struct business *b);

/* The session tag of an owner name "s:<base64url hash>": its hash's first 4 bytes in hex
 * (what the store's Lua computes too).  "" for another owner. */
void event_session_tag(const char *owner, char out[9]);

/* The webhook body of a recorded entry (malloc'd, caller frees; NULL when the entry is
 * malformed): {"type","timestamp","data":{"owner":{"site_user","session"},"sequence",
 * "freshbooks_user_id","email","business",…type fields}}, the same for the same entry. */
char *event_body(const char *type, int64_t ts_ms, const char *owner, int64_t sequence,
                 const char *business, const char *data);

/* The Standard Webhooks signature "v1,<base64 HMAC-SHA256(key, id.timestamp.body)>" into
 * out (at least EVENT_SIGNATURE_MAX bytes). */
#define EVENT_SIGNATURE_MAX 64
void event_sign(const uint8_t *key, size_t key_len, const char *id, int64_t timestamp,
                const char *body, size_t body_len, char out[EVENT_SIGNATURE_MAX]);

/* The delay before retry `attempt` (1: after the first failure): 1 s doubling to 600 s,
 * times `jitter` in [0.75, 1.25] (the caller's random draw), in milliseconds. */
#define EVENT_RETRY_FIRST_MS 1000
#define EVENT_RETRY_MAX_MS 600000
int64_t event_retry_delay_ms(unsigned attempt, double jitter);

#endif
