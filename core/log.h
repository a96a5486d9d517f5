/*
 * log.h — structured logs: one JSON object per line on stderr.
 *
 * Every line has "ts" (ISO-8601 UTC, ms), "level", "event" and the fields
 * the caller adds.  The level comes from PERSISTOR_LOG_LEVEL (debug, info,
 * warn, error, off; default warn), read once.  Credentials never reach the
 * output: string fields and messages pass through log_redact().
 *
 *     log_line line;
 *     if (log_begin(&line, PERSISTOR_LOG_INFO, "adapter_loaded")) {
 *         log_str(&line, "adapter", name);
 *         log_int(&line, "ms", elapsed);
 *         log_end(&line);
 *     }
 */
#ifndef PERSISTOR_CORE_LOG_H
#define PERSISTOR_CORE_LOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "persistor/adapter.h"

typedef struct log_line {
    char text[2048];
    size_t len;
    bool truncated;
} log_line;

/* False when `level` is below the configured level: skip the fields. */
bool log_begin(log_line *line, int32_t level, const char *event);
void log_str(log_line *line, const char *key, const char *value);
void log_int(log_line *line, const char *key, int64_t value);
void log_double(log_line *line, const char *key, double value);
void log_bool(log_line *line, const char *key, bool value);
void log_end(log_line *line); /* writes the line atomically */

bool log_enabled(int32_t level);
/* Re-read PERSISTOR_LOG_LEVEL (tests). */
void log_reload_level(void);
/* Send lines to `fd` instead of stderr (tests); -1 restores stderr. */
void log_set_fd(int fd);

/* Copy `in` to `out` (size `cap`, always NUL-terminated) with credentials
 * masked: the password of any "scheme://user:password@" becomes "***", and
 * "password=..." / "pwd=..." / "secret=..." / "token=..." values too. */
void log_redact(const char *in, char *out, size_t cap);

#endif
