/* guard.c - bounds on client connections the HTTP library lacks.
 * SPDX-License-Identifier: MIT
 *
 * Every connection's bufferevent is made here (evhttp's bevcb), with one
 * extra reference of ours. A connection that sent a request tells us of
 * its close (evhttp's closecb, set at its first request): it stops
 * counting at once, and our reference goes a turn of the loop later,
 * once evhttp is done freeing it. For a connection that never sent a
 * request evhttp 2.1 has no hook: when evhttp frees it, it clears the
 * buffer's callbacks and drops its own reference, which a sweep a few
 * times a second notices (and a new connection over the cap, at once).
 *
 * The cap is server.max_connections, or less when the open-file limit
 * would run out first: a client past it gets the documented 503, not a
 * failed accept.
 */
#include "recgate/guard.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "recgate/clock.h"
#include "recgate/log.h"
#include "recgate/reply.h"

#define GUARD_BUCKETS 4096
#define SWEEP_INTERVAL_MS 250

/* Descriptors kept free of client connections: upstream and Redis
 * links, the listener, the log, the event loop's own. */
#define FD_RESERVE 64

/* A new connection over the cap first looks for closed ones to let go,
 * but at most this often, so a flood cannot make every accept a scan of
 * every connection. */
#define RECLAIM_INTERVAL_MS 10

typedef struct guard_conn tracked;

struct guard_conn {
    conn_guard *g;
    struct bufferevent *bev;
    int64_t input_since;          /* first byte of a request not yet handled */
    bool busy;                    /* a request is being handled */
    bool refusing;                /* over the cap: its 503 not yet written */
    bool watched;                 /* evhttp tells us of its close */
    bool closed;                  /* evhttp freed it: no longer counted */
    LIST_ENTRY(guard_conn) chain; /* in a bucket, or in closed */
};

struct conn_guard {
    struct event_base *base;
    const config *cfg;
    struct event *sweep;
    struct event *reap; /* lets closed connections go */
    size_t count;       /* open connections: those in the buckets */
    size_t cap;     /* see fitting_cap; made at start and reload */
    int64_t now_ms; /* the sweep's clock, read by the hot path */
    int64_t reclaimed_ms;
    LIST_HEAD(, guard_conn) buckets[GUARD_BUCKETS];
    LIST_HEAD(, guard_conn) closed;
    reply_ids *ids;
    char reject[512]; /* the whole 503 answer */
    size_t reject_len;
    char *reject_ids[2]; /* where its request id goes: header and body */
};

/* The id is a placeholder of the right length: each refusal writes a
 * fresh one over it, so the length and the rest never change. */
#define ID_PLACEHOLDER "00000000000000000000000000000000"
#define ID_HEADER "X-Request-Id: "
#define ID_FIELD "\"request_id\":\""
_Static_assert(sizeof(ID_PLACEHOLDER) - 1 == REPLY_ID_LEN,
               "the placeholder holds exactly one request id");

static const char over_capacity[] =
    "{\"error_code\":\"RECGATE.5030\",\"error_msg\":\"too many "
    "connections: server.max_connections reached\"," ID_FIELD ID_PLACEHOLDER
    "\"}";

static unsigned
bucket_of(const struct bufferevent *bev)
{
    uintptr_t p = (uintptr_t)bev;

    return (unsigned)((p >> 4) ^ (p >> 16)) % GUARD_BUCKETS;
}

static tracked *
find(conn_guard *g, const struct bufferevent *bev)
{
    tracked *t;

    LIST_FOREACH(t, &g->buckets[bucket_of(bev)], chain)
    {
        if (t->bev == bev) {
            return t;
        }
    }
    return NULL;
}

/* An entry someone still points at: a request's context, or the
 * pending 503. */
static bool
held(const tracked *t)
{
    return t->busy || t->refusing;
}

static void
forget(conn_guard *g, tracked *t)
{
    LIST_REMOVE(t, chain);
    if (!t->closed) {
        g->count--;
    }
    bufferevent_decref(t->bev);
    free(t);
}

/* Ends a connection from underneath evhttp: it reads end-of-file, frees
 * the connection, and the next sweep lets the socket go. */
static void
cut(tracked *t)
{
    evutil_socket_t fd = bufferevent_getfd(t->bev);

    if (fd >= 0) {
        shutdown(fd, SHUT_RDWR);
    }
}

static bool
freed_by_evhttp(const tracked *t)
{
    bufferevent_event_cb on_event = NULL;

    bufferevent_getcb(t->bev, NULL, NULL, &on_event, NULL);
    return on_event == NULL;
}

/* Lets t go when evhttp has freed its connection and nobody holds it.
 * Returns true when it did. */
static bool
let_go_if_freed(conn_guard *g, tracked *t)
{
    if (freed_by_evhttp(t) && !held(t)) {
        forget(g, t);
        return true;
    }
    return false;
}

static void
on_sweep(evutil_socket_t fd, short what, void *arg)
{
    conn_guard *g = arg;
    int64_t read_timeout = g->cfg->read_timeout_ms;
    tracked *t;
    tracked *next;

    (void)fd;
    (void)what;
    g->now_ms = clock_now_ms();
    for (int i = 0; i < GUARD_BUCKETS; i++) {
        for (t = LIST_FIRST(&g->buckets[i]); t != NULL; t = next) {
            next = LIST_NEXT(t, chain);
            if (let_go_if_freed(g, t)) {
                continue;
            }
            if (!t->busy && t->input_since != 0 &&
                g->now_ms - t->input_since > read_timeout) {
                log_msg(LOG_INFO,
                        "client too slow to send its request: "
                        "connection closed",
                        NULL, NULL);
                t->input_since = 0;
                cut(t);
            }
        }
    }
}

static void
on_reap(evutil_socket_t fd, short what, void *arg)
{
    conn_guard *g = arg;
    tracked *t;
    tracked *next;

    (void)fd;
    (void)what;
    for (t = LIST_FIRST(&g->closed); t != NULL; t = next) {
        next = LIST_NEXT(t, chain);
        if (!held(t)) {
            forget(g, t);
        }
    }
}

/* evhttp calls this as it starts to free the connection: it stops
 * counting now. evhttp still uses the buffer after dropping its own
 * reference, so ours goes later, from on_reap. */
static void
on_close(struct evhttp_connection *evcon, void *arg)
{
    tracked *t = arg;
    conn_guard *g = t->g;

    (void)evcon;
    if (t->closed) {
        return;
    }
    t->closed = true;
    g->count--;
    LIST_REMOVE(t, chain);
    LIST_INSERT_HEAD(&g->closed, t, chain);
    event_active(g->reap, EV_TIMEOUT, 0);
}

/* Lets go of connections evhttp has freed without telling us (those
 * that never sent a request), as the sweep does, but now. */
static void
reclaim(conn_guard *g)
{
    int64_t now = clock_now_ms();
    tracked *t;
    tracked *next;

    if (now - g->reclaimed_ms < RECLAIM_INTERVAL_MS) {
        return;
    }
    g->reclaimed_ms = now;
    for (int i = 0; i < GUARD_BUCKETS; i++) {
        for (t = LIST_FIRST(&g->buckets[i]); t != NULL; t = next) {
            next = LIST_NEXT(t, chain);
            let_go_if_freed(g, t);
        }
    }
}

static void
log_lowered_cap(int max_connections, rlim_t limit, size_t cap)
{
    log_line line;

    log_begin(&line, LOG_WARN,
              "the open-file limit is below server.max_connections: "
              "fewer connections accepted");
    log_int(&line, "max_connections", max_connections);
    log_int(&line, "open_file_limit", (long long)limit);
    log_int(&line, "connections_accepted", (long long)cap);
    log_end(&line);
}

/* server.max_connections, or what the open-file limit leaves after the
 * reserve, whichever is smaller. */
static size_t
fitting_cap(int max_connections)
{
    struct rlimit rl;
    size_t cap = (size_t)max_connections;
    rlim_t room;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur == RLIM_INFINITY) {
        return cap;
    }
    room = rl.rlim_cur > FD_RESERVE ? rl.rlim_cur - FD_RESERVE : 1;
    if (room < (rlim_t)cap) {
        cap = (size_t)room;
        log_lowered_cap(max_connections, rl.rlim_cur, cap);
    }
    return cap;
}

/* Notes when the first byte of a request arrives. */
static void
on_input(struct evbuffer *buf, const struct evbuffer_cb_info *info, void *arg)
{
    tracked *t = arg;

    (void)buf;
    if (info->n_added > 0 && t->input_since == 0 && !t->busy) {
        t->input_since = clock_now_ms();
    }
}

typedef struct {
    conn_guard *g;
    tracked *t;
} rejection;

/* Writes the 503 straight to the socket (it fits any socket buffer) and
 * closes: the request is never read. */
static void
on_reject(evutil_socket_t fd, short what, void *arg)
{
    rejection *r = arg;
    evutil_socket_t sock = bufferevent_getfd(r->t->bev);

    (void)fd;
    (void)what;
    if (sock >= 0) {
        conn_guard *g = r->g;
        char id[REPLY_ID_LEN + 1];
        ssize_t n;

        reply_new_id(g->ids, id);
        memcpy(g->reject_ids[0], id, REPLY_ID_LEN);
        memcpy(g->reject_ids[1], id, REPLY_ID_LEN);
        n = send(sock, g->reject, g->reject_len, MSG_NOSIGNAL | MSG_DONTWAIT);
        (void)n;
    }
    cut(r->t);
    r->t->refusing = false;
    if (r->t->closed) {
        event_active(r->g->reap, EV_TIMEOUT, 0);
    }
    free(r);
}

static struct bufferevent *
on_new_connection(struct event_base *base, void *arg)
{
    conn_guard *g = arg;
    size_t cap = g->cap;
    tracked *t;
    struct timeval now = {0, 0};

    /* Before the new entry is in: a buffer with no callbacks yet looks
     * freed by evhttp. */
    if (g->count >= cap) {
        reclaim(g);
    }
    t = calloc(1, sizeof(*t));
    t->g = g;
    t->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_incref(t->bev);
    LIST_INSERT_HEAD(&g->buckets[bucket_of(t->bev)], t, chain);
    g->count++;

    if (g->count > cap) {
        /* evhttp gives the buffer its socket only after this returns. The
         * entry stays held, so nothing frees it before the rejection. */
        rejection *r = malloc(sizeof(*r));
        r->g = g;
        r->t = t;
        t->refusing = true;
        event_base_once(base, -1, EV_TIMEOUT, on_reject, r, &now);
        log_msg(LOG_WARN,
                "server.max_connections reached: connection "
                "refused",
                NULL, NULL);
    } else {
        evbuffer_add_cb(bufferevent_get_input(t->bev), on_input, t);
    }
    return t->bev;
}

/* Writes the whole 503 once, and notes where its two copies of the
 * request id are. */
static void
make_rejection(conn_guard *g)
{
    g->reject_len = (size_t)snprintf(
        g->reject, sizeof(g->reject),
        "HTTP/1.1 503 Service Unavailable\r\n"
        "Content-Type: application/json\r\nConnection: close\r\n"
        "Retry-After: 1\r\n" ID_HEADER ID_PLACEHOLDER "\r\n"
        "Content-Length: %zu\r\n\r\n%s",
        sizeof(over_capacity) - 1, over_capacity);
    g->reject_ids[0] = strstr(g->reject, ID_HEADER) + strlen(ID_HEADER);
    g->reject_ids[1] = strstr(g->reject, ID_FIELD) + strlen(ID_FIELD);
}

conn_guard *
guard_create(struct event_base *base, struct evhttp *http, const config *cfg,
             reply_ids *ids)
{
    conn_guard *g = calloc(1, sizeof(*g));
    struct timeval every = clock_tv(SWEEP_INTERVAL_MS);

    g->base = base;
    g->cfg = cfg;
    g->ids = ids;
    for (int i = 0; i < GUARD_BUCKETS; i++) {
        LIST_INIT(&g->buckets[i]);
    }
    LIST_INIT(&g->closed);
    make_rejection(g);
    g->cap = fitting_cap(cfg->max_connections);
    g->sweep = event_new(base, -1, EV_PERSIST, on_sweep, g);
    event_add(g->sweep, &every);
    g->reap = event_new(base, -1, 0, on_reap, g);
    evhttp_set_bevcb(http, on_new_connection, g);
    return g;
}

void
guard_destroy(conn_guard *g)
{
    tracked *t;

    if (g == NULL) {
        return;
    }
    for (int i = 0; i < GUARD_BUCKETS; i++) {
        while ((t = LIST_FIRST(&g->buckets[i])) != NULL) {
            forget(g, t);
        }
    }
    while ((t = LIST_FIRST(&g->closed)) != NULL) {
        forget(g, t);
    }
    event_free(g->sweep);
    event_free(g->reap);
    free(g);
}

void
guard_reload(conn_guard *g)
{
    g->cap = fitting_cap(g->cfg->max_connections);
}

guard_conn *
guard_request_started(conn_guard *g, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    tracked *t;

    if (evcon == NULL) {
        return NULL;
    }
    t = find(g, evhttp_connection_get_bufferevent(evcon));
    if (t == NULL) {
        return NULL;
    }
    t->busy = true;
    t->input_since = 0;

    /* Once per connection, at its first request. */
    if (!t->watched) {
        evhttp_connection_set_closecb(evcon, on_close, t);
        t->watched = true;
    }
    return t;
}

void
guard_request_done(guard_conn *t)
{
    if (t == NULL) {
        return;
    }
    t->busy = false;
    t->input_since = 0;

    /* Closed while its answer was being made. */
    if (t->closed) {
        event_active(t->g->reap, EV_TIMEOUT, 0);
    }
}

bool
guard_output_pending(const conn_guard *g)
{
    const tracked *t;

    for (int i = 0; i < GUARD_BUCKETS; i++) {
        LIST_FOREACH(t, &g->buckets[i], chain)
        {
            if (!freed_by_evhttp(t) &&
                evbuffer_get_length(bufferevent_get_output(t->bev)) > 0) {
                return true;
            }
        }
    }
    return false;
}

size_t
guard_connections(const conn_guard *g)
{
    return g->count;
}
