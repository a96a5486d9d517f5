/*
 * record.c — checking and storing callers' records for the domain files
 * (audit.c, telemetry.c).  Each of them knows its schema; this file only
 * knows how to read a field, say which one is wrong, and write a document
 * the way every record is written: size-checked, through the router, fail
 * open or closed as the profile says.  It must not know any collection.
 */
#include <stdio.h>
#include <string.h>

#include "bson_check.h"
#include "error.h"
#include "json.h"
#include "log.h"
#include "record.h"

/* "<collection> record", plus " (<json_source>)" when the record is JSON
 * with a source name, into what[cap]. */
static void record_describe(char *what, size_t cap, const char *collection,
                            const persistor_record_input *in)
{
    bool named = in != NULL && in->bson == NULL && in->json_source != NULL;
    snprintf(what, cap, "%s record%s%s%s", collection, named ? " (" : "",
             named ? in->json_source : "", named ? ")" : "");
}

/* Point rec->in at the caller's document: its BSON (checked with
 * bson_check_document), or its JSON parsed into `owned` (an empty document
 * the caller destroys after rec->in's last use).  OK or E_INVALID. */
static int32_t record_parse(const persistor_record_input *in, record *rec, bson_t *owned,
                            persistor_error *err)
{
    if (in == NULL || in->struct_size < sizeof *in)
        return error_set(err, PERSISTOR_E_INVALID,
                         "persistor_record_input.struct_size must be set to its sizeof");
    if (in->bson != NULL) {
        if (!bson_init_static(&rec->in, in->bson, in->bson_len))
            return error_set(err, PERSISTOR_E_INVALID, "%s: not a valid BSON document", rec->what);
        return bson_check_document(&rec->in, rec->what, err);
    }
    if (in->json == NULL)
        return error_set(err, PERSISTOR_E_INVALID, "%s: no record given", rec->what);
    int32_t rc = json_to_bson(in->json, strlen(in->json),
                              in->json_source != NULL ? in->json_source : "record", owned, err);
    if (rc == PERSISTOR_OK && !bson_init_static(&rec->in, bson_get_data(owned), owned->len))
        rc = error_set(err, PERSISTOR_E_INVALID, "%s: not a document", rec->what);
    return rc;
}

bool record_find(const record *rec, const char *path, bson_iter_t *it)
{
    bson_iter_t root;
    if (strchr(path, '.') == NULL)
        return bson_iter_init_find(it, &rec->in, path) && !BSON_ITER_HOLDS_NULL(it);
    return bson_iter_init(&root, &rec->in) && bson_iter_find_descendant(&root, path, it) &&
           !BSON_ITER_HOLDS_NULL(it);
}

int32_t record_string(const record *rec, const char *path, bool required, const char **out,
                      persistor_error *err)
{
    bson_iter_t it;
    *out = NULL;
    if (!record_find(rec, path, &it))
        return required ? error_set(err, PERSISTOR_E_INVALID, "%s: \"%s\" is required", rec->what,
                                    path)
                        : PERSISTOR_OK;
    uint32_t len;
    const char *s = BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, &len) : NULL;
    if (s == NULL || len == 0 || len > PERSISTOR_ID_MAX)
        return error_set(err, PERSISTOR_E_INVALID,
                         "%s: \"%s\" must be a non-empty string of at most %d bytes", rec->what,
                         path, PERSISTOR_ID_MAX);
    *out = s;
    return PERSISTOR_OK;
}

int32_t record_document(const record *rec, const char *path, bool required,
                        persistor_error *err)
{
    bson_iter_t it;
    if (!record_find(rec, path, &it))
        return required ? error_set(err, PERSISTOR_E_INVALID,
                                    "%s: \"%s\" is required (an object)", rec->what, path)
                        : PERSISTOR_OK;
    if (!BSON_ITER_HOLDS_DOCUMENT(&it))
        return error_set(err, PERSISTOR_E_INVALID, "%s: \"%s\" must be an object", rec->what,
                         path);
    return PERSISTOR_OK;
}

int32_t record_date(const record *rec, const char *path, int64_t now, int64_t *out,
                    persistor_error *err)
{
    bson_iter_t it;
    *out = now;
    if (!record_find(rec, path, &it))
        return PERSISTOR_OK;
    if (!BSON_ITER_HOLDS_DATE_TIME(&it))
        return error_set(err, PERSISTOR_E_INVALID,
                         "%s: \"%s\" must be a date, e.g. {\"$date\": \"2026-11-22T10:00:00Z\"}",
                         rec->what, path);
    *out = bson_iter_date_time(&it);
    return PERSISTOR_OK;
}

int32_t record_refuse(const record *rec, const char *const *fields, size_t n,
                      persistor_error *err)
{
    bson_iter_t it;
    for (size_t i = 0; i < n; i++)
        if (bson_iter_init_find(&it, &rec->in, fields[i]))
            return error_set(err, PERSISTOR_E_INVALID,
                             "%s: \"%s\" is set by persistor; leave it out", rec->what, fields[i]);
    return PERSISTOR_OK;
}

void record_copy_fields(const record *rec, bson_t *doc, const char *const *skip, size_t n_skip)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, &rec->in))
        return;
    while (bson_iter_next(&it)) {
        bool skipped = false;
        for (size_t i = 0; i < n_skip && !skipped; i++)
            skipped = strcmp(bson_iter_key(&it), skip[i]) == 0;
        if (!skipped)
            bson_append_iter(doc, bson_iter_key(&it), -1, &it);
    }
}

/* Write `doc` (whose _id is `id`) to collection `kind` as one write of
 * `write_kind`, fail open or closed as the profile says. */
static int32_t record_store(persistor *p, profile_collection_kind kind, const char *event,
                            uint32_t write_kind, const bson_t *doc, const char *id,
                            const char *what, persistor_error *err)
{
    if (doc->len > PERSISTOR_MAX_DOCUMENT_BYTES)
        return error_set(err, PERSISTOR_E_INVALID, "%s %s is %u bytes; the limit is %d (16 MiB)",
                         what, id, doc->len, PERSISTOR_MAX_DOCUMENT_BYTES);
    persistor_write_op op = {write_kind, doc->len, id, bson_get_data(doc)};
    int32_t result;
    int32_t rc = router_write(p->router, persistor_collection_name(p, kind), &op, 1, &result, err);
    rc = persistor_on_failure(p, kind, event, &op, &result, 1, rc, err);
    return rc != PERSISTOR_OK ? rc : result;
}

static void record_log_saved(const record *rec, const char *event, const char *id,
                             const char *const *paths, size_t n_paths, int32_t result)
{
    log_line line;
    if (!log_begin(&line, PERSISTOR_LOG_INFO, event))
        return;
    log_str(&line, "id", id);
    bson_iter_t it;
    for (size_t i = 0; i < n_paths; i++) {
        const char *key = strrchr(paths[i], '.');
        if (record_find(rec, paths[i], &it) && BSON_ITER_HOLDS_UTF8(&it))
            log_str(&line, key != NULL ? key + 1 : paths[i], bson_iter_utf8(&it, NULL));
    }
    log_bool(&line, "existed", result == PERSISTOR_EXISTS);
    log_end(&line);
}

int32_t record_save(persistor *p, const record_kind *k, const persistor_record_input *in,
                    char id_out[PERSISTOR_ID_MAX + 1], persistor_error *err)
{
    char what[PERSISTOR_ID_MAX + 64];
    record_describe(what, sizeof what, profile_collection_key(k->kind), in);
    record rec = {.what = what};
    bson_t owned = BSON_INITIALIZER, *doc = bson_new();
    char id[PERSISTOR_ID_MAX + 1] = "";
    int32_t rc = record_parse(in, &rec, &owned, err);
    if (rc == PERSISTOR_OK)
        rc = k->build(&rec, router_now_ms(p->router), doc, id, err);
    if (rc == PERSISTOR_OK)
        rc = record_store(p, k->kind, k->event, k->write_kind, doc, id, what, err);
    if (rc == PERSISTOR_OK || rc == PERSISTOR_EXISTS)
        record_log_saved(&rec, k->saved_event, id, k->logged, k->n_logged, rc);
    if (id_out != NULL)
        snprintf(id_out, PERSISTOR_ID_MAX + 1, "%s", id);
    bson_destroy(doc);
    bson_destroy(&owned);
    return rc;
}
