/*
 * test_find.c — queries on the profile's collections (persistor_find,
 * persistor_count, persistor_count_by) and the seed's operator queries,
 * on the memory adapter with a fixed clock: exact ids, order, totals and
 * error messages.  The profile renames incidents to "inc", so every
 * incident query also shows that names come from the profile.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "persistor_internal.h"
#include "unit_env.h"

typedef unit_store fixture;

static int setup(void **state)
{
    *state = unit_store_new("find", "off", "unit",
                            "profiles:\n"
                            "  unit:\n"
                            "    adapters:\n"
                            "      - type: memory\n"
                            "    collections:\n"
                            "      incidents: {name: inc}\n");
    return 0;
}

static int teardown(void **state)
{
    unit_store_free(*state);
    return 0;
}

/* ------------------------------------------------------------------ */
/* Helpers                                                            */

/* Save one audit record from JSON; its id into id (may be NULL). */
static void save(fixture *f, persistor_audit_kind kind, const char *json, char *id)
{
    persistor_record_input in = {.struct_size = sizeof in, .json = json, .json_source = "t.json"};
    persistor_error err = {0};
    int32_t rc = persistor_audit_save(f->p, kind, &in, id, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("save %s: %s %s", json, persistor_rc_name(rc), err.message);
}

static void save_validation(fixture *f, const char *plan, const char *valid, const char *date,
                            char *id)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"plan_id\": \"%s\", \"validation_result\": {%s%s}, \"timestamp\": "
             "{\"$date\": \"%s\"}}",
             plan, valid != NULL ? "\"valid\": " : "\"errors\": []", valid != NULL ? valid : "",
             date);
    save(f, PERSISTOR_AUDIT_VALIDATION, json, id);
}

static void save_result(fixture *f, const char *workflow, const char *status, const char *date,
                        const char *sla)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"workflow_id\": \"%s\", \"status\": \"%s\", \"consolidated_at\": "
             "{\"$date\": \"%s\"}%s%s}",
             workflow, status, date, sla != NULL ? ", \"sla_status\": " : "",
             sla != NULL ? sla : "");
    save(f, PERSISTOR_AUDIT_WORKFLOW_RESULT, json, NULL);
}

static void save_incident(fixture *f, const char *type, const char *severity, const char *date,
                          const char *extra, char *id)
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"workflow_id\": \"w\", \"type\": \"%s\", \"severity\": \"%s\", \"timestamp\": "
             "{\"$date\": \"%s\"}%s}",
             type, severity, date, extra != NULL ? extra : "");
    save(f, PERSISTOR_AUDIT_INCIDENT, json, id);
}

/* Drain `it`, which must give exactly the records with these _ids in this
 * order, then ITER_END, and ITER_END again; frees it. */
static void expect_ids(persistor_record_iter *it, const char *const *ids, size_t n)
{
    const uint8_t *doc;
    uint32_t len;
    persistor_error err = {0};
    size_t i = 0;
    int32_t rc;
    assert_int_equal(persistor_record_iter_degraded(it), 0);
    while ((rc = persistor_record_iter_next(it, &doc, &len, &err)) == PERSISTOR_OK) {
        bson_t view;
        bson_iter_t field;
        assert_true(bson_init_static(&view, doc, len));
        assert_true(bson_iter_init_find(&field, &view, "_id") && BSON_ITER_HOLDS_UTF8(&field));
        if (i >= n)
            fail_msg("record %zu (%s) beyond the %zu expected", i, bson_iter_utf8(&field, NULL),
                     n);
        if (strcmp(bson_iter_utf8(&field, NULL), ids[i]) != 0)
            fail_msg("record %zu is %s, expected %s", i, bson_iter_utf8(&field, NULL), ids[i]);
        i++;
    }
    assert_int_equal(rc, PERSISTOR_ITER_END);
    assert_int_equal(i, n);
    assert_int_equal(persistor_record_iter_next(it, &doc, &len, &err), PERSISTOR_ITER_END);
    persistor_record_iter_free(it);
}

#define IDS(...) ((const char *const[]){__VA_ARGS__})
#define N_IDS(...) (sizeof IDS(__VA_ARGS__) / sizeof(const char *))
#define EXPECT_IDS(it, ...) expect_ids((it), IDS(__VA_ARGS__), N_IDS(__VA_ARGS__))

static persistor_record_iter *find_ok(fixture *f, const char *collection,
                                      const persistor_find_options *opts)
{
    persistor_record_iter *it = NULL;
    persistor_error err = {0};
    int32_t rc = persistor_find(f->p, collection, opts, &it, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("find %s: %s %s", collection, persistor_rc_name(rc), err.message);
    return it;
}

/* persistor_find that must fail with E_INVALID and exactly this message. */
static void expect_find_invalid(fixture *f, const char *collection,
                                const persistor_find_options *opts, const char *message)
{
    persistor_record_iter *it = (persistor_record_iter *)&it; /* must be reset to NULL */
    persistor_error err = {0};
    assert_int_equal(persistor_find(f->p, collection, opts, &it, &err), PERSISTOR_E_INVALID);
    assert_null(it);
    assert_string_equal(err.message, message);
}

/* The groups as "key=total key=total ". */
static void expect_groups(int32_t rc, persistor_group_list *list, const persistor_error *err,
                          const char *want)
{
    if (rc != PERSISTOR_OK)
        fail_msg("grouped count: %s %s", persistor_rc_name(rc), err->message);
    char text[512] = "";
    for (size_t i = 0; i < list->count; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "%s=%llu ",
                 list->items[i].key_json, (unsigned long long)list->items[i].total);
    assert_string_equal(text, want);
    assert_int_equal(list->degraded, 0);
    persistor_group_list_free(list);
    assert_null(list->items);
    assert_int_equal(list->count, 0);
}

/* ------------------------------------------------------------------ */
/* The seed's queries                                                 */

static void test_validation_history_is_the_plans_validations_newest_first(void **state)
{
    fixture *f = *state;
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1], c[PERSISTOR_ID_MAX + 1];
    save_validation(f, "p1", "true", "2026-11-22T10:00:00Z", a);
    save_validation(f, "p1", "false", "2026-11-22T12:00:00Z", c);
    save_validation(f, "p2", "true", "2026-11-22T13:00:00Z", NULL);
    save_validation(f, "p1", "true", "2026-11-22T11:00:00Z", b);
    persistor_record_iter *it;
    persistor_error err = {0};
    assert_int_equal(persistor_audit_validation_history(f->p, "p1", 0, &it, &err), PERSISTOR_OK);
    EXPECT_IDS(it, c, b, a);
    assert_int_equal(persistor_audit_validation_history(f->p, "p1", 2, &it, &err), PERSISTOR_OK);
    EXPECT_IDS(it, c, b);
    assert_int_equal(persistor_audit_validation_history(f->p, "p3", 0, &it, &err), PERSISTOR_OK);
    expect_ids(it, NULL, 0);
}

static void test_plan_id_is_a_value_never_an_operator(void **state)
{
    fixture *f = *state;
    char id[PERSISTOR_ID_MAX + 1];
    save_validation(f, "{\\\"$ne\\\": \\\"x\\\"}", "true", "2026-11-22T10:00:00Z", id);
    save_validation(f, "p1", "true", "2026-11-22T10:00:00Z", NULL);
    persistor_record_iter *it;
    persistor_error err = {0};
    /* The plan whose id is this text, not every plan but "x". */
    assert_int_equal(persistor_audit_validation_history(f->p, "{\"$ne\": \"x\"}", 0, &it, &err),
                     PERSISTOR_OK);
    EXPECT_IDS(it, id);
}

static void test_required_arguments_of_the_seed_queries_are_named(void **state)
{
    fixture *f = *state;
    persistor_record_iter *it = NULL;
    persistor_error err = {0};
    assert_int_equal(persistor_audit_validation_history(f->p, NULL, 0, &it, &err),
                     PERSISTOR_E_INVALID);
    assert_string_equal(err.message, "validation history: plan_id is required (a non-empty "
                                     "string)");
    assert_int_equal(persistor_audit_validation_history(f->p, "", 0, &it, &err),
                     PERSISTOR_E_INVALID);
    assert_int_equal(persistor_audit_workflows_by_status(f->p, "", 5, &it, &err),
                     PERSISTOR_E_INVALID);
    assert_string_equal(err.message, "workflows by status: status is required (a non-empty "
                                     "string)");
    assert_null(it);
}

static void test_validations_by_validity_counts_true_false_and_missing(void **state)
{
    fixture *f = *state;
    save_validation(f, "p1", "true", "2026-11-22T10:00:00Z", NULL);
    save_validation(f, "p2", "true", "2026-11-22T10:00:00Z", NULL);
    save_validation(f, "p3", "false", "2026-11-22T10:00:00Z", NULL);
    save_validation(f, "p4", NULL, "2026-11-22T10:00:00Z", NULL); /* no `valid` */
    persistor_group_list groups;
    persistor_error err = {0};
    int32_t rc = persistor_audit_validations_by_validity(f->p, &groups, &err);
    assert_int_equal(rc, PERSISTOR_OK);
    /* key_bson is {_id: value}, for typed access. */
    bson_t key;
    bson_iter_t it;
    assert_int_equal(groups.count, 3);
    assert_true(bson_init_static(&key, groups.items[2].key_bson, groups.items[2].key_bson_len));
    assert_true(bson_iter_init_find(&it, &key, "_id") && BSON_ITER_HOLDS_BOOL(&it));
    assert_true(bson_iter_bool(&it));
    assert_int_equal(bson_count_keys(&key), 1);
    assert_true(bson_init_static(&key, groups.items[0].key_bson, groups.items[0].key_bson_len));
    assert_true(bson_iter_init_find(&it, &key, "_id") && BSON_ITER_HOLDS_NULL(&it));
    /* MongoDB's order: null, then false before true. */
    expect_groups(rc, &groups, &err, "null=1 false=1 true=2 ");
}

static void test_validations_by_validity_of_nothing_is_no_group(void **state)
{
    fixture *f = *state;
    persistor_group_list groups;
    persistor_error err = {0};
    expect_groups(persistor_audit_validations_by_validity(f->p, &groups, &err), &groups, &err,
                  "");
}

static void test_workflows_by_status_newest_first_ties_by_id(void **state)
{
    fixture *f = *state;
    save_result(f, "wf-b", "FAILED", "2026-11-22T10:00:00Z", NULL);
    save_result(f, "wf-c", "FAILED", "2026-11-22T11:00:00Z", NULL);
    save_result(f, "wf-a", "FAILED", "2026-11-22T10:00:00Z", NULL);
    save_result(f, "wf-d", "DONE", "2026-11-22T12:00:00Z", NULL);
    persistor_record_iter *it;
    persistor_error err = {0};
    assert_int_equal(persistor_audit_workflows_by_status(f->p, "FAILED", 0, &it, &err),
                     PERSISTOR_OK);
    /* wf-a and wf-b tie on consolidated_at: _id ascending. */
    EXPECT_IDS(it, "wf-c", "wf-a", "wf-b");
    assert_int_equal(persistor_audit_workflows_by_status(f->p, "DONE", 0, &it, &err),
                     PERSISTOR_OK);
    EXPECT_IDS(it, "wf-d");
}

static void test_sla_violations_most_violations_first(void **state)
{
    fixture *f = *state;
    save_result(f, "wf-1", "DONE", "2026-11-22T10:00:00Z", "{\"violations_count\": 0}");
    save_result(f, "wf-2", "DONE", "2026-11-22T10:00:00Z", "{\"violations_count\": 2}");
    save_result(f, "wf-3", "FAILED", "2026-11-22T10:00:00Z", "{\"violations_count\": 5}");
    save_result(f, "wf-4", "DONE", "2026-11-22T10:00:00Z", NULL);
    save_result(f, "wf-0", "DONE", "2026-11-22T10:00:00Z", "{\"violations_count\": 2}");
    save_result(f, "wf-5", "DONE", "2026-11-22T10:00:00Z", "{\"violations_count\": -1}");
    persistor_record_iter *it;
    persistor_error err = {0};
    assert_int_equal(persistor_audit_sla_violations(f->p, 0, &it, &err), PERSISTOR_OK);
    EXPECT_IDS(it, "wf-3", "wf-0", "wf-2");
    assert_int_equal(persistor_audit_sla_violations(f->p, 1, &it, &err), PERSISTOR_OK);
    EXPECT_IDS(it, "wf-3");
}

static void test_critical_incidents_newest_first_up_to_the_limit(void **state)
{
    fixture *f = *state;
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1], c[PERSISTOR_ID_MAX + 1];
    save_incident(f, "timeout", "CRITICAL", "2026-11-22T10:00:00Z", NULL, a);
    save_incident(f, "timeout", "HIGH", "2026-11-22T13:00:00Z", NULL, NULL);
    save_incident(f, "crash", "CRITICAL", "2026-11-22T12:00:00Z", NULL, c);
    save_incident(f, "crash", "CRITICAL", "2026-11-22T11:00:00Z", NULL, b);
    persistor_record_iter *it;
    persistor_error err = {0};
    assert_int_equal(persistor_audit_critical_incidents(f->p, 20, &it, &err), PERSISTOR_OK);
    EXPECT_IDS(it, c, b, a);
    assert_int_equal(persistor_audit_critical_incidents(f->p, 2, &it, &err), PERSISTOR_OK);
    EXPECT_IDS(it, c, b);
    assert_int_equal(persistor_audit_critical_incidents(f->p, 0, &it, &err), PERSISTOR_OK);
    EXPECT_IDS(it, c, b, a);
}

static void test_incidents_by_type_counts_each_type(void **state)
{
    fixture *f = *state;
    save_incident(f, "timeout", "CRITICAL", "2026-11-22T10:00:00Z", NULL, NULL);
    save_incident(f, "timeout", "LOW", "2026-11-22T11:00:00Z", NULL, NULL);
    save_incident(f, "crash", "HIGH", "2026-11-22T12:00:00Z", NULL, NULL);
    persistor_group_list groups;
    persistor_error err = {0};
    expect_groups(persistor_audit_incidents_by_type(f->p, &groups, &err), &groups, &err,
                  "\"crash\"=1 \"timeout\"=2 ");
}

/* Telemetry records as the buffer writes them, straight through the router
 * (the telemetry API is another file's). */
static void put_telemetry(fixture *f, const char *id, int32_t retry_count, int64_t buffered_at)
{
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "source", "unit");
    BSON_APPEND_DATE_TIME(&doc, "buffered_at", buffered_at);
    BSON_APPEND_INT32(&doc, "retry_count", retry_count);
    persistor_write_op op = {PERSISTOR_WRITE_INSERT_IF_ABSENT, doc.len, id, bson_get_data(&doc)};
    int32_t result;
    persistor_error err = {0};
    assert_int_equal(router_write(f->p->router,
                                  persistor_collection_name(f->p, PROFILE_COLL_TELEMETRY_BUFFER),
                                  &op, 1, &result, &err),
                     PERSISTOR_OK);
    assert_int_equal(result, PERSISTOR_OK);
    bson_destroy(&doc);
}

static void test_telemetry_retried_oldest_buffered_first(void **state)
{
    fixture *f = *state;
    put_telemetry(f, "t1", 0, f->now - 1000);
    put_telemetry(f, "t2", 3, f->now - 500);
    put_telemetry(f, "t3", 1, f->now - 2000);
    put_telemetry(f, "t4", 1, f->now - 500);
    persistor_record_iter *it;
    persistor_error err = {0};
    assert_int_equal(persistor_telemetry_retried(f->p, 0, &it, &err), PERSISTOR_OK);
    EXPECT_IDS(it, "t3", "t2", "t4");
    assert_int_equal(persistor_telemetry_retried(f->p, 2, &it, &err), PERSISTOR_OK);
    EXPECT_IDS(it, "t3", "t2");
}

/* ------------------------------------------------------------------ */
/* Any collection                                                     */

static void test_find_sorts_ascending_or_descending_with_ties_by_id(void **state)
{
    fixture *f = *state;
    save_result(f, "wf-b", "DONE", "2026-11-22T10:00:00Z", "{\"violations_count\": 1}");
    save_result(f, "wf-a", "DONE", "2026-11-22T10:00:00Z", "{\"violations_count\": 1}");
    save_result(f, "wf-c", "DONE", "2026-11-22T09:00:00Z", "{\"violations_count\": 3}");
    persistor_find_options opts = {.struct_size = sizeof opts, .sort_field = "consolidated_at"};
    EXPECT_IDS(find_ok(f, "workflow_results", &opts), "wf-c", "wf-a", "wf-b");
    opts.sort_descending = 1;
    EXPECT_IDS(find_ok(f, "workflow_results", &opts), "wf-a", "wf-b", "wf-c");
    opts.sort_field = "sla_status.violations_count";
    opts.limit = 2;
    EXPECT_IDS(find_ok(f, "workflow_results", &opts), "wf-c", "wf-a");
    opts.sort_field = "_id"; /* the tie-breaker itself: just descending */
    opts.limit = 0;
    EXPECT_IDS(find_ok(f, "workflow_results", &opts), "wf-c", "wf-b", "wf-a");
}

static void test_find_filter_from_json_or_bson(void **state)
{
    fixture *f = *state;
    save_result(f, "wf-1", "DONE", "2026-11-22T10:00:00Z", NULL);
    save_result(f, "wf-2", "FAILED", "2026-11-22T10:00:00Z", NULL);
    save_result(f, "wf-3", "FAILED", "2026-11-22T11:00:00Z", NULL);
    persistor_find_options opts = {.struct_size = sizeof opts,
                                   .filter_json = "{\"status\": {\"$in\": [\"FAILED\"]},"
                                                  " \"consolidated_at\": {\"$gt\": {\"$date\":"
                                                  " \"2026-11-22T10:30:00Z\"}}}"};
    EXPECT_IDS(find_ok(f, "workflow_results", &opts), "wf-3");
    bson_t filter = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "status", "DONE");
    opts.filter_bson = bson_get_data(&filter); /* BSON wins over JSON */
    opts.filter_bson_len = filter.len;
    EXPECT_IDS(find_ok(f, "workflow_results", &opts), "wf-1");
    bson_destroy(&filter);
    /* No options: every record. */
    uint64_t n = 0;
    int32_t degraded = -1;
    persistor_error err = {0};
    assert_int_equal(persistor_count(f->p, "workflow_results", NULL, &n, &degraded, &err),
                     PERSISTOR_OK);
    assert_int_equal(n, 3);
    assert_int_equal(degraded, 0);
}

static void test_find_reports_a_bad_filter_with_line_and_column(void **state)
{
    fixture *f = *state;
    persistor_find_options opts = {.struct_size = sizeof opts,
                                   .filter_json = "{\"status\": \"DONE\",\n \"x\": oops}"};
    expect_find_invalid(f, "workflow_results", &opts,
                        "filter:2:7: expected a value (object, array, string, number, true, "
                        "false or null)");
    uint64_t n = 7;
    persistor_error err = {0};
    assert_int_equal(persistor_count(f->p, "workflow_results", &opts, &n, NULL, &err),
                     PERSISTOR_E_INVALID);
    assert_string_equal(err.message, "filter:2:7: expected a value (object, array, string, "
                                     "number, true, false or null)");
    opts.filter_json = "[1]";
    expect_find_invalid(f, "workflow_results", &opts,
                        "filter:1:1: expected a JSON object at the top level");
}

static void test_find_refuses_an_operator_the_language_lacks(void **state)
{
    fixture *f = *state;
    persistor_find_options opts = {.struct_size = sizeof opts,
                                   .filter_json = "{\"status\": {\"$regex\": \"F.*\"}}"};
    persistor_record_iter *it = NULL;
    persistor_error err = {0};
    assert_int_equal(persistor_find(f->p, "workflow_results", &opts, &it, &err),
                     PERSISTOR_E_INVALID);
    assert_null(it);
    if (strstr(err.message, "$regex") == NULL)
        fail_msg("the message should name $regex: %s", err.message);
}

static void test_find_refuses_a_sort_field_that_is_not_a_path(void **state)
{
    fixture *f = *state;
    static const char *const bad[] = {"", "a..b", ".a", "a.", "$status", "a.$b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        persistor_find_options opts = {.struct_size = sizeof opts, .sort_field = bad[i]};
        char message[256];
        snprintf(message, sizeof message,
                 "sort field '%s' is not a field path: name a dotted path such as "
                 "'sla_status.violations_count' (no empty component, none starting with '$')",
                 bad[i]);
        expect_find_invalid(f, "workflow_results", &opts, message);
    }
}

static void test_find_refuses_options_without_struct_size(void **state)
{
    fixture *f = *state;
    persistor_find_options opts = {0};
    expect_find_invalid(f, "incidents", &opts,
                        "persistor_find_options.struct_size must be set to its sizeof");
}

static void test_unknown_collection_names_what_the_profile_has(void **state)
{
    fixture *f = *state;
    char message[1024];
    snprintf(message, sizeof message,
             "unknown collection 'incident' in profile 'unit' (%s has: snapshots, "
             "validation_audit, workflow_results, inc, telemetry_buffer)",
             f->config);
    expect_find_invalid(f, "incident", NULL, message);
    uint64_t n;
    persistor_group_list groups = {0};
    persistor_error err = {0};
    assert_int_equal(persistor_count(f->p, "incident", NULL, &n, NULL, &err),
                     PERSISTOR_E_INVALID);
    assert_string_equal(err.message, message);
    assert_int_equal(persistor_count_by(f->p, "incident", NULL, "type", &groups, &err),
                     PERSISTOR_E_INVALID);
    assert_string_equal(err.message, message);
    assert_int_equal(groups.count, 0);
}

/* A profile may name one collection after another's key: the name the
 * profile gives wins, for the CLI's names and for the seed's queries. */
static void test_a_name_the_profile_gives_wins_over_another_collections_key(void **state)
{
    (void)state;
    unit_store *s = unit_store_new("find-names", "off", "swap",
                                   "profiles:\n"
                                   "  swap:\n"
                                   "    adapters:\n"
                                   "      - type: memory\n"
                                   "    collections:\n"
                                   "      validation_audit: {name: va}\n"
                                   "      workflow_results: {name: validation_audit}\n");
    save(s, PERSISTOR_AUDIT_WORKFLOW_RESULT, "{\"workflow_id\": \"w1\", \"status\": \"FAILED\"}",
         NULL);
    uint64_t n = 0;
    persistor_error err = {0};
    assert_int_equal(persistor_count(s->p, "validation_audit", NULL, &n, NULL, &err),
                     PERSISTOR_OK);
    assert_int_equal(n, 1); /* workflow_results, stored as "validation_audit" */
    assert_int_equal(persistor_count(s->p, "va", NULL, &n, NULL, &err), PERSISTOR_OK);
    assert_int_equal(n, 0);
    persistor_record_iter *it;
    assert_int_equal(persistor_audit_workflows_by_status(s->p, "FAILED", 0, &it, &err),
                     PERSISTOR_OK);
    const uint8_t *doc;
    uint32_t len;
    assert_int_equal(persistor_record_iter_next(it, &doc, &len, &err), PERSISTOR_OK);
    assert_int_equal(persistor_record_iter_next(it, &doc, &len, &err), PERSISTOR_ITER_END);
    persistor_record_iter_free(it);
    unit_store_free(s);
}

static void test_collections_are_found_by_key_or_by_the_profiles_name(void **state)
{
    fixture *f = *state;
    char id[PERSISTOR_ID_MAX + 1];
    save_incident(f, "timeout", "LOW", "2026-11-22T10:00:00Z", NULL, id);
    assert_string_equal(persistor_collection_name(f->p, PROFILE_COLL_INCIDENTS), "inc");
    EXPECT_IDS(find_ok(f, "incidents", NULL), id);
    EXPECT_IDS(find_ok(f, "inc", NULL), id);
    uint64_t by_key = 0, by_name = 0;
    persistor_error err = {0};
    assert_int_equal(persistor_count(f->p, "incidents", NULL, &by_key, NULL, &err), PERSISTOR_OK);
    assert_int_equal(persistor_count(f->p, "inc", NULL, &by_name, NULL, &err), PERSISTOR_OK);
    assert_int_equal(by_key, 1);
    assert_int_equal(by_name, 1);
}

static void test_count_ignores_sort_and_limit(void **state)
{
    fixture *f = *state;
    save_incident(f, "timeout", "LOW", "2026-11-22T10:00:00Z", NULL, NULL);
    save_incident(f, "timeout", "CRITICAL", "2026-11-22T11:00:00Z", NULL, NULL);
    save_incident(f, "crash", "CRITICAL", "2026-11-22T12:00:00Z", NULL, NULL);
    persistor_find_options opts = {.struct_size = sizeof opts,
                                   .filter_json = "{\"severity\": \"CRITICAL\"}",
                                   .sort_field = "timestamp",
                                   .limit = 1};
    uint64_t n = 0;
    persistor_error err = {0};
    assert_int_equal(persistor_count(f->p, "incidents", &opts, &n, NULL, &err), PERSISTOR_OK);
    assert_int_equal(n, 2);
}

static void test_count_by_groups_records_without_the_field_under_null(void **state)
{
    fixture *f = *state;
    save_incident(f, "timeout", "LOW", "2026-11-22T10:00:00Z", ", \"details\": {\"step\": 3}",
                  NULL);
    save_incident(f, "timeout", "LOW", "2026-11-22T11:00:00Z",
                  ", \"details\": {\"step\": {\"$numberLong\": \"3\"}}", NULL);
    save_incident(f, "crash", "HIGH", "2026-11-22T12:00:00Z", NULL, NULL);
    save_incident(f, "crash", "HIGH", "2026-11-22T13:00:00Z", ", \"details\": {\"step\": \"x\"}",
                  NULL);
    persistor_group_list groups;
    persistor_error err = {0};
    /* 3 and NumberLong(3) are one group; null, numbers, then strings. */
    expect_groups(persistor_count_by(f->p, "inc", NULL, "details.step", &groups, &err), &groups,
                  &err, "null=1 3=2 \"x\"=1 ");
    persistor_find_options opts = {.struct_size = sizeof opts,
                                   .filter_json = "{\"severity\": \"HIGH\"}"};
    expect_groups(persistor_count_by(f->p, "inc", &opts, "details.step", &groups, &err), &groups,
                  &err, "null=1 \"x\"=1 ");
}

static void test_count_by_an_array_field_groups_by_the_whole_array(void **state)
{
    fixture *f = *state;
    save_incident(f, "a", "LOW", "2026-11-22T10:00:00Z", ", \"tags\": [\"net\", \"db\"]", NULL);
    save_incident(f, "b", "LOW", "2026-11-22T11:00:00Z", ", \"tags\": [\"net\", \"db\"]", NULL);
    save_incident(f, "c", "LOW", "2026-11-22T12:00:00Z", ", \"tags\": [\"api\"]", NULL);
    save_incident(f, "d", "LOW", "2026-11-22T13:00:00Z", ", \"tags\": []", NULL);
    persistor_group_list groups;
    persistor_error err = {0};
    /* An array sorts by its least element, the empty one before null. */
    expect_groups(persistor_count_by(f->p, "incidents", NULL, "tags", &groups, &err), &groups,
                  &err, "[  ]=1 [ \"api\" ]=1 [ \"net\", \"db\" ]=2 ");
}

static void test_count_by_refuses_a_field_that_is_not_a_path(void **state)
{
    fixture *f = *state;
    persistor_group_list groups = {0};
    persistor_error err = {0};
    assert_int_equal(persistor_count_by(f->p, "incidents", NULL, "$type", &groups, &err),
                     PERSISTOR_E_INVALID);
    if (strstr(err.message, "group field '$type' is not a field path") == NULL)
        fail_msg("unexpected message: %s", err.message);
    assert_int_equal(persistor_count_by(f->p, "incidents", NULL, NULL, &groups, &err),
                     PERSISTOR_E_INVALID);
    assert_null(groups.items);
}

static void test_record_to_json_is_one_line_of_relaxed_extended_json(void **state)
{
    (void)state;
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "_id", "wf-1");
    BSON_APPEND_DATE_TIME(&doc, "at", 1763800000000);
    BSON_APPEND_INT64(&doc, "n", 5000000000);
    char *json = persistor_record_to_json(bson_get_data(&doc), doc.len);
    assert_string_equal(json, "{ \"_id\" : \"wf-1\", \"at\" : { \"$date\" : "
                              "\"2025-11-22T08:26:40Z\" }, \"n\" : 5000000000 }");
    persistor_free(json);
    assert_null(persistor_record_to_json(bson_get_data(&doc), doc.len - 1));
    bson_destroy(&doc);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_validation_history_is_the_plans_validations_newest_first),
        T(test_plan_id_is_a_value_never_an_operator),
        T(test_required_arguments_of_the_seed_queries_are_named),
        T(test_validations_by_validity_counts_true_false_and_missing),
        T(test_validations_by_validity_of_nothing_is_no_group),
        T(test_workflows_by_status_newest_first_ties_by_id),
        T(test_sla_violations_most_violations_first),
        T(test_critical_incidents_newest_first_up_to_the_limit),
        T(test_incidents_by_type_counts_each_type),
        T(test_telemetry_retried_oldest_buffered_first),
        T(test_find_sorts_ascending_or_descending_with_ties_by_id),
        T(test_find_filter_from_json_or_bson),
        T(test_find_reports_a_bad_filter_with_line_and_column),
        T(test_find_refuses_an_operator_the_language_lacks),
        T(test_find_refuses_a_sort_field_that_is_not_a_path),
        T(test_find_refuses_options_without_struct_size),
        T(test_unknown_collection_names_what_the_profile_has),
        T(test_collections_are_found_by_key_or_by_the_profiles_name),
        T(test_a_name_the_profile_gives_wins_over_another_collections_key),
        T(test_count_ignores_sort_and_limit),
        T(test_count_by_groups_records_without_the_field_under_null),
        T(test_count_by_an_array_field_groups_by_the_whole_array),
        T(test_count_by_refuses_a_field_that_is_not_a_path),
        T(test_record_to_json_is_one_line_of_relaxed_extended_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
