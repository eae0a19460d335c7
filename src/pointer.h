/* pointer.h — the owner pointer: the value of an owner's key (s:<hash of session id> or
 * u:<hash of site user>) naming the connection record it belongs to and the business the
 * owner chose, bound to that owner.
 *
 * Format: "<record name>/<generation>/<business>/<tag>": the chosen business's id in
 * decimal, or "-" for none; the tag 22 base64url characters of a keyed BLAKE2b-128 (the
 * pointer subkey) over the owner's key name, the record name, the generation and the
 * business.  A pointer value copied under another owner's key, or edited, does not
 * verify, so whoever can write to Redis can delete or roll back a connection but not hand
 * one owner's connection — or choice — to another.  (An unbound "<record>/<generation>"
 * pointer from before 0.2 is refused; `fbconnect rekey --bind-unbound`, once, binds
 * those.  A 0.2 pointer, "<record>/<generation>/<tag>", verifies as POINTER_OLD_KEY with no
 * business, and is made again in this format at its next use or by `fbconnect rekey`.) */
#ifndef FBC_POINTER_H
#define FBC_POINTER_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "keys.h"
#include "record.h"

#define POINTER_RECORD_MAX 64 /* longest record name a pointer may carry */

/* The pointer for owner → (record_name, generation, business id; 0: none), signed with the
 * current key, in `a`. */
char *pointer_make(struct arena *a, const struct keyring *kr, const char *owner,
                   const char *record_name, const char *generation, int64_t business);

enum pointer_result {
    POINTER_OK,      /* current key, current format */
    POINTER_OLD_KEY, /* valid, with an old key or in 0.2's format: make again with pointer_make */
    POINTER_UNBOUND, /* a well-formed pointer without a tag (before 0.2): refused */
    POINTER_BAD,     /* malformed, or its tag does not verify for this owner: refused */
};

/* Checks a pointer read from owner's key.  On POINTER_OK and POINTER_OLD_KEY, and on
 * POINTER_UNBOUND (for `rekey`'s migration only: no business), fills record_name and
 * generation (in `a`) and *business (0: none). */
enum pointer_result pointer_open(struct arena *a, const struct keyring *kr, const char *owner,
                                 const char *text, const char **record_name,
                                 const char **generation, int64_t *business);

#endif
