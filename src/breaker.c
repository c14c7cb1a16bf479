/* breaker.c - a circuit breaker in front of the cloud API.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/breaker.h"

#include <stdbool.h>
#include <stdlib.h>

#include "recgate/clock.h"
#include "recgate/log.h"

typedef enum {
    CLOSED = 0,
    OPEN,
    HALF_OPEN,
} breaker_state;

struct breaker {
    int threshold;
    int64_t cooldown_ms;
    breaker_state state;
    int failures;          /* in a row, while closed */
    int64_t opened_at;     /* monotonic ms */
    int64_t probe_sent_at; /* monotonic ms, 0 when no probe is out */
};

breaker *
breaker_create(int failures, int64_t cooldown_ms)
{
    breaker *b = calloc(1, sizeof(*b));

    b->threshold = failures;
    b->cooldown_ms = cooldown_ms;
    return b;
}

void
breaker_destroy(breaker *b)
{
    free(b);
}

static void
open_now(breaker *b)
{
    b->state = OPEN;
    b->opened_at = clock_now_ms();
    b->probe_sent_at = 0;
    log_msg(LOG_ERROR, "circuit breaker open: failing fast", "state", "open");
}

breaker_verdict
breaker_allow(breaker *b)
{
    int64_t now = clock_now_ms();

    switch (b->state) {
    case CLOSED:
        return BREAKER_ALLOW;
    case OPEN:
        if (now - b->opened_at < b->cooldown_ms) {
            return BREAKER_REJECT;
        }
        b->state = HALF_OPEN;
        b->probe_sent_at = now;
        return BREAKER_PROBE;
    case HALF_OPEN:
        /* A probe that never reported (its client gave up) must not keep
         * the breaker half open for ever. */
        if (now - b->probe_sent_at >= b->cooldown_ms) {
            b->probe_sent_at = now;
            return BREAKER_PROBE;
        }
        return BREAKER_REJECT;
    }
    return BREAKER_REJECT;
}

void
breaker_success(breaker *b)
{
    if (b->state != CLOSED) {
        log_msg(LOG_INFO, "circuit breaker closed", "state", "closed");
    }
    b->state = CLOSED;
    b->failures = 0;
    b->probe_sent_at = 0;
}

void
breaker_failure(breaker *b)
{
    if (b->state == HALF_OPEN) {
        open_now(b);
        return;
    }
    if (b->state == CLOSED && ++b->failures >= b->threshold) {
        open_now(b);
    }
}

int64_t
breaker_retry_after_ms(const breaker *b)
{
    int64_t left;

    if (b->state == CLOSED) {
        return 0;
    }
    left = b->cooldown_ms - (clock_now_ms() - b->opened_at);
    return left > 0 ? left : 0;
}

const char *
breaker_state_name(const breaker *b)
{
    static const char *const names[] = {"closed", "open", "half_open"};

    return names[b->state];
}
