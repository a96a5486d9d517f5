/*
 * query_order.h — what query.c and query_order.c share, and nothing else.
 *
 * Private to the two files of the query language: the rest of the core and
 * every adapter use query.h.  query_order.c owns how two values order (type
 * ranks, numbers across widths, index keys); query.c owns documents, paths,
 * filters and sorts.  Each needs a little of the other: matching and sorting
 * rank values by type and read numbers, and an index key reads a document
 * at a path.
 *
 * It must not become a second interface: only what both files call goes
 * here; everything else stays static where it is used.
 */
#ifndef PERSISTOR_CORE_QUERY_ORDER_H
#define PERSISTOR_CORE_QUERY_ORDER_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* MongoDB refuses documents nested deeper than 100 levels; so do we. */
#define QUERY_MAX_DEPTH 100

/* ------------------------------------------------------------------------
 * Canonical type order.  The rank doubles as the type byte of index keys,
 * so it must stay dense, ordered and non-zero (0 ends a key's container).
 * --------------------------------------------------------------------- */

enum {
    RANK_MINKEY = 1,
    RANK_EMPTY_ARRAY = 2, /* sort only: an empty array sorts below null */
    RANK_NULL = 3,
    RANK_NUMBER = 4,
    RANK_STRING = 5,
    RANK_DOCUMENT = 6,
    RANK_ARRAY = 7,
    RANK_BINARY = 8,
    RANK_OID = 9,
    RANK_BOOL = 10,
    RANK_DATE = 11,
    RANK_TIMESTAMP = 12,
    RANK_REGEX = 13,
    RANK_DBPOINTER = 14,
    RANK_CODE = 15,
    RANK_CODEWSCOPE = 16,
    RANK_MAXKEY = 17,
};

/* The rank of a BSON type in MongoDB's order (query_order.c). */
int query_type_rank(bson_type_t t);

/* A number of any BSON width, exact for int32 and int64. */
typedef struct qnum {
    bool is_int;
    int64_t i;
    double d;
} qnum;

/* The number `it` holds (decimal128 as the nearest double); 0 for a value
 * that is not a number (query_order.c). */
qnum query_num_of(const bson_iter_t *it);

/* ------------------------------------------------------------------------
 * Documents and paths (query.c)
 * --------------------------------------------------------------------- */

/* View data[0..len) as a document in `b` (no copy) after reading every
 * element, so that damage anywhere is found before anyone answers: false
 * for a damaged or NULL document.  Below QUERY_MAX_DEPTH nothing is read;
 * *too_deep (may be NULL) says whether the document goes deeper. */
bool query_doc_open(bson_t *b, const uint8_t *data, uint32_t len, bool *too_deep);

/* View a stored document in `b` (no copy) checking only its frame (length
 * and final NUL).  For the hot paths, match and index_key, which run on
 * every document of every query: documents were checked whole on the way
 * in (bson_check), and libbson's iterators are bounds-checked, so damage
 * inside a document can change an answer but never read out of bounds. */
bool query_doc_frame(bson_t *b, const uint8_t *data, uint32_t len);

/* How many components a dotted path has ("a.b.0" has 3). */
size_t query_path_depth(const char *path);

/* One value at a dotted path, without array expansion: documents by field
 * name, arrays by numeric index only.  False if the path reaches nothing. */
bool query_path_lookup(const bson_t *doc, const char *path, bson_iter_t *out);

#endif
