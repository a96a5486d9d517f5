/*
 * harness.c — loading the adapter under test and opening a clean instance
 * for every case, the way libpersistor does: loader, config, open.
 *
 * Option values may contain {tmpdir}: each case gets a fresh mkdtemp
 * directory there, removed afterwards, so durable stores start empty.
 * {unique} becomes a fresh random token per case ([0-9a-f]{16}), for
 * stores named rather than placed in a directory (a MongoDB database:
 * -o database=conf_{unique}); nothing removes those afterwards.
 * Nothing here knows any particular adapter.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */

#include "harness.h"

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "buffer.h"
#include "error.h"
#include "group.h"
#include "host.h"
#include "query.h"

#define CONF_MAX_OPTIONS 64

/* The command line: read once in main, shared by every case. */
static struct {
    const char *type;
    const char *path;
    char *type_buf;
    size_t n_options;
    char *keys[CONF_MAX_OPTIONS];
    char *values[CONF_MAX_OPTIONS];
    const char *sources[CONF_MAX_OPTIONS]; /* where it came from, for marks */
} conf_cli;

static int conf_usage(const char *why)
{
    fprintf(stderr,
            "persistor-conformance: %s\n"
            "usage: persistor-conformance [-t TYPE] [-o KEY=VALUE]... [-f PATTERN] ADAPTER.so\n"
            "  -t TYPE       adapter type (default: the file's name without .so)\n"
            "  -o KEY=VALUE  an adapter option; {tmpdir} becomes a fresh directory per case,\n"
            "                {unique} a fresh random token per case\n"
            "  -f PATTERN    run only the cases whose name matches (cmocka filter)\n"
            "environment: PERSISTOR_CONFORMANCE_ADAPTER=ADAPTER.so,\n"
            "             PERSISTOR_CONFORMANCE_OPTIONS='k=v;k=v'\n",
            why);
    return 2;
}

static int conf_add_option(const char *text, size_t len, const char *source)
{
    const char *eq = memchr(text, '=', len);
    if (eq == NULL || eq == text)
        return conf_usage("an option must read KEY=VALUE");
    if (conf_cli.n_options == CONF_MAX_OPTIONS)
        return conf_usage("too many options");
    size_t i = conf_cli.n_options++;
    conf_cli.keys[i] = strndup(text, (size_t)(eq - text));
    conf_cli.values[i] = strndup(eq + 1, len - (size_t)(eq - text) - 1);
    conf_cli.sources[i] = source;
    return 0;
}

static int conf_add_env_options(const char *list)
{
    while (list != NULL && *list != '\0') {
        size_t len = strcspn(list, ";");
        if (len > 0 && conf_add_option(list, len, "PERSISTOR_CONFORMANCE_OPTIONS") != 0)
            return 2;
        list += len + (list[len] == ';');
    }
    return 0;
}

int conf_parse_args(int argc, char **argv, const char **test_filter)
{
    int opt;
    *test_filter = NULL;
    if (conf_add_env_options(getenv("PERSISTOR_CONFORMANCE_OPTIONS")) != 0)
        return 2;
    while ((opt = getopt(argc, argv, "t:o:f:h")) != -1) {
        switch (opt) {
        case 't': conf_cli.type = optarg; break;
        case 'o':
            if (conf_add_option(optarg, strlen(optarg), "<command line>") != 0)
                return 2;
            break;
        case 'f': *test_filter = optarg; break;
        default: return conf_usage("bad arguments");
        }
    }
    conf_cli.path = optind < argc ? argv[optind] : getenv("PERSISTOR_CONFORMANCE_ADAPTER");
    if (conf_cli.path == NULL || optind + 1 < argc)
        return conf_usage("name exactly one adapter file");
    if (conf_cli.type == NULL) {
        const char *base = strrchr(conf_cli.path, '/');
        base = base ? base + 1 : conf_cli.path;
        size_t len = strlen(base);
        if (len > 3 && strcmp(base + len - 3, ".so") == 0)
            len -= 3;
        conf_cli.type = conf_cli.type_buf = strndup(base, len);
    }
    return 0;
}

const char *conf_adapter_type(void)
{
    return conf_cli.type;
}

/* ---- per-case set-up ------------------------------------------------ */

static int64_t conf_clock(void *ctx)
{
    return ((const conf_fixture *)ctx)->now_ms;
}

/* `value` with every `tag` replaced by `with` (caller frees). */
static char *conf_replace(const char *value, const char *tag, const char *with)
{
    const size_t tlen = strlen(tag), dlen = strlen(with);
    size_t n = 0;
    for (const char *p = strstr(value, tag); p != NULL; p = strstr(p + tlen, tag))
        n++;
    char *out = malloc(strlen(value) + n * dlen + 1), *o = out;
    if (out == NULL)
        return NULL;
    for (const char *p = value, *hit;; p = hit + tlen) {
        if ((hit = strstr(p, tag)) == NULL) {
            strcpy(o, p);
            return out;
        }
        memcpy(o, p, (size_t)(hit - p));
        o += hit - p;
        memcpy(o, with, dlen);
        o += dlen;
    }
}

/* What {unique} becomes in the case being set up (cases run one at a
 * time; a new token is drawn at each set-up). */
static char conf_unique[17];

/* `value` with {tmpdir} and {unique} replaced (caller frees). */
static char *conf_expand(const char *value, const conf_fixture *f)
{
    char *dir = conf_replace(value, "{tmpdir}", f->tmpdir);
    char *out = dir ? conf_replace(dir, "{unique}", conf_unique) : NULL;
    free(dir);
    return out;
}

/* 16 hex digits from /dev/urandom (the clock and pid if it cannot be read):
 * two runs at once, or two cases, never share a store. */
static void conf_unique_token(char *out, size_t cap)
{
    static unsigned long counter;
    unsigned char bytes[8] = {0};
    FILE *rnd = fopen("/dev/urandom", "rb");
    if (rnd == NULL || fread(bytes, 1, sizeof bytes, rnd) != sizeof bytes) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        unsigned long long v = (unsigned long long)ts.tv_nsec ^
                               ((unsigned long long)ts.tv_sec << 20) ^
                               ((unsigned long long)getpid() << 40) ^ ++counter;
        memcpy(bytes, &v, sizeof bytes);
    }
    if (rnd != NULL)
        fclose(rnd);
    snprintf(out, cap, "%02x%02x%02x%02x%02x%02x%02x%02x", bytes[0], bytes[1], bytes[2],
             bytes[3], bytes[4], bytes[5], bytes[6], bytes[7]);
}

static int conf_entry_init(conf_fixture *f)
{
    profile_adapter *e = &f->entry;
    e->type = strdup(conf_cli.type);
    e->path = strdup(conf_cli.path);
    e->key_path = strdup("conformance.adapters[0]");
    e->mark = (profile_mark){"<command line>", 1, 1};
    e->type_mark = e->mark;
    e->options = calloc(conf_cli.n_options + 1, sizeof *e->options);
    if (!e->type || !e->path || !e->key_path || !e->options)
        return -1;
    for (size_t i = 0; i < conf_cli.n_options; i++) {
        profile_option *o = &e->options[e->n_options++];
        size_t kp_len = strlen(e->key_path) + strlen(conf_cli.keys[i]) + 2;
        o->key = strdup(conf_cli.keys[i]);
        o->value = conf_expand(conf_cli.values[i], f);
        o->key_path = malloc(kp_len);
        if (!o->key || !o->value || !o->key_path)
            return -1;
        snprintf(o->key_path, kp_len, "%s.%s", e->key_path, conf_cli.keys[i]);
        o->mark = (profile_mark){conf_cli.sources[i], 1, (uint32_t)i + 1};
    }
    return 0;
}

static void conf_entry_fini(profile_adapter *e)
{
    for (size_t i = 0; i < e->n_options; i++) {
        free(e->options[i].key);
        free(e->options[i].value);
        free(e->options[i].key_path);
    }
    free(e->options);
    free(e->type);
    free(e->path);
    free(e->key_path);
}

static int conf_rm(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

int32_t conf_open(conf_fixture *f, persistor_instance **out, persistor_error *err)
{
    return f->adapter->open(f->host, f->config, out, err);
}

static int conf_setup_steps(conf_fixture *f)
{
    persistor_error err = {0};
    char label[256];
    const char *tmp = getenv("TMPDIR");
    snprintf(f->tmpdir, sizeof f->tmpdir, "%s/persistor-conformance-XXXXXX",
             tmp && *tmp ? tmp : "/tmp");
    if (mkdtemp(f->tmpdir) == NULL) {
        print_error("mkdtemp %s failed\n", f->tmpdir);
        f->tmpdir[0] = '\0';
        return -1;
    }
    conf_unique_token(conf_unique, sizeof conf_unique);
    snprintf(label, sizeof label, "%s#0", conf_cli.type);
    if (conf_entry_init(f) != 0 || (f->host = host_new(label, conf_clock, f)) == NULL) {
        print_error("out of memory setting up\n");
        return -1;
    }
    /* As the router does: the module sees the default table, the
     * instance its own (with our clock). */
    if (loader_acquire(conf_cli.type, conf_cli.path, NULL, host_default(), &f->module, &err)) {
        print_error("loading %s: %s\n", conf_cli.path, err.message);
        return -1;
    }
    f->adapter = loader_adapter(f->module);
    if (config_new(&f->entry, f->adapter, label, &f->config, &err) != 0) {
        print_error("options: %s\n", err.message);
        return -1;
    }
    int32_t rc = conf_open(f, &f->inst, &err);
    if (rc != PERSISTOR_OK) {
        print_error("open: %s: %s\n", error_code_name(rc), err.message);
        f->inst = NULL;
        return -1;
    }
    return 0;
}

/* cmocka runs no teardown after a failed setup: clean up here then. */
int conf_setup(void **state)
{
    conf_fixture *f = calloc(1, sizeof *f);
    if (f == NULL)
        return -1;
    f->param = *state;
    f->now_ms = INT64_C(1700000000000); /* 2023-11-14T22:13:20Z */
    *state = f;
    if (conf_setup_steps(f) == 0)
        return 0;
    conf_teardown(state);
    return -1;
}

int conf_teardown(void **state)
{
    conf_fixture *f = *state;
    if (f == NULL)
        return 0;
    if (f->inst != NULL)
        f->adapter->close(f->inst);
    if (f->config != NULL)
        config_free(f->config);
    if (f->module != NULL)
        loader_release(f->module);
    if (f->host != NULL)
        host_free(f->host);
    conf_entry_fini(&f->entry);
    if (f->tmpdir[0] != '\0')
        nftw(f->tmpdir, conf_rm, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    *state = NULL;
    return 0;
}

/* ---- helpers -------------------------------------------------------- */

bson_t *conf_json(const char *json)
{
    char *text = strdup(json);
    bson_error_t error;
    assert_non_null(text);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    bson_t *doc = bson_new_from_json((const uint8_t *)text, -1, &error);
    if (doc == NULL)
        fail_msg("bad JSON in the case: %s: %s", error.message, text);
    free(text);
    return doc;
}

void conf_expect_at(int32_t rc, int32_t want, const persistor_error *err, const char *file,
                    int line)
{
    if (rc == want)
        return;
    print_error("ERROR: expected %s, got %s%s%s\n", error_code_name(want), error_code_name(rc),
                rc < 0 ? ": " : "", rc < 0 ? err->message : "");
    _fail(file, line);
}

const persistor_collection_spec *conf_keep_spec(conf_fixture *f, persistor_collection_spec spec)
{
    assert_true(f->n_specs < sizeof f->specs / sizeof f->specs[0]);
    f->specs[f->n_specs] = spec;
    return &f->specs[f->n_specs++];
}

void conf_ensure(conf_fixture *f, const char *collection)
{
    persistor_collection_spec spec = {sizeof spec, collection, NULL, 0, NULL, 0, NULL};
    persistor_error err = {0};
    conf_expect(f->adapter->ensure_collection(f->inst, conf_keep_spec(f, spec), &err),
                PERSISTOR_OK, &err);
}

int32_t conf_put(conf_fixture *f, const char *collection, uint32_t kind, const bson_t *doc)
{
    bson_iter_t it;
    persistor_error err = {0};
    int32_t result = -100;
    assert_true(bson_iter_init_find(&it, doc, "_id") && BSON_ITER_HOLDS_UTF8(&it));
    persistor_write_op op = {kind, doc->len, bson_iter_utf8(&it, NULL), bson_get_data(doc)};
    conf_expect(f->adapter->write(f->inst, collection, &op, 1, &result, &err), PERSISTOR_OK,
                &err);
    return result;
}

int32_t conf_put_json(conf_fixture *f, const char *collection, uint32_t kind, const char *json)
{
    bson_t *doc = conf_json(json);
    int32_t result = conf_put(f, collection, kind, doc);
    bson_destroy(doc);
    return result;
}

int32_t conf_delete(conf_fixture *f, const char *collection, const char *id)
{
    persistor_error err = {0};
    int32_t result = -100;
    persistor_write_op op = {PERSISTOR_WRITE_DELETE, 0, id, NULL};
    conf_expect(f->adapter->write(f->inst, collection, &op, 1, &result, &err), PERSISTOR_OK,
                &err);
    return result;
}

bson_t *conf_get(conf_fixture *f, const char *collection, const char *id)
{
    persistor_buffer buf = {0};
    persistor_error err = {0};
    int32_t rc = f->adapter->get(f->inst, collection, id, &buf, &err);
    if (rc == PERSISTOR_NOT_FOUND) {
        buffer_free(&buf);
        return NULL;
    }
    conf_expect(rc, PERSISTOR_OK, &err);
    bson_t *doc = bson_new_from_data(buf.data, buf.len);
    if (doc == NULL)
        fail_msg("get %s/%s returned %u bytes that are not BSON", collection, id, buf.len);
    buffer_free(&buf);
    return doc;
}

void conf_assert_stored(conf_fixture *f, const char *collection, const bson_t *want)
{
    bson_iter_t it;
    assert_true(bson_iter_init_find(&it, want, "_id"));
    const char *id = bson_iter_utf8(&it, NULL);
    bson_t *got = conf_get(f, collection, id);
    if (got == NULL)
        fail_msg("%s/%s: NOT_FOUND, expected a document", collection, id);
    if (got->len != want->len || memcmp(bson_get_data(got), bson_get_data(want), want->len)) {
        char *g = bson_as_canonical_extended_json(got, NULL);
        char *w = bson_as_canonical_extended_json(want, NULL);
        print_error("%s/%s\n  stored:   %s\n  expected: %s\n", collection, id, g, w);
        bson_free(g);
        bson_free(w);
        fail_msg("%s/%s: stored document differs (%u bytes vs %u expected)", collection, id,
                 got->len, want->len);
    }
    bson_destroy(got);
}

void conf_assert_absent(conf_fixture *f, const char *collection, const char *id)
{
    bson_t *got = conf_get(f, collection, id);
    if (got != NULL) {
        bson_destroy(got);
        fail_msg("%s/%s: found, expected NOT_FOUND", collection, id);
    }
}

static int conf_strcmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The _ids of a drained cursor, as one string. */
static char *conf_drain_ids(conf_fixture *f, persistor_cursor *cur, int sorted_set, int32_t *rc,
                            persistor_error *err)
{
    char **ids = NULL;
    size_t n = 0, size = 1;
    const uint8_t *doc;
    uint32_t len;
    while ((*rc = f->adapter->cursor_next(cur, &doc, &len, err)) == PERSISTOR_OK) {
        bson_t view;
        bson_iter_t it;
        assert_true(bson_init_static(&view, doc, len));
        assert_true(bson_iter_init_find(&it, &view, "_id") && BSON_ITER_HOLDS_UTF8(&it));
        ids = realloc(ids, (n + 1) * sizeof *ids);
        assert_non_null(ids);
        ids[n] = strdup(bson_iter_utf8(&it, NULL));
        size += strlen(ids[n++]) + 1;
    }
    if (sorted_set && n > 1)
        qsort(ids, n, sizeof *ids, conf_strcmp);
    char *out = calloc(1, size);
    assert_non_null(out);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            strcat(out, ",");
        strcat(out, ids[i]);
        free(ids[i]);
    }
    free(ids);
    if (*rc == PERSISTOR_ITER_END)
        return out;
    free(out);
    return NULL;
}

char *conf_query_ids(conf_fixture *f, const char *collection, const char *filter,
                     const char *sort, uint64_t skip, uint64_t limit, int sorted_set,
                     int32_t *rc, persistor_error *err)
{
    bson_t *fb = filter ? conf_json(filter) : NULL;
    bson_t *sb = sort ? conf_json(sort) : NULL;
    persistor_query q = {sizeof q,
                         fb ? fb->len : 0,
                         fb ? bson_get_data(fb) : NULL,
                         sb ? sb->len : 0,
                         sb ? bson_get_data(sb) : NULL,
                         skip,
                         limit};
    persistor_cursor *cur = NULL;
    char *ids = NULL;
    *rc = f->adapter->query(f->inst, collection, &q, &cur, err);
    if (*rc == PERSISTOR_OK) {
        ids = conf_drain_ids(f, cur, sorted_set, rc, err);
        f->adapter->cursor_close(cur);
    }
    if (fb)
        bson_destroy(fb);
    if (sb)
        bson_destroy(sb);
    return ids;
}

/* ---- grouped counts ------------------------------------------------- */

/* The host's answer when the adapter has no slot: group.c over a query. */
static int32_t conf_group_by_query(conf_fixture *f, const char *collection, const bson_t *filter,
                                   const char *field, persistor_buffer *out, persistor_error *err)
{
    persistor_query q = {.struct_size = sizeof q,
                         .filter = filter ? bson_get_data(filter) : NULL,
                         .filter_len = filter ? filter->len : 0};
    persistor_cursor *cur = NULL;
    group_counter *g = NULL;
    const uint8_t *doc;
    uint32_t len;
    int32_t rc = group_counter_new(field, &g, err);
    if (rc == PERSISTOR_OK)
        rc = f->adapter->query(f->inst, collection, &q, &cur, err);
    while (rc == PERSISTOR_OK &&
           (rc = f->adapter->cursor_next(cur, &doc, &len, err)) == PERSISTOR_OK)
        rc = group_counter_add(g, doc, len, err);
    if (cur != NULL)
        f->adapter->cursor_close(cur);
    if (rc == PERSISTOR_ITER_END)
        rc = group_counter_finish(g, out, err);
    group_counter_free(g);
    return rc;
}

int32_t conf_group_count(conf_fixture *f, const char *collection, const char *filter,
                         const char *field, bson_t **out, persistor_error *err)
{
    bson_t *fb = filter ? conf_json(filter) : NULL;
    persistor_buffer buf = {0};
    int32_t rc;
    *out = NULL;
    if (f->adapter->group_count != NULL)
        rc = f->adapter->group_count(f->inst, collection, fb ? bson_get_data(fb) : NULL,
                                     fb ? fb->len : 0, field, &buf, err);
    else
        rc = conf_group_by_query(f, collection, fb, field, &buf, err);
    if (rc == PERSISTOR_OK) {
        *out = bson_new_from_data(buf.data, buf.len);
        if (*out == NULL)
            fail_msg("group_count of %s by %s: the answer (%u bytes) is not BSON", collection,
                     field, buf.len);
    }
    buffer_free(&buf);
    if (fb)
        bson_destroy(fb);
    return rc;
}

/* Every group is exactly {_id, total: int64}. */
static void conf_check_group_shape(const bson_t *answer, const char *shown)
{
    bson_iter_t it, groups, one;
    if (!bson_iter_init_find(&it, answer, "groups") || !BSON_ITER_HOLDS_ARRAY(&it) ||
        bson_count_keys(answer) != 1 || !bson_iter_recurse(&it, &groups))
        fail_msg("group_count answered %s, not {groups: [...]}", shown);
    while (bson_iter_next(&groups)) {
        if (!BSON_ITER_HOLDS_DOCUMENT(&groups) || !bson_iter_recurse(&groups, &one) ||
            !bson_iter_next(&one) || strcmp(bson_iter_key(&one), "_id") != 0 ||
            !bson_iter_next(&one) || strcmp(bson_iter_key(&one), "total") != 0 ||
            !BSON_ITER_HOLDS_INT64(&one) || bson_iter_next(&one))
            fail_msg("group_count answered %s: a group is not {_id, total: int64}", shown);
    }
}

void conf_assert_groups(conf_fixture *f, const char *collection, const char *filter,
                        const char *field, const char *want)
{
    persistor_error err = {0};
    bson_t *got = NULL;
    conf_expect(conf_group_count(f, collection, filter, field, &got, &err), PERSISTOR_OK, &err);
    bson_t *expected = conf_json(want);
    char *shown = bson_as_canonical_extended_json(got, NULL);
    conf_check_group_shape(got, shown);
    /* Compared as values, so 1, 1.0 and 1L are one answer. */
    bson_t a = BSON_INITIALIZER, b = BSON_INITIALIZER;
    bson_iter_t ia, ib;
    BSON_APPEND_DOCUMENT(&a, "v", got);
    BSON_APPEND_DOCUMENT(&b, "v", expected);
    assert_true(bson_iter_init_find(&ia, &a, "v") && bson_iter_init_find(&ib, &b, "v"));
    if (query_value_compare(&ia, &ib) != 0)
        fail_msg("group_count of %s by '%s' (filter %s):\n  got  %s\n  want %s", collection,
                 field, filter ? filter : "none", shown, want);
    bson_free(shown);
    bson_destroy(&a);
    bson_destroy(&b);
    bson_destroy(expected);
    bson_destroy(got);
}
