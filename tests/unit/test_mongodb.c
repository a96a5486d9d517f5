/*
 * test_mongodb.c — what the mongodb adapter promises beyond the conformance
 * suite, against the mock mongod of tests/mongod (its port in
 * $PERSISTOR_MONGOD_DIR/port, its fault controls on control_port): options
 * that reach libmongoc's URI, the answers of insert-if-absent, upsert,
 * upsert-if-newer and delete, queries the server runs, the TTL index and its collMod, every
 * error class through injected faults, messages that name the operation
 * and collection but never the password, describe, and the error table
 * row by row (mongodb_errors.c is compiled in).
 */
#define _XOPEN_SOURCE 700

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <bson/bson.h>
#include <mongoc/mongoc.h>

#include "config.h"
#include "error.h"
#include "host.h"
#include "loader.h"
#include "mongod_client.h"
#include "mongodb_internal.h"
#include "profile.h"

typedef struct mt_world {
    char so[4096];
    int port, control_port;
    loader_module *module;
    const persistor_adapter *api;
    persistor_host *host;
} mt_world;

static mt_world world;

/* Log lines the adapter wrote (the host redacts nothing here: raw). */
static char mt_log_text[16384];

__attribute__((format(printf, 4, 5))) static void mt_log(const persistor_host *host,
                                                          int32_t level, const char *event,
                                                          const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    size_t n = strlen(mt_log_text);
    snprintf(mt_log_text + n, sizeof mt_log_text - n, "%s: %s\n", event, line);
}

static void mt_control_ok(const char *cmd)
{
    const char *r = mongod_control("%s", cmd);
    if (strncmp(r, "ok", 2) != 0)
        fail_msg("control %s: %s", cmd, r);
}

static int group_setup(void **state)
{
    persistor_error err = {0};
    const char *build = getenv("PERSISTOR_BUILD_DIR");
    const char *dir = getenv("PERSISTOR_MONGOD_DIR");
    if (build == NULL || dir == NULL) {
        print_error("PERSISTOR_BUILD_DIR and PERSISTOR_MONGOD_DIR must be set (run via ctest)\n");
        return -1;
    }
    world.port = mongod_read_int("port");
    world.control_port = mongod_read_int("control_port");
    if (world.port <= 0 || world.control_port <= 0) {
        print_error("%s: no port / control_port: is the mock mongod running?\n", dir);
        return -1;
    }
    snprintf(world.so, sizeof world.so, "%s/lib/persistor/mongodb.so", build);
    if (loader_acquire("mongodb", world.so, NULL, host_default(), &world.module, &err) != 0) {
        print_error("loading %s: %s\n", world.so, err.message);
        return -1;
    }
    world.api = loader_adapter(world.module);
    world.host = host_new("mongodb#0", NULL, NULL);
    if (world.host == NULL)
        return -1;
    world.host->log = mt_log;
    *state = &world;
    return 0;
}

static int group_teardown(void **state)
{
    host_free(world.host);
    loader_release(world.module);
    /* libmongoc's documented process clean-up, for leak checkers: the
     * adapter is NO_UNLOAD and never calls it itself. */
    mongoc_cleanup();
    return 0;
}

static int case_setup(void **state)
{
    mt_control_ok("reset");
    mt_log_text[0] = '\0';
    return 0;
}

/* ---- one instance -------------------------------------------------- */

#define MT_MAX_OPTIONS 12

typedef struct mt_inst {
    char keys[MT_MAX_OPTIONS][40], values[MT_MAX_OPTIONS][512], paths[MT_MAX_OPTIONS][80];
    profile_option options[MT_MAX_OPTIONS];
    profile_adapter entry;
    persistor_config *config;
    persistor_instance *inst;
    persistor_collection_spec specs[8];
    size_t n_specs;
    char db[64];
} mt_inst;

/* Open with "k=v" options (NULL-terminated) on top of uri and a fresh
 * database; option i sits at <test>:(i+3):9.  "uri=" in kv replaces ours. */
static int32_t mt_open(mt_inst *m, const char *const *kv, persistor_error *err)
{
    static unsigned counter;
    char uri[128], db[80];
    memset(m, 0, sizeof *m);
    snprintf(m->db, sizeof m->db, "tm_%ld_%u", (long)getpid(), ++counter);
    snprintf(uri, sizeof uri, "uri=mongodb://127.0.0.1:%d/", world.port);
    snprintf(db, sizeof db, "database=%s", m->db);
    const char *all[MT_MAX_OPTIONS + 1];
    size_t n = 0;
    int has_uri = 0;
    for (size_t i = 0; kv != NULL && kv[i] != NULL; i++)
        has_uri |= strncmp(kv[i], "uri=", 4) == 0;
    for (size_t i = 0; kv != NULL && kv[i] != NULL && n < MT_MAX_OPTIONS - 2; i++)
        all[n++] = kv[i];
    if (!has_uri)
        all[n++] = uri;
    all[n++] = db;
    for (size_t i = 0; i < n; i++) {
        const char *eq = strchr(all[i], '=');
        snprintf(m->keys[i], sizeof m->keys[i], "%.*s", (int)(eq - all[i]), all[i]);
        snprintf(m->values[i], sizeof m->values[i], "%s", eq + 1);
        snprintf(m->paths[i], sizeof m->paths[i], "test.adapters[0].%s", m->keys[i]);
        m->options[i] = (profile_option){m->keys[i], m->values[i], m->paths[i],
                                         {"<test>", (uint32_t)i + 3, 9}};
    }
    m->entry = (profile_adapter){"mongodb", NULL, "test.adapters[0]", {"<test>", 2, 7},
                                 {"<test>", 2, 13}, m->options, n, false};
    int32_t rc = config_new(&m->entry, world.api, "mongodb#0", &m->config, err);
    if (rc == PERSISTOR_OK)
        rc = world.api->open(world.host, m->config, &m->inst, err);
    if (rc != PERSISTOR_OK)
        m->inst = NULL;
    return rc;
}

static void mt_open_ok(mt_inst *m, const char *const *kv)
{
    persistor_error err = {0};
    int32_t rc = mt_open(m, kv, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("open: %d: %s", rc, err.message);
}

static void mt_close(mt_inst *m)
{
    if (m->inst != NULL)
        world.api->close(m->inst);
    m->inst = NULL;
    config_free(m->config);
    m->config = NULL;
}

static int32_t mt_ensure_spec(mt_inst *m, const char *coll, const persistor_index_spec *idx,
                              uint32_t n, const char *ttl_field, int64_t ttl, persistor_error *err)
{
    assert_true(m->n_specs < 8);
    m->specs[m->n_specs] = (persistor_collection_spec){sizeof(persistor_collection_spec), coll,
                                                        idx, n, ttl_field, ttl, NULL};
    return world.api->ensure_collection(m->inst, &m->specs[m->n_specs++], err);
}

static void mt_ensure(mt_inst *m, const char *coll)
{
    persistor_error err = {0};
    if (mt_ensure_spec(m, coll, NULL, 0, NULL, 0, &err) != PERSISTOR_OK)
        fail_msg("ensure %s: %s", coll, err.message);
}

static bson_t *mt_json(const char *json)
{
    bson_error_t berr;
    bson_t *doc = bson_new_from_json((const uint8_t *)json, -1, &berr);
    if (doc == NULL)
        fail_msg("bad JSON %s: %s", json, berr.message);
    return doc;
}

/* One write; returns the call's code, *result the op's answer. */
static int32_t mt_write1(mt_inst *m, const char *coll, uint32_t kind, const char *id,
                         const bson_t *doc, int32_t *result, persistor_error *err)
{
    persistor_write_op op = {kind, doc ? doc->len : 0, id, doc ? bson_get_data(doc) : NULL};
    *result = -100;
    return world.api->write(m->inst, coll, &op, 1, result, err);
}

static int32_t mt_put(mt_inst *m, const char *coll, uint32_t kind, const char *json)
{
    bson_t *doc = mt_json(json);
    bson_iter_t it;
    persistor_error err = {0};
    int32_t result;
    assert_true(bson_iter_init_find(&it, doc, "_id"));
    int32_t rc = mt_write1(m, coll, kind, bson_iter_utf8(&it, NULL), doc, &result, &err);
    bson_destroy(doc);
    if (rc != PERSISTOR_OK)
        fail_msg("write %s: %d: %s", json, rc, err.message);
    return result;
}

/* ---- options ------------------------------------------------------------- */

static void test_options_reach_the_uri_and_the_server(void **state)
{
    mt_inst m;
    const char *kv[] = {"w=majority", "journal=true", "appname=mt-app",
                        "server_selection_timeout_ms=1500", "connect_timeout_ms=2500",
                        "socket_timeout_ms=3500", "max_pool_size=7", "compression=auto", NULL};
    mt_open_ok(&m, kv);
    const char *want[] = {"w=majority", "journal=true", "appname=mt-app", "maxpoolsize=7",
                          "serverselectiontimeoutms=1500", "connecttimeoutms=2500",
                          "sockettimeoutms=3500", "retrywrites=false"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strstr(mt_log_text, want[i]) == NULL)
            fail_msg("the URI lacks %s: %s", want[i], mt_log_text);
    assert_non_null(strstr(mt_log_text, "compressors="));
    mt_ensure(&m, "opts");
    assert_int_equal(mt_put(&m, "opts", PERSISTOR_WRITE_INSERT_IF_ABSENT, "{\"_id\": \"a\"}"),
                     PERSISTOR_OK);
    /* The server saw the write concern on the insert. */
    const char *last = mongod_control("last insert");
    if (strstr(last, "\"w\"") == NULL || strstr(last, "majority") == NULL ||
        strstr(last, "\"j\"") == NULL)
        fail_msg("the insert carried no w:majority, j:true: %s", last);
    mt_close(&m);
}

static void test_weak_write_concern_warns(void **state)
{
    mt_inst m;
    const char *kv[] = {"w=1", "journal=false", NULL};
    mt_open_ok(&m, kv);
    assert_non_null(strstr(mt_log_text, "mongodb_not_durable"));
    assert_non_null(strstr(mt_log_text, "w=1 journal=false"));
    mt_close(&m);
}

static void test_bad_option_values_are_config_errors_with_line_and_column(void **state)
{
    static const struct { const char *kv, *key; } rows[] = {
        {"compression=lz4", "compression"},  {"compression=zlib,,", "compression"},
        {"w=0", "w"},                        {"max_pool_size=0", "max_pool_size"},
        {"database=a.b", "database"},        {"socket_timeout_ms=-1", "socket_timeout_ms"},
        {"uri=http://nope", "uri"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        mt_inst m;
        persistor_error err = {0};
        const char *kv[] = {rows[i].kv, NULL};
        int32_t rc = mt_open(&m, kv, &err);
        if (rc != PERSISTOR_E_CONFIG)
            fail_msg("%s: expected E_CONFIG, got %d: %s", rows[i].kv, rc, err.message);
        /* The option is the first: line 3, column 9 (the uri's own is 4 when a uri is given). */
        if (strstr(err.message, "<test>:") == NULL || strstr(err.message, rows[i].key) == NULL)
            fail_msg("%s: no file:line:column or key: %s", rows[i].kv, err.message);
        if (strcmp(rows[i].key, "uri") != 0 && strstr(err.message, "<test>:3:9") == NULL)
            fail_msg("%s: not at <test>:3:9: %s", rows[i].kv, err.message);
        mt_close(&m);
    }
}

/* ---- answers of writes ------------------------------------------------------ */

static void test_insert_upsert_delete_answers(void **state)
{
    mt_inst m;
    const uint32_t ins = PERSISTOR_WRITE_INSERT_IF_ABSENT, up = PERSISTOR_WRITE_UPSERT;
    persistor_error err = {0};
    persistor_buffer out = {0};
    int32_t result;
    mt_open_ok(&m, NULL);
    mt_ensure(&m, "w");
    assert_int_equal(mt_put(&m, "w", ins, "{\"_id\": \"a\", \"v\": 1}"), PERSISTOR_OK);
    assert_int_equal(mt_put(&m, "w", ins, "{\"_id\": \"a\", \"v\": 2}"), PERSISTOR_EXISTS);
    assert_int_equal(mt_put(&m, "w", up, "{\"_id\": \"a\", \"w\": 3}"), PERSISTOR_OK);
    assert_int_equal(world.api->get(m.inst, "w", "a", &out, &err), PERSISTOR_OK);
    bson_t *want = mt_json("{\"_id\": \"a\", \"w\": 3}");
    assert_int_equal(out.len, want->len);
    assert_memory_equal(out.data, bson_get_data(want), want->len);
    bson_destroy(want);
    free(out.data);
    assert_int_equal(world.api->exists(m.inst, "w", "a", &err), PERSISTOR_OK);
    assert_int_equal(mt_write1(&m, "w", PERSISTOR_WRITE_DELETE, "zz", NULL, &result, &err),
                     PERSISTOR_OK);
    assert_int_equal(result, PERSISTOR_NOT_FOUND);
    assert_int_equal(mt_write1(&m, "w", PERSISTOR_WRITE_DELETE, "a", NULL, &result, &err),
                     PERSISTOR_OK);
    assert_int_equal(result, PERSISTOR_OK);
    assert_int_equal(world.api->exists(m.inst, "w", "a", &err), PERSISTOR_NOT_FOUND);
    mt_close(&m);
}

static void test_unique_index_violation_by_another_id_is_exists(void **state)
{
    static const persistor_index_key email[] = {{"email", 1}};
    static const persistor_index_spec idx[] = {{"email_1", email, 1, PERSISTOR_INDEX_UNIQUE}};
    mt_inst m;
    persistor_error err = {0};
    mt_open_ok(&m, NULL);
    assert_int_equal(mt_ensure_spec(&m, "u", idx, 1, NULL, 0, &err), PERSISTOR_OK);
    assert_int_equal(mt_put(&m, "u", PERSISTOR_WRITE_INSERT_IF_ABSENT,
                            "{\"_id\": \"u1\", \"email\": \"a@x\"}"), PERSISTOR_OK);
    assert_int_equal(mt_put(&m, "u", PERSISTOR_WRITE_INSERT_IF_ABSENT,
                            "{\"_id\": \"u2\", \"email\": \"a@x\"}"), PERSISTOR_EXISTS);
    assert_int_equal(mt_put(&m, "u", PERSISTOR_WRITE_UPSERT,
                            "{\"_id\": \"u2\", \"email\": \"a@x\"}"), PERSISTOR_EXISTS);
    assert_int_equal(world.api->exists(m.inst, "u", "u2", &err), PERSISTOR_NOT_FOUND);
    mt_close(&m);
}

/* Upsert-if-newer is one conditional replace with upsert (no read first:
 * nothing comes between the compare and the replace); a document without
 * a version is a plain insert. */
static void test_upsert_if_newer_is_one_conditional_replace(void **state)
{
    const uint32_t newer = PERSISTOR_WRITE_UPSERT_IF_NEWER;
    mt_inst m;
    persistor_error err = {0};
    mt_open_ok(&m, NULL);
    m.specs[m.n_specs] = (persistor_collection_spec){sizeof(persistor_collection_spec), "v",
                                                      NULL, 0, NULL, 0, "at"};
    assert_int_equal(world.api->ensure_collection(m.inst, &m.specs[m.n_specs++], &err),
                     PERSISTOR_OK);
    mt_control_ok("clearstats");
    assert_int_equal(mt_put(&m, "v", newer, "{\"_id\": \"a\", \"at\": 5}"), PERSISTOR_OK);
    assert_int_equal(mt_put(&m, "v", newer, "{\"_id\": \"a\", \"at\": 4}"), PERSISTOR_EXISTS);
    const char *last = mongod_control("last update");
    if (strstr(last, "\"$or\"") == NULL || strstr(last, "\"$lt\"") == NULL ||
        strstr(last, "\"upsert\": true") == NULL)
        fail_msg("not a conditional replace with upsert: %s", last);
    const char *stats = mongod_control("stats");
    if (strstr(stats, "\"find\"") != NULL || strstr(stats, "\"insert\"") != NULL)
        fail_msg("more than the update was sent: %s", stats);
    assert_int_equal(mt_put(&m, "v", newer, "{\"_id\": \"b\"}"), PERSISTOR_OK);
    assert_int_equal(mt_put(&m, "v", newer, "{\"_id\": \"b\", \"x\": 1}"), PERSISTOR_EXISTS);
    stats = mongod_control("stats");
    if (strstr(stats, "\"insert\": 2") == NULL)
        fail_msg("no version: not sent as inserts: %s", stats);
    mt_close(&m);
}

/* ---- queries run by the server ------------------------------------------ */

static void test_filter_sort_skip_limit_run_on_the_server(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    persistor_cursor *cur = NULL;
    const uint8_t *doc;
    uint32_t len;
    char ids[128] = "";
    mt_open_ok(&m, NULL);
    mt_ensure(&m, "q");
    for (int i = 0; i < 10; i++) {
        char json[64];
        snprintf(json, sizeof json, "{\"_id\": \"d%d\", \"k\": %d}", i, i);
        assert_int_equal(mt_put(&m, "q", PERSISTOR_WRITE_UPSERT, json), PERSISTOR_OK);
    }
    bson_t *filter = mt_json("{\"k\": {\"$gte\": 3}}"), *sort = mt_json("{\"k\": -1}");
    persistor_query q = {sizeof q, filter->len, bson_get_data(filter), sort->len,
                         bson_get_data(sort), 2, 3};
    mt_control_ok("clearstats");
    assert_int_equal(world.api->query(m.inst, "q", &q, &cur, &err), PERSISTOR_OK);
    int32_t rc;
    while ((rc = world.api->cursor_next(cur, &doc, &len, &err)) == PERSISTOR_OK) {
        bson_t b;
        bson_iter_t it;
        assert_true(bson_init_static(&b, doc, len));
        assert_true(bson_iter_init_find(&it, &b, "_id"));
        strcat(ids, bson_iter_utf8(&it, NULL));
        strcat(ids, ",");
    }
    assert_int_equal(rc, PERSISTOR_ITER_END);
    assert_int_equal(world.api->cursor_next(cur, &doc, &len, &err), PERSISTOR_ITER_END);
    world.api->cursor_close(cur);
    assert_string_equal(ids, "d7,d6,d5,");
    const char *last = mongod_control("last find");
    if (strstr(last, "$gte") == NULL || strstr(last, "\"sort\"") == NULL ||
        strstr(last, "\"skip\"") == NULL || strstr(last, "\"limit\"") == NULL)
        fail_msg("the find the server saw lacks filter/sort/skip/limit: %s", last);
    uint64_t n = 0;
    assert_int_equal(world.api->count(m.inst, "q", bson_get_data(filter), filter->len, &n, &err),
                     PERSISTOR_OK);
    assert_int_equal(n, 7);
    /* Refused like every adapter refuses it, before the server. */
    bson_t *bad = mt_json("{\"k\": {\"$regex\": \"x\"}}");
    persistor_query qb = {sizeof qb, bad->len, bson_get_data(bad), 0, NULL, 0, 0};
    assert_int_equal(world.api->query(m.inst, "q", &qb, &cur, &err), PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "$regex"));
    bson_destroy(bad);
    bson_destroy(filter);
    bson_destroy(sort);
    mt_close(&m);
}

/* ---- TTL ---------------------------------------------------------------- */

/* expireAfterSeconds of index `name` as the server lists it; -1 absent. */
static int64_t mt_index_ttl(const char *db, const char *coll, const char *name)
{
    char uri[128];
    const bson_t *doc;
    int64_t ttl = -1;
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/", world.port);
    mongoc_client_t *client = mongoc_client_new(uri);
    mongoc_collection_t *c = mongoc_client_get_collection(client, db, coll);
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(c, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "name") && strcmp(bson_iter_utf8(&it, NULL), name) == 0)
            ttl = bson_iter_init_find(&it, doc, "expireAfterSeconds") ? bson_iter_as_int64(&it)
                                                                       : -2;
    }
    mongoc_cursor_destroy(cur);
    mongoc_collection_destroy(c);
    mongoc_client_destroy(client);
    return ttl;
}

static void test_ttl_index_created_changed_by_collmod_and_dropped(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    mt_open_ok(&m, NULL);
    assert_int_equal(mt_ensure_spec(&m, "s", NULL, 0, "createdAt", 60, &err), PERSISTOR_OK);
    assert_int_equal(mt_index_ttl(m.db, "s", "createdAt_1"), 60);
    /* Idempotent. */
    assert_int_equal(mt_ensure_spec(&m, "s", NULL, 0, "createdAt", 60, &err), PERSISTOR_OK);
    mt_control_ok("clearstats");
    assert_int_equal(mt_ensure_spec(&m, "s", NULL, 0, "createdAt", 120, &err), PERSISTOR_OK);
    assert_int_equal(mt_index_ttl(m.db, "s", "createdAt_1"), 120);
    assert_non_null(strstr(mongod_control("stats"), "collMod"));
    assert_int_equal(mt_ensure_spec(&m, "s", NULL, 0, NULL, 0, &err), PERSISTOR_OK);
    assert_int_equal(mt_index_ttl(m.db, "s", "createdAt_1"), -1);
    mt_close(&m);
}

/* ---- error classes ------------------------------------------------------- */

/* The message names the operation and the collection. */
static void mt_names(const persistor_error *err, const char *op, const char *coll)
{
    if (strstr(err->message, op) == NULL || strstr(err->message, coll) == NULL)
        fail_msg("the message does not name %s and %s: %s", op, coll, err->message);
}

static int32_t mt_insert_one(mt_inst *m, const char *coll, const char *id, persistor_error *err)
{
    char json[128];
    int32_t result;
    snprintf(json, sizeof json, "{\"_id\": \"%s\"}", id);
    bson_t *doc = mt_json(json);
    int32_t rc = mt_write1(m, coll, PERSISTOR_WRITE_INSERT_IF_ABSENT, id, doc, &result, err);
    bson_destroy(doc);
    if (rc < 0)
        assert_int_equal(result, rc);
    return rc;
}

static void test_injected_server_errors_are_classed(void **state)
{
    static const struct { const char *control; int32_t want; } rows[] = {
        {"errors 11600 1", PERSISTOR_E_RETRY},
        {"errors 91 1 RetryableWriteError", PERSISTOR_E_RETRY},
        {"errors 18 1", PERSISTOR_E_CONFIG},
        {"wcerror 64 1", PERSISTOR_E_UNCERTAIN},
        {"errors 10107 1", PERSISTOR_E_RETRY},
        {"errors 2 1", PERSISTOR_E_INVALID},
    };
    mt_inst m;
    mt_open_ok(&m, NULL);
    mt_ensure(&m, "e");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        persistor_error err = {0};
        char id[16];
        snprintf(id, sizeof id, "x%zu", i);
        mt_control_ok(rows[i].control);
        int32_t rc = mt_insert_one(&m, "e", id, &err);
        if (rc != rows[i].want)
            fail_msg("%s: expected %d, got %d: %s", rows[i].control, rows[i].want, rc,
                     err.message);
        mt_names(&err, "write", "e");
        mt_control_ok("reset");
    }
    /* A read meeting a retryable code. */
    persistor_error err = {0};
    persistor_buffer out = {0};
    mt_control_ok("errors 11602 1");
    assert_int_equal(world.api->get(m.inst, "e", "x0", &out, &err), PERSISTOR_E_RETRY);
    mt_names(&err, "get", "e");
    mt_close(&m);
}

static void test_oversize_document_is_invalid(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    int32_t result;
    mt_open_ok(&m, NULL);
    mt_ensure(&m, "big");
    size_t n = MG_MAX_DOC_SIZE + 10;
    char *text = malloc(n + 1);
    assert_non_null(text);
    memset(text, 'a', n);
    text[n] = '\0';
    bson_t *doc = bson_new();
    BSON_APPEND_UTF8(doc, "_id", "huge");
    BSON_APPEND_UTF8(doc, "big", text);
    free(text);
    assert_int_equal(mt_write1(&m, "big", PERSISTOR_WRITE_INSERT_IF_ABSENT, "huge", doc, &result,
                               &err),
                     PERSISTOR_E_INVALID);
    assert_int_equal(result, PERSISTOR_E_INVALID);
    mt_names(&err, "write", "big");
    bson_destroy(doc);
    mt_close(&m);
}

static double mt_ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

static void test_hang_is_uncertain_for_writes_retry_for_reads(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    persistor_buffer out = {0};
    struct timespec t0;
    const char *kv[] = {"socket_timeout_ms=700", "server_selection_timeout_ms=700",
                        "connect_timeout_ms=700", NULL};
    mt_open_ok(&m, kv);
    mt_ensure(&m, "h");
    mt_control_ok("hang on");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t rc = mt_insert_one(&m, "h", "a", &err);
    if (rc != PERSISTOR_E_UNCERTAIN)
        fail_msg("a hung write: expected UNCERTAIN, got %d: %s", rc, err.message);
    mt_names(&err, "write", "h");
    assert_true(mt_ms_since(&t0) < 5000);
    rc = world.api->get(m.inst, "h", "a", &out, &err);
    if (rc != PERSISTOR_E_RETRY && rc != PERSISTOR_E_UNAVAILABLE)
        fail_msg("a hung read: expected RETRY (or UNAVAILABLE), got %d: %s", rc, err.message);
    mt_control_ok("hang off");
    mt_close(&m);
}

static void test_refused_connections_are_unavailable_fast(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    struct timespec t0;
    const char *kv[] = {"server_selection_timeout_ms=500", "connect_timeout_ms=500", NULL};
    mt_open_ok(&m, kv);
    mt_ensure(&m, "r");
    mt_control_ok("refuse on");
    mt_control_ok("close");
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int32_t rc = PERSISTOR_OK;
    /* The first call may meet the closed connection (RETRY/UNCERTAIN):
     * from then on, nothing can connect. */
    for (int i = 0; i < 3 && rc != PERSISTOR_E_UNAVAILABLE; i++)
        rc = world.api->ping(m.inst, &err);
    if (rc != PERSISTOR_E_UNAVAILABLE)
        fail_msg("refused: expected UNAVAILABLE, got %d: %s", rc, err.message);
    assert_true(mt_ms_since(&t0) < 5000);
    rc = mt_insert_one(&m, "r", "a", &err);
    assert_int_equal(rc, PERSISTOR_E_UNAVAILABLE);
    mt_names(&err, "write", "r");
    mt_control_ok("refuse off");
    mt_close(&m);
    /* And an open against a refusing server says so too. */
    mt_control_ok("refuse on");
    rc = mt_open(&m, kv, &err);
    assert_int_equal(rc, PERSISTOR_E_UNAVAILABLE);
    mt_close(&m);
    mt_control_ok("refuse off");
}

static void test_closed_connection_mid_batch_then_recovers(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    mt_open_ok(&m, NULL);
    mt_ensure(&m, "c");
    assert_int_equal(mt_insert_one(&m, "c", "a", &err), PERSISTOR_OK);
    mt_control_ok("close");
    int32_t rc = mt_insert_one(&m, "c", "b", &err);
    if (rc != PERSISTOR_OK && rc != PERSISTOR_E_RETRY && rc != PERSISTOR_E_UNCERTAIN)
        fail_msg("after close: expected OK, RETRY or UNCERTAIN, got %d: %s", rc, err.message);
    if (rc < 0)
        mt_names(&err, "write", "c");
    assert_int_equal(mt_insert_one(&m, "c", "d", &err), PERSISTOR_OK);
    mt_close(&m);
}

static void test_messages_never_show_the_password(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    char uri[160];
    snprintf(uri, sizeof uri, "uri=mongodb://u:s3cret@127.0.0.1:%d/?authSource=admin",
             world.port);
    const char *kv[] = {uri, "server_selection_timeout_ms=800", NULL};
    /* The mock's answer to SCRAM decides open's fate: either way, no
     * message and no log line may hold the password. */
    mt_control_ok("errors 18 3");
    int32_t rc = mt_open(&m, kv, &err);
    if (rc == PERSISTOR_OK) {
        rc = mt_insert_one(&m, "p", "a", &err);
        if (rc < 0)
            mt_names(&err, "write", "p");
    } else {
        assert_int_equal(rc, PERSISTOR_E_CONFIG);
    }
    if (rc < 0 && strstr(err.message, "s3cret") != NULL)
        fail_msg("the password is in the message: %s", err.message);
    assert_null(strstr(mt_log_text, "s3cret"));
    mt_close(&m);
}

/* ---- describe and stats -------------------------------------------------- */

static void test_describe_shows_version_and_topology(void **state)
{
    mt_inst m;
    persistor_error err = {0};
    persistor_buffer out = {0};
    mt_open_ok(&m, NULL);
    assert_int_equal(world.api->describe(m.inst, &out, &err), PERSISTOR_OK);
    char line[600];
    snprintf(line, sizeof line, "%.*s", (int)out.len, (const char *)out.data);
    free(out.data);
    if (strncmp(line, "MongoDB 5.", 10) != 0 || strstr(line, "standalone") == NULL ||
        strstr(line, m.db) == NULL)
        fail_msg("describe: %s", line);
    mt_close(&m);
}

/* ---- the error table ----------------------------------------------------- */

static void test_error_table_row_by_row(void **state)
{
    for (size_t i = 0; i < mg_n_error_rules; i++) {
        const mg_error_rule *r = &mg_error_rules[i];
        const char *what = NULL;
        uint32_t code = r->code ? r->code : 1;
        assert_int_equal(mg_error_class(r->domain, code, "x", NULL, MG_READ, &what), r->on_read);
        assert_non_null(what);
        assert_int_equal(mg_error_class(r->domain, code, "x", NULL, MG_WRITE, NULL), r->on_write);
        /* No rule is shadowed by an earlier one with the same key. */
        for (size_t j = 0; j < i; j++)
            if (mg_error_rules[j].domain == r->domain && mg_error_rules[j].code == r->code)
                fail_msg("rows %zu and %zu have the same domain and code", j, i);
        assert_true(r->on_read < 0 && r->on_write < 0);
    }
    /* The retryable codes, one by one. */
    static const uint32_t retry[] = {6, 7, 89, 91, 189, 262, 9001, 10107, 11600, 11602, 13435,
                                     13436};
    for (size_t i = 0; i < sizeof retry / sizeof retry[0]; i++)
        assert_int_equal(mg_error_class(MONGOC_ERROR_SERVER, retry[i], "", NULL, MG_WRITE, NULL),
                         PERSISTOR_E_RETRY);
    /* The label makes any server code RETRY. */
    bson_t *labels = BCON_NEW("errorLabels", "[", BCON_UTF8("RetryableWriteError"), "]");
    assert_int_equal(mg_error_class(MONGOC_ERROR_SERVER, 4242, "", labels, MG_WRITE, NULL),
                     PERSISTOR_E_RETRY);
    bson_destroy(labels);
    /* A socket error: before sending RETRY, after sending UNCERTAIN for a
     * write and RETRY for a read. */
    assert_int_equal(mg_error_class(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET,
                                    "Failed to send \"insert\" command with database \"d\": "
                                    "Failure during socket delivery: Broken pipe (32)",
                                    NULL, MG_WRITE, NULL),
                     PERSISTOR_E_RETRY);
    assert_int_equal(mg_error_class(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET,
                                    "Failed to send \"insert\" command with database \"d\": "
                                    "Failed to read 4 bytes: socket error or timeout",
                                    NULL, MG_WRITE, NULL),
                     PERSISTOR_E_UNCERTAIN);
    assert_int_equal(mg_error_class(MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET,
                                    "Failed to read 4 bytes", NULL, MG_READ, NULL),
                     PERSISTOR_E_RETRY);
    /* Unknown: refused by the server, fail over; unknown write concern:
     * applied, not confirmed. */
    assert_int_equal(mg_error_class(MONGOC_ERROR_SERVER, 4242, "", NULL, MG_WRITE, NULL),
                     PERSISTOR_E_UNAVAILABLE);
    assert_int_equal(mg_error_class(MONGOC_ERROR_WRITE_CONCERN, 4242, "", NULL, MG_WRITE, NULL),
                     PERSISTOR_E_UNCERTAIN);
}

int main(void)
{
#define T(t) cmocka_unit_test_setup(t, case_setup)
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_error_table_row_by_row),
        T(test_options_reach_the_uri_and_the_server),
        T(test_weak_write_concern_warns),
        T(test_bad_option_values_are_config_errors_with_line_and_column),
        T(test_insert_upsert_delete_answers),
        T(test_unique_index_violation_by_another_id_is_exists),
        T(test_upsert_if_newer_is_one_conditional_replace),
        T(test_filter_sort_skip_limit_run_on_the_server),
        T(test_ttl_index_created_changed_by_collmod_and_dropped),
        T(test_injected_server_errors_are_classed),
        T(test_oversize_document_is_invalid),
        T(test_hang_is_uncertain_for_writes_retry_for_reads),
        T(test_refused_connections_are_unavailable_fast),
        T(test_closed_connection_mid_batch_then_recovers),
        T(test_messages_never_show_the_password),
        T(test_describe_shows_version_and_topology),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
