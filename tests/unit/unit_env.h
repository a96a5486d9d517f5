/*
 * unit_env.h — what the unit tests that open profiles share: the build
 * tree's plugins, and a scratch directory for profiles files and stores.
 */
#ifndef PERSISTOR_TESTS_UNIT_ENV_H
#define PERSISTOR_TESTS_UNIT_ENV_H

#include <stddef.h>
#include <stdint.h>

#include "persistor/persistor.h"

/* Point PERSISTOR_PLUGIN_DIR at $PERSISTOR_BUILD_DIR/lib/persistor (a test
 * links the core statically, so the loader cannot find them beside it). */
void unit_env_plugins(void);

/* Make /tmp/persistor-<name>-XXXXXX into dir (cap bytes); fails the test
 * when it cannot. */
void unit_env_tmpdir(char *dir, size_t cap, const char *name);

/* Remove dir and everything below it. */
void unit_env_remove(const char *dir);

/* A scratch profiles file and handles on it with a clock the test moves:
 * what the tests of the domain calls (audit, find, telemetry) share. */
typedef struct unit_store {
    char dir[64];      /* /tmp/persistor-<name>-XXXXXX, removed by unit_store_free */
    char config[256];  /* dir/profiles.yaml */
    char control[128]; /* dir/control: for the fault.so adapters of a profile */
    int64_t now;       /* what the handles' clock reads; starts at 1763800000000 */
    persistor *p;      /* unit_store_new's handle */
} unit_store;

/* Point the plugins at the build tree, set the log level, make the scratch
 * directory, write the profiles file from `fmt` (printf, then "{dir}"
 * becomes the scratch directory and "{plugins}" the plugin directory), and
 * open `profile` into ->p.  Fails the test when anything does. */
unit_store *unit_store_new(const char *name, const char *log_level, const char *profile,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* Another handle on the store's profiles file, on its clock (caller closes). */
persistor *unit_store_open(unit_store *s, const char *profile);

/* Close ->p, remove the directory, free. */
void unit_store_free(unit_store *s);

#endif
