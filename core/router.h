/*
 * router.h — the layer between the domain (snapshots, audit) and the
 * adapters: generic collection operations on the profile's adapter chain.
 *
 * It opens every adapter of the chain and ensures every collection on it,
 * serialises calls into adapters that are not thread-safe, emulates the
 * optional ABI slots (count, stats, expire) and sweeps TTL for adapters
 * without native TTL.  Nothing here knows what a snapshot is.
 */
#ifndef PERSISTOR_CORE_ROUTER_H
#define PERSISTOR_CORE_ROUTER_H

#include "host.h"
#include "persistor/persistor.h"
#include "profile.h"

typedef struct router router;
typedef struct router_cursor router_cursor;

/* Open the chain of `prof` and ensure the `n_specs` collections.  `prof`
 * and `specs` are borrowed and must outlive the router.  E_CONFIG,
 * E_ABI, E_UNAVAILABLE..., with the adapter named in the message. */
int32_t router_open(const profile *prof, const persistor_collection_spec *specs, size_t n_specs,
                    host_clock_fn clock, void *clock_ctx, router **out, persistor_error *err);
void router_close(router *r);

int64_t router_now_ms(const router *r);

int32_t router_write(router *r, const char *collection, const persistor_write_op *ops,
                     uint32_t n, int32_t *results, persistor_error *err);
int32_t router_get(router *r, const char *collection, const char *id, persistor_buffer *out,
                   persistor_error *err);
/* OK or NOT_FOUND: the adapter's exists, or a get. */
int32_t router_exists(router *r, const char *collection, const char *id, persistor_error *err);
int32_t router_query(router *r, const char *collection, const persistor_query *q,
                     router_cursor **out, persistor_error *err);
/* OK with a borrowed document (valid until the next call), ITER_END, error. */
int32_t router_cursor_next(router_cursor *c, const uint8_t **doc, uint32_t *len,
                           persistor_error *err);
void router_cursor_close(router_cursor *c);

int32_t router_count(router *r, const char *collection, const uint8_t *filter,
                     uint32_t filter_len, uint64_t *out, persistor_error *err);
/* *adapter_type: borrowed name of the adapter that answered. */
int32_t router_stats(router *r, const char *collection, persistor_collection_stats *out,
                     const char **adapter_type, persistor_error *err);
/* Expire now on every adapter of the chain that has no native TTL. */
int32_t router_expire(router *r, const char *collection, uint64_t *removed,
                      persistor_error *err);

int32_t router_health(router *r, persistor_health *out, persistor_error *err);

#endif
