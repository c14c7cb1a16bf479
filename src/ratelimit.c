/* ratelimit.c - the upstream request rate, shared by every replica.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/ratelimit.h"

#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "recgate/clock.h"
#include "recgate/log.h"
#include "recgate/metrics.h"

#define KEY_MAX 128
/* A refused request tries again a little after the bucket says, so that
 * waiters of several replicas do not all wake at the same millisecond. */
#define RETRY_JITTER_MS 15

/* KEYS[1] the bucket, KEYS[2] the cloud's pause; ARGV rate/s, burst and
 * the longest pause. Returns {1, 0} when a token was taken, else {0, ms
 * until one may be}. The time is the Redis server's, the one clock every
 * replica shares.
 *
 * What is stored is not trusted. A pause longer than the cap recgate
 * puts on the cloud's Retry-After is cut to the cap. A bucket time in
 * the future (the Redis clock stepped back, a failover to a server whose
 * clock is behind) is taken as now, else refill would stop until then.
 * Tokens or a time that are not finite numbers, or tokens outside [0,
 * burst], reset the bucket to full, as when it has expired: at most
 * burst requests go through at once, and no spurious 429s. */
static const char bucket_script[] =
    "local cap = tonumber(ARGV[3])\n"
    "local pause = redis.call('PTTL', KEYS[2])\n"
    "if pause > cap then\n"
    "  redis.call('PEXPIRE', KEYS[2], cap)\n"
    "  pause = cap\n"
    "end\n"
    "if pause > 0 then return {0, pause} end\n"
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local rate = tonumber(ARGV[1])\n"
    "local burst = tonumber(ARGV[2])\n"
    "local s = redis.call('HMGET', KEYS[1], 'tokens', 'ts')\n"
    "local tokens = tonumber(s[1])\n"
    "local ts = tonumber(s[2])\n"
    "local function finite(x)\n"
    "  return x ~= nil and x == x and x > -math.huge and x < math.huge\n"
    "end\n"
    "if not finite(tokens) or not finite(ts) or tokens < 0 or\n"
    "   tokens > burst then\n"
    "  tokens = burst; ts = now\n"
    "end\n"
    "if ts > now then ts = now end\n"
    "if now > ts then\n"
    "  tokens = math.min(burst, tokens + (now - ts) * rate / 1000)\n"
    "  ts = now\n"
    "end\n"
    "local admitted, wait = 0, 0\n"
    "if tokens >= 1 then tokens = tokens - 1; admitted = 1\n"
    "else wait = math.ceil((1 - tokens) * 1000 / rate) end\n"
    "redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', ts)\n"
    "redis.call('PEXPIRE', KEYS[1], math.ceil(burst * 1000 / rate) + 1000)\n"
    "return {admitted, wait}\n";

typedef struct waiter waiter;

struct waiter {
    ratelimit *owner;
    ratelimit_cb cb;
    void *arg;
    int64_t give_up_ms; /* monotonic: answer "refused" after this */
    struct event *timer;
    bool in_redis; /* a script call is under way */
    TAILQ_ENTRY(waiter) link;
};

struct ratelimit {
    struct event_base *base;
    const config *cfg;
    redis_conn *redis;
    char bucket_key[KEY_MAX];
    char pause_key[KEY_MAX];
    int workers;
    double local_tokens;
    int64_t local_ts;
    int64_t paused_until; /* monotonic; also kept locally */
    bool local;           /* the fallback is in use */
    int queued;
    TAILQ_HEAD(, waiter) waiters;
};

static void attempt(waiter *w);

ratelimit *
ratelimit_create(struct event_base *base, const config *cfg, redis_conn *redis,
                 int workers)
{
    ratelimit *rl = calloc(1, sizeof(*rl));

    rl->base = base;
    rl->cfg = cfg;
    rl->redis = redis;
    snprintf(rl->bucket_key, sizeof(rl->bucket_key), "%sratelimit",
             cfg->key_prefix);
    snprintf(rl->pause_key, sizeof(rl->pause_key), "%spause", cfg->key_prefix);
    rl->workers = workers > 0 ? workers : 1;
    rl->local_tokens = 1.0;
    rl->local_ts = clock_now_ms();
    TAILQ_INIT(&rl->waiters);
    return rl;
}

static void
waiter_free(waiter *w)
{
    TAILQ_REMOVE(&w->owner->waiters, w, link);
    w->owner->queued--;
    event_free(w->timer);
    free(w);
}

void
ratelimit_destroy(ratelimit *rl)
{
    if (rl == NULL) {
        return;
    }
    while (!TAILQ_EMPTY(&rl->waiters)) {
        waiter_free(TAILQ_FIRST(&rl->waiters));
    }
    free(rl);
}

const char *
ratelimit_backend(const ratelimit *rl)
{
    return rl->local ? "local" : "redis";
}

static void
finish(waiter *w, bool admitted, int64_t retry_after_ms)
{
    ratelimit_cb cb = w->cb;
    void *arg = w->arg;

    if (!admitted) {
        metrics_inc(METRIC_RATELIMITED);
    }
    waiter_free(w);
    cb(admitted, retry_after_ms, arg);
}

/* The token bucket of this worker alone, used while Redis is away: its
 * share of the rate is upstream.fallback_share split over the workers,
 * since the replicas can no longer agree. */
static int64_t
take_local_token(ratelimit *rl)
{
    const config *cfg = rl->cfg;
    double share = cfg->upstream_fallback_share / rl->workers;
    double rate = cfg->upstream_rate * share / 1000.0; /* per ms */
    double burst = fmax(1.0, floor(cfg->upstream_burst * share));
    int64_t now = clock_now_ms();

    if (now < rl->paused_until) {
        return rl->paused_until - now;
    }
    rl->local_tokens =
        fmin(burst, rl->local_tokens + (double)(now - rl->local_ts) * rate);
    rl->local_ts = now;
    if (rl->local_tokens >= 1.0) {
        rl->local_tokens -= 1.0;
        return 0;
    }
    return (int64_t)ceil((1.0 - rl->local_tokens) / rate);
}

static void
use_fallback(ratelimit *rl, bool local)
{
    if (rl->local == local) {
        return;
    }
    rl->local = local;
    log_msg(local ? LOG_WARN : LOG_INFO,
            local ? "rate limit: redis unreachable, using the local "
                    "fallback share"
                  : "rate limit: shared again through redis",
            NULL, NULL);
}

/* Admits, waits and tries again, or refuses, given the wait the bucket
 * asked for. */
static void
settle(waiter *w, int64_t wait_ms)
{
    int64_t now = clock_now_ms();
    struct timeval tv;

    if (wait_ms <= 0) {
        finish(w, true, 0);
        return;
    }
    if (now + wait_ms > w->give_up_ms) {
        finish(w, false, wait_ms);
        return;
    }
    tv = clock_tv(wait_ms + rand() % RETRY_JITTER_MS);
    evtimer_add(w->timer, &tv);
}

static void
on_script_reply(redisReply *reply, void *arg)
{
    waiter *w = arg;
    ratelimit *rl = w->owner;

    w->in_redis = false;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY ||
        reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER) {
        use_fallback(rl, true);
        settle(w, take_local_token(rl));
        return;
    }

    use_fallback(rl, false);
    settle(w, reply->element[0]->integer == 1 ? 0 : reply->element[1]->integer);
}

static void
attempt(waiter *w)
{
    ratelimit *rl = w->owner;
    char rate[32];
    char burst[16];
    char cap[24];
    const char *argv[8] = {"EVAL",        bucket_script, "2",   rl->bucket_key,
                           rl->pause_key, rate,          burst, cap};
    size_t lens[8];

    snprintf(rate, sizeof(rate), "%.6f", rl->cfg->upstream_rate);
    snprintf(burst, sizeof(burst), "%d", rl->cfg->upstream_burst);
    snprintf(cap, sizeof(cap), "%lld", (long long)RATELIMIT_PAUSE_MAX_MS);
    for (int i = 0; i < 8; i++) {
        lens[i] = strlen(argv[i]);
    }
    w->in_redis = true;
    redis_conn_command(rl->redis, on_script_reply, w, 8, argv, lens);
}

static void
on_retry_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    attempt(arg);
}

static void
on_queue_full(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    finish(arg, false, 1000);
}

void
ratelimit_acquire(ratelimit *rl, int64_t deadline_ms, ratelimit_cb cb,
                  void *arg)
{
    waiter *w = calloc(1, sizeof(*w));
    int64_t queue_end = clock_now_ms() + rl->cfg->upstream_queue_timeout_ms;
    struct timeval now = {0, 0};

    w->owner = rl;
    w->cb = cb;
    w->arg = arg;
    w->give_up_ms = queue_end < deadline_ms ? queue_end : deadline_ms;
    TAILQ_INSERT_TAIL(&rl->waiters, w, link);
    rl->queued++;

    /* The queue is bounded: past it, refuse at once (on the next turn of
     * the loop, as the contract says). */
    if (rl->queued > rl->cfg->upstream_queue_size) {
        w->timer = evtimer_new(rl->base, on_queue_full, w);
        evtimer_add(w->timer, &now);
        return;
    }
    w->timer = evtimer_new(rl->base, on_retry_timer, w);
    attempt(w);
}

void
ratelimit_pause(ratelimit *rl, int64_t ms)
{
    char value[24];
    const char *argv[5] = {"SET", rl->pause_key, "1", "PX", value};
    size_t lens[5];
    int64_t until;

    if (ms > RATELIMIT_PAUSE_MAX_MS) {
        ms = RATELIMIT_PAUSE_MAX_MS;
    }
    until = clock_now_ms() + ms;

    if (until > rl->paused_until) {
        rl->paused_until = until;
    }
    snprintf(value, sizeof(value), "%lld", (long long)ms);
    for (int i = 0; i < 5; i++) {
        lens[i] = strlen(argv[i]);
    }
    redis_conn_command(rl->redis, NULL, NULL, 5, argv, lens);
}
