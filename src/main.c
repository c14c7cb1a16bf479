/* main.c - command line, signals and wiring of the recgate process.
 * SPDX-License-Identifier: MIT
 */
#include <event2/event.h>
#include <getopt.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recgate/access.h"
#include "recgate/clock.h"
#include "recgate/config.h"
#include "recgate/listen_probe.h"
#include "recgate/log.h"
#include "recgate/metrics.h"
#include "recgate/selfcheck.h"
#include "recgate/server.h"
#include "recgate/supervisor.h"
#include "recgate/upstream.h"

#define DEFAULT_CONFIG "conf/recgate.conf"

typedef struct {
    const char *config_path;
    int check_only;
} options;

/* What a worker and the supervisor need to run and to reload. */
typedef struct {
    config *cfg;
    const char *config_path;
    server *srv; /* this worker's, once running */
} app;

static void
usage(FILE *out)
{
    fprintf(out,
            "usage: recgate [-c FILE] [--check-config]\n"
            "       recgate --version | --help\n"
            "\n"
            "  -c, --config FILE   INI config file (default %s)\n"
            "  --check-config      validate the config and credentials,\n"
            "                      print the effective settings (secrets\n"
            "                      masked) and exit 0 or 1\n",
            DEFAULT_CONFIG);
}

/* Returns -1 to go on, or the exit status. */
static int
parse_args(int argc, char **argv, options *opt)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'k'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;

    opt->config_path = DEFAULT_CONFIG;
    while ((c = getopt_long(argc, argv, "c:h", longopts, NULL)) != -1) {
        switch (c) {
        case 'c':
            opt->config_path = optarg;
            break;
        case 'k':
            opt->check_only = 1;
            break;
        case 'v':
            printf("recgate %s\n", RECGATE_VERSION);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind != argc) {
        usage(stderr);
        return 2;
    }
    return -1;
}

/* Writes each line a config problem report holds as a JSON log line, so
 * that stderr stays one JSON object per line. */
static void
log_config_problems(char *text)
{
    for (char *line = strtok(text, "\n"); line != NULL;
         line = strtok(NULL, "\n")) {
        log_msg(LOG_ERROR, "invalid configuration", "error", line);
    }
}

/* Reads cfg's tokens file as a start or a reload would; says why into
 * err when it cannot be used. */
static bool
tokens_file_usable(const config *cfg, FILE *err)
{
    char why[512];
    access_list *tokens = access_create(cfg, why, sizeof(why));

    if (tokens == NULL) {
        fprintf(err, "%s\n", why);
    }
    access_destroy(tokens);
    return tokens != NULL;
}

/* A reload that names a tokens file recgate cannot use is refused as a
 * whole: taking the rest would turn tokens on in the config but keep the
 * old list, which may have required none, so the gateway would be open
 * while the config says it is closed. */
static bool
tokens_usable(const char *path, FILE *err)
{
    config *fresh = config_load(path, err);
    bool ok;

    if (fresh == NULL) {
        return true; /* config_reload reports the config's own problems */
    }
    ok = tokens_file_usable(fresh, err);
    config_destroy(fresh);
    return ok;
}

/* Reads the config file again; the live config takes the new values of
 * keys that can change while running. */
static void
reload_config(app *a)
{
    char *problems = NULL;
    size_t size = 0;
    FILE *err = open_memstream(&problems, &size);
    int changed = tokens_usable(a->config_path, err)
                      ? config_reload(a->cfg, a->config_path, err)
                      : -1;

    fclose(err);
    if (changed < 0) {
        log_config_problems(problems);
        log_msg(LOG_ERROR, "reload refused: keeping the running config", "path",
                a->config_path);
    } else {
        log_set_level(a->cfg->log_level);
        log_set_buffer((size_t)a->cfg->log_buffer);
        log_msg(LOG_INFO, "configuration reloaded", "path", a->config_path);
    }
    free(problems);
}

static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    app *a = arg;

    (void)what;
    log_msg(LOG_INFO, "stopping: draining requests in flight", "signal",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server_drain(a->srv);
}

static void
on_reload_signal(evutil_socket_t sig, short what, void *arg)
{
    app *a = arg;

    (void)sig;
    (void)what;
    reload_config(a);
    server_reload(a->srv);
}

static void
on_second(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_flush_suppressed(false);
}

static void
on_log_flush(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    log_flush();
}

/* The worker's event loop. With epoll, libevent's change list folds the
 * several adds and deletes a connection makes in one turn of the loop
 * (stop reading, start writing, and back) into one epoll_ctl, which
 * takes two of the seven system calls of a hit. libevent warns that it
 * is unsafe with descriptors cloned by dup(); recgate clones none, and
 * nothing it links hands libevent one. */
static struct event_base *
new_event_base(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base;

    if (cfg == NULL) {
        return NULL;
    }
    event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    return base;
}

static int
run(app *a)
{
    struct event_base *base = new_event_base();
    struct event *signals[3];
    static const int numbers[3] = {SIGTERM, SIGINT, SIGHUP};
    struct timeval one_second = {1, 0};
    struct event *ticker;
    struct event *flusher;
    struct timeval flush_every;
    char err[512];

    if (base == NULL) {
        log_msg(LOG_ERROR, "cannot start", "error",
                "cannot make an event loop");
        return SUPERVISOR_EXIT_FATAL;
    }

    a->srv = server_create(base, a->cfg, err, sizeof(err));
    if (a->srv == NULL) {
        log_msg(LOG_ERROR, "cannot start", "error", err);
        event_base_free(base);
        return SUPERVISOR_EXIT_FATAL;
    }

    for (int i = 0; i < 3; i++) {
        signals[i] = evsignal_new(
            base, numbers[i],
            numbers[i] == SIGHUP ? on_reload_signal : on_stop_signal, a);
        evsignal_add(signals[i], NULL);
    }
    ticker = event_new(base, -1, EV_PERSIST, on_second, NULL);
    event_add(ticker, &one_second);
    flush_every = clock_tv(a->cfg->log_flush_ms);
    flusher = event_new(base, -1, EV_PERSIST, on_log_flush, NULL);
    event_add(flusher, &flush_every);
    log_set_buffer((size_t)a->cfg->log_buffer);
    log_msg(LOG_INFO, "listening", "listen", a->cfg->listen);

    event_base_dispatch(base);

    event_free(ticker);
    event_free(flusher);
    log_flush_suppressed(true);
    server_destroy(a->srv);
    for (int i = 0; i < 3; i++) {
        event_free(signals[i]);
    }
    event_base_free(base);
    log_msg(LOG_INFO, "stopped", NULL, NULL);
    log_set_buffer(0);
    return 0;
}

/* Refuses to run with a signer that disagrees with Huawei's SDK: every
 * upstream request would fail. */
static int
check_signer(void)
{
    char err[256];
    char count[16];
    int n = selfcheck_signer(err, sizeof(err));

    if (n < 0) {
        log_msg(LOG_ERROR, "signer self-check failed: not starting", "error",
                err);
        return -1;
    }
    snprintf(count, sizeof(count), "%d", n);
    log_msg(LOG_DEBUG, "signer agrees with the SDK's vectors", "vectors",
            count);
    return 0;
}

static int
run_worker(int index, void *arg)
{
    metrics_use_slot(index);
    srand((unsigned)getpid());
    return run(arg);
}

/* The supervisor's copy is what restarted workers start from: keep it
 * current too. */
static void
reload_supervisor(void *arg)
{
    reload_config(arg);
}

/* The workers bind with SO_REUSEPORT, which would let them share the
 * port with another recgate already there: refuse to start instead, once,
 * before any worker exists. A worker the supervisor restarts later does
 * not come through here, as its siblings rightly hold the port. */
static int
check_listen_address(const config *cfg)
{
    char err[512];

    if (listen_probe(cfg->listen_host, cfg->listen_port, cfg->listen, err,
                     sizeof(err)) != 0) {
        log_msg(LOG_ERROR, "cannot start", "error", err);
        return -1;
    }
    return 0;
}

/* One worker runs in this process; more run under a supervising parent.
 */
static int
serve(app *a)
{
    int n = a->cfg->workers_n;

    if (check_listen_address(a->cfg) != 0) {
        return 1;
    }

    if (n == 1) {
        return run(a) == 0 ? 0 : 1;
    }
    if (metrics_init_shared(n) != 0) {
        log_msg(LOG_ERROR, "cannot share metrics between workers", NULL, NULL);
        return 1;
    }
    return supervisor_run(n, run_worker, reload_supervisor, a,
                          &a->cfg->drain_timeout_ms);
}

/* Each connection takes a descriptor: make room for server.max_connections
 * and the upstream and Redis links, as far as the hard limit allows. */
static void
raise_fd_limit(const config *cfg)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)cfg->max_connections + 1024;

    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= want) {
        return;
    }
    rl.rlim_cur = want < rl.rlim_max ? want : rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur < want) {
        log_msg(LOG_WARN,
                "the open-file limit is below "
                "server.max_connections",
                NULL, NULL);
    }
}

/* The files the config names must be usable too, or --check-config would
 * say yes to a gateway that then cannot start: the CA bundle and the
 * tokens file are read as a start reads them. */
static bool
files_usable(const config *cfg)
{
    char err[512];
    bool ok = true;

    if (upstream_check_tls(cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "%s\n", err);
        ok = false;
    }
    return tokens_file_usable(cfg, stderr) && ok;
}

/* --check-config reports problems as plain text for the person running
 * it; a serving gateway reports them as JSON log lines. */
static config *
load_config(const options *opt)
{
    char *problems = NULL;
    size_t size = 0;
    FILE *err;
    config *cfg;

    if (opt->check_only) {
        cfg = config_load(opt->config_path, stderr);
        if (cfg != NULL && !files_usable(cfg)) {
            config_destroy(cfg);
            cfg = NULL;
        }
        if (cfg == NULL) {
            fprintf(stderr, "recgate: the configuration is not valid\n");
        }
        return cfg;
    }

    err = open_memstream(&problems, &size);
    cfg = config_load(opt->config_path, err);
    fclose(err);
    if (cfg == NULL) {
        log_config_problems(problems);
    }
    free(problems);
    return cfg;
}

int
main(int argc, char **argv)
{
    options opt = {0};
    app a = {0};
    config *cfg;
    int rc = parse_args(argc, argv, &opt);

    if (rc >= 0) {
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);
    signal(SIGHUP, SIG_IGN);

    cfg = load_config(&opt);
    if (cfg == NULL) {
        return 1;
    }
    log_set_level(cfg->log_level);

    if (check_signer() != 0) {
        config_destroy(cfg);
        return 1;
    }

    if (opt.check_only) {
        config_print(cfg, stdout);
        config_destroy(cfg);
        return 0;
    }

    raise_fd_limit(cfg);
    a.cfg = cfg;
    a.config_path = opt.config_path;
    rc = serve(&a);
    config_destroy(cfg);
    return rc;
}
