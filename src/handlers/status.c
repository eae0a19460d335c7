/* GET /status — this session's connection as JSON, never a token:
 *   {"connected", "reconnect_required", "user", "businesses", "business",
 *    "reconnect_reason", "scope", "expires_at"}
 * (the last two only when there is a pair; "identity_pending": true while FreshBooks'
 * users/me has not answered yet).
 * 200: the JSON (also for no session: connected false).
 * 503: Redis unavailable: {"error": "unavailable"}. */
#include <jansson.h>
#include <stdlib.h>

#include "connection.h"
#include "handlers/handlers.h"
#include "session.h"

void handle_status(struct ctx *ctx)
{
    struct loaded l;
    enum lookup_result found = connection_load(ctx->svc, session_owner(ctx), &l);
    if (found == LOOKUP_UNAVAILABLE) {
        ctx->outcome = "redis_unavailable";
        send_json(ctx, 503, json_pack("{s:s}", "error", "unavailable"));
        response_header(ctx->resp, "Retry-After", "30");
        return;
    }
    if (found != LOOKUP_FOUND) {
        ctx->outcome = "not_connected";
        send_json(ctx, 200, json_pack("{s:b,s:b,s:n,s:[],s:n,s:n}", "connected", 0,
                                      "reconnect_required", 0, "user", "businesses", "business",
                                      "reconnect_reason"));
        return;
    }
    if (ctx->has_session)
        session_set_cookie(ctx);
    connection_resolve_identity(ctx->svc, &l);
    const struct connection *c = &l.c;
    json_t *user = json_null();
    json_t *businesses = json_array();
    if (c->has_identity) {
        user = json_pack("{s:I,s:s,s:s,s:s}", "id", (json_int_t)c->ident.user_id, "email",
                         c->ident.email ? c->ident.email : "", "first_name",
                         c->ident.first_name ? c->ident.first_name : "", "last_name",
                         c->ident.last_name ? c->ident.last_name : "");
        for (size_t i = 0; i < c->ident.n_businesses; i++)
            json_array_append_new(businesses, business_json(&c->ident.businesses[i]));
    }
    json_t *root = json_pack(
        "{s:b,s:b,s:o,s:o,s:o,s:o,s:s,s:I}", "connected", !c->reconnect_required,
        "reconnect_required", c->reconnect_required, "user", user ? user : json_null(),
        "businesses", businesses, "business", business_json(l.business), "reconnect_reason",
        c->reconnect_required ? json_string(reconnect_reason_name(c->reconnect_reason)) : json_null(),
        "scope", c->pair.scope ? c->pair.scope : "", "expires_at", (json_int_t)c->pair.expires_at);
    if (!c->has_identity)
        json_object_set_new(root, "identity_pending", json_true());
    ctx->outcome = c->reconnect_required ? "reconnect_required" : "connected";
    send_json(ctx, 200, root);
}
