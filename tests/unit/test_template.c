/* test_template.c — template compile errors, rendering and the <style> CSP hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <sodium.h>

#include "buf.h"
#include "template.h"

static int group_setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static struct template *compile(const char *text, char *err, size_t errsz)
{
    return template_compile(text, strlen(text), err, errsz);
}

/* Compiles text (which must compile), renders it with vars, compares with want. */
static void expect_render(const char *text, const struct tvars *vars, const char *want)
{
    char err[200] = "";
    struct template *t = compile(text, err, sizeof err);
    if (!t)
        fail_msg("template \"%s\" did not compile: %s", text, err);
    struct buf out = {0};
    template_render(t, vars, &out);
    if (strcmp(buf_cstr(&out), want) != 0)
        fail_msg("template \"%s\" rendered \"%s\", want \"%s\"", text, buf_cstr(&out), want);
    buf_free(&out);
    template_free(t);
}

/* ---------------------------------------------------------------- compile errors */

static const char *const bad_templates[] = {
    "{{x",
    "a {{x}",
    "{{x}} {{y",
    "{{{x}}",
    "{{{x",
    "{{#a}}x",
    "{{#a}}{{#b}}x{{/b}}",
    "{{^a}}x",
    "{{#a}}x{{/b}}",
    "{{#a}}{{#b}}{{/a}}{{/b}}",
    "{{/a}}",
    "x{{/a}}y",
    "{{#a}}{{/a}}{{/a}}",
    "{{}}",
    "{{#}}x{{/}}",
    "{{ x }}",
    "{{x }}",
    "{{X}}",
    "{{Name}}",
    "{{a-b}}",
    "{{a.b}}",
    "{{a b}}",
    "{{!comment}}",
    "{{>partial}}",
    "{{&x}}",
    "{{=<% %>=}}",
    "{{{#a}}}",
    "{{{ x }}}",
    "{{aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa}}", /* too long */
    "<style>{{x}}</style>",
    "<style>a{color:red}{{{x}}}</style>",
    "<style>a{}</style><style>b{}</style>",
    "<style>a{}",
    "\xff{{\xc3\xa9}}",
};

static void test_compile_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof bad_templates / sizeof bad_templates[0]; i++) {
        char err[200] = "";
        struct template *t = compile(bad_templates[i], err, sizeof err);
        if (t) {
            template_free(t);
            fail_msg("bad template %zu \"%s\" compiled", i, bad_templates[i]);
        }
        if (err[0] == '\0')
            fail_msg("bad template %zu \"%s\": no message", i, bad_templates[i]);
    }
}

static void test_compile_nul_byte(void **state)
{
    (void)state;
    char err[200] = "";
    static const char text[] = "ab\0{{x}}";
    assert_null(template_compile(text, sizeof text - 1, err, sizeof err));
    assert_true(err[0] != '\0');
}

static void test_compile_good(void **state)
{
    (void)state;
    static const char *const good[] = {
        "",
        "plain text",
        "{{x}}",
        "{{x_1}}{{{y}}}",
        "a } b }} c",
        "{{#a}}{{/a}}",
        "{{#a}}{{^b}}{{c}}{{/b}}{{/a}}",
        "{{#a}}{{/a}}{{#a}}{{/a}}",
        "{{a123456789012345678901234567890}}",
        "<style>body{margin:0}</style>{{x}}",
        "<p>{{x}}</p><style>a{}</style>",
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char err[200] = "";
        struct template *t = compile(good[i], err, sizeof err);
        if (!t)
            fail_msg("good template \"%s\" refused: %s", good[i], err);
        template_free(t);
    }
}

/* Sections nest up to a limit; deeper nesting is an error, not a crash. */
static void test_compile_depth(void **state)
{
    (void)state;
    struct buf b = {0};
    for (int i = 0; i < 16; i++)
        buf_printf(&b, "{{#s%d}}", i);
    buf_puts(&b, "x");
    for (int i = 15; i >= 0; i--)
        buf_printf(&b, "{{/s%d}}", i);
    char err[200];
    struct template *t = template_compile(b.data, b.len, err, sizeof err);
    assert_non_null(t);
    template_free(t);
    buf_reset(&b);
    for (int i = 0; i < 200; i++)
        buf_printf(&b, "{{#s%d}}", i);
    for (int i = 199; i >= 0; i--)
        buf_printf(&b, "{{/s%d}}", i);
    assert_null(template_compile(b.data, b.len, err, sizeof err));
    buf_free(&b);
}

/* Many nodes (the node array grows). */
static void test_compile_many_nodes(void **state)
{
    (void)state;
    struct buf b = {0}, want = {0};
    for (int i = 0; i < 2000; i++) {
        buf_printf(&b, "<%d>{{v}}", i);
        buf_printf(&want, "<%d>&amp;", i);
    }
    struct tvar v[] = {{"v", "&", NULL, 0}};
    struct tvars vars = {v, 1, NULL};
    expect_render(b.data, &vars, want.data);
    buf_free(&b);
    buf_free(&want);
}

/* ---------------------------------------------------------------- rendering */

static void test_render_escaping(void **state)
{
    (void)state;
    struct tvar v[] = {
        {"x", "<a href=\"x\">Tom & 'Jerry'</a>", NULL, 0},
        {"plain", "abc", NULL, 0},
    };
    struct tvars vars = {v, 2, NULL};
    expect_render("[{{x}}]", &vars,
                  "[&lt;a href=&quot;x&quot;&gt;Tom &amp; &#39;Jerry&#39;&lt;/a&gt;]");
    expect_render("[{{{x}}}]", &vars, "[<a href=\"x\">Tom & 'Jerry'</a>]");
    expect_render("{{plain}}{{{plain}}}", &vars, "abcabc");
    /* template text itself is not escaped */
    expect_render("<b>&amp;</b>", &vars, "<b>&amp;</b>");
    /* a value holding template syntax is not re-interpreted */
    struct tvar w[] = {{"x", "{{y}}", NULL, 0}, {"y", "NO", NULL, 0}};
    struct tvars wv = {w, 2, NULL};
    expect_render("{{x}}|{{{x}}}", &wv, "{{y}}|{{y}}");
}

static void test_html_escape(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {
        {"", ""},
        {"abc", "abc"},
        {"&", "&amp;"},
        {"<", "&lt;"},
        {">", "&gt;"},
        {"\"", "&quot;"},
        {"'", "&#39;"},
        {"&amp;", "&amp;amp;"},
        {"a<b>c", "a&lt;b&gt;c"},
        {"\xc3\xa9", "\xc3\xa9"},
        {"<<>>", "&lt;&lt;&gt;&gt;"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct buf out = {0};
        buf_puts(&out, "^");
        html_escape(&out, cases[i].in);
        assert_string_equal(buf_cstr(&out) + 1, cases[i].want);
        buf_free(&out);
    }
}

static void test_render_missing(void **state)
{
    (void)state;
    struct tvars empty = {NULL, 0, NULL};
    expect_render("a{{x}}b{{{y}}}c", &empty, "abc");
    expect_render("a{{x}}b", NULL, "ab");
    /* a list variable used as a value renders nothing */
    struct tvars item = {NULL, 0, NULL};
    struct tvar v[] = {{"l", NULL, &item, 1}};
    struct tvars vars = {v, 1, NULL};
    expect_render("[{{l}}]", &vars, "[]");
}

static void test_render_sections_strings(void **state)
{
    (void)state;
    struct tvar v[] = {
        {"yes", "1", NULL, 0},
        {"empty", "", NULL, 0},
        {"name", "Ada", NULL, 0},
    };
    struct tvars vars = {v, 3, NULL};
    expect_render("{{#yes}}Y{{name}}{{/yes}}", &vars, "YAda");
    expect_render("{{#empty}}E{{/empty}}", &vars, "");
    expect_render("{{#missing}}M{{/missing}}", &vars, "");
    expect_render("{{^yes}}N{{/yes}}", &vars, "");
    expect_render("{{^empty}}E{{/empty}}", &vars, "E");
    expect_render("{{^missing}}M{{/missing}}", &vars, "M");
    expect_render("a{{#yes}}b{{#name}}c{{/name}}d{{/yes}}e", &vars, "abcde");
    expect_render("a{{#yes}}b{{#empty}}c{{/empty}}d{{/yes}}e", &vars, "abde");
    expect_render("{{#empty}}{{#yes}}x{{/yes}}{{/empty}}after", &vars, "after");
    expect_render("{{#yes}}1{{/yes}}{{^yes}}2{{/yes}}{{#empty}}3{{/empty}}{{^empty}}4{{/empty}}",
                  &vars, "14");
}

static void test_render_lists(void **state)
{
    (void)state;
    struct tvar b0[] = {{"name", "Ada & Co", NULL, 0}, {"id", "77", NULL, 0}};
    struct tvar b1[] = {{"name", "<Beta>", NULL, 0}};
    struct tvar b2[] = {{"id", "99", NULL, 0}};
    struct tvars items[] = {{b0, 2, NULL}, {b1, 1, NULL}, {b2, 1, NULL}};
    struct tvars none_items[1] = {{NULL, 0, NULL}};
    struct tvar v[] = {
        {"businesses", NULL, items, 3},
        {"none", NULL, none_items, 0},
        {"name", "OUTER", NULL, 0},
        {"user", "Ada", NULL, 0},
    };
    struct tvars vars = {v, 4, NULL};
    /* item values shadow outer ones; missing ones fall back to the outer scope */
    expect_render("{{#businesses}}[{{name}}/{{id}}/{{user}}]{{/businesses}}", &vars,
                  "[Ada &amp; Co/77/Ada][&lt;Beta&gt;//Ada][OUTER/99/Ada]");
    /* the outer value is back after the section */
    expect_render("{{#businesses}}{{/businesses}}{{name}}", &vars, "OUTER");
    /* empty list: section skipped, inverted rendered */
    expect_render("{{#none}}X{{/none}}{{^none}}empty{{/none}}", &vars, "empty");
    expect_render("{{^businesses}}empty{{/businesses}}", &vars, "");
    /* the items' scopes do not keep a parent of their own */
    assert_null(items[0].parent);
}

static void test_render_nested_lists(void **state)
{
    (void)state;
    struct tvar i0[] = {{"n", "a", NULL, 0}};
    struct tvar i1[] = {{"n", "b", NULL, 0}};
    struct tvars inner[] = {{i0, 1, NULL}, {i1, 1, NULL}};
    struct tvar o0[] = {{"k", "1", NULL, 0}, {"in", NULL, inner, 2}};
    struct tvar o1[] = {{"k", "2", NULL, 0}, {"in", NULL, inner, 1}};
    struct tvars outer[] = {{o0, 2, NULL}, {o1, 2, NULL}};
    struct tvar v[] = {{"out", NULL, outer, 2}, {"sep", ",", NULL, 0}};
    struct tvars vars = {v, 2, NULL};
    expect_render("{{#out}}{{#in}}{{k}}{{n}}{{sep}}{{/in}}{{/out}}", &vars, "1a,1b,2a,");
}

/* Rendering twice gives the same result; rendering appends. */
static void test_render_appends(void **state)
{
    (void)state;
    char err[200];
    struct template *t = compile("<{{x}}>", err, sizeof err);
    assert_non_null(t);
    struct tvar v[] = {{"x", "1", NULL, 0}};
    struct tvars vars = {v, 1, NULL};
    struct buf out = {0};
    buf_puts(&out, "pre");
    template_render(t, &vars, &out);
    template_render(t, &vars, &out);
    assert_string_equal(buf_cstr(&out), "pre<1><1>");
    buf_free(&out);
    template_free(t);
}

/* ---------------------------------------------------------------- <style> hash */

static void expect_style_hash(const char *text, const char *style_body)
{
    char err[200] = "";
    struct template *t = compile(text, err, sizeof err);
    if (!t)
        fail_msg("template \"%s\" did not compile: %s", text, err);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)style_body, strlen(style_body));
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
    char want[128];
    snprintf(want, sizeof want, "'sha256-%s'", b64);
    const char *got = template_style_source(t);
    assert_non_null(got);
    assert_string_equal(got, want);
    template_free(t);
}

static void test_style_hash(void **state)
{
    (void)state;
    expect_style_hash("<html><head><style>body{margin:0}</style></head>{{x}}</html>",
                      "body{margin:0}");
    expect_style_hash("<style>\n  a { color: red; }\n  p > b { x: \"y\" }\n</style>",
                      "\n  a { color: red; }\n  p > b { x: \"y\" }\n");
    expect_style_hash("<style></style>", "");
    expect_style_hash("{{#a}}x{{/a}}<style>.c{}</style>{{b}}", ".c{}");

    /* no style: NULL */
    char err[200];
    struct template *t = compile("<p>{{x}}</p>", err, sizeof err);
    assert_non_null(t);
    assert_null(template_style_source(t));
    template_free(t);

    /* known answer for an empty style element: SHA-256("") */
    t = compile("<style></style>", err, sizeof err);
    assert_non_null(t);
    assert_string_equal(template_style_source(t),
                        "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='");
    template_free(t);
}

/* A <style> element with attributes is still a <style> element: its content must be hashed
 * (or the template refused), and tags inside it refused. */
static void test_style_with_attributes(void **state)
{
    (void)state;
    char err[200] = "";
    struct template *t =
        compile("<style>a{}</style><style media=\"print\">b{}</style>", err, sizeof err);
    if (t) {
        template_free(t);
        fail_msg("two <style> elements (the second with attributes) compiled");
    }
    t = compile("<style type=\"text/css\">{{x}}</style>", err, sizeof err);
    if (t) {
        template_free(t);
        fail_msg("a tag inside <style type=\"text/css\"> compiled");
    }
}

/* template_load: a missing file is an error naming it; a real file compiles. */
static void test_template_load(void **state)
{
    (void)state;
    char err[300] = "";
    assert_null(template_load("/nonexistent/dir/x.html", err, sizeof err));
    assert_non_null(strstr(err, "/nonexistent/dir/x.html"));

    char path[] = "/tmp/fbc_tpl_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    assert_non_null(f);
    fputs("<style>p{}</style>{{#x}}{{x}}{{/x}}", f);
    fclose(f);
    struct template *t = template_load(path, err, sizeof err);
    assert_non_null(t);
    assert_non_null(template_style_source(t));
    template_free(t);

    f = fopen(path, "w");
    assert_non_null(f);
    fputs("{{#x}}unclosed", f);
    fclose(f);
    assert_null(template_load(path, err, sizeof err));
    assert_non_null(strstr(err, path));
    unlink(path);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

/* {{>file}} inserts a sibling file at load; the <style> hash covers the inserted text. */
static void test_template_load_include(void **state)
{
    (void)state;
    char dir[] = "/tmp/fbc_inc_XXXXXX", err[4400] = "", path[256], css[256];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/page.html", dir);
    snprintf(css, sizeof css, "%s/style.css", dir);
    write_file(css, "p{color:red}\n");
    write_file(path, "<style>\n{{>style.css}}</style><p>{{x}}</p>");
    struct template *t = template_load(path, err, sizeof err);
    assert_non_null(t);
    struct tvar v[] = {{.name = "x", .value = "<b>"}};
    struct tvars vars = {v, 1, NULL};
    struct buf out = {0};
    template_render(t, &vars, &out);
    assert_string_equal(buf_cstr(&out), "<style>\np{color:red}\n</style><p>&lt;b&gt;</p>");
    unsigned char digest[crypto_hash_sha256_BYTES];
    const char *body = "\np{color:red}\n";
    crypto_hash_sha256(digest, (const unsigned char *)body, strlen(body));
    char b64[64], want[96];
    sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
    snprintf(want, sizeof want, "'sha256-%s'", b64);
    assert_string_equal(template_style_source(t), want);
    buf_free(&out);
    template_free(t);

    static const char *const bad[] = {"{{>../etc/passwd}}", "{{>.hidden}}", "{{>missing.css}}",
                                      "{{>}}", "{{>style.css"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_file(path, bad[i]);
        assert_null(template_load(path, err, sizeof err));
    }
    write_file(css, "{{>page.html}}");
    write_file(path, "{{>style.css}}");
    assert_null(template_load(path, err, sizeof err)); /* includes do not nest */
    unlink(css);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_template_load_include),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_compile_nul_byte),
        cmocka_unit_test(test_compile_good),
        cmocka_unit_test(test_compile_depth),
        cmocka_unit_test(test_compile_many_nodes),
        cmocka_unit_test(test_render_escaping),
        cmocka_unit_test(test_html_escape),
        cmocka_unit_test(test_render_missing),
        cmocka_unit_test(test_render_sections_strings),
        cmocka_unit_test(test_render_lists),
        cmocka_unit_test(test_render_nested_lists),
        cmocka_unit_test(test_render_appends),
        cmocka_unit_test(test_style_hash),
        cmocka_unit_test(test_style_with_attributes),
        cmocka_unit_test(test_template_load),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
