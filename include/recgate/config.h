/* config.h - the gateway's settings: INI file, environment, defaults.
 * SPDX-License-Identifier: MIT
 *
 * Every key lives in one table in config.c (section, key, type, default,
 * target field). The file is read with inih; then each key may be
 * overridden by RECGATE_<SECTION>_<KEY>; credentials also come from the
 * Huawei SDKs' HUAWEICLOUD_SDK_* variables or from secret files.
 */
#ifndef RECGATE_CONFIG_H
#define RECGATE_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "recgate/log.h"

typedef struct {
    /* [server] */
    char *listen;      /* as written: "127.0.0.1:8080", "[::1]:80" */
    char *listen_host; /* derived: host without brackets */
    int listen_port;   /* derived */
    char *workers;     /* "1".."64" or "auto" */
    int workers_n;     /* derived: the number of worker processes */
    int64_t drain_timeout_ms;
    int64_t request_timeout_ms; /* the longest a client waits */
    int max_connections;
    int64_t read_timeout_ms;      /* to receive a request once begun */
    int64_t keepalive_timeout_ms; /* idle connection between requests */
    int64_t max_header_size;

    /* [upstream] */
    char *region;
    char *endpoint;           /* derived from region when not set */
    char *upstream_host;      /* derived: host name for SNI and verification */
    int upstream_port;        /* derived */
    char *upstream_authority; /* derived: Host header, with a non-443 port */
    char *ca_file;
    int64_t upstream_timeout_ms;
    double upstream_rate;
    int upstream_burst;
    int64_t upstream_max_body;
    int upstream_keepalive; /* idle TLS connections kept for reuse */
    int64_t upstream_queue_timeout_ms;
    int upstream_queue_size;
    int upstream_max_in_flight;
    int upstream_retries;
    int64_t upstream_retry_backoff_ms;
    int upstream_breaker_failures;
    int64_t upstream_breaker_cooldown_ms;
    double upstream_fallback_share;

    /* [credentials] */
    char *ak;
    char *sk;
    char *security_token;
    char *ak_file;
    char *sk_file;
    char *security_token_file;

    /* [redis] */
    char *redis_url;
    char *redis_host;     /* derived */
    int redis_port;       /* derived */
    char *redis_password; /* derived */
    int redis_db;         /* derived */
    char *key_prefix;
    int64_t redis_timeout_ms;

    /* [cache] */
    int64_t cache_ttl_ms;
    char *terminal_statuses;
    int64_t l1_bytes;

    /* [access] */
    char *projects;
    char *tokens_file;

    /* [log] */
    log_level log_level;
    int64_t log_buffer;   /* bytes of info lines kept before a write */
    int64_t log_flush_ms; /* the longest a buffered line waits */
} config;

/* Loads defaults, then the file (when path is not NULL), then the
 * environment, then derives and checks the dependent fields. Returns a new
 * config, or NULL after writing one clear message per problem to err
 * (file, line, key and reason; never a secret's value). */
config *config_load(const char *path, FILE *err);

void config_destroy(config *cfg);

/* Reads path again and moves every changed value that can change while
 * running into live; a changed key that needs a restart (listen address,
 * workers, endpoint, Redis URL, ...) is logged and kept. Returns the
 * number of values changed, or -1 (live untouched) when the file is not
 * valid, after writing the problems to err. */
int config_reload(config *live, const char *path, FILE *err);

/* Writes the effective settings as INI, secrets masked. */
void config_print(const config *cfg, FILE *out);

/* Parses "250ms", "5s", "2m", "1h", "7d" (a bare number is seconds).
 * Returns 0, or -1 on a malformed or negative value. */
int config_parse_duration(const char *text, int64_t *ms);

/* Parses "512", "64KiB", "64MiB", "1GiB" (also KB/MB/GB, k/m/g, as powers
 * of 1024). Returns 0, or -1. */
int config_parse_size(const char *text, int64_t *bytes);

/* Parses "*" or a comma-separated list and tells whether project is in it.
 */
bool config_project_allowed(const config *cfg, const char *project);

#endif /* RECGATE_CONFIG_H */
