/* test_config.c — config_load with a table-driven getter, and config_parse_key. */
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

#include "config.h"

#define HEX_KEY "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

struct kv {
    const char *name, *value; /* value NULL: unset */
};

static const struct kv base_env[] = {
    {"FBCONNECT_CLIENT_ID", "client-id_1"},
    {"FBCONNECT_CLIENT_SECRET", "s3cret"},
    {"FBCONNECT_REDIRECT_URI", "https://example.com/callback"},
    {"FBCONNECT_SECRET_KEY", HEX_KEY},
};

/* The overrides of the current test, looked at before base_env. */
static const struct kv *overrides;
static size_t n_overrides;

static const char *table_get(const char *name)
{
    for (size_t i = 0; i < n_overrides; i++)
        if (strcmp(overrides[i].name, name) == 0)
            return overrides[i].value;
    for (size_t i = 0; i < sizeof base_env / sizeof base_env[0]; i++)
        if (strcmp(base_env[i].name, name) == 0)
            return base_env[i].value;
    return NULL;
}

static int load_with(const struct kv *ov, size_t n, struct config *c, char *err, size_t errsz)
{
    overrides = ov;
    n_overrides = n;
    err[0] = '\0';
    int rc = config_load(c, table_get, err, errsz);
    overrides = NULL;
    n_overrides = 0;
    return rc;
}

#define LOAD(ov, c, err) load_with((ov), sizeof(ov) / sizeof((ov)[0]), (c), (err), sizeof(err))

static int group_setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

/* Writes text to a new temporary file; returns its path (static storage per slot). */
static const char *temp_file(int slot, const char *text)
{
    static char paths[4][32];
    snprintf(paths[slot], sizeof paths[slot], "/tmp/fbc_cfg_XXXXXX");
    int fd = mkstemp(paths[slot]);
    assert_true(fd >= 0);
    size_t n = strlen(text);
    assert_int_equal(write(fd, text, n), (ssize_t)n);
    close(fd);
    return paths[slot];
}

static void test_config_defaults(void **state)
{
    (void)state;
    struct config c;
    char err[512];
    assert_int_equal(load_with(NULL, 0, &c, err, sizeof err), 0);
    assert_string_equal(c.listen, "unix:/run/fbconnect/fbconnect.sock");
    assert_int_equal(c.threads, 64);
    assert_string_equal(c.client_id, "client-id_1");
    assert_string_equal(c.client_secret, "s3cret");
    assert_string_equal(c.redirect_uri, "https://example.com/callback");
    assert_true(c.redirect_https);
    assert_null(c.scopes);
    assert_string_equal(c.authorize_url, "https://auth.freshbooks.com/oauth/authorize");
    assert_string_equal(c.token_url, "https://api.freshbooks.com/auth/oauth/token");
    assert_string_equal(c.revoke_url, "https://api.freshbooks.com/auth/oauth/revoke");
    assert_string_equal(c.api_url, "https://api.freshbooks.com");
    assert_null(c.ca_file);
    assert_int_equal(c.http_timeout_ms, 10000);
    assert_non_null(c.redis.host);
    assert_string_equal(c.redis.host, "127.0.0.1");
    assert_int_equal(c.redis.port, 6379);
    assert_null(c.redis.path);
    assert_int_equal(c.redis_db, 0);
    assert_null(c.redis_user);
    assert_null(c.redis_password);
    assert_string_equal(c.redis_prefix, "fbc:");
    assert_int_equal(c.redis_timeout_ms, 1000);
    assert_int_equal(c.n_sentinels, 0);
    assert_int_equal(c.wait_replicas, -1);
    assert_int_equal(c.wait_timeout_ms, 500);
    uint8_t want_key[SECRET_KEY_BYTES];
    for (size_t i = 0; i < SECRET_KEY_BYTES; i++)
        want_key[i] = (uint8_t)i;
    assert_memory_equal(c.secret_key, want_key, SECRET_KEY_BYTES);
    assert_int_equal(c.n_old_keys, 0);
    assert_string_equal(c.base_path, "/");
    assert_non_null(c.template_dir);
    assert_string_equal(c.cookie_name, "__Host-fbconnect_session");
    assert_int_equal(c.session_ttl, 2592000);
    assert_int_equal(c.refresh_margin, 300);
    assert_null(c.user_param);
    config_free(&c);
}

struct fail_case {
    const char *var; /* the variable err must name */
    struct kv ov[3];
};

static const struct fail_case fail_cases[] = {
    {"FBCONNECT_CLIENT_ID", {{"FBCONNECT_CLIENT_ID", NULL}}},
    {"FBCONNECT_CLIENT_ID", {{"FBCONNECT_CLIENT_ID", ""}}},
    {"FBCONNECT_CLIENT_ID", {{"FBCONNECT_CLIENT_ID", "bad id"}}},
    {"FBCONNECT_CLIENT_SECRET", {{"FBCONNECT_CLIENT_SECRET", NULL}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", NULL}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", "https://example.com/cb?x=1"}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", "https://example.com/cb?"}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", "https://example.com/cb#f"}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", "http://example.com/cb"}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", "http://10.0.0.1/cb"}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", "http://localhost.evil.com/cb"}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", "ftp://example.com/cb"}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", "/fb/callback"}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", "https://user:pw@example.com/cb"}}},
    {"FBCONNECT_SECRET_KEY", {{"FBCONNECT_SECRET_KEY", NULL}}},
    {"FBCONNECT_SECRET_KEY", {{"FBCONNECT_SECRET_KEY", "short"}}},
    {"FBCONNECT_SECRET_KEY", {{"FBCONNECT_SECRET_KEY", HEX_KEY "00"}}},
    {"FBCONNECT_SECRET_KEY",
     {{"FBCONNECT_SECRET_KEY",
       "zz0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"}}},
    {"FBCONNECT_THREADS", {{"FBCONNECT_THREADS", "0"}}},
    {"FBCONNECT_THREADS", {{"FBCONNECT_THREADS", "abc"}}},
    {"FBCONNECT_THREADS", {{"FBCONNECT_THREADS", "-1"}}},
    {"FBCONNECT_THREADS", {{"FBCONNECT_THREADS", "8x"}}},
    {"FBCONNECT_THREADS", {{"FBCONNECT_THREADS", "99999999999999999999"}}},
    {"FBCONNECT_USER_PARAM", {{"FBCONNECT_USER_PARAM", "HTTP_X_USER"}}},
    {"FBCONNECT_USER_PARAM", {{"FBCONNECT_USER_PARAM", "REMOTE-USER"}}},
    {"FBCONNECT_CLIENT_SECRET",
     {{"FBCONNECT_CLIENT_SECRET", "x"}, {"FBCONNECT_CLIENT_SECRET_FILE", "/etc/hostname"}}},
    {"FBCONNECT_SECRET_KEY",
     {{"FBCONNECT_SECRET_KEY", HEX_KEY}, {"FBCONNECT_SECRET_KEY_FILE", "/etc/hostname"}}},
    {"FBCONNECT_CLIENT_SECRET",
     {{"FBCONNECT_CLIENT_SECRET", NULL}, {"FBCONNECT_CLIENT_SECRET_FILE", "/nonexistent/secret"}}},
    {"FBCONNECT_OLD_SECRET_KEYS", {{"FBCONNECT_OLD_SECRET_KEYS", HEX_KEY ",nope"}}},
    {"FBCONNECT_BASE_PATH", {{"FBCONNECT_BASE_PATH", "fb"}}},
    {"FBCONNECT_BASE_PATH", {{"FBCONNECT_BASE_PATH", "/a/../b/"}}},
    {"FBCONNECT_BASE_PATH", {{"FBCONNECT_BASE_PATH", "//x/"}}},
    /* a redirect URI fbconnect does not serve under the base path */
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_BASE_PATH", "/freshbooks/"}}},
    {"FBCONNECT_REDIRECT_URI", {{"FBCONNECT_REDIRECT_URI", "https://example.com/cb"}}},
    {"FBCONNECT_SESSION_TTL", {{"FBCONNECT_SESSION_TTL", "1"}}},
    {"FBCONNECT_REFRESH_MARGIN", {{"FBCONNECT_REFRESH_MARGIN", "-5"}}},
    {"FBCONNECT_REDIS_URL", {{"FBCONNECT_REDIS_URL", "http://127.0.0.1:6379"}}},
    {"FBCONNECT_REDIS_URL", {{"FBCONNECT_REDIS_URL", "redis://127.0.0.1:99999"}}},
    {"FBCONNECT_REDIS_PREFIX", {{"FBCONNECT_REDIS_PREFIX", "bad prefix"}}},
    {"FBCONNECT_REDIS_MASTER", {{"FBCONNECT_REDIS_SENTINELS", "127.0.0.1:26379"}}},
    {"FBCONNECT_COOKIE_NAME", {{"FBCONNECT_COOKIE_NAME", "bad;name"}}},
    {"FBCONNECT_TOKEN_URL", {{"FBCONNECT_TOKEN_URL", "http://api.example.com/token"}}},
};

static void test_config_failures(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof fail_cases / sizeof fail_cases[0]; i++) {
        const struct fail_case *fc = &fail_cases[i];
        size_t n = 0;
        while (n < 3 && fc->ov[n].name)
            n++;
        struct config c;
        char err[512];
        int rc = load_with(fc->ov, n, &c, err, sizeof err);
        if (rc == 0) {
            config_free(&c);
            fail_msg("case %zu (%s=%s) loaded", i, fc->ov[0].name,
                     fc->ov[0].value ? fc->ov[0].value : "(unset)");
        }
        if (!strstr(err, fc->var))
            fail_msg("case %zu (%s=%s): err \"%s\" does not name %s", i, fc->ov[0].name,
                     fc->ov[0].value ? fc->ov[0].value : "(unset)", err, fc->var);
        if (strchr(err, '\n'))
            fail_msg("case %zu: err is not one line: \"%s\"", i, err);
    }
}

/* The error message never echoes a secret value. */
static void test_config_error_hides_secret(void **state)
{
    (void)state;
    static const struct kv ov[] = {{"FBCONNECT_SECRET_KEY", "my-very-secret-value-not-a-key"}};
    struct config c;
    char err[512];
    assert_int_equal(LOAD(ov, &c, err), -1);
    assert_null(strstr(err, "my-very-secret"));
}

static void test_config_http_localhost(void **state)
{
    (void)state;
    static const char *const loopback[] = {"http://localhost/callback",
                                           "http://127.0.0.1:8080/callback",
                                           "http://[::1]:8080/callback"};
    for (size_t i = 0; i < sizeof loopback / sizeof loopback[0]; i++) {
        const struct kv ov[] = {{"FBCONNECT_REDIRECT_URI", loopback[i]}};
        struct config c;
        char err[512];
        if (LOAD(ov, &c, err) != 0)
            fail_msg("redirect %s refused: %s", loopback[i], err);
        assert_false(c.redirect_https);
        assert_string_equal(c.cookie_name, "fbconnect_session");
        config_free(&c);
    }
}

static void test_config_base_path(void **state)
{
    (void)state;
    static const struct {
        const char *in, *want;
    } cases[] = {{"/fb", "/fb/"}, {"/fb/", "/fb/"}, {"/a/b", "/a/b/"}, {"/", "/"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char redirect[128];
        snprintf(redirect, sizeof redirect, "https://example.com%scallback", cases[i].want);
        const struct kv ov[] = {{"FBCONNECT_BASE_PATH", cases[i].in},
                                {"FBCONNECT_REDIRECT_URI", redirect}};
        struct config c;
        char err[512];
        assert_int_equal(LOAD(ov, &c, err), 0);
        assert_string_equal(c.base_path, cases[i].want);
        /* __Host- needs Path=/ */
        if (strcmp(cases[i].want, "/") == 0)
            assert_string_equal(c.cookie_name, "__Host-fbconnect_session");
        else
            assert_string_equal(c.cookie_name, "fbconnect_session");
        assert_true(c.redirect_https);
        config_free(&c);
    }
}

static void test_config_cookie_name(void **state)
{
    (void)state;
    struct config c;
    char err[512];
    static const struct kv ov1[] = {{"FBCONNECT_COOKIE_NAME", "sid"}};
    assert_int_equal(LOAD(ov1, &c, err), 0);
    assert_string_equal(c.cookie_name, "__Host-sid");
    /* the callback-path cookie of earlier sessions cannot be __Host- (Path=/callback) */
    assert_string_equal(c.earlier_cookie_name, "__Secure-sid_earlier");
    config_free(&c);
    /* already prefixed: not doubled */
    static const struct kv ov2[] = {{"FBCONNECT_COOKIE_NAME", "__Host-sid"}};
    assert_int_equal(LOAD(ov2, &c, err), 0);
    assert_string_equal(c.cookie_name, "__Host-sid");
    config_free(&c);
    static const struct kv ov3[] = {{"FBCONNECT_COOKIE_NAME", "sid"},
                                    {"FBCONNECT_REDIRECT_URI", "http://localhost/callback"}};
    assert_int_equal(LOAD(ov3, &c, err), 0);
    assert_string_equal(c.cookie_name, "sid");
    assert_string_equal(c.earlier_cookie_name, "sid_earlier");
    config_free(&c);
}

/* A secret file holding nothing (or just a newline) is a missing secret, not an empty one. */
static void test_config_empty_secret_file(void **state)
{
    (void)state;
    static const char *const contents[] = {"", "\n", "\r\n"};
    for (size_t i = 0; i < sizeof contents / sizeof contents[0]; i++) {
        const char *path = temp_file(0, contents[i]);
        const struct kv ov[] = {{"FBCONNECT_CLIENT_SECRET", NULL},
                                {"FBCONNECT_CLIENT_SECRET_FILE", path}};
        struct config c;
        char err[512];
        int rc = LOAD(ov, &c, err);
        unlink(path);
        if (rc == 0) {
            bool empty = c.client_secret && c.client_secret[0] == '\0';
            config_free(&c);
            fail_msg("FBCONNECT_CLIENT_SECRET_FILE with content %zu (%zu bytes) loaded%s", i,
                     strlen(contents[i]), empty ? " with an empty client secret" : "");
        }
        assert_non_null(strstr(err, "FBCONNECT_CLIENT_SECRET"));
    }
}

/* Browsers drop a __Host- cookie without Secure or Path=/, and a __Secure- cookie without
 * Secure: such a configured name must be refused (or not used as is). */
static void test_config_cookie_prefix_unusable(void **state)
{
    (void)state;
    static const struct {
        const char *name, *redirect, *base;
    } cases[] = {
        {"__Host-sid", "https://example.com/fb/callback", "/fb/"},
        {"__Host-sid", "http://localhost/callback", "/"},
        {"__Secure-sid", "http://localhost/callback", "/"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct kv ov[] = {{"FBCONNECT_COOKIE_NAME", cases[i].name},
                                {"FBCONNECT_REDIRECT_URI", cases[i].redirect},
                                {"FBCONNECT_BASE_PATH", cases[i].base}};
        struct config c;
        char err[512];
        if (LOAD(ov, &c, err) != 0) {
            assert_non_null(strstr(err, "FBCONNECT_COOKIE_NAME"));
            continue;
        }
        bool bad_host = strncmp(c.cookie_name, "__Host-", 7) == 0 &&
                        (!c.redirect_https || strcmp(c.base_path, "/") != 0);
        bool bad_secure = strncmp(c.cookie_name, "__Secure-", 9) == 0 && !c.redirect_https;
        char name[128];
        snprintf(name, sizeof name, "%s", c.cookie_name);
        config_free(&c);
        if (bad_host || bad_secure)
            fail_msg("cookie name %s with %s and base %s loaded as \"%s\": browsers reject it",
                     cases[i].name, cases[i].redirect, cases[i].base, name);
    }
}

static void test_config_listen_not_validated(void **state)
{
    (void)state;
    static const struct kv ov[] = {{"FBCONNECT_LISTEN", "0.0.0.0:9000 not validated here"}};
    struct config c;
    char err[512];
    assert_int_equal(LOAD(ov, &c, err), 0);
    assert_string_equal(c.listen, "0.0.0.0:9000 not validated here");
    config_free(&c);
}

static void test_config_threads(void **state)
{
    (void)state;
    static const struct kv ov[] = {{"FBCONNECT_THREADS", "8"}};
    struct config c;
    char err[512];
    assert_int_equal(LOAD(ov, &c, err), 0);
    assert_int_equal(c.threads, 8);
    config_free(&c);
}

static void test_config_files(void **state)
{
    (void)state;
    const char *secret = temp_file(0, "from-file\n");
    const char *key = temp_file(1, HEX_KEY "\r\n");
    const char *redis = temp_file(2, "redis://:pw@10.1.2.3:6380/2\n");
    const struct kv ov[] = {{"FBCONNECT_CLIENT_SECRET", NULL},
                            {"FBCONNECT_CLIENT_SECRET_FILE", secret},
                            {"FBCONNECT_SECRET_KEY", NULL}};
    const struct kv ov2[] = {{"FBCONNECT_SECRET_KEY_FILE", key},
                             {"FBCONNECT_REDIS_URL_FILE", redis}};
    /* two override tables chained: copy into one */
    struct kv all[5];
    memcpy(all, ov, sizeof ov);
    memcpy(all + 3, ov2, sizeof ov2);
    struct config c;
    char err[512];
    if (load_with(all, 5, &c, err, sizeof err) != 0)
        fail_msg("load with _FILE variables failed: %s", err);
    assert_string_equal(c.client_secret, "from-file");
    assert_int_equal(c.secret_key[31], 0x1f);
    assert_int_equal(c.secret_key[0], 0x00);
    assert_string_equal(c.redis.host, "10.1.2.3");
    assert_int_equal(c.redis.port, 6380);
    assert_int_equal(c.redis_db, 2);
    assert_string_equal(c.redis_password, "pw");
    config_free(&c);

    /* only one trailing newline is stripped: the rest is the secret */
    const char *two = temp_file(3, "a b\n\n");
    const struct kv ov3[] = {{"FBCONNECT_CLIENT_SECRET", NULL},
                             {"FBCONNECT_CLIENT_SECRET_FILE", two}};
    assert_int_equal(LOAD(ov3, &c, err), 0);
    assert_string_equal(c.client_secret, "a b\n");
    config_free(&c);
    unlink(secret);
    unlink(key);
    unlink(redis);
    unlink(two);
}

static void test_config_old_keys(void **state)
{
    (void)state;
    static const struct kv ov[] = {
        {"FBCONNECT_OLD_SECRET_KEYS",
         "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff, "
         "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="}};
    struct config c;
    char err[512];
    assert_int_equal(LOAD(ov, &c, err), 0);
    assert_int_equal(c.n_old_keys, 2);
    assert_int_equal(c.old_keys[0][0], 0xff);
    assert_memory_equal(c.old_keys[1], c.secret_key, SECRET_KEY_BYTES);
    config_free(&c);
}

static void test_config_redis_url(void **state)
{
    (void)state;
    struct config c;
    char err[512];
    static const struct kv ov1[] = {{"FBCONNECT_REDIS_URL", "unix:///run/redis/redis.sock"}};
    assert_int_equal(LOAD(ov1, &c, err), 0);
    assert_string_equal(c.redis.path, "/run/redis/redis.sock");
    config_free(&c);
    static const struct kv ov2[] = {{"FBCONNECT_REDIS_URL", "redis://user:p%40ss@[::1]:7000/3"}};
    assert_int_equal(LOAD(ov2, &c, err), 0);
    assert_string_equal(c.redis.host, "::1");
    assert_int_equal(c.redis.port, 7000);
    assert_int_equal(c.redis_db, 3);
    assert_string_equal(c.redis_user, "user");
    assert_string_equal(c.redis_password, "p@ss");
    config_free(&c);
}

/* ---------------------------------------------------------------- config_parse_key */

static void test_parse_key_good(void **state)
{
    (void)state;
    uint8_t want[SECRET_KEY_BYTES], got[SECRET_KEY_BYTES];
    /* bytes chosen so base64 uses '+' and '/' (standard) or '-' and '_' (URL-safe) */
    for (size_t i = 0; i < SECRET_KEY_BYTES; i++)
        want[i] = (uint8_t)(i % 2 ? 0xfb : 0xff);
    char hex[2 * SECRET_KEY_BYTES + 1];
    sodium_bin2hex(hex, sizeof hex, want, sizeof want);
    memset(got, 0, sizeof got);
    assert_int_equal(config_parse_key(hex, got), 0);
    assert_memory_equal(got, want, sizeof want);
    /* upper-case hex */
    for (char *p = hex; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char)(*p - 'a' + 'A');
    memset(got, 0, sizeof got);
    assert_int_equal(config_parse_key(hex, got), 0);
    assert_memory_equal(got, want, sizeof want);

    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t v = 0; v < 4; v++) {
        char b64[64];
        sodium_bin2base64(b64, sizeof b64, want, sizeof want, variants[v]);
        memset(got, 0, sizeof got);
        if (config_parse_key(b64, got) != 0)
            fail_msg("base64 variant %d key \"%s\" refused", variants[v], b64);
        assert_memory_equal(got, want, sizeof want);
    }
    /* the padded/unpadded forms differ and standard ones hold + and / */
    char b64[64];
    sodium_bin2base64(b64, sizeof b64, want, sizeof want, sodium_base64_VARIANT_ORIGINAL);
    assert_true(strchr(b64, '/') || strchr(b64, '+'));
    assert_non_null(strchr(b64, '='));
}

static void test_parse_key_bad(void **state)
{
    (void)state;
    uint8_t k31[31], k33[33];
    memset(k31, 0x42, sizeof k31);
    memset(k33, 0x42, sizeof k33);
    char b[128];
    uint8_t got[SECRET_KEY_BYTES];

    static const int variants[] = {
        sodium_base64_VARIANT_ORIGINAL, sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
        sodium_base64_VARIANT_URLSAFE, sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    for (size_t v = 0; v < 4; v++) {
        sodium_bin2base64(b, sizeof b, k31, sizeof k31, variants[v]);
        if (config_parse_key(b, got) == 0)
            fail_msg("31-byte base64 key \"%s\" accepted", b);
        sodium_bin2base64(b, sizeof b, k33, sizeof k33, variants[v]);
        if (config_parse_key(b, got) == 0)
            fail_msg("33-byte base64 key \"%s\" accepted", b);
    }
    sodium_bin2hex(b, sizeof b, k31, sizeof k31);
    assert_int_equal(config_parse_key(b, got), -1);
    sodium_bin2hex(b, sizeof b, k33, sizeof k33);
    assert_int_equal(config_parse_key(b, got), -1);

    static const char *const bad[] = {
        "",
        "x",
        HEX_KEY "0",
        HEX_KEY " ",
        " " HEX_KEY,
        "0x" HEX_KEY,
        "g00102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8==",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= ",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwd Hh8=",
        "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        memset(got, 0x77, sizeof got);
        if (config_parse_key(bad[i], got) == 0)
            fail_msg("bad key %zu \"%s\" accepted", i, bad[i]);
    }
}

static void test_url_is_loopback(void **state)
{
    (void)state;
    assert_true(config_url_is_loopback("http://localhost/x"));
    assert_true(config_url_is_loopback("http://127.0.0.1:9/x"));
    assert_true(config_url_is_loopback("https://[::1]/"));
    assert_false(config_url_is_loopback("http://localhost.example.com/"));
    assert_false(config_url_is_loopback("http://127.0.0.2/"));
    assert_false(config_url_is_loopback("http://example.com/?h=localhost"));
    assert_false(config_url_is_loopback("not a url"));
}

/* README's configuration table and the settings table name the same variables, and the
 * README marks (`_FILE`) exactly those that may come from a file. */
static void test_readme_table_matches_settings(void **state)
{
    (void)state;
    FILE *f = fopen("README.md", "r");
    if (!f)
        fail_msg("README.md not found (run the unit tests from the repository's root)");
    char line[4096];
    char seen[64][64];
    bool file_marked[64];
    size_t n_seen = 0;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "| `FBCONNECT_", 13) != 0)
            continue;
        char *cell_end = strchr(line + 2, '|');
        assert_non_null(cell_end);
        *cell_end = '\0';
        bool marked = strstr(line, "`_FILE`") != NULL;
        for (char *p = line; (p = strstr(p, "FBCONNECT_")) != NULL;) {
            size_t len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZ_");
            assert_true(n_seen < 64 && len < 64);
            memcpy(seen[n_seen], p, len);
            seen[n_seen][len] = '\0';
            file_marked[n_seen++] = marked;
            p += len;
        }
    }
    fclose(f);
    assert_int_equal(n_seen, config_setting_count());
    for (size_t i = 0; i < config_setting_count(); i++) {
        const char *var = config_setting_name(i);
        size_t j = 0;
        while (j < n_seen && strcmp(seen[j], var) != 0)
            j++;
        if (j == n_seen)
            fail_msg("%s is read but not in README's configuration table", var);
        if (file_marked[j] != config_setting_takes_file(i))
            fail_msg("%s: README %s (`_FILE`), the code %s", var,
                     file_marked[j] ? "says" : "does not say",
                     config_setting_takes_file(i) ? "takes a file" : "does not");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_config_defaults),
        cmocka_unit_test(test_readme_table_matches_settings),
        cmocka_unit_test(test_config_failures),
        cmocka_unit_test(test_config_error_hides_secret),
        cmocka_unit_test(test_config_http_localhost),
        cmocka_unit_test(test_config_base_path),
        cmocka_unit_test(test_config_cookie_name),
        cmocka_unit_test(test_config_empty_secret_file),
        cmocka_unit_test(test_config_cookie_prefix_unusable),
        cmocka_unit_test(test_config_listen_not_validated),
        cmocka_unit_test(test_config_threads),
        cmocka_unit_test(test_config_files),
        cmocka_unit_test(test_config_old_keys),
        cmocka_unit_test(test_config_redis_url),
        cmocka_unit_test(test_parse_key_good),
        cmocka_unit_test(test_parse_key_bad),
        cmocka_unit_test(test_url_is_loopback),
    };
    return cmocka_run_group_tests(tests, group_setup, NULL);
}
