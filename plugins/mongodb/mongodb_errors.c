/*
 * mongodb_errors.c — how libmongoc's errors become persistor's classes.
 *
 * The pool uses error API version 2, so a server's own error comes in
 * domain MONGOC_ERROR_SERVER with the server's code, a write-concern
 * failure in MONGOC_ERROR_WRITE_CONCERN, and everything libmongoc found
 * itself (sockets, server selection, a document it refused to send) in
 * the other domains.  One table decides the class of each; test_mongodb
 * walks it row by row, so a change here is a change the tests see.
 *
 * The rules (adapter.h): nothing reachable is UNAVAILABLE; "not applied,
 * try again" is RETRY; "sent, answer lost" is UNCERTAIN for a write (for a
 * read it is RETRY: a read changes nothing); the caller's document or
 * filter is INVALID; refused credentials are CONFIG.  The driver's own
 * retries are off (retryWrites=false, retryReads=false): the host owns
 * retrying, so a RetryableWriteError label reaches us and means RETRY.
 *
 * This file must not build messages with the URI in them: the store is
 * named by inst->where, and any text from libmongoc is scrubbed.
 */
#include <stdio.h>
#include <string.h>

#include "mongodb_internal.h"

#define R PERSISTOR_E_RETRY
#define U PERSISTOR_E_UNCERTAIN
#define NA PERSISTOR_E_UNAVAILABLE
#define INV PERSISTOR_E_INVALID
#define CFG PERSISTOR_E_CONFIG
#define NM PERSISTOR_E_NOMEM
#define S MONGOC_ERROR_SERVER

const mg_error_rule mg_error_rules[] = {
    /* Reaching the server. */
    {MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_FAILURE, NA, NA,
     "no server could be selected (down, refusing connections, or not a primary)"},
    {MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_BAD_WIRE_VERSION, CFG, CFG,
     "the server's version is not one this libmongoc speaks"},
    {MONGOC_ERROR_SERVER_SELECTION, MONGOC_ERROR_SERVER_SELECTION_INVALID_ID, R, R,
     "the selected server went away"},
    {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_NAME_RESOLUTION, NA, NA,
     "the host name does not resolve"},
    {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_CONNECT, NA, NA, "cannot connect"},
    {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_NOT_ESTABLISHED, NA, NA,
     "no connection (TLS handshake failed?)"},
    /* A socket error after the request left: its fate is unknown.  A failure
     * to write the request is RETRY (see mg_error_class). */
    {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_SOCKET, R, U,
     "the connection failed or timed out (socket_timeout_ms) after the request was sent"},
    {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_INVALID_STATE, R, U, "the connection broke"},
    {MONGOC_ERROR_STREAM, MONGOC_ERROR_STREAM_INVALID_TYPE, R, U, "the connection broke"},
    {MONGOC_ERROR_PROTOCOL, MONGOC_ERROR_PROTOCOL_INVALID_REPLY, R, U,
     "the server's reply was not understood"},
    {MONGOC_ERROR_PROTOCOL, MONGOC_ERROR_PROTOCOL_BAD_WIRE_VERSION, CFG, CFG,
     "the server's wire version is not supported"},
    {MONGOC_ERROR_CURSOR, MONGOC_ERROR_CURSOR_INVALID_CURSOR, R, R, "the cursor is gone"},
    /* Credentials and set-up. */
    {MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_AUTHENTICATE, CFG, CFG,
     "authentication failed: check the user, password and authSource of the uri"},
    {MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_NO_ACCEPTABLE_PEER, CFG, CFG,
     "the server's TLS certificate was refused"},
    {MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_GETNONCE, CFG, CFG, "authentication failed"},
    {MONGOC_ERROR_SASL, 0, CFG, CFG, "authentication failed (SASL)"},
    {MONGOC_ERROR_SCRAM, MONGOC_ERROR_SCRAM_PROTOCOL_ERROR, CFG, CFG,
     "authentication failed (SCRAM)"},
    {MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_NOT_READY, NA, NA, "the client is not ready"},
    /* The caller's document or arguments. */
    {MONGOC_ERROR_CLIENT, MONGOC_ERROR_CLIENT_TOO_BIG, INV, INV,
     "the document is larger than the server accepts (16 MiB)"},
    {MONGOC_ERROR_BSON, MONGOC_ERROR_BSON_INVALID, INV, INV,
     "the document is invalid or too large for the server"},
    {MONGOC_ERROR_COMMAND, MONGOC_ERROR_COMMAND_INVALID_ARG, INV, INV, "invalid argument"},
    {MONGOC_ERROR_NAMESPACE, MONGOC_ERROR_NAMESPACE_INVALID, INV, INV,
     "invalid database or collection name"},
    /* Write concern: the primary applied the write, its replication or
     * journaling was not confirmed. */
    {MONGOC_ERROR_WRITE_CONCERN, 64, U, U,
     "the write concern was not satisfied in time (applied on the primary, maybe not "
     "replicated)"},
    {MONGOC_ERROR_WRITE_CONCERN, 100, CFG, CFG,
     "the write concern cannot be satisfied (w is larger than the replica set?)"},
    {MONGOC_ERROR_WRITE_CONCERN, 79, CFG, CFG, "unknown write concern tag set (w)"},
    /* The server's codes: transient, retryable ones. */
    {S, 6, R, R, "HostUnreachable"},
    {S, 7, R, R, "HostNotFound"},
    {S, 89, R, R, "NetworkTimeout"},
    {S, 91, R, R, "ShutdownInProgress"},
    {S, 189, R, R, "PrimarySteppedDown"},
    {S, 262, R, R, "ExceededTimeLimit"},
    {S, 9001, R, R, "SocketException"},
    {S, 10107, R, R, "NotWritablePrimary"},
    {S, 11600, R, R, "InterruptedAtShutdown"},
    {S, 11602, R, R, "InterruptedDueToReplStateChange"},
    {S, 13435, R, R, "NotPrimaryNoSecondaryOk"},
    {S, 13436, R, R, "NotPrimaryOrSecondary"},
    {S, 50, R, R, "MaxTimeMSExpired"},
    {S, 112, R, R, "WriteConflict"},
    {S, 43, R, R, "CursorNotFound"},
    {S, 46, R, R, "LockBusy"},
    {S, 64, U, U, "WriteConcernFailed"},
    /* The server's codes: credentials and rights. */
    {S, 18, CFG, CFG, "AuthenticationFailed: check the uri's user, password and authSource"},
    {S, 11, CFG, CFG, "UserNotFound"},
    {S, 13, CFG, CFG, "Unauthorized: the user lacks a role on this database"},
    {S, 8000, CFG, CFG, "AtlasError (often: not allowed on this tier)"},
    /* The server's codes: the caller's document or query. */
    {S, 2, INV, INV, "BadValue"},
    {S, 9, INV, INV, "FailedToParse"},
    {S, 14, INV, INV, "TypeMismatch"},
    {S, 22, INV, INV, "InvalidBSON"},
    {S, 52, INV, INV, "DollarPrefixedFieldName"},
    {S, 55, INV, INV, "InvalidDBRef"},
    {S, 56, INV, INV, "EmptyFieldName"},
    {S, 57, INV, INV, "DottedFieldName"},
    {S, 73, INV, INV, "InvalidNamespace"},
    {S, 10334, INV, INV, "BSONObjectTooLarge: the document is over 16 MiB"},
    {S, 17419, INV, INV, "the document is over 16 MiB"},
    {S, 17420, INV, INV, "the document is over 16 MiB"},
    {S, 16755, INV, INV, "invalid TTL or index value"},
    /* group_count: a field path the server refuses (the adapter checks
     * first), or more groups than one stage may hold in memory. */
    {S, 15998, INV, INV, "FieldPath field names may not be empty"},
    {S, 16410, INV, INV, "FieldPath field names may not start with '$'"},
    {S, 292, INV, INV,
     "QueryExceededMemoryLimitNoDiskUseAllowed: too many groups for the server's memory; "
     "filter more narrowly"},
    {S, 16945, INV, INV, "too many groups for the server's memory (before 4.4); filter more "
                         "narrowly"},
    /* The server's codes: indexes that cannot be (re)built as asked. */
    {S, 11000, CFG, CFG, "DuplicateKey: the data already breaks a unique index"},
    {S, 67, CFG, CFG, "CannotCreateIndex"},
    {S, 85, CFG, CFG, "IndexOptionsConflict"},
    {S, 86, CFG, CFG, "IndexKeySpecsConflict"},
    {S, 197, CFG, CFG, "InvalidIndexSpecificationOption"},
    {S, 166, CFG, CFG, "CommandNotSupportedOnView: the collection is a view"},
    /* The server is out of room: another store should take the writes. */
    {S, 14031, NA, NA, "OutOfDiskSpace"},
    {S, 12501, NA, NA, "quota exceeded"},
};

const size_t mg_n_error_rules = sizeof mg_error_rules / sizeof mg_error_rules[0];

/* What a code of no row means.  A server that answered with a code we do
 * not know refused the request, so nothing was applied: UNAVAILABLE sends
 * the host to its fallback store, which keeps the data, rather than
 * retrying something that may never pass.  libmongoc's own unlisted
 * errors are treated the same way; a write-concern error we do not know
 * still means "applied on the primary, not confirmed". */
static int32_t mg_default_class(uint32_t domain, int kind)
{
    if (domain == MONGOC_ERROR_WRITE_CONCERN)
        return PERSISTOR_E_UNCERTAIN;
    return PERSISTOR_E_UNAVAILABLE;
}

int32_t mg_error_class(uint32_t domain, uint32_t code, const char *message, const bson_t *labels,
                       int kind, const char **what)
{
    const char *dummy;
    if (what == NULL)
        what = &dummy;
    *what = NULL;
    /* A write error or command error the server labelled retryable: not
     * applied (write-concern errors were applied on the primary, and keep
     * their own rule). */
    if (labels != NULL && domain != MONGOC_ERROR_WRITE_CONCERN &&
        mongoc_error_has_label(labels, "RetryableWriteError")) {
        *what = "the server labelled it RetryableWriteError";
        return PERSISTOR_E_RETRY;
    }
    for (size_t i = 0; i < mg_n_error_rules; i++) {
        const mg_error_rule *r = &mg_error_rules[i];
        if (r->domain != domain || (r->code != code && r->code != 0))
            continue;
        *what = r->what;
        int32_t cls = kind == MG_WRITE ? r->on_write : r->on_read;
        /* libmongoc wraps every command failure in "Failed to send ...
         * command"; what it wraps tells: a failed write of the request
         * ("Failure during socket delivery", "Failed to write rpc bytes")
         * means the server never got it whole, so it cannot have run it.
         * A failed read of the reply keeps the row's class. */
        if (domain == MONGOC_ERROR_STREAM && code == MONGOC_ERROR_STREAM_SOCKET &&
            message != NULL &&
            (strstr(message, "socket delivery") != NULL ||
             strstr(message, "Failed to write rpc bytes") != NULL)) {
            *what = "the connection failed before the request was sent";
            return PERSISTOR_E_RETRY;
        }
        return cls;
    }
    *what = domain == MONGOC_ERROR_SERVER ? "the server refused the request" : "driver error";
    return mg_default_class(domain, kind);
}

void mg_scrub(const persistor_instance *inst, const char *text, char *out, size_t cap)
{
    snprintf(out, cap, "%s", text);
    const char *pw = inst ? inst->password : NULL;
    size_t n = pw ? strlen(pw) : 0;
    if (n == 0)
        return;
    for (char *hit = strstr(out, pw); hit != NULL; hit = strstr(hit + 1, pw))
        memset(hit, '*', n);
}

int32_t mg_error(persistor_instance *inst, persistor_error *err, const bson_error_t *error,
                 const bson_t *reply, int kind, const char *op, const char *collection)
{
    const char *what = NULL;
    char text[sizeof error->message + 1];
    int32_t cls = mg_error_class(error->domain, error->code, error->message, reply, kind, &what);
    mg_scrub(inst, error->message, text, sizeof text);
    return inst->host->error_set(err, cls, "mongodb %s%s%s on %s: %s (%s; %s %u.%u)", op,
                                 collection ? " " : "", collection ? collection : "",
                                 inst->where, text, what ? what : "",
                                 error->domain == MONGOC_ERROR_SERVER ? "server code"
                                                                      : "libmongoc error",
                                 error->domain, error->code);
}
