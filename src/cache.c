/* cache.c - finished records in Redis, on the gateway's event loop.
 * SPDX-License-Identifier: MIT
 *
 * hiredis (0.14 in Debian 12) has no command timeouts of its own, so each
 * lookup carries a timer: whichever of the reply and the timer comes first
 * answers the caller, and the other is ignored. The operation itself is
 * freed only once hiredis has called back too, since hiredis still holds
 * a pointer to it until then.
 */
#include "recgate/cache.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "recgate/log.h"
#include "recgate/metrics.h"

#define KEY_MAX 256
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef enum {
    REDIS_DOWN = 0,
    REDIS_CONNECTING,
    REDIS_UP,
} redis_state;

typedef struct cache_op cache_op;

struct cache_op {
    cache *owner;
    cache_get_cb cb;
    void *arg;
    struct event *timer;
    bool answered;        /* the caller has had its callback */
    bool sent;            /* hiredis holds a pointer to this op */
    LIST_ENTRY(cache_op) link;
};

struct cache {
    struct event_base *base;
    const config *cfg;
    redisAsyncContext *ctx;
    redis_state state;
    struct event *reconnect_timer;
    int backoff_ms;
    bool closing;
    LIST_HEAD(, cache_op) ops;
};

static void connect_now(cache *c);


static struct timeval
ms_to_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000,
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}


static void
schedule_reconnect(cache *c)
{
    struct timeval tv = ms_to_tv(c->backoff_ms);

    if (c->closing) {
        return;
    }
    evtimer_add(c->reconnect_timer, &tv);
    c->backoff_ms *= 2;
    if (c->backoff_ms > BACKOFF_MAX_MS) {
        c->backoff_ms = BACKOFF_MAX_MS;
    }
}


static void
on_reconnect_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    connect_now(arg);
}


static void
on_connect(const redisAsyncContext *ac, int status)
{
    cache *c = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback returns. */
        if (c->state != REDIS_DOWN || c->backoff_ms == BACKOFF_MIN_MS) {
            log_msg(LOG_WARN, "redis connect failed", "error", ac->errstr);
        }
        c->ctx = NULL;
        c->state = REDIS_DOWN;
        schedule_reconnect(c);
        return;
    }

    c->state = REDIS_UP;
    c->backoff_ms = BACKOFF_MIN_MS;
    log_msg(LOG_INFO, "redis connected", NULL, NULL);
}


static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    cache *c = ac->data;

    c->ctx = NULL;
    c->state = REDIS_DOWN;
    if (status != REDIS_OK && !c->closing) {
        log_msg(LOG_WARN, "redis connection lost", "error", ac->errstr);
    }
    schedule_reconnect(c);
}


/* Replies to AUTH and SELECT: a refusal leaves the link unusable. */
static void
on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;

    (void)privdata;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_msg(LOG_ERROR, "redis refused connection setup", "error",
                reply->str);
        redisAsyncDisconnect(ac);
    }
}


static void
connect_now(cache *c)
{
    const config *cfg = c->cfg;

    c->ctx = redisAsyncConnect(cfg->redis_host, cfg->redis_port);
    if (c->ctx == NULL || c->ctx->err) {
        if (c->ctx != NULL) {
            log_msg(LOG_WARN, "redis connect failed", "error",
                    c->ctx->errstr);
            redisAsyncFree(c->ctx);
        }
        c->ctx = NULL;
        schedule_reconnect(c);
        return;
    }

    c->ctx->data = c;
    c->state = REDIS_CONNECTING;
    redisLibeventAttach(c->ctx, c->base);
    redisAsyncSetConnectCallback(c->ctx, on_connect);
    redisAsyncSetDisconnectCallback(c->ctx, on_disconnect);

    if (cfg->redis_password != NULL) {
        redisAsyncCommand(c->ctx, on_setup_reply, NULL, "AUTH %s",
                          cfg->redis_password);
    }
    if (cfg->redis_db != 0) {
        redisAsyncCommand(c->ctx, on_setup_reply, NULL, "SELECT %d",
                          cfg->redis_db);
    }
}


cache *
cache_create(struct event_base *base, const config *cfg)
{
    cache *c = calloc(1, sizeof(*c));

    if (c == NULL) {
        return NULL;
    }
    c->base = base;
    c->cfg = cfg;
    c->backoff_ms = BACKOFF_MIN_MS;
    LIST_INIT(&c->ops);
    c->reconnect_timer = evtimer_new(base, on_reconnect_timer, c);

    connect_now(c);
    return c;
}


static void
op_free(cache_op *op)
{
    LIST_REMOVE(op, link);
    event_free(op->timer);
    free(op);
}


void
cache_destroy(cache *c)
{
    cache_op *op;

    if (c == NULL) {
        return;
    }
    c->closing = true;

    /* Freeing the context calls every pending reply callback with NULL;
     * they see the ops already answered or answer them as errors. */
    if (c->ctx != NULL) {
        redisAsyncFree(c->ctx);
        c->ctx = NULL;
    }
    while ((op = LIST_FIRST(&c->ops)) != NULL) {
        op_free(op);
    }
    event_free(c->reconnect_timer);
    free(c);
}


bool
cache_connected(const cache *c)
{
    return c->state == REDIS_UP;
}


int
cache_key(const cache *c, const char *project, const char *record,
          char *buf, size_t size)
{
    int n = snprintf(buf, size, "%srec:%s:%s", c->cfg->key_prefix, project,
                     record);

    return (n < 0 || (size_t)n >= size) ? -1 : n;
}


/* Hands the caller its answer once; later arrivals are ignored. */
static void
op_answer(cache_op *op, cache_status status, const char *value, size_t len)
{
    if (op->answered) {
        return;
    }
    op->answered = true;
    if (status == CACHE_ERROR) {
        metrics_inc(METRIC_REDIS_ERRORS);
    }
    if (!op->owner->closing) {
        op->cb(status, value, len, op->arg);
    }
}


static void
on_op_timer(evutil_socket_t fd, short what, void *arg)
{
    cache_op *op = arg;

    (void)fd;
    (void)what;
    op_answer(op, CACHE_ERROR, NULL, 0);
    if (!op->sent) {
        op_free(op);
    }
}


static void
on_get_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    cache_op *op = privdata;

    (void)ac;
    op->sent = false;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        op_answer(op, CACHE_ERROR, NULL, 0);
    } else if (reply->type == REDIS_REPLY_STRING) {
        op_answer(op, CACHE_HIT, reply->str, reply->len);
    } else {
        op_answer(op, CACHE_MISS, NULL, 0);
    }
    op_free(op);
}


void
cache_get(cache *c, const char *project, const char *record,
          cache_get_cb cb, void *arg)
{
    cache_op *op = calloc(1, sizeof(*op));
    char key[KEY_MAX];
    struct timeval tv;
    int n = cache_key(c, project, record, key, sizeof(key));

    op->owner = c;
    op->cb = cb;
    op->arg = arg;
    op->timer = evtimer_new(c->base, on_op_timer, op);
    LIST_INSERT_HEAD(&c->ops, op, link);

    /* Down or unusable: answer "error" on the next loop turn. */
    if (c->ctx == NULL || c->state == REDIS_DOWN || n < 0
        || redisAsyncCommand(c->ctx, on_get_reply, op, "GET %b", key,
                             (size_t)n) != REDIS_OK) {
        tv = ms_to_tv(0);
        evtimer_add(op->timer, &tv);
        return;
    }

    op->sent = true;
    tv = ms_to_tv(c->cfg->redis_timeout_ms);
    evtimer_add(op->timer, &tv);
}


static void
on_set_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;

    (void)ac;
    (void)privdata;
    if (reply != NULL && reply->type == REDIS_REPLY_STATUS) {
        metrics_inc(METRIC_CACHE_WRITES);
        return;
    }
    metrics_inc(METRIC_REDIS_ERRORS);
    log_msg(LOG_WARN, "redis write failed", "error",
            reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str
                                                              : "no reply");
}


void
cache_put(cache *c, const char *project, const char *record,
          const char *value, size_t len)
{
    char key[KEY_MAX];
    int n = cache_key(c, project, record, key, sizeof(key));
    int rc;

    if (c->ctx == NULL || c->state == REDIS_DOWN || n < 0) {
        metrics_inc(METRIC_REDIS_ERRORS);
        return;
    }

    if (c->cfg->cache_ttl_ms > 0) {
        rc = redisAsyncCommand(c->ctx, on_set_reply, NULL, "SET %b %b PX %lld",
                               key, (size_t)n, value, len,
                               (long long)c->cfg->cache_ttl_ms);
    } else {
        rc = redisAsyncCommand(c->ctx, on_set_reply, NULL, "SET %b %b", key,
                               (size_t)n, value, len);
    }
    if (rc != REDIS_OK) {
        metrics_inc(METRIC_REDIS_ERRORS);
    }
}
