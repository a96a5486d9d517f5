/*
 * bson_check.h — is a caller's BSON document one MongoDB would accept?
 *
 * Structure (via libbson), UTF-8 of every key and string value (libbson
 * 1.23's BSON_VALIDATE_UTF8 checks keys only), no empty keys, and nesting
 * of at most 100 levels.  Whatever a fallback stores must go back into
 * MongoDB on replay, so the domain layer checks every document it is given.
 */
#ifndef PERSISTOR_CORE_BSON_CHECK_H
#define PERSISTOR_CORE_BSON_CHECK_H

#include <bson/bson.h>

#include "persistor/adapter.h"

/* OK, or E_INVALID: "<what>: <reason> at '<dotted.path>'". */
int32_t bson_check_document(const bson_t *doc, const char *what, persistor_error *err);

#endif
