/* Templates: compile any text; render what compiles with values full of markup.  A value
 * rendered by {{name}} is escaped, so the output holds a raw "\x01<" only where the
 * template itself wrote it or used {{{raw}}}.  Output stays bounded even when list
 * sections nest (regressions/fuzz_template/crash-nested-list-amplification). */
#include "fuzz_common.h"
#include <stdbool.h>

#include "template.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[256];
    struct template *t = template_compile((const char *)data, size, err, sizeof err);
    if (!t)
        return 0;
    bool checkable = !memmem(data, size, "\x01", 1) && !memmem(data, size, "{{{", 3);
    struct tvar item_vars[] = {{.name = "name", .value = "\x01<i>x</i>"}};
    struct tvars items[2] = {{item_vars, 1, NULL}, {item_vars, 1, NULL}};
    struct tvar v[] = {
        {.name = "x", .value = "\x01<script>alert(1)</script>"},
        {.name = "y", .value = "\"'&"},
        {.name = "flag", .value = "1"},
        {.name = "list", .list = items, .count = 2},
    };
    struct tvars vars = {v, sizeof v / sizeof v[0], NULL};
    struct buf out = {0};
    template_render(t, &vars, &out);
    if (out.len > TEMPLATE_OUTPUT_MAX + 64 * 1024)
        abort(); /* the cap holds (one node may overshoot it a little) */
    if (checkable && out.data && memmem(out.data, out.len, "\x01<", 2))
        abort(); /* an escaped value came out raw */
    template_free(t);
    buf_free(&out);
    return 0;
}
