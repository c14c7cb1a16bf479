/* fuzz_time.c - libFuzzer target for record timestamps.
 * SPDX-License-Identifier: MIT
 *
 * Feeds each input to record_parse_time as a NUL-terminated string: an
 * accepted time must format to the 24-character canonical text, which
 * parses back to the same instant, and a text already in canonical form
 * must format back to itself. The input's first eight bytes, read as
 * epoch milliseconds, also go to record_format_time, whose text must have
 * the canonical shape for any value and round-trip for values in range.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "recgate/record.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TIME_TEXT_LEN 24

/* 9999-12-31T23:59:59.999Z, the last instant record.h accepts. */
#define LAST_MS INT64_C(253402300799999)

/* The canonical shape: digits everywhere but the fixed punctuation. */
static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";

/* Aborts, naming the broken invariant, when cond is false. */
#define CHECK(cond)                                                            \
    do {                                                                       \
        if (!(cond)) {                                                         \
            fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__,         \
                    __LINE__, #cond);                                          \
            abort();                                                           \
        }                                                                      \
    } while (0)

static int
has_shape(const char *text)
{
    if (strlen(text) != TIME_TEXT_LEN) {
        return 0;
    }
    for (size_t i = 0; i < TIME_TEXT_LEN; i++) {
        if (shape[i] == 'd') {
            if (text[i] < '0' || text[i] > '9') {
                return 0;
            }
        } else if (text[i] != shape[i]) {
            return 0;
        }
    }
    return 1;
}

static void
fuzz_parse(const char *text)
{
    int64_t ms, again;
    char buf[TIME_TEXT_LEN + 1];

    if (record_parse_time(text, &ms) != 0) {
        return;
    }
    CHECK(ms >= 0 && ms <= LAST_MS);

    record_format_time(ms, buf);
    CHECK(has_shape(buf));
    CHECK(record_parse_time(buf, &again) == 0);
    CHECK(again == ms);

    if (has_shape(text)) {
        CHECK(strcmp(buf, text) == 0);
    }
}

static void
fuzz_format(const uint8_t *data, size_t size)
{
    int64_t ms, again;
    char buf[TIME_TEXT_LEN + 1];

    if (size < sizeof(ms)) {
        return;
    }
    memcpy(&ms, data, sizeof(ms));

    record_format_time(ms, buf);
    CHECK(has_shape(buf));
    CHECK(record_parse_time(buf, &again) == 0);
    if (ms >= 0 && ms <= LAST_MS) {
        CHECK(again == ms);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text;

    /* An exact-size copy, so reads past the end are caught. */
    text = malloc(size + 1);
    if (text == NULL) {
        return 0;
    }
    memcpy(text, data, size);
    text[size] = '\0';

    fuzz_parse(text);
    fuzz_format(data, size);

    free(text);
    return 0;
}
