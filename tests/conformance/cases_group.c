/*
 * cases_group.c — grouped counts (adapter.h's group_count): native on an
 * adapter with the slot, computed by the core (group.c over a query)
 * elsewhere, and the same answers either way.
 *
 * Every expectation is what MongoDB answers to
 *   [{$match: filter}, {$group: {_id: "$field", total: {$sum: 1}}},
 *    {$sort: {_id: 1}}]
 * worked out from its documented semantics: a missing field groups as
 * null; numbers group by value across widths; a path through an array of
 * documents gives the array of what each element holds; $sort puts an
 * array at its least element and an empty one before null.  Where $sort
 * ties (arrays at the same least element) adapter.h orders by the whole
 * value.  Answers are compared as values: which width of 1 names a group
 * is not specified.
 */
#include "harness.h"

#include <stddef.h>

static conf_fixture *fx(void **state)
{
    return *state;
}

/* Ensure `collection` and upsert each document of `docs` (NULL-ended). */
static void load(conf_fixture *f, const char *collection, const char *const *docs)
{
    conf_ensure(f, collection);
    for (size_t i = 0; docs[i] != NULL; i++)
        if (conf_put_json(f, collection, PERSISTOR_WRITE_UPSERT, docs[i]) != PERSISTOR_OK)
            fail_msg("upsert of %s failed", docs[i]);
}

static void test_group_strings_sorted_bytewise(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {
        "{'_id': '1', 'status': 'ok'}",      "{'_id': '2', 'status': 'failed'}",
        "{'_id': '3', 'status': 'ok'}",      "{'_id': '4', 'status': 'pending'}",
        "{'_id': '5', 'status': 'Z'}",       NULL};
    load(f, "c", docs);
    conf_assert_groups(f, "c", NULL, "status",
                       "{'groups': [{'_id': 'Z', 'total': 1}, {'_id': 'failed', 'total': 1}, "
                       "{'_id': 'ok', 'total': 2}, {'_id': 'pending', 'total': 1}]}");
}

/* validation_result.valid: true, false, or absent (and so is its parent
 * sometimes): null first, then false before true. */
static void test_group_booleans_with_missing_as_null(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {
        "{'_id': 'a', 'validation_result': {'valid': true}}",
        "{'_id': 'b', 'validation_result': {'valid': false, 'errors': ['x']}}",
        "{'_id': 'c', 'validation_result': {'valid': true}}",
        "{'_id': 'd', 'validation_result': {}}",
        "{'_id': 'e'}",
        "{'_id': 'f', 'validation_result': 'skipped'}",
        NULL};
    load(f, "runs", docs);
    conf_assert_groups(f, "runs", NULL, "validation_result.valid",
                       "{'groups': [{'_id': null, 'total': 3}, {'_id': false, 'total': 1}, "
                       "{'_id': true, 'total': 2}]}");
}

/* 1, 1L and 1.0 are one group; 2^53 + 1 (int64) is not 2^53 (double). */
static void test_group_numbers_by_value_across_widths(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {
        "{'_id': 'a', 'n': 1}",
        "{'_id': 'b', 'n': {'$numberLong': '1'}}",
        "{'_id': 'c', 'n': 1.0}",
        "{'_id': 'd', 'n': 2.5}",
        "{'_id': 'e', 'n': {'$numberLong': '3'}}",
        "{'_id': 'f', 'n': 3.0}",
        "{'_id': 'g', 'n': -0.5}",
        "{'_id': 'h', 'n': {'$numberLong': '9007199254740993'}}",
        "{'_id': 'i', 'n': 9007199254740992.0}",
        NULL};
    load(f, "c", docs);
    conf_assert_groups(f, "c", NULL, "n",
                       "{'groups': [{'_id': -0.5, 'total': 1}, {'_id': 1, 'total': 3}, "
                       "{'_id': 2.5, 'total': 1}, {'_id': 3, 'total': 2}, "
                       "{'_id': 9007199254740992.0, 'total': 1}, "
                       "{'_id': {'$numberLong': '9007199254740993'}, 'total': 1}]}");
}

static void test_group_missing_and_null_together(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {"{'_id': 'a', 'x': null}", "{'_id': 'b'}",
                                       "{'_id': 'c', 'x': 'v'}", "{'_id': 'd', 'y': 1}", NULL};
    load(f, "c", docs);
    conf_assert_groups(f, "c", NULL, "x",
                       "{'groups': [{'_id': null, 'total': 3}, {'_id': 'v', 'total': 1}]}");
}

static void test_group_counts_only_what_the_filter_matches(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {
        "{'_id': '1', 'team': 'a', 'score': 5, 'status': 'ok'}",
        "{'_id': '2', 'team': 'a', 'score': 1, 'status': 'failed'}",
        "{'_id': '3', 'team': 'b', 'score': 9, 'status': 'ok'}",
        "{'_id': '4', 'team': 'a', 'score': 7, 'status': 'ok'}",
        "{'_id': '5', 'team': 'a', 'score': 8}",
        NULL};
    load(f, "c", docs);
    conf_assert_groups(f, "c", "{'team': 'a', 'score': {'$gte': 5}}", "status",
                       "{'groups': [{'_id': null, 'total': 1}, {'_id': 'ok', 'total': 2}]}");
    conf_assert_groups(f, "c", "{'team': 'nobody'}", "status", "{'groups': []}");
}

static void test_group_nested_dotted_field(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {
        "{'_id': '1', 'sla': {'status': {'level': 'gold'}}}",
        "{'_id': '2', 'sla': {'status': {'level': 'silver'}}}",
        "{'_id': '3', 'sla': {'status': {'level': 'gold', 'x': 1}}}",
        "{'_id': '4', 'sla': {'status': 'none'}}",
        "{'_id': '5', 'sla': {'status': {'level': {'tier': 1}}}}",
        NULL};
    load(f, "c", docs);
    conf_assert_groups(f, "c", NULL, "sla.status.level",
                       "{'groups': [{'_id': null, 'total': 1}, {'_id': 'gold', 'total': 2}, "
                       "{'_id': 'silver', 'total': 1}, {'_id': {'tier': 1}, 'total': 1}]}");
}

static void test_group_empty_collection_has_no_groups(void **state)
{
    conf_fixture *f = fx(state);
    conf_ensure(f, "empty");
    conf_assert_groups(f, "empty", NULL, "anything", "{'groups': []}");
    conf_assert_groups(f, "empty", "{'x': 1}", "a.b", "{'groups': []}");
}

/* A field holding an array groups by the whole array ([1, 2] == [1.0, 2],
 * not [2, 1]); $sort puts an array at its least element, so 1, [1, 2]
 * and [2, 1] tie at 1 and come in value order; [] comes first. */
static void test_group_array_values_by_whole_array(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {
        "{'_id': 'a', 'v': [1, 2]}", "{'_id': 'b', 'v': [1.0, {'$numberLong': '2'}]}",
        "{'_id': 'c', 'v': [2, 1]}", "{'_id': 'd', 'v': []}",
        "{'_id': 'e', 'v': 1}",      "{'_id': 'f', 'v': [0.5, 'z']}",
        "{'_id': 'g', 'v': 'y'}",    NULL};
    load(f, "c", docs);
    conf_assert_groups(f, "c", NULL, "v",
                       "{'groups': [{'_id': [], 'total': 1}, {'_id': [0.5, 'z'], 'total': 1}, "
                       "{'_id': 1, 'total': 1}, {'_id': [1, 2], 'total': 2}, "
                       "{'_id': [2, 1], 'total': 1}, {'_id': 'y', 'total': 1}]}");
}

/* "a.b" through an array maps over its documents: [{b: 1}, {c: 0},
 * {b: 2}, 7] gives [1, 2]; an array of no such documents gives []; a
 * scalar on the way is missing (null).  An array inside gives an array
 * element, which sorts as an array. */
static void test_group_path_through_an_array_of_documents(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {
        "{'_id': 'p1', 'a': [{'b': 1}, {'b': 2}]}",
        "{'_id': 'p2', 'a': [{'b': 1}, {'c': 0}, {'b': 2}, 7]}",
        "{'_id': 'p3', 'a': {'b': 1}}",
        "{'_id': 'p4', 'a': []}",
        "{'_id': 'p5', 'a': [1, 2]}",
        "{'_id': 'p6', 'a': [{'b': [3]}]}",
        "{'_id': 'p7', 'a': 5}",
        "{'_id': 'p8'}",
        NULL};
    load(f, "c", docs);
    conf_assert_groups(f, "c", NULL, "a.b",
                       "{'groups': [{'_id': [], 'total': 2}, {'_id': null, 'total': 2}, "
                       "{'_id': 1, 'total': 1}, {'_id': [1, 2], 'total': 2}, "
                       "{'_id': [[3]], 'total': 1}]}");
}

/* In a field path a number is a field name, never an array index. */
static void test_group_numeric_component_is_a_name(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {"{'_id': 'a', 'a': [{'0': 'x'}, {'b': 1}]}",
                                       "{'_id': 'b', 'a': {'0': 'y'}}",
                                       "{'_id': 'c', 'a': ['p', 'q']}", NULL};
    load(f, "c", docs);
    conf_assert_groups(f, "c", NULL, "a.0",
                       "{'groups': [{'_id': [], 'total': 1}, {'_id': ['x'], 'total': 1}, "
                       "{'_id': 'y', 'total': 1}]}");
}

/* Documents group field by field, in order: {a: 1, b: 2} == {a: 1.0,
 * b: 2}, but {b: 2, a: 1} is another group. */
static void test_group_documents_by_fields_in_order(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {"{'_id': '1', 'v': {'a': 1, 'b': 2}}",
                                       "{'_id': '2', 'v': {'a': 1.0, 'b': 2}}",
                                       "{'_id': '3', 'v': {'b': 2, 'a': 1}}", NULL};
    load(f, "c", docs);
    conf_assert_groups(f, "c", NULL, "v",
                       "{'groups': [{'_id': {'a': 1, 'b': 2}, 'total': 2}, "
                       "{'_id': {'b': 2, 'a': 1}, 'total': 1}]}");
}

/* MongoDB's order across types: null, numbers, strings, documents,
 * booleans, dates. */
static void test_group_order_across_types(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {
        "{'_id': '1', 'v': true}",   "{'_id': '2', 'v': " D(1000) "}",
        "{'_id': '3', 'v': 'a'}",    "{'_id': '4', 'v': {'k': 1}}",
        "{'_id': '5', 'v': 7}",      "{'_id': '6'}",
        "{'_id': '7', 'v': " D(-1) "}", NULL};
    load(f, "c", docs);
    conf_assert_groups(f, "c", NULL, "v",
                       "{'groups': [{'_id': null, 'total': 1}, {'_id': 7, 'total': 1}, "
                       "{'_id': 'a', 'total': 1}, {'_id': {'k': 1}, 'total': 1}, "
                       "{'_id': true, 'total': 1}, {'_id': " D(-1) ", 'total': 1}, "
                       "{'_id': " D(1000) ", 'total': 1}]}");
}

static void expect_invalid(conf_fixture *f, const char *filter, const char *field)
{
    persistor_error err = {0};
    bson_t *got = NULL;
    int32_t rc = conf_group_count(f, "c", filter, field, &got, &err);
    if (rc != PERSISTOR_E_INVALID)
        fail_msg("group_count by '%s' (filter %s): expected E_INVALID, got %d (%s)", field,
                 filter ? filter : "none", rc, err.message);
    assert_null(got);
    assert_true(err.message[0] != '\0');
}

static void test_group_refuses_a_bad_field_or_filter(void **state)
{
    conf_fixture *f = fx(state);
    static const char *const docs[] = {"{'_id': '1', 'v': 1}", NULL};
    load(f, "c", docs);
    expect_invalid(f, NULL, "");
    expect_invalid(f, NULL, "$v");
    expect_invalid(f, NULL, "a..b");
    expect_invalid(f, NULL, "a.");
    expect_invalid(f, NULL, ".a");
    expect_invalid(f, NULL, "a.$b");
    expect_invalid(f, "{'v': {'$regex': 'x'}}", "v");
    expect_invalid(f, "{'$where': 'true'}", "v");
}

#define CASE(t) cmocka_unit_test_setup_teardown(t, conf_setup, conf_teardown)

const struct CMUnitTest conf_group_tests[] = {
    CASE(test_group_strings_sorted_bytewise),
    CASE(test_group_booleans_with_missing_as_null),
    CASE(test_group_numbers_by_value_across_widths),
    CASE(test_group_missing_and_null_together),
    CASE(test_group_counts_only_what_the_filter_matches),
    CASE(test_group_nested_dotted_field),
    CASE(test_group_empty_collection_has_no_groups),
    CASE(test_group_array_values_by_whole_array),
    CASE(test_group_path_through_an_array_of_documents),
    CASE(test_group_numeric_component_is_a_name),
    CASE(test_group_documents_by_fields_in_order),
    CASE(test_group_order_across_types),
    CASE(test_group_refuses_a_bad_field_or_filter),
};
const size_t conf_n_group_tests = sizeof conf_group_tests / sizeof conf_group_tests[0];
