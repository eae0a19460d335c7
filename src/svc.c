#include "svc.h"

#include <string.h>

#include "connection.h"

void svc_open(struct svc *svc, const struct config *cfg, const struct keyring *keys)
{
    memset(svc, 0, sizeof *svc);
    svc->cfg = cfg;
    svc->keys = keys;
    svc->store = store_new(cfg);
    svc->oauth = oauth_new(cfg);
    svc->cache = connection_cache_new();
    arena_init(&svc->own_arena, 32768);
    svc->arena = &svc->own_arena;
}

void svc_close(struct svc *svc)
{
    store_free(svc->store);
    oauth_free(svc->oauth);
    connection_cache_free(svc->cache);
    arena_destroy(&svc->own_arena);
    memset(svc, 0, sizeof *svc);
}

void svc_begin(struct svc *svc, int64_t deadline_us)
{
    arena_reset(svc->arena);
    oauth_reset_spent(svc->oauth);
    svc->deadline_us = deadline_us;
    store_set_deadline(svc->store, deadline_us);
    store_set_site_user(svc->store, NULL);
    oauth_set_deadline(svc->oauth, deadline_us);
}
