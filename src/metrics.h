/* metrics.h — the primitives of /metrics (Prometheus text format): counters and latency
 * histograms, updated by relaxed atomic adds (no lock, no allocation), and the lines that
 * render them.  A leaf: each module keeps its own counters and renders them
 * (store_metrics_render, oauth_metrics_render, …); handlers/metrics.c puts the exposition
 * together. */
#ifndef FBC_METRICS_H
#define FBC_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

typedef atomic_uint_fast64_t metric_counter;

#define METRIC_BUCKETS 14 /* latency bounds, 0.5 ms to 10 s, then +Inf */

struct metric_histogram {
    metric_counter bucket[METRIC_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    metric_counter count, sum_us;
};

void metric_add(metric_counter *c);
uint64_t metric_get(const metric_counter *c);
/* One observation of a duration in microseconds. */
void metric_observe(struct metric_histogram *h, int64_t duration_us);

/* The "# HELP" and "# TYPE" lines of a family. */
void metric_family(struct buf *out, const char *name, const char *type, const char *help);
/* One sample: `name{labels} value` (labels "" for none; `key="value",…` without braces). */
void metric_sample(struct buf *out, const char *name, const char *labels, uint64_t value);
/* A histogram's _bucket, _sum and _count lines. */
void metric_histogram(struct buf *out, const char *name, const char *labels,
                      const struct metric_histogram *h);

/* The process's own gauges: build info, start time, threads configured and busy.  Call
 * metrics_init once at startup. */
void metrics_init(unsigned threads);
void metrics_render_process(struct buf *out, unsigned busy);

#endif
