/* route.h - maps a request target to one of the gateway's routes.
 * SPDX-License-Identifier: MIT
 *
 * Pure string work with no I/O, so it can be unit-tested and fuzzed. The
 * record route's parameters are checked here, before anything reaches the
 * cache or the cloud.
 */
#ifndef RECGATE_ROUTE_H
#define RECGATE_ROUTE_H

#include <stddef.h>

#define ROUTE_PROJECT_LEN 32
#define ROUTE_RECORD_MAX 64

typedef enum {
    ROUTE_NOT_FOUND = 0,
    ROUTE_BAD_INPUT, /* the record route with bad parameters */
    ROUTE_RECORD,
    ROUTE_HEALTHZ,
    ROUTE_READYZ,
    ROUTE_METRICS,
} route_kind;

typedef struct {
    route_kind kind;
    const char *why; /* static reason for ROUTE_BAD_INPUT */
    char project_id[ROUTE_PROJECT_LEN + 1]; /* lower-cased */
    char record_id[ROUTE_RECORD_MAX + 1];
} route;

/* Classifies target (the raw request target: path and optional query;
 * the query is ignored) into out. Always fills out->kind. */
void route_parse(const char *target, route *out);

/* True when project is exactly 32 hexadecimal characters. */
int route_valid_project(const char *project, size_t len);

/* True when record is 1..64 of A-Z a-z 0-9 - _ */
int route_valid_record(const char *record, size_t len);

#endif /* RECGATE_ROUTE_H */
