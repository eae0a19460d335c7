/* test_url.c — url_decode, form_get and url_return_to_valid. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "arena.h"
#include "url.h"

/* ---------------------------------------------------------------- url_decode */

struct decode_case {
    const char *in;
    size_t len; /* 0: strlen(in) */
    bool plus;
    ssize_t want_len; /* -1: rejected */
    const char *want;
};

static const struct decode_case decode_cases[] = {
    {"", 0, true, 0, ""},
    {"abc", 0, true, 3, "abc"},
    {"%41", 0, true, 1, "A"},
    {"%4a%4A", 0, true, 2, "JJ"},
    {"a%20b", 0, true, 3, "a b"},
    {"%C3%A9", 0, true, 2, "\xc3\xa9"},
    {"%ff", 0, true, 1, "\xff"},
    {"%25", 0, true, 1, "%"},
    {"%2B", 0, true, 1, "+"},
    {"a+b", 0, true, 3, "a b"},
    {"a+b", 0, false, 3, "a+b"},
    {"++", 0, true, 2, "  "},
    {"%2b+", 0, true, 2, "+ "},
    {"%2b+", 0, false, 2, "++"},
    {"%0A", 0, true, 1, "\n"},
    {"%01", 0, true, 1, "\x01"},
    {"%7e~", 0, true, 2, "~~"},
    /* malformed */
    {"%", 0, true, -1, NULL},
    {"a%", 0, true, -1, NULL},
    {"%4", 0, true, -1, NULL},
    {"ab%4", 0, true, -1, NULL},
    {"%zz", 0, true, -1, NULL},
    {"%g0", 0, true, -1, NULL},
    {"%0g", 0, true, -1, NULL},
    {"% 1", 0, true, -1, NULL},
    {"%-1", 0, true, -1, NULL},
    {"%+1", 0, true, -1, NULL},
    {"%%41", 0, true, -1, NULL},
    {"x%00y", 0, true, -1, NULL},
    {"%00", 0, false, -1, NULL},
    {"a\0b", 3, true, -1, NULL},
    {"\0", 1, false, -1, NULL},
};

static void test_url_decode_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof decode_cases / sizeof decode_cases[0]; i++) {
        const struct decode_case *tc = &decode_cases[i];
        size_t len = tc->len ? tc->len : strlen(tc->in);
        char out[64];
        memset(out, 0x5a, sizeof out);
        ssize_t n = url_decode(tc->in, len, out, tc->plus);
        if (n != tc->want_len)
            fail_msg("url_decode case %zu (\"%s\", plus=%d): got %zd, want %zd", i, tc->in,
                     tc->plus, n, tc->want_len);
        if (n >= 0 && memcmp(out, tc->want, (size_t)n) != 0)
            fail_msg("url_decode case %zu (\"%s\"): wrong bytes", i, tc->in);
    }
}

/* Only `len` bytes are read: a '%' right at the end of the slice is malformed even when
 * hex digits follow it in memory. */
static void test_url_decode_respects_len(void **state)
{
    (void)state;
    char out[8];
    assert_int_equal(url_decode("ab%41", 3, out, true), -1);
    assert_int_equal(url_decode("ab%41", 4, out, true), -1);
    assert_int_equal(url_decode("ab%41", 5, out, true), 3);
    assert_memory_equal(out, "abA", 3);
    assert_int_equal(url_decode("abc", 2, out, true), 2);
    assert_memory_equal(out, "ab", 2);
}

/* ---------------------------------------------------------------- form_get */

struct form_case {
    const char *form;
    const char *name;
    size_t max_len;
    enum form_status want;
    const char *want_value; /* for FORM_OK */
};

static const struct form_case form_cases[] = {
    {"state=abc", "state", 100, FORM_OK, "abc"},
    {"code=1&state=abc&x=2", "state", 100, FORM_OK, "abc"},
    {"code=1&state=abc&x=2", "code", 100, FORM_OK, "1"},
    {"code=1&state=abc&x=2", "x", 100, FORM_OK, "2"},
    {"code=1&state=abc", "missing", 100, FORM_MISSING, NULL},
    {"", "state", 100, FORM_MISSING, NULL},
    {"&&&", "state", 100, FORM_MISSING, NULL},
    {"=&=x", "state", 100, FORM_MISSING, NULL},
    {"states=1&xstate=2&stat=3", "state", 100, FORM_MISSING, NULL},
    {"STATE=1", "state", 100, FORM_MISSING, NULL},
    /* duplicates are ambiguous */
    {"state=a&state=b", "state", 100, FORM_DUPLICATE, NULL},
    {"state=a&state=a", "state", 100, FORM_DUPLICATE, NULL},
    {"state=a&x=1&state=", "state", 100, FORM_DUPLICATE, NULL},
    {"state=a&st%61te=b", "state", 100, FORM_DUPLICATE, NULL},
    {"state&state", "state", 100, FORM_DUPLICATE, NULL},
    /* names are decoded before comparing */
    {"st%61te=v", "state", 100, FORM_OK, "v"},
    {"%73%74%61%74%65=v", "state", 100, FORM_OK, "v"},
    {"return%5Fto=%2Fa", "return_to", 100, FORM_OK, "/a"},
    {"a+b=1", "a b", 100, FORM_OK, "1"},
    {"st%zzte=v&state=w", "state", 100, FORM_OK, "w"},
    /* values are decoded */
    {"q=a+b%20c", "q", 100, FORM_OK, "a b c"},
    {"q=%2B%26%3D", "q", 100, FORM_OK, "+&="},
    {"q=a=b", "q", 100, FORM_OK, "a=b"},
    {"q=", "q", 100, FORM_OK, ""},
    {"q=&r=1", "q", 100, FORM_OK, ""},
    {"q", "q", 100, FORM_OK, ""},
    {"r=1&q", "q", 100, FORM_OK, ""},
    /* bad values */
    {"q=%", "q", 100, FORM_INVALID, NULL},
    {"q=%4", "q", 100, FORM_INVALID, NULL},
    {"q=%zz", "q", 100, FORM_INVALID, NULL},
    {"q=a%00b", "q", 100, FORM_INVALID, NULL},
    /* length limit counts decoded bytes */
    {"q=12345", "q", 5, FORM_OK, "12345"},
    {"q=123456", "q", 5, FORM_INVALID, NULL},
    {"q=%41%41%41%41%41", "q", 5, FORM_OK, "AAAAA"},
    {"q=%41%41%41%41%41%41", "q", 5, FORM_INVALID, NULL},
    {"q=1", "q", 0, FORM_INVALID, NULL},
    {"q=", "q", 0, FORM_OK, ""},
    /* a bad value of another parameter does not matter */
    {"x=%zz&q=1", "q", 100, FORM_OK, "1"},
};

static void test_form_get_table(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0);
    for (size_t i = 0; i < sizeof form_cases / sizeof form_cases[0]; i++) {
        const struct form_case *tc = &form_cases[i];
        const char *value = "untouched";
        size_t vlen = 9999;
        enum form_status st =
            form_get(&a, tc->form, strlen(tc->form), tc->name, tc->max_len, &value, &vlen);
        if (st != tc->want)
            fail_msg("form_get case %zu (\"%s\", name \"%s\"): got %d, want %d", i, tc->form,
                     tc->name, (int)st, (int)tc->want);
        if (st == FORM_OK) {
            if (strcmp(value, tc->want_value) != 0 || vlen != strlen(tc->want_value))
                fail_msg("form_get case %zu (\"%s\"): value \"%s\" (%zu), want \"%s\"", i, tc->form,
                         value, vlen, tc->want_value);
        }
        arena_reset(&a);
    }
    arena_destroy(&a);
}

/* Only s[0..len) is looked at; value_len may be NULL. */
static void test_form_get_respects_len(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0);
    const char *s = "q=abc&r=1";
    const char *value = NULL;
    assert_int_equal(form_get(&a, s, 4, "q", 100, &value, NULL), FORM_OK);
    assert_string_equal(value, "ab");
    assert_int_equal(form_get(&a, s, 5, "r", 100, &value, NULL), FORM_MISSING);
    arena_destroy(&a);
}

/* An embedded raw NUL in a value is refused. */
static void test_form_get_raw_nul(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0);
    const char s[] = "q=a\0b&r=1";
    const char *value = NULL;
    assert_int_equal(form_get(&a, s, sizeof s - 1, "q", 100, &value, NULL), FORM_INVALID);
    assert_int_equal(form_get(&a, s, sizeof s - 1, "r", 100, &value, NULL), FORM_OK);
    assert_string_equal(value, "1");
    arena_destroy(&a);
}

/* 60 KB values work when allowed, and are refused one byte over the limit. */
static void test_form_get_large_values(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0);
    const size_t big = 60 * 1024;
    char *s = malloc(big * 3 + 64);
    assert_non_null(s);
    size_t n = 0;
    memcpy(s + n, "a=1&big=", 8);
    n += 8;
    for (size_t i = 0; i < big; i++)
        s[n++] = (char)('a' + i % 26);
    memcpy(s + n, "&z=2", 4);
    n += 4;
    const char *value = NULL;
    size_t vlen = 0;
    assert_int_equal(form_get(&a, s, n, "big", big, &value, &vlen), FORM_OK);
    assert_int_equal(vlen, big);
    assert_int_equal(strlen(value), big);
    assert_int_equal(value[0], 'a');
    assert_int_equal(value[big - 1], (char)('a' + (big - 1) % 26));
    assert_int_equal(form_get(&a, s, n, "big", big - 1, &value, &vlen), FORM_INVALID);
    assert_int_equal(form_get(&a, s, n, "z", 10, &value, &vlen), FORM_OK);
    assert_string_equal(value, "2");

    /* 60 KB of escapes decode to 20 KB */
    n = 0;
    memcpy(s + n, "enc=", 4);
    n += 4;
    for (size_t i = 0; i < big / 3; i++) {
        memcpy(s + n, "%41", 3);
        n += 3;
    }
    assert_int_equal(form_get(&a, s, n, "enc", big, &value, &vlen), FORM_OK);
    assert_int_equal(vlen, big / 3);
    assert_int_equal(value[vlen - 1], 'A');

    /* a 60 KB key never matches a short name */
    n = 0;
    for (size_t i = 0; i < big; i++)
        s[n++] = 'k';
    memcpy(s + n, "=1&k=2", 6);
    n += 6;
    assert_int_equal(form_get(&a, s, n, "k", 10, &value, &vlen), FORM_OK);
    assert_string_equal(value, "2");
    free(s);
    arena_destroy(&a);
}

/* url.h allows any name shorter than 64 bytes.  A raw key up to 3x the name's length is
 * decoded into a fixed buffer; a long name with a long plain key must not overflow it.
 * Run in a child so a crash (stack smashing) is reported as a failure, not an abort. */
static void test_form_get_long_name_long_key(void **state)
{
    (void)state;
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* cmocka's handlers would resume the test runner inside the child */
        signal(SIGSEGV, SIG_DFL);
        signal(SIGABRT, SIG_DFL);
        signal(SIGBUS, SIG_DFL);
        signal(SIGILL, SIG_DFL);
        struct arena a;
        arena_init(&a, 0);
        char name[64];
        memset(name, 'a', 63);
        name[63] = '\0';
        char form[256];
        size_t n = 0;
        memset(form, 'b', 180); /* 180 <= 3 * 63: the key is decoded */
        n = 180;
        memcpy(form + n, "=1&", 3);
        n += 3;
        memcpy(form + n, name, 63);
        n += 63;
        memcpy(form + n, "=2", 2);
        n += 2;
        const char *value = NULL;
        enum form_status st = form_get(&a, form, n, name, 10, &value, NULL);
        int ok = st == FORM_OK && value && strcmp(value, "2") == 0;
        arena_destroy(&a);
        _exit(ok ? 0 : 1);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status))
        fail_msg("form_get with a 63-byte name and a 180-byte key crashed (signal %d): "
                 "the decoded key overflows name_buf[64]",
                 WIFSIGNALED(status) ? WTERMSIG(status) : -1);
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* Names of 64 bytes or more are refused rather than truncated. */
static void test_form_get_overlong_name(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 0);
    char name[80];
    memset(name, 'n', 70);
    name[70] = '\0';
    char form[100];
    snprintf(form, sizeof form, "%s=1", name);
    const char *value = NULL;
    assert_int_not_equal(form_get(&a, form, strlen(form), name, 10, &value, NULL), FORM_OK);
    arena_destroy(&a);
}

/* ---------------------------------------------------------------- return_to */

static const char *const return_good[] = {
    "/",          "/a",         "/a/b?x=1&y=2#frag", "/caf%C3%A9",    "/caf%c3%a9",
    "/connected", "/a-b_c.d~e", "/!$&'()*+,;=:@",    "/path?q=a%20b", "/?",
    "/#",         "/a/",        "/a.b/c..d",         "/a?x=//y&z=/./", "/%7E",
    "/%41%ff",    "/a?next=/b", "/a#/../x",
};

static const char *const return_bad[] = {
    "",
    "/a//b",
    "/a/./b",
    "/a/../c",
    "/.",
    "/..",
    "/./",
    "/%2e%2e/x",
    "/a/%2E/b",
    "/.//evil.com",
    "//evil.com",
    "//",
    "/\\evil",
    "/\\",
    "https://evil",
    "http://evil.com/",
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,x",
    "evil",
    "evil.com/x",
    "./a",
    "../a",
    "?x=1",
    "#frag",
    "%2e%2e",
    "%2f%2fevil",
    "/%2f%2fevil",
    "/%2F%2Fevil",
    "/%2fevil",
    "/%5cevil",
    "/%5Cevil",
    "/a%5cb",
    "/%25",
    "/%2541",
    "/%0d%0aSet-Cookie:x",
    "/%0D%0A",
    "/%00",
    "/%09",
    "/%1f",
    "/%7f",
    "/%7F",
    "/%",
    "/%4",
    "/a%",
    "/%zz",
    "/%g1",
    "/a b",
    "/\t/evil",
    "/a\tb",
    "/\r\n",
    "/a\nb",
    "/\x7f",
    "/caf\xc3\xa9",
    "/\xe2\x80\xae",
    "/\xff",
    "/a\\b",
    "/a/b\\",
    "/a\"b",
    "/a<b",
    "/a>b",
    "/a`b",
    "/a{b}",
    "/a|b",
    "/a^b",
    "/a[b]",
    " /a",
    "\\/evil",
};

static void test_return_to_good(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof return_good / sizeof return_good[0]; i++)
        if (!url_return_to_valid(return_good[i], strlen(return_good[i])))
            fail_msg("url_return_to_valid refused good path \"%s\"", return_good[i]);
}

static void test_return_to_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof return_bad / sizeof return_bad[0]; i++)
        if (url_return_to_valid(return_bad[i], strlen(return_bad[i])))
            fail_msg("url_return_to_valid accepted bad path (case %zu) \"%s\"", i, return_bad[i]);
}

static void test_return_to_embedded_nul(void **state)
{
    (void)state;
    const char s[] = "/a\0b";
    assert_false(url_return_to_valid(s, sizeof s - 1));
    assert_false(url_return_to_valid("/\0", 2));
    /* the length bounds what is read */
    assert_true(url_return_to_valid("/ab\\", 3));
    assert_false(url_return_to_valid("/ab\\", 4));
}

static void test_return_to_length_limit(void **state)
{
    (void)state;
    char s[RETURN_TO_MAX + 2];
    s[0] = '/';
    memset(s + 1, 'a', sizeof s - 1);
    assert_true(url_return_to_valid(s, RETURN_TO_MAX));
    assert_false(url_return_to_valid(s, RETURN_TO_MAX + 1));
    assert_false(url_return_to_valid(s, RETURN_TO_MAX + 2));
    /* a backslash anywhere */
    for (size_t pos = 1; pos < 64; pos++) {
        char t[64];
        t[0] = '/';
        memset(t + 1, 'x', sizeof t - 1);
        t[pos] = '\\';
        assert_false(url_return_to_valid(t, sizeof t));
    }
}

/* Every byte value: only the documented printable ASCII set passes as a raw byte. */
static void test_return_to_every_byte(void **state)
{
    (void)state;
    const char *allowed = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
                          "-._~!$&'()*+,;=:@/?#";
    for (int c = 0; c < 256; c++) {
        if (c == '%')
            continue;
        char s[3] = {'/', 'a', (char)c};
        bool want = c != 0 && strchr(allowed, c) != NULL;
        if (url_return_to_valid(s, 3) != want)
            fail_msg("byte 0x%02x: got %d, want %d", c, !want, want);
    }
    /* every escape: controls, '/', '\\', '%' and (in the path) '.' refused; others fine */
    for (int d = 0; d < 256; d++) {
        char s[8];
        snprintf(s, sizeof s, "/%%%02X", d);
        bool want = !(d < 0x20 || d == 0x7f || d == '/' || d == '\\' || d == '%' || d == '.');
        if (url_return_to_valid(s, strlen(s)) != want)
            fail_msg("escape %%%02X: got %d, want %d", d, !want, want);
    }
}

static void test_url_escape(void **state)
{
    (void)state;
    struct arena a;
    arena_init(&a, 1024);
    assert_string_equal(url_escape(&a, "/invoices?page=2&x=a b"), "%2Finvoices%3Fpage%3D2%26x%3Da%20b");
    assert_string_equal(url_escape(&a, "AZaz09-._~"), "AZaz09-._~");
    assert_string_equal(url_escape(&a, ""), "");
    assert_string_equal(url_escape(&a, "\xc3\xa9%"), "%C3%A9%25");
    /* it decodes back to itself */
    const char *in = "/a b/%41?x=1#y";
    char *e = url_escape(&a, in), out[64];
    ssize_t n = url_decode(e, strlen(e), out, false);
    assert_int_equal(n, (ssize_t)strlen(in));
    assert_memory_equal(out, in, strlen(in));
    arena_destroy(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_escape),
        cmocka_unit_test(test_url_decode_table),
        cmocka_unit_test(test_url_decode_respects_len),
        cmocka_unit_test(test_form_get_table),
        cmocka_unit_test(test_form_get_respects_len),
        cmocka_unit_test(test_form_get_raw_nul),
        cmocka_unit_test(test_form_get_large_values),
        cmocka_unit_test(test_form_get_long_name_long_key),
        cmocka_unit_test(test_form_get_overlong_name),
        cmocka_unit_test(test_return_to_good),
        cmocka_unit_test(test_return_to_bad),
        cmocka_unit_test(test_return_to_embedded_nul),
        cmocka_unit_test(test_return_to_length_limit),
        cmocka_unit_test(test_return_to_every_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
