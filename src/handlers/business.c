/* GET and POST /business — which of the connected FreshBooks user's businesses this owner
 * (browser session or site user) works with.
 * GET 200: the chooser (names and roles, the current choice marked), a form posting csrf
 *      and account_id; return_to kept through it.
 * POST 303: the choice stored; to return_to or /connected.
 * 303: not connected (or reconnect required): to /connect.
 * 400: a return_to that is not a same-site path; a body that is not a small form; an
 *      account_id that is not among this identity's businesses (nothing changed).
 * 403: POST without the page's csrf value (checked first); FBCONNECT_USER_PARAM set and
 *      the visitor not signed in.
 * 503: Redis unavailable (nothing changed). */
#include <string.h>

#include "connection.h"
#include "handlers/handlers.h"
#include "session.h"

#define BODY_MAX 4096

static void bad_request(struct ctx *ctx, const char *outcome, const char *title, const char *message)
{
    ctx->outcome = outcome;
    page_error(ctx->app->pages, ctx->resp, 400, title, message, route_url(ctx, "business"),
               "Choose a business");
}

/* The return_to of the query (GET) or form (POST): true with *out NULL when there is none,
 * false (answered 400) when it is not a same-site path. */
static bool return_to_of(struct ctx *ctx, bool post, const char **out)
{
    const char *rt = NULL;
    enum form_status fs = post ? request_form(ctx->req, "return_to", RETURN_TO_MAX, &rt)
                               : request_query(ctx->req, "return_to", RETURN_TO_MAX, &rt);
    *out = NULL;
    if (fs == FORM_MISSING)
        return true;
    if (fs == FORM_OK && url_return_to_valid(rt, strlen(rt))) {
        *out = rt;
        return true;
    }
    ctx->outcome = "bad_return_to";
    page_error(ctx->app->pages, ctx->resp, 400, "That return address isn't allowed",
               "The link that brought you here asked to send you somewhere outside this site "
               "afterwards. For your safety we won't do that.",
               route_url(ctx, "business"), "Choose a business without it");
    return false;
}

static void to_connect(struct ctx *ctx)
{
    ctx->outcome = "not_connected";
    response_header(ctx->resp, "Location", route_url(ctx, "connect"));
    response_set(ctx->resp, 303, "text/plain; charset=utf-8", "Not connected.\n");
}

static void show(struct ctx *ctx, struct loaded *l, const char *return_to)
{
    struct tvar v[24];
    size_t n = 0;
    v[n++] = (struct tvar){.name = "business_post_url", .value = route_url(ctx, "business")};
    v[n++] = (struct tvar){.name = "csrf", .value = csrf_issue(ctx)};
    v[n++] = (struct tvar){.name = "continue_url",
                           .value = return_to ? return_to : route_url(ctx, "connected")};
    if (return_to)
        v[n++] = (struct tvar){.name = "return_to", .value = return_to};
    n = identity_vars(ctx, l, v, n);
    ctx->outcome = l->business ? "chosen_already" : "choose";
    struct tvars vars = {v, n, NULL};
    page_render(ctx->app->pages, ctx->resp, PAGE_BUSINESS, 200, &vars);
}

static void choose(struct ctx *ctx, struct loaded *l, const char *return_to)
{
    const char *key = NULL;
    const struct business *b = NULL;
    if (request_form(ctx->req, "account_id", 256, &key) == FORM_OK)
        b = connection_business_of(l, key);
    if (!b) {
        bad_request(ctx, "unknown_business", "That business isn't one of yours",
                    "The business you picked isn't among the FreshBooks businesses of this "
                    "connection, so nothing was changed. Please pick one from the list.");
        return;
    }
    /* Twice at most: once more when the pointer moved meanwhile (a refresh, a re-seal). */
    enum store_result r = STORE_UNAVAILABLE;
    for (int attempt = 0; attempt < 2; attempt++) {
        r = connection_choose(ctx->svc, l, b);
        if (r != STORE_CONFLICT)
            break;
        struct loaded again;
        if (connection_load(ctx->svc, l->owner, &again) != LOOKUP_FOUND ||
            !(b = connection_business_of(&again, key))) {
            r = STORE_UNAVAILABLE;
            break;
        }
        *l = again;
    }
    if (r != STORE_OK) {
        page_unavailable(ctx, "redis_unavailable");
        return;
    }
    ctx->outcome = "chosen";
    response_header(ctx->resp, "Location", return_to ? return_to : route_url(ctx, "connected"));
    response_set(ctx->resp, 303, "text/plain; charset=utf-8", "Business chosen.\n");
}

void handle_business(struct ctx *ctx)
{
    bool post = strcmp(ctx->req->method, "POST") == 0;
    if (post) {
        int rc = request_read_body(ctx->req, BODY_MAX);
        if (rc != 0) {
            ctx->outcome = "bad_body";
            page_error(ctx->app->pages, ctx->resp, rc, "That request wasn't understood",
                       "Please pick a business from the list.", route_url(ctx, "business"),
                       "Choose a business");
            return;
        }
        const char *csrf = NULL;
        if (request_form(ctx->req, "csrf", 256, &csrf) != FORM_OK || !csrf_verify(ctx, csrf)) {
            ctx->outcome = "csrf_failed";
            page_error(ctx->app->pages, ctx->resp, 403, "Please use the business list",
                       "This request didn't come from the business list, so nothing was changed.",
                       route_url(ctx, "business"), "Choose a business");
            return;
        }
    }
    const char *return_to;
    if (!return_to_of(ctx, post, &return_to))
        return;
    struct loaded l;
    bool found;
    if (!load_connection_or_503(ctx, &l, &found))
        return;
    if (!found || l.c.reconnect_required) {
        to_connect(ctx);
        return;
    }
    if (!ctx->has_session)
        session_issue(ctx); /* a site user's first page here: the form's csrf needs one */
    else
        session_set_cookie(ctx);
    connection_resolve_identity(ctx->svc, &l);
    if (post)
        choose(ctx, &l, return_to);
    else
        show(ctx, &l, return_to);
}
