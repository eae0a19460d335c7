/* log.h — one logfmt line per event on stderr, written with a single write(2) so lines
 * from different threads never interleave.  Never pass a secret, token, code or state. */
#ifndef FBC_LOG_H
#define FBC_LOG_H

#include "buf.h"

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };

/* Logs `msg` (a printf format) as msg="…", quoted and escaped, with time and level. */
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Starts a line in b with time= and level=; add fields with log_field*, then log_write. */
void log_begin(struct buf *b, enum log_level level);
/* Appends key=value, quoting and escaping the value when needed. */
void log_field(struct buf *b, const char *key, const char *value);
void log_fieldf(struct buf *b, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void log_write(struct buf *b);

/* Messages below this level are dropped (default LOG_INFO). */
void log_set_level(enum log_level level);

#endif
