/* test_state.c — the OAuth state: issue, verify, tampering, binding, expiry, rotation. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "arena.h"
#include "ids.h"
#include "keys.h"
#include "state.h"

#define NOW INT64_C(1764400000)

static uint8_t key_a[SECRET_KEY_BYTES], key_b[SECRET_KEY_BYTES], key_c[SECRET_KEY_BYTES];
static struct keyring ring_a;       /* current A */
static struct keyring ring_b_old_a; /* current B, old A */
static struct keyring ring_b;       /* current B only */
static struct keyring ring_c_old_b; /* current C, old B (A forgotten) */
static id_text sess1, sess2;
static struct arena arena;

static int group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    for (size_t i = 0; i < SECRET_KEY_BYTES; i++) {
        key_a[i] = (uint8_t)i;
        key_b[i] = (uint8_t)(0xa0 + i);
        key_c[i] = (uint8_t)(0x55 ^ i);
    }
    keyring_init(&ring_a, key_a, NULL, 0);
    static uint8_t olds[1][SECRET_KEY_BYTES];
    memcpy(olds[0], key_a, SECRET_KEY_BYTES);
    keyring_init(&ring_b_old_a, key_b, (const uint8_t(*)[SECRET_KEY_BYTES])olds, 1);
    memcpy(olds[0], key_b, SECRET_KEY_BYTES);
    keyring_init(&ring_c_old_b, key_c, (const uint8_t(*)[SECRET_KEY_BYTES])olds, 1);
    keyring_init(&ring_b, key_b, NULL, 0);
    id_new(sess1);
    id_new(sess2);
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

static enum state_result verify(const struct keyring *kr, const char *text, const char *sess,
                                const char *user, int64_t now, struct state_claims *out)
{
    return state_verify(kr, text, strlen(text), sess, user, now, out);
}

static void test_state_ok(void **state)
{
    (void)state;
    static const char *const returns[] = {"/a/b?x=1&y=2#frag", "/", "/caf%C3%A9"};
    for (size_t i = 0; i < sizeof returns / sizeof returns[0]; i++) {
        char *text = state_issue(&arena, &ring_a, sess1, NULL, returns[i], NOW);
        assert_non_null(text);
        assert_true(strlen(text) <= STATE_TEXT_MAX);
        /* base64url only: it goes into a URL unescaped */
        for (const char *p = text; *p; p++)
            assert_non_null(
                strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
        struct state_claims c;
        memset(&c, 0xee, sizeof c);
        assert_int_equal(verify(&ring_a, text, sess1, NULL, NOW, &c), STATE_OK);
        assert_string_equal(c.return_to, returns[i]);
        assert_int_equal(c.expires, NOW + STATE_TTL);
        /* still fine a second before expiry and at it */
        assert_int_equal(verify(&ring_a, text, sess1, NULL, NOW + STATE_TTL - 1, &c), STATE_OK);
        assert_int_equal(verify(&ring_a, text, sess1, NULL, NOW + STATE_TTL, &c), STATE_OK);
    }
}

static void test_state_no_return_to(void **state)
{
    (void)state;
    char *text = state_issue(&arena, &ring_a, sess1, NULL, NULL, NOW);
    struct state_claims c;
    memset(&c, 0xee, sizeof c);
    assert_int_equal(verify(&ring_a, text, sess1, NULL, NOW, &c), STATE_OK);
    assert_string_equal(c.return_to, "");
}

/* The nonce is random: two states for the same inputs differ, and so do their nonces. */
static void test_state_nonce_random(void **state)
{
    (void)state;
    char *t1 = state_issue(&arena, &ring_a, sess1, NULL, "/x", NOW);
    char *t2 = state_issue(&arena, &ring_a, sess1, NULL, "/x", NOW);
    assert_string_not_equal(t1, t2);
    struct state_claims c1, c2;
    assert_int_equal(verify(&ring_a, t1, sess1, NULL, NOW, &c1), STATE_OK);
    assert_int_equal(verify(&ring_a, t2, sess1, NULL, NOW, &c2), STATE_OK);
    assert_memory_not_equal(c1.nonce, c2.nonce, sizeof c1.nonce);
    /* the nonce is not all zero */
    uint8_t zero[32] = {0};
    assert_memory_not_equal(c1.nonce, zero, sizeof zero);
}

static void test_state_used_id(void **state)
{
    (void)state;
    char *t1 = state_issue(&arena, &ring_a, sess1, NULL, NULL, NOW);
    char *t2 = state_issue(&arena, &ring_a, sess1, NULL, NULL, NOW);
    struct state_claims c1, c1b, c2;
    assert_int_equal(verify(&ring_a, t1, sess1, NULL, NOW, &c1), STATE_OK);
    assert_int_equal(verify(&ring_a, t1, sess1, NULL, NOW + 5, &c1b), STATE_OK);
    assert_int_equal(verify(&ring_a, t2, sess1, NULL, NOW, &c2), STATE_OK);
    name_text u1, u1b, u2;
    state_used_id(&c1, u1);
    state_used_id(&c1b, u1b);
    state_used_id(&c2, u2);
    assert_int_equal(strlen(u1), NAME_TEXT_LEN);
    assert_string_equal(u1, u1b);
    assert_string_not_equal(u1, u2);
    /* it is name_hash("state", nonce) */
    name_text want;
    name_hash("state", c1.nonce, sizeof c1.nonce, want);
    assert_string_equal(u1, want);
}

/* Flipping any bit of the decoded state: FORGED (or MALFORMED where the structure breaks),
 * never OK. */
static void test_state_tamper_bytes(void **state)
{
    (void)state;
    char *text = state_issue(&arena, &ring_a, sess1, "user1", "/return/here", NOW);
    size_t tlen = strlen(text);
    uint8_t raw[2048];
    size_t n = 0;
    assert_int_equal(b64url_decode(text, tlen, raw, sizeof raw, &n), 0);
    char *t2 = malloc(b64url_len(n) + 1);
    assert_non_null(t2);
    struct state_claims c;
    for (size_t i = 0; i < n; i++) {
        for (int bit = 0; bit < 8; bit += 3) {
            raw[i] ^= (uint8_t)(1u << bit);
            b64url_encode(raw, n, t2);
            enum state_result r = verify(&ring_a, t2, sess1, "user1", NOW, &c);
            raw[i] ^= (uint8_t)(1u << bit);
            if (r != STATE_FORGED && r != STATE_MALFORMED)
                fail_msg("flipping bit %d of byte %zu/%zu gave %d", bit, i, n, (int)r);
            /* the MAC covers everything but the structure checks: inside the body and MAC,
             * the answer is FORGED */
            if (i >= 1 && i < 77 && r != STATE_FORGED)
                fail_msg("flipping bit %d of byte %zu gave %d, want FORGED", bit, i, (int)r);
            if (i >= 79 && r != STATE_FORGED)
                fail_msg("flipping bit %d of byte %zu gave %d, want FORGED", bit, i, (int)r);
        }
    }
    /* version byte */
    raw[0] = 2;
    b64url_encode(raw, n, t2);
    assert_int_equal(verify(&ring_a, t2, sess1, "user1", NOW, &c), STATE_MALFORMED);
    free(t2);
}

/* Changing any character of the text: never OK. */
static void test_state_tamper_text(void **state)
{
    (void)state;
    char *text = state_issue(&arena, &ring_a, sess1, NULL, "/r", NOW);
    size_t len = strlen(text);
    char *t = arena_strdup(&arena, text);
    struct state_claims c;
    static const char subst[] = "AB-_z9.=+/ \x7f";
    for (size_t i = 0; i < len; i++) {
        for (size_t k = 0; k < sizeof subst - 1; k++) {
            if (text[i] == subst[k])
                continue;
            t[i] = subst[k];
            enum state_result r = state_verify(&ring_a, t, len, sess1, NULL, NOW, &c);
            if (r == STATE_OK)
                fail_msg("changing char %zu to 0x%02x still verifies", i, (unsigned char)subst[k]);
            assert_true(r == STATE_FORGED || r == STATE_MALFORMED);
        }
        t[i] = text[i];
    }
    /* truncated and extended */
    for (size_t cut = 0; cut < len; cut++)
        assert_int_equal(state_verify(&ring_a, text, cut, sess1, NULL, NOW, &c), STATE_MALFORMED);
    char *longer = arena_printf(&arena, "%sAA", text);
    assert_int_not_equal(verify(&ring_a, longer, sess1, NULL, NOW, &c), STATE_OK);
}

static void test_state_bindings(void **state)
{
    (void)state;
    struct state_claims c;
    char *t = state_issue(&arena, &ring_a, sess1, NULL, NULL, NOW);
    assert_int_equal(verify(&ring_a, t, sess2, NULL, NOW, &c), STATE_OTHER_SESSION);
    assert_int_equal(verify(&ring_a, t, NULL, NULL, NOW, &c), STATE_OTHER_SESSION);
    assert_int_equal(verify(&ring_a, t, sess1, "alice", NOW, &c), STATE_OTHER_USER);

    char *tu = state_issue(&arena, &ring_a, sess1, "alice", "/x", NOW);
    assert_int_equal(verify(&ring_a, tu, sess1, "alice", NOW, &c), STATE_OK);
    assert_string_equal(c.return_to, "/x");
    assert_int_equal(verify(&ring_a, tu, sess1, "bob", NOW, &c), STATE_OTHER_USER);
    assert_int_equal(verify(&ring_a, tu, sess1, "Alice", NOW, &c), STATE_OTHER_USER);
    assert_int_equal(verify(&ring_a, tu, sess1, "alice ", NOW, &c), STATE_OTHER_USER);
    assert_int_equal(verify(&ring_a, tu, sess1, "", NOW, &c), STATE_OTHER_USER);
    assert_int_equal(verify(&ring_a, tu, sess1, NULL, NOW, &c), STATE_OTHER_USER);
    assert_int_equal(verify(&ring_a, tu, sess2, "alice", NOW, &c), STATE_OTHER_SESSION);
    assert_int_equal(verify(&ring_a, tu, NULL, "alice", NOW, &c), STATE_OTHER_SESSION);

    /* a state issued without a session never matches one */
    char *tn = state_issue(&arena, &ring_a, NULL, NULL, NULL, NOW);
    assert_int_equal(verify(&ring_a, tn, sess1, NULL, NOW, &c), STATE_OTHER_SESSION);
    assert_int_equal(verify(&ring_a, tn, NULL, NULL, NOW, &c), STATE_OTHER_SESSION);
}

/* A state of one of this browser's earlier sessions (its binding in the callback's cookie)
 * is its own; one of any other session is not, nor does a made-up list make it so. */
static void test_state_earlier_sessions(void **state)
{
    (void)state;
    struct state_claims c;
    char *t = state_issue(&arena, &ring_a, sess1, "alice", "/back", NOW);
    char b1[STATE_BINDING_TEXT_LEN + 1], b2[STATE_BINDING_TEXT_LEN + 1], list[128];
    state_session_binding(sess1, b1);
    state_session_binding(sess2, b2);
    assert_int_equal(strlen(b1), STATE_BINDING_TEXT_LEN);
    assert_null(strstr(b1, sess1));
    snprintf(list, sizeof list, "%s.%s", b2, b1);
    assert_int_equal(state_verify_earlier(&ring_a, t, strlen(t), list, "alice", NOW, &c), STATE_OK);
    assert_string_equal(c.return_to, "/back");
    assert_int_equal(state_verify_earlier(&ring_a, t, strlen(t), b1, "bob", NOW, &c), STATE_OTHER_USER);
    assert_int_equal(state_verify_earlier(&ring_a, t, strlen(t), b2, "alice", NOW, &c),
                     STATE_OTHER_SESSION);
    /* the same checks before the binding: expiry, MAC */
    assert_int_equal(state_verify_earlier(&ring_a, t, strlen(t), b1, "alice", NOW + STATE_TTL + 1, &c),
                     STATE_EXPIRED);
    assert_int_equal(state_verify_earlier(&ring_b, t, strlen(t), b1, "alice", NOW, &c), STATE_FORGED);
    /* junk, overlong and empty lists name nobody; only the first STATE_EARLIER_MAX count */
    static const char *const junk[] = {"", ".", "..", "A", "not a binding!", "AAAAAAAAAAAAAAAAAAAAAA"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        assert_int_equal(state_verify_earlier(&ring_a, t, strlen(t), junk[i], "alice", NOW, &c),
                         STATE_OTHER_SESSION);
    snprintf(list, sizeof list, "%s.%s.%s.%s", b2, b2, b2, b1);
    assert_int_equal(state_verify_earlier(&ring_a, t, strlen(t), list, "alice", NOW, &c),
                     STATE_OTHER_SESSION);
    snprintf(list, sizeof list, "%sx.%s", b1, b2); /* a binding one character too long */
    assert_int_equal(state_verify_earlier(&ring_a, t, strlen(t), list, "alice", NOW, &c),
                     STATE_OTHER_SESSION);
    /* a state issued without a session is nobody's, an all-zero binding included */
    char *tn = state_issue(&arena, &ring_a, NULL, NULL, NULL, NOW);
    assert_int_equal(state_verify_earlier(&ring_a, tn, strlen(tn), "AAAAAAAAAAAAAAAAAAAAAA", NULL,
                                          NOW, &c),
                     STATE_OTHER_SESSION);
}

/* Checks come in order: expiry before bindings, MAC before expiry. */
static void test_state_expiry(void **state)
{
    (void)state;
    struct state_claims c;
    char *t = state_issue(&arena, &ring_a, sess1, "alice", NULL, NOW);
    assert_int_equal(verify(&ring_a, t, sess1, "alice", NOW + STATE_TTL + 1, &c), STATE_EXPIRED);
    assert_int_equal(verify(&ring_a, t, sess1, "alice", NOW + 86400, &c), STATE_EXPIRED);
    assert_int_equal(verify(&ring_a, t, sess2, "bob", NOW + STATE_TTL + 1, &c), STATE_EXPIRED);
    assert_int_equal(verify(&ring_b, t, sess1, "alice", NOW + STATE_TTL + 1, &c), STATE_FORGED);
}

static void test_state_key_rotation(void **state)
{
    (void)state;
    struct state_claims c;
    char *ta = state_issue(&arena, &ring_a, sess1, NULL, "/rot", NOW);
    /* B current, A old: still verifies */
    assert_int_equal(verify(&ring_b_old_a, ta, sess1, NULL, NOW, &c), STATE_OK);
    assert_string_equal(c.return_to, "/rot");
    /* A forgotten */
    assert_int_equal(verify(&ring_b, ta, sess1, NULL, NOW, &c), STATE_FORGED);
    assert_int_equal(verify(&ring_c_old_b, ta, sess1, NULL, NOW, &c), STATE_FORGED);
    /* a new state is signed with B, which A's ring does not know */
    char *tb = state_issue(&arena, &ring_b_old_a, sess1, NULL, NULL, NOW);
    assert_int_equal(verify(&ring_b_old_a, tb, sess1, NULL, NOW, &c), STATE_OK);
    assert_int_equal(verify(&ring_b, tb, sess1, NULL, NOW, &c), STATE_OK);
    assert_int_equal(verify(&ring_c_old_b, tb, sess1, NULL, NOW, &c), STATE_OK);
    assert_int_equal(verify(&ring_a, tb, sess1, NULL, NOW, &c), STATE_FORGED);
}

/* A state signed with a key of the same kid but another secret is forged: the kid alone
 * proves nothing.  (Built by re-signing the payload with a wrong key.) */
static void test_state_wrong_mac_key(void **state)
{
    (void)state;
    char *t = state_issue(&arena, &ring_a, sess1, NULL, NULL, NOW);
    uint8_t raw[512];
    size_t n = 0;
    assert_int_equal(b64url_decode(t, strlen(t), raw, sizeof raw, &n), 0);
    crypto_auth(raw + n - crypto_auth_BYTES, raw, n - crypto_auth_BYTES, ring_b.keys[0].state);
    char *t2 = arena_alloc(&arena, b64url_len(n) + 1);
    b64url_encode(raw, n, t2);
    struct state_claims c;
    assert_int_equal(verify(&ring_a, t2, sess1, NULL, NOW, &c), STATE_FORGED);
    /* and re-signing with the right subkey does verify (the layout is as documented) */
    crypto_auth(raw + n - crypto_auth_BYTES, raw, n - crypto_auth_BYTES, ring_a.keys[0].state);
    b64url_encode(raw, n, t2);
    assert_int_equal(verify(&ring_a, t2, sess1, NULL, NOW, &c), STATE_OK);
}

static void test_state_malformed(void **state)
{
    (void)state;
    struct state_claims c;
    static const char *const bad[] = {
        "",
        "x",
        "abc",
        "not a state",
        "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
        "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        enum state_result r = verify(&ring_a, bad[i], sess1, NULL, NOW, &c);
        if (r != STATE_MALFORMED)
            fail_msg("garbage %zu gave %d", i, (int)r);
    }
    /* a valid state with padding or standard-alphabet characters */
    char *t = state_issue(&arena, &ring_a, sess1, NULL, NULL, NOW);
    char *padded = arena_printf(&arena, "%s=", t);
    assert_int_equal(verify(&ring_a, padded, sess1, NULL, NOW, &c), STATE_MALFORMED);
    char *spaced = arena_printf(&arena, " %s", t);
    assert_int_equal(verify(&ring_a, spaced, sess1, NULL, NOW, &c), STATE_MALFORMED);

    /* overlong: well-formed base64url over STATE_TEXT_MAX */
    char *big = arena_alloc(&arena, STATE_TEXT_MAX + 100);
    memset(big, 'A', STATE_TEXT_MAX + 99);
    big[STATE_TEXT_MAX + 99] = '\0';
    assert_int_equal(verify(&ring_a, big, sess1, NULL, NOW, &c), STATE_MALFORMED);
    big[STATE_TEXT_MAX + 1] = '\0';
    assert_int_equal(verify(&ring_a, big, sess1, NULL, NOW, &c), STATE_MALFORMED);

    /* correct MAC but return_to length disagreeing with the size */
    uint8_t raw[2048];
    size_t n = 0;
    char *t2 = state_issue(&arena, &ring_a, sess1, NULL, "/abc", NOW);
    assert_int_equal(b64url_decode(t2, strlen(t2), raw, sizeof raw, &n), 0);
    raw[78] = 5; /* length 4 -> 5 */
    crypto_auth(raw + n - crypto_auth_BYTES, raw, n - crypto_auth_BYTES, ring_a.keys[0].state);
    char *t3 = arena_alloc(&arena, b64url_len(n) + 1);
    b64url_encode(raw, n, t3);
    assert_int_equal(verify(&ring_a, t3, sess1, NULL, NOW, &c), STATE_MALFORMED);
}

/* The longest return_to fits in a state under STATE_TEXT_MAX and comes back intact. */
static void test_state_long_return_to(void **state)
{
    (void)state;
    char *rt = arena_alloc(&arena, RETURN_TO_MAX + 1);
    rt[0] = '/';
    memset(rt + 1, 'r', RETURN_TO_MAX - 1);
    rt[RETURN_TO_MAX] = '\0';
    assert_true(url_return_to_valid(rt, RETURN_TO_MAX));
    char *t = state_issue(&arena, &ring_a, sess1, NULL, rt, NOW);
    assert_true(strlen(t) <= STATE_TEXT_MAX);
    struct state_claims c;
    assert_int_equal(verify(&ring_a, t, sess1, NULL, NOW, &c), STATE_OK);
    assert_string_equal(c.return_to, rt);
}

/* Even with a genuine MAC, an unsafe return_to never comes out of state_verify as OK. */
static void test_state_unsafe_return_to(void **state)
{
    (void)state;
    static const char *const unsafe[] = {"//evil.com", "https://evil", "/\\evil", "/a b"};
    for (size_t i = 0; i < sizeof unsafe / sizeof unsafe[0]; i++) {
        char *t = state_issue(&arena, &ring_a, sess1, NULL, unsafe[i], NOW);
        struct state_claims c;
        enum state_result r = verify(&ring_a, t, sess1, NULL, NOW, &c);
        if (r == STATE_OK)
            fail_msg("unsafe return_to \"%s\" came back OK", unsafe[i]);
    }
}

/* A state's text is base64url: a byte outside the alphabet is not the same state, even
 * where a lax decoder would read it as '_' (libsodium 1.0.18 reads bytes >= 0x80 as 63). */
static void test_state_non_alphabet_byte(void **state)
{
    (void)state;
    char *t = NULL;
    char *us = NULL;
    for (int tries = 0; tries < 200 && !us; tries++) {
        t = state_issue(&arena, &ring_a, sess1, NULL, NULL, NOW);
        us = strchr(t, '_');
    }
    assert_non_null(us);
    struct state_claims c;
    assert_int_equal(verify(&ring_a, t, sess1, NULL, NOW, &c), STATE_OK);
    for (int b = 0x80; b <= 0xff; b += 0x11) {
        *us = (char)b;
        enum state_result r = verify(&ring_a, t, sess1, NULL, NOW, &c);
        if (r == STATE_OK)
            fail_msg("state with '_' replaced by byte 0x%02x still verifies", b);
        assert_int_equal(r, STATE_MALFORMED);
    }
}

/* RFC 7636 appendix B: the S256 challenge of its example verifier. */
static void test_pkce_challenge_rfc7636(void **state)
{
    (void)state;
    char challenge[STATE_PKCE_LEN + 1];
    state_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk", challenge);
    assert_string_equal(challenge, "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}

/* The verifier comes from the state and its key alone: the same at /connect and at the
 * callback (also after a rotation, by the old key), different for every state, unknown
 * without the key. */
static void test_pkce_verifier_from_state(void **state)
{
    (void)state;
    const char *s1 = state_issue(&arena, &ring_a, sess1, NULL, NULL, NOW);
    const char *s2 = state_issue(&arena, &ring_a, sess1, NULL, NULL, NOW);
    char v1[STATE_PKCE_LEN + 1], v1_again[STATE_PKCE_LEN + 1], v2[STATE_PKCE_LEN + 1];
    assert_true(state_pkce_verifier(&ring_a, s1, v1));
    assert_int_equal(strlen(v1), 43); /* RFC 7636: 43 to 128 characters */
    for (const char *p = v1; *p; p++)
        assert_non_null(strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", *p));
    assert_true(state_pkce_verifier(&ring_b_old_a, s1, v1_again)); /* A is an old key there */
    assert_string_equal(v1, v1_again);
    assert_true(state_pkce_verifier(&ring_a, s2, v2));
    assert_string_not_equal(v1, v2);
    assert_false(state_pkce_verifier(&ring_b, s1, v2)); /* A unknown */
    assert_false(state_pkce_verifier(&ring_a, "short", v2));
    char c1[STATE_PKCE_LEN + 1];
    state_pkce_challenge(v1, c1);
    assert_string_not_equal(c1, v1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_state_ok, reset_arena),
        cmocka_unit_test_setup(test_pkce_challenge_rfc7636, reset_arena),
        cmocka_unit_test_setup(test_pkce_verifier_from_state, reset_arena),
        cmocka_unit_test_setup(test_state_no_return_to, reset_arena),
        cmocka_unit_test_setup(test_state_nonce_random, reset_arena),
        cmocka_unit_test_setup(test_state_used_id, reset_arena),
        cmocka_unit_test_setup(test_state_tamper_bytes, reset_arena),
        cmocka_unit_test_setup(test_state_tamper_text, reset_arena),
        cmocka_unit_test_setup(test_state_bindings, reset_arena),
        cmocka_unit_test_setup(test_state_earlier_sessions, reset_arena),
        cmocka_unit_test_setup(test_state_expiry, reset_arena),
        cmocka_unit_test_setup(test_state_key_rotation, reset_arena),
        cmocka_unit_test_setup(test_state_wrong_mac_key, reset_arena),
        cmocka_unit_test_setup(test_state_malformed, reset_arena),
        cmocka_unit_test_setup(test_state_long_return_to, reset_arena),
        cmocka_unit_test_setup(test_state_unsafe_return_to, reset_arena),
        cmocka_unit_test_setup(test_state_non_alphabet_byte, reset_arena),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
