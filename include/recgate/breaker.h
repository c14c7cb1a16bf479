/* breaker.h - a circuit breaker in front of the cloud API.
 * SPDX-License-Identifier: MIT
 *
 * After upstream.breaker_failures failures in a row (no answer, or 5xx)
 * the breaker opens: requests fail fast for upstream.breaker_cooldown
 * instead of piling onto a broken cloud. Then one probe goes through; its
 * success closes the breaker, its failure opens it again.
 */
#ifndef RECGATE_BREAKER_H
#define RECGATE_BREAKER_H

#include <stdint.h>

typedef struct breaker breaker;

typedef enum {
    BREAKER_ALLOW = 0, /* closed: go ahead */
    BREAKER_PROBE,     /* half open: this request is the one probe */
    BREAKER_REJECT,    /* open: fail fast */
} breaker_verdict;

breaker *breaker_create(int failures, int64_t cooldown_ms);
void breaker_destroy(breaker *b);

/* Asks whether a request may go upstream now; a probe must report. */
breaker_verdict breaker_allow(breaker *b);

void breaker_success(breaker *b);
void breaker_failure(breaker *b);

/* Milliseconds until the next probe may go, 0 when closed. */
int64_t breaker_retry_after_ms(const breaker *b);

/* "closed", "open" or "half_open". */
const char *breaker_state_name(const breaker *b);

#endif /* RECGATE_BREAKER_H */
