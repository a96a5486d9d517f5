/*
 * yaml_tree.h — a YAML file as a small tree of nodes, for schema walkers.
 *
 * libyaml's events become scalars, sequences and mappings, each with its
 * 1-based line and column.  An alias shares the node it names (nothing is
 * copied), so the tree is a DAG; a walker resolves merge keys (<<) with
 * ytree_flatten and pays for what it visits with ytree_spend, which stops
 * alias bombs.  Tags are ignored: every scalar is text.
 *
 * Knows no schema and never interpolates: profile.c does both.  Errors
 * are E_CONFIG "FILE:LINE:COLUMN: key.path: what" (or without the key path
 * where there is none), E_NOMEM otherwise.
 */
#ifndef PERSISTOR_CORE_YAML_TREE_H
#define PERSISTOR_CORE_YAML_TREE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "persistor/adapter.h"

/* Room for a key path such as "production.adapters[0].uri"; longer ones end in "...". */
#define YTREE_PATH_LEN 256

/* Where errors go while one file is read, and the alias expansion spent. */
typedef struct ytree_ctx {
    const char *file;
    persistor_error *err;
    size_t steps;
} ytree_ctx;

typedef enum ytree_kind { YTREE_SCALAR, YTREE_SEQUENCE, YTREE_MAPPING } ytree_kind;

typedef struct ytree_node {
    struct ytree_node *next_alloc; /* the tree's list of every node, for freeing */
    ytree_kind kind;
    int plain;             /* a scalar written without quotes */
    int open;              /* a collection still being parsed */
    uint32_t line, column; /* 1-based */
    char *text;            /* scalar, NUL-terminated (may hold a NUL: check len) */
    size_t len;
    struct ytree_node **kids; /* sequence items; mapping key, value, key, value... */
    size_t n_kids, cap_kids;
} ytree_node;

typedef struct ytree ytree;

/* Parse one YAML document (at most one per file) from `buf`.  OK with *out
 * set (free with ytree_free), E_CONFIG for malformed YAML, an undefined or
 * recursive alias, nesting deeper than 64 or more than 100000 nodes. */
int32_t ytree_parse(ytree_ctx *c, const unsigned char *buf, size_t len, ytree **out);
/* The document's top node, or NULL for a file with no document. */
const ytree_node *ytree_root(const ytree *t);
void ytree_free(ytree *t);

/* A mapping entry; both nodes are borrowed from the tree. */
typedef struct ytree_pair {
    const ytree_node *key;
    const ytree_node *value;
} ytree_pair;

typedef struct ytree_pairs {
    ytree_pair *items;
    size_t n, cap;
} ytree_pairs;

/* The entries of mapping `map` with its merge key resolved as YAML 1.1
 * says: explicit keys win, then merged mappings in order, earlier ones
 * winning.  Keys must be scalars; a duplicate explicit key is an error at
 * its second occurrence.  Appends to *out: free with ytree_pairs_free. */
int32_t ytree_flatten(ytree_ctx *c, const ytree_node *map, const char *path, ytree_pairs *out);
void ytree_pairs_free(ytree_pairs *ps);

/* Count `steps` entries visited; E_CONFIG once aliases expand too far. */
int32_t ytree_spend(ytree_ctx *c, size_t steps, const ytree_node *at);

/* An empty plain scalar, ~ or null. */
int ytree_is_null(const ytree_node *n);
/* For "got ...": "a mapping", "a sequence", "an empty value" or the text quoted. */
const char *ytree_describe(const ytree_node *n, char *buf, size_t size);
/* `text` in quotes, cut at 40 characters, control characters as '?'. */
const char *ytree_quote(const char *text, char *buf, size_t size);

/* out = "path.key" (or "key" when path is empty) / "path[i]";
 * out has YTREE_PATH_LEN bytes. */
void ytree_path_key(char *out, const char *path, const char *key);
void ytree_path_index(char *out, const char *path, size_t i);

/* Fill c->err with E_CONFIG "FILE:LINE:COLUMN: path: what"; returns E_CONFIG. */
int32_t ytree_fail_at(ytree_ctx *c, uint32_t line, uint32_t column, const char *path,
                      const char *fmt, ...) __attribute__((format(printf, 5, 6)));
int32_t ytree_vfail_at(ytree_ctx *c, uint32_t line, uint32_t column, const char *path,
                       const char *fmt, va_list ap) __attribute__((format(printf, 5, 0)));
int32_t ytree_fail(ytree_ctx *c, const ytree_node *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Fill c->err with E_NOMEM naming the file; returns E_NOMEM. */
int32_t ytree_nomem(ytree_ctx *c);

/* A NUL-terminated copy of s[0..len) (which may itself hold NULs, as a
 * YAML "\0" escape does); NULL on NOMEM.  Free with free(). */
char *ytree_dup(const char *s, size_t len);

#endif
