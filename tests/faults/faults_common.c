/*
 * faults_common.c — the fault tests' shared world: temp directories,
 * captured logs, profiles, ids and answers, writer threads, recovery
 * polling and THE INVARIANT (faults_common.h says what it is).
 *
 * It must not arm faults or know which store fails: a test says that.
 * The .so paths come from CMake (FAULTS_*_SO).
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, getline */

#include "faults_common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <bson/bson.h>

#include "log.h"

/* Snapshot timestamps: fixed, so a rerun computes the same documents. */
#define FX_TS0 INT64_C(1700000000000)
/* How many lost or unknown ids a failing invariant names. */
#define FX_SHOW 10

/* ---- scale and time --------------------------------------------------- */

double fx_scale(void)
{
    const char *s = getenv("PERSISTOR_FAULTS_SCALE");
    if (s == NULL || *s == '\0')
        return 1.0;
    char *end;
    double v = strtod(s, &end);
    return *end == '\0' && v > 0 && v <= 100 ? v : 1.0;
}

size_t fx_scaled(size_t n, size_t min)
{
    size_t v = (size_t)((double)n * fx_scale());
    return v < min ? min : v;
}

int64_t fx_deadline_ms(void)
{
    return fx_scale() < 1.0 ? 240000 : 30000;
}

int64_t fx_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t fx_now_ms(void)
{
    return fx_now_us() / 1000;
}

void fx_sleep_ms(int64_t ms)
{
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR)
        ;
}

/* ---- one test's world ------------------------------------------------- */

static int fx_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

int fx_setup(void **state)
{
    fx_world *w = calloc(1, sizeof *w);
    if (w == NULL)
        return -1;
    const char *tmp = getenv("TMPDIR");
    snprintf(w->dir, sizeof w->dir, "%s/persistor-faults-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(w->dir) == NULL) {
        free(w);
        return -1;
    }
    snprintf(w->config, sizeof w->config, "%s/profiles.yaml", w->dir);
    snprintf(w->log, sizeof w->log, "%s/log.jsonl", w->dir);
    snprintf(w->name, sizeof w->name, "?");
    /* The tests count retry_scheduled and replay_completed lines (warn). */
    const char *level = getenv("PERSISTOR_LOG_LEVEL");
    if (level == NULL || strcmp(level, "error") == 0 || strcmp(level, "off") == 0)
        setenv("PERSISTOR_LOG_LEVEL", "warn", 1);
    log_reload_level();
    w->log_fd = open(w->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (w->log_fd < 0) {
        free(w);
        return -1;
    }
    log_set_fd(w->log_fd);
    *state = w;
    return 0;
}

/* The last `n` lines of the log, to stderr: what a failing test left. */
static void fx_log_tail(const fx_world *w, size_t n)
{
    FILE *f = fopen(w->log, "r");
    if (f == NULL)
        return;
    char *lines[64] = {0};
    size_t count = 0, cap = n < 64 ? n : 64;
    char *line = NULL;
    size_t len = 0;
    while (getline(&line, &len, f) > 0) {
        free(lines[count % cap]);
        lines[count % cap] = strdup(line);
        count++;
    }
    free(line);
    fclose(f);
    size_t first = count > cap ? count - cap : 0;
    for (size_t i = first; i < count; i++) {
        fprintf(stderr, "  log: %s", lines[i % cap] ? lines[i % cap] : "\n");
    }
    for (size_t i = 0; i < cap; i++)
        free(lines[i]);
}

int fx_teardown(void **state)
{
    fx_world *w = *state;
    log_set_fd(-1);
    close(w->log_fd);
    if (w->passed) {
        nftw(w->dir, fx_rm, 16, FTW_DEPTH | FTW_PHYS);
    } else {
        fprintf(stderr, "[%s] failed: kept %s; the log's last lines:\n", w->name, w->dir);
        fx_log_tail(w, 40);
    }
    free(w);
    return 0;
}

void fx_begin(fx_world *w, const char *name)
{
    snprintf(w->name, sizeof w->name, "%s", name);
    printf("[%s] in %s (scale %.2f)\n", name, w->dir, fx_scale());
    fflush(stdout);
}

void fx_end(fx_world *w)
{
    w->passed = true;
}

const char *fx_path(const fx_world *w, const char *name, char *out)
{
    snprintf(out, FX_PATH_MAX, "%s/%s", w->dir, name);
    return out;
}

fault_control *fx_control_open(const fx_world *w, const char *name)
{
    char path[FX_PATH_MAX];
    fault_control *c = fault_control_open(fx_path(w, name, path));
    if (c == NULL)
        fail_msg("fault_control_open %s failed", path);
    return c;
}

/* ---- profiles --------------------------------------------------------- */

static void fx_yaml_add(fx_yaml *y, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void fx_yaml_add(fx_yaml *y, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(y->text + y->len, sizeof y->text - y->len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof y->text - y->len)
        fail_msg("profiles file too long for the test's buffer");
    y->len += (size_t)n;
}

void fx_yaml_init(fx_yaml *y)
{
    y->len = 0;
    y->text[0] = '\0';
    fx_yaml_add(y, "version: 1\nprofiles:\n");
}

void fx_yaml_profile(fx_yaml *y, const char *name)
{
    fx_yaml_add(y, "  %s:\n    adapters:\n", name);
}

/* synchronous: normal (WAL): these tests kill processes, not machines, and
 * what a killed process committed is in the WAL the next open reads. */
void fx_yaml_sqlite(fx_yaml *y, const char *file)
{
    fx_yaml_add(y,
                "      - type: sqlite\n        path: %s\n        file: %s\n"
                "        synchronous: normal\n",
                FAULTS_SQLITE_SO, file);
}

/* sync: false, for the same reason: the OS keeps what a killed process
 * wrote; an fsync per commit would only make the tests slow. */
void fx_yaml_lmdb(fx_yaml *y, const char *directory)
{
    fx_yaml_add(y,
                "      - type: lmdb\n        path: %s\n        directory: %s\n"
                "        sync: false\n",
                FAULTS_LMDB_SO, directory);
}

void fx_yaml_memory(fx_yaml *y)
{
    fx_yaml_add(y, "      - type: memory\n        path: %s\n        volatile: true\n",
                FAULTS_MEMORY_SO);
}

void fx_yaml_fault(fx_yaml *y, const char *control, const char *inner_so,
                   const char *inner_options)
{
    fx_yaml_add(y,
                "      - type: fault\n        path: %s\n        inner: %s\n"
                "        control: %s\n        inner_options: \"%s\"\n",
                FAULTS_FAULT_SO, inner_so, control, inner_options ? inner_options : "");
}

void fx_yaml_mongodb(fx_yaml *y, const char *so, const char *uri, const char *database,
                     int select_ms, int socket_ms)
{
    fx_yaml_add(y,
                "      - type: mongodb\n        path: %s\n        uri: %s\n"
                "        database: %s\n        server_selection_timeout_ms: %d\n"
                "        connect_timeout_ms: %d\n        socket_timeout_ms: %d\n",
                so, uri, database, select_ms, select_ms, socket_ms);
}

void fx_yaml_end_retry(fx_yaml *y, const char *on_failure, int max_attempts, int initial_ms,
                       int max_ms)
{
    fx_yaml_add(y,
                "    retry:\n      max_attempts: %d\n      initial_interval_ms: %d\n"
                "      backoff_coefficient: 2.0\n      max_interval_ms: %d\n"
                "    collections:\n      snapshots:\n        on_failure: %s\n",
                max_attempts, initial_ms, max_ms, on_failure ? on_failure : "fail_closed");
}

void fx_yaml_end(fx_yaml *y, const char *on_failure)
{
    fx_yaml_end_retry(y, on_failure, 3, 5, 50);
}

void fx_yaml_write(fx_world *w, const fx_yaml *y)
{
    FILE *f = fopen(w->config, "w");
    if (f == NULL)
        fail_msg("%s: %s", w->config, strerror(errno));
    fputs(y->text, f);
    if (fclose(f) != 0)
        fail_msg("%s: %s", w->config, strerror(errno));
}

void fx_profiles_fault_sqlite_lmdb(fx_world *w, const char *on_failure)
{
    fx_profiles_fault_sqlite_lmdb_probing(w, on_failure, 50);
}

void fx_profiles_fault_sqlite_lmdb_probing(fx_world *w, const char *on_failure, int max_ms)
{
    char ctl[FX_PATH_MAX], db[FX_PATH_MAX], env[FX_PATH_MAX], inner[FX_PATH_MAX + 64];
    fx_path(w, "primary.ctl", ctl);
    fx_path(w, "primary.sqlite", db);
    fx_path(w, "fallback.lmdb", env);
    snprintf(inner, sizeof inner, "file=%s;synchronous=normal", db);
    unlink(ctl);
    fx_yaml y;
    fx_yaml_init(&y);
    fx_yaml_profile(&y, "main");
    fx_yaml_fault(&y, ctl, FAULTS_SQLITE_SO, inner);
    fx_yaml_lmdb(&y, env);
    fx_yaml_end_retry(&y, on_failure, 3, max_ms < 5 ? max_ms : 5, max_ms);
    fx_yaml_profile(&y, "primary");
    fx_yaml_sqlite(&y, db);
    fx_yaml_end(&y, NULL);
    fx_yaml_profile(&y, "fallback");
    fx_yaml_lmdb(&y, env);
    fx_yaml_end(&y, NULL);
    fx_yaml_write(w, &y);
}

int32_t fx_try_open(fx_world *w, const char *profile, persistor **out, persistor_error *err)
{
    persistor_open_options opts = {.struct_size = sizeof opts,
                                   .config_path = w->config,
                                   .profile = profile};
    return persistor_open(&opts, out, err);
}

persistor *fx_open(fx_world *w, const char *profile)
{
    persistor *p = NULL;
    persistor_error err = {0};
    int32_t rc = fx_try_open(w, profile, &p, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("[%s] open %s: %s: %s", w->name, profile, persistor_rc_name(rc), err.message);
    return p;
}

/* ---- ids and answers -------------------------------------------------- */

fx_ids *fx_ids_new(const char *prefix, size_t n)
{
    fx_ids *ids = calloc(1, sizeof *ids);
    assert_non_null(ids);
    snprintf(ids->prefix, sizeof ids->prefix, "%s", prefix);
    ids->n = n;
    ids->answer = malloc((n ? n : 1) * sizeof *ids->answer);
    ids->via_fallback = calloc(n ? n : 1, sizeof *ids->via_fallback);
    ids->latency_us = calloc(n ? n : 1, sizeof *ids->latency_us);
    assert_true(ids->answer && ids->via_fallback && ids->latency_us);
    for (size_t i = 0; i < n; i++)
        ids->answer[i] = FX_NOT_TRIED;
    atomic_init(&ids->done, 0);
    return ids;
}

void fx_ids_free(fx_ids *ids)
{
    if (ids == NULL)
        return;
    free(ids->answer);
    free(ids->via_fallback);
    free(ids->latency_us);
    free(ids);
}

void fx_id(const fx_ids *ids, size_t i, char out[FX_ID_MAX])
{
    snprintf(out, FX_ID_MAX, "%s-%07zu", ids->prefix, i);
}

size_t fx_id_index(const fx_ids *ids, const char *id)
{
    size_t plen = strlen(ids->prefix);
    if (strncmp(id, ids->prefix, plen) != 0 || id[plen] != '-' || strlen(id + plen + 1) != 7)
        return SIZE_MAX;
    char *end;
    unsigned long long v = strtoull(id + plen + 1, &end, 10);
    return *end == '\0' && v < ids->n ? (size_t)v : SIZE_MAX;
}

const char *fx_xc(size_t i)
{
    static const char *const names[FX_N_XC] = {"xc-0", "xc-1", "xc-2", "xc-3",
                                               "xc-4", "xc-5", "xc-6", "xc-7"};
    return names[i % FX_N_XC];
}

bool fx_acked(int32_t answer)
{
    return answer == PERSISTOR_OK || answer == PERSISTOR_EXISTS;
}

int32_t fx_append(persistor *p, fx_ids *ids, size_t i, persistor_error *err)
{
    char id[FX_ID_MAX], json[160];
    fx_id(ids, i, id);
    snprintf(json, sizeof json, "{\"state\": {\"step\": %zu, \"note\": \"fault test\"}, \"n\": %zu}",
             i, i);
    persistor_snapshot_input in = {.struct_size = sizeof in,
                                   .tenant_id = "faults",
                                   .xc_id = fx_xc(i),
                                   .ts_ms = FX_TS0 + (int64_t)i,
                                   .hash = id,
                                   .content_json = json};
    int before = persistor_degraded(p);
    int64_t t0 = fx_now_us();
    int32_t rc = persistor_snapshot_append(p, &in, NULL, err);
    ids->latency_us[i] = fx_now_us() - t0;
    int after = persistor_degraded(p);
    ids->answer[i] = rc;
    ids->via_fallback[i] = fx_acked(rc) && before && after;
    atomic_fetch_add(&ids->done, 1);
    return rc;
}

typedef struct fx_writer {
    persistor *p;
    fx_ids *ids;
    size_t from, to;
    int t, threads;
    pthread_t thread;
} fx_writer;

static void *fx_writer_main(void *arg)
{
    fx_writer *wr = arg;
    for (size_t i = wr->from + (size_t)wr->t; i < wr->to; i += (size_t)wr->threads) {
        persistor_error err = {0};
        fx_append(wr->p, wr->ids, i, &err);
    }
    return NULL;
}

void fx_write_range(persistor *p, fx_ids *ids, size_t from, size_t to, int threads)
{
    fx_writer wr[16];
    assert_true(threads >= 1 && threads <= 16);
    for (int t = 0; t < threads; t++) {
        wr[t] = (fx_writer){p, ids, from, to, t, threads, 0};
        assert_int_equal(pthread_create(&wr[t].thread, NULL, fx_writer_main, &wr[t]), 0);
    }
    for (int t = 0; t < threads; t++)
        pthread_join(wr[t].thread, NULL);
}

static void *fx_controller_main(void *arg)
{
    fx_controller *c = arg;
    for (size_t k = 0; k < c->n_steps; k++) {
        while (atomic_load(&c->ids->done) < c->at[k]) {
            if (atomic_load(&c->stop))
                return NULL;
            fx_sleep_ms(1);
        }
        c->fn(c->ctx, k);
        c->ran = k + 1;
    }
    return NULL;
}

void fx_controller_start(fx_controller *c, fx_ids *ids, const size_t *at, size_t n_steps,
                         fx_step_fn fn, void *ctx)
{
    c->ids = ids;
    c->at = at;
    c->n_steps = n_steps;
    c->ran = 0;
    c->fn = fn;
    c->ctx = ctx;
    atomic_init(&c->stop, false);
    assert_int_equal(pthread_create(&c->thread, NULL, fx_controller_main, c), 0);
}

size_t fx_controller_join(fx_controller *c)
{
    atomic_store(&c->stop, true);
    pthread_join(c->thread, NULL);
    return c->ran;
}

void fx_write_to_primary(persistor *p, fx_ids *ids, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++) {
        persistor_error err = {0};
        bool before = persistor_degraded(p);
        int32_t rc = fx_append(p, ids, i, &err);
        if (rc != PERSISTOR_OK || before || persistor_degraded(p))
            fail_msg("append %zu after recovery: %s%s (degraded before %d, after %d)", i,
                     persistor_rc_name(rc), err.message[0] ? err.message : "", before,
                     persistor_degraded(p));
    }
}

/* ---- health, recovery ------------------------------------------------- */

void fx_health(persistor *p, persistor_health *h)
{
    persistor_error err = {0};
    memset(h, 0, sizeof *h);
    int32_t rc = persistor_health_check(p, h, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("health: %s: %s", persistor_rc_name(rc), err.message);
}

uint64_t fx_journal_pending(persistor *p)
{
    persistor_health h;
    fx_health(p, &h);
    uint64_t n = 0;
    for (size_t i = 1; i < h.count; i++)
        n += h.adapters[i].journal_pending;
    persistor_health_free(&h);
    return n;
}

void fx_breaker_is(persistor *p, const char *want, uint64_t pending)
{
    persistor_health h;
    fx_health(p, &h);
    assert_string_equal(h.adapters[0].breaker, want);
    assert_int_equal(h.adapters[1].journal_pending, pending);
    persistor_health_free(&h);
}

int64_t fx_wait_recovered(persistor *p, const char *what)
{
    int64_t start = fx_now_ms(), deadline = start + fx_deadline_ms();
    while (persistor_degraded(p)) {
        if (fx_now_ms() > deadline) {
            persistor_health h;
            fx_health(p, &h);
            char report[1024];
            size_t used = 0;
            for (size_t i = 0; i < h.count && used < sizeof report; i++)
                used += (size_t)snprintf(report + used, sizeof report - used,
                                         "%s%s breaker %s status %s journal %llu (%s)",
                                         i ? "; " : "", h.adapters[i].label, h.adapters[i].breaker,
                                         persistor_rc_name(h.adapters[i].status),
                                         (unsigned long long)h.adapters[i].journal_pending,
                                         h.adapters[i].message);
            persistor_health_free(&h);
            fail_msg("%s: still degraded after %lld ms: %s", what, (long long)fx_deadline_ms(),
                     report);
        }
        fx_sleep_ms(5);
    }
    return fx_now_ms() - start;
}

/* ---- the log ---------------------------------------------------------- */

/* Calls `fn` on each line of w's log whose event is `event`. */
static void fx_log_each(const fx_world *w, const char *event, void (*fn)(const char *, void *),
                        void *ctx)
{
    char key[128];
    snprintf(key, sizeof key, "\"event\":\"%s\"", event);
    FILE *f = fopen(w->log, "r");
    if (f == NULL)
        return;
    char *line = NULL;
    size_t len = 0;
    while (getline(&line, &len, f) > 0)
        if (strstr(line, key) != NULL)
            fn(line, ctx);
    free(line);
    fclose(f);
}

typedef struct fx_log_ctx {
    const char *needle;
    size_t count;
    uint64_t sum;
} fx_log_ctx;

static void fx_log_counter(const char *line, void *ctx)
{
    fx_log_ctx *c = ctx;
    if (c->needle == NULL || strstr(line, c->needle) != NULL)
        c->count++;
}

static void fx_log_adder(const char *line, void *ctx)
{
    fx_log_ctx *c = ctx;
    const char *at = strstr(line, c->needle);
    if (at != NULL)
        c->sum += strtoull(at + strlen(c->needle), NULL, 10);
}

size_t fx_log_count(const fx_world *w, const char *event, const char *needle)
{
    fx_log_ctx c = {needle, 0, 0};
    fx_log_each(w, event, fx_log_counter, &c);
    return c.count;
}

uint64_t fx_log_sum(const fx_world *w, const char *event, const char *field)
{
    char key[128];
    snprintf(key, sizeof key, "\"%s\":", field);
    fx_log_ctx c = {key, 0, 0};
    fx_log_each(w, event, fx_log_adder, &c);
    return c.sum;
}

/* ---- the invariant ---------------------------------------------------- */

uint64_t fx_count_records(fx_world *w, const char *profile)
{
    persistor *q = fx_open(w, profile);
    persistor_stats st;
    persistor_error err = {0};
    memset(&st, 0, sizeof st);
    int32_t rc = persistor_stats_get(q, &st, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("stats of %s: %s: %s", profile, persistor_rc_name(rc), err.message);
    persistor_close(q);
    return st.item_count;
}

void fx_fallback_is_empty(fx_world *w)
{
    persistor *f = fx_open(w, "fallback");
    size_t left = 0;
    for (size_t x = 0; x < FX_N_XC; x++) {
        persistor_string_list list = {0};
        persistor_error err = {0};
        assert_int_equal(persistor_snapshot_list_hashes(f, fx_xc(x), &list, &err), PERSISTOR_OK);
        for (size_t k = 0; k < list.count; k++, left++)
            if (left < FX_SHOW)
                printf("[%s] left in the fallback after its journal was drained: %s\n",
                       w->name, list.items[k]);
        persistor_string_list_free(&list);
    }
    persistor_stats st;
    persistor_error err = {0};
    memset(&st, 0, sizeof st);
    assert_int_equal(persistor_stats_get(f, &st, &err), PERSISTOR_OK);
    persistor_close(f);
    assert_int_equal(left, 0);
    assert_int_equal(st.item_count, 0);
}

void fx_check_invariant(fx_world *w, const char *primary_profile, fx_ids *ids, fx_counts *out)
{
    fx_counts c;
    memset(&c, 0, sizeof c);
    persistor *q = fx_open(w, primary_profile);
    uint16_t *seen = calloc(ids->n ? ids->n : 1, sizeof *seen);
    assert_non_null(seen);
    size_t listed = 0;
    for (size_t x = 0; x < FX_N_XC; x++) {
        persistor_string_list list = {0};
        persistor_error err = {0};
        int32_t rc = persistor_snapshot_list_hashes(q, fx_xc(x), &list, &err);
        if (rc != PERSISTOR_OK)
            fail_msg("[%s] list %s on %s: %s: %s", w->name, fx_xc(x), primary_profile,
                     persistor_rc_name(rc), err.message);
        assert_false(list.degraded);
        for (size_t k = 0; k < list.count; k++, listed++) {
            size_t i = fx_id_index(ids, list.items[k]);
            if (i == SIZE_MAX || ids->answer[i] == FX_NOT_TRIED) {
                if (c.unknown++ < FX_SHOW)
                    printf("[%s] unknown record in the primary: %s\n", w->name, list.items[k]);
                continue;
            }
            if (seen[i] < UINT16_MAX)
                seen[i]++;
        }
        persistor_string_list_free(&list);
    }
    persistor_stats st;
    persistor_error err = {0};
    memset(&st, 0, sizeof st);
    int32_t rc = persistor_stats_get(q, &st, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("[%s] stats on %s: %s", w->name, primary_profile, err.message);
    /* And one by one, through has (get/exists, not the query path). */
    size_t missing = 0;
    for (size_t i = 0; i < ids->n; i++) {
        if (!fx_acked(ids->answer[i]))
            continue;
        char id[FX_ID_MAX];
        fx_id(ids, i, id);
        rc = persistor_snapshot_has(q, id, &err);
        if (rc != PERSISTOR_OK && rc != PERSISTOR_NOT_FOUND)
            fail_msg("[%s] has %s on %s: %s: %s", w->name, id, primary_profile,
                     persistor_rc_name(rc), err.message);
        if (rc == PERSISTOR_NOT_FOUND && missing++ < FX_SHOW)
            printf("[%s] LOST: has %s answers NOT_FOUND on the primary\n", w->name, id);
    }
    persistor_close(q);

    for (size_t i = 0; i < ids->n; i++) {
        int32_t a = ids->answer[i];
        if (a == FX_NOT_TRIED)
            continue;
        c.tried++;
        bool acked = fx_acked(a);
        c.acked += acked;
        c.failed += !acked;
        c.via_fallback += ids->via_fallback[i];
        if (seen[i] > 1)
            c.duplicated++;
        if (acked && seen[i] == 0) {
            char id[FX_ID_MAX];
            fx_id(ids, i, id);
            if (c.lost++ < FX_SHOW)
                printf("[%s] LOST: %s was acknowledged (%s) but is not in the primary\n",
                       w->name, id, persistor_rc_name(a));
        }
        if (!acked && seen[i] > 0)
            c.stored_unacked++;
    }
    free(seen);
    c.in_primary = (size_t)st.item_count;
    c.replayed = fx_log_sum(w, "replay_completed", "replayed");
    c.replay_duplicates = fx_log_sum(w, "replay_completed", "duplicates");
    c.failovers = fx_log_count(w, "adapter_failover", NULL);
    c.retries = fx_log_count(w, "retry_scheduled", NULL);
    printf("[%s] tried=%zu acked=%zu failed=%zu fallback=%zu replayed=%llu "
           "(already there %llu) failovers=%llu retries=%llu in_primary=%zu "
           "stored_unacked=%zu lost=%zu duplicated=%zu unknown=%zu\n",
           w->name, c.tried, c.acked, c.failed, c.via_fallback, (unsigned long long)c.replayed,
           (unsigned long long)c.replay_duplicates, (unsigned long long)c.failovers,
           (unsigned long long)c.retries, c.in_primary, c.stored_unacked, c.lost, c.duplicated,
           c.unknown);
    fflush(stdout);
    if (out != NULL)
        *out = c;
    assert_int_equal(c.lost, 0);
    assert_int_equal(missing, 0);
    assert_int_equal(c.duplicated, 0);
    assert_int_equal(c.unknown, 0);
    /* Every record of the store was listed under our contexts... */
    assert_int_equal(st.item_count, listed);
    /* ...so the store holds what was acknowledged, and what was refused
     * but stored anyway, and nothing else. */
    assert_int_equal(c.in_primary, c.acked + c.stored_unacked);
}

static int fx_cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

void fx_latency(const fx_ids *ids, size_t from, size_t to, int64_t *p50, int64_t *p99,
                int64_t *max)
{
    size_t n = to > from ? to - from : 0;
    *p50 = *p99 = *max = 0;
    if (n == 0)
        return;
    int64_t *v = malloc(n * sizeof *v);
    assert_non_null(v);
    memcpy(v, ids->latency_us + from, n * sizeof *v);
    qsort(v, n, sizeof *v, fx_cmp_i64);
    *p50 = v[n / 2];
    *p99 = v[(n * 99) / 100 < n ? (n * 99) / 100 : n - 1];
    *max = v[n - 1];
    free(v);
}

void fx_append_ok(persistor *p, fx_ids *ids, size_t i)
{
    persistor_error err = {0};
    int32_t rc = fx_append(p, ids, i, &err);
    if (!fx_acked(rc))
        fail_msg("append %zu: %s: %s", i, persistor_rc_name(rc), err.message);
}

size_t fx_calls_skip_open_primary(const char *name, persistor *p, fault_control *c, fx_ids *ids,
                                  size_t from, size_t calls)
{
    size_t i = from;
    while (!persistor_degraded(p) && i < from + 5)
        fx_append_ok(p, ids, i++); /* waits out its attempts, then the fallback takes it */
    assert_true(persistor_degraded(p));
    size_t first = i;

    uint64_t data_before = fault_calls(c, FAULT_OP_WRITE | FAULT_OP_READ);
    uint64_t pings_before = fault_calls(c, FAULT_OP_PING);
    for (size_t k = 0; k < calls; k++, i++) {
        fx_append_ok(p, ids, i);
        char id[FX_ID_MAX];
        fx_id(ids, i, id);
        persistor_error err = {0};
        assert_int_equal(persistor_snapshot_has(p, id, &err), PERSISTOR_OK);
    }
    /* Not one of those appends or reads reached the primary; only the
     * recovery thread's probes (pings) may have. */
    assert_int_equal(fault_calls(c, FAULT_OP_WRITE | FAULT_OP_READ), data_before);
    uint64_t probes = fault_calls(c, FAULT_OP_PING) - pings_before;
    int64_t p50, p99, max;
    fx_latency(ids, first, i, &p50, &p99, &max);
    printf("[%s] first call after the primary stopped: %lld us; then %zu appends with the "
           "breaker open: p50 %lld us, p99 %lld us, max %lld us; %llu probes meanwhile\n",
           name, (long long)ids->latency_us[from], calls, (long long)p50, (long long)p99,
           (long long)max, (unsigned long long)probes);
    return i;
}

/* ---- audit records and telemetry during an outage (issue 6) ----------- */

int32_t fx_audit_save(persistor *p, persistor_audit_kind kind, const char *json,
                      char id[PERSISTOR_ID_MAX + 1], persistor_error *err)
{
    persistor_record_input in = {.struct_size = sizeof in, .json = json, .json_source = "fault"};
    return persistor_audit_save(p, kind, &in, id, err);
}

int32_t fx_telemetry_buffer(persistor *p, const char *json, char id[PERSISTOR_ID_MAX + 1],
                            persistor_error *err)
{
    persistor_record_input in = {.struct_size = sizeof in, .json = json, .json_source = "fault"};
    return persistor_telemetry_buffer(p, &in, id, err);
}

#define FX_RESULT(wf, status)                                                                 \
    "{\"workflow_id\": \"" wf "\", \"plan_id\": \"p-fault\", \"status\": \"" status "\", " \
    "\"sla_status\": {\"violations_count\": 1}}"

/* One save that must answer OK; `degraded_after` is what the handle must
 * say after it (-1: either). */
static void fx_audit_ok(persistor *p, const char *what, int32_t rc, const persistor_error *err,
                        int degraded_after)
{
    if (rc != PERSISTOR_OK)
        fail_msg("%s: %s (expected OK): %s", what, persistor_rc_name(rc), err->message);
    if (degraded_after >= 0 && (persistor_degraded(p) != 0) != (degraded_after != 0))
        fail_msg("%s: answered OK, but the handle is %sdegraded after it", what,
                 degraded_after ? "not " : "");
}

void fx_audit_before(persistor *p, fx_audit *a)
{
    persistor_error err = {0};
    int32_t rc = fx_audit_save(p, PERSISTOR_AUDIT_WORKFLOW_RESULT,
                               FX_RESULT("wf-before", "RUNNING"), NULL, &err);
    fx_audit_ok(p, "result wf-before RUNNING (before)", rc, &err, 0);
    rc = fx_audit_save(p, PERSISTOR_AUDIT_INCIDENT,
                       "{\"workflow_id\": \"wf-before\", \"type\": \"timeout\","
                       " \"severity\": \"HIGH\"}",
                       a->incident_before, &err);
    fx_audit_ok(p, "incident (before)", rc, &err, 0);
}

void fx_audit_during(persistor *p, fx_audit *a)
{
    persistor_error err = {0};
    /* The first call finds the primary down: it waits out its attempts,
     * then the fallback takes it. */
    int32_t rc = fx_audit_save(p, PERSISTOR_AUDIT_VALIDATION,
                               "{\"plan_id\": \"p-fault\", \"workflow_id\": \"wf-during\","
                               " \"validation_result\": {\"valid\": false, \"errors\": [\"x\"]}}",
                               a->validation, &err);
    fx_audit_ok(p, "validation (during)", rc, &err, 1);
    rc = fx_audit_save(p, PERSISTOR_AUDIT_WORKFLOW_RESULT, FX_RESULT("wf-before", "COMPLETED"),
                       NULL, &err);
    fx_audit_ok(p, "result wf-before COMPLETED (during)", rc, &err, 1);
    rc = fx_audit_save(p, PERSISTOR_AUDIT_WORKFLOW_RESULT, FX_RESULT("wf-during", "RUNNING"), NULL,
                       &err);
    fx_audit_ok(p, "result wf-during RUNNING (during)", rc, &err, 1);
    rc = fx_audit_save(p, PERSISTOR_AUDIT_WORKFLOW_RESULT, FX_RESULT("wf-during", "COMPLETED"),
                       NULL, &err);
    fx_audit_ok(p, "result wf-during COMPLETED (during)", rc, &err, 1);
    rc = fx_audit_save(p, PERSISTOR_AUDIT_INCIDENT,
                       "{\"workflow_id\": \"wf-during\", \"type\": \"crash\","
                       " \"severity\": \"CRITICAL\", \"details\": {\"step\": 2}}",
                       a->incident, &err);
    fx_audit_ok(p, "incident (during)", rc, &err, 1);
    rc = fx_telemetry_buffer(p,
                             "{\"correlation\": {\"workflow_id\": \"wf-during\"},"
                             " \"metrics\": {\"latency_ms\": 7}, \"source\": \"faults\"}",
                             a->telemetry, &err);
    fx_audit_ok(p, "telemetry buffer (during)", rc, &err, 1);

    /* Reads answer from the fallback, marked, with what it took. */
    persistor_find_options all = {.struct_size = sizeof all};
    uint64_t n = 0;
    int32_t degraded = 0;
    rc = persistor_count(p, "workflow_results", &all, &n, &degraded, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("count workflow_results (during): %s: %s", persistor_rc_name(rc), err.message);
    assert_true(degraded);
    assert_int_equal(n, 2);
    char status[64];
    fx_result_status(p, "wf-during", status);
    assert_string_equal(status, "COMPLETED");
}

uint64_t fx_count_where(persistor *p, const char *collection, const char *filter)
{
    persistor_find_options opts = {.struct_size = sizeof opts, .filter_json = filter};
    uint64_t n = 0;
    persistor_error err = {0};
    int32_t rc = persistor_count(p, collection, &opts, &n, NULL, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("count %s where %s: %s: %s", collection, filter ? filter : "{}",
                 persistor_rc_name(rc), err.message);
    return n;
}

void fx_result_status(persistor *p, const char *workflow, char *out)
{
    char filter[PERSISTOR_ID_MAX + 32];
    snprintf(filter, sizeof filter, "{\"_id\": \"%s\"}", workflow);
    persistor_find_options opts = {.struct_size = sizeof opts, .filter_json = filter};
    persistor_record_iter *it = NULL;
    persistor_error err = {0};
    int32_t rc = persistor_find(p, "workflow_results", &opts, &it, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("find workflow_results %s: %s: %s", workflow, persistor_rc_name(rc), err.message);
    out[0] = '\0';
    const uint8_t *data;
    uint32_t len;
    size_t found = 0;
    while ((rc = persistor_record_iter_next(it, &data, &len, &err)) == PERSISTOR_OK) {
        bson_t doc;
        bson_iter_t field;
        found++;
        if (bson_init_static(&doc, data, len) && bson_iter_init_find(&field, &doc, "status") &&
            BSON_ITER_HOLDS_UTF8(&field))
            snprintf(out, 64, "%s", bson_iter_utf8(&field, NULL));
    }
    persistor_record_iter_free(it);
    if (rc != PERSISTOR_ITER_END)
        fail_msg("find workflow_results %s: %s: %s", workflow, persistor_rc_name(rc), err.message);
    assert_true(found <= 1);
}

/* Exactly one record of `collection` has this _id. */
static void fx_once(fx_world *w, persistor *q, const char *collection, const char *id)
{
    char filter[PERSISTOR_ID_MAX + 32];
    snprintf(filter, sizeof filter, "{\"_id\": \"%s\"}", id);
    uint64_t n = fx_count_where(q, collection, filter);
    if (n != 1)
        fail_msg("[%s] %s holds %llu records %s, expected exactly 1", w->name, collection,
                 (unsigned long long)n, id);
}

void fx_audit_check(fx_world *w, const char *profile, const fx_audit *a)
{
    persistor *q = fx_open(w, profile);
    fx_once(w, q, "validation_audit", a->validation);
    fx_once(w, q, "workflow_results", "wf-before");
    fx_once(w, q, "workflow_results", "wf-during");
    fx_once(w, q, "incidents", a->incident_before);
    fx_once(w, q, "incidents", a->incident);
    fx_once(w, q, "telemetry_buffer", a->telemetry);
    /* ...and nothing else. */
    assert_int_equal(fx_count_where(q, "validation_audit", NULL), 1);
    assert_int_equal(fx_count_where(q, "workflow_results", NULL), 2);
    assert_int_equal(fx_count_where(q, "incidents", NULL), 2);
    assert_int_equal(fx_count_where(q, "telemetry_buffer", NULL), 1);
    /* The replay kept the newest result of each workflow, even over the
     * older one the primary held before the outage. */
    char status[64];
    fx_result_status(q, "wf-before", status);
    assert_string_equal(status, "COMPLETED");
    fx_result_status(q, "wf-during", status);
    assert_string_equal(status, "COMPLETED");
    /* The buffered record is claimable as a fresh one. */
    assert_int_equal(fx_count_where(q, "telemetry_buffer",
                                    "{\"state\": \"pending\", \"retry_count\": 0}"),
                     1);
    persistor_close(q);
    static const char *const failed[] = {"validation_audit_persist_failed",
                                         "workflow_result_persist_failed",
                                         "incident_persist_failed",
                                         "telemetry_buffer_persist_failed"};
    for (size_t i = 0; i < sizeof failed / sizeof failed[0]; i++)
        assert_int_equal(fx_log_count(w, failed[i], NULL), 0);
    printf("[%s] after recovery the primary holds each audit record and the telemetry record "
           "once, both workflow results COMPLETED\n",
           w->name);
}

void fx_audit_fallback_is_empty(fx_world *w)
{
    persistor *f = fx_open(w, "fallback");
    static const char *const collections[] = {"validation_audit", "workflow_results",
                                              "incidents", "telemetry_buffer"};
    for (size_t i = 0; i < sizeof collections / sizeof collections[0]; i++) {
        uint64_t n = fx_count_where(f, collections[i], NULL);
        if (n != 0)
            fail_msg("[%s] the fallback still holds %llu %s records after its journal was "
                     "drained",
                     w->name, (unsigned long long)n, collections[i]);
    }
    persistor_close(f);
}
