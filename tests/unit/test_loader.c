/*
 * test_loader.c — the loader refuses each kind of bad plugin, naming the
 * file and the reason, and finds good ones in the documented order.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "host.h"
#include "loader.h"

static const char *plugin_dir(void)
{
    const char *dir = getenv("PERSISTOR_TEST_PLUGIN_DIR");
    assert_non_null(dir);
    return dir;
}

static void plugin_path(const char *variant, char *out, size_t cap)
{
    snprintf(out, cap, "%s/%s.so", plugin_dir(), variant);
}

/* Load `variant`.so under type `type`, expecting `rc` and `needle` in the
 * message (and the file's path, which every refusal must name). */
static void expect_refusal(const char *variant, const char *type, int32_t rc, const char *needle)
{
    char path[4096];
    plugin_path(variant, path, sizeof path);
    loader_module *m = NULL;
    persistor_error err = {0};
    assert_int_equal(loader_acquire(type, path, NULL, host_default(), &m, &err), rc);
    assert_null(m);
    if (strstr(err.message, needle) == NULL || strstr(err.message, variant) == NULL)
        fail_msg("message \"%s\" lacks \"%s\" or the file name", err.message, needle);
}

static void test_missing_file_is_refused_naming_it(void **state)
{
    (void)state;
    expect_refusal("does_not_exist", "good", PERSISTOR_E_CONFIG, "no such file");
}

static void test_missing_entry_symbol_is_refused(void **state)
{
    (void)state;
    expect_refusal("no_entry", "good", PERSISTOR_E_ABI, "no symbol persistor_adapter_entry");
}

static void test_entry_returning_null_is_refused(void **state)
{
    (void)state;
    expect_refusal("null_table", "good", PERSISTOR_E_ABI, "returned no adapter table");
}

static void test_other_abi_major_is_refused(void **state)
{
    (void)state;
    expect_refusal("wrong_major", "good", PERSISTOR_E_ABI,
                   "written for ABI 2, this persistor speaks ABI 1");
}

static void test_table_shorter_than_required_part_is_refused(void **state)
{
    (void)state;
    expect_refusal("short_table", "good", PERSISTOR_E_ABI, "smaller than ABI 1's required part");
}

static void test_null_required_slot_is_refused_naming_the_slot(void **state)
{
    (void)state;
    expect_refusal("null_slot", "good", PERSISTOR_E_ABI, "required slot 'query' is NULL");
}

static void test_adapter_name_other_than_type_is_refused(void **state)
{
    (void)state;
    expect_refusal("wrong_name", "good", PERSISTOR_E_CONFIG,
                   "calls itself \"impostor\" but the profile asks for type \"good\"");
}

static void test_option_named_like_a_profile_key_is_refused(void **state)
{
    (void)state;
    expect_refusal("reserved_option", "good", PERSISTOR_E_ABI,
                   "declares an option named 'path', which a profile entry uses itself");
}

static void test_failing_module_init_is_refused(void **state)
{
    (void)state;
    expect_refusal("init_fails", "good", PERSISTOR_E_CONFIG,
                   "module_init failed: the test library refuses to start");
}

static void copy_file(const char *from, const char *to, mode_t mode)
{
    FILE *in = fopen(from, "rb");
    FILE *out = fopen(to, "wb");
    assert_non_null(in);
    assert_non_null(out);
    char buf[65536];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, in)) > 0)
        assert_int_equal(fwrite(buf, 1, n, out), n);
    fclose(in);
    fclose(out);
    assert_int_equal(chmod(to, mode), 0);
}

/* A private copy of good.so in a fresh directory of the given modes. */
static void make_private_copy(char *dir, size_t dir_cap, char *path, size_t path_cap,
                              mode_t file_mode)
{
    char good[4096];
    snprintf(dir, dir_cap, "/tmp/persistor-loader-XXXXXX");
    assert_non_null(mkdtemp(dir));
    plugin_path("good", good, sizeof good);
    snprintf(path, path_cap, "%s/good.so", dir);
    copy_file(good, path, file_mode);
}

static void remove_private_copy(const char *dir, const char *path)
{
    chmod(dir, 0700);
    unlink(path);
    rmdir(dir);
}

static void expect_path_refused(const char *path, const char *needle)
{
    loader_module *m = NULL;
    persistor_error err = {0};
    assert_int_equal(loader_acquire("good", path, NULL, host_default(), &m, &err),
                     PERSISTOR_E_CONFIG);
    if (strstr(err.message, needle) == NULL || strstr(err.message, path) == NULL)
        fail_msg("message \"%s\" lacks \"%s\" or %s", err.message, needle, path);
}

static void test_plugin_writable_by_group_is_refused(void **state)
{
    (void)state;
    char dir[64], path[128];
    make_private_copy(dir, sizeof dir, path, sizeof path, 0664);
    expect_path_refused(path, "writable by group or others (mode 664)");
    remove_private_copy(dir, path);
}

static void test_plugin_writable_by_others_is_refused(void **state)
{
    (void)state;
    char dir[64], path[128];
    make_private_copy(dir, sizeof dir, path, sizeof path, 0646);
    expect_path_refused(path, "writable by group or others (mode 646)");
    remove_private_copy(dir, path);
}

static void test_plugin_in_group_writable_directory_is_refused(void **state)
{
    (void)state;
    char dir[64], path[128];
    make_private_copy(dir, sizeof dir, path, sizeof path, 0644);
    assert_int_equal(chmod(dir, 0770), 0);
    expect_path_refused(path, "its directory");
    remove_private_copy(dir, path);
}

static void test_directory_instead_of_file_is_refused(void **state)
{
    (void)state;
    expect_path_refused(plugin_dir(), "not a regular file");
}

static void test_private_copy_with_safe_modes_loads(void **state)
{
    (void)state;
    char dir[64], path[128];
    make_private_copy(dir, sizeof dir, path, sizeof path, 0644);
    loader_module *m = NULL;
    persistor_error err = {0};
    assert_int_equal(loader_acquire("good", path, NULL, host_default(), &m, &err), PERSISTOR_OK);
    assert_string_equal(loader_adapter(m)->name, "good");
    loader_release(m);
    remove_private_copy(dir, path);
}

static void test_module_init_runs_once_for_a_no_unload_module(void **state)
{
    (void)state;
    char path[4096];
    plugin_path("init_once", path, sizeof path);
    loader_module *a = NULL, *b = NULL, *c = NULL;
    persistor_error err = {0};
    assert_int_equal(loader_acquire("good", path, NULL, host_default(), &a, &err), PERSISTOR_OK);
    assert_int_equal(loader_acquire("good", path, NULL, host_default(), &b, &err), PERSISTOR_OK);
    assert_ptr_equal(a, b); /* one module, two references */
    loader_release(a);
    loader_release(b);
    /* Its init would fail on a second run: loading again proves it did not. */
    assert_int_equal(loader_acquire("good", path, NULL, host_default(), &c, &err), PERSISTOR_OK);
    loader_release(c);
}

static void test_env_plugin_dir_beats_profile_plugin_dir(void **state)
{
    (void)state;
    loader_module *m = NULL;
    persistor_error err = {0};
    setenv("PERSISTOR_PLUGIN_DIR", plugin_dir(), 1);
    assert_string_equal(loader_plugin_dir("/nonexistent"), plugin_dir());
    assert_int_equal(loader_acquire("good", NULL, "/nonexistent", host_default(), &m, &err),
                     PERSISTOR_OK);
    loader_release(m);
    unsetenv("PERSISTOR_PLUGIN_DIR");
}

static void test_profile_plugin_dir_is_used_without_env(void **state)
{
    (void)state;
    loader_module *m = NULL;
    persistor_error err = {0};
    unsetenv("PERSISTOR_PLUGIN_DIR");
    assert_string_equal(loader_plugin_dir(plugin_dir()), plugin_dir());
    assert_int_equal(loader_acquire("good", NULL, plugin_dir(), host_default(), &m, &err),
                     PERSISTOR_OK);
    loader_release(m);
}

static void test_explicit_path_beats_every_directory(void **state)
{
    (void)state;
    char path[4096];
    plugin_path("good", path, sizeof path);
    loader_module *m = NULL;
    persistor_error err = {0};
    setenv("PERSISTOR_PLUGIN_DIR", "/nonexistent", 1);
    assert_int_equal(loader_acquire("good", path, "/also/nonexistent", host_default(), &m, &err),
                     PERSISTOR_OK);
    loader_release(m);
    unsetenv("PERSISTOR_PLUGIN_DIR");
}

static void test_default_dir_names_the_file_it_looked_for(void **state)
{
    (void)state;
    loader_module *m = NULL;
    persistor_error err = {0};
    unsetenv("PERSISTOR_PLUGIN_DIR");
    assert_int_equal(loader_acquire("no_such_adapter", NULL, NULL, host_default(), &m, &err),
                     PERSISTOR_E_CONFIG);
    assert_non_null(strstr(err.message, "no_such_adapter.so"));
    assert_non_null(strstr(err.message, loader_plugin_dir(NULL)));
}

static void test_memory_adapter_from_the_build_loads(void **state)
{
    (void)state;
    char path[4096];
    snprintf(path, sizeof path, "%s/lib/persistor/memory.so", getenv("PERSISTOR_BUILD_DIR"));
    loader_module *m = NULL;
    persistor_error err = {0};
    assert_int_equal(loader_acquire("memory", path, NULL, host_default(), &m, &err),
                     PERSISTOR_OK);
    assert_string_equal(loader_adapter(m)->name, "memory");
    assert_int_equal(loader_adapter(m)->abi_major, PERSISTOR_ABI_MAJOR);
    loader_release(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_file_is_refused_naming_it),
        cmocka_unit_test(test_missing_entry_symbol_is_refused),
        cmocka_unit_test(test_entry_returning_null_is_refused),
        cmocka_unit_test(test_other_abi_major_is_refused),
        cmocka_unit_test(test_table_shorter_than_required_part_is_refused),
        cmocka_unit_test(test_null_required_slot_is_refused_naming_the_slot),
        cmocka_unit_test(test_adapter_name_other_than_type_is_refused),
        cmocka_unit_test(test_option_named_like_a_profile_key_is_refused),
        cmocka_unit_test(test_failing_module_init_is_refused),
        cmocka_unit_test(test_plugin_writable_by_group_is_refused),
        cmocka_unit_test(test_plugin_writable_by_others_is_refused),
        cmocka_unit_test(test_plugin_in_group_writable_directory_is_refused),
        cmocka_unit_test(test_directory_instead_of_file_is_refused),
        cmocka_unit_test(test_private_copy_with_safe_modes_loads),
        cmocka_unit_test(test_module_init_runs_once_for_a_no_unload_module),
        cmocka_unit_test(test_env_plugin_dir_beats_profile_plugin_dir),
        cmocka_unit_test(test_profile_plugin_dir_is_used_without_env),
        cmocka_unit_test(test_explicit_path_beats_every_directory),
        cmocka_unit_test(test_default_dir_names_the_file_it_looked_for),
        cmocka_unit_test(test_memory_adapter_from_the_build_loads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
