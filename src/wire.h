/* wire.h — the socket under the Redis link: plain TCP, a unix socket, or TLS over TCP
 * (OpenSSL), every wait bounded by poll; hiredis only formats commands
 * (redisFormatCommandArgv) and parses replies (its reader), so any transport speaks the
 * same protocol.  One wire per connection, used by one thread at a time. */
#ifndef FBC_WIRE_H
#define FBC_WIRE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

struct redisReply;

/* Where to connect: a unix socket path, or host and port (over TLS when tls; the
 * certificate must carry server_name, or the host when server_name is NULL). */
struct wire_target {
    const char *path;
    const char *host;
    int port;
    bool tls;
    const char *server_name;
};

/* The process's TLS settings from cfg (CA, client certificate and key): 0, or -1 with a
 * message naming the variable.  Call once before any TLS wire (no-op without rediss://). */
int wire_tls_init(const struct config *cfg, char *err, size_t errsz);
void wire_tls_free(void);

enum wire_failure {
    WIRE_OK,
    WIRE_UNREACHABLE, /* refused, unreachable, reset, closed by the server */
    WIRE_TIMEOUT,     /* no progress within the time given */
    WIRE_TLS,         /* a certificate that does not verify, or a handshake refused */
    WIRE_PROTOCOL,    /* a reply hiredis cannot parse */
};

struct wire;

/* Connects (and, with TLS, completes the handshake, verifying the chain and the name)
 * within timeout_ms.  NULL on failure, with the kind in *why and one clear line in msg
 * (which check failed, against which name).  Close with wire_close. */
struct wire *wire_connect(const struct wire_target *t, long timeout_ms, enum wire_failure *why,
                          char *msg, size_t msgsz);

/* Sends one command and reads its whole reply within timeout_ms.  The reply (caller frees
 * with freeReplyObject), or NULL: the wire is unusable then (close it), wire_failure() and
 * wire_error() say why.  OpenSSL writes with write(2): the process must ignore SIGPIPE. */
struct redisReply *wire_command(struct wire *w, int argc, const char **argv, const size_t *lens,
                                long timeout_ms);
/* The same for a few NUL-terminated strings. */
struct redisReply *wire_commandv(struct wire *w, long timeout_ms, int argc, ...);

enum wire_failure wire_failure(const struct wire *w);
/* Whether the TLS handshake resumed an earlier session (no full handshake). */
bool wire_resumed(const struct wire *w);
const char *wire_error(const struct wire *w);

/* Closes (a TLS close_notify first, without waiting for the peer's) and frees. */
void wire_close(struct wire *w);

#endif
