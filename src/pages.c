#include "pages.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"

static const char *const page_files[PAGE__MAX] = {"connect.html", "connected.html", "error.html",
                                                      "business.html"};

struct pages {
    struct template *t[PAGE__MAX];
    char *csp[PAGE__MAX];
};

struct pages *pages_load(const char *dir, char *err, size_t errsz)
{
    struct pages *p = xmalloc(sizeof *p);
    memset(p, 0, sizeof *p);
    for (int i = 0; i < PAGE__MAX; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, page_files[i]);
        char inner[512];
        p->t[i] = template_load(path, inner, sizeof inner);
        if (!p->t[i]) {
            snprintf(err, errsz, "FBCONNECT_TEMPLATE_DIR: %s", inner);
            pages_free(p);
            return NULL;
        }
        const char *style = template_style_source(p->t[i]);
        char csp[512];
        snprintf(csp, sizeof csp,
                 "default-src 'none'; style-src %s; img-src 'self' data:; form-action 'self'; "
                 "frame-ancestors 'none'; base-uri 'none'",
                 style ? style : "'none'");
        p->csp[i] = xstrdup(csp);
    }
    return p;
}

void pages_free(struct pages *p)
{
    if (!p)
        return;
    for (int i = 0; i < PAGE__MAX; i++) {
        template_free(p->t[i]);
        free(p->csp[i]);
    }
    free(p);
}

void page_render(const struct pages *p, struct response *resp, enum page_id id, int status,
                 const struct tvars *vars)
{
    resp->status = status;
    resp->content_type = "text/html; charset=utf-8";
    buf_reset(&resp->body);
    template_render(p->t[id], vars, &resp->body);
    resp->csp = p->csp[id];
}

void page_error(const struct pages *p, struct response *resp, int status, const char *title,
                const char *message, const char *action_url, const char *action_label)
{
    char code[8];
    snprintf(code, sizeof code, "%d", status);
    struct tvar v[] = {
        {.name = "status", .value = code},
        {.name = "title", .value = title},
        {.name = "message", .value = message},
        {.name = "action_url", .value = action_url},
        {.name = "action_label", .value = action_label},
    };
    struct tvars vars = {v, sizeof v / sizeof v[0], NULL};
    page_render(p, resp, PAGE_ERROR, status, &vars);
}
