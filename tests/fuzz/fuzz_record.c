/* Sealed records as read back from Redis: record_decode and record_version must refuse
 * anything not sealed by our keys for this record name, without crashing. */
#include "fuzz_common.h"
#include "record.h"
#include "seal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct connection c;
    record_version((const char *)data, size);
    record_decode(fuzz_arena(), fuzz_keyring(), "c:fuzz", (const char *)data, size, &c);
    /* Also the plaintext side: a valid seal around fuzzed JSON. */
    struct buf sealed = {0};
    buf_puts(&sealed, "r1:7:");
    static const char ad_label[] = "fbconnect-record-1";
    struct buf ad = {0};
    buf_append(&ad, ad_label, sizeof ad_label);
    buf_puts(&ad, "c:fuzz");
    seal_box(fuzz_keyring(), ad.data, ad.len, data, size, &sealed);
    struct arena *a = fuzz_arena();
    if (record_decode(a, fuzz_keyring(), "c:fuzz", sealed.data, sealed.len, &c) == RECORD_OK) {
        if (!c.pair.access_token || !c.pair.refresh_token || c.version != 7)
            abort();
        /* Round trip: encoding what was decoded and decoding it again gives the same. */
        struct buf again = {0};
        struct connection d;
        record_encode(fuzz_keyring(), "c:fuzz", &c, 8, &again);
        if (record_decode(a, fuzz_keyring(), "c:fuzz", again.data, again.len, &d) != RECORD_OK ||
            d.version != 8 || strcmp(d.pair.access_token, c.pair.access_token) != 0 ||
            strcmp(d.pair.refresh_token, c.pair.refresh_token) != 0 ||
            d.pair.expires_at != c.pair.expires_at || d.has_identity != c.has_identity ||
            d.ident.n_businesses != c.ident.n_businesses || d.reconnect_required != c.reconnect_required ||
            d.pair.n_alternates != c.pair.n_alternates)
            abort();
        buf_free(&again);
    }
    buf_free(&sealed);
    buf_free(&ad);
    return 0;
}
