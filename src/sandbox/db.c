#include "db.h"

#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "arena.h"
#include "ids.h"

#define KEY_BYTES 32
#define CODE_TTL 300

/* ---- a map from token hashes to entries (open addressing; entries are never removed
 * except by db_reset) ---- */

struct slot {
    uint8_t key[KEY_BYTES];
    void *val;
};

struct map {
    struct slot *slots;
    size_t cap, n;
};

static size_t slot_of(const struct map *m, const uint8_t key[KEY_BYTES])
{
    uint64_t h;
    memcpy(&h, key, sizeof h);
    size_t i = (size_t)h & (m->cap - 1);
    while (m->slots[i].val && memcmp(m->slots[i].key, key, KEY_BYTES) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static void *map_get(const struct map *m, const uint8_t key[KEY_BYTES])
{
    if (!m->cap)
        return NULL;
    return m->slots[slot_of(m, key)].val;
}

static void map_put(struct map *m, const uint8_t key[KEY_BYTES], void *val)
{
    if ((m->n + 1) * 2 > m->cap) {
        struct map bigger = {.cap = m->cap ? m->cap * 2 : 1024};
        bigger.slots = calloc(bigger.cap, sizeof *bigger.slots);
        if (!bigger.slots)
            abort();
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots[i].val) {
                size_t j = slot_of(&bigger, m->slots[i].key);
                bigger.slots[j] = m->slots[i];
                bigger.n++;
            }
        free(m->slots);
        *m = bigger;
    }
    size_t i = slot_of(m, key);
    if (!m->slots[i].val)
        m->n++;
    else
        free(m->slots[i].val);
    memcpy(m->slots[i].key, key, KEY_BYTES);
    m->slots[i].val = val;
}

static void map_clear(struct map *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].val);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* ---- the world ---- */

struct code {
    int user;
    int64_t expires;
    bool used;
    char redirect_uri[512];
    char scope[512];
    char challenge[64]; /* PKCE S256 code_challenge, "" when none was given */
};

struct access {
    int user;
    int64_t expires;
    bool revoked;
};

enum refresh_state { REFRESH_LIVE, REFRESH_DEAD };

struct refresh {
    int user;
    enum refresh_state state;
    char scope[512];
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct sandbox_user *users;
static size_t n_users, cap_users;
static struct map codes, access_tokens, refresh_tokens, user_index;
/* Per user: the hash of the one refresh token that may still be used. */
static uint8_t (*live_refresh)[KEY_BYTES];
static bool *has_live_refresh;
static struct sandbox_stats stats;

static void token_key(const char *token, uint8_t out[KEY_BYTES])
{
    crypto_generichash(out, KEY_BYTES, (const unsigned char *)token, strlen(token), NULL, 0);
}

static int64_t now_s(void)
{
    return (int64_t)time(NULL);
}

void db_init(void)
{
    db_reset();
}

void db_reset(void)
{
    pthread_mutex_lock(&mu);
    free(users);
    free(live_refresh);
    free(has_live_refresh);
    users = NULL;
    live_refresh = NULL;
    has_live_refresh = NULL;
    n_users = cap_users = 0;
    map_clear(&user_index);
    map_clear(&codes);
    map_clear(&access_tokens);
    map_clear(&refresh_tokens);
    memset(&stats, 0, sizeof stats);
    pthread_mutex_unlock(&mu);
}

static void title_case(const char *in, size_t n, char *out, size_t outsz)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < outsz; i++) {
        char c = in[i];
        if (c == '.' || c == '_' || c == '-' || c == '+')
            c = ' ';
        bool word_start = o == 0 || out[o - 1] == ' ';
        out[o] = word_start && c >= 'a' && c <= 'z' ? (char)(c - 32) : c;
        o++;
    }
    out[o] = '\0';
}

/* A number from the email (and a salt), stable across restarts. */
static uint64_t email_hash(const char *email, const char *salt)
{
    uint8_t h[8];
    crypto_generichash_state st;
    crypto_generichash_init(&st, NULL, 0, sizeof h);
    crypto_generichash_update(&st, (const uint8_t *)salt, strlen(salt) + 1);
    crypto_generichash_update(&st, (const uint8_t *)email, strlen(email));
    crypto_generichash_final(&st, h, sizeof h);
    uint64_t v;
    memcpy(&v, h, sizeof v);
    return v;
}

/* Fills u's businesses: business i of a user is the same on every sign-in and restart. */
static void make_businesses(struct sandbox_user *u, size_t n)
{
    static const char *const roles[SANDBOX_BUSINESSES_MAX] = {"owner", "client", "admin",
                                                              "business_employee", "owner"};
    static const char *const names[SANDBOX_BUSINESSES_MAX] = {
        NULL, "Babbage Ltd", "Northwind Books", "Hopper & Co", "Lamarr Labs"};
    static const char alphabet[] = "ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789";
    u->n_businesses = n;
    for (size_t i = 0; i < n; i++) {
        struct sandbox_business *b = &u->businesses[i];
        char salt[32];
        snprintf(salt, sizeof salt, "business-%zu", i);
        uint64_t h = email_hash(u->email, salt);
        b->id = 500000 + (int64_t)(h % 4000000);
        b->membership_id = 9000000 + (int64_t)((h >> 24) % 1000000); /* not the business id */
        snprintf(b->uuid, sizeof b->uuid, "%08x-%04x-4%03x-a%03x-%012llx", (unsigned)(h >> 32),
                 (unsigned)(h >> 16) & 0xffff, (unsigned)(h >> 4) & 0xfff, (unsigned)h & 0xfff,
                 (unsigned long long)(email_hash(u->email, "uuid") + i) & 0xffffffffffffULL);
        for (int c = 0; c < 5; c++)
            b->account_id[c] = alphabet[(h >> (8 * c)) % (sizeof alphabet - 1)];
        b->account_id[5] = '\0';
        if (names[i])
            snprintf(b->name, sizeof b->name, "%s", names[i]);
        else
            snprintf(b->name, sizeof b->name, "%s's Studio", u->first_name);
        snprintf(b->role, sizeof b->role, "%s", roles[i]);
    }
}

/* Called with mu held. */
static int user_for_email(const char *email)
{
    uint8_t key[KEY_BYTES];
    token_key(email, key);
    int *known = map_get(&user_index, key);
    if (known)
        return *known;
    if (n_users == cap_users) {
        cap_users = cap_users ? cap_users * 2 : 64;
        users = xrealloc(users, cap_users * sizeof *users);
        live_refresh = xrealloc(live_refresh, cap_users * sizeof *live_refresh);
        has_live_refresh = xrealloc(has_live_refresh, cap_users * sizeof *has_live_refresh);
    }
    int *index = xmalloc(sizeof *index);
    *index = (int)n_users;
    map_put(&user_index, key, index);
    has_live_refresh[n_users] = false;
    struct sandbox_user *u = &users[n_users];
    memset(u, 0, sizeof *u);
    /* The same email is the same user after a restart: ids derive from it. */
    u->id = 100000 + (int64_t)(email_hash(email, "user") % 2000000000);
    snprintf(u->email, sizeof u->email, "%s", email);
    const char *at = strchr(email, '@');
    size_t local = at ? (size_t)(at - email) : strlen(email);
    title_case(email, local, u->first_name, sizeof u->first_name);
    snprintf(u->last_name, sizeof u->last_name, "Sandbox");
    make_businesses(u, 1);
    return (int)n_users++;
}

void db_issue_code(const char *email, int businesses, const char *redirect_uri, const char *scope,
                   const char *code_challenge, char code_out[44])
{
    id_new(code_out);
    uint8_t key[KEY_BYTES];
    token_key(code_out, key);
    struct code *c = xmalloc(sizeof *c);
    memset(c, 0, sizeof *c);
    snprintf(c->redirect_uri, sizeof c->redirect_uri, "%s", redirect_uri);
    snprintf(c->scope, sizeof c->scope, "%s", scope);
    snprintf(c->challenge, sizeof c->challenge, "%s", code_challenge ? code_challenge : "");
    c->expires = now_s() + CODE_TTL;
    pthread_mutex_lock(&mu);
    c->user = user_for_email(email);
    if (businesses >= 0 && businesses <= SANDBOX_BUSINESSES_MAX)
        make_businesses(&users[c->user], (size_t)businesses);
    map_put(&codes, key, c);
    stats.codes_issued++;
    pthread_mutex_unlock(&mu);
}

bool db_set_businesses(const char *email, int businesses)
{
    uint8_t key[KEY_BYTES];
    token_key(email, key);
    pthread_mutex_lock(&mu);
    int *index = map_get(&user_index, key);
    if (index && businesses >= 0 && businesses <= SANDBOX_BUSINESSES_MAX)
        make_businesses(&users[*index], (size_t)businesses);
    pthread_mutex_unlock(&mu);
    return index != NULL;
}

/* PKCE S256: base64url(SHA-256(verifier)) is the challenge (RFC 7636 4.6). */
static bool pkce_matches(const char *challenge, const char *verifier)
{
    if (!challenge[0])
        return true;
    size_t n = verifier ? strlen(verifier) : 0;
    if (n < 43 || n > 128)
        return false;
    uint8_t digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, (const uint8_t *)verifier, n);
    char expect[64];
    b64url_encode(digest, sizeof digest, expect);
    return strcmp(expect, challenge) == 0;
}

/* A JWT-shaped access token of realistic size (FreshBooks' are several hundred bytes). */
static void make_access_token(const struct sandbox_user *u, const char *scope, int64_t iat,
                              int64_t exp, char *out, size_t outsz)
{
    static const char header[] = "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"fbsandbox-1\"}";
    uint8_t jti[16], sig[256];
    char jti_hex[33];
    randombytes_buf(jti, sizeof jti);
    randombytes_buf(sig, sizeof sig);
    sodium_bin2hex(jti_hex, sizeof jti_hex, jti, sizeof jti);
    char payload[1024];
    snprintf(payload, sizeof payload,
             "{\"iss\":\"https://auth.sandbox.fbconnect\",\"sub\":%lld,\"aud\":\"fbconnect\","
             "\"iat\":%lld,\"exp\":%lld,\"jti\":\"%s\",\"scope\":\"%s\"}",
             (long long)u->id, (long long)iat, (long long)exp, jti_hex, scope);
    char h64[128], p64[1400], s64[400];
    b64url_encode((const uint8_t *)header, strlen(header), h64);
    b64url_encode((const uint8_t *)payload, strlen(payload), p64);
    b64url_encode(sig, sizeof sig, s64);
    snprintf(out, outsz, "%s.%s.%s", h64, p64, s64);
}

/* Issues a new pair for user index ui, killing the user's earlier refresh tokens.
 * Called with mu held. */
static void issue_pair(int ui, const char *scope, long expires_in, struct issued_pair *out)
{
    const struct sandbox_user *u = &users[ui];
    if (has_live_refresh[ui]) {
        struct refresh *old = map_get(&refresh_tokens, live_refresh[ui]);
        if (old)
            old->state = REFRESH_DEAD;
    }
    int64_t now = now_s();
    out->created_at = now;
    out->expires_in = expires_in;
    snprintf(out->scope, sizeof out->scope, "%s", scope);
    make_access_token(u, scope, now, now + expires_in, out->access_token, sizeof out->access_token);
    uint8_t raw[32];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(out->refresh_token, sizeof out->refresh_token, raw, sizeof raw);

    uint8_t key[KEY_BYTES];
    struct access *a = xmalloc(sizeof *a);
    a->user = ui;
    a->expires = now + expires_in;
    a->revoked = false;
    token_key(out->access_token, key);
    map_put(&access_tokens, key, a);
    struct refresh *r = xmalloc(sizeof *r);
    memset(r, 0, sizeof *r);
    r->user = ui;
    r->state = REFRESH_LIVE;
    snprintf(r->scope, sizeof r->scope, "%s", scope);
    token_key(out->refresh_token, key);
    map_put(&refresh_tokens, key, r);
    memcpy(live_refresh[ui], key, KEY_BYTES);
    has_live_refresh[ui] = true;
}

enum grant_result db_exchange_code(const char *code, const char *redirect_uri,
                                   const char *code_verifier, long expires_in,
                                   struct issued_pair *out)
{
    uint8_t key[KEY_BYTES];
    token_key(code, key);
    enum grant_result res = GRANT_INVALID;
    pthread_mutex_lock(&mu);
    struct code *c = map_get(&codes, key);
    if (c && !c->used && c->expires >= now_s() && strcmp(c->redirect_uri, redirect_uri) == 0 &&
        pkce_matches(c->challenge, code_verifier)) {
        c->used = true;
        issue_pair(c->user, c->scope, expires_in, out);
        stats.exchanges++;
        res = GRANT_OK;
    } else if (c) {
        c->used = true; /* a misused code is burnt, as RFC 6749 advises */
    }
    pthread_mutex_unlock(&mu);
    return res;
}

enum grant_result db_refresh(const char *refresh_token, long expires_in, struct issued_pair *out)
{
    uint8_t key[KEY_BYTES];
    token_key(refresh_token, key);
    enum grant_result res = GRANT_INVALID;
    pthread_mutex_lock(&mu);
    struct refresh *r = map_get(&refresh_tokens, key);
    if (r && r->state == REFRESH_LIVE) {
        char scope[512];
        snprintf(scope, sizeof scope, "%s", r->scope);
        issue_pair(r->user, scope, expires_in, out); /* kills r too */
        stats.refreshes++;
        res = GRANT_OK;
    } else {
        stats.refresh_rejected++;
        if (r) {
            stats.spent_refresh_presented++;
            res = GRANT_SPENT;
        }
    }
    pthread_mutex_unlock(&mu);
    return res;
}

bool db_revoke(const char *token)
{
    uint8_t key[KEY_BYTES];
    token_key(token, key);
    bool known = false;
    pthread_mutex_lock(&mu);
    struct access *a = map_get(&access_tokens, key);
    if (a) {
        a->revoked = true;
        known = true;
    }
    struct refresh *r = map_get(&refresh_tokens, key);
    if (r) {
        r->state = REFRESH_DEAD;
        known = true;
    }
    stats.revocations++;
    pthread_mutex_unlock(&mu);
    return known;
}

bool db_user_for_access(const char *access_token, struct sandbox_user *out)
{
    uint8_t key[KEY_BYTES];
    token_key(access_token, key);
    bool ok = false;
    pthread_mutex_lock(&mu);
    struct access *a = map_get(&access_tokens, key);
    if (a && !a->revoked && a->expires > now_s()) {
        *out = users[a->user];
        ok = true;
    } else {
        stats.me_rejected++;
    }
    pthread_mutex_unlock(&mu);
    return ok;
}

bool db_find_user(const char *email, struct sandbox_user *out)
{
    uint8_t key[KEY_BYTES];
    token_key(email, key);
    pthread_mutex_lock(&mu);
    int *index = map_get(&user_index, key);
    if (index)
        *out = users[*index];
    pthread_mutex_unlock(&mu);
    return index != NULL;
}

void db_count(enum sandbox_counter which)
{
    pthread_mutex_lock(&mu);
    switch (which) {
    case COUNT_ME_CALL: stats.me_calls++; break;
    case COUNT_TOKEN_CALL: stats.token_calls++; break;
    case COUNT_AUTHORIZE_PAGE: stats.authorize_pages++; break;
    }
    pthread_mutex_unlock(&mu);
}

bool db_issued(const char *value)
{
    uint8_t key[KEY_BYTES];
    token_key(value, key);
    pthread_mutex_lock(&mu);
    bool found = map_get(&codes, key) || map_get(&access_tokens, key) || map_get(&refresh_tokens, key);
    pthread_mutex_unlock(&mu);
    return found;
}

struct sandbox_stats db_stats(void)
{
    pthread_mutex_lock(&mu);
    struct sandbox_stats s = stats;
    pthread_mutex_unlock(&mu);
    return s;
}
