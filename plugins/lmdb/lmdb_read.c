/*
 * lmdb_read.c — get and exists (one key, no plan), and what queries
 * compile once and reuse: the filter shapes host->matcher_new accepted
 * (lmdb_query.c runs the queries; the last sort is kept by ../sorters.h).
 */
#include <string.h>

#include <bson/bson.h>

#include "lmdb_private.h"

/* ---- get and exists ---------------------------------------------------- */

int32_t lm_get(persistor_instance *inst, const char *collection, const char *id,
               persistor_buffer *out, persistor_error *err)
{
    lm_coll *c;
    lm_txn t;
    uint8_t mk[LM_TRUNC_LEN];
    size_t mk_len;
    MDB_val v;
    int32_t rc = lm_coll_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK || (rc = lm_begin(inst, 0, &t, err)) != PERSISTOR_OK)
        return rc;
    int mdb = lm_main_find(t.txn, c->main, id, mk, &mk_len, &v);
    if (mdb == MDB_SUCCESS) {
        if (inst->host->buffer_set(out, v.mv_data, (uint32_t)v.mv_size) != PERSISTOR_OK)
            rc = inst->host->error_set(err, PERSISTOR_E_NOMEM,
                                       "%s/%s: out of memory for %zu bytes", collection, id,
                                       v.mv_size);
    } else if (mdb == MDB_NOTFOUND) {
        rc = PERSISTOR_NOT_FOUND;
    } else {
        rc = lm_error(inst, mdb, collection, err);
    }
    lm_end(inst, &t);
    return rc;
}

int32_t lm_exists(persistor_instance *inst, const char *collection, const char *id,
                  persistor_error *err)
{
    lm_coll *c;
    lm_txn t;
    uint8_t mk[LM_TRUNC_LEN];
    size_t mk_len;
    MDB_val v;
    int32_t rc = lm_coll_get(inst, collection, &c, err);
    if (rc != PERSISTOR_OK || (rc = lm_begin(inst, 0, &t, err)) != PERSISTOR_OK)
        return rc;
    int mdb = lm_main_find(t.txn, c->main, id, mk, &mk_len, &v);
    lm_end(inst, &t);
    if (mdb == MDB_SUCCESS)
        return PERSISTOR_OK;
    if (mdb == MDB_NOTFOUND)
        return PERSISTOR_NOT_FOUND;
    return lm_error(inst, mdb, collection, err);
}

/* ---- compiled once ------------------------------------------------------ */

/*
 * The ABI wants every query compiled by host->matcher_new and sorter_new,
 * so that all adapters refuse the same ones.  Compiling is a good part of
 * a small query, so:
 *
 * - the sorter of the last sort document is kept in inst->sort and
 *   reused while the bytes are the same (sorters_cached, ../sorters.h);
 * - a filter of nothing but {field: scalar} pairs has a shape, its keys
 *   and their types.  Whether matcher_new accepts such a filter does not
 *   depend on the values (a scalar's bytes are framing, which we check
 *   with the same iterator).  Once it accepted one of a shape, the next
 *   ones of that shape are compiled only if a candidate must be matched
 *   (lm_consider): an exact range needs no matcher.
 */

static int lm_shape_type(bson_type_t t)
{
    switch (t) {
    case BSON_TYPE_UTF8:
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_BOOL:
    case BSON_TYPE_NULL:
    case BSON_TYPE_DATE_TIME:
    case BSON_TYPE_OID:
        return 1;
    default:
        return 0;
    }
}

/* 1 with *out filled when the filter has a shape. */
static int lm_filter_shape(const uint8_t *filter, uint32_t len, lm_shape *out)
{
    bson_iter_t it;
    out->b[0] = 'S';
    out->len = 1;
    if (filter == NULL || len == 0)
        return 0;
    if (!bson_iter_init_from_data(&it, filter, len))
        return 0;
    while (bson_iter_next(&it)) {
        uint32_t klen = bson_iter_key_len(&it);
        const char *key = bson_iter_key(&it);
        if (key[0] == '$' || !lm_shape_type(bson_iter_type(&it)) ||
            out->len + 2 + klen > LM_SHAPE_MAX)
            return 0;
        out->b[out->len++] = (uint8_t)bson_iter_type(&it);
        memcpy(out->b + out->len, key, klen + 1);
        out->len += klen + 1;
    }
    return it.err_off == 0;
}

static int lm_shape_known(const persistor_instance *inst, const lm_shape *sh)
{
    for (uint32_t i = 0; i < LM_SHAPES; i++)
        if (inst->shapes[i].len == sh->len && memcmp(inst->shapes[i].b, sh->b, sh->len) == 0)
            return 1;
    return 0;
}

/* The matcher of `filter`, or NULL (*m) when its shape is known good and
 * it may not be needed.  OK or matcher_new's error. */
int32_t lm_matcher(persistor_instance *inst, const uint8_t *filter, uint32_t len,
                          persistor_matcher **m, persistor_error *err)
{
    lm_shape sh;
    int shaped = lm_filter_shape(filter, len, &sh);
    *m = NULL;
    if (shaped && lm_shape_known(inst, &sh))
        return PERSISTOR_OK;
    int32_t rc = inst->host->matcher_new(filter, len, m, err);
    if (rc != PERSISTOR_OK) {
        *m = NULL;
        return rc;
    }
    if (shaped) {
        inst->shapes[inst->next_shape] = sh;
        inst->next_shape = (inst->next_shape + 1) % LM_SHAPES;
    }
    return PERSISTOR_OK;
}
