/* l1.h - the in-process cache of finished records, bounded in bytes.
 * SPDX-License-Identifier: MIT
 *
 * Each worker keeps the exact bytes of recently served finished records
 * (the body and its ETag), least recently used first out, so that a hit
 * costs no JSON work and no Redis round trip. Entries are reference
 * counted: an answer still being written keeps its bytes alive after the
 * entry was evicted.
 *
 * Each entry lives cache.ttl from when it was filled, as the record does
 * in Redis. Times are milliseconds on a clock of the caller's choosing,
 * passed in, so that a hit need not read a clock of its own.
 */
#ifndef RECGATE_L1_H
#define RECGATE_L1_H

#include <stddef.h>
#include <stdint.h>

typedef struct l1_cache l1_cache;
typedef struct l1_entry l1_entry;

/* A cache of at most budget bytes (keys, bodies and bookkeeping). */
l1_cache *l1_create(size_t budget);

/* Frees the cache; entries still referenced are freed on their last
 * release. */
void l1_destroy(l1_cache *c);

/* The entry for a record, with a reference the caller must release, or
 * NULL. Marks it most recently used. An entry expired at now_ms (or
 * filled after it: the clock went back) is evicted and not returned. */
l1_entry *l1_get(l1_cache *c, const char *project, const char *record,
                 int64_t now_ms);

/* Stores a copy of a finished record's body with its ETag, filled at
 * now_ms and expiring ttl_ms later (0: never), evicting the least
 * recently used entries to stay in budget. A record already held and
 * not expired, or larger than the whole budget, is left as it is; so is
 * the cache when memory runs out. */
void l1_put(l1_cache *c, const char *project, const char *record,
            const char *body, size_t len, const char *etag, int64_t now_ms,
            int64_t ttl_ms);

const char *l1_entry_body(const l1_entry *e, size_t *len);
const char *l1_entry_etag(const l1_entry *e);
void l1_release(l1_entry *e);

/* Bytes in use. */
size_t l1_bytes(const l1_cache *c);
size_t l1_count(const l1_cache *c);

#endif /* RECGATE_L1_H */
