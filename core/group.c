/*
 * group.c — grouped counts from a stream of documents, with MongoDB's
 * answers: what the router returns for adapters without group_count.
 *
 * Three rules make it MongoDB's rather than ours:
 *   - the field path is an aggregation path ($group's "$a.b"), not a query
 *     path: no array indexes, and an array on the way maps over its
 *     document elements into a new array (group_eval);
 *   - two values are one group exactly when query_value_compare says they
 *     are equal, which is MongoDB's equality (1 == 1.0 == 1L), so groups
 *     live in an array kept in that order and found by binary search;
 *   - the answer is ordered the way {$sort: {_id: 1}} orders it, with the
 *     query language's own sorter (an array by its least element, an
 *     empty one before null); a stable merge sort of the value-ordered
 *     array leaves the groups that tie there in value order, adapter.h's
 *     tie rule.
 *
 * It must not read a document beyond what libbson's bounds-checked
 * iterators allow, keep global state or do I/O.
 */
#include "group.h"

#include <bson/bson.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "error.h"
#include "query.h"

typedef struct group_entry {
    bson_t *key; /* {_id: value}: the first value met of this group */
    int64_t total;
} group_entry;

struct group_counter {
    char *field;
    persistor_sorter *sorter; /* {_id: 1} */
    group_entry *groups;      /* in query_value_compare order of _id */
    size_t n_groups;
    size_t cap;
};

int32_t group_field_check(const char *field, persistor_error *err)
{
    if (field == NULL || field[0] == '\0')
        return error_set(err, PERSISTOR_E_INVALID,
                         "group field is empty: name a dotted path such as "
                         "'validation_result.valid'");
    for (const char *c = field;; c += strcspn(c, ".") + 1) {
        if (*c == '.' || *c == '\0')
            return error_set(err, PERSISTOR_E_INVALID,
                             "group field '%s' is not a field path: it has an empty component",
                             field);
        if (*c == '$')
            return error_set(err, PERSISTOR_E_INVALID,
                             "group field '%s' is not a field path: a component starts with "
                             "'$' (name the field without the '$' of $group's \"$field\")",
                             field);
        if (c[strcspn(c, ".")] == '\0')
            return PERSISTOR_OK;
    }
}

/* ---- the aggregation field path ------------------------------------- */

/* Move `it` onto the first field named by path[0..n). */
static bool group_find(bson_iter_t *it, const char *path, size_t n)
{
    while (bson_iter_next(it)) {
        const char *key = bson_iter_key(it);
        if (strncmp(key, path, n) == 0 && key[n] == '\0')
            return true;
    }
    return false;
}

/* Append to `dst`, under `name`, what `path` reaches in the document that
 * `it` iterates (not yet started), as MongoDB's ExpressionFieldPath does.
 * False when it reaches nothing (missing).  An array before the last
 * component always gives an array, empty when no element holds the rest. */
static bool group_eval(bson_t *dst, const char *name, bson_iter_t *it, const char *path,
                       bool *full)
{
    size_t n = strcspn(path, ".");
    if (!group_find(it, path, n))
        return false;
    if (path[n] == '\0') {
        *full |= !bson_append_iter(dst, name, -1, it);
        return true;
    }
    const char *rest = path + n + 1;
    bson_iter_t child;
    if (BSON_ITER_HOLDS_DOCUMENT(it) && bson_iter_recurse(it, &child))
        return group_eval(dst, name, &child, rest, full);
    if (!BSON_ITER_HOLDS_ARRAY(it) || !bson_iter_recurse(it, &child))
        return false;
    bson_t arr;
    if (!bson_append_array_begin(dst, name, -1, &arr)) {
        *full = true;
        return true;
    }
    uint32_t i = 0;
    while (bson_iter_next(&child)) {
        bson_iter_t sub;
        char buf[16];
        const char *key;
        if (!BSON_ITER_HOLDS_DOCUMENT(&child) || !bson_iter_recurse(&child, &sub))
            continue;
        bson_uint32_to_string(i, &key, buf, sizeof buf);
        if (group_eval(&arr, key, &sub, rest, full))
            i++;
    }
    *full |= !bson_append_array_end(dst, &arr);
    return true;
}

/* ---- counting --------------------------------------------------------- */

int32_t group_counter_new(const char *field, group_counter **out, persistor_error *err)
{
    *out = NULL;
    int32_t rc = group_field_check(field, err);
    if (rc != PERSISTOR_OK)
        return rc;
    group_counter *g = calloc(1, sizeof *g);
    bson_t sort = BSON_INITIALIZER;
    BSON_APPEND_INT32(&sort, "_id", 1);
    if (g == NULL || (g->field = strdup(field)) == NULL) {
        rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory grouping by %s", field);
        goto fail;
    }
    rc = query_sorter_new(bson_get_data(&sort), sort.len, &g->sorter, err);
    if (rc != PERSISTOR_OK)
        goto fail;
    bson_destroy(&sort);
    *out = g;
    return PERSISTOR_OK;
fail:
    bson_destroy(&sort);
    group_counter_free(g);
    return rc;
}

static void group_id(const bson_t *key, bson_iter_t *it)
{
    bson_iter_init_find(it, key, "_id");
}

/* Where `key` is, or goes, among the groups: *found when it is there. */
static size_t group_search(const group_counter *g, const bson_t *key, bool *found)
{
    bson_iter_t a, b;
    size_t lo = 0, hi = g->n_groups;
    group_id(key, &a);
    *found = false;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        group_id(g->groups[mid].key, &b);
        int c = query_value_compare(&a, &b);
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            hi = mid;
        else
            lo = mid + 1;
    }
    return lo;
}

static int32_t group_insert(group_counter *g, size_t at, bson_t *key, persistor_error *err)
{
    if (g->n_groups == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 16;
        group_entry *grown = realloc(g->groups, cap * sizeof *grown);
        if (grown == NULL)
            return error_set(err, PERSISTOR_E_NOMEM, "out of memory grouping by %s", g->field);
        g->groups = grown;
        g->cap = cap;
    }
    memmove(&g->groups[at + 1], &g->groups[at], (g->n_groups - at) * sizeof *g->groups);
    g->groups[at] = (group_entry){key, 1};
    g->n_groups++;
    return PERSISTOR_OK;
}

int32_t group_counter_add(group_counter *g, const uint8_t *doc, uint32_t len,
                          persistor_error *err)
{
    bson_t view;
    bson_iter_t it;
    if (doc == NULL || !bson_init_static(&view, doc, len) || !bson_iter_init(&it, &view))
        return error_set(err, PERSISTOR_E_CORRUPT,
                         "grouping by %s: a document of %u bytes is not BSON", g->field, len);
    bson_t *key = bson_new();
    bool full = false;
    if (key == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory grouping by %s", g->field);
    if (!group_eval(key, "_id", &it, g->field, &full))
        full |= !BSON_APPEND_NULL(key, "_id"); /* missing groups with null */
    if (full) {
        bson_destroy(key);
        return error_set(err, PERSISTOR_E_NOMEM, "grouping by %s: a group key is too large",
                         g->field);
    }
    bool found;
    size_t at = group_search(g, key, &found);
    if (found) {
        g->groups[at].total++;
        bson_destroy(key);
        return PERSISTOR_OK;
    }
    int32_t rc = group_insert(g, at, key, err);
    if (rc != PERSISTOR_OK)
        bson_destroy(key);
    return rc;
}

/* ---- the answer ------------------------------------------------------- */

static int group_sort_compare(const persistor_sorter *s, const group_entry *a,
                              const group_entry *b)
{
    return query_sorter_compare(s, bson_get_data(a->key), a->key->len, bson_get_data(b->key),
                                b->key->len);
}

/* Stable merge sort of v[0..n) by the sorter, through tmp[0..n). */
static void group_merge_sort(const persistor_sorter *s, group_entry *v, group_entry *tmp,
                             size_t n)
{
    if (n < 2)
        return;
    size_t h = n / 2, i = 0, j = h, k = 0;
    group_merge_sort(s, v, tmp, h);
    group_merge_sort(s, v + h, tmp, n - h);
    while (i < h && j < n)
        tmp[k++] = group_sort_compare(s, &v[j], &v[i]) < 0 ? v[j++] : v[i++];
    while (i < h)
        tmp[k++] = v[i++];
    while (j < n)
        tmp[k++] = v[j++];
    memcpy(v, tmp, n * sizeof *v);
}

int32_t group_counter_finish(group_counter *g, persistor_buffer *out, persistor_error *err)
{
    size_t n = g->n_groups;
    group_entry *sorted = malloc((n ? n : 1) * sizeof *sorted);
    group_entry *tmp = malloc((n ? n : 1) * sizeof *tmp);
    bson_t answer = BSON_INITIALIZER, groups, one;
    int32_t rc = PERSISTOR_OK;
    bool ok = sorted != NULL && tmp != NULL && BSON_APPEND_ARRAY_BEGIN(&answer, "groups", &groups);
    if (ok) {
        if (n > 0)
            memcpy(sorted, g->groups, n * sizeof *sorted);
        group_merge_sort(g->sorter, sorted, tmp, n);
        for (size_t i = 0; ok && i < n; i++) {
            char buf[16];
            const char *key;
            bson_iter_t id;
            bson_uint32_to_string((uint32_t)i, &key, buf, sizeof buf);
            group_id(sorted[i].key, &id);
            if (!bson_append_document_begin(&groups, key, -1, &one)) {
                ok = false;
                break;
            }
            ok = bson_append_iter(&one, "_id", 3, &id) &&
                 BSON_APPEND_INT64(&one, "total", sorted[i].total);
            ok = bson_append_document_end(&groups, &one) && ok;
        }
        ok = bson_append_array_end(&answer, &groups) && ok;
    }
    if (!ok || buffer_set(out, bson_get_data(&answer), answer.len) != PERSISTOR_OK)
        rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory answering the groups of %s",
                       g->field);
    bson_destroy(&answer);
    free(sorted);
    free(tmp);
    return rc;
}

void group_counter_free(group_counter *g)
{
    if (g == NULL)
        return;
    for (size_t i = 0; i < g->n_groups; i++)
        bson_destroy(g->groups[i].key);
    free(g->groups);
    query_sorter_free(g->sorter);
    free(g->field);
    free(g);
}
