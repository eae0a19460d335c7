#include "ids.h"

#include <sodium.h>
#include <string.h>

size_t b64url_len(size_t n)
{
    return sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING) - 1;
}

void b64url_encode(const uint8_t *in, size_t n, char *out)
{
    sodium_bin2base64(out, b64url_len(n) + 1, in, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

int b64url_decode(const char *s, size_t len, uint8_t *out, size_t maxout, size_t *outlen)
{
    /* libsodium 1.0.18 decodes bytes >= 0x80 as if they were base64 characters: check the
     * alphabet first so that one value has one spelling. */
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_'))
            return -1;
    }
    const char *end = NULL;
    if (sodium_base642bin(out, maxout, s, len, NULL, outlen, &end,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        end != s + len)
        return -1;
    /* Canonical only: the unused low bits of the last character must be zero, so that
     * one value has one spelling. */
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t tail = *outlen % 3;
    if (len > 0 && tail != 0) {
        unsigned v = (unsigned)(strchr(alphabet, s[len - 1]) - alphabet);
        unsigned unused_mask = tail == 1 ? 0x0f : 0x03;
        if (v & unused_mask)
            return -1;
    }
    return 0;
}

#define POOL_BYTES 4096

void random_bytes(void *out, size_t n)
{
    static _Thread_local uint8_t pool[POOL_BYTES];
    static _Thread_local size_t left;
    uint8_t *dst = out;
    if (n > POOL_BYTES / 4) {
        randombytes_buf(out, n);
        return;
    }
    while (n > 0) {
        if (left == 0) {
            randombytes_buf(pool, sizeof pool);
            left = sizeof pool;
        }
        size_t take = n < left ? n : left;
        uint8_t *src = pool + (POOL_BYTES - left);
        memcpy(dst, src, take);
        sodium_memzero(src, take);
        dst += take;
        n -= take;
        left -= take;
    }
}

void id_new(id_text out)
{
    uint8_t raw[ID_BYTES];
    random_bytes(raw, sizeof raw);
    b64url_encode(raw, sizeof raw, out);
    sodium_memzero(raw, sizeof raw);
}

bool id_valid(const char *s)
{
    uint8_t raw[ID_BYTES];
    size_t n = 0;
    if (strnlen(s, ID_TEXT_LEN + 1) != ID_TEXT_LEN)
        return false;
    return b64url_decode(s, ID_TEXT_LEN, raw, sizeof raw, &n) == 0 && n == ID_BYTES;
}

void name_new(name_text out)
{
    uint8_t raw[NAME_BYTES];
    random_bytes(raw, sizeof raw);
    b64url_encode(raw, sizeof raw, out);
}

void name_hash(const char *purpose, const void *data, size_t len, name_text out)
{
    uint8_t digest[NAME_BYTES];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof digest);
    /* The purpose and its NUL separate the domains ("session" ids never hash like "conn"). */
    crypto_generichash_update(&st, (const unsigned char *)purpose, strlen(purpose) + 1);
    crypto_generichash_update(&st, data, len);
    crypto_generichash_final(&st, digest, sizeof digest);
    b64url_encode(digest, sizeof digest, out);
}
