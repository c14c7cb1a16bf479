/* server.h - the HTTP front end: routes, checks and the record flow.
 * SPDX-License-Identifier: MIT
 *
 * A record request goes: route and input checks, then one shared lookup
 * per record (requests for the same record while one is in flight join
 * it), Redis, and on a miss a signed fetch from the cloud whose answer is
 * validated, normalized, stored when the record is finished, and sent to
 * every request that joined.
 */
#ifndef RECGATE_SERVER_H
#define RECGATE_SERVER_H

#include <stddef.h>

#include "recgate/config.h"

struct event_base;

typedef struct server server;

/* Binds server.listen and wires the cache and upstream. Returns NULL after
 * writing the reason into err. cfg must outlive the server. */
server *server_create(struct event_base *base, const config *cfg, char *err,
                      size_t err_size);

/* Stops accepting connections, lets requests in flight finish, then ends
 * the event loop (at the latest after server.drain_timeout). */
void server_drain(server *srv);

/* Takes up settings that changed in the (already reloaded) config: the
 * tokens file is read again. Open connections are kept. */
void server_reload(server *srv);

void server_destroy(server *srv);

#endif /* RECGATE_SERVER_H */
