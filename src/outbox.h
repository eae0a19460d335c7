/* outbox.h — delivering connection events: the process's one delivery thread.  It reads
 * the event stream through the consumer group every fbconnect process of every host shares
 * (store.h), takes over what a dead process left unsettled for EVENTS_CLAIM_IDLE_MS, POSTs
 * each event signed (events.h) to FBCONNECT_EVENTS_URL with its own curl handle, and
 * settles it: delivered on a 2xx, else due again after a growing delay, until the
 * retention, then given up (logged, kept as failed).  No request thread ever waits on it. */
#ifndef FBC_OUTBOX_H
#define FBC_OUTBOX_H

#include "buf.h"
#include "config.h"

#define EVENTS_CLAIM_IDLE_MS 60000 /* an event unsettled this long is another's to take */
#define EVENTS_LEASE_MS 60000      /* a due retry taken is another's after this long */
#define EVENTS_BATCH 16

/* Starts the thread (no-op without FBCONNECT_EVENTS_URL).  Returns 0 or -1. */
int outbox_start(const struct config *cfg);
/* Stops it, cutting short an attempt in flight (the event stays pending: delivered later,
 * by this process or another). */
void outbox_stop(void);

/* Appends the events metrics to /metrics. */
void outbox_metrics_render(struct buf *out);

#endif
