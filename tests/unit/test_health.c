/*
 * test_health.c — persistor_health_check reports each adapter of the chain
 * with its status, latency, capabilities and own description, and never a
 * credential, whatever an adapter puts in its messages.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "persistor/persistor.h"
#include "unit_env.h"

typedef struct fixture {
    char dir[64];
    char config[128];
    persistor *p;
} fixture;

/* A chain of the secret-talking test adapter, then memory. */
static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    unit_env_plugins();
    setenv("PERSISTOR_LOG_LEVEL", "off", 1);
    unit_env_tmpdir(f->dir, sizeof f->dir, "health");
    snprintf(f->config, sizeof f->config, "%s/profiles.yaml", f->dir);
    FILE *out = fopen(f->config, "w");
    assert_non_null(out);
    fprintf(out,
            "profiles:\n"
            "  unit:\n"
            "    adapters:\n"
            "      - type: good\n"
            "        path: %s/talks_secrets.so\n"
            "      - type: memory\n",
            getenv("PERSISTOR_TEST_PLUGIN_DIR"));
    fclose(out);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    persistor_close(f->p);
    unlink(f->config);
    rmdir(f->dir);
    free(f);
    unsetenv("TP_PING_FAILS");
    return 0;
}

static void open_unit(fixture *f)
{
    persistor_open_options opts = {.struct_size = sizeof opts, .config_path = f->config,
                                   .profile = "unit"};
    persistor_error err = {0};
    if (persistor_open(&opts, &f->p, &err) != PERSISTOR_OK)
        fail_msg("open: %s", err.message);
}

static void test_health_lists_the_chain_with_each_adapter_s_description(void **state)
{
    fixture *f = *state;
    open_unit(f);
    persistor_health h;
    assert_int_equal(persistor_health_check(f->p, &h, NULL), PERSISTOR_OK);
    assert_int_equal(h.count, 2);
    assert_string_equal(h.adapters[0].label, "good#0");
    assert_int_equal(h.adapters[0].status, PERSISTOR_OK);
    assert_non_null(strstr(h.adapters[0].detail, "TestDB 1.0 at mongodb://admin:***@db1:27017"));
    assert_null(strstr(h.adapters[0].detail, "hunter2"));
    assert_string_equal(h.adapters[1].label, "memory#1");
    assert_string_equal(h.adapters[1].detail, ""); /* memory has no describe slot */
    persistor_health_free(&h);
}

static void test_a_failing_ping_is_reported_without_the_password(void **state)
{
    fixture *f = *state;
    open_unit(f);
    setenv("TP_PING_FAILS", "1", 1);
    persistor_health h;
    assert_int_equal(persistor_health_check(f->p, &h, NULL), PERSISTOR_OK);
    assert_int_equal(h.adapters[0].status, PERSISTOR_E_UNAVAILABLE);
    assert_non_null(strstr(h.adapters[0].message, "mongodb://admin:***@db1:27017"));
    assert_null(strstr(h.adapters[0].message, "hunter2"));
    assert_string_equal(h.adapters[0].detail, ""); /* not asked of a store that is down */
    persistor_health_free(&h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_health_lists_the_chain_with_each_adapter_s_description, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failing_ping_is_reported_without_the_password,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
