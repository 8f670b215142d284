/* json.c - mgo_value -> JSON text (sorted keys, as stored). Binary values become base64
 * strings; floats use the shortest form that reads back to the same double. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/value.h"

static mgo_err put(struct mgo_buf *b, const char *s, size_t n)
{
    return mgo_buf_append(b, s, n);
}

mgo_err mgo_json_put_string(struct mgo_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    mgo_err err = put(b, "\"", 1);
    size_t run = 0; /* bytes copied verbatim in one go */
    for (size_t i = 0; i < n && err == MGO_OK; i++) {
        unsigned char c = (unsigned char)s[i];
        const char *esc = NULL;
        char u[6];
        switch (c) {
        case '"':
            esc = "\\\"";
            break;
        case '\\':
            esc = "\\\\";
            break;
        case '\n':
            esc = "\\n";
            break;
        case '\r':
            esc = "\\r";
            break;
        case '\t':
            esc = "\\t";
            break;
        case '\b':
            esc = "\\b";
            break;
        case '\f':
            esc = "\\f";
            break;
        default:
            /* C0 controls, DEL, C1 controls, U+2028/U+2029 and U+FFFE/U+FFFF are written as \u
             * escapes, so the output is also valid YAML (which excludes them or breaks lines
             * at them). */
            if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] >= 0x80 &&
                (unsigned char)s[i + 1] <= 0x9F) {
                unsigned cp = (unsigned char)s[i + 1];
                u[0] = '\\';
                u[1] = 'u';
                u[2] = '0';
                u[3] = '0';
                u[4] = hex[cp >> 4];
                u[5] = hex[cp & 15];
                err = put(b, s + i - run, run);
                run = 0;
                if (err == MGO_OK)
                    err = put(b, u, 6);
                i++;
                continue;
            }
            if (c == 0xEF && i + 2 < n && (unsigned char)s[i + 1] == 0xBF &&
                ((unsigned char)s[i + 2] == 0xBE || (unsigned char)s[i + 2] == 0xBF)) {
                err = put(b, s + i - run, run);
                run = 0;
                if (err == MGO_OK)
                    err = put(b, (unsigned char)s[i + 2] == 0xBE ? "\\ufffe" : "\\uffff", 6);
                i += 2;
                continue;
            }
            /* U+2028, U+2029: line breaks to YAML (and to JavaScript before ES2019) */
            if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80 &&
                ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) {
                err = put(b, s + i - run, run);
                run = 0;
                if (err == MGO_OK)
                    err = put(b, (unsigned char)s[i + 2] == 0xA8 ? "\\u2028" : "\\u2029", 6);
                i += 2;
                continue;
            }
            if (c < 0x20 || c == 0x7F) {
                u[0] = '\\';
                u[1] = 'u';
                u[2] = '0';
                u[3] = '0';
                u[4] = hex[c >> 4];
                u[5] = hex[c & 15];
                err = put(b, s + i - run, run);
                run = 0;
                if (err == MGO_OK)
                    err = put(b, u, 6);
                continue;
            }
            run++;
            continue;
        }
        err = put(b, s + i - run, run);
        run = 0;
        if (err == MGO_OK)
            err = put(b, esc, strlen(esc));
    }
    if (err == MGO_OK)
        err = put(b, s + n - run, run);
    if (err == MGO_OK)
        err = put(b, "\"", 1);
    return err;
}

static mgo_err put_base64(struct mgo_buf *b, const unsigned char *p, size_t n)
{
    static const char tbl[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    mgo_err err = put(b, "\"", 1);
    for (size_t i = 0; i < n && err == MGO_OK; i += 3) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)p[i + 1] << 8;
        if (i + 2 < n)
            v |= p[i + 2];
        char out[4] = {tbl[(v >> 18) & 63], tbl[(v >> 12) & 63],
                       i + 1 < n ? tbl[(v >> 6) & 63] : '=', i + 2 < n ? tbl[v & 63] : '='};
        err = put(b, out, 4);
    }
    if (err == MGO_OK)
        err = put(b, "\"", 1);
    return err;
}

static mgo_err put_double(struct mgo_buf *b, double f)
{
    char text[MGO_DOUBLE_STR_SIZE + 2];
    if (!isfinite(f))
        return put(b, "null", 4);
    size_t tl = mgo_format_double(f, text);
    /* keep it a float when read back: 24 -> 24.0 */
    if (strpbrk(text, ".eE") == NULL) {
        memcpy(text + tl, ".0", 3);
        tl += 2;
    }
    return put(b, text, tl);
}

static mgo_err indent(struct mgo_buf *b, bool pretty, unsigned depth)
{
    if (!pretty)
        return MGO_OK;
    mgo_err err = put(b, "\n", 1);
    for (unsigned i = 0; i < depth && err == MGO_OK; i++)
        err = put(b, "  ", 2);
    return err;
}

static mgo_err write_value(struct mgo_buf *b, const struct mgo_value *v, bool pretty,
                           unsigned depth)
{
    char num[32];
    mgo_err err = MGO_OK;
    if (depth > 64)
        return MGO_ERR_LIMIT;
    switch (v->kind) {
    case MGO_V_NULL:
        return put(b, "null", 4);
    case MGO_V_BOOL:
        return v->as.b ? put(b, "true", 4) : put(b, "false", 5);
    case MGO_V_INT:
        snprintf(num, sizeof num, "%lld", (long long)v->as.i);
        return put(b, num, strlen(num));
    case MGO_V_UINT:
        snprintf(num, sizeof num, "%llu", (unsigned long long)v->as.u);
        return put(b, num, strlen(num));
    case MGO_V_FLOAT:
        return put_double(b, v->as.f);
    case MGO_V_STR:
        return mgo_json_put_string(b, v->as.str.ptr, v->as.str.len);
    case MGO_V_BIN:
        return put_base64(b, (const unsigned char *)v->as.str.ptr, v->as.str.len);
    case MGO_V_ARRAY:
        err = put(b, "[", 1);
        for (size_t i = 0; i < v->as.array.len && err == MGO_OK; i++) {
            if (i > 0)
                err = put(b, ",", 1);
            if (err == MGO_OK)
                err = indent(b, pretty, depth + 1);
            if (err == MGO_OK)
                err = write_value(b, &v->as.array.items[i], pretty, depth + 1);
        }
        if (err == MGO_OK && v->as.array.len > 0)
            err = indent(b, pretty, depth);
        return err == MGO_OK ? put(b, "]", 1) : err;
    case MGO_V_MAP:
        err = put(b, "{", 1);
        for (size_t i = 0; i < v->as.map.len && err == MGO_OK; i++) {
            const struct mgo_member *m = &v->as.map.items[i];
            if (i > 0)
                err = put(b, ",", 1);
            if (err == MGO_OK)
                err = indent(b, pretty, depth + 1);
            if (err == MGO_OK)
                err = mgo_json_put_string(b, m->key, m->key_len);
            if (err == MGO_OK)
                err = pretty ? put(b, ": ", 2) : put(b, ":", 1);
            if (err == MGO_OK)
                err = write_value(b, &m->value, pretty, depth + 1);
        }
        if (err == MGO_OK && v->as.map.len > 0)
            err = indent(b, pretty, depth);
        return err == MGO_OK ? put(b, "}", 1) : err;
    }
    return MGO_ERR_INTERNAL;
}

mgo_err mgo_value_to_json(const struct mgo_value *v, bool pretty, struct mgo_buf *buf)
{
    size_t start = buf->len;
    mgo_err err = write_value(buf, v, pretty, 0);
    if (err != MGO_OK) {
        buf->len = start;
        if (buf->data != NULL)
            buf->data[start] = '\0';
    }
    return err;
}
