/* response.h — an HTTP response built by a handler and framed for FastCGI once. */
#ifndef FBC_RESPONSE_H
#define FBC_RESPONSE_H

#include <stdbool.h>

#include "buf.h"
#include "fcgi.h"

struct response {
    int status;               /* 0 until a handler sets it */
    const char *content_type; /* static string or arena memory */
    const char *csp;          /* Content-Security-Policy for this body; NULL: allow nothing */
    struct buf head;          /* extra header lines, "Name: value\r\n" each */
    struct buf body;
};

/* Empties r for the next request, keeping its buffers. */
void response_reset(struct response *r);
void response_free(struct response *r);

/* Adds a header line.  A value with CR, LF or other control bytes is refused (returns
 * false and adds nothing): header injection is impossible through this call. */
bool response_header(struct response *r, const char *name, const char *value);

/* Sets status, type and a body in one go. */
void response_set(struct response *r, int status, const char *content_type, const char *body);

/* Frames the status line, headers, Content-Length and (unless head_only) the body as
 * fcgi's STDOUT; the server writes it out once the handler returns.  Returns 0, or -1
 * (nothing framed) when the content type is too long for the status block. */
int response_send(struct response *r, struct fcgi_request *fcgi, bool head_only);

/* The headers every response carries: Cache-Control: no-store, Referrer-Policy:
 * no-referrer, nosniff, no framing, and the Content-Security-Policy of its body (r->csp;
 * without one, nothing is allowed). */
void response_security_headers(struct response *r);

/* "OK", "Not Found", … for the statuses fbconnect produces. */
const char *http_reason(int status);

#endif
