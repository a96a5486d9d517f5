/*
 * telemetry.c — the telemetry buffer (seed 002): telemetry kept while Kafka
 * or the observability stack is down, claimed in batches with a lease for
 * redelivery, removed when acknowledged, dead-lettered after max_retries
 * claims, listed and requeued by operators.
 *
 * Every state change rewrites the whole record with `version` + 1 as an
 * UPSERT_IF_NEWER (adapter.h): a compare-and-set that any adapter does in
 * one atomic step, so two claimers never both win one record.  The seed's
 * buffer had nothing that drained it; this file is what does, one claim at
 * a time.  It must not know which adapter answers: every read and write
 * goes through the router.
 */
#include <bson/bson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bson_canon.h"
#include "buffer.h"
#include "error.h"
#include "log.h"
#include "persistor_internal.h"
#include "record.h"
#include "sha256.h"

#define TELEMETRY_EVENT "telemetry_buffer"
#define TELEMETRY_PENDING "pending"
#define TELEMETRY_DEAD "dead"

#define TELEMETRY_DEFAULT_MAX_RECORDS 100
#define TELEMETRY_DEFAULT_LEASE_MS 60000
#define TELEMETRY_DEFAULT_MAX_RETRIES 5
/* A claim queries again when other claimers won its records; at most this
 * many rounds may win nothing: a busy buffer cannot keep one claim looping. */
#define TELEMETRY_CLAIM_ROUNDS 4
/* Requeue of every dead record works in pages of this many. */
#define TELEMETRY_REQUEUE_PAGE 500

/* ------------------------------------------------------------------ */
/* The collection, with the seed's indexes on the fields it really has */

static const persistor_index_key k_workflow[] = {{"correlation.workflow_id", 1}};
static const persistor_index_key k_buffered[] = {{"buffered_at", 1}};
static const persistor_index_key k_retry[] = {{"retry_count", 1}};
static const persistor_index_key k_retry_buffered[] = {{"retry_count", 1}, {"buffered_at", 1}};

#define INDEX(name, keys) {name, keys, sizeof keys / sizeof keys[0], 0}
static const persistor_index_spec telemetry_indexes[] = {
    INDEX("correlation.workflow_id_1", k_workflow),
    INDEX("buffered_at_1", k_buffered),
    INDEX("retry_count_1", k_retry),
    INDEX("retry_count_1_buffered_at_1", k_retry_buffered),
};

size_t telemetry_collection_specs(const profile *prof, persistor_collection_spec *specs)
{
    const profile_collection *c = &prof->collections[PROFILE_COLL_TELEMETRY_BUFFER];
    specs[0] = (persistor_collection_spec){
        .struct_size = sizeof specs[0],
        .name = c->name,
        .indexes = telemetry_indexes,
        .n_indexes = sizeof telemetry_indexes / sizeof telemetry_indexes[0],
        .ttl_field = c->ttl_seconds > 0 ? "buffered_at" : NULL,
        .ttl_seconds = c->ttl_seconds,
        .version_field = "version",
    };
    return 1;
}

static const char *telemetry_collection(const persistor *p)
{
    return persistor_collection_name(p, PROFILE_COLL_TELEMETRY_BUFFER);
}

/* ------------------------------------------------------------------ */
/* Buffering                                                          */

static int32_t telemetry_check(const record *rec, persistor_error *err)
{
    static const char *const set_by_us[] = {"_id",   "buffered_at", "retry_count",
                                            "state", "lease_until", "version"};
    const char *ignored;
    int32_t rc = record_refuse(rec, set_by_us, sizeof set_by_us / sizeof set_by_us[0], err);
    if (rc == PERSISTOR_OK)
        rc = record_document(rec, "correlation", true, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "correlation.workflow_id", true, &ignored, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "correlation.plan_id", false, &ignored, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "correlation.intent_id", false, &ignored, err);
    if (rc == PERSISTOR_OK)
        rc = record_document(rec, "metrics", true, err);
    if (rc == PERSISTOR_OK)
        rc = record_string(rec, "source", true, &ignored, err);
    return rc;
}

/* The stored document: _id, the record (timestamp resolved), then the
 * delivery fields.  The id hashes the record alone, so buffering the same
 * telemetry again stores it once. */
static int32_t telemetry_build(const record *rec, int64_t now, bson_t *doc, char *id,
                               persistor_error *err)
{
    static const char *const tag[] = {"persistor-telemetry-v1"};
    static const char *const placed[] = {"correlation", "metrics", "timestamp", "source"};
    int64_t ts;
    int32_t rc = telemetry_check(rec, err);
    if (rc == PERSISTOR_OK)
        rc = record_date(rec, "timestamp", now, &ts, err);
    if (rc != PERSISTOR_OK)
        return rc;
    bson_iter_t it;
    bson_t head = BSON_INITIALIZER, rest = BSON_INITIALIZER, body = BSON_INITIALIZER,
           canon = BSON_INITIALIZER;
    record_find(rec, "correlation", &it);
    bson_append_iter(&head, "correlation", -1, &it);
    record_find(rec, "metrics", &it);
    bson_append_iter(&head, "metrics", -1, &it);
    BSON_APPEND_DATE_TIME(&head, "timestamp", ts);
    record_find(rec, "source", &it);
    bson_append_iter(&head, "source", -1, &it);
    record_copy_fields(rec, &rest, placed, sizeof placed / sizeof placed[0]);
    bson_concat(&body, &head);
    bson_concat(&body, &rest);
    bool ok = bson_canon(&body, &canon);
    if (ok) {
        sha256_hex_of(tag, 1, bson_get_data(&canon), canon.len, id);
        BSON_APPEND_UTF8(doc, "_id", id);
        bson_concat(doc, &head);
        BSON_APPEND_DATE_TIME(doc, "buffered_at", now);
        BSON_APPEND_INT32(doc, "retry_count", 0);
        BSON_APPEND_UTF8(doc, "state", TELEMETRY_PENDING);
        BSON_APPEND_DATE_TIME(doc, "lease_until", 0);
        BSON_APPEND_INT64(doc, "version", 1);
        bson_concat(doc, &rest);
    }
    bson_destroy(&head);
    bson_destroy(&rest);
    bson_destroy(&body);
    bson_destroy(&canon);
    return ok ? PERSISTOR_OK
              : error_set(err, PERSISTOR_E_INVALID, "%s: the record is malformed", rec->what);
}

int32_t persistor_telemetry_buffer(persistor *p, const persistor_record_input *in,
                                   char id_out[PERSISTOR_ID_MAX + 1], persistor_error *err)
{
    static const char *const logged[] = {"correlation.workflow_id", "source"};
    static const record_kind buffered = {PROFILE_COLL_TELEMETRY_BUFFER, TELEMETRY_EVENT,
                                         "telemetry_buffered", PERSISTOR_WRITE_INSERT_IF_ABSENT,
                                         telemetry_build, logged, 2};
    return record_save(p, &buffered, in, id_out, err);
}

/* ------------------------------------------------------------------ */
/* Record lists                                                       */

void persistor_record_list_free(persistor_record_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->count; i++) {
        free(list->items[i].id);
        free(list->items[i].bson);
    }
    free(list->items);
    *list = (persistor_record_list){0};
}

/* Append a copy of `doc` (a stored record, whose _id names it). */
static int32_t telemetry_list_push(persistor_record_list *list, const uint8_t *doc, uint32_t len,
                                   persistor_error *err)
{
    bson_t view;
    bson_iter_t it;
    if (!bson_init_static(&view, doc, len) || !bson_iter_init_find(&it, &view, "_id") ||
        !BSON_ITER_HOLDS_UTF8(&it))
        return error_set(err, PERSISTOR_E_CORRUPT, "a stored %s record has no string _id",
                         TELEMETRY_EVENT);
    persistor_record *grown = realloc(list->items, (list->count + 1) * sizeof *grown);
    if (grown == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory listing %s", TELEMETRY_EVENT);
    list->items = grown;
    persistor_record *r = &list->items[list->count];
    r->id = strdup(bson_iter_utf8(&it, NULL));
    r->bson = malloc(len);
    r->bson_len = len;
    if (r->id == NULL || r->bson == NULL) {
        free(r->id);
        free(r->bson);
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory listing %s", TELEMETRY_EVENT);
    }
    memcpy(r->bson, doc, len);
    list->count++;
    return PERSISTOR_OK;
}

/* Records matching `filter`, oldest buffered_at first (then _id), at most
 * `limit` (0: all), appended to `list` as copies: writes may follow, and
 * no write may run while a cursor is open. */
static int32_t telemetry_find(persistor *p, const bson_t *filter, uint64_t limit,
                              persistor_record_list *list, persistor_error *err)
{
    bson_t sort = BSON_INITIALIZER;
    BSON_APPEND_INT32(&sort, "buffered_at", 1);
    BSON_APPEND_INT32(&sort, "_id", 1);
    persistor_query q = {.struct_size = sizeof q,
                         .filter = bson_get_data(filter),
                         .filter_len = filter->len,
                         .sort = bson_get_data(&sort),
                         .sort_len = sort.len,
                         .limit = limit};
    router_cursor *c;
    int32_t rc = router_query(p->router, telemetry_collection(p), &q, &c, err);
    bson_destroy(&sort);
    if (rc != PERSISTOR_OK)
        return rc;
    list->degraded |= router_cursor_degraded(c);
    const uint8_t *doc;
    uint32_t len;
    while ((rc = router_cursor_next(c, &doc, &len, err)) == PERSISTOR_OK &&
           (rc = telemetry_list_push(list, doc, len, err)) == PERSISTOR_OK)
        continue;
    router_cursor_close(c);
    return rc == PERSISTOR_ITER_END ? PERSISTOR_OK : rc;
}

/* ------------------------------------------------------------------ */
/* Rewriting records: the one compare-and-set every state change uses */

/* "Leave this field as it is" for a telemetry_change number. */
#define TELEMETRY_KEEP INT64_MIN

typedef struct telemetry_change {
    const char *state;   /* NULL: unchanged */
    int64_t lease_until; /* ms since the epoch, or TELEMETRY_KEEP */
    int64_t retry_count; /* or TELEMETRY_KEEP */
} telemetry_change;

static bool telemetry_field(const persistor_record *r, const char *key, bson_iter_t *it)
{
    bson_t view;
    return bson_init_static(&view, r->bson, r->bson_len) && bson_iter_init_find(it, &view, key);
}

static const char *telemetry_state(const persistor_record *r)
{
    bson_iter_t it;
    return telemetry_field(r, "state", &it) && BSON_ITER_HOLDS_UTF8(&it)
               ? bson_iter_utf8(&it, NULL)
               : "";
}

static int64_t telemetry_int(const persistor_record *r, const char *key)
{
    bson_iter_t it;
    return telemetry_field(r, key, &it) && BSON_ITER_HOLDS_NUMBER(&it) ? bson_iter_as_int64(&it)
                                                                       : 0;
}

static int64_t telemetry_lease_until(const persistor_record *r)
{
    bson_iter_t it;
    return telemetry_field(r, "lease_until", &it) && BSON_ITER_HOLDS_DATE_TIME(&it)
               ? bson_iter_date_time(&it)
               : 0;
}

/* `r` with `change` applied and version + 1, into `out` (empty), fields in
 * their stored order.  E_CORRUPT when the stored version is not an int64:
 * UPSERT_IF_NEWER compares versions of one type only. */
static int32_t telemetry_rewrite(const persistor_record *r, const telemetry_change *change,
                                 bson_t *out, persistor_error *err)
{
    bson_iter_t it;
    if (!telemetry_field(r, "version", &it) || !BSON_ITER_HOLDS_INT64(&it))
        return error_set(err, PERSISTOR_E_CORRUPT,
                         "%s record %s: \"version\" is missing or not an int64; it was not "
                         "written by persistor",
                         TELEMETRY_EVENT, r->id);
    int64_t version = bson_iter_int64(&it);
    bson_t view;
    bson_init_static(&view, r->bson, r->bson_len);
    bson_iter_init(&it, &view);
    while (bson_iter_next(&it)) {
        const char *key = bson_iter_key(&it);
        if (strcmp(key, "version") == 0)
            BSON_APPEND_INT64(out, key, version + 1);
        else if (strcmp(key, "state") == 0 && change->state != NULL)
            BSON_APPEND_UTF8(out, key, change->state);
        else if (strcmp(key, "lease_until") == 0 && change->lease_until != TELEMETRY_KEEP)
            BSON_APPEND_DATE_TIME(out, key, change->lease_until);
        else if (strcmp(key, "retry_count") == 0 && change->retry_count != TELEMETRY_KEEP)
            BSON_APPEND_INT32(out, key, (int32_t)change->retry_count);
        else
            bson_append_iter(out, key, -1, &it);
    }
    return PERSISTOR_OK;
}

/*
 * Rewrite every record of `batch` with changes[i], as one batched write of
 * compare-and-sets on `version`.  results[i] gets OK (rewritten: the item
 * now holds the new document) or EXISTS (another writer changed the record
 * since it was read: left alone).  A record deleted since it was read is
 * written again (UPSERT_IF_NEWER inserts what is absent): delivery is at
 * least once, never at most once.
 */
static int32_t telemetry_rewrite_batch(persistor *p, persistor_record_list *batch,
                                       const telemetry_change *changes, int32_t *results,
                                       persistor_error *err)
{
    if (batch->count == 0)
        return PERSISTOR_OK;
    if (batch->count > UINT32_MAX)
        return error_set(err, PERSISTOR_E_INVALID, "%s: %zu records in one write is too many",
                         TELEMETRY_EVENT, batch->count);
    bson_t **docs = calloc(batch->count, sizeof *docs); /* bson_t wants its own alignment */
    persistor_write_op *ops = calloc(batch->count, sizeof *ops);
    size_t built = 0;
    int32_t rc = docs != NULL && ops != NULL
                     ? PERSISTOR_OK
                     : error_set(err, PERSISTOR_E_NOMEM, "out of memory rewriting %zu %s records",
                                 batch->count, TELEMETRY_EVENT);
    for (; rc == PERSISTOR_OK && built < batch->count; built++) {
        bson_t *doc = docs[built] = bson_new();
        rc = telemetry_rewrite(&batch->items[built], &changes[built], doc, err);
        ops[built] = (persistor_write_op){PERSISTOR_WRITE_UPSERT_IF_NEWER, doc->len,
                                          batch->items[built].id, bson_get_data(doc)};
    }
    if (rc == PERSISTOR_OK)
        rc = router_write(p->router, telemetry_collection(p), ops, (uint32_t)batch->count,
                          results, err);
    for (size_t i = 0; rc == PERSISTOR_OK && i < batch->count; i++) {
        persistor_record *r = &batch->items[i];
        if (results[i] != PERSISTOR_OK)
            continue;
        uint8_t *copy = malloc(docs[i]->len);
        if (copy == NULL) {
            rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory rewriting %s", r->id);
            break;
        }
        memcpy(copy, bson_get_data(docs[i]), docs[i]->len);
        free(r->bson);
        r->bson = copy;
        r->bson_len = docs[i]->len;
    }
    for (size_t i = 0; i < built; i++)
        bson_destroy(docs[i]);
    free(docs);
    free(ops);
    return rc;
}

/* Move batch->items[i] to the end of `to`. */
static int32_t telemetry_list_take(persistor_record_list *to, persistor_record_list *batch,
                                   size_t i, persistor_error *err)
{
    persistor_record *grown = realloc(to->items, (to->count + 1) * sizeof *grown);
    if (grown == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory claiming %s", batch->items[i].id);
    to->items = grown;
    to->items[to->count++] = batch->items[i];
    batch->items[i] = (persistor_record){0};
    return PERSISTOR_OK;
}

/* ------------------------------------------------------------------ */
/* Claiming                                                           */

typedef struct telemetry_limits {
    uint32_t max_records;
    uint32_t lease_ms;
    uint32_t max_retries;
} telemetry_limits;

static int32_t telemetry_limits_of(const persistor_claim_options *opts, telemetry_limits *lim,
                                   persistor_error *err)
{
    if (opts != NULL && opts->struct_size < sizeof *opts)
        return error_set(err, PERSISTOR_E_INVALID,
                         "persistor_claim_options.struct_size must be set to its sizeof");
    *lim = (telemetry_limits){TELEMETRY_DEFAULT_MAX_RECORDS, TELEMETRY_DEFAULT_LEASE_MS,
                              TELEMETRY_DEFAULT_MAX_RETRIES};
    if (opts != NULL && opts->max_records > 0)
        lim->max_records = opts->max_records;
    if (opts != NULL && opts->lease_ms > 0)
        lim->lease_ms = opts->lease_ms;
    if (opts != NULL && opts->max_retries > 0)
        lim->max_retries = opts->max_retries;
    return PERSISTOR_OK;
}

static void telemetry_log_dead(const persistor_record *r, int64_t retries)
{
    log_line line;
    if (!log_begin(&line, PERSISTOR_LOG_WARN, "telemetry_dead_lettered"))
        return;
    bson_t view;
    bson_iter_t it, found;
    log_str(&line, "id", r->id);
    if (bson_init_static(&view, r->bson, r->bson_len) && bson_iter_init(&it, &view) &&
        bson_iter_find_descendant(&it, "correlation.workflow_id", &found) &&
        BSON_ITER_HOLDS_UTF8(&found))
        log_str(&line, "workflow_id", bson_iter_utf8(&found, NULL));
    log_int(&line, "retry_count", retries);
    log_end(&line);
}

/* Claim what `batch` holds (records read as claimable): each one past
 * max_retries goes dead, the others get a lease; the ones this call won
 * move to `out`. */
static int32_t telemetry_claim_batch(persistor *p, persistor_record_list *batch, int64_t now,
                                     const telemetry_limits *lim, persistor_record_list *out,
                                     persistor_error *err)
{
    if (batch->count == 0)
        return PERSISTOR_OK;
    telemetry_change *changes = calloc(batch->count, sizeof *changes);
    int32_t *results = calloc(batch->count, sizeof *results);
    int32_t rc = PERSISTOR_OK;
    if (changes == NULL || results == NULL)
        rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory claiming %zu %s records",
                       batch->count, TELEMETRY_EVENT);
    for (size_t i = 0; rc == PERSISTOR_OK && i < batch->count; i++) {
        int64_t retries = telemetry_int(&batch->items[i], "retry_count");
        changes[i] = retries >= lim->max_retries
                         ? (telemetry_change){TELEMETRY_DEAD, TELEMETRY_KEEP, TELEMETRY_KEEP}
                         : (telemetry_change){NULL, now + lim->lease_ms, retries + 1};
    }
    if (rc == PERSISTOR_OK)
        rc = telemetry_rewrite_batch(p, batch, changes, results, err);
    for (size_t i = 0; rc == PERSISTOR_OK && i < batch->count; i++) {
        if (results[i] != PERSISTOR_OK)
            continue; /* another claimer won it */
        if (changes[i].state != NULL) {
            out->dead_lettered++;
            telemetry_log_dead(&batch->items[i], telemetry_int(&batch->items[i], "retry_count"));
        } else {
            rc = telemetry_list_take(out, batch, i, err);
        }
    }
    free(changes);
    free(results);
    return rc;
}

int32_t persistor_telemetry_claim(persistor *p, const persistor_claim_options *opts,
                                  persistor_record_list *out, persistor_error *err)
{
    telemetry_limits lim = {0};
    if (out == NULL)
        return error_set(err, PERSISTOR_E_INVALID,
                         "persistor_telemetry_claim: out must not be NULL");
    *out = (persistor_record_list){0};
    int32_t rc = telemetry_limits_of(opts, &lim, err);
    int64_t now = router_now_ms(p->router);
    bson_t filter = BSON_INITIALIZER, range;
    BSON_APPEND_UTF8(&filter, "state", TELEMETRY_PENDING);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "lease_until", &range);
    BSON_APPEND_DATE_TIME(&range, "$lte", now);
    bson_append_document_end(&filter, &range);
    /* Rounds that moved records (claimed or dead-lettered) shrink what is
     * claimable, so they cannot loop forever; only rounds that lost every
     * record to other claimers count toward the bound. */
    for (int idle = 0; rc == PERSISTOR_OK && idle < TELEMETRY_CLAIM_ROUNDS &&
                       out->count < lim.max_records;) {
        size_t want = lim.max_records - out->count;
        size_t moved = out->count + out->dead_lettered;
        persistor_record_list batch = {0};
        rc = telemetry_find(p, &filter, want, &batch, err);
        size_t found = batch.count;
        out->degraded |= batch.degraded;
        if (rc == PERSISTOR_OK)
            rc = telemetry_claim_batch(p, &batch, now, &lim, out, err);
        persistor_record_list_free(&batch);
        /* Fewer than asked: that was every claimable record.  Otherwise
         * records lost to other claimers or gone dead left room: look again. */
        if (found < want)
            break;
        if (out->count + out->dead_lettered == moved)
            idle++;
    }
    bson_destroy(&filter);
    if (rc != PERSISTOR_OK)
        persistor_record_list_free(out);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Acknowledging, releasing, dead letters                             */

static int32_t telemetry_check_ids(const char *const *ids, size_t n, persistor_error *err)
{
    if (ids == NULL && n > 0)
        return error_set(err, PERSISTOR_E_INVALID, "%s: %zu ids announced, none given",
                         TELEMETRY_EVENT, n);
    for (size_t i = 0; i < n; i++) {
        size_t len = ids[i] != NULL ? strlen(ids[i]) : 0;
        if (len == 0)
            return error_set(err, PERSISTOR_E_INVALID, "%s: id #%zu is empty", TELEMETRY_EVENT,
                             i + 1);
        if (len > PERSISTOR_ID_MAX)
            return error_set(err, PERSISTOR_E_INVALID,
                             "%s: id #%zu (%.32s...) is %zu bytes; the limit is %d",
                             TELEMETRY_EVENT, i + 1, ids[i], len, PERSISTOR_ID_MAX);
    }
    if (n > UINT32_MAX)
        return error_set(err, PERSISTOR_E_INVALID, "%s: %zu ids in one call is too many",
                         TELEMETRY_EVENT, n);
    return PERSISTOR_OK;
}

int32_t persistor_telemetry_ack(persistor *p, const char *const *ids, size_t n, uint64_t *done,
                                persistor_error *err)
{
    if (done != NULL)
        *done = 0;
    int32_t rc = telemetry_check_ids(ids, n, err);
    if (rc != PERSISTOR_OK || n == 0)
        return rc;
    persistor_write_op *ops = calloc(n, sizeof *ops);
    int32_t *results = calloc(n, sizeof *results);
    if (ops == NULL || results == NULL)
        rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory acknowledging %zu records", n);
    for (size_t i = 0; rc == PERSISTOR_OK && i < n; i++)
        ops[i] = (persistor_write_op){PERSISTOR_WRITE_DELETE, 0, ids[i], NULL};
    if (rc == PERSISTOR_OK)
        rc = router_write(p->router, telemetry_collection(p), ops, (uint32_t)n, results, err);
    for (size_t i = 0; rc == PERSISTOR_OK && done != NULL && i < n; i++)
        *done += results[i] == PERSISTOR_OK;
    free(ops);
    free(results);
    return rc;
}

/* The stored records of `ids` that `wanted` accepts, into `batch`. */
static int32_t telemetry_get_many(persistor *p, const char *const *ids, size_t n,
                                  bool (*wanted)(const persistor_record *r, int64_t now),
                                  int64_t now, persistor_record_list *batch, persistor_error *err)
{
    persistor_buffer buf = {0};
    int32_t rc = PERSISTOR_OK;
    for (size_t i = 0; rc == PERSISTOR_OK && i < n; i++) {
        bool degraded = false;
        rc = router_get(p->router, telemetry_collection(p), ids[i], &buf, &degraded, err);
        if (rc == PERSISTOR_NOT_FOUND) {
            rc = PERSISTOR_OK;
            continue;
        }
        batch->degraded |= degraded;
        if (rc == PERSISTOR_OK)
            rc = telemetry_list_push(batch, buf.data, buf.len, err);
        if (rc == PERSISTOR_OK && !wanted(&batch->items[batch->count - 1], now)) {
            batch->count--;
            free(batch->items[batch->count].id);
            free(batch->items[batch->count].bson);
        }
    }
    buffer_free(&buf);
    return rc;
}

/* Rewrite all of `batch` with one change; *done += how many were won. */
static int32_t telemetry_rewrite_all(persistor *p, persistor_record_list *batch,
                                     telemetry_change change, uint64_t *done,
                                     persistor_error *err)
{
    telemetry_change *changes = calloc(batch->count + 1, sizeof *changes);
    int32_t *results = calloc(batch->count + 1, sizeof *results);
    int32_t rc = changes != NULL && results != NULL
                     ? PERSISTOR_OK
                     : error_set(err, PERSISTOR_E_NOMEM, "out of memory rewriting %zu %s records",
                                 batch->count, TELEMETRY_EVENT);
    for (size_t i = 0; rc == PERSISTOR_OK && i < batch->count; i++)
        changes[i] = change;
    if (rc == PERSISTOR_OK)
        rc = telemetry_rewrite_batch(p, batch, changes, results, err);
    for (size_t i = 0; rc == PERSISTOR_OK && i < batch->count; i++)
        *done += results[i] == PERSISTOR_OK;
    free(changes);
    free(results);
    return rc;
}

static bool telemetry_is_leased(const persistor_record *r, int64_t now)
{
    return strcmp(telemetry_state(r), TELEMETRY_PENDING) == 0 && telemetry_lease_until(r) > now;
}

int32_t persistor_telemetry_release(persistor *p, const char *const *ids, size_t n,
                                    uint64_t *done, persistor_error *err)
{
    uint64_t released = 0;
    persistor_record_list batch = {0};
    int32_t rc = telemetry_check_ids(ids, n, err);
    if (rc == PERSISTOR_OK)
        rc = telemetry_get_many(p, ids, n, telemetry_is_leased, router_now_ms(p->router), &batch,
                                err);
    if (rc == PERSISTOR_OK)
        rc = telemetry_rewrite_all(p, &batch, (telemetry_change){NULL, 0, TELEMETRY_KEEP},
                                   &released, err);
    persistor_record_list_free(&batch);
    if (done != NULL)
        *done = released;
    return rc;
}

static void telemetry_dead_filter(bson_t *filter)
{
    BSON_APPEND_UTF8(filter, "state", TELEMETRY_DEAD);
}

int32_t persistor_telemetry_dead(persistor *p, uint64_t limit, persistor_record_list *out,
                                 persistor_error *err)
{
    if (out == NULL)
        return error_set(err, PERSISTOR_E_INVALID,
                         "persistor_telemetry_dead: out must not be NULL");
    *out = (persistor_record_list){0};
    bson_t filter = BSON_INITIALIZER;
    telemetry_dead_filter(&filter);
    int32_t rc = telemetry_find(p, &filter, limit, out, err);
    bson_destroy(&filter);
    if (rc != PERSISTOR_OK)
        persistor_record_list_free(out);
    return rc;
}

static bool telemetry_is_dead(const persistor_record *r, int64_t now)
{
    (void)now;
    return strcmp(telemetry_state(r), TELEMETRY_DEAD) == 0;
}

int32_t persistor_telemetry_requeue(persistor *p, const char *const *ids, size_t n,
                                    uint64_t *done, persistor_error *err)
{
    static const telemetry_change requeued = {TELEMETRY_PENDING, 0, 0};
    uint64_t count = 0;
    int32_t rc = PERSISTOR_OK;
    if (ids != NULL) {
        persistor_record_list batch = {0};
        rc = telemetry_check_ids(ids, n, err);
        if (rc == PERSISTOR_OK)
            rc = telemetry_get_many(p, ids, n, telemetry_is_dead, 0, &batch, err);
        if (rc == PERSISTOR_OK)
            rc = telemetry_rewrite_all(p, &batch, requeued, &count, err);
        persistor_record_list_free(&batch);
    } else {
        /* Every dead record, a page at a time: a requeued record no longer
         * matches, so each page is new; a page that moves nothing ends it. */
        bson_t filter = BSON_INITIALIZER;
        telemetry_dead_filter(&filter);
        for (bool more = true; rc == PERSISTOR_OK && more;) {
            persistor_record_list batch = {0};
            uint64_t before = count;
            rc = telemetry_find(p, &filter, TELEMETRY_REQUEUE_PAGE, &batch, err);
            if (rc == PERSISTOR_OK)
                rc = telemetry_rewrite_all(p, &batch, requeued, &count, err);
            more = batch.count == TELEMETRY_REQUEUE_PAGE && count > before;
            persistor_record_list_free(&batch);
        }
        bson_destroy(&filter);
    }
    if (done != NULL)
        *done = count;
    return rc;
}
