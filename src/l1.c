/* l1.c - the in-process cache of finished records, bounded in bytes.
 * SPDX-License-Identifier: MIT
 */
#include "recgate/l1.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/queue.h>

#include "recgate/route.h"

#define BUCKETS_MIN 1024
#define BUCKETS_MAX (1u << 22)
#define ETAG_MAX 48

struct l1_entry {
    l1_cache *owner; /* NULL once evicted */
    int refs;        /* the cache's own, plus each user's */
    unsigned hash;
    size_t size; /* what it counts against the budget */
    int64_t filled_ms;
    int64_t expires_ms; /* INT64_MAX: never */
    char key[ROUTE_PROJECT_LEN + 1 + ROUTE_RECORD_MAX + 1];
    char etag[ETAG_MAX];
    size_t len;
    LIST_ENTRY(l1_entry) chain;
    TAILQ_ENTRY(l1_entry) lru;
    char body[]; /* len bytes, then a NUL */
};

struct l1_cache {
    size_t budget;
    size_t used;
    size_t count;
    size_t n_buckets;
    LIST_HEAD(, l1_entry) * buckets;
    TAILQ_HEAD(l1_lru, l1_entry) lru; /* most recently used first */
};

static unsigned
hash_key(const char *key)
{
    unsigned h = 2166136261u;

    for (const char *p = key; *p; p++) {
        h = (h ^ (unsigned char)*p) * 16777619u;
    }
    return h;
}

static void
make_key(char *key, size_t size, const char *project, const char *record)
{
    size_t p = strlen(project);
    size_t r = strlen(record);

    if (p + r + 2 > size) {
        key[0] = '\0';
        return;
    }
    memcpy(key, project, p);
    key[p] = ':';
    memcpy(key + p + 1, record, r + 1);
}

l1_cache *
l1_create(size_t budget)
{
    l1_cache *c = calloc(1, sizeof(*c));

    /* The table grows with the entries, not with the budget: a table
     * sized for a large budget would cost memory from the first records
     * on, one touched page per few records. */
    c->budget = budget;
    c->n_buckets = BUCKETS_MIN;
    c->buckets = calloc(c->n_buckets, sizeof(*c->buckets));
    TAILQ_INIT(&c->lru);
    return c;
}

void
l1_release(l1_entry *e)
{
    if (--e->refs == 0) {
        free(e);
    }
}

static void
evict(l1_cache *c, l1_entry *e)
{
    LIST_REMOVE(e, chain);
    TAILQ_REMOVE(&c->lru, e, lru);
    c->used -= e->size;
    c->count--;
    e->owner = NULL;
    l1_release(e);
}

void
l1_destroy(l1_cache *c)
{
    if (c == NULL) {
        return;
    }
    while (!TAILQ_EMPTY(&c->lru)) {
        evict(c, TAILQ_FIRST(&c->lru));
    }
    free(c->buckets);
    free(c);
}

/* Past its expiry, or filled "later" than now: the clock was set back,
 * and an entry of unknown age is safer fetched again than served. */
static bool
expired(const l1_entry *e, int64_t now_ms)
{
    return now_ms >= e->expires_ms || now_ms < e->filled_ms;
}

static int64_t
expiry(int64_t now_ms, int64_t ttl_ms)
{
    if (ttl_ms <= 0 || ttl_ms > INT64_MAX - now_ms) {
        return INT64_MAX;
    }
    return now_ms + ttl_ms;
}

static l1_entry *
find(const l1_cache *c, const char *key, unsigned hash)
{
    l1_entry *e;

    LIST_FOREACH(e, &c->buckets[hash & (c->n_buckets - 1)], chain)
    {
        if (e->hash == hash && strcmp(e->key, key) == 0) {
            return e;
        }
    }
    return NULL;
}

l1_entry *
l1_get(l1_cache *c, const char *project, const char *record, int64_t now_ms)
{
    char key[sizeof(((l1_entry *)0)->key)];
    l1_entry *e;

    if (c->budget == 0) {
        return NULL;
    }
    make_key(key, sizeof(key), project, record);
    e = find(c, key, hash_key(key));
    if (e == NULL) {
        return NULL;
    }
    if (expired(e, now_ms)) {
        evict(c, e);
        return NULL;
    }
    if (TAILQ_FIRST(&c->lru) != e) {
        TAILQ_REMOVE(&c->lru, e, lru);
        TAILQ_INSERT_HEAD(&c->lru, e, lru);
    }
    e->refs++;
    return e;
}

/* A new entry holding a copy of body, or NULL when memory ran out. */
static l1_entry *
make_entry(const char *key, unsigned hash, const char *body, size_t len,
           const char *etag, size_t size)
{
    l1_entry *e = malloc(size);

    if (e == NULL) {
        return NULL;
    }
    e->owner = NULL;
    e->refs = 1;
    e->hash = hash;
    e->size = size;
    memcpy(e->key, key, sizeof(e->key));
    strncpy(e->etag, etag, sizeof(e->etag) - 1);
    e->etag[sizeof(e->etag) - 1] = '\0';
    e->len = len;
    memcpy(e->body, body, len);
    e->body[len] = '\0';
    return e;
}

/* Doubles the table once there are more entries than buckets. Without
 * memory for a larger one, the old table goes on serving, with longer
 * chains. */
static void
grow(l1_cache *c)
{
    size_t n = c->n_buckets * 2;
    l1_entry *e;
    void *table;

    if (c->count <= c->n_buckets || n > BUCKETS_MAX) {
        return;
    }
    table = calloc(n, sizeof(*c->buckets));
    if (table == NULL) {
        return;
    }
    free(c->buckets);
    c->buckets = table;
    c->n_buckets = n;
    TAILQ_FOREACH(e, &c->lru, lru)
    {
        LIST_INSERT_HEAD(&c->buckets[e->hash & (n - 1)], e, chain);
    }
}

void
l1_put(l1_cache *c, const char *project, const char *record, const char *body,
       size_t len, const char *etag, int64_t now_ms, int64_t ttl_ms)
{
    size_t size = sizeof(l1_entry) + len + 1;
    char key[sizeof(((l1_entry *)0)->key)];
    l1_entry *old;
    l1_entry *e;
    unsigned hash;

    make_key(key, sizeof(key), project, record);
    hash = hash_key(key);
    if (size > c->budget || key[0] == '\0') {
        return;
    }
    old = find(c, key, hash);
    if (old != NULL && !expired(old, now_ms)) {
        return;
    }

    /* Made before anything is evicted: without memory the cache stays
     * as it was, and the record is simply not kept. */
    e = make_entry(key, hash, body, len, etag, size);
    if (e == NULL) {
        return;
    }
    e->owner = c;
    e->filled_ms = now_ms;
    e->expires_ms = expiry(now_ms, ttl_ms);
    if (old != NULL) {
        evict(c, old);
    }
    while (c->used + size > c->budget && !TAILQ_EMPTY(&c->lru)) {
        evict(c, TAILQ_LAST(&c->lru, l1_lru));
    }

    LIST_INSERT_HEAD(&c->buckets[hash & (c->n_buckets - 1)], e, chain);
    TAILQ_INSERT_HEAD(&c->lru, e, lru);
    c->used += size;
    c->count++;
    grow(c);
}

const char *
l1_entry_body(const l1_entry *e, size_t *len)
{
    *len = e->len;
    return e->body;
}

const char *
l1_entry_etag(const l1_entry *e)
{
    return e->etag;
}

size_t
l1_bytes(const l1_cache *c)
{
    return c->used;
}

size_t
l1_count(const l1_cache *c)
{
    return c->count;
}
