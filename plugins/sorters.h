/*
 * sorters.h — the sorters the sqlite and lmdb adapters compile through
 * host->sorter_new and keep: a collection's {version_field: 1} for
 * upsert-if-newer, and the last query's sort, reused while its bytes are
 * the same (sorter_new depends on nothing else).
 *
 * Shared as source only: every function is static inline, so each adapter
 * .so compiles its own copy, links nothing of the other's, and stays
 * loadable alone.  This file must not hold state, include anything of
 * persistor's but adapter.h, or be used by memory.c (the template adapter
 * copies nothing but itself and adapter.h).
 */
#ifndef PERSISTOR_PLUGINS_SORTERS_H
#define PERSISTOR_PLUGINS_SORTERS_H

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <bson/bson.h>

#include "persistor/adapter.h"

/* The last sort compiled by one instance: `bytes` (len of them, owned)
 * compiled into `sorter` (owned).  All zero: nothing kept. */
typedef struct sorters_cache {
    uint8_t *bytes;
    uint32_t len;
    persistor_sorter *sorter;
} sorters_cache;

static inline void sorters_cache_free(const persistor_host *host, sorters_cache *k)
{
    if (k->sorter != NULL)
        host->sorter_free(k->sorter);
    free(k->bytes);
    k->sorter = NULL;
    k->bytes = NULL;
    k->len = 0;
}

/* The sorter of `sort` (len > 0) into *out, kept by `k`: valid until the
 * next call with other bytes or sorters_cache_free.  OK, sorter_new's
 * error, or E_NOMEM; on error `k` keeps what it had. */
static inline int32_t sorters_cached(const persistor_host *host, sorters_cache *k,
                                     const uint8_t *sort, uint32_t len,
                                     const persistor_sorter **out, persistor_error *err)
{
    if (k->sorter != NULL && k->len == len && memcmp(k->bytes, sort, len) == 0) {
        *out = k->sorter;
        return PERSISTOR_OK;
    }
    persistor_sorter *so;
    int32_t rc = host->sorter_new(sort, len, &so, err);
    if (rc != PERSISTOR_OK)
        return rc;
    uint8_t *copy = malloc(len);
    if (copy == NULL) {
        host->sorter_free(so);
        return host->error_set(err, PERSISTOR_E_NOMEM, "out of memory compiling a sort");
    }
    memcpy(copy, sort, len);
    sorters_cache_free(host, k);
    k->bytes = copy;
    k->len = len;
    k->sorter = so;
    *out = so;
    return PERSISTOR_OK;
}

/* Compile {version_field: 1} for upsert-if-newer into *out, which stays
 * untouched when the spec names no version_field (a host older than the
 * field hands a shorter spec: only what its struct_size covers is read).
 * OK, E_CONFIG. */
static inline int32_t sorters_version(const persistor_host *host,
                                      const persistor_collection_spec *spec,
                                      persistor_sorter **out, persistor_error *err)
{
    size_t end = offsetof(persistor_collection_spec, version_field) + sizeof spec->version_field;
    const char *field = spec->struct_size >= end ? spec->version_field : NULL;
    persistor_error why = {0};
    if (field == NULL)
        return PERSISTOR_OK;
    bson_t sort = BSON_INITIALIZER;
    int32_t rc = BSON_APPEND_INT32(&sort, field, 1)
                     ? host->sorter_new(bson_get_data(&sort), sort.len, out, &why)
                     : PERSISTOR_E_INVALID;
    bson_destroy(&sort);
    if (rc != PERSISTOR_OK)
        return host->error_set(err, PERSISTOR_E_CONFIG, "%s: version_field \"%s\": %s",
                               spec->name, field, why.message[0] ? why.message
                                                                 : "not a field path");
    return PERSISTOR_OK;
}

#endif
