/* test_sign.c - the signer against vectors made by Huawei's SDK signer.
 * SPDX-License-Identifier: MIT
 *
 * tests/unit/data/sign_vectors.json was produced by
 * tests/conformance/make_vectors.js with @huaweicloud/huaweicloud-sdk-core;
 * every Authorization it holds must come out of sign_request unchanged.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recgate/selfcheck.h"
#include "recgate/sign.h"

#define VECTORS RECGATE_TEST_DATA "/sign_vectors.json"


static char *
read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf;

    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = malloc(*len + 1);
    assert_int_equal(fread(buf, 1, *len, f), *len);
    fclose(f);
    return buf;
}


static void
test_every_sdk_vector_matches(void **state)
{
    char err[256] = "";
    size_t len;
    char *json = read_file(VECTORS, &len);
    int checked = selfcheck_signer_with(json, len, err, sizeof(err));

    (void)state;
    free(json);
    if (checked < 6) {
        fail_msg("the signer disagrees with Huawei's SDK: %s", err);
    }
}


static void
test_built_in_vectors_match(void **state)
{
    char err[256] = "";

    (void)state;
    if (selfcheck_signer(err, sizeof(err)) < 6) {
        fail_msg("the start-up check fails: %s", err);
    }
}


static void
test_a_tampered_vector_is_caught(void **state)
{
    char err[256] = "";
    size_t len;
    char *json = read_file(VECTORS, &len);
    char *sig = strstr(json, "Signature=");

    (void)state;
    sig[10] = sig[10] == '0' ? '1' : '0';
    assert_int_equal(selfcheck_signer_with(json, len, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "plain-record"));
    free(json);
}


static void
test_header_order_and_case_do_not_matter(void **state)
{
    sign_header a[] = {{"X-Sdk-Date", "20261203T101500Z"},
                       {"Host", "example.com"},
                       {"content-type", "application/json"}};
    sign_header b[] = {{"content-type", "application/json"},
                       {"host", "example.com"},
                       {"x-sdk-date", "20261203T101500Z"}};
    char one[SIGN_AUTH_MAX];
    char two[SIGN_AUTH_MAX];

    (void)state;
    assert_int_equal(sign_request("ak", "sk", "GET", "/v2/p/r", NULL, a, 3,
                                  NULL, 0, one, sizeof(one)), 0);
    assert_int_equal(sign_request("ak", "sk", "GET", "/v2/p/r", NULL, b, 3,
                                  NULL, 0, two, sizeof(two)), 0);
    assert_string_equal(one, two);
    assert_non_null(strstr(one, "SignedHeaders=content-type;host;"
                                "x-sdk-date,"));
}


static void
test_missing_host_or_date_is_refused(void **state)
{
    sign_header no_host[] = {{"X-Sdk-Date", "20261203T101500Z"}};
    sign_header no_date[] = {{"Host", "example.com"}};
    char out[SIGN_AUTH_MAX];

    (void)state;
    assert_int_equal(sign_request("ak", "sk", "GET", "/", NULL, no_host, 1,
                                  NULL, 0, out, sizeof(out)), -1);
    assert_int_equal(sign_request("ak", "sk", "GET", "/", NULL, no_date, 1,
                                  NULL, 0, out, sizeof(out)), -1);
}


static void
test_small_output_buffer_is_refused(void **state)
{
    sign_header h[] = {{"X-Sdk-Date", "20261203T101500Z"},
                       {"Host", "example.com"}};
    char out[32];

    (void)state;
    assert_int_equal(sign_request("ak", "sk", "GET", "/", NULL, h, 2, NULL, 0,
                                  out, sizeof(out)), -1);
}


static void
test_uri_encoding_keeps_only_unreserved(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(sign_uri_encode("a-b_c.d~e", 9, out, sizeof(out)), 9);
    assert_string_equal(out, "a-b_c.d~e");
    sign_uri_encode("rec:1 %/\xc3\xa9", 10, out, sizeof(out));
    assert_string_equal(out, "rec%3A1%20%25%2F%C3%A9");
    assert_int_equal(sign_uri_encode("::::", 4, out, 8), -1);
}


static void
test_date_format(void **state)
{
    char buf[SIGN_DATE_LEN + 1];

    (void)state;
    sign_format_date((time_t)1709164800, buf);     /* 2024-02-29 00:00 */
    assert_string_equal(buf, "20240229T000000Z");
}


int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_sdk_vector_matches),
        cmocka_unit_test(test_built_in_vectors_match),
        cmocka_unit_test(test_a_tampered_vector_is_caught),
        cmocka_unit_test(test_header_order_and_case_do_not_matter),
        cmocka_unit_test(test_missing_host_or_date_is_refused),
        cmocka_unit_test(test_small_output_buffer_is_refused),
        cmocka_unit_test(test_uri_encoding_keeps_only_unreserved),
        cmocka_unit_test(test_date_format),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
