/* test_oauth.c — the pure parsers of FreshBooks' token and users/me answers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "oauth.h"

#define NOW INT64_C(1764401234)

static struct arena arena;

static int group_setup(void **state)
{
    (void)state;
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

static enum oauth_result parse_token(long status, const char *body, struct token_pair *out)
{
    return oauth_parse_token(&arena, status, body, strlen(body), NOW, out);
}

/* ---------------------------------------------------------------- token */

static const char TOKEN_OK[] =
    "{\"access_token\":\"eyJhbGciOiJIUzI1NiJ9.abc-def_ghi\",\"token_type\":\"Bearer\","
    "\"expires_in\":43200,\"refresh_token\":\"r3fr3sh-T0ken\","
    "\"scope\":\"user:profile:read user:clients:read\",\"created_at\":1764400000,"
    "\"direct_buy_tokens\":{},\"some_future_key\":[1,2,{\"x\":null}]}";

static void test_token_ok(void **state)
{
    (void)state;
    struct token_pair p;
    memset(&p, 0, sizeof p);
    assert_int_equal(parse_token(200, TOKEN_OK, &p), OAUTH_OK);
    assert_string_equal(p.access_token, "eyJhbGciOiJIUzI1NiJ9.abc-def_ghi");
    assert_string_equal(p.refresh_token, "r3fr3sh-T0ken");
    assert_string_equal(p.scope, "user:profile:read user:clients:read");
    assert_int_equal(p.created_at, 1764400000);
    assert_int_equal(p.expires_at, NOW + 43200);
}

static void test_token_defaults(void **state)
{
    (void)state;
    struct token_pair p;
    /* no created_at: now; no scope: ""; no token_type: accepted; lowercase bearer fine */
    static const char body[] =
        "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":43199}";
    assert_int_equal(parse_token(200, body, &p), OAUTH_OK);
    assert_int_equal(p.created_at, NOW);
    assert_int_equal(p.expires_at, NOW + 43199);
    assert_string_equal(p.scope, "");
    static const char lower[] = "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":60,"
                                "\"token_type\":\"bearer\",\"created_at\":1764400000}";
    assert_int_equal(parse_token(200, lower, &p), OAUTH_OK);
    assert_int_equal(p.expires_at, NOW + 60);
    /* a null created_at falls back to now as well */
    static const char nul[] = "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":60,"
                              "\"created_at\":null}";
    assert_int_equal(parse_token(200, nul, &p), OAUTH_OK);
    assert_int_equal(p.created_at, NOW);
}

/* Expiry is counted on fbconnect's clock from when the call was sent: a created_at 30 days
 * ahead or behind changes nothing, and no claimed lifetime is trusted beyond a day. */
static void test_token_expiry_on_our_clock(void **state)
{
    (void)state;
    struct token_pair p;
    char body[256];
    static const long long skews[] = {30LL * 86400, -30LL * 86400, 0};
    for (size_t i = 0; i < 3; i++) {
        snprintf(body, sizeof body,
                 "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":43200,"
                 "\"created_at\":%lld}", (long long)NOW + skews[i]);
        assert_int_equal(parse_token(200, body, &p), OAUTH_OK);
        assert_int_equal(p.created_at, NOW + skews[i]);
        assert_int_equal(p.expires_at, NOW + 43200);
    }
    static const char long_life[] =
        "{\"access_token\":\"a\",\"refresh_token\":\"r\",\"expires_in\":2592000}";
    assert_int_equal(parse_token(200, long_life, &p), OAUTH_OK);
    assert_int_equal(p.expires_at, NOW + OAUTH_LIFETIME_MAX);
}

struct token_case {
    long status;
    const char *body;
    enum oauth_result want;
};

#define AT "\"access_token\":\"a\""
#define RT "\"refresh_token\":\"r\""
#define EI "\"expires_in\":43200"

static const struct token_case token_cases[] = {
    /* 200 but not sane */
    {200, "{" AT "," EI "}", OAUTH_UNAVAILABLE},                          /* no refresh token */
    {200, "{" RT "," EI "}", OAUTH_UNAVAILABLE},                          /* no access token */
    {200, "{" AT "," RT "}", OAUTH_UNAVAILABLE},                          /* no expires_in */
    {200, "{" AT "," RT ",\"expires_in\":\"43200\"}", OAUTH_UNAVAILABLE}, /* string */
    {200, "{" AT "," RT ",\"expires_in\":43200.5}", OAUTH_UNAVAILABLE},   /* real */
    {200, "{" AT "," RT ",\"expires_in\":null}", OAUTH_UNAVAILABLE},
    {200, "{" AT "," RT ",\"expires_in\":0}", OAUTH_UNAVAILABLE},
    {200, "{" AT "," RT ",\"expires_in\":-1}", OAUTH_UNAVAILABLE},
    {200, "{" AT "," RT ",\"expires_in\":999999999999}", OAUTH_UNAVAILABLE},
    {200, "{" AT "," RT "," EI ",\"created_at\":-5}", OAUTH_UNAVAILABLE},
    {200, "{" AT "," RT "," EI ",\"created_at\":99999999999}", OAUTH_UNAVAILABLE},
    {200, "{\"access_token\":\"a b\"," RT "," EI "}", OAUTH_UNAVAILABLE}, /* space */
    {200, "{" AT ",\"refresh_token\":\"r r\"," EI "}", OAUTH_UNAVAILABLE},
    {200, "{\"access_token\":\"a\\u0001\"," RT "," EI "}", OAUTH_UNAVAILABLE}, /* control */
    {200, "{\"access_token\":\"a\\nb\"," RT "," EI "}", OAUTH_UNAVAILABLE},
    {200, "{\"access_token\":\"a\\r\\nX-Evil: 1\"," RT "," EI "}", OAUTH_UNAVAILABLE},
    {200, "{" AT ",\"refresh_token\":\"r\\t\"," EI "}", OAUTH_UNAVAILABLE},
    {200, "{\"access_token\":\"a\\u007f\"," RT "," EI "}", OAUTH_UNAVAILABLE},
    {200, "{\"access_token\":\"caf\\u00e9\"," RT "," EI "}", OAUTH_UNAVAILABLE}, /* non-ASCII */
    {200, "{\"access_token\":\"\"," RT "," EI "}", OAUTH_UNAVAILABLE},           /* empty */
    {200, "{" AT ",\"refresh_token\":\"\"," EI "}", OAUTH_UNAVAILABLE},
    {200, "{\"access_token\":1," RT "," EI "}", OAUTH_UNAVAILABLE},
    {200, "{\"access_token\":null," RT "," EI "}", OAUTH_UNAVAILABLE},
    {200, "{" AT "," RT "," EI ",\"token_type\":\"mac\"}", OAUTH_UNAVAILABLE},
    {200, "{" AT "," RT "," EI ",\"token_type\":\"Bearer \"}", OAUTH_UNAVAILABLE},
    {200, "{" AT "," RT "," EI ",\"access_token\":\"b\"}", OAUTH_UNAVAILABLE}, /* duplicate */
    {200, "{" AT "," RT "," EI, OAUTH_UNAVAILABLE},                            /* truncated */
    {200, "{" AT "," RT ",\"expi", OAUTH_UNAVAILABLE},
    {200, "", OAUTH_UNAVAILABLE},
    {200, "null", OAUTH_UNAVAILABLE},
    {200, "[]", OAUTH_UNAVAILABLE},
    {200, "\"x\"", OAUTH_UNAVAILABLE},
    {200, "<html><body>Service temporarily unavailable</body></html>", OAUTH_UNAVAILABLE},
    {200, "{\"error\":\"invalid_grant\"}", OAUTH_UNAVAILABLE},
    /* refusals */
    {400,
     "{\"error\":\"invalid_grant\",\"error_description\":\"The provided authorization grant "
     "is invalid, expired, revoked\"}",
     OAUTH_INVALID_GRANT},
    {401, "{\"error\":\"invalid_grant\"}", OAUTH_INVALID_GRANT},
    {401, "{\"error\":\"invalid_client\",\"error_description\":\"Client authentication failed\"}",
     OAUTH_INVALID_CLIENT},
    {400, "{\"error\":\"invalid_client\"}", OAUTH_INVALID_CLIENT},
    {400, "{\"error\":\"unauthorized_client\"}", OAUTH_INVALID_CLIENT},
    {401, "", OAUTH_INVALID_CLIENT},
    {401, "<html>Unauthorized</html>", OAUTH_INVALID_CLIENT},
    {401, "{}", OAUTH_INVALID_CLIENT},
    {400, "{\"error\":\"invalid_request\"}", OAUTH_REJECTED},
    {400, "{\"error\":\"unsupported_grant_type\"}", OAUTH_REJECTED},
    {400, "", OAUTH_REJECTED},
    {403, "{\"error\":\"forbidden\"}", OAUTH_REJECTED},
    {404, "not found", OAUTH_REJECTED},
    {401, "{\"error\":\"unauthenticated\"}", OAUTH_REJECTED},
    {400, "{\"error\":\"Invalid_Grant\"}", OAUTH_REJECTED},
    {400, "{\"error\":5}", OAUTH_REJECTED},
    {429, "", OAUTH_RATE_LIMITED},
    {429, "{\"error\":\"invalid_grant\"}", OAUTH_RATE_LIMITED},
    {500, "", OAUTH_UNAVAILABLE},
    {500, "{\"error\":\"invalid_grant\"}", OAUTH_UNAVAILABLE},
    {502, "<html>Bad gateway</html>", OAUTH_UNAVAILABLE},
    {503, "{\"error\":\"temporarily_unavailable\"}", OAUTH_UNAVAILABLE},
    {504, "", OAUTH_UNAVAILABLE},
    /* a 2xx other than 200, redirects, nonsense statuses: not a token */
    {201, TOKEN_OK, OAUTH_UNAVAILABLE},
    {302, "", OAUTH_UNAVAILABLE},
    {0, TOKEN_OK, OAUTH_UNAVAILABLE},
    {999, "", OAUTH_UNAVAILABLE},
};

static void test_token_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof token_cases / sizeof token_cases[0]; i++) {
        const struct token_case *tc = &token_cases[i];
        struct token_pair p;
        memset(&p, 0, sizeof p);
        enum oauth_result r = parse_token(tc->status, tc->body, &p);
        if (r != tc->want)
            fail_msg("token case %zu (HTTP %ld %s): got %s, want %s", i, tc->status, tc->body,
                     oauth_result_name(r), oauth_result_name(tc->want));
        arena_reset(&arena);
    }
}

/* The body's length is what counts, not a NUL terminator. */
static void test_token_length(void **state)
{
    (void)state;
    struct token_pair p;
    assert_int_equal(oauth_parse_token(&arena, 200, TOKEN_OK, strlen(TOKEN_OK) - 1, NOW, &p),
                     OAUTH_UNAVAILABLE);
    assert_int_equal(oauth_parse_token(&arena, 200, TOKEN_OK, strlen(TOKEN_OK), NOW, &p), OAUTH_OK);
    /* a NUL byte inside the body */
    char body[sizeof TOKEN_OK + 8];
    memcpy(body, TOKEN_OK, sizeof TOKEN_OK);
    body[20] = '\0';
    assert_int_equal(oauth_parse_token(&arena, 200, body, sizeof TOKEN_OK - 1, NOW, &p),
                     OAUTH_UNAVAILABLE);
}

/* Over-long tokens are refused; the longest allowed passes. */
static void test_token_max_len(void **state)
{
    (void)state;
    struct buf b = {0};
    for (size_t len = OAUTH_TOKEN_MAX; len <= OAUTH_TOKEN_MAX + 1; len++) {
        buf_reset(&b);
        buf_puts(&b, "{\"access_token\":\"");
        for (size_t i = 0; i < len; i++)
            buf_putc(&b, 'x');
        buf_puts(&b, "\"," RT "," EI "}");
        struct token_pair p;
        enum oauth_result r = oauth_parse_token(&arena, 200, b.data, b.len, NOW, &p);
        assert_int_equal(r, len <= OAUTH_TOKEN_MAX ? OAUTH_OK : OAUTH_UNAVAILABLE);
        if (r == OAUTH_OK)
            assert_int_equal(strlen(p.access_token), len);
    }
    buf_free(&b);
}

static void test_result_names(void **state)
{
    (void)state;
    const enum oauth_result all[] = {OAUTH_OK,       OAUTH_INVALID_GRANT, OAUTH_INVALID_CLIENT,
                                     OAUTH_REJECTED, OAUTH_RATE_LIMITED,  OAUTH_UNAVAILABLE};
    for (size_t i = 0; i < 6; i++) {
        const char *n = oauth_result_name(all[i]);
        assert_non_null(n);
        assert_true(n[0] != '\0');
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(n, oauth_result_name(all[k]));
    }
}

/* ---------------------------------------------------------------- identity */

static const char ME_OK[] =
    "{\"response\":{\"id\":123,\"identity_id\":123,\"first_name\":\"Ada\",\"last_name\":"
    "\"Lovelace\","
    "\"email\":\"ada@example.com\",\"business_memberships\":[{\"id\":9,\"role\":\"owner\","
    "\"business\":{\"id\":77,\"name\":\"Ada & Co\",\"account_id\":\"xZ12k\"}}]}}";

static enum oauth_result parse_me(long status, const char *body, struct identity *out)
{
    return oauth_parse_identity(&arena, status, body, strlen(body), out);
}

static void test_identity_ok(void **state)
{
    (void)state;
    struct identity id;
    memset(&id, 0, sizeof id);
    assert_int_equal(parse_me(200, ME_OK, &id), OAUTH_OK);
    assert_int_equal(id.user_id, 123);
    assert_string_equal(id.email, "ada@example.com");
    assert_string_equal(id.first_name, "Ada");
    assert_string_equal(id.last_name, "Lovelace");
    assert_int_equal(id.n_businesses, 1);
    assert_int_equal(id.businesses[0].id, 77);
    assert_string_equal(id.businesses[0].name, "Ada & Co");
    assert_string_equal(id.businesses[0].account_id, "xZ12k");
    assert_string_equal(id.businesses[0].role, "owner");
    assert_string_equal(id.businesses[0].uuid, "");
}

/* FreshBooks' fuller shape (its SDK fixtures): every membership's business id, uuid, name,
 * account_id and role — and the membership's own id is not the business's. */
static void test_identity_several_businesses(void **state)
{
    (void)state;
    static const char body[] =
        "{\"response\":{\"id\":123,\"identity_id\":123,\"identity_uuid\":\"x\",\"first_name\":\"Ada\","
        "\"email\":\"ada@example.com\",\"business_memberships\":["
        "{\"id\":9,\"role\":\"owner\",\"business\":{\"id\":77,\"business_uuid\":\"6e0b-77\","
        "\"name\":\"Ada & Co\",\"account_id\":\"xZ12k\",\"active\":true}},"
        "{\"id\":14,\"role\":\"client\",\"business\":{\"id\":91,\"business_uuid\":\"a3f1-91\","
        "\"name\":\"Babbage Ltd\",\"account_id\":\"Qp7Lm\",\"active\":true}},"
        "{\"id\":15,\"role\":\"business_employee\",\"business\":{\"id\":92,\"name\":\"Hopper\","
        "\"account_id\":\"Hh1\"}}],"
        "\"subscription_statuses\":{\"xZ12k\":\"active\"}}}";
    struct identity id;
    assert_int_equal(parse_me(200, body, &id), OAUTH_OK);
    assert_int_equal(id.n_businesses, 3);
    static const struct {
        int64_t id;
        const char *uuid, *name, *account, *role;
    } want[] = {{77, "6e0b-77", "Ada & Co", "xZ12k", "owner"},
                {91, "a3f1-91", "Babbage Ltd", "Qp7Lm", "client"},
                {92, "", "Hopper", "Hh1", "business_employee"}};
    for (size_t i = 0; i < 3; i++) {
        assert_int_equal(id.businesses[i].id, want[i].id); /* never 9, 14, 15 */
        assert_string_equal(id.businesses[i].uuid, want[i].uuid);
        assert_string_equal(id.businesses[i].name, want[i].name);
        assert_string_equal(id.businesses[i].account_id, want[i].account);
        assert_string_equal(id.businesses[i].role, want[i].role);
    }
}

/* A business FreshBooks marks inactive is not offered; a second membership of one business
 * is one business. */
static void test_identity_inactive_and_repeated(void **state)
{
    (void)state;
    static const char body[] =
        "{\"response\":{\"id\":7,\"email\":\"e@x\",\"business_memberships\":["
        "{\"id\":1,\"role\":\"owner\",\"business\":{\"id\":70,\"name\":\"Old\",\"account_id\":\"o1\","
        "\"active\":false}},"
        "{\"id\":2,\"role\":\"admin\",\"business\":{\"id\":71,\"name\":\"Live\",\"account_id\":\"l1\"}},"
        "{\"id\":3,\"role\":\"client\",\"business\":{\"id\":71,\"name\":\"Live\",\"account_id\":\"l1\"}}]}}";
    struct identity id;
    assert_int_equal(parse_me(200, body, &id), OAUTH_OK);
    assert_int_equal(id.n_businesses, 1);
    assert_int_equal(id.businesses[0].id, 71);
    assert_string_equal(id.businesses[0].role, "admin");
}

/* FBCONNECT_SCOPES against a pair's granted scope: any order, repeats and spacing alike. */
static void test_scopes_missing(void **state)
{
    (void)state;
    static const struct {
        const char *wanted, *granted;
        bool missing;
    } cases[] = {
        {"user:profile:read", "user:profile:read", false},
        {"a b", "b a", false},
        {"a  b ", " b a", false},
        {"a a", "a", false},
        {"a", "a b", false},
        {"a b", "a", true},
        {"a b c", "a c", true},
        {"user:profile:read", "user:profile:readx", true},
        {"user:profile:readx", "user:profile:read", true},
        {"a", "", false},   /* FreshBooks stated no scope: taken as granted */
        {NULL, "a", false}, /* none asked */
        {"", "a", false},
        {"a", NULL, false},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (oauth_scopes_missing(cases[i].wanted, cases[i].granted) != cases[i].missing)
            fail_msg("oauth_scopes_missing(%s, %s) != %d", cases[i].wanted ? cases[i].wanted : "NULL",
                     cases[i].granted ? cases[i].granted : "NULL", cases[i].missing);
}

static void test_identity_memberships(void **state)
{
    (void)state;
    static const char body[] =
        "{\"response\":{\"id\":5,\"email\":\"e@x\",\"business_memberships\":["
        "{\"id\":1,\"role\":\"owner\"},"                             /* no business */
        "{\"business\":{\"name\":\"no id\",\"account_id\":\"A1\"}}," /* no id */
        "{\"business\":{\"id\":\"12\",\"name\":\"string id\"}},"     /* string id */
        "{\"business\":{\"id\":88,\"name\":\"Beta\",\"account_id\":\"bB2\"}},"
        "{\"business\":null},"
        "7,"
        "{\"business\":{\"id\":89}}" /* no name/account */
        "]}}";
    struct identity id;
    assert_int_equal(parse_me(200, body, &id), OAUTH_OK);
    assert_int_equal(id.user_id, 5);
    assert_int_equal(id.n_businesses, 2);
    assert_int_equal(id.businesses[0].id, 88);
    assert_string_equal(id.businesses[0].name, "Beta");
    assert_string_equal(id.businesses[0].account_id, "bB2");
    assert_int_equal(id.businesses[1].id, 89);
    assert_string_equal(id.businesses[1].name, "");
    assert_string_equal(id.businesses[1].account_id, "");
    /* missing names: empty strings, never NULL */
    assert_string_equal(id.first_name, "");
    assert_string_equal(id.last_name, "");

    /* no memberships at all */
    static const char none[] = "{\"response\":{\"id\":6}}";
    assert_int_equal(parse_me(200, none, &id), OAUTH_OK);
    assert_int_equal(id.n_businesses, 0);
    assert_string_equal(id.email, "");
}

struct me_case {
    long status;
    const char *body;
    enum oauth_result want;
};

static const struct me_case me_cases[] = {
    {200, "{\"response\":{\"first_name\":\"Ada\"}}", OAUTH_UNAVAILABLE}, /* no id */
    {200, "{\"response\":{\"id\":\"123\"}}", OAUTH_UNAVAILABLE},         /* string id */
    {200, "{\"response\":{\"id\":12.5}}", OAUTH_UNAVAILABLE},            /* real id */
    {200, "{\"response\":{\"id\":null}}", OAUTH_UNAVAILABLE},
    {200, "{\"response\":{\"id\":0}}", OAUTH_UNAVAILABLE},
    {200, "{\"response\":{\"id\":-4}}", OAUTH_UNAVAILABLE},
    {200, "{\"id\":123}", OAUTH_UNAVAILABLE}, /* no response */
    {200, "{\"response\":123}", OAUTH_UNAVAILABLE},
    {200, "{\"response\":[{\"id\":123}]}", OAUTH_UNAVAILABLE},
    {200, "{\"response\":{\"id\":123}", OAUTH_UNAVAILABLE}, /* truncated */
    {200, "", OAUTH_UNAVAILABLE},
    {200, "<html>oops</html>", OAUTH_UNAVAILABLE},
    {200, "[]", OAUTH_UNAVAILABLE},
    {401, "{\"error\":\"unauthenticated\"}", OAUTH_REJECTED},
    {401, "", OAUTH_REJECTED},
    {403, "{\"error\":\"forbidden\"}", OAUTH_REJECTED},
    {404, ME_OK, OAUTH_REJECTED},
    {429, "", OAUTH_RATE_LIMITED},
    {500, ME_OK, OAUTH_UNAVAILABLE},
    {503, "", OAUTH_UNAVAILABLE},
    {302, "", OAUTH_UNAVAILABLE},
    {0, ME_OK, OAUTH_UNAVAILABLE},
};

static void test_identity_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof me_cases / sizeof me_cases[0]; i++) {
        const struct me_case *tc = &me_cases[i];
        struct identity id;
        memset(&id, 0, sizeof id);
        enum oauth_result r = parse_me(tc->status, tc->body, &id);
        if (r != tc->want)
            fail_msg("users/me case %zu (HTTP %ld %s): got %s, want %s", i, tc->status, tc->body,
                     oauth_result_name(r), oauth_result_name(tc->want));
        arena_reset(&arena);
    }
}

/* Large membership lists are capped, not trusted blindly. */
static void test_identity_many_businesses(void **state)
{
    (void)state;
    struct buf b = {0};
    buf_puts(&b, "{\"response\":{\"id\":1,\"business_memberships\":[");
    for (int i = 0; i < 1000; i++)
        buf_printf(&b, "%s{\"business\":{\"id\":%d,\"name\":\"b%d\",\"account_id\":\"a%d\"}}",
                   i ? "," : "", i + 1, i, i);
    buf_puts(&b, "]}}");
    struct identity id;
    assert_int_equal(oauth_parse_identity(&arena, 200, b.data, b.len, &id), OAUTH_OK);
    assert_true(id.n_businesses >= 1);
    assert_true(id.n_businesses <= 256);
    assert_int_equal(id.businesses[0].id, 1);
    assert_string_equal(id.businesses[0].account_id, "a0");
    buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_token_ok, reset_arena),
        cmocka_unit_test_setup(test_token_defaults, reset_arena),
        cmocka_unit_test_setup(test_token_expiry_on_our_clock, reset_arena),
        cmocka_unit_test_setup(test_token_table, reset_arena),
        cmocka_unit_test_setup(test_token_length, reset_arena),
        cmocka_unit_test_setup(test_token_max_len, reset_arena),
        cmocka_unit_test_setup(test_result_names, reset_arena),
        cmocka_unit_test_setup(test_identity_ok, reset_arena),
        cmocka_unit_test_setup(test_identity_memberships, reset_arena),
        cmocka_unit_test_setup(test_identity_several_businesses, reset_arena),
        cmocka_unit_test_setup(test_identity_inactive_and_repeated, reset_arena),
        cmocka_unit_test_setup(test_scopes_missing, reset_arena),
        cmocka_unit_test_setup(test_identity_table, reset_arena),
        cmocka_unit_test_setup(test_identity_many_businesses, reset_arena),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
