/*
 * test_group.c — core/group.c, the grouped counts the core computes for
 * adapters without group_count, byte for byte.
 *
 * tests/conformance/cases_group.c pins the answers every adapter gives
 * (compared as values); here the exact bytes: which value names a group
 * (the first one met), int64 totals, the field path over nested arrays,
 * many groups arriving out of order, and the refusals.  No store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <bson/bson.h>

#include "buffer.h"
#include "group.h"

/* Group the JSON documents docs[0..] (NULL-ended) by `field`; the answer
 * as canonical extended JSON (caller frees with bson_free). */
static char *group_json(const char *field, const char *const *docs)
{
    group_counter *g = NULL;
    persistor_error err = {0};
    persistor_buffer out = {0};
    assert_int_equal(group_counter_new(field, &g, &err), PERSISTOR_OK);
    for (size_t i = 0; docs[i] != NULL; i++) {
        bson_error_t e;
        bson_t *d = bson_new_from_json((const uint8_t *)docs[i], -1, &e);
        if (d == NULL)
            fail_msg("bad test JSON %s: %s", docs[i], e.message);
        assert_int_equal(group_counter_add(g, bson_get_data(d), d->len, &err), PERSISTOR_OK);
        bson_destroy(d);
    }
    assert_int_equal(group_counter_finish(g, &out, &err), PERSISTOR_OK);
    group_counter_free(g);
    bson_t *answer = bson_new_from_data(out.data, out.len);
    assert_non_null(answer);
    char *text = bson_as_canonical_extended_json(answer, NULL);
    bson_destroy(answer);
    buffer_free(&out);
    return text;
}

static void expect_groups(const char *field, const char *const *docs, const char *want)
{
    char *got = group_json(field, docs);
    if (strcmp(got, want) != 0)
        fail_msg("grouping by %s:\n  got  %s\n  want %s", field, got, want);
    bson_free(got);
}

#define I32(v) "{ \"$numberInt\" : \"" #v "\" }"
#define I64(v) "{ \"$numberLong\" : \"" #v "\" }"
#define DBL(v) "{ \"$numberDouble\" : \"" #v "\" }"

static void test_totals_are_int64_and_no_documents_give_no_groups(void **state)
{
    (void)state;
    static const char *const none[] = {NULL};
    expect_groups("v", none, "{ \"groups\" : [  ] }");
    static const char *const two[] = {"{\"v\": \"a\"}", "{\"v\": \"a\"}", NULL};
    expect_groups("v", two,
                  "{ \"groups\" : [ { \"_id\" : \"a\", \"total\" : " I64(2) " } ] }");
}

/* 1L, 1 and 1.0 are one group, named by the value met first. */
static void test_a_group_is_named_by_its_first_value(void **state)
{
    (void)state;
    static const char *const long_first[] = {"{\"v\": {\"$numberLong\": \"1\"}}",
                                             "{\"v\": 1}", "{\"v\": 1.0}", NULL};
    expect_groups("v", long_first,
                  "{ \"groups\" : [ { \"_id\" : " I64(1) ", \"total\" : " I64(3) " } ] }");
    static const char *const double_first[] = {"{\"v\": 1.0}", "{\"v\": 1}", NULL};
    expect_groups("v", double_first,
                  "{ \"groups\" : [ { \"_id\" : " DBL(1.0) ", \"total\" : " I64(2) " } ] }");
}

/* NaN is one group, below every number (MongoDB's order). */
static void test_nan_groups_together_before_numbers(void **state)
{
    (void)state;
    static const char *const docs[] = {"{\"v\": -5}", "{\"v\": {\"$numberDouble\": \"NaN\"}}",
                                       "{\"v\": {\"$numberDouble\": \"NaN\"}}", NULL};
    expect_groups("v", docs,
                  "{ \"groups\" : [ { \"_id\" : " DBL(NaN) ", \"total\" : " I64(2)
                  " }, { \"_id\" : " I32(-5) ", \"total\" : " I64(1) " } ] }");
}

/* "a.b.c" over arrays at two levels: each level maps over its documents,
 * so the key nests: [[1, 2], 3]. */
static void test_path_through_nested_arrays_nests_the_key(void **state)
{
    (void)state;
    static const char *const docs[] = {
        "{\"a\": [{\"b\": [{\"c\": 1}, {\"x\": 0}, {\"c\": 2}]}, {\"b\": {\"c\": 3}}, "
        "{\"b\": 4}]}",
        NULL};
    expect_groups("a.b.c", docs,
                  "{ \"groups\" : [ { \"_id\" : [ [ " I32(1) ", " I32(2) " ], " I32(3)
                  " ], \"total\" : " I64(1) " } ] }");
}

/* A document with the field twice: the first one counts, as MongoDB
 * reads a field. */
static void test_the_first_of_duplicate_fields_counts(void **state)
{
    (void)state;
    group_counter *g = NULL;
    persistor_error err = {0};
    persistor_buffer out = {0};
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&doc, "v", "first");
    BSON_APPEND_UTF8(&doc, "v", "second");
    assert_int_equal(group_counter_new("v", &g, &err), PERSISTOR_OK);
    assert_int_equal(group_counter_add(g, bson_get_data(&doc), doc.len, &err), PERSISTOR_OK);
    assert_int_equal(group_counter_finish(g, &out, &err), PERSISTOR_OK);
    bson_t *answer = bson_new_from_data(out.data, out.len);
    char *text = bson_as_canonical_extended_json(answer, NULL);
    assert_string_equal(text,
                        "{ \"groups\" : [ { \"_id\" : \"first\", \"total\" : " I64(1) " } ] }");
    bson_free(text);
    bson_destroy(answer);
    bson_destroy(&doc);
    buffer_free(&out);
    group_counter_free(g);
}

/* Many groups arriving in reverse order come out sorted, each counted. */
static void test_many_groups_out_of_order(void **state)
{
    (void)state;
    group_counter *g = NULL;
    persistor_error err = {0};
    persistor_buffer out = {0};
    assert_int_equal(group_counter_new("n", &g, &err), PERSISTOR_OK);
    for (int round = 0; round < 2; round++)
        for (int i = 999; i >= 0; i--) {
            bson_t doc = BSON_INITIALIZER;
            if (i % 2)
                BSON_APPEND_INT32(&doc, "n", i);
            else
                BSON_APPEND_DOUBLE(&doc, "n", i);
            assert_int_equal(group_counter_add(g, bson_get_data(&doc), doc.len, &err),
                             PERSISTOR_OK);
            bson_destroy(&doc);
        }
    assert_int_equal(group_counter_finish(g, &out, &err), PERSISTOR_OK);
    bson_t answer;
    bson_iter_t it, groups, one;
    assert_true(bson_init_static(&answer, out.data, out.len));
    assert_true(bson_iter_init_find(&it, &answer, "groups") && bson_iter_recurse(&it, &groups));
    int expect = 0;
    while (bson_iter_next(&groups)) {
        assert_true(bson_iter_recurse(&groups, &one));
        assert_true(bson_iter_find(&one, "_id"));
        assert_int_equal(bson_iter_as_int64(&one), expect++);
        assert_true(bson_iter_find(&one, "total"));
        assert_int_equal(bson_iter_int64(&one), 2);
    }
    assert_int_equal(expect, 1000);
    buffer_free(&out);
    group_counter_free(g);
}

/* The counter may take more documents after an answer. */
static void test_finish_then_more_documents(void **state)
{
    (void)state;
    group_counter *g = NULL;
    persistor_error err = {0};
    persistor_buffer out = {0};
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_BOOL(&doc, "ok", true);
    assert_int_equal(group_counter_new("ok", &g, &err), PERSISTOR_OK);
    assert_int_equal(group_counter_add(g, bson_get_data(&doc), doc.len, &err), PERSISTOR_OK);
    assert_int_equal(group_counter_finish(g, &out, &err), PERSISTOR_OK);
    assert_int_equal(group_counter_add(g, bson_get_data(&doc), doc.len, &err), PERSISTOR_OK);
    assert_int_equal(group_counter_finish(g, &out, &err), PERSISTOR_OK);
    bson_t answer;
    bson_iter_t it;
    assert_true(bson_init_static(&answer, out.data, out.len));
    assert_true(bson_iter_init(&it, &answer) &&
                bson_iter_find_descendant(&it, "groups.0.total", &it));
    assert_int_equal(bson_iter_int64(&it), 2);
    bson_destroy(&doc);
    buffer_free(&out);
    group_counter_free(g);
}

static void test_bad_fields_are_refused_with_the_field_named(void **state)
{
    (void)state;
    static const char *const bad[] = {"", "$v", "a..b", "a.", ".a", "a.$b", "$"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        persistor_error err = {0};
        group_counter *g = (group_counter *)&err; /* must come back NULL */
        assert_int_equal(group_counter_new(bad[i], &g, &err), PERSISTOR_E_INVALID);
        assert_null(g);
        assert_non_null(strstr(err.message, "group field"));
        if (bad[i][0] != '\0' && strstr(err.message, bad[i]) == NULL)
            fail_msg("the message does not name '%s': %s", bad[i], err.message);
    }
    persistor_error err = {0};
    assert_int_equal(group_field_check(NULL, &err), PERSISTOR_E_INVALID);
    assert_int_equal(group_field_check("a.b.0.c", &err), PERSISTOR_OK);
    assert_int_equal(group_field_check("a$", &err), PERSISTOR_OK);
}

static void test_bytes_that_are_not_bson_are_corrupt(void **state)
{
    (void)state;
    group_counter *g = NULL;
    persistor_error err = {0};
    static const uint8_t junk[] = {0x30, 0, 0, 0, 1, 2};
    assert_int_equal(group_counter_new("v", &g, &err), PERSISTOR_OK);
    assert_int_equal(group_counter_add(g, junk, sizeof junk, &err), PERSISTOR_E_CORRUPT);
    assert_int_equal(group_counter_add(g, NULL, 0, &err), PERSISTOR_E_CORRUPT);
    group_counter_free(g);
    group_counter_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_totals_are_int64_and_no_documents_give_no_groups),
        cmocka_unit_test(test_a_group_is_named_by_its_first_value),
        cmocka_unit_test(test_nan_groups_together_before_numbers),
        cmocka_unit_test(test_path_through_nested_arrays_nests_the_key),
        cmocka_unit_test(test_the_first_of_duplicate_fields_counts),
        cmocka_unit_test(test_many_groups_out_of_order),
        cmocka_unit_test(test_finish_then_more_documents),
        cmocka_unit_test(test_bad_fields_are_refused_with_the_field_named),
        cmocka_unit_test(test_bytes_that_are_not_bson_are_corrupt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
