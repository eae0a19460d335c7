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
#include "log.h"
#include "metrics.h"
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
    /* Revoke what is stored, then delete it by compare-and-set; when a refresh replaced the
     * pair meanwhile, revoke and delete the newer one too. */
    for (int attempt = 0; found && attempt < 3; attempt++) {
        /* The refresh token first: it is the one that could mint new access tokens. */
        enum oauth_result r1 = oauth_revoke(ctx->w->oauth, l.c.pair.refresh_token);
        enum oauth_result r2 = oauth_revoke(ctx->w->oauth, l.c.pair.access_token);
        confirmed = r1 == OAUTH_OK && r2 == OAUTH_OK;
        metrics_revoke(confirmed);
        if (!confirmed)
            log_msg(LOG_WARN, "revoke not confirmed by FreshBooks (%s); deleting the connection anyway",
                    oauth_last_error(ctx->w->oauth));
        enum store_result d = store_record_delete(ctx->w->store, l.record_name, l.c.version);
        if (d == STORE_UNAVAILABLE) {
            page_unavailable(ctx, "redis_unavailable");
            return;
        }
        if (d != STORE_CONFLICT)
            break;
        if (!load_connection_or_503(ctx, &l, &found))
            return;
    }
    const char *owner = session_owner(ctx);
    if (owner && store_owner_delete(ctx->w->store, owner) != STORE_OK) {
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
