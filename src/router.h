/* router.h — maps DOCUMENT_URI (under FBCONNECT_BASE_PATH) and the method to a handler.
 * 404 for unknown paths and for internal routes without FBCONNECT_INTERNAL=1; 405 (with
 * Allow) for a known path with the wrong method. */
#ifndef FBC_ROUTER_H
#define FBC_ROUTER_H

#include "ctx.h"

/* Sets ctx->route and ctx->route_id (-1 when nothing matched) and runs the handler. */
void router_dispatch(struct ctx *ctx);

/* Counts a finished request by route and status, and its duration. */
void router_observe(const struct ctx *ctx, int64_t duration_us);
/* Appends the request metrics to /metrics. */
void router_metrics_render(struct buf *out);

#endif
