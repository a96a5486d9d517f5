/*
 * audit.c — the orchestrator's audit records (seed 002) on top of generic
 * collections: validation_audit, workflow_results and incidents, with the
 * seed's indexes on the fields the documents really have, real dates, and
 * ids that make a retried save store one record.
 *
 * The telemetry buffer has its own file, and reading, checking and storing
 * a caller's record is record.c's.  This file must not know which adapter
 * answers.
 */
#include <bson/bson.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "bson_canon.h"
#include "error.h"
#include "persistor_internal.h"
#include "record.h"
#include "sha256.h"

/* ------------------------------------------------------------------ */
/* Collections and indexes, as the seed lists them                    */

#define AUDIT_KEYS(name, ...) static const persistor_index_key name[] = {__VA_ARGS__}
AUDIT_KEYS(k_plan, {"plan_id", 1});
AUDIT_KEYS(k_workflow, {"workflow_id", 1});
AUDIT_KEYS(k_timestamp, {"timestamp", 1});
AUDIT_KEYS(k_plan_timestamp, {"plan_id", 1}, {"timestamp", 1});
AUDIT_KEYS(k_status, {"status", 1});
AUDIT_KEYS(k_consolidated, {"consolidated_at", 1});
AUDIT_KEYS(k_status_consolidated, {"status", 1}, {"consolidated_at", 1});
AUDIT_KEYS(k_type, {"type", 1});
AUDIT_KEYS(k_severity, {"severity", 1});
AUDIT_KEYS(k_severity_timestamp, {"severity", 1}, {"timestamp", 1});

#define INDEX(name, keys, flags) {name, keys, sizeof keys / sizeof keys[0], flags}
static const persistor_index_spec validation_indexes[] = {
    INDEX("plan_id_1", k_plan, 0),
    INDEX("workflow_id_1", k_workflow, 0),
    INDEX("timestamp_1", k_timestamp, 0),
    INDEX("plan_id_1_timestamp_1", k_plan_timestamp, 0),
};
/* workflow_id is the _id, and is also stored as a field: the seed's unique
 * index on it holds by construction and lets the seed's queries use it. */
static const persistor_index_spec result_indexes[] = {
    INDEX("workflow_id_1", k_workflow, PERSISTOR_INDEX_UNIQUE),
    INDEX("plan_id_1", k_plan, 0),
    INDEX("status_1", k_status, 0),
    INDEX("consolidated_at_1", k_consolidated, 0),
    INDEX("status_1_consolidated_at_1", k_status_consolidated, 0),
};
static const persistor_index_spec incident_indexes[] = {
    INDEX("workflow_id_1", k_workflow, 0),
    INDEX("type_1", k_type, 0),
    INDEX("severity_1", k_severity, 0),
    INDEX("timestamp_1", k_timestamp, 0),
    INDEX("severity_1_timestamp_1", k_severity_timestamp, 0),
};

static int32_t audit_build_validation(const record *rec, int64_t now, bson_t *doc, char *id,
                                      persistor_error *err);
static int32_t audit_build_result(const record *rec, int64_t now, bson_t *doc, char *id,
                                  persistor_error *err);
static int32_t audit_build_incident(const record *rec, int64_t now, bson_t *doc, char *id,
                                    persistor_error *err);

/* What every saved audit record logs, when it has it. */
static const char *const audit_logged[] = {"plan_id", "workflow_id", "status", "type",
                                           "severity"};
#define AUDIT_SAVE(kind, event, write_kind, build)                                            \
    {kind, event, event "_saved", write_kind, build, audit_logged,                            \
     sizeof audit_logged / sizeof audit_logged[0]}

typedef struct audit_collection {
    record_kind save; /* its collection, and how a record is built and written */
    const persistor_index_spec *indexes;
    uint32_t n_indexes;
    const char *time_field;    /* the record's date: TTL runs on it */
    const char *version_field; /* for replays of upserts, or NULL */
} audit_collection;

/* Indexed by persistor_audit_kind - 1. */
static const audit_collection audit_collections[] = {
    {AUDIT_SAVE(PROFILE_COLL_VALIDATION_AUDIT, "validation_audit",
                PERSISTOR_WRITE_INSERT_IF_ABSENT, audit_build_validation),
     validation_indexes, 4, "timestamp", NULL},
    {AUDIT_SAVE(PROFILE_COLL_WORKFLOW_RESULTS, "workflow_result", PERSISTOR_WRITE_UPSERT,
                audit_build_result),
     result_indexes, 5, "consolidated_at", "updated_at"},
    {AUDIT_SAVE(PROFILE_COLL_INCIDENTS, "incident", PERSISTOR_WRITE_INSERT_IF_ABSENT,
                audit_build_incident),
     incident_indexes, 5, "timestamp", NULL},
};

size_t audit_collection_specs(const profile *prof, persistor_collection_spec *specs)
{
    size_t n = sizeof audit_collections / sizeof audit_collections[0];
    for (size_t i = 0; i < n; i++) {
        const audit_collection *a = &audit_collections[i];
        const profile_collection *c = &prof->collections[a->save.kind];
        specs[i] = (persistor_collection_spec){
            .struct_size = sizeof specs[i],
            .name = c->name,
            .indexes = a->indexes,
            .n_indexes = a->n_indexes,
            .ttl_field = c->ttl_seconds > 0 ? a->time_field : NULL,
            .ttl_seconds = c->ttl_seconds,
            .version_field = a->version_field,
        };
    }
    return n;
}

/* ------------------------------------------------------------------ */
/* The three records                                                  */

static int32_t audit_build_validation(const record *rec, int64_t now, bson_t *doc, char *id,
                                      persistor_error *err)
{
    static const char *const set_by_us[] = {"_id", "hash"};
    const char *plan, *workflow;
    int64_t ts;
    int32_t rc = record_refuse(rec, set_by_us, 2, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "plan_id", true, &plan, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "workflow_id", false, &workflow, err);
    if (rc == PERSISTOR_OK)
        rc = record_document(rec, "validation_result", true, err);
    if (rc == PERSISTOR_OK)
        rc = record_date(rec, "timestamp", now, &ts, err);
    if (rc != PERSISTOR_OK)
        return rc;
    bson_iter_t it;
    bson_t result, canon = BSON_INITIALIZER;
    const uint8_t *data;
    uint32_t len;
    record_find(rec, "validation_result", &it);
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&result, data, len) || !bson_canon(&result, &canon)) {
        bson_destroy(&canon);
        return error_set(err, PERSISTOR_E_INVALID, "%s: validation_result is malformed",
                         rec->what);
    }
    char hash[PERSISTOR_HASH_HEX_LEN + 1], ts_text[32];
    static const char *const result_tag[] = {"persistor-validation-result-v1"};
    sha256_hex_of(result_tag, 1, bson_get_data(&canon), canon.len, hash);
    bson_destroy(&canon);
    snprintf(ts_text, sizeof ts_text, "%" PRId64, ts);
    const char *const parts[] = {"persistor-validation-v1", plan,
                                 workflow != NULL ? workflow : "", ts_text, hash};
    sha256_hex_of(parts, 5, NULL, 0, id);

    static const char *const rewritten[] = {"_id", "hash", "plan_id", "workflow_id", "timestamp"};
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_UTF8(doc, "plan_id", plan);
    if (workflow != NULL)
        BSON_APPEND_UTF8(doc, "workflow_id", workflow);
    else
        BSON_APPEND_NULL(doc, "workflow_id");
    BSON_APPEND_DATE_TIME(doc, "timestamp", ts);
    BSON_APPEND_UTF8(doc, "hash", hash);
    record_copy_fields(rec, doc, rewritten, 5);
    return PERSISTOR_OK;
}

/* updated_at orders a workflow's results for replay (UPSERT_IF_NEWER):
 * strictly increasing in this process even within one millisecond. */
static int64_t audit_version_ms(int64_t now)
{
    static atomic_int_fast64_t last;
    int_fast64_t seen = atomic_load(&last), next;
    do
        next = now > seen ? now : seen + 1;
    while (!atomic_compare_exchange_weak(&last, &seen, next));
    return next;
}

static int32_t audit_build_result(const record *rec, int64_t now, bson_t *doc, char *id,
                                  persistor_error *err)
{
    static const char *const set_by_us[] = {"_id", "updated_at"};
    static const char *const documents[] = {"metrics", "tickets_summary", "sla_status"};
    const char *workflow, *status, *plan, *intent;
    int64_t at;
    int32_t rc = record_refuse(rec, set_by_us, 2, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "workflow_id", true, &workflow, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "status", true, &status, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "plan_id", false, &plan, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "intent_id", false, &intent, err);
    for (size_t i = 0; rc == PERSISTOR_OK && i < 3; i++)
        rc = record_document(rec, documents[i], false, err);
    if (rc == PERSISTOR_OK)
        rc = record_date(rec, "consolidated_at", now, &at, err);
    if (rc != PERSISTOR_OK)
        return rc;
    snprintf(id, PERSISTOR_ID_MAX + 1, "%s", workflow);
    static const char *const rewritten[] = {"_id", "workflow_id", "consolidated_at", "updated_at"};
    BSON_APPEND_UTF8(doc, "_id", workflow);
    BSON_APPEND_UTF8(doc, "workflow_id", workflow);
    BSON_APPEND_DATE_TIME(doc, "consolidated_at", at);
    BSON_APPEND_DATE_TIME(doc, "updated_at", audit_version_ms(now));
    record_copy_fields(rec, doc, rewritten, 4);
    return PERSISTOR_OK;
}

static int32_t audit_build_incident(const record *rec, int64_t now, bson_t *doc, char *id,
                                    persistor_error *err)
{
    static const char *const set_by_us[] = {"_id"};
    static const char *const severities[] = {"LOW", "MEDIUM", "HIGH", "CRITICAL"};
    static const char *const incident_tag[] = {"persistor-incident-v1"};
    const char *workflow, *type, *severity;
    int64_t ts;
    int32_t rc = record_refuse(rec, set_by_us, 1, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "workflow_id", true, &workflow, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "type", true, &type, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "severity", true, &severity, err);
    if (rc == PERSISTOR_OK)
        rc = record_date(rec, "timestamp", now, &ts, err);
    if (rc != PERSISTOR_OK)
        return rc;
    bool known = false;
    for (size_t i = 0; i < 4 && !known; i++)
        known = strcmp(severity, severities[i]) == 0;
    if (!known)
        return error_set(err, PERSISTOR_E_INVALID,
                         "%s: \"severity\" must be LOW, MEDIUM, HIGH or CRITICAL, got \"%s\"",
                         rec->what, severity);
    static const char *const rewritten[] = {"_id", "workflow_id", "type", "severity", "timestamp"};
    bson_t body = BSON_INITIALIZER, canon = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&body, "workflow_id", workflow);
    BSON_APPEND_UTF8(&body, "type", type);
    BSON_APPEND_UTF8(&body, "severity", severity);
    BSON_APPEND_DATE_TIME(&body, "timestamp", ts);
    record_copy_fields(rec, &body, rewritten, 5);
    bool ok = bson_canon(&body, &canon);
    if (ok)
        sha256_hex_of(incident_tag, 1, bson_get_data(&canon), canon.len, id);
    BSON_APPEND_UTF8(doc, "_id", id);
    bson_concat(doc, &body);
    bson_destroy(&body);
    bson_destroy(&canon);
    return ok ? PERSISTOR_OK
              : error_set(err, PERSISTOR_E_INVALID, "%s: the record is malformed", rec->what);
}

/* ------------------------------------------------------------------ */
/* Saving                                                             */

int32_t persistor_audit_save(persistor *p, persistor_audit_kind kind,
                             const persistor_record_input *in, char id_out[PERSISTOR_ID_MAX + 1],
                             persistor_error *err)
{
    if (kind < PERSISTOR_AUDIT_VALIDATION || kind > PERSISTOR_AUDIT_INCIDENT)
        return error_set(err, PERSISTOR_E_INVALID, "unknown audit record kind %d", (int)kind);
    return record_save(p, &audit_collections[(size_t)kind - 1].save, in, id_out, err);
}
