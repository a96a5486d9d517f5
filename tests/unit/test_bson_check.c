/*
 * test_bson_check.c — the one check every application document passes:
 * structure, UTF-8 of keys and strings, no empty keys, bounded nesting,
 * with the path at fault in the message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "bson_check.h"

static void expect_refused(const bson_t *doc, const char *message)
{
    persistor_error err = {0};
    assert_int_equal(bson_check_document(doc, "doc", &err), PERSISTOR_E_INVALID);
    if (strcmp(err.message, message) != 0)
        fail_msg("got \"%s\", expected \"%s\"", err.message, message);
}

static void test_valid_nested_document_passes(void **state)
{
    bson_t *doc = BCON_NEW("a", "{", "b", "[", BCON_UTF8("x"), "{", "c", BCON_INT32(1), "}", "]",
                           "}", "s", BCON_UTF8("é€😀"));
    assert_int_equal(bson_check_document(doc, "doc", NULL), PERSISTOR_OK);
    bson_destroy(doc);
}

static void test_string_with_nul_inside_passes(void **state)
{
    bson_t *doc = bson_new();
    bson_append_utf8(doc, "s", 1, "a\0b", 3);
    assert_int_equal(bson_check_document(doc, "doc", NULL), PERSISTOR_OK);
    bson_destroy(doc);
}

static void test_invalid_utf8_string_value_is_refused_with_its_path(void **state)
{
    bson_t *doc = bson_new(), child;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "outer", &child);
    bson_append_utf8(&child, "inner", 5, "\xff\xfe", 2);
    bson_append_document_end(doc, &child);
    expect_refused(doc, "doc: string is not valid UTF-8 at 'outer.inner'");
    bson_destroy(doc);
}

static void test_invalid_utf8_key_is_refused(void **state)
{
    bson_t *doc = bson_new();
    bson_append_int32(doc, "k\xc3", 2, 1);
    expect_refused(doc, "doc: field name is not valid UTF-8 at 'k\xc3'");
    bson_destroy(doc);
}

static void test_empty_key_is_refused_at_its_parent(void **state)
{
    bson_t *doc = bson_new(), child;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "p", &child);
    bson_append_int32(&child, "", 0, 1);
    bson_append_document_end(doc, &child);
    expect_refused(doc, "doc: empty field name at 'p'");
    bson_destroy(doc);
}

static void test_nesting_over_100_levels_is_refused(void **state)
{
    bson_t *doc = bson_new();
    bson_append_int32(doc, "leaf", 4, 1);
    for (int i = 0; i < 101; i++) {
        bson_t *outer = bson_new();
        BSON_APPEND_DOCUMENT(outer, "n", doc);
        bson_destroy(doc);
        doc = outer;
    }
    persistor_error err = {0};
    assert_int_equal(bson_check_document(doc, "doc", &err), PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "nested more than 100 levels"));
    bson_destroy(doc);
}

static void test_damaged_frame_inside_is_refused(void **state)
{
    bson_t *good = BCON_NEW("a", "{", "b", BCON_UTF8("text"), "}", "c", BCON_INT32(1));
    uint32_t len = good->len;
    uint8_t *bytes = malloc(len);
    /* Byte 7 opens the sub-document's length: make it run past the end. */
    memcpy(bytes, bson_get_data(good), len);
    bytes[7] = 0x70;
    bson_t view;
    persistor_error err = {0};
    if (bson_init_static(&view, bytes, len))
        assert_int_equal(bson_check_document(&view, "doc", &err), PERSISTOR_E_INVALID);
    /* And a string whose length runs past its document. */
    memcpy(bytes, bson_get_data(good), len);
    bytes[14] = 0x70;
    if (bson_init_static(&view, bytes, len))
        assert_int_equal(bson_check_document(&view, "doc", &err), PERSISTOR_E_INVALID);
    free(bytes);
    bson_destroy(good);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_nested_document_passes),
        cmocka_unit_test(test_string_with_nul_inside_passes),
        cmocka_unit_test(test_invalid_utf8_string_value_is_refused_with_its_path),
        cmocka_unit_test(test_invalid_utf8_key_is_refused),
        cmocka_unit_test(test_empty_key_is_refused_at_its_parent),
        cmocka_unit_test(test_nesting_over_100_levels_is_refused),
        cmocka_unit_test(test_damaged_frame_inside_is_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
