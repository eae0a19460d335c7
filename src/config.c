#include "config.h"

#include <curl/curl.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"

#ifndef FBCONNECT_TEMPLATE_DEFAULT
#define FBCONNECT_TEMPLATE_DEFAULT "/usr/local/share/fbconnect/templates"
#endif

#define SECRET_FILE_MAX 65536

static void fail(char *err, size_t errsz, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void fail(char *err, size_t errsz, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errsz, fmt, ap);
    va_end(ap);
}

/* Reads a secret file; strips one trailing newline (LF or CRLF).  Returns malloc'd text. */
static char *read_secret_file(const char *var, const char *path, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fail(err, errsz, "%s_FILE: cannot open %s: %s", var, path, strerror(errno));
        return NULL;
    }
    char *text = xmalloc(SECRET_FILE_MAX + 1);
    size_t n = fread(text, 1, SECRET_FILE_MAX + 1, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad || n > SECRET_FILE_MAX) {
        fail(err, errsz, "%s_FILE: %s is unreadable or larger than %d bytes", var, path, SECRET_FILE_MAX);
        free(text);
        return NULL;
    }
    text[n] = '\0';
    if (memchr(text, '\0', n)) {
        fail(err, errsz, "%s_FILE: %s holds a NUL byte", var, path);
        free(text);
        return NULL;
    }
    if (n && text[n - 1] == '\n')
        text[--n] = '\0';
    if (n && text[n - 1] == '\r')
        text[--n] = '\0';
    return text;
}

/* The value of `var` (or, when allow_file, of the file named by var_FILE); NULL when
 * unset.  Sets *failed on an error. */
static char *get_value(config_getter get, const char *var, bool allow_file, bool *failed,
                       char *err, size_t errsz)
{
    const char *v = get(var);
    if (allow_file) {
        char fvar[96];
        snprintf(fvar, sizeof fvar, "%s_FILE", var);
        const char *fpath = get(fvar);
        if (fpath && *fpath) {
            if (v && *v) {
                fail(err, errsz, "%s and %s_FILE are both set; use one", var, var);
                *failed = true;
                return NULL;
            }
            char *text = read_secret_file(var, fpath, err, errsz);
            if (!text) {
                *failed = true;
            } else if (!*text) { /* an empty file is no value: "required" says so */
                free(text);
                text = NULL;
            }
            return text;
        }
    }
    return (v && *v) ? xstrdup(v) : NULL;
}

static bool parse_long(const char *var, const char *text, long min, long max, long *out,
                       char *err, size_t errsz)
{
    char *end;
    errno = 0;
    long v = strtol(text, &end, 10);
    if (errno || *end || end == text || v < min || v > max) {
        fail(err, errsz, "%s: expected a whole number from %ld to %ld, got '%s'", var, min, max, text);
        return false;
    }
    *out = v;
    return true;
}

static bool host_is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strcmp(host, "127.0.0.1") == 0 ||
           strcmp(host, "[::1]") == 0 || strcmp(host, "::1") == 0;
}

bool config_url_is_loopback(const char *url)
{
    CURLU *u = curl_url();
    char *host = NULL;
    bool loop = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
                curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK && host_is_loopback(host);
    curl_free(host);
    curl_url_cleanup(u);
    return loop;
}

/* Checks an http(s) URL: HTTPS, or HTTP to a loopback host; with no_query, no query string
 * or fragment either.  Sets *https. */
static bool check_url(const char *var, const char *url, bool no_query, bool *https, char *err,
                      size_t errsz)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *query = NULL, *fragment = NULL, *user = NULL;
    bool ok = false;
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        fail(err, errsz, "%s: '%s' is not an absolute URL", var, url);
        goto out;
    }
    curl_url_get(u, CURLUPART_QUERY, &query, 0);
    curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0);
    curl_url_get(u, CURLUPART_USER, &user, 0);
    if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0) {
        fail(err, errsz, "%s: scheme must be https, got '%s'", var, scheme);
        goto out;
    }
    if (strcmp(scheme, "http") == 0 && !host_is_loopback(host)) {
        fail(err, errsz, "%s: plain http is allowed only for localhost, 127.0.0.1 or [::1]; use https for %s",
             var, host);
        goto out;
    }
    if (user) {
        fail(err, errsz, "%s: must not contain credentials", var);
        goto out;
    }
    if (no_query && (query || fragment || strchr(url, '?') || strchr(url, '#'))) {
        fail(err, errsz, "%s: must not contain a query string or fragment (FreshBooks refuses them)", var);
        goto out;
    }
    if (https)
        *https = strcmp(scheme, "https") == 0;
    ok = true;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(query);
    curl_free(fragment);
    curl_free(user);
    curl_url_cleanup(u);
    return ok;
}

int config_parse_key(const char *text, uint8_t out[SECRET_KEY_BYTES])
{
    size_t n = strlen(text), got = 0;
    if (n == SECRET_KEY_BYTES * 2 &&
        sodium_hex2bin(out, SECRET_KEY_BYTES, text, n, NULL, &got, NULL) == 0 &&
        got == SECRET_KEY_BYTES)
        return 0;
    static const int variants[] = {sodium_base64_VARIANT_ORIGINAL,
                                   sodium_base64_VARIANT_ORIGINAL_NO_PADDING,
                                   sodium_base64_VARIANT_URLSAFE,
                                   sodium_base64_VARIANT_URLSAFE_NO_PADDING};
    /* libsodium 1.0.18 decodes bytes >= 0x80 as base64 characters: refuse them first. */
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)text[i] >= 0x80)
            return -1;
    for (size_t i = 0; i < sizeof variants / sizeof variants[0]; i++) {
        const char *endp = NULL;
        if (sodium_base642bin(out, SECRET_KEY_BYTES, text, n, NULL, &got, &endp, variants[i]) == 0 &&
            got == SECRET_KEY_BYTES && endp == text + n)
            return 0;
    }
    sodium_memzero(out, SECRET_KEY_BYTES);
    return -1;
}

static bool parse_redis_url(struct config *c, const char *url, char *err, size_t errsz)
{
    const char *var = "FBCONNECT_REDIS_URL";
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7;
        if (path[0] != '/' || strchr(path, '?')) {
            fail(err, errsz, "%s: expected unix:///absolute/path.sock", var);
            return false;
        }
        c->redis.path = xstrdup(path);
        return true;
    }
    if (strncmp(url, "redis://", 8) != 0) {
        fail(err, errsz, "%s: expected redis://[[user]:password@]host:port[/db] or unix:///path.sock", var);
        return false;
    }
    CURLU *u = curl_url();
    char *host = NULL, *port = NULL, *user = NULL, *pass = NULL, *path = NULL;
    bool ok = false;
    if (curl_url_set(u, CURLUPART_URL, url, CURLU_NON_SUPPORT_SCHEME) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        fail(err, errsz, "%s: cannot parse the URL", var);
        goto out;
    }
    curl_url_get(u, CURLUPART_PORT, &port, 0);
    curl_url_get(u, CURLUPART_USER, &user, CURLU_URLDECODE);
    curl_url_get(u, CURLUPART_PASSWORD, &pass, CURLU_URLDECODE);
    curl_url_get(u, CURLUPART_PATH, &path, 0);
    long p = 6379;
    if (port && !parse_long(var, port, 1, 65535, &p, err, errsz))
        goto out;
    long db = 0;
    if (path && strcmp(path, "/") != 0 && path[0]) {
        if (!parse_long(var, path + 1, 0, 15, &db, err, errsz))
            goto out;
    }
    size_t hl = strlen(host);
    if (hl > 2 && host[0] == '[' && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    c->redis.host = xstrdup(host);
    c->redis.port = (int)p;
    c->redis_db = (int)db;
    if (user && *user)
        c->redis_user = xstrdup(user);
    if (pass && *pass)
        c->redis_password = xstrdup(pass);
    ok = true;
out:
    curl_free(host);
    curl_free(port);
    curl_free(user);
    curl_free(pass);
    curl_free(path);
    curl_url_cleanup(u);
    return ok;
}

static bool parse_sentinels(struct config *c, const char *list, char *err, size_t errsz)
{
    const char *var = "FBCONNECT_REDIS_SENTINELS";
    char *copy = xstrdup(list), *save = NULL;
    bool ok = true;
    for (char *item = strtok_r(copy, ",", &save); item && ok; item = strtok_r(NULL, ",", &save)) {
        while (*item == ' ')
            item++;
        char *colon = strrchr(item, ':');
        long port;
        if (!colon || colon == item) {
            fail(err, errsz, "%s: expected host:port,host:port, got '%s'", var, item);
            ok = false;
        } else if (c->n_sentinels == CONFIG_MAX_SENTINELS) {
            fail(err, errsz, "%s: at most %d sentinels", var, CONFIG_MAX_SENTINELS);
            ok = false;
        } else if (parse_long(var, colon + 1, 1, 65535, &port, err, errsz)) {
            *colon = '\0';
            struct redis_endpoint *e = &c->sentinels[c->n_sentinels++];
            e->host = xstrdup(item);
            e->port = (int)port;
        } else {
            ok = false;
        }
    }
    free(copy);
    if (ok && c->n_sentinels == 0) {
        fail(err, errsz, "%s: empty list", var);
        ok = false;
    }
    return ok;
}

static bool chars_in(const char *s, const char *allowed_extra)
{
    for (; *s; s++) {
        char ch = *s;
        if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
              strchr(allowed_extra, ch)))
            return false;
    }
    return true;
}

/* The templates folder: the installed one, or, for a build run from the source tree,
 * templates/ beside the build directory. */
static char *default_template_dir(void)
{
    if (access(FBCONNECT_TEMPLATE_DEFAULT "/connect.html", R_OK) == 0)
        return xstrdup(FBCONNECT_TEMPLATE_DEFAULT);
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 32);
    if (n > 0) {
        exe[n] = '\0';
        for (int up = 0; up < 3; up++) {
            char *slash = strrchr(exe, '/');
            if (!slash)
                break;
            *slash = '\0';
            char candidate[PATH_MAX + 32];
            snprintf(candidate, sizeof candidate, "%s/templates/connect.html", exe);
            if (access(candidate, R_OK) == 0) {
                candidate[strlen(candidate) - strlen("/connect.html")] = '\0';
                return xstrdup(candidate);
            }
        }
    }
    return xstrdup(FBCONNECT_TEMPLATE_DEFAULT);
}

#define GET(var, allow_file) get_value(get, var, allow_file, &failed, err, errsz)
#define CHECK()                                                                                    \
    do {                                                                                           \
        if (failed)                                                                                \
            goto bad;                                                                              \
    } while (0)

int config_load(struct config *c, config_getter get, char *err, size_t errsz)
{
    memset(c, 0, sizeof *c);
    bool failed = false;
    char *v = NULL;
    long n;

    c->listen = GET("FBCONNECT_LISTEN", false);
    CHECK();
    if (!c->listen)
        c->listen = xstrdup("unix:/run/fbconnect/fbconnect.sock");

    c->threads = 64;
    if ((v = GET("FBCONNECT_THREADS", false))) {
        if (!parse_long("FBCONNECT_THREADS", v, 1, 512, &n, err, errsz))
            goto bad;
        c->threads = (unsigned)n;
        free(v);
        v = NULL;
    }
    CHECK();

    c->client_id = GET("FBCONNECT_CLIENT_ID", false);
    CHECK();
    if (!c->client_id) {
        fail(err, errsz, "FBCONNECT_CLIENT_ID: required (your FreshBooks app's client id)");
        goto bad;
    }
    if (!chars_in(c->client_id, "-_.~") || strlen(c->client_id) > 256) {
        fail(err, errsz, "FBCONNECT_CLIENT_ID: unexpected characters");
        goto bad;
    }
    c->client_secret = GET("FBCONNECT_CLIENT_SECRET", true);
    CHECK();
    if (!c->client_secret) {
        fail(err, errsz, "FBCONNECT_CLIENT_SECRET: required (or FBCONNECT_CLIENT_SECRET_FILE)");
        goto bad;
    }
    c->redirect_uri = GET("FBCONNECT_REDIRECT_URI", false);
    CHECK();
    if (!c->redirect_uri) {
        fail(err, errsz, "FBCONNECT_REDIRECT_URI: required (the callback URL registered with FreshBooks)");
        goto bad;
    }
    if (!check_url("FBCONNECT_REDIRECT_URI", c->redirect_uri, true, &c->redirect_https, err, errsz))
        goto bad;

    c->scopes = GET("FBCONNECT_SCOPES", false);
    CHECK();
    if (c->scopes && (!chars_in(c->scopes, ":_- ") || strlen(c->scopes) > 2048)) {
        fail(err, errsz, "FBCONNECT_SCOPES: expected space-separated scopes like user:profile:read");
        goto bad;
    }

    static const struct {
        const char *var, *def;
        size_t off;
    } urls[] = {
        {"FBCONNECT_AUTHORIZE_URL", "https://auth.freshbooks.com/oauth/authorize", offsetof(struct config, authorize_url)},
        {"FBCONNECT_TOKEN_URL", "https://api.freshbooks.com/auth/oauth/token", offsetof(struct config, token_url)},
        {"FBCONNECT_REVOKE_URL", "https://api.freshbooks.com/auth/oauth/revoke", offsetof(struct config, revoke_url)},
        {"FBCONNECT_API_URL", "https://api.freshbooks.com", offsetof(struct config, api_url)},
    };
    for (size_t i = 0; i < sizeof urls / sizeof urls[0]; i++) {
        char **slot = (char **)((char *)c + urls[i].off);
        *slot = GET(urls[i].var, false);
        CHECK();
        if (!*slot)
            *slot = xstrdup(urls[i].def);
        if (!check_url(urls[i].var, *slot, i == 0 ? false : true, NULL, err, errsz))
            goto bad;
        if (strchr(*slot, '#')) { /* the state is appended: a fragment would swallow it */
            fail(err, errsz, "%s: must not contain a fragment (#…)", urls[i].var);
            goto bad;
        }
    }
    /* The API base is used as a prefix: drop a trailing slash. */
    size_t al = strlen(c->api_url);
    while (al > 0 && c->api_url[al - 1] == '/')
        c->api_url[--al] = '\0';

    c->ca_file = GET("FBCONNECT_CA_FILE", false);
    CHECK();
    if (c->ca_file && access(c->ca_file, R_OK) != 0) {
        fail(err, errsz, "FBCONNECT_CA_FILE: cannot read %s: %s", c->ca_file, strerror(errno));
        goto bad;
    }

    c->http_timeout_ms = 10000;
    if ((v = GET("FBCONNECT_HTTP_TIMEOUT_MS", false))) {
        if (!parse_long("FBCONNECT_HTTP_TIMEOUT_MS", v, 100, 120000, &c->http_timeout_ms, err, errsz))
            goto bad;
        free(v);
        v = NULL;
    }
    CHECK();

    c->redis_url = GET("FBCONNECT_REDIS_URL", true);
    CHECK();
    if (!c->redis_url)
        c->redis_url = xstrdup("redis://127.0.0.1:6379");
    if (!parse_redis_url(c, c->redis_url, err, errsz))
        goto bad;

    c->redis_prefix = GET("FBCONNECT_REDIS_PREFIX", false);
    CHECK();
    if (!c->redis_prefix)
        c->redis_prefix = xstrdup("fbc:");
    if (strlen(c->redis_prefix) > 64 || !chars_in(c->redis_prefix, ":_-.{}/")) {
        fail(err, errsz, "FBCONNECT_REDIS_PREFIX: at most 64 of A-Z a-z 0-9 : _ - . { } /");
        goto bad;
    }
    c->redis_timeout_ms = 1000;
    if ((v = GET("FBCONNECT_REDIS_TIMEOUT_MS", false))) {
        if (!parse_long("FBCONNECT_REDIS_TIMEOUT_MS", v, 10, 60000, &c->redis_timeout_ms, err, errsz))
            goto bad;
        free(v);
        v = NULL;
    }
    CHECK();

    if ((v = GET("FBCONNECT_REDIS_SENTINELS", false))) {
        if (!parse_sentinels(c, v, err, errsz))
            goto bad;
        free(v);
        v = NULL;
    }
    CHECK();
    c->sentinel_master = GET("FBCONNECT_REDIS_MASTER", false);
    CHECK();
    if ((c->n_sentinels > 0) != (c->sentinel_master != NULL)) {
        fail(err, errsz, c->n_sentinels ? "FBCONNECT_REDIS_MASTER: required with FBCONNECT_REDIS_SENTINELS"
                                        : "FBCONNECT_REDIS_SENTINELS: required with FBCONNECT_REDIS_MASTER");
        goto bad;
    }
    c->sentinel_password = GET("FBCONNECT_REDIS_SENTINEL_PASSWORD", true);
    CHECK();
    c->wait_replicas = -1;
    if ((v = GET("FBCONNECT_REDIS_WAIT_REPLICAS", false))) {
        if (!parse_long("FBCONNECT_REDIS_WAIT_REPLICAS", v, 0, 16, &n, err, errsz))
            goto bad;
        c->wait_replicas = (int)n;
        free(v);
        v = NULL;
    }
    CHECK();
    c->wait_timeout_ms = 500;
    if ((v = GET("FBCONNECT_REDIS_WAIT_TIMEOUT_MS", false))) {
        if (!parse_long("FBCONNECT_REDIS_WAIT_TIMEOUT_MS", v, 1, 60000, &c->wait_timeout_ms, err, errsz))
            goto bad;
        free(v);
        v = NULL;
    }
    CHECK();

    if (!(v = GET("FBCONNECT_SECRET_KEY", true))) {
        CHECK();
        fail(err, errsz, "FBCONNECT_SECRET_KEY: required (32 random bytes, hex or base64; `fbconnect keygen` makes one)");
        goto bad;
    }
    if (config_parse_key(v, c->secret_key) != 0) {
        fail(err, errsz, "FBCONNECT_SECRET_KEY: must be 32 bytes as 64 hex digits or base64");
        goto bad;
    }
    sodium_memzero(v, strlen(v));
    free(v);
    v = NULL;
    if ((v = GET("FBCONNECT_OLD_SECRET_KEYS", true))) {
        char *save = NULL;
        for (char *k = strtok_r(v, ", \n", &save); k; k = strtok_r(NULL, ", \n", &save)) {
            if (c->n_old_keys == CONFIG_MAX_OLD_KEYS) {
                fail(err, errsz, "FBCONNECT_OLD_SECRET_KEYS: at most %d keys", CONFIG_MAX_OLD_KEYS);
                goto bad;
            }
            if (config_parse_key(k, c->old_keys[c->n_old_keys]) != 0) {
                fail(err, errsz, "FBCONNECT_OLD_SECRET_KEYS: key %zu is not 32 bytes of hex or base64",
                     c->n_old_keys + 1);
                goto bad;
            }
            c->n_old_keys++;
        }
        sodium_memzero(v, strlen(v));
        free(v);
        v = NULL;
    }
    CHECK();

    c->base_path = GET("FBCONNECT_BASE_PATH", false);
    CHECK();
    if (!c->base_path)
        c->base_path = xstrdup("/");
    {
        size_t bl = strlen(c->base_path);
        if (c->base_path[0] != '/' || !chars_in(c->base_path, "/-._~") || strstr(c->base_path, "//") ||
            strstr(c->base_path, "/./") || strstr(c->base_path, "/../") || bl > 200) {
            fail(err, errsz, "FBCONNECT_BASE_PATH: expected a path like / or /freshbooks/ (letters, digits, - . _ ~)");
            goto bad;
        }
        if (c->base_path[bl - 1] != '/') {
            c->base_path = xrealloc(c->base_path, bl + 2);
            strcpy(c->base_path + bl, "/");
        }
    }

    c->template_dir = GET("FBCONNECT_TEMPLATE_DIR", false);
    CHECK();
    if (!c->template_dir)
        c->template_dir = default_template_dir();

    {
        char *name = GET("FBCONNECT_COOKIE_NAME", false);
        CHECK();
        if (!name)
            name = xstrdup("fbconnect_session");
        if (strlen(name) > 64 || !chars_in(name, "-_.")) {
            fail(err, errsz, "FBCONNECT_COOKIE_NAME: at most 64 of A-Z a-z 0-9 - _ .");
            free(name);
            goto bad;
        }
        bool host_prefix = strncmp(name, "__Host-", 7) == 0;
        if ((host_prefix && (!c->redirect_https || strcmp(c->base_path, "/") != 0)) ||
            (strncmp(name, "__Secure-", 9) == 0 && !c->redirect_https)) {
            fail(err, errsz, "FBCONNECT_COOKIE_NAME: browsers drop %s cookies unless they are Secure%s; "
                             "choose a name without the prefix",
                 host_prefix ? "__Host-" : "__Secure-", host_prefix ? " with Path=/" : "");
            free(name);
            goto bad;
        }
        if (c->redirect_https && strcmp(c->base_path, "/") == 0 && !host_prefix) {
            size_t nl = strlen(name) + 8;
            c->cookie_name = xmalloc(nl);
            snprintf(c->cookie_name, nl, "__Host-%s", name);
            free(name);
        } else {
            c->cookie_name = name;
        }
    }

    c->session_ttl = 2592000;
    if ((v = GET("FBCONNECT_SESSION_TTL", false))) {
        if (!parse_long("FBCONNECT_SESSION_TTL", v, 60, 400L * 86400, &c->session_ttl, err, errsz))
            goto bad;
        free(v);
        v = NULL;
    }
    CHECK();
    c->refresh_margin = 300;
    if ((v = GET("FBCONNECT_REFRESH_MARGIN", false))) {
        if (!parse_long("FBCONNECT_REFRESH_MARGIN", v, 0, 43000, &c->refresh_margin, err, errsz))
            goto bad;
        free(v);
        v = NULL;
    }
    CHECK();
    c->refresh_wait_ms = 1500;
    if ((v = GET("FBCONNECT_REFRESH_WAIT_MS", false))) {
        if (!parse_long("FBCONNECT_REFRESH_WAIT_MS", v, 0, 60000, &c->refresh_wait_ms, err, errsz))
            goto bad;
        free(v);
        v = NULL;
    }
    CHECK();

    c->user_param = GET("FBCONNECT_USER_PARAM", false);
    CHECK();
    if (c->user_param) {
        /* Params nginx fills from the request itself: a client could choose their value. */
        static const char *const client_params[] = {
            "QUERY_STRING", "REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH", "SCRIPT_NAME",
            "REQUEST_URI", "DOCUMENT_URI", "DOCUMENT_ROOT", "SERVER_PROTOCOL", "REQUEST_SCHEME",
            "HTTPS", "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REMOTE_ADDR", "REMOTE_PORT",
            "SERVER_ADDR", "SERVER_PORT", "SERVER_NAME", "REDIRECT_STATUS", "PATH_INFO",
            "PATH_TRANSLATED", "SCRIPT_FILENAME", "FBCONNECT_INTERNAL", "REQUEST_ID"};
        if (strncmp(c->user_param, "HTTP_", 5) == 0) {
            fail(err, errsz, "FBCONNECT_USER_PARAM: names starting with HTTP_ come from client headers and can be forged");
            goto bad;
        }
        for (size_t i = 0; i < sizeof client_params / sizeof client_params[0]; i++)
            if (strcmp(c->user_param, client_params[i]) == 0) {
                fail(err, errsz, "FBCONNECT_USER_PARAM: %s is filled from the request and can be forged",
                     c->user_param);
                goto bad;
            }
        if (!chars_in(c->user_param, "_") || strlen(c->user_param) > 64) {
            fail(err, errsz, "FBCONNECT_USER_PARAM: expected a FastCGI param name like REMOTE_USER");
            goto bad;
        }
    }
    return 0;

bad:
    if (v) {
        sodium_memzero(v, strlen(v));
        free(v);
    }
    config_free(c);
    return -1;
}

void config_free(struct config *c)
{
    free(c->listen);
    free(c->client_id);
    if (c->client_secret)
        sodium_memzero(c->client_secret, strlen(c->client_secret));
    free(c->client_secret);
    free(c->redirect_uri);
    free(c->scopes);
    free(c->authorize_url);
    free(c->token_url);
    free(c->revoke_url);
    free(c->api_url);
    free(c->ca_file);
    free(c->redis_url);
    free(c->redis.host);
    free(c->redis.path);
    free(c->redis_user);
    free(c->redis_password);
    free(c->redis_prefix);
    for (size_t i = 0; i < c->n_sentinels; i++)
        free(c->sentinels[i].host);
    free(c->sentinel_master);
    free(c->sentinel_password);
    free(c->base_path);
    free(c->template_dir);
    free(c->cookie_name);
    free(c->user_param);
    sodium_memzero(c, sizeof *c);
}

long config_record_ttl(const struct config *c)
{
    return c->user_param ? 0 : c->session_ttl;
}

long config_lock_ttl_ms(const struct config *c)
{
    return c->http_timeout_ms + 5000;
}

long config_request_bound_ms(const struct config *c)
{
    return 2 * c->http_timeout_ms + c->refresh_wait_ms + 4 * c->redis_timeout_ms +
           2 * c->wait_timeout_ms;
}

void config_print(const struct config *c, FILE *out)
{
    fprintf(out, "FBCONNECT_LISTEN=%s\n", c->listen);
    fprintf(out, "FBCONNECT_THREADS=%u\n", c->threads);
    fprintf(out, "FBCONNECT_CLIENT_ID=%s\n", c->client_id);
    fprintf(out, "FBCONNECT_CLIENT_SECRET=(set, %zu bytes)\n", strlen(c->client_secret));
    fprintf(out, "FBCONNECT_REDIRECT_URI=%s\n", c->redirect_uri);
    fprintf(out, "FBCONNECT_SCOPES=%s\n", c->scopes ? c->scopes : "(all registered)");
    fprintf(out, "FBCONNECT_AUTHORIZE_URL=%s\n", c->authorize_url);
    fprintf(out, "FBCONNECT_TOKEN_URL=%s\n", c->token_url);
    fprintf(out, "FBCONNECT_REVOKE_URL=%s\n", c->revoke_url);
    fprintf(out, "FBCONNECT_API_URL=%s\n", c->api_url);
    fprintf(out, "FBCONNECT_CA_FILE=%s\n", c->ca_file ? c->ca_file : "(system trust store)");
    fprintf(out, "FBCONNECT_HTTP_TIMEOUT_MS=%ld\n", c->http_timeout_ms);
    if (c->redis.path)
        fprintf(out, "FBCONNECT_REDIS_URL=unix://%s (db %d)\n", c->redis.path, c->redis_db);
    else
        fprintf(out, "FBCONNECT_REDIS_URL=redis://%s%s%s:%d/%d\n",
                c->redis_user ? c->redis_user : "", c->redis_password ? ":***@" : (c->redis_user ? "@" : ""),
                c->redis.host, c->redis.port, c->redis_db);
    fprintf(out, "FBCONNECT_REDIS_PREFIX=%s\n", c->redis_prefix);
    fprintf(out, "FBCONNECT_REDIS_TIMEOUT_MS=%ld\n", c->redis_timeout_ms);
    fprintf(out, "FBCONNECT_REDIS_SENTINELS=");
    for (size_t i = 0; i < c->n_sentinels; i++)
        fprintf(out, "%s%s:%d", i ? "," : "", c->sentinels[i].host, c->sentinels[i].port);
    fprintf(out, "%s\n", c->n_sentinels ? "" : "(off)");
    fprintf(out, "FBCONNECT_REDIS_MASTER=%s\n", c->sentinel_master ? c->sentinel_master : "(off)");
    fprintf(out, "FBCONNECT_REDIS_SENTINEL_PASSWORD=%s\n", c->sentinel_password ? "(set)" : "(none)");
    if (c->wait_replicas < 0)
        fprintf(out, "FBCONNECT_REDIS_WAIT_REPLICAS=(1 when the primary has replicas, else 0)\n");
    else
        fprintf(out, "FBCONNECT_REDIS_WAIT_REPLICAS=%d\n", c->wait_replicas);
    fprintf(out, "FBCONNECT_REDIS_WAIT_TIMEOUT_MS=%ld\n", c->wait_timeout_ms);
    fprintf(out, "FBCONNECT_SECRET_KEY=(set)\n");
    fprintf(out, "FBCONNECT_OLD_SECRET_KEYS=(%zu keys)\n", c->n_old_keys);
    fprintf(out, "FBCONNECT_BASE_PATH=%s\n", c->base_path);
    fprintf(out, "FBCONNECT_TEMPLATE_DIR=%s\n", c->template_dir);
    fprintf(out, "FBCONNECT_COOKIE_NAME=%s\n", c->cookie_name);
    fprintf(out, "FBCONNECT_SESSION_TTL=%ld\n", c->session_ttl);
    fprintf(out, "FBCONNECT_REFRESH_MARGIN=%ld\n", c->refresh_margin);
    fprintf(out, "FBCONNECT_REFRESH_WAIT_MS=%ld\n", c->refresh_wait_ms);
    fprintf(out, "FBCONNECT_USER_PARAM=%s\n", c->user_param ? c->user_param : "(off)");
}
