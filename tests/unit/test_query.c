/*
 * test_query.c — the query language against MongoDB's behaviour.
 *
 * Table-driven: each table row is a document, a filter (or sort, or value)
 * written as extended JSON, and what MongoDB would answer.  A failing row
 * prints its name.  The index-key tests check every pair of a list of
 * values in canonical order, so key order and query_value_compare cannot
 * drift apart.  Tests never touch a store.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buffer.h"
#include "query.h"

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

static bson_t *json(const char *text)
{
    bson_error_t e;
    bson_t *b = bson_new_from_json((const uint8_t *)text, -1, &e);
    if (b == NULL)
        fail_msg("bad test JSON %s: %s", text, e.message);
    return b;
}

static int sign(int64_t v)
{
    return (v > 0) - (v < 0);
}

static int memcmp_sign(const persistor_buffer *a, const persistor_buffer *b)
{
    uint32_t n = a->len < b->len ? a->len : b->len;
    int c = n ? memcmp(a->data, b->data, n) : 0;
    if (c != 0)
        return sign(c);
    return sign((int64_t)a->len - (int64_t)b->len);
}

/* ------------------------------------------------------------------------
 * Filters
 * --------------------------------------------------------------------- */

struct match_case {
    const char *name;
    const char *doc;
    const char *filter;
    bool match;
};

#define DATE(ms) "{\"$date\": {\"$numberLong\": \"" #ms "\"}}"
#define LONG(v) "{\"$numberLong\": \"" #v "\"}"
#define DBL(v) "{\"$numberDouble\": \"" #v "\"}"

static void run_match_table(const struct match_case *cases, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        const struct match_case *c = &cases[i];
        bson_t *doc = json(c->doc);
        bson_t *filter = json(c->filter);
        persistor_matcher *m = NULL;
        persistor_error err = {0};
        int32_t rc = query_matcher_new(bson_get_data(filter), filter->len, &m, &err);
        if (rc != PERSISTOR_OK)
            fail_msg("%s: filter refused: %s", c->name, err.message);
        bool got = query_matcher_match(m, bson_get_data(doc), doc->len);
        if (got != c->match)
            fail_msg("%s: %s against %s: expected %s", c->name, c->filter, c->doc,
                     c->match ? "a match" : "no match");
        query_matcher_free(m);
        bson_destroy(filter);
        bson_destroy(doc);
    }
}

static const struct match_case equality_cases[] = {
    {"empty_filter_matches_everything", "{\"a\": 1}", "{}", true},
    {"string_equal_matches", "{\"name\": \"ada\"}", "{\"name\": \"ada\"}", true},
    {"string_equality_is_case_sensitive", "{\"name\": \"Ada\"}", "{\"name\": \"ada\"}", false},
    {"int_equals_long", "{\"n\": 1}", "{\"n\": " LONG(1) "}", true},
    {"double_equals_int", "{\"n\": 1.0}", "{\"n\": 1}", true},
    {"long_equals_double", "{\"n\": " LONG(1) "}", "{\"n\": 1.0}", true},
    {"negative_zero_equals_zero", "{\"n\": " DBL(-0.0) "}", "{\"n\": 0}", true},
    {"number_never_equals_string", "{\"n\": 1}", "{\"n\": \"1\"}", false},
    {"bool_never_equals_number", "{\"b\": true}", "{\"b\": 1}", false},
    {"symbol_equals_string", "{\"s\": {\"$symbol\": \"x\"}}", "{\"s\": \"x\"}", true},
    {"all_fields_must_match", "{\"a\": 1, \"b\": 2}", "{\"a\": 1, \"b\": 3}", false},
    {"all_fields_matching_matches", "{\"a\": 1, \"b\": 2}", "{\"a\": 1, \"b\": 2}", true},
    {"embedded_document_equal", "{\"a\": {\"x\": 1, \"y\": 2}}", "{\"a\": {\"x\": 1, \"y\": 2}}",
     true},
    {"embedded_document_field_order_matters", "{\"a\": {\"y\": 2, \"x\": 1}}",
     "{\"a\": {\"x\": 1, \"y\": 2}}", false},
    {"embedded_document_is_not_a_subset_match", "{\"a\": {\"x\": 1, \"y\": 2}}",
     "{\"a\": {\"x\": 1}}", false},
    {"empty_object_value_is_literal_equality", "{\"a\": {}}", "{\"a\": {}}", true},
    {"eq_operator_matches", "{\"a\": 5}", "{\"a\": {\"$eq\": 5}}", true},
    {"eq_with_operator_like_document_is_literal", "{\"a\": {\"$gt\": 1}}",
     "{\"a\": {\"$eq\": {\"$gt\": 1}}}", true},
    {"ne_other_value_matches", "{\"a\": 6}", "{\"a\": {\"$ne\": 5}}", true},
    {"ne_same_value_misses", "{\"a\": 5}", "{\"a\": {\"$ne\": 5}}", false},
    {"ne_matches_missing_field", "{\"b\": 1}", "{\"a\": {\"$ne\": 5}}", true},
    {"bool_equality", "{\"b\": false}", "{\"b\": false}", true},
};

static void test_equality_matches_like_mongodb(void **state)
{
    run_match_table(equality_cases, COUNT(equality_cases));
}

static const struct match_case null_cases[] = {
    {"null_matches_null", "{\"a\": null}", "{\"a\": null}", true},
    {"null_matches_missing", "{\"b\": 1}", "{\"a\": null}", true},
    {"eq_null_matches_missing", "{\"b\": 1}", "{\"a\": {\"$eq\": null}}", true},
    {"null_does_not_match_zero", "{\"a\": 0}", "{\"a\": null}", false},
    {"null_does_not_match_false", "{\"a\": false}", "{\"a\": null}", false},
    {"null_does_not_match_empty_string", "{\"a\": \"\"}", "{\"a\": null}", false},
    {"null_matches_undefined", "{\"a\": {\"$undefined\": true}}", "{\"a\": null}", true},
    {"ne_null_matches_present_value", "{\"a\": 1}", "{\"a\": {\"$ne\": null}}", true},
    {"ne_null_misses_missing_field", "{\"b\": 1}", "{\"a\": {\"$ne\": null}}", false},
    {"ne_null_misses_null", "{\"a\": null}", "{\"a\": {\"$ne\": null}}", false},
    {"gte_null_matches_missing", "{\"b\": 1}", "{\"a\": {\"$gte\": null}}", true},
    {"lte_null_matches_null", "{\"a\": null}", "{\"a\": {\"$lte\": null}}", true},
    {"gte_null_misses_number", "{\"a\": 1}", "{\"a\": {\"$gte\": null}}", false},
    {"gt_null_misses_null", "{\"a\": null}", "{\"a\": {\"$gt\": null}}", false},
    {"lt_null_misses_missing", "{\"b\": 1}", "{\"a\": {\"$lt\": null}}", false},
    {"null_matches_array_holding_null", "{\"a\": [1, null]}", "{\"a\": null}", true},
    {"null_misses_empty_array", "{\"a\": []}", "{\"a\": null}", false},
    {"dotted_null_matches_missing_leaf", "{\"a\": {\"b\": 1}}", "{\"a.c\": null}", true},
    {"dotted_null_matches_scalar_parent", "{\"a\": 5}", "{\"a.b\": null}", true},
};

static void test_null_matches_null_and_missing(void **state)
{
    run_match_table(null_cases, COUNT(null_cases));
}

static const struct match_case comparison_cases[] = {
    {"gt_below", "{\"a\": 5}", "{\"a\": {\"$gt\": 4}}", true},
    {"gt_equal_misses", "{\"a\": 5}", "{\"a\": {\"$gt\": 5}}", false},
    {"gte_equal_matches", "{\"a\": 5}", "{\"a\": {\"$gte\": 5}}", true},
    {"lt_above", "{\"a\": 5}", "{\"a\": {\"$lt\": 6}}", true},
    {"lt_equal_misses", "{\"a\": 5}", "{\"a\": {\"$lt\": 5}}", false},
    {"lte_equal_matches", "{\"a\": 5}", "{\"a\": {\"$lte\": 5}}", true},
    {"operators_in_one_object_are_anded", "{\"a\": 5}", "{\"a\": {\"$gt\": 1, \"$lt\": 10}}",
     true},
    {"operators_in_one_object_all_must_hold", "{\"a\": 15}",
     "{\"a\": {\"$gt\": 1, \"$lt\": 10}}", false},
    {"gt_number_ignores_strings", "{\"a\": \"10\"}", "{\"a\": {\"$gt\": 5}}", false},
    {"gt_string_ignores_numbers", "{\"a\": 5}", "{\"a\": {\"$gt\": \"a\"}}", false},
    {"gt_string_compares_strings", "{\"a\": \"b\"}", "{\"a\": {\"$gt\": \"a\"}}", true},
    {"strings_compare_bytewise_upper_before_lower", "{\"a\": \"B\"}", "{\"a\": {\"$lt\": \"a\"}}",
     true},
    {"string_prefix_is_smaller", "{\"a\": \"ab\"}", "{\"a\": {\"$gt\": \"a\"}}", true},
    {"gt_number_ignores_bool", "{\"a\": true}", "{\"a\": {\"$gt\": 0}}", false},
    {"lt_number_ignores_null", "{\"a\": null}", "{\"a\": {\"$lt\": 5}}", false},
    {"lt_number_ignores_missing", "{\"b\": 1}", "{\"a\": {\"$lt\": 5}}", false},
    {"bool_false_below_true", "{\"b\": false}", "{\"b\": {\"$lt\": true}}", true},
    {"double_between_ints", "{\"a\": 2.5}", "{\"a\": {\"$gt\": 2, \"$lt\": 3}}", true},
    {"long_beyond_2p53_above_double_2p53", "{\"a\": " LONG(9007199254740993) "}",
     "{\"a\": {\"$gt\": 9007199254740992.0}}", true},
    {"long_beyond_2p53_not_equal_to_rounded_double", "{\"a\": " LONG(9007199254740993) "}",
     "{\"a\": 9007199254740992.0}", false},
    {"long_2p53_equals_double_2p53", "{\"a\": " LONG(9007199254740992) "}",
     "{\"a\": 9007199254740992.0}", true},
    {"long_max_below_double_2p63", "{\"a\": " LONG(9223372036854775807) "}",
     "{\"a\": {\"$lt\": 9223372036854775808.0}}", true},
    {"nan_equals_nan", "{\"a\": " DBL(NaN) "}", "{\"a\": " DBL(NaN) "}", true},
    {"nan_is_not_less_than_numbers", "{\"a\": " DBL(NaN) "}", "{\"a\": {\"$lt\": 0}}", false},
    {"nan_is_not_greater_than_numbers", "{\"a\": " DBL(NaN) "}", "{\"a\": {\"$gt\": 0}}",
     false},
    {"nan_gte_nan", "{\"a\": " DBL(NaN) "}", "{\"a\": {\"$gte\": " DBL(NaN) "}}", true},
    {"number_not_greater_than_nan", "{\"a\": 1}", "{\"a\": {\"$gt\": " DBL(NaN) "}}", false},
    {"document_compares_field_by_field", "{\"a\": {\"x\": 1}}", "{\"a\": {\"$gt\": {\"x\": 0}}}",
     true},
    {"document_compares_names_before_values", "{\"a\": {\"x\": 1}}",
     "{\"a\": {\"$gt\": {\"w\": 5}}}", true},
    {"array_compares_with_array_operand", "{\"a\": [1, 3]}", "{\"a\": {\"$gt\": [1, 2]}}", true},
    {"equal_array_is_not_greater", "{\"a\": [1, 2]}", "{\"a\": {\"$gt\": [1, 2]}}", false},
};

static void test_comparisons_bracket_by_type(void **state)
{
    run_match_table(comparison_cases, COUNT(comparison_cases));
}

static const struct match_case date_cases[] = {
    {"date_gte_same_date", "{\"ts\": " DATE(1700000000000) "}",
     "{\"ts\": {\"$gte\": " DATE(1700000000000) "}}", true},
    {"date_gt_same_date_misses", "{\"ts\": " DATE(1700000000000) "}",
     "{\"ts\": {\"$gt\": " DATE(1700000000000) "}}", false},
    {"date_lt_later_date", "{\"ts\": " DATE(1700000000000) "}",
     "{\"ts\": {\"$lt\": " DATE(1700000000001) "}}", true},
    {"date_equality", "{\"ts\": " DATE(1700000000000) "}", "{\"ts\": " DATE(1700000000000) "}",
     true},
    {"date_never_equals_its_number", "{\"ts\": " DATE(1700000000000) "}",
     "{\"ts\": " LONG(1700000000000) "}", false},
    {"gt_number_ignores_dates", "{\"ts\": " DATE(1700000000000) "}", "{\"ts\": {\"$gt\": 0}}",
     false},
    {"date_range", "{\"ts\": " DATE(1700000000000) "}",
     "{\"ts\": {\"$gte\": " DATE(1600000000000) ", \"$lt\": " DATE(1800000000000) "}}", true},
    {"negative_dates_order", "{\"ts\": " DATE(-5) "}", "{\"ts\": {\"$lt\": " DATE(0) "}}", true},
};

static void test_dates_compare_only_with_dates(void **state)
{
    run_match_table(date_cases, COUNT(date_cases));
}

static const struct match_case in_exists_cases[] = {
    {"in_matches_member", "{\"a\": 2}", "{\"a\": {\"$in\": [1, 2]}}", true},
    {"in_misses_non_member", "{\"a\": 3}", "{\"a\": {\"$in\": [1, 2]}}", false},
    {"in_compares_numbers_by_value", "{\"a\": 2.0}", "{\"a\": {\"$in\": [" LONG(2) "]}}", true},
    {"in_with_null_matches_missing", "{\"b\": 1}", "{\"a\": {\"$in\": [null, 1]}}", true},
    {"in_without_null_misses_missing", "{\"b\": 1}", "{\"a\": {\"$in\": [1]}}", false},
    {"in_matches_array_element", "{\"a\": [5, 6]}", "{\"a\": {\"$in\": [6]}}", true},
    {"in_empty_matches_nothing", "{\"a\": 1}", "{\"a\": {\"$in\": []}}", false},
    {"nin_misses_member", "{\"a\": 2}", "{\"a\": {\"$nin\": [1, 2]}}", false},
    {"nin_matches_non_member", "{\"a\": 3}", "{\"a\": {\"$nin\": [1, 2]}}", true},
    {"nin_matches_missing", "{\"b\": 1}", "{\"a\": {\"$nin\": [1]}}", true},
    {"nin_null_misses_missing", "{\"b\": 1}", "{\"a\": {\"$nin\": [null]}}", false},
    {"nin_misses_array_with_member", "{\"a\": [1, 5]}", "{\"a\": {\"$nin\": [5]}}", false},
    {"nin_empty_matches_everything", "{\"b\": 1}", "{\"a\": {\"$nin\": []}}", true},
    {"exists_true_matches_null_value", "{\"a\": null}", "{\"a\": {\"$exists\": true}}", true},
    {"exists_true_misses_missing", "{\"b\": 1}", "{\"a\": {\"$exists\": true}}", false},
    {"exists_false_matches_missing", "{\"b\": 1}", "{\"a\": {\"$exists\": false}}", true},
    {"exists_false_misses_present", "{\"a\": 1}", "{\"a\": {\"$exists\": false}}", false},
    {"exists_zero_is_false", "{\"a\": 1}", "{\"a\": {\"$exists\": 0}}", false},
    {"exists_one_is_true", "{\"a\": 1}", "{\"a\": {\"$exists\": 1}}", true},
    {"exists_null_is_false", "{\"b\": 1}", "{\"a\": {\"$exists\": null}}", true},
    {"exists_dotted_in_array_of_documents", "{\"a\": [{\"c\": 1}, {\"b\": 2}]}",
     "{\"a.b\": {\"$exists\": true}}", true},
    {"exists_false_dotted_when_one_element_has_it", "{\"a\": [{\"c\": 1}, {\"b\": 2}]}",
     "{\"a.b\": {\"$exists\": false}}", false},
};

static void test_in_nin_and_exists(void **state)
{
    run_match_table(in_exists_cases, COUNT(in_exists_cases));
}

static const struct match_case path_cases[] = {
    {"dotted_path_into_documents", "{\"a\": {\"b\": {\"c\": 1}}}", "{\"a.b.c\": 1}", true},
    {"dotted_path_missing_leaf_exists_false", "{\"a\": {\"b\": 1}}",
     "{\"a.b.c\": {\"$exists\": true}}", false},
    {"array_field_matches_element", "{\"tags\": [\"x\", \"y\"]}", "{\"tags\": \"y\"}", true},
    {"array_field_matches_whole_array", "{\"tags\": [\"x\", \"y\"]}",
     "{\"tags\": [\"x\", \"y\"]}", true},
    {"whole_array_equality_is_ordered", "{\"tags\": [\"y\", \"x\"]}",
     "{\"tags\": [\"x\", \"y\"]}", false},
    {"nested_array_element_equals_array", "{\"tags\": [[\"x\"]]}", "{\"tags\": [\"x\"]}", true},
    {"nested_arrays_are_not_flattened", "{\"tags\": [[\"x\"]]}", "{\"tags\": \"x\"}", false},
    {"operators_on_array_may_hold_for_different_elements", "{\"a\": [1, 10]}",
     "{\"a\": {\"$gt\": 5, \"$lt\": 3}}", true},
    {"ne_misses_array_containing_value", "{\"a\": [1, 2]}", "{\"a\": {\"$ne\": 2}}", false},
    {"path_through_array_of_documents", "{\"a\": [{\"b\": 1}, {\"b\": 2}]}", "{\"a.b\": 2}",
     true},
    {"path_through_array_of_documents_misses", "{\"a\": [{\"b\": 1}, {\"b\": 2}]}",
     "{\"a.b\": 3}", false},
    {"path_through_array_null_when_one_element_lacks_it", "{\"a\": [{\"b\": 1}, {\"c\": 2}]}",
     "{\"a.b\": null}", true},
    {"path_through_array_of_scalars_is_missing", "{\"a\": [1, 2]}", "{\"a.b\": null}", true},
    {"path_through_array_then_array_leaf", "{\"a\": [{\"b\": [1, 2]}]}", "{\"a.b\": 2}", true},
    {"path_through_array_then_whole_array", "{\"a\": [{\"b\": [1, 2]}]}", "{\"a.b\": [1, 2]}",
     true},
    {"ne_through_array_of_documents", "{\"a\": [{\"b\": 1}, {\"b\": 2}]}",
     "{\"a.b\": {\"$ne\": 1}}", false},
    {"gt_through_array_of_documents", "{\"a\": [{\"b\": 1}, {\"b\": 7}]}",
     "{\"a.b\": {\"$gt\": 5}}", true},
    {"numeric_component_indexes_array", "{\"a\": [5, 6]}", "{\"a.1\": 6}", true},
    {"numeric_component_is_positional", "{\"a\": [5, 6]}", "{\"a.1\": 5}", false},
    {"index_past_end_is_missing", "{\"a\": [5, 6]}", "{\"a.2\": null}", true},
    {"leading_zero_is_not_an_index", "{\"a\": [5, 6]}", "{\"a.01\": 6}", false},
    {"index_then_field", "{\"a\": [{\"b\": 1}, {\"b\": 2}]}", "{\"a.1.b\": 2}", true},
    {"numeric_component_also_names_document_fields", "{\"a\": [{\"0\": \"x\"}]}",
     "{\"a.0\": \"x\"}", true},
    {"numeric_component_on_document_is_a_field_name", "{\"a\": {\"1\": \"y\"}}",
     "{\"a.1\": \"y\"}", true},
};

static void test_dotted_paths_traverse_arrays(void **state)
{
    run_match_table(path_cases, COUNT(path_cases));
}

static const struct match_case logical_cases[] = {
    {"and_all_true", "{\"a\": 1, \"b\": 2}", "{\"$and\": [{\"a\": 1}, {\"b\": 2}]}", true},
    {"and_one_false", "{\"a\": 1, \"b\": 2}", "{\"$and\": [{\"a\": 1}, {\"b\": 3}]}", false},
    {"or_one_true", "{\"a\": 1, \"b\": 2}", "{\"$or\": [{\"a\": 2}, {\"b\": 2}]}", true},
    {"or_none_true", "{\"a\": 1, \"b\": 2}", "{\"$or\": [{\"a\": 2}, {\"b\": 3}]}", false},
    {"or_of_ands", "{\"a\": 1, \"b\": 2}",
     "{\"$or\": [{\"$and\": [{\"a\": 1}, {\"b\": 3}]}, {\"$and\": [{\"a\": 1}, {\"b\": 2}]}]}",
     true},
    {"and_of_ors", "{\"a\": 1, \"b\": 2}",
     "{\"$and\": [{\"$or\": [{\"a\": 1}, {\"a\": 2}]}, {\"$or\": [{\"b\": 3}, {\"b\": 4}]}]}",
     false},
    {"or_with_empty_branch_matches", "{\"a\": 1}", "{\"$or\": [{\"a\": 9}, {}]}", true},
    {"fields_beside_or_are_anded", "{\"a\": 1, \"b\": 2}",
     "{\"a\": 1, \"$or\": [{\"b\": 5}, {\"b\": 2}]}", true},
    {"fields_beside_or_must_hold", "{\"a\": 1, \"b\": 2}",
     "{\"a\": 7, \"$or\": [{\"b\": 5}, {\"b\": 2}]}", false},
    {"operators_inside_or", "{\"n\": 5}",
     "{\"$or\": [{\"n\": {\"$lt\": 0}}, {\"n\": {\"$in\": [4, 5]}}]}", true},
};

static void test_and_or_nest(void **state)
{
    run_match_table(logical_cases, COUNT(logical_cases));
}

/* ------------------------------------------------------------------------
 * Filters we refuse
 * --------------------------------------------------------------------- */

struct invalid_case {
    const char *name;
    const char *filter;
    const char *says; /* the message must contain this */
    const char *says_too;
};

static const struct invalid_case invalid_cases[] = {
    {"regex_is_unsupported", "{\"name\": {\"$regex\": \"abc\"}}", "$regex", "'name'"},
    {"regex_in_in_is_unsupported",
     "{\"a\": {\"$in\": [{\"$regularExpression\": {\"pattern\": \"x\", \"options\": \"\"}}]}}",
     "$regex", "'a'"},
    {"where_is_unsupported", "{\"$where\": \"this.a == 1\"}", "$where", "top level"},
    {"where_under_field_is_unsupported", "{\"a\": {\"$where\": 1}}", "$where", "'a'"},
    {"not_is_unsupported", "{\"a\": {\"$not\": {\"$gt\": 1}}}", "$not", "'a'"},
    {"elem_match_is_unsupported", "{\"a\": {\"$elemMatch\": {\"b\": 1}}}", "$elemMatch", "'a'"},
    {"nor_is_unsupported", "{\"$nor\": [{\"a\": 1}]}", "$nor", "top level"},
    {"size_is_unsupported", "{\"a.b\": {\"$size\": 1}}", "$size", "'a.b'"},
    {"type_is_unsupported", "{\"a\": {\"$type\": \"string\"}}", "$type", "'a'"},
    {"all_is_unsupported", "{\"a\": {\"$all\": [1]}}", "$all", "'a'"},
    {"unknown_operator_after_a_good_one", "{\"a\": {\"$gt\": 1, \"$mod\": [2, 0]}}", "$mod",
     "'a'"},
    {"unsupported_operator_inside_and", "{\"$and\": [{\"x\": {\"$regex\": \"y\"}}]}", "$regex",
     "'x'"},
    {"in_needs_an_array", "{\"a\": {\"$in\": 5}}", "$in", "array"},
    {"nin_needs_an_array", "{\"a\": {\"$nin\": \"x\"}}", "$nin", "array"},
    {"and_needs_a_non_empty_array", "{\"$and\": []}", "$and", "non-empty"},
    {"or_needs_an_array", "{\"$or\": {\"a\": 1}}", "$or", "array"},
    {"or_elements_must_be_documents", "{\"$or\": [{\"a\": 1}, 2]}", "$or element 1",
     "document"},
    {"operator_then_field_is_mixed", "{\"a\": {\"$gt\": 1, \"b\": 2}}", "mixes", "'a'"},
    {"field_then_operator_is_mixed", "{\"a\": {\"b\": 2, \"$gt\": 1}}", "mixes", "'a'"},
};

static void test_unsupported_and_malformed_filters_name_the_culprit(void **state)
{
    for (size_t i = 0; i < COUNT(invalid_cases); i++) {
        const struct invalid_case *c = &invalid_cases[i];
        bson_t *filter = json(c->filter);
        persistor_matcher *m = (persistor_matcher *)&m; /* must be reset to NULL */
        persistor_error err = {0};
        int32_t rc = query_matcher_new(bson_get_data(filter), filter->len, &m, &err);
        if (rc != PERSISTOR_E_INVALID)
            fail_msg("%s: expected E_INVALID, got %d", c->name, rc);
        if (m != NULL)
            fail_msg("%s: *out not NULL on failure", c->name);
        if (strstr(err.message, c->says) == NULL || strstr(err.message, c->says_too) == NULL)
            fail_msg("%s: message \"%s\" should name %s and %s", c->name, err.message, c->says,
                     c->says_too);
        bson_destroy(filter);
    }
}

static void test_unsupported_operator_message_is_exact(void **state)
{
    /* Built by hand: libbson's JSON reader would turn $regex into a regex. */
    bson_t filter, ops;
    bson_init(&filter);
    bson_append_document_begin(&filter, "name", -1, &ops);
    bson_append_utf8(&ops, "$regex", -1, "^a", -1);
    bson_append_document_end(&filter, &ops);
    persistor_matcher *m = NULL;
    persistor_error err = {0};
    assert_int_equal(query_matcher_new(bson_get_data(&filter), filter.len, &m, &err),
                     PERSISTOR_E_INVALID);
    assert_int_equal(err.code, PERSISTOR_E_INVALID);
    assert_string_equal(err.message, "unsupported query operator $regex at 'name'");
    bson_destroy(&filter);
}

/* {"a": {"a": ... {"a": 1}}} nested `levels` deep. */
static bson_t *nested_doc(int levels)
{
    /* bson_t is over-aligned: calloc would not do. */
    bson_t *docs = aligned_alloc(_Alignof(bson_t), ((size_t)levels + 1) * sizeof *docs);
    assert_non_null(docs);
    bson_init(&docs[0]);
    for (int i = 0; i < levels; i++)
        bson_append_document_begin(&docs[i], "a", 1, &docs[i + 1]);
    bson_append_int32(&docs[levels], "a", 1, 1);
    for (int i = levels; i > 0; i--)
        bson_append_document_end(&docs[i - 1], &docs[i]);
    bson_t *out = bson_copy(&docs[0]);
    bson_destroy(&docs[0]);
    free(docs);
    return out;
}

/* {"$and": [{"$and": [ ... {} ... ]}]} nested `levels` deep, built by
 * hand: libbson's JSON reader has a nesting limit of its own. */
static bson_t *nested_and(int levels)
{
    bson_t *b = aligned_alloc(_Alignof(bson_t), ((size_t)levels * 2 + 1) * sizeof *b);
    assert_non_null(b);
    bson_init(&b[0]);
    for (int i = 0; i < levels; i++) {
        bson_append_array_begin(&b[2 * i], "$and", 4, &b[2 * i + 1]);
        bson_append_document_begin(&b[2 * i + 1], "0", 1, &b[2 * i + 2]);
    }
    for (int i = levels; i > 0; i--) {
        bson_append_document_end(&b[2 * i - 1], &b[2 * i]);
        bson_append_array_end(&b[2 * i - 2], &b[2 * i - 1]);
    }
    bson_t *out = bson_copy(&b[0]);
    bson_destroy(&b[0]);
    free(b);
    return out;
}

static void test_deeply_nested_filters_are_refused(void **state)
{
    /* Each $and level is two BSON levels (array, document). */
    bson_t *ok = nested_and(20), *deep = nested_and(60), *deep_value = nested_doc(150);
    persistor_matcher *m = NULL;
    persistor_error err = {0};
    assert_int_equal(query_matcher_new(bson_get_data(ok), ok->len, &m, &err), PERSISTOR_OK);
    bson_t *doc = json("{\"a\": 1}");
    assert_true(query_matcher_match(m, bson_get_data(doc), doc->len));
    query_matcher_free(m);
    assert_int_equal(query_matcher_new(bson_get_data(deep), deep->len, &m, &err),
                     PERSISTOR_E_INVALID);
    assert_null(m);
    assert_non_null(strstr(err.message, "deeper"));
    err.message[0] = '\0';
    assert_int_equal(query_matcher_new(bson_get_data(deep_value), deep_value->len, &m, &err),
                     PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "deeper"));
    bson_destroy(doc);
    bson_destroy(ok);
    bson_destroy(deep);
    bson_destroy(deep_value);
}

static void test_malformed_filter_bytes_are_invalid(void **state)
{
    bson_t *filter = json("{\"a\": \"text\"}");
    uint8_t bytes[64];
    memcpy(bytes, bson_get_data(filter), filter->len);
    bytes[7] = 0x7f; /* the string's length now runs past the document */
    persistor_matcher *m = NULL;
    persistor_error err = {0};
    assert_int_equal(query_matcher_new(bytes, filter->len, &m, &err), PERSISTOR_E_INVALID);
    assert_int_equal(query_matcher_new(bytes, 3, &m, &err), PERSISTOR_E_INVALID);
    assert_null(m);
    bson_destroy(filter);
}

static void test_null_or_empty_filter_matches_all(void **state)
{
    persistor_matcher *m = NULL;
    bson_t *doc = json("{\"a\": 1}");
    assert_int_equal(query_matcher_new(NULL, 0, &m, NULL), PERSISTOR_OK);
    assert_true(query_matcher_match(m, bson_get_data(doc), doc->len));
    query_matcher_free(m);
    query_matcher_free(NULL);
    bson_destroy(doc);
}

/* A document whose frame is damaged never matches and has no key.  Damage
 * inside a document is not searched for on every call (documents are
 * checked whole on the way in): it may change an answer, but it is never
 * read out of bounds, which the ASan and valgrind passes of this test pin. */
static void test_damaged_document_never_matches_and_is_read_within_bounds(void **state)
{
    persistor_matcher *all = NULL, *missing = NULL;
    bson_t *q = json("{\"zz\": null}");
    assert_int_equal(query_matcher_new(NULL, 0, &all, NULL), PERSISTOR_OK);
    assert_int_equal(query_matcher_new(bson_get_data(q), q->len, &missing, NULL), PERSISTOR_OK);
    bson_t *doc = json("{\"a\": {\"b\": \"text\"}, \"c\": 1}");
    uint32_t len = doc->len;
    /* Exactly len bytes on the heap, so any read past them is caught. */
    uint8_t *bytes = malloc(len);
    memcpy(bytes, bson_get_data(doc), len);
    assert_true(query_matcher_match(all, bytes, len));

    bytes[len - 1] = 1; /* no trailing NUL */
    assert_false(query_matcher_match(all, bytes, len));
    memcpy(bytes, bson_get_data(doc), len);
    bytes[0] = (uint8_t)(len + 10); /* claims more bytes than it has */
    assert_false(query_matcher_match(all, bytes, len));
    assert_false(query_matcher_match(all, NULL, 0));
    assert_false(query_matcher_match(all, bytes, 2));

    persistor_buffer key = {0};
    persistor_index_key k = {"a", 1};
    persistor_index_spec spec = {"a_1", &k, 1, 0};
    assert_int_equal(query_index_key(&spec, bytes, len, &key), PERSISTOR_E_INVALID);

    /* The nested string's length runs past its document: answers are
     * whatever the readable part gives, and nothing is read beyond it. */
    memcpy(bytes, bson_get_data(doc), len);
    bytes[14] = 0x70;
    (void)query_matcher_match(all, bytes, len);
    (void)query_matcher_match(missing, bytes, len);
    int32_t rc = query_index_key(&spec, bytes, len, &key);
    assert_true(rc == PERSISTOR_OK || rc == PERSISTOR_E_INVALID);
    buffer_free(&key);
    free(bytes);
    query_matcher_free(all);
    query_matcher_free(missing);
    bson_destroy(q);
    bson_destroy(doc);
}

static void test_deep_documents_are_safe(void **state)
{
    bson_t *deep = nested_doc(500), *deep2 = nested_doc(500), *q = json("{\"a.a.b\": null}");
    persistor_matcher *m = NULL;
    assert_int_equal(query_matcher_new(bson_get_data(q), q->len, &m, NULL), PERSISTOR_OK);
    assert_true(query_matcher_match(m, bson_get_data(deep), deep->len));
    bson_iter_t a, b;
    assert_true(bson_iter_init_find(&a, deep, "a"));
    assert_true(bson_iter_init_find(&b, deep2, "a"));
    assert_int_equal(query_value_compare(&a, &b), 0);
    persistor_buffer key = {0};
    persistor_index_key k = {"a", 1};
    persistor_index_spec spec = {"a_1", &k, 1, 0};
    assert_int_equal(query_index_key(&spec, bson_get_data(deep), deep->len, &key),
                     PERSISTOR_E_INVALID);
    buffer_free(&key);
    query_matcher_free(m);
    bson_destroy(q);
    bson_destroy(deep);
    bson_destroy(deep2);
}

/* ------------------------------------------------------------------------
 * Sort
 * --------------------------------------------------------------------- */

struct sort_case {
    const char *name;
    const char *sort;
    const char *docs; /* {"d": [doc, doc, ...]} */
    int order[8];     /* expected indexes, stable for ties */
};

static const struct sort_case sort_cases[] = {
    {"numbers_ascending_across_types", "{\"n\": 1}",
     "{\"d\": [{\"n\": 3}, {\"n\": 1.5}, {\"n\": " LONG(2) "}]}", {1, 2, 0}},
    {"numbers_descending", "{\"n\": -1}",
     "{\"d\": [{\"n\": 3}, {\"n\": 1.5}, {\"n\": " LONG(2) "}]}", {0, 2, 1}},
    {"missing_sorts_as_null_before_numbers", "{\"n\": 1}",
     "{\"d\": [{\"n\": 1}, {}, {\"n\": null}]}", {1, 2, 0}},
    {"missing_sorts_last_descending", "{\"n\": -1}", "{\"d\": [{}, {\"n\": 1}, {\"n\": 0}]}",
     {1, 2, 0}},
    {"empty_array_sorts_before_null", "{\"n\": 1}",
     "{\"d\": [{\"n\": null}, {\"n\": []}, {\"n\": 0}]}", {1, 0, 2}},
    {"empty_array_sorts_last_descending", "{\"n\": -1}",
     "{\"d\": [{\"n\": null}, {\"n\": []}, {\"n\": 0}]}", {2, 0, 1}},
    {"array_ascending_uses_least_element", "{\"n\": 1}",
     "{\"d\": [{\"n\": [1, 10]}, {\"n\": 5}, {\"n\": [4, 3]}]}", {0, 2, 1}},
    {"array_descending_uses_greatest_element", "{\"n\": -1}",
     "{\"d\": [{\"n\": 5}, {\"n\": [4, 3]}, {\"n\": [1, 10]}]}", {2, 0, 1}},
    {"types_sort_in_canonical_order", "{\"v\": 1}",
     "{\"d\": [{\"v\": \"a\"}, {\"v\": 1}, {\"v\": {}}, {\"v\": true}, {\"v\": null},"
     " {\"v\": " DATE(0) "}, {\"v\": [[1]]}]}",
     {4, 1, 0, 2, 6, 3, 5}},
    {"dates_ascending", "{\"ts\": 1}",
     "{\"d\": [{\"ts\": " DATE(1700000000001) "}, {\"ts\": " DATE(1700000000000) "}]}", {1, 0}},
    {"compound_with_mixed_directions", "{\"a\": 1, \"b\": -1}",
     "{\"d\": [{\"a\": 2, \"b\": 1}, {\"a\": 1, \"b\": 1}, {\"a\": 1, \"b\": 2},"
     " {\"a\": 2, \"b\": 3}]}",
     {2, 1, 3, 0}},
    {"dotted_path_through_array_of_documents", "{\"a.b\": 1}",
     "{\"d\": [{\"a\": {\"b\": 2}}, {\"a\": [{\"b\": 3}, {\"b\": 1}]}]}", {1, 0}},
    {"strings_sort_bytewise_prefix_first", "{\"s\": 1}",
     "{\"d\": [{\"s\": \"b\"}, {\"s\": \"ab\"}, {\"s\": \"a\"}, {\"s\": \"B\"}]}", {3, 2, 1, 0}},
    {"int64_precision_kept", "{\"n\": 1}",
     "{\"d\": [{\"n\": " LONG(9007199254740993) "}, {\"n\": 9007199254740992.0}]}", {1, 0}},
    {"direction_as_long_and_double", "{\"a\": " LONG(-1) ", \"b\": 1.0}",
     "{\"d\": [{\"a\": 1, \"b\": 2}, {\"a\": 2, \"b\": 9}, {\"a\": 1, \"b\": 1}]}", {1, 2, 0}},
};

static void run_sort_case(const struct sort_case *c)
{
    bson_t *spec = json(c->sort), *docs = json(c->docs);
    persistor_sorter *s = NULL;
    persistor_error err = {0};
    if (query_sorter_new(bson_get_data(spec), spec->len, &s, &err) != PERSISTOR_OK)
        fail_msg("%s: sort refused: %s", c->name, err.message);
    const uint8_t *data[8];
    uint32_t len[8];
    int idx[8], n = 0;
    bson_iter_t it, el;
    assert_true(bson_iter_init_find(&it, docs, "d") && bson_iter_recurse(&it, &el));
    while (bson_iter_next(&el) && n < 8) {
        bson_iter_document(&el, &len[n], &data[n]);
        idx[n] = n;
        n++;
    }
    for (int i = 1; i < n; i++) /* insertion sort: stable, so ties keep input order */
        for (int j = i; j > 0 && query_sorter_compare(s, data[idx[j - 1]], len[idx[j - 1]],
                                                      data[idx[j]], len[idx[j]]) > 0;
             j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    for (int i = 0; i < n; i++)
        if (idx[i] != c->order[i])
            fail_msg("%s: position %d holds doc %d, expected doc %d", c->name, i, idx[i],
                     c->order[i]);
    for (int i = 0; i < n; i++) /* antisymmetric and reflexive */
        for (int j = 0; j < n; j++)
            assert_int_equal(sign(query_sorter_compare(s, data[i], len[i], data[j], len[j])),
                             -sign(query_sorter_compare(s, data[j], len[j], data[i], len[i])));
    query_sorter_free(s);
    bson_destroy(spec);
    bson_destroy(docs);
}

static void test_sort_orders_like_mongodb(void **state)
{
    for (size_t i = 0; i < COUNT(sort_cases); i++)
        run_sort_case(&sort_cases[i]);
}

static void test_sort_direction_must_be_one_or_minus_one(void **state)
{
    static const char *bad[] = {"{\"a\": 2}", "{\"a\": \"asc\"}", "{\"a\": 0}", "{\"a\": 1.5}",
                                "{\"a\": {\"$meta\": \"textScore\"}}", "{\"a\": true}"};
    for (size_t i = 0; i < COUNT(bad); i++) {
        bson_t *spec = json(bad[i]);
        persistor_sorter *s = NULL;
        persistor_error err = {0};
        if (query_sorter_new(bson_get_data(spec), spec->len, &s, &err) != PERSISTOR_E_INVALID)
            fail_msg("sort %s should be refused", bad[i]);
        assert_null(s);
        assert_non_null(strstr(err.message, "'a'"));
        bson_destroy(spec);
    }
}

static void test_empty_sort_leaves_everything_equal(void **state)
{
    bson_t *spec = json("{}"), *a = json("{\"a\": 1}"), *b = json("{\"a\": 2}");
    persistor_sorter *s = NULL, *none = NULL;
    assert_int_equal(query_sorter_new(bson_get_data(spec), spec->len, &s, NULL), PERSISTOR_OK);
    assert_int_equal(query_sorter_new(NULL, 0, &none, NULL), PERSISTOR_OK);
    assert_int_equal(query_sorter_compare(s, bson_get_data(a), a->len, bson_get_data(b), b->len),
                     0);
    assert_int_equal(
        query_sorter_compare(none, bson_get_data(a), a->len, bson_get_data(b), b->len), 0);
    query_sorter_free(s);
    query_sorter_free(none);
    bson_destroy(spec);
    bson_destroy(a);
    bson_destroy(b);
}

/* ------------------------------------------------------------------------
 * Value order and index keys
 * --------------------------------------------------------------------- */

/* Values in MongoDB's order; equal ranks must compare equal. */
static const struct {
    int rank;
    const char *value;
} ordered_values[] = {
    {0, "{\"$minKey\": 1}"},
    {1, "null"},
    {1, "{\"$undefined\": true}"},
    {2, DBL(NaN)},
    {3, DBL(-Infinity)},
    {4, LONG(-9223372036854775808)},
    {4, DBL(-9223372036854775808)},
    {5, LONG(-9223372036854775807)},
    {6, "-1.5"},
    {7, "-1"},
    {7, LONG(-1)},
    {7, "-1.0"},
    {8, DBL(-0.0)},
    {8, "0"},
    {8, "0.0"},
    {9, "0.5"},
    {10, "1"},
    {10, LONG(1)},
    {10, "1.0"},
    {10, "{\"$numberDecimal\": \"1\"}"},
    {11, LONG(9007199254740992)},
    {11, "9007199254740992.0"},
    {12, LONG(9007199254740993)},
    {13, LONG(9007199254740994)},
    {13, "9007199254740994.0"},
    {14, LONG(9223372036854775806)},
    {15, LONG(9223372036854775807)},
    {16, DBL(9223372036854775808)},
    {17, DBL(Infinity)},
    {18, "\"\""},
    {19, "\"A\""},
    {20, "\"a\""},
    {20, "{\"$symbol\": \"a\"}"},
    {21, "\"a\\u0000\""},
    {22, "\"a\\u0000\\u0000\""},
    {23, "\"a\\u0000b\""},
    {24, "\"a\\u0001\""},
    {25, "\"ab\""},
    {26, "\"b\""},
    {27, "{}"},
    {28, "{\"a\": null}"},
    {29, "{\"b\": null}"},
    {30, "{\"a\": 1}"},
    {30, "{\"a\": 1.0}"},
    {31, "{\"a\": 1, \"b\": 1}"},
    {32, "{\"a\": 2}"},
    {33, "{\"b\": 2}"},
    {34, "{\"a\": \"x\"}"},
    {35, "{\"a\": {\"b\": 1}}"},
    {36, "[]"},
    {37, "[null]"},
    {38, "[1]"},
    {38, "[" LONG(1) "]"},
    {39, "[1, 1]"},
    {40, "[2]"},
    {41, "[\"a\"]"},
    {42, "[[]]"},
    {43, "{\"$binary\": {\"base64\": \"AA==\", \"subType\": \"00\"}}"},
    {44, "{\"$binary\": {\"base64\": \"AQ==\", \"subType\": \"00\"}}"},
    {45, "{\"$binary\": {\"base64\": \"AA==\", \"subType\": \"05\"}}"},
    {46, "{\"$binary\": {\"base64\": \"AAA=\", \"subType\": \"00\"}}"},
    {47, "{\"$oid\": \"000000000000000000000001\"}"},
    {48, "{\"$oid\": \"000000000000000000000002\"}"},
    {49, "false"},
    {50, "true"},
    {51, DATE(-1)},
    {52, DATE(0)},
    {53, DATE(1700000000000)},
    {54, "{\"$timestamp\": {\"t\": 1, \"i\": 2}}"},
    {55, "{\"$timestamp\": {\"t\": 2, \"i\": 1}}"},
    {56, "{\"$regularExpression\": {\"pattern\": \"a\", \"options\": \"\"}}"},
    {57, "{\"$regularExpression\": {\"pattern\": \"a\", \"options\": \"i\"}}"},
    {58, "{\"$regularExpression\": {\"pattern\": \"b\", \"options\": \"\"}}"},
    {59, "{\"$code\": \"x\"}"},
    {60, "{\"$maxKey\": 1}"},
};

#define N_VALUES COUNT(ordered_values)

/* One document {"v": value} per row of ordered_values. */
static bson_t *value_docs[N_VALUES];

static int setup_values(void **state)
{
    char text[256];
    for (size_t i = 0; i < N_VALUES; i++) {
        snprintf(text, sizeof text, "{\"v\": %s}", ordered_values[i].value);
        value_docs[i] = json(text);
    }
    return 0;
}

static int teardown_values(void **state)
{
    for (size_t i = 0; i < N_VALUES; i++)
        bson_destroy(value_docs[i]);
    return 0;
}

static bson_iter_t value_iter(size_t i)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, value_docs[i], "v"));
    return it;
}

static void test_value_compare_follows_canonical_type_order(void **state)
{
    for (size_t i = 0; i < N_VALUES; i++) {
        for (size_t j = 0; j < N_VALUES; j++) {
            bson_iter_t a = value_iter(i), b = value_iter(j);
            int want = sign(ordered_values[i].rank - ordered_values[j].rank);
            int got = sign(query_value_compare(&a, &b));
            if (got != want)
                fail_msg("compare(%s, %s) = %d, expected %d", ordered_values[i].value,
                         ordered_values[j].value, got, want);
        }
    }
}

static void single_key(size_t i, int32_t direction, persistor_buffer *out)
{
    persistor_index_key k = {"v", direction};
    persistor_index_spec spec = {"v", &k, 1, 0};
    assert_int_equal(query_index_key(&spec, bson_get_data(value_docs[i]), value_docs[i]->len, out),
                     PERSISTOR_OK);
}

static void test_index_key_order_agrees_with_compare(void **state)
{
    persistor_buffer ka = {0}, kb = {0};
    for (int dir = 1; dir >= -1; dir -= 2) {
        for (size_t i = 0; i < N_VALUES; i++) {
            single_key(i, dir, &ka);
            for (size_t j = 0; j < N_VALUES; j++) {
                single_key(j, dir, &kb);
                int want = dir * sign(ordered_values[i].rank - ordered_values[j].rank);
                int got = memcmp_sign(&ka, &kb);
                if (got != want)
                    fail_msg("key order of %s vs %s (direction %d) is %d, expected %d",
                             ordered_values[i].value, ordered_values[j].value, dir, got, want);
                if (want == 0 && ka.len != kb.len)
                    fail_msg("equal values %s and %s have keys of different length",
                             ordered_values[i].value, ordered_values[j].value);
            }
        }
    }
    buffer_free(&ka);
    buffer_free(&kb);
}

static void key_of(const char *doc_json, const persistor_index_spec *spec, persistor_buffer *out)
{
    bson_t *doc = json(doc_json);
    assert_int_equal(query_index_key(spec, bson_get_data(doc), doc->len, out), PERSISTOR_OK);
    bson_destroy(doc);
}

static bool same_key(const persistor_buffer *a, const persistor_buffer *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

static void test_int_long_double_share_one_key(void **state)
{
    persistor_index_key k = {"n", 1};
    persistor_index_spec spec = {"n_1", &k, 1, 0};
    persistor_buffer i32 = {0}, i64 = {0}, dbl = {0}, big = {0}, bigd = {0};
    key_of("{\"n\": 1}", &spec, &i32);
    key_of("{\"n\": " LONG(1) "}", &spec, &i64);
    key_of("{\"n\": 1.0}", &spec, &dbl);
    assert_true(same_key(&i32, &i64));
    assert_true(same_key(&i32, &dbl));
    key_of("{\"n\": " LONG(9007199254740993) "}", &spec, &big);
    key_of("{\"n\": 9007199254740992.0}", &spec, &bigd);
    assert_false(same_key(&big, &bigd));
    assert_true(memcmp_sign(&bigd, &big) < 0);
    buffer_free(&i32);
    buffer_free(&i64);
    buffer_free(&dbl);
    buffer_free(&big);
    buffer_free(&bigd);
}

static void test_index_key_missing_field_is_null(void **state)
{
    persistor_index_key k[] = {{"a.b", 1}, {"c", -1}};
    persistor_index_spec spec = {"ab_1_c_-1", k, 2, 0};
    persistor_buffer missing = {0}, null = {0}, through_array = {0}, present = {0};
    key_of("{\"x\": 1}", &spec, &missing);
    key_of("{\"a\": {\"b\": null}, \"c\": null}", &spec, &null);
    key_of("{\"a\": [{\"b\": 1}], \"c\": null}", &spec, &through_array);
    key_of("{\"a\": {\"b\": 1}, \"c\": null}", &spec, &present);
    assert_true(same_key(&missing, &null));
    assert_true(same_key(&missing, &through_array)); /* no multikey: see query.c */
    assert_false(same_key(&missing, &present));
    buffer_free(&missing);
    buffer_free(&null);
    buffer_free(&through_array);
    buffer_free(&present);
}

static void test_index_key_replaces_buffer_content_and_indexes_arrays(void **state)
{
    persistor_index_key k = {"a.1", 1};
    persistor_index_spec spec = {"a1", &k, 1, 0};
    persistor_buffer key = {0}, expect = {0};
    assert_int_equal(buffer_set(&key, "junk-junk-junk", 14), PERSISTOR_OK);
    key_of("{\"a\": [5, \"x\"]}", &spec, &key);
    key_of("{\"a\": {\"1\": \"x\"}}", &spec, &expect);
    assert_true(same_key(&key, &expect));
    buffer_free(&key);
    buffer_free(&expect);
}

/* Compound keys with mixed directions order documents exactly like a
 * sorter with the same specification (scalar values: no array min/max). */
static void test_compound_keys_with_mixed_directions_order_like_sort(void **state)
{
    static const size_t picks[] = {0, 1, 3, 6, 10, 12, 18, 21, 22, 26, 33, 37, 42, 59, 63, 66};
    enum { N = COUNT(picks) };
    persistor_index_key k[] = {{"a", 1}, {"b", -1}};
    persistor_index_spec spec = {"a_1_b_-1", k, 2, 0};
    bson_t *sort_spec = json("{\"a\": 1, \"b\": -1}");
    persistor_sorter *s = NULL;
    assert_int_equal(query_sorter_new(bson_get_data(sort_spec), sort_spec->len, &s, NULL),
                     PERSISTOR_OK);
    bson_t docs[N * N];
    persistor_buffer keys[N * N];
    memset(keys, 0, sizeof keys);
    for (size_t i = 0; i < N; i++) {
        for (size_t j = 0; j < N; j++) {
            bson_t *d = &docs[i * N + j];
            bson_iter_t a = value_iter(picks[i]), b = value_iter(picks[j]);
            bson_init(d);
            bson_append_iter(d, "a", 1, &a);
            bson_append_iter(d, "b", 1, &b);
            assert_int_equal(query_index_key(&spec, bson_get_data(d), d->len, &keys[i * N + j]),
                             PERSISTOR_OK);
        }
    }
    for (size_t x = 0; x < N * N; x++) {
        for (size_t y = 0; y < N * N; y++) {
            int want = sign(query_sorter_compare(s, bson_get_data(&docs[x]), docs[x].len,
                                                 bson_get_data(&docs[y]), docs[y].len));
            if (memcmp_sign(&keys[x], &keys[y]) != want)
                fail_msg("compound key order of docs %zu and %zu disagrees with sort", x, y);
        }
    }
    for (size_t x = 0; x < N * N; x++) {
        bson_destroy(&docs[x]);
        buffer_free(&keys[x]);
    }
    query_sorter_free(s);
    bson_destroy(sort_spec);
}

static void test_descending_string_keys_put_longer_prefix_first(void **state)
{
    persistor_index_key k[] = {{"s", -1}, {"t", 1}};
    persistor_index_spec spec = {"s_-1_t_1", k, 2, 0};
    persistor_buffer a = {0}, ab = {0}, a_nul = {0};
    key_of("{\"s\": \"a\", \"t\": 9}", &spec, &a);
    key_of("{\"s\": \"ab\", \"t\": 1}", &spec, &ab);
    key_of("{\"s\": \"a\\u0000\", \"t\": 1}", &spec, &a_nul);
    assert_true(memcmp_sign(&ab, &a) < 0);
    assert_true(memcmp_sign(&a_nul, &a) < 0);
    assert_true(memcmp_sign(&ab, &a_nul) < 0);
    buffer_free(&a);
    buffer_free(&ab);
    buffer_free(&a_nul);
}

/* ------------------------------------------------------------------------
 * TTL times
 * --------------------------------------------------------------------- */

static const struct {
    const char *name;
    const char *doc;
    const char *path;
    int32_t rc;
    int64_t ms;
} time_cases[] = {
    {"date_gives_its_ms", "{\"createdAt\": " DATE(1700000000000) "}", "createdAt", PERSISTOR_OK,
     1700000000000},
    {"negative_date", "{\"t\": " DATE(-1000) "}", "t", PERSISTOR_OK, -1000},
    /* MongoDB's TTL ignores numbers: a number is not a time. */
    {"int_is_not_a_time", "{\"t\": 42}", "t", PERSISTOR_NOT_FOUND, 0},
    {"long_is_not_a_time", "{\"t\": " LONG(1700000000000) "}", "t", PERSISTOR_NOT_FOUND, 0},
    {"double_is_not_a_time", "{\"t\": 1500.75}", "t", PERSISTOR_NOT_FOUND, 0},
    {"array_expires_by_its_earliest_date",
     "{\"t\": [" DATE(9000) ", 3, " DATE(4000) ", " DATE(7000) "]}", "t", PERSISTOR_OK, 4000},
    {"array_without_dates_is_not_a_time", "{\"t\": [1, \"x\"]}", "t", PERSISTOR_NOT_FOUND, 0},
    {"dotted_path", "{\"meta\": {\"at\": " DATE(5) "}}", "meta.at", PERSISTOR_OK, 5},
    {"string_is_not_a_time", "{\"t\": \"2024-01-01\"}", "t", PERSISTOR_NOT_FOUND, 0},
    {"null_is_not_a_time", "{\"t\": null}", "t", PERSISTOR_NOT_FOUND, 0},
    {"missing_is_not_found", "{\"u\": 1}", "t", PERSISTOR_NOT_FOUND, 0},
    {"nan_is_not_a_time", "{\"t\": " DBL(NaN) "}", "t", PERSISTOR_NOT_FOUND, 0},
    {"missing_parent_is_not_found", "{\"meta\": 1}", "meta.at", PERSISTOR_NOT_FOUND, 0},
};

static void test_doc_time_ms_reads_dates_as_mongodb_ttl_does(void **state)
{
    for (size_t i = 0; i < COUNT(time_cases); i++) {
        bson_t *doc = json(time_cases[i].doc);
        int64_t ms = -7;
        int32_t rc = query_doc_time_ms(bson_get_data(doc), doc->len, time_cases[i].path, &ms);
        if (rc != time_cases[i].rc)
            fail_msg("%s: rc %d, expected %d", time_cases[i].name, rc, time_cases[i].rc);
        if (rc == PERSISTOR_OK && ms != time_cases[i].ms)
            fail_msg("%s: %lld ms, expected %lld", time_cases[i].name, (long long)ms,
                     (long long)time_cases[i].ms);
        bson_destroy(doc);
    }
    int64_t ms;
    assert_int_equal(query_doc_time_ms(NULL, 0, "t", &ms), PERSISTOR_NOT_FOUND);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_equality_matches_like_mongodb),
        cmocka_unit_test(test_null_matches_null_and_missing),
        cmocka_unit_test(test_comparisons_bracket_by_type),
        cmocka_unit_test(test_dates_compare_only_with_dates),
        cmocka_unit_test(test_in_nin_and_exists),
        cmocka_unit_test(test_dotted_paths_traverse_arrays),
        cmocka_unit_test(test_and_or_nest),
        cmocka_unit_test(test_unsupported_and_malformed_filters_name_the_culprit),
        cmocka_unit_test(test_unsupported_operator_message_is_exact),
        cmocka_unit_test(test_deeply_nested_filters_are_refused),
        cmocka_unit_test(test_malformed_filter_bytes_are_invalid),
        cmocka_unit_test(test_null_or_empty_filter_matches_all),
        cmocka_unit_test(test_damaged_document_never_matches_and_is_read_within_bounds),
        cmocka_unit_test(test_deep_documents_are_safe),
        cmocka_unit_test(test_sort_orders_like_mongodb),
        cmocka_unit_test(test_sort_direction_must_be_one_or_minus_one),
        cmocka_unit_test(test_empty_sort_leaves_everything_equal),
        cmocka_unit_test(test_value_compare_follows_canonical_type_order),
        cmocka_unit_test(test_index_key_order_agrees_with_compare),
        cmocka_unit_test(test_int_long_double_share_one_key),
        cmocka_unit_test(test_index_key_missing_field_is_null),
        cmocka_unit_test(test_index_key_replaces_buffer_content_and_indexes_arrays),
        cmocka_unit_test(test_compound_keys_with_mixed_directions_order_like_sort),
        cmocka_unit_test(test_descending_string_keys_put_longer_prefix_first),
        cmocka_unit_test(test_doc_time_ms_reads_dates_as_mongodb_ttl_does),
    };
    return cmocka_run_group_tests(tests, setup_values, teardown_values);
}
