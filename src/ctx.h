/* ctx.h — what a request is handled with: the process's app (configuration, keys, pages),
 * the worker thread it runs on (its svc for the domain), and the request's own context.
 * Handlers (src/handlers/) receive a struct ctx and fill ctx->resp; they never touch
 * FastCGI, hiredis or curl directly. */
#ifndef FBC_CTX_H
#define FBC_CTX_H

#include <stdbool.h>

#include "arena.h"
#include "config.h"
#include "ids.h"
#include "keys.h"
#include "pages.h"
#include "request.h"
#include "response.h"
#include "svc.h"

struct app {
    struct config cfg;
    struct keyring keys;
    struct pages *pages;
};

/* One per worker thread, reused for every request it serves. */
struct worker {
    const struct app *app;
    unsigned index;
    struct svc svc; /* the domain's context: store, FreshBooks, cache, arena */
    struct response resp;
    struct buf log;
};

struct ctx {
    const struct app *app;
    const struct config *cfg;
    struct worker *w;
    struct svc *svc; /* &w->svc */
    struct request *req;
    struct response *resp;
    struct arena *arena;
    const char *route;     /* route name for logs and metrics */
    int route_id;          /* the router's index of the route, -1 when none matched */
    bool has_session;      /* the browser sent a well-formed session cookie */
    id_text session_id;    /* valid when has_session */
    const char *site_user; /* FBCONNECT_USER_PARAM's value, or NULL */
    const char *outcome;   /* short reason for the log line, or NULL */
};

/* The URL of a route under the base path ("connect" → "/base/connect"), in the arena. */
static inline const char *route_url(struct ctx *ctx, const char *route)
{
    return arena_printf(ctx->arena, "%s%s", ctx->cfg->base_path, route);
}

#endif
