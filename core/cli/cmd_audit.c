/*
 * cmd_audit.c — `persistor audit validation|result|incident [FILE|-]`:
 * save one audit record from a JSON object (a file, or stdin), print its
 * id; and `persistor audit REPORT ...`: the seed's operator queries, printed
 * as JSON lines by cmd_query.c's printers.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

typedef struct audit_kind_entry {
    const char *name;
    persistor_audit_kind kind;
    const char *what;         /* in the NOT_STORED message */
    const char *failed_event; /* the log line that says why */
} audit_kind_entry;

static const audit_kind_entry audit_kinds[] = {
    {"validation", PERSISTOR_AUDIT_VALIDATION, "validation_audit record",
     "validation_audit_persist_failed"},
    {"result", PERSISTOR_AUDIT_WORKFLOW_RESULT, "workflow_results record",
     "workflow_result_persist_failed"},
    {"incident", PERSISTOR_AUDIT_INCIDENT, "incidents record", "incident_persist_failed"},
};

/* ------------------------------------------------------------------ */
/* The seed's reports                                                 */

/* A report of records: `arg` is its one argument (NULL if it takes none). */
typedef int32_t (*audit_records_fn)(persistor *p, const char *arg, uint64_t limit,
                                    persistor_record_iter **out, persistor_error *err);
typedef int32_t (*audit_groups_fn)(persistor *p, persistor_group_list *out,
                                   persistor_error *err);

static int32_t report_history(persistor *p, const char *plan_id, uint64_t limit,
                              persistor_record_iter **out, persistor_error *err)
{
    return persistor_audit_validation_history(p, plan_id, limit, out, err);
}

static int32_t report_status(persistor *p, const char *status, uint64_t limit,
                             persistor_record_iter **out, persistor_error *err)
{
    return persistor_audit_workflows_by_status(p, status, limit, out, err);
}

static int32_t report_sla(persistor *p, const char *arg, uint64_t limit,
                          persistor_record_iter **out, persistor_error *err)
{
    return persistor_audit_sla_violations(p, limit, out, err);
}

static int32_t report_critical(persistor *p, const char *arg, uint64_t limit,
                               persistor_record_iter **out, persistor_error *err)
{
    return persistor_audit_critical_incidents(p, limit, out, err);
}

typedef struct audit_report {
    const char *name;
    const char *arg;          /* "PLAN_ID", "STATUS", or NULL: none */
    uint64_t default_limit;   /* 0: every record */
    audit_records_fn records; /* one of records and groups */
    audit_groups_fn groups;
} audit_report;

static const audit_report audit_reports[] = {
    {"by-validity", NULL, 0, NULL, persistor_audit_validations_by_validity},
    {"history", "PLAN_ID", 0, report_history, NULL},
    {"status", "STATUS", 0, report_status, NULL},
    {"sla-violations", NULL, 0, report_sla, NULL},
    {"critical", NULL, 20, report_critical, NULL}, /* the seed's limit(20) */
    {"by-type", NULL, 0, NULL, persistor_audit_incidents_by_type},
};

static int report_usage(const audit_report *r)
{
    return cli_usage("audit %s: expects %s%s%s", r->name, r->arg != NULL ? r->arg : "",
                     r->arg != NULL && r->records != NULL ? " " : "",
                     r->records != NULL ? "[--limit N]" : "no arguments");
}

static int report_print(persistor *p, const audit_report *r, const char *arg, uint64_t limit)
{
    persistor_error err = {0};
    if (r->groups != NULL) {
        persistor_group_list groups;
        int32_t rc = r->groups(p, &groups, &err);
        if (rc != PERSISTOR_OK)
            return cli_fail(rc, &err);
        int code = cli_print_groups(&groups);
        persistor_group_list_free(&groups);
        return code;
    }
    persistor_record_iter *it;
    int32_t rc = r->records(p, arg, limit, &it, &err);
    if (rc != PERSISTOR_OK)
        return cli_fail(rc, &err);
    return cli_print_records(it);
}

static int report_run(const cli_globals *g, const audit_report *r, int argc, char **argv)
{
    const char *arg = NULL, *limit_text = NULL;
    for (int i = 1; i < argc;) {
        int took = r->records != NULL ? cli_take_value(argc, argv, &i, "--limit", &limit_text)
                                      : 0;
        if (took < 0)
            return CLI_EXIT_USAGE;
        if (took > 0)
            continue;
        if ((argv[i][0] == '-' && argv[i][1] != '\0') || r->arg == NULL || arg != NULL)
            return report_usage(r);
        arg = argv[i++];
    }
    if (r->arg != NULL && arg == NULL)
        return report_usage(r);
    uint64_t limit = r->default_limit;
    int code = limit_text != NULL ? cli_parse_limit("--limit", limit_text, &limit) : CLI_EXIT_OK;
    persistor *p;
    if (code != CLI_EXIT_OK || (code = cli_open(g, &p)) != CLI_EXIT_OK)
        return code;
    code = report_print(p, r, arg, limit);
    persistor_close(p);
    return code;
}

/* ------------------------------------------------------------------ */
/* Saving a record                                                    */

static int32_t audit_save_kind(persistor *p, const void *ctx, const persistor_record_input *in,
                               char id[PERSISTOR_ID_MAX + 1], persistor_error *err)
{
    return persistor_audit_save(p, ((const audit_kind_entry *)ctx)->kind, in, id, err);
}

static int audit_save(const cli_globals *g, size_t k, int argc, char **argv)
{
    if (argc > 3)
        return cli_usage("audit %s: expects [FILE|-]", argv[1]);
    const audit_kind_entry *e = &audit_kinds[k];
    return cli_save_record(g, argc == 3 ? argv[2] : "-", e->what, e->failed_event,
                           audit_save_kind, e);
}

int cmd_audit(const cli_globals *g, int argc, char **argv)
{
    if (argc < 2)
        return cli_usage("audit: expects validation|result|incident [FILE|-], or a report "
                         "(by-validity, history, status, sla-violations, critical, by-type)");
    for (size_t r = 0; r < sizeof audit_reports / sizeof audit_reports[0]; r++)
        if (strcmp(argv[1], audit_reports[r].name) == 0)
            return report_run(g, &audit_reports[r], argc - 1, argv + 1);
    for (size_t k = 0; k < sizeof audit_kinds / sizeof audit_kinds[0]; k++)
        if (strcmp(argv[1], audit_kinds[k].name) == 0)
            return audit_save(g, k, argc, argv);
    return cli_usage("audit: unknown record kind '%s' (validation, result, incident) or report "
                     "(by-validity, history, status, sla-violations, critical, by-type)",
                     argv[1]);
}
