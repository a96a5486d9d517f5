/*
 * lmdb_query.c — queries with push-down, and count (get and exists, and
 * the compiled matchers and sorters kept, are lmdb_read.c's).
 *
 * The host's matcher is the judge: every candidate an index range yields
 * is re-checked with host->matcher_match, so a plan only has to find a
 * superset of the answer.  Index keys index an array as one value (rank
 * "array") while the matcher also matches its elements, so each range on a
 * field is paired with that field's array range.
 *
 * A query runs in one read transaction and copies its answer into the
 * cursor before returning (the host may write between cursor_next calls;
 * the cursor is a snapshot and never holds a transaction).  When the sort
 * is the index order (e.g. {xcId: X} sorted {ts: 1, _id: 1} on xcId_1_ts_1:
 * non-unique entries end with the id, and an id's bytes order as the
 * sorter orders _id strings), entries stream in index order and a limit
 * stops the scan early; otherwise candidates are sorted with the host's
 * sorter, stably, then skip and limit apply.
 */
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "lmdb_private.h"

#define LM_MAX_PREDS 32

struct persistor_cursor {
    size_t size, off;
    uint8_t data[];
};

typedef struct lm_hit {
    const uint8_t *doc; /* into the map: valid until the read txn ends */
    uint32_t len;
} lm_hit;

#define LM_INLINE_HITS 32

typedef struct lm_scan {
    persistor_instance *inst;
    MDB_txn *txn;
    lm_coll *c;
    persistor_matcher *m; /* compiled on first use when the shape is known good */
    const uint8_t *filter;
    uint32_t filter_len;
    persistor_error *err;
    lm_hit *hits; /* `inline_hits` until it outgrows them */
    size_t n, cap;
    size_t max; /* stop after this many hits (0: all) */
    int mdb;    /* an LMDB error */
    int32_t rc; /* a host error (index_key) */
    int rc_set; /* rc's message is in err already (matcher_new) */
    int exact;  /* the range is the answer: no matcher needed */
    lm_hit inline_hits[LM_INLINE_HITS];
} lm_scan;

static void lm_scan_init(lm_scan *s, persistor_instance *inst, MDB_txn *txn, lm_coll *c,
                         persistor_matcher *m, const uint8_t *filter, uint32_t filter_len,
                         persistor_error *err)
{
    s->inst = inst;
    s->txn = txn;
    s->c = c;
    s->m = m;
    s->filter = filter;
    s->filter_len = filter_len;
    s->err = err;
    s->hits = s->inline_hits;
    s->n = s->max = 0;
    s->cap = LM_INLINE_HITS;
    s->mdb = MDB_SUCCESS;
    s->rc = PERSISTOR_OK;
    s->rc_set = s->exact = 0;
}

static void lm_scan_free(lm_scan *s)
{
    if (s->hits != s->inline_hits)
        free(s->hits);
    if (s->m != NULL)
        s->inst->host->matcher_free(s->m);
}

static int lm_hit_add(lm_scan *s, const MDB_val *doc)
{
    if (s->n == s->cap) {
        size_t cap = s->cap * 2;
        lm_hit *h = s->hits == s->inline_hits ? malloc(cap * sizeof *h)
                                              : realloc(s->hits, cap * sizeof *h);
        if (h == NULL) {
            s->mdb = ENOMEM;
            return -1;
        }
        if (s->hits == s->inline_hits)
            memcpy(h, s->inline_hits, sizeof s->inline_hits);
        s->hits = h;
        s->cap = cap;
    }
    s->hits[s->n++] = (lm_hit){doc->mv_data, (uint32_t)doc->mv_size};
    return 0;
}

static int lm_consider(lm_scan *s, const MDB_val *doc)
{
    if (!s->exact) {
        const persistor_host *host = s->inst->host;
        if (s->m == NULL) {
            int32_t rc = host->matcher_new(s->filter, s->filter_len, &s->m, s->err);
            if (rc != PERSISTOR_OK) {
                s->m = NULL;
                s->rc = rc;
                s->rc_set = 1;
                return -1;
            }
        }
        if (!host->matcher_match(s->m, doc->mv_data, (uint32_t)doc->mv_size))
            return 0;
    }
    return lm_hit_add(s, doc);
}

static int lm_full(const lm_scan *s)
{
    return s->max > 0 && s->n >= s->max;
}

/* ---- scans ------------------------------------------------------------- */

static void lm_scan_main(lm_scan *s)
{
    MDB_cursor *cur;
    MDB_val k, v;
    if ((s->mdb = mdb_cursor_open(s->txn, s->c->main, &cur)) != MDB_SUCCESS)
        return;
    for (int op = MDB_FIRST; !lm_full(s) && (s->mdb = mdb_cursor_get(cur, &k, &v, op)) == 0;
         op = MDB_NEXT)
        if (lm_consider(s, &v) != 0)
            break;
    if (s->mdb == MDB_NOTFOUND)
        s->mdb = MDB_SUCCESS;
    mdb_cursor_close(cur);
}

/* Entries that share their first LM_PREFIX bytes, with full keys
 * recomputed from the documents, so their order is exact. */
typedef struct lm_run_item {
    uint8_t *key;
    size_t key_len;
    MDB_val doc;
} lm_run_item;

static int lm_run_cmp(const void *a, const void *b)
{
    const lm_run_item *x = a, *y = b;
    size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
    int c = memcmp(x->key, y->key, n);
    return c != 0 ? c : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* In range: at most `stop`, or starting with it. */
static int lm_in_range(const MDB_val *k, const uint8_t *stop, size_t stop_len)
{
    size_t n = k->mv_size < stop_len ? k->mv_size : stop_len;
    return memcmp(k->mv_data, stop, n) <= 0;
}

/* Gather the run at the cursor (positioned on its first entry), sort it
 * by full key, consider each.  Leaves the cursor after the run. */
static void lm_scan_run(lm_scan *s, const lm_index *ix, MDB_cursor *cur, MDB_val *k, MDB_val *v,
                        const uint8_t *stop, size_t stop_len)
{
    const persistor_host *host = s->inst->host;
    uint8_t head[LM_PREFIX];
    lm_run_item *items = NULL;
    size_t n = 0, cap = 0;
    memcpy(head, k->mv_data, LM_PREFIX);
    while (s->mdb == MDB_SUCCESS && k->mv_size >= LM_PREFIX &&
           memcmp(k->mv_data, head, LM_PREFIX) == 0 && lm_in_range(k, stop, stop_len)) {
        MDB_val doc;
        int rc = mdb_get(s->txn, s->c->main, v, &doc);
        if (rc == MDB_SUCCESS) {
            const char *id = lm_doc_id(doc.mv_data, (uint32_t)doc.mv_size);
            int32_t krc = host->index_key(ix->spec, doc.mv_data, (uint32_t)doc.mv_size,
                                          &s->inst->key2);
            if (krc == PERSISTOR_OK && !ix->unique && id != NULL)
                krc = host->buffer_append(&s->inst->key2, id, (uint32_t)strlen(id));
            if (krc != PERSISTOR_OK) {
                s->rc = krc;
                break;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                lm_run_item *p = realloc(items, cap * sizeof *p);
                if (p == NULL) {
                    s->mdb = ENOMEM;
                    break;
                }
                items = p;
            }
            items[n].key = malloc(s->inst->key2.len + 1);
            if (items[n].key == NULL) {
                s->mdb = ENOMEM;
                break;
            }
            memcpy(items[n].key, s->inst->key2.data, s->inst->key2.len);
            items[n].key_len = s->inst->key2.len;
            items[n++].doc = doc;
        } else if (rc != MDB_NOTFOUND) {
            s->mdb = rc;
            break;
        }
        s->mdb = mdb_cursor_get(cur, k, v, MDB_NEXT);
    }
    if (s->mdb == MDB_SUCCESS || s->mdb == MDB_NOTFOUND) {
        int end = s->mdb;
        s->mdb = MDB_SUCCESS;
        qsort(items, n, sizeof *items, lm_run_cmp); /* full keys are distinct */
        for (size_t i = 0; i < n && s->rc == PERSISTOR_OK && !lm_full(s); i++)
            if (lm_consider(s, &items[i].doc) != 0)
                break;
        if (s->mdb == MDB_SUCCESS)
            s->mdb = end;
    }
    for (size_t i = 0; i < n; i++)
        free(items[i].key);
    free(items);
}

/* Every entry of `ix` from `start` to `stop` (prefix-inclusive), in
 * index order, their documents re-checked by the matcher. */
static void lm_scan_range(lm_scan *s, const lm_index *ix, const uint8_t *start, size_t start_len,
                          const uint8_t *stop, size_t stop_len)
{
    MDB_cursor *cur;
    MDB_val k = {start_len < LM_PREFIX ? start_len : LM_PREFIX, (void *)start}, v;
    if (stop_len > LM_PREFIX)
        stop_len = LM_PREFIX; /* long bounds cut: a superset, re-checked */
    if ((s->mdb = mdb_cursor_open(s->txn, ix->dbi, &cur)) != MDB_SUCCESS)
        return;
    s->mdb = mdb_cursor_get(cur, &k, &v, k.mv_size > 0 ? MDB_SET_RANGE : MDB_FIRST);
    while (s->mdb == MDB_SUCCESS && s->rc == PERSISTOR_OK && !lm_full(s) &&
           lm_in_range(&k, stop, stop_len)) {
        if (k.mv_size >= LM_PREFIX) {
            lm_scan_run(s, ix, cur, &k, &v, stop, stop_len);
            continue;
        }
        MDB_val doc;
        int rc = mdb_get(s->txn, s->c->main, &v, &doc);
        if (rc == MDB_SUCCESS) {
            if (lm_consider(s, &doc) != 0)
                break;
        } else if (rc != MDB_NOTFOUND) {
            s->mdb = rc;
            break;
        }
        s->mdb = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
    }
    if (s->mdb == MDB_NOTFOUND)
        s->mdb = MDB_SUCCESS;
    mdb_cursor_close(cur);
}

/* Is any entry under this prefix? */
static int lm_prefix_used(lm_scan *s, const lm_index *ix, const uint8_t *prefix, size_t len)
{
    MDB_cursor *cur;
    MDB_val k = {len < LM_PREFIX ? len : LM_PREFIX, (void *)prefix}, v;
    if ((s->mdb = mdb_cursor_open(s->txn, ix->dbi, &cur)) != MDB_SUCCESS)
        return 1;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    mdb_cursor_close(cur);
    if (rc != MDB_SUCCESS) {
        s->mdb = rc == MDB_NOTFOUND ? MDB_SUCCESS : rc;
        return 0;
    }
    size_t n = len < LM_PREFIX ? len : LM_PREFIX;
    return k.mv_size >= n && memcmp(k.mv_data, prefix, n) == 0;
}

/* ---- the plan ---------------------------------------------------------- */

typedef struct lm_pred {
    const char *field;
    int has_eq, has_lo, has_hi;
    bson_iter_t eq, lo, hi;
} lm_pred;

typedef struct lm_plan {
    lm_pred preds[LM_MAX_PREDS];
    size_t n_preds;
    const char *id; /* _id equality */
    size_t n_fields; /* top-level keys of the filter */
    int only_eq;     /* every one a plain {field: value} */
} lm_plan;

static lm_pred *lm_pred_for(lm_plan *p, const char *field)
{
    for (size_t i = 0; i < p->n_preds; i++)
        if (strcmp(p->preds[i].field, field) == 0)
            return &p->preds[i];
    if (p->n_preds == LM_MAX_PREDS)
        return NULL;
    lm_pred *pr = &p->preds[p->n_preds++];
    pr->has_eq = pr->has_lo = pr->has_hi = 0;
    pr->field = field;
    return pr;
}

/* Top-level conditions only (an implicit AND): each is necessary, so any
 * of them narrows the candidates.  $or, $and and other operators are left
 * to the matcher. */
static void lm_plan_filter(lm_plan *p, const uint8_t *filter, uint32_t len)
{
    bson_t b;
    bson_iter_t it, op;
    p->n_preds = p->n_fields = 0;
    p->id = NULL;
    p->only_eq = 0; /* (the predicates are cleared as they are used: 8 KiB) */
    if (filter == NULL || len == 0 || !bson_init_static(&b, filter, len) ||
        !bson_iter_init(&it, &b))
        return;
    p->only_eq = 1;
    while (bson_iter_next(&it)) {
        const char *field = bson_iter_key(&it);
        p->n_fields++;
        if (field[0] == '$') {
            p->only_eq = 0;
            continue;
        }
        int ops = BSON_ITER_HOLDS_DOCUMENT(&it) && bson_iter_recurse(&it, &op) &&
                  bson_iter_next(&op) && bson_iter_key(&op)[0] == '$';
        if (ops || strcmp(field, "_id") == 0)
            p->only_eq = 0;
        if (strcmp(field, "_id") == 0) {
            bson_iter_t v = it;
            if (ops && strcmp(bson_iter_key(&op), "$eq") == 0)
                v = op;
            if (BSON_ITER_HOLDS_UTF8(&v) && (!ops || strcmp(bson_iter_key(&op), "$eq") == 0))
                p->id = bson_iter_utf8(&v, NULL);
            continue;
        }
        lm_pred *pr = lm_pred_for(p, field);
        if (pr == NULL)
            continue;
        if (!ops) {
            if (!pr->has_eq)
                pr->eq = it, pr->has_eq = 1;
            continue;
        }
        bson_iter_recurse(&it, &op);
        while (bson_iter_next(&op)) {
            const char *o = bson_iter_key(&op);
            if (strcmp(o, "$eq") == 0 && !pr->has_eq)
                pr->eq = op, pr->has_eq = 1;
            else if ((strcmp(o, "$gt") == 0 || strcmp(o, "$gte") == 0) && !pr->has_lo)
                pr->lo = op, pr->has_lo = 1;
            else if ((strcmp(o, "$lt") == 0 || strcmp(o, "$lte") == 0) && !pr->has_hi)
                pr->hi = op, pr->has_hi = 1;
        }
    }
}

/* Key bytes of values for the first `n` keys of `ix` (shifted by `from`):
 * {field: value...} through host->index_key, so they are exactly the
 * stored encoding (a prefix's key is a prefix of the compound key). */
static int32_t lm_values_key(persistor_instance *inst, const lm_index *ix, uint32_t from,
                             uint32_t n, bson_iter_t *const *vals, persistor_buffer *out)
{
    persistor_index_spec spec = {ix->spec->name, ix->spec->keys + from, n, 0};
    bson_t doc = BSON_INITIALIZER; /* inline storage: no allocation for small keys */
    for (uint32_t i = 0; i < n; i++)
        bson_append_iter(&doc, ix->spec->keys[from + i].field, -1, vals[i]);
    int32_t rc = inst->host->index_key(&spec, bson_get_data(&doc), doc.len, out);
    bson_destroy(&doc);
    return rc;
}

/* A growable byte string, in place while it is short (never copied). */
typedef struct lm_buf {
    uint8_t *p; /* NULL, small, or the heap */
    size_t n;
    uint8_t small[120];
} lm_buf;

static int lm_buf_set(lm_buf *b, const uint8_t *a, size_t an, const uint8_t *c, size_t cn)
{
    size_t need = an + cn + 1;
    uint8_t *p = b->p;
    if (p == NULL || p == b->small)
        p = need <= sizeof b->small ? b->small : malloc(need);
    else
        p = realloc(p, need);
    if (p == NULL)
        return ENOMEM;
    memcpy(p, a, an);
    if (cn > 0)
        memcpy(p + an, c, cn);
    b->p = p;
    b->n = an + cn;
    return 0;
}

static void lm_buf_free(lm_buf *b)
{
    if (b->p != b->small)
        free(b->p);
}

static int lm_is_array_value(const bson_iter_t *v)
{
    return BSON_ITER_HOLDS_ARRAY(v);
}

/* How many leading fields of `ix` have a usable equality, and is there a
 * usable range on the next one?  Usable: not an array value (the array
 * range would then contain the equality range). */
static uint32_t lm_index_fit(lm_plan *p, const lm_index *ix, int *range)
{
    uint32_t k = 0;
    *range = 0;
    if (!ix->plain)
        return 0;
    for (; k < ix->spec->n_keys; k++) {
        lm_pred *pr = NULL;
        for (size_t i = 0; i < p->n_preds && pr == NULL; i++)
            if (strcmp(p->preds[i].field, ix->spec->keys[k].field) == 0)
                pr = &p->preds[i];
        if (pr == NULL)
            break;
        if (pr->has_eq && !lm_is_array_value(&pr->eq))
            continue;
        *range = (pr->has_lo && !lm_is_array_value(&pr->lo)) ||
                 (pr->has_hi && !lm_is_array_value(&pr->hi));
        break;
    }
    return k;
}

static lm_pred *lm_pred_of(lm_plan *p, const char *field)
{
    for (size_t i = 0; i < p->n_preds; i++)
        if (strcmp(p->preds[i].field, field) == 0)
            return &p->preds[i];
    return NULL;
}

/* Does the index order (after k equality fields) give the sort's order?
 * The sort's fields that are equality fields are constants and drop out. */
static int lm_sort_fits(const uint8_t *sort, uint32_t sort_len, const lm_index *ix, uint32_t k)
{
    bson_t b;
    bson_iter_t it;
    uint32_t next = k; /* the index field the sort must name next */
    int after_id = 0;
    if (sort == NULL || sort_len == 0)
        return 1;
    if (!bson_init_static(&b, sort, sort_len) || !bson_iter_init(&it, &b))
        return 0;
    while (bson_iter_next(&it)) {
        const char *f = bson_iter_key(&it);
        int dir = bson_iter_as_int64(&it) < 0 ? -1 : 1;
        int is_eq = 0;
        for (uint32_t i = 0; i < k; i++)
            is_eq |= strcmp(f, ix->spec->keys[i].field) == 0;
        if (is_eq)
            continue;
        if (after_id)
            return 0;
        if (strcmp(f, "_id") == 0) {
            /* Ties end with the id only once every index field is fixed. */
            if (next != ix->spec->n_keys || (dir < 0 && !ix->unique))
                return 0;
            after_id = 1;
            continue;
        }
        if (next > k || next >= ix->spec->n_keys ||
            strcmp(f, ix->spec->keys[next].field) != 0 ||
            (ix->spec->keys[next].direction < 0 ? -1 : 1) != dir)
            return 0;
        next++;
    }
    return 1;
}

typedef struct lm_query_ctx {
    const persistor_query *q;
    int sorted; /* the hits are in the sort's order already */
} lm_query_ctx;

/* Scan an index with k equality fields and maybe a range on field k. */
static void lm_scan_index(lm_scan *s, lm_plan *p, lm_index *ix, uint32_t k, int range,
                          int sort_fits, uint64_t want, int *sorted)
{
    persistor_instance *inst = s->inst;
    bson_iter_t *vals[LM_MAX_PREDS];
    lm_buf prefix, start, stop;
    uint8_t ab;
    prefix.p = start.p = stop.p = NULL;
    for (uint32_t i = 0; i < k; i++)
        vals[i] = &lm_pred_of(p, ix->spec->keys[i].field)->eq;
    /* Array ranges of the equality fields (and of the range field), which
     * a clean index has none of. */
    size_t before = s->n;
    int clean = lm_index_is_clean(inst, s->txn, ix, &s->mdb);
    s->max = 0;
    for (uint32_t i = 0; !clean && i <= k && i < ix->spec->n_keys && s->mdb == 0 && s->rc == 0;
         i++) {
        if (i == k && !range)
            break;
        if ((s->rc = lm_values_key(inst, ix, 0, i, vals, &inst->key)) != PERSISTOR_OK)
            break;
        ab = ix->spec->keys[i].direction < 0 ? (uint8_t)~inst->rank_array : inst->rank_array;
        if ((s->mdb = lm_buf_set(&prefix, inst->key.data, inst->key.len, &ab, 1)) != 0)
            break;
        lm_scan_range(s, ix, prefix.p, prefix.n, prefix.p, prefix.n);
    }
    /* Stream in index order only if nothing out of order came up. */
    *sorted = sort_fits && s->n == before;
    if (s->mdb != 0 || s->rc != 0 ||
        (s->rc = lm_values_key(inst, ix, 0, k, vals, &inst->key)) != PERSISTOR_OK ||
        (s->mdb = lm_buf_set(&prefix, inst->key.data, inst->key.len, NULL, 0)) != 0)
        goto out;
    if (*sorted && !clean && k < ix->spec->n_keys && !range) {
        ab = ix->spec->keys[k].direction < 0 ? (uint8_t)~inst->rank_array : inst->rank_array;
        if ((s->mdb = lm_buf_set(&start, prefix.p, prefix.n, &ab, 1)) != 0)
            goto out;
        if (lm_prefix_used(s, ix, start.p, start.n))
            *sorted = 0; /* arrays in the sort field: index order is not the sort */
    }
    if (*sorted && want > 0)
        s->max = s->n + (size_t)want;
    if (!range) {
        /* A filter of nothing but these equalities: equal keys are equal
         * values (index_key's promise), so the range is the answer, unless
         * the prefix is long enough to be cut. */
        s->exact = p->only_eq && p->n_fields == k && p->n_preds == k && prefix.n < LM_PREFIX;
        lm_scan_range(s, ix, prefix.p, prefix.n, prefix.p, prefix.n);
        s->exact = 0;
        goto out;
    }
    lm_pred *pr = lm_pred_of(p, ix->spec->keys[k].field);
    int desc = ix->spec->keys[k].direction < 0;
    bson_iter_t *lo = pr->has_lo && !lm_is_array_value(&pr->lo) ? &pr->lo : NULL;
    bson_iter_t *hi = pr->has_hi && !lm_is_array_value(&pr->hi) ? &pr->hi : NULL;
    uint8_t lo_rank = 0, hi_rank = 0;
    lm_buf lo_key, hi_key;
    lo_key.p = hi_key.p = NULL;
    if (lo && (s->rc = lm_values_key(inst, ix, k, 1, &lo, &inst->key)) == 0 &&
        (s->mdb = lm_buf_set(&lo_key, inst->key.data, inst->key.len, NULL, 0)) == 0)
        lo_rank = lo_key.p[0];
    if (hi && s->rc == 0 && s->mdb == 0 &&
        (s->rc = lm_values_key(inst, ix, k, 1, &hi, &inst->key)) == 0 &&
        (s->mdb = lm_buf_set(&hi_key, inst->key.data, inst->key.len, NULL, 0)) == 0)
        hi_rank = hi_key.p[0];
    if (lo && hi && lo_rank != hi_rank)
        hi = NULL; /* brackets never meet: keep one, the matcher sorts it out */
    if (s->rc == 0 && s->mdb == 0) {
        /* In key order, the low end is the smaller value unless descending. */
        const lm_buf *first = desc ? (hi ? &hi_key : NULL) : (lo ? &lo_key : NULL);
        const lm_buf *last = desc ? (lo ? &lo_key : NULL) : (hi ? &hi_key : NULL);
        uint8_t rank = lo ? lo_rank : hi_rank;
        if ((s->mdb = lm_buf_set(&start, prefix.p, prefix.n, first ? first->p : &rank,
                                 first ? first->n : 1)) == 0 &&
            (s->mdb = lm_buf_set(&stop, prefix.p, prefix.n, last ? last->p : &rank,
                                 last ? last->n : 1)) == 0)
            lm_scan_range(s, ix, start.p, start.n, stop.p, stop.n);
    }
    lm_buf_free(&lo_key);
    lm_buf_free(&hi_key);
out:
    lm_buf_free(&prefix);
    lm_buf_free(&start);
    lm_buf_free(&stop);
}

/* Merge sort with the host's sorter: stable. */
static void lm_sort(const persistor_host *host, const persistor_sorter *so, lm_hit *a,
                    lm_hit *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t half = n / 2, i = 0, j = half, k = 0;
    lm_sort(host, so, a, tmp, half);
    lm_sort(host, so, a + half, tmp, n - half);
    while (i < half && j < n)
        tmp[k++] = host->sorter_compare(so, a[j].doc, a[j].len, a[i].doc, a[i].len) < 0
                       ? a[j++] : a[i++];
    while (i < half)
        tmp[k++] = a[i++];
    memcpy(a, tmp, k * sizeof *a);
}

/* Run the plan: hits in s, *sorted when already in the sort's order. */
static void lm_run(lm_scan *s, const uint8_t *filter, uint32_t filter_len, const uint8_t *sort,
                   uint32_t sort_len, uint64_t want, int *sorted)
{
    lm_plan plan;
    lm_plan_filter(&plan, filter, filter_len);
    *sorted = sort == NULL || sort_len == 0;
    if (plan.id != NULL) {
        uint8_t mk[LM_TRUNC_LEN];
        size_t mk_len;
        MDB_val doc;
        s->mdb = lm_main_find(s->txn, s->c->main, plan.id, mk, &mk_len, &doc);
        if (s->mdb == MDB_SUCCESS)
            lm_consider(s, &doc);
        else if (s->mdb == MDB_NOTFOUND)
            s->mdb = MDB_SUCCESS;
        *sorted = 1;
        return;
    }
    lm_index *best = NULL;
    uint32_t best_k = 0;
    int best_range = 0, best_score = 0, best_fits = 0;
    for (uint32_t i = 0; i < s->c->n_idx; i++) {
        lm_index *ix = &s->c->idx[i];
        int range;
        uint32_t k = lm_index_fit(&plan, ix, &range);
        int score = (int)k * 2 + range;
        int fits = ix->plain && lm_sort_fits(sort, sort_len, ix, k);
        /* With nothing to narrow, an index is worth it only to stream a
         * sort that it orders. */
        if (score == 0 && !(fits && sort != NULL && sort_len > 0))
            continue;
        if (best == NULL || score > best_score || (score == best_score && fits && !best_fits)) {
            best = ix;
            best_k = k;
            best_range = range;
            best_score = score;
            best_fits = fits;
        }
    }
    if (best == NULL) {
        if (*sorted && want > 0)
            s->max = (size_t)want;
        lm_scan_main(s);
        return;
    }
    lm_scan_index(s, &plan, best, best_k, best_range, best_fits, want, sorted);
}

static int32_t lm_scan_error(persistor_instance *inst, const lm_scan *s, const char *coll,
                             persistor_error *err)
{
    if (s->rc != PERSISTOR_OK && s->rc_set)
        return s->rc;
    if (s->rc != PERSISTOR_OK)
        return inst->host->error_set(err, s->rc, "%s: cannot compute an index key", coll);
    return lm_error(inst, s->mdb, coll, err);
}

/* ---- query and count --------------------------------------------------- */

int32_t lm_query(persistor_instance *inst, const char *collection, const persistor_query *q,
                 persistor_cursor **out, persistor_error *err)
{
    const persistor_host *host = inst->host;
    persistor_matcher *m = NULL;
    const persistor_sorter *so = NULL;
    lm_coll *c;
    lm_txn t;
    lm_scan s;
    int sorted;
    int has_sort = q->sort != NULL && q->sort_len > 0;
    int32_t rc = lm_coll_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK || (rc = lm_matcher(inst, q->filter, q->filter_len, &m, err)) != 0)
        return rc;
    if (has_sort &&
        (rc = sorters_cached(host, &inst->sort, q->sort, q->sort_len, &so, err)) != PERSISTOR_OK) {
        if (m != NULL)
            host->matcher_free(m);
        return rc;
    }
    if ((rc = lm_begin(inst, 0, &t, err)) != PERSISTOR_OK) {
        if (m != NULL)
            host->matcher_free(m);
        return rc;
    }
    lm_scan_init(&s, inst, t.txn, c, m, q->filter, q->filter_len, err);
    uint64_t want = q->limit > 0 ? q->skip + q->limit : 0;
    lm_run(&s, q->filter, q->filter_len, has_sort ? q->sort : NULL, q->sort_len, want, &sorted);
    if (s.mdb != MDB_SUCCESS || s.rc != PERSISTOR_OK) {
        rc = lm_scan_error(inst, &s, collection, err);
    } else {
        if (!sorted && so != NULL && s.n > 1) {
            lm_hit *tmp = malloc(s.n * sizeof *tmp);
            if (tmp == NULL)
                rc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory sorting",
                                     collection);
            else
                lm_sort(host, so, s.hits, tmp, s.n);
            free(tmp);
        }
        size_t first = q->skip < s.n ? (size_t)q->skip : s.n;
        size_t last = q->limit > 0 && q->limit < s.n - first ? first + (size_t)q->limit : s.n;
        size_t size = 0;
        for (size_t i = first; i < last; i++)
            size += s.hits[i].len;
        persistor_cursor *cur = rc == PERSISTOR_OK ? malloc(sizeof *cur + size) : NULL;
        if (cur != NULL) {
            cur->size = cur->off = 0;
            for (size_t i = first; i < last; i++) {
                memcpy(cur->data + cur->size, s.hits[i].doc, s.hits[i].len);
                cur->size += s.hits[i].len;
            }
            *out = cur;
        } else if (rc == PERSISTOR_OK) {
            rc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory for %zu bytes",
                                 collection, size);
        }
    }
    lm_end(inst, &t);
    lm_scan_free(&s);
    return rc;
}

int32_t lm_cursor_next(persistor_cursor *cur, const uint8_t **doc, uint32_t *len,
                       persistor_error *err)
{
    if (cur->off >= cur->size)
        return PERSISTOR_ITER_END;
    const uint8_t *p = cur->data + cur->off;
    *doc = p;
    *len = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    cur->off += *len;
    return PERSISTOR_OK;
}

void lm_cursor_close(persistor_cursor *cur)
{
    free(cur);
}

int32_t lm_count(persistor_instance *inst, const char *collection, const uint8_t *filter,
                 uint32_t filter_len, uint64_t *out, persistor_error *err)
{
    persistor_matcher *m = NULL;
    lm_coll *c;
    lm_txn t;
    lm_scan s;
    int sorted;
    int32_t rc = lm_coll_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK || (rc = lm_matcher(inst, filter, filter_len, &m, err)) != 0)
        return rc;
    if ((rc = lm_begin(inst, 0, &t, err)) != PERSISTOR_OK) {
        if (m != NULL)
            inst->host->matcher_free(m);
        return rc;
    }
    lm_scan_init(&s, inst, t.txn, c, m, filter, filter_len, err);
    lm_run(&s, filter, filter_len, NULL, 0, 0, &sorted);
    if (s.mdb != MDB_SUCCESS || s.rc != PERSISTOR_OK)
        rc = lm_scan_error(inst, &s, collection, err);
    else
        *out = s.n;
    lm_end(inst, &t);
    lm_scan_free(&s);
    return rc;
}
