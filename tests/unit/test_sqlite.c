/*
 * test_sqlite.c — what the sqlite adapter promises beyond the conformance
 * suite: records that survive a reopen, honest error classes (busy is
 * RETRY with nothing applied, a full disk is UNAVAILABLE saying so, a
 * damaged or foreign file is CORRUPT naming it), two processes writing one
 * file, index changes on a later open, and queries pushed down to SQL that
 * answer exactly what the memory adapter answers.
 *
 * The built sqlite.so (and memory.so, the reference) are loaded through the
 * loader as in production, from $PERSISTOR_BUILD_DIR/lib/persistor/.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <bson/bson.h>
#include <sqlite3.h>

#include "buffer.h"
#include "config.h"
#include "error.h"
#include "host.h"
#include "loader.h"
#include "profile.h"

typedef struct st_world {
    char sqlite_so[4096], memory_so[4096], dir[4096];
    loader_module *module, *memory_module;
    const persistor_adapter *api, *memory;
    persistor_host *host;
} st_world;

#define ST_MAX_OPTIONS 8

/* One instance with its own profile entry (which must outlive its config). */
typedef struct st_inst {
    st_world *w;
    const persistor_adapter *api;
    char keys[ST_MAX_OPTIONS][32], values[ST_MAX_OPTIONS][4096], paths[ST_MAX_OPTIONS][64];
    profile_option options[ST_MAX_OPTIONS];
    profile_adapter entry;
    persistor_config *config;
    persistor_instance *inst;
    persistor_collection_spec specs[8];
    size_t n_specs;
} st_inst;

static int st_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int group_setup(void **state)
{
    static st_world w;
    persistor_error err = {0};
    const char *build = getenv("PERSISTOR_BUILD_DIR");
    const char *tmp = getenv("TMPDIR");
    if (build == NULL) {
        print_error("PERSISTOR_BUILD_DIR is not set (run through ctest)\n");
        return -1;
    }
    snprintf(w.sqlite_so, sizeof w.sqlite_so, "%s/lib/persistor/sqlite.so", build);
    snprintf(w.memory_so, sizeof w.memory_so, "%s/lib/persistor/memory.so", build);
    snprintf(w.dir, sizeof w.dir, "%s/persistor-test-sqlite-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(w.dir) == NULL)
        return -1;
    if (loader_acquire("sqlite", w.sqlite_so, NULL, host_default(), &w.module, &err) != 0 ||
        loader_acquire("memory", w.memory_so, NULL, host_default(), &w.memory_module, &err) != 0) {
        print_error("loading adapters: %s\n", err.message);
        return -1;
    }
    w.api = loader_adapter(w.module);
    w.memory = loader_adapter(w.memory_module);
    w.host = host_new("sqlite#0", NULL, NULL);
    *state = &w;
    return w.host ? 0 : -1;
}

static int group_teardown(void **state)
{
    st_world *w = *state;
    host_free(w->host);
    loader_release(w->module);
    loader_release(w->memory_module);
    nftw(w->dir, st_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* A path in the test directory. */
static const char *st_file(st_world *w, const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", w->dir, name);
    return path;
}

/* Open `api` with options "k=v" (NULL-terminated).  Option i sits at
 * <test>:(i+3):9 in messages. */
static int32_t st_open_api(st_world *w, const persistor_adapter *api, st_inst *m,
                           const char *const *kv, persistor_error *err)
{
    memset(m, 0, sizeof *m);
    m->w = w;
    m->api = api;
    size_t n = 0;
    for (; kv != NULL && kv[n] != NULL && n < ST_MAX_OPTIONS; n++) {
        const char *eq = strchr(kv[n], '=');
        snprintf(m->keys[n], sizeof m->keys[n], "%.*s", (int)(eq - kv[n]), kv[n]);
        snprintf(m->values[n], sizeof m->values[n], "%s", eq + 1);
        snprintf(m->paths[n], sizeof m->paths[n], "test.adapters[0].%s", m->keys[n]);
        m->options[n] = (profile_option){m->keys[n], m->values[n], m->paths[n],
                                         {"<test>", (uint32_t)n + 3, 9}};
    }
    m->entry = (profile_adapter){(char *)api->name, NULL, "test.adapters[0]", {"<test>", 2, 7},
                                 {"<test>", 2, 13}, m->options, n, false};
    int32_t rc = config_new(&m->entry, api, "sqlite#0", &m->config, err);
    if (rc == PERSISTOR_OK)
        rc = api->open(w->host, m->config, &m->inst, err);
    if (rc != PERSISTOR_OK)
        m->inst = NULL;
    return rc;
}

static int32_t st_open(st_world *w, st_inst *m, const char *const *kv, persistor_error *err)
{
    return st_open_api(w, w->api, m, kv, err);
}

static void st_open_ok(st_world *w, st_inst *m, const char *file, const char *extra)
{
    char path[4200];
    persistor_error err = {0};
    snprintf(path, sizeof path, "file=%s", st_file(w, file));
    const char *kv[] = {path, extra, NULL};
    if (st_open(w, m, kv, &err) != PERSISTOR_OK)
        fail_msg("open %s: %s", path, err.message);
}

static void st_close(st_inst *m)
{
    if (m->inst)
        m->api->close(m->inst);
    m->inst = NULL;
    config_free(m->config);
    m->config = NULL;
}

static int32_t st_ensure_spec(st_inst *m, const char *coll, const persistor_index_spec *idx,
                              uint32_t n, persistor_error *err)
{
    assert_true(m->n_specs < sizeof m->specs / sizeof m->specs[0]);
    m->specs[m->n_specs] = (persistor_collection_spec){sizeof(persistor_collection_spec), coll,
                                                        idx, n, NULL, 0, NULL};
    return m->api->ensure_collection(m->inst, &m->specs[m->n_specs++], err);
}

static void st_ensure(st_inst *m, const char *coll, const persistor_index_spec *idx, uint32_t n)
{
    persistor_error err = {0};
    if (st_ensure_spec(m, coll, idx, n, &err) != PERSISTOR_OK)
        fail_msg("ensure %s: %s", coll, err.message);
}

static persistor_write_op st_op(uint32_t kind, const bson_t *doc)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "_id"));
    return (persistor_write_op){kind, doc->len, bson_iter_utf8(&it, NULL), bson_get_data(doc)};
}

/* One write of a JSON document; the op's result (the call must be OK). */
static int32_t st_put(st_inst *m, const char *coll, uint32_t kind, const char *json)
{
    bson_error_t berr;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &berr);
    if (doc == NULL)
        fail_msg("bad JSON %s: %s", json, berr.message);
    persistor_write_op op = st_op(kind, doc);
    persistor_error err = {0};
    int32_t result = -100;
    int32_t rc = m->api->write(m->inst, coll, &op, 1, &result, &err);
    bson_destroy(doc);
    if (rc != PERSISTOR_OK)
        fail_msg("write %s: %s", json, err.message);
    return result;
}

static int st_has(st_inst *m, const char *coll, const char *id)
{
    persistor_buffer buf = {0};
    persistor_error err = {0};
    int32_t rc = m->api->get(m->inst, coll, id, &buf, &err);
    buffer_free(&buf);
    if (rc != PERSISTOR_OK && rc != PERSISTOR_NOT_FOUND)
        fail_msg("get %s/%s: %s", coll, id, err.message);
    return rc == PERSISTOR_OK;
}

static uint64_t st_count(st_inst *m, const char *coll)
{
    persistor_collection_stats st = {sizeof st, 0, 0};
    persistor_error err = {0};
    if (m->api->stats(m->inst, coll, &st, &err) != PERSISTOR_OK)
        fail_msg("stats %s: %s", coll, err.message);
    return st.item_count;
}

/* The ids a query returns, joined by ','.  Returns the query's code. */
static int32_t st_ids(st_inst *m, const char *coll, const bson_t *filter, const bson_t *sort,
                      uint64_t skip, uint64_t limit, char *out, size_t cap)
{
    persistor_query q = {sizeof q, filter ? filter->len : 0, filter ? bson_get_data(filter) : NULL,
                         sort ? sort->len : 0, sort ? bson_get_data(sort) : NULL, skip, limit};
    persistor_cursor *cur;
    persistor_error err = {0};
    const uint8_t *doc;
    uint32_t len;
    int32_t rc = m->api->query(m->inst, coll, &q, &cur, &err);
    out[0] = '\0';
    if (rc != PERSISTOR_OK)
        return rc;
    while ((rc = m->api->cursor_next(cur, &doc, &len, &err)) == PERSISTOR_OK) {
        bson_t view;
        bson_iter_t it;
        assert_true(bson_init_static(&view, doc, len) && bson_iter_init_find(&it, &view, "_id"));
        size_t used = strlen(out);
        snprintf(out + used, cap - used, "%s%s", used ? "," : "", bson_iter_utf8(&it, NULL));
    }
    m->api->cursor_close(cur);
    return rc == PERSISTOR_ITER_END ? PERSISTOR_OK : rc;
}

/* ---- durability --------------------------------------------------------- */

static void test_a_record_written_with_synchronous_full_survives_reopen(void **state)
{
    st_inst m;
    st_open_ok(*state, &m, "durable.sqlite", "synchronous=full");
    st_ensure(&m, "c", NULL, 0);
    assert_int_equal(st_put(&m, "c", PERSISTOR_WRITE_INSERT_IF_ABSENT,
                            "{\"_id\": \"kept\", \"v\": 1}"), PERSISTOR_OK);
    st_close(&m);
    st_open_ok(*state, &m, "durable.sqlite", NULL);
    st_ensure(&m, "c", NULL, 0);
    assert_true(st_has(&m, "c", "kept"));
    persistor_error err = {0};
    assert_int_equal(m.api->exists(m.inst, "c", "kept", &err), PERSISTOR_OK);
    assert_int_equal(m.api->exists(m.inst, "c", "gone", &err), PERSISTOR_NOT_FOUND);
    st_close(&m);
}

static void test_the_parent_directory_is_created_private(void **state)
{
    st_inst m;
    struct stat sb;
    st_open_ok(*state, &m, "var/deeper/persistor.sqlite", NULL);
    st_close(&m);
    assert_int_equal(stat(st_file(*state, "var/deeper"), &sb), 0);
    assert_int_equal(sb.st_mode & 0777, 0700);
}

/* ---- errors --------------------------------------------------------------- */

static void test_a_held_write_lock_is_retry_and_nothing_applied(void **state)
{
    st_world *w = *state;
    st_inst m;
    sqlite3 *other;
    persistor_error err = {0};
    st_open_ok(w, &m, "busy.sqlite", "busy_timeout_ms=50");
    st_ensure(&m, "c", NULL, 0);
    assert_int_equal(sqlite3_open(st_file(w, "busy.sqlite"), &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    bson_t *a = BCON_NEW("_id", "a"), *b = BCON_NEW("_id", "b");
    persistor_write_op ops[2] = {st_op(PERSISTOR_WRITE_UPSERT, a),
                                 st_op(PERSISTOR_WRITE_UPSERT, b)};
    int32_t results[2] = {-100, -100};
    assert_int_equal(m.api->write(m.inst, "c", ops, 2, results, &err), PERSISTOR_E_RETRY);
    assert_int_equal(results[0], PERSISTOR_E_RETRY);
    assert_int_equal(results[1], PERSISTOR_E_RETRY);
    assert_non_null(strstr(err.message, "busy.sqlite"));
    assert_non_null(strstr(err.message, "nothing was applied"));
    /* Readers are not blocked by a writer in WAL mode. */
    assert_false(st_has(&m, "c", "a"));
    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(m.api->write(m.inst, "c", ops, 2, results, &err), PERSISTOR_OK);
    assert_int_equal(st_count(&m, "c"), 2);
    bson_destroy(a);
    bson_destroy(b);
    st_close(&m);
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

static void expect_corrupt(st_world *w, const char *file)
{
    st_inst m;
    char path[4200];
    persistor_error err = {0};
    snprintf(path, sizeof path, "file=%s", st_file(w, file));
    const char *kv[] = {path, NULL};
    assert_int_equal(st_open(w, &m, kv, &err), PERSISTOR_E_CORRUPT);
    assert_null(m.inst);
    if (strstr(err.message, st_file(w, file)) == NULL)
        fail_msg("the message does not name %s: %s", file, err.message);
    st_close(&m);
}

static void test_a_garbage_file_is_corrupt_naming_it(void **state)
{
    char junk[8192];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)(i * 131 + 7);
    write_file(st_file(*state, "garbage.sqlite"), junk, sizeof junk);
    expect_corrupt(*state, "garbage.sqlite");
    static const char text[] = "profiles:\n  not: a database\n";
    write_file(st_file(*state, "text.sqlite"), text, sizeof text - 1);
    expect_corrupt(*state, "text.sqlite");
}

/* A real SQLite database whose first page was later overwritten. */
static void test_a_damaged_database_is_corrupt_naming_it(void **state)
{
    st_inst m;
    st_open_ok(*state, &m, "damaged.sqlite", NULL);
    st_ensure(&m, "c", NULL, 0);
    st_put(&m, "c", PERSISTOR_WRITE_UPSERT, "{\"_id\": \"x\"}");
    st_close(&m);
    int fd = open(st_file(*state, "damaged.sqlite"), O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "this is not the header", 22, 0), 22);
    close(fd);
    expect_corrupt(*state, "damaged.sqlite");
}

static void test_another_applications_database_is_corrupt_and_left_alone(void **state)
{
    st_world *w = *state;
    sqlite3 *db;
    assert_int_equal(sqlite3_open(st_file(w, "foreign.sqlite"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE users(id INTEGER PRIMARY KEY, name TEXT);"
                                      "INSERT INTO users(name) VALUES ('ada')",
                                  NULL, NULL, NULL),
                     SQLITE_OK);
    sqlite3_close(db);
    expect_corrupt(w, "foreign.sqlite");
    /* Untouched: still one table, still in its own journal mode. */
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open(st_file(w, "foreign.sqlite"), &db), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "SELECT (SELECT count(*) FROM sqlite_schema),"
                                            " (SELECT journal_mode FROM pragma_journal_mode)",
                                        -1, &st, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 1);
    assert_string_equal((const char *)sqlite3_column_text(st, 1), "delete");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

/* max_page_count caps the file: SQLite itself answers SQLITE_FULL, as on a
 * full disk. */
static void test_a_full_disk_is_unavailable_saying_so_and_nothing_applied(void **state)
{
    enum { N = 40 };
    st_inst m;
    persistor_error err = {0};
    static char pad[8000];
    memset(pad, 'p', sizeof pad - 1);
    st_open_ok(*state, &m, "full.sqlite", "max_page_count=30");
    st_ensure(&m, "c", NULL, 0);
    bson_t *docs[N];
    persistor_write_op ops[N];
    int32_t results[N];
    for (int i = 0; i < N; i++) {
        char id[16];
        snprintf(id, sizeof id, "f%02d", i);
        docs[i] = BCON_NEW("_id", BCON_UTF8(id), "pad", BCON_UTF8(pad));
        ops[i] = st_op(PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[i]);
    }
    assert_int_equal(m.api->write(m.inst, "c", ops, N, results, &err), PERSISTOR_E_UNAVAILABLE);
    for (int i = 0; i < N; i++)
        assert_int_equal(results[i], PERSISTOR_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "disk full"));
    assert_non_null(strstr(err.message, "full.sqlite"));
    assert_int_equal(st_count(&m, "c"), 0);
    /* A small write still fits. */
    assert_int_equal(m.api->write(m.inst, "c", ops, 1, results, &err), PERSISTOR_OK);
    assert_int_equal(st_count(&m, "c"), 1);
    for (int i = 0; i < N; i++)
        bson_destroy(docs[i]);
    st_close(&m);
}

static void test_a_bad_synchronous_value_is_a_config_error_with_its_place(void **state)
{
    st_inst m;
    persistor_error err = {0};
    char path[4200];
    snprintf(path, sizeof path, "file=%s", st_file(*state, "sync.sqlite"));
    const char *kv[] = {path, "synchronous=sometimes", NULL};
    assert_int_equal(st_open(*state, &m, kv, &err), PERSISTOR_E_CONFIG);
    assert_null(m.inst);
    assert_non_null(strstr(err.message, "<test>:4:9: test.adapters[0].synchronous: must be off, "
                                        "normal, full or extra"));
    st_close(&m);
}

/* ---- unique indexes ---------------------------------------------------- */

static const persistor_index_key email_key[] = {{"email", 1}};
static const persistor_index_spec email_unique[] = {
    {"email_1", email_key, 1, PERSISTOR_INDEX_UNIQUE}};

static void test_a_unique_index_violation_is_exists_for_that_op_only(void **state)
{
    st_inst m;
    persistor_error err = {0};
    st_open_ok(*state, &m, "unique.sqlite", NULL);
    st_ensure(&m, "u", email_unique, 1);
    bson_t *a = BCON_NEW("_id", "a", "email", "x@y"), *b = BCON_NEW("_id", "b", "email", "x@y"),
           *c = BCON_NEW("_id", "c", "email", "z@y");
    persistor_write_op ops[3] = {st_op(PERSISTOR_WRITE_INSERT_IF_ABSENT, a),
                                 st_op(PERSISTOR_WRITE_UPSERT, b),
                                 st_op(PERSISTOR_WRITE_INSERT_IF_ABSENT, c)};
    int32_t results[3];
    assert_int_equal(m.api->write(m.inst, "u", ops, 3, results, &err), PERSISTOR_OK);
    assert_int_equal(results[0], PERSISTOR_OK);
    assert_int_equal(results[1], PERSISTOR_EXISTS);
    assert_int_equal(results[2], PERSISTOR_OK);
    assert_false(st_has(&m, "u", "b"));
    /* An upsert of c onto a's key is refused and leaves c as it was. */
    assert_int_equal(st_put(&m, "u", PERSISTOR_WRITE_UPSERT,
                            "{\"_id\": \"c\", \"email\": \"x@y\"}"), PERSISTOR_EXISTS);
    char got[64];
    bson_t *f = BCON_NEW("email", "z@y");
    assert_int_equal(st_ids(&m, "u", f, NULL, 0, 0, got, sizeof got), PERSISTOR_OK);
    assert_string_equal(got, "c");
    bson_destroy(f);
    bson_destroy(a);
    bson_destroy(b);
    bson_destroy(c);
    st_close(&m);
}

static void test_reopen_with_a_unique_index_the_data_breaks_is_refused_unchanged(void **state)
{
    st_inst m;
    persistor_error err = {0};
    st_open_ok(*state, &m, "reindex.sqlite", NULL);
    st_ensure(&m, "u", NULL, 0);
    st_put(&m, "u", PERSISTOR_WRITE_UPSERT, "{\"_id\": \"a\", \"email\": \"dup@x\"}");
    st_put(&m, "u", PERSISTOR_WRITE_UPSERT, "{\"_id\": \"b\", \"email\": \"dup@x\"}");
    st_close(&m);
    st_open_ok(*state, &m, "reindex.sqlite", NULL);
    assert_int_equal(st_ensure_spec(&m, "u", email_unique, 1, &err), PERSISTOR_E_CONFIG);
    assert_non_null(strstr(err.message, "email_1"));
    assert_non_null(strstr(err.message, "documents a and b"));
    /* Nothing changed: without the index, a third duplicate is fine. */
    st_ensure(&m, "u", NULL, 0);
    assert_int_equal(st_put(&m, "u", PERSISTOR_WRITE_UPSERT,
                            "{\"_id\": \"c\", \"email\": \"dup@x\"}"), PERSISTOR_OK);
    st_close(&m);
    /* Fix the data; the index then builds, survives reopen, and holds. */
    st_open_ok(*state, &m, "reindex.sqlite", NULL);
    st_ensure(&m, "u", NULL, 0);
    st_put(&m, "u", PERSISTOR_WRITE_UPSERT, "{\"_id\": \"b\", \"email\": \"b@x\"}");
    st_put(&m, "u", PERSISTOR_WRITE_UPSERT, "{\"_id\": \"c\", \"email\": \"c@x\"}");
    st_close(&m);
    st_open_ok(*state, &m, "reindex.sqlite", NULL);
    st_ensure(&m, "u", email_unique, 1);
    assert_int_equal(st_put(&m, "u", PERSISTOR_WRITE_UPSERT,
                            "{\"_id\": \"d\", \"email\": \"b@x\"}"), PERSISTOR_EXISTS);
    st_close(&m);
    st_open_ok(*state, &m, "reindex.sqlite", NULL);
    st_ensure(&m, "u", email_unique, 1);
    assert_int_equal(st_put(&m, "u", PERSISTOR_WRITE_UPSERT,
                            "{\"_id\": \"d\", \"email\": \"c@x\"}"), PERSISTOR_EXISTS);
    st_ensure(&m, "u", NULL, 0); /* dropped */
    assert_int_equal(st_put(&m, "u", PERSISTOR_WRITE_UPSERT,
                            "{\"_id\": \"d\", \"email\": \"c@x\"}"), PERSISTOR_OK);
    st_close(&m);
}

/* Collection names are data: quotes, case and odd bytes stay apart. */
static void test_collection_names_are_exact_and_never_sql(void **state)
{
    static const char *const names[] = {"users", "Users", "a\"b", "x'; DROP TABLE c;--",
                                        "sp ace", "\xc3\xa9t\xc3\xa9"};
    enum { N = sizeof names / sizeof names[0] };
    st_inst m;
    st_open_ok(*state, &m, "names.sqlite", NULL);
    for (size_t i = 0; i < N; i++) {
        char json[64];
        st_ensure(&m, names[i], NULL, 0);
        snprintf(json, sizeof json, "{\"_id\": \"only-%zu\"}", i);
        assert_int_equal(st_put(&m, names[i], PERSISTOR_WRITE_INSERT_IF_ABSENT, json),
                         PERSISTOR_OK);
    }
    for (size_t i = 0; i < N; i++) {
        assert_int_equal(st_count(&m, names[i]), 1);
        char id[16];
        snprintf(id, sizeof id, "only-%zu", i);
        assert_true(st_has(&m, names[i], id));
    }
    st_close(&m);
}

/* ---- two processes ------------------------------------------------------- */

static void st_child_writes(st_world *w, int who)
{
    enum { BATCH = 50 };
    st_inst m;
    persistor_error err = {0};
    st_open_ok(w, &m, "shared.sqlite", "busy_timeout_ms=10000");
    st_ensure(&m, "c", NULL, 0);
    for (int base = 0; base < 2000; base += BATCH) {
        bson_t *docs[BATCH];
        persistor_write_op ops[BATCH];
        int32_t results[BATCH];
        for (int i = 0; i < BATCH; i++) {
            char id[32];
            snprintf(id, sizeof id, "p%d-%04d", who, base + i);
            docs[i] = BCON_NEW("_id", BCON_UTF8(id), "who", BCON_INT32(who));
            ops[i] = st_op(PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[i]);
        }
        int32_t rc;
        int tries = 0;
        /* The host owns retries; here the test is the host. */
        while ((rc = m.api->write(m.inst, "c", ops, BATCH, results, &err)) == PERSISTOR_E_RETRY &&
               ++tries < 100)
            nanosleep(&(struct timespec){0, 1000000}, NULL);
        for (int i = 0; i < BATCH; i++)
            bson_destroy(docs[i]);
        if (rc != PERSISTOR_OK) {
            fprintf(stderr, "child %d: %s\n", who, err.message);
            _exit(1);
        }
    }
    st_close(&m);
    _exit(0);
}

static void test_two_processes_write_one_file_at_once(void **state)
{
    st_world *w = *state;
    st_inst m;
    pid_t pids[2];
    /* Create the store before the race, and close it: a connection must
     * not cross fork() (each child opens its own). */
    st_open_ok(w, &m, "shared.sqlite", NULL);
    st_ensure(&m, "c", NULL, 0);
    st_close(&m);
    for (int i = 0; i < 2; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0)
            st_child_writes(w, i);
    }
    for (int i = 0; i < 2; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    st_open_ok(w, &m, "shared.sqlite", NULL);
    st_ensure(&m, "c", NULL, 0);
    assert_int_equal(st_count(&m, "c"), 4000);
    uint64_t n = 0;
    persistor_error err = {0};
    bson_t *f = BCON_NEW("who", BCON_INT32(1));
    assert_int_equal(m.api->count(m.inst, "c", bson_get_data(f), f->len, &n, &err), 0);
    assert_int_equal(n, 2000);
    bson_destroy(f);
    st_close(&m);
}

/* ---- push-down answers what memory answers --------------------------- */

static const persistor_index_key xc_ts[] = {{"xcId", 1}, {"ts", 1}};
static const persistor_index_key n_desc[] = {{"n", -1}};
static const persistor_index_key sub_x[] = {{"sub.x", 1}, {"g", -1}};
static const persistor_index_spec qidx[] = {
    {"xcId_1_ts_1", xc_ts, 2, 0},
    {"n_-1", n_desc, 1, 0},
    {"sub.x_1_g_-1", sub_x, 2, 0},
};

static const char *const qdocs[] = {
    "{'_id': 'a1', 'xcId': 'A', 'ts': {'$date': 3000}, 'n': 1, 'sub': {'x': 1}, 'g': 'p'}",
    "{'_id': 'a2', 'xcId': 'A', 'ts': {'$date': 1000}, 'n': 2.5, 'sub': {'x': 2}, 'g': 'q'}",
    "{'_id': 'a3', 'xcId': 'A', 'ts': {'$date': 2000}, 'n': {'$numberLong': '2'}, 'g': 'p'}",
    "{'_id': 'a4', 'xcId': 'A', 'ts': {'$date': 2000}, 'n': null, 'sub': [{'x': 1}, {'x': 9}]}",
    "{'_id': 'b1', 'xcId': 'B', 'ts': {'$date': 500}, 'n': -4, 'sub': {'x': 'one'}}",
    "{'_id': 'b2', 'xcId': ['A', 'B'], 'ts': {'$date': 700}, 'n': [1, 30], 'sub': {'x': [1, 2]}}",
    "{'_id': 'b3', 'xcId': 'AB', 'ts': 5, 'n': '2', 'sub': {'y': 1}}",
    "{'_id': 'c1', 'ts': {'$date': 100}, 'n': 7, 'sub': {'x': null}, 'g': 'r'}",
    "{'_id': 'c2', 'xcId': null, 'ts': [{'$date': 50}, {'$date': 5000}], 'n': 30}",
    "{'_id': 'c3', 'xcId': 'A', 'ts': [{'$date': 2500}], 'n': 2, 'sub': [1, 2], 'g': 'q'}",
    "{'_id': 'c4', 'xcId': 'A\\u0000', 'ts': {'$date': 2000}, 'n': 1.0, 'sub': {'x': 2}}",
    "{'_id': 'c5', 'xcId': 'A', 'ts': null, 'n': true}",
    "{'_id': 'c6', 'xcId': 'A', 'n': {'$numberLong': '9007199254740993'}}",
};

static const char *const qfilters[] = {
    "{'xcId': 'A'}",
    "{'xcId': 'B'}",
    "{'xcId': null}",
    "{'xcId': {'$eq': 'A'}}",
    "{'xcId': 'A', 'ts': {'$date': 2000}}",
    "{'xcId': 'A', 'ts': {'$gte': {'$date': 1000}, '$lt': {'$date': 3000}}}",
    "{'xcId': 'A', 'ts': {'$gt': {'$date': 2000}}}",
    "{'xcId': 'A', 'ts': {'$lte': {'$date': 2000}}}",
    "{'xcId': {'$gt': 'A'}}",
    "{'xcId': {'$gte': 'A', '$lt': 'B'}}",
    "{'xcId': {'$lt': 'B'}}",
    "{'n': 2}",
    "{'n': 1}",
    "{'n': {'$gt': 1}}",
    "{'n': {'$gte': 2, '$lte': 30}}",
    "{'n': {'$lt': 2}}",
    "{'n': {'$lt': '3'}}",
    "{'n': null}",
    "{'n': {'$gt': 5, '$lt': 'z'}}",
    "{'n': {'$gte': {'$numberLong': '9007199254740992'}}}",
    "{'n': true}",
    "{'sub.x': 1}",
    "{'sub.x': 2, 'g': 'q'}",
    "{'sub.x': null}",
    "{'sub.x': {'$gte': 1}}",
    "{'sub.x': 1, 'g': {'$lt': 'q'}}",
    "{'_id': 'a3'}",
    "{'_id': 'a3', 'n': 1}",
    "{'_id': 'zz'}",
    "{'$and': [{'xcId': 'A'}, {'n': {'$gt': 1}}]}",
    "{'$or': [{'xcId': 'B'}, {'n': 7}]}",
    "{'xcId': 'A', 'n': {'$ne': 2}}",
    "{'ts': {'$gt': {'$date': 0}}}",
    "{}",
};

static const char *const qsorts[] = {NULL, "{'ts': 1, '_id': 1}", "{'n': -1}", "{'xcId': 1}",
                                     "{'sub.x': 1, 'ts': -1}"};

static bson_t *st_json(const char *single_quoted)
{
    char text[1024];
    bson_error_t berr;
    size_t i = 0;
    for (; single_quoted[i] != '\0' && i + 1 < sizeof text; i++)
        text[i] = single_quoted[i] == '\'' ? '"' : single_quoted[i];
    text[i] = '\0';
    bson_t *b = bson_new_from_json((const uint8_t *)text, -1, &berr);
    if (b == NULL)
        fail_msg("bad JSON %s: %s", text, berr.message);
    return b;
}

static void st_load(st_inst *m, const char *coll, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        bson_t *doc = st_json(qdocs[i]);
        persistor_write_op op = st_op(PERSISTOR_WRITE_UPSERT, doc);
        persistor_error err = {0};
        int32_t result;
        if (m->api->write(m->inst, coll, &op, 1, &result, &err) != PERSISTOR_OK ||
            result != PERSISTOR_OK)
            fail_msg("load %s: %s", qdocs[i], err.message);
        bson_destroy(doc);
    }
}

static void test_pushed_down_queries_answer_what_memory_answers(void **state)
{
    st_world *w = *state;
    enum { ND = sizeof qdocs / sizeof qdocs[0] };
    st_inst lite, mem;
    persistor_error err = {0};
    static const char *const none[] = {NULL};
    st_open_ok(w, &lite, "query.sqlite", NULL);
    assert_int_equal(st_open_api(w, w->memory, &mem, none, &err), PERSISTOR_OK);
    /* Indexes declared before and (on a second collection) after the data,
     * so keys computed by ensure are checked too. */
    st_ensure(&lite, "q", qidx, 3);
    st_ensure(&mem, "q", qidx, 3);
    st_ensure(&lite, "late", NULL, 0);
    st_ensure(&mem, "late", NULL, 0);
    st_load(&lite, "q", 0, ND);
    st_load(&mem, "q", 0, ND);
    st_load(&lite, "late", 0, ND);
    st_load(&mem, "late", 0, ND);
    st_load(&lite, "q", 2, 4); /* rewrites move to the end of write order */
    st_load(&mem, "q", 2, 4);
    st_ensure(&lite, "late", qidx, 3);
    st_ensure(&mem, "late", qidx, 3);
    static const char *const colls[] = {"q", "late"};
    static const uint64_t pages[][2] = {{0, 0}, {1, 2}, {0, 1}};
    char want[1024], got[1024];
    size_t checked = 0;
    for (size_t ci = 0; ci < 2; ci++)
        for (size_t f = 0; f < sizeof qfilters / sizeof qfilters[0]; f++)
            for (size_t s = 0; s < sizeof qsorts / sizeof qsorts[0]; s++)
                for (size_t pg = 0; pg < 3; pg++) {
                    bson_t *filter = st_json(qfilters[f]);
                    bson_t *sort = qsorts[s] ? st_json(qsorts[s]) : NULL;
                    int32_t a = st_ids(&mem, colls[ci], filter, sort, pages[pg][0],
                                       pages[pg][1], want, sizeof want);
                    int32_t b = st_ids(&lite, colls[ci], filter, sort, pages[pg][0],
                                       pages[pg][1], got, sizeof got);
                    if (a != b || strcmp(want, got) != 0)
                        fail_msg("%s: filter %s sort %s skip %llu limit %llu:\n  memory [%s] "
                                 "(%d)\n  sqlite [%s] (%d)",
                                 colls[ci], qfilters[f], qsorts[s] ? qsorts[s] : "-",
                                 (unsigned long long)pages[pg][0],
                                 (unsigned long long)pages[pg][1], want, a, got, b);
                    uint64_t n_mem = 0, n_lite = 0;
                    assert_int_equal(mem.api->count(mem.inst, colls[ci], bson_get_data(filter),
                                                    filter->len, &n_mem, &err), 0);
                    assert_int_equal(lite.api->count(lite.inst, colls[ci],
                                                     bson_get_data(filter), filter->len,
                                                     &n_lite, &err), 0);
                    assert_int_equal(n_mem, n_lite);
                    checked++;
                    bson_destroy(filter);
                    if (sort)
                        bson_destroy(sort);
                }
    print_message("%zu queries answered as memory does\n", checked);
    st_close(&lite);
    st_close(&mem);
}

/* The fast paths of an index plan (sqlite_cursor.c, sqlite_query.c): no
 * matcher on rows of an exact equality prefix, rows streamed in the sort's
 * order (ties on the key sorted by the sorter), the level-0 array probe
 * skipped while known empty.  They hold on array-free data and must give
 * way, with the same answers as memory, once arrays are written — by this
 * instance or by another connection to the file. */
static const char *const fdocs[] = {
    "{'_id': 'k5', 'xcId': 'A', 'ts': {'$date': 2000}, 'n': 1, 'sub': {'x': 1}, 'g': 'p'}",
    "{'_id': 'k1', 'xcId': 'A', 'ts': {'$date': 1000}, 'n': 2, 'sub': {'x': 2}, 'g': 'q'}",
    "{'_id': 'k3', 'xcId': 'A', 'ts': {'$date': 2000}, 'n': 3, 'sub': {'x': 1}, 'g': 'r'}",
    "{'_id': 'k2', 'xcId': 'B', 'ts': {'$date': 1500}, 'n': 4}",
    "{'_id': 'k4', 'xcId': 'A', 'n': 5}",
    ("{'_id': 'k0', 'xcId': 'A', 'ts': {'$date': 2000}, 'n': {'$numberLong': '3'},"
     " 'sub': {'x': 1}, 'g': 'p'}"),
    "{'_id': 'k6', 'xcId': 'AB', 'ts': {'$date': 500}, 'n': 1.0, 'sub': {'x': 1}, 'g': 'q'}",
    "{'_id': 'k7', 'xcId': 'A', 'ts': 3, 'n': -1, 'sub': {'x': 1.0}, 'g': 'p'}",
    /* written later, arrays at every level: */
    "{'_id': 'm4', 'xcId': ['B', 'A'], 'ts': {'$date': 1}, 'n': 3}",
    "{'_id': 'm2', 'xcId': 'A', 'ts': [{'$date': 2500}, {'$date': 1500}], 'n': 2}",
    "{'_id': 'm5', 'xcId': 'A', 'ts': {'$date': 2000}, 'sub': {'x': [1]}, 'g': 'z'}",
    "{'_id': 'm3', 'xcId': 'A', 'ts': {'$date': 2000}, 'sub': [{'x': 1}], 'g': 'p'}",
    "{'_id': 'm1', 'xcId': ['A', 'C'], 'ts': {'$date': 100}, 'n': [3, 0]}",
};
enum { N_FDOCS_CLEAN = 8 };

static const char *const ffilters[] = {
    "{'xcId': 'A'}",
    "{'xcId': 'C'}",
    "{'xcId': 'A', 'ts': {'$date': 2000}}",
    "{'ts': {'$date': 2000}, 'xcId': 'A'}",
    "{'xcId': 'A', 'ts': {'$gte': {'$date': 1000}}}",
    "{'xcId': 'A', 'ts': {'$lt': {'$date': 2000}}}",
    "{'xcId': 'A', 'n': {'$gt': 1}}",
    "{'xcId': {'$eq': 'A'}}",
    "{'sub.x': 1}",
    "{'sub.x': 1, 'g': 'p'}",
    "{'sub.x': {'$gte': 1}}",
    "{'n': {'$lt': 3}}",
    "{'n': 3}",
    "{'$and': [{'xcId': 'A'}]}",
};

static const char *const fsorts[] = {
    NULL,          "{'ts': 1, '_id': 1}", "{'ts': -1, '_id': -1}", "{'xcId': 1, 'ts': 1}",
    "{'ts': 1}",   "{'ts': 1, '_id': -1}", "{'g': -1, '_id': 1}",  "{'n': -1, '_id': 1}",
    "{'_id': 1}",  "{'ts': 1.0, 'n': 1}",  "{'ts': -1}",            "{'sub.x': 1, 'g': -1, '_id': 1}",
};

static void st_load_docs(st_inst *m, const char *coll, const char *const *docs, size_t from,
                         size_t to)
{
    for (size_t i = from; i < to; i++) {
        bson_t *doc = st_json(docs[i]);
        persistor_write_op op = st_op(PERSISTOR_WRITE_UPSERT, doc);
        persistor_error err = {0};
        int32_t result;
        if (m->api->write(m->inst, coll, &op, 1, &result, &err) != PERSISTOR_OK ||
            result != PERSISTOR_OK)
            fail_msg("load %s: %s", docs[i], err.message);
        bson_destroy(doc);
    }
}

/* Every filter x sort x page, and count, answered by `lite` as by `mem`. */
static size_t st_same_answers(st_inst *lite, st_inst *mem, const char *coll, const char *stage)
{
    static const uint64_t pages[][2] = {{0, 0}, {1, 2}, {0, 1}};
    char want[1024], got[1024];
    persistor_error err = {0};
    size_t checked = 0;
    for (size_t f = 0; f < sizeof ffilters / sizeof ffilters[0]; f++)
        for (size_t s = 0; s < sizeof fsorts / sizeof fsorts[0]; s++)
            for (size_t pg = 0; pg < 3; pg++) {
                bson_t *filter = st_json(ffilters[f]);
                bson_t *sort = fsorts[s] ? st_json(fsorts[s]) : NULL;
                int32_t a = st_ids(mem, coll, filter, sort, pages[pg][0], pages[pg][1], want,
                                   sizeof want);
                int32_t b = st_ids(lite, coll, filter, sort, pages[pg][0], pages[pg][1], got,
                                   sizeof got);
                if (a != b || strcmp(want, got) != 0)
                    fail_msg("%s: filter %s sort %s skip %llu limit %llu:\n  memory [%s] "
                             "(%d)\n  sqlite [%s] (%d)",
                             stage, ffilters[f], fsorts[s] ? fsorts[s] : "-",
                             (unsigned long long)pages[pg][0], (unsigned long long)pages[pg][1],
                             want, a, got, b);
                uint64_t n_mem = 0, n_lite = 0;
                assert_int_equal(mem->api->count(mem->inst, coll, bson_get_data(filter),
                                                 filter->len, &n_mem, &err), 0);
                assert_int_equal(lite->api->count(lite->inst, coll, bson_get_data(filter),
                                                  filter->len, &n_lite, &err), 0);
                if (n_mem != n_lite)
                    fail_msg("%s: count %s: memory %llu, sqlite %llu", stage, ffilters[f],
                             (unsigned long long)n_mem, (unsigned long long)n_lite);
                checked++;
                bson_destroy(filter);
                if (sort)
                    bson_destroy(sort);
            }
    return checked;
}

static void test_fast_index_paths_answer_what_memory_answers_before_and_after_arrays(void **state)
{
    st_world *w = *state;
    enum { ND = sizeof fdocs / sizeof fdocs[0] };
    st_inst lite, other, mem;
    persistor_error err = {0};
    static const char *const none[] = {NULL};
    char stage[64];
    size_t checked = 0;
    st_open_ok(w, &lite, "fast.sqlite", NULL);
    st_open_ok(w, &other, "fast.sqlite", NULL);
    assert_int_equal(st_open_api(w, w->memory, &mem, none, &err), PERSISTOR_OK);
    st_ensure(&lite, "f", qidx, 3);
    st_ensure(&other, "f", qidx, 3);
    st_ensure(&mem, "f", qidx, 3);
    st_load_docs(&lite, "f", fdocs, 0, N_FDOCS_CLEAN);
    st_load_docs(&mem, "f", fdocs, 0, N_FDOCS_CLEAN);
    checked += st_same_answers(&lite, &mem, "f", "array-free"); /* the probes found empty */
    /* An array written by another connection: the first instance's
     * "level-0 probe empty" must not outlive that commit. */
    st_load_docs(&other, "f", fdocs, N_FDOCS_CLEAN, N_FDOCS_CLEAN + 1);
    st_load_docs(&mem, "f", fdocs, N_FDOCS_CLEAN, N_FDOCS_CLEAN + 1);
    checked += st_same_answers(&lite, &mem, "f", "after another connection's array");
    /* Rewrite it without the array (from the other connection), query (the
     * probe is empty again), then arrays one by one from this instance. */
    st_load_docs(&other, "f", fdocs, 0, 1);
    st_put(&other, "f", PERSISTOR_WRITE_DELETE, "{\"_id\": \"m4\"}");
    persistor_write_op del = {PERSISTOR_WRITE_DELETE, 0, "m4", NULL};
    int32_t result;
    assert_int_equal(mem.api->write(mem.inst, "f", &del, 1, &result, &err), PERSISTOR_OK);
    st_load_docs(&mem, "f", fdocs, 0, 1);
    checked += st_same_answers(&lite, &mem, "f", "array removed");
    for (size_t i = N_FDOCS_CLEAN + 1; i < ND; i++) {
        st_load_docs(&lite, "f", fdocs, i, i + 1);
        st_load_docs(&mem, "f", fdocs, i, i + 1);
        snprintf(stage, sizeof stage, "after writing %zu", i);
        checked += st_same_answers(&lite, &mem, "f", stage);
    }
    /* Cursors open at once, one closed in between (its buffers are reused
     * by the next query while the other is still read). */
    char a[256], b[256];
    bson_t *filter = st_json("{'xcId': 'A'}");
    bson_t *sort = st_json("{'ts': 1, '_id': 1}");
    persistor_query q = {sizeof q, filter->len, bson_get_data(filter), sort->len,
                         bson_get_data(sort), 0, 0};
    persistor_cursor *c1, *c2;
    const uint8_t *doc;
    uint32_t len;
    assert_int_equal(lite.api->query(lite.inst, "f", &q, &c1, &err), PERSISTOR_OK);
    assert_int_equal(lite.api->query(lite.inst, "f", &q, &c2, &err), PERSISTOR_OK);
    assert_int_equal(lite.api->cursor_next(c1, &doc, &len, &err), PERSISTOR_OK);
    lite.api->cursor_close(c1);
    assert_int_equal(st_ids(&lite, "f", filter, NULL, 0, 0, a, sizeof a), PERSISTOR_OK);
    assert_int_equal(st_ids(&mem, "f", filter, NULL, 0, 0, b, sizeof b), PERSISTOR_OK);
    assert_string_equal(a, b);
    assert_int_equal(st_ids(&mem, "f", filter, sort, 0, 0, b, sizeof b), PERSISTOR_OK);
    a[0] = '\0';
    while (lite.api->cursor_next(c2, &doc, &len, &err) == PERSISTOR_OK) {
        bson_t view;
        bson_iter_t it;
        assert_true(bson_init_static(&view, doc, len) && bson_iter_init_find(&it, &view, "_id"));
        snprintf(a + strlen(a), sizeof a - strlen(a), "%s%s", a[0] ? "," : "",
                 bson_iter_utf8(&it, NULL));
    }
    lite.api->cursor_close(c2);
    assert_string_equal(a, b);
    bson_destroy(filter);
    bson_destroy(sort);
    print_message("%zu queries answered as memory does\n", checked);
    st_close(&other);
    st_close(&lite);
    st_close(&mem);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_a_record_written_with_synchronous_full_survives_reopen),
        cmocka_unit_test(test_the_parent_directory_is_created_private),
        cmocka_unit_test(test_a_held_write_lock_is_retry_and_nothing_applied),
        cmocka_unit_test(test_a_garbage_file_is_corrupt_naming_it),
        cmocka_unit_test(test_a_damaged_database_is_corrupt_naming_it),
        cmocka_unit_test(test_another_applications_database_is_corrupt_and_left_alone),
        cmocka_unit_test(test_a_full_disk_is_unavailable_saying_so_and_nothing_applied),
        cmocka_unit_test(test_a_bad_synchronous_value_is_a_config_error_with_its_place),
        cmocka_unit_test(test_a_unique_index_violation_is_exists_for_that_op_only),
        cmocka_unit_test(test_reopen_with_a_unique_index_the_data_breaks_is_refused_unchanged),
        cmocka_unit_test(test_collection_names_are_exact_and_never_sql),
        cmocka_unit_test(test_two_processes_write_one_file_at_once),
        cmocka_unit_test(test_pushed_down_queries_answer_what_memory_answers),
        cmocka_unit_test(test_fast_index_paths_answer_what_memory_answers_before_and_after_arrays),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
