/*
 * bench_direct.h — the baselines of `persistor bench`: the same snapshot
 * workload written straight against SQLite and LMDB, with no persistor in
 * between, as an application without persistor would write it for the same
 * durability.
 *
 * The inputs travel in persistor_snapshot_input only so that both sides of
 * the benchmark read the very same bytes; nothing here calls libpersistor.
 * A baseline whose library was not found at build time is simply absent:
 * bench_direct_available() says so and bench_direct_open() refuses it.
 */
#ifndef PERSISTOR_CLI_BENCH_DIRECT_H
#define PERSISTOR_CLI_BENCH_DIRECT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "persistor/persistor.h"

typedef struct bench_direct bench_direct;

/** True when the baseline for `adapter` ("sqlite", "lmdb") was built in. */
bool bench_direct_available(const char *adapter);

/**
 * Open a fresh store for `adapter` at `path` (SQLite: the database file;
 * LMDB: an existing, empty environment directory, mapped with `map_size`
 * bytes).  On success *out is freed with bench_direct_close and 0 is
 * returned; on failure -1 with a message for a person in `msg`.
 */
int bench_direct_open(const char *adapter, const char *path, uint64_t map_size,
                      bench_direct **out, char *msg, size_t msg_cap);
void bench_direct_close(bench_direct *d);

/**
 * Store `n` snapshots in one transaction, each under the SHA-256 id persistor
 * would give it (written to ids[i]); a snapshot whose id is stored already is
 * skipped.  *stored counts the new ones.  0, or -1 with `msg`.
 */
int bench_direct_append(bench_direct *d, const persistor_snapshot_input *in, size_t n,
                        char (*ids)[PERSISTOR_HASH_HEX_LEN + 1], size_t *stored, char *msg,
                        size_t msg_cap);

/** 1 if a document has this id, 0 if not, -1 on error (with `msg`). */
int bench_direct_has(bench_direct *d, const char *id, char *msg, size_t msg_cap);

/** What one load saw: documents in (ts, id) order and their bytes. */
typedef struct bench_direct_loaded {
    size_t count;
    uint64_t bytes;
    bool ordered; /* every ts was >= the one before */
} bench_direct_loaded;

/** Read every document of `xc_id` in (ts, id) order.  0, or -1 with `msg`. */
int bench_direct_load(bench_direct *d, const char *xc_id, bench_direct_loaded *out, char *msg,
                      size_t msg_cap);

/**
 * The id persistor gives a snapshot (core/snapshot.c): SHA-256 hex over
 * "persistor-snapshot-v1\0" tenant "\0" xc_id "\0" <ts in decimal ms> "\0"
 * <content BSON>.  A NULL tenant is "default".
 */
void bench_direct_hash(const persistor_snapshot_input *in, char out[PERSISTOR_HASH_HEX_LEN + 1]);

#endif
