/* sign.c - Huawei Cloud SDK-HMAC-SHA256 request signing (AK/SK).
 * SPDX-License-Identifier: MIT
 */
#include "recgate/sign.h"

#include <ctype.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SIGN_MAX_HEADERS 16
#define SIGN_CANONICAL_MAX 8192

void
sign_format_date(time_t t, char *buf)
{
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(buf, SIGN_DATE_LEN + 1, "%Y%m%dT%H%M%SZ", &tm);
}

static bool
is_unreserved(unsigned char c)
{
    return isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~';
}

int
sign_uri_encode(const char *src, size_t len, char *out, size_t size)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)src[i];

        if (o + 4 > size) {
            return -1;
        }
        if (is_unreserved(c) && c < 0x80) {
            out[o++] = (char)c;
        } else {
            out[o++] = '%';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 0xf];
        }
    }
    out[o] = '\0';
    return (int)o;
}

/* A growing text in a fixed buffer; overflow is sticky and checked once. */
typedef struct {
    char buf[SIGN_CANONICAL_MAX];
    size_t len;
    bool overflow;
} text;

static void
put(text *t, const char *s, size_t n)
{
    if (t->overflow || n >= sizeof(t->buf) - t->len) {
        t->overflow = true;
        return;
    }
    memcpy(t->buf + t->len, s, n);
    t->len += n;
    t->buf[t->len] = '\0';
}

static void
put_str(text *t, const char *s)
{
    put(t, s, strlen(s));
}

static void
put_encoded(text *t, const char *s, size_t n)
{
    char enc[1024];
    int len =
        (n * 3 < sizeof(enc)) ? sign_uri_encode(s, n, enc, sizeof(enc)) : -1;

    if (len < 0) {
        t->overflow = true;
        return;
    }
    put(t, enc, (size_t)len);
}

/* Canonical URI: each '/'-separated segment encoded, ending with '/'. */
static void
put_canonical_uri(text *t, const char *path)
{
    const char *seg = path;

    for (;;) {
        size_t n = strcspn(seg, "/");

        put_encoded(t, seg, n);
        if (seg[n] == '\0') {
            break;
        }
        put(t, "/", 1);
        seg += n + 1;
    }
    if (t->len == 0 || t->buf[t->len - 1] != '/') {
        put(t, "/", 1);
    }
}

typedef struct {
    const char *key;
    size_t key_len;
    const char *value;
    size_t value_len;
} query_pair;

static int
compare_pairs(const void *a, const void *b)
{
    const query_pair *x = a;
    const query_pair *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);

    if (c != 0) {
        return c;
    }
    if (x->key_len != y->key_len) {
        return x->key_len < y->key_len ? -1 : 1;
    }
    n = x->value_len < y->value_len ? x->value_len : y->value_len;
    c = memcmp(x->value, y->value, n);
    return c != 0 ? c : (int)x->value_len - (int)y->value_len;
}

/* Canonical query: pairs sorted by key then value, each side encoded.
 * recgate itself never sends a query; this is here for completeness of
 * the algorithm and is covered by the unit tests. */
static void
put_canonical_query(text *t, const char *query)
{
    query_pair pairs[32];
    size_t n = 0;
    const char *p = query;

    while (p != NULL && *p != '\0' && n < 32) {
        size_t len = strcspn(p, "&");
        const char *eq = memchr(p, '=', len);

        pairs[n].key = p;
        pairs[n].key_len = eq ? (size_t)(eq - p) : len;
        pairs[n].value = eq ? eq + 1 : p + len;
        pairs[n].value_len = eq ? len - pairs[n].key_len - 1 : 0;
        n++;
        p += len;
        p += (*p == '&');
    }
    qsort(pairs, n, sizeof(pairs[0]), compare_pairs);

    for (size_t i = 0; i < n; i++) {
        if (i > 0) {
            put(t, "&", 1);
        }
        put_encoded(t, pairs[i].key, pairs[i].key_len);
        put(t, "=", 1);
        put_encoded(t, pairs[i].value, pairs[i].value_len);
    }
}

static int
compare_headers(const void *a, const void *b)
{
    const sign_header *x = a;
    const sign_header *y = b;

    return strcasecmp(x->name, y->name);
}

static void
put_lower(text *t, const char *s)
{
    for (; *s != '\0'; s++) {
        char c = (char)tolower((unsigned char)*s);
        put(t, &c, 1);
    }
}

static void
hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char hex[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 0xf];
    }
    out[2 * n] = '\0';
}

static int
sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    if (EVP_Digest(data, len, md, &md_len, EVP_sha256(), NULL) != 1) {
        return -1;
    }
    hex_encode(md, md_len, out);
    return 0;
}

static const char *
find_header(const sign_header *headers, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(headers[i].name, name) == 0) {
            return headers[i].value;
        }
    }
    return NULL;
}

/* Builds the canonical headers block and the signed header list. */
static void
put_headers(text *canon, text *names, const sign_header *sorted, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        put_lower(canon, sorted[i].name);
        put(canon, ":", 1);
        put_str(canon, sorted[i].value);
        put(canon, "\n", 1);

        if (i > 0) {
            put(names, ";", 1);
        }
        put_lower(names, sorted[i].name);
    }
}

int
sign_request(const char *ak, const char *sk, const char *method,
             const char *path, const char *query, const sign_header *headers,
             size_t n, const void *body, size_t body_len, char *out,
             size_t out_size)
{
    sign_header sorted[SIGN_MAX_HEADERS];
    static const char empty[1] = "";
    text canon = {.len = 0};
    text names = {.len = 0};
    text to_sign = {.len = 0};
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    char hash[65];
    char sig[2 * EVP_MAX_MD_SIZE + 1];
    const char *date;
    int len;

    date = find_header(headers, n, "x-sdk-date");
    if (n > SIGN_MAX_HEADERS || date == NULL ||
        find_header(headers, n, "host") == NULL) {
        return -1;
    }
    memcpy(sorted, headers, n * sizeof(headers[0]));
    qsort(sorted, n, sizeof(sorted[0]), compare_headers);

    put_str(&canon, method);
    put(&canon, "\n", 1);
    put_canonical_uri(&canon, path);
    put(&canon, "\n", 1);
    put_canonical_query(&canon, query);
    put(&canon, "\n", 1);
    put_headers(&canon, &names, sorted, n);
    put(&canon, "\n", 1);
    put_str(&canon, names.buf);
    put(&canon, "\n", 1);
    if (sha256_hex(body ? body : empty, body ? body_len : 0, hash) != 0) {
        return -1;
    }
    put_str(&canon, hash);
    if (canon.overflow || names.overflow) {
        return -1;
    }

    if (sha256_hex(canon.buf, canon.len, hash) != 0) {
        return -1;
    }
    put_str(&to_sign, SIGN_ALGORITHM "\n");
    put_str(&to_sign, date);
    put(&to_sign, "\n", 1);
    put_str(&to_sign, hash);

    if (HMAC(EVP_sha256(), sk, (int)strlen(sk),
             (const unsigned char *)to_sign.buf, to_sign.len, mac,
             &mac_len) == NULL) {
        return -1;
    }
    hex_encode(mac, mac_len, sig);
    OPENSSL_cleanse(mac, sizeof(mac));

    len = snprintf(out, out_size,
                   SIGN_ALGORITHM " Access=%s, SignedHeaders=%s, Signature=%s",
                   ak, names.buf, sig);
    return (len < 0 || (size_t)len >= out_size) ? -1 : 0;
}
