/* fcgi.h — the FastCGI wire format for one connection (responder role): an incremental
 * parser of what the web server sends, and a writer that frames the answer.
 *
 * Pure: no I/O, no threads, no globals.  server.c owns the socket, feeds the parser the
 * bytes as they arrive (split anywhere) and writes out what the parser and the writer put
 * in an output buffer.  A connection carries one request at a time (FCGI_MPXS_CONNS=0):
 * BEGIN_REQUEST, PARAMS records up to an empty one, STDIN records up to an empty one (the
 * two streams may interleave).  Management records (request id 0) are answered in the
 * output at once: GET_VALUES with FCGI_MAX_CONNS, FCGI_MAX_REQS and FCGI_MPXS_CONNS=0, any
 * other type with UNKNOWN_TYPE.  A role other than RESPONDER is answered END_REQUEST
 * UNKNOWN_ROLE, a second request id while one is open END_REQUEST CANT_MPX_CONN, and
 * records of request ids that are not open are ignored.  Anything malformed is an error
 * (close the connection), never an abort.
 *
 * Memory per connection is bounded: at most FCGI_PARAMS_MAX of params, FCGI_STDIN_MAX of
 * body (the rest is counted and dropped), FCGI_VALUES_MAX for one GET_VALUES name. */
#ifndef FBC_FCGI_H
#define FBC_FCGI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* Params as stored: every pair costs its name and value plus 10 bytes.  nginx sends about
 * 2 KB (its client header buffers cap a request's headers at 32 KB by default); more than
 * this is an error and the connection is closed. */
#define FCGI_PARAMS_MAX (128 * 1024)
/* Body bytes kept: the largest body fbconnect reads is the sandbox's 64 KB token and
 * authorize forms (fbconnect's own: 4 KB on /disconnect).  Beyond this, bytes are counted
 * in stdin_total and dropped, so request_read_body answers 413. */
#define FCGI_STDIN_MAX (64 * 1024)
/* One GET_VALUES pair as stored (the names we know are 15 bytes); longer is an error. */
#define FCGI_VALUES_MAX 1024
/* Buffers at most this large are kept for the connection's next request, larger ones freed. */
#define FCGI_KEEP_BYTES 4096

enum fcgi_type {
    FCGI_BEGIN_REQUEST = 1,
    FCGI_ABORT_REQUEST = 2,
    FCGI_END_REQUEST = 3,
    FCGI_PARAMS = 4,
    FCGI_STDIN = 5,
    FCGI_STDOUT = 6,
    FCGI_STDERR = 7,
    FCGI_DATA = 8,
    FCGI_GET_VALUES = 9,
    FCGI_GET_VALUES_RESULT = 10,
    FCGI_UNKNOWN_TYPE = 11,
};
enum fcgi_protocol_status {
    FCGI_REQUEST_COMPLETE = 0,
    FCGI_CANT_MPX_CONN = 1,
    FCGI_OVERLOADED = 2,
    FCGI_UNKNOWN_ROLE = 3,
};
#define FCGI_VERSION_1 1
#define FCGI_RESPONDER 1
#define FCGI_KEEP_CONN 1
#define FCGI_HEADER_LEN 8
#define FCGI_CONTENT_MAX 65535

/* One complete request, as the handler sees it.  Everything points into the parser's
 * memory and stays valid until fcgi_request_done(). */
struct fcgi_request {
    uint16_t id;
    bool keep_conn;         /* FCGI_KEEP_CONN: the connection stays open after the answer */
    const char *params;     /* the params, stored pairs (read them with fcgi_param*) */
    size_t params_len;
    const char *stdin_data; /* the first stdin_len bytes of the body, NUL-terminated */
    size_t stdin_len;
    uint64_t stdin_total;   /* body bytes that arrived; more than stdin_len: truncated */
    /* The writer: the server points out at its output buffer before the handler runs. */
    struct buf *out;
    size_t open_rec; /* offset in *out of the open STDOUT record's header; SIZE_MAX: none */
};

/* What GET_VALUES answers for FCGI_MAX_CONNS and FCGI_MAX_REQS. */
struct fcgi_limits {
    unsigned max_conns, max_reqs;
};

/* A streaming decoder of FastCGI name-value pairs into a bounded store (private to fcgi.c;
 * here so a parser can live inside the server's connection without a second malloc). */
struct fcgi_nv {
    char *data;
    size_t len, cap, max;
    uint32_t nlen, vlen, left;
    uint8_t lenbuf[4];
    uint8_t lenbuf_n, state;
};

/* The parser of one connection.  Fields are private to fcgi.c. */
struct fcgi_parser {
    struct fcgi_limits limits;
    uint8_t hdr[FCGI_HEADER_LEN];
    uint8_t hdr_n, phase, kind, type, pending;
    uint16_t id;
    uint32_t clen, content_left, pad_left;
    uint8_t begin[8];
    uint8_t begin_n;
    unsigned values_wanted;
    struct fcgi_nv values;
    bool active, params_done, stdin_done, ready, closed, got_bytes;
    struct fcgi_nv params;
    char *stdin_buf;
    size_t stdin_cap;
    struct fcgi_request req;
    const char *error;
};

enum fcgi_result {
    FCGI_MORE,    /* all input consumed; no request complete yet */
    FCGI_REQUEST, /* a request is complete (fcgi_request()); bytes after it are not consumed */
    FCGI_CLOSE,   /* the web server ended the connection's only request (an ABORT_REQUEST,
                   * or a refused BEGIN_REQUEST, without FCGI_KEEP_CONN): write what is in
                   * the output buffer, then close */
    FCGI_ERROR,   /* malformed input (fcgi_error() says what): close the connection */
};

/* Prepares p for a new connection; limits are copied.  Allocates nothing. */
void fcgi_parser_init(struct fcgi_parser *p, const struct fcgi_limits *limits);
/* Frees what p holds (p itself belongs to the caller).  The request is gone. */
void fcgi_parser_destroy(struct fcgi_parser *p);

/* Feeds len bytes.  Consumes records up to and including the one that completes a request
 * (its padding too), then returns FCGI_REQUEST with *used the bytes consumed; otherwise
 * consumes everything and returns FCGI_MORE.  Answers to management records, refused
 * BEGIN_REQUESTs and aborts are appended to reply as whole records, in the order of the
 * records they answer.  After FCGI_REQUEST, feeding again consumes nothing and returns
 * FCGI_REQUEST until fcgi_request_done(); FCGI_CLOSE and FCGI_ERROR are final (feeding
 * again consumes nothing and returns them).  Splitting the same bytes differently gives
 * the same results, requests and replies. */
enum fcgi_result fcgi_feed(struct fcgi_parser *p, const void *data, size_t len, size_t *used,
                           struct buf *reply);

/* The complete request after FCGI_REQUEST, else NULL. */
struct fcgi_request *fcgi_request(struct fcgi_parser *p);

/* Ends the current request (after its answer is written): its params and body are gone,
 * buffers larger than FCGI_KEEP_BYTES are freed, and the parser reads the next request. */
void fcgi_request_done(struct fcgi_parser *p);

/* True when no record is partly read and no request is open or being read: the
 * connection is between requests. */
bool fcgi_at_rest(const struct fcgi_parser *p);
/* True once any byte was fed since fcgi_parser_init. */
bool fcgi_got_bytes(const struct fcgi_parser *p);

/* After FCGI_ERROR: a short static description (for a debug log line), else NULL. */
const char *fcgi_error(const struct fcgi_parser *p);

/* The value of param `name` (the first one when the web server sent it twice; values are
 * NUL-terminated and may hold NUL bytes), or NULL. */
const char *fcgi_param(const struct fcgi_request *r, const char *name);

/* Iterates over the params in the order they came: start with *pos = 0; returns false at
 * the end.  Lengths exclude the terminating NULs. */
bool fcgi_param_next(const struct fcgi_request *r, size_t *pos, const char **name,
                     size_t *name_len, const char **value, size_t *value_len);

/* Appends len bytes of the answer to r->out as STDOUT records (at most 65535 bytes of
 * content each, padded to a multiple of 8).  Consecutive calls fill the same record. */
void fcgi_stdout(struct fcgi_request *r, const void *data, size_t len);

/* Closes the answer: the last STDOUT record, the empty STDOUT that ends the stream, and
 * END_REQUEST (app_status, FCGI_REQUEST_COMPLETE). */
void fcgi_end_request(struct fcgi_request *r, uint32_t app_status);

/* Appends one record (header, content, padding to a multiple of 8) to out; content_len at
 * most FCGI_CONTENT_MAX. */
void fcgi_put_record(struct buf *out, uint8_t type, uint16_t id, const void *content,
                     size_t content_len);

/* Appends one name-value pair in the wire encoding (1-byte lengths below 128, else 4
 * bytes with the top bit set); lengths below 2^31. */
void fcgi_put_pair(struct buf *out, const char *name, size_t name_len, const char *value,
                   size_t value_len);

#endif
