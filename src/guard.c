/* guard.c - bounds on client connections the HTTP library lacks.
 * SPDX-License-Identifier: MIT
 *
 * Every connection's bufferevent is made here (evhttp's bevcb), with one
 * extra reference of ours. When evhttp frees a connection it clears the
 * buffer's callbacks and drops its own reference; a sweep a few times a
 * second notices that, and drops ours, which closes the socket. That is
 * how the guard learns of closes without any hook in evhttp 2.1.
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
#include <sys/socket.h>

#include "recgate/clock.h"
#include "recgate/log.h"
#include "recgate/reply.h"

#define GUARD_BUCKETS 4096
#define SWEEP_INTERVAL_MS 250

typedef struct guard_conn tracked;

struct guard_conn {
    struct bufferevent *bev;
    int64_t input_since; /* first byte of a request not yet handled */
    bool busy;           /* a request is being handled */
    bool rejected;       /* over the cap: answered 503, closing */
    LIST_ENTRY(guard_conn) chain;
};

struct conn_guard {
    struct event_base *base;
    const config *cfg;
    struct event *sweep;
    size_t count;
    int64_t now_ms; /* the sweep's clock, read by the hot path */
    LIST_HEAD(, guard_conn) buckets[GUARD_BUCKETS];
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

static void
forget(conn_guard *g, tracked *t)
{
    LIST_REMOVE(t, chain);
    g->count--;
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
            if (freed_by_evhttp(t) && !t->busy) {
                forget(g, t);
            } else if (!t->busy && t->input_since != 0 &&
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
    r->t->busy = false;
    free(r);
}

static struct bufferevent *
on_new_connection(struct event_base *base, void *arg)
{
    conn_guard *g = arg;
    tracked *t = calloc(1, sizeof(*t));
    struct timeval now = {0, 0};

    t->bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE);
    bufferevent_incref(t->bev);
    LIST_INSERT_HEAD(&g->buckets[bucket_of(t->bev)], t, chain);
    g->count++;

    if (g->count > (size_t)g->cfg->max_connections) {
        /* evhttp gives the buffer its socket only after this returns. The
         * entry stays busy, so no sweep frees it before the rejection. */
        rejection *r = malloc(sizeof(*r));
        r->g = g;
        r->t = t;
        t->rejected = true;
        t->busy = true;
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
    make_rejection(g);
    g->sweep = event_new(base, -1, EV_PERSIST, on_sweep, g);
    event_add(g->sweep, &every);
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
    event_free(g->sweep);
    free(g);
}

static tracked *
of_request(conn_guard *g, struct evhttp_request *req)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);

    if (evcon == NULL) {
        return NULL;
    }
    return find(g, evhttp_connection_get_bufferevent(evcon));
}

guard_conn *
guard_request_started(conn_guard *g, struct evhttp_request *req)
{
    tracked *t = of_request(g, req);

    if (t != NULL) {
        t->busy = true;
        t->input_since = 0;
    }
    return t;
}

void
guard_request_done(guard_conn *t)
{
    if (t != NULL) {
        t->busy = false;
        t->input_since = 0;
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
