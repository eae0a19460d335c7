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

/* A business the FreshBooks user belongs to (one of users/me's business_memberships):
 * the business's own id (not the membership's), its uuid, name and account_id, and the
 * user's role in it.  Strings are "" when FreshBooks gave none. */
struct business {
    int64_t id;
    const char *uuid;
    const char *name;
    const char *account_id;
    const char *role;
};

struct identity {
    int64_t user_id;
    const char *email, *first_name, *last_name;
    struct business *businesses;
    size_t n_businesses;
};

#define PAIR_ALTERNATES 8

struct token_pair {
    const char *access_token;
    const char *refresh_token;
    const char *scope; /* "" when FreshBooks sent none */
    /* created_at: FreshBooks' issue time (whole seconds), used only to order pairs;
     * expires_at: on fbconnect's clock. */
    int64_t created_at, expires_at;
    /* Refresh tokens of other pairs FreshBooks issued in the same second as this one:
     * created_at cannot tell which of them is the live one, so if this pair's refresh
     * token is refused each of these is tried once before the user must reconnect. */
    const char *alternates[PAIR_ALTERNATES];
    size_t n_alternates;
};

#define GENERATION_LEN 22 /* 128 random bits, base64url */

/* Why a connection needs connecting again (one name table: reconnect_reason_name). */
enum reconnect_reason {
    RECONNECT_REFRESH_REFUSED, /* FreshBooks refused the refresh token (invalid_grant) */
    RECONNECT_SCOPES_CHANGED,  /* FBCONNECT_SCOPES asks for scopes the pair was not granted */
    RECONNECT__MAX
};

/* "refresh_refused" or "scopes_changed", as /status, the 409 and the metrics say it. */
const char *reconnect_reason_name(enum reconnect_reason r);

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
    enum reconnect_reason reconnect_reason; /* why, when reconnect_required */
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

/* The one rule of which pair a record keeps when `fresh` (just issued by FreshBooks)
 * meets `cur` (what the record holds): false when cur's pair was issued later and is not
 * refused (fresh is dead already: keep cur).  Otherwise true, with *out = fresh — and, when
 * cur's pair was issued in the same second and is not refused, cur's refresh token and
 * alternates as fresh's alternates (strings shared with cur and fresh). */
bool record_merge_pair(const struct connection *cur, const struct token_pair *fresh,
                       struct token_pair *out);

/* A deep copy of src whose strings live in `a`. */
void record_copy(struct arena *a, const struct connection *src, struct connection *dst);

/* A stored value's version: "r1:" then 1 to RECORD_VERSION_DIGITS decimal digits without
 * a leading zero, then ":" (few enough digits that Redis's Lua, whose numbers are doubles,
 * reads them exactly; the compare-and-set scripts in store.c read versions by this same
 * rule).  Returns it, or 0 for a value without one: such a value is overwritten as if no
 * record were there. */
#define RECORD_VERSION_DIGITS 15
#define RECORD_VERSION_MAX UINT64_C(999999999999999)
uint64_t record_version(const char *data, size_t len);

/* The random nonce of a stored value's seal (every write seals anew, so it names these
 * exact sealed bytes: a cache key), pointing into data; NULL when there is none. */
#define RECORD_SEAL_NONCE_BYTES 24
const uint8_t *record_seal_nonce(const char *data, size_t len);

/* The same rule as record_version(), in Lua, for the compare-and-set scripts in Redis:
 * version_of(value) is the version as a string (so no number goes through Lua's doubles),
 * "0" for a value without one (overwritable), nil for no value. */
#define RECORD_STR2(x) #x
#define RECORD_STR(x) RECORD_STR2(x)
#define RECORD_LUA_VERSION_OF                                                                \
    "local function version_of(v)\n"                                                          \
    "  if not v then return nil end\n"                                                        \
    "  local d = string.match(v, '^r1:([1-9]%d*):')\n"                                        \
    "  if d and #d <= " RECORD_STR(RECORD_VERSION_DIGITS) " then return d end\n"              \
    "  return '0'\n"                                                                          \
    "end\n"

/* The version a new record starts at: random in [1, 2^48), so a record deleted and made
 * again does not count from 1 again, where a writer still holding the old record's
 * version could compare-and-set over the new one. */
uint64_t record_first_version(void);

/* The version after `version` (never beyond what record_version reads). */
uint64_t record_next_version(uint64_t version);

#endif
