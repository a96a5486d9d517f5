/*
 * lmdb_index.c — keys, and the writes that keep a collection's documents,
 * index sub-dbs, TTL sub-db and counters in step inside one transaction.
 *
 * Every op makes each check and computes each key it needs before its
 * first change, so a refused op (EXISTS, NOT_FOUND) or a failed one
 * (E_INVALID, E_NOMEM) leaves the transaction as it found it.  It never
 * begins or commits a transaction: lmdb.c does, and retries the whole batch
 * after growing the map.
 */
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "lmdb_private.h"

#define LM_SIGN 0x8000000000000000ull

/* ---- bytes ------------------------------------------------------------- */

/* FNV-1a over both parts, then murmur's finalizer for the high bits. */
uint64_t lm_hash(const void *a, size_t an, const void *b, size_t bn)
{
    uint64_t h = 14695981039346656037u;
    for (size_t i = 0; i < an; i++)
        h = (h ^ ((const uint8_t *)a)[i]) * 1099511628211u;
    for (size_t i = 0; i < bn; i++)
        h = (h ^ ((const uint8_t *)b)[i]) * 1099511628211u;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ull;
    return h ^ (h >> 33);
}

static void lm_put_be64(uint8_t *p, uint64_t v)
{
    for (int i = 7; i >= 0; i--, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t lm_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

uint32_t lm_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static void lm_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

int32_t lm_doc_ok(const uint8_t *doc, uint32_t len)
{
    return doc != NULL && len >= 5 &&
           ((uint32_t)doc[0] | (uint32_t)doc[1] << 8 | (uint32_t)doc[2] << 16 |
            (uint32_t)doc[3] << 24) == len &&
           doc[len - 1] == 0;
}

/* The document's "_id" string (inside doc), or NULL. */
const char *lm_doc_id(const uint8_t *doc, uint32_t len)
{
    bson_t b;
    bson_iter_t it;
    if (!bson_init_static(&b, doc, len) || !bson_iter_init_find(&it, &b, "_id") ||
        !BSON_ITER_HOLDS_UTF8(&it))
        return NULL;
    return bson_iter_utf8(&it, NULL);
}

/* ---- arrays in index fields ------------------------------------------- */

static int lm_is_field_of(const lm_index *ix, const char *key)
{
    for (uint32_t k = 0; k < ix->spec->n_keys; k++)
        if (strcmp(ix->spec->keys[k].field, key) == 0)
            return 1;
    return 0;
}

static uint32_t lm_le32_at(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* The top-level array elements of a document, in order: a walk of the
 * element frames only (libbson's iterator costs ~100 instructions an
 * element, this ~15; the write path walks every document).  *key is the
 * next array's name; 1 found, 0 at the end, -1 when the frame cannot be
 * read (an unknown type, a length out of bounds): the caller then assumes
 * arrays.  *at carries the position (start at 4). */
static int lm_next_array(const uint8_t *doc, uint32_t len, uint32_t *at, const char **key)
{
    uint32_t end = len - 1, o = *at; /* the final 0 */
    while (o < end) {
        uint8_t type = doc[o++];
        const uint8_t *nul = memchr(doc + o, 0, end - o);
        if (nul == NULL)
            return -1;
        const char *name = (const char *)doc + o;
        o = (uint32_t)(nul - doc) + 1;
        uint32_t size, left = end - o;
        switch (type) {
        case 0x01: case 0x09: case 0x11: case 0x12: size = 8; break; /* double date ts int64 */
        case 0x10: size = 4; break;
        case 0x08: size = 1; break;
        case 0x07: size = 12; break;
        case 0x13: size = 16; break;
        case 0x06: case 0x0A: case 0x7F: case 0xFF: size = 0; break;
        case 0x02: case 0x0D: case 0x0E: /* string, code, symbol */
            if (left < 4)
                return -1;
            size = 4 + lm_le32_at(doc + o);
            if (size < 5)
                return -1;
            break;
        case 0x03: case 0x04: case 0x0F: /* document, array, code with scope */
            if (left < 4)
                return -1;
            size = lm_le32_at(doc + o);
            if (size < 5)
                return -1;
            break;
        case 0x05:
            if (left < 4)
                return -1;
            size = 5 + lm_le32_at(doc + o);
            if (size < 5)
                return -1;
            break;
        case 0x0C:
            if (left < 4)
                return -1;
            size = 4 + lm_le32_at(doc + o) + 12;
            if (size < 17)
                return -1;
            break;
        default:
            return -1; /* regex and anything unknown: cannot tell, arrays maybe */
        }
        if (size > left)
            return -1;
        o += size;
        if (type == 0x04) {
            *at = o;
            *key = name;
            return 1;
        }
    }
    *at = o;
    return 0;
}

/* Plain index fields are top-level names: one pass over the top level,
 * every element (a duplicate name counts too). */
int lm_doc_has_array(const lm_index *ix, const uint8_t *doc, uint32_t len)
{
    uint32_t at = 4;
    const char *key;
    int r;
    if (!lm_doc_ok(doc, len))
        return 1;
    while ((r = lm_next_array(doc, len, &at, &key)) == 1)
        if (lm_is_field_of(ix, key))
            return 1;
    return r < 0;
}

/* The clean flags of a write batch: read (from the reader's cache when it
 * holds the snapshot this transaction started from) on the first put. */
static int lm_batch_flags(persistor_instance *inst, MDB_txn *txn, lm_coll *c, int8_t *clean,
                          int *any)
{
    size_t base = mdb_txn_id(txn) - 1;
    *any = 0;
    for (uint32_t i = 0; i < c->n_idx; i++) {
        lm_index *ix = &c->idx[i];
        clean[i] = 0;
        if (ix->clean_key == NULL)
            continue;
        if (ix->clean >= 0 && ix->clean_txnid == base) {
            clean[i] = (int8_t)ix->clean;
        } else {
            MDB_val k = {ix->clean_key_len, ix->clean_key}, v;
            int rc = mdb_get(txn, inst->shared->meta, &k, &v);
            if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
                return rc;
            clean[i] = rc == MDB_SUCCESS;
        }
        *any |= clean[i];
    }
    return MDB_SUCCESS;
}

/* Mark in hit[] every clean index with a field named `field`. */
static void lm_hit_field(const lm_coll *c, const int8_t *clean, const char *field, uint8_t *hit)
{
    for (uint32_t j = 0; j < c->n_idx; j++)
        if (clean[j] && lm_is_field_of(&c->idx[j], field))
            hit[j] = 1;
}

/* Which clean indexes get an array from `doc` (hit[], zeroed here)?  When
 * every indexed field leads some plain index (c->firsts_cover), the keys
 * just computed say it: a field's first key byte is its type's rank, so
 * an array leads with rank_array (complemented when descending), the
 * byte queries seek to.  Otherwise the document's top level is walked. */
static void lm_arrays_of(const persistor_instance *inst, const lm_coll *c, const int8_t *clean,
                         const uint8_t *doc, uint32_t len, const lm_key *keys, uint8_t *hit)
{
    memset(hit, 0, c->n_idx);
    if (c->firsts_cover) {
        for (uint32_t i = 0; i < c->n_idx; i++) {
            const lm_index *ix = &c->idx[i];
            if (ix->clean_key == NULL)
                continue;
            uint8_t ab = ix->spec->keys[0].direction < 0 ? (uint8_t)~inst->rank_array
                                                         : inst->rank_array;
            if (keys[i].len == 0 || keys[i].b[0] == ab)
                lm_hit_field(c, clean, ix->spec->keys[0].field, hit);
        }
        return;
    }
    uint32_t at = 4;
    const char *key;
    int r = lm_doc_ok(doc, len) ? 0 : -1;
    while (r == 0 && (r = lm_next_array(doc, len, &at, &key)) == 1) {
        lm_hit_field(c, clean, key, hit);
        r = 0;
    }
    if (r < 0) /* cannot tell: arrays maybe, everywhere */
        memcpy(hit, clean, c->n_idx);
}

/* The document is stored: its arrays end the cleanness of their indexes,
 * in this transaction. */
static int lm_unclean(persistor_instance *inst, MDB_txn *txn, lm_coll *c, int8_t *clean,
                      int *any, const uint8_t *hit)
{
    *any = 0;
    for (uint32_t i = 0; i < c->n_idx; i++) {
        if (clean[i] && hit[i]) {
            MDB_val k = {c->idx[i].clean_key_len, c->idx[i].clean_key};
            int rc = mdb_del(txn, inst->shared->meta, &k, NULL);
            if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
                return rc;
            clean[i] = 0;
        }
        *any |= clean[i];
    }
    return MDB_SUCCESS;
}

/* Short: the key itself.  Long (or empty): the first LM_PREFIX bytes, zero
 * padded, and the hash of the whole; the caller adds a sequence. */
static size_t lm_group_of(const uint8_t *key, size_t n, uint8_t *out)
{
    if (n > 0 && n < LM_TRUNC_LEN) {
        memcpy(out, key, n);
        return n;
    }
    size_t keep = n < LM_PREFIX ? n : LM_PREFIX;
    memcpy(out, key, keep);
    memset(out + keep, 0, LM_PREFIX - keep);
    lm_put_be64(out + LM_PREFIX, lm_hash(key, n, NULL, 0));
    return LM_GROUP_LEN;
}

size_t lm_main_key(const char *id, size_t id_len, uint8_t *out)
{
    return lm_group_of((const uint8_t *)id, id_len, out);
}

int lm_ttl_key(int64_t ms, const uint8_t *mk, size_t mk_len, uint8_t *out)
{
    lm_put_be64(out, (uint64_t)ms ^ LM_SIGN);
    memcpy(out + 8, mk, mk_len);
    return (int)(8 + mk_len);
}

static int lm_in_group(const MDB_val *k, const uint8_t *group)
{
    return k->mv_size == LM_TRUNC_LEN && memcmp(k->mv_data, group, LM_GROUP_LEN) == 0;
}

/* ---- hash groups ------------------------------------------------------- */

int lm_main_find(MDB_txn *txn, MDB_dbi dbi, const char *id, uint8_t *mk, size_t *mk_len,
                 MDB_val *doc)
{
    size_t n = strlen(id);
    *mk_len = lm_main_key(id, n, mk);
    if (*mk_len != LM_GROUP_LEN) {
        MDB_val k = {*mk_len, mk};
        return mdb_get(txn, dbi, &k, doc);
    }
    /* A hash group: the document's own _id tells its entry apart. */
    MDB_cursor *cur;
    MDB_val k = {LM_GROUP_LEN, mk}, v;
    uint32_t next_seq = 0;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != MDB_SUCCESS)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == MDB_SUCCESS && lm_in_group(&k, mk);
         rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        const char *other = lm_doc_id(v.mv_data, (uint32_t)v.mv_size);
        next_seq = lm_be32((const uint8_t *)k.mv_data + LM_GROUP_LEN) + 1;
        if (other != NULL && strcmp(other, id) == 0) {
            memcpy(mk, k.mv_data, LM_TRUNC_LEN);
            *mk_len = LM_TRUNC_LEN;
            *doc = v;
            mdb_cursor_close(cur);
            return MDB_SUCCESS;
        }
    }
    mdb_cursor_close(cur);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return rc;
    lm_put_be32(mk + LM_GROUP_LEN, next_seq);
    *mk_len = LM_TRUNC_LEN;
    return MDB_NOTFOUND;
}

/* Add an entry to a hash group with the next free sequence number. */
static int lm_group_put(MDB_txn *txn, MDB_dbi dbi, const uint8_t *group, MDB_val *val)
{
    MDB_cursor *cur;
    uint8_t key[LM_TRUNC_LEN];
    MDB_val k = {LM_GROUP_LEN, (void *)group}, v;
    uint32_t next_seq = 0;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != MDB_SUCCESS)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == MDB_SUCCESS && lm_in_group(&k, group); rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
        next_seq = lm_be32((const uint8_t *)k.mv_data + LM_GROUP_LEN) + 1;
    mdb_cursor_close(cur);
    if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return rc;
    memcpy(key, group, LM_GROUP_LEN);
    lm_put_be32(key + LM_GROUP_LEN, next_seq);
    k = (MDB_val){LM_TRUNC_LEN, key};
    return mdb_put(txn, dbi, &k, val, 0);
}

/* Remove the entry of a hash group whose value is `val`. */
static int lm_group_del(MDB_txn *txn, MDB_dbi dbi, const uint8_t *group, const MDB_val *val)
{
    MDB_cursor *cur;
    MDB_val k = {LM_GROUP_LEN, (void *)group}, v;
    int rc = mdb_cursor_open(txn, dbi, &cur);
    if (rc != MDB_SUCCESS)
        return rc;
    for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         rc == MDB_SUCCESS && lm_in_group(&k, group); rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (v.mv_size == val->mv_size && memcmp(v.mv_data, val->mv_data, v.mv_size) == 0) {
            rc = mdb_cursor_del(cur, 0);
            mdb_cursor_close(cur);
            return rc;
        }
    }
    mdb_cursor_close(cur);
    return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc; /* already gone: nothing to undo */
}

/* ---- index entries ----------------------------------------------------- */

int32_t lm_index_entry(persistor_instance *inst, const lm_index *ix, const uint8_t *doc,
                       uint32_t len, const char *id, lm_key *out)
{
    const persistor_host *host = inst->host;
    int32_t rc = host->index_key(ix->spec, doc, len, &inst->key);
    /* Non-unique: the id ends the key, so entries are distinct and equal
     * values come in _id order (index keys are prefix-free). */
    if (rc == PERSISTOR_OK && !ix->unique && id != NULL)
        rc = host->buffer_append(&inst->key, id, (uint32_t)strlen(id));
    if (rc != PERSISTOR_OK)
        return rc;
    out->len = lm_group_of(inst->key.data, inst->key.len, out->b);
    out->grouped = out->len == LM_GROUP_LEN;
    return PERSISTOR_OK;
}

int lm_index_put(MDB_txn *txn, const lm_index *ix, const lm_key *e, const uint8_t *mk,
                 size_t mk_len)
{
    MDB_val v = {mk_len, (void *)mk};
    if (e->grouped)
        return lm_group_put(txn, ix->dbi, e->b, &v);
    MDB_val k = {e->len, (void *)e->b};
    return mdb_put(txn, ix->dbi, &k, &v, 0);
}

static int lm_index_del(MDB_txn *txn, const lm_index *ix, const lm_key *e, const uint8_t *mk,
                        size_t mk_len)
{
    MDB_val v = {mk_len, (void *)mk};
    if (e->grouped)
        return lm_group_del(txn, ix->dbi, e->b, &v);
    MDB_val k = {e->len, (void *)e->b};
    int rc = mdb_del(txn, ix->dbi, &k, NULL);
    return rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
}

/* Does a document other than `self` hold doc's key in the unique `ix`?
 * EXISTS with *holder_doc set, OK, or index_key's error; *mdb gets an
 * LMDB error.  In a hash group the holders' full keys are recomputed. */
int32_t lm_unique_holder(persistor_instance *inst, MDB_txn *txn, lm_coll *c,
                         const lm_index *ix, const uint8_t *doc, uint32_t len,
                         const uint8_t *self, size_t self_len, MDB_val *holder_doc, int *mdb)
{
    lm_key e;
    MDB_val k, v;
    int32_t rc = lm_index_entry(inst, ix, doc, len, NULL, &e);
    *mdb = MDB_SUCCESS;
    if (rc != PERSISTOR_OK)
        return rc;
    if (!e.grouped) {
        k = (MDB_val){e.len, e.b};
        *mdb = mdb_get(txn, ix->dbi, &k, &v);
        if (*mdb != MDB_SUCCESS) {
            *mdb = *mdb == MDB_NOTFOUND ? MDB_SUCCESS : *mdb;
            return PERSISTOR_OK;
        }
        if (self != NULL && v.mv_size == self_len && memcmp(v.mv_data, self, self_len) == 0)
            return PERSISTOR_OK;
        *mdb = mdb_get(txn, c->main, &v, holder_doc);
        *mdb = *mdb == MDB_NOTFOUND ? MDB_SUCCESS : *mdb; /* a dangling entry holds nothing */
        return *mdb == MDB_SUCCESS && holder_doc->mv_data ? PERSISTOR_EXISTS : PERSISTOR_OK;
    }
    MDB_cursor *cur;
    if ((*mdb = mdb_cursor_open(txn, ix->dbi, &cur)) != MDB_SUCCESS)
        return PERSISTOR_OK;
    k = (MDB_val){LM_GROUP_LEN, e.b};
    for (*mdb = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
         *mdb == MDB_SUCCESS && lm_in_group(&k, e.b);
         *mdb = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        MDB_val hd;
        if (self != NULL && v.mv_size == self_len && memcmp(v.mv_data, self, self_len) == 0)
            continue;
        if (mdb_get(txn, c->main, &v, &hd) != MDB_SUCCESS)
            continue;
        rc = inst->host->index_key(ix->spec, hd.mv_data, (uint32_t)hd.mv_size, &inst->key2);
        if (rc != PERSISTOR_OK)
            break;
        if (inst->key2.len == inst->key.len &&
            memcmp(inst->key2.data, inst->key.data, inst->key.len) == 0) {
            *holder_doc = hd;
            rc = PERSISTOR_EXISTS;
            break;
        }
    }
    mdb_cursor_close(cur);
    if (*mdb == MDB_NOTFOUND || rc == PERSISTOR_EXISTS)
        *mdb = MDB_SUCCESS;
    return rc;
}

/* ---- one document's entries ------------------------------------------- */

/* Every index entry of `doc` into keys[0..n_idx), and its TTL time. */
static int32_t lm_entries(persistor_instance *inst, const lm_coll *c, const uint8_t *doc,
                          uint32_t len, const char *id, lm_key *keys, int *has_ttl,
                          int64_t *ttl_ms)
{
    for (uint32_t i = 0; i < c->n_idx; i++) {
        int32_t rc = lm_index_entry(inst, &c->idx[i], doc, len, id, &keys[i]);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    *has_ttl = c->has_ttl &&
               inst->host->doc_time_ms(doc, len, c->spec->ttl_field, ttl_ms) == PERSISTOR_OK;
    return PERSISTOR_OK;
}

static int lm_same_key(const lm_key *a, const lm_key *b)
{
    return a->len == b->len && a->grouped == b->grouped && memcmp(a->b, b->b, a->len) == 0;
}

/* Remove a stored document: its entries, its TTL entry, the document.
 * `doc` must not point into the map (it is a copy). */
static int32_t lm_remove(persistor_instance *inst, MDB_txn *txn, lm_coll *c, const uint8_t *mk,
                         size_t mk_len, const uint8_t *doc, uint32_t len, lm_key *keys,
                         int skip_ttl, int *mdb)
{
    int has_ttl;
    int64_t ms;
    const char *id = lm_doc_id(doc, len);
    int32_t rc = lm_entries(inst, c, doc, len, id, keys, &has_ttl, &ms);
    if (rc != PERSISTOR_OK)
        return rc;
    for (uint32_t i = 0; i < c->n_idx && *mdb == MDB_SUCCESS; i++)
        *mdb = lm_index_del(txn, &c->idx[i], &keys[i], mk, mk_len);
    if (*mdb == MDB_SUCCESS && has_ttl && !skip_ttl) {
        uint8_t tk[8 + LM_TRUNC_LEN];
        MDB_val k = {(size_t)lm_ttl_key(ms, mk, mk_len, tk), tk};
        *mdb = mdb_del(txn, c->ttl, &k, NULL);
        *mdb = *mdb == MDB_NOTFOUND ? MDB_SUCCESS : *mdb;
    }
    MDB_val k = {mk_len, (void *)mk};
    if (*mdb == MDB_SUCCESS)
        *mdb = mdb_del(txn, c->main, &k, NULL);
    return PERSISTOR_OK;
}

/* Copy a stored document out of the map: our own writes may move it. */
static int lm_copy_old(persistor_instance *inst, const MDB_val *v)
{
    if (lm_reserve(inst, v->mv_size) != 0)
        return ENOMEM;
    memcpy(inst->scratch, v->mv_data, v->mv_size);
    return MDB_SUCCESS;
}

typedef struct lm_batch {
    lm_key *knew, *kold;
    int64_t items, bytes;
    int8_t *clean; /* per index: still clean in this transaction */
    uint8_t *hit;  /* per index: the document being stored has arrays there */
    int flags_read, any_clean;
} lm_batch;

static int32_t lm_put(persistor_instance *inst, MDB_txn *txn, lm_coll *c,
                      const persistor_write_op *op, lm_batch *b, int *mdb, persistor_error *err)
{
    const persistor_host *host = inst->host;
    uint8_t mk[LM_TRUNC_LEN];
    size_t mk_len, id_len = strlen(op->id);
    int has_ttl, old_ttl = 0;
    int64_t ms = 0, old_ms = 0;
    MDB_val old = {0, NULL};
    if (!lm_doc_ok(op->doc, op->doc_len))
        return host->error_set(err, PERSISTOR_E_INVALID, "%s/%s: the document is not BSON",
                               c->spec->name, op->id);
    int32_t rc = lm_entries(inst, c, op->doc, op->doc_len, op->id, b->knew, &has_ttl, &ms);
    if (rc != PERSISTOR_OK)
        return host->error_set(err, rc, "%s/%s: cannot compute its index keys", c->spec->name,
                               op->id);
    if (!b->flags_read) {
        if ((*mdb = lm_batch_flags(inst, txn, c, b->clean, &b->any_clean)) != MDB_SUCCESS)
            return PERSISTOR_OK;
        b->flags_read = 1;
    }
    if (b->any_clean) /* before the unchanged keys are cleared below */
        lm_arrays_of(inst, c, b->clean, op->doc, op->doc_len, b->knew, b->hit);
    int unique = 0;
    for (uint32_t i = 0; i < c->n_idx; i++)
        unique |= c->idx[i].unique;
    MDB_val k, v = {op->doc_len, (void *)op->doc};
    /* The append path: one B-tree descent for the id. */
    if (op->kind == PERSISTOR_WRITE_INSERT_IF_ABSENT && !unique && id_len > 0 &&
        id_len < LM_TRUNC_LEN) {
        k = (MDB_val){id_len, (void *)op->id};
        *mdb = mdb_put(txn, c->main, &k, &v, MDB_NOOVERWRITE);
        if (*mdb == MDB_KEYEXIST) {
            *mdb = MDB_SUCCESS;
            return PERSISTOR_EXISTS;
        }
        if (*mdb != MDB_SUCCESS)
            return PERSISTOR_OK;
        mk_len = id_len;
        memcpy(mk, op->id, id_len);
    } else {
        *mdb = lm_main_find(txn, c->main, op->id, mk, &mk_len, &old);
        if (*mdb != MDB_SUCCESS && *mdb != MDB_NOTFOUND)
            return PERSISTOR_OK;
        int found = *mdb == MDB_SUCCESS;
        *mdb = MDB_SUCCESS;
        if (found && op->kind == PERSISTOR_WRITE_INSERT_IF_ABSENT)
            return PERSISTOR_EXISTS;
        /* The stored version, read in this write transaction, sorts at or
         * after the new one: keep it (equal: a replayed write). */
        if (found && op->kind == PERSISTOR_WRITE_UPSERT_IF_NEWER &&
            host->sorter_compare(c->version, old.mv_data, (uint32_t)old.mv_size, op->doc,
                                 op->doc_len) >= 0)
            return PERSISTOR_EXISTS;
        for (uint32_t i = 0; i < c->n_idx; i++) {
            MDB_val holder = {0, NULL};
            if (!c->idx[i].unique)
                continue;
            rc = lm_unique_holder(inst, txn, c, &c->idx[i], op->doc, op->doc_len, mk, mk_len,
                                  &holder, mdb);
            if (*mdb != MDB_SUCCESS || rc == PERSISTOR_EXISTS)
                return rc;
            if (rc != PERSISTOR_OK)
                return host->error_set(err, rc, "%s/%s: cannot compute its unique keys",
                                       c->spec->name, op->id);
        }
        if (found) {
            if ((*mdb = lm_copy_old(inst, &old)) != MDB_SUCCESS)
                return PERSISTOR_OK;
            const char *old_id = lm_doc_id(inst->scratch, (uint32_t)old.mv_size);
            rc = lm_entries(inst, c, inst->scratch, (uint32_t)old.mv_size, old_id, b->kold,
                            &old_ttl, &old_ms);
            if (rc != PERSISTOR_OK)
                return host->error_set(err, rc, "%s/%s: cannot compute its stored keys",
                                       c->spec->name, op->id);
        }
        k = (MDB_val){mk_len, mk};
        if ((*mdb = mdb_put(txn, c->main, &k, &v, 0)) != MDB_SUCCESS)
            return PERSISTOR_OK;
        if (found) {
            b->bytes -= (int64_t)old.mv_size;
            b->items--;
        }
        for (uint32_t i = 0; i < c->n_idx && found; i++) {
            if (lm_same_key(&b->kold[i], &b->knew[i])) {
                b->knew[i].len = 0; /* unchanged: keep the entry */
                continue;
            }
            if ((*mdb = lm_index_del(txn, &c->idx[i], &b->kold[i], mk, mk_len)) != 0)
                return PERSISTOR_OK;
        }
        if (old_ttl && !(has_ttl && old_ms == ms)) {
            uint8_t tk[8 + LM_TRUNC_LEN];
            MDB_val t = {(size_t)lm_ttl_key(old_ms, mk, mk_len, tk), tk};
            *mdb = mdb_del(txn, c->ttl, &t, NULL);
            if (*mdb != MDB_SUCCESS && *mdb != MDB_NOTFOUND)
                return PERSISTOR_OK;
            *mdb = MDB_SUCCESS;
        }
    }
    for (uint32_t i = 0; i < c->n_idx; i++)
        if (b->knew[i].len > 0 &&
            (*mdb = lm_index_put(txn, &c->idx[i], &b->knew[i], mk, mk_len)) != MDB_SUCCESS)
            return PERSISTOR_OK;
    if (has_ttl) {
        uint8_t tk[8 + LM_TRUNC_LEN], none = 0;
        MDB_val t = {(size_t)lm_ttl_key(ms, mk, mk_len, tk), tk}, empty = {0, &none};
        if ((*mdb = mdb_put(txn, c->ttl, &t, &empty, 0)) != MDB_SUCCESS)
            return PERSISTOR_OK;
    }
    if (b->any_clean &&
        (*mdb = lm_unclean(inst, txn, c, b->clean, &b->any_clean, b->hit)) != MDB_SUCCESS)
        return PERSISTOR_OK;
    b->items++;
    b->bytes += op->doc_len;
    return PERSISTOR_OK;
}

static int32_t lm_delete(persistor_instance *inst, MDB_txn *txn, lm_coll *c,
                         const persistor_write_op *op, lm_batch *b, int *mdb,
                         persistor_error *err)
{
    uint8_t mk[LM_TRUNC_LEN];
    size_t mk_len;
    MDB_val old;
    *mdb = lm_main_find(txn, c->main, op->id, mk, &mk_len, &old);
    if (*mdb == MDB_NOTFOUND) {
        *mdb = MDB_SUCCESS;
        return PERSISTOR_NOT_FOUND;
    }
    if (*mdb != MDB_SUCCESS || (*mdb = lm_copy_old(inst, &old)) != MDB_SUCCESS)
        return PERSISTOR_OK;
    int32_t rc = lm_remove(inst, txn, c, mk, mk_len, inst->scratch, (uint32_t)old.mv_size,
                           b->kold, 0, mdb);
    if (rc != PERSISTOR_OK)
        return inst->host->error_set(err, rc, "%s/%s: cannot compute its stored keys",
                                     c->spec->name, op->id);
    b->items--;
    b->bytes -= (int64_t)old.mv_size;
    return PERSISTOR_OK;
}

int32_t lm_write_ops(persistor_instance *inst, MDB_txn *txn, lm_coll *c,
                     const persistor_write_op *ops, uint32_t n, int32_t *results,
                     uint32_t *done, int *mdb, persistor_error *err)
{
    lm_batch b = {0};
    int32_t rc = PERSISTOR_OK;
    uint32_t i = 0;
    *mdb = MDB_SUCCESS;
    b.knew = malloc(2 * (c->n_idx + 1) * sizeof *b.knew + 2 * (c->n_idx + 1));
    if (b.knew == NULL) {
        *mdb = ENOMEM;
        return PERSISTOR_OK;
    }
    b.kold = b.knew + c->n_idx + 1;
    b.clean = (int8_t *)(b.kold + c->n_idx + 1);
    b.hit = (uint8_t *)b.clean + c->n_idx + 1;
    for (; i < n; i++) {
        const persistor_write_op *op = &ops[i];
        if (op->id == NULL) {
            rc = inst->host->error_set(err, PERSISTOR_E_INVALID, "%s: a write without an id",
                                       c->spec->name);
        } else if (op->kind == PERSISTOR_WRITE_DELETE) {
            rc = lm_delete(inst, txn, c, op, &b, mdb, err);
        } else if (op->kind == PERSISTOR_WRITE_UPSERT ||
                   op->kind == PERSISTOR_WRITE_INSERT_IF_ABSENT) {
            rc = lm_put(inst, txn, c, op, &b, mdb, err);
        } else if (op->kind == PERSISTOR_WRITE_UPSERT_IF_NEWER) {
            rc = c->version != NULL
                     ? lm_put(inst, txn, c, op, &b, mdb, err)
                     : inst->host->error_set(err, PERSISTOR_E_INVALID,
                                             "%s/%s: upsert-if-newer on a collection whose spec "
                                             "names no version_field; name one, or write with "
                                             "UPSERT", c->spec->name, op->id);
        } else {
            rc = inst->host->error_set(err, PERSISTOR_E_INVALID, "%s/%s: unknown write kind %u",
                                       c->spec->name, op->id, op->kind);
        }
        if (*mdb != MDB_SUCCESS || rc < 0)
            break;
        results[i] = rc;
    }
    /* What the flags are once this transaction commits (lm_write
     * publishes them to the readers' cache then). */
    for (uint32_t j = 0; j < c->n_idx; j++)
        c->idx[j].pend_clean = b.flags_read ? b.clean[j] : -1;
    free(b.knew);
    *done = i;
    if (*mdb == MDB_SUCCESS && (b.items != 0 || b.bytes != 0))
        *mdb = lm_counts_add(txn, inst->shared->meta, c->stat_key, b.items, b.bytes);
    return rc < 0 ? rc : PERSISTOR_OK;
}

/* Ordered range delete: the TTL sub-db starts with the oldest time. */
int32_t lm_expire_txn(persistor_instance *inst, MDB_txn *txn, lm_coll *c, int64_t cutoff,
                      uint64_t *removed, int *mdb, persistor_error *err)
{
    MDB_cursor *cur;
    MDB_val k, v;
    int64_t bytes = 0;
    uint8_t mk[LM_TRUNC_LEN];
    int32_t rc = PERSISTOR_OK;
    lm_key *keys = malloc((c->n_idx + 1) * sizeof *keys);
    *removed = 0;
    if (keys == NULL) {
        *mdb = ENOMEM;
        return PERSISTOR_OK;
    }
    if ((*mdb = mdb_cursor_open(txn, c->ttl, &cur)) != MDB_SUCCESS) {
        free(keys);
        return PERSISTOR_OK;
    }
    while ((*mdb = mdb_cursor_get(cur, &k, &v, MDB_FIRST)) == MDB_SUCCESS) {
        if (k.mv_size < 9 || k.mv_size > 8 + LM_TRUNC_LEN) {
            *mdb = MDB_CORRUPTED;
            break;
        }
        int64_t ms = (int64_t)(lm_be64(k.mv_data) ^ LM_SIGN);
        if (ms >= cutoff)
            break;
        size_t mk_len = k.mv_size - 8;
        memcpy(mk, (const uint8_t *)k.mv_data + 8, mk_len);
        if ((*mdb = mdb_cursor_del(cur, 0)) != MDB_SUCCESS)
            break;
        MDB_val mkv = {mk_len, mk};
        *mdb = mdb_get(txn, c->main, &mkv, &v);
        if (*mdb == MDB_NOTFOUND) {
            *mdb = MDB_SUCCESS; /* a dangling TTL entry: gone now */
            continue;
        }
        if (*mdb != MDB_SUCCESS || (*mdb = lm_copy_old(inst, &v)) != MDB_SUCCESS)
            break;
        rc = lm_remove(inst, txn, c, mk, mk_len, inst->scratch, (uint32_t)v.mv_size, keys, 1,
                       mdb);
        if (rc != PERSISTOR_OK) {
            rc = inst->host->error_set(err, rc, "%s: cannot compute the keys of an expired "
                                       "document", c->spec->name);
            break;
        }
        if (*mdb != MDB_SUCCESS)
            break;
        bytes += (int64_t)v.mv_size;
        (*removed)++;
    }
    mdb_cursor_close(cur);
    free(keys);
    if (*mdb == MDB_NOTFOUND)
        *mdb = MDB_SUCCESS;
    if (rc == PERSISTOR_OK && *mdb == MDB_SUCCESS && *removed > 0)
        *mdb = lm_counts_add(txn, inst->shared->meta, c->stat_key, -(int64_t)*removed, -bytes);
    return rc;
}
