/* oauth.h — the only module that speaks FreshBooks: the authorize link, the code
 * exchange, refresh, revoke and the identity call, over libcurl with jansson for the JSON.
 * A call borrows one of a fixed pool of curl handles (one per call allowed in flight), so
 * TLS connections to FreshBooks are reused and CA stores are not multiplied by threads. */
#ifndef FBC_OAUTH_H
#define FBC_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "arena.h"
#include "buf.h"
#include "config.h"
#include "record.h"

#define OAUTH_BODY_MAX (256 * 1024) /* larger answers from FreshBooks are refused */
#define OAUTH_TOKEN_MAX 8192        /* longer tokens are refused */

enum oauth_result {
    OAUTH_OK,
    OAUTH_INVALID_GRANT,  /* code or refresh token refused (spent, expired, revoked) */
    OAUTH_INVALID_CLIENT, /* the app's credentials are refused: an operator problem */
    OAUTH_REJECTED,       /* any other refusal (4xx), e.g. a dead access token */
    OAUTH_RATE_LIMITED,   /* 429 */
    OAUTH_UNAVAILABLE,    /* unreachable, timed out, 5xx, or an answer that is not sane */
    OAUTH_BUSY,           /* not tried: too many calls to FreshBooks in flight already */
};
#define OAUTH_RESULTS 7

/* Calls to FreshBooks in flight at once, per process: half the worker threads (at least
 * one), so a slow FreshBooks cannot take every thread from /auth, /status and health.  A
 * call that finds no slot within OAUTH_SLOT_WAIT_MS is OAUTH_BUSY. */
#define OAUTH_SLOT_WAIT_MS 250
/* After a 429, every call of this process is refused (OAUTH_RATE_LIMITED) until
 * Retry-After has passed (OAUTH_PAUSE_DEFAULT_S when FreshBooks sends none). */
#define OAUTH_PAUSE_DEFAULT_S 5
#define OAUTH_PAUSE_MAX_S 300

struct oauth;

/* Builds what every thread shares (the authorize link's fixed part).  Call once after
 * curl_global_init; returns 0 or -1. */
int oauth_global_init(const struct config *cfg);
void oauth_global_free(void);

/* One per thread (buffers and the last call's details); free with oauth_free. */
struct oauth *oauth_new(const struct config *cfg);
void oauth_free(struct oauth *o);

/* Every call of this handle ends by deadline_us (monotonic; 0: none): the slot wait and
 * the call's timeout are cut to it, and once it has passed calls are not made (OAUTH_BUSY,
 * "the request's time is up").  Set per request. */
void oauth_set_deadline(struct oauth *o, int64_t deadline_us);

/* The authorize link carrying `state` and, when not NULL, a PKCE S256 code_challenge,
 * allocated in `a`. */
char *oauth_authorize_url(struct arena *a, const char *state, const char *code_challenge);

/* POSTs grant_type=authorization_code (with the PKCE code_verifier when not NULL).  On
 * OAUTH_OK fills *out (strings in `a`). */
enum oauth_result oauth_exchange_code(struct oauth *o, struct arena *a, const char *code,
                                      const char *code_verifier, struct token_pair *out);
/* POSTs grant_type=refresh_token. */
enum oauth_result oauth_refresh(struct oauth *o, struct arena *a, const char *refresh_token,
                                struct token_pair *out);
/* GET /auth/api/v1/users/me. */
enum oauth_result oauth_fetch_identity(struct oauth *o, struct arena *a, const char *access_token,
                                       struct identity *out);
/* POSTs the revoke endpoint for one token. */
enum oauth_result oauth_revoke(struct oauth *o, const char *token);

/* A short, secret-free description of the last failure ("timeout", "HTTP 503", …). */
const char *oauth_last_error(const struct oauth *o);
/* Retry-After seconds of the last 429 (or of the app-wide pause), or 0. */
long oauth_retry_after(const struct oauth *o);
/* Microseconds the last call took. */
int64_t oauth_last_duration_us(const struct oauth *o);
/* Microseconds spent in calls since the last oauth_reset_spent (the request's share, for
 * its log line), and the reset. */
int64_t oauth_spent_us(const struct oauth *o);
void oauth_reset_spent(struct oauth *o);

/* A pair is trusted to live at most this long, whatever expires_in says (FreshBooks'
 * access tokens live 12 hours). */
#define OAUTH_LIFETIME_MAX 86400

/* Pure parsers of FreshBooks' answers (unit tested and fuzzed).  oauth_parse_token: `now`
 * is when the token call was sent, on fbconnect's clock: expires_at = now + expires_in
 * (at most OAUTH_LIFETIME_MAX), never FreshBooks' created_at, which may be skewed and only
 * orders pairs (it is `now` when FreshBooks omits it). */
enum oauth_result oauth_parse_token(struct arena *a, long http_status, const char *body,
                                    size_t len, int64_t now, struct token_pair *out);
enum oauth_result oauth_parse_identity(struct arena *a, long http_status, const char *body,
                                       size_t len, struct identity *out);

/* Whether `wanted` (FBCONNECT_SCOPES: space-separated) names a scope that `granted` (a
 * pair's scope as FreshBooks stated it) lacks — order and repeats aside.  False when either
 * is NULL or nothing was stated (granted ""): then what was asked is taken as granted. */
bool oauth_scopes_missing(const char *wanted, const char *granted);

const char *oauth_result_name(enum oauth_result r);

/* Appends the FreshBooks metrics (calls by kind and result, latency) to /metrics. */
void oauth_metrics_render(struct buf *out);

#endif
