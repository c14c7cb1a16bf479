/* cache.h - finished records in Redis.
 * SPDX-License-Identifier: MIT
 *
 * A finished record is stored once, under {prefix}rec:{project}:{record},
 * and read back byte for byte. Failures never reach the client: a lookup
 * that fails is a miss, a write that fails is counted and logged.
 *
 * Redis is not trusted to hold only what recgate wrote there: anyone with
 * access may have put something else under a record's key. A value is
 * served only when it is exactly what cache_put would have stored for
 * that record; anything else is reported as CACHE_BAD (counted in the
 * Redis errors and logged), to be fetched anew and overwritten.
 */
#ifndef RECGATE_CACHE_H
#define RECGATE_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "recgate/config.h"
#include "recgate/record.h"
#include "recgate/redis.h"

typedef struct cache cache;

typedef enum {
    CACHE_HIT = 0,
    CACHE_MISS,
    CACHE_ERROR, /* down, timed out or refused: treat as a miss */
    CACHE_BAD,   /* a value recgate would not have stored: a miss too */
} cache_status;

/* value is valid only during the call. */
typedef void (*cache_get_cb)(cache_status status, const char *value, size_t len,
                             void *arg);

/* redis and rules (those the records were normalized with) must outlive
 * the cache. */
cache *cache_create(redis_conn *redis, const config *cfg,
                    const record_rules *rules);
void cache_destroy(cache *c);

/* Looks a record up. cb runs exactly once, never before this returns. */
void cache_get(cache *c, const char *project, const char *record,
               cache_get_cb cb, void *arg);

/* True when value, read from Redis some other way than cache_get, may be
 * served for record; else counts and logs it as cache_get does for
 * CACHE_BAD, and returns false. */
bool cache_value_ok(const cache *c, const char *project, const char *record,
                    const char *value, size_t len);

/* Why value is not what recgate itself would have written for record, or
 * NULL when it is: a record of that id, finished or not as said (its
 * status must agree), already in normal form (the normalizer's output
 * normalizes to itself), within upstream.max_body. Counts and logs
 * nothing: that is the caller's, as for a record another process
 * published to the waiters of its fetch. */
const char *cache_unfit(const cache *c, const char *record, const char *value,
                        size_t len, bool finished);

/* Stores a finished record with the configured TTL. */
void cache_put(cache *c, const char *project, const char *record,
               const char *value, size_t len);

bool cache_connected(const cache *c);

/* Writes "{prefix}{kind}:{project}:{record}" into buf, the name of any
 * per-record key (kind "rec" for the record itself). Returns its length,
 * or -1 when buf is too small. */
int cache_key(const cache *c, const char *kind, const char *project,
              const char *record, char *buf, size_t size);

#endif /* RECGATE_CACHE_H */
