#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sodium.h>
#include <string.h>

#include "connection.h"
#include "handlers/handlers.h"
#include "session.h"

void page_unavailable(struct ctx *ctx, const char *what)
{
    ctx->outcome = what;
    page_error(ctx->app->pages, ctx->resp, 503, "Temporarily unavailable",
               "We can't reach the service that keeps your FreshBooks connection right now. "
               "Nothing was changed or lost. Please try again in a minute.",
               route_url(ctx, "connect"), "Try again");
    response_header(ctx->resp, "Retry-After", "30");
}

void page_sign_in_first(struct ctx *ctx)
{
    ctx->outcome = "not_signed_in";
    page_error(ctx->app->pages, ctx->resp, 403, "Please sign in first",
               "Sign in to this site, then come back here to connect your FreshBooks account.",
               "/", "Go to the site");
}

/* FreshBooks' role names, in words (one table; an unknown role is shown as "Member"). */
static const struct {
    const char *role, *words;
} role_words[] = {
    {"owner", "Owner"},   {"admin", "Admin"},           {"business_employee", "Team member"},
    {"client", "Client"}, {"accountant", "Accountant"}, {"business_partner", "Partner"},
};

const char *business_role_words(const char *role)
{
    for (size_t i = 0; role && i < sizeof role_words / sizeof role_words[0]; i++)
        if (strcmp(role, role_words[i].role) == 0)
            return role_words[i].words;
    return "Member";
}

size_t identity_vars(struct ctx *ctx, const struct loaded *l, struct tvar *vars, size_t n)
{
    const struct connection *c = &l->c;
    if (c->reconnect_required)
        vars[n++] = (struct tvar){.name = c->reconnect_reason == RECONNECT_SCOPES_CHANGED
                                              ? "reason_scopes_changed"
                                              : "reason_refresh_refused",
                                  .value = "1"};
    if (!c->has_identity) {
        vars[n++] = (struct tvar){.name = "identity_pending", .value = "1"};
        return n;
    }
    const struct identity *id = &c->ident;
    const char *first = id->first_name ? id->first_name : "";
    const char *last = id->last_name ? id->last_name : "";
    const char *name = arena_printf(ctx->arena, "%s%s%s", first, *first && *last ? " " : "", last);
    vars[n++] = (struct tvar){.name = "user_name", .value = *name ? name : id->email};
    vars[n++] = (struct tvar){.name = "user_email", .value = id->email};
    struct tvars *items = arena_calloc(ctx->arena, (id->n_businesses + 1) * sizeof *items);
    for (size_t i = 0; i < id->n_businesses; i++) {
        const struct business *b = &id->businesses[i];
        struct tvar *v = arena_calloc(ctx->arena, 4 * sizeof *v);
        size_t k = 0;
        v[k++] = (struct tvar){.name = "business_name", .value = *b->name ? b->name : "Unnamed business"};
        v[k++] = (struct tvar){.name = "business_role", .value = business_role_words(b->role)};
        v[k++] = (struct tvar){.name = "business_key", .value = connection_business_key(ctx->arena, b)};
        if (b == l->business)
            v[k++] = (struct tvar){.name = "chosen", .value = "1"};
        items[i] = (struct tvars){v, k, NULL};
    }
    vars[n++] = (struct tvar){.name = "businesses", .list = items, .count = id->n_businesses};
    if (id->n_businesses)
        vars[n++] = (struct tvar){.name = "has_businesses", .value = "1"};
    if (id->n_businesses > 1)
        vars[n++] = (struct tvar){.name = "several_businesses", .value = "1"};
    vars[n++] = (struct tvar){.name = "business_url", .value = route_url(ctx, "business")};
    if (l->business) {
        vars[n++] = (struct tvar){.name = "chosen_name",
                                  .value = *l->business->name ? l->business->name : "Unnamed business"};
        vars[n++] = (struct tvar){.name = "chosen_role", .value = business_role_words(l->business->role)};
    }
    return n;
}

bool load_connection_or_503(struct ctx *ctx, struct loaded *l, bool *found)
{
    enum lookup_result r = connection_load(ctx->svc, session_owner(ctx), l);
    if (r == LOOKUP_UNAVAILABLE) {
        page_unavailable(ctx, "redis_unavailable");
        return false;
    }
    *found = r == LOOKUP_FOUND;
    return true;
}

void send_json(struct ctx *ctx, int status, json_t *root)
{
    char *text = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    response_set(ctx->resp, status, "application/json", text ? text : "{}");
    buf_putc(&ctx->resp->body, '\n');
    if (text) {
        sodium_memzero(text, strlen(text)); /* may hold a token (/internal/token) */
        free(text);
    }
}
