/*
 * router_replay.c — the fallback journal: recording what a fallback takes,
 * and replaying it into the primary when the primary answers again.
 *
 * Replay reads a fallback's journal in seq order, a batch at a time, and
 * applies each entry to the primary: an insert as insert-if-absent (EXISTS
 * means it is already there: done), an upsert as UPSERT_IF_NEWER when the
 * collection names a version field (an older write never undoes a newer
 * one; plain UPSERT otherwise), a delete as a delete (NOT_FOUND: done).
 * Only once the primary has acknowledged a batch are its journal entries,
 * and the fallback's copies of those records, deleted.  A crash anywhere
 * leaves entries that replay again harmlessly, and several processes may
 * replay one journal at once: every step is idempotent.
 */
#include "router_internal.h"

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "error.h"
#include "journal.h"
#include "log.h"

/* Entries per replay batch: one query, one write to the primary, two
 * deletes on the fallback. */
#define REPLAY_BATCH 512

/* ------------------------------------------------------------------ */
/* Recording                                                          */

/* A whole batch to one adapter, every op sent on every attempt (each
 * kind here is idempotent: a repeat answers EXISTS or NOT_FOUND). */
typedef struct raw_write_ctx {
    const char *collection;
    const persistor_write_op *ops;
    uint32_t n;
    int32_t *results; /* n answers */
} raw_write_ctx;

static int32_t router_raw_write(router_adapter *a, void *ctx, persistor_error *err)
{
    raw_write_ctx *w = ctx;
    return a->api->write(a->inst, w->collection, w->ops, w->n, w->results, err);
}

int32_t router_journal_append(router *r, router_adapter *a, const char *collection,
                              const persistor_write_op *ops, uint32_t n, persistor_error *err)
{
    /* bson_t wants 128-byte alignment: bson_new() gives it, calloc not. */
    bson_t **entries = calloc(n ? n : 1, sizeof *entries);
    persistor_write_op *jops = calloc(n ? n : 1, sizeof *jops);
    char (*seqs)[JOURNAL_SEQ_MAX] = calloc(n ? n : 1, sizeof *seqs);
    int32_t *results = calloc(n ? n : 1, sizeof *results);
    int32_t rc = PERSISTOR_OK;
    uint32_t built = 0;
    if (entries == NULL || jops == NULL || seqs == NULL || results == NULL)
        rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory journaling %s", collection);
    int64_t now = router_now_ms(r);
    for (; rc == PERSISTOR_OK && built < n; built++) {
        journal_next_seq(seqs[built]);
        if ((entries[built] = bson_new()) == NULL) {
            rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory journaling %s", collection);
            break;
        }
        if (!journal_entry_build(entries[built], seqs[built], collection, &ops[built], now)) {
            rc = error_set(err, PERSISTOR_E_INVALID,
                           "%s: record %s is too large to journal on the fallback", collection,
                           ops[built].id);
            break;
        }
        jops[built] = (persistor_write_op){PERSISTOR_WRITE_INSERT_IF_ABSENT,
                                           entries[built]->len, seqs[built],
                                           bson_get_data(entries[built])};
    }
    if (rc == PERSISTOR_OK) {
        raw_write_ctx w = {JOURNAL_COLLECTION, jops, n, results};
        rc = router_attempt(r, a, "journal", true, router_raw_write, &w, err);
    }
    free(results);
    for (uint32_t i = 0; entries != NULL && i < n; i++)
        bson_destroy(entries[i]); /* NULL-safe */
    free(entries);
    free(jops);
    free(seqs);
    return rc;
}

uint64_t router_journal_pending(router_adapter *a)
{
    if (a->index == 0 || !atomic_load(&a->ready))
        return 0;
    uint64_t n = 0;
    router_count_ctx c = {JOURNAL_COLLECTION, NULL, 0, &n, NULL};
    persistor_error err = {0};
    router_adapter_lock(a);
    int32_t rc = router_count_attempt(a, &c, &err);
    router_adapter_unlock(a);
    return rc == PERSISTOR_OK ? n : 0;
}

/* ------------------------------------------------------------------ */
/* Replaying                                                          */

/* One batch read from a fallback's journal: owned copies of the entries. */
typedef struct replay_batch {
    uint8_t *data[REPLAY_BATCH];
    uint32_t len[REPLAY_BATCH];
    size_t n;
    char last_seq[JOURNAL_SEQ_MAX];
} replay_batch;

static void replay_batch_clear(replay_batch *b)
{
    for (size_t i = 0; i < b->n; i++)
        free(b->data[i]);
    b->n = 0;
}

typedef struct replay_read_ctx {
    replay_batch *batch;
    const char *after;
} replay_read_ctx;

/* Copy one entry into the batch (a router_visit_fn); stop once it is full. */
static int32_t replay_keep(void *ctx, const uint8_t *doc, uint32_t len, persistor_error *err)
{
    replay_batch *b = ctx;
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory reading the journal");
    memcpy(copy, doc, len);
    b->data[b->n] = copy;
    b->len[b->n++] = len;
    return b->n < REPLAY_BATCH ? PERSISTOR_OK : PERSISTOR_ITER_END;
}

static int32_t replay_read_attempt(router_adapter *a, void *ctx, persistor_error *err)
{
    replay_read_ctx *c = ctx;
    bson_t filter, gt, sort;
    bson_init(&filter);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, "seq", &gt);
    BSON_APPEND_UTF8(&gt, "$gt", c->after);
    bson_append_document_end(&filter, &gt);
    bson_init(&sort);
    BSON_APPEND_INT32(&sort, "seq", 1);
    persistor_query q = {.struct_size = sizeof q,
                         .filter = bson_get_data(&filter),
                         .filter_len = filter.len,
                         .sort = bson_get_data(&sort),
                         .sort_len = sort.len,
                         .limit = REPLAY_BATCH};
    replay_batch_clear(c->batch);
    int32_t rc = router_adapter_scan(a, JOURNAL_COLLECTION, &q, replay_keep, c->batch, err);
    bson_destroy(&filter);
    bson_destroy(&sort);
    return rc;
}

/* Apply a run of entries of one collection to the primary; count them. */
static int32_t replay_apply(router *r, const char *collection, const journal_entry *entries,
                            size_t n, replay_counts *counts, persistor_error *err)
{
    router_collection *coll = router_find_collection(r, collection);
    if (coll == NULL) {
        counts->skipped += n;
        log_line line;
        if (log_begin(&line, PERSISTOR_LOG_ERROR, "replay_skipped")) {
            log_str(&line, "collection", collection);
            log_int(&line, "entries", (int64_t)n);
            log_str(&line, "reason", "this profile does not know the collection; the entries "
                                     "stay in the journal for a process that does");
            log_end(&line);
        }
        return PERSISTOR_OK;
    }
    persistor_write_op *ops = calloc(n, sizeof *ops);
    int32_t *results = calloc(n, sizeof *results);
    if (ops == NULL || results == NULL) {
        free(ops);
        free(results);
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory replaying %s", collection);
    }
    const persistor_collection_spec *spec = coll->spec;
    bool versioned = spec->struct_size >= sizeof *spec && spec->version_field != NULL;
    for (size_t i = 0; i < n; i++) {
        uint32_t kind = entries[i].kind;
        if (kind == PERSISTOR_WRITE_UPSERT && versioned)
            kind = PERSISTOR_WRITE_UPSERT_IF_NEWER;
        ops[i] = (persistor_write_op){kind, entries[i].doc_len, entries[i].id, entries[i].doc};
    }
    raw_write_ctx w = {collection, ops, (uint32_t)n, results};
    int32_t rc = router_attempt(r, &r->adapters[0], "replay", true, router_raw_write, &w, err);
    for (size_t i = 0; rc == PERSISTOR_OK && i < n; i++) {
        counts->replayed++;
        if (results[i] == PERSISTOR_EXISTS && ops[i].kind == PERSISTOR_WRITE_INSERT_IF_ABSENT)
            counts->duplicates++;
        else if (results[i] == PERSISTOR_EXISTS)
            counts->superseded++;
    }
    free(ops);
    free(results);
    return router_adapter_fail(&r->adapters[0], rc, err);
}

/* Forget a replayed batch on the fallback: its journal entries, and its
 * copies of the records (the primary has them now).  Entries of a
 * collection this profile does not know stay. */
static int32_t replay_forget(router *r, router_adapter *fallback, const journal_entry *entries,
                             size_t n, persistor_error *err)
{
    persistor_write_op *ops = calloc(n ? n : 1, sizeof *ops);
    int32_t *results = calloc(n ? n : 1, sizeof *results);
    int32_t rc = ops != NULL && results != NULL
                     ? PERSISTOR_OK
                     : error_set(err, PERSISTOR_E_NOMEM, "out of memory replaying the journal");
    /* The records, one run of one collection at a time, then the entries. */
    for (size_t i = 0; rc == PERSISTOR_OK && i < n;) {
        size_t j = i, m = 0;
        for (; j < n && strcmp(entries[j].collection, entries[i].collection) == 0; j++)
            if (entries[j].kind != PERSISTOR_WRITE_DELETE)
                ops[m++] = (persistor_write_op){.kind = PERSISTOR_WRITE_DELETE, .id = entries[j].id};
        if (m > 0 && router_find_collection(r, entries[i].collection) != NULL) {
            raw_write_ctx w = {entries[i].collection, ops, (uint32_t)m, results};
            rc = router_attempt(r, fallback, "replay", true, router_raw_write, &w, err);
        }
        i = j;
    }
    size_t m = 0;
    for (size_t i = 0; rc == PERSISTOR_OK && i < n; i++)
        if (router_find_collection(r, entries[i].collection) != NULL)
            ops[m++] = (persistor_write_op){.kind = PERSISTOR_WRITE_DELETE, .id = entries[i].seq};
    if (rc == PERSISTOR_OK && m > 0) {
        raw_write_ctx w = {JOURNAL_COLLECTION, ops, (uint32_t)m, results};
        rc = router_attempt(r, fallback, "replay", true, router_raw_write, &w, err);
    }
    free(ops);
    free(results);
    return router_adapter_fail(fallback, rc, err);
}

int32_t router_replay_drain(router *r, router_adapter *fallback, bool exclusive,
                            uint64_t budget, replay_counts *counts, bool *fallback_failed,
                            persistor_error *err)
{
    *fallback_failed = false;
    replay_batch *batch = calloc(1, sizeof *batch);
    journal_entry *entries = calloc(REPLAY_BATCH, sizeof *entries);
    int32_t rc = batch != NULL && entries != NULL
                     ? PERSISTOR_OK
                     : error_set(err, PERSISTOR_E_NOMEM, "out of memory replaying the journal");
    char after[JOURNAL_SEQ_MAX] = "";
    uint64_t seen = 0;
    while (rc == PERSISTOR_OK && seen < budget) {
        replay_read_ctx rc_ctx = {batch, after};
        /* A writer journals, then applies its copy (route_lock shared).
         * Reading with the lock held exclusively sees no entry whose copy
         * is still to come, so replay_forget never misses a copy. */
        if (!exclusive)
            pthread_rwlock_wrlock(&r->route_lock);
        rc = router_attempt(r, fallback, "replay", true, replay_read_attempt, &rc_ctx, err);
        if (!exclusive)
            pthread_rwlock_unlock(&r->route_lock);
        rc = router_adapter_fail(fallback, rc, err);
        *fallback_failed = rc != PERSISTOR_OK;
        if (rc != PERSISTOR_OK || batch->n == 0)
            break;
        seen += batch->n;
        size_t n = 0;
        for (size_t i = 0; i < batch->n; i++) {
            if (journal_entry_parse(batch->data[i], batch->len[i], &entries[n])) {
                n++;
                continue;
            }
            counts->skipped++;
            log_line line;
            if (log_begin(&line, PERSISTOR_LOG_ERROR, "replay_skipped")) {
                log_str(&line, "adapter", fallback->label);
                log_str(&line, "reason", "a journal entry that is not one of ours");
                log_end(&line);
            }
        }
        /* Runs of one collection keep the journal's order across them. */
        for (size_t i = 0; rc == PERSISTOR_OK && i < n;) {
            size_t j = i;
            while (j < n && strcmp(entries[j].collection, entries[i].collection) == 0)
                j++;
            rc = replay_apply(r, entries[i].collection, entries + i, j - i, counts, err);
            i = j;
        }
        if (rc == PERSISTOR_OK) {
            rc = replay_forget(r, fallback, entries, n, err);
            *fallback_failed = rc != PERSISTOR_OK;
        }
        /* Move past this batch even where entries stay (unknown ones). */
        bson_t last;
        bson_iter_t it;
        if (bson_init_static(&last, batch->data[batch->n - 1], batch->len[batch->n - 1]) &&
            bson_iter_init_find(&it, &last, "seq") && BSON_ITER_HOLDS_UTF8(&it))
            snprintf(after, sizeof after, "%s", bson_iter_utf8(&it, NULL));
        else
            break;
    }
    if (batch != NULL)
        replay_batch_clear(batch);
    free(batch);
    free(entries);
    return rc;
}

/* ------------------------------------------------------------------ */
/* Recovery                                                           */

static int64_t replay_clock_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* Drain every ready fallback; false (primary tripped again) on failure. */
/* budgets[i]: entries to replay from fallback i, or NULL for all of them
 * (the caller holds route_lock exclusively). */
static bool replay_all(router *r, const uint64_t *budgets, replay_counts *counts)
{
    for (size_t i = 1; i < r->n_adapters; i++) {
        router_adapter *f = &r->adapters[i];
        if (!atomic_load(&f->ready) || breaker_get(&f->breaker) != BREAKER_CLOSED)
            continue;
        if (budgets != NULL && budgets[i] == 0)
            continue;
        persistor_error err = {0};
        bool fallback_failed;
        int32_t rc = router_replay_drain(r, f, budgets == NULL,
                                         budgets != NULL ? budgets[i] : UINT64_MAX, counts,
                                         &fallback_failed, &err);
        if (rc == PERSISTOR_OK)
            continue;
        log_line line;
        if (log_begin(&line, PERSISTOR_LOG_ERROR, "replay_failed")) {
            log_str(&line, "from", f->label);
            log_str(&line, "to", r->adapters[0].label);
            log_int(&line, "replayed", (int64_t)counts->replayed);
            log_str(&line, "code", persistor_rc_name(rc));
            log_str(&line, "reason", err.message);
            log_end(&line);
        }
        /* The fallback's own failure is its breaker's business; either
         * way the primary waits for the next probe. */
        if (fallback_failed && router_fails_over(rc))
            router_trip(r, f, rc, &err);
        breaker_probe_failed(&r->adapters[0].breaker, &r->prof->retry, err.message);
        return false;
    }
    return true;
}

bool router_recover_primary(router *r)
{
    router_adapter *primary = &r->adapters[0];
    pthread_mutex_lock(&r->replay_lock);
    breaker_set_recovering(&primary->breaker);
    /* Without the lock, writers may keep a journal growing as fast as it
     * drains: the first pass replays what each held at the start, and the
     * exclusive pass takes the rest. */
    uint64_t *budgets = calloc(r->n_adapters, sizeof *budgets), pending = 0;
    for (size_t i = 1; budgets != NULL && i < r->n_adapters; i++)
        pending += budgets[i] = router_journal_pending(&r->adapters[i]);
    log_line line;
    if (pending > 0 && log_begin(&line, PERSISTOR_LOG_WARN, "replay_started")) {
        log_str(&line, "to", primary->label);
        log_int(&line, "pending", (int64_t)pending);
        log_end(&line);
    }
    replay_counts counts = {0};
    int64_t start = replay_clock_us();
    bool ok = budgets != NULL && replay_all(r, budgets, &counts);
    if (budgets == NULL)
        breaker_probe_failed(&primary->breaker, &r->prof->retry, "out of memory replaying");
    if (ok) {
        /* Writers into a fallback hold route_lock shared: once we hold it
         * exclusively none is halfway, and a last drain takes what they
         * wrote before the primary serves again. */
        pthread_rwlock_wrlock(&r->route_lock);
        ok = replay_all(r, NULL, &counts);
        int64_t outage = ok ? breaker_close(&primary->breaker) : 0;
        pthread_rwlock_unlock(&r->route_lock);
        if (ok && log_begin(&line, PERSISTOR_LOG_WARN, "adapter_recovered")) {
            log_str(&line, "adapter", primary->label);
            log_int(&line, "outage_ms", outage);
            log_end(&line);
        }
    }
    double seconds = (double)(replay_clock_us() - start) / 1e6;
    if (pending > 0 && log_begin(&line, ok ? PERSISTOR_LOG_WARN : PERSISTOR_LOG_ERROR,
                                 "replay_completed")) {
        log_str(&line, "to", primary->label);
        log_bool(&line, "drained", ok);
        log_int(&line, "replayed", (int64_t)counts.replayed);
        log_int(&line, "duplicates", (int64_t)counts.duplicates);
        log_int(&line, "superseded", (int64_t)counts.superseded);
        log_int(&line, "skipped", (int64_t)counts.skipped);
        log_int(&line, "duration_ms", (int64_t)(seconds * 1000));
        log_double(&line, "per_second", seconds > 0 ? (double)counts.replayed / seconds : 0);
        log_end(&line);
    }
    free(budgets);
    pthread_mutex_unlock(&r->replay_lock);
    return ok;
}
