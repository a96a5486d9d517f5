/*
 * json_ext.c — the relaxed Extended JSON wrappers persistor prints, read
 * back into BSON values, and json_from_bson, which prints them.
 *
 * The parser (json.c) hands over each object whose only key names a
 * wrapper; this file says what it stands for: {"$date": v} with v an
 * ISO-8601 string with a zone, integer milliseconds or {"$numberLong":
 * "<ms>"}; {"$numberLong": "<n>"}, {"$numberInt": "<n>"}; {"$numberDouble":
 * "<x>"} including "Infinity", "-Infinity" and "NaN".  The numbers inside
 * those strings follow the parser's own RFC 8259 grammar (json_ext.h).
 *
 * Must not: read past the strings it is given (they are not NUL-terminated),
 * depend on the C locale, or report positions: the parser knows where a
 * value was and places both the value and any error (line:column).
 */
#include "json_ext.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "json.h"

/* ------------------------------------------------------------------------
 * Which wrapper
 * --------------------------------------------------------------------- */

json_ext_wrapper json_ext_wrapper_of(const char *key, size_t len)
{
    static const struct {
        const char *name;
        json_ext_wrapper kind;
    } names[] = {
        {"$date", JSON_EXT_DATE},
        {"$numberLong", JSON_EXT_LONG},
        {"$numberDouble", JSON_EXT_DOUBLE},
        {"$numberInt", JSON_EXT_INT},
    };

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == len && memcmp(names[i].name, key, len) == 0)
            return names[i].kind;
    return JSON_EXT_NONE;
}

/* ------------------------------------------------------------------------
 * $numberLong, $numberInt, $numberDouble
 * --------------------------------------------------------------------- */

/* The whole string is a JSON integer (no sign but '-', no leading zero). */
static bool string_integer(const char *s, size_t n, int64_t *out)
{
    bool integral;
    const char *what;

    return n > 0 && json_number_scan(s, n, &integral, &what) == n && what == NULL && integral &&
           json_integer_value(s, n, out);
}

static bool string_double(json_parser *p, const char *s, size_t n, double *out)
{
    bool integral;
    const char *what;

    if (n == 8 && memcmp(s, "Infinity", 8) == 0)
        *out = INFINITY;
    else if (n == 9 && memcmp(s, "-Infinity", 9) == 0)
        *out = -INFINITY;
    else if (n == 3 && memcmp(s, "NaN", 3) == 0)
        *out = NAN;
    else if (n == 0 || json_number_scan(s, n, &integral, &what) != n || what != NULL)
        return false;
    else
        return json_double_value(p, s, n, out);
    return true;
}

/* ------------------------------------------------------------------------
 * $date
 * --------------------------------------------------------------------- */

/* The parser's is_digit: three lines, not worth a shared symbol. */
static bool is_digit(const char *s, size_t n, size_t i)
{
    return i < n && s[i] >= '0' && s[i] <= '9';
}

/* Fixed-width decimal field of an ISO-8601 date. */
static bool iso_field(const char *s, size_t n, size_t *i, size_t width, int *out)
{
    int v = 0;

    for (size_t k = 0; k < width; k++, (*i)++) {
        if (!is_digit(s, n, *i))
            return false;
        v = v * 10 + (s[*i] - '0');
    }
    *out = v;
    return true;
}

static bool iso_char(const char *s, size_t n, size_t *i, char c)
{
    if (*i >= n || s[*i] != c)
        return false;
    (*i)++;
    return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar
 * (H. Hinnant's days_from_civil, derived from the 400-year cycle). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* Milliseconds ".fff" (up to nine digits; beyond the third they are cut,
 * a BSON date has no finer resolution). */
static bool iso_fraction(const char *s, size_t n, size_t *i, int64_t *ms)
{
    size_t start;
    int64_t scale = 100;

    *ms = 0;
    if (*i >= n || s[*i] != '.')
        return true;
    start = ++(*i);
    for (; is_digit(s, n, *i); (*i)++, scale /= 10)
        *ms += (s[*i] - '0') * scale;
    return *i > start && *i - start <= 9;
}

/* "Z", "+hh:mm", "-hh:mm", "+hhmm" or "-hhmm" as minutes east of UTC. */
static bool iso_offset(const char *s, size_t n, size_t *i, int *minutes)
{
    int sign;
    int hh;
    int mm;

    if (iso_char(s, n, i, 'Z')) {
        *minutes = 0;
        return true;
    }
    if (iso_char(s, n, i, '+'))
        sign = 1;
    else if (iso_char(s, n, i, '-'))
        sign = -1;
    else
        return false;
    if (!iso_field(s, n, i, 2, &hh))
        return false;
    iso_char(s, n, i, ':');
    if (!iso_field(s, n, i, 2, &mm) || hh > 23 || mm > 59)
        return false;
    *minutes = sign * (hh * 60 + mm);
    return true;
}

/* The year: four digits, or up to nine without a leading zero.  Relaxed
 * Extended JSON promises ISO-8601 only for years 1970-9999, but libbson
 * 1.23 prints every date from 1970 on that way, "10000-01-01T00:00:00Z"
 * and beyond included, and we must read back what we print. */
static bool iso_year(const char *s, size_t n, size_t *i, int *year)
{
    size_t start = *i;
    size_t end = start;

    while (is_digit(s, n, end))
        end++;
    size_t digits = end - start;
    if (digits < 4 || digits > 9 || (digits > 4 && s[start] == '0'))
        return false;
    return iso_field(s, n, i, digits, year);
}

/* YYYY-MM-DDTHH:MM:SS[.fff](Z|±hh:mm|±hhmm) to milliseconds since the
 * epoch.  A zone is required: a date without one means a different
 * instant on every machine. */
static bool iso8601_ms(const char *s, size_t n, int64_t *out)
{
    size_t i = 0;
    int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0, offset = 0;
    int64_t frac = 0;

    if (!iso_year(s, n, &i, &y) || !iso_char(s, n, &i, '-') ||
        !iso_field(s, n, &i, 2, &mo) || !iso_char(s, n, &i, '-') ||
        !iso_field(s, n, &i, 2, &d) || !iso_char(s, n, &i, 'T') ||
        !iso_field(s, n, &i, 2, &h) || !iso_char(s, n, &i, ':') ||
        !iso_field(s, n, &i, 2, &mi) || !iso_char(s, n, &i, ':') ||
        !iso_field(s, n, &i, 2, &sec) || !iso_fraction(s, n, &i, &frac) ||
        !iso_offset(s, n, &i, &offset) || i != n)
        return false;
    if (mo < 1 || mo > 12 || d < 1 || d > days_in_month(y, mo) || h > 23 || mi > 59 ||
        sec > 59)
        return false;
    int64_t days = days_from_civil(y, mo, d);
    int64_t seconds = ((days * 24 + h) * 60 + mi) * 60 + sec - (int64_t)offset * 60;
    /* Nine-digit years reach past the int64 range of a BSON date. */
    if (seconds > (INT64_MAX - frac) / 1000)
        return false;
    *out = seconds * 1000 + frac;
    return true;
}

/* The value of {"$date": v}: v was parsed into `it`; `raw` is its first
 * byte in the text, which tells a plain integer from a wrapped one. */
static bool date_ms(const bson_iter_t *it, char raw, int64_t *ms)
{
    uint32_t n;
    const char *s;

    switch (bson_iter_type(it)) {
    case BSON_TYPE_UTF8:
        s = bson_iter_utf8(it, &n);
        return iso8601_ms(s, n, ms);
    case BSON_TYPE_INT32:
        /* An int32 behind '{' came from $numberInt, which $date refuses. */
        if (raw == '{')
            return false;
        *ms = bson_iter_int32(it);
        return true;
    case BSON_TYPE_INT64:
        /* Either a large plain integer or {"$numberLong": "..."}. */
        *ms = bson_iter_int64(it);
        return true;
    default:
        return false;
    }
}

static bool iter_string(const bson_iter_t *it, const char **s, uint32_t *n)
{
    if (!BSON_ITER_HOLDS_UTF8(it))
        return false;
    *s = bson_iter_utf8(it, n);
    return true;
}

/* ------------------------------------------------------------------------
 * The value of a wrapper
 * --------------------------------------------------------------------- */

const char *json_ext_value(json_parser *p, json_ext_wrapper kind, const bson_iter_t *it,
                           char raw, bson_value_t *out)
{
    const char *s = NULL;
    uint32_t n = 0;
    int64_t i64;
    double d;

    switch (kind) {
    case JSON_EXT_DATE:
        if (!date_ms(it, raw, &i64))
            return "invalid $date: expected an ISO-8601 string such as "
                   "\"2024-01-15T10:30:00Z\", integer milliseconds, or "
                   "{\"$numberLong\": \"<ms>\"}";
        out->value_type = BSON_TYPE_DATE_TIME;
        out->value.v_datetime = i64;
        return NULL;
    case JSON_EXT_LONG:
        if (!iter_string(it, &s, &n) || !string_integer(s, n, &i64))
            return "invalid $numberLong: expected a string holding a 64-bit "
                   "integer, e.g. \"42\"";
        out->value_type = BSON_TYPE_INT64;
        out->value.v_int64 = i64;
        return NULL;
    case JSON_EXT_INT:
        if (!iter_string(it, &s, &n) || !string_integer(s, n, &i64) || i64 < INT32_MIN ||
            i64 > INT32_MAX)
            return "invalid $numberInt: expected a string holding a 32-bit "
                   "integer, e.g. \"42\"";
        out->value_type = BSON_TYPE_INT32;
        out->value.v_int32 = (int32_t)i64;
        return NULL;
    default:
        if (!iter_string(it, &s, &n) || !string_double(p, s, n, &d))
            return "invalid $numberDouble: expected a string holding a "
                   "number, \"Infinity\", \"-Infinity\" or \"NaN\"";
        out->value_type = BSON_TYPE_DOUBLE;
        out->value.v_double = d;
        return NULL;
    }
}

/* ------------------------------------------------------------------------
 * Printing
 * --------------------------------------------------------------------- */

char *json_from_bson(const uint8_t *doc, uint32_t len)
{
    bson_t view;

    if (doc == NULL || !bson_init_static(&view, doc, len))
        return NULL;
    /* Walk the whole document first: libbson's printer may stop quietly
     * at a damaged nested document instead of failing. */
    if (!bson_validate(&view, BSON_VALIDATE_UTF8 | BSON_VALIDATE_UTF8_ALLOW_NULL, NULL))
        return NULL;
    return bson_as_relaxed_extended_json(&view, NULL);
}
