/* upstream.c - signed HTTPS requests to the Workspace API.
 * SPDX-License-Identifier: MIT
 *
 * libevent's HTTP client runs over bufferevent_openssl. An evhttp
 * connection whose TCP link closed would reconnect by itself with its old
 * TLS session object, which cannot work; so a connection is used only
 * while its first link lives: once it closes it is marked dead and freed
 * from a timer (never from inside libevent's own callbacks), and the pool
 * opens a fresh one.
 */
#include "recgate/upstream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/dns.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "recgate/log.h"
#include "recgate/metrics.h"
#include "recgate/sign.h"

#define PATH_MAX_LEN 160
#define MAX_HEADERS_SIZE (64 * 1024)

typedef struct conn conn;
typedef struct fetch fetch;

struct conn {
    upstream *owner;
    struct evhttp_connection *evcon;
    struct event *reaper;
    bool busy;   /* a fetch is using it */
    bool dead;   /* its link closed: never send on it again */
    bool reused; /* it has finished an exchange before */
    TAILQ_ENTRY(conn) link;
};

struct fetch {
    upstream *owner;
    upstream_cb cb;
    void *arg;
    char project[40];
    char record[72];
    conn *conn;
    struct event *deadline;
    struct timeval started;
    enum evhttp_request_error error;
    bool failed_early; /* answer "unreachable" from the timer */
    bool retried;
    char detail[160];
    TAILQ_ENTRY(fetch) link;
};

struct upstream {
    struct event_base *base;
    struct evdns_base *dns;
    const config *cfg;
    SSL_CTX *tls;
    bool host_is_ip;
    int idle;
    TAILQ_HEAD(, conn) conns;
    TAILQ_HEAD(, fetch) fetches;
};

static void send_attempt(fetch *f);

static struct timeval
ms_to_tv(int64_t ms)
{
    struct timeval tv = {.tv_sec = ms / 1000,
                         .tv_usec = (suseconds_t)(ms % 1000) * 1000};
    return tv;
}

static bool
is_ip_literal(const char *host)
{
    unsigned char addr[16];

    return inet_pton(AF_INET, host, addr) == 1 ||
           inet_pton(AF_INET6, host, addr) == 1;
}

/* OpenSSL's text for an error code; it has none for some codes. */
static const char *
tls_reason(unsigned long e)
{
    const char *reason = ERR_reason_error_string(e);

    return reason != NULL ? reason : "unknown TLS error";
}

static SSL_CTX *
make_tls_context(const config *cfg, char *err, size_t err_size)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    int ok;

    if (ctx == NULL) {
        snprintf(err, err_size, "cannot create a TLS context");
        return NULL;
    }
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);

    if (cfg->ca_file != NULL && cfg->ca_file[0] != '\0') {
        if (access(cfg->ca_file, R_OK) != 0) {
            snprintf(err, err_size, "cannot read upstream.ca_file %s: %s",
                     cfg->ca_file, strerror(errno));
            SSL_CTX_free(ctx);
            return NULL;
        }
        ok = SSL_CTX_load_verify_locations(ctx, cfg->ca_file, NULL);
    } else {
        ok = SSL_CTX_set_default_verify_paths(ctx);
    }
    if (ok != 1) {
        snprintf(err, err_size, "cannot load CA certificates from %s: %s",
                 cfg->ca_file ? cfg->ca_file : "the system store",
                 tls_reason(ERR_get_error()));
        SSL_CTX_free(ctx);
        return NULL;
    }
    return ctx;
}

int
upstream_check_tls(const config *cfg, char *err, size_t err_size)
{
    SSL_CTX *ctx = make_tls_context(cfg, err, err_size);

    SSL_CTX_free(ctx);
    return ctx != NULL ? 0 : -1;
}

upstream *
upstream_create(struct event_base *base, const config *cfg, char *err,
                size_t err_size)
{
    upstream *u = calloc(1, sizeof(*u));

    if (u == NULL) {
        snprintf(err, err_size, "out of memory");
        return NULL;
    }
    u->base = base;
    u->cfg = cfg;
    u->host_is_ip = is_ip_literal(cfg->upstream_host);
    TAILQ_INIT(&u->conns);
    TAILQ_INIT(&u->fetches);

    u->tls = make_tls_context(cfg, err, err_size);
    if (u->tls == NULL) {
        free(u);
        return NULL;
    }

    /* Asynchronous name lookups; without a resolver configuration the
     * connect falls back to a blocking lookup rather than failing. */
    u->dns = evdns_base_new(base, EVDNS_BASE_INITIALIZE_NAMESERVERS);
    return u;
}

static void
conn_free(conn *c)
{
    upstream *u = c->owner;

    TAILQ_REMOVE(&u->conns, c, link);
    if (!c->busy && !c->dead) {
        u->idle--;
    }
    /* Our close callback must not run on a connection being freed. */
    evhttp_connection_set_closecb(c->evcon, NULL, NULL);
    evhttp_connection_free(c->evcon);
    event_free(c->reaper);
    free(c);
}

static void
fetch_free(fetch *f)
{
    TAILQ_REMOVE(&f->owner->fetches, f, link);
    event_free(f->deadline);
    free(f);
}

void
upstream_destroy(upstream *u)
{
    if (u == NULL) {
        return;
    }
    while (!TAILQ_EMPTY(&u->fetches)) {
        fetch_free(TAILQ_FIRST(&u->fetches));
    }
    while (!TAILQ_EMPTY(&u->conns)) {
        conn_free(TAILQ_FIRST(&u->conns));
    }
    if (u->dns != NULL) {
        evdns_base_free(u->dns, 0);
    }
    SSL_CTX_free(u->tls);
    free(u);
}

static void
on_reaper(evutil_socket_t fd, short what, void *arg)
{
    conn *c = arg;

    (void)fd;
    (void)what;
    if (!c->busy) {
        conn_free(c);
    }
}

static void
schedule_reap(conn *c)
{
    struct timeval now = {0, 0};

    evtimer_add(c->reaper, &now);
}

/* libevent calls this when the link closes, idle or not. */
static void
on_conn_close(struct evhttp_connection *evcon, void *arg)
{
    conn *c = arg;

    (void)evcon;
    if (!c->dead && !c->busy) {
        c->owner->idle--;
    }
    c->dead = true;
    if (!c->busy) {
        schedule_reap(c);
    }
}

static conn *
conn_new(upstream *u)
{
    const config *cfg = u->cfg;
    struct bufferevent *bev;
    struct timeval tv = ms_to_tv(cfg->upstream_timeout_ms);
    conn *c;
    SSL *ssl;

    ssl = SSL_new(u->tls);
    if (ssl == NULL) {
        return NULL;
    }
    if (u->host_is_ip) {
        X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), cfg->upstream_host);
    } else {
        SSL_set_tlsext_host_name(ssl, cfg->upstream_host);
        SSL_set1_host(ssl, cfg->upstream_host);
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }

    bev = bufferevent_openssl_socket_new(
        u->base, -1, ssl, BUFFEREVENT_SSL_CONNECTING,
        BEV_OPT_CLOSE_ON_FREE | BEV_OPT_DEFER_CALLBACKS);
    if (bev == NULL) {
        SSL_free(ssl);
        return NULL;
    }
    bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);

    c = calloc(1, sizeof(*c));
    c->owner = u;
    c->evcon = evhttp_connection_base_bufferevent_new(
        u->base, u->dns, bev, cfg->upstream_host,
        (unsigned short)cfg->upstream_port);
    c->reaper = evtimer_new(u->base, on_reaper, c);
    evhttp_connection_set_retries(c->evcon, 0);
    evhttp_connection_set_timeout_tv(c->evcon, &tv);
    evhttp_connection_set_max_body_size(c->evcon, cfg->upstream_max_body);
    evhttp_connection_set_max_headers_size(c->evcon, MAX_HEADERS_SIZE);
    evhttp_connection_set_closecb(c->evcon, on_conn_close, c);

    TAILQ_INSERT_TAIL(&u->conns, c, link);
    return c;
}

/* An idle live connection, or a new one. */
static conn *
conn_take(upstream *u, bool fresh)
{
    conn *c;

    if (!fresh) {
        TAILQ_FOREACH(c, &u->conns, link)
        {
            if (!c->busy && !c->dead) {
                u->idle--;
                c->busy = true;
                return c;
            }
        }
    }
    c = conn_new(u);
    if (c != NULL) {
        c->busy = true;
    }
    return c;
}

static void
conn_release(conn *c)
{
    upstream *u = c->owner;

    c->busy = false;
    if (!c->dead && u->idle >= u->cfg->upstream_keepalive) {
        c->dead = true;
    }
    if (c->dead) {
        schedule_reap(c);
        return;
    }
    u->idle++;
}

static double
seconds_since(const struct timeval *start)
{
    struct timeval now;

    gettimeofday(&now, NULL);
    return (double)(now.tv_sec - start->tv_sec) +
           (double)(now.tv_usec - start->tv_usec) / 1e6;
}

/* Gives the caller its result and forgets the fetch. */
static void
deliver(fetch *f, upstream_result *res)
{
    res->seconds = seconds_since(&f->started);
    if (res->detail == NULL && f->detail[0] != '\0') {
        res->detail = f->detail;
    }
    metrics_upstream(res->outcome == UPSTREAM_ANSWERED ? res->status : 0,
                     res->seconds);

    f->cb(res, f->arg);
    fetch_free(f);
}

static void
deliver_failure(fetch *f, upstream_outcome outcome)
{
    upstream_result res = {.outcome = outcome};

    deliver(f, &res);
}

/* Puts the TLS layer's reason for a failure into f->detail. */
static void
note_tls_error(fetch *f, struct evhttp_connection *evcon)
{
    struct bufferevent *bev = evhttp_connection_get_bufferevent(evcon);
    SSL *ssl = bev ? bufferevent_openssl_get_ssl(bev) : NULL;
    unsigned long e = bev ? bufferevent_get_openssl_error(bev) : 0;
    long verify = ssl ? SSL_get_verify_result(ssl) : X509_V_OK;

    if (verify != X509_V_OK) {
        snprintf(f->detail, sizeof(f->detail), "certificate: %s",
                 X509_verify_cert_error_string(verify));
    } else if (e != 0) {
        snprintf(f->detail, sizeof(f->detail), "tls: %s", tls_reason(e));
    } else if (f->detail[0] == '\0') {
        snprintf(f->detail, sizeof(f->detail), "connection failed");
    }
    while (bev && bufferevent_get_openssl_error(bev) != 0) {
        /* drain the rest of the queue */
    }
}

static void
on_request_error(enum evhttp_request_error error, void *arg)
{
    fetch *f = arg;

    f->error = error;
}

/* Reads an IMF-fixdate ("Sun, 06 Nov 1994 08:49:37 GMT") and tells how
 * far the sender's clock is from ours. The cloud rejects signatures more
 * than 15 minutes off, so this is worth watching. */
static bool
clock_skew(const char *date, long long *skew_s)
{
    struct tm tm;
    const char *end;

    if (date == NULL) {
        return false;
    }
    memset(&tm, 0, sizeof(tm));
    end = strptime(date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (end == NULL || *end != '\0') {
        return false;
    }
    *skew_s = (long long)(timegm(&tm) - time(NULL));
    return true;
}

static void
answer(fetch *f, struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    struct evbuffer *body = evhttp_request_get_input_buffer(req);
    upstream_result res = {.outcome = UPSTREAM_ANSWERED};

    res.status = evhttp_request_get_response_code(req);
    res.body_len = evbuffer_get_length(body);
    res.body = (const char *)evbuffer_pullup(body, -1);
    if (res.body == NULL) {
        res.body = "";
    }
    res.request_id = evhttp_find_header(in, "X-Request-Id");
    res.retry_after = evhttp_find_header(in, "Retry-After");
    res.date = evhttp_find_header(in, "Date");
    res.has_clock_skew = clock_skew(res.date, &res.clock_skew_s);
    if (res.has_clock_skew) {
        metrics_set_clock_skew(res.clock_skew_s);
    }
    deliver(f, &res);
}

static upstream_outcome
outcome_of(enum evhttp_request_error error)
{
    switch (error) {
    case EVREQ_HTTP_TIMEOUT:
        return UPSTREAM_TIMEOUT;
    case EVREQ_HTTP_DATA_TOO_LONG:
        return UPSTREAM_TOO_LARGE;
    default:
        return UPSTREAM_UNREACHABLE;
    }
}

static void
on_response(struct evhttp_request *req, void *arg)
{
    fetch *f = arg;
    conn *c = f->conn;
    bool stale;

    f->conn = NULL;
    if (req != NULL && evhttp_request_get_response_code(req) != 0) {
        c->reused = true;
        conn_release(c);
        answer(f, req);
        return;
    }

    /* A kept-alive link the cloud closed just as we sent on it: one more
     * try on a new link, as any HTTP client does for a GET. */
    stale = c->reused && !f->retried && f->error == EVREQ_HTTP_EOF;
    c->dead = true;
    if (f->error == EVREQ_HTTP_DATA_TOO_LONG) {
        snprintf(f->detail, sizeof(f->detail), "body over upstream.max_body");
    } else if (!stale) {
        note_tls_error(f, c->evcon);
    }
    conn_release(c);
    if (stale) {
        f->retried = true;
        send_attempt(f);
        return;
    }
    deliver_failure(f, outcome_of(f->error));
}

static void
on_deadline(evutil_socket_t fd, short what, void *arg)
{
    fetch *f = arg;
    conn *c = f->conn;

    (void)fd;
    (void)what;
    if (f->failed_early) {
        deliver_failure(f, UPSTREAM_UNREACHABLE);
        return;
    }

    /* Freeing the connection drops the request without its callback. */
    if (c != NULL) {
        c->busy = false;
        c->dead = true;
        conn_free(c);
        f->conn = NULL;
    }
    snprintf(f->detail, sizeof(f->detail), "no answer within %lld ms",
             (long long)f->owner->cfg->upstream_timeout_ms);
    deliver_failure(f, UPSTREAM_TIMEOUT);
}

static void
fail_soon(fetch *f, const char *why)
{
    struct timeval now = {0, 0};

    snprintf(f->detail, sizeof(f->detail), "%s", why);
    f->failed_early = true;
    evtimer_del(f->deadline);
    evtimer_add(f->deadline, &now);
}

/* Adds the signed headers and the signature to an outgoing request. */
static int
add_signed_headers(fetch *f, struct evhttp_request *req, const char *path)
{
    const config *cfg = f->owner->cfg;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    char date[SIGN_DATE_LEN + 1];
    char auth[SIGN_AUTH_MAX];
    sign_header h[5];
    size_t n = 0;

    sign_format_date(time(NULL), date);
    h[n++] = (sign_header){"Content-Type", "application/json"};
    h[n++] = (sign_header){"Host", cfg->upstream_authority};
    h[n++] = (sign_header){"X-Project-Id", f->project};
    h[n++] = (sign_header){"X-Sdk-Date", date};
    if (cfg->security_token != NULL && cfg->security_token[0] != '\0') {
        h[n++] = (sign_header){"X-Security-Token", cfg->security_token};
    }

    if (sign_request(cfg->ak, cfg->sk, "GET", path, NULL, h, n, NULL, 0, auth,
                     sizeof(auth)) != 0) {
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        evhttp_add_header(out, h[i].name, h[i].value);
    }
    evhttp_add_header(out, "Authorization", auth);
    evhttp_add_header(out, "User-Agent", "recgate/" RECGATE_VERSION);
    evhttp_add_header(out, "Accept", "application/json");
    return 0;
}

static void
send_attempt(fetch *f)
{
    char path[PATH_MAX_LEN];
    struct evhttp_request *req;
    conn *c;

    snprintf(path, sizeof(path), "/v2/%s/script-execution-records/%s",
             f->project, f->record);
    c = conn_take(f->owner, f->retried);
    if (c == NULL) {
        fail_soon(f, "cannot open a TLS connection");
        return;
    }

    req = evhttp_request_new(on_response, f);
    evhttp_request_set_error_cb(req, on_request_error);
    if (add_signed_headers(f, req, path) != 0) {
        evhttp_request_free(req);
        conn_release(c);
        fail_soon(f, "cannot sign the request");
        return;
    }

    f->conn = c;
    f->error = EVREQ_HTTP_EOF;
    if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_GET, path) != 0) {
        /* libevent has freed the request. */
        f->conn = NULL;
        c->dead = true;
        conn_release(c);
        fail_soon(f, "cannot send the request");
    }
}

void
upstream_fetch(upstream *u, const char *project, const char *record,
               upstream_cb cb, void *arg)
{
    fetch *f = calloc(1, sizeof(*f));
    struct timeval tv = ms_to_tv(u->cfg->upstream_timeout_ms);

    f->owner = u;
    f->cb = cb;
    f->arg = arg;
    snprintf(f->project, sizeof(f->project), "%s", project);
    snprintf(f->record, sizeof(f->record), "%s", record);
    gettimeofday(&f->started, NULL);
    f->deadline = evtimer_new(u->base, on_deadline, f);
    TAILQ_INSERT_TAIL(&u->fetches, f, link);

    evtimer_add(f->deadline, &tv);
    send_attempt(f);
}
