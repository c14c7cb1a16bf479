/* main.c - command line, signals and wiring of the recgate process.
 * SPDX-License-Identifier: MIT
 */
#include <event2/event.h>
#include <getopt.h>
#include <openssl/ssl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recgate/config.h"
#include "recgate/log.h"
#include "recgate/metrics.h"
#include "recgate/server.h"
#include "recgate/supervisor.h"

#define DEFAULT_CONFIG "conf/recgate.conf"

typedef struct {
    const char *config_path;
    int check_only;
} options;


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


static void
on_stop_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_msg(LOG_INFO, "stopping: draining requests in flight", "signal",
            sig == SIGTERM ? "SIGTERM" : "SIGINT");
    server_drain(arg);
}


static int
run(const config *cfg)
{
    struct event_base *base = event_base_new();
    struct event *sigterm;
    struct event *sigint;
    char err[512];
    server *srv;

    srv = server_create(base, cfg, err, sizeof(err));
    if (srv == NULL) {
        log_msg(LOG_ERROR, "cannot start", "error", err);
        event_base_free(base);
        return SUPERVISOR_EXIT_FATAL;
    }

    sigterm = evsignal_new(base, SIGTERM, on_stop_signal, srv);
    sigint = evsignal_new(base, SIGINT, on_stop_signal, srv);
    evsignal_add(sigterm, NULL);
    evsignal_add(sigint, NULL);
    log_msg(LOG_INFO, "listening", "listen", cfg->listen);

    event_base_dispatch(base);

    server_destroy(srv);
    event_free(sigterm);
    event_free(sigint);
    event_base_free(base);
    log_msg(LOG_INFO, "stopped", NULL, NULL);
    return 0;
}


static int
run_worker(int index, void *arg)
{
    metrics_use_slot(index);
    srand((unsigned)getpid());
    return run(arg);
}


/* One worker runs in this process; more run under a supervising parent.
 */
static int
serve(config *cfg)
{
    int n = cfg->workers_n;

    if (n == 1) {
        return run(cfg) == 0 ? 0 : 1;
    }
    if (metrics_init_shared(n) != 0) {
        log_msg(LOG_ERROR, "cannot share metrics between workers", NULL,
                NULL);
        return 1;
    }
    return supervisor_run(n, run_worker, cfg);
}


int
main(int argc, char **argv)
{
    options opt = {0};
    config *cfg;
    int rc = parse_args(argc, argv, &opt);

    if (rc >= 0) {
        return rc;
    }
    signal(SIGPIPE, SIG_IGN);

    cfg = config_load(opt.config_path, stderr);
    if (cfg == NULL) {
        fprintf(stderr, "recgate: the configuration is not valid\n");
        return 1;
    }
    log_set_level(cfg->log_level);

    if (opt.check_only) {
        config_print(cfg, stdout);
        config_destroy(cfg);
        return 0;
    }

    rc = serve(cfg);
    config_destroy(cfg);
    return rc;
}
