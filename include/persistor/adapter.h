/*
 * persistor/adapter.h — the storage adapter ABI, version 1.
 *
 * This header is the whole contract between libpersistor (the host) and a
 * storage adapter (a shared object loaded at run time with dlopen).  It is
 * self-contained: an adapter includes this file and nothing else of ours,
 * and never links libpersistor.  Everything an adapter needs from the host
 * (logging, buffers, errors, configuration, the query language) comes
 * through the host table it is handed.
 *
 * Read it top to bottom:
 *
 *   1. Return codes and the error struct
 *   2. Buffers the host owns
 *   3. Collections, indexes, writes and queries (the data model)
 *   4. Options an adapter declares, and how it reads their values
 *   5. The host table (services the host hands to the adapter)
 *   6. The adapter table (callbacks the adapter implements)
 *   7. The one exported symbol, persistor_adapter_entry
 *
 * Versioning.  Every table starts with abi_major, abi_minor and
 * struct_size.  Tables only ever grow at the end; a new minor version may
 * append fields, never move or retype one.  The host refuses an adapter of
 * another major version.  When the host reads an adapter table it copies
 * min(struct_size, sizeof(persistor_adapter)) bytes into a zeroed struct,
 * so an adapter built against an older minor simply has NULL in the slots
 * it never knew about; an adapter must likewise check host->struct_size
 * before calling a host slot newer than the minor it was built against.
 * Only fixed-width integer types cross the boundary.
 *
 * Documents.  Documents cross the ABI as BSON bytes (bsonspec.org): a
 * little-endian int32 total length, the elements, a trailing NUL.  Each
 * document passed to an adapter has a string "_id" field equal to the id
 * passed alongside it.  Ids are NUL-terminated UTF-8 strings.
 *
 * Threading.  If an adapter sets PERSISTOR_CAP_THREAD_SAFE, the host may
 * call any callback of one instance from several threads at once (cursors
 * excepted: one cursor is only ever used by one thread at a time).
 * Otherwise the host serialises every call into an instance, cursors
 * included.  Host services are thread-safe.
 *
 * Adapters never sleep, never retry and never fail over: they report what
 * happened with a return code and the host owns backoff, the circuit
 * breaker and failover.
 */
#ifndef PERSISTOR_ADAPTER_H
#define PERSISTOR_ADAPTER_H

#include <stdarg.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ------------------------------------------------------------------------
 * 0. Version
 * --------------------------------------------------------------------- */

/** ABI major version: a different major is refused at load time. */
#define PERSISTOR_ABI_MAJOR 1
/** ABI minor version: tables grew at the end, older adapters still load. */
#define PERSISTOR_ABI_MINOR 1 /* 1: group_count */

/** Visibility for the one symbol an adapter exports. */
#if defined(__GNUC__) || defined(__clang__)
#define PERSISTOR_ADAPTER_EXPORT __attribute__((visibility("default")))
#else
#define PERSISTOR_ADAPTER_EXPORT
#endif

/* ------------------------------------------------------------------------
 * 1. Return codes and errors
 * --------------------------------------------------------------------- */

/*
 * Every callback returns one of these.  Codes >= 0 are answers, codes < 0
 * are errors.  The class of an error decides what the host does with it:
 *
 *   PERSISTOR_E_RETRY        transient; the operation was NOT applied.
 *                            The host may retry it with backoff.
 *   PERSISTOR_E_UNCERTAIN    the operation may or may not have been
 *                            applied (e.g. the connection dropped after the
 *                            request was sent).  Retried only when the
 *                            operation is idempotent.
 *   PERSISTOR_E_UNAVAILABLE  the store cannot be reached; the host opens
 *                            this adapter's circuit breaker and fails over.
 *   PERSISTOR_E_INVALID      the caller's fault (bad filter, oversize
 *                            document...).  Never retried, never failed
 *                            over: another store would refuse it too.
 *   PERSISTOR_E_NOTSUP       this adapter does not implement the request.
 *   PERSISTOR_E_NOMEM        an allocation failed.
 *   PERSISTOR_E_CONFIG       the adapter's options are wrong (bad path,
 *                            authentication refused...).
 *   PERSISTOR_E_CORRUPT      the stored data is damaged or not ours.
 *   PERSISTOR_E_ABI          the adapter and host disagree on the ABI.
 */
#define PERSISTOR_OK 0
#define PERSISTOR_NOT_FOUND 1
#define PERSISTOR_EXISTS 2
#define PERSISTOR_ITER_END 3

#define PERSISTOR_E_RETRY (-1)
#define PERSISTOR_E_UNCERTAIN (-2)
#define PERSISTOR_E_UNAVAILABLE (-3)
#define PERSISTOR_E_INVALID (-4)
#define PERSISTOR_E_NOTSUP (-5)
#define PERSISTOR_E_NOMEM (-6)
#define PERSISTOR_E_CONFIG (-7)
#define PERSISTOR_E_CORRUPT (-8)
#define PERSISTOR_E_ABI (-9)

/** Room for one error message, NUL included; longer messages are cut. */
#define PERSISTOR_ERROR_MESSAGE_MAX 512

/**
 * An error: its code and a message for a person.
 *
 * Always owned by the caller, usually on its stack.  A callback that
 * returns an error code fills it through host->error_set(); a callback that
 * succeeds leaves it untouched.  The message says what failed, on what
 * (collection, id, file) and, where it can, what to do.
 */
typedef struct persistor_error {
    int32_t code;
    char message[PERSISTOR_ERROR_MESSAGE_MAX];
} persistor_error;

/* ------------------------------------------------------------------------
 * 2. Buffers the host owns
 * --------------------------------------------------------------------- */

/**
 * A byte buffer whose memory belongs to the host.
 *
 * The host creates it, passes it to a callback, and frees it.  The adapter
 * fills it only through host->buffer_set() / host->buffer_append(), never
 * by writing the fields itself, so no memory ever has to be freed on the
 * other side of the boundary.  `data` and `len` may be read freely.
 */
typedef struct persistor_buffer {
    uint8_t *data;
    uint32_t len;
    uint32_t capacity;
} persistor_buffer;

/* ------------------------------------------------------------------------
 * 3. The data model: collections, indexes, writes, queries
 * --------------------------------------------------------------------- */

/** Opaque: one open adapter instance (the adapter defines it). */
typedef struct persistor_instance persistor_instance;
/** Opaque: one open query cursor (the adapter defines it). */
typedef struct persistor_cursor persistor_cursor;
/** Opaque: the validated options of one adapter entry (host-owned). */
typedef struct persistor_config persistor_config;
/** Opaque: a compiled filter (host-owned, see host->matcher_new). */
typedef struct persistor_matcher persistor_matcher;
/** Opaque: a compiled sort specification (host-owned). */
typedef struct persistor_sorter persistor_sorter;

/** One key of an index: a dotted field path and its direction. */
typedef struct persistor_index_key {
    const char *field; /* dotted path, e.g. "sla_status.violations_count" */
    int32_t direction; /* 1 ascending, -1 descending (the host sends no other) */
} persistor_index_key;

/** Index flags. */
#define PERSISTOR_INDEX_UNIQUE 0x1u

/** One secondary index.  "_id" is always unique and never listed here. */
typedef struct persistor_index_spec {
    const char *name; /* stable name, e.g. "xcId_1_ts_1" */
    const persistor_index_key *keys;
    uint32_t n_keys;
    uint32_t flags; /* PERSISTOR_INDEX_* */
} persistor_index_spec;

/**
 * A collection the host will use, with the indexes it wants and its TTL.
 *
 * `ttl_field` names a date field; a document whose ttl_field is older than
 * `ttl_seconds` is expired (removed by expire(), or natively by the store).
 * ttl_seconds == 0 means no TTL.
 *
 * Lifetime: the spec and everything it points to stay valid and unchanged
 * until close() returns (even after a later ensure_collection brings a new
 * spec), so an adapter may keep the pointer instead of a copy.
 */
typedef struct persistor_collection_spec {
    uint32_t struct_size;
    const char *name;
    const persistor_index_spec *indexes;
    uint32_t n_indexes;
    const char *ttl_field; /* NULL when ttl_seconds == 0 */
    int64_t ttl_seconds;
    /**
     * A dotted path to the field that orders the versions of one document
     * (a date, or a number), or NULL.  Only PERSISTOR_WRITE_UPSERT_IF_NEWER
     * reads it; the host names one for collections whose documents are
     * replaced, so that replaying an old write never undoes a newer one.
     */
    const char *version_field;
} persistor_collection_spec;

/** Kinds of write in a batch. */
#define PERSISTOR_WRITE_INSERT_IF_ABSENT 1 /* EXISTS if the id is taken */
#define PERSISTOR_WRITE_UPSERT 2           /* insert, or replace whole  */
#define PERSISTOR_WRITE_DELETE 3           /* NOT_FOUND if absent       */
/**
 * Insert when the id is absent (OK).  When a document with the id is
 * stored, replace it only if its spec's version_field sorts before the new
 * document's in MongoDB's order (a missing field sorts as null, first):
 * OK; otherwise keep the stored document and answer EXISTS.  Equal
 * versions keep the stored one (EXISTS), so a replayed write is a no-op.
 * A unique-index conflict is EXISTS, as for UPSERT.  The host sends it only
 * on collections whose spec names a version_field, with documents of one
 * BSON type there; on another collection it is E_INVALID.  The compare and
 * the replace are one atomic step (a transaction, or a conditional update).
 */
#define PERSISTOR_WRITE_UPSERT_IF_NEWER 4

/** One write of a batch.  For DELETE, doc is NULL and doc_len 0. */
typedef struct persistor_write_op {
    uint32_t kind; /* PERSISTOR_WRITE_* */
    uint32_t doc_len;
    const char *id;
    const uint8_t *doc; /* BSON, with "_id" == id */
} persistor_write_op;

/**
 * A query: filter, sort, skip, limit.
 *
 * `filter` and `sort` are BSON documents (NULL/0 means "everything" and
 * "unspecified order").  The filter language is the subset documented in
 * docs/ABI.md and implemented by host->matcher_new(); the sort document
 * maps field paths to 1 or -1.  limit == 0 means no limit.
 */
typedef struct persistor_query {
    uint32_t struct_size;
    uint32_t filter_len;
    const uint8_t *filter;
    uint32_t sort_len;
    const uint8_t *sort;
    uint64_t skip;
    uint64_t limit;
} persistor_query;

/** What stats() reports for one collection. */
typedef struct persistor_collection_stats {
    uint32_t struct_size; /* set by the host */
    uint64_t item_count;
    uint64_t total_size; /* bytes of BSON stored, documents only */
} persistor_collection_stats;

/* ------------------------------------------------------------------------
 * 4. Options
 * --------------------------------------------------------------------- */

/** Option types. */
#define PERSISTOR_OPTION_STRING 1
#define PERSISTOR_OPTION_INT 2    /* int64 */
#define PERSISTOR_OPTION_BOOL 3   /* true/false, yes/no, on/off */
#define PERSISTOR_OPTION_DOUBLE 4

/** Option flags. */
#define PERSISTOR_OPTION_REQUIRED 0x1u /* the profile must set it */
#define PERSISTOR_OPTION_SECRET 0x2u   /* never logged; URIs redacted */

/**
 * One option an adapter accepts in its profile entry.
 *
 * The host validates the profile against this list before open() runs:
 * an unknown key, a value of the wrong type or a missing required option
 * is reported with file:line:column and never reaches the adapter.
 * `default_value` is the text the option takes when the profile omits it
 * (NULL: no default, the lookup returns NOT_FOUND).
 */
typedef struct persistor_option_spec {
    const char *name;
    uint32_t type;  /* PERSISTOR_OPTION_* */
    uint32_t flags; /* PERSISTOR_OPTION_* flags */
    const char *default_value;
    const char *help; /* one line, shown by `persistor profiles --verbose` */
} persistor_option_spec;

/* ------------------------------------------------------------------------
 * 5. The host table
 * --------------------------------------------------------------------- */

/** Log levels for host->log. */
#define PERSISTOR_LOG_DEBUG 0
#define PERSISTOR_LOG_INFO 1
#define PERSISTOR_LOG_WARN 2
#define PERSISTOR_LOG_ERROR 3

/**
 * Services the host hands to an adapter.
 *
 * The table is owned by the host and lives until the adapter's module is
 * unloaded; keep the pointer in your instance, never in a global.  Every
 * slot is thread-safe.
 */
typedef struct persistor_host {
    uint32_t abi_major;
    uint32_t abi_minor;
    uint32_t struct_size;
    uint32_t reserved0;

    /* -- logging and errors ---------------------------------------- */

    /**
     * Emit one structured log line.  `event` is a snake_case event name
     * (e.g. "sqlite_busy"); `fmt` formats a human message.  The host adds
     * the time, level and adapter name and redacts credentials.
     */
    void (*log)(const struct persistor_host *host, int32_t level, const char *event,
                const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
        __attribute__((format(printf, 4, 5)))
#endif
        ;

    /**
     * Fill `err` with `code` and a formatted message; returns `code`, so
     * a callback can end with `return host->error_set(err, ...)`.  The
     * message is cut to PERSISTOR_ERROR_MESSAGE_MAX.  `err` may be NULL.
     */
    int32_t (*error_set)(persistor_error *err, int32_t code, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
        __attribute__((format(printf, 3, 4)))
#endif
        ;

    /* -- host-owned buffers ---------------------------------------- */

    /** Replace the buffer's content.  OK or E_NOMEM. */
    int32_t (*buffer_set)(persistor_buffer *buf, const void *data, uint32_t len);
    /** Append to the buffer's content.  OK or E_NOMEM. */
    int32_t (*buffer_append)(persistor_buffer *buf, const void *data, uint32_t len);
    /**
     * Release the memory of a buffer the adapter zero-initialised itself
     * (e.g. scratch space for index_key) and make it empty again.  Never
     * call it on a buffer the host passed in.
     */
    void (*buffer_free)(persistor_buffer *buf);

    /* -- configuration --------------------------------------------- */

    /**
     * Look up a declared option.  On OK, *out is set; a string stays
     * valid as long as the config (until close() returns).  NOT_FOUND
     * when the option is unset and has no default.  E_INVALID when `key`
     * was not declared in the adapter's options or has another type.
     */
    int32_t (*config_string)(const persistor_config *config, const char *key, const char **out);
    int32_t (*config_int)(const persistor_config *config, const char *key, int64_t *out);
    int32_t (*config_bool)(const persistor_config *config, const char *key, int32_t *out);
    int32_t (*config_double)(const persistor_config *config, const char *key, double *out);

    /**
     * Report a bad option value the way the host reports profile errors:
     * fills `err` with E_CONFIG and "file:line:column: key.path: message".
     * Returns PERSISTOR_E_CONFIG.
     */
    int32_t (*config_error)(const persistor_config *config, const char *key,
                            persistor_error *err, const char *fmt, ...)
#if defined(__GNUC__) || defined(__clang__)
        __attribute__((format(printf, 4, 5)))
#endif
        ;

    /** A name for this adapter entry in messages, e.g. "memory#0". */
    const char *(*config_label)(const persistor_config *config);

    /* -- the query language ---------------------------------------- */

    /**
     * Compile a filter.  OK, or E_INVALID naming the unsupported operator
     * or malformed part.  Free with matcher_free.  A NULL/empty filter
     * matches every document.
     */
    int32_t (*matcher_new)(const uint8_t *filter, uint32_t len, persistor_matcher **out,
                           persistor_error *err);
    /** 1 if the document matches, 0 if not (a malformed document: 0). */
    int32_t (*matcher_match)(const persistor_matcher *m, const uint8_t *doc, uint32_t len);
    void (*matcher_free)(persistor_matcher *m);

    /**
     * Compile a sort document ({field: 1|-1, ...}).  OK or E_INVALID.
     * sorter_compare orders two documents the way MongoDB would (arrays by
     * their least element ascending, greatest descending, an empty array
     * before null; missing fields as null), returning <0, 0 or >0.
     */
    int32_t (*sorter_new)(const uint8_t *sort, uint32_t len, persistor_sorter **out,
                          persistor_error *err);
    int32_t (*sorter_compare)(const persistor_sorter *s, const uint8_t *a, uint32_t a_len,
                              const uint8_t *b, uint32_t b_len);
    void (*sorter_free)(persistor_sorter *s);

    /**
     * Write the key of `index` for `doc` into `out` (replacing its
     * content): bytes whose memcmp order is MongoDB's order of the indexed
     * values (descending keys inverted), and which are equal exactly when
     * the values compare equal.  Missing fields index as null.  There is no
     * multikey indexing: an array is one value, and a path through an array
     * of documents indexes as null.  Use it for unique checks and ordered
     * secondary indexes; the encoding is stable within ABI major 1, so an
     * adapter may store it.  OK, E_INVALID for a malformed document or one
     * nested 100 levels deep or more, E_NOMEM.
     */
    int32_t (*index_key)(const persistor_index_spec *index, const uint8_t *doc, uint32_t len,
                         persistor_buffer *out);

    /**
     * The TTL time of a document, as MongoDB's TTL monitor reads it: the
     * date at a dotted path, or the earliest date of an array there.  OK
     * with *ms set; NOT_FOUND if absent or not a date (numbers and strings
     * never expire).  Adapters without native TTL use it with ttl_field.
     */
    int32_t (*doc_time_ms)(const uint8_t *doc, uint32_t len, const char *path, int64_t *ms);

    /** Milliseconds since the epoch on the host's clock (tests move it). */
    int64_t (*now_ms)(const struct persistor_host *host);

    /* -- files ----------------------------------------------------- */

    /**
     * Create directory `path` and any missing parents, each with `mode`
     * (0700 for stores), like mkdir -p; an existing directory is fine.
     * OK, or E_CONFIG naming the directory that could not be made and why.
     */
    int32_t (*make_dirs)(const char *path, uint32_t mode, persistor_error *err);
} persistor_host;

/* ------------------------------------------------------------------------
 * 6. The adapter table
 * --------------------------------------------------------------------- */

/** Capability bits. */
#define PERSISTOR_CAP_THREAD_SAFE 0x1u  /* callbacks may run concurrently */
#define PERSISTOR_CAP_NATIVE_TTL 0x2u   /* the store expires on its own   */
#define PERSISTOR_CAP_NATIVE_QUERY 0x4u /* filters run in the store       */
#define PERSISTOR_CAP_NO_UNLOAD 0x8u    /* never dlclose this module      */
#define PERSISTOR_CAP_DURABLE 0x10u     /* an acknowledged write survives
                                           the process (and a crash)      */

/**
 * What an adapter gives the host.  Define one `static const` instance and
 * return it from persistor_adapter_entry().
 *
 * Slots marked REQUIRED must be set: the loader refuses the adapter,
 * naming the first NULL one.  OPTIONAL slots may be NULL; the host then
 * emulates them (count, stats and group_count by a query, expire by a
 * query and deletes) or reports NOTSUP.
 *
 * Common rules for every callback that takes `err`: on an error code it
 * fills `err` via host->error_set; on an answer (OK, NOT_FOUND, EXISTS,
 * ITER_END) it leaves `err` alone.  Pointers passed in are borrowed for
 * the duration of the call unless stated otherwise.
 */
typedef struct persistor_adapter {
    uint32_t abi_major;   /* PERSISTOR_ABI_MAJOR */
    uint32_t abi_minor;   /* PERSISTOR_ABI_MINOR */
    uint32_t struct_size; /* sizeof(persistor_adapter) */
    uint32_t reserved0;   /* zero */
    uint64_t capabilities; /* PERSISTOR_CAP_* */

    /** The adapter type; must equal the profile's `type:` (REQUIRED). */
    const char *name;
    /** The adapter's own version string, e.g. "1.0.0" (REQUIRED). */
    const char *version;
    /** One line for `persistor profiles` (OPTIONAL). */
    const char *description;

    /** The options the profile may set; NULL/0 when there are none. */
    const persistor_option_spec *options;
    uint32_t n_options;
    uint32_t reserved1;

    /**
     * OPTIONAL.  Called once per process, before the first open(), with
     * the host table.  Global library set-up (mongoc_init) belongs here.
     * Returns OK or an error (the adapter is then unusable).
     */
    int32_t (*module_init)(const persistor_host *host, persistor_error *err);
    /**
     * OPTIONAL.  Called once before the module is unloaded, after every
     * instance was closed.  Not called for PERSISTOR_CAP_NO_UNLOAD.
     */
    void (*module_fini)(void);

    /**
     * REQUIRED.  Open an instance with the validated `config`.  Both
     * `host` and `config` stay valid until close() returns.  Two instances
     * must share no state beyond what the store itself shares.
     * Returns OK with *out set; E_CONFIG for bad options, E_UNAVAILABLE /
     * E_RETRY when the store cannot be reached, E_CORRUPT, E_NOMEM.
     */
    int32_t (*open)(const persistor_host *host, const persistor_config *config,
                    persistor_instance **out, persistor_error *err);

    /** REQUIRED.  Release the instance.  Every cursor was closed before. */
    void (*close)(persistor_instance *inst);

    /** REQUIRED.  Is the store answering?  OK, E_UNAVAILABLE, E_RETRY. */
    int32_t (*ping)(persistor_instance *inst, persistor_error *err);

    /**
     * REQUIRED.  Create the collection and its indexes if missing; bring
     * the TTL up to date if it changed.  Idempotent: called at every open
     * for every collection the host uses, before any other call on it.
     * OK, E_CONFIG (e.g. an index the store cannot build), E_UNAVAILABLE,
     * E_RETRY, E_NOTSUP.
     */
    int32_t (*ensure_collection)(persistor_instance *inst, const persistor_collection_spec *spec,
                                 persistor_error *err);

    /**
     * REQUIRED.  Apply a batch of `n` writes to `collection`.
     *
     * For each op i, results[i] receives OK, EXISTS (INSERT_IF_ABSENT on a
     * taken id, or any write that would break a unique index) or NOT_FOUND
     * (DELETE of an absent id).  Ops apply in order and each sees the ones
     * before it (insert a, insert a: OK, EXISTS); one EXISTS does not stop
     * the others.  Adapters that can (sqlite, lmdb) apply the batch as one
     * transaction.
     *
     * The return value is OK when every op got an answer.  On an error the
     * adapter returns its code and sets results[i] to that same code for
     * every op whose fate it does not know, or whose write was not applied.
     */
    int32_t (*write)(persistor_instance *inst, const char *collection,
                     const persistor_write_op *ops, uint32_t n, int32_t *results,
                     persistor_error *err);

    /**
     * REQUIRED.  Fetch one document by id into `out` (via host buffer
     * calls).  OK, NOT_FOUND, or an error.
     */
    int32_t (*get)(persistor_instance *inst, const char *collection, const char *id,
                   persistor_buffer *out, persistor_error *err);

    /**
     * REQUIRED.  Start a query.  On OK, *out is a cursor the host drains
     * with cursor_next and always releases with cursor_close.  E_INVALID
     * for a filter or sort the query language refuses: an adapter that runs
     * queries natively still compiles them with host->matcher_new and
     * host->sorter_new first, so every adapter refuses the same queries.
     * Writes made while a cursor is open may or may not be seen by it.
     */
    int32_t (*query)(persistor_instance *inst, const char *collection, const persistor_query *q,
                     persistor_cursor **out, persistor_error *err);

    /**
     * REQUIRED.  Next document of a cursor: OK with *doc and *len pointing at
     * BSON owned by the cursor and valid until the next cursor call, or
     * ITER_END (and ITER_END again on every later call), or an error.
     */
    int32_t (*cursor_next)(persistor_cursor *cursor, const uint8_t **doc, uint32_t *len,
                           persistor_error *err);

    /** REQUIRED.  Release a cursor, drained or not. */
    void (*cursor_close)(persistor_cursor *cursor);

    /** OPTIONAL.  Count the documents matching `filter` (NULL: all). */
    int32_t (*count)(persistor_instance *inst, const char *collection, const uint8_t *filter,
                     uint32_t filter_len, uint64_t *out, persistor_error *err);

    /**
     * OPTIONAL.  Remove every document of `collection` whose TTL field is
     * before `cutoff_ms` (the host computes now - ttl_seconds).  Sets
     * *removed.  Adapters with PERSISTOR_CAP_NATIVE_TTL may leave it NULL.
     */
    int32_t (*expire)(persistor_instance *inst, const char *collection, int64_t cutoff_ms,
                      uint64_t *removed, persistor_error *err);

    /**
     * OPTIONAL.  Item count and stored bytes of one collection.  The host
     * sets out->struct_size; the adapter fills the fields that fit in it.
     */
    int32_t (*stats)(persistor_instance *inst, const char *collection,
                     persistor_collection_stats *out, persistor_error *err);

    /**
     * OPTIONAL.  Is a document with this id stored?  OK or NOT_FOUND, or
     * an error.  Lets `has` skip reading the document; the host uses get()
     * when it is NULL.
     */
    int32_t (*exists)(persistor_instance *inst, const char *collection, const char *id,
                      persistor_error *err);

    /**
     * OPTIONAL.  One line about the store for `persistor health`, written
     * into `out` with host->buffer_set (UTF-8, no NUL needed): e.g.
     * "MongoDB 7.0.4, replica set rs0, primary db1:27017".  Never a
     * password: connection strings go through the host's redaction, but an
     * adapter should not put one here.  OK, or an error (the store did not
     * answer), which health reports in place of the line.
     */
    int32_t (*describe)(persistor_instance *inst, persistor_buffer *out, persistor_error *err);

    /* -- since ABI 1.1 ---------------------------------------------- */

    /**
     * OPTIONAL (1.1).  Count the documents of `collection` matching
     * `filter` (NULL/0: all) per value of the dotted path `field`, the way
     * MongoDB answers
     *
     *   [{$match: filter},
     *    {$group: {_id: "$<field>", total: {$sum: 1}}},
     *    {$sort: {_id: 1}}]
     *
     * and write into `out` (host->buffer_set) one BSON document
     * {groups: [{_id: <value>, total: <int64>}, ...]}; no matching
     * document gives {groups: []}.
     *
     *   - The path follows MongoDB's aggregation field paths, not the query
     *     language's: a component never indexes an array; an array met
     *     before the last component gives the array of what the rest of the
     *     path reaches in each of its document elements (other elements
     *     and misses left out): "a.b" over a: [{b: 1}, {c: 0}, {b: 2}, 7]
     *     is [1, 2].  A field holding an array groups by the whole array.
     *   - A missing field groups with null, under _id null.
     *   - Values MongoDB's $group treats as equal are one group: numbers by
     *     value across int32, int64 and double (1, 1.0, NumberLong(1)),
     *     and documents and arrays element by element.  The group's _id is
     *     one of its values (which one is not specified).
     *   - Groups come in $sort's order of _id: MongoDB's cross-type order,
     *     an array by its least element, an empty array before null.  Groups
     *     that tie there (only arrays can: [1, 5] and [1, 3] both sort as
     *     1) come in MongoDB's order of the whole values ([1, 3] first).
     *   - total is an int64, whatever width the store counted in.
     *
     * Returns OK; E_INVALID for a filter the query language refuses
     * (compile it with host->matcher_new first, as query does) or for a
     * `field` that is not a field path (empty, or a component empty or
     * starting with '$', as MongoDB refuses them); or an error class as
     * for query.  When NULL, the host computes the same answer from a
     * query (core/group.c).
     */
    int32_t (*group_count)(persistor_instance *inst, const char *collection,
                           const uint8_t *filter, uint32_t filter_len, const char *field,
                           persistor_buffer *out, persistor_error *err);
} persistor_adapter;

/* ------------------------------------------------------------------------
 * 7. The entry point
 * --------------------------------------------------------------------- */

/**
 * The one symbol an adapter exports.
 *
 * Called by the loader right after dlopen, before any other callback, with
 * the host table.  Returns the adapter's table, which must stay valid until
 * the module is unloaded (a `static const` object), or NULL if the adapter
 * cannot serve this host (e.g. host->abi_major is not its own).
 * It must not allocate, log or touch any store.
 */
typedef const persistor_adapter *(*persistor_adapter_entry_fn)(const persistor_host *host);

#define PERSISTOR_ADAPTER_ENTRY_SYMBOL "persistor_adapter_entry"

#ifdef __cplusplus
}
#endif

#endif /* PERSISTOR_ADAPTER_H */
