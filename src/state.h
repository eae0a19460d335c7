/* state.h — the OAuth `state`: a self-contained, MAC'd token carried in the authorize
 * link, so viewing the connect page writes nothing to Redis.
 *
 * Layout (then unpadded base64url):
 *   version(1)=1 | kid(4) | nonce(32, random) | expires(8, big-endian epoch s) |
 *   session binding(16) | site-user binding(16) | return_to length(2) | return_to |
 *   HMAC-SHA512-256 over everything before it (32), with the state subkey of kid.
 * Bindings are BLAKE2b-128 of the session id / site user name, never the values. */
#ifndef FBC_STATE_H
#define FBC_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "ids.h"
#include "keys.h"
#include "url.h"

#define STATE_TTL 600                       /* seconds a state may be used */
#define STATE_TEXT_MAX 1600                 /* longer `state` values are malformed */

enum state_result {
    STATE_OK,
    STATE_MALFORMED,     /* not a state at all (400) */
    STATE_FORGED,        /* unknown key or bad MAC (400) */
    STATE_EXPIRED,       /* older than STATE_TTL (400) */
    STATE_OTHER_SESSION, /* genuine, but issued to another browser session (403) */
    STATE_OTHER_USER,    /* genuine, but issued to another site user (403) */
};

struct state_claims {
    uint8_t nonce[32];
    int64_t expires;
    char return_to[RETURN_TO_MAX + 1]; /* "" when none */
};

/* Issues a state for this browser session (and site user, or NULL) valid STATE_TTL
 * seconds from now.  return_to must already be valid (url_return_to_valid) or NULL.
 * Returns base64url text allocated in `a`. */
char *state_issue(struct arena *a, const struct keyring *kr, const char *session_id,
                  const char *site_user, const char *return_to, int64_t now);

/* Checks a state against this browser session (NULL when the browser has none) and site
 * user.  Checks in order: format, key and MAC, expiry, session, site user; fills *out on
 * STATE_OK. */
enum state_result state_verify(const struct keyring *kr, const char *text, size_t len,
                               const char *session_id, const char *site_user, int64_t now,
                               struct state_claims *out);

/* A browser's earlier session ids, as the state binds them (never the ids): the text of
 * one binding, 22 base64url characters.  A connect replaces the session id; the browser
 * keeps its earlier ones' bindings (in a cookie only the callback sees), so a state it was
 * given before the replacement is still its own. */
#define STATE_BINDING_TEXT_LEN 22
#define STATE_EARLIER_MAX 3
void state_session_binding(const char *session_id, char out[STATE_BINDING_TEXT_LEN + 1]);

/* state_verify for a state issued to one of this browser's earlier sessions: `earlier` is
 * up to STATE_EARLIER_MAX bindings joined by '.' (malformed ones skipped).  The same
 * checks, in the same order, with the session check against those bindings. */
enum state_result state_verify_earlier(const struct keyring *kr, const char *text, size_t len,
                                       const char *earlier, const char *site_user, int64_t now,
                                       struct state_claims *out);

/* PKCE (RFC 7636, S256), with nothing stored: a state's code_verifier is base64url of
 * HMAC-SHA512-256 over the state's text with the PKCE subkey of the key that signed it —
 * 43 characters, out needs STATE_PKCE_LEN + 1.  False when no configured key signed it. */
#define STATE_PKCE_LEN 43
bool state_pkce_verifier(const struct keyring *kr, const char *state, char out[STATE_PKCE_LEN + 1]);
/* The S256 code_challenge of a verifier: base64url(SHA-256(verifier)), 43 characters. */
void state_pkce_challenge(const char *verifier, char out[STATE_PKCE_LEN + 1]);

/* The Redis name of a state's single-use marker: name_hash("state", nonce). */
void state_used_id(const struct state_claims *claims, name_text out);

#endif
