/*
 * bson_canon.h — a document's canonical form: the same BSON with every
 * embedded document's keys in byte order (arrays keep theirs), so two
 * spellings of one JSON object hash alike.  Values and their types are
 * kept as they are: 1 and 1.0 stay different, as they are in the store.
 */
#ifndef PERSISTOR_CORE_BSON_CANON_H
#define PERSISTOR_CORE_BSON_CANON_H

#include <bson/bson.h>
#include <stdbool.h>

/* Append the canonical form of `doc`'s fields to `out` (an empty
 * document).  False on a malformed document or nesting beyond 100. */
bool bson_canon(const bson_t *doc, bson_t *out);

#endif
