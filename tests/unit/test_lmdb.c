/*
 * test_lmdb.c — what the lmdb adapter promises beyond the conformance
 * suite: a map that grows by itself up to max_map_size, keys longer than
 * LMDB's limit, data that survives a reopen, two writer processes, stale
 * readers cleared, damaged files refused, option errors with their place
 * in the profile, and push-down answers identical to a full scan.
 *
 * The built lmdb.so is loaded through the loader, as in production, from
 * $PERSISTOR_BUILD_DIR/lib/persistor/lmdb.so (ctest sets the variable).
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, kill */

#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include <bson/bson.h>
#include <lmdb.h>

#include "buffer.h"
#include "config.h"
#include "error.h"
#include "host.h"
#include "loader.h"
#include "log.h"
#include "profile.h"

typedef struct lt_world {
    char so[4096];
    char dir[4096]; /* a fresh directory per test */
    char env[4200]; /* dir/store.lmdb */
    loader_module *module;
    const persistor_adapter *api;
    persistor_host *host;
} lt_world;

#define LT_MAX_OPTS 6

typedef struct lt_inst {
    lt_world *w;
    char keys[LT_MAX_OPTS][32], values[LT_MAX_OPTS][4200];
    profile_option options[LT_MAX_OPTS];
    profile_adapter entry;
    persistor_config *config;
    persistor_instance *inst;
    persistor_collection_spec specs[8];
    size_t n_specs;
} lt_inst;

static int lt_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int group_setup(void **state)
{
    static lt_world w;
    persistor_error err = {0};
    const char *build = getenv("PERSISTOR_BUILD_DIR");
    if (build == NULL) {
        print_error("PERSISTOR_BUILD_DIR is not set (run through ctest)\n");
        return -1;
    }
    snprintf(w.so, sizeof w.so, "%s/lib/persistor/lmdb.so", build);
    if (loader_acquire("lmdb", w.so, NULL, host_default(), &w.module, &err) != 0) {
        print_error("loading %s: %s\n", w.so, err.message);
        return -1;
    }
    w.api = loader_adapter(w.module);
    w.host = host_new("lmdb#0", NULL, NULL);
    *state = &w;
    return w.host ? 0 : -1;
}

static int group_teardown(void **state)
{
    lt_world *w = *state;
    host_free(w->host);
    loader_release(w->module);
    return 0;
}

static int test_setup(void **state)
{
    lt_world *w = *state;
    const char *tmp = getenv("TMPDIR");
    snprintf(w->dir, sizeof w->dir, "%s/test_lmdb-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(w->dir) == NULL)
        return -1;
    snprintf(w->env, sizeof w->env, "%s/store.lmdb", w->dir);
    return 0;
}

static int test_teardown(void **state)
{
    lt_world *w = *state;
    nftw(w->dir, lt_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* Open with "key=value" options (path is added unless given). */
static int32_t lt_open(lt_world *w, lt_inst *m, const char *const *opts, persistor_error *err)
{
    size_t n = 0;
    int has_path = 0;
    memset(m, 0, sizeof *m);
    m->w = w;
    for (; opts != NULL && opts[n] != NULL && n < LT_MAX_OPTS - 1; n++) {
        const char *eq = strchr(opts[n], '=');
        snprintf(m->keys[n], sizeof m->keys[n], "%.*s", (int)(eq - opts[n]), opts[n]);
        snprintf(m->values[n], sizeof m->values[n], "%s", eq + 1);
        has_path |= strcmp(m->keys[n], "directory") == 0;
    }
    if (!has_path) {
        snprintf(m->keys[n], sizeof m->keys[n], "directory");
        snprintf(m->values[n], sizeof m->values[n], "%s", w->env);
        n++;
    }
    for (size_t i = 0; i < n; i++)
        m->options[i] = (profile_option){m->keys[i], m->values[i], "test.adapters[0].x",
                                         {"<test>", (uint32_t)(3 + i), 18}};
    m->entry = (profile_adapter){"lmdb", w->so, "test.adapters[0]", {"<test>", 2, 7},
                                 {"<test>", 2, 13}, m->options, n, false};
    int32_t rc = config_new(&m->entry, w->api, "lmdb#0", &m->config, err);
    if (rc == PERSISTOR_OK)
        rc = w->api->open(w->host, m->config, &m->inst, err);
    return rc;
}

static void lt_open_ok(lt_world *w, lt_inst *m, const char *const *opts)
{
    persistor_error err = {0};
    int32_t rc = lt_open(w, m, opts, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("open: %d: %s", rc, err.message);
}

static void lt_close(lt_inst *m)
{
    if (m->inst)
        m->w->api->close(m->inst);
    m->inst = NULL;
    config_free(m->config);
    m->config = NULL;
}

static void lt_ensure(lt_inst *m, const char *coll, const persistor_index_spec *idx, uint32_t n)
{
    persistor_collection_spec spec = {sizeof spec, coll, idx, n, NULL, 0, NULL};
    persistor_error err = {0};
    assert_true(m->n_specs < 8);
    m->specs[m->n_specs] = spec;
    int32_t rc = m->w->api->ensure_collection(m->inst, &m->specs[m->n_specs++], &err);
    if (rc != PERSISTOR_OK)
        fail_msg("ensure %s: %s", coll, err.message);
}

static persistor_write_op lt_op(uint32_t kind, const bson_t *doc)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "_id"));
    return (persistor_write_op){kind, doc->len, bson_iter_utf8(&it, NULL), bson_get_data(doc)};
}

static int32_t lt_put(lt_inst *m, const char *coll, uint32_t kind, const bson_t *doc)
{
    persistor_write_op op = lt_op(kind, doc);
    persistor_error err = {0};
    int32_t result = -100;
    int32_t rc = m->w->api->write(m->inst, coll, &op, 1, &result, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("write %s: %s", op.id, err.message);
    return result;
}

static uint64_t lt_count(lt_inst *m, const char *coll)
{
    persistor_collection_stats st = {sizeof st, 0, 0};
    persistor_error err = {0};
    assert_int_equal(m->w->api->stats(m->inst, coll, &st, &err), PERSISTOR_OK);
    return st.item_count;
}

static int lt_has(lt_inst *m, const char *coll, const char *id)
{
    persistor_error err = {0};
    int32_t rc = m->w->api->exists(m->inst, coll, id, &err);
    if (rc != PERSISTOR_OK && rc != PERSISTOR_NOT_FOUND)
        fail_msg("exists %s: %s", id, err.message);
    return rc == PERSISTOR_OK;
}

/* The _ids of a query's answer, joined by ',' (caller frees). */
static char *lt_ids(lt_inst *m, const char *coll, const bson_t *filter, const bson_t *sort,
                    uint64_t skip, uint64_t limit)
{
    persistor_query q = {sizeof q, filter ? filter->len : 0, filter ? bson_get_data(filter) : NULL,
                         sort ? sort->len : 0, sort ? bson_get_data(sort) : NULL, skip, limit};
    persistor_cursor *cur;
    persistor_error err = {0};
    const uint8_t *doc;
    uint32_t len;
    int32_t rc = m->w->api->query(m->inst, coll, &q, &cur, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("query: %s", err.message);
    size_t cap = 256, used = 0;
    char *out = calloc(1, cap);
    while (m->w->api->cursor_next(cur, &doc, &len, &err) == PERSISTOR_OK) {
        bson_t view;
        bson_iter_t it;
        assert_true(bson_init_static(&view, doc, len) && bson_iter_init_find(&it, &view, "_id"));
        const char *id = bson_iter_utf8(&it, NULL);
        while (used + strlen(id) + 2 > cap)
            out = realloc(out, cap *= 2);
        used += (size_t)sprintf(out + used, "%s%s", used ? "," : "", id);
    }
    m->w->api->cursor_close(cur);
    return out;
}

static bson_t *lt_doc(const char *id, const char *field, const char *value)
{
    bson_t *doc = bson_new();
    BSON_APPEND_UTF8(doc, "_id", id);
    if (field != NULL)
        BSON_APPEND_UTF8(doc, field, value);
    return doc;
}

/* A batch of n upserts of ~`pad` bytes each, ids prefix + number. */
static int32_t lt_batch(lt_inst *m, const char *coll, const char *prefix, int from, int n,
                        size_t pad, int32_t *results, persistor_error *err)
{
    bson_t **docs = calloc((size_t)n, sizeof *docs);
    persistor_write_op *ops = calloc((size_t)n, sizeof *ops);
    char *text = malloc(pad + 1);
    memset(text, 'p', pad);
    text[pad] = '\0';
    for (int i = 0; i < n; i++) {
        char id[64];
        snprintf(id, sizeof id, "%s%06d", prefix, from + i);
        docs[i] = lt_doc(id, "pad", text);
        BSON_APPEND_INT32(docs[i], "i", from + i);
        ops[i] = lt_op(PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[i]);
    }
    int32_t rc = m->w->api->write(m->inst, coll, ops, (uint32_t)n, results, err);
    for (int i = 0; i < n; i++)
        bson_destroy(docs[i]);
    free(docs);
    free(ops);
    free(text);
    return rc;
}

/* ---- map growth ---------------------------------------------------- */

static void test_map_grows_from_64_kib_with_no_failed_call(void **state)
{
    static const char *const opts[] = {"map_size=65536", "max_map_size=1073741824", NULL};
    static const persistor_index_key ik[] = {{"i", 1}};
    static const persistor_index_spec idx[] = {{"i_1", ik, 1, 0}};
    lt_inst m;
    int32_t results[100];
    persistor_error err = {0};
    lt_open_ok(*state, &m, opts);
    lt_ensure(&m, "c", idx, 1);
    for (int b = 0; b < 40; b++) {
        if (lt_batch(&m, "c", "g", b * 100, 100, 1000, results, &err) != PERSISTOR_OK)
            fail_msg("batch %d: %s", b, err.message);
        for (int i = 0; i < 100; i++)
            assert_int_equal(results[i], PERSISTOR_OK);
    }
    /* One document far larger than the map it arrives in. */
    char *big = malloc(4u << 20);
    memset(big, 'b', 4u << 20);
    big[(4u << 20) - 1] = '\0';
    bson_t *doc = lt_doc("big", "big", big);
    assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_UPSERT, doc), PERSISTOR_OK);
    bson_destroy(doc);
    free(big);
    assert_int_equal(lt_count(&m, "c"), 4001);
    assert_true(lt_has(&m, "c", "g003999"));
    lt_close(&m);
}

static void test_max_map_size_reached_is_unavailable_and_writes_nothing(void **state)
{
    static const char *const opts[] = {"map_size=65536", "max_map_size=262144", NULL};
    lt_inst m;
    int32_t results[50];
    persistor_error err = {0};
    int32_t rc = PERSISTOR_OK;
    int b = 0;
    lt_open_ok(*state, &m, opts);
    lt_ensure(&m, "c", NULL, 0);
    for (; b < 100 && rc == PERSISTOR_OK; b++)
        rc = lt_batch(&m, "c", "f", b * 50, 50, 1000, results, &err);
    assert_int_equal(rc, PERSISTOR_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "map full at max_map_size=262144"));
    assert_non_null(strstr(err.message, "raise it"));
    for (int i = 0; i < 50; i++)
        assert_int_equal(results[i], PERSISTOR_E_UNAVAILABLE);
    /* The failed batch left nothing: only the whole batches before it. */
    b--;
    assert_int_equal(lt_count(&m, "c"), (uint64_t)b * 50);
    char id[32];
    snprintf(id, sizeof id, "f%06d", b * 50);
    assert_false(lt_has(&m, "c", id));
    snprintf(id, sizeof id, "f%06d", b * 50 - 1);
    assert_true(lt_has(&m, "c", id));
    lt_close(&m);
    /* Raising it lets the same batch through. */
    static const char *const more[] = {"map_size=65536", "max_map_size=4194304", NULL};
    lt_open_ok(*state, &m, more);
    lt_ensure(&m, "c", NULL, 0);
    assert_int_equal(lt_batch(&m, "c", "f", b * 50, 50, 1000, results, &err), PERSISTOR_OK);
    lt_close(&m);
}

/* ---- long keys ------------------------------------------------------ */

static char *lt_long(char fill, size_t n, const char *tail)
{
    char *s = malloc(n + 1);
    memset(s, fill, n);
    memcpy(s + n - strlen(tail), tail, strlen(tail));
    s[n] = '\0';
    return s;
}

static void test_long_ids_and_long_index_values_stay_exact(void **state)
{
    static const persistor_index_key ek[] = {{"email", 1}};
    static const persistor_index_key vk[] = {{"v", 1}};
    static const persistor_index_key dk[] = {{"v", -1}};
    static const persistor_index_spec idx[] = {{"email_1", ek, 1, PERSISTOR_INDEX_UNIQUE},
                                               {"v_1", vk, 1, 0},
                                               {"v_-1", dk, 1, 0}};
    lt_inst m;
    lt_open_ok(*state, &m, NULL);
    lt_ensure(&m, "c", idx, 3);
    char *ids[6], *vals[6], *emails[6];
    /* Ids of 1,000 bytes sharing 990; values of 2,000 bytes sharing 600. */
    static const char *const order[] = {"3", "1", "5", "0", "4", "2"};
    for (int i = 0; i < 6; i++) {
        char tail[16];
        snprintf(tail, sizeof tail, "id%d", i);
        ids[i] = lt_long('i', 1000, tail);
        snprintf(tail, sizeof tail, "%s", order[i]);
        vals[i] = lt_long('v', 2000, tail);
        vals[i][600] = (char)('a' + i % 3); /* differ right after the shared prefix */
        snprintf(tail, sizeof tail, "e%d", i);
        emails[i] = lt_long('e', 2000, tail);
        bson_t *doc = lt_doc(ids[i], "email", emails[i]);
        BSON_APPEND_UTF8(doc, "v", vals[i]);
        assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_INSERT_IF_ABSENT, doc), PERSISTOR_OK);
        assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_INSERT_IF_ABSENT, doc),
                         PERSISTOR_EXISTS);
        bson_destroy(doc);
    }
    for (int i = 0; i < 6; i++)
        assert_true(lt_has(&m, "c", ids[i]));
    char *absent = lt_long('i', 1000, "nope");
    assert_false(lt_has(&m, "c", absent));
    /* A unique long value taken by another id is refused, even by upsert. */
    bson_t *dup = lt_doc(absent, "email", emails[2]);
    assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_UPSERT, dup), PERSISTOR_EXISTS);
    assert_false(lt_has(&m, "c", absent));
    bson_destroy(dup);
    /* Same id may keep its key; a distinct value sharing 1,990 bytes is free. */
    char *near = lt_long('e', 2000, "e9");
    bson_t *ok = lt_doc(absent, "email", near);
    assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_UPSERT, ok), PERSISTOR_OK);
    assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_UPSERT, ok), PERSISTOR_OK);
    bson_destroy(ok);
    /* Equality on a long value, and order over long values. */
    bson_t *f = bson_new();
    BSON_APPEND_UTF8(f, "v", vals[4]);
    char *got = lt_ids(&m, "c", f, NULL, 0, 0);
    assert_string_equal(got, ids[4]);
    free(got);
    bson_destroy(f);
    /* Expected order: sort (value, id) by hand. */
    int want[6] = {0, 1, 2, 3, 4, 5};
    for (int i = 0; i < 6; i++)
        for (int j = i + 1; j < 6; j++) {
            int c = strcmp(vals[want[j]], vals[want[i]]);
            if (c < 0 || (c == 0 && strcmp(ids[want[j]], ids[want[i]]) < 0)) {
                int t = want[i];
                want[i] = want[j];
                want[j] = t;
            }
        }
    bson_t *vfilter = BCON_NEW("v", "{", "$gte", BCON_UTF8(""), "}");
    bson_t *up = BCON_NEW("v", BCON_INT32(1), "_id", BCON_INT32(1));
    bson_t *down = BCON_NEW("v", BCON_INT32(-1));
    char *asc = lt_ids(&m, "c", vfilter, up, 0, 0);
    char *desc = lt_ids(&m, "c", vfilter, down, 0, 0);
    char *first2 = lt_ids(&m, "c", vfilter, up, 1, 2);
    size_t pos = 0, pos2 = 0;
    for (int i = 0; i < 6; i++) {
        assert_memory_equal(asc + pos, ids[want[i]], 1000);
        pos += 1001;
        assert_memory_equal(desc + pos2, ids[want[5 - i]], 1000);
        pos2 += 1001;
    }
    assert_memory_equal(first2, ids[want[1]], 1000);
    assert_memory_equal(first2 + 1001, ids[want[2]], 1000);
    assert_int_equal(strlen(first2), 2001);
    free(asc);
    free(desc);
    free(first2);
    bson_destroy(vfilter);
    bson_destroy(up);
    bson_destroy(down);
    /* Delete by long id frees its unique value. */
    persistor_write_op del = {PERSISTOR_WRITE_DELETE, 0, ids[2], NULL};
    int32_t result;
    persistor_error err = {0};
    assert_int_equal(m.w->api->write(m.inst, "c", &del, 1, &result, &err), PERSISTOR_OK);
    assert_int_equal(result, PERSISTOR_OK);
    assert_int_equal(m.w->api->write(m.inst, "c", &del, 1, &result, &err), PERSISTOR_OK);
    assert_int_equal(result, PERSISTOR_NOT_FOUND);
    dup = lt_doc(absent, "email", emails[2]);
    assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_UPSERT, dup), PERSISTOR_OK);
    bson_destroy(dup);
    assert_int_equal(lt_count(&m, "c"), 6);
    lt_close(&m);
    for (int i = 0; i < 6; i++) {
        free(ids[i]);
        free(vals[i]);
        free(emails[i]);
    }
    free(absent);
    free(near);
}

/* ---- durability and processes ------------------------------------- */

static void test_data_survives_close_and_reopen(void **state)
{
    static const persistor_index_key ek[] = {{"email", 1}};
    static const persistor_index_spec idx[] = {{"email_1", ek, 1, PERSISTOR_INDEX_UNIQUE}};
    lt_inst m;
    lt_open_ok(*state, &m, NULL);
    lt_ensure(&m, "c", idx, 1);
    bson_t *a = lt_doc("a", "email", "a@x");
    assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_UPSERT, a), PERSISTOR_OK);
    lt_close(&m);
    lt_open_ok(*state, &m, NULL);
    lt_ensure(&m, "c", idx, 1);
    persistor_buffer buf = {0};
    persistor_error err = {0};
    assert_int_equal(m.w->api->get(m.inst, "c", "a", &buf, &err), PERSISTOR_OK);
    assert_int_equal(buf.len, a->len);
    assert_memory_equal(buf.data, bson_get_data(a), a->len);
    buffer_free(&buf);
    bson_t *b = lt_doc("b", "email", "a@x");
    assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_UPSERT, b), PERSISTOR_EXISTS);
    assert_int_equal(lt_count(&m, "c"), 1);
    lt_close(&m);
    bson_destroy(a);
    bson_destroy(b);
}

static void test_two_processes_write_2000_each(void **state)
{
    lt_world *w = *state;
    pid_t kids[2];
    lt_inst m;
    lt_open_ok(w, &m, NULL); /* created and ensured before the children */
    lt_ensure(&m, "c", NULL, 0);
    lt_close(&m);
    for (int k = 0; k < 2; k++) {
        kids[k] = fork();
        assert_true(kids[k] >= 0);
        if (kids[k] == 0) {
            lt_inst mine;
            persistor_error err = {0};
            int32_t results[100];
            int bad = lt_open(w, &mine, NULL, &err) != PERSISTOR_OK;
            persistor_collection_spec spec = {sizeof spec, "c", NULL, 0, NULL, 0, NULL};
            bad = bad || w->api->ensure_collection(mine.inst, &spec, &err) != PERSISTOR_OK;
            for (int b = 0; !bad && b < 20; b++)
                bad = lt_batch(&mine, "c", k ? "q" : "p", b * 100, 100, 200, results, &err) !=
                      PERSISTOR_OK;
            if (bad)
                fprintf(stderr, "child %d: %s\n", k, err.message);
            lt_close(&mine);
            _exit(bad);
        }
    }
    for (int k = 0; k < 2; k++) {
        int status;
        assert_int_equal(waitpid(kids[k], &status, 0), kids[k]);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }
    lt_open_ok(w, &m, NULL);
    lt_ensure(&m, "c", NULL, 0);
    assert_int_equal(lt_count(&m, "c"), 4000);
    char *all = lt_ids(&m, "c", NULL, NULL, 0, 0);
    assert_int_equal(strlen(all), 4000 * 8 - 1);
    free(all);
    lt_close(&m);
}

static void test_a_stale_reader_is_cleared_at_the_next_open(void **state)
{
    lt_world *w = *state;
    int ready[2], logs[2];
    char text[8192] = {0};
    lt_inst keep, m;
    /* Held open while the reader dies: the last process to leave an
     * environment takes its reader table with it, so a stale slot is only
     * ever met by a process that was already there, or joins one that is. */
    lt_open_ok(w, &keep, NULL);
    assert_int_equal(pipe(ready), 0);
    pid_t kid = fork();
    assert_true(kid >= 0);
    if (kid == 0) {
        MDB_env *env;
        MDB_txn *txn;
        if (mdb_env_create(&env) || mdb_env_set_maxdbs(env, 1024) ||
            mdb_env_open(env, w->env, MDB_NOTLS, 0600) ||
            mdb_txn_begin(env, NULL, MDB_RDONLY, &txn))
            _exit(1);
        (void)!write(ready[1], "r", 1);
        for (;;)
            pause();
    }
    char c = 0;
    assert_int_equal(read(ready[0], &c, 1), 1);
    kill(kid, SIGKILL);
    waitpid(kid, NULL, 0);
    close(ready[0]);
    close(ready[1]);
    assert_int_equal(pipe(logs), 0);
    fcntl(logs[0], F_SETFL, O_NONBLOCK);
    log_set_fd(logs[1]);
    lt_open_ok(w, &m, NULL);
    log_set_fd(-1);
    ssize_t got = read(logs[0], text, sizeof text - 1);
    close(logs[0]);
    close(logs[1]);
    assert_true(got > 0);
    assert_non_null(strstr(text, "lmdb_stale_readers"));
    assert_non_null(strstr(text, "cleared 1 stale reader"));
    lt_close(&m);
    lt_close(&keep);
}

/* ---- refusals ------------------------------------------------------ */

static void test_a_garbage_data_file_is_corrupt_naming_the_path(void **state)
{
    lt_world *w = *state;
    char file[4300];
    lt_inst m;
    persistor_error err = {0};
    assert_int_equal(mkdir(w->env, 0700), 0);
    snprintf(file, sizeof file, "%s/data.mdb", w->env);
    FILE *f = fopen(file, "wb");
    assert_non_null(f);
    for (int i = 0; i < 4096; i++)
        fputc((i * 131 + 7) & 0xff, f);
    fclose(f);
    assert_int_equal(lt_open(w, &m, NULL, &err), PERSISTOR_E_CORRUPT);
    assert_null(m.inst);
    assert_non_null(strstr(err.message, w->env));
    lt_close(&m);
}

static void test_max_map_size_below_map_size_is_a_config_error(void **state)
{
    static const char *const opts[] = {"map_size=1048576", "max_map_size=65536", NULL};
    lt_inst m;
    persistor_error err = {0};
    assert_int_equal(lt_open(*state, &m, opts, &err), PERSISTOR_E_CONFIG);
    assert_null(m.inst);
    assert_non_null(strstr(err.message, "<test>:4:18:"));
    assert_non_null(strstr(err.message, "must be >= map_size"));
    lt_close(&m);
}

/* ---- push-down ----------------------------------------------------- */

static const char *const pd_docs[] = {
    "{\"_id\": \"a1\", \"xc\": \"X\", \"ts\": 5, \"g\": 1, \"s\": \"k\"}",
    "{\"_id\": \"a2\", \"xc\": \"X\", \"ts\": 3, \"g\": 2, \"s\": \"b\"}",
    "{\"_id\": \"a3\", \"xc\": \"X\", \"ts\": 3, \"g\": 1.0}",
    "{\"_id\": \"a4\", \"xc\": \"Y\", \"ts\": 1, \"g\": 2, \"s\": \"a\"}",
    "{\"_id\": \"a5\", \"xc\": [\"X\", \"Z\"], \"ts\": 2, \"g\": null}",
    "{\"_id\": \"a6\", \"xc\": \"X\", \"ts\": [9, 0], \"s\": [\"z\", \"c\"]}",
    "{\"_id\": \"a7\", \"ts\": 4, \"g\": \"1\"}",
    "{\"_id\": \"a8\", \"xc\": null, \"ts\": {\"$numberLong\": \"3\"}, \"g\": 3}",
    "{\"_id\": \"a9\", \"xc\": \"X\", \"ts\": \"late\", \"g\": [1, 2]}",
    "{\"_id\": \"b1\", \"xc\": \"X\", \"ts\": 7.5, \"g\": 2, \"s\": \"m\"}",
    "{\"_id\": \"b2\", \"xc\": \"Y\", \"ts\": 6, \"g\": -1, \"s\": \"k\"}",
};

static const char *const pd_filters[] = {
    "{}",
    "{\"xc\": \"X\"}",
    "{\"xc\": \"Z\"}",
    "{\"xc\": null}",
    "{\"xc\": \"X\", \"ts\": 3}",
    "{\"xc\": \"X\", \"ts\": {\"$gt\": 2}}",
    "{\"xc\": \"X\", \"ts\": {\"$gte\": 3, \"$lt\": 7}}",
    "{\"xc\": \"X\", \"ts\": {\"$lte\": 5}}",
    "{\"ts\": {\"$gt\": 2, \"$lt\": \"z\"}}",
    "{\"ts\": {\"$gte\": 0}}",
    "{\"ts\": {\"$lt\": 4}}",
    "{\"ts\": 9}",
    "{\"g\": 1}",
    "{\"g\": {\"$gt\": 1}}",
    "{\"g\": {\"$lte\": 2}, \"xc\": \"X\"}",
    "{\"g\": null}",
    "{\"g\": [1, 2]}",
    "{\"s\": {\"$gte\": \"b\", \"$lt\": \"m\"}}",
    "{\"s\": \"c\"}",
    "{\"_id\": \"a3\"}",
    "{\"_id\": \"a3\", \"g\": 2}",
    "{\"xc\": {\"$eq\": \"X\"}, \"ts\": {\"$ne\": 3}}",
    "{\"$or\": [{\"xc\": \"Y\"}, {\"g\": 3}]}",
};

static const char *const pd_sorts[] = {
    NULL,
    "{\"ts\": 1, \"_id\": 1}",
    "{\"ts\": -1, \"_id\": 1}",
    "{\"g\": -1, \"_id\": 1}",
    "{\"xc\": 1, \"ts\": 1, \"_id\": 1}",
    "{\"s\": 1, \"_id\": -1}",
};

typedef struct pd_item {
    const uint8_t *doc;
    uint32_t len;
    const char *id;
} pd_item;

/* What a full scan with the host's matcher and sorter answers. */
static char *pd_expect(const persistor_host *host, bson_t **docs, size_t n, const bson_t *filter,
                       const bson_t *sort, uint64_t skip, uint64_t limit)
{
    persistor_matcher *m;
    persistor_sorter *s = NULL;
    persistor_error err = {0};
    pd_item items[16];
    size_t k = 0;
    assert_int_equal(host->matcher_new(bson_get_data(filter), filter->len, &m, &err), 0);
    if (sort)
        assert_int_equal(host->sorter_new(bson_get_data(sort), sort->len, &s, &err), 0);
    for (size_t i = 0; i < n; i++) {
        if (!host->matcher_match(m, bson_get_data(docs[i]), docs[i]->len))
            continue;
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, docs[i], "_id"));
        items[k++] = (pd_item){bson_get_data(docs[i]), docs[i]->len, bson_iter_utf8(&it, NULL)};
    }
    /* Insertion sort: stable; ids break what the sort leaves tied. */
    for (size_t i = 1; i < k; i++)
        for (size_t j = i; j > 0; j--) {
            int c = s ? host->sorter_compare(s, items[j].doc, items[j].len, items[j - 1].doc,
                                             items[j - 1].len)
                      : 0;
            if (c == 0 && !s)
                c = strcmp(items[j].id, items[j - 1].id);
            if (c >= 0)
                break;
            pd_item t = items[j];
            items[j] = items[j - 1];
            items[j - 1] = t;
        }
    char *out = calloc(1, 256);
    size_t first = skip < k ? (size_t)skip : k;
    size_t last = limit > 0 && limit < k - first ? first + (size_t)limit : k;
    for (size_t i = first; i < last; i++)
        sprintf(out + strlen(out), "%s%s", i > first ? "," : "", items[i].id);
    host->matcher_free(m);
    if (s)
        host->sorter_free(s);
    return out;
}

static int pd_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted ids of a comma list, in place, for unordered answers. */
static void pd_as_set(char *list)
{
    char *parts[32], *copy = strdup(list);
    size_t n = 0;
    for (char *p = strtok(copy, ","); p != NULL && n < 32; p = strtok(NULL, ","))
        parts[n++] = p;
    qsort(parts, n, sizeof *parts, pd_cmp);
    list[0] = '\0';
    for (size_t i = 0; i < n; i++)
        sprintf(list + strlen(list), "%s%s", i ? "," : "", parts[i]);
    free(copy);
}

/* Every filter x sort x page of `coll` (holding docs[0..n)) against a full
 * scan with the host's matcher and sorter; count agrees too.  A sort
 * leaves ties to the store; the cases end with _id or cannot tie, except
 * the unsorted ones, which compare as sets. */
static void pd_check(lt_inst *m, const char *coll, bson_t **docs, size_t n, const char *phase)
{
    static const uint64_t limits[][2] = {{0, 0}, {0, 2}, {1, 3}};
    bson_error_t e;
    for (size_t f = 0; f < sizeof pd_filters / sizeof pd_filters[0]; f++) {
        bson_t *filter = bson_new_from_json((const uint8_t *)pd_filters[f], -1, &e);
        assert_non_null(filter);
        for (size_t s = 0; s < sizeof pd_sorts / sizeof pd_sorts[0]; s++) {
            bson_t *sort = pd_sorts[s] ? bson_new_from_json((const uint8_t *)pd_sorts[s], -1, &e)
                                       : NULL;
            for (size_t l = 0; l < (sort ? 3u : 1u); l++) {
                char *want = pd_expect(m->w->host, docs, n, filter, sort, limits[l][0],
                                       limits[l][1]);
                char *got = lt_ids(m, coll, filter, sort, limits[l][0], limits[l][1]);
                if (sort == NULL) {
                    pd_as_set(want);
                    pd_as_set(got);
                }
                if (strcmp(want, got) != 0)
                    fail_msg("%s: %s: filter %s sort %s skip %d limit %d: expected [%s] got "
                             "[%s]",
                             phase, coll, pd_filters[f], pd_sorts[s] ? pd_sorts[s] : "-",
                             (int)limits[l][0], (int)limits[l][1], want, got);
                free(want);
                free(got);
            }
            /* count agrees too */
            uint64_t got_n = 0;
            persistor_error err = {0};
            char *want = pd_expect(m->w->host, docs, n, filter, NULL, 0, 0);
            assert_int_equal(m->w->api->count(m->inst, coll, bson_get_data(filter), filter->len,
                                              &got_n, &err),
                             PERSISTOR_OK);
            size_t commas = want[0] ? 1 : 0;
            for (char *p = want; *p; p++)
                commas += *p == ',';
            if (got_n != commas)
                fail_msg("%s: %s: count %s: expected %zu got %llu", phase, coll, pd_filters[f],
                         commas, (unsigned long long)got_n);
            free(want);
            if (sort)
                bson_destroy(sort);
        }
        bson_destroy(filter);
    }
}

static int pd_has_array(const bson_t *doc)
{
    bson_iter_t it;
    assert_true(bson_iter_init(&it, doc));
    while (bson_iter_next(&it))
        if (BSON_ITER_HOLDS_ARRAY(&it))
            return 1;
    return 0;
}

/*
 * Indexes start "clean" (no array in their fields: queries skip the array
 * key ranges) and stop being clean when one is stored.  Each phase checks
 * every answer against a full scan:
 *   1. only documents without arrays (every index clean);
 *   2. an index added then (built clean from them);
 *   3. the array documents written by a second instance of the same
 *      environment, after the first one read the flags (its cached
 *      flags must not outlive the snapshot they were read in);
 *   4. an upsert turning a document's scalar into an array, and a fresh
 *      reopen, which reads the flags from the store;
 *   5. an index built from documents that hold arrays.
 * Collection "c" has every indexed field lead some index (arrays are told
 * by the keys' first bytes), "w" does not (its documents are walked).
 */
static void test_push_down_answers_as_a_full_scan_does(void **state)
{
    static const persistor_index_key xt[] = {{"xc", 1}, {"ts", 1}};
    static const persistor_index_key tk[] = {{"ts", 1}};
    static const persistor_index_key gk[] = {{"g", -1}};
    static const persistor_index_key sk[] = {{"s", 1}};
    static const persistor_index_key sg[] = {{"s", 1}, {"g", 1}};
    static const persistor_index_key tx[] = {{"ts", -1}, {"xc", 1}};
    static const persistor_index_spec idx[] = {{"xc_1_ts_1", xt, 2, 0}, {"ts_1", tk, 1, 0},
                                               {"g_-1", gk, 1, 0},      {"s_1", sk, 1, 0},
                                               {"s_1_g_1", sg, 2, 0},   {"ts_-1_xc_1", tx, 2, 0}};
    static const persistor_index_spec widx[] = {{"xc_1_ts_1", xt, 2, 0}, {"g_-1", gk, 1, 0}};
    enum { N = sizeof pd_docs / sizeof pd_docs[0] };
    bson_t *docs[N], *have[N];
    size_t n = 0;
    lt_inst m, m2;
    bson_error_t e;
    lt_open_ok(*state, &m, NULL);
    lt_ensure(&m, "c", idx, 4);
    lt_ensure(&m, "w", widx, 2);
    for (size_t i = 0; i < N; i++) {
        docs[i] = bson_new_from_json((const uint8_t *)pd_docs[i], -1, &e);
        assert_non_null(docs[i]);
    }
    /* 1. scalars only */
    for (size_t i = 0; i < N; i++) {
        if (pd_has_array(docs[i]))
            continue;
        assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[i]), 0);
        assert_int_equal(lt_put(&m, "w", PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[i]), 0);
        have[n++] = docs[i];
    }
    assert_true(n < N);
    pd_check(&m, "c", have, n, "scalars");
    pd_check(&m, "w", have, n, "scalars");
    /* 2. an index built on them */
    lt_ensure(&m, "c", idx, 5);
    pd_check(&m, "c", have, n, "index added");
    /* 3. arrays from another instance of the environment */
    lt_open_ok(*state, &m2, NULL);
    lt_ensure(&m2, "c", idx, 5);
    lt_ensure(&m2, "w", widx, 2);
    for (size_t i = 0; i < N; i++) {
        if (!pd_has_array(docs[i]))
            continue;
        assert_int_equal(lt_put(&m2, "c", PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[i]), 0);
        assert_int_equal(lt_put(&m2, "w", PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[i]), 0);
        have[n++] = docs[i];
    }
    assert_int_equal(n, N);
    pd_check(&m, "c", have, n, "arrays by another instance");
    pd_check(&m, "w", have, n, "arrays by another instance");
    lt_close(&m2);
    /* 4. an upsert brings the first array of "s" into a fresh collection */
    lt_ensure(&m, "u", idx, 5);
    n = 0;
    for (size_t i = 0; i < N; i++)
        if (!pd_has_array(docs[i])) {
            assert_int_equal(lt_put(&m, "u", PERSISTOR_WRITE_UPSERT, docs[i]), 0);
            have[n++] = docs[i];
        }
    pd_check(&m, "u", have, n, "before the upsert");
    bson_t *up = bson_new_from_json(
        (const uint8_t *)"{\"_id\": \"a2\", \"xc\": \"X\", \"ts\": 3, \"g\": 2, "
                         "\"s\": [\"a\", \"q\"]}",
        -1, &e);
    assert_non_null(up);
    assert_int_equal(lt_put(&m, "u", PERSISTOR_WRITE_UPSERT, up), 0);
    for (size_t i = 0; i < n; i++)
        if (have[i] == docs[1])
            have[i] = up;
    pd_check(&m, "u", have, n, "after the upsert");
    lt_close(&m);
    lt_open_ok(*state, &m, NULL);
    lt_ensure(&m, "u", idx, 5);
    pd_check(&m, "u", have, n, "reopened");
    /* 5. an index built from documents with arrays */
    lt_ensure(&m, "c", idx, 6);
    pd_check(&m, "c", docs, N, "index built over arrays");
    bson_destroy(up);
    for (size_t i = 0; i < N; i++)
        bson_destroy(docs[i]);
    lt_close(&m);
}

/* Filters and sorts are still refused after accepted ones with the same
 * keys (the adapter keeps shapes and the last sorter). */
static void test_refusals_survive_the_compile_caches(void **state)
{
    static const persistor_index_key xt[] = {{"xc", 1}, {"ts", 1}};
    static const persistor_index_spec idx[] = {{"xc_1_ts_1", xt, 2, 0}};
    static const char *const cases[][2] = {
        {"{\"xc\": \"X\"}", NULL},
        {"{\"xc\": {\"$regex\": \"X\"}}", "$regex"},
        {"{\"xc\": {\"$regularExpression\": {\"pattern\": \"X\", \"options\": \"\"}}}",
         "$regex"},
        {"{\"xc\": \"Y\", \"$where\": \"1\"}", "$where"},
        {"{\"xc\": \"Z\"}", NULL},
    };
    lt_inst m;
    bson_error_t e;
    lt_open_ok(*state, &m, NULL);
    lt_ensure(&m, "c", idx, 1);
    bson_t *doc = bson_new_from_json((const uint8_t *)"{\"_id\": \"a\", \"xc\": \"Z\"}", -1, &e);
    assert_int_equal(lt_put(&m, "c", PERSISTOR_WRITE_UPSERT, doc), 0);
    bson_t *sort = bson_new_from_json((const uint8_t *)"{\"ts\": 1, \"_id\": 1}", -1, &e);
    bson_t *bad_sort = bson_new_from_json((const uint8_t *)"{\"$ts\": 1}", -1, &e);
    for (int round = 0; round < 2; round++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            bson_t *filter = bson_new_from_json((const uint8_t *)cases[i][0], -1, &e);
            assert_non_null(filter);
            const bson_t *sorts[] = {NULL, sort, bad_sort, sort};
            for (size_t s = 0; s < 4; s++) {
                persistor_query q = {sizeof q, filter->len, bson_get_data(filter),
                                     sorts[s] ? sorts[s]->len : 0,
                                     sorts[s] ? bson_get_data(sorts[s]) : NULL, 0, 0};
                persistor_cursor *cur = NULL;
                persistor_error err = {0};
                int32_t rc = m.w->api->query(m.inst, "c", &q, &cur, &err);
                if (cases[i][1] != NULL) {
                    assert_int_equal(rc, PERSISTOR_E_INVALID);
                    assert_non_null(strstr(err.message, cases[i][1]));
                } else if (sorts[s] == bad_sort) {
                    assert_int_equal(rc, PERSISTOR_E_INVALID);
                } else {
                    assert_int_equal(rc, PERSISTOR_OK);
                    m.w->api->cursor_close(cur);
                }
                uint64_t cnt = 0;
                rc = m.w->api->count(m.inst, "c", bson_get_data(filter), filter->len, &cnt, &err);
                assert_int_equal(rc, cases[i][1] ? PERSISTOR_E_INVALID : PERSISTOR_OK);
                if (cases[i][1] == NULL)
                    assert_int_equal(cnt, strstr(cases[i][0], "Z") ? 1 : 0);
            }
            bson_destroy(filter);
        }
    bson_destroy(doc);
    bson_destroy(sort);
    bson_destroy(bad_sort);
    lt_close(&m);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup_teardown(t, test_setup, test_teardown)
    const struct CMUnitTest tests[] = {
        T(test_map_grows_from_64_kib_with_no_failed_call),
        T(test_max_map_size_reached_is_unavailable_and_writes_nothing),
        T(test_long_ids_and_long_index_values_stay_exact),
        T(test_data_survives_close_and_reopen),
        T(test_two_processes_write_2000_each),
        T(test_a_stale_reader_is_cleared_at_the_next_open),
        T(test_a_garbage_data_file_is_corrupt_naming_the_path),
        T(test_max_map_size_below_map_size_is_a_config_error),
        T(test_push_down_answers_as_a_full_scan_does),
        T(test_refusals_survive_the_compile_caches),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
