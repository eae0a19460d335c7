#include "pointer.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "ids.h"

#define TAG_BYTES 16
#define TAG_LABEL "fbconnect-pointer-2"
#define TAG_LABEL_1 "fbconnect-pointer-1" /* 0.2's "<record>/<generation>/<tag>": no business */
#define BUSINESS_MAX 19 /* digits of a business id */

/* The tag over the parts (business NULL: the 0.2 format, labelled apart). */
static void tag_of(const uint8_t key[SUBKEY_BYTES], const char *owner, const char *record_name,
                   const char *generation, const char *business, uint8_t out[TAG_BYTES])
{
    const char *label = business ? TAG_LABEL : TAG_LABEL_1;
    crypto_generichash_state st;
    crypto_generichash_init(&st, key, SUBKEY_BYTES, TAG_BYTES);
    /* Each part with its NUL: no two different tuples hash the same input. */
    crypto_generichash_update(&st, (const uint8_t *)label, strlen(label) + 1);
    crypto_generichash_update(&st, (const uint8_t *)owner, strlen(owner) + 1);
    crypto_generichash_update(&st, (const uint8_t *)record_name, strlen(record_name) + 1);
    crypto_generichash_update(&st, (const uint8_t *)generation, strlen(generation) + 1);
    if (business)
        crypto_generichash_update(&st, (const uint8_t *)business, strlen(business) + 1);
    crypto_generichash_final(&st, out, TAG_BYTES);
}

/* The business segment: "-" for none, else the id in decimal. */
static void business_text(int64_t business, char out[BUSINESS_MAX + 2])
{
    if (business > 0)
        snprintf(out, BUSINESS_MAX + 2, "%lld", (long long)business);
    else
        strcpy(out, "-");
}

char *pointer_make(struct arena *a, const struct keyring *kr, const char *owner,
                   const char *record_name, const char *generation, int64_t business)
{
    uint8_t tag[TAG_BYTES];
    char text[NAME_TEXT_LEN + 1], biz[BUSINESS_MAX + 2];
    business_text(business, biz);
    tag_of(kr->keys[0].pointer, owner, record_name, generation, biz, tag);
    b64url_encode(tag, sizeof tag, text);
    return arena_printf(a, "%s/%s/%s/%s", record_name, generation, biz, text);
}

/* "-" or 1 to BUSINESS_MAX digits without a leading zero, at most INT64_MAX: the id, 0 for
 * "-"; -1 when malformed. */
static int64_t business_parse(const char *s, size_t n)
{
    if (n == 1 && s[0] == '-')
        return 0;
    if (n == 0 || n > BUSINESS_MAX || s[0] < '1' || s[0] > '9')
        return -1;
    int64_t v = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (INT64_MAX - (s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
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
                                 const char **generation, int64_t *business)
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
        *business = 0;
        return POINTER_UNBOUND;
    }
    /* "<business>/<tag>", or 0.2's "<tag>" alone (verified as it was made, then reported
     * as POINTER_OLD_KEY so that it is made again in this format). */
    const char *biz = slash2 + 1, *slash3 = strchr(biz, '/');
    int64_t chosen = slash3 ? business_parse(biz, (size_t)(slash3 - biz)) : 0;
    if (chosen < 0)
        return POINTER_BAD;
    char *biz_text = slash3 ? arena_strndup(a, biz, (size_t)(slash3 - biz)) : NULL;
    uint8_t tag[TAG_BYTES], want[TAG_BYTES];
    size_t tag_len;
    const char *t = slash3 ? slash3 + 1 : biz;
    if (strlen(t) != NAME_TEXT_LEN || b64url_decode(t, strlen(t), tag, sizeof tag, &tag_len) != 0 ||
        tag_len != TAG_BYTES)
        return POINTER_BAD;
    for (size_t i = 0; i < kr->n; i++) {
        tag_of(kr->keys[i].pointer, owner, name, g, biz_text, want);
        if (sodium_memcmp(tag, want, TAG_BYTES) == 0) {
            *record_name = name;
            *generation = g;
            *business = chosen;
            return i == 0 && biz_text ? POINTER_OK : POINTER_OLD_KEY;
        }
    }
    return POINTER_BAD;
}
