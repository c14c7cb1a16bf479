/* record.h - validation and normalization of script execution records.
 * SPDX-License-Identifier: MIT
 *
 * The cloud's 200 body is checked and rewritten into one canonical form
 * before anyone sees it or it is stored, so every client and every cache
 * layer hold byte-identical records.
 */
#ifndef RECGATE_RECORD_H
#define RECGATE_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Default terminal statuses, comma-separated, as cache.terminal_statuses. */
#define RECORD_DEFAULT_TERMINAL                                                \
    "SUCCESS,FAILED,FINISH,FINISHED,TIMEOUT,CANCELED,CANCELLED,SKIPPED"

/* Longest status kept; a longer one makes the record invalid. */
#define RECORD_STATUS_MAX 64

typedef struct record_rules record_rules;

typedef struct {
    char *json;    /* normalized compact JSON, NUL-terminated, malloc'd */
    size_t len;    /* strlen(json) */
    bool terminal; /* status is one of the rules' terminal statuses */
    char status[RECORD_STATUS_MAX + 1]; /* trimmed, upper-cased */
} record_result;

/* Parses a comma-separated, case-insensitive list of terminal statuses
 * (blanks around items are ignored). Returns NULL and sets *why to a static
 * message when the list is empty or an item is not [A-Za-z0-9_-]+. */
record_rules *record_rules_create(const char *terminal_csv, const char **why);
void record_rules_destroy(record_rules *rules);

/* True when the (already upper-cased) status is terminal under rules. */
bool record_is_terminal(const record_rules *rules, const char *status);

/* Validates an upstream body of len bytes (not necessarily NUL-terminated)
 * for the record expected_id and fills *out. Returns 0 on success; the
 * caller frees out->json with record_result_clear(). On failure returns -1,
 * leaves out->json NULL and sets *why to a static, human-readable reason
 * that names the offending field (never the field's value). */
int record_normalize(const record_rules *rules, const char *body, size_t len,
                     const char *expected_id, record_result *out,
                     const char **why);

void record_result_clear(record_result *res);

/* Parses a record timestamp: RFC 3339 with or without fraction and offset
 * ("2024-12-25T07:10:36.054Z", "2024-12-25T15:10:36+08:00"),
 * "yyyy-MM-dd HH:mm:ss" taken as UTC, or a string of digits taken as epoch
 * milliseconds (as epoch seconds when below 100000000000, which in
 * milliseconds would be before March 1973). Returns 0 and sets *epoch_ms, or -1
 * when unparseable or out of range (years 1970..9999). */
int record_parse_time(const char *text, int64_t *epoch_ms);

/* Formats epoch milliseconds as "YYYY-MM-DDTHH:MM:SS.mmmZ" into buf, which
 * must hold at least 25 bytes. Returns buf. */
char *record_format_time(int64_t epoch_ms, char *buf);

#endif /* RECGATE_RECORD_H */
