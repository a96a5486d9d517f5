/*
 * router.h — the layer between the domain (snapshots, audit) and the
 * adapters: generic collection operations on the profile's adapter chain.
 *
 * It opens every adapter of the chain and ensures every collection on it,
 * serialises calls into adapters that are not thread-safe, emulates the
 * optional ABI slots (count, stats, expire, group_count) and sweeps TTL
 * for adapters without native TTL.  It owns resilience: retry with backoff, a circuit
 * breaker per adapter, failover to the next adapter, the fallback journal
 * and its replay into the primary (docs/FAILOVER.md).  Nothing here knows
 * what a snapshot is.
 *
 * "Degraded" answers: a read answered by a fallback while the primary is
 * not serving sees only what the fallback holds.  Every read reports it.
 */
#ifndef PERSISTOR_CORE_ROUTER_H
#define PERSISTOR_CORE_ROUTER_H

#include <stdbool.h>

#include "host.h"
#include "persistor/persistor.h"
#include "profile.h"

typedef struct router router;
typedef struct router_cursor router_cursor;

/* Open the chain of `prof` and ensure the `n_specs` collections (and the
 * journal on every fallback).  `prof` and `specs` are borrowed and must
 * outlive the router.  An adapter that does not answer (E_UNAVAILABLE,
 * E_RETRY) starts with its breaker open; a fallback journal left by an
 * earlier process is replayed here when the primary answers.  Errors:
 * E_CONFIG, E_ABI, E_CORRUPT..., or E_UNAVAILABLE when no adapter of the
 * chain answers, with the adapter named in the message. */
int32_t router_open(const profile *prof, const persistor_collection_spec *specs, size_t n_specs,
                    host_clock_fn clock, void *clock_ctx, router **out, persistor_error *err);
void router_close(router *r);

int64_t router_now_ms(const router *r);

int32_t router_write(router *r, const char *collection, const persistor_write_op *ops,
                     uint32_t n, int32_t *results, persistor_error *err);
/* Reads: *degraded (may be NULL) is set true when a fallback answered. */
int32_t router_get(router *r, const char *collection, const char *id, persistor_buffer *out,
                   bool *degraded, persistor_error *err);
/* OK or NOT_FOUND: the adapter's exists, or a get. */
int32_t router_exists(router *r, const char *collection, const char *id, bool *degraded,
                      persistor_error *err);
int32_t router_query(router *r, const char *collection, const persistor_query *q,
                     router_cursor **out, persistor_error *err);
bool router_cursor_degraded(const router_cursor *c);
/* OK with a borrowed document (valid until the next call), ITER_END (and
 * ITER_END on every later call, without asking the adapter), or an error. */
int32_t router_cursor_next(router_cursor *c, const uint8_t **doc, uint32_t *len,
                           persistor_error *err);
void router_cursor_close(router_cursor *c);

int32_t router_count(router *r, const char *collection, const uint8_t *filter,
                     uint32_t filter_len, uint64_t *out, bool *degraded, persistor_error *err);
/* Count the documents matching `filter` per value of the field path
 * `field`: {groups: [{_id, total: int64}, ...]} into `out`, as adapter.h's
 * group_count slot answers.  The adapter's slot when it has one, else the
 * core's own grouping (group.c) over a query on that adapter.  OK,
 * E_INVALID (filter, field), errors. */
int32_t router_group_count(router *r, const char *collection, const uint8_t *filter,
                           uint32_t filter_len, const char *field, persistor_buffer *out,
                           bool *degraded, persistor_error *err);
/* *adapter_type: borrowed name of the adapter that answered. */
int32_t router_stats(router *r, const char *collection, persistor_collection_stats *out,
                     const char **adapter_type, bool *degraded, persistor_error *err);
/* Expire now on every adapter of the chain that has no native TTL. */
int32_t router_expire(router *r, const char *collection, uint64_t *removed,
                      persistor_error *err);

/* True while the primary is not serving (its breaker is not closed). */
bool router_degraded(router *r);

int32_t router_health(router *r, persistor_health *out, persistor_error *err);

#endif
