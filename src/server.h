/* server.h — the FastCGI server: a fixed pool of worker threads sharing one epoll set.
 *
 * The epoll set holds the listening socket, a sweep timer and every connection from nginx
 * that is not being served (one-shot).  Each worker waits in epoll_wait; the one woken by
 * a readable connection reads what has arrived (non-blocking) into the connection's
 * FastCGI parser (fcgi.h) and, once a whole request is there, runs the app's handler,
 * writes the answer and puts the connection back.  So neither an idle kept-alive
 * connection nor a half-sent request pins a thread, no request is handed between threads,
 * and shutdown can close idle connections while requests in flight finish.  Connections
 * that stay silent, idle or unfinished too long are closed by the sweep (deadlines in
 * server.c); there is no ceiling on descriptor numbers. */
#ifndef FBC_SERVER_H
#define FBC_SERVER_H

#include <stddef.h>

#include "fcgi.h"

struct server_app {
    /* Called once in each worker thread before it serves; returns that thread's context. */
    void *(*thread_start)(unsigned index, void *app);
    /* Called in the worker thread when it stops. */
    void (*thread_stop)(void *thread_ctx);
    /* Serves one complete request: reads its params and body, frames the whole response
     * with fcgi_stdout() (the server ends the request and writes it out afterwards). */
    void (*handle)(void *thread_ctx, struct fcgi_request *req);
    void *app;
};

/* Opens the listening socket: "unix:/path" (mode 0660, a stale socket file is replaced,
 * a live one is an error) or "HOST:PORT" on a loopback address; or, when started by
 * systemd socket activation (LISTEN_FDS), takes the inherited socket.  Returns the fd, or
 * -1 with a message in err. */
int server_listen(const char *spec, char *err, size_t errsz);

/* Raises RLIMIT_NOFILE's soft limit to the hard limit (and logs the figure), then starts
 * `threads` workers on listen_fd.  Returns 0, or -1 with err set. */
int server_start(int listen_fd, unsigned threads, const struct server_app *app, char *err,
                 size_t errsz);

/* Stops accepting, closes idle connections, lets queued and in-flight requests finish and
 * waits up to deadline_ms for the workers.  Returns how many workers were still busy at
 * the deadline (0 on a clean stop).  Call once, from the main thread. */
unsigned server_stop(int deadline_ms);

/* Workers serving a request right now. */
unsigned server_busy_threads(void);

#endif
