/* utf8.h - module-private: strict UTF-8 validation (no overlongs, no surrogates, <= U+10FFFF). */
#ifndef MGO_UTF8_H
#define MGO_UTF8_H

#include <stdbool.h>
#include <stddef.h>

/* True when s[0..len) is valid UTF-8 and holds no NUL byte. */
bool mgo_utf8__valid(const char *s, size_t len);

#endif
