/* metrics.h - the gateway's counters, rendered in Prometheus text format.
 * SPDX-License-Identifier: MIT
 *
 * Each worker process counts into its own slot of shared memory, touched
 * only from its event loop's thread; a scrape of any worker sums them
 * all, so one scrape shows the whole process group.
 */
#ifndef RECGATE_METRICS_H
#define RECGATE_METRICS_H

#include <stdbool.h>
#include <stdint.h>

struct evbuffer;

typedef enum {
    METRIC_COALESCED = 0,
    METRIC_RATELIMITED,
    METRIC_CACHE_WRITES,
    METRIC_VALIDATION_FAILURES,
    METRIC_REDIS_ERRORS,
    METRIC_COUNTER_COUNT,
} metric_counter;

/* Moves the counters into memory shared with worker processes forked
 * later, one slot per worker. Returns 0, or -1. Call before forking. */
int metrics_init_shared(int workers);

/* Makes this process count into slot index (0..workers-1). */
void metrics_use_slot(int index);

void metrics_inc(metric_counter which);

/* One answered client request: code is the HTTP status, cache is "hit",
 * "miss" or "none" (answered without a record lookup). */
void metrics_request(int code, const char *cache);

/* One upstream exchange: code is the HTTP status, or 0 when there was no
 * answer (connect, TLS or timeout failure). */
void metrics_upstream(int code, double seconds);

void metrics_set_l1_bytes(int64_t bytes);

/* The cloud's clock minus ours, from its latest Date header. */
void metrics_set_clock_skew(long long seconds);

/* The latest skew seen by any worker. Returns false when none was seen.
 */
bool metrics_clock_skew(long long *seconds);

/* Appends the whole exposition, summed over every worker, to buf. */
void metrics_render(struct evbuffer *buf);

#endif /* RECGATE_METRICS_H */
