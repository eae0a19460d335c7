/* clock.h — the two clocks fbconnect uses. */
#ifndef FBC_CLOCK_H
#define FBC_CLOCK_H

#include <stdint.h>

/* Wall-clock time in seconds since the epoch (token expiry, state expiry). */
int64_t clock_wall(void);
/* Monotonic time in microseconds (durations, timeouts). */
int64_t clock_mono_us(void);

#endif
