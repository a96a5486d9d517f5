/*
 * memory.c — the in-memory adapter, and the template for adapter authors.
 *
 * Copy this file to start a new adapter.  It implements every slot of
 * include/persistor/adapter.h in the simplest way that keeps the contract.
 * It includes nothing of persistor's but adapter.h and links nothing but
 * libc: logging, buffers, errors, options and the whole query language come
 * through the host table handed to open().
 *
 * Storage, per collection: a hash table id -> item, a doubly linked list of
 * the items in write order (oldest first, for max_items eviction) and, per
 * UNIQUE index, a hash table from the index key bytes (host->index_key) to
 * the item.  Queries scan the list, so non-unique indexes need nothing here.
 *
 * It must not keep state in globals (two instances share nothing), hold on
 * to memory the host lends for one call, or leave an operation half-applied
 * when an allocation fails: every allocation an operation needs is made
 * before the first change, and linking/unlinking never fails.
 *
 * Not thread-safe on purpose: the adapter does not claim
 * PERSISTOR_CAP_THREAD_SAFE, so the host serialises every call into an
 * instance (cursors included) and the template needs no locks.
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "persistor/adapter.h"

/* ---- a small hash table: FNV-1a, chaining, grown at load factor 1 ---- */

typedef struct mem_item mem_item;

/* A table entry.  Nodes live inside what they index, so adding one never
 * allocates and removing one never fails. */
typedef struct mem_node {
    struct mem_node *next;
    uint64_t hash;
    uint8_t *key;
    uint32_t key_len;
    mem_item *item;
} mem_node;

typedef struct mem_table {
    mem_node **buckets;
    size_t n_buckets; /* a power of two */
    size_t n;
} mem_table;

static uint64_t mem_hash(const void *key, size_t len)
{
    const uint8_t *p = key;
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ p[i]) * 1099511628211u;
    return h;
}

static int32_t mem_table_init(mem_table *t)
{
    t->n_buckets = 16;
    t->n = 0;
    t->buckets = calloc(t->n_buckets, sizeof *t->buckets);
    return t->buckets ? PERSISTOR_OK : PERSISTOR_E_NOMEM;
}

static mem_node *mem_table_find(const mem_table *t, const void *key, uint32_t len)
{
    uint64_t h = mem_hash(key, len);
    for (mem_node *n = t->buckets[h & (t->n_buckets - 1)]; n != NULL; n = n->next)
        if (n->hash == h && n->key_len == len && memcmp(n->key, key, len) == 0)
            return n;
    return NULL;
}

/* If the bigger array cannot be had, keep the old one: the table only gets
 * slower, and adding stays infallible. */
static void mem_table_grow(mem_table *t)
{
    size_t nb = t->n_buckets * 2;
    mem_node **b = calloc(nb, sizeof *b);
    if (b == NULL)
        return;
    for (size_t i = 0; i < t->n_buckets; i++) {
        for (mem_node *n = t->buckets[i], *next; n != NULL; n = next) {
            next = n->next;
            n->next = b[n->hash & (nb - 1)];
            b[n->hash & (nb - 1)] = n;
        }
    }
    free(t->buckets);
    t->buckets = b;
    t->n_buckets = nb;
}

static void mem_table_add(mem_table *t, mem_node *node)
{
    if (t->n >= t->n_buckets)
        mem_table_grow(t);
    node->hash = mem_hash(node->key, node->key_len);
    mem_node **head = &t->buckets[node->hash & (t->n_buckets - 1)];
    node->next = *head;
    *head = node;
    t->n++;
}

static void mem_table_remove(mem_table *t, mem_node *node)
{
    mem_node **p = &t->buckets[node->hash & (t->n_buckets - 1)];
    while (*p != node)
        p = &(*p)->next;
    *p = node->next;
    t->n--;
}

/* ---- data ---------------------------------------------------------- */

/* One stored document.  One allocation holds the struct, the document and
 * the NUL-terminated id (by_id.key).  `keys` holds the item's node in each
 * unique index; `staged` is only used while ensure_collection rebuilds. */
struct mem_item {
    mem_node by_id;
    mem_node *keys;
    mem_node *staged;
    mem_item *older, *newer;
    uint8_t *doc;
    uint32_t len;
};

/* A unique index: a deep copy of its spec (one allocation) and its table. */
typedef struct mem_index {
    persistor_index_spec spec;
    void *copy;
    mem_table table;
} mem_index;

typedef struct mem_collection {
    struct mem_collection *next; /* a handful per instance: a list will do */
    char *name;
    mem_table by_id;
    mem_index *unique;
    uint32_t n_unique;
    mem_item *oldest, *newest;
    uint64_t count, bytes;
    char *ttl_field; /* NULL: no TTL */
} mem_collection;

struct persistor_instance {
    const persistor_host *host;
    uint64_t max_items; /* per collection; 0: unbounded */
    mem_collection *collections;
    persistor_buffer scratch; /* for host->index_key */
};

/* Matching documents copied back to back at query time: the host may write
 * between cursor_next calls, and must not pull them from under us. */
struct persistor_cursor {
    uint8_t *data;
    size_t size, off;
};

#define mem_id(item) ((const char *)(item)->by_id.key)

static char *mem_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *copy = malloc(n);
    return copy ? memcpy(copy, s, n) : NULL;
}

/* BSON opens with its total length, little-endian. */
static uint32_t mem_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Enough to keep our own arithmetic safe; the host checks the rest. */
static bool mem_bson_ok(const uint8_t *doc, uint32_t len)
{
    return doc != NULL && len >= 5 && mem_le32(doc) == len && doc[len - 1] == 0;
}

static void mem_keys_free(mem_node *keys, uint32_t n)
{
    for (uint32_t i = 0; keys != NULL && i < n; i++)
        free(keys[i].key);
    free(keys);
}

static void mem_indexes_free(mem_index *idx, uint32_t n)
{
    for (uint32_t i = 0; idx != NULL && i < n; i++) {
        free(idx[i].copy);
        free(idx[i].table.buckets);
    }
    free(idx);
}

static void mem_collection_free(mem_collection *c)
{
    for (mem_item *item = c->oldest, *next; item != NULL; item = next) {
        next = item->newer;
        mem_keys_free(item->keys, c->n_unique);
        free(item);
    }
    mem_indexes_free(c->unique, c->n_unique);
    free(c->by_id.buckets);
    free(c->ttl_field);
    free(c->name);
    free(c);
}

static mem_collection *mem_collection_find(const persistor_instance *inst, const char *name)
{
    for (mem_collection *c = inst->collections; c != NULL; c = c->next)
        if (strcmp(c->name, name) == 0)
            return c;
    return NULL;
}

/* Any other call before ensure_collection is a host bug, not the caller's. */
static int32_t mem_collection_get(const persistor_instance *inst, const char *name,
                                  mem_collection **out, persistor_error *err)
{
    *out = mem_collection_find(inst, name);
    if (*out == NULL)
        return inst->host->error_set(err, PERSISTOR_E_INVALID,
                                     "collection %s was not ensured", name);
    return PERSISTOR_OK;
}

static mem_item *mem_find(const mem_collection *c, const char *id)
{
    mem_node *n = mem_table_find(&c->by_id, id, (uint32_t)strlen(id));
    return n ? n->item : NULL;
}

/* Newest end of the list: a write, even a replacing one, is the newest. */
static void mem_link(mem_collection *c, mem_item *item)
{
    mem_table_add(&c->by_id, &item->by_id);
    for (uint32_t i = 0; i < c->n_unique; i++)
        mem_table_add(&c->unique[i].table, &item->keys[i]);
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
    mem_table_remove(&c->by_id, &item->by_id);
    for (uint32_t i = 0; i < c->n_unique; i++)
        mem_table_remove(&c->unique[i].table, &item->keys[i]);
    *(item->older ? &item->older->newer : &c->oldest) = item->newer;
    *(item->newer ? &item->newer->older : &c->newest) = item->older;
    c->count--;
    c->bytes -= item->len;
    mem_keys_free(item->keys, c->n_unique);
    free(item);
}

/* The nodes of `item` in each of `unique`, keys copied out of the scratch
 * buffer.  OK, or index_key's error (E_INVALID, E_NOMEM), or E_NOMEM. */
static int32_t mem_keys_new(persistor_instance *inst, const mem_index *unique, uint32_t n,
                            mem_item *item, mem_node **out)
{
    *out = NULL;
    if (n == 0)
        return PERSISTOR_OK;
    mem_node *keys = calloc(n, sizeof *keys);
    if (keys == NULL)
        return PERSISTOR_E_NOMEM;
    int32_t rc = PERSISTOR_OK;
    for (uint32_t i = 0; i < n; i++) {
        rc = inst->host->index_key(&unique[i].spec, item->doc, item->len, &inst->scratch);
        if (rc != PERSISTOR_OK)
            goto fail;
        keys[i].key = malloc((size_t)inst->scratch.len + 1);
        if (keys[i].key == NULL) {
            rc = PERSISTOR_E_NOMEM;
            goto fail;
        }
        memcpy(keys[i].key, inst->scratch.data, inst->scratch.len);
        keys[i].key_len = inst->scratch.len;
        keys[i].item = item;
    }
    *out = keys;
    return PERSISTOR_OK;
fail:
    mem_keys_free(keys, n);
    return rc;
}

/* ---- ensure_collection --------------------------------------------- */

/* Deep copy: the spec is only lent for the call. */
static int32_t mem_index_copy(mem_index *dst, const persistor_index_spec *src)
{
    size_t size = src->n_keys * sizeof(persistor_index_key) + strlen(src->name) + 1;
    for (uint32_t k = 0; k < src->n_keys; k++)
        size += strlen(src->keys[k].field) + 1;
    persistor_index_key *keys = malloc(size);
    if (keys == NULL)
        return PERSISTOR_E_NOMEM;
    char *text = (char *)(keys + src->n_keys);
    for (uint32_t k = 0; k < src->n_keys; k++) {
        keys[k].field = strcpy(text, src->keys[k].field);
        keys[k].direction = src->keys[k].direction;
        text += strlen(text) + 1;
    }
    dst->spec.name = strcpy(text, src->name);
    dst->spec.keys = keys;
    dst->spec.n_keys = src->n_keys;
    dst->spec.flags = src->flags;
    dst->copy = keys;
    return mem_table_init(&dst->table);
}

static int32_t mem_indexes_new(const persistor_collection_spec *spec, mem_index **out,
                               uint32_t *n_out)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < spec->n_indexes; i++)
        n += (spec->indexes[i].flags & PERSISTOR_INDEX_UNIQUE) != 0;
    *out = NULL;
    *n_out = 0;
    if (n == 0)
        return PERSISTOR_OK;
    mem_index *idx = calloc(n, sizeof *idx);
    if (idx == NULL)
        return PERSISTOR_E_NOMEM;
    for (uint32_t i = 0, j = 0; i < spec->n_indexes; i++) {
        if (!(spec->indexes[i].flags & PERSISTOR_INDEX_UNIQUE))
            continue;
        if (mem_index_copy(&idx[j++], &spec->indexes[i]) != PERSISTOR_OK) {
            mem_indexes_free(idx, n);
            return PERSISTOR_E_NOMEM;
        }
    }
    *out = idx;
    *n_out = n;
    return PERSISTOR_OK;
}

/* Index every item into the new tables through item->staged, refusing data
 * that already breaks one of them, as MongoDB refuses to build such an
 * index.  On failure nothing of the collection has changed. */
static int32_t mem_rekey(persistor_instance *inst, mem_collection *c, mem_index *unique,
                         uint32_t n, persistor_error *err)
{
    const persistor_host *host = inst->host;
    int32_t rc = PERSISTOR_OK;
    for (mem_item *item = c->oldest; item != NULL; item = item->newer) {
        rc = mem_keys_new(inst, unique, n, item, &item->staged);
        if (rc != PERSISTOR_OK) {
            host->error_set(err, rc, "%s: cannot index document %s", c->name, mem_id(item));
            goto fail;
        }
        for (uint32_t i = 0; i < n; i++) {
            mem_node *other = mem_table_find(&unique[i].table, item->staged[i].key,
                                             item->staged[i].key_len);
            if (other != NULL) {
                rc = host->error_set(err, PERSISTOR_E_CONFIG,
                                     "%s: cannot build unique index %s: documents %s and %s "
                                     "have the same key; remove one of them first",
                                     c->name, unique[i].spec.name, mem_id(other->item),
                                     mem_id(item));
                goto fail;
            }
            mem_table_add(&unique[i].table, &item->staged[i]);
        }
    }
    return PERSISTOR_OK;
fail:
    for (mem_item *item = c->oldest; item != NULL; item = item->newer) {
        mem_keys_free(item->staged, n);
        item->staged = NULL;
    }
    return rc;
}

/* Bring indexes and TTL to `spec`: build everything aside, then swap. */
static int32_t mem_configure(persistor_instance *inst, mem_collection *c,
                             const persistor_collection_spec *spec, persistor_error *err)
{
    mem_index *unique = NULL;
    uint32_t n = 0;
    char *ttl = NULL;
    int32_t rc = mem_indexes_new(spec, &unique, &n);
    if (rc == PERSISTOR_OK && spec->ttl_seconds > 0 && spec->ttl_field != NULL &&
        (ttl = mem_strdup(spec->ttl_field)) == NULL)
        rc = PERSISTOR_E_NOMEM;
    if (rc != PERSISTOR_OK) {
        inst->host->error_set(err, rc, "%s: out of memory for its indexes", spec->name);
        goto fail;
    }
    rc = mem_rekey(inst, c, unique, n, err);
    if (rc != PERSISTOR_OK)
        goto fail;
    for (mem_item *item = c->oldest; item != NULL; item = item->newer) {
        mem_keys_free(item->keys, c->n_unique);
        item->keys = item->staged;
        item->staged = NULL;
    }
    mem_indexes_free(c->unique, c->n_unique);
    c->unique = unique;
    c->n_unique = n;
    free(c->ttl_field);
    c->ttl_field = ttl;
    return PERSISTOR_OK;
fail:
    mem_indexes_free(unique, n);
    free(ttl);
    return rc;
}

static int32_t mem_ensure_collection(persistor_instance *inst,
                                     const persistor_collection_spec *spec, persistor_error *err)
{
    mem_collection *c = mem_collection_find(inst, spec->name);
    bool fresh = c == NULL;
    if (fresh) {
        c = calloc(1, sizeof *c);
        if (c == NULL || (c->name = mem_strdup(spec->name)) == NULL ||
            mem_table_init(&c->by_id) != PERSISTOR_OK) {
            if (c != NULL)
                mem_collection_free(c);
            return inst->host->error_set(err, PERSISTOR_E_NOMEM,
                                         "%s: out of memory creating it", spec->name);
        }
    }
    int32_t rc = mem_configure(inst, c, spec, err);
    if (rc != PERSISTOR_OK) {
        if (fresh)
            mem_collection_free(c);
        return rc;
    }
    if (fresh) {
        c->next = inst->collections;
        inst->collections = c;
    }
    return PERSISTOR_OK;
}

/* ---- write --------------------------------------------------------- */

static mem_item *mem_item_new(const persistor_write_op *op)
{
    size_t id_len = strlen(op->id);
    mem_item *item = malloc(sizeof *item + op->doc_len + id_len + 1);
    if (item == NULL)
        return NULL;
    memset(item, 0, sizeof *item);
    item->doc = memcpy(item + 1, op->doc, op->doc_len);
    item->len = op->doc_len;
    item->by_id.key = memcpy(item->doc + op->doc_len, op->id, id_len + 1);
    item->by_id.key_len = (uint32_t)id_len;
    item->by_id.item = item;
    return item;
}

/* Drop the oldest writes until one more id fits under max_items. */
static void mem_make_room(persistor_instance *inst, mem_collection *c, uint64_t *evicted)
{
    while (inst->max_items > 0 && c->count >= inst->max_items) {
        mem_remove(c, c->oldest);
        (*evicted)++;
    }
}

/* INSERT_IF_ABSENT and UPSERT.  Every check and allocation comes before the
 * first change, so a refused or failed write changes (and evicts) nothing. */
static int32_t mem_put(persistor_instance *inst, mem_collection *c, const persistor_write_op *op,
                       uint64_t *evicted, persistor_error *err)
{
    const persistor_host *host = inst->host;
    mem_item *old = mem_find(c, op->id);
    if (old != NULL && op->kind == PERSISTOR_WRITE_INSERT_IF_ABSENT)
        return PERSISTOR_EXISTS;
    if (!mem_bson_ok(op->doc, op->doc_len))
        return host->error_set(err, PERSISTOR_E_INVALID, "%s/%s: the document is not BSON",
                               c->name, op->id);
    mem_item *item = mem_item_new(op);
    if (item == NULL)
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s/%s: out of memory for %u bytes",
                               c->name, op->id, op->doc_len);
    int32_t rc = mem_keys_new(inst, c->unique, c->n_unique, item, &item->keys);
    if (rc != PERSISTOR_OK) {
        free(item);
        return host->error_set(err, rc, "%s/%s: cannot compute its unique index keys", c->name,
                               op->id);
    }
    for (uint32_t i = 0; i < c->n_unique; i++) {
        mem_node *n = mem_table_find(&c->unique[i].table, item->keys[i].key,
                                     item->keys[i].key_len);
        if (n != NULL && n->item != old) {
            mem_keys_free(item->keys, c->n_unique);
            free(item);
            return PERSISTOR_EXISTS;
        }
    }
    if (old != NULL)
        mem_remove(c, old);
    else
        mem_make_room(inst, c, evicted);
    mem_link(c, item);
    return PERSISTOR_OK;
}

static int32_t mem_apply(persistor_instance *inst, mem_collection *c, const persistor_write_op *op,
                         uint64_t *evicted, persistor_error *err)
{
    if (op->id == NULL)
        return inst->host->error_set(err, PERSISTOR_E_INVALID, "%s: a write without an id",
                                     c->name);
    switch (op->kind) {
    case PERSISTOR_WRITE_INSERT_IF_ABSENT:
    case PERSISTOR_WRITE_UPSERT:
        return mem_put(inst, c, op, evicted, err);
    case PERSISTOR_WRITE_DELETE: {
        mem_item *item = mem_find(c, op->id);
        if (item == NULL)
            return PERSISTOR_NOT_FOUND;
        mem_remove(c, item);
        return PERSISTOR_OK;
    }
    default:
        return inst->host->error_set(err, PERSISTOR_E_INVALID, "%s/%s: unknown write kind %u",
                                     c->name, op->id, op->kind);
    }
}

/* Ops apply in order.  The batch is not one transaction: at the first
 * error the ops before it stay applied and it and the rest get the error. */
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
    if (evicted > 0)
        inst->host->log(inst->host, PERSISTOR_LOG_DEBUG, "memory_evicted",
                        "%s: evicted the %llu oldest document(s) to stay within max_items=%llu",
                        collection, (unsigned long long)evicted,
                        (unsigned long long)inst->max_items);
    return rc;
}

/* ---- reads --------------------------------------------------------- */

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

/* Stable: on a tie the earlier write stays first. */
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

static int32_t mem_cursor_new(mem_item **hits, size_t n, const persistor_query *q,
                              persistor_cursor **out)
{
    size_t first = q->skip < n ? (size_t)q->skip : n;
    size_t last = q->limit > 0 && q->limit < n - first ? first + (size_t)q->limit : n;
    size_t size = 0;
    for (size_t i = first; i < last; i++)
        size += hits[i]->len;
    persistor_cursor *cur = calloc(1, sizeof *cur);
    uint8_t *data = malloc(size + 1);
    if (cur == NULL || data == NULL) {
        free(cur);
        free(data);
        return PERSISTOR_E_NOMEM;
    }
    for (size_t i = first; i < last; i++) {
        memcpy(data + cur->size, hits[i]->doc, hits[i]->len);
        cur->size += hits[i]->len;
    }
    cur->data = data;
    *out = cur;
    return PERSISTOR_OK;
}

/* A full scan in write order, then a stable sort, then skip and limit.
 * The host compiles filter and sort: their errors pass through as is. */
static int32_t mem_query(persistor_instance *inst, const char *collection,
                         const persistor_query *q, persistor_cursor **out, persistor_error *err)
{
    const persistor_host *host = inst->host;
    persistor_matcher *m = NULL;
    persistor_sorter *s = NULL;
    mem_item **hits = NULL, **tmp = NULL;
    size_t n = 0;
    mem_collection *c;
    int32_t rc = mem_collection_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK)
        return rc;
    rc = host->matcher_new(q->filter, q->filter_len, &m, err);
    if (rc != PERSISTOR_OK)
        return rc;
    if (q->sort != NULL && q->sort_len > 0 &&
        (rc = host->sorter_new(q->sort, q->sort_len, &s, err)) != PERSISTOR_OK)
        goto done;
    hits = malloc((c->count + 1) * sizeof *hits);
    tmp = s ? malloc((c->count + 1) * sizeof *tmp) : NULL;
    if (hits == NULL || (s != NULL && tmp == NULL))
        goto nomem;
    for (mem_item *item = c->oldest; item != NULL; item = item->newer)
        if (host->matcher_match(m, item->doc, item->len))
            hits[n++] = item;
    if (s != NULL)
        mem_sort(host, s, hits, tmp, n);
    if (mem_cursor_new(hits, n, q, out) != PERSISTOR_OK)
        goto nomem;
    goto done;
nomem:
    rc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory for a query", collection);
done:
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
    free(cur->data);
    free(cur);
}

static int32_t mem_count(persistor_instance *inst, const char *collection, const uint8_t *filter,
                         uint32_t filter_len, uint64_t *out, persistor_error *err)
{
    const persistor_host *host = inst->host;
    persistor_matcher *m;
    mem_collection *c;
    int32_t rc = mem_collection_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK || (rc = host->matcher_new(filter, filter_len, &m, err)) != PERSISTOR_OK)
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

/* Documents without the TTL field (or with a non-date there) never expire,
 * as in MongoDB. */
static int32_t mem_expire(persistor_instance *inst, const char *collection, int64_t cutoff_ms,
                          uint64_t *removed, persistor_error *err)
{
    mem_collection *c;
    int64_t ms;
    *removed = 0;
    int32_t rc = mem_collection_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK || c->ttl_field == NULL)
        return rc;
    for (mem_item *item = c->oldest, *next; item != NULL; item = next) {
        next = item->newer;
        if (inst->host->doc_time_ms(item->doc, item->len, c->ttl_field, &ms) == PERSISTOR_OK &&
            ms < cutoff_ms) {
            mem_remove(c, item);
            (*removed)++;
        }
    }
    return PERSISTOR_OK;
}

/* ---- instances ----------------------------------------------------- */

static int32_t mem_open(const persistor_host *host, const persistor_config *config,
                        persistor_instance **out, persistor_error *err)
{
    int64_t max_items = 0;
    int32_t rc = host->config_int(config, "max_items", &max_items);
    if (rc < 0)
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
        mem_collection_free(c);
    }
    /* adapter.h has no buffer_free slot; host buffers are malloc'd memory. */
    inst->host->buffer_free(&inst->scratch);
    free(inst);
}

static int32_t mem_ping(persistor_instance *inst, persistor_error *err)
{
    return PERSISTOR_OK;
}

/* ---- the table ----------------------------------------------------- */

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
