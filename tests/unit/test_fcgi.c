/* test_fcgi.c — the FastCGI parser and writer (fcgi.c): tables of good and bad inputs,
 * each fed whole, split at every byte boundary (two chunks), and in chunks of 1, 3 and 7
 * bytes, which must all give the same requests, replies and end state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "fcgi.h"

static const struct fcgi_limits limits = {.max_conns = 900, .max_reqs = 900};

/* ---------------------------------------------------------------- building input */

/* One record with an explicit padding length (fcgi_put_record pads to 8 itself). */
static void rec_pad(struct buf *b, uint8_t type, uint16_t id, const void *content, size_t len,
                    uint8_t pad)
{
    uint8_t h[8] = {1, type, (uint8_t)(id >> 8), (uint8_t)id, (uint8_t)(len >> 8), (uint8_t)len, pad, 0};
    buf_append(b, h, 8);
    buf_append(b, content, len);
    for (unsigned i = 0; i < pad; i++)
        buf_putc(b, (char)0xee); /* padding bytes carry nothing: any value */
}

static void rec(struct buf *b, uint8_t type, uint16_t id, const void *content, size_t len)
{
    fcgi_put_record(b, type, id, content, len);
}

static void begin(struct buf *b, uint16_t id, uint16_t role, uint8_t flags)
{
    uint8_t body[8] = {(uint8_t)(role >> 8), (uint8_t)role, flags};
    rec(b, FCGI_BEGIN_REQUEST, id, body, 8);
}

static void pair(struct buf *b, const char *name, const char *value)
{
    fcgi_put_pair(b, name, strlen(name), value, strlen(value));
}

/* A stream's content, cut into records of at most 65535 bytes, then the empty record. */
static void stream(struct buf *b, uint8_t type, uint16_t id, const struct buf *content)
{
    for (size_t off = 0; off < content->len; off += 65535) {
        size_t n = content->len - off < 65535 ? content->len - off : 65535;
        rec(b, type, id, content->data + off, n);
    }
    rec(b, type, id, "", 0);
}

/* A whole GET request for `path` with a few params, keep-conn. */
static void simple_request(struct buf *b, uint16_t id, const char *path, uint8_t flags)
{
    begin(b, id, FCGI_RESPONDER, flags);
    struct buf p = {0};
    pair(&p, "REQUEST_METHOD", "GET");
    pair(&p, "DOCUMENT_URI", path);
    pair(&p, "QUERY_STRING", "");
    stream(b, FCGI_PARAMS, id, &p);
    rec(b, FCGI_STDIN, id, "", 0);
    buf_free(&p);
}

/* ---------------------------------------------------------------- running the parser */

/* Appends a short printable picture of bytes: themselves when short and printable, else
 * their length and a checksum. */
static void picture(struct buf *out, const char *p, size_t n)
{
    bool plain = n <= 40;
    for (size_t i = 0; plain && i < n; i++)
        plain = p[i] >= 0x20 && p[i] < 0x7f && p[i] != ';' && p[i] != '=';
    if (plain) {
        buf_append(out, p, n);
        return;
    }
    uint32_t sum = 2166136261u;
    for (size_t i = 0; i < n; i++)
        sum = (sum ^ (uint8_t)p[i]) * 16777619u;
    buf_printf(out, "<%zu:%08x>", n, sum);
}

/* Decodes the reply records into text, checking each is well-formed. */
static void describe_replies(const struct buf *r, struct buf *out)
{
    const uint8_t *p = (const uint8_t *)r->data;
    size_t off = 0;
    while (off < r->len) {
        assert_true(r->len - off >= 8);
        const uint8_t *h = p + off;
        assert_int_equal(h[0], 1);
        size_t clen = (size_t)(h[4] << 8 | h[5]), pad = h[6];
        assert_int_equal((clen + pad) % 8, 0);
        assert_true(off + 8 + clen + pad <= r->len);
        const uint8_t *c = h + 8;
        uint16_t id = (uint16_t)(h[2] << 8 | h[3]);
        switch (h[1]) {
        case FCGI_END_REQUEST:
            assert_int_equal(clen, 8);
            buf_printf(out, "END %u app=%u st=%u;", id,
                       (unsigned)(c[0] << 24 | c[1] << 16 | c[2] << 8 | c[3]), c[4]);
            break;
        case FCGI_UNKNOWN_TYPE:
            assert_int_equal(id, 0);
            assert_int_equal(clen, 8);
            buf_printf(out, "UNKNOWN %u;", c[0]);
            break;
        case FCGI_GET_VALUES_RESULT: {
            assert_int_equal(id, 0);
            buf_puts(out, "VALUES");
            for (size_t i = 0; i < clen;) { /* the values we send have 1-byte lengths */
                size_t nl = c[i], vl = c[i + 1];
                buf_printf(out, " %.*s=%.*s", (int)nl, c + i + 2, (int)vl, c + i + 2 + nl);
                i += 2 + nl + vl;
            }
            buf_puts(out, ";");
            break;
        }
        default:
            fail_msg("unexpected reply record type %u", h[1]);
        }
        off += 8 + clen + pad;
    }
}

/* Appends what a complete request holds. */
static void describe_request(const struct fcgi_request *r, struct buf *ev)
{
    assert_true(r->params_len <= FCGI_PARAMS_MAX);
    assert_true(r->stdin_len <= FCGI_STDIN_MAX);
    assert_true(r->stdin_total >= r->stdin_len);
    assert_int_equal(r->stdin_data[r->stdin_len], '\0');
    buf_printf(ev, "REQ %u keep=%d [", r->id, r->keep_conn);
    size_t pos = 0, nl, vl;
    const char *n, *v;
    while (fcgi_param_next(r, &pos, &n, &nl, &v, &vl)) {
        assert_int_equal(n[nl], '\0');
        assert_int_equal(v[vl], '\0');
        picture(ev, n, nl);
        buf_putc(ev, '=');
        picture(ev, v, vl);
        buf_putc(ev, ';');
    }
    buf_puts(ev, "] stdin=");
    picture(ev, r->stdin_data, r->stdin_len);
    if (r->stdin_total != r->stdin_len)
        buf_printf(ev, " of %llu", (unsigned long long)r->stdin_total);
    buf_puts(ev, ";");
}

struct outcome {
    struct buf events;  /* requests, then CLOSE/ERROR, then the final state */
    struct buf replies; /* raw reply bytes */
};

/* Feeds in[0..len) in the chunks cut[] describes (ncut cut points), answering every
 * request (fcgi_request_done) as it completes. */
static void run_cuts(const uint8_t *in, size_t len, const size_t *cut, size_t ncut,
                     struct outcome *o)
{
    struct fcgi_parser p;
    fcgi_parser_init(&p, &limits);
    size_t start = 0;
    bool stopped = false;
    for (size_t k = 0; k <= ncut && !stopped; k++) {
        size_t end = k < ncut ? cut[k] : len;
        size_t off = start;
        while (off < end && !stopped) {
            size_t used = 999999;
            enum fcgi_result r = fcgi_feed(&p, in + off, end - off, &used, &o->replies);
            assert_true(used <= end - off);
            off += used;
            switch (r) {
            case FCGI_MORE:
                assert_int_equal(off, end);
                break;
            case FCGI_REQUEST: {
                struct fcgi_request *req = fcgi_request(&p);
                assert_non_null(req);
                /* fed again before it is done: nothing consumed, the same answer */
                size_t again = 1;
                assert_int_equal(fcgi_feed(&p, in + off, end - off, &again, &o->replies), FCGI_REQUEST);
                assert_int_equal(again, 0);
                describe_request(req, &o->events);
                fcgi_request_done(&p);
                assert_null(fcgi_request(&p));
                break;
            }
            case FCGI_CLOSE:
            case FCGI_ERROR: {
                buf_puts(&o->events, r == FCGI_CLOSE ? "CLOSE;" : "ERROR;");
                assert_true(r == FCGI_CLOSE || fcgi_error(&p) != NULL);
                size_t again = 1;
                assert_int_equal(fcgi_feed(&p, in, len, &again, &o->replies), r); /* final */
                assert_int_equal(again, 0);
                stopped = true;
                break;
            }
            }
        }
        start = end;
    }
    if (!stopped)
        buf_printf(&o->events, "%s", fcgi_at_rest(&p) ? "REST" : "PARTIAL");
    fcgi_parser_destroy(&p);
}

static void outcome_free(struct outcome *o)
{
    buf_free(&o->events);
    buf_free(&o->replies);
}

/* Runs in[] whole, then split in every way the size allows, checking each way gives what
 * the whole run gave; returns the whole run's events and decoded replies. */
static void run_all_ways(const uint8_t *in, size_t len, struct buf *events, struct buf *replies)
{
    struct outcome whole = {0};
    run_cuts(in, len, NULL, 0, &whole);
    /* every two-chunk split (all of them for small inputs, a spread for large ones) */
    size_t step = len <= 4096 ? 1 : len / 1500 + 1;
    for (size_t k = 0; k <= len; k += step) {
        struct outcome o = {0};
        run_cuts(in, len, &k, 1, &o);
        if (strcmp(buf_cstr(&o.events), buf_cstr(&whole.events)) != 0)
            fail_msg("split at %zu: %s\nwhole: %s", k, buf_cstr(&o.events), buf_cstr(&whole.events));
        assert_int_equal(o.replies.len, whole.replies.len);
        assert_memory_equal(o.replies.data ? o.replies.data : "", whole.replies.data ? whole.replies.data : "",
                            whole.replies.len);
        outcome_free(&o);
    }
    /* small chunks throughout */
    static const size_t sizes[] = {1, 3, 7, 4096};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        size_t ncut = len / sizes[s];
        size_t *cuts = malloc((ncut + 1) * sizeof *cuts);
        for (size_t i = 0; i < ncut; i++)
            cuts[i] = (i + 1) * sizes[s];
        struct outcome o = {0};
        run_cuts(in, len, cuts, ncut, &o);
        if (strcmp(buf_cstr(&o.events), buf_cstr(&whole.events)) != 0)
            fail_msg("chunks of %zu: %s\nwhole: %s", sizes[s], buf_cstr(&o.events), buf_cstr(&whole.events));
        assert_int_equal(o.replies.len, whole.replies.len);
        outcome_free(&o);
        free(cuts);
    }
    buf_puts(events, buf_cstr(&whole.events));
    describe_replies(&whole.replies, replies);
    outcome_free(&whole);
}

/* ---------------------------------------------------------------- the table */

struct parse_case {
    const char *name;
    void (*build)(struct buf *b);
    const char *events;  /* requests, CLOSE/ERROR, or the end state REST/PARTIAL */
    const char *replies; /* decoded reply records */
};

#define SIMPLE_PARAMS "REQUEST_METHOD=GET;DOCUMENT_URI=/healthz;QUERY_STRING=;"

static void b_simple(struct buf *b) { simple_request(b, 1, "/healthz", FCGI_KEEP_CONN); }
static void b_no_keep(struct buf *b) { simple_request(b, 7, "/healthz", 0); }
static void b_high_id(struct buf *b) { simple_request(b, 65535, "/healthz", FCGI_KEEP_CONN); }

static void b_body(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf p = {0};
    pair(&p, "CONTENT_LENGTH", "9");
    stream(b, FCGI_PARAMS, 1, &p);
    rec(b, FCGI_STDIN, 1, "csrf-", 5); /* a body over two records */
    rec(b, FCGI_STDIN, 1, "abcd", 4);
    rec(b, FCGI_STDIN, 1, "", 0);
    buf_free(&p);
}

/* Every record with padding it does not need (up to 255 bytes). */
static void b_padding(struct buf *b)
{
    uint8_t body[8] = {0, 1, 1};
    rec_pad(b, FCGI_BEGIN_REQUEST, 3, body, 8, 255);
    struct buf p = {0};
    pair(&p, "A", "b");
    rec_pad(b, FCGI_PARAMS, 3, p.data, p.len, 1);
    rec_pad(b, FCGI_PARAMS, 3, "", 0, 8);
    rec_pad(b, FCGI_STDIN, 3, "xy", 2, 0);
    rec_pad(b, FCGI_STDIN, 3, "", 0, 7);
    buf_free(&p);
}

/* 4-byte lengths: a 200-byte name, a 100,000-byte value over two PARAMS records, a pair
 * split across records. */
static void b_long_lengths(struct buf *b)
{
    begin(b, 2, FCGI_RESPONDER, FCGI_KEEP_CONN);
    char name[200], *value = malloc(100000);
    memset(name, 'N', sizeof name);
    for (size_t i = 0; i < 100000; i++)
        value[i] = (char)('a' + i % 26);
    struct buf p = {0};
    pair(&p, "SHORT", "1");
    fcgi_put_pair(&p, name, sizeof name, value, 100000);
    fcgi_put_pair(&p, "V127", 4, value, 127);
    fcgi_put_pair(&p, "V128", 4, value, 128);
    stream(b, FCGI_PARAMS, 2, &p);
    rec(b, FCGI_STDIN, 2, "", 0);
    buf_free(&p);
    free(value);
}

/* A length written with 4 bytes though it is short: still valid. */
static void b_long_form_short_length(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    static const uint8_t p[] = {0x80, 0, 0, 2, 0x80, 0, 0, 1, 'A', 'B', 'c'};
    rec(b, FCGI_PARAMS, 1, p, sizeof p);
    rec(b, FCGI_PARAMS, 1, "", 0);
    rec(b, FCGI_STDIN, 1, "", 0);
}

static void b_empty_names_and_values(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf p = {0};
    pair(&p, "", "");
    pair(&p, "EMPTY", "");
    pair(&p, "", "nameless");
    fcgi_put_pair(&p, "NUL", 3, "a\0b", 3);
    stream(b, FCGI_PARAMS, 1, &p);
    rec(b, FCGI_STDIN, 1, "", 0);
    buf_free(&p);
}

static void b_no_params(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    rec(b, FCGI_PARAMS, 1, "", 0);
    rec(b, FCGI_STDIN, 1, "", 0);
}

/* STDIN before the params end, and the body's end before theirs. */
static void b_interleaved(struct buf *b)
{
    begin(b, 4, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf p1 = {0}, p2 = {0};
    pair(&p1, "A", "1");
    pair(&p2, "B", "2");
    rec(b, FCGI_PARAMS, 4, p1.data, p1.len);
    rec(b, FCGI_STDIN, 4, "body", 4);
    rec(b, FCGI_STDIN, 4, "", 0);
    rec(b, FCGI_PARAMS, 4, p2.data, p2.len);
    rec(b, FCGI_PARAMS, 4, "", 0);
    buf_free(&p1);
    buf_free(&p2);
}

/* Three requests back to back (pipelined) on one connection. */
static void b_pipelined(struct buf *b)
{
    simple_request(b, 1, "/a", FCGI_KEEP_CONN);
    simple_request(b, 2, "/b", FCGI_KEEP_CONN);
    simple_request(b, 1, "/c", 0);
}

/* A body larger than FCGI_STDIN_MAX: the first 64 KB are kept, all are counted. */
static void b_stdin_over_cap(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    rec(b, FCGI_PARAMS, 1, "", 0);
    struct buf body = {0};
    for (int i = 0; i < 70000; i++)
        buf_putc(&body, (char)('0' + i % 10));
    stream(b, FCGI_STDIN, 1, &body);
    buf_free(&body);
}

/* Params just under the cap (stored size: 10 bytes per pair plus names and values). */
static void b_params_at_cap(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    size_t vlen = FCGI_PARAMS_MAX - 10 - 1;
    char *value = malloc(vlen);
    memset(value, 'v', vlen);
    struct buf p = {0};
    fcgi_put_pair(&p, "X", 1, value, vlen);
    stream(b, FCGI_PARAMS, 1, &p);
    rec(b, FCGI_STDIN, 1, "", 0);
    buf_free(&p);
    free(value);
}

static void b_duplicate_param(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf p = {0};
    pair(&p, "HTTP_COOKIE", "first");
    pair(&p, "HTTP_COOKIE", "second");
    stream(b, FCGI_PARAMS, 1, &p);
    rec(b, FCGI_STDIN, 1, "", 0);
    buf_free(&p);
}

static void b_get_values(struct buf *b)
{
    struct buf q = {0};
    pair(&q, "FCGI_MAX_CONNS", "");
    pair(&q, "FCGI_MPXS_CONNS", "");
    pair(&q, "FCGI_MAX_REQS", "");
    pair(&q, "FCGI_UNHEARD_OF", "");
    pair(&q, "FCGI_MAX_CONNS", ""); /* asked twice, answered once */
    rec(b, FCGI_GET_VALUES, 0, q.data, q.len);
    rec(b, FCGI_GET_VALUES, 0, "", 0); /* asks for nothing */
    buf_free(&q);
    simple_request(b, 1, "/healthz", FCGI_KEEP_CONN); /* and the connection goes on */
}

/* GET_VALUES in the middle of a request is answered at once. */
static void b_get_values_mid_request(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf q = {0};
    pair(&q, "FCGI_MPXS_CONNS", "");
    rec(b, FCGI_GET_VALUES, 0, q.data, q.len);
    rec(b, FCGI_PARAMS, 1, "", 0);
    rec(b, FCGI_STDIN, 1, "", 0);
    buf_free(&q);
}

static void b_unknown_management(struct buf *b)
{
    rec(b, 99, 0, "whatever", 8);
    rec(b, FCGI_BEGIN_REQUEST, 0, "12345678", 8); /* id 0 is management: unknown there */
    rec(b, FCGI_STDOUT, 0, "", 0);
    simple_request(b, 1, "/healthz", FCGI_KEEP_CONN);
}

/* A second request id while one is open: refused, its records ignored, the first served. */
static void b_multiplexed(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    begin(b, 2, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf p = {0};
    pair(&p, "WHO", "two");
    stream(b, FCGI_PARAMS, 2, &p);
    rec(b, FCGI_STDIN, 2, "", 0);
    buf_reset(&p);
    pair(&p, "WHO", "one");
    stream(b, FCGI_PARAMS, 1, &p);
    rec(b, FCGI_STDIN, 1, "", 0);
    buf_free(&p);
}

static void b_unknown_role_keep(struct buf *b)
{
    begin(b, 5, 2 /* AUTHORIZER */, FCGI_KEEP_CONN);
    rec(b, FCGI_PARAMS, 5, "", 0); /* not open: ignored */
    rec(b, FCGI_STDIN, 5, "", 0);
    simple_request(b, 6, "/healthz", FCGI_KEEP_CONN);
}

static void b_unknown_role_close(struct buf *b)
{
    begin(b, 5, 3 /* FILTER */, 0);
    simple_request(b, 6, "/healthz", FCGI_KEEP_CONN); /* never read */
}

/* The refusal is answered at once; the close waits for the record's padding (found by
 * fuzz_fcgi: a split there used to close early). */
static void b_unknown_role_close_padding_short(struct buf *b)
{
    uint8_t body[8] = {0, 42, 0};
    rec_pad(b, FCGI_BEGIN_REQUEST, 5, body, 8, 255);
    b->len -= 251; /* 4 of the 255 padding bytes arrived */
}

static void b_abort_keep(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf p = {0};
    pair(&p, "A", "1");
    rec(b, FCGI_PARAMS, 1, p.data, p.len);
    rec(b, FCGI_ABORT_REQUEST, 1, "", 0);
    rec(b, FCGI_PARAMS, 1, "", 0); /* no longer open: ignored */
    buf_free(&p);
    simple_request(b, 1, "/after", FCGI_KEEP_CONN);
}

static void b_abort_close(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, 0);
    rec(b, FCGI_ABORT_REQUEST, 1, "", 0);
    simple_request(b, 2, "/never", FCGI_KEEP_CONN);
}

/* An abort for an id that is not open, DATA, and records for strangers: all ignored. */
static void b_ignored(struct buf *b)
{
    rec(b, FCGI_ABORT_REQUEST, 9, "", 0);
    rec(b, FCGI_PARAMS, 9, "\x01\x01xy", 4);
    rec(b, FCGI_STDIN, 9, "zzz", 3);
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    rec(b, FCGI_DATA, 1, "filter data", 11);
    rec(b, FCGI_PARAMS, 1, "", 0);
    rec(b, FCGI_STDIN, 1, "", 0);
}

/* A request still arriving at the end of the input. */
static void b_partial(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf p = {0};
    pair(&p, "A", "1");
    rec(b, FCGI_PARAMS, 1, p.data, p.len);
    buf_free(&p);
}

static void b_partial_header(struct buf *b)
{
    simple_request(b, 1, "/healthz", FCGI_KEEP_CONN);
    buf_append(b, "\x01\x01\x00", 3);
}

/* ---- malformed ---- */

static void b_bad_version(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    b->data[0] = 2;
}
static void b_version_zero(struct buf *b) { buf_append(b, "\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0", 16); }
static void b_http(struct buf *b) { buf_puts(b, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); }

static void b_begin_short(struct buf *b) { rec(b, FCGI_BEGIN_REQUEST, 1, "\0\1\1", 3); }
static void b_begin_long(struct buf *b)
{
    static char big[65535];
    big[1] = 1;
    rec_pad(b, FCGI_BEGIN_REQUEST, 1, big, sizeof big, 0);
}

static void b_begin_twice(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
}

static void b_params_over_cap(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    size_t vlen = FCGI_PARAMS_MAX - 10; /* one byte over with its 1-byte name */
    char *value = malloc(vlen);
    memset(value, 'v', vlen);
    struct buf p = {0};
    fcgi_put_pair(&p, "X", 1, value, vlen);
    stream(b, FCGI_PARAMS, 1, &p);
    rec(b, FCGI_STDIN, 1, "", 0);
    buf_free(&p);
    free(value);
}

/* Many small pairs that together pass the cap. */
static void b_params_over_cap_many(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf p = {0};
    for (int i = 0; i < 13200; i++) /* 10 + 1 + 0 bytes stored each: 145,200 > 131,072 */
        pair(&p, "X", "");
    stream(b, FCGI_PARAMS, 1, &p);
    rec(b, FCGI_STDIN, 1, "", 0);
    buf_free(&p);
}

/* A 4-byte length near 2^31: refused when the length is read, not after 2 GB. */
static void b_params_huge_length(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    static const uint8_t p[] = {0x01, 0xff, 0xff, 0xff, 0xff, 'A'};
    rec(b, FCGI_PARAMS, 1, p, sizeof p);
}

static void b_params_do_not_add_up(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    rec(b, FCGI_PARAMS, 1, "\x05\x03" "ab", 4); /* announces 8 bytes, carries 2 */
    rec(b, FCGI_PARAMS, 1, "", 0);
}

static void b_params_half_length(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    rec(b, FCGI_PARAMS, 1, "\x01\x81\x00", 3); /* a 4-byte value length cut short */
    rec(b, FCGI_PARAMS, 1, "", 0);
}

static void b_params_after_end(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    rec(b, FCGI_PARAMS, 1, "", 0);
    rec(b, FCGI_PARAMS, 1, "\x01\x01xy", 4);
}

static void b_stdin_after_end(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    rec(b, FCGI_STDIN, 1, "", 0);
    rec(b, FCGI_STDIN, 1, "late", 4);
}

static void b_stdout_from_server(struct buf *b)
{
    begin(b, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    rec(b, FCGI_STDOUT, 1, "hi", 2);
}

static void b_type_zero(struct buf *b) { rec(b, 0, 1, "", 0); }
static void b_type_unknown(struct buf *b) { rec(b, 200, 1, "", 0); }
static void b_values_nonzero_id(struct buf *b) { rec(b, FCGI_GET_VALUES, 1, "", 0); }

static void b_values_too_long(struct buf *b)
{
    char name[2000];
    memset(name, 'F', sizeof name);
    struct buf q = {0};
    fcgi_put_pair(&q, name, sizeof name, "", 0);
    rec(b, FCGI_GET_VALUES, 0, q.data, q.len);
    buf_free(&q);
}

static void b_values_do_not_add_up(struct buf *b) { rec(b, FCGI_GET_VALUES, 0, "\x0e\x00" "FCGI", 6); }

/* An error after a good request: the request is served first. */
static void b_good_then_garbage(struct buf *b)
{
    simple_request(b, 1, "/healthz", FCGI_KEEP_CONN);
    buf_puts(b, "garbage!");
}

static const struct parse_case cases[] = {
    {"simple", b_simple, "REQ 1 keep=1 [" SIMPLE_PARAMS "] stdin=;REST", ""},
    {"no keep-conn", b_no_keep, "REQ 7 keep=0 [" SIMPLE_PARAMS "] stdin=;REST", ""},
    {"request id 65535", b_high_id, "REQ 65535 keep=1 [" SIMPLE_PARAMS "] stdin=;REST", ""},
    {"body over two records", b_body, "REQ 1 keep=1 [CONTENT_LENGTH=9;] stdin=csrf-abcd;REST", ""},
    {"padding", b_padding, "REQ 3 keep=1 [A=b;] stdin=xy;REST", ""},
    {"4-byte lengths", b_long_lengths,
     "REQ 2 keep=1 [SHORT=1;<200:78625de5>=<100000:c9316269>;V127=<127:f7bd201f>;V128=<128:65ba0225>;] stdin=;REST", ""},
    {"4-byte form of a short length", b_long_form_short_length, "REQ 1 keep=1 [AB=c;] stdin=;REST", ""},
    {"empty names and values", b_empty_names_and_values,
     "REQ 1 keep=1 [=;EMPTY=;=nameless;NUL=<3:10f3abd2>;] stdin=;REST", ""},
    {"no params", b_no_params, "REQ 1 keep=1 [] stdin=;REST", ""},
    {"interleaved streams", b_interleaved, "REQ 4 keep=1 [A=1;B=2;] stdin=body;REST", ""},
    {"pipelined", b_pipelined,
     "REQ 1 keep=1 [REQUEST_METHOD=GET;DOCUMENT_URI=/a;QUERY_STRING=;] stdin=;"
     "REQ 2 keep=1 [REQUEST_METHOD=GET;DOCUMENT_URI=/b;QUERY_STRING=;] stdin=;"
     "REQ 1 keep=0 [REQUEST_METHOD=GET;DOCUMENT_URI=/c;QUERY_STRING=;] stdin=;REST", ""},
    {"stdin over the cap", b_stdin_over_cap, "REQ 1 keep=1 [] stdin=<65536:999a7fb5> of 70000;REST", ""},
    {"params at the cap", b_params_at_cap, "REQ 1 keep=1 [X=<131061:49777099>;] stdin=;REST", ""},
    {"duplicate param", b_duplicate_param, "REQ 1 keep=1 [HTTP_COOKIE=first;HTTP_COOKIE=second;] stdin=;REST", ""},
    {"GET_VALUES", b_get_values, "REQ 1 keep=1 [" SIMPLE_PARAMS "] stdin=;REST",
     "VALUES FCGI_MAX_CONNS=900 FCGI_MAX_REQS=900 FCGI_MPXS_CONNS=0;VALUES;"},
    {"GET_VALUES mid-request", b_get_values_mid_request, "REQ 1 keep=1 [] stdin=;REST",
     "VALUES FCGI_MPXS_CONNS=0;"},
    {"unknown management types", b_unknown_management, "REQ 1 keep=1 [" SIMPLE_PARAMS "] stdin=;REST",
     "UNKNOWN 99;UNKNOWN 1;UNKNOWN 6;"},
    {"multiplexing refused", b_multiplexed, "REQ 1 keep=1 [WHO=one;] stdin=;REST", "END 2 app=0 st=1;"},
    {"unknown role, keep-conn", b_unknown_role_keep, "REQ 6 keep=1 [" SIMPLE_PARAMS "] stdin=;REST",
     "END 5 app=0 st=3;"},
    {"unknown role, no keep-conn", b_unknown_role_close, "CLOSE;", "END 5 app=0 st=3;"},
    {"unknown role, no keep-conn, padding short", b_unknown_role_close_padding_short, "PARTIAL",
     "END 5 app=0 st=3;"},
    {"abort, keep-conn", b_abort_keep,
     "REQ 1 keep=1 [REQUEST_METHOD=GET;DOCUMENT_URI=/after;QUERY_STRING=;] stdin=;REST", "END 1 app=0 st=0;"},
    {"abort, no keep-conn", b_abort_close, "CLOSE;", "END 1 app=0 st=0;"},
    {"records of ids not open", b_ignored, "REQ 1 keep=1 [] stdin=;REST", ""},
    {"request still arriving", b_partial, "PARTIAL", ""},
    {"header still arriving", b_partial_header, "REQ 1 keep=1 [" SIMPLE_PARAMS "] stdin=;PARTIAL", ""},
    {"empty input", NULL, "REST", ""},
    /* malformed */
    {"version 2", b_bad_version, "ERROR;", ""},
    {"version 0", b_version_zero, "ERROR;", ""},
    {"HTTP instead of FastCGI", b_http, "ERROR;", ""},
    {"BEGIN_REQUEST of 3 bytes", b_begin_short, "ERROR;", ""},
    {"BEGIN_REQUEST of 65535 bytes", b_begin_long, "ERROR;", ""},
    {"BEGIN_REQUEST twice", b_begin_twice, "ERROR;", ""},
    {"params over the cap", b_params_over_cap, "ERROR;", ""},
    {"many params over the cap", b_params_over_cap_many, "ERROR;", ""},
    {"a 2 GB param length", b_params_huge_length, "ERROR;", ""},
    {"params do not add up", b_params_do_not_add_up, "ERROR;", ""},
    {"params end inside a length", b_params_half_length, "ERROR;", ""},
    {"PARAMS after their end", b_params_after_end, "ERROR;", ""},
    {"STDIN after its end", b_stdin_after_end, "ERROR;", ""},
    {"STDOUT from the web server", b_stdout_from_server, "ERROR;", ""},
    {"record type 0", b_type_zero, "ERROR;", ""},
    {"record type 200", b_type_unknown, "ERROR;", ""},
    {"GET_VALUES with a request id", b_values_nonzero_id, "ERROR;", ""},
    {"GET_VALUES name too long", b_values_too_long, "ERROR;", ""},
    {"GET_VALUES does not add up", b_values_do_not_add_up, "ERROR;", ""},
    {"a good request, then garbage", b_good_then_garbage, "REQ 1 keep=1 [" SIMPLE_PARAMS "] stdin=;ERROR;", ""},
};

static void test_parse_table(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const struct parse_case *tc = &cases[i];
        struct buf in = {0}, events = {0}, replies = {0};
        if (tc->build)
            tc->build(&in);
        run_all_ways((const uint8_t *)(in.data ? in.data : ""), in.len, &events, &replies);
        if (strcmp(buf_cstr(&events), tc->events) != 0) {
            print_error("case '%s': events\n  got  %s\n  want %s\n", tc->name, buf_cstr(&events), tc->events);
            failures++;
        }
        if (strcmp(buf_cstr(&replies), tc->replies) != 0) {
            print_error("case '%s': replies\n  got  %s\n  want %s\n", tc->name, buf_cstr(&replies), tc->replies);
            failures++;
        }
        buf_free(&in);
        buf_free(&events);
        buf_free(&replies);
    }
    assert_int_equal(failures, 0);
}

/* ---------------------------------------------------------------- lookups */

static void test_param_lookup(void **state)
{
    (void)state;
    struct buf in = {0}, reply = {0};
    begin(&in, 1, FCGI_RESPONDER, FCGI_KEEP_CONN);
    struct buf p = {0};
    pair(&p, "HTTP_COOKIE", "first");
    pair(&p, "HTTP_COOKIE", "second");
    pair(&p, "QUERY_STRING", "a=1");
    pair(&p, "QUERY", "short name");
    fcgi_put_pair(&p, "BIN", 3, "x\0y", 3);
    pair(&p, "", "nameless");
    stream(&in, FCGI_PARAMS, 1, &p);
    rec(&in, FCGI_STDIN, 1, "", 0);
    struct fcgi_parser parser;
    fcgi_parser_init(&parser, &limits);
    size_t used;
    assert_int_equal(fcgi_feed(&parser, in.data, in.len, &used, &reply), FCGI_REQUEST);
    assert_int_equal(used, in.len);
    const struct fcgi_request *r = fcgi_request(&parser);
    assert_string_equal(fcgi_param(r, "HTTP_COOKIE"), "first"); /* the first of two */
    assert_string_equal(fcgi_param(r, "QUERY_STRING"), "a=1");
    assert_string_equal(fcgi_param(r, "QUERY"), "short name");
    assert_memory_equal(fcgi_param(r, "BIN"), "x\0y", 4);
    assert_string_equal(fcgi_param(r, ""), "nameless");
    assert_null(fcgi_param(r, "QUERY_STRIN"));
    assert_null(fcgi_param(r, "HTTP_COOKIES"));
    assert_null(fcgi_param(r, "http_cookie")); /* names are case-sensitive */
    assert_null(fcgi_param(r, "first"));       /* values are not names */
    assert_int_equal(reply.len, 0);
    fcgi_request_done(&parser);
    assert_true(fcgi_at_rest(&parser));
    fcgi_parser_destroy(&parser);
    buf_free(&in);
    buf_free(&p);
    buf_free(&reply);
}

/* Before any byte a connection is fresh; after a request it is at rest but not fresh. */
static void test_at_rest_and_got_bytes(void **state)
{
    (void)state;
    struct fcgi_parser p;
    fcgi_parser_init(&p, &limits);
    struct buf in = {0}, reply = {0};
    simple_request(&in, 1, "/", FCGI_KEEP_CONN);
    assert_true(fcgi_at_rest(&p));
    assert_false(fcgi_got_bytes(&p));
    size_t used;
    assert_int_equal(fcgi_feed(&p, in.data, 3, &used, &reply), FCGI_MORE);
    assert_false(fcgi_at_rest(&p));
    assert_true(fcgi_got_bytes(&p));
    assert_int_equal(fcgi_feed(&p, in.data + 3, 5, &used, &reply), FCGI_MORE);
    assert_false(fcgi_at_rest(&p)); /* a request is open */
    assert_int_equal(fcgi_feed(&p, in.data + 8, in.len - 8, &used, &reply), FCGI_REQUEST);
    fcgi_request_done(&p);
    assert_true(fcgi_at_rest(&p));
    fcgi_parser_destroy(&p);
    buf_free(&in);
    buf_free(&reply);
}

/* ---------------------------------------------------------------- the writer */

/* Parses the writer's output: STDOUT records of at most 65535 bytes padded to 8, then the
 * empty STDOUT and END_REQUEST.  Returns the STDOUT content. */
static void check_answer(const struct buf *out, uint16_t id, uint32_t app_status, struct buf *content)
{
    const uint8_t *p = (const uint8_t *)out->data;
    size_t off = 0;
    bool ended_stream = false, ended = false;
    while (off < out->len) {
        assert_false(ended);
        assert_true(out->len - off >= 8);
        const uint8_t *h = p + off;
        size_t clen = (size_t)(h[4] << 8 | h[5]), pad = h[6];
        assert_int_equal(h[0], 1);
        assert_int_equal(h[2] << 8 | h[3], id);
        assert_int_equal((clen + pad) % 8, 0);
        assert_true(pad < 8);
        assert_true(off + 8 + clen + pad <= out->len);
        if (h[1] == FCGI_STDOUT) {
            assert_false(ended_stream);
            if (clen == 0)
                ended_stream = true;
            buf_append(content, h + 8, clen);
        } else {
            assert_int_equal(h[1], FCGI_END_REQUEST);
            assert_true(ended_stream);
            assert_int_equal(clen, 8);
            const uint8_t *c = h + 8;
            assert_int_equal((uint32_t)(c[0] << 24 | c[1] << 16 | c[2] << 8 | c[3]), app_status);
            assert_int_equal(c[4], FCGI_REQUEST_COMPLETE);
            ended = true;
        }
        off += 8 + clen + pad;
    }
    assert_true(ended);
}

static void test_writer(void **state)
{
    (void)state;
    static const size_t sizes[] = {0, 1, 7, 8, 9, 65534, 65535, 65536, 65537, 131070, 131071, 200000};
    char *data = malloc(200000 * 3);
    for (size_t i = 0; i < 200000 * 3; i++)
        data[i] = (char)(i * 7 + 3);
    for (size_t a = 0; a < sizeof sizes / sizeof sizes[0]; a++) {
        for (size_t b = 0; b < sizeof sizes / sizeof sizes[0]; b += 3) {
            /* two writes, a and b bytes, after something already in the buffer */
            struct buf out = {0}, content = {0};
            buf_puts(&out, "PREFIX--");
            struct fcgi_request r = {.id = 513, .out = &out, .open_rec = SIZE_MAX};
            fcgi_stdout(&r, data, sizes[a]);
            fcgi_stdout(&r, data + sizes[a], sizes[b]);
            fcgi_stdout(&r, data, 0);
            fcgi_end_request(&r, 7);
            assert_memory_equal(out.data, "PREFIX--", 8);
            struct buf rest = {0};
            buf_append(&rest, out.data + 8, out.len - 8);
            check_answer(&rest, 513, 7, &content);
            assert_int_equal(content.len, sizes[a] + sizes[b]);
            if (content.len)
                assert_memory_equal(content.data, data, content.len);
            /* records are as full as they can be: 8 bytes of framing per 65535 of content */
            size_t records = (content.len + 65534) / 65535;
            assert_true(rest.len <= content.len + records * 15 + 16 + 16);
            buf_free(&out);
            buf_free(&content);
            buf_free(&rest);
        }
    }
    free(data);
}

/* The writer's answer and the parser agree on the format: an answer fed back as if it
 * were input is refused (STDOUT from a web server is not valid), never misread. */
static void test_answer_is_not_a_request(void **state)
{
    (void)state;
    struct buf out = {0}, reply = {0};
    struct fcgi_request r = {.id = 1, .out = &out, .open_rec = SIZE_MAX};
    fcgi_stdout(&r, "Status: 200 OK\r\n\r\n", 18);
    fcgi_end_request(&r, 0);
    struct fcgi_parser p;
    fcgi_parser_init(&p, &limits);
    size_t used;
    assert_int_equal(fcgi_feed(&p, out.data, out.len, &used, &reply), FCGI_ERROR);
    assert_non_null(fcgi_error(&p));
    fcgi_parser_destroy(&p);
    buf_free(&out);
    buf_free(&reply);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_table),
        cmocka_unit_test(test_param_lookup),
        cmocka_unit_test(test_at_rest_and_got_bytes),
        cmocka_unit_test(test_writer),
        cmocka_unit_test(test_answer_is_not_a_request),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
