/*
 * unit_env.h — what the unit tests that open profiles share: the build
 * tree's plugins, and a scratch directory for profiles files and stores.
 */
#ifndef PERSISTOR_TESTS_UNIT_ENV_H
#define PERSISTOR_TESTS_UNIT_ENV_H

#include <stddef.h>

/* Point PERSISTOR_PLUGIN_DIR at $PERSISTOR_BUILD_DIR/lib/persistor (a test
 * links the core statically, so the loader cannot find them beside it). */
void unit_env_plugins(void);

/* Make /tmp/persistor-<name>-XXXXXX into dir (cap bytes); fails the test
 * when it cannot. */
void unit_env_tmpdir(char *dir, size_t cap, const char *name);

/* Remove dir and everything below it. */
void unit_env_remove(const char *dir);

#endif
