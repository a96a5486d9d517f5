/*
 * unit_env.c — the shared set-up of the unit tests that open profiles.
 */
#define _XOPEN_SOURCE 700 /* mkdtemp, nftw */
#include "unit_env.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>

void unit_env_plugins(void)
{
    char plugins[4096];
    const char *build = getenv("PERSISTOR_BUILD_DIR");
    assert_non_null(build); /* set by ctest */
    snprintf(plugins, sizeof plugins, "%s/lib/persistor", build);
    setenv("PERSISTOR_PLUGIN_DIR", plugins, 1);
}

void unit_env_tmpdir(char *dir, size_t cap, const char *name)
{
    snprintf(dir, cap, "/tmp/persistor-%s-XXXXXX", name);
    if (mkdtemp(dir) == NULL)
        fail_msg("mkdtemp %s failed", dir);
}

static int unit_env_unlink(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

void unit_env_remove(const char *dir)
{
    nftw(dir, unit_env_unlink, 16, FTW_DEPTH | FTW_PHYS);
}
