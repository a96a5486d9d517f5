/*
 * error.c — formatting of persistor_error.  Messages are cut, never
 * overflowed; a NULL err is allowed everywhere so callers that do not care
 * about the text need not provide one.
 */
#include "error.h"

#include "persistor/persistor.h" /* PERSISTOR_NOT_STORED */

#include <stdio.h>
#include <string.h>

int32_t error_setv(persistor_error *err, int32_t code, const char *fmt, va_list ap)
{
    if (err == NULL)
        return code;
    err->code = code;
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    return code;
}

int32_t error_set(persistor_error *err, int32_t code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    error_setv(err, code, fmt, ap);
    va_end(ap);
    return code;
}

void error_prefix(persistor_error *err, const char *fmt, ...)
{
    if (err == NULL)
        return;
    char prefix[PERSISTOR_ERROR_MESSAGE_MAX];
    char old[PERSISTOR_ERROR_MESSAGE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, err->message, sizeof old);
    /* Cut the old message, not the prefix, when both do not fit. */
    size_t cap = sizeof err->message;
    size_t n = strlen(prefix);
    if (n > cap - 3)
        n = cap - 3;
    memcpy(err->message, prefix, n);
    memcpy(err->message + n, ": ", 2);
    size_t rest = strnlen(old, cap - 1 - n - 2);
    memcpy(err->message + n + 2, old, rest);
    err->message[n + 2 + rest] = '\0';
}

void error_clear(persistor_error *err)
{
    if (err == NULL)
        return;
    err->code = PERSISTOR_OK;
    err->message[0] = '\0';
}

const char *error_code_name(int32_t code)
{
    switch (code) {
    case PERSISTOR_OK: return "OK";
    case PERSISTOR_NOT_FOUND: return "NOT_FOUND";
    case PERSISTOR_EXISTS: return "EXISTS";
    case PERSISTOR_ITER_END: return "ITER_END";
    case PERSISTOR_NOT_STORED: return "NOT_STORED";
    case PERSISTOR_E_RETRY: return "E_RETRY";
    case PERSISTOR_E_UNCERTAIN: return "E_UNCERTAIN";
    case PERSISTOR_E_UNAVAILABLE: return "E_UNAVAILABLE";
    case PERSISTOR_E_INVALID: return "E_INVALID";
    case PERSISTOR_E_NOTSUP: return "E_NOTSUP";
    case PERSISTOR_E_NOMEM: return "E_NOMEM";
    case PERSISTOR_E_CONFIG: return "E_CONFIG";
    case PERSISTOR_E_CORRUPT: return "E_CORRUPT";
    case PERSISTOR_E_ABI: return "E_ABI";
    default: return "E_UNKNOWN";
    }
}
