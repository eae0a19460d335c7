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
    if (record_decode(fuzz_arena(), fuzz_keyring(), "c:fuzz", sealed.data, sealed.len, &c) == RECORD_OK &&
        (!c.pair.access_token || !c.pair.refresh_token || c.version != 7))
        abort();
    buf_free(&sealed);
    buf_free(&ad);
    return 0;
}
