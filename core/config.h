/*
 * config.h — one adapter entry's options, checked against what the adapter
 * declares (persistor_option_spec) and served to it through the host table.
 *
 * This is where the profile's free-form adapter keys meet the adapter's
 * schema: unknown keys, wrong types and missing required options are
 * reported here with file:line:column, before open() runs.
 */
#ifndef PERSISTOR_CORE_CONFIG_H
#define PERSISTOR_CORE_CONFIG_H

#include "persistor/adapter.h"
#include "profile.h"

/* Validate `entry`'s options against `adapter`'s declared options and
 * build the config handed to open().  `entry` must outlive the config.
 * `label` names the entry in messages ("memory#0").
 * OK, E_CONFIG ("file:line:col: key.path: what"), E_NOMEM. */
int32_t config_new(const profile_adapter *entry, const persistor_adapter *adapter,
                   const char *label, persistor_config **out, persistor_error *err);
void config_free(persistor_config *config);

/* The host table slots. */
int32_t config_string(const persistor_config *config, const char *key, const char **out);
int32_t config_int(const persistor_config *config, const char *key, int64_t *out);
int32_t config_bool(const persistor_config *config, const char *key, int32_t *out);
int32_t config_double(const persistor_config *config, const char *key, double *out);
int32_t config_error(const persistor_config *config, const char *key, persistor_error *err,
                     const char *fmt, ...) __attribute__((format(printf, 4, 5)));
const char *config_label(const persistor_config *config);

#endif
