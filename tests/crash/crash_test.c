/*
 * crash_test.c — persistor-crash-test: SIGKILL a writer at random moments
 * and check that a durable store opens clean afterwards and still holds
 * every snapshot whose append had returned.
 *
 *     persistor-crash-test --adapter sqlite|lmdb --plugin-dir DIR [--kills N]
 *
 * Each round forks a writer that opens the profile through the public API
 * and appends snapshots (single appends and batches) until it is killed.
 * After each append returns OK or EXISTS, and only then, the writer sends
 * the hashes to the parent down a pipe with write(2), so every hash the
 * parent hears of was acknowledged.  After each kill the
 * parent opens the store directly (sqlite3: PRAGMA integrity_check; LMDB:
 * reader check, env stat and a cursor walk of every named database), then
 * through persistor_open, and requires every acknowledged hash, from every
 * round so far, to be there.
 *
 * Environment: PERSISTOR_CRASH_KILLS (rounds, default 20, overrides
 * --kills), PERSISTOR_CRASH_SEED (replays the kill delays and the writer's
 * choices; the kill moments still depend on timing).  Exit status: 0 when
 * every round passed, 1 on any failure (the store is kept for inspection
 * and its directory named), 2 on bad usage.
 *
 * This program must not reach into the store's format beyond those direct
 * integrity checks: what "stored" means is the public API's answer.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw, kill, nanosleep */

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "persistor/persistor.h"

#ifdef PERSISTOR_CRASH_SQLITE
#include <sqlite3.h>
#endif
#ifdef PERSISTOR_CRASH_LMDB
#include <lmdb.h>
#endif

#define CRASH_LINE (PERSISTOR_HASH_HEX_LEN + 1) /* 64 hex digits and '\n' */
#define CRASH_DEFAULT_KILLS 20
#define CRASH_MAX_DELAY_MS 150
#define CRASH_WAIT_MS 10000       /* for a killed writer's pipe and exit */
#define CRASH_WRITER_ALARM_S 300  /* a writer outliving its parent dies */
#define CRASH_MAX_BATCH 50
#define CRASH_PAD 1000            /* content bytes per snapshot, about 1 KiB */
#define CRASH_TS0 INT64_C(1700000000000)
#define CRASH_SHOW_LOST 10

typedef char crash_hash[PERSISTOR_HASH_HEX_LEN + 1];

typedef struct crash_run {
    const char *adapter;
    const char *plugin_dir;
    unsigned kills;
    uint64_t seed;
    uint64_t rng;
    char dir[1024];
    char config[1100];
    char store[1100];
    crash_hash *acked; /* every acknowledged hash, all rounds */
    size_t n_acked, cap_acked;
} crash_run;

/* ---- small tools ---------------------------------------------------- */

static uint64_t crash_rand(uint64_t *state) /* splitmix64 */
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static int64_t crash_now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void crash_sleep_ms(int64_t ms)
{
    struct timespec t = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

/* 13482 as "13,482", into a static buffer of one of four slots. */
static const char *crash_thousands(uint64_t n)
{
    static char slots[4][32];
    static unsigned next;
    char digits[32], *out = slots[next++ % 4];
    int len = snprintf(digits, sizeof digits, "%" PRIu64, n), o = 0;
    for (int i = 0; i < len; i++) {
        if (i > 0 && (len - i) % 3 == 0)
            out[o++] = ',';
        out[o++] = digits[i];
    }
    out[o] = '\0';
    return out;
}

static int crash_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

/* ---- the writer (a child process) ------------------------------------ */

/* All of buf, or exit: a parent that stopped listening ends the writer. */
static void writer_send(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            _exit(0);
        buf += n;
        len -= (size_t)n;
    }
}

/* The content of snapshot `seq` of `round`: about CRASH_PAD bytes of JSON. */
static void writer_content(char *out, size_t cap, unsigned round, uint64_t seq, uint64_t *rng)
{
    int len = snprintf(out, cap, "{\"state\":{\"round\":%u,\"seq\":%" PRIu64 "},\"pad\":\"",
                       round, seq);
    for (int i = 0; i < CRASH_PAD && (size_t)len + 3 < cap; i++)
        out[len++] = (char)('a' + crash_rand(rng) % 26);
    out[len++] = '"';
    out[len++] = '}';
    out[len] = '\0';
}

static void writer_input(persistor_snapshot_input *in, char *xc, size_t xc_cap, char *json,
                         size_t json_cap, unsigned round, uint64_t seq, uint64_t *rng)
{
    snprintf(xc, xc_cap, "crash-r%u-s%" PRIu64, round, seq);
    writer_content(json, json_cap, round, seq, rng);
    *in = (persistor_snapshot_input){.struct_size = sizeof *in,
                                     .xc_id = xc,
                                     .ts_ms = CRASH_TS0 + (int64_t)seq,
                                     .content_json = json};
}

/* Appends until killed.  Never returns.  Exit 2: could not open; 3: an
 * append failed; 4: a repeated append was not EXISTS (the store forgot). */
static void writer_main(const crash_run *r, unsigned round, int fd)
{
    static char xc[CRASH_MAX_BATCH][64], json[CRASH_MAX_BATCH][CRASH_PAD + 128];
    static persistor_snapshot_input in[CRASH_MAX_BATCH];
    static crash_hash hashes[CRASH_MAX_BATCH];
    static int32_t results[CRASH_MAX_BATCH];
    static char lines[CRASH_MAX_BATCH * CRASH_LINE];
    static char last_xc[64], last_json[CRASH_PAD + 128];
    persistor_snapshot_input last = {0};
    uint64_t rng = r->seed ^ (UINT64_C(0x51ed27) * (round + 1));
    persistor_open_options opts = {.struct_size = sizeof opts,
                                   .config_path = r->config,
                                   .profile = "crash"};
    persistor_error err = {0};
    persistor *p = NULL;
    alarm(CRASH_WRITER_ALARM_S);
    int32_t rc = persistor_open(&opts, &p, &err);
    if (rc != PERSISTOR_OK) {
        fprintf(stderr, "writer %u: persistor_open: %s: %s\n", round, persistor_rc_name(rc),
                err.message);
        _exit(2);
    }
    for (uint64_t seq = 0;;) {
        uint64_t choice = crash_rand(&rng) % 10;
        if (choice == 0 && seq > 0) {
            /* The last snapshot again: it was acknowledged, so EXISTS.
             * Its hash was sent already; nothing more to send. */
            rc = persistor_snapshot_append(p, &last, hashes[0], &err);
            if (rc != PERSISTOR_EXISTS) {
                fprintf(stderr, "writer %u: appending %s again: %s (expected EXISTS)%s%s\n",
                        round, last_xc, persistor_rc_name(rc), rc < 0 ? ": " : "",
                        rc < 0 ? err.message : "");
                _exit(rc < 0 ? 3 : 4);
            }
            continue;
        }
        size_t n = choice < 5 ? 1 : 1 + crash_rand(&rng) % CRASH_MAX_BATCH;
        for (size_t i = 0; i < n; i++)
            writer_input(&in[i], xc[i], sizeof xc[i], json[i], sizeof json[i], round, seq + i,
                         &rng);
        if (n == 1) {
            rc = persistor_snapshot_append(p, &in[0], hashes[0], &err);
            results[0] = rc;
        } else {
            rc = persistor_snapshot_append_many(p, in, n, hashes, results, &err);
        }
        if (rc < 0) {
            fprintf(stderr, "writer %u: append of %zu at seq %" PRIu64 ": %s: %s\n", round, n,
                    seq, persistor_rc_name(rc), err.message);
            _exit(3);
        }
        /* Acknowledged: only now may the parent hear of these hashes. */
        size_t len = 0;
        for (size_t i = 0; i < n; i++) {
            if (results[i] != PERSISTOR_OK && results[i] != PERSISTOR_EXISTS) {
                fprintf(stderr, "writer %u: %s: %s\n", round, xc[i],
                        persistor_rc_name(results[i]));
                _exit(3);
            }
            memcpy(lines + len, hashes[i], PERSISTOR_HASH_HEX_LEN);
            lines[len + PERSISTOR_HASH_HEX_LEN] = '\n';
            len += CRASH_LINE;
        }
        writer_send(fd, lines, len); /* at most 3,250 bytes: one atomic write */
        memcpy(last_xc, xc[n - 1], sizeof last_xc);
        memcpy(last_json, json[n - 1], sizeof last_json);
        last = in[n - 1];
        last.xc_id = last_xc;
        last.content_json = last_json;
        seq += n;
    }
}

/* ---- the parent: acknowledgements ------------------------------------ */

typedef struct crash_reader {
    int fd;
    char part[CRASH_LINE];
    size_t part_len;
    size_t malformed;
} crash_reader;

static int crash_ack(crash_run *r, const char *hash)
{
    if (r->n_acked == r->cap_acked) {
        size_t cap = r->cap_acked ? r->cap_acked * 2 : 4096;
        crash_hash *grown = realloc(r->acked, cap * sizeof *grown);
        if (grown == NULL)
            return -1;
        r->acked = grown;
        r->cap_acked = cap;
    }
    memcpy(r->acked[r->n_acked], hash, PERSISTOR_HASH_HEX_LEN);
    r->acked[r->n_acked++][PERSISTOR_HASH_HEX_LEN] = '\0';
    return 0;
}

/* Keep the complete lines of `buf`; a line cut by the kill is dropped. */
static int crash_take(crash_run *r, crash_reader *rd, const char *buf, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        rd->part[rd->part_len++] = buf[i];
        if (rd->part_len < CRASH_LINE)
            continue;
        rd->part_len = 0;
        if (rd->part[CRASH_LINE - 1] != '\n' ||
            strspn(rd->part, "0123456789abcdef") < PERSISTOR_HASH_HEX_LEN) {
            rd->malformed++;
            continue;
        }
        if (crash_ack(r, rd->part) != 0)
            return -1;
    }
    return 0;
}

/* Read what the writer sends until `deadline_ms` (monotonic) or EOF.
 * Returns 1 at EOF, 0 at the deadline, -1 on an error. */
static int crash_read_until(crash_run *r, crash_reader *rd, int64_t deadline_ms)
{
    char buf[8192];
    for (;;) {
        int64_t left = deadline_ms - crash_now_ms();
        if (left <= 0)
            return 0;
        struct pollfd pfd = {rd->fd, POLLIN, 0};
        int n = poll(&pfd, 1, (int)left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        ssize_t got = read(rd->fd, buf, sizeof buf);
        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -1;
        if (got == 0)
            return 1;
        if (crash_take(r, rd, buf, (size_t)got) != 0)
            return -1;
    }
}

/* waitpid with a deadline; SIGKILL again if it comes.  The raw status. */
static int crash_reap(pid_t pid, int *status)
{
    int64_t deadline = crash_now_ms() + CRASH_WAIT_MS;
    for (;;) {
        pid_t got = waitpid(pid, status, WNOHANG);
        if (got == pid)
            return 0;
        if (got < 0 && errno != EINTR)
            return -1;
        if (crash_now_ms() > deadline) {
            fprintf(stderr, "crash_test: writer %d did not die within %d ms of SIGKILL\n",
                    (int)pid, CRASH_WAIT_MS);
            kill(pid, SIGKILL);
            return waitpid(pid, status, 0) == pid ? 0 : -1;
        }
        crash_sleep_ms(2);
    }
}

/* ---- the parent: checks ---------------------------------------------- */

#ifdef PERSISTOR_CRASH_SQLITE
static int check_sqlite(const crash_run *r, char *note, size_t cap)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    struct stat sb;
    if (stat(r->store, &sb) != 0) {
        snprintf(note, cap, "no file yet");
        return r->n_acked == 0 ? 0 : -1;
    }
    /* Read-write, so that a hot journal the killed writer left is rolled
     * back (or the WAL recovered), as any later opener would. */
    int rc = sqlite3_open_v2(r->store, &db, SQLITE_OPEN_READWRITE, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_busy_timeout(db, CRASH_WAIT_MS);
    if (rc == SQLITE_OK)
        rc = sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL);
    int rows = 0, ok = 0;
    while (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *text = (const char *)sqlite3_column_text(st, 0);
        if (rows++ == 0) {
            ok = text != NULL && strcmp(text, "ok") == 0;
            snprintf(note, cap, "integrity_check: %s", text ? text : "(null)");
        }
        rc = SQLITE_OK;
    }
    if (rc != SQLITE_DONE) {
        snprintf(note, cap, "%s: %s", r->store, db ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
        ok = 0;
    } else if (rows != 1) {
        ok = 0; /* the first problem is in `note`; there were more */
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return ok ? 0 : -1;
}
#endif

#ifdef PERSISTOR_CRASH_LMDB
/* Walk one database with a cursor; the entries seen must match its stat. */
static int lmdb_walk(MDB_txn *txn, MDB_dbi dbi, const char *name, size_t *entries, char *note,
                     size_t cap)
{
    MDB_cursor *cur = NULL;
    MDB_val k, v;
    MDB_stat st;
    size_t n = 0;
    int rc = mdb_stat(txn, dbi, &st);
    if (rc == 0)
        rc = mdb_cursor_open(txn, dbi, &cur);
    while (rc == 0 && (rc = mdb_cursor_get(cur, &k, &v, n ? MDB_NEXT : MDB_FIRST)) == 0)
        n++;
    if (cur)
        mdb_cursor_close(cur);
    if (rc != MDB_NOTFOUND) {
        snprintf(note, cap, "walking database '%s': %s", name, mdb_strerror(rc));
        return -1;
    }
    if (n != st.ms_entries) {
        snprintf(note, cap, "database '%s': the cursor saw %zu entries, its stat says %zu", name,
                 n, (size_t)st.ms_entries);
        return -1;
    }
    *entries += n;
    return 0;
}

static int check_lmdb(const crash_run *r, char *note, size_t cap)
{
    MDB_env *env = NULL;
    MDB_txn *txn = NULL;
    MDB_cursor *cur = NULL;
    MDB_dbi main_dbi;
    MDB_stat st;
    MDB_envinfo info;
    MDB_val k, v;
    struct stat sb;
    int dead = 0, n_dbs = 0, rc, bad = 0;
    size_t entries = 0;
    if (stat(r->store, &sb) != 0) {
        snprintf(note, cap, "no environment yet");
        return r->n_acked == 0 ? 0 : -1;
    }
    const unsigned flags = S_ISDIR(sb.st_mode) ? MDB_RDONLY : MDB_RDONLY | MDB_NOSUBDIR;
    if ((rc = mdb_env_create(&env)) != 0 || (rc = mdb_env_set_maxdbs(env, 1024)) != 0 ||
        (rc = mdb_env_open(env, r->store, flags, 0600)) != 0) {
        snprintf(note, cap, "mdb_env_open %s: %s", r->store, mdb_strerror(rc));
        goto fail;
    }
    /* The killed writer's reader slot, if it held one, is stale now. */
    if ((rc = mdb_reader_check(env, &dead)) != 0 || (rc = mdb_env_stat(env, &st)) != 0 ||
        (rc = mdb_env_info(env, &info)) != 0 ||
        (rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0 ||
        (rc = mdb_dbi_open(txn, NULL, 0, &main_dbi)) != 0 ||
        (rc = mdb_cursor_open(txn, main_dbi, &cur)) != 0) {
        snprintf(note, cap, "%s: %s", r->store, mdb_strerror(rc));
        goto fail;
    }
    /* The main database lists the named ones; walk each, then main. */
    while ((rc = mdb_cursor_get(cur, &k, &v, n_dbs ? MDB_NEXT : MDB_FIRST)) == 0) {
        char name[512];
        MDB_dbi dbi;
        n_dbs++;
        if (k.mv_size >= sizeof name || memchr(k.mv_data, '\0', k.mv_size) != NULL)
            continue; /* not a database name */
        memcpy(name, k.mv_data, k.mv_size);
        name[k.mv_size] = '\0';
        int orc = mdb_dbi_open(txn, name, 0, &dbi);
        if (orc == MDB_INCOMPATIBLE)
            continue; /* a plain key of the main database */
        if (orc != 0) {
            snprintf(note, cap, "opening database '%s': %s", name, mdb_strerror(orc));
            goto fail;
        }
        if (lmdb_walk(txn, dbi, name, &entries, note, cap) != 0)
            goto fail;
    }
    if (rc != MDB_NOTFOUND) {
        snprintf(note, cap, "listing databases: %s", mdb_strerror(rc));
        goto fail;
    }
    if (lmdb_walk(txn, main_dbi, "(main)", &entries, note, cap) != 0)
        goto fail;
    snprintf(note, cap, "%d stale reader%s cleared, map %s KiB, %d databases, %s entries, "
             "depth %u", dead, dead == 1 ? "" : "s", crash_thousands(info.me_mapsize / 1024),
             n_dbs, crash_thousands(entries), st.ms_depth);
    goto done;
fail:
    bad = -1;
done:
    if (cur)
        mdb_cursor_close(cur);
    if (txn)
        mdb_txn_abort(txn);
    if (env)
        mdb_env_close(env); /* before persistor opens it: one env per process */
    return bad;
}
#endif

/* Every acknowledged hash through the public API; stats at least as many. */
static int check_api(const crash_run *r, uint64_t *stored, char *note, size_t cap)
{
    persistor_open_options opts = {.struct_size = sizeof opts,
                                   .config_path = r->config,
                                   .profile = "crash"};
    persistor_error err = {0};
    persistor *p = NULL;
    persistor_stats st;
    size_t lost = 0;
    int32_t rc = persistor_open(&opts, &p, &err);
    if (rc != PERSISTOR_OK) {
        snprintf(note, cap, "persistor_open: %s: %s", persistor_rc_name(rc), err.message);
        return -1;
    }
    for (size_t i = 0; i < r->n_acked; i++) {
        rc = persistor_snapshot_has(p, r->acked[i], &err);
        if (rc == PERSISTOR_OK)
            continue;
        if (lost++ < CRASH_SHOW_LOST)
            fprintf(stderr, "  LOST acknowledged snapshot %s (%s%s%s)\n", r->acked[i],
                    persistor_rc_name(rc), rc < 0 ? ": " : "", rc < 0 ? err.message : "");
    }
    rc = persistor_stats_get(p, &st, &err);
    persistor_close(p);
    if (rc != PERSISTOR_OK) {
        snprintf(note, cap, "persistor_stats_get: %s: %s", persistor_rc_name(rc), err.message);
        return -1;
    }
    *stored = st.item_count;
    if (lost > 0) {
        snprintf(note, cap, "%zu of %zu acknowledged snapshots lost", lost, r->n_acked);
        return -1;
    }
    if (st.item_count < r->n_acked) {
        snprintf(note, cap, "stats.item_count %" PRIu64 " < %zu acknowledged", st.item_count,
                 r->n_acked);
        return -1;
    }
    return 0;
}

static int check_store(const crash_run *r, char *note, size_t cap)
{
#ifdef PERSISTOR_CRASH_SQLITE
    if (strcmp(r->adapter, "sqlite") == 0)
        return check_sqlite(r, note, cap);
#endif
#ifdef PERSISTOR_CRASH_LMDB
    if (strcmp(r->adapter, "lmdb") == 0)
        return check_lmdb(r, note, cap);
#endif
    snprintf(note, cap, "this build has no direct check for %s", r->adapter);
    return -1;
}

/* ---- one round -------------------------------------------------------- */

/* Fork a writer, kill it after a random delay, keep what it acknowledged.
 * Returns 0 when it died of our SIGKILL. */
static int crash_round(crash_run *r, unsigned round, int64_t *delay_ms, size_t *new_acks)
{
    int fds[2];
    size_t before = r->n_acked;
    if (pipe(fds) != 0) {
        perror("crash_test: pipe");
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    if (pid < 0) {
        perror("crash_test: fork");
        return -1;
    }
    if (pid == 0) {
        close(fds[0]);
        writer_main(r, round, fds[1]);
    }
    close(fds[1]);
    crash_reader rd = {.fd = fds[0]};
    *delay_ms = 1 + (int64_t)(crash_rand(&r->rng) % CRASH_MAX_DELAY_MS);
    int eof = crash_read_until(r, &rd, crash_now_ms() + *delay_ms);
    kill(pid, SIGKILL);
    if (eof == 0) /* drain what it wrote before dying, up to EOF */
        eof = crash_read_until(r, &rd, crash_now_ms() + CRASH_WAIT_MS);
    close(fds[0]);
    int status = 0;
    int reaped = crash_reap(pid, &status);
    *new_acks = r->n_acked - before;
    if (eof != 1)
        fprintf(stderr, "crash_test: round %u: the writer's pipe %s\n", round,
                eof == 0 ? "never reached EOF" : "failed");
    if (rd.malformed > 0)
        fprintf(stderr, "crash_test: round %u: %zu malformed acknowledgement lines\n", round,
                rd.malformed);
    if (reaped != 0)
        return -1;
    if (!WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL) {
        fprintf(stderr, "crash_test: round %u: the writer ended by itself (%s %d) before the "
                "kill at %" PRId64 " ms; its message is above\n", round,
                WIFEXITED(status) ? "exit" : "signal",
                WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status), *delay_ms);
        return -1;
    }
    return eof == 1 && rd.malformed == 0 ? 0 : -1;
}

/* ---- set-up ------------------------------------------------------------ */

static int crash_usage(const char *why)
{
    fprintf(stderr,
            "persistor-crash-test: %s\n"
            "usage: persistor-crash-test --adapter sqlite|lmdb --plugin-dir DIR [--kills N]\n"
            "environment: PERSISTOR_CRASH_KILLS=N (overrides --kills, default %d),\n"
            "             PERSISTOR_CRASH_SEED=S (replay the delays of an earlier run)\n",
            why, CRASH_DEFAULT_KILLS);
    return 2;
}

static int crash_parse_uint(const char *text, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v > max)
        return -1;
    *out = v;
    return 0;
}

static int crash_args(crash_run *r, int argc, char **argv)
{
    uint64_t v;
    r->kills = CRASH_DEFAULT_KILLS;
    for (int i = 1; i < argc; i += 2) { /* every option takes one value */
        const char *a = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0)
            return crash_usage("help");
        if (val == NULL)
            return crash_usage("every option takes a value");
        if (strcmp(a, "--adapter") == 0)
            r->adapter = val;
        else if (strcmp(a, "--plugin-dir") == 0)
            r->plugin_dir = val;
        else if (strcmp(a, "--kills") == 0 && crash_parse_uint(val, 1000000, &v) == 0 && v > 0)
            r->kills = (unsigned)v;
        else
            return crash_usage("bad option or value");
    }
    const char *env = getenv("PERSISTOR_CRASH_KILLS");
    if (env != NULL && *env != '\0') {
        if (crash_parse_uint(env, 1000000, &v) != 0 || v == 0)
            return crash_usage("PERSISTOR_CRASH_KILLS must be a positive integer");
        r->kills = (unsigned)v;
    }
    env = getenv("PERSISTOR_CRASH_SEED");
    if (env != NULL && *env != '\0') {
        if (crash_parse_uint(env, UINT64_MAX, &r->seed) != 0)
            return crash_usage("PERSISTOR_CRASH_SEED must be an unsigned integer");
    } else {
        struct timespec t;
        clock_gettime(CLOCK_REALTIME, &t);
        r->seed = ((uint64_t)t.tv_sec * 1000000007u) ^ (uint64_t)t.tv_nsec ^
                  ((uint64_t)getpid() << 32);
        r->seed %= UINT64_C(1000000000000); /* short enough to type back */
    }
    r->rng = r->seed;
    if (r->adapter == NULL || r->plugin_dir == NULL)
        return crash_usage("--adapter and --plugin-dir are required");
    if (strcmp(r->adapter, "sqlite") != 0 && strcmp(r->adapter, "lmdb") != 0)
        return crash_usage("--adapter must be sqlite or lmdb");
    return 0;
}

/* The profile: the one adapter, its store in our directory.  The store
 * option is `file` (sqlite) or `directory` (lmdb), as in conf/profiles.yaml:
 * an entry's `path:` names the adapter's .so.  LMDB starts with a 1 MiB map
 * so that it has to grow while writers are being killed. */
static int crash_write_profile(crash_run *r)
{
    const int lmdb = strcmp(r->adapter, "lmdb") == 0;
    snprintf(r->config, sizeof r->config, "%s/profiles.yaml", r->dir);
    snprintf(r->store, sizeof r->store, "%s/crash.%s", r->dir, lmdb ? "lmdb" : "sqlite");
    FILE *out = fopen(r->config, "w");
    if (out == NULL)
        return -1;
    fprintf(out,
            "version: 1\n"
            "profiles:\n"
            "  crash:\n"
            "    description: \"persistor-crash-test\"\n"
            "    plugin_dir: \"%s\"\n"
            "    adapters:\n"
            "      - type: %s\n"
            "        %s: \"%s\"\n"
            "        %s\n"
            "    collections:\n"
            "      snapshots:\n"
            "        ttl_seconds: 0\n",
            r->plugin_dir, r->adapter, lmdb ? "directory" : "file", r->store,
            lmdb ? "map_size: 1048576" : "synchronous: full");
    return fclose(out) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    crash_run r = {0};
    int rc = crash_args(&r, argc, argv);
    if (rc != 0)
        return rc;
    const char *tmp = getenv("TMPDIR");
    snprintf(r.dir, sizeof r.dir, "%s/persistor-crash-XXXXXX", tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(r.dir) == NULL || crash_write_profile(&r) != 0) {
        fprintf(stderr, "crash_test: setting up %s: %s\n", r.dir, strerror(errno));
        return 1;
    }
    setenv("PERSISTOR_LOG_LEVEL", "error", 0);
    signal(SIGPIPE, SIG_IGN);
    printf("crash_test %s: %u kills, seed %" PRIu64 " (PERSISTOR_CRASH_SEED=%" PRIu64
           " replays the delays), store %s\n",
           r.adapter, r.kills, r.seed, r.seed, r.store);

    int64_t t0 = crash_now_ms();
    unsigned kills = 0;
    uint64_t stored = 0;
    int failed = 0;
    for (unsigned round = 1; round <= r.kills && !failed; round++) {
        int64_t delay = 0;
        size_t fresh = 0;
        char store_note[512] = "", api_note[512] = "";
        if (crash_round(&r, round, &delay, &fresh) != 0) {
            failed = 1;
            break;
        }
        kills++;
        int64_t c0 = crash_now_ms();
        int store_bad = check_store(&r, store_note, sizeof store_note);
        int api_bad = store_bad ? 0 : check_api(&r, &stored, api_note, sizeof api_note);
        printf("round %2u: killed after %3" PRId64 " ms, +%-5zu acknowledged %s so far, "
               "stored %s; %s; checked in %" PRId64 " ms\n",
               round, delay, fresh, crash_thousands(r.n_acked), crash_thousands(stored),
               store_note, crash_now_ms() - c0);
        if (store_bad || api_bad) {
            fprintf(stderr, "crash_test: round %u: %s\n", round,
                    store_bad ? store_note : api_note);
            failed = 1;
        }
    }
    int64_t elapsed = crash_now_ms() - t0;
    if (failed) {
        printf("crash_test %s: FAILED after %u kills, %s acknowledged, seed %" PRIu64
               ", store kept in %s (%" PRId64 " ms)\n",
               r.adapter, kills, crash_thousands(r.n_acked), r.seed, r.dir, elapsed);
    } else {
        printf("crash_test %s: %u kills, %s acknowledged, 0 lost, integrity ok "
               "(%s stored, %" PRId64 " ms)\n",
               r.adapter, kills, crash_thousands(r.n_acked), crash_thousands(stored),
               elapsed);
        nftw(r.dir, crash_rm, 16, FTW_DEPTH | FTW_PHYS);
    }
    free(r.acked);
    return failed ? 1 : 0;
}
