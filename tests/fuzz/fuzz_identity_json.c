/* FreshBooks' users/me answers: oauth_parse_identity. */
#include "fuzz_common.h"
#include "oauth.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    static const long statuses[] = {200, 200, 401, 403, 429, 500, 503, 200};
    long status = statuses[data[0] % 8];
    struct identity id;
    if (oauth_parse_identity(fuzz_arena(), status, (const char *)data + 1, size - 1, &id) == OAUTH_OK) {
        if (id.user_id <= 0 || !id.email)
            abort();
        if (status != 200 || id.n_businesses > 256 || strlen(id.email) > 1024)
            abort();
        for (size_t i = 0; i < id.n_businesses; i++)
            if (!id.businesses[i].name || !id.businesses[i].account_id ||
                strlen(id.businesses[i].account_id) > 256)
                abort();
    }
    return 0;
}
