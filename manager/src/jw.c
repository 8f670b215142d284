/* jw.c - streaming JSON writer (see jw.h). */
#include "jw.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

void mgo_jw_init(struct mgo_jw *w, struct mgo_buf *buf)
{
    memset(w, 0, sizeof *w);
    w->buf = buf;
    w->first[0] = true;
}

static void put(struct mgo_jw *w, const char *s, size_t len)
{
    if (w->err == MGO_OK)
        w->err = mgo_buf_append(w->buf, s, len);
}

/* separator before a value (or key) at the current level */
static void sep(struct mgo_jw *w)
{
    if (w->after_key) {
        w->after_key = false;
        return;
    }
    if (!w->first[w->depth])
        put(w, ",", 1);
    w->first[w->depth] = false;
}

static void open_(struct mgo_jw *w, char c)
{
    sep(w);
    put(w, &c, 1);
    if (w->depth + 1 >= MGO_JW_MAX_DEPTH) {
        w->err = MGO_ERR_LIMIT;
        return;
    }
    w->depth++;
    w->first[w->depth] = true;
}

static void close_(struct mgo_jw *w, char c)
{
    if (w->depth == 0) {
        w->err = MGO_ERR_INTERNAL;
        return;
    }
    w->depth--;
    put(w, &c, 1);
}

void mgo_jw_obj(struct mgo_jw *w)
{
    open_(w, '{');
}
void mgo_jw_obj_end(struct mgo_jw *w)
{
    close_(w, '}');
}
void mgo_jw_arr(struct mgo_jw *w)
{
    open_(w, '[');
}
void mgo_jw_arr_end(struct mgo_jw *w)
{
    close_(w, ']');
}

static void quoted(struct mgo_jw *w, const char *s, size_t len)
{
    if (w->err == MGO_OK)
        w->err = mgo_json_put_string(w->buf, s, len);
}

void mgo_jw_key(struct mgo_jw *w, const char *key)
{
    sep(w);
    quoted(w, key, strlen(key));
    put(w, ":", 1);
    w->after_key = true;
}

void mgo_jw_strn(struct mgo_jw *w, const char *s, size_t len)
{
    sep(w);
    quoted(w, s, len);
}

void mgo_jw_str(struct mgo_jw *w, const char *s)
{
    if (s == NULL)
        mgo_jw_null(w);
    else
        mgo_jw_strn(w, s, strlen(s));
}

void mgo_jw_u64(struct mgo_jw *w, uint64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRIu64, v);
    sep(w);
    put(w, t, (size_t)n);
}

void mgo_jw_i64(struct mgo_jw *w, int64_t v)
{
    char t[24];
    int n = snprintf(t, sizeof t, "%" PRId64, v);
    sep(w);
    put(w, t, (size_t)n);
}

void mgo_jw_bool(struct mgo_jw *w, bool v)
{
    sep(w);
    put(w, v ? "true" : "false", v ? 4 : 5);
}

void mgo_jw_null(struct mgo_jw *w)
{
    sep(w);
    put(w, "null", 4);
}

void mgo_jw_value(struct mgo_jw *w, const struct mgo_value *v)
{
    if (v == NULL) {
        mgo_jw_null(w);
        return;
    }
    sep(w);
    if (w->err == MGO_OK)
        w->err = mgo_value_to_json(v, false, w->buf);
}

void mgo_jw_raw(struct mgo_jw *w, const char *json)
{
    if (json == NULL || json[0] == '\0') {
        mgo_jw_null(w);
        return;
    }
    sep(w);
    put(w, json, strlen(json));
}

void mgo_jw_kstr(struct mgo_jw *w, const char *key, const char *s)
{
    mgo_jw_key(w, key);
    mgo_jw_str(w, s);
}

void mgo_jw_ku64(struct mgo_jw *w, const char *key, uint64_t v)
{
    mgo_jw_key(w, key);
    mgo_jw_u64(w, v);
}

void mgo_jw_ki64(struct mgo_jw *w, const char *key, int64_t v)
{
    mgo_jw_key(w, key);
    mgo_jw_i64(w, v);
}

void mgo_jw_kbool(struct mgo_jw *w, const char *key, bool v)
{
    mgo_jw_key(w, key);
    mgo_jw_bool(w, v);
}

void mgo_jw_ktime(struct mgo_jw *w, const char *key, int64_t ms)
{
    mgo_jw_key(w, key);
    if (ms <= 0) {
        mgo_jw_null(w);
        return;
    }
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    char t[40];
    size_t n = strftime(t, sizeof t, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(t + n, sizeof t - n, ".%03dZ", (int)(ms % 1000));
    mgo_jw_str(w, t);
}
