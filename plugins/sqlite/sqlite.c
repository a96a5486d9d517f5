/*
 * sqlite.c — the durable local adapter: the ABI table, options, open and
 * close, ping, and how SQLite's result codes become persistor's classes.
 *
 * One connection per instance, in WAL mode; `synchronous` (default FULL)
 * decides whether an acknowledged write is on disk (see the option's help).
 * The host serialises calls into an instance, so the connection is opened
 * SQLITE_OPEN_NOMUTEX and we take no locks.  Several processes may share a
 * file: each batch is one BEGIN IMMEDIATE transaction, a writer waits up
 * to busy_timeout_ms for another, then answers E_RETRY with nothing applied.
 *
 * What a file must be.  A persistor store carries application_id "PRST"
 * and user_version 1.  A new (empty) file gets them; a file that is not a
 * SQLite database or is damaged is E_CORRUPT naming it; a SQLite database
 * of another application (another application_id, or tables and no id) is
 * refused with E_CORRUPT too, before anything is written into it: we chose
 * not to coexist with other applications' tables, since a profile pointing
 * at the wrong file is far more likely than a deliberate shared file, and
 * switching someone's database to WAL behind their back would be rude.
 *
 * Not done at open: integrity checks (PRAGMA quick_check reads the whole
 * file); damage found later is reported as E_CORRUPT by the call that
 * meets it.  This file must not build SQL from data (see sqlite_internal.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "sqlite_internal.h"

/* ---- small shared helpers -------------------------------------------- */

uint32_t sq_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void sq_hex_name(char *out, size_t cap, const char *prefix, const char *s)
{
    static const char digits[] = "0123456789abcdef";
    size_t n = 0;
    for (; *prefix != '\0' && n + 1 < cap; prefix++)
        out[n++] = *prefix;
    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && n + 2 < cap; p++) {
        out[n++] = digits[*p >> 4];
        out[n++] = digits[*p & 15];
    }
    out[n] = '\0';
}

int sq_prepare(persistor_instance *inst, const char *sql, sqlite3_stmt **out)
{
    *out = NULL;
    return sqlite3_prepare_v3(inst->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
}

int sq_exec_stmt(sqlite3_stmt *st)
{
    int rc = sqlite3_step(st);
    int rc2 = sqlite3_reset(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? (rc2 == SQLITE_OK ? SQLITE_OK : rc2) : rc;
}

int sq_exec(persistor_instance *inst, const char *sql)
{
    return sqlite3_exec(inst->db, sql, NULL, NULL, NULL);
}

int sq_begin(persistor_instance *inst)
{
    return sq_exec_stmt(inst->begin);
}

int sq_commit(persistor_instance *inst)
{
    return sq_exec_stmt(inst->commit);
}

/* After an error SQLite may already have rolled back (FULL, IOERR, BUSY
 * during COMMIT...); only roll back what is still open. */
void sq_rollback(persistor_instance *inst)
{
    if (!sqlite3_get_autocommit(inst->db))
        sq_exec_stmt(inst->rollback);
}

/* ---- errors ---------------------------------------------------------- */

int32_t sq_class(int rc)
{
    switch (rc & 0xff) {
    case SQLITE_OK:
    case SQLITE_ROW:
    case SQLITE_DONE: return PERSISTOR_OK;
    case SQLITE_BUSY:
    case SQLITE_LOCKED: return PERSISTOR_E_RETRY;
    case SQLITE_NOMEM: return PERSISTOR_E_NOMEM;
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
    case SQLITE_SCHEMA:
    case SQLITE_ERROR: /* e.g. "no such table": our schema is not there */
        return PERSISTOR_E_CORRUPT;
    case SQLITE_CANTOPEN:
    case SQLITE_READONLY:
    case SQLITE_PERM:
    case SQLITE_AUTH: return PERSISTOR_E_CONFIG;
    case SQLITE_TOOBIG:
    case SQLITE_RANGE:
    case SQLITE_MISMATCH:
    case SQLITE_CONSTRAINT: return PERSISTOR_E_INVALID;
    default: /* FULL, IOERR, PROTOCOL, NOLCK, ... */
        return PERSISTOR_E_UNAVAILABLE;
    }
}

int32_t sq_error(persistor_instance *inst, int rc, persistor_error *err, const char *what, ...)
{
    const persistor_host *host = inst->host;
    char ctx[256];
    va_list ap;
    va_start(ap, what);
    vsnprintf(ctx, sizeof ctx, what, ap);
    va_end(ap);
    int32_t code = sq_class(rc);
    const char *msg = inst->db ? sqlite3_errmsg(inst->db) : sqlite3_errstr(rc);
    int sys = inst->db ? sqlite3_system_errno(inst->db) : 0;
    switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        host->log(host, PERSISTOR_LOG_DEBUG, "sqlite_busy", "%s: %s: busy after %lld ms",
                  inst->path, ctx, (long long)inst->busy_timeout_ms);
        return host->error_set(err, code,
                               "%s: %s: the database is locked by another connection (waited "
                               "%lld ms, busy_timeout_ms); nothing was applied, try again",
                               inst->path, ctx, (long long)inst->busy_timeout_ms);
    case SQLITE_FULL:
        return host->error_set(err, code,
                               "%s: %s: disk full (or max_page_count reached); nothing was "
                               "applied: free space on the file's disk",
                               inst->path, ctx);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
        return host->error_set(err, code, "%s: %s: not a SQLite database or damaged (%s)",
                               inst->path, ctx, msg);
    case SQLITE_CANTOPEN:
        return host->error_set(err, code, "%s: %s: cannot open the file: %s (%s)", inst->path,
                               ctx, sys ? strerror(sys) : "unknown reason", msg);
    case SQLITE_IOERR:
        return host->error_set(err, code, "%s: %s: I/O error: %s (%s)", inst->path, ctx,
                               sys ? strerror(sys) : "unknown reason", msg);
    default:
        return host->error_set(err, code, "%s: %s: %s", inst->path, ctx, msg);
    }
}

/* ---- open ------------------------------------------------------------ */

/* The file's directory, created with its parents (mode 0700) by the host,
 * so ./var/persistor.sqlite works in a fresh checkout. */
static int32_t sq_make_parent(persistor_instance *inst, persistor_error *err)
{
    char dir[4096];
    const char *slash = strrchr(inst->path, '/');
    if (slash == NULL || slash == inst->path)
        return PERSISTOR_OK;
    size_t len = (size_t)(slash - inst->path);
    if (len >= sizeof dir)
        return inst->host->error_set(err, PERSISTOR_E_CONFIG, "%s: path too long", inst->path);
    memcpy(dir, inst->path, len);
    dir[len] = '\0';
    persistor_error why = {0};
    int32_t rc = inst->host->make_dirs(dir, 0700, &why);
    if (rc != PERSISTOR_OK)
        inst->host->error_set(err, rc, "%s: %s", inst->path, why.message);
    return rc;
}

/* Read one integer pragma. */
static int sq_pragma_int(persistor_instance *inst, const char *sql, int64_t *out)
{
    sqlite3_stmt *st;
    int rc = sqlite3_prepare_v2(inst->db, sql, -1, &st, NULL);
    if (rc != SQLITE_OK)
        return rc;
    rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE ? SQLITE_OK : rc;
}

/* Is this file ours, new, or someone else's?  Done before anything is
 * written (WAL mode included).  *fresh: no tables and no application_id. */
static int32_t sq_check_owner(persistor_instance *inst, int *fresh, persistor_error *err)
{
    int64_t app = 0, version = 0, tables = 0;
    int rc = sq_pragma_int(inst, "PRAGMA application_id", &app);
    if (rc == SQLITE_OK)
        rc = sq_pragma_int(inst, "PRAGMA user_version", &version);
    if (rc == SQLITE_OK)
        rc = sq_pragma_int(inst, "SELECT count(*) FROM sqlite_schema", &tables);
    if (rc != SQLITE_OK)
        return sq_error(inst, rc, err, "opening the store");
    *fresh = app == 0 && tables == 0;
    if (*fresh || (app == SQ_APPLICATION_ID && version <= SQ_SCHEMA_VERSION))
        return PERSISTOR_OK;
    if (app == SQ_APPLICATION_ID)
        return inst->host->error_set(err, PERSISTOR_E_CORRUPT,
                                     "%s: written by a newer persistor (store layout %lld, this "
                                     "adapter reads up to %d); upgrade persistor",
                                     inst->path, (long long)version, SQ_SCHEMA_VERSION);
    return inst->host->error_set(err, PERSISTOR_E_CORRUPT,
                                 "%s: a SQLite database of another application (application_id "
                                 "0x%08llx, %lld schema object(s)), not a persistor store; "
                                 "refusing to write into it: point `path` at a new file",
                                 inst->path, (unsigned long long)(uint32_t)app, (long long)tables);
}

/* Stamp a new file as ours, under the write lock: another process may be
 * doing the same right now, and the second one finds it done. */
static int32_t sq_init_store(persistor_instance *inst, persistor_error *err)
{
    static const char schema[] =
        "CREATE TABLE IF NOT EXISTS persistor_collections ("
        " name TEXT PRIMARY KEY, tbl TEXT NOT NULL, ttl_field TEXT,"
        " ttl_seconds INTEGER NOT NULL DEFAULT 0);"
        "CREATE TABLE IF NOT EXISTS persistor_indexes ("
        " collection TEXT NOT NULL, name TEXT NOT NULL, definition TEXT NOT NULL,"
        " PRIMARY KEY (collection, name));";
    int fresh = 0;
    int rc = sq_begin(inst);
    int32_t prc = PERSISTOR_OK;
    if (rc == SQLITE_OK && (prc = sq_check_owner(inst, &fresh, err)) == PERSISTOR_OK) {
        char stamp[96];
        snprintf(stamp, sizeof stamp, "PRAGMA application_id=%d; PRAGMA user_version=%d;",
                 SQ_APPLICATION_ID, SQ_SCHEMA_VERSION);
        if (fresh)
            rc = sq_exec(inst, stamp);
        if (rc == SQLITE_OK)
            rc = sq_exec(inst, schema);
        if (rc == SQLITE_OK)
            rc = sq_commit(inst);
    }
    if (rc != SQLITE_OK || prc != PERSISTOR_OK) {
        sq_rollback(inst);
        return prc != PERSISTOR_OK ? prc : sq_error(inst, rc, err, "creating the store");
    }
    return PERSISTOR_OK;
}

static int32_t sq_read_options(persistor_instance *inst, const char **sync, int64_t *max_pages,
                               persistor_error *err)
{
    const persistor_host *host = inst->host;
    const persistor_config *config = inst->config;
    static const char *const syncs[] = {"off", "normal", "full", "extra"};
    if (host->config_string(config, "file", &inst->path) != PERSISTOR_OK || inst->path[0] == '\0')
        return host->config_error(config, "file", err, "must name the database file");
    if (host->config_string(config, "synchronous", sync) != PERSISTOR_OK)
        return host->config_error(config, "synchronous", err, "cannot be read");
    size_t i = 0;
    while (i < 4 && strcmp(*sync, syncs[i]) != 0)
        i++;
    if (i == 4)
        return host->config_error(config, "synchronous", err,
                                  "must be off, normal, full or extra, got \"%s\"", *sync);
    if (host->config_int(config, "busy_timeout_ms", &inst->busy_timeout_ms) != PERSISTOR_OK ||
        inst->busy_timeout_ms < 0 || inst->busy_timeout_ms > INT32_MAX)
        return host->config_error(config, "busy_timeout_ms", err,
                                  "must be between 0 and %d milliseconds", INT32_MAX);
    if (host->config_int(config, "max_page_count", max_pages) != PERSISTOR_OK || *max_pages < 0)
        return host->config_error(config, "max_page_count", err, "must be >= 0 (0: no cap)");
    return PERSISTOR_OK;
}

static int sq_prepare_txn(persistor_instance *inst)
{
    int rc = sq_prepare(inst, "BEGIN IMMEDIATE", &inst->begin);
    if (rc == SQLITE_OK)
        rc = sq_prepare(inst, "COMMIT", &inst->commit);
    if (rc == SQLITE_OK)
        rc = sq_prepare(inst, "ROLLBACK", &inst->rollback);
    return rc;
}

static void sq_close(persistor_instance *inst);

static int32_t sq_open(const persistor_host *host, const persistor_config *config,
                       persistor_instance **out, persistor_error *err)
{
    const char *sync = "full";
    int64_t max_pages = 0, mode_ok = 0;
    int fresh = 0;
    char sql[128];
    persistor_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory",
                               host->config_label(config));
    inst->host = host;
    inst->config = config;
    int32_t prc = sq_read_options(inst, &sync, &max_pages, err);
    if (prc != PERSISTOR_OK)
        goto fail;
    prc = sq_make_parent(inst, err);
    if (prc != PERSISTOR_OK)
        goto fail;
    int rc = sqlite3_open_v2(inst->path, &inst->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    if (rc != SQLITE_OK) {
        prc = sq_error(inst, rc, err, "opening the store");
        goto fail;
    }
    sqlite3_extended_result_codes(inst->db, 1);
    sqlite3_busy_timeout(inst->db, (int)inst->busy_timeout_ms);
    /* Ownership first: nothing is written into a file that is not ours. */
    if ((prc = sq_check_owner(inst, &fresh, err)) != PERSISTOR_OK)
        goto fail;
    /* WAL is a property of the file: set it once, not at every open (it
     * needs a lock another process may hold). */
    rc = sq_pragma_int(inst, "SELECT journal_mode = 'wal' FROM pragma_journal_mode", &mode_ok);
    if (rc == SQLITE_OK && !mode_ok)
        rc = sq_exec(inst, "PRAGMA journal_mode=WAL");
    /* max_page_count is per connection: a cap (or a test's tiny disk),
     * left at SQLite's default when 0. */
    if (max_pages > 0)
        snprintf(sql, sizeof sql, "PRAGMA synchronous=%s; PRAGMA max_page_count=%lld", sync,
                 (long long)max_pages);
    else
        snprintf(sql, sizeof sql, "PRAGMA synchronous=%s", sync);
    if (rc == SQLITE_OK)
        rc = sq_exec(inst, sql);
    if (rc == SQLITE_OK)
        rc = sq_prepare_txn(inst);
    if (rc != SQLITE_OK) {
        prc = sq_error(inst, rc, err, "setting up the connection");
        goto fail;
    }
    if ((prc = sq_init_store(inst, err)) != PERSISTOR_OK)
        goto fail;
    if (strcmp(sync, "off") == 0 || strcmp(sync, "normal") == 0)
        host->log(host, PERSISTOR_LOG_WARN, "sqlite_not_durable",
                  "%s: synchronous=%s: a write acknowledged just before a power loss or OS "
                  "crash may be lost (a process crash loses nothing%s)",
                  inst->path, sync, strcmp(sync, "off") == 0 ? "; with off the file may even "
                                                             "be damaged by a power loss" : "");
    *out = inst;
    return PERSISTOR_OK;
fail:
    sq_close(inst);
    return prc;
}

static void sq_close(persistor_instance *inst)
{
    while (inst->collections != NULL) {
        sq_collection *c = inst->collections;
        inst->collections = c->next;
        sq_collection_free(inst, c);
    }
    sqlite3_finalize(inst->begin);
    sqlite3_finalize(inst->commit);
    sqlite3_finalize(inst->rollback);
    /* sqlite3_close (not _v2): every statement is finalized by now. */
    if (inst->db != NULL)
        sqlite3_close(inst->db);
    sq_query_cache_free(inst);
    inst->host->buffer_free(&inst->keybuf);
    free(inst->arena);
    free(inst);
}

/* A statement that reads the file's header: fails when the file is gone
 * bad or locked exclusively; never writes. */
static int32_t sq_ping(persistor_instance *inst, persistor_error *err)
{
    int64_t v = 0;
    int rc = sq_pragma_int(inst, "PRAGMA schema_version", &v);
    return rc == SQLITE_OK ? PERSISTOR_OK : sq_error(inst, rc, err, "ping");
}

/* ---- the table ------------------------------------------------------- */

static const persistor_option_spec sq_options[] = {
    {"file", PERSISTOR_OPTION_STRING, PERSISTOR_OPTION_REQUIRED, NULL,
     "the database file; its directory is created (mode 0700) if missing"},
    {"synchronous", PERSISTOR_OPTION_STRING, 0, "full",
     "off|normal|full|extra: full (default) and extra fsync every batch (durable); normal and "
     "off survive a process crash but may lose the last writes on power loss"},
    {"busy_timeout_ms", PERSISTOR_OPTION_INT, 0, "5000",
     "how long a write waits for another process's lock before answering retry"},
    {"max_page_count", PERSISTOR_OPTION_INT, 0, "0",
     "cap the file at this many pages (4 KiB each by default); writes past it fail as disk "
     "full (0: no cap)"},
};

static const persistor_adapter sq_adapter = {
    .abi_major = PERSISTOR_ABI_MAJOR,
    .abi_minor = PERSISTOR_ABI_MINOR,
    .struct_size = sizeof(persistor_adapter),
    /* Capabilities are per adapter, not per instance: DURABLE holds for the
     * default synchronous=full (and extra); open() warns when a profile
     * chooses normal or off.  Not THREAD_SAFE: the host serialises calls. */
    .capabilities = PERSISTOR_CAP_DURABLE,
    .name = "sqlite",
    .version = "1.0.0",
    .description = "a local SQLite file (WAL): durable, shared by processes on one host",
    .options = sq_options,
    .n_options = sizeof sq_options / sizeof sq_options[0],
    .open = sq_open,
    .close = sq_close,
    .ping = sq_ping,
    .ensure_collection = sq_ensure_collection,
    .write = sq_write,
    .get = sq_get,
    .query = sq_query,
    .cursor_next = sq_cursor_next,
    .cursor_close = sq_cursor_close,
    .count = sq_count,
    .expire = sq_expire,
    .stats = sq_stats,
    .exists = sq_exists,
};

PERSISTOR_ADAPTER_EXPORT const persistor_adapter *persistor_adapter_entry(const persistor_host *host)
{
    if (host == NULL || host->abi_major != PERSISTOR_ABI_MAJOR ||
        host->struct_size < sizeof(persistor_host))
        return NULL;
    return &sq_adapter;
}
