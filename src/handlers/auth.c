/* /auth (internal; any method: nginx's auth_request keeps the browser's method) — tells
 * nginx whether this browser (or site user) may call FreshBooks, and with which token.
 * 200: X-FreshBooks-Authorization: Bearer <token>, refreshing the pair first when it is
 *      close to expiry, and — only when the owner has chosen a business — that business's
 *      X-FreshBooks-Account-Id, -Business-Id and -Business-Uuid (each only when FreshBooks
 *      gave it).
 * 401: not connected, reconnect required, or (FBCONNECT_USER_PARAM) no signed-in site user.
 * 403: nginx asked for a business-relative path (FastCGI param FBCONNECT_NEED_BUSINESS,
 *      "account" for the account-relative ones) and no business is chosen, or the chosen
 *      one has no account id for an account path (the API proxy answers 409).
 * 503 (Retry-After: 1): no usable token at hand and none to be had within
 *      FBCONNECT_REFRESH_WAIT_MS — Redis or FreshBooks unavailable, someone else's refresh
 *      still under way, or FreshBooks refusing the app's credentials. */
#include <string.h>

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
    const struct business *b = l.business; /* never a guess: the owner's choice or nothing */
    /* nginx's business-relative paths: "account" needs the chosen business's account id,
     * any other value the business itself. */
    const char *need = request_param(ctx->req, "FBCONNECT_NEED_BUSINESS");
    if (need && *need && (!b || (strcmp(need, "account") == 0 && !*b->account_id))) {
        ctx->outcome = "no_business_chosen";
        response_set(ctx->resp, 403, "text/plain; charset=utf-8", "no business chosen\n");
        return;
    }
    response_header(ctx->resp, "X-FreshBooks-Authorization",
                    arena_printf(ctx->arena, "Bearer %s", l.c.pair.access_token));
    if (b && b->account_id && *b->account_id)
        response_header(ctx->resp, "X-FreshBooks-Account-Id", b->account_id);
    if (b)
        response_header(ctx->resp, "X-FreshBooks-Business-Id",
                        arena_printf(ctx->arena, "%lld", (long long)b->id));
    if (b && b->uuid && *b->uuid)
        response_header(ctx->resp, "X-FreshBooks-Business-Uuid", b->uuid);
    if (!ctx->outcome)
        ctx->outcome = "authorized";
    response_set(ctx->resp, 200, "text/plain; charset=utf-8", "");
}
