/*
 * persistor.c — opening and closing a profile, and the calls that are not
 * about one kind of record (health, names, freeing).
 *
 * Order at open matters: the whole profile file is checked, then every
 * plugin is loaded and its options checked, and only then is any store
 * opened, so a typo never leaves a half-opened chain behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "error.h"
#include "log.h"
#include "persistor_internal.h"

#ifndef PERSISTOR_VERSION
#define PERSISTOR_VERSION "0.0.0"
#endif

#define PERSISTOR_DEFAULT_PROFILE "development"

static const char *const persistor_config_candidates[] = {
    "conf/profiles.yaml",
    "/etc/persistor/profiles.yaml",
};

const char *persistor_version(void)
{
    return PERSISTOR_VERSION;
}

const char *persistor_rc_name(int32_t rc)
{
    return error_code_name(rc);
}

void persistor_free(void *ptr)
{
    free(ptr);
}

/* --config, then $PERSISTOR_CONFIG, then the first candidate that exists. */
static int32_t persistor_find_config(const char *given, const char **out, persistor_error *err)
{
    if (given != NULL && *given != '\0') {
        *out = given;
        return PERSISTOR_OK;
    }
    const char *env = getenv("PERSISTOR_CONFIG");
    if (env != NULL && *env != '\0') {
        *out = env;
        return PERSISTOR_OK;
    }
    for (size_t i = 0; i < sizeof persistor_config_candidates / sizeof *persistor_config_candidates;
         i++) {
        if (access(persistor_config_candidates[i], R_OK) == 0) {
            *out = persistor_config_candidates[i];
            return PERSISTOR_OK;
        }
    }
    return error_set(err, PERSISTOR_NOT_FOUND,
                     "no profiles file: pass --config FILE or set PERSISTOR_CONFIG (looked for "
                     "./conf/profiles.yaml and /etc/persistor/profiles.yaml)");
}

static const char *persistor_pick_profile(const char *given)
{
    if (given != NULL && *given != '\0')
        return given;
    const char *env = getenv("PERSISTOR_PROFILE");
    return env != NULL && *env != '\0' ? env : PERSISTOR_DEFAULT_PROFILE;
}

int32_t persistor_open(const persistor_open_options *opts, persistor **out, persistor_error *err)
{
    persistor_open_options defaults = {.struct_size = sizeof defaults};
    if (opts == NULL)
        opts = &defaults;
    if (opts->struct_size < sizeof(persistor_open_options))
        return error_set(err, PERSISTOR_E_INVALID,
                         "persistor_open_options.struct_size must be set to its sizeof");
    const char *file;
    int32_t rc = persistor_find_config(opts->config_path, &file, err);
    if (rc != PERSISTOR_OK)
        return rc;

    persistor *p = calloc(1, sizeof *p);
    if (p == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "out of memory opening %s", file);
    p->clock_ms = opts->clock_ms;
    p->clock_ctx = opts->clock_ctx;
    rc = profile_load(file, persistor_pick_profile(opts->profile), &p->prof, err);
    if (rc != PERSISTOR_OK)
        goto fail;
    p->n_specs = snapshot_collection_specs(p->prof, p->specs);
    p->n_specs += audit_collection_specs(p->prof, p->specs + p->n_specs);
    p->n_specs += telemetry_collection_specs(p->prof, p->specs + p->n_specs);
    rc = router_open(p->prof, p->specs, p->n_specs, p->clock_ms, p->clock_ctx, &p->router, err);
    if (rc != PERSISTOR_OK)
        goto fail;

    log_line line;
    if (log_begin(&line, PERSISTOR_LOG_INFO, "persistor_opened")) {
        log_str(&line, "profile", p->prof->name);
        log_str(&line, "config", p->prof->file);
        log_int(&line, "adapters", (int64_t)p->prof->n_adapters);
        log_end(&line);
    }
    *out = p;
    return PERSISTOR_OK;
fail:
    persistor_close(p);
    return rc;
}

void persistor_close(persistor *p)
{
    if (p == NULL)
        return;
    router_close(p->router);
    profile_free(p->prof);
    free(p);
}

const char *persistor_profile_name(const persistor *p)
{
    return p->prof->name;
}

const char *persistor_config_path(const persistor *p)
{
    return p->prof->file;
}

const char *persistor_collection_name(const persistor *p, profile_collection_kind kind)
{
    return p->prof->collections[kind].name;
}

int32_t persistor_collection_lookup(const persistor *p, const char *name,
                                    profile_collection_kind *kind, persistor_error *err)
{
    /* Names the profile gives first: a profile may name one collection
     * after another's key, and the name is what the store holds. */
    for (int pass = 0; name != NULL && pass < 2; pass++)
        for (int k = 0; k < PROFILE_COLL_COUNT; k++) {
            const char *candidate = pass == 0 ? p->prof->collections[k].name
                                              : profile_collection_key((profile_collection_kind)k);
            if (strcmp(name, candidate) == 0) {
                *kind = (profile_collection_kind)k;
                return PERSISTOR_OK;
            }
        }
    char known[512];
    size_t o = 0;
    for (int k = 0; k < PROFILE_COLL_COUNT && o < sizeof known; k++)
        o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", k ? ", " : "",
                              p->prof->collections[k].name);
    return error_set(err, PERSISTOR_E_INVALID,
                     "unknown collection '%s' in profile '%s' (%s has: %s)",
                     name != NULL ? name : "(null)", p->prof->name, p->prof->file, known);
}

static char *persistor_chain_text(const profile *prof)
{
    size_t cap = 1;
    for (size_t i = 0; i < prof->n_adapters; i++)
        cap += strlen(prof->adapters[i].type) + 4;
    char *text = malloc(cap);
    if (text == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < prof->n_adapters; i++)
        o += (size_t)snprintf(text + o, cap - o, "%s%s", i ? " -> " : "", prof->adapters[i].type);
    text[o] = '\0';
    return text;
}

int32_t persistor_profiles(const char *config_path, persistor_profile_list *out,
                           persistor_error *err)
{
    const char *file;
    profile **all = NULL;
    size_t n = 0;
    memset(out, 0, sizeof *out);
    int32_t rc = persistor_find_config(config_path, &file, err);
    if (rc == PERSISTOR_OK)
        rc = profile_load_all(file, &all, &n, err);
    if (rc != PERSISTOR_OK)
        return rc;
    out->config_path = strdup(file);
    out->items = calloc(n ? n : 1, sizeof *out->items);
    if (out->config_path == NULL || out->items == NULL)
        rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory listing %s", file);
    for (size_t i = 0; rc == PERSISTOR_OK && i < n; i++) {
        persistor_profile_info *info = &out->items[out->count++];
        info->name = strdup(all[i]->name);
        info->description = strdup(all[i]->description != NULL ? all[i]->description : "");
        info->chain = persistor_chain_text(all[i]);
        if (info->name == NULL || info->description == NULL || info->chain == NULL)
            rc = error_set(err, PERSISTOR_E_NOMEM, "out of memory listing %s", file);
    }
    profile_free_all(all, n);
    if (rc != PERSISTOR_OK)
        persistor_profile_list_free(out);
    return rc;
}

void persistor_profile_list_free(persistor_profile_list *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; list->items != NULL && i < list->count; i++) {
        free(list->items[i].name);
        free(list->items[i].description);
        free(list->items[i].chain);
    }
    free(list->items);
    free(list->config_path);
    memset(list, 0, sizeof *list);
}

int persistor_degraded(persistor *p)
{
    return router_degraded(p->router);
}

int32_t persistor_on_failure(const persistor *p, profile_collection_kind kind, const char *event,
                             const persistor_write_op *ops, int32_t *results, size_t n,
                             int32_t rc, const persistor_error *err)
{
    if (rc >= 0 || rc == PERSISTOR_E_INVALID ||
        p->prof->collections[kind].on_failure != PROFILE_FAIL_OPEN)
        return rc;
    char name[96];
    snprintf(name, sizeof name, "%s_persist_failed", event);
    for (size_t i = 0; i < n; i++) {
        if (results[i] >= 0)
            continue;
        results[i] = PERSISTOR_NOT_STORED;
        log_line line;
        if (log_begin(&line, PERSISTOR_LOG_ERROR, name)) {
            log_str(&line, "collection", persistor_collection_name(p, kind));
            log_str(&line, "id", ops[i].id);
            log_str(&line, "code", persistor_rc_name(rc));
            log_str(&line, "reason", err != NULL ? err->message : "");
            log_str(&line, "on_failure", "fail_open");
            log_end(&line);
        }
    }
    return PERSISTOR_OK;
}

int32_t persistor_health_check(persistor *p, persistor_health *out, persistor_error *err)
{
    return router_health(p->router, out, err);
}

void persistor_health_free(persistor_health *health)
{
    if (health == NULL)
        return;
    free(health->adapters);
    health->adapters = NULL;
    health->count = 0;
}
