/* test_pointer.c — owner pointers: bound to their owner, record, generation and chosen
 * business; copies, edits, unbound and malformed pointers refused; key rotation; 0.2's
 * format still opens (to be made again). */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "arena.h"
#include "ids.h"
#include "keys.h"
#include "pointer.h"

static struct keyring ring_a, ring_b_old_a, ring_b;
static struct arena arena;

#define GEN "AAAAAAAAAAAAAAAAAAAAAA"
#define GEN2 "BBBBBBBBBBBBBBBBBBBBBA"
#define OWNER "s:victim-session-hash0"
#define OTHER "s:attacker-session-has"

static int group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    uint8_t ka[SECRET_KEY_BYTES], kb[SECRET_KEY_BYTES];
    static uint8_t olds[1][SECRET_KEY_BYTES];
    for (size_t i = 0; i < SECRET_KEY_BYTES; i++) {
        ka[i] = (uint8_t)(3 * i + 5);
        kb[i] = (uint8_t)(0x80 ^ i);
    }
    memcpy(olds[0], ka, sizeof ka);
    keyring_init(&ring_a, ka, NULL, 0);
    keyring_init(&ring_b_old_a, kb, (const uint8_t(*)[SECRET_KEY_BYTES])olds, 1);
    keyring_init(&ring_b, kb, NULL, 0);
    arena_init(&arena, 4096);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    arena_destroy(&arena);
    return 0;
}

static int reset(void **state)
{
    (void)state;
    arena_reset(&arena);
    return 0;
}

static int64_t last_business;

static enum pointer_result open_as(const struct keyring *kr, const char *owner, const char *text,
                                   const char **name, const char **gen)
{
    last_business = -1;
    return pointer_open(&arena, kr, owner, text, name, gen, &last_business);
}

static void test_pointer_roundtrip(void **state)
{
    (void)state;
    char *p = pointer_make(&arena, &ring_a, OWNER, "c:recordname012345678", GEN, 0);
    assert_int_equal(strncmp(p, "c:recordname012345678/" GEN "/-/", 47), 0);
    assert_int_equal(strlen(p), strlen("c:recordname012345678/" GEN "/-/") + 22);
    const char *name = NULL, *gen = NULL;
    assert_int_equal(open_as(&ring_a, OWNER, p, &name, &gen), POINTER_OK);
    assert_string_equal(name, "c:recordname012345678");
    assert_string_equal(gen, GEN);
    assert_int_equal(last_business, 0);
    /* the same for a site user and a pending record */
    p = pointer_make(&arena, &ring_a, "u:someone", "p:pendingrecord", GEN2, 0);
    assert_int_equal(open_as(&ring_a, "u:someone", p, &name, &gen), POINTER_OK);
    assert_string_equal(name, "p:pendingrecord");
    /* with a chosen business, the largest id too */
    p = pointer_make(&arena, &ring_a, OWNER, "c:rec", GEN, 77);
    assert_int_equal(strncmp(p, "c:rec/" GEN "/77/", 32), 0);
    assert_int_equal(open_as(&ring_a, OWNER, p, &name, &gen), POINTER_OK);
    assert_int_equal(last_business, 77);
    p = pointer_make(&arena, &ring_a, OWNER, "c:rec", GEN, INT64_MAX);
    assert_int_equal(open_as(&ring_a, OWNER, p, &name, &gen), POINTER_OK);
    assert_int_equal(last_business, INT64_MAX);
}

/* One owner's choice cannot be edited or moved: the business is under the tag. */
static void test_pointer_business_bound(void **state)
{
    (void)state;
    char *p = pointer_make(&arena, &ring_a, OWNER, "c:rec", GEN, 77);
    char edited[256];
    const char *name, *gen;
    const char *tag = strrchr(p, '/');
    snprintf(edited, sizeof edited, "c:rec/" GEN "/91%s", tag);
    assert_int_equal(open_as(&ring_a, OWNER, edited, &name, &gen), POINTER_BAD);
    snprintf(edited, sizeof edited, "c:rec/" GEN "/-%s", tag);
    assert_int_equal(open_as(&ring_a, OWNER, edited, &name, &gen), POINTER_BAD);
    snprintf(edited, sizeof edited, "c:rec/" GEN "%s", tag); /* as if 0.2's, without it */
    assert_int_equal(open_as(&ring_a, OWNER, edited, &name, &gen), POINTER_BAD);
    assert_int_equal(open_as(&ring_a, OTHER, p, &name, &gen), POINTER_BAD);
}

/* A pointer 0.2 made ("<record>/<generation>/<tag>", its own label) opens as one to make
 * again, with no business. */
static void test_pointer_from_0_2(void **state)
{
    (void)state;
    uint8_t tag[16];
    crypto_generichash_state st;
    crypto_generichash_init(&st, ring_a.keys[0].pointer, SUBKEY_BYTES, sizeof tag);
    const char *parts[] = {"fbconnect-pointer-1", OWNER, "c:rec", GEN};
    for (size_t i = 0; i < 4; i++)
        crypto_generichash_update(&st, (const uint8_t *)parts[i], strlen(parts[i]) + 1);
    crypto_generichash_final(&st, tag, sizeof tag);
    char text[23], old[128];
    b64url_encode(tag, sizeof tag, text);
    snprintf(old, sizeof old, "c:rec/" GEN "/%s", text);
    const char *name, *gen;
    assert_int_equal(open_as(&ring_a, OWNER, old, &name, &gen), POINTER_OLD_KEY);
    assert_string_equal(name, "c:rec");
    assert_string_equal(gen, GEN);
    assert_int_equal(last_business, 0);
    assert_int_equal(open_as(&ring_a, OTHER, old, &name, &gen), POINTER_BAD);
}

/* The review's attack: the victim's pointer value copied under another owner's key. */
static void test_pointer_copied_to_another_owner(void **state)
{
    (void)state;
    char *p = pointer_make(&arena, &ring_a, OWNER, "c:victimrecord", GEN, 0);
    const char *name, *gen;
    assert_int_equal(open_as(&ring_a, OTHER, p, &name, &gen), POINTER_BAD);
    assert_int_equal(open_as(&ring_a, "u:" OWNER, p, &name, &gen), POINTER_BAD);
    /* nor may its record or generation be swapped under the same tag */
    char *tag = strrchr(p, '/');
    char swapped[256];
    snprintf(swapped, sizeof swapped, "c:otherrecord/%s/-%s", GEN, tag);
    assert_int_equal(open_as(&ring_a, OWNER, swapped, &name, &gen), POINTER_BAD);
    snprintf(swapped, sizeof swapped, "c:victimrecord/%s/-%s", GEN2, tag);
    assert_int_equal(open_as(&ring_a, OWNER, swapped, &name, &gen), POINTER_BAD);
    /* every single-character edit of the tag fails */
    size_t at = (size_t)(tag - p) + 1;
    for (size_t i = at; p[i]; i++) {
        char copy[256];
        snprintf(copy, sizeof copy, "%s", p);
        copy[i] = copy[i] == 'A' ? 'B' : 'A';
        assert_int_equal(open_as(&ring_a, OWNER, copy, &name, &gen), POINTER_BAD);
    }
    /* a key nobody configured does not verify it either */
    assert_int_equal(open_as(&ring_b, OWNER, p, &name, &gen), POINTER_BAD);
}

static void test_pointer_rotation(void **state)
{
    (void)state;
    char *p = pointer_make(&arena, &ring_a, OWNER, "c:rec", GEN, 42);
    const char *name, *gen;
    assert_int_equal(open_as(&ring_b_old_a, OWNER, p, &name, &gen), POINTER_OLD_KEY);
    assert_string_equal(name, "c:rec");
    assert_int_equal(last_business, 42);
    char *again = pointer_make(&arena, &ring_b_old_a, OWNER, name, gen, last_business);
    assert_int_equal(open_as(&ring_b_old_a, OWNER, again, &name, &gen), POINTER_OK);
    assert_int_equal(open_as(&ring_b, OWNER, again, &name, &gen), POINTER_OK);
}

struct bad_case {
    const char *text;
    enum pointer_result want;
};

static const struct bad_case bad_cases[] = {
    {"c:rec/" GEN, POINTER_UNBOUND}, /* before 0.2 */
    {"p:rec/" GEN, POINTER_UNBOUND},
    {"", POINTER_BAD},
    {"c:rec", POINTER_BAD},
    {"c:rec/", POINTER_BAD},
    {"c:rec/short", POINTER_BAD},
    {"c:rec/" GEN "x", POINTER_BAD},
    {"c:rec/" GEN "/", POINTER_BAD},
    {"c:rec/" GEN "/tooshort", POINTER_BAD},
    {"c:rec/" GEN "/AAAAAAAAAAAAAAAAAAAAAA/extra", POINTER_BAD},
    {"x:rec/" GEN "/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:/" GEN "/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:r.c/" GEN "/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:rec/AAAAAAAAAAAAAAAAAAAAA!/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:rec/" GEN "/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD}, /* well-formed, wrong tag */
    {"c:rec/" GEN "/-/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:rec/" GEN "/77/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:rec/" GEN "/077/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:rec/" GEN "/0/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:rec/" GEN "/-1/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:rec/" GEN "/7a/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:rec/" GEN "//AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:rec/" GEN "/9223372036854775808/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD}, /* INT64_MAX + 1 */
    {"c:rec/" GEN "/99999999999999999999/AAAAAAAAAAAAAAAAAAAAAA", POINTER_BAD},
    {"c:rec/" GEN "/-/AAAAAAAAAAAAAAAAAAAAAA/x", POINTER_BAD},
    {"c:0123456789012345678901234567890123456789012345678901234567890123/" GEN, POINTER_BAD},
};

static void test_pointer_bad_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_cases / sizeof bad_cases[0]; i++) {
        const char *name = NULL, *gen = NULL;
        enum pointer_result r = open_as(&ring_a, OWNER, bad_cases[i].text, &name, &gen);
        if (r != bad_cases[i].want)
            fail_msg("pointer_open(\"%s\") = %d, want %d", bad_cases[i].text, r, bad_cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_pointer_roundtrip, reset),
        cmocka_unit_test_setup(test_pointer_copied_to_another_owner, reset),
        cmocka_unit_test_setup(test_pointer_rotation, reset),
        cmocka_unit_test_setup(test_pointer_business_bound, reset),
        cmocka_unit_test_setup(test_pointer_from_0_2, reset),
        cmocka_unit_test_setup(test_pointer_bad_table, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
