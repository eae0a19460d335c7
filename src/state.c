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

/* state_verify against any of n session bindings (n == 0: no session). */
static enum state_result verify(const struct keyring *kr, const char *text, size_t len,
                                const uint8_t (*sessions)[BIND_BYTES], size_t n_sessions,
                                const char *site_user, int64_t now, struct state_claims *out)
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
    bool ours = false;
    for (size_t i = 0; i < n_sessions; i++) /* zeros: "no session", never anyone's */
        ours |= !sodium_is_zero(sessions[i], BIND_BYTES) &&
                sodium_memcmp(sessions[i], p, BIND_BYTES) == 0;
    if (!ours)
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

enum state_result state_verify(const struct keyring *kr, const char *text, size_t len,
                               const char *session_id, const char *site_user, int64_t now,
                               struct state_claims *out)
{
    uint8_t mine[1][BIND_BYTES];
    if (session_id)
        binding_of("state-session", session_id, mine[0]);
    return verify(kr, text, len, mine, session_id ? 1 : 0, site_user, now, out);
}

void state_session_binding(const char *session_id, char out[STATE_BINDING_TEXT_LEN + 1])
{
    uint8_t b[BIND_BYTES];
    binding_of("state-session", session_id, b);
    b64url_encode(b, sizeof b, out);
}

enum state_result state_verify_earlier(const struct keyring *kr, const char *text, size_t len,
                                       const char *earlier, const char *site_user, int64_t now,
                                       struct state_claims *out)
{
    uint8_t sessions[STATE_EARLIER_MAX][BIND_BYTES];
    size_t n = 0;
    for (const char *p = earlier; p && *p && n < STATE_EARLIER_MAX;) {
        size_t k = strcspn(p, ".");
        size_t got = 0;
        if (k == STATE_BINDING_TEXT_LEN &&
            b64url_decode(p, k, sessions[n], BIND_BYTES, &got) == 0 && got == BIND_BYTES)
            n++;
        p += k;
        p += *p == '.';
    }
    return verify(kr, text, len, sessions, n, site_user, now, out);
}

void state_used_id(const struct state_claims *claims, name_text out)
{
    name_hash("state", claims->nonce, sizeof claims->nonce, out);
}

bool state_pkce_verifier(const struct keyring *kr, const char *state, char out[STATE_PKCE_LEN + 1])
{
    /* The signing key's id is the 4 bytes after the version byte. */
    uint8_t head[1 + KID_BYTES + 2];
    size_t got = 0;
    size_t n = strlen(state);
    size_t take = n < 8 ? n : 8; /* 8 base64url characters hold the first 6 bytes */
    if (take < 8 || b64url_decode(state, take, head, sizeof head, &got) != 0 || got < 1 + KID_BYTES)
        return false;
    const struct keyset *ks = keyring_find(kr, head + 1);
    if (!ks)
        return false;
    uint8_t mac[crypto_auth_hmacsha512256_BYTES];
    crypto_auth_hmacsha512256_state st;
    crypto_auth_hmacsha512256_init(&st, ks->pkce, SUBKEY_BYTES);
    crypto_auth_hmacsha512256_update(&st, (const uint8_t *)"pkce", 5);
    crypto_auth_hmacsha512256_update(&st, (const uint8_t *)state, n);
    crypto_auth_hmacsha512256_final(&st, mac);
    b64url_encode(mac, sizeof mac, out); /* 32 bytes: 43 characters */
    sodium_memzero(mac, sizeof mac);
    return true;
}

void state_pkce_challenge(const char *verifier, char out[STATE_PKCE_LEN + 1])
{
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const uint8_t *)verifier, strlen(verifier));
    b64url_encode(digest, sizeof digest, out);
}
