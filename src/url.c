#include "url.h"

#include <string.h>

static int hexval(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ssize_t url_decode(const char *in, size_t len, char *out, bool plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (len - i < 3)
                return -1;
            int hi = hexval((unsigned char)in[i + 1]), lo = hexval((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (unsigned char)(hi * 16 + lo);
            if (c == '\0')
                return -1;
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        } else if (c == '\0') {
            return -1;
        }
        out[o++] = (char)c;
    }
    return (ssize_t)o;
}

enum form_status form_get(struct arena *a, const char *s, size_t len, const char *name,
                          size_t max_len, const char **value, size_t *value_len)
{
    enum form_status status = FORM_MISSING;
    size_t name_len = strlen(name);
    char name_buf[3 * 64]; /* a key of up to 3 bytes per name byte may decode to the name */
    if (name_len >= 64)
        return FORM_INVALID;

    const char *end = s + len;
    for (const char *p = s; p < end;) {
        const char *amp = memchr(p, '&', (size_t)(end - p));
        const char *pair_end = amp ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(pair_end - p));
        const char *key_end = eq ? eq : pair_end;
        size_t key_len = (size_t)(key_end - p);

        /* A raw key longer than 3x the name cannot decode to it: skip without work. */
        if (key_len > 0 && key_len <= name_len * 3) {
            ssize_t k = url_decode(p, key_len, name_buf, true);
            if (k == (ssize_t)name_len && memcmp(name_buf, name, name_len) == 0) {
                if (status != FORM_MISSING)
                    return FORM_DUPLICATE;
                const char *v = eq ? eq + 1 : pair_end;
                size_t raw_len = (size_t)(pair_end - v);
                char *out = arena_alloc(a, raw_len + 1);
                ssize_t n = url_decode(v, raw_len, out, true);
                if (n < 0 || (size_t)n > max_len)
                    return FORM_INVALID;
                out[n] = '\0';
                *value = out;
                if (value_len)
                    *value_len = (size_t)n;
                status = FORM_OK;
            }
        }
        p = amp ? amp + 1 : end;
    }
    return status;
}

/* Characters allowed raw in a return path: RFC 3986 pchar plus '/', '?' and '#',
 * without '%' (handled apart). */
static bool return_to_char_ok(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != '\0' && strchr("-._~!$&'()*+,;=:@/?#", c) != NULL;
}

bool url_return_to_valid(const char *s, size_t len)
{
    if (len == 0 || len > RETURN_TO_MAX || s[0] != '/')
        return false;
    if (len > 1 && (s[1] == '/' || s[1] == '\\'))
        return false;
    size_t path_end = len; /* the path stops at the query or the fragment */
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c == '?' || c == '#') && path_end == len)
            path_end = i;
        if (c == '%') {
            if (len - i < 3)
                return false;
            int hi = hexval((unsigned char)s[i + 1]), lo = hexval((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                return false;
            int d = hi * 16 + lo;
            if (d < 0x20 || d == 0x7f || d == '/' || d == '\\' || d == '%')
                return false;
            if (d == '.' && i < path_end) /* no hidden dot segments */
                return false;
            i += 2;
        } else if (!return_to_char_ok(c)) {
            return false;
        }
    }
    /* No empty, "." or ".." segment in the path: nothing for a later normaliser to fold
     * into "//host". */
    for (size_t i = 0; i < path_end; i++) {
        if (s[i] != '/')
            continue;
        size_t j = i + 1;
        while (j < path_end && s[j] != '/')
            j++;
        size_t seg = j - i - 1;
        if ((seg == 0 && j < path_end) || (seg == 1 && s[i + 1] == '.') ||
            (seg == 2 && s[i + 1] == '.' && s[i + 2] == '.'))
            return false;
    }
    return true;
}

char *url_escape(struct arena *a, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    char *out = arena_alloc(a, 3 * n + 1), *o = out;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}
