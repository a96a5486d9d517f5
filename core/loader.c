/*
 * loader.c — finds adapter files, checks them, dlopens them once.
 *
 * Every refusal names the file and the reason, because a plugin that will
 * not load is the first thing a new adapter author meets.  The loader runs
 * no adapter code but persistor_adapter_entry and module_init; it never
 * opens an instance (that is the router's job).
 */
#define _GNU_SOURCE /* dladdr */
#include "loader.h"

#include <dlfcn.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"
#include "host.h"
#include "log.h"

struct loader_module {
    struct loader_module *next;
    unsigned refs;
    void *handle;
    char path[PATH_MAX];
    persistor_adapter adapter; /* zero-extended copy of the plugin's table */
};

static pthread_mutex_t loader_lock = PTHREAD_MUTEX_INITIALIZER;
static loader_module *loader_modules;

/* The REQUIRED slots of adapter.h, in the order a reader meets them. */
#define LOADER_SLOT(field) {#field, offsetof(persistor_adapter, field)}
static const struct {
    const char *name;
    size_t offset;
} loader_required_slots[] = {
    LOADER_SLOT(name),  LOADER_SLOT(version), LOADER_SLOT(open),
    LOADER_SLOT(close), LOADER_SLOT(ping),    LOADER_SLOT(ensure_collection),
    LOADER_SLOT(write), LOADER_SLOT(get),     LOADER_SLOT(query),
    LOADER_SLOT(cursor_next), LOADER_SLOT(cursor_close),
};

/* The smallest table an ABI 1 adapter can have: up to its last REQUIRED slot. */
#define LOADER_MIN_TABLE_SIZE \
    (offsetof(persistor_adapter, cursor_close) + sizeof(void (*)(void)))

static bool loader_is_dir(const char *path)
{
    struct stat st;
    return path != NULL && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* `persistor/` beside the libpersistor (or program) this code runs in, so
 * a build tree works uninstalled; empty when there is no such directory. */
static char loader_beside_dir[PATH_MAX];
static pthread_once_t loader_beside_once = PTHREAD_ONCE_INIT;

static void loader_find_beside_library(void)
{
    Dl_info info;
    if (dladdr((void *)loader_find_beside_library, &info) == 0 || info.dli_fname == NULL)
        return;
    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", info.dli_fname);
    char candidate[PATH_MAX + 16];
    snprintf(candidate, sizeof candidate, "%s/persistor", dirname(copy));
    if (loader_is_dir(candidate) && strlen(candidate) < sizeof loader_beside_dir)
        memcpy(loader_beside_dir, candidate, strlen(candidate) + 1);
}

static const char *loader_beside_library(void)
{
    pthread_once(&loader_beside_once, loader_find_beside_library);
    return loader_beside_dir[0] != '\0' ? loader_beside_dir : NULL;
}

const char *loader_plugin_dir(const char *profile_plugin_dir)
{
    const char *env = getenv("PERSISTOR_PLUGIN_DIR");
    if (env != NULL && *env != '\0')
        return env;
    if (profile_plugin_dir != NULL && *profile_plugin_dir != '\0')
        return profile_plugin_dir;
    const char *beside = loader_beside_library();
    return beside != NULL ? beside : PERSISTOR_PLUGIN_INSTALL_DIR;
}

/* Refuse files an attacker other than the owner could have replaced. */
static int32_t loader_check_file(const char *path, persistor_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT)
            return error_set(err, PERSISTOR_E_CONFIG,
                             "%s: refused: no such file (set the adapter's path:, the "
                             "profile's plugin_dir or PERSISTOR_PLUGIN_DIR)",
                             path);
        return error_set(err, PERSISTOR_E_CONFIG, "%s: refused: %s", path, strerror(errno));
    }
    if (!S_ISREG(st.st_mode))
        return error_set(err, PERSISTOR_E_CONFIG, "%s: refused: not a regular file", path);
    if (st.st_mode & (S_IWGRP | S_IWOTH))
        return error_set(err, PERSISTOR_E_CONFIG,
                         "%s: refused: the file is writable by group or others (mode %03o); "
                         "run chmod go-w on it",
                         path, (unsigned)(st.st_mode & 0777));

    char copy[PATH_MAX];
    snprintf(copy, sizeof copy, "%s", path);
    const char *dir = dirname(copy);
    if (stat(dir, &st) == 0 && (st.st_mode & (S_IWGRP | S_IWOTH)))
        return error_set(err, PERSISTOR_E_CONFIG,
                         "%s: refused: its directory %s is writable by group or others "
                         "(mode %03o); run chmod go-w on it",
                         path, dir, (unsigned)(st.st_mode & 0777));
    return PERSISTOR_OK;
}

static int32_t loader_resolve(const char *type, const char *explicit_path,
                              const char *profile_plugin_dir, char *out, persistor_error *err)
{
    char wanted[PATH_MAX];
    if (explicit_path != NULL && *explicit_path != '\0')
        snprintf(wanted, sizeof wanted, "%s", explicit_path);
    else
        snprintf(wanted, sizeof wanted, "%s/%s.so", loader_plugin_dir(profile_plugin_dir), type);
    int32_t rc = loader_check_file(wanted, err);
    if (rc != PERSISTOR_OK)
        return rc;
    if (realpath(wanted, out) == NULL)
        return error_set(err, PERSISTOR_E_CONFIG, "%s: refused: %s", wanted, strerror(errno));
    return PERSISTOR_OK;
}

/* Check the table the plugin returned and copy it, zero-extended. */
static int32_t loader_check_table(const char *path, const char *type,
                                  const persistor_adapter *table, persistor_adapter *copy,
                                  persistor_error *err)
{
    if (table == NULL)
        return error_set(err, PERSISTOR_E_ABI,
                         "%s: refused: persistor_adapter_entry returned no adapter table", path);
    if (table->abi_major != PERSISTOR_ABI_MAJOR)
        return error_set(err, PERSISTOR_E_ABI,
                         "%s: refused: written for ABI %u, this persistor speaks ABI %d", path,
                         table->abi_major, PERSISTOR_ABI_MAJOR);
    if (table->struct_size < LOADER_MIN_TABLE_SIZE)
        return error_set(err, PERSISTOR_E_ABI,
                         "%s: refused: adapter table of %u bytes is smaller than ABI %d's "
                         "required part (%zu bytes)",
                         path, table->struct_size, PERSISTOR_ABI_MAJOR,
                         (size_t)LOADER_MIN_TABLE_SIZE);
    memset(copy, 0, sizeof *copy);
    size_t n = table->struct_size < sizeof *copy ? table->struct_size : sizeof *copy;
    memcpy(copy, table, n);

    for (size_t i = 0; i < sizeof loader_required_slots / sizeof loader_required_slots[0]; i++) {
        const void *slot;
        memcpy(&slot, (const char *)copy + loader_required_slots[i].offset, sizeof slot);
        if (slot == NULL)
            return error_set(err, PERSISTOR_E_ABI,
                             "%s: refused: required slot '%s' is NULL", path,
                             loader_required_slots[i].name);
    }
    if (strcmp(copy->name, type) != 0)
        return error_set(err, PERSISTOR_E_CONFIG,
                         "%s: refused: the adapter calls itself \"%s\" but the profile asks for "
                         "type \"%s\"",
                         path, copy->name, type);
    for (uint32_t i = 0; i < copy->n_options; i++) {
        if (copy->options == NULL || copy->options[i].name == NULL)
            return error_set(err, PERSISTOR_E_ABI,
                             "%s: refused: option %u of the adapter's option list has no name",
                             path, i);
        /* A profile entry's own keys: the adapter could never receive them. */
        if (strcmp(copy->options[i].name, "type") == 0 ||
            strcmp(copy->options[i].name, "path") == 0 ||
            strcmp(copy->options[i].name, "volatile") == 0)
            return error_set(err, PERSISTOR_E_ABI,
                             "%s: refused: the adapter declares an option named '%s', which a "
                             "profile entry uses itself (type: the adapter, path: its plugin "
                             "file, volatile: accepting a non-durable fallback); rename the "
                             "option",
                             path, copy->options[i].name);
    }
    return PERSISTOR_OK;
}

/* dlopen, find the entry, check the table, run module_init. */
static int32_t loader_open_module(const char *path, const char *type, loader_module **out,
                                  persistor_error *err)
{
    loader_module *m = calloc(1, sizeof *m);
    if (m == NULL)
        return error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory", path);
    snprintf(m->path, sizeof m->path, "%s", path);

    int32_t rc;
    m->handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (m->handle == NULL) {
        rc = error_set(err, PERSISTOR_E_CONFIG, "%s: refused: dlopen failed: %s", path,
                       dlerror());
        goto fail;
    }
    persistor_adapter_entry_fn entry;
    void *symbol = dlsym(m->handle, PERSISTOR_ADAPTER_ENTRY_SYMBOL);
    if (symbol == NULL) {
        rc = error_set(err, PERSISTOR_E_ABI,
                       "%s: refused: no symbol persistor_adapter_entry (is it exported with "
                       "PERSISTOR_ADAPTER_EXPORT?)",
                       path);
        goto fail;
    }
    memcpy(&entry, &symbol, sizeof entry); /* object to function pointer, portably */
    rc = loader_check_table(path, type, entry(host_default()), &m->adapter, err);
    if (rc != PERSISTOR_OK)
        goto fail;
    if (m->adapter.module_init != NULL) {
        rc = m->adapter.module_init(host_default(), err);
        if (rc != PERSISTOR_OK) {
            error_prefix(err, "%s: module_init failed", path);
            goto fail;
        }
    }
    m->refs = 1;
    *out = m;
    return PERSISTOR_OK;
fail:
    if (m->handle != NULL)
        dlclose(m->handle);
    free(m);
    return rc;
}

int32_t loader_acquire(const char *type, const char *explicit_path,
                       const char *profile_plugin_dir, const persistor_host *host,
                       loader_module **out, persistor_error *err)
{
    char path[PATH_MAX];
    (void)host;
    int32_t rc = loader_resolve(type, explicit_path, profile_plugin_dir, path, err);
    if (rc != PERSISTOR_OK)
        return rc;

    pthread_mutex_lock(&loader_lock);
    for (loader_module *m = loader_modules; m != NULL; m = m->next) {
        if (strcmp(m->path, path) != 0)
            continue;
        if (strcmp(m->adapter.name, type) != 0) {
            rc = error_set(err, PERSISTOR_E_CONFIG,
                           "%s: refused: the adapter calls itself \"%s\" but the profile asks "
                           "for type \"%s\"",
                           path, m->adapter.name, type);
        } else {
            m->refs++;
            *out = m;
        }
        pthread_mutex_unlock(&loader_lock);
        return rc;
    }
    loader_module *m = NULL;
    rc = loader_open_module(path, type, &m, err);
    if (rc == PERSISTOR_OK) {
        m->next = loader_modules;
        loader_modules = m;
        *out = m;
    }
    pthread_mutex_unlock(&loader_lock);

    log_line line;
    if (rc == PERSISTOR_OK && log_begin(&line, PERSISTOR_LOG_DEBUG, "adapter_loaded")) {
        log_str(&line, "adapter", type);
        log_str(&line, "path", path);
        log_str(&line, "version", m->adapter.version);
        log_end(&line);
    }
    return rc;
}

const persistor_adapter *loader_adapter(const loader_module *module)
{
    return &module->adapter;
}

const char *loader_path(const loader_module *module)
{
    return module->path;
}

void loader_release(loader_module *module)
{
    if (module == NULL)
        return;
    pthread_mutex_lock(&loader_lock);
    /* A NO_UNLOAD module stays registered with no references, so a later
     * acquire reuses it and module_init never runs twice in one process. */
    if (--module->refs > 0 || (module->adapter.capabilities & PERSISTOR_CAP_NO_UNLOAD)) {
        pthread_mutex_unlock(&loader_lock);
        return;
    }
    for (loader_module **p = &loader_modules; *p != NULL; p = &(*p)->next) {
        if (*p == module) {
            *p = module->next;
            break;
        }
    }
    pthread_mutex_unlock(&loader_lock);

    if (module->adapter.module_fini != NULL)
        module->adapter.module_fini();
    dlclose(module->handle);
    free(module);
}
