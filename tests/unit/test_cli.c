/*
 * test_cli.c — the `persistor` command as a user runs it: the built binary
 * ($PERSISTOR_CLI) in a child process, with stdin fed and stdout and stderr
 * captured apart, against a profiles file written to a temporary directory.
 *
 * The profiles here use the memory adapter, which keeps nothing once the
 * process ends, so every test checks what one run shows: exit codes,
 * output, error messages with file:line:column.  The one round trip that
 * needs no second process is the hash: `snapshot append` must print the
 * SHA-256 that core/snapshot.c documents, recomputed here independently.
 * Tests that append in one run and read back in another belong to a
 * persistent adapter (sqlite); run_cli() is what they will call.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <bson/bson.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "persistor/persistor.h"
#include "sha256.h"

extern char **environ;

/* A child that runs longer than this is killed and the test fails. */
#define CLI_TIMEOUT_MS 60000
/* The CLI's input limit (cmd_snapshot.c) and the document limit. */
#define CLI_INPUT_LIMIT (16u * 1024u * 1024u)

/* ------------------------------------------------------------------ */
/* Running the command                                                */

/** What one run of the command did.  Free with cli_result_free. */
struct cli_result {
    int exit_code;  /* the exit status, or -1 when a signal ended the child */
    int signal;     /* the signal that ended it, or 0 */
    bool timed_out; /* killed after CLI_TIMEOUT_MS */
    char *out;      /* stdout, NUL-terminated */
    size_t out_len;
    char *err; /* stderr, NUL-terminated */
    size_t err_len;
};

static void cli_result_free(struct cli_result *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof *r);
}

typedef struct cli_buf {
    char *data;
    size_t len, cap;
} cli_buf;

/* Read what is there from `fd` into `b`; false at end of file or error. */
static bool cli_buf_read(cli_buf *b, int fd)
{
    if (b->cap - b->len < 4096) {
        size_t cap = b->cap * 2 + 8192;
        char *grown = realloc(b->data, cap);
        if (grown == NULL)
            return false;
        b->data = grown;
        b->cap = cap;
    }
    ssize_t got = read(fd, b->data + b->len, b->cap - b->len - 1);
    if (got < 0 && (errno == EINTR || errno == EAGAIN))
        return true;
    if (got <= 0)
        return false;
    b->len += (size_t)got;
    return true;
}

static int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool cli_pipe(int fds[2])
{
    if (pipe(fds) != 0)
        return false;
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    return true;
}

/* The child's environment: ours, without the variables that would pick
 * another profile behind the test's back, and with the log level given. */
static char **cli_environment(const char *log_level, char *level_var, size_t level_cap)
{
    size_t n = 0;
    while (environ[n] != NULL)
        n++;
    char **envp = calloc(n + 2, sizeof *envp);
    if (envp == NULL)
        return NULL;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (strncmp(environ[i], "PERSISTOR_LOG_LEVEL=", 20) == 0 ||
            strncmp(environ[i], "PERSISTOR_CONFIG=", 17) == 0 ||
            strncmp(environ[i], "PERSISTOR_PROFILE=", 18) == 0)
            continue;
        envp[k++] = environ[i];
    }
    snprintf(level_var, level_cap, "PERSISTOR_LOG_LEVEL=%s", log_level);
    envp[k] = level_var;
    return envp;
}

/* Feed `input` and collect both outputs until they close or time runs out. */
static void cli_exchange(pid_t pid, int in_fd, const char *input, size_t input_len, int out_fd,
                         int err_fd, struct cli_result *r, cli_buf *out, cli_buf *err)
{
    size_t written = 0;
    int64_t deadline = cli_now_ms() + CLI_TIMEOUT_MS;
    if (input_len == 0) {
        close(in_fd);
        in_fd = -1;
    } else {
        fcntl(in_fd, F_SETFL, fcntl(in_fd, F_GETFL) | O_NONBLOCK);
    }
    while (out_fd >= 0 || err_fd >= 0) {
        struct pollfd pfd[3] = {{.fd = in_fd, .events = POLLOUT},
                                {.fd = out_fd, .events = POLLIN},
                                {.fd = err_fd, .events = POLLIN}};
        int64_t left = deadline - cli_now_ms();
        if (left <= 0) {
            kill(pid, SIGKILL);
            r->timed_out = true;
            break;
        }
        if (poll(pfd, 3, (int)left) < 0 && errno != EINTR)
            break;
        if (in_fd >= 0 && (pfd[0].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t n = write(in_fd, input + written, input_len - written);
            if (n > 0)
                written += (size_t)n;
            /* EPIPE: the child stopped reading, which is its right. */
            if ((n < 0 && errno != EAGAIN && errno != EINTR) || written == input_len) {
                close(in_fd);
                in_fd = -1;
            }
        }
        if (out_fd >= 0 && (pfd[1].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !cli_buf_read(out, out_fd)) {
            close(out_fd);
            out_fd = -1;
        }
        if (err_fd >= 0 && (pfd[2].revents & (POLLIN | POLLHUP | POLLERR)) &&
            !cli_buf_read(err, err_fd)) {
            close(err_fd);
            err_fd = -1;
        }
    }
    if (in_fd >= 0)
        close(in_fd);
    if (out_fd >= 0)
        close(out_fd);
    if (err_fd >= 0)
        close(err_fd);
}

/*
 * Run `persistor` with `argv` (the arguments after the program name,
 * NULL-terminated), `input` (input_len bytes) on stdin, and
 * PERSISTOR_LOG_LEVEL=log_level.  Fills *r (free with cli_result_free);
 * returns false when the child could not be started.
 */
static bool run_cli_with(const char *input, size_t input_len, const char *log_level,
                         const char *const argv[], struct cli_result *r)
{
    memset(r, 0, sizeof *r);
    const char *cli = getenv("PERSISTOR_CLI");
    if (cli == NULL)
        return false;
    size_t argc = 0;
    while (argv[argc] != NULL)
        argc++;
    const char **full = calloc(argc + 2, sizeof *full);
    char level_var[64];
    char **envp = cli_environment(log_level, level_var, sizeof level_var);
    int in[2] = {-1, -1}, out[2] = {-1, -1}, err[2] = {-1, -1};
    posix_spawn_file_actions_t actions;
    bool started = false;
    pid_t pid;
    if (full == NULL || envp == NULL || !cli_pipe(in) || !cli_pipe(out) || !cli_pipe(err))
        goto done;
    full[0] = cli;
    memcpy(full + 1, argv, argc * sizeof *argv);

    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_adddup2(&actions, err[1], 2);
    started = posix_spawn(&pid, cli, &actions, NULL, (char *const *)full, envp) == 0;
    posix_spawn_file_actions_destroy(&actions);
    if (!started)
        goto done;
    close(in[0]);
    close(out[1]);
    close(err[1]);
    in[0] = out[1] = err[1] = -1;

    cli_buf bout = {0}, berr = {0};
    cli_exchange(pid, in[1], input, input_len, out[0], err[0], r, &bout, &berr);
    in[1] = out[0] = err[0] = -1; /* closed by cli_exchange */

    int status;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
        continue;
    r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r->signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
    r->out = bout.data != NULL ? bout.data : calloc(1, 1);
    r->out[bout.len] = '\0';
    r->out_len = bout.len;
    r->err = berr.data != NULL ? berr.data : calloc(1, 1);
    r->err[berr.len] = '\0';
    r->err_len = berr.len;
done:
    for (int i = 0; i < 2; i++) {
        if (in[i] >= 0)
            close(in[i]);
        if (out[i] >= 0)
            close(out[i]);
        if (err[i] >= 0)
            close(err[i]);
    }
    free(full);
    free(envp);
    return started;
}

/* Run with `stdin_text` (NULL: empty stdin) and logs off. */
static void run_cli(const char *stdin_text, const char *const argv[], struct cli_result *out)
{
    if (!run_cli_with(stdin_text, stdin_text != NULL ? strlen(stdin_text) : 0, "off", argv, out))
        fail_msg("could not start %s: %s", getenv("PERSISTOR_CLI"), strerror(errno));
    if (out->timed_out)
        fail_msg("persistor did not finish within %d s; stderr: %s", CLI_TIMEOUT_MS / 1000,
                 out->err);
    if (out->signal != 0)
        fail_msg("persistor was killed by signal %d; stderr: %s", out->signal, out->err);
}

/* ------------------------------------------------------------------ */
/* Fixture: a temporary directory with profiles and input files       */

static struct {
    char dir[4096];
    char config[4200];      /* three profiles, all memory but production */
    char bad_value[4200];   /* a profiles file with a wrong type at 7:21 */
    char bad_yaml[4200];    /* a profiles file that is not YAML */
    char content[4200];     /* a valid content document */
    char invalid[4200];     /* JSON with an error at 3:3 */
    char huge[4200];        /* over the input limit */
} fx;

static const char fx_profiles[] =
    "version: 1\n"
    "profiles:\n"
    "  development:\n"
    "    description: \"CLI tests: memory store\"\n"
    "    adapters:\n"
    "      - type: memory\n"
    "  test:\n"
    "    description: \"CLI tests: memory store, quick retries\"\n"
    "    adapters:\n"
    "      - type: memory\n"
    "    retry:\n"
    "      max_attempts: 2\n"
    "      initial_interval_ms: 1\n"
    "      backoff_coefficient: 2.0\n"
    "      max_interval_ms: 10\n"
    "  production:\n"
    "    description: \"CLI tests: MongoDB with a memory fallback, never opened\"\n"
    "    adapters:\n"
    "      - type: mongodb\n"
    "        uri: mongodb://localhost:27017\n"
    "        database: persistor_cli_test\n"
    "      - type: memory\n";

static const char fx_bad_value[] = "version: 1\n"
                                   "profiles:\n"
                                   "  development:\n"
                                   "    adapters:\n"
                                   "      - type: memory\n"
                                   "    retry:\n"
                                   "      max_attempts: many\n";

static const char fx_bad_yaml[] = "version: 1\n"
                                  "profiles:\n"
                                  "  development: [\n";

static const char fx_content[] =
    "{\"state\": {\"agent\": \"coder\", \"step\": 2, \"done\": false,\n"
    "           \"notes\": [\"read the ticket\", \"caf\\u00e9\"], \"ratio\": 0.5},\n"
    " \"events\": [{\"type\": \"step_completed\", \"step\": 2}],\n"
    " \"metadata\": {\"kernel\": \"cli-test\", \"big\": 5000000000, \"none\": null}}\n";

static const char fx_invalid[] = "{\n  \"a\": 1,\n  oops\n}\n";

static void fx_path(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", fx.dir, name);
}

static bool fx_write(const char *path, const char *text, size_t len)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL)
        return false;
    bool ok = fwrite(text, 1, len, f) == len;
    return fclose(f) == 0 && ok;
}

/* `{"a":"xxx..."}` of exactly `len` bytes: valid JSON of any size. */
static char *json_of_size(size_t len)
{
    char *text = malloc(len + 1);
    if (text == NULL)
        return NULL;
    memcpy(text, "{\"a\":\"", 6);
    memset(text + 6, 'x', len - 8);
    memcpy(text + len - 2, "\"}", 2);
    text[len] = '\0';
    return text;
}

static int fx_setup(void **state)
{
    (void)state;
    const char *cli = getenv("PERSISTOR_CLI");
    if (cli == NULL || access(cli, X_OK) != 0) {
        fprintf(stderr, "test_cli: PERSISTOR_CLI must name the built persistor binary "
                        "(run through ctest)\n");
        return -1;
    }
    signal(SIGPIPE, SIG_IGN); /* a child may stop reading its stdin early */
    const char *tmp = getenv("TMPDIR");
    snprintf(fx.dir, sizeof fx.dir, "%s/persistor-cli.XXXXXX", tmp != NULL && *tmp ? tmp : "/tmp");
    if (mkdtemp(fx.dir) == NULL)
        return -1;
    fx_path(fx.config, sizeof fx.config, "profiles.yaml");
    fx_path(fx.bad_value, sizeof fx.bad_value, "bad-value.yaml");
    fx_path(fx.bad_yaml, sizeof fx.bad_yaml, "bad-yaml.yaml");
    fx_path(fx.content, sizeof fx.content, "snap.json");
    fx_path(fx.invalid, sizeof fx.invalid, "invalid.json");
    fx_path(fx.huge, sizeof fx.huge, "huge.json");
    char *huge = json_of_size(CLI_INPUT_LIMIT + 1024);
    bool ok = huge != NULL && fx_write(fx.config, fx_profiles, sizeof fx_profiles - 1) &&
              fx_write(fx.bad_value, fx_bad_value, sizeof fx_bad_value - 1) &&
              fx_write(fx.bad_yaml, fx_bad_yaml, sizeof fx_bad_yaml - 1) &&
              fx_write(fx.content, fx_content, sizeof fx_content - 1) &&
              fx_write(fx.invalid, fx_invalid, sizeof fx_invalid - 1) &&
              fx_write(fx.huge, huge, CLI_INPUT_LIMIT + 1024);
    free(huge);
    return ok ? 0 : -1;
}

static int fx_teardown(void **state)
{
    (void)state;
    const char *files[] = {fx.config, fx.bad_value, fx.bad_yaml, fx.content, fx.invalid, fx.huge};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        unlink(files[i]);
    rmdir(fx.dir);
    return 0;
}

/* Arguments after the program name, with --config set to the fixture's. */
#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define CLI(...) ARGS("--config", fx.config, __VA_ARGS__)

/* ------------------------------------------------------------------ */
/* Assertions                                                         */

#define assert_contains(haystack, needle)                                                      \
    do {                                                                                       \
        if (strstr((haystack), (needle)) == NULL)                                              \
            fail_msg("expected \"%s\" in:\n%s", (needle), (haystack));                         \
    } while (0)

static void assert_exit(const struct cli_result *r, int code)
{
    if (r->exit_code != code)
        fail_msg("exit code %d, expected %d\nstdout: %s\nstderr: %s", r->exit_code, code,
                 r->out, r->err);
}

/* A usage error: exit 2, the hint, nothing on stdout. */
static void assert_usage_error(const struct cli_result *r, const char *message)
{
    assert_exit(r, 2);
    assert_contains(r->err, message);
    assert_contains(r->err, "Try 'persistor --help'");
    assert_string_equal(r->out, "");
}

/* Bad input: exit 2, the message, and no hash printed (nothing written). */
static void assert_rejected(const struct cli_result *r, const char *message)
{
    assert_exit(r, 2);
    assert_contains(r->err, message);
    assert_string_equal(r->out, "");
}

static bool is_hash_line(const char *text)
{
    if (strlen(text) != PERSISTOR_HASH_HEX_LEN + 1 || text[PERSISTOR_HASH_HEX_LEN] != '\n')
        return false;
    for (int i = 0; i < PERSISTOR_HASH_HEX_LEN; i++)
        if (strchr("0123456789abcdef", text[i]) == NULL)
            return false;
    return true;
}

/* Append `content` from stdin and return the hash it printed (static). */
static const char *append_hash(const char *content, const char *const argv[])
{
    static char hash[PERSISTOR_HASH_HEX_LEN + 1];
    struct cli_result r;
    run_cli(content, argv, &r);
    assert_exit(&r, 0);
    assert_string_equal(r.err, "");
    if (!is_hash_line(r.out))
        fail_msg("expected one 64-hex-digit line, got: %s", r.out);
    memcpy(hash, r.out, PERSISTOR_HASH_HEX_LEN);
    hash[PERSISTOR_HASH_HEX_LEN] = '\0';
    cli_result_free(&r);
    return hash;
}

/* Parse stdout as one JSON document (one line). */
static bson_t *stdout_json(const struct cli_result *r)
{
    assert_true(r->out_len > 0 && r->out[r->out_len - 1] == '\n');
    assert_null(memchr(r->out, '\n', r->out_len - 1));
    bson_error_t error;
    bson_t *doc = bson_new_from_json((const uint8_t *)r->out, (ssize_t)r->out_len - 1, &error);
    if (doc == NULL)
        fail_msg("stdout is not valid JSON (%s): %s", error.message, r->out);
    return doc;
}

static const char *json_utf8(const bson_t *doc, const char *path)
{
    bson_iter_t it, found;
    if (!bson_iter_init(&it, doc) || !bson_iter_find_descendant(&it, path, &found) ||
        !BSON_ITER_HOLDS_UTF8(&found))
        fail_msg("no string at %s", path);
    return bson_iter_utf8(&found, NULL);
}

/* ------------------------------------------------------------------ */
/* Global options                                                     */

static void test_version_prints_version_and_exits_0(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, ARGS("--version"), &r);
    assert_exit(&r, 0);
    assert_true(strncmp(r.out, "persistor 0.", 12) == 0);
    assert_contains(r.out, "adapter ABI");
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

static void test_help_lists_commands_and_exit_codes(void **state)
{
    (void)state;
    static const char *const flags[] = {"--help", "-h"};
    for (size_t i = 0; i < 2; i++) {
        struct cli_result r;
        run_cli(NULL, ARGS(flags[i]), &r);
        assert_exit(&r, 0);
        assert_contains(r.out, "usage: persistor");
        assert_contains(r.out, "snapshot append --xc ID");
        assert_contains(r.out, "Exit codes: 0 ok, 1 not found, 2 usage");
        assert_string_equal(r.err, "");
        cli_result_free(&r);
    }
}

static void test_unknown_command_exits_2_with_hint(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("frobnicate"), &r);
    assert_usage_error(&r, "unknown command 'frobnicate'");
    cli_result_free(&r);
}

static void test_unknown_option_exits_2_with_hint(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, ARGS("--frobnicate", "health"), &r);
    assert_usage_error(&r, "unknown option --frobnicate");
    cli_result_free(&r);
}

static void test_no_command_exits_2_with_hint(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, ARGS("--config", fx.config), &r);
    assert_usage_error(&r, "no command given");
    cli_result_free(&r);
}

static void test_option_without_its_value_exits_2(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, ARGS("--config"), &r);
    assert_usage_error(&r, "--config needs a value");
    cli_result_free(&r);
}

static void test_option_value_may_follow_an_equals_sign(void **state)
{
    (void)state;
    char config[4300];
    snprintf(config, sizeof config, "--config=%s", fx.config);
    struct cli_result r;
    run_cli(NULL, ARGS(config, "--profile=test", "health", "--json"), &r);
    assert_exit(&r, 0);
    bson_t *doc = stdout_json(&r);
    assert_string_equal(json_utf8(doc, "profile"), "test");
    bson_destroy(doc);
    cli_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* Profiles                                                           */

static void test_unknown_profile_exits_2_naming_it(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("--profile", "nosuch", "health"), &r);
    assert_exit(&r, 2);
    assert_contains(r.err, "\"nosuch\"");
    assert_contains(r.err, "development, test, production"); /* what there is instead */
    assert_string_equal(r.out, "");
    cli_result_free(&r);
}

static void test_malformed_profile_value_exits_2_with_file_line_column(void **state)
{
    (void)state;
    char want[4400];
    snprintf(want, sizeof want, "%s:7:21: development.retry.max_attempts", fx.bad_value);
    static const char *const commands[] = {"health", "profiles"};
    for (size_t i = 0; i < 2; i++) {
        struct cli_result r;
        run_cli(NULL, ARGS("--config", fx.bad_value, commands[i]), &r);
        assert_exit(&r, 2);
        assert_contains(r.err, want);
        assert_string_equal(r.out, "");
        cli_result_free(&r);
    }
}

static void test_malformed_yaml_exits_2_with_file_line_column(void **state)
{
    (void)state;
    char want[4400];
    snprintf(want, sizeof want, "%s:4:1: invalid YAML", fx.bad_yaml);
    struct cli_result r;
    run_cli(NULL, ARGS("--config", fx.bad_yaml, "health"), &r);
    assert_exit(&r, 2);
    assert_contains(r.err, want);
    cli_result_free(&r);
}

static void test_missing_profiles_file_exits_2_naming_it(void **state)
{
    (void)state;
    char missing[4300];
    snprintf(missing, sizeof missing, "%s/no-such-profiles.yaml", fx.dir);
    struct cli_result r;
    run_cli(NULL, ARGS("--config", missing, "health"), &r);
    assert_exit(&r, 2);
    assert_contains(r.err, missing);
    cli_result_free(&r);
}

static void test_profiles_lists_the_three_profiles(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("profiles"), &r);
    assert_exit(&r, 0);
    assert_contains(r.out, fx.config);
    assert_contains(r.out, "  development    memory  — CLI tests: memory store\n");
    assert_contains(r.out, "  test           memory  — CLI tests: memory store, quick retries\n");
    assert_contains(r.out, "  production     mongodb -> memory  — ");
    size_t lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 4); /* the header and three profiles */
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* health and stats                                                   */

static void test_health_exits_0_and_lists_memory_adapter(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("health"), &r);
    assert_exit(&r, 0);
    assert_contains(r.out, "profile development (");
    assert_contains(r.out, "memory#0");
    assert_contains(r.out, " ok ");
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

static void test_health_json_is_valid_json(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("--profile", "test", "health", "--json"), &r);
    assert_exit(&r, 0);
    bson_t *doc = stdout_json(&r);
    assert_string_equal(json_utf8(doc, "profile"), "test");
    assert_string_equal(json_utf8(doc, "adapters.0.adapter"), "memory#0");
    assert_string_equal(json_utf8(doc, "adapters.0.type"), "memory");
    assert_string_equal(json_utf8(doc, "adapters.0.status"), "OK");
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "ok") && BSON_ITER_HOLDS_BOOL(&it));
    assert_true(bson_iter_bool(&it));
    bson_destroy(doc);
    cli_result_free(&r);
}

static void test_health_rejects_unexpected_argument(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("health", "--yaml"), &r);
    assert_usage_error(&r, "health: unexpected argument '--yaml'");
    cli_result_free(&r);
}

static void test_stats_json_uses_the_seed_field_names(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("stats", "--json"), &r);
    assert_exit(&r, 0);
    bson_t *doc = stdout_json(&r);
    static const char *const numbers[] = {"itemCount", "totalSize", "averageItemSize"};
    for (size_t i = 0; i < 3; i++) {
        bson_iter_t it;
        if (!bson_iter_init_find(&it, doc, numbers[i]) || !BSON_ITER_HOLDS_NUMBER(&it))
            fail_msg("no number \"%s\" in %s", numbers[i], r.out);
        assert_true(bson_iter_as_double(&it) == 0.0); /* a fresh memory store */
    }
    assert_string_equal(json_utf8(doc, "adapterType"), "memory");
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "degraded") && BSON_ITER_HOLDS_BOOL(&it));
    assert_false(bson_iter_bool(&it)); /* the primary answered */
    assert_int_equal(bson_count_keys(doc), 5);
    bson_destroy(doc);
    cli_result_free(&r);
}

static void test_stats_text_names_the_adapter(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("stats"), &r);
    assert_exit(&r, 0);
    assert_contains(r.out, "items          0\n");
    assert_contains(r.out, "adapter        memory\n");
    cli_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* snapshot append                                                    */

static void test_append_prints_a_64_hex_hash(void **state)
{
    (void)state;
    const char *hash = append_hash("{\"state\":{\"step\":1}}",
                                   CLI("snapshot", "append", "--xc", "xc-1", "--ts", "17000000"));
    assert_int_equal(strlen(hash), PERSISTOR_HASH_HEX_LEN);
}

static void test_append_same_content_ts_and_xc_twice_prints_same_hash(void **state)
{
    (void)state;
    const char *content = "{\"state\":{\"step\":1}}";
    char first[PERSISTOR_HASH_HEX_LEN + 1];
    strcpy(first, append_hash(content, CLI("snapshot", "append", "--xc", "xc-1", "--ts", "42")));
    assert_string_equal(
        append_hash(content, CLI("snapshot", "append", "--xc", "xc-1", "--ts", "42")), first);
    /* ...and any one of them changed gives another. */
    assert_string_not_equal(
        append_hash(content, CLI("snapshot", "append", "--xc", "xc-1", "--ts", "43")), first);
    assert_string_not_equal(
        append_hash(content, CLI("snapshot", "append", "--xc", "xc-2", "--ts", "42")), first);
    assert_string_not_equal(append_hash(content, CLI("snapshot", "append", "--xc", "xc-1", "--ts",
                                                     "42", "--tenant", "acme")),
                            first);
    assert_string_not_equal(append_hash("{\"state\":{\"step\":2}}",
                                        CLI("snapshot", "append", "--xc", "xc-1", "--ts", "42")),
                            first);
}

static void test_append_hash_ignores_json_formatting_and_source(void **state)
{
    (void)state;
    char from_file[PERSISTOR_HASH_HEX_LEN + 1];
    strcpy(from_file, append_hash(NULL, CLI("snapshot", "append", "--xc", "xc-f", "--ts", "7",
                                            fx.content)));
    /* The same document, written on one line, from stdin. */
    const char *compact =
        "{\"state\":{\"agent\":\"coder\",\"step\":2,\"done\":false,"
        "\"notes\":[\"read the ticket\",\"caf\xc3\xa9\"],\"ratio\":0.5},"
        "\"events\":[{\"type\":\"step_completed\",\"step\":2}],"
        "\"metadata\":{\"kernel\":\"cli-test\",\"big\":5000000000,\"none\":null}}";
    assert_string_equal(
        append_hash(compact, CLI("snapshot", "append", "--xc", "xc-f", "--ts", "7", "-")),
        from_file);
}

static void test_append_with_hash_option_prints_that_hash(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli("{}", CLI("snapshot", "append", "--xc", "xc-1", "--hash", "my-own-id"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "my-own-id\n");
    cli_result_free(&r);
}

static void test_audit_result_prints_its_workflow_id(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli("{\"workflow_id\": \"wf-1\", \"status\": \"FAILED\"}", CLI("audit", "result"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "wf-1\n");
    cli_result_free(&r);
}

static void test_audit_incident_prints_a_hash_and_refuses_a_bad_severity(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli("{\"workflow_id\": \"w\", \"type\": \"t\", \"severity\": \"HIGH\"}",
            CLI("audit", "incident", "-"), &r);
    assert_exit(&r, 0);
    assert_true(is_hash_line(r.out));
    cli_result_free(&r);
    run_cli("{\"workflow_id\": \"w\", \"type\": \"t\", \"severity\": \"huge\"}",
            CLI("audit", "incident"), &r);
    assert_rejected(&r, "stdin): \"severity\" must be LOW, MEDIUM, HIGH or CRITICAL");
    cli_result_free(&r);
}

static void test_audit_result_without_workflow_id_writes_nothing(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli("{\"status\": \"DONE\"}", CLI("audit", "result"), &r);
    assert_rejected(&r, "\"workflow_id\" is required");
    cli_result_free(&r);
    run_cli("{}", CLI("audit", "verdict"), &r);
    assert_usage_error(&r, "unknown record kind 'verdict'");
    cli_result_free(&r);
}

/* The hash core/snapshot.c documents, computed here from its definition:
 * SHA-256 hex over "persistor-snapshot-v1\0" tenant "\0" xcId "\0"
 * <ts in decimal ms> "\0" <content BSON bytes>. */
static void expected_hash(const char *tenant, const char *xc_id, const char *ts,
                          const char *content_json, char hex[SHA256_HEX_SIZE])
{
    bson_error_t error;
    bson_t *content = bson_new_from_json((const uint8_t *)content_json, -1, &error);
    if (content == NULL)
        fail_msg("test content is not JSON: %s", error.message);
    sha256_ctx ctx;
    uint8_t digest[SHA256_DIGEST_SIZE];
    sha256_init(&ctx);
    sha256_update(&ctx, "persistor-snapshot-v1", sizeof "persistor-snapshot-v1");
    sha256_update(&ctx, tenant, strlen(tenant) + 1);
    sha256_update(&ctx, xc_id, strlen(xc_id) + 1);
    sha256_update(&ctx, ts, strlen(ts) + 1);
    sha256_update(&ctx, bson_get_data(content), content->len);
    sha256_final(&ctx, digest);
    sha256_hex(digest, hex);
    bson_destroy(content);
}

static void test_append_hash_is_the_documented_sha256_for_default_tenant(void **state)
{
    (void)state;
    char want[SHA256_HEX_SIZE];
    expected_hash("default", "xc-hash", "1700000000123", fx_content, want);
    assert_string_equal(append_hash(fx_content, CLI("snapshot", "append", "--xc", "xc-hash",
                                                    "--ts", "1700000000123")),
                        want);
}

static void test_append_hash_is_the_documented_sha256_for_given_tenant(void **state)
{
    (void)state;
    char want[SHA256_HEX_SIZE];
    expected_hash("acme", "run/42", "-5", "{}", want);
    assert_string_equal(append_hash("{}", CLI("snapshot", "append", "--tenant", "acme", "--xc",
                                              "run/42", "--ts=-5")),
                        want);
}

/* ------------------------------------------------------------------ */
/* snapshot append: bad input is refused whole                        */

static void test_append_invalid_json_from_stdin_reports_line_and_column(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli("{\"a\": 1,\n    x}", CLI("snapshot", "append", "--xc", "xc-1"), &r);
    assert_rejected(&r, "persistor: stdin:2:5: ");
    cli_result_free(&r);
}

static void test_append_invalid_json_from_file_reports_file_line_and_column(void **state)
{
    (void)state;
    char want[4400];
    snprintf(want, sizeof want, "persistor: %s:3:3: ", fx.invalid);
    struct cli_result r;
    run_cli(NULL, CLI("snapshot", "append", "--xc", "xc-1", fx.invalid), &r);
    assert_rejected(&r, want);
    cli_result_free(&r);
}

static void test_append_non_object_json_exits_2(void **state)
{
    (void)state;
    static const char *const inputs[] = {"[1, 2]", "42", "\"text\"", "null", "", "  \n"};
    for (size_t i = 0; i < sizeof inputs / sizeof inputs[0]; i++) {
        struct cli_result r;
        run_cli(inputs[i], CLI("snapshot", "append", "--xc", "xc-1"), &r);
        assert_rejected(&r, "expected a JSON object");
        cli_result_free(&r);
    }
}

static void test_append_text_after_the_object_exits_2(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli("{} {}", CLI("snapshot", "append", "--xc", "xc-1"), &r);
    assert_rejected(&r, "stdin:1:4: ");
    cli_result_free(&r);
}

static void test_append_duplicate_key_exits_2(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli("{\"a\":1,\"a\":2}", CLI("snapshot", "append", "--xc", "xc-1"), &r);
    assert_rejected(&r, "duplicate key \"a\"");
    cli_result_free(&r);
}

static void test_append_without_xc_exits_2(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli("{}", CLI("snapshot", "append"), &r);
    assert_usage_error(&r, "--xc ID is required");
    cli_result_free(&r);
    run_cli("{}", CLI("snapshot", "append", "--xc"), &r);
    assert_usage_error(&r, "--xc needs a value");
    cli_result_free(&r);
    run_cli("{}", CLI("snapshot", "append", "--xc", ""), &r);
    assert_rejected(&r, "xc_id is missing or empty");
    cli_result_free(&r);
}

static void test_append_non_numeric_ts_exits_2(void **state)
{
    (void)state;
    static const char *const bad[] = {"abc", "12x", "", "99999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct cli_result r;
        run_cli("{}", CLI("snapshot", "append", "--xc", "xc-1", "--ts", bad[i]), &r);
        assert_usage_error(&r, "--ts expects milliseconds since the epoch");
        cli_result_free(&r);
    }
}

static void test_append_content_setting_a_reserved_field_exits_2(void **state)
{
    (void)state;
    static const char *const reserved[] = {"_id", "xcId", "ts", "tenantId", "createdAt"};
    for (size_t i = 0; i < sizeof reserved / sizeof reserved[0]; i++) {
        char content[128], want[64];
        snprintf(content, sizeof content, "{\"state\": {}, \"%s\": \"mine\"}", reserved[i]);
        snprintf(want, sizeof want, "sets \"%s\"", reserved[i]);
        struct cli_result r;
        run_cli(content, CLI("snapshot", "append", "--xc", "xc-1"), &r);
        assert_rejected(&r, want);
        cli_result_free(&r);
    }
}

static void test_append_reserved_name_nested_in_content_is_allowed(void **state)
{
    (void)state;
    append_hash("{\"state\": {\"_id\": 1, \"ts\": 2}}", CLI("snapshot", "append", "--xc", "xc-1"));
}

static void test_append_unknown_option_or_second_file_exits_2(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli("{}", CLI("snapshot", "append", "--xc", "xc-1", "--force"), &r);
    assert_usage_error(&r, "snapshot append: unknown option --force");
    cli_result_free(&r);
    run_cli(NULL, CLI("snapshot", "append", "--xc", "xc-1", fx.content, fx.content), &r);
    assert_usage_error(&r, "one input file only");
    cli_result_free(&r);
}

static void test_append_missing_input_file_exits_2_naming_it(void **state)
{
    (void)state;
    char missing[4300];
    snprintf(missing, sizeof missing, "%s/absent.json", fx.dir);
    struct cli_result r;
    run_cli(NULL, CLI("snapshot", "append", "--xc", "xc-1", missing), &r);
    assert_rejected(&r, missing);
    cli_result_free(&r);
}

static void test_append_input_over_16_mib_from_stdin_exits_2(void **state)
{
    (void)state;
    /* Just over the limit, and far over it (the reader stops early). */
    static const size_t sizes[] = {CLI_INPUT_LIMIT + 1, 3 * CLI_INPUT_LIMIT};
    for (size_t i = 0; i < 2; i++) {
        char *input = json_of_size(sizes[i]);
        assert_non_null(input);
        struct cli_result r;
        run_cli(input, CLI("snapshot", "append", "--xc", "xc-1"), &r);
        assert_rejected(&r, "persistor: stdin: input larger than 16777216 bytes");
        cli_result_free(&r);
        free(input);
    }
}

static void test_append_input_over_16_mib_from_file_exits_2(void **state)
{
    (void)state;
    char want[4400];
    snprintf(want, sizeof want, "persistor: %s: input larger than 16777216 bytes", fx.huge);
    struct cli_result r;
    run_cli(NULL, CLI("snapshot", "append", "--xc", "xc-1", fx.huge), &r);
    assert_rejected(&r, want);
    cli_result_free(&r);
}

static void test_append_document_over_16_mib_exits_2(void **state)
{
    (void)state;
    /* Input at the limit is read, but with persistor's own fields the
     * document is larger than any store accepts. */
    char *input = json_of_size(CLI_INPUT_LIMIT);
    assert_non_null(input);
    struct cli_result r;
    run_cli(input, CLI("snapshot", "append", "--xc", "xc-1"), &r);
    assert_rejected(&r, "the limit is 16777216 bytes (16 MiB)");
    cli_result_free(&r);
    free(input);
}

/* ------------------------------------------------------------------ */
/* snapshot reads on a fresh (empty) store                            */

static const char unknown_hash[] =
    "0000000000000000000000000000000000000000000000000000000000000000";

static void test_snapshot_has_unknown_hash_exits_1(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("snapshot", "has", unknown_hash), &r);
    assert_exit(&r, 1);
    assert_string_equal(r.out, "");
    cli_result_free(&r);
}

static void test_snapshot_get_unknown_hash_exits_1_with_message(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("snapshot", "get", unknown_hash), &r);
    assert_exit(&r, 1);
    assert_contains(r.err, "no snapshot 0000000000");
    assert_string_equal(r.out, "");
    cli_result_free(&r);
}

static void test_snapshot_latest_unknown_context_exits_1_with_message(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("snapshot", "latest", "xc-unknown"), &r);
    assert_exit(&r, 1);
    assert_contains(r.err, "no snapshots for xc-unknown");
    assert_string_equal(r.out, "");
    cli_result_free(&r);
}

static void test_snapshot_rm_unknown_hash_exits_1_with_message(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("snapshot", "rm", unknown_hash), &r);
    assert_exit(&r, 1);
    assert_contains(r.err, "no snapshot 0000000000");
    assert_string_equal(r.out, "");
    cli_result_free(&r);
}

static void test_snapshot_load_unknown_context_exits_0_with_no_output(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("snapshot", "load", "xc-unknown"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

static void test_snapshot_hashes_unknown_context_exits_0_with_no_output(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("snapshot", "hashes", "xc-unknown"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

static void test_snapshot_subcommands_check_their_arguments(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("snapshot"), &r);
    assert_usage_error(&r, "snapshot: expects a subcommand");
    cli_result_free(&r);
    run_cli(NULL, CLI("snapshot", "fetch", "x"), &r);
    assert_usage_error(&r, "snapshot: unknown subcommand 'fetch'");
    cli_result_free(&r);
    run_cli(NULL, CLI("snapshot", "get"), &r);
    assert_usage_error(&r, "snapshot get: expects exactly one HASH");
    cli_result_free(&r);
    run_cli(NULL, CLI("snapshot", "load", "a", "b"), &r);
    assert_usage_error(&r, "snapshot load: expects exactly one XCID");
    cli_result_free(&r);
}

/* ------------------------------------------------------------------ */
/* demo and logs                                                      */

static void test_demo_exits_0_and_prints_its_summary(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("demo"), &r);
    assert_exit(&r, 0);
    assert_contains(r.out, "persistor demo: an agent kernel on profile \"development\"");
    assert_contains(r.out, "-- crashed!");
    assert_contains(r.out, "restore:  coder resumed at step 2 from its latest snapshot");
    assert_contains(r.out, "and finished 4/4 steps");
    assert_contains(r.out, "re-appending the last checkpoint stored 0 new snapshot(s)");
    assert_contains(r.out, "history:  coder has 4 snapshots");
    assert_contains(r.out, "store:    12 snapshots in all");
    assert_contains(r.out, "adapter memory");
    assert_string_equal(r.err, "");
    cli_result_free(&r);
}

static void test_logs_are_json_lines_on_stderr_at_info_level(void **state)
{
    (void)state;
    struct cli_result r;
    if (!run_cli_with(NULL, 0, "info", CLI("health"), &r))
        fail_msg("could not start persistor");
    assert_exit(&r, 0);
    assert_contains(r.out, "memory#0"); /* stdout is unchanged by logging */
    bool opened = false;
    size_t lines = 0;
    for (char *start = r.err, *nl; (nl = strchr(start, '\n')) != NULL; start = nl + 1) {
        bson_error_t error;
        bson_t *doc = bson_new_from_json((const uint8_t *)start, nl - start, &error);
        if (doc == NULL)
            fail_msg("stderr line is not JSON (%s): %.*s", error.message, (int)(nl - start), start);
        assert_string_equal(json_utf8(doc, "level"), "info");
        opened = opened || strcmp(json_utf8(doc, "event"), "persistor_opened") == 0;
        bson_destroy(doc);
        lines++;
    }
    assert_true(lines > 0);
    assert_true(opened);
    assert_int_equal(r.err_len > 0 ? r.err[r.err_len - 1] : '\n', '\n');
    cli_result_free(&r);
}

/* -- query, count and the seed's audit reports (cmd_query.c, cmd_audit.c) -- */

/* These run against a sqlite store in a directory of their own (made and
 * removed around each test), so that one run saves and the next reads;
 * they skip when the build has no sqlite adapter. */
static struct {
    char dir[4300];
    char config[4400];
    char db[4400];
} q;

/* The plugin directory of the build, where the CLI finds its adapters. */
static bool q_plugin_built(const char *type)
{
    char path[4096];
    const char *build = getenv("PERSISTOR_BUILD_DIR");
    snprintf(path, sizeof path, "%s/lib/persistor/%s.so", build != NULL ? build : ".", type);
    return access(path, R_OK) == 0;
}

static int q_setup(void **state)
{
    (void)state;
    if (!q_plugin_built("sqlite"))
        return 0; /* the test skips itself */
    snprintf(q.dir, sizeof q.dir, "%s/query.XXXXXX", fx.dir);
    if (mkdtemp(q.dir) == NULL)
        return -1;
    snprintf(q.config, sizeof q.config, "%s/profiles.yaml", q.dir);
    snprintf(q.db, sizeof q.db, "%s/audit.sqlite", q.dir);
    char yaml[16384];
    int n = snprintf(yaml, sizeof yaml,
                     "version: 1\n"
                     "profiles:\n"
                     "  development:\n"
                     "    adapters:\n"
                     "      - type: sqlite\n"
                     "        file: %s\n"
                     "    collections:\n"
                     "      incidents: {name: inc}\n"
                     "  degraded:\n"
                     "    description: \"a primary nothing listens for, over the same store\"\n"
                     "    adapters:\n"
                     "      - type: mongodb\n"
                     "        uri: mongodb://127.0.0.1:1\n"
                     "        server_selection_timeout_ms: 200\n"
                     "        connect_timeout_ms: 200\n"
                     "      - type: sqlite\n"
                     "        file: %s\n"
                     "    retry: {max_attempts: 1, initial_interval_ms: 1,"
                     " backoff_coefficient: 1.0, max_interval_ms: 1}\n"
                     "    collections:\n"
                     "      incidents: {name: inc}\n",
                     q.db, q.db);
    return fx_write(q.config, yaml, (size_t)n) ? 0 : -1;
}

/* Remove the profiles file, the store and its companions, the directory. */
static int q_teardown(void **state)
{
    (void)state;
    if (q.dir[0] == '\0')
        return 0;
    static const char *const files[] = {"profiles.yaml", "audit.sqlite", "audit.sqlite-wal",
                                        "audit.sqlite-shm", "audit.sqlite-journal"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[4400];
        snprintf(path, sizeof path, "%s/%s", q.dir, files[i]);
        unlink(path);
    }
    if (rmdir(q.dir) != 0)
        fprintf(stderr, "test_cli: could not remove %s: %s\n", q.dir, strerror(errno));
    q.dir[0] = '\0';
    return 0;
}

#define QCLI(...) ARGS("--config", q.config, __VA_ARGS__)
#define Q(test) cmocka_unit_test_setup_teardown(test, q_setup, q_teardown)

static void q_require_sqlite(void)
{
    if (q.dir[0] == '\0')
        skip(); /* no sqlite adapter in this build */
}

/* Save one audit record of `kind` from stdin; its printed id into id. */
static void q_save(const char *kind, const char *json, char id[PERSISTOR_ID_MAX + 1])
{
    struct cli_result r;
    run_cli(json, QCLI("audit", kind), &r);
    assert_exit(&r, 0);
    assert_true(r.out_len > 1 && r.out_len <= PERSISTOR_ID_MAX + 1);
    if (id != NULL) {
        memcpy(id, r.out, r.out_len - 1);
        id[r.out_len - 1] = '\0';
    }
    cli_result_free(&r);
}

static void q_incident(const char *workflow, const char *type, const char *severity,
                       const char *date, char id[PERSISTOR_ID_MAX + 1])
{
    char json[512];
    snprintf(json, sizeof json,
             "{\"workflow_id\": \"%s\", \"type\": \"%s\", \"severity\": \"%s\","
             " \"timestamp\": {\"$date\": \"%s\"}}",
             workflow, type, severity, date);
    q_save("incident", json, id);
}

/* The line `query` prints for what q_incident saved. */
static void q_incident_line(char *out, size_t cap, const char *id, const char *workflow,
                            const char *type, const char *severity, const char *date)
{
    snprintf(out, cap,
             "{ \"_id\" : \"%s\", \"workflow_id\" : \"%s\", \"type\" : \"%s\", \"severity\" : "
             "\"%s\", \"timestamp\" : { \"$date\" : \"%s\" } }\n",
             id, workflow, type, severity, date);
}

/* stdout must be JSON lines whose _id are `ids`, in this order. */
static void q_expect_ids(const struct cli_result *r, const char *const *ids, size_t n)
{
    const char *line = r->out;
    size_t i = 0;
    for (; *line != '\0'; i++) {
        const char *end = strchr(line, '\n');
        assert_non_null(end);
        bson_error_t error;
        bson_t *doc = bson_new_from_json((const uint8_t *)line, end - line, &error);
        if (doc == NULL)
            fail_msg("line %zu is not JSON (%s): %.*s", i, error.message, (int)(end - line),
                     line);
        if (i >= n)
            fail_msg("line %zu beyond the %zu expected: %s", i, n, r->out);
        assert_string_equal(json_utf8(doc, "_id"), ids[i]);
        bson_destroy(doc);
        line = end + 1;
    }
    assert_int_equal(i, n);
}
#define Q_EXPECT_IDS(r, ...)                                                                   \
    q_expect_ids((r), (const char *const[]){__VA_ARGS__},                                    \
                 sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

static void test_query_prints_records_sorted_filtered_and_limited(void **state)
{
    (void)state;
    q_require_sqlite();
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1], c[PERSISTOR_ID_MAX + 1];
    q_incident("w1", "timeout", "CRITICAL", "2026-11-22T10:00:00Z", a);
    q_incident("w2", "crash", "LOW", "2026-11-22T12:00:00Z", c);
    q_incident("w3", "crash", "CRITICAL", "2026-11-22T11:00:00Z", b);
    char la[512], lb[512], lc[512], want[2048];
    q_incident_line(la, sizeof la, a, "w1", "timeout", "CRITICAL", "2026-11-22T10:00:00Z");
    q_incident_line(lb, sizeof lb, b, "w3", "crash", "CRITICAL", "2026-11-22T11:00:00Z");
    q_incident_line(lc, sizeof lc, c, "w2", "crash", "LOW", "2026-11-22T12:00:00Z");
    struct cli_result r;
    run_cli(NULL, QCLI("query", "incidents", "--sort", "timestamp:desc", "--limit", "2"), &r);
    assert_exit(&r, 0);
    snprintf(want, sizeof want, "%s%s", lc, lb);
    assert_string_equal(r.out, want);
    assert_string_equal(r.err, "");
    cli_result_free(&r);
    /* By the profile's name too; ascending is the default; limit 0 is all. */
    run_cli(NULL, QCLI("query", "inc", "--sort=timestamp", "--limit=0"), &r);
    assert_exit(&r, 0);
    snprintf(want, sizeof want, "%s%s%s", la, lb, lc);
    assert_string_equal(r.out, want);
    cli_result_free(&r);
    run_cli(NULL, QCLI("query", "incidents", "--filter", "{\"severity\": \"CRITICAL\"}",
                       "--sort", "timestamp:asc"),
            &r);
    assert_exit(&r, 0);
    snprintf(want, sizeof want, "%s%s", la, lb);
    assert_string_equal(r.out, want);
    cli_result_free(&r);
    run_cli(NULL, QCLI("query", "incidents", "--filter", "{\"severity\": \"MEDIUM\"}"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "");
    cli_result_free(&r);
}

static void test_count_prints_the_number_or_one_line_per_group(void **state)
{
    (void)state;
    q_require_sqlite();
    q_incident("w1", "timeout", "CRITICAL", "2026-11-22T10:00:00Z", NULL);
    q_incident("w2", "crash", "LOW", "2026-11-22T12:00:00Z", NULL);
    q_incident("w3", "crash", "CRITICAL", "2026-11-22T11:00:00Z", NULL);
    q_save("result", "{\"workflow_id\": \"wf-1\", \"status\": \"DONE\"}", NULL);
    struct cli_result r;
    run_cli(NULL, QCLI("count", "incidents"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "3\n");
    cli_result_free(&r);
    run_cli(NULL, QCLI("count", "inc", "--filter", "{\"severity\": \"CRITICAL\"}"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "2\n");
    cli_result_free(&r);
    run_cli(NULL, QCLI("count", "incidents", "--group-by", "type"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "{\"_id\": \"crash\", \"total\": 2}\n"
                               "{\"_id\": \"timeout\", \"total\": 1}\n");
    cli_result_free(&r);
    run_cli(NULL, QCLI("count", "incidents", "--filter", "{\"type\": \"crash\"}", "--group-by",
                       "severity"),
            &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "{\"_id\": \"CRITICAL\", \"total\": 1}\n"
                               "{\"_id\": \"LOW\", \"total\": 1}\n");
    cli_result_free(&r);
    /* A field no record has: one group, null. */
    run_cli(NULL, QCLI("count", "workflow_results", "--group-by", "sla_status.violations_count"),
            &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "{\"_id\": null, \"total\": 1}\n");
    cli_result_free(&r);
    run_cli(NULL, QCLI("count", "validation_audit"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "0\n");
    cli_result_free(&r);
}

static void test_query_and_count_usage_errors_exit_2(void **state)
{
    (void)state;
    const struct {
        const char *const *argv;
        const char *message;
    } cases[] = {
        {CLI("query"), "query: expects a COLLECTION"},
        {CLI("count"), "count: expects a COLLECTION"},
        {CLI("query", "incidents", "inc"),
         "query: one collection only (got 'incidents' and 'inc')"},
        {CLI("query", "incidents", "--group-by", "type"), "query: unknown option --group-by"},
        {CLI("count", "incidents", "--sort", "type"), "count: unknown option --sort"},
        {CLI("count", "incidents", "--limit", "2"), "count: unknown option --limit"},
        {CLI("query", "incidents", "--limit", "ten"),
         "--limit expects a number of records (0: no limit), got 'ten'"},
        {CLI("query", "incidents", "--limit", "-1"),
         "--limit expects a number of records (0: no limit), got '-1'"},
        {CLI("query", "incidents", "--limit", "99999999999999999999"),
         "--limit expects a number of records (0: no limit), got '99999999999999999999'"},
        {CLI("query", "incidents", "--sort", "timestamp:down"),
         "--sort expects FIELD, FIELD:asc or FIELD:desc, got 'timestamp:down'"},
        {CLI("query", "incidents", "--sort", ":desc"),
         "--sort expects FIELD, FIELD:asc or FIELD:desc, got ':desc'"},
        {CLI("query", "incidents", "--filter"), "--filter needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cli_result r;
        run_cli(NULL, cases[i].argv, &r);
        assert_usage_error(&r, cases[i].message);
        cli_result_free(&r);
    }
}

static void test_query_and_count_reject_bad_input_with_exit_2(void **state)
{
    (void)state;
    struct cli_result r;
    run_cli(NULL, CLI("query", "incidents", "--filter", "{\"severity\":\n  CRITICAL}"), &r);
    assert_rejected(&r, "persistor: filter:2:3: expected a value");
    cli_result_free(&r);
    run_cli(NULL, CLI("count", "incidents", "--filter", "{\"a\": 1,}"), &r);
    assert_rejected(&r, "persistor: filter:1:9: trailing comma before '}'");
    cli_result_free(&r);
    run_cli(NULL, CLI("query", "incident"), &r);
    assert_rejected(&r, "unknown collection 'incident' in profile 'development'");
    assert_contains(r.err, "has: snapshots, validation_audit, workflow_results, incidents, "
                           "telemetry_buffer)");
    cli_result_free(&r);
    run_cli(NULL, CLI("count", "incidents", "--group-by", "$type"), &r);
    assert_rejected(&r, "group field '$type' is not a field path");
    cli_result_free(&r);
    run_cli(NULL, CLI("query", "incidents", "--sort", "a..b"), &r);
    assert_rejected(&r, "sort field 'a..b' is not a field path");
    cli_result_free(&r);
    run_cli(NULL, CLI("query", "incidents", "--filter", "{\"type\": {\"$where\": \"1\"}}"), &r);
    assert_rejected(&r, "$where");
    cli_result_free(&r);
}

static void test_audit_by_validity_and_history(void **state)
{
    (void)state;
    q_require_sqlite();
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1], c[PERSISTOR_ID_MAX + 1];
    q_save("validation",
           "{\"plan_id\": \"p1\", \"validation_result\": {\"valid\": true},"
           " \"timestamp\": {\"$date\": \"2026-11-22T10:00:00Z\"}}",
           a);
    q_save("validation",
           "{\"plan_id\": \"p1\", \"validation_result\": {\"valid\": false},"
           " \"timestamp\": {\"$date\": \"2026-11-22T12:00:00Z\"}}",
           c);
    q_save("validation",
           "{\"plan_id\": \"p1\", \"validation_result\": {\"valid\": true},"
           " \"timestamp\": {\"$date\": \"2026-11-22T11:00:00Z\"}}",
           b);
    q_save("validation",
           "{\"plan_id\": \"p2\", \"validation_result\": {\"errors\": []},"
           " \"timestamp\": {\"$date\": \"2026-11-22T13:00:00Z\"}}",
           NULL);
    struct cli_result r;
    run_cli(NULL, QCLI("audit", "by-validity"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "{\"_id\": null, \"total\": 1}\n"
                               "{\"_id\": false, \"total\": 1}\n"
                               "{\"_id\": true, \"total\": 2}\n");
    assert_string_equal(r.err, "");
    cli_result_free(&r);
    run_cli(NULL, QCLI("audit", "history", "p1"), &r);
    assert_exit(&r, 0);
    Q_EXPECT_IDS(&r, c, b, a);
    cli_result_free(&r);
    run_cli(NULL, QCLI("audit", "history", "--limit", "2", "p1"), &r);
    assert_exit(&r, 0);
    Q_EXPECT_IDS(&r, c, b);
    cli_result_free(&r);
    run_cli(NULL, QCLI("audit", "history", "p3"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "");
    cli_result_free(&r);
}

static void test_audit_status_and_sla_violations(void **state)
{
    (void)state;
    q_require_sqlite();
    q_save("result",
           "{\"workflow_id\": \"wf-b\", \"status\": \"FAILED\", \"consolidated_at\":"
           " {\"$date\": \"2026-11-22T10:00:00Z\"}, \"sla_status\": {\"violations_count\": 2}}",
           NULL);
    q_save("result",
           "{\"workflow_id\": \"wf-c\", \"status\": \"FAILED\", \"consolidated_at\":"
           " {\"$date\": \"2026-11-22T11:00:00Z\"}, \"sla_status\": {\"violations_count\": 0}}",
           NULL);
    q_save("result",
           "{\"workflow_id\": \"wf-a\", \"status\": \"FAILED\", \"consolidated_at\":"
           " {\"$date\": \"2026-11-22T10:00:00Z\"}, \"sla_status\": {\"violations_count\": 2}}",
           NULL);
    q_save("result",
           "{\"workflow_id\": \"wf-d\", \"status\": \"DONE\", \"consolidated_at\":"
           " {\"$date\": \"2026-11-22T12:00:00Z\"}, \"sla_status\": {\"violations_count\": 7}}",
           NULL);
    struct cli_result r;
    run_cli(NULL, QCLI("audit", "status", "FAILED"), &r);
    assert_exit(&r, 0);
    Q_EXPECT_IDS(&r, "wf-c", "wf-a", "wf-b"); /* newest first, ties by _id */
    cli_result_free(&r);
    run_cli(NULL, QCLI("audit", "status", "FAILED", "--limit=1"), &r);
    assert_exit(&r, 0);
    Q_EXPECT_IDS(&r, "wf-c");
    cli_result_free(&r);
    run_cli(NULL, QCLI("audit", "sla-violations"), &r);
    assert_exit(&r, 0);
    Q_EXPECT_IDS(&r, "wf-d", "wf-a", "wf-b");
    cli_result_free(&r);
    run_cli(NULL, QCLI("audit", "sla-violations", "--limit", "2"), &r);
    assert_exit(&r, 0);
    Q_EXPECT_IDS(&r, "wf-d", "wf-a");
    cli_result_free(&r);
}

static void test_audit_critical_and_by_type(void **state)
{
    (void)state;
    q_require_sqlite();
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1];
    q_incident("w1", "timeout", "CRITICAL", "2026-11-22T10:00:00Z", a);
    q_incident("w2", "crash", "HIGH", "2026-11-22T12:00:00Z", NULL);
    q_incident("w3", "crash", "CRITICAL", "2026-11-22T11:00:00Z", b);
    char la[512], lb[512], want[1024];
    q_incident_line(la, sizeof la, a, "w1", "timeout", "CRITICAL", "2026-11-22T10:00:00Z");
    q_incident_line(lb, sizeof lb, b, "w3", "crash", "CRITICAL", "2026-11-22T11:00:00Z");
    struct cli_result r;
    run_cli(NULL, QCLI("audit", "critical"), &r);
    assert_exit(&r, 0);
    snprintf(want, sizeof want, "%s%s", lb, la);
    assert_string_equal(r.out, want);
    cli_result_free(&r);
    run_cli(NULL, QCLI("audit", "critical", "--limit", "1"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, lb);
    cli_result_free(&r);
    run_cli(NULL, QCLI("audit", "by-type"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "{\"_id\": \"crash\", \"total\": 2}\n"
                               "{\"_id\": \"timeout\", \"total\": 1}\n");
    cli_result_free(&r);
}

static void test_audit_critical_shows_20_by_default(void **state)
{
    (void)state;
    q_require_sqlite();
    char first[PERSISTOR_ID_MAX + 1];
    for (int i = 0; i < 21; i++) {
        char date[32];
        snprintf(date, sizeof date, "2026-11-22T10:%02d:00Z", i);
        q_incident("w", "timeout", "CRITICAL", date, i == 0 ? first : NULL);
    }
    struct cli_result r;
    run_cli(NULL, QCLI("audit", "critical"), &r);
    assert_exit(&r, 0);
    size_t lines = 0;
    for (const char *c = r.out; *c != '\0'; c++)
        lines += *c == '\n';
    assert_int_equal(lines, 20);
    assert_null(strstr(r.out, first)); /* the oldest is the one left out */
    cli_result_free(&r);
    run_cli(NULL, QCLI("audit", "critical", "--limit", "0"), &r);
    assert_exit(&r, 0);
    assert_non_null(strstr(r.out, first));
    cli_result_free(&r);
}

static void test_audit_report_usage_errors_exit_2(void **state)
{
    (void)state;
    const struct {
        const char *const *argv;
        const char *message;
    } cases[] = {
        {CLI("audit"), "audit: expects validation|result|incident [FILE|-], or a report"},
        {CLI("audit", "history"), "audit history: expects PLAN_ID [--limit N]"},
        {CLI("audit", "history", "p1", "p2"), "audit history: expects PLAN_ID [--limit N]"},
        {CLI("audit", "status", "--since", "x"), "audit status: expects STATUS [--limit N]"},
        {CLI("audit", "sla-violations", "x"), "audit sla-violations: expects [--limit N]"},
        {CLI("audit", "critical", "--limit", "many"),
         "--limit expects a number of records (0: no limit), got 'many'"},
        {CLI("audit", "critical", "--limit"), "--limit needs a value"},
        {CLI("audit", "by-validity", "--limit", "3"), "audit by-validity: expects no arguments"},
        {CLI("audit", "by-type", "x"), "audit by-type: expects no arguments"},
        {CLI("audit", "by-kind"), "unknown record kind 'by-kind'"},
        {CLI("audit", "incident", "a.json", "b.json"), "audit incident: expects [FILE|-]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct cli_result r;
        run_cli(NULL, cases[i].argv, &r);
        assert_usage_error(&r, cases[i].message);
        cli_result_free(&r);
    }
    struct cli_result r;
    run_cli(NULL, CLI("audit", "status", ""), &r);
    assert_rejected(&r, "workflows by status: status is required (a non-empty string)");
    cli_result_free(&r);
}

static void test_a_degraded_answer_is_data_on_stdout_and_a_warning_on_stderr(void **state)
{
    (void)state;
    q_require_sqlite();
    if (!q_plugin_built("mongodb"))
        skip();
    q_incident("w1", "timeout", "CRITICAL", "2026-11-22T10:00:00Z", NULL);
    static const char warning[] =
        "persistor: degraded answer: the primary is down, so a fallback answered with only "
        "what it holds (see `persistor health`)\n";
    struct cli_result r;
    run_cli(NULL, QCLI("--profile", "degraded", "count", "inc", "--group-by", "type"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "{\"_id\": \"timeout\", \"total\": 1}\n");
    assert_string_equal(r.err, warning);
    cli_result_free(&r);
    run_cli(NULL, QCLI("--profile", "degraded", "count", "inc"), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "1\n");
    assert_string_equal(r.err, warning);
    cli_result_free(&r);
    run_cli(NULL, QCLI("--profile", "degraded", "audit", "critical"), &r);
    assert_exit(&r, 0);
    assert_contains(r.out, "\"workflow_id\" : \"w1\"");
    assert_string_equal(r.err, warning);
    cli_result_free(&r);
}

/* -- telemetry (cmd_telemetry.c) -- */

/* These use the sqlite store of the query tests (Q, QCLI): the buffer must
 * outlive one run.  Files a drain writes go to fx.dir and are removed. */
#define TCLI(...) QCLI("telemetry", __VA_ARGS__)

/* Buffer `json` from stdin; its printed id (64 hex digits) into id. */
static void tm_buffer(const char *json, char id[PERSISTOR_ID_MAX + 1])
{
    struct cli_result r;
    run_cli(json, TCLI("buffer"), &r);
    assert_exit(&r, 0);
    if (!is_hash_line(r.out))
        fail_msg("expected one 64-hex-digit line, got: %s", r.out);
    memcpy(id, r.out, PERSISTOR_HASH_HEX_LEN);
    id[PERSISTOR_HASH_HEX_LEN] = '\0';
    cli_result_free(&r);
}

static void tm_buffer_nth(int n, char id[PERSISTOR_ID_MAX + 1])
{
    char json[256];
    snprintf(json, sizeof json,
             "{\"correlation\": {\"workflow_id\": \"wf-%d\"}, \"metrics\": {\"n\": %d},"
             " \"source\": \"cli-test\"}",
             n, n);
    tm_buffer(json, id);
}

/* Parse `text` as JSON lines into docs[] (at most cap; free each with
 * bson_destroy); returns how many lines there were. */
static size_t tm_parse_lines(const char *text, bson_t **docs, size_t cap)
{
    size_t n = 0;
    while (*text != '\0') {
        const char *end = strchr(text, '\n');
        if (end == NULL)
            fail_msg("a JSON line without its newline: %s", text);
        if (n == cap)
            fail_msg("more than %zu lines", cap);
        bson_error_t error;
        docs[n] = bson_new_from_json((const uint8_t *)text, end - text, &error);
        if (docs[n] == NULL)
            fail_msg("not a JSON line (%s): %.*s", error.message, (int)(end - text), text);
        n++;
        text = end + 1;
    }
    return n;
}

static void tm_free_lines(bson_t **docs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        bson_destroy(docs[i]);
}

static int64_t tm_number(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_NUMBER(&it))
        fail_msg("no number at %s", key);
    return bson_iter_as_int64(&it);
}

/* Run `telemetry ARGS...` expecting exit 0; its JSON lines into docs[]. */
static size_t tm_lines(const char *const argv[], bson_t **docs, size_t cap)
{
    struct cli_result r;
    run_cli(NULL, argv, &r);
    assert_exit(&r, 0);
    size_t n = tm_parse_lines(r.out, docs, cap);
    cli_result_free(&r);
    return n;
}

/* Run expecting exit 0 and exactly `out` on stdout. */
static void tm_expect(const char *const argv[], const char *out)
{
    struct cli_result r;
    run_cli(NULL, argv, &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, out);
    cli_result_free(&r);
}

/* The lines of a file a drain wrote, parsed; the file is removed. */
static size_t tm_file_lines(const char *path, bson_t **docs, size_t cap)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("%s: %s", path, strerror(errno));
    char text[65536];
    size_t len = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    unlink(path);
    text[len] = '\0';
    return tm_parse_lines(text, docs, cap);
}

static bool tm_has_id(bson_t **docs, size_t n, const char *id)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(json_utf8(docs[i], "_id"), id) == 0)
            return true;
    return false;
}

static void test_telemetry_buffer_prints_one_id_per_record(void **state)
{
    (void)state;
    q_require_sqlite();
    const char *json = "{\"correlation\": {\"workflow_id\": \"w\"}, \"metrics\": {\"ms\": 3},"
                       " \"source\": \"s\", \"timestamp\": {\"$date\": \"2026-11-22T10:00:00Z\"}}";
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1];
    tm_buffer(json, a);
    tm_buffer(json, b); /* a retry: the same record, stored once */
    assert_string_equal(a, b);
    bson_t *docs[4];
    size_t n = tm_lines(TCLI("claim"), docs, 4);
    assert_int_equal(n, 1);
    assert_string_equal(json_utf8(docs[0], "_id"), a);
    assert_string_equal(json_utf8(docs[0], "correlation.workflow_id"), "w");
    assert_string_equal(json_utf8(docs[0], "state"), "pending");
    assert_int_equal(tm_number(docs[0], "retry_count"), 1);
    tm_free_lines(docs, n);

    struct cli_result r;
    run_cli("{\"correlation\": {}, \"metrics\": {}, \"source\": \"s\"}", TCLI("buffer"), &r);
    assert_rejected(&r, "\"correlation.workflow_id\" is required");
    cli_result_free(&r);
    run_cli(NULL, TCLI("buffer", "a.json", "b.json"), &r);
    assert_usage_error(&r, "telemetry buffer: expects [FILE|-]");
    cli_result_free(&r);
}

static void test_telemetry_claim_release_and_ack(void **state)
{
    (void)state;
    q_require_sqlite();
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1];
    tm_buffer_nth(1, a);
    tm_buffer_nth(2, b);
    bson_t *first[4], *second[4];
    assert_int_equal(tm_lines(TCLI("claim", "--limit", "1", "--lease", "600"), first, 4), 1);
    assert_int_equal(tm_lines(TCLI("claim", "--limit", "5"), second, 4), 1);
    const char *x = json_utf8(first[0], "_id"), *y = json_utf8(second[0], "_id");
    assert_true((strcmp(x, a) == 0 && strcmp(y, b) == 0) ||
                (strcmp(x, b) == 0 && strcmp(y, a) == 0));
    tm_free_lines(first, 1);
    tm_free_lines(second, 1);
    tm_expect(TCLI("claim"), ""); /* both leased */

    tm_expect(TCLI("release", a, "no-such-id"), "1\n");
    tm_expect(TCLI("release", a), "0\n"); /* no lease left to end */
    bson_t *again[4];
    assert_int_equal(tm_lines(TCLI("claim"), again, 4), 1);
    assert_string_equal(json_utf8(again[0], "_id"), a);
    assert_int_equal(tm_number(again[0], "retry_count"), 2);
    tm_free_lines(again, 1);

    tm_expect(TCLI("ack", a, b), "2\n");
    tm_expect(TCLI("ack", a), "0\n");
    tm_expect(TCLI("claim"), "");

    struct cli_result r;
    run_cli(NULL, TCLI("ack"), &r);
    assert_usage_error(&r, "telemetry ack: expects one or more IDs");
    cli_result_free(&r);
    run_cli(NULL, TCLI("claim", "--limit", "0"), &r);
    assert_usage_error(&r, "--limit expects a whole number from 1 to");
    cli_result_free(&r);
    run_cli(NULL, TCLI("claim", "--lease", "soon"), &r);
    assert_usage_error(&r, "--lease expects a whole number");
    cli_result_free(&r);
    run_cli(NULL, TCLI("bogus"), &r);
    assert_usage_error(&r, "telemetry: unknown subcommand 'bogus'");
    cli_result_free(&r);
}

static void test_telemetry_dead_letters_are_listed_and_requeued(void **state)
{
    (void)state;
    q_require_sqlite();
    char a[PERSISTOR_ID_MAX + 1];
    tm_buffer_nth(1, a);
    bson_t *docs[4];
    for (int round = 0; round < 2; round++) {
        assert_int_equal(tm_lines(TCLI("claim", "--max-retries", "1"), docs, 4), 1);
        tm_free_lines(docs, 1);
        tm_expect(TCLI("release", a), "1\n");
        struct cli_result r;
        run_cli(NULL, TCLI("claim", "--max-retries", "1"), &r);
        assert_exit(&r, 0);
        assert_string_equal(r.out, "");
        assert_contains(r.err, "1 record had been claimed --max-retries times");
        cli_result_free(&r);
        size_t n = tm_lines(TCLI("dead"), docs, 4);
        assert_int_equal(n, 1);
        assert_string_equal(json_utf8(docs[0], "_id"), a);
        assert_string_equal(json_utf8(docs[0], "state"), "dead");
        tm_free_lines(docs, n);
        /* By id the first time, every dead record the second. */
        if (round == 0)
            tm_expect(TCLI("requeue", a), "1\n");
        else
            tm_expect(TCLI("requeue", "--all"), "1\n");
        tm_expect(TCLI("dead"), "");
    }
    size_t n = tm_lines(TCLI("claim"), docs, 4);
    assert_int_equal(n, 1);
    assert_int_equal(tm_number(docs[0], "retry_count"), 1); /* requeued from 0 */
    tm_free_lines(docs, n);

    struct cli_result r;
    run_cli(NULL, TCLI("requeue"), &r);
    assert_usage_error(&r, "telemetry requeue: expects IDs or --all");
    cli_result_free(&r);
    run_cli(NULL, TCLI("requeue", "--all", a), &r);
    assert_usage_error(&r, "expects IDs or --all, not both");
    cli_result_free(&r);
    run_cli(NULL, TCLI("dead", "--limit", "x"), &r);
    assert_usage_error(&r, "--limit expects");
    cli_result_free(&r);
}

static void test_telemetry_retried_lists_what_was_claimed(void **state)
{
    (void)state;
    q_require_sqlite();
    char a[PERSISTOR_ID_MAX + 1], b[PERSISTOR_ID_MAX + 1];
    tm_buffer_nth(1, a);
    tm_buffer_nth(2, b);
    tm_expect(TCLI("retried"), "");
    bson_t *claimed[4], *retried[4];
    assert_int_equal(tm_lines(TCLI("claim", "--limit", "1"), claimed, 4), 1);
    assert_int_equal(tm_lines(TCLI("retried", "--limit", "5"), retried, 4), 1);
    assert_string_equal(json_utf8(retried[0], "_id"), json_utf8(claimed[0], "_id"));
    tm_free_lines(claimed, 1);
    tm_free_lines(retried, 1);
}

static void test_telemetry_drain_pipes_every_record_and_acks_it(void **state)
{
    (void)state;
    q_require_sqlite();
    char ids[6][PERSISTOR_ID_MAX + 1], out[4300], exec[4400];
    for (int i = 0; i < 3; i++)
        tm_buffer_nth(i, ids[i]);
    fx_path(out, sizeof out, "drained.jsonl");
    snprintf(exec, sizeof exec, "cat > '%s'", out);
    struct cli_result r;
    run_cli(NULL, TCLI("drain", "--exec", exec), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "persistor: drained 3 records in 1 batch\n");
    cli_result_free(&r);
    bson_t *docs[8];
    size_t n = tm_file_lines(out, docs, 8);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++)
        assert_true(tm_has_id(docs, n, ids[i]));
    assert_int_equal(tm_number(docs[0], "retry_count"), 1);
    tm_free_lines(docs, n);
    tm_expect(TCLI("ack", ids[0], ids[1], ids[2]), "0\n"); /* all acknowledged */

    /* Several batches: each goes to its own run of CMD. */
    for (int i = 3; i < 6; i++)
        tm_buffer_nth(i, ids[i]);
    snprintf(exec, sizeof exec, "cat >> '%s'", out);
    run_cli(NULL, TCLI("drain", "--batch", "2", "--exec", exec), &r);
    assert_exit(&r, 0);
    assert_string_equal(r.err, "persistor: drained 3 records in 2 batches\n");
    cli_result_free(&r);
    n = tm_file_lines(out, docs, 8);
    assert_int_equal(n, 3);
    for (int i = 3; i < 6; i++)
        assert_true(tm_has_id(docs, n, ids[i]));
    tm_free_lines(docs, n);
    tm_expect(TCLI("claim"), "");
    tm_expect(TCLI("ack", ids[3], ids[4], ids[5]), "0\n");

    run_cli(NULL, TCLI("drain"), &r);
    assert_usage_error(&r, "telemetry drain: --exec CMD is required");
    cli_result_free(&r);
}

static void test_telemetry_drain_stops_at_a_failing_cmd_and_releases_its_batch(void **state)
{
    (void)state;
    q_require_sqlite();
    char ids[3][PERSISTOR_ID_MAX + 1];
    for (int i = 0; i < 3; i++)
        tm_buffer_nth(i, ids[i]);
    struct cli_result r;
    run_cli(NULL, TCLI("drain", "--batch", "2", "--exec", "exit 1"), &r);
    assert_exit(&r, 3);
    assert_string_equal(r.out, "");
    assert_contains(r.err, "persistor: telemetry drain: 'exit 1' exited with status 1; its "
                           "batch of 2 records was released and stays buffered\n");
    assert_contains(r.err, "persistor: drained 0 records in 0 batches\n");
    cli_result_free(&r);
    /* Nothing acknowledged, the batch claimable at once, no second batch
     * taken: two records were claimed once, one never. */
    bson_t *docs[4];
    size_t n = tm_lines(TCLI("claim", "--limit", "10"), docs, 4);
    assert_int_equal(n, 3);
    int64_t retries = 0;
    for (size_t i = 0; i < n; i++)
        retries += tm_number(docs[i], "retry_count");
    assert_int_equal(retries, 2 + 2 + 1);
    tm_free_lines(docs, n);
}

static void test_telemetry_drain_survives_a_cmd_that_stops_reading(void **state)
{
    (void)state;
    q_require_sqlite();
    /* One record larger than a pipe holds: CMD exits without reading it,
     * so the write fails; we must neither die of SIGPIPE nor ack. */
    size_t blob = 512 * 1024;
    char *json = malloc(blob + 256);
    assert_non_null(json);
    int at = snprintf(json, 256, "{\"correlation\": {\"workflow_id\": \"big\"}, \"source\": "
                                 "\"s\", \"metrics\": {\"blob\": \"");
    memset(json + at, 'x', blob);
    strcpy(json + at + blob, "\"}}");
    char id[PERSISTOR_ID_MAX + 1];
    tm_buffer(json, id);
    free(json);
    struct cli_result r;
    signal(SIGPIPE, SIG_DFL); /* what the command inherits, as from a shell */
    run_cli(NULL, TCLI("drain", "--exec", "exit 0"), &r);
    signal(SIGPIPE, SIG_IGN);
    assert_exit(&r, 3);
    assert_contains(r.err, "'exit 0' exited with status 0 before reading all of its input");
    cli_result_free(&r);
    bson_t *docs[2];
    size_t n = tm_lines(TCLI("claim"), docs, 2);
    assert_int_equal(n, 1);
    assert_string_equal(json_utf8(docs[0], "_id"), id);
    tm_free_lines(docs, n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_version_prints_version_and_exits_0),
        cmocka_unit_test(test_help_lists_commands_and_exit_codes),
        cmocka_unit_test(test_unknown_command_exits_2_with_hint),
        cmocka_unit_test(test_unknown_option_exits_2_with_hint),
        cmocka_unit_test(test_no_command_exits_2_with_hint),
        cmocka_unit_test(test_option_without_its_value_exits_2),
        cmocka_unit_test(test_option_value_may_follow_an_equals_sign),
        cmocka_unit_test(test_unknown_profile_exits_2_naming_it),
        cmocka_unit_test(test_malformed_profile_value_exits_2_with_file_line_column),
        cmocka_unit_test(test_malformed_yaml_exits_2_with_file_line_column),
        cmocka_unit_test(test_missing_profiles_file_exits_2_naming_it),
        cmocka_unit_test(test_profiles_lists_the_three_profiles),
        cmocka_unit_test(test_health_exits_0_and_lists_memory_adapter),
        cmocka_unit_test(test_health_json_is_valid_json),
        cmocka_unit_test(test_health_rejects_unexpected_argument),
        cmocka_unit_test(test_stats_json_uses_the_seed_field_names),
        cmocka_unit_test(test_stats_text_names_the_adapter),
        cmocka_unit_test(test_append_prints_a_64_hex_hash),
        cmocka_unit_test(test_audit_result_prints_its_workflow_id),
        cmocka_unit_test(test_audit_incident_prints_a_hash_and_refuses_a_bad_severity),
        cmocka_unit_test(test_audit_result_without_workflow_id_writes_nothing),
        cmocka_unit_test(test_append_same_content_ts_and_xc_twice_prints_same_hash),
        cmocka_unit_test(test_append_hash_ignores_json_formatting_and_source),
        cmocka_unit_test(test_append_with_hash_option_prints_that_hash),
        cmocka_unit_test(test_append_hash_is_the_documented_sha256_for_default_tenant),
        cmocka_unit_test(test_append_hash_is_the_documented_sha256_for_given_tenant),
        cmocka_unit_test(test_append_invalid_json_from_stdin_reports_line_and_column),
        cmocka_unit_test(test_append_invalid_json_from_file_reports_file_line_and_column),
        cmocka_unit_test(test_append_non_object_json_exits_2),
        cmocka_unit_test(test_append_text_after_the_object_exits_2),
        cmocka_unit_test(test_append_duplicate_key_exits_2),
        cmocka_unit_test(test_append_without_xc_exits_2),
        cmocka_unit_test(test_append_non_numeric_ts_exits_2),
        cmocka_unit_test(test_append_content_setting_a_reserved_field_exits_2),
        cmocka_unit_test(test_append_reserved_name_nested_in_content_is_allowed),
        cmocka_unit_test(test_append_unknown_option_or_second_file_exits_2),
        cmocka_unit_test(test_append_missing_input_file_exits_2_naming_it),
        cmocka_unit_test(test_append_input_over_16_mib_from_stdin_exits_2),
        cmocka_unit_test(test_append_input_over_16_mib_from_file_exits_2),
        cmocka_unit_test(test_append_document_over_16_mib_exits_2),
        cmocka_unit_test(test_snapshot_has_unknown_hash_exits_1),
        cmocka_unit_test(test_snapshot_get_unknown_hash_exits_1_with_message),
        cmocka_unit_test(test_snapshot_latest_unknown_context_exits_1_with_message),
        cmocka_unit_test(test_snapshot_rm_unknown_hash_exits_1_with_message),
        cmocka_unit_test(test_snapshot_load_unknown_context_exits_0_with_no_output),
        cmocka_unit_test(test_snapshot_hashes_unknown_context_exits_0_with_no_output),
        cmocka_unit_test(test_snapshot_subcommands_check_their_arguments),
        cmocka_unit_test(test_demo_exits_0_and_prints_its_summary),
        cmocka_unit_test(test_logs_are_json_lines_on_stderr_at_info_level),
        /* query, count, audit reports */
        Q(test_query_prints_records_sorted_filtered_and_limited),
        Q(test_count_prints_the_number_or_one_line_per_group),
        cmocka_unit_test(test_query_and_count_usage_errors_exit_2),
        cmocka_unit_test(test_query_and_count_reject_bad_input_with_exit_2),
        Q(test_audit_by_validity_and_history),
        Q(test_audit_status_and_sla_violations),
        Q(test_audit_critical_and_by_type),
        Q(test_audit_critical_shows_20_by_default),
        cmocka_unit_test(test_audit_report_usage_errors_exit_2),
        Q(test_a_degraded_answer_is_data_on_stdout_and_a_warning_on_stderr),
        /* telemetry */
        Q(test_telemetry_buffer_prints_one_id_per_record),
        Q(test_telemetry_claim_release_and_ack),
        Q(test_telemetry_dead_letters_are_listed_and_requeued),
        Q(test_telemetry_retried_lists_what_was_claimed),
        Q(test_telemetry_drain_pipes_every_record_and_acks_it),
        Q(test_telemetry_drain_stops_at_a_failing_cmd_and_releases_its_batch),
        Q(test_telemetry_drain_survives_a_cmd_that_stops_reading),
    };
    return cmocka_run_group_tests(tests, fx_setup, fx_teardown);
}
