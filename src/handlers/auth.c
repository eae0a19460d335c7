/* /auth (internal; any method: nginx's auth_request keeps the browser's method) — tells
 * nginx whether this browser (or site user) may call FreshBooks, and with which token.
 * 200: X-FreshBooks-Authorization: Bearer <token> and X-FreshBooks-Account-Id (the first
 *      business's account_id), refreshing the pair first when it is close to expiry.
 * 401: not connected, reconnect required, or (FBCONNECT_USER_PARAM) no signed-in site user.
 * 503: Redis or FreshBooks unavailable, or FreshBooks refuses the app's credentials. */
#include "connection.h"
#include "handlers/handlers.h"
#include "refresh.h"

static void answer(struct ctx *ctx, int status, const char *outcome, const char *text)
{
    if (outcome)
        ctx->outcome = outcome;
    response_set(ctx->resp, status, "text/plain; charset=utf-8", text);
}

void handle_auth(struct ctx *ctx)
{
    struct loaded l;
    switch (connection_load(ctx, &l)) {
    case LOOKUP_UNAVAILABLE:
        answer(ctx, 503, "redis_unavailable", "unavailable\n");
        return;
    case LOOKUP_NONE:
        answer(ctx, 401, "not_connected", "not connected\n");
        return;
    case LOOKUP_FOUND:
        break;
    }
    switch (refresh_ensure_fresh(ctx, &l)) {
    case FRESH_OK:
        break;
    case FRESH_RECONNECT:
        answer(ctx, 401, "reconnect_required", "reconnect required\n");
        return;
    case FRESH_UNAVAILABLE:
        answer(ctx, 503, NULL, "unavailable\n");
        return;
    case FRESH_MISCONFIGURED:
        answer(ctx, 503, NULL, "unavailable\n");
        return;
    }
    connection_resolve_identity(ctx, &l);
    response_header(ctx->resp, "X-FreshBooks-Authorization",
                    arena_printf(ctx->arena, "Bearer %s", l.c.pair.access_token));
    if (l.c.has_identity && l.c.ident.n_businesses > 0)
        response_header(ctx->resp, "X-FreshBooks-Account-Id", l.c.ident.businesses[0].account_id);
    if (!ctx->outcome)
        ctx->outcome = "authorized";
    response_set(ctx->resp, 200, "text/plain; charset=utf-8", "");
}
