/*
 * cmd_snapshot.c — `persistor snapshot ...`: the seed's persistor calls
 * from the shell.  Input JSON is checked whole before anything is written.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* Input larger than MongoDB's document limit can never be stored. */
#define SNAPSHOT_INPUT_LIMIT (16u * 1024u * 1024u)

static int snapshot_print(const persistor_snapshot *s)
{
    char *json = persistor_snapshot_to_json(s);
    if (json == NULL) {
        fprintf(stderr, "persistor: snapshot %s could not be printed as JSON\n", s->hash);
        return CLI_EXIT_STORAGE;
    }
    puts(json);
    persistor_free(json);
    return CLI_EXIT_OK;
}

static bool snapshot_parse_ms(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

static int snapshot_append(const cli_globals *g, int argc, char **argv)
{
    persistor_snapshot_input in = {.struct_size = sizeof in, .ts_ms = PERSISTOR_TS_NOW};
    const char *ts_text = NULL, *file = NULL;
    for (int i = 1; i < argc;) {
        int took;
        if ((took = cli_take_value(argc, argv, &i, "--xc", &in.xc_id)) ||
            (took = cli_take_value(argc, argv, &i, "--tenant", &in.tenant_id)) ||
            (took = cli_take_value(argc, argv, &i, "--ts", &ts_text)) ||
            (took = cli_take_value(argc, argv, &i, "--hash", &in.hash))) {
            if (took < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage("snapshot append: unknown option %s", argv[i]);
        if (file != NULL)
            return cli_usage("snapshot append: one input file only");
        file = argv[i++];
    }
    if (in.xc_id == NULL)
        return cli_usage("snapshot append: --xc ID is required");
    if (ts_text != NULL && !snapshot_parse_ms(ts_text, &in.ts_ms))
        return cli_usage("snapshot append: --ts expects milliseconds since the epoch, got '%s'",
                         ts_text);
    if (file == NULL)
        file = "-";

    char *text = cli_read_input(file, SNAPSHOT_INPUT_LIMIT);
    if (text == NULL)
        return CLI_EXIT_USAGE;
    in.content_json = text;
    in.content_json_source = strcmp(file, "-") == 0 ? "stdin" : file;

    persistor *p;
    int code = cli_open(g, &p);
    if (code != CLI_EXIT_OK) {
        free(text);
        return code;
    }
    char hash[PERSISTOR_HASH_HEX_LEN + 1];
    persistor_error err = {0};
    int32_t rc = persistor_snapshot_append(p, &in, hash, &err);
    persistor_close(p);
    free(text);
    if (rc == PERSISTOR_NOT_STORED)
        return cli_not_stored("snapshot", hash, "snapshot_persist_failed");
    if (rc != PERSISTOR_OK && rc != PERSISTOR_EXISTS)
        return cli_fail(rc, &err);
    puts(hash);
    return CLI_EXIT_OK;
}

/* The commands that take exactly one argument after the subcommand. */
static int snapshot_one_arg(int argc, char **argv, const char *what, const char **arg)
{
    if (argc != 2)
        return cli_usage("snapshot %s: expects exactly one %s", argv[0], what);
    *arg = argv[1];
    return CLI_EXIT_OK;
}

/* Print the one snapshot a lookup found, or say what was not found. */
static int snapshot_print_found(int32_t rc, persistor_snapshot *s, const persistor_error *err,
                                const char *missing, const char *key)
{
    if (rc == PERSISTOR_NOT_FOUND) {
        fprintf(stderr, "persistor: %s %s\n", missing, key);
        return CLI_EXIT_NOT_FOUND;
    }
    if (rc != PERSISTOR_OK)
        return cli_fail(rc, err);
    if (s->degraded)
        cli_warn_degraded(NULL);
    int code = snapshot_print(s);
    persistor_snapshot_free(s);
    return code;
}

static int snapshot_get(persistor *p, const char *hash)
{
    persistor_snapshot *s = NULL;
    persistor_error err = {0};
    int32_t rc = persistor_snapshot_get(p, hash, &s, &err);
    return snapshot_print_found(rc, s, &err, "no snapshot", hash);
}

static int snapshot_has(persistor *p, const char *hash)
{
    persistor_error err = {0};
    int32_t rc = persistor_snapshot_has(p, hash, &err);
    if (rc >= 0 && persistor_degraded(p))
        cli_warn_degraded(NULL);
    return rc < 0 ? cli_fail(rc, &err) : cli_exit_code(rc);
}

static int snapshot_load(persistor *p, const char *xc_id)
{
    persistor_snapshot_iter *it;
    persistor_error err = {0};
    int32_t rc = persistor_snapshot_load(p, xc_id, &it, &err);
    if (rc != PERSISTOR_OK)
        return cli_fail(rc, &err);
    const persistor_snapshot *s;
    int code = CLI_EXIT_OK;
    if (persistor_snapshot_iter_degraded(it))
        cli_warn_degraded(NULL);
    while (code == CLI_EXIT_OK && (rc = persistor_snapshot_iter_next(it, &s, &err)) == PERSISTOR_OK)
        code = snapshot_print(s);
    persistor_snapshot_iter_free(it);
    if (code == CLI_EXIT_OK && rc != PERSISTOR_ITER_END)
        code = cli_fail(rc, &err);
    return code;
}

static int snapshot_hashes(persistor *p, const char *xc_id)
{
    persistor_string_list hashes;
    persistor_error err = {0};
    int32_t rc = persistor_snapshot_list_hashes(p, xc_id, &hashes, &err);
    if (rc != PERSISTOR_OK)
        return cli_fail(rc, &err);
    if (hashes.degraded)
        cli_warn_degraded(NULL);
    for (size_t i = 0; i < hashes.count; i++)
        puts(hashes.items[i]);
    persistor_string_list_free(&hashes);
    return CLI_EXIT_OK;
}

static int snapshot_latest(persistor *p, const char *xc_id)
{
    persistor_snapshot *s = NULL;
    persistor_error err = {0};
    int32_t rc = persistor_snapshot_latest(p, xc_id, &s, &err);
    return snapshot_print_found(rc, s, &err, "no snapshots for", xc_id);
}

static int snapshot_rm(persistor *p, const char *hash)
{
    persistor_error err = {0};
    int32_t rc = persistor_snapshot_delete(p, hash, &err);
    if (rc == PERSISTOR_NOT_FOUND) {
        fprintf(stderr, "persistor: no snapshot %s\n", hash);
        return CLI_EXIT_NOT_FOUND;
    }
    return rc == PERSISTOR_OK ? CLI_EXIT_OK : cli_fail(rc, &err);
}

static const struct {
    const char *name;
    const char *what;
    int (*run)(persistor *p, const char *arg);
} snapshot_commands[] = {
    {"get", "HASH", snapshot_get},         {"has", "HASH", snapshot_has},
    {"load", "XCID", snapshot_load},       {"hashes", "XCID", snapshot_hashes},
    {"latest", "XCID", snapshot_latest},   {"rm", "HASH", snapshot_rm},
};

int cmd_snapshot(const cli_globals *g, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("snapshot: expects a subcommand (append, get, has, load, hashes, "
                         "latest, rm)");
    if (strcmp(argv[1], "append") == 0)
        return snapshot_append(g, argc - 1, argv + 1);
    for (size_t c = 0; c < sizeof snapshot_commands / sizeof snapshot_commands[0]; c++) {
        if (strcmp(argv[1], snapshot_commands[c].name) != 0)
            continue;
        const char *arg = NULL;
        int code = snapshot_one_arg(argc - 1, argv + 1, snapshot_commands[c].what, &arg);
        persistor *p;
        if (code != CLI_EXIT_OK || (code = cli_open(g, &p)) != CLI_EXIT_OK)
            return code;
        code = snapshot_commands[c].run(p, arg);
        persistor_close(p);
        return code;
    }
    return cli_usage("snapshot: unknown subcommand '%s'", argv[1]);
}
