/* refresh.h — keeping a connection's token pair alive: at most one refresh per connection
 * record in flight across every thread, process and host.
 *
 * Within a process, the first thread that finds a pair within FBCONNECT_REFRESH_MARGIN of
 * expiry leads and the others wait on it.  Across processes and hosts, the leader takes
 * the record's Redis lock (SET NX PX, a random owner token, TTL longer than a token call),
 * re-reads the record (another host may have refreshed meanwhile), spends the refresh
 * token, stores the new pair by compare-and-set against the version it read, and only
 * then releases the lock and lets anyone use the new pair.  A leader that finds the lock
 * held polls the record's version until it moves or the lock goes away, and re-reads
 * before giving up.  If storing the new pair fails (Redis blip), the pair — the only valid
 * refresh token that exists — is kept in memory and stored by a background thread as soon
 * as Redis answers, and served from memory meanwhile.
 *
 * FreshBooks' answers: invalid_grant marks the connection reconnect-required (by
 * compare-and-set: a newer pair stored meanwhile wins); invalid_client is the app's
 * problem (503, logged loudly, nobody marked); a timeout, 5xx or 429 keeps the pair and
 * starts a cooldown for that record on every host (Retry-After honoured), during which
 * the current token is served while it is still valid. */
#ifndef FBC_REFRESH_H
#define FBC_REFRESH_H

#include "app.h"
#include "connection.h"

enum fresh_result {
    FRESH_OK,            /* l->c holds a valid pair (refreshed, waited for, or still fresh) */
    FRESH_RECONNECT,     /* the user must connect again (invalid_grant, or disconnected) */
    FRESH_UNAVAILABLE,   /* Redis or FreshBooks unavailable and no valid token (503) */
    FRESH_MISCONFIGURED, /* FreshBooks refuses the app's credentials (503) */
    FRESH_MOVED,         /* the pair moved to its identity's record: load the owner again */
};

/* Starts the thread that stores pairs Redis could not take.  Returns 0 or -1. */
int refresh_init(const struct app *app);
/* Stops it after a last attempt; logs every pair that could not be stored. */
void refresh_shutdown(void);

/* Makes sure l->c.pair is valid, refreshing it when fewer than FBCONNECT_REFRESH_MARGIN
 * seconds remain.  Updates l->c to what is stored (or kept in memory). */
enum fresh_result refresh_ensure_fresh(struct ctx *ctx, struct loaded *l);

const char *fresh_result_name(enum fresh_result r);

enum token_result {
    TOKEN_OK,            /* l->c holds a valid pair (and its identity, when FreshBooks gave it) */
    TOKEN_NONE,          /* this owner has no connection */
    TOKEN_RECONNECT,     /* the user must connect again */
    TOKEN_UNAVAILABLE,   /* Redis or FreshBooks unavailable (sets ctx->outcome) */
};

/* What /auth and /internal/token both need: this request's owner's connection with a
 * valid token, refreshed when close to expiry, its identity fetched if still unknown. */
enum token_result refresh_valid_token(struct ctx *ctx, struct loaded *l);

/* Refreshed pairs kept in memory because Redis has not taken them yet. */
unsigned refresh_kept_count(void);

#endif
