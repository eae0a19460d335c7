#include "admin.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "connection.h"
#include "redis.h"
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
    if (store_ping(svc.store) != STORE_OK) { /* before the header: nothing to list */
        svc_close(&svc);
        fprintf(stderr, "fbconnect: Redis unavailable\n");
        return ADMIN_FAILED;
    }
    fprintf(out, "%-14s %-18s %-10s %-32s %3s  %-20s  %s\n", "record", "state", "fb_user",
            "email", "biz", "expires_at", "sealed_with");
    int n = store_scan_records(svc.store, list_one, &ls);
    svc_close(&svc);
    if (n < 0) {
        fprintf(stderr, "fbconnect: Redis unavailable\n");
        return ADMIN_FAILED;
    }
    fprintf(out, "%zu connection%s", ls.shown, ls.shown == 1 ? "" : "s");
    if (ls.unreadable)
        fprintf(out, ", %zu unreadable with the configured keys", ls.unreadable);
    fputc('\n', out);
    return ADMIN_OK;
}

/* "--user=NAME" and "--identity=ID" as "--user NAME", "--identity ID": into args (room for
 * twice argc), returning the new count. */
static int split_options(int argc, char **argv, char **args, char *buf, size_t bufsz)
{
    int n = 0;
    size_t used = 0;
    for (int i = 0; i < argc; i++) {
        char *eq = strchr(argv[i], '=');
        size_t k = eq ? (size_t)(eq - argv[i]) : 0;
        if (eq && strncmp(argv[i], "--", 2) == 0 && used + k + 1 < bufsz) {
            memcpy(buf + used, argv[i], k);
            buf[used + k] = '\0';
            args[n++] = buf + used;
            used += k + 1;
            args[n++] = eq + 1;
        } else {
            args[n++] = argv[i];
        }
    }
    return n;
}

int admin_remove(const struct app *app, int argc_in, char **argv_in, bool revoke, FILE *out)
{
    char *split[32], names[256];
    if (argc_in > 16)
        argc_in = 16;
    int argc = split_options(argc_in, argv_in, split, names, sizeof names);
    char **argv = split;
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
        store_set_site_user(svc.store, argv[1]); /* the name its events carry */
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
        if (connection_delete(&svc, &l, revoke, "operator", &confirmed) != STORE_OK) {
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

bool admin_check_redis(const struct app *app, FILE *out)
{
    struct store *s = store_new(&app->cfg);
    bool fine = true;
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
    default: {
        char why[256];
        bool certificate = false;
        bool known = redis_last_failure(why, sizeof why, &certificate);
        if (certificate) { /* no TLS failure mends itself: fbconnect would answer 503 throughout */
            fprintf(out, "error: Redis: %s\n", why);
            fine = false;
        } else {
            fprintf(out, "warning: Redis is not reachable now%s%s (fbconnect starts anyway and "
                         "answers 503 until it is)\n", known ? ": " : "", known ? why : "");
        }
        break;
    }
    }
    store_free(s);
    return fine;
}

#define EVENTS_LIST_MAX 10000 /* the newest events `fbconnect events` looks through */

/* Whether event e belongs to the --user or --identity asked for (NULL: every event). */
static bool event_matches(const struct store_event_entry *e, const char *user, long long identity)
{
    if (user)
        return strncmp(e->owner, "u:", 2) == 0 && strcmp(e->owner + 2, user) == 0;
    if (identity) {
        char needle[64];
        snprintf(needle, sizeof needle, "\"freshbooks_user_id\":%lld,", identity);
        return strstr(e->data, needle) != NULL;
    }
    return true;
}

static const char *const state_names[] = {"pending", "delivered", "failed"};

int admin_events(const struct app *app, int argc_in, char **argv_in, FILE *out)
{
    char *split[32], names[256];
    if (argc_in > 16)
        argc_in = 16;
    int argc = split_options(argc_in, argv_in, split, names, sizeof names);
    char **argv = split;
    static const char usage[] =
        "usage: fbconnect events [--user SITE_USER | --identity FRESHBOOKS_USER_ID] [--failed]\n"
        "       fbconnect events retry EVENT_ID | --failed\n";
    if (!app->cfg.events_url) {
        fprintf(stderr, "fbconnect events: connection events are off (set FBCONNECT_EVENTS_URL "
                        "and FBCONNECT_EVENTS_SECRET)\n");
        return ADMIN_FAILED;
    }
    struct svc svc;
    int rc = ADMIN_OK;
    if (argc >= 1 && strcmp(argv[0], "retry") == 0) {
        if (argc != 2 || !*argv[1]) {
            fputs(usage, stderr);
            return ADMIN_USAGE;
        }
        bool all = strcmp(argv[1], "--failed") == 0;
        const char *id = all ? NULL : strncmp(argv[1], "evt_", 4) == 0 ? argv[1] + 4 : argv[1];
        unsigned long long ms, seq;
        int used = 0;
        if (id && (sscanf(id, "%llu-%llu%n", &ms, &seq, &used) != 2 || id[used] || !isdigit((unsigned char)*id))) {
            fprintf(stderr, "fbconnect events retry: '%s' is not an event id (evt_<ms>-<n>, as "
                            "`fbconnect events` lists them)\n", argv[1]);
            return ADMIN_USAGE;
        }
        svc_open(&svc, &app->cfg, &app->keys);
        int n = 0;
        switch (store_events_retry(svc.store, id, &n)) {
        case STORE_OK:
            fprintf(out, "%d event%s due again now (a running fbconnect sends %s)\n", n,
                    n == 1 ? "" : "s", n == 1 ? "it" : "them");
            break;
        case STORE_NOT_FOUND:
            fprintf(out, "no such event\n");
            rc = ADMIN_NOT_FOUND;
            break;
        default:
            fprintf(stderr, "fbconnect events: Redis unavailable; nothing changed\n");
            rc = ADMIN_FAILED;
        }
        svc_close(&svc);
        return rc;
    }
    const char *user = NULL;
    long long identity = 0;
    bool failed_only = false;
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--failed") == 0) {
            failed_only = true;
        } else if (strcmp(argv[i], "--user") == 0 && i + 1 < argc && *argv[i + 1] && !identity) {
            user = argv[++i];
        } else if (strcmp(argv[i], "--identity") == 0 && i + 1 < argc && !user) {
            char *end;
            errno = 0;
            identity = strtoll(argv[++i], &end, 10);
            if (errno || *end || identity <= 0) {
                fprintf(stderr, "fbconnect events: --identity takes a FreshBooks user id (a number)\n");
                return ADMIN_USAGE;
            }
        } else {
            fputs(usage, stderr);
            return ADMIN_USAGE;
        }
    }
    svc_open(&svc, &app->cfg, &app->keys);
    struct store_event_entry *e = calloc(EVENTS_LIST_MAX, sizeof *e);
    enum event_state *state = calloc(EVENTS_LIST_MAX, sizeof *state);
    if (!e || !state)
        abort();
    int n = store_events_list(svc.store, svc.arena, EVENTS_LIST_MAX, e, state);
    if (n < 0) {
        fprintf(stderr, "fbconnect events: Redis unavailable\n");
        rc = ADMIN_FAILED;
    } else {
        size_t shown = 0;
        for (int i = 0; i < n; i++) {
            if (!event_matches(&e[i], user, identity) || (failed_only && state[i] != EVENT_FAILED))
                continue;
            char when[32];
            iso_time(e[i].ts_ms / 1000, when);
            bool site_user = strncmp(e[i].owner, "u:", 2) == 0;
            fprintf(out, "%s  evt_%-22s %-30s %s=%-16s %s\n", when, e[i].id, e[i].type,
                    site_user ? "site_user" : "session", e[i].owner + 2, state_names[state[i]]);
            shown++;
        }
        fprintf(out, "%zu event%s\n", shown, shown == 1 ? "" : "s");
    }
    free(e);
    free(state);
    svc_close(&svc);
    return rc;
}
