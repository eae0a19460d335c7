/* pages.h — the HTML pages: templates/connect.html, connected.html, error.html and
 * business.html, loaded once at startup, rendered with the security headers every page
 * carries. */
#ifndef FBC_PAGES_H
#define FBC_PAGES_H

#include "response.h"
#include "template.h"

enum page_id { PAGE_CONNECT, PAGE_CONNECTED, PAGE_ERROR, PAGE_BUSINESS, PAGE__MAX };

struct pages;

/* Loads and compiles every page from dir.  NULL with a message in err on failure. */
struct pages *pages_load(const char *dir, char *err, size_t errsz);
void pages_free(struct pages *p);

/* Renders a page as the response body, with its status, text/html type and a
 * Content-Security-Policy (resp->csp) allowing exactly the page's own <style>. */
void page_render(const struct pages *p, struct response *resp, enum page_id id, int status,
                 const struct tvars *vars);

/* An error page: what happened (title, message) and what to do next (a link).  The
 * strings are escaped like any template value. */
void page_error(const struct pages *p, struct response *resp, int status, const char *title,
                const char *message, const char *action_url, const char *action_label);

#endif
