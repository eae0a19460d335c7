/* template.h — HTML templates compiled once at startup, rendered with escaping by default.
 *
 *   {{name}}              the value, HTML-escaped
 *   {{{name}}}            the value unescaped (only for HTML the program built itself)
 *   {{#name}}…{{/name}}   rendered once when name is a non-empty string, once per item when
 *                         name is a list (the item's values shadow the outer ones)
 *   {{^name}}…{{/name}}   rendered when name is missing, empty or an empty list
 *   {{>file}}             (template_load only) the content of a file in the same folder,
 *                         inserted at load time
 *
 * A template may hold one <style> element; its SHA-256 (for a strict CSP with no
 * 'unsafe-inline') is computed at load. */
#ifndef FBC_TEMPLATE_H
#define FBC_TEMPLATE_H

#include <stddef.h>

#include "buf.h"

struct tvars;

struct tvar {
    const char *name;
    const char *value;       /* string value, or NULL */
    const struct tvars *list; /* list value: `count` scopes, or NULL */
    size_t count;
};

/* A scope: an array of variables and the enclosing scope. */
struct tvars {
    const struct tvar *vars;
    size_t n;
    const struct tvars *parent;
};

struct template;

/* Compiles text; NULL with a message in err on a syntax error (unclosed tag or section,
 * mismatched section end, bad name, tags inside <style>).  The caller frees the result
 * with template_free. */
struct template *template_compile(const char *text, size_t len, char *err, size_t errsz);
/* Reads a file, inserts its {{>file}} includes and compiles it. */
struct template *template_load(const char *path, char *err, size_t errsz);
void template_free(struct template *t);

#define TEMPLATE_OUTPUT_MAX (1 << 20)

/* Appends the rendering of t with `vars` to out.  Missing variables render as "".
 * Rendering stops once out holds more than TEMPLATE_OUTPUT_MAX bytes: nested list sections
 * multiply, and no page needs a megabyte. */
void template_render(const struct template *t, const struct tvars *vars, struct buf *out);

/* "'sha256-…'" for the template's <style> element, or NULL when it has none. */
const char *template_style_source(const struct template *t);

/* Appends s to out with & < > " ' escaped. */
void html_escape(struct buf *out, const char *s);

#endif
