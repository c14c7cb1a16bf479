/* metrics.c - the gateway's counters, rendered in Prometheus text format.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/metrics.h"

#include <event2/buffer.h>
#include <string.h>

#define LABELLED_MAX 64

typedef struct {
    int code;
    const char *cache;      /* static string, or NULL for upstream */
    uint64_t count;
} labelled;

static const double bucket_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
                                       0.5,   1,    2.5,   5,    10};
#define N_BUCKETS (sizeof(bucket_bounds) / sizeof(bucket_bounds[0]))

static struct {
    uint64_t counters[METRIC_COUNTER_COUNT];
    labelled requests[LABELLED_MAX];
    int n_requests;
    labelled upstream[LABELLED_MAX];
    int n_upstream;
    uint64_t buckets[N_BUCKETS];
    uint64_t upstream_count;
    double upstream_sum;
    int64_t l1_bytes;
} m;

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
    {"recgate_redis_errors_total",
     "Redis commands that failed or timed out."},
};


void
metrics_inc(metric_counter which)
{
    m.counters[which]++;
}


static void
count_labelled(labelled *set, int *n, int code, const char *cache)
{
    for (int i = 0; i < *n; i++) {
        if (set[i].code == code && set[i].cache == cache) {
            set[i].count++;
            return;
        }
    }
    if (*n < LABELLED_MAX) {
        set[*n] = (labelled){.code = code, .cache = cache, .count = 1};
        (*n)++;
    }
}


void
metrics_request(int code, const char *cache)
{
    count_labelled(m.requests, &m.n_requests, code, cache);
}


void
metrics_upstream(int code, double seconds)
{
    count_labelled(m.upstream, &m.n_upstream, code, NULL);

    for (size_t i = 0; i < N_BUCKETS; i++) {
        if (seconds <= bucket_bounds[i]) {
            m.buckets[i]++;
        }
    }
    m.upstream_count++;
    m.upstream_sum += seconds;
}


void
metrics_set_l1_bytes(int64_t bytes)
{
    m.l1_bytes = bytes;
}


static void
render_head(struct evbuffer *buf, const char *name, const char *type,
            const char *help)
{
    evbuffer_add_printf(buf, "# HELP %s %s\n# TYPE %s %s\n", name, help,
                        name, type);
}


static void
render_upstream_code(struct evbuffer *buf, const labelled *l)
{
    if (l->code == 0) {
        evbuffer_add_printf(buf, "recgate_upstream_requests_total"
                            "{code=\"error\"} %llu\n",
                            (unsigned long long)l->count);
    } else {
        evbuffer_add_printf(buf, "recgate_upstream_requests_total"
                            "{code=\"%d\"} %llu\n", l->code,
                            (unsigned long long)l->count);
    }
}


static void
render_histogram(struct evbuffer *buf)
{
    render_head(buf, "recgate_upstream_seconds", "histogram",
                "Time of whole upstream exchanges.");
    for (size_t i = 0; i < N_BUCKETS; i++) {
        evbuffer_add_printf(buf, "recgate_upstream_seconds_bucket"
                            "{le=\"%g\"} %llu\n", bucket_bounds[i],
                            (unsigned long long)m.buckets[i]);
    }
    evbuffer_add_printf(buf, "recgate_upstream_seconds_bucket{le=\"+Inf\"} "
                        "%llu\n", (unsigned long long)m.upstream_count);
    evbuffer_add_printf(buf, "recgate_upstream_seconds_sum %.6f\n",
                        m.upstream_sum);
    evbuffer_add_printf(buf, "recgate_upstream_seconds_count %llu\n",
                        (unsigned long long)m.upstream_count);
}


void
metrics_render(struct evbuffer *buf)
{
    render_head(buf, "recgate_requests_total", "counter",
                "Client requests answered, by status and cache result.");
    for (int i = 0; i < m.n_requests; i++) {
        evbuffer_add_printf(buf, "recgate_requests_total{code=\"%d\","
                            "cache=\"%s\"} %llu\n", m.requests[i].code,
                            m.requests[i].cache,
                            (unsigned long long)m.requests[i].count);
    }

    render_head(buf, "recgate_upstream_requests_total", "counter",
                "Requests sent to the cloud, by status (error: no answer).");
    for (int i = 0; i < m.n_upstream; i++) {
        render_upstream_code(buf, &m.upstream[i]);
    }
    render_histogram(buf);

    for (int i = 0; i < METRIC_COUNTER_COUNT; i++) {
        render_head(buf, counter_info[i].name, "counter",
                    counter_info[i].help);
        evbuffer_add_printf(buf, "%s %llu\n", counter_info[i].name,
                            (unsigned long long)m.counters[i]);
    }

    render_head(buf, "recgate_l1_bytes", "gauge",
                "Bytes held by the in-process record cache.");
    evbuffer_add_printf(buf, "recgate_l1_bytes %lld\n",
                        (long long)m.l1_bytes);
}
