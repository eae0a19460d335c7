#include "session.h"

#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "state.h"

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

const char *session_earlier(struct ctx *ctx)
{
    return cookie_text(ctx->arena, ctx->req->cookies, ctx->cfg->earlier_cookie_name,
                       STATE_EARLIER_MAX * (STATE_BINDING_TEXT_LEN + 1));
}

void session_remember_earlier(struct ctx *ctx, const char *old_id)
{
    const struct config *cfg = ctx->cfg;
    char b[STATE_BINDING_TEXT_LEN + 1];
    state_session_binding(old_id, b);
    struct buf list = {0};
    buf_puts(&list, b);
    /* then the ones remembered already, newest first, up to STATE_EARLIER_MAX in all */
    const char *had = session_earlier(ctx);
    for (int kept = 1; had && *had && kept < STATE_EARLIER_MAX; kept++) {
        size_t k = strcspn(had, ".");
        if (k == STATE_BINDING_TEXT_LEN && strncmp(had, b, k) != 0) {
            buf_putc(&list, '.');
            buf_append(&list, had, k);
        }
        had += k;
        had += *had == '.';
    }
    buf_putc(&list, '\0');
    response_header(ctx->resp, "Set-Cookie",
                    arena_printf(ctx->arena, "%s=%s; Path=%scallback; Max-Age=%d; HttpOnly; "
                                             "SameSite=Lax%s",
                                 cfg->earlier_cookie_name, list.data, cfg->base_path, STATE_TTL,
                                 cfg->redirect_https ? "; Secure" : ""));
    buf_free(&list);
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
    name_text h;
    name_hash("log", ctx->session_id, strlen(ctx->session_id), h);
    memcpy(out, h, 8);
    out[8] = '\0';
}

#define CSRF_MAC_BYTES crypto_auth_BYTES

static void csrf_mac(const struct keyset *ks, const char *session_id, uint8_t out[CSRF_MAC_BYTES])
{
    crypto_auth_hmacsha512256_state st;
    crypto_auth_hmacsha512256_init(&st, ks->csrf, SUBKEY_BYTES);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)"csrf", 5);
    crypto_auth_hmacsha512256_update(&st, (const unsigned char *)session_id, strlen(session_id));
    crypto_auth_hmacsha512256_final(&st, out);
}

const char *csrf_issue(struct ctx *ctx)
{
    uint8_t raw[KID_BYTES + CSRF_MAC_BYTES];
    const struct keyset *ks = &ctx->app->keys.keys[0];
    memcpy(raw, ks->kid, KID_BYTES);
    csrf_mac(ks, ctx->session_id, raw + KID_BYTES);
    char *text = arena_alloc(ctx->arena, b64url_len(sizeof raw) + 1);
    b64url_encode(raw, sizeof raw, text);
    return text;
}

bool csrf_verify(const struct ctx *ctx, const char *value)
{
    uint8_t raw[KID_BYTES + CSRF_MAC_BYTES], expect[CSRF_MAC_BYTES];
    size_t n = 0;
    if (!ctx->has_session || !value ||
        b64url_decode(value, strlen(value), raw, sizeof raw, &n) != 0 || n != sizeof raw)
        return false;
    const struct keyset *ks = keyring_find(&ctx->app->keys, raw);
    if (!ks)
        return false;
    csrf_mac(ks, ctx->session_id, expect);
    return sodium_memcmp(expect, raw + KID_BYTES, CSRF_MAC_BYTES) == 0;
}
