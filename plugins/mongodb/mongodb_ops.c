/*
 * mongodb_ops.c — the data path: write, get, exists, query and cursors,
 * count and stats, each on a client popped from the pool for the call (a
 * cursor keeps its client until it is closed).
 *
 * Writes.  Inserts and upserts go to the server in one unordered bulk
 * operation per run of them (libmongoc sends a run's inserts and its
 * upserts as separate commands, one after the other, so ops still apply in
 * the batch's order).  Insert-if-absent is an insert: a duplicate key on
 * `_id` answers EXISTS ("already stored"), and so does a duplicate on a
 * unique secondary index.  Upsert is replaceOne({_id}, doc, upsert): a
 * duplicate on another unique index is EXISTS; one on `_id` itself can only
 * be a concurrent insert racing the upsert, and is RETRY (nothing applied).
 *
 * Upsert-if-newer is one conditional replace, atomic on the server:
 * replaceOne({_id, $or: [{vf: {$lt: new}}, {vf: null}]}, doc, upsert).  It
 * matches a stored document whose version sorts before the new one (null
 * and missing before any value), replaces it, and inserts when the id is
 * absent; when the stored version is the same or later nothing matches,
 * the upsert's insert meets the stored `_id`, and that duplicate key is the
 * answer EXISTS.  $lt compares within one BSON type (numbers of every
 * width together), as the host promises versions of one type.  A new
 * document without a version (or null) is never after anything stored: it
 * is a plain insert, EXISTS when the id is taken.
 *
 * Deletes: each DELETE is its own `delete` command, between the bulk runs.
 * An unordered bulk reply only gives nRemoved for all its deletes
 * together, and the contract wants NOT_FOUND per op; checking existence
 * first would race with other writers (two processes share a store).  One
 * command per delete is exact and keeps the batch's order (delete a then
 * insert a works); deletes are rare here (TTL expiry is native), so
 * correctness wins over the round trips.
 *
 * Documents are sent as the host gave them (validate: false: the host
 * already checked them; the server judges names it cannot store), and come
 * back byte for byte (dates are BSON dates because the host's are).
 *
 * Queries: the filter and sort are compiled with host->matcher_new and
 * host->sorter_new first, so every adapter refuses the same queries with
 * the same E_INVALID, then the server runs filter, sort, skip and limit.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mongodb_internal.h"

#define MG_PENDING INT32_MIN /* results[i] not answered yet */

struct persistor_cursor {
    persistor_instance *inst;
    mongoc_client_t *client;
    mongoc_collection_t *coll;
    mongoc_cursor_t *cursor;
    int done;
    char collection[256];
};

static mongoc_collection_t *mg_collection(persistor_instance *inst, mongoc_client_t *client,
                                          const char *name)
{
    return mongoc_client_get_collection(client, inst->database, name);
}

static int64_t mg_reply_int(const bson_t *reply, const char *key)
{
    bson_iter_t it;
    if (reply != NULL && bson_iter_init_find(&it, reply, key) && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_int64(&it);
    return 0;
}

/* ---- writes ------------------------------------------------------------ */

/* Was this duplicate key on the `_id` index?  The server names the key in
 * keyPattern (4.4 and later) and the index in errmsg ("index: _id_ "). */
static int mg_dup_on_id(const bson_t *werr)
{
    bson_iter_t it, kp;
    if (bson_iter_init_find(&it, werr, "keyPattern") && BSON_ITER_HOLDS_DOCUMENT(&it) &&
        bson_iter_recurse(&it, &kp)) {
        return bson_iter_next(&kp) && strcmp(bson_iter_key(&kp), "_id") == 0 &&
               !bson_iter_next(&kp);
    }
    if (bson_iter_init_find(&it, werr, "errmsg") && BSON_ITER_HOLDS_UTF8(&it))
        return strstr(bson_iter_utf8(&it, NULL), "index: _id_ ") != NULL;
    return 0;
}

static const char *mg_kind_name(uint32_t kind)
{
    switch (kind) {
    case PERSISTOR_WRITE_UPSERT: return "upsert";
    case PERSISTOR_WRITE_UPSERT_IF_NEWER: return "upsert-if-newer";
    default: return "insert";
    }
}

/* Answer the ops of the bulk's writeErrors.  Returns the first error class
 * met among them (filling err), or OK when they are all EXISTS. */
static int32_t mg_write_errors(persistor_instance *inst, const char *collection,
                               const bson_t *reply, const uint32_t *map, uint32_t m,
                               const persistor_write_op *ops, int32_t *results,
                               persistor_error *err)
{
    bson_iter_t it, arr;
    int32_t first = PERSISTOR_OK;
    if (!bson_iter_init_find(&it, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        !bson_iter_recurse(&it, &arr))
        return PERSISTOR_OK;
    while (bson_iter_next(&arr)) {
        uint32_t len;
        const uint8_t *data;
        bson_t we;
        if (!BSON_ITER_HOLDS_DOCUMENT(&arr))
            continue;
        bson_iter_document(&arr, &len, &data);
        if (!bson_init_static(&we, data, len))
            continue;
        int64_t index = mg_reply_int(&we, "index"), code = mg_reply_int(&we, "code");
        if (index < 0 || (uint64_t)index >= m)
            continue;
        uint32_t i = map[index];
        /* Upsert-if-newer: a duplicate _id is the stored, newer version. */
        if (code == 11000 && !(ops[i].kind == PERSISTOR_WRITE_UPSERT && mg_dup_on_id(&we))) {
            results[i] = PERSISTOR_EXISTS;
            continue;
        }
        bson_error_t berr = {.domain = MONGOC_ERROR_SERVER, .code = (uint32_t)code};
        bson_iter_t msg;
        if (bson_iter_init_find(&msg, &we, "errmsg") && BSON_ITER_HOLDS_UTF8(&msg))
            bson_strncpy(berr.message, bson_iter_utf8(&msg, NULL), sizeof berr.message);
        char op[300];
        snprintf(op, sizeof op, "%s of %s", mg_kind_name(ops[i].kind), ops[i].id);
        persistor_error scratch;
        int32_t cls = mg_error(inst, first == PERSISTOR_OK ? err : &scratch, &berr, &we,
                               MG_WRITE, op, collection);
        if (code == 11000) /* a racing insert of the same _id: not applied */
            cls = inst->host->error_set(first == PERSISTOR_OK ? err : &scratch,
                                        PERSISTOR_E_RETRY,
                                        "mongodb upsert of %s %s on %s: another writer inserted "
                                        "the same _id at the same time; nothing applied, try "
                                        "again", ops[i].id, collection, inst->where);
        results[i] = cls;
        if (first == PERSISTOR_OK)
            first = cls;
    }
    return first;
}

static int mg_reply_has_array(const bson_t *reply, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, reply, key) && BSON_ITER_HOLDS_ARRAY(&it) &&
           bson_iter_recurse(&it, &it) && bson_iter_next(&it);
}

/* Has a write error the code of the bulk's error?  Then the bulk's error
 * is that write error, not a failure of the command or the connection. */
static int mg_error_is_write_error(const bson_t *reply, const bson_error_t *berr)
{
    bson_iter_t it, arr, code;
    if (berr->domain != MONGOC_ERROR_SERVER || !bson_iter_init_find(&it, reply, "writeErrors") ||
        !BSON_ITER_HOLDS_ARRAY(&it) || !bson_iter_recurse(&it, &arr))
        return 0;
    while (bson_iter_next(&arr)) {
        bson_iter_t doc;
        if (BSON_ITER_HOLDS_DOCUMENT(&arr) && bson_iter_recurse(&arr, &doc) &&
            bson_iter_find(&doc, "code") && (code = doc, BSON_ITER_HOLDS_NUMBER(&code)) &&
            bson_iter_as_int64(&code) == (int64_t)berr->code)
            return 1;
    }
    return 0;
}

/* The selector of an upsert-if-newer of `doc` versioned by `field` into
 * `sel`: {_id, $or: [{field: {$lt: its value}}, {field: null}]}.  false
 * when the document has no version (missing or null): then nothing stored
 * is older, and the op is an insert. */
static bool mg_newer_selector(const bson_t *doc, const char *id, const char *field, bson_t *sel)
{
    bson_iter_t it, v;
    bson_t alts, clause, cmp;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, field, &v) ||
        BSON_ITER_HOLDS_NULL(&v))
        return false;
    BSON_APPEND_UTF8(sel, "_id", id);
    BSON_APPEND_ARRAY_BEGIN(sel, "$or", &alts);
    BSON_APPEND_DOCUMENT_BEGIN(&alts, "0", &clause);
    BSON_APPEND_DOCUMENT_BEGIN(&clause, field, &cmp);
    bson_append_iter(&cmp, "$lt", -1, &v);
    bson_append_document_end(&clause, &cmp);
    bson_append_document_end(&alts, &clause);
    BSON_APPEND_DOCUMENT_BEGIN(&alts, "1", &clause);
    BSON_APPEND_NULL(&clause, field);
    bson_append_document_end(&alts, &clause);
    bson_append_array_end(sel, &alts);
    return true;
}

/* One unordered bulk of the inserts and upserts ops[map[0..m)].  Answers
 * each of them; returns OK or the error class (err filled).  `version` is
 * the collection's version_field (for upsert-if-newer ops), or NULL. */
static int32_t mg_bulk(persistor_instance *inst, mongoc_collection_t *coll, const char *collection,
                       const char *version, const persistor_write_op *ops, const uint32_t *map,
                       uint32_t m, int32_t *results, persistor_error *err)
{
    bson_t opts = BSON_INITIALIZER, iopts = BSON_INITIALIZER, ropts = BSON_INITIALIZER, reply;
    bson_error_t berr;
    BSON_APPEND_BOOL(&opts, "ordered", false);
    BSON_APPEND_BOOL(&iopts, "validate", false);
    BSON_APPEND_BOOL(&ropts, "validate", false);
    BSON_APPEND_BOOL(&ropts, "upsert", true);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts(coll, &opts);
    int32_t rc = PERSISTOR_OK;
    for (uint32_t k = 0; k < m && rc == PERSISTOR_OK; k++) {
        const persistor_write_op *op = &ops[map[k]];
        bson_t doc, sel = BSON_INITIALIZER;
        bool ok = bson_init_static(&doc, op->doc, op->doc_len);
        if (ok && op->kind == PERSISTOR_WRITE_UPSERT_IF_NEWER) {
            ok = mg_newer_selector(&doc, op->id, version, &sel)
                     ? mongoc_bulk_operation_replace_one_with_opts(bulk, &sel, &doc, &ropts, &berr)
                     : mongoc_bulk_operation_insert_with_opts(bulk, &doc, &iopts, &berr);
        } else if (ok && op->kind == PERSISTOR_WRITE_INSERT_IF_ABSENT) {
            ok = mongoc_bulk_operation_insert_with_opts(bulk, &doc, &iopts, &berr);
        } else if (ok) {
            BSON_APPEND_UTF8(&sel, "_id", op->id);
            ok = mongoc_bulk_operation_replace_one_with_opts(bulk, &sel, &doc, &ropts, &berr);
        } else {
            bson_set_error(&berr, MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID,
                           "the document's BSON frame is damaged");
        }
        bson_destroy(&sel);
        if (!ok) /* refused before anything was sent: nothing applied */
            rc = mg_error(inst, err, &berr, NULL, MG_WRITE, "write", collection);
    }
    if (rc != PERSISTOR_OK) {
        for (uint32_t k = 0; k < m; k++)
            results[map[k]] = rc;
        goto done;
    }
    uint32_t ok = mongoc_bulk_operation_execute(bulk, &reply, &berr);
    for (uint32_t k = 0; k < m; k++)
        results[map[k]] = MG_PENDING;
    rc = mg_write_errors(inst, collection, &reply, map, m, ops, results, err);
    int32_t fate = PERSISTOR_OK; /* of the ops no write error answered */
    if (!ok && !mg_error_is_write_error(&reply, &berr)) {
        /* The command or the connection failed, or the write concern was
         * not met: every op not answered shares that fate. */
        persistor_error scratch;
        fate = mg_error(inst, rc == PERSISTOR_OK ? err : &scratch, &berr, &reply, MG_WRITE,
                        "write", collection);
        int64_t done = mg_reply_int(&reply, "nInserted") + mg_reply_int(&reply, "nUpserted") +
                       mg_reply_int(&reply, "nMatched");
        if (fate == PERSISTOR_E_RETRY && done > 0) /* some of it was applied */
            fate = inst->host->error_set(rc == PERSISTOR_OK ? err : &scratch,
                                         PERSISTOR_E_UNCERTAIN,
                                         "mongodb write %s on %s: %s (after %lld of the batch's "
                                         "writes were applied: the rest may or may not be)",
                                         collection, inst->where, berr.message, (long long)done);
        if (rc == PERSISTOR_OK || fate == PERSISTOR_E_UNCERTAIN ||
            fate == PERSISTOR_E_UNAVAILABLE)
            rc = fate;
    } else if (mg_reply_has_array(&reply, "writeConcernErrors") && fate == PERSISTOR_OK) {
        fate = PERSISTOR_E_UNCERTAIN;
        if (rc == PERSISTOR_OK)
            rc = mg_error(inst, err, &berr, &reply, MG_WRITE, "write", collection);
        fate = rc;
    }
    for (uint32_t k = 0; k < m; k++)
        if (results[map[k]] == MG_PENDING)
            results[map[k]] = fate;
    bson_destroy(&reply);
done:
    mongoc_bulk_operation_destroy(bulk);
    bson_destroy(&opts);
    bson_destroy(&iopts);
    bson_destroy(&ropts);
    return rc;
}

/* One DELETE: OK, NOT_FOUND (deletedCount 0), or the error class. */
static int32_t mg_delete(persistor_instance *inst, mongoc_collection_t *coll,
                         const char *collection, const char *id, persistor_error *err)
{
    bson_t sel = BSON_INITIALIZER, reply;
    bson_error_t berr;
    char op[300];
    BSON_APPEND_UTF8(&sel, "_id", id);
    bool ok = mongoc_collection_delete_one(coll, &sel, NULL, &reply, &berr);
    int32_t rc;
    if (ok) {
        rc = mg_reply_int(&reply, "deletedCount") > 0 ? PERSISTOR_OK : PERSISTOR_NOT_FOUND;
    } else {
        snprintf(op, sizeof op, "delete of %s", id);
        rc = mg_error(inst, err, &berr, &reply, MG_WRITE, op, collection);
    }
    bson_destroy(&sel);
    bson_destroy(&reply);
    return rc;
}

int32_t mg_write(persistor_instance *inst, const char *collection, const persistor_write_op *ops,
                 uint32_t n, int32_t *results, persistor_error *err)
{
    const persistor_host *host = inst->host;
    const char *version = mg_version_field(inst, collection);
    int32_t rc = PERSISTOR_OK;
    uint32_t *map = calloc(n ? n : 1, sizeof *map);
    if (map == NULL)
        return host->error_set(err, PERSISTOR_E_NOMEM, "mongodb write %s: out of memory",
                               collection);
    for (uint32_t i = 0; i < n; i++)
        results[i] = MG_PENDING;
    /* What the server would refuse anyway is refused here, without
     * holding the others back: over 16 MiB, or no document at all. */
    for (uint32_t i = 0; i < n; i++) {
        if (ops[i].kind == PERSISTOR_WRITE_DELETE)
            continue;
        if (ops[i].doc == NULL || ops[i].doc_len < 5 || ops[i].doc_len > MG_MAX_DOC_SIZE ||
            (ops[i].kind != PERSISTOR_WRITE_INSERT_IF_ABSENT &&
             ops[i].kind != PERSISTOR_WRITE_UPSERT &&
             ops[i].kind != PERSISTOR_WRITE_UPSERT_IF_NEWER)) {
            results[i] = host->error_set(
                rc == PERSISTOR_OK ? err : NULL, PERSISTOR_E_INVALID,
                "mongodb write of %s %s on %s: %s (%u bytes; MongoDB stores at most %d)",
                ops[i].id ? ops[i].id : "?", collection, inst->where,
                ops[i].doc_len > MG_MAX_DOC_SIZE ? "document too large" : "invalid op",
                ops[i].doc_len, MG_MAX_DOC_SIZE);
            rc = PERSISTOR_E_INVALID;
        } else if (ops[i].kind == PERSISTOR_WRITE_UPSERT_IF_NEWER && version == NULL) {
            results[i] = host->error_set(
                rc == PERSISTOR_OK ? err : NULL, PERSISTOR_E_INVALID,
                "mongodb upsert-if-newer of %s %s on %s: the collection's spec names no "
                "version_field (or it was not ensured); name one, or write with UPSERT",
                ops[i].id ? ops[i].id : "?", collection, inst->where);
            rc = PERSISTOR_E_INVALID;
        }
    }
    mongoc_client_t *client = mg_client(inst);
    mongoc_collection_t *coll = mg_collection(inst, client, collection);
    int32_t fatal = PERSISTOR_OK;
    for (uint32_t i = 0; i < n && fatal == PERSISTOR_OK;) {
        if (results[i] != MG_PENDING) {
            i++;
            continue;
        }
        if (ops[i].kind == PERSISTOR_WRITE_DELETE) {
            persistor_error scratch;
            results[i] = mg_delete(inst, coll, collection, ops[i].id,
                                   rc == PERSISTOR_OK ? err : &scratch);
            if (results[i] < 0)
                fatal = results[i];
            i++;
            continue;
        }
        uint32_t m = 0, j = i;
        for (; j < n && ops[j].kind != PERSISTOR_WRITE_DELETE; j++)
            if (results[j] == MG_PENDING)
                map[m++] = j;
        persistor_error scratch;
        int32_t brc = mg_bulk(inst, coll, collection, version, ops, map, m, results,
                              rc == PERSISTOR_OK ? err : &scratch);
        if (brc == PERSISTOR_E_INVALID || brc == PERSISTOR_E_CONFIG) {
            if (rc == PERSISTOR_OK) /* those ops only: the others went on */
                rc = brc;
        } else if (brc < 0) {
            fatal = brc;
        }
        i = j;
    }
    if (fatal < 0) {
        /* The connection or the server failed: what was not sent yet was
         * not applied, and carries the same code. */
        for (uint32_t i = 0; i < n; i++)
            if (results[i] == MG_PENDING)
                results[i] = fatal;
        if (rc == PERSISTOR_OK || rc == PERSISTOR_E_INVALID)
            rc = fatal;
    }
    mongoc_collection_destroy(coll);
    mg_release(inst, client);
    free(map);
    return rc;
}

/* ---- reads by id ------------------------------------------------------- */

/* Find the document with this id (projection: NULL for all of it). */
static int32_t mg_find_id(persistor_instance *inst, const char *collection, const char *id,
                          int id_only, persistor_buffer *out, const char *opname,
                          persistor_error *err)
{
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, proj;
    const bson_t *doc;
    const bson_t *reply = NULL;
    bson_error_t berr;
    char op[300];
    BSON_APPEND_UTF8(&filter, "_id", id);
    BSON_APPEND_INT64(&opts, "limit", 1);
    BSON_APPEND_BOOL(&opts, "singleBatch", true);
    if (id_only) {
        BSON_APPEND_DOCUMENT_BEGIN(&opts, "projection", &proj);
        BSON_APPEND_INT32(&proj, "_id", 1);
        bson_append_document_end(&opts, &proj);
    }
    mongoc_client_t *client = mg_client(inst);
    mongoc_collection_t *coll = mg_collection(inst, client, collection);
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, &filter, &opts, NULL);
    int32_t rc = PERSISTOR_NOT_FOUND;
    if (mongoc_cursor_next(cur, &doc)) {
        rc = PERSISTOR_OK;
        if (out != NULL && inst->host->buffer_set(out, bson_get_data(doc), doc->len) != 0)
            rc = inst->host->error_set(err, PERSISTOR_E_NOMEM, "mongodb %s of %s %s: out of memory",
                                       opname, id, collection);
    } else if (mongoc_cursor_error_document(cur, &berr, &reply)) {
        snprintf(op, sizeof op, "%s of %s", opname, id);
        rc = mg_error(inst, err, &berr, reply, MG_READ, op, collection);
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    mg_release(inst, client);
    bson_destroy(&filter);
    bson_destroy(&opts);
    return rc;
}

int32_t mg_get(persistor_instance *inst, const char *collection, const char *id,
               persistor_buffer *out, persistor_error *err)
{
    return mg_find_id(inst, collection, id, 0, out, "get", err);
}

int32_t mg_exists(persistor_instance *inst, const char *collection, const char *id,
                  persistor_error *err)
{
    return mg_find_id(inst, collection, id, 1, NULL, "exists", err);
}

/* ---- queries --------------------------------------------------------- */

/* The host's judgement of a filter (and sort): the same E_INVALID as
 * every other adapter. */
static int32_t mg_check_query(persistor_instance *inst, const uint8_t *filter, uint32_t filter_len,
                              const uint8_t *sort, uint32_t sort_len, persistor_error *err)
{
    persistor_matcher *m = NULL;
    persistor_sorter *s = NULL;
    int32_t rc = inst->host->matcher_new(filter, filter_len, &m, err);
    if (rc != PERSISTOR_OK)
        return rc;
    inst->host->matcher_free(m);
    if (sort == NULL || sort_len == 0)
        return PERSISTOR_OK;
    rc = inst->host->sorter_new(sort, sort_len, &s, err);
    if (rc == PERSISTOR_OK)
        inst->host->sorter_free(s);
    return rc;
}

/* A BSON document from the host's bytes, or an empty one. */
static int mg_view(bson_t *b, const uint8_t *data, uint32_t len)
{
    if (data == NULL || len == 0) {
        bson_init(b);
        return 1;
    }
    return bson_init_static(b, data, len);
}

int32_t mg_query(persistor_instance *inst, const char *collection, const persistor_query *q,
                 persistor_cursor **out, persistor_error *err)
{
    int32_t rc = mg_check_query(inst, q->filter, q->filter_len, q->sort, q->sort_len, err);
    if (rc != PERSISTOR_OK)
        return rc;
    bson_t filter, sort, opts = BSON_INITIALIZER;
    if (!mg_view(&filter, q->filter, q->filter_len) || !mg_view(&sort, q->sort, q->sort_len))
        return inst->host->error_set(err, PERSISTOR_E_INVALID, "mongodb query %s: bad BSON",
                                     collection);
    if (q->sort != NULL && q->sort_len > 0)
        BSON_APPEND_DOCUMENT(&opts, "sort", &sort);
    if (q->skip > 0)
        BSON_APPEND_INT64(&opts, "skip", q->skip > INT64_MAX ? INT64_MAX : (int64_t)q->skip);
    if (q->limit > 0)
        BSON_APPEND_INT64(&opts, "limit", q->limit > INT64_MAX ? INT64_MAX : (int64_t)q->limit);
    persistor_cursor *cur = calloc(1, sizeof *cur);
    if (cur == NULL) {
        bson_destroy(&opts);
        return inst->host->error_set(err, PERSISTOR_E_NOMEM, "mongodb query %s: out of memory",
                                     collection);
    }
    cur->inst = inst;
    snprintf(cur->collection, sizeof cur->collection, "%s", collection);
    cur->client = mg_client(inst);
    cur->coll = mg_collection(inst, cur->client, collection);
    /* Nothing is sent yet: the first cursor_next runs the find. */
    cur->cursor = mongoc_collection_find_with_opts(cur->coll, &filter, &opts, NULL);
    bson_destroy(&opts);
    bson_destroy(&filter);
    bson_destroy(&sort);
    *out = cur;
    return PERSISTOR_OK;
}

int32_t mg_cursor_next(persistor_cursor *cur, const uint8_t **doc, uint32_t *len,
                       persistor_error *err)
{
    const bson_t *b;
    const bson_t *reply = NULL;
    bson_error_t berr;
    if (cur->done)
        return PERSISTOR_ITER_END;
    /* libmongoc's document stays valid until the next mongoc_cursor_next:
     * exactly the ABI's "until the next cursor call". */
    if (mongoc_cursor_next(cur->cursor, &b)) {
        *doc = bson_get_data(b);
        *len = b->len;
        return PERSISTOR_OK;
    }
    if (mongoc_cursor_error_document(cur->cursor, &berr, &reply))
        return mg_error(cur->inst, err, &berr, reply, MG_READ, "query", cur->collection);
    cur->done = 1;
    return PERSISTOR_ITER_END;
}

void mg_cursor_close(persistor_cursor *cur)
{
    if (cur == NULL)
        return;
    mongoc_cursor_destroy(cur->cursor);
    mongoc_collection_destroy(cur->coll);
    mg_release(cur->inst, cur->client);
    free(cur);
}

int32_t mg_count(persistor_instance *inst, const char *collection, const uint8_t *filter,
                 uint32_t filter_len, uint64_t *out, persistor_error *err)
{
    int32_t rc = mg_check_query(inst, filter, filter_len, NULL, 0, err);
    if (rc != PERSISTOR_OK)
        return rc;
    bson_t f, reply;
    bson_error_t berr;
    if (!mg_view(&f, filter, filter_len))
        return inst->host->error_set(err, PERSISTOR_E_INVALID, "mongodb count %s: bad BSON",
                                     collection);
    mongoc_client_t *client = mg_client(inst);
    mongoc_collection_t *coll = mg_collection(inst, client, collection);
    int64_t n = mongoc_collection_count_documents(coll, &f, NULL, NULL, &reply, &berr);
    if (n < 0)
        rc = mg_error(inst, err, &berr, &reply, MG_READ, "count", collection);
    else
        *out = (uint64_t)n;
    bson_destroy(&reply);
    bson_destroy(&f);
    mongoc_collection_destroy(coll);
    mg_release(inst, client);
    return rc;
}

/* ---- stats ------------------------------------------------------------ */

/* total_size on MongoDB: the sum of the BSON size of every document
 * ($bsonSize), i.e. what the application stored, exact and independent of
 * compression and of WiredTiger's lagging size counters.  It costs a scan
 * on the server: stats is an operator's command, not a hot path.  A server
 * older than 4.4 (no $bsonSize) answers from collStats' count and size,
 * which WiredTiger keeps as the same sum, maintained incrementally. */
static int32_t mg_stats_collstats(persistor_instance *inst, mongoc_client_t *client,
                                  const char *collection, persistor_collection_stats *out,
                                  persistor_error *err)
{
    bson_t cmd = BSON_INITIALIZER, reply;
    bson_error_t berr;
    BSON_APPEND_UTF8(&cmd, "collStats", collection);
    int32_t rc = PERSISTOR_OK;
    if (mongoc_client_read_command_with_opts(client, inst->database, &cmd, NULL, NULL, &reply,
                                             &berr)) {
        out->item_count = (uint64_t)mg_reply_int(&reply, "count");
        out->total_size = (uint64_t)mg_reply_int(&reply, "size");
    } else if (mg_no_namespace(&berr)) {
        out->item_count = out->total_size = 0;
    } else {
        rc = mg_error(inst, err, &berr, &reply, MG_READ, "stats", collection);
    }
    bson_destroy(&cmd);
    bson_destroy(&reply);
    return rc;
}

int32_t mg_stats(persistor_instance *inst, const char *collection,
                 persistor_collection_stats *out, persistor_error *err)
{
    bson_t *pipeline = BCON_NEW("pipeline", "[", "{", "$group", "{", "_id", BCON_NULL, "n", "{",
                                "$sum", BCON_INT32(1), "}", "size", "{", "$sum", "{", "$bsonSize",
                                BCON_UTF8("$$ROOT"), "}", "}", "}", "}", "]");
    const bson_t *doc;
    const bson_t *reply = NULL;
    bson_error_t berr;
    mongoc_client_t *client = mg_client(inst);
    mongoc_collection_t *coll = mg_collection(inst, client, collection);
    mongoc_cursor_t *cur = mongoc_collection_aggregate(coll, MONGOC_QUERY_NONE, pipeline, NULL,
                                                       NULL);
    int32_t rc = PERSISTOR_OK;
    out->item_count = out->total_size = 0;
    if (mongoc_cursor_next(cur, &doc)) {
        out->item_count = (uint64_t)mg_reply_int(doc, "n");
        out->total_size = (uint64_t)mg_reply_int(doc, "size");
    } else if (mongoc_cursor_error_document(cur, &berr, &reply)) {
        int32_t cls = mg_error_class(berr.domain, berr.code, berr.message, reply, MG_READ, NULL);
        if (mg_no_namespace(&berr))
            ; /* no such collection: empty */
        else if (berr.domain == MONGOC_ERROR_SERVER &&
                 (cls == PERSISTOR_E_INVALID || cls == PERSISTOR_E_UNAVAILABLE))
            /* The server refused the pipeline ($bsonSize is 4.4+; 168
             * InvalidPipelineOperator, or BadValue on look-alikes). */
            rc = mg_stats_collstats(inst, client, collection, out, err);
        else
            rc = mg_error(inst, err, &berr, reply, MG_READ, "stats", collection);
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    mg_release(inst, client);
    bson_destroy(pipeline);
    return rc;
}

/* ---- group_count ------------------------------------------------------ */

/* The field path rules of adapter.h, checked here so that a bad field is
 * the same E_INVALID on every adapter and never reaches the server. */
static int mg_field_path_ok(const char *field)
{
    if (field == NULL || field[0] == '\0')
        return 0;
    for (const char *c = field;; c += strcspn(c, ".") + 1) {
        if (*c == '.' || *c == '\0' || *c == '$')
            return 0;
        if (c[strcspn(c, ".")] == '\0')
            return 1;
    }
}

/* One group of the server's answer, as adapter.h shapes it: {_id, total}
 * with total an int64 ($sum answers an int32 while it fits). */
static int mg_group_append(bson_t *groups, uint32_t i, const bson_t *doc)
{
    bson_iter_t id;
    bson_t one;
    char buf[16];
    const char *key;
    if (!bson_iter_init_find(&id, doc, "_id"))
        return 0;
    bson_uint32_to_string(i, &key, buf, sizeof buf);
    if (!bson_append_document_begin(groups, key, -1, &one))
        return 0;
    int ok = bson_append_iter(&one, "_id", 3, &id) &&
             BSON_APPEND_INT64(&one, "total", mg_reply_int(doc, "total"));
    return bson_append_document_end(groups, &one) && ok;
}

/* Native: [{$match}, {$group: {_id: "$field", total: {$sum: 1}}}, then
 * {$sort: {_id: 1}}].  $sort orders an array _id by its least element, so
 * [1, 5] and [1, 3] tie there; _k = {v: _id} breaks the tie in MongoDB's
 * order of whole values (a document field compares its arrays element by
 * element), adapter.h's rule.  _k stays out of the answer. */
int32_t mg_group_count(persistor_instance *inst, const char *collection, const uint8_t *filter,
                       uint32_t filter_len, const char *field, persistor_buffer *out,
                       persistor_error *err)
{
    const persistor_host *host = inst->host;
    if (!mg_field_path_ok(field))
        return host->error_set(err, PERSISTOR_E_INVALID,
                               "mongodb group_count %s: group field '%s' is not a field path "
                               "(empty, or a component empty or starting with '$')",
                               collection, field ? field : "");
    int32_t rc = mg_check_query(inst, filter, filter_len, NULL, 0, err);
    if (rc != PERSISTOR_OK)
        return rc;
    bson_t f;
    if (!mg_view(&f, filter, filter_len))
        return host->error_set(err, PERSISTOR_E_INVALID, "mongodb group_count %s: bad BSON",
                               collection);
    char *path = bson_strdup_printf("$%s", field);
    bson_t *pipeline = BCON_NEW(
        "pipeline", "[",
        "{", "$match", BCON_DOCUMENT(&f), "}",
        "{", "$group", "{", "_id", BCON_UTF8(path), "total", "{", "$sum", BCON_INT32(1), "}",
        "}", "}",
        "{", "$addFields", "{", "_k", "{", "v", BCON_UTF8("$_id"), "}", "}", "}",
        "{", "$sort", "{", "_id", BCON_INT32(1), "_k", BCON_INT32(1), "}", "}",
        "]");
    bson_t answer = BSON_INITIALIZER, groups;
    BSON_APPEND_ARRAY_BEGIN(&answer, "groups", &groups);
    const bson_t *doc;
    const bson_t *reply = NULL;
    bson_error_t berr;
    mongoc_client_t *client = mg_client(inst);
    mongoc_collection_t *coll = mg_collection(inst, client, collection);
    mongoc_cursor_t *cur = mongoc_collection_aggregate(coll, MONGOC_QUERY_NONE, pipeline, NULL,
                                                       NULL);
    uint32_t n = 0;
    int ok = 1;
    while (ok && mongoc_cursor_next(cur, &doc))
        ok = mg_group_append(&groups, n++, doc);
    ok = bson_append_array_end(&answer, &groups) && ok;
    if (!ok)
        rc = host->error_set(err, PERSISTOR_E_NOMEM,
                             "mongodb group_count %s by %s on %s: the answer is too large or a "
                             "group has no _id",
                             collection, field, inst->where);
    else if (mongoc_cursor_error_document(cur, &berr, &reply))
        rc = mg_error(inst, err, &berr, reply, MG_READ, "group_count", collection);
    else if (host->buffer_set(out, bson_get_data(&answer), answer.len) != PERSISTOR_OK)
        rc = host->error_set(err, PERSISTOR_E_NOMEM, "mongodb group_count %s: out of memory",
                             collection);
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(coll);
    mg_release(inst, client);
    bson_destroy(&answer);
    bson_destroy(pipeline);
    bson_destroy(&f);
    bson_free(path);
    return rc;
}
