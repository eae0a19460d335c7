#include "response.h"

#include <stdio.h>
#include <string.h>

void response_reset(struct response *r)
{
    r->status = 0;
    r->content_type = NULL;
    r->csp = NULL;
    buf_reset(&r->head);
    buf_reset(&r->body);
}

void response_free(struct response *r)
{
    buf_free(&r->head);
    buf_free(&r->body);
}

bool response_header(struct response *r, const char *name, const char *value)
{
    for (const unsigned char *p = (const unsigned char *)value; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return false;
    buf_puts(&r->head, name);
    buf_append(&r->head, ": ", 2);
    buf_puts(&r->head, value);
    buf_append(&r->head, "\r\n", 2);
    return true;
}

void response_set(struct response *r, int status, const char *content_type, const char *body)
{
    r->status = status;
    r->content_type = content_type;
    buf_reset(&r->body);
    buf_puts(&r->body, body);
}

const char *http_reason(int status)
{
    switch (status) {
    case 200: return "OK";
    case 204: return "No Content";
    case 302: return "Found";
    case 303: return "See Other";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return "Unknown";
    }
}

int response_send(struct response *r, struct fcgi_request *fcgi, bool head_only)
{
    char line[256];
    int status = r->status ? r->status : 500;
    int n = snprintf(line, sizeof line, "Status: %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n",
                     status, http_reason(status),
                     r->content_type ? r->content_type : "text/plain; charset=utf-8", r->body.len);
    if (n < 0 || (size_t)n >= sizeof line)
        return -1;
    fcgi_stdout(fcgi, line, (size_t)n);
    if (r->head.len)
        fcgi_stdout(fcgi, r->head.data, r->head.len);
    fcgi_stdout(fcgi, "\r\n", 2);
    if (!head_only && r->body.len)
        fcgi_stdout(fcgi, r->body.data, r->body.len);
    return 0;
}

void response_security_headers(struct response *resp)
{
    const char *csp = resp->csp;
    response_header(resp, "Cache-Control", "no-store");
    response_header(resp, "Referrer-Policy", "no-referrer");
    response_header(resp, "X-Content-Type-Options", "nosniff");
    response_header(resp, "X-Frame-Options", "DENY");
    response_header(resp, "Content-Security-Policy",
                    csp ? csp : "default-src 'none'; frame-ancestors 'none'; base-uri 'none'");
}
