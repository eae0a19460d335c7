/* Cookie headers: session_cookie_find must only ever return a well-formed id. */
#include "fuzz_common.h"
#include "ids.h"
#include "session.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *header = fuzz_cstr(data, size);
    id_text id;
    static const char *const names[] = {"fbconnect_session", "__Host-fbconnect_session", "s"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (session_cookie_find(header, names[i], id) && !id_valid(id))
            abort();
    free(header);
    return 0;
}
