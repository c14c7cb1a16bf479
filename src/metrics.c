/* metrics.c - the gateway's counters, rendered in Prometheus text format.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/metrics.h"

#include <event2/buffer.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define LABELLED_MAX 64

/* Labels are stored by value: the counters live in memory shared by
 * every worker process, where pointers would mean nothing. */
typedef struct {
    int code;
    char cache[8]; /* "hit", "miss", "none"; "" for upstream */
    uint64_t count;
} labelled;

static const double bucket_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1,    2.5,   5,    10};
#define N_BUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

/* One worker's counters. Each worker writes only its own slot, so no
 * locking is needed; a scrape sums every slot. */
typedef struct {
    uint64_t counters[METRIC_COUNTER_COUNT];
    labelled requests[LABELLED_MAX];
    int n_requests;
    labelled upstream[LABELLED_MAX];
    int n_upstream;
    uint64_t buckets[N_BUCKETS];
    uint64_t upstream_count;
    double upstream_sum;
    int64_t l1_bytes;
    long long clock_skew_s;
    int64_t clock_skew_at; /* when it was seen, in microseconds; 0: never */
} slot;

static slot private_slot;
static slot *slots = &private_slot;
static int n_slots = 1;
static slot *mine = &private_slot;

static const struct {
    const char *name;
    const char *help;
} counter_info[METRIC_COUNTER_COUNT] = {
    {"recgate_coalesced_total",
     "Requests that joined a fetch already in flight."},
    {"recgate_ratelimited_total",
     "Requests refused because the upstream rate limit was reached."},
    {"recgate_cache_writes_total", "Finished records written to Redis."},
    {"recgate_validation_failures_total",
     "Upstream 200 bodies refused by validation."},
    {"recgate_redis_errors_total", "Redis commands that failed or timed out."},
};

int
metrics_init_shared(int workers)
{
    void *mem = mmap(NULL, (size_t)workers * sizeof(slot),
                     PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

    if (mem == MAP_FAILED) {
        return -1;
    }
    slots = mem;
    n_slots = workers;
    mine = &slots[0];
    return 0;
}

void
metrics_use_slot(int index)
{
    mine = &slots[index];
}

void
metrics_inc(metric_counter which)
{
    mine->counters[which]++;
}

static void
count_labelled(labelled *set, int *n, int code, const char *cache, uint64_t by)
{
    for (int i = 0; i < *n; i++) {
        if (set[i].code == code && strcmp(set[i].cache, cache) == 0) {
            set[i].count += by;
            return;
        }
    }
    if (*n < LABELLED_MAX) {
        set[*n] = (labelled){.code = code, .count = by};
        snprintf(set[*n].cache, sizeof(set[*n].cache), "%s", cache);
        (*n)++;
    }
}

void
metrics_request(int code, const char *cache)
{
    count_labelled(mine->requests, &mine->n_requests, code, cache, 1);
}

void
metrics_upstream(int code, double seconds)
{
    count_labelled(mine->upstream, &mine->n_upstream, code, "", 1);

    for (size_t i = 0; i < N_BUCKETS; i++) {
        if (seconds <= bucket_bounds[i]) {
            mine->buckets[i]++;
        }
    }
    mine->upstream_count++;
    mine->upstream_sum += seconds;
}

void
metrics_set_l1_bytes(int64_t bytes)
{
    mine->l1_bytes = bytes;
}

/* Adds every worker's slot into one. */
static void
sum_slots(slot *total)
{
    memset(total, 0, sizeof(*total));
    for (int s = 0; s < n_slots; s++) {
        const slot *w = &slots[s];

        for (int i = 0; i < METRIC_COUNTER_COUNT; i++) {
            total->counters[i] += w->counters[i];
        }
        for (int i = 0; i < w->n_requests; i++) {
            count_labelled(total->requests, &total->n_requests,
                           w->requests[i].code, w->requests[i].cache,
                           w->requests[i].count);
        }
        for (int i = 0; i < w->n_upstream; i++) {
            count_labelled(total->upstream, &total->n_upstream,
                           w->upstream[i].code, "", w->upstream[i].count);
        }
        for (size_t i = 0; i < N_BUCKETS; i++) {
            total->buckets[i] += w->buckets[i];
        }
        total->upstream_count += w->upstream_count;
        total->upstream_sum += w->upstream_sum;
        total->l1_bytes += w->l1_bytes;
    }
}

void
metrics_set_clock_skew(long long seconds)
{
    struct timespec now;

    clock_gettime(CLOCK_REALTIME, &now);
    mine->clock_skew_s = seconds;
    mine->clock_skew_at = (int64_t)now.tv_sec * 1000000 + now.tv_nsec / 1000;
}

/* The skew of the most recent answer, whichever worker saw it: workers
 * share one clock, so the latest timestamp wins. */
bool
metrics_clock_skew(long long *seconds)
{
    int64_t latest = 0;

    for (int s = 0; s < n_slots; s++) {
        if (slots[s].clock_skew_at > latest) {
            latest = slots[s].clock_skew_at;
            *seconds = slots[s].clock_skew_s;
        }
    }
    return latest != 0;
}

static void
render_head(struct evbuffer *buf, const char *name, const char *type,
            const char *help)
{
    evbuffer_add_printf(buf, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                        type);
}

static void
render_upstream_code(struct evbuffer *buf, const labelled *l)
{
    if (l->code == 0) {
        evbuffer_add_printf(buf,
                            "recgate_upstream_requests_total"
                            "{code=\"error\"} %llu\n",
                            (unsigned long long)l->count);
    } else {
        evbuffer_add_printf(buf,
                            "recgate_upstream_requests_total"
                            "{code=\"%d\"} %llu\n",
                            l->code, (unsigned long long)l->count);
    }
}

static void
render_histogram(struct evbuffer *buf, const slot *t)
{
    render_head(buf, "recgate_upstream_seconds", "histogram",
                "Time of whole upstream exchanges.");
    for (size_t i = 0; i < N_BUCKETS; i++) {
        evbuffer_add_printf(buf,
                            "recgate_upstream_seconds_bucket"
                            "{le=\"%g\"} %llu\n",
                            bucket_bounds[i],
                            (unsigned long long)t->buckets[i]);
    }
    evbuffer_add_printf(buf,
                        "recgate_upstream_seconds_bucket{le=\"+Inf\"} "
                        "%llu\n",
                        (unsigned long long)t->upstream_count);
    evbuffer_add_printf(buf, "recgate_upstream_seconds_sum %.6f\n",
                        t->upstream_sum);
    evbuffer_add_printf(buf, "recgate_upstream_seconds_count %llu\n",
                        (unsigned long long)t->upstream_count);
}

void
metrics_render(struct evbuffer *buf)
{
    slot total;
    const slot *t = &total;
    long long skew;

    sum_slots(&total);

    render_head(buf, "recgate_requests_total", "counter",
                "Client requests answered, by status and cache result.");
    for (int i = 0; i < t->n_requests; i++) {
        evbuffer_add_printf(buf,
                            "recgate_requests_total{code=\"%d\","
                            "cache=\"%s\"} %llu\n",
                            t->requests[i].code, t->requests[i].cache,
                            (unsigned long long)t->requests[i].count);
    }

    render_head(buf, "recgate_upstream_requests_total", "counter",
                "Requests sent to the cloud, by status (error: no answer).");
    for (int i = 0; i < t->n_upstream; i++) {
        render_upstream_code(buf, &t->upstream[i]);
    }
    render_histogram(buf, t);

    for (int i = 0; i < METRIC_COUNTER_COUNT; i++) {
        render_head(buf, counter_info[i].name, "counter", counter_info[i].help);
        evbuffer_add_printf(buf, "%s %llu\n", counter_info[i].name,
                            (unsigned long long)t->counters[i]);
    }

    render_head(buf, "recgate_l1_bytes", "gauge",
                "Bytes held by the in-process record cache.");
    evbuffer_add_printf(buf, "recgate_l1_bytes %lld\n", (long long)t->l1_bytes);

    if (metrics_clock_skew(&skew)) {
        render_head(buf, "recgate_clock_skew_seconds", "gauge",
                    "The cloud's clock minus this host's, from its Date "
                    "header.");
        evbuffer_add_printf(buf, "recgate_clock_skew_seconds %lld\n", skew);
    }
}
