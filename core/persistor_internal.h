/*
 * persistor_internal.h — the handle behind persistor.h, shared by the
 * files of the domain layer (persistor.c, snapshot.c).  Not installed.
 */
#ifndef PERSISTOR_CORE_PERSISTOR_INTERNAL_H
#define PERSISTOR_CORE_PERSISTOR_INTERNAL_H

#include "persistor/persistor.h"
#include "profile.h"
#include "router.h"

/* The largest document persistor writes: MongoDB's BSON limit, so a
 * document any adapter took can always be replayed into MongoDB. */
#define PERSISTOR_MAX_DOCUMENT_BYTES (16 * 1024 * 1024)

struct persistor {
    profile *prof;
    router *router;
    persistor_collection_spec specs[PROFILE_COLL_COUNT];
    size_t n_specs;
    int64_t (*clock_ms)(void *ctx);
    void *clock_ctx;
};

/* The collection name the profile gives `kind`. */
const char *persistor_collection_name(const persistor *p, profile_collection_kind kind);

/*
 * A write of `n` records to collection `kind` failed with `rc` (< 0).
 * Under `on_failure: fail_closed`, or for E_INVALID (the caller's input:
 * no store would take it), the error stands: returns rc.  Under fail_open,
 * each record without an answer gets NOT_STORED in results[] and a
 * `<event>_persist_failed` log line with its id and the reason, and the
 * call returns OK, so the caller is never blocked and nothing is dropped
 * silently.
 */
int32_t persistor_on_failure(const persistor *p, profile_collection_kind kind, const char *event,
                             const persistor_write_op *ops, int32_t *results, size_t n,
                             int32_t rc, const persistor_error *err);

/* The specs of validation_audit, workflow_results and incidents (indexes,
 * TTL, version field), named and timed from the profile, into specs[];
 * returns how many. */
size_t audit_collection_specs(const profile *prof, persistor_collection_spec *specs);

/* The spec of telemetry_buffer (indexes, TTL, version field), named and
 * timed from the profile, into specs[]; returns how many (1). */
size_t telemetry_collection_specs(const profile *prof, persistor_collection_spec *specs);

/* The profile's collection called `name`: by the name the profile gives
 * it, else by its key ("incidents").  OK with *kind, or E_INVALID listing
 * the collections there are. */
int32_t persistor_collection_lookup(const persistor *p, const char *name,
                                    profile_collection_kind *kind, persistor_error *err);

/* The collection specs (indexes, TTL) of the snapshot domain, named and
 * timed from the profile, into specs[]; returns how many. */
size_t snapshot_collection_specs(const profile *prof, persistor_collection_spec *specs);

#endif
