#include "oauth.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>
#include <jansson.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "metrics.h"
#include "trust.h"

struct oauth {
    const struct config *cfg;
    CURL *curl; /* the pool's handle this call holds, or NULL */
    struct buf body;
    char errbuf[CURL_ERROR_SIZE];
    char last_error[128];
    long retry_after;
    int64_t last_duration_us;
    int64_t spent_us;
    int64_t deadline_us; /* the request's: no call goes beyond it (0: none) */
    int slot; /* pool index of curl, while held */
};

/* How long the next wait may last: want_ms, or less when the request's deadline is
 * nearer; 0 when it has passed. */
static long step_ms(const struct oauth *o, long want_ms)
{
    return clock_cap_ms(o->deadline_us, want_ms);
}

void oauth_set_deadline(struct oauth *o, int64_t deadline_us)
{
    o->deadline_us = deadline_us;
}

static char *authorize_prefix; /* authorize URL with every parameter but state */
/* The handles to FreshBooks: one per call allowed in flight, shared by every thread, so
 * TLS connections (and libcurl's per-handle CA store) number max_in_flight, not threads. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    CURL **handles;
    int *free_list; /* indexes of idle handles */
    int n_free, size;
} pool = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};
static int max_in_flight;
static atomic_llong paused_until_us; /* monotonic; 0: not paused */

/* The CA store every handle of the pool verifies FreshBooks against (trust.h). */
static struct trust *anchors;

int oauth_global_init(const struct config *cfg)
{
    max_in_flight = cfg->threads / 2 > 0 ? (int)(cfg->threads / 2) : 1;
    pool.size = max_in_flight;
    pool.handles = xmalloc(sizeof *pool.handles * (size_t)pool.size);
    pool.free_list = xmalloc(sizeof *pool.free_list * (size_t)pool.size);
    for (int i = 0; i < pool.size; i++) {
        pool.handles[i] = NULL; /* made on first use */
        pool.free_list[i] = i;
    }
    pool.n_free = pool.size;
    atomic_store(&paused_until_us, 0);
    anchors = trust_load(cfg->ca_file);
    CURLU *u = curl_url();
    if (!u || curl_url_set(u, CURLUPART_URL, cfg->authorize_url, 0) != CURLUE_OK)
        goto fail;
    char param[4096];
    snprintf(param, sizeof param, "response_type=code");
    curl_url_set(u, CURLUPART_QUERY, param, CURLU_APPENDQUERY | CURLU_URLENCODE);
    snprintf(param, sizeof param, "client_id=%s", cfg->client_id);
    curl_url_set(u, CURLUPART_QUERY, param, CURLU_APPENDQUERY | CURLU_URLENCODE);
    snprintf(param, sizeof param, "redirect_uri=%s", cfg->redirect_uri);
    curl_url_set(u, CURLUPART_QUERY, param, CURLU_APPENDQUERY | CURLU_URLENCODE);
    if (cfg->scopes) {
        snprintf(param, sizeof param, "scope=%s", cfg->scopes);
        curl_url_set(u, CURLUPART_QUERY, param, CURLU_APPENDQUERY | CURLU_URLENCODE);
    }
    char *url = NULL;
    if (curl_url_get(u, CURLUPART_URL, &url, 0) != CURLUE_OK)
        goto fail;
    authorize_prefix = xstrdup(url);
    curl_free(url);
    curl_url_cleanup(u);
    return 0;
fail:
    curl_url_cleanup(u);
    return -1;
}

void oauth_global_free(void)
{
    free(authorize_prefix);
    authorize_prefix = NULL;
    trust_free(anchors);
    anchors = NULL;
    for (int i = 0; i < pool.size; i++)
        if (pool.handles[i])
            curl_easy_cleanup(pool.handles[i]);
    free(pool.handles);
    free(pool.free_list);
    pool.handles = NULL;
    pool.free_list = NULL;
    pool.size = pool.n_free = 0;
}

char *oauth_authorize_url(struct arena *a, const char *state, const char *code_challenge)
{
    /* state and the challenge are base64url: nothing in them needs escaping. */
    if (code_challenge)
        return arena_printf(a, "%s&state=%s&code_challenge=%s&code_challenge_method=S256",
                            authorize_prefix, state, code_challenge);
    return arena_printf(a, "%s&state=%s", authorize_prefix, state);
}

struct oauth *oauth_new(const struct config *cfg)
{
    struct oauth *o = calloc(1, sizeof *o);
    if (!o)
        abort();
    o->cfg = cfg;
    return o;
}

void oauth_free(struct oauth *o)
{
    if (!o)
        return;
    if (o->body.data)
        sodium_memzero(o->body.data, o->body.cap);
    buf_free(&o->body);
    free(o);
}

const char *oauth_last_error(const struct oauth *o)
{
    return o->last_error[0] ? o->last_error : "no details";
}

long oauth_retry_after(const struct oauth *o)
{
    return o->retry_after;
}

int64_t oauth_last_duration_us(const struct oauth *o)
{
    return o->last_duration_us;
}

int64_t oauth_spent_us(const struct oauth *o)
{
    return o->spent_us;
}

void oauth_reset_spent(struct oauth *o)
{
    o->spent_us = 0;
}

const char *oauth_result_name(enum oauth_result r)
{
    switch (r) {
    case OAUTH_OK: return "ok";
    case OAUTH_INVALID_GRANT: return "invalid_grant";
    case OAUTH_INVALID_CLIENT: return "invalid_client";
    case OAUTH_REJECTED: return "rejected";
    case OAUTH_RATE_LIMITED: return "rate_limited";
    case OAUTH_BUSY: return "busy";
    case OAUTH_UNAVAILABLE: break;
    }
    return "unavailable";
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *userp)
{
    struct buf *b = userp;
    size_t n = size * nmemb;
    if (b->len + n > OAUTH_BODY_MAX)
        return 0; /* CURLE_WRITE_ERROR: too large */
    buf_append(b, data, n);
    return n;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *userp)
{
    struct oauth *o = userp;
    size_t n = size * nmemb;
    if (n > 12 && strncasecmp(data, "Retry-After:", 12) == 0) {
        long v = strtol(data + 12, NULL, 10);
        o->retry_after = v > 0 && v < 86400 ? v : 0;
    }
    return n;
}

#define NOT_SENT_PAUSED (-1)
#define NOT_SENT_BUSY (-2)

/* Takes a handle from the pool into o->curl, waiting up to OAUTH_SLOT_WAIT_MS. */
static bool slot_take(struct oauth *o)
{
    struct timespec deadline = clock_realtime_in(step_ms(o, OAUTH_SLOT_WAIT_MS));
    pthread_mutex_lock(&pool.mu);
    while (pool.n_free == 0)
        if (pthread_cond_timedwait(&pool.cv, &pool.mu, &deadline) == ETIMEDOUT)
            break;
    int i = pool.n_free > 0 ? pool.free_list[--pool.n_free] : -1;
    pthread_mutex_unlock(&pool.mu);
    if (i < 0)
        return false;
    if (!pool.handles[i] && !(pool.handles[i] = curl_easy_init()))
        abort();
    o->curl = pool.handles[i];
    o->slot = i;
    return true;
}

static void slot_give(struct oauth *o)
{
    pthread_mutex_lock(&pool.mu);
    pool.free_list[pool.n_free++] = o->slot;
    pthread_cond_signal(&pool.cv);
    pthread_mutex_unlock(&pool.mu);
    o->curl = NULL;
}

static long perform_call(struct oauth *o, const char *url, const char *post_json,
                         const char *bearer);

/* Performs one call within the limits: returns the HTTP status, 0 when there was no usable
 * answer, NOT_SENT_PAUSED during an app-wide pause after a 429, NOT_SENT_BUSY when every
 * slot stayed taken (last_error set for each). */
static long perform(struct oauth *o, const char *url, const char *post_json, const char *bearer)
{
    int64_t now = clock_mono_us(), until = atomic_load(&paused_until_us);
    if (until > now) {
        o->retry_after = (long)((until - now) / 1000000) + 1;
        o->last_duration_us = 0;
        snprintf(o->last_error, sizeof o->last_error, "paused after FreshBooks' 429 (%ld s left)",
                 o->retry_after);
        return NOT_SENT_PAUSED;
    }
    if (step_ms(o, 1) <= 0) {
        o->last_duration_us = 0;
        snprintf(o->last_error, sizeof o->last_error, "the request's time is up");
        return NOT_SENT_BUSY; /* never reached FreshBooks */
    }
    if (!slot_take(o)) {
        o->last_duration_us = 0;
        snprintf(o->last_error, sizeof o->last_error, "%d calls to FreshBooks in flight already",
                 max_in_flight);
        return NOT_SENT_BUSY;
    }
    long status = perform_call(o, url, post_json, bearer);
    slot_give(o);
    if (status == 429) {
        long wait_s = o->retry_after > 0 ? o->retry_after : OAUTH_PAUSE_DEFAULT_S;
        if (wait_s > OAUTH_PAUSE_MAX_S)
            wait_s = OAUTH_PAUSE_MAX_S;
        o->retry_after = wait_s;
        atomic_store(&paused_until_us, clock_mono_us() + (int64_t)wait_s * 1000000);
        log_msg(LOG_WARN, "FreshBooks answered 429: no calls for %ld s", wait_s);
    }
    return status;
}

/* The result of a call that got no HTTP answer. */
static enum oauth_result not_answered(long status)
{
    return status == NOT_SENT_PAUSED ? OAUTH_RATE_LIMITED
           : status == NOT_SENT_BUSY ? OAUTH_BUSY
                                     : OAUTH_UNAVAILABLE;
}

/* One call to FreshBooks: returns the HTTP status, or 0 when there was no usable answer
 * (with last_error set). */
static long perform_call(struct oauth *o, const char *url, const char *post_json,
                         const char *bearer)
{
    CURL *c = o->curl;
    const struct config *cfg = o->cfg;
    curl_easy_reset(c);
    buf_reset(&o->body);
    o->retry_after = 0;
    o->errbuf[0] = '\0';
    o->last_error[0] = '\0';
    bool plain_http = strncmp(url, "http://", 7) == 0; /* loopback only: checked at startup */
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, plain_http ? "http" : "https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    long timeout_ms = step_ms(o, cfg->http_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 5000 ? timeout_ms : 5000L);
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE, (long)OAUTH_BODY_MAX);
    curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "fbconnect/" FBCONNECT_VERSION);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, o->errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &o->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, o);
    if (cfg->ca_file) {
        /* Trust this bundle alone: CAINFO by itself would still trust Debian's CAPATH. */
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->ca_file);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }
    trust_apply(c, anchors); /* the same, read once for every handle (NULL: as above) */
    struct curl_slist *headers = NULL;
    headers = curl_slist_append(headers, "Accept: application/json");
    headers = curl_slist_append(headers, "Api-Version: alpha");
    char *auth = NULL;
    size_t auth_len = 0;
    if (bearer) {
        auth_len = strlen(bearer) + 32;
        auth = xmalloc(auth_len);
        snprintf(auth, auth_len, "Authorization: Bearer %s", bearer);
        headers = curl_slist_append(headers, auth);
    }
    if (post_json) {
        headers = curl_slist_append(headers, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, post_json);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(post_json));
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);

    int64_t t0 = clock_mono_us();
    CURLcode rc = curl_easy_perform(c);
    o->last_duration_us = clock_mono_us() - t0;
    o->spent_us += o->last_duration_us;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    /* Drop the options that point at memory about to be freed. */
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, NULL);
    curl_slist_free_all(headers);
    if (auth) {
        sodium_memzero(auth, auth_len);
        free(auth);
    }
    if (rc != CURLE_OK) {
        const char *why = rc == CURLE_OPERATION_TIMEDOUT ? "timeout"
                          : rc == CURLE_WRITE_ERROR || rc == CURLE_FILESIZE_EXCEEDED
                              ? "answer too large"
                              : curl_easy_strerror(rc);
        snprintf(o->last_error, sizeof o->last_error, "%s", why);
        return 0;
    }
    return status;
}

/* A token we will later put in a header: printable ASCII without spaces. */
static bool token_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > OAUTH_TOKEN_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] >= 0x7f)
            return false;
    return true;
}

/* Classifies a non-2xx answer from the token or revoke endpoint. */
static enum oauth_result classify_error(long status, json_t *root)
{
    const char *err = json_string_value(json_object_get(root, "error"));
    if (status == 429)
        return OAUTH_RATE_LIMITED;
    if (status >= 500 || status < 400)
        return OAUTH_UNAVAILABLE;
    if (err && strcmp(err, "invalid_grant") == 0)
        return OAUTH_INVALID_GRANT;
    if ((err && (strcmp(err, "invalid_client") == 0 || strcmp(err, "unauthorized_client") == 0)) ||
        (!err && status == 401))
        return OAUTH_INVALID_CLIENT;
    return OAUTH_REJECTED;
}

enum oauth_result oauth_parse_token(struct arena *a, long http_status, const char *body,
                                    size_t len, int64_t now, struct token_pair *out)
{
    json_error_t jerr;
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    enum oauth_result res = OAUTH_UNAVAILABLE;
    if (http_status != 200) {
        res = classify_error(http_status, json_is_object(root) ? root : NULL);
        goto done;
    }
    if (!json_is_object(root))
        goto done;
    const char *at = json_string_value(json_object_get(root, "access_token"));
    const char *rt = json_string_value(json_object_get(root, "refresh_token"));
    const char *scope = json_string_value(json_object_get(root, "scope"));
    const char *type = json_string_value(json_object_get(root, "token_type"));
    json_t *exp_in = json_object_get(root, "expires_in");
    json_t *created = json_object_get(root, "created_at");
    if (!at || !rt || !token_ok(at) || !token_ok(rt) || !json_is_integer(exp_in))
        goto done;
    if (type && strcasecmp(type, "bearer") != 0)
        goto done;
    json_int_t ei = json_integer_value(exp_in);
    json_int_t ca = json_is_integer(created) ? json_integer_value(created) : now;
    if (ei <= 0 || ei > 10L * 365 * 86400 || ca <= 0 || ca > 4102444800LL)
        goto done;
    if (ei > OAUTH_LIFETIME_MAX)
        ei = OAUTH_LIFETIME_MAX;
    if (scope && strlen(scope) > 4096)
        goto done;
    out->access_token = arena_strdup(a, at);
    out->refresh_token = arena_strdup(a, rt);
    out->scope = arena_strdup(a, scope ? scope : "");
    out->created_at = ca;
    out->expires_at = now + ei; /* our clock: FreshBooks' created_at only orders pairs */
    out->n_alternates = 0;
    res = OAUTH_OK;
done:
    json_decref(root);
    return res;
}

static const char *str_or_empty(struct arena *a, json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return arena_strdup(a, s && strlen(s) <= 1024 ? s : "");
}

enum oauth_result oauth_parse_identity(struct arena *a, long http_status, const char *body,
                                       size_t len, struct identity *out)
{
    if (http_status == 429)
        return OAUTH_RATE_LIMITED;
    if (http_status >= 400 && http_status < 500)
        return OAUTH_REJECTED;
    if (http_status != 200)
        return OAUTH_UNAVAILABLE;
    json_error_t jerr;
    json_t *root = json_loadb(body, len, 0, &jerr);
    enum oauth_result res = OAUTH_UNAVAILABLE;
    json_t *resp = json_object_get(root, "response");
    json_t *id = json_object_get(resp, "id");
    if (!json_is_object(resp) || !json_is_integer(id) || json_integer_value(id) <= 0)
        goto done;
    memset(out, 0, sizeof *out);
    out->user_id = json_integer_value(id);
    out->email = str_or_empty(a, resp, "email");
    out->first_name = str_or_empty(a, resp, "first_name");
    out->last_name = str_or_empty(a, resp, "last_name");
    json_t *memberships = json_object_get(resp, "business_memberships");
    size_t n = json_array_size(memberships);
    if (n > 256)
        n = 256;
    out->businesses = arena_calloc(a, (n ? n : 1) * sizeof(struct business));
    for (size_t i = 0; i < n; i++) {
        /* The membership's own "id" is not the business's: the business is inside it. */
        json_t *m = json_array_get(memberships, i);
        json_t *b = json_object_get(m, "business");
        json_t *bid = json_object_get(b, "id");
        const char *acct = json_string_value(json_object_get(b, "account_id"));
        /* A business FreshBooks says is inactive (its API calls fail: errno 1042) is not
         * offered; nor is a second membership of a business already listed. */
        if (!json_is_integer(bid) || json_integer_value(bid) <= 0 ||
            json_is_false(json_object_get(b, "active")))
            continue;
        bool listed = false;
        for (size_t k = 0; k < out->n_businesses && !listed; k++)
            listed = out->businesses[k].id == json_integer_value(bid);
        if (listed)
            continue;
        struct business *ob = &out->businesses[out->n_businesses++];
        ob->id = json_integer_value(bid);
        ob->name = str_or_empty(a, b, "name");
        ob->account_id = arena_strdup(a, acct && strlen(acct) <= 256 ? acct : "");
        ob->uuid = str_or_empty(a, b, "business_uuid");
        ob->role = str_or_empty(a, m, "role");
    }
    res = OAUTH_OK;
done:
    json_decref(root);
    return res;
}

/* The JSON body of a token request (client credentials, redirect URI and `extra`). */
static char *token_request(const struct config *cfg, const char *grant, const char *key,
                           const char *value, const char *code_verifier)
{
    json_t *req = json_pack("{s:s,s:s,s:s,s:s,s:s}", "grant_type", grant, "client_id",
                            cfg->client_id, "client_secret", cfg->client_secret, key, value,
                            "redirect_uri", cfg->redirect_uri);
    if (req && code_verifier)
        json_object_set_new(req, "code_verifier", json_string(code_verifier));
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    return text;
}

static void free_secret(char *s)
{
    if (s) {
        sodium_memzero(s, strlen(s));
        free(s);
    }
}

enum fb_call { FB_EXCHANGE, FB_REFRESH, FB_IDENTITY, FB_REVOKE, FB__MAX };
static const char *const fb_names[FB__MAX] = {"exchange", "refresh", "identity", "revoke"};

static struct {
    struct metric_histogram latency[FB__MAX];
    metric_counter results[FB__MAX][OAUTH_RESULTS];
} fb_metrics;

static enum oauth_result counted(struct oauth *o, enum fb_call call, enum oauth_result r)
{
    metric_observe(&fb_metrics.latency[call], o->last_duration_us);
    metric_add(&fb_metrics.results[call][r]);
    return r;
}

void oauth_metrics_render(struct buf *out)
{
    metric_family(out, "fbconnect_freshbooks_calls_total", "counter",
                  "Calls to FreshBooks by kind and result.");
    char labels[64];
    for (size_t c = 0; c < FB__MAX; c++)
        for (int r = 0; r < OAUTH_RESULTS; r++) {
            snprintf(labels, sizeof labels, "call=\"%s\",result=\"%s\"", fb_names[c],
                     oauth_result_name((enum oauth_result)r));
            metric_sample(out, "fbconnect_freshbooks_calls_total", labels,
                          metric_get(&fb_metrics.results[c][r]));
        }
    metric_family(out, "fbconnect_freshbooks_seconds", "histogram",
                  "FreshBooks call latency by kind.");
    for (size_t c = 0; c < FB__MAX; c++) {
        snprintf(labels, sizeof labels, "call=\"%s\"", fb_names[c]);
        metric_histogram(out, "fbconnect_freshbooks_seconds", labels, &fb_metrics.latency[c]);
    }
}

static enum oauth_result token_call(struct oauth *o, struct arena *a, const char *grant,
                                    const char *key, const char *value, const char *code_verifier,
                                    struct token_pair *out)
{
    char *req = token_request(o->cfg, grant, key, value, code_verifier);
    if (!req)
        return OAUTH_UNAVAILABLE;
    int64_t sent = clock_wall(); /* the pair is issued after this: its life is counted from here */
    long status = perform(o, o->cfg->token_url, req, NULL);
    free_secret(req);
    if (status <= 0)
        return not_answered(status);
    enum oauth_result r = oauth_parse_token(a, status, buf_cstr(&o->body), o->body.len, sent, out);
    if (r != OAUTH_OK && !o->last_error[0])
        snprintf(o->last_error, sizeof o->last_error, "HTTP %ld: %s", status,
                 r == OAUTH_UNAVAILABLE && status == 200 ? "malformed answer" : oauth_result_name(r));
    sodium_memzero(o->body.data, o->body.len);
    return r;
}

enum oauth_result oauth_exchange_code(struct oauth *o, struct arena *a, const char *code,
                                      const char *code_verifier, struct token_pair *out)
{
    return counted(o, FB_EXCHANGE,
                   token_call(o, a, "authorization_code", "code", code, code_verifier, out));
}

enum oauth_result oauth_refresh(struct oauth *o, struct arena *a, const char *refresh_token,
                                struct token_pair *out)
{
    return counted(o, FB_REFRESH,
                   token_call(o, a, "refresh_token", "refresh_token", refresh_token, NULL, out));
}

enum oauth_result oauth_fetch_identity(struct oauth *o, struct arena *a, const char *access_token,
                                       struct identity *out)
{
    size_t n = strlen(o->cfg->api_url) + 32;
    char *url = arena_alloc(a, n);
    snprintf(url, n, "%s/auth/api/v1/users/me", o->cfg->api_url);
    long status = perform(o, url, NULL, access_token);
    if (status <= 0)
        return counted(o, FB_IDENTITY, not_answered(status));
    enum oauth_result r = oauth_parse_identity(a, status, buf_cstr(&o->body), o->body.len, out);
    if (r != OAUTH_OK)
        snprintf(o->last_error, sizeof o->last_error, "users/me HTTP %ld: %s", status,
                 oauth_result_name(r));
    return counted(o, FB_IDENTITY, r);
}

enum oauth_result oauth_revoke(struct oauth *o, const char *token)
{
    json_t *req = json_pack("{s:s,s:s,s:s}", "client_id", o->cfg->client_id, "client_secret",
                            o->cfg->client_secret, "token", token);
    char *text = json_dumps(req, JSON_COMPACT);
    json_decref(req);
    if (!text)
        return OAUTH_UNAVAILABLE;
    long status = perform(o, o->cfg->revoke_url, text, NULL);
    free_secret(text);
    if (status <= 0)
        return counted(o, FB_REVOKE, not_answered(status));
    if (status >= 200 && status < 300)
        return counted(o, FB_REVOKE, OAUTH_OK);
    json_error_t jerr;
    json_t *root = json_loadb(buf_cstr(&o->body), o->body.len, 0, &jerr);
    enum oauth_result r = classify_error(status, json_is_object(root) ? root : NULL);
    json_decref(root);
    snprintf(o->last_error, sizeof o->last_error, "revoke HTTP %ld: %s", status, oauth_result_name(r));
    return counted(o, FB_REVOKE, r);
}

bool oauth_scopes_missing(const char *wanted, const char *granted)
{
    if (!wanted || !granted || !*granted)
        return false;
    for (const char *w = wanted + strspn(wanted, " "); *w;) {
        size_t n = strcspn(w, " ");
        bool found = false;
        for (const char *g = granted + strspn(granted, " "); *g && !found;) {
            size_t m = strcspn(g, " ");
            found = m == n && strncmp(g, w, n) == 0;
            g += m;
            g += strspn(g, " ");
        }
        if (!found)
            return true;
        w += n;
        w += strspn(w, " ");
    }
    return false;
}
