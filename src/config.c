#include "config.h"

#include <curl/curl.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "url.h"

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
    if (allow_file && !(v && *v)) {
        /* Under systemd, secrets come as credentials: $CREDENTIALS_DIRECTORY/<name>, the
         * setting's name in lower case without FBCONNECT_ (fbconnect_<name> when the unit
         * loads a whole directory with LoadCredential=fbconnect:DIR). */
        const char *dir = get("CREDENTIALS_DIRECTORY");
        if (dir && *dir && strncmp(var, "FBCONNECT_", 10) == 0 && strlen(dir) < 3500) {
            char name[96], path[4096];
            size_t i = 0;
            for (const char *p = var + 10; *p && i + 1 < sizeof name; p++)
                name[i++] = (char)tolower((unsigned char)*p);
            name[i] = '\0';
            for (int prefixed = 1; prefixed >= 0; prefixed--) {
                snprintf(path, sizeof path, "%s/%s%s", dir, prefixed ? "fbconnect_" : "", name);
                if (access(path, F_OK) != 0)
                    continue;
                char *text = read_secret_file(var, path, err, errsz);
                if (!text)
                    *failed = true;
                else if (!*text) {
                    free(text);
                    text = NULL;
                }
                return text;
            }
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
    c->redis_tls = strncmp(url, "rediss://", 9) == 0;
    if (strncmp(url, "redis://", 8) != 0 && !c->redis_tls) {
        fail(err, errsz, "%s: expected redis://[[user]:password@]host:port[/db], rediss://… (TLS) "
                         "or unix:///path.sock", var);
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

/* ---- the settings: one table, a parser per kind, a check per setting ----
 *
 * Each row names a variable, its kind and field, its default, bounds or checks, and how
 * --check-config prints it.  config_load walks the table in order (so a check may rely
 * on the settings above it), config_print walks it again, and the unit tests hold the
 * README's configuration table against config_setting_name(). */

enum kind {
    K_TEXT,  /* char *: the value, or the default */
    K_LONG,  /* long, int or unsigned (width) within [min, max] */
    K_PARSE, /* parse() takes the text; nothing is stored as text */
};

enum { F_SECRET = 1, /* may come from VAR_FILE; never printed */ F_REQUIRED = 2, F_QUERY_OK = 4 };

struct setting {
    const char *var;
    enum kind kind;
    unsigned flags;
    size_t off;       /* the field in struct config */
    const char *def;  /* K_TEXT default (NULL: none) */
    char *(*def_fn)(void);
    long def_n, min, max;
    size_t width;     /* K_LONG: sizeof the field */
    const char *required; /* F_REQUIRED: what the error line says after "required" */
    /* K_TEXT: checks (and may complete) the stored value; K_PARSE: takes the text. */
    bool (*check)(struct config *c, const struct setting *s, char *err, size_t errsz);
    bool (*parse)(struct config *c, const struct setting *s, char *text, char *err, size_t errsz);
    const char *unset; /* printed for a K_TEXT setting left unset */
    void (*print)(const struct config *c, FILE *out);
};

static char **text_field(struct config *c, const struct setting *s)
{
    return (char **)((char *)c + s->off);
}

static void set_number(struct config *c, const struct setting *s, long v)
{
    char *field = (char *)c + s->off;
    if (s->width == sizeof(long)) {
        memcpy(field, &v, sizeof v);
    } else if (s->width == sizeof(int)) {
        int i = (int)v;
        memcpy(field, &i, sizeof i);
    }
}

static long get_number(const struct config *c, const struct setting *s)
{
    const char *field = (const char *)c + s->off;
    if (s->width == sizeof(long)) {
        long v;
        memcpy(&v, field, sizeof v);
        return v;
    }
    int i;
    memcpy(&i, field, sizeof i);
    return i;
}

static bool check_client_id(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    if (!chars_in(c->client_id, "-_.~") || strlen(c->client_id) > 256) {
        fail(err, errsz, "FBCONNECT_CLIENT_ID: unexpected characters");
        return false;
    }
    return true;
}

static bool check_redirect(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    return check_url(s->var, c->redirect_uri, true, &c->redirect_https, err, errsz);
}

static bool check_scopes(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    if (c->scopes && (!chars_in(c->scopes, ":_- ") || strlen(c->scopes) > 2048)) {
        fail(err, errsz, "FBCONNECT_SCOPES: expected space-separated scopes like user:profile:read");
        return false;
    }
    return true;
}

/* A FreshBooks endpoint: check_url, and no fragment (the state is appended); the API
 * base, used as a prefix, loses a trailing slash. */
static bool check_endpoint(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    char *url = *text_field(c, s);
    if (!check_url(s->var, url, !(s->flags & F_QUERY_OK), NULL, err, errsz))
        return false;
    if (strchr(url, '#')) {
        fail(err, errsz, "%s: must not contain a fragment (#…)", s->var);
        return false;
    }
    if (url == c->api_url) {
        size_t al = strlen(url);
        while (al > 0 && url[al - 1] == '/')
            url[--al] = '\0';
    }
    return true;
}

static bool check_readable(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    const char *path = *text_field(c, s);
    if (path && access(path, R_OK) != 0) {
        fail(err, errsz, "%s: cannot read %s: %s", s->var, path, strerror(errno));
        return false;
    }
    return true;
}

static bool check_redis_url(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    return parse_redis_url(c, c->redis_url, err, errsz);
}

static bool check_prefix(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    if (strlen(c->redis_prefix) > 64 || !chars_in(c->redis_prefix, ":_-.{}/")) {
        fail(err, errsz, "FBCONNECT_REDIS_PREFIX: at most 64 of A-Z a-z 0-9 : _ - . { } /");
        return false;
    }
    return true;
}

static bool take_sentinels(struct config *c, const struct setting *s, char *text, char *err,
                           size_t errsz)
{
    (void)s;
    return parse_sentinels(c, text, err, errsz);
}

/* A TLS setting is only for a rediss:// URL (the one switch): true when unset or allowed. */
static bool tls_only(const struct config *c, const struct setting *s, char *err, size_t errsz)
{
    if (!*text_field((struct config *)c, s) || c->redis_tls)
        return true;
    fail(err, errsz, "%s: only with a rediss:// FBCONNECT_REDIS_URL (TLS); the URL is %s", s->var,
         c->redis.path ? "a unix socket" : "redis:// (plain TCP)");
    return false;
}

/* The TLS files: readable; a key only with its certificate. */
static bool check_redis_tls_file(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    if (!tls_only(c, s, err, errsz))
        return false;
    if (*text_field(c, s) && strcmp(s->var, "FBCONNECT_REDIS_KEY_FILE") == 0 && !c->redis_cert_file) {
        fail(err, errsz, "%s: needs FBCONNECT_REDIS_CERT_FILE (the certificate it goes with)", s->var);
        return false;
    }
    return check_readable(c, s, err, errsz);
}

static bool check_redis_server_name(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    if (!tls_only(c, s, err, errsz))
        return false;
    const char *v = c->redis_tls_server_name;
    if (v && (strlen(v) > 253 || !chars_in(v, ".-:"))) {
        fail(err, errsz, "%s: expected a host name such as redis.example.com", s->var);
        return false;
    }
    return true;
}

/* Sentinels and master name come together. */
static bool check_master(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    if ((c->n_sentinels > 0) != (c->sentinel_master != NULL)) {
        fail(err, errsz, c->n_sentinels ? "FBCONNECT_REDIS_MASTER: required with FBCONNECT_REDIS_SENTINELS"
                                        : "FBCONNECT_REDIS_SENTINELS: required with FBCONNECT_REDIS_MASTER");
        return false;
    }
    return true;
}

static bool take_secret_key(struct config *c, const struct setting *s, char *text, char *err,
                            size_t errsz)
{
    (void)s;
    if (config_parse_key(text, c->secret_key) != 0) {
        fail(err, errsz, "FBCONNECT_SECRET_KEY: must be 32 bytes as 64 hex digits or base64");
        return false;
    }
    return true;
}

static bool take_old_keys(struct config *c, const struct setting *s, char *text, char *err,
                          size_t errsz)
{
    (void)s;
    char *save = NULL;
    for (char *k = strtok_r(text, ", \n", &save); k; k = strtok_r(NULL, ", \n", &save)) {
        if (c->n_old_keys == CONFIG_MAX_OLD_KEYS) {
            fail(err, errsz, "FBCONNECT_OLD_SECRET_KEYS: at most %d keys", CONFIG_MAX_OLD_KEYS);
            return false;
        }
        if (config_parse_key(k, c->old_keys[c->n_old_keys]) != 0) {
            fail(err, errsz, "FBCONNECT_OLD_SECRET_KEYS: key %zu is not 32 bytes of hex or base64",
                 c->n_old_keys + 1);
            return false;
        }
        c->n_old_keys++;
    }
    return true;
}

/* The site's own page the connected page leads back to: a path of the site, as return_to
 * takes them. */
static bool check_site_home(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    if (!url_return_to_valid(c->site_home, strlen(c->site_home))) {
        fail(err, errsz, "FBCONNECT_SITE_HOME: expected a path of your site such as / or /account "
                         "(no scheme or host)");
        return false;
    }
    return true;
}

/* A path like / or /freshbooks/ (a trailing slash is added). */
static bool check_base_path(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    size_t bl = strlen(c->base_path);
    if (c->base_path[0] != '/' || !chars_in(c->base_path, "/-._~") || strstr(c->base_path, "//") ||
        strstr(c->base_path, "/./") || strstr(c->base_path, "/../") || bl > 200) {
        fail(err, errsz, "FBCONNECT_BASE_PATH: expected a path like / or /freshbooks/ (letters, digits, - . _ ~)");
        return false;
    }
    if (c->base_path[bl - 1] != '/') {
        c->base_path = xrealloc(c->base_path, bl + 2);
        strcpy(c->base_path + bl, "/");
    }
    return true;
}

/* The cookie's name, __Host- prefixed when the redirect URI is HTTPS and the base path /
 * (after both: they are above it in the table). */
static bool check_cookie_name(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    char *name = c->cookie_name;
    if (strlen(name) > 64 || !chars_in(name, "-_.")) {
        fail(err, errsz, "FBCONNECT_COOKIE_NAME: at most 64 of A-Z a-z 0-9 - _ .");
        return false;
    }
    bool host_prefix = strncmp(name, "__Host-", 7) == 0;
    if ((host_prefix && (!c->redirect_https || strcmp(c->base_path, "/") != 0)) ||
        (strncmp(name, "__Secure-", 9) == 0 && !c->redirect_https)) {
        fail(err, errsz, "FBCONNECT_COOKIE_NAME: browsers drop %s cookies unless they are Secure%s; "
                         "choose a name without the prefix",
             host_prefix ? "__Host-" : "__Secure-", host_prefix ? " with Path=/" : "");
        return false;
    }
    if (c->redirect_https && strcmp(c->base_path, "/") == 0 && !host_prefix) {
        size_t nl = strlen(name) + 8;
        c->cookie_name = xmalloc(nl);
        snprintf(c->cookie_name, nl, "__Host-%s", name);
        free(name);
    }
    /* The earlier-sessions cookie lives on the callback's path alone, which a __Host-
     * cookie may not: __Secure- instead. */
    const char *base = c->cookie_name;
    bool secure = c->redirect_https;
    if (strncmp(base, "__Host-", 7) == 0)
        base += 7;
    else if (strncmp(base, "__Secure-", 9) == 0)
        base += 9;
    else
        secure = false;
    size_t el = strlen(base) + 20;
    c->earlier_cookie_name = xmalloc(el);
    snprintf(c->earlier_cookie_name, el, "%s%s_earlier", secure ? "__Secure-" : "", base);
    return true;
}

/* A FastCGI param that nginx sets and a client cannot. */
static bool check_user_param(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    if (!c->user_param)
        return true;
    /* Params nginx fills from the request itself: a client could choose their value. */
    static const char *const client_params[] = {
        "QUERY_STRING", "REQUEST_METHOD", "CONTENT_TYPE", "CONTENT_LENGTH", "SCRIPT_NAME",
        "REQUEST_URI", "DOCUMENT_URI", "DOCUMENT_ROOT", "SERVER_PROTOCOL", "REQUEST_SCHEME",
        "HTTPS", "GATEWAY_INTERFACE", "SERVER_SOFTWARE", "REMOTE_ADDR", "REMOTE_PORT",
        "SERVER_ADDR", "SERVER_PORT", "SERVER_NAME", "REDIRECT_STATUS", "PATH_INFO",
        "PATH_TRANSLATED", "SCRIPT_FILENAME", "FBCONNECT_INTERNAL", "REQUEST_ID"};
    if (strncmp(c->user_param, "HTTP_", 5) == 0) {
        fail(err, errsz, "FBCONNECT_USER_PARAM: names starting with HTTP_ come from client headers and can be forged");
        return false;
    }
    for (size_t i = 0; i < sizeof client_params / sizeof client_params[0]; i++)
        if (strcmp(c->user_param, client_params[i]) == 0) {
            fail(err, errsz, "FBCONNECT_USER_PARAM: %s is filled from the request and can be forged",
                 c->user_param);
            return false;
        }
    if (!chars_in(c->user_param, "_") || strlen(c->user_param) > 64) {
        fail(err, errsz, "FBCONNECT_USER_PARAM: expected a FastCGI param name like REMOTE_USER");
        return false;
    }
    return true;
}

static bool check_pkce(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    c->pkce = strcmp(c->pkce_mode, "s256") == 0;
    if (!c->pkce && strcmp(c->pkce_mode, "off") != 0) {
        fail(err, errsz, "FBCONNECT_PKCE: expected s256 or off, got '%s'", c->pkce_mode);
        return false;
    }
    return true;
}

/* Where events go: an absolute http or https URL of any host, without credentials or a
 * fragment (a query is kept). */
static bool check_events_url(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    if (!c->events_url)
        return true;
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *fragment = NULL;
    const char *problem = NULL;
    if (!u || curl_url_set(u, CURLUPART_URL, c->events_url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK)
        problem = "is not an absolute URL";
    else if (strcmp(scheme, "https") != 0 && strcmp(scheme, "http") != 0)
        problem = "must be an http or https URL";
    else if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK && user)
        problem = "must not contain credentials (deliveries are signed instead)";
    else if (curl_url_get(u, CURLUPART_FRAGMENT, &fragment, 0) == CURLUE_OK && fragment)
        problem = "must not contain a fragment (#…)";
    if (problem) /* named without its query, which may carry a token of the back end's */
        fail(err, errsz, "FBCONNECT_EVENTS_URL: '%.*s%s' %s", (int)strcspn(c->events_url, "?"),
             c->events_url, strchr(c->events_url, '?') ? "?…" : "", problem);
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(fragment);
    curl_url_cleanup(u);
    return !problem;
}

/* Standard base64 of in (padded or not) into out: the byte count, or -1. */
static long base64_std(const char *in, uint8_t *out, size_t cap)
{
    size_t n = 0, len = strlen(in);
    int variant = len && in[len - 1] == '=' ? sodium_base64_VARIANT_ORIGINAL
                                           : sodium_base64_VARIANT_ORIGINAL_NO_PADDING;
    const char *end = NULL;
    if (sodium_base642bin(out, cap, in, len, NULL, &n, &end, variant) != 0 || end != in + len)
        return -1;
    return (long)n;
}

/* The Standard Webhooks secret: "whsec_" and the standard base64 (padding allowed) of
 * EVENTS_KEY_MIN to EVENTS_KEY_MAX bytes; required with FBCONNECT_EVENTS_URL. */
static bool check_events_secret(struct config *c, const struct setting *s, char *err, size_t errsz)
{
    (void)s;
    const char *v = c->events_secret;
    if (!v && c->events_url) {
        fail(err, errsz, "FBCONNECT_EVENTS_SECRET: required with FBCONNECT_EVENTS_URL (or "
                         "FBCONNECT_EVENTS_SECRET_FILE; `fbconnect keygen --events` makes one)");
        return false;
    }
    if (!v)
        return true;
    long n = strncmp(v, "whsec_", 6) == 0 ? base64_std(v + 6, c->events_key, sizeof c->events_key) : -1;
    if (n < EVENTS_KEY_MIN) {
        sodium_memzero(c->events_key, sizeof c->events_key);
        fail(err, errsz, "FBCONNECT_EVENTS_SECRET: expected whsec_ and the standard base64 of %d "
                         "to %d random bytes (`fbconnect keygen --events` makes one)",
             EVENTS_KEY_MIN, EVENTS_KEY_MAX);
        return false;
    }
    c->events_key_len = (size_t)n;
    return true;
}

static void print_client_secret(const struct config *c, FILE *out)
{
    fprintf(out, "(set, %zu bytes)", strlen(c->client_secret));
}

static void print_redis_url(const struct config *c, FILE *out)
{
    if (c->redis.path)
        fprintf(out, "unix://%s (db %d)", c->redis.path, c->redis_db);
    else
        fprintf(out, "%s://%s%s%s:%d/%d", c->redis_tls ? "rediss" : "redis", c->redis_user ? c->redis_user : "",
                c->redis_password ? ":***@" : (c->redis_user ? "@" : ""), c->redis.host,
                c->redis.port, c->redis_db);
}

static void print_sentinels(const struct config *c, FILE *out)
{
    for (size_t i = 0; i < c->n_sentinels; i++)
        fprintf(out, "%s%s:%d", i ? "," : "", c->sentinels[i].host, c->sentinels[i].port);
    if (!c->n_sentinels)
        fputs("(off)", out);
}

static void print_wait_replicas(const struct config *c, FILE *out)
{
    if (c->wait_replicas < 0)
        fputs("(1 when the primary has replicas, else 0)", out);
    else
        fprintf(out, "%d", c->wait_replicas);
}

/* The events URL without its query (it may carry a token of the back end's). */
static void print_events_url(const struct config *c, FILE *out)
{
    if (!c->events_url) {
        fputs("(off)", out);
        return;
    }
    fprintf(out, "%.*s%s", (int)strcspn(c->events_url, "?"), c->events_url,
            strchr(c->events_url, '?') ? "?(query hidden)" : "");
}

static void print_set(const struct config *c, FILE *out)
{
    (void)c;
    fputs("(set)", out);
}

static void print_old_keys(const struct config *c, FILE *out)
{
    fprintf(out, "(%zu keys)", c->n_old_keys);
}

#define TEXT(field) K_TEXT, .off = offsetof(struct config, field)
#define NUMBER(field) K_LONG, .off = offsetof(struct config, field), .width = sizeof(((struct config *)0)->field)

static const struct setting settings[] = {
    {"FBCONNECT_LISTEN", TEXT(listen), .def = "unix:/run/fbconnect/fbconnect.sock"},
    {"FBCONNECT_THREADS", NUMBER(threads), .def_n = 64, .min = 1, .max = 512},
    {"FBCONNECT_CLIENT_ID", TEXT(client_id), .flags = F_REQUIRED,
     .required = "your FreshBooks app's client id", .check = check_client_id},
    {"FBCONNECT_CLIENT_SECRET", TEXT(client_secret), .flags = F_SECRET | F_REQUIRED,
     .required = "or FBCONNECT_CLIENT_SECRET_FILE", .print = print_client_secret},
    {"FBCONNECT_REDIRECT_URI", TEXT(redirect_uri), .flags = F_REQUIRED,
     .required = "the callback URL registered with FreshBooks", .check = check_redirect},
    {"FBCONNECT_SCOPES", TEXT(scopes), .check = check_scopes, .unset = "(all registered)"},
    {"FBCONNECT_AUTHORIZE_URL", TEXT(authorize_url), .flags = F_QUERY_OK,
     .def = "https://auth.freshbooks.com/oauth/authorize", .check = check_endpoint},
    {"FBCONNECT_TOKEN_URL", TEXT(token_url), .def = "https://api.freshbooks.com/auth/oauth/token",
     .check = check_endpoint},
    {"FBCONNECT_REVOKE_URL", TEXT(revoke_url), .def = "https://api.freshbooks.com/auth/oauth/revoke",
     .check = check_endpoint},
    {"FBCONNECT_API_URL", TEXT(api_url), .def = "https://api.freshbooks.com", .check = check_endpoint},
    {"FBCONNECT_CA_FILE", TEXT(ca_file), .check = check_readable, .unset = "(system trust store)"},
    {"FBCONNECT_HTTP_TIMEOUT_MS", NUMBER(http_timeout_ms), .def_n = 10000, .min = 100, .max = 120000},
    {"FBCONNECT_REDIS_URL", TEXT(redis_url), .flags = F_SECRET, .def = "redis://127.0.0.1:6379",
     .check = check_redis_url, .print = print_redis_url},
    {"FBCONNECT_REDIS_PREFIX", TEXT(redis_prefix), .def = "fbc:", .check = check_prefix},
    {"FBCONNECT_REDIS_TIMEOUT_MS", NUMBER(redis_timeout_ms), .def_n = 1000, .min = 10, .max = 60000},
    {"FBCONNECT_REDIS_CA_FILE", TEXT(redis_ca_file), .check = check_redis_tls_file,
     .unset = "(system trust store, with rediss://)"},
    {"FBCONNECT_REDIS_CERT_FILE", TEXT(redis_cert_file), .check = check_redis_tls_file, .unset = "(none)"},
    {"FBCONNECT_REDIS_KEY_FILE", TEXT(redis_key_file), .check = check_redis_tls_file, .unset = "(none)"},
    {"FBCONNECT_REDIS_TLS_SERVER_NAME", TEXT(redis_tls_server_name), .check = check_redis_server_name,
     .unset = "(the host connected to)"},
    {"FBCONNECT_REDIS_SENTINELS", K_PARSE, .parse = take_sentinels, .print = print_sentinels},
    {"FBCONNECT_REDIS_MASTER", TEXT(sentinel_master), .check = check_master, .unset = "(off)"},
    {"FBCONNECT_REDIS_SENTINEL_PASSWORD", TEXT(sentinel_password), .flags = F_SECRET,
     .unset = "(none)"},
    {"FBCONNECT_REDIS_WAIT_REPLICAS", NUMBER(wait_replicas), .def_n = -1, .min = 0, .max = 16,
     .print = print_wait_replicas},
    {"FBCONNECT_REDIS_WAIT_TIMEOUT_MS", NUMBER(wait_timeout_ms), .def_n = 500, .min = 1, .max = 60000},
    {"FBCONNECT_SECRET_KEY", K_PARSE, .flags = F_SECRET | F_REQUIRED,
     .required = "32 random bytes, hex or base64; `fbconnect keygen` makes one",
     .parse = take_secret_key, .print = print_set},
    {"FBCONNECT_OLD_SECRET_KEYS", K_PARSE, .flags = F_SECRET, .parse = take_old_keys,
     .print = print_old_keys},
    {"FBCONNECT_BASE_PATH", TEXT(base_path), .def = "/", .check = check_base_path},
    {"FBCONNECT_TEMPLATE_DIR", TEXT(template_dir), .def_fn = default_template_dir},
    {"FBCONNECT_SITE_HOME", TEXT(site_home), .def = "/", .check = check_site_home},
    {"FBCONNECT_COOKIE_NAME", TEXT(cookie_name), .def = "fbconnect_session", .check = check_cookie_name},
    {"FBCONNECT_SESSION_TTL", NUMBER(session_ttl), .def_n = 2592000, .min = 60, .max = 400L * 86400},
    {"FBCONNECT_REFRESH_MARGIN", NUMBER(refresh_margin), .def_n = 300, .min = 0, .max = 43000},
    {"FBCONNECT_REFRESH_WAIT_MS", NUMBER(refresh_wait_ms), .def_n = 1500, .min = 0, .max = 60000},
    {"FBCONNECT_PKCE", TEXT(pkce_mode), .def = "s256", .check = check_pkce},
    {"FBCONNECT_EVENTS_URL", TEXT(events_url), .check = check_events_url,
     .print = print_events_url, .unset = "(off)"},
    {"FBCONNECT_EVENTS_SECRET", TEXT(events_secret), .flags = F_SECRET,
     .check = check_events_secret, .print = print_set, .unset = "(none)"},
    {"FBCONNECT_EVENTS_CA_FILE", TEXT(events_ca_file), .check = check_readable,
     .unset = "(system trust store)"},
    /* at most half the takeover time, so an attempt never outlives its claim */
    {"FBCONNECT_EVENTS_TIMEOUT_MS", NUMBER(events_timeout_ms), .def_n = 5000, .min = 100,
     .max = 30000},
    {"FBCONNECT_EVENTS_RETENTION", NUMBER(events_retention), .def_n = 604800, .min = 5,
     .max = 90L * 86400},
    {"FBCONNECT_USER_PARAM", TEXT(user_param), .check = check_user_param, .unset = "(off)"},
};
#define N_SETTINGS (sizeof settings / sizeof settings[0])

size_t config_setting_count(void)
{
    return N_SETTINGS;
}

const char *config_setting_name(size_t i)
{
    return i < N_SETTINGS ? settings[i].var : NULL;
}

bool config_setting_takes_file(size_t i)
{
    return i < N_SETTINGS && (settings[i].flags & F_SECRET);
}

/* One setting from its variable (or default): false with err set. */
static bool load_setting(struct config *c, const struct setting *s, config_getter get, char *err,
                         size_t errsz)
{
    bool failed = false;
    char *v = get_value(get, s->var, s->flags & F_SECRET, &failed, err, errsz);
    if (failed)
        return false;
    char fvar[96];
    snprintf(fvar, sizeof fvar, "%s_FILE", s->var);
    const char *from_file = (s->flags & F_SECRET) && get(fvar) && *get(fvar) ? get(fvar) : NULL;
    if (!v && (s->flags & F_REQUIRED)) {
        if (from_file)
            fail(err, errsz, "%s: required, and %s names an empty file: %s", s->var, fvar, from_file);
        else
            fail(err, errsz, "%s: required (%s)", s->var, s->required);
        return false;
    }
    bool ok = true;
    switch (s->kind) {
    case K_TEXT:
        if (!v)
            v = s->def ? xstrdup(s->def) : s->def_fn ? s->def_fn() : NULL;
        *text_field(c, s) = v;
        v = NULL; /* the config owns it now */
        ok = !s->check || s->check(c, s, err, errsz);
        break;
    case K_LONG: {
        long n = s->def_n;
        ok = !v || parse_long(s->var, v, s->min, s->max, &n, err, errsz);
        if (ok)
            set_number(c, s, n);
        break;
    }
    case K_PARSE:
        ok = !v || s->parse(c, s, v, err, errsz);
        break;
    }
    if (v) {
        sodium_memzero(v, strlen(v));
        free(v);
    }
    if (!ok && from_file) { /* say where the value came from */
        size_t n = strlen(err);
        snprintf(err + n, errsz - n, " (read from %s=%s)", fvar, from_file);
    }
    return ok;
}

/* The redirect URI's path must be the callback fbconnect serves under the base path:
 * otherwise every user would come back from FreshBooks to a page fbconnect does not serve. */
static bool check_redirect_path(const struct config *c, char *err, size_t errsz)
{
    if (!c->redirect_uri || !c->base_path)
        return true;
    CURLU *u = curl_url();
    char *path = NULL;
    bool ok = true;
    if (u && curl_url_set(u, CURLUPART_URL, c->redirect_uri, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_PATH, &path, 0) == CURLUE_OK) {
        size_t bl = strlen(c->base_path);
        ok = strncmp(path, c->base_path, bl) == 0 && strcmp(path + bl, "callback") == 0;
        if (!ok)
            fail(err, errsz, "FBCONNECT_REDIRECT_URI: its path %s is not %scallback, where fbconnect "
                             "serves the callback with FBCONNECT_BASE_PATH=%s (change one of the two)",
                 path, c->base_path, c->base_path);
    }
    curl_free(path);
    curl_url_cleanup(u);
    return ok;
}

int config_load(struct config *c, config_getter get, char *err, size_t errsz)
{
    memset(c, 0, sizeof *c);
    /* Every setting is checked, and every problem reported, one line each. */
    char one[512];
    size_t used = 0;
    bool bad = false;
    err[0] = '\0';
    for (size_t i = 0; i <= N_SETTINGS; i++) {
        one[0] = '\0';
        bool ok = i < N_SETTINGS ? load_setting(c, &settings[i], get, one, sizeof one)
                                 : bad || check_redirect_path(c, one, sizeof one);
        if (!ok && used + 2 < errsz) {
            int n = snprintf(err + used, errsz - used, "%s%s", bad ? "\n" : "", one);
            used = n > 0 && (size_t)n < errsz - used ? used + (size_t)n : errsz - 1;
        }
        bad |= !ok;
    }
    if (bad) {
        config_free(c);
        return -1;
    }
    return 0;
}

/* The edit distance between a and b (for "did you mean"), capped at 99. */
static int distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 60 || lb > 60)
        return 99;
    int d[61][61];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = (int)i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = (int)j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

int config_warn_unknown(char *const *env, FILE *out)
{
    int unknown = 0;
    for (size_t e = 0; env && env[e]; e++) {
        const char *eq = strchr(env[e], '=');
        if (strncmp(env[e], "FBCONNECT_", 10) != 0 || !eq || eq - env[e] > 90)
            continue;
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)(eq - env[e]), env[e]);
        const char *best = NULL;
        int best_d = 99;
        bool known = false;
        for (size_t i = 0; i < N_SETTINGS && !known; i++) {
            char fvar[96];
            snprintf(fvar, sizeof fvar, "%s_FILE", settings[i].var);
            known = strcmp(name, settings[i].var) == 0 ||
                    ((settings[i].flags & F_SECRET) && strcmp(name, fvar) == 0);
            int d = distance(name, settings[i].var);
            if (d < best_d) {
                best_d = d;
                best = settings[i].var;
            }
        }
        if (known)
            continue;
        unknown++;
        if (best && best_d <= 4)
            fprintf(out, "warning: %s is not a setting of fbconnect (ignored); did you mean %s?\n",
                    name, best);
        else
            fprintf(out, "warning: %s is not a setting of fbconnect (ignored)\n", name);
    }
    return unknown;
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
    free(c->redis_ca_file);
    free(c->redis_cert_file);
    free(c->redis_key_file);
    free(c->redis_tls_server_name);
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
    free(c->site_home);
    free(c->cookie_name);
    free(c->earlier_cookie_name);
    free(c->events_url);
    if (c->events_secret)
        sodium_memzero(c->events_secret, strlen(c->events_secret));
    free(c->events_secret);
    free(c->events_ca_file);
    free(c->user_param);
    free(c->pkce_mode);
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
    for (size_t i = 0; i < N_SETTINGS; i++) {
        const struct setting *s = &settings[i];
        fprintf(out, "%s=", s->var);
        if (s->print) {
            s->print(c, out);
        } else if (s->kind == K_LONG) {
            fprintf(out, "%ld", get_number(c, s));
        } else {
            const char *v = *text_field((struct config *)c, s);
            fputs(!v ? (s->unset ? s->unset : "") : (s->flags & F_SECRET) ? "(set)" : v, out);
        }
        fputc('\n', out);
    }
}
