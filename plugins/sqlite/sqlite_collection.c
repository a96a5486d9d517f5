/*
 * sqlite_collection.c — one table per collection, index key columns, and
 * the calls that read or write one document: write, get, exists, stats,
 * expire.
 *
 * The table of a collection (names: see sqlite_internal.h):
 *
 *   seq  INTEGER PRIMARY KEY  write order: a write, even a replacing one,
 *                             takes max(seq)+1, as memory's list does; an
 *                             explicit key so VACUUM keeps it
 *   id   TEXT NOT NULL UNIQUE the document's _id
 *   doc  BLOB NOT NULL        the BSON, byte for byte
 *   ttl  INTEGER              host->doc_time_ms of the TTL field, or NULL
 *                             (indexed where not NULL, for expire)
 *   k_<hex index name> BLOB   host->index_key bytes, one column per
 *                             declared index, with an SQL index (UNIQUE for
 *                             unique ones): memcmp order is BLOB order
 *
 * persistor_collections and persistor_indexes record each collection's TTL
 * and index definitions, so a later ensure_collection with another spec
 * adds and drops key columns (computing keys for the documents already
 * there) in one transaction, and a new unique index the data breaks is
 * refused with E_CONFIG naming both ids, with nothing changed.
 *
 * Writes: a batch is one BEGIN IMMEDIATE transaction.  A unique conflict
 * (on id for insert-if-absent, or on a unique key column) fails only its
 * own statement — SQLite backs out that one statement and the transaction
 * goes on — so each op's EXISTS costs no savepoint.  Upsert-if-newer reads
 * the stored document in that transaction and compares versions with the
 * host's sorter (MongoDB's order, which SQL cannot express), so no other
 * writer comes between the compare and the replace.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "sqlite_internal.h"

/* ---- collections ------------------------------------------------------ */

int32_t sq_collection_get(persistor_instance *inst, const char *name, sq_collection **out,
                          persistor_error *err)
{
    sq_collection *c = inst->collections;
    while (c != NULL && strcmp(c->spec->name, name) != 0)
        c = c->next;
    *out = c;
    if (c == NULL)
        return inst->host->error_set(err, PERSISTOR_E_INVALID, "collection %s was not ensured",
                                     name);
    return PERSISTOR_OK;
}

void sq_collection_free(persistor_instance *inst, sq_collection *c)
{
    if (c == NULL)
        return;
    for (int i = 0; i < SQ_ST_N; i++)
        sqlite3_finalize(c->st[i]);
    if (c->indexes != NULL) {
        for (uint32_t i = 0; i < c->spec->n_indexes; i++) {
            sqlite3_finalize(c->indexes[i].range);
            sqlite3_finalize(c->indexes[i].from);
            inst->host->buffer_free(&c->indexes[i].key);
        }
    }
    free(c->indexes);
    if (c->version != NULL)
        inst->host->sorter_free(c->version);
    free(c);
}

/* A growing string for SQL text of our own identifiers. */
typedef struct sq_sql {
    char *s;
    size_t len, cap;
    int failed;
} sq_sql;

static void sql_add(sq_sql *q, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;

static void sql_add(sq_sql *q, const char *fmt, ...)
{
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int n = q->failed ? -1 : vsnprintf(q->s ? q->s + q->len : NULL,
                                            q->s ? q->cap - q->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0) {
            q->failed = 1;
            return;
        }
        if (q->s != NULL && (size_t)n < q->cap - q->len) {
            q->len += (size_t)n;
            return;
        }
        size_t cap = (q->cap ? q->cap * 2 : 256) + (size_t)n;
        char *s = realloc(q->s, cap);
        if (s == NULL) {
            q->failed = 1;
            return;
        }
        q->s = s;
        q->cap = cap;
    }
}

/* Prepare the cached statements of `c` (its spec and columns are set). */
static int sq_collection_prepare(persistor_instance *inst, sq_collection *c)
{
    const char *t = c->table;
    uint32_t n = c->spec->n_indexes;
    sq_sql ins = {0}, upd = {0};
    sql_add(&ins, "INSERT INTO %s(id, doc, ttl", t);
    sql_add(&upd, "UPDATE %s SET seq = (SELECT max(seq) FROM %s) + 1, doc = ?2, ttl = ?3", t, t);
    for (uint32_t i = 0; i < n; i++) {
        sql_add(&ins, ", %s", c->indexes[i].column);
        sql_add(&upd, ", %s = ?%u", c->indexes[i].column, i + 4);
    }
    sql_add(&ins, ") VALUES (?1, ?2, ?3");
    for (uint32_t i = 0; i < n; i++)
        sql_add(&ins, ", ?%u", i + 4);
    sql_add(&ins, ")");
    sql_add(&upd, " WHERE id = ?1");
    int rc = ins.failed || upd.failed ? SQLITE_NOMEM : SQLITE_OK;
    if (rc == SQLITE_OK)
        rc = sq_prepare(inst, ins.s, &c->st[SQ_ST_INSERT]);
    if (rc == SQLITE_OK)
        rc = sq_prepare(inst, upd.s, &c->st[SQ_ST_UPDATE]);
    free(ins.s);
    free(upd.s);
    static const struct {
        int slot;
        const char *head, *tail; /* around the table's name */
    } plain[] = {
        {SQ_ST_DELETE, "DELETE FROM ", " WHERE id = ?1"},
        {SQ_ST_GET, "SELECT doc FROM ", " WHERE id = ?1"},
        {SQ_ST_HAS, "SELECT 1 FROM ", " WHERE id = ?1"},
        {SQ_ST_SCAN, "SELECT seq, doc FROM ", " ORDER BY seq"},
        {SQ_ST_COUNT, "SELECT count(*) FROM ", ""},
        {SQ_ST_STATS, "SELECT count(*), coalesce(sum(length(doc)), 0) FROM ", ""},
        {SQ_ST_EXPIRE, "DELETE FROM ", " WHERE ttl < ?1"},
    };
    char sql[1024];
    for (size_t i = 0; rc == SQLITE_OK && i < sizeof plain / sizeof plain[0]; i++) {
        snprintf(sql, sizeof sql, "%s%s%s", plain[i].head, t, plain[i].tail);
        rc = sq_prepare(inst, sql, &c->st[plain[i].slot]);
    }
    return rc;
}

/* ---- ensure_collection ------------------------------------------------ */

/* An index definition as stored: "u" or "-", then per key
 * ";<dir>:<length>:<field>" (lengths keep any field name unambiguous). */
static char *sq_index_definition(const persistor_index_spec *ix)
{
    sq_sql d = {0};
    sql_add(&d, "%s", ix->flags & PERSISTOR_INDEX_UNIQUE ? "u" : "-");
    for (uint32_t k = 0; k < ix->n_keys; k++)
        sql_add(&d, ";%d:%zu:%s", ix->keys[k].direction < 0 ? -1 : 1, strlen(ix->keys[k].field),
                ix->keys[k].field);
    if (d.failed) {
        free(d.s);
        return NULL;
    }
    return d.s;
}

/* What ensure has to do, worked out inside the transaction. */
typedef struct sq_plan {
    persistor_instance *inst;
    const persistor_collection_spec *spec;
    const char *table;
    char hex[2 * SQ_MAX_COLLECTION_NAME + 1];
    char **defs;   /* spec's index definitions */
    uint8_t *fresh; /* per spec index: a new column to fill and index */
    int ttl_changed;
    persistor_error *err;
} sq_plan;

static int32_t sq_fail(sq_plan *p, int rc, const char *what)
{
    return sq_error(p->inst, rc, p->err, "%s: %s", p->spec->name, what);
}

static void sq_index_sql_name(char *out, size_t cap, const sq_plan *p, const char *index_name)
{
    char hex[2 * SQ_MAX_INDEX_NAME + 1];
    sq_hex_name(hex, sizeof hex, "", index_name);
    snprintf(out, cap, "x_%s_%s", p->hex, hex);
}

/* Create the table if the collection is new; read its stored TTL. */
static int32_t sq_plan_table(sq_plan *p, int *created)
{
    persistor_instance *inst = p->inst;
    const persistor_collection_spec *spec = p->spec;
    const char *want_ttl = spec->ttl_seconds > 0 ? spec->ttl_field : NULL;
    sqlite3_stmt *st;
    char sql[1536];
    int rc = sqlite3_prepare_v2(inst->db,
                                "SELECT ttl_field FROM persistor_collections WHERE name = ?1", -1,
                                &st, NULL);
    if (rc != SQLITE_OK)
        return sq_fail(p, rc, "reading its definition");
    sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
    rc = sqlite3_step(st);
    *created = rc == SQLITE_DONE;
    if (rc == SQLITE_ROW) {
        const char *have = (const char *)sqlite3_column_text(st, 0);
        p->ttl_changed = (have == NULL) != (want_ttl == NULL) ||
                         (have != NULL && strcmp(have, want_ttl) != 0);
        rc = SQLITE_DONE;
    }
    sqlite3_finalize(st);
    if (rc != SQLITE_DONE)
        return sq_fail(p, rc, "reading its definition");
    if (!*created)
        return PERSISTOR_OK;
    p->ttl_changed = 0; /* no rows yet */
    snprintf(sql, sizeof sql,
             "CREATE TABLE %s (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE,"
             " doc BLOB NOT NULL, ttl INTEGER);"
             "CREATE INDEX x_%s_ttl ON %s(ttl) WHERE ttl IS NOT NULL;",
             p->table, p->hex, p->table);
    rc = sq_exec(inst, sql);
    if (rc != SQLITE_OK)
        return sq_fail(p, rc, "creating its table");
    return PERSISTOR_OK;
}

/* Drop stored indexes the spec no longer has (or has another way); mark
 * the spec's indexes that need a new column.  The stored names are read
 * first and dropped after, so no SELECT is running during the DDL. */
static int32_t sq_plan_indexes(sq_plan *p)
{
    persistor_instance *inst = p->inst;
    const persistor_collection_spec *spec = p->spec;
    sqlite3_stmt *st = NULL, *del = NULL;
    sq_sql gone = {0}; /* names to drop, NUL-separated */
    size_t n_gone = 0;
    char sql[2048], col[2 + 2 * SQ_MAX_INDEX_NAME + 1], xname[1024];
    for (uint32_t i = 0; i < spec->n_indexes; i++)
        p->fresh[i] = 1;
    int rc = sqlite3_prepare_v2(inst->db,
                                "SELECT name, definition FROM persistor_indexes"
                                " WHERE collection = ?1",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
        while ((rc = sqlite3_step(st)) == SQLITE_ROW) {
            const char *name = (const char *)sqlite3_column_text(st, 0);
            const char *def = (const char *)sqlite3_column_text(st, 1);
            int keep = 0;
            for (uint32_t i = 0; i < spec->n_indexes && !keep && name && def; i++)
                if (strcmp(spec->indexes[i].name, name) == 0 && strcmp(p->defs[i], def) == 0)
                    keep = 1, p->fresh[i] = 0;
            if (!keep && name != NULL) {
                sql_add(&gone, "%s%c", name, 0);
                n_gone++;
            }
        }
        rc = rc == SQLITE_DONE ? SQLITE_OK : rc;
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK && gone.failed)
        rc = SQLITE_NOMEM;
    if (rc == SQLITE_OK && n_gone > 0)
        rc = sqlite3_prepare_v2(inst->db,
                                "DELETE FROM persistor_indexes WHERE collection = ?1 AND "
                                "name = ?2", -1, &del, NULL);
    const char *name = gone.s;
    for (size_t k = 0; rc == SQLITE_OK && k < n_gone; k++, name += strlen(name) + 1) {
        sq_index_sql_name(xname, sizeof xname, p, name);
        sq_hex_name(col, sizeof col, "k_", name);
        snprintf(sql, sizeof sql, "DROP INDEX IF EXISTS %s; ALTER TABLE %s DROP COLUMN %s;", xname,
                 p->table, col);
        if ((rc = sq_exec(inst, sql)) != SQLITE_OK)
            break;
        sqlite3_bind_text(del, 1, spec->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(del, 2, name, -1, SQLITE_STATIC);
        rc = sq_exec_stmt(del);
    }
    sqlite3_finalize(del);
    free(gone.s);
    if (rc != SQLITE_OK)
        return sq_fail(p, rc, "dropping an index");
    for (uint32_t i = 0; i < spec->n_indexes; i++) {
        if (!p->fresh[i])
            continue;
        sq_hex_name(col, sizeof col, "k_", spec->indexes[i].name);
        snprintf(sql, sizeof sql, "ALTER TABLE %s ADD COLUMN %s BLOB", p->table, col);
        if ((rc = sq_exec(inst, sql)) != SQLITE_OK)
            return sq_fail(p, rc, "adding an index column");
    }
    return PERSISTOR_OK;
}

/* Compute the new key columns (and the TTL column if the TTL field
 * changed) of every stored document, one row at a time in seq order. */
static int32_t sq_plan_fill(sq_plan *p, sq_index *ix)
{
    persistor_instance *inst = p->inst;
    const persistor_host *host = inst->host;
    const persistor_collection_spec *spec = p->spec;
    const char *ttl_field = spec->ttl_seconds > 0 ? spec->ttl_field : NULL;
    sqlite3_stmt *next = NULL, *upd = NULL;
    sq_sql u = {0};
    char sql[1024];
    uint32_t n_set = 0;
    int32_t prc = PERSISTOR_OK;
    sql_add(&u, "UPDATE %s SET seq = seq", p->table);
    if (p->ttl_changed)
        sql_add(&u, ", ttl = ?2");
    for (uint32_t i = 0; i < spec->n_indexes; i++)
        if (p->fresh[i])
            sql_add(&u, ", %s = ?%u", ix[i].column, i + 3), n_set++;
    sql_add(&u, " WHERE seq = ?1");
    if (n_set == 0 && !p->ttl_changed) {
        free(u.s);
        return PERSISTOR_OK;
    }
    snprintf(sql, sizeof sql, "SELECT seq, doc, id FROM %s WHERE seq > ?1 ORDER BY seq LIMIT 1",
             p->table);
    int rc = u.failed ? SQLITE_NOMEM : sqlite3_prepare_v2(inst->db, sql, -1, &next, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(inst->db, u.s, -1, &upd, NULL);
    free(u.s);
    int64_t seq = INT64_MIN;
    while (rc == SQLITE_OK && prc == PERSISTOR_OK) {
        sqlite3_bind_int64(next, 1, seq);
        if ((rc = sqlite3_step(next)) != SQLITE_ROW)
            break;
        seq = sqlite3_column_int64(next, 0);
        const uint8_t *doc = sqlite3_column_blob(next, 1);
        uint32_t len = (uint32_t)sqlite3_column_bytes(next, 1);
        int64_t ms;
        sqlite3_bind_int64(upd, 1, seq);
        if (p->ttl_changed) {
            if (ttl_field != NULL && host->doc_time_ms(doc, len, ttl_field, &ms) == PERSISTOR_OK)
                sqlite3_bind_int64(upd, 2, ms);
            else
                sqlite3_bind_null(upd, 2);
        }
        for (uint32_t i = 0; i < spec->n_indexes && prc == PERSISTOR_OK; i++) {
            if (!p->fresh[i])
                continue;
            prc = host->index_key(&spec->indexes[i], doc, len, &ix[i].key);
            if (prc != PERSISTOR_OK)
                host->error_set(p->err, prc, "%s: cannot compute index %s of document %s",
                                spec->name, spec->indexes[i].name,
                                (const char *)sqlite3_column_text(next, 2));
            else
                sqlite3_bind_blob(upd, (int)i + 3, ix[i].key.data, (int)ix[i].key.len,
                                  SQLITE_STATIC);
        }
        sqlite3_reset(next);
        if (prc == PERSISTOR_OK)
            rc = sq_exec_stmt(upd);
    }
    sqlite3_finalize(next);
    sqlite3_finalize(upd);
    if (prc != PERSISTOR_OK)
        return prc;
    return rc == SQLITE_DONE || rc == SQLITE_OK ? PERSISTOR_OK
                                                : sq_fail(p, rc, "computing index keys");
}

/* Two documents sharing a key of the unique column `col`, for E_CONFIG. */
static int32_t sq_unique_refused(sq_plan *p, const persistor_index_spec *ix, const char *col)
{
    char sql[1024], a[128] = "?", b[128] = "?";
    sqlite3_stmt *st;
    snprintf(sql, sizeof sql,
             "SELECT x.id, y.id FROM %s AS x JOIN %s AS y ON y.%s = x.%s AND y.seq > x.seq"
             " ORDER BY x.seq, y.seq LIMIT 1",
             p->table, p->table, col, col);
    if (sqlite3_prepare_v2(p->inst->db, sql, -1, &st, NULL) == SQLITE_OK) {
        if (sqlite3_step(st) == SQLITE_ROW) {
            snprintf(a, sizeof a, "%s", (const char *)sqlite3_column_text(st, 0));
            snprintf(b, sizeof b, "%s", (const char *)sqlite3_column_text(st, 1));
        }
        sqlite3_finalize(st);
    }
    return p->inst->host->error_set(p->err, PERSISTOR_E_CONFIG,
                                    "%s: cannot build unique index %s: documents %s and %s have "
                                    "the same key; remove one of them first (in %s)",
                                    p->spec->name, ix->name, a, b, p->inst->path);
}

/* SQL indexes on the new columns, and the metadata rows. */
static int32_t sq_plan_finish(sq_plan *p, sq_index *ix)
{
    persistor_instance *inst = p->inst;
    const persistor_collection_spec *spec = p->spec;
    char sql[2048], xname[1024];
    sqlite3_stmt *st = NULL;
    int rc;
    for (uint32_t i = 0; i < spec->n_indexes; i++) {
        if (!p->fresh[i])
            continue;
        int unique = (spec->indexes[i].flags & PERSISTOR_INDEX_UNIQUE) != 0;
        sq_index_sql_name(xname, sizeof xname, p, spec->indexes[i].name);
        snprintf(sql, sizeof sql, "CREATE %sINDEX %s ON %s(%s)", unique ? "UNIQUE " : "", xname,
                 p->table, ix[i].column);
        rc = sq_exec(inst, sql);
        if ((rc & 0xff) == SQLITE_CONSTRAINT && unique)
            return sq_unique_refused(p, &spec->indexes[i], ix[i].column);
        if (rc != SQLITE_OK)
            return sq_fail(p, rc, "creating an index");
    }
    rc = sqlite3_prepare_v2(inst->db,
                            "INSERT OR REPLACE INTO persistor_indexes VALUES (?1, ?2, ?3)", -1,
                            &st, NULL);
    for (uint32_t i = 0; rc == SQLITE_OK && i < spec->n_indexes; i++) {
        if (!p->fresh[i])
            continue;
        sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, spec->indexes[i].name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 3, p->defs[i], -1, SQLITE_STATIC);
        rc = sq_exec_stmt(st);
    }
    sqlite3_finalize(st);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(inst->db,
                                "INSERT OR REPLACE INTO persistor_collections VALUES "
                                "(?1, ?2, ?3, ?4)",
                                -1, &st, NULL);
    if (rc == SQLITE_OK) {
        sqlite3_bind_text(st, 1, spec->name, -1, SQLITE_STATIC);
        sqlite3_bind_text(st, 2, p->table, -1, SQLITE_STATIC);
        if (spec->ttl_seconds > 0 && spec->ttl_field != NULL)
            sqlite3_bind_text(st, 3, spec->ttl_field, -1, SQLITE_STATIC);
        sqlite3_bind_int64(st, 4, spec->ttl_seconds > 0 ? spec->ttl_seconds : 0);
        rc = sq_exec_stmt(st);
        sqlite3_finalize(st);
    }
    return rc == SQLITE_OK ? PERSISTOR_OK : sq_fail(p, rc, "recording its definition");
}

static int32_t sq_check_spec(persistor_instance *inst, const persistor_collection_spec *spec,
                             persistor_error *err)
{
    const persistor_host *host = inst->host;
    if (spec->name == NULL || spec->name[0] == '\0' ||
        strlen(spec->name) > SQ_MAX_COLLECTION_NAME)
        return host->error_set(err, PERSISTOR_E_CONFIG,
                               "%s: a collection name must have 1 to %d bytes", inst->path,
                               SQ_MAX_COLLECTION_NAME);
    for (uint32_t i = 0; i < spec->n_indexes; i++) {
        const persistor_index_spec *ix = &spec->indexes[i];
        if (ix->name == NULL || ix->name[0] == '\0' || strlen(ix->name) > SQ_MAX_INDEX_NAME ||
            ix->n_keys == 0)
            return host->error_set(err, PERSISTOR_E_CONFIG,
                                   "%s: index %u: a name of 1 to %d bytes and at least one key "
                                   "are needed", spec->name, i, SQ_MAX_INDEX_NAME);
        for (uint32_t j = 0; j < i; j++)
            if (strcmp(spec->indexes[j].name, ix->name) == 0)
                return host->error_set(err, PERSISTOR_E_CONFIG, "%s: index %s is declared twice",
                                       spec->name, ix->name);
    }
    return PERSISTOR_OK;
}

int32_t sq_ensure_collection(persistor_instance *inst, const persistor_collection_spec *spec,
                             persistor_error *err)
{
    const persistor_host *host = inst->host;
    int32_t prc = sq_check_spec(inst, spec, err);
    if (prc != PERSISTOR_OK)
        return prc;
    uint32_t n = spec->n_indexes;
    sq_collection *c = calloc(1, sizeof *c);
    sq_plan p = {inst, spec, NULL, "", calloc(n + 1, sizeof(char *)), calloc(n + 1, 1), 0, err};
    if (c == NULL || p.defs == NULL || p.fresh == NULL ||
        (c->indexes = calloc(n + 1, sizeof *c->indexes)) == NULL) {
        prc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", spec->name);
        goto done;
    }
    c->spec = spec;
    if ((prc = sorters_version(host, spec, &c->version, err)) != PERSISTOR_OK)
        goto done;
    sq_hex_name(c->table, sizeof c->table, "c_", spec->name);
    sq_hex_name(p.hex, sizeof p.hex, "", spec->name);
    p.table = c->table;
    for (uint32_t i = 0; i < n; i++) {
        c->indexes[i].spec = &spec->indexes[i];
        sq_hex_name(c->indexes[i].column, sizeof c->indexes[i].column, "k_",
                    spec->indexes[i].name);
        if ((p.defs[i] = sq_index_definition(&spec->indexes[i])) == NULL) {
            prc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", spec->name);
            goto done;
        }
    }
    int created = 0;
    int rc = sq_begin(inst);
    if (rc != SQLITE_OK) {
        prc = sq_fail(&p, rc, "ensuring the collection");
        goto done;
    }
    if ((prc = sq_plan_table(&p, &created)) == PERSISTOR_OK &&
        (prc = sq_plan_indexes(&p)) == PERSISTOR_OK &&
        (prc = sq_plan_fill(&p, c->indexes)) == PERSISTOR_OK &&
        (prc = sq_plan_finish(&p, c->indexes)) == PERSISTOR_OK &&
        (rc = sq_commit(inst)) != SQLITE_OK)
        prc = sq_fail(&p, rc, "committing its definition");
    if (prc != PERSISTOR_OK) {
        sq_rollback(inst); /* nothing changed: the old statements still hold */
        goto done;
    }
    if ((rc = sq_collection_prepare(inst, c)) != SQLITE_OK) {
        prc = sq_fail(&p, rc, "preparing its statements");
        goto done;
    }
    /* Replace the collection's previous entry, if any. */
    sq_collection **link = &inst->collections;
    while (*link != NULL && strcmp((*link)->spec->name, spec->name) != 0)
        link = &(*link)->next;
    if (*link != NULL) {
        sq_collection *old = *link;
        c->next = old->next;
        *link = c;
        sq_collection_free(inst, old);
    } else {
        c->next = inst->collections;
        inst->collections = c;
    }
    c = NULL;
done:
    sq_collection_free(inst, c);
    for (uint32_t i = 0; p.defs != NULL && i < n; i++)
        free(p.defs[i]);
    free(p.defs);
    free(p.fresh);
    return prc;
}

/* ---- write ------------------------------------------------------------- */

/* Check the document and compute its TTL and index keys (into the
 * indexes' scratch buffers), once per op whichever statement runs. */
static int32_t sq_prepare_doc(persistor_instance *inst, sq_collection *c,
                              const persistor_write_op *op, int64_t *ttl, int *has_ttl,
                              persistor_error *err)
{
    const persistor_host *host = inst->host;
    const persistor_collection_spec *spec = c->spec;
    if (op->doc == NULL || op->doc_len < 5 || sq_le32(op->doc) != op->doc_len ||
        op->doc[op->doc_len - 1] != 0 || op->doc_len > INT32_MAX)
        return host->error_set(err, PERSISTOR_E_INVALID, "%s/%s: the document is not BSON",
                               spec->name, op->id);
    *has_ttl = spec->ttl_seconds > 0 && spec->ttl_field != NULL &&
               host->doc_time_ms(op->doc, op->doc_len, spec->ttl_field, ttl) == PERSISTOR_OK;
    for (uint32_t i = 0; i < spec->n_indexes; i++) {
        sq_index *ix = &c->indexes[i];
        int32_t rc = host->index_key(ix->spec, op->doc, op->doc_len, &ix->key);
        if (rc != PERSISTOR_OK)
            return host->error_set(err, rc, "%s/%s: cannot compute its key for index %s",
                                   spec->name, op->id, ix->spec->name);
    }
    return PERSISTOR_OK;
}

/* Bind id, doc, TTL and keys (?1 ... ?4+) of an insert or update.  STATIC:
 * the op and the scratch keys outlive the step. */
static void sq_bind_doc(sq_collection *c, sqlite3_stmt *st, const persistor_write_op *op,
                        int64_t ttl, int has_ttl)
{
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    sqlite3_bind_blob(st, 2, op->doc, (int)op->doc_len, SQLITE_STATIC);
    if (has_ttl)
        sqlite3_bind_int64(st, 3, ttl);
    else
        sqlite3_bind_null(st, 3);
    for (uint32_t i = 0; i < c->spec->n_indexes; i++) {
        const persistor_buffer *key = &c->indexes[i].key;
        sqlite3_bind_blob(st, (int)i + 4, key->data ? (const void *)key->data : "",
                          (int)key->len, SQLITE_STATIC);
    }
}

/* Step an insert or update: OK, EXISTS on a unique conflict, or the
 * SQLite error in *sqlite_rc (and E_... returned). */
static int32_t sq_step_put(sqlite3_stmt *st, int *sqlite_rc)
{
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_DONE)
        return PERSISTOR_OK;
    if (rc == SQLITE_CONSTRAINT_UNIQUE || rc == SQLITE_CONSTRAINT_PRIMARYKEY)
        return PERSISTOR_EXISTS;
    *sqlite_rc = rc;
    return sq_class(rc);
}

/* Upsert-if-newer: is a stored document with the op's id there, at the
 * same or a later version?  EXISTS (keep it), OK (write the op), or an
 * error.  In the batch's transaction: nothing changes before the write. */
static int32_t sq_stored_is_newer(persistor_instance *inst, sq_collection *c,
                                  const persistor_write_op *op, persistor_error *err)
{
    sqlite3_stmt *st = c->st[SQ_ST_GET];
    int32_t prc = PERSISTOR_OK;
    sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *doc = sqlite3_column_blob(st, 0);
        uint32_t len = (uint32_t)sqlite3_column_bytes(st, 0);
        if (doc == NULL && sqlite3_errcode(inst->db) == SQLITE_NOMEM)
            prc = inst->host->error_set(err, PERSISTOR_E_NOMEM, "%s/%s: out of memory",
                                        c->spec->name, op->id);
        else if (inst->host->sorter_compare(c->version, doc, len, op->doc, op->doc_len) >= 0)
            prc = PERSISTOR_EXISTS;
    } else if (rc != SQLITE_DONE) {
        prc = sq_error(inst, rc, err, "%s/%s: reading the stored version", c->spec->name,
                       op->id);
    }
    sqlite3_reset(st);
    return prc;
}

/* One op inside the batch's transaction.  An answer (OK, EXISTS,
 * NOT_FOUND), or an error with `err` set. */
static int32_t sq_apply(persistor_instance *inst, sq_collection *c, const persistor_write_op *op,
                        persistor_error *err)
{
    const char *name = c->spec->name;
    int rc = SQLITE_OK;
    int32_t prc;
    if (op->id == NULL)
        return inst->host->error_set(err, PERSISTOR_E_INVALID, "%s: a write without an id", name);
    switch (op->kind) {
    case PERSISTOR_WRITE_DELETE: {
        sqlite3_stmt *st = c->st[SQ_ST_DELETE];
        sqlite3_bind_text(st, 1, op->id, -1, SQLITE_STATIC);
        rc = sq_exec_stmt(st);
        if (rc != SQLITE_OK)
            return sq_error(inst, rc, err, "%s/%s: delete", name, op->id);
        return sqlite3_changes(inst->db) > 0 ? PERSISTOR_OK : PERSISTOR_NOT_FOUND;
    }
    case PERSISTOR_WRITE_UPSERT:
    case PERSISTOR_WRITE_INSERT_IF_ABSENT:
        break;
    case PERSISTOR_WRITE_UPSERT_IF_NEWER:
        if (c->version == NULL)
            return inst->host->error_set(err, PERSISTOR_E_INVALID,
                                         "%s/%s: upsert-if-newer on a collection whose spec "
                                         "names no version_field; name one, or write with "
                                         "UPSERT", name, op->id);
        break;
    default:
        return inst->host->error_set(err, PERSISTOR_E_INVALID, "%s/%s: unknown write kind %u",
                                     name, op->id, op->kind);
    }
    int64_t ttl = 0;
    int has_ttl = 0;
    if ((prc = sq_prepare_doc(inst, c, op, &ttl, &has_ttl, err)) != PERSISTOR_OK)
        return prc;
    if (op->kind == PERSISTOR_WRITE_UPSERT_IF_NEWER &&
        (prc = sq_stored_is_newer(inst, c, op, err)) != PERSISTOR_OK)
        return prc;
    if (op->kind != PERSISTOR_WRITE_INSERT_IF_ABSENT) {
        /* Replace in place (a new seq: the newest write), else insert. */
        sqlite3_stmt *st = c->st[SQ_ST_UPDATE];
        sq_bind_doc(c, st, op, ttl, has_ttl);
        prc = sq_step_put(st, &rc);
        if (prc < 0)
            return sq_error(inst, rc, err, "%s/%s: upsert", name, op->id);
        if (prc == PERSISTOR_EXISTS || sqlite3_changes(inst->db) > 0)
            return prc;
    }
    sqlite3_stmt *st = c->st[SQ_ST_INSERT];
    sq_bind_doc(c, st, op, ttl, has_ttl);
    prc = sq_step_put(st, &rc);
    if (prc < 0)
        return sq_error(inst, rc, err, "%s/%s: insert", name, op->id);
    return prc;
}

/* One transaction: every op answered and committed, or (on any error)
 * nothing applied and every result set to the error. */
int32_t sq_write(persistor_instance *inst, const char *collection, const persistor_write_op *ops,
                 uint32_t n, int32_t *results, persistor_error *err)
{
    sq_collection *c;
    int32_t prc = sq_collection_get(inst, collection, &c, err);
    if (prc == PERSISTOR_OK && n > 0) {
        int rc = sq_begin(inst);
        if (rc != SQLITE_OK)
            prc = sq_error(inst, rc, err, "%s: starting a batch of %u write(s)", collection, n);
        for (uint32_t i = 0; prc == PERSISTOR_OK && i < n; i++) {
            results[i] = sq_apply(inst, c, &ops[i], err);
            if (results[i] < 0)
                prc = results[i];
        }
        if (prc == PERSISTOR_OK && (rc = sq_commit(inst)) != SQLITE_OK)
            prc = sq_error(inst, rc, err, "%s: committing a batch of %u write(s)", collection, n);
        if (prc != PERSISTOR_OK)
            sq_rollback(inst);
    }
    if (prc != PERSISTOR_OK)
        for (uint32_t i = 0; i < n; i++)
            results[i] = prc;
    return prc;
}

/* ---- reads -------------------------------------------------------------- */

int32_t sq_get(persistor_instance *inst, const char *collection, const char *id,
               persistor_buffer *out, persistor_error *err)
{
    sq_collection *c;
    int32_t prc = sq_collection_get(inst, collection, &c, err);
    if (prc != PERSISTOR_OK)
        return prc;
    sqlite3_stmt *st = c->st[SQ_ST_GET];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        const void *doc = sqlite3_column_blob(st, 0);
        uint32_t len = (uint32_t)sqlite3_column_bytes(st, 0);
        if (doc == NULL && sqlite3_errcode(inst->db) == SQLITE_NOMEM)
            prc = inst->host->error_set(err, PERSISTOR_E_NOMEM, "%s/%s: out of memory",
                                        collection, id);
        else if (inst->host->buffer_set(out, doc, len) != PERSISTOR_OK)
            prc = inst->host->error_set(err, PERSISTOR_E_NOMEM,
                                        "%s/%s: out of memory for %u bytes", collection, id, len);
    } else if (rc == SQLITE_DONE) {
        prc = PERSISTOR_NOT_FOUND;
    } else {
        prc = sq_error(inst, rc, err, "%s/%s: get", collection, id);
    }
    sqlite3_reset(st);
    return prc;
}

int32_t sq_exists(persistor_instance *inst, const char *collection, const char *id,
                  persistor_error *err)
{
    sq_collection *c;
    int32_t prc = sq_collection_get(inst, collection, &c, err);
    if (prc != PERSISTOR_OK)
        return prc;
    sqlite3_stmt *st = c->st[SQ_ST_HAS];
    sqlite3_bind_text(st, 1, id, -1, SQLITE_STATIC);
    int rc = sqlite3_step(st);
    sqlite3_reset(st);
    if (rc == SQLITE_ROW)
        return PERSISTOR_OK;
    if (rc == SQLITE_DONE)
        return PERSISTOR_NOT_FOUND;
    return sq_error(inst, rc, err, "%s/%s: exists", collection, id);
}

/* count(*) and the sum of the BLOBs' lengths: one pass over the table that
 * reads record headers only (length() of a BLOB does not load it). */
int32_t sq_stats(persistor_instance *inst, const char *collection,
                 persistor_collection_stats *out, persistor_error *err)
{
    sq_collection *c;
    int32_t prc = sq_collection_get(inst, collection, &c, err);
    if (prc != PERSISTOR_OK)
        return prc;
    sqlite3_stmt *st = c->st[SQ_ST_STATS];
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW) {
        uint64_t items = (uint64_t)sqlite3_column_int64(st, 0);
        uint64_t bytes = (uint64_t)sqlite3_column_int64(st, 1);
        if (out->struct_size >= offsetof(persistor_collection_stats, item_count) + sizeof items)
            out->item_count = items;
        if (out->struct_size >= offsetof(persistor_collection_stats, total_size) + sizeof bytes)
            out->total_size = bytes;
        prc = PERSISTOR_OK;
    } else {
        prc = sq_error(inst, rc, err, "%s: stats", collection);
    }
    sqlite3_reset(st);
    return prc;
}

/* The ttl column holds host->doc_time_ms of the TTL field (NULL when it is
 * not a date), so expiry is one indexed DELETE. */
int32_t sq_expire(persistor_instance *inst, const char *collection, int64_t cutoff_ms,
                  uint64_t *removed, persistor_error *err)
{
    sq_collection *c;
    *removed = 0;
    int32_t prc = sq_collection_get(inst, collection, &c, err);
    if (prc != PERSISTOR_OK || c->spec->ttl_seconds <= 0 || c->spec->ttl_field == NULL)
        return prc;
    sqlite3_stmt *st = c->st[SQ_ST_EXPIRE];
    sqlite3_bind_int64(st, 1, cutoff_ms);
    int rc = sq_exec_stmt(st);
    if (rc != SQLITE_OK)
        return sq_error(inst, rc, err, "%s: expire", collection);
    *removed = (uint64_t)sqlite3_changes64(inst->db);
    return PERSISTOR_OK;
}
