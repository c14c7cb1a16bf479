/* fuzz_config.c - libFuzzer target for the configuration loader.
 * SPDX-License-Identifier: MIT
 *
 * Writes each input to a temporary INI file and loads it with config_load,
 * with the credentials in the environment so that a good file loads; a
 * loaded config is checked, printed (secrets masked), queried and
 * destroyed, and the same file is then reloaded into a config of defaults
 * with config_reload. The input also goes to config_parse_duration and
 * config_parse_size as a string. The loader's messages go to a memory
 * buffer, which, like the printed settings, must never hold the
 * credentials.
 */
#include <ctype.h>
#include <math.h>
#include <sanitizer/common_interface_defs.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recgate/config.h"
#include "recgate/log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern char **environ;

/* Distinctive values, so that finding one in any output is a leak. */
#define FUZZ_AK "FUZZAKQ7W3E9R1T5Y8U2"
#define FUZZ_SK "fuzzSecretKey0x5c1e7a9b3d2f4e6a8c0b1d3f"
#define FUZZ_TOKEN "fuzzSecurityToken0x6d2e9f1a4b7c"

#define OUT_SIZE (64 * 1024)

static char file_path[] = "/tmp/recgate-fuzz-config-XXXXXX";
static int file_fd = -1;
static char out_buf[OUT_SIZE];
static FILE *out;

static void
remove_file(void)
{
    unlink(file_path);
}

/* Aborts, naming the broken invariant, when cond is false; the temporary
 * file goes first, as abort skips atexit. */
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,         \
                    __LINE__, #cond);                                          \
            remove_file();                                                     \
            abort();                                                           \
        }                                                                      \
    } while (0)

/* Drops every RECGATE_* variable, so only the input configures the load
 * (and no variable can name a secret file). */
static void
clear_recgate_env(void)
{
    char name[256];
    int again = 1;

    while (again) {
        again = 0;
        for (char **e = environ; *e != NULL; e++) {
            size_t n = strcspn(*e, "=");

            if (strncmp(*e, "RECGATE_", 8) == 0 && n < sizeof(name)) {
                memcpy(name, *e, n);
                name[n] = '\0';
                unsetenv(name);
                again = 1;
                break;
            }
        }
    }
}

static void
setup(void)
{
    clear_recgate_env();
    setenv("HUAWEICLOUD_SDK_AK", FUZZ_AK, 1);
    setenv("HUAWEICLOUD_SDK_SK", FUZZ_SK, 1);
    setenv("HUAWEICLOUD_SDK_SECURITY_TOKEN", FUZZ_TOKEN, 1);

    file_fd = mkstemp(file_path);
    CHECK(file_fd >= 0);
    atexit(remove_file);
    __sanitizer_set_death_callback(remove_file);

    out = fmemopen(out_buf, sizeof(out_buf), "w");
    CHECK(out != NULL);

    /* config_reload reports each key it changes or keeps at info and
     * warn; that would flood the fuzzer's own output. */
    log_set_level(LOG_ERROR);
}

/* True when s holds needle in any letter case; s may hold NULs. */
static int
contains_nocase(const uint8_t *s, size_t size, const char *needle)
{
    size_t n = strlen(needle);

    for (size_t i = 0; i + n <= size; i++) {
        size_t j = 0;

        while (j < n &&
               tolower(s[i + j]) == tolower((unsigned char)needle[j])) {
            j++;
        }
        if (j == n) {
            return 1;
        }
    }
    return 0;
}

static void
rewrite_file(const uint8_t *data, size_t size)
{
    CHECK(ftruncate(file_fd, 0) == 0);
    CHECK(pwrite(file_fd, data, size, 0) == (ssize_t)size);
}

static void
reset_out(void)
{
    rewind(out);
}

/* The text written to out since reset_out, NUL-terminated; whatever did
 * not fit in the buffer is lost. */
static const char *
out_text(void)
{
    long n;

    fflush(out);
    n = ftell(out);
    if (n < 0 || n > OUT_SIZE - 1) {
        n = OUT_SIZE - 1;
    }
    out_buf[n] = '\0';
    return out_buf;
}

/* The credentials come only from the environment here, so no message and
 * no printed setting may show them. */
static void
check_no_secret(const char *text)
{
    CHECK(strstr(text, FUZZ_SK) == NULL);
    CHECK(strstr(text, FUZZ_AK) == NULL);
    CHECK(strstr(text, FUZZ_TOKEN) == NULL);
}

/* What a loaded config must hold, whatever the file said. */
static void
check_loaded(const config *cfg)
{
    CHECK(cfg->listen_host != NULL && cfg->upstream_host != NULL);
    CHECK(cfg->redis_host != NULL && cfg->upstream_authority != NULL);
    CHECK(cfg->listen_port >= 0 && cfg->listen_port <= 65535);
    CHECK(cfg->upstream_port > 0 && cfg->upstream_port <= 65535);
    CHECK(cfg->redis_port > 0 && cfg->redis_port <= 65535);
    CHECK(cfg->ak != NULL && cfg->sk != NULL);

    /* A rate or share that is not a number passes no range check. */
    CHECK(isfinite(cfg->upstream_rate) && cfg->upstream_rate > 0);
    CHECK(isfinite(cfg->upstream_fallback_share));
}

static int
same_string(const char *a, const char *b)
{
    return (a == NULL && b == NULL) ||
           (a != NULL && b != NULL && strcmp(a, b) == 0);
}

/* Reloads the file into a config of defaults: it fails exactly when the
 * load did, keeps the keys that need a restart, and a second reload of
 * the same file changes nothing more. */
static void
fuzz_reload(int loaded)
{
    config *live = config_load(NULL, out);
    config *before = config_load(NULL, out);
    int changed;

    CHECK(live != NULL && before != NULL);

    changed = config_reload(live, file_path, out);
    CHECK((changed < 0) == !loaded);
    if (changed >= 0) {
        CHECK(config_reload(live, file_path, out) == 0);
    }

    CHECK(same_string(live->listen, before->listen));
    CHECK(same_string(live->workers, before->workers));
    CHECK(same_string(live->endpoint, before->endpoint));
    CHECK(same_string(live->redis_url, before->redis_url));
    CHECK(live->listen_port == before->listen_port);
    CHECK(live->redis_port == before->redis_port);

    config_destroy(before);
    config_destroy(live);
}

static void
fuzz_load(const uint8_t *data, size_t size)
{
    int echoed = contains_nocase(data, size, FUZZ_AK) ||
                 contains_nocase(data, size, FUZZ_SK) ||
                 contains_nocase(data, size, FUZZ_TOKEN);
    config *cfg;

    rewrite_file(data, size);
    reset_out();
    cfg = config_load(file_path, out);
    if (!echoed) {
        check_no_secret(out_text());
    }
    if (cfg == NULL) {
        fuzz_reload(0);
        return;
    }
    check_loaded(cfg);

    reset_out();
    config_print(cfg, out);
    if (!echoed) {
        check_no_secret(out_text());
    }

    config_project_allowed(cfg, "0123456789abcdef0123456789abcdef");
    config_destroy(cfg);
    fuzz_reload(1);
}

/* An accepted duration or size is never negative, and its value written
 * back in the smallest unit parses to itself. */
static void
fuzz_numbers(const char *text)
{
    char again[32];
    int64_t v, w;

    if (config_parse_duration(text, &v) == 0) {
        CHECK(v >= 0);
        snprintf(again, sizeof(again), "%lldms", (long long)v);
        CHECK(config_parse_duration(again, &w) == 0 && w == v);
    }
    if (config_parse_size(text, &v) == 0) {
        CHECK(v >= 0);
        snprintf(again, sizeof(again), "%lld", (long long)v);
        CHECK(config_parse_size(again, &w) == 0 && w == v);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;

    if (file_fd < 0) {
        setup();
    }

    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';
    fuzz_numbers(text);
    free(text);

    /* Hermetic by choice: an input naming any *_file key (ak_file,
     * sk_file, security_token_file, and with them ca_file and
     * tokens_file) is not loaded, so the fuzzer can never make
     * config_load open a file of the machine's, which could be large,
     * blocking (a FIFO, /dev/zero) or secret. */
    if (contains_nocase(data, size, "_file")) {
        return 0;
    }
    fuzz_load(data, size);
    return 0;
}
