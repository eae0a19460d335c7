/* GET /healthz — 200 while the process serves requests.
 * GET /readyz  — 200 when Redis answers PING, 503 otherwise. */
#include "handlers/handlers.h"

void handle_healthz(struct ctx *ctx)
{
    response_set(ctx->resp, 200, "text/plain; charset=utf-8", "ok\n");
}

void handle_readyz(struct ctx *ctx)
{
    if (store_ping(ctx->svc->store) == STORE_OK) {
        response_set(ctx->resp, 200, "text/plain; charset=utf-8", "ready\n");
    } else {
        ctx->outcome = "redis_unavailable";
        response_set(ctx->resp, 503, "text/plain; charset=utf-8", "redis unavailable\n");
    }
}
