/* test_record.c - unit tests for record validation and normalization.
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "recgate/record.h"

#define ID "rec-1"

/* A record with only id and status, and whatever else is passed in. */
#define BODY(status, rest)                                                     \
    "{\"id\":\"" ID "\",\"status\":\"" status "\"" rest "}"

/* The normalized form of such a record, piece by piece. */
#define OUT_HEAD                                                               \
    "{\"id\":\"" ID "\",\"script_id\":null,\"script_name\":null,"              \
    "\"script_task_id\":null,\"resource_id\":null,\"resource_name\":null,"     \
    "\"resource_type\":null"
#define OUT_TAIL                                                               \
    ",\"command_content\":null,\"command_type\":null,\"result_code\":null,"    \
    "\"reason\":null,\"output\":null"
#define OUT(start, end, status, order)                                         \
    OUT_HEAD ",\"start_time\":" start ",\"end_time\":" end                     \
             ",\"status\":\"" status "\",\"execute_order\":" order OUT_TAIL    \
             "}"

static record_rules *rules;

static int
setup_rules(void **state)
{
    const char *why = NULL;

    (void)state;
    rules = record_rules_create(RECORD_DEFAULT_TERMINAL, &why);
    return rules == NULL ? -1 : 0;
}

static int
teardown_rules(void **state)
{
    (void)state;
    record_rules_destroy(rules);
    rules = NULL;
    return 0;
}

/* Normalizes len bytes of body under the given rules and fails the test
 * at file:line unless the record is accepted as exactly expected. */
static void
check_accepted(const record_rules *r, const char *body, size_t len,
               const char *expected, const char *file, int line)
{
    record_result res;
    const char *why = "(no reason given)";
    int ok;

    if (record_normalize(r, body, len, ID, &res, &why) != 0) {
        print_error("record was rejected: %s\n  body: %s\n", why, body);
        _fail(file, line);
        return;
    }

    ok = res.json != NULL && strcmp(res.json, expected) == 0 &&
         res.len == strlen(expected);
    if (!ok) {
        print_error("normalized record differs\n  got:  %s\n  want: %s\n",
                    res.json, expected);
    }
    record_result_clear(&res);
    if (!ok) {
        _fail(file, line);
    }
}

#define assert_normalized(body, expected)                                      \
    check_accepted(rules, body, strlen(body), expected, __FILE__, __LINE__)

/* Fails the test at file:line unless body is rejected for the reason
 * expected, leaving no JSON behind. */
static void
check_rejected(const char *body, size_t len, const char *expected,
               const char *file, int line)
{
    record_result res;
    const char *why = NULL;

    if (record_normalize(rules, body, len, ID, &res, &why) == 0) {
        print_error("record was accepted, expected \"%s\"\n  got: %s\n",
                    expected, res.json);
        record_result_clear(&res);
        _fail(file, line);
        return;
    }

    if (res.json != NULL) {
        print_error("a rejected record left JSON behind\n");
        _fail(file, line);
    }
    if (why == NULL || strcmp(why, expected) != 0) {
        print_error("record rejected for the wrong reason\n"
                    "  got:  %s\n  want: %s\n  body: %s\n",
                    why != NULL ? why : "(none)", expected, body);
        _fail(file, line);
    }
}

#define assert_rejected(body, expected)                                        \
    check_rejected(body, strlen(body), expected, __FILE__, __LINE__)

/* Fails the test unless body is accepted with the given status and
 * terminal flag under the rules r. */
static void
check_status(const record_rules *r, const char *body, const char *status,
             bool terminal, const char *file, int line)
{
    record_result res;
    const char *why = "(no reason given)";

    if (record_normalize(r, body, strlen(body), ID, &res, &why) != 0) {
        print_error("record was rejected: %s\n  body: %s\n", why, body);
        _fail(file, line);
        return;
    }

    if (strcmp(res.status, status) != 0 || res.terminal != terminal) {
        print_error("status came out as \"%s\" (%s), want \"%s\" (%s)\n",
                    res.status, res.terminal ? "terminal" : "not terminal",
                    status, terminal ? "terminal" : "not terminal");
        record_result_clear(&res);
        _fail(file, line);
        return;
    }
    record_result_clear(&res);
}

#define assert_status(r, body, status, terminal)                               \
    check_status(r, body, status, terminal, __FILE__, __LINE__)

/* Fails the test unless text parses to epoch_ms and formats back as
 * expected. */
static void
check_time(const char *text, int64_t epoch_ms, const char *expected,
           const char *file, int line)
{
    int64_t got = -1;
    char buf[25];

    if (record_parse_time(text, &got) != 0) {
        print_error("time \"%s\" was not accepted\n", text);
        _fail(file, line);
        return;
    }
    if (got != epoch_ms) {
        print_error("time \"%s\" parsed as %lld ms, want %lld ms\n", text,
                    (long long)got, (long long)epoch_ms);
        _fail(file, line);
        return;
    }
    if (strcmp(record_format_time(got, buf), expected) != 0) {
        print_error("%lld ms formatted as \"%s\", want \"%s\"\n",
                    (long long)got, buf, expected);
        _fail(file, line);
    }
}

#define assert_time(text, epoch_ms, expected)                                  \
    check_time(text, epoch_ms, expected, __FILE__, __LINE__)

static void
check_bad_time(const char *text, const char *file, int line)
{
    int64_t got = -1;

    if (record_parse_time(text, &got) == 0) {
        print_error("time \"%s\" was accepted as %lld ms\n", text,
                    (long long)got);
        _fail(file, line);
    }
}

#define assert_bad_time(text) check_bad_time(text, __FILE__, __LINE__)

static void
full_record_is_reordered_and_compacted(void **state)
{
    const char *body =
        "{ \"status\" : \"SUCCESS\", \"output\" : \"hi\\n\\\"there\\\"\",\n"
        "  \"reason\" : \"\", \"result_code\" : \"WKS.0000\",\n"
        "  \"command_type\" : \"POWERSHELL\",\n"
        "  \"command_content\" : \"Write-Output hi\",\n"
        "  \"execute_order\" : 0,\n"
        "  \"end_time\" : \"2024-12-25T07:10:37.5Z\",\n"
        "  \"start_time\" : \"2024-12-25T07:10:36.054Z\",\n"
        "  \"resource_type\" : \"DESKTOP\", \"resource_name\" : \"desk-01\",\n"
        "  \"resource_id\" : \"d-42\", \"script_task_id\" : \"t-7\",\n"
        "  \"script_name\" : \"hello\", \"script_id\" : \"s-3\",\n"
        "  \"id\" : \"rec-1\" }";

    (void)state;
    assert_normalized(body,
                      "{\"id\":\"rec-1\",\"script_id\":\"s-3\","
                      "\"script_name\":\"hello\",\"script_task_id\":\"t-7\","
                      "\"resource_id\":\"d-42\",\"resource_name\":\"desk-01\","
                      "\"resource_type\":\"DESKTOP\","
                      "\"start_time\":\"2024-12-25T07:10:36.054Z\","
                      "\"end_time\":\"2024-12-25T07:10:37.500Z\","
                      "\"status\":\"SUCCESS\",\"execute_order\":0,"
                      "\"command_content\":\"Write-Output hi\","
                      "\"command_type\":\"POWERSHELL\","
                      "\"result_code\":\"WKS.0000\",\"reason\":\"\","
                      "\"output\":\"hi\\n\\\"there\\\"\"}");
}

static void
missing_and_null_fields_become_null(void **state)
{
    (void)state;
    assert_normalized(BODY("RUNNING", ""),
                      OUT("null", "null", "RUNNING", "null"));
    assert_normalized(BODY("RUNNING", ",\"script_id\":null,\"start_time\":null,"
                                      "\"execute_order\":null"),
                      OUT("null", "null", "RUNNING", "null"));
}

static void
status_is_trimmed_and_upper_cased(void **state)
{
    (void)state;
    assert_normalized(BODY(" \\tsuccess \\r\\n", ""),
                      OUT("null", "null", "SUCCESS", "null"));
    assert_normalized(BODY("Canceled", ""),
                      OUT("null", "null", "CANCELED", "null"));
    assert_normalized(BODY("step_2-done", ""),
                      OUT("null", "null", "STEP_2-DONE", "null"));
}

static void
execute_order_forms(void **state)
{
    (void)state;
    assert_normalized(BODY("RUNNING", ",\"execute_order\":\"2\""),
                      OUT("null", "null", "RUNNING", "2"));
    assert_normalized(BODY("RUNNING", ",\"execute_order\":\"007\""),
                      OUT("null", "null", "RUNNING", "7"));
    assert_normalized(BODY("RUNNING", ",\"execute_order\":1"),
                      OUT("null", "null", "RUNNING", "1"));
    assert_normalized(BODY("RUNNING", ",\"execute_order\":-3"),
                      OUT("null", "null", "RUNNING", "-3"));
    assert_normalized(
        BODY("RUNNING", ",\"execute_order\":\"999999999999999999\""),
        OUT("null", "null", "RUNNING", "999999999999999999"));
    assert_normalized(BODY("RUNNING", ",\"execute_order\":9223372036854775807"),
                      OUT("null", "null", "RUNNING", "9223372036854775807"));
}

static void
times_in_every_accepted_form(void **state)
{
    (void)state;
    /* yyyy-MM-dd HH:mm:ss, taken as UTC */
    assert_normalized(
        BODY("RUNNING", ",\"start_time\":\"2024-12-25 07:10:36\""),
        OUT("\"2024-12-25T07:10:36.000Z\"", "null", "RUNNING", "null"));
    /* epoch milliseconds as a string and as an integer */
    assert_normalized(BODY("RUNNING", ",\"start_time\":\"1735110636054\","
                                      "\"end_time\":1735110636054"),
                      OUT("\"2024-12-25T07:10:36.054Z\"",
                          "\"2024-12-25T07:10:36.054Z\"", "RUNNING", "null"));
    /* epoch seconds, as an integer and as a string */
    assert_normalized(BODY("RUNNING", ",\"start_time\":1735110636,"
                                      "\"end_time\":\"1735110637\""),
                      OUT("\"2024-12-25T07:10:36.000Z\"",
                          "\"2024-12-25T07:10:37.000Z\"", "RUNNING", "null"));
    /* RFC 3339 with an offset, and with a nine-digit fraction */
    assert_normalized(BODY("RUNNING",
                           ",\"start_time\":\"2024-12-25T15:10:36+08:00\","
                           "\"end_time\":\"2024-12-25T07:10:36.054999999Z\""),
                      OUT("\"2024-12-25T07:10:36.000Z\"",
                          "\"2024-12-25T07:10:36.054Z\"", "RUNNING", "null"));
}

static void
parse_time_accepts_rfc3339_and_friends(void **state)
{
    (void)state;
    assert_time("2024-12-25T07:10:36.054Z", 1735110636054,
                "2024-12-25T07:10:36.054Z");
    assert_time("2024-12-25t07:10:36.054z", 1735110636054,
                "2024-12-25T07:10:36.054Z");
    assert_time("2024-12-25T07:10:36", 1735110636000,
                "2024-12-25T07:10:36.000Z");
    assert_time("2024-12-25 07:10:36", 1735110636000,
                "2024-12-25T07:10:36.000Z");
    assert_time("2024-12-25T07:10:36.5Z", 1735110636500,
                "2024-12-25T07:10:36.500Z");
    assert_time("2024-12-25T07:10:36.05+00:00", 1735110636050,
                "2024-12-25T07:10:36.050Z");
    assert_time("2024-12-25T07:10:36.054999999Z", 1735110636054,
                "2024-12-25T07:10:36.054Z");
    assert_time("2024-12-25T15:10:36.054+08:00", 1735110636054,
                "2024-12-25T07:10:36.054Z");
    assert_time("2024-12-24T21:40:36.054-09:30", 1735110636054,
                "2024-12-25T07:10:36.054Z");
    assert_time("2024-02-29T12:00:00Z", 1709208000000,
                "2024-02-29T12:00:00.000Z");
    assert_time("2000-02-29 23:59:59.999", 951868799999,
                "2000-02-29T23:59:59.999Z");
    assert_time("1970-01-01T01:00:00+01:00", 0, "1970-01-01T00:00:00.000Z");
    assert_time("9999-12-31T23:59:59.999Z", 253402300799999,
                "9999-12-31T23:59:59.999Z");
    assert_time("1735110636054", 1735110636054, "2024-12-25T07:10:36.054Z");
    /* Too small for milliseconds of a real run: epoch seconds. */
    assert_time("1735110636", 1735110636000, "2024-12-25T07:10:36.000Z");
    assert_time("99999999999", 99999999999000, "5138-11-16T09:46:39.000Z");
    assert_time("100000000000", 100000000000, "1973-03-03T09:46:40.000Z");
    assert_time("0", 0, "1970-01-01T00:00:00.000Z");
    assert_time("000000000000001", 1000, "1970-01-01T00:00:01.000Z");
}

static void
parse_time_rejects_bad_times(void **state)
{
    (void)state;
    assert_bad_time("");
    assert_bad_time("garbage");
    assert_bad_time("2024-13-01T00:00:00Z");
    assert_bad_time("2024-00-01T00:00:00Z");
    assert_bad_time("2024-02-30T00:00:00Z");
    assert_bad_time("2023-02-29T00:00:00Z");
    assert_bad_time("1900-02-29T00:00:00Z");
    assert_bad_time("2024-04-31T00:00:00Z");
    assert_bad_time("2024-01-00T00:00:00Z");
    assert_bad_time("2024-01-01T24:00:00Z");
    assert_bad_time("2024-01-01T23:60:00Z");
    assert_bad_time("2024-01-01T23:59:60Z");
    assert_bad_time("2024-01-01T00:00:00+24:00");
    assert_bad_time("2024-01-01T00:00:00+08:60");
    assert_bad_time("2024-01-01T00:00:00+0800");
    assert_bad_time("2024-01-01T00:00:00+08");
    assert_bad_time("2024-01-01T00:00:00.Z");
    assert_bad_time("2024-01-01T00:00:00.0123456789Z");
    assert_bad_time("2024-01-01T00:00:00ZZ");
    assert_bad_time("2024-01-01T00:00:00Z ");
    assert_bad_time(" 2024-01-01T00:00:00Z");
    assert_bad_time("2024-01-01_00:00:00Z");
    assert_bad_time("2024-1-01T00:00:00Z");
    assert_bad_time("2024-01-01T00:00");
    assert_bad_time("2024-01-01");
    assert_bad_time("1969-12-31T23:59:59.999Z");
    assert_bad_time("1970-01-01T00:00:00+00:01");
    assert_bad_time("9999-12-31T23:59:59-00:01");
    assert_bad_time("0000-01-01T00:00:00Z");
    assert_bad_time("1234567890123456");
    assert_bad_time("999999999999999");
    assert_bad_time("-1");
    assert_bad_time("+1");
    assert_bad_time("１２３");
    assert_int_equal(record_parse_time(NULL, &(int64_t){0}), -1);
}

static void
format_time_clamps_out_of_range_values(void **state)
{
    char buf[25];

    (void)state;
    assert_string_equal(record_format_time(-1, buf),
                        "1970-01-01T00:00:00.000Z");
    assert_string_equal(record_format_time(INT64_MAX, buf),
                        "9999-12-31T23:59:59.999Z");
    assert_string_equal(record_format_time(INT64_MIN, buf),
                        "1970-01-01T00:00:00.000Z");
}

static void
unknown_fields_are_kept_at_the_end_in_order(void **state)
{
    (void)state;
    assert_normalized(
        "{\"zeta\":1,\"id\":\"rec-1\",\"alpha\":{\"b\":[1,2,{\"c\":null}]},"
        "\"status\":\"RUNNING\",\"extra\":null,\"flag\":false,"
        "\"note\":\"x\"}",
        OUT_HEAD ",\"start_time\":null,\"end_time\":null,"
                 "\"status\":\"RUNNING\",\"execute_order\":null" OUT_TAIL
                 ",\"zeta\":1,\"alpha\":{\"b\":[1,2,{\"c\":null}]},"
                 "\"extra\":null,\"flag\":false,\"note\":\"x\"}");
}

static void
non_ascii_text_is_kept_as_utf8(void **state)
{
    (void)state;
    assert_normalized(
        BODY("RUNNING", ",\"output\":\"\\u00e9t\\u00e9 \xe6\xb8\x85\xe7\x90\x86"
                        "\",\"caf\xc3\xa9\":\"\\ud83d\\ude00\""),
        OUT_HEAD ",\"start_time\":null,\"end_time\":null,"
                 "\"status\":\"RUNNING\",\"execute_order\":null,"
                 "\"command_content\":null,\"command_type\":null,"
                 "\"result_code\":null,\"reason\":null,"
                 "\"output\":\"\xc3\xa9t\xc3\xa9 \xe6\xb8\x85\xe7\x90\x86\","
                 "\"caf\xc3\xa9\":\"\xf0\x9f\x98\x80\"}");
}

static void
body_is_read_only_up_to_len(void **state)
{
    const char body[] = BODY("RUNNING", "") "trailing junk";

    (void)state;
    check_accepted(rules, body, strlen(BODY("RUNNING", "")),
                   OUT("null", "null", "RUNNING", "null"), __FILE__, __LINE__);
}

static void
default_rules_tell_terminal_from_running(void **state)
{
    (void)state;
    assert_status(rules, BODY("SUCCESS", ""), "SUCCESS", true);
    assert_status(rules, BODY("failed", ""), "FAILED", true);
    assert_status(rules, BODY("Finish", ""), "FINISH", true);
    assert_status(rules, BODY("FINISHED", ""), "FINISHED", true);
    assert_status(rules, BODY("timeout", ""), "TIMEOUT", true);
    assert_status(rules, BODY("CANCELED", ""), "CANCELED", true);
    assert_status(rules, BODY("cancelled", ""), "CANCELLED", true);
    assert_status(rules, BODY(" skipped ", ""), "SKIPPED", true);
    assert_status(rules, BODY("RUNNING", ""), "RUNNING", false);
    assert_status(rules, BODY("INIT", ""), "INIT", false);
    assert_status(rules, BODY("waiting", ""), "WAITING", false);
    assert_status(rules, BODY("SUCCESSFUL", ""), "SUCCESSFUL", false);
    assert_status(rules, BODY("MYSTERY-42", ""), "MYSTERY-42", false);
    assert_status(NULL, BODY("SUCCESS", ""), "SUCCESS", false);
}

static void
custom_rules_are_case_insensitive_and_trimmed(void **state)
{
    const char *why = NULL;
    record_rules *custom =
        record_rules_create(" done ,\tFailed_Hard,x-1 ", &why);

    (void)state;
    assert_non_null(custom);
    assert_true(record_is_terminal(custom, "DONE"));
    assert_true(record_is_terminal(custom, "FAILED_HARD"));
    assert_true(record_is_terminal(custom, "X-1"));
    assert_false(record_is_terminal(custom, "SUCCESS"));
    assert_false(record_is_terminal(custom, "DON"));
    assert_false(record_is_terminal(custom, ""));
    assert_status(custom, BODY("Done", ""), "DONE", true);
    assert_status(custom, BODY("SUCCESS", ""), "SUCCESS", false);
    record_rules_destroy(custom);
}

static void
check_bad_rules(const char *csv, const char *expected, const char *file,
                int line)
{
    const char *why = NULL;
    record_rules *r = record_rules_create(csv, &why);

    if (csv == NULL) {
        csv = "(null)";
    }
    if (r != NULL) {
        print_error("terminal list \"%s\" was accepted\n", csv);
        record_rules_destroy(r);
        _fail(file, line);
        return;
    }
    if (why == NULL || strcmp(why, expected) != 0) {
        print_error("terminal list \"%s\" rejected for the wrong reason\n"
                    "  got:  %s\n  want: %s\n",
                    csv, why != NULL ? why : "(none)", expected);
        _fail(file, line);
    }
}

#define assert_bad_rules(csv, why) check_bad_rules(csv, why, __FILE__, __LINE__)

static void
bad_terminal_lists_are_refused(void **state)
{
    (void)state;
    assert_bad_rules(NULL, "terminal status list is empty");
    assert_bad_rules("", "terminal status list is empty");
    assert_bad_rules(" \t ", "terminal status list is empty");
    assert_bad_rules("A,,B", "terminal status list has an empty item");
    assert_bad_rules("A,", "terminal status list has an empty item");
    assert_bad_rules(",A", "terminal status list has an empty item");
    assert_bad_rules("A, ,B", "terminal status list has an empty item");
    assert_bad_rules("OK!", "terminal status has an invalid character");
    assert_bad_rules("NOT DONE", "terminal status has an invalid character");
    assert_bad_rules("A,"
                     "X234567890123456789012345678901234567890123456789012345"
                     "6789012345",
                     "terminal status is too long");
    assert_null(record_rules_create("", NULL));
}

static void
rejects_bodies_that_are_not_json_objects(void **state)
{
    (void)state;
    assert_rejected("", "body is not valid JSON");
    assert_rejected("not json", "body is not valid JSON");
    assert_rejected("{\"id\":\"rec-1\",", "body is not valid JSON");
    assert_rejected(BODY("RUNNING", "") " x", "body is not valid JSON");
    assert_rejected("\"rec-1\"", "body is not valid JSON");
    assert_rejected(BODY("RUNNING", ",\"output\":\"\xff\""),
                    "body is not valid JSON");
    assert_rejected("[]", "body is not a JSON object");
    assert_rejected("[" BODY("RUNNING", "") "]", "body is not a JSON object");
    check_rejected(NULL, 0, "body is empty", __FILE__, __LINE__);
}

static void
rejects_duplicate_keys_and_nul_characters(void **state)
{
    const char raw_nul[] = "{\"id\":\"rec-1\",\"status\":\"RUN\0NING\"}";

    (void)state;
    assert_rejected(BODY("RUNNING", ",\"id\":\"rec-1\""),
                    "body has a duplicate key");
    assert_rejected(BODY("RUNNING", ",\"x\":1,\"x\":1"),
                    "body has a duplicate key");
    assert_rejected(BODY("RUNNING", ",\"output\":\"a\\u0000b\""),
                    "body has a NUL character in a string");
    assert_rejected(BODY("RUNNING", ",\"a\\u0000b\":1"),
                    "body has a NUL character in a string");
    check_rejected(raw_nul, sizeof(raw_nul) - 1, "body is not valid JSON",
                   __FILE__, __LINE__);
}

static void
rejects_missing_or_foreign_ids(void **state)
{
    (void)state;
    assert_rejected("{}", "id is missing");
    assert_rejected("{\"status\":\"RUNNING\"}", "id is missing");
    assert_rejected("{\"id\":null,\"status\":\"RUNNING\"}", "id is missing");
    assert_rejected("{\"id\":\"\",\"status\":\"RUNNING\"}", "id is empty");
    assert_rejected("{\"id\":1,\"status\":\"RUNNING\"}", "id is not a string");
    assert_rejected("{\"id\":[\"rec-1\"],\"status\":\"RUNNING\"}",
                    "id is not a string");
    assert_rejected("{\"id\":\"rec-2\",\"status\":\"RUNNING\"}",
                    "id does not match the requested record");
    assert_rejected("{\"id\":\"REC-1\",\"status\":\"RUNNING\"}",
                    "id does not match the requested record");
    assert_rejected("{\"id\":\"rec-1 \",\"status\":\"RUNNING\"}",
                    "id does not match the requested record");
    assert_rejected("{\"id\":\"rec-\",\"status\":\"RUNNING\"}",
                    "id does not match the requested record");
}

static void
rejects_an_unknown_expected_id(void **state)
{
    record_result res;
    const char *why = NULL;
    const char *body = BODY("RUNNING", "");

    (void)state;
    assert_int_equal(
        record_normalize(rules, body, strlen(body), NULL, &res, &why), -1);
    assert_null(res.json);
    assert_string_equal(why, "id does not match the requested record");
}

static void
rejects_bad_statuses(void **state)
{
    (void)state;
    assert_rejected("{\"id\":\"rec-1\"}", "status is missing");
    assert_rejected("{\"id\":\"rec-1\",\"status\":null}", "status is missing");
    assert_rejected(BODY("", ""), "status is empty");
    assert_rejected(BODY(" \\t\\n ", ""), "status is blank");
    assert_rejected("{\"id\":\"rec-1\",\"status\":1}",
                    "status is not a string");
    assert_rejected("{\"id\":\"rec-1\",\"status\":true}",
                    "status is not a string");
    assert_rejected(BODY("RUN NING", ""), "status has an invalid character");
    assert_rejected(BODY("DONE!", ""), "status has an invalid character");
    assert_rejected(BODY("SUCCESS.", ""), "status has an invalid character");
    assert_rejected(BODY("\xc3\xa9t\xc3\xa9", ""),
                    "status has an invalid character");
    assert_rejected(
        BODY("X234567890123456789012345678901234567890123456789012345678901234"
             "5",
             ""),
        "status is too long");
    assert_normalized(
        BODY(" X23456789012345678901234567890123456789012345678901234567890123"
             "4 ",
             ""),
        OUT("null", "null",
            "X234567890123456789012345678901234567890123456789012345678901234",
            "null"));
}

static void
rejects_string_fields_of_other_types(void **state)
{
    static const char *const names[] = {
        "script_id",     "script_name",   "script_task_id",  "resource_id",
        "resource_name", "resource_type", "command_content", "command_type",
        "result_code",   "reason",        "output",
    };
    static const char *const values[] = {"1", "1.5", "true", "[]", "{}"};
    char body[200], why[64];

    (void)state;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        snprintf(why, sizeof(why), "%s is not a string", names[i]);
        for (size_t j = 0; j < sizeof(values) / sizeof(values[0]); j++) {
            snprintf(body, sizeof(body), BODY("RUNNING", ",\"%s\":%s"),
                     names[i], values[j]);
            assert_rejected(body, why);
        }
    }
}

static void
rejects_bad_execute_orders(void **state)
{
    const char *why = "execute_order is not an integer";

    (void)state;
    assert_rejected(BODY("RUNNING", ",\"execute_order\":1.5"), why);
    assert_rejected(BODY("RUNNING", ",\"execute_order\":1.0"), why);
    assert_rejected(BODY("RUNNING", ",\"execute_order\":\"abc\""), why);
    assert_rejected(BODY("RUNNING", ",\"execute_order\":true"), why);
    assert_rejected(BODY("RUNNING", ",\"execute_order\":\"\""), why);
    assert_rejected(BODY("RUNNING", ",\"execute_order\":\"-1\""), why);
    assert_rejected(BODY("RUNNING", ",\"execute_order\":\"+1\""), why);
    assert_rejected(BODY("RUNNING", ",\"execute_order\":\" 1\""), why);
    assert_rejected(BODY("RUNNING", ",\"execute_order\":\"1.5\""), why);
    assert_rejected(
        BODY("RUNNING", ",\"execute_order\":\"1234567890123456789\""), why);
    assert_rejected(BODY("RUNNING", ",\"execute_order\":[1]"), why);
}

static void
rejects_bad_times(void **state)
{
    const char *why = "start_time is not a valid time";

    (void)state;
    assert_rejected(BODY("RUNNING", ",\"start_time\":\"2024-13-01 00:00:00\""),
                    why);
    assert_rejected(BODY("RUNNING", ",\"start_time\":\"2024-02-30T00:00:00Z\""),
                    why);
    assert_rejected(BODY("RUNNING", ",\"start_time\":\"2023-02-29 00:00:00\""),
                    why);
    assert_rejected(BODY("RUNNING", ",\"start_time\":\"2024-01-01T24:00:00Z\""),
                    why);
    assert_rejected(BODY("RUNNING", ",\"start_time\":\"garbage\""), why);
    assert_rejected(BODY("RUNNING", ",\"start_time\":\"\""), why);
    assert_rejected(
        BODY("RUNNING", ",\"start_time\":\"2024-01-01T00:00:00+25:00\""), why);
    assert_rejected(BODY("RUNNING", ",\"start_time\":-1"), why);
    assert_rejected(BODY("RUNNING", ",\"start_time\":253402300800000"), why);
    assert_rejected(BODY("RUNNING", ",\"start_time\":1735110636054.0"), why);
    assert_rejected(BODY("RUNNING", ",\"start_time\":true"), why);
    assert_rejected(BODY("RUNNING", ",\"start_time\":{}"), why);
    assert_rejected(BODY("RUNNING", ",\"end_time\":\"2024-02-30 00:00:00\""),
                    "end_time is not a valid time");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(full_record_is_reordered_and_compacted),
        cmocka_unit_test(missing_and_null_fields_become_null),
        cmocka_unit_test(status_is_trimmed_and_upper_cased),
        cmocka_unit_test(execute_order_forms),
        cmocka_unit_test(times_in_every_accepted_form),
        cmocka_unit_test(parse_time_accepts_rfc3339_and_friends),
        cmocka_unit_test(parse_time_rejects_bad_times),
        cmocka_unit_test(format_time_clamps_out_of_range_values),
        cmocka_unit_test(unknown_fields_are_kept_at_the_end_in_order),
        cmocka_unit_test(non_ascii_text_is_kept_as_utf8),
        cmocka_unit_test(body_is_read_only_up_to_len),
        cmocka_unit_test(default_rules_tell_terminal_from_running),
        cmocka_unit_test(custom_rules_are_case_insensitive_and_trimmed),
        cmocka_unit_test(bad_terminal_lists_are_refused),
        cmocka_unit_test(rejects_bodies_that_are_not_json_objects),
        cmocka_unit_test(rejects_duplicate_keys_and_nul_characters),
        cmocka_unit_test(rejects_missing_or_foreign_ids),
        cmocka_unit_test(rejects_an_unknown_expected_id),
        cmocka_unit_test(rejects_bad_statuses),
        cmocka_unit_test(rejects_string_fields_of_other_types),
        cmocka_unit_test(rejects_bad_execute_orders),
        cmocka_unit_test(rejects_bad_times),
    };

    return cmocka_run_group_tests(tests, setup_rules, teardown_rules);
}
