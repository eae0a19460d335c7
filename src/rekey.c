#include "rekey.h"

#include <sodium.h>
#include <stdlib.h>
#include <string.h>

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
    struct store *s = store_new(&app->cfg);
    if (bind_unbound) {
        enum store_result f = store_flag_get(s, BOUND_FLAG);
        if (f != STORE_NOT_FOUND) {
            fprintf(out, "rekey: %s\n",
                    f == STORE_OK ? "--bind-unbound was done already for this Redis; an unbound "
                                    "pointer now can only be a forgery: not binding any"
                                  : "Redis unavailable");
            store_free(s);
            return 1;
        }
    }
    struct names owners = {0};
    if (store_scan_owners(s, collect, &owners) < 0) {
        fprintf(out, "rekey: Redis unavailable while listing owner pointers\n");
        store_free(s);
        return 1;
    }
    struct arena a;
    arena_init(&a, 4096);
    size_t rebound = 0, current = 0, refused = 0, unbound = 0, failed = 0;
    for (size_t i = 0; i < owners.n; i++) {
        arena_reset(&a);
        const char *owner = owners.v[i];
        char *pointer = NULL;
        enum store_result r = store_owner_get(s, owner, &a, &pointer);
        if (r == STORE_OK) {
            const char *name, *generation;
            switch (pointer_open(&a, &app->keys, owner, pointer, &name, &generation)) {
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
                                       pointer_make(&a, &app->keys, owner, name, generation));
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
    arena_destroy(&a);
    if (bind_unbound && !failed && store_flag_set(s, BOUND_FLAG) != STORE_OK)
        failed++;
    store_free(s);
    fprintf(out, "rekey: %zu owner pointers: %zu bound with the current key, %zu already current, "
                 "%zu refused (not bound to their owner), %zu unbound (refused%s), %zu failed\n",
            owners.n, rebound, current, refused, unbound,
            unbound ? "; when upgrading from 0.1, run `fbconnect rekey --bind-unbound` once" : "",
            failed);
    return failed ? 1 : 0;
}

int rekey_all(const struct app *app, bool bind_unbound, FILE *out)
{
    struct store *s = store_new(&app->cfg);
    struct names names = {0};
    if (store_scan_records(s, collect, &names) < 0) {
        fprintf(out, "rekey: Redis unavailable\n");
        store_free(s);
        return 1;
    }
    struct arena a;
    arena_init(&a, 16384);
    struct buf value = {0};
    size_t resealed = 0, current = 0, unreadable = 0, gone = 0, failed = 0;
    long ttl = app->cfg.user_param ? 0 : app->cfg.session_ttl;
    for (size_t i = 0; i < names.n; i++) {
        const char *name = names.v[i];
        bool done = false;
        for (int attempt = 0; attempt < 5 && !done; attempt++) {
            arena_reset(&a);
            char *data = NULL;
            size_t len = 0;
            enum store_result r = store_record_get(s, name, 0, &a, &data, &len);
            if (r == STORE_NOT_FOUND) {
                gone++;
                done = true;
                break;
            }
            if (r != STORE_OK)
                break;
            struct connection c;
            if (record_decode(&a, &app->keys, name, data, len, &c) != RECORD_OK) {
                unreadable++;
                done = true;
                break;
            }
            if (!c.opened_with_old_key) {
                current++;
                done = true;
                break;
            }
            record_encode(&app->keys, name, &c, record_next_version(c.version), &value);
            r = store_record_put(s, name, c.version, value.data, value.len, ttl);
            if (r == STORE_OK) {
                resealed++;
                done = true;
            } else if (r == STORE_UNAVAILABLE) {
                break;
            } /* STORE_CONFLICT: written meanwhile; look again */
        }
        if (!done)
            failed++;
        free(names.v[i]);
    }
    free(names.v);
    if (value.data)
        sodium_memzero(value.data, value.cap);
    buf_free(&value);
    arena_destroy(&a);
    store_free(s);
    fprintf(out, "rekey: %zu records: %zu re-sealed, %zu already current, %zu gone meanwhile, "
                 "%zu unreadable with the configured keys, %zu failed\n",
            names.n, resealed, current, gone, unreadable, failed);
    int pointers_rc = rebind_pointers(app, bind_unbound, out);
    return unreadable || failed || pointers_rc ? 1 : 0;
}
