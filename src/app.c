#include "app.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "connection.h"
#include "handlers/handlers.h"
#include "log.h"
#include "router.h"
#include "session.h"

static void *thread_start(unsigned index, void *appp)
{
    const struct app *app = appp;
    struct worker *w = xmalloc(sizeof *w);
    memset(w, 0, sizeof *w);
    w->app = app;
    w->index = index;
    svc_open(&w->svc, &app->cfg, &app->keys);
    return w;
}

static void thread_stop(void *wp)
{
    struct worker *w = wp;
    svc_close(&w->svc);
    response_free(&w->resp);
    buf_free(&w->log);
    free(w);
}

static void log_request(struct ctx *ctx)
{
    struct buf *b = &ctx->w->log;
    char tag[9];
    session_log_tag(ctx, tag);
    int64_t us = clock_mono_us() - ctx->req->start_us;
    log_begin(b, LOG_INFO);
    log_field(b, "msg", "request");
    log_field(b, "req", ctx->req->request_id ? ctx->req->request_id : "-");
    log_field(b, "method", ctx->req->method);
    log_field(b, "route", ctx->route);
    log_fieldf(b, "status", "%d", ctx->resp->status);
    log_fieldf(b, "dur_ms", "%.2f", (double)us / 1000.0);
    int64_t fb_us = oauth_spent_us(ctx->svc->oauth);
    if (fb_us > 0)
        log_fieldf(b, "fb_ms", "%.2f", (double)fb_us / 1000.0);
    log_field(b, "session", tag);
    if (ctx->outcome)
        log_field(b, "outcome", ctx->outcome);
    log_write(b);
}

static void handle(void *wp, struct fcgi_request *fcgi)
{
    struct worker *w = wp;
    response_reset(&w->resp);
    struct request req;
    /* No wait of this request — Redis, FreshBooks, someone else's refresh — goes beyond
     * its deadline. */
    int64_t start_us = clock_mono_us();
    svc_begin(&w->svc, start_us + config_request_bound_ms(&w->app->cfg) * 1000);
    int early = request_init(&req, fcgi, w->svc.arena);
    req.start_us = start_us;
    struct ctx ctx = {
        .app = w->app,
        .cfg = &w->app->cfg,
        .w = w,
        .svc = &w->svc,
        .req = &req,
        .resp = &w->resp,
        .arena = w->svc.arena,
        .route = "unknown",
        .route_id = -1,
    };
    if (early) {
        ctx.outcome = "request_too_large";
        page_error(ctx.app->pages, ctx.resp, early, "Request too large",
                   "This request carried more data than we accept.", route_url(&ctx, "connect"),
                   "Go to the FreshBooks connect page");
    } else {
        router_dispatch(&ctx);
    }
    if (!ctx.resp->status)
        ctx.resp->status = 500;
    response_security_headers(ctx.resp);
    response_send(ctx.resp, fcgi, strcmp(req.method, "HEAD") == 0);
    router_observe(&ctx, clock_mono_us() - req.start_us);
    log_request(&ctx);
}

const struct server_app fbconnect_server_app = {
    .thread_start = thread_start,
    .thread_stop = thread_stop,
    .handle = handle,
};
