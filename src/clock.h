/* clock.h — the two clocks fbconnect uses. */
#ifndef FBC_CLOCK_H
#define FBC_CLOCK_H

#include <stdint.h>

/* Wall-clock time in seconds since the epoch (token expiry, state expiry). */
int64_t clock_wall(void);
/* The same in milliseconds (when an event happened). */
int64_t clock_wall_ms(void);
/* Monotonic time in microseconds (durations, timeouts). */
int64_t clock_mono_us(void);

/* want_ms, or the milliseconds left until deadline_us (monotonic) when fewer; 0 once it
 * has passed.  A deadline of 0 is none. */
long clock_cap_ms(int64_t deadline_us, long want_ms);

#include <time.h>
/* The CLOCK_REALTIME instant ms milliseconds from now (negative counts as 0): the absolute
 * deadline pthread_cond_timedwait takes. */
struct timespec clock_realtime_in(int64_t ms);

#endif
