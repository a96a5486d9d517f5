/*
 * group.h — grouped counts computed by the core: the answer of the ABI's
 * group_count slot (adapter.h) for adapters that leave it NULL, built from
 * the documents of a query.
 *
 * Feed every matching document to a counter, then finish it into
 * {groups: [{_id, total: int64}, ...]}, exactly as MongoDB's
 * [{$match}, {$group: {_id: "$field", total: {$sum: 1}}}, {$sort: {_id: 1}}]
 * would answer (with adapter.h's tie rule for arrays).  No I/O, no globals;
 * a counter is used by one thread at a time.
 */
#ifndef PERSISTOR_CORE_GROUP_H
#define PERSISTOR_CORE_GROUP_H

#include <stdint.h>

#include "persistor/adapter.h"

typedef struct group_counter group_counter;

/* OK if `field` is a field path MongoDB's $group accepts; E_INVALID naming
 * it otherwise (NULL, empty, a component empty or starting with '$'). */
int32_t group_field_check(const char *field, persistor_error *err);

/* A counter for `field` (copied), freed with group_counter_free.  OK,
 * E_INVALID (see group_field_check), E_NOMEM. */
int32_t group_counter_new(const char *field, group_counter **out, persistor_error *err);

/* Count one document under the value its field path reaches.  OK, E_CORRUPT
 * for bytes that are not a BSON document, E_NOMEM. */
int32_t group_counter_add(group_counter *g, const uint8_t *doc, uint32_t len,
                          persistor_error *err);

/* Write the answer into `out` (replacing its content).  The counter may
 * take more documents afterwards.  OK or E_NOMEM. */
int32_t group_counter_finish(group_counter *g, persistor_buffer *out, persistor_error *err);

void group_counter_free(group_counter *g);

#endif
