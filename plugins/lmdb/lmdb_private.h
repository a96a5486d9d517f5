/*
 * lmdb_private.h — what the five files of the lmdb adapter share.
 *
 *   lmdb.c        the ABI table, options, open/close, the per-process
 *                 environment registry, transactions with map growth,
 *                 error classes, write, expire, stats, ping.
 *   lmdb_collection.c  ensure_collection (spec, handles, index builds)
 *                 and the indexes' "clean" flags.
 *   lmdb_index.c  keys (ids, index entries, TTL), and the writes that keep
 *                 documents, indexes, TTL and counters in step; expire.
 *   lmdb_query.c  query planning, scans, cursors, count.
 *   lmdb_read.c   get, exists; the filter shapes kept.
 *   ../sorters.h  the version sorter and the last sort kept (shared
 *                 with sqlite as source: static inline).
 *
 * On-disk layout (named sub-databases of one environment):
 *
 *   "meta"                  "spec:<coll>"  -> the collection's spec, serialized
 *                           "stat:<coll>"  -> item count and bytes (2 x u64 LE)
 *                           "clean:<index sub-db name>" -> "" (see below)
 *   "d:<coll>"              main key(id)   -> the document's BSON
 *   "i:<n>:<coll>:<index>"  entry key      -> main key of the document
 *   "t:<coll>"              ms(BE, sign-flipped) + main key -> ""
 *
 * Long keys.  LMDB keys stop at 511 bytes.  Every key we build is either
 * "short" (shorter than LM_TRUNC_LEN, stored as is) or "long", stored as
 * its first LM_PREFIX bytes, an 8-byte hash of the whole, and a 4-byte
 * big-endian sequence number: exactly LM_TRUNC_LEN bytes, so the length
 * alone tells the two forms apart.  Entries that share a hash group are
 * told apart by reading the document (whose "_id" is the full id), so
 * answers stay exact even under a hash collision; order among entries
 * that share their first LM_PREFIX bytes is restored at query time by
 * recomputing the full keys from the documents (see lmdb_query.c).
 *
 * Clean indexes.  "clean:<i:...>" in meta says that no document stored in
 * that index since it was last built has an array in one of its fields, so
 * a query need not look for the "array" key ranges.  Only plain indexes
 * (top-level fields, the only ones queries push down to) get it: written
 * when the index is built from documents without arrays, deleted in the
 * write transaction that first stores an array in one of its fields, never
 * set again until a rebuild.  No key (an environment of an older version
 * included) means "maybe arrays": the slow, always-right path.  A reader
 * caches the flag for the snapshot (txn id) it read it in.
 */
#ifndef PERSISTOR_LMDB_PRIVATE_H
#define PERSISTOR_LMDB_PRIVATE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <lmdb.h>

#include "persistor/adapter.h"

#include "../sorters.h"

#define LM_PREFIX 400u                    /* bytes of a long key kept as is */
#define LM_GROUP_LEN (LM_PREFIX + 8u)     /* prefix + hash: one hash group */
#define LM_TRUNC_LEN (LM_GROUP_LEN + 4u)  /* + sequence: every long key */
#define LM_MIN_MAXKEY 511                 /* LMDB's default; we need 8 + 412 */

/* One environment directory, shared by every instance of this process
 * that opens it (LMDB forbids opening one environment twice in a process:
 * closing the second would drop the first one's POSIX locks). */
typedef struct lm_env {
    struct lm_env *next;
    dev_t dev;
    ino_t ino;
    pid_t pid; /* a forked child never reuses its parent's handle */
    int refs;
    MDB_env *env;
    MDB_dbi meta;
    /* Every transaction of this process holds it shared; map growth holds
     * it exclusive, since mdb_env_set_mapsize needs no active transaction. */
    pthread_rwlock_t lock;
} lm_env;

typedef struct lm_index {
    const persistor_index_spec *spec;
    MDB_dbi dbi;
    int unique;
    int plain; /* no dotted field: usable for push-down */
    char *clean_key;      /* "clean:<sub-db name>" (plain indexes only) */
    size_t clean_key_len;
    size_t clean_txnid;   /* the snapshot `clean` was read in */
    int clean;            /* the flag as read then; -1: not read yet */
    int pend_clean;       /* as the last write batch leaves it; -1: unknown */
} lm_index;

typedef struct lm_coll {
    struct lm_coll *next;
    const persistor_collection_spec *spec; /* the host's: valid until close */
    MDB_dbi main, ttl;
    lm_index *idx;
    uint32_t n_idx;
    int has_ttl;
    int firsts_cover; /* every field of a plain index leads one (lmdb_index.c) */
    char *stat_key; /* "stat:<coll>" */
    persistor_sorter *version; /* {version_field: 1} for upsert-if-newer, or NULL */
} lm_coll;

/* A filter's shape: its top-level keys and their scalar types, values
 * left out (see lm_filter_shape). */
#define LM_SHAPES 8
#define LM_SHAPE_MAX 256
typedef struct lm_shape {
    uint32_t len; /* 0: an empty slot */
    uint8_t b[LM_SHAPE_MAX];
} lm_shape;

struct persistor_instance {
    const persistor_host *host;
    const persistor_config *config;
    lm_env *shared;
    MDB_env *env;
    char *path;
    uint64_t max_map;
    int durable;
    uint8_t rank_array, rank_null; /* first key byte of [] and of null */
    lm_coll *colls;
    MDB_txn *rtxn; /* a reset read txn, renewed per call (no calloc per read) */
    persistor_buffer key, key2;      /* scratch for host->index_key */
    uint8_t *scratch;                /* a copy of a document being replaced */
    size_t scratch_cap;
    /* Compiled once, reused (calls are serialised; see lmdb_read.c). */
    sorters_cache sort;              /* the last sort, compiled */
    lm_shape shapes[LM_SHAPES];      /* filter shapes matcher_new accepted */
    uint32_t next_shape;
};

/* A read or write transaction with the environment's lock held. */
typedef struct lm_txn {
    MDB_txn *txn;
    int write;
} lm_txn;

/* ---- lmdb.c ---- */
int32_t lm_error(persistor_instance *inst, int rc, const char *what, persistor_error *err);
int32_t lm_begin(persistor_instance *inst, int write, lm_txn *t, persistor_error *err);
void lm_end(persistor_instance *inst, lm_txn *t);    /* abort / reset */
int lm_commit(persistor_instance *inst, lm_txn *t);  /* the MDB code */
int32_t lm_grow(persistor_instance *inst, persistor_error *err);
int lm_counts_add(MDB_txn *txn, MDB_dbi meta, const char *stat_key, int64_t items,
                  int64_t bytes);
int lm_reserve(persistor_instance *inst, size_t n);

/* ---- lmdb_collection.c ---- */
int32_t lm_coll_get(persistor_instance *inst, const char *name, lm_coll **out,
                    persistor_error *err);
int32_t lm_ensure_collection(persistor_instance *inst, const persistor_collection_spec *spec,
                             persistor_error *err);
void lm_coll_free(persistor_instance *inst, lm_coll *c);
/* Is `ix` clean in the snapshot of `txn`?  0 on an LMDB error (*mdb). */
int lm_index_is_clean(persistor_instance *inst, MDB_txn *txn, lm_index *ix, int *mdb);

/* ---- lmdb_index.c ---- */
/* Does `doc` hold an array in a field of the plain index `ix`? (1 also
 * when it cannot tell: a damaged document.) */
int lm_doc_has_array(const lm_index *ix, const uint8_t *doc, uint32_t len);
uint64_t lm_hash(const void *a, size_t an, const void *b, size_t bn);
int32_t lm_doc_ok(const uint8_t *doc, uint32_t len);
/* The main key of `id`: short (the id) or its hash group (LM_GROUP_LEN). */
size_t lm_main_key(const char *id, size_t id_len, uint8_t *out);
/* Find a document by id.  0 with *mk (main key) and *doc set, MDB_NOTFOUND,
 * or an MDB error.  mk must hold LM_TRUNC_LEN bytes. */
int lm_main_find(MDB_txn *txn, MDB_dbi dbi, const char *id, uint8_t *mk, size_t *mk_len,
                 MDB_val *doc);
/* An index entry's key: short (as is) or a hash group to add a sequence to. */
typedef struct lm_key {
    size_t len;
    int grouped;
    uint8_t b[LM_TRUNC_LEN];
} lm_key;
/* The entry of `doc` in `ix` (id: the document's, used by non-unique
 * indexes); leaves the full key (K, or K + id) in inst->key. */
int32_t lm_index_entry(persistor_instance *inst, const lm_index *ix, const uint8_t *doc,
                       uint32_t len, const char *id, lm_key *out);
int lm_index_put(MDB_txn *txn, const lm_index *ix, const lm_key *e, const uint8_t *mk,
                 size_t mk_len);
uint32_t lm_be32(const uint8_t *p);
int32_t lm_unique_holder(persistor_instance *inst, MDB_txn *txn, lm_coll *c,
                         const lm_index *ix, const uint8_t *doc, uint32_t len,
                         const uint8_t *self, size_t self_len, MDB_val *holder_doc, int *mdb);
int32_t lm_write_ops(persistor_instance *inst, MDB_txn *txn, lm_coll *c,
                     const persistor_write_op *ops, uint32_t n, int32_t *results,
                     uint32_t *done, int *mdb, persistor_error *err);
int32_t lm_expire_txn(persistor_instance *inst, MDB_txn *txn, lm_coll *c, int64_t cutoff,
                      uint64_t *removed, int *mdb, persistor_error *err);
int lm_ttl_key(int64_t ms, const uint8_t *mk, size_t mk_len, uint8_t *out);
const char *lm_doc_id(const uint8_t *doc, uint32_t len);

/* ---- lmdb_query.c ---- */
int32_t lm_query(persistor_instance *inst, const char *collection, const persistor_query *q,
                 persistor_cursor **out, persistor_error *err);
int32_t lm_cursor_next(persistor_cursor *cur, const uint8_t **doc, uint32_t *len,
                       persistor_error *err);
void lm_cursor_close(persistor_cursor *cur);
int32_t lm_count(persistor_instance *inst, const char *collection, const uint8_t *filter,
                 uint32_t filter_len, uint64_t *out, persistor_error *err);

/* ---- lmdb_read.c ---- */
int32_t lm_get(persistor_instance *inst, const char *collection, const char *id,
               persistor_buffer *out, persistor_error *err);
int32_t lm_exists(persistor_instance *inst, const char *collection, const char *id,
                  persistor_error *err);
/* The matcher of `filter`, or NULL in *m when its shape is known good (then
 * compiled only if a candidate must be matched).  OK or matcher_new's. */
int32_t lm_matcher(persistor_instance *inst, const uint8_t *filter, uint32_t len,
                   persistor_matcher **m, persistor_error *err);

#endif
