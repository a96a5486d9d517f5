/*
 * router_internal.h — what router.c (the chain, the recovery thread,
 * health), router_ops.c (the calls) and router_replay.c (the journal)
 * share.  Nothing outside the router includes it.
 */
#ifndef PERSISTOR_CORE_ROUTER_INTERNAL_H
#define PERSISTOR_CORE_ROUTER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "breaker.h"
#include "loader.h"
#include "router.h"

typedef struct router_adapter {
    char label[64];
    size_t index;                 /* 0: the primary */
    const persistor_adapter *api; /* borrowed from module */
    loader_module *module;
    persistor_config *config;
    persistor_host *host;
    persistor_instance *inst;     /* NULL until opened */
    bool serialise;
    bool durable;
    bool declared_volatile;
    pthread_mutex_t lock;
    /* Opened and every collection ensured.  Set once, by router_open or
     * the recovery thread, before the breaker first closes. */
    atomic_bool ready;
    breaker breaker;
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

    /* Writes into a fallback hold it shared; the end of a replay holds it
     * exclusively, so no fallback write lands after the last drain. */
    pthread_rwlock_t route_lock;

    /* The recovery thread: probes open breakers, replays journals. */
    pthread_t recovery_thread;
    bool recovery_started;
    pthread_mutex_t recovery_lock;
    pthread_cond_t recovery_wake;
    bool stopping;
    /* One replay at a time in this process (the thread, or router_open). */
    pthread_mutex_t replay_lock;
};

void router_adapter_lock(router_adapter *a);
void router_adapter_unlock(router_adapter *a);

/* Name the adapter in an adapter's error: "memory#0: <message>". */
int32_t router_adapter_fail(const router_adapter *a, int32_t rc, persistor_error *err);

router_collection *router_find_collection(router *r, const char *name);

/* Codes that say "this store is not answering": they open the breaker
 * once retries are spent, and the call moves on to the next adapter. */
bool router_fails_over(int32_t rc);

/* One attempt of an operation on one adapter, under its lock. */
typedef int32_t (*router_attempt_fn)(router_adapter *a, void *ctx, persistor_error *err);

/* Run `fn` with the profile's retry policy: again after E_RETRY, and after
 * E_UNCERTAIN when `idempotent`, with full-jitter backoff and a
 * retry_scheduled log line; stops early when another call has opened the
 * adapter's breaker meanwhile.  Returns the last answer. */
int32_t router_attempt(router *r, router_adapter *a, const char *operation, bool idempotent,
                       router_attempt_fn fn, void *ctx, persistor_error *err);

/* Drain query `q` on `a` (its lock held by the caller), handing each
 * document to `visit`: how the core emulates a slot an adapter leaves
 * NULL, and reads a journal.  `visit` returns OK for more, ITER_END to stop
 * early, or an error that ends the scan.  OK once the scan ended, else the
 * first error (the adapter's or visit's). */
typedef int32_t (*router_visit_fn)(void *ctx, const uint8_t *doc, uint32_t len,
                                   persistor_error *err);
int32_t router_adapter_scan(router_adapter *a, const char *collection, const persistor_query *q,
                            router_visit_fn visit, void *ctx, persistor_error *err);

/* count (stats NULL) or stats of one collection: the adapter's slot, or
 * a scan of a query on that adapter.  A router_attempt_fn. */
typedef struct router_count_ctx {
    const char *collection;
    const uint8_t *filter;
    uint32_t filter_len;
    uint64_t *out;
    persistor_collection_stats *stats;
} router_count_ctx;
int32_t router_count_attempt(router_adapter *a, void *ctx, persistor_error *err);

/* Open `a`'s breaker after `rc` (logs adapter_failover once, wakes the
 * recovery thread). */
void router_trip(router *r, router_adapter *a, int32_t rc, const persistor_error *err);

/* Replay every ready fallback's journal into the primary, then close the
 * primary's breaker.  False when the primary failed again (its breaker is
 * open again).  Serialised by replay_lock. */
bool router_recover_primary(router *r);

/* Replay one fallback's journal into the primary, at most `budget`
 * entries.  `exclusive`: the caller holds route_lock exclusively already.
 * On an error its code is returned, *fallback_failed says whether the
 * fallback (reading or forgetting its journal) rather than the primary
 * failed, and what was replayed stays replayed. */
typedef struct replay_counts {
    uint64_t replayed;   /* entries applied (or found already applied) */
    uint64_t duplicates; /* inserts the primary had already */
    uint64_t superseded; /* upserts the primary had a newer version of */
    uint64_t skipped;    /* entries this profile cannot replay (logged) */
} replay_counts;
int32_t router_replay_drain(router *r, router_adapter *fallback, bool exclusive,
                            uint64_t budget, replay_counts *counts, bool *fallback_failed,
                            persistor_error *err);

/* Append journal entries for `ops` to fallback `a` (with retries). */
int32_t router_journal_append(router *r, router_adapter *a, const char *collection,
                              const persistor_write_op *ops, uint32_t n, persistor_error *err);

/* Entries in `a`'s journal (0 when it has none, or cannot be read). */
uint64_t router_journal_pending(router_adapter *a);

#endif
