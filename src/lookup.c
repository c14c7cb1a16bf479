/* lookup.c - finding one record: cache, shared fetch, cloud, answer.
 * SPDX-License-Identifier: MIT
 *
 * A flight moves through these states:
 *
 *   CACHE -> (hit) done
 *         -> LEASE -> (won, or Redis away) QUEUED -> FETCHING -> done
 *                  -> (found) done
 *                  -> (lost) REMOTE -> (message) done
 *                                   -> (poll) LEASE ...
 *   FETCHING -> (transient failure, time left) BACKOFF -> QUEUED ...
 *
 * Asynchronous calls made for a flight hold a reference on it, so a
 * callback that arrives after the flight was answered (its deadline
 * passed, or another process's result came first) finds it still
 * allocated, sees it is done, and lets go.
 */
#include "recgate/lookup.h"

#include <event2/event.h>
#include <jansson.h>
#include <math.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <unistd.h>

#include "recgate/breaker.h"
#include "recgate/cache.h"
#include "recgate/clock.h"
#include "recgate/log.h"
#include "recgate/metrics.h"
#include "recgate/ratelimit.h"
#include "recgate/record.h"
#include "recgate/redis.h"
#include "recgate/reply.h"
#include "recgate/route.h"
#include "recgate/upstream.h"

#define FLIGHT_BUCKETS 1024
#define KEY_MAX 256
#define OWNER_MAX 48
#define REMOTE_POLL_MS 200
#define LEASE_MARGIN_MS 1000
#define RETRY_BACKOFF_CAP_MS 2000
#define CREDENTIAL_LOG_INTERVAL_S 60
#define FORGED_LOG_INTERVAL_S 60
/* The longest texts an error answer carries (passed_through) and
 * publishes: a message with longer ones was not sent by recgate. */
#define ERROR_CODE_MAX 64
#define ERROR_MSG_MAX 512
#define RETRY_AFTER_DIGITS_MAX 5
#define UPSTREAM_ID_MAX 128

static const char release_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('DEL', KEYS[1])\n"
    "end\n"
    "return 0\n";

/* KEYS[1] the record, KEYS[2] its lease; ARGV[1] the owner, ARGV[2] the
 * lease's lifetime, ARGV[3] the longest record worth reading ("0" when
 * the stored value is known to be bad: the lease is taken over it). A
 * longer value is not sent over, only fetched anew and overwritten.
 * recgate always gives a lease an expiry: one without (PTTL -1, written
 * by hand) would never end, so it is taken as abandoned and taken over. */
static const char lease_script[] =
    "local n = redis.call('STRLEN', KEYS[1])\n"
    "if n > 0 and n <= tonumber(ARGV[3]) then\n"
    "  return {1, redis.call('GET', KEYS[1])}\n"
    "end\n"
    "if redis.call('PTTL', KEYS[2]) == -1 then\n"
    "  redis.call('DEL', KEYS[2])\n"
    "end\n"
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then\n"
    "  return {2}\n"
    "end\n"
    "return {3}\n";

static const char renew_script[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then\n"
    "  return redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "end\n"
    "return 0\n";

typedef enum {
    FLIGHT_CACHE = 0,
    FLIGHT_LEASE,
    FLIGHT_REMOTE,
    FLIGHT_QUEUED,
    FLIGHT_FETCHING,
    FLIGHT_BACKOFF,
    FLIGHT_DONE,
} flight_state;

typedef struct waiter waiter;
typedef struct flight flight;
typedef struct held_answer held_answer;

struct waiter {
    lookup_cb cb;
    void *arg;
    TAILQ_ENTRY(waiter) link;
};

struct flight {
    lookup *lk;
    char project[ROUTE_PROJECT_LEN + 1];
    char record[ROUTE_RECORD_MAX + 1];
    unsigned bucket;
    flight_state state;
    int refs;
    bool leased;          /* this process holds the Redis lease */
    bool saw_lease_taken; /* another process was fetching for it */
    bool has_slot;        /* counted in lk->fetching */
    int attempt;          /* upstream tries made so far */
    int64_t deadline_ms;  /* monotonic */
    struct event *timer;  /* remote poll, or retry backoff */
    struct event *deadline;
    TAILQ_HEAD(, waiter) waiters;
    int n_waiters;
    LIST_ENTRY(flight) link;     /* in the table, until answered */
    LIST_ENTRY(flight) all_link; /* every flight alive, until freed */
};

struct lookup {
    struct event_base *base;
    const config *cfg;
    redis_conn *redis;
    redis_conn *events; /* subscriber: results of other processes */
    cache *cache;
    upstream *upstream;
    ratelimit *ratelimit;
    breaker *breaker;
    record_rules *rules;
    char owner[OWNER_MAX];
    int fetching; /* fetches queued for a token or under way */
    size_t done_prefix_len;
    time_t credentials_logged;
    time_t forged_logged;
    LIST_HEAD(, flight) flights[FLIGHT_BUCKETS];
    LIST_HEAD(, flight) all_flights;
    LIST_HEAD(, held_answer) held;
};

static void start_cache(flight *f);
static void become_fetcher(flight *f);
static void try_lease(flight *f, bool over_bad_value);

/* --- flights: table, references, answers ------------------------------ */

static unsigned
bucket_of(const char *project, const char *record)
{
    unsigned h = 2166136261u;

    for (const char *p = project; *p; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
    }
    for (const char *p = record; *p; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
    }
    return h % FLIGHT_BUCKETS;
}

static flight *
flight_find(lookup *lk, const char *project, const char *record)
{
    flight *f;

    LIST_FOREACH(f, &lk->flights[bucket_of(project, record)], link)
    {
        if (strcmp(f->project, project) == 0 &&
            strcmp(f->record, record) == 0) {
            return f;
        }
    }
    return NULL;
}

static void
flight_hold(flight *f)
{
    f->refs++;
}

static void
flight_free(flight *f)
{
    waiter *w;

    while ((w = TAILQ_FIRST(&f->waiters)) != NULL) {
        TAILQ_REMOVE(&f->waiters, w, link);
        free(w);
    }
    LIST_REMOVE(f, all_link);
    event_free(f->timer);
    event_free(f->deadline);
    free(f);
}

static void
flight_release(flight *f)
{
    if (--f->refs == 0) {
        flight_free(f);
    }
}

static bool
flight_done(const flight *f)
{
    return f->state == FLIGHT_DONE;
}

/* A slot under upstream.max_in_flight is held from the cap check until
 * the attempt ends, queueing for a rate-limit token included: counting
 * only the exchanges under way would let every queued flight pass the
 * check at once. */
static void
take_slot(flight *f)
{
    f->lk->fetching++;
    f->has_slot = true;
}

static void
drop_slot(flight *f)
{
    if (f->has_slot) {
        f->lk->fetching--;
        f->has_slot = false;
    }
}

/* Answers every waiter and takes the flight out of the table, so that a
 * request arriving from now on starts a lookup of its own. */
static void
answer_all(flight *f, const lookup_answer *a, bool from_elsewhere)
{
    waiter *w;

    f->state = FLIGHT_DONE;
    LIST_REMOVE(f, link);
    evtimer_del(f->timer);
    evtimer_del(f->deadline);

    if (strcmp(a->cache, "miss") == 0) {
        int shared = f->n_waiters - (from_elsewhere ? 0 : 1);
        for (int i = 0; i < shared; i++) {
            metrics_inc(METRIC_COALESCED);
        }
    }
    while ((w = TAILQ_FIRST(&f->waiters)) != NULL) {
        TAILQ_REMOVE(&f->waiters, w, link);
        w->cb(a, w->arg);
        free(w);
    }
    flight_release(f);
}

static void
answer_error(flight *f, int status, const char *code, const char *msg,
             const char *retry_after)
{
    lookup_answer a = {.status = status,
                       .cache = "miss",
                       .error_code = code,
                       .error_msg = msg,
                       .retry_after = retry_after};

    answer_all(f, &a, false);
}

/* --- Redis keys and small commands ------------------------------------ */

static size_t
flight_key(const flight *f, const char *kind, char *buf, size_t size)
{
    int n = cache_key(f->lk->cache, kind, f->project, f->record, buf, size);

    return n < 0 ? 0 : (size_t)n;
}

static void
run_script(lookup *lk, const char *script, const char *key, size_t key_len,
           const char *arg1, const char *arg2, redis_reply_cb cb, void *arg)
{
    const char *argv[6] = {"EVAL", script, "1", key, arg1, arg2};
    size_t lens[6] = {4,       strlen(script), 1,
                      key_len, strlen(arg1),   arg2 ? strlen(arg2) : 0};

    redis_conn_command(lk->redis, cb, arg, arg2 ? 6 : 5, argv, lens);
}

/* Gives the lease back if it is still ours; cb (may be NULL) runs once
 * Redis has done it, or failed to. */
static void
release_lease(flight *f, redis_reply_cb cb, void *arg)
{
    char key[KEY_MAX];
    size_t n = flight_key(f, "lease", key, sizeof(key));

    if (f->leased) {
        run_script(f->lk, release_script, key, n, f->lk->owner, NULL, cb, arg);
        f->leased = false;
    }
}

/* Keeps the lease for ms more, if it is still ours. */
static void
renew_lease(flight *f, int64_t ms)
{
    char key[KEY_MAX];
    char ttl[24];
    size_t n = flight_key(f, "lease", key, sizeof(key));

    snprintf(ttl, sizeof(ttl), "%lld", (long long)ms);
    run_script(f->lk, renew_script, key, n, f->lk->owner, ttl, NULL, NULL);
}

/* Tells waiting processes the outcome. Nothing is stored: a running
 * record's answer exists only in this message. */
static void
publish(flight *f, const lookup_answer *a)
{
    char channel[KEY_MAX];
    size_t n = flight_key(f, "done", channel, sizeof(channel));
    json_t *msg = json_object();
    char *text;

    json_object_set_new(msg, "status", json_integer(a->status));
    json_object_set_new(msg, "finished", json_boolean(a->finished));
    if (a->body != NULL) {
        json_object_set_new(msg, "body", json_stringn(a->body, a->len));
    }
    if (a->error_code != NULL) {
        json_object_set_new(msg, "error_code", json_string(a->error_code));
        json_object_set_new(msg, "error_msg", json_string(a->error_msg));
    }
    if (a->retry_after != NULL) {
        json_object_set_new(msg, "retry_after", json_string(a->retry_after));
    }
    if (a->upstream_id != NULL) {
        json_object_set_new(msg, "upstream_id", json_string(a->upstream_id));
    }
    json_object_set_new(msg, "upstream_ms", json_real(a->upstream_ms));
    json_object_set_new(msg, "owner", json_string(f->lk->owner));

    text = json_dumps(msg, JSON_COMPACT);
    json_decref(msg);
    if (text != NULL) {
        const char *argv[3] = {"PUBLISH", channel, text};
        size_t lens[3] = {7, n, strlen(text)};
        redis_conn_command(f->lk->redis, NULL, NULL, 3, argv, lens);
        free(text);
    }
}

/* An answer kept, with copies of its texts, until the lease is given
 * back. */
struct held_answer {
    flight *f;
    lookup_answer a;
    char *texts[5];
    LIST_ENTRY(held_answer) link;
};

static const char *
keep(held_answer *h, int i, const char *text, size_t len)
{
    if (text == NULL) {
        return NULL;
    }
    h->texts[i] = malloc(len + 1);
    memcpy(h->texts[i], text, len);
    h->texts[i][len] = '\0';
    return h->texts[i];
}

static held_answer *
hold_answer(flight *f, const lookup_answer *a)
{
    held_answer *h = calloc(1, sizeof(*h));

    LIST_INSERT_HEAD(&f->lk->held, h, link);
    h->f = f;
    h->a = *a;
    h->a.body = keep(h, 0, a->body, a->len);
    h->a.error_code =
        keep(h, 1, a->error_code, a->error_code ? strlen(a->error_code) : 0);
    h->a.error_msg =
        keep(h, 2, a->error_msg, a->error_msg ? strlen(a->error_msg) : 0);
    h->a.retry_after =
        keep(h, 3, a->retry_after, a->retry_after ? strlen(a->retry_after) : 0);
    h->a.upstream_id =
        keep(h, 4, a->upstream_id, a->upstream_id ? strlen(a->upstream_id) : 0);
    return h;
}

static void
held_answer_free(held_answer *h)
{
    LIST_REMOVE(h, link);
    for (int i = 0; i < 5; i++) {
        free(h->texts[i]);
    }
    free(h);
}

static void
on_lease_released(redisReply *reply, void *arg)
{
    held_answer *h = arg;
    flight *f = h->f;

    (void)reply;
    if (!flight_done(f)) {
        answer_all(f, &h->a, false);
    }
    held_answer_free(h);
    flight_release(f);
}

/* The end of this process's own fetch: tell the others, give the lease
 * back, and answer the waiters. They are answered only once Redis has
 * the lease back: a client that asks again at once, through another
 * process, must find the lease free and read afresh, not be handed this
 * very result as if it were newer. */
static void
finish_fetch(flight *f, const lookup_answer *a)
{
    publish(f, a);
    if (!f->leased || flight_done(f)) {
        release_lease(f, NULL, NULL);
        if (!flight_done(f)) {
            answer_all(f, a, false);
        }
        return;
    }
    flight_hold(f);
    release_lease(f, on_lease_released, hold_answer(f, a));
}

/* --- the cloud's answer ------------------------------------------------ */

static void
log_upstream_problem(const flight *f, const upstream_result *res,
                     const char *msg, const char *detail)
{
    log_line line;

    log_begin(&line, LOG_WARN, msg);
    log_str(&line, "project_id", f->project);
    log_str(&line, "record_id", f->record);
    if (res->outcome == UPSTREAM_ANSWERED) {
        log_int(&line, "upstream_status", res->status);
    }
    log_str(&line, "detail", detail ? detail : res->detail);
    log_str(&line, "upstream_request_id", res->request_id);
    log_end(&line);
}

/* A 200: validate, normalize, store when finished. */
static void
record_answer(flight *f, const upstream_result *res, lookup_answer *a,
              record_result *rec)
{
    const char *why = NULL;

    if (record_normalize(f->lk->rules, res->body, res->body_len, f->record, rec,
                         &why) != 0) {
        metrics_inc(METRIC_VALIDATION_FAILURES);
        log_upstream_problem(f, res, "invalid record from the cloud", why);
        a->status = 502;
        a->error_code = REPLY_UPSTREAM_BODY;
        a->error_msg = "the cloud API sent an invalid record";
        return;
    }

    /* Only a finished record is stored: a running one must be read from
     * the cloud again next time. */
    if (rec->terminal) {
        cache_put(f->lk->cache, f->project, f->record, rec->json, rec->len);
    }
    a->status = 200;
    a->body = rec->json;
    a->len = rec->len;
    a->finished = rec->terminal;
}

/* The cloud's own 400/404 body, when it has the cloud's error shape, is
 * passed through; its texts are bounded by the upstream body cap. */
static void
passed_through(const upstream_result *res, lookup_answer *a, json_t **doc)
{
    const char *code;
    const char *msg;

    *doc = json_loadb(res->body, res->body_len, 0, NULL);
    code = json_string_value(json_object_get(*doc, "error_code"));
    msg = json_string_value(json_object_get(*doc, "error_msg"));
    if (code != NULL && msg != NULL && strlen(code) <= ERROR_CODE_MAX &&
        strlen(msg) <= ERROR_MSG_MAX) {
        a->error_code = code;
        a->error_msg = msg;
    }
}

static void
log_credentials_refused(lookup *lk, const upstream_result *res)
{
    log_line line;

    if (!log_once_per(&lk->credentials_logged, CREDENTIAL_LOG_INTERVAL_S)) {
        return;
    }
    log_begin(&line, LOG_ERROR,
              "the cloud API refused the gateway's "
              "credentials");
    log_int(&line, "upstream_status", res->status);
    log_str(&line, "upstream_request_id", res->request_id);
    log_end(&line);
}

static void
error_answer(flight *f, const upstream_result *res, lookup_answer *a,
             json_t **doc)
{
    a->status = 502;
    a->error_code = REPLY_UPSTREAM_FAILED;
    a->error_msg = "the cloud API failed";

    if (res->outcome == UPSTREAM_TIMEOUT) {
        log_upstream_problem(f, res, "upstream fetch failed", NULL);
        a->status = 504;
        a->error_code = REPLY_UPSTREAM_TIME;
        a->error_msg = "the cloud API did not answer in time";
    } else if (res->outcome == UPSTREAM_TOO_LARGE) {
        metrics_inc(METRIC_VALIDATION_FAILURES);
        log_upstream_problem(f, res, "upstream fetch failed", NULL);
        a->error_code = REPLY_UPSTREAM_BODY;
        a->error_msg = "the cloud API sent a body over upstream.max_body";
    } else if (res->outcome == UPSTREAM_UNREACHABLE) {
        log_upstream_problem(f, res, "upstream fetch failed", NULL);
        a->error_msg = "cannot reach the cloud API";
    } else if (res->status == 400 || res->status == 404) {
        a->status = res->status;
        a->error_code = res->status == 400 ? REPLY_BAD_INPUT : REPLY_NOT_FOUND;
        a->error_msg = res->status == 400 ? "the cloud API refused the request"
                                          : "no such record";
        passed_through(res, a, doc);
    } else if (res->status == 401 || res->status == 403) {
        log_credentials_refused(f->lk, res);
        a->error_code = REPLY_UPSTREAM_AUTH;
        a->error_msg = "the cloud API refused the gateway's credentials";
    } else if (res->status == 429) {
        a->status = 429;
        a->error_code = REPLY_RATE_LIMITED;
        a->error_msg = "the cloud API is rate limiting; retry later";
    } else {
        log_upstream_problem(f, res, "the cloud API answered an error", NULL);
    }
}

/* Seconds in a Retry-After header (delay-seconds form), at least 1 and
 * at most the longest pause. */
static int64_t
retry_after_ms(const char *header)
{
    long s = header ? strtol(header, NULL, 10) : 0;

    if (s < 1) {
        s = 1;
    }
    if (s > RATELIMIT_PAUSE_MAX_MS / 1000) {
        s = RATELIMIT_PAUSE_MAX_MS / 1000;
    }
    return (int64_t)s * 1000;
}

/* The cloud is failing when it does not answer, or answers 5xx. A body
 * over upstream.max_body came from a cloud that answers: it is one
 * record's problem, and must not stop the fetches of every other one. */
static void
note_breaker(lookup *lk, const upstream_result *res)
{
    bool answered = res->outcome == UPSTREAM_ANSWERED ||
                    res->outcome == UPSTREAM_TOO_LARGE;

    if (!answered || res->status >= 500) {
        breaker_failure(lk->breaker);
    } else if (res->status != 429) {
        breaker_success(lk->breaker);
    }
}

/* Full jitter: a random wait up to base * 2^attempt, capped. */
static int64_t
backoff_ms(const lookup *lk, int attempt)
{
    int64_t ceiling = lk->cfg->upstream_retry_backoff_ms << attempt;
    uint32_t r = 0;

    if (ceiling > RETRY_BACKOFF_CAP_MS || ceiling <= 0) {
        ceiling = RETRY_BACKOFF_CAP_MS;
    }
    RAND_bytes((unsigned char *)&r, sizeof(r));
    return (int64_t)(r % (uint32_t)(ceiling + 1));
}

/* Schedules another try when the failure is transient and the client's
 * deadline leaves room. Returns true when it did. */
static bool
retry_later(flight *f, const upstream_result *res)
{
    lookup *lk = f->lk;
    bool answered = res->outcome == UPSTREAM_ANSWERED;
    bool transient = res->outcome == UPSTREAM_UNREACHABLE ||
                     (answered && (res->status >= 500 || res->status == 429));
    int64_t delay;
    struct timeval tv;

    if (!transient || flight_done(f) ||
        f->attempt > lk->cfg->upstream_retries) {
        return false;
    }
    delay = answered && res->status == 429 ? retry_after_ms(res->retry_after)
                                           : backoff_ms(lk, f->attempt);
    if (clock_now_ms() + delay >= f->deadline_ms) {
        return false;
    }

    if (f->leased) {
        renew_lease(f, delay + lk->cfg->upstream_timeout_ms + LEASE_MARGIN_MS);
    }
    f->state = FLIGHT_BACKOFF;
    tv = clock_tv(delay);
    evtimer_add(f->timer, &tv);
    return true;
}

static void
on_fetched(const upstream_result *res, void *arg)
{
    flight *f = arg;
    lookup_answer a = {.cache = "miss",
                       .upstream_ms = res->seconds * 1e3,
                       .upstream_id = res->request_id};
    record_result rec = {0};
    char retry[24];
    json_t *doc = NULL;

    drop_slot(f);
    note_breaker(f->lk, res);
    if (res->outcome == UPSTREAM_ANSWERED && res->status == 429) {
        ratelimit_pause(f->lk->ratelimit, retry_after_ms(res->retry_after));
    }
    if (retry_later(f, res)) {
        flight_release(f);
        return;
    }

    if (res->outcome == UPSTREAM_ANSWERED && res->status == 200) {
        record_answer(f, res, &a, &rec);
    } else {
        error_answer(f, res, &a, &doc);
    }
    if (a.status == 429) {
        snprintf(retry, sizeof(retry), "%lld",
                 (long long)(retry_after_ms(res->retry_after) / 1000));
        a.retry_after = retry;
    }
    finish_fetch(f, &a);

    record_result_clear(&rec);
    json_decref(doc);
    flight_release(f);
}

/* --- the fetcher's path ------------------------------------------------ */

static void
on_admitted(bool admitted, int64_t wait_ms, void *arg)
{
    flight *f = arg;
    char retry[24];

    if (flight_done(f)) {
        drop_slot(f);
        release_lease(f, NULL, NULL);
        flight_release(f);
        return;
    }
    if (!admitted) {
        lookup_answer a = {.status = 429,
                           .cache = "miss",
                           .error_code = REPLY_RATE_LIMITED,
                           .error_msg = "the upstream rate limit is "
                                        "reached; retry later",
                           .retry_after = retry};
        snprintf(retry, sizeof(retry), "%lld",
                 (long long)((wait_ms + 999) / 1000));
        drop_slot(f);
        finish_fetch(f, &a);
        flight_release(f);
        return;
    }

    /* The wait in the queue, or a backoff, may have eaten into the
     * lease: renew it for the whole exchange about to start. */
    if (f->leased) {
        renew_lease(f, f->lk->cfg->upstream_timeout_ms + LEASE_MARGIN_MS);
    }
    f->attempt++;
    f->state = FLIGHT_FETCHING;
    upstream_fetch(f->lk->upstream, f->project, f->record, on_fetched, f);
}

static void
become_fetcher(flight *f)
{
    lookup *lk = f->lk;
    char retry[24];

    if (lk->fetching >= lk->cfg->upstream_max_in_flight) {
        lookup_answer a = {.status = 503,
                           .cache = "miss",
                           .error_code = REPLY_UNAVAILABLE,
                           .error_msg = "too many upstream fetches in "
                                        "flight; retry later",
                           .retry_after = "1"};
        finish_fetch(f, &a);
        return;
    }
    if (breaker_allow(lk->breaker) == BREAKER_REJECT) {
        lookup_answer a = {.status = 503,
                           .cache = "miss",
                           .error_code = REPLY_UNAVAILABLE,
                           .error_msg = "the cloud API is failing; "
                                        "retry later",
                           .retry_after = retry};
        snprintf(retry, sizeof(retry), "%lld",
                 (long long)(breaker_retry_after_ms(lk->breaker) / 1000 + 1));
        finish_fetch(f, &a);
        return;
    }

    take_slot(f);
    f->state = FLIGHT_QUEUED;
    flight_hold(f);
    ratelimit_acquire(lk->ratelimit, f->deadline_ms, on_admitted, f);
}

/* --- cache, lease, waiting for another process ------------------------ */

static void
answer_hit(flight *f, const char *value, size_t len)
{
    lookup_answer a = {.status = 200,
                       .cache = "hit",
                       .body = value,
                       .len = len,
                       .finished = true};

    answer_all(f, &a, false);
}

/* A record the lease script found: stored by another process since this
 * one looked, or a bad value (which the cache has just reported) to take
 * the lease over. */
static void
found_by_lease(flight *f, const char *value, size_t len)
{
    if (cache_value_ok(f->lk->cache, f->project, f->record, value, len)) {
        answer_hit(f, value, len);
    } else {
        try_lease(f, true);
    }
}

static void
wait_remote(flight *f)
{
    struct timeval tv = clock_tv(REMOTE_POLL_MS + rand() % 50);

    f->state = FLIGHT_REMOTE;
    f->saw_lease_taken = true;
    evtimer_add(f->timer, &tv);
}

/* The lease script's answer: {1, record}, {2} (ours), or {3} (taken). */
static void
on_lease(redisReply *reply, void *arg)
{
    flight *f = arg;
    bool valid = reply != NULL && reply->type == REDIS_REPLY_ARRAY &&
                 reply->elements >= 1 &&
                 reply->element[0]->type == REDIS_REPLY_INTEGER;
    long long verdict = valid ? reply->element[0]->integer : 0;

    if (flight_done(f)) {
        if (verdict == 2) {
            f->leased = true;
            release_lease(f, NULL, NULL);
        }
    } else if (verdict == 1 && reply->elements == 2 &&
               reply->element[1]->type == REDIS_REPLY_STRING) {
        found_by_lease(f, reply->element[1]->str, reply->element[1]->len);
    } else if (verdict == 3) {
        /* Another process is fetching: wait for its message, and look
         * again now and then in case it died or the message was lost. */
        wait_remote(f);
    } else {
        /* Won the lease, or Redis failed: fetch here. Without Redis the
         * processes cannot agree, and answering beats waiting. */
        f->leased = verdict == 2;
        become_fetcher(f);
    }
    flight_release(f);
}

/* Looks for the record and takes the lease in one atomic step, so that a
 * record stored by another process just after this one missed it is
 * found, not fetched a second time. over_bad_value: what is stored is
 * known to be unfit, so only the lease is wanted. */
static void
try_lease(flight *f, bool over_bad_value)
{
    lookup *lk = f->lk;
    char rec_key[KEY_MAX];
    char lease_key[KEY_MAX];
    char ttl[24];
    char max[24] = "0";
    size_t rec_len = flight_key(f, "rec", rec_key, sizeof(rec_key));
    size_t lease_len = flight_key(f, "lease", lease_key, sizeof(lease_key));
    const char *argv[8] = {"EVAL",    lease_script, "2", rec_key,
                           lease_key, lk->owner,    ttl, max};
    size_t lens[8] = {4,         strlen(lease_script), 1, rec_len,
                      lease_len, strlen(lk->owner),    0, 1};

    if (!redis_conn_up(lk->redis)) {
        become_fetcher(f);
        return;
    }
    lens[6] = (size_t)snprintf(
        ttl, sizeof(ttl), "%lld",
        (long long)(lk->cfg->upstream_timeout_ms + LEASE_MARGIN_MS));
    if (!over_bad_value) {
        lens[7] = (size_t)snprintf(max, sizeof(max), "%lld",
                                   (long long)lk->cfg->upstream_max_body);
    }
    f->state = FLIGHT_LEASE;
    flight_hold(f);
    redis_conn_command(lk->redis, on_lease, f, 8, argv, lens);
}

static void
on_cache(cache_status status, const char *value, size_t len, void *arg)
{
    flight *f = arg;

    if (flight_done(f)) {
        flight_release(f);
        return;
    }
    if (status == CACHE_HIT) {
        answer_hit(f, value, len);
    } else {
        try_lease(f, status == CACHE_BAD);
    }
    flight_release(f);
}

static void
start_cache(flight *f)
{
    f->state = FLIGHT_CACHE;
    flight_hold(f);
    cache_get(f->lk->cache, f->project, f->record, on_cache, f);
}

static void
on_timer(evutil_socket_t fd, short what, void *arg)
{
    flight *f = arg;

    (void)fd;
    (void)what;
    if (f->state == FLIGHT_REMOTE) {
        try_lease(f, false);
    } else if (f->state == FLIGHT_BACKOFF) {
        become_fetcher(f);
    }
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    answer_error(arg, 504, REPLY_UPSTREAM_TIME,
                 "no answer within server.request_timeout", NULL);
}

/* The statuses other than 200 that this file publishes (answer_error,
 * error_answer, on_admitted, become_fetcher). */
static bool
published_status_ok(json_int_t status)
{
    switch (status) {
    case 400:
    case 404:
    case 429:
    case 502:
    case 503:
    case 504:
        return true;
    default:
        return false;
    }
}

/* A text of a message: absent (NULL), or a string of at most max bytes.
 * Returns false when present but something else. */
static bool
message_text(const json_t *msg, const char *key, size_t max, const char **out)
{
    const json_t *v = json_object_get(msg, key);

    *out = NULL;
    if (v == NULL) {
        return true;
    }
    if (!json_is_string(v) || json_string_length(v) > max) {
        return false;
    }
    *out = json_string_value(v);
    return true;
}

static bool
all_digits(const char *text)
{
    for (const char *p = text; *p; p++) {
        if (*p < '0' || *p > '9') {
            return false;
        }
    }
    return *text != '\0';
}

/* An error answer that recgate itself could have published: one of its
 * statuses, texts as long as those it sends at most, a Retry-After of a
 * few digits. Anything else would reach the client as it stands. */
static bool
error_message_ok(const json_t *msg, lookup_answer *a)
{
    json_int_t status = json_integer_value(json_object_get(msg, "status"));

    if (!json_is_integer(json_object_get(msg, "status")) ||
        !published_status_ok(status) ||
        !message_text(msg, "error_code", ERROR_CODE_MAX, &a->error_code) ||
        !message_text(msg, "error_msg", ERROR_MSG_MAX, &a->error_msg) ||
        !message_text(msg, "retry_after", RETRY_AFTER_DIGITS_MAX,
                      &a->retry_after) ||
        a->error_code == NULL || a->error_msg == NULL ||
        (a->retry_after != NULL && !all_digits(a->retry_after))) {
        return false;
    }
    a->status = (int)status;
    return true;
}

/* A record that recgate itself would have sent for that id: a record
 * handed to waiters (and, when finished, kept in L1) is served as it is.
 * One that is not is counted and logged once, as any forged message. */
static bool
record_message_ok(lookup *lk, const char *record, const json_t *msg,
                  lookup_answer *a)
{
    const json_t *body = json_object_get(msg, "body");

    if (json_integer_value(json_object_get(msg, "status")) != 200 ||
        !json_is_integer(json_object_get(msg, "status")) ||
        !json_is_string(body)) {
        return false;
    }
    a->status = 200;
    a->body = json_string_value(body);
    a->len = json_string_length(body);
    a->finished = json_is_true(json_object_get(msg, "finished"));
    return cache_unfit(lk->cache, record, a->body, a->len, a->finished) == NULL;
}

static void
log_forged_message(lookup *lk, const char *project, const char *record)
{
    log_line line;

    metrics_inc(METRIC_REDIS_ERRORS);
    if (!log_once_per(&lk->forged_logged, FORGED_LOG_INTERVAL_S)) {
        return;
    }
    log_begin(&line, LOG_WARN,
              "ignored a published result recgate would "
              "not have sent");
    log_str(&line, "project_id", project);
    log_str(&line, "record_id", record);
    log_end(&line);
}

/* A result published by the process that fetched. Anyone who can write
 * to Redis can publish: a message that is not one recgate could have
 * sent is ignored, and the waiter goes on waiting and polling, fetching
 * itself once the lease has expired. */
static void
on_message(const char *channel, const char *payload, size_t len, void *arg)
{
    lookup *lk = arg;
    const char *key = channel + lk->done_prefix_len;
    const char *colon = strchr(key, ':');
    char project[ROUTE_PROJECT_LEN + 1];
    const char *owner;
    json_t *msg;
    flight *f;
    lookup_answer a = {.cache = "miss"};

    if (strlen(channel) < lk->done_prefix_len || colon == NULL ||
        colon - key != ROUTE_PROJECT_LEN) {
        return;
    }
    memcpy(project, key, ROUTE_PROJECT_LEN);
    project[ROUTE_PROJECT_LEN] = '\0';
    /* Only a flight that found the lease taken waits for a message: any
     * other was started after that fetch began, and must not be handed
     * an older reading of a running record. One that is looking again
     * (its poll) still takes it. */
    f = flight_find(lk, project, colon + 1);
    if (f == NULL || !f->saw_lease_taken ||
        (f->state != FLIGHT_REMOTE && f->state != FLIGHT_LEASE)) {
        return;
    }

    msg = json_loadb(payload, len, 0, NULL);
    owner = json_string_value(json_object_get(msg, "owner"));
    if (owner != NULL && strcmp(owner, lk->owner) == 0) {
        json_decref(msg);
        return;
    }

    if (record_message_ok(lk, colon + 1, msg, &a) ||
        (a.status != 200 && error_message_ok(msg, &a))) {
        a.upstream_ms = json_number_value(json_object_get(msg, "upstream_ms"));
        message_text(msg, "upstream_id", UPSTREAM_ID_MAX, &a.upstream_id);
        answer_all(f, &a, true);
    } else {
        log_forged_message(lk, project, colon + 1);
    }
    json_decref(msg);
}

/* --- the public face --------------------------------------------------- */

void
lookup_record(lookup *lk, const char *project, const char *record, lookup_cb cb,
              void *arg)
{
    flight *f = flight_find(lk, project, record);
    waiter *w = calloc(1, sizeof(*w));
    struct timeval tv = clock_tv(lk->cfg->request_timeout_ms);

    w->cb = cb;
    w->arg = arg;
    if (f != NULL) {
        TAILQ_INSERT_TAIL(&f->waiters, w, link);
        f->n_waiters++;
        return;
    }

    f = calloc(1, sizeof(*f));
    f->lk = lk;
    f->refs = 1;
    snprintf(f->project, sizeof(f->project), "%s", project);
    snprintf(f->record, sizeof(f->record), "%s", record);
    f->bucket = bucket_of(project, record);
    f->deadline_ms = clock_now_ms() + lk->cfg->request_timeout_ms;
    f->timer = evtimer_new(lk->base, on_timer, f);
    f->deadline = evtimer_new(lk->base, on_deadline, f);
    TAILQ_INIT(&f->waiters);
    TAILQ_INSERT_TAIL(&f->waiters, w, link);
    f->n_waiters = 1;
    LIST_INSERT_HEAD(&lk->flights[f->bucket], f, link);
    LIST_INSERT_HEAD(&lk->all_flights, f, all_link);

    evtimer_add(f->deadline, &tv);
    start_cache(f);
}

static void
make_owner_id(lookup *lk)
{
    unsigned char raw[8] = {0};
    char hex[17];

    RAND_bytes(raw, sizeof(raw));
    for (size_t i = 0; i < sizeof(raw); i++) {
        snprintf(hex + 2 * i, 3, "%02x", raw[i]);
    }
    snprintf(lk->owner, sizeof(lk->owner), "%s-%d", hex, (int)getpid());
}

lookup *
lookup_create(struct event_base *base, const config *cfg, char *err,
              size_t err_size)
{
    lookup *lk = calloc(1, sizeof(*lk));
    const char *why = NULL;
    char pattern[KEY_MAX];

    lk->base = base;
    lk->cfg = cfg;
    for (int i = 0; i < FLIGHT_BUCKETS; i++) {
        LIST_INIT(&lk->flights[i]);
    }
    LIST_INIT(&lk->all_flights);
    LIST_INIT(&lk->held);
    make_owner_id(lk);

    lk->rules = record_rules_create(cfg->terminal_statuses, &why);
    if (lk->rules == NULL) {
        snprintf(err, err_size, "cache.terminal_statuses: %s", why);
        lookup_destroy(lk);
        return NULL;
    }
    lk->upstream = upstream_create(base, cfg, err, err_size);
    if (lk->upstream == NULL) {
        lookup_destroy(lk);
        return NULL;
    }

    lk->redis = redis_conn_create(base, cfg, "commands");
    lk->events = redis_conn_create(base, cfg, "events");
    snprintf(pattern, sizeof(pattern), "%sdone:*", cfg->key_prefix);
    lk->done_prefix_len = strlen(pattern) - 1;
    redis_conn_subscribe(lk->events, pattern, on_message, lk);

    lk->cache = cache_create(lk->redis, cfg, lk->rules);
    lk->ratelimit = ratelimit_create(base, cfg, lk->redis, cfg->workers_n);
    lk->breaker = breaker_create(cfg->upstream_breaker_failures,
                                 cfg->upstream_breaker_cooldown_ms);
    return lk;
}

void
lookup_destroy(lookup *lk)
{
    if (lk == NULL) {
        return;
    }
    /* These drop their pending work without calling back, so whatever
     * that work referred to is freed here, whatever its references. */
    ratelimit_destroy(lk->ratelimit);
    upstream_destroy(lk->upstream);
    redis_conn_destroy(lk->events);
    redis_conn_destroy(lk->redis);
    cache_destroy(lk->cache);
    while (!LIST_EMPTY(&lk->held)) {
        held_answer_free(LIST_FIRST(&lk->held));
    }
    while (!LIST_EMPTY(&lk->all_flights)) {
        flight_free(LIST_FIRST(&lk->all_flights));
    }
    breaker_destroy(lk->breaker);
    record_rules_destroy(lk->rules);
    free(lk);
}

bool
lookup_redis_up(const lookup *lk)
{
    return redis_conn_up(lk->redis);
}

const char *
lookup_breaker_state(const lookup *lk)
{
    return breaker_state_name(lk->breaker);
}

const char *
lookup_ratelimit_backend(const lookup *lk)
{
    return ratelimit_backend(lk->ratelimit);
}
