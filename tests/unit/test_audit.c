/*
 * test_audit.c — persistor_audit_save: the seed's three audit records with
 * real dates, a result hash that ignores key order, ids that make a retried
 * save store one record, workflow results upserted on workflow_id, the
 * seed's indexes, and fail-open when nothing can take a record.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buffer.h"
#include "fault_control.h"
#include "log.h"
#include "persistor_internal.h"
#include "sha256.h"
#include "unit_env.h"

typedef unit_store fixture;

static int setup(void **state)
{
    *state = unit_store_new("audit", "info", "unit",
                            "profiles:\n"
                            "  unit:\n"
                            "    adapters:\n"
                            "      - type: memory\n"
                            "  down:\n"
                            "    adapters:\n"
                            "      - type: fault\n"
                            "        path: %s\n"
                            "        inner: {plugins}/memory.so\n"
                            "        control: {dir}/control\n"
                            "    retry: {max_attempts: 1, initial_interval_ms: 1,"
                            " backoff_coefficient: 1.0, max_interval_ms: 1}\n"
                            "    collections:\n"
                            "      incidents: {on_failure: fail_closed}\n",
                            AUDIT_FAULT_SO);
    return 0;
}

static int teardown(void **state)
{
    unit_store_free(*state);
    log_set_fd(-1);
    return 0;
}

static int32_t save(fixture *f, persistor_audit_kind kind, const char *json, char *id,
                    persistor_error *err)
{
    persistor_record_input in = {.struct_size = sizeof in, .json = json, .json_source = "t.json"};
    return persistor_audit_save(f->p, kind, &in, id, err);
}

static void save_ok(fixture *f, persistor_audit_kind kind, const char *json, char *id)
{
    persistor_error err = {0};
    int32_t rc = save(f, kind, json, id, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("save %s: %s %s", json, persistor_rc_name(rc), err.message);
}

static void expect_invalid(fixture *f, persistor_audit_kind kind, const char *json,
                           const char *says)
{
    persistor_error err = {0};
    assert_int_equal(save(f, kind, json, NULL, &err), PERSISTOR_E_INVALID);
    if (strstr(err.message, says) == NULL)
        fail_msg("expected \"%s\" in: %s", says, err.message);
}

/* The stored document, owned by the caller (bson_destroy). */
static bson_t *stored(fixture *f, profile_collection_kind kind, const char *id)
{
    persistor_buffer buf = {0};
    persistor_error err = {0};
    int32_t rc = router_get(f->p->router, persistor_collection_name(f->p, kind), id, &buf, NULL,
                            &err);
    if (rc != PERSISTOR_OK)
        fail_msg("get %s: %s %s", id, persistor_rc_name(rc), err.message);
    bson_t *doc = bson_new_from_data(buf.data, buf.len);
    buffer_free(&buf);
    return doc;
}

static const char *field_utf8(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : NULL;
}

static int64_t field_date(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, key));
    assert_true(BSON_ITER_HOLDS_DATE_TIME(&it));
    return bson_iter_date_time(&it);
}

static uint64_t count(fixture *f, profile_collection_kind kind)
{
    uint64_t n = 0;
    assert_int_equal(router_count(f->p->router, persistor_collection_name(f->p, kind), NULL, 0,
                                  &n, NULL, NULL),
                     PERSISTOR_OK);
    return n;
}

/* ------------------------------------------------------------------ */

static void test_validation_is_stored_with_a_date_and_the_result_hash(void **state)
{
    fixture *f = *state;
    char id[PERSISTOR_ID_MAX + 1];
    save_ok(f, PERSISTOR_AUDIT_VALIDATION,
            "{\"plan_id\": \"p1\", \"workflow_id\": \"w1\","
            " \"validation_result\": {\"valid\": true, \"errors\": []}}",
            id);
    bson_t *doc = stored(f, PROFILE_COLL_VALIDATION_AUDIT, id);
    assert_string_equal(field_utf8(doc, "_id"), id);
    assert_string_equal(field_utf8(doc, "plan_id"), "p1");
    assert_string_equal(field_utf8(doc, "workflow_id"), "w1");
    assert_true(field_date(doc, "timestamp") == f->now); /* absent: now, as a date */
    /* The canonical form: keys sorted, so {"errors": [], "valid": true}. */
    bson_t canon = BSON_INITIALIZER, empty = BSON_INITIALIZER;
    BSON_APPEND_ARRAY(&canon, "errors", &empty);
    BSON_APPEND_BOOL(&canon, "valid", true);
    sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    char hex[SHA256_HEX_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, "persistor-validation-result-v1", sizeof "persistor-validation-result-v1");
    sha256_update(&ctx, bson_get_data(&canon), canon.len);
    sha256_final(&ctx, digest);
    sha256_hex(digest, hex);
    assert_string_equal(field_utf8(doc, "hash"), hex);
    bson_destroy(&canon);
    bson_destroy(&empty);
    bson_destroy(doc);
}

static void test_validation_hash_ignores_key_order_and_a_retry_stores_one(void **state)
{
    fixture *f = *state;
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1];
    save_ok(f, PERSISTOR_AUDIT_VALIDATION,
            "{\"plan_id\": \"p\", \"validation_result\": {\"valid\": false, \"why\": {\"x\": 1,"
            " \"y\": 2}}, \"timestamp\": {\"$date\": \"2026-11-22T10:00:00Z\"}}",
            a);
    persistor_error err = {0};
    assert_int_equal(save(f, PERSISTOR_AUDIT_VALIDATION,
                          "{\"timestamp\": {\"$date\": \"2026-11-22T10:00:00Z\"},"
                          " \"validation_result\": {\"why\": {\"y\": 2, \"x\": 1}, \"valid\": false},"
                          " \"plan_id\": \"p\"}",
                          b, &err),
                     PERSISTOR_EXISTS);
    assert_string_equal(a, b);
    assert_int_equal(count(f, PROFILE_COLL_VALIDATION_AUDIT), 1);
    bson_t *doc = stored(f, PROFILE_COLL_VALIDATION_AUDIT, a);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "workflow_id") && BSON_ITER_HOLDS_NULL(&it));
    bson_destroy(doc);
}

static void test_validation_refuses_what_the_seed_got_wrong(void **state)
{
    fixture *f = *state;
    expect_invalid(f, PERSISTOR_AUDIT_VALIDATION, "{\"validation_result\": {}}",
                   "\"plan_id\" is required");
    expect_invalid(f, PERSISTOR_AUDIT_VALIDATION, "{\"plan_id\": \"p\"}",
                   "\"validation_result\" is required");
    expect_invalid(f, PERSISTOR_AUDIT_VALIDATION,
                   "{\"plan_id\": \"p\", \"validation_result\": true}", "must be an object");
    expect_invalid(f, PERSISTOR_AUDIT_VALIDATION,
                   "{\"plan_id\": \"p\", \"validation_result\": {}, \"timestamp\": "
                   "\"2026-11-22T10:00:00Z\"}",
                   "\"timestamp\" must be a date");
    expect_invalid(f, PERSISTOR_AUDIT_VALIDATION,
                   "{\"plan_id\": \"p\", \"validation_result\": {}, \"hash\": \"x\"}",
                   "\"hash\" is set by persistor");
    expect_invalid(f, PERSISTOR_AUDIT_VALIDATION, "{\"plan_id\": ", "t.json:1:");
    assert_int_equal(count(f, PROFILE_COLL_VALIDATION_AUDIT), 0);
}

static void test_workflow_result_is_upserted_on_its_workflow_id(void **state)
{
    fixture *f = *state;
    char id[PERSISTOR_ID_MAX + 1];
    save_ok(f, PERSISTOR_AUDIT_WORKFLOW_RESULT,
            "{\"workflow_id\": \"wf-7\", \"plan_id\": \"p\", \"status\": \"RUNNING\","
            " \"sla_status\": {\"violations_count\": 0}}",
            id);
    assert_string_equal(id, "wf-7");
    f->now += 1000;
    save_ok(f, PERSISTOR_AUDIT_WORKFLOW_RESULT,
            "{\"workflow_id\": \"wf-7\", \"status\": \"FAILED\","
            " \"sla_status\": {\"violations_count\": 2}}",
            id);
    assert_int_equal(count(f, PROFILE_COLL_WORKFLOW_RESULTS), 1);
    bson_t *doc = stored(f, PROFILE_COLL_WORKFLOW_RESULTS, "wf-7");
    assert_string_equal(field_utf8(doc, "status"), "FAILED");
    assert_string_equal(field_utf8(doc, "workflow_id"), "wf-7");
    assert_null(field_utf8(doc, "plan_id")); /* a whole replacement, as the seed's upsert */
    assert_true(field_date(doc, "consolidated_at") == f->now);
    assert_true(field_date(doc, "updated_at") >= f->now);
    bson_destroy(doc);
}

static void test_workflow_result_without_a_workflow_id_is_invalid(void **state)
{
    fixture *f = *state;
    /* The seed's flaw: a result without workflow_id overwrote another. */
    expect_invalid(f, PERSISTOR_AUDIT_WORKFLOW_RESULT, "{\"status\": \"DONE\"}",
                   "\"workflow_id\" is required");
    expect_invalid(f, PERSISTOR_AUDIT_WORKFLOW_RESULT,
                   "{\"workflow_id\": \"\", \"status\": \"DONE\"}", "non-empty string");
    expect_invalid(f, PERSISTOR_AUDIT_WORKFLOW_RESULT,
                   "{\"workflow_id\": null, \"status\": \"DONE\"}", "\"workflow_id\" is required");
    expect_invalid(f, PERSISTOR_AUDIT_WORKFLOW_RESULT,
                   "{\"workflow_id\": \"w\", \"status\": \"DONE\", \"metrics\": 3}",
                   "\"metrics\" must be an object");
    assert_int_equal(count(f, PROFILE_COLL_WORKFLOW_RESULTS), 0);
}

static void test_incident_severity_is_checked_and_a_retry_stores_one(void **state)
{
    fixture *f = *state;
    const char *json = "{\"workflow_id\": \"w\", \"type\": \"timeout\", \"severity\": "
                       "\"CRITICAL\", \"details\": {\"step\": 3}}";
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1];
    save_ok(f, PERSISTOR_AUDIT_INCIDENT, json, a);
    persistor_error err = {0};
    assert_int_equal(save(f, PERSISTOR_AUDIT_INCIDENT, json, b, &err), PERSISTOR_EXISTS);
    assert_string_equal(a, b);
    f->now += 1; /* the same incident a millisecond later is another one */
    save_ok(f, PERSISTOR_AUDIT_INCIDENT, json, b);
    assert_string_not_equal(a, b);
    assert_int_equal(count(f, PROFILE_COLL_INCIDENTS), 2);
    expect_invalid(f, PERSISTOR_AUDIT_INCIDENT,
                   "{\"workflow_id\": \"w\", \"type\": \"t\", \"severity\": \"critical\"}",
                   "LOW, MEDIUM, HIGH or CRITICAL");
    expect_invalid(f, PERSISTOR_AUDIT_INCIDENT, "{\"workflow_id\": \"w\", \"severity\": \"LOW\"}",
                   "\"type\" is required");
}

static void test_audit_collections_have_the_seed_s_indexes(void **state)
{
    fixture *f = *state;
    static const struct {
        profile_collection_kind kind;
        const char *names;
    } want[] = {
        {PROFILE_COLL_VALIDATION_AUDIT, "plan_id_1 workflow_id_1 timestamp_1 plan_id_1_timestamp_1 "},
        {PROFILE_COLL_WORKFLOW_RESULTS,
         "workflow_id_1 plan_id_1 status_1 consolidated_at_1 status_1_consolidated_at_1 "},
        {PROFILE_COLL_INCIDENTS,
         "workflow_id_1 type_1 severity_1 timestamp_1 severity_1_timestamp_1 "},
    };
    for (size_t w = 0; w < sizeof want / sizeof want[0]; w++) {
        const char *name = persistor_collection_name(f->p, want[w].kind);
        const persistor_collection_spec *spec = NULL;
        for (size_t i = 0; i < f->p->n_specs; i++)
            if (strcmp(f->p->specs[i].name, name) == 0)
                spec = &f->p->specs[i];
        assert_non_null(spec);
        char names[256] = "";
        for (uint32_t i = 0; i < spec->n_indexes; i++)
            snprintf(names + strlen(names), sizeof names - strlen(names), "%s ",
                     spec->indexes[i].name);
        assert_string_equal(names, want[w].names);
    }
}

static void test_audit_fails_open_by_default_and_says_so(void **state)
{
    fixture *f = *state;
    fault_control *c = fault_control_open(f->control);
    assert_non_null(c);
    fault_inject(c, FAULT_OP_ALL & ~FAULT_OP_OPEN, PERSISTOR_E_UNAVAILABLE, -1, 0);
    persistor *down = unit_store_open(f, "down");
    persistor_error err = {0};
    char logs[] = "/tmp/persistor-audit-log-XXXXXX";
    int fd = mkstemp(logs);
    assert_true(fd >= 0);
    log_set_fd(fd);
    persistor_record_input in = {.struct_size = sizeof in,
                                 .json = "{\"workflow_id\": \"w9\", \"status\": \"DONE\"}"};
    char id[PERSISTOR_ID_MAX + 1];
    assert_int_equal(persistor_audit_save(down, PERSISTOR_AUDIT_WORKFLOW_RESULT, &in, id, &err),
                     PERSISTOR_NOT_STORED);
    /* incidents are fail_closed in this profile: the error comes back. */
    in.json = "{\"workflow_id\": \"w9\", \"type\": \"t\", \"severity\": \"LOW\"}";
    assert_int_equal(persistor_audit_save(down, PERSISTOR_AUDIT_INCIDENT, &in, id, &err),
                     PERSISTOR_E_UNAVAILABLE);
    log_set_fd(-1);
    char text[8192] = "";
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    assert_true(n > 0);
    close(fd);
    unlink(logs);
    assert_non_null(strstr(text, "\"event\":\"workflow_result_persist_failed\""));
    assert_non_null(strstr(text, "\"id\":\"w9\""));
    assert_null(strstr(text, "incident_persist_failed"));
    persistor_close(down);
    fault_control_close(c);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_validation_is_stored_with_a_date_and_the_result_hash),
        T(test_validation_hash_ignores_key_order_and_a_retry_stores_one),
        T(test_validation_refuses_what_the_seed_got_wrong),
        T(test_workflow_result_is_upserted_on_its_workflow_id),
        T(test_workflow_result_without_a_workflow_id_is_invalid),
        T(test_incident_severity_is_checked_and_a_retry_stores_one),
        T(test_audit_collections_have_the_seed_s_indexes),
        T(test_audit_fails_open_by_default_and_says_so),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
