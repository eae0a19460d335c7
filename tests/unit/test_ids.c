/* test_ids.c — random ids, their validation, name_hash and base64url. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "ids.h"

static int group_setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static bool is_b64url_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static void test_id_new_shape(void **state)
{
    (void)state;
    enum { N = 200 };
    static id_text ids[N];
    for (size_t i = 0; i < N; i++) {
        id_new(ids[i]);
        assert_int_equal(strlen(ids[i]), ID_TEXT_LEN);
        for (size_t k = 0; k < ID_TEXT_LEN; k++)
            assert_true(is_b64url_char(ids[i][k]));
        assert_true(id_valid(ids[i]));
        uint8_t raw[ID_BYTES + 8];
        size_t n = 0;
        assert_int_equal(b64url_decode(ids[i], ID_TEXT_LEN, raw, sizeof raw, &n), 0);
        assert_int_equal(n, ID_BYTES);
    }
    for (size_t i = 0; i < N; i++)
        for (size_t k = i + 1; k < N; k++)
            assert_string_not_equal(ids[i], ids[k]);
}

static void test_id_valid_table(void **state)
{
    (void)state;
    id_text good;
    id_new(good);
    char s[128];

    /* the last char carries 2 spare bits, which must be zero */
    assert_true(id_valid("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"));
    assert_true(id_valid("abcdefghijklmnopqrstuvwxyz0123456789-_ABCDE"));  /* 'E' = 4 */
    assert_true(id_valid("__________________________________________8"));  /* '8' = 60 */
    assert_false(id_valid("-------------------------------------------")); /* '-' = 62 */

    static const char *const bad[] = {
        "",
        "A",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",   /* 42 */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* 44 */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",  /* padding */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA+",  /* standard alphabet */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/",
        "AAAAAAAAAAAAAAAAAAAAA+AAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAA/AAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAA\nAAAAAAAAAAAAAAAAAAAAA",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB", /* nonzero spare bits */
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA_",
        " AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (id_valid(bad[i]))
            fail_msg("id_valid accepted bad id %zu \"%s\"", i, bad[i]);

    /* trailing garbage after a good id */
    static const char *const tails[] = {";", " ", "=", "A", "\t", "x;y"};
    for (size_t i = 0; i < sizeof tails / sizeof tails[0]; i++) {
        snprintf(s, sizeof s, "%s%s", good, tails[i]);
        if (id_valid(s))
            fail_msg("id_valid accepted id with trailing \"%s\"", tails[i]);
    }
    /* every single-char substitution with a non-alphabet character */
    static const char junk[] = "+/=. \t\n\r\x01!\"#$%&'()*,:;<>?@[\\]^`{|}~\x7f";
    for (size_t pos = 0; pos < ID_TEXT_LEN; pos++) {
        for (size_t j = 0; j < sizeof junk - 1; j++) {
            memcpy(s, good, sizeof(id_text));
            s[pos] = junk[j];
            if (id_valid(s))
                fail_msg("id_valid accepted byte 0x%02x at %zu", (unsigned char)junk[j], pos);
        }
    }
}

static void test_name_hash(void **state)
{
    (void)state;
    name_text a, b, c, d;
    name_hash("session", "abc", 3, a);
    name_hash("session", "abc", 3, b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), NAME_TEXT_LEN);

    /* the purpose separates domains */
    name_hash("conn", "abc", 3, c);
    assert_string_not_equal(a, c);
    /* the data matters, including its length */
    name_hash("session", "abd", 3, d);
    assert_string_not_equal(a, d);
    name_hash("session", "abc", 2, d);
    assert_string_not_equal(a, d);
    /* purpose/data boundary is unambiguous */
    name_hash("ab", "c", 1, c);
    name_hash("a", "bc", 2, d);
    assert_string_not_equal(c, d);
    /* empty data */
    name_hash("session", "", 0, c);
    name_hash("session", "", 0, d);
    assert_string_equal(c, d);
    assert_string_not_equal(a, c);

    /* known answer: BLAKE2b-128("session\0abc") */
    uint8_t digest[16];
    crypto_generichash(digest, sizeof digest, (const unsigned char *)"session\0abc", 11, NULL, 0);
    char want[64];
    sodium_bin2base64(want, sizeof want, digest, sizeof digest,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    assert_string_equal(a, want);
}

static void test_b64url_roundtrip(void **state)
{
    (void)state;
    uint8_t in[100], out[100];
    char text[200];
    for (size_t i = 0; i < sizeof in; i++)
        in[i] = (uint8_t)(i * 37 + 251);
    for (size_t n = 0; n <= sizeof in; n++) {
        size_t want_len = (n * 4 + 2) / 3; /* unpadded */
        assert_int_equal(b64url_len(n), want_len);
        memset(text, 'Z', sizeof text);
        b64url_encode(in, n, text);
        assert_int_equal(strlen(text), want_len);
        for (size_t k = 0; k < want_len; k++)
            assert_true(is_b64url_char(text[k]));
        size_t got = 999;
        assert_int_equal(b64url_decode(text, want_len, out, sizeof out, &got), 0);
        assert_int_equal(got, n);
        assert_memory_equal(in, out, n);
    }
    /* known vectors */
    const uint8_t fb[] = {0xfb, 0xff, 0xfe};
    b64url_encode(fb, 3, text);
    assert_string_equal(text, "-__-");
    b64url_encode((const uint8_t *)"f", 1, text);
    assert_string_equal(text, "Zg");
    b64url_encode((const uint8_t *)"fo", 2, text);
    assert_string_equal(text, "Zm8");
}

static void test_b64url_decode_rejects(void **state)
{
    (void)state;
    uint8_t out[64];
    size_t n;
    static const char *const bad[] = {
        "Zg==", "Zg=",   "Zm8=",    "+/+/", "////", "Zm 8", " Zm8",
        "Zm8 ", "Zm8\n", "Z",       "Zh",   "Zm9", /* Zm9: nonzero spare bits ("fo" is Zm8) */
        "Zm8.", "Zm8!",  "Zm8\x7f",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        n = 0;
        if (b64url_decode(bad[i], strlen(bad[i]), out, sizeof out, &n) == 0)
            fail_msg("b64url_decode accepted \"%s\" (%zu bytes)", bad[i], n);
    }
    /* embedded NUL inside the given length */
    assert_int_equal(b64url_decode("Zm\0A", 4, out, sizeof out, &n), -1);
    /* output too small */
    assert_int_equal(b64url_decode("Zm9v", 4, out, 2, &n), -1);
    assert_int_equal(b64url_decode("Zm9v", 4, out, 3, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(out, "foo", 3);
    /* empty input decodes to nothing */
    assert_int_equal(b64url_decode("", 0, out, sizeof out, &n), 0);
    assert_int_equal(n, 0);
}

/* An id is 43 characters of the base64url alphabet: bytes >= 0x80 are not in it.  (The
 * decoder must not treat them as digits: libsodium 1.0.18 on a signed-char platform maps
 * them to 63.) */
static void test_id_valid_rejects_non_ascii(void **state)
{
    (void)state;
    id_text good;
    id_new(good);
    for (int c = 0x80; c <= 0xff; c++) {
        for (size_t pos = 0; pos < ID_TEXT_LEN; pos += 7) {
            char s[ID_TEXT_LEN + 1];
            memcpy(s, good, sizeof s);
            s[pos] = (char)c;
            if (id_valid(s))
                fail_msg("id_valid accepted byte 0x%02x at %zu", c, pos);
        }
    }
}

static void test_b64url_decode_rejects_non_ascii(void **state)
{
    (void)state;
    for (int c = 0x80; c <= 0xff; c++) {
        char s[4] = {'Z', 'm', '9', (char)c};
        uint8_t out[8];
        size_t n = 0;
        if (b64url_decode(s, 4, out, sizeof out, &n) == 0)
            fail_msg("b64url_decode accepted \"Zm9\\x%02x\" as %zu bytes", c, n);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_id_new_shape),
        cmocka_unit_test(test_id_valid_table),
        cmocka_unit_test(test_name_hash),
        cmocka_unit_test(test_b64url_roundtrip),
        cmocka_unit_test(test_b64url_decode_rejects),
        cmocka_unit_test(test_id_valid_rejects_non_ascii),
        cmocka_unit_test(test_b64url_decode_rejects_non_ascii),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
