/*
 * cases_query.c — one document set, many queries, and the answer MongoDB
 * gives to each, worked out from MongoDB's documented semantics (type
 * bracketing, null matching missing, array traversal, the cross-type sort
 * order MinKey < null < numbers < strings < objects < arrays < binData <
 * ObjectId < bool < date, arrays sorting by their least element ascending
 * and greatest descending) — not from what any adapter happens to return.
 *
 * MongoDB leaves the order of ties and of unsorted answers unspecified, so
 * every sort that could tie ends with _id, and unsorted answers compare as
 * sets (`sort` NULL: the ids are sorted before comparing).  Skip and limit
 * only appear with a total order.
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* d05, d07, d10 and d13 lack some fields on purpose (missing != null). */
static const char *const docs[] = {
    "{'_id': 'd01', 'n': 1, 's': 'apple', 'tags': ['red', 'fruit'], 'sub': {'x': 1, 'y': 'a'},"
    " 't': " D(1000) ", 'g': 'A', 'v': 5}",
    "{'_id': 'd02', 'n': {'$numberLong': '2'}, 's': 'banana', 'tags': ['yellow', 'fruit'],"
    " 'sub': {'x': 2, 'y': 'b'}, 't': " D(2000) ", 'g': 'B', 'v': '5'}",
    "{'_id': 'd03', 'n': 3.5, 's': 'cherry', 'tags': ['red'], 'sub': {'x': 3},"
    " 't': " D(3000) ", 'g': 'A', 'v': null}",
    "{'_id': 'd04', 'n': 4, 's': 'date', 'tags': [], 'sub': {'x': 1, 'y': 'c'},"
    " 't': " D(4000) ", 'g': 'B', 'v': true}",
    "{'_id': 'd05', 'n': -1, 's': 'Elder', 'g': 'C', 'v': [1, 7]}",
    "{'_id': 'd06', 'n': null, 's': 'fig', 'tags': ['green'], 'g': 'A', 'v': {'k': 1}}",
    "{'_id': 'd07', 's': 'grape', 'tags': ['green', 'fruit'], 'sub': {'x': null},"
    " 't': " D(7000) ", 'g': 'C'}",
    "{'_id': 'd08', 'n': 2.0, 's': 'honeydew', 'sub': {'x': 2, 'y': 'a'}, 't': " D(8000) ","
    " 'g': 'B', 'v': 2.5}",
    "{'_id': 'd09', 'n': '3', 's': 'kiwi', 'tags': 'red', 'g': 'A', 'v': " D(500) "}",
    "{'_id': 'd10', 'n': 10, 's': 'lemon', 'tags': ['yellow'], 'sub': [{'x': 5}, {'x': 6}],"
    " 't': " D(10000) ", 'g': 'C'}",
    "{'_id': 'd11', 'n': 2, 's': 'mango', 'tags': ['orange', 'fruit'], 't': " D(1000) ","
    " 'g': 'A'}",
    "{'_id': 'd12', 'n': 100, 's': 'apple', 'sub': {'x': 1, 'y': 'b'}, 'g': 'B',"
    " 'meta': {'deep': {'k': 'z'}}}",
    "{'_id': 'd13', 'n': {'$numberLong': '5000000000'}, 's': 'nectarine', 'tags': ['fruit'],"
    " 't': " D(-1000) ", 'g': 'C'}",
    "{'_id': 'd14', 'n': -2.5, 's': '', 'tags': [null], 'sub': {}, 'g': 'B', 'v': false}",
    "{'_id': 'd15', 'n': 7, 's': 'plum', 'tags': ['purple', 'fruit', 'red'],"
    " 'sub': {'x': 7, 'y': 'a'}, 't': " D(5000) ", 'g': 'A', 'v': {'$numberLong': '5'}}",
};

typedef struct query_case {
    const char *name;
    const char *filter; /* NULL: everything */
    const char *sort;   /* NULL: no order, compare as a set */
    uint64_t skip, limit;
    const char *expect;
} query_case;

#define ALL "d01,d02,d03,d04,d05,d06,d07,d08,d09,d10,d11,d12,d13,d14,d15"

static const query_case cases[] = {
    {"query_empty_filter_matches_everything", "{}", NULL, 0, 0, ALL},
    {"query_no_filter_matches_everything", NULL, NULL, 0, 0, ALL},
    {"query_number_equality_spans_int32_int64_double", "{'n': 2}", NULL, 0, 0, "d02,d08,d11"},
    {"query_int32_equality_finds_int64", "{'v': 5}", NULL, 0, 0, "d01,d15"},
    {"query_string_equality", "{'s': 'apple'}", NULL, 0, 0, "d01,d12"},
    {"query_equality_never_crosses_types", "{'n': '3'}", NULL, 0, 0, "d09"},
    {"query_gt_compares_numbers_only", "{'n': {'$gt': 3}}", "{'n': 1}", 0, 0,
     "d03,d04,d15,d10,d12,d13"},
    {"query_gte_lt_range_ties_by_id", "{'n': {'$gte': 1, '$lt': 4}}", "{'n': 1, '_id': 1}", 0, 0,
     "d01,d02,d08,d11,d03"},
    {"query_lte_negative_numbers", "{'n': {'$lte': -1}}", "{'n': 1}", 0, 0, "d14,d05"},
    {"query_string_range_is_bytewise", "{'s': {'$gte': 'b', '$lt': 'h'}}", "{'s': 1}", 0, 0,
     "d02,d03,d04,d06,d07"},
    {"query_string_lt_sees_uppercase_and_empty", "{'s': {'$lt': 'a'}}", NULL, 0, 0, "d05,d14"},
    {"query_ne_matches_missing_and_other_types", "{'n': {'$ne': 2}}", NULL, 0, 0,
     "d01,d03,d04,d05,d06,d07,d09,d10,d12,d13,d14,d15"},
    {"query_null_matches_null_and_missing", "{'n': null}", NULL, 0, 0, "d06,d07"},
    {"query_exists_false_is_missing_only", "{'n': {'$exists': false}}", NULL, 0, 0, "d07"},
    {"query_exists_true_includes_null", "{'v': {'$exists': true}}", NULL, 0, 0,
     "d01,d02,d03,d04,d05,d06,d08,d09,d14,d15"},
    {"query_ne_null_excludes_null_and_missing", "{'v': {'$ne': null}}", NULL, 0, 0,
     "d01,d02,d04,d05,d06,d08,d09,d14,d15"},
    {"query_in_mixed_types_with_null", "{'n': {'$in': [1, '3', null]}}", NULL, 0, 0,
     "d01,d06,d07,d09"},
    {"query_in_on_array_field", "{'tags': {'$in': ['green', 'orange']}}", NULL, 0, 0,
     "d06,d07,d11"},
    {"query_nin_keeps_missing_and_drops_any_element", "{'tags': {'$nin': ['fruit', 'red']}}",
     NULL, 0, 0, "d04,d05,d06,d08,d10,d12,d14"},
    {"query_nin_with_null_drops_missing", "{'sub.x': {'$nin': [null, 1]}}", NULL, 0, 0,
     "d02,d03,d08,d10,d15"},
    {"query_array_contains_scalar_or_equals_it", "{'tags': 'red'}", NULL, 0, 0,
     "d01,d03,d09,d15"},
    {"query_eq_operator_on_array", "{'tags': {'$eq': 'fruit'}}", NULL, 0, 0,
     "d01,d02,d07,d11,d13,d15"},
    {"query_array_index_path", "{'tags.0': 'red'}", NULL, 0, 0, "d01,d03"},
    {"query_empty_array_equality", "{'tags': []}", NULL, 0, 0, "d04"},
    {"query_whole_array_equality_is_ordered", "{'v': [1, 7]}", NULL, 0, 0, "d05"},
    {"query_whole_array_in_other_order_matches_nothing", "{'v': [7, 1]}", NULL, 0, 0, ""},
    {"query_null_matches_array_holding_null", "{'tags': null}", NULL, 0, 0, "d05,d08,d12,d14"},
    {"query_bool_equality", "{'v': false}", NULL, 0, 0, "d14"},
    {"query_dotted_path_into_subdocument", "{'sub.x': 1}", NULL, 0, 0, "d01,d04,d12"},
    {"query_dotted_path_through_array_of_documents", "{'sub.x': 6}", NULL, 0, 0, "d10"},
    {"query_dotted_null_matches_missing_parent", "{'sub.y': null, 'g': 'A'}", NULL, 0, 0,
     "d03,d06,d09,d11"},
    {"query_deep_dotted_path", "{'meta.deep.k': 'z'}", NULL, 0, 0, "d12"},
    {"query_date_equality", "{'t': " D(1000) "}", NULL, 0, 0, "d01,d11"},
    {"query_date_range", "{'t': {'$gte': " D(2000) ", '$lt': " D(8000) "}}", "{'t': 1}", 0, 0,
     "d02,d03,d04,d15,d07"},
    {"query_date_before_1970", "{'t': {'$lt': " D(0) "}}", NULL, 0, 0, "d13"},
    {"query_number_bound_never_matches_dates", "{'t': {'$gt': 0}}", NULL, 0, 0, ""},
    {"query_int64_beyond_int32", "{'n': {'$gte': {'$numberLong': '4294967296'}}}", NULL, 0, 0,
     "d13"},
    {"query_or", "{'$or': [{'g': 'C'}, {'n': {'$gt': 50}}]}", NULL, 0, 0, "d05,d07,d10,d12,d13"},
    {"query_and", "{'$and': [{'tags': 'fruit'}, {'tags': 'red'}]}", NULL, 0, 0, "d01,d15"},
    {"query_or_inside_implicit_and", "{'g': 'A', '$or': [{'sub.x': {'$gte': 3}}, {'n': null}]}",
     NULL, 0, 0, "d03,d06,d15"},
    {"query_two_operators_on_one_field_sorted_descending", "{'n': {'$gt': 1, '$ne': 2}}",
     "{'n': -1}", 0, 0, "d13,d12,d10,d15,d04,d03"},
    {"sort_two_keys_mixed_directions_cross_type", "{}", "{'g': 1, 'n': -1, '_id': 1}", 0, 0,
     "d09,d15,d03,d11,d01,d06,d12,d04,d02,d08,d14,d13,d10,d05,d07"},
    {"sort_cross_type_ascending", NULL, "{'v': 1, '_id': 1}", 0, 0,
     "d03,d07,d10,d11,d12,d13,d05,d08,d01,d15,d02,d06,d14,d04,d09"},
    {"sort_cross_type_descending_with_skip_and_limit", NULL, "{'v': -1, '_id': 1}", 2, 5,
     "d14,d06,d02,d05,d01"},
    {"sort_array_ascending_by_least_element", "{'g': 'A'}", "{'tags': 1, '_id': 1}", 0, 0,
     "d01,d11,d15,d06,d03,d09"},
    {"sort_array_descending_by_greatest_element", "{'g': 'A'}", "{'tags': -1, '_id': 1}", 0, 0,
     "d01,d03,d09,d15,d11,d06"},
    {"sort_dotted_path_through_array_of_documents", "{'g': 'C'}", "{'sub.x': -1, '_id': 1}", 0,
     0, "d10,d05,d07,d13"},
    {"sort_dates_descending", "{'t': {'$exists': true}}", "{'t': -1, '_id': 1}", 0, 0,
     "d10,d08,d07,d15,d04,d03,d02,d01,d11,d13"},
    {"sort_limit_only", "{'tags': 'fruit'}", "{'s': -1}", 0, 3, "d15,d13,d11"},
    {"sort_skip_and_limit_inside", NULL, "{'_id': -1}", 3, 4, "d12,d11,d10,d09"},
    {"sort_skip_past_the_end_is_empty", NULL, "{'_id': 1}", 20, 0, ""},
    {"sort_limit_beyond_the_end_returns_the_rest", NULL, "{'_id': 1}", 13, 10, "d14,d15"},
};

/* In the case body, not a setup: a store that cannot take the documents
 * fails the case with its message (and cmocka still tears it down). */
static void load_documents(conf_fixture *f)
{
    enum { N = sizeof docs / sizeof docs[0] };
    bson_t *b[N];
    persistor_write_op ops[N];
    int32_t results[N];
    persistor_error err = {0};
    conf_ensure(f, "q");
    for (size_t i = 0; i < N; i++) {
        bson_iter_t it;
        b[i] = conf_json(docs[i]);
        assert_true(bson_iter_init_find(&it, b[i], "_id"));
        ops[i] = (persistor_write_op){PERSISTOR_WRITE_INSERT_IF_ABSENT, b[i]->len,
                                      bson_iter_utf8(&it, NULL), bson_get_data(b[i])};
    }
    int32_t rc = f->adapter->write(f->inst, "q", ops, N, results, &err);
    for (size_t i = 0; i < N; i++)
        bson_destroy(b[i]);
    conf_expect(rc, PERSISTOR_OK, &err);
    for (size_t i = 0; i < N; i++)
        if (results[i] != PERSISTOR_OK)
            fail_msg("loading document %zu: result %d", i, results[i]);
}

static void test_query_case(void **state)
{
    conf_fixture *f = *state;
    const query_case *c = f->param;
    persistor_error err = {0};
    int32_t rc;
    load_documents(f);
    char *got = conf_query_ids(f, "q", c->filter, c->sort, c->skip, c->limit, c->sort == NULL,
                               &rc, &err);
    if (got == NULL)
        fail_msg("%s: filter %s sort %s: %d: %s", c->name, c->filter ? c->filter : "(none)",
                 c->sort ? c->sort : "(none)", rc, err.message);
    if (strcmp(got, c->expect) != 0) {
        print_error("%s\n  filter %s  sort %s  skip %llu  limit %llu\n"
                    "  expected [%s]\n  got      [%s]\n",
                    c->name, c->filter ? c->filter : "(none)", c->sort ? c->sort : "(none)",
                    (unsigned long long)c->skip, (unsigned long long)c->limit, c->expect, got);
        free(got);
        fail();
    }
    free(got);
}

size_t conf_query_tests(struct CMUnitTest **out)
{
    size_t n = sizeof cases / sizeof cases[0];
    struct CMUnitTest *t = calloc(n, sizeof *t);
    if (t == NULL)
        return 0;
    for (size_t i = 0; i < n; i++)
        t[i] = (struct CMUnitTest){cases[i].name, test_query_case, conf_setup, conf_teardown,
                                   (void *)&cases[i]};
    *out = t;
    return n;
}
