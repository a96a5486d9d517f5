/*
 * failover_bench.c — persistor-failover-bench: what failover costs.
 *
 *     persistor-failover-bench [--records N] [--runs R] [--calls N]
 *                              [--initial-ms MS] [--max-ms MS]
 *                              [--mongod-dir DIR] [--dir DIR] [--keep]
 *
 *  1. The latency of an append while the primary's breaker is open: --calls
 *     (10,000) appends to fault(sqlite) -> lmdb with the primary down since
 *     open, p50 / p99 / max in µs, with lmdb sync=true (durable, the
 *     default) and sync=false (no fsync).
 *  2. The time from the primary's death to the first write the fallback
 *     accepts, with one writer appending continuously: death by
 *     E_UNAVAILABLE (fails over at once), by E_RETRY (pays the retries'
 *     backoff first), and, when a mock mongod runs (--mongod-dir or
 *     $PERSISTOR_MONGOD_DIR, see tests/mongod), a mongodb primary killed
 *     with `refuse on` + `close` (pays server_selection_timeout_ms, 500).
 *  3. Replay throughput, lmdb into sqlite: --records (50,000) snapshots
 *     written while the primary is down, then the fault cleared: records/s
 *     of the replay itself (its replay_completed log line) and from the
 *     clear to persistor_degraded() == 0 (which adds the probe's wait).
 *
 * Every run uses fresh stores in its own directory (--dir, default a temp
 * directory, removed unless --keep).  The retry policy is the shipped
 * `test` profile's (3 attempts, 10 ms x2 up to 100 ms): it spaces retries
 * and probes alike, so --initial-ms and --max-ms move (2) and the probe
 * part of (3).  Exit status 0 when every measurement ran, 1 when one
 * failed, 2 on bad usage.  Numbers go to stdout as a table; targets
 * (p99 <= 5 ms with the breaker open, replay >= 10,000 records/s) are
 * compared, never enforced.
 *
 * It links persistor_core (for log_set_fd: the replay's own timing is in
 * its log line) and steers fault.so through fault_control.h; nothing here
 * is installed.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, getline */

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "fault_control.h"
#include "log.h"
#include "persistor/persistor.h"

#ifdef FAULTS_MONGODB_SO
#include "mongod_client.h"
#endif

#define FB_TS0 INT64_C(1700000000000)
#define FB_BATCH 100          /* appends per append_many while filling */
#define FB_WAIT_MS 120000     /* longest wait for a failover or a recovery */
#define FB_MAX_RUNS 20

typedef struct fb_opts {
    size_t records, calls;
    int runs;
    int initial_ms, max_ms;
    const char *mongod_dir;
    char dir[1024];
    bool keep;
} fb_opts;

static fb_opts opts = {50000, 10000, 3, 10, 100, NULL, "", false};
static int fb_log_fd = -1;
static char fb_log_path[1100];
static int fb_failed;

/* ---- small things ----------------------------------------------------- */

static int64_t fb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void fb_sleep_ms(int64_t ms)
{
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

static void fb_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void fb_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "persistor-failover-bench: ");
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    fb_failed = 1;
}

static int fb_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static int fb_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static double fb_cmp_median(double *v, int n)
{
    double s[FB_MAX_RUNS];
    memcpy(s, v, (size_t)n * sizeof *s);
    for (int i = 1; i < n; i++) /* insertion sort: n <= 20 */
        for (int j = i; j > 0 && s[j - 1] > s[j]; j--) {
            double t = s[j];
            s[j] = s[j - 1];
            s[j - 1] = t;
        }
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* ---- a run's stores ----------------------------------------------------- */

typedef struct fb_run {
    char dir[1200];
    char config[1300];
    char control[1300];
    fault_control *fault;
    persistor *p;
} fb_run;

/* A fresh directory with profile "main": fault(sqlite, synchronous full)
 * -> lmdb (sync as asked), or mongodb (uri given) -> lmdb. */
static bool fb_run_open(fb_run *r, const char *tag, int run, bool lmdb_sync,
                        const char *mongodb_uri, bool primary_down)
{
    memset(r, 0, sizeof *r);
    snprintf(r->dir, sizeof r->dir, "%s/%s-%d", opts.dir, tag, run);
    if (mkdir(r->dir, 0700) != 0) {
        fb_fail("%s: %s", r->dir, strerror(errno));
        return false;
    }
    snprintf(r->config, sizeof r->config, "%s/profiles.yaml", r->dir);
    snprintf(r->control, sizeof r->control, "%s/primary.ctl", r->dir);
    FILE *f = fopen(r->config, "w");
    if (f == NULL) {
        fb_fail("%s: %s", r->config, strerror(errno));
        return false;
    }
    fprintf(f, "version: 1\nprofiles:\n  main:\n    adapters:\n");
    if (mongodb_uri != NULL) {
#ifdef FAULTS_MONGODB_SO
        fprintf(f,
                "      - type: mongodb\n        path: %s\n        uri: %s\n"
                "        database: failover_bench_%ld_%s_%d\n"
                "        server_selection_timeout_ms: 500\n        connect_timeout_ms: 500\n"
                "        socket_timeout_ms: 10000\n",
                FAULTS_MONGODB_SO, mongodb_uri, (long)getpid(), tag, run);
#endif
    } else {
        fprintf(f,
                "      - type: fault\n        path: %s\n        inner: %s\n"
                "        control: %s\n"
                "        inner_options: \"file=%s/primary.sqlite;synchronous=full\"\n",
                FAULTS_FAULT_SO, FAULTS_SQLITE_SO, r->control, r->dir);
    }
    fprintf(f,
            "      - type: lmdb\n        path: %s\n        directory: %s/fallback.lmdb\n"
            "        sync: %s\n"
            "    retry:\n      max_attempts: 3\n      initial_interval_ms: %d\n"
            "      backoff_coefficient: 2.0\n      max_interval_ms: %d\n",
            FAULTS_LMDB_SO, r->dir, lmdb_sync ? "true" : "false", opts.initial_ms, opts.max_ms);
    if (fclose(f) != 0) {
        fb_fail("%s: %s", r->config, strerror(errno));
        return false;
    }
    if (mongodb_uri == NULL) {
        r->fault = fault_control_open(r->control);
        if (r->fault == NULL) {
            fb_fail("%s: %s", r->control, strerror(errno));
            return false;
        }
        if (primary_down)
            fault_inject(r->fault, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
    }
    persistor_open_options o = {.struct_size = sizeof o, .config_path = r->config,
                                .profile = "main"};
    persistor_error err = {0};
    int32_t rc = persistor_open(&o, &r->p, &err);
    if (rc != PERSISTOR_OK) {
        fb_fail("open %s: %s: %s", r->config, persistor_rc_name(rc), err.message);
        r->p = NULL;
        return false;
    }
    if (primary_down != (persistor_degraded(r->p) != 0)) {
        fb_fail("%s: the primary should be %s", r->dir, primary_down ? "down" : "up");
        return false;
    }
    return true;
}

static void fb_run_close(fb_run *r)
{
    persistor_close(r->p);
    fault_control_close(r->fault);
    r->p = NULL;
    r->fault = NULL;
    if (!opts.keep)
        nftw(r->dir, fb_rm, 16, FTW_DEPTH | FTW_PHYS);
}

static int32_t fb_append(persistor *p, const char *prefix, size_t i, persistor_error *err)
{
    char id[64], json[160], xc[16];
    snprintf(id, sizeof id, "%s-%08zu", prefix, i);
    snprintf(xc, sizeof xc, "xc-%zu", i % 64);
    snprintf(json, sizeof json,
             "{\"state\": {\"step\": %zu, \"note\": \"failover bench\"}, \"n\": %zu}", i, i);
    persistor_snapshot_input in = {.struct_size = sizeof in, .tenant_id = "bench", .xc_id = xc,
                                   .ts_ms = FB_TS0 + (int64_t)i, .hash = id,
                                   .content_json = json};
    return persistor_snapshot_append(p, &in, NULL, err);
}

/* ---- 1. latency with the breaker open --------------------------------- */

typedef struct fb_latency {
    double p50, p99, max; /* µs */
} fb_latency;

static bool fb_breaker_open_latency(int run, bool lmdb_sync, fb_latency *out)
{
    fb_run r;
    bool ok = fb_run_open(&r, lmdb_sync ? "open-sync" : "open-nosync", run, lmdb_sync, NULL, true);
    int64_t *lat = malloc(opts.calls * sizeof *lat);
    for (size_t i = 0; ok && lat != NULL && i < opts.calls; i++) {
        persistor_error err = {0};
        int64_t t0 = fb_now_us();
        int32_t rc = fb_append(r.p, "open", i, &err);
        lat[i] = fb_now_us() - t0;
        if (rc != PERSISTOR_OK) {
            fb_fail("append %zu with the breaker open: %s: %s", i, persistor_rc_name(rc),
                    err.message);
            ok = false;
        }
    }
    if (ok && fault_calls(r.fault, FAULT_OP_WRITE | FAULT_OP_READ) != 0) {
        fb_fail("calls reached the primary while its breaker was open");
        ok = false;
    }
    if (ok && lat != NULL && opts.calls > 0) {
        qsort(lat, opts.calls, sizeof *lat, fb_cmp_i64);
        out->p50 = (double)lat[opts.calls / 2];
        out->p99 = (double)lat[(opts.calls * 99) / 100 < opts.calls ? (opts.calls * 99) / 100
                                                                     : opts.calls - 1];
        out->max = (double)lat[opts.calls - 1];
    }
    free(lat);
    fb_run_close(&r);
    return ok;
}

/* ---- 2. time to failover ---------------------------------------------- */

typedef struct fb_writer {
    persistor *p;
    atomic_bool stop;
    atomic_llong armed_us;  /* when the primary was killed; 0: not yet */
    int64_t accepted_us;    /* when the fallback's first answer came back */
    size_t appended;
    pthread_t thread;
} fb_writer;

static void *fb_writer_main(void *arg)
{
    fb_writer *w = arg;
    for (size_t i = 0; !atomic_load(&w->stop); i++) {
        persistor_error err = {0};
        int32_t rc = fb_append(w->p, "ttf", i, &err);
        int64_t done = fb_now_us(), armed = atomic_load(&w->armed_us);
        w->appended++;
        if (rc != PERSISTOR_OK && rc != PERSISTOR_EXISTS) {
            fb_fail("append during the failover: %s: %s", persistor_rc_name(rc), err.message);
            break;
        }
        /* One writer: an answer after the kill with the breaker open came
         * from the fallback. */
        if (armed != 0 && done >= armed && persistor_degraded(w->p)) {
            w->accepted_us = done;
            break;
        }
    }
    return NULL;
}

typedef enum { FB_DEATH_UNAVAILABLE, FB_DEATH_RETRY, FB_DEATH_MONGOD } fb_death;

static bool fb_kill(fb_run *r, fb_death how)
{
    switch (how) {
    case FB_DEATH_UNAVAILABLE:
        fault_inject(r->fault, FAULT_OP_ALL, PERSISTOR_E_UNAVAILABLE, -1, 0);
        return true;
    case FB_DEATH_RETRY:
        fault_inject(r->fault, FAULT_OP_ALL, PERSISTOR_E_RETRY, -1, 0);
        return true;
    case FB_DEATH_MONGOD:
#ifdef FAULTS_MONGODB_SO
        if (strncmp(mongod_control("refuse on"), "ok", 2) == 0 &&
            strncmp(mongod_control("close"), "ok", 2) == 0)
            return true;
#endif
        fb_fail("the mock mongod did not take `refuse on` / `close`");
        return false;
    }
    return false;
}

/* Milliseconds from the kill to the fallback's first accepted write. */
static bool fb_time_to_failover(int run, fb_death how, const char *uri, double *ms)
{
    static const char *const tags[] = {"ttf-unavailable", "ttf-retry", "ttf-mongod"};
    fb_run r;
    if (!fb_run_open(&r, tags[how], run, true, how == FB_DEATH_MONGOD ? uri : NULL, false)) {
        fb_run_close(&r);
        return false;
    }
    fb_writer w = {.p = r.p};
    atomic_init(&w.stop, false);
    atomic_init(&w.armed_us, 0);
    pthread_create(&w.thread, NULL, fb_writer_main, &w);
    fb_sleep_ms(200); /* steady state */
    atomic_store(&w.armed_us, fb_now_us());
    bool ok = fb_kill(&r, how);
    int64_t deadline = fb_now_us() + (int64_t)FB_WAIT_MS * 1000;
    while (ok && w.accepted_us == 0 && fb_now_us() < deadline && !fb_failed)
        fb_sleep_ms(1);
    atomic_store(&w.stop, true);
    pthread_join(w.thread, NULL);
#ifdef FAULTS_MONGODB_SO
    if (how == FB_DEATH_MONGOD)
        mongod_control("reset");
#endif
    if (ok && w.accepted_us == 0) {
        fb_fail("%s: no write reached the fallback in %d ms", tags[how], FB_WAIT_MS);
        ok = false;
    }
    if (ok)
        *ms = (double)(w.accepted_us - atomic_load(&w.armed_us)) / 1000.0;
    if (r.fault != NULL)
        fault_clear(r.fault); /* close fast: no probe waits on a dead store */
    fb_run_close(&r);
    return ok;
}

/* ---- 3. replay throughput --------------------------------------------- */

/* The last replay_completed line's "replayed" and "duration_ms" since
 * byte `from` of the log. */
static bool fb_replay_line(off_t from, uint64_t *replayed, uint64_t *duration_ms)
{
    FILE *f = fopen(fb_log_path, "r");
    if (f == NULL)
        return false;
    fseeko(f, from, SEEK_SET);
    char *line = NULL;
    size_t cap = 0;
    bool found = false;
    *replayed = *duration_ms = 0;
    while (getline(&line, &cap, f) > 0) {
        if (strstr(line, "\"event\":\"replay_completed\"") == NULL ||
            strstr(line, "\"drained\":true") == NULL)
            continue;
        const char *a = strstr(line, "\"replayed\":"), *d = strstr(line, "\"duration_ms\":");
        if (a == NULL || d == NULL)
            continue;
        *replayed += strtoull(a + strlen("\"replayed\":"), NULL, 10);
        *duration_ms += strtoull(d + strlen("\"duration_ms\":"), NULL, 10);
        found = true;
    }
    free(line);
    fclose(f);
    return found;
}

typedef struct fb_replay {
    double replay_per_s;     /* from replay_completed: the replay itself */
    double end_to_end_per_s; /* clear -> persistor_degraded() == 0 */
    double fill_s;
} fb_replay;

static bool fb_replay_throughput(int run, fb_replay *out)
{
    fb_run r;
    bool ok = fb_run_open(&r, "replay", run, true, NULL, true);
    persistor_snapshot_input *in = calloc(FB_BATCH, sizeof *in);
    char (*ids)[64] = calloc(FB_BATCH, sizeof *ids);
    char (*xcs)[16] = calloc(FB_BATCH, sizeof *xcs);
    char (*json)[160] = calloc(FB_BATCH, sizeof *json);
    int32_t results[FB_BATCH];
    int64_t t0 = fb_now_us();
    for (size_t i = 0; ok && in && ids && xcs && json && i < opts.records; i += FB_BATCH) {
        size_t n = opts.records - i < FB_BATCH ? opts.records - i : FB_BATCH;
        for (size_t k = 0; k < n; k++) {
            snprintf(ids[k], sizeof ids[k], "rp-%08zu", i + k);
            snprintf(xcs[k], sizeof xcs[k], "xc-%zu", (i + k) % 64);
            snprintf(json[k], sizeof json[k],
                     "{\"state\": {\"step\": %zu, \"note\": \"failover bench\"}, \"n\": %zu}",
                     i + k, i + k);
            in[k] = (persistor_snapshot_input){.struct_size = sizeof in[k], .tenant_id = "bench",
                                               .xc_id = xcs[k], .ts_ms = FB_TS0 + (int64_t)(i + k),
                                               .hash = ids[k], .content_json = json[k]};
        }
        persistor_error err = {0};
        int32_t rc = persistor_snapshot_append_many(r.p, in, n, NULL, results, &err);
        if (rc != PERSISTOR_OK) {
            fb_fail("filling the fallback: %s: %s", persistor_rc_name(rc), err.message);
            ok = false;
        }
    }
    out->fill_s = (double)(fb_now_us() - t0) / 1e6;
    free(in);
    free(ids);
    free(xcs);
    free(json);
    if (!ok) {
        fb_run_close(&r);
        return false;
    }
    off_t log_from = lseek(fb_log_fd, 0, SEEK_END);
    t0 = fb_now_us();
    fault_clear(r.fault);
    int64_t deadline = t0 + (int64_t)FB_WAIT_MS * 1000;
    while (persistor_degraded(r.p) && fb_now_us() < deadline)
        fb_sleep_ms(1);
    int64_t t1 = fb_now_us();
    if (persistor_degraded(r.p)) {
        fb_fail("the replay of %zu records did not end in %d ms", opts.records, FB_WAIT_MS);
        fb_run_close(&r);
        return false;
    }
    /* The breaker closes, then the recovery thread logs replay_completed:
     * give it a moment to write the line. */
    uint64_t replayed = 0, duration_ms = 0;
    for (int i = 0; i < 5000 && !fb_replay_line(log_from, &replayed, &duration_ms); i++)
        fb_sleep_ms(1);
    if (replayed != opts.records) {
        fb_fail("replay_completed says %llu replayed, expected %zu", (unsigned long long)replayed,
                opts.records);
        ok = false;
    }
    out->end_to_end_per_s = (double)opts.records / ((double)(t1 - t0) / 1e6);
    out->replay_per_s = (double)replayed / ((double)(duration_ms ? duration_ms : 1) / 1e3);
    fb_run_close(&r);
    return ok;
}

/* ---- the table -------------------------------------------------------- */

typedef struct fb_row {
    const char *name;
    const char *unit;
    double v[FB_MAX_RUNS];
    bool ok[FB_MAX_RUNS];
    int n;
} fb_row;

static void fb_row_print(const fb_row *row, const char *target)
{
    printf("  %-46s %-6s", row->name, row->unit);
    double good[FB_MAX_RUNS];
    int ng = 0;
    for (int i = 0; i < row->n; i++) {
        if (row->ok[i]) {
            printf(" %10.1f", row->v[i]);
            good[ng++] = row->v[i];
        } else {
            printf(" %10s", "failed");
        }
    }
    if (ng > 0)
        printf(" | %10.1f", fb_cmp_median(good, ng));
    else
        printf(" | %10s", "-");
    printf("%s%s\n", target ? "  " : "", target ? target : "");
}

static void fb_usage(FILE *to)
{
    fprintf(to,
            "usage: persistor-failover-bench [--records N] [--runs R] [--calls N]\n"
            "                                [--initial-ms MS] [--max-ms MS]\n"
            "                                [--mongod-dir DIR] [--dir DIR] [--keep]\n");
}

static bool fb_size_arg(const char *s, size_t *out, size_t min)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < min)
        return false;
    *out = (size_t)v;
    return true;
}

static int fb_parse(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        size_t n;
        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            fb_usage(stdout);
            exit(0);
        } else if (strcmp(a, "--keep") == 0) {
            opts.keep = true;
            continue;
        }
        if (v == NULL) {
            fb_usage(stderr);
            return 2;
        }
        i++;
        if (strcmp(a, "--records") == 0 && fb_size_arg(v, &n, 1))
            opts.records = n;
        else if (strcmp(a, "--calls") == 0 && fb_size_arg(v, &n, 1))
            opts.calls = n;
        else if (strcmp(a, "--runs") == 0 && fb_size_arg(v, &n, 1) && n <= FB_MAX_RUNS)
            opts.runs = (int)n;
        else if (strcmp(a, "--initial-ms") == 0 && fb_size_arg(v, &n, 1) && n <= 600000)
            opts.initial_ms = (int)n;
        else if (strcmp(a, "--max-ms") == 0 && fb_size_arg(v, &n, 1) && n <= 600000)
            opts.max_ms = (int)n;
        else if (strcmp(a, "--mongod-dir") == 0)
            opts.mongod_dir = v;
        else if (strcmp(a, "--dir") == 0)
            snprintf(opts.dir, sizeof opts.dir, "%s", v);
        else {
            fprintf(stderr, "persistor-failover-bench: bad option %s %s (--runs is 1 to %d)\n",
                    a, v, FB_MAX_RUNS);
            fb_usage(stderr);
            return 2;
        }
    }
    if (opts.max_ms < opts.initial_ms) {
        fprintf(stderr, "persistor-failover-bench: --max-ms must be >= --initial-ms\n");
        return 2;
    }
    return 0;
}

/* The mock mongod's wire URI, or NULL when none is given or it is not up. */
static const char *fb_mongod_uri(void)
{
#ifdef FAULTS_MONGODB_SO
    static char uri[128];
    if (opts.mongod_dir != NULL)
        setenv("PERSISTOR_MONGOD_DIR", opts.mongod_dir, 1);
    if (getenv("PERSISTOR_MONGOD_DIR") == NULL)
        return NULL;
    int port = mongod_read_int("port");
    if (port <= 0 || strncmp(mongod_control("reset"), "ok", 2) != 0) {
        fb_fail("PERSISTOR_MONGOD_DIR=%s: no mock mongod answers there",
                getenv("PERSISTOR_MONGOD_DIR"));
        return NULL;
    }
    snprintf(uri, sizeof uri, "mongodb://127.0.0.1:%d/", port);
    return uri;
#else
    if (opts.mongod_dir != NULL)
        fb_fail("--mongod-dir: this build has no mongodb adapter");
    return NULL;
#endif
}

int main(int argc, char **argv)
{
    int rc = fb_parse(argc, argv);
    if (rc != 0)
        return rc;
    bool own_dir = opts.dir[0] == '\0';
    if (own_dir) {
        const char *tmp = getenv("TMPDIR");
        snprintf(opts.dir, sizeof opts.dir, "%s/persistor-failover-bench-XXXXXX",
                 tmp && *tmp ? tmp : "/tmp");
        if (mkdtemp(opts.dir) == NULL) {
            fprintf(stderr, "persistor-failover-bench: mkdtemp %s: %s\n", opts.dir,
                    strerror(errno));
            return 1;
        }
    } else if (mkdir(opts.dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "persistor-failover-bench: %s: %s\n", opts.dir, strerror(errno));
        return 1;
    }
    /* The library's log: to a file (warn, for replay_completed), not the
     * terminal. */
    snprintf(fb_log_path, sizeof fb_log_path, "%s/bench-%ld.log", opts.dir, (long)getpid());
    setenv("PERSISTOR_LOG_LEVEL", "warn", 1);
    log_reload_level();
    fb_log_fd = open(fb_log_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fb_log_fd < 0) {
        fprintf(stderr, "persistor-failover-bench: %s: %s\n", fb_log_path, strerror(errno));
        return 1;
    }
    log_set_fd(fb_log_fd);
    const char *uri = fb_mongod_uri();

    fb_row rows[11] = {
        {"(1) breaker open: append p50, lmdb sync=true", "us", {0}, {0}, 0},
        {"(1) breaker open: append p99, lmdb sync=true", "us", {0}, {0}, 0},
        {"(1) breaker open: append max, lmdb sync=true", "us", {0}, {0}, 0},
        {"(1) breaker open: append p50, lmdb sync=false", "us", {0}, {0}, 0},
        {"(1) breaker open: append p99, lmdb sync=false", "us", {0}, {0}, 0},
        {"(1) breaker open: append max, lmdb sync=false", "us", {0}, {0}, 0},
        {"(2) death -> 1st fallback write: UNAVAILABLE", "ms", {0}, {0}, 0},
        {"(2) death -> 1st fallback write: RETRY", "ms", {0}, {0}, 0},
        {"(2) death -> 1st fallback write: mongod refuse", "ms", {0}, {0}, 0},
        {"(3) replay lmdb -> sqlite (replay_completed)", "rec/s", {0}, {0}, 0},
        {"(3) replay lmdb -> sqlite (clear -> serving)", "rec/s", {0}, {0}, 0},
    };
    double fill_s = 0;
    for (int run = 0; run < opts.runs; run++) {
        fb_latency l = {0};
        for (int s = 0; s < 2; s++) {
            bool ok = fb_breaker_open_latency(run, s == 0, &l);
            double v[3] = {l.p50, l.p99, l.max};
            for (int k = 0; k < 3; k++) {
                rows[s * 3 + k].v[run] = v[k];
                rows[s * 3 + k].ok[run] = ok;
                rows[s * 3 + k].n = run + 1;
            }
        }
        for (int d = 0; d < 3; d++) {
            if (d == FB_DEATH_MONGOD && uri == NULL)
                continue;
            double ms = 0;
            bool ok = fb_time_to_failover(run, (fb_death)d, uri, &ms);
            rows[6 + d].v[run] = ms;
            rows[6 + d].ok[run] = ok;
            rows[6 + d].n = run + 1;
        }
        fb_replay rp = {0};
        bool ok = fb_replay_throughput(run, &rp);
        rows[9].v[run] = rp.replay_per_s;
        rows[10].v[run] = rp.end_to_end_per_s;
        rows[9].ok[run] = rows[10].ok[run] = ok;
        rows[9].n = rows[10].n = run + 1;
        fill_s += rp.fill_s;
    }

    printf("persistor-failover-bench: primary fault(sqlite, synchronous=full) -> lmdb fallback\n"
           "  retry: 3 attempts, %d ms x2 up to %d ms (also the probe spacing); "
           "%zu appends for (1), %zu records for (3) (filled in %.2f s per run)\n",
           opts.initial_ms, opts.max_ms, opts.calls, opts.records, fill_s / opts.runs);
    printf("  %-46s %-6s", "measurement", "unit");
    for (int run = 0; run < opts.runs; run++)
        printf("      run %d", run + 1);
    printf(" | %10s\n", "median");
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const char *target = NULL;
        if (i == 1 || i == 4)
            target = "target <= 5000 us";
        if (i == 9)
            target = "target >= 10000 rec/s";
        if (rows[i].n == 0) {
            printf("  %-46s %-6s (not run: no mock mongod; --mongod-dir DIR)\n", rows[i].name,
                   rows[i].unit);
            continue;
        }
        fb_row_print(&rows[i], target);
    }
    log_set_fd(-1);
    close(fb_log_fd);
    if (own_dir && !opts.keep)
        nftw(opts.dir, fb_rm, 16, FTW_DEPTH | FTW_PHYS);
    else
        printf("  stores and log kept in %s\n", opts.dir);
    return fb_failed ? 1 : 0;
}
