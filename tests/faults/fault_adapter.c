/*
 * fault_adapter.c — "fault", a test-only adapter that wraps a real one and
 * answers RETRY, UNCERTAIN or UNAVAILABLE on command.
 *
 * The router's retry, circuit breaker, failover and replay are only as good
 * as their tests, and a real store fails when it likes, not when a test
 * asks.  This adapter loads the adapter named by its `inner` option (say
 * sqlite.so), hands it `inner_options`, and forwards every call to it, so
 * data really persists; before each call it reads the control block mapped
 * from the file named by `control` (fault_control.h), through which a test
 * process, its children or any other process arm faults and delays at run
 * time.
 *
 * The inner adapter sees a host table of its own: a copy of ours whose
 * config slots answer from inner_options (typed, defaulted and checked
 * against the options the inner declares, as the host would) and whose log
 * and now_ms slots forward to our host, whose implementation finds its
 * label and clock from the table's address.
 *
 * What it must not do: ship.  It is built into lib/persistor-test/, never
 * beside the real adapters, and it breaks the ABI's "adapters never sleep"
 * on purpose (fault_set_delay).  It keeps process-wide state, which real
 * adapters must not: the inner modules it loaded, because like the loader
 * it must run each one's module_init once per process.
 */
#define _XOPEN_SOURCE 700 /* realpath, strtok_r */

#include <ctype.h>
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <bson/bson.h>

#include "fault_control.h"
#include "persistor/adapter.h"

/* ---- the inner modules: process-wide, as in the loader ---------------- */

typedef struct fault_module {
    struct fault_module *next;
    char path[PATH_MAX];       /* resolved */
    persistor_adapter api;     /* zero-extended copy of the inner's table */
    int32_t init_rc;           /* module_init's answer, kept: it runs once */
    persistor_error init_err;
} fault_module;

static pthread_mutex_t fault_modules_lock = PTHREAD_MUTEX_INITIALIZER;
static fault_module *fault_modules;
/* The table our own module_init received: it lives as long as the process,
 * which the inner's module_init needs (mongodb keeps it for its log
 * handler).  A per-instance table would be freed under it. */
static const persistor_host *fault_process_host;

/* The slots adapter.h marks REQUIRED, as the loader checks them. */
#define FAULT_SLOT(field) {#field, offsetof(persistor_adapter, field)}
static const struct {
    const char *name;
    size_t offset;
} fault_required_slots[] = {
    FAULT_SLOT(name),  FAULT_SLOT(version), FAULT_SLOT(open),
    FAULT_SLOT(close), FAULT_SLOT(ping),    FAULT_SLOT(ensure_collection),
    FAULT_SLOT(write), FAULT_SLOT(get),     FAULT_SLOT(query),
    FAULT_SLOT(cursor_next), FAULT_SLOT(cursor_close),
};
#define FAULT_MIN_TABLE_SIZE (offsetof(persistor_adapter, cursor_close) + sizeof(void (*)(void)))

/* dlopen, check and register `path`, run its module_init.  Called with the
 * lock held.  Never dlclosed: the inner stays loaded as we do (NO_UNLOAD). */
static int32_t fault_module_load(const char *path, const persistor_host *host,
                                 const persistor_config *config, fault_module **out,
                                 persistor_error *err)
{
    void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL)
        return host->config_error(config, "inner", err, "cannot load %s: %s", path, dlerror());
    void *symbol = dlsym(handle, PERSISTOR_ADAPTER_ENTRY_SYMBOL);
    if (symbol == NULL)
        return host->config_error(config, "inner", err,
                                  "%s has no persistor_adapter_entry: not an adapter", path);
    persistor_adapter_entry_fn entry;
    memcpy(&entry, &symbol, sizeof entry); /* object to function pointer, portably */
    const persistor_adapter *table = entry(fault_process_host);
    if (table == NULL || table->abi_major != PERSISTOR_ABI_MAJOR ||
        table->struct_size < FAULT_MIN_TABLE_SIZE)
        return host->config_error(config, "inner", err,
                                  "%s refused this host or speaks another ABI than %d", path,
                                  PERSISTOR_ABI_MAJOR);
    fault_module *m = calloc(1, sizeof *m);
    if (m == NULL)
        return host->error_set(err, PERSISTOR_E_NOMEM, "fault: out of memory loading %s", path);
    memcpy(&m->api, table, table->struct_size < sizeof m->api ? table->struct_size : sizeof m->api);
    for (size_t i = 0; i < sizeof fault_required_slots / sizeof fault_required_slots[0]; i++) {
        const void *slot;
        memcpy(&slot, (const char *)&m->api + fault_required_slots[i].offset, sizeof slot);
        if (slot == NULL) {
            free(m);
            return host->config_error(config, "inner", err, "%s: required slot '%s' is NULL",
                                      path, fault_required_slots[i].name);
        }
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    if (m->api.module_init != NULL)
        m->init_rc = m->api.module_init(fault_process_host, &m->init_err);
    m->next = fault_modules;
    fault_modules = m;
    *out = m;
    return PERSISTOR_OK;
}

/* The inner module at `inner`, loaded and initialised once per process. */
static int32_t fault_module_get(const char *inner, const persistor_host *host,
                                const persistor_config *config, const fault_module **out,
                                persistor_error *err)
{
    char path[PATH_MAX];
    if (realpath(inner, path) == NULL)
        return host->config_error(config, "inner", err, "%s: %s", inner, strerror(errno));
    int32_t rc = PERSISTOR_OK;
    pthread_mutex_lock(&fault_modules_lock);
    fault_module *m = fault_modules;
    while (m != NULL && strcmp(m->path, path) != 0)
        m = m->next;
    if (m == NULL && fault_process_host == NULL)
        rc = host->error_set(err, PERSISTOR_E_ABI,
                             "fault: module_init never ran (load fault.so through the loader)");
    else if (m == NULL)
        rc = fault_module_load(path, host, config, &m, err);
    if (rc == PERSISTOR_OK && m->init_rc != PERSISTOR_OK)
        rc = host->error_set(err, m->init_rc, "%s: module_init failed: %s", path,
                             m->init_err.message);
    pthread_mutex_unlock(&fault_modules_lock);
    if (rc == PERSISTOR_OK)
        *out = m;
    return rc;
}

/* ---- the inner's options: inner_options, served like the host does ---- */

typedef struct fault_value {
    const persistor_option_spec *spec;
    const char *text; /* from inner_options, or the default; NULL: neither */
    bool given;
    int64_t as_int;
    double as_double;
    int32_t as_bool;
} fault_value;

/* What the inner's open() gets as its config: the host's config slots of
 * the inner's table point to fault_config_*, which cast it back. */
typedef struct fault_config {
    const persistor_host *host;    /* ours: config_error goes through it */
    const persistor_config *outer; /* the fault entry's own config */
    char label[128];
    char *text;          /* a copy of inner_options, cut into keys and values */
    fault_value *values; /* one per option the inner declares */
    uint32_t n_values;
} fault_config;

static const fault_config *fault_config_of(const persistor_config *config)
{
    return (const fault_config *)(const void *)config;
}

static bool fault_parse_int(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

static bool fault_parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool fault_parse_bool(const char *text, int32_t *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(text, yes[i]) == 0)
            return (*out = 1), true;
        if (strcasecmp(text, no[i]) == 0)
            return (*out = 0), true;
    }
    return false;
}

static bool fault_value_parse(fault_value *v)
{
    switch (v->spec->type) {
    case PERSISTOR_OPTION_INT: return fault_parse_int(v->text, &v->as_int);
    case PERSISTOR_OPTION_DOUBLE: return fault_parse_double(v->text, &v->as_double);
    case PERSISTOR_OPTION_BOOL: return fault_parse_bool(v->text, &v->as_bool);
    default: return true;
    }
}

static const char *fault_type_name(uint32_t type)
{
    switch (type) {
    case PERSISTOR_OPTION_INT: return "an integer";
    case PERSISTOR_OPTION_BOOL: return "a boolean (true or false)";
    case PERSISTOR_OPTION_DOUBLE: return "a number";
    default: return "a string";
    }
}

static char *fault_trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *end = s + strlen(s);
    while (end > s && isspace((unsigned char)end[-1]))
        *--end = '\0';
    return s;
}

static fault_value *fault_value_find(const fault_config *fc, const char *key)
{
    for (uint32_t i = 0; i < fc->n_values; i++)
        if (strcmp(fc->values[i].spec->name, key) == 0)
            return &fc->values[i];
    return NULL;
}

/* Take "key=value;key=value" apart into the declared options. */
static int32_t fault_config_split(fault_config *fc, const persistor_adapter *api,
                                  persistor_error *err)
{
    char *save = NULL;
    for (char *piece = strtok_r(fc->text, ";", &save); piece != NULL;
         piece = strtok_r(NULL, ";", &save)) {
        char *item = fault_trim(piece);
        char *eq = strchr(item, '=');
        if (*item == '\0')
            continue;
        if (eq == NULL)
            return fc->host->config_error(fc->outer, "inner_options", err,
                                          "\"%s\" is not key=value", item);
        *eq = '\0';
        char *key = fault_trim(item);
        fault_value *v = fault_value_find(fc, key);
        if (v == NULL) {
            char names[512] = "none";
            for (uint32_t i = 0, o = 0; i < api->n_options && o < sizeof names; i++)
                o += (uint32_t)snprintf(names + o, sizeof names - o, "%s%s", i ? ", " : "",
                                        api->options[i].name);
            return fc->host->config_error(fc->outer, "inner_options", err,
                                          "%s: unknown option for adapter %s (it takes: %s)", key,
                                          api->name, names);
        }
        if (v->given)
            return fc->host->config_error(fc->outer, "inner_options", err, "%s: given twice",
                                          key);
        v->text = fault_trim(eq + 1);
        v->given = true;
    }
    return PERSISTOR_OK;
}

/* Defaults, required options and types, as config.c checks a profile. */
static int32_t fault_config_check(fault_config *fc, const persistor_adapter *api,
                                  persistor_error *err)
{
    for (uint32_t i = 0; i < fc->n_values; i++) {
        fault_value *v = &fc->values[i];
        if (!v->given)
            v->text = v->spec->default_value;
        if (v->text == NULL && (v->spec->flags & PERSISTOR_OPTION_REQUIRED))
            return fc->host->config_error(fc->outer, "inner_options", err,
                                          "adapter %s needs option '%s' (%s)", api->name,
                                          v->spec->name, v->spec->help ? v->spec->help : "");
        if (v->text == NULL || fault_value_parse(v))
            continue;
        if (!v->given)
            return fc->host->error_set(err, PERSISTOR_E_ABI,
                                       "adapter %s declares option '%s' with a default \"%s\" "
                                       "that is not %s",
                                       api->name, v->spec->name, v->text,
                                       fault_type_name(v->spec->type));
        bool secret = (v->spec->flags & PERSISTOR_OPTION_SECRET) != 0;
        return fc->host->config_error(fc->outer, "inner_options", err,
                                      "%s: expected %s, got \"%s\"", v->spec->name,
                                      fault_type_name(v->spec->type), secret ? "***" : v->text);
    }
    return PERSISTOR_OK;
}

static int32_t fault_config_fill(fault_config *fc, const persistor_host *host,
                                 const persistor_config *outer, const persistor_adapter *api,
                                 const char *inner_options, persistor_error *err)
{
    fc->host = host;
    fc->outer = outer;
    snprintf(fc->label, sizeof fc->label, "%s/%s", host->config_label(outer), api->name);
    fc->text = strdup(inner_options);
    fc->values = calloc(api->n_options ? api->n_options : 1, sizeof *fc->values);
    if (fc->text == NULL || fc->values == NULL)
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", fc->label);
    fc->n_values = api->n_options;
    for (uint32_t i = 0; i < api->n_options; i++)
        fc->values[i].spec = &api->options[i];
    int32_t rc = fault_config_split(fc, api, err);
    return rc != PERSISTOR_OK ? rc : fault_config_check(fc, api, err);
}

static void fault_config_free(fault_config *fc)
{
    free(fc->text);
    free(fc->values);
}

/* The host's lookup rules: E_INVALID for an undeclared key or another
 * type, NOT_FOUND when unset without a default. */
static int32_t fault_config_lookup(const persistor_config *config, const char *key,
                                   uint32_t type, const fault_value **out)
{
    const fault_value *v = fault_value_find(fault_config_of(config), key);
    if (v == NULL || v->spec->type != type)
        return PERSISTOR_E_INVALID;
    if (v->text == NULL)
        return PERSISTOR_NOT_FOUND;
    *out = v;
    return PERSISTOR_OK;
}

static int32_t fault_config_string(const persistor_config *config, const char *key,
                                   const char **out)
{
    const fault_value *v;
    int32_t rc = fault_config_lookup(config, key, PERSISTOR_OPTION_STRING, &v);
    if (rc == PERSISTOR_OK)
        *out = v->text;
    return rc;
}

static int32_t fault_config_int(const persistor_config *config, const char *key, int64_t *out)
{
    const fault_value *v;
    int32_t rc = fault_config_lookup(config, key, PERSISTOR_OPTION_INT, &v);
    if (rc == PERSISTOR_OK)
        *out = v->as_int;
    return rc;
}

static int32_t fault_config_bool(const persistor_config *config, const char *key, int32_t *out)
{
    const fault_value *v;
    int32_t rc = fault_config_lookup(config, key, PERSISTOR_OPTION_BOOL, &v);
    if (rc == PERSISTOR_OK)
        *out = v->as_bool;
    return rc;
}

static int32_t fault_config_double(const persistor_config *config, const char *key, double *out)
{
    const fault_value *v;
    int32_t rc = fault_config_lookup(config, key, PERSISTOR_OPTION_DOUBLE, &v);
    if (rc == PERSISTOR_OK)
        *out = v->as_double;
    return rc;
}

/* The inner's options all stand on one profile line: point at it. */
__attribute__((format(printf, 4, 5))) static int32_t
fault_config_error(const persistor_config *config, const char *key, persistor_error *err,
                   const char *fmt, ...)
{
    const fault_config *fc = fault_config_of(config);
    char what[PERSISTOR_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return fc->host->config_error(fc->outer, "inner_options", err, "%s: %s", key, what);
}

static const char *fault_config_label(const persistor_config *config)
{
    return fault_config_of(config)->label;
}

/* ---- the inner's host table ------------------------------------------- */

typedef struct fault_host {
    persistor_host table; /* first: the inner's host pointer is a fault_host pointer */
    const persistor_host *outer;
} fault_host;

__attribute__((format(printf, 4, 5))) static void
fault_host_log(const persistor_host *host, int32_t level, const char *event, const char *fmt, ...)
{
    const persistor_host *outer = ((const fault_host *)(const void *)host)->outer;
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    outer->log(outer, level, event, "%s", message);
}

static int64_t fault_host_now_ms(const persistor_host *host)
{
    const persistor_host *outer = ((const fault_host *)(const void *)host)->outer;
    return outer->now_ms(outer);
}

static void fault_host_wrap(fault_host *fh, const persistor_host *outer)
{
    size_t n = outer->struct_size < sizeof fh->table ? outer->struct_size : sizeof fh->table;
    memset(fh, 0, sizeof *fh);
    memcpy(&fh->table, outer, n);
    fh->table.struct_size = (uint32_t)n;
    fh->outer = outer;
    fh->table.log = fault_host_log;
    fh->table.now_ms = fault_host_now_ms;
    fh->table.config_string = fault_config_string;
    fh->table.config_int = fault_config_int;
    fh->table.config_bool = fault_config_bool;
    fh->table.config_double = fault_config_double;
    fh->table.config_error = fault_config_error;
    fh->table.config_label = fault_config_label;
}

/* ---- instances -------------------------------------------------------- */

/* The specs ensure_collection was given, for expire without an inner one. */
typedef struct fault_spec {
    struct fault_spec *next;
    const persistor_collection_spec *spec; /* the host's: valid until close */
} fault_spec;

struct persistor_instance {
    const persistor_host *host;   /* ours */
    const persistor_adapter *api; /* the inner's table */
    persistor_instance *inner;
    fault_control *control;
    fault_host inner_host;     /* what the inner sees as its host */
    fault_config inner_config; /* ... and as its config */
    fault_spec *specs;
};

struct persistor_cursor {
    persistor_instance *inst;
    persistor_cursor *inner; /* the inner's; never looked into */
};

static const char *fault_code_name(int32_t code)
{
    switch (code) {
    case PERSISTOR_E_RETRY: return "E_RETRY";
    case PERSISTOR_E_UNCERTAIN: return "E_UNCERTAIN";
    case PERSISTOR_E_UNAVAILABLE: return "E_UNAVAILABLE";
    case PERSISTOR_E_INVALID: return "E_INVALID";
    case PERSISTOR_E_NOTSUP: return "E_NOTSUP";
    case PERSISTOR_E_NOMEM: return "E_NOMEM";
    case PERSISTOR_E_CONFIG: return "E_CONFIG";
    case PERSISTOR_E_CORRUPT: return "E_CORRUPT";
    case PERSISTOR_E_ABI: return "E_ABI";
    default: return "an unknown code";
    }
}

/* Count the call, sleep any delay, and answer an armed fault: OK to go on,
 * or the injected code with `err` filled (and *applied, when asked). */
static int32_t fault_check(persistor_instance *inst, uint32_t op, const char *slot, int *applied,
                           persistor_error *err)
{
    int was_applied = 0;
    int32_t code = fault_control_hit(inst->control, op, &was_applied);
    if (applied != NULL)
        *applied = was_applied;
    if (code == 0)
        return PERSISTOR_OK;
    return inst->host->error_set(err, code, "fault: injected %s on %s", fault_code_name(code),
                                 slot);
}

static void fault_close(persistor_instance *inst)
{
    if (inst->inner != NULL)
        inst->api->close(inst->inner);
    while (inst->specs != NULL) {
        fault_spec *s = inst->specs;
        inst->specs = s->next;
        free(s);
    }
    fault_config_free(&inst->inner_config);
    fault_control_close(inst->control);
    free(inst);
}

static int32_t fault_open(const persistor_host *host, const persistor_config *config,
                          persistor_instance **out, persistor_error *err)
{
    const char *inner = NULL, *control = NULL, *inner_options = "";
    if (host->config_string(config, "inner", &inner) != PERSISTOR_OK ||
        host->config_string(config, "control", &control) != PERSISTOR_OK ||
        host->config_string(config, "inner_options", &inner_options) < 0)
        return host->config_error(config, "inner", err, "inner, control or inner_options "
                                  "cannot be read");
    persistor_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory",
                               host->config_label(config));
    inst->host = host;
    int32_t rc;
    inst->control = fault_control_open(control);
    if (inst->control == NULL) {
        rc = host->config_error(config, "control", err, "cannot map %s: %s", control,
                                strerror(errno));
        goto fail;
    }
    if ((rc = fault_check(inst, FAULT_OP_OPEN, "open", NULL, err)) != PERSISTOR_OK)
        goto fail;
    const fault_module *module;
    if ((rc = fault_module_get(inner, host, config, &module, err)) != PERSISTOR_OK)
        goto fail;
    inst->api = &module->api;
    fault_host_wrap(&inst->inner_host, host);
    rc = fault_config_fill(&inst->inner_config, host, config, inst->api, inner_options, err);
    if (rc != PERSISTOR_OK)
        goto fail;
    rc = inst->api->open(&inst->inner_host.table,
                         (const persistor_config *)(const void *)&inst->inner_config,
                         &inst->inner, err);
    if (rc != PERSISTOR_OK) {
        inst->inner = NULL;
        goto fail;
    }
    *out = inst;
    return PERSISTOR_OK;
fail:
    fault_close(inst);
    return rc;
}

static int32_t fault_ping(persistor_instance *inst, persistor_error *err)
{
    int32_t rc = fault_check(inst, FAULT_OP_PING, "ping", NULL, err);
    return rc != PERSISTOR_OK ? rc : inst->api->ping(inst->inner, err);
}

/* Keep the spec for fault_expire_by_scan (allocated first, so a success of
 * the inner is never followed by our failure). */
static int32_t fault_ensure_collection(persistor_instance *inst,
                                       const persistor_collection_spec *spec,
                                       persistor_error *err)
{
    int32_t rc = fault_check(inst, FAULT_OP_OPEN, "ensure_collection", NULL, err);
    if (rc != PERSISTOR_OK)
        return rc;
    fault_spec *s = inst->specs;
    while (s != NULL && strcmp(s->spec->name, spec->name) != 0)
        s = s->next;
    fault_spec *added = s == NULL ? calloc(1, sizeof *added) : NULL;
    if (s == NULL && added == NULL)
        return inst->host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", spec->name);
    rc = inst->api->ensure_collection(inst->inner, spec, err);
    if (rc != PERSISTOR_OK) {
        free(added);
        return rc;
    }
    if (added != NULL) {
        added->next = inst->specs;
        inst->specs = s = added;
    }
    s->spec = spec;
    return PERSISTOR_OK;
}

/* An injected error applies nothing and answers it for every op, as the
 * contract asks; UNCERTAIN with `applied` lets the inner apply it first. */
static int32_t fault_write(persistor_instance *inst, const char *collection,
                           const persistor_write_op *ops, uint32_t n, int32_t *results,
                           persistor_error *err)
{
    int applied = 0;
    int32_t rc = fault_check(inst, FAULT_OP_WRITE, "write", &applied, err);
    if (rc == PERSISTOR_OK)
        return inst->api->write(inst->inner, collection, ops, n, results, err);
    if (rc == PERSISTOR_E_UNCERTAIN && applied) {
        persistor_error inner_err = {0};
        int32_t inner_rc = inst->api->write(inst->inner, collection, ops, n, results, &inner_err);
        if (inner_rc != PERSISTOR_OK) { /* the store's own failure is the truer answer */
            if (err != NULL)
                *err = inner_err;
            return inner_rc;
        }
    }
    for (uint32_t i = 0; i < n; i++)
        results[i] = rc;
    return rc;
}

static int32_t fault_get(persistor_instance *inst, const char *collection, const char *id,
                         persistor_buffer *out, persistor_error *err)
{
    int32_t rc = fault_check(inst, FAULT_OP_READ, "get", NULL, err);
    return rc != PERSISTOR_OK ? rc : inst->api->get(inst->inner, collection, id, out, err);
}

static int32_t fault_query(persistor_instance *inst, const char *collection,
                           const persistor_query *q, persistor_cursor **out, persistor_error *err)
{
    int32_t rc = fault_check(inst, FAULT_OP_READ, "query", NULL, err);
    if (rc != PERSISTOR_OK)
        return rc;
    persistor_cursor *c = calloc(1, sizeof *c);
    if (c == NULL)
        return inst->host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory querying",
                                     collection);
    rc = inst->api->query(inst->inner, collection, q, &c->inner, err);
    if (rc != PERSISTOR_OK) {
        free(c);
        return rc;
    }
    c->inst = inst;
    *out = c;
    return PERSISTOR_OK;
}

static int32_t fault_cursor_next(persistor_cursor *c, const uint8_t **doc, uint32_t *len,
                                 persistor_error *err)
{
    int32_t rc = fault_check(c->inst, FAULT_OP_READ, "cursor_next", NULL, err);
    return rc != PERSISTOR_OK ? rc : c->inst->api->cursor_next(c->inner, doc, len, err);
}

static void fault_cursor_close(persistor_cursor *c)
{
    c->inst->api->cursor_close(c->inner);
    free(c);
}

/* ---- optional slots: forwarded, or done the host's way ----------------
 * The table is static, so these slots exist whatever the inner has; when
 * the inner lacks one, they do what the host does for an absent slot,
 * through the inner's required ones, as one call of their kind. */

/* Count and size the documents matching `filter`, by the inner's query. */
static int32_t fault_scan(persistor_instance *inst, const char *collection,
                          const uint8_t *filter, uint32_t filter_len, uint64_t *count,
                          uint64_t *bytes, persistor_error *err)
{
    persistor_query q = {.struct_size = sizeof q, .filter = filter, .filter_len = filter_len};
    persistor_cursor *cursor;
    int32_t rc = inst->api->query(inst->inner, collection, &q, &cursor, err);
    if (rc != PERSISTOR_OK)
        return rc;
    const uint8_t *doc;
    uint32_t len;
    *count = *bytes = 0;
    while ((rc = inst->api->cursor_next(cursor, &doc, &len, err)) == PERSISTOR_OK) {
        (*count)++;
        *bytes += len;
    }
    inst->api->cursor_close(cursor);
    return rc == PERSISTOR_ITER_END ? PERSISTOR_OK : rc;
}

static int32_t fault_count(persistor_instance *inst, const char *collection,
                           const uint8_t *filter, uint32_t filter_len, uint64_t *out,
                           persistor_error *err)
{
    int32_t rc = fault_check(inst, FAULT_OP_READ, "count", NULL, err);
    if (rc != PERSISTOR_OK)
        return rc;
    if (inst->api->count != NULL)
        return inst->api->count(inst->inner, collection, filter, filter_len, out, err);
    uint64_t bytes;
    return fault_scan(inst, collection, filter, filter_len, out, &bytes, err);
}

static int32_t fault_stats(persistor_instance *inst, const char *collection,
                           persistor_collection_stats *out, persistor_error *err)
{
    int32_t rc = fault_check(inst, FAULT_OP_READ, "stats", NULL, err);
    if (rc != PERSISTOR_OK)
        return rc;
    if (inst->api->stats != NULL)
        return inst->api->stats(inst->inner, collection, out, err);
    uint64_t count, bytes;
    if ((rc = fault_scan(inst, collection, NULL, 0, &count, &bytes, err)) != PERSISTOR_OK)
        return rc;
    if (out->struct_size >= offsetof(persistor_collection_stats, item_count) + sizeof count)
        out->item_count = count;
    if (out->struct_size >= offsetof(persistor_collection_stats, total_size) + sizeof bytes)
        out->total_size = bytes;
    return PERSISTOR_OK;
}

static int32_t fault_exists(persistor_instance *inst, const char *collection, const char *id,
                            persistor_error *err)
{
    int32_t rc = fault_check(inst, FAULT_OP_READ, "exists", NULL, err);
    if (rc != PERSISTOR_OK)
        return rc;
    if (inst->api->exists != NULL)
        return inst->api->exists(inst->inner, collection, id, err);
    persistor_buffer scratch = {0};
    rc = inst->api->get(inst->inner, collection, id, &scratch, err);
    inst->host->buffer_free(&scratch);
    return rc;
}

/* The ids of the expired documents, then one batch of deletes: a cursor
 * must not stay open across writes. */
static int32_t fault_expire_by_scan(persistor_instance *inst, const char *collection,
                                    int64_t cutoff_ms, uint64_t *removed, persistor_error *err)
{
    const persistor_host *host = inst->host;
    const fault_spec *s = inst->specs;
    while (s != NULL && strcmp(s->spec->name, collection) != 0)
        s = s->next;
    if (s == NULL)
        return host->error_set(err, PERSISTOR_E_INVALID, "collection %s was not ensured",
                               collection);
    if (s->spec->ttl_seconds <= 0 || s->spec->ttl_field == NULL)
        return PERSISTOR_OK;

    persistor_query q = {.struct_size = sizeof q};
    persistor_cursor *cursor;
    persistor_write_op *ops = NULL;
    int32_t *results = NULL;
    char **ids = NULL;
    uint32_t n = 0;
    int32_t rc = inst->api->query(inst->inner, collection, &q, &cursor, err);
    if (rc != PERSISTOR_OK)
        return rc;
    const uint8_t *doc;
    uint32_t len;
    while ((rc = inst->api->cursor_next(cursor, &doc, &len, err)) == PERSISTOR_OK) {
        int64_t ms;
        bson_t view;
        bson_iter_t it;
        if (host->doc_time_ms(doc, len, s->spec->ttl_field, &ms) != PERSISTOR_OK ||
            ms >= cutoff_ms || !bson_init_static(&view, doc, len) ||
            !bson_iter_init_find(&it, &view, "_id") || !BSON_ITER_HOLDS_UTF8(&it))
            continue;
        char **grown = realloc(ids, (n + 1) * sizeof *ids);
        if (grown == NULL || (grown[n] = strdup(bson_iter_utf8(&it, NULL))) == NULL) {
            ids = grown != NULL ? grown : ids;
            rc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory expiring",
                                 collection);
            break;
        }
        ids = grown;
        n++;
    }
    inst->api->cursor_close(cursor);
    if (rc != PERSISTOR_ITER_END)
        goto done;
    rc = PERSISTOR_OK;
    if (n == 0)
        goto done;
    ops = calloc(n, sizeof *ops);
    results = calloc(n, sizeof *results);
    if (ops == NULL || results == NULL) {
        rc = host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory expiring", collection);
        goto done;
    }
    for (uint32_t i = 0; i < n; i++)
        ops[i] = (persistor_write_op){.kind = PERSISTOR_WRITE_DELETE, .id = ids[i]};
    rc = inst->api->write(inst->inner, collection, ops, n, results, err);
    for (uint32_t i = 0; rc == PERSISTOR_OK && i < n; i++)
        *removed += results[i] == PERSISTOR_OK;
done:
    for (uint32_t i = 0; i < n; i++)
        free(ids[i]);
    free(ids);
    free(ops);
    free(results);
    return rc;
}

static int32_t fault_expire(persistor_instance *inst, const char *collection, int64_t cutoff_ms,
                            uint64_t *removed, persistor_error *err)
{
    *removed = 0;
    int32_t rc = fault_check(inst, FAULT_OP_WRITE, "expire", NULL, err);
    if (rc != PERSISTOR_OK)
        return rc;
    if (inst->api->expire != NULL)
        return inst->api->expire(inst->inner, collection, cutoff_ms, removed, err);
    if (inst->api->capabilities & PERSISTOR_CAP_NATIVE_TTL)
        return PERSISTOR_OK; /* the store expires on its own */
    return fault_expire_by_scan(inst, collection, cutoff_ms, removed, err);
}

/* "fault over sqlite 1.0.0", then the inner's own line when it has one. */
static int32_t fault_describe(persistor_instance *inst, persistor_buffer *out,
                              persistor_error *err)
{
    const persistor_host *host = inst->host;
    int32_t rc = fault_check(inst, FAULT_OP_PING, "describe", NULL, err);
    if (rc != PERSISTOR_OK)
        return rc;
    persistor_buffer line = {0};
    if (inst->api->describe != NULL &&
        (rc = inst->api->describe(inst->inner, &line, err)) != PERSISTOR_OK) {
        host->buffer_free(&line);
        return rc;
    }
    char head[256];
    int head_len = snprintf(head, sizeof head, "fault over %s %s%s", inst->api->name,
                            inst->api->version, line.len > 0 ? ": " : "");
    if (head_len < 0 || (size_t)head_len >= sizeof head)
        head_len = (int)strlen(head);
    if (host->buffer_set(out, head, (uint32_t)head_len) != PERSISTOR_OK ||
        (line.len > 0 && host->buffer_append(out, line.data, line.len) != PERSISTOR_OK))
        rc = host->error_set(err, PERSISTOR_E_NOMEM, "out of memory describing %s",
                             inst->api->name);
    host->buffer_free(&line);
    return rc;
}

/* ---- the table -------------------------------------------------------- */

static int32_t fault_module_init(const persistor_host *host, persistor_error *err)
{
    pthread_mutex_lock(&fault_modules_lock);
    fault_process_host = host;
    pthread_mutex_unlock(&fault_modules_lock);
    return PERSISTOR_OK;
}

static const persistor_option_spec fault_options[] = {
    {"inner", PERSISTOR_OPTION_STRING, PERSISTOR_OPTION_REQUIRED, NULL,
     "the adapter file this one wraps and forwards to, e.g. lib/persistor/sqlite.so"},
    {"control", PERSISTOR_OPTION_STRING, PERSISTOR_OPTION_REQUIRED, NULL,
     "the control file tests arm faults through (tests/faults/fault_control.h); created if "
     "missing"},
    {"inner_options", PERSISTOR_OPTION_STRING, 0, "",
     "the wrapped adapter's options as \"key=value;key=value\" (no ';' inside a value)"},
};

/*
 * Capabilities are static and read before any open, so they cannot follow
 * the inner adapter.  Not THREAD_SAFE: the inners this wraps (memory,
 * sqlite, lmdb) are not, and claiming it would let the host call them
 * concurrently; serialised calls are also what the fault tests want, one
 * call per armed count.  DURABLE: it is meant to wrap sqlite or lmdb as a
 * durable primary (wrapping memory makes the claim false; tests know).
 * NO_UNLOAD: the inner modules stay loaded and registered process-wide, so
 * unloading us would lose the record that their module_init already ran.
 */
static const persistor_adapter fault_adapter = {
    .abi_major = PERSISTOR_ABI_MAJOR,
    .abi_minor = PERSISTOR_ABI_MINOR,
    .struct_size = sizeof(persistor_adapter),
    .capabilities = PERSISTOR_CAP_DURABLE | PERSISTOR_CAP_NO_UNLOAD,
    .name = "fault",
    .version = "1.0.0",
    .description = "TESTS ONLY: wraps another adapter and fails on command (fault_control.h)",
    .options = fault_options,
    .n_options = sizeof fault_options / sizeof fault_options[0],
    .module_init = fault_module_init,
    .open = fault_open,
    .close = fault_close,
    .ping = fault_ping,
    .ensure_collection = fault_ensure_collection,
    .write = fault_write,
    .get = fault_get,
    .query = fault_query,
    .cursor_next = fault_cursor_next,
    .cursor_close = fault_cursor_close,
    .count = fault_count,
    .expire = fault_expire,
    .stats = fault_stats,
    .exists = fault_exists,
    .describe = fault_describe,
};

PERSISTOR_ADAPTER_EXPORT const persistor_adapter *persistor_adapter_entry(const persistor_host *host)
{
    if (host == NULL || host->abi_major != PERSISTOR_ABI_MAJOR ||
        host->struct_size < sizeof(persistor_host))
        return NULL;
    return &fault_adapter;
}
