/*
 * yaml_tree.c — libyaml events to a node tree; merge keys; error text.
 *
 * The tree owns every node through one list, so shared (aliased) nodes
 * are freed once.  Anchors are registered when their node starts but an
 * alias to a node still open is refused, so the tree never has a cycle.
 *
 * Must not: know any schema, interpolate, or recurse over the event
 * stream (depth is capped and the builder keeps its own stack), so no
 * input can exhaust the C stack.
 */
#include "yaml_tree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "error.h"

/* A profiles file is a few kilobytes; these only stop hostile input. */
#define YTREE_MAX_NODES 100000u
#define YTREE_MAX_DEPTH 64
#define YTREE_MAX_STEPS 10000000u /* entries visited through aliases and merges */

/* ------------------------------------------------------------------------
 * Building the tree from events
 * --------------------------------------------------------------------- */

typedef struct anchor {
    char *name;
    ytree_node *target;
} anchor;

struct ytree {
    ytree_node *all;
    size_t n_nodes;
    anchor *anchors;
    size_t n_anchors, cap_anchors;
    ytree_node *root;
    ytree_node *stack[YTREE_MAX_DEPTH];
    size_t depth;
    int documents;
};

int32_t ytree_vfail_at(ytree_ctx *c, uint32_t line, uint32_t column, const char *path,
                       const char *fmt, va_list ap)
{
    char what[PERSISTOR_ERROR_MESSAGE_MAX];
    vsnprintf(what, sizeof what, fmt, ap);
    if (path != NULL && path[0] != '\0')
        return error_set(c->err, PERSISTOR_E_CONFIG, "%s:%u:%u: %s: %s", c->file, line, column,
                         path, what);
    return error_set(c->err, PERSISTOR_E_CONFIG, "%s:%u:%u: %s", c->file, line, column, what);
}

int32_t ytree_fail_at(ytree_ctx *c, uint32_t line, uint32_t column, const char *path,
                      const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int32_t rc = ytree_vfail_at(c, line, column, path, fmt, ap);
    va_end(ap);
    return rc;
}

int32_t ytree_fail(ytree_ctx *c, const ytree_node *at, const char *path, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int32_t rc = ytree_vfail_at(c, at->line, at->column, path, fmt, ap);
    va_end(ap);
    return rc;
}

int32_t ytree_nomem(ytree_ctx *c)
{
    return error_set(c->err, PERSISTOR_E_NOMEM, "%s: out of memory while reading profiles",
                     c->file);
}

char *ytree_dup(const char *s, size_t len)
{
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return NULL;
    memcpy(copy, s, len);
    copy[len] = '\0';
    return copy;
}

static int32_t node_new(ytree_ctx *c, ytree *t, ytree_kind kind, yaml_mark_t mark, ytree_node **out)
{
    if (t->n_nodes >= YTREE_MAX_NODES)
        return ytree_fail_at(c, (uint32_t)mark.line + 1, (uint32_t)mark.column + 1, NULL,
                             "more than %u nodes; the file is too large", YTREE_MAX_NODES);
    ytree_node *n = calloc(1, sizeof *n);
    if (n == NULL)
        return ytree_nomem(c);
    n->kind = kind;
    n->line = (uint32_t)mark.line + 1;
    n->column = (uint32_t)mark.column + 1;
    n->next_alloc = t->all;
    t->all = n;
    t->n_nodes++;
    *out = n;
    return PERSISTOR_OK;
}

static int32_t node_add_kid(ytree_ctx *c, ytree_node *parent, ytree_node *kid)
{
    if (parent->n_kids == parent->cap_kids) {
        size_t cap = parent->cap_kids ? parent->cap_kids * 2 : 8;
        ytree_node **grown = realloc(parent->kids, cap * sizeof *grown);
        if (grown == NULL)
            return ytree_nomem(c);
        parent->kids = grown;
        parent->cap_kids = cap;
    }
    parent->kids[parent->n_kids++] = kid;
    return PERSISTOR_OK;
}

/* Put a finished (or just opened) node where the parser is. */
static int32_t tree_attach(ytree_ctx *c, ytree *t, ytree_node *n)
{
    if (t->depth == 0) {
        t->root = n;
        return PERSISTOR_OK;
    }
    return node_add_kid(c, t->stack[t->depth - 1], n);
}

static int32_t anchor_add(ytree_ctx *c, ytree *t, const yaml_char_t *name, ytree_node *target)
{
    if (name == NULL)
        return PERSISTOR_OK;
    if (t->n_anchors == t->cap_anchors) {
        size_t cap = t->cap_anchors ? t->cap_anchors * 2 : 8;
        anchor *grown = realloc(t->anchors, cap * sizeof *grown);
        if (grown == NULL)
            return ytree_nomem(c);
        t->anchors = grown;
        t->cap_anchors = cap;
    }
    char *copy = ytree_dup((const char *)name, strlen((const char *)name));
    if (copy == NULL)
        return ytree_nomem(c);
    t->anchors[t->n_anchors++] = (anchor){copy, target};
    return PERSISTOR_OK;
}

/* The latest anchor of that name wins, as YAML says. */
static ytree_node *anchor_find(const ytree *t, const char *name)
{
    for (size_t i = t->n_anchors; i > 0; i--)
        if (strcmp(t->anchors[i - 1].name, name) == 0)
            return t->anchors[i - 1].target;
    return NULL;
}

static int32_t on_scalar(ytree_ctx *c, ytree *t, const yaml_event_t *ev)
{
    ytree_node *n = NULL;
    int32_t rc = node_new(c, t, YTREE_SCALAR, ev->start_mark, &n);
    if (rc != PERSISTOR_OK)
        return rc;
    n->len = ev->data.scalar.length;
    n->text = ytree_dup((const char *)ev->data.scalar.value, n->len);
    if (n->text == NULL)
        return ytree_nomem(c);
    n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
    rc = anchor_add(c, t, ev->data.scalar.anchor, n);
    if (rc != PERSISTOR_OK)
        return rc;
    return tree_attach(c, t, n);
}

static int32_t on_start(ytree_ctx *c, ytree *t, const yaml_event_t *ev, ytree_kind kind,
                        const yaml_char_t *anchor_name)
{
    if (t->depth == YTREE_MAX_DEPTH)
        return ytree_fail_at(c, (uint32_t)ev->start_mark.line + 1,
                             (uint32_t)ev->start_mark.column + 1, NULL,
                             "nested deeper than %d levels", YTREE_MAX_DEPTH);
    ytree_node *n = NULL;
    int32_t rc = node_new(c, t, kind, ev->start_mark, &n);
    if (rc != PERSISTOR_OK)
        return rc;
    n->open = 1;
    rc = anchor_add(c, t, anchor_name, n);
    if (rc == PERSISTOR_OK)
        rc = tree_attach(c, t, n);
    if (rc == PERSISTOR_OK)
        t->stack[t->depth++] = n;
    return rc;
}

static int32_t on_alias(ytree_ctx *c, ytree *t, const yaml_event_t *ev)
{
    const char *name = (const char *)ev->data.alias.anchor;
    ytree_node *target = anchor_find(t, name);
    uint32_t line = (uint32_t)ev->start_mark.line + 1, column = (uint32_t)ev->start_mark.column + 1;
    if (target == NULL)
        return ytree_fail_at(c, line, column, NULL,
                             "undefined alias *%s (define &%s before using it)", name, name);
    /* An alias inside its own anchor would make the tree a cycle. */
    if (target->open)
        return ytree_fail_at(c, line, column, NULL, "alias *%s is used inside the node it names",
                             name);
    return tree_attach(c, t, target);
}

static int32_t on_event(ytree_ctx *c, ytree *t, const yaml_event_t *ev)
{
    switch (ev->type) {
    case YAML_DOCUMENT_START_EVENT:
        if (t->documents++ > 0)
            return ytree_fail_at(c, (uint32_t)ev->start_mark.line + 1,
                                 (uint32_t)ev->start_mark.column + 1, NULL,
                                 "a second YAML document (one per file)");
        return PERSISTOR_OK;
    case YAML_SCALAR_EVENT:
        return on_scalar(c, t, ev);
    case YAML_SEQUENCE_START_EVENT:
        return on_start(c, t, ev, YTREE_SEQUENCE, ev->data.sequence_start.anchor);
    case YAML_MAPPING_START_EVENT:
        return on_start(c, t, ev, YTREE_MAPPING, ev->data.mapping_start.anchor);
    case YAML_SEQUENCE_END_EVENT:
    case YAML_MAPPING_END_EVENT:
        t->stack[--t->depth]->open = 0;
        return PERSISTOR_OK;
    case YAML_ALIAS_EVENT:
        return on_alias(c, t, ev);
    default:
        return PERSISTOR_OK;
    }
}

/* libyaml's reader reports a byte offset, not a mark: count lines ourselves. */
static void offset_position(const unsigned char *buf, size_t len, size_t offset, uint32_t *line,
                            uint32_t *column)
{
    *line = 1;
    *column = 1;
    for (size_t i = 0; i < offset && i < len; i++) {
        if (buf[i] == '\n') {
            (*line)++;
            *column = 1;
        } else {
            (*column)++;
        }
    }
}

static int32_t parse_problem(ytree_ctx *c, const yaml_parser_t *p, const unsigned char *buf,
                             size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return ytree_nomem(c);
    uint32_t line = (uint32_t)p->problem_mark.line + 1;
    uint32_t column = (uint32_t)p->problem_mark.column + 1;
    if (p->error == YAML_READER_ERROR)
        offset_position(buf, len, p->problem_offset, &line, &column);
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->context == NULL)
        return ytree_fail_at(c, line, column, NULL, "invalid YAML: %s", problem);
    return ytree_fail_at(c, line, column, NULL, "invalid YAML: %s (%s at %zu:%zu)", problem,
                         p->context, p->context_mark.line + 1, p->context_mark.column + 1);
}

static void tree_clear(ytree *t)
{
    ytree_node *n = t->all;
    while (n != NULL) {
        ytree_node *next = n->next_alloc;
        free(n->text);
        free(n->kids);
        free(n);
        n = next;
    }
    for (size_t i = 0; i < t->n_anchors; i++)
        free(t->anchors[i].name);
    free(t->anchors);
    memset(t, 0, sizeof *t);
}

static int32_t tree_parse(ytree_ctx *c, const unsigned char *buf, size_t len, ytree *t)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return ytree_nomem(c);
    yaml_parser_set_input_string(&parser, buf, len);
    int32_t rc = PERSISTOR_OK;
    int done = 0;
    while (rc == PERSISTOR_OK && !done) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            rc = parse_problem(c, &parser, buf, len);
            break;
        }
        rc = on_event(c, t, &ev);
        done = ev.type == YAML_STREAM_END_EVENT;
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* ------------------------------------------------------------------------
 * Mappings, merge keys and paths
 * --------------------------------------------------------------------- */

/* Keys as the user reads them: "production.adapters[0].uri". */
void ytree_path_key(char *out, const char *path, const char *key)
{
    int n = path[0] ? snprintf(out, YTREE_PATH_LEN, "%s.%s", path, key)
                    : snprintf(out, YTREE_PATH_LEN, "%s", key);
    if (n >= YTREE_PATH_LEN)
        memcpy(out + YTREE_PATH_LEN - 4, "...", 4);
}

void ytree_path_index(char *out, const char *path, size_t i)
{
    int n = snprintf(out, YTREE_PATH_LEN, "%s[%zu]", path, i);
    if (n >= YTREE_PATH_LEN)
        memcpy(out + YTREE_PATH_LEN - 4, "...", 4);
}

/* Control characters become '?' so a message stays on one line. */
const char *ytree_quote(const char *text, char *buf, size_t size)
{
    size_t len = strlen(text), shown = len > 40 ? 40 : len, j = 0;
    buf[j++] = '"';
    for (size_t i = 0; i < shown && j + 5 < size; i++)
        buf[j++] = (unsigned char)text[i] < 0x20 || text[i] == 0x7f ? '?' : text[i];
    if (shown < len)
        j += (size_t)snprintf(buf + j, size - j, "...");
    snprintf(buf + j, size - j, "\"");
    return buf;
}

const char *ytree_describe(const ytree_node *n, char *buf, size_t size)
{
    if (n->kind == YTREE_MAPPING)
        return "a mapping";
    if (n->kind == YTREE_SEQUENCE)
        return "a sequence";
    if (n->plain && n->len == 0)
        return "an empty value";
    return ytree_quote(n->text, buf, size);
}

int ytree_is_null(const ytree_node *n)
{
    return n->kind == YTREE_SCALAR && n->plain &&
           (n->len == 0 || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
            strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0);
}

static int is_merge_key(const ytree_node *k)
{
    return k->kind == YTREE_SCALAR && k->plain && strcmp(k->text, "<<") == 0;
}

/* Aliases make a small file name a huge tree; count what we walk. */
int32_t ytree_spend(ytree_ctx *c, size_t steps, const ytree_node *at)
{
    c->steps += steps;
    if (c->steps <= YTREE_MAX_STEPS)
        return PERSISTOR_OK;
    return ytree_fail(c, at, NULL, "aliases and merges expand to too much (over %u entries)",
                      YTREE_MAX_STEPS);
}

static const ytree_pair *pairs_find(const ytree_pairs *ps, const char *key)
{
    for (size_t i = 0; i < ps->n; i++)
        if (strcmp(ps->items[i].key->text, key) == 0)
            return &ps->items[i];
    return NULL;
}

static int32_t pairs_push(ytree_ctx *c, ytree_pairs *ps, const ytree_node *key,
                          const ytree_node *value)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 8;
        ytree_pair *grown = realloc(ps->items, cap * sizeof *grown);
        if (grown == NULL)
            return ytree_nomem(c);
        ps->items = grown;
        ps->cap = cap;
    }
    ps->items[ps->n++] = (ytree_pair){key, value};
    return PERSISTOR_OK;
}

static int32_t flatten(ytree_ctx *c, const ytree_node *map, const char *path, ytree_pairs *out,
                       int depth);

/* Add the keys of one merged mapping that the mapping does not have yet. */
static int32_t merge_from(ytree_ctx *c, const ytree_node *src, const char *path, ytree_pairs *out,
                          int depth)
{
    char kp[YTREE_PATH_LEN], got[64];
    ytree_path_key(kp, path, "<<");
    if (src->kind != YTREE_MAPPING)
        return ytree_fail(c, src, kp,
                          "expected a mapping or a sequence of mappings to merge, got %s",
                          ytree_describe(src, got, sizeof got));
    if (depth >= YTREE_MAX_DEPTH)
        return ytree_fail(c, src, kp, "merges nested deeper than %d levels", YTREE_MAX_DEPTH);
    ytree_pairs sub = {0};
    int32_t rc = flatten(c, src, path, &sub, depth + 1);
    for (size_t i = 0; rc == PERSISTOR_OK && i < sub.n; i++) {
        rc = ytree_spend(c, out->n + 1, src);
        if (rc == PERSISTOR_OK && pairs_find(out, sub.items[i].key->text) == NULL)
            rc = pairs_push(c, out, sub.items[i].key, sub.items[i].value);
    }
    free(sub.items);
    return rc;
}

/*
 * The pairs of a mapping with its merge key resolved (YAML 1.1): explicit
 * keys first and always winning, then each merged mapping's keys in order,
 * earlier mappings winning over later ones.  Duplicate explicit keys are an
 * error at the second one.
 */
static int32_t flatten(ytree_ctx *c, const ytree_node *map, const char *path, ytree_pairs *out,
                       int depth)
{
    const ytree_node *merge = NULL, *merge_key = NULL;
    char kp[YTREE_PATH_LEN], got[64];
    for (size_t i = 0; i + 1 < map->n_kids; i += 2) {
        const ytree_node *key = map->kids[i], *value = map->kids[i + 1];
        int32_t rc = ytree_spend(c, out->n + 1, key);
        if (rc != PERSISTOR_OK)
            return rc;
        if (key->kind != YTREE_SCALAR)
            return ytree_fail(c, key, path, "a key must be a scalar, got %s",
                              ytree_describe(key, got, sizeof got));
        ytree_path_key(kp, path, key->text);
        if (strlen(key->text) != key->len)
            return ytree_fail(c, key, kp, "a key must not contain a NUL character");
        const ytree_pair *seen = pairs_find(out, key->text);
        const ytree_node *first = is_merge_key(key) ? merge_key : seen ? seen->key : NULL;
        if (first != NULL)
            return ytree_fail(c, key, kp, "duplicate key (first at line %u)", first->line);
        if (is_merge_key(key)) {
            merge_key = key;
            merge = value;
            continue;
        }
        rc = pairs_push(c, out, key, value);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    if (merge == NULL)
        return PERSISTOR_OK;
    if (merge->kind != YTREE_SEQUENCE)
        return merge_from(c, merge, path, out, depth);
    for (size_t i = 0; i < merge->n_kids; i++) {
        int32_t rc = merge_from(c, merge->kids[i], path, out, depth);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    return PERSISTOR_OK;
}

int32_t ytree_parse(ytree_ctx *c, const unsigned char *buf, size_t len, ytree **out)
{
    ytree *t = calloc(1, sizeof *t);
    if (t == NULL)
        return ytree_nomem(c);
    int32_t rc = tree_parse(c, buf, len, t);
    if (rc != PERSISTOR_OK) {
        ytree_free(t);
        return rc;
    }
    *out = t;
    return PERSISTOR_OK;
}

const ytree_node *ytree_root(const ytree *t)
{
    return t->root;
}

void ytree_free(ytree *t)
{
    if (t == NULL)
        return;
    tree_clear(t);
    free(t);
}

int32_t ytree_flatten(ytree_ctx *c, const ytree_node *map, const char *path, ytree_pairs *out)
{
    return flatten(c, map, path, out, 0);
}

void ytree_pairs_free(ytree_pairs *ps)
{
    free(ps->items);
    memset(ps, 0, sizeof *ps);
}
