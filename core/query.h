/*
 * query.h — the query language, implemented once for every adapter.
 *
 * A subset of MongoDB's: equality, $eq $ne $gt $gte $lt $lte $in $nin
 * $exists, $and $or, dotted paths (through arrays and array indexes), and
 * MongoDB's cross-type comparison and sort order.  Adapters reach it through
 * the host table (matcher_*, sorter_*, index_key, doc_time_ms); the core
 * uses it directly.  Pure functions over BSON bytes: no I/O, no globals, so
 * everything here is thread-safe.
 */
#ifndef PERSISTOR_CORE_QUERY_H
#define PERSISTOR_CORE_QUERY_H

#include <bson/bson.h>
#include <stdbool.h>

#include "persistor/adapter.h"

/* The opaque types of adapter.h are defined in query.c. */

/* Compile a filter.  NULL/0 or an empty document matches everything.
 * OK, or E_INVALID with a message naming the operator or path at fault
 * (e.g. "unsupported query operator $regex at 'name'"), or E_NOMEM. */
int32_t query_matcher_new(const uint8_t *filter, uint32_t len, persistor_matcher **out,
                          persistor_error *err);
bool query_matcher_match(const persistor_matcher *m, const uint8_t *doc, uint32_t len);
void query_matcher_free(persistor_matcher *m);

/* Compile a sort document {path: 1|-1, ...}.  OK or E_INVALID. */
int32_t query_sorter_new(const uint8_t *sort, uint32_t len, persistor_sorter **out,
                         persistor_error *err);
int query_sorter_compare(const persistor_sorter *s, const uint8_t *a, uint32_t a_len,
                         const uint8_t *b, uint32_t b_len);
void query_sorter_free(persistor_sorter *s);

/* MongoDB's total order over two BSON values: <0, 0, >0.
 * Numbers compare by value across int32/int64/double; strings by bytes;
 * documents and arrays element by element. */
int query_value_compare(const bson_iter_t *a, const bson_iter_t *b);

/* Order-preserving key of an index for a document (see adapter.h). */
int32_t query_index_key(const persistor_index_spec *index, const uint8_t *doc, uint32_t len,
                        persistor_buffer *out);

/* The TTL time at a dotted path, as MongoDB's TTL reads it: a date, or the
 * earliest date of an array.  OK or NOT_FOUND (numbers are not times). */
int32_t query_doc_time_ms(const uint8_t *doc, uint32_t len, const char *path, int64_t *ms);

#endif
