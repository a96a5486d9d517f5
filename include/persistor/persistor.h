/*
 * persistor/persistor.h — the application API.
 *
 * Open a handle on an environment profile (conf/profiles.yaml), then
 * append and read kernel snapshots through it.  The profile decides which
 * storage adapters answer; nothing here depends on which one did.
 *
 * Conventions, for every function below:
 *   - Return codes are those of adapter.h: PERSISTOR_OK and the other
 *     answers (>= 0), or an error (< 0) with `err` filled when err != NULL.
 *   - Strings passed in are borrowed for the call.
 *   - What a function returns through an out-pointer belongs to the caller,
 *     who frees it with the *_free function named in its comment; "borrowed"
 *     results are valid only until the call named in the comment.
 *   - One persistor handle may be used from many threads at once.  Iterators
 *     and results are not shared objects: use each from one thread at a time.
 */
#ifndef PERSISTOR_PERSISTOR_H
#define PERSISTOR_PERSISTOR_H

#include <stddef.h>
#include <stdint.h>

#include <persistor/adapter.h> /* return codes and persistor_error */

#ifdef __cplusplus
extern "C" {
#endif

#define PERSISTOR_API __attribute__((visibility("default")))

/**
 * An answer, not an error: the record was NOT stored, because every adapter
 * of the chain failed and its collection is `on_failure: fail_open`.  The
 * call logged `<event>_persist_failed` with the record's id and the reason.
 * (Never returned by an adapter; under fail_closed the error is returned.)
 */
#define PERSISTOR_NOT_STORED 4

/** Length of a snapshot hash in hex, without the NUL; also the longest
 *  hash a caller may give a snapshot itself. */
#define PERSISTOR_HASH_HEX_LEN 64

/** The library's version, e.g. "0.1.0".  Static storage. */
PERSISTOR_API const char *persistor_version(void);

/* ------------------------------------------------------------------------
 * Opening a profile
 * --------------------------------------------------------------------- */

typedef struct persistor persistor;

/** Options for persistor_open.  Zero-initialise, then set struct_size. */
typedef struct persistor_open_options {
    uint32_t struct_size; /* sizeof(persistor_open_options) */
    /**
     * The profiles file.  NULL: $PERSISTOR_CONFIG, else ./conf/profiles.yaml,
     * else /etc/persistor/profiles.yaml (the first that exists).
     */
    const char *config_path;
    /** The profile.  NULL: $PERSISTOR_PROFILE, else "development". */
    const char *profile;
    /**
     * The clock for timestamps and TTL, in ms since the epoch.  NULL: the
     * real clock.  Tests pass their own to move time.
     */
    int64_t (*clock_ms)(void *ctx);
    void *clock_ctx;
} persistor_open_options;

/**
 * Open the profile: parse and check the file, load the adapters of its
 * chain, open them and make sure every collection and index exists.
 *
 * `opts` may be NULL (all defaults).  On OK, *out is a handle to free with
 * persistor_close.  Errors: E_CONFIG (file:line:column of a bad profile, a
 * plugin that will not load, a bad adapter option), NOT_FOUND (no such
 * profile, or no profiles file), E_ABI, E_UNAVAILABLE (a store that does not
 * answer), E_NOMEM.  Nothing is written before every check has passed.
 */
PERSISTOR_API int32_t persistor_open(const persistor_open_options *opts, persistor **out,
                                     persistor_error *err);

/** Close the handle and every adapter.  NULL is allowed. */
PERSISTOR_API void persistor_close(persistor *p);

/** One profile of a profiles file, as `persistor profiles` shows it. */
typedef struct persistor_profile_info {
    char *name;
    char *description; /* "" when the profile has none */
    char *chain;       /* the adapter chain, e.g. "mongodb -> lmdb" */
} persistor_profile_info;

typedef struct persistor_profile_list {
    char *config_path; /* the file that was read */
    persistor_profile_info *items;
    size_t count;
} persistor_profile_list;

/**
 * Read and check a profiles file (config_path as for persistor_open) and
 * list its profiles in file order, without loading any adapter.  Free with
 * persistor_profile_list_free.  E_CONFIG with file:line:column, NOT_FOUND.
 */
PERSISTOR_API int32_t persistor_profiles(const char *config_path, persistor_profile_list *out,
                                         persistor_error *err);
PERSISTOR_API void persistor_profile_list_free(persistor_profile_list *list);

/** The profile's name and file.  Borrowed until persistor_close. */
PERSISTOR_API const char *persistor_profile_name(const persistor *p);
PERSISTOR_API const char *persistor_config_path(const persistor *p);

/* ------------------------------------------------------------------------
 * Snapshots
 * --------------------------------------------------------------------- */

/** ts_ms of a snapshot stamped with the current time (so a zeroed input
 *  means "now"; a kernel's real timestamps are never the epoch itself). */
#define PERSISTOR_TS_NOW 0

/**
 * A snapshot to append.
 *
 * The content is a document (the kernel's `state`, `events`, `metadata`,
 * or any fields of its own) given either as BSON bytes or as JSON text.
 * Its fields are stored at the top level of the snapshot document beside
 * the ones persistor sets: `_id`, `tenantId`, `xcId`, `ts`, `createdAt`
 * (content that sets one of these is E_INVALID).
 */
typedef struct persistor_snapshot_input {
    uint32_t struct_size; /* sizeof(persistor_snapshot_input) */
    const char *tenant_id; /* NULL: "default" */
    const char *xc_id;     /* the execution context; required, non-empty */
    int64_t ts_ms;         /* ms since the epoch; PERSISTOR_TS_NOW (0): now */
    /**
     * The id, at most PERSISTOR_HASH_HEX_LEN bytes of printable UTF-8.
     * NULL: persistor computes SHA-256 hex over tenant, xc_id, ts and the
     * content's BSON (the README gives the exact input), so appending the
     * same snapshot twice stores it once.
     */
    const char *hash;
    const uint8_t *content_bson; /* a BSON document, or NULL */
    uint32_t content_bson_len;
    const char *content_json; /* used when content_bson is NULL; NULL: {} */
    /** What to call the JSON in error messages ("snap.json"); NULL: "content". */
    const char *content_json_source;
} persistor_snapshot_input;

/**
 * Append one snapshot if no snapshot has its hash (insert-if-absent).
 *
 * Returns OK when stored, EXISTS when a snapshot with this hash was already
 * stored (nothing changed: retrying an append is safe), NOT_STORED when no
 * adapter could take it and the snapshots collection is fail_open.  While
 * the primary is down the snapshot goes to a fallback and is replayed to
 * the primary later; the answer is then the fallback's (OK or EXISTS).  `hash_out`, when
 * not NULL, receives the hash (PERSISTOR_HASH_HEX_LEN + 1 bytes).
 * Errors: E_INVALID (missing xc_id, bad JSON with line and column, reserved
 * field in the content, oversize document), storage errors.
 */
PERSISTOR_API int32_t persistor_snapshot_append(persistor *p, const persistor_snapshot_input *in,
                                                char *hash_out, persistor_error *err);

/**
 * Append `n` snapshots in one batched write.  results[i] gets OK, EXISTS or
 * NOT_STORED for each (or the error code when the batch failed); hashes_out, when not
 * NULL, is an array of n buffers of PERSISTOR_HASH_HEX_LEN + 1 bytes.
 * Returns OK when every snapshot got an answer.  Input is checked whole
 * before anything is written: one invalid snapshot writes none.
 */
PERSISTOR_API int32_t persistor_snapshot_append_many(persistor *p,
                                                     const persistor_snapshot_input *in, size_t n,
                                                     char (*hashes_out)[PERSISTOR_HASH_HEX_LEN + 1],
                                                     int32_t *results, persistor_error *err);

/** OK if a snapshot with this hash is stored, NOT_FOUND if not.  While
 *  persistor_degraded() is true, NOT_FOUND means "not in the fallback". */
PERSISTOR_API int32_t persistor_snapshot_has(persistor *p, const char *hash,
                                             persistor_error *err);

/** A stored snapshot.  Fields are read-only and point into `bson`; free an
 *  owned one with persistor_snapshot_free. */
typedef struct persistor_snapshot {
    const char *hash; /* the id: SHA-256 hex, or the caller's own hash */
    const char *tenant_id;
    const char *xc_id;
    int64_t ts_ms;
    int64_t created_at_ms;
    const uint8_t *bson; /* the whole stored document */
    uint32_t bson_len;
    /** Non-zero when a fallback answered while the primary was down: the
     *  answer is what the fallback holds, which may not be everything. */
    int32_t degraded;
} persistor_snapshot;

/** The snapshot as one line of relaxed Extended JSON; free with persistor_free. */
PERSISTOR_API char *persistor_snapshot_to_json(const persistor_snapshot *s);
PERSISTOR_API void persistor_snapshot_free(persistor_snapshot *s);
/** Free a string returned by this API. */
PERSISTOR_API void persistor_free(void *ptr);

/** Fetch by hash: OK with *out (free with persistor_snapshot_free), or NOT_FOUND. */
PERSISTOR_API int32_t persistor_snapshot_get(persistor *p, const char *hash,
                                             persistor_snapshot **out, persistor_error *err);

/** An iterator over one execution context's snapshots. */
typedef struct persistor_snapshot_iter persistor_snapshot_iter;

/**
 * Load every snapshot of `xc_id`, ordered by ts, then hash.  On OK, *out
 * is an iterator to free with persistor_snapshot_iter_free (an unknown
 * context gives an empty iterator, not NOT_FOUND).
 */
PERSISTOR_API int32_t persistor_snapshot_load(persistor *p, const char *xc_id,
                                              persistor_snapshot_iter **out,
                                              persistor_error *err);

/**
 * The next snapshot: OK with *snap borrowed until the next call on the
 * iterator, ITER_END at the end (and after), or a storage error.
 */
PERSISTOR_API int32_t persistor_snapshot_iter_next(persistor_snapshot_iter *it,
                                                   const persistor_snapshot **snap,
                                                   persistor_error *err);
PERSISTOR_API void persistor_snapshot_iter_free(persistor_snapshot_iter *it);
/** Non-zero when a fallback answers this load (see persistor_snapshot.degraded). */
PERSISTOR_API int persistor_snapshot_iter_degraded(const persistor_snapshot_iter *it);

/** A list of strings; free with persistor_string_list_free. */
typedef struct persistor_string_list {
    char **items;
    size_t count;
    int32_t degraded; /* non-zero when a fallback gave the list */
} persistor_string_list;
PERSISTOR_API void persistor_string_list_free(persistor_string_list *list);

/** The hashes of `xc_id`'s snapshots in load order, into *out (caller frees). */
PERSISTOR_API int32_t persistor_snapshot_list_hashes(persistor *p, const char *xc_id,
                                                     persistor_string_list *out,
                                                     persistor_error *err);

/** The newest snapshot of `xc_id` (greatest ts, then hash): OK or NOT_FOUND. */
PERSISTOR_API int32_t persistor_snapshot_latest(persistor *p, const char *xc_id,
                                                persistor_snapshot **out, persistor_error *err);

/** Delete one snapshot: OK, or NOT_FOUND if no snapshot has this hash. */
PERSISTOR_API int32_t persistor_snapshot_delete(persistor *p, const char *hash,
                                                persistor_error *err);

/** Delete every snapshot of `xc_id`; *deleted (may be NULL) gets the count.
 *  E_UNAVAILABLE while the primary is down: a fallback cannot list what
 *  the primary holds, so the delete would be partial. */
PERSISTOR_API int32_t persistor_snapshot_delete_context(persistor *p, const char *xc_id,
                                                        uint64_t *deleted, persistor_error *err);

/**
 * Remove expired snapshots now (the TTL of the profile's snapshots
 * collection, on createdAt), instead of waiting for the lazy sweep that
 * runs at most once a second of the handle's clock.  Adapters with native
 * TTL expire on their own schedule.  *removed may be NULL.
 */
PERSISTOR_API int32_t persistor_snapshot_expire(persistor *p, uint64_t *removed,
                                                persistor_error *err);

/* ------------------------------------------------------------------------
 * Audit records: the orchestrator's validation_audit, workflow_results
 * and incidents collections (docs/AUDIT.md has their schemas)
 * --------------------------------------------------------------------- */

/** Longest id an audit save writes into id_out, without the NUL. */
#define PERSISTOR_ID_MAX 256

typedef enum persistor_audit_kind {
    /** validation_audit: {plan_id, workflow_id?, validation_result: {...},
     *  timestamp?}; persistor adds `hash`, SHA-256 of the result's
     *  canonical form (its documents' keys sorted).  Insert-if-absent on an
     *  id derived from plan, workflow, timestamp and hash. */
    PERSISTOR_AUDIT_VALIDATION = 1,
    /** workflow_results: {workflow_id, status, plan_id?, intent_id?,
     *  metrics?, tickets_summary?, sla_status?, consolidated_at?}; upserted
     *  with workflow_id as _id (a missing or empty workflow_id is E_INVALID). */
    PERSISTOR_AUDIT_WORKFLOW_RESULT = 2,
    /** incidents: {workflow_id, type, severity: LOW|MEDIUM|HIGH|CRITICAL,
     *  details?, timestamp?}.  Insert-if-absent on an id derived from the
     *  whole record, so a retried save stores it once. */
    PERSISTOR_AUDIT_INCIDENT = 3,
} persistor_audit_kind;

/** A record as BSON bytes, or as JSON text when bson is NULL. */
typedef struct persistor_record_input {
    uint32_t struct_size; /* sizeof(persistor_record_input) */
    const uint8_t *bson;
    uint32_t bson_len;
    const char *json;
    const char *json_source; /* for error messages ("result.json"); NULL: "record" */
} persistor_record_input;

/**
 * Save one audit record of `kind` into its collection (named by the
 * profile).  Times (`timestamp`, `consolidated_at`) must be dates (JSON:
 * {"$date": "2026-11-22T10:00:00Z"}); absent, they are now.  The fields
 * persistor sets (`_id`, `hash`, `updated_at`) may not be given.
 *
 * Returns OK (stored), EXISTS (this validation or incident was already
 * stored), NOT_STORED (every adapter failed and the collection is
 * fail_open, the default for audit: `<collection>_persist_failed` was
 * logged), or E_INVALID naming the field, or a storage error under
 * fail_closed.  id_out (may be NULL) receives the record's id.
 * Logs validation_audit_saved, workflow_result_saved or incident_saved.
 */
PERSISTOR_API int32_t persistor_audit_save(persistor *p, persistor_audit_kind kind,
                                           const persistor_record_input *in,
                                           char id_out[PERSISTOR_ID_MAX + 1],
                                           persistor_error *err);

/* ------------------------------------------------------------------------
 * Queries on any of the profile's collections, and the seed's own
 * (docs/AUDIT.md shows each beside its MongoDB shell form)
 * --------------------------------------------------------------------- */

/**
 * What to find.  The filter is MongoDB's query language (the subset of
 * adapter.h: equality, $eq $ne $gt $gte $lt $lte $in $nin $exists, $and
 * $or, dotted paths), as BSON or as JSON text when filter_bson is NULL;
 * neither: every record.
 */
typedef struct persistor_find_options {
    uint32_t struct_size; /* sizeof(persistor_find_options) */
    const uint8_t *filter_bson;
    uint32_t filter_bson_len;
    const char *filter_json;
    /** A field path to sort on ("timestamp", "sla_status.violations_count"),
     *  or NULL: no order (adapters give their own).  Ties go by _id, ascending. */
    const char *sort_field;
    int32_t sort_descending; /* non-zero: greatest first */
    uint64_t limit;          /* 0: no limit */
} persistor_find_options;

/** An iterator over found records. */
typedef struct persistor_record_iter persistor_record_iter;

/**
 * Find the records of `collection` matching `opts` (NULL: all).
 * `collection` is a collection of the profile, by its key ("incidents") or
 * by the name the profile gives it.  On OK, *out is an iterator to free with
 * persistor_record_iter_free.  Errors: E_INVALID (unknown collection, bad
 * filter JSON with line and column, unsupported operator), storage errors.
 */
PERSISTOR_API int32_t persistor_find(persistor *p, const char *collection,
                                     const persistor_find_options *opts,
                                     persistor_record_iter **out, persistor_error *err);

/** The next record: OK with *bson borrowed until the next call, ITER_END at
 *  the end (and after), or a storage error. */
PERSISTOR_API int32_t persistor_record_iter_next(persistor_record_iter *it, const uint8_t **bson,
                                                 uint32_t *bson_len, persistor_error *err);
/** Non-zero when a fallback answers (see persistor_snapshot.degraded). */
PERSISTOR_API int persistor_record_iter_degraded(const persistor_record_iter *it);
PERSISTOR_API void persistor_record_iter_free(persistor_record_iter *it);

/** A BSON record as one line of relaxed Extended JSON; free with persistor_free. */
PERSISTOR_API char *persistor_record_to_json(const uint8_t *bson, uint32_t bson_len);

/** How many records of `collection` match opts' filter (sort and limit
 *  are ignored); *degraded (may be NULL) as for reads. */
PERSISTOR_API int32_t persistor_count(persistor *p, const char *collection,
                                      const persistor_find_options *opts, uint64_t *out,
                                      int32_t *degraded, persistor_error *err);

/** One group of a grouped count.  `key_json` is the group's value as
 *  relaxed Extended JSON ("true", "\"timeout\"", "null" for records
 *  without the field). */
typedef struct persistor_group {
    char *key_json;
    uint8_t *key_bson; /* the document {_id: value}, for typed access */
    uint32_t key_bson_len;
    uint64_t total;
} persistor_group;

typedef struct persistor_group_list {
    persistor_group *items; /* ordered by value, in MongoDB's sort order */
    size_t count;
    int32_t degraded;       /* non-zero when a fallback answered */
} persistor_group_list;
PERSISTOR_API void persistor_group_list_free(persistor_group_list *list);

/**
 * Count the records matching opts' filter per value of the field path
 * `field`: MongoDB's aggregate([{$match}, {$group: {_id: "$field", total:
 * {$sum: 1}}}, {$sort: {_id: 1}}]).  Native on adapters that group (MongoDB),
 * computed by persistor elsewhere, with the same answer.
 */
PERSISTOR_API int32_t persistor_count_by(persistor *p, const char *collection,
                                         const persistor_find_options *opts, const char *field,
                                         persistor_group_list *out, persistor_error *err);

/* The seed's operator queries.  `limit` 0 means no limit; records that
 * tie on the sort field come by _id, ascending, on every adapter. */

/** Validations grouped by `validation_result.valid`. */
PERSISTOR_API int32_t persistor_audit_validations_by_validity(persistor *p,
                                                              persistor_group_list *out,
                                                              persistor_error *err);
/** A plan's validations, newest `timestamp` first. */
PERSISTOR_API int32_t persistor_audit_validation_history(persistor *p, const char *plan_id,
                                                         uint64_t limit,
                                                         persistor_record_iter **out,
                                                         persistor_error *err);
/** Workflow results with `status`, most recently consolidated first. */
PERSISTOR_API int32_t persistor_audit_workflows_by_status(persistor *p, const char *status,
                                                          uint64_t limit,
                                                          persistor_record_iter **out,
                                                          persistor_error *err);
/** Workflow results with `sla_status.violations_count > 0`, most violations first. */
PERSISTOR_API int32_t persistor_audit_sla_violations(persistor *p, uint64_t limit,
                                                     persistor_record_iter **out,
                                                     persistor_error *err);
/** CRITICAL incidents, newest first; the seed shows limit 20. */
PERSISTOR_API int32_t persistor_audit_critical_incidents(persistor *p, uint64_t limit,
                                                         persistor_record_iter **out,
                                                         persistor_error *err);
/** Incidents grouped by `type`. */
PERSISTOR_API int32_t persistor_audit_incidents_by_type(persistor *p, persistor_group_list *out,
                                                        persistor_error *err);
/** Buffered telemetry that has been claimed at least once (`retry_count > 0`),
 *  dead letters included, oldest `buffered_at` first. */
PERSISTOR_API int32_t persistor_telemetry_retried(persistor *p, uint64_t limit,
                                                  persistor_record_iter **out,
                                                  persistor_error *err);

/* ------------------------------------------------------------------------
 * The telemetry buffer: telemetry kept while Kafka or the observability
 * stack is down, and redelivered later (at least once)
 * --------------------------------------------------------------------- */

/**
 * Buffer one telemetry record: {correlation: {workflow_id, plan_id?,
 * intent_id?}, metrics: {...}, source: string, timestamp?: date}, plus any
 * fields of the caller's own.  persistor adds `_id` (SHA-256 hex of the
 * record's canonical form, its timestamp included: a retried buffer stores
 * it once, and a record buffered again without a timestamp a moment later
 * is another one), `buffered_at` (now), `retry_count` (int32 0), `state`
 * "pending", `lease_until` (the epoch: claimable) and `version` (int64 1);
 * giving one of these is E_INVALID.  Returns OK, EXISTS, NOT_STORED
 * (fail_open: `telemetry_buffer_persist_failed` was logged), E_INVALID
 * naming the field, or a storage error under fail_closed.  id_out (may be
 * NULL) receives the id.  Logs telemetry_buffered.
 */
PERSISTOR_API int32_t persistor_telemetry_buffer(persistor *p, const persistor_record_input *in,
                                                 char id_out[PERSISTOR_ID_MAX + 1],
                                                 persistor_error *err);

typedef struct persistor_claim_options {
    uint32_t struct_size;  /* sizeof(persistor_claim_options) */
    uint32_t max_records;  /* 0: 100 */
    uint32_t lease_ms;     /* 0: 60000 */
    /** A record claimed this many times and still not acknowledged moves
     *  to the dead-letter state instead of being claimed again.  0: 5. */
    uint32_t max_retries;
} persistor_claim_options;

/** Records, each as its id and its stored BSON; free with persistor_record_list_free. */
typedef struct persistor_record {
    char *id;
    uint8_t *bson;
    uint32_t bson_len;
} persistor_record;

typedef struct persistor_record_list {
    persistor_record *items;
    size_t count;
    int32_t degraded; /* non-zero when a fallback answered */
    /** claim only: records that reached max_retries and went dead in this call. */
    size_t dead_lettered;
} persistor_record_list;
PERSISTOR_API void persistor_record_list_free(persistor_record_list *list);

/**
 * Claim up to max_records pending records whose lease has ended, oldest
 * `buffered_at` first (then by _id), for redelivery.  Each claimed record gets
 * `retry_count` + 1, `lease_until` = now + lease_ms and `version` + 1: no
 * other claimer sees it until the lease ends.  A record already claimed
 * max_retries times goes to the dead-letter state instead (counted in
 * out->dead_lettered, not returned).  Claims are compare-and-set on
 * `version`, so two processes never both claim one record within a lease;
 * records lost to another claimer are skipped and the claim looks again
 * (a few times at most).  *out holds the stored documents after the claim.
 * Acknowledge what was delivered (persistor_telemetry_ack), release what
 * was not.
 *
 * Delivery is at least once: a record delivered and acknowledged while a
 * slower claimer still held the copy it read is written back by that
 * claimer (its compare-and-set finds nothing stored, so it inserts) and
 * delivered again; so is a record whose lease ended before its ack.  The
 * one-claimer guarantee holds while the primary answers: while degraded,
 * claims run on a fallback's copies and processes on different fallbacks
 * may both claim a record.  A claim write the router resent after an
 * uncertain answer may count as lost although it applied: that record is
 * not returned and is claimable again when its lease ends.
 * Returns OK with *out (possibly empty; free with persistor_record_list_free),
 * or an error with *out empty: records the call had leased by then are
 * claimable again when their lease ends.
 */
PERSISTOR_API int32_t persistor_telemetry_claim(persistor *p, const persistor_claim_options *opts,
                                                persistor_record_list *out,
                                                persistor_error *err);

/** Delivered: remove these records.  *done (may be NULL) gets how many
 *  were removed; ids not buffered are skipped (an ack is idempotent). */
PERSISTOR_API int32_t persistor_telemetry_ack(persistor *p, const char *const *ids, size_t n,
                                              uint64_t *done, persistor_error *err);

/** Not delivered: end these records' leases now, so the next claim takes
 *  them (their retry_count stays).  Leases are not owner-checked: release
 *  only ids your own claim returned, within its lease.  Records not leased (never claimed,
 *  released already, lease over, dead) and unknown ids are skipped.
 *  *done (may be NULL) gets how many were released.  Ids are checked first
 *  (non-empty, at most PERSISTOR_ID_MAX bytes): E_INVALID changes nothing. */
PERSISTOR_API int32_t persistor_telemetry_release(persistor *p, const char *const *ids, size_t n,
                                                  uint64_t *done, persistor_error *err);

/** The dead-letter records, oldest `buffered_at` first; limit 0: all. */
PERSISTOR_API int32_t persistor_telemetry_dead(persistor *p, uint64_t limit,
                                               persistor_record_list *out,
                                               persistor_error *err);

/** Put dead-letter records back: state pending, retry_count 0, claimable
 *  now.  ids NULL: every dead record (n is ignored); ids that are not dead
 *  letters are skipped.  *done (may be NULL) gets how many. */
PERSISTOR_API int32_t persistor_telemetry_requeue(persistor *p, const char *const *ids, size_t n,
                                                  uint64_t *done, persistor_error *err);

/* ------------------------------------------------------------------------
 * Stats and health
 * --------------------------------------------------------------------- */

/** The seed's getStats(), for the snapshots collection. */
typedef struct persistor_stats {
    uint64_t item_count;
    uint64_t total_size;       /* bytes */
    double average_item_size;  /* total_size / item_count, 0 when empty */
    char adapter_type[64];     /* the adapter that answered, e.g. "memory" */
    int32_t degraded;          /* non-zero when a fallback answered */
} persistor_stats;

PERSISTOR_API int32_t persistor_stats_get(persistor *p, persistor_stats *out,
                                          persistor_error *err);

/** One adapter of the chain, as seen by a ping. */
typedef struct persistor_adapter_health {
    char label[64];      /* "memory#0": type and position in the chain */
    char type[32];
    char version[32];    /* the adapter's own version */
    int32_t status;      /* OK, or the ping's error code */
    uint64_t latency_us; /* of the ping */
    uint64_t capabilities;
    char message[256];   /* the ping's error, or why the breaker is open, or "" */
    char detail[256];    /* the adapter's own line (server version, topology), or "" */
    char breaker[16];    /* "closed", "open" (skipped, probed), "recovering" (replaying) */
    uint64_t breaker_open_ms;  /* how long it has not been closed; 0 when closed */
    uint64_t journal_pending;  /* fallbacks: writes waiting for replay */
    int32_t durable;     /* the adapter keeps what it acknowledged across a crash */
} persistor_adapter_health;

typedef struct persistor_health {
    size_t count;
    persistor_adapter_health *adapters; /* in chain order */
    int32_t degraded;    /* the primary is not serving: a fallback answers */
    /** "durable": every adapter is; "degraded": a fallback the profile
     *  declared `volatile: true` (e.g. memory) stands behind a durable
     *  primary; "volatile": the primary itself keeps nothing. */
    char durability[16];
} persistor_health;

/**
 * Ping every adapter of the chain.  Returns OK when the report was made
 * (each adapter's own status is in the report); free with
 * persistor_health_free.
 */
PERSISTOR_API int32_t persistor_health_check(persistor *p, persistor_health *out,
                                             persistor_error *err);
PERSISTOR_API void persistor_health_free(persistor_health *health);

/**
 * Non-zero while the primary is not serving (its circuit breaker is open,
 * or it is replaying what a fallback took): reads come from a fallback and
 * see only what it holds.  Writes are journaled there and replayed.
 */
PERSISTOR_API int persistor_degraded(persistor *p);

/** "OK", "NOT_FOUND", "E_RETRY"...: the name of a return code. */
PERSISTOR_API const char *persistor_rc_name(int32_t rc);

#ifdef __cplusplus
}
#endif

#endif /* PERSISTOR_PERSISTOR_H */
