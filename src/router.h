/* router.h — maps DOCUMENT_URI (under FBCONNECT_BASE_PATH) and the method to a handler.
 * 404 for unknown paths and for internal routes without FBCONNECT_INTERNAL=1; 405 (with
 * Allow) for a known path with the wrong method. */
#ifndef FBC_ROUTER_H
#define FBC_ROUTER_H

#include "app.h"

void router_dispatch(struct ctx *ctx);

#endif
