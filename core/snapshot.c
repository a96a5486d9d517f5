/*
 * snapshot.c — kernel snapshots on top of generic collections.
 *
 * Maps the seed's persistor calls (append, has, getByHash, load, listHashes,
 * latest, delete, stats) onto router operations on the `snapshots`
 * collection.  A snapshot document is
 *
 *   { _id: <hash>, tenantId, xcId, ts: Date, createdAt: Date, ...content }
 *
 * where content is the caller's document (state, events, metadata...).  The
 * hash is SHA-256 hex over "persistor-snapshot-v1\0" tenant "\0" xcId "\0"
 * <ts in decimal ms> "\0" <content BSON bytes>, so the same snapshot appended
 * twice is stored once.  This file must not know which adapter answers.
 */
#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bson_check.h"
#include "buffer.h"
#include "error.h"
#include "json.h"
#include "log.h"
#include "persistor_internal.h"
#include "sha256.h"

#define SNAPSHOT_DEFAULT_TENANT "default"
/* xcId and tenantId may be longer than a hash; a caller's hash may not, so
 * every hash buffer of the API is PERSISTOR_HASH_HEX_LEN + 1 bytes. */
#define SNAPSHOT_MAX_ID_LEN 256

static const char *const snapshot_reserved_fields[] = {"_id", "tenantId", "xcId", "ts",
                                                        "createdAt"};

/* Indexes: load and latest walk one context in ts order; ts alone serves
 * time-range queries across contexts.  TTL is on createdAt. */
static const persistor_index_key snapshot_xc_ts_keys[] = {{"xcId", 1}, {"ts", 1}};
static const persistor_index_key snapshot_ts_keys[] = {{"ts", 1}};
static const persistor_index_spec snapshot_indexes[] = {
    {"xcId_1_ts_1", snapshot_xc_ts_keys, 2, 0},
    {"ts_1", snapshot_ts_keys, 1, 0},
};

size_t snapshot_collection_specs(const profile *prof, persistor_collection_spec *specs)
{
    const profile_collection *c = &prof->collections[PROFILE_COLL_SNAPSHOTS];
    specs[0] = (persistor_collection_spec){
        .struct_size = sizeof specs[0],
        .name = c->name,
        .indexes = snapshot_indexes,
        .n_indexes = sizeof snapshot_indexes / sizeof snapshot_indexes[0],
        .ttl_field = c->ttl_seconds > 0 ? "createdAt" : NULL,
        .ttl_seconds = c->ttl_seconds,
    };
    return 1;
}

static const char *snapshot_collection(const persistor *p)
{
    return persistor_collection_name(p, PROFILE_COLL_SNAPSHOTS);
}

/* ------------------------------------------------------------------ */
/* Building documents                                                 */

static int32_t snapshot_check_id(const char *what, const char *value, persistor_error *err)
{
    if (value == NULL || *value == '\0')
        return error_set(err, PERSISTOR_E_INVALID, "snapshot %s is missing or empty", what);
    size_t n = strlen(value);
    if (n > SNAPSHOT_MAX_ID_LEN)
        return error_set(err, PERSISTOR_E_INVALID, "snapshot %s is %zu bytes; the limit is %d",
                         what, n, SNAPSHOT_MAX_ID_LEN);
    if (!bson_utf8_validate(value, n, false))
        return error_set(err, PERSISTOR_E_INVALID, "snapshot %s is not valid UTF-8", what);
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)value[i] < 0x20)
            return error_set(err, PERSISTOR_E_INVALID,
                             "snapshot %s contains a control character", what);
    return PERSISTOR_OK;
}

/* The content as BSON: a view of the caller's bytes (checked, not copied),
 * or `owned` parsed from JSON.  *content points at one of the two. */
static int32_t snapshot_content(const persistor_snapshot_input *in, bson_t *view, bson_t *owned,
                                const bson_t **content, persistor_error *err)
{
    *content = owned;
    if (in->content_bson != NULL) {
        char what[300];
        snprintf(what, sizeof what, "snapshot content for %s", in->xc_id);
        if (!bson_init_static(view, in->content_bson, in->content_bson_len))
            return error_set(err, PERSISTOR_E_INVALID, "%s: not a valid BSON document", what);
        *content = view;
        return bson_check_document(view, what, err);
    }
    if (in->content_json == NULL)
        return PERSISTOR_OK;
    const char *source = in->content_json_source != NULL ? in->content_json_source : "content";
    return json_to_bson(in->content_json, strlen(in->content_json), source, owned, err);
}

static int32_t snapshot_check_reserved(const bson_t *content, const char *xc_id,
                                       persistor_error *err)
{
    bson_iter_t it;
    if (!bson_iter_init(&it, content))
        return error_set(err, PERSISTOR_E_INVALID, "snapshot content for %s is malformed", xc_id);
    while (bson_iter_next(&it)) {
        for (size_t i = 0; i < sizeof snapshot_reserved_fields / sizeof *snapshot_reserved_fields;
             i++)
            if (strcmp(bson_iter_key(&it), snapshot_reserved_fields[i]) == 0)
                return error_set(err, PERSISTOR_E_INVALID,
                                 "snapshot content for %s sets \"%s\", which persistor sets "
                                 "itself (pass it as an argument instead)",
                                 xc_id, snapshot_reserved_fields[i]);
    }
    return PERSISTOR_OK;
}

static void snapshot_hash(const char *tenant, const char *xc_id, int64_t ts,
                          const bson_t *content, char out[PERSISTOR_HASH_HEX_LEN + 1])
{
    char ts_text[32];
    snprintf(ts_text, sizeof ts_text, "%lld", (long long)ts);
    const char *const parts[] = {"persistor-snapshot-v1", tenant, xc_id, ts_text};
    sha256_hex_of(parts, 4, bson_get_data(content), content->len, out);
}

/* Build the stored document of one input into `doc` and its id. */
static int32_t snapshot_build(const persistor *p, const persistor_snapshot_input *in,
                              bson_t *doc, char id[SNAPSHOT_MAX_ID_LEN + 1], persistor_error *err)
{
    if (in == NULL || in->struct_size < sizeof(persistor_snapshot_input))
        return error_set(err, PERSISTOR_E_INVALID,
                         "persistor_snapshot_input.struct_size must be set to its sizeof");
    int32_t rc = snapshot_check_id("xc_id", in->xc_id, err);
    const char *tenant = in->tenant_id != NULL ? in->tenant_id : SNAPSHOT_DEFAULT_TENANT;
    if (rc == PERSISTOR_OK)
        rc = snapshot_check_id("tenant_id", tenant, err);
    if (rc == PERSISTOR_OK && in->hash != NULL)
        rc = snapshot_check_id("hash", in->hash, err);
    if (rc == PERSISTOR_OK && in->hash != NULL && strlen(in->hash) > PERSISTOR_HASH_HEX_LEN)
        rc = error_set(err, PERSISTOR_E_INVALID, "snapshot hash is %zu bytes; the limit is %d",
                       strlen(in->hash), PERSISTOR_HASH_HEX_LEN);
    if (rc != PERSISTOR_OK)
        return rc;

    bson_t view, owned = BSON_INITIALIZER;
    const bson_t *content;
    rc = snapshot_content(in, &view, &owned, &content, err);
    if (rc == PERSISTOR_OK)
        rc = snapshot_check_reserved(content, in->xc_id, err);
    if (rc != PERSISTOR_OK) {
        bson_destroy(&owned);
        return rc;
    }
    int64_t now = router_now_ms(p->router);
    int64_t ts = in->ts_ms == PERSISTOR_TS_NOW ? now : in->ts_ms;
    if (in->hash != NULL)
        snprintf(id, SNAPSHOT_MAX_ID_LEN + 1, "%s", in->hash);
    else
        snapshot_hash(tenant, in->xc_id, ts, content, id);

    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_UTF8(doc, "tenantId", tenant);
    BSON_APPEND_UTF8(doc, "xcId", in->xc_id);
    BSON_APPEND_DATE_TIME(doc, "ts", ts);
    BSON_APPEND_DATE_TIME(doc, "createdAt", now);
    bson_concat(doc, content);
    bson_destroy(&owned);
    if (doc->len > PERSISTOR_MAX_DOCUMENT_BYTES)
        return error_set(err, PERSISTOR_E_INVALID,
                         "snapshot %s of %s is %u bytes; the limit is %d bytes (16 MiB)", id,
                         in->xc_id, doc->len, PERSISTOR_MAX_DOCUMENT_BYTES);
    return PERSISTOR_OK;
}

/* ------------------------------------------------------------------ */
/* Append                                                             */

int32_t persistor_snapshot_append_many(persistor *p, const persistor_snapshot_input *in, size_t n,
                                       char (*hashes_out)[PERSISTOR_HASH_HEX_LEN + 1],
                                       int32_t *results, persistor_error *err)
{
    if (n == 0)
        return PERSISTOR_OK;
    if (n > UINT32_MAX)
        return error_set(err, PERSISTOR_E_INVALID, "a batch holds at most %u snapshots",
                         UINT32_MAX);
    /* bson_t wants 128-byte alignment: bson_new() gives it, calloc not. */
    bson_t **docs = calloc(n, sizeof *docs);
    char (*ids)[SNAPSHOT_MAX_ID_LEN + 1] = calloc(n, sizeof *ids);
    persistor_write_op *ops = calloc(n, sizeof *ops);
    int32_t *own_results = results != NULL ? NULL : calloc(n, sizeof *own_results);
    int32_t rc = PERSISTOR_OK;
    size_t built;
    if (docs == NULL || ids == NULL || ops == NULL || (results == NULL && own_results == NULL)) {
        rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory appending %zu snapshots", n);
        goto done;
    }
    for (built = 0; built < n; built++) {
        if ((docs[built] = bson_new()) == NULL) {
            rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory appending %zu snapshots", n);
            goto done;
        }
        rc = snapshot_build(p, &in[built], docs[built], ids[built], err);
        if (rc != PERSISTOR_OK) {
            if (n > 1)
                error_prefix(err, "snapshot %zu of %zu", built + 1, n);
            goto done;
        }
        ops[built] = (persistor_write_op){.kind = PERSISTOR_WRITE_INSERT_IF_ABSENT,
                                          .id = ids[built],
                                          .doc = bson_get_data(docs[built]),
                                          .doc_len = docs[built]->len};
    }
    int32_t *answers = results != NULL ? results : own_results;
    rc = router_write(p->router, snapshot_collection(p), ops, (uint32_t)n, answers, err);
    rc = persistor_on_failure(p, PROFILE_COLL_SNAPSHOTS, "snapshot", ops, answers, n, rc, err);
    for (size_t i = 0; hashes_out != NULL && i < n; i++)
        snprintf(hashes_out[i], PERSISTOR_HASH_HEX_LEN + 1, "%s", ids[i]);
done:
    for (size_t i = 0; docs != NULL && i < n; i++)
        bson_destroy(docs[i]); /* NULL-safe */
    free(docs);
    free(ids);
    free(ops);
    free(own_results);
    return rc;
}

int32_t persistor_snapshot_append(persistor *p, const persistor_snapshot_input *in,
                                  char *hash_out, persistor_error *err)
{
    char hash[1][PERSISTOR_HASH_HEX_LEN + 1];
    int32_t result = PERSISTOR_OK;
    int32_t rc = persistor_snapshot_append_many(p, in, 1, hash, &result, err);
    if (rc != PERSISTOR_OK)
        return rc;
    if (hash_out != NULL)
        memcpy(hash_out, hash[0], sizeof hash[0]);
    log_line line;
    if (log_begin(&line, PERSISTOR_LOG_DEBUG, "snapshot_appended")) {
        log_str(&line, "hash", hash[0]);
        log_str(&line, "xcId", in->xc_id);
        log_bool(&line, "existed", result == PERSISTOR_EXISTS);
        log_end(&line);
    }
    return result;
}

/* ------------------------------------------------------------------ */
/* Reading                                                            */

static const char *snapshot_utf8(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, key) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : "";
}

/* A bounds-checked reader of the fixed header persistor writes first:
 * _id, tenantId, xcId (strings), ts, createdAt (dates). */
typedef struct header_reader {
    const uint8_t *p, *end;
} header_reader;

static bool header_key(header_reader *r, uint8_t type, const char *key, size_t key_len)
{
    if ((size_t)(r->end - r->p) < 1 + key_len + 1 || r->p[0] != type ||
        memcmp(r->p + 1, key, key_len + 1) != 0)
        return false;
    r->p += 1 + key_len + 1;
    return true;
}

static bool header_string(header_reader *r, const char *key, size_t key_len, const char **out)
{
    int32_t n;
    if (!header_key(r, BSON_TYPE_UTF8, key, key_len) || r->end - r->p < 4)
        return false;
    memcpy(&n, r->p, 4);
    n = (int32_t)BSON_UINT32_FROM_LE((uint32_t)n);
    if (n < 1 || r->end - r->p - 4 < n || r->p[4 + n - 1] != '\0')
        return false;
    *out = (const char *)r->p + 4;
    r->p += 4 + n;
    return true;
}

static bool header_date(header_reader *r, const char *key, size_t key_len, int64_t *out)
{
    uint64_t v;
    if (!header_key(r, BSON_TYPE_DATE_TIME, key, key_len) || r->end - r->p < 8)
        return false;
    memcpy(&v, r->p, 8);
    *out = (int64_t)BSON_UINT64_FROM_LE(v);
    r->p += 8;
    return true;
}

/* The five fields from the header persistor writes, without an iterator:
 * load reads every snapshot of a context, so this is its hot path. */
static bool snapshot_view_header(const uint8_t *data, uint32_t len, persistor_snapshot *out)
{
    header_reader r = {data + 4, data + len - 1};
    return len >= 5 && header_string(&r, "_id", 3, &out->hash) &&
           header_string(&r, "tenantId", 8, &out->tenant_id) &&
           header_string(&r, "xcId", 4, &out->xc_id) && header_date(&r, "ts", 2, &out->ts_ms) &&
           header_date(&r, "createdAt", 9, &out->created_at_ms);
}

/* Fill `out` with pointers into the document itself: BSON strings are
 * NUL-terminated in place, so a view costs no copy.  Valid as long as the
 * bytes are.  Documents persistor wrote take the header fast path; any
 * other order is read in one pass that stops once the five fields are
 * found.  A missing string is "", a missing date 0. */
static int32_t snapshot_view(const uint8_t *data, uint32_t len, persistor_snapshot *out,
                             persistor_error *err)
{
    bson_t view;
    bson_iter_t it;
    if (!bson_init_static(&view, data, len) || !bson_iter_init(&it, &view))
        return error_set(err, PERSISTOR_E_CORRUPT, "a stored snapshot is not valid BSON");
    *out = (persistor_snapshot){.hash = "", .tenant_id = "", .xc_id = "", .bson = data,
                                .bson_len = len};
    if (snapshot_view_header(data, len, out))
        return PERSISTOR_OK;
    *out = (persistor_snapshot){.hash = "", .tenant_id = "", .xc_id = "", .bson = data,
                                .bson_len = len};
    for (int found = 0; found < 5 && bson_iter_next(&it);) {
        const char *key = bson_iter_key(&it);
        const char **text = strcmp(key, "_id") == 0        ? &out->hash
                            : strcmp(key, "tenantId") == 0 ? &out->tenant_id
                            : strcmp(key, "xcId") == 0     ? &out->xc_id
                                                           : NULL;
        int64_t *date = strcmp(key, "ts") == 0          ? &out->ts_ms
                        : strcmp(key, "createdAt") == 0 ? &out->created_at_ms
                                                        : NULL;
        if (text != NULL && BSON_ITER_HOLDS_UTF8(&it)) {
            *text = bson_iter_utf8(&it, NULL);
            found++;
        } else if (date != NULL && BSON_ITER_HOLDS_DATE_TIME(&it)) {
            *date = bson_iter_date_time(&it);
            found++;
        }
    }
    return PERSISTOR_OK;
}

/* An owned snapshot: one allocation, the struct then a copy of the bytes. */
static int32_t snapshot_from_bson(const uint8_t *data, uint32_t len, persistor_snapshot **out,
                                  persistor_error *err)
{
    persistor_snapshot *s = malloc(sizeof *s + len);
    if (s == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory reading a snapshot");
    memcpy(s + 1, data, len);
    int32_t rc = snapshot_view((const uint8_t *)(s + 1), len, s, err);
    if (rc != PERSISTOR_OK) {
        free(s);
        return rc;
    }
    *out = s;
    return PERSISTOR_OK;
}

void persistor_snapshot_free(persistor_snapshot *s)
{
    free(s);
}

char *persistor_snapshot_to_json(const persistor_snapshot *s)
{
    char *json = json_from_bson(s->bson, s->bson_len);
    if (json == NULL)
        return NULL;
    char *copy = strdup(json); /* persistor_free is free(), not bson_free */
    bson_free(json);
    return copy;
}

int32_t persistor_snapshot_has(persistor *p, const char *hash, persistor_error *err)
{
    return router_exists(p->router, snapshot_collection(p), hash, NULL, err);
}

int32_t persistor_snapshot_get(persistor *p, const char *hash, persistor_snapshot **out,
                               persistor_error *err)
{
    persistor_buffer buf = {0};
    bool degraded = false;
    int32_t rc = router_get(p->router, snapshot_collection(p), hash, &buf, &degraded, err);
    if (rc == PERSISTOR_OK)
        rc = snapshot_from_bson(buf.data, buf.len, out, err);
    if (rc == PERSISTOR_OK)
        (*out)->degraded = degraded;
    buffer_free(&buf);
    return rc;
}

/* The current snapshot is a view of the cursor's document, which stays
 * valid until the next cursor call: exactly the iterator's promise. */
struct persistor_snapshot_iter {
    router_cursor *cursor;
    persistor_snapshot current;
};

/* A cursor over one context, ordered by ts then _id (or reversed). */
static int32_t snapshot_query_context(persistor *p, const char *xc_id, int direction,
                                      uint64_t limit, router_cursor **out, persistor_error *err)
{
    int32_t rc = snapshot_check_id("xc_id", xc_id, err);
    if (rc != PERSISTOR_OK)
        return rc;
    bson_t filter = BSON_INITIALIZER, sort = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&filter, "xcId", xc_id);
    BSON_APPEND_INT32(&sort, "ts", direction);
    BSON_APPEND_INT32(&sort, "_id", direction);
    persistor_query q = {.struct_size = sizeof q,
                         .filter = bson_get_data(&filter),
                         .filter_len = filter.len,
                         .sort = bson_get_data(&sort),
                         .sort_len = sort.len,
                         .limit = limit};
    rc = router_query(p->router, snapshot_collection(p), &q, out, err);
    bson_destroy(&filter);
    bson_destroy(&sort);
    return rc;
}

int32_t persistor_snapshot_load(persistor *p, const char *xc_id, persistor_snapshot_iter **out,
                                persistor_error *err)
{
    persistor_snapshot_iter *it = calloc(1, sizeof *it);
    if (it == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory loading %s", xc_id);
    int32_t rc = snapshot_query_context(p, xc_id, 1, 0, &it->cursor, err);
    if (rc != PERSISTOR_OK) {
        free(it);
        return rc;
    }
    *out = it;
    return PERSISTOR_OK;
}

int32_t persistor_snapshot_iter_next(persistor_snapshot_iter *it, const persistor_snapshot **snap,
                                     persistor_error *err)
{
    const uint8_t *doc;
    uint32_t len;
    int32_t rc = router_cursor_next(it->cursor, &doc, &len, err);
    if (rc == PERSISTOR_OK)
        rc = snapshot_view(doc, len, &it->current, err);
    if (rc == PERSISTOR_OK) {
        it->current.degraded = router_cursor_degraded(it->cursor);
        *snap = &it->current;
    }
    return rc;
}

int persistor_snapshot_iter_degraded(const persistor_snapshot_iter *it)
{
    return router_cursor_degraded(it->cursor);
}

void persistor_snapshot_iter_free(persistor_snapshot_iter *it)
{
    if (it == NULL)
        return;
    router_cursor_close(it->cursor);
    free(it);
}

void persistor_string_list_free(persistor_string_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++)
        free(list->items[i]);
    free(list->items);
    list->items = NULL;
    list->count = 0;
    list->degraded = 0;
}

static int32_t string_list_push(persistor_string_list *list, const char *s)
{
    char **grown = realloc(list->items, (list->count + 1) * sizeof *grown);
    if (grown == NULL)
        return PERSISTOR_E_NOMEM;
    list->items = grown;
    if ((list->items[list->count] = strdup(s)) == NULL)
        return PERSISTOR_E_NOMEM;
    list->count++;
    return PERSISTOR_OK;
}

int32_t persistor_snapshot_list_hashes(persistor *p, const char *xc_id,
                                       persistor_string_list *out, persistor_error *err)
{
    router_cursor *c;
    out->items = NULL;
    out->count = 0;
    int32_t rc = snapshot_query_context(p, xc_id, 1, 0, &c, err);
    if (rc != PERSISTOR_OK)
        return rc;
    out->degraded = router_cursor_degraded(c);
    const uint8_t *doc;
    uint32_t len;
    while ((rc = router_cursor_next(c, &doc, &len, err)) == PERSISTOR_OK) {
        bson_t view;
        if (!bson_init_static(&view, doc, len)) {
            rc = error_set(err, PERSISTOR_E_CORRUPT, "a stored snapshot of %s is not BSON", xc_id);
            break;
        }
        if (string_list_push(out, snapshot_utf8(&view, "_id")) != PERSISTOR_OK) {
            rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory listing %s", xc_id);
            break;
        }
    }
    router_cursor_close(c);
    if (rc == PERSISTOR_ITER_END)
        return PERSISTOR_OK;
    persistor_string_list_free(out);
    return rc;
}

int32_t persistor_snapshot_latest(persistor *p, const char *xc_id, persistor_snapshot **out,
                                  persistor_error *err)
{
    router_cursor *c;
    int32_t rc = snapshot_query_context(p, xc_id, -1, 1, &c, err);
    if (rc != PERSISTOR_OK)
        return rc;
    const uint8_t *doc;
    uint32_t len;
    rc = router_cursor_next(c, &doc, &len, err);
    if (rc == PERSISTOR_OK)
        rc = snapshot_from_bson(doc, len, out, err);
    if (rc == PERSISTOR_OK)
        (*out)->degraded = router_cursor_degraded(c);
    else if (rc == PERSISTOR_ITER_END)
        rc = PERSISTOR_NOT_FOUND;
    router_cursor_close(c);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Delete, expire, stats                                              */

static int32_t snapshot_delete_ids(persistor *p, const persistor_string_list *ids,
                                   uint64_t *deleted, persistor_error *err)
{
    *deleted = 0;
    if (ids->count == 0)
        return PERSISTOR_OK;
    persistor_write_op *ops = calloc(ids->count, sizeof *ops);
    int32_t *results = calloc(ids->count, sizeof *results);
    int32_t rc;
    if (ops == NULL || results == NULL) {
        rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory deleting snapshots");
        goto done;
    }
    for (size_t i = 0; i < ids->count; i++)
        ops[i] = (persistor_write_op){.kind = PERSISTOR_WRITE_DELETE, .id = ids->items[i]};
    rc = router_write(p->router, snapshot_collection(p), ops, (uint32_t)ids->count, results, err);
    for (size_t i = 0; rc == PERSISTOR_OK && i < ids->count; i++)
        *deleted += results[i] == PERSISTOR_OK;
done:
    free(ops);
    free(results);
    return rc;
}

int32_t persistor_snapshot_delete(persistor *p, const char *hash, persistor_error *err)
{
    int32_t rc = snapshot_check_id("hash", hash, err);
    if (rc != PERSISTOR_OK)
        return rc;
    persistor_write_op op = {.kind = PERSISTOR_WRITE_DELETE, .id = hash};
    int32_t result = PERSISTOR_OK;
    rc = router_write(p->router, snapshot_collection(p), &op, 1, &result, err);
    return rc != PERSISTOR_OK ? rc : result;
}

int32_t persistor_snapshot_delete_context(persistor *p, const char *xc_id, uint64_t *deleted,
                                          persistor_error *err)
{
    persistor_string_list ids;
    uint64_t n = 0;
    int32_t rc = persistor_snapshot_list_hashes(p, xc_id, &ids, err);
    if (rc != PERSISTOR_OK)
        return rc;
    if (ids.degraded)
        rc = error_set(err, PERSISTOR_E_UNAVAILABLE,
                       "cannot delete every snapshot of %s while the primary is down: the "
                       "fallback holds only what was written during the outage; try again when "
                       "`persistor health` shows the primary's breaker closed",
                       xc_id);
    else
        rc = snapshot_delete_ids(p, &ids, &n, err);
    persistor_string_list_free(&ids);
    if (deleted != NULL)
        *deleted = n;
    return rc;
}

int32_t persistor_snapshot_expire(persistor *p, uint64_t *removed, persistor_error *err)
{
    return router_expire(p->router, snapshot_collection(p), removed, err);
}

int32_t persistor_stats_get(persistor *p, persistor_stats *out, persistor_error *err)
{
    persistor_collection_stats st;
    const char *type = "";
    bool degraded = false;
    int32_t rc = router_stats(p->router, snapshot_collection(p), &st, &type, &degraded, err);
    if (rc != PERSISTOR_OK)
        return rc;
    out->item_count = st.item_count;
    out->total_size = st.total_size;
    out->average_item_size = st.item_count ? (double)st.total_size / (double)st.item_count : 0.0;
    snprintf(out->adapter_type, sizeof out->adapter_type, "%s", type);
    out->degraded = degraded;
    return PERSISTOR_OK;
}
