/*
 * profile.c — environment profiles: YAML text to checked profile structs.
 *
 * yaml_tree.c turns the file into nodes (aliases shared, merge keys
 * resolved on demand); this file walks them with the profile schema,
 * interpolating ${VAR} in values and converting types, and only then picks
 * the profile asked for.  Every profile of the file is checked, so a typo
 * in `production` is caught on a developer's machine.
 *
 * Must not: touch any store, know any adapter's own options (config.c
 * checks those), keep state between calls, or read the environment for
 * anything but ${VAR}.  Whatever the input, it must end in OK or an error
 * that frees everything it built.
 */
#include "profile.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "yaml_tree.h"

/* A profiles file is a few kilobytes; this only stops hostile input. */
#define PROFILE_MAX_FILE_BYTES (1u << 20)

typedef struct ctx {
    ytree_ctx y;           /* first: errors and the alias budget */
    const char *mark_file; /* the current profile's copy of the file name */
} ctx;

static int32_t fail(ctx *c, const ytree_node *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int32_t fail(ctx *c, const ytree_node *at, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int32_t rc = ytree_vfail_at(&c->y, at->line, at->column, path, fmt, ap);
    va_end(ap);
    return rc;
}

static int32_t nomem(ctx *c)
{
    return ytree_nomem(&c->y);
}

/* A mapping's pairs; an empty value counts as an empty mapping. */
static int32_t expect_map(ctx *c, const ytree_node *n, const char *path, ytree_pairs *out)
{
    char got[64];
    if (ytree_is_null(n))
        return PERSISTOR_OK;
    if (n->kind != YTREE_MAPPING)
        return fail(c, n, path, "expected a mapping, got %s", ytree_describe(n, got, sizeof got));
    return ytree_flatten(&c->y, n, path, out);
}

static int key_index(const char *key, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(key, names[i]) == 0)
            return (int)i;
    return -1;
}

static int32_t unknown_key(ctx *c, const ytree_pair *pr, const char *path, const char *what,
                           const char *const *names, size_t n)
{
    char list[256] = "", kp[YTREE_PATH_LEN];
    size_t used = 0;
    for (size_t i = 0; i < n && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "", names[i]);
    ytree_path_key(kp, path, pr->key->text);
    return fail(c, pr->key, kp, "unknown %s (expected one of: %s)", what, list);
}

/* ------------------------------------------------------------------------
 * Scalar values: interpolation and types
 * --------------------------------------------------------------------- */

typedef struct strbuf {
    char *data;
    size_t len, cap;
} strbuf;

static int strbuf_add(strbuf *sb, const char *s, size_t len)
{
    if (sb->len + len + 1 > sb->cap) {
        size_t cap = sb->cap ? sb->cap : 32;
        while (cap < sb->len + len + 1)
            cap *= 2;
        char *grown = realloc(sb->data, cap);
        if (grown == NULL)
            return 0;
        sb->data = grown;
        sb->cap = cap;
    }
    memcpy(sb->data + sb->len, s, len);
    sb->len += len;
    sb->data[sb->len] = '\0';
    return 1;
}

static int is_name_start(char ch)
{
    return (ch >= 'A' && ch <= 'Z') || (ch >= 'a' && ch <= 'z') || ch == '_';
}

static int is_name_char(char ch)
{
    return is_name_start(ch) || (ch >= '0' && ch <= '9');
}

/* One ${NAME} or ${NAME:-default} starting at `at`; *rest is set past it. */
static int32_t expand_one(ctx *c, const ytree_node *n, const char *path, const char *at, strbuf *sb,
                          const char **rest)
{
    const char *name = at + 2, *p = name;
    if (!is_name_start(*p))
        return fail(c, n, path,
                    "malformed ${...}: a variable name is letters, digits and _, "
                    "not starting with a digit (write $$ for a literal $)");
    while (is_name_char(*p))
        p++;
    int name_len = (int)(p - name);
    const char *def = NULL;
    size_t def_len = 0;
    if (p[0] == ':' && p[1] == '-') {
        def = p + 2;
        p = strchr(def, '}');
        if (p == NULL)
            return fail(c, n, path, "unterminated ${%.*s:-... (add the closing })", name_len, name);
        def_len = (size_t)(p - def);
        for (size_t i = 0; i + 1 < def_len; i++)
            if (def[i] == '$' && def[i + 1] == '{')
                return fail(c, n, path, "a default inside ${%.*s:-...} cannot hold another ${}",
                            name_len, name);
    }
    if (*p == '\0')
        return fail(c, n, path, "unterminated ${%.*s (add the closing })", name_len, name);
    if (*p != '}')
        return fail(c, n, path, "malformed ${%.*s...}: expected } or :- after the name", name_len,
                    name);
    char var[128];
    if (name_len >= (int)sizeof var)
        return fail(c, n, path, "variable name longer than %zu characters", sizeof var - 1);
    memcpy(var, name, (size_t)name_len);
    var[name_len] = '\0';
    const char *value = getenv(var);
    *rest = p + 1;
    if (def != NULL && (value == NULL || value[0] == '\0'))
        return strbuf_add(sb, def, def_len) ? PERSISTOR_OK : nomem(c);
    if (value == NULL)
        return fail(c, n, path, "undefined variable ${%s} (set it, or write ${%s:-default})", var,
                    var);
    return strbuf_add(sb, value, strlen(value)) ? PERSISTOR_OK : nomem(c);
}

/*
 * A scalar value's text with ${VAR}, ${VAR:-default} and $$ replaced
 * (malloc'd).  A `$` followed by anything else is kept, so passwords and
 * patterns with a lone `$` need no escaping.
 */
static int32_t interpolate(ctx *c, const ytree_node *n, const char *path, char **out)
{
    char got[64];
    if (n->kind != YTREE_SCALAR)
        return fail(c, n, path, "expected a scalar, got %s", ytree_describe(n, got, sizeof got));
    if (strlen(n->text) != n->len)
        return fail(c, n, path, "a value must not contain a NUL character");
    strbuf sb = {0};
    int32_t rc = strbuf_add(&sb, "", 0) ? PERSISTOR_OK : nomem(c);
    const char *s = n->text;
    while (rc == PERSISTOR_OK && *s != '\0') {
        const char *dollar = strchr(s, '$');
        if (dollar == NULL) {
            rc = strbuf_add(&sb, s, strlen(s)) ? PERSISTOR_OK : nomem(c);
            break;
        }
        /* "$$" and a lone "$" both leave one "$"; "${" leaves none. */
        size_t keep = (size_t)(dollar - s) + (dollar[1] != '{');
        if (!strbuf_add(&sb, s, keep)) {
            rc = nomem(c);
            break;
        }
        if (dollar[1] == '{')
            rc = expand_one(c, n, path, dollar, &sb, &s);
        else
            s = dollar + 1 + (dollar[1] == '$');
    }
    if (rc != PERSISTOR_OK) {
        free(sb.data);
        return rc;
    }
    *out = sb.data;
    return PERSISTOR_OK;
}

/* Optional text: an empty value, ~ or null leaves it unset (NULL). */
static int32_t value_opt_text(ctx *c, const ytree_node *n, const char *path, char **out)
{
    free(*out);
    *out = NULL;
    if (ytree_is_null(n))
        return PERSISTOR_OK;
    return interpolate(c, n, path, out);
}

static int32_t value_name(ctx *c, const ytree_node *n, const char *path, char **out)
{
    char *text = NULL;
    int32_t rc = interpolate(c, n, path, &text);
    if (rc != PERSISTOR_OK)
        return rc;
    if (text[0] == '\0') {
        free(text);
        return fail(c, n, path, "must not be empty");
    }
    free(*out);
    *out = text;
    return PERSISTOR_OK;
}

static int32_t value_int(ctx *c, const ytree_node *n, const char *path, int64_t min, int64_t max,
                         int64_t *out)
{
    char *text = NULL, got[64];
    int32_t rc = interpolate(c, n, path, &text);
    if (rc != PERSISTOR_OK)
        return rc;
    const char *digits = text + (text[0] == '+' || text[0] == '-');
    char *end = NULL;
    errno = 0;
    long long v = (*digits >= '0' && *digits <= '9') ? strtoll(text, &end, 10) : 0;
    if (end == NULL || *end != '\0')
        rc = fail(c, n, path, "expected an integer, got %s", ytree_quote(text, got, sizeof got));
    else if ((errno == ERANGE && v < 0) || v < min)
        rc = fail(c, n, path, "must be at least %lld, got %s", (long long)min, text);
    else if (errno == ERANGE || v > max)
        rc = fail(c, n, path, "must be at most %lld, got %s", (long long)max, text);
    else
        *out = v;
    free(text);
    return rc;
}

static int32_t value_u32(ctx *c, const ytree_node *n, const char *path, uint32_t min, uint32_t *out)
{
    int64_t v = 0;
    int32_t rc = value_int(c, n, path, min, UINT32_MAX, &v);
    if (rc == PERSISTOR_OK)
        *out = (uint32_t)v;
    return rc;
}

static int32_t value_coefficient(ctx *c, const ytree_node *n, const char *path, double *out)
{
    char *text = NULL, got[64];
    int32_t rc = interpolate(c, n, path, &text);
    if (rc != PERSISTOR_OK)
        return rc;
    const char *digits = text + (text[0] == '+' || text[0] == '-');
    char *end = NULL;
    double v = (*digits == '.' || (*digits >= '0' && *digits <= '9')) ? strtod(text, &end) : 0;
    if (end == NULL || end == text || *end != '\0' || !isfinite(v))
        rc = fail(c, n, path, "expected a number, got %s", ytree_quote(text, got, sizeof got));
    else if (v < 1.0)
        rc = fail(c, n, path, "must be at least 1.0, got %s", text);
    else
        *out = v;
    free(text);
    return rc;
}

static int32_t value_on_failure(ctx *c, const ytree_node *n, const char *path,
                                profile_on_failure *out)
{
    char *text = NULL, got[64];
    int32_t rc = interpolate(c, n, path, &text);
    if (rc != PERSISTOR_OK)
        return rc;
    if (strcmp(text, "fail_closed") == 0)
        *out = PROFILE_FAIL_CLOSED;
    else if (strcmp(text, "fail_open") == 0)
        *out = PROFILE_FAIL_OPEN;
    else
        rc = fail(c, n, path, "expected fail_closed or fail_open, got %s",
                  ytree_quote(text, got, sizeof got));
    free(text);
    return rc;
}

static int32_t value_bool(ctx *c, const ytree_node *n, const char *path, bool *out)
{
    char *text = NULL, got[64];
    int32_t rc = interpolate(c, n, path, &text);
    if (rc != PERSISTOR_OK)
        return rc;
    if (strcmp(text, "true") == 0 || strcmp(text, "yes") == 0 || strcmp(text, "on") == 0)
        *out = true;
    else if (strcmp(text, "false") == 0 || strcmp(text, "no") == 0 || strcmp(text, "off") == 0)
        *out = false;
    else
        rc = fail(c, n, path, "expected true or false, got %s", ytree_quote(text, got, sizeof got));
    free(text);
    return rc;
}

static profile_mark mark_of(const ctx *c, const ytree_node *n)
{
    return (profile_mark){c->mark_file, n->line, n->column};
}

/* ------------------------------------------------------------------------
 * The schema
 * --------------------------------------------------------------------- */

static const char *const collection_keys[PROFILE_COLL_COUNT] = {
    "snapshots", "validation_audit", "workflow_results", "incidents", "telemetry_buffer",
};

static int32_t walk_collection(ctx *c, const ytree_node *n, const char *path,
                               profile_collection *coll)
{
    static const char *const keys[] = {"name", "ttl_seconds", "on_failure"};
    ytree_pairs ps = {0};
    char kp[YTREE_PATH_LEN];
    int32_t rc = expect_map(c, n, path, &ps);
    for (size_t i = 0; rc == PERSISTOR_OK && i < ps.n; i++) {
        const ytree_pair *pr = &ps.items[i];
        ytree_path_key(kp, path, pr->key->text);
        switch (key_index(pr->key->text, keys, 3)) {
        case 0: rc = value_name(c, pr->value, kp, &coll->name); break;
        case 1: rc = value_int(c, pr->value, kp, 0, INT64_MAX, &coll->ttl_seconds); break;
        case 2: rc = value_on_failure(c, pr->value, kp, &coll->on_failure); break;
        default: rc = unknown_key(c, pr, path, "key", keys, 3); break;
        }
    }
    ytree_pairs_free(&ps);
    return rc;
}

static int32_t walk_collections(ctx *c, const ytree_node *n, const char *path, profile *p)
{
    ytree_pairs ps = {0};
    char kp[YTREE_PATH_LEN];
    int32_t rc = expect_map(c, n, path, &ps);
    for (size_t i = 0; rc == PERSISTOR_OK && i < ps.n; i++) {
        const ytree_pair *pr = &ps.items[i];
        int kind = key_index(pr->key->text, collection_keys, PROFILE_COLL_COUNT);
        if (kind < 0) {
            rc = unknown_key(c, pr, path, "collection", collection_keys, PROFILE_COLL_COUNT);
            break;
        }
        ytree_path_key(kp, path, pr->key->text);
        rc = walk_collection(c, pr->value, kp, &p->collections[kind]);
    }
    ytree_pairs_free(&ps);
    return rc;
}

static int32_t walk_retry(ctx *c, const ytree_node *n, const char *path, profile_retry *r)
{
    static const char *const keys[] = {"max_attempts", "initial_interval_ms", "backoff_coefficient",
                                       "max_interval_ms"};
    ytree_pairs ps = {0};
    char kp[YTREE_PATH_LEN];
    const ytree_node *initial = NULL, *max = NULL;
    int32_t rc = expect_map(c, n, path, &ps);
    for (size_t i = 0; rc == PERSISTOR_OK && i < ps.n; i++) {
        const ytree_pair *pr = &ps.items[i];
        ytree_path_key(kp, path, pr->key->text);
        switch (key_index(pr->key->text, keys, 4)) {
        case 0: rc = value_u32(c, pr->value, kp, 1, &r->max_attempts); break;
        case 1:
            rc = value_u32(c, pr->value, kp, 0, &r->initial_interval_ms);
            initial = pr->value;
            break;
        case 2: rc = value_coefficient(c, pr->value, kp, &r->backoff_coefficient); break;
        case 3:
            rc = value_u32(c, pr->value, kp, 0, &r->max_interval_ms);
            max = pr->value;
            break;
        default: rc = unknown_key(c, pr, path, "key", keys, 4); break;
        }
    }
    ytree_pairs_free(&ps);
    if (rc != PERSISTOR_OK || r->max_interval_ms >= r->initial_interval_ms)
        return rc;
    /* Blame the value the user wrote: max if given, else the initial. */
    ytree_path_key(kp, path, max ? "max_interval_ms" : "initial_interval_ms");
    return fail(c, max ? max : initial, kp,
                "max_interval_ms (%u) must be at least initial_interval_ms (%u)",
                r->max_interval_ms, r->initial_interval_ms);
}

static int32_t adapter_option(ctx *c, const ytree_pair *pr, const char *kp, profile_adapter *a)
{
    char got[64];
    if (pr->value->kind != YTREE_SCALAR)
        return fail(c, pr->value, kp, "expected a single value for adapter option \"%s\", got %s",
                    pr->key->text, ytree_describe(pr->value, got, sizeof got));
    profile_option *o = &a->options[a->n_options++];
    o->mark = mark_of(c, pr->value);
    o->key = ytree_dup(pr->key->text, pr->key->len);
    o->key_path = ytree_dup(kp, strlen(kp));
    if (o->key == NULL || o->key_path == NULL)
        return nomem(c);
    return interpolate(c, pr->value, kp, &o->value);
}

static int32_t walk_adapter(ctx *c, const ytree_node *n, const char *path, profile_adapter *a)
{
    ytree_pairs ps = {0};
    char kp[YTREE_PATH_LEN], got[64];
    a->mark = mark_of(c, n);
    a->key_path = ytree_dup(path, strlen(path));
    if (a->key_path == NULL)
        return nomem(c);
    if (n->kind != YTREE_MAPPING)
        return fail(c, n, path, "expected a mapping with a type: key, got %s",
                    ytree_describe(n, got, sizeof got));
    int32_t rc = ytree_flatten(&c->y, n, path, &ps);
    if (rc == PERSISTOR_OK && (a->options = calloc(ps.n + 1, sizeof *a->options)) == NULL)
        rc = nomem(c);
    for (size_t i = 0; rc == PERSISTOR_OK && i < ps.n; i++) {
        const ytree_pair *pr = &ps.items[i];
        ytree_path_key(kp, path, pr->key->text);
        if (strcmp(pr->key->text, "type") == 0) {
            a->type_mark = mark_of(c, pr->value);
            rc = value_name(c, pr->value, kp, &a->type);
        } else if (strcmp(pr->key->text, "path") == 0) {
            rc = value_opt_text(c, pr->value, kp, &a->path);
        } else if (strcmp(pr->key->text, "volatile") == 0) {
            rc = value_bool(c, pr->value, kp, &a->declared_volatile);
        } else {
            rc = adapter_option(c, pr, kp, a);
        }
    }
    ytree_pairs_free(&ps);
    if (rc != PERSISTOR_OK || a->type != NULL)
        return rc;
    ytree_path_key(kp, path, "type");
    return fail(c, n, kp, "required key is missing (e.g. type: memory)");
}

static int32_t walk_adapters(ctx *c, const ytree_node *n, const char *path, profile *p)
{
    char kp[YTREE_PATH_LEN], got[64];
    if (n->kind != YTREE_SEQUENCE)
        return fail(c, n, path, "expected a sequence of adapters, got %s",
                    ytree_describe(n, got, sizeof got));
    if (n->n_kids == 0)
        return fail(c, n, path, "at least one adapter is required");
    int32_t rc = ytree_spend(&c->y, n->n_kids, n);
    if (rc != PERSISTOR_OK)
        return rc;
    p->adapters = calloc(n->n_kids, sizeof *p->adapters);
    if (p->adapters == NULL)
        return nomem(c);
    p->n_adapters = n->n_kids;
    for (size_t i = 0; rc == PERSISTOR_OK && i < n->n_kids; i++) {
        ytree_path_index(kp, path, i);
        rc = walk_adapter(c, n->kids[i], kp, &p->adapters[i]);
    }
    return rc;
}

static int32_t profile_defaults(ctx *c, profile *p)
{
    p->retry = (profile_retry){3, 1000, 2.0, 60000};
    for (int k = 0; k < PROFILE_COLL_COUNT; k++) {
        p->collections[k].on_failure =
            k == PROFILE_COLL_SNAPSHOTS ? PROFILE_FAIL_CLOSED : PROFILE_FAIL_OPEN;
        p->collections[k].name = ytree_dup(collection_keys[k], strlen(collection_keys[k]));
        if (p->collections[k].name == NULL)
            return nomem(c);
    }
    return PERSISTOR_OK;
}

static int32_t walk_profile(ctx *c, const ytree_node *n, const char *name, profile *p)
{
    static const char *const keys[] = {"description", "plugin_dir", "adapters", "retry",
                                       "collections"};
    ytree_pairs ps = {0};
    char kp[YTREE_PATH_LEN];
    int seen_adapters = 0;
    p->file = ytree_dup(c->y.file, strlen(c->y.file));
    p->name = ytree_dup(name, strlen(name));
    if (p->file == NULL || p->name == NULL)
        return nomem(c);
    c->mark_file = p->file;
    int32_t rc = profile_defaults(c, p);
    if (rc == PERSISTOR_OK)
        rc = expect_map(c, n, name, &ps);
    for (size_t i = 0; rc == PERSISTOR_OK && i < ps.n; i++) {
        const ytree_pair *pr = &ps.items[i];
        ytree_path_key(kp, name, pr->key->text);
        switch (key_index(pr->key->text, keys, 5)) {
        case 0: rc = value_opt_text(c, pr->value, kp, &p->description); break;
        case 1: rc = value_opt_text(c, pr->value, kp, &p->plugin_dir); break;
        case 2:
            rc = walk_adapters(c, pr->value, kp, p);
            seen_adapters = 1;
            break;
        case 3: rc = walk_retry(c, pr->value, kp, &p->retry); break;
        case 4: rc = walk_collections(c, pr->value, kp, p); break;
        default: rc = unknown_key(c, pr, name, "key", keys, 5); break;
        }
    }
    ytree_pairs_free(&ps);
    if (rc != PERSISTOR_OK || seen_adapters)
        return rc;
    ytree_path_key(kp, name, "adapters");
    return fail(c, n, kp, "required key is missing");
}

/* ------------------------------------------------------------------------
 * The file
 * --------------------------------------------------------------------- */

typedef struct profile_set {
    profile **items;
    size_t n;
} profile_set;

static void set_free(profile_set *s)
{
    for (size_t i = 0; i < s->n; i++)
        profile_free(s->items[i]);
    free(s->items);
    memset(s, 0, sizeof *s);
}

static int32_t walk_profiles(ctx *c, const ytree_node *n, profile_set *set)
{
    ytree_pairs ps = {0};
    /* Profile names start their key paths: "production.retry", not "profiles.production". */
    int32_t rc = expect_map(c, n, "", &ps);
    if (rc == PERSISTOR_OK && ps.n == 0)
        rc = fail(c, n, "profiles", "no profiles defined (expected e.g. development:)");
    if (rc == PERSISTOR_OK && (set->items = calloc(ps.n, sizeof *set->items)) == NULL)
        rc = nomem(c);
    for (size_t i = 0; rc == PERSISTOR_OK && i < ps.n; i++) {
        const ytree_pair *pr = &ps.items[i];
        if (pr->key->len == 0) {
            rc = fail(c, pr->key, "profiles", "a profile name must not be empty");
            break;
        }
        set->items[set->n] = calloc(1, sizeof **set->items);
        if (set->items[set->n] == NULL) {
            rc = nomem(c);
            break;
        }
        rc = walk_profile(c, pr->value, pr->key->text, set->items[set->n++]);
    }
    ytree_pairs_free(&ps);
    return rc;
}

static int32_t check_version(ctx *c, const ytree_node *n)
{
    int64_t v = 0;
    int32_t rc = value_int(c, n, "version", INT64_MIN, INT64_MAX, &v);
    if (rc == PERSISTOR_OK && v != 1)
        rc = fail(c, n, "version", "unsupported version %lld (this persistor reads version 1)",
                  (long long)v);
    return rc;
}

static int32_t walk_file(ctx *c, const ytree_node *root, profile_set *set)
{
    static const char *const keys[] = {"version", "profiles"};
    char got[64];
    if (root == NULL)
        return ytree_fail_at(&c->y, 1, 1, NULL,
                             "empty file (expected a mapping with a profiles: key)");
    if (root->kind != YTREE_MAPPING)
        return fail(c, root, NULL, "expected a mapping with a profiles: key, got %s",
                    ytree_describe(root, got, sizeof got));
    ytree_pairs ps = {0};
    const ytree_node *profiles = NULL;
    int32_t rc = ytree_flatten(&c->y, root, "", &ps);
    for (size_t i = 0; rc == PERSISTOR_OK && i < ps.n; i++) {
        const ytree_pair *pr = &ps.items[i];
        switch (key_index(pr->key->text, keys, 2)) {
        case 0: rc = check_version(c, pr->value); break;
        case 1: profiles = pr->value; break;
        default: rc = unknown_key(c, pr, "", "key", keys, 2); break;
        }
    }
    ytree_pairs_free(&ps);
    if (rc != PERSISTOR_OK)
        return rc;
    if (profiles == NULL)
        return fail(c, root, "profiles", "required key is missing");
    return walk_profiles(c, profiles, set);
}

static int32_t read_whole(ctx *c, unsigned char **out, size_t *len)
{
    const char *file = c->y.file;
    FILE *f = fopen(file, "rb");
    if (f == NULL)
        return error_set(c->y.err, PERSISTOR_E_CONFIG, "%s: cannot open: %s", file,
                         strerror(errno));
    int32_t rc = PERSISTOR_OK;
    unsigned char *buf = malloc(PROFILE_MAX_FILE_BYTES + 1);
    size_t n = buf ? fread(buf, 1, PROFILE_MAX_FILE_BYTES + 1, f) : 0;
    if (buf == NULL)
        rc = nomem(c);
    else if (ferror(f))
        rc = error_set(c->y.err, PERSISTOR_E_CONFIG, "%s: cannot read: %s", file, strerror(errno));
    else if (n > PROFILE_MAX_FILE_BYTES)
        rc =
            error_set(c->y.err, PERSISTOR_E_CONFIG, "%s: larger than %u bytes; not a profiles file",
                      file, PROFILE_MAX_FILE_BYTES);
    fclose(f);
    if (rc != PERSISTOR_OK) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return PERSISTOR_OK;
}

static int32_t load_all(const char *file, profile_set *set, persistor_error *err)
{
    ctx c = {.y = {.file = file, .err = err}};
    unsigned char *buf = NULL;
    size_t len = 0;
    ytree *t = NULL;
    int32_t rc = read_whole(&c, &buf, &len);
    if (rc == PERSISTOR_OK)
        rc = ytree_parse(&c.y, buf, len, &t);
    if (rc == PERSISTOR_OK)
        rc = walk_file(&c, ytree_root(t), set);
    ytree_free(t);
    free(buf);
    if (rc != PERSISTOR_OK)
        set_free(set);
    return rc;
}

static int32_t not_found(const char *file, const char *name, const profile_set *set,
                         persistor_error *err)
{
    char list[PERSISTOR_ERROR_MESSAGE_MAX] = "";
    size_t used = 0;
    for (size_t i = 0; i < set->n && used < sizeof list; i++)
        used += (size_t)snprintf(list + used, sizeof list - used, "%s%s", i ? ", " : "",
                                 set->items[i]->name);
    return error_set(err, PERSISTOR_NOT_FOUND, "%s: no profile \"%s\" (profiles: %s)", file, name,
                     list);
}

int32_t profile_load(const char *file, const char *name, profile **out, persistor_error *err)
{
    if (file == NULL || name == NULL || out == NULL)
        return error_set(err, PERSISTOR_E_INVALID, "profile_load: file, name and out are required");
    *out = NULL;
    profile_set set = {0};
    int32_t rc = load_all(file, &set, err);
    if (rc != PERSISTOR_OK)
        return rc;
    for (size_t i = 0; i < set.n; i++) {
        if (strcmp(set.items[i]->name, name) == 0) {
            *out = set.items[i];
            set.items[i] = NULL;
            set_free(&set);
            return PERSISTOR_OK;
        }
    }
    rc = not_found(file, name, &set, err);
    set_free(&set);
    return rc;
}

int32_t profile_load_all(const char *file, profile ***all, size_t *n, persistor_error *err)
{
    if (file == NULL || all == NULL || n == NULL)
        return error_set(err, PERSISTOR_E_INVALID, "profile_load_all: file, all and n are required");
    profile_set set = {0};
    int32_t rc = load_all(file, &set, err);
    *all = set.items;
    *n = set.n;
    return rc;
}

void profile_free_all(profile **all, size_t n)
{
    profile_set set = {all, n};
    set_free(&set);
}

static void adapter_free(profile_adapter *a)
{
    for (size_t i = 0; i < a->n_options; i++) {
        free(a->options[i].key);
        free(a->options[i].value);
        free(a->options[i].key_path);
    }
    free(a->options);
    free(a->type);
    free(a->path);
    free(a->key_path);
}

void profile_free(profile *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->n_adapters; i++)
        adapter_free(&p->adapters[i]);
    free(p->adapters);
    for (int k = 0; k < PROFILE_COLL_COUNT; k++)
        free(p->collections[k].name);
    free(p->file);
    free(p->name);
    free(p->description);
    free(p->plugin_dir);
    free(p);
}

const char *profile_collection_key(profile_collection_kind kind)
{
    if ((int)kind < 0 || kind >= PROFILE_COLL_COUNT)
        return NULL;
    return collection_keys[kind];
}
