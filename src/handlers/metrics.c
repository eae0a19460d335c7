/* GET /metrics (internal) — Prometheus text exposition of fbconnect's counters.
 * 200 always. */
#include "connection.h"
#include "handlers/handlers.h"
#include "metrics.h"
#include "outbox.h"
#include "redis.h"
#include "refresh.h"
#include "router.h"
#include "server.h"

void handle_metrics(struct ctx *ctx)
{
    ctx->resp->status = 200;
    ctx->resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    buf_reset(&ctx->resp->body);
    struct buf *out = &ctx->resp->body;
    metrics_render_process(out, server_busy_threads());
    router_metrics_render(out);
    callback_metrics_render(out);
    refresh_metrics_render(out);
    redis_metrics_render(out);
    oauth_metrics_render(out);
    outbox_metrics_render(out);
    connection_metrics_render(out);
}
