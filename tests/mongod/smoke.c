/*
 * smoke.c — the mock mongod (server.py) seen through libmongoc, the way the
 * mongodb adapter sees it: inserts and byte-exact finds, sorted cursors
 * across getMore, duplicate keys, upserting replaces, count_documents,
 * TTL indexes and collMod, index conflicts, and every fault the control
 * port offers, each followed by recovery.
 *
 * Needs PERSISTOR_MONGOD_DIR (the fixture's run directory).
 */
#include "mongod_client.h"
#include <mongoc/mongoc.h>

#include <arpa/inet.h>
#include <math.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static int failures;
static const char *run_dir;
static int wire_port;

#define CHECK(cond, ...)                                                                        \
    do {                                                                                        \
        if (!(cond)) {                                                                          \
            failures++;                                                                         \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                     \
            fprintf(stderr, __VA_ARGS__);                                                       \
            fputc('\n', stderr);                                                                \
        }                                                                                       \
    } while (0)

#define CTL_OK(...)                                                                             \
    do {                                                                                        \
        const char *r_ = mongod_control(__VA_ARGS__);                                                      \
        CHECK(strncmp(r_, "ok", 2) == 0, "control answered: %s", r_);                           \
    } while (0)

static mongoc_client_t *client(void)
{
    char uri[512];
    snprintf(uri, sizeof uri,
             "mongodb://127.0.0.1:%d/?retryReads=false&retryWrites=false"
             "&serverSelectionTimeoutMS=2000&connectTimeoutMS=1000&socketTimeoutMS=1000",
             wire_port);
    mongoc_client_t *c = mongoc_client_new(uri);
    if (c == NULL) {
        fprintf(stderr, "bad uri %s\n", uri);
        exit(2);
    }
    mongoc_client_set_error_api(c, MONGOC_ERROR_API_VERSION_2);
    return c;
}

static bool ping(mongoc_client_t *c, bson_error_t *err)
{
    bson_t *cmd = BCON_NEW("ping", BCON_INT32(1));
    bool ok = mongoc_client_command_simple(c, "admin", cmd, NULL, NULL, err);
    bson_destroy(cmd);
    return ok;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static bson_t *every_type_document(void)
{
    static const uint8_t bytes[] = {0, 1, 2, 0xfe, 0xff, 0};
    static const uint8_t uuid[16] = {0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0x4d, 0xef,
                                     0x81, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef};
    bson_t *doc = bson_new(), sub, arr;
    bson_oid_t oid;
    bson_decimal128_t dec;
    bson_oid_init_from_string(&oid, "5f1d7a3b9c8e4a0012345678");
    bson_decimal128_from_string("-1234.5678E-3", &dec);
    BSON_APPEND_UTF8(doc, "_id", "every-type");
    BSON_APPEND_INT32(doc, "n", 0);
    BSON_APPEND_DOUBLE(doc, "negative_zero", -0.0);
    BSON_APPEND_DOUBLE(doc, "nan", NAN);
    bson_append_utf8(doc, "embedded_nul", -1, "a\0b", 3);
    BSON_APPEND_DOCUMENT_BEGIN(doc, "document", &sub);
    BSON_APPEND_INT32(&sub, "z", 1);
    BSON_APPEND_INT32(&sub, "a", 2);
    bson_append_document_end(doc, &sub);
    BSON_APPEND_ARRAY_BEGIN(doc, "array", &arr);
    BSON_APPEND_INT32(&arr, "0", 1);
    BSON_APPEND_UTF8(&arr, "1", "two");
    bson_append_array_end(doc, &arr);
    BSON_APPEND_BINARY(doc, "binary", BSON_SUBTYPE_BINARY, bytes, sizeof bytes);
    BSON_APPEND_BINARY(doc, "uuid", BSON_SUBTYPE_UUID, uuid, sizeof uuid);
    BSON_APPEND_BINARY(doc, "uuid_old", BSON_SUBTYPE_UUID_DEPRECATED, uuid, sizeof uuid);
    BSON_APPEND_OID(doc, "oid", &oid);
    BSON_APPEND_BOOL(doc, "true", true);
    BSON_APPEND_DATE_TIME(doc, "date", INT64_C(1700000000123));
    BSON_APPEND_DATE_TIME(doc, "date_before_1970", INT64_C(-86400000123));
    BSON_APPEND_NULL(doc, "null");
    BSON_APPEND_REGEX(doc, "regex", "^a.*b$", "im");
    BSON_APPEND_CODE(doc, "code", "function () { return 1; }");
    BSON_APPEND_TIMESTAMP(doc, "timestamp", 1700000000u, 7u);
    BSON_APPEND_INT64(doc, "int64_small", 5);
    BSON_APPEND_INT64(doc, "int64_max", INT64_MAX);
    BSON_APPEND_DECIMAL128(doc, "decimal128", &dec);
    BSON_APPEND_MINKEY(doc, "minkey");
    BSON_APPEND_MAXKEY(doc, "maxkey");
    return doc;
}

static bool same_bytes(const bson_t *a, const bson_t *b)
{
    return a->len == b->len && memcmp(bson_get_data(a), bson_get_data(b), a->len) == 0;
}

/* The _ids a find returns, comma-separated, into buf. */
static bool find_ids(mongoc_collection_t *coll, const bson_t *filter, const bson_t *opts,
                     char *buf, size_t size, bson_error_t *err)
{
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, filter, opts, NULL);
    const bson_t *d;
    bson_iter_t it;
    buf[0] = '\0';
    while (mongoc_cursor_next(cur, &d)) {
        if (bson_iter_init_find(&it, d, "_id") && BSON_ITER_HOLDS_UTF8(&it)) {
            if (buf[0])
                strncat(buf, ",", size - strlen(buf) - 1);
            strncat(buf, bson_iter_utf8(&it, NULL), size - strlen(buf) - 1);
        }
    }
    bool ok = !mongoc_cursor_error(cur, err);
    mongoc_cursor_destroy(cur);
    return ok;
}

static bson_t *index_named(mongoc_collection_t *coll, const char *name)
{
    bson_error_t err;
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(coll, NULL);
    const bson_t *d;
    bson_t *found = NULL;
    bson_iter_t it;
    while (mongoc_cursor_next(cur, &d))
        if (bson_iter_init_find(&it, d, "name") && strcmp(bson_iter_utf8(&it, NULL), name) == 0)
            found = bson_copy(d);
    CHECK(!mongoc_cursor_error(cur, &err), "listIndexes: %s", err.message);
    mongoc_cursor_destroy(cur);
    return found;
}

static int64_t int_field(const bson_t *d, const char *path)
{
    bson_iter_t it, f;
    if (d == NULL || !bson_iter_init(&it, d) || !bson_iter_find_descendant(&it, path, &f))
        return -12345;
    return bson_iter_as_int64(&f);
}

static void test_data(mongoc_client_t *c)
{
    bson_error_t err;
    mongoc_collection_t *coll = mongoc_client_get_collection(c, "smoke", "c");
    char ids[1024];

    /* Byte-exact round trip of many types, through find. */
    bson_t *every = every_type_document();
    CHECK(mongoc_collection_insert_one(coll, every, NULL, NULL, &err), "insert: %s", err.message);
    bson_t *f = BCON_NEW("_id", "every-type");
    mongoc_cursor_t *cur = mongoc_collection_find_with_opts(coll, f, NULL, NULL);
    const bson_t *got;
    CHECK(mongoc_cursor_next(cur, &got), "find every-type");
    if (got != NULL && !same_bytes(got, every)) {
        char *a = bson_as_canonical_extended_json(every, NULL);
        char *b = bson_as_canonical_extended_json(got, NULL);
        CHECK(false, "not byte-exact:\n  sent %s\n  got  %s", a, b);
        bson_free(a);
        bson_free(b);
    }
    mongoc_cursor_destroy(cur);
    bson_destroy(f);

    /* 30 more, then a sorted find in batches of 4 (firstBatch + getMore). */
    for (int i = 1; i <= 30; i++) {
        char id[16];
        snprintf(id, sizeof id, "k%02d", i);
        bson_t *d = BCON_NEW("_id", id, "n", BCON_INT32(i % 7), "g", i % 2 ? "odd" : "even");
        CHECK(mongoc_collection_insert_one(coll, d, NULL, NULL, &err), "insert %s: %s", id,
              err.message);
        bson_destroy(d);
    }
    bson_t *filter = BCON_NEW("n", "{", "$gte", BCON_INT32(5), "}");
    bson_t *opts = BCON_NEW("sort", "{", "n", BCON_INT32(-1), "_id", BCON_INT32(1), "}",
                            "batchSize", BCON_INT32(4));
    CHECK(find_ids(coll, filter, opts, ids, sizeof ids, &err), "find: %s", err.message);
    CHECK(strcmp(ids, "k06,k13,k20,k27,k05,k12,k19,k26") == 0, "sorted find got %s", ids);
    bson_destroy(opts);
    opts = BCON_NEW("sort", "{", "_id", BCON_INT32(-1), "}", "skip", BCON_INT64(2), "limit",
                    BCON_INT64(3), "projection", "{", "n", BCON_INT32(1), "}");
    CHECK(find_ids(coll, filter, opts, ids, sizeof ids, &err), "find: %s", err.message);
    CHECK(strcmp(ids, "k20,k19,k13") == 0, "skip/limit got %s", ids);
    bson_destroy(opts);

    int64_t n = mongoc_collection_count_documents(coll, filter, NULL, NULL, NULL, &err);
    CHECK(n == 8, "count_documents: %lld (%s)", (long long)n, err.message);
    bson_destroy(filter);

    /* Duplicate _id: alone, then in an unordered batch beside a new one. */
    bson_t *dup = BCON_NEW("_id", "k01");
    CHECK(!mongoc_collection_insert_one(coll, dup, NULL, NULL, &err) && err.code == 11000,
          "duplicate insert: code %u %s", err.code, err.message);
    bson_t *fresh = BCON_NEW("_id", "k99", "n", BCON_INT32(99));
    const bson_t *batch[] = {dup, fresh};
    bson_t reply;
    bson_t *unordered = BCON_NEW("ordered", BCON_BOOL(false));
    CHECK(!mongoc_collection_insert_many(coll, batch, 2, unordered, &reply, &err),
          "unordered insert with a duplicate succeeded");
    CHECK(int_field(&reply, "insertedCount") == 1, "insertedCount %lld",
          (long long)int_field(&reply, "insertedCount"));
    CHECK(int_field(&reply, "writeErrors.0.index") == 0 &&
              int_field(&reply, "writeErrors.0.code") == 11000,
          "writeErrors wrong");
    bson_destroy(&reply);
    bson_destroy(unordered);
    bson_destroy(dup);
    bson_destroy(fresh);

    /* Replace with upsert: inserts, then replaces, byte-exact both times. */
    bson_t *sel = BCON_NEW("_id", "u1");
    bson_t *v1 = BCON_NEW("_id", "u1", "v", BCON_INT64(1), "when", BCON_DATE_TIME(1000));
    bson_t *v2 = BCON_NEW("_id", "u1", "w", BCON_DOUBLE(2.5), "v", BCON_INT32(2));
    bson_t *upsert = BCON_NEW("upsert", BCON_BOOL(true));
    CHECK(mongoc_collection_replace_one(coll, sel, v1, upsert, &reply, &err), "upsert: %s",
          err.message);
    CHECK(int_field(&reply, "upsertedCount") == 1, "upsertedCount");
    bson_destroy(&reply);
    CHECK(mongoc_collection_replace_one(coll, sel, v2, upsert, &reply, &err), "replace: %s",
          err.message);
    CHECK(int_field(&reply, "matchedCount") == 1 && int_field(&reply, "modifiedCount") == 1,
          "replace counts");
    bson_destroy(&reply);
    cur = mongoc_collection_find_with_opts(coll, sel, NULL, NULL);
    CHECK(mongoc_cursor_next(cur, &got) && same_bytes(got, v2), "replaced doc not byte-exact");
    mongoc_cursor_destroy(cur);
    /* $set keeps int64 an int64 */
    bson_t *set = BCON_NEW("$set", "{", "x", BCON_INT64(7), "}", "$inc", "{", "v", BCON_INT32(1),
                           "}");
    CHECK(mongoc_collection_update_one(coll, sel, set, NULL, NULL, &err), "$set: %s",
          err.message);
    cur = mongoc_collection_find_with_opts(coll, sel, NULL, NULL);
    bson_iter_t it;
    CHECK(mongoc_cursor_next(cur, &got) && bson_iter_init_find(&it, got, "x") &&
              BSON_ITER_HOLDS_INT64(&it),
          "$set int64 lost its type");
    mongoc_cursor_destroy(cur);
    bson_destroy(set);

    /* A conditional replace with upsert whose filter misses the stored
     * document inserts, and meets its _id: 11000 on _id_ (keyPattern, as
     * mongod 4.4+ names it), nothing changed.  The mongodb adapter's
     * upsert-if-newer reads that as "a newer version is stored". */
    bson_t *older = BCON_NEW("_id", "u1", "$or", "[", "{", "v", "{", "$lt", BCON_INT32(3), "}",
                             "}", "{", "v", BCON_NULL, "}", "]");
    bson_t *newer = BCON_NEW("_id", "u1", "$or", "[", "{", "v", "{", "$lt", BCON_INT32(4), "}",
                             "}", "{", "v", BCON_NULL, "}", "]");
    bson_t *v4 = BCON_NEW("_id", "u1", "v", BCON_INT32(4));
    CHECK(!mongoc_collection_replace_one(coll, older, v4, upsert, &reply, &err) &&
              err.code == 11000,
          "conditional upsert onto a stored _id: code %u %s", err.code, err.message);
    CHECK(int_field(&reply, "writeErrors.0.code") == 11000 &&
              int_field(&reply, "writeErrors.0.keyPattern._id") == 1,
          "conditional upsert: no 11000 with keyPattern {_id: 1}");
    bson_destroy(&reply);
    CHECK(mongoc_collection_replace_one(coll, newer, v4, upsert, &reply, &err) &&
              int_field(&reply, "matchedCount") == 1 && int_field(&reply, "upsertedCount") == 0,
          "conditional replace of an older version: %s", err.message);
    bson_destroy(&reply);
    cur = mongoc_collection_find_with_opts(coll, sel, NULL, NULL);
    CHECK(mongoc_cursor_next(cur, &got) && same_bytes(got, v4), "conditional replace lost");
    mongoc_cursor_destroy(cur);
    bson_destroy(older);
    bson_destroy(newer);
    bson_destroy(v4);
    bson_destroy(sel);
    bson_destroy(v1);
    bson_destroy(v2);
    bson_destroy(upsert);

    /* Delete one. */
    bson_t *del = BCON_NEW("_id", "k99");
    CHECK(mongoc_collection_delete_one(coll, del, NULL, &reply, &err), "delete: %s", err.message);
    CHECK(int_field(&reply, "deletedCount") == 1, "deletedCount");
    bson_destroy(&reply);
    bson_destroy(del);

    /* TTL index, collMod, conflicting re-creation. */
    bson_t *ci = BCON_NEW("createIndexes", "c", "indexes", "[", "{", "key", "{", "t",
                          BCON_INT32(1), "}", "name", "t_ttl", "expireAfterSeconds",
                          BCON_INT32(3600), "}", "]");
    CHECK(mongoc_collection_command_simple(coll, ci, NULL, NULL, &err), "createIndexes: %s",
          err.message);
    bson_t *ix = index_named(coll, "t_ttl");
    CHECK(int_field(ix, "expireAfterSeconds") == 3600, "ttl index not listed with 3600");
    bson_destroy(ix);
    CHECK(mongoc_collection_command_simple(coll, ci, NULL, NULL, &err),
          "createIndexes again (same options) must be a no-op: %s", err.message);
    bson_destroy(ci);
    bson_t *cm = BCON_NEW("collMod", "c", "index", "{", "keyPattern", "{", "t", BCON_INT32(1),
                          "}", "expireAfterSeconds", BCON_INT32(60), "}");
    CHECK(mongoc_collection_command_simple(coll, cm, NULL, &reply, &err), "collMod: %s",
          err.message);
    CHECK(int_field(&reply, "expireAfterSeconds_old") == 3600, "collMod old");
    bson_destroy(&reply);
    bson_destroy(cm);
    ix = index_named(coll, "t_ttl");
    CHECK(int_field(ix, "expireAfterSeconds") == 60, "collMod did not change the TTL");
    bson_destroy(ix);
    ci = BCON_NEW("createIndexes", "c", "indexes", "[", "{", "key", "{", "t", BCON_INT32(1), "}",
                  "name", "t_ttl", "expireAfterSeconds", BCON_INT32(10), "}", "]");
    CHECK(!mongoc_collection_command_simple(coll, ci, NULL, NULL, &err) && err.code == 85,
          "conflicting TTL index: code %u %s", err.code, err.message);
    bson_destroy(ci);
    ci = BCON_NEW("createIndexes", "c", "indexes", "[", "{", "key", "{", "g", BCON_INT32(1), "}",
                  "name", "g_unique", "unique", BCON_BOOL(true), "}", "]");
    CHECK(!mongoc_collection_command_simple(coll, ci, NULL, NULL, &err) && err.code == 11000,
          "unique index over duplicates: code %u %s", err.code, err.message);
    bson_destroy(ci);
    ci = BCON_NEW("createIndexes", "c", "indexes", "[", "{", "key", "{", "u", BCON_INT32(1), "}",
                  "name", "u_unique", "unique", BCON_BOOL(true), "sparse", BCON_BOOL(true), "}",
                  "]");
    CHECK(mongoc_collection_command_simple(coll, ci, NULL, NULL, &err), "unique sparse: %s",
          err.message);
    bson_destroy(ci);
    bson_t *u1 = BCON_NEW("_id", "uu1", "u", BCON_INT32(1));
    bson_t *u2 = BCON_NEW("_id", "uu2", "u", BCON_DOUBLE(1.0));
    CHECK(mongoc_collection_insert_one(coll, u1, NULL, NULL, &err), "u1: %s", err.message);
    CHECK(!mongoc_collection_insert_one(coll, u2, NULL, NULL, &err) && err.code == 11000,
          "unique index must refuse 1.0 beside 1: code %u", err.code);
    bson_destroy(u1);
    bson_destroy(u2);

    bson_destroy(every);
    mongoc_collection_destroy(coll);
}

static void test_faults(mongoc_client_t *c)
{
    bson_error_t err;
    mongoc_collection_t *coll = mongoc_client_get_collection(c, "smoke", "f");
    bson_t *doc = BCON_NEW("x", BCON_INT32(1));
    bson_t *count = BCON_NEW("count", "f");
    bson_t reply;

    /* errors CODE N: the next N commands fail, ping does not count. */
    CTL_OK("errors 2 2");
    CHECK(ping(c, &err), "ping is never faulted: %s", err.message);
    CHECK(!mongoc_collection_command_simple(coll, count, NULL, NULL, &err) && err.code == 2,
          "errors 2 2, first: code %u", err.code);
    CHECK(!mongoc_collection_insert_one(coll, doc, NULL, NULL, &err) && err.code == 2,
          "errors 2 2, second: code %u", err.code);
    CHECK(mongoc_collection_command_simple(coll, count, NULL, NULL, &err), "after errors: %s",
          err.message);
    CTL_OK("errors 91 1 RetryableWriteError");
    CHECK(!mongoc_collection_insert_one(coll, doc, NULL, &reply, &err) && err.code == 91,
          "errors 91: code %u", err.code);
    CHECK(mongoc_error_has_label(&reply, "RetryableWriteError"), "no RetryableWriteError label");
    bson_destroy(&reply);

    /* wcerror: the write happens, the reply carries writeConcernError. */
    CTL_OK("wcerror 64 1");
    bson_destroy(doc);
    doc = BCON_NEW("_id", "wc", "x", BCON_INT32(2));
    CHECK(!mongoc_collection_insert_one(coll, doc, NULL, NULL, &err) &&
              err.domain == MONGOC_ERROR_WRITE_CONCERN && err.code == 64,
          "wcerror 64: domain %u code %u %s", err.domain, err.code, err.message);
    bson_t *q = BCON_NEW("_id", "wc");
    CHECK(mongoc_collection_count_documents(coll, q, NULL, NULL, NULL, &err) == 1,
          "write under a write concern error did not happen");
    bson_destroy(q);

    /* refuse: new connections fail, until refuse off. */
    CTL_OK("refuse on");
    mongoc_client_t *c2 = client();
    CHECK(!ping(c2, &err), "ping through a refused connection succeeded");
    mongoc_client_destroy(c2);
    CTL_OK("refuse off");
    c2 = client();
    CHECK(ping(c2, &err), "after refuse off: %s", err.message);

    /* hang: connected clients time out (socketTimeoutMS 1000). */
    CTL_OK("hang on");
    double t0 = now_s();
    CHECK(!ping(c2, &err), "ping answered while hanging");
    double took = now_s() - t0;
    CHECK(took >= 0.8 && took < 5.0, "hang timed out after %.2f s", took);
    CTL_OK("hang off");
    mongoc_client_destroy(c2);
    c2 = client();
    CHECK(ping(c2, &err), "after hang off: %s", err.message);

    /* close: open connections drop; the next command fails, then recovers. */
    CHECK(ping(c2, &err), "ping: %s", err.message);
    CTL_OK("close");
    CHECK(!ping(c2, &err), "ping on a closed connection succeeded");
    CHECK(ping(c2, &err), "no recovery after close: %s", err.message);
    mongoc_client_destroy(c2);

    /* reset clears every fault at once. */
    CTL_OK("errors 2 100");
    CTL_OK("wcerror 64 100");
    CTL_OK("refuse on");
    CTL_OK("hang on");
    CTL_OK("reset");
    c2 = client();
    mongoc_collection_t *coll2 = mongoc_client_get_collection(c2, "smoke", "f");
    bson_destroy(doc);
    doc = BCON_NEW("_id", "after-reset");
    CHECK(ping(c2, &err), "after reset: %s", err.message);
    CHECK(mongoc_collection_insert_one(coll2, doc, NULL, NULL, &err), "after reset: %s",
          err.message);
    mongoc_collection_destroy(coll2);
    mongoc_client_destroy(c2);

    /* Unknown commands and control errors. */
    bson_t *bogus = BCON_NEW("noSuchCommand", BCON_INT32(1));
    CHECK(!mongoc_client_command_simple(c, "admin", bogus, NULL, NULL, &err) && err.code == 59,
          "unknown command: code %u", err.code);
    bson_destroy(bogus);
    const char *r = mongod_control("errors nonsense");
    CHECK(strncmp(r, "error", 5) == 0, "bad control command answered %s", r);
    r = mongod_control("stats");
    CHECK(strncmp(r, "ok {", 4) == 0 && strstr(r, "\"insert\"") != NULL, "stats: %s", r);

    bson_destroy(doc);
    bson_destroy(count);
    mongoc_collection_destroy(coll);
}

int main(void)
{
    run_dir = getenv("PERSISTOR_MONGOD_DIR");
    if (run_dir == NULL) {
        fprintf(stderr, "PERSISTOR_MONGOD_DIR is not set\n");
        return 2;
    }
    wire_port = mongod_read_int("port");
    mongoc_init();
    CTL_OK("reset");
    CTL_OK("dropall");
    mongoc_client_t *c = client();
    bson_error_t err;
    CHECK(ping(c, &err), "ping: %s", err.message);
    bson_t *bi = BCON_NEW("buildInfo", BCON_INT32(1));
    bson_t reply;
    bson_iter_t it;
    CHECK(mongoc_client_command_simple(c, "admin", bi, NULL, &reply, &err), "buildInfo: %s",
          err.message);
    CHECK(bson_iter_init_find(&it, &reply, "version") &&
              strstr(bson_iter_utf8(&it, NULL), "persistor-mock") != NULL,
          "buildInfo version");
    bson_destroy(&reply);
    bson_destroy(bi);

    test_data(c);
    test_faults(c);

    CTL_OK("reset");
    CTL_OK("dropall");
    mongoc_client_destroy(c);
    mongoc_cleanup();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("mongod smoke: all checks passed\n");
    return 0;
}
