/* GET /internal/token?user=NAME (internal; only with FBCONNECT_USER_PARAM) — a valid
 * access token for the site's own back end, refreshed first when close to expiry.
 * 200: {"access_token": str, "expires_at": int, "account_ids": [str] (every business's),
 *       "business": the chosen one as in /status, or null}
 * 400: no (or an unusable) `user`.
 * 404: that site user is not connected (or FBCONNECT_USER_PARAM is off: no such route).
 * 409: reconnect required: {"reconnect_required": true, "reconnect_reason": str}.
 * 503 (Retry-After: 1): no usable token within FBCONNECT_REFRESH_WAIT_MS (as /auth). */
#include <jansson.h>

#include "connection.h"
#include "handlers/handlers.h"
#include "refresh.h"

static void error(struct ctx *ctx, int status, const char *outcome, const char *code)
{
    ctx->outcome = outcome;
    send_json(ctx, status, json_pack("{s:s}", "error", code));
}

void handle_internal_token(struct ctx *ctx)
{
    if (!ctx->cfg->user_param) {
        error(ctx, 404, "no_user_param", "not_found");
        return;
    }
    const char *user = NULL;
    if (request_query(ctx->req, "user", 512, &user) != FORM_OK || !*user) {
        error(ctx, 400, "bad_user", "user_required");
        return;
    }
    struct loaded l;
    enum refresh_outcome why;
    enum token_result got = refresh_valid_token(ctx->svc, store_owner_of_user(ctx->arena, user), &l,
                                                &why);
    const char *outcome = refresh_outcome_name(got, why);
    ctx->outcome = outcome;
    switch (got) {
    case TOKEN_OK:
        break;
    case TOKEN_NONE:
        error(ctx, 404, outcome, "not_connected");
        return;
    case TOKEN_RECONNECT:
        send_json(ctx, 409, json_pack("{s:b,s:s}", "reconnect_required", 1, "reconnect_reason",
                                      reconnect_reason_name(l.c.reconnect_reason)));
        return;
    case TOKEN_UNAVAILABLE:
        error(ctx, 503, outcome, "unavailable");
        response_header(ctx->resp, "Retry-After", "1");
        return;
    }
    json_t *accounts = json_array();
    for (size_t i = 0; l.c.has_identity && i < l.c.ident.n_businesses; i++)
        if (*l.c.ident.businesses[i].account_id)
            json_array_append_new(accounts, json_string(l.c.ident.businesses[i].account_id));
    if (!ctx->outcome)
        ctx->outcome = "token";
    send_json(ctx, 200, json_pack("{s:s,s:I,s:o,s:o}", "access_token", l.c.pair.access_token,
                                  "expires_at", (json_int_t)l.c.pair.expires_at, "account_ids",
                                  accounts, "business", business_json(l.business)));
}
