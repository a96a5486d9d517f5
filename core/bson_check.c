/*
 * bson_check.c — the checks of bson_check.h.  Reads only; one pass.
 */
#include "bson_check.h"

#include <stdio.h>
#include <string.h>

#include "error.h"

#define BSON_CHECK_MAX_DEPTH 100

typedef struct check_ctx {
    const char *what;
    persistor_error *err;
    char path[512];
} check_ctx;

static int32_t check_fail(check_ctx *c, const char *reason)
{
    return error_set(c->err, PERSISTOR_E_INVALID, "%s: %s at '%s'", c->what, reason,
                     c->path[0] ? c->path : "(top level)");
}

/* Append ".key" (or "key" at the top) to the path; returns the old length. */
static size_t check_push(check_ctx *c, const char *key)
{
    size_t old = strlen(c->path);
    snprintf(c->path + old, sizeof c->path - old, "%s%s", old ? "." : "", key);
    return old;
}

static int32_t check_iter(check_ctx *c, bson_iter_t *it, int depth)
{
    if (depth > BSON_CHECK_MAX_DEPTH)
        return check_fail(c, "nested more than 100 levels");
    while (bson_iter_next(it)) {
        uint32_t key_len = bson_iter_key_len(it);
        const char *key = bson_iter_key(it);
        size_t old = check_push(c, key);
        int32_t rc = PERSISTOR_OK;
        if (key_len == 0)
            rc = check_fail(c, "empty field name");
        else if (!bson_utf8_validate(key, key_len, false))
            rc = check_fail(c, "field name is not valid UTF-8");
        if (rc == PERSISTOR_OK && BSON_ITER_HOLDS_UTF8(it)) {
            uint32_t len;
            const char *s = bson_iter_utf8(it, &len);
            if (!bson_utf8_validate(s, len, true))
                rc = check_fail(c, "string is not valid UTF-8");
        }
        if (rc == PERSISTOR_OK && (BSON_ITER_HOLDS_DOCUMENT(it) || BSON_ITER_HOLDS_ARRAY(it))) {
            bson_iter_t child;
            rc = bson_iter_recurse(it, &child) ? check_iter(c, &child, depth + 1)
                                               : check_fail(c, "malformed sub-document");
        }
        c->path[old] = '\0';
        if (rc != PERSISTOR_OK)
            return rc;
    }
    /* bson_iter_next stops early, silently, on a malformed element. */
    return it->err_off ? check_fail(c, "malformed BSON") : PERSISTOR_OK;
}

int32_t bson_check_document(const bson_t *doc, const char *what, persistor_error *err)
{
    check_ctx c = {.what = what, .err = err};
    size_t offset;
    bson_iter_t it;
    if (!bson_validate(doc, BSON_VALIDATE_NONE, &offset) || !bson_iter_init(&it, doc))
        return error_set(err, PERSISTOR_E_INVALID, "%s: not a valid BSON document (at byte %zu)",
                         what, offset);
    return check_iter(&c, &it, 1);
}
