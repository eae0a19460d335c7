/* connection.h — finding, storing and completing the connection a request belongs to:
 * the owner pointer (session or site user) → connection record, in the store, sealed. */
#ifndef FBC_CONNECTION_H
#define FBC_CONNECTION_H

#include "app.h"
#include "record.h"

enum lookup_result {
    LOOKUP_NONE,        /* no owner, no pointer, or no (readable, current) record */
    LOOKUP_FOUND,
    LOOKUP_UNAVAILABLE, /* Redis failed: answer 503, delete nothing */
};

struct loaded {
    struct connection c;
    const char *owner;       /* "s:…" or "u:…" */
    const char *record_name; /* "c:…" or "p:…" */
};

/* Loads the connection of this request's owner, sliding the session's and the record's
 * TTLs.  A pointer whose record is gone or belongs to a later generation (the connection
 * was deleted and made again) is deleted and reported as LOOKUP_NONE; so is a record that
 * no key opens (logged). */
enum lookup_result connection_load(struct ctx *ctx, struct loaded *out);

/* Stores a pair just obtained from FreshBooks.  With an identity, in that identity's
 * record (compare-and-set; the newest pair wins, every session pointing there shares it);
 * without, in a new record of its own.  Retries briefly when Redis blips.  Sets *pointer
 * (arena) to what owners store: "<record name>/<generation>".  STORE_OK or
 * STORE_UNAVAILABLE. */
enum store_result connection_store_new(struct ctx *ctx, const struct token_pair *pair,
                                       const struct identity *ident, char **pointer);

/* For a record whose identity is unknown (users/me failed at connect): asks FreshBooks
 * again (at most once every 5 seconds per record, across every host) and, on success,
 * moves the pair into the identity's record and repoints the owner.  Leaves l unchanged
 * when FreshBooks or Redis fails; never drops the pair. */
void connection_resolve_identity(struct ctx *ctx, struct loaded *l);

/* The TTL records and session pointers get: the session TTL, or 0 (none) when
 * connections belong to site users. */
long connection_ttl(const struct ctx *ctx);

#endif
