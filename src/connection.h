/* connection.h — finding, storing and completing the connection a request belongs to:
 * the owner pointer (session or site user) → connection record, in the store, sealed. */
#ifndef FBC_CONNECTION_H
#define FBC_CONNECTION_H

#include "record.h"
#include "svc.h"

enum lookup_result {
    LOOKUP_NONE,        /* no owner, no pointer, or no (readable, current) record */
    LOOKUP_FOUND,
    LOOKUP_UNAVAILABLE, /* Redis failed: answer 503, delete nothing */
};

struct loaded {
    struct connection c;
    const char *owner;       /* "s:…" or "u:…" */
    const char *record_name; /* "c:…" or "p:…" */
    const char *pointer;     /* the owner's pointer as stored */
    /* The owner's chosen business, one of c.ident.businesses; NULL when none is chosen. */
    const struct business *business;
};

/* Loads the connection of `owner` ("s:…" or "u:…"; NULL: LOOKUP_NONE), sliding the
 * session's and the record's TTLs.  A pointer whose record is gone or belongs to a later
 * generation (the connection was deleted and made again) is deleted and reported as
 * LOOKUP_NONE; so is a record that no key opens (logged).  A chosen business the identity
 * no longer lists is cleared from the owner's pointer (l->business NULL). */
enum lookup_result connection_load(struct svc *svc, const char *owner, struct loaded *out);

/* ---- the one read-modify-write of a record ---- */

enum update_step { STEP_WRITE, STEP_KEEP };

/* A change to a record: decide() sees what is stored (cur; NULL when there is none, or when
 * it cannot be opened and UPDATE_OVER_UNREADABLE lets it be written over) and either fills
 * *next (a copy of *cur, or zeroed) and says STEP_WRITE, or says STEP_KEEP.  It is asked
 * again with the newer record after a lost compare-and-set. */
struct record_change {
    enum update_step (*decide)(const struct connection *cur, struct connection *next, void *arg);
    void *arg;
    unsigned flags;
    int64_t retry_until_us; /* Redis blips retried until then (monotonic; 0: not retried) */
    const char *except;     /* owners (space-separated) the change's own events tell: left
                               out of the every-owner event the write may make */
};
#define UPDATE_DURABLE 1         /* a write must reach a replica (WAIT) */
#define UPDATE_OVER_UNREADABLE 2 /* a record no configured key opens may be written over */

enum update_result {
    UPDATE_WRITTEN,     /* *out is what is stored now (acknowledged, with UPDATE_DURABLE) */
    UPDATE_NOT_DURABLE, /* written, *out, but no replica acknowledged it: may vanish */
    UPDATE_KEPT,        /* decide() kept the stored record: *out is it */
    UPDATE_GONE,        /* there is no record, and decide() did not make one */
    UPDATE_UNREADABLE,  /* a record no configured key opens (logged): nothing written */
    UPDATE_UNAVAILABLE, /* Redis failed: nothing written (or, after a blip, maybe) */
};

/* The compare-and-set loop every write of a record goes through: reads the record (or
 * starts from `known`, as last read), lets the change decide, writes by compare-and-set on
 * the version, and on a lost race reads again and asks again (a few times).  The write
 * records, with it, the event it makes for every owner: reconnect_required when it marks
 * the connection, connected when it clears a mark, business_chosen (none) for the owners
 * whose business the identity no longer lists.  Encoded
 * values are wiped.  Strings in *out live in svc->arena. */
enum update_result record_update(struct svc *svc, const char *name, const struct connection *known,
                                 const struct record_change *change, struct connection *out);

/* Marks l's connection as needing a new connect, for `reason`, by compare-and-set: only
 * the connection l read (same generation, same refresh token) and only once (a mark stays
 * until a new connect).  Counted on /metrics and logged.  *now: the record as stored. */
enum update_result connection_mark_reconnect(struct svc *svc, const struct loaded *l,
                                             enum reconnect_reason reason, struct connection *now);

/* Seals a record opened with an old key again with the current one (record_update from
 * `known`, or from a fresh read when NULL): UPDATE_WRITTEN re-sealed, UPDATE_KEPT current
 * already (a record that moved meanwhile was written with the current key anyway),
 * UPDATE_GONE, UPDATE_UNREADABLE or UPDATE_UNAVAILABLE. */
enum update_result connection_reseal(struct svc *svc, const char *name, const struct connection *known,
                                     struct connection *out);

/* Stores a pair just obtained from FreshBooks and points `owner` at it, with `business` (a
 * business id of ident's; 0: none) as its choice, deleting old_owner's pointer when not
 * NULL; records connection.connected for the owner with it (once, however often a failover
 * makes it write again).  With an identity, in that identity's record: a new
 * one in a single round trip, or an existing one by compare-and-set (the newest pair wins,
 * every owner pointing there shares it); without an identity, in a new record of its own.
 * Retries briefly when Redis blips.  STORE_OK or STORE_UNAVAILABLE. */
enum store_result connection_connect(struct svc *svc, const struct token_pair *pair,
                                     const struct identity *ident, const char *owner,
                                     const char *old_owner, int64_t business);

/* The business `owner`'s pointer chose, when it is bound to that owner and names record
 * `record_name`; 0 otherwise (none, another record, Redis failing).  Reads the pointer
 * only: no TTL slides, nothing is marked or rewritten. */
int64_t connection_choice_of(struct svc *svc, const char *owner, const char *record_name);

/* The business of l's identity whose account id is `account_id` (or, for a business
 * FreshBooks gave no account id, whose id in decimal it is); NULL when none is. */
const struct business *connection_business_of(const struct loaded *l, const char *account_id);

/* The value that names b in a form (its account id, or its id for one without). */
const char *connection_business_key(struct arena *a, const struct business *b);

/* Makes b (one of l's businesses; NULL: none) the owner's choice, by compare-and-set of
 * the owner's pointer as l read it, recording connection.business_chosen.  STORE_OK (l->business updated), STORE_CONFLICT (the
 * pointer changed meanwhile: load again) or STORE_UNAVAILABLE. */
enum store_result connection_choose(struct svc *svc, struct loaded *l, const struct business *b);

/* For a record whose identity is unknown (users/me failed at connect): asks FreshBooks
 * again (at most once every 5 seconds per record, across every host) and, on success,
 * moves the pair into the identity's record (the newest pair wins there) and points
 * l->owner at it — holding the record's refresh lock (taking it unless lock_held; when
 * someone else holds it, nothing moves).  True when it moved; l is left as it was.
 * Never drops the pair: FreshBooks or Redis failing leaves everything in place. */
bool connection_move_to_identity(struct svc *svc, struct loaded *l, bool lock_held);

/* Reads record `name`'s identity from FreshBooks again (users/me with its access token)
 * and stores it when it changed (businesses added, renamed or gone: an owner's choice of a
 * business no longer listed is cleared at its next load).  True when it stored a change;
 * FreshBooks or Redis failing changes nothing. */
bool connection_reread_identity(struct svc *svc, const char *name);

/* connection_move_to_identity, then l = what l->owner has stored now. */
void connection_resolve_identity(struct svc *svc, struct loaded *l);

/* Reads and opens a record by name: STORE_OK, STORE_NOT_FOUND, STORE_UNREADABLE (there,
 * but no configured key opens it: logged) or STORE_UNAVAILABLE. */
enum store_result connection_read(struct svc *svc, const char *name, struct connection *out);

/* The record name of a FreshBooks identity: "c:" + hash(client id, FreshBooks user id). */
const char *connection_identity_record(struct svc *svc, int64_t freshbooks_user_id);

/* Disconnects l: revokes its pair at FreshBooks (refresh token first; unless !revoke),
 * deletes the record by compare-and-set, recording connection.disconnected (`by`: "user"
 * or "operator") for every owner — when a refresh replaced the pair meanwhile,
 * that newer pair is revoked and deleted too — and deletes l->owner's pointer when set.
 * *confirmed tells whether FreshBooks confirmed every revoke.  STORE_OK, or
 * STORE_UNAVAILABLE when Redis failed (the record may still be there). */
enum store_result connection_delete(struct svc *svc, struct loaded *l, bool revoke,
                                    const char *by, bool *confirmed);

/* A worker's cache of owner pointers and opened records, so repeated requests of one
 * browser (the API proxy's /auth calls) skip the sliding-TTL script and the unsealing: a
 * cached pointer is still checked against Redis on every request (MGET with the record),
 * and a cached record is used only while its version is the stored one. */
struct conn_cache;
struct conn_cache *connection_cache_new(void);
/* Appends the disconnects' revoke counts to /metrics. */
void connection_metrics_render(struct buf *out);
void connection_cache_free(struct conn_cache *cc);

#endif
