/*
 * main.c — the `persistor` command: global options and dispatch.
 *
 * Each command lives in its own file; this one only reads the options that
 * come before the command and maps failures to the documented exit codes.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

static const char cli_help[] =
    "usage: persistor [--config FILE] [--profile NAME] COMMAND [ARGS]\n"
    "\n"
    "Persist agent-workflow state through the storage adapters of a profile.\n"
    "\n"
    "Global options:\n"
    "  --config FILE    profiles file (default: $PERSISTOR_CONFIG, ./conf/profiles.yaml,\n"
    "                   /etc/persistor/profiles.yaml)\n"
    "  --profile NAME   profile (default: $PERSISTOR_PROFILE, else development)\n"
    "  --help           this help\n"
    "  --version        print the version\n"
    "\n"
    "Commands:\n"
    "  profiles                      list the profiles of the file and their adapters\n"
    "  health [--json]               ping every adapter of the profile\n"
    "  stats [--json]                snapshot count and sizes\n"
    "  snapshot append --xc ID [--tenant T] [--ts MS] [--hash H] [FILE|-]\n"
    "                                append a snapshot (JSON object); prints its hash\n"
    "  snapshot get HASH             print one snapshot as JSON\n"
    "  snapshot has HASH             exit 0 if stored, 1 if not\n"
    "  snapshot load XCID            print a context's snapshots in order (JSON lines)\n"
    "  snapshot hashes XCID          print a context's hashes in order\n"
    "  snapshot latest XCID          print a context's newest snapshot\n"
    "  snapshot rm HASH              delete one snapshot\n"
    "  audit validation|result|incident [FILE|-]\n"
    "                                save an audit record (JSON object); prints its id\n"
    "  audit by-validity             validations per validation_result.valid (JSON lines)\n"
    "  audit history PLAN_ID [--limit N]\n"
    "                                a plan's validations, newest first\n"
    "  audit status STATUS [--limit N]\n"
    "                                workflow results with STATUS, newest first\n"
    "  audit sla-violations [--limit N]\n"
    "                                workflow results with SLA violations, most first\n"
    "  audit critical [--limit N]    CRITICAL incidents, newest first (default 20)\n"
    "  audit by-type                 incidents per type (JSON lines)\n"
    "  query COLLECTION [--filter JSON] [--sort FIELD[:asc|:desc]] [--limit N]\n"
    "                                print matching records (JSON lines); ties by _id,\n"
    "                                --limit 0 for all\n"
    "  count COLLECTION [--filter JSON] [--group-by FIELD]\n"
    "                                count matching records, or print one\n"
    "                                {\"_id\": VALUE, \"total\": N} line per value of FIELD\n"
    "  telemetry buffer [FILE|-]     buffer a telemetry record (JSON object); prints its id\n"
    "  telemetry claim [--limit N] [--lease SECONDS] [--max-retries N]\n"
    "                                lease up to N records (default 100, 60 s, 5) and\n"
    "                                print them (JSON lines)\n"
    "  telemetry ack ID...           remove delivered records; prints how many\n"
    "  telemetry release ID...       end leases now, for the next claim; prints how many\n"
    "  telemetry dead [--limit N]    dead letters, oldest first (JSON lines)\n"
    "  telemetry requeue ID...|--all put dead letters back; prints how many\n"
    "  telemetry retried [--limit N] records claimed at least once (JSON lines)\n"
    "  telemetry drain --exec CMD [--batch N] [--lease SECONDS] [--max-retries N]\n"
    "                                pipe claimed batches into `/bin/sh -c CMD` as JSON\n"
    "                                lines; ack a batch when CMD exits 0, else release it\n"
    "                                and stop (exit 3).  CMD must finish within the lease\n"
    "  demo                          play an agent kernel checkpointing and restoring\n"
    "  bench [--adapters memory,sqlite,lmdb] [--contexts N] [--per-context N]\n"
    "        [--single N] [--repeat N] [--absent PCT] [--dir DIR] [--seed S] [--json]\n"
    "                                time append, has and load through persistor and,\n"
    "                                for sqlite and lmdb, straight against the library\n"
    "                                (docs/BENCHMARKS.md); uses its own profiles file\n"
    "\n"
    "Exit codes: 0 ok, 1 not found, 2 usage or bad input (nothing written),\n"
    "3 storage error.  Logs are JSON lines on stderr; PERSISTOR_LOG_LEVEL=debug|info|\n"
    "warn|error|off (default warn).\n";

int cli_exit_code(int32_t rc)
{
    switch (rc) {
    case PERSISTOR_OK:
    case PERSISTOR_EXISTS:
        return CLI_EXIT_OK;
    case PERSISTOR_NOT_FOUND:
    case PERSISTOR_ITER_END:
        return CLI_EXIT_NOT_FOUND;
    case PERSISTOR_E_INVALID:
    case PERSISTOR_E_CONFIG:
        return CLI_EXIT_USAGE;
    default:
        return CLI_EXIT_STORAGE;
    }
}

int cli_fail(int32_t rc, const persistor_error *err)
{
    fprintf(stderr, "persistor: %s\n",
            err != NULL && err->message[0] != '\0' ? err->message : persistor_rc_name(rc));
    return cli_exit_code(rc);
}

void cli_warn_degraded(const char *answered_by)
{
    fprintf(stderr,
            "persistor: degraded answer: the primary is down, so a fallback%s%s answered with "
            "only what it holds (see `persistor health`)\n",
            answered_by != NULL ? " " : "", answered_by != NULL ? answered_by : "");
}

int cli_usage(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("persistor: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'persistor --help'.\n", stderr);
    va_end(ap);
    return CLI_EXIT_USAGE;
}

int cli_open(const cli_globals *g, persistor **out)
{
    persistor_open_options opts = {.struct_size = sizeof opts,
                                   .config_path = g->config,
                                   .profile = g->profile};
    persistor_error err = {0};
    int32_t rc = persistor_open(&opts, out, &err);
    if (rc == PERSISTOR_OK)
        return CLI_EXIT_OK;
    cli_fail(rc, &err);
    /* A missing profile or file is the user's input, not a lookup result. */
    return rc == PERSISTOR_NOT_FOUND ? CLI_EXIT_USAGE : cli_exit_code(rc);
}

int cli_take_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t n = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        *i += 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_usage("%s needs a value", name);
        return -1;
    }
    *value = argv[*i + 1];
    *i += 2;
    return 1;
}

char *cli_read_input(const char *path, size_t limit)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "stdin" : path; /* as JSON errors name it */
    FILE *f = is_stdin ? stdin : fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "persistor: %s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, len = 0;
    char *text = malloc(cap);
    while (text != NULL) {
        if (len + 1 >= cap) {
            char *grown = cap <= limit ? realloc(text, cap * 2) : NULL;
            if (grown == NULL) {
                fprintf(stderr, "persistor: %s: input larger than %zu bytes\n", name, limit);
                free(text);
                text = NULL;
                break;
            }
            text = grown;
            cap *= 2;
        }
        size_t got = fread(text + len, 1, cap - 1 - len, f);
        len += got;
        if (got == 0)
            break;
    }
    if (text != NULL && ferror(f)) {
        fprintf(stderr, "persistor: %s: read error\n", name);
        free(text);
        text = NULL;
    }
    if (text != NULL && len > limit) {
        fprintf(stderr, "persistor: %s: input larger than %zu bytes\n", name, limit);
        free(text);
        text = NULL;
    }
    if (text != NULL)
        text[len] = '\0';
    if (!is_stdin)
        fclose(f);
    return text;
}

int cli_not_stored(const char *what, const char *id, const char *failed_event)
{
    fprintf(stderr,
            "persistor: %s %s was not stored: no adapter could take it and the collection is "
            "fail_open (see the %s log line)\n",
            what, id, failed_event);
    return CLI_EXIT_STORAGE;
}

/* MongoDB's document limit, plus room for JSON's verbosity. */
#define CLI_RECORD_INPUT_LIMIT (64u * 1024 * 1024)

int cli_save_record(const cli_globals *g, const char *file, const char *what,
                    const char *failed_event, cli_save_fn save, const void *ctx)
{
    char *text = cli_read_input(file, CLI_RECORD_INPUT_LIMIT);
    if (text == NULL)
        return CLI_EXIT_USAGE;
    persistor *p;
    int code = cli_open(g, &p);
    if (code != CLI_EXIT_OK) {
        free(text);
        return code;
    }
    persistor_record_input in = {.struct_size = sizeof in,
                                 .json = text,
                                 .json_source = strcmp(file, "-") == 0 ? "stdin" : file};
    char id[PERSISTOR_ID_MAX + 1] = "";
    persistor_error err = {0};
    int32_t rc = save(p, ctx, &in, id, &err);
    persistor_close(p);
    free(text);
    if (rc == PERSISTOR_NOT_STORED)
        return cli_not_stored(what, id, failed_event);
    if (rc != PERSISTOR_OK && rc != PERSISTOR_EXISTS)
        return cli_fail(rc, &err);
    puts(id);
    return CLI_EXIT_OK;
}

static const struct {
    const char *name;
    int (*run)(const cli_globals *g, int argc, char **argv);
} cli_commands[] = {
    {"profiles", cmd_profiles}, {"health", cmd_health}, {"stats", cmd_stats},
    {"snapshot", cmd_snapshot}, {"audit", cmd_audit}, {"query", cmd_query}, {"count", cmd_count},
    {"telemetry", cmd_telemetry}, {"demo", cmd_demo}, {"bench", cmd_bench},
};

int main(int argc, char **argv)
{
    cli_globals g = {0};
    int i = 1;
    while (i < argc && argv[i][0] == '-') {
        int took;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            fputs(cli_help, stdout);
            return CLI_EXIT_OK;
        }
        if (strcmp(argv[i], "--version") == 0) {
            printf("persistor %s (adapter ABI %d.%d)\n", persistor_version(),
                   PERSISTOR_ABI_MAJOR, PERSISTOR_ABI_MINOR);
            return CLI_EXIT_OK;
        }
        if ((took = cli_take_value(argc, argv, &i, "--config", &g.config)) != 0 ||
            (took = cli_take_value(argc, argv, &i, "--profile", &g.profile)) != 0) {
            if (took < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        return cli_usage("unknown option %s", argv[i]);
    }
    if (i >= argc)
        return cli_usage("no command given");
    for (size_t c = 0; c < sizeof cli_commands / sizeof cli_commands[0]; c++)
        if (strcmp(argv[i], cli_commands[c].name) == 0)
            return cli_commands[c].run(&g, argc - i, argv + i);
    return cli_usage("unknown command '%s'", argv[i]);
}
