/* store.h — fbconnect's data in Redis: the key schema, the Lua scripts and the typed
 * operations on them.  One `struct store` per thread, over its own link (redis.h: the
 * connection to the current primary, Sentinel, timeouts, WAIT), so nothing else in
 * fbconnect knows a key name or a command.  Every key is FBCONNECT_REDIS_PREFIX + a name
 * made of a kind letter and a hash, built in one place:
 *
 *   s:<hash(session id)>   → owner pointer (pointer.h)  (TTL: session TTL, sliding)
 *   u:<hash(site user)>    → owner pointer  (no TTL: the back end relies on it)
 *   c:<hash(client, FreshBooks user)>  connection record of an identity
 *   p:<random>             connection record whose identity is not known yet
 *   st:<hash(state nonce)> used-state marker (expires 10 minutes after its state)
 *   lock:<record name>     refresh lock: a random owner token (PX: longer than a refresh)
 *   cool:<record name>     refresh cooldown after FreshBooks failed (PX)
 *   idr:<record name>      users/me retry slot of a record whose identity is unknown (PX)
 */
#ifndef FBC_STORE_H
#define FBC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "config.h"

enum store_result {
    STORE_OK,
    STORE_NOT_FOUND,   /* no such key */
    STORE_EXISTS,      /* SET NX found the key already there */
    STORE_CONFLICT,    /* compare-and-set lost: the version moved */
    STORE_UNAVAILABLE, /* Redis unreachable, timed out or answered an error (503) */
    STORE_UNREADABLE,  /* connection_read only: a record is there but opens with no
                          configured key (a host behind in a key rotation): never
                          deleted, revoked or written over on that account */
};

struct store;

/* The owner names of the key schema (without prefix), in `a`: "s:<hash(session id)>" and
 * "u:<hash(site user)>". */
const char *store_owner_of_session(struct arena *a, const char *session_id);
const char *store_owner_of_user(struct arena *a, const char *site_user);

/* A store for one thread (its own link to Redis, redis.h); connects lazily.  Free with
 * store_free. */
struct store *store_new(const struct config *cfg);
void store_free(struct store *s);

/* Every socket wait of this store ends by deadline_us (monotonic; 0: none) — connect,
 * sentinel queries, commands, WAIT — and once it has passed commands fail at once
 * (STORE_UNAVAILABLE): a request's time is bounded however many retries it makes.  Set
 * per request. */
void store_set_deadline(struct store *s, int64_t deadline_us);

/* The site user whose request this is (NULL: none; the caller keeps it alive), so that
 * writes of that user's owner pointer remember the name its events carry.  Set per
 * request. */
void store_set_site_user(struct store *s, const char *site_user);

/* PING. */
enum store_result store_ping(struct store *s);

/* Records a state's use: SET st:<id> NX EXAT expire_at (an absolute time, so clock skew
 * between hosts cannot shorten it).  STORE_OK on first use, STORE_EXISTS on a replay. */
enum store_result store_state_use(struct store *s, const char *used_id, int64_t expire_at);

/* An owner's pointer and, in the same round trip, the record it names (sliding both TTLs
 * to ttl when ttl > 0).  STORE_OK with *pointer set and *data NULL when the record is gone;
 * STORE_NOT_FOUND when there is no pointer. */
enum store_result store_owner_load(struct store *s, const char *owner, long ttl, struct arena *a,
                                   char **pointer, char **data, size_t *len);

/* MGET of two names: each value (arena) or NULL. */
enum store_result store_get2(struct store *s, const char *name1, const char *name2,
                             struct arena *a, char **v1, char **v2, size_t *len2);

/* A connection event, recorded by the same script that commits the change it tells of
 * (events.h) and only with FBCONNECT_EVENTS_URL; NULL (or type NULL): none.  For one
 * owner (`owner` set: the one whose pointer the change writes), or for every owner that
 * points at `record` in `generation` (owner NULL), each with its own business.  A site
 * user's owner is named by the name store_set_site_user gave when its pointer was last
 * written or loaded. */
struct store_event {
    const char *type; /* event_type_name() */
    const char *data; /* event_data() */
    int64_t ts_ms;    /* when the change happened (wall clock) */
    const char *once; /* NULL, or a token: the event is recorded once however often the
                         change is written with it (a write retried after a failover) */
    /* one owner: */
    const char *owner;
    int64_t business; /* its choice (0: none) */
    /* or every owner of record in generation (owner NULL): */
    const char *record, *generation;
    const char *gone;   /* NULL, or "gone:<id>,…": only owners whose choice is among the
                           ids, each told it has none */
    const char *except; /* owners not told (space-separated), or NULL */
};

/* Creates a record that does not exist yet and points `owner` at it (deleting old_owner's
 * pointer, when not NULL), in one round trip.  Both get TTL ttl (none when 0).  STORE_OK,
 * or STORE_EXISTS when the record is already there (nothing written). */
enum store_result store_record_create(struct store *s, const char *record_name, const char *data,
                                      size_t len, long ttl, const char *owner, const char *pointer,
                                      const char *old_owner, const struct store_event *ev);

/* Points `owner` at record `record_name` (pointer as pointer.h makes it; TTL ttl seconds,
 * none when 0) and, atomically with it, deletes `old_owner` when it is not NULL. */
enum store_result store_owner_set(struct store *s, const char *owner, const char *record_name,
                                  const char *pointer, long ttl, const char *old_owner,
                                  const struct store_event *ev);

enum store_result store_owner_delete(struct store *s, const char *owner);

/* Reads a record into *data and *len (arena), sliding its TTL to ttl when ttl > 0. */
enum store_result store_record_get(struct store *s, const char *record_name, long ttl,
                                   struct arena *a, char **data, size_t *len);

/* Writes a record if its stored version is still expected_version (0: must not exist):
 * STORE_OK or STORE_CONFLICT.  TTL ttl seconds, none when 0. */
enum store_result store_record_put(struct store *s, const char *record_name,
                                   uint64_t expected_version, const char *data, size_t len,
                                   long ttl, const struct store_event *ev);

/* Deletes a record if its version is still expected_version: STORE_OK, STORE_CONFLICT or
 * STORE_NOT_FOUND. */
enum store_result store_record_delete(struct store *s, const char *record_name,
                                      uint64_t expected_version, const struct store_event *ev);

/* A refresh lock: the caller's random owner token, and where and until when store_lock_try
 * took it. */
struct store_lock {
    char owner[33];
    uint64_t connection; /* the connection that took it */
    unsigned epoch;      /* the current-primary marker then */
    int64_t expires_us;  /* monotonic time its TTL ends (at the latest) */
};

/* Takes the refresh lock of a record (SET NX PX, lock->owner as the value) unless the
 * record is cooling down: STORE_OK taken (lock filled in), STORE_EXISTS held by another
 * owner, STORE_CONFLICT cooling down. */
enum store_result store_lock_try(struct store *s, const char *record_name,
                                 struct store_lock *lock, long ttl_ms);
/* Releases the lock if its owner still holds it, first starting a cooldown of cooldown_ms
 * (none when 0): on the node that holds it (the connection that took it, when still
 * open) and, when the primary may have moved since, on the current primary as well.
 * STORE_UNAVAILABLE when it may still be held somewhere: release again later (until
 * lock->expires_us; the TTL ends it then anyway). */
enum store_result store_lock_release(struct store *s, const char *record_name,
                                     const struct store_lock *lock, long cooldown_ms);
/* A waiter's poll: the record's version (-1 when gone) and whether its lock is held. */
enum store_result store_watch(struct store *s, const char *record_name, int64_t *version,
                              bool *locked);

/* After a write that must survive a failover (a new token pair, a refresh lock): WAIT for
 * the replicas this primary requires (FBCONNECT_REDIS_WAIT_REPLICAS; by default 1 when
 * the primary has, or had, replicas, else none).  STORE_OK, or STORE_UNAVAILABLE when too
 * few acknowledged in FBCONNECT_REDIS_WAIT_TIMEOUT_MS: the write may vanish in a failover,
 * and every connection of the process finds the primary again before its next command
 * (this one stays open for a release on the node that holds a lock). */
enum store_result store_wait_durable(struct store *s);

/* After STORE_UNAVAILABLE: false when Redis refused the last command in a way no retry
 * mends (a key of the wrong type, out of memory, …: logged), so the caller fails at once
 * instead of retrying. */
bool store_may_heal(const struct store *s);

/* SET <prefix><name> 1 NX PX ms: STORE_OK when this caller claimed it, STORE_EXISTS when
 * someone did within the last ms. */
enum store_result store_claim(struct store *s, const char *name, long ms);

/* CONFIG GET name into out: STORE_OK, STORE_NOT_FOUND (unknown or CONFIG refused), or
 * STORE_UNAVAILABLE. */
enum store_result store_config_get(struct store *s, const char *name, char *out, size_t outsz);

/* Calls fn with the name (without prefix) of every connection record (c:… and p:…), as
 * SCAN finds them.  Returns how many, or -1 when Redis failed. */
int store_scan_records(struct store *s, void (*fn)(const char *record_name, void *arg), void *arg);
/* The same for every owner pointer (s:… and u:…). */
int store_scan_owners(struct store *s, void (*fn)(const char *owner, void *arg), void *arg);

/* A flag key (<prefix><name>, no TTL): get is STORE_OK when set, STORE_NOT_FOUND when
 * not; set makes it so. */
enum store_result store_flag_get(struct store *s, const char *name);
enum store_result store_flag_set(struct store *s, const char *name);

/* An owner's pointer as stored (arena), without sliding its TTL: STORE_OK or
 * STORE_NOT_FOUND. */
enum store_result store_owner_get(struct store *s, const char *owner, struct arena *a,
                                  char **pointer);
/* Replaces owner's pointer `was` with `pointer`, keeping its TTL, only if it is still `was`:
 * STORE_OK, or STORE_CONFLICT when it changed meanwhile. */
enum store_result store_owner_rebind(struct store *s, const char *owner, const char *was,
                                     const char *pointer, const struct store_event *ev);

/* ---- delivering events (outbox.h) ---- */

/* A recorded event as the stream holds it (strings in the caller's arena). */
struct store_event_entry {
    const char *id; /* the stream entry id, "<ms>-<n>": the event id */
    const char *type, *owner, *business, *data;
    int64_t ts_ms, sequence;
    bool due; /* from the due retries (leased), else from the group (pending list) */
};

/* Creates the consumer group every process shares, unless it exists. */
enum store_result store_events_group(struct store *s);
/* Up to max events no consumer has read yet, now this consumer's (its pending list).
 * Returns how many, or -1 when Redis failed. */
int store_events_read(struct store *s, const char *consumer, int max, struct arena *a,
                      struct store_event_entry *out);
/* Up to max events other consumers read and left unsettled for min_idle_ms (a process
 * that died), now this consumer's.  Returns how many, or -1. */
int store_events_claim(struct store *s, const char *consumer, long min_idle_ms, int max,
                       struct arena *a, struct store_event_entry *out);
/* Up to max events due for another attempt by now_ms, leased to the caller for lease_ms
 * (another process takes them after that).  Returns how many, or -1. */
int store_events_due(struct store *s, int64_t now_ms, long lease_ms, int max, struct arena *a,
                     struct store_event_entry *out);

/* Renews the caller's hold on e before an attempt (its lease, or its idle time in the
 * pending list), so no other process takes it while it is being sent. */
enum store_result store_events_touch(struct store *s, const char *consumer,
                                     const struct store_event_entry *e, long lease_ms);

enum store_settle { SETTLE_DELIVERED, SETTLE_RETRY, SETTLE_GIVE_UP };
/* One attempt's outcome, atomically: delivered (forgotten), due again at when_ms, or given
 * up (kept as failed, with the entry, for one retention more).  *attempts: attempts made
 * so far (this one included).  STORE_OK or STORE_UNAVAILABLE. */
enum store_result store_events_settle(struct store *s, const struct store_event_entry *e,
                                      enum store_settle how, int64_t when_ms, unsigned *attempts);
/* How many attempts event `id` has had (0 when none failed, or Redis failed). */
unsigned store_events_attempts(struct store *s, const char *id);
/* Makes event `id` (NULL: every failed one) due now.  *n: how many.  STORE_OK,
 * STORE_NOT_FOUND (no such event) or STORE_UNAVAILABLE. */
enum store_result store_events_retry(struct store *s, const char *id, int *n);
/* Trims the stream to events from before_ms on, giving up (kept as failed) every older one
 * not yet delivered; forgets failures given up before forget_ms; drops consumers idle for
 * idle_ms with nothing pending.  Returns how many it gave up, or -1. */
int store_events_trim(struct store *s, int64_t before_ms, int64_t forget_ms, long idle_ms);

enum event_state { EVENT_PENDING, EVENT_DELIVERED, EVENT_FAILED };
/* The newest events first (up to max, failures no longer in the stream included), each
 * with its delivery state.  Returns how many, or -1. */
int store_events_list(struct store *s, struct arena *a, int max, struct store_event_entry *out,
                      enum event_state *state);
/* Events not yet delivered (read or not, due again), the age of the oldest (ms; 0 when
 * none), and how many the stream was ever given (XINFO STREAM entries-added). */
enum store_result store_events_backlog(struct store *s, int64_t now_ms, long *pending,
                                       int64_t *oldest_ms, long *recorded);

#endif
