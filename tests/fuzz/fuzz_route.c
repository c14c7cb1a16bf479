/* fuzz_route.c - libFuzzer target for request target routing.
 * SPDX-License-Identifier: MIT
 *
 * Feeds each input to route_parse as a NUL-terminated request target
 * (inputs with a NUL inside are skipped: a target never holds one) and
 * checks what the design promises of the result: a record route carries a
 * well-formed project and record id taken verbatim from the path, a bad
 * input always says why, the query is ignored, and the fixed routes match
 * their paths exactly.
 */
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "recgate/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define RECORDS_PATH_MID "/script-execution-records/"

static const struct {
    const char *path;
    route_kind kind;
} fixed_paths[] = {
    {"/healthz", ROUTE_HEALTHZ},
    {"/readyz", ROUTE_READYZ},
    {"/metrics", ROUTE_METRICS},
};

#define N_FIXED (sizeof(fixed_paths) / sizeof(fixed_paths[0]))

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
all_hex(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (!isxdigit((unsigned char)s[i])) {
            return 0;
        }
    }
    return 1;
}

static int
all_record_chars(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        int alnum = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
                    (c >= '0' && c <= '9');

        if (!alnum && c != '-' && c != '_') {
            return 0;
        }
    }
    return 1;
}

/* True when s (n bytes) has no upper-case letter. */
static int
all_lower(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (s[i] >= 'A' && s[i] <= 'Z') {
            return 0;
        }
    }
    return 1;
}

/* A record route: both ids well-formed, the project id lower-cased, and
 * the path is exactly the cloud's path built from them but for the
 * project id's case, so neither was decoded or otherwise altered. */
static void
check_record(const char *target, size_t path_len, const route *r)
{
    size_t plen = strnlen(r->project_id, sizeof(r->project_id));
    size_t rlen = strnlen(r->record_id, sizeof(r->record_id));
    const size_t project_at = 4; /* after "/v2/" */
    char expect[128];
    int n;

    CHECK(plen == ROUTE_PROJECT_LEN);
    CHECK(all_hex(r->project_id, plen));
    CHECK(all_lower(r->project_id, plen));
    CHECK(rlen >= 1 && rlen <= ROUTE_RECORD_MAX);
    CHECK(all_record_chars(r->record_id, rlen));
    CHECK(route_valid_project(r->project_id, plen));
    CHECK(route_valid_record(r->record_id, rlen));

    CHECK(strstr(target, r->record_id) != NULL);

    n = snprintf(expect, sizeof(expect), "/v2/%s" RECORDS_PATH_MID "%s",
                 r->project_id, r->record_id);
    CHECK(n > 0 && (size_t)n == path_len);
    CHECK(memcmp(target, expect, project_at) == 0);
    CHECK(strncasecmp(target + project_at, expect + project_at, plen) == 0);
    CHECK(memcmp(target + project_at + plen, expect + project_at + plen,
                 path_len - project_at - plen) == 0);
}

/* A fixed route is returned for its exact path, and only for it. */
static void
check_fixed(const char *target, size_t path_len, const route *r)
{
    for (size_t i = 0; i < N_FIXED; i++) {
        int same = strlen(fixed_paths[i].path) == path_len &&
                   memcmp(target, fixed_paths[i].path, path_len) == 0;

        CHECK(same == (r->kind == fixed_paths[i].kind));
    }
}

static void
check_route(const char *target, const route *r)
{
    size_t path_len = strcspn(target, "?#");

    switch (r->kind) {
    case ROUTE_NOT_FOUND:
    case ROUTE_HEALTHZ:
    case ROUTE_READYZ:
    case ROUTE_METRICS:
        break;
    case ROUTE_BAD_INPUT:
        CHECK(r->why != NULL && r->why[0] != '\0');
        break;
    case ROUTE_RECORD:
        check_record(target, path_len, r);
        break;
    default:
        abort();
    }

    check_fixed(target, path_len, r);
}

/* The query and fragment must not change the outcome. */
static void
check_query_ignored(const char *target, const route *r)
{
    size_t path_len = strcspn(target, "?#");
    char *path;
    route bare;

    if (target[path_len] == '\0') {
        return;
    }
    path = strndup(target, path_len);
    if (path == NULL) {
        return;
    }

    route_parse(path, &bare);
    CHECK(bare.kind == r->kind);
    CHECK((bare.why == NULL) == (r->why == NULL));
    if (bare.why != NULL) {
        CHECK(strcmp(bare.why, r->why) == 0);
    }
    CHECK(strcmp(bare.project_id, r->project_id) == 0);
    CHECK(strcmp(bare.record_id, r->record_id) == 0);
    free(path);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *target;
    route r;

    if (memchr(data, '\0', size) != NULL) {
        return 0;
    }

    /* An exact-size copy, so reads past the end are caught. */
    target = malloc(size + 1);
    if (target == NULL) {
        return 0;
    }
    memcpy(target, data, size);
    target[size] = '\0';

    route_parse(target, &r);
    check_route(target, &r);
    check_query_ignored(target, &r);

    free(target);
    return 0;
}
