/* db.h — the sandbox provider's in-memory world: users, authorization codes, access and
 * refresh tokens, with FreshBooks' rules (codes single-use and bound to the redirect URI,
 * refresh tokens one-time, every new pair killing the user's earlier refresh tokens).
 * Tokens are kept only as hashes.  All calls are thread-safe (one mutex). */
#ifndef FBS_DB_H
#define FBS_DB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SANDBOX_BUSINESSES_MAX 5

/* A business membership: the membership's own id (not the business's: FreshBooks' trap),
 * the role, and the business. */
struct sandbox_business {
    int64_t membership_id, id;
    char uuid[40], name[128], account_id[16], role[24];
};

/* A user: every id derives from the email, so a restarted sandbox knows the same users. */
struct sandbox_user {
    int64_t id;
    char email[128];
    char first_name[64], last_name[64];
    size_t n_businesses;
    struct sandbox_business businesses[SANDBOX_BUSINESSES_MAX];
};

enum grant_result {
    GRANT_OK,
    GRANT_INVALID,  /* unknown, expired, reused, wrong redirect URI or client */
    GRANT_SPENT,    /* a refresh token that was valid once: spent, superseded or revoked */
};

struct issued_pair {
    char access_token[2048];
    char refresh_token[80];
    char scope[512];
    int64_t created_at, expires_in;
};

struct sandbox_stats {
    long codes_issued, exchanges, refreshes, refresh_rejected, spent_refresh_presented,
        revocations, me_calls, me_rejected, token_calls, authorize_pages;
};

void db_init(void);
/* Forgets every user, code and token, and the counters. */
void db_reset(void);

/* Signs a user in by email (created on first sight, with one business; businesses >= 0
 * sets how many they have, up to SANDBOX_BUSINESSES_MAX) and issues a code bound to
 * redirect_uri, scope and, when not NULL, a PKCE S256 code_challenge; code_out gets 43
 * characters. */
void db_issue_code(const char *email, int businesses, const char *redirect_uri, const char *scope,
                   const char *code_challenge, char code_out[44]);
/* Spends a code: GRANT_OK and a new pair when it is unused, unexpired, was issued for
 * redirect_uri and — when it was issued with a challenge — code_verifier matches it. */
enum grant_result db_exchange_code(const char *code, const char *redirect_uri,
                                   const char *code_verifier, long expires_in,
                                   struct issued_pair *out);
/* Sets how many businesses a known user has (0 to SANDBOX_BUSINESSES_MAX): false when
 * there is no such user. */
bool db_set_businesses(const char *email, int businesses);
/* Spends a refresh token: GRANT_OK and a new pair when it is the user's live one. */
enum grant_result db_refresh(const char *refresh_token, long expires_in, struct issued_pair *out);
/* Revokes an access or refresh token; true when it was known. */
bool db_revoke(const char *token);
/* The user an unexpired, unrevoked access token belongs to. */
bool db_user_for_access(const char *access_token, struct sandbox_user *out);
/* Whether value is a code, access token or refresh token this sandbox issued (used,
 * spent or revoked ones included). */
bool db_issued(const char *value);
/* Copies the user with this email, if any. */
bool db_find_user(const char *email, struct sandbox_user *out);

enum sandbox_counter { COUNT_ME_CALL, COUNT_TOKEN_CALL, COUNT_AUTHORIZE_PAGE };
void db_count(enum sandbox_counter which);
struct sandbox_stats db_stats(void);

#endif
