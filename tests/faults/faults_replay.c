/*
 * faults_replay.c — replay survives the process that does it being killed,
 * and several processes replaying one fallback's journal at once.
 *
 *   1. a child writes N snapshots while the primary (fault over sqlite) is
 *      down: lmdb takes and journals them; it hands its answers to the
 *      parent in a file and exits;
 *   2. a second child opens the profile with the primary healthy but slow
 *      (every write call 50 ms): persistor_open replays the journal, and the
 *      parent SIGKILLs it once fault_calls(WRITE) shows the second replay
 *      batch has begun, at a random moment within the next 40 ms;
 *   3. two children open the profile at the same moment (released together
 *      through a pipe) and both replay what is left;
 *   4. the invariant: every acknowledged snapshot is in sqlite exactly
 *      once, nothing is pending, the fallback holds nothing.
 *
 * Children never call cmocka: they answer with their exit status.
 */
#define _XOPEN_SOURCE 700

#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "fault_control.h"
#include "faults_common.h"

/* The router's replay batch (router_replay.c): one primary write each. */
#define FR_BATCH 512
#define FR_DELAY_MS 50
#define FR_KILL_JITTER_MS 40
#define FR_CHILD_ALARM_S 600

/* Child exit statuses. */
enum { FR_OK = 0, FR_OPEN = 10, FR_NOT_DEGRADED, FR_ANSWERS, FR_SURVIVED, FR_DEGRADED,
       FR_PENDING, FR_BARRIER };

static pid_t fr_fork(void)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        alarm(FR_CHILD_ALARM_S); /* never outlive a parent that died */
    return pid;
}

static int fr_wait(pid_t pid)
{
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        ;
    return status;
}

static void fr_exited_ok(pid_t pid, const char *who)
{
    int status = fr_wait(pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != FR_OK)
        fail_msg("%s: %s %d", who, WIFEXITED(status) ? "exit status" : "killed by signal",
                 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
}

/* 1: write every id with the primary down; answers into `answers`. */
static int fr_child_write(fx_world *w, fx_ids *ids, const char *answers)
{
    persistor *p = NULL;
    persistor_error err = {0};
    if (fx_try_open(w, "main", &p, &err) != PERSISTOR_OK)
        return FR_OPEN;
    int status = persistor_degraded(p) ? FR_OK : FR_NOT_DEGRADED;
    if (status == FR_OK)
        fx_write_range(p, ids, 0, ids->n, 2);
    persistor_close(p);
    FILE *f = fopen(answers, "wb");
    if (f == NULL || fwrite(ids->answer, sizeof *ids->answer, ids->n, f) != ids->n ||
        fwrite(ids->via_fallback, 1, ids->n, f) != ids->n)
        status = FR_ANSWERS;
    if (f != NULL && fclose(f) != 0)
        status = FR_ANSWERS;
    return status;
}

/* 2: open, which replays; the parent kills us before it returns. */
static int fr_child_replay(fx_world *w)
{
    persistor *p = NULL;
    persistor_error err = {0};
    if (fx_try_open(w, "main", &p, &err) != PERSISTOR_OK)
        return FR_OPEN;
    persistor_close(p);
    return FR_SURVIVED;
}

/* 3: wait for the parent's go, open (replaying), check we serve. */
static int fr_child_together(fx_world *w, int go)
{
    char byte;
    ssize_t got;
    while ((got = read(go, &byte, 1)) < 0 && errno == EINTR)
        ;
    close(go);
    if (got != 1)
        return FR_BARRIER;
    persistor *p = NULL;
    persistor_error err = {0};
    if (fx_try_open(w, "main", &p, &err) != PERSISTOR_OK)
        return FR_OPEN;
    int status = persistor_degraded(p) ? FR_DEGRADED : FR_OK;
    persistor_close(p);
    return status;
}

static void fr_read_answers(fx_ids *ids, const char *answers)
{
    FILE *f = fopen(answers, "rb");
    assert_non_null(f);
    assert_int_equal(fread(ids->answer, sizeof *ids->answer, ids->n, f), ids->n);
    assert_int_equal(fread(ids->via_fallback, 1, ids->n, f), ids->n);
    fclose(f);
}

static void test_killed_during_replay_then_two_processes_replay_at_once(void **state)
{
    fx_world *w = *state;
    fx_begin(w, "f-killed-during-replay");
    fx_profiles_fault_sqlite_lmdb(w, "fail_closed");
    char answers[FX_PATH_MAX];
    fx_path(w, "answers.bin", answers);
    fault_control *c = fx_control_open(w, "primary.ctl");
    /* At least seven replay batches: after the kill point (the second
     * one's start, plus at most 40 ms) five are left, 250 ms of delays at
     * least, so the kill always lands in the middle of the replay. */
    size_t n = fx_scaled(5000, 6 * FR_BATCH + 52);
    fx_ids *ids = fx_ids_new("f", n);

    /* 1. Written while the primary is down. */
    fault_inject(c, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    pid_t pid = fr_fork();
    if (pid == 0) {
        int status = fr_child_write(w, ids, answers);
        fault_control_close(c);
        fx_ids_free(ids);
        _exit(status);
    }
    fr_exited_ok(pid, "the writer");
    fr_read_answers(ids, answers);
    size_t acked = 0;
    for (size_t i = 0; i < n; i++)
        acked += fx_acked(ids->answer[i]);
    assert_int_equal(acked, n);
    assert_int_equal(fx_count_records(w, "primary"), 0);

    /* 2. Healthy but slow; killed in the middle of replaying. */
    fault_clear(c);
    fault_set_delay(c, FAULT_OP_WRITE, FR_DELAY_MS);
    uint64_t w0 = fault_calls(c, FAULT_OP_WRITE);
    pid = fr_fork();
    if (pid == 0) {
        int status = fr_child_replay(w);
        fault_control_close(c);
        fx_ids_free(ids);
        _exit(status);
    }
    int64_t deadline = fx_now_ms() + fx_deadline_ms();
    while (fault_calls(c, FAULT_OP_WRITE) < w0 + 2) { /* the second batch began */
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
            fail_msg("the replaying child ended by itself (status %d) before the kill", status);
        if (fx_now_ms() > deadline)
            fail_msg("the replay did not begin in %lld ms", (long long)fx_deadline_ms());
        fx_sleep_ms(1);
    }
    srand((unsigned)(fx_now_us() ^ getpid()));
    int64_t jitter = rand() % FR_KILL_JITTER_MS;
    fx_sleep_ms(jitter);
    kill(pid, SIGKILL);
    int status = fr_wait(pid);
    assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
    uint64_t replayed_before_kill = fx_count_records(w, "primary");
    uint64_t writes_before_kill = fault_calls(c, FAULT_OP_WRITE) - w0;
    printf("[%s] killed %lld ms into the second batch: %llu replay writes, %llu of %zu "
           "records in the primary\n",
           w->name, (long long)jitter, (unsigned long long)writes_before_kill,
           (unsigned long long)replayed_before_kill, n);
    assert_true(replayed_before_kill >= FR_BATCH);
    assert_true(replayed_before_kill < n);

    /* 3. Two processes replay what is left, at once (still slow: their
     * batches interleave). */
    fault_set_delay(c, FAULT_OP_WRITE, 5);
    int go[2];
    assert_int_equal(pipe(go), 0);
    pid_t pids[2];
    for (int k = 0; k < 2; k++) {
        pids[k] = fr_fork();
        if (pids[k] == 0) {
            close(go[1]);
            int st = fr_child_together(w, go[0]);
            fault_control_close(c);
            fx_ids_free(ids);
            _exit(st);
        }
    }
    close(go[0]);
    assert_int_equal(write(go[1], "gg", 2), 2);
    close(go[1]);
    fr_exited_ok(pids[0], "the first of two replaying processes");
    fr_exited_ok(pids[1], "the second of two replaying processes");
    fault_clear(c);

    /* 4. Nothing pending, nothing lost, nothing twice. */
    persistor *p = fx_open(w, "main");
    assert_false(persistor_degraded(p));
    assert_int_equal(fx_journal_pending(p), 0);
    persistor_close(p);
    fx_counts cnt;
    fx_check_invariant(w, "primary", ids, &cnt);
    printf("[%s] replay_completed lines: %zu (the killed process wrote none)\n", w->name,
           fx_log_count(w, "replay_completed", NULL));
    assert_int_equal(cnt.acked, n);
    assert_int_equal(cnt.in_primary, n);
    assert_true(fx_log_count(w, "replay_completed", "\"drained\":true") >= 1);
    fx_fallback_is_empty(w);
    fault_control_close(c);
    fx_ids_free(ids);
    fx_end(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_killed_during_replay_then_two_processes_replay_at_once, fx_setup, fx_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
