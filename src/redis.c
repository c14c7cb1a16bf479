/* redis.c - one asynchronous Redis connection on the event loop.
 * SPDX-License-Identifier: MIT
 *
 * hiredis (0.14 in Debian 12) has no command timeouts of its own, so each
 * command carries a timer: whichever of the reply and the timer comes
 * first answers the caller, and the other is ignored. The command record
 * is freed only once hiredis has called back too, since hiredis holds a
 * pointer to it until then.
 *
 * A link is up only once Redis has answered its setup (AUTH and SELECT,
 * or a PING when neither is needed): a TCP connection alone proves
 * nothing, and a refused password is a failed connect like any other,
 * with the same growing backoff. A link whose command timed out counts
 * as down until Redis answers something again, since a frozen Redis
 * keeps its connections open.
 */
#include "recgate/redis.h"

#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <time.h>

#include "recgate/log.h"
#include "recgate/metrics.h"

#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
/* A refused setup or a stall is said at most this often per link. */
#define LINK_LOG_INTERVAL_S 60

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
    int setup_pending; /* setup replies still awaited on this link */
    bool stalled;      /* a command timed out, and no reply came since */
    bool closing;
    bool warned_down; /* "down" is logged once per outage */
    time_t refusal_logged;
    time_t stall_logged;
    char *pattern; /* subscription, or NULL */
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

    /* Connected is not up yet: that waits for the setup replies. */
    if (status != REDIS_OK) {
        /* hiredis frees the context after this callback returns. */
        went_down(rc, ac->errstr);
    }
}

static void
on_disconnect(const redisAsyncContext *ac, int status)
{
    redis_conn *rc = ac->data;

    (void)status;
    went_down(rc, ac->errstr[0] ? ac->errstr : "connection closed");
}

static void
link_up(redis_conn *rc)
{
    rc->state = LINK_UP;
    rc->stalled = false;
    rc->backoff_ms = BACKOFF_MIN_MS;
    rc->warned_down = false;
    log_link(LOG_INFO, rc, "redis connected", NULL);
}

/* A refused AUTH or SELECT will not go away by itself, so it is said
 * once a minute rather than on every attempt. Redis's reply names the
 * problem, never the password. */
static void
setup_refused(redis_conn *rc, const char *error)
{
    if (log_once_per(&rc->refusal_logged, LINK_LOG_INTERVAL_S)) {
        log_link(LOG_WARN, rc,
                 "redis refused connection setup: going on without it", error);
    }
    rc->warned_down = true; /* the line above says it all */
    rc->setup_pending = -1; /* this link never comes up */
}

/* Replies to AUTH, SELECT or PING: the link is up after the last one,
 * and a refusal closes it, to be tried again after the backoff. */
static void
on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    redis_conn *rc = privdata;

    if (reply == NULL || rc->closing) {
        return; /* the link is going away; on_disconnect says why */
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        setup_refused(rc, reply->str);
        redisAsyncDisconnect(ac);
        return;
    }
    if (--rc->setup_pending == 0) {
        link_up(rc);
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

/* Queued before the connection is made; hiredis sends them first. */
static void
send_setup(redis_conn *rc)
{
    const config *cfg = rc->cfg;

    rc->setup_pending = 0;
    if (cfg->redis_password != NULL &&
        redisAsyncCommand(rc->ctx, on_setup_reply, rc, "AUTH %s",
                          cfg->redis_password) == REDIS_OK) {
        rc->setup_pending++;
    }
    if (cfg->redis_db != 0 &&
        redisAsyncCommand(rc->ctx, on_setup_reply, rc, "SELECT %d",
                          cfg->redis_db) == REDIS_OK) {
        rc->setup_pending++;
    }
    if (rc->setup_pending == 0 &&
        redisAsyncCommand(rc->ctx, on_setup_reply, rc, "PING") == REDIS_OK) {
        rc->setup_pending++;
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
    return rc->state == LINK_UP && !rc->stalled;
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

/* A command Redis has but did not answer in time: the link stays open
 * (the reply may still come), but is not reported up meanwhile. */
static void
note_stalled(redis_conn *rc)
{
    if (!rc->stalled && rc->state == LINK_UP && !rc->closing &&
        log_once_per(&rc->stall_logged, LINK_LOG_INTERVAL_S)) {
        log_link(LOG_WARN, rc,
                 "redis did not answer within redis.timeout: going on "
                 "without it",
                 NULL);
    }
    rc->stalled = true;
}

static void
on_timeout(evutil_socket_t fd, short what, void *arg)
{
    pending *p = arg;

    (void)fd;
    (void)what;
    if (p->sent) {
        note_stalled(p->owner);
    }
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
    if (reply != NULL) {
        p->owner->stalled = false; /* Redis answers again */
    }
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
