/*
 * mongodb_collection.c — ensure_collection: the collection, the profile's
 * indexes and the TTL index, brought to what the spec says at every open.
 *
 * The indexes present are read first (listIndexes), then:
 *   - a spec index missing is created under the spec's name (unique flag
 *     kept); one present under that name with other keys or another
 *     unique flag is dropped and built again;
 *   - the TTL index is "<ttl_field>_1" with expireAfterSeconds: created if
 *     missing, its expireAfterSeconds changed in place with collMod when
 *     the profile's TTL changed (no rebuild, no start-up failure);
 *   - ttl_seconds 0 (or another ttl_field) drops every other TTL index;
 *   - with nothing to index, the collection is created so that it exists.
 * A unique index the data already breaks is refused with E_CONFIG naming
 * the index and the server's duplicate, as the server refuses to build it.
 * Several processes may ensure at once: createIndexes and collMod are
 * idempotent on the server.
 *
 * Index commands use the instance's write concern (majority, journal).
 *
 * The server has no notion of a version field: the spec's is remembered
 * here, per collection, for the writes' upsert-if-newer (mongodb_ops.c).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mongodb_internal.h"

/* Run a command on the instance's database with its write concern. */
static int32_t mg_db_command(persistor_instance *inst, mongoc_client_t *client, const bson_t *cmd,
                             const char *op, const char *collection, int32_t ignore_code,
                             persistor_error *err)
{
    bson_t reply;
    bson_error_t berr;
    mongoc_database_t *db = mongoc_client_get_database(client, inst->database);
    bool ok = mongoc_database_write_command_with_opts(db, cmd, NULL, &reply, &berr);
    mongoc_database_destroy(db);
    int32_t rc = PERSISTOR_OK;
    if (!ok && !(ignore_code != 0 && berr.domain == MONGOC_ERROR_SERVER &&
                 berr.code == (uint32_t)ignore_code))
        rc = mg_error(inst, err, &berr, &reply, MG_WRITE, op, collection);
    bson_destroy(&reply);
    return rc;
}

/* The indexes present, as {name: spec document}; an absent collection has
 * none. */
static int32_t mg_list_indexes(persistor_instance *inst, mongoc_collection_t *coll,
                               const char *name, bson_t *present, persistor_error *err)
{
    const bson_t *doc;
    bson_error_t berr;
    const bson_t *reply = NULL;
    mongoc_cursor_t *cur = mongoc_collection_find_indexes_with_opts(coll, NULL);
    while (mongoc_cursor_next(cur, &doc)) {
        bson_iter_t it;
        if (bson_iter_init_find(&it, doc, "name") && BSON_ITER_HOLDS_UTF8(&it))
            BSON_APPEND_DOCUMENT(present, bson_iter_utf8(&it, NULL), doc);
    }
    int32_t rc = PERSISTOR_OK;
    if (mongoc_cursor_error_document(cur, &berr, &reply) && !mg_no_namespace(&berr))
        rc = mg_error(inst, err, &berr, reply, MG_READ, "listIndexes", name);
    mongoc_cursor_destroy(cur);
    return rc;
}

/* Does the present index `have` equal {keys, unique}? */
static int mg_same_index(const bson_t *have, const bson_t *keys, int unique)
{
    bson_iter_t it;
    bson_t key;
    uint32_t len;
    const uint8_t *data;
    if (!bson_iter_init_find(&it, have, "key") || !BSON_ITER_HOLDS_DOCUMENT(&it))
        return 0;
    bson_iter_document(&it, &len, &data);
    if (!bson_init_static(&key, data, len))
        return 0;
    /* Same fields, same order, same direction (1 == 1.0 on the server). */
    bson_iter_t a, b;
    bson_iter_init(&a, &key);
    bson_iter_init(&b, keys);
    for (;;) {
        bool na = bson_iter_next(&a), nb = bson_iter_next(&b);
        if (na != nb)
            return 0;
        if (!na)
            break;
        if (strcmp(bson_iter_key(&a), bson_iter_key(&b)) != 0 ||
            !BSON_ITER_HOLDS_NUMBER(&a) || bson_iter_as_int64(&a) != bson_iter_as_int64(&b))
            return 0;
    }
    int have_unique = bson_iter_init_find(&it, have, "unique") && bson_iter_as_bool(&it);
    return have_unique == (unique != 0);
}

static int64_t mg_index_ttl(const bson_t *have)
{
    bson_iter_t it;
    if (bson_iter_init_find(&it, have, "expireAfterSeconds") && BSON_ITER_HOLDS_NUMBER(&it))
        return bson_iter_as_int64(&it);
    return -1;
}

static int32_t mg_drop_index(persistor_instance *inst, mongoc_client_t *client,
                             const char *collection, const char *index, persistor_error *err)
{
    bson_t cmd = BSON_INITIALIZER;
    BSON_APPEND_UTF8(&cmd, "dropIndexes", collection);
    BSON_APPEND_UTF8(&cmd, "index", index);
    /* 27 IndexNotFound: someone else dropped it first. */
    int32_t rc = mg_db_command(inst, client, &cmd, "dropIndexes", collection, 27, err);
    bson_destroy(&cmd);
    if (rc == PERSISTOR_OK)
        inst->host->log(inst->host, PERSISTOR_LOG_INFO, "mongodb_index_dropped",
                        "%s: %s: index %s dropped", inst->where, collection, index);
    return rc;
}

/* collMod: the TTL index keeps its entries, only the expiry changes. */
static int32_t mg_set_ttl(persistor_instance *inst, mongoc_client_t *client,
                          const char *collection, const char *index, int64_t seconds,
                          persistor_error *err)
{
    bson_t cmd = BSON_INITIALIZER, ix;
    BSON_APPEND_UTF8(&cmd, "collMod", collection);
    BSON_APPEND_DOCUMENT_BEGIN(&cmd, "index", &ix);
    BSON_APPEND_UTF8(&ix, "name", index);
    BSON_APPEND_INT64(&ix, "expireAfterSeconds", seconds);
    bson_append_document_end(&cmd, &ix);
    int32_t rc = mg_db_command(inst, client, &cmd, "collMod", collection, 0, err);
    bson_destroy(&cmd);
    if (rc == PERSISTOR_OK)
        inst->host->log(inst->host, PERSISTOR_LOG_INFO, "mongodb_ttl_changed",
                        "%s: %s: index %s now expires after %lld s", inst->where, collection,
                        index, (long long)seconds);
    return rc;
}

/* Append one index to the createIndexes list. */
static void mg_append_index(bson_t *list, uint32_t i, const char *name, const bson_t *keys,
                            int unique, int64_t ttl)
{
    char key[16];
    const char *k;
    bson_t ix;
    bson_uint32_to_string(i, &k, key, sizeof key);
    BSON_APPEND_DOCUMENT_BEGIN(list, k, &ix);
    BSON_APPEND_DOCUMENT(&ix, "key", keys);
    BSON_APPEND_UTF8(&ix, "name", name);
    if (unique)
        BSON_APPEND_BOOL(&ix, "unique", true);
    if (ttl > 0)
        BSON_APPEND_INT64(&ix, "expireAfterSeconds", ttl);
    bson_append_document_end(list, &ix);
}

static void mg_spec_keys(const persistor_index_spec *ix, bson_t *keys)
{
    for (uint32_t k = 0; k < ix->n_keys; k++)
        BSON_APPEND_INT32(keys, ix->keys[k].field, ix->keys[k].direction < 0 ? -1 : 1);
}

/* Bring the TTL index(es) to the spec; adds the TTL index to `list` when it
 * must be created.  `ttl_name` is "" when there is no TTL. */
static int32_t mg_ensure_ttl(persistor_instance *inst, mongoc_client_t *client,
                             const persistor_collection_spec *spec, const bson_t *present,
                             const char *ttl_name, bson_t *list, uint32_t *n,
                             persistor_error *err)
{
    bson_iter_t it;
    bson_iter_init(&it, present);
    while (bson_iter_next(&it)) {
        const char *name = bson_iter_key(&it);
        uint32_t len;
        const uint8_t *data;
        bson_t have;
        bson_iter_document(&it, &len, &data);
        if (!bson_init_static(&have, data, len) || mg_index_ttl(&have) < 0 ||
            strcmp(name, ttl_name) == 0)
            continue;
        /* A TTL index of an older profile: the TTL is off or moved. */
        int32_t rc = mg_drop_index(inst, client, spec->name, name, err);
        if (rc != PERSISTOR_OK)
            return rc;
    }
    if (ttl_name[0] == '\0')
        return PERSISTOR_OK;
    bson_t keys = BSON_INITIALIZER;
    BSON_APPEND_INT32(&keys, spec->ttl_field, 1);
    int32_t rc = PERSISTOR_OK;
    if (bson_iter_init_find(&it, present, ttl_name)) {
        uint32_t len;
        const uint8_t *data;
        bson_t have;
        bson_iter_document(&it, &len, &data);
        bson_init_static(&have, data, len);
        int64_t now = mg_index_ttl(&have);
        if (!mg_same_index(&have, &keys, 0) || now < 0) {
            /* Same name, another index: build the TTL index anew. */
            rc = mg_drop_index(inst, client, spec->name, ttl_name, err);
            if (rc == PERSISTOR_OK)
                mg_append_index(list, (*n)++, ttl_name, &keys, 0, spec->ttl_seconds);
        } else if (now != spec->ttl_seconds) {
            rc = mg_set_ttl(inst, client, spec->name, ttl_name, spec->ttl_seconds, err);
        }
    } else {
        mg_append_index(list, (*n)++, ttl_name, &keys, 0, spec->ttl_seconds);
    }
    bson_destroy(&keys);
    return rc;
}

const char *mg_version_field(persistor_instance *inst, const char *collection)
{
    const char *field = NULL;
    pthread_mutex_lock(&inst->known_lock);
    const mg_known *k = inst->known;
    while (k != NULL && strcmp(k->spec->name, collection) != 0)
        k = k->next;
    /* A host older than the field hands a shorter spec, which names none. */
    if (k != NULL && k->spec->struct_size >= offsetof(persistor_collection_spec, version_field) +
                                                 sizeof k->spec->version_field)
        field = k->spec->version_field;
    pthread_mutex_unlock(&inst->known_lock);
    return field;
}

/* Remember `spec` for its collection, replacing an older one. */
static int32_t mg_remember(persistor_instance *inst, const persistor_collection_spec *spec,
                           persistor_error *err)
{
    pthread_mutex_lock(&inst->known_lock);
    mg_known *k = inst->known;
    while (k != NULL && strcmp(k->spec->name, spec->name) != 0)
        k = k->next;
    if (k == NULL && (k = calloc(1, sizeof *k)) != NULL) {
        k->next = inst->known;
        inst->known = k;
    }
    if (k != NULL)
        k->spec = spec;
    pthread_mutex_unlock(&inst->known_lock);
    if (k == NULL)
        return inst->host->error_set(err, PERSISTOR_E_NOMEM, "mongodb ensure %s on %s: out of "
                                     "memory", spec->name, inst->where);
    return PERSISTOR_OK;
}

void mg_known_free(persistor_instance *inst)
{
    while (inst->known != NULL) {
        mg_known *k = inst->known;
        inst->known = k->next;
        free(k);
    }
}

int32_t mg_ensure_collection(persistor_instance *inst, const persistor_collection_spec *spec,
                             persistor_error *err)
{
    char ttl_name[300] = "";
    bson_t present = BSON_INITIALIZER, list = BSON_INITIALIZER;
    uint32_t n = 0;
    if (spec->ttl_seconds > 0 && spec->ttl_field != NULL)
        snprintf(ttl_name, sizeof ttl_name, "%s_1", spec->ttl_field);
    mongoc_client_t *client = mg_client(inst);
    mongoc_collection_t *coll = mongoc_client_get_collection(client, inst->database, spec->name);
    int32_t rc = mg_list_indexes(inst, coll, spec->name, &present, err);
    for (uint32_t i = 0; rc == PERSISTOR_OK && i < spec->n_indexes; i++) {
        const persistor_index_spec *ix = &spec->indexes[i];
        bson_iter_t it;
        bson_t keys = BSON_INITIALIZER;
        int unique = (ix->flags & PERSISTOR_INDEX_UNIQUE) != 0;
        mg_spec_keys(ix, &keys);
        if (strcmp(ix->name, ttl_name) == 0) {
            /* The TTL index has this name: mg_ensure_ttl owns it. */
        } else if (bson_iter_init_find(&it, &present, ix->name)) {
            uint32_t len;
            const uint8_t *data;
            bson_t have;
            bson_iter_document(&it, &len, &data);
            bson_init_static(&have, data, len);
            if (!mg_same_index(&have, &keys, unique)) {
                rc = mg_drop_index(inst, client, spec->name, ix->name, err);
                if (rc == PERSISTOR_OK)
                    mg_append_index(&list, n++, ix->name, &keys, unique, 0);
            }
        } else {
            mg_append_index(&list, n++, ix->name, &keys, unique, 0);
        }
        bson_destroy(&keys);
    }
    if (rc == PERSISTOR_OK)
        rc = mg_ensure_ttl(inst, client, spec, &present, ttl_name, &list, &n, err);
    if (rc == PERSISTOR_OK && n > 0) {
        bson_t cmd = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&cmd, "createIndexes", spec->name);
        BSON_APPEND_ARRAY(&cmd, "indexes", &list);
        rc = mg_db_command(inst, client, &cmd, "createIndexes", spec->name, 0, err);
        bson_destroy(&cmd);
    } else if (rc == PERSISTOR_OK && bson_count_keys(&present) == 0) {
        bson_t cmd = BSON_INITIALIZER;
        BSON_APPEND_UTF8(&cmd, "create", spec->name);
        rc = mg_db_command(inst, client, &cmd, "create", spec->name, 48, err); /* exists */
        bson_destroy(&cmd);
    }
    if (rc == PERSISTOR_OK)
        rc = mg_remember(inst, spec, err);
    mongoc_collection_destroy(coll);
    mg_release(inst, client);
    bson_destroy(&present);
    bson_destroy(&list);
    return rc;
}
