/* Owner pointers as read back from Redis: pointer_open must refuse anything it did not
 * make for this owner, without crashing, and open everything it made. */
#include "fuzz_common.h"
#include "pointer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_cstr(data, size);
    struct arena *a = fuzz_arena();
    const char *name = NULL, *gen = NULL;
    int64_t biz = -1, b2 = -1;
    enum pointer_result r = pointer_open(a, fuzz_keyring(), "s:fuzz-owner", text, &name, &gen, &biz);
    if (r == POINTER_OK || r == POINTER_OLD_KEY || r == POINTER_UNBOUND) {
        if (!name || !gen || strlen(gen) != GENERATION_LEN || strlen(name) > POINTER_RECORD_MAX ||
            biz < 0)
            abort();
        /* Whatever opened, bound afresh, opens as current for its owner only. */
        char *made = pointer_make(a, fuzz_keyring(), "s:fuzz-owner", name, gen, biz);
        const char *n2, *g2;
        if (pointer_open(a, fuzz_keyring(), "s:fuzz-owner", made, &n2, &g2, &b2) != POINTER_OK ||
            strcmp(n2, name) != 0 || strcmp(g2, gen) != 0 || b2 != biz)
            abort();
        if (pointer_open(a, fuzz_keyring(), "s:other-owner", made, &n2, &g2, &b2) != POINTER_BAD)
            abort();
        /* A tag (not an unbound pointer) is unforgeable: random bytes never verify. */
        if (r == POINTER_OK && strcmp(made, text) != 0)
            abort();
    }
    free(text);
    return 0;
}
