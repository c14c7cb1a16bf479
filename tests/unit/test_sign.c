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

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "recgate/sign.h"

#define VECTORS RECGATE_TEST_DATA "/sign_vectors.json"


/* The request-line path of a vector's URL: after the authority, before
 * any query. */
static const char *
url_path(const char *url, char *buf, size_t size)
{
    const char *p = strstr(url, "://");

    p = strchr(p + 3, '/');
    snprintf(buf, size, "%.*s", (int)strcspn(p, "?"), p);
    return buf;
}


static void
check_vector(json_t *v)
{
    const char *name = json_string_value(json_object_get(v, "name"));
    json_t *headers = json_object_get(v, "headers");
    sign_header h[16];
    char path[512];
    char auth[SIGN_AUTH_MAX];
    size_t n = 0;
    const char *key;
    json_t *value;
    int rc;

    json_object_foreach(headers, key, value) {
        h[n].name = key;
        h[n].value = json_string_value(value);
        n++;
    }

    rc = sign_request(json_string_value(json_object_get(v, "ak")),
                      json_string_value(json_object_get(v, "sk")),
                      json_string_value(json_object_get(v, "method")),
                      url_path(json_string_value(json_object_get(v, "url")),
                               path, sizeof(path)),
                      NULL, h, n, NULL, 0, auth, sizeof(auth));
    if (rc != 0) {
        fail_msg("vector %s: sign_request failed", name);
    }
    if (strcmp(auth, json_string_value(json_object_get(v, "authorization")))
        != 0) {
        fail_msg("vector %s: the signature differs from the SDK's:\n"
                 "  ours: %s\n  sdk:  %s", name, auth,
                 json_string_value(json_object_get(v, "authorization")));
    }
}


static void
test_every_sdk_vector_matches(void **state)
{
    json_error_t err;
    json_t *vectors = json_load_file(VECTORS, 0, &err);
    size_t i;
    json_t *v;

    (void)state;
    if (vectors == NULL) {
        fail_msg("cannot read %s: %s", VECTORS, err.text);
    }
    assert_true(json_array_size(vectors) >= 6);
    json_array_foreach(vectors, i, v) {
        check_vector(v);
    }
    json_decref(vectors);
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
        cmocka_unit_test(test_header_order_and_case_do_not_matter),
        cmocka_unit_test(test_missing_host_or_date_is_refused),
        cmocka_unit_test(test_small_output_buffer_is_refused),
        cmocka_unit_test(test_uri_encoding_keeps_only_unreserved),
        cmocka_unit_test(test_date_format),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
