/*
 * utf8.c — strict UTF-8 checks (see utf8.h).
 */
#include "utf8.h"

#include <stdint.h>
#include <string.h>

size_t utf8_sequence(const unsigned char *s, size_t avail)
{
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    size_t n;

    if (s[0] >= 0xC2 && s[0] <= 0xDF)
        n = 2;
    else if (s[0] >= 0xE0 && s[0] <= 0xEF)
        n = 3;
    else if (s[0] >= 0xF0 && s[0] <= 0xF4)
        n = 4;
    else
        return 0;
    if (s[0] == 0xE0)
        lo = 0xA0;
    else if (s[0] == 0xED)
        hi = 0x9F;
    else if (s[0] == 0xF0)
        lo = 0x90;
    else if (s[0] == 0xF4)
        hi = 0x8F;
    if (avail < n || s[1] < lo || s[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xBF)
            return 0;
    return n;
}

/* Does the 8-byte word hold a byte that is zero? (the classic bit trick) */
static bool word_has_zero(uint64_t w)
{
    return ((w - 0x0101010101010101ull) & ~w & 0x8080808080808080ull) != 0;
}

bool utf8_valid(const char *s, size_t len, bool allow_nul)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;
    while (p < end) {
        /* Most text is ASCII: skip it a word at a time. */
        while (end - p >= 8) {
            uint64_t w;
            memcpy(&w, p, sizeof w);
            if ((w & 0x8080808080808080ull) != 0 || (!allow_nul && word_has_zero(w)))
                break;
            p += 8;
        }
        if (p == end)
            break;
        if (*p < 0x80) {
            if (*p == 0 && !allow_nul)
                return false;
            p++;
            continue;
        }
        size_t n = utf8_sequence(p, (size_t)(end - p));
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}
