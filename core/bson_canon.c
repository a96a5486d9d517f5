/*
 * bson_canon.c — sorting a document's keys, recursively.
 */
#include "bson_canon.h"

#include <stdlib.h>
#include <string.h>

#define CANON_MAX_DEPTH 100

typedef struct canon_field {
    const char *key;
    bson_iter_t at;
} canon_field;

static int canon_key_order(const void *a, const void *b)
{
    return strcmp(((const canon_field *)a)->key, ((const canon_field *)b)->key);
}

static bool canon_value(const bson_iter_t *it, const char *key, bson_t *out, int depth);

/* Copy the fields of the container `it` points into, sorted or not. */
static bool canon_fields(const bson_iter_t *container, bson_t *out, int depth, bool sort_keys)
{
    if (depth > CANON_MAX_DEPTH)
        return false;
    bson_iter_t child;
    if (!bson_iter_recurse(container, &child))
        return false;
    size_t n = 0, cap = 16;
    canon_field *fields = malloc(cap * sizeof *fields);
    bool ok = fields != NULL;
    while (ok && bson_iter_next(&child)) {
        if (n == cap) {
            canon_field *grown = realloc(fields, (cap *= 2) * sizeof *fields);
            ok = grown != NULL;
            if (!ok)
                break;
            fields = grown;
        }
        fields[n++] = (canon_field){bson_iter_key(&child), child};
    }
    if (ok && sort_keys)
        qsort(fields, n, sizeof *fields, canon_key_order); /* ties: equal keys, any order */
    for (size_t i = 0; ok && i < n; i++)
        ok = canon_value(&fields[i].at, fields[i].key, out, depth + 1);
    free(fields);
    return ok;
}

static bool canon_value(const bson_iter_t *it, const char *key, bson_t *out, int depth)
{
    bson_t child;
    if (BSON_ITER_HOLDS_DOCUMENT(it)) {
        return bson_append_document_begin(out, key, -1, &child) &&
               canon_fields(it, &child, depth, true) && bson_append_document_end(out, &child);
    }
    if (BSON_ITER_HOLDS_ARRAY(it)) {
        return bson_append_array_begin(out, key, -1, &child) &&
               canon_fields(it, &child, depth, false) && bson_append_array_end(out, &child);
    }
    return bson_append_iter(out, key, -1, it);
}

bool bson_canon(const bson_t *doc, bson_t *out)
{
    /* Wrap the document so the top level goes through the same path. */
    bson_t wrapper = BSON_INITIALIZER;
    bson_iter_t it;
    bool ok = BSON_APPEND_DOCUMENT(&wrapper, "d", doc) && bson_iter_init_find(&it, &wrapper, "d") &&
              canon_fields(&it, out, 0, true);
    bson_destroy(&wrapper);
    return ok;
}
