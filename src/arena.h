/* arena.h — per-request bump allocator.
 *
 * Everything a request allocates comes from its arena and is released at once by
 * arena_reset() at the bottom of the worker loop, so a handler never leaks on an early
 * return.  Allocation failure aborts the process (there is no sane recovery mid-request). */
#ifndef FBC_ARENA_H
#define FBC_ARENA_H

#include <stdarg.h>
#include <stddef.h>

struct arena_chunk;

struct arena {
    struct arena_chunk *head;  /* current chunk; every other chunk follows it */
    struct arena_chunk *first; /* the chunk made by arena_init, kept across resets */
    size_t chunk_size;         /* size of a standard chunk */
};

void arena_init(struct arena *a, size_t chunk_size);
/* Frees every chunk but the first, which is kept for the next request. */
void arena_reset(struct arena *a);
void arena_destroy(struct arena *a);

/* Returns n bytes aligned for any type; never NULL. */
void *arena_alloc(struct arena *a, size_t n);
void *arena_calloc(struct arena *a, size_t n);
/* Copies s[0..n) and a terminating NUL. */
char *arena_strndup(struct arena *a, const char *s, size_t n);
char *arena_strdup(struct arena *a, const char *s);
char *arena_printf(struct arena *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
char *arena_vprintf(struct arena *a, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

/* malloc/realloc that abort on failure. */
void *xmalloc(size_t n);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);

#endif
