/*
 * record.h — what the domain files that store callers' records share
 * (audit.c, telemetry.c): reading a persistor_record_input as BSON or JSON,
 * typed fields with errors that name the field, refusing the fields
 * persistor sets, storing one document through the chain under the
 * collection's on_failure, and the `<event>` log line of a saved record.
 *
 * Nothing here knows a schema: each caller says which fields it wants.
 */
#ifndef PERSISTOR_CORE_RECORD_H
#define PERSISTOR_CORE_RECORD_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stddef.h>

#include "persistor_internal.h"

/* A caller's record being checked. */
typedef struct record {
    const char *what; /* the subject of messages: "incidents record (t.json)" */
    bson_t in;        /* the caller's fields: a view, see record_parse */
} record;

/* "<collection> record", plus " (<json_source>)" when the record is JSON
 * with a source name, into what[cap]. */
void record_describe(char *what, size_t cap, const char *collection,
                     const persistor_record_input *in);

/* Point rec->in at the caller's document: its BSON (checked with
 * bson_check_document), or its JSON parsed into `owned` (an empty document
 * the caller destroys after rec->in's last use).  OK or E_INVALID. */
int32_t record_parse(const persistor_record_input *in, record *rec, bson_t *owned,
                     persistor_error *err);

/* The field at `path` (dotted: "correlation.workflow_id"), or false when it
 * is absent or null. */
bool record_find(const record *rec, const char *path, bson_iter_t *it);

/* A non-empty string of at most PERSISTOR_ID_MAX bytes at `path`: *out is
 * borrowed from rec->in, NULL when absent and not required. */
int32_t record_string(const record *rec, const char *path, bool required, const char **out,
                      persistor_error *err);

/* An object at `path`. */
int32_t record_document(const record *rec, const char *path, bool required,
                        persistor_error *err);

/* A date at `path` into *out, or `now` when absent.  Strings are refused:
 * the seed's string timestamps sort wrong and never expire. */
int32_t record_date(const record *rec, const char *path, int64_t now, int64_t *out,
                    persistor_error *err);

/* E_INVALID naming the first of the top-level `fields` the record sets
 * (fields persistor writes itself). */
int32_t record_refuse(const record *rec, const char *const *fields, size_t n,
                      persistor_error *err);

/* Append the record's top-level fields to `doc`, except those in skip[]. */
void record_copy_fields(const record *rec, bson_t *doc, const char *const *skip, size_t n_skip);

/* Write `doc` (whose _id is `id`) to collection `kind` as one write of
 * `write_kind`.  Returns OK, EXISTS, NOT_STORED (every adapter failed and
 * the collection is fail_open: `<event>_persist_failed` was logged), or an
 * error: E_INVALID for a document over PERSISTOR_MAX_DOCUMENT_BYTES (named
 * by `what` and the id), a storage error under fail_closed. */
int32_t record_store(persistor *p, profile_collection_kind kind, const char *event,
                     uint32_t write_kind, const bson_t *doc, const char *id, const char *what,
                     persistor_error *err);

/* Log `event` at info: the id, each string field found at paths[] (keyed
 * by the path's last part: "correlation.workflow_id" logs "workflow_id"),
 * and whether the record existed (`result` EXISTS). */
void record_log_saved(const record *rec, const char *event, const char *id,
                      const char *const *paths, size_t n_paths, int32_t result);

#endif
