/*
 * harness.h — what every conformance case shares: the adapter under test
 * (from the command line), a freshly opened instance per case, and small
 * helpers that speak the ABI with documents written as JSON.
 *
 * The suite talks to the adapter only through include/persistor/adapter.h,
 * the way libpersistor does, so any adapter can be run against it.  JSON in
 * the cases uses single quotes (turned into double quotes before parsing)
 * and MongoDB's canonical Extended JSON for dates and int64.
 */
#ifndef PERSISTOR_CONFORMANCE_HARNESS_H
#define PERSISTOR_CONFORMANCE_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <bson/bson.h>

#include "config.h"
#include "loader.h"
#include "persistor/adapter.h"
#include "profile.h"

/* A date in the cases' JSON: D(1000) is 1970-01-01T00:00:01Z. */
#define D(ms) "{'$date': {'$numberLong': '" #ms "'}}"

/* One case's world.  `param` is the row of a table-driven case. */
typedef struct conf_fixture {
    persistor_host *host;
    int64_t now_ms; /* what host->now_ms answers; cases move it */
    loader_module *module;
    const persistor_adapter *adapter;
    profile_adapter entry; /* the options, {tmpdir} expanded */
    persistor_config *config;
    persistor_instance *inst;
    char tmpdir[4096];
    const void *param;
    /* ensure_collection's specs must outlive the instance (adapter.h). */
    persistor_collection_spec specs[16];
    size_t n_specs;
} conf_fixture;

/* Read -t/-o/ADAPTER.so and the PERSISTOR_CONFORMANCE_* variables.
 * Returns 0, or prints the usage and returns 2. */
int conf_parse_args(int argc, char **argv, const char **test_filter);
const char *conf_adapter_type(void);

/* cmocka setup/teardown: an opened instance in *state (a conf_fixture). */
int conf_setup(void **state);
int conf_teardown(void **state);

/* Keep a copy of `spec` as long as the fixture lives, as adapter.h asks of
 * the host; its strings and index arrays must be static already. */
const persistor_collection_spec *conf_keep_spec(conf_fixture *f, persistor_collection_spec spec);

/* Open one more instance on the fixture's config (caller closes it). */
int32_t conf_open(conf_fixture *f, persistor_instance **out, persistor_error *err);

/* Parse the single-quoted JSON of a case; fails the case if it is bad. */
bson_t *conf_json(const char *json);

/* Fail the case unless rc == want, showing the error message. */
#define conf_expect(rc, want, err) conf_expect_at((rc), (want), (err), __FILE__, __LINE__)
void conf_expect_at(int32_t rc, int32_t want, const persistor_error *err, const char *file,
                    int line);

/* ensure_collection with no index and no TTL. */
void conf_ensure(conf_fixture *f, const char *collection);

/* One write of `kind` of `doc` (its "_id" names it); the op's result. */
int32_t conf_put(conf_fixture *f, const char *collection, uint32_t kind, const bson_t *doc);
/* The same from JSON. */
int32_t conf_put_json(conf_fixture *f, const char *collection, uint32_t kind, const char *json);
int32_t conf_delete(conf_fixture *f, const char *collection, const char *id);

/* get() into a fresh bson_t (caller destroys), or NULL on NOT_FOUND;
 * any other answer fails the case. */
bson_t *conf_get(conf_fixture *f, const char *collection, const char *id);
/* The stored document is byte for byte `want`. */
void conf_assert_stored(conf_fixture *f, const char *collection, const bson_t *want);
void conf_assert_absent(conf_fixture *f, const char *collection, const char *id);

/* Run a query (filter/sort as case JSON or NULL) and return the _ids of
 * the answer joined by ',' (caller frees).  With sorted_set the ids are
 * sorted first, for queries whose order MongoDB leaves unspecified.
 * On an error returns NULL with *rc and *err set. */
char *conf_query_ids(conf_fixture *f, const char *collection, const char *filter,
                     const char *sort, uint64_t skip, uint64_t limit, int sorted_set,
                     int32_t *rc, persistor_error *err);

/* Grouped counts the way the host answers them: through the adapter's
 * group_count slot when it has one, else core/group.c over a query on it
 * (what router_group_count does).  `filter` is case JSON or NULL.  On OK,
 * *out is the answer {groups: [...]} (caller destroys); otherwise *out is
 * NULL and err says why. */
int32_t conf_group_count(conf_fixture *f, const char *collection, const char *filter,
                         const char *field, bson_t **out, persistor_error *err);
/* Fail the case unless the grouped counts are `want` (case JSON, e.g.
 * "{'groups': [{'_id': null, 'total': 2}]}"): the same groups in the same
 * order with values equal in MongoDB's sense (1 == 1.0 == 1L), every group
 * exactly {_id, total} with total an int64. */
void conf_assert_groups(conf_fixture *f, const char *collection, const char *filter,
                        const char *field, const char *want);

/* The case lists. */
extern const struct CMUnitTest conf_crud_tests[];
extern const size_t conf_n_crud_tests;
extern const struct CMUnitTest conf_data_tests[];
extern const size_t conf_n_data_tests;
extern const struct CMUnitTest conf_version_tests[];
extern const size_t conf_n_version_tests;
extern const struct CMUnitTest conf_group_tests[];
extern const size_t conf_n_group_tests;
/* Table-driven query cases, expanded into one cmocka test per row. */
size_t conf_query_tests(struct CMUnitTest **out);

#endif
