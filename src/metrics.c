#include "metrics.h"

#include <stdatomic.h>
#include <string.h>

#include "clock.h"

static const char *const routes[] = {"connect", "callback", "connected", "status",
                                     "disconnect", "healthz", "readyz", "auth",
                                     "internal/token", "metrics", "unknown"};
#define N_ROUTES (sizeof routes / sizeof routes[0])

static const int statuses[] = {200, 204, 302, 303, 400, 401, 403, 404, 405, 409, 411,
                               413, 414, 415, 429, 431, 500, 502, 503, 504, 0 /* other */};
#define N_STATUSES (sizeof statuses / sizeof statuses[0])

/* Upper bounds in microseconds of the latency histograms' buckets (then +Inf). */
static const int64_t bounds_us[] = {500,    1000,   2500,   5000,    10000,   25000,  50000,
                                    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000};
#define N_BOUNDS (sizeof bounds_us / sizeof bounds_us[0])

struct histogram {
    atomic_uint_fast64_t bucket[N_BOUNDS + 1]; /* not cumulative; the last is +Inf */
    atomic_uint_fast64_t count, sum_us;
};

static const char *const callback_outcomes[] = {
    "connected",        "connected_identity_pending", "access_denied",       "provider_error",
    "code_missing",     "state_missing",              "state_malformed",     "state_forged",
    "state_expired",    "state_replayed",             "state_other_session", "state_other_user",
    "code_refused",     "token_endpoint_failed",      "invalid_client",      "rate_limited",
    "redis_unavailable", "store_failed",              "not_signed_in",       "busy",
    "other"};
#define N_OUTCOMES (sizeof callback_outcomes / sizeof callback_outcomes[0])

static const char *const refresh_names[RM__MAX] = {
    "refreshed", "already_fresh", "waited", "invalid_grant",
    "invalid_client", "transient", "cooldown", "kept_in_memory"};
static const char *const fb_names[FB__MAX] = {"exchange", "refresh", "identity", "revoke"};
#define N_RESULTS OAUTH_RESULTS

static struct {
    unsigned threads;
    int64_t started;
    struct histogram requests[N_ROUTES][N_STATUSES];
    atomic_uint_fast64_t outcomes[N_OUTCOMES];
    atomic_uint_fast64_t refresh[RM__MAX];
    struct histogram redis;
    atomic_uint_fast64_t redis_errors;
    struct histogram freshbooks[FB__MAX];
    atomic_uint_fast64_t freshbooks_results[FB__MAX][N_RESULTS];
    atomic_uint_fast64_t revokes[2];
} m;

void metrics_init(unsigned threads)
{
    m.threads = threads;
    m.started = clock_wall();
}

static void observe(struct histogram *h, int64_t us)
{
    if (us < 0)
        us = 0;
    size_t i = 0;
    while (i < N_BOUNDS && us > bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint_fast64_t)us, memory_order_relaxed);
}

static size_t route_index(const char *route)
{
    for (size_t i = 0; i < N_ROUTES - 1; i++)
        if (strcmp(routes[i], route) == 0)
            return i;
    return N_ROUTES - 1;
}

static size_t status_index(int status)
{
    for (size_t i = 0; i < N_STATUSES - 1; i++)
        if (statuses[i] == status)
            return i;
    return N_STATUSES - 1;
}

void metrics_request(const char *route, int status, int64_t duration_us)
{
    observe(&m.requests[route_index(route)][status_index(status)], duration_us);
}

void metrics_callback_outcome(const char *outcome)
{
    size_t i = 0;
    while (outcome && i < N_OUTCOMES - 1 && strcmp(callback_outcomes[i], outcome) != 0)
        i++;
    if (!outcome)
        i = N_OUTCOMES - 1;
    atomic_fetch_add_explicit(&m.outcomes[i], 1, memory_order_relaxed);
}

void metrics_refresh(enum refresh_metric which)
{
    atomic_fetch_add_explicit(&m.refresh[which], 1, memory_order_relaxed);
}

void metrics_redis(bool ok, int64_t duration_us)
{
    observe(&m.redis, duration_us);
    if (!ok)
        atomic_fetch_add_explicit(&m.redis_errors, 1, memory_order_relaxed);
}

void metrics_freshbooks(enum fb_call call, enum oauth_result result, int64_t duration_us)
{
    observe(&m.freshbooks[call], duration_us);
    atomic_fetch_add_explicit(&m.freshbooks_results[call][result], 1, memory_order_relaxed);
}

void metrics_revoke(bool confirmed)
{
    atomic_fetch_add_explicit(&m.revokes[confirmed ? 1 : 0], 1, memory_order_relaxed);
}

static uint64_t get(atomic_uint_fast64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* Writes one histogram's series; labels is "" or `key="value",…` without braces. */
static void render_histogram(struct buf *out, const char *name, const char *labels,
                             struct histogram *h)
{
    uint64_t cumulative = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i <= N_BOUNDS; i++) {
        cumulative += get(&h->bucket[i]);
        if (i < N_BOUNDS)
            buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                       (double)bounds_us[i] / 1e6, (unsigned long long)cumulative);
        else
            buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                       (unsigned long long)cumulative);
    }
    buf_printf(out, "%s_sum{%s} %.6f\n", name, labels, (double)get(&h->sum_us) / 1e6);
    buf_printf(out, "%s_count{%s} %llu\n", name, labels, (unsigned long long)get(&h->count));
}

void metrics_render(struct buf *out, unsigned busy, unsigned kept)
{
    buf_printf(out, "# HELP fbconnect_build_info fbconnect's version.\n"
                    "# TYPE fbconnect_build_info gauge\n"
                    "fbconnect_build_info{version=\"" FBCONNECT_VERSION "\"} 1\n");
    buf_printf(out, "# HELP fbconnect_start_time_seconds When this process started.\n"
                    "# TYPE fbconnect_start_time_seconds gauge\n"
                    "fbconnect_start_time_seconds %lld\n", (long long)m.started);
    buf_printf(out, "# HELP fbconnect_threads Worker threads configured.\n"
                    "# TYPE fbconnect_threads gauge\nfbconnect_threads %u\n", m.threads);
    buf_printf(out, "# HELP fbconnect_threads_busy Worker threads serving a request now.\n"
                    "# TYPE fbconnect_threads_busy gauge\nfbconnect_threads_busy %u\n", busy);
    buf_printf(out, "# HELP fbconnect_pairs_kept_in_memory Refreshed pairs Redis has not taken yet.\n"
                    "# TYPE fbconnect_pairs_kept_in_memory gauge\n"
                    "fbconnect_pairs_kept_in_memory %u\n", kept);

    buf_puts(out, "# HELP fbconnect_requests_seconds Requests by route and status, and their duration.\n"
                  "# TYPE fbconnect_requests_seconds histogram\n");
    for (size_t r = 0; r < N_ROUTES; r++)
        for (size_t s = 0; s < N_STATUSES; s++) {
            if (!get(&m.requests[r][s].count))
                continue;
            char labels[96];
            if (statuses[s])
                snprintf(labels, sizeof labels, "route=\"%s\",status=\"%d\"", routes[r], statuses[s]);
            else
                snprintf(labels, sizeof labels, "route=\"%s\",status=\"other\"", routes[r]);
            render_histogram(out, "fbconnect_requests_seconds", labels, &m.requests[r][s]);
        }

    buf_puts(out, "# HELP fbconnect_callback_outcomes_total How callbacks ended.\n"
                  "# TYPE fbconnect_callback_outcomes_total counter\n");
    for (size_t i = 0; i < N_OUTCOMES; i++)
        buf_printf(out, "fbconnect_callback_outcomes_total{outcome=\"%s\"} %llu\n",
                   callback_outcomes[i], (unsigned long long)get(&m.outcomes[i]));

    buf_puts(out, "# HELP fbconnect_refresh_total Refresh decisions by outcome.\n"
                  "# TYPE fbconnect_refresh_total counter\n");
    for (size_t i = 0; i < RM__MAX; i++)
        buf_printf(out, "fbconnect_refresh_total{outcome=\"%s\"} %llu\n", refresh_names[i],
                   (unsigned long long)get(&m.refresh[i]));

    buf_puts(out, "# HELP fbconnect_redis_errors_total Redis commands that failed (unreachable, "
                  "timeout, error reply).\n# TYPE fbconnect_redis_errors_total counter\n");
    buf_printf(out, "fbconnect_redis_errors_total %llu\n", (unsigned long long)get(&m.redis_errors));
    buf_puts(out, "# HELP fbconnect_redis_seconds Redis command latency.\n"
                  "# TYPE fbconnect_redis_seconds histogram\n");
    render_histogram(out, "fbconnect_redis_seconds", "", &m.redis);

    buf_puts(out, "# HELP fbconnect_freshbooks_calls_total Calls to FreshBooks by kind and result.\n"
                  "# TYPE fbconnect_freshbooks_calls_total counter\n");
    for (size_t c = 0; c < FB__MAX; c++)
        for (int r = 0; r < N_RESULTS; r++)
            buf_printf(out, "fbconnect_freshbooks_calls_total{call=\"%s\",result=\"%s\"} %llu\n",
                       fb_names[c], oauth_result_name((enum oauth_result)r),
                       (unsigned long long)get(&m.freshbooks_results[c][r]));
    buf_puts(out, "# HELP fbconnect_freshbooks_seconds FreshBooks call latency by kind.\n"
                  "# TYPE fbconnect_freshbooks_seconds histogram\n");
    for (size_t c = 0; c < FB__MAX; c++) {
        char labels[32];
        snprintf(labels, sizeof labels, "call=\"%s\"", fb_names[c]);
        render_histogram(out, "fbconnect_freshbooks_seconds", labels, &m.freshbooks[c]);
    }

    buf_puts(out, "# HELP fbconnect_revokes_total Disconnects by whether FreshBooks confirmed the revoke.\n"
                  "# TYPE fbconnect_revokes_total counter\n");
    buf_printf(out, "fbconnect_revokes_total{result=\"confirmed\"} %llu\n",
               (unsigned long long)get(&m.revokes[1]));
    buf_printf(out, "fbconnect_revokes_total{result=\"unconfirmed\"} %llu\n",
               (unsigned long long)get(&m.revokes[0]));
}
