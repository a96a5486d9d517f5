/*
 * journal.h — the fallback journal's format.
 *
 * Every write a fallback takes while the primary is down is also recorded
 * in the fallback itself, in the collection JOURNAL_COLLECTION, one entry
 * per operation:
 *
 *   { _id: seq, seq: seq, collection: "snapshots", op: "insert"|"upsert"|"delete",
 *     id: "<record id>", doc: { ...the record... }, at: <date> }
 *
 * `seq` is "<ms:13 hex>-<pid:8 hex>-<counter:12 hex>", so sorting by seq
 * replays one process's writes in the order it made them and several
 * processes' writes by time.  The entry carries the whole record, so a
 * replay never depends on what the fallback's own copy has become.
 * This file only builds and reads entries; router_replay.c moves them.
 */
#ifndef PERSISTOR_CORE_JOURNAL_H
#define PERSISTOR_CORE_JOURNAL_H

#include <bson/bson.h>
#include <stdbool.h>
#include <stdint.h>

#include "persistor/adapter.h"

#define JOURNAL_COLLECTION "_persistor_journal"
#define JOURNAL_SEQ_MAX 48

/* The journal's collection spec (an index on seq), static storage. */
const persistor_collection_spec *journal_spec(void);

/* The next sequence number of this process, increasing even if the clock
 * steps back. */
void journal_next_seq(char out[JOURNAL_SEQ_MAX]);

/* Append the fields of the entry for `op` on `collection` to `out`, an
 * empty document the caller made (and destroys).  False when the record is
 * too large to journal. */
bool journal_entry_build(bson_t *out, const char *seq, const char *collection,
                         const persistor_write_op *op, int64_t at_ms);

/* A parsed entry: views into the entry's bytes. */
typedef struct journal_entry {
    const char *seq;
    const char *collection;
    uint32_t kind; /* PERSISTOR_WRITE_INSERT_IF_ABSENT, _UPSERT or _DELETE */
    const char *id;
    const uint8_t *doc; /* NULL for a delete */
    uint32_t doc_len;
} journal_entry;

/* False when the bytes are not a journal entry (reported and skipped). */
bool journal_entry_parse(const uint8_t *data, uint32_t len, journal_entry *out);

#endif
