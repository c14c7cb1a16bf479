/* test_route.c - request targets to routes, and the record route's checks.
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "recgate/route.h"

#define PROJECT "0123456789abcdef0123456789abcdef"
#define RECORDS "/v2/" PROJECT "/script-execution-records/"

static route_kind
kind_of(const char *target)
{
    route rt;

    route_parse(target, &rt);
    return rt.kind;
}

static void
test_fixed_routes(void **state)
{
    (void)state;
    assert_int_equal(kind_of("/healthz"), ROUTE_HEALTHZ);
    assert_int_equal(kind_of("/readyz"), ROUTE_READYZ);
    assert_int_equal(kind_of("/metrics"), ROUTE_METRICS);
    assert_int_equal(kind_of("/metrics?x=1"), ROUTE_METRICS);
    assert_int_equal(kind_of("/healthz/"), ROUTE_NOT_FOUND);
    assert_int_equal(kind_of("/"), ROUTE_NOT_FOUND);
    assert_int_equal(kind_of(""), ROUTE_NOT_FOUND);
    assert_int_equal(kind_of("/v2/"), ROUTE_NOT_FOUND);
    assert_int_equal(kind_of("/v2/" PROJECT "/desktops/x"), ROUTE_NOT_FOUND);
    assert_int_equal(kind_of("/v2/" PROJECT "/script-execution-records"),
                     ROUTE_NOT_FOUND);
}

static void
test_record_route_fills_ids(void **state)
{
    route rt;

    (void)state;
    route_parse(RECORDS "rec-1_A?ignored=1", &rt);
    assert_int_equal(rt.kind, ROUTE_RECORD);
    assert_string_equal(rt.project_id, PROJECT);
    assert_string_equal(rt.record_id, "rec-1_A");
}

static void
test_upper_case_project_id_is_lower_cased(void **state)
{
    route rt;

    (void)state;
    route_parse("/v2/0123456789ABCDEF0123456789AbCdEf"
                "/script-execution-records/Rec-1",
                &rt);
    assert_int_equal(rt.kind, ROUTE_RECORD);
    assert_string_equal(rt.project_id, PROJECT);
    assert_string_equal(rt.record_id, "Rec-1"); /* record ids keep case */
}

static void
test_longest_record_id_is_accepted(void **state)
{
    char target[256];
    char id[65];

    (void)state;
    memset(id, 'a', 64);
    id[64] = '\0';
    strcpy(target, RECORDS);
    strcat(target, id);
    assert_int_equal(kind_of(target), ROUTE_RECORD);
    strcat(target, "a");
    assert_int_equal(kind_of(target), ROUTE_BAD_INPUT);
}

static void
test_bad_record_ids_are_refused(void **state)
{
    static const char *const bad[] = {
        RECORDS "..",  RECORDS "a/../b",    RECORDS "a%2Fb", RECORDS "a%00",
        RECORDS "%61", RECORDS "r\xc3\xa9", RECORDS "",      RECORDS "a/b",
        RECORDS "a b", RECORDS "a.b",       RECORDS "a;b",   RECORDS "/",
        RECORDS "a/",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (kind_of(bad[i]) != ROUTE_BAD_INPUT) {
            fail_msg("\"%s\" should be refused as bad input", bad[i]);
        }
    }
}

static void
test_bad_project_ids_are_refused(void **state)
{
    static const char *const bad[] = {
        "/v2/0123/script-execution-records/r",
        "/v2/0123456789abcdef0123456789abcdeg/script-execution-records/r",
        "/v2/0123456789abcdef0123456789abcdef0/script-execution-records/r",
        "/v2//script-execution-records/r",
        "/v2/%30123456789abcdef0123456789abcde/script-execution-records/r",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (kind_of(bad[i]) != ROUTE_BAD_INPUT) {
            fail_msg("\"%s\" should be refused as bad input", bad[i]);
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixed_routes),
        cmocka_unit_test(test_record_route_fills_ids),
        cmocka_unit_test(test_upper_case_project_id_is_lower_cased),
        cmocka_unit_test(test_longest_record_id_is_accepted),
        cmocka_unit_test(test_bad_record_ids_are_refused),
        cmocka_unit_test(test_bad_project_ids_are_refused),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
