/* app.h — fbconnect as the FastCGI server runs it: a worker's start and stop, and the
 * handling of one request (parse, route, answer, count, log). */
#ifndef FBC_APP_H
#define FBC_APP_H

#include "ctx.h"
#include "server.h"

/* The callbacks server_start() runs fbconnect with. */
extern const struct server_app fbconnect_server_app;

#endif
