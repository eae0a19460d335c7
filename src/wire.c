#include "wire.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "clock.h"

struct wire {
    int fd;
    SSL *ssl;
    redisReader *reader;
    enum wire_failure failure;
    char err[256];
    char node[300]; /* host:port, for messages */
    bool answered;  /* a reply has come: the server accepted the handshake */
};

/* ---- TLS: one context per process, and the last session of each node for resumption ---- */

#define SESSIONS_MAX 16

static struct {
    SSL_CTX *ctx;
    const struct config *cfg;
    int key_index; /* SSL ex_data: the node's "host:port" */
    pthread_mutex_t mu;
    struct {
        char node[600]; /* "<name verified>@<host>:<port>" */
        SSL_SESSION *session;
    } sessions[SESSIONS_MAX];
    unsigned next;
} tls = {.mu = PTHREAD_MUTEX_INITIALIZER, .key_index = -1};

/* The oldest OpenSSL error's reason ("tlsv13 alert certificate required"; "" when none),
 * clearing the queue. */
static const char *ssl_reason(char *buf, size_t n)
{
    unsigned long e = ERR_get_error();
    const char *r = e ? ERR_reason_error_string(e) : NULL;
    snprintf(buf, n, "%s", r ? r : "");
    ERR_clear_error();
    return buf;
}

/* An encrypted key would make OpenSSL ask on the terminal: refuse instead. */
static int no_passphrase(char *buf, int size, int rw, void *arg)
{
    (void)buf, (void)size, (void)rw, (void)arg;
    return 0;
}

/* A session the server handed out (TLS 1.3 sends them after the handshake): kept as the
 * node's, so the next connection to it resumes instead of a full handshake. */
static int session_new(SSL *ssl, SSL_SESSION *session)
{
    const char *node = SSL_get_ex_data(ssl, tls.key_index);
    if (!node)
        return 0;
    pthread_mutex_lock(&tls.mu);
    unsigned slot = SESSIONS_MAX;
    for (unsigned i = 0; i < SESSIONS_MAX && slot == SESSIONS_MAX; i++)
        if (strcmp(tls.sessions[i].node, node) == 0)
            slot = i;
    if (slot == SESSIONS_MAX)
        slot = tls.next++ % SESSIONS_MAX;
    if (tls.sessions[slot].session)
        SSL_SESSION_free(tls.sessions[slot].session);
    snprintf(tls.sessions[slot].node, sizeof tls.sessions[slot].node, "%s", node);
    tls.sessions[slot].session = session;
    pthread_mutex_unlock(&tls.mu);
    return 1; /* ours now */
}

/* The node's last session (a reference for the caller), or NULL. */
static SSL_SESSION *session_of(const char *node)
{
    SSL_SESSION *s = NULL;
    pthread_mutex_lock(&tls.mu);
    for (unsigned i = 0; i < SESSIONS_MAX && !s; i++)
        if (tls.sessions[i].session && strcmp(tls.sessions[i].node, node) == 0 &&
            SSL_SESSION_is_resumable(tls.sessions[i].session)) {
            s = tls.sessions[i].session;
            SSL_SESSION_up_ref(s);
        }
    pthread_mutex_unlock(&tls.mu);
    return s;
}

int wire_tls_init(const struct config *cfg, char *err, size_t errsz)
{
    if (!cfg->redis_tls || tls.ctx)
        return 0;
    char why[256];
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx) {
        snprintf(err, errsz, "TLS: cannot make a context: %s", ssl_reason(why, sizeof why));
        return -1;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_mode(ctx, SSL_MODE_AUTO_RETRY);
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    int ok = cfg->redis_ca_file ? SSL_CTX_load_verify_locations(ctx, cfg->redis_ca_file, NULL)
                                : SSL_CTX_set_default_verify_paths(ctx);
    if (ok != 1) {
        snprintf(err, errsz, "%s: cannot load %s: %s",
                 cfg->redis_ca_file ? "FBCONNECT_REDIS_CA_FILE" : "rediss://",
                 cfg->redis_ca_file ? cfg->redis_ca_file : "the system trust store",
                 ssl_reason(why, sizeof why));
        SSL_CTX_free(ctx);
        return -1;
    }
    if (cfg->redis_cert_file) {
        if (SSL_CTX_use_certificate_chain_file(ctx, cfg->redis_cert_file) != 1) {
            snprintf(err, errsz, "FBCONNECT_REDIS_CERT_FILE: cannot load %s: %s", cfg->redis_cert_file,
                     ssl_reason(why, sizeof why));
            SSL_CTX_free(ctx);
            return -1;
        }
        const char *key = cfg->redis_key_file ? cfg->redis_key_file : cfg->redis_cert_file;
        const char *var = cfg->redis_key_file ? "FBCONNECT_REDIS_KEY_FILE" : "FBCONNECT_REDIS_CERT_FILE";
        if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
            snprintf(err, errsz, "%s: cannot load a private key from %s (unencrypted PEM expected): %s",
                     var, key, ssl_reason(why, sizeof why));
            SSL_CTX_free(ctx);
            return -1;
        }
        if (SSL_CTX_check_private_key(ctx) != 1) {
            snprintf(err, errsz, "%s: %s is not the key of %s", var, key, cfg->redis_cert_file);
            SSL_CTX_free(ctx);
            return -1;
        }
    }
    SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
    SSL_CTX_sess_set_new_cb(ctx, session_new);
    if (tls.key_index < 0)
        tls.key_index = SSL_get_ex_new_index(0, NULL, NULL, NULL, NULL);
    if (tls.key_index < 0) {
        snprintf(err, errsz, "TLS: cannot set up: %s", ssl_reason(why, sizeof why));
        SSL_CTX_free(ctx);
        return -1;
    }
    tls.ctx = ctx;
    tls.cfg = cfg;
    return 0;
}

void wire_tls_free(void)
{
    pthread_mutex_lock(&tls.mu);
    for (unsigned i = 0; i < SESSIONS_MAX; i++) {
        if (tls.sessions[i].session)
            SSL_SESSION_free(tls.sessions[i].session);
        tls.sessions[i].session = NULL;
        tls.sessions[i].node[0] = '\0';
    }
    pthread_mutex_unlock(&tls.mu);
    SSL_CTX_free(tls.ctx);
    tls.ctx = NULL;
}

/* ---- the socket ---- */

static void fail(struct wire *w, enum wire_failure f, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(struct wire *w, enum wire_failure f, const char *fmt, ...)
{
    w->failure = f;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->err, sizeof w->err, fmt, ap);
    va_end(ap);
}

/* Waits until fd is ready for events, or deadline_us (monotonic) passes: true when ready. */
static bool wait_fd(int fd, short events, int64_t deadline_us)
{
    for (;;) {
        int64_t left_us = deadline_us - clock_mono_us();
        if (left_us <= 0)
            return false;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)((left_us + 999) / 1000));
        if (n > 0)
            return true;
        if (n == 0)
            return false;
        if (errno != EINTR)
            return false;
    }
}

/* A non-blocking connect to one address, finished by deadline_us: the socket, or -1. */
static int connect_addr(const struct sockaddr *sa, socklen_t len, int64_t deadline_us, int *error)
{
    int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        *error = errno;
        return -1;
    }
    if (connect(fd, sa, len) != 0) {
        if (errno != EINPROGRESS) {
            *error = errno;
            close(fd);
            return -1;
        }
        if (!wait_fd(fd, POLLOUT, deadline_us)) {
            *error = ETIMEDOUT;
            close(fd);
            return -1;
        }
        int so = 0;
        socklen_t sl = sizeof so;
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) != 0 || so != 0) {
            *error = so ? so : errno;
            close(fd);
            return -1;
        }
    }
    if (sa->sa_family != AF_UNIX) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

static bool is_ip(const char *name)
{
    unsigned char buf[sizeof(struct in6_addr)];
    return inet_pton(AF_INET, name, buf) == 1 || inet_pton(AF_INET6, name, buf) == 1;
}

/* The handshake on w->fd, verifying the chain and `name`, by deadline_us. */
static bool handshake(struct wire *w, const struct wire_target *t, int64_t deadline_us)
{
    char node[300], why[256];
    snprintf(node, sizeof node, "%s:%d", t->host, t->port);
    const char *name = t->server_name ? t->server_name : t->host;
    if (!tls.ctx) {
        fail(w, WIRE_TLS, "TLS is not set up");
        return false;
    }
    w->ssl = SSL_new(tls.ctx);
    if (!w->ssl || SSL_set_fd(w->ssl, w->fd) != 1) {
        fail(w, WIRE_TLS, "TLS: %s", ssl_reason(why, sizeof why));
        return false;
    }
    /* Sessions are kept per node and name verified: one resumed skips the certificate, so
     * it must never stand in for another name's check. */
    char key[600];
    snprintf(key, sizeof key, "%s@%s", name, node);
    /* The name is checked or nothing is: any failure setting it up fails closed. */
    char *kept = strdup(key);
    bool named = kept && SSL_set_ex_data(w->ssl, tls.key_index, kept) == 1;
    if (!named)
        free(kept);
    if (named && is_ip(name)) {
        named = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(w->ssl), name) == 1;
    } else if (named) {
        SSL_set_hostflags(w->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS | X509_CHECK_FLAG_NEVER_CHECK_SUBJECT);
        named = SSL_set_tlsext_host_name(w->ssl, name) == 1 && SSL_set1_host(w->ssl, name) == 1;
    }
    if (!named) {
        fail(w, WIRE_TLS, "TLS: cannot check the name %s for %s: %s", name, node, ssl_reason(why, sizeof why));
        return false;
    }
    SSL_SESSION *resume = session_of(key);
    if (resume) {
        SSL_set_session(w->ssl, resume);
        SSL_SESSION_free(resume);
    }
    for (;;) {
        ERR_clear_error();
        int r = SSL_connect(w->ssl);
        if (r == 1)
            return true;
        int e = SSL_get_error(w->ssl, r);
        if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
            if (!wait_fd(w->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_us)) {
                fail(w, WIRE_TIMEOUT, "TLS handshake with %s timed out", node);
                return false;
            }
            continue;
        }
        long v = SSL_get_verify_result(w->ssl);
        if (v != X509_V_OK) {
            const struct config *cfg = tls.cfg;
            fail(w, WIRE_TLS, "TLS: the certificate of %s does not verify: %s (%s; name expected: %s%s)",
                 node, X509_verify_cert_error_string(v),
                 cfg && cfg->redis_ca_file ? "trusting FBCONNECT_REDIS_CA_FILE only" : "trusting the system store",
                 name, t->server_name ? ", from FBCONNECT_REDIS_TLS_SERVER_NAME" : "");
            return false;
        }
        /* A TLS error (an alert, a protocol mismatch) is the server's refusal; the
         * connection dropped mid-handshake is network trouble (a restart, maxclients). */
        const char *reason = e == SSL_ERROR_SSL ? ssl_reason(why, sizeof why) : "";
        if (*reason && !strstr(reason, "unexpected eof"))
            fail(w, WIRE_TLS, "TLS: %s refused the handshake: %s%s", node, reason,
                 tls.cfg && !tls.cfg->redis_cert_file
                     ? " (does it require a client certificate? FBCONNECT_REDIS_CERT_FILE is not set)"
                     : "");
        else
            fail(w, WIRE_UNREACHABLE, "%s closed the connection during the TLS handshake", node);
        return false;
    }
}

struct wire *wire_connect(const struct wire_target *t, long timeout_ms, enum wire_failure *why,
                          char *msg, size_t msgsz)
{
    struct wire *w = calloc(1, sizeof *w);
    if (!w)
        abort();
    w->fd = -1;
    int64_t deadline = clock_mono_us() + (int64_t)timeout_ms * 1000;
    int error = 0;
    if (t->path) {
        struct sockaddr_un un = {.sun_family = AF_UNIX};
        if (strlen(t->path) >= sizeof un.sun_path) {
            fail(w, WIRE_UNREACHABLE, "%s: the socket path is too long", t->path);
        } else {
            snprintf(un.sun_path, sizeof un.sun_path, "%s", t->path);
            w->fd = connect_addr((struct sockaddr *)&un, sizeof un, deadline, &error);
        }
        if (w->fd < 0 && !w->failure)
            fail(w, error == ETIMEDOUT ? WIRE_TIMEOUT : WIRE_UNREACHABLE, "%s: %s", t->path, strerror(error));
    } else {
        char port[16];
        snprintf(port, sizeof port, "%d", t->port);
        struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
        int g = getaddrinfo(t->host, port, &hints, &res);
        if (g != 0) {
            fail(w, WIRE_UNREACHABLE, "%s: %s", t->host, gai_strerror(g));
        } else {
            for (struct addrinfo *a = res; a && w->fd < 0; a = a->ai_next)
                w->fd = connect_addr(a->ai_addr, a->ai_addrlen, deadline, &error);
            if (w->fd < 0)
                fail(w, error == ETIMEDOUT ? WIRE_TIMEOUT : WIRE_UNREACHABLE, "%s:%d: %s", t->host,
                     t->port, strerror(error));
        }
        if (res)
            freeaddrinfo(res);
    }
    snprintf(w->node, sizeof w->node, "%s:%d", t->host ? t->host : "", t->port);
    if (w->fd >= 0 && t->tls && !t->path)
        handshake(w, t, deadline);
    if (w->fd >= 0 && !w->failure && !(w->reader = redisReaderCreate()))
        abort();
    if (w->failure) {
        *why = w->failure;
        snprintf(msg, msgsz, "%s", w->err);
        wire_close(w);
        return NULL;
    }
    *why = WIRE_OK;
    return w;
}

/* A TLS read or write that failed: with TLS 1.3 the server judges the client's
 * certificate after the client's side of the handshake is done, so its refusal (an
 * alert) arrives here, at the first exchange. */
static void tls_failed(struct wire *w, int e, const char *what)
{
    char why[256];
    const char *reason = e == SSL_ERROR_SSL ? ssl_reason(why, sizeof why) : "";
    bool no_cert = tls.cfg && !tls.cfg->redis_cert_file;
    /* Refused: an alert; or, with no client certificate to offer, the connection closed
     * before any reply (the alert is lost when the close races our first command). */
    if (strstr(reason, "alert") ||
        (!w->answered && no_cert && (!*reason || strstr(reason, "unexpected eof"))))
        fail(w, WIRE_TLS, "TLS: %s refused the connection after the handshake (%s)%s", w->node,
             *reason ? reason : "closed at the first command",
             no_cert ? " (does it require a client certificate? FBCONNECT_REDIS_CERT_FILE is not set)" : "");
    else
        fail(w, WIRE_UNREACHABLE, e == SSL_ERROR_ZERO_RETURN ? "closed by the server" : "TLS %s failed%s%s",
             what, *reason ? ": " : "", reason);
}

/* Writes all of buf by deadline_us. */
static bool write_all(struct wire *w, const char *buf, size_t len, int64_t deadline_us)
{
    size_t done = 0;
    while (done < len) {
        if (w->ssl) {
            ERR_clear_error();
            int n = SSL_write(w->ssl, buf + done, (int)(len - done));
            if (n > 0) {
                done += (size_t)n;
                continue;
            }
            int e = SSL_get_error(w->ssl, n);
            if ((e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) &&
                wait_fd(w->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_us))
                continue;
            if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ)
                fail(w, WIRE_TIMEOUT, "write timed out");
            else
                tls_failed(w, e, "write");
            return false;
        }
        ssize_t n = send(w->fd, buf + done, len - done, MSG_NOSIGNAL);
        if (n > 0) {
            done += (size_t)n;
        } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
            if (!wait_fd(w->fd, POLLOUT, deadline_us)) {
                fail(w, WIRE_TIMEOUT, "write timed out");
                return false;
            }
        } else {
            fail(w, WIRE_UNREACHABLE, "write failed: %s", n == 0 ? "nothing written" : strerror(errno));
            return false;
        }
    }
    return true;
}

/* Reads what is there (at least a byte) into buf by deadline_us: the count, or -1. */
static ssize_t read_some(struct wire *w, char *buf, size_t cap, int64_t deadline_us)
{
    for (;;) {
        if (w->ssl) {
            ERR_clear_error();
            int n = SSL_read(w->ssl, buf, (int)cap);
            if (n > 0)
                return n;
            int e = SSL_get_error(w->ssl, n);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE) {
                if (wait_fd(w->fd, e == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, deadline_us))
                    continue;
                fail(w, WIRE_TIMEOUT, "read timed out");
                return -1;
            }
            tls_failed(w, e, "read");
            return -1;
        }
        ssize_t n = recv(w->fd, buf, cap, 0);
        if (n > 0)
            return n;
        if (n == 0) {
            fail(w, WIRE_UNREACHABLE, "closed by the server");
            return -1;
        }
        if (errno != EAGAIN && errno != EINTR) {
            fail(w, WIRE_UNREACHABLE, "read failed: %s", strerror(errno));
            return -1;
        }
        if (!wait_fd(w->fd, POLLIN, deadline_us)) {
            fail(w, WIRE_TIMEOUT, "read timed out");
            return -1;
        }
    }
}

redisReply *wire_command(struct wire *w, int argc, const char **argv, const size_t *lens,
                         long timeout_ms)
{
    if (!w || w->failure)
        return NULL;
    int64_t deadline = clock_mono_us() + (int64_t)timeout_ms * 1000;
    char *cmd = NULL;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0)
        abort();
    bool sent = write_all(w, cmd, (size_t)len, deadline);
    redisFreeCommand(cmd);
    if (!sent)
        return NULL;
    for (;;) {
        void *reply = NULL;
        if (redisReaderGetReply(w->reader, &reply) != REDIS_OK) {
            fail(w, WIRE_PROTOCOL, "protocol error: %s", w->reader->errstr);
            return NULL;
        }
        if (reply) {
            w->answered = true;
            return reply;
        }
        char buf[16384];
        ssize_t n = read_some(w, buf, sizeof buf, deadline);
        if (n < 0)
            return NULL;
        if (redisReaderFeed(w->reader, buf, (size_t)n) != REDIS_OK) {
            fail(w, WIRE_PROTOCOL, "protocol error: %s", w->reader->errstr);
            return NULL;
        }
    }
}

redisReply *wire_commandv(struct wire *w, long timeout_ms, int argc, ...)
{
    const char *argv[8];
    size_t lens[8];
    if (argc > 8)
        abort();
    va_list ap;
    va_start(ap, argc);
    for (int i = 0; i < argc; i++) {
        argv[i] = va_arg(ap, const char *);
        lens[i] = strlen(argv[i]);
    }
    va_end(ap);
    return wire_command(w, argc, argv, lens, timeout_ms);
}

enum wire_failure wire_failure(const struct wire *w)
{
    return w ? w->failure : WIRE_UNREACHABLE;
}

bool wire_resumed(const struct wire *w)
{
    return w && w->ssl && SSL_session_reused(w->ssl) == 1;
}

const char *wire_error(const struct wire *w)
{
    return w && w->err[0] ? w->err : "no connection";
}

void wire_close(struct wire *w)
{
    if (!w)
        return;
    if (w->ssl) {
        if (!w->failure)
            SSL_shutdown(w->ssl); /* close_notify, without waiting for the peer's */
        free(SSL_get_ex_data(w->ssl, tls.key_index));
        SSL_free(w->ssl);
    }
    if (w->fd >= 0)
        close(w->fd);
    if (w->reader)
        redisReaderFree(w->reader);
    free(w);
}
