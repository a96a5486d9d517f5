/*
 * test_snapshot.c — the snapshot API's promises, through persistor.h on
 * the memory adapter: idempotent append, order, latest, delete, TTL on a
 * clock the test moves, eviction, stats, concurrent appends, and the
 * errors a caller can make.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <bson/bson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "persistor/persistor.h"
#include "persistor_internal.h"

#define T0 1700000000000LL /* the test clock starts here */

typedef struct fixture {
    char dir[64];
    char config[128];
    _Atomic int64_t now;
    persistor *p;
} fixture;

static int64_t fixture_clock(void *ctx)
{
    return atomic_load(&((fixture *)ctx)->now);
}

/* A profiles file whose `unit` profile is one adapter of `type` with the
 * given extras. */
static void write_profiles_of(fixture *f, const char *type, const char *adapter_extra,
                              const char *snapshots_extra)
{
    snprintf(f->config, sizeof f->config, "%s/profiles.yaml", f->dir);
    FILE *out = fopen(f->config, "w");
    assert_non_null(out);
    fprintf(out,
            "profiles:\n"
            "  unit:\n"
            "    adapters:\n"
            "      - type: %s\n"
            "%s"
            "    collections:\n"
            "      snapshots:\n"
            "        name: snaps\n"
            "%s",
            type, adapter_extra, snapshots_extra);
    fclose(out);
}

static void write_profiles(fixture *f, const char *adapter_extra, const char *snapshots_extra)
{
    write_profiles_of(f, "memory", adapter_extra, snapshots_extra);
}

static int32_t fixture_open(fixture *f, persistor_error *err)
{
    persistor_open_options opts = {.struct_size = sizeof opts,
                                   .config_path = f->config,
                                   .profile = "unit",
                                   .clock_ms = fixture_clock,
                                   .clock_ctx = f};
    return persistor_open(&opts, &f->p, err);
}

static fixture *fixture_new_of(const char *type, const char *adapter_extra,
                               const char *snapshots_extra)
{
    fixture *f = calloc(1, sizeof *f);
    char plugins[4096];
    snprintf(plugins, sizeof plugins, "%s/lib/persistor", getenv("PERSISTOR_BUILD_DIR"));
    setenv("PERSISTOR_PLUGIN_DIR", plugins, 1);
    setenv("PERSISTOR_LOG_LEVEL", "off", 1);
    snprintf(f->dir, sizeof f->dir, "/tmp/persistor-snap-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    atomic_store(&f->now, T0);
    write_profiles_of(f, type, adapter_extra, snapshots_extra);
    persistor_error err = {0};
    if (fixture_open(f, &err) != PERSISTOR_OK)
        fail_msg("open: %s", err.message);
    return f;
}

static fixture *fixture_new(const char *adapter_extra, const char *snapshots_extra)
{
    return fixture_new_of("memory", adapter_extra, snapshots_extra);
}

static int setup_plain(void **state)
{
    *state = fixture_new("", "");
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    persistor_close(f->p);
    unlink(f->config);
    rmdir(f->dir);
    free(f);
    return 0;
}

static int32_t append(persistor *p, const char *xc, int64_t ts, const char *json, char *hash)
{
    persistor_snapshot_input in = {.struct_size = sizeof in,
                                   .xc_id = xc,
                                   .ts_ms = ts,
                                   .content_json = json};
    persistor_error err = {0};
    int32_t rc = persistor_snapshot_append(p, &in, hash, &err);
    if (rc < 0)
        print_message("append: %s\n", err.message);
    return rc;
}

static uint64_t item_count(persistor *p)
{
    persistor_stats st;
    assert_int_equal(persistor_stats_get(p, &st, NULL), PERSISTOR_OK);
    return st.item_count;
}

static void test_append_same_snapshot_twice_stores_one(void **state)
{
    fixture *f = *state;
    char h1[65], h2[65];
    assert_int_equal(append(f->p, "xc-1", T0, "{\"state\":{\"n\":1}}", h1), PERSISTOR_OK);
    assert_int_equal(append(f->p, "xc-1", T0, "{\"state\":{\"n\":1}}", h2), PERSISTOR_EXISTS);
    assert_string_equal(h1, h2);
    assert_int_equal(strlen(h1), PERSISTOR_HASH_HEX_LEN);
    assert_int_equal(item_count(f->p), 1);
}

static void test_hash_covers_tenant_context_time_and_content(void **state)
{
    fixture *f = *state;
    char base[65], other[65];
    assert_int_equal(append(f->p, "xc-1", T0, "{\"a\":1}", base), PERSISTOR_OK);
    assert_int_equal(append(f->p, "xc-2", T0, "{\"a\":1}", other), PERSISTOR_OK);
    assert_string_not_equal(base, other);
    assert_int_equal(append(f->p, "xc-1", T0 + 1, "{\"a\":1}", other), PERSISTOR_OK);
    assert_string_not_equal(base, other);
    assert_int_equal(append(f->p, "xc-1", T0, "{\"a\":2}", other), PERSISTOR_OK);
    assert_string_not_equal(base, other);

    persistor_snapshot_input in = {.struct_size = sizeof in, .tenant_id = "t2", .xc_id = "xc-1",
                                   .ts_ms = T0, .content_json = "{\"a\":1}"};
    assert_int_equal(persistor_snapshot_append(f->p, &in, other, NULL), PERSISTOR_OK);
    assert_string_not_equal(base, other);
}

static void test_caller_given_hash_is_the_id(void **state)
{
    fixture *f = *state;
    persistor_snapshot_input in = {.struct_size = sizeof in, .xc_id = "xc", .ts_ms = T0,
                                   .hash = "kernel-hash-1", .content_json = "{}"};
    char hash[65];
    assert_int_equal(persistor_snapshot_append(f->p, &in, hash, NULL), PERSISTOR_OK);
    assert_string_equal(hash, "kernel-hash-1");
    assert_int_equal(persistor_snapshot_has(f->p, "kernel-hash-1", NULL), PERSISTOR_OK);
}

static void test_get_returns_fields_and_content(void **state)
{
    fixture *f = *state;
    char hash[65];
    assert_int_equal(append(f->p, "xc-g", T0 + 5, "{\"state\":{\"step\":3},\"events\":[1,2]}", hash),
                     PERSISTOR_OK);
    persistor_snapshot *s;
    assert_int_equal(persistor_snapshot_get(f->p, hash, &s, NULL), PERSISTOR_OK);
    assert_string_equal(s->hash, hash);
    assert_string_equal(s->xc_id, "xc-g");
    assert_string_equal(s->tenant_id, "default");
    assert_int_equal(s->ts_ms, T0 + 5);
    assert_int_equal(s->created_at_ms, T0);
    bson_t doc;
    bson_iter_t it, step;
    assert_true(bson_init_static(&doc, s->bson, s->bson_len));
    assert_true(bson_iter_init(&it, &doc));
    assert_true(bson_iter_find_descendant(&it, "state.step", &step));
    assert_int_equal(bson_iter_int32(&step), 3);
    char *json = persistor_snapshot_to_json(s);
    assert_non_null(strstr(json, "\"events\""));
    persistor_free(json);
    persistor_snapshot_free(s);
    assert_int_equal(persistor_snapshot_get(f->p, "no-such-hash", &s, NULL), PERSISTOR_NOT_FOUND);
    assert_int_equal(persistor_snapshot_has(f->p, "no-such-hash", NULL), PERSISTOR_NOT_FOUND);
}

static void test_load_orders_by_ts_then_hash(void **state)
{
    fixture *f = *state;
    char h[5][65];
    /* Appended out of order; two share a ts. */
    assert_int_equal(append(f->p, "xc-o", T0 + 30, "{\"i\":0}", h[0]), PERSISTOR_OK);
    assert_int_equal(append(f->p, "xc-o", T0 + 10, "{\"i\":1}", h[1]), PERSISTOR_OK);
    assert_int_equal(append(f->p, "xc-o", T0 + 20, "{\"i\":2}", h[2]), PERSISTOR_OK);
    assert_int_equal(append(f->p, "xc-o", T0 + 20, "{\"i\":3}", h[3]), PERSISTOR_OK);
    assert_int_equal(append(f->p, "xc-other", T0 + 15, "{\"i\":4}", h[4]), PERSISTOR_OK);

    const char *tie_low = strcmp(h[2], h[3]) < 0 ? h[2] : h[3];
    const char *tie_high = strcmp(h[2], h[3]) < 0 ? h[3] : h[2];
    const char *expected[] = {h[1], tie_low, tie_high, h[0]};

    persistor_snapshot_iter *it;
    const persistor_snapshot *s;
    assert_int_equal(persistor_snapshot_load(f->p, "xc-o", &it, NULL), PERSISTOR_OK);
    for (size_t i = 0; i < 4; i++) {
        assert_int_equal(persistor_snapshot_iter_next(it, &s, NULL), PERSISTOR_OK);
        assert_string_equal(s->hash, expected[i]);
    }
    assert_int_equal(persistor_snapshot_iter_next(it, &s, NULL), PERSISTOR_ITER_END);
    assert_int_equal(persistor_snapshot_iter_next(it, &s, NULL), PERSISTOR_ITER_END);
    persistor_snapshot_iter_free(it);

    persistor_string_list hashes;
    assert_int_equal(persistor_snapshot_list_hashes(f->p, "xc-o", &hashes, NULL), PERSISTOR_OK);
    assert_int_equal(hashes.count, 4);
    for (size_t i = 0; i < 4; i++)
        assert_string_equal(hashes.items[i], expected[i]);
    persistor_string_list_free(&hashes);

    persistor_snapshot *latest;
    assert_int_equal(persistor_snapshot_latest(f->p, "xc-o", &latest, NULL), PERSISTOR_OK);
    assert_string_equal(latest->hash, h[0]);
    persistor_snapshot_free(latest);
}

static void test_unknown_context_loads_empty_and_has_no_latest(void **state)
{
    fixture *f = *state;
    persistor_snapshot_iter *it;
    const persistor_snapshot *s;
    assert_int_equal(persistor_snapshot_load(f->p, "nobody", &it, NULL), PERSISTOR_OK);
    assert_int_equal(persistor_snapshot_iter_next(it, &s, NULL), PERSISTOR_ITER_END);
    persistor_snapshot_iter_free(it);
    persistor_snapshot *latest;
    assert_int_equal(persistor_snapshot_latest(f->p, "nobody", &latest, NULL),
                     PERSISTOR_NOT_FOUND);
}

static void test_delete_removes_one_and_reports_absent(void **state)
{
    fixture *f = *state;
    char a[65], b[65];
    assert_int_equal(append(f->p, "xc-d", T0, "{\"i\":1}", a), PERSISTOR_OK);
    assert_int_equal(append(f->p, "xc-d", T0 + 1, "{\"i\":2}", b), PERSISTOR_OK);
    assert_int_equal(persistor_snapshot_delete(f->p, a, NULL), PERSISTOR_OK);
    assert_int_equal(persistor_snapshot_delete(f->p, a, NULL), PERSISTOR_NOT_FOUND);
    assert_int_equal(persistor_snapshot_has(f->p, a, NULL), PERSISTOR_NOT_FOUND);
    assert_int_equal(persistor_snapshot_has(f->p, b, NULL), PERSISTOR_OK);
}

static void test_delete_context_removes_only_that_context(void **state)
{
    fixture *f = *state;
    for (int i = 0; i < 5; i++) {
        char json[32];
        snprintf(json, sizeof json, "{\"i\":%d}", i);
        assert_int_equal(append(f->p, "xc-gone", T0 + i, json, NULL), PERSISTOR_OK);
        assert_int_equal(append(f->p, "xc-kept", T0 + i, json, NULL), PERSISTOR_OK);
    }
    uint64_t deleted = 0;
    assert_int_equal(persistor_snapshot_delete_context(f->p, "xc-gone", &deleted, NULL),
                     PERSISTOR_OK);
    assert_int_equal(deleted, 5);
    assert_int_equal(item_count(f->p), 5);
}

static void test_stats_report_count_size_average_and_adapter(void **state)
{
    fixture *f = *state;
    persistor_stats st;
    assert_int_equal(persistor_stats_get(f->p, &st, NULL), PERSISTOR_OK);
    assert_int_equal(st.item_count, 0);
    assert_true(st.average_item_size == 0.0);
    assert_int_equal(append(f->p, "xc-s", T0, "{\"i\":1}", NULL), PERSISTOR_OK);
    assert_int_equal(append(f->p, "xc-s", T0 + 1, "{\"i\":22}", NULL), PERSISTOR_OK);
    assert_int_equal(persistor_stats_get(f->p, &st, NULL), PERSISTOR_OK);
    assert_int_equal(st.item_count, 2);
    assert_true(st.total_size > 0);
    assert_true(st.average_item_size == (double)st.total_size / 2.0);
    assert_string_equal(st.adapter_type, "memory");
}

static void test_append_many_reports_each_and_checks_all_first(void **state)
{
    fixture *f = *state;
    persistor_snapshot_input in[3] = {
        {.struct_size = sizeof in[0], .xc_id = "xc-m", .ts_ms = T0, .content_json = "{\"i\":1}"},
        {.struct_size = sizeof in[0], .xc_id = "xc-m", .ts_ms = T0 + 1, .content_json = "{\"i\":2}"},
        {.struct_size = sizeof in[0], .xc_id = "xc-m", .ts_ms = T0, .content_json = "{\"i\":1}"},
    };
    char hashes[3][PERSISTOR_HASH_HEX_LEN + 1];
    int32_t results[3];
    assert_int_equal(persistor_snapshot_append_many(f->p, in, 3, hashes, results, NULL),
                     PERSISTOR_OK);
    assert_int_equal(results[0], PERSISTOR_OK);
    assert_int_equal(results[1], PERSISTOR_OK);
    assert_int_equal(results[2], PERSISTOR_EXISTS);
    assert_string_equal(hashes[0], hashes[2]);

    /* One bad input: nothing of the batch is written. */
    in[0].ts_ms = T0 + 100;
    in[1].ts_ms = T0 + 101;
    in[2].content_json = "{\"i\": }";
    persistor_error err = {0};
    assert_int_equal(persistor_snapshot_append_many(f->p, in, 3, NULL, results, &err),
                     PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "snapshot 3 of 3"));
    assert_int_equal(item_count(f->p), 2);
}

static void test_invalid_input_is_refused_with_a_reason(void **state)
{
    fixture *f = *state;
    persistor_error err = {0};
    persistor_snapshot_input in = {.struct_size = sizeof in, .xc_id = "xc-bad", .ts_ms = T0,
                                   .content_json = "{\"state\": {\n  \"x\": tru }}",
                                   .content_json_source = "snap.json"};
    assert_int_equal(persistor_snapshot_append(f->p, &in, NULL, &err), PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "snap.json:2:"));

    in.content_json = "{\"xcId\": \"forged\"}";
    assert_int_equal(persistor_snapshot_append(f->p, &in, NULL, &err), PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "\"xcId\""));

    in.content_json = "{}";
    in.xc_id = "";
    assert_int_equal(persistor_snapshot_append(f->p, &in, NULL, &err), PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "xc_id"));

    char long_hash[PERSISTOR_HASH_HEX_LEN + 2];
    memset(long_hash, 'h', sizeof long_hash - 1);
    long_hash[sizeof long_hash - 1] = '\0';
    in.xc_id = "xc-bad";
    in.hash = long_hash;
    assert_int_equal(persistor_snapshot_append(f->p, &in, NULL, &err), PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "the limit is 64"));
    in.hash = NULL;
    in.struct_size = 4;
    assert_int_equal(persistor_snapshot_append(f->p, &in, NULL, &err), PERSISTOR_E_INVALID);
    assert_int_equal(item_count(f->p), 0);
}

static void test_bson_content_is_stored_as_given_and_checked(void **state)
{
    fixture *f = *state;
    bson_t *content = BCON_NEW("state", "{", "step", BCON_INT32(7), "}", "events", "[",
                               BCON_UTF8("a"), "]");
    persistor_snapshot_input in = {.struct_size = sizeof in, .xc_id = "xc-b", .ts_ms = T0,
                                   .content_bson = bson_get_data(content),
                                   .content_bson_len = content->len};
    char hash[65], from_json[65];
    persistor_error err = {0};
    assert_int_equal(persistor_snapshot_append(f->p, &in, hash, &err), PERSISTOR_OK);
    /* The same content given as JSON is the same snapshot. */
    assert_int_equal(append(f->p, "xc-b", T0, "{\"state\": {\"step\": 7}, \"events\": [\"a\"]}",
                            from_json),
                     PERSISTOR_EXISTS);
    assert_string_equal(hash, from_json);

    /* Invalid UTF-8 inside: MongoDB would refuse it on replay, so do we. */
    bson_t *bad = bson_new();
    bson_append_utf8(bad, "s", 1, "\xff\xfe", 2);
    in.content_bson = bson_get_data(bad);
    in.content_bson_len = bad->len;
    assert_int_equal(persistor_snapshot_append(f->p, &in, NULL, &err), PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "string is not valid UTF-8 at 's'"));

    bson_t *reserved = BCON_NEW("_id", BCON_UTF8("forged"));
    in.content_bson = bson_get_data(reserved);
    in.content_bson_len = reserved->len;
    assert_int_equal(persistor_snapshot_append(f->p, &in, NULL, &err), PERSISTOR_E_INVALID);
    assert_int_equal(item_count(f->p), 1);
    bson_destroy(content);
    bson_destroy(bad);
    bson_destroy(reserved);
}

/* A snapshot written by another tool, fields in another order and with
 * extras in between, reads the same as one persistor wrote. */
static void test_snapshot_with_fields_in_another_order_reads_the_same(void **state)
{
    fixture *f = *state;
    bson_t *doc = BCON_NEW("state", "{", "step", BCON_INT32(2), "}", "ts", BCON_DATE_TIME(T0 + 9),
                           "xcId", BCON_UTF8("xc-foreign"), "note", BCON_UTF8("x"),
                           "createdAt", BCON_DATE_TIME(T0), "tenantId", BCON_UTF8("t9"),
                           "_id", BCON_UTF8("foreign-1"));
    persistor_write_op op = {.kind = PERSISTOR_WRITE_INSERT_IF_ABSENT, .id = "foreign-1",
                             .doc = bson_get_data(doc), .doc_len = doc->len};
    int32_t result;
    assert_int_equal(router_write(f->p->router, "snaps", &op, 1, &result, NULL), PERSISTOR_OK);
    persistor_snapshot *s;
    assert_int_equal(persistor_snapshot_get(f->p, "foreign-1", &s, NULL), PERSISTOR_OK);
    assert_string_equal(s->hash, "foreign-1");
    assert_string_equal(s->tenant_id, "t9");
    assert_string_equal(s->xc_id, "xc-foreign");
    assert_int_equal(s->ts_ms, T0 + 9);
    assert_int_equal(s->created_at_ms, T0);
    persistor_snapshot_free(s);

    /* And through load, which takes the same view. */
    persistor_snapshot_iter *it;
    const persistor_snapshot *v;
    assert_int_equal(persistor_snapshot_load(f->p, "xc-foreign", &it, NULL), PERSISTOR_OK);
    assert_int_equal(persistor_snapshot_iter_next(it, &v, NULL), PERSISTOR_OK);
    assert_string_equal(v->tenant_id, "t9");
    assert_int_equal(v->ts_ms, T0 + 9);
    persistor_snapshot_iter_free(it);
    bson_destroy(doc);
}

static void test_oversize_snapshot_is_refused_and_nothing_stored(void **state)
{
    fixture *f = *state;
    size_t n = 17u * 1024u * 1024u;
    char *json = malloc(n + 32);
    strcpy(json, "{\"blob\":\"");
    memset(json + 9, 'x', n);
    strcpy(json + 9 + n, "\"}");
    persistor_error err = {0};
    assert_int_equal(append(f->p, "xc-big", T0, json, NULL), PERSISTOR_E_INVALID);
    persistor_snapshot_input in = {.struct_size = sizeof in, .xc_id = "xc-big", .ts_ms = T0,
                                   .content_json = json};
    assert_int_equal(persistor_snapshot_append(f->p, &in, NULL, &err), PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "16 MiB"));
    free(json);
    assert_int_equal(item_count(f->p), 0);
}

/* TTL: snapshots expire ttl_seconds after createdAt, on the handle's clock. */
static int setup_ttl(void **state)
{
    *state = fixture_new("", "        ttl_seconds: 60\n");
    return 0;
}

/* The same TTL on bare_memory.so, which has no expire slot: the router's
 * own sweep (a scan for expired ids, then deletes) must give the same. */
static int setup_ttl_without_expire_slot(void **state)
{
    *state = fixture_new_of("bare_memory", "        path: " SNAPSHOT_BARE_SO "\n",
                            "        ttl_seconds: 60\n");
    return 0;
}

static void test_ttl_expires_snapshots_after_their_time(void **state)
{
    fixture *f = *state;
    char old[65], young[65];
    assert_int_equal(append(f->p, "xc-t", T0, "{\"i\":1}", old), PERSISTOR_OK);
    atomic_store(&f->now, T0 + 30000);
    assert_int_equal(append(f->p, "xc-t", T0 + 1, "{\"i\":2}", young), PERSISTOR_OK);

    atomic_store(&f->now, T0 + 59000);
    assert_int_equal(persistor_snapshot_has(f->p, old, NULL), PERSISTOR_OK);
    atomic_store(&f->now, T0 + 61000); /* past the old one's 60 s, not the young one's */
    assert_int_equal(persistor_snapshot_has(f->p, old, NULL), PERSISTOR_NOT_FOUND);
    assert_int_equal(persistor_snapshot_has(f->p, young, NULL), PERSISTOR_OK);

    uint64_t removed = 99;
    atomic_store(&f->now, T0 + 91000);
    assert_int_equal(persistor_snapshot_expire(f->p, &removed, NULL), PERSISTOR_OK);
    assert_int_equal(removed, 1);
    assert_int_equal(item_count(f->p), 0);
}

/* Eviction: the memory adapter's max_items keeps the newest. */
static int setup_bounded(void **state)
{
    *state = fixture_new("        max_items: 3\n", "");
    return 0;
}

static void test_memory_bound_evicts_oldest_snapshots(void **state)
{
    fixture *f = *state;
    char h[5][65];
    for (int i = 0; i < 5; i++) {
        char json[32];
        snprintf(json, sizeof json, "{\"i\":%d}", i);
        assert_int_equal(append(f->p, "xc-e", T0 + i, json, h[i]), PERSISTOR_OK);
    }
    assert_int_equal(item_count(f->p), 3);
    assert_int_equal(persistor_snapshot_has(f->p, h[0], NULL), PERSISTOR_NOT_FOUND);
    assert_int_equal(persistor_snapshot_has(f->p, h[1], NULL), PERSISTOR_NOT_FOUND);
    for (int i = 2; i < 5; i++)
        assert_int_equal(persistor_snapshot_has(f->p, h[i], NULL), PERSISTOR_OK);
}

/* Concurrency: 8 threads, each its own snapshots plus a shared set that
 * every thread appends too; the count must be exact. */
#define THREADS 8
#define OWN_PER_THREAD 500
#define SHARED 100

typedef struct worker {
    persistor *p;
    int id;
    atomic_int *stored;
    atomic_int *failures;
} worker;

static void *worker_run(void *arg)
{
    worker *w = arg;
    char xc[32], json[64];
    for (int i = 0; i < OWN_PER_THREAD + SHARED; i++) {
        bool shared = i >= OWN_PER_THREAD;
        snprintf(xc, sizeof xc, shared ? "xc-shared" : "xc-thread-%d", w->id);
        snprintf(json, sizeof json, "{\"i\":%d}", shared ? i - OWN_PER_THREAD : i);
        int32_t rc = append(w->p, xc, T0 + (shared ? i - OWN_PER_THREAD : i), json, NULL);
        if (rc == PERSISTOR_OK)
            atomic_fetch_add(w->stored, 1);
        else if (rc != PERSISTOR_EXISTS)
            atomic_fetch_add(w->failures, 1);
    }
    return NULL;
}

static void test_concurrent_appends_from_8_threads_give_an_exact_count(void **state)
{
    fixture *f = *state;
    pthread_t threads[THREADS];
    worker workers[THREADS];
    atomic_int stored = 0, failures = 0;
    for (int i = 0; i < THREADS; i++) {
        workers[i] = (worker){f->p, i, &stored, &failures};
        assert_int_equal(pthread_create(&threads[i], NULL, worker_run, &workers[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(threads[i], NULL);
    assert_int_equal(atomic_load(&failures), 0);
    assert_int_equal(atomic_load(&stored), THREADS * OWN_PER_THREAD + SHARED);
    assert_int_equal(item_count(f->p), THREADS * OWN_PER_THREAD + SHARED);
    persistor_string_list hashes;
    assert_int_equal(persistor_snapshot_list_hashes(f->p, "xc-shared", &hashes, NULL),
                     PERSISTOR_OK);
    assert_int_equal(hashes.count, SHARED);
    persistor_string_list_free(&hashes);
}

/* Opening: every mistake is reported before anything is touched. */
static void expect_open_fails(const char *adapter_extra, int32_t rc, const char *needle)
{
    fixture f = {0};
    snprintf(f.dir, sizeof f.dir, "/tmp/persistor-snap-XXXXXX");
    assert_non_null(mkdtemp(f.dir));
    write_profiles(&f, adapter_extra, "");
    persistor_error err = {0};
    assert_int_equal(fixture_open(&f, &err), rc);
    assert_null(f.p);
    if (strstr(err.message, needle) == NULL)
        fail_msg("message \"%s\" lacks \"%s\"", err.message, needle);
    unlink(f.config);
    rmdir(f.dir);
}

static void test_open_refuses_unknown_adapter_option_with_its_line(void **state)
{
    (void)state;
    expect_open_fails("        max_itemz: 3\n", PERSISTOR_E_CONFIG,
                      "profiles.yaml:5:20: unit.adapters[0].max_itemz: unknown option for "
                      "adapter memory (it takes: max_items)");
}

static void test_open_refuses_adapter_option_of_wrong_type(void **state)
{
    (void)state;
    expect_open_fails("        max_items: lots\n", PERSISTOR_E_CONFIG,
                      "profiles.yaml:5:20: unit.adapters[0].max_items: expected an integer, "
                      "got \"lots\"");
}

static void test_open_refuses_missing_plugin_naming_the_file(void **state)
{
    (void)state;
    expect_open_fails("        path: /nonexistent/memory.so\n", PERSISTOR_E_CONFIG,
                      "/nonexistent/memory.so: refused: no such file");
}

static void test_open_reports_unknown_profile(void **state)
{
    fixture *f = *state;
    persistor_open_options opts = {.struct_size = sizeof opts, .config_path = f->config,
                                   .profile = "nosuch"};
    persistor *p = NULL;
    persistor_error err = {0};
    assert_int_equal(persistor_open(&opts, &p, &err), PERSISTOR_NOT_FOUND);
    assert_null(p);
    assert_non_null(strstr(err.message, "nosuch"));
}

static void test_health_reports_each_adapter(void **state)
{
    fixture *f = *state;
    persistor_health h;
    assert_int_equal(persistor_health_check(f->p, &h, NULL), PERSISTOR_OK);
    assert_int_equal(h.count, 1);
    assert_string_equal(h.adapters[0].label, "memory#0");
    assert_string_equal(h.adapters[0].type, "memory");
    assert_int_equal(h.adapters[0].status, PERSISTOR_OK);
    persistor_health_free(&h);
}

#define PLAIN(t) cmocka_unit_test_setup_teardown(t, setup_plain, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        PLAIN(test_append_same_snapshot_twice_stores_one),
        PLAIN(test_hash_covers_tenant_context_time_and_content),
        PLAIN(test_caller_given_hash_is_the_id),
        PLAIN(test_get_returns_fields_and_content),
        PLAIN(test_load_orders_by_ts_then_hash),
        PLAIN(test_unknown_context_loads_empty_and_has_no_latest),
        PLAIN(test_delete_removes_one_and_reports_absent),
        PLAIN(test_delete_context_removes_only_that_context),
        PLAIN(test_stats_report_count_size_average_and_adapter),
        PLAIN(test_append_many_reports_each_and_checks_all_first),
        PLAIN(test_invalid_input_is_refused_with_a_reason),
        PLAIN(test_bson_content_is_stored_as_given_and_checked),
        PLAIN(test_snapshot_with_fields_in_another_order_reads_the_same),
        PLAIN(test_oversize_snapshot_is_refused_and_nothing_stored),
        cmocka_unit_test_setup_teardown(test_ttl_expires_snapshots_after_their_time, setup_ttl,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_ttl_expires_snapshots_after_their_time,
                                        setup_ttl_without_expire_slot, teardown),
        cmocka_unit_test_setup_teardown(test_memory_bound_evicts_oldest_snapshots, setup_bounded,
                                        teardown),
        PLAIN(test_concurrent_appends_from_8_threads_give_an_exact_count),
        cmocka_unit_test(test_open_refuses_unknown_adapter_option_with_its_line),
        cmocka_unit_test(test_open_refuses_adapter_option_of_wrong_type),
        cmocka_unit_test(test_open_refuses_missing_plugin_naming_the_file),
        PLAIN(test_open_reports_unknown_profile),
        PLAIN(test_health_reports_each_adapter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
