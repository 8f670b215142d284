/* utf8.h - module-private: strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF). */
#ifndef MGO_UTF8_H
#define MGO_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* True when s[0..len) is valid UTF-8 and holds no NUL byte. */
bool mgo_utf8__valid(const char *s, size_t len);

/* Word tests: no byte has its high bit set and none is NUL. */
static inline bool mgo_utf8__ascii8(uint64_t w)
{
    const uint64_t high = 0x8080808080808080ull, ones = 0x0101010101010101ull;
    return ((w | ((w - ones) & ~w)) & high) == 0;
}

static inline bool mgo_utf8__ascii4(uint32_t w)
{
    const uint32_t high = 0x80808080u, ones = 0x01010101u;
    return ((w | ((w - ones) & ~w)) & high) == 0;
}

/* mgo_utf8__valid, inline for the common case: a decoded document is mostly short ASCII
 * strings (keys under 16 bytes), checked here in whole words, the last one overlapping the
 * previous; the full validator only runs from the first word that is not plain ASCII (the
 * bytes before it are complete characters). */
static inline bool mgo_utf8__check(const char *s, size_t len)
{
    if (len >= 8) {
        uint64_t w;
        size_t i = 0;
        for (; len - i >= 8; i += 8) {
            memcpy(&w, s + i, sizeof w);
            if (!mgo_utf8__ascii8(w))
                return mgo_utf8__valid(s + i, len - i);
        }
        if (i < len) {
            memcpy(&w, s + len - 8, sizeof w);
            if (!mgo_utf8__ascii8(w))
                return mgo_utf8__valid(s + i, len - i);
        }
        return true;
    }
    if (len >= 4) {
        uint32_t a, b;
        memcpy(&a, s, sizeof a);
        memcpy(&b, s + len - 4, sizeof b);
        return (mgo_utf8__ascii4(a) && mgo_utf8__ascii4(b)) || mgo_utf8__valid(s, len);
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == 0 || c >= 0x80)
            return mgo_utf8__valid(s + i, len - i);
    }
    return true;
}

#endif
