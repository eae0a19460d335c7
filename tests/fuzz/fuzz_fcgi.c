/* FastCGI from the socket (fcgi.c).  Two checks per input:
 *
 * 1. The input as a byte stream from the web server, fed whole and in chunks whose sizes
 *    come from the input: never a crash, the buffers never past their caps, every request
 *    within the caps, and every way of splitting gives the same requests, replies and end.
 * 2. A well-formed request built from the input (params with 1- and 4-byte lengths, a
 *    body past the 64 KB cap or not, records of any size with any padding, a GET_VALUES
 *    among them): it parses to exactly what was put in, however it is split. */
#include <stdbool.h>
#include <stdio.h>

#include "buf.h"
#include "fcgi.h"
#include "fuzz_common.h"

static const struct fcgi_limits limits = {.max_conns = 100, .max_reqs = 100};

static void check(bool ok, const char *what)
{
    if (!ok) {
        fprintf(stderr, "fuzz_fcgi: %s\n", what);
        abort();
    }
}

static void check_caps(const struct fcgi_parser *p)
{
    check(p->params.len <= FCGI_PARAMS_MAX && p->params.cap <= FCGI_PARAMS_MAX, "params past the cap");
    check(p->stdin_cap <= FCGI_STDIN_MAX + 1, "stdin buffer past the cap");
    check(p->values.cap <= FCGI_VALUES_MAX, "GET_VALUES buffer past the cap");
}

/* What a run saw: each request as bytes (id, keep, params in order, body), then how it
 * ended, and every reply byte. */
static void record_request(const struct fcgi_request *r, struct buf *ev)
{
    check(r->params_len <= FCGI_PARAMS_MAX && r->stdin_len <= FCGI_STDIN_MAX, "request past the caps");
    check(r->stdin_total >= r->stdin_len && r->stdin_data[r->stdin_len] == '\0', "stdin");
    buf_printf(ev, "R%u/%d/", r->id, r->keep_conn);
    size_t pos = 0, nl, vl;
    const char *n, *v;
    while (fcgi_param_next(r, &pos, &n, &nl, &v, &vl)) {
        check(n[nl] == '\0' && v[vl] == '\0', "params not NUL-terminated");
        check(strlen(n) != nl || fcgi_param(r, n) != NULL, "a param that lookup cannot find");
        buf_printf(ev, "%zu:", nl);
        buf_append(ev, n, nl);
        buf_printf(ev, "%zu:", vl);
        buf_append(ev, v, vl);
    }
    check(pos == r->params_len, "params walk");
    buf_printf(ev, "/%zu/%llu:", r->stdin_len, (unsigned long long)r->stdin_total);
    buf_append(ev, r->stdin_data, r->stdin_len);
}

/* Feeds data in chunks of `chunk` bytes (0: whole), the first one `first` bytes. */
static void run(const uint8_t *data, size_t len, size_t first, size_t chunk, struct buf *ev,
                struct buf *reply)
{
    struct fcgi_parser p;
    fcgi_parser_init(&p, &limits);
    size_t off = 0, end = first && first < len ? first : (chunk ? (chunk < len ? chunk : len) : len);
    bool stopped = false;
    while (!stopped) {
        while (off < end && !stopped) {
            size_t used;
            enum fcgi_result r = fcgi_feed(&p, data + off, end - off, &used, reply);
            check(used <= end - off, "consumed more than it was given");
            check_caps(&p);
            off += used;
            if (r == FCGI_MORE) {
                check(off == end, "FCGI_MORE with input left");
            } else if (r == FCGI_REQUEST) {
                record_request(fcgi_request(&p), ev);
                fcgi_request_done(&p);
            } else {
                buf_puts(ev, r == FCGI_CLOSE ? "CLOSE" : "ERROR");
                check(r == FCGI_CLOSE || fcgi_error(&p), "an error without a reason");
                size_t again;
                check(fcgi_feed(&p, data, len, &again, reply) == r && again == 0, "not final");
                stopped = true;
            }
        }
        if (end == len)
            break;
        size_t step = chunk ? chunk : len;
        end = len - end < step ? len : end + step;
    }
    if (!stopped)
        buf_puts(ev, fcgi_at_rest(&p) ? "REST" : "PARTIAL");
    fcgi_parser_destroy(&p);
}

static void same(const struct buf *a, const struct buf *b, const char *what)
{
    check(a->len == b->len && (a->len == 0 || memcmp(a->data, b->data, a->len) == 0), what);
}

/* Runs data whole and split three ways; returns the whole run's events and replies. */
static void run_split(const uint8_t *data, size_t len, size_t seed, struct buf *ev, struct buf *reply)
{
    run(data, len, 0, 0, ev, reply);
    const size_t ways[3][2] = {{len ? seed % (len + 1) : 0, 0}, {0, 1 + seed % 13}, {1 + seed % 7, 1 + seed % 4093}};
    for (int i = 0; i < 3; i++) {
        if (ways[i][1] && ways[i][1] < 16 && len > 4096)
            continue; /* tiny chunks only on short inputs: each input must stay fast */
        struct buf e = {0}, r = {0};
        run(data, len, ways[i][0], ways[i][1], &e, &r);
        same(&e, ev, "a split changed the requests");
        same(&r, reply, "a split changed the replies");
        buf_free(&e);
        buf_free(&r);
    }
}

/* Reads control bytes from the input, cyclically. */
struct src {
    const uint8_t *data;
    size_t len, pos;
};
static uint8_t next(struct src *s)
{
    if (!s->len)
        return 0;
    uint8_t b = s->data[s->pos % s->len];
    s->pos++;
    return b;
}

/* Appends stream records of content `c` with sizes and padding drawn from s. */
static void stream(struct buf *out, struct src *s, uint8_t type, uint16_t id, const struct buf *c)
{
    for (size_t off = 0; off < c->len;) {
        size_t n = ((size_t)next(s) << 8 | next(s)) % FCGI_CONTENT_MAX + 1; /* 1 .. 65535 */
        if (n > c->len - off)
            n = c->len - off;
        uint8_t pad = next(s);
        uint8_t h[8] = {1, type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(n >> 8), (uint8_t)n, pad, 0};
        buf_append(out, h, 8);
        buf_append(out, c->data + off, n);
        for (unsigned i = 0; i < pad; i++)
            buf_putc(out, (char)next(s));
        off += n;
    }
    fcgi_put_record(out, type, id, "", 0);
}

static void well_formed(const uint8_t *data, size_t size)
{
    struct src s = {data, size, 0};
    uint16_t id = (uint16_t)(next(&s) << 8 | next(&s));
    if (!id)
        id = 1;
    bool keep = next(&s) & 1, values = next(&s) & 1;
    struct buf pairs = {0}, expect = {0}, body = {0}, in = {0};
    size_t stored = 0;
    int npairs = next(&s) % 24;
    buf_printf(&expect, "R%u/%d/", id, keep);
    for (int i = 0; i < npairs; i++) {
        uint8_t a = next(&s), b = next(&s);
        size_t nl = a & 0x80 ? (size_t)(a & 0x7f) * 9 : a % 40;   /* past 127: 4-byte lengths */
        size_t vl = b & 0x80 ? (size_t)(b & 0x7f) * 1031 : b % 64; /* up to 130 KB */
        if (stored + 10 + nl + vl > FCGI_PARAMS_MAX)
            break;
        stored += 10 + nl + vl;
        char *nv = malloc(nl + vl + 1);
        for (size_t k = 0; k < nl + vl; k++)
            nv[k] = (char)next(&s);
        fcgi_put_pair(&pairs, nv, nl, nv + nl, vl);
        buf_printf(&expect, "%zu:", nl);
        buf_append(&expect, nv, nl);
        buf_printf(&expect, "%zu:", vl);
        buf_append(&expect, nv + nl, vl);
        free(nv);
    }
    size_t blen = ((size_t)next(&s) << 8 | next(&s)) * 2; /* up to 128 KB: past the cap too */
    for (size_t k = 0; k < blen; k++)
        buf_putc(&body, (char)next(&s));
    size_t kept = blen < FCGI_STDIN_MAX ? blen : FCGI_STDIN_MAX;
    buf_printf(&expect, "/%zu/%zu:", kept, blen);
    buf_append(&expect, body.data ? body.data : "", kept);
    buf_puts(&expect, "REST");

    uint8_t b[8] = {0, FCGI_RESPONDER, keep ? FCGI_KEEP_CONN : 0};
    fcgi_put_record(&in, FCGI_BEGIN_REQUEST, id, b, 8);
    stream(&in, &s, FCGI_PARAMS, id, &pairs);
    if (values) {
        struct buf q = {0};
        fcgi_put_pair(&q, "FCGI_MPXS_CONNS", 15, "", 0);
        fcgi_put_record(&in, FCGI_GET_VALUES, 0, q.data, q.len);
        buf_free(&q);
    }
    stream(&in, &s, FCGI_STDIN, id, &body);

    struct buf ev = {0}, reply = {0};
    run_split((const uint8_t *)in.data, in.len, size * 31 + s.pos, &ev, &reply);
    same(&ev, &expect, "a well-formed request did not parse to what was put in");
    static const uint8_t values_reply[] = {1, FCGI_GET_VALUES_RESULT, 0, 0, 0, 18, 6, 0,
                                           15, 1, 'F', 'C', 'G', 'I', '_', 'M', 'P', 'X',
                                           'S', '_', 'C', 'O', 'N', 'N', 'S', '0', 0, 0, 0, 0, 0, 0};
    check(values ? reply.len == sizeof values_reply && memcmp(reply.data, values_reply, reply.len) == 0
                 : reply.len == 0,
          "the GET_VALUES reply");
    buf_free(&pairs);
    buf_free(&expect);
    buf_free(&body);
    buf_free(&in);
    buf_free(&ev);
    buf_free(&reply);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct buf ev = {0}, reply = {0};
    run_split(data, size, size ? data[0] * 131u + data[size - 1] : 0, &ev, &reply);
    buf_free(&ev);
    buf_free(&reply);
    well_formed(data, size);
    return 0;
}
