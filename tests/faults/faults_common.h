/*
 * faults_common.h — what the router's fault tests (faults_fault.c,
 * faults_mongod.c, faults_replay.c) share: a temp directory and captured
 * log per test, profiles written into it, the ids a test appends and the
 * answers it got, writer threads, polling for recovery, and THE INVARIANT:
 *
 *   after recovery, every acknowledged id (append answered OK or EXISTS) is
 *   in the primary's store exactly once; the primary holds nothing else but
 *   ids the test tried and was refused (stored but not acknowledged, e.g.
 *   an UNCERTAIN write that the store had applied); no fallback journal
 *   entry is pending.
 *
 * The check reads the primary's store through a second handle on a profile
 * that holds only that store (plain sqlite on the same file, mongodb on
 * the same database), never through the chain under test.
 *
 * Nothing here arms a fault: the test files do, each in its own terms.
 */
#ifndef PERSISTOR_TESTS_FAULTS_COMMON_H
#define PERSISTOR_TESTS_FAULTS_COMMON_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fault_control.h"
#include "persistor/persistor.h"

/* Snapshots are spread over this many execution contexts, so the
 * invariant can list a whole store with a few list_hashes calls. */
#define FX_N_XC 8
#define FX_ID_MAX 40
/* The answer slot of an id never appended. */
#define FX_NOT_TRIED INT32_MIN

/* ---- scale and time --------------------------------------------------- */

/* $PERSISTOR_FAULTS_SCALE (CMake sets 0.05 under a test wrapper such as
 * valgrind), else 1. */
double fx_scale(void);
/* n * scale, at least `min`. */
size_t fx_scaled(size_t n, size_t min);
/* How long a test waits for a recovery before failing: 30 s, or 240 s
 * when scaled down (the wrapper slows everything). */
int64_t fx_deadline_ms(void);
/* Milliseconds and microseconds on the monotonic clock. */
int64_t fx_now_ms(void);
int64_t fx_now_us(void);
void fx_sleep_ms(int64_t ms);

/* ---- one test's world ------------------------------------------------- */

typedef struct fx_world {
    char name[64];
    char dir[1024];    /* a fresh temp directory */
    char config[1100]; /* dir/profiles.yaml */
    char log[1100];    /* dir/log.jsonl: the library's log lines, captured */
    int log_fd;
    bool passed;       /* set by fx_end; the directory is kept otherwise */
} fx_world;

/* cmocka per-test setup and teardown: a world in *state.  The teardown
 * restores the log to stderr, removes the directory when the test passed,
 * and otherwise prints where it is and the log's last lines. */
int fx_setup(void **state);
int fx_teardown(void **state);
/* Name the test (for printed counts) and start capturing its log. */
void fx_begin(fx_world *w, const char *name);
void fx_end(fx_world *w);

/* dir/<name>, into `out` (FX_PATH_MAX bytes). */
#define FX_PATH_MAX 1200
const char *fx_path(const fx_world *w, const char *name, char *out);
/* fault_control_open of dir/<name>; fails the test when it cannot. */
fault_control *fx_control_open(const fx_world *w, const char *name);

/* ---- profiles --------------------------------------------------------- */

/* A profiles file under construction: fx_yaml_* append to it. */
typedef struct fx_yaml {
    char text[16384];
    size_t len;
} fx_yaml;

void fx_yaml_init(fx_yaml *y);
/* "  NAME:\n    adapters:\n": the adapters follow. */
void fx_yaml_profile(fx_yaml *y, const char *name);
void fx_yaml_sqlite(fx_yaml *y, const char *file);
void fx_yaml_lmdb(fx_yaml *y, const char *directory);
void fx_yaml_memory(fx_yaml *y);
/* fault.so over `inner_so`, steered by `control`. */
void fx_yaml_fault(fx_yaml *y, const char *control, const char *inner_so,
                   const char *inner_options);
/* mongodb.so (path given): server selection and connect time out after
 * `select_ms`, a request after `socket_ms`. */
void fx_yaml_mongodb(fx_yaml *y, const char *so, const char *uri, const char *database,
                     int select_ms, int socket_ms);
/* Close the profile: quick retries (3 attempts, 5 ms, x2, at most 50 ms),
 * and the snapshots' on_failure ("fail_closed" or "fail_open"). */
void fx_yaml_end(fx_yaml *y, const char *on_failure);
/* The same with a retry policy of the test's own. */
void fx_yaml_end_retry(fx_yaml *y, const char *on_failure, int max_attempts, int initial_ms,
                       int max_ms);
/* Write the file to w->config. */
void fx_yaml_write(fx_world *w, const fx_yaml *y);

/*
 * The usual chain, fault over sqlite as the primary and lmdb as the
 * fallback, in three profiles: "main" (the chain), "primary" (plain sqlite
 * on the same file) and "fallback" (plain lmdb on the same directory).
 * The control file is dir/primary.ctl (removed first: fresh counters).
 */
void fx_profiles_fault_sqlite_lmdb(fx_world *w, const char *on_failure);
/* The same, "main" with retry max_interval_ms `max_ms` (probes that often). */
void fx_profiles_fault_sqlite_lmdb_probing(fx_world *w, const char *on_failure, int max_ms);

/* Open `profile` of w->config; fails the test on an error. */
persistor *fx_open(fx_world *w, const char *profile);
int32_t fx_try_open(fx_world *w, const char *profile, persistor **out, persistor_error *err);

/* ---- ids and answers -------------------------------------------------- */

typedef struct fx_ids {
    char prefix[16];
    size_t n;
    int32_t *answer;        /* per id: the append's answer, or FX_NOT_TRIED */
    uint8_t *via_fallback;  /* per id: acked while the primary's breaker was
                               open before and after the call */
    int64_t *latency_us;    /* per id, when measured */
    atomic_size_t done;     /* appends answered so far, for controllers */
} fx_ids;

fx_ids *fx_ids_new(const char *prefix, size_t n);
void fx_ids_free(fx_ids *ids);
/* "<prefix>-<i, 7 digits>" */
void fx_id(const fx_ids *ids, size_t i, char out[FX_ID_MAX]);
/* The id's index, or SIZE_MAX when `id` is not one of ours. */
size_t fx_id_index(const fx_ids *ids, const char *id);
const char *fx_xc(size_t i);
bool fx_acked(int32_t answer);

/* Append id i (own hash, context fx_xc(i)); records its answer, latency
 * and whether the fallback took it, and counts it done. */
int32_t fx_append(persistor *p, fx_ids *ids, size_t i, persistor_error *err);

/* Append ids [from, to) from `threads` threads (thread t takes every
 * threads-th id), then join them. */
void fx_write_range(persistor *p, fx_ids *ids, size_t from, size_t to, int threads);
/* Append ids [from, to) one by one, each answered by the primary itself
 * (not degraded before or after), or the test fails. */
void fx_write_to_primary(persistor *p, fx_ids *ids, size_t from, size_t to);

/*
 * A controller thread: while writers run, it waits until `at[k]` appends
 * have been answered, then calls fn(ctx, k), for k = 0.. n_steps-1 in
 * order.  fx_controller_join stops it (steps not reached are not run) and
 * returns how many ran.
 */
typedef void (*fx_step_fn)(void *ctx, size_t step);
typedef struct fx_controller {
    fx_ids *ids;
    const size_t *at;
    size_t n_steps, ran;
    fx_step_fn fn;
    void *ctx;
    atomic_bool stop;
    pthread_t thread;
} fx_controller;

void fx_controller_start(fx_controller *c, fx_ids *ids, const size_t *at, size_t n_steps,
                         fx_step_fn fn, void *ctx);
size_t fx_controller_join(fx_controller *c);

/* ---- health, recovery ------------------------------------------------- */

/* persistor_health_check, or the test fails.  Free with persistor_health_free. */
void fx_health(persistor *p, persistor_health *h);
/* Sum of journal_pending over the fallbacks. */
uint64_t fx_journal_pending(persistor *p);
/* The primary's breaker is `want` ("closed", "open", ...) and the first
 * fallback has `pending` journal entries, or the test fails. */
void fx_breaker_is(persistor *p, const char *want, uint64_t pending);
/* Poll until persistor_degraded(p) is 0, fx_deadline_ms() at most; fails
 * the test with the health report on timeout.  Returns the ms it took. */
int64_t fx_wait_recovered(persistor *p, const char *what);

/* ---- the log ---------------------------------------------------------- */

/* Lines of w's log whose event is `event` (and which contain `needle`,
 * when not NULL). */
size_t fx_log_count(const fx_world *w, const char *event, const char *needle);
/* Sum of the integer field `field` over the lines of `event`. */
uint64_t fx_log_sum(const fx_world *w, const char *event, const char *field);

/* ---- the invariant ---------------------------------------------------- */

typedef struct fx_counts {
    size_t tried, acked, failed;
    size_t via_fallback;   /* acked with the primary's breaker open around the call */
    size_t in_primary;     /* records of the primary after recovery */
    size_t stored_unacked; /* tried, refused, yet stored (accounted for) */
    size_t lost, duplicated, unknown;
    uint64_t replayed, replay_duplicates, failovers, retries; /* from the log */
} fx_counts;

/*
 * Check THE INVARIANT for `ids` through a fresh handle on `primary_profile`
 * (the primary's store alone), fill *out, print the counts on one line
 * ("[name] acked=... failed=... fallback=... replayed=..."), and fail the
 * test on a lost, duplicated or unknown record, or on a count of the
 * store that is not the number of records listed.
 */
void fx_check_invariant(fx_world *w, const char *primary_profile, fx_ids *ids,
                        fx_counts *out);

/* Records in the snapshots collection of `profile` (a fresh handle). */
uint64_t fx_count_records(fx_world *w, const char *profile);

/* After a recovery that drained its journal, the fallback (profile
 * `fallback`) must hold no copy of what it took: the test fails, naming a
 * few, otherwise. */
void fx_fallback_is_empty(fx_world *w);

/* Append id i; fail the test unless it is acknowledged (OK or EXISTS). */
void fx_append_ok(persistor *p, fx_ids *ids, size_t i);

/* After the primary was made to stop answering: append from `from` until
 * the handle is degraded (at most 5), then `calls` appends each followed
 * by a `has`, asserting that none of those reached the primary (fault
 * `c`'s WRITE and READ counters do not move; only the recovery thread's
 * pings may).  Prints the latencies under `name`; returns the next index. */
size_t fx_calls_skip_open_primary(const char *name, persistor *p, fault_control *c, fx_ids *ids,
                                  size_t from, size_t calls);

/* p50 and p99 of the latencies of ids [from, to), in µs, and their max. */
void fx_latency(const fx_ids *ids, size_t from, size_t to, int64_t *p50, int64_t *p99,
                int64_t *max);

/* ---- audit records and telemetry during an outage (issue 6) ----------- */

/*
 * What an outage test saves besides snapshots, by id.  Before the outage
 * the primary takes a workflow result "wf-before" (RUNNING) and an
 * incident; during it, a validation, "wf-before" again (COMPLETED), a
 * result "wf-during" twice (RUNNING, then COMPLETED), an incident and a
 * telemetry record, all answered by the fallback.
 */
typedef struct fx_audit {
    char incident_before[PERSISTOR_ID_MAX + 1];
    char validation[PERSISTOR_ID_MAX + 1];
    char incident[PERSISTOR_ID_MAX + 1];
    char telemetry[PERSISTOR_ID_MAX + 1];
} fx_audit;

/* The writes of the outage, each journaled by the fallback. */
#define FX_AUDIT_OUTAGE_WRITES 6

/* persistor_audit_save / persistor_telemetry_buffer of JSON text. */
int32_t fx_audit_save(persistor *p, persistor_audit_kind kind, const char *json,
                      char id[PERSISTOR_ID_MAX + 1], persistor_error *err);
int32_t fx_telemetry_buffer(persistor *p, const char *json, char id[PERSISTOR_ID_MAX + 1],
                            persistor_error *err);

/* The saves before the outage: each answered OK by the primary itself. */
void fx_audit_before(persistor *p, fx_audit *a);
/* The saves during the outage (the primary just stopped answering): each
 * answers OK, with the handle degraded after it; then a read of the
 * workflow results is degraded and sees the fallback's two. */
void fx_audit_during(persistor *p, fx_audit *a);
/* Through a fresh handle on `profile` (the primary's store alone): every
 * record of `a` is there exactly once, nothing else is, and both workflow
 * results are their newest (COMPLETED); no `*_persist_failed` was logged. */
void fx_audit_check(fx_world *w, const char *profile, const fx_audit *a);
/* The fallback (profile "fallback") holds no audit record nor telemetry. */
void fx_audit_fallback_is_empty(fx_world *w);

/* Through an open handle: how many records of `collection` match the
 * JSON filter (NULL: all); the test fails on an error. */
uint64_t fx_count_where(persistor *p, const char *collection, const char *filter);
/* The `status` of workflow result `workflow` into out (64 bytes); "" when
 * there is no such result.  Fails the test on an error. */
void fx_result_status(persistor *p, const char *workflow, char *out);

#endif
