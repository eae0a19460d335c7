/* GET /connected — the confirmation page after a connect.
 * 200: who is connected (or, when this browser is not connected, a link to connect).
 * 403: FBCONNECT_USER_PARAM is set and the visitor is not signed in.
 * 503: Redis unavailable (cookie kept). */
#include "connection.h"
#include "handlers/handlers.h"
#include "session.h"

void handle_connected(struct ctx *ctx)
{
    struct loaded l;
    bool found;
    if (!load_connection_or_503(ctx, &l, &found))
        return;
    struct tvar v[24];
    size_t n = 0;
    v[n++] = (struct tvar){.name = "connect_url", .value = route_url(ctx, "connect")};
    v[n++] = (struct tvar){.name = "home_url", .value = ctx->cfg->site_home};
    if (found) {
        if (ctx->has_session)
            session_set_cookie(ctx);
        connection_resolve_identity(ctx->svc, &l);
        v[n++] = (struct tvar){.name = l.c.reconnect_required ? "reconnect_required" : "connected",
                               .value = "1"};
        n = identity_vars(ctx, &l, v, n);
    }
    ctx->outcome = found ? "connected" : "not_connected";
    struct tvars vars = {v, n, NULL};
    page_render(ctx->app->pages, ctx->resp, PAGE_CONNECTED, 200, &vars);
}
