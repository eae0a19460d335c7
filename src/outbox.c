#include "outbox.h"

#include <curl/curl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arena.h"
#include "clock.h"
#include "events.h"
#include "ids.h"
#include "log.h"
#include "metrics.h"
#include "store.h"
#include "trust.h"

#define IDLE_POLL_MS 100     /* how soon a new event is seen when nothing else is due */
#define CLAIM_EVERY_MS 5000  /* how often dead consumers' events are looked for */
#define TRIM_EVERY_MS 60000  /* how often the stream is trimmed to the retention */
#define BACKLOG_EVERY_MS 2000
#define TOUCH_AFTER_MS 15000 /* a hold older than this is renewed before an attempt */
#define REDIS_BUDGET_MS 5000 /* one Redis command's time, whatever the link's retries */
#define CONSUMER_IDLE_MS (24 * 3600 * 1000L) /* a consumer silent this long, holding nothing, goes */

static metric_counter delivered, retried, given_up;
/* From a change to its delivery: its own buckets, as a retried event takes minutes to days. */
static const double latency_bounds_s[] = {0.1, 0.5, 1, 5, 30, 60, 300, 1800, 3600, 21600, 86400, 604800};
#define LATENCY_BUCKETS (sizeof latency_bounds_s / sizeof latency_bounds_s[0])
static metric_counter latency_bucket[LATENCY_BUCKETS + 1], latency_count, latency_sum_ms;

static void latency_observe(int64_t ms)
{
    size_t i = 0;
    while (i < LATENCY_BUCKETS && (double)ms / 1000.0 > latency_bounds_s[i])
        i++;
    metric_add(&latency_bucket[i]);
    metric_add(&latency_count);
    atomic_fetch_add_explicit(&latency_sum_ms, (uint64_t)(ms > 0 ? ms : 0), memory_order_relaxed);
}
static atomic_long pending_now = 0, recorded_now = 0;
static atomic_llong oldest_ms_now = 0;

static struct {
    const struct config *cfg;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    atomic_bool stopping;
    bool started;
    struct trust *anchors; /* FBCONNECT_EVENTS_CA_FILE or the system store, read once */
} box = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n; /* the receiver's answer is not read, only its status */
}

static int abort_on_stop(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    (void)arg, (void)a, (void)b, (void)c, (void)d;
    return atomic_load(&box.stopping) ? 1 : 0;
}

/* One attempt: POST body signed for id at this second.  The HTTP status (0: not sent or
 * no answer), and a short reason (never the body or a header) in why on failure. */
static long post(CURL *c, const struct config *cfg, const char *id, const char *body,
                 char *why, size_t why_len)
{
    char stamp[24], sig[EVENT_SIGNATURE_MAX], h_id[128], h_ts[64], h_sig[EVENT_SIGNATURE_MAX + 32];
    int64_t now = clock_wall();
    snprintf(stamp, sizeof stamp, "%" PRId64, now);
    event_sign(cfg->events_key, cfg->events_key_len, id, now, body, strlen(body), sig);
    snprintf(h_id, sizeof h_id, "webhook-id: %s", id);
    snprintf(h_ts, sizeof h_ts, "webhook-timestamp: %s", stamp);
    snprintf(h_sig, sizeof h_sig, "webhook-signature: %s", sig);
    struct curl_slist *h = NULL;
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, h_id);
    h = curl_slist_append(h, h_ts);
    h = curl_slist_append(h, h_sig);
    h = curl_slist_append(h, "Expect:");
    curl_easy_reset(c);
    curl_easy_setopt(c, CURLOPT_URL, cfg->events_url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    curl_easy_setopt(c, CURLOPT_USERAGENT, "fbconnect-events");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, cfg->events_timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, cfg->events_timeout_ms);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
    curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, abort_on_stop);
    if (cfg->events_ca_file) { /* this bundle alone, as for FreshBooks */
        curl_easy_setopt(c, CURLOPT_CAINFO, cfg->events_ca_file);
        curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
    }
    trust_apply(c, box.anchors);
    CURLcode rc = curl_easy_perform(c);
    long status = 0;
    if (rc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status < 200 || status > 299)
            snprintf(why, why_len, "answered %ld", status);
    } else {
        snprintf(why, why_len, "%s", curl_easy_strerror(rc));
    }
    curl_slist_free_all(h);
    return status;
}

/* A uniform draw in [0.75, 1.25]: each retry delay's jitter. */
static double jitter(void)
{
    uint32_t r;
    random_bytes(&r, sizeof r);
    return 0.75 + 0.5 * ((double)r / 4294967295.0);
}

/* Every Redis command of the thread gets its own time: an attempt's seconds never eat it. */
static void redis_time(struct store *st)
{
    store_set_deadline(st, clock_mono_us() + REDIS_BUDGET_MS * 1000LL);
}

/* Sends one event and settles it: delivered, due again, or given up past the retention. */
static void deliver(struct store *st, CURL *c, const struct config *cfg, const char *consumer,
                    const struct store_event_entry *e, int64_t held_since_us)
{
    redis_time(st);
    /* Held long enough for another process to think it abandoned: renew the hold first. */
    if (clock_mono_us() - held_since_us > TOUCH_AFTER_MS * 1000LL &&
        store_events_touch(st, consumer, e, EVENTS_LEASE_MS) != STORE_OK)
        return; /* not sent: whoever holds it next sends it */
    char id[96], why[160] = "";
    snprintf(id, sizeof id, "evt_%s", e->id);
    char *body = event_body(e->type, e->ts_ms, e->owner, e->sequence, e->business, e->data);
    long status = body ? post(c, cfg, id, body, why, sizeof why) : 0;
    free(body);
    if (atomic_load(&box.stopping))
        return; /* cut short: still pending, delivered later */
    int64_t now = clock_wall_ms();
    redis_time(st);
    if (status >= 200 && status <= 299) {
        if (store_events_settle(st, e, SETTLE_DELIVERED, now, NULL) == STORE_OK) {
            metric_add(&delivered);
            latency_observe(now - e->ts_ms);
        }
        return;
    }
    if (!body)
        snprintf(why, sizeof why, "a malformed entry");
    unsigned attempts = store_events_attempts(st, e->id) + 1;
    int64_t next = now + event_retry_delay_ms(attempts, jitter());
    bool give_up = !body || next > e->ts_ms + cfg->events_retention * 1000LL;
    if (store_events_settle(st, e, give_up ? SETTLE_GIVE_UP : SETTLE_RETRY, give_up ? now : next,
                            &attempts) != STORE_OK)
        return; /* still pending: taken over after EVENTS_CLAIM_IDLE_MS */
    if (give_up) {
        metric_add(&given_up);
        log_msg(LOG_ERROR, "event %s (%s) given up after %u attempts over the retention (%lds): "
                           "last attempt %s; `fbconnect events retry %s` sends it again",
                e->id, e->type, attempts, cfg->events_retention, why, e->id);
    } else {
        metric_add(&retried);
        log_msg(attempts == 1 ? LOG_WARN : LOG_INFO, "event %s (%s) not delivered (%s): attempt %u, "
                "next in %.1f s", e->id, e->type, why, attempts, (double)(next - now) / 1000.0);
    }
}

static void pause_idle(long ms)
{
    pthread_mutex_lock(&box.mu);
    if (!atomic_load(&box.stopping)) {
        struct timespec until = clock_realtime_in(ms);
        pthread_cond_timedwait(&box.cv, &box.mu, &until);
    }
    pthread_mutex_unlock(&box.mu);
}

/* Sends a batch the thread now holds — once a replica has what it read (the entries and
 * the changes they tell of), so no failover can take back an event already delivered. */
static void deliver_batch(struct store *st, CURL *c, const struct config *cfg,
                          const char *consumer, struct store_event_entry *e, int n)
{
    int64_t fetched = clock_mono_us();
    redis_time(st);
    if (n <= 0 || store_wait_durable(st) != STORE_OK)
        return; /* kept: taken again (by this process or another) after the lease */
    for (int i = 0; i < n && !atomic_load(&box.stopping); i++)
        deliver(st, c, cfg, consumer, &e[i], fetched);
}

static void *outbox_main(void *arg)
{
    (void)arg;
    const struct config *cfg = box.cfg;
    struct store *st = store_new(cfg);
    CURL *c = curl_easy_init();
    struct arena arena;
    arena_init(&arena, 16384);
    struct arena *a = &arena;
    /* host, pid and a random part: unique even across containers that share both */
    char host[128] = "host", consumer[192];
    gethostname(host, sizeof host - 1);
    uint8_t rnd[4];
    random_bytes(rnd, sizeof rnd);
    snprintf(consumer, sizeof consumer, "%s:%ld:%02x%02x%02x%02x", host, (long)getpid(), rnd[0],
             rnd[1], rnd[2], rnd[3]);
    bool group = false, redis_down = false;
    int64_t start = clock_mono_us() / 1000;
    int64_t next_claim = 0, next_trim = start + TRIM_EVERY_MS, next_backlog = 0;
    struct store_event_entry e[EVENTS_BATCH];
    while (!atomic_load(&box.stopping) && c) {
        arena_reset(a);
        redis_time(st);
        if (!group && store_events_group(st) != STORE_OK) {
            if (!redis_down)
                log_msg(LOG_WARN, "events: Redis unavailable (or refused the event stream); "
                                  "delivering once it is back");
            redis_down = true;
            pause_idle(1000);
            continue;
        }
        group = true;
        redis_down = false;
        int64_t mono = clock_mono_us() / 1000;
        int busy = 0;
        int n = store_events_due(st, clock_wall_ms(), EVENTS_LEASE_MS, EVENTS_BATCH, a, e);
        deliver_batch(st, c, cfg, consumer, e, n);
        busy += n > 0 ? n : 0;
        redis_time(st);
        n = store_events_read(st, consumer, EVENTS_BATCH, a, e);
        if (n < 0) { /* Redis restarted or flushed: make the group again, unhurried */
            group = false;
            pause_idle(1000);
            continue;
        }
        deliver_batch(st, c, cfg, consumer, e, n);
        busy += n;
        if (mono >= next_claim) {
            next_claim = mono + CLAIM_EVERY_MS;
            redis_time(st);
            n = store_events_claim(st, consumer, EVENTS_CLAIM_IDLE_MS, EVENTS_BATCH, a, e);
            if (n > 0)
                log_msg(LOG_INFO, "events: took over %d event(s) another process left unsent", n);
            deliver_batch(st, c, cfg, consumer, e, n);
            if (n == EVENTS_BATCH)
                next_claim = 0;
            busy += n > 0 ? n : 0;
        }
        if (mono >= next_trim) {
            next_trim = mono + TRIM_EVERY_MS;
            int64_t now = clock_wall_ms(), keep = cfg->events_retention * 1000LL;
            redis_time(st);
            int gave_up = store_events_trim(st, now - keep, now - keep, CONSUMER_IDLE_MS);
            if (gave_up > 0) {
                for (int i = 0; i < gave_up; i++)
                    metric_add(&given_up);
                log_msg(LOG_ERROR, "events: %d event(s) older than the retention (%lds) were never "
                                   "delivered (fbconnect was not running to send them): given up; "
                                   "`fbconnect events --failed` lists them",
                        gave_up, cfg->events_retention);
            }
        }
        if (mono >= next_backlog) {
            next_backlog = mono + BACKLOG_EVERY_MS;
            long pending = 0, recorded = 0;
            int64_t oldest = 0;
            redis_time(st);
            if (store_events_backlog(st, clock_wall_ms(), &pending, &oldest, &recorded) == STORE_OK) {
                atomic_store(&pending_now, pending);
                atomic_store(&oldest_ms_now, oldest);
                atomic_store(&recorded_now, recorded);
            }
        }
        if (!busy)
            pause_idle(IDLE_POLL_MS);
    }
    arena_destroy(a);
    if (c)
        curl_easy_cleanup(c);
    store_free(st);
    return NULL;
}

int outbox_start(const struct config *cfg)
{
    if (!cfg->events_url || box.started)
        return 0;
    box.cfg = cfg;
    box.anchors = trust_load(cfg->events_ca_file);
    atomic_store(&box.stopping, false);
    if (pthread_create(&box.thread, NULL, outbox_main, NULL) != 0)
        return -1;
    box.started = true;
    return 0;
}

void outbox_stop(void)
{
    if (!box.started)
        return;
    pthread_mutex_lock(&box.mu);
    atomic_store(&box.stopping, true);
    pthread_cond_signal(&box.cv);
    pthread_mutex_unlock(&box.mu);
    pthread_join(box.thread, NULL);
    box.started = false;
    trust_free(box.anchors);
    box.anchors = NULL;
}

void outbox_metrics_render(struct buf *out)
{
    if (!box.started)
        return;
    metric_family(out, "fbconnect_events_recorded_total", "counter",
                  "Connection events recorded in Redis (every process's, as the stream counts them).");
    metric_sample(out, "fbconnect_events_recorded_total", "", (uint64_t)atomic_load(&recorded_now));
    metric_family(out, "fbconnect_events_delivered_total", "counter",
                  "Connection events this process delivered (a 2xx from the back end).");
    metric_sample(out, "fbconnect_events_delivered_total", "", metric_get(&delivered));
    metric_family(out, "fbconnect_events_retried_total", "counter",
                  "Delivery attempts of this process that failed and were scheduled again.");
    metric_sample(out, "fbconnect_events_retried_total", "", metric_get(&retried));
    metric_family(out, "fbconnect_events_given_up_total", "counter",
                  "Connection events this process gave up on after the retention.");
    metric_sample(out, "fbconnect_events_given_up_total", "", metric_get(&given_up));
    metric_family(out, "fbconnect_events_pending", "gauge",
                  "Connection events not delivered yet (every process's).");
    metric_sample(out, "fbconnect_events_pending", "", (uint64_t)atomic_load(&pending_now));
    metric_family(out, "fbconnect_events_oldest_pending_seconds", "gauge",
                  "Age of the oldest connection event not delivered yet.");
    metric_sample(out, "fbconnect_events_oldest_pending_seconds", "",
                  (uint64_t)(atomic_load(&oldest_ms_now) / 1000));
    metric_family(out, "fbconnect_events_delivery_seconds", "histogram",
                  "From a change to its event's delivery, for events this process delivered.");
    uint64_t cumulative = 0;
    for (size_t i = 0; i <= LATENCY_BUCKETS; i++) {
        cumulative += metric_get(&latency_bucket[i]);
        char le[48];
        if (i < LATENCY_BUCKETS)
            snprintf(le, sizeof le, "le=\"%g\"", latency_bounds_s[i]);
        else
            snprintf(le, sizeof le, "le=\"+Inf\"");
        metric_sample(out, "fbconnect_events_delivery_seconds_bucket", le, cumulative);
    }
    buf_printf(out, "fbconnect_events_delivery_seconds_sum %.3f\n",
               (double)metric_get(&latency_sum_ms) / 1000.0);
    metric_sample(out, "fbconnect_events_delivery_seconds_count", "", metric_get(&latency_count));
}
