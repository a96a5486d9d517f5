/*
 * bench_direct.c — the direct baselines of `persistor bench`.
 *
 * What an application would write for the snapshot workload if it used
 * SQLite or LMDB itself, with the durability persistor's adapters promise:
 * the same SHA-256 id over the same input, the same BSON document built with
 * libbson, stored under its id, with an index that serves "every snapshot of
 * a context in (ts, id) order".  It is a yardstick, so it must stay the
 * plain, idiomatic use of each library: no tricks persistor could not also
 * use, no shortcuts persistor is not allowed (weaker sync, skipped index).
 * It must never call libpersistor; the SHA-256 is core/sha256.c compiled in,
 * so both sides pay for the same hash function.
 */
#include "bench_direct.h"

#include <bson/bson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../sha256.h"

#ifdef PERSISTOR_BENCH_SQLITE
#include <sqlite3.h>
#endif
#ifdef PERSISTOR_BENCH_LMDB
#include <lmdb.h>
#endif

#define DIRECT_DEFAULT_TENANT "default"

/* One backend: the calls the bench makes, on its own state. */
typedef struct direct_ops {
    const char *name;
    int (*open)(bench_direct *d, const char *path, uint64_t map_size, char *msg, size_t cap);
    void (*close)(bench_direct *d);
    int (*append)(bench_direct *d, const persistor_snapshot_input *in, size_t n,
                  char (*ids)[PERSISTOR_HASH_HEX_LEN + 1], size_t *stored, char *msg, size_t cap);
    int (*has)(bench_direct *d, const char *id, char *msg, size_t cap);
    int (*load)(bench_direct *d, const char *xc_id, bench_direct_loaded *out, char *msg,
                size_t cap);
} direct_ops;

struct bench_direct {
    const direct_ops *ops;
#ifdef PERSISTOR_BENCH_SQLITE
    sqlite3 *db;
    sqlite3_stmt *begin, *commit, *rollback, *insert, *exists, *load;
#endif
#ifdef PERSISTOR_BENCH_LMDB
    MDB_env *env;
    MDB_dbi docs, by_xc;
    MDB_txn *read_txn; /* kept reset between reads, renewed for each */
#endif
};

/* ------------------------------------------------------------------ */
/* What both backends share: the id and the document                  */

void bench_direct_hash(const persistor_snapshot_input *in, char out[PERSISTOR_HASH_HEX_LEN + 1])
{
    static const char domain[] = "persistor-snapshot-v1";
    const char *tenant = in->tenant_id != NULL ? in->tenant_id : DIRECT_DEFAULT_TENANT;
    static const uint8_t empty[5] = {5, 0, 0, 0, 0};
    const uint8_t *content = in->content_bson != NULL ? in->content_bson : empty;
    size_t content_len = in->content_bson != NULL ? in->content_bson_len : sizeof empty;
    char ts_text[32];
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_ctx ctx;
    int n = snprintf(ts_text, sizeof ts_text, "%lld", (long long)in->ts_ms);
    sha256_init(&ctx);
    sha256_update(&ctx, domain, sizeof domain);
    sha256_update(&ctx, tenant, strlen(tenant) + 1);
    sha256_update(&ctx, in->xc_id, strlen(in->xc_id) + 1);
    sha256_update(&ctx, ts_text, (size_t)n + 1);
    sha256_update(&ctx, content, content_len);
    sha256_final(&ctx, digest);
    sha256_hex(digest, out);
}

#if defined(PERSISTOR_BENCH_SQLITE) || defined(PERSISTOR_BENCH_LMDB)
static int64_t direct_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The stored document, field for field what core/snapshot.c stores.
 * `doc` is initialised and empty; false when the content is not BSON. */
static bool direct_build(const persistor_snapshot_input *in, bson_t *doc,
                         char id[PERSISTOR_HASH_HEX_LEN + 1])
{
    const char *tenant = in->tenant_id != NULL ? in->tenant_id : DIRECT_DEFAULT_TENANT;
    bson_t content;
    if (in->content_bson != NULL &&
        !bson_init_static(&content, in->content_bson, in->content_bson_len))
        return false;
    bench_direct_hash(in, id);
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_UTF8(doc, "tenantId", tenant);
    BSON_APPEND_UTF8(doc, "xcId", in->xc_id);
    BSON_APPEND_DATE_TIME(doc, "ts", in->ts_ms);
    BSON_APPEND_DATE_TIME(doc, "createdAt", direct_now_ms());
    if (in->content_bson != NULL)
        bson_concat(doc, &content);
    return true;
}
#endif

/* ------------------------------------------------------------------ */
/* SQLite: WAL, synchronous=FULL, one transaction per batch            */

#ifdef PERSISTOR_BENCH_SQLITE

static const char direct_sqlite_schema[] =
    "PRAGMA journal_mode=WAL;"
    "PRAGMA synchronous=FULL;"
    "CREATE TABLE IF NOT EXISTS snapshots ("
    "  id TEXT PRIMARY KEY, xc_id TEXT NOT NULL, ts INTEGER NOT NULL, doc BLOB NOT NULL);"
    "CREATE INDEX IF NOT EXISTS snapshots_xc_ts ON snapshots (xc_id, ts, id);";

static int direct_sqlite_fail(bench_direct *d, const char *what, char *msg, size_t cap)
{
    snprintf(msg, cap, "direct sqlite: %s: %s", what,
             d->db != NULL ? sqlite3_errmsg(d->db) : "cannot allocate");
    return -1;
}

static int direct_sqlite_prepare(bench_direct *d, const char *sql, sqlite3_stmt **out, char *msg,
                                 size_t cap)
{
    if (sqlite3_prepare_v2(d->db, sql, -1, out, NULL) != SQLITE_OK)
        return direct_sqlite_fail(d, sql, msg, cap);
    return 0;
}

static int direct_sqlite_open(bench_direct *d, const char *path, uint64_t map_size, char *msg,
                              size_t cap)
{
    if (sqlite3_open_v2(path, &d->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK)
        return direct_sqlite_fail(d, path, msg, cap);
    char *exec_err = NULL;
    if (sqlite3_exec(d->db, direct_sqlite_schema, NULL, NULL, &exec_err) != SQLITE_OK) {
        snprintf(msg, cap, "direct sqlite: %s: schema: %s", path, exec_err);
        sqlite3_free(exec_err);
        return -1;
    }
    if (direct_sqlite_prepare(d, "BEGIN IMMEDIATE", &d->begin, msg, cap) != 0 ||
        direct_sqlite_prepare(d, "COMMIT", &d->commit, msg, cap) != 0 ||
        direct_sqlite_prepare(d, "ROLLBACK", &d->rollback, msg, cap) != 0 ||
        direct_sqlite_prepare(d,
                              "INSERT OR IGNORE INTO snapshots (id, xc_id, ts, doc) "
                              "VALUES (?1, ?2, ?3, ?4)",
                              &d->insert, msg, cap) != 0 ||
        direct_sqlite_prepare(d, "SELECT 1 FROM snapshots WHERE id = ?1", &d->exists, msg,
                              cap) != 0 ||
        direct_sqlite_prepare(d, "SELECT ts, doc FROM snapshots WHERE xc_id = ?1 ORDER BY ts, id",
                              &d->load, msg, cap) != 0)
        return -1;
    return 0;
}

static void direct_sqlite_close(bench_direct *d)
{
    sqlite3_stmt *stmts[] = {d->begin, d->commit, d->rollback, d->insert, d->exists, d->load};
    for (size_t i = 0; i < sizeof stmts / sizeof stmts[0]; i++)
        sqlite3_finalize(stmts[i]); /* NULL-safe */
    sqlite3_close(d->db);
}

/* Run a statement that returns no rows. */
static bool direct_sqlite_step_done(sqlite3_stmt *stmt)
{
    int rc = sqlite3_step(stmt);
    sqlite3_reset(stmt);
    return rc == SQLITE_DONE;
}

static int direct_sqlite_insert(bench_direct *d, const persistor_snapshot_input *in,
                                char id[PERSISTOR_HASH_HEX_LEN + 1], size_t *stored, char *msg,
                                size_t cap)
{
    bson_t doc = BSON_INITIALIZER;
    if (!direct_build(in, &doc, id)) {
        bson_destroy(&doc);
        snprintf(msg, cap, "direct sqlite: content of %s is not BSON", in->xc_id);
        return -1;
    }
    sqlite3_bind_text(d->insert, 1, id, PERSISTOR_HASH_HEX_LEN, SQLITE_STATIC);
    sqlite3_bind_text(d->insert, 2, in->xc_id, -1, SQLITE_STATIC);
    sqlite3_bind_int64(d->insert, 3, in->ts_ms);
    sqlite3_bind_blob(d->insert, 4, bson_get_data(&doc), (int)doc.len, SQLITE_STATIC);
    int rc = sqlite3_step(d->insert);
    sqlite3_reset(d->insert);
    bson_destroy(&doc);
    if (rc != SQLITE_DONE)
        return direct_sqlite_fail(d, "insert", msg, cap);
    *stored += (size_t)sqlite3_changes(d->db);
    return 0;
}

static int direct_sqlite_append(bench_direct *d, const persistor_snapshot_input *in, size_t n,
                                char (*ids)[PERSISTOR_HASH_HEX_LEN + 1], size_t *stored,
                                char *msg, size_t cap)
{
    *stored = 0;
    if (!direct_sqlite_step_done(d->begin))
        return direct_sqlite_fail(d, "begin", msg, cap);
    for (size_t i = 0; i < n; i++) {
        if (direct_sqlite_insert(d, &in[i], ids[i], stored, msg, cap) != 0) {
            direct_sqlite_step_done(d->rollback);
            return -1;
        }
    }
    if (!direct_sqlite_step_done(d->commit)) {
        direct_sqlite_fail(d, "commit", msg, cap);
        direct_sqlite_step_done(d->rollback);
        return -1;
    }
    return 0;
}

static int direct_sqlite_has(bench_direct *d, const char *id, char *msg, size_t cap)
{
    sqlite3_bind_text(d->exists, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(d->exists);
    sqlite3_reset(d->exists);
    if (rc == SQLITE_ROW)
        return 1;
    if (rc == SQLITE_DONE)
        return 0;
    return direct_sqlite_fail(d, "has", msg, cap);
}

static int direct_sqlite_load(bench_direct *d, const char *xc_id, bench_direct_loaded *out,
                              char *msg, size_t cap)
{
    int64_t last_ts = INT64_MIN;
    int rc;
    *out = (bench_direct_loaded){.ordered = true};
    sqlite3_bind_text(d->load, 1, xc_id, -1, SQLITE_STATIC);
    while ((rc = sqlite3_step(d->load)) == SQLITE_ROW) {
        int64_t ts = sqlite3_column_int64(d->load, 0);
        const void *doc = sqlite3_column_blob(d->load, 1);
        int len = sqlite3_column_bytes(d->load, 1);
        if (doc == NULL || len < 5)
            break;
        out->ordered = out->ordered && ts >= last_ts;
        last_ts = ts;
        out->count++;
        out->bytes += (uint64_t)len;
    }
    sqlite3_reset(d->load);
    if (rc != SQLITE_DONE)
        return direct_sqlite_fail(d, "load", msg, cap);
    return 0;
}

static const direct_ops direct_sqlite_ops = {
    "sqlite",          direct_sqlite_open, direct_sqlite_close, direct_sqlite_append,
    direct_sqlite_has, direct_sqlite_load,
};
#endif /* PERSISTOR_BENCH_SQLITE */

/* ------------------------------------------------------------------ */
/* LMDB: default (synchronous) commits, one write txn per batch        */

#ifdef PERSISTOR_BENCH_LMDB

/* Index key: xc_id, a NUL, ts as big-endian with the sign bit flipped (so
 * bytes sort as numbers do), then the id: one context's keys are adjacent
 * and in (ts, id) order. */
#define DIRECT_LMDB_KEY_MAX 511 /* mdb_env_get_maxkeysize() of a default build */

static int direct_lmdb_fail(const char *what, int rc, char *msg, size_t cap)
{
    snprintf(msg, cap, "direct lmdb: %s: %s", what, mdb_strerror(rc));
    return -1;
}

static size_t direct_lmdb_prefix(const char *xc_id, uint8_t *key)
{
    size_t n = strlen(xc_id) + 1;
    memcpy(key, xc_id, n);
    return n;
}

static size_t direct_lmdb_index_key(const char *xc_id, int64_t ts, const char *id, uint8_t *key)
{
    size_t n = direct_lmdb_prefix(xc_id, key);
    uint64_t u = (uint64_t)ts ^ (UINT64_C(1) << 63);
    for (int i = 7; i >= 0; i--, u >>= 8)
        key[n + (size_t)i] = (uint8_t)u;
    n += 8;
    memcpy(key + n, id, PERSISTOR_HASH_HEX_LEN);
    return n + PERSISTOR_HASH_HEX_LEN;
}

static int64_t direct_lmdb_key_ts(const uint8_t *at)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = (u << 8) | at[i];
    return (int64_t)(u ^ (UINT64_C(1) << 63));
}

static int direct_lmdb_open(bench_direct *d, const char *path, uint64_t map_size, char *msg,
                            size_t cap)
{
    MDB_txn *txn;
    int rc = mdb_env_create(&d->env);
    if (rc == 0)
        rc = mdb_env_set_maxdbs(d->env, 2);
    if (rc == 0)
        rc = mdb_env_set_mapsize(d->env, (size_t)map_size);
    if (rc == 0)
        rc = mdb_env_open(d->env, path, MDB_NOTLS, 0600);
    if (rc != 0)
        return direct_lmdb_fail(path, rc, msg, cap);
    if ((rc = mdb_txn_begin(d->env, NULL, 0, &txn)) != 0)
        return direct_lmdb_fail("begin", rc, msg, cap);
    if ((rc = mdb_dbi_open(txn, "docs", MDB_CREATE, &d->docs)) != 0 ||
        (rc = mdb_dbi_open(txn, "by_xc", MDB_CREATE, &d->by_xc)) != 0) {
        mdb_txn_abort(txn);
        return direct_lmdb_fail("open databases", rc, msg, cap);
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return direct_lmdb_fail("commit", rc, msg, cap);
    return 0;
}

static void direct_lmdb_close(bench_direct *d)
{
    if (d->read_txn != NULL)
        mdb_txn_abort(d->read_txn);
    if (d->env != NULL)
        mdb_env_close(d->env);
}

static int direct_lmdb_put(MDB_txn *txn, bench_direct *d, const persistor_snapshot_input *in,
                           char id[PERSISTOR_HASH_HEX_LEN + 1], size_t *stored, char *msg,
                           size_t cap)
{
    uint8_t key[DIRECT_LMDB_KEY_MAX];
    if (strlen(in->xc_id) + 1 + 8 + PERSISTOR_HASH_HEX_LEN > sizeof key) {
        snprintf(msg, cap, "direct lmdb: xc_id %s is too long for an index key", in->xc_id);
        return -1;
    }
    bson_t doc = BSON_INITIALIZER;
    if (!direct_build(in, &doc, id)) {
        bson_destroy(&doc);
        snprintf(msg, cap, "direct lmdb: content of %s is not BSON", in->xc_id);
        return -1;
    }
    MDB_val k = {PERSISTOR_HASH_HEX_LEN, id};
    MDB_val v = {doc.len, (void *)bson_get_data(&doc)};
    int rc = mdb_put(txn, d->docs, &k, &v, MDB_NOOVERWRITE);
    bson_destroy(&doc);
    if (rc == MDB_KEYEXIST)
        return 0;
    if (rc != 0)
        return direct_lmdb_fail("put", rc, msg, cap);
    MDB_val ik = {direct_lmdb_index_key(in->xc_id, in->ts_ms, id, key), key};
    MDB_val iv = {0, NULL};
    if ((rc = mdb_put(txn, d->by_xc, &ik, &iv, 0)) != 0)
        return direct_lmdb_fail("put index", rc, msg, cap);
    (*stored)++;
    return 0;
}

static int direct_lmdb_append(bench_direct *d, const persistor_snapshot_input *in, size_t n,
                              char (*ids)[PERSISTOR_HASH_HEX_LEN + 1], size_t *stored, char *msg,
                              size_t cap)
{
    MDB_txn *txn;
    int rc = mdb_txn_begin(d->env, NULL, 0, &txn);
    *stored = 0;
    if (rc != 0)
        return direct_lmdb_fail("begin", rc, msg, cap);
    for (size_t i = 0; i < n; i++) {
        if (direct_lmdb_put(txn, d, &in[i], ids[i], stored, msg, cap) != 0) {
            mdb_txn_abort(txn);
            return -1;
        }
    }
    if ((rc = mdb_txn_commit(txn)) != 0)
        return direct_lmdb_fail("commit", rc, msg, cap);
    return 0;
}

/* A read transaction for one call: renewed, reset by direct_lmdb_read_end. */
static int direct_lmdb_read_begin(bench_direct *d, char *msg, size_t cap)
{
    int rc = d->read_txn == NULL ? mdb_txn_begin(d->env, NULL, MDB_RDONLY, &d->read_txn)
                                 : mdb_txn_renew(d->read_txn);
    return rc == 0 ? 0 : direct_lmdb_fail("begin read", rc, msg, cap);
}

static void direct_lmdb_read_end(bench_direct *d)
{
    mdb_txn_reset(d->read_txn);
}

static int direct_lmdb_has(bench_direct *d, const char *id, char *msg, size_t cap)
{
    if (direct_lmdb_read_begin(d, msg, cap) != 0)
        return -1;
    MDB_val k = {strlen(id), (void *)id}, v;
    int rc = mdb_get(d->read_txn, d->docs, &k, &v);
    direct_lmdb_read_end(d);
    if (rc == 0)
        return 1;
    if (rc == MDB_NOTFOUND)
        return 0;
    return direct_lmdb_fail("get", rc, msg, cap);
}

static int direct_lmdb_scan(bench_direct *d, MDB_cursor *cur, const uint8_t *prefix,
                            size_t prefix_len, bench_direct_loaded *out, char *msg, size_t cap)
{
    int64_t last_ts = INT64_MIN;
    MDB_val k = {prefix_len, (void *)prefix}, v;
    int rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE);
    for (; rc == 0; rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
        if (k.mv_size != prefix_len + 8 + PERSISTOR_HASH_HEX_LEN ||
            memcmp(k.mv_data, prefix, prefix_len) != 0)
            break;
        const uint8_t *kb = k.mv_data;
        int64_t ts = direct_lmdb_key_ts(kb + prefix_len);
        MDB_val id = {PERSISTOR_HASH_HEX_LEN, (void *)(kb + prefix_len + 8)}, doc;
        if ((rc = mdb_get(d->read_txn, d->docs, &id, &doc)) != 0)
            return direct_lmdb_fail("get by index", rc, msg, cap);
        out->ordered = out->ordered && ts >= last_ts;
        last_ts = ts;
        out->count++;
        out->bytes += doc.mv_size;
    }
    if (rc != 0 && rc != MDB_NOTFOUND)
        return direct_lmdb_fail("cursor", rc, msg, cap);
    return 0;
}

static int direct_lmdb_load(bench_direct *d, const char *xc_id, bench_direct_loaded *out,
                            char *msg, size_t cap)
{
    uint8_t prefix[DIRECT_LMDB_KEY_MAX];
    MDB_cursor *cur;
    *out = (bench_direct_loaded){.ordered = true};
    if (strlen(xc_id) + 1 > sizeof prefix)
        return 0; /* such a context can never have been stored */
    size_t prefix_len = direct_lmdb_prefix(xc_id, prefix);
    if (direct_lmdb_read_begin(d, msg, cap) != 0)
        return -1;
    int rc = mdb_cursor_open(d->read_txn, d->by_xc, &cur);
    if (rc != 0) {
        direct_lmdb_read_end(d);
        return direct_lmdb_fail("cursor", rc, msg, cap);
    }
    int result = direct_lmdb_scan(d, cur, prefix, prefix_len, out, msg, cap);
    mdb_cursor_close(cur);
    direct_lmdb_read_end(d);
    return result;
}

static const direct_ops direct_lmdb_ops = {
    "lmdb",          direct_lmdb_open, direct_lmdb_close, direct_lmdb_append,
    direct_lmdb_has, direct_lmdb_load,
};
#endif /* PERSISTOR_BENCH_LMDB */

/* ------------------------------------------------------------------ */
/* Dispatch                                                           */

static const direct_ops *const direct_backends[] = {
#ifdef PERSISTOR_BENCH_SQLITE
    &direct_sqlite_ops,
#endif
#ifdef PERSISTOR_BENCH_LMDB
    &direct_lmdb_ops,
#endif
    NULL,
};

static const direct_ops *direct_find(const char *adapter)
{
    for (size_t i = 0; direct_backends[i] != NULL; i++)
        if (strcmp(direct_backends[i]->name, adapter) == 0)
            return direct_backends[i];
    return NULL;
}

bool bench_direct_available(const char *adapter)
{
    return direct_find(adapter) != NULL;
}

int bench_direct_open(const char *adapter, const char *path, uint64_t map_size,
                      bench_direct **out, char *msg, size_t msg_cap)
{
    const direct_ops *ops = direct_find(adapter);
    if (ops == NULL) {
        snprintf(msg, msg_cap, "no direct baseline for %s in this build", adapter);
        return -1;
    }
    bench_direct *d = calloc(1, sizeof *d);
    if (d == NULL) {
        snprintf(msg, msg_cap, "out of memory opening the direct %s baseline", adapter);
        return -1;
    }
    d->ops = ops;
    if (ops->open(d, path, map_size, msg, msg_cap) != 0) {
        bench_direct_close(d);
        return -1;
    }
    *out = d;
    return 0;
}

void bench_direct_close(bench_direct *d)
{
    if (d == NULL)
        return;
    d->ops->close(d);
    free(d);
}

int bench_direct_append(bench_direct *d, const persistor_snapshot_input *in, size_t n,
                        char (*ids)[PERSISTOR_HASH_HEX_LEN + 1], size_t *stored, char *msg,
                        size_t msg_cap)
{
    return d->ops->append(d, in, n, ids, stored, msg, msg_cap);
}

int bench_direct_has(bench_direct *d, const char *id, char *msg, size_t msg_cap)
{
    return d->ops->has(d, id, msg, msg_cap);
}

int bench_direct_load(bench_direct *d, const char *xc_id, bench_direct_loaded *out, char *msg,
                      size_t msg_cap)
{
    return d->ops->load(d, xc_id, out, msg, msg_cap);
}
