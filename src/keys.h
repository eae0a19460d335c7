/* keys.h — the keyring: subkeys derived from the master key and from every old master key
 * still accepted (FBCONNECT_OLD_SECRET_KEYS).  keys[0] is current: it seals and signs;
 * the others only open and verify. */
#ifndef FBC_KEYS_H
#define FBC_KEYS_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define KID_BYTES 4
#define SUBKEY_BYTES 32

struct keyset {
    uint8_t kid[KID_BYTES];     /* names the master key in records and tokens */
    uint8_t seal[SUBKEY_BYTES]; /* XChaCha20-Poly1305 for connection records */
    uint8_t state[SUBKEY_BYTES];/* HMAC-SHA512-256 for OAuth state */
    uint8_t csrf[SUBKEY_BYTES]; /* HMAC-SHA512-256 for the disconnect form */
    uint8_t pointer[SUBKEY_BYTES]; /* keyed BLAKE2b binding owner pointers to their owner */
    uint8_t pkce[SUBKEY_BYTES];    /* HMAC-SHA512-256 deriving a state's PKCE code_verifier */
};

struct keyring {
    struct keyset keys[1 + CONFIG_MAX_OLD_KEYS];
    size_t n;
};

/* Derives every subkey (crypto_kdf, context "fbconnct"). */
void keyring_init(struct keyring *kr, const uint8_t current[SECRET_KEY_BYTES],
                  const uint8_t old[][SECRET_KEY_BYTES], size_t n_old);
/* The keyset whose kid matches, or NULL. */
const struct keyset *keyring_find(const struct keyring *kr, const uint8_t kid[KID_BYTES]);
void keyring_wipe(struct keyring *kr);

#endif
