/*
 * cases_durable.c — what PERSISTOR_CAP_DURABLE promises: an acknowledged
 * write outlives the instance that made it, two processes writing to one
 * store at once lose nothing, and the store keeps the largest document the
 * host ever sends (16 MiB) and a hundred thousand small ones.
 *
 * Every case here runs only when the adapter declares the capability; for
 * any other adapter each case prints why and is skipped, never failed.
 * Nothing here may assume a document over 16 MiB is accepted: the host
 * never sends one.
 *
 * Sizes follow PERSISTOR_CONFORMANCE_SCALE (default 1: the full sizes
 * below), so the same cases stay affordable under valgrind.  The 16 MiB
 * document is never scaled: its size is the point.
 */
#define _XOPEN_SOURCE 700 /* nanosleep, kill, fork */

#include "host.h"
#include "harness.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define DURABLE_WRITERS 2
#define DURABLE_WRITER_DOCS 2000   /* per writer process, at scale 1 */
#define DURABLE_WRITER_BATCH 50
#define DURABLE_WRITER_RETRIES 200 /* E_RETRY on one batch, then give up */
#define DURABLE_WRITER_TIMEOUT_S 120
#define DURABLE_HUGE_SIZE (16u << 20) /* the host's largest document */
#define DURABLE_MANY_DOCS 100000      /* at scale 1 */
#define DURABLE_MANY_BATCH 1000

static conf_fixture *fx(void **state)
{
    return *state;
}

/* ---- shared helpers ----------------------------------------------- */

static void durable_or_skip(conf_fixture *f)
{
    if (f->adapter->capabilities & PERSISTOR_CAP_DURABLE)
        return;
    print_message("%s does not declare PERSISTOR_CAP_DURABLE: durable case skipped\n",
                  conf_adapter_type());
    skip();
}

/* PERSISTOR_CONFORMANCE_SCALE as a factor in (0, 100]; 1 when unset. */
static double durable_scale(void)
{
    const char *text = getenv("PERSISTOR_CONFORMANCE_SCALE");
    if (text == NULL || *text == '\0')
        return 1.0;
    char *end;
    double s = strtod(text, &end);
    if (*end != '\0' || !(s > 0.0 && s <= 100.0))
        fail_msg("PERSISTOR_CONFORMANCE_SCALE=%s: expected a number in (0, 100], e.g. 0.05",
                 text);
    return s;
}

/* `full` scaled, rounded to a whole number of `unit`, at least `unit`. */
static uint32_t durable_scaled(uint32_t full, uint32_t unit)
{
    double n = (double)full * durable_scale() / unit + 0.5;
    uint32_t units = n < 1.0 ? 1 : (uint32_t)n;
    return units * unit;
}

static double durable_ms_since(const struct timespec *t0)
{
    struct timespec t1;
    clock_gettime(CLOCK_MONOTONIC, &t1);
    return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Count through the count slot, or by draining a query when it is NULL. */
static uint64_t durable_count(conf_fixture *f, const char *collection)
{
    persistor_error err = {0};
    uint64_t n = 0;
    if (f->adapter->count != NULL) {
        conf_expect(f->adapter->count(f->inst, collection, NULL, 0, &n, &err), PERSISTOR_OK,
                    &err);
        return n;
    }
    persistor_query q = {sizeof q, 0, NULL, 0, NULL, 0, 0};
    persistor_cursor *cur = NULL;
    const uint8_t *doc;
    uint32_t len;
    int32_t rc;
    conf_expect(f->adapter->query(f->inst, collection, &q, &cur, &err), PERSISTOR_OK, &err);
    while ((rc = f->adapter->cursor_next(cur, &doc, &len, &err)) == PERSISTOR_OK)
        n++;
    f->adapter->cursor_close(cur);
    conf_expect(rc, PERSISTOR_ITER_END, &err);
    return n;
}

/* Close the fixture's instance and open a new one on the same config. */
static void durable_reopen(conf_fixture *f)
{
    persistor_error err = {0};
    f->adapter->close(f->inst);
    f->inst = NULL;
    conf_expect(conf_open(f, &f->inst, &err), PERSISTOR_OK, &err);
}

/* One batch that must be answered op by op with `want`. */
static void durable_write_all(conf_fixture *f, const char *collection,
                              const persistor_write_op *ops, uint32_t n, int32_t want)
{
    int32_t *results = calloc(n, sizeof *results);
    persistor_error err = {0};
    assert_non_null(results);
    conf_expect(f->adapter->write(f->inst, collection, ops, n, results, &err), PERSISTOR_OK,
                &err);
    for (uint32_t i = 0; i < n; i++)
        if (results[i] != want)
            fail_msg("%s/%s: op %u of the batch answered %d, expected %d", collection,
                     ops[i].id, i, results[i], want);
    free(results);
}

/* ---- data survives close and reopen -------------------------------- */

static const persistor_index_key reopen_email_keys[] = {{"email", 1}};
static const persistor_index_key reopen_team_keys[] = {{"team", 1}, {"n", -1}};
static const persistor_index_spec reopen_indexes[] = {
    {"email_1", reopen_email_keys, 1, PERSISTOR_INDEX_UNIQUE},
    {"team_1_n_-1", reopen_team_keys, 2, 0},
};

static void reopen_ensure(conf_fixture *f)
{
    persistor_collection_spec users = {sizeof users, "users",   reopen_indexes, 2,
                                       "createdAt",  3600, NULL};
    persistor_error err = {0};
    conf_expect(f->adapter->ensure_collection(f->inst, conf_keep_spec(f, users), &err),
                PERSISTOR_OK, &err);
    conf_ensure(f, "plain");
}

enum { REOPEN_USERS = 60 };

/* createdAt on the real clock, fixed once per run: an adapter with native
 * TTL (MongoDB's monitor) expires by real time, and this case checks that
 * the TTL index survives reopen, not expiry. */
static int64_t reopen_created_base(void)
{
    static int64_t base;
    if (base == 0)
        base = host_realtime_ms();
    return base;
}

/* Everything a reader can ask, as one text to compare before and after. */
static char *reopen_answers(conf_fixture *f)
{
    static const struct { const char *coll, *filter, *sort; uint64_t skip, limit; } q[] = {
        {"users", NULL, "{'_id': 1}", 0, 0},
        {"users", "{'team': 't1'}", "{'n': -1, '_id': 1}", 0, 0},
        {"users", "{'n': {'$gte': 20}}", "{'team': 1, 'n': -1, '_id': 1}", 3, 10},
        {"users", "{'email': {'$exists': false}}", NULL, 0, 0},
        {"plain", NULL, NULL, 0, 0},
    };
    size_t cap = 1 << 16, len = 0;
    char *out = malloc(cap);
    assert_non_null(out);
    out[0] = '\0';
#define APPEND(...) (len += (size_t)snprintf(out + len, cap - len, __VA_ARGS__), \
                     assert_true(len < cap))
    for (int i = 0; i < REOPEN_USERS + 5; i++) {
        char id[16];
        snprintf(id, sizeof id, "u%03d", i);
        bson_t *doc = conf_get(f, "users", id);
        char *json = doc ? bson_as_canonical_extended_json(doc, NULL) : NULL;
        APPEND("get users/%s: %s\n", id, json ? json : "NOT_FOUND");
        bson_free(json);
        if (doc)
            bson_destroy(doc);
    }
    for (size_t i = 0; i < sizeof q / sizeof q[0]; i++) {
        persistor_error err = {0};
        int32_t rc;
        char *ids = conf_query_ids(f, q[i].coll, q[i].filter, q[i].sort, q[i].skip, q[i].limit,
                                   q[i].sort == NULL, &rc, &err);
        if (ids == NULL)
            fail_msg("query %zu on %s: %d: %s", i, q[i].coll, rc, err.message);
        APPEND("query %zu: [%s]\n", i, ids);
        free(ids);
    }
    APPEND("count users %llu plain %llu\n", (unsigned long long)durable_count(f, "users"),
           (unsigned long long)durable_count(f, "plain"));
    if (f->adapter->stats != NULL) {
        static const char *const colls[] = {"users", "plain"};
        for (size_t i = 0; i < 2; i++) {
            persistor_collection_stats st = {sizeof st, 0, 0};
            persistor_error err = {0};
            conf_expect(f->adapter->stats(f->inst, colls[i], &st, &err), PERSISTOR_OK, &err);
            APPEND("stats %s: %llu items %llu bytes\n", colls[i],
                   (unsigned long long)st.item_count, (unsigned long long)st.total_size);
        }
    }
#undef APPEND
    return out;
}

static bson_t *reopen_user(int i, int version)
{
    char id[16], email[32];
    bson_t *doc = bson_new();
    snprintf(id, sizeof id, "u%03d", i);
    snprintf(email, sizeof email, "user%d.v%d@example.org", i, version);
    BSON_APPEND_UTF8(doc, "_id", id);
    if (i != 9) /* one lacks the unique field: it indexes as null */
        BSON_APPEND_UTF8(doc, "email", email);
    BSON_APPEND_UTF8(doc, "team", i % 3 == 0 ? "t0" : i % 3 == 1 ? "t1" : "t2");
    BSON_APPEND_INT32(doc, "n", i * (version == 1 ? 1 : 7) % 50);
    BSON_APPEND_DATE_TIME(doc, "createdAt", reopen_created_base() + i * 1000);
    BSON_APPEND_INT32(doc, "version", version);
    return doc;
}

/* The writes: inserts, upserts over some of them (and new ids), deletes
 * of some, and refused ones (EXISTS), in batches mixing the kinds. */
static void reopen_write(conf_fixture *f)
{
    enum { N = REOPEN_USERS };
    bson_t *docs[N + N];
    persistor_write_op ops[N + N];
    int32_t results[N + N];
    uint32_t n = 0;
    persistor_error err = {0};
    for (int i = 0; i < N; i++) { /* u000..u059 */
        docs[n] = reopen_user(i, 1);
        ops[n] = (persistor_write_op){PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[n]->len, NULL,
                                      bson_get_data(docs[n])};
        n++;
    }
    for (uint32_t i = 0; i < n; i++) {
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, docs[i], "_id"));
        ops[i].id = bson_iter_utf8(&it, NULL);
    }
    durable_write_all(f, "users", ops, n, PERSISTOR_OK);
    for (uint32_t i = 0; i < n; i++)
        bson_destroy(docs[i]);

    /* Second batch: upsert every third, delete every fifth, insert the
     * same id again (EXISTS), then a few new ids by upsert. */
    n = 0;
    int32_t want[N + N];
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0) {
            docs[n] = reopen_user(i, 2);
            ops[n] = (persistor_write_op){PERSISTOR_WRITE_UPSERT, docs[n]->len, NULL,
                                          bson_get_data(docs[n])};
            want[n++] = PERSISTOR_OK;
        } else if (i % 5 == 0) {
            docs[n] = reopen_user(i, 0); /* only for its id */
            ops[n] = (persistor_write_op){PERSISTOR_WRITE_DELETE, 0, NULL, NULL};
            want[n++] = PERSISTOR_OK;
        } else if (i % 7 == 0) {
            docs[n] = reopen_user(i, 3);
            ops[n] = (persistor_write_op){PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[n]->len, NULL,
                                          bson_get_data(docs[n])};
            want[n++] = PERSISTOR_EXISTS;
        }
    }
    for (int i = N; i < N + 5; i++) {
        docs[n] = reopen_user(i, 2);
        ops[n] = (persistor_write_op){PERSISTOR_WRITE_UPSERT, docs[n]->len, NULL,
                                      bson_get_data(docs[n])};
        want[n++] = PERSISTOR_OK;
    }
    for (uint32_t i = 0; i < n; i++) {
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, docs[i], "_id"));
        ops[i].id = bson_iter_utf8(&it, NULL);
        results[i] = -100;
    }
    conf_expect(f->adapter->write(f->inst, "users", ops, n, results, &err), PERSISTOR_OK, &err);
    for (uint32_t i = 0; i < n; i++)
        if (results[i] != want[i])
            fail_msg("users/%s: op %u answered %d, expected %d", ops[i].id, i, results[i],
                     want[i]);
    for (uint32_t i = 0; i < n; i++)
        bson_destroy(docs[i]);

    /* A second collection, with a delete of an absent id in the batch. */
    assert_int_equal(conf_put_json(f, "plain", PERSISTOR_WRITE_UPSERT, "{'_id': 'p1', 'v': 1}"),
                     PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "plain", PERSISTOR_WRITE_UPSERT,
                                   "{'_id': 'p2', 'v': [1, {'x': " D(5) "}]}"),
                     PERSISTOR_OK);
    assert_int_equal(conf_delete(f, "plain", "p3"), PERSISTOR_NOT_FOUND);
}

/* Fail on the first answer that changed, showing both. */
static void reopen_compare(const char *before, const char *after)
{
    int line = 1;
    while (*before != '\0' || *after != '\0') {
        size_t lb = strcspn(before, "\n"), la = strcspn(after, "\n");
        if (lb != la || memcmp(before, after, lb) != 0) {
            print_error("answer %d before close: %.*s\n", line, (int)lb, before);
            print_error("answer %d after reopen: %.*s\n", line, (int)la, after);
            fail_msg("the reopened store answers differently (answer %d, above)", line);
        }
        before += lb + (before[lb] == '\n');
        after += la + (after[la] == '\n');
        line++;
    }
}

static void test_data_survives_close_and_reopen(void **state)
{
    conf_fixture *f = fx(state);
    struct timespec t0;
    durable_or_skip(f);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    reopen_ensure(f);
    reopen_write(f);
    char *before = reopen_answers(f);

    durable_reopen(f);
    reopen_ensure(f);
    char *after = reopen_answers(f);
    reopen_compare(before, after);
    print_message("reopen: %llu users, %llu plain, same answers to %d gets and 5 queries\n",
                  (unsigned long long)durable_count(f, "users"),
                  (unsigned long long)durable_count(f, "plain"), REOPEN_USERS + 5);

    /* The unique index came back with the data: u001's email is taken. */
    assert_int_equal(conf_put_json(f, "users", PERSISTOR_WRITE_INSERT_IF_ABSENT,
                                   "{'_id': 'thief', 'email': 'user1.v1@example.org'}"),
                     PERSISTOR_EXISTS);
    conf_assert_absent(f, "users", "thief");
    /* And the store still takes writes, which survive a second reopen. */
    bson_t *late = conf_json("{'_id': 'late', 'email': 'late@example.org'}");
    assert_int_equal(conf_put(f, "users", PERSISTOR_WRITE_INSERT_IF_ABSENT, late),
                     PERSISTOR_OK);
    durable_reopen(f);
    reopen_ensure(f);
    conf_assert_stored(f, "users", late);
    bson_destroy(late);
    free(before);
    free(after);
    print_message("reopen: %.0f ms\n", durable_ms_since(&t0));
}

/* ---- two processes writing at once --------------------------------- */

static bson_t *writer_doc(int writer, uint32_t i)
{
    char id[32];
    bson_t *doc = bson_new();
    snprintf(id, sizeof id, "w%d-%06u", writer, i);
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_INT32(doc, "writer", writer);
    BSON_APPEND_INT32(doc, "i", (int32_t)i);
    BSON_APPEND_UTF8(doc, "pad", "the quick brown fox jumps over the lazy dog");
    return doc;
}

/* In a child: no cmocka (its longjmp target is the parent's), only exit
 * codes, and never the parent's instance (a store handle must not cross a
 * fork).  Returns 0 when every write was acknowledged with OK. */
static int writer_run(conf_fixture *f, int writer, uint32_t n_docs, int go_fd)
{
    persistor_instance *inst = NULL;
    persistor_error err = {0};
    char byte;
    int32_t rc = conf_open(f, &inst, &err);
    if (rc != PERSISTOR_OK) {
        fprintf(stderr, "writer %d: open: %d: %s\n", writer, rc, err.message);
        return 1;
    }
    /* Every instance ensures what it uses before anything else (adapter.h);
     * a static spec outlives the instance, as the header asks. */
    static const persistor_collection_spec race = {sizeof race, "race", NULL, 0, NULL, 0, NULL};
    for (int attempt = 0; attempt <= DURABLE_WRITER_RETRIES; attempt++) {
        if ((rc = f->adapter->ensure_collection(inst, &race, &err)) != PERSISTOR_E_RETRY)
            break;
        nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
    }
    if (rc != PERSISTOR_OK) {
        fprintf(stderr, "writer %d: ensure_collection race: %d: %s\n", writer, rc, err.message);
        f->adapter->close(inst);
        return 1;
    }
    while (read(go_fd, &byte, 1) < 0 && errno == EINTR)
        ; /* the barrier: EOF when the parent closes its end */
    int status = 0;
    unsigned retries = 0;
    for (uint32_t start = 0; start < n_docs && status == 0; start += DURABLE_WRITER_BATCH) {
        bson_t *docs[DURABLE_WRITER_BATCH];
        persistor_write_op ops[DURABLE_WRITER_BATCH];
        int32_t results[DURABLE_WRITER_BATCH];
        uint32_t n = n_docs - start < DURABLE_WRITER_BATCH ? n_docs - start
                                                             : DURABLE_WRITER_BATCH;
        for (uint32_t i = 0; i < n; i++) {
            bson_iter_t it;
            docs[i] = writer_doc(writer, start + i);
            bson_iter_init_find(&it, docs[i], "_id");
            ops[i] = (persistor_write_op){PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[i]->len,
                                          bson_iter_utf8(&it, NULL), bson_get_data(docs[i])};
        }
        /* E_RETRY means "nothing applied": the same batch again is safe. */
        for (int attempt = 0;; attempt++) {
            rc = f->adapter->write(inst, "race", ops, n, results, &err);
            if (rc != PERSISTOR_E_RETRY || attempt == DURABLE_WRITER_RETRIES)
                break;
            retries++;
            nanosleep(&(struct timespec){0, 5 * 1000 * 1000}, NULL);
        }
        if (rc != PERSISTOR_OK) {
            fprintf(stderr, "writer %d: batch at %u: %d: %s\n", writer, start, rc, err.message);
            status = 1;
        }
        for (uint32_t i = 0; i < n && status == 0; i++) {
            if (results[i] != PERSISTOR_OK) {
                fprintf(stderr, "writer %d: race/%s answered %d, expected OK%s\n", writer,
                        ops[i].id, results[i],
                        results[i] == PERSISTOR_EXISTS ? " (a batch refused with E_RETRY "
                                                         "was partly applied?)" : "");
                status = 1;
            }
        }
        for (uint32_t i = 0; i < n; i++)
            bson_destroy(docs[i]);
    }
    f->adapter->close(inst);
    fprintf(stderr, "writer %d: %u documents, %u batches retried on E_RETRY%s\n", writer,
            n_docs, retries, status ? ", FAILED" : "");
    return status;
}

/* Wait for every child until the deadline, then kill what is left.
 * Returns how many exited 0. */
static int writers_wait(pid_t *pids, int n, int timeout_s)
{
    struct timespec t0;
    int ok = 0, left = n;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (left > 0) {
        for (int i = 0; i < n; i++) {
            int status;
            if (pids[i] <= 0 || waitpid(pids[i], &status, WNOHANG) != pids[i])
                continue;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
                ok++;
            else
                print_error("writer %d: %s %d\n", i, WIFEXITED(status) ? "exit" : "signal",
                            WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
            pids[i] = 0;
            left--;
        }
        if (left > 0 && durable_ms_since(&t0) > timeout_s * 1000.0) {
            for (int i = 0; i < n; i++) {
                if (pids[i] <= 0)
                    continue;
                print_error("writer %d: still running after %d s: killed\n", i, timeout_s);
                kill(pids[i], SIGKILL);
                waitpid(pids[i], NULL, 0);
                pids[i] = 0;
            }
            break;
        }
        nanosleep(&(struct timespec){0, 10 * 1000 * 1000}, NULL);
    }
    return ok;
}

static void test_two_processes_writing_at_once_lose_nothing(void **state)
{
    conf_fixture *f = fx(state);
    const uint32_t per_writer = durable_scaled(DURABLE_WRITER_DOCS, DURABLE_WRITER_BATCH);
    pid_t pids[DURABLE_WRITERS] = {0};
    int go[2];
    struct timespec t0;
    durable_or_skip(f);
    conf_ensure(f, "race"); /* created once, before anyone races to */
    /* A child must not inherit an open store (LMDB forbids an environment
     * across fork, and leak checkers would count the copy as the child's):
     * the parent lets go of its instance and opens a new one after. */
    f->adapter->close(f->inst);
    f->inst = NULL;
    assert_int_equal(pipe(go), 0);
    fflush(stdout);
    fflush(stderr);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (int w = 0; w < DURABLE_WRITERS; w++) {
        pids[w] = fork();
        if (pids[w] == 0) {
            close(go[1]);
            _exit(writer_run(f, w, per_writer, go[0]));
        }
        if (pids[w] < 0) {
            print_error("fork: %s\n", strerror(errno));
            break;
        }
    }
    close(go[0]);
    close(go[1]); /* both writers start now */
    int ok = writers_wait(pids, DURABLE_WRITERS, DURABLE_WRITER_TIMEOUT_S);
    double ms = durable_ms_since(&t0);
    if (ok != DURABLE_WRITERS)
        fail_msg("%d of %d writer processes reported every write OK (their messages are "
                 "above)", ok, DURABLE_WRITERS);

    persistor_error open_err = {0};
    conf_expect(conf_open(f, &f->inst, &open_err), PERSISTOR_OK, &open_err);
    conf_ensure(f, "race");
    uint64_t n = durable_count(f, "race");
    print_message("two writers: %u + %u documents in %.0f ms, counted %llu\n", per_writer,
                  per_writer, ms, (unsigned long long)n);
    assert_int_equal(n, (uint64_t)per_writer * DURABLE_WRITERS);
    if (f->adapter->stats != NULL) {
        persistor_collection_stats st = {sizeof st, 0, 0};
        persistor_error err = {0};
        conf_expect(f->adapter->stats(f->inst, "race", &st, &err), PERSISTOR_OK, &err);
        assert_int_equal(st.item_count, (uint64_t)per_writer * DURABLE_WRITERS);
    }
    /* A sample of each writer's documents, byte for byte. */
    int sampled = 0;
    for (int w = 0; w < DURABLE_WRITERS; w++) {
        for (uint32_t i = 0; i < per_writer; i += per_writer / 16 > 0 ? per_writer / 16 : 1) {
            bson_t *want = writer_doc(w, i);
            conf_assert_stored(f, "race", want);
            bson_destroy(want);
            sampled++;
        }
        bson_t *last = writer_doc(w, per_writer - 1);
        conf_assert_stored(f, "race", last);
        bson_destroy(last);
        sampled++;
    }
    print_message("two writers: %d sampled documents stored byte for byte\n", sampled);
}

/* ---- documents up to 16 MiB ---------------------------------------- */

static bson_t *huge_doc(const char *id, char seed)
{
    /* 4 length + "_id" element (1 + 4 + 4 + strlen(id) + 1)
     * + "big" element (1 + 4 + 4 + n + 1) + 1 */
    const size_t n = DURABLE_HUGE_SIZE - 4 - (10 + strlen(id)) - 10 - 1;
    char *text = malloc(n + 1);
    assert_non_null(text);
    for (size_t i = 0; i < n; i++)
        text[i] = (char)('a' + (i * 7 + i / 26 + (size_t)seed) % 26);
    text[n] = '\0';
    bson_t *doc = bson_new();
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_UTF8(doc, "big", text);
    free(text);
    assert_int_equal(doc->len, DURABLE_HUGE_SIZE);
    return doc;
}

static void huge_query_matches(conf_fixture *f, const bson_t *want)
{
    bson_t *filter = conf_json("{'_id': 'huge'}");
    persistor_query q = {sizeof q, filter->len, bson_get_data(filter), 0, NULL, 0, 0};
    persistor_cursor *cur = NULL;
    persistor_error err = {0};
    const uint8_t *got;
    uint32_t len;
    conf_expect(f->adapter->query(f->inst, "huge", &q, &cur, &err), PERSISTOR_OK, &err);
    conf_expect(f->adapter->cursor_next(cur, &got, &len, &err), PERSISTOR_OK, &err);
    assert_int_equal(len, want->len);
    assert_memory_equal(got, bson_get_data(want), len);
    conf_expect(f->adapter->cursor_next(cur, &got, &len, &err), PERSISTOR_ITER_END, &err);
    f->adapter->cursor_close(cur);
    bson_destroy(filter);
}

static void test_documents_up_to_16_mib_round_trip(void **state)
{
    conf_fixture *f = fx(state);
    struct timespec t0;
    durable_or_skip(f);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    conf_ensure(f, "huge");
    bson_t *doc = huge_doc("huge", 0);
    assert_int_equal(conf_put(f, "huge", PERSISTOR_WRITE_INSERT_IF_ABSENT, doc), PERSISTOR_OK);
    assert_int_equal(conf_put_json(f, "huge", PERSISTOR_WRITE_UPSERT, "{'_id': 'small'}"),
                     PERSISTOR_OK);
    conf_assert_stored(f, "huge", doc);
    huge_query_matches(f, doc);
    /* Replaced by another document of the same size, then reopened. */
    bson_t *other = huge_doc("huge", 3);
    assert_int_equal(conf_put(f, "huge", PERSISTOR_WRITE_UPSERT, other), PERSISTOR_OK);
    conf_assert_stored(f, "huge", other);
    durable_reopen(f);
    conf_ensure(f, "huge");
    conf_assert_stored(f, "huge", other);
    huge_query_matches(f, other);
    assert_int_equal(durable_count(f, "huge"), 2);
    print_message("16 MiB: %u-byte document stored, replaced, reopened, read back byte for "
                  "byte in %.0f ms\n", other->len, durable_ms_since(&t0));
    bson_destroy(doc);
    bson_destroy(other);
}

/* ---- 100,000 documents --------------------------------------------- */

static bson_t *many_doc(uint32_t i)
{
    char id[16];
    bson_t *doc = bson_new();
    snprintf(id, sizeof id, "m%07u", i);
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_INT32(doc, "i", (int32_t)i);
    BSON_APPEND_INT32(doc, "g", (int32_t)(i % 7));
    BSON_APPEND_UTF8(doc, "s", i % 2 ? "odd" : "even, and a little longer");
    return doc;
}

static void many_write(conf_fixture *f, uint32_t n)
{
    bson_t *docs[DURABLE_MANY_BATCH];
    persistor_write_op ops[DURABLE_MANY_BATCH];
    for (uint32_t start = 0; start < n; start += DURABLE_MANY_BATCH) {
        uint32_t k = n - start < DURABLE_MANY_BATCH ? n - start : DURABLE_MANY_BATCH;
        for (uint32_t i = 0; i < k; i++) {
            bson_iter_t it;
            docs[i] = many_doc(start + i);
            assert_true(bson_iter_init_find(&it, docs[i], "_id"));
            ops[i] = (persistor_write_op){PERSISTOR_WRITE_INSERT_IF_ABSENT, docs[i]->len,
                                          bson_iter_utf8(&it, NULL), bson_get_data(docs[i])};
        }
        durable_write_all(f, "many", ops, k, PERSISTOR_OK);
        for (uint32_t i = 0; i < k; i++)
            bson_destroy(docs[i]);
    }
}

/* The largest 10 i with i % 7 == 3 and i >= n / 2, descending. */
static char *many_expected_top(uint32_t n)
{
    char *out = calloc(1, 10 * 9);
    assert_non_null(out);
    int found = 0;
    for (uint32_t i = n; i-- > n / 2 && found < 10;) {
        if (i % 7 != 3)
            continue;
        char id[16];
        snprintf(id, sizeof id, "%sm%07u", found ? "," : "", i);
        strcat(out, id);
        found++;
    }
    return out;
}

static void test_hundred_thousand_documents(void **state)
{
    static const persistor_index_key g_i[] = {{"g", 1}, {"i", 1}};
    static const persistor_index_spec idx[] = {{"g_1_i_1", g_i, 2, 0}};
    conf_fixture *f = fx(state);
    const uint32_t n = durable_scaled(DURABLE_MANY_DOCS, DURABLE_MANY_BATCH);
    const uint32_t n_del = n / 100;
    persistor_error err = {0};
    struct timespec t0;
    durable_or_skip(f);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    persistor_collection_spec spec = {sizeof spec, "many", idx, 1, NULL, 0, NULL};
    conf_expect(f->adapter->ensure_collection(f->inst, conf_keep_spec(f, spec), &err),
                PERSISTOR_OK, &err);
    many_write(f, n);
    double write_ms = durable_ms_since(&t0);

    uint64_t count = durable_count(f, "many");
    print_message("many: %u documents written in batches of %d in %.0f ms; count %llu\n", n,
                  DURABLE_MANY_BATCH, write_ms, (unsigned long long)count);
    assert_int_equal(count, n);
    if (f->adapter->stats != NULL) {
        persistor_collection_stats st = {sizeof st, 0, 0};
        conf_expect(f->adapter->stats(f->inst, "many", &st, &err), PERSISTOR_OK, &err);
        print_message("many: stats.item_count %llu\n", (unsigned long long)st.item_count);
        assert_int_equal(st.item_count, n);
    } else {
        print_message("many: stats slot is NULL (optional): item_count not checked\n");
    }
    for (uint32_t i = 0; i < n; i += n / 50 > 0 ? n / 50 : 1) {
        bson_t *want = many_doc(i);
        conf_assert_stored(f, "many", want);
        bson_destroy(want);
    }
    bson_t *last = many_doc(n - 1);
    conf_assert_stored(f, "many", last);
    bson_destroy(last);
    conf_assert_absent(f, "many", "m9999999");

    char filter[96];
    snprintf(filter, sizeof filter, "{'g': 3, 'i': {'$gte': %u}}", n / 2);
    int32_t rc;
    char *got = conf_query_ids(f, "many", filter, "{'i': -1}", 0, 10, 0, &rc, &err);
    if (got == NULL)
        fail_msg("query %s: %d: %s", filter, rc, err.message);
    char *want = many_expected_top(n);
    print_message("many: query %s sort {i: -1} limit 10: [%s]\n", filter, got);
    assert_string_equal(got, want);
    free(got);
    free(want);

    /* Delete every hundredth document in one batch. */
    persistor_write_op *ops = calloc(n_del, sizeof *ops);
    char(*ids)[16] = calloc(n_del, sizeof *ids);
    assert_true(ops != NULL && ids != NULL);
    for (uint32_t k = 0; k < n_del; k++) {
        snprintf(ids[k], sizeof ids[k], "m%07u", k * 100 + 17);
        ops[k] = (persistor_write_op){PERSISTOR_WRITE_DELETE, 0, ids[k], NULL};
    }
    durable_write_all(f, "many", ops, n_del, PERSISTOR_OK);
    count = durable_count(f, "many");
    print_message("many: deleted %u, count %llu; %.0f ms in all\n", n_del,
                  (unsigned long long)count, durable_ms_since(&t0));
    assert_int_equal(count, n - n_del);
    conf_assert_absent(f, "many", ids[0]);
    conf_assert_absent(f, "many", ids[n_del - 1]);
    bson_t *kept = many_doc(18);
    conf_assert_stored(f, "many", kept);
    bson_destroy(kept);
    free(ops);
    free(ids);
}

#define CASE(t) cmocka_unit_test_setup_teardown(t, conf_setup, conf_teardown)

const struct CMUnitTest conf_durable_tests[] = {
    CASE(test_data_survives_close_and_reopen),
    CASE(test_two_processes_writing_at_once_lose_nothing),
    CASE(test_documents_up_to_16_mib_round_trip),
    CASE(test_hundred_thousand_documents),
};
const size_t conf_n_durable_tests = sizeof conf_durable_tests / sizeof conf_durable_tests[0];
