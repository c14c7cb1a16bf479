/* redis.h - one asynchronous Redis connection on the event loop.
 * SPDX-License-Identifier: MIT
 *
 * Redis is an accelerator and a coordinator, never a dependency: every
 * command completes within redis.timeout, with a reply or with NULL when
 * Redis is down, slow or refusing, and the connection comes back by
 * itself with backoff, a refused password included. A connection may
 * also hold one pattern subscription, renewed on every reconnect.
 */
#ifndef RECGATE_REDIS_H
#define RECGATE_REDIS_H

#include <hiredis/hiredis.h>
#include <stdbool.h>
#include <stddef.h>

#include "recgate/config.h"

struct event_base;

typedef struct redis_conn redis_conn;

/* reply is NULL when the command failed or timed out; it is freed after
 * the callback returns. An error reply is passed as it is. */
typedef void (*redis_reply_cb)(redisReply *reply, void *arg);

/* A message on a subscribed channel; both are valid during the call. */
typedef void (*redis_message_cb)(const char *channel, const char *payload,
                                 size_t len, void *arg);

/* Starts connecting at once; never fails because Redis is down. name is
 * used in log lines. */
redis_conn *redis_conn_create(struct event_base *base, const config *cfg,
                              const char *name);

/* Frees everything; pending commands are dropped without a callback, so
 * call it only once the loop has stopped. */
void redis_conn_destroy(redis_conn *rc);

/* True once Redis has answered the link's setup (AUTH, SELECT), unless
 * a command has since timed out with no reply of any kind after it: a
 * frozen Redis keeps its connections open, so connected is not enough. */
bool redis_conn_up(const redis_conn *rc);

/* Sends one command given as argv. cb runs exactly once, never before
 * this returns. cb may be NULL for a command whose reply is unneeded. */
void redis_conn_command(redis_conn *rc, redis_reply_cb cb, void *arg, int argc,
                        const char **argv, const size_t *lens);

/* Puts the connection into subscriber mode on pattern (PSUBSCRIBE), now
 * and after every reconnect. Such a connection takes no other command. */
void redis_conn_subscribe(redis_conn *rc, const char *pattern,
                          redis_message_cb cb, void *arg);

#endif /* RECGATE_REDIS_H */
