#include "router.h"

#include <stdio.h>
#include <string.h>

#include "handlers/handlers.h"
#include "metrics.h"
#include "session.h"

enum { M_GET = 1, M_HEAD = 2, M_POST = 4, M_ANY = 0xff };

enum route_id {
    R_CONNECT,
    R_CALLBACK,
    R_CONNECTED,
    R_STATUS,
    R_DISCONNECT,
    R_BUSINESS,
    R_HEALTHZ,
    R_READYZ,
    R_AUTH,
    R_INTERNAL_TOKEN,
    R_METRICS,
    R__MAX
};

struct route {
    const char *path; /* relative to the base path */
    unsigned methods;
    bool internal;   /* needs FBCONNECT_INTERNAL=1 from nginx */
    bool needs_user; /* with FBCONNECT_USER_PARAM, a page for signed-in site users only (403) */
    void (*handler)(struct ctx *ctx);
};

static const struct route routes[R__MAX] = {
    [R_CONNECT] = {"connect", M_GET | M_HEAD, false, true, handle_connect},
    /* No HEAD: the callback spends the state and the code.  It checks for the site user
     * itself: it counts every way a callback ends, that one included. */
    [R_CALLBACK] = {"callback", M_GET, false, false, handle_callback},
    [R_CONNECTED] = {"connected", M_GET | M_HEAD, false, true, handle_connected},
    [R_STATUS] = {"status", M_GET | M_HEAD, false, false, handle_status},
    [R_DISCONNECT] = {"disconnect", M_POST, false, false, handle_disconnect},
    [R_BUSINESS] = {"business", M_GET | M_HEAD | M_POST, false, true, handle_business},
    [R_HEALTHZ] = {"healthz", M_GET | M_HEAD, false, false, handle_healthz},
    [R_READYZ] = {"readyz", M_GET | M_HEAD, false, false, handle_readyz},
    [R_AUTH] = {"auth", M_ANY, true, false, handle_auth},
    [R_INTERNAL_TOKEN] = {"internal/token", M_GET | M_HEAD, true, false, handle_internal_token},
    [R_METRICS] = {"metrics", M_GET | M_HEAD, true, false, handle_metrics},
};

/* ---- request metrics, by route (this table's order, then "unknown") and status ---- */

static const int statuses[] = {200, 204, 302, 303, 400, 401, 403, 404, 405, 409, 411,
                               413, 414, 415, 429, 431, 500, 502, 503, 504, 0 /* other */};
#define N_STATUSES (sizeof statuses / sizeof statuses[0])
static struct metric_histogram requests[R__MAX + 1][N_STATUSES];

void router_observe(const struct ctx *ctx, int64_t duration_us)
{
    size_t r = ctx->route_id >= 0 && ctx->route_id < R__MAX ? (size_t)ctx->route_id : R__MAX;
    size_t s = 0;
    while (s < N_STATUSES - 1 && statuses[s] != ctx->resp->status)
        s++;
    metric_observe(&requests[r][s], duration_us);
}

void router_metrics_render(struct buf *out)
{
    metric_family(out, "fbconnect_requests_seconds", "histogram",
                  "Requests by route and status, and their duration.");
    for (size_t r = 0; r <= R__MAX; r++)
        for (size_t s = 0; s < N_STATUSES; s++) {
            if (!metric_get(&requests[r][s].count))
                continue;
            char labels[96], status[16];
            snprintf(status, sizeof status, "%d", statuses[s]);
            snprintf(labels, sizeof labels, "route=\"%s\",status=\"%s\"",
                     r < R__MAX ? routes[r].path : "unknown", statuses[s] ? status : "other");
            metric_histogram(out, "fbconnect_requests_seconds", labels, &requests[r][s]);
        }
}

static unsigned method_bit(const char *m)
{
    if (strcmp(m, "GET") == 0)
        return M_GET;
    if (strcmp(m, "HEAD") == 0)
        return M_HEAD;
    if (strcmp(m, "POST") == 0)
        return M_POST;
    return 0;
}

static void not_found(struct ctx *ctx)
{
    ctx->route = "unknown";
    ctx->route_id = -1;
    page_error(ctx->app->pages, ctx->resp, 404, "Page not found",
               "There's nothing at this address.", route_url(ctx, "connect"),
               "Go to the FreshBooks connect page");
}

void router_dispatch(struct ctx *ctx)
{
    const char *base = ctx->cfg->base_path;
    size_t base_len = strlen(base);
    const char *path = ctx->req->path;
    if (strncmp(path, base, base_len) != 0) {
        not_found(ctx);
        return;
    }
    path += base_len;
    const char *internal = request_param(ctx->req, "FBCONNECT_INTERNAL");
    bool is_internal = internal && strcmp(internal, "1") == 0;
    for (int i = 0; i < R__MAX; i++) {
        const struct route *r = &routes[i];
        if (strcmp(path, r->path) != 0)
            continue;
        if (r->internal && !is_internal)
            break;
        ctx->route = r->path;
        ctx->route_id = i;
        if (r->methods != M_ANY && !(method_bit(ctx->req->method) & r->methods)) {
            ctx->outcome = "method_not_allowed";
            page_error(ctx->app->pages, ctx->resp, 405, "Method not allowed",
                       "This address doesn't accept that kind of request.",
                       route_url(ctx, "connect"), "Go to the FreshBooks connect page");
            char *allow = arena_printf(ctx->arena, "%s%s%s", r->methods & M_GET ? ", GET" : "",
                                       r->methods & M_HEAD ? ", HEAD" : "",
                                       r->methods & M_POST ? ", POST" : "");
            response_header(ctx->resp, "Allow", allow + 2);
            return;
        }
        session_load(ctx);
        if (r->needs_user && ctx->cfg->user_param && !ctx->site_user) {
            page_sign_in_first(ctx);
            return;
        }
        r->handler(ctx);
        return;
    }
    not_found(ctx);
}
