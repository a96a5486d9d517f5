/*
 * router_ops.c — the generic collection calls, routed along the chain.
 *
 * Each call goes to the first adapter whose breaker is closed, with the
 * profile's retries.  When that adapter answers E_UNAVAILABLE, or still
 * E_RETRY / E_UNCERTAIN after the last attempt, its breaker opens and the
 * call moves on to the next adapter at once.  Any other error (E_INVALID,
 * E_CONFIG, E_CORRUPT...) is the answer: another store would not do better,
 * or must not hide the damage.  A write taken by a fallback is journaled
 * there first (router_replay.c); a read answered by one is "degraded".
 */
#include "router_internal.h"

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "error.h"
#include "group.h"
#include "log.h"

/* TTL sweeps run at most this often (on the router's clock). */
#define ROUTER_SWEEP_INTERVAL_MS 1000

struct router_cursor {
    router_adapter *adapter;
    persistor_cursor *cursor;
    bool degraded;
    /* ITER_END seen: answered from here on, so the API's iterators keep
     * their "ITER_END forever" promise whatever a third-party adapter does. */
    bool ended;
};

static bool router_serving(router_adapter *a)
{
    return breaker_get(&a->breaker) == BREAKER_CLOSED;
}

/* The error for "every adapter of the chain is out". */
static int32_t router_chain_down(router *r, const char *what, const char *collection,
                                 int32_t last_rc, const persistor_error *last,
                                 persistor_error *err)
{
    char reason[PERSISTOR_ERROR_MESSAGE_MAX];
    if (last_rc < 0 && last != NULL && last->message[0])
        snprintf(reason, sizeof reason, "%s", last->message);
    else
        snprintf(reason, sizeof reason, "every breaker is open (%s: %s)", r->adapters[0].label,
                 r->adapters[0].breaker.reason);
    return error_set(err, PERSISTOR_E_UNAVAILABLE,
                     "%s %s: no adapter of profile %s can take it: %s", what, collection,
                     r->prof->name, reason);
}

/* ------------------------------------------------------------------ */
/* Reads                                                              */

static int32_t router_maybe_sweep(router *r, const char *collection, persistor_error *err);

/* Run a read on the first serving adapter, after a TTL sweep when one is
 * due; fail over along the chain.  *answered (may be NULL) is the adapter
 * that answered, *degraded (may be NULL) whether it stood in for the
 * primary. */
static int32_t router_read(router *r, const char *what, const char *collection,
                           router_attempt_fn fn, void *ctx, router_adapter **answered,
                           bool *degraded, persistor_error *err)
{
    int32_t rc = router_maybe_sweep(r, collection, err);
    if (rc != PERSISTOR_OK)
        return rc;
    persistor_error last = {0};
    rc = PERSISTOR_E_UNAVAILABLE;
    for (size_t i = 0; i < r->n_adapters; i++) {
        router_adapter *a = &r->adapters[i];
        if (!router_serving(a))
            continue;
        last = (persistor_error){0};
        rc = router_attempt(r, a, what, true, fn, ctx, &last);
        if (!router_fails_over(rc)) {
            if (answered != NULL)
                *answered = a;
            if (degraded != NULL)
                *degraded = a->index > 0 || router_degraded(r);
            if (rc < 0 && err != NULL)
                *err = last;
            return router_adapter_fail(a, rc, err);
        }
        router_adapter_fail(a, rc, &last);
        router_trip(r, a, rc, &last);
    }
    return router_chain_down(r, what, collection, rc, &last, err);
}

typedef struct router_key_ctx {
    const char *collection;
    const char *id;
    persistor_buffer *out;
} router_key_ctx;

static int32_t router_get_attempt(router_adapter *a, void *ctx, persistor_error *err)
{
    router_key_ctx *k = ctx;
    return a->api->get(a->inst, k->collection, k->id, k->out, err);
}

static int32_t router_exists_attempt(router_adapter *a, void *ctx, persistor_error *err)
{
    router_key_ctx *k = ctx;
    if (a->api->exists != NULL)
        return a->api->exists(a->inst, k->collection, k->id, err);
    persistor_buffer buf = {0};
    int32_t rc = a->api->get(a->inst, k->collection, k->id, &buf, err);
    buffer_free(&buf);
    return rc;
}

int32_t router_get(router *r, const char *collection, const char *id, persistor_buffer *out,
                   bool *degraded, persistor_error *err)
{
    router_key_ctx k = {collection, id, out};
    return router_read(r, "get", collection, router_get_attempt, &k, NULL, degraded, err);
}

int32_t router_exists(router *r, const char *collection, const char *id, bool *degraded,
                      persistor_error *err)
{
    router_key_ctx k = {collection, id, NULL};
    return router_read(r, "exists", collection, router_exists_attempt, &k, NULL, degraded, err);
}

typedef struct router_query_ctx {
    const char *collection;
    const persistor_query *q;
    persistor_cursor *cursor;
} router_query_ctx;

static int32_t router_query_attempt(router_adapter *a, void *ctx, persistor_error *err)
{
    router_query_ctx *c = ctx;
    return a->api->query(a->inst, c->collection, c->q, &c->cursor, err);
}

int32_t router_query(router *r, const char *collection, const persistor_query *q,
                     router_cursor **out, persistor_error *err)
{
    router_cursor *c = calloc(1, sizeof *c);
    if (c == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory querying %s", collection);
    router_query_ctx qc = {collection, q, NULL};
    int32_t rc = router_read(r, "query", collection, router_query_attempt, &qc, &c->adapter,
                             &c->degraded, err);
    if (rc != PERSISTOR_OK) {
        free(c);
        return rc;
    }
    c->cursor = qc.cursor;
    *out = c;
    return PERSISTOR_OK;
}

bool router_cursor_degraded(const router_cursor *c)
{
    return c->degraded;
}

/* Not retried: a cursor cannot be restarted where it stopped.  A store
 * that dies mid-stream still opens its breaker for the calls after. */
int32_t router_cursor_next(router_cursor *c, const uint8_t **doc, uint32_t *len,
                           persistor_error *err)
{
    if (c->ended)
        return PERSISTOR_ITER_END;
    router_adapter_lock(c->adapter);
    int32_t rc = c->adapter->api->cursor_next(c->cursor, doc, len, err);
    router_adapter_unlock(c->adapter);
    c->ended = rc == PERSISTOR_ITER_END;
    return router_adapter_fail(c->adapter, rc, err);
}

void router_cursor_close(router_cursor *c)
{
    if (c == NULL)
        return;
    router_adapter_lock(c->adapter);
    c->adapter->api->cursor_close(c->cursor);
    router_adapter_unlock(c->adapter);
    free(c);
}

int32_t router_adapter_scan(router_adapter *a, const char *collection, const persistor_query *q,
                            router_visit_fn visit, void *ctx, persistor_error *err)
{
    persistor_cursor *cursor = NULL;
    const uint8_t *doc;
    uint32_t len;
    int32_t rc = a->api->query(a->inst, collection, q, &cursor, err);
    while (rc == PERSISTOR_OK && (rc = a->api->cursor_next(cursor, &doc, &len, err)) == PERSISTOR_OK)
        rc = visit(ctx, doc, len, err);
    if (cursor != NULL)
        a->api->cursor_close(cursor);
    return rc == PERSISTOR_ITER_END ? PERSISTOR_OK : rc;
}

static int32_t router_tally(void *ctx, const uint8_t *doc, uint32_t len, persistor_error *err)
{
    (void)doc;
    (void)err;
    persistor_collection_stats *st = ctx;
    st->item_count++;
    st->total_size += len;
    return PERSISTOR_OK;
}

/* count and stats: the adapter's slot, or a scan on the same adapter.
 * Chosen per attempt: a call that fails over may land on an adapter
 * without the slot. */
int32_t router_count_attempt(router_adapter *a, void *ctx, persistor_error *err)
{
    router_count_ctx *c = ctx;
    if (c->stats != NULL && a->api->stats != NULL)
        return a->api->stats(a->inst, c->collection, c->stats, err);
    if (c->stats == NULL && a->api->count != NULL)
        return a->api->count(a->inst, c->collection, c->filter, c->filter_len, c->out, err);
    persistor_collection_stats st = {.struct_size = sizeof st};
    persistor_query q = {.struct_size = sizeof q, .filter = c->filter, .filter_len = c->filter_len};
    int32_t rc = router_adapter_scan(a, c->collection, &q, router_tally, &st, err);
    if (rc != PERSISTOR_OK)
        return rc;
    if (c->stats != NULL) {
        c->stats->item_count = st.item_count;
        c->stats->total_size = st.total_size;
    } else {
        *c->out = st.item_count;
    }
    return PERSISTOR_OK;
}

int32_t router_count(router *r, const char *collection, const uint8_t *filter,
                     uint32_t filter_len, uint64_t *out, bool *degraded, persistor_error *err)
{
    router_count_ctx c = {collection, filter, filter_len, out, NULL};
    return router_read(r, "count", collection, router_count_attempt, &c, NULL, degraded, err);
}

int32_t router_stats(router *r, const char *collection, persistor_collection_stats *out,
                     const char **adapter_type, bool *degraded, persistor_error *err)
{
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    *adapter_type = r->adapters[0].api->name;
    router_count_ctx c = {collection, NULL, 0, NULL, out};
    router_adapter *a = NULL;
    int32_t rc = router_read(r, "stats", collection, router_count_attempt, &c, &a, degraded, err);
    if (a != NULL)
        *adapter_type = a->api->name;
    return rc;
}

typedef struct router_group_ctx {
    const char *collection;
    const uint8_t *filter;
    uint32_t filter_len;
    const char *field;
    persistor_buffer *out;
} router_group_ctx;

static int32_t router_group_visit(void *ctx, const uint8_t *doc, uint32_t len,
                                  persistor_error *err)
{
    return group_counter_add(ctx, doc, len, err);
}

/* The adapter's slot, or group.c over a scan of the same adapter.  The
 * choice is made per attempt, not once up front: a call that fails over
 * from MongoDB (native) lands on a fallback without the slot. */
static int32_t router_group_attempt(router_adapter *a, void *ctx, persistor_error *err)
{
    router_group_ctx *c = ctx;
    if (a->api->group_count != NULL)
        return a->api->group_count(a->inst, c->collection, c->filter, c->filter_len, c->field,
                                   c->out, err);
    persistor_query q = {.struct_size = sizeof q, .filter = c->filter, .filter_len = c->filter_len};
    group_counter *g = NULL;
    int32_t rc = group_counter_new(c->field, &g, err);
    if (rc == PERSISTOR_OK)
        rc = router_adapter_scan(a, c->collection, &q, router_group_visit, g, err);
    if (rc == PERSISTOR_OK)
        rc = group_counter_finish(g, c->out, err);
    group_counter_free(g);
    return rc;
}

int32_t router_group_count(router *r, const char *collection, const uint8_t *filter,
                           uint32_t filter_len, const char *field, persistor_buffer *out,
                           bool *degraded, persistor_error *err)
{
    int32_t rc = group_field_check(field, err);
    if (rc != PERSISTOR_OK)
        return rc;
    router_group_ctx c = {collection, filter, filter_len, field, out};
    return router_read(r, "group_count", collection, router_group_attempt, &c, NULL, degraded,
                       err);
}

/* ------------------------------------------------------------------ */
/* Writes                                                             */

/* One batch on one adapter.  results[] starts at E_RETRY for every op;
 * each attempt sends only the ops still without an answer, so a retry
 * never repeats an op the store already acknowledged. */
typedef struct router_write_ctx {
    const char *collection;
    const persistor_write_op *ops;
    uint32_t n;
    int32_t *results;
    /* Scratch for a partial batch, allocated on first need: a first
     * attempt sends ops and results as they are. */
    persistor_write_op *todo;
    int32_t *todo_results;
    uint32_t *todo_index;
} router_write_ctx;

/* The ops still without an answer, *m of them: w->ops itself when that is
 * all of them, else a compacted copy in the scratch.  NULL on NOMEM. */
static const persistor_write_op *router_write_pending(router_write_ctx *w, uint32_t *m)
{
    *m = 0;
    for (uint32_t i = 0; i < w->n; i++)
        *m += w->results[i] < 0;
    if (*m == w->n)
        return w->ops;
    if (w->todo == NULL) {
        w->todo = malloc(w->n * sizeof *w->todo);
        w->todo_results = malloc(w->n * sizeof *w->todo_results);
        w->todo_index = malloc(w->n * sizeof *w->todo_index);
        if (w->todo == NULL || w->todo_results == NULL || w->todo_index == NULL)
            return NULL;
    }
    for (uint32_t i = 0, j = 0; i < w->n; i++)
        if (w->results[i] < 0) {
            w->todo[j] = w->ops[i];
            w->todo_index[j++] = i;
        }
    return w->todo;
}

static int32_t router_write_attempt(router_adapter *a, void *ctx, persistor_error *err)
{
    router_write_ctx *w = ctx;
    uint32_t m;
    const persistor_write_op *ops = router_write_pending(w, &m);
    if (ops == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory writing to %s", w->collection);
    if (m == 0)
        return PERSISTOR_OK;
    bool whole = ops == w->ops;
    int32_t *answers = whole ? w->results : w->todo_results;
    int32_t rc = a->api->write(a->inst, w->collection, ops, m, answers, err);
    /* An op without an answer keeps the batch's code. */
    for (uint32_t j = 0; j < m; j++) {
        int32_t answer = rc == PERSISTOR_OK || answers[j] >= 0 ? answers[j] : rc;
        w->results[whole ? j : w->todo_index[j]] = answer;
    }
    return rc;
}

static int32_t router_write_primary(router *r, router_adapter *a, router_write_ctx *w,
                                    persistor_error *err)
{
    return router_attempt(r, a, "write", true, router_write_attempt, w, err);
}

/* Journal the ops still pending, then apply them to fallback `a`, all
 * while holding route_lock shared (see router_recover_primary). */
static int32_t router_write_fallback(router *r, router_adapter *a, router_write_ctx *w,
                                     persistor_error *err)
{
    uint32_t m;
    const persistor_write_op *ops = router_write_pending(w, &m);
    if (ops == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory writing to %s", w->collection);
    int32_t rc = router_journal_append(r, a, w->collection, ops, m, err);
    if (rc != PERSISTOR_OK)
        return rc;
    rc = router_attempt(r, a, "write", true, router_write_attempt, w, err);
    if (rc != PERSISTOR_OK)
        return rc;
    /* A delete is applied to the primary on replay whatever the fallback
     * holds, so it is accepted, not "not found". */
    for (uint32_t i = 0; i < w->n; i++)
        if (w->ops[i].kind == PERSISTOR_WRITE_DELETE && w->results[i] == PERSISTOR_NOT_FOUND)
            w->results[i] = PERSISTOR_OK;
    return PERSISTOR_OK;
}

static int32_t router_write_chain(router *r, router_write_ctx *w, persistor_error *err)
{
    persistor_error last = {0};
    int32_t rc = PERSISTOR_E_UNAVAILABLE;
    for (size_t i = 0; i < r->n_adapters; i++) {
        router_adapter *a = &r->adapters[i];
        bool shared = i > 0;
        if (shared)
            pthread_rwlock_rdlock(&r->route_lock);
        /* The primary may have come back while we waited for the lock:
         * then the write goes there, after the replay, in order. */
        if (shared && router_serving(&r->adapters[0])) {
            pthread_rwlock_unlock(&r->route_lock);
            i = (size_t)-1;
            continue;
        }
        if (!router_serving(a)) {
            if (shared)
                pthread_rwlock_unlock(&r->route_lock);
            continue;
        }
        last = (persistor_error){0};
        rc = shared ? router_write_fallback(r, a, w, &last) : router_write_primary(r, a, w, &last);
        if (shared)
            pthread_rwlock_unlock(&r->route_lock);
        if (!router_fails_over(rc)) {
            if (rc < 0 && err != NULL)
                *err = last;
            return router_adapter_fail(a, rc, err);
        }
        router_adapter_fail(a, rc, &last);
        router_trip(r, a, rc, &last);
    }
    return router_chain_down(r, "write to", w->collection, rc, &last, err);
}

int32_t router_write(router *r, const char *collection, const persistor_write_op *ops,
                     uint32_t n, int32_t *results, persistor_error *err)
{
    router_write_ctx w = {collection, ops, n, results, NULL, NULL, NULL};
    for (uint32_t i = 0; i < n; i++)
        results[i] = PERSISTOR_E_RETRY;
    int32_t rc = router_write_chain(r, &w, err);
    free(w.todo);
    free(w.todo_results);
    free(w.todo_index);
    return rc;
}

/* ------------------------------------------------------------------ */
/* TTL                                                                */

/* The string _ids of the documents a scan visits (a router_visit_fn):
 * collected first, as deleting while a cursor is open is not allowed. */
typedef struct router_expire_ctx {
    const char *collection;
    persistor_string_list ids;
} router_expire_ctx;

static int32_t router_expire_collect(void *ctx, const uint8_t *doc, uint32_t len,
                                     persistor_error *err)
{
    router_expire_ctx *c = ctx;
    bson_t view;
    bson_iter_t it;
    if (!bson_init_static(&view, doc, len) || !bson_iter_init_find(&it, &view, "_id") ||
        !BSON_ITER_HOLDS_UTF8(&it))
        return PERSISTOR_OK;
    char **grown = realloc(c->ids.items, (c->ids.count + 1) * sizeof *grown);
    char *id = grown ? strdup(bson_iter_utf8(&it, NULL)) : NULL;
    if (grown != NULL)
        c->ids.items = grown;
    if (id == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory expiring %s", c->collection);
    c->ids.items[c->ids.count++] = id;
    return PERSISTOR_OK;
}

/* Delete, on one adapter, every document of `coll` whose TTL field is
 * before the cutoff: the adapter's own expire, or a query and deletes. */
static int32_t adapter_expire(router_adapter *a, const router_collection *coll, int64_t cutoff,
                              uint64_t *removed, persistor_error *err)
{
    const persistor_collection_spec *spec = coll->spec;
    *removed = 0;
    if (a->api->expire != NULL) {
        router_adapter_lock(a);
        int32_t rc = a->api->expire(a->inst, spec->name, cutoff, removed, err);
        router_adapter_unlock(a);
        return router_adapter_fail(a, rc, err);
    }
    if (a->api->capabilities & PERSISTOR_CAP_NATIVE_TTL)
        return PERSISTOR_OK;

    bson_t filter, range;
    bson_init(&filter);
    BSON_APPEND_DOCUMENT_BEGIN(&filter, spec->ttl_field, &range);
    BSON_APPEND_DATE_TIME(&range, "$lt", cutoff);
    bson_append_document_end(&filter, &range);
    persistor_query q = {.struct_size = sizeof q,
                         .filter = bson_get_data(&filter),
                         .filter_len = filter.len};
    router_expire_ctx c = {spec->name, {0}};
    router_adapter_lock(a);
    int32_t rc = router_adapter_scan(a, spec->name, &q, router_expire_collect, &c, err);
    router_adapter_unlock(a);
    bson_destroy(&filter);
    size_t n = c.ids.count;
    if (rc == PERSISTOR_OK && n > 0) {
        persistor_write_op *ops = calloc(n, sizeof *ops);
        int32_t *results = calloc(n, sizeof *results);
        if (ops == NULL || results == NULL) {
            rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory expiring %s", spec->name);
        } else {
            for (size_t i = 0; i < n; i++)
                ops[i] = (persistor_write_op){.kind = PERSISTOR_WRITE_DELETE, .id = c.ids.items[i]};
            router_adapter_lock(a);
            rc = a->api->write(a->inst, spec->name, ops, (uint32_t)n, results, err);
            router_adapter_unlock(a);
            for (size_t i = 0; rc == PERSISTOR_OK && i < n; i++)
                *removed += results[i] == PERSISTOR_OK;
        }
        free(ops);
        free(results);
    }
    persistor_string_list_free(&c.ids);
    return router_adapter_fail(a, rc, err);
}

/* Expire on every serving adapter.  TTL is housekeeping: an adapter that
 * fails here is skipped (its breaker opens), not reported to a reader. */
static int32_t router_sweep(router *r, router_collection *coll, bool force, uint64_t *removed,
                            persistor_error *err)
{
    const persistor_collection_spec *spec = coll->spec;
    *removed = 0;
    if (spec->ttl_seconds <= 0 || spec->ttl_field == NULL)
        return PERSISTOR_OK;
    int64_t now = router_now_ms(r);
    pthread_mutex_lock(&coll->sweep_lock);
    bool due = force || coll->last_sweep_ms == INT64_MIN ||
               now - coll->last_sweep_ms >= ROUTER_SWEEP_INTERVAL_MS;
    if (due)
        coll->last_sweep_ms = now;
    pthread_mutex_unlock(&coll->sweep_lock);
    if (!due)
        return PERSISTOR_OK;

    int64_t cutoff = now - spec->ttl_seconds * 1000;
    int32_t rc = PERSISTOR_OK;
    for (size_t i = 0; i < r->n_adapters && rc == PERSISTOR_OK; i++) {
        router_adapter *a = &r->adapters[i];
        if (!router_serving(a))
            continue;
        uint64_t n = 0;
        rc = adapter_expire(a, coll, cutoff, &n, err);
        if (router_fails_over(rc)) {
            router_trip(r, a, rc, err);
            rc = PERSISTOR_OK;
        }
        *removed += n;
    }
    log_line line;
    if (*removed > 0 && log_begin(&line, PERSISTOR_LOG_DEBUG, "ttl_expired")) {
        log_str(&line, "collection", spec->name);
        log_int(&line, "removed", (int64_t)*removed);
        log_end(&line);
    }
    return rc;
}

/* Before a read: sweep when due, so expired documents stop showing. */
static int32_t router_maybe_sweep(router *r, const char *collection, persistor_error *err)
{
    router_collection *coll = router_find_collection(r, collection);
    uint64_t removed;
    return coll != NULL ? router_sweep(r, coll, false, &removed, err) : PERSISTOR_OK;
}

int32_t router_expire(router *r, const char *collection, uint64_t *removed,
                      persistor_error *err)
{
    router_collection *coll = router_find_collection(r, collection);
    uint64_t n = 0;
    int32_t rc = coll != NULL ? router_sweep(r, coll, true, &n, err) : PERSISTOR_OK;
    if (removed != NULL)
        *removed = n;
    return rc;
}
