/* /auth (internal; any method: nginx's auth_request keeps the browser's method) — tells
 * nginx whether this browser (or site user) may call FreshBooks, and with which token.
 * 200: X-FreshBooks-Authorization: Bearer <token> and X-FreshBooks-Account-Id (the first
 *      business's account_id), refreshing the pair first when it is close to expiry.
 * 401: not connected, reconnect required, or (FBCONNECT_USER_PARAM) no signed-in site user.
 * 503 (Retry-After: 1): no usable token at hand and none to be had within
 *      FBCONNECT_REFRESH_WAIT_MS — Redis or FreshBooks unavailable, someone else's refresh
 *      still under way, or FreshBooks refusing the app's credentials. */
#include "connection.h"
#include "handlers/handlers.h"
#include "refresh.h"
#include "session.h"

void handle_auth(struct ctx *ctx)
{
    struct loaded l;
    enum refresh_outcome why;
    enum token_result got = refresh_valid_token(ctx->svc, session_owner(ctx), &l, &why);
    ctx->outcome = refresh_outcome_name(got, why);
    switch (got) {
    case TOKEN_OK:
        break;
    case TOKEN_NONE:
        response_set(ctx->resp, 401, "text/plain; charset=utf-8", "not connected\n");
        return;
    case TOKEN_RECONNECT:
        response_set(ctx->resp, 401, "text/plain; charset=utf-8", "reconnect required\n");
        return;
    case TOKEN_UNAVAILABLE:
        response_set(ctx->resp, 503, "text/plain; charset=utf-8", "unavailable\n");
        response_header(ctx->resp, "Retry-After", "1");
        return;
    }
    response_header(ctx->resp, "X-FreshBooks-Authorization",
                    arena_printf(ctx->arena, "Bearer %s", l.c.pair.access_token));
    if (l.c.has_identity && l.c.ident.n_businesses > 0)
        response_header(ctx->resp, "X-FreshBooks-Account-Id", l.c.ident.businesses[0].account_id);
    if (!ctx->outcome)
        ctx->outcome = "authorized";
    response_set(ctx->resp, 200, "text/plain; charset=utf-8", "");
}
