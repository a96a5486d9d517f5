/*
 * faults_mongod.c — the router's resilience with a MongoDB primary that
 * fails at the wire: the mock mongod of tests/mongod (its control port
 * refuses and closes connections, hangs, answers error codes), lmdb as
 * the fallback.
 *
 *   b. the server is "killed" (refuse on, close) after 30% of 4 writers'
 *      10,000 appends and "restarted" (refuse off) after 70%;
 *   c. the server stops answering (hang on): the first calls wait out
 *      socket_timeout_ms, the breaker opens, then 200 calls are answered by
 *      the fallback without a byte sent to the primary;
 *   e. a retryable code (91, ShutdownInProgress) twice: the write succeeds
 *      on the primary after two retries; a permanent one (2, BadValue, the
 *      adapter's E_INVALID) is the caller's answer, nothing fails over;
 *   h. audit records and telemetry saved while the server is "killed" are
 *      answered by the fallback and end up in it once each after the
 *      "restart", the newest workflow result winning.
 *
 * Each case uses a database of its own and ends with THE INVARIANT
 * (faults_common.h), read back from the mock through a plain mongodb
 * handle on that database.
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

#include <mongoc/mongoc.h>

#include "fault_control.h"
#include "faults_common.h"
#include "mongod_client.h"

static char fm_uri[128];

static void fm_control_ok(const char *cmd)
{
    const char *r = mongod_control("%s", cmd);
    if (strncmp(r, "ok", 2) != 0)
        fail_msg("mock mongod control `%s`: %s", cmd, r);
}

static int fm_group_setup(void **state)
{
    (void)state;
    int port = mongod_read_int("port");
    if (port <= 0 || mongod_read_int("control_port") <= 0) {
        print_error("PERSISTOR_MONGOD_DIR=%s: no port: is the mock mongod running? "
                    "(run through ctest: the mongod fixture starts it)\n",
                    getenv("PERSISTOR_MONGOD_DIR") ? getenv("PERSISTOR_MONGOD_DIR") : "");
        return -1;
    }
    snprintf(fm_uri, sizeof fm_uri, "mongodb://127.0.0.1:%d/", port);
    return 0;
}

static int fm_group_teardown(void **state)
{
    (void)state;
    mongoc_cleanup(); /* the adapter never does (NO_UNLOAD): for leak checkers */
    return 0;
}

static int fm_setup(void **state)
{
    const char *r = mongod_control("reset");
    if (strncmp(r, "ok", 2) != 0) {
        print_error("mock mongod reset: %s\n", r);
        return -1;
    }
    return fx_setup(state);
}

static int fm_teardown(void **state)
{
    mongod_control("reset"); /* never leave the server refusing or hung */
    return fx_teardown(state);
}

/* A database of this run and case, so reruns never see old records. */
static void fm_database(char *out, size_t cap, const char *tag)
{
    snprintf(out, cap, "faults_%s_%ld_%lld", tag, (long)getpid(),
             (long long)(fx_now_us() % 1000000000));
}

/* "main" (mongodb -> lmdb), "primary" (mongodb alone), "fallback" (lmdb).
 * With `control`, the primary of "main" is fault over mongodb. */
static void fm_profiles(fx_world *w, const char *database, int select_ms, int socket_ms,
                        const char *control)
{
    char env[FX_PATH_MAX];
    fx_path(w, "fallback.lmdb", env);
    fx_yaml y;
    fx_yaml_init(&y);
    fx_yaml_profile(&y, "main");
    if (control != NULL) {
        char inner[512];
        snprintf(inner, sizeof inner,
                 "uri=%s;database=%s;server_selection_timeout_ms=%d;connect_timeout_ms=%d;"
                 "socket_timeout_ms=%d",
                 fm_uri, database, select_ms, select_ms, socket_ms);
        fx_yaml_fault(&y, control, FAULTS_MONGODB_SO, inner);
    } else {
        fx_yaml_mongodb(&y, FAULTS_MONGODB_SO, fm_uri, database, select_ms, socket_ms);
    }
    fx_yaml_lmdb(&y, env);
    fx_yaml_end(&y, "fail_closed");
    fx_yaml_profile(&y, "primary");
    fx_yaml_mongodb(&y, FAULTS_MONGODB_SO, fm_uri, database, 5000, 30000);
    fx_yaml_end(&y, NULL);
    fx_yaml_profile(&y, "fallback");
    fx_yaml_lmdb(&y, env);
    fx_yaml_end(&y, NULL);
    fx_yaml_write(w, &y);
}

/* The count of command `name` in the mock's `stats` (0 when absent). */
static long fm_command_count(const char *name)
{
    const char *r = mongod_control("stats");
    if (strncmp(r, "ok", 2) != 0)
        fail_msg("mock mongod stats: %s", r);
    char key[64];
    snprintf(key, sizeof key, "\"%s\": ", name);
    const char *at = strstr(r, key);
    return at != NULL ? strtol(at + strlen(key), NULL, 10) : 0;
}

/* ---- b. killed and restarted in the middle of a run -------------------- */

static void fm_kill_restart(void *ctx, size_t step)
{
    (void)ctx;
    if (step == 0) {
        /* "Killed": no new connection is accepted and the open ones drop.
         * Unlike a real kill the mock keeps its data: what it acknowledged
         * before stays, as a mongod's journal would keep it. */
        fm_control_ok("refuse on");
        fm_control_ok("close");
    } else {
        fm_control_ok("refuse off"); /* "restarted", with its data */
    }
}

static void test_mongod_killed_mid_run_of_4_writers_loses_nothing(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "b-killed-mid-run-mongod");
    char db[96];
    fm_database(db, sizeof db, "b");
    fm_profiles(w, db, 500, 10000, NULL);
    persistor *p = fx_open(w, "main");
    size_t n = fx_scaled(10000, 400);
    const size_t after = 100; /* appended once the primary serves again */
    fx_ids *ids = fx_ids_new("b", n + after);
    size_t at[2] = {n * 3 / 10, n * 7 / 10};
    fx_controller ctl;
    fx_controller_start(&ctl, ids, at, 2, fm_kill_restart, NULL);
    int64_t t0 = fx_now_ms();
    fx_write_range(p, ids, 0, n, 4);
    int64_t wrote_ms = fx_now_ms() - t0;
    assert_int_equal(fx_controller_join(&ctl), 2);
    int64_t ms = fx_wait_recovered(p, "the mock mongod restarted");
    assert_int_equal(fx_journal_pending(p), 0);
    fx_write_to_primary(p, ids, n, n + after);
    persistor_close(p);

    fx_counts cnt;
    fx_check_invariant(w, "primary", ids, &cnt);
    printf("[%s] %zu appends in %lld ms; degraded %lld ms more after the last one; then %zu "
           "appends taken by the primary\n",
           w->name, n, (long long)wrote_ms, (long long)ms, after);
    assert_int_equal(cnt.failed, 0);
    assert_true(cnt.via_fallback > 0);
    assert_true(cnt.failovers >= 1);
    fx_fallback_is_empty(w);
    fx_ids_free(ids);
    fx_end(w);
}

/* ---- c. stops answering ----------------------------------------------- */

/*
 * The mock reads a hung request and drops it without counting it in
 * `stats`, so the stats cannot tell whether a call reached the server.
 * The primary is therefore fault over mongodb, never armed: fault_calls
 * counts every call that reached the adapter, whatever the server did.
 */
static void test_mongod_hangs_breaker_opens_then_calls_never_reach_it(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "c-mongod-hangs");
    char db[96], ctl[FX_PATH_MAX];
    fm_database(db, sizeof db, "c");
    fx_path(w, "primary.ctl", ctl);
    int timeout = fx_scale() < 1.0 ? 3000 : 1500;
    fm_profiles(w, db, timeout, timeout, ctl);
    fault_control *c = fx_control_open(w, "primary.ctl");
    persistor *p = fx_open(w, "main");
    const size_t healthy = 20, calls = 200;
    fx_ids *ids = fx_ids_new("c", healthy + 5 + calls);
    for (size_t i = 0; i < healthy; i++)
        fx_append_ok(p, ids, i);
    assert_false(persistor_degraded(p));

    fm_control_ok("hang on");
    fx_calls_skip_open_primary(w->name, p, c, ids, healthy, calls);

    fm_control_ok("hang off");
    int64_t ms = fx_wait_recovered(p, "the mock mongod answers again");
    assert_int_equal(fx_journal_pending(p), 0);
    persistor_close(p);
    fx_counts cnt;
    fx_check_invariant(w, "primary", ids, &cnt);
    printf("[%s] recovered %lld ms after `hang off`\n", w->name, (long long)ms);
    assert_int_equal(cnt.failed, 0);
    assert_true(cnt.via_fallback >= calls);
    assert_true(cnt.replayed >= cnt.via_fallback);
    fx_fallback_is_empty(w);
    fault_control_close(c);
    fx_ids_free(ids);
    fx_end(w);
}

/* ---- e. retryable versus permanent ------------------------------------ */

static void test_mongod_retryable_code_succeeds_on_the_primary_after_retries(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "e-mongod-retryable");
    char db[96];
    fm_database(db, sizeof db, "e1");
    /* ShutdownInProgress makes libmongoc forget the server: the retry
     * waits for it to be found again, well within 5 s. */
    fm_profiles(w, db, 5000, 10000, NULL);
    persistor *p = fx_open(w, "main");
    fx_ids *ids = fx_ids_new("e", 4);
    fx_append_ok(p, ids, 0);
    fm_control_ok("clearstats");
    fm_control_ok("errors 91 2");
    persistor_error err = {0};
    assert_int_equal(fx_append(p, ids, 1, &err), PERSISTOR_OK);
    assert_int_equal(fm_command_count("insert"), 3); /* two refused, one taken */
    assert_int_equal(fx_log_count(w, "retry_scheduled", "\"adapter\":\"mongodb#0\""), 2);
    assert_int_equal(fx_log_count(w, "retry_scheduled", "\"code\":\"E_RETRY\""), 2);
    assert_int_equal(fx_log_count(w, "adapter_failover", NULL), 0);
    assert_false(persistor_degraded(p));
    fx_breaker_is(p, "closed", 0);
    persistor_close(p);
    fx_counts cnt;
    fx_check_invariant(w, "primary", ids, &cnt);
    assert_int_equal(cnt.acked, 2);
    assert_int_equal(cnt.replayed, 0);
    fx_fallback_is_empty(w);
    fx_ids_free(ids);
    fx_end(w);
}

static void test_mongod_permanent_code_is_the_answer_nothing_fails_over(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "e-mongod-permanent");
    char db[96];
    fm_database(db, sizeof db, "e2");
    fm_profiles(w, db, 2000, 10000, NULL);
    persistor *p = fx_open(w, "main");
    fx_ids *ids = fx_ids_new("e", 4);
    fx_append_ok(p, ids, 0);
    fm_control_ok("clearstats");
    fm_control_ok("errors 2 1"); /* BadValue: the adapter's E_INVALID */
    persistor_error err = {0};
    assert_int_equal(fx_append(p, ids, 1, &err), PERSISTOR_E_INVALID);
    assert_non_null(strstr(err.message, "mongodb#0"));
    assert_int_equal(fm_command_count("insert"), 1);
    assert_int_equal(fx_log_count(w, "retry_scheduled", NULL), 0);
    assert_int_equal(fx_log_count(w, "adapter_failover", NULL), 0);
    assert_false(persistor_degraded(p));
    fx_append_ok(p, ids, 2); /* the primary still takes writes */
    fx_breaker_is(p, "closed", 0);
    persistor_close(p);
    fx_counts cnt;
    fx_check_invariant(w, "primary", ids, &cnt);
    assert_int_equal(cnt.acked, 2);
    assert_int_equal(cnt.failed, 1);
    assert_int_equal(cnt.stored_unacked, 0);
    fx_fallback_is_empty(w);
    fx_ids_free(ids);
    fx_end(w);
}

/* ---- h. audit records during an outage --------------------------------- */

static void test_mongod_down_audit_saves_reach_it_once_after_restart(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "h-audit-outage-mongod");
    char db[96];
    fm_database(db, sizeof db, "h");
    fm_profiles(w, db, 500, 10000, NULL);
    persistor *p = fx_open(w, "main");
    fx_audit a;
    memset(&a, 0, sizeof a);
    fx_audit_before(p, &a);

    fm_control_ok("refuse on"); /* "killed", keeping its data (see b) */
    fm_control_ok("close");
    fx_audit_during(p, &a);
    assert_int_equal(fx_journal_pending(p), FX_AUDIT_OUTAGE_WRITES);

    fm_control_ok("refuse off");
    fx_wait_recovered(p, "the mock mongod restarted");
    assert_int_equal(fx_journal_pending(p), 0);
    persistor_close(p);
    fx_audit_check(w, "primary", &a);
    fx_audit_fallback_is_empty(w);
    fx_end(w);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fm_setup, fm_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_mongod_killed_mid_run_of_4_writers_loses_nothing),
        T(test_mongod_hangs_breaker_opens_then_calls_never_reach_it),
        T(test_mongod_retryable_code_succeeds_on_the_primary_after_retries),
        T(test_mongod_permanent_code_is_the_answer_nothing_fails_over),
        T(test_mongod_down_audit_saves_reach_it_once_after_restart),
    };
    return cmocka_run_group_tests(tests, fm_group_setup, fm_group_teardown);
}
