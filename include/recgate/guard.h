/* guard.h - bounds on client connections the HTTP library lacks.
 * SPDX-License-Identifier: MIT
 *
 * libevent 2.1's evhttp has neither a connection cap nor a deadline for
 * receiving a request (its timeout is an inactivity timeout, which a
 * client sending one byte a second never trips). The guard tracks every
 * connection from its accept: past server.max_connections (or fewer,
 * when the open-file limit would not hold that many) a new one gets a
 * 503 and is closed; a connection that started a request and has not
 * delivered its headers within server.read_timeout is cut off.
 */
#ifndef RECGATE_GUARD_H
#define RECGATE_GUARD_H

#include <stdbool.h>
#include <stddef.h>

#include "recgate/config.h"
#include "recgate/reply.h"

struct event_base;
struct evhttp;
struct evhttp_request;

typedef struct conn_guard conn_guard;
typedef struct guard_conn guard_conn;

/* Installs itself on http (evhttp_set_bevcb). cfg and ids (which give
 * each refusal its request id) must outlive it. */
conn_guard *guard_create(struct event_base *base, struct evhttp *http,
                         const config *cfg, reply_ids *ids);

/* Call after evhttp_free(): it holds the last reference of every
 * connection's buffer. */
void guard_destroy(conn_guard *g);

/* The config was reloaded: the cap is made again, from
 * server.max_connections and the open-file limit. */
void guard_reload(conn_guard *g);

/* A request's headers have arrived: its connection is busy, and kept
 * tracked, until guard_request_done() is called with what this returns
 * (which may be NULL). */
guard_conn *guard_request_started(conn_guard *g, struct evhttp_request *req);
void guard_request_done(guard_conn *c);

/* True while some connection still has answer bytes not yet handed to
 * the kernel. */
bool guard_output_pending(const conn_guard *g);

/* Connections open now. */
size_t guard_connections(const conn_guard *g);

#endif /* RECGATE_GUARD_H */
