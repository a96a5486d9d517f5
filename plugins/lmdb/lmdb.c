/*
 * lmdb.c — the durable local adapter on LMDB 0.9: the ABI table, options,
 * open and close, transactions (with the map that grows by itself), error
 * classes, ensure_collection, stats and ping.  Keys and writes are in
 * lmdb_index.c, reads and queries in lmdb_query.c; the layout is described
 * in lmdb_private.h.
 *
 * What it must not do: keep a read transaction open across calls (a reset
 * one is kept, which pins no snapshot), keep counts in memory across
 * transactions (other processes write the same environment), or open one
 * environment twice in a process (see lm_env_acquire).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <bson/bson.h>

#include "lmdb_private.h"

#define LM_MAXDBS 1024

/* ---- errors ------------------------------------------------------------ */

/* One place decides the class of an LMDB or system error. */
int32_t lm_error(persistor_instance *inst, int rc, const char *what, persistor_error *err)
{
    const persistor_host *host = inst->host;
    const char *path = inst->path;
    switch (rc) {
    case MDB_MAP_FULL:
        return host->error_set(err, PERSISTOR_E_UNAVAILABLE,
                               "%s: %s: map full at max_map_size=%llu bytes, raise it", path,
                               what, (unsigned long long)inst->max_map);
    case MDB_READERS_FULL:
        return host->error_set(err, PERSISTOR_E_RETRY,
                               "%s: %s: all reader slots are taken (raise max_readers)", path,
                               what);
    case MDB_CORRUPTED:
    case MDB_INVALID:
    case MDB_VERSION_MISMATCH:
    case MDB_PAGE_NOTFOUND:
    case MDB_BAD_DBI:
    case MDB_INCOMPATIBLE:
        return host->error_set(err, PERSISTOR_E_CORRUPT,
                               "%s: %s: %s (not an LMDB environment of ours, or damaged)", path,
                               what, mdb_strerror(rc));
    case MDB_TXN_FULL:
        return host->error_set(err, PERSISTOR_E_INVALID, "%s: %s: batch too large; split it",
                               path, what);
    case MDB_DBS_FULL:
        return host->error_set(err, PERSISTOR_E_CONFIG,
                               "%s: %s: too many collections and indexes (limit %d)", path,
                               what, LM_MAXDBS);
    case ENOSPC:
        return host->error_set(err, PERSISTOR_E_UNAVAILABLE, "%s: %s: disk full", path, what);
    case ENOMEM:
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s: %s: out of memory", path, what);
    case EACCES:
    case EPERM:
    case ENOENT:
    case EROFS:
    case ENOTDIR:
        return host->error_set(err, PERSISTOR_E_CONFIG, "%s: %s: %s", path, what,
                               mdb_strerror(rc));
    default:
        return host->error_set(err, PERSISTOR_E_UNAVAILABLE, "%s: %s: %s", path, what,
                               mdb_strerror(rc));
    }
}

/* ---- transactions ------------------------------------------------------ */

static int32_t lm_readers_full(persistor_instance *inst, persistor_error *err)
{
    int dead = 0;
    mdb_reader_check(inst->env, &dead);
    if (dead > 0)
        inst->host->log(inst->host, PERSISTOR_LOG_WARN, "lmdb_stale_readers",
                        "%s: cleared %d stale reader slot(s) of dead processes", inst->path,
                        dead);
    return lm_error(inst, MDB_READERS_FULL, "beginning a transaction", err);
}

/* Begin with the environment lock held shared.  A read transaction reuses
 * the instance's reset one (renew is cheap; begin callocs every slot).
 * MDB_MAP_RESIZED: another process grew the map, adopt its size. */
int32_t lm_begin(persistor_instance *inst, int write, lm_txn *t, persistor_error *err)
{
    lm_env *sh = inst->shared;
    for (int tries = 0;; tries++) {
        int rc;
        pthread_rwlock_rdlock(&sh->lock);
        if (!write && inst->rtxn != NULL) {
            rc = mdb_txn_renew(inst->rtxn);
            if (rc == MDB_SUCCESS) {
                t->txn = inst->rtxn;
                t->write = 0;
                return PERSISTOR_OK;
            }
            mdb_txn_abort(inst->rtxn);
            inst->rtxn = NULL;
        } else {
            rc = mdb_txn_begin(inst->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
            if (rc == MDB_SUCCESS) {
                t->write = write;
                if (!write)
                    inst->rtxn = t->txn;
                return PERSISTOR_OK;
            }
        }
        pthread_rwlock_unlock(&sh->lock);
        if (rc == MDB_MAP_RESIZED && tries < 8) {
            pthread_rwlock_wrlock(&sh->lock);
            mdb_env_set_mapsize(inst->env, 0);
            pthread_rwlock_unlock(&sh->lock);
            continue;
        }
        if (rc == MDB_READERS_FULL)
            return lm_readers_full(inst, err);
        return lm_error(inst, rc, "beginning a transaction", err);
    }
}

void lm_end(persistor_instance *inst, lm_txn *t)
{
    if (t->txn == NULL)
        return;
    if (t->write)
        mdb_txn_abort(t->txn);
    else
        mdb_txn_reset(t->txn);
    t->txn = NULL;
    pthread_rwlock_unlock(&inst->shared->lock);
}

int lm_commit(persistor_instance *inst, lm_txn *t)
{
    int rc = mdb_txn_commit(t->txn);
    t->txn = NULL;
    pthread_rwlock_unlock(&inst->shared->lock);
    return rc;
}

/* Double the map, up to max_map_size.  Called with no transaction of ours
 * open; the exclusive lock waits out the other instances of this process. */
int32_t lm_grow(persistor_instance *inst, persistor_error *err)
{
    lm_env *sh = inst->shared;
    MDB_envinfo info;
    pthread_rwlock_wrlock(&sh->lock);
    mdb_env_info(inst->env, &info);
    uint64_t cur = info.me_mapsize;
    if (cur >= inst->max_map) {
        pthread_rwlock_unlock(&sh->lock);
        return lm_error(inst, MDB_MAP_FULL, "writing", err);
    }
    uint64_t next = cur * 2 < inst->max_map ? cur * 2 : inst->max_map;
    int rc = mdb_env_set_mapsize(inst->env, (size_t)next);
    pthread_rwlock_unlock(&sh->lock);
    if (rc != MDB_SUCCESS)
        return lm_error(inst, rc, "growing the map", err);
    inst->host->log(inst->host, PERSISTOR_LOG_INFO, "lmdb_map_grown",
                    "%s: map grown from %llu to %llu bytes (max_map_size=%llu)", inst->path,
                    (unsigned long long)cur, (unsigned long long)next,
                    (unsigned long long)inst->max_map);
    return PERSISTOR_OK;
}

int lm_reserve(persistor_instance *inst, size_t n)
{
    if (n <= inst->scratch_cap)
        return 0;
    size_t cap = inst->scratch_cap ? inst->scratch_cap : 4096;
    while (cap < n)
        cap *= 2;
    uint8_t *p = realloc(inst->scratch, cap);
    if (p == NULL)
        return ENOMEM;
    inst->scratch = p;
    inst->scratch_cap = cap;
    return 0;
}

/* ---- counters ------------------------------------------------------- */

static void lm_put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++, v >>= 8)
        p[i] = (uint8_t)v;
}

static uint64_t lm_get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

/* Read-modify-write inside the caller's write transaction: never a count
 * kept in memory, since other processes write too. */
int lm_counts_add(MDB_txn *txn, MDB_dbi meta, const char *stat_key, int64_t items,
                  int64_t bytes)
{
    MDB_val k = {strlen(stat_key), (void *)stat_key}, v;
    uint8_t buf[16] = {0};
    int rc = mdb_get(txn, meta, &k, &v);
    if (rc == MDB_SUCCESS && v.mv_size == 16)
        memcpy(buf, v.mv_data, 16);
    else if (rc != MDB_SUCCESS && rc != MDB_NOTFOUND)
        return rc;
    lm_put_le64(buf, lm_get_le64(buf) + (uint64_t)items);
    lm_put_le64(buf + 8, lm_get_le64(buf + 8) + (uint64_t)bytes);
    v.mv_size = 16;
    v.mv_data = buf;
    return mdb_put(txn, meta, &k, &v, 0);
}

/* ---- write, expire, stats, ping --------------------------------------- */

/* One write transaction per batch.  On MDB_MAP_FULL: abort, grow, retry the
 * whole batch (nothing of it was applied).  An op the caller got wrong
 * (E_INVALID) or that failed (E_NOMEM from index_key) ends the batch there:
 * the ops before it are committed, it and the rest get its code, as the
 * memory template does. */
static int32_t lm_write(persistor_instance *inst, const char *collection,
                        const persistor_write_op *ops, uint32_t n, int32_t *results,
                        persistor_error *err)
{
    lm_coll *c;
    int32_t rc = lm_coll_get(inst, collection, &c, err);
    while (rc == PERSISTOR_OK) {
        lm_txn t;
        uint32_t done = 0;
        int mdb = MDB_SUCCESS;
        if ((rc = lm_begin(inst, 1, &t, err)) != PERSISTOR_OK)
            break;
        size_t id = mdb_txn_id(t.txn);
        int32_t op_rc = lm_write_ops(inst, t.txn, c, ops, n, results, &done, &mdb, err);
        if (mdb == MDB_SUCCESS)
            mdb = lm_commit(inst, &t);
        else
            lm_end(inst, &t);
        for (uint32_t i = 0; mdb == MDB_SUCCESS && i < c->n_idx; i++) {
            /* Our commit made snapshot `id`: the flags are known in it. */
            c->idx[i].clean = c->idx[i].pend_clean;
            c->idx[i].clean_txnid = id;
        }
        if (mdb == MDB_MAP_FULL) {
            rc = lm_grow(inst, err);
            continue;
        }
        if (mdb != MDB_SUCCESS) {
            rc = lm_error(inst, mdb, collection, err);
            break;
        }
        for (uint32_t i = done; i < n; i++)
            results[i] = op_rc;
        return op_rc;
    }
    for (uint32_t i = 0; i < n; i++)
        results[i] = rc;
    return rc;
}

static int32_t lm_expire(persistor_instance *inst, const char *collection, int64_t cutoff_ms,
                         uint64_t *removed, persistor_error *err)
{
    lm_coll *c;
    *removed = 0;
    int32_t rc = lm_coll_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK || !c->has_ttl)
        return rc;
    for (;;) {
        lm_txn t;
        int mdb = MDB_SUCCESS;
        uint64_t n = 0;
        if ((rc = lm_begin(inst, 1, &t, err)) != PERSISTOR_OK)
            return rc;
        rc = lm_expire_txn(inst, t.txn, c, cutoff_ms, &n, &mdb, err);
        if (rc == PERSISTOR_OK && mdb == MDB_SUCCESS) {
            mdb = lm_commit(inst, &t);
        } else {
            lm_end(inst, &t);
        }
        if (rc != PERSISTOR_OK)
            return rc;
        if (mdb == MDB_MAP_FULL) {
            if ((rc = lm_grow(inst, err)) != PERSISTOR_OK)
                return rc;
            continue;
        }
        if (mdb != MDB_SUCCESS)
            return lm_error(inst, mdb, collection, err);
        *removed = n;
        return PERSISTOR_OK;
    }
}

static int32_t lm_stats(persistor_instance *inst, const char *collection,
                        persistor_collection_stats *out, persistor_error *err)
{
    lm_coll *c;
    lm_txn t;
    MDB_val v;
    int32_t rc = lm_coll_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK || (rc = lm_begin(inst, 0, &t, err)) != PERSISTOR_OK)
        return rc;
    MDB_val k = {strlen(c->stat_key), c->stat_key};
    int mdb = mdb_get(t.txn, inst->shared->meta, &k, &v);
    uint64_t items = 0, bytes = 0;
    if (mdb == MDB_SUCCESS && v.mv_size == 16) {
        items = lm_get_le64(v.mv_data);
        bytes = lm_get_le64((const uint8_t *)v.mv_data + 8);
    }
    lm_end(inst, &t);
    if (mdb != MDB_SUCCESS && mdb != MDB_NOTFOUND)
        return lm_error(inst, mdb, collection, err);
    if (out->struct_size >= offsetof(persistor_collection_stats, item_count) + sizeof items)
        out->item_count = items;
    if (out->struct_size >= offsetof(persistor_collection_stats, total_size) + sizeof bytes)
        out->total_size = bytes;
    return PERSISTOR_OK;
}

/* A read transaction begun and ended: the environment answers. */
static int32_t lm_ping(persistor_instance *inst, persistor_error *err)
{
    lm_txn t;
    int32_t rc = lm_begin(inst, 0, &t, err);
    if (rc == PERSISTOR_OK)
        lm_end(inst, &t);
    return rc;
}

/* ---- environments: one per directory per process -------------------- */

/*
 * The one global of this adapter, on purpose: LMDB must not open the same
 * environment twice in one process (closing the second handle would drop
 * the POSIX locks of the first, and the second opener would reset the lock
 * file under the first).  Instances on the same directory therefore share
 * one MDB_env, refcounted; this is "what the store itself shares".
 */
static pthread_mutex_t lm_registry_lock = PTHREAD_MUTEX_INITIALIZER;
static lm_env *lm_registry;

static int32_t lm_env_create(persistor_instance *inst, const struct stat *st, int sync,
                             int64_t map_size, int64_t max_readers, lm_env **out,
                             persistor_error *err)
{
    lm_env *e = calloc(1, sizeof *e);
    int rc;
    if (e == NULL)
        return lm_error(inst, ENOMEM, "opening", err);
    if ((rc = mdb_env_create(&e->env)) != MDB_SUCCESS) {
        free(e);
        return lm_error(inst, rc, "creating the environment", err);
    }
    inst->env = e->env;
    if ((rc = mdb_env_set_maxdbs(e->env, LM_MAXDBS)) != MDB_SUCCESS ||
        (rc = mdb_env_set_mapsize(e->env, (size_t)map_size)) != MDB_SUCCESS ||
        (rc = mdb_env_set_maxreaders(e->env, (unsigned)max_readers)) != MDB_SUCCESS ||
        (rc = mdb_env_open(e->env, inst->path, MDB_NOTLS | (sync ? 0 : MDB_NOSYNC), 0600)) !=
            MDB_SUCCESS)
        goto fail;
    int maxkey = mdb_env_get_maxkeysize(e->env);
    if (maxkey < LM_MIN_MAXKEY) {
        mdb_env_close(e->env);
        free(e);
        inst->env = NULL;
        return inst->host->error_set(err, PERSISTOR_E_CONFIG,
                                     "%s: this LMDB allows keys of %d bytes, we need %d",
                                     inst->path, maxkey, LM_MIN_MAXKEY);
    }
    MDB_txn *txn;
    if ((rc = mdb_txn_begin(e->env, NULL, 0, &txn)) != MDB_SUCCESS)
        goto fail;
    if ((rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &e->meta)) != MDB_SUCCESS) {
        mdb_txn_abort(txn);
        goto fail;
    }
    if ((rc = mdb_txn_commit(txn)) != MDB_SUCCESS)
        goto fail;
    pthread_rwlock_init(&e->lock, NULL);
    e->dev = st->st_dev;
    e->ino = st->st_ino;
    e->pid = getpid();
    e->refs = 1;
    *out = e;
    return PERSISTOR_OK;
fail:
    mdb_env_close(e->env);
    free(e);
    inst->env = NULL;
    if (rc == MDB_MAP_FULL)
        return inst->host->error_set(err, PERSISTOR_E_CONFIG,
                                     "%s: map_size=%lld is too small to open it", inst->path,
                                     (long long)map_size);
    return lm_error(inst, rc, "opening the environment", err);
}

static int32_t lm_env_acquire(persistor_instance *inst, int sync, int64_t map_size,
                              int64_t max_readers, persistor_error *err)
{
    struct stat st;
    int32_t rc = PERSISTOR_OK;
    if (stat(inst->path, &st) != 0)
        return lm_error(inst, errno, "opening", err);
    pthread_mutex_lock(&lm_registry_lock);
    lm_env *e = lm_registry;
    while (e != NULL && !(e->dev == st.st_dev && e->ino == st.st_ino && e->pid == getpid()))
        e = e->next;
    if (e != NULL) {
        e->refs++;
    } else if ((rc = lm_env_create(inst, &st, sync, map_size, max_readers, &e, err)) ==
               PERSISTOR_OK) {
        e->next = lm_registry;
        lm_registry = e;
    }
    pthread_mutex_unlock(&lm_registry_lock);
    if (rc != PERSISTOR_OK)
        return rc;
    inst->shared = e;
    inst->env = e->env;
    return PERSISTOR_OK;
}

static void lm_env_release(lm_env *e)
{
    pthread_mutex_lock(&lm_registry_lock);
    if (--e->refs == 0) {
        for (lm_env **p = &lm_registry; *p != NULL; p = &(*p)->next)
            if (*p == e) {
                *p = e->next;
                break;
            }
        mdb_env_close(e->env);
        pthread_rwlock_destroy(&e->lock);
        free(e);
    }
    pthread_mutex_unlock(&lm_registry_lock);
}

/* ---- open and close ------------------------------------------------- */

/* The first key byte of [] and of null, as the host encodes them. */
static int32_t lm_learn_ranks(persistor_instance *inst)
{
    static const persistor_index_key fk[] = {{"f", 1}};
    const persistor_index_spec spec = {"f_1", fk, 1, 0};
    bson_t *a = BCON_NEW("f", "[", "]"), *n = BCON_NEW("f", BCON_NULL);
    int32_t rc = PERSISTOR_E_NOMEM;
    if (a != NULL && n != NULL &&
        (rc = inst->host->index_key(&spec, bson_get_data(a), a->len, &inst->key)) == 0 &&
        inst->key.len > 0) {
        inst->rank_array = inst->key.data[0];
        if ((rc = inst->host->index_key(&spec, bson_get_data(n), n->len, &inst->key)) == 0 &&
            inst->key.len > 0)
            inst->rank_null = inst->key.data[0];
    }
    if (a)
        bson_destroy(a);
    if (n)
        bson_destroy(n);
    return rc;
}

static void lm_close(persistor_instance *inst)
{
    if (inst->rtxn != NULL)
        mdb_txn_abort(inst->rtxn);
    sorters_cache_free(inst->host, &inst->sort);
    while (inst->colls != NULL) {
        lm_coll *c = inst->colls;
        inst->colls = c->next;
        lm_coll_free(inst, c);
    }
    if (inst->shared != NULL)
        lm_env_release(inst->shared);
    inst->host->buffer_free(&inst->key);
    inst->host->buffer_free(&inst->key2);
    free(inst->scratch);
    free(inst->path);
    free(inst);
}

static int32_t lm_open(const persistor_host *host, const persistor_config *config,
                       persistor_instance **out, persistor_error *err)
{
    const char *path = NULL;
    int64_t map_size = 0, max_map = 0, max_readers = 0;
    int32_t sync = 1;
    if (host->config_string(config, "directory", &path) != PERSISTOR_OK || path == NULL ||
        *path == '\0')
        return host->config_error(config, "directory", err, "an environment directory is required");
    if (host->config_int(config, "map_size", &map_size) < 0 || map_size < 65536)
        return host->config_error(config, "map_size", err, "must be at least 65536 bytes");
    if (host->config_int(config, "max_map_size", &max_map) < 0 || max_map < map_size)
        return host->config_error(config, "max_map_size", err,
                                  "must be >= map_size (%lld), got %lld", (long long)map_size,
                                  (long long)max_map);
    if (host->config_bool(config, "sync", &sync) < 0)
        return host->config_error(config, "sync", err, "cannot be read");
    if (host->config_int(config, "max_readers", &max_readers) < 0 || max_readers < 1 ||
        max_readers > 65536)
        return host->config_error(config, "max_readers", err, "must be 1 to 65536, got %lld",
                                  (long long)max_readers);
    persistor_error dir_err = {0};
    if (host->make_dirs(path, 0700, &dir_err) != PERSISTOR_OK)
        return host->config_error(config, "directory", err, "%s", dir_err.message);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return host->config_error(config, "directory", err, "%s is not a directory", path);
    persistor_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL || (inst->path = strdup(path)) == NULL) {
        free(inst);
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", path);
    }
    inst->host = host;
    inst->config = config;
    inst->max_map = (uint64_t)max_map;
    inst->durable = sync != 0;
    int32_t rc = lm_learn_ranks(inst);
    if (rc != PERSISTOR_OK) {
        rc = host->error_set(err, rc, "%s: cannot compute index keys", path);
    } else {
        rc = lm_env_acquire(inst, sync, map_size, max_readers, err);
    }
    if (rc != PERSISTOR_OK) {
        lm_close(inst);
        return rc;
    }
    if (!inst->durable)
        host->log(host, PERSISTOR_LOG_WARN, "lmdb_not_durable",
                  "%s: sync=false: commits are not flushed; a crash may lose acknowledged writes",
                  path);
    int dead = 0;
    mdb_reader_check(inst->env, &dead);
    if (dead > 0)
        host->log(host, PERSISTOR_LOG_WARN, "lmdb_stale_readers",
                  "%s: cleared %d stale reader slot(s) of dead processes", path, dead);
    *out = inst;
    return PERSISTOR_OK;
}

/* ---- the table ------------------------------------------------------- */

static const persistor_option_spec lm_options[] = {
    {"directory", PERSISTOR_OPTION_STRING, PERSISTOR_OPTION_REQUIRED, NULL,
     "environment directory (created 0700 if missing); one per store"},
    {"map_size", PERSISTOR_OPTION_INT, 0, "67108864",
     "initial map size in bytes; the map doubles by itself when full"},
    {"max_map_size", PERSISTOR_OPTION_INT, 0, "8589934592",
     "the map never grows past this many bytes (>= map_size); then writes fail UNAVAILABLE"},
    {"sync", PERSISTOR_OPTION_BOOL, 0, "true",
     "fsync at every commit (durable); false trades durability for speed (MDB_NOSYNC)"},
    {"max_readers", PERSISTOR_OPTION_INT, 0, "126",
     "reader slots shared by every process using the environment"},
};

/* DURABLE: capabilities live in this static table, read before any open,
 * so they cannot follow the `sync` option.  The default (sync=true) is
 * durable and claims it; an instance opened with sync=false logs a
 * warning that it is not (a per-instance capability would need an ABI
 * addition). */
static const persistor_adapter lm_adapter = {
    .abi_major = PERSISTOR_ABI_MAJOR,
    .abi_minor = PERSISTOR_ABI_MINOR,
    .struct_size = sizeof(persistor_adapter),
    .capabilities = PERSISTOR_CAP_DURABLE, /* not THREAD_SAFE: calls are serialised */
    .name = "lmdb",
    .version = "1.0.0",
    .description = "durable local store on LMDB: indexed, multi-process, the production fallback",
    .options = lm_options,
    .n_options = sizeof lm_options / sizeof lm_options[0],
    .open = lm_open,
    .close = lm_close,
    .ping = lm_ping,
    .ensure_collection = lm_ensure_collection,
    .write = lm_write,
    .get = lm_get,
    .query = lm_query,
    .cursor_next = lm_cursor_next,
    .cursor_close = lm_cursor_close,
    .count = lm_count,
    .expire = lm_expire,
    .stats = lm_stats,
    .exists = lm_exists,
};

PERSISTOR_ADAPTER_EXPORT const persistor_adapter *persistor_adapter_entry(const persistor_host *host)
{
    if (host == NULL || host->abi_major != PERSISTOR_ABI_MAJOR ||
        host->struct_size < sizeof(persistor_host))
        return NULL;
    return &lm_adapter;
}
