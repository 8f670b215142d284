/* secret.h - the one reader of secret files (API tokens, MQTT passwords).
 *
 * A secret file holds the secret on its first and only line; trailing white space (the
 * newline an editor adds, spaces, tabs, carriage returns) is not part of it. The caller's
 * buffer receives it NUL-terminated; every intermediate copy is wiped. Secrets are never
 * logged: errors name the file and the rule, not the content. */
#ifndef MGO_SECRET_H
#define MGO_SECRET_H

#include <stddef.h>

#include "mgo/err.h"

/* Reads path into out (out_size bytes including the NUL). *len_out (optional) receives the
 * length. MGO_ERR_NOT_FOUND / MGO_ERR_IO (file), MGO_ERR_LIMIT (longer than out_size - 1
 * bytes), MGO_ERR_INVALID (a NUL byte, a line break inside, or empty). On error out is "". */
mgo_err mgo_secret_read(const char *path, char *out, size_t out_size,
                        size_t *len_out) MGO_MUST_CHECK;

#endif
