/* test_record.c — connection records: encode/decode, version header, corruption. */
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
#include "buf.h"
#include "keys.h"
#include "record.h"
#include "seal.h"

static struct keyring ring_a, ring_b_old_a, ring_b;
static struct arena arena;

static int group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    uint8_t ka[SECRET_KEY_BYTES], kb[SECRET_KEY_BYTES];
    static uint8_t olds[1][SECRET_KEY_BYTES];
    for (size_t i = 0; i < SECRET_KEY_BYTES; i++) {
        ka[i] = (uint8_t)(3 * i + 11);
        kb[i] = (uint8_t)(0x80 | i);
    }
    memcpy(olds[0], ka, sizeof ka);
    keyring_init(&ring_a, ka, NULL, 0);
    keyring_init(&ring_b_old_a, kb, (const uint8_t(*)[SECRET_KEY_BYTES])olds, 1);
    keyring_init(&ring_b, kb, NULL, 0);
    arena_init(&arena, 0);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    arena_destroy(&arena);
    return 0;
}

static int reset_arena(void **state)
{
    (void)state;
    arena_reset(&arena);
    return 0;
}

static struct business two_businesses[2] = {
    {77, "6e0b0000-0000-4000-a000-000000000077", "Ada & Co \"quoted\" <b>", "xZ12k", "owner"},
    {78, "a3f10000-0000-4000-a000-000000000078", "Caf\xc3\xa9 Ltd", "aB9", "client"},
};

static struct connection full_connection(void)
{
    struct connection c;
    memset(&c, 0, sizeof c);
    c.pair.access_token = "eyJhbGciOi.access-token_value";
    c.pair.refresh_token = "refresh-0123456789abcdef";
    c.pair.scope = "user:profile:read user:clients:read";
    c.pair.created_at = 1764400000;
    c.pair.expires_at = 1764443200;
    c.has_identity = true;
    c.ident.user_id = 123;
    c.ident.email = "ada@example.com";
    c.ident.first_name = "Ada";
    c.ident.last_name = "Lovelace";
    c.ident.businesses = two_businesses;
    c.ident.n_businesses = 2;
    c.reconnect_required = true;
    c.connected_at = 1764399000;
    return c;
}

static void assert_same_pair(const struct token_pair *a, const struct token_pair *b)
{
    assert_string_equal(a->access_token, b->access_token);
    assert_string_equal(a->refresh_token, b->refresh_token);
    assert_string_equal(a->scope, b->scope);
    assert_int_equal(a->created_at, b->created_at);
    assert_int_equal(a->expires_at, b->expires_at);
    assert_int_equal(a->n_alternates, b->n_alternates);
    for (size_t i = 0; i < a->n_alternates; i++)
        assert_string_equal(a->alternates[i], b->alternates[i]);
}

static void test_record_roundtrip_full(void **state)
{
    (void)state;
    struct connection c = full_connection(), d;
    struct buf out = {0};
    record_encode(&ring_a, "c:abc", &c, 17, &out);
    assert_memory_equal(out.data, "r1:17:", 6);
    assert_int_equal(record_version(out.data, out.len), 17);
    /* nothing readable in the stored form */
    assert_null(memmem(out.data, out.len, "refresh-0123", 12));
    assert_null(memmem(out.data, out.len, "ada@example", 11));

    memset(&d, 0xaa, sizeof d);
    assert_int_equal(record_decode(&arena, &ring_a, "c:abc", out.data, out.len, &d), RECORD_OK);
    assert_int_equal(d.version, 17);
    assert_same_pair(&d.pair, &c.pair);
    assert_true(d.has_identity);
    assert_int_equal(d.ident.user_id, 123);
    assert_string_equal(d.ident.email, "ada@example.com");
    assert_string_equal(d.ident.first_name, "Ada");
    assert_string_equal(d.ident.last_name, "Lovelace");
    assert_int_equal(d.ident.n_businesses, 2);
    for (size_t i = 0; i < 2; i++) {
        assert_int_equal(d.ident.businesses[i].id, two_businesses[i].id);
        assert_string_equal(d.ident.businesses[i].name, two_businesses[i].name);
        assert_string_equal(d.ident.businesses[i].account_id, two_businesses[i].account_id);
        assert_string_equal(d.ident.businesses[i].uuid, two_businesses[i].uuid);
        assert_string_equal(d.ident.businesses[i].role, two_businesses[i].role);
    }
    assert_true(d.reconnect_required);
    assert_int_equal(d.connected_at, 1764399000);
    assert_false(d.opened_with_old_key);
    buf_free(&out);
}

static void test_record_roundtrip_no_identity(void **state)
{
    (void)state;
    struct connection c, d;
    memset(&c, 0, sizeof c);
    c.pair.access_token = "at";
    c.pair.refresh_token = "rt";
    c.pair.scope = "";
    c.pair.created_at = 1;
    c.pair.expires_at = INT64_C(4102444800);
    c.connected_at = 5;
    struct buf out = {0};
    record_encode(&ring_a, "p:xyz", &c, 1, &out);
    assert_int_equal(record_version(out.data, out.len), 1);
    memset(&d, 0xaa, sizeof d);
    assert_int_equal(record_decode(&arena, &ring_a, "p:xyz", out.data, out.len, &d), RECORD_OK);
    assert_int_equal(d.version, 1);
    assert_same_pair(&d.pair, &c.pair);
    assert_false(d.has_identity);
    assert_int_equal(d.ident.n_businesses, 0);
    assert_false(d.reconnect_required);
    assert_int_equal(d.connected_at, 5);
    assert_false(d.opened_with_old_key);
    buf_free(&out);
}

/* A NULL scope is stored as "" (record.h: scope is "" when FreshBooks sent none). */
static void test_record_null_scope(void **state)
{
    (void)state;
    struct connection c = full_connection(), d;
    c.pair.scope = NULL;
    struct buf out = {0};
    record_encode(&ring_a, "c:n", &c, 3, &out);
    assert_int_equal(record_decode(&arena, &ring_a, "c:n", out.data, out.len, &d), RECORD_OK);
    assert_non_null(d.pair.scope);
    assert_string_equal(d.pair.scope, "");
    buf_free(&out);
}

static void test_record_large_version(void **state)
{
    (void)state;
    struct connection c = full_connection(), d;
    struct buf out = {0};
    static const uint64_t versions[] = {
        1, 9, 10, 123456789, UINT64_C(4294967296), UINT64_C(281474976710655), RECORD_VERSION_MAX};
    for (size_t i = 0; i < sizeof versions / sizeof versions[0]; i++) {
        record_encode(&ring_a, "c:v", &c, versions[i], &out);
        assert_int_equal(record_version(out.data, out.len), versions[i]);
        assert_int_equal(record_decode(&arena, &ring_a, "c:v", out.data, out.len, &d), RECORD_OK);
        assert_int_equal(d.version, versions[i]);
    }
    buf_free(&out);
}

static void test_record_versions_new_and_next(void **state)
{
    (void)state;
    for (int i = 0; i < 1000; i++) {
        uint64_t v = record_first_version();
        assert_true(v >= 1 && v < (UINT64_C(1) << 48));
    }
    assert_int_equal(record_next_version(41), 42);
    assert_int_equal(record_next_version(RECORD_VERSION_MAX - 1), RECORD_VERSION_MAX);
    assert_int_equal(record_next_version(RECORD_VERSION_MAX), 1); /* never unreadable */
}

static struct token_pair pair_at(const char *rt, int64_t created_at)
{
    struct token_pair p;
    memset(&p, 0, sizeof p);
    p.access_token = "at";
    p.refresh_token = rt;
    p.scope = "";
    p.created_at = created_at;
    p.expires_at = created_at + 43200;
    return p;
}

/* The one ordering rule: later wins, a refused pair never wins, the same second keeps the
 * other candidates. */
static void test_record_merge_pair(void **state)
{
    (void)state;
    struct connection cur;
    memset(&cur, 0, sizeof cur);
    struct token_pair fresh = pair_at("rt-fresh", 1000), out;

    cur.pair = pair_at("rt-cur", 1001); /* stored one issued later: fresh is dead */
    assert_false(record_merge_pair(&cur, &fresh, &out));
    cur.reconnect_required = true; /* ... unless it was refused */
    assert_true(record_merge_pair(&cur, &fresh, &out));
    assert_string_equal(out.refresh_token, "rt-fresh");
    assert_int_equal(out.n_alternates, 0);
    cur.reconnect_required = false;

    cur.pair = pair_at("rt-cur", 999); /* fresh is later: no alternates */
    assert_true(record_merge_pair(&cur, &fresh, &out));
    assert_int_equal(out.n_alternates, 0);
    assert_true(record_merge_pair(NULL, &fresh, &out));
    assert_int_equal(out.n_alternates, 0);

    cur.pair = pair_at("rt-cur", 1000); /* the same second: keep the other one */
    cur.pair.alternates[0] = "rt-older";
    cur.pair.alternates[1] = "rt-fresh"; /* fresh's own token is not its alternate */
    cur.pair.n_alternates = 2;
    assert_true(record_merge_pair(&cur, &fresh, &out));
    assert_string_equal(out.refresh_token, "rt-fresh");
    assert_int_equal(out.n_alternates, 2);
    assert_string_equal(out.alternates[0], "rt-cur");
    assert_string_equal(out.alternates[1], "rt-older");

    /* six browsers in one second: every other candidate kept, up to the cap */
    char names[PAIR_ALTERNATES + 4][16];
    struct token_pair acc = pair_at("rt-0", 2000);
    for (int i = 1; i < PAIR_ALTERNATES + 4; i++) {
        snprintf(names[i], sizeof names[i], "rt-%d", i);
        struct connection held;
        memset(&held, 0, sizeof held);
        held.pair = acc;
        struct token_pair next = pair_at(names[i], 2000);
        assert_true(record_merge_pair(&held, &next, &acc));
    }
    assert_int_equal(acc.n_alternates, PAIR_ALTERNATES);
    for (size_t i = 0; i < acc.n_alternates; i++)
        assert_string_not_equal(acc.alternates[i], acc.refresh_token);
}

/* Alternates are sealed with the record and read back. */
static void test_record_alternates_roundtrip(void **state)
{
    (void)state;
    struct connection c = full_connection(), d;
    c.pair.alternates[0] = "alt-one";
    c.pair.alternates[1] = "alt-two";
    c.pair.n_alternates = 2;
    struct buf out = {0};
    record_encode(&ring_a, "c:alt", &c, 5, &out);
    assert_null(memmem(out.data, out.len, "alt-one", 7));
    assert_int_equal(record_decode(&arena, &ring_a, "c:alt", out.data, out.len, &d), RECORD_OK);
    assert_same_pair(&d.pair, &c.pair);
    struct connection e;
    record_copy(&arena, &d, &e);
    assert_same_pair(&e.pair, &c.pair);
    buf_free(&out);
}

struct version_case {
    const char *data;
    uint64_t want;
};

static const struct version_case version_cases[] = {
    {"r1:17:xxxx", 17},
    {"r1:17:", 17},
    {"r1:1:", 1},
    {"r1:999999999999999:", UINT64_C(999999999999999)}, /* 15 digits: exact in Lua's doubles */
    /* one format: what the compare-and-set scripts would not read the same way */
    {"r1:00042:z", 0},
    {"r1:0:", 0},
    {"r1:1000000000000000:", 0}, /* 16 digits */
    {"r1:999999999999999999:", 0},
    {"r1:1234567890123456789:", 0}, /* 19 digits (seen stuck in review) */
    /* garbage */
    {"", 0},
    {"r1", 0},
    {"r1:", 0},
    {"r1:17", 0},
    {"r1:17x:", 0},
    {"r1:-1:", 0},
    {"r1:+1:", 0},
    {"r1: 1:", 0},
    {"r1:abc:", 0},
    {"r1::", 0},
    {"r1::xyz", 0},
    {"r2:17:", 0},
    {"R1:17:", 0},
    {"x1:17:", 0},
    {"17:", 0},
    {"garbage", 0},
    {"r1:0:", 0},
    {"r1:1234567890123456789012345:", 0},
    {"r1:18446744073709551616:", 0}, /* 2^64: does not fit */
    {"r1:99999999999999999999:", 0},
};

static void test_record_version_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof version_cases / sizeof version_cases[0]; i++) {
        const struct version_case *tc = &version_cases[i];
        uint64_t v = record_version(tc->data, strlen(tc->data));
        if (v != tc->want)
            fail_msg("record_version(\"%s\") = %llu, want %llu", tc->data, (unsigned long long)v,
                     (unsigned long long)tc->want);
    }
    /* only len bytes are read */
    assert_int_equal(record_version("r1:17:", 5), 0);
    assert_int_equal(record_version("r1:17:", 6), 17);
    assert_int_equal(record_version("r1:1:", 4), 0);
}

static void test_record_other_name(void **state)
{
    (void)state;
    struct connection c = full_connection(), d;
    struct buf out = {0};
    record_encode(&ring_a, "c:abc", &c, 4, &out);
    static const char *const names[] = {"c:abd", "c:ab", "c:abcd", "p:abc", "C:abc", ""};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (record_decode(&arena, &ring_a, names[i], out.data, out.len, &d) != RECORD_CORRUPT)
            fail_msg("record for \"c:abc\" decoded under \"%s\"", names[i]);
    buf_free(&out);
}

static void test_record_corrupt(void **state)
{
    (void)state;
    struct connection c = full_connection(), d;
    struct buf out = {0}, bad = {0};
    record_encode(&ring_a, "c:abc", &c, 4, &out);
    size_t head = 5; /* "r1:4:" */
    /* every byte of the sealed part, one bit flipped */
    for (size_t i = head; i < out.len; i++) {
        buf_reset(&bad);
        buf_append(&bad, out.data, out.len);
        bad.data[i] ^= 0x10;
        if (record_decode(&arena, &ring_a, "c:abc", bad.data, bad.len, &d) != RECORD_CORRUPT)
            fail_msg("record with byte %zu flipped decoded", i);
    }
    /* truncated */
    for (size_t n = 0; n < out.len; n += 3)
        if (record_decode(&arena, &ring_a, "c:abc", out.data, n, &d) != RECORD_CORRUPT)
            fail_msg("record truncated to %zu bytes decoded", n);
    /* garbage */
    static const char *const garbage[] = {
        "",         "r1:4:", "r1:4:garbage",
        "r1:x:abc", "{}",    "r1:4:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof garbage / sizeof garbage[0]; i++)
        if (record_decode(&arena, &ring_a, "c:abc", garbage[i], strlen(garbage[i]), &d) !=
            RECORD_CORRUPT)
            fail_msg("garbage \"%s\" decoded", garbage[i]);
    /* the version in the header is not sealed, but changing it does not break the record
     * (the CAS script rewrites it); the decoded version follows the header */
    buf_reset(&bad);
    buf_puts(&bad, "r1:99:");
    buf_append(&bad, out.data + head, out.len - head);
    assert_int_equal(record_decode(&arena, &ring_a, "c:abc", bad.data, bad.len, &d), RECORD_OK);
    assert_int_equal(d.version, 99);
    buf_free(&out);
    buf_free(&bad);
}

/* A sealed value that is valid JSON but not a record (missing tokens) is corrupt. */
static void test_record_sealed_non_record(void **state)
{
    (void)state;
    /* build "r1:1:" + seal of JSON without tokens, with the record AD layout */
    static const char label[] = "fbconnect-record-1";
    struct buf ad = {0}, val = {0};
    buf_append(&ad, label, sizeof label);
    buf_puts(&ad, "c:q");
    static const char *const bodies[] = {
        "{}", "[]", "null", "{\"at\":\"x\"}", "not json", "{\"at\":1,\"rt\":\"r\",\"sc\":\"\"}"};
    struct connection d;
    for (size_t i = 0; i < sizeof bodies / sizeof bodies[0]; i++) {
        buf_reset(&val);
        buf_puts(&val, "r1:1:");
        seal_box(&ring_a, ad.data, ad.len, bodies[i], strlen(bodies[i]), &val);
        if (record_decode(&arena, &ring_a, "c:q", val.data, val.len, &d) != RECORD_CORRUPT)
            fail_msg("sealed \"%s\" decoded as a record", bodies[i]);
    }
    /* and the well-formed minimum does decode (the AD layout above is the real one) */
    static const char minimal[] = "{\"at\":\"a\",\"rt\":\"r\",\"sc\":\"\",\"ca\":1,\"ex\":2}";
    buf_reset(&val);
    buf_puts(&val, "r1:1:");
    seal_box(&ring_a, ad.data, ad.len, minimal, strlen(minimal), &val);
    assert_int_equal(record_decode(&arena, &ring_a, "c:q", val.data, val.len, &d), RECORD_OK);
    assert_string_equal(d.pair.access_token, "a");
    assert_int_equal(d.pair.expires_at, 2);
    buf_free(&ad);
    buf_free(&val);
}

static void test_record_key_rotation(void **state)
{
    (void)state;
    struct connection c = full_connection(), d;
    struct buf out = {0};
    record_encode(&ring_a, "c:rot", &c, 8, &out);
    assert_int_equal(record_decode(&arena, &ring_b_old_a, "c:rot", out.data, out.len, &d),
                     RECORD_OK);
    assert_true(d.opened_with_old_key);
    assert_same_pair(&d.pair, &c.pair);
    struct connection e;
    assert_int_equal(record_decode(&arena, &ring_b, "c:rot", out.data, out.len, &e),
                     RECORD_CORRUPT);
    /* re-sealed with the current key: no longer "old" */
    record_encode(&ring_b_old_a, "c:rot", &d, 9, &out);
    assert_int_equal(record_decode(&arena, &ring_b_old_a, "c:rot", out.data, out.len, &d),
                     RECORD_OK);
    assert_false(d.opened_with_old_key);
    assert_int_equal(d.version, 9);
    assert_int_equal(record_decode(&arena, &ring_b, "c:rot", out.data, out.len, &d), RECORD_OK);
    assert_int_equal(record_decode(&arena, &ring_a, "c:rot", out.data, out.len, &d),
                     RECORD_CORRUPT);
    buf_free(&out);
}

/* record_encode resets its output first. */
static void test_record_encode_resets(void **state)
{
    (void)state;
    struct connection c = full_connection(), d;
    struct buf out = {0};
    buf_puts(&out, "old content that must go");
    record_encode(&ring_a, "c:r", &c, 2, &out);
    assert_memory_equal(out.data, "r1:2:", 5);
    assert_int_equal(record_decode(&arena, &ring_a, "c:r", out.data, out.len, &d), RECORD_OK);
    buf_free(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_record_roundtrip_full, reset_arena),
        cmocka_unit_test_setup(test_record_roundtrip_no_identity, reset_arena),
        cmocka_unit_test_setup(test_record_null_scope, reset_arena),
        cmocka_unit_test_setup(test_record_large_version, reset_arena),
        cmocka_unit_test_setup(test_record_version_table, reset_arena),
        cmocka_unit_test_setup(test_record_versions_new_and_next, reset_arena),
        cmocka_unit_test_setup(test_record_merge_pair, reset_arena),
        cmocka_unit_test_setup(test_record_alternates_roundtrip, reset_arena),
        cmocka_unit_test_setup(test_record_other_name, reset_arena),
        cmocka_unit_test_setup(test_record_corrupt, reset_arena),
        cmocka_unit_test_setup(test_record_sealed_non_record, reset_arena),
        cmocka_unit_test_setup(test_record_key_rotation, reset_arena),
        cmocka_unit_test_setup(test_record_encode_resets, reset_arena),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
