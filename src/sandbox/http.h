/* http.h — the sandbox's own plain-HTTP listener, on loopback only, for tests that drive
 * fbconnect's core without nginx (tests/core/): each HTTP/1.1 request (one per connection)
 * becomes the FastCGI request nginx would have sent, and goes to the same handler. */
#ifndef FBS_HTTP_H
#define FBS_HTTP_H

#include <stddef.h>

#include "server.h"

/* Listens on "127.0.0.1:PORT" (loopback only) and serves every connection on a thread of
 * its own with app's handler.  Returns 0, or -1 with err set. */
int sandbox_http_start(const char *spec, const struct server_app *app, char *err, size_t errsz);

#endif
