/*
 * cli.h — what the `persistor` command's files share: global options,
 * exit codes, and the few helpers every command uses.  The CLI uses only
 * the public API (persistor.h), like any application would.
 */
#ifndef PERSISTOR_CLI_H
#define PERSISTOR_CLI_H

#include <stdbool.h>
#include <stddef.h>

#include "persistor/persistor.h"

/* Exit codes, documented in `persistor --help` and the README. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_NOT_FOUND 1
#define CLI_EXIT_USAGE 2   /* bad usage or bad input: nothing was written */
#define CLI_EXIT_STORAGE 3 /* a store failed or could not be reached */

typedef struct cli_globals {
    const char *config;  /* --config, or NULL */
    const char *profile; /* --profile, or NULL */
} cli_globals;

/* Open the profile named by the globals; prints the error and returns an
 * exit code when it fails, CLI_EXIT_OK with *out set otherwise. */
int cli_open(const cli_globals *g, persistor **out);

/* Print "persistor: <message>" for an error and return its exit code. */
int cli_fail(int32_t rc, const persistor_error *err);
/* Tell the reader on stderr that a fallback answered (stdout stays data). */
void cli_warn_degraded(const char *answered_by);
/* Print "persistor: <formatted>" and "Try 'persistor --help'." → 2. */
int cli_usage(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* The exit code a return code maps to. */
int cli_exit_code(int32_t rc);

/* If argv[*i] is `name VALUE` or `name=VALUE`, take it: *value is set,
 * *i moves past it, returns 1; 0 if it is another argument; -1 when the
 * value is missing (a usage message was printed). */
int cli_take_value(int argc, char **argv, int *i, const char *name, const char **value);

/* Read a whole file ("-" for stdin) into a NUL-terminated string of at
 * most `limit` bytes; caller frees.  Prints the error and returns NULL. */
char *cli_read_input(const char *path, size_t limit);

/* A whole number written in digits only (no sign, no space) that fits in
 * a uint64_t: true with *out, false for anything else (nothing printed). */
bool cli_parse_digits(const char *text, uint64_t *out);

/* --limit N (`option` names it in the message): digits only, 0 meaning no
 * limit.  CLI_EXIT_OK with *out, or a usage message and its exit code. */
int cli_parse_limit(const char *option, const char *text, uint64_t *out);

/* Print every record of `it` as one line of relaxed Extended JSON on
 * stdout, after a degraded warning on stderr when a fallback answers, and
 * free the iterator, whatever happens.  Returns an exit code. */
int cli_print_records(persistor_record_iter *it);

/* Print each group as the line {"_id": <value>, "total": N}, after a
 * degraded warning when a fallback answered.  Returns an exit code. */
int cli_print_groups(const persistor_group_list *list);

/* Say on stderr that `what` `id` was not stored (NOT_STORED: fail_open,
 * no adapter took it), pointing at its `failed_event` log line → 3. */
int cli_not_stored(const char *what, const char *id, const char *failed_event);

/* Save one record of `what` ("incidents record") read as a JSON object
 * from `file` ("-": stdin) with `save`, and print its id.  NOT_STORED
 * (fail_open, nothing took it) exits 3 pointing at `failed_event`'s log
 * line; EXISTS is success (the record was already stored). */
typedef int32_t (*cli_save_fn)(persistor *p, const void *ctx, const persistor_record_input *in,
                               char id[PERSISTOR_ID_MAX + 1], persistor_error *err);
int cli_save_record(const cli_globals *g, const char *file, const char *what,
                    const char *failed_event, cli_save_fn save, const void *ctx);

int cmd_profiles(const cli_globals *g, int argc, char **argv);
int cmd_health(const cli_globals *g, int argc, char **argv);
int cmd_stats(const cli_globals *g, int argc, char **argv);
int cmd_snapshot(const cli_globals *g, int argc, char **argv);
int cmd_audit(const cli_globals *g, int argc, char **argv);
int cmd_query(const cli_globals *g, int argc, char **argv);
int cmd_count(const cli_globals *g, int argc, char **argv);
int cmd_telemetry(const cli_globals *g, int argc, char **argv);
int cmd_demo(const cli_globals *g, int argc, char **argv);
int cmd_bench(const cli_globals *g, int argc, char **argv);

#endif
