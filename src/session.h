/* session.h — the browser session: the cookie, the owner key a connection hangs off,
 * and the CSRF value of the disconnect form. */
#ifndef FBC_SESSION_H
#define FBC_SESSION_H

#include <stdbool.h>

#include "ctx.h"

/* Finds the first cookie named `name` in a Cookie header whose value is a well-formed
 * session id; copies it to out.  Malformed or junk cookies are skipped. */
bool session_cookie_find(const char *header, const char *name, id_text out);

/* Reads the session cookie (and the site user, with FBCONNECT_USER_PARAM) into ctx. */
void session_load(struct ctx *ctx);

/* Gives the browser a new session id: updates ctx and adds the Set-Cookie header. */
void session_issue(struct ctx *ctx);

/* This browser's earlier session ids, as state bindings ("b1.b2.b3", from the cookie the
 * callback alone sees, MAC'd for this request's session id), or NULL (none, or a cookie
 * that was not given to this session). */
const char *session_earlier(struct ctx *ctx);
/* Sets that cookie anew for ctx's (new) session id: old_id (the id a connect just
 * replaced) first, then `had` (session_earlier as read under old_id, or NULL), the newest
 * STATE_EARLIER_MAX in all; Path=<base>callback, lasting as long as a state. */
void session_remember_earlier(struct ctx *ctx, const char *old_id, const char *had);

/* Adds Set-Cookie for the current id again (slides the cookie's Max-Age). */
void session_set_cookie(struct ctx *ctx);

/* The Redis name (without prefix) that owns this request's connection: "u:<hash>" for a
 * site user (with FBCONNECT_USER_PARAM), else "s:<hash>" for the browser session.  NULL
 * when there is neither.  Allocated in the arena. */
const char *session_owner(const struct ctx *ctx);
/* The browser-session owner name for a given id (allocated in the arena). */
const char *session_owner_of(struct ctx *ctx, const char *session_id);

/* A short, non-reversible tag of the session for logs ("-" when none): the 8 hex digits
 * its connection events carry as data.owner.session. */
void session_log_tag(const struct ctx *ctx, char out[9]);

/* The disconnect form's CSRF value for this session (arena), and its check (any key in
 * the keyring; constant time).  Both need a session. */
const char *csrf_issue(struct ctx *ctx);
bool csrf_verify(const struct ctx *ctx, const char *value);

#endif
