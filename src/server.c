/* server.c - the HTTP front end: routes, checks and the record flow.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/server.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/listener.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "recgate/access.h"
#include "recgate/clock.h"
#include "recgate/guard.h"
#include "recgate/l1.h"
#include "recgate/log.h"
#include "recgate/lookup.h"
#include "recgate/metrics.h"
#include "recgate/reply.h"
#include "recgate/route.h"

#define REQUEST_ID_MAX 128
#define ALLOWED_METHODS "GET, HEAD"
#define LISTEN_BACKLOG 1024
#define CLOCK_SKEW_MAX_S 600

/* After a failed accept (out of descriptors, mostly), how long the
 * listener rests: retrying at once would fail again, in a busy loop. */
#define ACCEPT_PAUSE_MS 150

typedef struct request_ctx request_ctx;

static bool check_access(request_ctx *ctx);

/* One client request, from the handler until its answer is sent. */
struct request_ctx {
    server *srv;
    struct evhttp_request *req;
    route rt;
    char request_id[REQUEST_ID_MAX + 1];
    struct timeval started;
    const char *cache;       /* "hit", "miss" or "none" */
    const char *upstream_id; /* set only while the answer is built */
    double upstream_ms;
    guard_conn *conn; /* its connection, kept tracked meanwhile */
};

struct server {
    struct event_base *base;
    const config *cfg;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    lookup *lookup;
    l1_cache *l1;
    conn_guard *guard;
    access_list *access;
    char cache_control[48]; /* for finished records */
    reply_ids ids;
    struct event *drain_timer;
    struct event *drain_flush;
    struct event *accept_resume;
    bool draining;
    long in_flight;
};

/* --- request ids, timing, the access log ------------------------------ */

static bool
sane_request_id(const char *id)
{
    size_t n = strlen(id);

    if (n == 0 || n > REQUEST_ID_MAX) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)id[i];
        if (!(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'z') &&
            !(c >= 'A' && c <= 'Z') && c != '-' && c != '_' && c != '.' &&
            c != ':') {
            return false;
        }
    }
    return true;
}

static void
pick_request_id(request_ctx *ctx)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(ctx->req);
    const char *theirs = evhttp_find_header(in, "X-Request-Id");

    if (theirs != NULL && sane_request_id(theirs)) {
        snprintf(ctx->request_id, sizeof(ctx->request_id), "%s", theirs);
        return;
    }
    reply_new_id(&ctx->srv->ids, ctx->request_id);
}

static double
ms_since(const struct timeval *start)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - start->tv_sec) * 1e3 +
           (double)(now.tv_usec - start->tv_usec) / 1e3;
}

static const char *
method_name(enum evhttp_cmd_type type)
{
    switch (type) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_OPTIONS:
        return "OPTIONS";
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

/* The path without its query string: recgate ignores the query, and a
 * client that put a secret there (?token=...) must not find it in the
 * logs. */
static void
log_path(log_line *line, const char *uri)
{
    const char *query = strchr(uri, '?');
    char path[2048]; /* more than the logger keeps of a value */
    size_t len;

    if (query == NULL) {
        log_str(line, "path", uri);
        return;
    }
    len = (size_t)(query - uri);
    if (len > sizeof(path) - 1) {
        len = sizeof(path) - 1;
    }
    memcpy(path, uri, len);
    path[len] = '\0';
    log_str(line, "path", path);
}

static void
log_access(request_ctx *ctx, int status)
{
    log_line line;

    log_begin(&line, LOG_INFO, "request");
    if (!line.active) {
        return;
    }
    log_str(&line, "request_id", ctx->request_id);
    log_str(&line, "method", method_name(evhttp_request_get_command(ctx->req)));
    log_path(&line, evhttp_request_get_uri(ctx->req));
    log_int(&line, "status", status);
    log_str(&line, "cache", ctx->cache);
    log_num(&line, "upstream_ms", ctx->upstream_ms);
    if (ctx->upstream_id != NULL) {
        log_str(&line, "upstream_request_id", ctx->upstream_id);
    }
    log_num(&line, "ms", ms_since(&ctx->started));
    log_end(&line);
}

static void
on_drain_flush(evutil_socket_t fd, short what, void *arg)
{
    server *srv = arg;

    (void)fd;
    (void)what;
    if (!guard_output_pending(srv->guard)) {
        event_base_loopexit(srv->base, NULL);
    }
}

/* The last answer is queued, not yet written: the loop ends once every
 * connection's output has gone to the kernel (or the drain times out). */
static void
finish_drain(server *srv)
{
    struct timeval every = {0, 10000};

    if (srv->drain_flush == NULL) {
        srv->drain_flush =
            event_new(srv->base, -1, EV_PERSIST, on_drain_flush, srv);
        event_add(srv->drain_flush, &every);
    }
}

/* Every answer ends here: log, count, free, and finish a drain. */
static void
request_done(request_ctx *ctx, int status)
{
    server *srv = ctx->srv;

    log_access(ctx, status);
    metrics_request(status, ctx->cache);
    guard_request_done(ctx->conn);
    free(ctx);

    srv->in_flight--;
    if (srv->draining && srv->in_flight == 0) {
        finish_drain(srv);
    }
}

/* Every answer is sent here, lines may be NULL. While draining, each one
 * is its connection's last, so that kept-alive clients stop reusing a
 * connection that is about to go away. */
static void
send_answer_lines(request_ctx *ctx, int status, const reply_lines *lines)
{
    reply_send_lines(ctx->req, status, ctx->srv->draining, lines);
    request_done(ctx, status);
}

static void
send_answer(request_ctx *ctx, int status)
{
    send_answer_lines(ctx, status, NULL);
}

static void
fail(request_ctx *ctx, int status, const char *code, const char *msg)
{
    reply_set_error(ctx->req, code, msg, ctx->request_id);
    send_answer(ctx, status);
}

/* --- answers with a record -------------------------------------------- */

static void
release_l1_entry(const void *data, size_t len, void *arg)
{
    (void)data;
    (void)len;
    l1_release(arg);
}

/* Sends a record, or 304 when the client already holds these bytes. With
 * an L1 entry, the body is sent from the entry's own memory, which the
 * answer keeps alive until it is written. */
static void
send_record(request_ctx *ctx, const char *json, size_t len, bool finished,
            const char *etag, l1_entry *entry)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(ctx->req);
    const char *if_none_match = evhttp_find_header(in, "If-None-Match");
    struct evbuffer *body;
    reply_lines lines = {.n = 0};

    reply_lines_common(&lines, ctx->request_id);
    reply_lines_add(&lines, "X-Cache",
                    strcmp(ctx->cache, "hit") == 0 ? "HIT" : "MISS");
    reply_lines_add(&lines, "Cache-Control",
                    finished ? ctx->srv->cache_control : "no-store");
    reply_lines_add(&lines, "ETag", etag);

    if (if_none_match != NULL && reply_etag_matches(if_none_match, etag)) {
        if (entry != NULL) {
            l1_release(entry);
        }
        send_answer_lines(ctx, 304, &lines);
        return;
    }

    /* Straight into the answer's own buffer: no buffer of our own to
     * make, move from and free on every hit. For HEAD it only gives the
     * answer its length, and is dropped (releasing the entry) unsent. */
    body = evhttp_request_get_output_buffer(ctx->req);
    if (entry != NULL) {
        evbuffer_add_reference(body, json, len, release_l1_entry, entry);
    } else {
        /* TODO(memory): every waiter of a shared fetch and every Redis
         * hit copies the record here, held until its client reads it;
         * one reference-counted buffer, as L1 hits have, would bound
         * slow readers' memory by records, not by connections. */
        evbuffer_add(body, json, len);
    }
    send_answer_lines(ctx, 200, &lines);
}

static void
serve_from_l1(request_ctx *ctx, l1_entry *entry)
{
    size_t len;
    const char *body = l1_entry_body(entry, &len);

    ctx->cache = "hit";
    send_record(ctx, body, len, true, l1_entry_etag(entry), entry);
}

/* --- the record ------------------------------------------------------- */

/* The loop's own time, read once per turn of the loop: L1 expiries cost
 * a hit no clock read of its own. It follows the wall clock, whose
 * steps L1 copes with (see l1.h). */
static int64_t
loop_now_ms(server *srv)
{
    struct timeval tv;

    event_base_gettimeofday_cached(srv->base, &tv);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static void
on_answer(const lookup_answer *a, void *arg)
{
    request_ctx *ctx = arg;
    server *srv = ctx->srv;
    char etag[REPLY_ETAG_SIZE];

    ctx->cache = a->cache;
    ctx->upstream_ms = a->upstream_ms;
    ctx->upstream_id = a->upstream_id;
    if (a->status == 200) {
        reply_etag(a->body, a->len, etag);
        if (a->finished) {
            l1_put(srv->l1, ctx->rt.project_id, ctx->rt.record_id, a->body,
                   a->len, etag, loop_now_ms(srv), srv->cfg->cache_ttl_ms);
            metrics_set_l1_bytes((int64_t)l1_bytes(srv->l1));
        }
        send_record(ctx, a->body, a->len, a->finished, etag, NULL);
        return;
    }
    if (a->retry_after != NULL) {
        evhttp_add_header(evhttp_request_get_output_headers(ctx->req),
                          "Retry-After", a->retry_after);
    }
    fail(ctx, a->status, a->error_code, a->error_msg);
}

static void
serve_record(request_ctx *ctx)
{
    server *srv = ctx->srv;
    l1_entry *entry;

    if (!check_access(ctx)) {
        return;
    }
    entry = l1_get(srv->l1, ctx->rt.project_id, ctx->rt.record_id,
                   loop_now_ms(srv));
    if (entry != NULL) {
        serve_from_l1(ctx, entry);
        return;
    }
    /* The miss may have evicted an expired entry. */
    metrics_set_l1_bytes((int64_t)l1_bytes(srv->l1));
    lookup_record(srv->lookup, ctx->rt.project_id, ctx->rt.record_id, on_answer,
                  ctx);
}

/* --- the small routes -------------------------------------------------- */

static void
send_json(request_ctx *ctx, int status, const char *json)
{
    struct evbuffer *body = evhttp_request_get_output_buffer(ctx->req);

    reply_common_headers(ctx->req, ctx->request_id);
    evhttp_add_header(evhttp_request_get_output_headers(ctx->req),
                      "Cache-Control", "no-store");
    evbuffer_add(body, json, strlen(json));
    send_answer(ctx, status);
}

/* Ready unless the clock is so far from the cloud's that signatures would
 * be refused. Without Redis the gateway still answers, from the cloud:
 * ready, but degraded, and it says so, with the breaker and the rate
 * limit's backend. */
static void
serve_readyz(request_ctx *ctx)
{
    lookup *lk = ctx->srv->lookup;
    long long skew = 0;
    bool has_skew = metrics_clock_skew(&skew);
    bool skewed = has_skew && llabs(skew) > CLOCK_SKEW_MAX_S;
    char body[320];

    snprintf(body, sizeof(body),
             "{\"status\":\"%s\",\"redis\":\"%s\",\"breaker\":\"%s\","
             "\"ratelimit\":\"%s\",\"clock_skew_seconds\":%lld%s}",
             skewed ? "not_ready" : "ready",
             lookup_redis_up(lk) ? "up" : "degraded", lookup_breaker_state(lk),
             lookup_ratelimit_backend(lk), skew,
             skewed ? ",\"reason\":\"clock skew against the cloud over "
                      "10 minutes: signatures would be refused\""
                    : "");
    send_json(ctx, skewed ? 503 : 200, body);
}

static void
serve_metrics(request_ctx *ctx)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(ctx->req);

    metrics_render(evhttp_request_get_output_buffer(ctx->req));
    evhttp_add_header(out, "Content-Type", "text/plain; version=0.0.4");
    evhttp_add_header(out, "X-Request-Id", ctx->request_id);
    send_answer(ctx, 200);
}

static bool
check_access(request_ctx *ctx)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(ctx->req);
    const char *auth = evhttp_find_header(in, "Authorization");

    switch (access_check(ctx->srv->access, auth, ctx->rt.project_id)) {
    case ACCESS_UNAUTHORIZED:
        evhttp_add_header(evhttp_request_get_output_headers(ctx->req),
                          "WWW-Authenticate", "Bearer");
        fail(ctx, 401, REPLY_UNAUTHORIZED, "a valid bearer token is required");
        return false;
    case ACCESS_FORBIDDEN:
        fail(ctx, 403, REPLY_FORBIDDEN,
             "this project may not be read through this gateway");
        return false;
    default:
        return true;
    }
}

static void
dispatch(request_ctx *ctx)
{
    enum evhttp_cmd_type method = evhttp_request_get_command(ctx->req);

    if (ctx->rt.kind == ROUTE_NOT_FOUND) {
        fail(ctx, 404, REPLY_NOT_FOUND, "no such route");
        return;
    }
    if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
        evhttp_add_header(evhttp_request_get_output_headers(ctx->req), "Allow",
                          ALLOWED_METHODS);
        fail(ctx, 405, REPLY_BAD_METHOD, "only GET and HEAD are allowed");
        return;
    }

    switch (ctx->rt.kind) {
    case ROUTE_BAD_INPUT:
        fail(ctx, 400, REPLY_BAD_INPUT, ctx->rt.why);
        break;
    case ROUTE_HEALTHZ:
        send_json(ctx, 200, "{\"status\":\"ok\"}");
        break;
    case ROUTE_READYZ:
        serve_readyz(ctx);
        break;
    case ROUTE_METRICS:
        serve_metrics(ctx);
        break;
    case ROUTE_RECORD:
        serve_record(ctx);
        break;
    default:
        fail(ctx, 404, REPLY_NOT_FOUND, "no such route");
        break;
    }
}

/* Without a context there is no access line or count, but the answer
 * is still framed, has an id, and ends the connection. */
static void
refuse_out_of_memory(server *srv, struct evhttp_request *req)
{
    char id[REPLY_ID_LEN + 1];

    reply_new_id(&srv->ids, id);
    reply_set_error(req, REPLY_UNAVAILABLE, "out of memory", id);
    reply_send(req, 503, true);
}

static void
on_request(struct evhttp_request *req, void *arg)
{
    server *srv = arg;
    request_ctx *ctx = calloc(1, sizeof(*ctx));

    if (ctx == NULL) {
        refuse_out_of_memory(srv, req);
        return;
    }
    srv->in_flight++;
    ctx->srv = srv;
    ctx->req = req;
    ctx->cache = "none";
    gettimeofday(&ctx->started, NULL);
    ctx->conn = guard_request_started(srv->guard, req);
    pick_request_id(ctx);

    route_parse(evhttp_request_get_uri(req), &ctx->rt);
    dispatch(ctx);
}

/* --- life cycle -------------------------------------------------------- */

/* evhttp_bind_listener makes the listener's user data its own, so the
 * listener's error callback finds the server here (one per process). */
static server *accepting;

static void
on_accept_resume(evutil_socket_t fd, short what, void *arg)
{
    server *srv = arg;

    (void)fd;
    (void)what;
    if (srv->listener != NULL) {
        evconnlistener_enable(evhttp_bound_socket_get_listener(srv->listener));
    }
}

/* libevent retries a failed accept at the next turn of the loop: at the
 * open-file limit that spins. The listener rests a moment instead, new
 * connections waiting in the backlog, while closes free descriptors. */
static void
on_accept_error(struct evconnlistener *lev, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval pause = clock_tv(ACCEPT_PAUSE_MS);
    log_line line;

    (void)arg; /* evhttp's */
    if (accepting == NULL) {
        return;
    }
    evconnlistener_disable(lev);
    evtimer_add(accepting->accept_resume, &pause);

    log_begin(&line, LOG_WARN,
              "cannot accept connections: pausing the listener");
    log_str(&line, "error", evutil_socket_error_to_string(err));
    log_int(&line, "pause_ms", ACCEPT_PAUSE_MS);
    log_end(&line);
}

/* An answer larger than what libevent writes at once (16 KiB) goes out
 * in two writes, and so do pipelined answers; with Nagle's algorithm the
 * second waits for the client's delayed ACK, about 40 ms on a kept-alive
 * connection. Linux gives accepted sockets the listener's TCP_NODELAY,
 * which saves a system call per connection. */
static void
set_no_delay(evutil_socket_t fd)
{
    int on = 1;

    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &on, sizeof(on)) != 0) {
        log_msg(LOG_WARN, "cannot set TCP_NODELAY on the listener", "error",
                strerror(errno));
    }
}

/* Listens with SO_REUSEPORT, so that several worker processes can each
 * hold their own socket on the same port and the kernel spreads new
 * connections over them. */
static int
bind_listener(server *srv, char *err, size_t err_size)
{
    const config *cfg = srv->cfg;
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct evconnlistener *lev;
    struct addrinfo *ai = NULL;
    char port[8];
    int rc;

    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    rc = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (rc != 0) {
        snprintf(err, err_size, "cannot resolve server.listen %s: %s",
                 cfg->listen, gai_strerror(rc));
        return -1;
    }

    lev = evconnlistener_new_bind(
        srv->base, NULL, NULL,
        LEV_OPT_REUSEABLE | LEV_OPT_REUSEABLE_PORT | LEV_OPT_CLOSE_ON_FREE |
            LEV_OPT_CLOSE_ON_EXEC,
        LISTEN_BACKLOG, ai->ai_addr, (int)ai->ai_addrlen);
    freeaddrinfo(ai);
    if (lev == NULL) {
        snprintf(err, err_size, "cannot listen on %s: %s", cfg->listen,
                 evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
        return -1;
    }
    set_no_delay(evconnlistener_get_fd(lev));
    srv->accept_resume = evtimer_new(srv->base, on_accept_resume, srv);
    accepting = srv;
    evconnlistener_set_error_cb(lev, on_accept_error);
    srv->listener = evhttp_bind_listener(srv->http, lev);
    return 0;
}

static void
setup_http(server *srv)
{
    const config *cfg = srv->cfg;
    struct timeval idle = {
        .tv_sec = cfg->keepalive_timeout_ms / 1000,
        .tv_usec = (suseconds_t)(cfg->keepalive_timeout_ms % 1000) * 1000};

    srv->http = evhttp_new(srv->base);
    evhttp_set_gencb(srv->http, on_request, srv);

    /* Every method reaches the handler, which answers 405 itself in the
     * documented shape. */
    evhttp_set_allowed_methods(
        srv->http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD | EVHTTP_REQ_POST |
                       EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE | EVHTTP_REQ_OPTIONS |
                       EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |
                       EVHTTP_REQ_PATCH);
    evhttp_set_max_headers_size(srv->http, (size_t)cfg->max_header_size);
    evhttp_set_max_body_size(srv->http, 64 * 1024);
    evhttp_set_timeout_tv(srv->http, &idle);
    /* Every answer of recgate's sets its own Content-Type; a default
     * would be added beside the one a record answer's lines carry. */
    evhttp_set_default_content_type(srv->http, NULL);
    srv->guard = guard_create(srv->base, srv->http, cfg, &srv->ids);
}

/* A finished record never changes: clients may keep it as long as Redis
 * does (a year when Redis keeps it for ever). */
static void
set_cache_control(server *srv)
{
    int64_t ttl = srv->cfg->cache_ttl_ms;

    snprintf(srv->cache_control, sizeof(srv->cache_control), "max-age=%lld",
             ttl > 0 ? (long long)(ttl / 1000) : 31536000LL);
}

server *
server_create(struct event_base *base, const config *cfg, char *err,
              size_t err_size)
{
    server *srv = calloc(1, sizeof(*srv));

    /* libevent's own warnings (a failed accept, say) would go to stderr
     * as plain text, unlimited. */
    event_set_log_callback(log_libevent);
    srv->base = base;
    srv->cfg = cfg;
    reply_ids_seed(&srv->ids);
    set_cache_control(srv);
    srv->l1 = l1_create((size_t)cfg->l1_bytes);

    srv->access = access_create(cfg, err, err_size);
    if (srv->access == NULL) {
        goto failed;
    }
    srv->lookup = lookup_create(base, cfg, err, err_size);
    if (srv->lookup == NULL) {
        goto failed;
    }

    setup_http(srv);
    if (bind_listener(srv, err, err_size) != 0) {
        goto failed;
    }
    return srv;

failed:
    server_destroy(srv);
    return NULL;
}

static void
on_drain_timeout(evutil_socket_t fd, short what, void *arg)
{
    server *srv = arg;

    (void)fd;
    (void)what;
    log_line line;
    log_begin(&line, LOG_WARN,
              "drain timeout: exiting with requests "
              "in flight");
    log_int(&line, "in_flight", srv->in_flight);
    log_end(&line);
    event_base_loopexit(srv->base, NULL);
}

void
server_drain(server *srv)
{
    struct timeval tv = {.tv_sec = srv->cfg->drain_timeout_ms / 1000,
                         .tv_usec = (srv->cfg->drain_timeout_ms % 1000) * 1000};

    if (srv->draining) {
        return;
    }
    srv->draining = true;
    if (srv->listener != NULL) {
        evhttp_del_accept_socket(srv->http, srv->listener);
        srv->listener = NULL;
    }
    srv->drain_timer = evtimer_new(srv->base, on_drain_timeout, srv);
    evtimer_add(srv->drain_timer, &tv);
    if (srv->in_flight == 0) {
        finish_drain(srv);
    }
}

void
server_reload(server *srv)
{
    char err[512];
    access_list *fresh = access_create(srv->cfg, err, sizeof(err));

    guard_reload(srv->guard);

    /* A tokens file that cannot be read keeps the old list: locking
     * every client out by a typo would be worse. */
    if (fresh == NULL) {
        log_msg(LOG_ERROR, "reload: tokens file not reloaded", "error", err);
        return;
    }
    access_destroy(srv->access);
    srv->access = fresh;
    set_cache_control(srv);
}

void
server_destroy(server *srv)
{
    if (srv == NULL) {
        return;
    }
    if (srv->http != NULL) {
        evhttp_free(srv->http);
    }
    guard_destroy(srv->guard);
    lookup_destroy(srv->lookup);
    l1_destroy(srv->l1);
    access_destroy(srv->access);
    if (srv->drain_timer != NULL) {
        event_free(srv->drain_timer);
    }
    if (srv->drain_flush != NULL) {
        event_free(srv->drain_flush);
    }
    if (srv->accept_resume != NULL) {
        event_free(srv->accept_resume);
    }
    if (accepting == srv) {
        accepting = NULL;
    }
    free(srv);
}
