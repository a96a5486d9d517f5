/*
 * test_plugin.c — tiny adapters for the loader's tests, one per variant.
 *
 * Built several times with -DVARIANT_<name>; each variant breaks exactly
 * one rule of the ABI so the test can check the loader refuses it with the
 * right reason.  VARIANT_GOOD breaks none.  The callbacks do nothing: the
 * loader never calls them.
 */
#include <persistor/adapter.h>
#include <stddef.h>
#include <stdlib.h>

/* Each variant leaves some of these unused on purpose. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-const-variable"

const persistor_host *tp_host;

static int32_t tp_open(const persistor_host *host, const persistor_config *config,
                       persistor_instance **out, persistor_error *err)
{
    (void)config; (void)err;
    tp_host = host;
    *out = NULL;
    return PERSISTOR_OK;
}
static void tp_close(persistor_instance *inst) { (void)inst; }
static int32_t tp_ping(persistor_instance *inst, persistor_error *err)
{
    (void)inst;
#ifdef VARIANT_TALKS_SECRETS
    if (getenv("TP_PING_FAILS") != NULL)
        return tp_host->error_set(err, PERSISTOR_E_UNAVAILABLE,
                                  "ping: no answer from mongodb://admin:hunter2@db1:27017/");
#else
    (void)err;
#endif
    return PERSISTOR_OK;
}
static int32_t tp_ensure(persistor_instance *inst, const persistor_collection_spec *spec,
                         persistor_error *err)
{
    (void)inst; (void)spec; (void)err;
    return PERSISTOR_OK;
}
static int32_t tp_write(persistor_instance *inst, const char *coll, const persistor_write_op *ops,
                        uint32_t n, int32_t *results, persistor_error *err)
{
    (void)inst; (void)coll; (void)ops; (void)n; (void)results; (void)err;
    return PERSISTOR_E_NOTSUP;
}
static int32_t tp_get(persistor_instance *inst, const char *coll, const char *id,
                      persistor_buffer *out, persistor_error *err)
{
    (void)inst; (void)coll; (void)id; (void)out; (void)err;
    return PERSISTOR_NOT_FOUND;
}
static int32_t tp_query(persistor_instance *inst, const char *coll, const persistor_query *q,
                        persistor_cursor **out, persistor_error *err)
{
    (void)inst; (void)coll; (void)q; (void)out; (void)err;
    return PERSISTOR_E_NOTSUP;
}
static int32_t tp_next(persistor_cursor *c, const uint8_t **doc, uint32_t *len,
                       persistor_error *err)
{
    (void)c; (void)doc; (void)len; (void)err;
    return PERSISTOR_ITER_END;
}
static void tp_cursor_close(persistor_cursor *c) { (void)c; }

#ifdef VARIANT_INIT_ONCE
/* Fails if the host ever runs module_init twice in one process. */
static int tp_init_calls;
static int32_t tp_module_init(const persistor_host *host, persistor_error *err)
{
    if (++tp_init_calls > 1)
        return host->error_set(err, PERSISTOR_E_ABI, "module_init ran %d times", tp_init_calls);
    return PERSISTOR_OK;
}
#elif defined(VARIANT_INIT_FAILS)
static int32_t tp_module_init(const persistor_host *host, persistor_error *err)
{
    return host->error_set(err, PERSISTOR_E_CONFIG, "the test library refuses to start");
}
#endif

#ifndef TP_NAME
#define TP_NAME "good"
#endif

#ifdef VARIANT_TALKS_SECRETS
/* A store that names its server with credentials, as a careless adapter
 * might: health must never show them. */
static int32_t tp_describe(persistor_instance *inst, persistor_buffer *out, persistor_error *err)
{
    static const char line[] = "TestDB 1.0 at mongodb://admin:hunter2@db1:27017/?replicaSet=rs0";
    extern const persistor_host *tp_host;
    (void)inst; (void)err;
    return tp_host->buffer_set(out, line, sizeof line - 1);
}
#endif

#ifdef VARIANT_RESERVED_OPTION
/* "path" names the plugin file in a profile: an adapter cannot take it. */
static const persistor_option_spec tp_options[] = {
    {"path", PERSISTOR_OPTION_STRING, 0, NULL, "where the store lives"},
};
#endif

static const persistor_adapter tp_adapter = {
#ifdef VARIANT_WRONG_MAJOR
    .abi_major = PERSISTOR_ABI_MAJOR + 1,
#else
    .abi_major = PERSISTOR_ABI_MAJOR,
#endif
    .abi_minor = PERSISTOR_ABI_MINOR,
#ifdef VARIANT_SHORT_TABLE
    .struct_size = 40,
#else
    .struct_size = sizeof(persistor_adapter),
#endif
#ifdef VARIANT_INIT_ONCE
    .capabilities = PERSISTOR_CAP_NO_UNLOAD,
#endif
    .name = TP_NAME,
    .version = "0.0.1",
#ifdef VARIANT_RESERVED_OPTION
    .options = tp_options,
    .n_options = 1,
#endif
#ifdef VARIANT_TALKS_SECRETS
    .describe = tp_describe,
#endif
#if defined(VARIANT_INIT_ONCE) || defined(VARIANT_INIT_FAILS)
    .module_init = tp_module_init,
#endif
    .open = tp_open,
    .close = tp_close,
    .ping = tp_ping,
    .ensure_collection = tp_ensure,
    .write = tp_write,
    .get = tp_get,
#ifndef VARIANT_NULL_SLOT
    .query = tp_query,
#endif
    .cursor_next = tp_next,
    .cursor_close = tp_cursor_close,
};

#ifndef VARIANT_NO_ENTRY
PERSISTOR_ADAPTER_EXPORT const persistor_adapter *persistor_adapter_entry(const persistor_host *host)
{
    (void)host;
#ifdef VARIANT_NULL_TABLE
    return NULL;
#else
    return &tp_adapter;
#endif
}
#else
/* Exported, but under the wrong name. */
PERSISTOR_ADAPTER_EXPORT const persistor_adapter *persistor_adapter_entry_v0(void)
{
    return &tp_adapter;
}
#endif
