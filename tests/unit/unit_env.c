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
#include <string.h>

#include "log.h"

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

static int64_t unit_store_clock(void *ctx)
{
    return ((unit_store *)ctx)->now;
}

unit_store *unit_store_new(const char *name, const char *log_level, const char *profile,
                           const char *fmt, ...)
{
    unit_store *s = calloc(1, sizeof *s);
    assert_non_null(s);
    unit_env_plugins();
    setenv("PERSISTOR_LOG_LEVEL", log_level, 1);
    log_reload_level();
    unit_env_tmpdir(s->dir, sizeof s->dir, name);
    snprintf(s->config, sizeof s->config, "%s/profiles.yaml", s->dir);
    snprintf(s->control, sizeof s->control, "%s/control", s->dir);
    char text[8192];
    va_list ap;
    va_start(ap, fmt);
    int len = vsnprintf(text, sizeof text, fmt, ap);
    va_end(ap);
    assert_true(len > 0 && (size_t)len < sizeof text);
    FILE *out = fopen(s->config, "w");
    assert_non_null(out);
    for (const char *c = text; *c != '\0'; c++) {
        if (strncmp(c, "{dir}", 5) == 0) {
            fputs(s->dir, out);
            c += 4;
        }
        else if (strncmp(c, "{plugins}", 9) == 0) {
            fputs(getenv("PERSISTOR_PLUGIN_DIR"), out);
            c += 8;
        }
        else
            fputc(*c, out);
    }
    fclose(out);
    s->now = 1763800000000; /* 2025-11-22T08:26:40Z */
    s->p = unit_store_open(s, profile);
    return s;
}

persistor *unit_store_open(unit_store *s, const char *profile)
{
    persistor *p;
    persistor_open_options opts = {.struct_size = sizeof opts, .config_path = s->config,
                                   .profile = profile, .clock_ms = unit_store_clock,
                                   .clock_ctx = s};
    persistor_error err = {0};
    if (persistor_open(&opts, &p, &err) != PERSISTOR_OK)
        fail_msg("open %s of %s: %s", profile, s->config, err.message);
    return p;
}

void unit_store_free(unit_store *s)
{
    if (s == NULL)
        return;
    persistor_close(s->p);
    unit_env_remove(s->dir);
    free(s);
}
