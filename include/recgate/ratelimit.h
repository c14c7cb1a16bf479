/* ratelimit.h - the upstream request rate, shared by every replica.
 * SPDX-License-Identifier: MIT
 *
 * One token bucket (upstream.rate per second, upstream.burst deep) lives
 * in Redis and is taken from by an atomic script, so the limit holds for
 * all workers of all replicas together. A pause the cloud asked for with
 * 429 + Retry-After is kept there too, so every replica honours it. When
 * Redis cannot be reached each worker falls back to a local bucket at a
 * conservative share of the rate (upstream.fallback_share).
 */
#ifndef RECGATE_RATELIMIT_H
#define RECGATE_RATELIMIT_H

#include <stdbool.h>
#include <stdint.h>

#include "recgate/config.h"
#include "recgate/redis.h"

struct event_base;

typedef struct ratelimit ratelimit;

/* admitted, or refused with the time after which a retry may succeed. */
typedef void (*ratelimit_cb)(bool admitted, int64_t retry_after_ms, void *arg);

ratelimit *ratelimit_create(struct event_base *base, const config *cfg,
                            redis_conn *redis, int workers);

/* Frees everything; waiting requests are dropped without a callback. */
void ratelimit_destroy(ratelimit *rl);

/* Waits for a token up to upstream.queue_timeout, and never past
 * deadline_ms (monotonic, see clock.h). cb runs exactly once, never before
 * this returns. */
void ratelimit_acquire(ratelimit *rl, int64_t deadline_ms, ratelimit_cb cb,
                       void *arg);

/* The longest pause: the cloud's Retry-After is capped at this, and so
 * is a pause found in Redis (written by hand, say). */
#define RATELIMIT_PAUSE_MAX_MS 3600000

/* No upstream request from any replica for ms (the cloud's 429), at most
 * RATELIMIT_PAUSE_MAX_MS. */
void ratelimit_pause(ratelimit *rl, int64_t ms);

/* "redis", or "local" while the fallback is in use. */
const char *ratelimit_backend(const ratelimit *rl);

#endif /* RECGATE_RATELIMIT_H */
