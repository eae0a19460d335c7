/* test_seal.c — sealing records at rest: roundtrip, associated data, tampering, keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "buf.h"
#include "keys.h"
#include "seal.h"

static struct keyring ring_a, ring_b_old_a, ring_b;

static int group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    uint8_t ka[SECRET_KEY_BYTES], kb[SECRET_KEY_BYTES];
    static uint8_t olds[1][SECRET_KEY_BYTES];
    for (size_t i = 0; i < SECRET_KEY_BYTES; i++) {
        ka[i] = (uint8_t)(7 * i + 1);
        kb[i] = (uint8_t)(0xff - i);
    }
    memcpy(olds[0], ka, sizeof ka);
    keyring_init(&ring_a, ka, NULL, 0);
    keyring_init(&ring_b_old_a, kb, (const uint8_t(*)[SECRET_KEY_BYTES])olds, 1);
    keyring_init(&ring_b, kb, NULL, 0);
    return 0;
}

static const char AD[] = "c:record-name";
static const char PT[] = "{\"at\":\"access\",\"rt\":\"refresh\"}";

static void test_seal_roundtrip(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 15, 16, 17, 64, 1000, 70000};
    static uint8_t pt[70000];
    for (size_t i = 0; i < sizeof pt; i++)
        pt[i] = (uint8_t)(i * 131 + 7);
    for (size_t k = 0; k < sizeof sizes / sizeof sizes[0]; k++) {
        size_t n = sizes[k];
        struct buf sealed = {0}, opened = {0};
        seal_box(&ring_a, AD, strlen(AD), pt, n, &sealed);
        assert_int_equal(sealed.len, n + SEAL_OVERHEAD);
        /* the key id comes first */
        assert_memory_equal(sealed.data, ring_a.keys[0].kid, KID_BYTES);
        /* the plaintext does not appear as such */
        if (n >= 16)
            assert_null(memmem(sealed.data, sealed.len, pt, 16));
        bool old = true;
        assert_int_equal(seal_open(&ring_a, AD, strlen(AD), sealed.data, sealed.len, &opened, &old),
                         0);
        assert_false(old);
        assert_int_equal(opened.len, n);
        if (n)
            assert_memory_equal(opened.data, pt, n);
        assert_int_equal(opened.data[n], '\0');
        buf_free(&sealed);
        buf_free(&opened);
    }
}

/* Both functions append: existing content stays. */
static void test_seal_appends(void **state)
{
    (void)state;
    struct buf sealed = {0}, opened = {0};
    buf_puts(&sealed, "r1:5:");
    seal_box(&ring_a, AD, strlen(AD), PT, strlen(PT), &sealed);
    assert_memory_equal(sealed.data, "r1:5:", 5);
    buf_puts(&opened, "prefix:");
    assert_int_equal(
        seal_open(&ring_a, AD, strlen(AD), sealed.data + 5, sealed.len - 5, &opened, NULL), 0);
    assert_string_equal(buf_cstr(&opened), "prefix:"
                                           "{\"at\":\"access\",\"rt\":\"refresh\"}");
    buf_free(&sealed);
    buf_free(&opened);
}

/* Two seals of the same plaintext differ (random nonce). */
static void test_seal_nonce_random(void **state)
{
    (void)state;
    struct buf s1 = {0}, s2 = {0};
    seal_box(&ring_a, AD, strlen(AD), PT, strlen(PT), &s1);
    seal_box(&ring_a, AD, strlen(AD), PT, strlen(PT), &s2);
    assert_int_equal(s1.len, s2.len);
    assert_memory_not_equal(s1.data + KID_BYTES, s2.data + KID_BYTES, 24);
    assert_memory_not_equal(s1.data, s2.data, s1.len);
    buf_free(&s1);
    buf_free(&s2);
}

static void test_seal_wrong_ad(void **state)
{
    (void)state;
    struct buf sealed = {0}, opened = {0};
    seal_box(&ring_a, AD, strlen(AD), PT, strlen(PT), &sealed);
    static const char *const other_ads[] = {"c:record-nam", "c:record-name2", "c:Record-name",
                                            "p:record-name", ""};
    for (size_t i = 0; i < sizeof other_ads / sizeof other_ads[0]; i++) {
        buf_puts(&opened, "keep");
        bool old = false;
        if (seal_open(&ring_a, other_ads[i], strlen(other_ads[i]), sealed.data, sealed.len, &opened,
                      &old) == 0)
            fail_msg("opened with associated data \"%s\"", other_ads[i]);
        assert_string_equal(buf_cstr(&opened), "keep");
        assert_int_equal(opened.len, 4);
        buf_reset(&opened);
    }
    /* the AD's NUL terminator is not part of it, its length is */
    assert_int_not_equal(seal_open(&ring_a, AD, sizeof AD, sealed.data, sealed.len, &opened, NULL),
                         0);
    assert_int_equal(seal_open(&ring_a, AD, strlen(AD), sealed.data, sealed.len, &opened, NULL), 0);
    buf_free(&sealed);
    buf_free(&opened);
}

static void test_seal_flipped_bytes(void **state)
{
    (void)state;
    struct buf sealed = {0}, opened = {0};
    seal_box(&ring_a, AD, strlen(AD), PT, strlen(PT), &sealed);
    for (size_t i = 0; i < sealed.len; i++) {
        for (int bit = 0; bit < 8; bit++) {
            sealed.data[i] ^= (char)(1 << bit);
            buf_reset(&opened);
            int rc =
                seal_open(&ring_b_old_a, AD, strlen(AD), sealed.data, sealed.len, &opened, NULL);
            sealed.data[i] ^= (char)(1 << bit);
            if (rc == 0)
                fail_msg("opened with bit %d of byte %zu flipped", bit, i);
            assert_int_equal(opened.len, 0);
        }
    }
    buf_reset(&opened);
    assert_int_equal(
        seal_open(&ring_b_old_a, AD, strlen(AD), sealed.data, sealed.len, &opened, NULL), 0);
    buf_free(&sealed);
    buf_free(&opened);
}

static void test_seal_truncated_and_extended(void **state)
{
    (void)state;
    struct buf sealed = {0}, opened = {0};
    seal_box(&ring_a, AD, strlen(AD), PT, strlen(PT), &sealed);
    for (size_t n = 0; n < sealed.len; n++) {
        buf_reset(&opened);
        if (seal_open(&ring_a, AD, strlen(AD), sealed.data, n, &opened, NULL) == 0)
            fail_msg("opened a value truncated to %zu of %zu bytes", n, sealed.len);
        assert_int_equal(opened.len, 0);
    }
    /* dropping bytes from the front */
    for (size_t k = 1; k < sealed.len; k++) {
        buf_reset(&opened);
        assert_int_not_equal(
            seal_open(&ring_a, AD, strlen(AD), sealed.data + k, sealed.len - k, &opened, NULL), 0);
    }
    /* one byte too many */
    buf_append(&sealed, "x", 1);
    buf_reset(&opened);
    assert_int_not_equal(seal_open(&ring_a, AD, strlen(AD), sealed.data, sealed.len, &opened, NULL),
                         0);
    buf_free(&sealed);
    buf_free(&opened);
}

static void test_seal_keys(void **state)
{
    (void)state;
    struct buf sa = {0}, sb = {0}, opened = {0};
    seal_box(&ring_a, AD, strlen(AD), PT, strlen(PT), &sa);
    seal_box(&ring_b_old_a, AD, strlen(AD), PT, strlen(PT), &sb);
    assert_memory_equal(sb.data, ring_b.keys[0].kid, KID_BYTES);
    assert_memory_not_equal(sa.data, sb.data, KID_BYTES);

    /* old key: opens, and says so */
    bool old = false;
    assert_int_equal(seal_open(&ring_b_old_a, AD, strlen(AD), sa.data, sa.len, &opened, &old), 0);
    assert_true(old);
    assert_string_equal(buf_cstr(&opened), PT);
    /* current key: opens, not old */
    buf_reset(&opened);
    old = true;
    assert_int_equal(seal_open(&ring_b_old_a, AD, strlen(AD), sb.data, sb.len, &opened, &old), 0);
    assert_false(old);
    assert_string_equal(buf_cstr(&opened), PT);
    /* old_key may be NULL */
    buf_reset(&opened);
    assert_int_equal(seal_open(&ring_b_old_a, AD, strlen(AD), sa.data, sa.len, &opened, NULL), 0);

    /* unknown key */
    buf_reset(&opened);
    assert_int_equal(seal_open(&ring_b, AD, strlen(AD), sa.data, sa.len, &opened, NULL), -1);
    assert_int_equal(opened.len, 0);
    assert_int_equal(seal_open(&ring_a, AD, strlen(AD), sb.data, sb.len, &opened, NULL), -1);
    assert_int_equal(opened.len, 0);

    /* a known kid in front of a value sealed with another key does not open */
    memcpy(sa.data, ring_b.keys[0].kid, KID_BYTES);
    assert_int_equal(seal_open(&ring_b_old_a, AD, strlen(AD), sa.data, sa.len, &opened, NULL), -1);
    assert_int_equal(opened.len, 0);
    buf_free(&sa);
    buf_free(&sb);
    buf_free(&opened);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seal_roundtrip),
        cmocka_unit_test(test_seal_appends),
        cmocka_unit_test(test_seal_nonce_random),
        cmocka_unit_test(test_seal_wrong_ad),
        cmocka_unit_test(test_seal_flipped_bytes),
        cmocka_unit_test(test_seal_truncated_and_extended),
        cmocka_unit_test(test_seal_keys),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
