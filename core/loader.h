/*
 * loader.h — finding, loading and checking adapter shared objects.
 *
 * An adapter file is `<plugin_dir>/<type>.so` or the entry's explicit
 * `path:`.  The plugin directory is, in order: PERSISTOR_PLUGIN_DIR when
 * set, the profile's plugin_dir, then the default: `persistor/` beside the
 * libpersistor that is running (so the build tree works uninstalled), then
 * the install directory.  Modules are loaded with dlopen(RTLD_NOW |
 * RTLD_LOCAL) and shared process-wide: a module loaded twice is one module,
 * its module_init ran once.
 *
 * Refusals, each naming the file: missing file, a file or directory
 * writable by group or others, dlopen failure, no persistor_adapter_entry,
 * NULL table, another ABI major, an adapter name other than the profile's
 * type, a REQUIRED slot left NULL (named), module_init failing.
 */
#ifndef PERSISTOR_CORE_LOADER_H
#define PERSISTOR_CORE_LOADER_H

#include "persistor/adapter.h"

typedef struct loader_module loader_module;

/* Load the adapter `type` from `explicit_path` (may be NULL) or the plugin
 * directory search above (`profile_plugin_dir` may be NULL).  On OK *out is
 * a reference released with loader_release.  E_CONFIG for a missing or
 * unsafe file or a wrong adapter, E_ABI for another ABI, E_NOMEM. */
int32_t loader_acquire(const char *type, const char *explicit_path,
                       const char *profile_plugin_dir, const persistor_host *host,
                       loader_module **out, persistor_error *err);

/* The adapter's table: a zero-extended copy, valid while referenced. */
const persistor_adapter *loader_adapter(const loader_module *module);
/* The file the module was loaded from (resolved path). */
const char *loader_path(const loader_module *module);

/* Drop a reference; the last one runs module_fini and dlcloses unless the
 * adapter is PERSISTOR_CAP_NO_UNLOAD. */
void loader_release(loader_module *module);

/* The directory an adapter of this name would be searched in, for
 * messages and `persistor profiles` (a static or profile-owned string). */
const char *loader_plugin_dir(const char *profile_plugin_dir);

#endif
