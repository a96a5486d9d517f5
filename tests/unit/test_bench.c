/*
 * test_bench.c — `persistor bench` as a harness: the built command
 * ($PERSISTOR_CLI) on a tiny workload with the memory adapter, checked for
 * the shape of what it reports (every phase, positive rates, the workload
 * it was asked for) and for cleaning up after itself.  Speed is never
 * asserted here: a loaded CI machine must not fail the suite.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <bson/bson.h>
#include <dirent.h>
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct bench_run {
    int exit_code; /* -1 when the child did not exit normally */
    char *out;     /* stdout, NUL-terminated */
    size_t out_len;
} bench_run;

/* Run $PERSISTOR_CLI with `args` (NULL-terminated), stdout captured. */
static void run_bench(const char *const args[], bench_run *r)
{
    const char *cli = getenv("PERSISTOR_CLI");
    assert_non_null(cli);
    const char *argv[32] = {cli};
    size_t argc = 1;
    for (; args[argc - 1] != NULL && argc < 31; argc++)
        argv[argc] = args[argc - 1];
    argv[argc] = NULL;

    int fds[2];
    assert_int_equal(pipe(fds), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    pid_t pid;
    int rc = posix_spawn(&pid, cli, &fa, NULL, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(fds[1]);
    assert_int_equal(rc, 0);

    size_t cap = 4096;
    r->out = malloc(cap);
    r->out_len = 0;
    assert_non_null(r->out);
    for (;;) {
        if (cap - r->out_len < 1024) {
            cap *= 2;
            r->out = realloc(r->out, cap);
            assert_non_null(r->out);
        }
        ssize_t got = read(fds[0], r->out + r->out_len, cap - r->out_len - 1);
        if (got <= 0)
            break;
        r->out_len += (size_t)got;
    }
    r->out[r->out_len] = '\0';
    close(fds[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static double doc_number(const bson_t *doc, const char *path)
{
    bson_iter_t it, found;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &found))
        fail_msg("the report has no %s", path);
    if (!BSON_ITER_HOLDS_NUMBER(&found))
        fail_msg("%s is not a number", path);
    return bson_iter_as_double(&found);
}

static const char *doc_string(const bson_t *doc, const char *path)
{
    bson_iter_t it, found;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &found) ||
        !BSON_ITER_HOLDS_UTF8(&found))
        fail_msg("the report has no string %s", path);
    return bson_iter_utf8(&found, NULL);
}

static void test_bench_json_reports_every_phase_with_positive_rates(void **state)
{
    (void)state;
    const char *const args[] = {"bench",    "--adapters", "memory", "--contexts", "20",
                                "--per-context", "3",     "--single", "10",     "--repeat",
                                "1",        "--json",     NULL};
    bench_run r;
    run_bench(args, &r);
    assert_int_equal(r.exit_code, 0);
    bson_error_t error;
    bson_t *doc = bson_new_from_json((const uint8_t *)r.out, (ssize_t)r.out_len, &error);
    if (doc == NULL)
        fail_msg("not JSON (%s): %s", error.message, r.out);

    assert_int_equal((int)doc_number(doc, "snapshots"), 60);
    assert_int_equal((int)doc_number(doc, "contexts"), 20);
    assert_int_equal((int)doc_number(doc, "per_context"), 3);
    assert_int_equal((int)doc_number(doc, "single"), 10);
    assert_int_equal((int)doc_number(doc, "repeat"), 1);
    assert_true(doc_number(doc, "doc_bytes") > 900);
    assert_true(doc_number(doc, "doc_bytes") < 1300);
    assert_string_equal(doc_string(doc, "adapters.0.adapter"), "memory");

    static const char *const phases[] = {"append_1", "append_1000", "has", "load"};
    static const int ops[] = {10, 60, 60, 20};
    for (int i = 0; i < 4; i++) {
        char path[96];
        snprintf(path, sizeof path, "adapters.0.phases.%d.phase", i);
        assert_string_equal(doc_string(doc, path), phases[i]);
        snprintf(path, sizeof path, "adapters.0.phases.%d.ops", i);
        assert_int_equal((int)doc_number(doc, path), ops[i]);
        snprintf(path, sizeof path, "adapters.0.phases.%d.persistor.ops_per_s", i);
        assert_true(doc_number(doc, path) > 0);
        snprintf(path, sizeof path, "adapters.0.phases.%d.persistor.us_per_op", i);
        assert_true(doc_number(doc, path) > 0);
    }
    bson_destroy(doc);
    free(r.out);
}

static void test_bench_table_names_the_workload(void **state)
{
    (void)state;
    const char *const args[] = {"bench",  "--adapters", "memory", "--contexts", "5",
                                "--per-context", "2", "--single", "3", "--repeat", "1", NULL};
    bench_run r;
    run_bench(args, &r);
    assert_int_equal(r.exit_code, 0);
    assert_non_null(strstr(r.out, "persistor bench: 10 snapshots of ~"));
    assert_non_null(strstr(r.out, " in 5 contexts; seed 1; median of 1"));
    assert_non_null(strstr(r.out, "append x1000"));
    free(r.out);
}

static void test_bench_refuses_bad_options_with_exit_2(void **state)
{
    (void)state;
    const char *const zero[] = {"bench", "--adapters", "memory", "--contexts", "0", NULL};
    const char *const name[] = {"bench", "--adapters", "mem/ory", NULL};
    const char *const unknown[] = {"bench", "--fast", NULL};
    const char *const *cases[] = {zero, name, unknown};
    for (size_t i = 0; i < 3; i++) {
        bench_run r;
        run_bench(cases[i], &r);
        assert_int_equal(r.exit_code, 2);
        assert_int_equal(r.out_len, 0);
        free(r.out);
    }
}

static bool dir_is_empty(const char *path)
{
    DIR *d = opendir(path);
    assert_non_null(d);
    struct dirent *e;
    bool empty = true;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            empty = false;
    closedir(d);
    return empty;
}

static void test_bench_leaves_its_dir_empty_even_when_an_adapter_fails(void **state)
{
    (void)state;
    char dir[] = "/tmp/test_bench_XXXXXX";
    assert_non_null(mkdtemp(dir));
    const char *const ok[] = {"bench", "--adapters", "memory", "--contexts", "3",
                              "--single", "2", "--repeat", "1", "--dir", dir, NULL};
    const char *const missing[] = {"bench", "--adapters", "memory,nosuchadapter", "--contexts",
                                   "3", "--single", "2", "--repeat", "1", "--dir", dir, NULL};
    bench_run r;
    run_bench(ok, &r);
    assert_int_equal(r.exit_code, 0);
    assert_true(dir_is_empty(dir));
    free(r.out);

    /* A named adapter that will not open is an error, not a skip. */
    run_bench(missing, &r);
    assert_int_equal(r.exit_code, 3);
    assert_true(dir_is_empty(dir));
    free(r.out);
    assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bench_json_reports_every_phase_with_positive_rates),
        cmocka_unit_test(test_bench_table_names_the_workload),
        cmocka_unit_test(test_bench_refuses_bad_options_with_exit_2),
        cmocka_unit_test(test_bench_leaves_its_dir_empty_even_when_an_adapter_fails),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
