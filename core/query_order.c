/*
 * query_order.c — MongoDB's order over BSON values, and index keys that
 * keep it.
 *
 * The canonical type ranks, exact comparison of numbers across int32,
 * int64 and double, query_value_compare (what $gt, $lt and sort ask), and
 * query_index_key, whose bytes compare under memcmp as the values do under
 * query_value_compare.  Comparison and key encoding live together because
 * they must change together: a rank or number rule changed in one and not
 * the other would make an adapter's index disagree with its own filters.
 *
 * It must not do I/O, keep global state or trust its input: comparison
 * stays total on damaged values, and recursion stops at QUERY_MAX_DEPTH.
 * It does not walk paths or compile filters; query.c does, and lends its
 * document and path readers to query_index_key through query_order.h.
 */
#include "query_order.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "buffer.h"
#include "query.h"

#define SIGN_BIT 0x8000000000000000ull

/* ------------------------------------------------------------------------
 * Canonical type order (the ranks themselves are in query_order.h)
 * --------------------------------------------------------------------- */

int query_type_rank(bson_type_t t)
{
    switch (t) {
    case BSON_TYPE_MINKEY: return RANK_MINKEY;
    case BSON_TYPE_EOD:
    case BSON_TYPE_NULL:
    case BSON_TYPE_UNDEFINED: return RANK_NULL;
    case BSON_TYPE_DOUBLE:
    case BSON_TYPE_INT32:
    case BSON_TYPE_INT64:
    case BSON_TYPE_DECIMAL128: return RANK_NUMBER;
    case BSON_TYPE_UTF8:
    case BSON_TYPE_SYMBOL: return RANK_STRING;
    case BSON_TYPE_DOCUMENT: return RANK_DOCUMENT;
    case BSON_TYPE_ARRAY: return RANK_ARRAY;
    case BSON_TYPE_BINARY: return RANK_BINARY;
    case BSON_TYPE_OID: return RANK_OID;
    case BSON_TYPE_BOOL: return RANK_BOOL;
    case BSON_TYPE_DATE_TIME: return RANK_DATE;
    case BSON_TYPE_TIMESTAMP: return RANK_TIMESTAMP;
    case BSON_TYPE_REGEX: return RANK_REGEX;
    case BSON_TYPE_DBPOINTER: return RANK_DBPOINTER;
    case BSON_TYPE_CODE: return RANK_CODE;
    case BSON_TYPE_CODEWSCOPE: return RANK_CODEWSCOPE;
    case BSON_TYPE_MAXKEY:
    default: return RANK_MAXKEY;
    }
}

/* Bytewise, a proper prefix first: binary collation. */
static int bytes_compare(const void *a, size_t an, const void *b, size_t bn)
{
    int c = memcmp(a, b, an < bn ? an : bn);
    if (c != 0)
        return c < 0 ? -1 : 1;
    return (an > bn) - (an < bn);
}

/* ------------------------------------------------------------------------
 * Numbers: exact comparison across int32, int64 and double
 * --------------------------------------------------------------------- */

qnum query_num_of(const bson_iter_t *it)
{
    qnum n = {false, 0, 0.0};
    switch (bson_iter_type(it)) {
    case BSON_TYPE_INT32: n.is_int = true; n.i = bson_iter_int32(it); break;
    case BSON_TYPE_INT64: n.is_int = true; n.i = bson_iter_int64(it); break;
    case BSON_TYPE_DOUBLE: n.d = bson_iter_double(it); break;
    case BSON_TYPE_DECIMAL128: {
        /* No exact decimal arithmetic here: decimals compare as doubles. */
        bson_decimal128_t dec;
        char text[BSON_DECIMAL128_STRING];
        if (bson_iter_decimal128(it, &dec)) {
            bson_decimal128_to_string(&dec, text);
            n.d = strtod(text, NULL);
        }
        break;
    }
    default: break;
    }
    return n;
}

/* int64 against double without rounding the int64 through a double. */
static int int_double_compare(int64_t i, double d)
{
    if (isnan(d))
        return 1; /* NaN sorts below every number */
    if (d >= 9223372036854775808.0)
        return -1;
    if (d < -9223372036854775808.0)
        return 1;
    int64_t t = (int64_t)d; /* in range: truncation is exact */
    if (i != t)
        return i < t ? -1 : 1;
    double frac = d - (double)t;
    return (frac < 0) - (frac > 0);
}

static int num_compare(qnum a, qnum b)
{
    if (a.is_int && b.is_int)
        return (a.i > b.i) - (a.i < b.i);
    if (a.is_int)
        return int_double_compare(a.i, b.d);
    if (b.is_int)
        return -int_double_compare(b.i, a.d);
    if (isnan(a.d) || isnan(b.d))
        return (int)!isnan(a.d) - (int)!isnan(b.d);
    return (a.d > b.d) - (a.d < b.d);
}

/* ------------------------------------------------------------------------
 * query_value_compare: MongoDB's total order over BSON values
 * --------------------------------------------------------------------- */

static int compare_at(const bson_iter_t *a, const bson_iter_t *b, int depth);

static int string_compare(const bson_iter_t *a, const bson_iter_t *b)
{
    uint32_t an = 0, bn = 0;
    const char *as = BSON_ITER_HOLDS_SYMBOL(a) ? bson_iter_symbol(a, &an) : bson_iter_utf8(a, &an);
    const char *bs = BSON_ITER_HOLDS_SYMBOL(b) ? bson_iter_symbol(b, &bn) : bson_iter_utf8(b, &bn);
    return bytes_compare(as, an, bs, bn);
}

/* Documents: element by element (type, then name, then value), a shorter
 * one first.  Arrays the same, without names.  An unreadable child reads
 * as empty, which keeps the order total on damaged input. */
static int container_compare(const bson_iter_t *a, const bson_iter_t *b, int depth)
{
    if (depth >= QUERY_MAX_DEPTH)
        return 0;
    bool is_doc = BSON_ITER_HOLDS_DOCUMENT(a);
    bson_iter_t ca, cb;
    bool oka = bson_iter_recurse(a, &ca);
    bool okb = bson_iter_recurse(b, &cb);
    for (;;) {
        bool na = oka && bson_iter_next(&ca);
        bool nb = okb && bson_iter_next(&cb);
        if (!na || !nb)
            return (int)na - (int)nb;
        if (is_doc) {
            int ra = query_type_rank(bson_iter_type(&ca));
            int rb = query_type_rank(bson_iter_type(&cb));
            if (ra != rb)
                return ra < rb ? -1 : 1;
            int k = strcmp(bson_iter_key(&ca), bson_iter_key(&cb));
            if (k != 0)
                return k < 0 ? -1 : 1;
        }
        int c = compare_at(&ca, &cb, depth + 1);
        if (c != 0)
            return c;
    }
}

/* Length first, then subtype, then bytes, as MongoDB orders BinData. */
static int binary_compare(const bson_iter_t *a, const bson_iter_t *b)
{
    bson_subtype_t sa, sb;
    uint32_t an = 0, bn = 0;
    const uint8_t *ad = NULL, *bd = NULL;
    bson_iter_binary(a, &sa, &an, &ad);
    bson_iter_binary(b, &sb, &bn, &bd);
    if (an != bn)
        return an < bn ? -1 : 1;
    if (sa != sb)
        return sa < sb ? -1 : 1;
    return an ? bytes_compare(ad, an, bd, bn) : 0;
}

static int misc_compare(const bson_iter_t *a, const bson_iter_t *b)
{
    switch (bson_iter_type(a)) {
    case BSON_TYPE_OID: return bytes_compare(bson_iter_oid(a), 12, bson_iter_oid(b), 12);
    case BSON_TYPE_TIMESTAMP: {
        uint32_t at, ai, bt, bi;
        bson_iter_timestamp(a, &at, &ai);
        bson_iter_timestamp(b, &bt, &bi);
        if (at != bt)
            return at < bt ? -1 : 1;
        return (ai > bi) - (ai < bi);
    }
    case BSON_TYPE_REGEX: {
        const char *ao, *bo;
        const char *ap = bson_iter_regex(a, &ao), *bp = bson_iter_regex(b, &bo);
        int c = bytes_compare(ap, strlen(ap), bp, strlen(bp));
        return c != 0 ? c : bytes_compare(ao, strlen(ao), bo, strlen(bo));
    }
    case BSON_TYPE_DBPOINTER: {
        uint32_t an, bn;
        const char *ac, *bc;
        const bson_oid_t *ao, *bo;
        bson_iter_dbpointer(a, &an, &ac, &ao);
        bson_iter_dbpointer(b, &bn, &bc, &bo);
        int c = bytes_compare(ac, an, bc, bn);
        return c != 0 ? c : bytes_compare(ao, 12, bo, 12);
    }
    case BSON_TYPE_CODE: {
        uint32_t an, bn;
        const char *ac = bson_iter_code(a, &an), *bc = bson_iter_code(b, &bn);
        return bytes_compare(ac, an, bc, bn);
    }
    case BSON_TYPE_CODEWSCOPE: {
        /* Code, then the scope's raw bytes: a rare type, kept simple. */
        uint32_t an, bn, asl, bsl;
        const uint8_t *as, *bs;
        const char *ac = bson_iter_codewscope(a, &an, &asl, &as);
        const char *bc = bson_iter_codewscope(b, &bn, &bsl, &bs);
        int c = bytes_compare(ac, an, bc, bn);
        return c != 0 ? c : bytes_compare(as, asl, bs, bsl);
    }
    default: return 0; /* null, undefined, MinKey, MaxKey */
    }
}

static int compare_at(const bson_iter_t *a, const bson_iter_t *b, int depth)
{
    int ra = query_type_rank(bson_iter_type(a)), rb = query_type_rank(bson_iter_type(b));
    if (ra != rb)
        return ra < rb ? -1 : 1;
    switch (ra) {
    case RANK_NUMBER: return num_compare(query_num_of(a), query_num_of(b));
    case RANK_STRING: return string_compare(a, b);
    case RANK_DOCUMENT:
    case RANK_ARRAY: return container_compare(a, b, depth);
    case RANK_BINARY: return binary_compare(a, b);
    case RANK_BOOL: return (int)bson_iter_bool(a) - (int)bson_iter_bool(b);
    case RANK_DATE: {
        int64_t da = bson_iter_date_time(a), db = bson_iter_date_time(b);
        return (da > db) - (da < db);
    }
    default: return misc_compare(a, b);
    }
}

int query_value_compare(const bson_iter_t *a, const bson_iter_t *b)
{
    return compare_at(a, b, 0);
}

/* ------------------------------------------------------------------------
 * Index keys: bytes whose memcmp order is compare_at's order
 *
 * Each value is its rank byte and a payload that is prefix-free, so keys
 * compare field by field and a descending field can simply be complemented.
 * --------------------------------------------------------------------- */

static int32_t key_value(persistor_buffer *out, const bson_iter_t *it, int depth);
static int32_t key_payload(persistor_buffer *out, const bson_iter_t *it, int depth);

static int32_t key_u8(persistor_buffer *out, uint8_t b)
{
    return buffer_append(out, &b, 1);
}

static int32_t key_u64(persistor_buffer *out, uint64_t v)
{
    uint8_t be[8];
    for (int k = 7; k >= 0; k--, v >>= 8)
        be[k] = (uint8_t)v;
    return buffer_append(out, be, sizeof be);
}

/* 0x00 becomes 0x00 0xFF and 0x00 0x00 ends the string, so a prefix sorts
 * first and embedded NULs survive. */
static int32_t key_bytes(persistor_buffer *out, const void *data, size_t len)
{
    static const uint8_t nul[2] = {0x00, 0xFF}, end[2] = {0x00, 0x00};
    const uint8_t *p = data;
    int32_t rc = PERSISTOR_OK;
    while (rc == PERSISTOR_OK && len > 0) {
        const uint8_t *z = memchr(p, 0, len);
        size_t run = z ? (size_t)(z - p) : len;
        rc = buffer_append(out, p, (uint32_t)run);
        if (rc == PERSISTOR_OK && z != NULL)
            rc = buffer_append(out, nul, 2);
        run += z != NULL;
        p += run;
        len -= run;
    }
    return rc == PERSISTOR_OK ? buffer_append(out, end, 2) : rc;
}

/* A double as 8 bytes in numeric order: NaN lowest, -0.0 as 0.0. */
static uint64_t double_key(double d)
{
    if (isnan(d))
        return 0;
    if (d == 0)
        d = 0.0;
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return (u & SIGN_BIT) ? ~u : (u | SIGN_BIT);
}

/* Numbers: the nearest double, then the int64's exact distance from it
 * (0 for doubles), so 1 == 1LL == 1.0 and 2^53+1 > 2^53. */
static int32_t key_number(persistor_buffer *out, qnum n)
{
    double r = n.is_int ? (double)n.i : n.d;
    int64_t residual = 0;
    if (n.is_int) /* r may be 2^63, which no int64 holds */
        residual = r >= 9223372036854775808.0 ? (n.i - INT64_MAX) - 1 : n.i - (int64_t)r;
    int32_t rc = key_u64(out, double_key(r));
    return rc == PERSISTOR_OK ? key_u64(out, (uint64_t)residual ^ SIGN_BIT) : rc;
}

/* Elements then a 0 byte; every element starts with its non-zero rank.
 * A document element is rank, name, payload: compare_at's order. */
static int32_t key_container(persistor_buffer *out, const bson_iter_t *it, int depth)
{
    if (depth >= QUERY_MAX_DEPTH)
        return PERSISTOR_E_INVALID;
    bool is_doc = BSON_ITER_HOLDS_DOCUMENT(it);
    bson_iter_t el;
    if (!bson_iter_recurse(it, &el))
        return PERSISTOR_E_INVALID;
    while (bson_iter_next(&el)) {
        int32_t rc = key_u8(out, (uint8_t)query_type_rank(bson_iter_type(&el)));
        if (rc == PERSISTOR_OK && is_doc)
            rc = key_bytes(out, bson_iter_key(&el), strlen(bson_iter_key(&el)));
        if (rc == PERSISTOR_OK)
            rc = key_payload(out, &el, depth + 1);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    return el.err_off == 0 ? key_u8(out, 0) : PERSISTOR_E_INVALID;
}

/* Binary: length first, as binary_compare orders it. */
static int32_t key_binary(persistor_buffer *out, const bson_iter_t *it)
{
    bson_subtype_t sub;
    uint32_t len = 0;
    const uint8_t *data = NULL;
    bson_iter_binary(it, &sub, &len, &data);
    int32_t rc = key_u64(out, ((uint64_t)len << 8) | (uint8_t)sub);
    return rc == PERSISTOR_OK ? buffer_append(out, data, len) : rc;
}

static int32_t key_misc(persistor_buffer *out, const bson_iter_t *it)
{
    uint32_t n = 0, scope_len = 0, t = 0, i = 0;
    const char *s, *opts;
    const uint8_t *scope;
    const bson_oid_t *oid;
    int32_t rc;
    switch (bson_iter_type(it)) {
    case BSON_TYPE_OID: return buffer_append(out, bson_iter_oid(it), 12);
    case BSON_TYPE_TIMESTAMP:
        bson_iter_timestamp(it, &t, &i);
        return key_u64(out, ((uint64_t)t << 32) | i);
    case BSON_TYPE_REGEX:
        s = bson_iter_regex(it, &opts);
        rc = key_bytes(out, s, strlen(s));
        return rc == PERSISTOR_OK ? key_bytes(out, opts, strlen(opts)) : rc;
    case BSON_TYPE_DBPOINTER:
        bson_iter_dbpointer(it, &n, &s, &oid);
        rc = key_bytes(out, s, n);
        return rc == PERSISTOR_OK ? buffer_append(out, oid, 12) : rc;
    case BSON_TYPE_CODE:
        s = bson_iter_code(it, &n);
        return key_bytes(out, s, n);
    case BSON_TYPE_CODEWSCOPE:
        s = bson_iter_codewscope(it, &n, &scope_len, &scope);
        rc = key_bytes(out, s, n);
        return rc == PERSISTOR_OK ? key_bytes(out, scope, scope_len) : rc;
    default: return PERSISTOR_OK; /* null, undefined, MinKey, MaxKey: rank alone */
    }
}

static int32_t key_payload(persistor_buffer *out, const bson_iter_t *it, int depth)
{
    uint32_t n = 0;
    const char *s;
    switch (query_type_rank(bson_iter_type(it))) {
    case RANK_NUMBER: return key_number(out, query_num_of(it));
    case RANK_STRING:
        s = BSON_ITER_HOLDS_SYMBOL(it) ? bson_iter_symbol(it, &n) : bson_iter_utf8(it, &n);
        return key_bytes(out, s, n);
    case RANK_DOCUMENT:
    case RANK_ARRAY: return key_container(out, it, depth);
    case RANK_BINARY: return key_binary(out, it);
    case RANK_BOOL: return key_u8(out, bson_iter_bool(it) ? 1 : 0);
    case RANK_DATE: return key_u64(out, (uint64_t)bson_iter_date_time(it) ^ SIGN_BIT);
    default: return key_misc(out, it);
    }
}

static int32_t key_value(persistor_buffer *out, const bson_iter_t *it, int depth)
{
    int32_t rc = key_u8(out, (uint8_t)query_type_rank(bson_iter_type(it)));
    return rc == PERSISTOR_OK ? key_payload(out, it, depth) : rc;
}

/* Arrays index as one value (no multikey), and a path does not fan out
 * through arrays of documents: "a.b" over an array "a" indexes as null. */
int32_t query_index_key(const persistor_index_spec *index, const uint8_t *doc, uint32_t len,
                        persistor_buffer *out)
{
    bson_t b;
    if (index == NULL || out == NULL || !query_doc_frame(&b, doc, len))
        return PERSISTOR_E_INVALID;
    int32_t rc = buffer_set(out, NULL, 0);
    for (uint32_t k = 0; rc == PERSISTOR_OK && k < index->n_keys; k++) {
        const char *field = index->keys[k].field;
        if (field == NULL || query_path_depth(field) > QUERY_MAX_DEPTH)
            return PERSISTOR_E_INVALID;
        uint32_t start = out->len;
        bson_iter_t it;
        if (query_path_lookup(&b, field, &it))
            rc = key_value(out, &it, 0);
        else
            rc = key_u8(out, RANK_NULL);
        if (rc == PERSISTOR_OK && index->keys[k].direction < 0)
            for (uint32_t i = start; i < out->len; i++)
                out->data[i] = (uint8_t)~out->data[i];
    }
    return rc;
}
