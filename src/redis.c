/* redis.c - one asynchronous Redis connection on the event loop.
 * SPDX-License-Identifier: MIT
 *
 * hiredis (0.14 in Debian 12) has no command timeouts of its own, so each
 * command carries a timer: whichever of the reply and the timer comes
 * first answers the caller, and the other is ignored. The command record
 * is freed only once hiredis has called back too, since hiredis holds a
 * pointer to it until then.
 */
#include "recgate/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "recgate/log.h"
#include "recgate/metrics.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

typedef enum {
    LINK_DOWN = 0,
    LINK_CONNECTING,
    LINK_UP,
} link_state;

typedef struct pending pending;

struct pending {
    redis_conn *owner;
    redis_reply_cb cb;
    void *arg;
    struct event *timer;
    bool answered; /* the caller has had its callback */
    bool sent;     /* hiredis holds a pointer to this record */
    LIST_ENTRY(pending) link;
};

struct redis_conn {
    struct event_base *base;
    const config *cfg;
    const char *name;
    redisAsyncContext *ctx;
    link_state state;
    struct event *reconnect_timer;
    int backoff_ms;
    bool closing;
    bool warned_down; /* "down" is logged once per outage */
    char *pattern;    /* subscription, or NULL */
    redis_message_cb on_message;
    void *message_arg;
    LIST_HEAD(, pending) pendings;
};

static void connect_now(redis_conn *rc);

static struct timeval
ms_to_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000,
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static void
log_link(log_level level, const redis_conn *rc, const char *msg,
         const char *error)
{
    log_line line;

    log_begin(&line, level, msg);
    log_str(&line, "connection", rc->name);
    if (error != NULL) {
        log_str(&line, "error", error);
    }
    log_end(&line);
}

static void
schedule_reconnect(redis_conn *rc)
{
    struct timeval tv = ms_to_tv(rc->backoff_ms);

    if (rc->closing) {
        return;
    }
    evtimer_add(rc->reconnect_timer, &tv);
    rc->backoff_ms *= 2;
    if (rc->backoff_ms > BACKOFF_MAX_MS) {
        rc->backoff_ms = BACKOFF_MAX_MS;
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
went_down(redis_conn *rc, const char *error)
{
    rc->ctx = NULL;
    rc->state = LINK_DOWN;
    if (!rc->warned_down && !rc->closing) {
        log_link(LOG_WARN, rc, "redis unreachable: going on without it", error);
        rc->warned_down = true;
    }
    schedule_reconnect(rc);
}

static void
on_connect(const redisAsyncContext *ac, int status)
{
    redis_conn *rc = ac->data;

    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback returns. */
        went_down(rc, ac->errstr);
        return;
    }
    rc->state = LINK_UP;
    rc->backoff_ms = BACKOFF_MIN_MS;
    rc->warned_down = false;
    log_link(LOG_INFO, rc, "redis connected", NULL);
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_conn *rc = ac->data;

    (void)status;
    went_down(rc, ac->errstr[0] ? ac->errstr : "connection closed");
}

/* Replies to AUTH and SELECT: a refusal leaves the link unusable. */
static void
on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    redis_conn *rc = privdata;

    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        log_link(LOG_ERROR, rc, "redis refused connection setup", reply->str);
        redisAsyncDisconnect(ac);
    }
}

/* Every message of the pattern subscription, and its confirmation. */
static void
on_subscription(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    redis_conn *rc = privdata;

    (void)ac;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 4) {
        return;
    }
    if (reply->element[0]->type == REDIS_REPLY_STRING &&
        strcmp(reply->element[0]->str, "pmessage") == 0 &&
        reply->element[2]->type == REDIS_REPLY_STRING &&
        reply->element[3]->type == REDIS_REPLY_STRING &&
        rc->on_message != NULL && !rc->closing) {
        rc->on_message(reply->element[2]->str, reply->element[3]->str,
                       reply->element[3]->len, rc->message_arg);
    }
}

static void
send_setup(redis_conn *rc)
{
    const config *cfg = rc->cfg;

    if (cfg->redis_password != NULL) {
        redisAsyncCommand(rc->ctx, on_setup_reply, rc, "AUTH %s",
                          cfg->redis_password);
    }
    if (cfg->redis_db != 0) {
        redisAsyncCommand(rc->ctx, on_setup_reply, rc, "SELECT %d",
                          cfg->redis_db);
    }
    if (rc->pattern != NULL) {
        redisAsyncCommand(rc->ctx, on_subscription, rc, "PSUBSCRIBE %s",
                          rc->pattern);
    }
}

static void
connect_now(redis_conn *rc)
{
    rc->ctx = redisAsyncConnect(rc->cfg->redis_host, rc->cfg->redis_port);
    if (rc->ctx == NULL || rc->ctx->err) {
        char error[128] = "out of memory";
        if (rc->ctx != NULL) {
            strncpy(error, rc->ctx->errstr, sizeof(error) - 1);
            redisAsyncFree(rc->ctx);
        }
        went_down(rc, error);
        return;
    }

    rc->ctx->data = rc;
    rc->state = LINK_CONNECTING;
    redisLibeventAttach(rc->ctx, rc->base);
    redisAsyncSetConnectCallback(rc->ctx, on_connect);
    redisAsyncSetDisconnectCallback(rc->ctx, on_disconnect);
    send_setup(rc);
}

redis_conn *
redis_conn_create(struct event_base *base, const config *cfg, const char *name)
{
    redis_conn *rc = calloc(1, sizeof(*rc));

    if (rc == NULL) {
        return NULL;
    }
    rc->base = base;
    rc->cfg = cfg;
    rc->name = name;
    rc->backoff_ms = BACKOFF_MIN_MS;
    LIST_INIT(&rc->pendings);
    rc->reconnect_timer = evtimer_new(base, on_reconnect_timer, rc);

    connect_now(rc);
    return rc;
}

static void
pending_free(pending *p)
{
    LIST_REMOVE(p, link);
    event_free(p->timer);
    free(p);
}

void
redis_conn_destroy(redis_conn *rc)
{
    if (rc == NULL) {
        return;
    }
    rc->closing = true;

    /* Freeing the context calls every pending reply callback with NULL;
     * they find the records answered or answer nobody while closing. */
    if (rc->ctx != NULL) {
        redisAsyncFree(rc->ctx);
        rc->ctx = NULL;
    }
    while (!LIST_EMPTY(&rc->pendings)) {
        pending_free(LIST_FIRST(&rc->pendings));
    }
    event_free(rc->reconnect_timer);
    free(rc->pattern);
    free(rc);
}

bool
redis_conn_up(const redis_conn *rc)
{
    return rc->state == LINK_UP;
}

/* Hands the caller its answer once; later arrivals are ignored. */
static void
answer(pending *p, redisReply *reply)
{
    if (p->answered) {
        return;
    }
    p->answered = true;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        metrics_inc(METRIC_REDIS_ERRORS);
    }
    if (p->cb != NULL && !p->owner->closing) {
        p->cb(reply, p->arg);
    }
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
    pending *p = arg;

    (void)fd;
    (void)what;
    answer(p, NULL);
    if (!p->sent) {
        pending_free(p);
    }
}

static void
on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    pending *p = privdata;

    (void)ac;
    p->sent = false;
    answer(p, reply);
    pending_free(p);
}

void
redis_conn_command(redis_conn *rc, redis_reply_cb cb, void *arg, int argc,
                   const char **argv, const size_t *lens)
{
    pending *p = calloc(1, sizeof(*p));
    struct timeval tv;

    p->owner = rc;
    p->cb = cb;
    p->arg = arg;
    p->timer = evtimer_new(rc->base, on_timeout, p);
    LIST_INSERT_HEAD(&rc->pendings, p, link);

    /* Down: answer "failed" on the next loop turn, never from here. */
    if (rc->ctx == NULL || rc->state == LINK_DOWN ||
        redisAsyncCommandArgv(rc->ctx, on_reply, p, argc, argv, lens) !=
            REDIS_OK) {
        tv = ms_to_tv(0);
        evtimer_add(p->timer, &tv);
        return;
    }
    p->sent = true;
    tv = ms_to_tv(rc->cfg->redis_timeout_ms);
    evtimer_add(p->timer, &tv);
}

void
redis_conn_subscribe(redis_conn *rc, const char *pattern, redis_message_cb cb,
                     void *arg)
{
    free(rc->pattern);
    rc->pattern = strdup(pattern);
    rc->on_message = cb;
    rc->message_arg = arg;
    if (rc->ctx != NULL) {
        redisAsyncCommand(rc->ctx, on_subscription, rc, "PSUBSCRIBE %s",
                          rc->pattern);
    }
}
