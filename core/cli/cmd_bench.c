/*
 * cmd_bench.c — `persistor bench`: the snapshot workload through persistor
 * and, as a baseline, straight against SQLite and LMDB (bench_direct.c).
 *
 * One run: a deterministic workload from --seed (about 1 KiB of kernel
 * state per snapshot), a profiles file of its own in a temporary directory
 * with one profile per adapter, then for each adapter and each repeat a
 * fresh store per side, persistor and direct alternately, four timed
 * phases: appends one at a time, appends in batches of 1,000, `has` by
 * hash, `load` of every context.  It reports the median of the repeats and
 * the ratio persistor/direct.
 *
 * The persistor side uses the public API only, as an application would.
 * This file must not decide what is fast; it measures, checks that both
 * sides stored and read back what they should (a benchmark that loses data
 * is not measuring anything), and says where persistor falls short.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <bson/bson.h>

#include "bench_direct.h"
#include "cli.h"

#define BENCH_BATCH 1000
#define BENCH_MAX_ADAPTERS 8
#define BENCH_MAX_REPEAT 99
#define BENCH_TARGET 0.9
#define BENCH_TENANT "bench"
#define BENCH_TS_BASE INT64_C(1700000000000) /* 2023-11-14: a plausible kernel clock */
/* LMDB map: the workload needs tens of MB; 1 GiB (sparse) means the map
 * never grows during a run on either side. */
#define BENCH_LMDB_MAP_SIZE (UINT64_C(1) << 30)

enum { BENCH_APPEND_1, BENCH_APPEND_BATCH, BENCH_HAS, BENCH_LOAD, BENCH_PHASES };

static const char *const bench_phase_keys[BENCH_PHASES] = {"append_1", "append_1000", "has",
                                                           "load"};
static const char *const bench_phase_names[BENCH_PHASES] = {"append x1", "append x1000", "has",
                                                            "load"};

typedef struct bench_opts {
    const char *adapters[BENCH_MAX_ADAPTERS];
    size_t n_adapters;
    bool adapters_given; /* a missing plugin is an error, not a skip */
    char adapter_text[256];
    uint32_t contexts, per_context, single, repeat, absent_pct;
    uint64_t seed;
    const char *dir;
    bool json;
} bench_opts;

/* The workload: inputs borrowed from `contents`, built before any timing. */
typedef struct bench_work {
    size_t n, n_single, n_has;
    persistor_snapshot_input *batch, *single;
    bson_t **contents; /* n + n_single, batch first */
    char (*xc_ids)[32];  /* contexts, then the single set's contexts */
    char (*hashes)[PERSISTOR_HASH_HEX_LEN + 1];        /* expected ids, batch */
    char (*single_hashes)[PERSISTOR_HASH_HEX_LEN + 1]; /* expected ids, single */
    char (*absent)[PERSISTOR_HASH_HEX_LEN + 1];        /* ids nobody stored */
    const char **has_ids;
    bool *has_expect;
    uint32_t *load_order;
    uint32_t contexts, per_context, single_contexts;
    double doc_bytes; /* average stored document */
} bench_work;

/* Scratch shared by both sides: the answers of the last run. */
typedef struct bench_scratch {
    char (*ids)[PERSISTOR_HASH_HEX_LEN + 1];
    int32_t *results;
} bench_scratch;

typedef struct bench_adapter {
    const char *name;
    bool ran, direct;
    char skipped[320]; /* why it did not run, or "" */
    double persistor_s[BENCH_PHASES][BENCH_MAX_REPEAT];
    double direct_s[BENCH_PHASES][BENCH_MAX_REPEAT];
} bench_adapter;

typedef struct bench {
    bench_opts opt;
    bench_work w;
    bench_scratch scratch;
    char dir[4096];      /* the stores and the profiles file */
    bool made_dir;       /* ours to remove */
    char config[4200];   /* the profiles file */
    char msg[1024];      /* the last failure, for a person */
    bool progress;
} bench;

/* ------------------------------------------------------------------ */
/* Small helpers                                                      */

static uint64_t bench_rand(uint64_t *state)
{
    /* splitmix64: tiny, seedable with any value, good enough for test data */
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

static uint32_t bench_below(uint64_t *state, uint32_t n)
{
    return (uint32_t)(bench_rand(state) % n);
}

static double bench_now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* 12,345,678 */
static const char *bench_group(uint64_t v, char buf[32])
{
    char digits[24];
    int n = snprintf(digits, sizeof digits, "%" PRIu64, v), o = 0;
    for (int i = 0; i < n; i++) {
        if (i > 0 && (n - i) % 3 == 0)
            buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
    return buf;
}

static bool bench_parse_u32(const char *text, uint32_t min, uint32_t max, uint32_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || text[0] == '-' || v < min || v > max)
        return false;
    *out = (uint32_t)v;
    return true;
}

static int bench_failf(bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int bench_failf(bench *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->msg, sizeof b->msg, fmt, ap);
    va_end(ap);
    return -1;
}

/* Remove a store: files and directories below `path`, then `path`. */
static void bench_remove_tree(const char *path)
{
    struct stat st;
    if (lstat(path, &st) != 0)
        return;
    if (S_ISDIR(st.st_mode)) {
        DIR *d = opendir(path);
        struct dirent *e;
        while (d != NULL && (e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char child[4400];
            snprintf(child, sizeof child, "%s/%s", path, e->d_name);
            bench_remove_tree(child);
        }
        if (d != NULL)
            closedir(d);
        rmdir(path);
    } else {
        unlink(path);
    }
}

/* ------------------------------------------------------------------ */
/* Options                                                            */

static const char bench_usage_text[] =
    "bench [--adapters memory,sqlite,lmdb] [--contexts 1000] [--per-context 10]\n"
    "      [--single 1000] [--repeat 3] [--absent PCT] [--dir DIR] [--seed S] [--json]";

static int bench_split_adapters(bench_opts *o, const char *text)
{
    snprintf(o->adapter_text, sizeof o->adapter_text, "%s", text);
    o->n_adapters = 0;
    for (char *save = NULL, *tok = strtok_r(o->adapter_text, ",", &save); tok != NULL;
         tok = strtok_r(NULL, ",", &save)) {
        if (o->n_adapters == BENCH_MAX_ADAPTERS)
            return cli_usage("bench: at most %d adapters", BENCH_MAX_ADAPTERS);
        for (const char *c = tok; *c != '\0'; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_' ||
                  *c == '-'))
                return cli_usage("bench: '%s' is not an adapter name", tok);
        o->adapters[o->n_adapters++] = tok;
    }
    if (o->n_adapters == 0)
        return cli_usage("bench: --adapters needs at least one name");
    return CLI_EXIT_OK;
}

static int bench_number(const char *name, const char *text, uint32_t min, uint32_t max,
                        uint32_t *out)
{
    if (!bench_parse_u32(text, min, max, out))
        return cli_usage("bench: %s expects a whole number from %u to %u, got '%s'", name, min,
                         max, text);
    return CLI_EXIT_OK;
}

static int bench_parse(int argc, char **argv, bench_opts *o)
{
    const char *adapters = "memory,sqlite,lmdb", *contexts = NULL, *per = NULL, *single = NULL,
               *repeat = NULL, *seed = NULL, *absent = NULL;
    *o = (bench_opts){.contexts = 1000, .per_context = 10, .single = 1000, .repeat = 3, .seed = 1};
    for (int i = 1; i < argc;) {
        int took;
        if (strcmp(argv[i], "--json") == 0) {
            o->json = true;
            i++;
            continue;
        }
        if ((took = cli_take_value(argc, argv, &i, "--adapters", &adapters)) > 0)
            o->adapters_given = true;
        if (took != 0 ||
            (took = cli_take_value(argc, argv, &i, "--contexts", &contexts)) != 0 ||
            (took = cli_take_value(argc, argv, &i, "--per-context", &per)) != 0 ||
            (took = cli_take_value(argc, argv, &i, "--single", &single)) != 0 ||
            (took = cli_take_value(argc, argv, &i, "--repeat", &repeat)) != 0 ||
            (took = cli_take_value(argc, argv, &i, "--absent", &absent)) != 0 ||
            (took = cli_take_value(argc, argv, &i, "--seed", &seed)) != 0 ||
            (took = cli_take_value(argc, argv, &i, "--dir", &o->dir)) != 0) {
            if (took < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        return cli_usage("bench: unexpected argument '%s'\nusage: persistor %s", argv[i],
                         bench_usage_text);
    }
    int code = bench_split_adapters(o, adapters);
    if (code == CLI_EXIT_OK && contexts != NULL)
        code = bench_number("--contexts", contexts, 1, 1000000, &o->contexts);
    if (code == CLI_EXIT_OK && per != NULL)
        code = bench_number("--per-context", per, 1, 100000, &o->per_context);
    if (code == CLI_EXIT_OK && single != NULL)
        code = bench_number("--single", single, 1, 1000000, &o->single);
    if (code == CLI_EXIT_OK && repeat != NULL)
        code = bench_number("--repeat", repeat, 1, BENCH_MAX_REPEAT, &o->repeat);
    if (code == CLI_EXIT_OK && absent != NULL)
        code = bench_number("--absent", absent, 0, 100, &o->absent_pct);
    if (code == CLI_EXIT_OK && seed != NULL) {
        char *end;
        errno = 0;
        o->seed = strtoull(seed, &end, 10);
        if (errno != 0 || end == seed || *end != '\0' || seed[0] == '-')
            code = cli_usage("bench: --seed expects a whole number, got '%s'", seed);
    }
    if (code == CLI_EXIT_OK && (uint64_t)o->contexts * o->per_context > 10000000)
        code = cli_usage("bench: --contexts x --per-context is at most 10,000,000");
    return code;
}

/* ------------------------------------------------------------------ */
/* The workload                                                       */

static const char *const bench_words[] = {
    "plan",    "tool",     "search",  "result",  "answer",   "retry",   "context", "budget",
    "summary", "draft",    "review",  "test",    "patch",    "branch",  "ticket",  "deploy",
    "user",    "question", "source",  "quote",   "table",    "row",     "metric",  "latency",
    "error",   "timeout",  "cache",   "vector",  "embed",    "chunk",   "prompt",  "reply",
    "agent",   "worker",   "queue",   "lease",   "step",     "goal",    "memory",  "note",
    "fact",    "claim",    "check",   "verify",  "score",    "rank",    "filter",  "merge",
    "the",     "a",        "of",      "for",     "with",     "after",   "before",  "then",
    "order",   "invoice",  "refund",  "account", "customer", "report",  "weekly",  "draft2",
};
#define BENCH_N_WORDS (sizeof bench_words / sizeof bench_words[0])

/* BSON_APPEND_UTF8 evaluates its value twice: with a random value that
 * would pair one string's length with another's bytes. */
static void bench_utf8(bson_t *doc, const char *key, const char *value)
{
    bson_append_utf8(doc, key, -1, value, -1);
}

/* `min`..`max` random words, space-separated, into `buf`. */
static const char *bench_text(uint64_t *rng, uint32_t min, uint32_t max, char *buf, size_t cap)
{
    uint32_t n = min + bench_below(rng, max - min + 1);
    size_t len = 0;
    buf[0] = '\0';
    for (uint32_t i = 0; i < n && len + 16 < cap; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s%s", i ? " " : "",
                                bench_words[bench_below(rng, BENCH_N_WORDS)]);
    return buf;
}

static void bench_state(bson_t *doc, uint64_t *rng, uint32_t ctx, uint32_t step, uint32_t steps)
{
    static const char *const agents[] = {"planner", "researcher", "coder", "reviewer",
                                         "support", "analyst", "scheduler"};
    bson_t state, plan, memory, facts, fact, vars;
    char text[512], key[16];
    BSON_APPEND_DOCUMENT_BEGIN(doc, "state", &state);
    bench_utf8(&state, "agent", agents[ctx % (sizeof agents / sizeof agents[0])]);
    bench_utf8(&state, "goal", bench_text(rng, 4, 7, text, sizeof text));
    BSON_APPEND_INT32(&state, "step", (int32_t)step);
    BSON_APPEND_INT32(&state, "of", (int32_t)steps);
    BSON_APPEND_ARRAY_BEGIN(&state, "plan", &plan);
    for (uint32_t i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "%u", i);
        bench_utf8(&plan, key, bench_text(rng, 2, 4, text, sizeof text));
    }
    bson_append_array_end(&state, &plan);
    BSON_APPEND_DOCUMENT_BEGIN(&state, "memory", &memory);
    bench_utf8(&memory, "notes", bench_text(rng, 4, 10, text, sizeof text));
    BSON_APPEND_ARRAY_BEGIN(&memory, "facts", &facts);
    for (uint32_t i = 0; i < 2; i++) {
        snprintf(key, sizeof key, "%u", i);
        BSON_APPEND_DOCUMENT_BEGIN(&facts, key, &fact);
        bench_utf8(&fact, "key", bench_words[bench_below(rng, BENCH_N_WORDS)]);
        bench_utf8(&fact, "value", bench_text(rng, 2, 4, text, sizeof text));
        BSON_APPEND_DOUBLE(&fact, "confidence", (double)bench_below(rng, 1000) / 1000.0);
        bson_append_document_end(&facts, &fact);
    }
    bson_append_array_end(&memory, &facts);
    bson_append_document_end(&state, &memory);
    BSON_APPEND_DOCUMENT_BEGIN(&state, "vars", &vars);
    BSON_APPEND_DOUBLE(&vars, "temperature", (double)bench_below(rng, 100) / 100.0);
    BSON_APPEND_INT32(&vars, "retries", (int32_t)bench_below(rng, 4));
    BSON_APPEND_BOOL(&vars, "done", step == steps);
    BSON_APPEND_INT64(&vars, "cursor", (int64_t)bench_rand(rng) >> 16);
    bson_append_document_end(&state, &vars);
    bson_append_document_end(doc, &state);
}

static void bench_events(bson_t *doc, uint64_t *rng, uint32_t step, int64_t ts)
{
    static const char *const types[] = {"tool_call", "tool_result", "llm_response",
                                        "step_completed"};
    bson_t events, ev;
    char text[256], key[16];
    BSON_APPEND_ARRAY_BEGIN(doc, "events", &events);
    for (uint32_t i = 0; i < 3; i++) {
        snprintf(key, sizeof key, "%u", i);
        BSON_APPEND_DOCUMENT_BEGIN(&events, key, &ev);
        bench_utf8(&ev, "type", types[bench_below(rng, 4)]);
        BSON_APPEND_DATE_TIME(&ev, "at", ts - 30 + (int64_t)i * 10);
        BSON_APPEND_INT32(&ev, "step", (int32_t)step);
        bench_utf8(&ev, "detail", bench_text(rng, 2, 4, text, sizeof text));
        bson_append_document_end(&events, &ev);
    }
    bson_append_array_end(doc, &events);
}

static void bench_metadata(bson_t *doc, uint64_t *rng)
{
    bson_t meta, tags;
    BSON_APPEND_DOCUMENT_BEGIN(doc, "metadata", &meta);
    bench_utf8(&meta, "kernel", "persistor-bench");
    BSON_APPEND_INT32(&meta, "version", 1);
    bench_utf8(&meta, "model", bench_below(rng, 2) ? "model-large" : "model-small");
    BSON_APPEND_INT32(&meta, "tokens", (int32_t)(500 + bench_below(rng, 8000)));
    BSON_APPEND_DOUBLE(&meta, "costUsd", (double)bench_below(rng, 10000) / 100000.0);
    BSON_APPEND_ARRAY_BEGIN(&meta, "tags", &tags);
    bench_utf8(&tags, "0", bench_words[bench_below(rng, BENCH_N_WORDS)]);
    bench_utf8(&tags, "1", bench_words[bench_below(rng, BENCH_N_WORDS)]);
    bson_append_array_end(&meta, &tags);
    bson_append_document_end(doc, &meta);
}

/* One snapshot's content: what a kernel would checkpoint after `step`. */
static bson_t *bench_content(uint64_t *rng, uint32_t ctx, uint32_t step, uint32_t steps,
                             int64_t ts)
{
    bson_t *doc = bson_new();
    if (doc == NULL)
        return NULL;
    bench_state(doc, rng, ctx, step, steps);
    bench_events(doc, rng, step, ts);
    bench_metadata(doc, rng);
    return doc;
}

/* The size of the document persistor stores for `in` (content + its fields). */
static uint32_t bench_doc_size(const persistor_snapshot_input *in)
{
    bson_t doc = BSON_INITIALIZER, content;
    char id[PERSISTOR_HASH_HEX_LEN + 1];
    memset(id, 'a', PERSISTOR_HASH_HEX_LEN);
    id[PERSISTOR_HASH_HEX_LEN] = '\0';
    BSON_APPEND_UTF8(&doc, "_id", id);
    BSON_APPEND_UTF8(&doc, "tenantId", in->tenant_id);
    BSON_APPEND_UTF8(&doc, "xcId", in->xc_id);
    BSON_APPEND_DATE_TIME(&doc, "ts", in->ts_ms);
    BSON_APPEND_DATE_TIME(&doc, "createdAt", in->ts_ms);
    if (bson_init_static(&content, in->content_bson, in->content_bson_len))
        bson_concat(&doc, &content);
    uint32_t len = doc.len;
    bson_destroy(&doc);
    return len;
}

/* Snapshot `k` of context `c`, in contents[slot]; false when out of memory. */
static bool bench_make(bench_work *w, uint64_t *rng, size_t slot, uint32_t c, uint32_t k,
                       persistor_snapshot_input *in)
{
    /* Steps a minute apart; contexts started a few ms apart. */
    int64_t ts = BENCH_TS_BASE + (int64_t)k * 60000 + (int64_t)(c % 1000);
    if ((w->contents[slot] = bench_content(rng, c, k + 1, w->per_context, ts)) == NULL)
        return false;
    *in = (persistor_snapshot_input){.struct_size = sizeof *in,
                                     .tenant_id = BENCH_TENANT,
                                     .xc_id = w->xc_ids[c],
                                     .ts_ms = ts,
                                     .content_bson = bson_get_data(w->contents[slot]),
                                     .content_bson_len = w->contents[slot]->len};
    return true;
}

static void bench_work_free(bench_work *w)
{
    for (size_t i = 0; w->contents != NULL && i < w->n + w->n_single; i++)
        bson_destroy(w->contents[i]);
    free(w->contents);
    free(w->batch);
    free(w->single);
    free(w->xc_ids);
    free(w->hashes);
    free(w->single_hashes);
    free(w->absent);
    free(w->has_ids);
    free(w->has_expect);
    free(w->load_order);
    memset(w, 0, sizeof *w);
}

static bool bench_work_alloc(bench_work *w, uint32_t single_contexts)
{
    size_t all_contexts = (size_t)w->contexts + single_contexts;
    w->contents = calloc(w->n + w->n_single, sizeof *w->contents);
    w->batch = calloc(w->n, sizeof *w->batch);
    w->single = calloc(w->n_single, sizeof *w->single);
    w->xc_ids = calloc(all_contexts, sizeof *w->xc_ids);
    w->hashes = calloc(w->n, sizeof *w->hashes);
    w->single_hashes = calloc(w->n_single, sizeof *w->single_hashes);
    w->absent = calloc(w->n_has, sizeof *w->absent);
    w->has_ids = calloc(w->n_has, sizeof *w->has_ids);
    w->has_expect = calloc(w->n_has, sizeof *w->has_expect);
    w->load_order = calloc(w->contexts, sizeof *w->load_order);
    return w->contents != NULL && w->batch != NULL && w->single != NULL && w->xc_ids != NULL &&
           w->hashes != NULL && w->single_hashes != NULL && w->absent != NULL &&
           w->has_ids != NULL && w->has_expect != NULL && w->load_order != NULL;
}

/* The `has` queries: random stored ids, and absent_pct% ids never stored. */
static void bench_make_has(bench_work *w, uint64_t *rng, uint32_t absent_pct)
{
    for (size_t q = 0; q < w->n_has; q++) {
        if (bench_below(rng, 100) < absent_pct) {
            for (int i = 0; i < PERSISTOR_HASH_HEX_LEN; i++)
                w->absent[q][i] = "0123456789abcdef"[bench_below(rng, 16)];
            w->absent[q][PERSISTOR_HASH_HEX_LEN] = '\0';
            w->has_ids[q] = w->absent[q];
            w->has_expect[q] = false;
        } else {
            w->has_ids[q] = w->hashes[bench_below(rng, (uint32_t)w->n)];
            w->has_expect[q] = true;
        }
    }
}

/*
 * Batched snapshots go in step order across contexts (the k-th snapshot of
 * every context, then the k+1-th), as many kernels running at once would
 * write them; the single set lives in contexts of its own.
 */
static int bench_work_build(bench *b)
{
    bench_work *w = &b->w;
    const bench_opts *o = &b->opt;
    uint64_t rng = o->seed;
    w->contexts = o->contexts;
    w->per_context = o->per_context;
    w->n = (size_t)o->contexts * o->per_context;
    w->n_single = o->single;
    w->n_has = w->n;
    w->single_contexts = (o->single + o->per_context - 1) / o->per_context;
    if (!bench_work_alloc(w, w->single_contexts))
        return bench_failf(b, "out of memory building the workload");
    for (uint32_t c = 0; c < o->contexts + w->single_contexts; c++)
        snprintf(w->xc_ids[c], sizeof w->xc_ids[c], "%s-%06u",
                 c < o->contexts ? "bench-xc" : "bench-single", c);
    double bytes = 0;
    for (uint32_t k = 0; k < o->per_context; k++)
        for (uint32_t c = 0; c < o->contexts; c++) {
            size_t i = (size_t)k * o->contexts + c;
            if (!bench_make(w, &rng, i, c, k, &w->batch[i]))
                return bench_failf(b, "out of memory building the workload");
            bench_direct_hash(&w->batch[i], w->hashes[i]);
            bytes += bench_doc_size(&w->batch[i]);
        }
    for (size_t j = 0; j < w->n_single; j++) {
        uint32_t c = o->contexts + (uint32_t)(j / o->per_context);
        if (!bench_make(w, &rng, w->n + j, c, (uint32_t)(j % o->per_context), &w->single[j]))
            return bench_failf(b, "out of memory building the workload");
        bench_direct_hash(&w->single[j], w->single_hashes[j]);
    }
    w->doc_bytes = bytes / (double)w->n;
    bench_make_has(w, &rng, o->absent_pct);
    for (uint32_t c = 0; c < o->contexts; c++)
        w->load_order[c] = c;
    for (uint32_t c = o->contexts; c > 1; c--) { /* Fisher-Yates */
        uint32_t j = bench_below(&rng, c), t = w->load_order[c - 1];
        w->load_order[c - 1] = w->load_order[j];
        w->load_order[j] = t;
    }
    b->scratch.ids = calloc(w->n > w->n_single ? w->n : w->n_single, sizeof *b->scratch.ids);
    b->scratch.results = calloc(BENCH_BATCH, sizeof *b->scratch.results);
    if (b->scratch.ids == NULL || b->scratch.results == NULL)
        return bench_failf(b, "out of memory building the workload");
    return 0;
}

/* ------------------------------------------------------------------ */
/* Stores and the profiles file                                       */

static bool bench_known_durable(const char *adapter)
{
    return strcmp(adapter, "sqlite") == 0 || strcmp(adapter, "lmdb") == 0;
}

/* Where one side keeps its store: a directory of its own under b->dir. */
static void bench_store_dir(const bench *b, const char *adapter, bool direct, char *out,
                            size_t cap)
{
    snprintf(out, cap, "%s/%s%s", b->dir, adapter, direct ? "-direct" : "");
}

/* The path handed to the adapter (or the baseline) for that store. */
static void bench_store_path(const bench *b, const char *adapter, bool direct, char *out,
                             size_t cap)
{
    char dir[4200];
    bench_store_dir(b, adapter, direct, dir, sizeof dir);
    if (strcmp(adapter, "lmdb") == 0)
        snprintf(out, cap, "%s", dir); /* an environment is a directory */
    else
        snprintf(out, cap, "%s/%s.db", dir, direct ? "direct" : "persistor");
}

/* A fresh, empty store directory. */
static int bench_fresh_store(bench *b, const char *adapter, bool direct)
{
    char dir[4200];
    bench_store_dir(b, adapter, direct, dir, sizeof dir);
    bench_remove_tree(dir);
    if (mkdir(dir, 0700) != 0)
        return bench_failf(b, "%s: %s", dir, strerror(errno));
    return 0;
}

/* A YAML double-quoted scalar that survives ${VAR} interpolation. */
static void bench_yaml_quoted(FILE *f, const char *s)
{
    fputc('"', f);
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            fputc('\\', f);
        if (*s == '$')
            fputc('$', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

static void bench_profile(FILE *f, const bench *b, const char *adapter)
{
    char path[4400];
    fprintf(f, "  bench-%s:\n    description: \"persistor bench: %s\"\n    adapters:\n"
               "      - type: %s\n",
            adapter, adapter, adapter);
    bench_store_path(b, adapter, false, path, sizeof path);
    if (strcmp(adapter, "memory") == 0) {
        fputs("        max_items: 0\n", f); /* never evict during the run */
    } else if (strcmp(adapter, "sqlite") == 0) {
        /* The option names of conf/profiles.yaml: an adapter entry's
         * `path:` is the plugin file (core/profile.c), never the store. */
        fputs("        file: ", f);
        bench_yaml_quoted(f, path);
        fputs("\n        synchronous: full\n", f);
    } else if (strcmp(adapter, "lmdb") == 0) {
        fputs("        directory: ", f);
        bench_yaml_quoted(f, path);
        fprintf(f, "\n        map_size: %" PRIu64 "\n        max_map_size: %" PRIu64
                   "\n        sync: true\n",
                BENCH_LMDB_MAP_SIZE, BENCH_LMDB_MAP_SIZE);
    }
    /* Fail closed, no TTL: every append must land, nothing expires. */
    fputs("    collections:\n      snapshots:\n        on_failure: fail_closed\n", f);
}

static int bench_write_profiles(bench *b)
{
    snprintf(b->config, sizeof b->config, "%s/profiles.yaml", b->dir);
    FILE *f = fopen(b->config, "w");
    if (f == NULL)
        return bench_failf(b, "%s: %s", b->config, strerror(errno));
    fputs("# Written by `persistor bench`; removed when it ends.\nversion: 1\nprofiles:\n", f);
    for (size_t i = 0; i < b->opt.n_adapters; i++)
        bench_profile(f, b, b->opt.adapters[i]);
    if (fclose(f) != 0)
        return bench_failf(b, "%s: %s", b->config, strerror(errno));
    return 0;
}

static int bench_make_dir(bench *b)
{
    if (b->opt.dir != NULL) {
        snprintf(b->dir, sizeof b->dir, "%s", b->opt.dir);
        if (mkdir(b->dir, 0700) == 0)
            b->made_dir = true;
        else if (errno != EEXIST)
            return bench_failf(b, "--dir %s: %s", b->dir, strerror(errno));
        return 0;
    }
    const char *tmp = getenv("TMPDIR");
    snprintf(b->dir, sizeof b->dir, "%s/persistor-bench-XXXXXX",
             tmp != NULL && *tmp != '\0' ? tmp : "/tmp");
    if (mkdtemp(b->dir) == NULL)
        return bench_failf(b, "%s: %s", b->dir, strerror(errno));
    b->made_dir = true;
    return 0;
}

/* Remove what the bench wrote; a user's --dir itself stays. */
static void bench_cleanup_dir(bench *b)
{
    if (b->dir[0] == '\0')
        return;
    for (size_t i = 0; i < b->opt.n_adapters; i++) {
        char dir[4200];
        bench_store_dir(b, b->opt.adapters[i], false, dir, sizeof dir);
        bench_remove_tree(dir);
        bench_store_dir(b, b->opt.adapters[i], true, dir, sizeof dir);
        bench_remove_tree(dir);
    }
    if (b->config[0] != '\0')
        unlink(b->config);
    if (b->made_dir)
        rmdir(b->dir);
}

/* ------------------------------------------------------------------ */
/* The persistor side: the public API only                            */

static int bench_p_fail(bench *b, const char *adapter, const char *what, int32_t rc,
                        const persistor_error *err)
{
    return bench_failf(b, "%s: persistor %s: %s", adapter, what,
                       err->message[0] != '\0' ? err->message : persistor_rc_name(rc));
}

static int bench_p_single(bench *b, persistor *p, const char *adapter)
{
    const bench_work *w = &b->w;
    persistor_error err = {0};
    for (size_t i = 0; i < w->n_single; i++) {
        int32_t rc = persistor_snapshot_append(p, &w->single[i], b->scratch.ids[i], &err);
        if (rc != PERSISTOR_OK)
            return bench_p_fail(b, adapter, "append", rc, &err);
    }
    return 0;
}

static int bench_p_batch(bench *b, persistor *p, const char *adapter)
{
    const bench_work *w = &b->w;
    persistor_error err = {0};
    for (size_t off = 0; off < w->n; off += BENCH_BATCH) {
        size_t m = w->n - off < BENCH_BATCH ? w->n - off : BENCH_BATCH;
        int32_t rc = persistor_snapshot_append_many(p, &w->batch[off], m, &b->scratch.ids[off],
                                                    b->scratch.results, &err);
        if (rc != PERSISTOR_OK)
            return bench_p_fail(b, adapter, "append_many", rc, &err);
        for (size_t i = 0; i < m; i++)
            if (b->scratch.results[i] != PERSISTOR_OK)
                return bench_failf(b, "%s: persistor append_many: snapshot %zu answered %s on "
                                      "a fresh store",
                                   adapter, off + i, persistor_rc_name(b->scratch.results[i]));
    }
    return 0;
}

static int bench_p_has(bench *b, persistor *p, const char *adapter)
{
    const bench_work *w = &b->w;
    persistor_error err = {0};
    for (size_t q = 0; q < w->n_has; q++) {
        int32_t rc = persistor_snapshot_has(p, w->has_ids[q], &err);
        if (rc < 0)
            return bench_p_fail(b, adapter, "has", rc, &err);
        if ((rc == PERSISTOR_OK) != w->has_expect[q])
            return bench_failf(b, "%s: persistor has %s answered %s", adapter, w->has_ids[q],
                               persistor_rc_name(rc));
    }
    return 0;
}

static int bench_p_load(bench *b, persistor *p, const char *adapter)
{
    const bench_work *w = &b->w;
    persistor_error err = {0};
    for (uint32_t i = 0; i < w->contexts; i++) {
        const char *xc = w->xc_ids[w->load_order[i]];
        persistor_snapshot_iter *it;
        const persistor_snapshot *s;
        int32_t rc = persistor_snapshot_load(p, xc, &it, &err);
        if (rc != PERSISTOR_OK)
            return bench_p_fail(b, adapter, "load", rc, &err);
        size_t count = 0;
        int64_t last_ts = INT64_MIN;
        bool ordered = true;
        while ((rc = persistor_snapshot_iter_next(it, &s, &err)) == PERSISTOR_OK) {
            ordered = ordered && s->ts_ms >= last_ts && s->bson_len > 5;
            last_ts = s->ts_ms;
            count++;
        }
        persistor_snapshot_iter_free(it);
        if (rc != PERSISTOR_ITER_END)
            return bench_p_fail(b, adapter, "load", rc, &err);
        if (count != w->per_context || !ordered)
            return bench_failf(b, "%s: persistor load %s: %zu snapshots%s, expected %u in ts order",
                               adapter, xc, count, ordered ? "" : " out of order",
                               w->per_context);
    }
    return 0;
}

/* The ids a side reported must be the ones computed from the input. */
static int bench_check_ids(bench *b, const char *adapter, const char *side,
                           char (*expected)[PERSISTOR_HASH_HEX_LEN + 1], size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (memcmp(b->scratch.ids[i], expected[i], PERSISTOR_HASH_HEX_LEN + 1) != 0)
            return bench_failf(b, "%s: %s gave snapshot %zu the id %.16s..., expected %.16s...",
                               adapter, side, i, b->scratch.ids[i], expected[i]);
    return 0;
}

typedef int (*bench_p_phase)(bench *b, persistor *p, const char *adapter);

static int bench_run_persistor(bench *b, const char *adapter, double secs[BENCH_PHASES])
{
    static const bench_p_phase phases[BENCH_PHASES] = {bench_p_single, bench_p_batch,
                                                       bench_p_has, bench_p_load};
    char profile[96];
    persistor *p;
    persistor_error err = {0};
    if (bench_known_durable(adapter) && bench_fresh_store(b, adapter, false) != 0)
        return -1;
    snprintf(profile, sizeof profile, "bench-%s", adapter);
    persistor_open_options opts = {
        .struct_size = sizeof opts, .config_path = b->config, .profile = profile};
    int32_t rc = persistor_open(&opts, &p, &err);
    if (rc == PERSISTOR_E_CONFIG && bench_known_durable(adapter))
        return bench_failf(b, "%s: persistor open: %s (the bench names the store with `%s:`, "
                              "as conf/profiles.yaml does)",
                           adapter, err.message, strcmp(adapter, "lmdb") == 0 ? "directory" : "file");
    if (rc != PERSISTOR_OK)
        return bench_p_fail(b, adapter, "open", rc, &err);
    int result = 0;
    for (int ph = 0; ph < BENCH_PHASES && result == 0; ph++) {
        double t0 = bench_now_s();
        result = phases[ph](b, p, adapter);
        secs[ph] = bench_now_s() - t0;
        if (result == 0 && ph == BENCH_APPEND_1)
            result = bench_check_ids(b, adapter, "persistor", b->w.single_hashes, b->w.n_single);
        else if (result == 0 && ph == BENCH_APPEND_BATCH)
            result = bench_check_ids(b, adapter, "persistor", b->w.hashes, b->w.n);
    }
    persistor_close(p);
    if (bench_known_durable(adapter)) {
        char dir[4200];
        bench_store_dir(b, adapter, false, dir, sizeof dir);
        bench_remove_tree(dir);
    }
    return result;
}

/* ------------------------------------------------------------------ */
/* The direct side                                                    */

static int bench_d_fail(bench *b, const char *adapter, const char *msg)
{
    return bench_failf(b, "%s: %s", adapter, msg);
}

static int bench_d_append(bench *b, bench_direct *d, const char *adapter,
                          const persistor_snapshot_input *in, size_t n, size_t batch)
{
    char msg[512];
    for (size_t off = 0; off < n; off += batch) {
        size_t m = n - off < batch ? n - off : batch, stored;
        if (bench_direct_append(d, &in[off], m, &b->scratch.ids[off], &stored, msg, sizeof msg) !=
            0)
            return bench_d_fail(b, adapter, msg);
        if (stored != m)
            return bench_failf(b, "%s: direct append stored %zu of %zu on a fresh store", adapter,
                               stored, m);
    }
    return 0;
}

static int bench_d_has(bench *b, bench_direct *d, const char *adapter)
{
    char msg[512];
    for (size_t q = 0; q < b->w.n_has; q++) {
        int found = bench_direct_has(d, b->w.has_ids[q], msg, sizeof msg);
        if (found < 0)
            return bench_d_fail(b, adapter, msg);
        if ((found == 1) != b->w.has_expect[q])
            return bench_failf(b, "%s: direct has %s answered %d", adapter, b->w.has_ids[q],
                               found);
    }
    return 0;
}

static int bench_d_load(bench *b, bench_direct *d, const char *adapter)
{
    char msg[512];
    for (uint32_t i = 0; i < b->w.contexts; i++) {
        const char *xc = b->w.xc_ids[b->w.load_order[i]];
        bench_direct_loaded got;
        if (bench_direct_load(d, xc, &got, msg, sizeof msg) != 0)
            return bench_d_fail(b, adapter, msg);
        if (got.count != b->w.per_context || !got.ordered)
            return bench_failf(b, "%s: direct load %s: %zu documents%s, expected %u in ts order",
                               adapter, xc, got.count, got.ordered ? "" : " out of order",
                               b->w.per_context);
    }
    return 0;
}

static int bench_d_phase(bench *b, bench_direct *d, const char *adapter, int ph)
{
    switch (ph) {
    case BENCH_APPEND_1:
        return bench_d_append(b, d, adapter, b->w.single, b->w.n_single, 1);
    case BENCH_APPEND_BATCH:
        return bench_d_append(b, d, adapter, b->w.batch, b->w.n, BENCH_BATCH);
    case BENCH_HAS:
        return bench_d_has(b, d, adapter);
    default:
        return bench_d_load(b, d, adapter);
    }
}

static int bench_run_direct(bench *b, const char *adapter, double secs[BENCH_PHASES])
{
    char path[4400], msg[512];
    bench_direct *d;
    if (bench_fresh_store(b, adapter, true) != 0)
        return -1;
    bench_store_path(b, adapter, true, path, sizeof path);
    if (bench_direct_open(adapter, path, BENCH_LMDB_MAP_SIZE, &d, msg, sizeof msg) != 0)
        return bench_d_fail(b, adapter, msg);
    int result = 0;
    for (int ph = 0; ph < BENCH_PHASES && result == 0; ph++) {
        double t0 = bench_now_s();
        result = bench_d_phase(b, d, adapter, ph);
        secs[ph] = bench_now_s() - t0;
        if (result == 0 && ph == BENCH_APPEND_1)
            result = bench_check_ids(b, adapter, "direct", b->w.single_hashes, b->w.n_single);
        else if (result == 0 && ph == BENCH_APPEND_BATCH)
            result = bench_check_ids(b, adapter, "direct", b->w.hashes, b->w.n);
    }
    bench_direct_close(d);
    char dir[4200];
    bench_store_dir(b, adapter, true, dir, sizeof dir);
    bench_remove_tree(dir);
    return result;
}

/* ------------------------------------------------------------------ */
/* Running and reporting                                              */

static void bench_progress(const bench *b, const char *adapter, const char *side, uint32_t r)
{
    if (b->progress)
        fprintf(stderr, "\r  %-8s %-9s run %u/%u   ", adapter, side, r + 1, b->opt.repeat);
}

/* Persistor and direct alternately, each on a fresh store, `repeat` times;
 * the order flips every repeat so neither side always runs on a warmer
 * cache or a quieter disk. */
static int bench_run_adapter(bench *b, bench_adapter *a)
{
    for (uint32_t r = 0; r < b->opt.repeat; r++) {
        double ps[BENCH_PHASES] = {0}, ds[BENCH_PHASES] = {0};
        for (int turn = 0; turn < 2; turn++) {
            bool direct = (turn == 0) == (r % 2 == 1);
            if (direct && !a->direct)
                continue;
            bench_progress(b, a->name, direct ? "direct" : "persistor", r);
            if ((direct ? bench_run_direct(b, a->name, ds) : bench_run_persistor(b, a->name, ps)) !=
                0)
                return -1;
        }
        for (int ph = 0; ph < BENCH_PHASES; ph++) {
            a->persistor_s[ph][r] = ps[ph];
            a->direct_s[ph][r] = ds[ph];
        }
    }
    if (b->progress)
        fputs("\r                                        \r", stderr);
    a->ran = true;
    return 0;
}

static int bench_cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, c = *(const double *)y;
    return (a > c) - (a < c);
}

static double bench_median(const double *v, uint32_t n)
{
    double sorted[BENCH_MAX_REPEAT];
    memcpy(sorted, v, n * sizeof *v);
    qsort(sorted, n, sizeof *sorted, bench_cmp_double);
    return n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
}

static uint64_t bench_phase_ops(const bench_work *w, int ph)
{
    switch (ph) {
    case BENCH_APPEND_1: return w->n_single;
    case BENCH_APPEND_BATCH: return w->n;
    case BENCH_HAS: return w->n_has;
    default: return w->contexts;
    }
}

/* Median ops/s of one side and phase (0 when it did not run). */
static double bench_rate(const bench *b, const bench_adapter *a, bool direct, int ph)
{
    double secs = bench_median(direct ? a->direct_s[ph] : a->persistor_s[ph], b->opt.repeat);
    return secs > 0 ? (double)bench_phase_ops(&b->w, ph) / secs : 0;
}

static void bench_print_header(const bench *b)
{
    char n[32], bytes[32], ctx[32], single[32], per[32];
    const bench_work *w = &b->w;
    printf("persistor bench: %s snapshots of ~%s bytes in %s contexts; seed %" PRIu64
           "; median of %u\n",
           bench_group(w->n, n), bench_group((uint64_t)(w->doc_bytes + 0.5), bytes),
           bench_group(w->contexts, ctx), b->opt.seed, b->opt.repeat);
    printf("  append x1:    %s snapshots of their own, one call and one transaction each "
           "(durable stores sync every one, hence --single)\n",
           bench_group(w->n_single, single));
    printf("  append x1000: the %s in batches of %d; has: %s lookups by hash (%u%% absent); "
           "load: every context, %s snapshots each\n",
           n, BENCH_BATCH, n, b->opt.absent_pct, bench_group(w->per_context, per));
    printf("  stores: fresh per run in %s (removed after); sqlite WAL + synchronous full; "
           "lmdb sync on, map_size 1 GiB (no growth)\n\n",
           b->dir);
}

static void bench_print_rate(double rate)
{
    char g[32];
    if (rate <= 0)
        printf(" %12s %9s", "-", "-");
    else
        printf(" %12s %9.2f", bench_group((uint64_t)(rate + 0.5), g), 1e6 / rate);
}

static void bench_print_table(const bench *b, const bench_adapter *as, size_t n)
{
    int below = 0;
    bench_print_header(b);
    printf("%-8s %-13s %9s %12s %9s %12s %9s %7s\n", "adapter", "phase", "ops", "persistor/s",
           "us/op", "direct/s", "us/op", "ratio");
    for (size_t i = 0; i < n; i++) {
        const bench_adapter *a = &as[i];
        if (!a->ran) {
            printf("%-8s skipped: %s\n", a->name, a->skipped);
            continue;
        }
        for (int ph = 0; ph < BENCH_PHASES; ph++) {
            char ops[32];
            double p = bench_rate(b, a, false, ph), d = a->direct ? bench_rate(b, a, true, ph) : 0;
            printf("%-8s %-13s %9s", a->name, bench_phase_names[ph],
                   bench_group(bench_phase_ops(&b->w, ph), ops));
            bench_print_rate(p);
            bench_print_rate(d);
            if (d > 0) {
                printf(" %7.2f%s", p / d, p / d < BENCH_TARGET ? "  < 0.9" : "");
                below += p / d < BENCH_TARGET;
            } else {
                printf(" %7s", "-");
            }
            putchar('\n');
        }
    }
    printf("\nops/s are medians; ratio = persistor ops/s / direct ops/s (target >= 0.9 for "
           "append x1000, has, load).  A load op reads one context (%u snapshots).\n",
           b->w.per_context);
    if (below > 0)
        printf("%d phase(s) below 0.9x the direct baseline: see docs/BENCHMARKS.md.\n", below);
}

static void bench_json_side(const bench *b, const bench_adapter *a, bool direct, int ph)
{
    double rate = bench_rate(b, a, direct, ph);
    printf("{\"ops_per_s\":%.1f,\"us_per_op\":%.3f,\"runs_s\":[", rate,
           rate > 0 ? 1e6 / rate : 0.0);
    for (uint32_t r = 0; r < b->opt.repeat; r++)
        printf("%s%.6f", r ? "," : "", direct ? a->direct_s[ph][r] : a->persistor_s[ph][r]);
    fputs("]}", stdout);
}

/* Adapter names are [a-z0-9_-] and skip reasons go through %s only after
 * this: a JSON string body. */
static void bench_json_string(const char *s)
{
    putchar('"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            printf("\\%c", *s);
        else if ((unsigned char)*s < 0x20)
            printf("\\u%04x", (unsigned)(unsigned char)*s);
        else
            putchar(*s);
    }
    putchar('"');
}

static void bench_json_adapter(const bench *b, const bench_adapter *a)
{
    fputs("{\"adapter\":", stdout);
    bench_json_string(a->name);
    if (!a->ran) {
        fputs(",\"skipped\":", stdout);
        bench_json_string(a->skipped);
        fputs("}", stdout);
        return;
    }
    printf(",\"baseline\":%s,\"phases\":[", a->direct ? "true" : "false");
    for (int ph = 0; ph < BENCH_PHASES; ph++) {
        printf("%s{\"phase\":\"%s\",\"ops\":%" PRIu64 ",\"persistor\":", ph ? "," : "",
               bench_phase_keys[ph], bench_phase_ops(&b->w, ph));
        bench_json_side(b, a, false, ph);
        if (a->direct) {
            double p = bench_rate(b, a, false, ph), d = bench_rate(b, a, true, ph);
            fputs(",\"direct\":", stdout);
            bench_json_side(b, a, true, ph);
            printf(",\"ratio\":%.4f,\"below_target\":%s}", d > 0 ? p / d : 0.0,
                   d > 0 && p / d < BENCH_TARGET ? "true" : "false");
        } else {
            fputs(",\"direct\":null,\"ratio\":null,\"below_target\":false}", stdout);
        }
    }
    fputs("]}", stdout);
}

static void bench_print_json(const bench *b, const bench_adapter *as, size_t n)
{
    const bench_work *w = &b->w;
    printf("{\"persistor\":\"%s\",\"snapshots\":%zu,\"contexts\":%u,\"per_context\":%u,"
           "\"single\":%zu,\"batch\":%d,\"has\":%zu,\"absent_pct\":%u,\"doc_bytes\":%.1f,"
           "\"seed\":%" PRIu64 ",\"repeat\":%u,\"target_ratio\":%.1f,\"adapters\":[",
           persistor_version(), w->n, w->contexts, w->per_context, w->n_single, BENCH_BATCH,
           w->n_has, b->opt.absent_pct, w->doc_bytes, b->opt.seed, b->opt.repeat, BENCH_TARGET);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            putchar(',');
        bench_json_adapter(b, &as[i]);
    }
    fputs("]}\n", stdout);
}

/* Run every adapter; a default adapter whose plugin is missing is skipped,
 * one the user named is an error. */
static int bench_run_all(bench *b, bench_adapter *as)
{
    for (size_t i = 0; i < b->opt.n_adapters; i++) {
        bench_adapter *a = &as[i];
        a->name = b->opt.adapters[i];
        a->direct = bench_direct_available(a->name);
        if (bench_run_adapter(b, a) == 0)
            continue;
        if (b->progress)
            fputs("\n", stderr);
        if (b->opt.adapters_given)
            return -1;
        snprintf(a->skipped, sizeof a->skipped, "%s", b->msg);
    }
    return 0;
}

int cmd_bench(const cli_globals *g, int argc, char **argv)
{
    (void)g; /* the bench writes its own profiles file */
    bench *b = calloc(1, sizeof *b);
    bench_adapter *as = calloc(BENCH_MAX_ADAPTERS, sizeof *as);
    int code = CLI_EXIT_STORAGE;
    if (b == NULL || as == NULL) {
        fputs("persistor: bench: out of memory\n", stderr);
        goto done;
    }
    if ((code = bench_parse(argc, argv, &b->opt)) != CLI_EXIT_OK)
        goto done;
    code = CLI_EXIT_STORAGE;
    b->progress = !b->opt.json && isatty(STDERR_FILENO);
    if (bench_work_build(b) != 0 || bench_make_dir(b) != 0 || bench_write_profiles(b) != 0 ||
        bench_run_all(b, as) != 0) {
        fprintf(stderr, "persistor: bench: %s\n", b->msg);
        goto done;
    }
    if (b->opt.json)
        bench_print_json(b, as, b->opt.n_adapters);
    else
        bench_print_table(b, as, b->opt.n_adapters);
    code = CLI_EXIT_OK;
done:
    if (b != NULL) {
        bench_cleanup_dir(b);
        bench_work_free(&b->w);
        free(b->scratch.ids);
        free(b->scratch.results);
    }
    free(b);
    free(as);
    return code;
}
