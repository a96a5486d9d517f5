/*
 * test_memory.c — what only the memory adapter promises, beyond the
 * conformance suite: max_items eviction by write order, instances that
 * share nothing, write order as the natural order, cursors as snapshots,
 * index and TTL changes on a later ensure_collection, and nothing changed
 * when the host's index_key fails.
 *
 * The built memory.so is loaded through the loader, as in production, from
 * $PERSISTOR_BUILD_DIR/lib/persistor/memory.so (ctest sets the variable).
 */
#define _XOPEN_SOURCE 700 /* setenv, pipe2-free pipe, fcntl */

#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <bson/bson.h>

#include "buffer.h"
#include "config.h"
#include "error.h"
#include "host.h"
#include "loader.h"
#include "log.h"
#include "profile.h"

typedef struct mt_world {
    char path[4096];
    loader_module *module;
    const persistor_adapter *api;
    persistor_host *host;
} mt_world;

/* One instance with its own profile entry (which must outlive its config). */
typedef struct mt_inst {
    mt_world *w;
    char value[32];
    profile_option option;
    profile_adapter entry;
    persistor_config *config;
    persistor_instance *inst;
    /* ensure_collection's specs must outlive the instance (adapter.h). */
    persistor_collection_spec specs[16];
    size_t n_specs;
} mt_inst;

static const persistor_collection_spec *mt_keep_spec(mt_inst *m, persistor_collection_spec spec)
{
    assert_true(m->n_specs < sizeof m->specs / sizeof m->specs[0]);
    m->specs[m->n_specs] = spec;
    return &m->specs[m->n_specs++];
}

static int group_setup(void **state)
{
    static mt_world w;
    persistor_error err = {0};
    const char *build = getenv("PERSISTOR_BUILD_DIR");
    if (build == NULL) {
        print_error("PERSISTOR_BUILD_DIR is not set (run through ctest)\n");
        return -1;
    }
    snprintf(w.path, sizeof w.path, "%s/lib/persistor/memory.so", build);
    if (loader_acquire("memory", w.path, NULL, host_default(), &w.module, &err) != 0) {
        print_error("loading %s: %s\n", w.path, err.message);
        return -1;
    }
    w.api = loader_adapter(w.module);
    w.host = host_new("memory#0", NULL, NULL);
    *state = &w;
    return w.host ? 0 : -1;
}

static int group_teardown(void **state)
{
    mt_world *w = *state;
    host_free(w->host);
    loader_release(w->module);
    return 0;
}

/* Open with max_items given as profile text (NULL: the default). */
static int32_t mt_open(mt_world *w, mt_inst *m, const char *max_items, persistor_error *err)
{
    memset(m, 0, sizeof *m);
    m->w = w;
    snprintf(m->value, sizeof m->value, "%s", max_items ? max_items : "");
    m->option = (profile_option){"max_items", m->value, "test.adapters[0].max_items",
                                 {"<test>", 3, 18}};
    m->entry = (profile_adapter){"memory", w->path, "test.adapters[0]", {"<test>", 2, 7},
                                 {"<test>", 2, 13}, &m->option, max_items ? 1 : 0, false};
    int32_t rc = config_new(&m->entry, w->api, "memory#0", &m->config, err);
    if (rc == PERSISTOR_OK)
        rc = w->api->open(w->host, m->config, &m->inst, err);
    return rc;
}

static void mt_close(mt_inst *m)
{
    if (m->inst)
        m->w->api->close(m->inst);
    config_free(m->config);
}

static void mt_open_ok(mt_world *w, mt_inst *m, const char *max_items)
{
    persistor_error err = {0};
    int32_t rc = mt_open(w, m, max_items, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("open max_items=%s: %s", max_items ? max_items : "(default)", err.message);
}

static void mt_ensure(mt_inst *m, const char *coll, const persistor_index_spec *idx, uint32_t n,
                      const char *ttl_field)
{
    persistor_collection_spec spec = {sizeof spec, coll, idx, n, ttl_field, ttl_field ? 60 : 0,
                                      NULL};
    persistor_error err = {0};
    int32_t rc = m->w->api->ensure_collection(m->inst, mt_keep_spec(m, spec), &err);
    if (rc != PERSISTOR_OK)
        fail_msg("ensure %s: %s", coll, err.message);
}

static bson_t *mt_doc(const char *id, const char *email)
{
    bson_t *doc = bson_new();
    BSON_APPEND_UTF8(doc, "_id", id);
    if (email != NULL)
        BSON_APPEND_UTF8(doc, "email", email);
    return doc;
}

static persistor_write_op mt_op(uint32_t kind, const bson_t *doc)
{
    bson_iter_t it;
    bson_iter_init_find(&it, doc, "_id");
    return (persistor_write_op){kind, doc->len, bson_iter_utf8(&it, NULL), bson_get_data(doc)};
}

/* One write; returns the op's result (the call itself must be OK). */
static int32_t mt_put(mt_inst *m, uint32_t kind, const char *id, const char *email)
{
    bson_t *doc = mt_doc(id, email);
    persistor_write_op op = mt_op(kind, doc);
    persistor_error err = {0};
    int32_t result = -100;
    int32_t rc = m->w->api->write(m->inst, "c", &op, 1, &result, &err);
    bson_destroy(doc);
    if (rc != PERSISTOR_OK)
        fail_msg("write %s: %s", id, err.message);
    return result;
}

static int mt_has(mt_inst *m, const char *coll, const char *id)
{
    persistor_buffer buf = {0};
    persistor_error err = {0};
    int32_t rc = m->w->api->get(m->inst, coll, id, &buf, &err);
    buffer_free(&buf);
    if (rc != PERSISTOR_OK && rc != PERSISTOR_NOT_FOUND)
        fail_msg("get %s/%s: %s", coll, id, err.message);
    return rc == PERSISTOR_OK;
}

/* The _ids a query returns, in the order it returns them. */
static void mt_ids(mt_inst *m, const char *sort_key, char *out, size_t cap)
{
    bson_t *sort = sort_key ? BCON_NEW(sort_key, BCON_INT32(1)) : NULL;
    persistor_query q = {sizeof q, 0, NULL, sort ? sort->len : 0,
                         sort ? bson_get_data(sort) : NULL, 0, 0};
    persistor_cursor *cur;
    persistor_error err = {0};
    const uint8_t *doc;
    uint32_t len;
    assert_int_equal(m->w->api->query(m->inst, "c", &q, &cur, &err), PERSISTOR_OK);
    out[0] = '\0';
    while (m->w->api->cursor_next(cur, &doc, &len, &err) == PERSISTOR_OK) {
        bson_t view;
        bson_iter_t it;
        assert_true(bson_init_static(&view, doc, len) && bson_iter_init_find(&it, &view, "_id"));
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s%s", used ? "," : "", bson_iter_utf8(&it, NULL));
    }
    m->w->api->cursor_close(cur);
    if (sort)
        bson_destroy(sort);
}

static uint64_t mt_count(mt_inst *m)
{
    persistor_collection_stats st = {sizeof st, 0, 0};
    persistor_error err = {0};
    assert_int_equal(m->w->api->stats(m->inst, "c", &st, &err), PERSISTOR_OK);
    return st.item_count;
}

/* ---- max_items ----------------------------------------------------- */

static const int64_t bounds[] = {1, 2, 3, 7, 100};

/* After n writes of ids i0..i(n-1) under `bound`, exactly the newest
 * `bound` remain, in write order. */
static void check_survivors(mt_inst *m, int64_t bound, int n)
{
    static char got[8192], want[8192];
    char id[16];
    want[0] = '\0';
    for (int i = 0; i < n; i++) {
        snprintf(id, sizeof id, "i%d", i);
        int keep = i >= n - bound;
        if (mt_has(m, "c", id) != keep)
            fail_msg("bound %lld: %s should be %s", (long long)bound, id,
                     keep ? "kept" : "evicted");
        if (keep)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s",
                     want[0] ? "," : "", id);
    }
    assert_int_equal(mt_count(m), bound);
    mt_ids(m, NULL, got, sizeof got);
    assert_string_equal(got, want);
}

static void test_max_items_keeps_the_newest_ids_one_write_at_a_time(void **state)
{
    char id[16], text[16];
    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        mt_inst m;
        int n = (int)bounds[b] * 3 + 5;
        snprintf(text, sizeof text, "%lld", (long long)bounds[b]);
        mt_open_ok(*state, &m, text);
        mt_ensure(&m, "c", NULL, 0, NULL);
        for (int i = 0; i < n; i++) {
            snprintf(id, sizeof id, "i%d", i);
            assert_int_equal(mt_put(&m, PERSISTOR_WRITE_INSERT_IF_ABSENT, id, NULL), 0);
            assert_int_equal(mt_count(&m), i + 1 < bounds[b] ? i + 1 : bounds[b]);
        }
        check_survivors(&m, bounds[b], n);
        mt_close(&m);
    }
}

static void test_max_items_keeps_the_newest_ids_in_one_batch(void **state)
{
    char text[16];
    for (size_t b = 0; b < sizeof bounds / sizeof bounds[0]; b++) {
        int n = (int)bounds[b] * 3 + 5;
        bson_t **docs = calloc((size_t)n, sizeof *docs);
        persistor_write_op *ops = calloc((size_t)n, sizeof *ops);
        int32_t *results = calloc((size_t)n, sizeof *results);
        persistor_error err = {0};
        mt_inst m;
        assert_true(docs && ops && results);
        snprintf(text, sizeof text, "%lld", (long long)bounds[b]);
        mt_open_ok(*state, &m, text);
        mt_ensure(&m, "c", NULL, 0, NULL);
        for (int i = 0; i < n; i++) {
            char id[16];
            snprintf(id, sizeof id, "i%d", i);
            docs[i] = mt_doc(id, NULL);
            ops[i] = mt_op(i % 2 ? PERSISTOR_WRITE_UPSERT : PERSISTOR_WRITE_INSERT_IF_ABSENT,
                           docs[i]);
        }
        assert_int_equal(m.w->api->write(m.inst, "c", ops, (uint32_t)n, results, &err), 0);
        for (int i = 0; i < n; i++) {
            assert_int_equal(results[i], PERSISTOR_OK);
            bson_destroy(docs[i]);
        }
        check_survivors(&m, bounds[b], n);
        mt_close(&m);
        free(docs);
        free(ops);
        free(results);
    }
}

static void test_upsert_of_an_existing_id_moves_it_to_newest(void **state)
{
    mt_inst m;
    char got[256];
    mt_open_ok(*state, &m, "3");
    mt_ensure(&m, "c", NULL, 0, NULL);
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "a", NULL);
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "b", NULL);
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "c", NULL);
    assert_int_equal(mt_put(&m, PERSISTOR_WRITE_UPSERT, "a", "new"), PERSISTOR_OK);
    mt_ids(&m, NULL, got, sizeof got);
    assert_string_equal(got, "b,c,a"); /* a replacement evicts nothing */
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "d", NULL);
    mt_ids(&m, NULL, got, sizeof got);
    assert_string_equal(got, "c,a,d");
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "e", NULL);
    mt_ids(&m, NULL, got, sizeof got);
    assert_string_equal(got, "a,d,e");
    mt_close(&m);
}

static const persistor_index_key email_key[] = {{"email", 1}};
static const persistor_index_spec email_unique[] = {
    {"email_1", email_key, 1, PERSISTOR_INDEX_UNIQUE}};

static void test_a_refused_write_evicts_nothing(void **state)
{
    mt_inst m;
    char got[256];
    mt_open_ok(*state, &m, "2");
    mt_ensure(&m, "c", email_unique, 1, NULL);
    mt_put(&m, PERSISTOR_WRITE_INSERT_IF_ABSENT, "a", "a@x");
    mt_put(&m, PERSISTOR_WRITE_INSERT_IF_ABSENT, "b", "b@x");
    assert_int_equal(mt_put(&m, PERSISTOR_WRITE_INSERT_IF_ABSENT, "a", "z@x"), PERSISTOR_EXISTS);
    /* Even though "a", holder of the key, is the next to be evicted. */
    assert_int_equal(mt_put(&m, PERSISTOR_WRITE_UPSERT, "c", "a@x"), PERSISTOR_EXISTS);
    mt_ids(&m, NULL, got, sizeof got);
    assert_string_equal(got, "a,b");
    assert_int_equal(mt_put(&m, PERSISTOR_WRITE_UPSERT, "c", "c@x"), PERSISTOR_OK);
    mt_ids(&m, NULL, got, sizeof got);
    assert_string_equal(got, "b,c");
    /* The evicted document's key is free again. */
    assert_int_equal(mt_put(&m, PERSISTOR_WRITE_UPSERT, "d", "a@x"), PERSISTOR_OK);
    mt_close(&m);
}

/* ---- instances and options ----------------------------------------- */

static void test_two_instances_share_nothing(void **state)
{
    mt_inst one, two;
    persistor_error err = {0};
    int32_t result;
    mt_open_ok(*state, &one, NULL);
    mt_open_ok(*state, &two, NULL);
    mt_ensure(&one, "c", NULL, 0, NULL);
    mt_put(&one, PERSISTOR_WRITE_UPSERT, "x", NULL);
    /* The other instance has not even seen the collection. */
    persistor_write_op del = {PERSISTOR_WRITE_DELETE, 0, "x", NULL};
    assert_int_equal(two.w->api->write(two.inst, "c", &del, 1, &result, &err),
                     PERSISTOR_E_INVALID);
    mt_ensure(&two, "c", NULL, 0, NULL);
    assert_false(mt_has(&two, "c", "x"));
    mt_put(&two, PERSISTOR_WRITE_UPSERT, "y", NULL);
    assert_false(mt_has(&one, "c", "y"));
    assert_true(mt_has(&one, "c", "x"));
    mt_close(&two);
    assert_true(mt_has(&one, "c", "x"));
    mt_close(&one);
}

static void test_negative_max_items_is_a_config_error(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    assert_int_equal(mt_open(*state, &m, "-1", &err), PERSISTOR_E_CONFIG);
    assert_null(m.inst);
    assert_non_null(strstr(err.message, "<test>:3:18: test.adapters[0].max_items: must be >= 0"));
    mt_close(&m);
    mt_open_ok(*state, &m, "0"); /* 0: unbounded */
    mt_close(&m);
}

static void test_calls_on_a_collection_never_ensured_are_invalid(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    persistor_buffer buf = {0};
    persistor_query q = {sizeof q, 0, NULL, 0, NULL, 0, 0};
    persistor_cursor *cur;
    persistor_collection_stats st = {sizeof st, 0, 0};
    persistor_write_op ops[2] = {{PERSISTOR_WRITE_DELETE, 0, "a", NULL},
                                 {PERSISTOR_WRITE_DELETE, 0, "b", NULL}};
    int32_t results[2] = {0, 0};
    uint64_t n;
    mt_open_ok(*state, &m, NULL);
    const persistor_adapter *api = m.w->api;
    assert_int_equal(api->write(m.inst, "nope", ops, 2, results, &err), PERSISTOR_E_INVALID);
    assert_string_equal(err.message, "collection nope was not ensured");
    assert_int_equal(results[0], PERSISTOR_E_INVALID);
    assert_int_equal(results[1], PERSISTOR_E_INVALID);
    assert_int_equal(api->get(m.inst, "nope", "a", &buf, &err), PERSISTOR_E_INVALID);
    assert_int_equal(api->query(m.inst, "nope", &q, &cur, &err), PERSISTOR_E_INVALID);
    assert_int_equal(api->count(m.inst, "nope", NULL, 0, &n, &err), PERSISTOR_E_INVALID);
    assert_int_equal(api->stats(m.inst, "nope", &st, &err), PERSISTOR_E_INVALID);
    assert_int_equal(api->expire(m.inst, "nope", 0, &n, &err), PERSISTOR_E_INVALID);
    mt_close(&m);
}

static void test_a_document_that_is_not_bson_is_invalid(void **state)
{
    mt_inst m;
    bson_t *doc = mt_doc("a", NULL);
    persistor_write_op ops[2] = {mt_op(PERSISTOR_WRITE_UPSERT, doc),
                                 mt_op(PERSISTOR_WRITE_UPSERT, doc)};
    int32_t results[2];
    persistor_error err = {0};
    ops[1].doc_len -= 1; /* the length prefix no longer matches */
    mt_open_ok(*state, &m, NULL);
    mt_ensure(&m, "c", NULL, 0, NULL);
    assert_int_equal(m.w->api->write(m.inst, "c", ops, 2, results, &err), PERSISTOR_E_INVALID);
    assert_int_equal(results[0], PERSISTOR_OK);
    assert_int_equal(results[1], PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "c/a"));
    bson_destroy(doc);
    mt_close(&m);
}

/* ---- order and cursors --------------------------------------------- */

static void test_sort_ties_keep_write_order(void **state)
{
    mt_inst m;
    char got[256];
    mt_open_ok(*state, &m, NULL);
    mt_ensure(&m, "c", NULL, 0, NULL);
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "z", "same");
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "m", "a-first");
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "a", "same");
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "q", "same");
    mt_ids(&m, "email", got, sizeof got);
    assert_string_equal(got, "m,z,a,q");
    mt_close(&m);
}

static void test_a_cursor_is_a_snapshot_of_the_query(void **state)
{
    mt_inst m;
    persistor_query q = {sizeof q, 0, NULL, 0, NULL, 0, 0};
    persistor_cursor *cur;
    persistor_error err = {0};
    const uint8_t *doc;
    uint32_t len;
    mt_open_ok(*state, &m, NULL);
    mt_ensure(&m, "c", NULL, 0, NULL);
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "a", NULL);
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "b", NULL);
    assert_int_equal(m.w->api->query(m.inst, "c", &q, &cur, &err), PERSISTOR_OK);
    mt_put(&m, PERSISTOR_WRITE_DELETE, "a", NULL);
    mt_put(&m, PERSISTOR_WRITE_DELETE, "b", NULL);
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "c", NULL);
    for (int i = 0; i < 2; i++) {
        bson_iter_t it;
        bson_t view;
        assert_int_equal(m.w->api->cursor_next(cur, &doc, &len, &err), PERSISTOR_OK);
        assert_true(bson_init_static(&view, doc, len) && bson_iter_init_find(&it, &view, "_id"));
        assert_string_equal(bson_iter_utf8(&it, NULL), i == 0 ? "a" : "b");
    }
    assert_int_equal(m.w->api->cursor_next(cur, &doc, &len, &err), PERSISTOR_ITER_END);
    m.w->api->cursor_close(cur);
    mt_close(&m);
}

/* ---- a later ensure_collection ------------------------------------- */

static void test_ensure_changes_unique_indexes_or_refuses_what_data_breaks(void **state)
{
    mt_inst m;
    persistor_collection_spec spec = {sizeof spec, "c", email_unique, 1, NULL, 0, NULL};
    persistor_error err = {0};
    mt_open_ok(*state, &m, NULL);
    mt_ensure(&m, "c", NULL, 0, NULL);
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "a", "dup@x");
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "b", "dup@x");
    assert_int_equal(m.w->api->ensure_collection(m.inst, mt_keep_spec(&m, spec), &err),
                     PERSISTOR_E_CONFIG);
    assert_non_null(strstr(err.message, "email_1"));
    assert_non_null(strstr(err.message, "documents a and b"));
    /* Refused: the collection is as it was, without the index. */
    assert_int_equal(mt_put(&m, PERSISTOR_WRITE_UPSERT, "c", "dup@x"), PERSISTOR_OK);
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "a", "a@x");
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "b", "b@x");
    mt_ensure(&m, "c", email_unique, 1, NULL);
    assert_int_equal(mt_put(&m, PERSISTOR_WRITE_UPSERT, "d", "a@x"), PERSISTOR_EXISTS);
    mt_ensure(&m, "c", email_unique, 1, NULL); /* idempotent */
    assert_int_equal(mt_put(&m, PERSISTOR_WRITE_UPSERT, "d", "b@x"), PERSISTOR_EXISTS);
    mt_ensure(&m, "c", NULL, 0, NULL); /* dropped */
    assert_int_equal(mt_put(&m, PERSISTOR_WRITE_UPSERT, "d", "a@x"), PERSISTOR_OK);
    mt_close(&m);
}

static void put_dated(mt_inst *m, const char *id, int64_t ms)
{
    bson_t *doc = BCON_NEW("_id", BCON_UTF8(id), "at", BCON_DATE_TIME(ms));
    persistor_write_op op = mt_op(PERSISTOR_WRITE_UPSERT, doc);
    persistor_error err = {0};
    int32_t result;
    assert_int_equal(m->w->api->write(m->inst, "c", &op, 1, &result, &err), PERSISTOR_OK);
    bson_destroy(doc);
}

static void test_ensure_changes_the_ttl(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    uint64_t removed = 99;
    mt_open_ok(*state, &m, NULL);
    mt_ensure(&m, "c", NULL, 0, NULL);
    put_dated(&m, "old", 1000);
    assert_int_equal(m.w->api->expire(m.inst, "c", 5000, &removed, &err), PERSISTOR_OK);
    assert_int_equal(removed, 0); /* no TTL yet */
    mt_ensure(&m, "c", NULL, 0, "at");
    assert_int_equal(m.w->api->expire(m.inst, "c", 5000, &removed, &err), PERSISTOR_OK);
    assert_int_equal(removed, 1);
    assert_false(mt_has(&m, "c", "old"));
    mt_close(&m);
}

/* ---- failures change nothing --------------------------------------- */

static int index_key_budget; /* calls left before the fake fails */

static int32_t failing_index_key(const persistor_index_spec *index, const uint8_t *doc,
                                 uint32_t len, persistor_buffer *out)
{
    if (index_key_budget-- <= 0)
        return PERSISTOR_E_NOMEM;
    return host_default()->index_key(index, doc, len, out);
}

static void test_a_failing_index_key_changes_nothing(void **state)
{
    mt_world *w = *state, faulty = *w;
    mt_inst m;
    char got[256];
    bson_t *a2 = mt_doc("a", "new@x"), *b = mt_doc("b", "b@x");
    persistor_write_op ops[2] = {mt_op(PERSISTOR_WRITE_UPSERT, b),
                                 mt_op(PERSISTOR_WRITE_UPSERT, a2)};
    int32_t results[2];
    persistor_error err = {0};
    faulty.host = host_new("memory#0", NULL, NULL);
    assert_non_null(faulty.host);
    faulty.host->index_key = failing_index_key;
    index_key_budget = 1000;
    mt_open_ok(&faulty, &m, "2");
    mt_ensure(&m, "c", email_unique, 1, NULL);
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "a", "a@x");
    mt_put(&m, PERSISTOR_WRITE_UPSERT, "z", "z@x");
    /* index_key fails for the whole batch: the first op fails, changes
     * (and evicts) nothing, and the second is not applied either. */
    index_key_budget = 0;
    assert_int_equal(m.w->api->write(m.inst, "c", ops, 2, results, &err), PERSISTOR_E_NOMEM);
    assert_int_equal(results[0], PERSISTOR_E_NOMEM);
    assert_int_equal(results[1], PERSISTOR_E_NOMEM);
    mt_ids(&m, NULL, got, sizeof got);
    assert_string_equal(got, "a,z");
    /* Dropping the index needs no key; adding it back while index_key
     * fails is refused and leaves the collection without it. */
    mt_ensure(&m, "c", NULL, 0, NULL);
    index_key_budget = 0;
    assert_int_equal(m.w->api->ensure_collection(
                         m.inst,
                         mt_keep_spec(&m, (persistor_collection_spec){sizeof(persistor_collection_spec),
                                                                      "c", email_unique, 1, NULL, 0, NULL}),
                         &err),
                     PERSISTOR_E_NOMEM);
    index_key_budget = 1000;
    assert_int_equal(mt_put(&m, PERSISTOR_WRITE_UPSERT, "y", "z@x"), PERSISTOR_OK);
    mt_close(&m);
    host_free(faulty.host);
    bson_destroy(a2);
    bson_destroy(b);
}

/* One debug line per write call that evicted, not per document. */
static void test_evictions_are_logged_once_per_batch(void **state)
{
    mt_inst m;
    int fds[2];
    char text[4096] = {0};
    bson_t *docs[5];
    persistor_write_op ops[5];
    int32_t results[5];
    persistor_error err = {0};
    assert_int_equal(pipe(fds), 0);
    fcntl(fds[0], F_SETFL, O_NONBLOCK);
    setenv("PERSISTOR_LOG_LEVEL", "debug", 1);
    log_reload_level();
    log_set_fd(fds[1]);
    mt_open_ok(*state, &m, "2");
    mt_ensure(&m, "c", NULL, 0, NULL);
    for (int i = 0; i < 5; i++) {
        char id[8];
        snprintf(id, sizeof id, "e%d", i);
        docs[i] = mt_doc(id, NULL);
        ops[i] = mt_op(PERSISTOR_WRITE_UPSERT, docs[i]);
    }
    assert_int_equal(m.w->api->write(m.inst, "c", ops, 5, results, &err), PERSISTOR_OK);
    log_set_fd(-1);
    unsetenv("PERSISTOR_LOG_LEVEL");
    log_reload_level();
    ssize_t got = read(fds[0], text, sizeof text - 1);
    close(fds[0]);
    close(fds[1]);
    assert_true(got > 0);
    char *first = strstr(text, "\"memory_evicted\"");
    assert_non_null(first);
    assert_null(strstr(first + 1, "\"memory_evicted\""));
    assert_non_null(strstr(text, "evicted the 3 oldest document(s)"));
    for (int i = 0; i < 5; i++)
        bson_destroy(docs[i]);
    mt_close(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_max_items_keeps_the_newest_ids_one_write_at_a_time),
        cmocka_unit_test(test_max_items_keeps_the_newest_ids_in_one_batch),
        cmocka_unit_test(test_upsert_of_an_existing_id_moves_it_to_newest),
        cmocka_unit_test(test_a_refused_write_evicts_nothing),
        cmocka_unit_test(test_two_instances_share_nothing),
        cmocka_unit_test(test_negative_max_items_is_a_config_error),
        cmocka_unit_test(test_calls_on_a_collection_never_ensured_are_invalid),
        cmocka_unit_test(test_a_document_that_is_not_bson_is_invalid),
        cmocka_unit_test(test_sort_ties_keep_write_order),
        cmocka_unit_test(test_a_cursor_is_a_snapshot_of_the_query),
        cmocka_unit_test(test_ensure_changes_unique_indexes_or_refuses_what_data_breaks),
        cmocka_unit_test(test_ensure_changes_the_ttl),
        cmocka_unit_test(test_a_failing_index_key_changes_nothing),
        cmocka_unit_test(test_evictions_are_logged_once_per_batch),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
