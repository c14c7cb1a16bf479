/* test_config.c - defaults, file, environment and derived settings.
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recgate/config.h"

#define PROJECT_A "0123456789abcdef0123456789abcdef"
#define PROJECT_B "FEDCBA9876543210fedcba9876543210"
#define PROJECT_C "00000000000000000000000000000000"

static char conf_path[64];

static const char *
write_conf(const char *text)
{
    FILE *f;

    snprintf(conf_path, sizeof(conf_path), "/tmp/recgate-test-%d.conf",
             (int)getpid());
    f = fopen(conf_path, "w");
    fputs(text, f);
    fclose(f);
    return conf_path;
}

static config *
load(const char *text, char *errors, size_t size)
{
    FILE *err = fmemopen(errors, size, "w");
    config *cfg = config_load(write_conf(text), err);

    fclose(err);
    unlink(conf_path);
    return cfg;
}

static int
clear_env(void **state)
{
    (void)state;
    unsetenv("RECGATE_UPSTREAM_RATE");
    unsetenv("HUAWEICLOUD_SDK_AK");
    unsetenv("HUAWEICLOUD_SDK_SK");
    return 0;
}

static void
test_durations_and_sizes(void **state)
{
    int64_t v;

    (void)state;
    assert_int_equal(config_parse_duration("250ms", &v), 0);
    assert_int_equal(v, 250);
    assert_int_equal(config_parse_duration("5s", &v), 0);
    assert_int_equal(v, 5000);
    assert_int_equal(config_parse_duration("7d", &v), 0);
    assert_int_equal(v, 7LL * 86400000);
    assert_int_equal(config_parse_duration("3", &v), 0);
    assert_int_equal(v, 3000);
    assert_int_equal(config_parse_duration("-1s", &v), -1);
    assert_int_equal(config_parse_duration("5 s", &v), -1);
    assert_int_equal(config_parse_duration("5y", &v), -1);
    assert_int_equal(config_parse_size("64MiB", &v), 0);
    assert_int_equal(v, 64 << 20);
    assert_int_equal(config_parse_size("8kb", &v), 0);
    assert_int_equal(v, 8192);
    assert_int_equal(config_parse_size("lots", &v), -1);
}

static void
test_defaults_and_derived_fields(void **state)
{
    char errors[1024] = "";
    config *cfg =
        load("[credentials]\nak = A\nsk = S\n", errors, sizeof(errors));

    (void)state;
    assert_non_null(cfg);
    assert_string_equal(cfg->endpoint,
                        "https://workspace.cn-north-4.myhuaweicloud.com");
    assert_string_equal(cfg->upstream_host,
                        "workspace.cn-north-4.myhuaweicloud.com");
    assert_int_equal(cfg->upstream_port, 443);
    assert_string_equal(cfg->listen_host, "127.0.0.1");
    assert_int_equal(cfg->listen_port, 8080);
    assert_string_equal(cfg->redis_host, "127.0.0.1");
    assert_int_equal(cfg->redis_port, 6379);
    assert_int_equal(cfg->cache_ttl_ms, 7LL * 86400000);
    config_destroy(cfg);
}

static void
test_endpoint_and_redis_url_are_parsed(void **state)
{
    char errors[1024] = "";
    config *cfg = load("[upstream]\nendpoint = https://localhost:8443\n"
                       "[redis]\nurl = redis://:pw@[::1]:6380/2\n"
                       "[server]\nlisten = [::1]:9000\n"
                       "[credentials]\nak = A\nsk = S\n",
                       errors, sizeof(errors));

    (void)state;
    assert_non_null(cfg);
    assert_string_equal(cfg->upstream_authority, "localhost:8443");
    assert_int_equal(cfg->upstream_port, 8443);
    assert_string_equal(cfg->redis_password, "pw");
    assert_string_equal(cfg->redis_host, "::1");
    assert_int_equal(cfg->redis_port, 6380);
    assert_int_equal(cfg->redis_db, 2);
    assert_string_equal(cfg->listen_host, "::1");
    config_destroy(cfg);
}

static void
test_environment_overrides_the_file(void **state)
{
    char errors[1024] = "";
    config *cfg;

    (void)state;
    setenv("RECGATE_UPSTREAM_RATE", "2.5", 1);
    setenv("HUAWEICLOUD_SDK_AK", "ENVAK", 1);
    cfg = load("[upstream]\nrate = 7\n[credentials]\nsk = S\n", errors,
               sizeof(errors));
    assert_non_null(cfg);
    assert_true(cfg->upstream_rate == 2.5);
    assert_string_equal(cfg->ak, "ENVAK");
    config_destroy(cfg);
}

static void
test_bad_values_are_reported(void **state)
{
    char errors[2048] = "";
    config *cfg = load("[upstream]\nendpoint = http://insecure\n"
                       "timeout = soon\n[cache]\nbogus = 1\n"
                       "[redis]\nurl = mysql://x\n",
                       errors, sizeof(errors));

    (void)state;
    assert_null(cfg);
    assert_non_null(strstr(errors, "upstream.timeout: not a duration"));
    assert_non_null(strstr(errors, "unknown key \"cache.bogus\""));
    assert_non_null(strstr(errors, "must start with https://"));
    assert_non_null(strstr(errors, "redis.url"));
    assert_non_null(strstr(errors, "credentials.ak is not set"));
}

/* A line break in the AK (from the environment, say) would split the
 * Authorization header; a queue of 0 would refuse every miss. */
static void
test_control_characters_and_empty_queue_are_refused(void **state)
{
    char errors[1024] = "";
    config *cfg;

    (void)state;
    setenv("HUAWEICLOUD_SDK_AK", "AK\r\nX-Injected: 1", 1);
    cfg = load("[credentials]\nsk = S\n[upstream]\nqueue_size = 0\n", errors,
               sizeof(errors));
    unsetenv("HUAWEICLOUD_SDK_AK");
    assert_null(cfg);
    assert_non_null(strstr(errors, "credentials.ak holds a control"));
    assert_null(strstr(errors, "X-Injected"));
    assert_non_null(strstr(errors, "upstream.queue_size"));
}

static void
test_non_finite_numbers_are_refused(void **state)
{
    static const char *const bad[] = {"nan", "inf", "-inf", "NAN", "1e999"};
    char text[128];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char errors[1024] = "";
        config *cfg;

        snprintf(text, sizeof(text),
                 "[upstream]\nrate = %s\n[credentials]\nak = A\nsk = S\n",
                 bad[i]);
        cfg = load(text, errors, sizeof(errors));
        if (cfg != NULL) {
            config_destroy(cfg);
            fail_msg("upstream.rate = %s was accepted", bad[i]);
        }
        assert_non_null(strstr(errors, "upstream.rate: not a number"));
    }
}

static void
test_print_masks_secrets(void **state)
{
    char errors[1024] = "";
    char out[8192] = "";
    config *cfg = load("[credentials]\nak = VISIBLEAK\nsk = HIDDENSK\n"
                       "security_token = HIDDENTOKEN\n"
                       "[redis]\nurl = redis://:HIDDENPW@h:1/0\n",
                       errors, sizeof(errors));
    FILE *f = fmemopen(out, sizeof(out), "w");

    (void)state;
    assert_non_null(cfg);
    config_print(cfg, f);
    fclose(f);
    assert_null(strstr(out, "VISIBLEAK"));
    assert_null(strstr(out, "HIDDENSK"));
    assert_null(strstr(out, "HIDDENTOKEN"));
    assert_null(strstr(out, "HIDDENPW"));
    assert_non_null(strstr(out, "sk = ****"));
    config_destroy(cfg);
}

static void
test_project_allowlist(void **state)
{
    char errors[1024] = "";
    config *cfg = load("[access]\nprojects = " PROJECT_A ", " PROJECT_B "\n"
                       "[credentials]\nak = A\nsk = S\n",
                       errors, sizeof(errors));

    (void)state;
    assert_non_null(cfg);
    assert_true(config_project_allowed(cfg, PROJECT_A));
    /* Lists compare without regard to case: the route lower-cases. */
    assert_true(
        config_project_allowed(cfg, "fedcba9876543210fedcba9876543210"));
    assert_false(config_project_allowed(cfg, "aa"));
    assert_false(config_project_allowed(cfg, PROJECT_C));
    config_destroy(cfg);
}

/* An allowlist that could never match a project id is a typo, not a
 * policy: it is refused rather than locking every client out. */
static void
test_project_allowlist_items_are_checked(void **state)
{
    static const char *const bad[] = {"aa", "", " , ", PROJECT_A ",nothex"};
    char text[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char errors[1024] = "";
        config *cfg;

        snprintf(text, sizeof(text),
                 "[access]\nprojects = %s\n[credentials]\nak = A\nsk = S\n",
                 bad[i]);
        cfg = load(text, errors, sizeof(errors));
        if (cfg != NULL) {
            config_destroy(cfg);
            fail_msg("access.projects = \"%s\" should be refused", bad[i]);
        }
        assert_non_null(strstr(errors, "access.projects"));
    }
}

static void
test_listen_host_is_checked(void **state)
{
    static const char *const bad[] = {"999.1.1.1:80", "host with space:80",
                                      "[::zz]:80", "1.2.3:80"};
    char text[256];

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char errors[1024] = "";
        config *cfg;

        snprintf(text, sizeof(text),
                 "[server]\nlisten = %s\n[credentials]\nak = A\nsk = S\n",
                 bad[i]);
        cfg = load(text, errors, sizeof(errors));
        if (cfg != NULL) {
            config_destroy(cfg);
            fail_msg("server.listen = \"%s\" should be refused", bad[i]);
        }
        assert_non_null(strstr(errors, "server.listen"));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_durations_and_sizes),
        cmocka_unit_test_setup(test_defaults_and_derived_fields, clear_env),
        cmocka_unit_test_setup(test_endpoint_and_redis_url_are_parsed,
                               clear_env),
        cmocka_unit_test_setup(test_environment_overrides_the_file, clear_env),
        cmocka_unit_test_setup(test_bad_values_are_reported, clear_env),
        cmocka_unit_test_setup(test_non_finite_numbers_are_refused, clear_env),
        cmocka_unit_test_setup(
            test_control_characters_and_empty_queue_are_refused, clear_env),
        cmocka_unit_test_setup(test_print_masks_secrets, clear_env),
        cmocka_unit_test_setup(test_project_allowlist, clear_env),
        cmocka_unit_test_setup(test_project_allowlist_items_are_checked,
                               clear_env),
        cmocka_unit_test_setup(test_listen_host_is_checked, clear_env),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
