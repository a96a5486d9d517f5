/*
 * cases_data.c — what a store must keep exactly: every BSON type byte for
 * byte, large documents, large batches, and collections apart from one
 * another.  Documents are built with libbson, not with the code under test.
 */
#include "harness.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static conf_fixture *fx(void **state)
{
    return *state;
}

static bson_t *every_type_document(void)
{
    static const uint8_t bytes[] = {0, 1, 2, 0xfe, 0xff, 0};
    static const uint8_t uuid[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef,
                                     0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    bson_t *doc = bson_new(), sub, arr, inner;
    bson_oid_t oid;
    bson_decimal128_t dec;
    bson_oid_init_from_string(&oid, "5f1d7a3b9c8e4a0012345678");
    assert_true(bson_decimal128_from_string("-1234.5678E-3", &dec));
    BSON_APPEND_UTF8(doc, "_id", "every-type");
    BSON_APPEND_DOUBLE(doc, "double", 3.25);
    BSON_APPEND_DOUBLE(doc, "negative_zero", -0.0);
    BSON_APPEND_DOUBLE(doc, "infinity", INFINITY);
    BSON_APPEND_DOUBLE(doc, "nan", NAN);
    BSON_APPEND_UTF8(doc, "string", "h\xc3\xa9llo, w\xc3\xb6rld \xf0\x9f\x98\x80");
    BSON_APPEND_UTF8(doc, "empty_string", "");
    bson_append_utf8(doc, "embedded_nul", -1, "a\0b", 3);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "document", &sub);
    BSON_APPEND_INT32(&sub, "a", 1);
    BSON_APPEND_DOCUMENT_BEGIN(&sub, "b", &inner);
    BSON_APPEND_UTF8(&inner, "c", "d");
    bson_append_document_end(&sub, &inner);
    bson_append_document_end(doc, &sub);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "empty_document", &sub);
    bson_append_document_end(doc, &sub);
    BSON_APPEND_ARRAY_BEGIN(doc, "array", &arr);
    BSON_APPEND_INT32(&arr, "0", 1);
    BSON_APPEND_UTF8(&arr, "1", "two");
    BSON_APPEND_DOUBLE(&arr, "2", 3.0);
    BSON_APPEND_ARRAY_BEGIN(&arr, "3", &inner);
    bson_append_array_end(&arr, &inner);
    bson_append_array_end(doc, &arr);
    BSON_APPEND_BINARY(doc, "binary", BSON_SUBTYPE_BINARY, bytes, sizeof bytes);
    BSON_APPEND_BINARY(doc, "uuid", BSON_SUBTYPE_UUID, uuid, sizeof uuid);
    BSON_APPEND_OID(doc, "oid", &oid);
    BSON_APPEND_BOOL(doc, "true", true);
    BSON_APPEND_BOOL(doc, "false", false);
    BSON_APPEND_DATE_TIME(doc, "date", INT64_C(1700000000123));
    BSON_APPEND_DATE_TIME(doc, "date_before_1970", INT64_C(-86400000123));
    BSON_APPEND_NULL(doc, "null");
    BSON_APPEND_REGEX(doc, "regex", "^a.*b$", "im");
    BSON_APPEND_CODE(doc, "code", "function () { return 1; }");
    BSON_APPEND_INT32(doc, "int32_min", INT32_MIN);
    BSON_APPEND_INT32(doc, "int32_max", INT32_MAX);
    BSON_APPEND_TIMESTAMP(doc, "timestamp", 1700000000u, 7u);
    BSON_APPEND_INT64(doc, "int64_min", INT64_MIN);
    BSON_APPEND_INT64(doc, "int64_max", INT64_MAX);
    BSON_APPEND_DECIMAL128(doc, "decimal128", &dec);
    BSON_APPEND_MINKEY(doc, "minkey");
    BSON_APPEND_MAXKEY(doc, "maxkey");
    return doc;
}

static void test_every_bson_type_round_trips_byte_exact(void **state)
{
    conf_fixture *f = fx(state);
    bson_t *doc = every_type_document();
    conf_ensure(f, "c");
    assert_int_equal(conf_put(f, "c", PERSISTOR_WRITE_INSERT_IF_ABSENT, doc), PERSISTOR_OK);
    conf_assert_stored(f, "c", doc);
    /* And through a query, which may take another path in the store. */
    persistor_query q = {sizeof q, 0, NULL, 0, NULL, 0, 0};
    persistor_cursor *cur = NULL;
    persistor_error err = {0};
    const uint8_t *got;
    uint32_t len;
    conf_expect(f->adapter->query(f->inst, "c", &q, &cur, &err), PERSISTOR_OK, &err);
    conf_expect(f->adapter->cursor_next(cur, &got, &len, &err), PERSISTOR_OK, &err);
    assert_int_equal(len, doc->len);
    assert_memory_equal(got, bson_get_data(doc), len);
    f->adapter->cursor_close(cur);
    bson_destroy(doc);
}

static void test_one_mib_document_round_trips(void **state)
{
    enum { SIZE = 1 << 20 };
    conf_fixture *f = fx(state);
    /* 4 length + "_id" element 13 + "big" element (1 + 4 + 4 + n + 1) + 1 */
    const size_t n = SIZE - 4 - 13 - 10 - 1;
    char *text = malloc(n + 1);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        text[i] = (char)('a' + (i * 7 + i / 26) % 26); /* no run a bug could fake */
    text[n] = '\0';
    bson_t *doc = bson_new();
    BSON_APPEND_UTF8(doc, "_id", "big");
    BSON_APPEND_UTF8(doc, "big", text);
    assert_int_equal(doc->len, SIZE);
    conf_ensure(f, "c");
    assert_int_equal(conf_put(f, "c", PERSISTOR_WRITE_UPSERT, doc), PERSISTOR_OK);
    conf_assert_stored(f, "c", doc);
    bson_destroy(doc);
    free(text);
}

static void test_thousand_documents_in_one_batch_all_stored(void **state)
{
    enum { N = 1000 };
    conf_fixture *f = fx(state);
    bson_t *docs[N];
    char ids[N][16];
    persistor_write_op ops[N];
    int32_t results[N];
    persistor_error err = {0};
    conf_ensure(f, "bulk");
    for (int i = 0; i < N; i++) {
        snprintf(ids[i], sizeof ids[i], "b%04d", i);
        docs[i] = bson_new();
        BSON_APPEND_UTF8(docs[i], "_id", ids[i]);
        BSON_APPEND_INT32(docs[i], "i", i);
        BSON_APPEND_UTF8(docs[i], "pad", i % 2 ? "odd" : "an even longer value");
        ops[i] = (persistor_write_op){PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[i]->len, ids[i],
                                      bson_get_data(docs[i])};
        results[i] = -100;
    }
    conf_expect(f->adapter->write(f->inst, "bulk", ops, N, results, &err), PERSISTOR_OK, &err);
    for (int i = 0; i < N; i++)
        if (results[i] != PERSISTOR_OK)
            fail_msg("op %d (%s): result %d", i, ids[i], results[i]);
    for (int i = 0; i < N; i++)
        conf_assert_stored(f, "bulk", docs[i]);
    int32_t rc;
    char *all = conf_query_ids(f, "bulk", "{'i': {'$gte': 0}}", NULL, 0, 0, 1, &rc, &err);
    assert_non_null(all);
    assert_int_equal(strlen(all), N * 6 - 1); /* "b0000,...,b0999" */
    assert_memory_equal(all, "b0000,b0001", 11);
    free(all);
    for (int i = 0; i < N; i++)
        bson_destroy(docs[i]);
}

static void test_collections_are_isolated(void **state)
{
    conf_fixture *f = fx(state);
    int32_t rc;
    persistor_error err = {0};
    bson_t *a = conf_json("{'_id': 'x', 'in': 'a'}");
    bson_t *b = conf_json("{'_id': 'x', 'in': 'b'}");
    conf_ensure(f, "iso_a");
    conf_ensure(f, "iso_b");
    assert_int_equal(conf_put(f, "iso_a", PERSISTOR_WRITE_INSERT_IF_ABSENT, a), PERSISTOR_OK);
    assert_int_equal(conf_put(f, "iso_b", PERSISTOR_WRITE_INSERT_IF_ABSENT, b), PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "iso_a", PERSISTOR_WRITE_UPSERT, "{'_id': 'only-a'}"),
                     PERSISTOR_OK);
    conf_assert_stored(f, "iso_a", a);
    conf_assert_stored(f, "iso_b", b);
    conf_assert_absent(f, "iso_b", "only-a");
    char *ids = conf_query_ids(f, "iso_b", NULL, NULL, 0, 0, 1, &rc, &err);
    assert_non_null(ids);
    assert_string_equal(ids, "x");
    free(ids);
    assert_int_equal(conf_delete(f, "iso_a", "x"), PERSISTOR_OK);
    conf_assert_stored(f, "iso_b", b);
    if (f->adapter->count != NULL) {
        uint64_t n = 99;
        conf_expect(f->adapter->count(f->inst, "iso_b", NULL, 0, &n, &err), PERSISTOR_OK, &err);
        assert_int_equal(n, 1);
    }
    bson_destroy(a);
    bson_destroy(b);
}

#define CASE(t) cmocka_unit_test_setup_teardown(t, conf_setup, conf_teardown)

const struct CMUnitTest conf_data_tests[] = {
    CASE(test_every_bson_type_round_trips_byte_exact),
    CASE(test_one_mib_document_round_trips),
    CASE(test_thousand_documents_in_one_batch_all_stored),
    CASE(test_collections_are_isolated),
};
const size_t conf_n_data_tests = sizeof conf_data_tests / sizeof conf_data_tests[0];
