/* route.c - maps a request target to one of the gateway's routes.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/route.h"

#include <ctype.h>
#include <string.h>

#define RECORDS_SEGMENT "script-execution-records"

static const struct {
    const char *path;
    route_kind kind;
} fixed_routes[] = {
    {"/healthz", ROUTE_HEALTHZ},
    {"/readyz", ROUTE_READYZ},
    {"/metrics", ROUTE_METRICS},
};

int
route_valid_project(const char *project, size_t len)
{
    if (len != ROUTE_PROJECT_LEN) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)project[i])) {
            return 0;
        }
    }
    return 1;
}

int
route_valid_record(const char *record, size_t len)
{
    if (len == 0 || len > ROUTE_RECORD_MAX) {
        return 0;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)record[i];
        if (!isalnum(c) || c >= 0x80) {
            if (c != '-' && c != '_') {
                return 0;
            }
        }
    }
    return 1;
}

static void
bad_input(route *out, const char *why)
{
    out->kind = ROUTE_BAD_INPUT;
    out->why = why;
}

/* The record route: /v2/{project}/script-execution-records/{record}.
 * No percent-escape is accepted: every allowed character is plain, so an
 * escape could only hide something that is not allowed. */
static void
parse_record_route(const char *path, size_t path_len, route *out)
{
    const char *project = path + 4; /* after "/v2/" */
    const char *end = path + path_len;
    const char *slash = memchr(project, '/', (size_t)(end - project));
    const char *records;
    const char *record;
    size_t seg_len = sizeof(RECORDS_SEGMENT) - 1;

    if (slash == NULL) {
        return; /* not ours: 404 */
    }
    records = slash + 1;
    if ((size_t)(end - records) < seg_len ||
        memcmp(records, RECORDS_SEGMENT, seg_len) != 0 ||
        (records + seg_len != end && records[seg_len] != '/')) {
        return;
    }
    if (records + seg_len == end) {
        return; /* the cloud's list call: not served */
    }
    if (records + seg_len + 1 == end) {
        bad_input(out, "record_id is empty");
        return;
    }
    record = records + seg_len + 1;

    if (!route_valid_project(project, (size_t)(slash - project))) {
        bad_input(out, "project_id must be 32 hexadecimal characters");
        return;
    }
    if (!route_valid_record(record, (size_t)(end - record))) {
        bad_input(out, "record_id must be 1 to 64 letters, digits, "
                       "'-' or '_'");
        return;
    }

    /* The cloud's project ids are lower case: an upper-case spelling
     * names the same project, so it must find the same cache entry and
     * pass the same access lists, not cost a second upstream fetch. */
    for (size_t i = 0; i < ROUTE_PROJECT_LEN; i++) {
        out->project_id[i] = (char)tolower((unsigned char)project[i]);
    }
    out->project_id[ROUTE_PROJECT_LEN] = '\0';
    memcpy(out->record_id, record, (size_t)(end - record));
    out->record_id[end - record] = '\0';
    out->kind = ROUTE_RECORD;
}

void
route_parse(const char *target, route *out)
{
    size_t path_len = strcspn(target, "?#");

    memset(out, 0, sizeof(*out));
    out->kind = ROUTE_NOT_FOUND;

    for (size_t i = 0; i < sizeof(fixed_routes) / sizeof(fixed_routes[0]);
         i++) {
        if (strlen(fixed_routes[i].path) == path_len &&
            memcmp(target, fixed_routes[i].path, path_len) == 0) {
            out->kind = fixed_routes[i].kind;
            return;
        }
    }

    if (path_len >= 4 && memcmp(target, "/v2/", 4) == 0) {
        parse_record_route(target, path_len, out);
    }
}
