/*
 * json.h — JSON text to BSON, with errors a person can act on.
 *
 * Strict JSON (RFC 8259) plus the relaxed Extended JSON wrappers persistor
 * itself prints, so output can be read back: {"$date": "<ISO-8601>"} or
 * {"$date": <ms>} or {"$date": {"$numberLong": "<ms>"}} become BSON dates,
 * {"$numberLong": "<n>"} an int64, {"$numberDouble": "<x>"} a double
 * (including "Infinity", "-Infinity", "NaN").  Integers that fit int32 become
 * int32, larger ones int64, others double.  Duplicate keys are an error.
 *
 * Errors carry the 1-based line and column of the offending character:
 * "<source>:3:17: expected ',' or '}' after an object member".
 */
#ifndef PERSISTOR_CORE_JSON_H
#define PERSISTOR_CORE_JSON_H

#include <bson/bson.h>
#include <stddef.h>

#include "persistor/adapter.h"

/* Parse exactly one JSON value, which must be an object, from text[0..len)
 * (leading/trailing whitespace allowed, anything else after it is an error)
 * into `out`, which must be initialised (bson_init) and empty.  `source`
 * names the input in messages ("-" for stdin, a file name).
 * OK, or E_INVALID with "source:line:column: what".  Nesting deeper than
 * 100 levels is E_INVALID. */
int32_t json_to_bson(const char *text, size_t len, const char *source, bson_t *out,
                     persistor_error *err);

/* BSON to one line of relaxed Extended JSON (what the CLI prints).
 * Returns a string the caller frees with bson_free, or NULL. */
char *json_from_bson(const uint8_t *doc, uint32_t len);

#endif
