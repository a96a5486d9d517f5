/*
 * main.c — persistor-conformance: run the whole contract of adapter.h
 * against any adapter shared object.
 *
 *     persistor-conformance [-t TYPE] [-o KEY=VALUE]... [-f PATTERN] ADAPTER.so
 *
 * Every adapter we ship must pass it unchanged; a third-party author runs
 * it on theirs.  Exit status: 0 when every case passed (skips included).
 */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* cases_durable.c: run only for adapters with PERSISTOR_CAP_DURABLE. */
extern const struct CMUnitTest conf_durable_tests[];
extern const size_t conf_n_durable_tests;

int main(int argc, char **argv)
{
    const char *filter;
    struct CMUnitTest *query = NULL;
    int rc = conf_parse_args(argc, argv, &filter);
    if (rc != 0)
        return rc;
    size_t n_query = conf_query_tests(&query);
    size_t n = conf_n_crud_tests + conf_n_data_tests + conf_n_version_tests + conf_n_group_tests +
               n_query + conf_n_durable_tests;
    struct CMUnitTest *all = calloc(n, sizeof *all);
    if (all == NULL || query == NULL) {
        fprintf(stderr, "persistor-conformance: out of memory\n");
        return 1;
    }
    struct CMUnitTest *at = all;
    memcpy(at, conf_crud_tests, conf_n_crud_tests * sizeof *all);
    memcpy(at += conf_n_crud_tests, conf_data_tests, conf_n_data_tests * sizeof *all);
    memcpy(at += conf_n_data_tests, conf_version_tests, conf_n_version_tests * sizeof *all);
    memcpy(at += conf_n_version_tests, conf_group_tests, conf_n_group_tests * sizeof *all);
    memcpy(at += conf_n_group_tests, query, n_query * sizeof *all);
    memcpy(at += n_query, conf_durable_tests, conf_n_durable_tests * sizeof *all);
    if (filter != NULL)
        cmocka_set_test_filter(filter);
    char group[256];
    snprintf(group, sizeof group, "conformance of %s", conf_adapter_type());
    rc = _cmocka_run_group_tests(group, all, n, NULL, NULL);
    free(all);
    free(query);
    return rc;
}
