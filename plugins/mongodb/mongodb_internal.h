/*
 * mongodb_internal.h — what the four files of the mongodb adapter share.
 *
 *   mongodb.c             the ABI table, options, open/close (the client
 *                         pool and its URI), ping and describe
 *   mongodb_collection.c  ensure_collection: indexes, the TTL index and
 *                         its collMod; the version_field of each ensured
 *                         collection, for upsert-if-newer
 *   mongodb_ops.c         write, get, exists, query and cursors, count,
 *                         stats, group_count
 *   mongodb_errors.c      libmongoc errors to persistor's classes: one
 *                         table, checked row by row by test_mongodb
 *
 * Nothing here is exported: only persistor_adapter_entry leaves the .so.
 *
 * Secrets.  The URI may carry a password.  Messages and logs name the
 * store by inst->where ("127.0.0.1:27017/kodus": hosts and database, never
 * the user or password), and mg_error() scrubs the password out of any
 * text libmongoc or the server hands back.
 */
#ifndef PERSISTOR_MONGODB_INTERNAL_H
#define PERSISTOR_MONGODB_INTERNAL_H

#include <pthread.h>
#include <stdint.h>

#include <mongoc/mongoc.h>

#include "persistor/adapter.h"

/* MongoDB's largest document (maxBsonObjectSize), the host's too. */
#define MG_MAX_DOC_SIZE (16 * 1024 * 1024)

/* A collection ensured by this instance, and its spec (the host's: valid
 * until close).  The server keeps no version_field: writes look it up. */
typedef struct mg_known {
    struct mg_known *next;
    const persistor_collection_spec *spec;
} mg_known;

struct persistor_instance {
    const persistor_host *host;
    const persistor_config *config;
    mongoc_uri_t *uri;           /* with every option applied */
    mongoc_client_pool_t *pool;  /* thread-safe; clients are popped per call */
    const char *database;        /* the config's string: valid until close */
    char *password;              /* a copy, only to scrub it out of messages */
    char where[256];             /* "host:port,host:port/database" */
    pthread_mutex_t known_lock;  /* THREAD_SAFE: ensure and write may race */
    mg_known *known;             /* ensured collections, newest first */
};

/* ---- mongodb_errors.c ------------------------------------------------ */

/* What kind of call met the error: a read never changes anything, so a
 * network error after sending it is RETRY; for a write it is UNCERTAIN. */
enum { MG_READ = 0, MG_WRITE = 1 };

/* One row of the error table: a libmongoc (domain, code), or a server
 * code (domain MONGOC_ERROR_SERVER), and its class for reads and writes. */
typedef struct mg_error_rule {
    uint32_t domain;
    uint32_t code;
    int32_t on_read;
    int32_t on_write;
    const char *what; /* how a person should read it */
} mg_error_rule;

extern const mg_error_rule mg_error_rules[];
extern const size_t mg_n_error_rules;

/* The class of an error.  `message` is libmongoc's text (it tells "failed
 * to send" from "failed to read" for stream errors); `labels` is the reply
 * holding errorLabels, or NULL.  *what (may be NULL) gets the rule's text. */
int32_t mg_error_class(uint32_t domain, uint32_t code, const char *message, const bson_t *labels,
                       int kind, const char **what);

/* Fill `err` for `error` met doing `op` on `collection` (NULL: the store
 * as a whole); returns the class.  The message names the operation, the
 * collection and the store, never the password. */
int32_t mg_error(persistor_instance *inst, persistor_error *err, const bson_error_t *error,
                 const bson_t *reply, int kind, const char *op, const char *collection);

/* Is `error` the server's NamespaceNotFound (26)?  For a read of a
 * collection nobody wrote yet that is an empty answer, not a failure. */
static inline bool mg_no_namespace(const bson_error_t *error)
{
    return error->domain == MONGOC_ERROR_SERVER && error->code == 26;
}

/* Copy `text` into out (cap bytes) with the instance's password blanked. */
void mg_scrub(const persistor_instance *inst, const char *text, char *out, size_t cap);

/* ---- mongodb.c ------------------------------------------------------- */

/* A client from the pool (blocks while max_pool_size are in use), and
 * giving it back.  NULL only when the pool is gone. */
mongoc_client_t *mg_client(persistor_instance *inst);
void mg_release(persistor_instance *inst, mongoc_client_t *client);

/* ---- mongodb_collection.c ------------------------------------------------ */

int32_t mg_ensure_collection(persistor_instance *inst, const persistor_collection_spec *spec,
                             persistor_error *err);
/* The version_field of `collection` as last ensured by this instance, or
 * NULL (none, or never ensured).  The string is the host's, valid until
 * close. */
const char *mg_version_field(persistor_instance *inst, const char *collection);
/* Forget every ensured collection (at close). */
void mg_known_free(persistor_instance *inst);

/* ---- mongodb_ops.c ---------------------------------------------------- */

int32_t mg_write(persistor_instance *inst, const char *collection, const persistor_write_op *ops,
                 uint32_t n, int32_t *results, persistor_error *err);
int32_t mg_get(persistor_instance *inst, const char *collection, const char *id,
               persistor_buffer *out, persistor_error *err);
int32_t mg_exists(persistor_instance *inst, const char *collection, const char *id,
                  persistor_error *err);
int32_t mg_query(persistor_instance *inst, const char *collection, const persistor_query *q,
                 persistor_cursor **out, persistor_error *err);
int32_t mg_cursor_next(persistor_cursor *cur, const uint8_t **doc, uint32_t *len,
                       persistor_error *err);
void mg_cursor_close(persistor_cursor *cur);
int32_t mg_count(persistor_instance *inst, const char *collection, const uint8_t *filter,
                 uint32_t filter_len, uint64_t *out, persistor_error *err);
int32_t mg_stats(persistor_instance *inst, const char *collection,
                 persistor_collection_stats *out, persistor_error *err);
int32_t mg_group_count(persistor_instance *inst, const char *collection, const uint8_t *filter,
                       uint32_t filter_len, const char *field, persistor_buffer *out,
                       persistor_error *err);

#endif
