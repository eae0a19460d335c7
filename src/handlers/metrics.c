/* GET /metrics (internal) — Prometheus text exposition of fbconnect's counters.
 * 200 always. */
#include "handlers/handlers.h"
#include "metrics.h"
#include "refresh.h"
#include "server.h"

void handle_metrics(struct ctx *ctx)
{
    ctx->resp->status = 200;
    ctx->resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
    buf_reset(&ctx->resp->body);
    metrics_render(&ctx->resp->body, server_busy_threads(), refresh_kept_count());
}
