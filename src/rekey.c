#include "rekey.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "connection.h"
#include "pointer.h"
#include "record.h"
#include "store.h"

struct names {
    char **v;
    size_t n, cap;
};

static void collect(const char *name, void *arg)
{
    struct names *names = arg;
    if (names->n == names->cap) {
        names->cap = names->cap ? names->cap * 2 : 256;
        names->v = xrealloc(names->v, names->cap * sizeof *names->v);
    }
    names->v[names->n++] = xstrdup(name);
}

#define BOUND_FLAG "pointers-bound"

/* Binds every owner pointer bound with an old key with the current one, and — only with
 * bind_unbound, once per Redis, when upgrading from 0.1 — the unbound ones (trusted here
 * by the operator who runs it; once done, an unbound pointer can only be a forgery, and
 * no later run binds one).  Pointers that do not verify are counted and left alone.
 * Returns 0, or 1 when Redis failed or binding unbound pointers was refused. */
static int rebind_pointers(const struct app *app, bool bind_unbound, FILE *out)
{
    struct svc svc;
    svc_open(&svc, &app->cfg, &app->keys);
    struct store *s = svc.store;
    if (bind_unbound) {
        enum store_result f = store_flag_get(s, BOUND_FLAG);
        if (f != STORE_NOT_FOUND) {
            fprintf(out, "rekey: %s\n",
                    f == STORE_OK ? "--bind-unbound was done already for this Redis; an unbound "
                                    "pointer now can only be a forgery: not binding any"
                                  : "Redis unavailable");
            svc_close(&svc);
            return 1;
        }
    }
    struct names owners = {0};
    if (store_scan_owners(s, collect, &owners) < 0) {
        fprintf(out, "rekey: Redis unavailable while listing owner pointers\n");
        svc_close(&svc);
        return 1;
    }
    size_t rebound = 0, current = 0, refused = 0, unbound = 0, failed = 0;
    for (size_t i = 0; i < owners.n; i++) {
        svc_begin(&svc, 0);
        const char *owner = owners.v[i];
        char *pointer = NULL;
        enum store_result r = store_owner_get(s, owner, svc.arena, &pointer);
        if (r == STORE_OK) {
            const char *name, *generation;
            int64_t business;
            switch (pointer_open(svc.arena, svc.keys, owner, pointer, &name, &generation, &business)) {
            case POINTER_OK:
                current++;
                break;
            case POINTER_BAD:
                refused++;
                break;
            case POINTER_UNBOUND:
                if (!bind_unbound) {
                    unbound++;
                    break;
                }
                /* fall through */
            case POINTER_OLD_KEY:
                r = store_owner_rebind(s, owner, pointer,
                                       pointer_make(svc.arena, svc.keys, owner, name, generation, business), NULL);
                if (r == STORE_OK)
                    rebound++;
                else if (r == STORE_UNAVAILABLE)
                    failed++;
                break; /* STORE_CONFLICT: changed meanwhile, by a connect that binds it */
            }
        } else if (r == STORE_UNAVAILABLE) {
            failed++;
        }
        free(owners.v[i]);
    }
    free(owners.v);
    if (bind_unbound && !failed && store_flag_set(s, BOUND_FLAG) != STORE_OK)
        failed++;
    svc_close(&svc);
    fprintf(out, "rekey: %zu owner pointers: %zu bound with the current key, %zu already current, "
                 "%zu refused (not bound to their owner), %zu unbound (refused%s), %zu failed\n",
            owners.n, rebound, current, refused, unbound,
            unbound ? "; when upgrading from 0.1, run `fbconnect rekey --bind-unbound` once" : "",
            failed);
    return failed ? 1 : 0;
}

int rekey_all(const struct app *app, bool bind_unbound, FILE *out)
{
    struct svc svc;
    svc_open(&svc, &app->cfg, &app->keys);
    struct names names = {0};
    if (store_scan_records(svc.store, collect, &names) < 0) {
        fprintf(out, "rekey: Redis unavailable\n");
        svc_close(&svc);
        return 1;
    }
    size_t resealed = 0, current = 0, unreadable = 0, gone = 0, failed = 0;
    for (size_t i = 0; i < names.n; i++) {
        svc_begin(&svc, 0);
        struct connection now;
        switch (connection_reseal(&svc, names.v[i], NULL, &now)) {
        case UPDATE_WRITTEN:
        case UPDATE_NOT_DURABLE:
            resealed++;
            break;
        case UPDATE_KEPT:
            current++;
            break;
        case UPDATE_GONE:
            gone++;
            break;
        case UPDATE_UNREADABLE:
            unreadable++;
            break;
        case UPDATE_UNAVAILABLE:
            failed++;
            break;
        }
        free(names.v[i]);
    }
    free(names.v);
    svc_close(&svc);
    fprintf(out, "rekey: %zu records: %zu re-sealed, %zu already current, %zu gone meanwhile, "
                 "%zu unreadable with the configured keys, %zu failed\n",
            names.n, resealed, current, gone, unreadable, failed);
    int pointers_rc = rebind_pointers(app, bind_unbound, out);
    return unreadable || failed || pointers_rc ? 1 : 0;
}
