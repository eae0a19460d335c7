#include "seal.h"

#include "ids.h"

#include <sodium.h>
#include <string.h>

#define NONCE_BYTES crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define TAG_BYTES crypto_aead_xchacha20poly1305_ietf_ABYTES

void seal_box(const struct keyring *kr, const void *ad, size_t adlen, const void *pt,
              size_t ptlen, struct buf *out)
{
    const struct keyset *ks = &kr->keys[0];
    uint8_t head[KID_BYTES + NONCE_BYTES];
    memcpy(head, ks->kid, KID_BYTES);
    random_bytes(head + KID_BYTES, NONCE_BYTES);
    buf_append(out, head, sizeof head);
    /* Make room, then encrypt in place at the end of the buffer. */
    size_t at = out->len;
    buf_append(out, pt, ptlen);
    buf_append(out, head, TAG_BYTES); /* placeholder bytes for the tag */
    unsigned long long clen = 0;
    crypto_aead_xchacha20poly1305_ietf_encrypt((unsigned char *)out->data + at, &clen,
                                               (const unsigned char *)out->data + at, ptlen, ad,
                                               adlen, NULL, head + KID_BYTES, ks->seal);
}

int seal_open(const struct keyring *kr, const void *ad, size_t adlen, const void *in,
              size_t inlen, struct buf *out, bool *old_key)
{
    const uint8_t *p = in;
    if (inlen < SEAL_OVERHEAD)
        return -1;
    const struct keyset *ks = keyring_find(kr, p);
    if (!ks)
        return -1;
    size_t ptlen = inlen - SEAL_OVERHEAD;
    size_t at = out->len;
    buf_append(out, p + KID_BYTES + NONCE_BYTES, ptlen); /* room for the plaintext */
    unsigned long long mlen = 0;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)out->data + at, &mlen, NULL,
                                                   p + KID_BYTES + NONCE_BYTES, ptlen + TAG_BYTES,
                                                   ad, adlen, p + KID_BYTES, ks->seal) != 0) {
        sodium_memzero(out->data + at, ptlen);
        out->len = at;
        out->data[at] = '\0';
        return -1;
    }
    out->data[at + ptlen] = '\0';
    if (old_key)
        *old_key = ks != &kr->keys[0];
    return 0;
}
