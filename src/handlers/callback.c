/* GET /callback — FreshBooks sends the browser back here with `code` and `state`.
 * The state is checked before anything else; the code is exchanged only after the state's
 * single use is recorded.
 * 303: connected; to the state's return_to or to /connected, with a new session cookie.
 * 400: state missing, malformed, forged, expired or already used; FreshBooks said no
 *      (access_denied, no code) or refused the code (invalid_grant).  Nothing stored.
 * 403: a genuine state issued to another browser session or site user; or
 *      FBCONNECT_USER_PARAM is set and the visitor is not signed in.
 * 502: the token endpoint was unreachable, slow, or answered nonsense; or FreshBooks granted
 *      fewer scopes than FBCONNECT_SCOPES asks for (the pair revoked).  Nothing stored.
 * 503: Redis unavailable; FreshBooks rate-limits us or refuses the app's credentials. */
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "connection.h"
#include "handlers/handlers.h"
#include "log.h"
#include "metrics.h"
#include "session.h"
#include "state.h"

#define CODE_MAX 2048

/* How a callback ended: its log outcome and its count on /metrics (one name table). */
enum callback_outcome {
    CB_CONNECTED,
    CB_CONNECTED_IDENTITY_PENDING,
    CB_ACCESS_DENIED,
    CB_PROVIDER_ERROR,
    CB_CODE_MISSING,
    CB_STATE_MISSING,
    CB_STATE_MALFORMED,
    CB_STATE_FORGED,
    CB_STATE_EXPIRED,
    CB_STATE_REPLAYED,
    CB_STATE_OTHER_SESSION,
    CB_STATE_OTHER_USER,
    CB_CODE_REFUSED,
    CB_TOKEN_ENDPOINT_FAILED,
    CB_SCOPES_NOT_GRANTED,
    CB_INVALID_CLIENT,
    CB_RATE_LIMITED,
    CB_REDIS_UNAVAILABLE,
    CB_STORE_FAILED,
    CB_NOT_SIGNED_IN,
    CB_BUSY,
    CB_OTHER,
    CB__MAX
};
static const char *const outcome_names[CB__MAX] = {
    [CB_CONNECTED] = "connected",
    [CB_CONNECTED_IDENTITY_PENDING] = "connected_identity_pending",
    [CB_ACCESS_DENIED] = "access_denied",
    [CB_PROVIDER_ERROR] = "provider_error",
    [CB_CODE_MISSING] = "code_missing",
    [CB_STATE_MISSING] = "state_missing",
    [CB_STATE_MALFORMED] = "state_malformed",
    [CB_STATE_FORGED] = "state_forged",
    [CB_STATE_EXPIRED] = "state_expired",
    [CB_STATE_REPLAYED] = "state_replayed",
    [CB_STATE_OTHER_SESSION] = "state_other_session",
    [CB_STATE_OTHER_USER] = "state_other_user",
    [CB_CODE_REFUSED] = "code_refused",
    [CB_TOKEN_ENDPOINT_FAILED] = "token_endpoint_failed",
    [CB_SCOPES_NOT_GRANTED] = "scopes_not_granted",
    [CB_INVALID_CLIENT] = "invalid_client",
    [CB_RATE_LIMITED] = "rate_limited",
    [CB_REDIS_UNAVAILABLE] = "redis_unavailable",
    [CB_STORE_FAILED] = "store_failed",
    [CB_NOT_SIGNED_IN] = "not_signed_in",
    [CB_BUSY] = "busy",
    [CB_OTHER] = "other",
};
static metric_counter outcome_counts[CB__MAX];

void callback_metrics_render(struct buf *out)
{
    metric_family(out, "fbconnect_callback_outcomes_total", "counter", "How callbacks ended.");
    char labels[64];
    for (size_t i = 0; i < CB__MAX; i++) {
        snprintf(labels, sizeof labels, "outcome=\"%s\"", outcome_names[i]);
        metric_sample(out, "fbconnect_callback_outcomes_total", labels, metric_get(&outcome_counts[i]));
    }
}


static enum callback_outcome fail(struct ctx *ctx, int status, enum callback_outcome outcome,
                                  const char *title, const char *message)
{
    page_error(ctx->app->pages, ctx->resp, status, title, message, route_url(ctx, "connect"),
               "Start again");
    return outcome;
}

static bool code_ok(const char *code)
{
    size_t n = strlen(code);
    if (n == 0 || n > CODE_MAX)
        return false;
    for (size_t i = 0; i < n; i++)
        if (code[i] <= ' ' || code[i] >= 0x7f)
            return false;
    return true;
}

/* Checks the state; on failure answers, sets *failed and returns false. */
static bool check_state(struct ctx *ctx, struct state_claims *claims, const char **text,
                        enum callback_outcome *failed)
{
    const char *state = NULL;
    enum form_status fs = request_query(ctx->req, "state", STATE_TEXT_MAX, &state);
    if (fs == FORM_MISSING) {
        *failed = fail(ctx, 400, CB_STATE_MISSING, "This link is incomplete",
             "The address FreshBooks sent you back to is missing its security check, so we "
             "can't finish connecting. Please start again.");
        return false;
    }
    enum state_result sr = fs == FORM_OK
                               ? state_verify(&ctx->app->keys, state, strlen(state),
                                              ctx->has_session ? ctx->session_id : NULL,
                                              ctx->site_user, clock_wall(), claims)
                               : STATE_MALFORMED;
    if (sr == STATE_OTHER_SESSION) {
        /* Issued to this browser before a connect replaced its session id (a second tab,
         * Back, a reload): still its own. */
        const char *earlier = session_earlier(ctx);
        if (earlier) {
            enum state_result again = state_verify_earlier(&ctx->app->keys, state, strlen(state),
                                                           earlier, ctx->site_user, clock_wall(),
                                                           claims);
            if (again == STATE_OK || again == STATE_OTHER_USER)
                sr = again;
        }
    }
    switch (sr) {
    case STATE_OK:
        *text = state;
        return true;
    case STATE_EXPIRED:
        *failed = fail(ctx, 400, CB_STATE_EXPIRED, "This link has expired",
             "More than 10 minutes passed since you started connecting. Please start again.");
        return false;
    case STATE_OTHER_SESSION:
    case STATE_OTHER_USER:
        *failed = fail(ctx, 403, sr == STATE_OTHER_SESSION ? CB_STATE_OTHER_SESSION : CB_STATE_OTHER_USER,
             "This link belongs to someone else",
             "This connection was started in another browser or by another account, so we "
             "won't finish it here. Start connecting from this browser instead.");
        return false;
    default:
        *failed = fail(ctx, 400, sr == STATE_FORGED ? CB_STATE_FORGED : CB_STATE_MALFORMED,
             "This link isn't valid",
             "The address FreshBooks sent you back to failed our security check, so nothing "
             "was connected. Please start again.");
        return false;
    }
}

/* 400 for a state used already: a reload of the callback, or Back and Authorize again.
 * When this browser is connected, the page says so and links on. */
static enum callback_outcome replayed(struct ctx *ctx, const struct state_claims *claims)
{
    struct loaded l;
    if (connection_load(ctx->svc, session_owner(ctx), &l) == LOOKUP_FOUND && !l.c.reconnect_required) {
        const char *who = l.c.has_identity && l.c.ident.email && *l.c.ident.email
                              ? arena_printf(ctx->arena, " as %s", l.c.ident.email)
                              : "";
        page_error(ctx->app->pages, ctx->resp, 400, "This link was already used",
                   arena_printf(ctx->arena,
                                "Each connect link works once, and this one has been used. "
                                "This browser is connected to FreshBooks%s, so there's nothing "
                                "more to do.",
                                who),
                   claims->return_to[0] ? claims->return_to : route_url(ctx, "connected"),
                   "Continue");
        return CB_STATE_REPLAYED;
    }
    return fail(ctx, 400, CB_STATE_REPLAYED, "This link was already used",
                "Each connect link works once, and this one has been used. Please start again.");
}

/* The business the owner will act on: the only one; else, among several, the one this
 * owner chose before (`previous`: its pointer before this connect) when it is still among
 * the identity's and the connection is the same FreshBooks user's; else none (0). */
static int64_t business_after_connect(struct ctx *ctx, const struct identity *ident,
                                      const char *previous)
{
    if (!ident || ident->n_businesses == 0)
        return 0;
    if (ident->n_businesses == 1)
        return ident->businesses[0].id;
    int64_t was = connection_choice_of(ctx->svc, previous,
                                       connection_identity_record(ctx->svc, ident->user_id));
    for (size_t i = 0; was && i < ident->n_businesses; i++)
        if (ident->businesses[i].id == was)
            return was;
    return 0;
}

static enum callback_outcome callback(struct ctx *ctx)
{
    if (ctx->cfg->user_param && !ctx->site_user) {
        page_sign_in_first(ctx);
        return CB_NOT_SIGNED_IN;
    }
    struct state_claims claims;
    enum callback_outcome failed;
    const char *state = NULL;
    if (!check_state(ctx, &claims, &state, &failed))
        return failed;

    const char *error = NULL, *code = NULL;
    enum form_status es = request_query(ctx->req, "error", 256, &error);
    enum form_status cs = request_query(ctx->req, "code", CODE_MAX, &code);
    if (es != FORM_MISSING) {
        bool denied = es == FORM_OK && strcmp(error, "access_denied") == 0;
        return fail(ctx, 400, denied ? CB_ACCESS_DENIED : CB_PROVIDER_ERROR,
             denied ? "You didn't connect FreshBooks" : "FreshBooks didn't connect",
             denied ? "You chose not to allow access, so nothing was connected. You can try "
                      "again whenever you like."
                    : "FreshBooks sent you back without permission to connect, so nothing was "
                      "connected. Please try again.");
    }
    if (cs != FORM_OK || !code_ok(code))
        return fail(ctx, 400, CB_CODE_MISSING, "FreshBooks didn't connect",
                    "FreshBooks sent you back without a valid authorization code, so nothing was "
                    "connected. Please try again.");

    /* Record the state's single use before spending the code. */
    name_text used;
    state_used_id(&claims, used);
    switch (store_state_use(ctx->svc->store, used, claims.expires + STATE_TTL)) {
    case STORE_OK:
        break;
    case STORE_EXISTS:
        return replayed(ctx, &claims);
    default:
        page_unavailable(ctx, "redis_unavailable");
        return CB_REDIS_UNAVAILABLE;
    }

    struct oauth *o = ctx->svc->oauth;
    struct token_pair pair;
    /* PKCE: the verifier is the state's, derived again (nothing was stored). */
    char verifier[STATE_PKCE_LEN + 1];
    bool pkce = ctx->cfg->pkce && state_pkce_verifier(&ctx->app->keys, state, verifier);
    enum oauth_result er = oauth_exchange_code(o, ctx->arena, code, pkce ? verifier : NULL, &pair);
    switch (er) {
    case OAUTH_OK:
        break;
    case OAUTH_INVALID_GRANT:
    case OAUTH_REJECTED:
        log_msg(LOG_WARN, "code exchange refused: %s", oauth_last_error(o));
        return fail(ctx, 400, CB_CODE_REFUSED, "FreshBooks didn't accept this sign-in",
                    "FreshBooks said the authorization has expired or was already used. Nothing "
                    "was connected. Please start again.");
    case OAUTH_INVALID_CLIENT:
        log_msg(LOG_ERROR, "FreshBooks refuses this app's client id/secret (invalid_client): "
                           "check FBCONNECT_CLIENT_ID and FBCONNECT_CLIENT_SECRET");
        page_error(ctx->app->pages, ctx->resp, 503, "Connecting is unavailable",
                   "This site's connection to FreshBooks is misconfigured. The site's operators "
                   "have been alerted; please try again later.",
                   route_url(ctx, "connect"), "Back");
        return CB_INVALID_CLIENT;
    case OAUTH_RATE_LIMITED:
    case OAUTH_BUSY: {
        /* The real pause: what FreshBooks' 429 asked for (the process waits as long), or a
         * moment for calls already in flight. */
        long wait = er == OAUTH_RATE_LIMITED ? oauth_retry_after(o) : 2;
        if (wait < 1)
            wait = 1;
        const char *when = wait < 60 ? arena_printf(ctx->arena, "in %ld second%s", wait, wait == 1 ? "" : "s")
                                     : arena_printf(ctx->arena, "in %ld minute%s", (wait + 59) / 60,
                                                    (wait + 59) / 60 == 1 ? "" : "s");
        page_error(ctx->app->pages, ctx->resp, 503, "FreshBooks is busy",
                   arena_printf(ctx->arena, "FreshBooks can't take more requests from this site "
                                            "right now. Nothing was connected. Please start "
                                            "again %s.", when),
                   route_url(ctx, "connect"), "Start again");
        response_header(ctx->resp, "Retry-After", arena_printf(ctx->arena, "%ld", wait));
        return er == OAUTH_BUSY ? CB_BUSY : CB_RATE_LIMITED;
    }
    case OAUTH_UNAVAILABLE:
        log_msg(LOG_WARN, "code exchange failed: %s", oauth_last_error(o));
        return fail(ctx, 502, CB_TOKEN_ENDPOINT_FAILED, "FreshBooks didn't answer properly",
                    "We couldn't complete the connection because FreshBooks didn't respond as "
                    "expected. Nothing was connected. Please try again in a few minutes.");
    }

    if (oauth_scopes_missing(ctx->cfg->scopes, pair.scope)) {
        /* Stored, it would be marked scopes_changed at once: give it back instead. */
        log_msg(LOG_ERROR, "FreshBooks granted fewer scopes than FBCONNECT_SCOPES asks for "
                           "(granted: %s); the pair was revoked, nothing stored",
                pair.scope);
        oauth_revoke(o, pair.refresh_token);
        oauth_revoke(o, pair.access_token);
        return fail(ctx, 502, CB_SCOPES_NOT_GRANTED, "FreshBooks gave less access than needed",
                    "FreshBooks allowed this site less access to your account than it asked for, "
                    "so nothing was connected. The site's operators have been alerted; please "
                    "try again later.");
    }

    struct identity ident;
    bool has_ident = oauth_fetch_identity(o, ctx->arena, pair.access_token, &ident) == OAUTH_OK;
    if (!has_ident)
        log_msg(LOG_WARN, "identity call failed, keeping the pair for this session: %s",
                oauth_last_error(o));

    /* A new session id for the connected browser (no fixation); the old pointer goes.
     * The cookie changes only once the new pointer is stored. */
    const char *old_owner = ctx->has_session ? session_owner_of(ctx, ctx->session_id) : NULL;
    id_text new_id;
    id_new(new_id);
    const char *owner = ctx->cfg->user_param ? session_owner(ctx) : session_owner_of(ctx, new_id);
    int64_t business = 0;
    if (has_ident)
        business = business_after_connect(ctx, &ident, ctx->cfg->user_param ? owner : old_owner);
    if (connection_connect(ctx->svc, &pair, has_ident ? &ident : NULL, owner, old_owner,
                           business) != STORE_OK) {
        log_msg(LOG_ERROR, "could not store a new token pair: Redis unavailable; the user must connect again");
        page_unavailable(ctx, "store_failed");
        return CB_STORE_FAILED;
    }
    id_text was = {0};
    bool had_session = ctx->has_session;
    const char *earlier = had_session ? session_earlier(ctx) : NULL; /* under the old id */
    memcpy(was, ctx->session_id, sizeof was);
    memcpy(ctx->session_id, new_id, sizeof new_id);
    ctx->has_session = true;
    session_set_cookie(ctx);
    if (had_session) /* its states stay this browser's (a second tab, Back, a reload) */
        session_remember_earlier(ctx, was, earlier);
    ctx->resp->status = 303;
    const char *next = claims.return_to[0] ? claims.return_to : route_url(ctx, "connected");
    if (has_ident && ident.n_businesses > 1 && !business) {
        /* Several businesses and no choice kept: the person picks one first. */
        next = claims.return_to[0]
                   ? arena_printf(ctx->arena, "%sbusiness?return_to=%s", ctx->cfg->base_path,
                                  url_escape(ctx->arena, claims.return_to))
                   : route_url(ctx, "business");
    }
    response_header(ctx->resp, "Location", next);
    response_set(ctx->resp, 303, "text/plain; charset=utf-8", "Connected.\n");
    return has_ident ? CB_CONNECTED : CB_CONNECTED_IDENTITY_PENDING;
}

void handle_callback(struct ctx *ctx)
{
    enum callback_outcome o = callback(ctx);
    metric_add(&outcome_counts[o]);
    ctx->outcome = outcome_names[o];
}
