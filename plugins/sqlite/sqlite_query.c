/*
 * sqlite_query.c — which rows a query reads (push-down onto _id or an
 * index key column) and running that plan, with the host's matcher as the
 * judge of every row.  Cursors and the answer's order: sqlite_cursor.c.
 *
 * Results are identical to the memory adapter's by construction: a plan
 * only chooses *candidate* rows, always a superset of the matches, and
 * every candidate is re-checked with host->matcher_match — except where
 * that check provably says yes (below).
 *
 * Push-down rules, on the filter's top level and inside top-level $and:
 *
 *   _id: "string"                 -> the row with that id (one probe)
 *   equality on the leading fields of a declared index, optionally a
 *   range ($gt/$gte/$lt/$lte) on the next one
 *                                 -> key ranges on the index's column
 *
 * An index key column holds host->index_key bytes, which hold no multikey
 * entries: a document whose field is an array has one key, of the array,
 * and a dotted path through an array of documents has the key of null.
 * Such a document may still match (an array matches when an element does),
 * so besides the main range a plan also reads, at each constrained level,
 * the keys whose value there is an array, and for dotted fields those
 * whose value is null.  Those ranges are tiny index probes when no such
 * documents exist.  Fields with a numeric path component ("a.0") are never
 * pushed down (the matcher reads them in more ways than index_key does),
 * nor are values other than numbers, strings, dates, booleans, ObjectIds
 * and null.  Anything else scans the table in write order.
 *
 * Rows the matcher need not see.  When the filter is nothing but
 * {f0: v0, ..., f(e-1): v(e-1)} on an index's first e distinct fields, each
 * v a non-null pushable scalar, a row whose key starts with Q = key(v0..)
 * matches: key values are prefix-free (a rank byte and a self-delimiting
 * payload), so its first e values have exactly Q's bytes, which by
 * index_key's promise means each compares equal to its v, and is neither
 * an array (another rank) nor a dotted path through an array (that indexes
 * as null, and no v is null).  The matcher's equality on such a value is
 * that same comparison.  Rows outside Q (the array and null ranges) are
 * still matched.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "sqlite_internal.h"

/* ---- what the filter says about one field --------------------------- */

typedef struct sq_cond {
    int has_eq, has_lo, has_hi, lo_incl, hi_incl;
    bson_iter_t eq, lo, hi;
} sq_cond;

static int sq_pushable(const bson_iter_t *it)
{
    switch (bson_iter_type(it)) {
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_UTF8:
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_BOOL:
    case BSON_TYPE_OID:
    case BSON_TYPE_NULL: return 1;
    default: return 0;
    }
}

/* Only plain dotted names: no empty or numeric component. */
static int sq_plain_path(const char *field)
{
    for (const char *p = field; *p != '\0';) {
        size_t n = strcspn(p, ".");
        if (n == 0 || strspn(p, "0123456789") >= n)
            return 0;
        p += n + (p[n] == '.');
    }
    return field[0] != '\0';
}

/* Collect what `filter` (ANDed, with top-level $and) says about `field`.
 * The first constraint of each kind wins: any one of them is a superset. */
static void sq_cond_scan(const uint8_t *data, uint32_t len, const char *field, sq_cond *c,
                         int depth)
{
    bson_t doc;
    bson_iter_t it, sub;
    if (depth > 8 || !bson_init_static(&doc, data, len) || !bson_iter_init(&it, &doc))
        return;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        if (key[0] == '$') {
            if (strcmp(key, "$and") != 0 || !BSON_ITER_HOLDS_ARRAY(&it) ||
                !bson_iter_recurse(&it, &sub))
                continue;
            while (bson_iter_next(&sub)) {
                uint32_t n;
                const uint8_t *d;
                if (BSON_ITER_HOLDS_DOCUMENT(&sub)) {
                    bson_iter_document(&sub, &n, &d);
                    sq_cond_scan(d, n, field, c, depth + 1);
                }
            }
            continue;
        }
        if (strcmp(key, field) != 0)
            continue;
        if (!BSON_ITER_HOLDS_DOCUMENT(&it)) {
            if (!c->has_eq && sq_pushable(&it))
                c->has_eq = 1, c->eq = it;
            continue;
        }
        if (!bson_iter_recurse(&it, &sub))
            continue;
        while (bson_iter_next(&sub)) {
            const char *op = bson_iter_key(&sub);
            if (op[0] != '$') /* an embedded document: equality, not pushed */
                break;
            if (!sq_pushable(&sub))
                continue;
            if (strcmp(op, "$eq") == 0 && !c->has_eq)
                c->has_eq = 1, c->eq = sub;
            else if ((strcmp(op, "$gt") == 0 || strcmp(op, "$gte") == 0) && !c->has_lo)
                c->has_lo = 1, c->lo = sub, c->lo_incl = op[3] == 'e';
            else if ((strcmp(op, "$lt") == 0 || strcmp(op, "$lte") == 0) && !c->has_hi)
                c->has_hi = 1, c->hi = sub, c->hi_incl = op[3] == 'e';
        }
    }
}

/* ---- plans ------------------------------------------------------------ */

/* One bound's half of a range, in key order: [start, end). */
typedef struct sq_half {
    uint8_t start[1024], end[1024];
    size_t start_len, end_len;
    int end_open;
} sq_half;

/* The successor of prefix k: the least string above every string that
 * starts with k.  -1 when there is none (k is all 0xFF). */
static int sq_succ(const uint8_t *k, size_t len, uint8_t *out, size_t *out_len)
{
    while (len > 0 && k[len - 1] == 0xFF)
        len--;
    if (len == 0)
        return -1;
    memmove(out, k, len);
    out[len - 1]++;
    *out_len = len;
    return 0;
}

static int sq_arena_put(persistor_instance *inst, sq_qplan *p, const void *data, size_t len,
                        size_t *off)
{
    if (p->arena_used + len > inst->arena_cap) {
        size_t cap = (inst->arena_cap ? inst->arena_cap * 2 : 1024) + len;
        uint8_t *a = realloc(inst->arena, cap);
        if (a == NULL)
            return -1;
        inst->arena = a;
        inst->arena_cap = cap;
    }
    *off = p->arena_used;
    if (len > 0)
        memcpy(inst->arena + p->arena_used, data, len);
    p->arena_used += len;
    return 0;
}

/* [lo, hi) — hi NULL: the smallest string greater than every string that
 * starts with lo ("lo's successor"), or no bound if lo is all 0xFF. */
static int sq_add_range(persistor_instance *inst, sq_qplan *p, const uint8_t *lo, size_t lo_len,
                        const uint8_t *hi, size_t hi_len)
{
    sq_range *r = &p->ranges[p->n_ranges];
    uint8_t succ[1024];
    if (p->n_ranges == SQ_MAX_RANGES)
        return -1;
    r->open_hi = 0;
    r->probe0 = 0;
    if (hi == NULL) {
        if (lo_len > sizeof succ)
            return -1; /* a long bound: the caller falls back to a scan */
        r->open_hi = sq_succ(lo, lo_len, succ, &hi_len) != 0;
        hi = succ;
        if (r->open_hi)
            hi_len = 0;
    }
    if (sq_arena_put(inst, p, lo, lo_len, &r->lo) != 0 ||
        sq_arena_put(inst, p, hi, hi_len, &r->hi) != 0)
        return -1;
    r->lo_len = lo_len;
    r->hi_len = hi_len;
    p->n_ranges++;
    return 0;
}

static int sq_bytes_cmp(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    return c != 0 ? c : (an > bn) - (an < bn);
}

/* Sort by lower bound, merge overlaps, drop empties: disjoint ranges in
 * key order, so the union is read once and in order. */
static void sq_normalize(persistor_instance *inst, sq_qplan *p)
{
    const uint8_t *a = inst->arena;
    sq_range *r = p->ranges;
    for (size_t i = 1; i < p->n_ranges; i++)
        for (size_t j = i; j > 0 && sq_bytes_cmp(a + r[j].lo, r[j].lo_len, a + r[j - 1].lo,
                                                 r[j - 1].lo_len) < 0; j--) {
            sq_range t = r[j];
            r[j] = r[j - 1];
            r[j - 1] = t;
        }
    size_t out = 0;
    for (size_t i = 0; i < p->n_ranges; i++) {
        if (!r[i].open_hi &&
            sq_bytes_cmp(a + r[i].lo, r[i].lo_len, a + r[i].hi, r[i].hi_len) >= 0)
            continue; /* empty */
        sq_range *last = out > 0 ? &r[out - 1] : NULL;
        if (last != NULL && (last->open_hi || sq_bytes_cmp(a + r[i].lo, r[i].lo_len,
                                                            a + last->hi, last->hi_len) <= 0)) {
            if (!last->open_hi && (r[i].open_hi || sq_bytes_cmp(a + r[i].hi, r[i].hi_len,
                                                                 a + last->hi, last->hi_len) > 0)) {
                last->hi = r[i].hi;
                last->hi_len = r[i].hi_len;
                last->open_hi = r[i].open_hi;
            }
            last->probe0 = last->probe0 && r[i].probe0; /* still only level-0 probes? */
            continue;
        }
        r[out++] = r[i];
    }
    p->n_ranges = out;
}

/* Names of the fields in the small documents bound keys are built from. */
static const char *const sq_slot_names[SQ_MAX_LEVELS + 1] = {"0", "1", "2", "3", "4",
                                                             "5", "6", "7", "8"};

/* The key, under `ix`'s first `n` directions, of a document holding the
 * given values as fields "0".."n-1".  Into inst->keybuf. */
static int sq_key_of(persistor_instance *inst, const sq_index *ix, const bson_iter_t *const *vals,
                     uint32_t n)
{
    persistor_index_key keys[SQ_MAX_LEVELS + 1];
    persistor_index_spec spec = {"bound", keys, n, 0};
    bson_t doc;
    bson_init(&doc);
    int ok = 1;
    for (uint32_t j = 0; j < n && ok; j++) {
        keys[j].field = sq_slot_names[j];
        keys[j].direction = ix->spec->keys[j].direction;
        ok = bson_append_iter(&doc, sq_slot_names[j], -1, vals[j]);
    }
    int32_t rc = ok ? inst->host->index_key(&spec, bson_get_data(&doc), doc.len, &inst->keybuf)
                    : PERSISTOR_E_NOMEM;
    bson_destroy(&doc);
    return rc == PERSISTOR_OK ? 0 : -1;
}

/* The first key byte of null and of an array, asked of the host once
 * rather than assumed from its encoding. */
static int sq_learn_key_bytes(persistor_instance *inst)
{
    static const persistor_index_key key = {"a", 1};
    static const persistor_index_spec spec = {"probe", &key, 1, 0};
    if (inst->key_bytes_known)
        return 0;
    bson_t *doc = BCON_NEW("a", "[", "]");
    int32_t rc = doc ? inst->host->index_key(&spec, bson_get_data(doc), doc->len, &inst->keybuf)
                     : PERSISTOR_E_NOMEM;
    if (doc)
        bson_destroy(doc);
    if (rc != PERSISTOR_OK || inst->keybuf.len == 0)
        return -1;
    inst->array_byte = inst->keybuf.data[0];
    doc = BCON_NEW("a", BCON_NULL);
    rc = doc ? inst->host->index_key(&spec, bson_get_data(doc), doc->len, &inst->keybuf)
             : PERSISTOR_E_NOMEM;
    if (doc)
        bson_destroy(doc);
    if (rc != PERSISTOR_OK || inst->keybuf.len == 0)
        return -1;
    inst->null_byte = inst->keybuf.data[0];
    inst->key_bytes_known = 1;
    return 0;
}

/* Copy inst->keybuf plus one optional byte into `out` (cap 1 KiB). */
static int sq_take_key(persistor_instance *inst, uint8_t *out, size_t cap, size_t *len, int extra)
{
    if (inst->keybuf.len + 1 > cap)
        return -1;
    if (inst->keybuf.len > 0)
        memcpy(out, inst->keybuf.data, inst->keybuf.len);
    *len = inst->keybuf.len;
    if (extra >= 0)
        out[(*len)++] = (uint8_t)extra;
    return 0;
}

/* Ranges for: equality on ix's first `e` fields (conds[0..e)), and when
 * `ranged`, a range on field e.  -1: give up (the caller scans). */
static int sq_plan_index(persistor_instance *inst, sq_index *ix, const sq_cond *conds, uint32_t e,
                         int ranged, sq_qplan *p)
{
    const bson_iter_t *vals[SQ_MAX_LEVELS + 1];
    uint8_t q[1024], a[1024], b[1024];
    size_t q_len = 0, a_len, b_len;
    uint32_t levels = e + (ranged ? 1 : 0);
    p->kind = SQ_PLAN_INDEX;
    p->ix = ix;
    p->e = e;
    p->ranged = ranged;
    p->exact = 0;
    p->null_dotted_eq = 0;
    p->n_ranges = 0;
    p->arena_used = 0;
    if (sq_learn_key_bytes(inst) != 0)
        return -1;
    for (uint32_t j = 0; j < e; j++)
        vals[j] = &conds[j].eq;
    /* Arrays (and nulls, on dotted paths) at each level, after the exact
     * prefix of the levels before it.  Level 0's are the same for every
     * query on ix: marked, so sq_run can skip them while known empty. */
    for (uint32_t j = 0; j < levels; j++) {
        int desc = ix->spec->keys[j].direction < 0;
        if (sq_key_of(inst, ix, vals, j) != 0 ||
            sq_take_key(inst, a, sizeof a, &a_len,
                        desc ? (uint8_t)~inst->array_byte : inst->array_byte) != 0 ||
            sq_add_range(inst, p, a, a_len, NULL, 0) != 0)
            return -1;
        p->ranges[p->n_ranges - 1].probe0 = j == 0;
        if (strchr(ix->spec->keys[j].field, '.') != NULL) {
            if (sq_take_key(inst, a, sizeof a, &a_len,
                            desc ? (uint8_t)~inst->null_byte : inst->null_byte) != 0 ||
                sq_add_range(inst, p, a, a_len, NULL, 0) != 0)
                return -1;
            p->ranges[p->n_ranges - 1].probe0 = j == 0;
        }
    }
    if (sq_key_of(inst, ix, vals, e) != 0 || sq_take_key(inst, q, sizeof q, &q_len, -1) != 0 ||
        sq_arena_put(inst, p, q, q_len, &p->q) != 0)
        return -1;
    p->q_len = q_len;
    for (uint32_t j = 0; j < e; j++)
        if (BSON_ITER_HOLDS_NULL(&conds[j].eq) && strchr(ix->spec->keys[j].field, '.') != NULL)
            p->null_dotted_eq = 1;
    if (!ranged) {
        if (sq_add_range(inst, p, q, q_len, NULL, 0) != 0)
            return -1;
        sq_normalize(inst, p);
        return 0;
    }
    /* The range on field e, in key bytes.  With P a bound's key (prefix
     * included) and T the prefix plus the bound's type byte, ascending:
     * $gt [succ P, succ T)  $gte [P, succ T)  $lt [T, P)  $lte [T, succ P).
     * A descending field's bytes are complemented, so a lower bound of the
     * filter is an upper bound in key order and the formulas swap.  Two
     * bounds intersect. */
    const sq_cond *c = &conds[e];
    int desc = ix->spec->keys[e].direction < 0;
    sq_half h[2];
    size_t n_half = 0;
    for (int side = 0; side < 2; side++) { /* 0: $gt/$gte, 1: $lt/$lte */
        if (side == 0 ? !c->has_lo : !c->has_hi)
            continue;
        vals[e] = side == 0 ? &c->lo : &c->hi;
        int incl = side == 0 ? c->lo_incl : c->hi_incl;
        sq_half *x = &h[n_half++];
        if (sq_key_of(inst, ix, vals, e + 1) != 0 ||
            sq_take_key(inst, a, sizeof a, &a_len, -1) != 0 || a_len <= q_len)
            return -1;
        memcpy(b, a, q_len + 1); /* T */
        b_len = q_len + 1;
        if ((side == 0) != desc) { /* [P or succ P, succ T) */
            if (incl)
                memcpy(x->start, a, x->start_len = a_len);
            else if (sq_succ(a, a_len, x->start, &x->start_len) != 0)
                return -1; /* nothing above P: nothing to read */
            x->end_open = sq_succ(b, b_len, x->end, &x->end_len) != 0;
        } else { /* [T, succ P or P) */
            memcpy(x->start, b, x->start_len = b_len);
            x->end_open = 0;
            if (!incl)
                memcpy(x->end, a, x->end_len = a_len);
            else
                x->end_open = sq_succ(a, a_len, x->end, &x->end_len) != 0;
        }
    }
    sq_half *r = &h[0];
    if (n_half == 2) { /* intersect into h[0] */
        if (sq_bytes_cmp(h[1].start, h[1].start_len, r->start, r->start_len) > 0)
            memcpy(r->start, h[1].start, r->start_len = h[1].start_len);
        if (!h[1].end_open && (r->end_open || sq_bytes_cmp(h[1].end, h[1].end_len, r->end,
                                                            r->end_len) < 0)) {
            memcpy(r->end, h[1].end, r->end_len = h[1].end_len);
            r->end_open = 0;
        }
    }
    if (sq_add_range(inst, p, r->start, r->start_len, r->end_open ? NULL : r->end,
                     r->end_open ? 0 : r->end_len) != 0)
        return -1;
    sq_normalize(inst, p);
    return 0;
}

/* Is the filter exactly {f0: v0, ..., f(e-1): v(e-1)} on ix's first e
 * fields, distinct, each v a non-null pushable scalar (see the top of the
 * file)?  Each top-level key must be one of those fields, and there must be
 * e of them: each field has its condition (the plan found it), so each
 * appears once, and that element is the condition the plan pushed down. */
static int sq_exact_filter(const uint8_t *filter, uint32_t filter_len, const sq_index *ix,
                           uint32_t e)
{
    bson_t doc;
    bson_iter_t it;
    uint32_t n = 0;
    for (uint32_t j = 0; j < e; j++)
        for (uint32_t i = 0; i < j; i++)
            if (strcmp(ix->spec->keys[i].field, ix->spec->keys[j].field) == 0)
                return 0;
    if (e == 0 || !bson_init_static(&doc, filter, filter_len) || !bson_iter_init(&it, &doc))
        return 0;
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        uint32_t j = 0;
        while (j < e && strcmp(key, ix->spec->keys[j].field) != 0)
            j++;
        if (j == e || !sq_pushable(&it) || BSON_ITER_HOLDS_NULL(&it))
            return 0;
        n++;
    }
    return n == e;
}

/* Choose a plan for `filter`: _id, else the index whose leading fields the
 * filter pins best (equalities count twice, a trailing range once). */
void sq_plan_query(persistor_instance *inst, sq_collection *c, const uint8_t *filter,
                   uint32_t filter_len, sq_qplan *p)
{
    sq_cond conds[SQ_MAX_LEVELS + 1], id = {0};
    p->kind = SQ_PLAN_SCAN;
    p->exact = 0;
    p->null_dotted_eq = 0;
    if (filter == NULL || filter_len <= 5)
        return;
    sq_cond_scan(filter, filter_len, "_id", &id, 0);
    if (id.has_eq && BSON_ITER_HOLDS_UTF8(&id.eq)) {
        p->kind = SQ_PLAN_ID;
        p->id = bson_iter_utf8(&id.eq, &p->id_len);
        return;
    }
    sq_index *best = NULL;
    uint32_t best_score = 0, best_e = 0;
    int best_ranged = 0;
    for (uint32_t i = 0; i < c->spec->n_indexes; i++) {
        sq_index *ix = &c->indexes[i];
        uint32_t e = 0;
        int ranged = 0;
        while (e < ix->spec->n_keys && e < SQ_MAX_LEVELS) {
            sq_cond *k = &conds[0];
            memset(k, 0, sizeof *k);
            if (!sq_plain_path(ix->spec->keys[e].field))
                break;
            sq_cond_scan(filter, filter_len, ix->spec->keys[e].field, k, 0);
            if (k->has_eq) {
                e++;
                continue;
            }
            ranged = k->has_lo || k->has_hi;
            break;
        }
        uint32_t score = 2 * e + (uint32_t)ranged;
        if (score > best_score)
            best = ix, best_score = score, best_e = e, best_ranged = ranged;
    }
    if (best == NULL)
        return;
    /* Collect the chosen index's conditions for real. */
    for (uint32_t j = 0; j < best_e + (uint32_t)best_ranged; j++) {
        memset(&conds[j], 0, sizeof conds[j]);
        sq_cond_scan(filter, filter_len, best->spec->keys[j].field, &conds[j], 0);
    }
    if (sq_plan_index(inst, best, conds, best_e, best_ranged, p) != 0)
        p->kind = SQ_PLAN_SCAN;
    else if (!best_ranged)
        p->exact = sq_exact_filter(filter, filter_len, best, best_e);
}

int sq_in_prefix(const persistor_instance *inst, const sq_qplan *p, const uint8_t *key,
                 uint32_t key_len)
{
    return key_len >= p->q_len && (p->q_len == 0 || memcmp(key, inst->arena + p->q, p->q_len) == 0);
}

/* ---- running a plan -------------------------------------------------- */

static int sq_index_stmt(persistor_instance *inst, sq_collection *c, sq_index *ix, int open_hi,
                         sqlite3_stmt **out)
{
    sqlite3_stmt **slot = open_hi ? &ix->from : &ix->range;
    if (*slot == NULL) {
        char sql[1024];
        /* The SQL index on k also holds seq (the rowid): "ORDER BY k, seq"
         * is its own order, no sort step; k is read from it too. */
        snprintf(sql, sizeof sql,
                 open_hi ? "SELECT seq, doc, %s FROM %s WHERE %s >= ?1 ORDER BY %s, seq"
                         : "SELECT seq, doc, %s FROM %s WHERE %s >= ?1 AND %s < ?2 ORDER BY "
                           "%s, seq",
                 ix->column, c->table, ix->column, ix->column, ix->column);
        int rc = sq_prepare(inst, sql, slot);
        if (rc != SQLITE_OK)
            return rc;
    }
    *out = *slot;
    return SQLITE_OK;
}

/* Step `st` to the end (or until `take` stops), matching every row but
 * those an exact plan vouches for. */
static int32_t sq_drain(persistor_instance *inst, const sq_qplan *p, sqlite3_stmt *st,
                        const persistor_matcher *m, sq_take_fn take, void *ctx, int *stop,
                        int *sqlite_rc, size_t *seen)
{
    const persistor_host *host = inst->host;
    int keyed = p->kind == SQ_PLAN_INDEX;
    int rc;
    int32_t prc = PERSISTOR_OK;
    while (!*stop && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const uint8_t *doc = sqlite3_column_blob(st, 1);
        ++*seen;
        uint32_t len = (uint32_t)sqlite3_column_bytes(st, 1);
        const uint8_t *key = keyed ? sqlite3_column_blob(st, 2) : NULL;
        uint32_t key_len = keyed ? (uint32_t)sqlite3_column_bytes(st, 2) : 0;
        if (doc == NULL || len < 5)
            continue;
        if (!(p->exact && sq_in_prefix(inst, p, key, key_len)) && !host->matcher_match(m, doc, len))
            continue;
        prc = take(ctx, sqlite3_column_int64(st, 0), doc, len, key, key_len);
        if (prc != PERSISTOR_OK) {
            *stop = 1;
            break;
        }
    }
    if (!*stop && rc != SQLITE_DONE)
        *sqlite_rc = rc;
    sqlite3_reset(st);
    return prc == 1 ? PERSISTOR_OK : prc;
}

/* The data version of the file as of this connection's last transaction:
 * it changes with every commit, ours or another process's.  0 if unknown. */
static uint32_t sq_data_version(persistor_instance *inst)
{
    unsigned int v = 0;
    if (sqlite3_file_control(inst->db, "main", SQLITE_FCNTL_DATA_VERSION, &v) != SQLITE_OK)
        return 0;
    return v;
}

/* Read an index plan's ranges: every range but the level-0 probes (the keys
 * of documents whose first field is an array, or null on a dotted path), in
 * key order; then the probes, unless they were found empty in the very
 * state of the file the other ranges were just read in — the data version
 * seen after their statement equals the one seen after an empty probe,
 * so no commit came between.  (Reading the probes last changes the order
 * rows arrive in; sqlite_cursor.c checks the order it relies on.) */
static int32_t sq_run_ranges(persistor_instance *inst, sq_collection *c, const sq_qplan *p,
                             const persistor_matcher *m, sq_take_fn take, void *ctx, int *rc)
{
    sq_index *ix = p->ix;
    int stop = 0, stepped = 0;
    int32_t prc = PERSISTOR_OK;
    sqlite3_stmt *st;
    for (int probes = 0; probes < 2; probes++) {
        size_t seen = 0, ran = 0;
        if (probes) {
            uint32_t v = stepped ? sq_data_version(inst) : 0;
            if (ix->probe0_clean && v != 0 && v == ix->probe0_version)
                break;
        }
        for (size_t i = 0; i < p->n_ranges && prc == PERSISTOR_OK && !stop && *rc == SQLITE_OK;
             i++) {
            const sq_range *r = &p->ranges[i];
            if (r->probe0 != probes)
                continue;
            if ((*rc = sq_index_stmt(inst, c, ix, r->open_hi, &st)) != SQLITE_OK)
                break;
            sqlite3_bind_blob(st, 1, inst->arena + r->lo, (int)r->lo_len, SQLITE_STATIC);
            if (!r->open_hi)
                sqlite3_bind_blob(st, 2, inst->arena + r->hi, (int)r->hi_len, SQLITE_STATIC);
            prc = sq_drain(inst, p, st, m, take, ctx, &stop, rc, &seen);
            stepped = 1, ran++;
        }
        if (probes && ran > 0 && prc == PERSISTOR_OK && !stop && *rc == SQLITE_OK) {
            ix->probe0_version = sq_data_version(inst);
            ix->probe0_clean = seen == 0 && ix->probe0_version != 0;
        }
    }
    return prc;
}

int32_t sq_run(persistor_instance *inst, sq_collection *c, const sq_qplan *p,
               const persistor_matcher *m, sq_take_fn take, void *ctx, persistor_error *err)
{
    int stop = 0, rc = SQLITE_OK;
    int32_t prc = PERSISTOR_OK;
    size_t seen = 0;
    sqlite3_stmt *st;
    switch (p->kind) {
    case SQ_PLAN_ID:
        st = c->st[SQ_ST_GET];
        sqlite3_bind_text(st, 1, p->id, (int)p->id_len, SQLITE_STATIC);
        /* The GET statement returns only doc: read it here. */
        if ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const uint8_t *doc = sqlite3_column_blob(st, 0);
            uint32_t len = (uint32_t)sqlite3_column_bytes(st, 0);
            if (doc != NULL && len >= 5 && inst->host->matcher_match(m, doc, len)) {
                prc = take(ctx, 0, doc, len, NULL, 0);
                prc = prc == 1 ? PERSISTOR_OK : prc;
            }
            rc = SQLITE_DONE;
        }
        sqlite3_reset(st);
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
        break;
    case SQ_PLAN_INDEX:
        prc = sq_run_ranges(inst, c, p, m, take, ctx, &rc);
        break;
    default:
        prc = sq_drain(inst, p, c->st[SQ_ST_SCAN], m, take, ctx, &stop, &rc, &seen);
        break;
    }
    if (rc != SQLITE_OK)
        return sq_error(inst, rc, err, "%s: query", c->spec->name);
    if (prc < 0)
        return inst->host->error_set(err, prc, "%s: out of memory reading a query's answer",
                                     c->spec->name);
    return PERSISTOR_OK;
}
