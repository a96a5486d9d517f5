/*
 * json.c — strict JSON (RFC 8259) text straight into a bson_t.
 *
 * A hand-written recursive-descent parser rather than libbson's
 * bson_new_from_json, because we need what that one does not give:
 * "source:line:column" errors a person can act on, duplicate keys refused,
 * a fixed depth limit, and exactly the relaxed Extended JSON wrappers
 * persistor prints (see json.h) and no others.  What a wrapper stands
 * for is json_ext.c's, and so is printing BSON back as JSON; this file
 * finds wrapper objects and places their values and errors.
 *
 * Shape of the parser:
 *   - values are appended to their parent document as soon as they are
 *     read; there is no intermediate tree;
 *   - keys are decoded into one arena (`keys`) and referred to by offset,
 *     because the arena may move while a nested value is being parsed;
 *   - duplicate keys are found with one hash set for the whole parse,
 *     keyed by (object serial number, key), so each object costs nothing
 *     to open or close and the check is linear overall;
 *   - an object whose first key is a wrapper name ("$date"...) has that
 *     first value parsed into a scratch document; if the object closes
 *     right after it, it was a wrapper and is converted, otherwise the
 *     scratch value is copied into an ordinary document and parsing goes
 *     on.  No input is ever read twice, so nesting cannot blow up.
 *
 * Must not: read past text[len) (the input need not be NUL-terminated),
 * depend on the C locale for numbers, or leave `out` half-filled.
 */
#include "json.h"
#include "utf8.h"

#include <errno.h>
#include <limits.h>
#include <locale.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json_ext.h"

#define JSON_MAX_DEPTH 100

/* How many bytes of a key or number are quoted back in a message. */
#define JSON_QUOTE_MAX 64

/* ------------------------------------------------------------------------
 * Growable byte buffers.  bson_realloc aborts on exhaustion, exactly as
 * libbson does when the document itself grows, so there is no E_NOMEM
 * path to test that could never be reached in the bson_t anyway.
 * --------------------------------------------------------------------- */

typedef struct json_buf {
    char *data;
    size_t len;
    size_t cap;
} json_buf;

static void buf_reserve(json_buf *b, size_t extra)
{
    if (b->cap - b->len >= extra)
        return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap - b->len < extra)
        cap *= 2;
    b->data = bson_realloc(b->data, cap);
    b->cap = cap;
}

static void buf_append(json_buf *b, const void *src, size_t n)
{
    if (n == 0)
        return;
    buf_reserve(b, n);
    memcpy(b->data + b->len, src, n);
    b->len += n;
}

static void buf_putc(json_buf *b, char c)
{
    buf_append(b, &c, 1);
}

/* ------------------------------------------------------------------------
 * The parser and its errors
 * --------------------------------------------------------------------- */

/* One slot of the duplicate-key set; object == 0 marks it free.  Slots of
 * objects already closed stay behind: their serial never comes back, so
 * they are never compared again. */
typedef struct json_seen {
    uint64_t hash;
    size_t off;
    uint32_t len;
    uint32_t object;
} json_seen;

struct json_parser {
    const char *text;
    size_t len;
    size_t pos;
    const char *source;
    persistor_error *err;
    json_buf keys;        /* decoded keys of the open objects, array indexes */
    json_buf str;         /* the string value or number being converted */
    json_seen *seen;      /* open-addressing set, capacity a power of two */
    size_t seen_cap;
    size_t seen_used;
    uint32_t next_object; /* serial of the last object opened */
};

/* A key inside p->keys. */
typedef struct json_key {
    size_t off;
    uint32_t len;
} json_key;

static const char *key_ptr(const json_parser *p, size_t off)
{
    return p->keys.data ? p->keys.data + off : "";
}

static int json_peek(const json_parser *p)
{
    return p->pos < p->len ? (unsigned char)p->text[p->pos] : -1;
}

static void skip_ws(json_parser *p)
{
    while (p->pos < p->len) {
        char c = p->text[p->pos];
        if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
            return;
        p->pos++;
    }
}

/* Line and column are only needed on failure, so they are recomputed here
 * instead of being tracked on every byte. */
static int32_t json_fail(json_parser *p, size_t at, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int32_t json_fail(json_parser *p, size_t at, const char *fmt, ...)
{
    size_t line = 1;
    size_t line_start = 0;
    char what[PERSISTOR_ERROR_MESSAGE_MAX];
    va_list ap;

    for (size_t i = 0; i < at && i < p->len; i++) {
        if (p->text[i] == '\n') {
            line++;
            line_start = i + 1;
        }
    }
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    return error_set(p->err, PERSISTOR_E_INVALID, "%s:%zu:%zu: %s", p->source, line,
                     at - line_start + 1, what);
}

static int32_t fail_too_large(json_parser *p, size_t at)
{
    return json_fail(p, at, "document too large for BSON");
}

/* Where to cut out[0..o) so that it does not end inside a UTF-8 sequence. */
static size_t utf8_whole(const char *out, size_t o)
{
    size_t j = o;

    while (j > 0 && ((unsigned char)out[j - 1] & 0xC0) == 0x80)
        j--;
    if (j == 0 || (unsigned char)out[j - 1] < 0xC0)
        return o;
    unsigned char lead = (unsigned char)out[j - 1];
    size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : 2;
    return o - (j - 1) < need ? j - 1 : o;
}

/* A key or number fit for a message: control characters, quotes and
 * backslashes escaped, cut at JSON_QUOTE_MAX bytes on a character
 * boundary. */
static void quote_for_message(const char *s, size_t n, char out[JSON_QUOTE_MAX * 4 + 4])
{
    size_t o = 0;
    size_t i = 0;

    for (; i < n && o < JSON_QUOTE_MAX; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            o += (size_t)snprintf(out + o, 5, "\\x%02X", c);
        else if (c == '"' || c == '\\')
            o += (size_t)snprintf(out + o, 5, "\\%c", c);
        else
            out[o++] = (char)c;
    }
    if (i < n) {
        o = utf8_whole(out, o);
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
}

/* ------------------------------------------------------------------------
 * Duplicate keys
 * --------------------------------------------------------------------- */

static uint64_t key_hash(const char *s, size_t n, uint32_t object)
{
    uint64_t h = 0xcbf29ce484222325u ^ ((uint64_t)object * 0x9E3779B97F4A7C15u);
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3u;
    }
    return h ^ (h >> 29);
}

static void seen_grow(json_parser *p)
{
    size_t cap = p->seen_cap ? p->seen_cap * 2 : 64;
    json_seen *slots = bson_malloc0(cap * sizeof *slots);

    for (size_t i = 0; i < p->seen_cap; i++) {
        json_seen *s = &p->seen[i];
        if (s->object == 0)
            continue;
        size_t j = (size_t)s->hash & (cap - 1);
        while (slots[j].object != 0)
            j = (j + 1) & (cap - 1);
        slots[j] = *s;
    }
    bson_free(p->seen);
    p->seen = slots;
    p->seen_cap = cap;
}

/* Remember key k of `object`; false if that object already had it. */
static bool seen_add(json_parser *p, uint32_t object, json_key k)
{
    if ((p->seen_used + 1) * 2 > p->seen_cap)
        seen_grow(p);
    const char *key = key_ptr(p, k.off);
    uint64_t h = key_hash(key, k.len, object);
    size_t mask = p->seen_cap - 1;
    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        json_seen *s = &p->seen[i];
        if (s->object == 0) {
            *s = (json_seen){.hash = h, .off = k.off, .len = k.len, .object = object};
            p->seen_used++;
            return true;
        }
        if (s->object == object && s->hash == h && s->len == k.len &&
            memcmp(key_ptr(p, s->off), key, k.len) == 0)
            return false;
    }
}

/* ------------------------------------------------------------------------
 * Strings
 * --------------------------------------------------------------------- */

static void put_utf8(json_buf *out, uint32_t cp)
{
    char b[4];
    size_t n;

    if (cp < 0x80) {
        b[0] = (char)cp;
        n = 1;
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6);
        b[1] = (char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12);
        b[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        b[0] = (char)(0xF0 | cp >> 18);
        b[1] = (char)(0x80 | (cp >> 12 & 0x3F));
        b[2] = (char)(0x80 | (cp >> 6 & 0x3F));
        b[3] = (char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    buf_append(out, b, n);
}

static bool read_hex4(const json_parser *p, size_t at, uint32_t *out)
{
    uint32_t v = 0;

    if (at > p->len || p->len - at < 4)
        return false;
    for (size_t i = at; i < at + 4; i++) {
        char c = p->text[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (uint32_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (uint32_t)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (uint32_t)(c - 'A' + 10);
        else
            return false;
    }
    *out = v;
    return true;
}

/* \uXXXX, possibly the first half of a surrogate pair; p->pos is just past
 * the 'u' and `at` is the backslash. */
static int32_t parse_unicode_escape(json_parser *p, json_buf *out, size_t at, bool is_key)
{
    uint32_t cp;
    uint32_t low;

    if (!read_hex4(p, p->pos, &cp))
        return json_fail(p, at, "invalid \\u escape: expected four hex digits");
    p->pos += 4;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
        bool paired = p->len - p->pos >= 6 && p->text[p->pos] == '\\' &&
                      p->text[p->pos + 1] == 'u' && read_hex4(p, p->pos + 2, &low) &&
                      low >= 0xDC00 && low <= 0xDFFF;
        if (!paired)
            return json_fail(p, at, "unpaired surrogate \\u%04X in string", (unsigned)cp);
        p->pos += 6;
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
    } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
        return json_fail(p, at, "unpaired surrogate \\u%04X in string", (unsigned)cp);
    }
    /* BSON keys are C strings: a NUL would silently cut the key short. */
    if (cp == 0 && is_key)
        return json_fail(p, at, "\\u0000 is not allowed in a key");
    put_utf8(out, cp);
    return PERSISTOR_OK;
}

/* One escape; p->pos is on the backslash and a byte follows it. */
static int32_t parse_escape(json_parser *p, json_buf *out, bool is_key)
{
    static const char from[] = "\"\\/bfnrt";
    static const char to[] = "\"\\/\b\f\n\r\t";
    size_t at = p->pos;
    char e = p->text[at + 1];
    const char *hit = e != '\0' ? strchr(from, e) : NULL;

    p->pos += 2;
    if (hit != NULL) {
        buf_putc(out, to[hit - from]);
        return PERSISTOR_OK;
    }
    if (e == 'u')
        return parse_unicode_escape(p, out, at, is_key);
    if (e > 0x20 && e < 0x7f)
        return json_fail(p, at, "invalid escape \\%c in string", e);
    return json_fail(p, at, "invalid escape: byte 0x%02X after '\\' in string",
                     (unsigned char)e);
}

/* Plain bytes are copied in runs; everything else is looked at alone. */
static bool is_plain(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

/* Decode the string at p->pos (on its opening quote), appending it to out. */
static int32_t parse_string(json_parser *p, json_buf *out, bool is_key)
{
    size_t open = p->pos++;

    for (;;) {
        size_t run = p->pos;
        while (p->pos < p->len && is_plain((unsigned char)p->text[p->pos]))
            p->pos++;
        buf_append(out, p->text + run, p->pos - run);
        if (p->pos >= p->len)
            return json_fail(p, open, "unterminated string");
        unsigned char c = (unsigned char)p->text[p->pos];
        if (c == '"') {
            p->pos++;
            return PERSISTOR_OK;
        }
        if (c == '\\') {
            if (p->pos + 1 >= p->len)
                return json_fail(p, open, "unterminated string");
            int32_t rc = parse_escape(p, out, is_key);
            if (rc != PERSISTOR_OK)
                return rc;
            continue;
        }
        if (c < 0x20)
            return json_fail(p, p->pos, "control character 0x%02X in string must be escaped", c);
        size_t n = utf8_sequence((const unsigned char *)p->text + p->pos, p->len - p->pos);
        if (n == 0)
            return json_fail(p, p->pos, "invalid UTF-8 in string");
        buf_append(out, p->text + p->pos, n);
        p->pos += n;
    }
}

static int32_t parse_string_value(json_parser *p, bson_t *parent, json_key key)
{
    size_t at = p->pos;

    p->str.len = 0;
    int32_t rc = parse_string(p, &p->str, false);
    if (rc != PERSISTOR_OK)
        return rc;
    if (p->str.len >= INT32_MAX)
        return fail_too_large(p, at);
    if (!bson_append_utf8(parent, key_ptr(p, key.off), (int)key.len,
                          p->str.data ? p->str.data : "", (int)p->str.len))
        return fail_too_large(p, at);
    return PERSISTOR_OK;
}

/* ------------------------------------------------------------------------
 * Numbers.  The grammar and the conversions are shared with json_ext.c,
 * which reads the numbers inside "$numberLong" and friends with them.
 * --------------------------------------------------------------------- */

static bool is_digit(const char *s, size_t n, size_t i)
{
    return i < n && s[i] >= '0' && s[i] <= '9';
}

size_t json_number_scan(const char *s, size_t n, bool *integral, const char **what)
{
    size_t i = 0;

    *integral = true;
    *what = NULL;
    if (i < n && s[i] == '-')
        i++;
    if (!is_digit(s, n, i)) {
        *what = "expected a digit after '-'";
        return i;
    }
    if (s[i++] == '0' && is_digit(s, n, i)) {
        *what = "leading zeros are not allowed in numbers";
        return i;
    }
    while (is_digit(s, n, i))
        i++;
    if (i < n && s[i] == '.') {
        *integral = false;
        if (!is_digit(s, n, ++i)) {
            *what = "expected a digit after the decimal point";
            return i;
        }
        while (is_digit(s, n, i))
            i++;
    }
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        *integral = false;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        if (!is_digit(s, n, i)) {
            *what = "expected a digit in the exponent";
            return i;
        }
        while (is_digit(s, n, i))
            i++;
    }
    return i;
}

bool json_integer_value(const char *s, size_t n, int64_t *out)
{
    bool negative = s[0] == '-';
    uint64_t limit = negative ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    uint64_t v = 0;

    for (size_t i = negative; i < n; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (limit - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (!negative)
        *out = (int64_t)v;
    else
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    return true;
}

/* strtod follows LC_NUMERIC, so the '.' is swapped for the locale's own
 * decimal point: the grammar was checked above, strtod only converts. */
bool json_double_value(json_parser *p, const char *s, size_t n, double *out)
{
    const char *point = localeconv()->decimal_point;

    p->str.len = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '.')
            buf_append(&p->str, point, strlen(point));
        else
            buf_putc(&p->str, s[i]);
    }
    buf_putc(&p->str, '\0');
    errno = 0;
    double d = strtod(p->str.data, NULL);
    if (errno == ERANGE && isinf(d))
        return false;
    *out = d;
    return true;
}

static int32_t append_number(json_parser *p, bson_t *parent, json_key key, size_t at,
                             size_t n, bool integral)
{
    const char *s = p->text + at;
    const char *k = key_ptr(p, key.off);
    int64_t i64;
    double d;
    bool ok;

    if (integral && json_integer_value(s, n, &i64)) {
        if (i64 >= INT32_MIN && i64 <= INT32_MAX)
            ok = bson_append_int32(parent, k, (int)key.len, (int32_t)i64);
        else
            ok = bson_append_int64(parent, k, (int)key.len, i64);
    } else if (json_double_value(p, s, n, &d)) {
        ok = bson_append_double(parent, k, (int)key.len, d);
    } else {
        char q[JSON_QUOTE_MAX * 4 + 4];
        quote_for_message(s, n, q);
        return json_fail(p, at, "number %s is out of range for a double", q);
    }
    return ok ? PERSISTOR_OK : fail_too_large(p, at);
}

static int32_t parse_number(json_parser *p, bson_t *parent, json_key key)
{
    size_t at = p->pos;
    bool integral;
    const char *what;
    size_t n = json_number_scan(p->text + at, p->len - at, &integral, &what);

    if (what != NULL)
        return json_fail(p, at + n, "%s", what);
    p->pos += n;
    return append_number(p, parent, key, at, n, integral);
}

/* ------------------------------------------------------------------------
 * Literals
 * --------------------------------------------------------------------- */

static bool match_word(json_parser *p, const char *word)
{
    size_t n = strlen(word);

    if (p->len - p->pos < n || memcmp(p->text + p->pos, word, n) != 0)
        return false;
    p->pos += n;
    return true;
}

static int32_t parse_literal(json_parser *p, bson_t *parent, json_key key)
{
    size_t at = p->pos;
    const char *k = key_ptr(p, key.off);
    bool ok;

    if (match_word(p, "true"))
        ok = bson_append_bool(parent, k, (int)key.len, true);
    else if (match_word(p, "false"))
        ok = bson_append_bool(parent, k, (int)key.len, false);
    else if (match_word(p, "null"))
        ok = bson_append_null(parent, k, (int)key.len);
    else
        return json_fail(p, at, "invalid literal: expected true, false or null");
    return ok ? PERSISTOR_OK : fail_too_large(p, at);
}

/* ------------------------------------------------------------------------
 * Extended JSON wrappers: what one stands for is json_ext.c's; where its
 * value goes, and where an error is reported, is the parser's.
 * --------------------------------------------------------------------- */

/* Append the value of a one-key wrapper object found at `at`. */
static int32_t append_wrapper(json_parser *p, bson_t *parent, json_key key,
                              json_ext_wrapper kind, const bson_iter_t *it, size_t at)
{
    bson_value_t value;
    const char *what = json_ext_value(p, kind, it, p->text[at], &value);

    if (what != NULL)
        return json_fail(p, at, "%s", what);
    if (!bson_append_value(parent, key_ptr(p, key.off), (int)key.len, &value))
        return fail_too_large(p, at);
    return PERSISTOR_OK;
}

/* ------------------------------------------------------------------------
 * Objects and arrays
 * --------------------------------------------------------------------- */

static int32_t parse_value(json_parser *p, bson_t *parent, json_key key, int depth);

/* A key, its ':' and the whitespace after it.  `expected` is the message
 * when no string is there. */
static int32_t parse_key(json_parser *p, uint32_t object, const char *expected, json_key *k)
{
    size_t at = p->pos;

    if (json_peek(p) != '"')
        return json_fail(p, at, "%s", expected);
    k->off = p->keys.len;
    int32_t rc = parse_string(p, &p->keys, true);
    if (rc != PERSISTOR_OK)
        return rc;
    if (p->keys.len - k->off >= INT32_MAX)
        return fail_too_large(p, at);
    k->len = (uint32_t)(p->keys.len - k->off);
    if (!seen_add(p, object, *k)) {
        char q[JSON_QUOTE_MAX * 4 + 4];
        quote_for_message(key_ptr(p, k->off), k->len, q);
        return json_fail(p, at, "duplicate key \"%s\"", q);
    }
    skip_ws(p);
    if (json_peek(p) != ':')
        return json_fail(p, p->pos, "expected ':' after an object key");
    p->pos++;
    skip_ws(p);
    return PERSISTOR_OK;
}

/* The members after the first, up to and including the '}'. */
static int32_t parse_more_members(json_parser *p, bson_t *doc, uint32_t object, int depth)
{
    for (;;) {
        json_key k;
        skip_ws(p);
        int c = json_peek(p);
        if (c == '}') {
            p->pos++;
            return PERSISTOR_OK;
        }
        if (c != ',')
            return json_fail(p, p->pos, "expected ',' or '}' after an object member");
        p->pos++;
        skip_ws(p);
        if (json_peek(p) == '}')
            return json_fail(p, p->pos, "trailing comma before '}'");
        int32_t rc = parse_key(p, object, "expected a string key after ','", &k);
        if (rc == PERSISTOR_OK)
            rc = parse_value(p, doc, k, depth + 1);
        if (rc != PERSISTOR_OK)
            return rc;
    }
}

/* An ordinary (non-wrapper) object under `key` whose first key was read.
 * `first_value` is that key's value if it was already parsed into a
 * scratch document, else NULL. */
static int32_t parse_document(json_parser *p, bson_t *parent, json_key key, size_t open,
                              json_key first, const bson_iter_t *first_value, uint32_t object,
                              int depth)
{
    bson_t child;
    int32_t rc = PERSISTOR_OK;

    if (!bson_append_document_begin(parent, key_ptr(p, key.off), (int)key.len, &child))
        return fail_too_large(p, open);
    if (first_value != NULL) {
        if (!bson_append_iter(&child, key_ptr(p, first.off), (int)first.len, first_value))
            rc = fail_too_large(p, open);
    } else {
        rc = parse_value(p, &child, first, depth + 1);
    }
    if (rc == PERSISTOR_OK)
        rc = parse_more_members(p, &child, object, depth);
    /* Always close the child: the parent refuses all appends until then,
     * bson_reinit included. */
    if (!bson_append_document_end(parent, &child) && rc == PERSISTOR_OK)
        rc = fail_too_large(p, open);
    return rc;
}

/* An object whose first key names a wrapper: parse that value aside, then
 * let the next byte decide between a wrapper and an ordinary object. */
static int32_t parse_maybe_wrapper(json_parser *p, bson_t *parent, json_key key, size_t open,
                                   json_key first, json_ext_wrapper kind, uint32_t object,
                                   int depth)
{
    size_t value_at = p->pos;
    bson_t scratch;
    bson_iter_t it;

    bson_init(&scratch);
    int32_t rc = parse_value(p, &scratch, first, depth + 1);
    if (rc == PERSISTOR_OK && (!bson_iter_init(&it, &scratch) || !bson_iter_next(&it)))
        rc = fail_too_large(p, value_at); /* cannot happen: the value was just appended */
    if (rc == PERSISTOR_OK) {
        skip_ws(p);
        if (json_peek(p) == '}') {
            p->pos++;
            rc = append_wrapper(p, parent, key, kind, &it, value_at);
        } else {
            rc = parse_document(p, parent, key, open, first, &it, object, depth);
        }
    }
    bson_destroy(&scratch);
    return rc;
}

static int32_t append_empty_document(json_parser *p, bson_t *parent, json_key key, size_t at)
{
    bson_t child;

    if (!bson_append_document_begin(parent, key_ptr(p, key.off), (int)key.len, &child))
        return fail_too_large(p, at);
    if (!bson_append_document_end(parent, &child))
        return fail_too_large(p, at);
    return PERSISTOR_OK;
}

static int32_t check_depth(json_parser *p, int depth)
{
    if (depth > JSON_MAX_DEPTH)
        return json_fail(p, p->pos, "nesting deeper than %d levels", JSON_MAX_DEPTH);
    return PERSISTOR_OK;
}

/* An object value (not the top level, which is always a plain document). */
static int32_t parse_object(json_parser *p, bson_t *parent, json_key key, int depth)
{
    size_t open = p->pos;
    size_t mark = p->keys.len;
    json_key first;
    int32_t rc = check_depth(p, depth);

    if (rc != PERSISTOR_OK)
        return rc;
    p->pos++;
    skip_ws(p);
    if (json_peek(p) == '}') {
        p->pos++;
        return append_empty_document(p, parent, key, open);
    }
    uint32_t object = ++p->next_object;
    rc = parse_key(p, object, "expected a string key or '}'", &first);
    if (rc != PERSISTOR_OK)
        return rc;
    json_ext_wrapper kind = json_ext_wrapper_of(key_ptr(p, first.off), first.len);
    if (kind != JSON_EXT_NONE)
        rc = parse_maybe_wrapper(p, parent, key, open, first, kind, object, depth);
    else
        rc = parse_document(p, parent, key, open, first, NULL, object, depth);
    /* This object's keys are no longer needed for duplicate checks. */
    p->keys.len = mark;
    return rc;
}

/* One array element: its key is its index, kept in the arena like any
 * other key for as long as the value is being parsed. */
static int32_t parse_element(json_parser *p, bson_t *array, uint32_t index, int depth)
{
    char digits[16];
    const char *s;
    size_t n = bson_uint32_to_string(index, &s, digits, sizeof digits);
    json_key k = {.off = p->keys.len, .len = (uint32_t)n};

    buf_append(&p->keys, s, n);
    int32_t rc = parse_value(p, array, k, depth);
    p->keys.len = k.off;
    return rc;
}

static int32_t parse_elements(json_parser *p, bson_t *array, int depth)
{
    skip_ws(p);
    if (json_peek(p) == ']') {
        p->pos++;
        return PERSISTOR_OK;
    }
    for (uint32_t i = 0;; i++) {
        int32_t rc = parse_element(p, array, i, depth + 1);
        if (rc != PERSISTOR_OK)
            return rc;
        skip_ws(p);
        int c = json_peek(p);
        if (c == ']') {
            p->pos++;
            return PERSISTOR_OK;
        }
        if (c != ',')
            return json_fail(p, p->pos, "expected ',' or ']' after an array element");
        p->pos++;
        skip_ws(p);
        if (json_peek(p) == ']')
            return json_fail(p, p->pos, "trailing comma before ']'");
    }
}

static int32_t parse_array(json_parser *p, bson_t *parent, json_key key, int depth)
{
    size_t open = p->pos;
    bson_t child;
    int32_t rc = check_depth(p, depth);

    if (rc != PERSISTOR_OK)
        return rc;
    p->pos++;
    if (!bson_append_array_begin(parent, key_ptr(p, key.off), (int)key.len, &child))
        return fail_too_large(p, open);
    rc = parse_elements(p, &child, depth);
    if (!bson_append_array_end(parent, &child) && rc == PERSISTOR_OK)
        rc = fail_too_large(p, open);
    return rc;
}

/* Any value at p->pos (whitespace already skipped), appended under key.
 * `depth` is the nesting level the value has if it is an object or
 * array; the top-level object is level 1. */
static int32_t parse_value(json_parser *p, bson_t *parent, json_key key, int depth)
{
    int c = json_peek(p);

    if (c == '{')
        return parse_object(p, parent, key, depth);
    if (c == '[')
        return parse_array(p, parent, key, depth);
    if (c == '"')
        return parse_string_value(p, parent, key);
    if (c == '-' || (c >= '0' && c <= '9'))
        return parse_number(p, parent, key);
    if (c == 't' || c == 'f' || c == 'n')
        return parse_literal(p, parent, key);
    return json_fail(p, p->pos,
                     "expected a value (object, array, string, number, true, false or null)");
}

/* The top-level object goes straight into `out`; it is never taken for a
 * wrapper, so {"$date": "..."} at the top is a document with a "$date"
 * string, and reads back the way json_from_bson prints it. */
static int32_t parse_top(json_parser *p, bson_t *out)
{
    json_key first;
    int32_t rc;

    skip_ws(p);
    if (json_peek(p) != '{')
        return json_fail(p, p->pos, "expected a JSON object at the top level");
    p->pos++;
    skip_ws(p);
    if (json_peek(p) == '}') {
        p->pos++;
    } else {
        uint32_t object = ++p->next_object;
        rc = parse_key(p, object, "expected a string key or '}'", &first);
        if (rc == PERSISTOR_OK)
            rc = parse_value(p, out, first, 2);
        if (rc == PERSISTOR_OK)
            rc = parse_more_members(p, out, object, 1);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    skip_ws(p);
    if (p->pos < p->len)
        return json_fail(p, p->pos, "trailing characters after the JSON value");
    return PERSISTOR_OK;
}

int32_t json_to_bson(const char *text, size_t len, const char *source, bson_t *out,
                     persistor_error *err)
{
    json_parser p = {
        .text = text != NULL ? text : "",
        .len = text != NULL ? len : 0,
        .source = source != NULL ? source : "-",
        .err = err,
    };

    if (out == NULL)
        return error_set(err, PERSISTOR_E_INVALID, "%s: no document to parse into", p.source);
    int32_t rc = parse_top(&p, out);
    bson_free(p.keys.data);
    bson_free(p.str.data);
    bson_free(p.seen);
    if (rc != PERSISTOR_OK)
        bson_reinit(out);
    return rc;
}
