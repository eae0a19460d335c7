/* GET /connect — the connect page.
 * 200: the page (authorize link with a fresh state; when connected, who and a Disconnect
 *      form).  Creates the session cookie when there is none, writing nothing to Redis.
 * 400: a return_to that is not a same-site path.
 * 403: FBCONNECT_USER_PARAM is set and the visitor is not signed in to the site.
 * 503: the browser has a session but Redis is unavailable (cookie kept). */
#include <string.h>

#include "clock.h"
#include "connection.h"
#include "handlers/handlers.h"
#include "session.h"
#include "state.h"

void handle_connect(struct ctx *ctx)
{
    const char *return_to = NULL;
    switch (request_query(ctx->req, "return_to", RETURN_TO_MAX, &return_to)) {
    case FORM_MISSING:
        return_to = NULL;
        break;
    case FORM_OK:
        if (!*return_to) { /* ?return_to= (empty): as if absent */
            return_to = NULL;
            break;
        }
        if (url_return_to_valid(return_to, strlen(return_to)))
            break;
        /* fall through */
    default:
        ctx->outcome = "bad_return_to";
        page_error(ctx->app->pages, ctx->resp, 400, "That return address isn't allowed",
                   "The link that brought you here asked to send you somewhere outside this site "
                   "afterwards. For your safety we won't do that.",
                   route_url(ctx, "connect"), "Connect without it");
        return;
    }

    struct loaded l;
    bool found;
    if (!load_connection_or_503(ctx, &l, &found))
        return;
    if (!ctx->has_session)
        session_issue(ctx);
    else if (found)
        session_set_cookie(ctx); /* slide the cookie with the session */
    if (found)
        connection_resolve_identity(ctx->svc, &l);

    const char *state = state_issue(ctx->arena, &ctx->app->keys, ctx->session_id, ctx->site_user,
                                    return_to, clock_wall());
    struct tvar v[24];
    size_t n = 0;
    char challenge[STATE_PKCE_LEN + 1], verifier[STATE_PKCE_LEN + 1];
    bool pkce = ctx->cfg->pkce && state_pkce_verifier(&ctx->app->keys, state, verifier);
    if (pkce)
        state_pkce_challenge(verifier, challenge);
    v[n++] = (struct tvar){.name = "authorize_url",
                           .value = oauth_authorize_url(ctx->arena, state, pkce ? challenge : NULL)};
    v[n++] = (struct tvar){.name = "disconnect_url", .value = route_url(ctx, "disconnect")};
    const char *notice = NULL;
    /* After a disconnect, and only while not connected again (a stale or crafted link must
     * not say "disconnected" above "connected", or send a connected person to FreshBooks). */
    if (!found && request_query(ctx->req, "disconnected", 8, &notice) == FORM_OK) {
        if (strcmp(notice, "1") == 0)
            v[n++] = (struct tvar){.name = "notice_revoked", .value = "1"};
        else if (strcmp(notice, "0") == 0)
            v[n++] = (struct tvar){.name = "notice_unconfirmed", .value = "1"};
    }
    if (found && l.c.reconnect_required) {
        v[n++] = (struct tvar){.name = "reconnect_required", .value = "1"};
        n = identity_vars(ctx, &l, v, n);
    } else if (found) {
        v[n++] = (struct tvar){.name = "connected", .value = "1"};
        v[n++] = (struct tvar){.name = "csrf", .value = csrf_issue(ctx)};
        n = identity_vars(ctx, &l, v, n);
    }
    ctx->outcome = found ? "connected" : "not_connected";
    struct tvars vars = {v, n, NULL};
    page_render(ctx->app->pages, ctx->resp, PAGE_CONNECT, 200, &vars);
}
