#include "state.h"

#include <sodium.h>
#include <string.h>

#define VERSION 1
#define BIND_BYTES 16
#define HEAD_BYTES (1 + KID_BYTES + 32 + 8 + BIND_BYTES + BIND_BYTES + 2)
#define MAC_BYTES crypto_auth_BYTES

static void binding_of(const char *purpose, const char *value, uint8_t out[BIND_BYTES])
{
    if (!value) {
        memset(out, 0, BIND_BYTES);
        return;
    }
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, BIND_BYTES);
    crypto_generichash_update(&st, (const unsigned char *)purpose, strlen(purpose) + 1);
    crypto_generichash_update(&st, (const unsigned char *)value, strlen(value));
    crypto_generichash_final(&st, out, BIND_BYTES);
}

char *state_issue(struct arena *a, const struct keyring *kr, const char *session_id,
                  const char *site_user, const char *return_to, int64_t now)
{
    size_t rt_len = return_to ? strlen(return_to) : 0;
    if (rt_len > RETURN_TO_MAX)
        rt_len = 0;
    size_t total = HEAD_BYTES + rt_len + MAC_BYTES;
    uint8_t raw[HEAD_BYTES + RETURN_TO_MAX + MAC_BYTES];
    uint8_t *p = raw;
    const struct keyset *ks = &kr->keys[0];
    *p++ = VERSION;
    memcpy(p, ks->kid, KID_BYTES);
    p += KID_BYTES;
    random_bytes(p, 32);
    p += 32;
    uint64_t exp = (uint64_t)(now + STATE_TTL);
    for (int i = 7; i >= 0; i--)
        *p++ = (uint8_t)(exp >> (i * 8));
    binding_of("state-session", session_id, p);
    p += BIND_BYTES;
    binding_of("state-user", site_user, p);
    p += BIND_BYTES;
    *p++ = (uint8_t)(rt_len >> 8);
    *p++ = (uint8_t)rt_len;
    if (rt_len)
        memcpy(p, return_to, rt_len);
    p += rt_len;
    crypto_auth(p, raw, (unsigned long long)(p - raw), ks->state);
    char *text = arena_alloc(a, b64url_len(total) + 1);
    b64url_encode(raw, total, text);
    return text;
}

enum state_result state_verify(const struct keyring *kr, const char *text, size_t len,
                               const char *session_id, const char *site_user, int64_t now,
                               struct state_claims *out)
{
    uint8_t raw[HEAD_BYTES + RETURN_TO_MAX + MAC_BYTES];
    size_t n = 0;
    if (len > STATE_TEXT_MAX || len < b64url_len(HEAD_BYTES + MAC_BYTES) ||
        b64url_decode(text, len, raw, sizeof raw, &n) != 0 || n < HEAD_BYTES + MAC_BYTES ||
        raw[0] != VERSION)
        return STATE_MALFORMED;
    size_t rt_len = ((size_t)raw[HEAD_BYTES - 2] << 8) | raw[HEAD_BYTES - 1];
    if (rt_len > RETURN_TO_MAX || n != HEAD_BYTES + rt_len + MAC_BYTES)
        return STATE_MALFORMED;
    const struct keyset *ks = keyring_find(kr, raw + 1);
    if (!ks || crypto_auth_verify(raw + n - MAC_BYTES, raw, n - MAC_BYTES, ks->state) != 0)
        return STATE_FORGED;

    const uint8_t *p = raw + 1 + KID_BYTES;
    memcpy(out->nonce, p, 32);
    p += 32;
    uint64_t exp = 0;
    for (int i = 0; i < 8; i++)
        exp = (exp << 8) | *p++;
    out->expires = (int64_t)exp;
    if (out->expires < now)
        return STATE_EXPIRED;

    uint8_t expect[BIND_BYTES];
    if (!session_id)
        return STATE_OTHER_SESSION;
    binding_of("state-session", session_id, expect);
    if (sodium_memcmp(expect, p, BIND_BYTES) != 0)
        return STATE_OTHER_SESSION;
    p += BIND_BYTES;
    binding_of("state-user", site_user, expect);
    if (sodium_memcmp(expect, p, BIND_BYTES) != 0)
        return STATE_OTHER_USER;
    p += BIND_BYTES + 2;
    memcpy(out->return_to, p, rt_len);
    out->return_to[rt_len] = '\0';
    if (rt_len && !url_return_to_valid(out->return_to, rt_len))
        return STATE_MALFORMED;
    return STATE_OK;
}

void state_used_id(const struct state_claims *claims, name_text out)
{
    name_hash("state", claims->nonce, sizeof claims->nonce, out);
}
