/* fbsandbox — a stand-in for FreshBooks' OAuth endpoints, for trying fbconnect without a
 * FreshBooks account and for its tests.  A FastCGI program served over HTTPS by nginx
 * (with its own test CA), at FreshBooks' own paths:
 *
 *   GET/POST /oauth/authorize        sign-in page with an email field, Authorize / Cancel
 *   POST     /auth/oauth/token       JSON or form body; authorization_code, refresh_token
 *   POST     /auth/oauth/revoke      {client_id, client_secret, token}
 *   GET      /auth/api/v1/users/me   Bearer token → identity
 *   GET/POST /accounting/account/{id}/users/clients   a sample API call (the API proxy's tests)
 *
 * and a control interface for tests under /_sandbox/ (nginx exposes it on loopback only):
 *   POST /_sandbox/reset, POST /_sandbox/fault, POST /_sandbox/config,
 *   GET /_sandbox/stats, GET /_sandbox/user?email=…, POST /_sandbox/user {email, businesses},
 *   POST /_sandbox/issued {values: [...]} (which of them are codes or tokens issued here)
 * Users are stable across restarts (every id derives from the email); each has 1 to 5
 * businesses with different roles (chosen at sign-in) or none; a code issued with a PKCE
 * S256 challenge is exchanged only with its verifier.
 *
 * Configuration: FBSANDBOX_LISTEN, FBSANDBOX_CLIENT_ID, FBSANDBOX_CLIENT_SECRET,
 * FBSANDBOX_REDIRECT_URIS (comma-separated), FBSANDBOX_THREADS, FBSANDBOX_EXPIRES_IN, and
 * FBSANDBOX_HTTP_LISTEN (127.0.0.1:PORT: plain HTTP as well, for tests without nginx). */
#include <curl/curl.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "arena.h"
#include "sandbox/http.h"
#include "log.h"
#include "request.h"
#include "response.h"
#include "sandbox/db.h"
#include "server.h"
#include "template.h"

#define BODY_MAX 65536

/* ---- configuration and faults ---- */

static struct {
    const char *client_id, *client_secret;
    char **redirect_uris;
    size_t n_redirect_uris;
    long expires_in;
    /* FreshBooks' clock as its token answers report it (created_at): pinned to one second
     * (0: not pinned), or off by an offset.  Only what is reported changes: tokens still
     * die expires_in after they were really issued. */
    long long created_at_pinned, created_at_offset;
} conf;

enum endpoint { EP_AUTHORIZE, EP_TOKEN, EP_REVOKE, EP_ME, EP__MAX };
static const char *const endpoint_names[EP__MAX] = {"authorize", "token", "revoke", "me"};

/* slow: held back before the call is handled; late: handled at once (a refresh token is
 * spent), the answer held back. */
enum fault_mode { F_NONE, F_STATUS, F_SLOW, F_LATE, F_GARBAGE, F_HTML, F_TRUNCATED, F_HUGE,
                  F_INVALID_GRANT, F_INVALID_CLIENT, F_RATE_LIMIT };
static const char *const fault_names[] = {"none", "status", "slow", "late", "garbage", "html",
                                          "truncated", "huge", "invalid_grant", "invalid_client",
                                          "rate_limit"};

struct fault {
    enum fault_mode mode;
    int status;
    long delay_ms;
    long count; /* calls left; -1: until reset */
};

static pthread_mutex_t fault_mu = PTHREAD_MUTEX_INITIALIZER;
static struct fault faults[EP__MAX];

/* The fault for this call, if any, counting it down. */
static struct fault take_fault(enum endpoint ep)
{
    pthread_mutex_lock(&fault_mu);
    struct fault f = faults[ep];
    if (f.mode != F_NONE && f.count > 0 && --faults[ep].count == 0)
        faults[ep].mode = F_NONE;
    pthread_mutex_unlock(&fault_mu);
    return f;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* ---- per-thread context and responses ---- */

struct sbx {
    struct arena arena;
    struct response resp;
    struct request req;
};

static struct template *authorize_page;
static char *authorize_csp;

static void reply_json(struct response *resp, int status, json_t *root)
{
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    response_set(resp, status, "application/json", text ? text : "{}");
    free(text);
}

static void reply_error(struct response *resp, int status, const char *error, const char *desc)
{
    reply_json(resp, status, json_pack("{s:s,s:s}", "error", error, "error_description", desc));
}

/* Applies a response-shaping fault; true when it produced the response. */
static bool apply_fault(const struct fault *f, struct response *resp)
{
    switch (f->mode) {
    case F_NONE:
    case F_LATE:
        return false;
    case F_SLOW:
        sleep_ms(f->delay_ms);
        return false;
    case F_STATUS:
        reply_error(resp, f->status ? f->status : 503, "server_error", "injected failure");
        return true;
    case F_GARBAGE:
        response_set(resp, 200, "application/json", "this is not JSON {{{");
        return true;
    case F_HTML:
        response_set(resp, f->status ? f->status : 200, "text/html",
                     "<html><body><h1>Service Unavailable</h1></body></html>");
        return true;
    case F_TRUNCATED:
        response_set(resp, 200, "application/json", "{\"access_token\":\"eyJhbGciOi\",\"refresh_tok");
        return true;
    case F_HUGE:
        resp->status = 200;
        resp->content_type = "application/json";
        buf_reset(&resp->body);
        buf_puts(&resp->body, "{\"access_token\":\"");
        for (int i = 0; i < 2 * 1024 * 1024 / 64; i++)
            buf_puts(&resp->body, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        buf_puts(&resp->body, "\"}");
        return true;
    case F_INVALID_GRANT:
        reply_error(resp, 400, "invalid_grant", "The provided authorization grant is invalid");
        return true;
    case F_INVALID_CLIENT:
        reply_error(resp, 401, "invalid_client", "Client authentication failed");
        return true;
    case F_RATE_LIMIT:
        reply_error(resp, 429, "rate_limited", "Slow down");
        response_header(resp, "Retry-After", "2");
        return true;
    }
    return false;
}

/* A request field from a JSON body (when Content-Type says JSON) or a form body. */
static const char *field(struct sbx *s, json_t *json, const char *name)
{
    if (json) {
        const char *v = json_string_value(json_object_get(json, name));
        return v ? arena_strdup(&s->arena, v) : NULL;
    }
    const char *v = NULL;
    return request_form(&s->req, name, 8192, &v) == FORM_OK ? v : NULL;
}

static bool redirect_registered(const char *uri)
{
    for (size_t i = 0; uri && i < conf.n_redirect_uris; i++)
        if (strcmp(conf.redirect_uris[i], uri) == 0)
            return true;
    return false;
}

static bool client_ok(const char *id, const char *secret)
{
    return id && secret && strcmp(id, conf.client_id) == 0 &&
           strlen(secret) == strlen(conf.client_secret) &&
           sodium_memcmp(secret, conf.client_secret, strlen(secret)) == 0;
}

static char *escape(struct sbx *s, const char *v)
{
    char *e = curl_easy_escape(NULL, v, 0);
    char *copy = arena_strdup(&s->arena, e ? e : "");
    curl_free(e);
    return copy;
}

/* ---- endpoints ---- */

/* What the authorize form carries from the authorize link to its POST. */
struct authorize_params {
    const char *client_id, *redirect_uri, *state, *scope, *challenge, *method;
};

static void page(struct sbx *s, int status, const char *error, const struct authorize_params *a)
{
    struct tvar v[] = {
        {.name = "error", .value = error},
        {.name = "client_id", .value = a ? a->client_id : NULL},
        {.name = "redirect_uri", .value = a ? a->redirect_uri : NULL},
        {.name = "state", .value = a && a->state ? a->state : ""},
        {.name = "scope", .value = a && a->scope ? a->scope : ""},
        {.name = "code_challenge", .value = a && a->challenge ? a->challenge : ""},
        {.name = "code_challenge_method", .value = a && a->method ? a->method : ""},
        {.name = "scope_list",
         .value = a && a->scope && *a->scope ? a->scope : "all scopes registered for the app"},
    };
    struct tvars vars = {v, sizeof v / sizeof v[0], NULL};
    s->resp.status = status;
    s->resp.content_type = "text/html; charset=utf-8";
    buf_reset(&s->resp.body);
    template_render(authorize_page, &vars, &s->resp.body);
    s->resp.csp = authorize_csp;
}

static void handle_authorize(struct sbx *s)
{
    bool post = strcmp(s->req.method, "POST") == 0;
    struct authorize_params a = {0};
    const char *response_type = NULL, *email = NULL, *action = NULL, *businesses = NULL;
    if (post) {
        int rc = request_read_body(&s->req, BODY_MAX);
        if (rc) {
            reply_error(&s->resp, rc, "invalid_request", "bad body");
            return;
        }
        a.client_id = field(s, NULL, "client_id");
        a.redirect_uri = field(s, NULL, "redirect_uri");
        a.state = field(s, NULL, "state");
        a.scope = field(s, NULL, "scope");
        a.challenge = field(s, NULL, "code_challenge");
        a.method = field(s, NULL, "code_challenge_method");
        email = field(s, NULL, "email");
        action = field(s, NULL, "action");
        businesses = field(s, NULL, "businesses");
        response_type = "code";
    } else {
        db_count(COUNT_AUTHORIZE_PAGE);
        request_query(&s->req, "client_id", 512, &a.client_id);
        request_query(&s->req, "redirect_uri", 2048, &a.redirect_uri);
        request_query(&s->req, "state", 4096, &a.state);
        request_query(&s->req, "scope", 2048, &a.scope);
        request_query(&s->req, "code_challenge", 256, &a.challenge);
        request_query(&s->req, "code_challenge_method", 16, &a.method);
        request_query(&s->req, "response_type", 64, &response_type);
    }
    if (!a.client_id || strcmp(a.client_id, conf.client_id) != 0) {
        page(s, 400, "Unknown client_id: this app is not registered with the sandbox.", NULL);
        return;
    }
    if (!redirect_registered(a.redirect_uri)) {
        page(s, 400, "The redirect_uri is not registered for this app.", NULL);
        return;
    }
    if (!response_type || strcmp(response_type, "code") != 0) {
        page(s, 400, "response_type must be code.", NULL);
        return;
    }
    bool has_challenge = a.challenge && *a.challenge;
    if (has_challenge && (!a.method || strcmp(a.method, "S256") != 0 || strlen(a.challenge) != 43)) {
        page(s, 400, "code_challenge_method must be S256, with a 43-character code_challenge.", NULL);
        return;
    }
    if (!post) {
        page(s, 200, NULL, &a);
        return;
    }
    struct fault f = take_fault(EP_AUTHORIZE);
    if (apply_fault(&f, &s->resp))
        return;
    const char *sep = strchr(a.redirect_uri, '?') ? "&" : "?";
    const char *state_part =
        a.state && *a.state ? arena_printf(&s->arena, "&state=%s", escape(s, a.state)) : "";
    char *location;
    if (action && strcmp(action, "authorize") == 0) {
        if (!email || !*email || strlen(email) > 100 || !strchr(email, '@')) {
            page(s, 400, "Enter an email address to sign in.", &a);
            return;
        }
        char code[44];
        int n = businesses && *businesses ? atoi(businesses) : -1;
        /* No scope requested: the token carries every scope the app is registered for. */
        db_issue_code(email, n, a.redirect_uri,
                      a.scope && *a.scope ? a.scope
                                          : "user:profile:read user:clients:read user:invoices:read",
                      has_challenge ? a.challenge : NULL, code);
        location = arena_printf(&s->arena, "%s%scode=%s%s", a.redirect_uri, sep, code, state_part);
    } else {
        location = arena_printf(&s->arena, "%s%serror=access_denied&error_description=%s%s",
                                a.redirect_uri, sep, escape(s, "The user denied access"), state_part);
    }
    response_header(&s->resp, "Location", location);
    response_set(&s->resp, 302, "text/plain; charset=utf-8", "Redirecting\n");
}

/* A request's JSON body: an object, or NULL with *bad set when it is not one.  The token
 * endpoint reads one only under a JSON Content-Type (else it is a form: NULL, not bad);
 * the control interface (any_type) whatever the Content-Type says (curl -d sends a form
 * type), an empty body being none. */
static json_t *parse_body(struct sbx *s, bool *bad, bool any_type)
{
    *bad = false;
    if (request_read_body(&s->req, BODY_MAX) != 0) {
        *bad = true;
        return NULL;
    }
    const char *ct = s->req.content_type;
    bool json_type = ct && strncasecmp(ct, "application/json", 16) == 0;
    if (any_type ? !s->req.body_len : !json_type)
        return NULL;
    json_error_t jerr;
    json_t *j = json_loadb(s->req.body, s->req.body_len, 0, &jerr);
    if (!json_is_object(j)) {
        json_decref(j);
        *bad = true;
        return NULL;
    }
    return j;
}

static long long reported_created_at(long long real);

static void reply_pair(struct sbx *s, const struct issued_pair *p)
{
    reply_json(&s->resp, 200,
               json_pack("{s:s,s:s,s:I,s:s,s:s,s:I,s:{}}", "access_token", p->access_token,
                         "token_type", "Bearer", "expires_in", (json_int_t)p->expires_in,
                         "refresh_token", p->refresh_token, "scope", p->scope, "created_at",
                         (json_int_t)reported_created_at(p->created_at), "direct_buy_tokens"));
}

static long long reported_created_at(long long real)
{
    pthread_mutex_lock(&fault_mu);
    long long t = conf.created_at_pinned ? conf.created_at_pinned : real + conf.created_at_offset;
    pthread_mutex_unlock(&fault_mu);
    return t;
}

static long current_expires_in(void)
{
    pthread_mutex_lock(&fault_mu);
    long e = conf.expires_in;
    pthread_mutex_unlock(&fault_mu);
    return e;
}

/* The user whose access token the request's Authorization header carries; false (401
 * answered) when it carries none that is live. */
static bool bearer_user(struct sbx *s, struct sandbox_user *u)
{
    const char *auth = request_param(&s->req, "HTTP_AUTHORIZATION");
    if (auth && strncmp(auth, "Bearer ", 7) == 0 && db_user_for_access(auth + 7, u))
        return true;
    reply_error(&s->resp, 401, "unauthenticated", "This action requires authentication to continue.");
    return false;
}

/* The common start of token and revoke calls: an injected fault, the body (JSON or form)
 * and the client's credentials.  Returns false after answering; on true, *json is the JSON
 * body (NULL for a form), which the caller frees. */
static bool client_call(struct sbx *s, enum endpoint ep, json_t **json, long *late_ms)
{
    struct fault f = take_fault(ep);
    *late_ms = f.mode == F_LATE ? f.delay_ms : 0;
    if (apply_fault(&f, &s->resp))
        return false;
    bool bad;
    *json = parse_body(s, &bad, false);
    if (bad) {
        reply_error(&s->resp, 400, "invalid_request", "The body must be JSON or a form");
        return false;
    }
    if (!client_ok(field(s, *json, "client_id"), field(s, *json, "client_secret"))) {
        json_decref(*json);
        reply_error(&s->resp, 401, "invalid_client", "Client authentication failed");
        return false;
    }
    return true;
}

static void answer_token(struct sbx *s, json_t *json)
{
    const char *grant = field(s, json, "grant_type");
    const char *redirect_uri = field(s, json, "redirect_uri");
    const char *code = field(s, json, "code");
    const char *refresh = field(s, json, "refresh_token");
    const char *verifier = field(s, json, "code_verifier");
    json_decref(json);
    struct issued_pair pair;
    enum grant_result g;
    if (grant && strcmp(grant, "authorization_code") == 0 && code) {
        g = db_exchange_code(code, redirect_uri ? redirect_uri : "", verifier, current_expires_in(),
                             &pair);
    } else if (grant && strcmp(grant, "refresh_token") == 0 && refresh) {
        g = db_refresh(refresh, current_expires_in(), &pair);
        if (g == GRANT_SPENT)
            log_msg(LOG_WARN, "a spent refresh token was presented");
    } else {
        reply_error(&s->resp, 400, "unsupported_grant_type", "grant_type or its parameter is missing");
        return;
    }
    if (g != GRANT_OK) {
        reply_error(&s->resp, 400, "invalid_grant",
                    "The provided authorization grant is invalid, expired, revoked, or was issued to another client");
        return;
    }
    reply_pair(s, &pair);
}

static void handle_token(struct sbx *s)
{
    db_count(COUNT_TOKEN_CALL);
    json_t *json;
    long late_ms;
    if (!client_call(s, EP_TOKEN, &json, &late_ms))
        return;
    answer_token(s, json);
    sleep_ms(late_ms);
}

static void handle_revoke(struct sbx *s)
{
    json_t *json;
    long late_ms;
    if (!client_call(s, EP_REVOKE, &json, &late_ms))
        return;
    const char *token = field(s, json, "token");
    json_decref(json);
    if (!token) {
        reply_error(&s->resp, 400, "invalid_request", "token is required");
    } else {
        db_revoke(token);
        reply_json(&s->resp, 200, json_object());
    }
    sleep_ms(late_ms);
}

static void handle_me(struct sbx *s)
{
    db_count(COUNT_ME_CALL);
    struct fault f = take_fault(EP_ME);
    if (apply_fault(&f, &s->resp))
        return;
    struct sandbox_user u;
    if (!bearer_user(s, &u))
        return;
    json_t *memberships = json_array();
    for (size_t i = 0; i < u.n_businesses; i++) {
        const struct sandbox_business *b = &u.businesses[i];
        json_array_append_new(memberships,
                              json_pack("{s:I,s:s,s:{s:I,s:s,s:s,s:s,s:b}}", "id",
                                        (json_int_t)b->membership_id, "role", b->role, "business",
                                        "id", (json_int_t)b->id, "business_uuid", b->uuid, "name",
                                        b->name, "account_id", b->account_id, "active", 1));
    }
    reply_json(&s->resp, 200,
               json_pack("{s:{s:I,s:I,s:s,s:s,s:s,s:o}}", "response", "id", (json_int_t)u.id,
                         "identity_id", (json_int_t)u.id, "first_name", u.first_name, "last_name",
                         u.last_name, "email", u.email, "business_memberships", memberships));
}

/* The user's business whose account_id (or, by_id, business id) is `key`, or NULL. */
static const struct sandbox_business *business_of(const struct sandbox_user *u, const char *key,
                                                  bool by_id)
{
    for (size_t i = 0; i < u->n_businesses; i++) {
        char id[24];
        snprintf(id, sizeof id, "%lld", (long long)u->businesses[i].id);
        if (strcmp(by_id ? id : u->businesses[i].account_id, key) == 0)
            return &u->businesses[i];
    }
    return NULL;
}

/* GET/POST /accounting/account/{account_id}/users/clients: a sample of FreshBooks' API for
 * trying the API proxy: lists (or "creates") clients of the bearer's own account, and
 * says what it received that an API should never see (a Cookie header). */
static void handle_clients(struct sbx *s, const char *account_id)
{
    struct sandbox_user u;
    if (!bearer_user(s, &u))
        return;
    const struct sandbox_business *b = business_of(&u, account_id, false);
    if (!b) {
        reply_error(&s->resp, 403, "forbidden", "This account is not yours.");
        return;
    }
    bool post = strcmp(s->req.method, "POST") == 0;
    const char *api_version = request_param(&s->req, "HTTP_API_VERSION");
    reply_json(&s->resp, 200,
               json_pack("{s:{s:{s:[{s:I,s:s,s:s}],s:b,s:b,s:s}}}", "response", "result", "clients",
                         "id", (json_int_t)(b->id * 10 + 1), "organization",
                         post ? "Created Client Ltd" : "Sample Client Ltd", "email",
                         "client@example.com", "created", post, "received_cookie",
                         request_param(&s->req, "HTTP_COOKIE") != NULL, "api_version",
                         api_version ? api_version : ""));
}

/* GET /projects/business/{id}/projects and /timetracking/business/{id}/time_entries: the
 * business-relative APIs (by business id, not account id), for the API proxy's tests. */
static void handle_business_api(struct sbx *s, const char *business_id, const char *what)
{
    struct sandbox_user u;
    if (!bearer_user(s, &u))
        return;
    const struct sandbox_business *b = business_of(&u, business_id, true);
    if (!b) {
        reply_error(&s->resp, 403, "forbidden", "This business is not yours.");
        return;
    }
    reply_json(&s->resp, 200, json_pack("{s:s,s:I,s:s,s:[]}", "business_uuid", b->uuid,
                                        "business_id", (json_int_t)b->id, "kind", what, what));
}

/* ---- control interface ---- */

static void handle_control(struct sbx *s, const char *what)
{
    bool post = strcmp(s->req.method, "POST") == 0;
    if (strcmp(what, "stats") == 0) {
        struct sandbox_stats st = db_stats();
        reply_json(&s->resp, 200,
                   json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "codes_issued",
                             (json_int_t)st.codes_issued, "exchanges", (json_int_t)st.exchanges,
                             "refreshes", (json_int_t)st.refreshes, "refresh_rejected",
                             (json_int_t)st.refresh_rejected, "spent_refresh_presented",
                             (json_int_t)st.spent_refresh_presented, "revocations",
                             (json_int_t)st.revocations, "me_calls", (json_int_t)st.me_calls,
                             "me_rejected", (json_int_t)st.me_rejected, "token_calls",
                             (json_int_t)st.token_calls, "authorize_pages",
                             (json_int_t)st.authorize_pages));
        return;
    }
    if (strcmp(what, "user") == 0 && !post) {
        const char *email = NULL;
        struct sandbox_user u;
        if (request_query(&s->req, "email", 256, &email) != FORM_OK || !db_find_user(email, &u)) {
            reply_error(&s->resp, 404, "not_found", "no such user");
            return;
        }
        json_t *list = json_array();
        for (size_t i = 0; i < u.n_businesses; i++)
            json_array_append_new(list, json_pack("{s:I,s:s,s:s,s:s,s:s,s:I}", "id",
                                                  (json_int_t)u.businesses[i].id, "uuid",
                                                  u.businesses[i].uuid, "name", u.businesses[i].name,
                                                  "account_id", u.businesses[i].account_id, "role",
                                                  u.businesses[i].role, "membership_id",
                                                  (json_int_t)u.businesses[i].membership_id));
        reply_json(&s->resp, 200, json_pack("{s:I,s:s,s:o}", "id", (json_int_t)u.id, "email",
                                            u.email, "businesses", list));
        return;
    }
    if (!post) {
        reply_error(&s->resp, 405, "method_not_allowed", "use POST");
        return;
    }
    if (strcmp(what, "user") == 0) {
        bool bad;
        json_t *json = parse_body(s, &bad, true);
        const char *email = bad ? NULL : field(s, json, "email");
        json_t *n = json_object_get(json, "businesses");
        bool ok = email && json_is_integer(n) &&
                  db_set_businesses(email, (int)json_integer_value(n));
        json_decref(json);
        if (!ok)
            reply_error(&s->resp, 404, "not_found", "no such user, or businesses not 0 to 5");
        else
            reply_json(&s->resp, 200, json_pack("{s:b}", "ok", 1));
        return;
    }
    if (strcmp(what, "issued") == 0) { /* {"values": [...]}: which of them were issued here */
        bool bad;
        json_t *json = parse_body(s, &bad, true);
        json_t *values = bad ? NULL : json_object_get(json, "values");
        if (!json_is_array(values)) {
            json_decref(json);
            reply_error(&s->resp, 400, "invalid_request", "send {\"values\": [strings]}");
            return;
        }
        json_t *found = json_array();
        size_t i;
        json_t *v;
        json_array_foreach(values, i, v)
        {
            if (json_is_string(v) && db_issued(json_string_value(v)))
                json_array_append(found, v);
        }
        json_decref(json);
        reply_json(&s->resp, 200, json_pack("{s:o}", "issued", found));
        return;
    }
    if (strcmp(what, "reset") == 0) {
        db_reset();
        pthread_mutex_lock(&fault_mu);
        memset(faults, 0, sizeof faults);
        pthread_mutex_unlock(&fault_mu);
        reply_json(&s->resp, 200, json_pack("{s:b}", "ok", 1));
        return;
    }
    bool bad;
    json_t *json = parse_body(s, &bad, true);
    if (bad || !json) {
        json_decref(json);
        reply_error(&s->resp, 400, "invalid_request",
                    "send a JSON object, e.g. {\"endpoint\": \"token\", \"mode\": \"status\", \"status\": 503}");
        return;
    }
    if (strcmp(what, "config") == 0) {
        json_t *e = json_object_get(json, "expires_in");
        json_t *pin = json_object_get(json, "created_at");
        json_t *off = json_object_get(json, "created_at_offset");
        pthread_mutex_lock(&fault_mu);
        if (json_is_integer(e) && json_integer_value(e) > 0)
            conf.expires_in = (long)json_integer_value(e);
        if (json_is_integer(pin) && json_integer_value(pin) >= 0)
            conf.created_at_pinned = json_integer_value(pin);
        if (json_is_integer(off))
            conf.created_at_offset = json_integer_value(off);
        json_t *now = json_pack("{s:I,s:I,s:I}", "expires_in", (json_int_t)conf.expires_in,
                                "created_at", (json_int_t)conf.created_at_pinned,
                                "created_at_offset", (json_int_t)conf.created_at_offset);
        pthread_mutex_unlock(&fault_mu);
        json_decref(json);
        reply_json(&s->resp, 200, now);
        return;
    }
    if (strcmp(what, "fault") == 0) {
        const char *ep = json_string_value(json_object_get(json, "endpoint"));
        const char *mode = json_string_value(json_object_get(json, "mode"));
        int e = -1, m = -1;
        for (int i = 0; ep && i < EP__MAX; i++)
            if (strcmp(ep, endpoint_names[i]) == 0)
                e = i;
        for (int i = 0; mode && i < (int)(sizeof fault_names / sizeof fault_names[0]); i++)
            if (strcmp(mode, fault_names[i]) == 0)
                m = i;
        if (e < 0 || m < 0) {
            json_decref(json);
            reply_error(&s->resp, 400, "invalid_request",
                        "endpoint: authorize|token|revoke|me; mode: none|status|slow|late|garbage|html|"
                        "truncated|huge|invalid_grant|invalid_client|rate_limit");
            return;
        }
        json_t *count = json_object_get(json, "count");
        struct fault f = {
            .mode = (enum fault_mode)m,
            .status = (int)json_integer_value(json_object_get(json, "status")),
            .delay_ms = json_is_integer(json_object_get(json, "delay_ms"))
                            ? (long)json_integer_value(json_object_get(json, "delay_ms"))
                            : 1500, /* slow and late without one: 1.5 s */
            .count = json_is_integer(count) ? (long)json_integer_value(count) : -1,
        };
        json_decref(json);
        pthread_mutex_lock(&fault_mu);
        faults[e] = f;
        pthread_mutex_unlock(&fault_mu);
        reply_json(&s->resp, 200, json_pack("{s:b}", "ok", 1));
        return;
    }
    json_decref(json);
    reply_error(&s->resp, 404, "not_found", "unknown control");
}

/* ---- dispatch ---- */

static void *sbx_thread_start(unsigned index, void *app)
{
    (void)index;
    (void)app;
    struct sbx *s = xmalloc(sizeof *s);
    memset(s, 0, sizeof *s);
    arena_init(&s->arena, 16384);
    return s;
}

static void sbx_thread_stop(void *p)
{
    struct sbx *s = p;
    arena_destroy(&s->arena);
    response_free(&s->resp);
    free(s);
}

static void sbx_handle(void *p, struct fcgi_request *fcgi)
{
    struct sbx *s = p;
    arena_reset(&s->arena);
    response_reset(&s->resp);
    int early = request_init(&s->req, fcgi, &s->arena);
    const char *path = s->req.path, *m = s->req.method;
    bool get = strcmp(m, "GET") == 0 || strcmp(m, "HEAD") == 0, post = strcmp(m, "POST") == 0;
    if (early)
        reply_error(&s->resp, early, "invalid_request", "request too large");
    else if (strcmp(path, "/oauth/authorize") == 0 || strcmp(path, "/oauth/authorize/") == 0 ||
             strcmp(path, "/service/auth/oauth/authorize") == 0)
        get || post ? handle_authorize(s) : reply_error(&s->resp, 405, "method_not_allowed", "GET or POST");
    else if (strcmp(path, "/auth/oauth/token") == 0)
        post ? handle_token(s) : reply_error(&s->resp, 405, "method_not_allowed", "POST");
    else if (strcmp(path, "/auth/oauth/revoke") == 0)
        post ? handle_revoke(s) : reply_error(&s->resp, 405, "method_not_allowed", "POST");
    else if (strcmp(path, "/auth/api/v1/users/me") == 0)
        get ? handle_me(s) : reply_error(&s->resp, 405, "method_not_allowed", "GET");
    else if (strncmp(path, "/_sandbox/", 10) == 0)
        handle_control(s, path + 10);
    else if (strncmp(path, "/accounting/account/", 20) == 0 && strchr(path + 20, '/') &&
             strcmp(strchr(path + 20, '/'), "/users/clients") == 0)
        get || post ? handle_clients(s, arena_strndup(&s->arena, path + 20,
                                                      (size_t)(strchr(path + 20, '/') - (path + 20))))
                    : reply_error(&s->resp, 405, "method_not_allowed", "GET or POST");
    else if ((strncmp(path, "/projects/business/", 19) == 0 && strchr(path + 19, '/') &&
              strcmp(strchr(path + 19, '/'), "/projects") == 0) ||
             (strncmp(path, "/timetracking/business/", 23) == 0 && strchr(path + 23, '/') &&
              strcmp(strchr(path + 23, '/'), "/time_entries") == 0)) {
        size_t at = path[1] == 'p' ? 19 : 23;
        handle_business_api(s, arena_strndup(&s->arena, path + at, (size_t)(strchr(path + at, '/') - (path + at))),
                            path[1] == 'p' ? "projects" : "time_entries");
    } else if (strcmp(path, "/") == 0)
        response_set(&s->resp, 200, "text/plain; charset=utf-8",
                     "fbsandbox: a FreshBooks OAuth stand-in for fbconnect. Start at /oauth/authorize.\n");
    else
        reply_error(&s->resp, 404, "not_found", "no such endpoint in the sandbox");
    response_security_headers(&s->resp);
    response_send(&s->resp, fcgi, strcmp(m, "HEAD") == 0);
}

/* ---- the authorize page ---- */

static const char authorize_html[] =
    "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
    "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
    "<link rel=\"icon\" href=\"data:,\">\n"
    "<title>Sign in – FreshBooks sandbox</title>\n<style>\n"
    "*{box-sizing:border-box}body{margin:0;background:#0e3b5e;color:#1d2733;font:16px/1.5 system-ui,"
    "-apple-system,\"Segoe UI\",Roboto,sans-serif;min-height:100vh;display:flex;justify-content:center;"
    "align-items:flex-start;padding:8vh 16px 32px}main{width:100%;max-width:30rem;background:#fff;"
    "border-radius:14px;padding:28px 24px}h1{font-size:1.4rem;margin:0 0 8px}p{margin:0 0 14px}"
    ".banner{background:#fff5e0;color:#7a4b00;border-radius:10px;padding:10px 12px;font-size:.9rem}"
    "label{display:block;font-weight:600;margin:8px 0 6px}input[type=email],select{width:100%;padding:12px;"
    "border:1px solid #b8c4d0;border-radius:10px;font:inherit}.row{display:flex;gap:12px;margin-top:18px}"
    "button{flex:1;padding:13px;border-radius:10px;border:0;font:inherit;font-weight:600;cursor:pointer}"
    ".primary{background:#0063c1;color:#fff}.secondary{background:#eef2f6;color:#1d2733}"
    ".scopes{background:#f4f6f8;border-radius:10px;padding:10px 12px;font-size:.9rem;overflow-wrap:anywhere}"
    ".err{background:#fdecec;color:#8a1f1f;border-radius:10px;padding:10px 12px}\n"
    "</style>\n</head>\n<body>\n<main>\n"
    "<p class=\"banner\">Sandbox: a stand-in for FreshBooks for trying fbconnect. No real account is used.</p>\n"
    "{{#error}}<h1>Can't continue</h1><p class=\"err\">{{error}}</p>{{/error}}\n"
    "{{^error}}<h1>Allow access to your FreshBooks account?</h1>\n"
    "<p>The app <strong>{{client_id}}</strong> wants to access:</p>\n"
    "<p class=\"scopes\">{{scope_list}}</p>\n"
    "<form method=\"post\" action=\"/oauth/authorize\">\n"
    "<input type=\"hidden\" name=\"client_id\" value=\"{{client_id}}\">\n"
    "<input type=\"hidden\" name=\"redirect_uri\" value=\"{{redirect_uri}}\">\n"
    "<input type=\"hidden\" name=\"state\" value=\"{{state}}\">\n"
    "<input type=\"hidden\" name=\"scope\" value=\"{{scope}}\">\n"
    "<input type=\"hidden\" name=\"code_challenge\" value=\"{{code_challenge}}\">\n"
    "<input type=\"hidden\" name=\"code_challenge_method\" value=\"{{code_challenge_method}}\">\n"
    "<label for=\"email\">Sign in as (any email)</label>\n"
    "<input id=\"email\" type=\"email\" name=\"email\" value=\"ada@example.com\" autocomplete=\"email\" required>\n"
    "<label for=\"businesses\">Businesses this user belongs to</label>\n"
    "<select id=\"businesses\" name=\"businesses\"><option value=\"\">as before (new users: 1)</option>"
    "<option value=\"1\">1: their own</option><option value=\"2\">2: theirs and a client's</option>"
    "<option value=\"3\">3</option><option value=\"4\">4</option><option value=\"5\">5</option>"
    "<option value=\"0\">none</option></select>\n"
    "<div class=\"row\"><button class=\"secondary\" type=\"submit\" name=\"action\" value=\"cancel\" formnovalidate>Cancel</button>\n"
    "<button class=\"primary\" type=\"submit\" name=\"action\" value=\"authorize\">Authorize</button></div>\n"
    "</form>{{/error}}\n</main>\n</body>\n</html>\n";

static const char *need(const char *name)
{
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "fbsandbox: %s is required\n", name);
        exit(1);
    }
    return v;
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const char *listen_spec = need("FBSANDBOX_LISTEN");
    conf.client_id = need("FBSANDBOX_CLIENT_ID");
    conf.client_secret = need("FBSANDBOX_CLIENT_SECRET");
    char *uris = xstrdup(need("FBSANDBOX_REDIRECT_URIS")), *save = NULL;
    for (char *u = strtok_r(uris, ",", &save); u; u = strtok_r(NULL, ",", &save)) {
        conf.redirect_uris = xrealloc(conf.redirect_uris, (conf.n_redirect_uris + 1) * sizeof(char *));
        conf.redirect_uris[conf.n_redirect_uris++] = u;
    }
    conf.expires_in = getenv("FBSANDBOX_EXPIRES_IN") ? atol(getenv("FBSANDBOX_EXPIRES_IN")) : 43200;
    if (conf.expires_in <= 0)
        conf.expires_in = 43200;
    long threads = getenv("FBSANDBOX_THREADS") ? atol(getenv("FBSANDBOX_THREADS")) : 32;
    if (threads < 1 || threads > 512)
        threads = 32;

    char err[512];
    authorize_page = template_compile(authorize_html, sizeof authorize_html - 1, err, sizeof err);
    if (!authorize_page) {
        fprintf(stderr, "fbsandbox: authorize page: %s\n", err);
        return 1;
    }
    char csp[256];
    snprintf(csp, sizeof csp, "default-src 'none'; style-src %s; img-src data:; form-action *; frame-ancestors 'none'",
             template_style_source(authorize_page));
    authorize_csp = xstrdup(csp);
    db_init();

    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    int fd = server_listen(listen_spec, err, sizeof err);
    if (fd < 0) {
        fprintf(stderr, "fbsandbox: %s\n", err);
        return 1;
    }
    static const struct server_app app = {sbx_thread_start, sbx_thread_stop, sbx_handle, NULL};
    if (server_start(fd, (unsigned)threads, &app, err, sizeof err) != 0) {
        fprintf(stderr, "fbsandbox: %s\n", err);
        return 1;
    }
    const char *http_spec = getenv("FBSANDBOX_HTTP_LISTEN");
    if (http_spec && *http_spec && sandbox_http_start(http_spec, &app, err, sizeof err) != 0) {
        fprintf(stderr, "fbsandbox: %s\n", err);
        return 1;
    }
    log_msg(LOG_INFO, "fbsandbox listening on %s%s%s (client id %s, %zu redirect URIs)", listen_spec,
            http_spec ? " and plain HTTP on " : "", http_spec ? http_spec : "", conf.client_id,
            conf.n_redirect_uris);
    int sig;
    sigwait(&set, &sig);
    server_stop(5000);
    if (strncmp(listen_spec, "unix:", 5) == 0)
        unlink(listen_spec + 5);
    db_reset();
    template_free(authorize_page);
    free(authorize_csp);
    free(conf.redirect_uris);
    free(uris);
    curl_global_cleanup();
    return 0;
}
