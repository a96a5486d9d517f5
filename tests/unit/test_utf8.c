/*
 * test_utf8.c — strict UTF-8: the forms Unicode forbids are refused, and
 * the eight-bytes-at-a-time ASCII path finds a bad byte wherever it is.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <string.h>

#include "utf8.h"

static const struct {
    const char *name;
    const char *bytes;
    size_t len;
    bool valid;
} cases[] = {
    {"empty", "", 0, true},
    {"ascii", "hello", 5, true},
    {"two_byte", "\xc3\xa9", 2, true},
    {"three_byte", "\xe2\x82\xac", 3, true},
    {"four_byte", "\xf0\x9f\x98\x80", 4, true},
    {"last_code_point", "\xf4\x8f\xbf\xbf", 4, true},
    {"overlong_two_byte", "\xc0\xaf", 2, false},
    {"overlong_three_byte", "\xe0\x80\xaf", 3, false},
    {"overlong_four_byte", "\xf0\x80\x80\xaf", 4, false},
    {"surrogate", "\xed\xa0\x80", 3, false},
    {"above_10ffff", "\xf4\x90\x80\x80", 4, false},
    {"lone_continuation", "\x80", 1, false},
    {"cut_sequence", "\xe2\x82", 2, false},
    {"bad_continuation", "\xc3\x28", 2, false},
    {"ff_byte", "\xff", 1, false},
};

static void test_strict_forms_table(void **state)
{
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (utf8_valid(cases[i].bytes, cases[i].len, false) != cases[i].valid)
            fail_msg("%s: expected %s", cases[i].name, cases[i].valid ? "valid" : "invalid");
}

static void test_nul_passes_only_when_allowed(void **state)
{
    assert_true(utf8_valid("a\0b", 3, true));
    assert_false(utf8_valid("a\0b", 3, false));
    /* A NUL inside an eight-byte ASCII word too. */
    assert_true(utf8_valid("abcdefg\0ijklmnop", 16, true));
    assert_false(utf8_valid("abcdefg\0ijklmnop", 16, false));
}

static void test_bad_byte_is_found_at_every_offset_of_long_ascii(void **state)
{
    char text[70];
    for (size_t at = 0; at < sizeof text; at++) {
        memset(text, 'x', sizeof text);
        assert_true(utf8_valid(text, sizeof text, false));
        text[at] = (char)0xff;
        if (utf8_valid(text, sizeof text, false))
            fail_msg("0xff at offset %zu was not found", at);
        text[at] = '\0';
        if (utf8_valid(text, sizeof text, false))
            fail_msg("NUL at offset %zu was not found", at);
    }
}

static void test_multibyte_after_ascii_words_is_decoded(void **state)
{
    const char *text = "0123456789abcdef\xe2\x82\xac" "0123456789\xf0\x9f\x98\x80";
    assert_true(utf8_valid(text, strlen(text), false));
    /* Cut the last sequence: invalid. */
    assert_false(utf8_valid(text, strlen(text) - 1, false));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strict_forms_table),
        cmocka_unit_test(test_nul_passes_only_when_allowed),
        cmocka_unit_test(test_bad_byte_is_found_at_every_offset_of_long_ascii),
        cmocka_unit_test(test_multibyte_after_ascii_words_is_decoded),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
