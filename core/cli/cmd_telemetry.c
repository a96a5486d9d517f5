/*
 * cmd_telemetry.c — `persistor telemetry ...`: the telemetry buffer from the
 * shell.  buffer a record, claim / ack / release by hand, list and requeue
 * dead letters, list what was retried, and `drain --exec CMD`, the loop an
 * operator runs when Kafka is back: claim a batch, pipe it into CMD as JSON
 * lines, acknowledge it only when CMD exits 0.
 *
 * stdout is data only (ids, JSON lines, counts); messages go to stderr.
 * Delivery is at least once: a batch CMD took in part is released whole and
 * delivered again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cli.h"

extern char **environ;

/* --lease is in seconds; the API takes milliseconds in a uint32. */
#define TELEMETRY_MAX_LEASE_S (UINT32_MAX / 1000u)

/* ------------------------------------------------------------------ */
/* Arguments                                                          */

/* A whole number in [1, max] for `option`, or a usage message. */
static int telemetry_parse_count(const char *option, const char *text, uint32_t max,
                                 uint32_t *out)
{
    uint64_t v;
    if (!cli_parse_digits(text, &v) || v == 0 || v > max)
        return cli_usage("%s expects a whole number from 1 to %" PRIu32 ", got '%s'", option,
                         max, text);
    *out = (uint32_t)v;
    return CLI_EXIT_OK;
}

/* What claim and drain were asked: --limit or --batch, --lease,
 * --max-retries, and drain's --exec. */
typedef struct claim_args {
    persistor_claim_options opts;
    const char *exec;
} claim_args;

static int telemetry_parse_claim(int argc, char **argv, bool drain, claim_args *a)
{
    const char *cmd = argv[0], *size = NULL, *lease = NULL, *retries = NULL;
    const char *size_option = drain ? "--batch" : "--limit";
    *a = (claim_args){.opts = {.struct_size = sizeof a->opts}};
    for (int i = 1; i < argc;) {
        int took;
        if ((took = cli_take_value(argc, argv, &i, size_option, &size)) ||
            (took = cli_take_value(argc, argv, &i, "--lease", &lease)) ||
            (took = cli_take_value(argc, argv, &i, "--max-retries", &retries)) ||
            (drain && (took = cli_take_value(argc, argv, &i, "--exec", &a->exec)))) {
            if (took < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        return cli_usage("telemetry %s: unexpected argument '%s'", cmd, argv[i]);
    }
    if (drain && (a->exec == NULL || a->exec[0] == '\0'))
        return cli_usage("telemetry drain: --exec CMD is required (CMD reads JSON lines on "
                         "its stdin)");
    uint32_t lease_s = 0;
    int code = CLI_EXIT_OK;
    if (size != NULL)
        code = telemetry_parse_count(size_option, size, UINT32_MAX, &a->opts.max_records);
    if (code == CLI_EXIT_OK && lease != NULL &&
        (code = telemetry_parse_count("--lease", lease, TELEMETRY_MAX_LEASE_S, &lease_s)) ==
            CLI_EXIT_OK)
        a->opts.lease_ms = lease_s * 1000u;
    if (code == CLI_EXIT_OK && retries != NULL)
        code = telemetry_parse_count("--max-retries", retries, UINT32_MAX,
                                     &a->opts.max_retries);
    return code;
}

/* `--limit N` and nothing else, for dead and retried. */
static int telemetry_parse_limit(int argc, char **argv, uint64_t *limit)
{
    const char *text = NULL;
    *limit = 0;
    for (int i = 1; i < argc;) {
        int took = cli_take_value(argc, argv, &i, "--limit", &text);
        if (took < 0)
            return CLI_EXIT_USAGE;
        if (took == 0)
            return cli_usage("telemetry %s: unexpected argument '%s' (expects [--limit N])",
                             argv[0], argv[i]);
    }
    return text != NULL ? cli_parse_limit("--limit", text, limit) : CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* Output                                                             */

/* `r` as one line of relaxed Extended JSON (persistor_free it), or NULL
 * once stderr says it cannot be printed. */
static char *telemetry_json(const persistor_record *r)
{
    char *json = persistor_record_to_json(r->bson, r->bson_len);
    if (json == NULL)
        fprintf(stderr, "persistor: telemetry record %s cannot be printed as JSON\n", r->id);
    return json;
}

static int telemetry_print_list(const persistor_record_list *list)
{
    if (list->degraded)
        cli_warn_degraded(NULL);
    for (size_t i = 0; i < list->count; i++) {
        char *json = telemetry_json(&list->items[i]);
        if (json == NULL)
            return CLI_EXIT_STORAGE;
        puts(json);
        persistor_free(json);
    }
    return CLI_EXIT_OK;
}

static void telemetry_say_dead(size_t dead)
{
    if (dead > 0)
        fprintf(stderr,
                "persistor: %zu record%s had been claimed --max-retries times without an ack "
                "and moved to the dead letters (see `persistor telemetry dead`)\n",
                dead, dead == 1 ? "" : "s");
}

/* ------------------------------------------------------------------ */
/* buffer, claim, ack, release, dead, requeue, retried                */

static int32_t telemetry_save(persistor *p, const void *ctx, const persistor_record_input *in,
                              char id[PERSISTOR_ID_MAX + 1], persistor_error *err)
{
    (void)ctx;
    return persistor_telemetry_buffer(p, in, id, err);
}

static int telemetry_buffer(const cli_globals *g, int argc, char **argv)
{
    if (argc > 2)
        return cli_usage("telemetry buffer: expects [FILE|-]");
    return cli_save_record(g, argc == 2 ? argv[1] : "-", "telemetry record",
                           "telemetry_buffer_persist_failed", telemetry_save, NULL);
}

static int telemetry_claim(const cli_globals *g, int argc, char **argv)
{
    claim_args a;
    persistor *p;
    int code = telemetry_parse_claim(argc, argv, false, &a);
    if (code != CLI_EXIT_OK || (code = cli_open(g, &p)) != CLI_EXIT_OK)
        return code;
    persistor_record_list list;
    persistor_error err = {0};
    int32_t rc = persistor_telemetry_claim(p, &a.opts, &list, &err);
    persistor_close(p);
    if (rc != PERSISTOR_OK)
        return cli_fail(rc, &err);
    code = telemetry_print_list(&list);
    telemetry_say_dead(list.dead_lettered);
    persistor_record_list_free(&list);
    return code;
}

typedef int32_t (*telemetry_ids_fn)(persistor *p, const char *const *ids, size_t n,
                                    uint64_t *done, persistor_error *err);

/* `SUB ID...` (ids NULL: `requeue --all`): run `fn`, print how many it
 * changed. */
static int telemetry_run_on_ids(const cli_globals *g, const char *const *ids, size_t n,
                                telemetry_ids_fn fn)
{
    persistor *p;
    int code = cli_open(g, &p);
    if (code != CLI_EXIT_OK)
        return code;
    uint64_t done = 0;
    persistor_error err = {0};
    int32_t rc = fn(p, ids, n, &done, &err);
    persistor_close(p);
    if (rc != PERSISTOR_OK)
        return cli_fail(rc, &err);
    printf("%" PRIu64 "\n", done);
    return CLI_EXIT_OK;
}

static int telemetry_on_ids(const cli_globals *g, int argc, char **argv, telemetry_ids_fn fn)
{
    if (argc < 2)
        return cli_usage("telemetry %s: expects one or more IDs", argv[0]);
    for (int i = 1; i < argc; i++)
        if (argv[i][0] == '-')
            return cli_usage("telemetry %s: unexpected option '%s' (expects IDs)", argv[0],
                             argv[i]);
    return telemetry_run_on_ids(g, (const char *const *)argv + 1, (size_t)argc - 1, fn);
}

static int telemetry_ack(const cli_globals *g, int argc, char **argv)
{
    return telemetry_on_ids(g, argc, argv, persistor_telemetry_ack);
}

static int telemetry_release(const cli_globals *g, int argc, char **argv)
{
    return telemetry_on_ids(g, argc, argv, persistor_telemetry_release);
}

static int telemetry_requeue(const cli_globals *g, int argc, char **argv)
{
    if (argc == 2 && strcmp(argv[1], "--all") == 0)
        return telemetry_run_on_ids(g, NULL, 0, persistor_telemetry_requeue);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--all") == 0)
            return cli_usage("telemetry requeue: expects IDs or --all, not both");
    if (argc < 2)
        return cli_usage("telemetry requeue: expects IDs or --all");
    return telemetry_on_ids(g, argc, argv, persistor_telemetry_requeue);
}

static int telemetry_dead(const cli_globals *g, int argc, char **argv)
{
    uint64_t limit;
    persistor *p;
    int code = telemetry_parse_limit(argc, argv, &limit);
    if (code != CLI_EXIT_OK || (code = cli_open(g, &p)) != CLI_EXIT_OK)
        return code;
    persistor_record_list list;
    persistor_error err = {0};
    int32_t rc = persistor_telemetry_dead(p, limit, &list, &err);
    persistor_close(p);
    if (rc != PERSISTOR_OK)
        return cli_fail(rc, &err);
    code = telemetry_print_list(&list);
    persistor_record_list_free(&list);
    return code;
}

static int telemetry_retried(const cli_globals *g, int argc, char **argv)
{
    uint64_t limit;
    persistor *p;
    int code = telemetry_parse_limit(argc, argv, &limit);
    if (code != CLI_EXIT_OK || (code = cli_open(g, &p)) != CLI_EXIT_OK)
        return code;
    persistor_record_iter *it;
    persistor_error err = {0};
    int32_t rc = persistor_telemetry_retried(p, limit, &it, &err);
    code = rc == PERSISTOR_OK ? cli_print_records(it) : cli_fail(rc, &err);
    persistor_close(p);
    return code;
}

/* ------------------------------------------------------------------ */
/* drain                                                              */

/* Write all of `data`; false on an error (EPIPE: CMD stopped reading). */
static bool drain_write(int fd, const char *data, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, data, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return false;
        data += n;
        len -= (size_t)n;
    }
    return true;
}

/* Start `/bin/sh -c cmd` with its stdin on a pipe: *pid, and *to_child the
 * pipe's write end.  CMD gets SIGPIPE's default action back even if we
 * were started with it ignored.  False (errno set) when it cannot start. */
static bool drain_spawn(const char *cmd, pid_t *pid, int *to_child)
{
    int fds[2];
    if (pipe(fds) != 0)
        return false;
    /* Neither end leaks into CMD but as its stdin: a write end held by the
     * child would keep it from ever seeing the end of its input. */
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    posix_spawn_file_actions_t actions;
    posix_spawnattr_t attr;
    sigset_t defaults;
    sigemptyset(&defaults);
    sigaddset(&defaults, SIGPIPE);
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, fds[0], 0);
    posix_spawnattr_init(&attr);
    posix_spawnattr_setsigdefault(&attr, &defaults);
    posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
    char *const argv[] = {"/bin/sh", "-c", (char *)cmd, NULL};
    fflush(stdout);
    fflush(stderr);
    int rc = posix_spawn(pid, "/bin/sh", &actions, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&actions);
    posix_spawnattr_destroy(&attr);
    close(fds[0]);
    if (rc != 0) {
        close(fds[1]);
        errno = rc;
        return false;
    }
    *to_child = fds[1];
    return true;
}

/* What became of a batch piped into CMD. */
typedef enum drain_outcome {
    DRAIN_DELIVERED, /* CMD was given every line and exited 0 */
    DRAIN_REFUSED,   /* CMD ended otherwise (its wait status says how) */
    DRAIN_UNREAD,    /* CMD exited 0 but closed its input before the end */
    DRAIN_NOT_RUN,   /* CMD could not be run, waited for or given the batch (said why) */
} drain_outcome;

/* Pipe `batch` into CMD as JSON lines and wait for it; *status gets its
 * wait status.  A CMD seen closing its input early did not take the batch,
 * whatever its status.  Otherwise CMD is trusted to exit 0 only when it
 * delivered every line: a pipe buffers what CMD never reads, unseen. */
static drain_outcome drain_deliver(const char *cmd, const persistor_record_list *batch,
                                   int *status)
{
    pid_t pid;
    int fd;
    if (!drain_spawn(cmd, &pid, &fd)) {
        fprintf(stderr, "persistor: telemetry drain: cannot run /bin/sh -c '%s': %s\n", cmd,
                strerror(errno));
        return DRAIN_NOT_RUN;
    }
    /* A CMD that stops reading must not kill us with SIGPIPE: the write
     * fails with EPIPE instead, and CMD's exit status decides. */
    struct sigaction ignore = {.sa_handler = SIG_IGN}, saved;
    sigemptyset(&ignore.sa_mask);
    sigaction(SIGPIPE, &ignore, &saved);
    bool printable = true, writing = true;
    for (size_t i = 0; printable && writing && i < batch->count; i++) {
        char *json = telemetry_json(&batch->items[i]);
        printable = json != NULL;
        if (printable)
            writing = drain_write(fd, json, strlen(json)) && drain_write(fd, "\n", 1);
        persistor_free(json);
    }
    close(fd);
    sigaction(SIGPIPE, &saved, NULL);
    while (waitpid(pid, status, 0) < 0) {
        if (errno != EINTR) {
            fprintf(stderr, "persistor: telemetry drain: waiting for '%s': %s\n", cmd,
                    strerror(errno));
            return DRAIN_NOT_RUN;
        }
    }
    /* A record we could not print was not delivered, whatever CMD says. */
    if (!printable)
        return DRAIN_NOT_RUN;
    if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0)
        return DRAIN_REFUSED;
    return writing ? DRAIN_DELIVERED : DRAIN_UNREAD;
}

/* The batch's ids, borrowed from it, for ack and release. */
static const char **drain_ids(const persistor_record_list *batch)
{
    const char **ids = calloc(batch->count + 1, sizeof *ids);
    for (size_t i = 0; ids != NULL && i < batch->count; i++)
        ids[i] = batch->items[i].id;
    return ids;
}

static void drain_describe_status(int status, char *out, size_t cap)
{
    if (WIFEXITED(status))
        snprintf(out, cap, "exited with status %d", WEXITSTATUS(status));
    else if (WIFSIGNALED(status))
        snprintf(out, cap, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, cap, "ended with wait status %d", status);
}

/* One batch: deliver it, then ack it (CMD exited 0) or release it.
 * CLI_EXIT_OK when it was delivered and acknowledged. */
static int drain_batch(persistor *p, const char *cmd, const persistor_record_list *batch)
{
    const char **ids = drain_ids(batch);
    if (ids == NULL) {
        fprintf(stderr, "persistor: out of memory\n");
        return CLI_EXIT_STORAGE;
    }
    int status = 0;
    drain_outcome outcome = drain_deliver(cmd, batch, &status);
    bool delivered = outcome == DRAIN_DELIVERED;
    uint64_t done = 0;
    persistor_error err = {0};
    int32_t rc = delivered ? persistor_telemetry_ack(p, ids, batch->count, &done, &err)
                           : persistor_telemetry_release(p, ids, batch->count, &done, &err);
    free(ids);
    if (rc != PERSISTOR_OK) {
        fprintf(stderr, "persistor: telemetry drain: %s the batch of %zu record%s failed "
                        "(delivered again when the lease ends)\n",
                delivered ? "acknowledging" : "releasing", batch->count,
                batch->count == 1 ? "" : "s");
        return cli_fail(rc, &err);
    }
    if (delivered)
        return CLI_EXIT_OK;
    if (outcome == DRAIN_REFUSED || outcome == DRAIN_UNREAD) {
        char how[64];
        drain_describe_status(status, how, sizeof how);
        fprintf(stderr,
                "persistor: telemetry drain: '%s' %s%s; its batch of %zu record%s was "
                "released and stays buffered\n",
                cmd, how, outcome == DRAIN_UNREAD ? " before reading all of its input" : "",
                batch->count, batch->count == 1 ? "" : "s");
    }
    return CLI_EXIT_STORAGE;
}

static int telemetry_drain(const cli_globals *g, int argc, char **argv)
{
    claim_args a;
    persistor *p;
    int code = telemetry_parse_claim(argc, argv, true, &a);
    if (code != CLI_EXIT_OK || (code = cli_open(g, &p)) != CLI_EXIT_OK)
        return code;
    /* A SIGCHLD ignored by whoever started us would let the kernel reap
     * CMD before waitpid sees its status, and a delivered batch would be
     * released: this process wants its children's statuses. */
    signal(SIGCHLD, SIG_DFL);
    size_t drained = 0, batches = 0, dead = 0;
    bool degraded = false;
    /* A batch is taken only after the one before was delivered: a CMD
     * that keeps failing stops the drain at its first failure. */
    while (code == CLI_EXIT_OK) {
        persistor_record_list batch;
        persistor_error err = {0};
        int32_t rc = persistor_telemetry_claim(p, &a.opts, &batch, &err);
        if (rc != PERSISTOR_OK) {
            code = cli_fail(rc, &err);
            break;
        }
        dead += batch.dead_lettered;
        if (batch.degraded && !degraded)
            cli_warn_degraded(NULL);
        degraded |= batch.degraded != 0;
        if (batch.count == 0) {
            /* A claim that only moved records to the dead letters may have
             * left claimable ones behind: only an empty claim is the end. */
            bool more = batch.dead_lettered > 0;
            persistor_record_list_free(&batch);
            if (more)
                continue;
            break;
        }
        code = drain_batch(p, a.exec, &batch);
        if (code == CLI_EXIT_OK) {
            drained += batch.count;
            batches++;
        }
        persistor_record_list_free(&batch);
    }
    persistor_close(p);
    telemetry_say_dead(dead);
    fprintf(stderr, "persistor: drained %zu record%s in %zu batch%s\n", drained,
            drained == 1 ? "" : "s", batches, batches == 1 ? "" : "es");
    return code;
}

/* ------------------------------------------------------------------ */

static const struct {
    const char *name;
    int (*run)(const cli_globals *g, int argc, char **argv);
} telemetry_commands[] = {
    {"buffer", telemetry_buffer}, {"claim", telemetry_claim},     {"ack", telemetry_ack},
    {"release", telemetry_release}, {"dead", telemetry_dead},     {"requeue", telemetry_requeue},
    {"retried", telemetry_retried}, {"drain", telemetry_drain},
};

int cmd_telemetry(const cli_globals *g, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("telemetry: expects buffer, claim, ack, release, dead, requeue, "
                         "retried or drain");
    size_t n = sizeof telemetry_commands / sizeof telemetry_commands[0], k = 0;
    while (k < n && strcmp(argv[1], telemetry_commands[k].name) != 0)
        k++;
    if (k == n)
        return cli_usage("telemetry: unknown subcommand '%s' (buffer, claim, ack, release, "
                         "dead, requeue, retried, drain)",
                         argv[1]);
    return telemetry_commands[k].run(g, argc - 1, argv + 1);
}
