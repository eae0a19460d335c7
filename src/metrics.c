#include "metrics.h"

#include "clock.h"

/* Upper bounds in microseconds of the latency histograms' buckets (then +Inf). */
static const int64_t bounds_us[METRIC_BUCKETS] = {500,    1000,    2500,    5000,   10000,
                                                  25000,  50000,   100000,  250000, 500000,
                                                  1000000, 2500000, 5000000, 10000000};

static struct {
    unsigned threads;
    int64_t started;
} process;

void metric_add(metric_counter *c)
{
    atomic_fetch_add_explicit(c, 1, memory_order_relaxed);
}

uint64_t metric_get(const metric_counter *c)
{
    return atomic_load_explicit((metric_counter *)c, memory_order_relaxed);
}

void metric_observe(struct metric_histogram *h, int64_t us)
{
    if (us < 0)
        us = 0;
    size_t i = 0;
    while (i < METRIC_BUCKETS && us > bounds_us[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint_fast64_t)us, memory_order_relaxed);
}

void metric_family(struct buf *out, const char *name, const char *type, const char *help)
{
    buf_printf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void metric_sample(struct buf *out, const char *name, const char *labels, uint64_t value)
{
    if (labels[0])
        buf_printf(out, "%s{%s} %llu\n", name, labels, (unsigned long long)value);
    else
        buf_printf(out, "%s %llu\n", name, (unsigned long long)value);
}

void metric_histogram(struct buf *out, const char *name, const char *labels,
                      const struct metric_histogram *h)
{
    uint64_t cumulative = 0;
    const char *sep = labels[0] ? "," : "";
    for (size_t i = 0; i <= METRIC_BUCKETS; i++) {
        cumulative += metric_get(&h->bucket[i]);
        if (i < METRIC_BUCKETS)
            buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                       (double)bounds_us[i] / 1e6, (unsigned long long)cumulative);
        else
            buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                       (unsigned long long)cumulative);
    }
    buf_printf(out, "%s_sum{%s} %.6f\n", name, labels, (double)metric_get(&h->sum_us) / 1e6);
    buf_printf(out, "%s_count{%s} %llu\n", name, labels,
               (unsigned long long)metric_get(&h->count));
}

void metrics_init(unsigned threads)
{
    process.threads = threads;
    process.started = clock_wall();
}

void metrics_render_process(struct buf *out, unsigned busy)
{
    metric_family(out, "fbconnect_build_info", "gauge", "fbconnect's version.");
    buf_puts(out, "fbconnect_build_info{version=\"" FBCONNECT_VERSION "\"} 1\n");
    metric_family(out, "fbconnect_start_time_seconds", "gauge", "When this process started.");
    metric_sample(out, "fbconnect_start_time_seconds", "", (uint64_t)process.started);
    metric_family(out, "fbconnect_threads", "gauge", "Worker threads configured.");
    metric_sample(out, "fbconnect_threads", "", process.threads);
    metric_family(out, "fbconnect_threads_busy", "gauge", "Worker threads serving a request now.");
    metric_sample(out, "fbconnect_threads_busy", "", busy);
}
