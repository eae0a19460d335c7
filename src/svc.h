/* svc.h — the domain's service context: what the connection, refresh and rekey code
 * works with — configuration, keys, the Redis store, the FreshBooks client, the worker's
 * cache, a scratch arena and a deadline — and nothing of HTTP.  One per worker thread,
 * one per background thread, one per command-line run (the way a hiredis context is its
 * caller's).  The domain never learns who is asking from a request: every operation takes
 * its owner ("s:…" or "u:…", store.h) explicitly. */
#ifndef FBC_SVC_H
#define FBC_SVC_H

#include <stdint.h>

#include "arena.h"
#include "config.h"
#include "keys.h"
#include "oauth.h"
#include "store.h"

struct conn_cache;

/* Not to be copied: arena may point into it. */
struct svc {
    const struct config *cfg;
    const struct keyring *keys;
    struct store *store;
    struct oauth *oauth;
    struct conn_cache *cache; /* owner pointers and records served last (connection.c) */
    struct arena *arena;      /* scratch, reset by svc_begin */
    int64_t deadline_us;      /* monotonic: no wait goes beyond it (0: none) */
    struct arena own_arena;
};

/* Makes svc's store, FreshBooks client, cache and arena (connections are made lazily). */
void svc_open(struct svc *svc, const struct config *cfg, const struct keyring *keys);
/* Frees what svc_open made. */
void svc_close(struct svc *svc);

/* Starts one operation (a request): resets the arena and sets the deadline every Redis
 * and FreshBooks wait ends by (0: none). */
void svc_begin(struct svc *svc, int64_t deadline_us);

#endif
