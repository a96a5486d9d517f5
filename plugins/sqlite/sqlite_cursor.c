/*
 * sqlite_cursor.c — query and count: the cursor a query answers with, the
 * order of its rows, and what one query keeps for the next.
 *
 * Cursors are materialized: query() reads every answer into memory and
 * resets its statements.  The host may write between two cursor_next calls
 * (on this very connection): an open statement would see a moving table,
 * pin an old WAL snapshot (blocking checkpoints while a cursor idles), and
 * tie up the collection's cached statement.  Memory does the same.
 *
 * The order is memory's: sorted with host->sorter_compare, ties (and
 * unsorted answers) in write order (seq).  Skip and limit apply last.
 *
 * Streaming in the sort's order.  An index plan reads rows in (key, seq)
 * order.  When the sort names, after any of the plan's equality fields,
 * every remaining field of the index in order and direction (then
 * anything, e.g. {xcId: X} sorted {ts: 1, _id: 1} on xcId_1_ts_1), two rows
 * with different keys are already in the sorter's order, provided that for
 * both rows:
 *   - the key starts with the equality prefix Q (its equality fields hold
 *     values equal to the filter's, which the sorter sees as ties), and
 *   - no remaining index field is an array or a path through one (there
 *     the sorter takes an element while the key holds the whole array, or
 *     null), which is checked on the key's rank byte for the field right
 *     after Q when it is not dotted, on the document for the others.
 * A non-array value's key orders as the sorter orders it (index_key's
 * promise; missing is null for both; a descending key is complemented).
 * Rows with equal keys are then sorted among themselves with the sorter
 * (the fields after the index's, e.g. _id, decide) and seq.  If any row
 * fails the test — an array, a row from an array or null range, a key
 * lower than the row's before — the whole answer is sorted with the
 * sorter as before.
 *
 * Kept between queries: the compiled sort of the last valid sort document
 * (compiling the same bytes again gives the same sorter), and one closed
 * cursor's buffers.  The matcher is compiled for every query: its values
 * change from one query to the next, and it is what refuses bad filters.
 */
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "sqlite_internal.h"

/* A closed cursor keeps its buffers for the next query up to this size. */
#define SQ_SPARE_MAX (1u << 20)

typedef struct sq_entry {
    int64_t seq;
    size_t off;
    uint32_t len;
    uint32_t tie; /* streaming: same key as the entry before */
} sq_entry;

struct persistor_cursor {
    persistor_instance *inst;
    const persistor_sorter *sorter; /* while sorting only */
    sq_entry *e, *tmp;
    size_t n, cap, tmp_cap, pos, end;
    uint8_t *data;
    size_t used, size;
    uint64_t want;         /* unsorted: stop after this many (0: all) ... */
    int in_seq_order;      /* ... if the plan reads rows in write order */
    const sq_qplan *plan;  /* while running */
    int stream;            /* rows so far are in the sort's order (see above) */
    uint8_t *prev;         /* streaming: the key of the last row taken */
    size_t prev_len, prev_cap;
};

/* ---- the sort's order from the index ------------------------------------ */

/* Exactly 1 or -1 as an int32, int64 or double (what the sorter accepts,
 * decimal128 aside); 0 otherwise, and no streaming. */
static int sq_sort_dir(const bson_iter_t *it)
{
    double d;
    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32: d = bson_iter_int32(it); break;
    case BSON_TYPE_INT64: d = (double)bson_iter_int64(it); break;
    case BSON_TYPE_DOUBLE: d = bson_iter_double(it); break;
    default: return 0;
    }
    return d == 1.0 ? 1 : d == -1.0 ? -1 : 0;
}

/* Does the sort name, after the plan's equality fields (dropped wherever
 * they are), every remaining index field in order and direction? */
static int sq_stream_fits(const sq_qplan *p, const uint8_t *sort, uint32_t sort_len)
{
    const persistor_index_spec *ix;
    bson_t b;
    bson_iter_t it;
    if (p->kind != SQ_PLAN_INDEX || p->null_dotted_eq || p->e > SQ_MAX_LEVELS)
        return 0;
    ix = p->ix->spec;
    uint32_t next = p->e;
    if (!bson_init_static(&b, sort, sort_len) || !bson_iter_init(&it, &b))
        return 0;
    while (next < ix->n_keys && bson_iter_next(&it)) {
        const char *f = bson_iter_key(&it);
        int dir = sq_sort_dir(&it), is_eq = 0;
        for (uint32_t j = 0; j < p->e && !is_eq; j++)
            is_eq = strcmp(f, ix->keys[j].field) == 0;
        if (is_eq)
            continue;
        if (dir == 0 || strcmp(f, ix->keys[next].field) != 0 ||
            dir != (ix->keys[next].direction < 0 ? -1 : 1))
            return 0;
        next++;
    }
    return next == ix->n_keys;
}

/* Is there an array on `path` in `doc` (as a value along it or at its
 * end)?  A missing step is no array.  Unreadable: say yes. */
static int sq_path_has_array(const uint8_t *doc, uint32_t len, const char *path)
{
    bson_iter_t it, child;
    if (!bson_iter_init_from_data(&it, doc, len))
        return 1;
    for (;;) {
        size_t n = strcspn(path, ".");
        if (!bson_iter_find_w_len(&it, path, (int)n))
            return 0;
        if (BSON_ITER_HOLDS_ARRAY(&it))
            return 1;
        if (path[n] == '\0' || !BSON_ITER_HOLDS_DOCUMENT(&it))
            return 0;
        if (!bson_iter_recurse(&it, &child))
            return 1;
        it = child;
        path += n + 1;
    }
}

/* The conditions of the top of the file, for one row. */
static int sq_row_streams(const persistor_cursor *cur, const uint8_t *doc, uint32_t len,
                          const uint8_t *key, uint32_t key_len)
{
    const persistor_instance *inst = cur->inst;
    const sq_qplan *p = cur->plan;
    const persistor_index_spec *ix = p->ix->spec;
    if (key == NULL || !sq_in_prefix(inst, p, key, key_len))
        return 0;
    for (uint32_t j = p->e; j < ix->n_keys; j++) {
        const char *field = ix->keys[j].field;
        if (j == p->e && strchr(field, '.') == NULL) {
            /* The byte after Q is field e's rank (sq_plan_index learned
             * array_byte before it made this plan). */
            uint8_t array = ix->keys[j].direction < 0 ? (uint8_t)~inst->array_byte
                                                      : inst->array_byte;
            if (key_len <= p->q_len || key[p->q_len] == array)
                return 0;
        } else if (sq_path_has_array(doc, len, field)) {
            return 0;
        }
    }
    return 1;
}

/* ---- cursors ------------------------------------------------------------ */

static int32_t sq_cursor_take(void *ctx, int64_t seq, const uint8_t *doc, uint32_t len,
                              const uint8_t *key, uint32_t key_len)
{
    persistor_cursor *cur = ctx;
    uint32_t tie = 0;
    if (cur->n == cur->cap) {
        size_t cap = cur->cap ? cur->cap * 2 : 16;
        sq_entry *e = realloc(cur->e, cap * sizeof *e);
        if (e == NULL)
            return PERSISTOR_E_NOMEM;
        cur->e = e;
        cur->cap = cap;
    }
    if (cur->used + len > cur->size) {
        size_t size = (cur->size ? cur->size * 2 : 4096) + len;
        uint8_t *d = realloc(cur->data, size);
        if (d == NULL)
            return PERSISTOR_E_NOMEM;
        cur->data = d;
        cur->size = size;
    }
    if (cur->stream && !sq_row_streams(cur, doc, len, key, key_len))
        cur->stream = 0;
    if (cur->stream && cur->n > 0) { /* rows must arrive in key order */
        size_t n = key_len < cur->prev_len ? key_len : cur->prev_len;
        int c = n > 0 ? memcmp(key, cur->prev, n) : 0;
        c = c != 0 ? c : (key_len > cur->prev_len) - (key_len < cur->prev_len);
        cur->stream = c >= 0;
        tie = c == 0;
    }
    if (cur->stream) {
        if (key_len > cur->prev_cap) {
            uint8_t *k = realloc(cur->prev, key_len);
            if (k == NULL)
                return PERSISTOR_E_NOMEM;
            cur->prev = k;
            cur->prev_cap = key_len;
        }
        if (key_len > 0)
            memcpy(cur->prev, key, key_len);
        cur->prev_len = key_len;
    }
    memcpy(cur->data + cur->used, doc, len);
    cur->e[cur->n++] = (sq_entry){seq, cur->used, len, tie};
    cur->used += len;
    return cur->want > 0 && cur->in_seq_order && cur->n >= cur->want ? 1 : PERSISTOR_OK;
}

/* The sorter's order, then write order: memory's stable sort exactly. */
static int sq_entry_cmp(const persistor_cursor *cur, const sq_entry *a, const sq_entry *b)
{
    if (cur->sorter != NULL) {
        int c = cur->inst->host->sorter_compare(cur->sorter, cur->data + a->off, a->len,
                                                cur->data + b->off, b->len);
        if (c != 0)
            return c;
    }
    return (a->seq > b->seq) - (a->seq < b->seq);
}

static void sq_merge_sort(const persistor_cursor *cur, sq_entry *a, sq_entry *tmp, size_t n)
{
    if (n < 2)
        return;
    size_t half = n / 2, i = 0, j = half, k = 0;
    sq_merge_sort(cur, a, tmp, half);
    sq_merge_sort(cur, a + half, tmp, n - half);
    if (sq_entry_cmp(cur, &a[half - 1], &a[half]) <= 0)
        return; /* already in order: rows often come from an index that is */
    while (i < half && j < n)
        tmp[k++] = sq_entry_cmp(cur, &a[j], &a[i]) < 0 ? a[j++] : a[i++];
    while (i < half)
        tmp[k++] = a[i++];
    memcpy(a, tmp, k * sizeof *a);
}

/* Sort e[from, to) with `sorter` (NULL: by seq). */
static int32_t sq_sort_entries(persistor_cursor *cur, const persistor_sorter *sorter, size_t from,
                               size_t to)
{
    if (to - from < 2)
        return PERSISTOR_OK;
    if (cur->tmp_cap < to - from) {
        sq_entry *t = realloc(cur->tmp, (to - from) * sizeof *t);
        if (t == NULL)
            return PERSISTOR_E_NOMEM;
        cur->tmp = t;
        cur->tmp_cap = to - from;
    }
    cur->sorter = sorter;
    sq_merge_sort(cur, cur->e + from, cur->tmp, to - from);
    cur->sorter = NULL;
    return PERSISTOR_OK;
}

/* Put the answer in memory's order. */
static int32_t sq_order(persistor_cursor *cur, const persistor_sorter *s)
{
    if (s != NULL && cur->stream) { /* only runs of equal keys to sort */
        int32_t rc = PERSISTOR_OK;
        for (size_t i = 0, j; i < cur->n && rc == PERSISTOR_OK; i = j) {
            for (j = i + 1; j < cur->n && cur->e[j].tie; j++)
                ;
            rc = sq_sort_entries(cur, s, i, j);
        }
        return rc;
    }
    if (s != NULL || !cur->in_seq_order)
        return sq_sort_entries(cur, s, 0, cur->n);
    return PERSISTOR_OK;
}

static void sq_cursor_free(persistor_cursor *cur)
{
    free(cur->e);
    free(cur->tmp);
    free(cur->data);
    free(cur->prev);
    free(cur);
}

/* A cursor for the next query: the spare one, emptied, or a new one. */
static persistor_cursor *sq_cursor_new(persistor_instance *inst)
{
    persistor_cursor *cur = inst->spare;
    if (cur == NULL)
        return calloc(1, sizeof(persistor_cursor));
    inst->spare = NULL;
    cur->n = cur->pos = cur->end = cur->used = cur->prev_len = 0;
    cur->want = 0;
    cur->in_seq_order = cur->stream = 0;
    cur->plan = NULL;
    return cur;
}

void sq_cursor_close(persistor_cursor *cur)
{
    if (cur == NULL)
        return;
    persistor_instance *inst = cur->inst;
    if (inst != NULL && inst->spare == NULL && cur->size <= SQ_SPARE_MAX &&
        cur->cap * sizeof(sq_entry) <= SQ_SPARE_MAX) {
        inst->spare = cur;
        return;
    }
    sq_cursor_free(cur);
}

void sq_query_cache_free(persistor_instance *inst)
{
    if (inst->spare != NULL)
        sq_cursor_free(inst->spare);
    inst->spare = NULL;
    sorters_cache_free(inst->host, &inst->sort);
}

/* The compiled sort of `q` (NULL when unsorted), kept by the instance. */
static int32_t sq_sorter(persistor_instance *inst, const persistor_query *q,
                         const persistor_sorter **out, persistor_error *err)
{
    *out = NULL;
    if (q->sort == NULL || q->sort_len == 0)
        return PERSISTOR_OK;
    return sorters_cached(inst->host, &inst->sort, q->sort, q->sort_len, out, err);
}

int32_t sq_query(persistor_instance *inst, const char *collection, const persistor_query *q,
                 persistor_cursor **out, persistor_error *err)
{
    const persistor_host *host = inst->host;
    persistor_matcher *m = NULL;
    const persistor_sorter *s = NULL;
    sq_collection *c;
    sq_qplan plan;
    int32_t rc = sq_collection_get(inst, collection, &c, err);
    /* The host's compilers first: every adapter refuses the same queries. */
    if (rc != PERSISTOR_OK || (rc = host->matcher_new(q->filter, q->filter_len, &m, err)) != 0)
        return rc;
    if ((rc = sq_sorter(inst, q, &s, err)) != PERSISTOR_OK) {
        host->matcher_free(m);
        return rc;
    }
    persistor_cursor *cur = sq_cursor_new(inst);
    if (cur == NULL) {
        rc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory for a query", collection);
        goto done;
    }
    cur->inst = inst;
    sq_plan_query(inst, c, q->filter, q->filter_len, &plan);
    cur->plan = &plan;
    cur->in_seq_order = plan.kind != SQ_PLAN_INDEX;
    cur->stream = s != NULL && sq_stream_fits(&plan, q->sort, q->sort_len);
    /* Unsorted, in write order: the first skip+limit matches will do. */
    if (s == NULL && q->limit > 0 && q->skip < UINT64_MAX - q->limit)
        cur->want = q->skip + q->limit;
    rc = sq_run(inst, c, &plan, m, sq_cursor_take, cur, err);
    cur->plan = NULL;
    if (rc == PERSISTOR_OK && sq_order(cur, s) != PERSISTOR_OK)
        rc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory sorting %zu documents",
                             collection, cur->n);
    if (rc == PERSISTOR_OK) {
        cur->pos = q->skip < cur->n ? (size_t)q->skip : cur->n;
        cur->end = q->limit > 0 && q->limit < cur->n - cur->pos ? cur->pos + (size_t)q->limit
                                                                : cur->n;
        *out = cur;
        cur = NULL;
    }
done:
    sq_cursor_close(cur);
    host->matcher_free(m);
    return rc;
}

int32_t sq_cursor_next(persistor_cursor *cur, const uint8_t **doc, uint32_t *len,
                       persistor_error *err)
{
    (void)err;
    if (cur->pos >= cur->end)
        return PERSISTOR_ITER_END;
    const sq_entry *e = &cur->e[cur->pos++];
    *doc = cur->data + e->off;
    *len = e->len;
    return PERSISTOR_OK;
}

/* ---- count ------------------------------------------------------------- */

static int32_t sq_count_take(void *ctx, int64_t seq, const uint8_t *doc, uint32_t len,
                             const uint8_t *key, uint32_t key_len)
{
    (void)seq, (void)doc, (void)len, (void)key, (void)key_len;
    (*(uint64_t *)ctx)++;
    return PERSISTOR_OK;
}

int32_t sq_count(persistor_instance *inst, const char *collection, const uint8_t *filter,
                 uint32_t filter_len, uint64_t *out, persistor_error *err)
{
    const persistor_host *host = inst->host;
    persistor_matcher *m;
    sq_collection *c;
    sq_qplan plan;
    int32_t rc = sq_collection_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK || (rc = host->matcher_new(filter, filter_len, &m, err)) != 0)
        return rc;
    *out = 0;
    if (filter == NULL || filter_len <= 5) { /* everything: no row to read */
        sqlite3_stmt *st = c->st[SQ_ST_COUNT];
        int src = sqlite3_step(st);
        if (src == SQLITE_ROW)
            *out = (uint64_t)sqlite3_column_int64(st, 0);
        sqlite3_reset(st);
        if (src != SQLITE_ROW)
            rc = sq_error(inst, src, err, "%s: count", collection);
    } else {
        sq_plan_query(inst, c, filter, filter_len, &plan);
        rc = sq_run(inst, c, &plan, m, sq_count_take, out, err);
    }
    host->matcher_free(m);
    return rc;
}
