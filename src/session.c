#include "session.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "events.h"
#include "state.h"
#include "store.h"

bool session_cookie_find(const char *header, const char *name, id_text out)
{
    if (!header)
        return false;
    size_t name_len = strlen(name);
    const char *p = header;
    while (*p) {
        while (*p == ' ' || *p == '\t' || *p == ';')
            p++;
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len == name_len + 1 + ID_TEXT_LEN && strncmp(p, name, name_len) == 0 &&
            p[name_len] == '=') {
            char value[ID_TEXT_LEN + 1];
            memcpy(value, p + name_len + 1, ID_TEXT_LEN);
            value[ID_TEXT_LEN] = '\0';
            if (id_valid(value)) {
                memcpy(out, value, sizeof value);
                return true;
            }
        }
        p += len;
    }
    return false;
}

/* The value of the first cookie `name` in a Cookie header that is 1 to max characters of
 * base64url and '.', in `a`; NULL when there is none. */
static const char *cookie_text(struct arena *a, const char *header, const char *name, size_t max)
{
    size_t name_len = strlen(name);
    for (const char *p = header; p && *p;) {
        p += strspn(p, " \t;");
        size_t len = strcspn(p, ";");
        if (len > name_len + 1 && strncmp(p, name, name_len) == 0 && p[name_len] == '=') {
            const char *v = p + name_len + 1;
            size_t n = len - name_len - 1;
            static const char ok[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.";
            if (n <= max && strspn(v, ok) >= n)
                return arena_strndup(a, v, n);
        }
        p += len;
    }
    return NULL;
}

void session_load(struct ctx *ctx)
{
    ctx->has_session = session_cookie_find(ctx->req->cookies, ctx->cfg->cookie_name, ctx->session_id);
    ctx->site_user = NULL;
    if (ctx->cfg->user_param) {
        const char *u = request_param(ctx->req, ctx->cfg->user_param);
        if (u && *u && strlen(u) <= 512)
            ctx->site_user = u;
    }
    store_set_site_user(ctx->svc->store, ctx->site_user); /* its owner's name, for events */
}

void session_set_cookie(struct ctx *ctx)
{
    const struct config *cfg = ctx->cfg;
    char *value = arena_printf(ctx->arena, "%s=%s; Path=%s; Max-Age=%ld; HttpOnly; SameSite=Lax%s",
                               cfg->cookie_name, ctx->session_id, cfg->base_path, cfg->session_ttl,
                               cfg->redirect_https ? "; Secure" : "");
    response_header(ctx->resp, "Set-Cookie", value);
}

void session_issue(struct ctx *ctx)
{
    id_new(ctx->session_id);
    ctx->has_session = true;
    session_set_cookie(ctx);
}

const char *session_owner_of(struct ctx *ctx, const char *session_id)
{
    return store_owner_of_session(ctx->arena, session_id);
}

const char *session_owner(const struct ctx *ctx)
{
    if (ctx->cfg->user_param)
        return ctx->site_user ? store_owner_of_user(ctx->arena, ctx->site_user) : NULL;
    return ctx->has_session ? store_owner_of_session(ctx->arena, ctx->session_id) : NULL;
}

void session_log_tag(const struct ctx *ctx, char out[9])
{
    if (!ctx->has_session) {
        strcpy(out, "-");
        return;
    }
    /* The tag connection events carry for this session's owner, so logs and events match. */
    char owner[2 + NAME_TEXT_LEN + 1] = "s:";
    name_hash("session", ctx->session_id, strlen(ctx->session_id), owner + 2);
    event_session_tag(owner, out);
}

#define CSRF_MAC_BYTES crypto_auth_BYTES

/* HMAC (the csrf subkey) over a label with its NUL, the session id and, when not NULL,
 * a NUL and `extra`: the value only this session's browser is given. */
static void session_mac(const struct keyset *ks, const char *label, const char *session_id,
                        const char *extra, uint8_t out[CSRF_MAC_BYTES])
{
    crypto_auth_hmacsha512256_state st;
    crypto_auth_hmacsha512256_init(&st, ks->csrf, SUBKEY_BYTES);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)label, strlen(label) + 1);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)session_id, strlen(session_id));
    if (extra) {
        crypto_auth_hmacsha512256_update(&st, (const unsigned char *)"", 1);
        crypto_auth_hmacsha512256_update(&st, (const unsigned char *)extra, strlen(extra));
    }
    crypto_auth_hmacsha512256_final(&st, out);
}

#define MAC_TEXT_LEN 48 /* base64url of kid + HMAC */

/* kid + session_mac with the current key, as base64url text (MAC_TEXT_LEN, in the arena). */
static const char *mac_issue(struct ctx *ctx, const char *label, const char *extra)
{
    uint8_t raw[KID_BYTES + CSRF_MAC_BYTES];
    const struct keyset *ks = &ctx->app->keys.keys[0];
    memcpy(raw, ks->kid, KID_BYTES);
    session_mac(ks, label, ctx->session_id, extra, raw + KID_BYTES);
    char *text = arena_alloc(ctx->arena, b64url_len(sizeof raw) + 1);
    b64url_encode(raw, sizeof raw, text);
    return text;
}

/* Checks mac_issue's text against this request's session (any configured key). */
static bool mac_verify(const struct ctx *ctx, const char *label, const char *extra,
                       const char *value, size_t len)
{
    uint8_t raw[KID_BYTES + CSRF_MAC_BYTES], expect[CSRF_MAC_BYTES];
    size_t n = 0;
    if (!ctx->has_session || !value || b64url_decode(value, len, raw, sizeof raw, &n) != 0 ||
        n != sizeof raw)
        return false;
    const struct keyset *ks = keyring_find(&ctx->app->keys, raw);
    if (!ks)
        return false;
    session_mac(ks, label, ctx->session_id, extra, expect);
    return sodium_memcmp(expect, raw + KID_BYTES, CSRF_MAC_BYTES) == 0;
}

const char *csrf_issue(struct ctx *ctx)
{
    return mac_issue(ctx, "csrf", NULL);
}

bool csrf_verify(const struct ctx *ctx, const char *value)
{
    return value && mac_verify(ctx, "csrf", NULL, value, strlen(value));
}

/* The earlier-sessions cookie: "<binding>[.<binding>…].<mac>", the mac (mac_issue, label
 * "earlier") over the bindings and the session id the browser was given with it — so a
 * cookie tossed into this browser from elsewhere (a sibling subdomain can set one for this
 * path) never verifies against this browser's own session cookie. */
#define EARLIER_TEXT_MAX (STATE_EARLIER_MAX * (STATE_BINDING_TEXT_LEN + 1) + MAC_TEXT_LEN)

const char *session_earlier(struct ctx *ctx)
{
    char *text = (char *)cookie_text(ctx->arena, ctx->req->cookies, ctx->cfg->earlier_cookie_name,
                                     EARLIER_TEXT_MAX);
    char *dot = text ? strrchr(text, '.') : NULL;
    if (!dot || strlen(dot + 1) != MAC_TEXT_LEN)
        return NULL;
    *dot = '\0';
    return mac_verify(ctx, "earlier", text, dot + 1, MAC_TEXT_LEN) ? text : NULL;
}

void session_remember_earlier(struct ctx *ctx, const char *old_id, const char *had)
{
    const struct config *cfg = ctx->cfg;
    char b[STATE_BINDING_TEXT_LEN + 1];
    state_session_binding(old_id, b);
    struct buf list = {0};
    buf_puts(&list, b);
    /* then the ones remembered already, newest first, up to STATE_EARLIER_MAX in all */
    int kept = 1;
    while (had && *had && kept < STATE_EARLIER_MAX) {
        size_t k = strcspn(had, ".");
        if (k == STATE_BINDING_TEXT_LEN && strncmp(had, b, k) != 0) {
            buf_putc(&list, '.');
            buf_append(&list, had, k);
            kept++;
        }
        had += k;
        had += *had == '.';
    }
    buf_putc(&list, '\0');
    /* the mac binds the list to the session id the browser has from now on */
    const char *mac = mac_issue(ctx, "earlier", list.data);
    response_header(ctx->resp, "Set-Cookie",
                    arena_printf(ctx->arena, "%s=%s.%s; Path=%scallback; Max-Age=%d; HttpOnly; "
                                             "SameSite=Lax%s",
                                 cfg->earlier_cookie_name, list.data, mac, cfg->base_path,
                                 STATE_TTL, cfg->redirect_https ? "; Secure" : ""));
    buf_free(&list);
}
