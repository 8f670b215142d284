/* buf.c - capped growable buffer. */
#include "mgo/buf.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/log.h"

void mgo_buf_init(struct mgo_buf *buf, size_t max)
{
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    buf->max = max;
}

void mgo_buf_cleanup(struct mgo_buf *buf)
{
    free(buf->data);
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
}

void mgo_buf_reset(struct mgo_buf *buf)
{
    buf->len = 0;
    if (buf->data != NULL)
        buf->data[0] = '\0';
}

static mgo_err reserve(struct mgo_buf *buf, size_t extra)
{
    if (extra > buf->max || buf->len > buf->max - extra)
        return MGO_ERR_LIMIT;
    size_t need = buf->len + extra + 1; /* room for the NUL */
    if (need <= buf->cap)
        return MGO_OK;
    size_t cap = buf->cap ? buf->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > buf->max + 1)
        cap = buf->max + 1;
    uint8_t *p = realloc(buf->data, cap);
    if (p == NULL)
        return MGO_ERR_NOMEM;
    buf->data = p;
    buf->cap = cap;
    return MGO_OK;
}

mgo_err mgo_buf_append(struct mgo_buf *buf, const void *data, size_t len)
{
    /* Fast path (room for len bytes and the NUL, within max): the MessagePack encoder
     * appends every token separately, and reserve() was 11 % of an encode (callgrind). */
    if (buf->data != NULL && len < buf->cap - buf->len && len <= buf->max - buf->len) {
        if (len > 0)
            memcpy(buf->data + buf->len, data, len);
        buf->len += len;
        buf->data[buf->len] = '\0';
        return MGO_OK;
    }
    mgo_err err = reserve(buf, len);
    if (err != MGO_OK)
        return err;
    if (len > 0)
        memcpy(buf->data + buf->len, data, len);
    buf->len += len;
    buf->data[buf->len] = '\0';
    return MGO_OK;
}

mgo_err mgo_buf_append_str(struct mgo_buf *buf, const char *str)
{
    return mgo_buf_append(buf, str, strlen(str));
}

mgo_err mgo_buf_printf(struct mgo_buf *buf, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return MGO_ERR_INTERNAL;
    mgo_err err = reserve(buf, (size_t)n);
    if (err != MGO_OK)
        return err;
    va_start(ap, fmt);
    vsnprintf((char *)buf->data + buf->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    buf->len += (size_t)n;
    return MGO_OK;
}

uint8_t *mgo_buf_take(struct mgo_buf *buf, size_t *len_out)
{
    uint8_t *p = buf->data;
    if (len_out != NULL)
        *len_out = buf->len;
    buf->data = NULL;
    buf->len = 0;
    buf->cap = 0;
    return p;
}

mgo_err mgo_buf_read_file(struct mgo_buf *buf, const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        MGO_LOGD("buf", "open %s: %s", path, strerror(errno));
        return errno == ENOENT ? MGO_ERR_NOT_FOUND : MGO_ERR_IO;
    }
    mgo_err err = MGO_OK;
    uint8_t chunk[8192];
    for (;;) {
        size_t n = fread(chunk, 1, sizeof chunk, f);
        if (n > 0) {
            err = mgo_buf_append(buf, chunk, n);
            if (err != MGO_OK)
                break;
        }
        if (n < sizeof chunk) {
            if (ferror(f))
                err = MGO_ERR_IO;
            break;
        }
    }
    fclose(f);
    return err;
}
