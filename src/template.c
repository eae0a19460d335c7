#include "template.h"

#include <errno.h>
#include <sodium.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "arena.h"

enum tnode_kind { T_TEXT, T_VAR, T_RAW, T_SECTION, T_INVERTED };

struct tnode {
    enum tnode_kind kind;
    const char *text; /* T_TEXT: points into the template's copy of the source */
    size_t len;       /* T_TEXT length */
    char name[32];
    size_t end; /* sections: index of the first node after the section */
};

struct template {
    char *source;
    struct tnode *nodes;
    size_t n;
    char *style_source;
};

#define MAX_DEPTH 16

static bool name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= sizeof((struct tnode *)0)->name)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'))
            return false;
    }
    return true;
}

/* Finds "<style" opening an element (followed by '>' or whitespace), any case. */
static const char *find_style_open(const char *s)
{
    for (const char *p = strchr(s, '<'); p; p = strchr(p + 1, '<'))
        if (strncasecmp(p, "<style", 6) == 0 && (p[6] == '>' || p[6] == ' ' || p[6] == '\t' ||
                                                 p[6] == '\n' || p[6] == '\r' || p[6] == '/'))
            return p;
    return NULL;
}

/* A template may hold one bare <style> element, without template tags, whose hash goes
 * into the page's CSP. */
static void style_hash(struct template *t, char *err, size_t errsz, bool *ok)
{
    const char *open = find_style_open(t->source);
    if (!open)
        return;
    if (strncmp(open, "<style>", 7) != 0) {
        snprintf(err, errsz, "use a bare <style> element (no attributes)");
        *ok = false;
        return;
    }
    const char *body = open + strlen("<style>");
    const char *close = strcasestr(body, "</style");
    if (!close) {
        snprintf(err, errsz, "unclosed <style>");
        *ok = false;
        return;
    }
    if (memmem(body, (size_t)(close - body), "{{", 2)) {
        snprintf(err, errsz, "template tags inside <style> would defeat its CSP hash");
        *ok = false;
        return;
    }
    if (find_style_open(close)) {
        snprintf(err, errsz, "more than one <style> element");
        *ok = false;
        return;
    }
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const unsigned char *)body, (unsigned long long)(close - body));
    char b64[sodium_base64_ENCODED_LEN(crypto_hash_sha256_BYTES, sodium_base64_VARIANT_ORIGINAL)];
    sodium_bin2base64(b64, sizeof b64, digest, sizeof digest, sodium_base64_VARIANT_ORIGINAL);
    size_t n = strlen(b64) + 16;
    t->style_source = xmalloc(n);
    snprintf(t->style_source, n, "'sha256-%s'", b64);
}

struct template *template_compile(const char *text, size_t len, char *err, size_t errsz)
{
    struct template *t = xmalloc(sizeof *t);
    memset(t, 0, sizeof *t);
    t->source = xmalloc(len + 1);
    memcpy(t->source, text, len);
    t->source[len] = '\0';
    if (memchr(text, '\0', len)) {
        snprintf(err, errsz, "NUL byte in template");
        template_free(t);
        return NULL;
    }
    size_t cap = 16;
    t->nodes = xmalloc(cap * sizeof *t->nodes);
    size_t stack[MAX_DEPTH], depth = 0;
    const char *p = t->source, *end = t->source + len;
    bool ok = true;
    while (p < end && ok) {
        const char *open = strstr(p, "{{");
        if (t->n + 1 >= cap) {
            cap *= 2;
            t->nodes = xrealloc(t->nodes, cap * sizeof *t->nodes);
        }
        struct tnode *node = &t->nodes[t->n];
        memset(node, 0, sizeof *node);
        if (open != p) {
            node->kind = T_TEXT;
            node->text = p;
            node->len = open ? (size_t)(open - p) : (size_t)(end - p);
            t->n++;
            p += node->len;
            continue;
        }
        bool triple = open[2] == '{';
        const char *name = open + (triple ? 3 : 2);
        const char *close = strstr(name, triple ? "}}}" : "}}");
        if (!close) {
            snprintf(err, errsz, "unclosed tag at byte %zu", (size_t)(open - t->source));
            ok = false;
            break;
        }
        char sigil = triple ? '{' : name[0];
        if (!triple && (sigil == '#' || sigil == '^' || sigil == '/'))
            name++;
        size_t nlen = (size_t)(close - name);
        if (!name_ok(name, nlen)) {
            snprintf(err, errsz, "bad tag name at byte %zu", (size_t)(open - t->source));
            ok = false;
            break;
        }
        p = close + (triple ? 3 : 2);
        if (!triple && sigil == '/') {
            if (depth == 0 || strlen(t->nodes[stack[depth - 1]].name) != nlen ||
                memcmp(t->nodes[stack[depth - 1]].name, name, nlen) != 0) {
                snprintf(err, errsz, "unexpected {{/%.*s}}", (int)nlen, name);
                ok = false;
                break;
            }
            t->nodes[stack[--depth]].end = t->n;
            continue;
        }
        memcpy(node->name, name, nlen);
        node->name[nlen] = '\0';
        if (triple) {
            node->kind = T_RAW;
        } else if (sigil == '#' || sigil == '^') {
            node->kind = sigil == '#' ? T_SECTION : T_INVERTED;
            if (depth == MAX_DEPTH) {
                snprintf(err, errsz, "sections nested too deeply");
                ok = false;
                break;
            }
            stack[depth++] = t->n;
        } else {
            node->kind = T_VAR;
        }
        t->n++;
    }
    if (ok && depth > 0) {
        snprintf(err, errsz, "unclosed section {{#%s}}", t->nodes[stack[depth - 1]].name);
        ok = false;
    }
    if (ok)
        style_hash(t, err, errsz, &ok);
    if (!ok) {
        template_free(t);
        return NULL;
    }
    return t;
}

/* Reads a whole file into b.  Returns false with err set. */
static bool read_file(const char *path, struct buf *b, char *err, size_t errsz)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errsz, "%s: %s", path, strerror(errno));
        return false;
    }
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
        buf_append(b, chunk, n);
    bool failed = ferror(f);
    fclose(f);
    if (failed)
        snprintf(err, errsz, "%s: read error", path);
    return !failed;
}

/* Replaces each {{>name}} in src with the content of the file `name` in dir (names of
 * letters, digits, '.', '-' and '_'; included files include nothing).  Static, at load:
 * the included text is part of what a <style> hash covers. */
static bool expand_includes(const char *dir, const char *src, struct buf *out, char *err,
                            size_t errsz)
{
    const char *p = src;
    for (const char *open; (open = strstr(p, "{{>")); ) {
        const char *name = open + 3, *close = strstr(name, "}}");
        size_t n = close ? (size_t)(close - name) : 0;
        if (!close || n == 0 || n > 64 || strspn(name, "abcdefghijklmnopqrstuvwxyz0123456789.-_") != n ||
            name[0] == '.') {
            snprintf(err, errsz, "bad include at byte %zu", (size_t)(open - src));
            return false;
        }
        buf_append(out, p, (size_t)(open - p));
        char path[4200];
        snprintf(path, sizeof path, "%s/%.*s", dir, (int)n, name);
        struct buf inc = {0};
        bool ok = read_file(path, &inc, err, errsz); /* err names the file: errsz >= 4300 */
        if (ok && strstr(buf_cstr(&inc), "{{>")) {
            snprintf(err, errsz, "%.*s: included files cannot include", (int)n, name);
            ok = false;
        }
        if (ok)
            buf_append(out, inc.data, inc.len);
        buf_free(&inc);
        if (!ok)
            return false;
        p = close + 2;
    }
    buf_puts(out, p);
    return true;
}

struct template *template_load(const char *path, char *err, size_t errsz)
{
    struct buf raw = {0}, text = {0};
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");
    struct template *t = NULL;
    char inner[4400];
    if (!read_file(path, &raw, err, errsz))
        goto out;
    if (memchr(buf_cstr(&raw), '\0', raw.len)) {
        snprintf(err, errsz, "%s: NUL byte in template", path);
        goto out;
    }
    if (!expand_includes(dir, buf_cstr(&raw), &text, inner, sizeof inner)) {
        snprintf(err, errsz, "%s: %s", path, inner);
        goto out;
    }
    t = template_compile(buf_cstr(&text), text.len, inner, sizeof inner);
    if (!t)
        snprintf(err, errsz, "%s: %s", path, inner);
out:
    buf_free(&raw);
    buf_free(&text);
    return t;
}

void template_free(struct template *t)
{
    if (!t)
        return;
    free(t->source);
    free(t->nodes);
    free(t->style_source);
    free(t);
}

const char *template_style_source(const struct template *t)
{
    return t->style_source;
}

void html_escape(struct buf *out, const char *s)
{
    const char *run = s;
    for (; *s; s++) {
        const char *rep;
        switch (*s) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default: continue;
        }
        buf_append(out, run, (size_t)(s - run));
        buf_puts(out, rep);
        run = s + 1;
    }
    buf_append(out, run, (size_t)(s - run));
}

static const struct tvar *lookup(const struct tvars *scope, const char *name)
{
    for (; scope; scope = scope->parent)
        for (size_t i = 0; i < scope->n; i++)
            if (strcmp(scope->vars[i].name, name) == 0)
                return &scope->vars[i];
    return NULL;
}

static void render_range(const struct template *t, size_t from, size_t to,
                         const struct tvars *scope, struct buf *out)
{
    for (size_t i = from; i < to;) {
        if (out->len > TEMPLATE_OUTPUT_MAX)
            return;
        const struct tnode *node = &t->nodes[i];
        const struct tvar *v;
        switch (node->kind) {
        case T_TEXT:
            buf_append(out, node->text, node->len);
            i++;
            break;
        case T_VAR:
        case T_RAW:
            v = lookup(scope, node->name);
            if (v && v->value) {
                if (node->kind == T_VAR)
                    html_escape(out, v->value);
                else
                    buf_puts(out, v->value);
            }
            i++;
            break;
        case T_SECTION:
        case T_INVERTED: {
            v = lookup(scope, node->name);
            bool truthy = v && ((v->list && v->count > 0) || (v->value && v->value[0]));
            if (node->kind == T_SECTION && truthy) {
                if (v->list) {
                    for (size_t k = 0; k < v->count; k++) {
                        struct tvars item = v->list[k];
                        item.parent = scope;
                        render_range(t, i + 1, node->end, &item, out);
                    }
                } else {
                    render_range(t, i + 1, node->end, scope, out);
                }
            } else if (node->kind == T_INVERTED && !truthy) {
                render_range(t, i + 1, node->end, scope, out);
            }
            i = node->end;
            break;
        }
        }
    }
}

void template_render(const struct template *t, const struct tvars *vars, struct buf *out)
{
    render_range(t, 0, t->n, vars, out);
}
