#include "fcgi.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

/* Record phases, and what the current record's content feeds. */
enum { PH_HEADER, PH_CONTENT, PH_PADDING };
enum { K_SKIP, K_BEGIN, K_ABORT, K_PARAMS, K_STDIN, K_VALUES, K_UNKNOWN };
/* Name-value decoder states. */
enum { NV_NLEN, NV_VLEN, NV_NAME, NV_VALUE };
#define NV_PAIR_OVERHEAD 10 /* two u32 lengths and two NULs per stored pair */
#define NO_RECORD SIZE_MAX

/* ---- the name-value pair store ----
 *
 * Pairs are stored as u32 name length, u32 value length (host order), name, NUL, value,
 * NUL, so a value can be handed out as a C string and a walk never depends on the bytes
 * inside a name or value. */

static void nv_init(struct fcgi_nv *nv, size_t max)
{
    memset(nv, 0, sizeof *nv);
    nv->max = max;
}

/* Forgets the pairs; keeps the memory unless it is larger than keep. */
static void nv_clear(struct fcgi_nv *nv, size_t keep)
{
    if (nv->cap > keep) {
        free(nv->data);
        nv->data = NULL;
        nv->cap = 0;
    }
    nv->len = 0;
    nv->state = NV_NLEN;
    nv->lenbuf_n = 0;
}

static void nv_free(struct fcgi_nv *nv)
{
    free(nv->data);
    nv->data = NULL;
    nv->cap = nv->len = 0;
}

/* True when the decoder is between pairs (every pair that started has ended). */
static bool nv_at_boundary(const struct fcgi_nv *nv)
{
    return nv->state == NV_NLEN && nv->lenbuf_n == 0;
}

/* Makes room for one pair of nlen + vlen bytes.  Returns false when the store would pass
 * its cap. */
static bool nv_reserve(struct fcgi_nv *nv, uint64_t nlen, uint64_t vlen)
{
    uint64_t need = NV_PAIR_OVERHEAD + nlen + vlen;
    if (need > nv->max - nv->len)
        return false;
    size_t want = nv->len + (size_t)need;
    if (want > nv->cap) {
        size_t cap = nv->cap ? nv->cap * 2 : 4096;
        if (cap < want)
            cap = want;
        if (cap > nv->max)
            cap = nv->max;
        nv->data = xrealloc(nv->data, cap);
        nv->cap = cap;
    }
    return true;
}

static void nv_put(struct fcgi_nv *nv, const void *p, size_t n)
{
    memcpy(nv->data + nv->len, p, n); /* room was reserved for the whole pair */
    nv->len += n;
}

/* Reads one length (1 byte, or 4 with the top bit set) from *p; true once complete. */
static bool nv_length(struct fcgi_nv *nv, const uint8_t **p, const uint8_t *end, uint32_t *out)
{
    while (*p < end) {
        uint8_t b = *(*p)++;
        if (nv->lenbuf_n == 0 && !(b & 0x80)) {
            *out = b;
            return true;
        }
        nv->lenbuf[nv->lenbuf_n++] = b;
        if (nv->lenbuf_n == 4) {
            *out = ((uint32_t)(nv->lenbuf[0] & 0x7f) << 24) | ((uint32_t)nv->lenbuf[1] << 16) |
                   ((uint32_t)nv->lenbuf[2] << 8) | nv->lenbuf[3];
            nv->lenbuf_n = 0;
            return true;
        }
    }
    return false;
}

/* Decodes as much of data as it can into the store.  Returns -1 when a pair would pass the
 * store's cap, 1 when it stopped right after a pair ended (only when stop_after_pair), else
 * 0 (everything consumed); *used says how many bytes it consumed. */
static int nv_feed(struct fcgi_nv *nv, const uint8_t *data, size_t len, size_t *used,
                   bool stop_after_pair)
{
    const uint8_t *p = data, *end = data + len;
    int rc = 0;
    for (;;) {
        size_t n;
        switch (nv->state) {
        case NV_NLEN:
            if (!nv_length(nv, &p, end, &nv->nlen))
                goto out;
            nv->state = NV_VLEN;
            __attribute__((fallthrough));
        case NV_VLEN:
            if (!nv_length(nv, &p, end, &nv->vlen))
                goto out;
            if (!nv_reserve(nv, nv->nlen, nv->vlen)) {
                rc = -1;
                goto out;
            }
            nv_put(nv, &nv->nlen, 4);
            nv_put(nv, &nv->vlen, 4);
            nv->state = NV_NAME;
            nv->left = nv->nlen;
            __attribute__((fallthrough));
        case NV_NAME:
            n = (size_t)(end - p) < nv->left ? (size_t)(end - p) : nv->left;
            nv_put(nv, p, n);
            p += n;
            nv->left -= (uint32_t)n;
            if (nv->left)
                goto out;
            nv_put(nv, "", 1);
            nv->state = NV_VALUE;
            nv->left = nv->vlen;
            __attribute__((fallthrough));
        default: /* NV_VALUE */
            n = (size_t)(end - p) < nv->left ? (size_t)(end - p) : nv->left;
            nv_put(nv, p, n);
            p += n;
            nv->left -= (uint32_t)n;
            if (nv->left)
                goto out;
            nv_put(nv, "", 1);
            nv->state = NV_NLEN;
            if (stop_after_pair) {
                rc = 1;
                goto out;
            }
        }
    }
out:
    *used = (size_t)(p - data);
    return rc;
}

/* Walks stored pairs: the pair at *pos, then *pos moves past it. */
static bool nv_next(const char *data, size_t len, size_t *pos, const char **name,
                    size_t *name_len, const char **value, size_t *value_len)
{
    if (*pos + NV_PAIR_OVERHEAD > len)
        return false;
    uint32_t nl, vl;
    memcpy(&nl, data + *pos, 4);
    memcpy(&vl, data + *pos + 4, 4);
    *name = data + *pos + 8;
    *name_len = nl;
    *value = *name + nl + 1;
    *value_len = vl;
    *pos += NV_PAIR_OVERHEAD + (size_t)nl + vl;
    return true;
}

/* ---- records out ---- */

static void put_header(struct buf *out, uint8_t type, uint16_t id, size_t clen, uint8_t pad)
{
    uint8_t h[FCGI_HEADER_LEN] = {FCGI_VERSION_1, type, (uint8_t)(id >> 8), (uint8_t)id,
                                  (uint8_t)(clen >> 8), (uint8_t)clen, pad, 0};
    buf_append(out, h, sizeof h);
}

static const uint8_t zeros[8];

void fcgi_put_record(struct buf *out, uint8_t type, uint16_t id, const void *content,
                     size_t content_len)
{
    uint8_t pad = (uint8_t)((8 - content_len % 8) % 8);
    put_header(out, type, id, content_len, pad);
    buf_append(out, content, content_len);
    buf_append(out, zeros, pad);
}

static void put_end_request(struct buf *out, uint16_t id, uint32_t app_status, uint8_t status)
{
    uint8_t body[8] = {(uint8_t)(app_status >> 24), (uint8_t)(app_status >> 16),
                       (uint8_t)(app_status >> 8), (uint8_t)app_status, status, 0, 0, 0};
    fcgi_put_record(out, FCGI_END_REQUEST, id, body, sizeof body);
}

static void put_length(struct buf *out, size_t n)
{
    if (n < 128) {
        buf_putc(out, (char)n);
    } else {
        uint8_t b[4] = {(uint8_t)(0x80 | (n >> 24)), (uint8_t)(n >> 16), (uint8_t)(n >> 8),
                        (uint8_t)n};
        buf_append(out, b, 4);
    }
}

void fcgi_put_pair(struct buf *out, const char *name, size_t name_len, const char *value,
                   size_t value_len)
{
    put_length(out, name_len);
    put_length(out, value_len);
    buf_append(out, name, name_len);
    buf_append(out, value, value_len);
}

/* ---- the parser ---- */

static const char *const known_values[] = {"FCGI_MAX_CONNS", "FCGI_MAX_REQS", "FCGI_MPXS_CONNS"};
#define N_KNOWN_VALUES (sizeof known_values / sizeof known_values[0])

void fcgi_parser_init(struct fcgi_parser *p, const struct fcgi_limits *limits)
{
    memset(p, 0, sizeof *p);
    p->limits = *limits;
    p->phase = PH_HEADER;
    p->pending = FCGI_MORE;
    nv_init(&p->params, FCGI_PARAMS_MAX);
    nv_init(&p->values, FCGI_VALUES_MAX);
    p->req.open_rec = NO_RECORD;
}

void fcgi_parser_destroy(struct fcgi_parser *p)
{
    nv_free(&p->params);
    nv_free(&p->values);
    free(p->stdin_buf);
    p->stdin_buf = NULL;
    p->stdin_cap = 0;
}

static void close_request(struct fcgi_parser *p);

/* Opens the request a BEGIN_REQUEST named. */
static void open_request(struct fcgi_parser *p, uint16_t id, bool keep)
{
    close_request(p);
    p->active = true;
    p->req.id = id;
    p->req.keep_conn = keep;
}

/* The header is complete: checks it and decides what its content feeds.  Returns 0 or -1
 * (p->error set). */
static int start_record(struct fcgi_parser *p)
{
    const uint8_t *h = p->hdr;
    if (h[0] != FCGI_VERSION_1) {
        p->error = "unsupported FastCGI version";
        return -1;
    }
    p->type = h[1];
    p->id = (uint16_t)((h[2] << 8) | h[3]);
    p->clen = p->content_left = (uint32_t)((h[4] << 8) | h[5]);
    p->pad_left = h[6];
    bool mine = p->active && p->id == p->req.id;
    if (p->id == 0) { /* a management record */
        if (p->type == FCGI_GET_VALUES) {
            p->kind = K_VALUES;
            nv_clear(&p->values, FCGI_VALUES_MAX);
            p->values_wanted = 0;
        } else {
            p->kind = K_UNKNOWN;
        }
        return 0;
    }
    switch (p->type) {
    case FCGI_BEGIN_REQUEST:
        if (p->clen != 8) {
            p->error = "BEGIN_REQUEST body is not 8 bytes";
            return -1;
        }
        p->kind = K_BEGIN;
        p->begin_n = 0;
        return 0;
    case FCGI_ABORT_REQUEST:
        p->kind = mine ? K_ABORT : K_SKIP;
        return 0;
    case FCGI_PARAMS:
        if (mine && p->params_done) {
            p->error = "PARAMS after the end of the params stream";
            return -1;
        }
        p->kind = mine ? K_PARAMS : K_SKIP;
        return 0;
    case FCGI_STDIN:
        if (mine && p->stdin_done) {
            p->error = "STDIN after the end of the stdin stream";
            return -1;
        }
        p->kind = mine ? K_STDIN : K_SKIP;
        return 0;
    case FCGI_DATA: /* the filter role's stream: a responder ignores it */
        p->kind = K_SKIP;
        return 0;
    default:
        p->error = "record type a web server does not send";
        return -1;
    }
}

/* Keeps up to FCGI_STDIN_MAX body bytes, counts them all. */
static void take_stdin(struct fcgi_parser *p, const uint8_t *data, size_t n)
{
    p->req.stdin_total += n;
    size_t room = FCGI_STDIN_MAX - p->req.stdin_len;
    if (n > room)
        n = room;
    if (!n)
        return;
    size_t want = p->req.stdin_len + n + 1; /* + the NUL */
    if (want > p->stdin_cap) {
        size_t cap = p->stdin_cap ? p->stdin_cap * 2 : 4096;
        if (cap < want)
            cap = want;
        if (cap > FCGI_STDIN_MAX + 1)
            cap = FCGI_STDIN_MAX + 1;
        p->stdin_buf = xrealloc(p->stdin_buf, cap);
        p->stdin_cap = cap;
    }
    memcpy(p->stdin_buf + p->req.stdin_len, data, n);
    p->req.stdin_len += n;
}

/* Marks which known names a GET_VALUES pair asks for. */
static void want_value(struct fcgi_parser *p)
{
    size_t pos = 0, nl, vl;
    const char *name, *value;
    while (nv_next(p->values.data, p->values.len, &pos, &name, &nl, &value, &vl))
        for (size_t i = 0; i < N_KNOWN_VALUES; i++)
            if (nl == strlen(known_values[i]) && memcmp(name, known_values[i], nl) == 0)
                p->values_wanted |= 1u << i;
    nv_clear(&p->values, FCGI_VALUES_MAX);
}

/* Content bytes of the current record.  Returns 0 or -1 (p->error set). */
static int take_content(struct fcgi_parser *p, const uint8_t *data, size_t n)
{
    switch (p->kind) {
    case K_BEGIN:
        memcpy(p->begin + p->begin_n, data, n); /* clen == 8 was checked */
        p->begin_n = (uint8_t)(p->begin_n + n);
        return 0;
    case K_PARAMS:
        while (n) {
            size_t used;
            if (nv_feed(&p->params, data, n, &used, false) < 0) {
                p->error = "params larger than FCGI_PARAMS_MAX";
                return -1;
            }
            data += used;
            n -= used;
        }
        return 0;
    case K_STDIN:
        take_stdin(p, data, n);
        return 0;
    case K_VALUES:
        while (n) {
            size_t used;
            int rc = nv_feed(&p->values, data, n, &used, true);
            if (rc < 0) {
                p->error = "GET_VALUES name too long";
                return -1;
            }
            if (rc > 0)
                want_value(p);
            data += used;
            n -= used;
        }
        return 0;
    default:
        return 0;
    }
}

/* Forgets the open request (done or aborted), keeping only small buffers. */
static void close_request(struct fcgi_parser *p)
{
    p->ready = false;
    p->active = false;
    p->params_done = p->stdin_done = false;
    nv_clear(&p->params, FCGI_KEEP_BYTES);
    if (p->stdin_cap > FCGI_KEEP_BYTES) {
        free(p->stdin_buf);
        p->stdin_buf = NULL;
        p->stdin_cap = 0;
    }
    p->req.params = NULL;
    p->req.params_len = 0;
    p->req.stdin_data = NULL;
    p->req.stdin_len = 0;
    p->req.stdin_total = 0;
    p->req.out = NULL;
    p->req.open_rec = NO_RECORD;
}

/* Once both streams have ended, points the request at the parser's params and body (which
 * stay the parser's: valid until fcgi_request_done) and marks it for FCGI_REQUEST at the
 * end of the current record. */
static void check_complete(struct fcgi_parser *p)
{
    if (!(p->active && p->params_done && p->stdin_done))
        return;
    p->req.params = p->params.data ? p->params.data : "";
    p->req.params_len = p->params.len;
    if (p->stdin_buf)
        p->stdin_buf[p->req.stdin_len] = '\0';
    p->req.stdin_data = p->stdin_buf ? p->stdin_buf : "";
    p->pending = FCGI_REQUEST;
}

/* The current record's content is complete: acts on it.  Returns 0 or -1 (p->error). */
static int end_record(struct fcgi_parser *p, struct buf *reply)
{
    switch (p->kind) {
    case K_BEGIN: {
        uint16_t role = (uint16_t)((p->begin[0] << 8) | p->begin[1]);
        bool keep = p->begin[2] & FCGI_KEEP_CONN;
        if (p->active) {
            if (p->id == p->req.id) {
                p->error = "BEGIN_REQUEST for the request already open";
                return -1;
            }
            put_end_request(reply, p->id, 0, FCGI_CANT_MPX_CONN);
        } else if (role != FCGI_RESPONDER) {
            put_end_request(reply, p->id, 0, FCGI_UNKNOWN_ROLE);
            if (!keep)
                p->pending = FCGI_CLOSE;
        } else {
            open_request(p, p->id, keep);
        }
        return 0;
    }
    case K_ABORT: {
        bool keep = p->req.keep_conn;
        put_end_request(reply, p->id, 0, FCGI_REQUEST_COMPLETE);
        close_request(p);
        if (!keep)
            p->pending = FCGI_CLOSE;
        return 0;
    }
    case K_PARAMS:
        if (p->clen == 0) {
            if (!nv_at_boundary(&p->params)) {
                p->error = "params do not add up to whole name-value pairs";
                return -1;
            }
            p->params_done = true;
            check_complete(p);
        }
        return 0;
    case K_STDIN:
        if (p->clen == 0) {
            p->stdin_done = true;
            check_complete(p);
        }
        return 0;
    case K_VALUES: {
        if (!nv_at_boundary(&p->values)) {
            p->error = "GET_VALUES does not add up to whole name-value pairs";
            return -1;
        }
        struct buf content = {0};
        char num[3][24];
        snprintf(num[0], sizeof num[0], "%u", p->limits.max_conns);
        snprintf(num[1], sizeof num[1], "%u", p->limits.max_reqs);
        snprintf(num[2], sizeof num[2], "0");
        for (size_t i = 0; i < N_KNOWN_VALUES; i++)
            if (p->values_wanted & (1u << i))
                fcgi_put_pair(&content, known_values[i], strlen(known_values[i]), num[i],
                              strlen(num[i]));
        fcgi_put_record(reply, FCGI_GET_VALUES_RESULT, 0, content.data, content.len);
        buf_free(&content);
        nv_clear(&p->values, 0);
        return 0;
    }
    case K_UNKNOWN: {
        uint8_t body[8] = {p->type};
        fcgi_put_record(reply, FCGI_UNKNOWN_TYPE, 0, body, sizeof body);
        return 0;
    }
    default:
        return 0;
    }
}

enum fcgi_result fcgi_feed(struct fcgi_parser *p, const void *data, size_t len, size_t *used,
                           struct buf *reply)
{
    const uint8_t *in = data;
    size_t off = 0;
    *used = 0;
    if (p->error)
        return FCGI_ERROR;
    if (p->ready)
        return FCGI_REQUEST;
    if (p->closed)
        return FCGI_CLOSE;
    if (len)
        p->got_bytes = true;
    for (;;) {
        if (p->phase == PH_HEADER) {
            if (off == len)
                break;
            size_t n = FCGI_HEADER_LEN - p->hdr_n;
            if (n > len - off)
                n = len - off;
            memcpy(p->hdr + p->hdr_n, in + off, n);
            p->hdr_n = (uint8_t)(p->hdr_n + n);
            off += n;
            if (p->hdr_n < FCGI_HEADER_LEN)
                continue;
            if (start_record(p) < 0) {
                *used = off;
                return FCGI_ERROR;
            }
            p->phase = PH_CONTENT;
        }
        if (p->phase == PH_CONTENT) {
            size_t n = p->content_left < len - off ? p->content_left : len - off;
            if (n && take_content(p, in + off, n) < 0) {
                *used = off;
                return FCGI_ERROR;
            }
            off += n;
            p->content_left -= (uint32_t)n;
            if (p->content_left)
                break;
            if (end_record(p, reply) < 0) {
                *used = off;
                return FCGI_ERROR;
            }
            p->phase = PH_PADDING;
        }
        /* PH_PADDING */
        size_t n = p->pad_left < len - off ? p->pad_left : len - off;
        off += n;
        p->pad_left -= (uint32_t)n;
        if (p->pad_left)
            break;
        p->phase = PH_HEADER;
        p->hdr_n = 0;
        if (p->pending == FCGI_REQUEST) {
            p->pending = FCGI_MORE;
            p->ready = true;
            *used = off;
            return FCGI_REQUEST;
        }
        if (p->pending == FCGI_CLOSE) {
            p->closed = true;
            *used = off;
            return FCGI_CLOSE;
        }
    }
    *used = off;
    return FCGI_MORE;
}

struct fcgi_request *fcgi_request(struct fcgi_parser *p)
{
    return p->ready ? &p->req : NULL;
}

void fcgi_request_done(struct fcgi_parser *p)
{
    close_request(p);
}

bool fcgi_at_rest(const struct fcgi_parser *p)
{
    return !p->active && p->phase == PH_HEADER && p->hdr_n == 0;
}

bool fcgi_got_bytes(const struct fcgi_parser *p)
{
    return p->got_bytes;
}

const char *fcgi_error(const struct fcgi_parser *p)
{
    return p->error;
}

bool fcgi_param_next(const struct fcgi_request *r, size_t *pos, const char **name,
                     size_t *name_len, const char **value, size_t *value_len)
{
    return nv_next(r->params, r->params_len, pos, name, name_len, value, value_len);
}

const char *fcgi_param(const struct fcgi_request *r, const char *name)
{
    size_t want = strlen(name), pos = 0, nl, vl;
    const char *n, *v;
    while (nv_next(r->params, r->params_len, &pos, &n, &nl, &v, &vl))
        if (nl == want && memcmp(n, name, want) == 0)
            return v;
    return NULL;
}

/* ---- the writer ---- */

/* Closes the open STDOUT record: fills in its length and pads it. */
static void close_stdout(struct fcgi_request *r)
{
    if (r->open_rec == NO_RECORD)
        return;
    size_t clen = r->out->len - r->open_rec - FCGI_HEADER_LEN;
    uint8_t pad = (uint8_t)((8 - clen % 8) % 8);
    uint8_t *h = (uint8_t *)r->out->data + r->open_rec;
    h[4] = (uint8_t)(clen >> 8);
    h[5] = (uint8_t)clen;
    h[6] = pad;
    buf_append(r->out, zeros, pad);
    r->open_rec = NO_RECORD;
}

void fcgi_stdout(struct fcgi_request *r, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        if (r->open_rec == NO_RECORD) {
            r->open_rec = r->out->len;
            put_header(r->out, FCGI_STDOUT, r->id, 0, 0);
        }
        size_t room = FCGI_CONTENT_MAX - (r->out->len - r->open_rec - FCGI_HEADER_LEN);
        size_t n = len < room ? len : room;
        buf_append(r->out, p, n);
        p += n;
        len -= n;
        if (n == room)
            close_stdout(r);
    }
}

void fcgi_end_request(struct fcgi_request *r, uint32_t app_status)
{
    close_stdout(r);
    put_header(r->out, FCGI_STDOUT, r->id, 0, 0);
    put_end_request(r->out, r->id, app_status, FCGI_REQUEST_COMPLETE);
}
