#include "admin.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connection.h"
#include "store.h"

static void iso_time(int64_t t, char out[32])
{
    time_t tt = (time_t)t;
    struct tm tm;
    gmtime_r(&tt, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

struct listing {
    struct svc *svc;
    FILE *out;
    size_t shown, unreadable;
};

static void list_one(const char *name, void *arg)
{
    struct listing *ls = arg;
    svc_begin(ls->svc, 0);
    struct connection c;
    if (connection_read(ls->svc, name, &c) != STORE_OK) {
        ls->unreadable++;
        return;
    }
    char expires[32];
    iso_time(c.pair.expires_at, expires);
    const char *state = c.reconnect_required ? "reconnect_required"
                        : !c.has_identity    ? "identity_pending"
                                             : "connected";
    fprintf(ls->out, "%-14.14s %-18s %-10" PRId64 " %-32s %3zu  %s  %s%s\n", name, state,
            c.has_identity ? c.ident.user_id : (int64_t)0,
            c.has_identity && c.ident.email ? c.ident.email : "-", c.ident.n_businesses, expires,
            c.opened_with_old_key ? "old-key" : "current-key", "");
    ls->shown++;
}

int admin_list(const struct app *app, FILE *out)
{
    struct svc svc;
    svc_open(&svc, &app->cfg, &app->keys);
    struct listing ls = {.svc = &svc, .out = out};
    fprintf(out, "%-14s %-18s %-10s %-32s %3s  %-20s  %s\n", "record", "state", "fb_user",
            "email", "biz", "expires_at", "sealed_with");
    int n = store_scan_records(svc.store, list_one, &ls);
    svc_close(&svc);
    if (n < 0) {
        fprintf(stderr, "fbconnect: Redis unavailable\n");
        return ADMIN_FAILED;
    }
    fprintf(out, "%zu connections", ls.shown);
    if (ls.unreadable)
        fprintf(out, ", %zu unreadable with the configured keys", ls.unreadable);
    fputc('\n', out);
    return ADMIN_OK;
}

int admin_remove(const struct app *app, int argc, char **argv, bool revoke, FILE *out)
{
    const char *cmd = revoke ? "disconnect" : "purge";
    if (argc != 2 || (strcmp(argv[0], "--user") != 0 && strcmp(argv[0], "--identity") != 0) ||
        !*argv[1]) {
        fprintf(stderr, "usage: fbconnect %s --user SITE_USER | --identity FRESHBOOKS_USER_ID\n", cmd);
        return ADMIN_USAGE;
    }
    struct svc svc;
    svc_open(&svc, &app->cfg, &app->keys);
    struct loaded l;
    memset(&l, 0, sizeof l);
    int rc = ADMIN_OK;
    enum store_result found;
    if (strcmp(argv[0], "--user") == 0) {
        if (!app->cfg.user_param) {
            fprintf(stderr, "fbconnect %s: --user needs FBCONNECT_USER_PARAM (connections "
                            "belong to browser sessions here)\n", cmd);
            svc_close(&svc);
            return ADMIN_USAGE;
        }
        enum lookup_result lr = connection_load(&svc, store_owner_of_user(svc.arena, argv[1]), &l);
        found = lr == LOOKUP_FOUND ? STORE_OK : lr == LOOKUP_NONE ? STORE_NOT_FOUND : STORE_UNAVAILABLE;
    } else {
        char *end;
        errno = 0;
        long long id = strtoll(argv[1], &end, 10);
        if (errno || *end || id <= 0) {
            fprintf(stderr, "fbconnect %s: --identity takes a FreshBooks user id (a number)\n", cmd);
            svc_close(&svc);
            return ADMIN_USAGE;
        }
        l.record_name = connection_identity_record(&svc, id);
        found = connection_read(&svc, l.record_name, &l.c);
    }
    if (found == STORE_UNAVAILABLE) {
        fprintf(stderr, "fbconnect %s: Redis unavailable; nothing changed\n", cmd);
        rc = ADMIN_FAILED;
    } else if (found != STORE_OK) {
        fprintf(out, "no such connection\n");
        rc = ADMIN_NOT_FOUND;
    } else {
        bool confirmed = false;
        if (connection_delete(&svc, &l, revoke, &confirmed) != STORE_OK) {
            fprintf(stderr, "fbconnect %s: Redis unavailable while deleting\n", cmd);
            rc = ADMIN_FAILED;
        } else if (!revoke) {
            fprintf(out, "purged (FreshBooks not told)\n");
        } else if (confirmed) {
            fprintf(out, "disconnected: FreshBooks confirmed the revoke\n");
        } else {
            fprintf(out, "deleted here, but FreshBooks did not confirm the revoke\n");
            rc = ADMIN_UNCONFIRMED;
        }
    }
    svc_close(&svc);
    return rc;
}

void admin_check_redis(const struct app *app, FILE *out)
{
    struct store *s = store_new(&app->cfg);
    char policy[64];
    switch (store_config_get(s, "maxmemory-policy", policy, sizeof policy)) {
    case STORE_OK:
        if (strcmp(policy, "noeviction") != 0)
            fprintf(out, "warning: Redis maxmemory-policy is %s: under memory pressure Redis may "
                         "evict connection records (their refresh tokens work once, so those users "
                         "must reconnect); set maxmemory-policy noeviction\n", policy);
        else
            fprintf(out, "Redis: reachable, maxmemory-policy noeviction\n");
        break;
    case STORE_NOT_FOUND:
        fprintf(out, "warning: Redis refuses CONFIG GET; make sure its maxmemory-policy is noeviction\n");
        break;
    default:
        fprintf(out, "warning: Redis is not reachable now (fbconnect starts anyway and answers 503 "
                     "until it is)\n");
        break;
    }
    store_free(s);
}
