/* bare_evhttp.c - the ceiling of the library: a single-threaded libevent
 * evhttp server that answers every request with one fixed JSON body held
 * in memory. The benchmark (tests/bench/run.sh) measures it beside
 * recgate, which runs on the same evhttp front end.
 *
 *   bare_evhttp PORT [BODY_FILE [--changelist]]
 *
 * Listens on 127.0.0.1:PORT. BODY_FILE (read once at start) is the body;
 * without it, a built-in record of about 1.3 KB. Every answer has one
 * header of its own, Content-Type (evhttp adds Date and Content-Length).
 * With --changelist the event loop uses libevent's epoll change list, as
 * recgate's does (EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST): without it, this
 * is the library with its defaults; with it, the library as recgate
 * configures it. SIGTERM or SIGINT stops it.
 * SPDX-License-Identifier: MIT
 */
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *body;
static size_t body_len;

static const char default_body[] =
    "{\"id\":\"rec-0000\",\"script_id\":\"3f1c2b7e-0000-4a6b-8c9d-0e1f2a3b4c5d\","
    "\"script_name\":\"bench-script\",\"script_task_id\":\"task-bench-0000\","
    "\"resource_id\":\"9d8e7f60-5a4b-4c3d-a2e1-f0e9d8c7b6a5\","
    "\"resource_name\":\"desktop-bench-0000\",\"resource_type\":\"DESKTOP\","
    "\"start_time\":\"2025-03-01T08:00:00.000Z\","
    "\"end_time\":\"2025-03-01T08:00:07.250Z\",\"status\":\"SUCCESS\","
    "\"execute_order\":0,\"command_content\":\"Get-ChildItem C:\\\\Users "
    "-Recurse | Measure-Object -Property Length -Sum\","
    "\"command_type\":\"POWERSHELL\",\"result_code\":\"0\",\"reason\":null,"
    "\"output\":\"Count    : 48213\\r\\nAverage  :\\r\\nSum      : "
    "59874336768\\r\\nMaximum  :\\r\\nMinimum  :\\r\\nProperty : Length"
    "\\r\\n................................................................"
    "................................................................"
    "................................................................"
    "................................................................"
    "................................................................"
    "................................................................"
    "................................................................"
    "................................................................"
    "................................................................"
    "................................................................"
    "................................................................"
    "........................................................\"}";


static int
load_body(const char *path)
{
    FILE *f;
    long n;

    if (path == NULL) {
        body = (char *)default_body;
        body_len = sizeof(default_body) - 1;
        return 0;
    }
    f = fopen(path, "rb");
    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0
        || fseek(f, 0, SEEK_SET) != 0) {
        perror(path);
        if (f != NULL) {
            fclose(f);
        }
        return -1;
    }
    body = malloc((size_t)n + 1);
    if (body == NULL || fread(body, 1, (size_t)n, f) != (size_t)n) {
        fprintf(stderr, "%s: cannot read\n", path);
        fclose(f);
        return -1;
    }
    fclose(f);
    body_len = (size_t)n;
    return 0;
}


static void
on_request(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = evbuffer_new();

    (void)arg;
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "application/json");
    /* The body is never copied: the buffer refers to the one in memory. */
    evbuffer_add_reference(out, body, body_len, NULL, NULL);
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}


static struct event_base *
new_base(int changelist)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (cfg == NULL) {
        return NULL;
    }
    if (changelist) {
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    }
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}


static void
on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopexit(arg, NULL);
}


int
main(int argc, char **argv)
{
    struct event_base *base;
    struct evhttp *http;
    struct event *term;
    struct event *intr;
    struct evconnlistener *lev;
    struct sockaddr_in sin;
    int port;

    if (argc < 2 || argc > 4 || (port = atoi(argv[1])) <= 0 || port > 65535
        || (argc == 4 && strcmp(argv[3], "--changelist") != 0)) {
        fprintf(stderr, "usage: bare_evhttp PORT [BODY_FILE "
                        "[--changelist]]\n");
        return 2;
    }
    if (load_body(argc >= 3 ? argv[2] : NULL) != 0) {
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);

    base = new_base(argc == 4);
    if (base == NULL) {
        fprintf(stderr, "bare_evhttp: cannot make an event loop\n");
        return 1;
    }
    http = evhttp_new(base);
    evhttp_set_gencb(http, on_request, NULL);
    /* The same idle timeout as recgate's front end. */
    evhttp_set_timeout(http, 30);
    /* The same listen backlog as recgate's front end. */
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    lev = evconnlistener_new_bind(base, NULL, NULL,
                                  LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE
                                      | LEV_OPT_CLOSE_ON_EXEC,
                                  1024, (struct sockaddr *)&sin, sizeof(sin));
    if (lev == NULL || evhttp_bind_listener(http, lev) == NULL) {
        fprintf(stderr, "bare_evhttp: cannot listen on 127.0.0.1:%d\n", port);
        return 1;
    }
    term = evsignal_new(base, SIGTERM, on_signal, base);
    intr = evsignal_new(base, SIGINT, on_signal, base);
    evsignal_add(term, NULL);
    evsignal_add(intr, NULL);
    fprintf(stderr, "bare_evhttp: listening on 127.0.0.1:%d, body %zu bytes\n",
            port, body_len);

    event_base_dispatch(base);

    event_free(term);
    event_free(intr);
    evhttp_free(http);
    event_base_free(base);
    if (body != default_body) {
        free(body);
    }
    return 0;
}
