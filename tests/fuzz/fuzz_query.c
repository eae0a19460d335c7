/* Query strings: form_get for the names fbconnect reads, and url_decode. */
#include "fuzz_common.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"state", "code", "error", "return_to", "disconnected", "user", "s"};
    struct arena *a = fuzz_arena();
    const char *s = (const char *)data;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = NULL;
        size_t n = 0;
        enum form_status st = form_get(a, s, size, names[i], 4096, &v, &n);
        if (st == FORM_OK && (strlen(v) != n || n > 4096))
            abort(); /* a decoded value never holds a NUL and respects the cap */
    }
    char *out = malloc(size + 1);
    ssize_t n = url_decode(s, size, out, true);
    if (n > (ssize_t)size || (n >= 0 && memchr(out, '\0', (size_t)n)))
        abort();
    free(out);
    return 0;
}
