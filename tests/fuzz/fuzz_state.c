/* The `state` query value.  Verified twice: with the seeds' keys (to reach the binding,
 * expiry and return_to checks), and with a key no seed was made with, where anything that
 * passes the MAC would be a forgery. */
#include "fuzz_common.h"
#include "state.h"
#include "url.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct state_claims claims;
    static const char session[] = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    state_verify(fuzz_keyring(), (const char *)data, size, session, NULL, 1764400000, &claims);
    state_verify(fuzz_keyring(), (const char *)data, size, session, "alice", 1764400000, &claims);
    state_verify(fuzz_keyring(), (const char *)data, size, NULL, NULL, 1764400000, &claims);

    /* Round trip: a state issued with the input as return_to (when it is a valid one)
     * verifies and gives it back. */
    if (size <= RETURN_TO_MAX && url_return_to_valid((const char *)data, size)) {
        char *rt = fuzz_cstr(data, size);
        const char *st = state_issue(fuzz_arena(), fuzz_keyring(), session, "alice", rt, 1764400000);
        if (state_verify(fuzz_keyring(), st, strlen(st), session, "alice", 1764400000, &claims) != STATE_OK ||
            strcmp(claims.return_to, rt) != 0)
            abort();
        free(rt);
    }

    static struct keyring other;
    static int ready;
    if (!ready) {
        uint8_t k[32];
        memset(k, 0x33, sizeof k);
        keyring_init(&other, k, NULL, 0);
        ready = 1;
    }
    enum state_result r = state_verify(&other, (const char *)data, size, session, NULL,
                                       1764400000, &claims);
    if (r == STATE_OK || r == STATE_EXPIRED || r == STATE_OTHER_SESSION || r == STATE_OTHER_USER)
        abort();
    return 0;
}
