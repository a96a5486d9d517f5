/*
 * test_profile.c — environment profiles: the shipped file, defaults,
 * interpolation, anchors and merges, and every error with the exact
 * file:line:column and key path a user would read.
 *
 * Each case writes its YAML to a temporary file, so the text and the
 * position it expects sit side by side.  Must not depend on the caller's
 * environment: every variable a case reads is set or unset by the case.
 */
#define _POSIX_C_SOURCE 200809L

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "profile.h"

/* ------------------------------------------------------------------------
 * Helpers
 * --------------------------------------------------------------------- */

static char *write_temp(const char *text, size_t len)
{
    const char *dir = getenv("TMPDIR");
    char *path = malloc(512);
    assert_non_null(path);
    snprintf(path, 512, "%s/persistor-profile-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

static void remove_temp(char *path)
{
    unlink(path);
    free(path);
}

/* Load `name` from `yaml`; the load must succeed. */
static profile *load_ok(const char *yaml, const char *name)
{
    char *path = write_temp(yaml, strlen(yaml));
    profile *p = NULL;
    persistor_error err = {0};
    int32_t rc = profile_load(path, name, &p, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("profile_load: %d %s", rc, err.message);
    assert_non_null(p);
    assert_string_equal(p->file, path);
    remove_temp(path);
    return p;
}

/* Load `yaml`; it must fail with `code` and "<file>:<where_what>". */
static void expect_error_code(const char *yaml, int32_t code, const char *where_what)
{
    char *path = write_temp(yaml, strlen(yaml));
    profile *p = (profile *)(uintptr_t)1;
    persistor_error err = {0};
    int32_t rc = profile_load(path, "test", &p, &err);
    char expected[1024];
    snprintf(expected, sizeof expected, "%s:%s", path, where_what);
    assert_string_equal(err.message, expected);
    assert_int_equal(rc, code);
    assert_int_equal(err.code, code);
    assert_null(p);
    remove_temp(path);
}

static void expect_error(const char *yaml, const char *where_what)
{
    expect_error_code(yaml, PERSISTOR_E_CONFIG, where_what);
}

/* Load `yaml` (any bytes); only OK or E_CONFIG may come back. */
static void expect_no_crash(const char *bytes, size_t len)
{
    char *path = write_temp(bytes, len);
    profile *p = NULL;
    persistor_error err = {0};
    int32_t rc = profile_load(path, "production", &p, &err);
    if (rc != PERSISTOR_OK && rc != PERSISTOR_E_CONFIG && rc != PERSISTOR_NOT_FOUND)
        fail_msg("unexpected %d: %s", rc, err.message);
    if (rc == PERSISTOR_E_CONFIG && strncmp(err.message, path, strlen(path)) != 0)
        fail_msg("message does not name the file: %s", err.message);
    profile_free(p);
    remove_temp(path);
}

static const char *option(const profile_adapter *a, const char *key)
{
    for (size_t i = 0; i < a->n_options; i++)
        if (strcmp(a->options[i].key, key) == 0)
            return a->options[i].value;
    return NULL;
}

static char *shipped_path(void)
{
    const char *src = getenv("PERSISTOR_SOURCE_DIR");
    char *path = malloc(1024);
    assert_non_null(path);
    snprintf(path, 1024, "%s/conf/profiles.yaml", src && *src ? src : ".");
    return path;
}

static void unset_mongodb_env(void)
{
    unsetenv("MONGODB_URI");
    unsetenv("MONGODB_DATABASE");
    unsetenv("MONGODB_COLLECTION");
}

static char *read_all(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(1 << 16);
    assert_non_null(buf);
    *len = fread(buf, 1, 1 << 16, f);
    fclose(f);
    return buf;
}

#define MINIMAL "profiles:\n  test:\n    adapters:\n      - type: memory\n"

/* ------------------------------------------------------------------------
 * The shipped profiles
 * --------------------------------------------------------------------- */

static void test_shipped_file_lists_profiles_in_file_order(void **state)
{
    (void)state;
    unset_mongodb_env();
    char *path = shipped_path();
    profile **all = NULL;
    size_t n = 0;
    persistor_error err = {0};
    int32_t rc = profile_load_all(path, &all, &n, &err);
    if (rc != PERSISTOR_OK)
        fail_msg("%s", err.message);
    assert_int_equal(n, 3);
    assert_string_equal(all[0]->name, "development");
    assert_string_equal(all[1]->name, "test");
    assert_string_equal(all[2]->name, "production");
    profile_free_all(all, n);
    free(path);
}

static void test_shipped_development_uses_sqlite_then_memory_with_a_day_of_snapshots(void **state)
{
    (void)state;
    unset_mongodb_env();
    unsetenv("PERSISTOR_DATA_DIR");
    char *path = shipped_path();
    profile *p = NULL;
    persistor_error err = {0};
    assert_int_equal(profile_load(path, "development", &p, &err), PERSISTOR_OK);
    assert_string_equal(p->name, "development");
    assert_int_equal(p->n_adapters, 2);
    assert_string_equal(p->adapters[0].type, "sqlite");
    assert_null(p->adapters[0].path);
    assert_string_equal(option(&p->adapters[0], "file"), "./var/persistor.sqlite");
    assert_string_equal(option(&p->adapters[0], "synchronous"), "full");
    assert_string_equal(p->adapters[0].options[0].key_path, "development.adapters[0].file");
    assert_ptr_equal(p->adapters[0].mark.file, p->file);
    assert_string_equal(p->adapters[1].type, "memory");
    assert_string_equal(option(&p->adapters[1], "max_items"), "100000");
    assert_int_equal(p->retry.max_attempts, 3);
    assert_int_equal(p->retry.initial_interval_ms, 1000);
    assert_true(p->retry.backoff_coefficient == 2.0);
    assert_int_equal(p->retry.max_interval_ms, 60000);
    assert_int_equal(p->collections[PROFILE_COLL_SNAPSHOTS].ttl_seconds, 86400);
    assert_string_equal(p->collections[PROFILE_COLL_SNAPSHOTS].name, "snapshots");
    profile_free(p);

    /* PERSISTOR_DATA_DIR moves the file. */
    setenv("PERSISTOR_DATA_DIR", "/home/dev/.local/share/persistor", 1);
    assert_int_equal(profile_load(path, "development", &p, &err), PERSISTOR_OK);
    assert_string_equal(option(&p->adapters[0], "file"),
                        "/home/dev/.local/share/persistor/persistor.sqlite");
    profile_free(p);
    unsetenv("PERSISTOR_DATA_DIR");
    free(path);
}

static void test_shipped_test_profile_merges_the_shared_retry_block(void **state)
{
    (void)state;
    char *path = shipped_path();
    profile *p = NULL;
    persistor_error err = {0};
    assert_int_equal(profile_load(path, "test", &p, &err), PERSISTOR_OK);
    assert_string_equal(p->adapters[0].type, "memory");
    assert_int_equal(p->retry.max_attempts, 3);
    assert_int_equal(p->retry.initial_interval_ms, 10);
    assert_int_equal(p->retry.max_interval_ms, 100);
    assert_true(p->retry.backoff_coefficient == 2.0);
    profile_free(p);
    free(path);
}

static void test_shipped_production_uses_mongodb_then_lmdb_with_defaults(void **state)
{
    (void)state;
    unset_mongodb_env();
    char *path = shipped_path();
    profile *p = NULL;
    persistor_error err = {0};
    assert_int_equal(profile_load(path, "production", &p, &err), PERSISTOR_OK);
    assert_int_equal(p->n_adapters, 2);
    const profile_adapter *m = &p->adapters[0];
    assert_string_equal(m->type, "mongodb");
    assert_string_equal(m->key_path, "production.adapters[0]");
    assert_string_equal(option(m, "uri"), "mongodb://localhost:27017");
    assert_string_equal(option(m, "database"), "kodus");
    assert_string_equal(option(m, "max_pool_size"), "20");
    assert_string_equal(option(m, "server_selection_timeout_ms"), "5000");
    assert_string_equal(option(m, "connect_timeout_ms"), "10000");
    assert_string_equal(option(m, "socket_timeout_ms"), "45000");
    assert_int_equal(m->n_options, 6);
    assert_string_equal(p->adapters[1].type, "lmdb");
    assert_string_equal(option(&p->adapters[1], "directory"), "/var/lib/persistor/fallback.lmdb");
    assert_int_equal(p->retry.max_attempts, 3);
    assert_int_equal(p->retry.max_interval_ms, 60000);
    const profile_collection *s = &p->collections[PROFILE_COLL_SNAPSHOTS];
    assert_string_equal(s->name, "snapshots");
    assert_int_equal(s->ttl_seconds, 604800);
    assert_int_equal(s->on_failure, PROFILE_FAIL_CLOSED);
    assert_string_equal(p->collections[PROFILE_COLL_INCIDENTS].name, "incidents");
    assert_int_equal(p->collections[PROFILE_COLL_INCIDENTS].on_failure, PROFILE_FAIL_OPEN);
    profile_free(p);
    free(path);
}

static void test_shipped_production_takes_mongodb_settings_from_environment(void **state)
{
    (void)state;
    setenv("MONGODB_URI", "mongodb://db.internal:27017/?replicaSet=rs0", 1);
    setenv("MONGODB_DATABASE", "kodus_prod", 1);
    setenv("MONGODB_COLLECTION", "kernel_snapshots", 1);
    char *path = shipped_path();
    profile *p = NULL;
    persistor_error err = {0};
    assert_int_equal(profile_load(path, "production", &p, &err), PERSISTOR_OK);
    assert_string_equal(option(&p->adapters[0], "uri"),
                        "mongodb://db.internal:27017/?replicaSet=rs0");
    assert_string_equal(option(&p->adapters[0], "database"), "kodus_prod");
    assert_string_equal(p->collections[PROFILE_COLL_SNAPSHOTS].name, "kernel_snapshots");
    profile_free(p);
    free(path);
    unset_mongodb_env();
}

/* Every prefix of the shipped file, and the file with bytes spoiled:
 * each load ends in OK or a positioned error, never a crash or a leak. */
static void test_truncated_or_spoiled_shipped_file_never_crashes(void **state)
{
    (void)state;
    unset_mongodb_env();
    char *path = shipped_path();
    size_t len = 0;
    char *text = read_all(path, &len);
    for (size_t cut = 0; cut < len; cut += 3)
        expect_no_crash(text, cut);
    static const char junk[] = {':', '[', '{', '&', '*', '\0', '\t', '"', '$', (char)0xff};
    for (size_t at = 0; at < len; at += 11) {
        char saved = text[at];
        text[at] = junk[at % sizeof junk];
        expect_no_crash(text, len);
        text[at] = saved;
    }
    free(text);
    free(path);
}

/* ------------------------------------------------------------------------
 * Defaults
 * --------------------------------------------------------------------- */

static void test_minimal_profile_gets_default_retry_and_collections(void **state)
{
    (void)state;
    profile *p = load_ok(MINIMAL, "test");
    assert_null(p->description);
    assert_null(p->plugin_dir);
    assert_int_equal(p->n_adapters, 1);
    assert_int_equal(p->adapters[0].n_options, 0);
    assert_int_equal(p->adapters[0].mark.line, 4);
    assert_int_equal(p->adapters[0].mark.column, 9);
    assert_int_equal(p->adapters[0].type_mark.line, 4);
    assert_int_equal(p->adapters[0].type_mark.column, 15);
    assert_int_equal(p->retry.max_attempts, 3);
    assert_int_equal(p->retry.initial_interval_ms, 1000);
    assert_true(p->retry.backoff_coefficient == 2.0);
    assert_int_equal(p->retry.max_interval_ms, 60000);
    for (int k = 0; k < PROFILE_COLL_COUNT; k++) {
        assert_string_equal(p->collections[k].name,
                            profile_collection_key((profile_collection_kind)k));
        assert_int_equal(p->collections[k].ttl_seconds, 0);
        assert_int_equal(p->collections[k].on_failure,
                         k == PROFILE_COLL_SNAPSHOTS ? PROFILE_FAIL_CLOSED : PROFILE_FAIL_OPEN);
    }
    profile_free(p);
}

static void test_collection_keys_are_named_in_enum_order(void **state)
{
    (void)state;
    assert_string_equal(profile_collection_key(PROFILE_COLL_SNAPSHOTS), "snapshots");
    assert_string_equal(profile_collection_key(PROFILE_COLL_VALIDATION_AUDIT), "validation_audit");
    assert_string_equal(profile_collection_key(PROFILE_COLL_WORKFLOW_RESULTS), "workflow_results");
    assert_string_equal(profile_collection_key(PROFILE_COLL_INCIDENTS), "incidents");
    assert_string_equal(profile_collection_key(PROFILE_COLL_TELEMETRY_BUFFER), "telemetry_buffer");
    assert_null(profile_collection_key(PROFILE_COLL_COUNT));
}

static void test_every_field_can_be_set(void **state)
{
    (void)state;
    profile *p = load_ok("version: 1\n"
                         "profiles:\n"
                         "  test:\n"
                         "    description: Everything set\n"
                         "    plugin_dir: /opt/persistor/plugins\n"
                         "    adapters:\n"
                         "      - type: sqlite\n"
                         "        path: /opt/persistor/plugins/sqlite.so\n"
                         "        file: /var/lib/persistor.db\n"
                         "        busy_timeout_ms: \"250\"\n"
                         "      - {type: memory}\n"
                         "    retry:\n"
                         "      max_attempts: 5\n"
                         "      initial_interval_ms: 200\n"
                         "      backoff_coefficient: 1.5\n"
                         "      max_interval_ms: 200\n"
                         "    collections:\n"
                         "      incidents: {name: inc, ttl_seconds: +30, on_failure: fail_closed}\n"
                         "      telemetry_buffer:\n"
                         "      snapshots: ~\n",
                         "test");
    assert_string_equal(p->description, "Everything set");
    assert_string_equal(p->plugin_dir, "/opt/persistor/plugins");
    assert_int_equal(p->n_adapters, 2);
    const profile_adapter *a = &p->adapters[0];
    assert_string_equal(a->type, "sqlite");
    assert_string_equal(a->path, "/opt/persistor/plugins/sqlite.so");
    assert_int_equal(a->n_options, 2);
    assert_string_equal(a->options[0].key, "file");
    assert_string_equal(a->options[0].value, "/var/lib/persistor.db");
    assert_string_equal(a->options[1].key_path, "test.adapters[0].busy_timeout_ms");
    assert_string_equal(a->options[1].value, "250");
    assert_int_equal(a->options[1].mark.line, 10);
    assert_int_equal(a->options[1].mark.column, 26);
    assert_ptr_equal(a->options[1].mark.file, p->file);
    assert_string_equal(p->adapters[1].type, "memory");
    assert_string_equal(p->adapters[1].key_path, "test.adapters[1]");
    assert_int_equal(p->retry.max_attempts, 5);
    assert_int_equal(p->retry.initial_interval_ms, 200);
    assert_true(p->retry.backoff_coefficient == 1.5);
    assert_int_equal(p->retry.max_interval_ms, 200);
    const profile_collection *inc = &p->collections[PROFILE_COLL_INCIDENTS];
    assert_string_equal(inc->name, "inc");
    assert_int_equal(inc->ttl_seconds, 30);
    assert_int_equal(inc->on_failure, PROFILE_FAIL_CLOSED);
    assert_string_equal(p->collections[PROFILE_COLL_TELEMETRY_BUFFER].name, "telemetry_buffer");
    assert_string_equal(p->collections[PROFILE_COLL_SNAPSHOTS].name, "snapshots");
    profile_free(p);
}

/* ------------------------------------------------------------------------
 * Interpolation
 * --------------------------------------------------------------------- */

static void test_interpolation_replaces_set_unset_and_empty_variables(void **state)
{
    (void)state;
    setenv("PTEST_SET", "value", 1);
    unsetenv("PTEST_UNSET");
    setenv("PTEST_EMPTY", "", 1);
    profile *p = load_ok(MINIMAL "        a: ${PTEST_SET}\n"
                                 "        b: x-${PTEST_UNSET:-fallback}-y\n"
                                 "        c: ${PTEST_EMPTY:-fallback}\n"
                                 "        d: '${PTEST_EMPTY}'\n"
                                 "        e: ${PTEST_SET:-unused}${PTEST_SET}\n"
                                 "        f: \"${PTEST_UNSET:-}\"\n",
                         "test");
    const profile_adapter *a = &p->adapters[0];
    assert_string_equal(option(a, "a"), "value");
    assert_string_equal(option(a, "b"), "x-fallback-y");
    assert_string_equal(option(a, "c"), "fallback");
    assert_string_equal(option(a, "d"), "");
    assert_string_equal(option(a, "e"), "valuevalue");
    assert_string_equal(option(a, "f"), "");
    profile_free(p);
    unsetenv("PTEST_SET");
    unsetenv("PTEST_EMPTY");
}

static void test_double_dollar_is_a_literal_dollar_and_lone_dollar_stays(void **state)
{
    (void)state;
    profile *p = load_ok(MINIMAL "        password: pa$$word\n"
                                 "        literal: $${NOT_A_VAR}\n"
                                 "        lone: cost$5 and $\n",
                         "test");
    assert_string_equal(option(&p->adapters[0], "password"), "pa$word");
    assert_string_equal(option(&p->adapters[0], "literal"), "${NOT_A_VAR}");
    assert_string_equal(option(&p->adapters[0], "lone"), "cost$5 and $");
    profile_free(p);
}

static void test_interpolation_happens_before_type_conversion(void **state)
{
    (void)state;
    unsetenv("PTEST_TTL");
    setenv("PTEST_ATTEMPTS", "7", 1);
    profile *p = load_ok(MINIMAL "    retry: {max_attempts: \"${PTEST_ATTEMPTS}\"}\n"
                                 "    collections:\n"
                                 "      snapshots: {ttl_seconds: '${PTEST_TTL:-86400}'}\n",
                         "test");
    assert_int_equal(p->retry.max_attempts, 7);
    assert_int_equal(p->collections[PROFILE_COLL_SNAPSHOTS].ttl_seconds, 86400);
    profile_free(p);
    unsetenv("PTEST_ATTEMPTS");
}

static void test_keys_are_not_interpolated(void **state)
{
    (void)state;
    profile *p = load_ok(MINIMAL "        ${NOT_A_VAR}: x\n", "test");
    assert_string_equal(p->adapters[0].options[0].key, "${NOT_A_VAR}");
    profile_free(p);
}

static void test_undefined_variable_reports_line_and_column(void **state)
{
    (void)state;
    unsetenv("MONGODB_URI");
    expect_error("profiles:\n"
                 "  test:\n"
                 "    adapters:\n"
                 "      - type: mongodb\n"
                 "        uri: ${MONGODB_URI}\n",
                 "5:14: test.adapters[0].uri: undefined variable ${MONGODB_URI} "
                 "(set it, or write ${MONGODB_URI:-default})");
}

static void test_unterminated_variable_reports_line_and_column(void **state)
{
    (void)state;
    expect_error(MINIMAL "        uri: \"mongodb://${HOST\"\n",
                 "5:14: test.adapters[0].uri: unterminated ${HOST (add the closing })");
    expect_error(MINIMAL "        uri: ${HOST:-localhost\n",
                 "5:14: test.adapters[0].uri: unterminated ${HOST:-... (add the closing })");
}

static void test_malformed_variable_name_reports_line_and_column(void **state)
{
    (void)state;
    expect_error(MINIMAL "        uri: ${1HOST}\n",
                 "5:14: test.adapters[0].uri: malformed ${...}: a variable name is letters, "
                 "digits and _, not starting with a digit (write $$ for a literal $)");
    expect_error(MINIMAL "        uri: ${HOST-x}\n",
                 "5:14: test.adapters[0].uri: malformed ${HOST...}: expected } or :- after "
                 "the name");
    expect_error(MINIMAL "        uri: ${A:-${B}}\n",
                 "5:14: test.adapters[0].uri: a default inside ${A:-...} cannot hold another ${}");
}

/* ------------------------------------------------------------------------
 * Anchors, aliases and merge keys
 * --------------------------------------------------------------------- */

static void test_alias_shares_a_whole_block_between_profiles(void **state)
{
    (void)state;
    const char *yaml = "profiles:\n"
                       "  development:\n"
                       "    adapters: &chain\n"
                       "      - {type: memory, max_items: 5}\n"
                       "    retry: &retry {max_attempts: 9, initial_interval_ms: 5}\n"
                       "  test:\n"
                       "    adapters: *chain\n"
                       "    retry: *retry\n";
    profile *p = load_ok(yaml, "test");
    assert_string_equal(p->adapters[0].type, "memory");
    assert_string_equal(option(&p->adapters[0], "max_items"), "5");
    assert_string_equal(p->adapters[0].key_path, "test.adapters[0]");
    assert_int_equal(p->adapters[0].mark.line, 4);
    assert_int_equal(p->retry.max_attempts, 9);
    assert_int_equal(p->retry.initial_interval_ms, 5);
    assert_int_equal(p->retry.max_interval_ms, 60000);
    profile_free(p);
}

static void test_merge_key_explicit_keys_win_and_first_merged_map_wins(void **state)
{
    (void)state;
    const char *yaml = "profiles:\n"
                       "  test:\n"
                       "    adapters:\n"
                       "      - &base {type: mongodb, uri: a, database: d1}\n"
                       "      - &extra {type: memory, database: d2, max_items: 7}\n"
                       "      - database: mine\n"
                       "        <<: [*base, *extra]\n"
                       "    retry:\n"
                       "      max_attempts: 4\n"
                       "      <<: {max_attempts: 1, max_interval_ms: 5000}\n";
    profile *p = load_ok(yaml, "test");
    assert_int_equal(p->n_adapters, 3);
    const profile_adapter *a = &p->adapters[2];
    assert_string_equal(a->type, "mongodb");
    assert_string_equal(option(a, "uri"), "a");
    assert_string_equal(option(a, "database"), "mine");
    assert_string_equal(option(a, "max_items"), "7");
    assert_int_equal(a->n_options, 3);
    assert_int_equal(p->retry.max_attempts, 4);
    assert_int_equal(p->retry.max_interval_ms, 5000);
    profile_free(p);
}

static void test_merged_mapping_may_itself_merge(void **state)
{
    (void)state;
    const char *yaml = "profiles:\n"
                       "  development:\n"
                       "    adapters: [{type: memory}]\n"
                       "    retry: &a {max_attempts: 2}\n"
                       "    collections:\n"
                       "      incidents: &b {<<: *a, max_attempts: 3}\n";
    /* retry keys under a collection: the merge is resolved, then checked. */
    expect_error(yaml, "6:30: development.collections.incidents.max_attempts: unknown key "
                       "(expected one of: name, ttl_seconds, on_failure)");
    const char *ok = "profiles:\n"
                     "  test:\n"
                     "    adapters: [{type: memory}]\n"
                     "    collections:\n"
                     "      incidents: &a {ttl_seconds: 5}\n"
                     "      snapshots: &b {<<: *a, name: snaps}\n"
                     "      workflow_results: {<<: *b}\n";
    profile *p = load_ok(ok, "test");
    assert_string_equal(p->collections[PROFILE_COLL_WORKFLOW_RESULTS].name, "snaps");
    assert_int_equal(p->collections[PROFILE_COLL_WORKFLOW_RESULTS].ttl_seconds, 5);
    profile_free(p);
}

static void test_undefined_alias_reports_line_and_column(void **state)
{
    (void)state;
    expect_error(MINIMAL "    retry: *nothing\n",
                 "5:12: undefined alias *nothing (define &nothing before using it)");
}

static void test_alias_inside_its_own_anchor_is_refused(void **state)
{
    (void)state;
    expect_error(MINIMAL "    retry: &loop\n      <<: *loop\n",
                 "6:11: alias *loop is used inside the node it names");
}

static void test_merge_of_a_scalar_is_an_error(void **state)
{
    (void)state;
    expect_error(MINIMAL "    retry:\n      <<: fast\n",
                 "6:11: test.retry.<<: expected a mapping or a sequence of mappings to merge, "
                 "got \"fast\"");
}

static void test_alias_bomb_is_refused_quickly(void **state)
{
    (void)state;
    const char *yaml = "profiles:\n"
                       "  test:\n"
                       "    adapters: [{type: memory}]\n"
                       "    retry:\n"
                       "      <<: [&a {x0: 0, x1: 1, x2: 2, x3: 3, x4: 4, x5: 5, x6: 6, x7: 7},\n"
                       "           &b {<<: [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]},\n"
                       "           &c {<<: [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]},\n"
                       "           &d {<<: [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]},\n"
                       "           &e {<<: [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]},\n"
                       "           &f {<<: [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]},\n"
                       "           &g {<<: [*f,*f,*f,*f,*f,*f,*f,*f,*f,*f]},\n"
                       "           &h {<<: [*g,*g,*g,*g,*g,*g,*g,*g,*g,*g]}]\n";
    char *path = write_temp(yaml, strlen(yaml));
    profile *p = NULL;
    persistor_error err = {0};
    assert_int_equal(profile_load(path, "test", &p, &err), PERSISTOR_E_CONFIG);
    assert_non_null(strstr(err.message, "aliases and merges expand to too much"));
    remove_temp(path);
}

/* ------------------------------------------------------------------------
 * Errors, each with its position and key path
 * --------------------------------------------------------------------- */

static void test_malformed_yaml_reports_libyaml_problem_and_position(void **state)
{
    (void)state;
    expect_error("profiles:\n"
                 "  test:\n"
                 "    adapters: [{type: memory}\n"
                 "    retry: {}\n",
                 "4:5: invalid YAML: did not find expected ',' or ']' "
                 "(while parsing a flow sequence at 3:15)");
    expect_error("profiles:\n  test: x\n   bad: y\n",
                 "3:7: invalid YAML: mapping values are not allowed in this context");
}

static void test_invalid_utf8_reports_line_and_column(void **state)
{
    (void)state;
    expect_error("profiles:\n  te\xff" "st: {}\n",
                 "2:5: invalid YAML: invalid leading UTF-8 octet");
}

static void test_unknown_top_level_key_reports_line_and_column(void **state)
{
    (void)state;
    expect_error(MINIMAL "profile:\n",
                 "5:1: profile: unknown key (expected one of: version, profiles)");
}

static void test_unknown_key_in_profile_reports_line_and_column(void **state)
{
    (void)state;
    expect_error("profiles:\n"
                 "  test:\n"
                 "    adapters: [{type: memory}]\n"
                 "    retyr: {}\n",
                 "4:5: test.retyr: unknown key (expected one of: description, plugin_dir, "
                 "adapters, retry, collections)");
}

static void test_unknown_key_in_retry_reports_line_and_column(void **state)
{
    (void)state;
    expect_error(MINIMAL "    retry:\n      max_attempts: 2\n      max_atempts: 3\n",
                 "7:7: test.retry.max_atempts: unknown key (expected one of: max_attempts, "
                 "initial_interval_ms, backoff_coefficient, max_interval_ms)");
}

static void test_unknown_collection_name_reports_line_and_column(void **state)
{
    (void)state;
    expect_error(MINIMAL "    collections:\n      snapshot: {}\n",
                 "6:7: test.collections.snapshot: unknown collection (expected one of: "
                 "snapshots, validation_audit, workflow_results, incidents, telemetry_buffer)");
}

static void test_unknown_key_in_collection_entry_reports_line_and_column(void **state)
{
    (void)state;
    expect_error(MINIMAL "    collections:\n      incidents:\n        ttl: 5\n",
                 "7:9: test.collections.incidents.ttl: unknown key (expected one of: name, "
                 "ttl_seconds, on_failure)");
}

static void test_wrong_type_reports_value_position_and_text(void **state)
{
    (void)state;
    expect_error(MINIMAL "    retry:\n      max_attempts: fast\n",
                 "6:21: test.retry.max_attempts: expected an integer, got \"fast\"");
    expect_error(MINIMAL "    retry:\n      max_attempts: 3x\n",
                 "6:21: test.retry.max_attempts: expected an integer, got \"3x\"");
    expect_error(MINIMAL "    retry:\n      max_attempts:\n",
                 "6:20: test.retry.max_attempts: expected an integer, got \"\"");
    expect_error(MINIMAL "    retry:\n      backoff_coefficient: double\n",
                 "6:28: test.retry.backoff_coefficient: expected a number, got \"double\"");
    expect_error(MINIMAL "    retry:\n      backoff_coefficient: nan\n",
                 "6:28: test.retry.backoff_coefficient: expected a number, got \"nan\"");
    expect_error(MINIMAL "    collections:\n      snapshots: {ttl_seconds: 1 day}\n",
                 "6:32: test.collections.snapshots.ttl_seconds: expected an integer, "
                 "got \"1 day\"");
}

static void test_mapping_where_a_scalar_belongs_is_a_type_error(void **state)
{
    (void)state;
    expect_error(MINIMAL "    description: {a: 1}\n",
                 "5:18: test.description: expected a scalar, got a mapping");
    expect_error(MINIMAL "        uri: [a, b]\n",
                 "5:14: test.adapters[0].uri: expected a single value for adapter option "
                 "\"uri\", got a sequence");
}

static void test_scalar_where_a_collection_belongs_is_a_type_error(void **state)
{
    (void)state;
    expect_error("profiles:\n  test:\n    adapters: memory\n",
                 "3:15: test.adapters: expected a sequence of adapters, got \"memory\"");
    expect_error(MINIMAL "    retry: 3\n", "5:12: test.retry: expected a mapping, got \"3\"");
    expect_error("profiles:\n  test:\n    adapters: [memory]\n",
                 "3:16: test.adapters[0]: expected a mapping with a type: key, got \"memory\"");
    expect_error("- profiles\n",
                 "1:1: expected a mapping with a profiles: key, got a sequence");
}

static void test_out_of_range_numbers_are_refused(void **state)
{
    (void)state;
    expect_error(MINIMAL "    retry: {max_attempts: 0}\n",
                 "5:27: test.retry.max_attempts: must be at least 1, got 0");
    expect_error(MINIMAL "    retry: {initial_interval_ms: 4294967296}\n",
                 "5:34: test.retry.initial_interval_ms: must be at most 4294967295, "
                 "got 4294967296");
    expect_error(MINIMAL "    retry: {backoff_coefficient: 0.5}\n",
                 "5:34: test.retry.backoff_coefficient: must be at least 1.0, got 0.5");
    expect_error(MINIMAL "    collections: {incidents: {ttl_seconds: -1}}\n",
                 "5:44: test.collections.incidents.ttl_seconds: must be at least 0, got -1");
    expect_error(MINIMAL "    collections: {incidents: {ttl_seconds: 99999999999999999999}}\n",
                 "5:44: test.collections.incidents.ttl_seconds: must be at most "
                 "9223372036854775807, got 99999999999999999999");
}

static void test_max_interval_below_initial_is_refused(void **state)
{
    (void)state;
    expect_error(MINIMAL "    retry:\n      initial_interval_ms: 500\n      max_interval_ms: 100\n",
                 "7:24: test.retry.max_interval_ms: max_interval_ms (100) must be at least "
                 "initial_interval_ms (500)");
    expect_error(MINIMAL "    retry:\n      initial_interval_ms: 70000\n",
                 "6:28: test.retry.initial_interval_ms: max_interval_ms (60000) must be at "
                 "least initial_interval_ms (70000)");
}

static void test_missing_adapters_reports_profile_position(void **state)
{
    (void)state;
    expect_error("profiles:\n  test:\n    description: no chain\n",
                 "3:5: test.adapters: required key is missing");
    expect_error("profiles:\n  test:\n", "2:8: test.adapters: required key is missing");
    expect_error("profiles:\n  test:\n    adapters: []\n",
                 "3:15: test.adapters: at least one adapter is required");
}

static void test_missing_adapter_type_reports_entry_position(void **state)
{
    (void)state;
    expect_error("profiles:\n  test:\n    adapters:\n      - uri: x\n",
                 "4:9: test.adapters[0].type: required key is missing (e.g. type: memory)");
    expect_error("profiles:\n  test:\n    adapters:\n      - type: ''\n",
                 "4:15: test.adapters[0].type: must not be empty");
}

static void test_bad_on_failure_reports_line_and_column(void **state)
{
    (void)state;
    expect_error(MINIMAL "    collections:\n      incidents:\n        on_failure: ignore\n",
                 "7:21: test.collections.incidents.on_failure: expected fail_closed or "
                 "fail_open, got \"ignore\"");
}

static void test_duplicate_key_reports_second_occurrence(void **state)
{
    (void)state;
    expect_error(MINIMAL "    retry:\n      max_attempts: 2\n      max_attempts: 3\n",
                 "7:7: test.retry.max_attempts: duplicate key (first at line 6)");
    expect_error(MINIMAL "  test:\n    adapters: [{type: memory}]\n",
                 "5:3: test: duplicate key (first at line 2)");
    expect_error(MINIMAL "        type: other\n",
                 "5:9: test.adapters[0].type: duplicate key (first at line 4)");
}

static void test_unsupported_version_is_refused(void **state)
{
    (void)state;
    expect_error("version: 2\n" MINIMAL,
                 "1:10: version: unsupported version 2 (this persistor reads version 1)");
}

static void test_empty_file_and_missing_profiles_report_position(void **state)
{
    (void)state;
    expect_error("", "1:1: empty file (expected a mapping with a profiles: key)");
    expect_error("# only a comment\n", "1:1: empty file (expected a mapping with a profiles: key)");
    expect_error("version: 1\n", "1:1: profiles: required key is missing");
    expect_error("profiles: {}\n",
                 "1:11: profiles: no profiles defined (expected e.g. development:)");
    expect_error("profiles:\n  test: {adapters: [{type: memory}]}\n---\nprofiles: {}\n",
                 "3:1: a second YAML document (one per file)");
}

static void test_deep_nesting_is_refused(void **state)
{
    (void)state;
    char yaml[512];
    size_t n = (size_t)snprintf(yaml, sizeof yaml, "profiles: ");
    for (int i = 0; i < 100; i++)
        yaml[n++] = '[';
    yaml[n] = '\0';
    expect_error(yaml, "1:74: nested deeper than 64 levels");
}

static void test_binary_junk_is_a_config_error(void **state)
{
    (void)state;
    static const char junk[] = "\x7f" "ELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x03\0>\0";
    expect_no_crash(junk, sizeof junk - 1);
    expect_no_crash("\0\0\0\0", 4);
    expect_no_crash("\xfe\xff\0p\0r", 6);
    expect_no_crash("profiles: &a [*a]\n", 18);
    expect_no_crash("? [a, b]\n: c\n", 13);
    expect_no_crash("profiles:\n  ? {a: b}\n  : {}\n", 28);
}

static void test_profile_not_found_lists_the_profiles(void **state)
{
    (void)state;
    const char *yaml = "profiles:\n"
                       "  development: {adapters: [{type: memory}]}\n"
                       "  test: {adapters: [{type: memory}]}\n"
                       "  production: {adapters: [{type: memory}]}\n";
    char *path = write_temp(yaml, strlen(yaml));
    profile *p = (profile *)(uintptr_t)1;
    persistor_error err = {0};
    assert_int_equal(profile_load(path, "prod", &p, &err), PERSISTOR_NOT_FOUND);
    assert_null(p);
    char expected[1024];
    snprintf(expected, sizeof expected,
             "%s: no profile \"prod\" (profiles: development, test, production)", path);
    assert_string_equal(err.message, expected);
    remove_temp(path);
}

static void test_error_in_another_profile_fails_the_load(void **state)
{
    (void)state;
    expect_error("profiles:\n"
                 "  test: {adapters: [{type: memory}]}\n"
                 "  production:\n"
                 "    adapters: [{type: mongodb, max_pool_size: 20}]\n"
                 "    retry: {max_attempts: many}\n",
                 "5:27: production.retry.max_attempts: expected an integer, got \"many\"");
}

static void test_missing_file_names_the_file_and_the_reason(void **state)
{
    (void)state;
    profile *p = (profile *)(uintptr_t)1;
    persistor_error err = {0};
    assert_int_equal(profile_load("/nonexistent/profiles.yaml", "test", &p, &err),
                     PERSISTOR_E_CONFIG);
    assert_null(p);
    assert_string_equal(err.message,
                        "/nonexistent/profiles.yaml: cannot open: No such file or directory");
    profile **all = (profile **)(uintptr_t)1;
    size_t n = 9;
    assert_int_equal(profile_load_all("/nonexistent/profiles.yaml", &all, &n, &err),
                     PERSISTOR_E_CONFIG);
    assert_null(all);
    assert_int_equal(n, 0);
}

static void test_directory_instead_of_file_is_a_config_error(void **state)
{
    (void)state;
    profile *p = NULL;
    persistor_error err = {0};
    assert_int_equal(profile_load("/", "test", &p, &err), PERSISTOR_E_CONFIG);
    assert_string_equal(err.message, "/: cannot read: Is a directory");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shipped_file_lists_profiles_in_file_order),
        cmocka_unit_test(test_shipped_development_uses_sqlite_then_memory_with_a_day_of_snapshots),
        cmocka_unit_test(test_shipped_test_profile_merges_the_shared_retry_block),
        cmocka_unit_test(test_shipped_production_uses_mongodb_then_lmdb_with_defaults),
        cmocka_unit_test(test_shipped_production_takes_mongodb_settings_from_environment),
        cmocka_unit_test(test_truncated_or_spoiled_shipped_file_never_crashes),
        cmocka_unit_test(test_minimal_profile_gets_default_retry_and_collections),
        cmocka_unit_test(test_collection_keys_are_named_in_enum_order),
        cmocka_unit_test(test_every_field_can_be_set),
        cmocka_unit_test(test_interpolation_replaces_set_unset_and_empty_variables),
        cmocka_unit_test(test_double_dollar_is_a_literal_dollar_and_lone_dollar_stays),
        cmocka_unit_test(test_interpolation_happens_before_type_conversion),
        cmocka_unit_test(test_keys_are_not_interpolated),
        cmocka_unit_test(test_undefined_variable_reports_line_and_column),
        cmocka_unit_test(test_unterminated_variable_reports_line_and_column),
        cmocka_unit_test(test_malformed_variable_name_reports_line_and_column),
        cmocka_unit_test(test_alias_shares_a_whole_block_between_profiles),
        cmocka_unit_test(test_merge_key_explicit_keys_win_and_first_merged_map_wins),
        cmocka_unit_test(test_merged_mapping_may_itself_merge),
        cmocka_unit_test(test_undefined_alias_reports_line_and_column),
        cmocka_unit_test(test_alias_inside_its_own_anchor_is_refused),
        cmocka_unit_test(test_merge_of_a_scalar_is_an_error),
        cmocka_unit_test(test_alias_bomb_is_refused_quickly),
        cmocka_unit_test(test_malformed_yaml_reports_libyaml_problem_and_position),
        cmocka_unit_test(test_invalid_utf8_reports_line_and_column),
        cmocka_unit_test(test_unknown_top_level_key_reports_line_and_column),
        cmocka_unit_test(test_unknown_key_in_profile_reports_line_and_column),
        cmocka_unit_test(test_unknown_key_in_retry_reports_line_and_column),
        cmocka_unit_test(test_unknown_collection_name_reports_line_and_column),
        cmocka_unit_test(test_unknown_key_in_collection_entry_reports_line_and_column),
        cmocka_unit_test(test_wrong_type_reports_value_position_and_text),
        cmocka_unit_test(test_mapping_where_a_scalar_belongs_is_a_type_error),
        cmocka_unit_test(test_scalar_where_a_collection_belongs_is_a_type_error),
        cmocka_unit_test(test_out_of_range_numbers_are_refused),
        cmocka_unit_test(test_max_interval_below_initial_is_refused),
        cmocka_unit_test(test_missing_adapters_reports_profile_position),
        cmocka_unit_test(test_missing_adapter_type_reports_entry_position),
        cmocka_unit_test(test_bad_on_failure_reports_line_and_column),
        cmocka_unit_test(test_duplicate_key_reports_second_occurrence),
        cmocka_unit_test(test_unsupported_version_is_refused),
        cmocka_unit_test(test_empty_file_and_missing_profiles_report_position),
        cmocka_unit_test(test_deep_nesting_is_refused),
        cmocka_unit_test(test_binary_junk_is_a_config_error),
        cmocka_unit_test(test_profile_not_found_lists_the_profiles),
        cmocka_unit_test(test_error_in_another_profile_fails_the_load),
        cmocka_unit_test(test_missing_file_names_the_file_and_the_reason),
        cmocka_unit_test(test_directory_instead_of_file_is_a_config_error),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
