/* sign.h - Huawei Cloud SDK-HMAC-SHA256 request signing (AK/SK).
 * SPDX-License-Identifier: MIT
 *
 * The algorithm is the one Huawei's SDKs use: a canonical request (method,
 * per-segment URI-encoded path with a trailing '/', canonical query,
 * lower-cased sorted headers, the signed header list, hex SHA-256 of the
 * body), hashed into a string to sign, then HMAC-SHA256 with the SK.
 */
#ifndef RECGATE_SIGN_H
#define RECGATE_SIGN_H

#include <stddef.h>
#include <time.h>

#define SIGN_ALGORITHM "SDK-HMAC-SHA256"
#define SIGN_DATE_LEN 16 /* "YYYYMMDDTHHMMSSZ" */
#define SIGN_AUTH_MAX 1024

typedef struct {
    const char *name;  /* any case; signed lower-cased */
    const char *value; /* signed exactly as sent */
} sign_header;

/* Writes the X-Sdk-Date value for t into buf (at least 17 bytes). */
void sign_format_date(time_t t, char *buf);

/* Computes the Authorization header value for a request whose request-line
 * path is path (as sent, before '?'), whose query string is query (raw,
 * without '?', may be NULL or empty) and whose signed headers are
 * headers[0..n-1], which must include host and x-sdk-date. Writes a
 * NUL-terminated value into out. Returns 0, or -1 when out is too small,
 * n is too large, or a header is missing. */
int sign_request(const char *ak, const char *sk, const char *method,
                 const char *path, const char *query,
                 const sign_header *headers, size_t n, const void *body,
                 size_t body_len, char *out, size_t out_size);

/* Percent-encodes src the way the canonical URI does (unreserved bytes
 * A-Z a-z 0-9 - _ . ~ kept, every other byte as %XX). Returns the length
 * written, or -1 when out is too small. */
int sign_uri_encode(const char *src, size_t len, char *out, size_t size);

#endif /* RECGATE_SIGN_H */
