/*
 * profile.h — environment profiles from YAML (conf/profiles.yaml).
 *
 * Parses the file with libyaml, interpolates ${VAR} and ${VAR:-default},
 * applies defaults and checks every key and type, so that a profile that
 * loads is complete and valid.  It knows the core's keys only; an adapter's
 * own options are kept as text with their position and checked later
 * against the options the adapter declares (config.c).  Touches no storage.
 *
 * File shape:
 *
 *   version: 1                      # optional; only 1 is accepted
 *   profiles:
 *     development:
 *       description: "..."          # optional
 *       plugin_dir: /path           # optional
 *       adapters:                   # required, at least one, in order
 *         - type: memory            # required
 *           path: /x/memory.so      # optional explicit plugin file
 *           volatile: true          # optional: accept a non-durable fallback
 *           max_items: 1000         # anything else: adapter options
 *       retry:                      # optional; the seed's defaults
 *         max_attempts: 3
 *         initial_interval_ms: 1000
 *         backoff_coefficient: 2.0
 *         max_interval_ms: 60000
 *       collections:                # optional; the five known names only
 *         snapshots:
 *           name: snapshots         # the store's collection name
 *           ttl_seconds: 86400      # 0 = no TTL
 *           on_failure: fail_closed # or fail_open
 *
 * Anchors, aliases and the merge key (<<) work as in YAML 1.1.
 */
#ifndef PERSISTOR_CORE_PROFILE_H
#define PERSISTOR_CORE_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "persistor/adapter.h"

/* Where a value stood in the file: for error messages. */
typedef struct profile_mark {
    const char *file; /* borrowed from the profile (profile->file) */
    uint32_t line;    /* 1-based */
    uint32_t column;  /* 1-based */
} profile_mark;

/* One adapter option as written: interpolated text and its position. */
typedef struct profile_option {
    char *key;
    char *value;      /* scalar text after ${} interpolation */
    char *key_path;   /* e.g. "production.adapters[0].uri" */
    profile_mark mark;  /* of the value */
} profile_option;

typedef struct profile_adapter {
    char *type;       /* e.g. "memory" */
    char *path;       /* explicit plugin file, or NULL */
    char *key_path;   /* e.g. "production.adapters[0]" */
    profile_mark mark;  /* of the entry */
    profile_mark type_mark;  /* of the type value */
    profile_option *options;
    size_t n_options;
    /* `volatile: true`: the profile accepts that this fallback does not
     * survive the process (e.g. memory behind a durable primary). */
    bool declared_volatile;
} profile_adapter;

typedef struct profile_retry {
    uint32_t max_attempts;        /* >= 1; default 3 */
    uint32_t initial_interval_ms; /* default 1000 */
    double backoff_coefficient;   /* >= 1.0; default 2.0 */
    uint32_t max_interval_ms;     /* >= initial; default 60000 */
} profile_retry;

typedef enum profile_on_failure {
    PROFILE_FAIL_CLOSED = 0,
    PROFILE_FAIL_OPEN = 1,
} profile_on_failure;

/* The collections persistor knows, in this order. */
typedef enum profile_collection_kind {
    PROFILE_COLL_SNAPSHOTS = 0,
    PROFILE_COLL_VALIDATION_AUDIT,
    PROFILE_COLL_WORKFLOW_RESULTS,
    PROFILE_COLL_INCIDENTS,
    PROFILE_COLL_TELEMETRY_BUFFER,
    PROFILE_COLL_COUNT
} profile_collection_kind;

typedef struct profile_collection {
    char *name;          /* default: the key ("snapshots", ...) */
    int64_t ttl_seconds; /* >= 0; default 0 (no TTL) */
    profile_on_failure on_failure; /* default: snapshots closed, others open */
} profile_collection;

typedef struct profile {
    char *file;   /* the path it was read from */
    char *name;   /* the profile's name */
    char *description;  /* or NULL */
    char *plugin_dir;   /* or NULL */
    profile_adapter *adapters;
    size_t n_adapters;  /* >= 1 */
    profile_retry retry;
    profile_collection collections[PROFILE_COLL_COUNT];
} profile;

/* Load profile `name` from `file`.  The whole file is parsed and checked
 * (every profile, not only the one asked for), so a typo anywhere is found
 * at once.  OK with *out set (free with profile_free); NOT_FOUND naming the
 * file and listing the profiles it has; E_CONFIG with
 * "file:line:column: key.path: what" for malformed YAML, an unknown key, a
 * wrong type, a missing required value or an undefined variable; E_NOMEM. */
int32_t profile_load(const char *file, const char *name, profile **out, persistor_error *err);

/* Every profile of a file, in file order, after the same checks: *all is
 * an array of *n profiles; free with profile_free_all. */
int32_t profile_load_all(const char *file, profile ***all, size_t *n, persistor_error *err);
void profile_free_all(profile **all, size_t n);

void profile_free(profile *p);

/* "snapshots", "validation_audit", ... */
const char *profile_collection_key(profile_collection_kind kind);

#endif
