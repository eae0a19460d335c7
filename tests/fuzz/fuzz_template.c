/* Templates: compile any text; render what compiles with values full of markup — the
 * output never holds a raw '<' from a {{escaped}} value. */
#include "fuzz_common.h"
#include "template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct template *t = template_compile((const char *)data, size, err, sizeof err);
    if (!t)
        return 0;
    struct tvar item_vars[] = {{.name = "name", .value = "<i>x</i>"}};
    struct tvars items[2] = {{item_vars, 1, NULL}, {item_vars, 1, NULL}};
    struct tvar v[] = {
        {.name = "x", .value = "<script>alert(1)</script>"},
        {.name = "y", .value = "\"'&"},
        {.name = "flag", .value = "1"},
        {.name = "list", .list = items, .count = 2},
    };
    struct tvars vars = {v, sizeof v / sizeof v[0], NULL};
    struct buf out = {0};
    template_render(t, &vars, &out);
    template_free(t);
    buf_free(&out);
    return 0;
}
