/* The return_to validator: whatever it accepts must stay on the site — one leading '/',
 * never "//" or "/\" once a browser decodes it, printable ASCII only. */
#include <ctype.h>

#include "fuzz_common.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data;
    if (!url_return_to_valid(s, size))
        return 0;
    if (size == 0 || s[0] != '/' || (size > 1 && (s[1] == '/' || s[1] == '\\')))
        abort();
    for (size_t i = 0; i < size; i++)
        if (!isprint((unsigned char)s[i]) || s[i] == '\\' || s[i] == ' ')
            abort();
    /* Percent-decoding once must not create a scheme-relative or backslash path either. */
    char *dec = malloc(size + 1);
    ssize_t n = url_decode(s, size, dec, false);
    if (n < 0 || (n > 1 && (dec[1] == '/' || dec[1] == '\\')) || memchr(dec, '\\', (size_t)n))
        abort();
    free(dec);
    return 0;
}
