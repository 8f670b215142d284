/* secret.c - see mgo/secret.h. */
#include "mgo/secret.h"

#include <string.h>

#include "mgo/buf.h"

mgo_err mgo_secret_read(const char *path, char *out, size_t out_size, size_t *len_out)
{
    if (out_size == 0)
        return MGO_ERR_LIMIT;
    out[0] = '\0';
    if (len_out != NULL)
        *len_out = 0;
    struct mgo_buf b;
    /* one byte over the limit tells "too long" from "exactly full" */
    mgo_buf_init(&b, out_size);
    mgo_err err = mgo_buf_read_file(&b, path);
    size_t len = b.len;
    while (len > 0 && (b.data[len - 1] == '\n' || b.data[len - 1] == '\r' ||
                       b.data[len - 1] == ' ' || b.data[len - 1] == '\t'))
        len--;
    if (err == MGO_OK && len > out_size - 1)
        err = MGO_ERR_LIMIT;
    if (err == MGO_OK && (len == 0 || memchr(b.data, '\0', len) != NULL ||
                          memchr(b.data, '\n', len) != NULL || memchr(b.data, '\r', len) != NULL))
        err = MGO_ERR_INVALID;
    if (err == MGO_OK) {
        memcpy(out, b.data, len);
        out[len] = '\0';
        if (len_out != NULL)
            *len_out = len;
    }
    if (b.data != NULL)
        memset(b.data, 0, b.len);
    mgo_buf_cleanup(&b);
    return err;
}
