#include "keys.h"

#include <sodium.h>
#include <string.h>

#define KDF_CONTEXT "fbconnct"

enum {
    SUBKEY_SEAL = 1,
    SUBKEY_STATE = 2,
    SUBKEY_CSRF = 3,
    SUBKEY_KID = 4,
    SUBKEY_POINTER = 5,
    SUBKEY_PKCE = 6
};

static void derive(struct keyset *ks, const uint8_t master[SECRET_KEY_BYTES])
{
    uint8_t kid[16];
    crypto_kdf_derive_from_key(ks->seal, SUBKEY_BYTES, SUBKEY_SEAL, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(ks->state, SUBKEY_BYTES, SUBKEY_STATE, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(ks->csrf, SUBKEY_BYTES, SUBKEY_CSRF, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(ks->pointer, SUBKEY_BYTES, SUBKEY_POINTER, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(ks->pkce, SUBKEY_BYTES, SUBKEY_PKCE, KDF_CONTEXT, master);
    crypto_kdf_derive_from_key(kid, sizeof kid, SUBKEY_KID, KDF_CONTEXT, master);
    memcpy(ks->kid, kid, KID_BYTES);
}

void keyring_init(struct keyring *kr, const uint8_t current[SECRET_KEY_BYTES],
                  const uint8_t old[][SECRET_KEY_BYTES], size_t n_old)
{
    memset(kr, 0, sizeof *kr);
    derive(&kr->keys[0], current);
    kr->n = 1;
    for (size_t i = 0; i < n_old && kr->n < sizeof kr->keys / sizeof kr->keys[0]; i++)
        derive(&kr->keys[kr->n++], old[i]);
}

const struct keyset *keyring_find(const struct keyring *kr, const uint8_t kid[KID_BYTES])
{
    for (size_t i = 0; i < kr->n; i++)
        if (sodium_memcmp(kr->keys[i].kid, kid, KID_BYTES) == 0)
            return &kr->keys[i];
    return NULL;
}

void keyring_wipe(struct keyring *kr)
{
    sodium_memzero(kr, sizeof *kr);
}
