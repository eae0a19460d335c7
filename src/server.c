#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "log.h"

/* libfcgi's lingering close uses select(): it must never see an fd >= FD_SETSIZE. */
#define MAX_FD 1024
#define IO_TIMEOUT_S 30
#define DRAIN_MAX (1 << 20)

/* FRESH: accepted, no request read yet; IDLE: kept alive between requests; BUSY: queued
 * or being served (owned by a worker). */
enum conn_state { CONN_FREE, CONN_FRESH, CONN_IDLE, CONN_BUSY };

/* At shutdown, connections accepted but not yet readable get this long to send their
 * request (nginx writes right after connecting) before they are closed. */
#define FRESH_GRACE_MS 250
#define STRIPES 64

static struct {
    int listen_fd, epfd, wakefd;
    bool listen_is_unix;
    const struct server_app *app;
    pthread_t *workers;
    unsigned nworkers;

    pthread_mutex_t mu; /* running, exit_cv */
    pthread_cond_t exit_cv;
    /* A connection's state changes under its stripe's lock (fd % STRIPES), so workers
     * serving different connections do not contend. */
    pthread_mutex_t stripe[STRIPES];
    unsigned char state[MAX_FD];
    atomic_bool stopping; /* no new connections; idle ones closed */
    atomic_bool final;    /* every worker leaves once free */
    unsigned running; /* workers not yet exited, guarded by mu */
    atomic_uint busy;
} srv = {.mu = PTHREAD_MUTEX_INITIALIZER,
         .exit_cv = PTHREAD_COND_INITIALIZER,
         .listen_fd = -1,
         .epfd = -1,
         .wakefd = -1};

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

/* ---- the shared epoll set ----
 *
 * Every worker waits in epoll_wait on one epoll set holding the listening socket (level
 * triggered) and every connection not being served (one-shot).  The kernel wakes one
 * waiter per event, so whichever worker gets a connection's event serves it directly: no
 * hand-off between threads, and an idle kept-alive connection holds no thread. */

static pthread_mutex_t *lock_of(int fd)
{
    return &srv.stripe[fd % STRIPES];
}

static void arm(int fd, int op)
{
    struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP | EPOLLONESHOT, .data.fd = fd};
    if (epoll_ctl(srv.epfd, op, fd, &ev) < 0) {
        log_msg(LOG_ERROR, "epoll_ctl: %s", strerror(errno));
        srv.state[fd] = CONN_FREE;
        close(fd);
    }
}

/* Accepts until the backlog is empty (the listening socket is edge-triggered). */
static void accept_all(void)
{
    for (int starved = 0;;) {
        int fd = accept4(srv.listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            if ((errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) &&
                starved++ < 100) {
                if (starved == 1)
                    log_msg(LOG_ERROR, "accept: %s", strerror(errno));
                usleep(10000); /* out of descriptors: wait for some to close, keep draining */
                continue;
            }
            return; /* EAGAIN: drained (or another worker took them) */
        }
        if (fd >= MAX_FD) {
            log_msg(LOG_ERROR, "accept: fd %d over the limit of %d connections; closed", fd, MAX_FD);
            close(fd);
            continue;
        }
        struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (!srv.listen_is_unix) {
            int one = 1;
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        }
        pthread_mutex_lock(lock_of(fd));
        if (atomic_load(&srv.final)) {
            close(fd);
        } else { /* accepted while a stop began: it gets the fresh connections' grace */
            srv.state[fd] = CONN_FRESH;
            arm(fd, EPOLL_CTL_ADD);
        }
        pthread_mutex_unlock(lock_of(fd));
    }
}

/* True when a request (or EOF) is waiting on fd. */
static bool readable(int fd)
{
    char c;
    ssize_t n = recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
    return n > 0;
}

/* Called when stopping: closes the listening socket (with systemd's socket,
 * queued connections wait for the next process) and every connection not being served,
 * except — unless `final` — those whose request has arrived (a worker takes them from
 * epoll) and fresh ones that may still send theirs.  Returns how many connections still
 * wait: for a worker, or (fresh) for their request. */
static unsigned wind_down(bool final)
{
    pthread_mutex_lock(&srv.mu);
    if (srv.listen_fd >= 0) {
        epoll_ctl(srv.epfd, EPOLL_CTL_DEL, srv.listen_fd, NULL);
        close(srv.listen_fd);
        srv.listen_fd = -1;
    }
    pthread_mutex_unlock(&srv.mu);
    unsigned waiting = 0;
    for (int fd = 0; fd < MAX_FD; fd++) {
        pthread_mutex_lock(lock_of(fd));
        if (srv.state[fd] == CONN_IDLE || srv.state[fd] == CONN_FRESH) {
            if (!final && readable(fd)) {
                waiting++;
            } else if (srv.state[fd] == CONN_IDLE || final) {
                srv.state[fd] = CONN_FREE;
                close(fd);
            } else {
                waiting++;
            }
        }
        pthread_mutex_unlock(lock_of(fd));
    }
    return waiting;
}

/* ---- workers ---- */

/* Reads whatever input the handler left unread, so the next request on a kept-alive
 * connection starts at a record boundary; a body too big to drain closes the connection. */
static void drain_input(FCGX_Request *req)
{
    char sink[4096];
    size_t total = 0;
    int n;
    while ((n = FCGX_GetStr(sink, sizeof sink, req->in)) > 0) {
        total += (size_t)n;
        if (total > DRAIN_MAX) {
            req->keepConnection = 0;
            return;
        }
    }
}

/* Gives a kept-alive connection back to the epoll set, or closes it when stopping. */
static void rearm_or_close(int fd)
{
    pthread_mutex_lock(lock_of(fd));
    if (atomic_load(&srv.stopping)) {
        srv.state[fd] = CONN_FREE;
        close(fd);
    } else {
        srv.state[fd] = CONN_IDLE;
        arm(fd, EPOLL_CTL_MOD);
    }
    pthread_mutex_unlock(lock_of(fd));
}

/* Serves the requests of one connection whose event this worker received. */
static void serve(int fd, uint32_t events, FCGX_Request *req, void *ctx)
{
    pthread_mutex_lock(lock_of(fd));
    if (srv.state[fd] != CONN_IDLE && srv.state[fd] != CONN_FRESH) {
        pthread_mutex_unlock(lock_of(fd)); /* closed meanwhile by a stop */
        return;
    }
    if ((events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !readable(fd)) {
        /* nginx closed a connection that carries no request */
        srv.state[fd] = CONN_FREE;
        close(fd);
        pthread_mutex_unlock(lock_of(fd));
        return;
    }
    srv.state[fd] = CONN_BUSY;
    pthread_mutex_unlock(lock_of(fd));

    atomic_fetch_add(&srv.busy, 1);
    /* keepConnection = 1 so libfcgi's finish-the-previous-request step keeps fd open. */
    req->keepConnection = 1;
    req->detached = 0;
    req->ipcFd = fd;
    if (FCGX_Accept_r(req) < 0) {
        /* libfcgi closed the connection (EOF or a malformed record); the fd number may
         * already be reused, so its state is not touched here (it stays BUSY, which no one
         * acts on, until accept4 hands the number out again). */
        req->ipcFd = -1;
        atomic_fetch_sub(&srv.busy, 1);
        return;
    }
    srv.app->handle(ctx, req);
    drain_input(req);
    FCGX_Finish_r(req);
    atomic_fetch_sub(&srv.busy, 1);
    if (req->ipcFd >= 0) {
        int kept = req->ipcFd;
        req->ipcFd = -1;
        rearm_or_close(kept);
    }
}

struct worker_arg {
    unsigned index;
};

static void *worker_main(void *argp)
{
    struct worker_arg *arg = argp;
    void *ctx = srv.app->thread_start(arg->index, srv.app->app);
    free(arg);
    FCGX_Request req;
    /* listen_sock -1: if libfcgi ever falls back to accept() it fails at once instead of
     * blocking a worker on the listening socket. */
    FCGX_InitRequest(&req, -1, 0);
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
        if (ev.data.fd == srv.wakefd)
            break; /* final stop: the eventfd stays readable, so every worker sees it */
        if (ev.data.fd == srv.listen_fd) {
            accept_all();
            continue;
        }
        serve(ev.data.fd, ev.events, &req, ctx);
    }
    srv.app->thread_stop(ctx);
    pthread_mutex_lock(&srv.mu);
    srv.running--;
    pthread_cond_broadcast(&srv.exit_cv);
    pthread_mutex_unlock(&srv.mu);
    return NULL;
}

int server_start(int listen_fd, unsigned threads, const struct server_app *app, char *err,
                 size_t errsz)
{
    if (FCGX_Init() != 0) {
        snprintf(err, errsz, "FCGX_Init failed");
        return -1;
    }
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    if (getsockname(listen_fd, (struct sockaddr *)&ss, &sl) == 0)
        srv.listen_is_unix = ss.ss_family == AF_UNIX;
    int fl = fcntl(listen_fd, F_GETFL);
    if (fl < 0 || fcntl(listen_fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        snprintf(err, errsz, "listen socket: %s", strerror(errno));
        return -1;
    }
    srv.listen_fd = listen_fd;
    srv.app = app;
    for (int i = 0; i < STRIPES; i++)
        pthread_mutex_init(&srv.stripe[i], NULL);
    srv.epfd = epoll_create1(EPOLL_CLOEXEC);
    srv.wakefd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (srv.epfd < 0 || srv.wakefd < 0) {
        snprintf(err, errsz, "epoll/eventfd: %s", strerror(errno));
        return -1;
    }
    /* Edge-triggered: a new connection wakes one worker, which accepts until EAGAIN; level
     * triggering woke every idle worker into a failing accept4. */
    struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = listen_fd};
    epoll_ctl(srv.epfd, EPOLL_CTL_ADD, listen_fd, &ev);
    ev.events = EPOLLIN;
    ev.data.fd = srv.wakefd;
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

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

unsigned server_stop(int deadline_ms)
{
    /* 1. No new connections; idle ones closed; what has arrived is still served. */
    atomic_store(&srv.stopping, true);
    unsigned waiting = wind_down(false);
    /* 2. Up to FRESH_GRACE_MS for workers to take the requests that have arrived, and for
     *    fresh connections to send theirs. */
    for (int64_t end = now_ms() + FRESH_GRACE_MS; waiting && now_ms() < end;) {
        usleep(5000);
        waiting = 0;
        for (int fd = 0; fd < MAX_FD; fd++) {
            pthread_mutex_lock(lock_of(fd));
            waiting += srv.state[fd] == CONN_FRESH || (srv.state[fd] == CONN_IDLE && readable(fd));
            pthread_mutex_unlock(lock_of(fd));
        }
    }
    /* 3. Close what is left; workers leave as soon as they are free. */
    atomic_store(&srv.final, true);
    wind_down(true);
    uint64_t one = 1;
    if (srv.wakefd >= 0 && write(srv.wakefd, &one, sizeof one) < 0)
        log_msg(LOG_ERROR, "eventfd write: %s", strerror(errno));

    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    deadline.tv_sec += deadline_ms / 1000;
    deadline.tv_nsec += (long)(deadline_ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&srv.mu);
    while (srv.running > 0) {
        if (pthread_cond_timedwait(&srv.exit_cv, &srv.mu, &deadline) == ETIMEDOUT)
            break;
    }
    unsigned left = srv.running;
    pthread_mutex_unlock(&srv.mu);
    if (left == 0)
        for (unsigned i = 0; i < srv.nworkers; i++)
            pthread_join(srv.workers[i], NULL);
    return left;
}

unsigned server_busy_threads(void)
{
    return atomic_load(&srv.busy);
}
