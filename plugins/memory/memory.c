/*
 * memory.c — the in-memory adapter, and the template for adapter authors.
 *
 * To write an adapter, copy this file, rename the `mem_` prefix and the
 * "memory" name, put your store where the lists are, and run
 * `persistor-conformance your.so` until it passes.  Every slot of
 * include/persistor/adapter.h is here, done the simplest way that keeps the
 * contract; docs/ABI.md walks through it.
 *
 * Per collection: a hash table id -> item (O(1) among 100,000 documents)
 * and a list in write order, oldest first, for max_items eviction.  Queries
 * and unique checks scan the list: a real store keeps indexes instead.
 * Versions (UPSERT_IF_NEWER) compare with the host's sorter on
 * {version_field: 1}, compiled once per ensure_collection: MongoDB's order
 * of values is the host's to know, never an adapter's to redo.
 *
 * What an adapter must not do, and this one shows how not to:
 *   - include anything of persistor's but adapter.h, or link libpersistor:
 *     logging, buffers, errors, options and the query language come
 *     through the host table handed to open();
 *   - keep state in globals: two instances share nothing;
 *   - keep documents the host lends for one call (copy them);
 *   - leave an op half-done: each op makes every check and allocation it
 *     needs before its first change.
 *
 * No locks: without PERSISTOR_CAP_THREAD_SAFE the host serialises every
 * call into an instance, cursors included.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "persistor/adapter.h"

/* ---- data ------------------------------------------------------------ */

/* One document.  One allocation holds the struct, the BSON, then the id. */
typedef struct mem_item {
    struct mem_item *next;          /* in its by-id bucket */
    struct mem_item *older, *newer; /* write order */
    const char *id;
    uint32_t len;
    uint8_t doc[];
} mem_item;

typedef struct mem_collection {
    struct mem_collection *next; /* a handful per instance: a list will do */
    const persistor_collection_spec *spec; /* the host's: valid until close */
    persistor_sorter *version;             /* {version_field: 1}, or NULL */
    mem_item **buckets;                    /* by id; a power of two of them */
    size_t n_buckets;
    mem_item *oldest, *newest;
    uint64_t count, bytes;
} mem_collection;

struct persistor_instance {
    const persistor_host *host;
    uint64_t max_items; /* per collection; 0: unbounded */
    mem_collection *collections;
    persistor_buffer key, other_key; /* scratch for host->index_key */
};

/* The answer, copied back to back when the query runs: the host may write
 * between cursor_next calls, and must not pull documents from under it. */
struct persistor_cursor {
    size_t size, off;
    uint8_t data[];
};

/* BSON opens with its total length, little-endian. */
static uint32_t mem_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* ---- the by-id table and the write-order list ------------------------ */

/* FNV-1a of the id: short, and good enough here. */
static mem_item **mem_bucket(const mem_collection *c, const char *id)
{
    uint64_t h = 14695981039346656037u;
    for (const unsigned char *p = (const unsigned char *)id; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211u;
    return &c->buckets[h & (c->n_buckets - 1)];
}

static mem_item *mem_find(const mem_collection *c, const char *id)
{
    mem_item *item = *mem_bucket(c, id);
    while (item != NULL && strcmp(item->id, id) != 0)
        item = item->next;
    return item;
}

/* Twice the buckets.  If that memory cannot be had, keep the old ones: the
 * table only gets slower, and adding an item never fails. */
static void mem_grow(mem_collection *c)
{
    mem_item **buckets = calloc(c->n_buckets * 2, sizeof *buckets);
    if (buckets == NULL)
        return;
    free(c->buckets);
    c->buckets = buckets;
    c->n_buckets *= 2;
    for (mem_item *item = c->oldest; item != NULL; item = item->newer) {
        mem_item **head = mem_bucket(c, item->id);
        item->next = *head;
        *head = item;
    }
}

/* Add as the newest: a write, even a replacing one, is the newest. */
static void mem_link(mem_collection *c, mem_item *item)
{
    if (c->count >= c->n_buckets)
        mem_grow(c);
    mem_item **head = mem_bucket(c, item->id);
    item->next = *head;
    *head = item;
    item->older = c->newest;
    item->newer = NULL;
    *(c->newest ? &c->newest->newer : &c->oldest) = item;
    c->newest = item;
    c->count++;
    c->bytes += item->len;
}

/* Unlink and free. */
static void mem_remove(mem_collection *c, mem_item *item)
{
    mem_item **p = mem_bucket(c, item->id);
    while (*p != item)
        p = &(*p)->next;
    *p = item->next;
    *(item->older ? &item->older->newer : &c->oldest) = item->newer;
    *(item->newer ? &item->newer->older : &c->newest) = item->older;
    c->count--;
    c->bytes -= item->len;
    free(item);
}

/* ---- collections ----------------------------------------------------- */

static mem_collection *mem_collection_find(const persistor_instance *inst, const char *name)
{
    mem_collection *c = inst->collections;
    while (c != NULL && strcmp(c->spec->name, name) != 0)
        c = c->next;
    return c;
}

/* Any call but ensure_collection on an unknown collection is a host bug. */
static int32_t mem_collection_get(const persistor_instance *inst, const char *name,
                                  mem_collection **out, persistor_error *err)
{
    *out = mem_collection_find(inst, name);
    if (*out == NULL)
        return inst->host->error_set(err, PERSISTOR_E_INVALID, "collection %s was not ensured",
                                     name);
    return PERSISTOR_OK;
}

/*
 * Does another item than `self` hold the key `doc` has under the unique
 * `index`?  OK (no), EXISTS with *holder set (yes), or index_key's error.
 * A scan computing every item's key: a real store keeps an ordered index
 * on host->index_key's bytes instead, and answers this with one lookup.
 */
static int32_t mem_key_taken(persistor_instance *inst, const mem_collection *c,
                             const persistor_index_spec *index, const uint8_t *doc,
                             uint32_t len, const mem_item *self, const mem_item **holder)
{
    const persistor_host *host = inst->host;
    int32_t rc = host->index_key(index, doc, len, &inst->key);
    for (const mem_item *it = c->oldest; rc == PERSISTOR_OK && it != NULL; it = it->newer) {
        if (it == self || (rc = host->index_key(index, it->doc, it->len, &inst->other_key)) < 0)
            continue;
        if (inst->key.len == inst->other_key.len &&
            memcmp(inst->key.data, inst->other_key.data, inst->key.len) == 0) {
            *holder = it;
            return PERSISTOR_EXISTS;
        }
    }
    return rc;
}

/* Would `doc` (replacing `self`) break a unique index of `spec`?  OK, or
 * EXISTS with the index and the other item, or index_key's error. */
static int32_t mem_unique_check(persistor_instance *inst, const mem_collection *c,
                                const persistor_collection_spec *spec, const uint8_t *doc,
                                uint32_t len, const mem_item *self,
                                const persistor_index_spec **index, const mem_item **holder)
{
    for (uint32_t i = 0; i < spec->n_indexes; i++) {
        *index = &spec->indexes[i];
        if (!((*index)->flags & PERSISTOR_INDEX_UNIQUE))
            continue;
        int32_t rc = mem_key_taken(inst, c, *index, doc, len, self, holder);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    return PERSISTOR_OK;
}

/* The spec's version_field, or NULL.  A host older than the field hands a
 * shorter spec: read only what its struct_size covers. */
static const char *mem_version_field(const persistor_collection_spec *spec)
{
    size_t end = offsetof(persistor_collection_spec, version_field) + sizeof spec->version_field;
    return spec->struct_size >= end ? spec->version_field : NULL;
}

/* Compile {version_field: 1} into *out (NULL when the spec names none).
 * The BSON is built by hand: an int32 element between the length and the
 * final 0.  OK, or E_CONFIG / E_NOMEM. */
static int32_t mem_version_sorter(persistor_instance *inst, const persistor_collection_spec *spec,
                                  persistor_sorter **out, persistor_error *err)
{
    const persistor_host *host = inst->host;
    const char *field = mem_version_field(spec);
    persistor_error why = {0};
    *out = NULL;
    if (field == NULL)
        return PERSISTOR_OK;
    size_t n = strlen(field);
    if (n > 1024)
        return host->error_set(err, PERSISTOR_E_CONFIG, "%s: version_field is %zu bytes long; "
                               "1024 at most", spec->name, n);
    uint32_t len = (uint32_t)(4 + 1 + n + 1 + 4 + 1);
    uint8_t *sort = malloc(len);
    if (sort == NULL)
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", spec->name);
    const uint8_t le[4] = {(uint8_t)len, (uint8_t)(len >> 8), 0, 0}, one[4] = {1, 0, 0, 0};
    memcpy(sort, le, 4);
    sort[4] = 0x10; /* int32 */
    memcpy(sort + 5, field, n + 1);
    memcpy(sort + 6 + n, one, 4);
    sort[len - 1] = 0;
    int32_t rc = host->sorter_new(sort, len, out, &why);
    free(sort);
    if (rc != PERSISTOR_OK)
        return host->error_set(err, PERSISTOR_E_CONFIG, "%s: version_field \"%s\": %s",
                               spec->name, field, why.message);
    return PERSISTOR_OK;
}

/* A later ensure may bring other indexes: refuse the ones the documents
 * already break, as MongoDB refuses to build them, and change nothing.
 * O(n^2), which is fine: the host ensures right after open(), when a memory
 * store is still empty. */
static int32_t mem_ensure_collection(persistor_instance *inst,
                                     const persistor_collection_spec *spec, persistor_error *err)
{
    const persistor_host *host = inst->host;
    persistor_sorter *version;
    int32_t rc = mem_version_sorter(inst, spec, &version, err);
    if (rc != PERSISTOR_OK)
        return rc;
    mem_collection *c = mem_collection_find(inst, spec->name);
    if (c == NULL) {
        c = calloc(1, sizeof *c);
        if (c == NULL || (c->buckets = calloc(16, sizeof *c->buckets)) == NULL) {
            free(c);
            rc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory creating it",
                                 spec->name);
            goto fail;
        }
        c->n_buckets = 16;
        c->next = inst->collections;
        inst->collections = c;
    }
    for (const mem_item *item = c->oldest; item != NULL; item = item->newer) {
        const persistor_index_spec *index;
        const mem_item *other;
        rc = mem_unique_check(inst, c, spec, item->doc, item->len, item, &index, &other);
        if (rc == PERSISTOR_EXISTS)
            rc = host->error_set(err, PERSISTOR_E_CONFIG,
                                 "%s: cannot build unique index %s: documents %s and %s have "
                                 "the same key; remove one of them first",
                                 spec->name, index->name, item->id, other->id);
        else if (rc != PERSISTOR_OK)
            rc = host->error_set(err, rc, "%s: cannot index document %s", spec->name, item->id);
        if (rc != PERSISTOR_OK)
            goto fail;
    }
    /* Indexes, TTL and version field take effect from here on. */
    c->spec = spec;
    if (c->version != NULL)
        host->sorter_free(c->version);
    c->version = version;
    return PERSISTOR_OK;
fail:
    if (version != NULL)
        host->sorter_free(version);
    return rc;
}

/* ---- write ----------------------------------------------------------- */

/* One insert or upsert.  Every check and the allocation come before the
 * first change, so a refused or failed op changes (and evicts) nothing.
 * UPSERT_IF_NEWER keeps the stored document unless its version sorts
 * strictly before the new one's (equal: a replay, kept). */
static int32_t mem_put(persistor_instance *inst, mem_collection *c, const persistor_write_op *op,
                       mem_item *old, uint64_t *evicted, persistor_error *err)
{
    const persistor_host *host = inst->host;
    const persistor_index_spec *index;
    const mem_item *other;
    if (old != NULL && op->kind == PERSISTOR_WRITE_INSERT_IF_ABSENT)
        return PERSISTOR_EXISTS;
    /* Enough to keep our own arithmetic safe; the host checks the rest. */
    if (op->doc == NULL || op->doc_len < 5 || mem_le32(op->doc) != op->doc_len ||
        op->doc[op->doc_len - 1] != 0)
        return host->error_set(err, PERSISTOR_E_INVALID, "%s/%s: the document is not BSON",
                               c->spec->name, op->id);
    if (old != NULL && op->kind == PERSISTOR_WRITE_UPSERT_IF_NEWER &&
        host->sorter_compare(c->version, old->doc, old->len, op->doc, op->doc_len) >= 0)
        return PERSISTOR_EXISTS;
    /* Against every other item, even one that is next to be evicted. */
    int32_t rc = mem_unique_check(inst, c, c->spec, op->doc, op->doc_len, old, &index, &other);
    if (rc != PERSISTOR_OK)
        return rc == PERSISTOR_EXISTS ? rc
                                      : host->error_set(err, rc, "%s/%s: cannot compute its "
                                                        "unique index keys", c->spec->name, op->id);
    size_t id_size = strlen(op->id) + 1;
    mem_item *item = malloc(sizeof *item + op->doc_len + id_size);
    if (item == NULL)
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s/%s: out of memory for %u bytes",
                               c->spec->name, op->id, op->doc_len);
    memcpy(item->doc, op->doc, op->doc_len);
    item->len = op->doc_len;
    item->id = memcpy(item->doc + op->doc_len, op->id, id_size);
    if (old != NULL) {
        mem_remove(c, old); /* a replacement takes no more room: no eviction */
    } else {
        while (inst->max_items > 0 && c->count >= inst->max_items) {
            mem_remove(c, c->oldest);
            (*evicted)++;
        }
    }
    mem_link(c, item);
    return PERSISTOR_OK;
}

static int32_t mem_apply(persistor_instance *inst, mem_collection *c, const persistor_write_op *op,
                         uint64_t *evicted, persistor_error *err)
{
    const persistor_host *host = inst->host;
    if (op->id == NULL)
        return host->error_set(err, PERSISTOR_E_INVALID, "%s: a write without an id",
                               c->spec->name);
    mem_item *old = mem_find(c, op->id);
    switch (op->kind) {
    case PERSISTOR_WRITE_INSERT_IF_ABSENT:
    case PERSISTOR_WRITE_UPSERT:
        return mem_put(inst, c, op, old, evicted, err);
    case PERSISTOR_WRITE_UPSERT_IF_NEWER:
        if (c->version == NULL)
            return host->error_set(err, PERSISTOR_E_INVALID,
                                   "%s/%s: upsert-if-newer on a collection whose spec names no "
                                   "version_field; name one, or write with UPSERT",
                                   c->spec->name, op->id);
        return mem_put(inst, c, op, old, evicted, err);
    case PERSISTOR_WRITE_DELETE:
        if (old == NULL)
            return PERSISTOR_NOT_FOUND;
        mem_remove(c, old);
        return PERSISTOR_OK;
    default:
        return host->error_set(err, PERSISTOR_E_INVALID, "%s/%s: unknown write kind %u",
                               c->spec->name, op->id, op->kind);
    }
}

/* Ops apply in order.  The batch is not one transaction: at the first
 * error the ops before it stay applied, and it and the rest get the error. */
static int32_t mem_write(persistor_instance *inst, const char *collection,
                         const persistor_write_op *ops, uint32_t n, int32_t *results,
                         persistor_error *err)
{
    mem_collection *c;
    uint64_t evicted = 0;
    uint32_t i = 0;
    int32_t rc = mem_collection_get(inst, collection, &c, err);
    for (; rc == PERSISTOR_OK && i < n; i++) {
        results[i] = mem_apply(inst, c, &ops[i], &evicted, err);
        if (results[i] < 0)
            rc = results[i];
    }
    for (; i < n; i++)
        results[i] = rc;
    /* One line per batch, not per document: a bounded store evicts a lot. */
    if (evicted > 0)
        inst->host->log(inst->host, PERSISTOR_LOG_DEBUG, "memory_evicted",
                        "%s: evicted the %llu oldest document(s) to stay within max_items=%llu",
                        collection, (unsigned long long)evicted,
                        (unsigned long long)inst->max_items);
    return rc;
}

/* ---- reads ----------------------------------------------------------- */

static int32_t mem_get(persistor_instance *inst, const char *collection, const char *id,
                       persistor_buffer *out, persistor_error *err)
{
    mem_collection *c;
    int32_t rc = mem_collection_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK)
        return rc;
    mem_item *item = mem_find(c, id);
    if (item == NULL)
        return PERSISTOR_NOT_FOUND;
    if (inst->host->buffer_set(out, item->doc, item->len) != PERSISTOR_OK)
        return inst->host->error_set(err, PERSISTOR_E_NOMEM, "%s/%s: out of memory for %u bytes",
                                     collection, id, item->len);
    return PERSISTOR_OK;
}

/* Merge sort, because it is stable: on a tie the earlier write stays first.
 * (qsort is not, and its comparator could not reach the host's sorter.) */
static void mem_sort(const persistor_host *host, const persistor_sorter *s, mem_item **a,
                     mem_item **tmp, size_t n)
{
    if (n < 2)
        return;
    size_t half = n / 2, i = 0, j = half, k = 0;
    mem_sort(host, s, a, tmp, half);
    mem_sort(host, s, a + half, tmp, n - half);
    while (i < half && j < n)
        tmp[k++] = host->sorter_compare(s, a[j]->doc, a[j]->len, a[i]->doc, a[i]->len) < 0
                       ? a[j++] : a[i++];
    while (i < half)
        tmp[k++] = a[i++];
    memcpy(a, tmp, k * sizeof *a); /* a[j..n) is already in place */
}

/* Copy hits[first..last) into a new cursor. */
static persistor_cursor *mem_cursor_new(mem_item **hits, size_t first, size_t last)
{
    size_t size = 0;
    for (size_t i = first; i < last; i++)
        size += hits[i]->len;
    persistor_cursor *cur = malloc(sizeof *cur + size);
    if (cur == NULL)
        return NULL;
    cur->size = cur->off = 0;
    for (size_t i = first; i < last; i++) {
        memcpy(cur->data + cur->size, hits[i]->doc, hits[i]->len);
        cur->size += hits[i]->len;
    }
    return cur;
}

/* A full scan in write order, a stable sort, then skip and limit.  The
 * host compiles filter and sort: their errors pass through as they are. */
static int32_t mem_query(persistor_instance *inst, const char *collection,
                         const persistor_query *q, persistor_cursor **out, persistor_error *err)
{
    const persistor_host *host = inst->host;
    persistor_matcher *m = NULL;
    persistor_sorter *s = NULL;
    mem_collection *c;
    size_t n = 0;
    int32_t rc = mem_collection_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK ||
        (rc = host->matcher_new(q->filter, q->filter_len, &m, err)) != PERSISTOR_OK)
        return rc;
    if (q->sort != NULL && q->sort_len > 0 &&
        (rc = host->sorter_new(q->sort, q->sort_len, &s, err)) != PERSISTOR_OK) {
        host->matcher_free(m);
        return rc;
    }
    mem_item **hits = malloc((c->count + 1) * sizeof *hits);
    mem_item **tmp = malloc((c->count + 1) * sizeof *tmp);
    if (hits != NULL && tmp != NULL) {
        for (mem_item *item = c->oldest; item != NULL; item = item->newer)
            if (host->matcher_match(m, item->doc, item->len))
                hits[n++] = item;
        if (s != NULL)
            mem_sort(host, s, hits, tmp, n);
        size_t first = q->skip < n ? (size_t)q->skip : n;
        size_t last = q->limit > 0 && q->limit < n - first ? first + (size_t)q->limit : n;
        *out = mem_cursor_new(hits, first, last);
    }
    if (hits == NULL || tmp == NULL || *out == NULL)
        rc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory for a query", collection);
    free(hits);
    free(tmp);
    if (s != NULL)
        host->sorter_free(s);
    host->matcher_free(m);
    return rc;
}

static int32_t mem_cursor_next(persistor_cursor *cur, const uint8_t **doc, uint32_t *len,
                               persistor_error *err)
{
    if (cur->off >= cur->size)
        return PERSISTOR_ITER_END;
    *doc = cur->data + cur->off;
    *len = mem_le32(*doc);
    cur->off += *len;
    return PERSISTOR_OK;
}

static void mem_cursor_close(persistor_cursor *cur)
{
    free(cur);
}

static int32_t mem_count(persistor_instance *inst, const char *collection, const uint8_t *filter,
                         uint32_t filter_len, uint64_t *out, persistor_error *err)
{
    const persistor_host *host = inst->host;
    persistor_matcher *m;
    mem_collection *c;
    int32_t rc = mem_collection_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK ||
        (rc = host->matcher_new(filter, filter_len, &m, err)) != PERSISTOR_OK)
        return rc;
    *out = 0;
    for (mem_item *item = c->oldest; item != NULL; item = item->newer)
        *out += host->matcher_match(m, item->doc, item->len) != 0;
    host->matcher_free(m);
    return PERSISTOR_OK;
}

static int32_t mem_stats(persistor_instance *inst, const char *collection,
                         persistor_collection_stats *out, persistor_error *err)
{
    mem_collection *c;
    int32_t rc = mem_collection_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK)
        return rc;
    out->item_count = c->count;
    out->total_size = c->bytes;
    return PERSISTOR_OK;
}

/* A document without a date in the TTL field never expires, as in
 * MongoDB; host->doc_time_ms reads the field the way MongoDB does. */
static int32_t mem_expire(persistor_instance *inst, const char *collection, int64_t cutoff_ms,
                          uint64_t *removed, persistor_error *err)
{
    mem_collection *c;
    int64_t ms;
    *removed = 0;
    int32_t rc = mem_collection_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK || c->spec->ttl_seconds <= 0 || c->spec->ttl_field == NULL)
        return rc;
    for (mem_item *item = c->oldest, *next; item != NULL; item = next) {
        next = item->newer;
        if (inst->host->doc_time_ms(item->doc, item->len, c->spec->ttl_field, &ms) ==
                PERSISTOR_OK && ms < cutoff_ms) {
            mem_remove(c, item);
            (*removed)++;
        }
    }
    return PERSISTOR_OK;
}

/* ---- instances ------------------------------------------------------- */

static int32_t mem_open(const persistor_host *host, const persistor_config *config,
                        persistor_instance **out, persistor_error *err)
{
    int64_t max_items = 0;
    if (host->config_int(config, "max_items", &max_items) < 0)
        return host->config_error(config, "max_items", err, "cannot be read");
    if (max_items < 0)
        return host->config_error(config, "max_items", err,
                                  "must be >= 0 (0: unbounded), got %lld", (long long)max_items);
    persistor_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory",
                               host->config_label(config));
    inst->host = host;
    inst->max_items = (uint64_t)max_items;
    *out = inst;
    return PERSISTOR_OK;
}

static void mem_close(persistor_instance *inst)
{
    while (inst->collections != NULL) {
        mem_collection *c = inst->collections;
        inst->collections = c->next;
        while (c->oldest != NULL)
            mem_remove(c, c->oldest);
        if (c->version != NULL)
            inst->host->sorter_free(c->version);
        free(c->buckets);
        free(c);
    }
    inst->host->buffer_free(&inst->key);
    inst->host->buffer_free(&inst->other_key);
    free(inst);
}

/* An in-process store is always there. */
static int32_t mem_ping(persistor_instance *inst, persistor_error *err)
{
    return PERSISTOR_OK;
}

/* ---- the table ------------------------------------------------------- */

static const persistor_option_spec mem_options[] = {
    {"max_items", PERSISTOR_OPTION_INT, 0, "0",
     "keep at most this many documents per collection, evicting the oldest writes (0: no bound)"},
};

static const persistor_adapter mem_adapter = {
    .abi_major = PERSISTOR_ABI_MAJOR,
    .abi_minor = PERSISTOR_ABI_MINOR,
    .struct_size = sizeof(persistor_adapter),
    .capabilities = 0, /* not THREAD_SAFE: the host serialises our calls */
    .name = "memory",
    .version = "1.0.0",
    .description = "in-process store: fast, lost at exit; for development and tests",
    .options = mem_options,
    .n_options = sizeof mem_options / sizeof mem_options[0],
    .open = mem_open,
    .close = mem_close,
    .ping = mem_ping,
    .ensure_collection = mem_ensure_collection,
    .write = mem_write,
    .get = mem_get,
    .query = mem_query,
    .cursor_next = mem_cursor_next,
    .cursor_close = mem_cursor_close,
    .count = mem_count,
    .expire = mem_expire,
    .stats = mem_stats,
};

/* The one exported symbol.  It must not allocate or log: just refuse a host
 * of another major version, or one older than the table we were built for. */
PERSISTOR_ADAPTER_EXPORT const persistor_adapter *persistor_adapter_entry(const persistor_host *host)
{
    if (host == NULL || host->abi_major != PERSISTOR_ABI_MAJOR ||
        host->struct_size < sizeof(persistor_host))
        return NULL;
    return &mem_adapter;
}
