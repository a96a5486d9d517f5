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
    bson_t in;        /* the caller's fields: a view of its BSON or parsed JSON */
} record;

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

/* Check the caller's record and build the stored document `doc` and its
 * id[PERSISTOR_ID_MAX + 1]; `now` is the handle's clock.  OK or E_INVALID. */
typedef int32_t (*record_build_fn)(const record *rec, int64_t now, bson_t *doc, char *id,
                                   persistor_error *err);

/* How one kind of record is saved. */
typedef struct record_kind {
    profile_collection_kind kind; /* its collection; its key names it in messages */
    const char *event;            /* `<event>_persist_failed` under fail_open */
    const char *saved_event;      /* the info line of a saved record */
    uint32_t write_kind;          /* PERSISTOR_WRITE_INSERT_IF_ABSENT or _UPSERT */
    record_build_fn build;
    const char *const *logged; /* string fields `saved_event` logs, keyed by */
    size_t n_logged;           /* their path's last part: "workflow_id" */
} record_kind;

/* Read `in` (BSON or JSON), build it with k->build, and write it as one
 * write of k->write_kind; on OK or EXISTS log k->saved_event with the id,
 * the string fields at k->logged[] and whether the record existed.  The id
 * ("" when none was built) goes to id_out (may be NULL).  Returns OK,
 * EXISTS, NOT_STORED (every adapter failed and the collection is
 * fail_open: `<event>_persist_failed` was logged), or an error: E_INVALID
 * for a bad record or one over PERSISTOR_MAX_DOCUMENT_BYTES, a storage
 * error under fail_closed. */
int32_t record_save(persistor *p, const record_kind *k, const persistor_record_input *in,
                    char id_out[PERSISTOR_ID_MAX + 1], persistor_error *err);

#endif
