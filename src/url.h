/* url.h — the URL and form-encoding pieces fbconnect parses itself: query strings and
 * form bodies (application/x-www-form-urlencoded) and the return_to path validator.
 * Everything here reads untrusted bytes and is fuzzed. */
#ifndef FBC_URL_H
#define FBC_URL_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "arena.h"

#define RETURN_TO_MAX 1024

enum form_status {
    FORM_MISSING,   /* no parameter of that name */
    FORM_OK,        /* found exactly once, decoded */
    FORM_DUPLICATE, /* found more than once: ambiguous, never guess */
    FORM_INVALID,   /* bad %-escape, a NUL byte, or longer than allowed */
};

/* Decodes %XX escapes (and '+' as space when plus_is_space) from in[0..len) into out,
 * which must hold len bytes.  Returns the decoded length, or -1 for a malformed escape or
 * an escaped NUL byte. */
ssize_t url_decode(const char *in, size_t len, char *out, bool plus_is_space);

/* Finds `name` in the form-encoded string s[0..len) (names are decoded before comparing)
 * and, on FORM_OK, stores its decoded, NUL-terminated value (allocated in `a`) in *value
 * and its length in *value_len (may be NULL).  Values longer than max_len decoded bytes
 * are FORM_INVALID. */
enum form_status form_get(struct arena *a, const char *s, size_t len, const char *name,
                          size_t max_len, const char **value, size_t *value_len);

/* True when s[0..len) is a safe same-site return path: starts with one '/', not "//" or
 * "/\", printable ASCII only, no backslash, every %-escape well formed and not encoding a
 * slash, backslash, percent sign or control byte (nor a dot in the path), no empty, "." or
 * ".." path segment; at most RETURN_TO_MAX bytes. */
bool url_return_to_valid(const char *s, size_t len);

/* s with every byte but RFC 3986's unreserved ones %XX-escaped, for a query value (in `a`). */
char *url_escape(struct arena *a, const char *s);

#endif
