/* FreshBooks' token endpoint answers: oauth_parse_token with any status and body. */
#include "fuzz_common.h"
#include "oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const long statuses[] = {200, 400, 401, 403, 429, 500, 503, 302};
    long status = statuses[data[0] % 8];
    struct token_pair p;
    enum oauth_result r = oauth_parse_token(fuzz_arena(), status, (const char *)data + 1, size - 1,
                                            1764400000, &p);
    if (r == OAUTH_OK) {
        if (status != 200 || !p.access_token[0] || !p.refresh_token[0] ||
            p.expires_at <= 1764400000 || p.expires_at > 1764400000 + OAUTH_LIFETIME_MAX)
            abort(); /* expiry on our clock, bounded, whatever created_at says */
        for (const char *t = p.access_token; *t; t++)
            if (*t <= ' ' || *t >= 0x7f)
                abort(); /* it goes into a header later */
    }
    return 0;
}
