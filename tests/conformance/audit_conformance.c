/*
 * audit_conformance.c — issue 6's promise that audit records, the
 * telemetry buffer and every query on them answer the same on every store.
 *
 *     persistor-audit-conformance [--mongodb-uri URI] [--transcript FILE]
 *
 * One fixed script runs through the public API (persistor.h) on a profile
 * of one adapter per store: memory, sqlite, lmdb, mongodb on the mock
 * mongod (URI given by tests/mongod/with-port.sh) and on a real server when
 * $PERSISTOR_TEST_MONGODB_URI is set.  The script saves validations,
 * workflow results (one upserted twice) and incidents, moves telemetry
 * through buffer, claim, ack, release, dead-letter and requeue under a
 * fixed clock it moves itself, then asks every query.  Each answer becomes
 * lines of a text transcript (ids as the script's labels, order, totals,
 * records as persistor_record_to_json gives them).  Every store's
 * transcript must equal memory's line by line, and memory's must hold the
 * answers derived by hand in test_memory_gives_the_answers_derived_by_hand.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <bson/bson.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#ifdef AUDIT_HAVE_MONGOC
#include <mongoc/mongoc.h>
#endif

#include "persistor/persistor.h"

/* 2025-11-22T08:26:40Z: what "now" is when the script starts. */
#define AC_T0 INT64_C(1763800000000)
#define AC_MAX_LABELS 64

/* ---- a growing text ---------------------------------------------------- */

typedef struct ac_text {
    char *data;
    size_t len, cap;
} ac_text;

static void ac_append(ac_text *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 4096;
        while (cap < t->len + n + 1)
            cap *= 2;
        char *grown = realloc(t->data, cap);
        assert_non_null(grown);
        t->data = grown;
        t->cap = cap;
    }
    memcpy(t->data + t->len, s, n);
    t->len += n;
    t->data[t->len] = '\0';
}

__attribute__((format(printf, 2, 3))) static void ac_printf(ac_text *t, const char *fmt, ...)
{
    char small[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(small, sizeof small, fmt, ap);
    va_end(ap);
    assert_true(n >= 0);
    if ((size_t)n < sizeof small) {
        ac_append(t, small, (size_t)n);
        return;
    }
    char *big = malloc((size_t)n + 1);
    assert_non_null(big);
    va_start(ap, fmt);
    vsnprintf(big, (size_t)n + 1, fmt, ap);
    va_end(ap);
    ac_append(t, big, (size_t)n);
    free(big);
}

static void ac_text_free(ac_text *t)
{
    free(t->data);
    *t = (ac_text){0};
}

/* ---- one store's run --------------------------------------------------- */

typedef struct ac_label {
    char id[PERSISTOR_ID_MAX + 1];
    char name[16];
} ac_label;

typedef struct ac_run {
    const char *store;
    char dir[1024];
    persistor *p;
    int64_t now; /* the handle's clock */
    ac_text out; /* the transcript */
    ac_label labels[AC_MAX_LABELS];
    size_t n_labels;
} ac_run;

static int64_t ac_clock(void *ctx)
{
    return ((ac_run *)ctx)->now;
}

/* The script's name for a record id ("V2", "wf-4", "T1"), or the id. */
static const char *ac_name_of(const ac_run *r, const char *id)
{
    for (size_t i = 0; i < r->n_labels; i++)
        if (strcmp(r->labels[i].id, id) == 0)
            return r->labels[i].name;
    return id;
}

static const char *ac_id_of(const ac_run *r, const char *name)
{
    for (size_t i = 0; i < r->n_labels; i++)
        if (strcmp(r->labels[i].name, name) == 0)
            return r->labels[i].id;
    fail_msg("[%s] no record is labelled %s", r->store, name);
    return NULL;
}

static void ac_label_id(ac_run *r, const char *name, const char *id)
{
    for (size_t i = 0; i < r->n_labels; i++)
        if (strcmp(r->labels[i].name, name) == 0)
            return;
    assert_true(r->n_labels < AC_MAX_LABELS);
    ac_label *l = &r->labels[r->n_labels++];
    snprintf(l->id, sizeof l->id, "%s", id);
    snprintf(l->name, sizeof l->name, "%s", name);
}

/* ---- records as text --------------------------------------------------- */

/*
 * The record as persistor_record_to_json gives it.  One field is not the
 * store's: a workflow result's `updated_at` is the core's version stamp,
 * strictly increasing across the whole process (audit.c), so the second
 * store's is later than the first's; it must be a date, and is shown as
 * "<version>".  Nothing else is rewritten.
 */
static char *ac_record_json(const ac_run *r, const uint8_t *data, uint32_t len)
{
    bson_t doc, shown = BSON_INITIALIZER;
    bson_iter_t it;
    if (!bson_init_static(&doc, data, len) || !bson_iter_init(&it, &doc))
        fail_msg("[%s] a record is not a BSON document (%u bytes)", r->store, len);
    while (bson_iter_next(&it)) {
        if (strcmp(bson_iter_key(&it), "updated_at") == 0) {
            if (!BSON_ITER_HOLDS_DATE_TIME(&it))
                fail_msg("[%s] updated_at is not a date", r->store);
            BSON_APPEND_UTF8(&shown, "updated_at", "<version>");
        } else {
            bson_append_iter(&shown, bson_iter_key(&it), -1, &it);
        }
    }
    char *json = persistor_record_to_json(bson_get_data(&shown), shown.len);
    bson_destroy(&shown);
    if (json == NULL)
        fail_msg("[%s] persistor_record_to_json gave NULL", r->store);
    return json;
}

static void ac_record_id(const ac_run *r, const uint8_t *data, uint32_t len, char *out)
{
    bson_t doc;
    bson_iter_t it;
    if (!bson_init_static(&doc, data, len) || !bson_iter_init_find(&it, &doc, "_id") ||
        !BSON_ITER_HOLDS_UTF8(&it))
        fail_msg("[%s] a record without a string _id", r->store);
    snprintf(out, PERSISTOR_ID_MAX + 1, "%s", bson_iter_utf8(&it, NULL));
}

/* One answered record: its name, and its JSON. */
typedef struct ac_row {
    char name[PERSISTOR_ID_MAX + 1];
    char *json;
} ac_row;

typedef struct ac_rows {
    ac_row *items;
    size_t count, cap;
} ac_rows;

static void ac_rows_add(const ac_run *r, ac_rows *rows, const char *id, const uint8_t *data,
                        uint32_t len)
{
    if (rows->count == rows->cap) {
        rows->cap = rows->cap ? rows->cap * 2 : 8;
        rows->items = realloc(rows->items, rows->cap * sizeof *rows->items);
        assert_non_null(rows->items);
    }
    ac_row *row = &rows->items[rows->count++];
    snprintf(row->name, sizeof row->name, "%s", ac_name_of(r, id));
    row->json = ac_record_json(r, data, len);
}

static int ac_row_cmp(const void *a, const void *b)
{
    return strcmp(((const ac_row *)a)->name, ((const ac_row *)b)->name);
}

/* "TITLE: rc=OK degraded=0 n=2 [extra] ids: A B", then "  A {json}" per
 * record.  `ordered` false: the answer has no order (find without a sort),
 * so the rows are shown sorted by name. */
static void ac_rows_print(ac_run *r, const char *title, int32_t rc, int degraded,
                          const char *extra, ac_rows *rows, bool ordered)
{
    if (!ordered && rows->count > 1)
        qsort(rows->items, rows->count, sizeof *rows->items, ac_row_cmp);
    ac_printf(&r->out, "%s: rc=%s degraded=%d n=%zu%s%s ids:", title, persistor_rc_name(rc),
              degraded != 0, rows->count, extra ? " " : "", extra ? extra : "");
    for (size_t i = 0; i < rows->count; i++)
        ac_printf(&r->out, " %s", rows->items[i].name);
    ac_printf(&r->out, "\n");
    for (size_t i = 0; i < rows->count; i++) {
        ac_printf(&r->out, "  %s %s\n", rows->items[i].name, rows->items[i].json);
        persistor_free(rows->items[i].json);
    }
    free(rows->items);
    *rows = (ac_rows){0};
}

/* An iterator's answer (the call's rc, then every record). */
static void ac_show_iter(ac_run *r, const char *title, int32_t rc, persistor_record_iter *it,
                         bool ordered)
{
    ac_rows rows = {0};
    int degraded = 0;
    if (rc == PERSISTOR_OK) {
        degraded = persistor_record_iter_degraded(it);
        const uint8_t *data;
        uint32_t len;
        persistor_error err = {0};
        while ((rc = persistor_record_iter_next(it, &data, &len, &err)) == PERSISTOR_OK) {
            char id[PERSISTOR_ID_MAX + 1];
            ac_record_id(r, data, len, id);
            ac_rows_add(r, &rows, id, data, len);
        }
        if (rc == PERSISTOR_ITER_END)
            rc = PERSISTOR_OK;
    }
    if (it != NULL)
        persistor_record_iter_free(it);
    ac_rows_print(r, title, rc, degraded, NULL, &rows, ordered);
}

static void ac_show_list(ac_run *r, const char *title, int32_t rc, persistor_record_list *list)
{
    ac_rows rows = {0};
    char extra[64];
    snprintf(extra, sizeof extra, "dead_lettered=%zu",
             rc == PERSISTOR_OK ? list->dead_lettered : 0);
    for (size_t i = 0; rc == PERSISTOR_OK && i < list->count; i++) {
        char id[PERSISTOR_ID_MAX + 1];
        ac_record_id(r, list->items[i].bson, list->items[i].bson_len, id);
        if (strcmp(id, list->items[i].id) != 0)
            fail_msg("[%s] %s: item id %s, but its record's _id is %s", r->store, title,
                     list->items[i].id, id);
        ac_rows_add(r, &rows, id, list->items[i].bson, list->items[i].bson_len);
    }
    int degraded = rc == PERSISTOR_OK ? list->degraded : 0;
    persistor_record_list_free(list);
    ac_rows_print(r, title, rc, degraded, extra, &rows, true);
}

/* "TITLE: rc=OK degraded=0 groups: null=2 false=2 true=3" */
static void ac_show_groups(ac_run *r, const char *title, int32_t rc, persistor_group_list *g)
{
    ac_printf(&r->out, "%s: rc=%s degraded=%d groups:", title, persistor_rc_name(rc),
              rc == PERSISTOR_OK && g->degraded != 0);
    for (size_t i = 0; rc == PERSISTOR_OK && i < g->count; i++) {
        ac_printf(&r->out, " %s=%llu", g->items[i].key_json,
                  (unsigned long long)g->items[i].total);
        /* key_bson is {_id: value}: the same value as key_json. */
        bson_t key;
        bson_iter_t it;
        if (!bson_init_static(&key, g->items[i].key_bson, g->items[i].key_bson_len) ||
            !bson_iter_init_find(&it, &key, "_id"))
            fail_msg("[%s] %s: group %s has no key_bson {_id: value}", r->store, title,
                     g->items[i].key_json);
    }
    ac_printf(&r->out, "\n");
    persistor_group_list_free(g);
}

/* ---- the script's steps ------------------------------------------------ */

static persistor_find_options ac_opts(const char *filter, const char *sort, int desc,
                                      uint64_t limit)
{
    return (persistor_find_options){.struct_size = sizeof(persistor_find_options),
                                    .filter_json = filter,
                                    .sort_field = sort,
                                    .sort_descending = desc,
                                    .limit = limit};
}

static const char *ac_kind_name(persistor_audit_kind kind)
{
    return kind == PERSISTOR_AUDIT_VALIDATION        ? "validation"
           : kind == PERSISTOR_AUDIT_WORKFLOW_RESULT ? "result"
                                                     : "incident";
}

/* Save one audit record and name its id `name`. */
static void ac_save(ac_run *r, persistor_audit_kind kind, const char *name, const char *json)
{
    persistor_record_input in = {.struct_size = sizeof in, .json = json, .json_source = name};
    char id[PERSISTOR_ID_MAX + 1] = "";
    persistor_error err = {0};
    int32_t rc = persistor_audit_save(r->p, kind, &in, id, &err);
    if (rc < 0)
        fail_msg("[%s] save %s %s: %s: %s", r->store, ac_kind_name(kind), name,
                 persistor_rc_name(rc), err.message);
    ac_label_id(r, name, id);
    ac_printf(&r->out, "save %s %s: rc=%s id=%s\n", ac_kind_name(kind), name,
              persistor_rc_name(rc), ac_name_of(r, id));
}

static void ac_buffer(ac_run *r, const char *name, const char *json)
{
    persistor_record_input in = {.struct_size = sizeof in, .json = json, .json_source = name};
    char id[PERSISTOR_ID_MAX + 1] = "";
    persistor_error err = {0};
    int32_t rc = persistor_telemetry_buffer(r->p, &in, id, &err);
    if (rc < 0)
        fail_msg("[%s] buffer %s: %s: %s", r->store, name, persistor_rc_name(rc), err.message);
    ac_label_id(r, name, id);
    ac_printf(&r->out, "buffer %s: rc=%s id=%s\n", name, persistor_rc_name(rc), ac_name_of(r, id));
}

static void ac_find(ac_run *r, const char *title, const char *collection,
                    const persistor_find_options *opts)
{
    persistor_record_iter *it = NULL;
    persistor_error err = {0};
    int32_t rc = persistor_find(r->p, collection, opts, &it, &err);
    ac_show_iter(r, title, rc, it, opts != NULL && opts->sort_field != NULL);
}

static void ac_count(ac_run *r, const char *title, const char *collection, const char *filter)
{
    persistor_find_options opts = ac_opts(filter, NULL, 0, 0);
    uint64_t n = 0;
    int32_t degraded = 0;
    persistor_error err = {0};
    int32_t rc = persistor_count(r->p, collection, &opts, &n, &degraded, &err);
    ac_printf(&r->out, "%s: rc=%s degraded=%d count=%llu\n", title, persistor_rc_name(rc),
              degraded != 0, (unsigned long long)(rc == PERSISTOR_OK ? n : 0));
}

static void ac_count_by(ac_run *r, const char *title, const char *collection, const char *filter,
                        const char *field)
{
    persistor_find_options opts = ac_opts(filter, NULL, 0, 0);
    persistor_group_list g = {0};
    persistor_error err = {0};
    int32_t rc = persistor_count_by(r->p, collection, &opts, field, &g, &err);
    ac_show_groups(r, title, rc, &g);
}

static void ac_claim(ac_run *r, const char *title, uint32_t max_records, uint32_t lease_ms,
                     uint32_t max_retries)
{
    persistor_claim_options opts = {.struct_size = sizeof opts,
                                    .max_records = max_records,
                                    .lease_ms = lease_ms,
                                    .max_retries = max_retries};
    persistor_record_list list = {0};
    persistor_error err = {0};
    int32_t rc = persistor_telemetry_claim(r->p, &opts, &list, &err);
    ac_show_list(r, title, rc, &list);
}

static void ac_dead(ac_run *r, const char *title)
{
    persistor_record_list list = {0};
    persistor_error err = {0};
    int32_t rc = persistor_telemetry_dead(r->p, 0, &list, &err);
    ac_show_list(r, title, rc, &list);
}

typedef int32_t (*ac_ids_fn)(persistor *p, const char *const *ids, size_t n, uint64_t *done,
                             persistor_error *err);

/* ack, release or requeue of the named records (names NULL: ids NULL). */
static void ac_ids_call(ac_run *r, const char *title, ac_ids_fn fn, const char *const *names,
                        size_t n)
{
    const char *ids[8];
    assert_true(n <= 8);
    for (size_t i = 0; names != NULL && i < n; i++)
        ids[i] = strncmp(names[i], "no-such", 7) == 0 ? names[i] : ac_id_of(r, names[i]);
    uint64_t done = 0;
    persistor_error err = {0};
    int32_t rc = fn(r->p, names != NULL ? ids : NULL, n, &done, &err);
    ac_printf(&r->out, "%s: rc=%s done=%llu\n", title, persistor_rc_name(rc),
              (unsigned long long)(rc == PERSISTOR_OK ? done : 0));
}

/* A whole collection, sorted by _id: every stored byte the script made. */
static void ac_dump(ac_run *r, const char *collection)
{
    char title[64];
    snprintf(title, sizeof title, "dump %s", collection);
    persistor_find_options opts = ac_opts(NULL, "_id", 0, 0);
    ac_find(r, title, collection, &opts);
}

/* ---- the script ------------------------------------------------------- */

#define DATE(s) "{\"$date\": \"" s "\"}"

static void ac_save_validations(ac_run *r)
{
    const persistor_audit_kind V = PERSISTOR_AUDIT_VALIDATION;
    ac_save(r, V, "V1",
            "{\"plan_id\": \"p-1\", \"workflow_id\": \"wf-1\", \"validation_result\": "
            "{\"valid\": true, \"errors\": []}, \"timestamp\": " DATE("2026-01-01T00:00:01Z") "}");
    ac_save(r, V, "V2",
            "{\"plan_id\": \"p-1\", \"workflow_id\": \"wf-2\", \"validation_result\": "
            "{\"valid\": false, \"errors\": [\"missing step\"]}, \"timestamp\": " DATE(
                "2026-01-01T00:00:03Z") "}");
    /* The same second as V2: the history orders them by _id. */
    ac_save(r, V, "V3",
            "{\"plan_id\": \"p-1\", \"workflow_id\": \"wf-3\", \"validation_result\": "
            "{\"valid\": true, \"score\": 0.5}, \"timestamp\": " DATE("2026-01-01T00:00:03Z") "}");
    /* No `valid` at all, no workflow_id: the null group. */
    ac_save(r, V, "V4",
            "{\"plan_id\": \"p-1\", \"validation_result\": {\"checked_by\": \"lint\"},"
            " \"timestamp\": " DATE("2026-01-01T00:00:02Z") "}");
    ac_save(r, V, "V5",
            "{\"plan_id\": \"p-2\", \"workflow_id\": \"wf-4\", \"validation_result\": "
            "{\"valid\": false, \"errors\": []}, \"timestamp\": " DATE("2026-01-01T00:00:04Z") "}");
    /* No timestamp: now, the clock's AC_T0 (older than every date above). */
    ac_save(r, V, "V6",
            "{\"plan_id\": \"p-2\", \"workflow_id\": \"wf-5\", \"validation_result\": "
            "{\"valid\": true}}");
    /* `valid` null groups with the missing one, as MongoDB's $group does. */
    ac_save(r, V, "V7",
            "{\"plan_id\": \"p-3\", \"validation_result\": {\"valid\": null},"
            " \"timestamp\": " DATE("2026-01-01T00:00:05Z") "}");
    /* V1 again, keys in another order: the same record. */
    ac_save(r, V, "V1-again",
            "{\"timestamp\": " DATE("2026-01-01T00:00:01Z") ", \"validation_result\": "
            "{\"errors\": [], \"valid\": true}, \"workflow_id\": \"wf-1\", \"plan_id\": \"p-1\"}");
}

static void ac_save_results(ac_run *r)
{
    const persistor_audit_kind W = PERSISTOR_AUDIT_WORKFLOW_RESULT;
    ac_save(r, W, "wf-1",
            "{\"workflow_id\": \"wf-1\", \"plan_id\": \"p-1\", \"intent_id\": \"i-1\","
            " \"status\": \"COMPLETED\", \"metrics\": {\"duration_ms\": 1200},"
            " \"sla_status\": {\"violations_count\": 0},"
            " \"consolidated_at\": " DATE("2026-01-02T00:00:01Z") "}");
    ac_save(r, W, "wf-2",
            "{\"workflow_id\": \"wf-2\", \"status\": \"FAILED\","
            " \"sla_status\": {\"violations_count\": 3, \"breached\": [\"latency\"]},"
            " \"consolidated_at\": " DATE("2026-01-02T00:00:02Z") "}");
    /* No sla_status: the null group of violations_count. */
    ac_save(r, W, "wf-3",
            "{\"workflow_id\": \"wf-3\", \"status\": \"COMPLETED\","
            " \"consolidated_at\": " DATE("2026-01-02T00:00:03Z") "}");
    ac_save(r, W, "wf-4",
            "{\"workflow_id\": \"wf-4\", \"status\": \"RUNNING\","
            " \"sla_status\": {\"violations_count\": 1},"
            " \"consolidated_at\": " DATE("2026-01-02T00:00:04Z") "}");
    ac_save(r, W, "wf-5",
            "{\"workflow_id\": \"wf-5\", \"status\": \"FAILED\","
            " \"sla_status\": {\"violations_count\": 2},"
            " \"consolidated_at\": " DATE("2026-01-02T00:00:06Z") "}");
    ac_save(r, W, "wf-6",
            "{\"workflow_id\": \"wf-6\", \"status\": \"RUNNING\", \"tickets_summary\": "
            "{\"open\": 2, \"closed\": 5}, \"sla_status\": {\"violations_count\": 0},"
            " \"consolidated_at\": " DATE("2026-01-02T00:00:07Z") "}");
    /* sla_status without violations_count; consolidated with wf-3. */
    ac_save(r, W, "wf-7",
            "{\"workflow_id\": \"wf-7\", \"status\": \"COMPLETED\", \"sla_status\": {},"
            " \"consolidated_at\": " DATE("2026-01-02T00:00:03Z") "}");
    /* wf-4 again, later: the whole record is replaced. */
    r->now += 1000;
    ac_save(r, W, "wf-4",
            "{\"workflow_id\": \"wf-4\", \"status\": \"COMPLETED\", \"plan_id\": \"p-2\","
            " \"sla_status\": {\"violations_count\": 2},"
            " \"consolidated_at\": " DATE("2026-01-02T00:00:05Z") "}");
}

static void ac_save_incidents(ac_run *r)
{
    const persistor_audit_kind I = PERSISTOR_AUDIT_INCIDENT;
    ac_save(r, I, "I1",
            "{\"workflow_id\": \"wf-1\", \"type\": \"timeout\", \"severity\": \"CRITICAL\","
            " \"details\": {\"step\": 3}, \"timestamp\": " DATE("2026-01-03T00:00:01Z") "}");
    ac_save(r, I, "I2",
            "{\"workflow_id\": \"wf-2\", \"type\": \"timeout\", \"severity\": \"HIGH\","
            " \"details\": {\"step\": 5}, \"timestamp\": " DATE("2026-01-03T00:00:02Z") "}");
    ac_save(r, I, "I3",
            "{\"workflow_id\": \"wf-2\", \"type\": \"sla_breach\", \"severity\": \"CRITICAL\","
            " \"timestamp\": " DATE("2026-01-03T00:00:03Z") "}");
    /* The same second as I3. */
    ac_save(r, I, "I4",
            "{\"workflow_id\": \"wf-3\", \"type\": \"crash\", \"severity\": \"CRITICAL\","
            " \"details\": \"segfault\", \"timestamp\": " DATE("2026-01-03T00:00:03Z") "}");
    ac_save(r, I, "I5",
            "{\"workflow_id\": \"wf-4\", \"type\": \"sla_breach\", \"severity\": \"LOW\","
            " \"timestamp\": " DATE("2026-01-03T00:00:04Z") "}");
    ac_save(r, I, "I6",
            "{\"workflow_id\": \"wf-5\", \"type\": \"crash\", \"severity\": \"CRITICAL\","
            " \"timestamp\": " DATE("2026-01-03T00:00:05Z") "}");
    /* No timestamp: now (AC_T0 + 1 s by then), the oldest. */
    ac_save(r, I, "I7",
            "{\"workflow_id\": \"wf-6\", \"type\": \"timeout\", \"severity\": \"MEDIUM\"}");
    ac_save(r, I, "I8",
            "{\"workflow_id\": \"wf-7\", \"type\": \"network\", \"severity\": \"CRITICAL\","
            " \"timestamp\": " DATE("2026-01-03T00:00:00Z") "}");
    ac_save(r, I, "I1-again",
            "{\"workflow_id\": \"wf-1\", \"type\": \"timeout\", \"severity\": \"CRITICAL\","
            " \"details\": {\"step\": 3}, \"timestamp\": " DATE("2026-01-03T00:00:01Z") "}");
}

/*
 * Telemetry under the handle's clock (max_retries 2, leases of 1 s):
 *   T1..T4 buffered a second apart; claim 2 -> T1 T2; claim -> T3 T4 (T1
 *   T2 leased); ack T2 (+ an unknown id); release T3; claim -> T3 (now
 *   claimed twice); +2 s: claim -> T1 T4, T3 dead-lettered; +2 s: claim ->
 *   nothing, T1 T4 dead-lettered; requeue T3, then every dead one; claim 1
 *   -> T1; ack T1.  T3 and T4 stay, pending.
 */
static void ac_telemetry(ac_run *r)
{
    static const char *const t1[] = {"T1"}, *const t2[] = {"T2", "no-such-id"},
                             *const t3[] = {"T3"};
    r->now = AC_T0 + 10000;
    ac_buffer(r, "T1",
              "{\"correlation\": {\"workflow_id\": \"wf-1\", \"plan_id\": \"p-1\"},"
              " \"metrics\": {\"latency_ms\": 12}, \"source\": \"orchestrator\","
              " \"timestamp\": " DATE("2026-01-04T00:00:01Z") "}");
    r->now += 1000;
    ac_buffer(r, "T2",
              "{\"correlation\": {\"workflow_id\": \"wf-2\"}, \"metrics\": {\"latency_ms\": 40},"
              " \"source\": \"gateway\", \"timestamp\": " DATE("2026-01-04T00:00:02Z") "}");
    r->now += 1000;
    ac_buffer(r, "T3",
              "{\"correlation\": {\"workflow_id\": \"wf-3\", \"intent_id\": \"i-3\"},"
              " \"metrics\": {\"errors\": 1}, \"source\": \"orchestrator\","
              " \"timestamp\": " DATE("2026-01-04T00:00:03Z") "}");
    r->now += 1000;
    ac_buffer(r, "T4",
              "{\"correlation\": {\"workflow_id\": \"wf-4\"}, \"metrics\": {},"
              " \"source\": \"worker\", \"timestamp\": " DATE("2026-01-04T00:00:04Z") "}");
    r->now += 1000;
    /* A retried buffer, later: the same record. */
    ac_buffer(r, "T1-again",
              "{\"correlation\": {\"workflow_id\": \"wf-1\", \"plan_id\": \"p-1\"},"
              " \"metrics\": {\"latency_ms\": 12}, \"source\": \"orchestrator\","
              " \"timestamp\": " DATE("2026-01-04T00:00:01Z") "}");
    ac_count(r, "count telemetry pending", "telemetry_buffer", NULL);

    r->now += 1000;
    ac_claim(r, "claim#1 max 2", 2, 1000, 2);
    ac_claim(r, "claim#2 leased ones invisible", 10, 1000, 2);
    ac_ids_call(r, "ack T2 + unknown", persistor_telemetry_ack, t2, 2);
    ac_ids_call(r, "release T3", persistor_telemetry_release, t3, 1);
    ac_claim(r, "claim#3 released one", 10, 1000, 2);
    ac_count(r, "count telemetry retried", "telemetry_buffer", "{\"retry_count\": {\"$gt\": 0}}");

    r->now += 2000;
    ac_claim(r, "claim#4 leases ended", 10, 1000, 2);
    ac_dead(r, "dead after claim#4");
    {
        persistor_record_iter *it = NULL;
        persistor_error err = {0};
        int32_t rc = persistor_telemetry_retried(r->p, 0, &it, &err);
        ac_show_iter(r, "telemetry_retried after claim#4", rc, it, true);
    }
    r->now += 2000;
    ac_claim(r, "claim#5 all past max_retries", 10, 1000, 2);
    ac_dead(r, "dead after claim#5");
    ac_ids_call(r, "requeue T3", persistor_telemetry_requeue, t3, 1);
    ac_dead(r, "dead after requeue T3");
    ac_ids_call(r, "requeue all", persistor_telemetry_requeue, NULL, 0);
    ac_dead(r, "dead after requeue all");
    ac_claim(r, "claim#6 max 1", 1, 1000, 2);
    {
        persistor_record_iter *it = NULL;
        persistor_error err = {0};
        int32_t rc = persistor_telemetry_retried(r->p, 0, &it, &err);
        ac_show_iter(r, "telemetry_retried after claim#6", rc, it, true);
    }
    ac_ids_call(r, "ack T1", persistor_telemetry_ack, t1, 1);
    ac_ids_call(r, "ack T1 again", persistor_telemetry_ack, t1, 1);
    ac_count(r, "count telemetry left", "telemetry_buffer", NULL);
}

static void ac_seed_queries(ac_run *r)
{
    persistor_error err = {0};
    persistor_group_list g = {0};
    int32_t rc = persistor_audit_validations_by_validity(r->p, &g, &err);
    ac_show_groups(r, "validations_by_validity", rc, &g);
    rc = persistor_audit_incidents_by_type(r->p, &g, &err);
    ac_show_groups(r, "incidents_by_type", rc, &g);

    static const struct {
        const char *plan;
        uint64_t limit;
    } history[] = {{"p-1", 0}, {"p-1", 2}, {"p-2", 0}, {"p-none", 0}};
    for (size_t i = 0; i < sizeof history / sizeof history[0]; i++) {
        char title[64];
        snprintf(title, sizeof title, "validation_history %s limit %llu", history[i].plan,
                 (unsigned long long)history[i].limit);
        persistor_record_iter *it = NULL;
        rc = persistor_audit_validation_history(r->p, history[i].plan, history[i].limit, &it,
                                                &err);
        ac_show_iter(r, title, rc, it, true);
    }
    static const struct {
        const char *status;
        uint64_t limit;
    } by_status[] = {{"COMPLETED", 0}, {"COMPLETED", 2}, {"FAILED", 0}, {"RUNNING", 0},
                     {"PAUSED", 0}};
    for (size_t i = 0; i < sizeof by_status / sizeof by_status[0]; i++) {
        char title[64];
        snprintf(title, sizeof title, "workflows_by_status %s limit %llu", by_status[i].status,
                 (unsigned long long)by_status[i].limit);
        persistor_record_iter *it = NULL;
        rc = persistor_audit_workflows_by_status(r->p, by_status[i].status, by_status[i].limit,
                                                 &it, &err);
        ac_show_iter(r, title, rc, it, true);
    }
    static const uint64_t limits[] = {0, 2};
    for (size_t i = 0; i < 2; i++) {
        char title[64];
        persistor_record_iter *it = NULL;
        snprintf(title, sizeof title, "sla_violations limit %llu", (unsigned long long)limits[i]);
        rc = persistor_audit_sla_violations(r->p, limits[i], &it, &err);
        ac_show_iter(r, title, rc, it, true);
    }
    static const uint64_t critical[] = {0, 3, 20};
    for (size_t i = 0; i < 3; i++) {
        char title[64];
        persistor_record_iter *it = NULL;
        snprintf(title, sizeof title, "critical_incidents limit %llu",
                 (unsigned long long)critical[i]);
        rc = persistor_audit_critical_incidents(r->p, critical[i], &it, &err);
        ac_show_iter(r, title, rc, it, true);
    }
}

static void ac_general_queries(ac_run *r)
{
    persistor_find_options o;
    o = ac_opts("{\"plan_id\": \"p-1\"}", "timestamp", 0, 0);
    ac_find(r, "find validations p-1 by timestamp", "validation_audit", &o);
    o = ac_opts("{\"validation_result.valid\": {\"$in\": [true]}}", NULL, 0, 0);
    ac_find(r, "find validations valid (unordered)", "validation_audit", &o);
    o = ac_opts("{\"workflow_id\": null}", NULL, 0, 0);
    ac_find(r, "find validations without workflow (unordered)", "validation_audit", &o);
    o = ac_opts("{\"sla_status.violations_count\": {\"$gte\": 2}}", "sla_status.violations_count",
                1, 2);
    ac_find(r, "find results violations>=2 desc limit 2", "workflow_results", &o);
    o = ac_opts("{\"status\": {\"$ne\": \"COMPLETED\"}}", "consolidated_at", 0, 1);
    ac_find(r, "find results not completed oldest limit 1", "workflow_results", &o);
    o = ac_opts("{\"$or\": [{\"severity\": \"HIGH\"}, {\"type\": \"crash\"}]}", "timestamp", 1, 0);
    ac_find(r, "find incidents high or crash newest", "incidents", &o);
    o = ac_opts(NULL, "details.step", 0, 0);
    ac_find(r, "find incidents by details.step", "incidents", &o);
    o = ac_opts("{\"timestamp\": {\"$gte\": " DATE("2026-01-03T00:00:03Z") "}}", "timestamp", 0,
                0);
    ac_find(r, "find incidents since :03", "incidents", &o);
    o = ac_opts("{\"$and\": [{\"severity\": {\"$nin\": [\"LOW\", \"MEDIUM\"]}},"
                " {\"details\": {\"$exists\": true}}]}",
                "workflow_id", 1, 0);
    ac_find(r, "find incidents severe with details", "incidents", &o);
    o = ac_opts("{\"state\": \"pending\"}", "buffered_at", 0, 0);
    ac_find(r, "find telemetry pending", "telemetry_buffer", &o);
    o = ac_opts("{\"$where\": \"1\"}", NULL, 0, 0);
    ac_find(r, "find unsupported operator", "incidents", &o);
    ac_find(r, "find unknown collection", "no_such_collection", NULL);

    ac_count(r, "count validations", "validation_audit", NULL);
    ac_count(r, "count results", "workflow_results", NULL);
    ac_count(r, "count incidents", "incidents", NULL);
    ac_count(r, "count incidents critical", "incidents", "{\"severity\": \"CRITICAL\"}");
    ac_count(r, "count results with violations", "workflow_results",
             "{\"sla_status.violations_count\": {\"$gt\": 0}}");
    ac_count(r, "count none", "incidents", "{\"type\": \"no-such-type\"}");

    ac_count_by(r, "count_by results status", "workflow_results", NULL, "status");
    ac_count_by(r, "count_by results violations", "workflow_results", NULL,
                "sla_status.violations_count");
    ac_count_by(r, "count_by incidents severity", "incidents", NULL, "severity");
    ac_count_by(r, "count_by incidents details.step", "incidents", NULL, "details.step");
    ac_count_by(r, "count_by critical incidents type", "incidents", "{\"severity\": \"CRITICAL\"}",
                "type");
    ac_count_by(r, "count_by validations missing field", "validation_audit", NULL, "no_such_field");
    ac_count_by(r, "count_by no match", "incidents", "{\"type\": \"no-such-type\"}", "severity");
}

static void ac_script(ac_run *r)
{
    r->now = AC_T0;
    ac_save_validations(r);
    ac_save_results(r);
    ac_save_incidents(r);
    ac_seed_queries(r);
    ac_telemetry(r);
    ac_general_queries(r);
    ac_dump(r, "validation_audit");
    ac_dump(r, "workflow_results");
    ac_dump(r, "incidents");
    ac_dump(r, "telemetry_buffer");
}

/* ---- stores ----------------------------------------------------------- */

static int ac_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

/* The adapter lines of `store`'s profile, or NULL with *why when the store
 * cannot run here. */
static bool ac_adapter_yaml(const char *store, const char *dir, const char *uri, char *out,
                            size_t cap, const char **why)
{
    static unsigned database_counter;
    if (strcmp(store, "memory") == 0) {
        snprintf(out, cap, "      - type: memory\n        path: %s\n", AUDIT_MEMORY_SO);
        return true;
    }
    if (strcmp(store, "sqlite") == 0) {
#ifdef AUDIT_SQLITE_SO
        snprintf(out, cap,
                 "      - type: sqlite\n        path: %s\n        file: %s/audit.sqlite\n",
                 AUDIT_SQLITE_SO, dir);
        return true;
#else
        *why = "the sqlite adapter is not built";
        return false;
#endif
    }
    if (strcmp(store, "lmdb") == 0) {
#ifdef AUDIT_LMDB_SO
        snprintf(out, cap,
                 "      - type: lmdb\n        path: %s\n        directory: %s/audit.lmdb\n"
                 "        sync: false\n",
                 AUDIT_LMDB_SO, dir);
        return true;
#else
        *why = "the lmdb adapter is not built";
        return false;
#endif
    }
#ifdef AUDIT_MONGODB_SO
    if (uri == NULL) {
        *why = strcmp(store, "mongodb") == 0
                   ? "no mock mongod (run through ctest with python3-mockupdb and "
                     "python3-mongomock installed: it passes --mongodb-uri)"
                   : "PERSISTOR_TEST_MONGODB_URI is not set";
        return false;
    }
    /* A database of this run: a rerun never sees an old one's records.
     * A real server's URI stays in the environment (it may hold a
     * password): the profile names the variable. */
    struct timeval tv;
    gettimeofday(&tv, NULL);
    bool real = strcmp(store, "mongodb-real") == 0;
    snprintf(out, cap,
             "      - type: mongodb\n        path: %s\n        uri: %s%s%s\n"
             "        database: audit_%ld_%lld_%u\n        socket_timeout_ms: 120000\n",
             AUDIT_MONGODB_SO, real ? "${" : "\"", real ? "PERSISTOR_TEST_MONGODB_URI" : uri,
             real ? "}" : "\"", (long)getpid(),
             (long long)(tv.tv_sec % 100000) * 1000 + tv.tv_usec / 1000, ++database_counter);
    return true;
#else
    (void)uri;
    *why = "the mongodb adapter is not built";
    return false;
#endif
}

/* Open `store` in a fresh directory; false (with a SKIP line) when it
 * cannot run here. */
static bool ac_open(ac_run *r, const char *store, const char *uri)
{
    memset(r, 0, sizeof *r);
    r->store = store;
    const char *tmp = getenv("TMPDIR");
    snprintf(r->dir, sizeof r->dir, "%s/persistor-audit-%s-XXXXXX", tmp && *tmp ? tmp : "/tmp",
             store);
    if (mkdtemp(r->dir) == NULL)
        fail_msg("mkdtemp %s failed", r->dir);
    char adapter[2048], config[1100];
    const char *why = NULL;
    if (!ac_adapter_yaml(store, r->dir, uri, adapter, sizeof adapter, &why)) {
        fprintf(stderr, "SKIP %s: %s\n", store, why);
        nftw(r->dir, ac_rm, 16, FTW_DEPTH | FTW_PHYS);
        return false;
    }
    snprintf(config, sizeof config, "%s/profiles.yaml", r->dir);
    FILE *f = fopen(config, "w");
    assert_non_null(f);
    /* fail_closed everywhere: a store's error is the answer, never a
     * NOT_STORED that would hide it. */
    fprintf(f,
            "profiles:\n  audit:\n    adapters:\n%s"
            "    collections:\n"
            "      validation_audit: {on_failure: fail_closed}\n"
            "      workflow_results: {on_failure: fail_closed}\n"
            "      incidents: {on_failure: fail_closed}\n"
            "      telemetry_buffer: {on_failure: fail_closed}\n",
            adapter);
    assert_int_equal(fclose(f), 0);
    persistor_open_options opts = {.struct_size = sizeof opts,
                                   .config_path = config,
                                   .profile = "audit",
                                   .clock_ms = ac_clock,
                                   .clock_ctx = r};
    persistor_error err = {0};
    int32_t rc = persistor_open(&opts, &r->p, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("[%s] open: %s: %s", store, persistor_rc_name(rc), err.message);
    return true;
}

static void ac_close(ac_run *r)
{
    persistor_close(r->p);
    r->p = NULL;
    nftw(r->dir, ac_rm, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- the comparison ---------------------------------------------------- */

typedef struct ac_world {
    ac_text memory; /* memory's transcript: the reference */
    const char *mock_uri;
    const char *transcript_path; /* --transcript: where to write memory's */
    bool used_mongodb;
} ac_world;

static ac_world world;

/* The line of a text that starts at *at (without its newline), moving *at
 * past it; false at the end of the text. */
static bool ac_next_line(const char **at, const char **line, size_t *len)
{
    if (*at == NULL || **at == '\0')
        return false;
    const char *end = strchr(*at, '\n');
    *line = *at;
    *len = end ? (size_t)(end - *at) : strlen(*at);
    *at = end ? end + 1 : *at + *len;
    return true;
}

/* Keep a transcript that differs, for the reader of the failure. */
static void ac_keep(const char *store, const ac_text *t)
{
    const char *tmp = getenv("TMPDIR");
    char path[1024];
    snprintf(path, sizeof path, "%s/persistor-audit-%s-%ld.txt", tmp && *tmp ? tmp : "/tmp",
             store, (long)getpid());
    FILE *f = fopen(path, "w");
    if (f == NULL)
        return;
    fputs(t->data ? t->data : "", f);
    fclose(f);
    fprintf(stderr, "[%s] transcript kept in %s\n", store, path);
}

static void ac_expect_same_as_memory(const char *store, const ac_text *t)
{
    static const char ended[] = "(end of transcript)";
    const char *pa = world.memory.data, *pb = t->data, *a = NULL, *b = NULL;
    const char *first_a = ended, *first_b = ended;
    size_t la = 0, lb = 0, first_la = sizeof ended - 1, first_lb = sizeof ended - 1;
    size_t line = 0, differing = 0, first = 0;
    for (;;) {
        bool has_a = ac_next_line(&pa, &a, &la), has_b = ac_next_line(&pb, &b, &lb);
        if (!has_a && !has_b)
            break;
        line++;
        if (has_a && has_b && la == lb && memcmp(a, b, la) == 0)
            continue;
        if (differing++ == 0) {
            first = line;
            if (has_a) {
                first_a = a;
                first_la = la;
            }
            if (has_b) {
                first_b = b;
                first_lb = lb;
            }
        }
    }
    if (differing == 0) {
        printf("[%s] %zu lines, the same as memory's\n", store, line);
        return;
    }
    ac_keep("memory", &world.memory);
    ac_keep(store, t);
    fail_msg("%s differs from memory in %zu lines; the first is line %zu:\n  memory: %.*s\n"
             "  %s: %.*s",
             store, differing, first, (int)first_la, first_a, store, (int)first_lb, first_b);
}

/* Run the script on `store` and compare it with memory's. */
static void ac_check_store(const char *store, const char *uri)
{
    ac_run *r = calloc(1, sizeof *r);
    assert_non_null(r);
    if (!ac_open(r, store, uri)) {
        free(r);
        skip();
        return;
    }
    if (strncmp(store, "mongodb", 7) == 0)
        world.used_mongodb = true;
    ac_script(r);
    ac_close(r);
    ac_text out = r->out;
    free(r);
    ac_expect_same_as_memory(store, &out);
    ac_text_free(&out);
}

/* ---- the hand-derived answers ----------------------------------------- */

/* The line of memory's transcript that starts with "TITLE: ", into out;
 * NULL when there is none. */
static const char *ac_line_of(const char *title, char *out, size_t cap)
{
    char key[256];
    snprintf(key, sizeof key, "%s: ", title);
    const char *at = world.memory.data, *line;
    size_t len;
    while (ac_next_line(&at, &line, &len))
        if (len >= strlen(key) && strncmp(line, key, strlen(key)) == 0) {
            snprintf(out, cap, "%.*s", (int)len, line);
            return out;
        }
    return NULL;
}

/* Memory's line for TITLE is "TITLE: want" (want printf-style). */
__attribute__((format(printf, 2, 3))) static void ac_expect(const char *title, const char *fmt,
                                                            ...)
{
    char want[2048], full[2304];
    static char got[16384];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(want, sizeof want, fmt, ap);
    va_end(ap);
    snprintf(full, sizeof full, "%s: %s", title, want);
    got[0] = '\0';
    if (ac_line_of(title, got, sizeof got) == NULL)
        fail_msg("memory's transcript has no line \"%s: ...\"", title);
    if (strcmp(got, full) != 0)
        fail_msg("memory answered\n  %s\nexpected\n  %s", got, full);
}

/* Two records saved with the same time: their order is by _id. */
static const char *ac_tie(const ac_run *r, const char *x, const char *y, char *out, size_t cap)
{
    bool x_first = strcmp(ac_id_of(r, x), ac_id_of(r, y)) < 0;
    snprintf(out, cap, "%s %s", x_first ? x : y, x_first ? y : x);
    return out;
}

static ac_run memory_run;

static int ac_group_setup(void **state)
{
    (void)state;
    /* The reference: memory's transcript, made once for every case. */
    if (!ac_open(&memory_run, "memory", NULL))
        return -1;
    ac_script(&memory_run);
    world.memory = memory_run.out;
    memory_run.out = (ac_text){0};
    if (world.transcript_path != NULL) {
        FILE *f = fopen(world.transcript_path, "w");
        if (f == NULL || fputs(world.memory.data, f) < 0 || fclose(f) != 0) {
            fprintf(stderr, "cannot write %s\n", world.transcript_path);
            return -1;
        }
    }
    persistor_close(memory_run.p);
    memory_run.p = NULL;
    nftw(memory_run.dir, ac_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int ac_group_teardown(void **state)
{
    (void)state;
    ac_text_free(&world.memory);
#ifdef AUDIT_HAVE_MONGOC
    if (world.used_mongodb)
        mongoc_cleanup(); /* the adapter never does (NO_UNLOAD): for leak checkers */
#endif
    return 0;
}

static void test_memory_gives_the_answers_derived_by_hand(void **state)
{
    (void)state;
    const ac_run *r = &memory_run; /* its labels: the ids it was given */
    char v23[64], i34[64];
    ac_tie(r, "V2", "V3", v23, sizeof v23);
    ac_tie(r, "I3", "I4", i34, sizeof i34);

    /* Saves: a retried validation or incident is the same record. */
    ac_expect("save validation V1-again", "rc=EXISTS id=V1");
    ac_expect("save incident I1-again", "rc=EXISTS id=I1");
    ac_expect("save result wf-4", "rc=OK id=wf-4");
    ac_expect("count validations", "rc=OK degraded=0 count=7");
    ac_expect("count results", "rc=OK degraded=0 count=7");
    ac_expect("count incidents", "rc=OK degraded=0 count=8");
    ac_expect("count incidents critical", "rc=OK degraded=0 count=5");
    ac_expect("count results with violations", "rc=OK degraded=0 count=3");
    ac_expect("count none", "rc=OK degraded=0 count=0");

    /* Groups, in MongoDB's order (null < numbers < strings < booleans). */
    ac_expect("validations_by_validity", "rc=OK degraded=0 groups: null=2 false=2 true=3");
    ac_expect("incidents_by_type",
              "rc=OK degraded=0 groups: \"crash\"=2 \"network\"=1 \"sla_breach\"=2 "
              "\"timeout\"=3");
    ac_expect("count_by results status",
              "rc=OK degraded=0 groups: \"COMPLETED\"=4 \"FAILED\"=2 \"RUNNING\"=1");
    ac_expect("count_by results violations", "rc=OK degraded=0 groups: null=2 0=2 2=2 3=1");
    ac_expect("count_by incidents severity",
              "rc=OK degraded=0 groups: \"CRITICAL\"=5 \"HIGH\"=1 \"LOW\"=1 \"MEDIUM\"=1");
    ac_expect("count_by incidents details.step", "rc=OK degraded=0 groups: null=6 3=1 5=1");
    ac_expect("count_by critical incidents type",
              "rc=OK degraded=0 groups: \"crash\"=2 \"network\"=1 \"sla_breach\"=1 "
              "\"timeout\"=1");
    ac_expect("count_by validations missing field", "rc=OK degraded=0 groups: null=7");
    ac_expect("count_by no match", "rc=OK degraded=0 groups:");

    /* Orders: newest first, ties by _id. */
    ac_expect("validation_history p-1 limit 0", "rc=OK degraded=0 n=4 ids: %s V4 V1", v23);
    ac_expect("validation_history p-1 limit 2", "rc=OK degraded=0 n=2 ids: %s", v23);
    ac_expect("validation_history p-2 limit 0", "rc=OK degraded=0 n=2 ids: V5 V6");
    ac_expect("validation_history p-none limit 0", "rc=OK degraded=0 n=0 ids:");
    ac_expect("workflows_by_status COMPLETED limit 0",
              "rc=OK degraded=0 n=4 ids: wf-4 wf-3 wf-7 wf-1");
    ac_expect("workflows_by_status COMPLETED limit 2", "rc=OK degraded=0 n=2 ids: wf-4 wf-3");
    ac_expect("workflows_by_status FAILED limit 0", "rc=OK degraded=0 n=2 ids: wf-5 wf-2");
    ac_expect("workflows_by_status RUNNING limit 0", "rc=OK degraded=0 n=1 ids: wf-6");
    ac_expect("workflows_by_status PAUSED limit 0", "rc=OK degraded=0 n=0 ids:");
    ac_expect("sla_violations limit 0", "rc=OK degraded=0 n=3 ids: wf-2 wf-4 wf-5");
    ac_expect("sla_violations limit 2", "rc=OK degraded=0 n=2 ids: wf-2 wf-4");
    ac_expect("critical_incidents limit 0", "rc=OK degraded=0 n=5 ids: I6 %s I1 I8", i34);
    ac_expect("critical_incidents limit 3", "rc=OK degraded=0 n=3 ids: I6 %s", i34);
    ac_expect("critical_incidents limit 20", "rc=OK degraded=0 n=5 ids: I6 %s I1 I8", i34);

    /* General finds. */
    ac_expect("find validations p-1 by timestamp", "rc=OK degraded=0 n=4 ids: V1 V4 %s", v23);
    ac_expect("find validations valid (unordered)", "rc=OK degraded=0 n=3 ids: V1 V3 V6");
    ac_expect("find validations without workflow (unordered)", "rc=OK degraded=0 n=2 ids: V4 V7");
    ac_expect("find results violations>=2 desc limit 2", "rc=OK degraded=0 n=2 ids: wf-2 wf-4");
    ac_expect("find results not completed oldest limit 1", "rc=OK degraded=0 n=1 ids: wf-2");
    ac_expect("find incidents high or crash newest", "rc=OK degraded=0 n=3 ids: I6 I4 I2");
    ac_expect("find incidents since :03", "rc=OK degraded=0 n=4 ids: %s I5 I6", i34);
    ac_expect("find incidents severe with details", "rc=OK degraded=0 n=3 ids: I4 I2 I1");
    ac_expect("find unsupported operator", "rc=E_INVALID degraded=0 n=0 ids:");
    ac_expect("find unknown collection", "rc=E_INVALID degraded=0 n=0 ids:");

    /* The telemetry buffer's story (ac_telemetry). */
    ac_expect("buffer T1-again", "rc=EXISTS id=T1");
    ac_expect("count telemetry pending", "rc=OK degraded=0 count=4");
    ac_expect("claim#1 max 2", "rc=OK degraded=0 n=2 dead_lettered=0 ids: T1 T2");
    ac_expect("claim#2 leased ones invisible", "rc=OK degraded=0 n=2 dead_lettered=0 ids: T3 T4");
    ac_expect("ack T2 + unknown", "rc=OK done=1");
    ac_expect("release T3", "rc=OK done=1");
    ac_expect("claim#3 released one", "rc=OK degraded=0 n=1 dead_lettered=0 ids: T3");
    ac_expect("count telemetry retried", "rc=OK degraded=0 count=3");
    ac_expect("claim#4 leases ended", "rc=OK degraded=0 n=2 dead_lettered=1 ids: T1 T4");
    ac_expect("dead after claim#4", "rc=OK degraded=0 n=1 dead_lettered=0 ids: T3");
    ac_expect("claim#5 all past max_retries", "rc=OK degraded=0 n=0 dead_lettered=2 ids:");
    ac_expect("dead after claim#5", "rc=OK degraded=0 n=3 dead_lettered=0 ids: T1 T3 T4");
    ac_expect("requeue T3", "rc=OK done=1");
    ac_expect("dead after requeue T3", "rc=OK degraded=0 n=2 dead_lettered=0 ids: T1 T4");
    ac_expect("requeue all", "rc=OK done=2");
    ac_expect("dead after requeue all", "rc=OK degraded=0 n=0 dead_lettered=0 ids:");
    ac_expect("claim#6 max 1", "rc=OK degraded=0 n=1 dead_lettered=0 ids: T1");
    ac_expect("telemetry_retried after claim#6", "rc=OK degraded=0 n=1 ids: T1");
    ac_expect("ack T1", "rc=OK done=1");
    ac_expect("ack T1 again", "rc=OK done=0");
    ac_expect("count telemetry left", "rc=OK degraded=0 count=2");
    ac_expect("find telemetry pending", "rc=OK degraded=0 n=2 ids: T3 T4");
    ac_expect("dump telemetry_buffer", "rc=OK degraded=0 n=2 ids: %s",
              strcmp(ac_id_of(r, "T3"), ac_id_of(r, "T4")) < 0 ? "T3 T4" : "T4 T3");
    printf("[memory] the hand-derived answers hold\n");
}

static void test_sqlite_answers_as_memory(void **state)
{
    (void)state;
    ac_check_store("sqlite", NULL);
}

static void test_lmdb_answers_as_memory(void **state)
{
    (void)state;
    ac_check_store("lmdb", NULL);
}

static void test_mongodb_mock_answers_as_memory(void **state)
{
    (void)state;
    ac_check_store("mongodb", world.mock_uri);
}

static void test_mongodb_real_answers_as_memory(void **state)
{
    (void)state;
    const char *uri = getenv("PERSISTOR_TEST_MONGODB_URI");
    ac_check_store("mongodb-real", uri != NULL && *uri != '\0' ? uri : NULL);
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--mongodb-uri") == 0 && i + 1 < argc) {
            world.mock_uri = argv[++i];
        } else if (strcmp(argv[i], "--transcript") == 0 && i + 1 < argc) {
            world.transcript_path = argv[++i];
        } else {
            fprintf(stderr, "usage: %s [--mongodb-uri URI] [--transcript FILE]\n", argv[0]);
            return 2;
        }
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_memory_gives_the_answers_derived_by_hand),
        cmocka_unit_test(test_sqlite_answers_as_memory),
        cmocka_unit_test(test_lmdb_answers_as_memory),
        cmocka_unit_test(test_mongodb_mock_answers_as_memory),
        cmocka_unit_test(test_mongodb_real_answers_as_memory),
    };
    return cmocka_run_group_tests(tests, ac_group_setup, ac_group_teardown);
}
