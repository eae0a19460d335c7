/* rekey.h — `fbconnect rekey`: seal every connection record and bind every owner pointer
 * with the current key, so an old key can be dropped from FBCONNECT_OLD_SECRET_KEYS. */
#ifndef FBC_REKEY_H
#define FBC_REKEY_H

#include <stdbool.h>
#include <stdio.h>

#include "ctx.h"

/* Scans every record under the prefix and re-seals those opened with an old key
 * (compare-and-set; a record written meanwhile is current already), then binds every owner
 * pointer bound with an old key with the current one — and, with bind_unbound (once per
 * Redis, when upgrading from 0.1; refused after that), the unbound ones from before 0.2.
 * Prints a summary to out.  Returns 0 when everything is now current, 1 when some record
 * could not be opened with any configured key, Redis failed or binding was refused. */
int rekey_all(const struct app *app, bool bind_unbound, FILE *out);

#endif
