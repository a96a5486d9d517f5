/*
 * bson_check.c — the checks of bson_check.h, in one pass over the bytes.
 *
 * It runs on every document an application writes, so it keeps only a
 * stack of key pointers on the way down and spells out the path at fault
 * only when something is wrong.  libbson's iterator checks each element's
 * frame as it goes (err_off tells when it stopped on damage), so no
 * separate bson_validate pass is needed.
 */
#include "bson_check.h"

#include <stdio.h>
#include <string.h>

#include "error.h"
#include "utf8.h"

#define BSON_CHECK_MAX_DEPTH 100

typedef struct check_ctx {
    const char *what;
    persistor_error *err;
    const char *keys[BSON_CHECK_MAX_DEPTH + 1]; /* the path, one key a level */
} check_ctx;

static int32_t check_fail(const check_ctx *c, int depth, const char *reason)
{
    char path[512] = "";
    size_t o = 0;
    for (int i = 0; i < depth && o < sizeof path; i++)
        o += (size_t)snprintf(path + o, sizeof path - o, "%s%s", i ? "." : "", c->keys[i]);
    return error_set(c->err, PERSISTOR_E_INVALID, "%s: %s at '%s'", c->what, reason,
                     depth > 0 ? path : "(top level)");
}

static int32_t check_level(check_ctx *c, bson_iter_t *it, int depth)
{
    while (bson_iter_next(it)) {
        uint32_t key_len = bson_iter_key_len(it);
        c->keys[depth] = bson_iter_key(it);
        if (key_len == 0)
            return check_fail(c, depth, "empty field name");
        if (!utf8_valid(c->keys[depth], key_len, false))
            return check_fail(c, depth + 1, "field name is not valid UTF-8");
        if (BSON_ITER_HOLDS_UTF8(it)) {
            uint32_t len;
            const char *s = bson_iter_utf8(it, &len);
            if (!utf8_valid(s, len, true))
                return check_fail(c, depth + 1, "string is not valid UTF-8");
        } else if (BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it)) {
            bson_iter_t child;
            if (depth + 1 >= BSON_CHECK_MAX_DEPTH)
                return check_fail(c, depth + 1, "nested more than 100 levels");
            if (!bson_iter_recurse(it, &child))
                return check_fail(c, depth + 1, "malformed sub-document");
            int32_t rc = check_level(c, &child, depth + 1);
            if (rc != PERSISTOR_OK)
                return rc;
        }
    }
    return it->err_off ? check_fail(c, depth, "malformed BSON") : PERSISTOR_OK;
}

int32_t bson_check_document(const bson_t *doc, const char *what, persistor_error *err)
{
    check_ctx c = {.what = what, .err = err};
    bson_iter_t it;
    if (!bson_iter_init(&it, doc))
        return error_set(err, PERSISTOR_E_INVALID, "%s: not a valid BSON document", what);
    return check_level(&c, &it, 0);
}
