/* POST /disconnect — the Disconnect button of the connect page.
 * 303: to /connect?disconnected=1 (FreshBooks confirmed the revoke) or =0 (it could not
 *      be reached: the connection is deleted here all the same); to /connect when there
 *      was nothing to disconnect.
 * 400: a body that is not a small form.
 * 403: no session or a missing or wrong `csrf` value (a POST with only the cookie).
 * 503: Redis unavailable (nothing deleted). */
#include <string.h>

#include "connection.h"
#include "handlers/handlers.h"
#include "session.h"

#define BODY_MAX 4096

static void forbidden(struct ctx *ctx)
{
    ctx->outcome = "csrf_failed";
    page_error(ctx->app->pages, ctx->resp, 403, "Please use the Disconnect button",
               "This request didn't come from the Disconnect button on the connect page, so "
               "nothing was changed.",
               route_url(ctx, "connect"), "Go to the connect page");
}

void handle_disconnect(struct ctx *ctx)
{
    int rc = request_read_body(ctx->req, BODY_MAX);
    if (rc != 0) {
        ctx->outcome = "bad_body";
        page_error(ctx->app->pages, ctx->resp, rc, "That request wasn't understood",
                   "Please use the Disconnect button on the connect page.",
                   route_url(ctx, "connect"), "Go to the connect page");
        return;
    }
    const char *csrf = NULL;
    if (request_form(ctx->req, "csrf", 256, &csrf) != FORM_OK || !csrf_verify(ctx, csrf)) {
        forbidden(ctx);
        return;
    }
    struct loaded l;
    bool found;
    if (!load_connection_or_503(ctx, &l, &found))
        return;
    bool confirmed = true;
    if (!found) {
        l.owner = session_owner(ctx);
        if (l.owner && store_owner_delete(ctx->svc->store, l.owner) != STORE_OK) {
            page_unavailable(ctx, "redis_unavailable");
            return;
        }
    } else if (connection_delete(ctx->svc, &l, true, "user", &confirmed) != STORE_OK) {
        page_unavailable(ctx, "redis_unavailable");
        return;
    }
    ctx->outcome = !found ? "not_connected" : confirmed ? "revoked" : "revoke_unconfirmed";
    response_header(ctx->resp, "Location",
                    !found ? route_url(ctx, "connect")
                           : arena_printf(ctx->arena, "%sconnect?disconnected=%d",
                                          ctx->cfg->base_path, confirmed ? 1 : 0));
    response_set(ctx->resp, 303, "text/plain; charset=utf-8", "Disconnected.\n");
}
