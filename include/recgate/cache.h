/* cache.h - finished records in Redis, on the gateway's event loop.
 * SPDX-License-Identifier: MIT
 *
 * Redis is an accelerator, never a dependency: when it is down, slow or
 * refusing, every call still completes (as a miss or a dropped write)
 * within redis.timeout, and the module reconnects in the background with
 * backoff.
 */
#ifndef RECGATE_CACHE_H
#define RECGATE_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "recgate/config.h"

struct event_base;

typedef struct cache cache;

typedef enum {
    CACHE_HIT = 0,
    CACHE_MISS,
    CACHE_ERROR,   /* down, timed out or refused: treat as a miss */
} cache_status;

/* value is valid only during the call. */
typedef void (*cache_get_cb)(cache_status status, const char *value,
                             size_t len, void *arg);

/* Starts connecting at once; never fails because Redis is down. */
cache *cache_create(struct event_base *base, const config *cfg);

/* Frees everything; pending lookups are dropped without a callback, so
 * call it only once the loop has stopped. */
void cache_destroy(cache *c);

/* Looks a record up. cb runs exactly once, never before this returns. */
void cache_get(cache *c, const char *project, const char *record,
               cache_get_cb cb, void *arg);

/* Stores a finished record with the configured TTL; failures are counted
 * and logged, never reported to the caller. */
void cache_put(cache *c, const char *project, const char *record,
               const char *value, size_t len);

bool cache_connected(const cache *c);

/* Writes the Redis key for a record into buf. Returns its length, or -1
 * when buf is too small. */
int cache_key(const cache *c, const char *project, const char *record,
              char *buf, size_t size);

#endif /* RECGATE_CACHE_H */
