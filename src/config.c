/* config.c - the gateway's settings: INI file, environment, defaults.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/config.h"

#include <ctype.h>
#include <math.h>
#include <errno.h>
#include <arpa/inet.h>
#include <ini.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "recgate/route.h"

typedef enum {
    OPT_STRING,
    OPT_SECRET, /* a string never printed */
    OPT_DURATION,
    OPT_SIZE,
    OPT_INT,
    OPT_DOUBLE,
    OPT_LOG_LEVEL,
} opt_type;

typedef struct {
    const char *section;
    const char *key;
    opt_type type;
    const char *def; /* NULL: unset */
    size_t offset;
    double min; /* bounds for numbers; ignored when min == max */
    double max;
} opt;

#define F(field) offsetof(config, field)

static const opt options[] = {
    {"server", "listen", OPT_STRING, "127.0.0.1:8080", F(listen), 0, 0},
    {"server", "workers", OPT_STRING, "1", F(workers), 0, 0},
    {"server", "drain_timeout", OPT_DURATION, "10s", F(drain_timeout_ms), 0, 0},
    {"server", "request_timeout", OPT_DURATION, "10s", F(request_timeout_ms),
     100, 3600000},
    {"server", "max_connections", OPT_INT, "10000", F(max_connections), 1,
     1000000},
    {"server", "read_timeout", OPT_DURATION, "10s", F(read_timeout_ms), 100,
     3600000},
    {"server", "keepalive_timeout", OPT_DURATION, "60s",
     F(keepalive_timeout_ms), 1000, 86400000},
    {"server", "max_header_size", OPT_SIZE, "16KiB", F(max_header_size), 1024,
     1048576},
    {"upstream", "region", OPT_STRING, "cn-north-4", F(region), 0, 0},
    {"upstream", "endpoint", OPT_STRING, NULL, F(endpoint), 0, 0},
    {"upstream", "ca_file", OPT_STRING, NULL, F(ca_file), 0, 0},
    {"upstream", "timeout", OPT_DURATION, "5s", F(upstream_timeout_ms), 1,
     600000},
    {"upstream", "rate", OPT_DOUBLE, "10", F(upstream_rate), 0.001, 1e6},
    {"upstream", "burst", OPT_INT, "20", F(upstream_burst), 1, 1e6},
    {"upstream", "max_body", OPT_SIZE, "8MiB", F(upstream_max_body), 1024,
     1073741824.0},
    {"upstream", "keepalive", OPT_INT, "16", F(upstream_keepalive), 0, 1024},
    {"upstream", "queue_timeout", OPT_DURATION, "2s",
     F(upstream_queue_timeout_ms), 0, 600000},
    {"upstream", "queue_size", OPT_INT, "1000", F(upstream_queue_size), 1,
     1000000},
    {"upstream", "max_in_flight", OPT_INT, "256", F(upstream_max_in_flight), 1,
     100000},
    {"upstream", "retries", OPT_INT, "2", F(upstream_retries), 0, 10},
    {"upstream", "retry_backoff", OPT_DURATION, "100ms",
     F(upstream_retry_backoff_ms), 1, 60000},
    {"upstream", "breaker_failures", OPT_INT, "5", F(upstream_breaker_failures),
     1, 1000000},
    {"upstream", "breaker_cooldown", OPT_DURATION, "10s",
     F(upstream_breaker_cooldown_ms), 1, 3600000},
    {"upstream", "fallback_share", OPT_DOUBLE, "0.25",
     F(upstream_fallback_share), 0.001, 1},
    {"credentials", "ak", OPT_SECRET, NULL, F(ak), 0, 0},
    {"credentials", "sk", OPT_SECRET, NULL, F(sk), 0, 0},
    {"credentials", "security_token", OPT_SECRET, NULL, F(security_token), 0,
     0},
    {"credentials", "ak_file", OPT_STRING, NULL, F(ak_file), 0, 0},
    {"credentials", "sk_file", OPT_STRING, NULL, F(sk_file), 0, 0},
    {"credentials", "security_token_file", OPT_STRING, NULL,
     F(security_token_file), 0, 0},
    {"redis", "url", OPT_SECRET, "redis://127.0.0.1:6379/0", F(redis_url), 0,
     0},
    {"redis", "key_prefix", OPT_STRING, "recgate:", F(key_prefix), 0, 0},
    {"redis", "timeout", OPT_DURATION, "500ms", F(redis_timeout_ms), 1, 60000},
    {"cache", "ttl", OPT_DURATION, "7d", F(cache_ttl_ms), 0, 0},
    {"cache", "terminal_statuses", OPT_STRING,
     "SUCCESS,FAILED,FINISH,FINISHED,TIMEOUT,CANCELED,CANCELLED,SKIPPED",
     F(terminal_statuses), 0, 0},
    {"cache", "l1_bytes", OPT_SIZE, "64MiB", F(l1_bytes), 0, 0},
    {"access", "projects", OPT_STRING, "*", F(projects), 0, 0},
    {"access", "tokens_file", OPT_STRING, NULL, F(tokens_file), 0, 0},
    {"log", "level", OPT_LOG_LEVEL, "info", F(log_level), 0, 0},
    {"log", "buffer", OPT_SIZE, "64KiB", F(log_buffer), 0, LOG_BUFFER_MAX},
    {"log", "flush_interval", OPT_DURATION, "100ms", F(log_flush_ms), 1, 60000},
};

#define N_OPTIONS (sizeof(options) / sizeof(options[0]))

typedef struct {
    config *cfg;
    FILE *err;
    const char *origin; /* file name or "environment" */
    int errors;
} load_state;

static const opt *
find_option(const char *section, const char *key)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (strcasecmp(options[i].section, section) == 0 &&
            strcasecmp(options[i].key, key) == 0) {
            return &options[i];
        }
    }
    return NULL;
}

int
config_parse_duration(const char *text, int64_t *ms)
{
    static const struct {
        const char *suffix;
        int64_t ms;
    } units[] = {{"ms", 1},      {"s", 1000},     {"m", 60000},
                 {"h", 3600000}, {"d", 86400000}, {"", 1000}};
    char *end;
    long long n;

    errno = 0;
    if (!isdigit((unsigned char)text[0])) {
        return -1;
    }
    n = strtoll(text, &end, 10);
    if (errno != 0) {
        return -1;
    }

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].suffix) == 0) {
            if (n > INT64_MAX / units[i].ms) {
                return -1;
            }
            *ms = n * units[i].ms;
            return 0;
        }
    }
    return -1;
}

int
config_parse_size(const char *text, int64_t *bytes)
{
    static const struct {
        const char *suffix;
        int64_t mult;
    } units[] = {{"", 1},         {"b", 1},         {"k", 1 << 10},
                 {"kb", 1 << 10}, {"kib", 1 << 10}, {"m", 1 << 20},
                 {"mb", 1 << 20}, {"mib", 1 << 20}, {"g", 1 << 30},
                 {"gb", 1 << 30}, {"gib", 1 << 30}};
    char *end;
    long long n;

    errno = 0;
    if (!isdigit((unsigned char)text[0])) {
        return -1;
    }
    n = strtoll(text, &end, 10);
    if (errno != 0) {
        return -1;
    }

    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcasecmp(end, units[i].suffix) == 0) {
            if (n > INT64_MAX / units[i].mult) {
                return -1;
            }
            *bytes = n * units[i].mult;
            return 0;
        }
    }
    return -1;
}

static bool
out_of_bounds(const opt *o, double v)
{
    return o->min != o->max && (v < o->min || v > o->max);
}

/* Stores one value into the field the option names. Returns NULL, or a
 * static reason the value was refused. */
static const char *
set_option(config *cfg, const opt *o, const char *value)
{
    char *field = (char *)cfg + o->offset;
    int64_t n;
    char *end;
    double d;

    switch (o->type) {
    case OPT_STRING:
    case OPT_SECRET:
        free(*(char **)field);
        *(char **)field = strdup(value);
        return NULL;

    case OPT_DURATION:
        if (config_parse_duration(value, &n) != 0) {
            return "not a duration (use 250ms, 5s, 2m, 1h, 7d)";
        }
        if (out_of_bounds(o, (double)n)) {
            return "duration out of range";
        }
        *(int64_t *)field = n;
        return NULL;

    case OPT_SIZE:
        if (config_parse_size(value, &n) != 0) {
            return "not a size (use 512, 64KiB, 8MiB, 1GiB)";
        }
        if (out_of_bounds(o, (double)n)) {
            return "size out of range";
        }
        *(int64_t *)field = n;
        return NULL;

    case OPT_INT:
        errno = 0;
        n = strtoll(value, &end, 10);
        if (errno != 0 || end == value || *end != '\0') {
            return "not an integer";
        }
        if (out_of_bounds(o, (double)n)) {
            return "integer out of range";
        }
        *(int *)field = (int)n;
        return NULL;

    case OPT_DOUBLE:
        errno = 0;
        d = strtod(value, &end);
        if (errno != 0 || end == value || *end != '\0' || !isfinite(d)) {
            return "not a number";
        }
        if (out_of_bounds(o, d)) {
            return "number out of range";
        }
        *(double *)field = d;
        return NULL;

    case OPT_LOG_LEVEL:
        if (log_level_parse(value, (log_level *)field) != 0) {
            return "not a log level (debug, info, warn, error)";
        }
        return NULL;
    }
    return "unknown option type";
}

/* Debian's inih reports no line number to handlers, so a problem is
 * named by its section and key instead. */
static int
on_ini_entry(void *user, const char *section, const char *key,
             const char *value)
{
    load_state *st = user;
    const opt *o = find_option(section, key);
    const char *why;

    if (o == NULL) {
        fprintf(st->err, "%s: unknown key \"%s.%s\"\n", st->origin, section,
                key);
        st->errors++;
        return 1;
    }

    why = set_option(st->cfg, o, value);
    if (why != NULL) {
        fprintf(st->err, "%s: %s.%s: %s\n", st->origin, section, key, why);
        st->errors++;
    }
    return 1;
}

static void
load_defaults(load_state *st)
{
    for (size_t i = 0; i < N_OPTIONS; i++) {
        if (options[i].def != NULL) {
            const char *why = set_option(st->cfg, &options[i], options[i].def);
            if (why != NULL) {
                fprintf(st->err, "default %s.%s: %s\n", options[i].section,
                        options[i].key, why);
                st->errors++;
            }
        }
    }
}

static void
env_name(const opt *o, char *buf, size_t size)
{
    size_t n = (size_t)snprintf(buf, size, "RECGATE_%s_%s", o->section, o->key);

    for (size_t i = 0; i < n && i < size; i++) {
        buf[i] = (char)toupper((unsigned char)buf[i]);
    }
}

static void
load_environment(load_state *st)
{
    char name[96];
    const char *value;
    const char *why;

    for (size_t i = 0; i < N_OPTIONS; i++) {
        env_name(&options[i], name, sizeof(name));
        value = getenv(name);
        if (value == NULL) {
            continue;
        }
        why = set_option(st->cfg, &options[i], value);
        if (why != NULL) {
            fprintf(st->err, "environment %s: %s\n", name, why);
            st->errors++;
        }
    }
}

/* Fills an unset credential from the Huawei SDKs' variable name. */
static void
take_sdk_env(char **field, const char *name)
{
    const char *value = getenv(name);

    if (*field == NULL && value != NULL && value[0] != '\0') {
        *field = strdup(value);
    }
}

/* Reads a secret file (a container secret): the first line, without its
 * line end. Warns when others may read the file. */
static int
read_secret_file(load_state *st, const char *path, char **field)
{
    char buf[4096];
    struct stat sb;
    size_t n;
    FILE *f;

    f = fopen(path, "r");
    if (f == NULL) {
        fprintf(st->err, "%s: cannot open secret file: %s\n", path,
                strerror(errno));
        return -1;
    }
    if (fstat(fileno(f), &sb) == 0 && (sb.st_mode & S_IROTH)) {
        log_msg(LOG_WARN, "secret file is readable by other users", "path",
                path);
    }

    n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    if (buf[0] == '\0') {
        fprintf(st->err, "%s: secret file is empty\n", path);
        return -1;
    }

    free(*field);
    *field = strdup(buf);
    return 0;
}

/* A credential goes into a request header (the AK, the token) or an
 * HMAC key: a control character, a stray line break from a secret file
 * included, would make every upstream request fail, or break the header
 * apart. The value itself is never printed. */
static void
check_printable(load_state *st, const char *name, const char *value)
{
    if (value == NULL) {
        return;
    }
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        if (*p < 0x20 || *p == 0x7f) {
            fprintf(st->err, "%s holds a control character\n", name);
            st->errors++;
            return;
        }
    }
}

static void
load_credentials(load_state *st)
{
    config *cfg = st->cfg;

    take_sdk_env(&cfg->ak, "HUAWEICLOUD_SDK_AK");
    take_sdk_env(&cfg->sk, "HUAWEICLOUD_SDK_SK");
    take_sdk_env(&cfg->security_token, "HUAWEICLOUD_SDK_SECURITY_TOKEN");

    if (cfg->ak_file != NULL &&
        read_secret_file(st, cfg->ak_file, &cfg->ak) != 0) {
        st->errors++;
    }
    if (cfg->sk_file != NULL &&
        read_secret_file(st, cfg->sk_file, &cfg->sk) != 0) {
        st->errors++;
    }
    if (cfg->security_token_file != NULL &&
        read_secret_file(st, cfg->security_token_file, &cfg->security_token) !=
            0) {
        st->errors++;
    }

    if (cfg->ak == NULL || cfg->ak[0] == '\0') {
        fprintf(st->err, "credentials.ak is not set (or HUAWEICLOUD_SDK_AK, "
                         "or credentials.ak_file)\n");
        st->errors++;
    }
    if (cfg->sk == NULL || cfg->sk[0] == '\0') {
        fprintf(st->err, "credentials.sk is not set (or HUAWEICLOUD_SDK_SK, "
                         "or credentials.sk_file)\n");
        st->errors++;
    }
    check_printable(st, "credentials.ak", cfg->ak);
    check_printable(st, "credentials.sk", cfg->sk);
    check_printable(st, "credentials.security_token", cfg->security_token);
}

/* Splits "host:port" or "[v6]:port" into its parts. Returns 0, or -1. */
static int
split_host_port(const char *text, char **host, int *port)
{
    const char *colon;
    const char *h = text;
    size_t hlen;
    char *end;
    long p;

    if (text[0] == '[') {
        const char *close = strchr(text, ']');
        if (close == NULL || close[1] != ':') {
            return -1;
        }
        h = text + 1;
        hlen = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(text, ':');
        if (colon == NULL || memchr(text, ':', (size_t)(colon - text))) {
            return -1;
        }
        hlen = (size_t)(colon - text);
    }

    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (hlen == 0 || errno != 0 || end == colon + 1 || *end != '\0' || p < 0 ||
        p > 65535) {
        return -1;
    }
    *host = strndup(h, hlen);
    *port = (int)p;
    return 0;
}

static bool
valid_host_name(const char *host)
{
    if (host[0] == '\0' || strlen(host) > 253) {
        return false;
    }
    for (const char *p = host; *p != '\0'; p++) {
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.' &&
            *p != ':') {
            return false;
        }
    }
    return true;
}

/* Derives host, port and the Host header value from upstream.endpoint,
 * which must be https://host[:port] with no path. */
static int
derive_upstream(load_state *st)
{
    config *cfg = st->cfg;
    const char *rest;
    char authority[300];

    if (cfg->endpoint == NULL) {
        snprintf(authority, sizeof(authority),
                 "https://workspace.%s.myhuaweicloud.com", cfg->region);
        cfg->endpoint = strdup(authority);
    }
    if (strncmp(cfg->endpoint, "https://", 8) != 0) {
        fprintf(st->err, "upstream.endpoint must start with https://\n");
        return -1;
    }

    rest = cfg->endpoint + 8;
    snprintf(authority, sizeof(authority), "%.*s", (int)strcspn(rest, "/"),
             rest);
    if (strcspn(rest, "/") != strlen(rest) &&
        strcmp(rest + strcspn(rest, "/"), "/") != 0) {
        fprintf(st->err, "upstream.endpoint must have no path\n");
        return -1;
    }

    if (strchr(authority, ':') != NULL && authority[0] != '[') {
        if (split_host_port(authority, &cfg->upstream_host,
                            &cfg->upstream_port) != 0) {
            goto bad;
        }
    } else if (authority[0] == '[') {
        if (split_host_port(authority, &cfg->upstream_host,
                            &cfg->upstream_port) != 0) {
            goto bad;
        }
    } else {
        cfg->upstream_host = strdup(authority);
        cfg->upstream_port = 443;
    }
    if (!valid_host_name(cfg->upstream_host) || cfg->upstream_port == 0) {
        goto bad;
    }

    cfg->upstream_authority = strdup(authority);
    return 0;

bad:
    fprintf(st->err, "upstream.endpoint has a malformed host or port\n");
    return -1;
}

/* Parses redis://[:password@]host:port/db into the derived fields. */
static int
derive_redis(load_state *st)
{
    config *cfg = st->cfg;
    const char *p = cfg->redis_url;
    const char *at;
    const char *slash;
    char *hostport;
    int rc;

    if (strncmp(p, "redis://", 8) != 0) {
        goto bad;
    }
    p += 8;

    slash = strchr(p, '/');
    at = strrchr(p, '@');
    if (at != NULL && (slash == NULL || at < slash)) {
        const char *pw = p[0] == ':' ? p + 1 : p;
        cfg->redis_password = strndup(pw, (size_t)(at - pw));
        p = at + 1;
        slash = strchr(p, '/');
    }

    cfg->redis_db = 0;
    if (slash != NULL) {
        char *end;
        long db = strtol(slash + 1, &end, 10);
        if (slash[1] != '\0' && (*end != '\0' || db < 0 || db > 1000)) {
            goto bad;
        }
        cfg->redis_db = (int)db;
    }

    hostport = strndup(p, slash ? (size_t)(slash - p) : strlen(p));
    if (strchr(hostport, ':') == NULL) {
        cfg->redis_host = strdup(hostport);
        cfg->redis_port = 6379;
        rc = 0;
    } else {
        rc = split_host_port(hostport, &cfg->redis_host, &cfg->redis_port);
    }
    free(hostport);
    if (rc != 0 || cfg->redis_port == 0) {
        goto bad;
    }
    return 0;

bad:
    fprintf(st->err, "redis.url must be redis://[:password@]host:port/db\n");
    return -1;
}

static int
derive_workers(load_state *st)
{
    config *cfg = st->cfg;
    char *end;
    long n;

    if (strcmp(cfg->workers, "auto") == 0) {
        n = sysconf(_SC_NPROCESSORS_ONLN);
        cfg->workers_n = n < 1 ? 1 : (n > 64 ? 64 : (int)n);
        return 0;
    }
    n = strtol(cfg->workers, &end, 10);
    if (end == cfg->workers || *end != '\0' || n < 1 || n > 64) {
        fprintf(st->err, "server.workers must be 1..64 or auto\n");
        return -1;
    }
    cfg->workers_n = (int)n;
    return 0;
}

/* A listen host is an IPv4 or IPv6 address or a host name; "999.1.1.1"
 * looks like a name but is a mistyped address, and would only fail at
 * bind time, after --check-config said yes. */
static bool
valid_listen_host(const char *host)
{
    unsigned char addr[sizeof(struct in6_addr)];

    if (strchr(host, ':') != NULL) {
        return inet_pton(AF_INET6, host, addr) == 1;
    }
    if (strspn(host, "0123456789.") == strlen(host)) {
        return inet_pton(AF_INET, host, addr) == 1;
    }
    return valid_host_name(host);
}

/* The next item of a comma-separated list at *p, blanks around it left
 * out: sets *item and returns its length (0 for an empty item, or at the
 * end), and moves *p past it. */
static size_t
next_list_item(const char **p, const char **item)
{
    size_t n;

    *p += strspn(*p, " \t,");
    n = strcspn(*p, ",");
    *item = *p;
    *p += n;
    while (n > 0 && ((*item)[n - 1] == ' ' || (*item)[n - 1] == '\t')) {
        n--;
    }
    return n;
}

/* access.projects: "*" or a comma-separated list of project ids. */
static int
check_projects(load_state *st)
{
    const char *rest = st->cfg->projects;
    int items = 0;

    while (*rest != '\0') {
        const char *p;
        size_t n = next_list_item(&rest, &p);

        if (n > 0 && !(n == 1 && p[0] == '*') && !route_valid_project(p, n)) {
            fprintf(st->err,
                    "access.projects: \"%.*s\" is not * or a "
                    "project id (32 hexadecimal characters)\n",
                    (int)(n > 64 ? 64 : n), p);
            return -1;
        }
        items += n > 0;
    }
    if (items == 0) {
        fprintf(st->err, "access.projects is empty: use * to allow every "
                         "project\n");
        return -1;
    }
    return 0;
}

static void
derive(load_state *st)
{
    config *cfg = st->cfg;

    if (split_host_port(cfg->listen, &cfg->listen_host, &cfg->listen_port) !=
        0) {
        fprintf(st->err, "server.listen must be host:port or [v6]:port\n");
        st->errors++;
    } else if (!valid_listen_host(cfg->listen_host)) {
        fprintf(st->err,
                "server.listen: \"%s\" is not an IP address or "
                "host name\n",
                cfg->listen_host);
        st->errors++;
    }
    if (check_projects(st) != 0) {
        st->errors++;
    }
    if (derive_workers(st) != 0) {
        st->errors++;
    }
    if (derive_upstream(st) != 0) {
        st->errors++;
    }
    if (derive_redis(st) != 0) {
        st->errors++;
    }
    if (strlen(cfg->key_prefix) > 64) {
        fprintf(st->err, "redis.key_prefix is longer than 64 bytes\n");
        st->errors++;
    }
}

/* inih reads a directory as an empty file, which would start with every
 * default instead of the operator's settings. */
static bool
is_directory(const char *path)
{
    struct stat st;

    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

config *
config_load(const char *path, FILE *err)
{
    load_state st = {.err = err, .origin = path};
    int rc;

    st.cfg = calloc(1, sizeof(config));
    if (st.cfg == NULL) {
        return NULL;
    }
    load_defaults(&st);

    if (path != NULL && is_directory(path)) {
        fprintf(err, "%s: cannot read the config file: it is a directory\n",
                path);
        st.errors++;
    } else if (path != NULL) {
        rc = ini_parse(path, on_ini_entry, &st);
        if (rc < 0) {
            fprintf(err, "%s: cannot read the config file: %s\n", path,
                    strerror(errno));
            st.errors++;
        } else if (rc > 0) {
            fprintf(err, "%s:%d: syntax error\n", path, rc);
            st.errors++;
        }
    }

    st.origin = "environment";
    load_environment(&st);
    load_credentials(&st);
    derive(&st);

    if (st.errors > 0) {
        config_destroy(st.cfg);
        return NULL;
    }
    return st.cfg;
}

/* Secrets are wiped before their memory goes back to the allocator. */
static void
free_secret(char *s)
{
    if (s != NULL) {
        OPENSSL_cleanse(s, strlen(s));
        free(s);
    }
}

void
config_destroy(config *cfg)
{
    if (cfg == NULL) {
        return;
    }
    for (size_t i = 0; i < N_OPTIONS; i++) {
        char *field = (char *)cfg + options[i].offset;
        if (options[i].type == OPT_SECRET) {
            free_secret(*(char **)field);
        } else if (options[i].type == OPT_STRING) {
            free(*(char **)field);
        }
    }
    free(cfg->listen_host);
    free(cfg->upstream_host);
    free(cfg->upstream_authority);
    free(cfg->redis_host);
    free_secret(cfg->redis_password);
    free(cfg);
}

static void
print_value(const config *cfg, const opt *o, FILE *out)
{
    const char *field = (const char *)cfg + o->offset;
    const char *s;

    switch (o->type) {
    case OPT_STRING:
        s = *(char *const *)field;
        fprintf(out, "%s\n", s ? s : "");
        break;
    case OPT_SECRET:
        s = *(char *const *)field;
        if (o->offset == offsetof(config, redis_url)) {
            fprintf(out, "redis://%s%s:%d/%d\n",
                    cfg->redis_password ? ":****@" : "", cfg->redis_host,
                    cfg->redis_port, cfg->redis_db);
        } else {
            fprintf(out, "%s\n", s ? "****" : "");
        }
        break;
    case OPT_DURATION:
    case OPT_SIZE:
        fprintf(out, "%lld%s\n", (long long)*(const int64_t *)field,
                o->type == OPT_DURATION ? "ms" : "");
        break;
    case OPT_INT:
        fprintf(out, "%d\n", *(const int *)field);
        break;
    case OPT_DOUBLE:
        fprintf(out, "%g\n", *(const double *)field);
        break;
    case OPT_LOG_LEVEL:
        fprintf(out, "%s\n", log_level_name(*(const log_level *)field));
        break;
    }
}

void
config_print(const config *cfg, FILE *out)
{
    const char *section = "";

    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt *o = &options[i];
        if (strcmp(section, o->section) != 0) {
            section = o->section;
            fprintf(out, "%s[%s]\n", i ? "\n" : "", section);
        }
        fprintf(out, "%s = ", o->key);
        print_value(cfg, o, out);
    }
}

/* Keys whose new value needs a restart: sockets, connections and
 * structures built from them at start. */
static const char *const restart_only[] = {
    "server.listen",
    "server.workers",
    "server.keepalive_timeout", /* set on the HTTP front end at start */
    "server.max_header_size",
    "upstream.max_body", /* kept-alive upstream links keep the old one */
    "upstream.region",
    "upstream.endpoint",
    "upstream.ca_file",
    "upstream.keepalive",
    "upstream.breaker_failures",
    "upstream.breaker_cooldown",
    "redis.url",
    "redis.key_prefix",
    "cache.terminal_statuses",
    "cache.l1_bytes",
    "log.flush_interval", /* the flush timer is made at start */
};

static bool
is_restart_only(const opt *o)
{
    char name[64];

    snprintf(name, sizeof(name), "%s.%s", o->section, o->key);
    for (size_t i = 0; i < sizeof(restart_only) / sizeof(restart_only[0]);
         i++) {
        if (strcmp(name, restart_only[i]) == 0) {
            return true;
        }
    }
    return false;
}

static bool
same_value(const config *a, const config *b, const opt *o)
{
    const char *fa = (const char *)a + o->offset;
    const char *fb = (const char *)b + o->offset;
    const char *sa;
    const char *sb;

    switch (o->type) {
    case OPT_STRING:
    case OPT_SECRET:
        sa = *(char *const *)fa;
        sb = *(char *const *)fb;
        return (sa == NULL && sb == NULL) ||
               (sa != NULL && sb != NULL && strcmp(sa, sb) == 0);
    case OPT_DURATION:
    case OPT_SIZE:
        return *(const int64_t *)fa == *(const int64_t *)fb;
    case OPT_INT:
        return *(const int *)fa == *(const int *)fb;
    case OPT_DOUBLE:
        return *(const double *)fa == *(const double *)fb;
    case OPT_LOG_LEVEL:
        return *(const log_level *)fa == *(const log_level *)fb;
    }
    return true;
}

/* Moves one value from fresh into live; strings change hands, so
 * neither config frees the other's. */
static void
take_value(config *live, config *fresh, const opt *o)
{
    char *fl = (char *)live + o->offset;
    char *ff = (char *)fresh + o->offset;
    char *tmp;

    if (o->type == OPT_STRING || o->type == OPT_SECRET) {
        tmp = *(char **)fl;
        *(char **)fl = *(char **)ff;
        *(char **)ff = tmp;
        return;
    }
    memcpy(fl, ff,
           o->type == OPT_INT         ? sizeof(int)
           : o->type == OPT_DOUBLE    ? sizeof(double)
           : o->type == OPT_LOG_LEVEL ? sizeof(log_level)
                                      : sizeof(int64_t));
}

int
config_reload(config *live, const char *path, FILE *err)
{
    config *fresh = config_load(path, err);
    int changed = 0;

    if (fresh == NULL) {
        return -1;
    }
    for (size_t i = 0; i < N_OPTIONS; i++) {
        const opt *o = &options[i];
        char name[64];

        if (same_value(live, fresh, o)) {
            continue;
        }
        snprintf(name, sizeof(name), "%s.%s", o->section, o->key);
        if (is_restart_only(o)) {
            log_msg(LOG_WARN,
                    "reload: this key changes only with a "
                    "restart; the running value is kept",
                    "key", name);
            continue;
        }
        take_value(live, fresh, o);
        log_msg(LOG_INFO, "reload: new value in effect", "key", name);
        changed++;
    }
    config_destroy(fresh);
    return changed;
}

bool
config_project_allowed(const config *cfg, const char *project)
{
    size_t plen = strlen(project);
    const char *rest = cfg->projects;

    while (*rest != '\0') {
        const char *p;
        size_t n = next_list_item(&rest, &p);

        if ((n == 1 && p[0] == '*') ||
            (n == plen && strncasecmp(p, project, n) == 0)) {
            return true;
        }
    }
    return false;
}
