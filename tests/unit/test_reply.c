/* test_reply.c - answers as a client reads them off the wire: header
 * lines in the status line, their fallback to ordinary headers, framing
 * for HEAD and 304, Connection, and the JSON error shape.
 * SPDX-License-Identifier: MIT
 *
 * A real evhttp server runs in this thread; a plain socket talks to it
 * and the loop is turned by hand between reads, so the bytes asserted on
 * are exactly what a client receives.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <fcntl.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "recgate/reply.h"

#define REQUEST_ID "0123456789abcdef0123456789abcdef"
#define ETAG "\"00112233445566778899aabbccddeeff\""
#define BODY "{\"record_id\":\"rec-1\",\"output\":\"hello\"}"
#define LONG_LEN 1100
#define WAIT_MS 2000

/* The lines a record answer carries, as they must arrive. */
#define LINES                                                              \
    "Content-Type: application/json\r\n"                                   \
    "X-Request-Id: " REQUEST_ID "\r\n"                                     \
    "X-Cache: HIT\r\n"                                                     \
    "Cache-Control: max-age=60\r\n"                                        \
    "ETag: " ETAG "\r\n"

static const char *const line_names[] = {
    "Content-Type", "X-Request-Id", "X-Cache", "Cache-Control", "ETag",
};

/* Values that would end the header early and start one of their own. */
static const struct {
    const char *path;
    const char *id;
} hostile[] = {
    {"/crlf", "id\r\nSet-Cookie: x=1"},
    {"/lf", "id\nSet-Cookie: x=1"},
    {"/cr", "id\rSet-Cookie: x=1"},
};

typedef struct {
    struct event_base *base;
    struct evhttp *http;
    int port;
} server;

typedef struct {
    int fd;
    char buf[16384];
    size_t len;
    bool eof;
} client;

/* One answer within a client's bytes: offsets of its status line, its
 * body (just past the blank line) and its end. */
typedef struct {
    size_t start;
    size_t body;
    size_t end;
} answer;

/* --- the server --------------------------------------------------------- */

static const char *
long_value(void)
{
    static char value[LONG_LEN + 1];

    memset(value, 'a', LONG_LEN);
    value[LONG_LEN] = '\0';
    return value;
}

/* A record answer with recgate's set of lines and request id id. */
static void
send_record(struct evhttp_request *req, int status, bool last, const char *id)
{
    reply_lines lines = {.n = 0};

    reply_lines_add(&lines, "Content-Type", "application/json");
    reply_lines_add(&lines, "X-Request-Id", id);
    reply_lines_add(&lines, "X-Cache", "HIT");
    reply_lines_add(&lines, "Cache-Control", "max-age=60");
    reply_lines_add(&lines, "ETag", ETAG);
    reply_send_lines(req, status, last, &lines);
}

static void
handle(struct evhttp_request *req, void *arg)
{
    const char *uri = evhttp_request_get_uri(req);

    (void)arg;
    if (strcmp(uri, "/error") == 0) {
        reply_set_error(req, REPLY_NOT_FOUND, "no such record", REQUEST_ID);
        reply_send(req, 404, false);
        return;
    }

    /* Every other answer has a body, even the 304: reply.c must drop it
     * where none may go. */
    evbuffer_add(evhttp_request_get_output_buffer(req), BODY, strlen(BODY));
    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        if (strcmp(uri, hostile[i].path) == 0) {
            send_record(req, 200, false, hostile[i].id);
            return;
        }
    }
    if (strcmp(uri, "/bad-name") == 0) {
        reply_lines lines = {.n = 0};

        reply_lines_add(&lines, "X-A\r\nSet-Cookie", "x=1");
        reply_lines_add(&lines, "ETag", ETAG);
        reply_send_lines(req, 200, false, &lines);
    } else if (strcmp(uri, "/not-modified") == 0) {
        send_record(req, 304, false, REQUEST_ID);
    } else if (strcmp(uri, "/last") == 0) {
        send_record(req, 200, true, REQUEST_ID);
    } else if (strcmp(uri, "/long") == 0) {
        send_record(req, 200, false, long_value());
    } else {
        send_record(req, 200, false, REQUEST_ID);
    }
}

static int
start_server(void **state)
{
    server *s = calloc(1, sizeof(*s));
    struct evhttp_bound_socket *bound;
    struct sockaddr_in addr;
    socklen_t addr_len = sizeof(addr);

    if (s == NULL) {
        return -1;
    }
    s->base = event_base_new();
    s->http = s->base ? evhttp_new(s->base) : NULL;
    if (s->http == NULL) {
        return -1;
    }
    /* As recgate's server does: evhttp would add its own Content-Type to
     * every answer that has a body. */
    evhttp_set_default_content_type(s->http, NULL);
    evhttp_set_gencb(s->http, handle, NULL);

    bound = evhttp_bind_socket_with_handle(s->http, "127.0.0.1", 0);
    if (bound == NULL ||
        getsockname(evhttp_bound_socket_get_fd(bound),
                    (struct sockaddr *)&addr, &addr_len) != 0) {
        return -1;
    }
    s->port = ntohs(addr.sin_port);
    *state = s;
    return 0;
}

/* evhttp_free also frees the bound socket and any connection left. */
static int
stop_server(void **state)
{
    server *s = *state;

    evhttp_free(s->http);
    event_base_free(s->base);
    free(s);
    return 0;
}

/* --- the client --------------------------------------------------------- */

static void
client_send(client *c, const char *request)
{
    size_t len = strlen(request);

    assert_int_equal(send(c->fd, request, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* Connects (to loopback a blocking connect returns at once, accepted or
 * not), sends request, and leaves the socket non-blocking for reads. */
static void
client_open(client *c, const server *s, const char *request)
{
    struct sockaddr_in addr;

    memset(&addr, 0, sizeof(addr));
    addr.sin_family = AF_INET;
    addr.sin_port = htons((uint16_t)s->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);

    c->len = 0;
    c->buf[0] = '\0';
    c->eof = false;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(c->fd >= 0);
    assert_int_equal(connect(c->fd, (struct sockaddr *)&addr, sizeof(addr)),
                     0);
    client_send(c, request);
    assert_int_equal(fcntl(c->fd, F_SETFL, O_NONBLOCK), 0);
}

static void
client_close(client *c)
{
    close(c->fd);
}

static int64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Turns the server's loop once, then takes what the client can read.
 * The short poll keeps the wait from spinning. */
static void
pump(const server *s, client *c)
{
    struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
    ssize_t n;

    event_base_loop(s->base, EVLOOP_NONBLOCK);
    if (poll(&pfd, 1, 1) <= 0) {
        return;
    }
    /* A full buffer would read as end of file. */
    assert_true(c->len < sizeof(c->buf) - 1);
    n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len, 0);
    if (n > 0) {
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
        c->eof = true;
    }
}

/* The value of the Content-Length among the headers in [p, end), or -1
 * when there is none. */
static long
content_length(const char *p, const char *end)
{
    static const char name[] = "\r\nContent-Length:";

    for (; p + sizeof(name) - 1 < end; p++) {
        if (strncasecmp(p, name, sizeof(name) - 1) == 0) {
            return strtol(p + sizeof(name) - 1, NULL, 10);
        }
    }
    return -1;
}

/* Fills a with the answer at start once all of it is in: its headers,
 * then Content-Length bytes of body unless head_only (HEAD) or there is
 * no Content-Length (304). */
static bool
answer_in(const client *c, size_t start, bool head_only, answer *a)
{
    const char *head = c->buf + start;
    const char *blank = strstr(head, "\r\n\r\n");
    long body_len;

    if (blank == NULL) {
        return false;
    }
    a->start = start;
    a->body = (size_t)(blank + 4 - c->buf);
    body_len = head_only ? -1 : content_length(head, blank + 2);
    a->end = a->body + (body_len > 0 ? (size_t)body_len : 0);
    return a->end <= c->len;
}

/* Waits up to WAIT_MS for the answer at start; fails the test without
 * it. */
static answer
await_answer(const server *s, client *c, size_t start, bool head_only)
{
    int64_t deadline = now_ms() + WAIT_MS;
    answer a;

    while (!answer_in(c, start, head_only, &a)) {
        if (c->eof || now_ms() > deadline) {
            fail_msg("no whole answer at %zu; got:\n%s", start, c->buf);
        }
        pump(s, c);
    }
    return a;
}

static bool
await_eof(const server *s, client *c)
{
    int64_t deadline = now_ms() + WAIT_MS;

    while (!c->eof && now_ms() <= deadline) {
        pump(s, c);
    }
    return c->eof;
}

/* --- reading answers ---------------------------------------------------- */

static bool
starts_with(const client *c, const answer *a, const char *text)
{
    return strncmp(c->buf + a->start, text, strlen(text)) == 0;
}

/* Calls fn on each header line of a (not the status line), as a
 * pointer and a length without the line break. */
static void
each_header(const client *c, const answer *a,
            void (*fn)(const char *line, size_t len, void *arg), void *arg)
{
    const char *p = strstr(c->buf + a->start, "\r\n") + 2;
    const char *end = c->buf + a->body - 2;

    while (p < end) {
        const char *eol = strstr(p, "\r\n");

        fn(p, (size_t)(eol - p), arg);
        p = eol + 2;
    }
}

typedef struct {
    const char *name;
    int count;
    char value[LONG_LEN + 64];
} header_query;

static void
match_header(const char *line, size_t len, void *arg)
{
    header_query *q = arg;
    size_t n = strlen(q->name);

    if (len > n && strncasecmp(line, q->name, n) == 0 && line[n] == ':') {
        /* Keep the first value, past ": ". */
        if (q->count++ == 0 && len - n - 2 < sizeof(q->value)) {
            memcpy(q->value, line + n + 2, len - n - 2);
            q->value[len - n - 2] = '\0';
        }
    }
}

/* How many header lines of a are called name, in any case; the first
 * one's value goes to q->value. */
static int
find_header(const client *c, const answer *a, const char *name,
            header_query *q)
{
    q->name = name;
    q->count = 0;
    q->value[0] = '\0';
    each_header(c, a, match_header, q);
    return q->count;
}

static int
count_header(const client *c, const answer *a, const char *name)
{
    header_query q;

    return find_header(c, a, name, &q);
}

static void
assert_header(const client *c, const answer *a, const char *name,
              const char *value)
{
    header_query q;

    assert_int_equal(find_header(c, a, name, &q), 1);
    assert_string_equal(q.value, value);
}

static void
assert_length(const client *c, const answer *a, size_t len)
{
    char digits[24];

    snprintf(digits, sizeof(digits), "%zu", len);
    assert_header(c, a, "Content-Length", digits);
}

static void
assert_body(const client *c, const answer *a, const char *body)
{
    assert_length(c, a, strlen(body));
    assert_int_equal(a->end - a->body, strlen(body));
    assert_memory_equal(c->buf + a->body, body, strlen(body));
}

/* Every record line once, whatever path it took, and evhttp's Date
 * once beside them. */
static void
assert_record_headers(const client *c, const answer *a)
{
    for (size_t i = 0; i < sizeof(line_names) / sizeof(line_names[0]); i++) {
        if (count_header(c, a, line_names[i]) != 1) {
            fail_msg("%s is not there once:\n%s", line_names[i], c->buf);
        }
    }
    assert_int_equal(count_header(c, a, "Date"), 1);
}

/* --- tests -------------------------------------------------------------- */

static void
test_lines_follow_the_status_line(void **state)
{
    server *s = *state;
    client c;
    answer a;

    client_open(&c, s, "GET /record HTTP/1.1\r\nHost: test\r\n\r\n");
    a = await_answer(s, &c, 0, false);

    assert_true(starts_with(&c, &a, "HTTP/1.1 200 OK\r\n" LINES));
    assert_record_headers(&c, &a);
    assert_body(&c, &a, BODY);
    /* evhttp adds none of its own. */
    assert_int_equal(count_header(&c, &a, "Connection"), 0);
    assert_int_equal(c.len, a.end);
    client_close(&c);
}

/* A HEAD answer has GET's length and no body bytes: the next answer on
 * the connection starts right after its blank line. */
static void
test_head_has_get_length_and_no_body(void **state)
{
    server *s = *state;
    client c;
    answer head;
    answer next;

    client_open(&c, s, "HEAD /record HTTP/1.1\r\nHost: test\r\n\r\n");
    head = await_answer(s, &c, 0, true);
    assert_true(starts_with(&c, &head, "HTTP/1.1 200 OK\r\n" LINES));
    assert_record_headers(&c, &head);
    assert_length(&c, &head, strlen(BODY));

    client_send(&c, "GET /record HTTP/1.1\r\nHost: test\r\n\r\n");
    next = await_answer(s, &c, head.end, false);
    assert_true(starts_with(&c, &next, "HTTP/1.1 200 OK\r\n" LINES));
    assert_body(&c, &next, BODY);
    client_close(&c);
}

/* 304 has no body: reply.c sends no Content-Length for it and drops
 * the body the handler put in. */
static void
test_not_modified_has_lines_and_no_body(void **state)
{
    server *s = *state;
    client c;
    answer a;
    answer next;

    client_open(&c, s, "GET /not-modified HTTP/1.1\r\nHost: test\r\n\r\n");
    a = await_answer(s, &c, 0, false);
    assert_true(starts_with(&c, &a, "HTTP/1.1 304 Not Modified\r\n" LINES));
    assert_record_headers(&c, &a);
    assert_int_equal(count_header(&c, &a, "Content-Length"), 0);

    client_send(&c, "GET /record HTTP/1.1\r\nHost: test\r\n\r\n");
    next = await_answer(s, &c, a.end, false);
    assert_true(starts_with(&c, &next, "HTTP/1.1 200 OK\r\n"));
    assert_body(&c, &next, BODY);
    client_close(&c);
}

/* A line break in a value sends the lines to evhttp, which drops that
 * one header; the others arrive as ordinary headers, in order. */
static void
test_line_break_in_a_value_cannot_add_a_header(void **state)
{
    server *s = *state;

    for (size_t i = 0; i < sizeof(hostile) / sizeof(hostile[0]); i++) {
        char request[128];
        client c;
        answer a;

        snprintf(request, sizeof(request),
                 "GET %s HTTP/1.1\r\nHost: test\r\n\r\n", hostile[i].path);
        client_open(&c, s, request);
        a = await_answer(s, &c, 0, false);

        if (strstr(c.buf, "Set-Cookie") != NULL) {
            fail_msg("%s let a header in:\n%s", hostile[i].path, c.buf);
        }
        assert_true(starts_with(&c, &a,
                                "HTTP/1.1 200 OK\r\n"
                                "Content-Type: application/json\r\n"
                                "X-Cache: HIT\r\n"));
        assert_int_equal(count_header(&c, &a, "X-Request-Id"), 0);
        assert_int_equal(count_header(&c, &a, "Content-Type"), 1);
        assert_int_equal(count_header(&c, &a, "X-Cache"), 1);
        assert_int_equal(count_header(&c, &a, "Cache-Control"), 1);
        assert_header(&c, &a, "ETag", ETAG);
        assert_int_equal(count_header(&c, &a, "Date"), 1);
        assert_body(&c, &a, BODY);
        assert_int_equal(c.len, a.end);
        client_close(&c);
    }
}

/* Lines too long for the status line go as ordinary headers, whole. */
static void
test_long_lines_fall_back_to_headers(void **state)
{
    server *s = *state;
    client c;
    answer a;

    client_open(&c, s, "GET /long HTTP/1.1\r\nHost: test\r\n\r\n");
    a = await_answer(s, &c, 0, false);

    assert_true(starts_with(&c, &a,
                            "HTTP/1.1 200 OK\r\n"
                            "Content-Type: application/json\r\n"
                            "X-Request-Id: aaa"));
    assert_header(&c, &a, "X-Request-Id", long_value());
    assert_record_headers(&c, &a);
    assert_body(&c, &a, BODY);
    client_close(&c);
}

static void
test_last_answer_closes_the_connection(void **state)
{
    server *s = *state;
    client c;
    answer a;

    client_open(&c, s, "GET /last HTTP/1.1\r\nHost: test\r\n\r\n");
    a = await_answer(s, &c, 0, false);

    assert_true(starts_with(&c, &a, "HTTP/1.1 200 OK\r\n" LINES));
    assert_record_headers(&c, &a);
    assert_header(&c, &a, "Connection", "close");
    assert_body(&c, &a, BODY);
    assert_true(await_eof(s, &c));
    assert_int_equal(c.len, a.end);
    client_close(&c);
}

/* An HTTP/1.0 client that asks to keep the connection is told so, and
 * can send its next request on it. */
static void
test_http10_keep_alive_is_kept(void **state)
{
    static const char request[] =
        "GET /record HTTP/1.0\r\nConnection: keep-alive\r\n\r\n";
    server *s = *state;
    client c;
    answer a;
    answer next;

    client_open(&c, s, request);
    a = await_answer(s, &c, 0, false);
    assert_true(starts_with(&c, &a, "HTTP/1.0 200 OK\r\n" LINES));
    assert_record_headers(&c, &a);
    assert_header(&c, &a, "Connection", "keep-alive");
    assert_body(&c, &a, BODY);

    client_send(&c, request);
    next = await_answer(s, &c, a.end, false);
    assert_true(starts_with(&c, &next, "HTTP/1.0 200 OK\r\n" LINES));
    assert_body(&c, &next, BODY);
    client_close(&c);
}

/* A name that would end its line early never gets there either. */
static void
test_line_break_in_a_name_cannot_add_a_header(void **state)
{
    server *s = *state;
    client c;
    answer a;

    client_open(&c, s, "GET /bad-name HTTP/1.1\r\nHost: test\r\n\r\n");
    a = await_answer(s, &c, 0, false);

    if (strstr(c.buf, "Set-Cookie") != NULL) {
        fail_msg("a header name let a header in:\n%s", c.buf);
    }
    assert_true(starts_with(&c, &a, "HTTP/1.1 200 OK\r\n"));
    assert_header(&c, &a, "ETag", ETAG);
    assert_body(&c, &a, BODY);
    client_close(&c);
}

/* The last answer to an HTTP/1.0 client that asked for keep-alive says
 * close, once, and nothing else about the connection. */
static void
test_http10_keep_alive_last_says_close_once(void **state)
{
    server *s = *state;
    client c;
    answer a;

    client_open(&c, s,
                "GET /last HTTP/1.0\r\nConnection: keep-alive\r\n\r\n");
    a = await_answer(s, &c, 0, false);

    assert_true(starts_with(&c, &a, "HTTP/1.0 200 OK\r\n" LINES));
    assert_header(&c, &a, "Connection", "close");
    assert_body(&c, &a, BODY);
    assert_true(await_eof(s, &c));
    client_close(&c);
}

static void
test_error_is_json_with_common_headers(void **state)
{
    server *s = *state;
    client c;
    answer a;
    json_t *body;

    client_open(&c, s, "GET /error HTTP/1.1\r\nHost: test\r\n\r\n");
    a = await_answer(s, &c, 0, false);

    assert_true(starts_with(&c, &a, "HTTP/1.1 404 Not Found\r\n"));
    assert_header(&c, &a, "Content-Type", "application/json");
    assert_header(&c, &a, "X-Request-Id", REQUEST_ID);
    assert_int_equal(count_header(&c, &a, "Date"), 1);

    body = json_loadb(c.buf + a.body, a.end - a.body, 0, NULL);
    if (body == NULL) {
        fail_msg("the error body is not JSON:\n%s", c.buf);
    }
    assert_string_equal(
        json_string_value(json_object_get(body, "error_code")),
        REPLY_NOT_FOUND);
    assert_string_equal(
        json_string_value(json_object_get(body, "request_id")), REQUEST_ID);
    assert_string_equal(json_string_value(json_object_get(body, "error_msg")),
                        "no such record");
    json_decref(body);
    assert_length(&c, &a, a.end - a.body);
    client_close(&c);
}

/* The callers add a fixed set; one too many is dropped, not written
 * past the arrays. */
static void
test_lines_beyond_the_max_are_dropped(void **state)
{
    reply_lines lines = {.n = 0};

    (void)state;
    for (int i = 0; i <= REPLY_LINES_MAX; i++) {
        reply_lines_add(&lines, "X-N", "v");
    }
    reply_lines_add(&lines, "X-Last", "v");
    assert_int_equal(lines.n, REPLY_LINES_MAX);
    assert_string_equal(lines.name[REPLY_LINES_MAX - 1], "X-N");
}

#define WITH_SERVER(fn) cmocka_unit_test_setup_teardown(fn, start_server, \
                                                        stop_server)

int
main(void)
{
    const struct CMUnitTest tests[] = {
        WITH_SERVER(test_lines_follow_the_status_line),
        WITH_SERVER(test_head_has_get_length_and_no_body),
        WITH_SERVER(test_not_modified_has_lines_and_no_body),
        WITH_SERVER(test_line_break_in_a_value_cannot_add_a_header),
        WITH_SERVER(test_line_break_in_a_name_cannot_add_a_header),
        WITH_SERVER(test_long_lines_fall_back_to_headers),
        WITH_SERVER(test_last_answer_closes_the_connection),
        WITH_SERVER(test_http10_keep_alive_is_kept),
        WITH_SERVER(test_http10_keep_alive_last_says_close_once),
        WITH_SERVER(test_error_is_json_with_common_headers),
        cmocka_unit_test(test_lines_beyond_the_max_are_dropped),
    };

    /* A client gone early must not kill the test with SIGPIPE while
     * evhttp writes to it. */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
