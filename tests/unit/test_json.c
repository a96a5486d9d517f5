/*
 * test_json.c — json_to_bson and json_from_bson.
 *
 * What is pinned here: the BSON each kind of valid input becomes (checked
 * against documents built by hand, or against libbson's own parser where
 * the two agree), every class of error with its exact "source:line:column"
 * message, number typing at the int32/int64/double boundaries, escapes and
 * UTF-8, the Extended JSON wrappers, the depth limit, and that what
 * json_from_bson prints reads back to the same bytes.
 */
#include <locale.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "json.h"

/* ------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

static int32_t parse_n(const char *text, size_t len, const char *source, bson_t *out,
                       persistor_error *err)
{
    bson_init(out);
    memset(err, 0, sizeof *err);
    return json_to_bson(text, len, source, out, err);
}

/* Parse text that must be valid; the caller destroys *out. */
static void parse_ok(const char *text, bson_t *out)
{
    persistor_error err;
    int32_t rc = parse_n(text, strlen(text), "t.json", out, &err);
    if (rc != PERSISTOR_OK)
        print_error("unexpected error for %s: %s\n", text, err.message);
    assert_int_equal(rc, PERSISTOR_OK);
}

static void assert_bson_equal(const bson_t *got, const bson_t *want)
{
    if (got->len != want->len || memcmp(bson_get_data(got), bson_get_data(want), got->len) != 0) {
        char *g = bson_as_canonical_extended_json(got, NULL);
        char *w = bson_as_canonical_extended_json(want, NULL);
        print_error("got  %s\nwant %s\n", g ? g : "(unprintable)", w ? w : "(unprintable)");
        bson_free(g);
        bson_free(w);
        fail();
    }
}

static void assert_error_n(const char *text, size_t len, const char *source, const char *want)
{
    bson_t out;
    persistor_error err;
    int32_t rc = parse_n(text, len, source, &out, &err);
    if (rc != PERSISTOR_E_INVALID)
        print_error("no error for: %.*s\n", (int)len, text);
    assert_int_equal(rc, PERSISTOR_E_INVALID);
    assert_int_equal(err.code, PERSISTOR_E_INVALID);
    assert_string_equal(err.message, want);
    /* On error the caller is left with an empty, still usable document. */
    assert_int_equal(out.len, 5);
    assert_true(bson_empty(&out));
    assert_true(BSON_APPEND_INT32(&out, "usable", 1));
    bson_destroy(&out);
}

static void assert_error(const char *text, const char *want)
{
    assert_error_n(text, strlen(text), "t.json", want);
}

/* The value of `key` in a parsed one-member document. */
static void parse_one(const char *text, bson_t *doc, bson_iter_t *it)
{
    parse_ok(text, doc);
    assert_true(bson_iter_init_find(it, doc, "v"));
}

/* ------------------------------------------------------------------------
 * Valid input
 * --------------------------------------------------------------------- */

/* Inputs on which our parser and libbson's must produce the same bytes. */
static void test_valid_inputs_match_libbson(void **state)
{
    (void)state;
    static const char *inputs[] = {
        "{}",
        " \t\r\n{ } \n",
        "{\"a\":1}",
        "{\"\":\"empty key\"}",
        "{\"a\":\"b\",\"c\":[1,2,[3,{}]],\"d\":{\"e\":null,\"f\":true,\"g\":false}}",
        "{\"a\" : [ ] , \"b\" : { } }",
        "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
        "{\"u\":\"\\u00e9\\u4E2D\\ud83d\\ude00\\u0041\"}",
        "{\"u\":\"\xc3\xa9\xe4\xb8\xad\xf0\x9f\x98\x80\"}",
        "{\"k\\n\\u00e9\":1}",
        ("{\"n\":[0,-1,2147483647,-2147483648,2147483648,-2147483649,"
         "9223372036854775807,-9223372036854775808]}"),
        "{\"d\":[1.5,-0.25,1e3,1E-3,2.5e+2,0.0,1e308]}",
        "{\"deep\":{\"a\":{\"b\":{\"c\":[[[{\"d\":\"e\"}]]]}}}}",
    };

    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        bson_error_t berr;
        bson_t got;
        bson_t *want = bson_new_from_json((const uint8_t *)inputs[i], -1, &berr);
        if (want == NULL)
            print_error("libbson refused %s: %s\n", inputs[i], berr.message);
        assert_non_null(want);
        parse_ok(inputs[i], &got);
        assert_bson_equal(&got, want);
        bson_destroy(&got);
        bson_destroy(want);
    }
}

static void test_document_built_by_hand(void **state)
{
    (void)state;
    bson_t got;
    bson_t want = BSON_INITIALIZER;
    bson_t child;
    bson_t arr;

    parse_ok("{\"id\":\"x1\",\"n\":7,\"ok\":true,\"none\":null,"
             "\"sub\":{\"k\":-2.5},\"list\":[\"a\",1,false]}",
             &got);
    BSON_APPEND_UTF8(&want, "id", "x1");
    BSON_APPEND_INT32(&want, "n", 7);
    BSON_APPEND_BOOL(&want, "ok", true);
    BSON_APPEND_NULL(&want, "none");
    BSON_APPEND_DOCUMENT_BEGIN(&want, "sub", &child);
    BSON_APPEND_DOUBLE(&child, "k", -2.5);
    bson_append_document_end(&want, &child);
    BSON_APPEND_ARRAY_BEGIN(&want, "list", &arr);
    BSON_APPEND_UTF8(&arr, "0", "a");
    BSON_APPEND_INT32(&arr, "1", 1);
    BSON_APPEND_BOOL(&arr, "2", false);
    bson_append_array_end(&want, &arr);
    assert_bson_equal(&got, &want);
    bson_destroy(&got);
    bson_destroy(&want);
}

static void test_nul_inside_string_value_is_kept(void **state)
{
    (void)state;
    bson_t doc;
    bson_iter_t it;
    uint32_t len;

    parse_one("{\"v\":\"x\\u0000y\"}", &doc, &it);
    const char *s = bson_iter_utf8(&it, &len);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "x\0y", 3);
    bson_destroy(&doc);
}

static void test_input_need_not_be_nul_terminated(void **state)
{
    (void)state;
    const char text[] = "{\"a\":12}garbage";
    bson_t doc;
    persistor_error err;
    bson_iter_t it;

    assert_int_equal(parse_n(text, 8, "t.json", &doc, &err), PERSISTOR_OK);
    assert_true(bson_iter_init_find(&it, &doc, "a"));
    assert_int_equal(bson_iter_int32(&it), 12);
    bson_destroy(&doc);
}

static void test_many_keys_and_elements(void **state)
{
    (void)state;
    enum { N = 20000 };
    size_t cap = (size_t)N * 24 + 64;
    char *text = malloc(cap);
    size_t o = 0;
    bson_t doc;
    bson_iter_t it;

    o += (size_t)snprintf(text + o, cap - o, "{\"arr\":[");
    for (int i = 0; i < N; i++)
        o += (size_t)snprintf(text + o, cap - o, "%s%d", i ? "," : "", i);
    o += (size_t)snprintf(text + o, cap - o, "]");
    for (int i = 0; i < N; i++)
        o += (size_t)snprintf(text + o, cap - o, ",\"k%d\":%d", i, i);
    snprintf(text + o, cap - o, "}");
    parse_ok(text, &doc);
    assert_int_equal(bson_count_keys(&doc), N + 1);
    assert_true(bson_iter_init_find(&it, &doc, "k19999"));
    assert_int_equal(bson_iter_int32(&it), 19999);
    assert_true(bson_iter_init_find(&it, &doc, "arr"));
    bson_destroy(&doc);

    /* The same key again at the very end is still caught. */
    o = strlen(text) - 1;
    snprintf(text + o, cap - o, ",\"k123\":0}");
    bson_init(&doc);
    persistor_error err;
    assert_int_equal(json_to_bson(text, strlen(text), "big.json", &doc, &err),
                     PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, ": duplicate key \"k123\""));
    bson_destroy(&doc);
    free(text);
}

/* ------------------------------------------------------------------------
 * Numbers
 * --------------------------------------------------------------------- */

static void test_integer_typing_at_boundaries(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        bson_type_t type;
        int64_t value;
    } cases[] = {
        {"0", BSON_TYPE_INT32, 0},
        {"-0", BSON_TYPE_INT32, 0},
        {"2147483647", BSON_TYPE_INT32, INT32_MAX},
        {"-2147483648", BSON_TYPE_INT32, INT32_MIN},
        {"2147483648", BSON_TYPE_INT64, (int64_t)INT32_MAX + 1},
        {"-2147483649", BSON_TYPE_INT64, (int64_t)INT32_MIN - 1},
        {"9223372036854775807", BSON_TYPE_INT64, INT64_MAX},
        {"-9223372036854775808", BSON_TYPE_INT64, INT64_MIN},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64];
        bson_t doc;
        bson_iter_t it;
        snprintf(text, sizeof text, "{\"v\":%s}", cases[i].text);
        parse_one(text, &doc, &it);
        assert_int_equal(bson_iter_type(&it), cases[i].type);
        assert_true(bson_iter_as_int64(&it) == cases[i].value);
        bson_destroy(&doc);
    }
}

static void test_doubles(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        double value;
    } cases[] = {
        {"9223372036854775808", 9223372036854775808.0},
        {"-9223372036854775809", -9223372036854775809.0},
        {"123456789012345678901234567890", 123456789012345678901234567890.0},
        {"1.0", 1.0},
        {"-0.5", -0.5},
        {"1e2", 100.0},
        {"1E+2", 100.0},
        {"25e-1", 2.5},
        {"0.1", 0.1},
        {"1.7976931348623157e308", 1.7976931348623157e308},
        {"1e-400", 0.0}, /* underflow rounds to zero, it is not an error */
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char text[64];
        bson_t doc;
        bson_iter_t it;
        snprintf(text, sizeof text, "{\"v\":%s}", cases[i].text);
        parse_one(text, &doc, &it);
        assert_int_equal(bson_iter_type(&it), BSON_TYPE_DOUBLE);
        assert_true(bson_iter_double(&it) == cases[i].value);
        bson_destroy(&doc);
    }
}

static void test_negative_zero_double_keeps_its_sign(void **state)
{
    (void)state;
    bson_t doc;
    bson_iter_t it;

    parse_one("{\"v\":-0.0}", &doc, &it);
    assert_true(bson_iter_double(&it) == 0.0 && signbit(bson_iter_double(&it)));
    bson_destroy(&doc);
}

/* strtod follows LC_NUMERIC; a locale with a decimal comma must not change
 * what "2.5" means.  Skipped where no such locale is installed. */
static void test_numbers_ignore_the_decimal_comma_locale(void **state)
{
    (void)state;
    static const char *names[] = {"de_DE.UTF-8", "de_DE.utf8", "fr_FR.UTF-8", "fr_FR.utf8"};
    const char *set = NULL;

    for (size_t i = 0; i < sizeof names / sizeof names[0] && set == NULL; i++)
        set = setlocale(LC_NUMERIC, names[i]);
    if (set == NULL || strcmp(localeconv()->decimal_point, ",") != 0) {
        setlocale(LC_NUMERIC, "C");
        skip();
    }
    bson_t doc;
    bson_iter_t it;
    parse_one("{\"v\":2.5e1}", &doc, &it);
    double v = bson_iter_double(&it);
    bson_destroy(&doc);
    parse_one("{\"v\":{\"$numberDouble\":\"0.25\"}}", &doc, &it);
    double w = bson_iter_double(&it);
    bson_destroy(&doc);
    setlocale(LC_NUMERIC, "C");
    assert_true(v == 25.0);
    assert_true(w == 0.25);
}

static void test_number_errors(void **state)
{
    (void)state;
    assert_error("{\"a\":01}", "t.json:1:7: leading zeros are not allowed in numbers");
    assert_error("{\"a\":-01}", "t.json:1:8: leading zeros are not allowed in numbers");
    assert_error("{\"a\":00.5}", "t.json:1:7: leading zeros are not allowed in numbers");
    assert_error("{\"a\":+1}",
                 "t.json:1:6: expected a value (object, array, string, number, true, false or "
                 "null)");
    assert_error("{\"a\":.5}",
                 "t.json:1:6: expected a value (object, array, string, number, true, false or "
                 "null)");
    assert_error("{\"a\":1.}", "t.json:1:8: expected a digit after the decimal point");
    assert_error("{\"a\":1.e5}", "t.json:1:8: expected a digit after the decimal point");
    assert_error("{\"a\":1e}", "t.json:1:8: expected a digit in the exponent");
    assert_error("{\"a\":1e+}", "t.json:1:9: expected a digit in the exponent");
    assert_error("{\"a\":-}", "t.json:1:7: expected a digit after '-'");
    assert_error("{\"a\":-x}", "t.json:1:7: expected a digit after '-'");
    assert_error("{\"a\":1e400}", "t.json:1:6: number 1e400 is out of range for a double");
    assert_error("{\"a\":-1e400}", "t.json:1:6: number -1e400 is out of range for a double");
    assert_error("{\"a\":0x10}", "t.json:1:7: expected ',' or '}' after an object member");
    assert_error("{\"a\":NaN}",
                 "t.json:1:6: expected a value (object, array, string, number, true, false or "
                 "null)");
    assert_error("{\"a\":Infinity}",
                 "t.json:1:6: expected a value (object, array, string, number, true, false or "
                 "null)");
}

/* ------------------------------------------------------------------------
 * Structure errors, with their positions
 * --------------------------------------------------------------------- */

static void test_top_level_must_be_one_object(void **state)
{
    (void)state;
    assert_error("", "t.json:1:1: expected a JSON object at the top level");
    assert_error("   \n  ", "t.json:2:3: expected a JSON object at the top level");
    assert_error_n("[]", 2, "-", "-:1:1: expected a JSON object at the top level");
    assert_error("  \"text\"", "t.json:1:3: expected a JSON object at the top level");
    assert_error("42", "t.json:1:1: expected a JSON object at the top level");
    assert_error("\xEF\xBB\xBF{}", "t.json:1:1: expected a JSON object at the top level");
    assert_error("{\"a\":1} x", "t.json:1:9: trailing characters after the JSON value");
    assert_error("{}{}", "t.json:1:3: trailing characters after the JSON value");
    assert_error("{}\n\n  ,", "t.json:3:3: trailing characters after the JSON value");
    assert_error_n("{\"a\":1}\0", 8, "t.json",
                   "t.json:1:8: trailing characters after the JSON value");
}

static void test_object_syntax_errors(void **state)
{
    (void)state;
    assert_error("{", "t.json:1:2: expected a string key or '}'");
    assert_error("{1:2}", "t.json:1:2: expected a string key or '}'");
    assert_error("{'a':1}", "t.json:1:2: expected a string key or '}'");
    assert_error("{\"a\" 1}", "t.json:1:6: expected ':' after an object key");
    assert_error("{\"a\"", "t.json:1:5: expected ':' after an object key");
    assert_error("{\"a\":}",
                 "t.json:1:6: expected a value (object, array, string, number, true, false or "
                 "null)");
    assert_error("{\"a\":1 \"b\":2}", "t.json:1:8: expected ',' or '}' after an object member");
    assert_error("{\"a\":1", "t.json:1:7: expected ',' or '}' after an object member");
    assert_error("{\"a\":1,}", "t.json:1:8: trailing comma before '}'");
    assert_error("{\"a\":1,2}", "t.json:1:8: expected a string key after ','");
    assert_error("{\"a\":1,,}", "t.json:1:8: expected a string key after ','");
    assert_error("{\"a\":tru}", "t.json:1:6: invalid literal: expected true, false or null");
    assert_error("{\"a\":True}",
                 "t.json:1:6: expected a value (object, array, string, number, true, false or "
                 "null)");
    assert_error("{\"a\":nul", "t.json:1:6: invalid literal: expected true, false or null");
    assert_error("{\"a\":truex}", "t.json:1:10: expected ',' or '}' after an object member");
}

static void test_array_syntax_errors(void **state)
{
    (void)state;
    assert_error("{\"a\":[1,]}", "t.json:1:9: trailing comma before ']'");
    assert_error("{\"a\":[1 2]}", "t.json:1:9: expected ',' or ']' after an array element");
    assert_error("{\"a\":[1}", "t.json:1:8: expected ',' or ']' after an array element");
    assert_error("{\"a\":[,1]}",
                 "t.json:1:7: expected a value (object, array, string, number, true, false or "
                 "null)");
    assert_error("{\"a\":[", "t.json:1:7: expected a value (object, array, string, number, "
                             "true, false or null)");
}

/* The message format promised in json.h, on a realistic multi-line file. */
static void test_error_position_counts_lines_and_columns(void **state)
{
    (void)state;
    assert_error_n("{\n  \"state\": {\n    \"step\": 1   \"x\": 2\n  }\n}", 44, "snap.json",
                   "snap.json:3:17: expected ',' or '}' after an object member");
    assert_error_n("{\r\n\"a\":\r\n  \"\\q\"}", 16, "x.json",
                   "x.json:3:4: invalid escape \\q in string");
    /* Columns count bytes, so a two-byte character counts twice. */
    assert_error("{\"\xc3\xa9\":1,}", "t.json:1:9: trailing comma before '}'");
}

static void test_duplicate_keys(void **state)
{
    (void)state;
    bson_t doc;

    assert_error("{\"state\":1,\"state\":2}", "t.json:1:12: duplicate key \"state\"");
    assert_error("{\"a\":{\"x\":1,\"y\":2,\"x\":3}}", "t.json:1:19: duplicate key \"x\"");
    /* Escapes are decoded before keys are compared. */
    assert_error("{\"ab\":1,\"a\\u0062\":2}", "t.json:1:9: duplicate key \"ab\"");
    assert_error("{\"a\":{\"$date\":1,\"$date\":2}}", "t.json:1:17: duplicate key \"$date\"");
    assert_error("{\"a\\nb\":1,\"a\\nb\":1}", "t.json:1:11: duplicate key \"a\\x0Ab\"");
    /* The same key in sibling or nested objects is fine. */
    parse_ok("{\"a\":{\"x\":1},\"b\":{\"x\":1},\"x\":{\"x\":{\"x\":1}},\"l\":[{\"x\":1},{\"x\":2}]}",
             &doc);
    bson_destroy(&doc);
}

static void test_long_duplicate_key_is_cut_in_the_message(void **state)
{
    (void)state;
    char key[201];
    char text[512];
    char want[256];

    memset(key, 'k', 200);
    key[200] = '\0';
    snprintf(text, sizeof text, "{\"%s\":1,\"%s\":2}", key, key);
    snprintf(want, sizeof want, "t.json:1:207: duplicate key \"%.64s...\"", key);
    assert_error(text, want);
}

static void test_string_errors(void **state)
{
    (void)state;
    assert_error("{\"a\":\"abc", "t.json:1:6: unterminated string");
    assert_error("{\"a\":\"abc\\", "t.json:1:6: unterminated string");
    assert_error("{\"abc", "t.json:1:2: unterminated string");
    assert_error("{\"a\":\"x\\q\"}", "t.json:1:8: invalid escape \\q in string");
    assert_error("{\"a\":\"\\x41\"}", "t.json:1:7: invalid escape \\x in string");
    assert_error("{\"a\":\"\\'\"}", "t.json:1:7: invalid escape \\' in string");
    assert_error("{\"a\":\"\\\x01\"}",
                 "t.json:1:7: invalid escape: byte 0x01 after '\\' in string");
    assert_error("{\"a\":\"x\ny\"}",
                 "t.json:1:8: control character 0x0A in string must be escaped");
    assert_error("{\"a\":\"\t\"}", "t.json:1:7: control character 0x09 in string must be escaped");
    assert_error_n("{\"a\":\"x\0\"}", 10, "t.json",
                   "t.json:1:8: control character 0x00 in string must be escaped");
}

static void test_unicode_escapes(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        const char *want;
    } cases[] = {
        {"{\"v\":\"\\u0041\\u00e9\\u00E9\"}", "A\xc3\xa9\xc3\xa9"},
        {"{\"v\":\"\\u20ac\"}", "\xe2\x82\xac"},
        {"{\"v\":\"\\uffff\"}", "\xef\xbf\xbf"},
        {"{\"v\":\"\\ud800\\udc00\"}", "\xf0\x90\x80\x80"},   /* U+10000 */
        {"{\"v\":\"\\uD83D\\uDE00!\"}", "\xf0\x9f\x98\x80!"}, /* U+1F600 */
        {"{\"v\":\"\\udbff\\udfff\"}", "\xf4\x8f\xbf\xbf"},   /* U+10FFFF */
        {"{\"v\":\"\\u007f\\u0080\\u07ff\\u0800\"}", "\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80"},
    };

    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bson_t doc;
        bson_iter_t it;
        parse_one(cases[i].text, &doc, &it);
        assert_string_equal(bson_iter_utf8(&it, NULL), cases[i].want);
        bson_destroy(&doc);
    }
}

static void test_bad_unicode_escapes(void **state)
{
    (void)state;
    assert_error("{\"a\":\"\\ud800\"}", "t.json:1:7: unpaired surrogate \\uD800 in string");
    assert_error("{\"a\":\"\\udbff x\"}", "t.json:1:7: unpaired surrogate \\uDBFF in string");
    assert_error("{\"a\":\"\\udc00\"}", "t.json:1:7: unpaired surrogate \\uDC00 in string");
    assert_error("{\"a\":\"\\ud800\\u0041\"}",
                 "t.json:1:7: unpaired surrogate \\uD800 in string");
    assert_error("{\"a\":\"\\ud800\\ud800\"}",
                 "t.json:1:7: unpaired surrogate \\uD800 in string");
    assert_error("{\"a\":\"x\\udfff\\ud800\"}",
                 "t.json:1:8: unpaired surrogate \\uDFFF in string");
    assert_error("{\"a\":\"\\u12G4\"}", "t.json:1:7: invalid \\u escape: expected four hex digits");
    assert_error("{\"a\":\"\\u12\"}", "t.json:1:7: invalid \\u escape: expected four hex digits");
    assert_error("{\"a\":\"\\u12", "t.json:1:7: invalid \\u escape: expected four hex digits");
    assert_error("{\"a\\u0000b\":1}", "t.json:1:4: \\u0000 is not allowed in a key");
}

static void test_invalid_utf8(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\x80",             /* lone continuation byte */
        "\xbf",             /* lone continuation byte */
        "\xc3",             /* truncated two-byte sequence */
        "\xc3(",            /* lead byte followed by ASCII */
        "\xc0\xaf",         /* overlong '/' */
        "\xc1\xbf",         /* overlong */
        "\xe0\x80\xaf",     /* overlong three-byte */
        "\xe0\x9f\xbf",     /* overlong three-byte */
        "\xed\xa0\x80",     /* UTF-16 surrogate D800 encoded */
        "\xed\xbf\xbf",     /* UTF-16 surrogate DFFF encoded */
        "\xf0\x80\x80\xaf", /* overlong four-byte */
        "\xf0\x8f\xbf\xbf", /* overlong four-byte */
        "\xf4\x90\x80\x80", /* above U+10FFFF */
        "\xf5\x80\x80\x80", /* invalid lead byte */
        "\xfe",
        "\xff",
        "\xe2\x82",         /* truncated three-byte */
        "\xf0\x9f\x98",     /* truncated four-byte */
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[32];
        snprintf(text, sizeof text, "{\"a\":\"%s\"}", bad[i]);
        assert_error(text, "t.json:1:7: invalid UTF-8 in string");
        snprintf(text, sizeof text, "{\"x%s\":1}", bad[i]);
        assert_error(text, "t.json:1:4: invalid UTF-8 in string");
    }
    /* Outside strings a non-ASCII byte is just unexpected. */
    assert_error("{\"a\":\xc3\xa9}",
                 "t.json:1:6: expected a value (object, array, string, number, true, false or "
                 "null)");
}

static void test_valid_utf8_edges(void **state)
{
    (void)state;
    static const char *good[] = {
        "\xc2\x80", "\xdf\xbf", "\xe0\xa0\x80", "\xed\x9f\xbf", "\xee\x80\x80",
        "\xef\xbf\xbf", "\xf0\x90\x80\x80", "\xf4\x8f\xbf\xbf", "\x7f",
    };

    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char text[32];
        bson_t doc;
        bson_iter_t it;
        snprintf(text, sizeof text, "{\"v\":\"%s\"}", good[i]);
        parse_one(text, &doc, &it);
        assert_string_equal(bson_iter_utf8(&it, NULL), good[i]);
        bson_destroy(&doc);
    }
}

/* ------------------------------------------------------------------------
 * Depth
 * --------------------------------------------------------------------- */

/* levels nested containers, the top-level object included. */
static char *nested(int levels, bool arrays)
{
    char *text = malloc((size_t)levels * 6 + 16);
    size_t o = 0;

    text[o++] = '{';
    for (int i = 1; i < levels; i++) {
        if (arrays) {
            if (i == 1) {
                memcpy(text + o, "\"a\":", 4);
                o += 4;
            }
            text[o++] = '[';
        } else {
            memcpy(text + o, "\"a\":{", 5);
            o += 5;
        }
    }
    for (int i = 1; i < levels; i++)
        text[o++] = arrays ? ']' : '}';
    text[o++] = '}';
    text[o] = '\0';
    return text;
}

static void test_depth_limit(void **state)
{
    (void)state;
    for (int arrays = 0; arrays <= 1; arrays++) {
        char *ok = nested(100, arrays);
        char *deep = nested(101, arrays);
        bson_t doc;
        char want[128];

        parse_ok(ok, &doc);
        bson_destroy(&doc);
        /* The offending bracket is the last opening one. */
        size_t col = (size_t)(strrchr(deep, arrays ? '[' : '{') - deep) + 1;
        snprintf(want, sizeof want, "t.json:1:%zu: nesting deeper than 100 levels", col);
        assert_error(deep, want);
        free(ok);
        free(deep);
    }
}

/* Wrapper-looking objects are parsed aside before being copied; nesting
 * them must stay linear and still respect the limit. */
static void test_nested_wrapper_lookalikes_stay_linear(void **state)
{
    (void)state;
    enum { LEVELS = 99 };
    char *text = malloc(LEVELS * 24 + 64);
    size_t o = 0;
    bson_t doc;
    bson_iter_t it;

    o += (size_t)sprintf(text + o, "{\"v\":");
    for (int i = 0; i < LEVELS - 1; i++)
        o += (size_t)sprintf(text + o, "{\"$date\":");
    o += (size_t)sprintf(text + o, "1");
    for (int i = 0; i < LEVELS - 1; i++)
        o += (size_t)sprintf(text + o, ",\"x\":%d}", i);
    sprintf(text + o, "}");
    parse_one(text, &doc, &it);
    assert_true(BSON_ITER_HOLDS_DOCUMENT(&it));
    assert_true(bson_iter_init_find(&it, &doc, "v"));
    bson_destroy(&doc);

    /* One level more than allowed. */
    o = 0;
    o += (size_t)sprintf(text + o, "{\"v\":");
    for (int i = 0; i < LEVELS + 1; i++)
        o += (size_t)sprintf(text + o, "{\"$date\":");
    sprintf(text + o, "1");
    bson_init(&doc);
    persistor_error err;
    assert_int_equal(json_to_bson(text, strlen(text), "t.json", &doc, &err),
                     PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "nesting deeper than 100 levels"));
    bson_destroy(&doc);
    free(text);
}

/* ------------------------------------------------------------------------
 * Extended JSON wrappers
 * --------------------------------------------------------------------- */

static void assert_date(const char *value_json, int64_t want_ms)
{
    char text[256];
    bson_t doc;
    bson_iter_t it;

    snprintf(text, sizeof text, "{\"v\":{\"$date\":%s}}", value_json);
    parse_one(text, &doc, &it);
    if (!BSON_ITER_HOLDS_DATE_TIME(&it))
        print_error("not a date: %s\n", text);
    assert_true(BSON_ITER_HOLDS_DATE_TIME(&it));
    if (bson_iter_date_time(&it) != want_ms)
        print_error("%s: got %lld want %lld\n", text, (long long)bson_iter_date_time(&it),
                    (long long)want_ms);
    assert_true(bson_iter_date_time(&it) == want_ms);
    bson_destroy(&doc);
}

static void test_date_wrappers(void **state)
{
    (void)state;
    assert_date("\"2024-01-15T10:30:00Z\"", 1705314600000);
    assert_date("\"2024-01-15T10:30:00.123Z\"", 1705314600123);
    assert_date("\"2024-01-15T10:30:00.1Z\"", 1705314600100);
    assert_date("\"2024-01-15T10:30:00.12Z\"", 1705314600120);
    assert_date("\"2024-01-15T10:30:00.123456789Z\"", 1705314600123);
    assert_date("\"2024-01-15T11:30:00+01:00\"", 1705314600000);
    assert_date("\"2024-01-15T05:00:00-05:30\"", 1705314600000);
    assert_date("\"2024-01-15T11:30:00.5+0100\"", 1705314600500);
    assert_date("\"1970-01-01T00:00:00Z\"", 0);
    assert_date("\"1969-12-31T23:59:59.999Z\"", -1);
    assert_date("\"2000-02-29T00:00:00Z\"", 951782400000);
    assert_date("\"2024-02-29T00:00:00Z\"", 1709164800000);
    assert_date("\"0000-01-01T00:00:00Z\"", -62167219200000);
    assert_date("\"9999-12-31T23:59:59.999Z\"", 253402300799999);
    assert_date("1705314600000", 1705314600000);
    assert_date("5", 5);
    assert_date("-5", -5);
    assert_date("{\"$numberLong\":\"1705314600000\"}", 1705314600000);
    assert_date("{ \"$numberLong\" : \"-62167219200001\" }", -62167219200001);
    assert_date("\n\"2024-01-15T10:30:00Z\"\n", 1705314600000);
    /* Years past 9999, as libbson prints them. */
    assert_date("\"10000-01-01T00:00:00Z\"", 253402300800000);
    assert_date("\"292278994-08-17T07:12:55.807Z\"", INT64_MAX);
}

static void test_malformed_date_wrappers(void **state)
{
    (void)state;
    static const char *bad[] = {
        "\"2024-01-15T10:30:00\"",      /* no zone */
        "\"2024-01-15 10:30:00Z\"",     /* space for T */
        "\"2024-01-15t10:30:00z\"",     /* lower case */
        "\"2024-01-15\"",               /* date only */
        "\"2024-1-15T10:30:00Z\"",      /* one-digit month */
        "\"2024-13-01T00:00:00Z\"",     /* month 13 */
        "\"2024-00-01T00:00:00Z\"",     /* month 0 */
        "\"2023-02-29T00:00:00Z\"",     /* not a leap year */
        "\"1900-02-29T00:00:00Z\"",     /* century, not a leap year */
        "\"2024-04-31T00:00:00Z\"",     /* April has 30 days */
        "\"2024-01-15T24:00:00Z\"",     /* hour 24 */
        "\"2024-01-15T10:60:00Z\"",     /* minute 60 */
        "\"2024-01-15T10:30:60Z\"",     /* leap seconds are not represented */
        "\"2024-01-15T10:30:00.Z\"",    /* empty fraction */
        "\"2024-01-15T10:30:00.1234567890Z\"", /* more than nanoseconds */
        "\"2024-01-15T10:30:00+24:00\"", /* offset hour 24 */
        "\"2024-01-15T10:30:00+01\"",   /* offset without minutes */
        "\"2024-01-15T10:30:00Zjunk\"", /* trailing bytes */
        "\"\"",
        "1.5",
        "1e3",
        "9223372036854775808", /* beyond int64: a double */
        "true",
        "null",
        "[1]",
        "{\"$numberInt\":\"5\"}",
        "{\"$date\":0}",
        "{}",
        "\"+2024-01-15T10:30:00Z\"",       /* no signed years */
        "\"02024-01-15T10:30:00Z\"",       /* no padding beyond four digits */
        "\"1000000000-01-01T00:00:00Z\"",  /* ten-digit year */
        "\"292278994-08-17T07:12:55.808Z\"", /* one past INT64_MAX */
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, "{\"v\":{\"$date\":%s}}", bad[i]);
        /* The error points at the wrapper's value: column 15. */
        assert_error(text, "t.json:1:15: invalid $date: expected an ISO-8601 string such as "
                           "\"2024-01-15T10:30:00Z\", integer milliseconds, or "
                           "{\"$numberLong\": \"<ms>\"}");
    }    /* A malformed wrapper inside $date is reported where it is. */
    assert_error("{\"v\":{\"$date\":{\"$numberLong\":5}}}",
                 "t.json:1:30: invalid $numberLong: expected a string holding a 64-bit "
                 "integer, e.g. \"42\"");
}

static void test_number_wrappers(void **state)
{
    (void)state;
    bson_t got;
    bson_t want = BSON_INITIALIZER;

    parse_ok("{\"l\":{\"$numberLong\":\"42\"},"
             "\"lmin\":{\"$numberLong\":\"-9223372036854775808\"},"
             "\"i\":{\"$numberInt\":\"-2147483648\"},"
             "\"d\":{\"$numberDouble\":\"1.5\"},"
             "\"dint\":{\"$numberDouble\":\"-3\"},"
             "\"dexp\":{\"$numberDouble\":\"1e308\"},"
             "\"inf\":{\"$numberDouble\":\"Infinity\"},"
             "\"ninf\":{\"$numberDouble\":\"-Infinity\"}}",
             &got);
    BSON_APPEND_INT64(&want, "l", 42);
    BSON_APPEND_INT64(&want, "lmin", INT64_MIN);
    BSON_APPEND_INT32(&want, "i", INT32_MIN);
    BSON_APPEND_DOUBLE(&want, "d", 1.5);
    BSON_APPEND_DOUBLE(&want, "dint", -3.0);
    BSON_APPEND_DOUBLE(&want, "dexp", 1e308);
    BSON_APPEND_DOUBLE(&want, "inf", INFINITY);
    BSON_APPEND_DOUBLE(&want, "ninf", -INFINITY);
    assert_bson_equal(&got, &want);
    bson_destroy(&got);
    bson_destroy(&want);

    bson_iter_t it;
    parse_one("{\"v\":{\"$numberDouble\":\"NaN\"}}", &got, &it);
    assert_true(BSON_ITER_HOLDS_DOUBLE(&it));
    assert_true(isnan(bson_iter_double(&it)));
    bson_destroy(&got);
}

static void test_malformed_number_wrappers(void **state)
{
    (void)state;
    static const struct {
        const char *wrapper;
        const char *value;
    } bad[] = {
        {"$numberLong", "42"},     {"$numberLong", "\"\""},   {"$numberLong", "\"1.5\""},
        {"$numberLong", "\"+1\""}, {"$numberLong", "\"01\""}, {"$numberLong", "\" 1\""},
        {"$numberLong", "\"1e3\""}, {"$numberLong", "\"9223372036854775808\""},
        {"$numberLong", "null"},   {"$numberInt", "\"2147483648\""},
        {"$numberInt", "\"-2147483649\""}, {"$numberInt", "7"}, {"$numberInt", "\"x\""},
        {"$numberDouble", "1.5"},  {"$numberDouble", "\"\""},  {"$numberDouble", "\"inf\""},
        {"$numberDouble", "\"nan\""}, {"$numberDouble", "\"+Infinity\""},
        {"$numberDouble", "\"1.\""}, {"$numberDouble", "\"1e400\""},
        {"$numberDouble", "\"0x10\""},
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128];
        char want[256];
        const char *w = bad[i].wrapper;
        snprintf(text, sizeof text, "{\"v\":{\"%s\":%s}}", w, bad[i].value);
        size_t col = 6 + strlen(w) + 4;
        if (strcmp(w, "$numberLong") == 0)
            snprintf(want, sizeof want,
                     "t.json:1:%zu: invalid $numberLong: expected a string holding a 64-bit "
                     "integer, e.g. \"42\"",
                     col);
        else if (strcmp(w, "$numberInt") == 0)
            snprintf(want, sizeof want,
                     "t.json:1:%zu: invalid $numberInt: expected a string holding a 32-bit "
                     "integer, e.g. \"42\"",
                     col);
        else
            snprintf(want, sizeof want,
                     "t.json:1:%zu: invalid $numberDouble: expected a string holding a number, "
                     "\"Infinity\", \"-Infinity\" or \"NaN\"",
                     col);
        assert_error(text, want);
    }
}

/* A wrapper is an object whose only key is the wrapper name; anything
 * else with '$' in it is an ordinary document. */
static void test_wrapper_names_elsewhere_are_ordinary_keys(void **state)
{
    (void)state;
    bson_t got;
    bson_t want = BSON_INITIALIZER;
    bson_t c;

    parse_ok("{\"a\":{\"$foo\":1},"
             "\"b\":{\"$numberLong\":\"5\",\"x\":1},"
             "\"c\":{\"x\":1,\"$date\":\"not a date\"},"
             "\"d\":{\"$date\":{\"$numberLong\":\"5\"},\"x\":[{\"$numberInt\":\"3\"}]},"
             "\"e\":{\"$date\":{\"deep\":true},\"x\":null},"
             "\"$date\":\"top-level keys are never wrappers\"}",
             &got);
    BSON_APPEND_DOCUMENT_BEGIN(&want, "a", &c);
    BSON_APPEND_INT32(&c, "$foo", 1);
    bson_append_document_end(&want, &c);
    BSON_APPEND_DOCUMENT_BEGIN(&want, "b", &c);
    BSON_APPEND_UTF8(&c, "$numberLong", "5");
    BSON_APPEND_INT32(&c, "x", 1);
    bson_append_document_end(&want, &c);
    BSON_APPEND_DOCUMENT_BEGIN(&want, "c", &c);
    BSON_APPEND_INT32(&c, "x", 1);
    BSON_APPEND_UTF8(&c, "$date", "not a date");
    bson_append_document_end(&want, &c);
    BSON_APPEND_DOCUMENT_BEGIN(&want, "d", &c);
    {
        bson_t arr;
        BSON_APPEND_INT64(&c, "$date", 5);
        BSON_APPEND_ARRAY_BEGIN(&c, "x", &arr);
        BSON_APPEND_INT32(&arr, "0", 3);
        bson_append_array_end(&c, &arr);
    }
    bson_append_document_end(&want, &c);
    BSON_APPEND_DOCUMENT_BEGIN(&want, "e", &c);
    {
        bson_t deep;
        BSON_APPEND_DOCUMENT_BEGIN(&c, "$date", &deep);
        BSON_APPEND_BOOL(&deep, "deep", true);
        bson_append_document_end(&c, &deep);
        BSON_APPEND_NULL(&c, "x");
    }
    bson_append_document_end(&want, &c);
    BSON_APPEND_UTF8(&want, "$date", "top-level keys are never wrappers");
    assert_bson_equal(&got, &want);
    bson_destroy(&got);
    bson_destroy(&want);

    /* Errors after a wrapper-looking first member are still reported. */
    assert_error("{\"v\":{\"$date\":1 \"x\":2}}",
                 "t.json:1:17: expected ',' or '}' after an object member");
    assert_error("{\"v\":{\"$date\":1,}}", "t.json:1:17: trailing comma before '}'");
    assert_error("{\"v\":{\"$date\":1", "t.json:1:16: expected ',' or '}' after an object member");
    assert_error("{\"v\":{\"$date\":\"x}}", "t.json:1:15: unterminated string");
}

static void test_wrappers_inside_arrays(void **state)
{
    (void)state;
    bson_t got;
    bson_t want = BSON_INITIALIZER;
    bson_t arr;

    parse_ok("{\"a\":[{\"$date\":0},{\"$numberLong\":\"7\"},{\"$numberInt\":\"8\"},{}]}", &got);
    BSON_APPEND_ARRAY_BEGIN(&want, "a", &arr);
    BSON_APPEND_DATE_TIME(&arr, "0", 0);
    BSON_APPEND_INT64(&arr, "1", 7);
    BSON_APPEND_INT32(&arr, "2", 8);
    {
        bson_t empty;
        BSON_APPEND_DOCUMENT_BEGIN(&arr, "3", &empty);
        bson_append_document_end(&arr, &empty);
    }
    bson_append_array_end(&want, &arr);
    assert_bson_equal(&got, &want);
    bson_destroy(&got);
    bson_destroy(&want);
}

/* ------------------------------------------------------------------------
 * Robustness: no prefix of a document and no corrupted byte may crash,
 * leak, or leave half a document behind.
 * --------------------------------------------------------------------- */

static const char sample[] =
    "{\"_id\":\"run-1\",\"state\":{\"step\":3,\"ok\":true,\"err\":null,"
    "\"at\":{\"$date\":\"2024-01-15T10:30:00.123+01:00\"},\"n\":{\"$numberLong\":\"9\"},"
    "\"list\":[1,-2.5e-3,\"caf\xc3\xa9 \\u00e9\\ud83d\\ude00\\n\",[],{}]}}";

static void test_every_prefix_is_an_error(void **state)
{
    (void)state;
    size_t len = strlen(sample);

    for (size_t n = 0; n < len; n++) {
        bson_t doc;
        persistor_error err;
        assert_int_equal(parse_n(sample, n, "t.json", &doc, &err), PERSISTOR_E_INVALID);
        assert_true(bson_empty(&doc));
        bson_destroy(&doc);
    }
}

static void test_corrupted_bytes_never_crash(void **state)
{
    (void)state;
    static const char noise[] = "{}[]\":,\\u0 1-.eE+\x80\xc3\xed\xf4tfn$";
    size_t len = strlen(sample);
    char *text = malloc(len);
    uint32_t rng = 12345;

    for (int round = 0; round < 20000; round++) {
        memcpy(text, sample, len);
        for (int k = 0; k < 3; k++) {
            rng = rng * 1103515245u + 12345u;
            size_t at = (rng >> 8) % len;
            rng = rng * 1103515245u + 12345u;
            text[at] = noise[(rng >> 8) % (sizeof noise - 1)];
        }
        bson_t doc;
        persistor_error err;
        int32_t rc = parse_n(text, len, "fuzz", &doc, &err);
        assert_true(rc == PERSISTOR_OK || rc == PERSISTOR_E_INVALID);
        if (rc != PERSISTOR_OK)
            assert_true(bson_empty(&doc));
        else
            assert_true(bson_validate(&doc, BSON_VALIDATE_UTF8 | BSON_VALIDATE_UTF8_ALLOW_NULL,
                                      NULL));
        bson_destroy(&doc);
    }
    free(text);
}

static void test_null_arguments(void **state)
{
    (void)state;
    persistor_error err;
    bson_t doc;

    bson_init(&doc);
    assert_int_equal(json_to_bson(NULL, 0, NULL, &doc, &err), PERSISTOR_E_INVALID);
    assert_string_equal(err.message, "-:1:1: expected a JSON object at the top level");
    assert_int_equal(json_to_bson("{}", 2, "t", NULL, &err), PERSISTOR_E_INVALID);
    assert_int_equal(json_to_bson("{", 1, "t", &doc, NULL), PERSISTOR_E_INVALID);
    bson_destroy(&doc);
}

/* ------------------------------------------------------------------------
 * json_from_bson and the round trip
 * --------------------------------------------------------------------- */

static void assert_prints(const bson_t *doc, const char *want)
{
    char *got = json_from_bson(bson_get_data(doc), doc->len);
    assert_non_null(got);
    assert_string_equal(got, want);
    assert_null(strchr(got, '\n'));
    bson_free(got);
}

static void test_dates_print_as_iso_between_1970_and_9999(void **state)
{
    (void)state;
    bson_t doc = BSON_INITIALIZER;

    BSON_APPEND_DATE_TIME(&doc, "epoch", 0);
    BSON_APPEND_DATE_TIME(&doc, "ms", 1705314600123);
    BSON_APPEND_DATE_TIME(&doc, "s", 1705314600000);
    BSON_APPEND_DATE_TIME(&doc, "last", 253402300799999);
    assert_prints(&doc, "{ \"epoch\" : { \"$date\" : \"1970-01-01T00:00:00Z\" }, "
                        "\"ms\" : { \"$date\" : \"2024-01-15T10:30:00.123Z\" }, "
                        "\"s\" : { \"$date\" : \"2024-01-15T10:30:00Z\" }, "
                        "\"last\" : { \"$date\" : \"9999-12-31T23:59:59.999Z\" } }");
    bson_destroy(&doc);

    /* Before 1970 relaxed Extended JSON falls back to $numberLong.  After
     * 9999 it should too, but libbson 1.23 prints a longer year instead;
     * json_to_bson accepts that so persistor reads back its own output. */
    bson_init(&doc);
    BSON_APPEND_DATE_TIME(&doc, "before", -1);
    BSON_APPEND_DATE_TIME(&doc, "after", 253402300800000);
    assert_prints(&doc, "{ \"before\" : { \"$date\" : { \"$numberLong\" : \"-1\" } }, "
                        "\"after\" : { \"$date\" : \"10000-01-01T00:00:00Z\" } }");
    bson_destroy(&doc);
}

/* Every type persistor stores, printed and read back to the same bytes. */
static void test_round_trip_every_stored_type(void **state)
{
    (void)state;
    bson_t doc = BSON_INITIALIZER;
    bson_t child;
    bson_t arr;
    bson_t inner;

    BSON_APPEND_UTF8(&doc, "_id", "run-\"1\"\\\n\t\x01 caf\xc3\xa9 \xf0\x9f\x98\x80 <&>");
    bson_append_utf8(&doc, "nul", -1, "a\0b", 3);
    BSON_APPEND_UTF8(&doc, "empty", "");
    BSON_APPEND_INT32(&doc, "i32", -7);
    BSON_APPEND_INT32(&doc, "i32max", INT32_MAX);
    BSON_APPEND_INT32(&doc, "i32min", INT32_MIN);
    BSON_APPEND_INT64(&doc, "i64", 5000000000);
    BSON_APPEND_INT64(&doc, "i64max", INT64_MAX);
    BSON_APPEND_INT64(&doc, "i64min", INT64_MIN);
    BSON_APPEND_DOUBLE(&doc, "d", 1.5);
    BSON_APPEND_DOUBLE(&doc, "dwhole", 3.0);
    BSON_APPEND_DOUBLE(&doc, "dneg0", -0.0);
    BSON_APPEND_DOUBLE(&doc, "dtiny", 5e-324);
    BSON_APPEND_DOUBLE(&doc, "dbig", 1.7976931348623157e308);
    BSON_APPEND_DOUBLE(&doc, "dthird", 1.0 / 3.0);
    BSON_APPEND_DOUBLE(&doc, "d1e20", 1e20);
    BSON_APPEND_DOUBLE(&doc, "inf", INFINITY);
    BSON_APPEND_DOUBLE(&doc, "ninf", -INFINITY);
    BSON_APPEND_BOOL(&doc, "t", true);
    BSON_APPEND_BOOL(&doc, "f", false);
    BSON_APPEND_NULL(&doc, "null");
    BSON_APPEND_DATE_TIME(&doc, "date", 1705314600123);
    BSON_APPEND_DATE_TIME(&doc, "date0", 0);
    BSON_APPEND_DATE_TIME(&doc, "datepre", -86400001);
    BSON_APPEND_DATE_TIME(&doc, "datepost", 253402300800000);
    BSON_APPEND_DATE_TIME(&doc, "datemax", INT64_MAX);
    BSON_APPEND_DATE_TIME(&doc, "datemin", INT64_MIN);
    BSON_APPEND_DOCUMENT_BEGIN(&doc, "sub", &child);
    BSON_APPEND_UTF8(&child, "k", "v");
    BSON_APPEND_DOCUMENT_BEGIN(&child, "deeper", &inner);
    BSON_APPEND_DATE_TIME(&inner, "when", 1);
    bson_append_document_end(&child, &inner);
    BSON_APPEND_DOCUMENT_BEGIN(&child, "empty", &inner);
    bson_append_document_end(&child, &inner);
    bson_append_document_end(&doc, &child);
    BSON_APPEND_ARRAY_BEGIN(&doc, "arr", &arr);
    BSON_APPEND_INT32(&arr, "0", 1);
    BSON_APPEND_UTF8(&arr, "1", "two");
    BSON_APPEND_DOUBLE(&arr, "2", 3.25);
    BSON_APPEND_NULL(&arr, "3");
    BSON_APPEND_DOCUMENT_BEGIN(&arr, "4", &inner);
    BSON_APPEND_INT64(&inner, "big", -5000000000);
    bson_append_document_end(&arr, &inner);
    BSON_APPEND_ARRAY_BEGIN(&arr, "5", &inner);
    bson_append_array_end(&arr, &inner);
    bson_append_array_end(&doc, &arr);
    BSON_APPEND_UTF8(&doc, "$date", "a top-level key that looks like a wrapper");

    char *text = json_from_bson(bson_get_data(&doc), doc.len);
    assert_non_null(text);
    bson_t back;
    persistor_error err;
    int32_t rc = parse_n(text, strlen(text), "roundtrip", &back, &err);
    if (rc != PERSISTOR_OK)
        print_error("%s\n%s\n", err.message, text);
    assert_int_equal(rc, PERSISTOR_OK);
    assert_bson_equal(&back, &doc);

    /* And printing again gives the same text. */
    char *again = json_from_bson(bson_get_data(&back), back.len);
    assert_string_equal(again, text);
    bson_free(again);
    bson_free(text);
    bson_destroy(&back);
    bson_destroy(&doc);
}

static void test_round_trip_nan(void **state)
{
    (void)state;
    bson_t doc = BSON_INITIALIZER;
    bson_t back;
    bson_iter_t it;
    persistor_error err;

    BSON_APPEND_DOUBLE(&doc, "v", NAN);
    char *text = json_from_bson(bson_get_data(&doc), doc.len);
    assert_string_equal(text, "{ \"v\" : { \"$numberDouble\" : \"NaN\" } }");
    assert_int_equal(parse_n(text, strlen(text), "t", &back, &err), PERSISTOR_OK);
    assert_true(bson_iter_init_find(&it, &back, "v"));
    assert_true(isnan(bson_iter_double(&it)));
    bson_free(text);
    bson_destroy(&back);
    bson_destroy(&doc);
}

/* Relaxed Extended JSON prints an int64 as a bare number, so a small one
 * reads back as int32: the one type change a round trip makes. */
static void test_small_int64_reads_back_as_int32(void **state)
{
    (void)state;
    bson_t doc = BSON_INITIALIZER;
    bson_t back;
    bson_iter_t it;
    persistor_error err;

    BSON_APPEND_INT64(&doc, "v", 5);
    char *text = json_from_bson(bson_get_data(&doc), doc.len);
    assert_string_equal(text, "{ \"v\" : 5 }");
    assert_int_equal(parse_n(text, strlen(text), "t", &back, &err), PERSISTOR_OK);
    assert_true(bson_iter_init_find(&it, &back, "v"));
    assert_int_equal(bson_iter_type(&it), BSON_TYPE_INT32);
    bson_free(text);
    bson_destroy(&back);
    bson_destroy(&doc);
}

static void test_from_bson_refuses_malformed_documents(void **state)
{
    (void)state;
    bson_t doc = BSON_INITIALIZER;
    bson_t child;
    uint8_t bytes[128];

    BSON_APPEND_DOCUMENT_BEGIN(&doc, "sub", &child);
    BSON_APPEND_UTF8(&child, "k", "value");
    bson_append_document_end(&doc, &child);
    assert_true(doc.len < sizeof bytes);
    memcpy(bytes, bson_get_data(&doc), doc.len);

    assert_null(json_from_bson(NULL, 0));
    assert_null(json_from_bson(bytes, 0));
    assert_null(json_from_bson(bytes, 4));
    assert_null(json_from_bson(bytes, doc.len - 1)); /* length field disagrees */
    assert_null(json_from_bson(bytes, doc.len + 1));

    /* The nested document claims more bytes than it has. */
    bytes[4 + 1 + 4] += 10;
    assert_null(json_from_bson(bytes, doc.len));
    memcpy(bytes, bson_get_data(&doc), doc.len);

    /* No trailing NUL. */
    bytes[doc.len - 1] = 1;
    assert_null(json_from_bson(bytes, doc.len));
    memcpy(bytes, bson_get_data(&doc), doc.len);

    /* Invalid UTF-8 inside a string ("value" is the last string). */
    size_t v = doc.len;
    for (size_t i = 0; i + 5 <= doc.len; i++)
        if (memcmp(bytes + i, "value", 5) == 0)
            v = i;
    assert_true(v < doc.len);
    bytes[v] = 0xff;
    assert_null(json_from_bson(bytes, doc.len));

    /* An unknown element type. */
    memcpy(bytes, bson_get_data(&doc), doc.len);
    bytes[4] = 0x7e;
    assert_null(json_from_bson(bytes, doc.len));

    bson_destroy(&doc);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_inputs_match_libbson),
        cmocka_unit_test(test_document_built_by_hand),
        cmocka_unit_test(test_nul_inside_string_value_is_kept),
        cmocka_unit_test(test_input_need_not_be_nul_terminated),
        cmocka_unit_test(test_many_keys_and_elements),
        cmocka_unit_test(test_integer_typing_at_boundaries),
        cmocka_unit_test(test_doubles),
        cmocka_unit_test(test_negative_zero_double_keeps_its_sign),
        cmocka_unit_test(test_numbers_ignore_the_decimal_comma_locale),
        cmocka_unit_test(test_number_errors),
        cmocka_unit_test(test_top_level_must_be_one_object),
        cmocka_unit_test(test_object_syntax_errors),
        cmocka_unit_test(test_array_syntax_errors),
        cmocka_unit_test(test_error_position_counts_lines_and_columns),
        cmocka_unit_test(test_duplicate_keys),
        cmocka_unit_test(test_long_duplicate_key_is_cut_in_the_message),
        cmocka_unit_test(test_string_errors),
        cmocka_unit_test(test_unicode_escapes),
        cmocka_unit_test(test_bad_unicode_escapes),
        cmocka_unit_test(test_invalid_utf8),
        cmocka_unit_test(test_valid_utf8_edges),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_nested_wrapper_lookalikes_stay_linear),
        cmocka_unit_test(test_date_wrappers),
        cmocka_unit_test(test_malformed_date_wrappers),
        cmocka_unit_test(test_number_wrappers),
        cmocka_unit_test(test_malformed_number_wrappers),
        cmocka_unit_test(test_wrapper_names_elsewhere_are_ordinary_keys),
        cmocka_unit_test(test_wrappers_inside_arrays),
        cmocka_unit_test(test_every_prefix_is_an_error),
        cmocka_unit_test(test_corrupted_bytes_never_crash),
        cmocka_unit_test(test_null_arguments),
        cmocka_unit_test(test_dates_print_as_iso_between_1970_and_9999),
        cmocka_unit_test(test_round_trip_every_stored_type),
        cmocka_unit_test(test_round_trip_nan),
        cmocka_unit_test(test_small_int64_reads_back_as_int32),
        cmocka_unit_test(test_from_bson_refuses_malformed_documents),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
