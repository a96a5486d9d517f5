/*
 * cases_crud.c — the write/read contract of adapter.h, one behaviour per
 * case: instances, collections, the three write kinds and their per-op
 * answers, unique indexes, cursors, count, stats and expire.
 *
 * Every expectation is what MongoDB itself would answer; optional slots an
 * adapter leaves NULL are skipped with a message, never failed.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>

static conf_fixture *fx(void **state)
{
    return *state;
}

static void test_open_close_and_a_second_instance(void **state)
{
    conf_fixture *f = fx(state);
    persistor_instance *other = NULL;
    persistor_error err = {0};
    conf_expect(conf_open(f, &other, &err), PERSISTOR_OK, &err);
    assert_non_null(other);
    conf_expect(f->adapter->ping(other, &err), PERSISTOR_OK, &err);
    f->adapter->close(other);
    f->adapter->close(f->inst);
    f->inst = NULL;
    conf_expect(conf_open(f, &f->inst, &err), PERSISTOR_OK, &err);
}

static void test_ping_answers_ok(void **state)
{
    conf_fixture *f = fx(state);
    persistor_error err = {0};
    conf_expect(f->adapter->ping(f->inst, &err), PERSISTOR_OK, &err);
}

static void test_ensure_collection_twice_keeps_data(void **state)
{
    conf_fixture *f = fx(state);
    conf_ensure(f, "c");
    assert_int_equal(conf_put_json(f, "c", PERSISTOR_WRITE_UPSERT, "{'_id': 'x', 'v': 1}"),
                     PERSISTOR_OK);
    conf_ensure(f, "c");
    bson_t *want = conf_json("{'_id': 'x', 'v': 1}");
    conf_assert_stored(f, "c", want);
    bson_destroy(want);
}

static void test_insert_if_absent_twice_exists_and_keeps_first(void **state)
{
    conf_fixture *f = fx(state);
    conf_ensure(f, "c");
    bson_t *first = conf_json("{'_id': 'a', 'v': 'first'}");
    assert_int_equal(conf_put(f, "c", PERSISTOR_WRITE_INSERT_IF_ABSENT, first), PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "c", PERSISTOR_WRITE_INSERT_IF_ABSENT,
                                   "{'_id': 'a', 'v': 'second'}"),
                     PERSISTOR_EXISTS);
    conf_assert_stored(f, "c", first);
    bson_destroy(first);
}

static void test_upsert_replaces_the_whole_document(void **state)
{
    conf_fixture *f = fx(state);
    conf_ensure(f, "c");
    assert_int_equal(conf_put_json(f, "c", PERSISTOR_WRITE_UPSERT,
                                   "{'_id': 'a', 'keep': 1, 'gone': {'x': 1}}"),
                     PERSISTOR_OK);
    bson_t *second = conf_json("{'_id': 'a', 'keep': 2}");
    assert_int_equal(conf_put(f, "c", PERSISTOR_WRITE_UPSERT, second), PERSISTOR_OK);
    conf_assert_stored(f, "c", second);
    bson_destroy(second);
}

static void test_delete_existing_ok_absent_not_found(void **state)
{
    conf_fixture *f = fx(state);
    conf_ensure(f, "c");
    assert_int_equal(conf_put_json(f, "c", PERSISTOR_WRITE_UPSERT, "{'_id': 'a'}"),
                     PERSISTOR_OK);
    assert_int_equal(conf_delete(f, "c", "a"), PERSISTOR_OK);
    conf_assert_absent(f, "c", "a");
    assert_int_equal(conf_delete(f, "c", "a"), PERSISTOR_NOT_FOUND);
    assert_int_equal(conf_delete(f, "c", "never"), PERSISTOR_NOT_FOUND);
}

static void test_get_absent_is_not_found(void **state)
{
    conf_fixture *f = fx(state);
    conf_ensure(f, "c");
    conf_assert_absent(f, "c", "nobody");
}

/* The ops of a batch apply in order, each with its own answer. */
static void test_batch_gives_each_op_its_own_answer(void **state)
{
    conf_fixture *f = fx(state);
    static const struct { uint32_t kind; const char *id; const char *json; int32_t want; } rows[] = {
        {PERSISTOR_WRITE_INSERT_IF_ABSENT, "a", "{'_id': 'a', 'v': 1}", PERSISTOR_OK},
        {PERSISTOR_WRITE_INSERT_IF_ABSENT, "a", "{'_id': 'a', 'v': 2}", PERSISTOR_EXISTS},
        {PERSISTOR_WRITE_UPSERT, "b", "{'_id': 'b', 'v': 1}", PERSISTOR_OK},
        {PERSISTOR_WRITE_DELETE, "c", NULL, PERSISTOR_NOT_FOUND},
        {PERSISTOR_WRITE_DELETE, "a", NULL, PERSISTOR_OK},
        {PERSISTOR_WRITE_INSERT_IF_ABSENT, "a", "{'_id': 'a', 'v': 3}", PERSISTOR_OK},
        {PERSISTOR_WRITE_UPSERT, "b", "{'_id': 'b', 'v': 2}", PERSISTOR_OK},
        {PERSISTOR_WRITE_INSERT_IF_ABSENT, "b", "{'_id': 'b', 'v': 9}", PERSISTOR_EXISTS},
    };
    enum { N = sizeof rows / sizeof rows[0] };
    persistor_write_op ops[N];
    bson_t *docs[N];
    int32_t results[N];
    persistor_error err = {0};
    conf_ensure(f, "c");
    for (size_t i = 0; i < N; i++) {
        docs[i] = rows[i].json ? conf_json(rows[i].json) : NULL;
        ops[i] = (persistor_write_op){rows[i].kind, docs[i] ? docs[i]->len : 0, rows[i].id,
                                      docs[i] ? bson_get_data(docs[i]) : NULL};
        results[i] = -100;
    }
    conf_expect(f->adapter->write(f->inst, "c", ops, N, results, &err), PERSISTOR_OK, &err);
    for (size_t i = 0; i < N; i++) {
        if (results[i] != rows[i].want)
            fail_msg("op %zu: expected %d, got %d", i, rows[i].want, results[i]);
    }
    conf_assert_stored(f, "c", docs[5]);
    conf_assert_stored(f, "c", docs[6]);
    for (size_t i = 0; i < N; i++)
        if (docs[i])
            bson_destroy(docs[i]);
}

static void ensure_users(conf_fixture *f)
{
    static const persistor_index_key email[] = {{"email", 1}};
    static const persistor_index_key team[] = {{"team", 1}, {"n", -1}};
    static const persistor_index_spec idx[] = {
        {"team_1_n_-1", team, 2, 0},
        {"email_1", email, 1, PERSISTOR_INDEX_UNIQUE},
    };
    persistor_collection_spec spec = {sizeof spec, "users", idx, 2, NULL, 0, NULL};
    persistor_error err = {0};
    conf_expect(f->adapter->ensure_collection(f->inst, conf_keep_spec(f, spec), &err),
                PERSISTOR_OK, &err);
}

static void test_unique_index_refuses_another_id_allows_same_id(void **state)
{
    conf_fixture *f = fx(state);
    const uint32_t ins = PERSISTOR_WRITE_INSERT_IF_ABSENT, up = PERSISTOR_WRITE_UPSERT;
    ensure_users(f);
    assert_int_equal(conf_put_json(f, "users", ins, "{'_id': 'u1', 'email': 'a@x', 'n': 1}"),
                     PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "users", ins, "{'_id': 'u2', 'email': 'a@x'}"),
                     PERSISTOR_EXISTS);
    assert_int_equal(conf_put_json(f, "users", up, "{'_id': 'u2', 'email': 'a@x'}"),
                     PERSISTOR_EXISTS);
    conf_assert_absent(f, "users", "u2");
    /* The same id may keep, then change, its key. */
    assert_int_equal(conf_put_json(f, "users", up, "{'_id': 'u1', 'email': 'a@x', 'n': 2}"),
                     PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "users", up, "{'_id': 'u1', 'email': 'b@x'}"),
                     PERSISTOR_OK);
    bson_t *u2 = conf_json("{'_id': 'u2', 'email': 'a@x'}");
    assert_int_equal(conf_put(f, "users", ins, u2), PERSISTOR_OK);
    /* A refused upsert leaves the document as it was. */
    assert_int_equal(conf_put_json(f, "users", up, "{'_id': 'u2', 'email': 'b@x'}"),
                     PERSISTOR_EXISTS);
    conf_assert_stored(f, "users", u2);
    bson_destroy(u2);
    assert_int_equal(conf_delete(f, "users", "u1"), PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "users", up, "{'_id': 'u2', 'email': 'b@x'}"),
                     PERSISTOR_OK);
}

/* Keys compare as MongoDB values: 1 == 1.0, and a missing field is null. */
static void test_unique_index_compares_values_not_bytes(void **state)
{
    conf_fixture *f = fx(state);
    const uint32_t ins = PERSISTOR_WRITE_INSERT_IF_ABSENT;
    ensure_users(f);
    assert_int_equal(conf_put_json(f, "users", ins, "{'_id': 'i', 'email': 1}"), PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "users", ins, "{'_id': 'd', 'email': 1.0}"),
                     PERSISTOR_EXISTS);
    assert_int_equal(conf_put_json(f, "users", ins,
                                   "{'_id': 'l', 'email': {'$numberLong': '1'}}"),
                     PERSISTOR_EXISTS);
    assert_int_equal(conf_put_json(f, "users", ins, "{'_id': 's', 'email': '1'}"),
                     PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "users", ins, "{'_id': 'm1'}"), PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "users", ins, "{'_id': 'm2'}"), PERSISTOR_EXISTS);
    assert_int_equal(conf_put_json(f, "users", ins, "{'_id': 'n', 'email': null}"),
                     PERSISTOR_EXISTS);
}

static void test_unique_conflict_inside_one_batch(void **state)
{
    conf_fixture *f = fx(state);
    bson_t *a = conf_json("{'_id': 'u3', 'email': 'c@x'}");
    bson_t *b = conf_json("{'_id': 'u4', 'email': 'c@x'}");
    persistor_write_op ops[2] = {
        {PERSISTOR_WRITE_INSERT_IF_ABSENT, a->len, "u3", bson_get_data(a)},
        {PERSISTOR_WRITE_UPSERT, b->len, "u4", bson_get_data(b)},
    };
    int32_t results[2] = {-100, -100};
    persistor_error err = {0};
    ensure_users(f);
    conf_expect(f->adapter->write(f->inst, "users", ops, 2, results, &err), PERSISTOR_OK, &err);
    assert_int_equal(results[0], PERSISTOR_OK);
    assert_int_equal(results[1], PERSISTOR_EXISTS);
    conf_assert_stored(f, "users", a);
    conf_assert_absent(f, "users", "u4");
    bson_destroy(a);
    bson_destroy(b);
}

static void put_n(conf_fixture *f, const char *collection, int n)
{
    char json[128];
    for (int i = 0; i < n; i++) {
        snprintf(json, sizeof json, "{'_id': 'k%02d', 'k': %d}", i + 1, i + 1);
        assert_int_equal(conf_put_json(f, collection, PERSISTOR_WRITE_UPSERT, json),
                         PERSISTOR_OK);
    }
}

static persistor_cursor *query_all(conf_fixture *f, const char *collection)
{
    persistor_query q = {sizeof q, 0, NULL, 0, NULL, 0, 0};
    persistor_cursor *cur = NULL;
    persistor_error err = {0};
    conf_expect(f->adapter->query(f->inst, collection, &q, &cur, &err), PERSISTOR_OK, &err);
    assert_non_null(cur);
    return cur;
}

static void test_cursor_repeats_iter_end_after_the_end(void **state)
{
    conf_fixture *f = fx(state);
    const uint8_t *doc;
    uint32_t len;
    persistor_error err = {0};
    conf_ensure(f, "c");
    put_n(f, "c", 2);
    persistor_cursor *cur = query_all(f, "c");
    for (int i = 0; i < 2; i++)
        conf_expect(f->adapter->cursor_next(cur, &doc, &len, &err), PERSISTOR_OK, &err);
    for (int i = 0; i < 3; i++)
        conf_expect(f->adapter->cursor_next(cur, &doc, &len, &err), PERSISTOR_ITER_END, &err);
    f->adapter->cursor_close(cur);
    conf_ensure(f, "empty");
    cur = query_all(f, "empty");
    for (int i = 0; i < 2; i++)
        conf_expect(f->adapter->cursor_next(cur, &doc, &len, &err), PERSISTOR_ITER_END, &err);
    f->adapter->cursor_close(cur);
}

static void test_closing_an_undrained_cursor_is_fine(void **state)
{
    conf_fixture *f = fx(state);
    const uint8_t *doc;
    uint32_t len;
    persistor_error err = {0};
    conf_ensure(f, "c");
    put_n(f, "c", 3);
    f->adapter->cursor_close(query_all(f, "c"));
    persistor_cursor *cur = query_all(f, "c");
    conf_expect(f->adapter->cursor_next(cur, &doc, &len, &err), PERSISTOR_OK, &err);
    f->adapter->cursor_close(cur);
}

/* The host may write between two cursor_next calls: what the cursor hands
 * out must stay whole.  Whether it sees those writes is the store's
 * business, so only validity is checked. */
static void test_cursor_survives_writes_between_next_calls(void **state)
{
    conf_fixture *f = fx(state);
    const uint8_t *doc;
    uint32_t len;
    int32_t rc;
    persistor_error err = {0};
    conf_ensure(f, "c");
    put_n(f, "c", 6);
    persistor_cursor *cur = query_all(f, "c");
    for (int i = 0; (rc = f->adapter->cursor_next(cur, &doc, &len, &err)) == PERSISTOR_OK; i++) {
        bson_t view;
        bson_iter_t it;
        assert_true(bson_init_static(&view, doc, len) && bson_validate(&view, 0, NULL));
        assert_true(bson_iter_init_find(&it, &view, "k") && BSON_ITER_HOLDS_INT32(&it));
        int k = bson_iter_int32(&it);
        assert_true(k >= 1 && k <= 6);
        if (i == 0) {
            assert_int_equal(conf_delete(f, "c", k == 6 ? "k05" : "k06"), PERSISTOR_OK);
            assert_int_equal(conf_put_json(f, "c", PERSISTOR_WRITE_UPSERT,
                                           "{'_id': 'k01', 'k': 1, 'pad': 'xxxxxxxxxxxxxxxx'}"),
                             PERSISTOR_OK);
        }
    }
    conf_expect(rc, PERSISTOR_ITER_END, &err);
    f->adapter->cursor_close(cur);
}

static void test_count_with_and_without_filter(void **state)
{
    conf_fixture *f = fx(state);
    uint64_t n = 99;
    persistor_error err = {0};
    if (f->adapter->count == NULL) {
        print_message("count slot is NULL (optional): skipped\n");
        skip();
    }
    conf_ensure(f, "c");
    conf_expect(f->adapter->count(f->inst, "c", NULL, 0, &n, &err), PERSISTOR_OK, &err);
    assert_int_equal(n, 0);
    put_n(f, "c", 5);
    conf_expect(f->adapter->count(f->inst, "c", NULL, 0, &n, &err), PERSISTOR_OK, &err);
    assert_int_equal(n, 5);
    bson_t *gt2 = conf_json("{'k': {'$gt': 2}}");
    conf_expect(f->adapter->count(f->inst, "c", bson_get_data(gt2), gt2->len, &n, &err),
                PERSISTOR_OK, &err);
    assert_int_equal(n, 3);
    bson_destroy(gt2);
    bson_t *none = conf_json("{'k': 99}");
    conf_expect(f->adapter->count(f->inst, "c", bson_get_data(none), none->len, &n, &err),
                PERSISTOR_OK, &err);
    assert_int_equal(n, 0);
    bson_destroy(none);
}

static void assert_stats(conf_fixture *f, const char *collection, uint64_t items, uint64_t bytes)
{
    persistor_collection_stats st = {sizeof st, 99, 99};
    persistor_error err = {0};
    conf_expect(f->adapter->stats(f->inst, collection, &st, &err), PERSISTOR_OK, &err);
    assert_int_equal(st.item_count, items);
    assert_int_equal(st.total_size, bytes);
}

static void test_stats_count_items_and_stored_bytes(void **state)
{
    conf_fixture *f = fx(state);
    if (f->adapter->stats == NULL) {
        print_message("stats slot is NULL (optional): skipped\n");
        skip();
    }
    conf_ensure(f, "c");
    assert_stats(f, "c", 0, 0);
    bson_t *a = conf_json("{'_id': 'a', 'v': 1}");
    bson_t *b = conf_json("{'_id': 'b', 'v': 'two', 'w': [1, 2, 3]}");
    bson_t *b2 = conf_json("{'_id': 'b'}");
    assert_int_equal(conf_put(f, "c", PERSISTOR_WRITE_UPSERT, a), PERSISTOR_OK);
    assert_int_equal(conf_put(f, "c", PERSISTOR_WRITE_UPSERT, b), PERSISTOR_OK);
    assert_stats(f, "c", 2, (uint64_t)a->len + b->len);
    assert_int_equal(conf_put(f, "c", PERSISTOR_WRITE_UPSERT, b2), PERSISTOR_OK);
    assert_stats(f, "c", 2, (uint64_t)a->len + b2->len);
    assert_int_equal(conf_delete(f, "c", "a"), PERSISTOR_OK);
    assert_stats(f, "c", 1, b2->len);
    bson_destroy(a);
    bson_destroy(b);
    bson_destroy(b2);
}

static void ensure_sessions(conf_fixture *f)
{
    persistor_collection_spec spec = {sizeof spec, "sessions", NULL, 0, "createdAt", 60, NULL};
    persistor_error err = {0};
    conf_expect(f->adapter->ensure_collection(f->inst, conf_keep_spec(f, spec), &err),
                PERSISTOR_OK, &err);
}

static void put_created(conf_fixture *f, const char *id, int64_t ms)
{
    bson_t *doc = bson_new();
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_DATE_TIME(doc, "createdAt", ms);
    assert_int_equal(conf_put(f, "sessions", PERSISTOR_WRITE_UPSERT, doc), PERSISTOR_OK);
    bson_destroy(doc);
}

static void expect_expired(conf_fixture *f, uint64_t want)
{
    uint64_t removed = 99;
    persistor_error err = {0};
    int64_t cutoff = f->host->now_ms(f->host) - 60 * 1000; /* as the host computes it */
    conf_expect(f->adapter->expire(f->inst, "sessions", cutoff, &removed, &err), PERSISTOR_OK,
                &err);
    assert_int_equal(removed, want);
}

static void test_expire_removes_only_documents_older_than_the_cutoff(void **state)
{
    conf_fixture *f = fx(state);
    const int64_t now = f->now_ms, cutoff = now - 60 * 1000;
    if (f->adapter->expire == NULL) {
        print_message("expire slot is NULL (%s): skipped\n",
                      f->adapter->capabilities & PERSISTOR_CAP_NATIVE_TTL
                          ? "the store expires natively" : "the host emulates it");
        skip();
    }
    ensure_sessions(f);
    put_created(f, "old", cutoff - 60 * 1000);
    put_created(f, "just-old", cutoff - 1);
    put_created(f, "at-cutoff", cutoff);
    put_created(f, "fresh", now - 10 * 1000);
    assert_int_equal(conf_put_json(f, "sessions", PERSISTOR_WRITE_UPSERT, "{'_id': 'no-field'}"),
                     PERSISTOR_OK);
    /* MongoDB's TTL ignores a field that is not a date. */
    assert_int_equal(conf_put_json(f, "sessions", PERSISTOR_WRITE_UPSERT,
                                   "{'_id': 'not-a-date', 'createdAt': 'yesterday'}"),
                     PERSISTOR_OK);
    expect_expired(f, 2);
    conf_assert_absent(f, "sessions", "old");
    conf_assert_absent(f, "sessions", "just-old");
    static const char *const kept[] = {"at-cutoff", "fresh", "no-field", "not-a-date"};
    for (size_t i = 0; i < 4; i++) {
        bson_t *doc = conf_get(f, "sessions", kept[i]);
        if (doc == NULL)
            fail_msg("sessions/%s was expired, but must be kept", kept[i]);
        bson_destroy(doc);
    }
    f->now_ms += 100 * 1000; /* move the host clock: the rest ages out */
    expect_expired(f, 2);
    conf_assert_absent(f, "sessions", "fresh");
    bson_t *doc = conf_get(f, "sessions", "no-field");
    assert_non_null(doc);
    bson_destroy(doc);
    expect_expired(f, 0);
}

/* Operators outside the documented subset are refused by name, never
 * silently ignored (which would match too much). */
static void test_unsupported_operator_is_invalid_and_named(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const rows[][2] = {
        {"{'s': {'$regex': '^a'}}", "$regex"},
        {"{'s': {'$bogus': 1}}", "$bogus"},
        {"{'$where': 'this.s'}", "$where"},
    };
    conf_ensure(f, "c");
    put_n(f, "c", 2);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        persistor_error err = {0};
        int32_t rc = PERSISTOR_OK;
        char *ids = conf_query_ids(f, "c", rows[i][0], NULL, 0, 0, 1, &rc, &err);
        if (ids != NULL)
            fail_msg("filter %s was accepted (answer: [%s])", rows[i][0], ids);
        assert_int_equal(rc, PERSISTOR_E_INVALID);
        if (strstr(err.message, rows[i][1]) == NULL)
            fail_msg("the error for %s does not name %s: %s", rows[i][0], rows[i][1],
                     err.message);
    }
}

static void test_malformed_sort_is_invalid(void **state)
{
    conf_fixture *f = fx(state);
    persistor_error err = {0};
    int32_t rc = PERSISTOR_OK;
    conf_ensure(f, "c");
    put_n(f, "c", 2);
    char *ids = conf_query_ids(f, "c", NULL, "{'k': 'up'}", 0, 0, 0, &rc, &err);
    assert_null(ids);
    assert_int_equal(rc, PERSISTOR_E_INVALID);
}

#define CASE(t) cmocka_unit_test_setup_teardown(t, conf_setup, conf_teardown)

const struct CMUnitTest conf_crud_tests[] = {
    CASE(test_open_close_and_a_second_instance),
    CASE(test_ping_answers_ok),
    CASE(test_ensure_collection_twice_keeps_data),
    CASE(test_insert_if_absent_twice_exists_and_keeps_first),
    CASE(test_upsert_replaces_the_whole_document),
    CASE(test_delete_existing_ok_absent_not_found),
    CASE(test_get_absent_is_not_found),
    CASE(test_batch_gives_each_op_its_own_answer),
    CASE(test_unique_index_refuses_another_id_allows_same_id),
    CASE(test_unique_index_compares_values_not_bytes),
    CASE(test_unique_conflict_inside_one_batch),
    CASE(test_cursor_repeats_iter_end_after_the_end),
    CASE(test_closing_an_undrained_cursor_is_fine),
    CASE(test_cursor_survives_writes_between_next_calls),
    CASE(test_count_with_and_without_filter),
    CASE(test_stats_count_items_and_stored_bytes),
    CASE(test_expire_removes_only_documents_older_than_the_cutoff),
    CASE(test_unsupported_operator_is_invalid_and_named),
    CASE(test_malformed_sort_is_invalid),
};
const size_t conf_n_crud_tests = sizeof conf_crud_tests / sizeof conf_crud_tests[0];
