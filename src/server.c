#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "clock.h"
#include "log.h"

/* ---- deadlines and limits ----
 *
 * Every connection not being served waits in the epoll set with one of three deadlines,
 * enforced by the sweep (below) without holding a thread:
 *
 *   FRESH_TIMEOUT_MS  accepted, not one byte yet.  nginx writes its request right after
 *                     connecting (it connects once it has the whole client request), so
 *                     a connection silent this long is not nginx at work.
 *   READ_DEADLINE_MS  from a request's first byte to its last (the empty STDIN record).
 *                     nginx buffers the client's body before it connects (the default
 *                     fastcgi_request_buffering on) and then sends at memory speed.
 *   IDLE_TIMEOUT_MS   a kept-alive connection between requests.  Longer than nginx's
 *                     upstream keepalive_timeout (60 s, the default and the shipped
 *                     nginx/fbconnect.conf), so nginx always closes its idle connections
 *                     first: it never sends a request (a POST it would not retry) on a
 *                     connection we are closing.
 *
 * A response must be written within WRITE_DEADLINE_MS (the worker waits in poll()). */
#define FRESH_TIMEOUT_MS 5000
#define READ_DEADLINE_MS 10000
#define IDLE_TIMEOUT_MS 75000
#define WRITE_DEADLINE_MS 10000
/* The sweep runs this often, so a deadline is enforced within this much after it passes. */
#define SWEEP_MS 250
/* Connections closed by the deadlines, for malformed records or to make room are logged
 * as counts, at most once per this interval. */
#define NOTE_MS 10000
/* At shutdown, connections accepted but not yet readable (and requests partly arrived)
 * get this long to send the rest (nginx writes right after connecting) before they are
 * closed. */
#define FRESH_GRACE_MS 250
/* One recv() reads at most READ_CHUNK; a worker reads at most READ_BUDGET from one
 * connection before putting it back (others get their turn; epoll wakes it again). */
#define READ_CHUNK 65536
#define READ_BUDGET (256 * 1024)
/* Descriptors kept for everything that is not a connection from nginx (Redis, FreshBooks,
 * the epoll set, logs): per worker thread and a fixed part.  Past the rest, a new
 * connection closes the longest-idle one. */
#define RESERVE_PER_THREAD 2
#define RESERVE_FIXED 64
/* The kernel's default fs.nr_open: the soft limit is never raised past it. */
#define NOFILE_CEILING (1u << 20)
#define STRIPES 64

/* FRESH: accepted, no byte yet; IDLE: between requests (at least one byte arrived, the
 * parser is at rest); READING: a request (or record) partly arrived; BUSY: owned by a
 * worker, which reads, serves and writes, and alone may touch it until it puts it back. */
enum conn_state { CONN_FRESH, CONN_IDLE, CONN_READING, CONN_BUSY };

struct conn {
    int fd;
    uint32_t gen;            /* tells this connection from a later one on the same fd */
    enum conn_state state;   /* changed under the fd's stripe lock */
    int64_t since_ms;        /* FRESH: accepted; IDLE: last answer; READING: first byte */
    struct fcgi_parser parser;
};

/* epoll data: a connection is (gen << 32 | fd) with gen >= 1; these are the others. */
#define EV_LISTEN 1
#define EV_WAKE 2
#define EV_TIMER 3

static struct {
    atomic_int listen_fd;
    int epfd, wakefd, timerfd;
    bool listen_is_unix;
    const struct server_app *app;
    pthread_t *workers;
    unsigned nworkers;

    pthread_mutex_t mu; /* running, exit_cv */
    pthread_cond_t exit_cv;
    /* conns[fd], and a connection's state, change under the fd's stripe lock (fd %
     * STRIPES), so workers serving different connections do not contend.  The table is
     * sized from RLIMIT_NOFILE once: no descriptor the process can hold is beyond it. */
    pthread_mutex_t stripe[STRIPES];
    struct conn **conns;
    size_t nconns;
    atomic_int hi_fd;      /* highest fd ever in conns */
    atomic_uint next_gen;
    atomic_uint open;      /* connections in conns */
    unsigned max_conns;    /* past this, a new connection closes the longest-idle one */
    struct fcgi_limits limits;
    atomic_bool sweeping;
    atomic_bool accept_starved; /* out of descriptors with nothing to close: retry at the sweep */
    atomic_bool stopping; /* no new connections; idle ones closed */
    atomic_bool final;    /* every worker leaves once free */
    unsigned running; /* workers not yet exited, guarded by mu */
    atomic_uint busy;
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER,
         .exit_cv = PTHREAD_COND_INITIALIZER,
         .listen_fd = -1,
         .epfd = -1,
         .wakefd = -1,
         .timerfd = -1,
         .hi_fd = -1};

/* Counts for the rate-limited log line (notes_flush). */
static struct {
    pthread_mutex_t mu;
    unsigned fresh, reading, idle, malformed, evicted;
    const char *last_malformed;
    int64_t last_ms, evict_burst_ms;
} notes = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- listening socket ---- */

static int listen_unix(const char *path, char *err, size_t errsz)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof sa.sun_path || path[0] != '/') {
        snprintf(err, errsz, "FBCONNECT_LISTEN: unix socket path must be absolute and shorter than %zu bytes",
                 sizeof sa.sun_path);
        return -1;
    }
    strcpy(sa.sun_path, path);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errsz, "FBCONNECT_LISTEN: socket: %s", strerror(errno));
        return -1;
    }
    struct stat st;
    if (lstat(path, &st) == 0) {
        if (!S_ISSOCK(st.st_mode)) {
            snprintf(err, errsz, "FBCONNECT_LISTEN: %s exists and is not a socket", path);
            close(fd);
            return -1;
        }
        /* A socket file: live if something answers on it, stale otherwise. */
        if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
            snprintf(err, errsz, "FBCONNECT_LISTEN: another process is listening on %s", path);
            close(fd);
            return -1;
        }
        unlink(path);
        close(fd);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0) {
            snprintf(err, errsz, "FBCONNECT_LISTEN: socket: %s", strerror(errno));
            return -1;
        }
    }
    mode_t old = umask(0117); /* socket file 0660: owner and group (nginx) only */
    int rc = bind(fd, (struct sockaddr *)&sa, sizeof sa);
    umask(old);
    if (rc < 0) {
        snprintf(err, errsz, "FBCONNECT_LISTEN: bind %s: %s", path, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

static int listen_tcp(const char *spec, char *err, size_t errsz)
{
    char host[64];
    const char *colon = strrchr(spec, ':');
    if (!colon || colon == spec || (size_t)(colon - spec) >= sizeof host) {
        snprintf(err, errsz, "FBCONNECT_LISTEN: expected unix:/path or HOST:PORT, got '%s'", spec);
        return -1;
    }
    memcpy(host, spec, (size_t)(colon - spec));
    host[colon - spec] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 1 || port > 65535 || colon[1] == '\0') {
        snprintf(err, errsz, "FBCONNECT_LISTEN: bad port in '%s'", spec);
        return -1;
    }
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    socklen_t sl;
    size_t hl = strlen(host);
    if (strcmp(host, "localhost") == 0)
        strcpy(host, "127.0.0.1");
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &s4->sin_addr) == 1) {
        s4->sin_family = AF_INET;
        s4->sin_port = htons((uint16_t)port);
        sl = sizeof *s4;
        if ((ntohl(s4->sin_addr.s_addr) >> 24) != 127) {
            snprintf(err, errsz, "FBCONNECT_LISTEN: %s is not a loopback address (only nginx may reach fbconnect)", host);
            return -1;
        }
    } else if (inet_pton(AF_INET6, host, &s6->sin6_addr) == 1) {
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons((uint16_t)port);
        sl = sizeof *s6;
        if (!IN6_IS_ADDR_LOOPBACK(&s6->sin6_addr)) {
            snprintf(err, errsz, "FBCONNECT_LISTEN: %s is not a loopback address (only nginx may reach fbconnect)", host);
            return -1;
        }
    } else {
        snprintf(err, errsz, "FBCONNECT_LISTEN: '%s' is not a loopback IP address", host);
        return -1;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        snprintf(err, errsz, "FBCONNECT_LISTEN: socket: %s", strerror(errno));
        return -1;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, (struct sockaddr *)&ss, sl) < 0) {
        snprintf(err, errsz, "FBCONNECT_LISTEN: bind %s: %s", spec, strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

int server_listen(const char *spec, char *err, size_t errsz)
{
    int fd;
    const char *lpid = getenv("LISTEN_PID"), *lfds = getenv("LISTEN_FDS");
    if (lpid && lfds && atol(lpid) == (long)getpid() && atoi(lfds) >= 1) {
        fd = 3; /* SD_LISTEN_FDS_START: systemd owns the socket, we never unlink it */
        int type = 0;
        socklen_t tl = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != SOCK_STREAM) {
            snprintf(err, errsz, "LISTEN_FDS: fd 3 is not a stream socket");
            return -1;
        }
        unsetenv("LISTEN_PID");
        unsetenv("LISTEN_FDS");
        unsetenv("LISTEN_FDNAMES");
    } else if (strncmp(spec, "unix:", 5) == 0) {
        fd = listen_unix(spec + 5, err, errsz);
    } else {
        fd = listen_tcp(spec, err, errsz);
    }
    if (fd < 0)
        return -1;
    if (listen(fd, SOMAXCONN) < 0) {
        snprintf(err, errsz, "FBCONNECT_LISTEN: listen: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* ---- the connection table ---- */

static pthread_mutex_t *lock_of(int fd)
{
    return &srv.stripe[fd % STRIPES];
}

static uint64_t ev_data(const struct conn *c)
{
    return (uint64_t)c->gen << 32 | (uint32_t)c->fd;
}

/* Gives c to the epoll set for its next readable event (one-shot).  Returns 0, or -1 when
 * epoll refused (the caller closes c).  Under c's stripe lock. */
static int arm(struct conn *c, int op)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.u64 = ev_data(c)};
    if (epoll_ctl(srv.epfd, op, c->fd, &ev) < 0) {
        log_msg(LOG_ERROR, "epoll_ctl: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* Removes c from the table and closes its socket (which also leaves the epoll set).
 * Under c's stripe lock; the caller frees c with conn_free() (after unlocking, if it
 * likes): the fd number may be handed out again as soon as it is closed, and the table
 * slot already says so. */
static void conn_drop(struct conn *c)
{
    srv.conns[c->fd] = NULL;
    close(c->fd);
    atomic_fetch_sub(&srv.open, 1);
}

static void conn_free(struct conn *c)
{
    fcgi_parser_destroy(&c->parser);
    free(c);
}

/* A worker's connection (BUSY) closed. */
static void conn_close(struct conn *c)
{
    pthread_mutex_lock(lock_of(c->fd));
    conn_drop(c);
    pthread_mutex_unlock(lock_of(c->fd));
    conn_free(c);
}

/* ---- notes: rate-limited log lines ---- */

/* Counts one close for the next notes_flush(); malformed, a static string, is kept as
 * the last reason. */
static void note(unsigned *counter, const char *malformed)
{
    pthread_mutex_lock(&notes.mu);
    (*counter)++;
    if (malformed)
        notes.last_malformed = malformed;
    pthread_mutex_unlock(&notes.mu);
}

/* Logs the counts gathered since the last line, at most once per NOTE_MS (force: now). */
static void notes_flush(int64_t now, bool force)
{
    pthread_mutex_lock(&notes.mu);
    if ((force || now - notes.last_ms >= NOTE_MS) &&
        (notes.fresh || notes.reading || notes.idle || notes.malformed || notes.evicted)) {
        log_msg(LOG_WARN,
                "closed connections: %u silent for %d s after connecting, %u with a request "
                "unfinished after %d s, %u idle for %d s, %u for malformed FastCGI%s%s%s, "
                "%u to make room at the limit of %u",
                notes.fresh, FRESH_TIMEOUT_MS / 1000, notes.reading, READ_DEADLINE_MS / 1000,
                notes.idle, IDLE_TIMEOUT_MS / 1000, notes.malformed,
                notes.last_malformed ? " (last: " : "",
                notes.last_malformed ? notes.last_malformed : "", notes.last_malformed ? ")" : "",
                notes.evicted, srv.max_conns);
        notes.fresh = notes.reading = notes.idle = notes.malformed = notes.evicted = 0;
        notes.last_malformed = NULL;
        notes.last_ms = now;
    }
    pthread_mutex_unlock(&notes.mu);
}

/* ---- making room ---- */

/* Closes the connection that has waited longest with no request in progress (FRESH or
 * IDLE; failing those, the oldest partly arrived request), to free a descriptor for a new
 * one from nginx.  Never a connection a worker owns.  Returns true when one was closed.
 * Takes the stripe locks one at a time. */
static bool evict_idlest(void)
{
    int best = -1, best_rank = 2, hi = atomic_load(&srv.hi_fd);
    uint32_t best_gen = 0;
    int64_t best_since = INT64_MAX;
    for (int s = 0; s < STRIPES; s++) {
        pthread_mutex_lock(&srv.stripe[s]);
        for (int fd = s; fd <= hi; fd += STRIPES) {
            struct conn *c = srv.conns[fd];
            if (!c || c->state == CONN_BUSY)
                continue;
            int rank = c->state == CONN_READING;
            if (rank < best_rank || (rank == best_rank && c->since_ms < best_since)) {
                best = fd;
                best_rank = rank;
                best_gen = c->gen;
                best_since = c->since_ms;
            }
        }
        pthread_mutex_unlock(&srv.stripe[s]);
    }
    if (best < 0)
        return false;
    struct conn *gone = NULL;
    pthread_mutex_lock(lock_of(best));
    struct conn *c = srv.conns[best];
    if (c && c->gen == best_gen && c->state != CONN_BUSY) {
        conn_drop(c);
        gone = c;
    }
    pthread_mutex_unlock(lock_of(best));
    if (!gone)
        return false;
    conn_free(gone);
    int64_t now = now_ms();
    pthread_mutex_lock(&notes.mu);
    bool first = now - notes.evict_burst_ms > NOTE_MS; /* once per burst */
    notes.evict_burst_ms = now;
    notes.evicted++;
    pthread_mutex_unlock(&notes.mu);
    if (first)
        log_msg(LOG_WARN, "at the limit of %u connections: closing the longest-idle ones to make room",
                srv.max_conns);
    return true;
}

/* ---- accepting ----
 *
 * Every worker waits in epoll_wait on one epoll set holding the listening socket (edge
 * triggered), the sweep's timer and every connection not being served (one-shot).  The
 * kernel wakes one waiter per event, so whichever worker gets a connection's event serves
 * it directly: no hand-off between threads, and an idle kept-alive connection holds no
 * thread. */

/* Adds a just-accepted socket as a FRESH connection. */
static void add_conn(int fd)
{
    if ((size_t)fd >= srv.nconns) { /* only if RLIMIT_NOFILE was raised from outside */
        log_msg(LOG_ERROR, "accept: fd %d beyond the connection table (%zu)", fd, srv.nconns);
        close(fd);
        return;
    }
    if (!srv.listen_is_unix) {
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (atomic_load(&srv.open) >= srv.max_conns)
        evict_idlest();
    struct conn *c = xmalloc(sizeof *c);
    c->fd = fd;
    unsigned gen = atomic_fetch_add(&srv.next_gen, 1);
    c->gen = gen ? gen : 1; /* 0 marks the listening socket and timers */
    c->state = CONN_FRESH;
    c->since_ms = now_ms();
    fcgi_parser_init(&c->parser, &srv.limits);
    bool added = false;
    pthread_mutex_lock(lock_of(fd));
    if (!atomic_load(&srv.final)) { /* accepted while a stop began: it gets the grace */
        srv.conns[fd] = c;
        atomic_fetch_add(&srv.open, 1);
        int hi = atomic_load(&srv.hi_fd);
        while (fd > hi && !atomic_compare_exchange_weak(&srv.hi_fd, &hi, fd))
            ;
        if (arm(c, EPOLL_CTL_ADD) == 0)
            added = true;
        else
            conn_drop(c);
    } else {
        close(fd);
    }
    pthread_mutex_unlock(lock_of(fd));
    if (!added)
        conn_free(c);
}

/* Accepts until the backlog is empty (the listening socket is edge-triggered).  Out of
 * descriptors, it closes the longest-idle connection and tries again; with nothing to
 * close it leaves the rest to the next sweep. */
static void accept_all(void)
{
    for (int starved = 0;;) {
        int lfd = atomic_load(&srv.listen_fd);
        if (lfd < 0)
            return;
        int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd >= 0) {
            add_conn(fd);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if (errno == EMFILE || errno == ENFILE) {
            if (evict_idlest())
                continue;
            atomic_store(&srv.accept_starved, true);
            return;
        }
        if ((errno == ENOBUFS || errno == ENOMEM) && starved++ < 100) {
            if (starved == 1)
                log_msg(LOG_ERROR, "accept: %s", strerror(errno));
            usleep(10000);
            continue;
        }
        return; /* EAGAIN: drained (or another worker took them) */
    }
}

/* ---- the sweep ---- */

/* True when c, not owned by a worker, has passed its deadline; counts it. */
static bool expired(const struct conn *c, int64_t now)
{
    int64_t waited = now - c->since_ms;
    switch (c->state) {
    case CONN_FRESH:
        return waited >= FRESH_TIMEOUT_MS;
    case CONN_IDLE:
        return waited >= IDLE_TIMEOUT_MS;
    case CONN_READING:
        return waited >= READ_DEADLINE_MS;
    default:
        return false;
    }
}

/* Run by the worker that takes the timer's event: closes every connection past its
 * deadline (under each stripe's lock in turn), retries accepting after a shortage of
 * descriptors, and logs the counts. */
static void sweep(void)
{
    uint64_t ticks;
    if (read(srv.timerfd, &ticks, sizeof ticks) != (ssize_t)sizeof ticks)
        return; /* another worker took this tick */
    if (atomic_exchange(&srv.sweeping, true))
        return;
    int64_t now = now_ms();
    int hi = atomic_load(&srv.hi_fd);
    unsigned n[3] = {0, 0, 0};
    for (int s = 0; s < STRIPES; s++) {
        pthread_mutex_lock(&srv.stripe[s]);
        for (int fd = s; fd <= hi; fd += STRIPES) {
            struct conn *c = srv.conns[fd];
            if (!c || !expired(c, now))
                continue;
            n[c->state]++;
            conn_drop(c);
            conn_free(c);
        }
        pthread_mutex_unlock(&srv.stripe[s]);
    }
    if (n[CONN_FRESH] || n[CONN_IDLE] || n[CONN_READING]) {
        pthread_mutex_lock(&notes.mu);
        notes.fresh += n[CONN_FRESH];
        notes.idle += n[CONN_IDLE];
        notes.reading += n[CONN_READING];
        pthread_mutex_unlock(&notes.mu);
    }
    atomic_store(&srv.sweeping, false);
    if (atomic_exchange(&srv.accept_starved, false))
        accept_all();
    notes_flush(now, false);
}

/* ---- serving ---- */

/* A worker's buffers: what it reads, and what it writes (answers and management replies). */
struct worker_io {
    uint8_t *rbuf;
    struct buf out;
};

/* Writes all of out to fd (non-blocking: waits in poll() while the socket is full), within
 * WRITE_DEADLINE_MS.  Returns 0, or -1 when the peer is gone or too slow.  Empties out. */
static int write_out(int fd, struct buf *out)
{
    const char *p = out->data;
    size_t left = out->len;
    int64_t deadline = 0;
    int rc = 0;
    while (left) {
        ssize_t n = send(fd, p, left, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            left -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int64_t now = now_ms();
            if (!deadline)
                deadline = now + WRITE_DEADLINE_MS;
            if (now >= deadline) {
                rc = -1;
                break;
            }
            struct pollfd pfd = {.fd = fd, .events = POLLOUT};
            poll(&pfd, 1, (int)(deadline - now));
            continue;
        }
        rc = -1;
        break;
    }
    buf_reset(out);
    return rc;
}

/* Runs the handler on c's complete request and writes the answer.  Returns true when the
 * connection stays open for the next request. */
static bool answer(struct conn *c, struct worker_io *io, void *ctx)
{
    struct fcgi_request *req = fcgi_request(&c->parser);
    atomic_fetch_add(&srv.busy, 1);
    req->out = &io->out;
    srv.app->handle(ctx, req);
    fcgi_end_request(req, 0);
    bool keep = req->keep_conn;
    int rc = write_out(c->fd, &io->out);
    atomic_fetch_sub(&srv.busy, 1);
    fcgi_request_done(&c->parser);
    c->since_ms = now_ms(); /* the idle clock (or the next request's) starts now */
    return rc == 0 && keep && !atomic_load(&srv.stopping);
}

/* Feeds n bytes read from c to its parser, answering every request they complete (and
 * the management records).  Returns true when the connection stays open. */
static bool take_input(struct conn *c, struct worker_io *io, void *ctx, size_t n)
{
    size_t off = 0;
    while (off < n) {
        size_t used;
        enum fcgi_result r = fcgi_feed(&c->parser, io->rbuf + off, n - off, &used, &io->out);
        off += used;
        switch (r) {
        case FCGI_REQUEST: /* replies to earlier records, if any, go out first, in one write */
            if (!answer(c, io, ctx))
                return false;
            break;
        case FCGI_MORE:
            break;
        case FCGI_CLOSE:
            write_out(c->fd, &io->out);
            return false;
        case FCGI_ERROR:
            note(&notes.malformed, fcgi_error(&c->parser));
            buf_reset(&io->out);
            return false;
        }
    }
    if (io->out.len && write_out(c->fd, &io->out) < 0)
        return false;
    return true;
}

/* Gives c back to the epoll set with its deadline, or closes it when stopping (an idle
 * one at once; fresh ones and partly arrived requests at the final stop, after the
 * grace). */
static void put_back(struct conn *c)
{
    bool at_rest = fcgi_at_rest(&c->parser);
    enum conn_state next = !at_rest ? CONN_READING : fcgi_got_bytes(&c->parser) ? CONN_IDLE : CONN_FRESH;
    bool closed = false;
    pthread_mutex_lock(lock_of(c->fd));
    if (atomic_load(&srv.final) || (atomic_load(&srv.stopping) && next == CONN_IDLE)) {
        conn_drop(c);
        closed = true;
    } else {
        c->state = next;
        if (arm(c, EPOLL_CTL_MOD) < 0) {
            conn_drop(c);
            closed = true;
        }
    }
    pthread_mutex_unlock(lock_of(c->fd));
    if (closed)
        conn_free(c);
}

/* Serves the connection whose event this worker received: reads what is there, answers
 * every request it completes, and puts the connection back (or closes it). */
static void serve(uint64_t data, struct worker_io *io, void *ctx)
{
    int fd = (int)(uint32_t)data;
    uint32_t gen = (uint32_t)(data >> 32);
    pthread_mutex_lock(lock_of(fd));
    struct conn *c = (size_t)fd < srv.nconns ? srv.conns[fd] : NULL;
    if (!c || c->gen != gen || c->state == CONN_BUSY) {
        pthread_mutex_unlock(lock_of(fd)); /* closed meanwhile (a stop, a deadline) */
        return;
    }
    enum conn_state was = c->state;
    c->state = CONN_BUSY;
    pthread_mutex_unlock(lock_of(fd));

    for (size_t total = 0; total < READ_BUDGET;) {
        ssize_t n = recv(fd, io->rbuf, READ_CHUNK, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            break;
        if (n <= 0) { /* the peer closed, or the connection failed */
            conn_close(c);
            return;
        }
        if (was != CONN_READING) { /* the read deadline starts with a request's first byte */
            c->since_ms = now_ms();
            was = CONN_READING;
        }
        total += (size_t)n;
        if (!take_input(c, io, ctx, (size_t)n)) {
            conn_close(c);
            return;
        }
        if (fcgi_at_rest(&c->parser)) {
            /* Everything read is answered: epoll says when more comes, without a recv()
             * that would find nothing.  The next bytes start a new request. */
            was = CONN_IDLE;
            if ((size_t)n < READ_CHUNK)
                break;
        }
    }
    put_back(c);
}

struct worker_arg {
    unsigned index;
};

/* A worker: its thread context and buffers, then epoll_wait until the final stop; it
 * accepts, sweeps or serves, whichever event it is given. */
static void *worker_main(void *argp)
{
    struct worker_arg *arg = argp;
    void *ctx = srv.app->thread_start(arg->index, srv.app->app);
    free(arg);
    struct worker_io io = {.rbuf = xmalloc(READ_CHUNK)};
    for (;;) {
        struct epoll_event ev;
        int n = epoll_wait(srv.epfd, &ev, 1, -1);
        if (n < 0) {
            if (errno != EINTR) {
                log_msg(LOG_ERROR, "epoll_wait: %s", strerror(errno));
                usleep(10000);
            }
            continue;
        }
        if (n == 0)
            continue;
        if (ev.data.u64 == EV_WAKE)
            break; /* final stop: the eventfd stays readable, so every worker sees it */
        if (ev.data.u64 == EV_LISTEN)
            accept_all();
        else if (ev.data.u64 == EV_TIMER)
            sweep();
        else
            serve(ev.data.u64, &io, ctx);
    }
    free(io.rbuf);
    buf_free(&io.out);
    srv.app->thread_stop(ctx);
    pthread_mutex_lock(&srv.mu);
    srv.running--;
    pthread_cond_broadcast(&srv.exit_cv);
    pthread_mutex_unlock(&srv.mu);
    return NULL;
}

/* Raises RLIMIT_NOFILE's soft limit to the hard limit (at most NOFILE_CEILING) and returns
 * the soft limit in force; *was is what it was before. */
static size_t raise_nofile(unsigned long long *was_out)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        log_msg(LOG_ERROR, "getrlimit(RLIMIT_NOFILE): %s", strerror(errno));
        *was_out = 1024;
        return 1024;
    }
    rlim_t was = rl.rlim_cur, want = rl.rlim_max;
    if (want == RLIM_INFINITY || want > NOFILE_CEILING)
        want = NOFILE_CEILING;
    if (want > rl.rlim_cur) {
        struct rlimit nl = {.rlim_cur = want, .rlim_max = rl.rlim_max};
        if (setrlimit(RLIMIT_NOFILE, &nl) == 0)
            rl.rlim_cur = want;
        else
            log_msg(LOG_WARN, "cannot raise RLIMIT_NOFILE from %llu to %llu: %s",
                    (unsigned long long)was, (unsigned long long)want, strerror(errno));
    }
    if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > NOFILE_CEILING)
        rl.rlim_cur = NOFILE_CEILING;
    *was_out = (unsigned long long)was;
    return (size_t)rl.rlim_cur;
}

int server_start(int listen_fd, unsigned threads, const struct server_app *app, char *err,
                 size_t errsz)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &sl) == 0)
        srv.listen_is_unix = ss.ss_family == AF_UNIX;
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(err, errsz, "listen socket: %s", strerror(errno));
        return -1;
    }
    unsigned long long was;
    srv.nconns = raise_nofile(&was);
    srv.conns = calloc(srv.nconns, sizeof *srv.conns);
    if (!srv.conns) {
        snprintf(err, errsz, "connection table for %zu descriptors: out of memory", srv.nconns);
        return -1;
    }
    size_t reserve = (size_t)threads * RESERVE_PER_THREAD + RESERVE_FIXED;
    srv.max_conns = srv.nconns > reserve + 16 ? (unsigned)(srv.nconns - reserve) : 16;
    srv.limits.max_conns = srv.limits.max_reqs = srv.max_conns;
    log_msg(LOG_INFO, "file descriptors: %zu (RLIMIT_NOFILE soft limit, was %llu): up to %u connections from nginx, %zu kept for Redis, FreshBooks and the rest",
            srv.nconns, was, srv.max_conns, srv.nconns - srv.max_conns);
    atomic_store(&srv.next_gen, 1);
    atomic_store(&srv.hi_fd, -1);
    srv.listen_fd = listen_fd;
    srv.app = app;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&srv.stripe[i], NULL);
    srv.epfd = epoll_create1(EPOLL_CLOEXEC);
    srv.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    srv.timerfd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
    if (srv.epfd < 0 || srv.wakefd < 0 || srv.timerfd < 0) {
        snprintf(err, errsz, "epoll/eventfd/timerfd: %s", strerror(errno));
        return -1;
    }
    struct itimerspec its = {.it_interval = {.tv_nsec = SWEEP_MS * 1000000L},
                             .it_value = {.tv_nsec = SWEEP_MS * 1000000L}};
    timerfd_settime(srv.timerfd, 0, &its, NULL);
    /* Edge-triggered: a new connection wakes one worker, which accepts until EAGAIN; level
     * triggering woke every idle worker into a failing accept4.  The timer likewise wakes
     * one worker per tick. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.u64 = EV_LISTEN};
    epoll_ctl(srv.epfd, EPOLL_CTL_ADD, listen_fd, &ev);
    ev.data.u64 = EV_TIMER;
    epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.timerfd, &ev);
    ev.events = EPOLLIN;
    ev.data.u64 = EV_WAKE;
    epoll_ctl(srv.epfd, EPOLL_CTL_ADD, srv.wakefd, &ev);

    srv.workers = xmalloc(sizeof(pthread_t) * threads);
    srv.nworkers = 0;
    srv.running = 0;
    for (unsigned i = 0; i < threads; i++) {
        struct worker_arg *arg = xmalloc(sizeof *arg);
        arg->index = i;
        pthread_mutex_lock(&srv.mu);
        srv.running++;
        pthread_mutex_unlock(&srv.mu);
        int rc = pthread_create(&srv.workers[i], NULL, worker_main, arg);
        if (rc != 0) {
            free(arg);
            pthread_mutex_lock(&srv.mu);
            srv.running--;
            pthread_mutex_unlock(&srv.mu);
            snprintf(err, errsz, "FBCONNECT_THREADS: cannot start thread %u: %s", i, strerror(rc));
            server_stop(1000);
            return -1;
        }
        srv.nworkers++;
    }
    return 0;
}

/* ---- stopping ---- */

/* True when a request (or EOF) is waiting on fd. */
static bool readable(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0;
}

/* True while a connection not owned by a worker may still bring a request to finish:
 * fresh ones and partly arrived requests (the grace is theirs), and idle ones whose next
 * request has arrived (a worker is about to take it). */
static bool still_coming(const struct conn *c)
{
    return c->state == CONN_FRESH || c->state == CONN_READING ||
           (c->state == CONN_IDLE && readable(c->fd));
}

/* Called when stopping: closes the listening socket (with systemd's socket, queued
 * connections wait for the next process) and every connection not being served, except
 * — unless `final` — those still_coming().  Returns how many connections still wait. */
static unsigned wind_down(bool final)
{
    int lfd = atomic_exchange(&srv.listen_fd, -1);
    if (lfd >= 0) {
        epoll_ctl(srv.epfd, EPOLL_CTL_DEL, lfd, NULL);
        close(lfd);
    }
    unsigned waiting = 0;
    int hi = atomic_load(&srv.hi_fd);
    for (int s = 0; s < STRIPES && srv.conns; s++) {
        pthread_mutex_lock(&srv.stripe[s]);
        for (int fd = s; fd <= hi; fd += STRIPES) {
            struct conn *c = srv.conns[fd];
            if (!c || c->state == CONN_BUSY)
                continue;
            if (!final && still_coming(c)) {
                waiting++;
            } else {
                conn_drop(c);
                conn_free(c);
            }
        }
        pthread_mutex_unlock(&srv.stripe[s]);
    }
    return waiting;
}

/* How many connections not owned by a worker are still_coming(). */
static unsigned count_coming(void)
{
    unsigned waiting = 0;
    int hi = atomic_load(&srv.hi_fd);
    for (int s = 0; s < STRIPES && srv.conns; s++) {
        pthread_mutex_lock(&srv.stripe[s]);
        for (int fd = s; fd <= hi; fd += STRIPES) {
            struct conn *c = srv.conns[fd];
            waiting += c && c->state != CONN_BUSY && still_coming(c);
        }
        pthread_mutex_unlock(&srv.stripe[s]);
    }
    return waiting;
}

unsigned server_stop(int deadline_ms)
{
    /* 1. No new connections; idle ones closed; what has arrived is still served. */
    atomic_store(&srv.stopping, true);
    unsigned waiting = wind_down(false);
    /* 2. Up to FRESH_GRACE_MS for workers to take the requests that have arrived, and for
     *    fresh connections and partly arrived requests to send the rest. */
    for (int64_t end = now_ms() + FRESH_GRACE_MS; waiting && now_ms() < end;) {
        usleep(5000);
        waiting = count_coming();
    }
    /* 3. Close what is left; workers leave as soon as they are free. */
    atomic_store(&srv.final, true);
    wind_down(true);
    uint64_t one = 1;
    if (srv.wakefd >= 0 && write(srv.wakefd, &one, sizeof one) < 0)
        log_msg(LOG_ERROR, "eventfd write: %s", strerror(errno));

    struct timespec deadline = clock_realtime_in(deadline_ms);
    pthread_mutex_lock(&srv.mu);
    while (srv.running > 0) {
        if (pthread_cond_timedwait(&srv.exit_cv, &srv.mu, &deadline) == ETIMEDOUT)
            break;
    }
    unsigned left = srv.running;
    pthread_mutex_unlock(&srv.mu);
    notes_flush(now_ms(), true);
    if (left == 0)
        for (unsigned i = 0; i < srv.nworkers; i++)
            pthread_join(srv.workers[i], NULL);
    return left;
}

unsigned server_busy_threads(void)
{
    return atomic_load(&srv.busy);
}
