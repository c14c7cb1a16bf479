/* reply.h - answers to clients: framing, request ids, and errors in the
 * cloud's JSON shape.
 * SPDX-License-Identifier: MIT
 *
 * Errors look like the cloud's own, {"error_code", "error_msg",
 * "request_id"}, so the Huawei SDKs' error parsing works unchanged.
 */
#ifndef RECGATE_REPLY_H
#define RECGATE_REPLY_H

struct evhttp_request;

/* The gateway's own error codes. */
#define REPLY_BAD_INPUT "RECGATE.4000"
#define REPLY_UNAUTHORIZED "RECGATE.4010"
#define REPLY_FORBIDDEN "RECGATE.4030"
#define REPLY_NOT_FOUND "RECGATE.4040"
#define REPLY_BAD_METHOD "RECGATE.4050"
#define REPLY_RATE_LIMITED "RECGATE.4290"
#define REPLY_INTERNAL "RECGATE.5000"
#define REPLY_UPSTREAM_FAILED "RECGATE.5020"
#define REPLY_UPSTREAM_AUTH "RECGATE.5021"
#define REPLY_UPSTREAM_BODY "RECGATE.5022"
#define REPLY_UNAVAILABLE "RECGATE.5030"
#define REPLY_UPSTREAM_TIME "RECGATE.5040"

/* A strong ETag is the quoted hex of the first 128 bits of the body's
 * SHA-256: 34 characters and a NUL. */
#define REPLY_ETAG_SIZE 35

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Request ids the gateway makes itself: 32 lower-case hex characters. */
#define REPLY_ID_LEN 32

/* A generator of request ids. They need to be unique, not secret, and
 * making one must not cost a system call on the hit path: xorshift128+,
 * seeded from OpenSSL's generator. One per worker process. */
typedef struct {
    uint64_t state[2];
} reply_ids;

void reply_ids_seed(reply_ids *ids);

/* Writes a fresh id, REPLY_ID_LEN characters and a NUL, into out. */
void reply_new_id(reply_ids *ids, char *out);

void reply_etag(const char *body, size_t len, char *out);

/* True when an If-None-Match header value (a list of entity tags, weak
 * or strong, or "*") matches etag under the weak comparison that
 * If-None-Match uses. */
bool reply_etag_matches(const char *if_none_match, const char *etag);

/* Sets the headers every answer carries (X-Request-Id, and
 * Content-Type: application/json). */
void reply_common_headers(struct evhttp_request *req, const char *request_id);

/* Puts a JSON error body and the common headers into req's answer, for
 * reply_send. code and msg are copied; msg must not hold a secret.
 * request_id is also sent as X-Request-Id. */
void reply_set_error(struct evhttp_request *req, const char *code,
                     const char *msg, const char *request_id);

/* Header lines that the answer's status line carries, written as they
 * are. evhttp makes each header of its own with two allocations, a
 * printf and two frees; a record answer has seven, which cost a hit
 * more than everything recgate itself does for it. Names and values are
 * pointers, kept by the caller until the answer is sent. */
#define REPLY_LINES_MAX 8

typedef struct {
    const char *name[REPLY_LINES_MAX];
    const char *value[REPLY_LINES_MAX];
    int n;
} reply_lines;

/* Adds a line; more than REPLY_LINES_MAX are dropped (a bug: the callers
 * add a fixed set). */
void reply_lines_add(reply_lines *lines, const char *name, const char *value);

/* Adds the lines every answer carries, those reply_common_headers sets. */
void reply_lines_common(reply_lines *lines, const char *request_id);

/* Sends req's answer: the headers set so far and, as its body, what its
 * output buffer holds. Every answer goes out this way, framed so that a
 * kept-alive client stays in step whatever evhttp would do by itself:
 * Content-Length is always set for a status that has a body, a HEAD
 * answer carries GET's length but no body bytes, and a CONNECT (which
 * evhttp would leave unframed) closes the connection. With last, the
 * answer says Connection: close and evhttp closes the connection once
 * it is written. */
void reply_send(struct evhttp_request *req, int status, bool last);

/* reply_send, with lines among the answer's headers. They go out in one
 * piece right after the status line (evhttp writes the status line's
 * text as it is given), ahead of the headers evhttp adds itself: Date,
 * Content-Length, Connection. A name or a value that a header may not
 * hold (a control character: the text must not end the header early; a
 * colon or a space in a name), or lines too long for one piece, are
 * handed to evhttp as headers instead, which refuses what it must. */
void reply_send_lines(struct evhttp_request *req, int status, bool last,
                      const reply_lines *lines);

#endif /* RECGATE_REPLY_H */
