/* Form bodies (POST /disconnect, the sandbox's forms): form_get without '+' surprises,
 * with names that need decoding themselves. */
#include "fuzz_common.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const names[] = {"csrf", "email", "action", "client_id", "redirect_uri",
                                        "a_name_that_is_sixty_three_bytes_long_aaaaaaaaaaaaaaaaaaaaaaaaa"};
    struct arena *a = fuzz_arena();
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = NULL;
        size_t n = 0;
        if (form_get(a, (const char *)data, size, names[i], 256, &v, &n) == FORM_OK &&
            (strlen(v) != n || n > 256))
            abort(); /* no NUL inside, and the cap holds */
    }
    return 0;
}
