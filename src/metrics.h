/* metrics.h — counters and histograms for /metrics (Prometheus text format).  Every
 * update is a relaxed atomic add on a fixed table: no lock, no allocation. */
#ifndef FBC_METRICS_H
#define FBC_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "buf.h"
#include "oauth.h"

enum refresh_metric {
    RM_REFRESHED,      /* this process spent a refresh token and stored the new pair */
    RM_ALREADY_FRESH,  /* another process or host had refreshed when the lock was taken */
    RM_WAITED,         /* waited for another thread, process or host to refresh */
    RM_INVALID_GRANT,  /* marked reconnect-required */
    RM_INVALID_CLIENT, /* the app's credentials were refused */
    RM_TRANSIENT,      /* timeout, 5xx or 429: pair kept, cooldown started */
    RM_COOLDOWN,       /* skipped: the connection is cooling down */
    RM_KEPT_IN_MEMORY, /* refreshed, but Redis failed: kept in memory until stored */
    RM__MAX
};

enum fb_call { FB_EXCHANGE, FB_REFRESH, FB_IDENTITY, FB_REVOKE, FB__MAX };

/* Call once at startup (threads configured, for a gauge). */
void metrics_init(unsigned threads);

/* One request: its route name (as in logs), status and duration. */
void metrics_request(const char *route, int status, int64_t duration_us);
/* How a /callback ended (the log's outcome= value). */
void metrics_callback_outcome(const char *outcome);
void metrics_refresh(enum refresh_metric m);
/* One Redis command (or script) and whether it failed. */
void metrics_redis(bool ok, int64_t duration_us);
/* One call to FreshBooks and how it ended. */
void metrics_freshbooks(enum fb_call call, enum oauth_result result, int64_t duration_us);
/* A disconnect's revoke: confirmed by FreshBooks or not. */
void metrics_revoke(bool confirmed);

/* Appends the whole exposition; busy is the number of workers serving, kept the number of
 * refreshed pairs waiting in memory for Redis. */
void metrics_render(struct buf *out, unsigned busy, unsigned kept);

#endif
