#include "request.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

const char *request_param(const struct request *r, const char *name)
{
    return fcgi_param(r->fcgi, name);
}

/* nginx's $request_id is 32 hex digits; accept any short token of safe characters. */
static const char *sane_request_id(const char *id)
{
    if (!id)
        return NULL;
    size_t n = strspn(id, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.");
    return (n > 0 && n <= 64 && id[n] == '\0') ? id : NULL;
}

int request_init(struct request *r, struct fcgi_request *fcgi, struct arena *a)
{
    memset(r, 0, sizeof *r);
    r->fcgi = fcgi;
    r->arena = a;
    r->start_us = clock_mono_us();
    const char *v;
    r->method = (v = request_param(r, "REQUEST_METHOD")) ? v : "";
    r->path = (v = request_param(r, "DOCUMENT_URI")) ? v : "";
    r->query = (v = request_param(r, "QUERY_STRING")) ? v : "";
    r->query_len = strlen(r->query);
    r->cookies = request_param(r, "HTTP_COOKIE");
    r->content_type = request_param(r, "CONTENT_TYPE");
    r->request_id = sane_request_id(request_param(r, "REQUEST_ID"));
    r->body = "";
    if (r->query_len > REQUEST_QUERY_MAX)
        return 414;
    if (r->cookies && strlen(r->cookies) > REQUEST_COOKIE_MAX)
        return 431;
    return 0;
}

int request_read_body(struct request *r, size_t max)
{
    const char *cl = request_param(r, "CONTENT_LENGTH");
    if (!cl || !*cl) {
        r->body = "";
        r->body_len = 0;
        return 0;
    }
    char *end;
    errno = 0;
    unsigned long long n = strtoull(cl, &end, 10);
    if (errno || *end || cl[0] == '-' || cl[0] == '+')
        return 400;
    if (n > max)
        return 413;
    if (n > r->fcgi->stdin_len) /* short; or cut at FCGI_STDIN_MAX: too large */
        return r->fcgi->stdin_total > r->fcgi->stdin_len ? 413 : 400;
    char *body = arena_alloc(r->arena, (size_t)n + 1);
    memcpy(body, r->fcgi->stdin_data, (size_t)n);
    body[n] = '\0';
    r->body = body;
    r->body_len = (size_t)n;
    return 0;
}

enum form_status request_query(const struct request *r, const char *name, size_t max_len,
                               const char **value)
{
    return form_get(r->arena, r->query, r->query_len, name, max_len, value, NULL);
}

enum form_status request_form(const struct request *r, const char *name, size_t max_len,
                              const char **value)
{
    return form_get(r->arena, r->body, r->body_len, name, max_len, value, NULL);
}
