/* test_log.c - every log line is one JSON object, whatever it carries.
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <event2/event.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <sys/stat.h>
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
    log_str(&line, "path",
            "/v2/\xff\xc0\x80/\x01\x7f\"\\ caf\xc3\xa9 \xed\xa0\x80");
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
    assert_int_equal(json_integer_value(json_object_get(first, "status")), 400);
    assert_non_null(strstr(json_string_value(json_object_get(first, "path")),
                           "caf\xc3\xa9"));
    assert_int_equal(json_integer_value(json_object_get(second, "status")),
                     414);
    assert_true(strlen(json_string_value(json_object_get(second, "path"))) <
                1100);
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
    assert_true(strstr(captured, "buffered first") <
                strstr(captured, "written at once"));
}

/* 100 lines of about 200 bytes: more than a pipe keeps whole, less
 * than the largest buffer. */
static void
write_many_lines(void)
{
    char path[160];

    memset(path, 'p', sizeof(path) - 1);
    path[sizeof(path) - 1] = '\0';
    for (int i = 0; i < 100; i++) {
        log_line line;

        log_begin(&line, LOG_INFO, "request");
        log_str(&line, "path", path);
        log_int(&line, "status", 200);
        log_end(&line);
    }
}

/* On a regular file a batch may be as large as LOG_BUFFER_MAX: the 100
 * lines wait for the flush, and then all arrive. */
static void
test_a_file_takes_large_batches(void **state)
{
    FILE *tmp = tmpfile();
    int saved = dup(STDERR_FILENO);
    struct stat st;

    (void)state;
    log_set_level(LOG_INFO);
    dup2(fileno(tmp), STDERR_FILENO);
    log_set_buffer(LOG_BUFFER_MAX);
    assert_int_equal(log_get_buffer(), LOG_BUFFER_MAX);

    write_many_lines();
    fstat(fileno(tmp), &st);
    assert_int_equal(st.st_size, 0);
    log_set_buffer(0);
    fstat(fileno(tmp), &st);
    assert_true(st.st_size > 100 * 200);

    dup2(saved, STDERR_FILENO);
    close(saved);
    fclose(tmp);
}

/* On a pipe no batch is larger than PIPE_BUF, the most a pipe keeps
 * whole; the lines still all arrive, each whole. */
static void
test_a_pipe_takes_pipe_buf_batches(void **state)
{
    int fds[2];
    int saved = dup(STDERR_FILENO);
    static char all[65536];
    size_t total = 0;
    ssize_t n;
    int lines = 0;

    (void)state;
    assert_int_equal(pipe(fds), 0);
    log_set_level(LOG_INFO);
    dup2(fds[1], STDERR_FILENO);
    log_set_buffer(LOG_BUFFER_MAX);
    assert_int_equal(log_get_buffer(), PIPE_BUF);

    write_many_lines();
    log_set_buffer(0);
    dup2(saved, STDERR_FILENO);
    close(saved);
    close(fds[1]);

    while ((n = read(fds[0], all + total, sizeof(all) - 1 - total)) > 0) {
        total += (size_t)n;
    }
    close(fds[0]);
    all[total] = '\0';
    for (char *p = all; (p = strstr(p, "{\"ts\"")) != NULL; p++) {
        char *end = strchr(p, '\n');

        assert_non_null(end);
        assert_int_equal(end[-1], '}');
        lines++;
    }
    assert_int_equal(lines, 100);
}

static void
write_numbers(void)
{
    log_line line;

    log_begin(&line, LOG_INFO, "numbers");
    log_int(&line, "zero", 0);
    log_int(&line, "neg", -42);
    log_int(&line, "min", INT64_MIN);
    log_num(&line, "ms", 12.3456);
    log_num(&line, "small", 0.0004);
    log_num(&line, "carry", 1.9996);
    log_num(&line, "negative", -2.5);
    log_num(&line, "nan", 0.0 / 0.0);
    log_end(&line);
}

/* Numbers are written without printf; they must read as printf would
 * have written them, and the line must stay JSON. */
static void
test_numbers_are_written_as_printf_would(void **state)
{
    json_t *doc;
    char pid[32];

    (void)state;
    log_set_level(LOG_INFO);
    capture(write_numbers);

    snprintf(pid, sizeof(pid), "\"pid\":%ld,", (long)getpid());
    assert_non_null(strstr(captured, pid));
    assert_non_null(strstr(captured, "\"zero\":0,\"neg\":-42,"
                                     "\"min\":-9223372036854775808,"
                                     "\"ms\":12.346,\"small\":0.000,"
                                     "\"carry\":2.000,\"negative\":-2.500,"
                                     "\"nan\":null}"));
    assert_memory_equal(captured, "{\"ts\":\"", 7);
    assert_true(captured[30] == 'Z' && captured[26] == '.');
    doc = json_loads(captured, JSON_DISABLE_EOF_CHECK, NULL);
    if (doc == NULL) {
        fail_msg("not JSON: %s", captured);
    }
    json_decref(doc);
}

static void
write_libevent_flood(void)
{
    log_libevent(EVENT_LOG_DEBUG, "debug chatter, not shown at info");
    for (int i = 0; i < 1000; i++) {
        log_libevent(EVENT_LOG_WARN,
                     "Error from accept() call: Too many open files");
    }
    log_flush_suppressed(true);
}

/* libevent's messages are JSON lines under one msg, so a flood of them
 * is cut to the budget of one kind plus its summary; its debug lines
 * follow log.level. */
static void
test_libevent_messages_are_json_and_limited(void **state)
{
    int lines = 0;
    int warnings = 0;

    (void)state;
    log_set_level(LOG_INFO);
    capture(write_libevent_flood);

    assert_null(strstr(captured, "debug chatter"));
    for (char *p = captured; *p != '\0'; lines++) {
        char *nl = strchr(p, '\n');
        json_t *doc;

        assert_non_null(nl);
        doc = json_loadb(p, (size_t)(nl - p), 0, NULL);
        if (doc == NULL) {
            fail_msg("a log line is not JSON: %.*s", (int)(nl - p), p);
        }
        if (strcmp(json_string_value(json_object_get(doc, "msg")),
                   "libevent") == 0) {
            assert_string_equal(
                json_string_value(json_object_get(doc, "level")), "warn");
            assert_string_equal(
                json_string_value(json_object_get(doc, "detail")),
                "Error from accept() call: Too many open files");
            warnings++;
        }
        json_decref(doc);
        p = nl + 1;
    }
    assert_true(warnings >= 1);
    assert_true(lines <= 30);
    assert_non_null(strstr(captured, "similar log lines suppressed"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hostile_values_stay_json),
        cmocka_unit_test(test_buffered_lines_keep_their_order),
        cmocka_unit_test(test_a_file_takes_large_batches),
        cmocka_unit_test(test_a_pipe_takes_pipe_buf_batches),
        cmocka_unit_test(test_numbers_are_written_as_printf_would),
        cmocka_unit_test(test_libevent_messages_are_json_and_limited),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
