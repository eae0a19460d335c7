/* seal.h — authenticated encryption of records at rest (XChaCha20-Poly1305 with the
 * keyring's seal subkey).  Sealed form: kid(4) | nonce(24) | ciphertext | tag(16).  The
 * caller's associated data (the record's Redis key) binds a sealed value to its place:
 * moved under another key, it no longer opens. */
#ifndef FBC_SEAL_H
#define FBC_SEAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "keys.h"

#define SEAL_OVERHEAD (KID_BYTES + 24 + 16)

/* Appends the sealed form of pt to out, with the current key. */
void seal_box(const struct keyring *kr, const void *ad, size_t adlen, const void *pt,
              size_t ptlen, struct buf *out);

/* Appends the plaintext of a sealed value to out.  Returns 0, or -1 when the key is
 * unknown or the value was tampered with (out unchanged).  *old_key tells whether an old
 * key opened it (the caller re-seals). */
int seal_open(const struct keyring *kr, const void *ad, size_t adlen, const void *in,
              size_t inlen, struct buf *out, bool *old_key);

#endif
