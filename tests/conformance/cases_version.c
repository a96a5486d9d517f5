/*
 * cases_version.c — PERSISTOR_WRITE_UPSERT_IF_NEWER: insert when absent,
 * replace only a document whose version field sorts strictly before the
 * new one's, keep it (EXISTS) otherwise.
 *
 * Every expectation is MongoDB's: versions compare in its sort order
 * (numbers by value across int32, int64 and double, exactly; a missing
 * field or null first), as a replaceOne({_id, version < new}, doc,
 * upsert) would decide on a server.  What the adapters' own code answers
 * is not the reference.
 */
#include "harness.h"

#include <stddef.h>
#include <string.h>

static const uint32_t newer = PERSISTOR_WRITE_UPSERT_IF_NEWER;

static conf_fixture *fx(void **state)
{
    return *state;
}

/* ensure_collection of `name` versioned by `field`, with `idx`. */
static void ensure_versioned(conf_fixture *f, const char *name, const char *field,
                             const persistor_index_spec *idx, uint32_t n_idx)
{
    persistor_collection_spec spec = {sizeof spec, name, idx, n_idx, NULL, 0, field};
    persistor_error err = {0};
    conf_expect(f->adapter->ensure_collection(f->inst, conf_keep_spec(f, spec), &err),
                PERSISTOR_OK, &err);
}

/* Write `json` with UPSERT_IF_NEWER, expect `want`, then find `stored`
 * under its id (NULL: the id is absent). */
static void put_expect(conf_fixture *f, const char *collection, const char *json, int32_t want,
                       const char *stored)
{
    bson_t *doc = conf_json(json);
    int32_t got = conf_put(f, collection, newer, doc);
    if (got != want)
        fail_msg("upsert-if-newer of %s: expected %d, got %d", json, want, got);
    if (stored != NULL) {
        bson_t *w = conf_json(stored);
        conf_assert_stored(f, collection, w);
        bson_destroy(w);
    }
    bson_destroy(doc);
}

static void test_upsert_if_newer_inserts_an_absent_id(void **state)
{
    conf_fixture *f = fx(state);
    ensure_versioned(f, "c", "at", NULL, 0);
    const char *a = "{'_id': 'a', 'at': " D(1000) ", 'v': 'first'}";
    put_expect(f, "c", a, PERSISTOR_OK, a);
    /* A document without the version field is inserted too. */
    put_expect(f, "c", "{'_id': 'b'}", PERSISTOR_OK, "{'_id': 'b'}");
}

static void test_upsert_if_newer_replaces_an_older_version_whole(void **state)
{
    conf_fixture *f = fx(state);
    ensure_versioned(f, "c", "at", NULL, 0);
    assert_int_equal(conf_put_json(f, "c", PERSISTOR_WRITE_UPSERT,
                                   "{'_id': 'a', 'at': " D(1000) ", 'keep': 1, 'gone': {'x': 1}}"),
                     PERSISTOR_OK);
    const char *b = "{'_id': 'a', 'keep': 2, 'at': " D(1001) "}";
    put_expect(f, "c", b, PERSISTOR_OK, b);
}

static void test_upsert_if_newer_keeps_a_newer_version(void **state)
{
    conf_fixture *f = fx(state);
    const char *stored = "{'_id': 'a', 'at': " D(2000) ", 'v': 'new'}";
    ensure_versioned(f, "c", "at", NULL, 0);
    assert_int_equal(conf_put_json(f, "c", PERSISTOR_WRITE_UPSERT, stored), PERSISTOR_OK);
    put_expect(f, "c", "{'_id': 'a', 'at': " D(1999) ", 'v': 'old'}", PERSISTOR_EXISTS, stored);
    /* Before 1970 is older still. */
    put_expect(f, "c", "{'_id': 'a', 'at': " D(-5000) ", 'v': 'older'}", PERSISTOR_EXISTS,
               stored);
}

/* Equal versions keep the stored document: replaying a write is a no-op. */
static void test_upsert_if_newer_equal_version_is_exists(void **state)
{
    conf_fixture *f = fx(state);
    const char *stored = "{'_id': 'a', 'at': " D(1000) ", 'v': 'first'}";
    ensure_versioned(f, "c", "at", NULL, 0);
    put_expect(f, "c", stored, PERSISTOR_OK, stored);
    put_expect(f, "c", stored, PERSISTOR_EXISTS, stored);
    put_expect(f, "c", "{'_id': 'a', 'at': " D(1000) ", 'v': 'second'}", PERSISTOR_EXISTS,
               stored);
}

/* A missing version sorts as null, before every date: a stored document
 * without one is replaced by any dated one; a new document without one
 * never replaces anything (null is not after null, nor after a date). */
static void test_missing_or_null_version_sorts_first(void **state)
{
    conf_fixture *f = fx(state);
    ensure_versioned(f, "c", "at", NULL, 0);
    assert_int_equal(conf_put_json(f, "c", PERSISTOR_WRITE_UPSERT, "{'_id': 'a', 'x': 1}"),
                     PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "c", PERSISTOR_WRITE_UPSERT, "{'_id': 'n', 'at': null}"),
                     PERSISTOR_OK);
    put_expect(f, "c", "{'_id': 'a', 'y': 2}", PERSISTOR_EXISTS, "{'_id': 'a', 'x': 1}");
    put_expect(f, "c", "{'_id': 'a', 'at': null}", PERSISTOR_EXISTS, "{'_id': 'a', 'x': 1}");
    put_expect(f, "c", "{'_id': 'n', 'x': 1}", PERSISTOR_EXISTS, "{'_id': 'n', 'at': null}");
    const char *dated = "{'_id': 'a', 'at': " D(-1) "}";
    put_expect(f, "c", dated, PERSISTOR_OK, dated);
    put_expect(f, "c", "{'_id': 'n', 'at': " D(0) "}", PERSISTOR_OK,
               "{'_id': 'n', 'at': " D(0) "}");
    put_expect(f, "c", "{'_id': 'a'}", PERSISTOR_EXISTS, dated);
}

/* Numbers compare by value whatever their width: 6 == 6LL == 6.0, and
 * exactly (2^53 + 1 as an int64 is after 2^53 as a double). */
static void test_versions_compare_numerically_across_widths(void **state)
{
    conf_fixture *f = fx(state);
    static const struct {
        const char *json;
        int32_t want;
        const char *stored; /* NULL: the document just written */
    } rows[] = {
        {"{'_id': 'a', 'rev': 5}", PERSISTOR_OK, NULL},
        {"{'_id': 'a', 'rev': {'$numberLong': '6'}}", PERSISTOR_OK, NULL},
        {"{'_id': 'a', 'rev': {'$numberDouble': '6.0'}}", PERSISTOR_EXISTS,
         "{'_id': 'a', 'rev': {'$numberLong': '6'}}"},
        {"{'_id': 'a', 'rev': 6}", PERSISTOR_EXISTS, "{'_id': 'a', 'rev': {'$numberLong': '6'}}"},
        {"{'_id': 'a', 'rev': 6.5}", PERSISTOR_OK, NULL},
        {"{'_id': 'a', 'rev': {'$numberLong': '6'}}", PERSISTOR_EXISTS, "{'_id': 'a', 'rev': 6.5}"},
        {"{'_id': 'a', 'rev': 7}", PERSISTOR_OK, NULL},
        {"{'_id': 'a', 'rev': 6.999}", PERSISTOR_EXISTS, "{'_id': 'a', 'rev': 7}"},
        {"{'_id': 'a', 'rev': {'$numberLong': '-8'}}", PERSISTOR_EXISTS, "{'_id': 'a', 'rev': 7}"},
        {"{'_id': 'a', 'rev': {'$numberDouble': '9007199254740992.0'}}", PERSISTOR_OK, NULL},
        {"{'_id': 'a', 'rev': {'$numberLong': '9007199254740992'}}", PERSISTOR_EXISTS,
         "{'_id': 'a', 'rev': {'$numberDouble': '9007199254740992.0'}}"},
        {"{'_id': 'a', 'rev': {'$numberLong': '9007199254740993'}}", PERSISTOR_OK, NULL},
        {"{'_id': 'a', 'rev': {'$numberDouble': '9007199254740992.0'}}", PERSISTOR_EXISTS,
         "{'_id': 'a', 'rev': {'$numberLong': '9007199254740993'}}"},
    };
    ensure_versioned(f, "counters", "rev", NULL, 0);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        put_expect(f, "counters", rows[i].json, rows[i].want,
                   rows[i].stored ? rows[i].stored : rows[i].json);
}

/* A dotted version_field reads inside embedded documents. */
static void test_dotted_version_field(void **state)
{
    conf_fixture *f = fx(state);
    ensure_versioned(f, "c", "meta.at", NULL, 0);
    const char *first = "{'_id': 'a', 'meta': {'at': " D(1000) ", 'by': 'x'}}";
    const char *second = "{'_id': 'a', 'meta': {'by': 'y', 'at': " D(3000) "}}";
    put_expect(f, "c", first, PERSISTOR_OK, first);
    put_expect(f, "c", second, PERSISTOR_OK, second);
    put_expect(f, "c", "{'_id': 'a', 'meta': {'at': " D(2000) "}}", PERSISTOR_EXISTS, second);
    put_expect(f, "c", "{'_id': 'a', 'at': " D(9000) "}", PERSISTOR_EXISTS, second);
}

/* Ops apply in order: the second write of an id sees the first. */
static void test_two_upserts_if_newer_of_one_id_in_one_batch(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const json[] = {
        "{'_id': 'a', 'at': " D(1000) ", 'v': 1}",
        "{'_id': 'a', 'at': " D(3000) ", 'v': 2}",
        "{'_id': 'a', 'at': " D(2000) ", 'v': 3}",
        "{'_id': 'a', 'at': " D(3000) ", 'v': 4}",
        "{'_id': 'b', 'at': " D(5000) ", 'v': 5}",
        "{'_id': 'b', 'at': " D(4000) ", 'v': 6}",
    };
    static const int32_t want[] = {PERSISTOR_OK,     PERSISTOR_OK, PERSISTOR_EXISTS,
                                   PERSISTOR_EXISTS, PERSISTOR_OK, PERSISTOR_EXISTS};
    enum { N = sizeof json / sizeof json[0] };
    bson_t *docs[N];
    persistor_write_op ops[N];
    int32_t results[N];
    persistor_error err = {0};
    ensure_versioned(f, "c", "at", NULL, 0);
    for (size_t i = 0; i < N; i++) {
        docs[i] = conf_json(json[i]);
        ops[i] = (persistor_write_op){newer, docs[i]->len, i < 4 ? "a" : "b",
                                      bson_get_data(docs[i])};
        results[i] = -100;
    }
    conf_expect(f->adapter->write(f->inst, "c", ops, N, results, &err), PERSISTOR_OK, &err);
    for (size_t i = 0; i < N; i++)
        if (results[i] != want[i])
            fail_msg("op %zu: expected %d, got %d", i, want[i], results[i]);
    conf_assert_stored(f, "c", docs[1]);
    conf_assert_stored(f, "c", docs[4]);
    for (size_t i = 0; i < N; i++)
        bson_destroy(docs[i]);
}

/* A unique-index conflict is EXISTS, for an insert as for a replace, and
 * changes nothing; a newer version of the key's holder is fine. */
static void test_upsert_if_newer_unique_conflict_is_exists(void **state)
{
    conf_fixture *f = fx(state);
    static const persistor_index_key email[] = {{"email", 1}};
    static const persistor_index_spec idx[] = {{"email_1", email, 1, PERSISTOR_INDEX_UNIQUE}};
    ensure_versioned(f, "users", "v", idx, 1);
    const char *u1 = "{'_id': 'u1', 'email': 'a@x', 'v': 1}";
    const char *u2 = "{'_id': 'u2', 'email': 'b@x', 'v': 1}";
    put_expect(f, "users", u1, PERSISTOR_OK, u1);
    put_expect(f, "users", "{'_id': 'u2', 'email': 'a@x', 'v': 1}", PERSISTOR_EXISTS, NULL);
    conf_assert_absent(f, "users", "u2");
    put_expect(f, "users", u2, PERSISTOR_OK, u2);
    put_expect(f, "users", "{'_id': 'u2', 'email': 'a@x', 'v': 2}", PERSISTOR_EXISTS, u2);
    const char *u1b = "{'_id': 'u1', 'email': 'a@x', 'v': 2, 'name': 'A'}";
    put_expect(f, "users", u1b, PERSISTOR_OK, u1b);
}

/* On a collection whose spec names no version_field the op is the caller's
 * fault: E_INVALID, naming the collection and the id. */
static void expect_invalid(conf_fixture *f, const char *collection)
{
    bson_t *doc = conf_json("{'_id': 'doc-7', 'v': 1}");
    persistor_write_op op = {newer, doc->len, "doc-7", bson_get_data(doc)};
    int32_t result = -100;
    persistor_error err = {0};
    int32_t rc = f->adapter->write(f->inst, collection, &op, 1, &result, &err);
    assert_int_equal(rc, PERSISTOR_E_INVALID);
    assert_int_equal(result, PERSISTOR_E_INVALID);
    if (strstr(err.message, collection) == NULL || strstr(err.message, "doc-7") == NULL)
        fail_msg("the error names neither %s nor doc-7: %s", collection, err.message);
    conf_assert_absent(f, collection, "doc-7");
    bson_destroy(doc);
}

static void test_upsert_if_newer_without_version_field_is_invalid(void **state)
{
    conf_fixture *f = fx(state);
    conf_ensure(f, "plain");
    expect_invalid(f, "plain");
}

/* A host built before version_field hands a shorter spec: whatever lies
 * past its struct_size is not the spec's, and names no version_field. */
static void test_a_spec_shorter_than_version_field_names_none(void **state)
{
    conf_fixture *f = fx(state);
    persistor_collection_spec spec = {(uint32_t)offsetof(persistor_collection_spec, version_field),
                                      "older", NULL, 0, NULL, 0, "v"};
    persistor_error err = {0};
    conf_expect(f->adapter->ensure_collection(f->inst, conf_keep_spec(f, spec), &err),
                PERSISTOR_OK, &err);
    expect_invalid(f, "older");
}

#define CASE(t) cmocka_unit_test_setup_teardown(t, conf_setup, conf_teardown)

const struct CMUnitTest conf_version_tests[] = {
    CASE(test_upsert_if_newer_inserts_an_absent_id),
    CASE(test_upsert_if_newer_replaces_an_older_version_whole),
    CASE(test_upsert_if_newer_keeps_a_newer_version),
    CASE(test_upsert_if_newer_equal_version_is_exists),
    CASE(test_missing_or_null_version_sorts_first),
    CASE(test_versions_compare_numerically_across_widths),
    CASE(test_dotted_version_field),
    CASE(test_two_upserts_if_newer_of_one_id_in_one_batch),
    CASE(test_upsert_if_newer_unique_conflict_is_exists),
    CASE(test_upsert_if_newer_without_version_field_is_invalid),
    CASE(test_a_spec_shorter_than_version_field_names_none),
};
const size_t conf_n_version_tests = sizeof conf_version_tests / sizeof conf_version_tests[0];
