/* redis.h — the link to Redis: one connection per thread to the current primary, made on
 * demand and made again after any error — found through FBCONNECT_REDIS_URL or the
 * sentinels (with a thread per process following them), checked with ROLE, with AUTH and
 * SELECT, and made again whenever the process learns the primary moved — commands with a
 * timeout cut to the request's deadline, Lua scripts by EVALSHA (loaded again after
 * NOSCRIPT), WAIT for the replicas, and which errors may heal.  hiredis formats and parses;
 * this module owns the connection.  store.c (the key schema) is its only user. */
#ifndef FBC_REDIS_H
#define FBC_REDIS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "config.h"

struct redisReply;
struct redis;

#define REDIS_SCRIPTS_MAX 16 /* scripts a link caches the SHA of (by index) */

/* A link for one thread; connects lazily.  Free with redis_free. */
struct redis *redis_new(const struct config *cfg);
void redis_free(struct redis *r);

/* Every socket wait — connect, sentinel queries, commands, WAIT — ends by deadline_us
 * (monotonic; 0: none); once it has passed, commands fail at once. */
void redis_set_deadline(struct redis *r, int64_t deadline_us);

/* Sends a command (argv form) and returns its reply (the caller frees it with
 * freeReplyObject), or NULL after a failure: Redis unreachable, timed out or answering an
 * error (NOSCRIPT is returned as a reply).  A connection found closed is replaced and the
 * command sent once more; a timeout is not retried (the command may have run). */
struct redisReply *redis_command(struct redis *r, int argc, const char **argv, const size_t *lens);

/* Script number `index` (its text `text`, the same for every call with that index) with
 * nkeys keys and nargs args: EVALSHA, loading the script after NOSCRIPT.  With `here`, on
 * the current connection only (NULL when there is none): for a reply that must come from
 * the very node a connection wrote to. */
struct redisReply *redis_eval(struct redis *r, unsigned index, const char *text, bool here,
                              int nkeys, const char **keys, int nargs, const char **args,
                              const size_t *arglens);

/* After a write that must survive a failover: WAIT for the replicas this primary requires
 * (FBCONNECT_REDIS_WAIT_REPLICAS; by default 1 when the primary has, or had, replicas).
 * True when enough acknowledged in FBCONNECT_REDIS_WAIT_TIMEOUT_MS; otherwise the write
 * may vanish in a failover: this connection is made again before its next command (it
 * stays open until then, for a release on the node that holds a lock) and the sentinels
 * are asked again. */
bool redis_wait_durable(struct redis *r);

/* After a failure: false when Redis refused the last command in a way no retry mends (a
 * key of the wrong type, out of memory, …: logged). */
bool redis_may_heal(const struct redis *r);

/* Names the current connection (0: none) and the current-primary marker it was made
 * under, so a lock taken on it can later be released on the node that holds it. */
uint64_t redis_connection(const struct redis *r);
unsigned redis_epoch(const struct redis *r);
/* True when the primary may have moved since `epoch` (the marker moved, or a WAIT fell
 * short on this connection). */
bool redis_moved_since(const struct redis *r, unsigned epoch);

/* With FBCONNECT_REDIS_SENTINELS: starts the process's thread that asks the sentinels for
 * the primary every 250 ms and, when they name another one, makes every link connect
 * there before its next command.  No-op without sentinels.  Returns 0 or -1. */
int redis_follow_start(const struct config *cfg);
void redis_follow_stop(void);

/* The last connect failure (one line: which check failed, against which name), while it
 * lasts: true, with *certificate when it is a TLS verification or handshake failure. */
bool redis_last_failure(char *out, size_t outsz, bool *certificate);

/* Appends the Redis metrics (latency, errors) to /metrics. */
void redis_metrics_render(struct buf *out);

#endif
