/* lookup.h - finding one record: cache, shared fetch, cloud, answer.
 * SPDX-License-Identifier: MIT
 *
 * All requests for one record that arrive while it is being looked up
 * share one lookup (a "flight"). Across workers and replicas, a lease in
 * Redis decides which process fetches from the cloud; the others wait for
 * the result it publishes, which is handed to them without being stored
 * when the record is not finished. The fetcher goes through the circuit
 * breaker and the shared rate limit, retries transient failures with
 * backoff inside the client's deadline, validates and normalizes the
 * record, and stores it when it is finished. A value found in Redis is
 * served only when it is exactly what would have been stored (cache.h);
 * any other is fetched anew over it, under the same lease.
 */
#ifndef RECGATE_LOOKUP_H
#define RECGATE_LOOKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "recgate/config.h"

struct event_base;

typedef struct lookup lookup;

/* What to tell the client. Everything is valid only during the call. */
typedef struct {
    int status;
    const char *cache; /* "hit" or "miss" */
    const char *body;  /* the record, when status is 200 */
    size_t len;
    bool finished;          /* the record's status is terminal */
    const char *error_code; /* when status is not 200 */
    const char *error_msg;
    const char *retry_after; /* seconds, or NULL */
    double upstream_ms;
    const char *upstream_id; /* the cloud's request id, or NULL */
} lookup_answer;

typedef void (*lookup_cb)(const lookup_answer *answer, void *arg);

/* Returns NULL after writing the reason into err. */
lookup *lookup_create(struct event_base *base, const config *cfg, char *err,
                      size_t err_size);

/* Frees everything; requests still waiting get no callback, so call it
 * only once the loop has stopped. */
void lookup_destroy(lookup *lk);

/* Looks a record up (ids already validated). cb runs exactly once, never
 * before this returns. */
void lookup_record(lookup *lk, const char *project, const char *record,
                   lookup_cb cb, void *arg);

/* False while Redis is unreachable, refuses the link's setup, or has
 * let a command time out and not answered since. */
bool lookup_redis_up(const lookup *lk);
const char *lookup_breaker_state(const lookup *lk);
const char *lookup_ratelimit_backend(const lookup *lk);

#endif /* RECGATE_LOOKUP_H */
