/*
 * query.c — the query language: filters, sort orders, index keys.
 *
 * One implementation of a MongoDB subset, shared by every adapter that has
 * no query engine of its own (memory, sqlite, lmdb), so that they answer a
 * query the way MongoDB would for the types we store.  It reads BSON with
 * libbson's iterators and owns only the compiled filter and sort trees.
 *
 * It must not do I/O, keep global state or trust its input.  Documents come
 * from stores that may be damaged: a malformed one never matches and never
 * makes us read out of bounds.  Nesting is bounded (QUERY_MAX_DEPTH) so a
 * hostile filter or document cannot exhaust the stack.  Where we differ
 * from MongoDB, docs/ABI.md says how.
 */
#include "query.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "error.h"

/* MongoDB refuses documents nested deeper than 100 levels; so do we. */
#define QUERY_MAX_DEPTH 100

#define SIGN_BIT 0x8000000000000000ull

/* ------------------------------------------------------------------------
 * Canonical type order.  The rank doubles as the type byte of index keys,
 * so it must stay dense, ordered and non-zero (0 ends a key's container).
 * --------------------------------------------------------------------- */

enum {
    RANK_MINKEY = 1,
    RANK_EMPTY_ARRAY = 2, /* sort only: an empty array sorts below null */
    RANK_NULL = 3,
    RANK_NUMBER = 4,
    RANK_STRING = 5,
    RANK_DOCUMENT = 6,
    RANK_ARRAY = 7,
    RANK_BINARY = 8,
    RANK_OID = 9,
    RANK_BOOL = 10,
    RANK_DATE = 11,
    RANK_TIMESTAMP = 12,
    RANK_REGEX = 13,
    RANK_DBPOINTER = 14,
    RANK_CODE = 15,
    RANK_CODEWSCOPE = 16,
    RANK_MAXKEY = 17,
};

static int type_rank(bson_type_t t)
{
    switch (t) {
    case BSON_TYPE_MINKEY: return RANK_MINKEY;
    case BSON_TYPE_EOD:
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED: return RANK_NULL;
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DECIMAL128: return RANK_NUMBER;
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL: return RANK_STRING;
    case BSON_TYPE_DOCUMENT: return RANK_DOCUMENT;
    case BSON_TYPE_ARRAY: return RANK_ARRAY;
    case BSON_TYPE_BINARY: return RANK_BINARY;
    case BSON_TYPE_OID: return RANK_OID;
    case BSON_TYPE_BOOL: return RANK_BOOL;
    case BSON_TYPE_DATE_TIME: return RANK_DATE;
    case BSON_TYPE_TIMESTAMP: return RANK_TIMESTAMP;
    case BSON_TYPE_REGEX: return RANK_REGEX;
    case BSON_TYPE_DBPOINTER: return RANK_DBPOINTER;
    case BSON_TYPE_CODE: return RANK_CODE;
    case BSON_TYPE_CODEWSCOPE: return RANK_CODEWSCOPE;
    case BSON_TYPE_MAXKEY:
    default: return RANK_MAXKEY;
    }
}

static const char *type_name(bson_type_t t)
{
    switch (type_rank(t)) {
    case RANK_NULL: return "null";
    case RANK_NUMBER: return "a number";
    case RANK_STRING: return "a string";
    case RANK_DOCUMENT: return "a document";
    case RANK_ARRAY: return "an array";
    case RANK_BOOL: return "a boolean";
    case RANK_DATE: return "a date";
    default: return "a value of another type";
    }
}

/* Bytewise, a proper prefix first: binary collation. */
static int bytes_compare(const void *a, size_t an, const void *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return (an > bn) - (an < bn);
}

/* ------------------------------------------------------------------------
 * Numbers: exact comparison across int32, int64 and double
 * --------------------------------------------------------------------- */

typedef struct qnum {
    bool is_int;
    int64_t i;
    double d;
} qnum;

static qnum num_of(const bson_iter_t *it)
{
    qnum n = {false, 0, 0.0};
    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32: n.is_int = true; n.i = bson_iter_int32(it); break;
    case BSON_TYPE_INT64: n.is_int = true; n.i = bson_iter_int64(it); break;
    case BSON_TYPE_DOUBLE: n.d = bson_iter_double(it); break;
    case BSON_TYPE_DECIMAL128: {
        /* No exact decimal arithmetic here: decimals compare as doubles. */
        bson_decimal128_t dec;
        char text[BSON_DECIMAL128_STRING];
        if (bson_iter_decimal128(it, &dec)) {
            bson_decimal128_to_string(&dec, text);
            n.d = strtod(text, NULL);
        }
        break;
    }
    default: break;
    }
    return n;
}

static bool num_is_nan(qnum n)
{
    return !n.is_int && isnan(n.d);
}

/* int64 against double without rounding the int64 through a double. */
static int int_double_compare(int64_t i, double d)
{
    if (isnan(d))
        return 1; /* NaN sorts below every number */
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    int64_t t = (int64_t)d; /* in range: truncation is exact */
    if (i != t)
        return i < t ? -1 : 1;
    double frac = d - (double)t;
    return (frac < 0) - (frac > 0);
}

static int num_compare(qnum a, qnum b)
{
    if (a.is_int && b.is_int)
        return (a.i > b.i) - (a.i < b.i);
    if (a.is_int)
        return int_double_compare(a.i, b.d);
    if (b.is_int)
        return -int_double_compare(b.i, a.d);
    if (isnan(a.d) || isnan(b.d))
        return (int)!isnan(a.d) - (int)!isnan(b.d);
    return (a.d > b.d) - (a.d < b.d);
}

/* ------------------------------------------------------------------------
 * query_value_compare: MongoDB's total order over BSON values
 * --------------------------------------------------------------------- */

static int compare_at(const bson_iter_t *a, const bson_iter_t *b, int depth);

static int string_compare(const bson_iter_t *a, const bson_iter_t *b)
{
    uint32_t an = 0, bn = 0;
    const char *as = BSON_ITER_HOLDS_SYMBOL(a) ? bson_iter_symbol(a, &an) : bson_iter_utf8(a, &an);
    const char *bs = BSON_ITER_HOLDS_SYMBOL(b) ? bson_iter_symbol(b, &bn) : bson_iter_utf8(b, &bn);
    return bytes_compare(as, an, bs, bn);
}

/* Documents: element by element (type, then name, then value), a shorter
 * one first.  Arrays the same, without names.  An unreadable child reads
 * as empty, which keeps the order total on damaged input. */
static int container_compare(const bson_iter_t *a, const bson_iter_t *b, int depth)
{
    if (depth >= QUERY_MAX_DEPTH)
        return 0;
    bool is_doc = BSON_ITER_HOLDS_DOCUMENT(a);
    bson_iter_t ca, cb;
    bool oka = bson_iter_recurse(a, &ca);
    bool okb = bson_iter_recurse(b, &cb);
    for (;;) {
        bool na = oka && bson_iter_next(&ca);
        bool nb = okb && bson_iter_next(&cb);
        if (!na || !nb)
            return (int)na - (int)nb;
        if (is_doc) {
            int ra = type_rank(bson_iter_type(&ca)), rb = type_rank(bson_iter_type(&cb));
            if (ra != rb)
                return ra < rb ? -1 : 1;
            int k = strcmp(bson_iter_key(&ca), bson_iter_key(&cb));
            if (k != 0)
                return k < 0 ? -1 : 1;
        }
        int c = compare_at(&ca, &cb, depth + 1);
        if (c != 0)
            return c;
    }
}

/* Length first, then subtype, then bytes, as MongoDB orders BinData. */
static int binary_compare(const bson_iter_t *a, const bson_iter_t *b)
{
    bson_subtype_t sa, sb;
    uint32_t an = 0, bn = 0;
    const uint8_t *ad = NULL, *bd = NULL;
    bson_iter_binary(a, &sa, &an, &ad);
    bson_iter_binary(b, &sb, &bn, &bd);
    if (an != bn)
        return an < bn ? -1 : 1;
    if (sa != sb)
        return sa < sb ? -1 : 1;
    return an ? bytes_compare(ad, an, bd, bn) : 0;
}

static int misc_compare(const bson_iter_t *a, const bson_iter_t *b)
{
    switch (bson_iter_type(a)) {
    case BSON_TYPE_OID: return bytes_compare(bson_iter_oid(a), 12, bson_iter_oid(b), 12);
    case BSON_TYPE_TIMESTAMP: {
        uint32_t at, ai, bt, bi;
        bson_iter_timestamp(a, &at, &ai);
        bson_iter_timestamp(b, &bt, &bi);
        if (at != bt)
            return at < bt ? -1 : 1;
        return (ai > bi) - (ai < bi);
    }
    case BSON_TYPE_REGEX: {
        const char *ao, *bo;
        const char *ap = bson_iter_regex(a, &ao), *bp = bson_iter_regex(b, &bo);
        int c = bytes_compare(ap, strlen(ap), bp, strlen(bp));
        return c != 0 ? c : bytes_compare(ao, strlen(ao), bo, strlen(bo));
    }
    case BSON_TYPE_DBPOINTER: {
        uint32_t an, bn;
        const char *ac, *bc;
        const bson_oid_t *ao, *bo;
        bson_iter_dbpointer(a, &an, &ac, &ao);
        bson_iter_dbpointer(b, &bn, &bc, &bo);
        int c = bytes_compare(ac, an, bc, bn);
        return c != 0 ? c : bytes_compare(ao, 12, bo, 12);
    }
    case BSON_TYPE_CODE: {
        uint32_t an, bn;
        const char *ac = bson_iter_code(a, &an), *bc = bson_iter_code(b, &bn);
        return bytes_compare(ac, an, bc, bn);
    }
    case BSON_TYPE_CODEWSCOPE: {
        /* Code, then the scope's raw bytes: a rare type, kept simple. */
        uint32_t an, bn, asl, bsl;
        const uint8_t *as, *bs;
        const char *ac = bson_iter_codewscope(a, &an, &asl, &as);
        const char *bc = bson_iter_codewscope(b, &bn, &bsl, &bs);
        int c = bytes_compare(ac, an, bc, bn);
        return c != 0 ? c : bytes_compare(as, asl, bs, bsl);
    }
    default: return 0; /* null, undefined, MinKey, MaxKey */
    }
}

static int compare_at(const bson_iter_t *a, const bson_iter_t *b, int depth)
{
    int ra = type_rank(bson_iter_type(a)), rb = type_rank(bson_iter_type(b));
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (ra) {
    case RANK_NUMBER: return num_compare(num_of(a), num_of(b));
    case RANK_STRING: return string_compare(a, b);
    case RANK_DOCUMENT:
    case RANK_ARRAY: return container_compare(a, b, depth);
    case RANK_BINARY: return binary_compare(a, b);
    case RANK_BOOL: return (int)bson_iter_bool(a) - (int)bson_iter_bool(b);
    case RANK_DATE: {
        int64_t da = bson_iter_date_time(a), db = bson_iter_date_time(b);
        return (da > db) - (da < db);
    }
    default: return misc_compare(a, b);
    }
}

int query_value_compare(const bson_iter_t *a, const bson_iter_t *b)
{
    return compare_at(a, b, 0);
}

/* ------------------------------------------------------------------------
 * Documents: validation and path traversal
 * --------------------------------------------------------------------- */

/* Read every element, so that damage anywhere is found before we answer.
 * Below QUERY_MAX_DEPTH we stop descending and set *too_deep: nothing in
 * this file ever reads deeper. */
static bool iter_valid(bson_iter_t *it, int depth, bool *too_deep)
{
    while (bson_iter_next(it)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(it) && !BSON_ITER_HOLDS_ARRAY(it))
            continue;
        if (depth + 1 >= QUERY_MAX_DEPTH) {
            *too_deep = true;
            continue;
        }
        bson_iter_t child;
        if (!bson_iter_recurse(it, &child) || !iter_valid(&child, depth + 1, too_deep))
            return false;
    }
    return it->err_off == 0;
}

static bool doc_open(bson_t *b, const uint8_t *data, uint32_t len, bool *too_deep)
{
    if (data == NULL || !bson_init_static(b, data, len))
        return false;
    bson_iter_t it;
    bool deep = false;
    if (!bson_iter_init(&it, b) || !iter_valid(&it, 0, &deep))
        return false;
    if (too_deep != NULL)
        *too_deep = deep;
    return true;
}

/* Length of the path component at `comp`, and where the next one starts
 * (NULL after the last). */
static size_t comp_len(const char *comp, const char **next)
{
    size_t n = strcspn(comp, ".");
    *next = comp[n] == '.' ? comp + n + 1 : NULL;
    return n;
}

/* Array indexes are canonical decimals ("0", "12", never "01"). */
static bool comp_index(const char *comp, size_t n, uint32_t *index)
{
    if (n == 0 || n > 9 || (n > 1 && comp[0] == '0'))
        return false;
    uint32_t v = 0;
    for (size_t k = 0; k < n; k++) {
        if (comp[k] < '0' || comp[k] > '9')
            return false;
        v = v * 10 + (uint32_t)(comp[k] - '0');
    }
    *index = v;
    return true;
}

static bool find_key(bson_iter_t *it, const char *comp, size_t n)
{
    while (bson_iter_next(it)) {
        const char *key = bson_iter_key(it);
        if (strncmp(key, comp, n) == 0 && key[n] == '\0')
            return true;
    }
    return false;
}

static bool find_index(bson_iter_t *it, uint32_t index)
{
    for (uint32_t i = 0; bson_iter_next(it); i++)
        if (i == index)
            return true;
    return false;
}

static size_t path_depth(const char *path)
{
    size_t n = 1;
    for (; *path; path++)
        n += *path == '.';
    return n;
}

/* One value at a dotted path, without array expansion: documents by field
 * name, arrays by numeric index only.  Used by index keys and TTL. */
static bool path_lookup(const bson_t *doc, const char *path, bson_iter_t *out)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, doc))
        return false;
    for (const char *comp = path; comp != NULL;) {
        const char *next;
        size_t n = comp_len(comp, &next);
        if (!find_key(&it, comp, n))
            return false;
        if (next == NULL)
            break;
        uint32_t index;
        bool is_array = BSON_ITER_HOLDS_ARRAY(&it);
        if (!(BSON_ITER_HOLDS_DOCUMENT(&it) || is_array) || !bson_iter_recurse(&it, &it))
            return false;
        comp = next;
        if (is_array) {
            const char *after;
            n = comp_len(comp, &after);
            if (!comp_index(comp, n, &index) || !find_index(&it, index))
                return false;
            if (after == NULL)
                break;
            if (!BSON_ITER_HOLDS_DOCUMENT(&it) || !bson_iter_recurse(&it, &it))
                return false;
            comp = after;
        }
    }
    *out = it;
    return true;
}

/*
 * The values a path reaches, MongoDB-style.  Arrays met on the way fan
 * out: "a.b" visits the "b" of every document in array "a", and "a.0" also
 * visits element 0.  A branch that ends before the path does (a missing
 * field, a scalar, an array holding no documents) visits MISSING.  At the
 * end of the path an array visits itself and then each element when
 * matching; when sorting it visits only its elements (EMPTY if none).
 */
enum cand_kind { CAND_VALUE, CAND_MISSING, CAND_EMPTY };

typedef struct cand {
    enum cand_kind kind;
    bson_iter_t it;
} cand;

struct qnode;
struct sort_pick;

typedef struct walk walk;
struct walk {
    bool sorting;
    bool (*visit)(const walk *w, const cand *c); /* true: stop, found */
    const struct qnode *node;
    struct sort_pick *pick;
};

static bool walk_doc(const walk *w, bson_iter_t *doc, const char *comp);

static bool visit_missing(const walk *w)
{
    cand c = {.kind = CAND_MISSING};
    return w->visit(w, &c);
}

static bool visit_leaf(const walk *w, const bson_iter_t *it)
{
    cand c = {.kind = CAND_VALUE, .it = *it};
    if (!BSON_ITER_HOLDS_ARRAY(it))
        return w->visit(w, &c);
    if (!w->sorting && w->visit(w, &c))
        return true;
    bson_iter_t el;
    bool any = false;
    if (bson_iter_recurse(it, &el)) {
        while (bson_iter_next(&el)) {
            cand e = {.kind = CAND_VALUE, .it = el};
            any = true;
            if (w->visit(w, &e))
                return true;
        }
    }
    if (w->sorting && !any) {
        cand e = {.kind = CAND_EMPTY};
        return w->visit(w, &e);
    }
    return false;
}

static bool walk_found(const walk *w, const bson_iter_t *it, const char *rest);

static bool walk_array(const walk *w, const bson_iter_t *arr, const char *comp)
{
    const char *next;
    size_t n = comp_len(comp, &next);
    uint32_t index = 0;
    bool numeric = comp_index(comp, n, &index);
    bool any = false;
    bson_iter_t el, child;
    if (!bson_iter_recurse(arr, &el))
        return visit_missing(w);
    for (uint32_t i = 0; bson_iter_next(&el); i++) {
        if (numeric && i == index) {
            any = true;
            if (walk_found(w, &el, next))
                return true;
        }
        if (BSON_ITER_HOLDS_DOCUMENT(&el) && bson_iter_recurse(&el, &child)) {
            any = true;
            if (walk_doc(w, &child, comp))
                return true;
        }
    }
    return any ? false : visit_missing(w);
}

static bool walk_found(const walk *w, const bson_iter_t *it, const char *rest)
{
    if (rest == NULL)
        return visit_leaf(w, it);
    if (BSON_ITER_HOLDS_ARRAY(it))
        return walk_array(w, it, rest);
    bson_iter_t child;
    if (BSON_ITER_HOLDS_DOCUMENT(it) && bson_iter_recurse(it, &child))
        return walk_doc(w, &child, rest);
    return visit_missing(w);
}

static bool walk_doc(const walk *w, bson_iter_t *doc, const char *comp)
{
    const char *next;
    size_t n = comp_len(comp, &next);
    if (!find_key(doc, comp, n))
        return visit_missing(w);
    return walk_found(w, doc, next);
}

static bool walk_path(const walk *w, const bson_t *doc, const char *path)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, doc))
        return visit_missing(w);
    return walk_doc(w, &it, path);
}

/* Candidates order like values; MISSING is null, EMPTY just below it. */
static int cand_rank(const cand *c)
{
    if (c->kind == CAND_MISSING)
        return RANK_NULL;
    if (c->kind == CAND_EMPTY)
        return RANK_EMPTY_ARRAY;
    return type_rank(bson_iter_type(&c->it));
}

static int cand_compare(const cand *a, const cand *b)
{
    int ra = cand_rank(a), rb = cand_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (a->kind != CAND_VALUE || b->kind != CAND_VALUE)
        return 0;
    return compare_at(&a->it, &b->it, 0);
}

static bool cand_equals(const cand *c, const bson_iter_t *v)
{
    cand o = {.kind = CAND_VALUE, .it = *v};
    return cand_compare(c, &o) == 0;
}

/* ------------------------------------------------------------------------
 * Filters: compiled to a tree of AND / OR / leaf nodes
 * --------------------------------------------------------------------- */

enum qop { OP_AND, OP_OR, OP_EQ, OP_NE, OP_GT, OP_GTE, OP_LT, OP_LTE, OP_IN, OP_NIN, OP_EXISTS };

static const struct {
    const char *name;
    enum qop op;
} OPERATORS[] = {
    {"$eq", OP_EQ}, {"$ne", OP_NE},   {"$gt", OP_GT},   {"$gte", OP_GTE},       {"$lt", OP_LT},
    {"$lte", OP_LTE}, {"$in", OP_IN}, {"$nin", OP_NIN}, {"$exists", OP_EXISTS},
};

/* Where an operand lives, saved the way libbson documents (data, offset,
 * key length) rather than as a bson_iter_t: that type is aligned to 128
 * bytes, which malloc does not promise. */
struct qvalue {
    const uint8_t *doc; /* the document holding it, in the filter copy */
    uint32_t doc_len, off, keylen;
};

struct qnode {
    enum qop op;
    const char *path;     /* leaves; points into the matcher's filter copy */
    struct qvalue operand; /* leaves */
    bool exists;         /* OP_EXISTS: the wanted answer */
    struct qnode *kids;  /* OP_AND, OP_OR */
    uint32_t n_kids, cap_kids;
};

struct persistor_matcher {
    uint8_t *filter; /* our copy: every path and operand points into it */
    struct qnode root;
};

static void node_clear(struct qnode *n)
{
    for (uint32_t i = 0; i < n->n_kids; i++)
        node_clear(&n->kids[i]);
    free(n->kids);
}

static struct qnode *node_add(struct qnode *parent, enum qop op, persistor_error *err)
{
    if (parent->n_kids == parent->cap_kids) {
        uint32_t cap = parent->cap_kids ? parent->cap_kids * 2 : 4;
        struct qnode *kids = realloc(parent->kids, cap * sizeof *kids);
        if (kids == NULL) {
            error_set(err, PERSISTOR_E_NOMEM, "out of memory compiling a query filter");
            return NULL;
        }
        parent->kids = kids;
        parent->cap_kids = cap;
    }
    struct qnode *k = &parent->kids[parent->n_kids++];
    memset(k, 0, sizeof *k);
    k->op = op;
    return k;
}

static int32_t compile_doc(struct qnode *and_node, const uint8_t *doc, uint32_t len, int depth,
                           persistor_error *err);

static void value_load(const struct qvalue *v, bson_iter_t *it)
{
    bson_iter_init_from_data_at_offset(it, v->doc, v->doc_len, v->off, v->keylen);
}

/* `operand` is an element of the document `doc`/`len`. */
static int32_t add_leaf(struct qnode *and_node, enum qop op, const char *path,
                        bson_iter_t *operand, const uint8_t *doc, uint32_t len,
                        persistor_error *err)
{
    if (path_depth(path) > QUERY_MAX_DEPTH)
        return error_set(err, PERSISTOR_E_INVALID,
                         "query path '%.64s...' has more than %d components", path,
                         QUERY_MAX_DEPTH);
    struct qnode *leaf = node_add(and_node, op, err);
    if (leaf == NULL)
        return PERSISTOR_E_NOMEM;
    leaf->path = path;
    leaf->operand = (struct qvalue){doc, len, bson_iter_offset(operand),
                                    bson_iter_key_len(operand)};
    leaf->exists = op == OP_EXISTS && bson_iter_as_bool(operand);
    return PERSISTOR_OK;
}

/* $in and $nin: an array of plain values.  A regular expression in it
 * would ask for pattern matching, which we do not do. */
static int32_t check_in_operand(const char *op, const char *path, const bson_iter_t *v,
                                persistor_error *err)
{
    bson_iter_t el;
    if (!BSON_ITER_HOLDS_ARRAY(v) || !bson_iter_recurse(v, &el))
        return error_set(err, PERSISTOR_E_INVALID, "%s at '%s' needs an array, got %s", op,
                         path, type_name(bson_iter_type(v)));
    while (bson_iter_next(&el))
        if (BSON_ITER_HOLDS_REGEX(&el))
            return error_set(err, PERSISTOR_E_INVALID,
                             "unsupported query operator $regex (a regular expression in %s) "
                             "at '%s'",
                             op, path);
    return PERSISTOR_OK;
}

static int32_t compile_operator(struct qnode *and_node, const char *path, bson_iter_t *v,
                                const uint8_t *ops, uint32_t ops_len, persistor_error *err)
{
    const char *name = bson_iter_key(v);
    for (size_t i = 0; i < sizeof OPERATORS / sizeof OPERATORS[0]; i++) {
        if (strcmp(name, OPERATORS[i].name) != 0)
            continue;
        enum qop op = OPERATORS[i].op;
        if (op == OP_IN || op == OP_NIN) {
            int32_t rc = check_in_operand(name, path, v, err);
            if (rc != PERSISTOR_OK)
                return rc;
        }
        return add_leaf(and_node, op, path, v, ops, ops_len, err);
    }
    return error_set(err, PERSISTOR_E_INVALID, "unsupported query operator %s at '%s'", name,
                     path);
}

/* {path: value}: equality, or an object of operators when its first key
 * starts with '$'.  Either way every key must agree with the first. */
static int32_t compile_field(struct qnode *and_node, const char *path, bson_iter_t *v,
                             const uint8_t *doc, uint32_t len, persistor_error *err)
{
    if (BSON_ITER_HOLDS_REGEX(v))
        return error_set(err, PERSISTOR_E_INVALID,
                         "unsupported query operator $regex (a regular expression value) at "
                         "'%s'",
                         path);
    bson_iter_t ops;
    uint32_t ops_len = 0;
    const uint8_t *ops_data = NULL;
    if (BSON_ITER_HOLDS_DOCUMENT(v))
        bson_iter_document(v, &ops_len, &ops_data);
    if (ops_data == NULL || !bson_iter_init_from_data(&ops, ops_data, ops_len) ||
        !bson_iter_next(&ops))
        return add_leaf(and_node, OP_EQ, path, v, doc, len, err);
    bool operators = bson_iter_key(&ops)[0] == '$';
    const char *first = bson_iter_key(&ops);
    do {
        const char *key = bson_iter_key(&ops);
        if ((key[0] == '$') != operators)
            return error_set(err, PERSISTOR_E_INVALID,
                             "the value of '%s' mixes operators and field names ('%s' and "
                             "'%s'); use {$eq: {...}} to match a literal document",
                             path, first, key);
        if (operators) {
            int32_t rc = compile_operator(and_node, path, &ops, ops_data, ops_len, err);
            if (rc != PERSISTOR_OK)
                return rc;
        }
    } while (bson_iter_next(&ops));
    return operators ? PERSISTOR_OK : add_leaf(and_node, OP_EQ, path, v, doc, len, err);
}

/* $and / $or: a non-empty array of filter documents. */
static int32_t compile_logical(struct qnode *and_node, const bson_iter_t *v, int depth,
                               persistor_error *err)
{
    const char *name = bson_iter_key(v);
    if (depth >= QUERY_MAX_DEPTH)
        return error_set(err, PERSISTOR_E_INVALID,
                         "query filter nests $and/$or deeper than %d levels", QUERY_MAX_DEPTH);
    bson_iter_t el;
    if (!BSON_ITER_HOLDS_ARRAY(v) || !bson_iter_recurse(v, &el))
        return error_set(err, PERSISTOR_E_INVALID,
                         "%s needs a non-empty array of documents, got %s", name,
                         type_name(bson_iter_type(v)));
    struct qnode *logical = node_add(and_node, strcmp(name, "$and") == 0 ? OP_AND : OP_OR, err);
    if (logical == NULL)
        return PERSISTOR_E_NOMEM;
    uint32_t i = 0;
    for (; bson_iter_next(&el); i++) {
        uint32_t sub_len = 0;
        const uint8_t *sub = NULL;
        if (BSON_ITER_HOLDS_DOCUMENT(&el))
            bson_iter_document(&el, &sub_len, &sub);
        if (sub == NULL)
            return error_set(err, PERSISTOR_E_INVALID,
                             "%s element %u must be a document, got %s", name, (unsigned)i,
                             type_name(bson_iter_type(&el)));
        struct qnode *branch = node_add(logical, OP_AND, err);
        if (branch == NULL)
            return PERSISTOR_E_NOMEM;
        int32_t rc = compile_doc(branch, sub, sub_len, depth + 1, err);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    if (i == 0)
        return error_set(err, PERSISTOR_E_INVALID, "%s needs a non-empty array of documents",
                         name);
    return PERSISTOR_OK;
}

static int32_t compile_doc(struct qnode *and_node, const uint8_t *doc, uint32_t len, int depth,
                           persistor_error *err)
{
    bson_iter_t it;
    if (!bson_iter_init_from_data(&it, doc, len))
        return error_set(err, PERSISTOR_E_INVALID, "query filter is not a valid BSON document");
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        int32_t rc;
        if (strcmp(key, "$and") == 0 || strcmp(key, "$or") == 0)
            rc = compile_logical(and_node, &it, depth, err);
        else if (key[0] == '$')
            rc = error_set(err, PERSISTOR_E_INVALID,
                           "unsupported query operator %s at the top level of the filter", key);
        else
            rc = compile_field(and_node, key, &it, doc, len, err);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    return PERSISTOR_OK;
}

int32_t query_matcher_new(const uint8_t *filter, uint32_t len, persistor_matcher **out,
                          persistor_error *err)
{
    *out = NULL;
    persistor_matcher *m = calloc(1, sizeof *m);
    if (m == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory compiling a query filter");
    m->root.op = OP_AND;
    if (filter == NULL || len == 0) {
        *out = m;
        return PERSISTOR_OK;
    }
    int32_t rc = PERSISTOR_E_NOMEM;
    m->filter = malloc(len);
    if (m->filter == NULL) {
        error_set(err, rc, "out of memory compiling a query filter");
        goto fail;
    }
    memcpy(m->filter, filter, len);
    bson_t b;
    bool too_deep = false;
    rc = PERSISTOR_E_INVALID;
    if (!doc_open(&b, m->filter, len, &too_deep)) {
        error_set(err, rc, "query filter is not a valid BSON document");
        goto fail;
    }
    if (too_deep) {
        error_set(err, rc, "query filter nests deeper than %d levels", QUERY_MAX_DEPTH);
        goto fail;
    }
    rc = compile_doc(&m->root, m->filter, len, 0, err);
    if (rc != PERSISTOR_OK)
        goto fail;
    *out = m;
    return PERSISTOR_OK;
fail:
    query_matcher_free(m);
    return rc;
}

void query_matcher_free(persistor_matcher *m)
{
    if (m == NULL)
        return;
    node_clear(&m->root);
    free(m->filter);
    free(m);
}

static bool cand_is_nan(const cand *c)
{
    return c->kind == CAND_VALUE && type_rank(bson_iter_type(&c->it)) == RANK_NUMBER &&
           num_is_nan(num_of(&c->it));
}

static bool visit_eq(const walk *w, const cand *c)
{
    bson_iter_t operand;
    value_load(&w->node->operand, &operand);
    return cand_equals(c, &operand);
}

/* Type bracketing: $gt 5 only looks at numbers.  NaN equals NaN but is
 * neither greater nor less than anything, as in MongoDB's matcher. */
static bool visit_cmp(const walk *w, const cand *c)
{
    cand o = {.kind = CAND_VALUE};
    value_load(&w->node->operand, &o.it);
    if (cand_rank(c) != cand_rank(&o))
        return false;
    enum qop op = w->node->op;
    if (cand_is_nan(c) || cand_is_nan(&o))
        return cand_is_nan(c) && cand_is_nan(&o) && (op == OP_GTE || op == OP_LTE);
    int r = cand_compare(c, &o);
    switch (op) {
    case OP_GT: return r > 0;
    case OP_GTE: return r >= 0;
    case OP_LT: return r < 0;
    default: return r <= 0;
    }
}

static bool visit_in(const walk *w, const cand *c)
{
    bson_iter_t operand, el;
    value_load(&w->node->operand, &operand);
    if (!bson_iter_recurse(&operand, &el))
        return false;
    while (bson_iter_next(&el))
        if (cand_equals(c, &el))
            return true;
    return false;
}

static bool visit_exists(const walk *w, const cand *c)
{
    return c->kind != CAND_MISSING;
}

static bool node_match(const struct qnode *n, const bson_t *doc);

static bool leaf_match(const struct qnode *n, const bson_t *doc)
{
    walk w = {.sorting = false, .node = n};
    switch (n->op) {
    case OP_EQ:
    case OP_NE: w.visit = visit_eq; break;
    case OP_IN:
    case OP_NIN: w.visit = visit_in; break;
    case OP_EXISTS: w.visit = visit_exists; break;
    default: w.visit = visit_cmp; break;
    }
    bool hit = walk_path(&w, doc, n->path);
    if (n->op == OP_NE || n->op == OP_NIN)
        return !hit;
    if (n->op == OP_EXISTS)
        return hit == n->exists;
    return hit;
}

static bool node_match(const struct qnode *n, const bson_t *doc)
{
    if (n->op != OP_AND && n->op != OP_OR)
        return leaf_match(n, doc);
    bool is_or = n->op == OP_OR;
    for (uint32_t i = 0; i < n->n_kids; i++)
        if (node_match(&n->kids[i], doc) == is_or)
            return is_or;
    return !is_or;
}

bool query_matcher_match(const persistor_matcher *m, const uint8_t *doc, uint32_t len)
{
    bson_t b;
    if (m == NULL || !doc_open(&b, doc, len, NULL))
        return false;
    return node_match(&m->root, &b);
}

/* ------------------------------------------------------------------------
 * Sort
 * --------------------------------------------------------------------- */

struct sort_key {
    const char *path; /* points into the sorter's spec copy */
    int dir;          /* 1 or -1 */
};

struct persistor_sorter {
    uint8_t *spec;
    struct sort_key *keys;
    uint32_t n_keys;
};

/* Exactly 1 or -1, as a number of any width; 0 for anything else. */
static int sort_direction(const bson_iter_t *v)
{
    if (type_rank(bson_iter_type(v)) != RANK_NUMBER || BSON_ITER_HOLDS_DECIMAL128(v))
        return 0;
    qnum n = num_of(v);
    double d = n.is_int ? (double)n.i : n.d;
    return d == 1.0 ? 1 : d == -1.0 ? -1 : 0;
}

static int32_t sort_compile(persistor_sorter *s, const bson_t *spec, persistor_error *err)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, spec))
        return error_set(err, PERSISTOR_E_INVALID, "sort is not a valid BSON document");
    uint32_t count = bson_count_keys(spec);
    s->keys = calloc(count ? count : 1, sizeof *s->keys);
    if (s->keys == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory compiling a sort");
    while (bson_iter_next(&it) && s->n_keys < count) {
        const char *path = bson_iter_key(&it);
        int dir = sort_direction(&it);
        if (dir == 0)
            return error_set(err, PERSISTOR_E_INVALID,
                             "sort direction for '%s' must be 1 or -1, got %s", path,
                             type_name(bson_iter_type(&it)));
        if (path[0] == '\0' || path[0] == '$' || path_depth(path) > QUERY_MAX_DEPTH)
            return error_set(err, PERSISTOR_E_INVALID, "sort field name '%s' is not a field path",
                             path);
        s->keys[s->n_keys++] = (struct sort_key){path, dir};
    }
    return PERSISTOR_OK;
}

int32_t query_sorter_new(const uint8_t *sort, uint32_t len, persistor_sorter **out,
                         persistor_error *err)
{
    *out = NULL;
    persistor_sorter *s = calloc(1, sizeof *s);
    if (s == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory compiling a sort");
    if (sort == NULL || len == 0) {
        *out = s;
        return PERSISTOR_OK;
    }
    int32_t rc = PERSISTOR_E_NOMEM;
    s->spec = malloc(len);
    if (s->spec == NULL) {
        error_set(err, rc, "out of memory compiling a sort");
        goto fail;
    }
    memcpy(s->spec, sort, len);
    bson_t b;
    bool too_deep = false;
    rc = PERSISTOR_E_INVALID;
    if (!doc_open(&b, s->spec, len, &too_deep)) {
        error_set(err, rc, "sort is not a valid BSON document");
        goto fail;
    }
    rc = sort_compile(s, &b, err);
    if (rc != PERSISTOR_OK)
        goto fail;
    *out = s;
    return PERSISTOR_OK;
fail:
    query_sorter_free(s);
    return rc;
}

void query_sorter_free(persistor_sorter *s)
{
    if (s == NULL)
        return;
    free(s->keys);
    free(s->spec);
    free(s);
}

/* The sort value of one field: the least value a path reaches when
 * ascending, the greatest when descending. */
struct sort_pick {
    int dir;
    bool have;
    cand best;
};

static bool visit_pick(const walk *w, const cand *c)
{
    struct sort_pick *p = w->pick;
    int r = p->have ? cand_compare(c, &p->best) : 0;
    if (!p->have || r * p->dir < 0) {
        p->best = *c;
        p->have = true;
    }
    return false;
}

static cand sort_value(const bson_t *doc, const struct sort_key *key)
{
    struct sort_pick pick = {.dir = key->dir, .best = {.kind = CAND_MISSING}};
    walk w = {.sorting = true, .visit = visit_pick, .pick = &pick};
    walk_path(&w, doc, key->path);
    return pick.best;
}

/* A document we cannot read sorts as an empty one: every field null. */
static void sort_doc(bson_t *b, const uint8_t *data, uint32_t len)
{
    if (data == NULL || !bson_init_static(b, data, len))
        bson_init(b); /* empty, static storage: nothing to destroy */
}

int query_sorter_compare(const persistor_sorter *s, const uint8_t *a, uint32_t a_len,
                         const uint8_t *b, uint32_t b_len)
{
    bson_t da, db;
    sort_doc(&da, a, a_len);
    sort_doc(&db, b, b_len);
    for (uint32_t i = 0; s != NULL && i < s->n_keys; i++) {
        cand va = sort_value(&da, &s->keys[i]);
        cand vb = sort_value(&db, &s->keys[i]);
        int c = cand_compare(&va, &vb);
        if (c != 0)
            return c * s->keys[i].dir;
    }
    return 0;
}

/* ------------------------------------------------------------------------
 * Index keys: bytes whose memcmp order is compare_at's order
 *
 * Each value is its rank byte and a payload that is prefix-free, so keys
 * compare field by field and a descending field can simply be complemented.
 * --------------------------------------------------------------------- */

static int32_t key_value(persistor_buffer *out, const bson_iter_t *it, int depth);
static int32_t key_payload(persistor_buffer *out, const bson_iter_t *it, int depth);

static int32_t key_u8(persistor_buffer *out, uint8_t b)
{
    return buffer_append(out, &b, 1);
}

static int32_t key_u64(persistor_buffer *out, uint64_t v)
{
    uint8_t be[8];
    for (int k = 7; k >= 0; k--, v >>= 8)
        be[k] = (uint8_t)v;
    return buffer_append(out, be, sizeof be);
}

/* 0x00 becomes 0x00 0xFF and 0x00 0x00 ends the string, so a prefix sorts
 * first and embedded NULs survive. */
static int32_t key_bytes(persistor_buffer *out, const void *data, size_t len)
{
    static const uint8_t nul[2] = {0x00, 0xFF}, end[2] = {0x00, 0x00};
    const uint8_t *p = data;
    int32_t rc = PERSISTOR_OK;
    while (rc == PERSISTOR_OK && len > 0) {
        const uint8_t *z = memchr(p, 0, len);
        size_t run = z ? (size_t)(z - p) : len;
        rc = buffer_append(out, p, (uint32_t)run);
        if (rc == PERSISTOR_OK && z != NULL)
            rc = buffer_append(out, nul, 2);
        run += z != NULL;
        p += run;
        len -= run;
    }
    return rc == PERSISTOR_OK ? buffer_append(out, end, 2) : rc;
}

/* A double as 8 bytes in numeric order: NaN lowest, -0.0 as 0.0. */
static uint64_t double_key(double d)
{
    if (isnan(d))
        return 0;
    if (d == 0)
        d = 0.0;
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return (u & SIGN_BIT) ? ~u : (u | SIGN_BIT);
}

/* Numbers: the nearest double, then the int64's exact distance from it
 * (0 for doubles), so 1 == 1LL == 1.0 and 2^53+1 > 2^53. */
static int32_t key_number(persistor_buffer *out, qnum n)
{
    double r = n.is_int ? (double)n.i : n.d;
    int64_t residual = 0;
    if (n.is_int) /* r may be 2^63, which no int64 holds */
        residual = r >= 9223372036854775808.0 ? (n.i - INT64_MAX) - 1 : n.i - (int64_t)r;
    int32_t rc = key_u64(out, double_key(r));
    return rc == PERSISTOR_OK ? key_u64(out, (uint64_t)residual ^ SIGN_BIT) : rc;
}

/* Elements then a 0 byte; every element starts with its non-zero rank.
 * A document element is rank, name, payload: compare_at's order. */
static int32_t key_container(persistor_buffer *out, const bson_iter_t *it, int depth)
{
    if (depth >= QUERY_MAX_DEPTH)
        return PERSISTOR_E_INVALID;
    bool is_doc = BSON_ITER_HOLDS_DOCUMENT(it);
    bson_iter_t el;
    if (!bson_iter_recurse(it, &el))
        return PERSISTOR_E_INVALID;
    while (bson_iter_next(&el)) {
        int32_t rc = key_u8(out, (uint8_t)type_rank(bson_iter_type(&el)));
        if (rc == PERSISTOR_OK && is_doc)
            rc = key_bytes(out, bson_iter_key(&el), strlen(bson_iter_key(&el)));
        if (rc == PERSISTOR_OK)
            rc = key_payload(out, &el, depth + 1);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    return el.err_off == 0 ? key_u8(out, 0) : PERSISTOR_E_INVALID;
}

/* Binary: length first, as binary_compare orders it. */
static int32_t key_binary(persistor_buffer *out, const bson_iter_t *it)
{
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    bson_iter_binary(it, &sub, &len, &data);
    int32_t rc = key_u64(out, ((uint64_t)len << 8) | (uint8_t)sub);
    return rc == PERSISTOR_OK ? buffer_append(out, data, len) : rc;
}

static int32_t key_misc(persistor_buffer *out, const bson_iter_t *it)
{
    uint32_t n = 0, scope_len = 0, t = 0, i = 0;
    const char *s, *opts;
    const uint8_t *scope;
    const bson_oid_t *oid;
    int32_t rc;
    switch (bson_iter_type(it)) {
    case BSON_TYPE_OID: return buffer_append(out, bson_iter_oid(it), 12);
    case BSON_TYPE_TIMESTAMP:
        bson_iter_timestamp(it, &t, &i);
        return key_u64(out, ((uint64_t)t << 32) | i);
    case BSON_TYPE_REGEX:
        s = bson_iter_regex(it, &opts);
        rc = key_bytes(out, s, strlen(s));
        return rc == PERSISTOR_OK ? key_bytes(out, opts, strlen(opts)) : rc;
    case BSON_TYPE_DBPOINTER:
        bson_iter_dbpointer(it, &n, &s, &oid);
        rc = key_bytes(out, s, n);
        return rc == PERSISTOR_OK ? buffer_append(out, oid, 12) : rc;
    case BSON_TYPE_CODE:
        s = bson_iter_code(it, &n);
        return key_bytes(out, s, n);
    case BSON_TYPE_CODEWSCOPE:
        s = bson_iter_codewscope(it, &n, &scope_len, &scope);
        rc = key_bytes(out, s, n);
        return rc == PERSISTOR_OK ? key_bytes(out, scope, scope_len) : rc;
    default: return PERSISTOR_OK; /* null, undefined, MinKey, MaxKey: rank alone */
    }
}

static int32_t key_payload(persistor_buffer *out, const bson_iter_t *it, int depth)
{
    uint32_t n = 0;
    const char *s;
    switch (type_rank(bson_iter_type(it))) {
    case RANK_NUMBER: return key_number(out, num_of(it));
    case RANK_STRING:
        s = BSON_ITER_HOLDS_SYMBOL(it) ? bson_iter_symbol(it, &n) : bson_iter_utf8(it, &n);
        return key_bytes(out, s, n);
    case RANK_DOCUMENT:
    case RANK_ARRAY: return key_container(out, it, depth);
    case RANK_BINARY: return key_binary(out, it);
    case RANK_BOOL: return key_u8(out, bson_iter_bool(it) ? 1 : 0);
    case RANK_DATE: return key_u64(out, (uint64_t)bson_iter_date_time(it) ^ SIGN_BIT);
    default: return key_misc(out, it);
    }
}

static int32_t key_value(persistor_buffer *out, const bson_iter_t *it, int depth)
{
    int32_t rc = key_u8(out, (uint8_t)type_rank(bson_iter_type(it)));
    return rc == PERSISTOR_OK ? key_payload(out, it, depth) : rc;
}

/* Arrays index as one value (no multikey), and a path does not fan out
 * through arrays of documents: "a.b" over an array "a" indexes as null. */
int32_t query_index_key(const persistor_index_spec *index, const uint8_t *doc, uint32_t len,
                        persistor_buffer *out)
{
    bson_t b;
    if (index == NULL || out == NULL || !doc_open(&b, doc, len, NULL))
        return PERSISTOR_E_INVALID;
    int32_t rc = buffer_set(out, NULL, 0);
    for (uint32_t k = 0; rc == PERSISTOR_OK && k < index->n_keys; k++) {
        const char *field = index->keys[k].field;
        if (field == NULL || path_depth(field) > QUERY_MAX_DEPTH)
            return PERSISTOR_E_INVALID;
        uint32_t start = out->len;
        bson_iter_t it;
        if (path_lookup(&b, field, &it))
            rc = key_value(out, &it, 0);
        else
            rc = key_u8(out, RANK_NULL);
        if (rc == PERSISTOR_OK && index->keys[k].direction < 0)
            for (uint32_t i = start; i < out->len; i++)
                out->data[i] = (uint8_t)~out->data[i];
    }
    return rc;
}

/* ------------------------------------------------------------------------
 * TTL
 * --------------------------------------------------------------------- */

int32_t query_doc_time_ms(const uint8_t *doc, uint32_t len, const char *path, int64_t *ms)
{
    bson_t b;
    bson_iter_t it;
    if (path == NULL || doc == NULL || !bson_init_static(&b, doc, len) ||
        !path_lookup(&b, path, &it))
        return PERSISTOR_NOT_FOUND;
    switch (bson_iter_type(&it)) {
    case BSON_TYPE_DATE_TIME: *ms = bson_iter_date_time(&it); return PERSISTOR_OK;
    case BSON_TYPE_INT32: *ms = bson_iter_int32(&it); return PERSISTOR_OK;
    case BSON_TYPE_INT64: *ms = bson_iter_int64(&it); return PERSISTOR_OK;
    case BSON_TYPE_DOUBLE: {
        double d = bson_iter_double(&it);
        if (!(d >= -9223372036854775808.0 && d < 9223372036854775808.0))
            return PERSISTOR_NOT_FOUND; /* NaN, infinities, out of range */
        *ms = (int64_t)d;
        return PERSISTOR_OK;
    }
    default: return PERSISTOR_NOT_FOUND;
    }
}
