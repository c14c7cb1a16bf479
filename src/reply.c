/* reply.c - answers to clients: framing, request ids, and errors in the
 * cloud's JSON shape.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/reply.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <unistd.h>

static const char hex[] = "0123456789abcdef";

/* --- request ids -------------------------------------------------------- */

void
reply_ids_seed(reply_ids *ids)
{
    if (RAND_bytes((unsigned char *)ids->state, sizeof(ids->state)) != 1) {
        ids->state[0] = (uint64_t)getpid() * 0x9e3779b97f4a7c15ull;
    }
    /* xorshift must never start from all zeros. */
    ids->state[1] |= 1;
}

static uint64_t
next_random(uint64_t state[2])
{
    uint64_t a = state[0];
    uint64_t b = state[1];

    state[0] = b;
    a ^= a << 23;
    a ^= a >> 17;
    a ^= b ^ (b >> 26);
    state[1] = a;
    return a + b;
}

void
reply_new_id(reply_ids *ids, char *out)
{
    uint64_t r[2];

    r[0] = next_random(ids->state);
    r[1] = next_random(ids->state);
    for (int i = 0; i < REPLY_ID_LEN; i++) {
        out[i] = hex[(r[i / 16] >> (4 * (i % 16))) & 0xf];
    }
    out[REPLY_ID_LEN] = '\0';
}

/* --- entity tags -------------------------------------------------------- */

void
reply_etag(const char *body, size_t len, char *out)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int md_len = 0;

    EVP_Digest(body, len, md, &md_len, EVP_sha256(), NULL);
    out[0] = '"';
    for (int i = 0; i < 16; i++) {
        out[1 + 2 * i] = hex[md[i] >> 4];
        out[2 + 2 * i] = hex[md[i] & 0xf];
    }
    out[33] = '"';
    out[34] = '\0';
}

bool
reply_etag_matches(const char *if_none_match, const char *etag)
{
    size_t etag_len = strlen(etag);
    const char *p = if_none_match;

    while (*p != '\0') {
        size_t n;

        p += strspn(p, " \t,");
        if (strncmp(p, "W/", 2) == 0) {
            p += 2;
        }
        if (*p == '*') {
            return true;
        }
        n = strcspn(p, ",");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t')) {
            n--;
        }
        if (n == etag_len && memcmp(p, etag, n) == 0) {
            return true;
        }
        p += strcspn(p, ",");
    }
    return false;
}

/* --- answers ----------------------------------------------------------- */

static void add_as_headers(struct evhttp_request *req,
                           const reply_lines *lines);

void
reply_lines_common(reply_lines *lines, const char *request_id)
{
    reply_lines_add(lines, "Content-Type", "application/json");
    reply_lines_add(lines, "X-Request-Id", request_id);
}

void
reply_common_headers(struct evhttp_request *req, const char *request_id)
{
    reply_lines lines = {.n = 0};

    reply_lines_common(&lines, request_id);
    add_as_headers(req, &lines);
}

static const char *
reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Error";
    }
}

void
reply_set_error(struct evhttp_request *req, const char *code, const char *msg,
                const char *request_id)
{
    struct evbuffer *body = evhttp_request_get_output_buffer(req);
    json_t *obj;
    char *text;

    obj = json_pack("{s:s, s:s, s:s}", "error_code", code, "error_msg", msg,
                    "request_id", request_id);
    text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    if (text != NULL) {
        evbuffer_add(body, text, strlen(text));
    } else {
        evbuffer_add_printf(body, "{\"error_code\":\"%s\"}", code);
    }
    free(text);
    json_decref(obj);

    reply_common_headers(req, request_id);
}

/* 1xx, 204 and 304 answers never have a body, whatever the method. */
static bool
status_has_body(int status)
{
    return status >= 200 && status != 204 && status != 304;
}

/* Decimal digits of n and a NUL into out (at least 21 bytes): no printf
 * on the hit path. */
static const char *
format_size(size_t n, char *out, size_t size)
{
    char *p = out + size - 1;

    *p = '\0';
    do {
        *--p = (char)('0' + n % 10);
        n /= 10;
    } while (n > 0);
    return p;
}

/* evhttp never closes a CONNECT's connection itself, not even after
 * Connection: close (it keeps it for a tunnel). Once the answer has gone
 * to the kernel, shutting the socket makes evhttp read end of file and
 * free the connection; the client reads the answer, then end of file. */
static void
shut_after_answer(struct evhttp_request *req, void *arg)
{
    struct evhttp_connection *evcon = evhttp_request_get_connection(req);
    evutil_socket_t fd = -1;

    (void)arg;
    if (evcon != NULL) {
        fd = bufferevent_getfd(evhttp_connection_get_bufferevent(evcon));
    }
    if (fd >= 0) {
        shutdown(fd, SHUT_RDWR);
    }
}

/* The Date header's value (IMF-fixdate), made once a second: it is the
 * same for every answer within it. */
static const char *
http_date(void)
{
    static char text[40];
    static time_t made_at = -1;
    time_t now = time(NULL);
    struct tm tm;

    if (now != made_at && gmtime_r(&now, &tm) != NULL) {
        strftime(text, sizeof(text), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        made_at = now;
    }
    return text;
}

/* --- header lines -------------------------------------------------------- */

/* The status line's text with a record answer's lines is about 220
 * bytes. */
#define STATUS_TEXT_MAX 1024

void
reply_lines_add(reply_lines *lines, const char *name, const char *value)
{
    if (lines->n < REPLY_LINES_MAX) {
        lines->name[lines->n] = name;
        lines->value[lines->n] = value;
        lines->n++;
    }
}

/* A header value may hold tabs and visible bytes, not control ones. */
static bool
header_value_ok(const char *value, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)value[i];

        if ((c < 0x20 && c != '\t') || c == 0x7f) {
            return false;
        }
    }
    return true;
}

/* A header name is a token: visible bytes, no colon. */
static bool
header_name_ok(const char *name, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];

        if (c <= 0x20 || c >= 0x7f || c == ':') {
            return false;
        }
    }
    return len > 0;
}

/* Appends "\r\nname: value"; false when the name or the value may not be
 * in a header, or the line does not fit. */
static bool
append_line(char *text, size_t *len, const char *name, const char *value)
{
    size_t name_len = strlen(name);
    size_t value_len = strlen(value);

    if (*len + 4 + name_len + value_len >= STATUS_TEXT_MAX ||
        !header_name_ok(name, name_len) ||
        !header_value_ok(value, value_len)) {
        return false;
    }
    memcpy(text + *len, "\r\n", 2);
    memcpy(text + *len + 2, name, name_len);
    memcpy(text + *len + 2 + name_len, ": ", 2);
    memcpy(text + *len + 4 + name_len, value, value_len);
    *len += 4 + name_len + value_len;
    return true;
}

/* The status line's text: the reason phrase, then the lines, each after
 * a line break, the last without one (evhttp ends the line). NULL when
 * a line cannot go there. */
static const char *
status_text(int status, const reply_lines *lines, char *text)
{
    const char *reason = reason_phrase(status);
    size_t len = strlen(reason);

    memcpy(text, reason, len);
    for (int i = 0; i < lines->n; i++) {
        if (!append_line(text, &len, lines->name[i], lines->value[i])) {
            return NULL;
        }
    }
    text[len] = '\0';
    return text;
}

static void
add_as_headers(struct evhttp_request *req, const reply_lines *lines)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);

    for (int i = 0; i < lines->n; i++) {
        evhttp_add_header(out, lines->name[i], lines->value[i]);
    }
}

/* --- sending ------------------------------------------------------------ */

/* Date, Content-Length and Connection, and the body as the method and
 * status need it. */
static void
frame(struct evhttp_request *req, int status, bool last)
{
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    struct evbuffer *body = evhttp_request_get_output_buffer(req);
    enum evhttp_cmd_type method = evhttp_request_get_command(req);
    size_t len = evbuffer_get_length(body);
    char digits[24];

    /* evhttp would format the date anew for every answer. */
    evhttp_add_header(out, "Date", http_date());

    /* evhttp adds Content-Length only when it also sends the body, and
     * leaves it out for HEAD and CONNECT: set it here, for all three. */
    if (status_has_body(status)) {
        evhttp_add_header(out, "Content-Length",
                          format_size(len, digits, sizeof(digits)));
    }

    /* evhttp writes the buffer even for HEAD; a kept-alive client would
     * read those bytes as the start of its next answer. */
    if (method == EVHTTP_REQ_HEAD || !status_has_body(status)) {
        evbuffer_drain(body, len);
    }

    /* The connection's last answer: evhttp answers a request that asked
     * for close with Connection: close alone, whatever its HTTP version
     * (an HTTP/1.0 keep-alive request would otherwise get keep-alive
     * beside it), and closes after it. So the request is made to ask. */
    if (last || method == EVHTTP_REQ_CONNECT) {
        struct evkeyvalq *in = evhttp_request_get_input_headers(req);

        evhttp_remove_header(in, "Connection");
        evhttp_add_header(in, "Connection", "close");
        evhttp_remove_header(out, "Connection");
    }

    /* A client that sent CONNECT may take the connection for a tunnel
     * whatever the status says: it ends after this answer. */
    if (method == EVHTTP_REQ_CONNECT) {
        evhttp_request_set_on_complete_cb(req, shut_after_answer, NULL);
    }
}

void
reply_send_lines(struct evhttp_request *req, int status, bool last,
                 const reply_lines *lines)
{
    char text[STATUS_TEXT_MAX];
    const char *status_line = reason_phrase(status);

    if (lines != NULL && lines->n > 0) {
        status_line = status_text(status, lines, text);
        if (status_line == NULL) {
            add_as_headers(req, lines);
            status_line = reason_phrase(status);
        }
    }

    frame(req, status, last);
    evhttp_send_reply(req, status, status_line, NULL);
}

void
reply_send(struct evhttp_request *req, int status, bool last)
{
    reply_send_lines(req, status, last, NULL);
}
