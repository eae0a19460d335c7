#include "sandbox/http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "buf.h"
#include "fcgi.h"
#include "log.h"

#define HEAD_MAX (64 * 1024)
#define BODY_MAX (64 * 1024)

static struct {
    int fd;
    const struct server_app *app;
} http = {.fd = -1};

/* Reads until the blank line that ends the head, then Content-Length bytes of body.  The
 * whole request ends up in in; *head_len is the head's length.  False on EOF, an error
 * or a request too large. */
static bool read_request(int fd, struct buf *in, size_t *head_len, size_t *body_len)
{
    char chunk[4096];
    for (;;) {
        const char *end = in->len ? memmem(in->data, in->len, "\r\n\r\n", 4) : NULL;
        if (end && !*head_len) {
            *head_len = (size_t)(end - in->data) + 4;
            const char *cl = memmem(in->data, *head_len, "\r\nContent-Length:", 17);
            if (!cl)
                cl = memmem(in->data, *head_len, "\r\ncontent-length:", 17);
            *body_len = cl ? strtoul(cl + 17, NULL, 10) : 0;
            if (*body_len > BODY_MAX)
                return false;
        }
        if (*head_len && in->len >= *head_len + *body_len)
            return true;
        if (in->len > HEAD_MAX + BODY_MAX)
            return false;
        ssize_t n = recv(fd, chunk, sizeof chunk, 0);
        if (n <= 0) {
            if (n < 0 && errno == EINTR)
                continue;
            return false;
        }
        buf_append(in, chunk, (size_t)n);
    }
}

static void put_param(struct buf *params, const char *name, const char *value, size_t value_len)
{
    fcgi_put_pair(params, name, strlen(name), value, value_len);
}

/* The FastCGI request nginx would send for this HTTP request (head and body in `in`). */
static bool to_fastcgi(const struct buf *in, size_t head_len, size_t body_len, struct buf *out)
{
    struct buf params = {0};
    char *head = strndup(in->data, head_len);
    char *save = NULL;
    char *line = strtok_r(head, "\r\n", &save);
    char method[16], target[8192];
    if (!line || sscanf(line, "%15s %8191s HTTP/1.%*c", method, target) != 2) {
        free(head);
        return false;
    }
    char *query = strchr(target, '?');
    if (query)
        *query++ = '\0';
    put_param(&params, "REQUEST_METHOD", method, strlen(method));
    put_param(&params, "DOCUMENT_URI", target, strlen(target));
    put_param(&params, "QUERY_STRING", query ? query : "", query ? strlen(query) : 0);
    while ((line = strtok_r(NULL, "\r\n", &save))) {
        char *colon = strchr(line, ':');
        if (!colon)
            continue;
        *colon = '\0';
        const char *value = colon + 1;
        while (*value == ' ')
            value++;
        if (strcasecmp(line, "Content-Type") == 0) {
            put_param(&params, "CONTENT_TYPE", value, strlen(value));
        } else if (strcasecmp(line, "Content-Length") == 0) {
            put_param(&params, "CONTENT_LENGTH", value, strlen(value));
        } else {
            char name[256];
            int n = snprintf(name, sizeof name, "HTTP_%s", line);
            for (int i = 5; i < n && i < (int)sizeof name - 1; i++)
                name[i] = name[i] == '-' ? '_' : (char)toupper((unsigned char)name[i]);
            if (n > 0 && (size_t)n < sizeof name)
                put_param(&params, name, value, strlen(value));
        }
    }
    free(head);
    static const uint8_t begin[8] = {0, 1 /* responder */, 0 /* no keep-conn */};
    fcgi_put_record(out, FCGI_BEGIN_REQUEST, 1, begin, sizeof begin);
    for (size_t off = 0; off < params.len; off += FCGI_CONTENT_MAX) {
        size_t n = params.len - off < FCGI_CONTENT_MAX ? params.len - off : FCGI_CONTENT_MAX;
        fcgi_put_record(out, FCGI_PARAMS, 1, params.data + off, n);
    }
    fcgi_put_record(out, FCGI_PARAMS, 1, NULL, 0);
    const char *body = in->data + head_len;
    for (size_t off = 0; off < body_len; off += FCGI_CONTENT_MAX) {
        size_t n = body_len - off < FCGI_CONTENT_MAX ? body_len - off : FCGI_CONTENT_MAX;
        fcgi_put_record(out, FCGI_STDIN, 1, body + off, n);
    }
    fcgi_put_record(out, FCGI_STDIN, 1, NULL, 0);
    buf_free(&params);
    return true;
}

/* The HTTP answer for the handler's FastCGI records (STDOUT: "Status: …" and headers). */
static void to_http(const struct buf *records, struct buf *out)
{
    struct buf cgi = {0};
    for (size_t at = 0; at + FCGI_HEADER_LEN <= records->len;) {
        const uint8_t *h = (const uint8_t *)records->data + at;
        size_t clen = (size_t)h[4] << 8 | h[5], plen = h[6];
        if (h[1] == FCGI_STDOUT && at + FCGI_HEADER_LEN + clen <= records->len)
            buf_append(&cgi, (const char *)h + FCGI_HEADER_LEN, clen);
        at += FCGI_HEADER_LEN + clen + plen;
    }
    const char *status = cgi.len > 8 && strncmp(cgi.data, "Status: ", 8) == 0 ? cgi.data + 8 : "500 Internal Server Error\r\n";
    const char *eol = strstr(status, "\r\n");
    buf_printf(out, "HTTP/1.1 %.*s\r\nConnection: close\r\n", eol ? (int)(eol - status) : 3, status);
    const char *rest = eol ? eol + 2 : "";
    if (cgi.len)
        buf_append(out, rest, cgi.len - (size_t)(rest - cgi.data));
    buf_free(&cgi);
}

static void *serve_one(void *arg)
{
    int fd = (int)(intptr_t)arg;
    void *ctx = http.app->thread_start(0, http.app->app);
    struct buf in = {0}, fc = {0}, reply = {0}, answer = {0};
    size_t head_len = 0, body_len = 0;
    if (read_request(fd, &in, &head_len, &body_len) && to_fastcgi(&in, head_len, body_len, &fc)) {
        struct fcgi_parser p;
        struct fcgi_limits limits = {1, 1};
        fcgi_parser_init(&p, &limits);
        size_t used = 0;
        if (fcgi_feed(&p, fc.data, fc.len, &used, &reply) == FCGI_REQUEST) {
            struct fcgi_request *req = fcgi_request(&p);
            req->out = &reply;
            http.app->handle(ctx, req);
            fcgi_end_request(req, 0);
            to_http(&reply, &answer);
            for (size_t off = 0; off < answer.len;) {
                ssize_t n = send(fd, answer.data + off, answer.len - off, MSG_NOSIGNAL);
                if (n <= 0)
                    break;
                off += (size_t)n;
            }
        }
        fcgi_parser_destroy(&p);
    }
    close(fd);
    buf_free(&in);
    buf_free(&fc);
    buf_free(&reply);
    buf_free(&answer);
    http.app->thread_stop(ctx);
    return NULL;
}

static void *accept_loop(void *unused)
{
    (void)unused;
    for (;;) {
        int fd = accept(http.fd, NULL, NULL);
        if (fd < 0) {
            if (errno == EINTR || errno == ECONNABORTED)
                continue;
            return NULL;
        }
        pthread_t t;
        if (pthread_create(&t, NULL, serve_one, (void *)(intptr_t)fd) != 0)
            close(fd);
        else
            pthread_detach(t);
    }
}

int sandbox_http_start(const char *spec, const struct server_app *app, char *err, size_t errsz)
{
    const char *colon = strrchr(spec, ':');
    if (!colon || strncmp(spec, "127.0.0.1:", 10) != 0 || atoi(colon + 1) <= 0) {
        snprintf(err, errsz, "FBSANDBOX_HTTP_LISTEN: expected 127.0.0.1:PORT (loopback only)");
        return -1;
    }
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(colon + 1))};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || listen(fd, 128) < 0) {
        snprintf(err, errsz, "FBSANDBOX_HTTP_LISTEN: %s: %s", spec, strerror(errno));
        if (fd >= 0)
            close(fd);
        return -1;
    }
    http.fd = fd;
    http.app = app;
    pthread_t t;
    if (pthread_create(&t, NULL, accept_loop, NULL) != 0) {
        snprintf(err, errsz, "FBSANDBOX_HTTP_LISTEN: cannot start its thread");
        return -1;
    }
    pthread_detach(t);
    return 0;
}
