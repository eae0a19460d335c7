/* buf.h — growable byte buffer (heap), always NUL-terminated after its content. */
#ifndef FBC_BUF_H
#define FBC_BUF_H

#include <stdarg.h>
#include <stddef.h>

struct buf {
    char *data; /* NULL until the first append */
    size_t len, cap;
};

void buf_append(struct buf *b, const void *p, size_t n);
void buf_puts(struct buf *b, const char *s);
void buf_putc(struct buf *b, char c);
void buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Empties the buffer but keeps its memory. */
void buf_reset(struct buf *b);
void buf_free(struct buf *b);
/* Returns the content as a C string ("" when empty); valid until the next append. */
const char *buf_cstr(const struct buf *b);

#endif
