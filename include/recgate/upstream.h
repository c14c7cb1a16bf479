/* upstream.h - signed HTTPS requests to the Workspace API.
 * SPDX-License-Identifier: MIT
 *
 * Each fetch is built from scratch (nothing of a client's request is
 * forwarded), signed with the AK/SK, and sent over a verified TLS
 * connection (SNI, certificate chain, host name, TLS 1.2 or newer) taken
 * from a small keep-alive pool.
 */
#ifndef RECGATE_UPSTREAM_H
#define RECGATE_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>

#include "recgate/config.h"

struct event_base;

typedef struct upstream upstream;

typedef enum {
    UPSTREAM_ANSWERED = 0, /* an HTTP answer arrived: see status */
    UPSTREAM_UNREACHABLE,  /* connect or TLS failure, or dropped answer */
    UPSTREAM_TIMEOUT,      /* no whole answer within upstream.timeout */
    UPSTREAM_TOO_LARGE,    /* body over upstream.max_body */
} upstream_outcome;

/* Everything here is valid only during the callback. */
typedef struct {
    upstream_outcome outcome;
    int status;
    const char *body;
    size_t body_len;
    const char *request_id;  /* the cloud's X-Request-Id, or NULL */
    const char *retry_after; /* the cloud's Retry-After, or NULL */
    const char *date;        /* the cloud's Date, or NULL */
    long long clock_skew_s;  /* the cloud's Date minus our clock */
    bool has_clock_skew;     /* a Date header could be read */
    const char *detail;      /* why it failed, for the log, or NULL */
    double seconds;
} upstream_result;

typedef void (*upstream_cb)(const upstream_result *res, void *arg);

/* Sets up TLS from cfg (which must outlive the upstream). Returns NULL
 * after writing the reason into err. */
upstream *upstream_create(struct event_base *base, const config *cfg, char *err,
                          size_t err_size);

/* Checks that TLS can be set up from cfg (the CA file is readable and
 * holds certificates), as upstream_create would. Returns 0, or -1 after
 * writing the reason into err. */
int upstream_check_tls(const config *cfg, char *err, size_t err_size);

/* Frees the pool; fetches still in flight are dropped without callback. */
void upstream_destroy(upstream *u);

/* Fetches one record. cb runs exactly once, never before this returns. */
void upstream_fetch(upstream *u, const char *project, const char *record,
                    upstream_cb cb, void *arg);

#endif /* RECGATE_UPSTREAM_H */
