/* test_l1.c - the in-process cache: expiry, eviction within the budget,
 * references that outlive eviction, running out of memory.
 * SPDX-License-Identifier: MIT
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recgate/l1.h"

#define PROJECT "0123456789abcdef0123456789abcdef"
#define ETAG "\"0123456789abcdef0123456789abcdef\""
#define BODY_LEN 100
#define HOUR_MS (3600 * 1000)

/* Linked with -Wl,--wrap=malloc: the cache's malloc comes here, and fails
 * while fail_malloc is set. */
void *__real_malloc(size_t size);
void *__wrap_malloc(size_t size);

static bool fail_malloc;

void *
__wrap_malloc(size_t size)
{
    return fail_malloc ? NULL : __real_malloc(size);
}

/* A record body of BODY_LEN bytes that tells records apart. */
static const char *
body_of(const char *record)
{
    static char body[BODY_LEN + 1];

    memset(body, 'x', BODY_LEN);
    memcpy(body, record, strlen(record));
    body[BODY_LEN] = '\0';
    return body;
}

static void
put(l1_cache *c, const char *record, int64_t now, int64_t ttl)
{
    l1_put(c, PROJECT, record, body_of(record), BODY_LEN, ETAG, now, ttl);
}

/* True when the cache serves record at now_ms with its own body. */
static bool
holds(l1_cache *c, const char *record, int64_t now_ms)
{
    l1_entry *e = l1_get(c, PROJECT, record, now_ms);
    size_t len;
    bool same;

    if (e == NULL) {
        return false;
    }
    l1_entry_body(e, &len);
    assert_int_equal(len, BODY_LEN);
    same = memcmp(l1_entry_body(e, &len), body_of(record), len) == 0;
    l1_release(e);
    return same;
}

/* What one entry of BODY_LEN bytes counts against the budget. */
static size_t
entry_size(void)
{
    l1_cache *c = l1_create(1 << 20);
    size_t size;

    put(c, "probe", 0, 0);
    size = l1_bytes(c);
    l1_destroy(c);
    return size;
}

static void
test_entry_is_served_until_its_ttl(void **state)
{
    l1_cache *c = l1_create(1 << 20);

    (void)state;
    put(c, "rec-1", 1000, 500);
    assert_true(holds(c, "rec-1", 1000));
    assert_true(holds(c, "rec-1", 1499));

    /* Expired: absent, and no longer counted. */
    assert_false(holds(c, "rec-1", 1500));
    assert_int_equal(l1_count(c), 0);
    assert_int_equal(l1_bytes(c), 0);
    l1_destroy(c);
}

static void
test_ttl_zero_never_expires(void **state)
{
    l1_cache *c = l1_create(1 << 20);

    (void)state;
    put(c, "rec-1", 1000, 0);
    assert_true(holds(c, "rec-1", 1000 + 365LL * 24 * HOUR_MS));
    assert_true(holds(c, "rec-1", INT64_MAX - 1));
    l1_destroy(c);
}

static void
test_clock_set_back_counts_as_expired(void **state)
{
    l1_cache *c = l1_create(1 << 20);

    (void)state;
    put(c, "rec-1", 10 * HOUR_MS, HOUR_MS);
    assert_false(holds(c, "rec-1", 10 * HOUR_MS - 1));
    assert_int_equal(l1_count(c), 0);
    l1_destroy(c);
}

static void
test_expired_entry_is_replaced_by_a_fresh_one(void **state)
{
    l1_cache *c = l1_create(1 << 20);
    l1_entry *e;
    size_t len;

    (void)state;
    l1_put(c, PROJECT, "rec-1", "old", 3, ETAG, 0, 100);

    /* Still fresh: a second fill leaves it as it is. */
    l1_put(c, PROJECT, "rec-1", "new", 3, ETAG, 50, 100);
    e = l1_get(c, PROJECT, "rec-1", 60);
    assert_non_null(e);
    assert_memory_equal(l1_entry_body(e, &len), "old", 3);
    l1_release(e);

    /* Expired but not yet looked up: the next fill replaces it. */
    l1_put(c, PROJECT, "rec-1", "new", 3, ETAG, 200, 100);
    assert_int_equal(l1_count(c), 1);
    e = l1_get(c, PROJECT, "rec-1", 250);
    assert_non_null(e);
    assert_memory_equal(l1_entry_body(e, &len), "new", 3);
    assert_string_equal(l1_entry_etag(e), ETAG);
    l1_release(e);
    l1_destroy(c);
}

static void
test_least_recently_used_goes_first_within_budget(void **state)
{
    size_t size = entry_size();
    l1_cache *c = l1_create(2 * size + size / 2); /* room for two */

    (void)state;
    put(c, "rec-a", 0, 0);
    put(c, "rec-b", 0, 0);
    assert_true(holds(c, "rec-a", 1)); /* a is now the most recent */

    put(c, "rec-c", 2, 0);
    assert_int_equal(l1_count(c), 2);
    assert_true(l1_bytes(c) <= 2 * size + size / 2);
    assert_false(holds(c, "rec-b", 3));
    assert_true(holds(c, "rec-a", 3));
    assert_true(holds(c, "rec-c", 3));
    l1_destroy(c);
}

static void
test_record_larger_than_the_budget_is_not_kept(void **state)
{
    l1_cache *c = l1_create(entry_size() - 1);

    (void)state;
    put(c, "rec-a", 0, 0);
    assert_int_equal(l1_count(c), 0);
    assert_false(holds(c, "rec-a", 0));
    l1_destroy(c);
}

static void
test_reference_keeps_an_evicted_entry_alive(void **state)
{
    l1_cache *c = l1_create(entry_size()); /* room for one */
    l1_entry *held;
    size_t len;

    (void)state;
    put(c, "rec-a", 0, 0);
    held = l1_get(c, PROJECT, "rec-a", 0);
    assert_non_null(held);

    put(c, "rec-b", 0, 0); /* evicts rec-a */
    assert_false(holds(c, "rec-a", 0));
    assert_true(holds(c, "rec-b", 0));

    /* The answer still being written reads its bytes (AddressSanitizer
     * would report them freed), then lets go. */
    assert_memory_equal(l1_entry_body(held, &len), body_of("rec-a"), BODY_LEN);
    assert_int_equal(len, BODY_LEN);
    l1_release(held);
    l1_destroy(c);
}

static void
test_reference_outlives_the_cache(void **state)
{
    l1_cache *c = l1_create(1 << 20);
    l1_entry *held;
    size_t len;

    (void)state;
    put(c, "rec-a", 0, 0);
    held = l1_get(c, PROJECT, "rec-a", 0);
    l1_destroy(c);
    assert_memory_equal(l1_entry_body(held, &len), body_of("rec-a"), BODY_LEN);
    l1_release(held);
}

static void
test_out_of_memory_leaves_the_cache_as_it_was(void **state)
{
    l1_cache *c = l1_create(entry_size()); /* room for one */

    (void)state;
    put(c, "rec-a", 0, 0);

    fail_malloc = true;
    put(c, "rec-b", 0, 0);
    fail_malloc = false;

    assert_int_equal(l1_count(c), 1);
    assert_true(holds(c, "rec-a", 0));
    assert_false(holds(c, "rec-b", 0));
    l1_destroy(c);
}

/* Far more entries than the table starts with: the table grows and every
 * entry is still found, with its own body. */
static void
test_table_grows_with_the_entries(void **state)
{
    enum { N = 20000 };
    l1_cache *c = l1_create((size_t)N * entry_size());
    char record[32];

    (void)state;
    for (int i = 0; i < N; i++) {
        snprintf(record, sizeof(record), "rec-%d", i);
        put(c, record, 0, 0);
    }
    assert_int_equal(l1_count(c), N);
    for (int i = 0; i < N; i++) {
        snprintf(record, sizeof(record), "rec-%d", i);
        if (!holds(c, record, 0)) {
            fail_msg("%s is no longer found", record);
        }
    }
    l1_destroy(c);
}

static void
test_empty_budget_holds_nothing(void **state)
{
    l1_cache *c = l1_create(0);

    (void)state;
    put(c, "rec-a", 0, 0);
    assert_false(holds(c, "rec-a", 0));
    assert_int_equal(l1_bytes(c), 0);
    l1_destroy(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entry_is_served_until_its_ttl),
        cmocka_unit_test(test_ttl_zero_never_expires),
        cmocka_unit_test(test_clock_set_back_counts_as_expired),
        cmocka_unit_test(test_expired_entry_is_replaced_by_a_fresh_one),
        cmocka_unit_test(test_least_recently_used_goes_first_within_budget),
        cmocka_unit_test(test_record_larger_than_the_budget_is_not_kept),
        cmocka_unit_test(test_reference_keeps_an_evicted_entry_alive),
        cmocka_unit_test(test_reference_outlives_the_cache),
        cmocka_unit_test(test_out_of_memory_leaves_the_cache_as_it_was),
        cmocka_unit_test(test_table_grows_with_the_entries),
        cmocka_unit_test(test_empty_budget_holds_nothing),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
