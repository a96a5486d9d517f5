/*
 * query.c — the query language: paths, filters, sort orders, TTL dates.
 *
 * One implementation of a MongoDB subset, shared by every adapter that has
 * no query engine of its own (memory, sqlite, lmdb), so that they answer a
 * query the way MongoDB would for the types we store.  It reads BSON with
 * libbson's iterators and owns only the compiled filter and sort trees.
 * How two values order, and the index keys that keep that order, are
 * query_order.c's: this file decides which values to compare, never how,
 * so that filters, sorts and indexes cannot disagree.
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

#include "error.h"
#include "query_order.h"

/* ------------------------------------------------------------------------
 * Documents: validation and path traversal
 * --------------------------------------------------------------------- */

/* Read every element, so that damage anywhere is found before we answer.
 * Below QUERY_MAX_DEPTH we stop descending and set *too_deep: nothing in
 * query.c or query_order.c ever reads deeper. */
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

bool query_doc_open(bson_t *b, const uint8_t *data, uint32_t len, bool *too_deep)
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

bool query_doc_frame(bson_t *b, const uint8_t *data, uint32_t len)
{
    return data != NULL && bson_init_static(b, data, len);
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

size_t query_path_depth(const char *path)
{
    size_t n = 1;
    for (; *path; path++)
        n += *path == '.';
    return n;
}

/* Used by index keys (query_order.c) and TTL. */
bool query_path_lookup(const bson_t *doc, const char *path, bson_iter_t *out)
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
    return query_type_rank(bson_iter_type(&c->it));
}

static int cand_compare(const cand *a, const cand *b)
{
    int ra = cand_rank(a), rb = cand_rank(b);
    if (ra != rb)
        return ra < rb ? -1 : 1;
    if (a->kind != CAND_VALUE || b->kind != CAND_VALUE)
        return 0;
    return query_value_compare(&a->it, &b->it);
}

static bool cand_equals(const cand *c, const bson_iter_t *v)
{
    cand o = {.kind = CAND_VALUE, .it = *v};
    return cand_compare(c, &o) == 0;
}

static const char *type_name(bson_type_t t)
{
    switch (query_type_rank(t)) {
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
    if (query_path_depth(path) > QUERY_MAX_DEPTH)
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
    if (!query_doc_open(&b, m->filter, len, &too_deep)) {
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

static bool num_is_nan(qnum n)
{
    return !n.is_int && isnan(n.d);
}

static bool cand_is_nan(const cand *c)
{
    return c->kind == CAND_VALUE && query_type_rank(bson_iter_type(&c->it)) == RANK_NUMBER &&
           num_is_nan(query_num_of(&c->it));
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
    if (m == NULL || !query_doc_frame(&b, doc, len))
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
    if (query_type_rank(bson_iter_type(v)) != RANK_NUMBER || BSON_ITER_HOLDS_DECIMAL128(v))
        return 0;
    qnum n = query_num_of(v);
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
        if (path[0] == '\0' || path[0] == '$' || query_path_depth(path) > QUERY_MAX_DEPTH)
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
    if (!query_doc_open(&b, s->spec, len, &too_deep)) {
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
 * TTL
 * --------------------------------------------------------------------- */

/* MongoDB's TTL rule: only dates count, and an array expires by its
 * earliest date; anything else never expires. */
int32_t query_doc_time_ms(const uint8_t *doc, uint32_t len, const char *path, int64_t *ms)
{
    bson_t b;
    bson_iter_t it, item;
    if (path == NULL || doc == NULL || !bson_init_static(&b, doc, len) ||
        !query_path_lookup(&b, path, &it))
        return PERSISTOR_NOT_FOUND;
    if (BSON_ITER_HOLDS_DATE_TIME(&it)) {
        *ms = bson_iter_date_time(&it);
        return PERSISTOR_OK;
    }
    if (!BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &item))
        return PERSISTOR_NOT_FOUND;
    int32_t rc = PERSISTOR_NOT_FOUND;
    while (bson_iter_next(&item)) {
        if (!BSON_ITER_HOLDS_DATE_TIME(&item))
            continue;
        int64_t t = bson_iter_date_time(&item);
        if (rc == PERSISTOR_NOT_FOUND || t < *ms)
            *ms = t;
        rc = PERSISTOR_OK;
    }
    return rc;
}
