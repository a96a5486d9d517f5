/*
 * lmdb_collection.c — collections: finding an ensured one, ensure_collection
 * (the stored spec, sub-db handles, emptying indexes that went away and
 * building new ones, the TTL sub-db, the version sorter), and each index's
 * "clean" flag (no array was ever stored in its fields; see lmdb_private.h).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "lmdb_private.h"

int32_t lm_coll_get(persistor_instance *inst, const char *name, lm_coll **out,
                    persistor_error *err)
{
    lm_coll *c = inst->colls;
    while (c != NULL && strcmp(c->spec->name, name) != 0)
        c = c->next;
    *out = c;
    if (c == NULL)
        return inst->host->error_set(err, PERSISTOR_E_INVALID, "collection %s was not ensured",
                                     name);
    return PERSISTOR_OK;
}

/* A growable byte string for spec serialization. */
typedef struct lm_bytes {
    uint8_t *p;
    size_t n, cap;
    int oom;
} lm_bytes;

static void lm_bytes_add(lm_bytes *b, const void *data, size_t n)
{
    if (b->oom || n == 0)
        return;
    if (b->n + n > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 256;
        while (cap < b->n + n)
            cap *= 2;
        uint8_t *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->n, data, n);
    b->n += n;
}

static void lm_bytes_u32(lm_bytes *b, uint32_t v)
{
    uint8_t le[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    lm_bytes_add(b, le, 4);
}

static void lm_bytes_str(lm_bytes *b, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    lm_bytes_u32(b, (uint32_t)n);
    lm_bytes_add(b, s, n);
}

/* One index as bytes: what must match for an existing sub-db to be kept. */
static void lm_index_blob(lm_bytes *b, const persistor_index_spec *ix)
{
    lm_bytes_str(b, ix->name);
    lm_bytes_u32(b, ix->flags & PERSISTOR_INDEX_UNIQUE);
    lm_bytes_u32(b, ix->n_keys);
    for (uint32_t k = 0; k < ix->n_keys; k++) {
        lm_bytes_str(b, ix->keys[k].field);
        lm_bytes_u32(b, ix->keys[k].direction < 0 ? 1u : 0u);
    }
}

/* The stored spec: ttl field (empty: none), then per index a length and
 * the index blob.  The TTL sub-db depends on the field only. */
static void lm_spec_blob(lm_bytes *b, const persistor_collection_spec *spec)
{
    lm_bytes_str(b, spec->ttl_seconds > 0 ? spec->ttl_field : NULL);
    for (uint32_t i = 0; i < spec->n_indexes; i++) {
        lm_bytes one = {0};
        lm_index_blob(&one, &spec->indexes[i]);
        b->oom |= one.oom;
        lm_bytes_u32(b, (uint32_t)one.n);
        lm_bytes_add(b, one.p, one.n);
        free(one.p);
    }
}

static uint32_t lm_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Walk a stored spec: the ttl field, then each index blob (name first). */
typedef struct lm_spec_walk {
    const uint8_t *p, *end;
} lm_spec_walk;

static int lm_walk_next(lm_spec_walk *w, const uint8_t **blob, uint32_t *len)
{
    if (w->end - w->p < 4)
        return 0;
    *len = lm_le32(w->p);
    if ((size_t)(w->end - w->p - 4) < *len)
        return 0;
    *blob = w->p + 4;
    w->p += 4 + *len;
    return 1;
}

static char *lm_db_name(const char *kind, const char *coll, const char *index)
{
    size_t n = strlen(kind) + strlen(coll) + (index ? strlen(index) : 0) + 32;
    char *s = malloc(n);
    if (s == NULL)
        return NULL;
    if (index != NULL)
        snprintf(s, n, "%s:%zu:%s:%s", kind, strlen(coll), coll, index);
    else
        snprintf(s, n, "%s:%s", kind, coll);
    return s;
}

static int lm_dbi_open(MDB_txn *txn, const char *kind, const char *coll, const char *index,
                       MDB_dbi *dbi)
{
    char *name = lm_db_name(kind, coll, index);
    if (name == NULL)
        return ENOMEM;
    int rc = mdb_dbi_open(txn, name, MDB_CREATE, dbi);
    free(name);
    return rc;
}

void lm_coll_free(persistor_instance *inst, lm_coll *c)
{
    if (c == NULL)
        return;
    for (uint32_t i = 0; c->idx != NULL && i < c->n_idx; i++)
        free(c->idx[i].clean_key);
    free(c->idx);
    free(c->stat_key);
    if (c->version != NULL)
        inst->host->sorter_free(c->version);
    free(c);
}

/* ---- clean flags ---------------------------------------------------- */

static char *lm_clean_key(const char *coll, const char *index)
{
    char *db = lm_db_name("i", coll, index);
    if (db == NULL)
        return NULL;
    size_t n = strlen(db) + 7;
    char *s = malloc(n);
    if (s != NULL)
        snprintf(s, n, "clean:%s", db);
    free(db);
    return s;
}

/* Set (clean) or delete the flag of a just built index. */
static int lm_clean_set(MDB_txn *txn, MDB_dbi meta, const char *key, int clean)
{
    MDB_val k = {strlen(key), (void *)key}, v = {0, ""};
    int rc = clean ? mdb_put(txn, meta, &k, &v, 0) : mdb_del(txn, meta, &k, NULL);
    return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

int lm_index_is_clean(persistor_instance *inst, MDB_txn *txn, lm_index *ix, int *mdb)
{
    if (ix->clean_key == NULL)
        return 0;
    size_t id = mdb_txn_id(txn);
    if (ix->clean >= 0 && ix->clean_txnid == id)
        return ix->clean;
    MDB_val k = {ix->clean_key_len, ix->clean_key}, v;
    int rc = mdb_get(txn, inst->shared->meta, &k, &v);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND) {
        *mdb = rc;
        return 0;
    }
    ix->clean = rc == MDB_SUCCESS;
    ix->clean_txnid = id;
    return ix->clean;
}

/* Refill an emptied index sub-db from the documents; a unique index the
 * data breaks is refused with E_CONFIG naming both ids. */
static int32_t lm_index_build(persistor_instance *inst, MDB_txn *txn, lm_coll *c,
                              const lm_index *ix, int *mdb, persistor_error *err)
{
    const persistor_host *host = inst->host;
    MDB_cursor *cur;
    MDB_val k, v;
    int32_t rc = PERSISTOR_OK;
    int clean = ix->clean_key != NULL;
    if ((*mdb = mdb_cursor_open(txn, c->main, &cur)) != MDB_SUCCESS)
        return PERSISTOR_OK;
    for (int op = MDB_FIRST; (*mdb = mdb_cursor_get(cur, &k, &v, op)) == MDB_SUCCESS;
         op = MDB_NEXT) {
        const char *id = lm_doc_id(v.mv_data, (uint32_t)v.mv_size);
        if (id == NULL) {
            rc = host->error_set(err, PERSISTOR_E_CORRUPT, "%s: %s: a document without _id",
                                 inst->path, c->spec->name);
            break;
        }
        if (ix->unique) {
            MDB_val holder;
            rc = lm_unique_holder(inst, txn, c, ix, v.mv_data, (uint32_t)v.mv_size, k.mv_data,
                                  k.mv_size, &holder, mdb);
            if (rc == PERSISTOR_EXISTS) {
                const char *other = lm_doc_id(holder.mv_data, (uint32_t)holder.mv_size);
                rc = host->error_set(err, PERSISTOR_E_CONFIG,
                                     "%s: cannot build unique index %s: documents %s and %s "
                                     "have the same key; remove one of them first",
                                     c->spec->name, ix->spec->name, other ? other : "?", id);
            }
            if (rc != PERSISTOR_OK || *mdb != MDB_SUCCESS)
                break;
        }
        lm_key e;
        rc = lm_index_entry(inst, ix, v.mv_data, (uint32_t)v.mv_size, id, &e);
        if (rc != PERSISTOR_OK) {
            rc = host->error_set(err, rc, "%s: cannot index document %s", c->spec->name, id);
            break;
        }
        if ((*mdb = lm_index_put(txn, ix, &e, k.mv_data, k.mv_size)) != MDB_SUCCESS)
            break;
        if (clean && lm_doc_has_array(ix, v.mv_data, (uint32_t)v.mv_size))
            clean = 0;
    }
    if (*mdb == MDB_NOTFOUND)
        *mdb = MDB_SUCCESS;
    mdb_cursor_close(cur);
    if (rc == PERSISTOR_OK && *mdb == MDB_SUCCESS && ix->clean_key != NULL)
        *mdb = lm_clean_set(txn, inst->shared->meta, ix->clean_key, clean);
    return rc;
}

/* Refill the TTL sub-db from the documents. */
static int lm_ttl_build(persistor_instance *inst, MDB_txn *txn, lm_coll *c)
{
    MDB_cursor *cur;
    MDB_val k, v;
    uint8_t key[8 + LM_TRUNC_LEN];
    int rc = mdb_cursor_open(txn, c->main, &cur);
    if (rc != MDB_SUCCESS)
        return rc;
    for (int op = MDB_FIRST; (rc = mdb_cursor_get(cur, &k, &v, op)) == MDB_SUCCESS;
         op = MDB_NEXT) {
        int64_t ms;
        if (inst->host->doc_time_ms(v.mv_data, (uint32_t)v.mv_size, c->spec->ttl_field, &ms) !=
            PERSISTOR_OK)
            continue;
        MDB_val tk = {(size_t)lm_ttl_key(ms, k.mv_data, k.mv_size, key), key}, empty = {0, ""};
        if ((rc = mdb_put(txn, c->ttl, &tk, &empty, 0)) != MDB_SUCCESS)
            break;
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* Was this index (same name, keys, flags) in the stored spec? */
static int lm_stored_has(const MDB_val *stored, const uint8_t *blob, size_t n)
{
    lm_spec_walk w = {stored->mv_data, (const uint8_t *)stored->mv_data + stored->mv_size};
    const uint8_t *b;
    uint32_t len;
    if (!lm_walk_next(&w, &b, &len)) /* the ttl field */
        return 0;
    while (lm_walk_next(&w, &b, &len))
        if (len == n && memcmp(b, blob, n) == 0)
            return 1;
    return 0;
}

/* One attempt at ensure in one write transaction: open the sub-dbs, empty
 * those of indexes that went away, build the new ones, record the spec. */
static int32_t lm_ensure_txn(persistor_instance *inst, MDB_txn *txn, lm_coll *c,
                             const lm_bytes *blob, int *mdb, persistor_error *err)
{
    const persistor_collection_spec *spec = c->spec;
    MDB_val stored = {0, NULL}, key;
    char *spec_key = malloc(strlen(spec->name) + 6);
    int32_t rc = PERSISTOR_OK;
    if (spec_key == NULL) {
        *mdb = ENOMEM;
        return PERSISTOR_OK;
    }
    sprintf(spec_key, "spec:%s", spec->name);
    key = (MDB_val){strlen(spec_key), spec_key};
    if ((*mdb = lm_dbi_open(txn, "d", spec->name, NULL, &c->main)) != MDB_SUCCESS ||
        (*mdb = lm_dbi_open(txn, "t", spec->name, NULL, &c->ttl)) != MDB_SUCCESS)
        goto out;
    *mdb = mdb_get(txn, inst->shared->meta, &key, &stored);
    if (*mdb == MDB_NOTFOUND) {
        stored = (MDB_val){0, NULL};
    } else if (*mdb != MDB_SUCCESS) {
        goto out;
    }
    *mdb = MDB_SUCCESS;
    if (stored.mv_size == blob->n && memcmp(stored.mv_data, blob->p, blob->n) == 0) {
        /* Unchanged: just the handles. */
        for (uint32_t i = 0; i < c->n_idx; i++)
            if ((*mdb = lm_dbi_open(txn, "i", spec->name, c->idx[i].spec->name,
                                    &c->idx[i].dbi)) != MDB_SUCCESS)
                goto out;
        goto out;
    }
    /* Indexes no longer wanted: emptied (never deleted, so a handle another
     * instance of this process holds stays valid). */
    if (stored.mv_size > 0) {
        size_t n = stored.mv_size;
        uint8_t *copy = malloc(n);
        if (copy == NULL) {
            *mdb = ENOMEM;
            goto out;
        }
        memcpy(copy, stored.mv_data, n);
        lm_spec_walk w = {copy, copy + n};
        const uint8_t *b;
        uint32_t len;
        lm_walk_next(&w, &b, &len);
        while (*mdb == MDB_SUCCESS && lm_walk_next(&w, &b, &len)) {
            uint32_t nlen = len >= 4 ? lm_le32(b) : 0;
            if (nlen > len - 4)
                continue;
            char *name = strndup((const char *)b + 4, nlen);
            int keep = 0;
            for (uint32_t i = 0; name && i < spec->n_indexes; i++) {
                lm_bytes one = {0};
                lm_index_blob(&one, &spec->indexes[i]);
                keep |= one.n == len && memcmp(one.p, b, len) == 0;
                free(one.p);
            }
            MDB_dbi dbi;
            char *ck = name != NULL && !keep ? lm_clean_key(spec->name, name) : NULL;
            if (name == NULL || (!keep && ck == NULL))
                *mdb = ENOMEM;
            else if (!keep && (*mdb = lm_dbi_open(txn, "i", spec->name, name, &dbi)) == 0 &&
                     (*mdb = mdb_drop(txn, dbi, 0)) == 0)
                *mdb = lm_clean_set(txn, inst->shared->meta, ck, 0);
            free(ck);
            free(name);
        }
        free(copy);
        if (*mdb != MDB_SUCCESS)
            goto out;
    }
    for (uint32_t i = 0; i < c->n_idx; i++) {
        lm_index *ix = &c->idx[i];
        lm_bytes one = {0};
        lm_index_blob(&one, ix->spec);
        int kept = !one.oom && stored.mv_size > 0 && lm_stored_has(&stored, one.p, one.n);
        free(one.p);
        if ((*mdb = lm_dbi_open(txn, "i", spec->name, ix->spec->name, &ix->dbi)) != 0)
            goto out;
        if (kept)
            continue;
        if ((*mdb = mdb_drop(txn, ix->dbi, 0)) != MDB_SUCCESS)
            goto out;
        rc = lm_index_build(inst, txn, c, ix, mdb, err);
        if (rc != PERSISTOR_OK || *mdb != MDB_SUCCESS)
            goto out;
    }
    /* The TTL sub-db follows the field (not the seconds). */
    lm_spec_walk w = {stored.mv_data, (const uint8_t *)stored.mv_data + stored.mv_size};
    const uint8_t *old_ttl = NULL;
    uint32_t old_ttl_len = 0;
    if (stored.mv_size == 0 || !lm_walk_next(&w, &old_ttl, &old_ttl_len))
        old_ttl_len = 0;
    const char *ttl = c->has_ttl ? spec->ttl_field : "";
    if (stored.mv_size == 0 || old_ttl_len != strlen(ttl) ||
        (old_ttl_len > 0 && memcmp(old_ttl, ttl, old_ttl_len) != 0)) {
        if ((*mdb = mdb_drop(txn, c->ttl, 0)) != MDB_SUCCESS)
            goto out;
        if (c->has_ttl && (*mdb = lm_ttl_build(inst, txn, c)) != MDB_SUCCESS)
            goto out;
    }
    MDB_val v = {blob->n, blob->p};
    *mdb = mdb_put(txn, inst->shared->meta, &key, &v, 0);
out:
    free(spec_key);
    return rc;
}

int32_t lm_ensure_collection(persistor_instance *inst,
                                    const persistor_collection_spec *spec, persistor_error *err)
{
    const persistor_host *host = inst->host;
    if (spec->name == NULL || strlen(spec->name) > 400 || spec->name[0] == '\0')
        return host->error_set(err, PERSISTOR_E_CONFIG,
                               "%s: collection name must be 1 to 400 bytes", inst->path);
    lm_coll *c = calloc(1, sizeof *c);
    lm_bytes blob = {0};
    int32_t rc = PERSISTOR_OK;
    if (c == NULL || (c->idx = calloc(spec->n_indexes + 1, sizeof *c->idx)) == NULL ||
        (c->stat_key = malloc(strlen(spec->name) + 6)) == NULL) {
        lm_coll_free(inst, c);
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", spec->name);
    }
    sprintf(c->stat_key, "stat:%s", spec->name);
    c->spec = spec;
    c->n_idx = spec->n_indexes;
    c->has_ttl = spec->ttl_seconds > 0 && spec->ttl_field != NULL;
    /* Nothing on disk depends on the version sorter. */
    if ((rc = sorters_version(host, spec, &c->version, err)) != PERSISTOR_OK) {
        lm_coll_free(inst, c);
        return rc;
    }
    for (uint32_t i = 0; i < spec->n_indexes; i++) {
        lm_index *ix = &c->idx[i];
        ix->spec = &spec->indexes[i];
        ix->unique = (ix->spec->flags & PERSISTOR_INDEX_UNIQUE) != 0;
        ix->plain = ix->spec->n_keys > 0;
        for (uint32_t k = 0; k < ix->spec->n_keys; k++)
            if (ix->spec->keys[k].field == NULL || strchr(ix->spec->keys[k].field, '.') ||
                strcmp(ix->spec->keys[k].field, "_id") == 0)
                ix->plain = 0;
        if (ix->spec->name == NULL || strlen(ix->spec->name) > 60) {
            lm_coll_free(inst, c);
            return host->error_set(err, PERSISTOR_E_CONFIG,
                                   "%s: index names must be 1 to 60 bytes", spec->name);
        }
        ix->clean = -1;
        if (ix->plain) {
            if ((ix->clean_key = lm_clean_key(spec->name, ix->spec->name)) == NULL) {
                lm_coll_free(inst, c);
                return host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", spec->name);
            }
            ix->clean_key_len = strlen(ix->clean_key);
        }
    }
    c->firsts_cover = 1;
    for (uint32_t i = 0; i < c->n_idx; i++)
        for (uint32_t k = 0; c->idx[i].plain && k < c->idx[i].spec->n_keys; k++) {
            int leads = 0;
            for (uint32_t j = 0; j < c->n_idx; j++)
                leads |= c->idx[j].plain &&
                         strcmp(c->idx[j].spec->keys[0].field, c->idx[i].spec->keys[k].field) == 0;
            c->firsts_cover &= leads;
        }
    lm_spec_blob(&blob, spec);
    if (blob.oom) {
        free(blob.p);
        lm_coll_free(inst, c);
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", spec->name);
    }
    for (;;) {
        lm_txn t;
        int mdb = MDB_SUCCESS;
        if ((rc = lm_begin(inst, 1, &t, err)) != PERSISTOR_OK)
            break;
        rc = lm_ensure_txn(inst, t.txn, c, &blob, &mdb, err);
        if (rc != PERSISTOR_OK || mdb != MDB_SUCCESS) {
            lm_end(inst, &t);
        } else {
            mdb = lm_commit(inst, &t);
        }
        if (rc != PERSISTOR_OK)
            break;
        if (mdb == MDB_MAP_FULL) {
            if ((rc = lm_grow(inst, err)) != PERSISTOR_OK)
                break;
            continue;
        }
        if (mdb != MDB_SUCCESS)
            rc = lm_error(inst, mdb, spec->name, err);
        break;
    }
    free(blob.p);
    if (rc != PERSISTOR_OK) {
        lm_coll_free(inst, c);
        return rc;
    }
    /* Replace any earlier spec of this name (the old one stays the host's). */
    for (lm_coll **p = &inst->colls; *p != NULL; p = &(*p)->next) {
        if (strcmp((*p)->spec->name, spec->name) == 0) {
            lm_coll *old = *p;
            *p = old->next;
            lm_coll_free(inst, old);
            break;
        }
    }
    c->next = inst->colls;
    inst->colls = c;
    return PERSISTOR_OK;
}

