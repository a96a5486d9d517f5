/*
 * config.c — an adapter entry's options, checked against the options the
 * adapter declares, and served back to it through the host table.
 *
 * The profile parser knows only the core's keys; it hands over everything
 * else under an adapter entry as text with its position.  Here each key is
 * matched to a persistor_option_spec, typed, defaulted, and any mistake is
 * reported with file:line:column before the adapter's open() runs.
 */
#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "error.h"

typedef struct config_value {
    const persistor_option_spec *spec;
    const profile_option *source; /* NULL when the default applies */
    const char *text;             /* NULL: unset and no default */
    int64_t as_int;
    double as_double;
    int32_t as_bool;
} config_value;

struct persistor_config {
    const profile_adapter *entry;
    char *label;
    config_value *values;
    uint32_t n_values;
};

static const char *config_type_name(uint32_t type)
{
    switch (type) {
    case PERSISTOR_OPTION_INT: return "an integer";
    case PERSISTOR_OPTION_BOOL: return "a boolean (true or false)";
    case PERSISTOR_OPTION_DOUBLE: return "a number";
    default: return "a string";
    }
}

static bool config_parse_int(const char *text, int64_t *out)
{
    char *end;
    errno = 0;
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0')
        return false;
    *out = (int64_t)v;
    return true;
}

static bool config_parse_double(const char *text, double *out)
{
    char *end;
    errno = 0;
    double v = strtod(text, &end);
    if (errno != 0 || end == text || *end != '\0' || !isfinite(v))
        return false;
    *out = v;
    return true;
}

static bool config_parse_bool(const char *text, int32_t *out)
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

/* Type the value's text; false when it is not of the declared type. */
static bool config_value_parse(config_value *v)
{
    switch (v->spec->type) {
    case PERSISTOR_OPTION_INT: return config_parse_int(v->text, &v->as_int);
    case PERSISTOR_OPTION_DOUBLE: return config_parse_double(v->text, &v->as_double);
    case PERSISTOR_OPTION_BOOL: return config_parse_bool(v->text, &v->as_bool);
    default: return true;
    }
}

static void config_known_list(const persistor_adapter *adapter, char *out, size_t cap)
{
    size_t o = 0;
    out[0] = '\0';
    for (uint32_t i = 0; i < adapter->n_options && o < cap; i++)
        o += (size_t)snprintf(out + o, cap - o, "%s%s", i ? ", " : "", adapter->options[i].name);
    if (adapter->n_options == 0)
        snprintf(out, cap, "none");
}

static int32_t config_check_entry_keys(const profile_adapter *entry,
                                       const persistor_adapter *adapter, persistor_error *err)
{
    for (size_t i = 0; i < entry->n_options; i++) {
        const profile_option *o = &entry->options[i];
        bool known = false;
        for (uint32_t k = 0; k < adapter->n_options && !known; k++)
            known = strcmp(adapter->options[k].name, o->key) == 0;
        if (!known) {
            char names[512];
            config_known_list(adapter, names, sizeof names);
            return error_set(err, PERSISTOR_E_CONFIG,
                             "%s:%u:%u: %s: unknown option for adapter %s (it takes: %s)",
                             o->mark.file, o->mark.line, o->mark.column, o->key_path,
                             adapter->name, names);
        }
    }
    return PERSISTOR_OK;
}

static const profile_option *config_find_source(const profile_adapter *entry, const char *key)
{
    for (size_t i = 0; i < entry->n_options; i++)
        if (strcmp(entry->options[i].key, key) == 0)
            return &entry->options[i];
    return NULL;
}

static int32_t config_fill_value(config_value *v, const persistor_option_spec *spec,
                                 const profile_adapter *entry, const persistor_adapter *adapter,
                                 persistor_error *err)
{
    v->spec = spec;
    v->source = config_find_source(entry, spec->name);
    v->text = v->source != NULL ? v->source->value : spec->default_value;
    if (v->text == NULL) {
        if (spec->flags & PERSISTOR_OPTION_REQUIRED)
            return error_set(err, PERSISTOR_E_CONFIG,
                             "%s:%u:%u: %s: adapter %s needs option '%s' (%s)", entry->mark.file,
                             entry->mark.line, entry->mark.column, entry->key_path,
                             adapter->name, spec->name, spec->help ? spec->help : "no help");
        return PERSISTOR_OK;
    }
    if (config_value_parse(v))
        return PERSISTOR_OK;
    if (v->source == NULL)
        return error_set(err, PERSISTOR_E_ABI,
                         "adapter %s declares option '%s' with a default \"%s\" that is not %s",
                         adapter->name, spec->name, spec->default_value,
                         config_type_name(spec->type));
    const profile_option *o = v->source;
    bool secret = (spec->flags & PERSISTOR_OPTION_SECRET) != 0;
    return error_set(err, PERSISTOR_E_CONFIG, "%s:%u:%u: %s: expected %s, got \"%s\"",
                     o->mark.file, o->mark.line, o->mark.column, o->key_path,
                     config_type_name(spec->type), secret ? "***" : o->value);
}

int32_t config_new(const profile_adapter *entry, const persistor_adapter *adapter,
                   const char *label, persistor_config **out, persistor_error *err)
{
    int32_t rc = config_check_entry_keys(entry, adapter, err);
    if (rc != PERSISTOR_OK)
        return rc;

    persistor_config *config = calloc(1, sizeof *config);
    if (config == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory reading options of %s", label);
    config->entry = entry;
    config->label = strdup(label);
    config->n_values = adapter->n_options;
    config->values = calloc(adapter->n_options ? adapter->n_options : 1, sizeof *config->values);
    if (config->label == NULL || config->values == NULL) {
        rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory reading options of %s", label);
        goto fail;
    }
    for (uint32_t i = 0; i < adapter->n_options; i++) {
        rc = config_fill_value(&config->values[i], &adapter->options[i], entry, adapter, err);
        if (rc != PERSISTOR_OK)
            goto fail;
    }
    *out = config;
    return PERSISTOR_OK;
fail:
    config_free(config);
    return rc;
}

void config_free(persistor_config *config)
{
    if (config == NULL)
        return;
    free(config->label);
    free(config->values);
    free(config);
}

/* The value of a declared key of the given type, or an answer code. */
static int32_t config_lookup(const persistor_config *config, const char *key, uint32_t type,
                             const config_value **out)
{
    for (uint32_t i = 0; i < config->n_values; i++) {
        const config_value *v = &config->values[i];
        if (strcmp(v->spec->name, key) != 0)
            continue;
        if (v->spec->type != type)
            return PERSISTOR_E_INVALID;
        if (v->text == NULL)
            return PERSISTOR_NOT_FOUND;
        *out = v;
        return PERSISTOR_OK;
    }
    return PERSISTOR_E_INVALID;
}

int32_t config_string(const persistor_config *config, const char *key, const char **out)
{
    const config_value *v;
    int32_t rc = config_lookup(config, key, PERSISTOR_OPTION_STRING, &v);
    if (rc == PERSISTOR_OK)
        *out = v->text;
    return rc;
}

int32_t config_int(const persistor_config *config, const char *key, int64_t *out)
{
    const config_value *v;
    int32_t rc = config_lookup(config, key, PERSISTOR_OPTION_INT, &v);
    if (rc == PERSISTOR_OK)
        *out = v->as_int;
    return rc;
}

int32_t config_bool(const persistor_config *config, const char *key, int32_t *out)
{
    const config_value *v;
    int32_t rc = config_lookup(config, key, PERSISTOR_OPTION_BOOL, &v);
    if (rc == PERSISTOR_OK)
        *out = v->as_bool;
    return rc;
}

int32_t config_double(const persistor_config *config, const char *key, double *out)
{
    const config_value *v;
    int32_t rc = config_lookup(config, key, PERSISTOR_OPTION_DOUBLE, &v);
    if (rc == PERSISTOR_OK)
        *out = v->as_double;
    return rc;
}

int32_t config_error(const persistor_config *config, const char *key, persistor_error *err,
                     const char *fmt, ...)
{
    char what[PERSISTOR_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);

    const profile_adapter *entry = config->entry;
    const profile_option *o = config_find_source(entry, key);
    if (o != NULL)
        return error_set(err, PERSISTOR_E_CONFIG, "%s:%u:%u: %s: %s", o->mark.file, o->mark.line,
                         o->mark.column, o->key_path, what);
    return error_set(err, PERSISTOR_E_CONFIG, "%s:%u:%u: %s.%s: %s", entry->mark.file,
                     entry->mark.line, entry->mark.column, entry->key_path, key, what);
}

const char *config_label(const persistor_config *config)
{
    return config->label;
}
