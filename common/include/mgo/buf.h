/* buf.h - growable byte buffer with a hard size cap (curl's dynbuf habit). */
#ifndef MGO_BUF_H
#define MGO_BUF_H

#include <stddef.h>
#include <stdint.h>
#include "mgo/err.h"

struct mgo_buf {
    uint8_t *data; /* owned; always NUL-terminated past len when non-NULL */
    size_t len;
    size_t cap;
    size_t max; /* appends that would pass max fail with MGO_ERR_LIMIT */
};

void mgo_buf_init(struct mgo_buf *buf, size_t max);
void mgo_buf_cleanup(struct mgo_buf *buf);
void mgo_buf_reset(struct mgo_buf *buf); /* len = 0, keeps memory */
mgo_err mgo_buf_append(struct mgo_buf *buf, const void *data, size_t len) MGO_MUST_CHECK;
mgo_err mgo_buf_append_str(struct mgo_buf *buf, const char *str) MGO_MUST_CHECK;
mgo_err mgo_buf_printf(struct mgo_buf *buf, const char *fmt, ...) MGO_PRINTF(2, 3) MGO_MUST_CHECK;
/* Hands the data to the caller (free() it) and resets the buffer. */
uint8_t *mgo_buf_take(struct mgo_buf *buf, size_t *len_out);

/* Reads a whole file (at most max bytes; more is MGO_ERR_LIMIT) into buf. */
mgo_err mgo_buf_read_file(struct mgo_buf *buf, const char *path) MGO_MUST_CHECK;

#endif
