/*
 * host.c — the services table handed to adapters (see adapter.h, part 5).
 *
 * Each slot forwards to the core piece that owns the service; this file
 * only adds what depends on *which* table was called (the adapter's label
 * for logs, the clock).  It must not grow logic of its own.
 */
#include "host.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "buffer.h"
#include "config.h"
#include "error.h"
#include "log.h"
#include "query.h"

/* The table is the first member, so a persistor_host* is a host_impl*. */
typedef struct host_impl {
    persistor_host table;
    host_clock_fn clock;
    void *clock_ctx;
    char label[64];
} host_impl;

int64_t host_realtime_ms(void)
{
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000;
}

__attribute__((format(printf, 4, 5))) static void host_log(const persistor_host *host,
                                                            int32_t level, const char *event,
                                                            const char *fmt, ...)
{
    const host_impl *impl = (const host_impl *)host;
    log_line line;
    if (!log_begin(&line, level, event != NULL ? event : "adapter_log"))
        return;
    char message[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(message, sizeof message, fmt, ap);
    va_end(ap);
    log_str(&line, "adapter", impl->label);
    log_str(&line, "message", message);
    log_end(&line);
}

static int64_t host_now_ms(const persistor_host *host)
{
    const host_impl *impl = (const host_impl *)host;
    return impl->clock != NULL ? impl->clock(impl->clock_ctx) : host_realtime_ms();
}

static int32_t host_matcher_new(const uint8_t *filter, uint32_t len, persistor_matcher **out,
                                persistor_error *err)
{
    return query_matcher_new(filter, len, out, err);
}

static int32_t host_matcher_match(const persistor_matcher *m, const uint8_t *doc, uint32_t len)
{
    return query_matcher_match(m, doc, len) ? 1 : 0;
}

static int32_t host_sorter_compare(const persistor_sorter *s, const uint8_t *a, uint32_t a_len,
                                   const uint8_t *b, uint32_t b_len)
{
    return query_sorter_compare(s, a, a_len, b, b_len);
}

static int32_t host_make_dirs(const char *path, uint32_t mode, persistor_error *err)
{
    char dir[4096];
    size_t len = strlen(path);
    if (len == 0 || len >= sizeof dir)
        return error_set(err, PERSISTOR_E_CONFIG, "cannot create directory \"%s\": %s", path,
                         len == 0 ? "empty path" : "path too long");
    memcpy(dir, path, len + 1);
    /* Each prefix ending at a '/', then the whole path. */
    for (char *p = dir + 1;; p++) {
        if (*p != '/' && *p != '\0')
            continue;
        char saved = *p;
        *p = '\0';
        struct stat st;
        if (mkdir(dir, (mode_t)mode) != 0 && (errno != EEXIST || stat(dir, &st) != 0 ||
                                               !S_ISDIR(st.st_mode)))
            return error_set(err, PERSISTOR_E_CONFIG, "cannot create directory %s: %s", dir,
                             errno == EEXIST ? "a file is in the way" : strerror(errno));
        *p = saved;
        if (saved == '\0')
            return PERSISTOR_OK;
    }
}

static void host_fill(host_impl *impl, const char *label, host_clock_fn clock, void *ctx)
{
    persistor_host *t = &impl->table;
    memset(impl, 0, sizeof *impl);
    t->abi_major = PERSISTOR_ABI_MAJOR;
    t->abi_minor = PERSISTOR_ABI_MINOR;
    t->struct_size = (uint32_t)sizeof *t;
    t->log = host_log;
    t->error_set = error_set;
    t->buffer_set = buffer_set;
    t->buffer_append = buffer_append;
    t->buffer_free = buffer_free;
    t->config_string = config_string;
    t->config_int = config_int;
    t->config_bool = config_bool;
    t->config_double = config_double;
    t->config_error = config_error;
    t->config_label = config_label;
    t->matcher_new = host_matcher_new;
    t->matcher_match = host_matcher_match;
    t->matcher_free = query_matcher_free;
    t->sorter_new = query_sorter_new;
    t->sorter_compare = host_sorter_compare;
    t->sorter_free = query_sorter_free;
    t->index_key = query_index_key;
    t->doc_time_ms = query_doc_time_ms;
    t->now_ms = host_now_ms;
    t->make_dirs = host_make_dirs;
    impl->clock = clock;
    impl->clock_ctx = ctx;
    snprintf(impl->label, sizeof impl->label, "%s", label);
}

static host_impl host_default_impl;
static pthread_once_t host_default_once = PTHREAD_ONCE_INIT;

static void host_default_init(void)
{
    host_fill(&host_default_impl, "persistor", NULL, NULL);
}

const persistor_host *host_default(void)
{
    pthread_once(&host_default_once, host_default_init);
    return &host_default_impl.table;
}

persistor_host *host_new(const char *label, host_clock_fn clock, void *ctx)
{
    host_impl *impl = malloc(sizeof *impl);
    if (impl == NULL)
        return NULL;
    host_fill(impl, label, clock, ctx);
    return &impl->table;
}

void host_free(persistor_host *host)
{
    free(host);
}
