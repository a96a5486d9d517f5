/*
 * test_telemetry.c — the telemetry buffer: the stored document and its id,
 * a retried buffer stored once, claims in buffered_at order with a lease
 * that hides a record from other claimers, release, ack, dead letters and
 * requeue, the seed's indexes, fail-open when nothing can take a record,
 * and two handles on one sqlite file racing for the same records.
 *
 * The memory profile runs on a clock the tests move; leases end when the
 * test says so, never by waiting.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <bson/bson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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
    *state = unit_store_new("telemetry", "info", "unit",
                            "profiles:\n"
                            "  unit:\n"
                            "    adapters:\n"
                            "      - type: memory\n"
                            "  ttl:\n"
                            "    adapters:\n"
                            "      - type: memory\n"
                            "    collections:\n"
                            "      telemetry_buffer: {ttl_seconds: 3600}\n"
                            "  down:\n"
                            "    adapters:\n"
                            "      - type: fault\n"
                            "        path: %s\n"
                            "        inner: {plugins}/memory.so\n"
                            "        control: {dir}/control\n"
                            "    retry: {max_attempts: 1, initial_interval_ms: 1,"
                            " backoff_coefficient: 1.0, max_interval_ms: 1}\n"
                            "  shared:\n"
                            "    adapters:\n"
                            "      - type: sqlite\n"
                            "        file: {dir}/shared.sqlite\n"
                            "  slow:\n"
                            "    adapters:\n"
                            "      - type: fault\n"
                            "        path: %s\n"
                            "        inner: {plugins}/sqlite.so\n"
                            "        inner_options: file={dir}/shared.sqlite\n"
                            "        control: {dir}/control\n",
                            TELEMETRY_FAULT_SO, TELEMETRY_FAULT_SO);
    return 0;
}

static int teardown(void **state)
{
    unit_store_free(*state);
    log_set_fd(-1);
    return 0;
}

static int32_t buffer_on(persistor *p, const char *json, char *id, persistor_error *err)
{
    persistor_record_input in = {.struct_size = sizeof in, .json = json, .json_source = "t.json"};
    return persistor_telemetry_buffer(p, &in, id, err);
}

static void buffer_ok(persistor *p, const char *json, char *id)
{
    persistor_error err = {0};
    int32_t rc = buffer_on(p, json, id, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("buffer %s: %s %s", json, persistor_rc_name(rc), err.message);
}

/* A record of workflow `workflow`, distinct per `n`. */
static void buffer_nth(persistor *p, const char *workflow, int n, char *id)
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"correlation\": {\"workflow_id\": \"%s\"}, \"metrics\": {\"n\": %d},"
             " \"source\": \"unit\"}",
             workflow, n);
    buffer_ok(p, json, id);
}

/* Buffer n records of workflow "w", 10 ms apart (oldest first), ids into ids[]. */
static void buffer_spaced(fixture *f, int n, char (*ids)[PERSISTOR_ID_MAX + 1])
{
    for (int i = 0; i < n; i++) {
        buffer_nth(f->p, "w", i, ids[i]);
        f->now += 10;
    }
}

static void expect_invalid(fixture *f, const char *json, const char *says)
{
    persistor_error err = {0};
    assert_int_equal(buffer_on(f->p, json, NULL, &err), PERSISTOR_E_INVALID);
    if (strstr(err.message, says) == NULL)
        fail_msg("expected \"%s\" in: %s", says, err.message);
}

static void claim_on(persistor *p, uint32_t max, uint32_t lease_ms, uint32_t retries,
                     persistor_record_list *out)
{
    persistor_claim_options opts = {.struct_size = sizeof opts, .max_records = max,
                                    .lease_ms = lease_ms, .max_retries = retries};
    persistor_error err = {0};
    int32_t rc = persistor_telemetry_claim(p, &opts, out, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("claim: %s %s", persistor_rc_name(rc), err.message);
}

/* The stored document, owned by the caller (bson_destroy); NULL if absent. */
static bson_t *stored(fixture *f, const char *id)
{
    persistor_buffer buf = {0};
    persistor_error err = {0};
    int32_t rc = router_get(f->p->router,
                            persistor_collection_name(f->p, PROFILE_COLL_TELEMETRY_BUFFER), id,
                            &buf, NULL, &err);
    if (rc == PERSISTOR_NOT_FOUND)
        return NULL;
    if (rc != PERSISTOR_OK)
        fail_msg("get %s: %s %s", id, persistor_rc_name(rc), err.message);
    bson_t *doc = bson_new_from_data(buf.data, buf.len);
    buffer_free(&buf);
    return doc;
}

static uint64_t count(fixture *f)
{
    uint64_t n = 0;
    assert_int_equal(router_count(f->p->router,
                                  persistor_collection_name(f->p, PROFILE_COLL_TELEMETRY_BUFFER),
                                  NULL, 0, &n, NULL, NULL),
                     PERSISTOR_OK);
    return n;
}

static bson_iter_t field(const uint8_t *bson, uint32_t len, const char *key)
{
    bson_t doc;
    bson_iter_t it;
    assert_true(bson_init_static(&doc, bson, len));
    if (!bson_iter_init_find(&it, &doc, key))
        fail_msg("no field %s", key);
    return it;
}

static int32_t retry_count_of(const persistor_record *r)
{
    bson_iter_t it = field(r->bson, r->bson_len, "retry_count");
    assert_true(BSON_ITER_HOLDS_INT32(&it));
    return bson_iter_int32(&it);
}

static int64_t lease_until_of(const persistor_record *r)
{
    bson_iter_t it = field(r->bson, r->bson_len, "lease_until");
    assert_true(BSON_ITER_HOLDS_DATE_TIME(&it));
    return bson_iter_date_time(&it);
}

static int64_t version_of(const persistor_record *r)
{
    bson_iter_t it = field(r->bson, r->bson_len, "version");
    assert_true(BSON_ITER_HOLDS_INT64(&it));
    return bson_iter_int64(&it);
}

static const char *state_of(const persistor_record *r)
{
    bson_iter_t it = field(r->bson, r->bson_len, "state");
    assert_true(BSON_ITER_HOLDS_UTF8(&it));
    return bson_iter_utf8(&it, NULL);
}

/* The stored record of `id` as a persistor_record view (free doc after). */
static persistor_record stored_record(fixture *f, const char *id, bson_t **doc)
{
    *doc = stored(f, id);
    assert_non_null(*doc);
    return (persistor_record){(char *)id, (uint8_t *)bson_get_data(*doc), (*doc)->len};
}

/* Read the captured log file from its start. */
static void read_log(int fd, char *text, size_t cap)
{
    ssize_t n = pread(fd, text, cap - 1, 0);
    assert_true(n > 0);
    text[n] = '\0';
}

/* ------------------------------------------------------------------ */
/* Buffering                                                          */

static void test_buffer_stores_the_documented_document(void **state)
{
    fixture *f = *state;
    char id[PERSISTOR_ID_MAX + 1];
    buffer_ok(f->p,
              "{\"source\": \"kafka-bridge\", \"correlation\": {\"workflow_id\": \"w1\","
              " \"plan_id\": \"p1\"}, \"metrics\": {\"latency_ms\": 12, \"ok\": true},"
              " \"region\": \"eu\"}",
              id);
    /* The id: SHA-256 of the tag and the record's canonical form, its
     * timestamp (absent: now) included. */
    bson_t canon = BSON_INITIALIZER, corr, metrics;
    BSON_APPEND_DOCUMENT_BEGIN(&canon, "correlation", &corr);
    BSON_APPEND_UTF8(&corr, "plan_id", "p1");
    BSON_APPEND_UTF8(&corr, "workflow_id", "w1");
    bson_append_document_end(&canon, &corr);
    BSON_APPEND_DOCUMENT_BEGIN(&canon, "metrics", &metrics);
    BSON_APPEND_INT32(&metrics, "latency_ms", 12);
    BSON_APPEND_BOOL(&metrics, "ok", true);
    bson_append_document_end(&canon, &metrics);
    BSON_APPEND_UTF8(&canon, "region", "eu");
    BSON_APPEND_UTF8(&canon, "source", "kafka-bridge");
    BSON_APPEND_DATE_TIME(&canon, "timestamp", f->now);
    sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    char hex[SHA256_HEX_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, "persistor-telemetry-v1", sizeof "persistor-telemetry-v1");
    sha256_update(&ctx, bson_get_data(&canon), canon.len);
    sha256_final(&ctx, digest);
    sha256_hex(digest, hex);
    bson_destroy(&canon);
    assert_string_equal(id, hex);

    bson_t *doc = stored(f, id);
    assert_non_null(doc);
    static const struct {
        const char *key;
        bson_type_t type;
    } want[] = {
        {"_id", BSON_TYPE_UTF8},          {"correlation", BSON_TYPE_DOCUMENT},
        {"metrics", BSON_TYPE_DOCUMENT},  {"timestamp", BSON_TYPE_DATE_TIME},
        {"source", BSON_TYPE_UTF8},       {"buffered_at", BSON_TYPE_DATE_TIME},
        {"retry_count", BSON_TYPE_INT32}, {"state", BSON_TYPE_UTF8},
        {"lease_until", BSON_TYPE_DATE_TIME}, {"version", BSON_TYPE_INT64},
        {"region", BSON_TYPE_UTF8},
    };
    bson_iter_t it;
    size_t i = 0;
    assert_true(bson_iter_init(&it, doc));
    while (bson_iter_next(&it)) {
        assert_true(i < sizeof want / sizeof want[0]);
        assert_string_equal(bson_iter_key(&it), want[i].key);
        assert_int_equal(bson_iter_type(&it), want[i].type);
        i++;
    }
    assert_int_equal(i, sizeof want / sizeof want[0]);
    persistor_record r = {id, (uint8_t *)bson_get_data(doc), doc->len};
    assert_string_equal(state_of(&r), "pending");
    assert_int_equal(retry_count_of(&r), 0);
    assert_true(lease_until_of(&r) == 0);
    assert_true(version_of(&r) == 1);
    it = field(r.bson, r.bson_len, "buffered_at");
    assert_true(bson_iter_date_time(&it) == f->now);
    bson_iter_t found;
    assert_true(bson_iter_init(&it, doc) &&
                bson_iter_find_descendant(&it, "correlation.workflow_id", &found));
    assert_string_equal(bson_iter_utf8(&found, NULL), "w1");
    bson_destroy(doc);
}

static void test_buffer_twice_stores_once_whatever_the_key_order(void **state)
{
    fixture *f = *state;
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1];
    buffer_ok(f->p,
              "{\"correlation\": {\"workflow_id\": \"w\", \"intent_id\": \"i\"},"
              " \"metrics\": {\"x\": 1, \"y\": 2}, \"source\": \"s\","
              " \"timestamp\": {\"$date\": \"2026-11-22T10:00:00Z\"}}",
              a);
    f->now += 5000; /* a retry later: same record, since its timestamp is given */
    persistor_error err = {0};
    assert_int_equal(buffer_on(f->p,
                               "{\"timestamp\": {\"$date\": \"2026-11-22T10:00:00Z\"},"
                               " \"source\": \"s\", \"metrics\": {\"y\": 2, \"x\": 1},"
                               " \"correlation\": {\"intent_id\": \"i\", \"workflow_id\": \"w\"}}",
                               b, &err),
                     PERSISTOR_EXISTS);
    assert_string_equal(a, b);
    assert_int_equal(count(f), 1);
}

static void test_buffer_refuses_bad_records_naming_the_field(void **state)
{
    fixture *f = *state;
    expect_invalid(f, "{\"metrics\": {}, \"source\": \"s\"}", "\"correlation\" is required");
    expect_invalid(f, "{\"correlation\": \"w\", \"metrics\": {}, \"source\": \"s\"}",
                   "\"correlation\" must be an object");
    expect_invalid(f, "{\"correlation\": {}, \"metrics\": {}, \"source\": \"s\"}",
                   "\"correlation.workflow_id\" is required");
    expect_invalid(f,
                   "{\"correlation\": {\"workflow_id\": \"\"}, \"metrics\": {}, \"source\": \"s\"}",
                   "\"correlation.workflow_id\" must be a non-empty string");
    expect_invalid(f,
                   "{\"correlation\": {\"workflow_id\": \"w\", \"plan_id\": 7}, \"metrics\": {},"
                   " \"source\": \"s\"}",
                   "\"correlation.plan_id\" must be a non-empty string");
    expect_invalid(f, "{\"correlation\": {\"workflow_id\": \"w\"}, \"source\": \"s\"}",
                   "\"metrics\" is required");
    expect_invalid(f, "{\"correlation\": {\"workflow_id\": \"w\"}, \"metrics\": [], \"source\": \"s\"}",
                   "\"metrics\" must be an object");
    expect_invalid(f, "{\"correlation\": {\"workflow_id\": \"w\"}, \"metrics\": {}}",
                   "\"source\" is required");
    expect_invalid(f,
                   "{\"correlation\": {\"workflow_id\": \"w\"}, \"metrics\": {}, \"source\": \"s\","
                   " \"timestamp\": \"2026-11-22T10:00:00Z\"}",
                   "\"timestamp\" must be a date");
    static const char *const ours[] = {"_id", "buffered_at", "retry_count", "state",
                                       "lease_until", "version"};
    for (size_t i = 0; i < sizeof ours / sizeof ours[0]; i++) {
        char json[256], says[64];
        snprintf(json, sizeof json,
                 "{\"correlation\": {\"workflow_id\": \"w\"}, \"metrics\": {}, \"source\": \"s\","
                 " \"%s\": 1}",
                 ours[i]);
        snprintf(says, sizeof says, "\"%s\" is set by persistor", ours[i]);
        expect_invalid(f, json, says);
    }
    expect_invalid(f, "{\"correlation\": ", "t.json:1:");
    assert_int_equal(count(f), 0);
}

static void test_buffer_logs_telemetry_buffered(void **state)
{
    fixture *f = *state;
    char logs[] = "/tmp/persistor-telemetry-log-XXXXXX";
    int fd = mkstemp(logs);
    assert_true(fd >= 0);
    log_set_fd(fd);
    const char *json = "{\"correlation\": {\"workflow_id\": \"wf-log\"}, \"metrics\": {},"
                       " \"source\": \"otel\"}";
    char id[PERSISTOR_ID_MAX + 1];
    buffer_ok(f->p, json, id);
    persistor_error err = {0};
    assert_int_equal(buffer_on(f->p, json, id, &err), PERSISTOR_EXISTS);
    log_set_fd(-1);
    char text[8192], want[256];
    read_log(fd, text, sizeof text);
    close(fd);
    unlink(logs);
    snprintf(want, sizeof want,
             "\"event\":\"telemetry_buffered\",\"id\":\"%s\",\"workflow_id\":\"wf-log\","
             "\"source\":\"otel\",\"existed\":false}",
             id);
    if (strstr(text, want) == NULL)
        fail_msg("expected %s in:\n%s", want, text);
    snprintf(want, sizeof want, "\"source\":\"otel\",\"existed\":true}");
    assert_non_null(strstr(text, want));
}

/* ------------------------------------------------------------------ */
/* Claiming                                                           */

static void test_claim_takes_the_oldest_first_up_to_its_limit(void **state)
{
    fixture *f = *state;
    char ids[3][PERSISTOR_ID_MAX + 1];
    buffer_spaced(f, 3, ids);
    persistor_record_list got;
    claim_on(f->p, 2, 1000, 0, &got);
    assert_int_equal(got.count, 2);
    assert_int_equal(got.dead_lettered, 0);
    assert_false(got.degraded);
    for (size_t i = 0; i < 2; i++) {
        assert_string_equal(got.items[i].id, ids[i]);
        assert_int_equal(retry_count_of(&got.items[i]), 1);
        assert_true(lease_until_of(&got.items[i]) == f->now + 1000);
        assert_true(version_of(&got.items[i]) == 2);
        /* What came back is what is stored now. */
        bson_t *doc = stored(f, ids[i]);
        assert_int_equal(doc->len, got.items[i].bson_len);
        assert_memory_equal(bson_get_data(doc), got.items[i].bson, doc->len);
        bson_destroy(doc);
    }
    persistor_record_list_free(&got);
    claim_on(f->p, 0, 0, 0, &got); /* defaults */
    assert_int_equal(got.count, 1);
    assert_string_equal(got.items[0].id, ids[2]);
    assert_true(lease_until_of(&got.items[0]) == f->now + 60000);
    persistor_record_list_free(&got);
}

static void test_a_claimed_record_is_hidden_until_its_lease_ends(void **state)
{
    fixture *f = *state;
    char id[PERSISTOR_ID_MAX + 1];
    buffer_nth(f->p, "w", 1, id);
    persistor_record_list got;
    claim_on(f->p, 10, 1000, 0, &got);
    assert_int_equal(got.count, 1);
    persistor_record_list_free(&got);
    claim_on(f->p, 10, 1000, 0, &got);
    assert_int_equal(got.count, 0);
    f->now += 999;
    claim_on(f->p, 10, 1000, 0, &got);
    assert_int_equal(got.count, 0);
    persistor_record_list_free(&got);
    f->now += 1; /* the lease has ended: claimable again, one more retry */
    claim_on(f->p, 10, 1000, 0, &got);
    assert_int_equal(got.count, 1);
    assert_string_equal(got.items[0].id, id);
    assert_int_equal(retry_count_of(&got.items[0]), 2);
    assert_true(version_of(&got.items[0]) == 3);
    persistor_record_list_free(&got);
}

static void test_release_makes_a_record_claimable_now(void **state)
{
    fixture *f = *state;
    char id[PERSISTOR_ID_MAX + 1], other[PERSISTOR_ID_MAX + 1];
    buffer_nth(f->p, "w", 1, id);
    f->now += 1;
    buffer_nth(f->p, "w", 2, other);
    persistor_record_list got;
    claim_on(f->p, 1, 60000, 0, &got);
    assert_int_equal(got.count, 1);
    persistor_record_list_free(&got);
    /* Releasing an unknown id or a record nobody holds changes nothing. */
    const char *const ids[] = {id, "no-such-id", other};
    uint64_t done = 99;
    persistor_error err = {0};
    assert_int_equal(persistor_telemetry_release(f->p, ids, 3, &done, &err), PERSISTOR_OK);
    assert_int_equal(done, 1);
    bson_t *doc;
    persistor_record r = stored_record(f, id, &doc);
    assert_true(lease_until_of(&r) == 0);
    assert_int_equal(retry_count_of(&r), 1); /* kept */
    assert_true(version_of(&r) == 3);
    bson_destroy(doc);
    r = stored_record(f, other, &doc);
    assert_true(version_of(&r) == 1);
    bson_destroy(doc);
    claim_on(f->p, 1, 60000, 0, &got);
    assert_int_equal(got.count, 1);
    assert_string_equal(got.items[0].id, id);
    assert_int_equal(retry_count_of(&got.items[0]), 2);
    persistor_record_list_free(&got);
}

static void test_ack_removes_and_a_second_ack_removes_nothing(void **state)
{
    fixture *f = *state;
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1];
    buffer_nth(f->p, "w", 1, a);
    buffer_nth(f->p, "w", 2, b);
    persistor_record_list got;
    claim_on(f->p, 10, 1000, 0, &got);
    assert_int_equal(got.count, 2);
    persistor_record_list_free(&got);
    const char *const ids[] = {a, b};
    uint64_t done = 0;
    persistor_error err = {0};
    assert_int_equal(persistor_telemetry_ack(f->p, ids, 2, &done, &err), PERSISTOR_OK);
    assert_int_equal(done, 2);
    assert_int_equal(count(f), 0);
    assert_int_equal(persistor_telemetry_ack(f->p, ids, 2, &done, &err), PERSISTOR_OK);
    assert_int_equal(done, 0);
}

static void test_ids_are_checked_before_anything_is_written(void **state)
{
    fixture *f = *state;
    char a[PERSISTOR_ID_MAX + 1];
    buffer_nth(f->p, "w", 1, a);
    char long_id[PERSISTOR_ID_MAX + 2];
    memset(long_id, 'x', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    const char *const empty[] = {a, ""};
    const char *const too_long[] = {a, long_id};
    persistor_error err = {0};
    uint64_t done = 7;
    assert_int_equal(persistor_telemetry_ack(f->p, empty, 2, &done, &err), PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "id #2 is empty"));
    assert_int_equal(done, 0);
    assert_int_equal(persistor_telemetry_ack(f->p, too_long, 2, &done, &err),
                     PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "id #2"));
    assert_int_equal(persistor_telemetry_release(f->p, NULL, 1, &done, &err),
                     PERSISTOR_E_INVALID);
    assert_int_equal(persistor_telemetry_requeue(f->p, empty, 2, &done, &err),
                     PERSISTOR_E_INVALID);
    assert_int_equal(count(f), 1);
}

/* Claim `id` until it has been claimed `times` times, releasing each. */
static void claim_and_release(fixture *f, const char *id, int times, uint32_t max_retries)
{
    for (int i = 0; i < times; i++) {
        persistor_record_list got;
        claim_on(f->p, 10, 1000, max_retries, &got);
        assert_int_equal(got.count, 1);
        assert_string_equal(got.items[0].id, id);
        persistor_record_list_free(&got);
        uint64_t done = 0;
        persistor_error err = {0};
        assert_int_equal(persistor_telemetry_release(f->p, &id, 1, &done, &err), PERSISTOR_OK);
        assert_int_equal(done, 1);
    }
}

static void test_a_record_past_max_retries_goes_dead(void **state)
{
    fixture *f = *state;
    char id[PERSISTOR_ID_MAX + 1];
    buffer_nth(f->p, "w", 1, id);
    claim_and_release(f, id, 2, 2);
    persistor_record_list got;
    claim_on(f->p, 10, 1000, 2, &got);
    assert_int_equal(got.count, 0);
    assert_int_equal(got.dead_lettered, 1);
    persistor_record_list_free(&got);
    claim_on(f->p, 10, 1000, 2, &got); /* dead records are not claimed */
    assert_int_equal(got.count, 0);
    assert_int_equal(got.dead_lettered, 0);
    persistor_record_list_free(&got);
    persistor_error err = {0};
    assert_int_equal(persistor_telemetry_dead(f->p, 0, &got, &err), PERSISTOR_OK);
    assert_int_equal(got.count, 1);
    assert_string_equal(got.items[0].id, id);
    assert_string_equal(state_of(&got.items[0]), "dead");
    assert_int_equal(retry_count_of(&got.items[0]), 2);
    assert_true(version_of(&got.items[0]) == 6);
    persistor_record_list_free(&got);
}

/* Records going dead do not use up a claim's rounds: a claim of one behind
 * five records due for the dead letters still finds the claimable one. */
static void test_claim_reaches_past_records_it_dead_letters(void **state)
{
    fixture *f = *state;
    char ids[6][PERSISTOR_ID_MAX + 1];
    buffer_spaced(f, 5, ids);
    persistor_record_list got;
    claim_on(f->p, 10, 1000, 1, &got);
    assert_int_equal(got.count, 5);
    persistor_record_list_free(&got);
    f->now += 1000;
    buffer_nth(f->p, "fresh", 5, ids[5]);
    claim_on(f->p, 1, 1000, 1, &got);
    assert_int_equal(got.dead_lettered, 5);
    assert_int_equal(got.count, 1);
    assert_string_equal(got.items[0].id, ids[5]);
    persistor_record_list_free(&got);
}

static void test_dead_lists_oldest_first_with_a_limit(void **state)
{
    fixture *f = *state;
    char ids[3][PERSISTOR_ID_MAX + 1];
    buffer_spaced(f, 3, ids);
    persistor_record_list got;
    claim_on(f->p, 10, 1000, 1, &got);
    assert_int_equal(got.count, 3);
    persistor_record_list_free(&got);
    f->now += 1000;
    claim_on(f->p, 10, 1000, 1, &got);
    assert_int_equal(got.count, 0);
    assert_int_equal(got.dead_lettered, 3);
    persistor_record_list_free(&got);
    persistor_error err = {0};
    assert_int_equal(persistor_telemetry_dead(f->p, 2, &got, &err), PERSISTOR_OK);
    assert_int_equal(got.count, 2);
    assert_string_equal(got.items[0].id, ids[0]);
    assert_string_equal(got.items[1].id, ids[1]);
    persistor_record_list_free(&got);
}

static void test_requeue_one_then_all(void **state)
{
    fixture *f = *state;
    char ids[3][PERSISTOR_ID_MAX + 1], pending[PERSISTOR_ID_MAX + 1];
    for (int i = 0; i < 3; i++)
        buffer_nth(f->p, "dead", i, ids[i]);
    persistor_record_list got;
    claim_on(f->p, 10, 1000, 1, &got);
    persistor_record_list_free(&got);
    f->now += 1000;
    claim_on(f->p, 10, 1000, 1, &got);
    assert_int_equal(got.dead_lettered, 3);
    persistor_record_list_free(&got);
    buffer_nth(f->p, "alive", 0, pending);

    /* One by id; a pending record and an unknown id are left alone. */
    const char *const one[] = {ids[1], pending, "no-such-id"};
    uint64_t done = 0;
    persistor_error err = {0};
    assert_int_equal(persistor_telemetry_requeue(f->p, one, 3, &done, &err), PERSISTOR_OK);
    assert_int_equal(done, 1);
    bson_t *doc;
    persistor_record r = stored_record(f, ids[1], &doc);
    assert_string_equal(state_of(&r), "pending");
    assert_int_equal(retry_count_of(&r), 0);
    assert_true(lease_until_of(&r) == 0);
    bson_destroy(doc);
    r = stored_record(f, pending, &doc);
    assert_true(version_of(&r) == 1);
    bson_destroy(doc);
    claim_on(f->p, 10, 1000, 1, &got);
    assert_int_equal(got.count, 2); /* the requeued one and the pending one */
    assert_int_equal(retry_count_of(&got.items[0]), 1);
    persistor_record_list_free(&got);

    assert_int_equal(persistor_telemetry_requeue(f->p, NULL, 0, &done, &err), PERSISTOR_OK);
    assert_int_equal(done, 2);
    assert_int_equal(persistor_telemetry_dead(f->p, 0, &got, &err), PERSISTOR_OK);
    assert_int_equal(got.count, 0);
    persistor_record_list_free(&got);
    assert_int_equal(persistor_telemetry_requeue(f->p, NULL, 0, &done, &err), PERSISTOR_OK);
    assert_int_equal(done, 0);
}

/* ------------------------------------------------------------------ */
/* The collection                                                     */

static const persistor_collection_spec *telemetry_spec(persistor *p)
{
    const char *name = persistor_collection_name(p, PROFILE_COLL_TELEMETRY_BUFFER);
    for (size_t i = 0; i < p->n_specs; i++)
        if (strcmp(p->specs[i].name, name) == 0)
            return &p->specs[i];
    fail_msg("no spec for %s", name);
    return NULL;
}

static void test_telemetry_buffer_has_the_seed_s_indexes(void **state)
{
    fixture *f = *state;
    const persistor_collection_spec *spec = telemetry_spec(f->p);
    char names[512] = "";
    for (uint32_t i = 0; i < spec->n_indexes; i++) {
        size_t o = strlen(names);
        snprintf(names + o, sizeof names - o, "%s(", spec->indexes[i].name);
        for (uint32_t k = 0; k < spec->indexes[i].n_keys; k++) {
            o = strlen(names);
            snprintf(names + o, sizeof names - o, "%s%s:%d", k ? "," : "",
                     spec->indexes[i].keys[k].field, spec->indexes[i].keys[k].direction);
        }
        o = strlen(names);
        snprintf(names + o, sizeof names - o, ")%s ",
                 spec->indexes[i].flags & PERSISTOR_INDEX_UNIQUE ? "unique" : "");
    }
    assert_string_equal(names, "correlation.workflow_id_1(correlation.workflow_id:1) "
                               "buffered_at_1(buffered_at:1) retry_count_1(retry_count:1) "
                               "retry_count_1_buffered_at_1(retry_count:1,buffered_at:1) ");
    assert_string_equal(spec->version_field, "version");
    assert_null(spec->ttl_field);
    assert_true(spec->ttl_seconds == 0);

    persistor *ttl = unit_store_open(f, "ttl");
    spec = telemetry_spec(ttl);
    assert_string_equal(spec->ttl_field, "buffered_at");
    assert_true(spec->ttl_seconds == 3600);
    persistor_close(ttl);
}

static void test_buffer_fails_open_by_default_and_says_so(void **state)
{
    fixture *f = *state;
    fault_control *c = fault_control_open(f->control);
    assert_non_null(c);
    fault_inject(c, FAULT_OP_ALL & ~FAULT_OP_OPEN, PERSISTOR_E_UNAVAILABLE, -1, 0);
    persistor *down = unit_store_open(f, "down");
    char logs[] = "/tmp/persistor-telemetry-log-XXXXXX";
    int fd = mkstemp(logs);
    assert_true(fd >= 0);
    log_set_fd(fd);
    char id[PERSISTOR_ID_MAX + 1];
    persistor_error err = {0};
    assert_int_equal(buffer_on(down,
                               "{\"correlation\": {\"workflow_id\": \"w9\"}, \"metrics\": {},"
                               " \"source\": \"s\"}",
                               id, &err),
                     PERSISTOR_NOT_STORED);
    log_set_fd(-1);
    char text[8192], want[160];
    read_log(fd, text, sizeof text);
    close(fd);
    unlink(logs);
    assert_non_null(strstr(text, "\"event\":\"telemetry_buffer_persist_failed\""));
    snprintf(want, sizeof want, "\"id\":\"%s\"", id);
    assert_non_null(strstr(text, want));
    assert_null(strstr(text, "telemetry_buffered"));
    persistor_close(down);
    fault_control_close(c);
}

/* ------------------------------------------------------------------ */
/* Two claimers on one store                                          */

#ifdef TELEMETRY_WITH_SQLITE
typedef struct claimer {
    persistor *p;
    uint32_t max;
    persistor_record_list got; /* everything this claimer won */
} claimer;

/* Claim until a claim comes back empty, keeping what was won. */
static void *claimer_run(void *arg)
{
    claimer *c = arg;
    for (;;) {
        persistor_record_list batch;
        persistor_claim_options opts = {.struct_size = sizeof opts, .max_records = c->max,
                                        .lease_ms = 600000};
        persistor_error err = {0};
        if (persistor_telemetry_claim(c->p, &opts, &batch, &err) != PERSISTOR_OK) {
            fprintf(stderr, "claim: %s\n", err.message);
            return NULL;
        }
        size_t n = batch.count;
        for (size_t i = 0; i < n; i++) {
            persistor_record *grown =
                realloc(c->got.items, (c->got.count + 1) * sizeof *grown);
            if (grown == NULL)
                abort();
            c->got.items = grown;
            c->got.items[c->got.count++] = batch.items[i];
        }
        free(batch.items);
        if (n == 0)
            return NULL;
    }
}

static void test_two_handles_never_claim_one_record_twice(void **state)
{
    fixture *f = *state;
    enum { RECORDS = 40 };
    claimer a = {.p = unit_store_open(f, "shared"), .max = 1};
    claimer b = {.p = unit_store_open(f, "shared"), .max = 3};
    char ids[RECORDS][PERSISTOR_ID_MAX + 1];
    for (int i = 0; i < RECORDS; i++)
        buffer_nth(a.p, "race", i, ids[i]);
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, claimer_run, &a), 0);
    assert_int_equal(pthread_create(&tb, NULL, claimer_run, &b), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    assert_int_equal(a.got.count + b.got.count, RECORDS);
    for (int i = 0; i < RECORDS; i++) {
        int seen = 0;
        for (size_t k = 0; k < a.got.count; k++)
            seen += strcmp(a.got.items[k].id, ids[i]) == 0;
        for (size_t k = 0; k < b.got.count; k++)
            seen += strcmp(b.got.items[k].id, ids[i]) == 0;
        if (seen != 1)
            fail_msg("record %d claimed %d times", i, seen);
    }
    persistor_record_list_free(&a.got);
    persistor_record_list_free(&b.got);
    persistor_close(a.p);
    persistor_close(b.p);
}

typedef struct slow_claim {
    persistor *p;
    persistor_record_list got;
    int32_t rc;
} slow_claim;

static void *slow_claim_run(void *arg)
{
    slow_claim *s = arg;
    persistor_claim_options opts = {.struct_size = sizeof opts, .max_records = 1};
    persistor_error err = {0};
    s->rc = persistor_telemetry_claim(s->p, &opts, &s->got, &err);
    return NULL;
}

static void test_a_claimer_that_lost_the_race_skips_the_record(void **state)
{
    fixture *f = *state;
    persistor *fast = unit_store_open(f, "shared");
    fault_control *c = fault_control_open(f->control);
    assert_non_null(c);
    slow_claim slow = {.p = unit_store_open(f, "slow")};
    char id[PERSISTOR_ID_MAX + 1];
    buffer_nth(fast, "race", 1, id);
    /* The slow claimer reads the record, then its write waits 300 ms:
     * meanwhile the fast one claims it. */
    uint64_t writes = fault_calls(c, FAULT_OP_WRITE);
    fault_set_delay(c, FAULT_OP_WRITE, 300);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, slow_claim_run, &slow), 0);
    for (int waited = 0; fault_calls(c, FAULT_OP_WRITE) == writes; waited++) {
        if (waited > 10000)
            fail_msg("the slow claimer never wrote");
        nanosleep(&(struct timespec){0, 1000000}, NULL);
    }
    persistor_record_list won;
    claim_on(fast, 1, 60000, 0, &won);
    pthread_join(t, NULL);
    fault_clear(c);
    assert_int_equal(slow.rc, PERSISTOR_OK);
    assert_int_equal(won.count, 1);
    assert_string_equal(won.items[0].id, id);
    assert_int_equal(slow.got.count, 0); /* its compare-and-set failed */
    /* Stored: the fast claim, once (retry_count 1, version 2). */
    persistor_buffer buf = {0};
    persistor_error err = {0};
    assert_int_equal(router_get(fast->router,
                                persistor_collection_name(fast, PROFILE_COLL_TELEMETRY_BUFFER),
                                id, &buf, NULL, &err),
                     PERSISTOR_OK);
    assert_int_equal(buf.len, won.items[0].bson_len);
    assert_memory_equal(buf.data, won.items[0].bson, buf.len);
    buffer_free(&buf);
    persistor_record_list_free(&won);
    persistor_record_list_free(&slow.got);
    persistor_close(slow.p);
    persistor_close(fast);
    fault_control_close(c);
}
#endif

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_buffer_stores_the_documented_document),
        T(test_buffer_twice_stores_once_whatever_the_key_order),
        T(test_buffer_refuses_bad_records_naming_the_field),
        T(test_buffer_logs_telemetry_buffered),
        T(test_claim_takes_the_oldest_first_up_to_its_limit),
        T(test_a_claimed_record_is_hidden_until_its_lease_ends),
        T(test_release_makes_a_record_claimable_now),
        T(test_ack_removes_and_a_second_ack_removes_nothing),
        T(test_ids_are_checked_before_anything_is_written),
        T(test_a_record_past_max_retries_goes_dead),
        T(test_claim_reaches_past_records_it_dead_letters),
        T(test_dead_lists_oldest_first_with_a_limit),
        T(test_requeue_one_then_all),
        T(test_telemetry_buffer_has_the_seed_s_indexes),
        T(test_buffer_fails_open_by_default_and_says_so),
#ifdef TELEMETRY_WITH_SQLITE
        T(test_two_handles_never_claim_one_record_twice),
        T(test_a_claimer_that_lost_the_race_skips_the_record),
#endif
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
