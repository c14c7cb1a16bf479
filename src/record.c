/* record.c - validation and normalization of script execution records.
 * SPDX-License-Identifier: MIT
 *
 * A 200 body from the cloud is parsed, checked field by field and rebuilt
 * with the known fields first, in a fixed order and a fixed form, followed
 * by whatever other fields the cloud sent, in the order they came.
 */
#include "recgate/record.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#define MS_PER_SECOND 1000
#define MS_PER_MINUTE (60 * MS_PER_SECOND)
#define MS_PER_DAY ((int64_t)86400 * MS_PER_SECOND)

/* 1970-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z. */
#define EPOCH_MS_MIN 0
#define EPOCH_MS_MAX INT64_C(253402300799999)
/* Epoch numbers below this are seconds, not milliseconds (1973-03-03). */
#define EPOCH_SECONDS_BELOW INT64_C(100000000000)

/* Longest digit string taken as epoch milliseconds or as execute_order. */
#define EPOCH_DIGITS_MAX 15
#define ORDER_DIGITS_MAX 18

struct record_rules {
    size_t count;
    char (*statuses)[RECORD_STATUS_MAX + 1];
};

typedef enum {
    FIELD_ID,
    FIELD_STATUS,
    FIELD_TEXT,
    FIELD_TIME,
    FIELD_ORDER
} field_kind;

typedef struct {
    const char *name;
    field_kind kind;
    const char *why; /* reason given when the value has the wrong form */
} field;

/* The known fields, in output order. */
static const field fields[] = {
    {"id", FIELD_ID, NULL},
    {"script_id", FIELD_TEXT, "script_id is not a string"},
    {"script_name", FIELD_TEXT, "script_name is not a string"},
    {"script_task_id", FIELD_TEXT, "script_task_id is not a string"},
    {"resource_id", FIELD_TEXT, "resource_id is not a string"},
    {"resource_name", FIELD_TEXT, "resource_name is not a string"},
    {"resource_type", FIELD_TEXT, "resource_type is not a string"},
    {"start_time", FIELD_TIME, "start_time is not a valid time"},
    {"end_time", FIELD_TIME, "end_time is not a valid time"},
    {"status", FIELD_STATUS, NULL},
    {"execute_order", FIELD_ORDER, "execute_order is not an integer"},
    {"command_content", FIELD_TEXT, "command_content is not a string"},
    {"command_type", FIELD_TEXT, "command_type is not a string"},
    {"result_code", FIELD_TEXT, "result_code is not a string"},
    {"reason", FIELD_TEXT, "reason is not a string"},
    {"output", FIELD_TEXT, "output is not a string"},
};

#define FIELD_COUNT (sizeof(fields) / sizeof(fields[0]))

static const char why_no_memory[] = "out of memory while normalizing record";

static void
set_why(const char **why, const char *reason)
{
    if (why != NULL) {
        *why = reason;
    }
}

static bool
is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Blanks trimmed around statuses: ASCII space and control whitespace. */
static bool
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' ||
           c == '\f';
}

static bool
is_all_blank(const char *s)
{
    while (is_blank(*s)) {
        s++;
    }
    return *s == '\0';
}

static char
to_upper(char c)
{
    return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

static bool
is_status_char(char c)
{
    return (c >= 'A' && c <= 'Z') || is_digit(c) || c == '_' || c == '-';
}

/* Reads exactly n digits at s into *value. Returns false if any of them
 * is not a digit (which includes running into the terminating NUL). */
static bool
read_digits(const char *s, int n, int *value)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i])) {
            return false;
        }
        v = v * 10 + (s[i] - '0');
    }

    *value = v;
    return true;
}

/* Counts the digits at the start of s, looking at no more than len bytes. */
static size_t
count_digits(const char *s, size_t len)
{
    size_t n = 0;

    while (n < len && is_digit(s[n])) {
        n++;
    }
    return n;
}

/* Trims blanks from both ends of the n bytes at s, upper-cases the rest
 * and writes it, NUL-terminated, to dst (RECORD_STATUS_MAX + 1 bytes).
 * Returns NULL on success, or a static reason worded for a record's status
 * or, when terminal_list is set, for an item of the terminal list. */
static const char *
normalize_status(const char *s, size_t n, char *dst, bool terminal_list)
{
    while (n > 0 && is_blank(s[0])) {
        s++;
        n--;
    }
    while (n > 0 && is_blank(s[n - 1])) {
        n--;
    }

    if (n == 0) {
        return terminal_list ? "terminal status list has an empty item"
                             : "status is blank";
    }
    if (n > RECORD_STATUS_MAX) {
        return terminal_list ? "terminal status is too long"
                             : "status is too long";
    }

    for (size_t i = 0; i < n; i++) {
        dst[i] = to_upper(s[i]);
        if (!is_status_char(dst[i])) {
            return terminal_list ? "terminal status has an invalid character"
                                 : "status has an invalid character";
        }
    }

    dst[n] = '\0';
    return NULL;
}

/* Counts the items of a comma-separated list. */
static size_t
count_items(const char *csv)
{
    size_t count = 1;

    for (const char *p = csv; *p != '\0'; p++) {
        count += (*p == ',');
    }
    return count;
}

/* Normalizes each item of csv into rules->statuses. Returns NULL, or the
 * static reason the first bad item is refused. */
static const char *
fill_rules(record_rules *rules, const char *csv)
{
    const char *item = csv;

    for (size_t i = 0; i < rules->count; i++) {
        const char *end = strchr(item, ',');
        const char *reason;

        if (end == NULL) {
            end = item + strlen(item);
        }

        reason = normalize_status(item, (size_t)(end - item),
                                  rules->statuses[i], true);
        if (reason != NULL) {
            return reason;
        }

        item = end + 1;
    }
    return NULL;
}

record_rules *
record_rules_create(const char *terminal_csv, const char **why)
{
    record_rules *rules;
    const char *reason;

    if (terminal_csv == NULL || is_all_blank(terminal_csv)) {
        set_why(why, "terminal status list is empty");
        return NULL;
    }

    rules = malloc(sizeof(*rules));
    if (rules == NULL) {
        set_why(why, "out of memory for the terminal status list");
        return NULL;
    }
    rules->count = count_items(terminal_csv);
    rules->statuses = calloc(rules->count, sizeof(*rules->statuses));
    if (rules->statuses == NULL) {
        free(rules);
        set_why(why, "out of memory for the terminal status list");
        return NULL;
    }

    reason = fill_rules(rules, terminal_csv);
    if (reason != NULL) {
        record_rules_destroy(rules);
        set_why(why, reason);
        return NULL;
    }
    return rules;
}

void
record_rules_destroy(record_rules *rules)
{
    if (rules == NULL) {
        return;
    }
    free(rules->statuses);
    free(rules);
}

/* With no rules at all nothing is terminal, so nothing gets cached. */
bool
record_is_terminal(const record_rules *rules, const char *status)
{
    if (rules == NULL || status == NULL) {
        return false;
    }

    for (size_t i = 0; i < rules->count; i++) {
        if (strcmp(rules->statuses[i], status) == 0) {
            return true;
        }
    }
    return false;
}

static bool
is_leap_year(int year)
{
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

static int
days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30,
                                 31, 31, 30, 31, 30, 31};

    if (month == 2 && is_leap_year(year)) {
        return 29;
    }
    return days[month - 1];
}

/* Days from 1970-01-01 to the given proleptic Gregorian date, for years
 * from 1 on. The year is counted from March, so that the leap day falls
 * at its end; each 400-year cycle then has exactly 146097 days. */
static int64_t
days_from_civil(int year, int month, int day)
{
    int64_t y = year - (month <= 2);
    int64_t cycle = y / 400;
    int64_t year_of_cycle = y - cycle * 400;
    int64_t month_from_march = (month + 9) % 12;
    int64_t day_of_year = (153 * month_from_march + 2) / 5 + day - 1;
    int64_t day_of_cycle = year_of_cycle * 365 + year_of_cycle / 4 -
                           year_of_cycle / 100 + day_of_year;

    /* 719468 days separate 0000-03-01 from 1970-01-01. */
    return cycle * 146097 + day_of_cycle - 719468;
}

/* The inverse of days_from_civil, for days >= 0. */
static void
civil_from_days(int64_t days, int *year, int *month, int *day)
{
    int64_t since_0000_03 = days + 719468;
    int64_t cycle = since_0000_03 / 146097;
    int64_t day_of_cycle = since_0000_03 - cycle * 146097;
    int64_t year_of_cycle = (day_of_cycle - day_of_cycle / 1460 +
                             day_of_cycle / 36524 - day_of_cycle / 146096) /
                            365;
    int64_t day_of_year =
        day_of_cycle -
        (365 * year_of_cycle + year_of_cycle / 4 - year_of_cycle / 100);
    int64_t month_from_march = (5 * day_of_year + 2) / 153;

    *day = (int)(day_of_year - (153 * month_from_march + 2) / 5 + 1);
    *month = (int)(month_from_march < 10 ? month_from_march + 3
                                         : month_from_march - 9);
    *year = (int)(year_of_cycle + cycle * 400 + (*month <= 2));
}

typedef struct {
    int year, month, day;
    int hour, minute, second, ms;
    int offset_minutes; /* local time minus UTC */
} civil_time;

/* Reads "YYYY-MM-DD", then "T", "t" or " ", then "HH:MM:SS". Returns the
 * text after it, or NULL. Ranges are checked later. */
static const char *
read_date_time(const char *p, civil_time *t)
{
    if (!read_digits(p, 4, &t->year) || p[4] != '-' ||
        !read_digits(p + 5, 2, &t->month) || p[7] != '-' ||
        !read_digits(p + 8, 2, &t->day)) {
        return NULL;
    }
    p += 10;

    if (*p != 'T' && *p != 't' && *p != ' ') {
        return NULL;
    }
    p++;

    if (!read_digits(p, 2, &t->hour) || p[2] != ':' ||
        !read_digits(p + 3, 2, &t->minute) || p[5] != ':' ||
        !read_digits(p + 6, 2, &t->second)) {
        return NULL;
    }
    return p + 8;
}

/* Reads an optional ".d" fraction of 1 to 9 digits, keeping milliseconds.
 * Returns the text after it, or NULL. */
static const char *
read_fraction(const char *p, civil_time *t)
{
    size_t n;

    t->ms = 0;
    if (*p != '.') {
        return p;
    }
    p++;

    n = count_digits(p, 10);
    if (n == 0 || n > 9) {
        return NULL;
    }

    for (size_t i = 0; i < 3; i++) {
        t->ms = t->ms * 10 + (i < n ? p[i] - '0' : 0);
    }
    return p + n;
}

/* Reads an optional "Z", "z", "+HH:MM" or "-HH:MM". Returns the text after
 * it, or NULL. */
static const char *
read_offset(const char *p, civil_time *t)
{
    int hours, minutes;

    t->offset_minutes = 0;
    if (*p == 'Z' || *p == 'z') {
        return p + 1;
    }
    if (*p != '+' && *p != '-') {
        return p;
    }

    if (!read_digits(p + 1, 2, &hours) || p[3] != ':' ||
        !read_digits(p + 4, 2, &minutes)) {
        return NULL;
    }
    if (hours > 23 || minutes > 59) {
        return NULL;
    }

    t->offset_minutes = hours * 60 + minutes;
    if (*p == '-') {
        t->offset_minutes = -t->offset_minutes;
    }
    return p + 6;
}

/* Range checks on the local fields; the UTC range is checked after. */
static bool
civil_time_valid(const civil_time *t)
{
    /* An offset cannot move a date by more than a day, and the earliest
     * year kept is 1970: this also keeps days_from_civil in its range. */
    if (t->year < 1969) {
        return false;
    }
    if (t->month < 1 || t->month > 12) {
        return false;
    }
    if (t->day < 1 || t->day > days_in_month(t->year, t->month)) {
        return false;
    }
    return t->hour <= 23 && t->minute <= 59 && t->second <= 59;
}

/* Parses an RFC 3339-like date and time (see record.h) into epoch ms. */
static int
parse_date_time(const char *text, int64_t *epoch_ms)
{
    civil_time t;
    const char *p;
    int64_t ms;

    p = read_date_time(text, &t);
    if (p != NULL) {
        p = read_fraction(p, &t);
    }
    if (p != NULL) {
        p = read_offset(p, &t);
    }
    if (p == NULL || *p != '\0' || !civil_time_valid(&t)) {
        return -1;
    }

    ms = days_from_civil(t.year, t.month, t.day) * MS_PER_DAY +
         ((int64_t)t.hour * 60 + t.minute - t.offset_minutes) * MS_PER_MINUTE +
         (int64_t)t.second * MS_PER_SECOND + t.ms;
    if (ms < EPOCH_MS_MIN || ms > EPOCH_MS_MAX) {
        return -1;
    }

    *epoch_ms = ms;
    return 0;
}

/* An epoch number as milliseconds. One below EPOCH_SECONDS_BELOW would
 * be a time before March 1973 in milliseconds, which no script run has:
 * it is a count of seconds (the cloud's other APIs use both), and taking
 * it as milliseconds would store a time fifty years off. */
static int
epoch_to_ms(int64_t value, int64_t *epoch_ms)
{
    if (value < 0) {
        return -1;
    }
    if (value < EPOCH_SECONDS_BELOW) {
        value *= MS_PER_SECOND;
    }
    if (value > EPOCH_MS_MAX) {
        return -1;
    }
    *epoch_ms = value;
    return 0;
}

/* Parses 1 to EPOCH_DIGITS_MAX digits as an epoch number. */
static int
parse_epoch_digits(const char *text, size_t len, int64_t *epoch_ms)
{
    int64_t value = 0;

    if (len == 0 || len > EPOCH_DIGITS_MAX) {
        return -1;
    }
    for (size_t i = 0; i < len; i++) {
        value = value * 10 + (text[i] - '0');
    }
    return epoch_to_ms(value, epoch_ms);
}

int
record_parse_time(const char *text, int64_t *epoch_ms)
{
    size_t len, digits;

    if (text == NULL || epoch_ms == NULL) {
        return -1;
    }

    len = strlen(text);
    digits = count_digits(text, len);
    if (digits == len) {
        return parse_epoch_digits(text, len, epoch_ms);
    }
    return parse_date_time(text, epoch_ms);
}

/* Writes value as exactly width digits, then sep. Returns the position
 * after what was written. */
static char *
put_digits(char *p, int64_t value, int width, char sep)
{
    for (int i = width - 1; i >= 0; i--) {
        p[i] = (char)('0' + value % 10);
        value /= 10;
    }

    p[width] = sep;
    return p + width + 1;
}

/* Values outside 1970..9999 are clamped to that range, so the text always
 * has the same shape and fits in 25 bytes. */
char *
record_format_time(int64_t epoch_ms, char *buf)
{
    int64_t days, ms;
    int year, month, day;
    char *p = buf;

    if (epoch_ms < EPOCH_MS_MIN) {
        epoch_ms = EPOCH_MS_MIN;
    } else if (epoch_ms > EPOCH_MS_MAX) {
        epoch_ms = EPOCH_MS_MAX;
    }

    days = epoch_ms / MS_PER_DAY;
    ms = epoch_ms % MS_PER_DAY;
    civil_from_days(days, &year, &month, &day);

    p = put_digits(p, year, 4, '-');
    p = put_digits(p, month, 2, '-');
    p = put_digits(p, day, 2, 'T');
    p = put_digits(p, ms / (60 * MS_PER_MINUTE), 2, ':');
    p = put_digits(p, ms / MS_PER_MINUTE % 60, 2, ':');
    p = put_digits(p, ms / MS_PER_SECOND % 60, 2, '.');
    p = put_digits(p, ms % MS_PER_SECOND, 3, 'Z');
    *p = '\0';
    return buf;
}

/* Parses the body; on failure returns NULL with *why set. */
static json_t *
parse_body(const char *body, size_t len, const char **why)
{
    json_error_t error;
    json_t *root;

    if (body == NULL) {
        set_why(why, "body is empty");
        return NULL;
    }

    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &error);
    if (root == NULL) {
        switch (json_error_code(&error)) {
        case json_error_duplicate_key:
            set_why(why, "body has a duplicate key");
            break;
        case json_error_null_character:
        case json_error_null_byte_in_key:
            set_why(why, "body has a NUL character in a string");
            break;
        case json_error_out_of_memory:
            set_why(why, why_no_memory);
            break;
        default:
            set_why(why, "body is not valid JSON");
            break;
        }
        return NULL;
    }

    if (!json_is_object(root)) {
        json_decref(root);
        set_why(why, "body is not a JSON object");
        return NULL;
    }
    return root;
}

/* Checks that id is a non-empty string equal to expected_id. Returns 0,
 * or -1 with *why set. */
static int
check_id(const json_t *root, const char *expected_id, const char **why)
{
    const json_t *id = json_object_get(root, "id");
    size_t len;

    if (id == NULL || json_is_null(id)) {
        set_why(why, "id is missing");
        return -1;
    }
    if (!json_is_string(id)) {
        set_why(why, "id is not a string");
        return -1;
    }

    len = json_string_length(id);
    if (len == 0) {
        set_why(why, "id is empty");
        return -1;
    }
    if (expected_id == NULL || strlen(expected_id) != len ||
        memcmp(json_string_value(id), expected_id, len) != 0) {
        set_why(why, "id does not match the requested record");
        return -1;
    }
    return 0;
}

/* Normalizes status into out (RECORD_STATUS_MAX + 1 bytes). Returns 0,
 * or -1 with *why set. */
static int
check_status(const json_t *root, char *out, const char **why)
{
    const json_t *status = json_object_get(root, "status");
    const char *reason;

    if (status == NULL || json_is_null(status)) {
        set_why(why, "status is missing");
        return -1;
    }
    if (!json_is_string(status)) {
        set_why(why, "status is not a string");
        return -1;
    }
    if (json_string_length(status) == 0) {
        set_why(why, "status is empty");
        return -1;
    }

    reason = normalize_status(json_string_value(status),
                              json_string_length(status), out, false);
    if (reason != NULL) {
        set_why(why, reason);
        return -1;
    }
    return 0;
}

/* A time as epoch ms: a string record_parse_time accepts, or an integer. */
static json_t *
normalize_time(json_t *value)
{
    char text[25];
    int64_t ms;

    if (json_is_string(value)) {
        if (record_parse_time(json_string_value(value), &ms) != 0) {
            return NULL;
        }
    } else if (json_is_integer(value)) {
        if (epoch_to_ms(json_integer_value(value), &ms) != 0) {
            return NULL;
        }
    } else {
        return NULL;
    }

    return json_string(record_format_time(ms, text));
}

/* An integer as it came, or a string of 1 to ORDER_DIGITS_MAX digits. */
static json_t *
normalize_order(json_t *value)
{
    const char *text;
    size_t len;
    json_int_t order = 0;

    if (json_is_integer(value)) {
        return json_incref(value);
    }
    if (!json_is_string(value)) {
        return NULL;
    }

    text = json_string_value(value);
    len = json_string_length(value);
    if (len == 0 || len > ORDER_DIGITS_MAX || count_digits(text, len) != len) {
        return NULL;
    }

    for (size_t i = 0; i < len; i++) {
        order = order * 10 + (text[i] - '0');
    }
    return json_integer(order);
}

/* Returns a new reference to the normalized value of one known field, or
 * NULL when the value has the wrong form. A missing value or JSON null
 * yields null; id and status have been checked already. */
static json_t *
normalize_field(const field *f, json_t *value, const char *status)
{
    if (f->kind == FIELD_STATUS) {
        return json_string(status);
    }
    if (value == NULL || json_is_null(value)) {
        return json_null();
    }

    switch (f->kind) {
    case FIELD_ID:
        return json_incref(value);
    case FIELD_TEXT:
        return json_is_string(value) ? json_incref(value) : NULL;
    case FIELD_TIME:
        return normalize_time(value);
    case FIELD_ORDER:
        return normalize_order(value);
    default:
        return NULL;
    }
}

static bool
is_known_field(const char *name)
{
    for (size_t i = 0; i < FIELD_COUNT; i++) {
        if (strcmp(fields[i].name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* Copies the fields that are not known, in the order they came, into
 * doc. Returns 0, or -1 when memory runs out. */
static int
copy_unknown_fields(json_t *root, json_t *doc)
{
    for (void *it = json_object_iter(root); it != NULL;
         it = json_object_iter_next(root, it)) {
        const char *key = json_object_iter_key(it);

        if (is_known_field(key)) {
            continue;
        }
        if (json_object_set(doc, key, json_object_iter_value(it)) != 0) {
            return -1;
        }
    }
    return 0;
}

/* Builds the normalized object: the known fields in order, then the
 * others as they came. Returns a new reference, or NULL with *why set. */
static json_t *
build_record(json_t *root, const char *status, const char **why)
{
    json_t *doc = json_object();

    if (doc == NULL) {
        set_why(why, why_no_memory);
        return NULL;
    }

    for (size_t i = 0; i < FIELD_COUNT; i++) {
        const field *f = &fields[i];
        json_t *norm;

        norm = normalize_field(f, json_object_get(root, f->name), status);
        if (norm == NULL) {
            /* id and status were checked already: only memory fails them. */
            set_why(why, f->why != NULL ? f->why : why_no_memory);
            json_decref(doc);
            return NULL;
        }

        if (json_object_set_new(doc, f->name, norm) != 0) {
            set_why(why, why_no_memory);
            json_decref(doc);
            return NULL;
        }
    }

    if (copy_unknown_fields(root, doc) != 0) {
        set_why(why, why_no_memory);
        json_decref(doc);
        return NULL;
    }
    return doc;
}

int
record_normalize(const record_rules *rules, const char *body, size_t len,
                 const char *expected_id, record_result *out, const char **why)
{
    json_t *root, *doc = NULL;
    int rc = -1;

    if (out == NULL) {
        set_why(why, "no place for the result");
        return -1;
    }
    out->json = NULL;
    out->len = 0;
    out->terminal = false;
    out->status[0] = '\0';

    root = parse_body(body, len, why);
    if (root == NULL) {
        return -1;
    }

    if (check_id(root, expected_id, why) != 0 ||
        check_status(root, out->status, why) != 0) {
        goto done;
    }

    doc = build_record(root, out->status, why);
    if (doc == NULL) {
        goto done;
    }

    out->json = json_dumps(doc, JSON_COMPACT);
    if (out->json == NULL) {
        set_why(why, why_no_memory);
        goto done;
    }

    out->len = strlen(out->json);
    out->terminal = record_is_terminal(rules, out->status);
    rc = 0;

done:
    if (rc != 0) {
        out->status[0] = '\0';
    }
    json_decref(doc);
    json_decref(root);
    return rc;
}

void
record_result_clear(record_result *res)
{
    if (res == NULL) {
        return;
    }
    free(res->json);
    res->json = NULL;
    res->len = 0;
    res->terminal = false;
    res->status[0] = '\0';
}
