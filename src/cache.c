/* cache.c - finished records in Redis.
 * SPDX-License-Identifier: MIT
 *
 * A read goes through a small script rather than a plain GET so that a
 * value over upstream.max_body is refused by its length alone: hiredis
 * would otherwise buffer the whole of it, however large.
 */
#include "recgate/cache.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "recgate/log.h"
#include "recgate/metrics.h"
#include "recgate/route.h"

#define KEY_MAX 256

/* KEYS[1] the record, ARGV[1] the longest value wanted. Returns the value
 * (nil when there is none), or only its length when it is longer. */
static const char get_script[] = "local n = redis.call('STRLEN', KEYS[1])\n"
                                 "if n > tonumber(ARGV[1]) then return n end\n"
                                 "return redis.call('GET', KEYS[1])\n";

static const char bad_value_msg[] =
    "record in redis is not one recgate stored: treated as a miss";

typedef struct get_op get_op;

struct get_op {
    cache *owner;
    cache_get_cb cb;
    void *arg;
    char project[ROUTE_PROJECT_LEN + 1];
    char record[ROUTE_RECORD_MAX + 1];
    LIST_ENTRY(get_op) link;
};

struct cache {
    redis_conn *redis;
    const config *cfg;
    const record_rules *rules;
    LIST_HEAD(, get_op) pending; /* freed here if Redis never answers */
};

cache *
cache_create(redis_conn *redis, const config *cfg, const record_rules *rules)
{
    cache *c = calloc(1, sizeof(*c));

    if (c != NULL) {
        c->redis = redis;
        c->cfg = cfg;
        c->rules = rules;
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
log_record(const char *msg, const char *project, const char *record,
           const char *reason)
{
    log_line line;

    log_begin(&line, LOG_WARN, msg);
    log_str(&line, "project_id", project);
    log_str(&line, "record_id", record);
    if (reason != NULL) {
        log_str(&line, "reason", reason);
    }
    log_end(&line);
}

static bool
too_long(const cache *c, size_t len)
{
    return (unsigned long long)len >
           (unsigned long long)c->cfg->upstream_max_body;
}

const char *
cache_unfit(const cache *c, const char *record, const char *value, size_t len,
            bool finished)
{
    record_result rec = {0};
    const char *why = NULL;

    if (len == 0) {
        return "empty value";
    }
    if (too_long(c, len)) {
        return "over upstream.max_body";
    }
    if (record_normalize(c->rules, value, len, record, &rec, &why) != 0) {
        return why;
    }

    if (rec.terminal != finished) {
        why = finished ? "status is not terminal" : "status is terminal";
    } else if (rec.len != len || memcmp(rec.json, value, len) != 0) {
        why = "not in normal form";
    }
    record_result_clear(&rec);
    return why;
}

/* A bad value is a Redis problem, counted with the others, and logged
 * by its reason only: the value itself may be anything. */
static void
report_bad_value(const char *project, const char *record, const char *why)
{
    metrics_inc(METRIC_REDIS_ERRORS);
    log_record(bad_value_msg, project, record, why);
}

bool
cache_value_ok(const cache *c, const char *project, const char *record,
               const char *value, size_t len)
{
    const char *why = cache_unfit(c, record, value, len, true);

    if (why != NULL) {
        report_bad_value(project, record, why);
    }
    return why == NULL;
}

static cache_status
get_status(const get_op *op, const redisReply *reply)
{
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        return CACHE_ERROR;
    }
    if (reply->type == REDIS_REPLY_NIL) {
        return CACHE_MISS;
    }
    if (reply->type == REDIS_REPLY_INTEGER) {
        /* Only a value over the limit is answered by its length. */
        report_bad_value(op->project, op->record, "over upstream.max_body");
        return CACHE_BAD;
    }
    if (reply->type != REDIS_REPLY_STRING) {
        return CACHE_ERROR;
    }
    return cache_value_ok(op->owner, op->project, op->record, reply->str,
                          reply->len)
               ? CACHE_HIT
               : CACHE_BAD;
}

static void
on_get_reply(redisReply *reply, void *arg)
{
    get_op *op = arg;
    cache_status status = get_status(op, reply);

    if (status == CACHE_HIT) {
        op->cb(status, reply->str, reply->len, op->arg);
    } else {
        op->cb(status, NULL, 0, op->arg);
    }
    LIST_REMOVE(op, link);
    free(op);
}

void
cache_get(cache *c, const char *project, const char *record, cache_get_cb cb,
          void *arg)
{
    char key[KEY_MAX];
    char max[24];
    int n = cache_key(c, "rec", project, record, key, sizeof(key));
    int max_len = snprintf(max, sizeof(max), "%lld",
                           (long long)c->cfg->upstream_max_body);
    const char *argv[5] = {"EVAL", get_script, "1", key, max};
    size_t lens[5] = {4, sizeof(get_script) - 1, 1, (size_t)(n < 0 ? 0 : n),
                      (size_t)max_len};
    get_op *op = calloc(1, sizeof(*op));

    op->owner = c;
    op->cb = cb;
    op->arg = arg;
    snprintf(op->project, sizeof(op->project), "%s", project);
    snprintf(op->record, sizeof(op->record), "%s", record);
    LIST_INSERT_HEAD(&c->pending, op, link);
    redis_conn_command(c->redis, on_get_reply, op, 5, argv, lens);
}

static void
on_set_reply(redisReply *reply, void *arg)
{
    const cache *c = arg;

    if (reply != NULL && reply->type == REDIS_REPLY_STATUS) {
        metrics_inc(METRIC_CACHE_WRITES);
        return;
    }
    /* No reply from a link that is down or stalled is no news: the link
     * has said so itself, and the error is counted. */
    if (reply == NULL && !redis_conn_up(c->redis)) {
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

    /* A value that a read would refuse could never be served from
     * here: storing it would only cost Redis memory. */
    if (too_long(c, len)) {
        log_record("record not stored: over upstream.max_body once "
                   "normalized",
                   project, record, NULL);
        return;
    }
    if (c->cfg->cache_ttl_ms > 0) {
        lens[4] = (size_t)snprintf(ttl, sizeof(ttl), "%lld",
                                   (long long)c->cfg->cache_ttl_ms);
        argc = 5;
    }
    redis_conn_command(c->redis, on_set_reply, c, argc, argv, lens);
}
