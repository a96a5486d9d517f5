/*
 * utf8.h — strict UTF-8 (Unicode 15, table 3-7): no overlong forms, no
 * surrogates, nothing above U+10FFFF.  Shared by the JSON parser and the
 * document check, which runs on every byte an application writes, so the
 * whole-string check reads ASCII eight bytes at a time.
 */
#ifndef PERSISTOR_CORE_UTF8_H
#define PERSISTOR_CORE_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* Length of the well-formed multi-byte sequence at s (2 to 4), or 0 when
 * s[0] starts none or the sequence is cut or malformed within `avail`. */
size_t utf8_sequence(const unsigned char *s, size_t avail);

/* Is s[0..len) well-formed UTF-8?  NUL bytes pass only if allow_nul. */
bool utf8_valid(const char *s, size_t len, bool allow_nul);

#endif
