/* handlers.h — one function per route (one file each).  Each fills ctx->resp; the
 * comment above each says which statuses it produces. */
#ifndef FBC_HANDLERS_H
#define FBC_HANDLERS_H

#include <stdbool.h>

#include "ctx.h"
#include "events.h" /* business_json */

void handle_connect(struct ctx *ctx);
void handle_callback(struct ctx *ctx);
void handle_connected(struct ctx *ctx);
void handle_status(struct ctx *ctx);
void handle_disconnect(struct ctx *ctx);
void handle_business(struct ctx *ctx);
void handle_healthz(struct ctx *ctx);
void handle_readyz(struct ctx *ctx);
void handle_auth(struct ctx *ctx);
void handle_internal_token(struct ctx *ctx);
void handle_metrics(struct ctx *ctx);

/* Appends the callbacks' outcomes to /metrics. */
void callback_metrics_render(struct buf *out);

/* Shared helpers. */
struct json_t;
/* Sets a JSON body (and status) from root, which it consumes. */
void send_json(struct ctx *ctx, int status, struct json_t *root);
struct loaded;
/* connection_load(), answering the 503 page itself when Redis is unavailable: returns
 * false then, and the handler returns. */
bool load_connection_or_503(struct ctx *ctx, struct loaded *l, bool *found);
/* 503 page for Redis (or FreshBooks) being unavailable; keeps the browser's cookie. */
void page_unavailable(struct ctx *ctx, const char *what);
/* 403 page for FBCONNECT_USER_PARAM mode without a signed-in site user. */
void page_sign_in_first(struct ctx *ctx);
/* Template variables describing a connection's user, its businesses (the owner's choice
 * marked) and why it needs reconnecting, appended to vars (room for 10 more); returns the
 * new count. */
size_t identity_vars(struct ctx *ctx, const struct loaded *l, struct tvar *vars, size_t n);
/* A FreshBooks role ("business_employee") in words ("Team member"). */
const char *business_role_words(const char *role);

#endif
