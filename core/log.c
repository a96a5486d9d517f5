/*
 * log.c — structured logs as JSON lines on stderr.
 *
 * One line per event, written with a single write(2) so lines from several
 * threads never interleave.  Values are escaped for JSON and redacted for
 * credentials here, once, so no caller can forget to.  Never allocates,
 * never fails loudly: a line that does not fit is cut and marked.
 */
#include "log.h"

#include <ctype.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define LOG_LEVEL_OFF 100

static atomic_int log_level_cached = -1;
static atomic_int log_fd = 2;

static int log_parse_level(const char *text)
{
    if (text == NULL || *text == '\0')
        return PERSISTOR_LOG_WARN;
    if (strcasecmp(text, "debug") == 0)
        return PERSISTOR_LOG_DEBUG;
    if (strcasecmp(text, "info") == 0)
        return PERSISTOR_LOG_INFO;
    if (strcasecmp(text, "warn") == 0 || strcasecmp(text, "warning") == 0)
        return PERSISTOR_LOG_WARN;
    if (strcasecmp(text, "error") == 0)
        return PERSISTOR_LOG_ERROR;
    if (strcasecmp(text, "off") == 0 || strcasecmp(text, "none") == 0)
        return LOG_LEVEL_OFF;
    return PERSISTOR_LOG_WARN;
}

void log_reload_level(void)
{
    atomic_store(&log_level_cached, log_parse_level(getenv("PERSISTOR_LOG_LEVEL")));
}

void log_set_fd(int fd)
{
    atomic_store(&log_fd, fd < 0 ? 2 : fd);
}

bool log_enabled(int32_t level)
{
    int current = atomic_load(&log_level_cached);
    if (current < 0) {
        log_reload_level();
        current = atomic_load(&log_level_cached);
    }
    return level >= current;
}

static const char *log_level_name(int32_t level)
{
    switch (level) {
    case PERSISTOR_LOG_DEBUG: return "debug";
    case PERSISTOR_LOG_INFO: return "info";
    case PERSISTOR_LOG_WARN: return "warn";
    default: return "error";
    }
}

static bool log_redact_whole(const char *in, char *out, size_t cap);

/* A field is built whole in `field` and added only if it fits, so a full
 * line drops fields instead of cutting one in the middle of an escape. */
typedef struct log_field {
    char text[1400];
    size_t len;
} log_field;

/* Room kept at the end for ,"truncated":true}\n and the NUL. */
#define LOG_RESERVE 24

static void field_raw(log_field *f, const char *text, size_t n)
{
    if (n > sizeof f->text - f->len)
        n = sizeof f->text - f->len;
    memcpy(f->text + f->len, text, n);
    f->len += n;
}

/* Bytes in the UTF-8 sequence starting at `s`: 1 for ASCII and for bytes
 * that start no sequence (passed through as they are), 0 when the string
 * ends inside the sequence (a value cut short). */
static size_t utf8_sequence_len(const char *s)
{
    unsigned char c = (unsigned char)*s;
    size_t n = c < 0xc0 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : c < 0xf8 ? 4 : 1;
    for (size_t i = 1; i < n; i++) {
        if (s[i] == '\0')
            return 0;
        if (((unsigned char)s[i] & 0xc0) != 0x80)
            return 1;
    }
    return n;
}

/* Escape `s` into the field one whole character or escape at a time,
 * leaving `keep` bytes free for what must follow, so a cut never lands
 * inside "\u001f" or a UTF-8 sequence.  False when it had to stop early. */
static bool field_escaped(log_field *f, const char *s, size_t keep)
{
    char esc[8];
    while (*s != '\0') {
        unsigned char c = (unsigned char)*s;
        const char *unit = s;
        size_t in = 1, out;
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            unit = esc;
            out = 2;
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            unit = esc;
            out = 6;
        } else if ((in = out = utf8_sequence_len(s)) == 0) {
            return false;
        }
        if (f->len + out + keep > sizeof f->text)
            return false;
        field_raw(f, unit, out);
        s += in;
    }
    return true;
}

static void field_key(log_field *f, const char *key)
{
    f->len = 0;
    field_raw(f, ",\"", 2);
    field_escaped(f, key, 2);
    field_raw(f, "\":", 2);
}

static void line_add(log_line *line, const log_field *f)
{
    if (line->len + f->len + LOG_RESERVE > sizeof line->text) {
        line->truncated = true;
        return;
    }
    memcpy(line->text + line->len, f->text, f->len);
    line->len += f->len;
}

bool log_begin(log_line *line, int32_t level, const char *event)
{
    if (!log_enabled(level))
        return false;
    line->truncated = false;

    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    struct tm tm;
    gmtime_r(&now.tv_sec, &tm);
    int n = snprintf(line->text, sizeof line->text,
                     "{\"ts\":\"%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ\"", tm.tm_year + 1900,
                     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                     now.tv_nsec / 1000000L);
    line->len = (size_t)n;
    log_str(line, "level", log_level_name(level));
    log_str(line, "event", event);
    return true;
}

void log_str(log_line *line, const char *key, const char *value)
{
    char clean[1024];
    log_field f;
    field_key(&f, key);
    if (value == NULL) {
        field_raw(&f, "null", 4);
    } else {
        bool whole = log_redact_whole(value, clean, sizeof clean);
        field_raw(&f, "\"", 1);
        /* One byte kept for the closing quote, even when the value is cut. */
        whole = field_escaped(&f, clean, 1) && whole;
        field_raw(&f, "\"", 1);
        if (!whole)
            line->truncated = true;
    }
    line_add(line, &f);
}

static void log_number(log_line *line, const char *key, const char *text)
{
    log_field f;
    field_key(&f, key);
    field_raw(&f, text, strlen(text));
    line_add(line, &f);
}

void log_int(log_line *line, const char *key, int64_t value)
{
    char text[32];
    snprintf(text, sizeof text, "%lld", (long long)value);
    log_number(line, key, text);
}

void log_double(log_line *line, const char *key, double value)
{
    char text[64];
    if (!isfinite(value)) { /* JSON has no NaN or Infinity */
        log_number(line, key, "null");
        return;
    }
    snprintf(text, sizeof text, "%.3f", value);
    log_number(line, key, text);
}

void log_bool(log_line *line, const char *key, bool value)
{
    log_number(line, key, value ? "true" : "false");
}

void log_end(log_line *line)
{
    static const char mark[] = ",\"truncated\":true";
    if (line->truncated) {
        memcpy(line->text + line->len, mark, sizeof mark - 1);
        line->len += sizeof mark - 1;
    }
    line->text[line->len++] = '}';
    line->text[line->len++] = '\n';
    ssize_t ignored = write(atomic_load(&log_fd), line->text, line->len);
    (void)ignored;
}

/* Mask from `start` until one of `stops` or the end; returns where it ended. */
static const char *log_mask_until(const char *start, const char *stops, char *out, size_t cap,
                                  size_t *o)
{
    const char *p = start;
    while (*p != '\0' && strchr(stops, *p) == NULL)
        p++;
    for (const char *m = "***"; *m != '\0' && *o + 1 < cap; m++)
        out[(*o)++] = *m;
    return p;
}

static bool log_secret_key_at(const char *p, const char *begin, size_t *key_len)
{
    static const char *const secret_keys[] = {"password=", "pwd=", "secret=", "token=",
                                              "passwd=", NULL};
    /* "access_token=", "DB_PASSWORD=": a word joined by '_' is still the key. */
    if (p != begin && isalnum((unsigned char)p[-1]))
        return false;
    for (size_t i = 0; secret_keys[i] != NULL; i++) {
        size_t n = strlen(secret_keys[i]);
        if (strncasecmp(p, secret_keys[i], n) == 0) {
            *key_len = n;
            return true;
        }
    }
    return false;
}

/* log_redact; false when `out` was too small for all of `in`. */
static bool log_redact_whole(const char *in, char *out, size_t cap)
{
    size_t o = 0;
    const char *p = in;
    if (cap == 0)
        return *in == '\0';
    while (*p != '\0' && o + 1 < cap) {
        size_t key_len;
        /* scheme://user:password@host -> scheme://user:***@host */
        if (p[0] == ':' && p[1] == '/' && p[2] == '/') {
            const char *auth = p + 3;
            const char *at = auth;
            while (*at != '\0' && *at != '@' && *at != '/' && *at != ' ')
                at++;
            const char *colon = memchr(auth, ':', (size_t)(at - auth));
            if (*at == '@' && colon != NULL) {
                for (const char *c = p; c <= colon && o + 1 < cap; c++)
                    out[o++] = *c;
                p = log_mask_until(colon + 1, "@", out, cap, &o);
                continue;
            }
        }
        if (log_secret_key_at(p, in, &key_len)) {
            for (size_t i = 0; i < key_len && o + 1 < cap; i++)
                out[o++] = p[i];
            p = log_mask_until(p + key_len, "&; ,\"'", out, cap, &o);
            continue;
        }
        out[o++] = *p++;
    }
    out[o] = '\0';
    return *p == '\0';
}

void log_redact(const char *in, char *out, size_t cap)
{
    (void)log_redact_whole(in, out, cap);
}
