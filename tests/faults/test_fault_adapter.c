/*
 * test_fault_adapter.c — the fault adapter does what the fault tests will
 * lean on: healthy calls reach the wrapped store, an armed fault answers
 * its code for exactly the calls it names (and nothing is applied, except
 * an UNCERTAIN write armed as applied), a fault armed forever lasts until
 * cleared, delays slow only their kind, counters count, another process
 * obeys the same control file, and inner_options reach the wrapped adapter
 * after the checks a profile would get.
 *
 * fault.so is loaded through the loader as in production; it wraps
 * memory.so, bare_memory.so (memory without optional slots) and, when it
 * is built, sqlite.so.  CMake passes their paths as FAULT_TEST_*_SO.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include <errno.h>
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

#include "buffer.h"
#include "config.h"
#include "fault_control.h"
#include "host.h"
#include "loader.h"
#include "profile.h"

#ifdef FAULT_TEST_SQLITE_SO
#define FAULT_TEST_HAS_SQLITE 1
#else
#define FAULT_TEST_HAS_SQLITE 0
#endif

typedef struct ft_world {
    char dir[4096];
    loader_module *module;
    const persistor_adapter *api;
    persistor_host *host;
} ft_world;

/* One fault instance with its own profile entry (which must outlive its
 * config), and the specs it was ensured with (which must outlive it). */
typedef struct ft_inst {
    ft_world *w;
    char values[3][4096], paths[3][64];
    profile_option options[3];
    profile_adapter entry;
    persistor_config *config;
    persistor_instance *inst;
    persistor_collection_spec specs[4];
    size_t n_specs;
} ft_inst;

static int ft_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int group_setup(void **state)
{
    static ft_world w;
    persistor_error err = {0};
    const char *tmp = getenv("TMPDIR");
    snprintf(w.dir, sizeof w.dir, "%s/persistor-test-fault-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(w.dir) == NULL)
        return -1;
    if (loader_acquire("fault", FAULT_TEST_FAULT_SO, NULL, host_default(), &w.module, &err) != 0) {
        print_error("loading %s: %s\n", FAULT_TEST_FAULT_SO, err.message);
        return -1;
    }
    w.api = loader_adapter(w.module);
    w.host = host_new("fault#0", NULL, NULL);
    *state = &w;
    return w.host ? 0 : -1;
}

static int group_teardown(void **state)
{
    ft_world *w = *state;
    host_free(w->host);
    loader_release(w->module);
    nftw(w->dir, ft_rm, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

/* A path in the test directory (a static buffer: copy it to keep it). */
static const char *ft_path(ft_world *w, const char *name)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", w->dir, name);
    return path;
}

/* A fresh control file for one test: healthy, nothing counted. */
static fault_control *ft_control(ft_world *w, const char *name)
{
    unlink(ft_path(w, name));
    fault_control *c = fault_control_open(ft_path(w, name));
    if (c == NULL)
        fail_msg("fault_control_open %s: %s", ft_path(w, name), strerror(errno));
    return c;
}

/* Open fault over `inner`; a NULL option is left out of the entry.  The
 * options sit at <test>:3:9, <test>:4:9... in messages. */
static int32_t ft_open(ft_world *w, ft_inst *m, const char *inner, const char *control_name,
                       const char *inner_options, persistor_error *err)
{
    static const char *const keys[] = {"inner", "control", "inner_options"};
    char control[4096];
    snprintf(control, sizeof control, "%s", ft_path(w, control_name));
    const char *values[] = {inner, control, inner_options};
    memset(m, 0, sizeof *m);
    m->w = w;
    size_t n = 0;
    for (size_t i = 0; i < 3; i++) {
        if (values[i] == NULL)
            continue;
        snprintf(m->values[n], sizeof m->values[n], "%s", values[i]);
        snprintf(m->paths[n], sizeof m->paths[n], "test.adapters[0].%s", keys[i]);
        m->options[n] = (profile_option){.key = (char *)keys[i], .value = m->values[n],
                                         .key_path = m->paths[n],
                                         .mark = {"<test>", (uint32_t)n + 3, 9}};
        n++;
    }
    m->entry = (profile_adapter){.type = "fault", .key_path = "test.adapters[0]",
                                 .mark = {"<test>", 2, 7}, .type_mark = {"<test>", 2, 13},
                                 .options = m->options, .n_options = n};
    int32_t rc = config_new(&m->entry, w->api, "fault#0", &m->config, err);
    if (rc == PERSISTOR_OK)
        rc = w->api->open(w->host, m->config, &m->inst, err);
    if (rc != PERSISTOR_OK)
        m->inst = NULL;
    return rc;
}

static void ft_close(ft_inst *m)
{
    if (m->inst != NULL)
        m->w->api->close(m->inst);
    config_free(m->config);
    m->inst = NULL;
    m->config = NULL;
}

/* Open and ensure collection "c" (with a TTL on "at" when asked). */
static void ft_open_ok(ft_world *w, ft_inst *m, const char *inner, const char *control_name,
                       const char *inner_options, int ttl)
{
    persistor_error err = {0};
    if (ft_open(w, m, inner, control_name, inner_options, &err) != PERSISTOR_OK)
        fail_msg("open fault over %s: %s", inner, err.message);
    m->specs[0] = (persistor_collection_spec){.struct_size = sizeof m->specs[0], .name = "c",
                                              .ttl_field = ttl ? "at" : NULL,
                                              .ttl_seconds = ttl ? 60 : 0};
    m->n_specs = 1;
    if (w->api->ensure_collection(m->inst, &m->specs[0], &err) != PERSISTOR_OK)
        fail_msg("ensure c: %s", err.message);
}

static bson_t *ft_doc(const char *id, int64_t at_ms)
{
    bson_t *doc = bson_new();
    BSON_APPEND_UTF8(doc, "_id", id);
    BSON_APPEND_INT32(doc, "n", 1);
    if (at_ms != 0)
        BSON_APPEND_DATE_TIME(doc, "at", at_ms);
    return doc;
}

/* Upsert `n` ids in one batch; returns the call's code, results[] filled. */
static int32_t ft_write(ft_inst *m, const char *const *ids, uint32_t n, int32_t *results,
                        persistor_error *err)
{
    bson_t *docs[8];
    persistor_write_op ops[8];
    assert_true(n <= 8);
    for (uint32_t i = 0; i < n; i++) {
        docs[i] = ft_doc(ids[i], 0);
        ops[i] = (persistor_write_op){PERSISTOR_WRITE_UPSERT, docs[i]->len, ids[i],
                                      bson_get_data(docs[i])};
        results[i] = -100;
    }
    int32_t rc = m->w->api->write(m->inst, "c", ops, n, results, err);
    for (uint32_t i = 0; i < n; i++)
        bson_destroy(docs[i]);
    return rc;
}

static int32_t ft_put(ft_inst *m, const char *id, persistor_error *err)
{
    int32_t result;
    return ft_write(m, &id, 1, &result, err);
}

static void ft_put_ok(ft_inst *m, const char *id)
{
    persistor_error err = {0};
    if (ft_put(m, id, &err) != PERSISTOR_OK)
        fail_msg("write %s: %s", id, err.message);
}

static int32_t ft_get(ft_inst *m, const char *id, persistor_error *err)
{
    persistor_buffer buf = {0};
    int32_t rc = m->w->api->get(m->inst, "c", id, &buf, err);
    buffer_free(&buf);
    return rc;
}

/* Is `id` stored?  Fails the test on an error. */
static int ft_has(ft_inst *m, const char *id)
{
    persistor_error err = {0};
    int32_t rc = ft_get(m, id, &err);
    if (rc != PERSISTOR_OK && rc != PERSISTOR_NOT_FOUND)
        fail_msg("get %s: %s", id, err.message);
    return rc == PERSISTOR_OK;
}

/* Run a query to its end: its code, and how many documents it gave. */
static int32_t ft_drain(ft_inst *m, uint64_t *n, persistor_error *err)
{
    persistor_query q = {.struct_size = sizeof q};
    persistor_cursor *cur;
    const uint8_t *doc;
    uint32_t len;
    *n = 0;
    int32_t rc = m->w->api->query(m->inst, "c", &q, &cur, err);
    if (rc != PERSISTOR_OK)
        return rc;
    while ((rc = m->w->api->cursor_next(cur, &doc, &len, err)) == PERSISTOR_OK)
        (*n)++;
    m->w->api->cursor_close(cur);
    return rc == PERSISTOR_ITER_END ? PERSISTOR_OK : rc;
}

static uint64_t ft_count(ft_inst *m)
{
    uint64_t n = 0;
    persistor_error err = {0};
    if (m->w->api->count(m->inst, "c", NULL, 0, &n, &err) != PERSISTOR_OK)
        fail_msg("count: %s", err.message);
    return n;
}

static char *ft_describe(ft_inst *m, char *out, size_t cap)
{
    persistor_buffer line = {0};
    persistor_error err = {0};
    if (m->w->api->describe(m->inst, &line, &err) != PERSISTOR_OK)
        fail_msg("describe: %s", err.message);
    snprintf(out, cap, "%.*s", (int)line.len, line.data ? (const char *)line.data : "");
    buffer_free(&line);
    return out;
}

static int64_t ft_elapsed_ms(const struct timespec *since)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (now.tv_sec - since->tv_sec) * 1000 + (now.tv_nsec - since->tv_nsec) / 1000000;
}

/* ---- healthy ----------------------------------------------------------- */

static void test_healthy_calls_reach_the_inner_store(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "healthy.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_MEMORY_SO, "healthy.ctl", NULL, 0);
    persistor_error err = {0};
    const char *ids[] = {"a", "b"};
    int32_t results[2];
    assert_int_equal(ft_write(&m, ids, 2, results, &err), PERSISTOR_OK);
    assert_int_equal(results[0], PERSISTOR_OK);
    assert_int_equal(results[1], PERSISTOR_OK);

    assert_true(ft_has(&m, "a"));
    assert_false(ft_has(&m, "nope"));
    assert_int_equal(w->api->exists(m.inst, "c", "b", &err), PERSISTOR_OK);
    assert_int_equal(w->api->exists(m.inst, "c", "nope", &err), PERSISTOR_NOT_FOUND);
    assert_int_equal(ft_count(&m), 2);
    persistor_collection_stats st = {sizeof st, 0, 0};
    assert_int_equal(w->api->stats(m.inst, "c", &st, &err), PERSISTOR_OK);
    assert_int_equal(st.item_count, 2);
    assert_true(st.total_size > 0);
    uint64_t n;
    assert_int_equal(ft_drain(&m, &n, &err), PERSISTOR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(w->api->ping(m.inst, &err), PERSISTOR_OK);
    char line[256];
    assert_string_equal(ft_describe(&m, line, sizeof line), "fault over memory 1.0.0");

    /* open + ensure; ping + describe; one write batch; get x2, exists x2,
     * count, stats, query and three cursor_next (two docs, then the end). */
    assert_int_equal(fault_calls(c, FAULT_OP_OPEN), 2);
    assert_int_equal(fault_calls(c, FAULT_OP_PING), 2);
    assert_int_equal(fault_calls(c, FAULT_OP_WRITE), 1);
    assert_int_equal(fault_calls(c, FAULT_OP_READ), 10);
    assert_int_equal(fault_calls(c, FAULT_OP_ALL), 15);
    assert_int_equal(fault_injected(c), 0);
    ft_close(&m);
    fault_control_close(c);
}

/* ---- injected faults --------------------------------------------------- */

static void test_retry_twice_on_writes_applies_nothing_then_succeeds(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "retry.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_MEMORY_SO, "retry.ctl", NULL, 0);
    fault_inject(c, FAULT_OP_WRITE, PERSISTOR_E_RETRY, 2, 0);
    const char *ids[] = {"a", "b"};
    int32_t results[2];
    for (int attempt = 0; attempt < 2; attempt++) {
        persistor_error err = {0};
        assert_int_equal(ft_write(&m, ids, 2, results, &err), PERSISTOR_E_RETRY);
        assert_int_equal(err.code, PERSISTOR_E_RETRY);
        assert_string_equal(err.message, "fault: injected E_RETRY on write");
        assert_int_equal(results[0], PERSISTOR_E_RETRY);
        assert_int_equal(results[1], PERSISTOR_E_RETRY);
        /* Reads are not armed, and see nothing applied. */
        assert_false(ft_has(&m, "a"));
        assert_false(ft_has(&m, "b"));
    }
    persistor_error err = {0};
    assert_int_equal(ft_write(&m, ids, 2, results, &err), PERSISTOR_OK);
    assert_int_equal(results[0], PERSISTOR_OK);
    assert_int_equal(results[1], PERSISTOR_OK);
    assert_true(ft_has(&m, "a") && ft_has(&m, "b"));
    assert_int_equal(fault_injected(c), 2);
    assert_int_equal(fault_calls(c, FAULT_OP_WRITE), 3);
    ft_close(&m);
    fault_control_close(c);
}

static void test_uncertain_applied_answers_uncertain_but_stores_the_doc(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "uncertain-applied.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_MEMORY_SO, "uncertain-applied.ctl", NULL, 0);
    fault_inject(c, FAULT_OP_WRITE, PERSISTOR_E_UNCERTAIN, 1, 1);
    const char *ids[] = {"x", "y"};
    int32_t results[2];
    persistor_error err = {0};
    assert_int_equal(ft_write(&m, ids, 2, results, &err), PERSISTOR_E_UNCERTAIN);
    assert_string_equal(err.message, "fault: injected E_UNCERTAIN on write");
    assert_int_equal(results[0], PERSISTOR_E_UNCERTAIN);
    assert_int_equal(results[1], PERSISTOR_E_UNCERTAIN);
    assert_true(ft_has(&m, "x") && ft_has(&m, "y"));
    ft_close(&m);
    fault_control_close(c);
}

static void test_uncertain_not_applied_stores_nothing(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "uncertain-lost.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_MEMORY_SO, "uncertain-lost.ctl", NULL, 0);
    fault_inject(c, FAULT_OP_WRITE, PERSISTOR_E_UNCERTAIN, 1, 0);
    persistor_error err = {0};
    assert_int_equal(ft_put(&m, "x", &err), PERSISTOR_E_UNCERTAIN);
    assert_false(ft_has(&m, "x"));
    ft_put_ok(&m, "x"); /* the count was one */
    assert_true(ft_has(&m, "x"));
    ft_close(&m);
    fault_control_close(c);
}

static void test_unavailable_forever_fails_every_write_and_read_until_cleared(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "down.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_MEMORY_SO, "down.ctl", NULL, 0);
    ft_put_ok(&m, "before");
    fault_inject(c, FAULT_OP_WRITE | FAULT_OP_READ, PERSISTOR_E_UNAVAILABLE, -1, 0);
    persistor_error err = {0};
    uint64_t n = 0;
    persistor_collection_stats st = {sizeof st, 0, 0};
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ft_put(&m, "during", &err), PERSISTOR_E_UNAVAILABLE);
        assert_int_equal(ft_get(&m, "before", &err), PERSISTOR_E_UNAVAILABLE);
        assert_string_equal(err.message, "fault: injected E_UNAVAILABLE on get");
        assert_int_equal(w->api->exists(m.inst, "c", "before", &err), PERSISTOR_E_UNAVAILABLE);
        assert_int_equal(w->api->count(m.inst, "c", NULL, 0, &n, &err),
                         PERSISTOR_E_UNAVAILABLE);
        assert_int_equal(w->api->stats(m.inst, "c", &st, &err), PERSISTOR_E_UNAVAILABLE);
        assert_int_equal(ft_drain(&m, &n, &err), PERSISTOR_E_UNAVAILABLE);
    }
    uint64_t removed = 7;
    assert_int_equal(w->api->expire(m.inst, "c", 0, &removed, &err), PERSISTOR_E_UNAVAILABLE);
    assert_int_equal(removed, 0);
    /* Not armed for pings: the store answers, it just fails the work. */
    assert_int_equal(w->api->ping(m.inst, &err), PERSISTOR_OK);
    assert_int_equal(fault_injected(c), 31);

    fault_clear(c);
    assert_false(ft_has(&m, "during"));
    assert_true(ft_has(&m, "before"));
    ft_put_ok(&m, "after");
    assert_int_equal(ft_drain(&m, &n, &err), PERSISTOR_OK);
    assert_int_equal(n, 2);
    assert_int_equal(fault_injected(c), 31);
    ft_close(&m);
    fault_control_close(c);
}

static void test_a_read_fault_can_cut_a_cursor_short(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "cursor.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_MEMORY_SO, "cursor.ctl", NULL, 0);
    ft_put_ok(&m, "a");
    ft_put_ok(&m, "b");
    persistor_query q = {.struct_size = sizeof q};
    persistor_cursor *cur;
    persistor_error err = {0};
    const uint8_t *doc;
    uint32_t len;
    assert_int_equal(w->api->query(m.inst, "c", &q, &cur, &err), PERSISTOR_OK);
    assert_int_equal(w->api->cursor_next(cur, &doc, &len, &err), PERSISTOR_OK);
    fault_inject(c, FAULT_OP_READ, PERSISTOR_E_UNAVAILABLE, 1, 0);
    assert_int_equal(w->api->cursor_next(cur, &doc, &len, &err), PERSISTOR_E_UNAVAILABLE);
    assert_string_equal(err.message, "fault: injected E_UNAVAILABLE on cursor_next");
    assert_int_equal(w->api->cursor_next(cur, &doc, &len, &err), PERSISTOR_OK);
    assert_int_equal(w->api->cursor_next(cur, &doc, &len, &err), PERSISTOR_ITER_END);
    w->api->cursor_close(cur);
    ft_close(&m);
    fault_control_close(c);
}

static void test_a_ping_fault_leaves_data_calls_alone(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "ping.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_MEMORY_SO, "ping.ctl", NULL, 0);
    fault_inject(c, FAULT_OP_PING, PERSISTOR_E_UNAVAILABLE, 2, 0);
    persistor_error err = {0};
    ft_put_ok(&m, "a");
    assert_true(ft_has(&m, "a"));
    assert_int_equal(w->api->ping(m.inst, &err), PERSISTOR_E_UNAVAILABLE);
    assert_string_equal(err.message, "fault: injected E_UNAVAILABLE on ping");
    persistor_buffer line = {0};
    assert_int_equal(w->api->describe(m.inst, &line, &err), PERSISTOR_E_UNAVAILABLE);
    buffer_free(&line);
    assert_int_equal(w->api->ping(m.inst, &err), PERSISTOR_OK);
    assert_int_equal(fault_injected(c), 2);
    ft_close(&m);
    fault_control_close(c);
}

static void test_an_open_fault_refuses_open_then_ensure(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "open.ctl");
    ft_inst m;
    persistor_error err = {0};
    fault_inject(c, FAULT_OP_OPEN, PERSISTOR_E_UNAVAILABLE, 1, 0);
    assert_int_equal(ft_open(w, &m, FAULT_TEST_MEMORY_SO, "open.ctl", NULL, &err),
                     PERSISTOR_E_UNAVAILABLE);
    assert_string_equal(err.message, "fault: injected E_UNAVAILABLE on open");
    ft_close(&m);

    assert_int_equal(ft_open(w, &m, FAULT_TEST_MEMORY_SO, "open.ctl", NULL, &err),
                     PERSISTOR_OK);
    fault_inject(c, FAULT_OP_OPEN, PERSISTOR_E_RETRY, 1, 0);
    m.specs[0] = (persistor_collection_spec){.struct_size = sizeof m.specs[0], .name = "c"};
    assert_int_equal(w->api->ensure_collection(m.inst, &m.specs[0], &err), PERSISTOR_E_RETRY);
    assert_string_equal(err.message, "fault: injected E_RETRY on ensure_collection");
    assert_int_equal(w->api->ensure_collection(m.inst, &m.specs[0], &err), PERSISTOR_OK);
    ft_put_ok(&m, "a");
    ft_close(&m);
    fault_control_close(c);
}

static void test_a_delay_slows_only_the_kinds_it_names(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "delay.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_MEMORY_SO, "delay.ctl", NULL, 0);
    persistor_error err = {0};
    fault_set_delay(c, FAULT_OP_PING, 150);
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    assert_int_equal(w->api->ping(m.inst, &err), PERSISTOR_OK);
    assert_true(ft_elapsed_ms(&start) >= 150);

    /* A delay and a fault together: a slow failure, like a timeout. */
    fault_set_delay(c, FAULT_OP_WRITE, 100);
    fault_inject(c, FAULT_OP_WRITE, PERSISTOR_E_UNAVAILABLE, 1, 0);
    clock_gettime(CLOCK_MONOTONIC, &start);
    assert_int_equal(ft_put(&m, "slow", &err), PERSISTOR_E_UNAVAILABLE);
    assert_true(ft_elapsed_ms(&start) >= 100);

    fault_clear(c);
    ft_put_ok(&m, "slow");
    assert_int_equal(fault_injected(c), 1);
    ft_close(&m);
    fault_control_close(c);
}

/* ---- the control file -------------------------------------------------- */

static void test_counters_are_per_kind_shared_and_kept_by_clear(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "counters.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_MEMORY_SO, "counters.ctl", NULL, 0);
    persistor_error err = {0};
    ft_put_ok(&m, "a");
    ft_put_ok(&m, "b");
    assert_true(ft_has(&m, "a"));
    fault_inject(c, FAULT_OP_READ, PERSISTOR_E_RETRY, -1, 0);
    assert_int_equal(ft_get(&m, "a", &err), PERSISTOR_E_RETRY);
    fault_clear(c);

    fault_control *other = fault_control_open(ft_path(w, "counters.ctl"));
    assert_non_null(other);
    assert_int_equal(fault_calls(other, FAULT_OP_OPEN), 2);
    assert_int_equal(fault_calls(other, FAULT_OP_WRITE), 2);
    assert_int_equal(fault_calls(other, FAULT_OP_READ), 2);
    assert_int_equal(fault_calls(other, FAULT_OP_WRITE | FAULT_OP_READ), 4);
    assert_int_equal(fault_calls(other, FAULT_OP_PING), 0);
    assert_int_equal(fault_injected(other), 1);
    /* Armed through one mapping, obeyed through the other. */
    fault_inject(other, FAULT_OP_WRITE, PERSISTOR_E_RETRY, 1, 0);
    assert_int_equal(ft_put(&m, "c", &err), PERSISTOR_E_RETRY);
    assert_int_equal(fault_injected(c), 2);
    fault_control_close(other);
    ft_close(&m);
    fault_control_close(c);
}

static void test_a_file_that_is_not_a_control_file_is_refused(void **state)
{
    ft_world *w = *state;
    FILE *f = fopen(ft_path(w, "foreign.ctl"), "w");
    assert_non_null(f);
    fputs("not a control block", f);
    fclose(f);
    errno = 0;
    assert_null(fault_control_open(ft_path(w, "foreign.ctl")));
    assert_int_equal(errno, EINVAL);

    ft_inst m;
    persistor_error err = {0};
    assert_int_equal(ft_open(w, &m, FAULT_TEST_MEMORY_SO, "foreign.ctl", NULL, &err),
                     PERSISTOR_E_CONFIG);
    assert_non_null(strstr(err.message, "<test>:4:9: test.adapters[0].control: cannot map "));
    ft_close(&m);
}

/* The child opens its own instance over the same sqlite file and control
 * file; exit codes say which of its checks failed. */
static int ft_child(ft_world *w)
{
    ft_inst m;
    persistor_error err = {0};
    char options[4200];
    snprintf(options, sizeof options, "file=%s", ft_path(w, "fork.sqlite"));
    if (ft_open(w, &m, FAULT_TEST_SQLITE_SO, "fork.ctl", options, &err) != PERSISTOR_OK)
        return 10;
    m.specs[0] = (persistor_collection_spec){.struct_size = sizeof m.specs[0], .name = "c"};
    int status = 0;
    if (w->api->ensure_collection(m.inst, &m.specs[0], &err) != PERSISTOR_OK)
        status = 11;
    else if (ft_put(&m, "child-1", &err) != PERSISTOR_E_UNAVAILABLE) /* the parent's fault */
        status = 12;
    else if (ft_put(&m, "child-2", &err) != PERSISTOR_OK)
        status = 13;
    ft_close(&m);
    fault_control *c = fault_control_open(ft_path(w, "fork.ctl"));
    if (c == NULL)
        return 14;
    fault_inject(c, FAULT_OP_READ, PERSISTOR_E_RETRY, 1, 0); /* for the parent */
    fault_control_close(c);
    return status;
}

static void test_a_forked_process_obeys_the_parents_injection_and_back(void **state)
{
#ifndef FAULT_TEST_SQLITE_SO
    skip();
#else
    ft_world *w = *state;
    fault_control *c = ft_control(w, "fork.ctl");
    fault_inject(c, FAULT_OP_WRITE, PERSISTOR_E_UNAVAILABLE, 1, 0);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) { /* the child frees what it inherited: valgrind checks it too */
        fault_control_close(c);
        _exit(ft_child(w));
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(fault_calls(c, FAULT_OP_WRITE), 2);
    assert_int_equal(fault_injected(c), 1);

    ft_inst m;
    char options[4200];
    snprintf(options, sizeof options, "file=%s", ft_path(w, "fork.sqlite"));
    ft_open_ok(w, &m, FAULT_TEST_SQLITE_SO, "fork.ctl", options, 0);
    persistor_error err = {0};
    assert_int_equal(ft_get(&m, "child-2", &err), PERSISTOR_E_RETRY); /* the child's fault */
    assert_true(ft_has(&m, "child-2"));
    assert_false(ft_has(&m, "child-1"));
    assert_int_equal(fault_injected(c), 2);
    ft_close(&m);
    fault_control_close(c);
#endif
}

/* Four processes hammer one armed count: each call takes one off it with a
 * compare-and-swap, so exactly `count` calls fail, whoever makes them. */
static void test_an_armed_count_is_shared_exactly_between_processes(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "shared.ctl");
    fault_inject(c, FAULT_OP_PING, PERSISTOR_E_RETRY, 50, 0);
    fflush(NULL);
    pid_t pids[4];
    for (int i = 0; i < 4; i++) {
        pids[i] = fork();
        assert_true(pids[i] >= 0);
        if (pids[i] == 0) {
            int failed = 0, applied;
            for (int k = 0; k < 40; k++)
                failed += fault_control_hit(c, FAULT_OP_PING, &applied) == PERSISTOR_E_RETRY;
            fault_control_close(c);
            _exit(failed);
        }
    }
    int failed = 0;
    for (int i = 0; i < 4; i++) {
        int status = 0;
        assert_int_equal(waitpid(pids[i], &status, 0), pids[i]);
        assert_true(WIFEXITED(status));
        failed += WEXITSTATUS(status);
    }
    assert_int_equal(failed, 50);
    assert_int_equal(fault_injected(c), 50);
    assert_int_equal(fault_calls(c, FAULT_OP_PING), 160);
    fault_control_close(c);
}

/* ---- inner_options ----------------------------------------------------- */

static void test_inner_options_reach_the_inner_typed(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "options.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_MEMORY_SO, "options.ctl", " max_items = 2 ;", 0);
    ft_put_ok(&m, "a");
    ft_put_ok(&m, "b");
    ft_put_ok(&m, "c");
    assert_int_equal(ft_count(&m), 2); /* memory evicted the oldest */
    assert_false(ft_has(&m, "a"));
    ft_close(&m);
    fault_control_close(c);
}

static void test_the_sqlite_file_option_reaches_sqlite(void **state)
{
#ifndef FAULT_TEST_SQLITE_SO
    skip();
#else
    ft_world *w = *state;
    fault_control *c = ft_control(w, "sqlite.ctl");
    char file[4096], options[4200];
    snprintf(file, sizeof file, "%s", ft_path(w, "sub/store.sqlite"));
    snprintf(options, sizeof options, "file=%s;busy_timeout_ms=250;synchronous=normal", file);
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_SQLITE_SO, "sqlite.ctl", options, 0);
    ft_put_ok(&m, "kept");
    fault_inject(c, FAULT_OP_WRITE, PERSISTOR_E_UNCERTAIN, 1, 1);
    persistor_error err = {0};
    assert_int_equal(ft_put(&m, "uncertain", &err), PERSISTOR_E_UNCERTAIN);
    ft_close(&m);
    struct stat st;
    assert_int_equal(stat(file, &st), 0);

    /* The plain sqlite adapter on that file sees both documents. */
    loader_module *sqlite;
    assert_int_equal(loader_acquire("sqlite", FAULT_TEST_SQLITE_SO, NULL, host_default(),
                                    &sqlite, &err), PERSISTOR_OK);
    const persistor_adapter *api = loader_adapter(sqlite);
    profile_option opt = {.key = "file", .value = file, .key_path = "test.adapters[0].file",
                          .mark = {"<test>", 3, 9}};
    profile_adapter entry = {.type = "sqlite", .key_path = "test.adapters[0]",
                             .mark = {"<test>", 2, 7}, .type_mark = {"<test>", 2, 13},
                             .options = &opt, .n_options = 1};
    persistor_config *config;
    persistor_instance *inst;
    assert_int_equal(config_new(&entry, api, "sqlite#0", &config, &err), PERSISTOR_OK);
    assert_int_equal(api->open(w->host, config, &inst, &err), PERSISTOR_OK);
    persistor_collection_spec spec = {.struct_size = sizeof spec, .name = "c"};
    assert_int_equal(api->ensure_collection(inst, &spec, &err), PERSISTOR_OK);
    assert_int_equal(api->exists(inst, "c", "kept", &err), PERSISTOR_OK);
    assert_int_equal(api->exists(inst, "c", "uncertain", &err), PERSISTOR_OK);
    api->close(inst);
    config_free(config);
    loader_release(sqlite);
    fault_control_close(c);
#endif
}

/* Open fault over `inner` with `inner_options`; expect E_CONFIG whose
 * message contains `want`. */
static void ft_refused(ft_world *w, const char *inner, const char *inner_options,
                       const char *want)
{
    ft_inst m;
    persistor_error err = {0};
    int32_t rc = ft_open(w, &m, inner, "refused.ctl", inner_options, &err);
    ft_close(&m);
    if (rc != PERSISTOR_E_CONFIG || strstr(err.message, want) == NULL)
        fail_msg("inner %s, inner_options \"%s\": got %d \"%s\", want E_CONFIG with \"%s\"",
                 inner, inner_options ? inner_options : "(none)", rc, err.message, want);
}

static void test_inner_options_are_checked_like_a_profile(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "refused.ctl");
    const char *at = "<test>:5:9: test.adapters[0].inner_options: ";
    char want[512];
    snprintf(want, sizeof want,
             "%snosuch: unknown option for adapter memory (it takes: max_items)", at);
    ft_refused(w, FAULT_TEST_MEMORY_SO, "nosuch=1", want);
    snprintf(want, sizeof want, "%smax_items: expected an integer, got \"many\"", at);
    ft_refused(w, FAULT_TEST_MEMORY_SO, "max_items=many", want);
    snprintf(want, sizeof want, "%s\"max_items\" is not key=value", at);
    ft_refused(w, FAULT_TEST_MEMORY_SO, "max_items", want);
    snprintf(want, sizeof want, "%smax_items: given twice", at);
    ft_refused(w, FAULT_TEST_MEMORY_SO, "max_items=1;max_items=2", want);
    /* The inner's own config_error points at inner_options too. */
    snprintf(want, sizeof want, "%smax_items: must be >= 0", at);
    ft_refused(w, FAULT_TEST_MEMORY_SO, "max_items=-1", want);
#ifdef FAULT_TEST_SQLITE_SO
    /* No inner_options in the entry: the message points at the entry. */
    ft_refused(w, FAULT_TEST_SQLITE_SO, NULL,
               "<test>:2:7: test.adapters[0].inner_options: adapter sqlite needs option "
               "'file'");
#endif
    ft_refused(w, ft_path(w, "missing.so"), NULL,
               "<test>:3:9: test.adapters[0].inner: ");
    char control[4096];
    snprintf(control, sizeof control, "%s", ft_path(w, "refused.ctl"));
    ft_refused(w, control, NULL, ": cannot load ");
    assert_int_equal(fault_calls(c, FAULT_OP_OPEN), 7 + (FAULT_TEST_HAS_SQLITE ? 1 : 0));
    fault_control_close(c);
}

/* ---- an inner without optional slots ----------------------------------- */

static void test_optional_slots_the_inner_lacks_go_the_hosts_way(void **state)
{
    ft_world *w = *state;
    fault_control *c = ft_control(w, "bare.ctl");
    ft_inst m;
    ft_open_ok(w, &m, FAULT_TEST_BARE_SO, "bare.ctl", "max_items=0", 1);
    persistor_error err = {0};
    int64_t now = w->host->now_ms(w->host);
    const char *ids[] = {"old", "new", "none"};
    int64_t at[] = {now - 3600 * 1000, now, 0};
    for (int i = 0; i < 3; i++) {
        bson_t *doc = ft_doc(ids[i], at[i]);
        persistor_write_op op = {PERSISTOR_WRITE_UPSERT, doc->len, ids[i], bson_get_data(doc)};
        int32_t result;
        assert_int_equal(w->api->write(m.inst, "c", &op, 1, &result, &err), PERSISTOR_OK);
        bson_destroy(doc);
    }
    assert_int_equal(ft_count(&m), 3);
    bson_t *filter = BCON_NEW("_id", BCON_UTF8("new"));
    uint64_t n = 0;
    assert_int_equal(w->api->count(m.inst, "c", bson_get_data(filter), filter->len, &n, &err),
                     PERSISTOR_OK);
    assert_int_equal(n, 1);
    bson_destroy(filter);
    persistor_collection_stats st = {sizeof st, 0, 0};
    assert_int_equal(w->api->stats(m.inst, "c", &st, &err), PERSISTOR_OK);
    assert_int_equal(st.item_count, 3);
    assert_true(st.total_size > 0);
    assert_int_equal(w->api->exists(m.inst, "c", "old", &err), PERSISTOR_OK);
    assert_int_equal(w->api->exists(m.inst, "c", "gone", &err), PERSISTOR_NOT_FOUND);

    uint64_t removed = 0;
    assert_int_equal(w->api->expire(m.inst, "c", now - 60 * 1000, &removed, &err), PERSISTOR_OK);
    assert_int_equal(removed, 1);
    assert_false(ft_has(&m, "old"));
    assert_true(ft_has(&m, "new") && ft_has(&m, "none"));
    char line[256];
    assert_string_equal(ft_describe(&m, line, sizeof line), "fault over bare_memory 1.0.0");

    /* Done through the inner's query and get, but one call of their kind. */
    uint64_t reads = fault_calls(c, FAULT_OP_READ);
    assert_int_equal(ft_count(&m), 2);
    assert_int_equal(fault_calls(c, FAULT_OP_READ), reads + 1);
    fault_inject(c, FAULT_OP_READ, PERSISTOR_E_RETRY, 1, 0);
    assert_int_equal(w->api->exists(m.inst, "c", "new", &err), PERSISTOR_E_RETRY);
    assert_string_equal(err.message, "fault: injected E_RETRY on exists");
    ft_close(&m);
    fault_control_close(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_healthy_calls_reach_the_inner_store),
        cmocka_unit_test(test_retry_twice_on_writes_applies_nothing_then_succeeds),
        cmocka_unit_test(test_uncertain_applied_answers_uncertain_but_stores_the_doc),
        cmocka_unit_test(test_uncertain_not_applied_stores_nothing),
        cmocka_unit_test(test_unavailable_forever_fails_every_write_and_read_until_cleared),
        cmocka_unit_test(test_a_read_fault_can_cut_a_cursor_short),
        cmocka_unit_test(test_a_ping_fault_leaves_data_calls_alone),
        cmocka_unit_test(test_an_open_fault_refuses_open_then_ensure),
        cmocka_unit_test(test_a_delay_slows_only_the_kinds_it_names),
        cmocka_unit_test(test_counters_are_per_kind_shared_and_kept_by_clear),
        cmocka_unit_test(test_a_file_that_is_not_a_control_file_is_refused),
        cmocka_unit_test(test_a_forked_process_obeys_the_parents_injection_and_back),
        cmocka_unit_test(test_an_armed_count_is_shared_exactly_between_processes),
        cmocka_unit_test(test_inner_options_reach_the_inner_typed),
        cmocka_unit_test(test_the_sqlite_file_option_reaches_sqlite),
        cmocka_unit_test(test_inner_options_are_checked_like_a_profile),
        cmocka_unit_test(test_optional_slots_the_inner_lacks_go_the_hosts_way),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
