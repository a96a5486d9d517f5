/*
 * error.h — filling a persistor_error.
 *
 * The one place that formats error messages; also the host table's
 * error_set slot.  Never allocates.
 */
#ifndef PERSISTOR_CORE_ERROR_H
#define PERSISTOR_CORE_ERROR_H

#include <stdarg.h>

#include "persistor/adapter.h"

/* Fill err (may be NULL) with code and a formatted message; returns code. */
int32_t error_set(persistor_error *err, int32_t code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int32_t error_setv(persistor_error *err, int32_t code, const char *fmt, va_list ap)
    __attribute__((format(printf, 3, 0)));

/* Put `fmt...` in front of err's message ("loading x: <old message>"). */
void error_prefix(persistor_error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Reset to OK with an empty message. */
void error_clear(persistor_error *err);

/* The name of a return code, e.g. "E_RETRY", "NOT_FOUND". */
const char *error_code_name(int32_t code);

#endif
