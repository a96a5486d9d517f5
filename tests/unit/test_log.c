/*
 * test_log.c — the structured log: every line is one valid JSON object with
 * ts, level, event and the caller's fields; the level filters; values are
 * escaped and redacted; a value too long for a line still gives one valid
 * line, marked; and lines from many threads never interleave.
 *
 * Lines go to a temporary file (or, for the threads, a pipe drained by a
 * reader) through log_set_fd, and are parsed back with libbson.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <bson/bson.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* ------------------------------------------------------------------ */
/* Capturing lines                                                    */

typedef struct capture {
    int fd;     /* a temporary file, already unlinked */
    char *text; /* what was read back, NUL-terminated */
    size_t len;
} capture;

static void set_level(const char *level)
{
    if (level == NULL)
        unsetenv("PERSISTOR_LOG_LEVEL");
    else
        setenv("PERSISTOR_LOG_LEVEL", level, 1);
    log_reload_level();
}

static int capture_setup(void **state)
{
    capture *c = calloc(1, sizeof *c);
    assert_non_null(c);
    const char *dir = getenv("TMPDIR");
    char path[4096];
    snprintf(path, sizeof path, "%s/test_log.XXXXXX", dir != NULL && *dir ? dir : "/tmp");
    c->fd = mkstemp(path);
    assert_true(c->fd >= 0);
    unlink(path);
    log_set_fd(c->fd);
    set_level("debug");
    *state = c;
    return 0;
}

static int capture_teardown(void **state)
{
    capture *c = *state;
    log_set_fd(-1);
    set_level(NULL);
    close(c->fd);
    free(c->text);
    free(c);
    return 0;
}

/* Read back everything logged so far into c->text. */
static const char *captured(capture *c)
{
    off_t size = lseek(c->fd, 0, SEEK_END);
    assert_true(size >= 0);
    free(c->text);
    c->text = malloc((size_t)size + 1);
    assert_non_null(c->text);
    ssize_t got = pread(c->fd, c->text, (size_t)size, 0);
    assert_int_equal(got, size);
    c->text[size] = '\0';
    c->len = (size_t)size;
    return c->text;
}

/* Forget what was logged so far. */
static void capture_reset(capture *c)
{
    assert_int_equal(ftruncate(c->fd, 0), 0);
    assert_int_equal(lseek(c->fd, 0, SEEK_SET), 0);
}

static size_t count_lines(const char *text)
{
    size_t n = 0;
    for (const char *p = text; *p != '\0'; p++)
        n += *p == '\n';
    return n;
}

/* The single line logged so far, parsed; fails unless there is exactly one
 * line, it ends with a newline and it is a valid JSON object. */
static bson_t *the_only_line(capture *c)
{
    const char *text = captured(c);
    assert_int_equal(count_lines(text), 1);
    assert_true(c->len > 0 && text[c->len - 1] == '\n');
    assert_true(c->len <= sizeof(((log_line *)0)->text));
    assert_true(bson_utf8_validate(text, c->len, false));
    bson_error_t error;
    bson_t *doc = bson_new_from_json((const uint8_t *)text, (ssize_t)c->len - 1, &error);
    if (doc == NULL)
        fail_msg("not valid JSON (%s): %s", error.message, text);
    return doc;
}

static const char *utf8_field(const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (!bson_iter_init_find(&it, doc, key) || !BSON_ITER_HOLDS_UTF8(&it))
        fail_msg("no string field \"%s\"", key);
    return bson_iter_utf8(&it, NULL);
}

static bool is_marked_truncated(const bson_t *doc)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, doc, "truncated") && BSON_ITER_HOLDS_BOOL(&it) &&
           bson_iter_bool(&it);
}

/* Log one line with a single string field and return it parsed. */
static bson_t *log_one_str(capture *c, const char *key, const char *value)
{
    log_line line;
    assert_true(log_begin(&line, PERSISTOR_LOG_ERROR, "test_event"));
    log_str(&line, key, value);
    log_end(&line);
    return the_only_line(c);
}

/* What a value looks like after redaction, as read back from the log. */
static void assert_logged_as(capture *c, const char *value, const char *want)
{
    bson_t *doc = log_one_str(c, "value", value);
    assert_string_equal(utf8_field(doc, "value"), want);
    bson_destroy(doc);
}

/* ------------------------------------------------------------------ */
/* Shape of a line                                                    */

static void test_line_is_json_with_ts_level_event_and_fields(void **state)
{
    capture *c = *state;
    log_line line;
    assert_true(log_begin(&line, PERSISTOR_LOG_INFO, "adapter_loaded"));
    log_str(&line, "adapter", "memory");
    log_int(&line, "ms", -42);
    log_int(&line, "big", INT64_MAX);
    log_bool(&line, "ok", true);
    log_double(&line, "ratio", 0.25);
    log_str(&line, "missing", NULL);
    log_end(&line);

    bson_t *doc = the_only_line(c);
    const char *ts = utf8_field(doc, "ts");
    /* ISO-8601 UTC with milliseconds: 2024-01-31T12:34:56.789Z */
    assert_int_equal(strlen(ts), 24);
    assert_true(ts[4] == '-' && ts[7] == '-' && ts[10] == 'T' && ts[13] == ':' &&
                ts[16] == ':' && ts[19] == '.' && ts[23] == 'Z');
    assert_string_equal(utf8_field(doc, "level"), "info");
    assert_string_equal(utf8_field(doc, "event"), "adapter_loaded");
    assert_string_equal(utf8_field(doc, "adapter"), "memory");

    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "ms"));
    assert_int_equal(bson_iter_as_int64(&it), -42);
    assert_true(bson_iter_init_find(&it, doc, "big"));
    assert_true(bson_iter_as_int64(&it) == INT64_MAX);
    assert_true(bson_iter_init_find(&it, doc, "ok") && BSON_ITER_HOLDS_BOOL(&it));
    assert_true(bson_iter_bool(&it));
    assert_true(bson_iter_init_find(&it, doc, "ratio") && BSON_ITER_HOLDS_DOUBLE(&it));
    assert_true(bson_iter_double(&it) == 0.25);
    assert_true(bson_iter_init_find(&it, doc, "missing") && BSON_ITER_HOLDS_NULL(&it));
    assert_false(is_marked_truncated(doc));
    bson_destroy(doc);
}

static void test_each_level_is_named_in_its_line(void **state)
{
    capture *c = *state;
    static const struct {
        int32_t level;
        const char *name;
    } levels[] = {{PERSISTOR_LOG_DEBUG, "debug"},
                  {PERSISTOR_LOG_INFO, "info"},
                  {PERSISTOR_LOG_WARN, "warn"},
                  {PERSISTOR_LOG_ERROR, "error"}};
    for (size_t i = 0; i < sizeof levels / sizeof levels[0]; i++) {
        capture_reset(c);
        log_line line;
        assert_true(log_begin(&line, levels[i].level, "leveled"));
        log_end(&line);
        bson_t *doc = the_only_line(c);
        assert_string_equal(utf8_field(doc, "level"), levels[i].name);
        bson_destroy(doc);
    }
}

static void test_non_finite_double_still_gives_valid_json(void **state)
{
    capture *c = *state;
    log_line line;
    assert_true(log_begin(&line, PERSISTOR_LOG_WARN, "ratio"));
    log_double(&line, "nan", NAN);
    log_double(&line, "inf", INFINITY);
    log_double(&line, "minus_inf", -INFINITY);
    log_end(&line);
    bson_t *doc = the_only_line(c);
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, doc, "nan") && BSON_ITER_HOLDS_NULL(&it));
    assert_true(bson_iter_init_find(&it, doc, "inf") && BSON_ITER_HOLDS_NULL(&it));
    assert_true(bson_iter_init_find(&it, doc, "minus_inf") && BSON_ITER_HOLDS_NULL(&it));
    bson_destroy(doc);
}

/* ------------------------------------------------------------------ */
/* Levels                                                             */

static void test_debug_line_hidden_at_warn_level(void **state)
{
    capture *c = *state;
    set_level("warn");
    log_line line;
    assert_false(log_enabled(PERSISTOR_LOG_DEBUG));
    assert_false(log_enabled(PERSISTOR_LOG_INFO));
    assert_true(log_enabled(PERSISTOR_LOG_WARN));
    assert_true(log_enabled(PERSISTOR_LOG_ERROR));
    assert_false(log_begin(&line, PERSISTOR_LOG_DEBUG, "hidden"));
    assert_false(log_begin(&line, PERSISTOR_LOG_INFO, "hidden"));
    assert_string_equal(captured(c), "");
}

static void test_debug_line_shown_at_debug_level(void **state)
{
    capture *c = *state;
    set_level("debug");
    log_line line;
    assert_true(log_enabled(PERSISTOR_LOG_DEBUG));
    assert_true(log_begin(&line, PERSISTOR_LOG_DEBUG, "shown"));
    log_end(&line);
    bson_t *doc = the_only_line(c);
    assert_string_equal(utf8_field(doc, "event"), "shown");
    assert_string_equal(utf8_field(doc, "level"), "debug");
    bson_destroy(doc);
}

static void test_off_level_hides_every_line(void **state)
{
    capture *c = *state;
    set_level("off");
    log_line line;
    assert_false(log_enabled(PERSISTOR_LOG_ERROR));
    assert_false(log_begin(&line, PERSISTOR_LOG_ERROR, "hidden"));
    assert_false(log_begin(&line, PERSISTOR_LOG_DEBUG, "hidden"));
    assert_string_equal(captured(c), "");
}

static void test_unset_or_unknown_level_means_warn(void **state)
{
    (void)state;
    set_level(NULL);
    assert_false(log_enabled(PERSISTOR_LOG_INFO));
    assert_true(log_enabled(PERSISTOR_LOG_WARN));
    set_level("chatty");
    assert_false(log_enabled(PERSISTOR_LOG_INFO));
    assert_true(log_enabled(PERSISTOR_LOG_WARN));
    set_level("ERROR"); /* case does not matter */
    assert_false(log_enabled(PERSISTOR_LOG_WARN));
    assert_true(log_enabled(PERSISTOR_LOG_ERROR));
}

/* ------------------------------------------------------------------ */
/* Escaping                                                           */

static void test_quotes_backslashes_and_control_characters_are_escaped(void **state)
{
    capture *c = *state;
    const char *value = "say \"hi\" to C:\\temp\nnext\tline\r\x01\x1f end";
    assert_logged_as(c, value, value);
}

static void test_key_with_quote_is_escaped(void **state)
{
    capture *c = *state;
    bson_t *doc = log_one_str(c, "we\"ird\\key", "v");
    assert_string_equal(utf8_field(doc, "we\"ird\\key"), "v");
    bson_destroy(doc);
}

static void test_utf8_passes_through_unchanged(void **state)
{
    capture *c = *state;
    const char *text = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"; /* 2, 3 and 4 bytes */
    assert_logged_as(c, text, text);
}

/* ------------------------------------------------------------------ */
/* Redaction                                                          */

static void test_mongodb_uri_password_is_masked(void **state)
{
    capture *c = *state;
    assert_logged_as(c, "mongodb://user:s3cret@host:27017/db", "mongodb://user:***@host:27017/db");
    assert_null(strstr(c->text, "s3cret"));
}

static void test_mongodb_srv_uri_password_is_masked(void **state)
{
    capture *c = *state;
    assert_logged_as(c, "mongodb+srv://u:p@x", "mongodb+srv://u:***@x");
}

static void test_uri_inside_a_message_is_masked(void **state)
{
    capture *c = *state;
    assert_logged_as(c, "cannot reach mongodb://admin:hunter2@db1:27017,db2:27017/kodus: timeout",
                     "cannot reach mongodb://admin:***@db1:27017,db2:27017/kodus: timeout");
    assert_null(strstr(c->text, "hunter2"));
}

static void test_password_parameter_is_masked(void **state)
{
    capture *c = *state;
    assert_logged_as(c, "password=abc&x=1", "password=***&x=1");
}

static void test_token_parameter_is_masked(void **state)
{
    capture *c = *state;
    assert_logged_as(c, "token=xyz", "token=***");
}

static void test_secret_keys_are_masked_whatever_their_case_and_prefix(void **state)
{
    capture *c = *state;
    assert_logged_as(c, "host=h;PWD=abc;user=u", "host=h;PWD=***;user=u");
    capture_reset(c);
    /* The usual spellings: a word before the key, joined by '_'. */
    assert_logged_as(c, "https://api.example/v1?access_token=tk1&client_secret=cs2 DB_PASSWORD=pw3",
                     "https://api.example/v1?access_token=***&client_secret=*** DB_PASSWORD=***");
    assert_null(strstr(c->text, "tk1"));
    assert_null(strstr(c->text, "cs2"));
    assert_null(strstr(c->text, "pw3"));
}

static void test_key_that_only_ends_like_a_secret_key_is_kept(void **state)
{
    capture *c = *state;
    /* "notoken" is one word, not "token". */
    assert_logged_as(c, "notoken=1", "notoken=1");
}

static void test_uri_without_password_is_unchanged(void **state)
{
    capture *c = *state;
    assert_logged_as(c, "mongodb://user@host:27017/db", "mongodb://user@host:27017/db");
    capture_reset(c);
    assert_logged_as(c, "mongodb://localhost:27017/kodus", "mongodb://localhost:27017/kodus");
}

static void test_at_sign_without_scheme_is_unchanged(void **state)
{
    capture *c = *state;
    assert_logged_as(c, "mail alice@example.com at 10:30", "mail alice@example.com at 10:30");
}

static void test_event_name_is_redacted_too(void **state)
{
    capture *c = *state;
    log_line line;
    assert_true(log_begin(&line, PERSISTOR_LOG_ERROR, "failed token=abc"));
    log_end(&line);
    bson_t *doc = the_only_line(c);
    assert_string_equal(utf8_field(doc, "event"), "failed token=***");
    bson_destroy(doc);
}

static void test_redact_always_terminates_within_capacity(void **state)
{
    (void)state;
    char out[8];
    memset(out, 'z', sizeof out);
    log_redact("password=abcdef", out, 5);
    assert_string_equal(out, "pass");
    log_redact("anything", out, 1);
    assert_string_equal(out, "");
    out[0] = 'z';
    log_redact("anything", out, 0); /* no room at all: nothing written */
    assert_int_equal(out[0], 'z');
}

/* ------------------------------------------------------------------ */
/* Lines that do not fit                                              */

static char *repeat(const char *unit, size_t times)
{
    size_t n = strlen(unit);
    char *s = malloc(n * times + 1);
    assert_non_null(s);
    for (size_t i = 0; i < times; i++)
        memcpy(s + i * n, unit, n);
    s[n * times] = '\0';
    return s;
}

/* The value as logged is what was given, or a proper prefix of it in a line
 * marked truncated. */
static void assert_whole_or_marked_prefix(const bson_t *doc, const char *key, const char *given)
{
    const char *logged = utf8_field(doc, key);
    size_t n = strlen(logged);
    if (n == strlen(given)) {
        assert_string_equal(logged, given);
        assert_false(is_marked_truncated(doc));
        return;
    }
    assert_true(n > 0 && n < strlen(given));
    assert_memory_equal(logged, given, n);
    assert_true(is_marked_truncated(doc));
}

static void test_very_long_value_gives_one_valid_line_marked_truncated(void **state)
{
    capture *c = *state;
    char *value = repeat("x", 100000);
    bson_t *doc = log_one_str(c, "value", value);
    assert_string_equal(utf8_field(doc, "event"), "test_event");
    assert_whole_or_marked_prefix(doc, "value", value);
    assert_true(is_marked_truncated(doc));
    bson_destroy(doc);
    free(value);
}

static void test_long_value_of_control_characters_gives_one_valid_line(void **state)
{
    capture *c = *state;
    /* Each byte becomes a six-character \u00XX escape: a cut must never
     * land inside one. */
    for (size_t n = 225; n <= 240; n++) {
        capture_reset(c);
        char *value = repeat("\x01", n);
        bson_t *doc = log_one_str(c, "value", value);
        assert_whole_or_marked_prefix(doc, "value", value);
        bson_destroy(doc);
        free(value);
    }
}

static void test_long_quotes_value_is_cut_between_escapes(void **state)
{
    capture *c = *state;
    for (size_t n = 690; n <= 700; n++) {
        capture_reset(c);
        char *value = repeat("\"", n);
        bson_t *doc = log_one_str(c, "value", value);
        assert_whole_or_marked_prefix(doc, "value", value);
        bson_destroy(doc);
        free(value);
    }
}

static void test_long_multibyte_value_is_cut_on_a_character_boundary(void **state)
{
    capture *c = *state;
    static const char *const units[] = {"\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80"};
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        capture_reset(c);
        char *value = repeat(units[u], 2000);
        bson_t *doc = log_one_str(c, "value", value); /* checks UTF-8 validity */
        assert_whole_or_marked_prefix(doc, "value", value);
        assert_true(is_marked_truncated(doc));
        assert_int_equal(strlen(utf8_field(doc, "value")) % strlen(units[u]), 0);
        bson_destroy(doc);
        free(value);
    }
}

static void test_too_many_fields_drop_whole_fields_and_mark_truncated(void **state)
{
    capture *c = *state;
    char *value = repeat("v", 300);
    log_line line;
    assert_true(log_begin(&line, PERSISTOR_LOG_ERROR, "crowded"));
    char key[16];
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof key, "field%02d", i);
        log_str(&line, key, value);
    }
    log_int(&line, "after", 7);
    log_end(&line);
    bson_t *doc = the_only_line(c);
    assert_true(is_marked_truncated(doc));
    assert_string_equal(utf8_field(doc, "field00"), value);
    /* Every field that is there is whole. */
    bson_iter_t it;
    assert_true(bson_iter_init(&it, doc));
    int kept = 0;
    while (bson_iter_next(&it)) {
        if (strncmp(bson_iter_key(&it), "field", 5) != 0)
            continue;
        assert_string_equal(bson_iter_utf8(&it, NULL), value);
        kept++;
    }
    assert_true(kept > 0 && kept < 20);
    bson_destroy(doc);
    free(value);
}

/* ------------------------------------------------------------------ */
/* Threads                                                            */

#define LOG_THREADS 8
#define LOG_LINES_PER_THREAD 500

typedef struct drain {
    int fd;
    char *text;
    size_t len, cap;
} drain;

static void *drain_run(void *arg)
{
    drain *d = arg;
    for (;;) {
        if (d->cap - d->len < 65536) {
            d->cap = d->cap * 2 + 65536;
            d->text = realloc(d->text, d->cap);
            if (d->text == NULL)
                return NULL;
        }
        ssize_t got = read(d->fd, d->text + d->len, d->cap - d->len - 1);
        if (got < 0 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        d->len += (size_t)got;
    }
    d->text[d->len] = '\0';
    return NULL;
}

static void *writer_run(void *arg)
{
    int id = (int)(intptr_t)arg;
    char filler[200];
    memset(filler, 'a' + id, sizeof filler - 1);
    filler[sizeof filler - 1] = '\0';
    for (int i = 0; i < LOG_LINES_PER_THREAD; i++) {
        log_line line;
        if (!log_begin(&line, PERSISTOR_LOG_INFO, "threaded"))
            continue;
        log_int(&line, "thread", id);
        log_int(&line, "seq", i);
        log_str(&line, "filler", filler);
        log_str(&line, "uri", "mongodb://u:pw@h/db");
        log_end(&line);
    }
    return NULL;
}

static void test_eight_threads_write_4000_intact_lines(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    drain d = {.fd = fds[0]};
    pthread_t reader, writers[LOG_THREADS];
    assert_int_equal(pthread_create(&reader, NULL, drain_run, &d), 0);
    log_set_fd(fds[1]);
    for (int t = 0; t < LOG_THREADS; t++)
        assert_int_equal(pthread_create(&writers[t], NULL, writer_run, (void *)(intptr_t)t), 0);
    for (int t = 0; t < LOG_THREADS; t++)
        pthread_join(writers[t], NULL);
    log_set_fd(-1);
    close(fds[1]);
    pthread_join(reader, NULL);
    close(fds[0]);
    assert_non_null(d.text);

    int next_seq[LOG_THREADS] = {0};
    size_t lines = 0;
    char *start = d.text;
    for (char *nl; (nl = strchr(start, '\n')) != NULL; start = nl + 1) {
        bson_error_t error;
        bson_t *doc = bson_new_from_json((const uint8_t *)start, nl - start, &error);
        if (doc == NULL)
            fail_msg("line %zu is not valid JSON (%s)", lines + 1, error.message);
        bson_iter_t it;
        assert_true(bson_iter_init_find(&it, doc, "thread"));
        int t = (int)bson_iter_as_int64(&it);
        assert_true(t >= 0 && t < LOG_THREADS);
        assert_true(bson_iter_init_find(&it, doc, "seq"));
        /* One thread's lines arrive in the order it wrote them. */
        assert_int_equal(bson_iter_as_int64(&it), next_seq[t]);
        next_seq[t]++;
        assert_string_equal(utf8_field(doc, "uri"), "mongodb://u:***@h/db");
        assert_int_equal(strlen(utf8_field(doc, "filler")), 199);
        bson_destroy(doc);
        lines++;
    }
    assert_string_equal(start, ""); /* nothing after the last newline */
    assert_int_equal(lines, LOG_THREADS * LOG_LINES_PER_THREAD);
    for (int t = 0; t < LOG_THREADS; t++)
        assert_int_equal(next_seq[t], LOG_LINES_PER_THREAD);
    free(d.text);
}

int main(void)
{
#define T(name) cmocka_unit_test_setup_teardown(name, capture_setup, capture_teardown)
    const struct CMUnitTest tests[] = {
        T(test_line_is_json_with_ts_level_event_and_fields),
        T(test_each_level_is_named_in_its_line),
        T(test_non_finite_double_still_gives_valid_json),
        T(test_debug_line_hidden_at_warn_level),
        T(test_debug_line_shown_at_debug_level),
        T(test_off_level_hides_every_line),
        T(test_unset_or_unknown_level_means_warn),
        T(test_quotes_backslashes_and_control_characters_are_escaped),
        T(test_key_with_quote_is_escaped),
        T(test_utf8_passes_through_unchanged),
        T(test_mongodb_uri_password_is_masked),
        T(test_mongodb_srv_uri_password_is_masked),
        T(test_uri_inside_a_message_is_masked),
        T(test_password_parameter_is_masked),
        T(test_token_parameter_is_masked),
        T(test_secret_keys_are_masked_whatever_their_case_and_prefix),
        T(test_key_that_only_ends_like_a_secret_key_is_kept),
        T(test_uri_without_password_is_unchanged),
        T(test_at_sign_without_scheme_is_unchanged),
        T(test_event_name_is_redacted_too),
        T(test_redact_always_terminates_within_capacity),
        T(test_very_long_value_gives_one_valid_line_marked_truncated),
        T(test_long_value_of_control_characters_gives_one_valid_line),
        T(test_long_quotes_value_is_cut_between_escapes),
        T(test_long_multibyte_value_is_cut_on_a_character_boundary),
        T(test_too_many_fields_drop_whole_fields_and_mark_truncated),
        T(test_eight_threads_write_4000_intact_lines),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
