/*
 * mongodb.c — the production adapter on libmongoc: the ABI table, options,
 * open and close (one mongoc_client_pool_t per instance), ping, describe.
 *
 * Options reach libmongoc through the mongoc_uri_t (set_option_as_int32,
 * set_write_concern, set_appname, set_compressors): never by pasting text
 * into the connection string, so a value can neither break the URI nor
 * smuggle another option in.  TLS and authentication come from the `uri`
 * itself.  An option set here wins over the same setting in the URI.
 *
 * The driver's own retries are turned off (retryWrites, retryReads): the
 * host owns retry, backoff and failover (adapter.h: adapters never retry).
 *
 * mongoc_init() runs once per process in module_init; libmongoc keeps
 * global state and atexit-style handlers, so the adapter declares
 * PERSISTOR_CAP_NO_UNLOAD and never calls mongoc_cleanup() itself (a test
 * that wants a clean leak report calls it before exit).
 *
 * This file must not put the URI, or anything read from it but the host
 * list, in a message or a log line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mongodb_internal.h"

/* ---- the client pool -------------------------------------------------- */

mongoc_client_t *mg_client(persistor_instance *inst)
{
    return mongoc_client_pool_pop(inst->pool);
}

void mg_release(persistor_instance *inst, mongoc_client_t *client)
{
    if (client != NULL)
        mongoc_client_pool_push(inst->pool, client);
}

/* ---- options ---------------------------------------------------------- */

/* The compressors this libmongoc was built with. */
static const char *const mg_compressors[] = {
#ifdef MONGOC_ENABLE_COMPRESSION_SNAPPY
    "snappy",
#endif
#ifdef MONGOC_ENABLE_COMPRESSION_ZLIB
    "zlib",
#endif
#ifdef MONGOC_ENABLE_COMPRESSION_ZSTD
    "zstd",
#endif
    NULL,
};

static int mg_compressor_supported(const char *name, size_t len)
{
    for (size_t i = 0; mg_compressors[i] != NULL; i++)
        if (strlen(mg_compressors[i]) == len && strncmp(mg_compressors[i], name, len) == 0)
            return 1;
    return 0;
}

static void mg_supported_list(char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (size_t i = 0; mg_compressors[i] != NULL && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "", mg_compressors[i]);
    if (n == 0)
        snprintf(out, cap, "none");
}

/* compression: "" / "off" / "none" (off), "auto" (every compressor built
 * in), or a comma list, each of which must be built in. */
static int32_t mg_set_compression(persistor_instance *inst, const char *value,
                                  persistor_error *err)
{
    const persistor_host *host = inst->host;
    char list[64], supported[64];
    if (value[0] == '\0' || strcmp(value, "off") == 0 || strcmp(value, "none") == 0)
        return PERSISTOR_OK;
    mg_supported_list(supported, sizeof supported);
    if (strcmp(value, "auto") == 0) {
        size_t n = 0;
        list[0] = '\0';
        for (size_t i = 0; mg_compressors[i] != NULL; i++)
            n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", i ? "," : "",
                                  mg_compressors[i]);
        if (n > 0 && !mongoc_uri_set_compressors(inst->uri, list))
            return host->config_error(inst->config, "compression", err,
                                      "libmongoc refused \"%s\"", list);
        return PERSISTOR_OK;
    }
    for (const char *p = value;;) {
        size_t len = strcspn(p, ",");
        if (len == 0 || !mg_compressor_supported(p, len))
            return host->config_error(inst->config, "compression", err,
                                      "\"%.*s\" is not a compressor this libmongoc supports "
                                      "(supported: %s; or \"auto\", or \"\" for none)",
                                      (int)len, p, supported);
        if (p[len] == '\0')
            break;
        p += len + 1;
    }
    if (!mongoc_uri_set_compressors(inst->uri, value))
        return host->config_error(inst->config, "compression", err, "libmongoc refused \"%s\"",
                                  value);
    return PERSISTOR_OK;
}

/* w: "majority", a number >= 1, or a tag set name.  w=0 is refused: an
 * unacknowledged write cannot answer EXISTS or NOT_FOUND. */
static int32_t mg_set_write_concern(persistor_instance *inst, persistor_error *err)
{
    const persistor_host *host = inst->host;
    const char *w = NULL;
    int32_t journal = 1;
    if (host->config_string(inst->config, "w", &w) != PERSISTOR_OK || w[0] == '\0')
        return host->config_error(inst->config, "w", err,
                                  "must be \"majority\", a number of members, or a tag set");
    if (host->config_bool(inst->config, "journal", &journal) != PERSISTOR_OK)
        return host->config_error(inst->config, "journal", err, "must be true or false");
    mongoc_write_concern_t *wc = mongoc_write_concern_new();
    char *end = NULL;
    long n = strtol(w, &end, 10);
    if (strcmp(w, "majority") == 0) {
        mongoc_write_concern_set_w(wc, MONGOC_WRITE_CONCERN_W_MAJORITY);
    } else if (end != w && *end == '\0') {
        if (n < 1 || n > 50) {
            mongoc_write_concern_destroy(wc);
            return host->config_error(inst->config, "w", err,
                                      "must be at least 1 (w=0 cannot report EXISTS or "
                                      "NOT_FOUND) and at most 50, got %s", w);
        }
        mongoc_write_concern_set_w(wc, (int32_t)n);
    } else {
        mongoc_write_concern_set_wtag(wc, w);
    }
    mongoc_write_concern_set_journal(wc, journal != 0);
    mongoc_uri_set_write_concern(inst->uri, wc);
    mongoc_write_concern_destroy(wc);
    if (strcmp(w, "majority") != 0 || !journal)
        host->log(host, PERSISTOR_LOG_WARN, "mongodb_not_durable",
                  "%s: w=%s journal=%s: an acknowledged write may be lost if the primary "
                  "fails (rolled back) %s",
                  inst->where, w, journal ? "true" : "false",
                  journal ? "before a majority has it" : "or crashes before its journal flush");
    return PERSISTOR_OK;
}

static int32_t mg_set_int(persistor_instance *inst, const char *key, const char *uri_key,
                          int64_t min, persistor_error *err)
{
    int64_t v = 0;
    if (inst->host->config_int(inst->config, key, &v) != PERSISTOR_OK || v < min ||
        v > INT32_MAX)
        return inst->host->config_error(inst->config, key, err, "must be between %lld and %d",
                                        (long long)min, INT32_MAX);
    if (!mongoc_uri_set_option_as_int32(inst->uri, uri_key, (int32_t)v))
        return inst->host->config_error(inst->config, key, err, "libmongoc refused %lld",
                                        (long long)v);
    return PERSISTOR_OK;
}

/* MongoDB's rules for a database name, checked here so the profile's line
 * is named instead of a server error at the first write. */
static int mg_database_ok(const char *db)
{
    size_t len = strlen(db);
    return len > 0 && len < 64 && strpbrk(db, "/\\. \"$") == NULL;
}

/* "host:port,host:port/database": how messages name the store. */
static void mg_where(persistor_instance *inst)
{
    size_t n = 0;
    inst->where[0] = '\0';
    for (const mongoc_host_list_t *h = mongoc_uri_get_hosts(inst->uri); h != NULL; h = h->next)
        n += (size_t)snprintf(inst->where + n, n < sizeof inst->where ? sizeof inst->where - n : 0,
                              "%s%s", n ? "," : "", h->host_and_port);
    if (n == 0)
        n = (size_t)snprintf(inst->where, sizeof inst->where, "%s",
                             mongoc_uri_get_srv_hostname(inst->uri) ? mongoc_uri_get_srv_hostname(inst->uri)
                                                               : "?");
    if (n < sizeof inst->where)
        snprintf(inst->where + n, sizeof inst->where - n, "/%s", inst->database);
}

static int32_t mg_read_options(persistor_instance *inst, persistor_error *err)
{
    const persistor_host *host = inst->host;
    const persistor_config *config = inst->config;
    const char *text = NULL, *appname = NULL, *compression = NULL;
    bson_error_t berr;
    int32_t rc;
    if (host->config_string(config, "uri", &text) != PERSISTOR_OK)
        return host->config_error(config, "uri", err, "must be a mongodb:// connection string");
    inst->uri = mongoc_uri_new_with_error(text, &berr);
    if (inst->uri == NULL) /* libmongoc's message quotes no password */
        return host->config_error(config, "uri", err,
                                  "not a valid MongoDB connection string: %s", berr.message);
    if (mongoc_uri_get_password(inst->uri) != NULL && mongoc_uri_get_password(inst->uri)[0])
        inst->password = strdup(mongoc_uri_get_password(inst->uri));
    if (host->config_string(config, "database", &inst->database) != PERSISTOR_OK ||
        !mg_database_ok(inst->database))
        return host->config_error(config, "database", err,
                                  "must be 1 to 63 bytes without / \\ . space \" or $");
    mg_where(inst);
    if ((rc = mg_set_int(inst, "max_pool_size", MONGOC_URI_MAXPOOLSIZE, 1, err)) ||
        (rc = mg_set_int(inst, "server_selection_timeout_ms", MONGOC_URI_SERVERSELECTIONTIMEOUTMS,
                         1, err)) ||
        (rc = mg_set_int(inst, "connect_timeout_ms", MONGOC_URI_CONNECTTIMEOUTMS, 1, err)) ||
        (rc = mg_set_int(inst, "socket_timeout_ms", MONGOC_URI_SOCKETTIMEOUTMS, 1, err)))
        return rc;
    if (host->config_string(config, "compression", &compression) != PERSISTOR_OK)
        return host->config_error(config, "compression", err, "cannot be read");
    if ((rc = mg_set_compression(inst, compression, err)) != PERSISTOR_OK)
        return rc;
    if (host->config_string(config, "appname", &appname) != PERSISTOR_OK ||
        strlen(appname) > 128 || !mongoc_uri_set_appname(inst->uri, appname))
        return host->config_error(config, "appname", err, "must be at most 128 bytes");
    mongoc_uri_set_option_as_bool(inst->uri, MONGOC_URI_RETRYWRITES, false);
    mongoc_uri_set_option_as_bool(inst->uri, MONGOC_URI_RETRYREADS, false);
    return mg_set_write_concern(inst, err);
}

/* One line with what libmongoc will use, read back from the URI (so a
 * test sees that each option arrived).  No user, no password. */
static void mg_log_settings(persistor_instance *inst)
{
    const mongoc_uri_t *u = inst->uri;
    const mongoc_write_concern_t *wc = mongoc_uri_get_write_concern(u);
    const bson_t *comp = mongoc_uri_get_compressors(u);
    char w[64], compressors[64] = "";
    int32_t wv = mongoc_write_concern_get_w(wc);
    if (mongoc_write_concern_get_wmajority(wc))
        snprintf(w, sizeof w, "majority");
    else if (mongoc_write_concern_get_wtag(wc) != NULL)
        snprintf(w, sizeof w, "%s", mongoc_write_concern_get_wtag(wc));
    else
        snprintf(w, sizeof w, "%d", wv);
    bson_iter_t it;
    size_t n = 0;
    if (comp != NULL && bson_iter_init(&it, comp))
        while (bson_iter_next(&it) && n < sizeof compressors)
            n += (size_t)snprintf(compressors + n, sizeof compressors - n, "%s%s", n ? "," : "",
                                  bson_iter_key(&it));
    inst->host->log(
        inst->host, PERSISTOR_LOG_INFO, "mongodb_open",
        "%s: w=%s journal=%s appname=%s maxpoolsize=%d serverselectiontimeoutms=%d "
        "connecttimeoutms=%d sockettimeoutms=%d compressors=%s retrywrites=%s tls=%s auth=%s",
        inst->where, w, mongoc_write_concern_get_journal(wc) ? "true" : "false",
        mongoc_uri_get_appname(u) ? mongoc_uri_get_appname(u) : "",
        mongoc_uri_get_option_as_int32(u, MONGOC_URI_MAXPOOLSIZE, -1),
        mongoc_uri_get_option_as_int32(u, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, -1),
        mongoc_uri_get_option_as_int32(u, MONGOC_URI_CONNECTTIMEOUTMS, -1),
        mongoc_uri_get_option_as_int32(u, MONGOC_URI_SOCKETTIMEOUTMS, -1),
        compressors[0] ? compressors : "none",
        mongoc_uri_get_option_as_bool(u, MONGOC_URI_RETRYWRITES, true) ? "true" : "false",
        mongoc_uri_get_tls(u) ? "on" : "off", mongoc_uri_get_username(u) ? "yes" : "no");
}

/* ---- open, close, ping, describe ------------------------------------------ */

/* libmongoc's log goes to the host's log, warnings and worse only: its
 * default handler prints debug lines on stderr.  The handler is
 * process-wide; the host table it uses lives as long as the module, which
 * is never unloaded (NO_UNLOAD). */
static void mg_log_handler(mongoc_log_level_t level, const char *domain, const char *message,
                           void *data)
{
    const persistor_host *host = data;
    if (level > MONGOC_LOG_LEVEL_WARNING)
        return;
    host->log(host, level <= MONGOC_LOG_LEVEL_CRITICAL ? PERSISTOR_LOG_ERROR : PERSISTOR_LOG_WARN,
              "mongodb_driver", "libmongoc %s: %s", domain, message);
}

static int32_t mg_module_init(const persistor_host *host, persistor_error *err)
{
    mongoc_init();
    mongoc_log_set_handler(mg_log_handler, (void *)host);
    return PERSISTOR_OK;
}

static void mg_close(persistor_instance *inst);
static int32_t mg_ping(persistor_instance *inst, persistor_error *err);

static int32_t mg_open(const persistor_host *host, const persistor_config *config,
                       persistor_instance **out, persistor_error *err)
{
    persistor_instance *inst = calloc(1, sizeof *inst);
    if (inst == NULL)
        return host->error_set(err, PERSISTOR_E_NOMEM, "%s: out of memory",
                               host->config_label(config));
    inst->host = host;
    inst->config = config;
    pthread_mutex_init(&inst->known_lock, NULL);
    int32_t rc = mg_read_options(inst, err);
    if (rc != PERSISTOR_OK)
        goto fail;
    bson_error_t berr;
    inst->pool = mongoc_client_pool_new_with_error(inst->uri, &berr);
    if (inst->pool == NULL) {
        char text[sizeof berr.message];
        mg_scrub(inst, berr.message, text, sizeof text);
        rc = host->config_error(config, "uri", err, "libmongoc cannot use it: %s", text);
        goto fail;
    }
    mongoc_client_pool_set_error_api(inst->pool, MONGOC_ERROR_API_VERSION_2);
    mg_log_settings(inst);
    /* Reach the server now: refused credentials are a CONFIG error of the
     * profile, better told at open than at the first write. */
    if ((rc = mg_ping(inst, err)) != PERSISTOR_OK)
        goto fail;
    *out = inst;
    return PERSISTOR_OK;
fail:
    mg_close(inst);
    return rc;
}

static void mg_close(persistor_instance *inst)
{
    if (inst->pool != NULL)
        mongoc_client_pool_destroy(inst->pool);
    mongoc_uri_destroy(inst->uri);
    if (inst->password != NULL) {
        memset(inst->password, 0, strlen(inst->password));
        free(inst->password);
    }
    mg_known_free(inst);
    pthread_mutex_destroy(&inst->known_lock);
    free(inst);
}

/* Run one command on the admin database. */
static int32_t mg_admin(persistor_instance *inst, const char *name, bson_t *reply,
                        persistor_error *err)
{
    bson_t cmd = BSON_INITIALIZER;
    bson_error_t berr;
    BSON_APPEND_INT32(&cmd, name, 1);
    mongoc_client_t *client = mg_client(inst);
    bool ok = mongoc_client_command_simple(client, "admin", &cmd, NULL, reply, &berr);
    mg_release(inst, client);
    bson_destroy(&cmd);
    if (ok)
        return PERSISTOR_OK;
    return mg_error(inst, err, &berr, reply, MG_READ, name, NULL);
}

static int32_t mg_ping(persistor_instance *inst, persistor_error *err)
{
    bson_t reply;
    int32_t rc = mg_admin(inst, "ping", &reply, err);
    bson_destroy(&reply);
    return rc;
}

static const char *mg_reply_string(const bson_t *reply, const char *key)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, reply, key) && BSON_ITER_HOLDS_UTF8(&it))
        return bson_iter_utf8(&it, NULL);
    return NULL;
}

/* "MongoDB 7.0.4 (replica set rs0 primary db1:27017), kodus". */
static int32_t mg_describe(persistor_instance *inst, persistor_buffer *out, persistor_error *err)
{
    bson_t build, hello;
    char line[512], topo[256];
    int32_t rc = mg_admin(inst, "buildInfo", &build, err);
    if (rc != PERSISTOR_OK) {
        bson_destroy(&build);
        return rc;
    }
    rc = mg_admin(inst, "hello", &hello, err);
    if (rc != PERSISTOR_OK) {
        bson_destroy(&build);
        bson_destroy(&hello);
        return rc;
    }
    const char *version = mg_reply_string(&build, "version");
    const char *set = mg_reply_string(&hello, "setName");
    const char *primary = mg_reply_string(&hello, "primary");
    const char *msg = mg_reply_string(&hello, "msg");
    if (msg != NULL && strcmp(msg, "isdbgrid") == 0)
        snprintf(topo, sizeof topo, "sharded");
    else if (set != NULL)
        snprintf(topo, sizeof topo, "replica set %s primary %s", set,
                 primary ? primary : "unknown");
    else
        snprintf(topo, sizeof topo, "standalone");
    int n = snprintf(line, sizeof line, "MongoDB %s (%s), %s", version ? version : "unknown",
                     topo, inst->database);
    bson_destroy(&build);
    bson_destroy(&hello);
    if (n >= (int)sizeof line)
        n = (int)sizeof line - 1;
    if (inst->host->buffer_set(out, line, (uint32_t)n) != PERSISTOR_OK)
        return inst->host->error_set(err, PERSISTOR_E_NOMEM, "mongodb describe: out of memory");
    return PERSISTOR_OK;
}

/* ---- the table ------------------------------------------------------- */

static const persistor_option_spec mg_options[] = {
    {"uri", PERSISTOR_OPTION_STRING, PERSISTOR_OPTION_SECRET, "mongodb://localhost:27017",
     "the connection string (hosts, TLS, user and password, authSource, replicaSet...)"},
    {"database", PERSISTOR_OPTION_STRING, 0, "kodus", "the database holding the collections"},
    {"max_pool_size", PERSISTOR_OPTION_INT, 0, "20",
     "connections per instance; a call waits for a free one beyond that"},
    {"server_selection_timeout_ms", PERSISTOR_OPTION_INT, 0, "5000",
     "how long a call looks for a usable server before answering unavailable"},
    {"connect_timeout_ms", PERSISTOR_OPTION_INT, 0, "10000", "TCP and TLS connect timeout"},
    {"socket_timeout_ms", PERSISTOR_OPTION_INT, 0, "45000",
     "how long a call waits for the server's answer (then: uncertain for writes)"},
    {"compression", PERSISTOR_OPTION_STRING, 0, "",
     "wire compression: \"\" (none), \"auto\" (every compressor built in), or a list such as "
     "\"zstd,zlib\""},
    {"w", PERSISTOR_OPTION_STRING, 0, "majority",
     "write concern: majority (durable), a number of members, or a tag set; 0 is refused"},
    {"journal", PERSISTOR_OPTION_BOOL, 0, "true",
     "acknowledge writes only once in the journal (durable)"},
    {"appname", PERSISTOR_OPTION_STRING, 0, "persistor", "the name the server logs for us"},
};

static const persistor_adapter mg_adapter = {
    .abi_major = PERSISTOR_ABI_MAJOR,
    .abi_minor = PERSISTOR_ABI_MINOR,
    .struct_size = sizeof(persistor_adapter),
    /* DURABLE holds for the defaults, w=majority and journal=true: an
     * acknowledged write is in the journal of a majority and survives the
     * loss of the primary.  With w=1 (or a smaller tag) a write the
     * primary acknowledged may be rolled back if it fails before the
     * secondaries copy it; with journal=false it may be lost in a crash
     * before the next journal flush.  open() warns for those profiles.
     * NO_UNLOAD: libmongoc keeps process-wide state (mongoc_init). */
    .capabilities = PERSISTOR_CAP_THREAD_SAFE | PERSISTOR_CAP_NATIVE_TTL |
                    PERSISTOR_CAP_NATIVE_QUERY | PERSISTOR_CAP_NO_UNLOAD |
                    PERSISTOR_CAP_DURABLE,
    .name = "mongodb",
    .version = "1.0.0",
    .description = "MongoDB through libmongoc: durable, shared, native TTL and queries",
    .options = mg_options,
    .n_options = sizeof mg_options / sizeof mg_options[0],
    .module_init = mg_module_init,
    .open = mg_open,
    .close = mg_close,
    .ping = mg_ping,
    .ensure_collection = mg_ensure_collection,
    .write = mg_write,
    .get = mg_get,
    .query = mg_query,
    .cursor_next = mg_cursor_next,
    .cursor_close = mg_cursor_close,
    .count = mg_count,
    .expire = NULL, /* native TTL: the server's TTL monitor removes them */
    .stats = mg_stats,
    .exists = mg_exists,
    .describe = mg_describe,
    .group_count = mg_group_count,
};

PERSISTOR_ADAPTER_EXPORT const persistor_adapter *persistor_adapter_entry(const persistor_host *host)
{
    if (host == NULL || host->abi_major != PERSISTOR_ABI_MAJOR ||
        host->struct_size < sizeof(persistor_host))
        return NULL;
    return &mg_adapter;
}
