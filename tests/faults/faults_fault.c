/*
 * faults_fault.c — the router's resilience against a primary that fails on
 * command: fault.so (tests/faults/fault_control.h) over sqlite as the
 * primary, lmdb as the fallback, in one process.
 *
 *   a. the primary is down when the handle opens;
 *   b. it dies in the middle of 4 writers' run and comes back (the same
 *      story as faults_mongod.c's, without the network);
 *   c. it stops answering (every call slow, then no answer): once the
 *      breaker is open, calls never touch it;
 *   d. it flaps: down, up, RETRY bursts, writes failing while pings pass,
 *      UNCERTAIN answers to applied writes; and replays running among 8
 *      writers leave no copy behind in the fallback;
 *   e. RETRY twice succeeds on the primary; RETRY forever fails over after
 *      max_attempts; UNCERTAIN-but-applied is retried and stored once;
 *      CORRUPT, INVALID and CONFIG are the answer, neither retried nor
 *      failed over;
 *   g. every adapter down: fail_closed returns E_UNAVAILABLE, fail_open
 *      returns NOT_STORED and logs snapshot_persist_failed with the id;
 *      the same for audit records and telemetry with no fallback at all;
 *   h. audit records and telemetry saved during an outage are answered by
 *      the fallback and end up in the primary once each, the newest
 *      workflow result winning.
 *
 * Each case ends with THE INVARIANT (faults_common.h) and prints its
 * counts.  Case f, a process killed during replay, is faults_replay.c.
 */
#define _XOPEN_SOURCE 700

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "fault_control.h"
#include "faults_common.h"

/* Every id of [from, to) was acknowledged. */
static void ft_all_acked(const fx_ids *ids, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        if (!fx_acked(ids->answer[i]))
            fail_msg("id %zu: %s, expected OK or EXISTS", i, persistor_rc_name(ids->answer[i]));
}

/* The reads a degraded handle answers from the fallback, all marked. */
static void ft_reads_are_degraded(persistor *p, const fx_ids *ids, size_t stored, bool degraded)
{
    char id[FX_ID_MAX];
    fx_id(ids, 0, id);
    persistor_error err = {0};
    persistor_snapshot *s = NULL;
    assert_int_equal(persistor_snapshot_get(p, id, &s, &err), PERSISTOR_OK);
    assert_int_equal(s->degraded != 0, degraded);
    persistor_snapshot_free(s);

    persistor_snapshot_iter *it = NULL;
    assert_int_equal(persistor_snapshot_load(p, fx_xc(0), &it, &err), PERSISTOR_OK);
    assert_int_equal(persistor_snapshot_iter_degraded(it) != 0, degraded);
    const persistor_snapshot *snap;
    size_t loaded = 0;
    int32_t rc;
    while ((rc = persistor_snapshot_iter_next(it, &snap, &err)) == PERSISTOR_OK) {
        assert_int_equal(snap->degraded != 0, degraded);
        loaded++;
    }
    assert_int_equal(rc, PERSISTOR_ITER_END);
    persistor_snapshot_iter_free(it);
    assert_int_equal(loaded, (stored + FX_N_XC - 1) / FX_N_XC);

    persistor_string_list list = {0};
    assert_int_equal(persistor_snapshot_list_hashes(p, fx_xc(1), &list, &err), PERSISTOR_OK);
    assert_int_equal(list.degraded != 0, degraded);
    persistor_string_list_free(&list);

    persistor_stats st;
    memset(&st, 0, sizeof st);
    assert_int_equal(persistor_stats_get(p, &st, &err), PERSISTOR_OK);
    assert_int_equal(st.degraded != 0, degraded);
    assert_string_equal(st.adapter_type, degraded ? "lmdb" : "fault");
    assert_int_equal(st.item_count, stored);
    assert_int_equal(persistor_degraded(p) != 0, degraded);
}

/* ---- a. down at open -------------------------------------------------- */

static void test_primary_down_at_open_fallback_serves_then_replays(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "a-down-at-open");
    fx_profiles_fault_sqlite_lmdb(w, "fail_closed");
    fault_control *c = fx_control_open(w, "primary.ctl");
    fault_inject(c, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);

    persistor *p = fx_open(w, "main"); /* the fallback answers: open succeeds */
    assert_true(persistor_degraded(p));
    persistor_health h;
    fx_health(p, &h);
    assert_int_equal(h.count, 2);
    assert_true(h.degraded);
    assert_string_equal(h.adapters[0].breaker, "open");
    assert_int_equal(h.adapters[0].status, PERSISTOR_E_UNAVAILABLE);
    assert_non_null(strstr(h.adapters[0].message, "E_UNAVAILABLE"));
    assert_string_equal(h.adapters[1].breaker, "closed");
    assert_int_equal(h.adapters[1].status, PERSISTOR_OK);
    assert_int_equal(h.adapters[1].journal_pending, 0);
    assert_string_equal(h.durability, "durable");
    persistor_health_free(&h);

    size_t n = fx_scaled(1000, 100);
    fx_ids *ids = fx_ids_new("a", n);
    uint64_t data_calls = fault_calls(c, FAULT_OP_WRITE | FAULT_OP_READ);
    fx_write_range(p, ids, 0, n, 2);
    ft_all_acked(ids, 0, n);
    ft_reads_are_degraded(p, ids, n, true);
    /* Skipped, never tried: no write or read reached the primary. */
    assert_int_equal(fault_calls(c, FAULT_OP_WRITE | FAULT_OP_READ), data_calls);

    fx_health(p, &h);
    assert_string_equal(h.adapters[0].breaker, "open");
    assert_true(h.adapters[0].breaker_open_ms > 0);
    assert_int_equal(h.adapters[1].journal_pending, n);
    persistor_health_free(&h);

    fault_clear(c);
    int64_t ms = fx_wait_recovered(p, "the primary came back");
    fx_health(p, &h);
    assert_false(h.degraded);
    assert_string_equal(h.adapters[0].breaker, "closed");
    assert_int_equal(h.adapters[0].breaker_open_ms, 0);
    assert_int_equal(h.adapters[1].journal_pending, 0);
    persistor_health_free(&h);
    ft_reads_are_degraded(p, ids, n, false);
    persistor_close(p);

    assert_true(fx_log_count(w, "adapter_failover", "\"adapter\":\"fault#0\"") >= 1);
    assert_true(fx_log_count(w, "replay_started", NULL) >= 1);
    assert_true(fx_log_count(w, "adapter_recovered", "\"adapter\":\"fault#0\"") >= 1);
    assert_true(fx_log_count(w, "replay_completed", "\"drained\":true") >= 1);
    fx_counts cnt;
    fx_check_invariant(w, "primary", ids, &cnt);
    printf("[%s] recovered %lld ms after the fault was cleared\n", w->name, (long long)ms);
    assert_int_equal(cnt.acked, n);
    assert_int_equal(cnt.via_fallback, n);
    assert_int_equal(cnt.replayed, n);
    /* The fallback's copies went with its journal. */
    fx_fallback_is_empty(w);
    fault_control_close(c);
    fx_ids_free(ids);
    fx_end(w);
}

/* ---- b. killed in the middle of a run ---------------------------------- */

static void ft_kill_restart(void *ctx, size_t step)
{
    fault_control *c = ctx;
    if (step == 0)
        fault_inject(c, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    else
        fault_clear(c);
}

static void test_primary_killed_mid_run_of_4_writers_loses_nothing(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "b-killed-mid-run-fault-sqlite");
    fx_profiles_fault_sqlite_lmdb(w, "fail_closed");
    fault_control *c = fx_control_open(w, "primary.ctl");
    persistor *p = fx_open(w, "main");
    size_t n = fx_scaled(10000, 400);
    const size_t after = 100; /* appended once the primary serves again */
    fx_ids *ids = fx_ids_new("b", n + after);
    size_t at[2] = {n * 3 / 10, n * 7 / 10};
    fx_controller ctl;
    fx_controller_start(&ctl, ids, at, 2, ft_kill_restart, c);
    fx_write_range(p, ids, 0, n, 4);
    assert_int_equal(fx_controller_join(&ctl), 2);
    int64_t ms = fx_wait_recovered(p, "the primary restarted");
    assert_int_equal(fx_journal_pending(p), 0);
    fx_write_to_primary(p, ids, n, n + after);
    persistor_close(p);

    fx_counts cnt;
    fx_check_invariant(w, "primary", ids, &cnt);
    printf("[%s] degraded %lld ms more after the last write\n", w->name, (long long)ms);
    assert_int_equal(cnt.failed, 0);
    assert_true(cnt.via_fallback > 0);
    assert_true(cnt.replayed >= cnt.via_fallback);
    fx_fallback_is_empty(w);
    fault_control_close(c);
    fx_ids_free(ids);
    fx_end(w);
}

/* ---- c. stops answering ----------------------------------------------- */

static void test_primary_stops_answering_calls_skip_it_once_the_breaker_opens(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "c-stops-answering-fault-sqlite");
    fx_profiles_fault_sqlite_lmdb(w, "fail_closed");
    fault_control *c = fx_control_open(w, "primary.ctl");
    persistor *p = fx_open(w, "main");
    const size_t healthy = 20, calls = 200;
    fx_ids *ids = fx_ids_new("c", healthy + 5 + calls);
    for (size_t i = 0; i < healthy; i++)
        fx_append_ok(p, ids, i);
    assert_false(persistor_degraded(p));

    /* A store that takes 200 ms per call and then does not answer: the
     * socket timeout of a hung server, as UNCERTAIN (reads: RETRY would do
     * the same; one fault code is armed at a time). */
    fault_set_delay(c, FAULT_OP_WRITE | FAULT_OP_READ | FAULT_OP_PING, 200);
    fault_inject(c, FAULT_OP_WRITE | FAULT_OP_READ | FAULT_OP_PING, PERSISTOR_E_UNCERTAIN, -1, 0);
    fx_calls_skip_open_primary(w->name, p, c, ids, healthy, calls);

    fault_clear(c);
    fx_wait_recovered(p, "the primary answers again");
    assert_int_equal(fx_journal_pending(p), 0);
    persistor_close(p);
    fx_counts cnt;
    fx_check_invariant(w, "primary", ids, &cnt);
    assert_int_equal(cnt.failed, 0);
    assert_true(cnt.via_fallback >= calls);
    assert_true(cnt.replayed >= cnt.via_fallback);
    fx_fallback_is_empty(w);
    fault_control_close(c);
    fx_ids_free(ids);
    fx_end(w);
}

/* ---- d. flapping ------------------------------------------------------ */

static void ft_flap(void *ctx, size_t step)
{
    fault_control *c = ctx;
    switch (step % 8) {
    case 0: fault_inject(c, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0); break; /* down */
    case 2: fault_inject(c, FAULT_OP_WRITE, PERSISTOR_E_RETRY, 4, 0); break;      /* a burst */
    /* Pings pass, so probes succeed and every replay fails on its first write. */
    case 4: fault_inject(c, FAULT_OP_WRITE, PERSISTOR_E_UNAVAILABLE, -1, 0); break;
    /* Applied, answer lost: retries find the records there. */
    case 6: fault_inject(c, FAULT_OP_WRITE, PERSISTOR_E_UNCERTAIN, 6, 1); break;
    default: fault_clear(c); break; /* up */
    }
}

static void test_primary_flapping_under_2_writers_loses_nothing(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "d-flapping");
    fx_profiles_fault_sqlite_lmdb(w, "fail_closed");
    fault_control *c = fx_control_open(w, "primary.ctl");
    persistor *p = fx_open(w, "main");
    size_t n = fx_scaled(5000, 400);
    size_t period = n / 20; /* 250 writes at full size */
    size_t at[19];
    for (size_t k = 0; k < 19; k++)
        at[k] = (k + 1) * period;
    fx_ids *ids = fx_ids_new("d", n);
    fx_controller ctl;
    fx_controller_start(&ctl, ids, at, 19, ft_flap, c);
    fx_write_range(p, ids, 0, n, 2);
    size_t ran = fx_controller_join(&ctl);
    fault_clear(c);
    fx_wait_recovered(p, "the primary settled");
    assert_int_equal(fx_journal_pending(p), 0);
    persistor_close(p);
    fx_counts cnt;
    fx_check_invariant(w, "primary", ids, &cnt);
    printf("[%s] %zu toggles, %llu injected faults\n", w->name, ran,
           (unsigned long long)fault_injected(c));
    assert_int_equal(ran, 19);
    assert_int_equal(cnt.failed, 0);
    /* How many outages the toggles made depends on timing (under valgrind
     * the breaker may never close between two of them). */
    assert_true(cnt.failovers >= 1);
    fx_fallback_is_empty(w);
    fault_control_close(c);
    fx_ids_free(ids);
    fx_end(w);
}

/*
 * A writer into the fallback journals its op, then applies its copy; a
 * replay reads the journal, replays into the primary, then deletes the
 * entries and the fallback's copies.  A replay that read an entry whose
 * copy was still to come deleted nothing, and the copy stayed in the
 * fallback for good (what degraded reads of a later outage would serve).
 * The router reads each journal batch with the route lock held exclusively
 * since; before that, one round of this failed about 5 times in 6.
 */
static void ft_toggle(void *ctx, size_t step)
{
    fault_control *c = ctx;
    if (step % 2 == 0)
        fault_inject(c, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    else
        fault_clear(c);
}

static void test_replays_among_8_writers_leave_no_copy_in_the_fallback(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "d-replays-among-writers");
    fx_profiles_fault_sqlite_lmdb_probing(w, "fail_closed", 2); /* probe every 2 ms */
    fault_control *c = fx_control_open(w, "primary.ctl");
    persistor *p = fx_open(w, "main");
    const size_t rounds = 2;
    size_t n = fx_scaled(20000, 1000), period = n / 80;
    fx_ids *ids = fx_ids_new("r", rounds * n);
    for (size_t r = 0; r < rounds; r++) {
        size_t at[79];
        for (size_t k = 0; k < 79; k++)
            at[k] = r * n + (k + 1) * period;
        fx_controller ctl;
        fx_controller_start(&ctl, ids, at, 79, ft_toggle, c);
        fx_write_range(p, ids, r * n, (r + 1) * n, 8);
        fx_controller_join(&ctl);
        fault_clear(c);
        fx_wait_recovered(p, "the primary is back");
        assert_int_equal(fx_journal_pending(p), 0);
        fx_fallback_is_empty(w);
    }
    persistor_close(p);
    fx_counts cnt;
    fx_check_invariant(w, "primary", ids, &cnt);
    assert_int_equal(cnt.failed, 0);
    fault_control_close(c);
    fx_ids_free(ids);
    fx_end(w);
}

/* ---- e. retryable versus permanent ------------------------------------ */

/* One handle on the usual chain, two snapshots in (all ensured). */
typedef struct ft_small {
    fault_control *c;
    persistor *p;
    fx_ids *ids;
    size_t next;
} ft_small;

static void ft_small_open(fx_world *w, ft_small *s, const char *name)
{
    fx_begin(w, name);
    fx_profiles_fault_sqlite_lmdb(w, "fail_closed");
    s->c = fx_control_open(w, "primary.ctl");
    s->p = fx_open(w, "main");
    s->ids = fx_ids_new("e", 16);
    s->next = 0;
    fx_append_ok(s->p, s->ids, s->next++);
    fx_append_ok(s->p, s->ids, s->next++);
}

/* Recovered, nothing pending, the invariant, nothing left in the fallback. */
static void ft_small_close(fx_world *w, ft_small *s, fx_counts *cnt)
{
    fault_clear(s->c);
    fx_wait_recovered(s->p, w->name);
    assert_int_equal(fx_journal_pending(s->p), 0);
    persistor_close(s->p);
    fx_check_invariant(w, "primary", s->ids, cnt);
    fx_fallback_is_empty(w);
    fault_control_close(s->c);
    fx_ids_free(s->ids);
}

static void test_retry_twice_succeeds_on_the_primary_without_failover(void **state)
{
    fx_world *w = *state;
    ft_small s;
    ft_small_open(w, &s, "e-retry-twice");
    uint64_t writes = fault_calls(s.c, FAULT_OP_WRITE);
    fault_inject(s.c, FAULT_OP_WRITE, PERSISTOR_E_RETRY, 2, 0);
    persistor_error err = {0};
    assert_int_equal(fx_append(s.p, s.ids, s.next++, &err), PERSISTOR_OK);
    assert_int_equal(fault_calls(s.c, FAULT_OP_WRITE) - writes, 3);
    assert_int_equal(fx_log_count(w, "retry_scheduled", "\"operation\":\"write\""), 2);
    assert_int_equal(fx_log_count(w, "retry_scheduled", "\"code\":\"E_RETRY\""), 2);
    assert_int_equal(fx_log_count(w, "adapter_failover", NULL), 0);
    assert_false(persistor_degraded(s.p));
    fx_breaker_is(s.p, "closed", 0);
    fx_counts cnt;
    ft_small_close(w, &s, &cnt);
    assert_int_equal(cnt.acked, 3);
    assert_int_equal(cnt.replayed, 0);
    fx_end(w);
}

static void test_retry_forever_fails_over_after_max_attempts(void **state)
{
    fx_world *w = *state;
    ft_small s;
    ft_small_open(w, &s, "e-retry-forever");
    uint64_t writes = fault_calls(s.c, FAULT_OP_WRITE);
    /* Pings fail too, so no probe replays into the primary meanwhile and
     * every write the primary sees is one of ours. */
    fault_inject(s.c, FAULT_OP_WRITE | FAULT_OP_PING, PERSISTOR_E_RETRY, -1, 0);
    persistor_error err = {0};
    assert_int_equal(fx_append(s.p, s.ids, s.next++, &err), PERSISTOR_OK);
    assert_int_equal(fault_calls(s.c, FAULT_OP_WRITE) - writes, 3); /* max_attempts */
    assert_int_equal(fx_log_count(w, "retry_scheduled", "\"operation\":\"write\""), 2);
    assert_int_equal(fx_log_count(w, "adapter_failover", "\"to\":\"lmdb#1\""), 1);
    assert_true(persistor_degraded(s.p));
    /* The breaker is open: the next writes go straight to the fallback. */
    assert_int_equal(fx_append(s.p, s.ids, s.next++, &err), PERSISTOR_OK);
    assert_int_equal(fx_append(s.p, s.ids, s.next++, &err), PERSISTOR_OK);
    assert_int_equal(fault_calls(s.c, FAULT_OP_WRITE) - writes, 3);
    assert_int_equal(fx_log_count(w, "retry_scheduled", "\"operation\":\"write\""), 2);
    fx_breaker_is(s.p, "open", 3);
    fx_counts cnt;
    ft_small_close(w, &s, &cnt);
    assert_int_equal(cnt.acked, 5);
    assert_int_equal(cnt.replayed, 3);
    fx_end(w);
}

static void test_uncertain_but_applied_is_retried_and_stored_once(void **state)
{
    fx_world *w = *state;
    ft_small s;
    ft_small_open(w, &s, "e-uncertain-applied");
    uint64_t writes = fault_calls(s.c, FAULT_OP_WRITE);
    fault_inject(s.c, FAULT_OP_WRITE, PERSISTOR_E_UNCERTAIN, 1, 1);
    persistor_error err = {0};
    /* The retry finds the record the lost answer was about. */
    assert_int_equal(fx_append(s.p, s.ids, s.next++, &err), PERSISTOR_EXISTS);
    assert_int_equal(fault_calls(s.c, FAULT_OP_WRITE) - writes, 2);
    assert_int_equal(fx_log_count(w, "retry_scheduled", "\"code\":\"E_UNCERTAIN\""), 1);
    assert_false(persistor_degraded(s.p));
    fx_breaker_is(s.p, "closed", 0);
    fx_counts cnt;
    ft_small_close(w, &s, &cnt);
    assert_int_equal(cnt.acked, 3);
    assert_int_equal(cnt.in_primary, 3);
    fx_end(w);
}

static void test_corrupt_invalid_config_are_answers_never_retried_nor_failed_over(void **state)
{
    fx_world *w = *state;
    ft_small s;
    ft_small_open(w, &s, "e-permanent");
    static const int32_t codes[] = {PERSISTOR_E_CORRUPT, PERSISTOR_E_INVALID, PERSISTOR_E_CONFIG};
    for (size_t k = 0; k < 3; k++) {
        uint64_t writes = fault_calls(s.c, FAULT_OP_WRITE);
        fault_inject(s.c, FAULT_OP_WRITE, codes[k], 1, 0);
        persistor_error err = {0};
        assert_int_equal(fx_append(s.p, s.ids, s.next++, &err), codes[k]);
        assert_non_null(strstr(err.message, "fault#0"));
        assert_int_equal(fault_calls(s.c, FAULT_OP_WRITE) - writes, 1);
        assert_false(persistor_degraded(s.p));
        fx_breaker_is(s.p, "closed", 0);
    }
    assert_int_equal(fx_log_count(w, "retry_scheduled", NULL), 0);
    assert_int_equal(fx_log_count(w, "adapter_failover", NULL), 0);
    persistor_error err = {0};
    assert_int_equal(fx_append(s.p, s.ids, s.next++, &err), PERSISTOR_OK);
    fx_counts cnt;
    ft_small_close(w, &s, &cnt);
    assert_int_equal(cnt.acked, 3);
    assert_int_equal(cnt.failed, 3);
    assert_int_equal(cnt.stored_unacked, 0);
    fx_end(w);
}

/* ---- g. every adapter down -------------------------------------------- */

/* Two profiles over fault(memory) -> fault(memory), a.ctl and b.ctl: one
 * fail_closed, one fail_open. */
static void ft_profiles_all_memory(fx_world *w)
{
    char a[FX_PATH_MAX], b[FX_PATH_MAX];
    fx_path(w, "a.ctl", a);
    fx_path(w, "b.ctl", b);
    unlink(a);
    unlink(b);
    fx_yaml y;
    fx_yaml_init(&y);
    static const char *const modes[] = {"fail_closed", "fail_open"};
    for (int m = 0; m < 2; m++) {
        fx_yaml_profile(&y, modes[m]);
        fx_yaml_fault(&y, a, FAULTS_MEMORY_SO, NULL);
        fx_yaml_fault(&y, b, FAULTS_MEMORY_SO, NULL);
        fx_yaml_end(&y, modes[m]);
    }
    fx_yaml_write(w, &y);
}

static void test_every_adapter_down_fail_closed_returns_unavailable(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "g-fail-closed");
    ft_profiles_all_memory(w);
    fault_control *a = fx_control_open(w, "a.ctl"), *b = fx_control_open(w, "b.ctl");

    /* Down at open: nothing answers, nothing opens. */
    fault_inject(a, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    fault_inject(b, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    persistor *p = NULL;
    persistor_error err = {0};
    assert_int_equal(fx_try_open(w, "fail_closed", &p, &err), PERSISTOR_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "no adapter of the chain answers"));
    assert_non_null(strstr(err.message, "fault#0"));
    assert_non_null(strstr(err.message, "fault#1"));

    fault_clear(a);
    fault_clear(b);
    p = fx_open(w, "fail_closed");
    fx_ids *ids = fx_ids_new("g", 8);
    fx_append_ok(p, ids, 0);
    fault_inject(a, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    fault_inject(b, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    err = (persistor_error){0};
    assert_int_equal(fx_append(p, ids, 1, &err), PERSISTOR_E_UNAVAILABLE);
    assert_non_null(strstr(err.message, "no adapter of profile fail_closed can take it"));
    assert_true(persistor_degraded(p));
    /* Both breakers open: the next call fails at once, touching neither. */
    uint64_t calls = fault_calls(a, FAULT_OP_WRITE) + fault_calls(b, FAULT_OP_WRITE);
    assert_int_equal(fx_append(p, ids, 2, &err), PERSISTOR_E_UNAVAILABLE);
    assert_int_equal(fault_calls(a, FAULT_OP_WRITE) + fault_calls(b, FAULT_OP_WRITE), calls);
    assert_int_equal(fx_log_count(w, "snapshot_persist_failed", NULL), 0);

    fault_clear(a);
    fault_clear(b);
    fx_wait_recovered(p, "both stores answer again");
    char id[FX_ID_MAX];
    fx_id(ids, 1, id);
    assert_int_equal(persistor_snapshot_has(p, id, &err), PERSISTOR_NOT_FOUND);
    fx_id(ids, 0, id);
    assert_int_equal(persistor_snapshot_has(p, id, &err), PERSISTOR_OK);
    printf("[%s] acked=1 failed=2 (E_UNAVAILABLE, nothing stored)\n", w->name);
    persistor_close(p);
    fault_control_close(a);
    fault_control_close(b);
    fx_ids_free(ids);
    fx_end(w);
}

static void test_every_adapter_down_fail_open_returns_not_stored_and_logs_the_id(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "g-fail-open");
    ft_profiles_all_memory(w);
    fault_control *a = fx_control_open(w, "a.ctl"), *b = fx_control_open(w, "b.ctl");
    persistor *p = fx_open(w, "fail_open");
    fx_ids *ids = fx_ids_new("g", 8);
    fx_append_ok(p, ids, 0);
    fault_inject(a, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    fault_inject(b, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    persistor_error err = {0};
    assert_int_equal(fx_append(p, ids, 1, &err), PERSISTOR_NOT_STORED);
    char id[FX_ID_MAX], needle[FX_ID_MAX + 16];
    fx_id(ids, 1, id);
    snprintf(needle, sizeof needle, "\"id\":\"%s\"", id);
    assert_int_equal(fx_log_count(w, "snapshot_persist_failed", needle), 1);
    assert_int_equal(fx_log_count(w, "snapshot_persist_failed", "\"code\":\"E_UNAVAILABLE\""), 1);
    assert_int_equal(fx_log_count(w, "snapshot_persist_failed", "\"on_failure\":\"fail_open\""), 1);

    /* A batch: every snapshot gets NOT_STORED, and a line each. */
    persistor_snapshot_input in[3];
    char hashes[3][FX_ID_MAX];
    int32_t results[3];
    for (int k = 0; k < 3; k++) {
        fx_id(ids, (size_t)(2 + k), hashes[k]);
        in[k] = (persistor_snapshot_input){.struct_size = sizeof in[k], .xc_id = fx_xc(0),
                                           .ts_ms = 1700000000000 + k, .hash = hashes[k]};
    }
    assert_int_equal(persistor_snapshot_append_many(p, in, 3, NULL, results, &err), PERSISTOR_OK);
    for (int k = 0; k < 3; k++) {
        assert_int_equal(results[k], PERSISTOR_NOT_STORED);
        snprintf(needle, sizeof needle, "\"id\":\"%s\"", hashes[k]);
        assert_int_equal(fx_log_count(w, "snapshot_persist_failed", needle), 1);
    }
    /* Invalid input is still the caller's error, never NOT_STORED. */
    persistor_snapshot_input bad = {.struct_size = sizeof bad, .xc_id = ""};
    assert_int_equal(persistor_snapshot_append(p, &bad, NULL, &err), PERSISTOR_E_INVALID);
    assert_int_equal(fx_log_count(w, "snapshot_persist_failed", NULL), 4);

    fault_clear(a);
    fault_clear(b);
    fx_wait_recovered(p, "both stores answer again");
    for (size_t k = 1; k < 5; k++) {
        fx_id(ids, k, id);
        assert_int_equal(persistor_snapshot_has(p, id, &err), PERSISTOR_NOT_FOUND);
    }
    printf("[%s] acked=1 not_stored=4 (snapshot_persist_failed lines: %zu)\n", w->name,
           fx_log_count(w, "snapshot_persist_failed", NULL));
    persistor_close(p);
    fault_control_close(a);
    fault_control_close(b);
    fx_ids_free(ids);
    fx_end(w);
}

/* fault(sqlite) alone ("alone": no fallback; the audit collections keep
 * their default, fail_open) and plain sqlite on the same file ("primary"). */
static void ft_profiles_alone(fx_world *w)
{
    char ctl[FX_PATH_MAX], db[FX_PATH_MAX], inner[FX_PATH_MAX + 64];
    fx_path(w, "primary.ctl", ctl);
    fx_path(w, "primary.sqlite", db);
    snprintf(inner, sizeof inner, "file=%s;synchronous=normal", db);
    unlink(ctl);
    fx_yaml y;
    fx_yaml_init(&y);
    fx_yaml_profile(&y, "alone");
    fx_yaml_fault(&y, ctl, FAULTS_SQLITE_SO, inner);
    fx_yaml_end(&y, "fail_closed");
    fx_yaml_profile(&y, "primary");
    fx_yaml_sqlite(&y, db);
    fx_yaml_end(&y, NULL);
    fx_yaml_write(w, &y);
}

/* A save the dead chain could not take: NOT_STORED, its id given, and one
 * `event` line naming that id, the code and fail_open. */
static void ft_not_stored(fx_world *w, const char *what, int32_t rc, const char *id,
                          const char *event)
{
    if (rc != PERSISTOR_NOT_STORED)
        fail_msg("%s: %s, expected NOT_STORED", what, persistor_rc_name(rc));
    assert_true(id[0] != '\0');
    char needle[PERSISTOR_ID_MAX + 16];
    snprintf(needle, sizeof needle, "\"id\":\"%s\"", id);
    assert_int_equal(fx_log_count(w, event, needle), 1);
    assert_int_equal(fx_log_count(w, event, "\"code\":\"E_UNAVAILABLE\""), 1);
    assert_int_equal(fx_log_count(w, event, "\"on_failure\":\"fail_open\""), 1);
}

static void test_audit_with_no_fallback_and_a_dead_primary_is_not_stored_and_logged(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "g-audit-fail-open");
    ft_profiles_alone(w);
    fault_control *c = fx_control_open(w, "primary.ctl");
    persistor *p = fx_open(w, "alone");
    char v0[PERSISTOR_ID_MAX + 1], i0[PERSISTOR_ID_MAX + 1], t0[PERSISTOR_ID_MAX + 1];
    persistor_error err = {0};
    /* Stored while the primary is healthy. */
    assert_int_equal(fx_audit_save(p, PERSISTOR_AUDIT_VALIDATION,
                                   "{\"plan_id\": \"p\", \"validation_result\": {\"valid\": true}}",
                                   v0, &err),
                     PERSISTOR_OK);
    assert_int_equal(fx_audit_save(p, PERSISTOR_AUDIT_WORKFLOW_RESULT,
                                   "{\"workflow_id\": \"wf-1\", \"status\": \"RUNNING\"}", NULL,
                                   &err),
                     PERSISTOR_OK);
    assert_int_equal(fx_audit_save(p, PERSISTOR_AUDIT_INCIDENT,
                                   "{\"workflow_id\": \"wf-1\", \"type\": \"timeout\","
                                   " \"severity\": \"LOW\"}",
                                   i0, &err),
                     PERSISTOR_OK);
    assert_int_equal(fx_telemetry_buffer(p,
                                         "{\"correlation\": {\"workflow_id\": \"wf-1\"},"
                                         " \"metrics\": {\"n\": 0}, \"source\": \"faults\"}",
                                         t0, &err),
                     PERSISTOR_OK);

    fault_inject(c, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    char v1[PERSISTOR_ID_MAX + 1], w1[PERSISTOR_ID_MAX + 1], i1[PERSISTOR_ID_MAX + 1],
        t1[PERSISTOR_ID_MAX + 1];
    int32_t rc = fx_audit_save(p, PERSISTOR_AUDIT_VALIDATION,
                               "{\"plan_id\": \"p\", \"validation_result\": {\"valid\": false}}",
                               v1, &err);
    ft_not_stored(w, "validation", rc, v1, "validation_audit_persist_failed");
    /* A newer result of a stored workflow: refused, the older one stays. */
    rc = fx_audit_save(p, PERSISTOR_AUDIT_WORKFLOW_RESULT,
                       "{\"workflow_id\": \"wf-1\", \"status\": \"COMPLETED\"}", w1, &err);
    ft_not_stored(w, "workflow result", rc, w1, "workflow_result_persist_failed");
    assert_string_equal(w1, "wf-1");
    rc = fx_audit_save(p, PERSISTOR_AUDIT_INCIDENT,
                       "{\"workflow_id\": \"wf-1\", \"type\": \"crash\","
                       " \"severity\": \"CRITICAL\"}",
                       i1, &err);
    ft_not_stored(w, "incident", rc, i1, "incident_persist_failed");
    rc = fx_telemetry_buffer(p,
                             "{\"correlation\": {\"workflow_id\": \"wf-1\"},"
                             " \"metrics\": {\"n\": 1}, \"source\": \"faults\"}",
                             t1, &err);
    ft_not_stored(w, "telemetry", rc, t1, "telemetry_buffer_persist_failed");
    /* Invalid input is still the caller's error, never NOT_STORED. */
    err = (persistor_error){0};
    assert_int_equal(fx_audit_save(p, PERSISTOR_AUDIT_WORKFLOW_RESULT, "{\"status\": \"RUNNING\"}",
                                   NULL, &err),
                     PERSISTOR_E_INVALID);
    assert_int_equal(fx_log_count(w, "workflow_result_persist_failed", NULL), 1);

    fault_clear(c);
    fx_wait_recovered(p, "the primary answers again");
    persistor_close(p);

    /* Nothing stored before was lost; nothing refused was stored. */
    persistor *q = fx_open(w, "primary");
    char filter[PERSISTOR_ID_MAX + 32];
    snprintf(filter, sizeof filter, "{\"_id\": \"%s\"}", v0);
    assert_int_equal(fx_count_where(q, "validation_audit", filter), 1);
    assert_int_equal(fx_count_where(q, "validation_audit", NULL), 1);
    char status[64];
    fx_result_status(q, "wf-1", status);
    assert_string_equal(status, "RUNNING");
    assert_int_equal(fx_count_where(q, "workflow_results", NULL), 1);
    snprintf(filter, sizeof filter, "{\"_id\": \"%s\"}", i0);
    assert_int_equal(fx_count_where(q, "incidents", filter), 1);
    assert_int_equal(fx_count_where(q, "incidents", NULL), 1);
    snprintf(filter, sizeof filter, "{\"_id\": \"%s\"}", t0);
    assert_int_equal(fx_count_where(q, "telemetry_buffer", filter), 1);
    assert_int_equal(fx_count_where(q, "telemetry_buffer", NULL), 1);
    persistor_close(q);
    printf("[%s] stored=4 not_stored=4 (one *_persist_failed line each)\n", w->name);
    fault_control_close(c);
    fx_end(w);
}

/* ---- h. audit records during an outage --------------------------------- */

static void test_audit_saved_during_an_outage_reaches_the_primary_once(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "h-audit-outage-fault-sqlite");
    fx_profiles_fault_sqlite_lmdb(w, "fail_closed");
    fault_control *c = fx_control_open(w, "primary.ctl");
    persistor *p = fx_open(w, "main");
    fx_audit a;
    memset(&a, 0, sizeof a);
    fx_audit_before(p, &a);

    fault_inject(c, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    uint64_t data_calls = fault_calls(c, FAULT_OP_WRITE | FAULT_OP_READ);
    fx_audit_during(p, &a);
    /* The first save tried the primary once (E_UNAVAILABLE fails over at
     * once); with its breaker open, nothing after it did. */
    assert_int_equal(fault_calls(c, FAULT_OP_WRITE | FAULT_OP_READ) - data_calls, 1);
    assert_int_equal(fx_journal_pending(p), FX_AUDIT_OUTAGE_WRITES);

    fault_clear(c);
    fx_wait_recovered(p, "the primary came back");
    assert_int_equal(fx_journal_pending(p), 0);
    persistor_close(p);
    assert_true(fx_log_count(w, "replay_completed", "\"drained\":true") >= 1);
    fx_audit_check(w, "primary", &a);
    fx_audit_fallback_is_empty(w);
    fault_control_close(c);
    fx_end(w);
}

#define T(f) cmocka_unit_test_setup_teardown(f, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_primary_down_at_open_fallback_serves_then_replays),
        T(test_primary_killed_mid_run_of_4_writers_loses_nothing),
        T(test_primary_stops_answering_calls_skip_it_once_the_breaker_opens),
        T(test_primary_flapping_under_2_writers_loses_nothing),
        T(test_replays_among_8_writers_leave_no_copy_in_the_fallback),
        T(test_retry_twice_succeeds_on_the_primary_without_failover),
        T(test_retry_forever_fails_over_after_max_attempts),
        T(test_uncertain_but_applied_is_retried_and_stored_once),
        T(test_corrupt_invalid_config_are_answers_never_retried_nor_failed_over),
        T(test_every_adapter_down_fail_closed_returns_unavailable),
        T(test_every_adapter_down_fail_open_returns_not_stored_and_logs_the_id),
        T(test_audit_with_no_fallback_and_a_dead_primary_is_not_stored_and_logged),
        T(test_audit_saved_during_an_outage_reaches_the_primary_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
