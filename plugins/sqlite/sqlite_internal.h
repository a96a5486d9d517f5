/*
 * sqlite_internal.h — what the three files of the sqlite adapter share.
 *
 *   sqlite.c             the ABI table, options, open/close, ping, and the
 *                        mapping of SQLite result codes to persistor's
 *   sqlite_collection.c  tables, index columns, ensure_collection, writes,
 *                        get/exists/stats/expire
 *   sqlite_query.c       query planning (push-down onto index key columns)
 *                        and running a plan
 *   sqlite_cursor.c      query and count: cursors, the answer's order, and
 *                        what a query reuses from the last one
 *   ../sorters.h         the version sorter and the last sort kept (shared
 *                        with lmdb as source: static inline)
 *
 * Nothing here is exported: only persistor_adapter_entry leaves the .so.
 *
 * SQL text.  Identifiers cannot be bound, so every statement is built from
 * identifiers of our own making only: tables are "c_<hex of the collection
 * name>", key columns "k_<hex of the index name>", SQL indexes
 * "x_<hex collection>_<hex index>".  Hex keeps them [0-9a-z_] (no quoting
 * to get wrong, no clash with sqlite_* names) and case-exact (SQLite folds
 * identifier case; collection names are case-sensitive data).  Every value
 * — ids, documents, keys, names in the metadata tables — is bound.
 */
#ifndef PERSISTOR_SQLITE_INTERNAL_H
#define PERSISTOR_SQLITE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <sqlite3.h>

#include "persistor/adapter.h"

#include "../sorters.h"

/* "PRST": the application_id of a persistor store (PRAGMA application_id). */
#define SQ_APPLICATION_ID 0x50525354
/* The layout written by this adapter (PRAGMA user_version). */
#define SQ_SCHEMA_VERSION 1
/* Longest names we take (MongoDB's own limits are about the same). */
#define SQ_MAX_COLLECTION_NAME 255
#define SQ_MAX_INDEX_NAME 127

/* Cached statements of one collection, prepared once after ensure. */
enum {
    SQ_ST_INSERT, /* INSERT INTO t(id, doc, ttl, k...) */
    SQ_ST_UPDATE, /* UPDATE t SET seq = max+1, doc, ttl, k... WHERE id */
    SQ_ST_DELETE,
    SQ_ST_GET,
    SQ_ST_HAS,
    SQ_ST_SCAN,  /* SELECT seq, doc ORDER BY seq */
    SQ_ST_COUNT, /* count(*) */
    SQ_ST_STATS, /* count(*), total(length(doc)) */
    SQ_ST_EXPIRE,
    SQ_ST_N
};

/* One declared index as the table holds it: a BLOB column of
 * host->index_key bytes and an SQL index on it.  Range statements are
 * prepared on first use (most indexes are never queried by range). */
typedef struct sq_index {
    const persistor_index_spec *spec; /* the host's, valid until close */
    char column[2 + 2 * SQ_MAX_INDEX_NAME + 1]; /* "k_<hex>" */
    sqlite3_stmt *range;              /* seq, doc, k WHERE k >= ? AND k < ? */
    sqlite3_stmt *from;               /* seq, doc, k WHERE k >= ?           */
    persistor_buffer key;             /* scratch: this index's key of a write */
    /* The level-0 array/null ranges of query plans (sqlite_query.c) were
     * empty when the file's data version was probe0_version. */
    int probe0_clean;
    uint32_t probe0_version;
} sq_index;

typedef struct sq_collection {
    struct sq_collection *next;
    const persistor_collection_spec *spec; /* the host's, valid until close */
    char table[2 + 2 * SQ_MAX_COLLECTION_NAME + 1]; /* "c_<hex>" */
    sq_index *indexes;                     /* spec->n_indexes of them */
    sqlite3_stmt *st[SQ_ST_N];
    persistor_sorter *version;             /* {version_field: 1}, or NULL */
} sq_collection;

struct persistor_instance {
    const persistor_host *host;
    const persistor_config *config;
    sqlite3 *db;
    const char *path; /* the config's string: valid until close */
    int64_t busy_timeout_ms;
    sq_collection *collections;
    sqlite3_stmt *begin, *commit, *rollback; /* BEGIN IMMEDIATE, COMMIT, ROLLBACK */
    persistor_buffer keybuf;                 /* query plans: one bound key */
    uint8_t *arena;                          /* query plans: range bounds */
    size_t arena_cap;
    int key_bytes_known;                     /* null_byte/array_byte are set */
    uint8_t null_byte, array_byte;           /* first key byte of null, of [] */
    /* Kept from one query to the next (sqlite_cursor.c): the last valid
     * sort compiled (same bytes, same sorter) and a closed cursor's
     * buffers. */
    sorters_cache sort;
    persistor_cursor *spare;
};

/* ---- sqlite.c ------------------------------------------------------- */

/* Fill `err` for SQLite result `rc` met while doing `what` (printf-style,
 * e.g. "c/a: insert"), classed by adapter.h's rules, naming the file.
 * Returns the persistor code. */
int32_t sq_error(persistor_instance *inst, int rc, persistor_error *err, const char *what, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 4, 5)))
#endif
    ;

/* The persistor class of SQLite result `rc` (no message). */
int32_t sq_class(int rc);

/* Prepare `sql` (persistent).  SQLite code. */
int sq_prepare(persistor_instance *inst, const char *sql, sqlite3_stmt **out);

/* Run a statement that returns no rows (reset afterwards).  SQLite code. */
int sq_exec_stmt(sqlite3_stmt *st);

/* Run SQL text of our own making (no values in it).  SQLite code. */
int sq_exec(persistor_instance *inst, const char *sql);

/* Begin an immediate transaction / commit / roll back if one is open. */
int sq_begin(persistor_instance *inst);
int sq_commit(persistor_instance *inst);
void sq_rollback(persistor_instance *inst);

/* "<prefix><lowercase hex of s>" into out, cut to fit (ensure_collection
 * refuses names longer than SQ_MAX_*_NAME, so nothing is ever cut). */
void sq_hex_name(char *out, size_t cap, const char *prefix, const char *s);

/* BSON's int32 length prefix. */
uint32_t sq_le32(const uint8_t *p);

/* ---- sqlite_collection.c ------------------------------------------------ */

int32_t sq_ensure_collection(persistor_instance *inst, const persistor_collection_spec *spec,
                             persistor_error *err);
void sq_collection_free(persistor_instance *inst, sq_collection *c);
/* The collection ensured under this name, or E_INVALID. */
int32_t sq_collection_get(persistor_instance *inst, const char *name, sq_collection **out,
                          persistor_error *err);
int32_t sq_write(persistor_instance *inst, const char *collection, const persistor_write_op *ops,
                 uint32_t n, int32_t *results, persistor_error *err);
int32_t sq_get(persistor_instance *inst, const char *collection, const char *id,
               persistor_buffer *out, persistor_error *err);
int32_t sq_exists(persistor_instance *inst, const char *collection, const char *id,
                  persistor_error *err);
int32_t sq_stats(persistor_instance *inst, const char *collection,
                 persistor_collection_stats *out, persistor_error *err);
int32_t sq_expire(persistor_instance *inst, const char *collection, int64_t cutoff_ms,
                  uint64_t *removed, persistor_error *err);

/* ---- sqlite_query.c --------------------------------------------------- */

#define SQ_MAX_LEVELS 8 /* index fields a plan constrains */
#define SQ_MAX_RANGES (1 + 2 * (SQ_MAX_LEVELS + 1))

typedef struct sq_range {
    size_t lo, lo_len, hi, hi_len; /* offsets into inst->arena */
    int open_hi;                   /* no upper bound */
    int probe0;                    /* only keys with an array (or null) first */
} sq_range;

enum { SQ_PLAN_SCAN, SQ_PLAN_ID, SQ_PLAN_INDEX };

/* Which rows a query reads.  SCAN and ID yield rows in write order; INDEX
 * yields them in (key, seq) order, the ranges being disjoint and sorted. */
typedef struct sq_qplan {
    int kind;
    const char *id; /* SQ_PLAN_ID */
    uint32_t id_len;
    sq_index *ix;       /* SQ_PLAN_INDEX: */
    uint32_t e;         /* equalities on ix's first e fields */
    int ranged;         /* and a range on field e */
    size_t q, q_len;    /* the key of those e values (inst->arena) */
    int exact;          /* the filter is those equalities and nothing else */
    int null_dotted_eq; /* one of them is null on a dotted field */
    sq_range ranges[SQ_MAX_RANGES];
    size_t n_ranges;
    size_t arena_used;
} sq_qplan;

/* A row a plan yields, matched: 0 to go on, 1 to stop, or an error.
 * `key` is the row's key column for INDEX plans, else NULL. */
typedef int32_t (*sq_take_fn)(void *ctx, int64_t seq, const uint8_t *doc, uint32_t len,
                              const uint8_t *key, uint32_t key_len);

/* Choose the plan of `filter` (never fails: SCAN is always possible). */
void sq_plan_query(persistor_instance *inst, sq_collection *c, const uint8_t *filter,
                   uint32_t filter_len, sq_qplan *p);
/* Run it, handing every matching row to `take`: in write order for SCAN
 * and ID, for INDEX mostly in key order (sqlite_cursor.c checks). */
int32_t sq_run(persistor_instance *inst, sq_collection *c, const sq_qplan *p,
               const persistor_matcher *m, sq_take_fn take, void *ctx, persistor_error *err);
/* Does `key` start with the plan's equality prefix (so its first e values
 * compare equal to the filter's)? */
int sq_in_prefix(const persistor_instance *inst, const sq_qplan *p, const uint8_t *key,
                 uint32_t key_len);

/* ---- sqlite_cursor.c -------------------------------------------------- */

int32_t sq_query(persistor_instance *inst, const char *collection, const persistor_query *q,
                 persistor_cursor **out, persistor_error *err);
int32_t sq_cursor_next(persistor_cursor *cur, const uint8_t **doc, uint32_t *len,
                       persistor_error *err);
void sq_cursor_close(persistor_cursor *cur);
int32_t sq_count(persistor_instance *inst, const char *collection, const uint8_t *filter,
                 uint32_t filter_len, uint64_t *out, persistor_error *err);
/* Free what queries keep between calls (at close). */
void sq_query_cache_free(persistor_instance *inst);

#endif
