/* digest.h - Margo digests: "sha256:" followed by 64 lowercase hex digits (OpenSSL EVP). */
#ifndef MGO_DIGEST_H
#define MGO_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include "mgo/err.h"

#define MGO_DIGEST_STR_LEN 71u /* "sha256:" + 64 hex */
#define MGO_DIGEST_STR_SIZE (MGO_DIGEST_STR_LEN + 1u)

/* out receives "sha256:<hex>" and a NUL. */
mgo_err mgo_digest_sha256(const void *data, size_t len,
                          char out[MGO_DIGEST_STR_SIZE]) MGO_MUST_CHECK;
/* Margo's general pattern ^[a-zA-Z0-9_-]+:[0-9a-fA-F]+$ */
bool mgo_digest_is_wellformed(const char *digest);
/* Exactly "sha256:" + 64 lowercase hex (the only algorithm margo-mqtt computes). */
bool mgo_digest_is_sha256(const char *digest);
/* Constant-time comparison of two NUL-terminated strings of equal length. */
bool mgo_digest_equal(const char *a, const char *b);

#endif
