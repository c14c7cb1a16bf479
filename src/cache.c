/* cache.c - finished records in Redis.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "recgate/log.h"
#include "recgate/metrics.h"

#define KEY_MAX 256

typedef struct get_op get_op;

struct get_op {
    cache_get_cb cb;
    void *arg;
    LIST_ENTRY(get_op) link;
};

struct cache {
    redis_conn *redis;
    const config *cfg;
    LIST_HEAD(, get_op) pending; /* freed here if Redis never answers */
};

cache *
cache_create(redis_conn *redis, const config *cfg)
{
    cache *c = calloc(1, sizeof(*c));

    if (c != NULL) {
        c->redis = redis;
        c->cfg = cfg;
        LIST_INIT(&c->pending);
    }
    return c;
}

void
cache_destroy(cache *c)
{
    get_op *op;

    if (c == NULL) {
        return;
    }
    while ((op = LIST_FIRST(&c->pending)) != NULL) {
        LIST_REMOVE(op, link);
        free(op);
    }
    free(c);
}

bool
cache_connected(const cache *c)
{
    return redis_conn_up(c->redis);
}

int
cache_key(const cache *c, const char *kind, const char *project,
          const char *record, char *buf, size_t size)
{
    int n = snprintf(buf, size, "%s%s:%s:%s", c->cfg->key_prefix, kind, project,
                     record);

    return (n < 0 || (size_t)n >= size) ? -1 : n;
}

static void
on_get_reply(redisReply *reply, void *arg)
{
    get_op *op = arg;

    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        op->cb(CACHE_ERROR, NULL, 0, op->arg);
    } else if (reply->type == REDIS_REPLY_STRING && reply->len > 0) {
        op->cb(CACHE_HIT, reply->str, reply->len, op->arg);
    } else {
        op->cb(CACHE_MISS, NULL, 0, op->arg);
    }
    LIST_REMOVE(op, link);
    free(op);
}

void
cache_get(cache *c, const char *project, const char *record, cache_get_cb cb,
          void *arg)
{
    char key[KEY_MAX];
    int n = cache_key(c, "rec", project, record, key, sizeof(key));
    const char *argv[2] = {"GET", key};
    size_t lens[2] = {3, (size_t)(n < 0 ? 0 : n)};
    get_op *op = malloc(sizeof(*op));

    op->cb = cb;
    op->arg = arg;
    LIST_INSERT_HEAD(&c->pending, op, link);
    redis_conn_command(c->redis, on_get_reply, op, 2, argv, lens);
}

static void
on_set_reply(redisReply *reply, void *arg)
{
    (void)arg;
    if (reply != NULL && reply->type == REDIS_REPLY_STATUS) {
        metrics_inc(METRIC_CACHE_WRITES);
        return;
    }
    log_msg(LOG_WARN, "redis write failed", "error",
            reply != NULL && reply->type == REDIS_REPLY_ERROR ? reply->str
                                                              : "no reply");
}

void
cache_put(cache *c, const char *project, const char *record, const char *value,
          size_t len)
{
    char key[KEY_MAX];
    char ttl[24];
    int n = cache_key(c, "rec", project, record, key, sizeof(key));
    const char *argv[5] = {"SET", key, value, "PX", ttl};
    size_t lens[5] = {3, (size_t)(n < 0 ? 0 : n), len, 2, 0};
    int argc = 3;

    if (c->cfg->cache_ttl_ms > 0) {
        lens[4] = (size_t)snprintf(ttl, sizeof(ttl), "%lld",
                                   (long long)c->cfg->cache_ttl_ms);
        argc = 5;
    }
    redis_conn_command(c->redis, on_set_reply, NULL, argc, argv, lens);
}
