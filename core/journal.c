/*
 * journal.c — building and reading fallback journal entries.
 */
#include "journal.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "host.h"

static const persistor_index_key journal_seq_key[] = {{"seq", 1}};
static const persistor_index_spec journal_indexes[] = {
    {"seq_1", journal_seq_key, 1, PERSISTOR_INDEX_UNIQUE},
};
static const persistor_collection_spec journal_collection = {
    .struct_size = sizeof journal_collection,
    .name = JOURNAL_COLLECTION,
    .indexes = journal_indexes,
    .n_indexes = 1,
};

const persistor_collection_spec *journal_spec(void)
{
    return &journal_collection;
}

void journal_next_seq(char out[JOURNAL_SEQ_MAX])
{
    static atomic_int_fast64_t last_ms;
    static atomic_uint_fast64_t counter;
    int64_t now = host_realtime_ms();
    int_fast64_t seen = atomic_load(&last_ms);
    while (now > seen && !atomic_compare_exchange_weak(&last_ms, &seen, now))
        ;
    if (now < seen)
        now = seen;
    uint64_t n = atomic_fetch_add(&counter, 1);
    snprintf(out, JOURNAL_SEQ_MAX, "%013" PRIx64 "-%08x-%012" PRIx64, (uint64_t)now,
             (unsigned)getpid(), n);
}

static const char *journal_op_name(uint32_t kind)
{
    switch (kind) {
    case PERSISTOR_WRITE_INSERT_IF_ABSENT: return "insert";
    case PERSISTOR_WRITE_UPSERT:
    case PERSISTOR_WRITE_UPSERT_IF_NEWER: return "upsert";
    case PERSISTOR_WRITE_DELETE: return "delete";
    }
    return NULL;
}

bool journal_entry_build(bson_t *out, const char *seq, const char *collection,
                         const persistor_write_op *op, int64_t at_ms)
{
    const char *name = journal_op_name(op->kind);
    bool ok = name != NULL && BSON_APPEND_UTF8(out, "_id", seq) && BSON_APPEND_UTF8(out, "seq", seq) &&
              BSON_APPEND_UTF8(out, "collection", collection) && BSON_APPEND_UTF8(out, "op", name) &&
              BSON_APPEND_UTF8(out, "id", op->id);
    if (ok && op->kind != PERSISTOR_WRITE_DELETE) {
        bson_t doc;
        ok = bson_init_static(&doc, op->doc, op->doc_len) && BSON_APPEND_DOCUMENT(out, "doc", &doc);
    }
    return ok && BSON_APPEND_DATE_TIME(out, "at", at_ms);
}

static const char *journal_utf8(const bson_t *b, const char *key)
{
    bson_iter_t it;
    return bson_iter_init_find(&it, b, key) && BSON_ITER_HOLDS_UTF8(&it) ? bson_iter_utf8(&it, NULL)
                                                                          : NULL;
}

bool journal_entry_parse(const uint8_t *data, uint32_t len, journal_entry *out)
{
    bson_t b;
    if (!bson_init_static(&b, data, len))
        return false;
    memset(out, 0, sizeof *out);
    out->seq = journal_utf8(&b, "seq");
    out->collection = journal_utf8(&b, "collection");
    out->id = journal_utf8(&b, "id");
    const char *op = journal_utf8(&b, "op");
    if (out->seq == NULL || out->collection == NULL || out->id == NULL || op == NULL)
        return false;
    if (strcmp(op, "insert") == 0)
        out->kind = PERSISTOR_WRITE_INSERT_IF_ABSENT;
    else if (strcmp(op, "upsert") == 0)
        out->kind = PERSISTOR_WRITE_UPSERT;
    else if (strcmp(op, "delete") == 0)
        out->kind = PERSISTOR_WRITE_DELETE;
    else
        return false;
    if (out->kind == PERSISTOR_WRITE_DELETE)
        return true;
    bson_iter_t it;
    if (!bson_iter_init_find(&it, &b, "doc") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return false;
    bson_iter_document(&it, &out->doc_len, &out->doc);
    return true;
}
