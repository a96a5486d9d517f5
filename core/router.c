/*
 * router.c — opens the adapter chain and routes generic collection calls.
 *
 * Every call into an adapter goes through adapter_call_* here, which holds
 * the adapter's lock when it is not thread-safe.  Today every call goes to
 * the primary (the first adapter of the chain); retry, the circuit breaker
 * and failover to the next adapter belong here too, and only here.
 */
#include "router.h"

#include <bson/bson.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buffer.h"
#include "config.h"
#include "error.h"
#include "loader.h"
#include "log.h"

/* TTL sweeps run at most this often (on the router's clock). */
#define ROUTER_SWEEP_INTERVAL_MS 1000

typedef struct router_adapter {
    char label[64];
    const persistor_adapter *api; /* borrowed from module */
    loader_module *module;
    persistor_config *config;
    persistor_host *host;
    persistor_instance *inst;
    bool serialise;
    pthread_mutex_t lock;
} router_adapter;

typedef struct router_collection {
    const persistor_collection_spec *spec;
    pthread_mutex_t sweep_lock;
    int64_t last_sweep_ms;
} router_collection;

struct router {
    const profile *prof;
    host_clock_fn clock;
    void *clock_ctx;
    router_adapter *adapters;
    size_t n_adapters;
    router_collection *collections;
    size_t n_collections;
};

struct router_cursor {
    router_adapter *adapter;
    persistor_cursor *cursor;
};

static void adapter_lock(router_adapter *a)
{
    if (a->serialise)
        pthread_mutex_lock(&a->lock);
}

static void adapter_unlock(router_adapter *a)
{
    if (a->serialise)
        pthread_mutex_unlock(&a->lock);
}

/* Name the adapter in an adapter's error: "memory#0: <message>". */
static int32_t adapter_fail(const router_adapter *a, int32_t rc, persistor_error *err)
{
    if (rc < 0)
        error_prefix(err, "%s", a->label);
    return rc;
}

int64_t router_now_ms(const router *r)
{
    return r->clock != NULL ? r->clock(r->clock_ctx) : host_realtime_ms();
}

static router_adapter *router_primary(router *r)
{
    return &r->adapters[0];
}

static router_collection *router_find_collection(router *r, const char *name)
{
    for (size_t i = 0; i < r->n_collections; i++)
        if (strcmp(r->collections[i].spec->name, name) == 0)
            return &r->collections[i];
    return NULL;
}

/* ------------------------------------------------------------------ */
/* Opening and closing the chain                                      */

static void router_adapter_close(router_adapter *a)
{
    if (a->inst != NULL)
        a->api->close(a->inst);
    config_free(a->config);
    host_free(a->host);
    loader_release(a->module);
    pthread_mutex_destroy(&a->lock);
}

static int32_t router_adapter_open(router *r, size_t index, router_adapter *a,
                                   persistor_error *err)
{
    const profile_adapter *entry = &r->prof->adapters[index];
    snprintf(a->label, sizeof a->label, "%s#%zu", entry->type, index);
    pthread_mutex_init(&a->lock, NULL);

    int32_t rc = loader_acquire(entry->type, entry->path, r->prof->plugin_dir, host_default(),
                                &a->module, err);
    if (rc != PERSISTOR_OK)
        return rc;
    a->api = loader_adapter(a->module);
    a->serialise = !(a->api->capabilities & PERSISTOR_CAP_THREAD_SAFE);
    rc = config_new(entry, a->api, a->label, &a->config, err);
    if (rc != PERSISTOR_OK)
        return rc;
    a->host = host_new(a->label, r->clock, r->clock_ctx);
    if (a->host == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", a->label);
    rc = a->api->open(a->host, a->config, &a->inst, err);
    if (rc != PERSISTOR_OK) {
        a->inst = NULL;
        error_prefix(err, "%s: open failed (%s)", a->label, loader_path(a->module));
        return rc;
    }
    for (size_t i = 0; i < r->n_collections; i++) {
        rc = a->api->ensure_collection(a->inst, r->collections[i].spec, err);
        if (rc != PERSISTOR_OK) {
            error_prefix(err, "%s: ensure_collection %s", a->label,
                         r->collections[i].spec->name);
            return rc;
        }
    }
    log_line line;
    if (log_begin(&line, PERSISTOR_LOG_INFO, "adapter_opened")) {
        log_str(&line, "adapter", a->label);
        log_str(&line, "path", loader_path(a->module));
        log_str(&line, "version", a->api->version);
        log_end(&line);
    }
    return PERSISTOR_OK;
}

int32_t router_open(const profile *prof, const persistor_collection_spec *specs, size_t n_specs,
                    host_clock_fn clock, void *clock_ctx, router **out, persistor_error *err)
{
    router *r = calloc(1, sizeof *r);
    if (r == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory opening profile %s", prof->name);
    r->prof = prof;
    r->clock = clock;
    r->clock_ctx = clock_ctx;
    r->adapters = calloc(prof->n_adapters, sizeof *r->adapters);
    r->collections = calloc(n_specs ? n_specs : 1, sizeof *r->collections);
    if (r->adapters == NULL || r->collections == NULL) {
        free(r->adapters);
        free(r->collections);
        free(r);
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory opening profile %s", prof->name);
    }
    for (size_t i = 0; i < n_specs; i++) {
        r->collections[i].spec = &specs[i];
        pthread_mutex_init(&r->collections[i].sweep_lock, NULL);
        r->collections[i].last_sweep_ms = INT64_MIN;
    }
    r->n_collections = n_specs;

    int32_t rc = PERSISTOR_OK;
    for (size_t i = 0; i < prof->n_adapters && rc == PERSISTOR_OK; i++) {
        rc = router_adapter_open(r, i, &r->adapters[i], err);
        r->n_adapters = i + 1; /* close what was (partly) opened on failure */
    }
    if (rc != PERSISTOR_OK) {
        router_close(r);
        return rc;
    }
    *out = r;
    return PERSISTOR_OK;
}

void router_close(router *r)
{
    if (r == NULL)
        return;
    for (size_t i = r->n_adapters; i-- > 0;)
        router_adapter_close(&r->adapters[i]);
    for (size_t i = 0; i < r->n_collections; i++)
        pthread_mutex_destroy(&r->collections[i].sweep_lock);
    free(r->adapters);
    free(r->collections);
    free(r);
}

static int32_t adapter_cursor_next(router_adapter *a, persistor_cursor *cursor,
                                   const uint8_t **doc, uint32_t *len, persistor_error *err)
{
    adapter_lock(a);
    int32_t rc = a->api->cursor_next(cursor, doc, len, err);
    adapter_unlock(a);
    return rc;
}

/* ------------------------------------------------------------------ */
/* TTL                                                                */

/* Delete, on one adapter, every document of `coll` whose TTL field is
 * before the cutoff: the adapter's own expire, or a query and deletes. */
static int32_t adapter_expire(router_adapter *a, const router_collection *coll, int64_t cutoff,
                              uint64_t *removed, persistor_error *err)
{
    const persistor_collection_spec *spec = coll->spec;
    *removed = 0;
    if (a->api->expire != NULL) {
        adapter_lock(a);
        int32_t rc = a->api->expire(a->inst, spec->name, cutoff, removed, err);
        adapter_unlock(a);
        return adapter_fail(a, rc, err);
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
    /* Collect ids first: deleting while a cursor is open is not allowed. */
    persistor_string_list ids = {0};
    struct {
        persistor_cursor *cursor;
    } cur = {NULL};
    adapter_lock(a);
    int32_t rc = a->api->query(a->inst, spec->name, &q, &cur.cursor, err);
    adapter_unlock(a);
    const uint8_t *doc;
    uint32_t len;
    while (rc == PERSISTOR_OK && (rc = adapter_cursor_next(a, cur.cursor, &doc, &len, err)) ==
                                     PERSISTOR_OK) {
        bson_t view;
        bson_iter_t it;
        if (!bson_init_static(&view, doc, len) || !bson_iter_init_find(&it, &view, "_id") ||
            !BSON_ITER_HOLDS_UTF8(&it))
            continue;
        char **grown = realloc(ids.items, (ids.count + 1) * sizeof *grown);
        char *id = grown ? strdup(bson_iter_utf8(&it, NULL)) : NULL;
        if (grown != NULL)
            ids.items = grown;
        if (id == NULL) {
            rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory expiring %s", spec->name);
            break;
        }
        ids.items[ids.count++] = id;
    }
    if (cur.cursor != NULL) {
        adapter_lock(a);
        a->api->cursor_close(cur.cursor);
        adapter_unlock(a);
    }
    bson_destroy(&filter);
    if (rc == PERSISTOR_ITER_END && ids.count > 0) {
        persistor_write_op *ops = calloc(ids.count, sizeof *ops);
        int32_t *results = calloc(ids.count, sizeof *results);
        if (ops == NULL || results == NULL) {
            rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory expiring %s", spec->name);
        } else {
            for (size_t i = 0; i < ids.count; i++)
                ops[i] = (persistor_write_op){.kind = PERSISTOR_WRITE_DELETE, .id = ids.items[i]};
            adapter_lock(a);
            rc = a->api->write(a->inst, spec->name, ops, (uint32_t)ids.count, results, err);
            adapter_unlock(a);
            for (size_t i = 0; rc == PERSISTOR_OK && i < ids.count; i++)
                *removed += results[i] == PERSISTOR_OK;
        }
        free(ops);
        free(results);
    } else if (rc == PERSISTOR_ITER_END) {
        rc = PERSISTOR_OK;
    }
    persistor_string_list_free(&ids);
    return adapter_fail(a, rc, err);
}

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
        uint64_t n = 0;
        rc = adapter_expire(&r->adapters[i], coll, cutoff, &n, err);
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

/* ------------------------------------------------------------------ */
/* Generic operations                                                 */

int32_t router_write(router *r, const char *collection, const persistor_write_op *ops,
                     uint32_t n, int32_t *results, persistor_error *err)
{
    router_adapter *a = router_primary(r);
    adapter_lock(a);
    int32_t rc = a->api->write(a->inst, collection, ops, n, results, err);
    adapter_unlock(a);
    return adapter_fail(a, rc, err);
}

int32_t router_get(router *r, const char *collection, const char *id, persistor_buffer *out,
                   persistor_error *err)
{
    int32_t rc = router_maybe_sweep(r, collection, err);
    if (rc != PERSISTOR_OK)
        return rc;
    router_adapter *a = router_primary(r);
    adapter_lock(a);
    rc = a->api->get(a->inst, collection, id, out, err);
    adapter_unlock(a);
    return adapter_fail(a, rc, err);
}

int32_t router_exists(router *r, const char *collection, const char *id, persistor_error *err)
{
    router_adapter *a = router_primary(r);
    if (a->api->exists == NULL) {
        persistor_buffer buf = {0};
        int32_t rc = router_get(r, collection, id, &buf, err);
        buffer_free(&buf);
        return rc;
    }
    int32_t rc = router_maybe_sweep(r, collection, err);
    if (rc != PERSISTOR_OK)
        return rc;
    adapter_lock(a);
    rc = a->api->exists(a->inst, collection, id, err);
    adapter_unlock(a);
    return adapter_fail(a, rc, err);
}

int32_t router_query(router *r, const char *collection, const persistor_query *q,
                     router_cursor **out, persistor_error *err)
{
    int32_t rc = router_maybe_sweep(r, collection, err);
    if (rc != PERSISTOR_OK)
        return rc;
    router_cursor *c = calloc(1, sizeof *c);
    if (c == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory querying %s", collection);
    c->adapter = router_primary(r);
    adapter_lock(c->adapter);
    rc = c->adapter->api->query(c->adapter->inst, collection, q, &c->cursor, err);
    adapter_unlock(c->adapter);
    if (rc != PERSISTOR_OK) {
        free(c);
        return adapter_fail(router_primary(r), rc, err);
    }
    *out = c;
    return PERSISTOR_OK;
}

int32_t router_cursor_next(router_cursor *c, const uint8_t **doc, uint32_t *len,
                           persistor_error *err)
{
    int32_t rc = adapter_cursor_next(c->adapter, c->cursor, doc, len, err);
    return adapter_fail(c->adapter, rc, err);
}

void router_cursor_close(router_cursor *c)
{
    if (c == NULL)
        return;
    adapter_lock(c->adapter);
    c->adapter->api->cursor_close(c->cursor);
    adapter_unlock(c->adapter);
    free(c);
}

/* count and stats, from a full scan when the adapter has no slot for them. */
static int32_t router_scan(router *r, const char *collection, const uint8_t *filter,
                           uint32_t filter_len, persistor_collection_stats *out,
                           persistor_error *err)
{
    persistor_query q = {.struct_size = sizeof q, .filter = filter, .filter_len = filter_len};
    router_cursor *c;
    int32_t rc = router_query(r, collection, &q, &c, err);
    if (rc != PERSISTOR_OK)
        return rc;
    const uint8_t *doc;
    uint32_t len;
    out->item_count = 0;
    out->total_size = 0;
    while ((rc = router_cursor_next(c, &doc, &len, err)) == PERSISTOR_OK) {
        out->item_count++;
        out->total_size += len;
    }
    router_cursor_close(c);
    return rc == PERSISTOR_ITER_END ? PERSISTOR_OK : rc;
}

int32_t router_count(router *r, const char *collection, const uint8_t *filter,
                     uint32_t filter_len, uint64_t *out, persistor_error *err)
{
    router_adapter *a = router_primary(r);
    if (a->api->count == NULL) {
        persistor_collection_stats st = {.struct_size = sizeof st};
        int32_t rc = router_scan(r, collection, filter, filter_len, &st, err);
        *out = st.item_count;
        return rc;
    }
    int32_t rc = router_maybe_sweep(r, collection, err);
    if (rc != PERSISTOR_OK)
        return rc;
    adapter_lock(a);
    rc = a->api->count(a->inst, collection, filter, filter_len, out, err);
    adapter_unlock(a);
    return adapter_fail(a, rc, err);
}

int32_t router_stats(router *r, const char *collection, persistor_collection_stats *out,
                     const char **adapter_type, persistor_error *err)
{
    router_adapter *a = router_primary(r);
    *adapter_type = a->api->name;
    memset(out, 0, sizeof *out);
    out->struct_size = sizeof *out;
    if (a->api->stats == NULL)
        return router_scan(r, collection, NULL, 0, out, err);
    int32_t rc = router_maybe_sweep(r, collection, err);
    if (rc != PERSISTOR_OK)
        return rc;
    adapter_lock(a);
    rc = a->api->stats(a->inst, collection, out, err);
    adapter_unlock(a);
    return adapter_fail(a, rc, err);
}

static uint64_t router_elapsed_us(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    int64_t us = (now.tv_sec - since->tv_sec) * 1000000 + (now.tv_nsec - since->tv_nsec) / 1000;
    return us < 0 ? 0 : (uint64_t)us;
}

/* The adapter's own line, redacted like every log line: health output is
 * often pasted into tickets. */
static void router_describe(router_adapter *a, persistor_adapter_health *h)
{
    persistor_buffer line = {0};
    persistor_error err = {0};
    char raw[sizeof h->detail];
    adapter_lock(a);
    int32_t rc = a->api->describe(a->inst, &line, &err);
    adapter_unlock(a);
    if (rc == PERSISTOR_OK)
        snprintf(raw, sizeof raw, "%.*s", (int)line.len, line.data ? (const char *)line.data : "");
    else
        snprintf(raw, sizeof raw, "describe failed: %s", err.message);
    log_redact(raw, h->detail, sizeof h->detail);
    buffer_free(&line);
}

int32_t router_health(router *r, persistor_health *out, persistor_error *err)
{
    out->count = 0;
    out->adapters = calloc(r->n_adapters, sizeof *out->adapters);
    if (out->adapters == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory checking health");
    for (size_t i = 0; i < r->n_adapters; i++) {
        router_adapter *a = &r->adapters[i];
        persistor_adapter_health *h = &out->adapters[i];
        persistor_error ping_err = {0};
        struct timespec start;
        snprintf(h->label, sizeof h->label, "%s", a->label);
        snprintf(h->type, sizeof h->type, "%s", a->api->name);
        snprintf(h->version, sizeof h->version, "%s", a->api->version);
        h->capabilities = a->api->capabilities;
        clock_gettime(CLOCK_MONOTONIC, &start);
        adapter_lock(a);
        h->status = a->api->ping(a->inst, &ping_err);
        adapter_unlock(a);
        h->latency_us = router_elapsed_us(&start);
        if (h->status != PERSISTOR_OK)
            log_redact(ping_err.message, h->message, sizeof h->message);
        if (h->status == PERSISTOR_OK && a->api->describe != NULL)
            router_describe(a, h);
        out->count++;
    }
    return PERSISTOR_OK;
}
