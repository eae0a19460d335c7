/* record.h — the connection record: one per FreshBooks identity (or per session while the
 * identity is unknown), holding the token pair and who it belongs to.
 *
 * Stored in Redis as one string: "r1:<version>:" followed by the sealed JSON of the
 * record.  The version is plain so a Lua script can compare-and-set on it; everything else,
 * identity included, is sealed with the record's Redis key (without prefix) as associated
 * data. */
#ifndef FBC_RECORD_H
#define FBC_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "keys.h"

struct business {
    int64_t id;
    const char *name;
    const char *account_id;
};

struct identity {
    int64_t user_id;
    const char *email, *first_name, *last_name;
    struct business *businesses;
    size_t n_businesses;
};

struct token_pair {
    const char *access_token;
    const char *refresh_token;
    const char *scope; /* "" when FreshBooks sent none */
    int64_t created_at, expires_at;
};

#define GENERATION_LEN 22 /* 128 random bits, base64url */

struct connection {
    uint64_t version; /* compare-and-set version; 0: not stored yet */
    /* Names this connection from its first connect until it is deleted: owner pointers
     * carry it, so a pointer left over from a deleted connection never reaches a later
     * connection of the same FreshBooks identity. */
    char generation[GENERATION_LEN + 1];
    struct token_pair pair;
    bool has_identity;
    struct identity ident;
    bool reconnect_required;
    int64_t connected_at;
    bool opened_with_old_key; /* set by record_decode: re-seal with the current key */
};

enum record_result { RECORD_OK, RECORD_CORRUPT };

/* Seals c as version `version` for the record named record_name, into out (reset first). */
void record_encode(const struct keyring *kr, const char *record_name, const struct connection *c,
                   uint64_t version, struct buf *out);

/* Opens a stored record.  Strings are allocated in `a`.  RECORD_CORRUPT for a value that
 * does not parse, does not open with any known key, or was moved from another name. */
enum record_result record_decode(struct arena *a, const struct keyring *kr,
                                 const char *record_name, const char *data, size_t len,
                                 struct connection *out);

/* A deep copy of src whose strings live in `a`. */
void record_copy(struct arena *a, const struct connection *src, struct connection *dst);

/* The version in a stored value's header, or 0 when it has none. */
uint64_t record_version(const char *data, size_t len);

/* Rewrites the version in an encoded record's header (the sealed part does not cover it):
 * for storing again a value encoded earlier. */
void record_set_version(struct buf *value, uint64_t version);

#endif
