/* admin.h — the operator's commands: list connections (never a token), disconnect or
 * purge one site user's or FreshBooks identity's connection, and the Redis checks of
 * --check-config. */
#ifndef FBC_ADMIN_H
#define FBC_ADMIN_H

#include <stdio.h>

#include "ctx.h"

/* Exit statuses of the operator's commands. */
enum admin_exit {
    ADMIN_OK = 0,          /* done (for disconnect: FreshBooks confirmed the revoke) */
    ADMIN_FAILED = 1,      /* Redis unavailable or another failure, nothing changed */
    ADMIN_USAGE = 2,       /* bad arguments */
    ADMIN_NOT_FOUND = 3,   /* no such connection */
    ADMIN_UNCONFIRMED = 4, /* deleted here, but FreshBooks did not confirm the revoke */
};

/* `fbconnect connections`: one line per stored connection. */
int admin_list(const struct app *app, FILE *out);

/* `fbconnect disconnect|purge --user NAME | --identity FRESHBOOKS_USER_ID`: revoke at
 * FreshBooks (disconnect only) and delete. */
int admin_remove(const struct app *app, int argc, char **argv, bool revoke, FILE *out);

/* `fbconnect events [--user SITE_USER | --identity ID] [--failed]`: the connection
 * history, newest first, with each event's delivery state; `fbconnect events retry
 * EVENT_ID|--failed`: due again now (a running fbconnect sends it).  Never a secret. */
int admin_events(const struct app *app, int argc, char **argv, FILE *out);

/* --check-config's Redis check: a warning about the eviction policy or an unreachable
 * Redis; false (an error line) on certificate trouble, which no wait mends. */
bool admin_check_redis(const struct app *app, FILE *out);

#endif
