/* fuzz_common.h — shared set-up for the libFuzzer targets (tests/fuzz/README.md). */
#ifndef FUZZ_COMMON_H
#define FUZZ_COMMON_H

#include <sodium.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "keys.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A NUL-terminated copy of the input (the caller frees). */
static inline char *fuzz_cstr(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s)
        abort();
    memcpy(s, data, size);
    s[size] = '\0';
    return s;
}

/* A fixed keyring (current key 0x11…, old key 0x22…), built once. */
static inline const struct keyring *fuzz_keyring(void)
{
    static struct keyring kr;
    static int ready;
    if (!ready) {
        if (sodium_init() < 0)
            abort();
        uint8_t cur[32], old[1][32];
        memset(cur, 0x11, sizeof cur);
        memset(old[0], 0x22, sizeof old[0]);
        keyring_init(&kr, cur, (const uint8_t(*)[32])old, 1);
        ready = 1;
    }
    return &kr;
}

/* One arena per target, reset per input. */
static inline struct arena *fuzz_arena(void)
{
    static struct arena a;
    static int ready;
    if (!ready) {
        arena_init(&a, 16384);
        ready = 1;
    }
    arena_reset(&a);
    return &a;
}

#endif
