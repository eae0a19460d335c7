/* request.h — one FastCGI request, parsed just enough for routing, with every value
 * length-capped.  Values point into the connection's FastCGI parser (fcgi.h) or the
 * request's arena and live until the request is finished. */
#ifndef FBC_REQUEST_H
#define FBC_REQUEST_H

#include <stdbool.h>
#include <stdint.h>

#include "arena.h"
#include "fcgi.h"
#include "url.h"

#define REQUEST_QUERY_MAX 16384  /* longer query strings: 414 */
#define REQUEST_COOKIE_MAX 16384 /* longer Cookie headers: 431 */

struct request {
    struct fcgi_request *fcgi;
    struct arena *arena;
    const char *method;       /* REQUEST_METHOD, "" when absent */
    const char *path;         /* DOCUMENT_URI, "" when absent */
    const char *query;        /* QUERY_STRING, "" when absent */
    size_t query_len;
    const char *cookies;      /* HTTP_COOKIE or NULL */
    const char *content_type; /* CONTENT_TYPE or NULL */
    const char *request_id;   /* REQUEST_ID when it is a sane token, else NULL */
    const char *body;         /* after request_read_body: the body, NUL-terminated */
    size_t body_len;
    int64_t start_us; /* monotonic time the request was taken */
};

/* Fills r from fcgi's params.  Returns 0, or the HTTP status to answer at once (414 for an
 * overlong query string, 431 for an overlong Cookie header). */
int request_init(struct request *r, struct fcgi_request *fcgi, struct arena *a);

/* The FastCGI param `name`, or NULL. */
const char *request_param(const struct request *r, const char *name);

/* Copies the body, at most max bytes, into the arena.  Returns 0, 413 when
 * CONTENT_LENGTH is larger than max (or than the FCGI_STDIN_MAX the server keeps, when
 * more arrived), or 400 when it is malformed or the body is short. */
int request_read_body(struct request *r, size_t max);

/* form_get() on the query string or on the body (read first with request_read_body). */
enum form_status request_query(const struct request *r, const char *name, size_t max_len,
                               const char **value);
enum form_status request_form(const struct request *r, const char *name, size_t max_len,
                              const char **value);

#endif
