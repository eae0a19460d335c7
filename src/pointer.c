#include "pointer.h"

#include <sodium.h>
#include <string.h>

#include "ids.h"

#define TAG_BYTES 16
#define TAG_LABEL "fbconnect-pointer-1"

static void tag_of(const uint8_t key[SUBKEY_BYTES], const char *owner, const char *record_name,
                   const char *generation, uint8_t out[TAG_BYTES])
{
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, SUBKEY_BYTES, TAG_BYTES);
    /* Each part with its NUL: no two different triples hash the same input. */
    crypto_generichash_update(&st, (const uint8_t *)TAG_LABEL, sizeof TAG_LABEL);
    crypto_generichash_update(&st, (const uint8_t *)owner, strlen(owner) + 1);
    crypto_generichash_update(&st, (const uint8_t *)record_name, strlen(record_name) + 1);
    crypto_generichash_update(&st, (const uint8_t *)generation, strlen(generation) + 1);
    crypto_generichash_final(&st, out, TAG_BYTES);
}

char *pointer_make(struct arena *a, const struct keyring *kr, const char *owner,
                   const char *record_name, const char *generation)
{
    uint8_t tag[TAG_BYTES];
    char text[NAME_TEXT_LEN + 1];
    tag_of(kr->keys[0].pointer, owner, record_name, generation, tag);
    b64url_encode(tag, sizeof tag, text);
    return arena_printf(a, "%s/%s/%s", record_name, generation, text);
}

/* A record name as fbconnect makes them: "c:" or "p:" and a base64url name. */
static bool record_name_ok(const char *s, size_t n)
{
    if (n < 3 || n > POINTER_RECORD_MAX || (s[0] != 'c' && s[0] != 'p') || s[1] != ':')
        return false;
    for (size_t i = 2; i < n; i++)
        if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", s[i]))
            return false;
    return true;
}

enum pointer_result pointer_open(struct arena *a, const struct keyring *kr, const char *owner,
                                 const char *text, const char **record_name,
                                 const char **generation)
{
    const char *slash = strchr(text, '/');
    if (!slash || !record_name_ok(text, (size_t)(slash - text)))
        return POINTER_BAD;
    const char *gen = slash + 1, *slash2 = strchr(gen, '/');
    size_t gen_len = slash2 ? (size_t)(slash2 - gen) : strlen(gen);
    uint8_t raw[TAG_BYTES];
    size_t raw_len;
    if (gen_len != GENERATION_LEN || b64url_decode(gen, gen_len, raw, sizeof raw, &raw_len) != 0)
        return POINTER_BAD;
    char *name = arena_strndup(a, text, (size_t)(slash - text));
    char *g = arena_strndup(a, gen, gen_len);
    if (!slash2) {
        *record_name = name;
        *generation = g;
        return POINTER_UNBOUND;
    }
    uint8_t tag[TAG_BYTES], want[TAG_BYTES];
    size_t tag_len;
    const char *t = slash2 + 1;
    if (strlen(t) != NAME_TEXT_LEN || b64url_decode(t, strlen(t), tag, sizeof tag, &tag_len) != 0 ||
        tag_len != TAG_BYTES)
        return POINTER_BAD;
    for (size_t i = 0; i < kr->n; i++) {
        tag_of(kr->keys[i].pointer, owner, name, g, want);
        if (sodium_memcmp(tag, want, TAG_BYTES) == 0) {
            *record_name = name;
            *generation = g;
            return i == 0 ? POINTER_OK : POINTER_OLD_KEY;
        }
    }
    return POINTER_BAD;
}
