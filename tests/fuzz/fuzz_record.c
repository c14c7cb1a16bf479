/* fuzz_record.c - libFuzzer target for record validation and time parsing.
 * SPDX-License-Identifier: MIT
 *
 * Feeds each input to record_normalize as an upstream body for the record
 * "rec-1" under the default terminal statuses, and to record_parse_time as
 * a NUL-terminated string (and, while at it, to record_rules_create). An
 * accepted record must come back as an object that normalizes to itself.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "recgate/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static record_rules *rules;

/* Normalizing a normalized record must change nothing. */
static void
check_stable(const record_result *first)
{
    record_result again;
    const char *why = NULL;

    if (record_normalize(rules, first->json, first->len, "rec-1", &again,
                         &why) != 0) {
        abort();
    }
    if (again.len != first->len ||
        memcmp(again.json, first->json, first->len) != 0 ||
        strcmp(again.status, first->status) != 0 ||
        again.terminal != first->terminal) {
        abort();
    }
    record_result_clear(&again);
}

static void
fuzz_normalize(const char *body, size_t size)
{
    record_result res;
    const char *why = NULL;

    if (record_normalize(rules, body, size, "rec-1", &res, &why) != 0) {
        if (res.json != NULL || why == NULL) {
            abort();
        }
        return;
    }

    if (res.json == NULL || res.len != strlen(res.json)) {
        abort();
    }
    check_stable(&res);
    record_result_clear(&res);
}

/* An accepted time must format to a 24-character text that parses back
 * to the same instant. */
static void
fuzz_parse_time(const char *text)
{
    int64_t ms, again;
    char buf[25];

    if (record_parse_time(text, &ms) != 0) {
        return;
    }

    record_format_time(ms, buf);
    if (strlen(buf) != 24 || record_parse_time(buf, &again) != 0 ||
        again != ms) {
        abort();
    }
}

/* A refused list must say why; an accepted one must free cleanly. */
static void
fuzz_rules(const char *csv)
{
    const char *why = NULL;
    record_rules *custom = record_rules_create(csv, &why);

    if (custom == NULL && why == NULL) {
        abort();
    }
    record_is_terminal(custom, "SUCCESS");
    record_rules_destroy(custom);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;

    if (rules == NULL) {
        rules = record_rules_create(RECORD_DEFAULT_TERMINAL, NULL);
        if (rules == NULL) {
            abort();
        }
    }

    /* An exact-size copy, so reads past the end are caught. */
    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    fuzz_normalize(text, size);
    fuzz_parse_time(text);
    fuzz_rules(text);

    free(text);
    return 0;
}
