/* test_session.c — finding the session id in a Cookie header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <sodium.h>

#include "ids.h"
#include "session.h"

#define NAME "__Host-fbconnect_session"

static id_text id1, id2;

static int group_setup(void **state)
{
    (void)state;
    if (sodium_init() < 0)
        return -1;
    id_new(id1);
    id_new(id2);
    return 0;
}

/* Expands "%1" and "%2" in a pattern to id1 and id2. */
static void expand(const char *pattern, char *out, size_t outsz)
{
    size_t o = 0;
    for (const char *p = pattern; *p && o + ID_TEXT_LEN + 1 < outsz; p++) {
        if (p[0] == '%' && (p[1] == '1' || p[1] == '2')) {
            memcpy(out + o, p[1] == '1' ? id1 : id2, ID_TEXT_LEN);
            o += ID_TEXT_LEN;
            p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

struct cookie_case {
    const char *header;
    int want; /* 0: not found, 1: id1, 2: id2 */
};

static const struct cookie_case cookie_cases[] = {
    /* plain */
    {NAME "=%1", 1},
    {NAME "=%2", 2},
    /* among others, with "; " and ";" separators */
    {"a=b; " NAME "=%1; c=d", 1},
    {"a=b;" NAME "=%1;c=d", 1},
    {"a=b;  " NAME "=%1", 1},
    {"a=b;\t" NAME "=%1", 1},
    {"theme=dark; lang=en; " NAME "=%2", 2},
    {NAME "=%1; other=%2", 1},
    {"; ;" NAME "=%1;", 1},
    /* other cookies holding ids are not ours */
    {"x" NAME "=%1", 0},
    {NAME "x=%1", 0},
    {NAME "_old=%1; " NAME "=%2", 2},
    {"fbconnect_session=%1", 0},
    {"other=%1", 0},
    {"a=" NAME "=%1", 0},
    {"a=b, " NAME "=%1", 0},
    /* duplicates: the first well-formed one */
    {NAME "=%1; " NAME "=%2", 1},
    {NAME "=%2; " NAME "=%1", 2},
    /* junk values are skipped */
    {NAME "=; " NAME "=%2", 2},
    {NAME "=junk; " NAME "=%2", 2},
    {NAME "=%1x; " NAME "=%2", 2},
    {NAME "=x%1; " NAME "=%2", 2},
    {NAME "=\"%1\"; " NAME "=%2", 2},
    {NAME "=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; " NAME "=%2", 2},   /* 42 */
    {NAME "=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA; " NAME "=%2", 2}, /* 44 */
    {NAME "=AAAAAAAAAAAAAAAAAAAAA+AAAAAAAAAAAAAAAAAAAAA; " NAME "=%2", 2},
    {NAME "=AAAAAAAAAAAAAAAAAAAAA/AAAAAAAAAAAAAAAAAAAAA; " NAME "=%2", 2},
    {NAME "=AAAAAAAAAAAAAAAAAAAAA AAAAAAAAAAAAAAAAAAAAA; " NAME "=%2", 2},
    {NAME "=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=; " NAME "=%2", 2},
    {NAME "=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAB; " NAME "=%2", 2},
    {NAME "; " NAME "=%2", 2},
    {NAME "=%1x", 0},
    {NAME "=junk", 0},
    {NAME "=", 0},
    {NAME, 0},
    {"", 0},
    {";", 0},
    {"; ; ;", 0},
    {"   ", 0},
    {"=", 0},
    {"==%1", 0},
};

static void test_cookie_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof cookie_cases / sizeof cookie_cases[0]; i++) {
        char header[512];
        expand(cookie_cases[i].header, header, sizeof header);
        id_text out;
        memset(out, '?', sizeof out);
        out[ID_TEXT_LEN] = '\0';
        bool found = session_cookie_find(header, NAME, out);
        int want = cookie_cases[i].want;
        if (found != (want != 0))
            fail_msg("case %zu \"%s\": found=%d, want %d", i, cookie_cases[i].header, found, want);
        if (want)
            assert_string_equal(out, want == 1 ? id1 : id2);
    }
}

static void test_cookie_null_header(void **state)
{
    (void)state;
    id_text out;
    assert_false(session_cookie_find(NULL, NAME, out));
}

/* Works with another configured name (plain, no __Host- prefix). */
static void test_cookie_other_name(void **state)
{
    (void)state;
    char header[256];
    id_text out;
    snprintf(header, sizeof header, "__Host-fbconnect_session=%s; fbconnect_session=%s", id1, id2);
    assert_true(session_cookie_find(header, "fbconnect_session", out));
    assert_string_equal(out, id2);
    assert_true(session_cookie_find(header, NAME, out));
    assert_string_equal(out, id1);
    assert_false(session_cookie_find(header, "session", out));
}

/* A long header full of junk before the real cookie. */
static void test_cookie_long_header(void **state)
{
    (void)state;
    static char header[16384];
    size_t n = 0;
    for (int i = 0; i < 300; i++)
        n += (size_t)snprintf(header + n, sizeof header - n, "c%d=%s; ", i, i % 2 ? id2 : "x");
    n += (size_t)snprintf(header + n, sizeof header - n, NAME "=%s", id1);
    assert_true(n < sizeof header);
    id_text out;
    assert_true(session_cookie_find(header, NAME, out));
    assert_string_equal(out, id1);
}

/* Non-ASCII junk of the right length is not a session id. */
static void test_cookie_non_ascii_value(void **state)
{
    (void)state;
    char header[256];
    id_text bad;
    memcpy(bad, id1, sizeof bad);
    bad[0] = (char)0xc3;
    bad[1] = (char)0xa9;
    snprintf(header, sizeof header, NAME "=%s", bad);
    id_text out;
    assert_false(session_cookie_find(header, NAME, out));
    snprintf(header, sizeof header, NAME "=%s; " NAME "=%s", bad, id2);
    assert_true(session_cookie_find(header, NAME, out));
    assert_string_equal(out, id2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cookie_table),           cmocka_unit_test(test_cookie_null_header),
        cmocka_unit_test(test_cookie_other_name),      cmocka_unit_test(test_cookie_long_header),
        cmocka_unit_test(test_cookie_non_ascii_value),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
