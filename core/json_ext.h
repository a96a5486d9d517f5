/*
 * json_ext.h — what json.c (the parser) and json_ext.c (the Extended JSON
 * wrappers) share, and nothing else.
 *
 * Private to core/json*.c; everyone else includes json.h.  The parser finds
 * an object whose only key names a wrapper ({"$date": ...} and the like)
 * and asks json_ext.c what BSON value it stands for; json_ext.c reads the
 * numbers inside "$numberLong" and friends with the parser's own RFC 8259
 * number grammar, so that "42" means the same in both places.
 *
 * It must not become a second interface: only what both files call.
 */
#ifndef PERSISTOR_CORE_JSON_EXT_H
#define PERSISTOR_CORE_JSON_EXT_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The parser's state (json.c); opaque to json_ext.c. */
typedef struct json_parser json_parser;

/* ------------------------------------------------------------------------
 * Extended JSON wrappers (json_ext.c)
 * --------------------------------------------------------------------- */

typedef enum json_ext_wrapper {
    JSON_EXT_NONE,
    JSON_EXT_DATE,
    JSON_EXT_LONG,
    JSON_EXT_DOUBLE,
    JSON_EXT_INT,
} json_ext_wrapper;

/* The wrapper an object key names ("$date", "$numberLong", "$numberDouble",
 * "$numberInt"), or JSON_EXT_NONE.  key[0..len) need not be NUL-terminated. */
json_ext_wrapper json_ext_wrapper_of(const char *key, size_t len);

/* What {"<kind>": v} stands for.  `it` holds v as the parser read it and
 * `raw` is v's first byte in the text ('{' for a nested wrapper).  `p` only
 * lends its scratch buffer to json_double_value.  Returns NULL with the
 * value in *out (a date, int64, int32 or double: nothing to free), or the
 * message ("invalid $date: ...") for the parser to report at v's line and
 * column. */
const char *json_ext_value(json_parser *p, json_ext_wrapper kind, const bson_iter_t *it,
                           char raw, bson_value_t *out);

/* ------------------------------------------------------------------------
 * The RFC 8259 number grammar (json.c)
 * --------------------------------------------------------------------- */

/* Scan  -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?  at s[0..n).  Returns
 * the length of the number; on a grammar error sets *what and returns the
 * offset of the offending byte instead. */
size_t json_number_scan(const char *s, size_t n, bool *integral, const char **what);

/* s is a valid integer by json_number_scan; false if it does not fit int64. */
bool json_integer_value(const char *s, size_t n, int64_t *out);

/* s is a valid number by json_number_scan; false if it overflows a double.
 * Independent of LC_NUMERIC; uses p's scratch buffer. */
bool json_double_value(json_parser *p, const char *s, size_t n, double *out);

#endif
