/*
 * cmd_audit.c — `persistor audit validation|result|incident [FILE|-]`:
 * save one audit record from a JSON object (a file, or stdin), print its id.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* MongoDB's document limit, plus room for JSON's verbosity. */
#define AUDIT_INPUT_LIMIT (64u * 1024 * 1024)

static const struct {
    const char *name;
    persistor_audit_kind kind;
    const char *collection;
} audit_kinds[] = {
    {"validation", PERSISTOR_AUDIT_VALIDATION, "validation_audit"},
    {"result", PERSISTOR_AUDIT_WORKFLOW_RESULT, "workflow_results"},
    {"incident", PERSISTOR_AUDIT_INCIDENT, "incidents"},
};

int cmd_audit(const cli_globals *g, int argc, char **argv)
{
    if (argc < 2 || argc > 3)
        return cli_usage("audit: expects validation|result|incident [FILE|-]");
    size_t k = 0;
    while (k < sizeof audit_kinds / sizeof audit_kinds[0] && strcmp(argv[1], audit_kinds[k].name))
        k++;
    if (k == sizeof audit_kinds / sizeof audit_kinds[0])
        return cli_usage("audit: unknown record kind '%s' (validation, result, incident)", argv[1]);
    const char *file = argc == 3 ? argv[2] : "-";
    char *text = cli_read_input(file, AUDIT_INPUT_LIMIT);
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
    char id[PERSISTOR_ID_MAX + 1];
    persistor_error err = {0};
    int32_t rc = persistor_audit_save(p, audit_kinds[k].kind, &in, id, &err);
    persistor_close(p);
    free(text);
    if (rc == PERSISTOR_NOT_STORED) {
        fprintf(stderr,
                "persistor: %s record %s was not stored: no adapter could take it and the "
                "collection is fail_open (see the *_persist_failed log line)\n",
                audit_kinds[k].collection, id);
        return CLI_EXIT_STORAGE;
    }
    if (rc != PERSISTOR_OK && rc != PERSISTOR_EXISTS)
        return cli_fail(rc, &err);
    puts(id);
    return CLI_EXIT_OK;
}
