/*
 * find.c — queries on any collection of the profile (find, count, grouped
 * count) and the seed's operator queries as thin calls on them.
 *
 * Everything goes through the router, so every adapter answers the same
 * query language and a fallback's answer is flagged degraded.  Filters of
 * the seed's queries are built with libbson, never by formatting text: a
 * plan id cannot change the query.  This file must not know which adapter
 * answers, nor compute a grouping itself (router_group_count does).
 */
#include <bson/bson.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "bson_check.h"
#include "buffer.h"
#include "error.h"
#include "group.h"
#include "json.h"
#include "persistor_internal.h"

/* ------------------------------------------------------------------ */
/* Options                                                            */

/* A query's filter: opts' BSON, opts' JSON parsed into `owned`, or none. */
typedef struct find_filter {
    bson_t owned;
    const uint8_t *data; /* NULL: every record */
    uint32_t len;
} find_filter;

static int32_t find_filter_init(const persistor_find_options *opts, find_filter *f,
                                persistor_error *err)
{
    bson_init(&f->owned);
    f->data = NULL;
    f->len = 0;
    if (opts == NULL)
        return PERSISTOR_OK;
    if (opts->struct_size < sizeof *opts)
        return error_set(err, PERSISTOR_E_INVALID,
                         "persistor_find_options.struct_size must be set to its sizeof");
    if (opts->filter_bson != NULL) {
        bson_t view;
        if (!bson_init_static(&view, opts->filter_bson, opts->filter_bson_len))
            return error_set(err, PERSISTOR_E_INVALID, "filter: not a valid BSON document");
        int32_t rc = bson_check_document(&view, "filter", err);
        if (rc != PERSISTOR_OK)
            return rc;
        f->data = opts->filter_bson;
        f->len = opts->filter_bson_len;
        return PERSISTOR_OK;
    }
    if (opts->filter_json == NULL)
        return PERSISTOR_OK;
    int32_t rc = json_to_bson(opts->filter_json, strlen(opts->filter_json), "filter", &f->owned,
                              err);
    if (rc != PERSISTOR_OK)
        return rc;
    f->data = bson_get_data(&f->owned);
    f->len = f->owned.len;
    return PERSISTOR_OK;
}

static void find_filter_destroy(find_filter *f)
{
    bson_destroy(&f->owned);
}

/* {sort_field: ±1, _id: 1}, so that ties come in the same order on every
 * adapter; empty when no sort is asked for. */
static int32_t find_sort(const persistor_find_options *opts, bson_t *sort, persistor_error *err)
{
    if (opts == NULL || opts->sort_field == NULL)
        return PERSISTOR_OK;
    /* $group's field paths and sort keys are the same grammar. */
    persistor_error ignored = {0};
    if (group_field_check(opts->sort_field, &ignored) != PERSISTOR_OK)
        return error_set(err, PERSISTOR_E_INVALID,
                         "sort field '%s' is not a field path: name a dotted path such as "
                         "'sla_status.violations_count' (no empty component, none starting "
                         "with '$')",
                         opts->sort_field);
    BSON_APPEND_INT32(sort, opts->sort_field, opts->sort_descending ? -1 : 1);
    if (strcmp(opts->sort_field, "_id") != 0)
        BSON_APPEND_INT32(sort, "_id", 1);
    return PERSISTOR_OK;
}

/* The collection's name in the profile, from its key or its name. */
static int32_t find_collection(const persistor *p, const char *collection, const char **name,
                               persistor_error *err)
{
    profile_collection_kind kind;
    int32_t rc = persistor_collection_lookup(p, collection, &kind, err);
    if (rc == PERSISTOR_OK)
        *name = persistor_collection_name(p, kind);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Finding records                                                    */

/* The record is the cursor's document, valid until the next cursor
 * call: exactly the iterator's promise. */
struct persistor_record_iter {
    router_cursor *cursor; /* ITER_END once, ITER_END forever */
};

/* A cursor over `name` for opts. */
static int32_t find_query(persistor *p, const char *name, const persistor_find_options *opts,
                          router_cursor **out, persistor_error *err)
{
    find_filter filter;
    bson_t sort = BSON_INITIALIZER;
    int32_t rc = find_filter_init(opts, &filter, err);
    if (rc == PERSISTOR_OK)
        rc = find_sort(opts, &sort, err);
    if (rc == PERSISTOR_OK) {
        bool sorted = !bson_empty(&sort);
        persistor_query q = {.struct_size = sizeof q,
                             .filter = filter.data,
                             .filter_len = filter.len,
                             .sort = sorted ? bson_get_data(&sort) : NULL,
                             .sort_len = sorted ? sort.len : 0,
                             .limit = opts != NULL ? opts->limit : 0};
        rc = router_query(p->router, name, &q, out, err);
    }
    bson_destroy(&sort);
    find_filter_destroy(&filter);
    return rc;
}

int32_t persistor_find(persistor *p, const char *collection, const persistor_find_options *opts,
                       persistor_record_iter **out, persistor_error *err)
{
    if (out == NULL)
        return error_set(err, PERSISTOR_E_INVALID, "persistor_find: out must not be NULL");
    *out = NULL;
    const char *name;
    int32_t rc = find_collection(p, collection, &name, err);
    if (rc != PERSISTOR_OK)
        return rc;
    persistor_record_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory querying %s", name);
    rc = find_query(p, name, opts, &it->cursor, err);
    if (rc != PERSISTOR_OK) {
        free(it);
        return rc;
    }
    *out = it;
    return PERSISTOR_OK;
}

int32_t persistor_record_iter_next(persistor_record_iter *it, const uint8_t **bson,
                                   uint32_t *bson_len, persistor_error *err)
{
    return router_cursor_next(it->cursor, bson, bson_len, err);
}

int persistor_record_iter_degraded(const persistor_record_iter *it)
{
    return router_cursor_degraded(it->cursor);
}

void persistor_record_iter_free(persistor_record_iter *it)
{
    if (it == NULL)
        return;
    router_cursor_close(it->cursor);
    free(it);
}

char *persistor_record_to_json(const uint8_t *bson, uint32_t bson_len)
{
    char *json = json_from_bson(bson, bson_len);
    if (json == NULL)
        return NULL;
    char *copy = strdup(json); /* persistor_free is free(), not bson_free */
    bson_free(json);
    return copy;
}

/* ------------------------------------------------------------------ */
/* Counting                                                           */

int32_t persistor_count(persistor *p, const char *collection, const persistor_find_options *opts,
                        uint64_t *out, int32_t *degraded, persistor_error *err)
{
    if (out == NULL)
        return error_set(err, PERSISTOR_E_INVALID, "persistor_count: out must not be NULL");
    const char *name;
    int32_t rc = find_collection(p, collection, &name, err);
    if (rc != PERSISTOR_OK)
        return rc;
    find_filter filter;
    bool fallback = false;
    rc = find_filter_init(opts, &filter, err);
    if (rc == PERSISTOR_OK)
        rc = router_count(p->router, name, filter.data, filter.len, out, &fallback, err);
    if (rc == PERSISTOR_OK && degraded != NULL)
        *degraded = fallback;
    find_filter_destroy(&filter);
    return rc;
}

/* The value of {_id: v} printed alone: libbson prints the document as
 * `{ "_id" : <v> }`, so <v> is what lies between. */
static char *find_value_json(const bson_t *key)
{
    static const char head[] = "{ \"_id\" : ", tail[] = " }";
    char *doc = json_from_bson(bson_get_data(key), key->len);
    if (doc == NULL)
        return NULL;
    size_t len = strlen(doc), h = sizeof head - 1, t = sizeof tail - 1;
    char *value = NULL;
    if (len > h + t && strncmp(doc, head, h) == 0 && strcmp(doc + len - t, tail) == 0)
        value = strndup(doc + h, len - h - t);
    bson_free(doc);
    return value;
}

/* Group `index` of the answer, {_id, total}, into `g`. */
static int32_t find_group_parse(bson_iter_t *entry, size_t index, const char *collection,
                                persistor_group *g, persistor_error *err)
{
    const uint8_t *data;
    uint32_t len;
    bson_t doc, key = BSON_INITIALIZER;
    bson_iter_t it, id = {0};
    bool has_id = false, has_total = false;
    if (BSON_ITER_HOLDS_DOCUMENT(entry)) {
        bson_iter_document(entry, &len, &data);
        if (bson_init_static(&doc, data, len) && bson_iter_init(&it, &doc))
            while (bson_iter_next(&it)) {
                if (strcmp(bson_iter_key(&it), "_id") == 0) {
                    id = it;
                    has_id = true;
                }
                else if (strcmp(bson_iter_key(&it), "total") == 0 &&
                         (BSON_ITER_HOLDS_INT64(&it) || BSON_ITER_HOLDS_INT32(&it)) &&
                         bson_iter_as_int64(&it) >= 0) {
                    g->total = (uint64_t)bson_iter_as_int64(&it);
                    has_total = true;
                }
            }
    }
    if (!has_id || !has_total || !bson_append_iter(&key, "_id", 3, &id)) {
        bson_destroy(&key);
        return error_set(err, PERSISTOR_E_CORRUPT,
                         "grouped count of %s: group %zu is not {_id, total: integer}",
                         collection, index);
    }
    int32_t rc = PERSISTOR_OK;
    g->key_json = find_value_json(&key);
    if (g->key_json == NULL)
        rc = error_set(err, PERSISTOR_E_CORRUPT,
                       "grouped count of %s: the value of group %zu cannot be printed as JSON "
                       "(invalid UTF-8?)",
                       collection, index);
    else if ((g->key_bson = malloc(key.len)) == NULL)
        rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory grouping %s", collection);
    else {
        memcpy(g->key_bson, bson_get_data(&key), key.len);
        g->key_bson_len = key.len;
    }
    bson_destroy(&key);
    return rc;
}

/* {groups: [{_id, total}, ...]} into `out`; E_CORRUPT for anything else. */
static int32_t find_groups_parse(const persistor_buffer *answer, const char *collection,
                                 persistor_group_list *out, persistor_error *err)
{
    bson_t doc;
    bson_iter_t it, groups;
    if (!bson_init_static(&doc, answer->data, answer->len) ||
        !bson_iter_init_find(&it, &doc, "groups") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &groups))
        return error_set(err, PERSISTOR_E_CORRUPT,
                         "grouped count of %s: the answer has no \"groups\" array", collection);
    size_t n = 0;
    bson_iter_t counter = groups;
    while (bson_iter_next(&counter))
        n++;
    out->items = n > 0 ? calloc(n, sizeof *out->items) : NULL;
    if (n > 0 && out->items == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory grouping %s", collection);
    int32_t rc = PERSISTOR_OK;
    while (rc == PERSISTOR_OK && out->count < n && bson_iter_next(&groups)) {
        /* Counted before it is filled, so that a half-filled one is freed. */
        persistor_group *g = &out->items[out->count++];
        rc = find_group_parse(&groups, out->count - 1, collection, g, err);
    }
    return rc;
}

int32_t persistor_count_by(persistor *p, const char *collection,
                           const persistor_find_options *opts, const char *field,
                           persistor_group_list *out, persistor_error *err)
{
    if (out == NULL)
        return error_set(err, PERSISTOR_E_INVALID, "persistor_count_by: out must not be NULL");
    *out = (persistor_group_list){0};
    const char *name;
    int32_t rc = find_collection(p, collection, &name, err);
    if (rc != PERSISTOR_OK)
        return rc;
    find_filter filter;
    persistor_buffer answer = {0};
    bool fallback = false;
    rc = find_filter_init(opts, &filter, err);
    if (rc == PERSISTOR_OK)
        rc = router_group_count(p->router, name, filter.data, filter.len, field, &answer,
                                &fallback, err);
    if (rc == PERSISTOR_OK)
        rc = find_groups_parse(&answer, name, out, err);
    if (rc == PERSISTOR_OK)
        out->degraded = fallback;
    else
        persistor_group_list_free(out);
    buffer_free(&answer);
    find_filter_destroy(&filter);
    return rc;
}

void persistor_group_list_free(persistor_group_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].key_json);
        free(list->items[i].key_bson);
    }
    free(list->items);
    *list = (persistor_group_list){0};
}

/* ------------------------------------------------------------------ */
/* The seed's operator queries                                        */

/* A filter of one condition, `field` = value or `field` {$gt: 0}. */
typedef enum find_condition { FIND_EQUALS, FIND_POSITIVE } find_condition;

typedef struct find_seed_query {
    profile_collection_kind kind;
    const char *field; /* of the condition */
    find_condition condition;
    const char *sort_field;
    bool descending;
} find_seed_query;

static int32_t find_seed(persistor *p, const find_seed_query *s, const char *value,
                         uint64_t limit, persistor_record_iter **out, persistor_error *err)
{
    bson_t filter = BSON_INITIALIZER, gt;
    if (s->condition == FIND_EQUALS) {
        BSON_APPEND_UTF8(&filter, s->field, value);
    }
    else {
        BSON_APPEND_DOCUMENT_BEGIN(&filter, s->field, &gt);
        BSON_APPEND_INT32(&gt, "$gt", 0);
        bson_append_document_end(&filter, &gt);
    }
    persistor_find_options opts = {.struct_size = sizeof opts,
                                   .filter_bson = bson_get_data(&filter),
                                   .filter_bson_len = filter.len,
                                   .sort_field = s->sort_field,
                                   .sort_descending = s->descending,
                                   .limit = limit};
    int32_t rc = persistor_find(p, persistor_collection_name(p, s->kind), &opts, out, err);
    bson_destroy(&filter);
    return rc;
}

/* The seed's string arguments name what they select: never empty. */
static int32_t find_required(const char *query, const char *name, const char *value,
                             persistor_error *err)
{
    if (value == NULL || value[0] == '\0')
        return error_set(err, PERSISTOR_E_INVALID, "%s: %s is required (a non-empty string)",
                         query, name);
    return PERSISTOR_OK;
}

static int32_t find_seed_groups(persistor *p, profile_collection_kind kind, const char *field,
                                persistor_group_list *out, persistor_error *err)
{
    return persistor_count_by(p, persistor_collection_name(p, kind), NULL, field, out, err);
}

int32_t persistor_audit_validations_by_validity(persistor *p, persistor_group_list *out,
                                                persistor_error *err)
{
    return find_seed_groups(p, PROFILE_COLL_VALIDATION_AUDIT, "validation_result.valid", out,
                            err);
}

int32_t persistor_audit_validation_history(persistor *p, const char *plan_id, uint64_t limit,
                                           persistor_record_iter **out, persistor_error *err)
{
    static const find_seed_query q = {PROFILE_COLL_VALIDATION_AUDIT, "plan_id", FIND_EQUALS,
                                      "timestamp", true};
    int32_t rc = find_required("validation history", "plan_id", plan_id, err);
    return rc != PERSISTOR_OK ? rc : find_seed(p, &q, plan_id, limit, out, err);
}

int32_t persistor_audit_workflows_by_status(persistor *p, const char *status, uint64_t limit,
                                            persistor_record_iter **out, persistor_error *err)
{
    static const find_seed_query q = {PROFILE_COLL_WORKFLOW_RESULTS, "status", FIND_EQUALS,
                                      "consolidated_at", true};
    int32_t rc = find_required("workflows by status", "status", status, err);
    return rc != PERSISTOR_OK ? rc : find_seed(p, &q, status, limit, out, err);
}

int32_t persistor_audit_sla_violations(persistor *p, uint64_t limit, persistor_record_iter **out,
                                       persistor_error *err)
{
    static const find_seed_query q = {PROFILE_COLL_WORKFLOW_RESULTS,
                                      "sla_status.violations_count", FIND_POSITIVE,
                                      "sla_status.violations_count", true};
    return find_seed(p, &q, NULL, limit, out, err);
}

int32_t persistor_audit_critical_incidents(persistor *p, uint64_t limit,
                                           persistor_record_iter **out, persistor_error *err)
{
    static const find_seed_query q = {PROFILE_COLL_INCIDENTS, "severity", FIND_EQUALS,
                                      "timestamp", true};
    return find_seed(p, &q, "CRITICAL", limit, out, err);
}

int32_t persistor_audit_incidents_by_type(persistor *p, persistor_group_list *out,
                                          persistor_error *err)
{
    return find_seed_groups(p, PROFILE_COLL_INCIDENTS, "type", out, err);
}

int32_t persistor_telemetry_retried(persistor *p, uint64_t limit, persistor_record_iter **out,
                                    persistor_error *err)
{
    static const find_seed_query q = {PROFILE_COLL_TELEMETRY_BUFFER, "retry_count", FIND_POSITIVE,
                                      "buffered_at", false};
    return find_seed(p, &q, NULL, limit, out, err);
}
