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

#include "connection.h"
#include "svc.h"

enum fresh_result {
    FRESH_OK,            /* l->c holds a valid pair (refreshed, waited for, or still fresh) */
    FRESH_RECONNECT,     /* the user must connect again (invalid_grant, or disconnected) */
    FRESH_UNAVAILABLE,   /* Redis or FreshBooks unavailable and no valid token (503) */
    FRESH_MISCONFIGURED, /* FreshBooks refuses the app's credentials (503) */
    FRESH_MOVED,         /* the pair moved to its identity's record: load the owner again */
};

/* Starts the background thread: it stores pairs Redis could not take, releases locks
 * Redis did not release and asks FreshBooks for identities still unknown.  Returns 0 or
 * -1. */
int refresh_init(const struct config *cfg, const struct keyring *keys);
/* Stops it after a last attempt; logs every pair that could not be stored. */
void refresh_shutdown(void);

/* What the refresh machinery did for one request: its log outcome (refresh_outcome_name). */
enum refresh_outcome {
    RO_NONE,              /* nothing to say: the pair was fresh */
    RO_REFRESHED,         /* this request spent the refresh token and stored the new pair */
    RO_ALREADY_FRESH,     /* another process or host had refreshed when the lock was taken */
    RO_WAITED,            /* waited for another thread, process or host to refresh */
    RO_ELSEWHERE,         /* served the usable token while someone else refreshes it */
    RO_COOLDOWN,          /* the connection is cooling down after a failed refresh */
    RO_INVALID_GRANT,     /* FreshBooks refused the refresh token(s): marked */
    RO_INVALID_CLIENT,    /* FreshBooks refused the app's credentials */
    RO_TRANSIENT,         /* timeout, 5xx or 429: pair kept, cooldown started */
    RO_BUSY,              /* no call slot (or no time) left: FreshBooks not asked */
    RO_LOCK_NOT_DURABLE,  /* the lock reached no replica in time: given up */
    RO_REDIS_UNAVAILABLE, /* the connection could not be loaded */
    RO__MAX
};

/* Makes sure l->c.pair is valid, refreshing it when fewer than FBCONNECT_REFRESH_MARGIN
 * seconds remain (waiting for someone else's refresh at most FBCONNECT_REFRESH_WAIT_MS,
 * and not at all while the token is usable).  Updates l->c to what is stored (or kept in
 * memory); *why says what happened (left alone when nothing did). */
enum fresh_result refresh_ensure_fresh(struct svc *svc, struct loaded *l, enum refresh_outcome *why);

enum token_result {
    TOKEN_OK,            /* l->c holds a valid pair (and its identity, when FreshBooks gave it) */
    TOKEN_NONE,          /* this owner has no connection */
    TOKEN_RECONNECT,     /* the user must connect again */
    TOKEN_UNAVAILABLE,   /* Redis or FreshBooks unavailable, or no usable token in time */
};

/* What /auth and /internal/token both need: owner's connection (NULL: TOKEN_NONE) with a
 * valid token, refreshed when close to expiry (an identity still unknown is asked for in
 * the background).  *why says what the refresh machinery did. */
enum token_result refresh_valid_token(struct svc *svc, const char *owner, struct loaded *l,
                                     enum refresh_outcome *why);

/* The log outcome of a token request: "not_connected", "reconnect_required", the refresh
 * outcome, or "unavailable"; NULL for TOKEN_OK when nothing happened (the handler's own). */
const char *refresh_outcome_name(enum token_result r, enum refresh_outcome why);

/* Refreshed pairs kept in memory because Redis has not taken them yet. */
unsigned refresh_kept_count(void);

/* Appends the refresh metrics (decisions by outcome, pairs kept in memory) to /metrics. */
void refresh_metrics_render(struct buf *out);

#endif
