/*
 * cmd_query.c — `persistor query` and `persistor count` on any collection
 * of the profile, and the printing every command that lists records or
 * groups shares (cli_print_records, cli_print_groups).
 *
 * stdout is data only (one JSON line per record or group, or a number);
 * warnings and errors go to stderr.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

/* ------------------------------------------------------------------ */
/* Shared with the other commands (cli.h)                             */

bool cli_parse_digits(const char *text, uint64_t *out)
{
    /* Digits only: strtoull would take "-1" or " 5" as a number. */
    char *end = NULL;
    errno = 0;
    unsigned long long v = text[0] >= '0' && text[0] <= '9' ? strtoull(text, &end, 10) : 0;
    if (end == NULL || errno != 0 || *end != '\0')
        return false;
    *out = (uint64_t)v;
    return true;
}

int cli_parse_limit(const char *option, const char *text, uint64_t *out)
{
    if (!cli_parse_digits(text, out))
        return cli_usage("%s expects a number of records (0: no limit), got '%s'", option, text);
    return CLI_EXIT_OK;
}

int cli_print_records(persistor_record_iter *it)
{
    if (persistor_record_iter_degraded(it))
        cli_warn_degraded(NULL);
    const uint8_t *doc;
    uint32_t len;
    persistor_error err = {0};
    int32_t rc;
    size_t n = 0;
    while ((rc = persistor_record_iter_next(it, &doc, &len, &err)) == PERSISTOR_OK) {
        char *json = persistor_record_to_json(doc, len);
        if (json == NULL) {
            fprintf(stderr, "persistor: record %zu of the answer cannot be printed as JSON "
                            "(not valid BSON or UTF-8)\n",
                    n);
            persistor_record_iter_free(it);
            return CLI_EXIT_STORAGE;
        }
        puts(json);
        persistor_free(json);
        n++;
    }
    persistor_record_iter_free(it);
    return rc == PERSISTOR_ITER_END ? CLI_EXIT_OK : cli_fail(rc, &err);
}

int cli_print_groups(const persistor_group_list *list)
{
    if (list->degraded)
        cli_warn_degraded(NULL);
    for (size_t i = 0; i < list->count; i++)
        printf("{\"_id\": %s, \"total\": %" PRIu64 "}\n", list->items[i].key_json,
               list->items[i].total);
    return CLI_EXIT_OK;
}

/* ------------------------------------------------------------------ */
/* query and count                                                    */

/* What `query` and `count` were asked; `sort` is split into opts. */
typedef struct query_args {
    const char *collection;
    persistor_find_options opts;
    const char *group_by; /* count only */
} query_args;

/* FIELD, FIELD:asc or FIELD:desc into opts. */
static int query_parse_sort(const char *text, persistor_find_options *opts, char **field)
{
    const char *colon = strrchr(text, ':');
    opts->sort_descending = colon != NULL && strcmp(colon, ":desc") == 0;
    if (colon != NULL && strcmp(colon, ":desc") != 0 && strcmp(colon, ":asc") != 0)
        return cli_usage("--sort expects FIELD, FIELD:asc or FIELD:desc, got '%s'", text);
    size_t len = colon != NULL ? (size_t)(colon - text) : strlen(text);
    if (len == 0)
        return cli_usage("--sort expects FIELD, FIELD:asc or FIELD:desc, got '%s'", text);
    *field = strndup(text, len);
    if (*field == NULL) {
        fprintf(stderr, "persistor: out of memory\n");
        return CLI_EXIT_STORAGE;
    }
    opts->sort_field = *field;
    return CLI_EXIT_OK;
}

/* `argv[0] COLLECTION [options]`; query takes --sort and --limit, count
 * takes --group-by.  *sort_field (caller frees) backs opts.sort_field. */
static int query_parse(int argc, char **argv, bool is_count, query_args *a, char **sort_field)
{
    const char *cmd = argv[0], *sort = NULL, *limit = NULL;
    *a = (query_args){.opts = {.struct_size = sizeof a->opts}};
    *sort_field = NULL;
    for (int i = 1; i < argc;) {
        int took;
        if ((took = cli_take_value(argc, argv, &i, "--filter", &a->opts.filter_json)) ||
            (!is_count && (took = cli_take_value(argc, argv, &i, "--sort", &sort))) ||
            (!is_count && (took = cli_take_value(argc, argv, &i, "--limit", &limit))) ||
            (is_count && (took = cli_take_value(argc, argv, &i, "--group-by", &a->group_by)))) {
            if (took < 0)
                return CLI_EXIT_USAGE;
            continue;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return cli_usage("%s: unknown option %s", cmd, argv[i]);
        if (a->collection != NULL)
            return cli_usage("%s: one collection only (got '%s' and '%s')", cmd, a->collection,
                             argv[i]);
        a->collection = argv[i++];
    }
    if (a->collection == NULL)
        return cli_usage("%s: expects a COLLECTION (validation_audit, workflow_results, "
                         "incidents, telemetry_buffer, snapshots)",
                         cmd);
    int code = CLI_EXIT_OK;
    if (limit != NULL)
        code = cli_parse_limit("--limit", limit, &a->opts.limit);
    if (code == CLI_EXIT_OK && sort != NULL)
        code = query_parse_sort(sort, &a->opts, sort_field);
    return code;
}

int cmd_query(const cli_globals *g, int argc, char **argv)
{
    query_args a;
    char *sort_field;
    persistor *p = NULL;
    int code = query_parse(argc, argv, false, &a, &sort_field);
    if (code == CLI_EXIT_OK)
        code = cli_open(g, &p);
    if (code == CLI_EXIT_OK) {
        persistor_record_iter *it;
        persistor_error err = {0};
        int32_t rc = persistor_find(p, a.collection, &a.opts, &it, &err);
        code = rc == PERSISTOR_OK ? cli_print_records(it) : cli_fail(rc, &err);
        persistor_close(p);
    }
    free(sort_field);
    return code;
}

static int count_groups(persistor *p, const query_args *a)
{
    persistor_group_list groups;
    persistor_error err = {0};
    int32_t rc = persistor_count_by(p, a->collection, &a->opts, a->group_by, &groups, &err);
    if (rc != PERSISTOR_OK)
        return cli_fail(rc, &err);
    int code = cli_print_groups(&groups);
    persistor_group_list_free(&groups);
    return code;
}

static int count_all(persistor *p, const query_args *a)
{
    uint64_t n;
    int32_t degraded = 0;
    persistor_error err = {0};
    int32_t rc = persistor_count(p, a->collection, &a->opts, &n, &degraded, &err);
    if (rc != PERSISTOR_OK)
        return cli_fail(rc, &err);
    if (degraded)
        cli_warn_degraded(NULL);
    printf("%" PRIu64 "\n", n);
    return CLI_EXIT_OK;
}

int cmd_count(const cli_globals *g, int argc, char **argv)
{
    query_args a;
    char *no_sort; /* count takes no --sort: always NULL */
    persistor *p;
    int code = query_parse(argc, argv, true, &a, &no_sort);
    if (code != CLI_EXIT_OK || (code = cli_open(g, &p)) != CLI_EXIT_OK)
        return code;
    code = a.group_by != NULL ? count_groups(p, &a) : count_all(p, &a);
    persistor_close(p);
    return code;
}
