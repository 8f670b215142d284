/* jw.h - a small streaming JSON writer over mgo_buf for API replies (manager-private).
 * Errors are sticky: check w->err once at the end. */
#ifndef MGO_JW_H
#define MGO_JW_H

#include <stdbool.h>
#include <stdint.h>
#include "mgo/buf.h"
#include "mgo/value.h"

#define MGO_JW_MAX_DEPTH 16

struct mgo_jw {
    struct mgo_buf *buf;
    unsigned depth;
    bool first[MGO_JW_MAX_DEPTH]; /* nothing written yet at this level */
    bool after_key;
    mgo_err err;
};

void mgo_jw_init(struct mgo_jw *w, struct mgo_buf *buf);
void mgo_jw_obj(struct mgo_jw *w);
void mgo_jw_obj_end(struct mgo_jw *w);
void mgo_jw_arr(struct mgo_jw *w);
void mgo_jw_arr_end(struct mgo_jw *w);
void mgo_jw_key(struct mgo_jw *w, const char *key);
void mgo_jw_str(struct mgo_jw *w, const char *s); /* NULL writes null */
void mgo_jw_strn(struct mgo_jw *w, const char *s, size_t len);
void mgo_jw_u64(struct mgo_jw *w, uint64_t v);
void mgo_jw_i64(struct mgo_jw *w, int64_t v);
void mgo_jw_bool(struct mgo_jw *w, bool v);
void mgo_jw_null(struct mgo_jw *w);
void mgo_jw_value(struct mgo_jw *w, const struct mgo_value *v); /* NULL writes null */
void mgo_jw_raw(struct mgo_jw *w, const char *json);            /* already valid JSON */
/* key + value shorthands */
void mgo_jw_kstr(struct mgo_jw *w, const char *key, const char *s);
void mgo_jw_ku64(struct mgo_jw *w, const char *key, uint64_t v);
void mgo_jw_ki64(struct mgo_jw *w, const char *key, int64_t v);
void mgo_jw_kbool(struct mgo_jw *w, const char *key, bool v);
/* ISO 8601 UTC time "2026-11-25T13:00:00.123Z" of ms since the epoch (0 writes null). */
void mgo_jw_ktime(struct mgo_jw *w, const char *key, int64_t ms);

#endif
