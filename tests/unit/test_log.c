/* test_log.c - every log line is one JSON object, whatever it carries.
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "recgate/log.h"

static char captured[65536];

/* Runs fn with stderr sent to a file, and leaves its bytes in captured. */
static void
capture(void (*fn)(void))
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    size_t n;

    dup2(fileno(tmp), STDERR_FILENO);
    fn();
    log_flush();
    dup2(saved, STDERR_FILENO);
    close(saved);

    rewind(tmp);
    n = fread(captured, 1, sizeof(captured) - 1, tmp);
    captured[n] = '\0';
    fclose(tmp);
}

static void
write_hostile_values(void)
{
    char longer[6000];
    log_line line;

    memset(longer, '"', sizeof(longer) - 1);
    longer[sizeof(longer) - 1] = '\0';

    log_begin(&line, LOG_INFO, "request");
    log_str(&line, "path", "/v2/\xff\xc0\x80/\x01\x7f\"\\ caf\xc3\xa9 \xed\xa0\x80");
    log_int(&line, "status", 400);
    log_end(&line);

    log_begin(&line, LOG_INFO, "request");
    log_str(&line, "path", longer);
    log_int(&line, "status", 414);
    log_end(&line);
}

static void
test_hostile_values_stay_json(void **state)
{
    json_t *first;
    json_t *second;
    char *nl;

    (void)state;
    log_set_level(LOG_INFO);
    capture(write_hostile_values);

    nl = strchr(captured, '\n');
    assert_non_null(nl);
    first = json_loadb(captured, (size_t)(nl - captured), 0, NULL);
    second = json_loads(nl + 1, JSON_DISABLE_EOF_CHECK, NULL);
    if (first == NULL || second == NULL) {
        fail_msg("a log line is not JSON:\n%s", captured);
    }
    assert_int_equal(json_integer_value(json_object_get(first, "status")),
                     400);
    assert_non_null(strstr(json_string_value(json_object_get(first, "path")),
                           "caf\xc3\xa9"));
    assert_int_equal(json_integer_value(json_object_get(second, "status")),
                     414);
    assert_true(strlen(json_string_value(json_object_get(second, "path")))
                < 1100);
    json_decref(first);
    json_decref(second);
}

static void
write_levels(void)
{
    log_msg(LOG_DEBUG, "not shown", NULL, NULL);
    log_msg(LOG_INFO, "buffered first", NULL, NULL);
    log_msg(LOG_ERROR, "written at once", NULL, NULL);
}

static void
test_buffered_lines_keep_their_order(void **state)
{
    (void)state;
    log_set_level(LOG_INFO);
    log_set_buffer(4096);
    capture(write_levels);
    log_set_buffer(0);

    assert_null(strstr(captured, "not shown"));
    assert_non_null(strstr(captured, "buffered first"));
    assert_true(strstr(captured, "buffered first")
                < strstr(captured, "written at once"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_values_stay_json),
        cmocka_unit_test(test_buffered_lines_keep_their_order),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
