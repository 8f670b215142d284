/* codec_util.c - the tree reader shared by the typed codecs. */
#include "codec_util.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "mgo/limits.h"

void mgo_codec__rd_init(struct mgo_rd *rd, struct mgo_arena *arena, struct mgo_problems *p)
{
    rd->arena = arena;
    rd->problems = p;
    rd->depth = 0;
    rd->failed = false;
    rd->nomem = false;
}

/* Appends text to path[0..*len) when it fits, as the path has always been built: a piece
 * that does not fit is left out (a truncated path still names the place). */
static void append_path(char *path, size_t *len, const char *text, size_t n)
{
    if (*len + n + 1 < MGO_MAX_FIELD_PATH) {
        memcpy(path + *len, text, n);
        *len += n;
        path[*len] = '\0';
    }
}

/* Spells out the current path ("spec.deploymentProfile.components[1]"); "" at the root. */
static size_t format_path(const struct mgo_rd *rd, char path[MGO_MAX_FIELD_PATH])
{
    size_t len = 0;
    path[0] = '\0';
    size_t depth = rd->depth < MGO_RD_MAX_SEGS ? rd->depth : MGO_RD_MAX_SEGS;
    for (size_t i = 0; i < depth; i++) {
        const struct mgo_rd_seg *seg = &rd->segs[i];
        if (seg->key != NULL) {
            if (len > 0)
                append_path(path, &len, ".", 1);
            append_path(path, &len, seg->key, strlen(seg->key));
            continue;
        }
        /* "[index]" formatted by hand (no snprintf in the hot path of old) */
        char digits[24];
        size_t n = 0;
        size_t index = seg->index;
        do {
            digits[n++] = (char)('0' + index % 10);
            index /= 10;
        } while (index > 0);
        char text[32];
        size_t tlen = 0;
        text[tlen++] = '[';
        while (n > 0)
            text[tlen++] = digits[--n];
        text[tlen++] = ']';
        append_path(path, &len, text, tlen);
    }
    return len;
}

void mgo_codec__fail(struct mgo_rd *rd, const char *key, const char *fmt, ...)
{
    char path[MGO_MAX_FIELD_PATH];
    size_t path_len = format_path(rd, path);
    char field[MGO_MAX_FIELD_PATH];
    int n;
    if (key != NULL && path_len > 0)
        n = snprintf(field, sizeof field, "%s.%s", path, key);
    else if (key != NULL)
        n = snprintf(field, sizeof field, "%s", key);
    else
        n = snprintf(field, sizeof field, "%s", path_len ? path : "$");
    if (n < 0 || (size_t)n >= sizeof field)
        field[sizeof field - 1] = '\0'; /* a truncated path still names the place */
    char rule[MGO_MAX_PROBLEM_TEXT];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(rule, sizeof rule, fmt, ap);
    va_end(ap);
    mgo_problems_add(rd->problems, field, "%s", rule);
    rd->failed = true;
}

mgo_err mgo_codec__result(const struct mgo_rd *rd)
{
    if (rd->nomem)
        return MGO_ERR_NOMEM;
    return rd->failed ? MGO_ERR_INVALID : MGO_OK;
}

void *mgo_codec__alloc(struct mgo_rd *rd, size_t size)
{
    void *p = mgo_arena_alloc(rd->arena, size ? size : 1);
    if (p == NULL && !rd->nomem) {
        rd->nomem = true;
        mgo_codec__fail(rd, NULL, "document needs more than MGO_MAX_DOC_ARENA_BYTES");
    }
    return p;
}

const struct mgo_value *mgo_codec__field_slow(struct mgo_rd *rd, const struct mgo_value *map,
                                              const char *key, size_t key_len, bool required)
{
    if (map == NULL)
        return NULL;
    if (map->kind != MGO_V_MAP) {
        mgo_codec__fail(rd, NULL, "must be a map, got %s", mgo_value_kind_name(map->kind));
        return NULL;
    }
    const struct mgo_value *v = mgo_codec__lookup(map, key, key_len);
    if (v != NULL && v->kind == MGO_V_NULL && required) {
        mgo_codec__fail(rd, key, "is required and must not be null");
        return NULL;
    }
    if (v != NULL && v->kind == MGO_V_NULL)
        return NULL;
    if (v == NULL && required)
        mgo_codec__fail(rd, key, "is required");
    return v;
}

const char *mgo_codec__str_slow(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                                size_t key_len, bool required, size_t max_len)
{
    const struct mgo_value *v = mgo_codec__field_slow(rd, map, key, key_len, required);
    if (v == NULL)
        return NULL;
    const char *s = NULL;
    size_t n = 0;
    if (v->kind == MGO_V_STR) {
        s = v->as.str.ptr;
        n = v->as.str.len;
    } else if (v->text != NULL && v->kind != MGO_V_MAP && v->kind != MGO_V_ARRAY) {
        s = v->text; /* YAML plain scalar such as `version: 1.0` */
        n = strlen(s);
    } else {
        mgo_codec__fail(rd, key, "must be a string, got %s", mgo_value_kind_name(v->kind));
        return NULL;
    }
    if (max_len == 0)
        max_len = MGO_MAX_STRING_BYTES;
    if (n > max_len) {
        mgo_codec__fail(rd, key, "is %zu bytes long, at most %zu allowed", n, max_len);
        return NULL;
    }
    return s;
}

bool mgo_codec__uint_n(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                       size_t key_len, bool required, uint64_t *out)
{
    const struct mgo_value *v = mgo_codec__field_slow(rd, map, key, key_len, required);
    if (v == NULL)
        return false;
    if (v->kind == MGO_V_INT) {
        mgo_codec__fail(rd, key, "must not be negative");
        return false;
    }
    if (v->kind != MGO_V_UINT) {
        mgo_codec__fail(rd, key, "must be an unsigned integer, got %s",
                        mgo_value_kind_name(v->kind));
        return false;
    }
    *out = v->as.u;
    return true;
}

bool mgo_codec__bool_slow(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                          size_t key_len, bool required, bool *out)
{
    const struct mgo_value *v = mgo_codec__field_slow(rd, map, key, key_len, required);
    if (v == NULL)
        return false;
    if (v->kind != MGO_V_BOOL) {
        mgo_codec__fail(rd, key, "must be a boolean, got %s", mgo_value_kind_name(v->kind));
        return false;
    }
    *out = v->as.b;
    return true;
}

bool mgo_codec__number_n(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                         size_t key_len, bool required, double *out)
{
    const struct mgo_value *v = mgo_codec__field_slow(rd, map, key, key_len, required);
    if (v == NULL)
        return false;
    switch (v->kind) {
    case MGO_V_UINT:
        *out = (double)v->as.u;
        return true;
    case MGO_V_INT:
        *out = (double)v->as.i;
        return true;
    case MGO_V_FLOAT:
        *out = v->as.f;
        return true;
    default:
        mgo_codec__fail(rd, key, "must be a number, got %s", mgo_value_kind_name(v->kind));
        return false;
    }
}

const struct mgo_value *mgo_codec__array_slow(struct mgo_rd *rd, const struct mgo_value *map,
                                              const char *key, size_t key_len, bool required,
                                              size_t min_items, size_t max_items)
{
    const struct mgo_value *v = mgo_codec__field_slow(rd, map, key, key_len, required);
    if (v == NULL)
        return NULL;
    if (v->kind != MGO_V_ARRAY) {
        mgo_codec__fail(rd, key, "must be a list, got %s", mgo_value_kind_name(v->kind));
        return NULL;
    }
    if (v->as.array.len < min_items) {
        mgo_codec__fail(rd, key, "must have at least %zu item%s", min_items,
                        min_items == 1 ? "" : "s");
        return NULL;
    }
    if (v->as.array.len > max_items) {
        mgo_codec__fail(rd, key, "has %zu items, at most %zu allowed", v->as.array.len, max_items);
        return NULL;
    }
    return v;
}

const struct mgo_value *mgo_codec__map_slow(struct mgo_rd *rd, const struct mgo_value *map,
                                            const char *key, size_t key_len, bool required)
{
    const struct mgo_value *v = mgo_codec__field_slow(rd, map, key, key_len, required);
    if (v == NULL)
        return NULL;
    if (v->kind != MGO_V_MAP) {
        mgo_codec__fail(rd, key, "must be a map, got %s", mgo_value_kind_name(v->kind));
        return NULL;
    }
    return v;
}

int mgo_codec__enum_n(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                      size_t key_len, bool required, const char *const *names, size_t n)
{
    const char *s = mgo_codec__str_n(rd, map, key, key_len, required, 64);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[0] == names[i][0] && strcmp(s, names[i]) == 0) /* a call only when it may match */
            return (int)i;
    }
    char allowed[MGO_MAX_PROBLEM_TEXT / 2];
    size_t used = 0;
    allowed[0] = '\0';
    for (size_t i = 0; i < n && used + 1 < sizeof allowed; i++) {
        int w = snprintf(allowed + used, sizeof allowed - used, "%s%s", i ? ", " : "", names[i]);
        if (w < 0)
            break;
        used += (size_t)w;
    }
    mgo_codec__fail(rd, key, "\"%.40s\" is not one of: %s", s, allowed);
    return -1;
}

mgo_err mgo_codec__str_array(struct mgo_arena *arena, const char *const *items, size_t n,
                             struct mgo_value *out)
{
    mgo_err err = mgo_value_array_new(arena, n, out);
    if (err != MGO_OK)
        return err;
    for (size_t i = 0; i < n; i++)
        out->as.array.items[i] = mgo_value_str(items[i]);
    return MGO_OK;
}

/* Bytes 0x80 and up belong to no class (left zero). */
const unsigned char mgo_codec__char_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0, 0, /* 0x00 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  0, 0, /* 0x10 */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 14, 4, 0, /* 0x20 */
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 0, 0, 0, 0,  0, 0, /* 0x30 */
    0, 5, 5, 5, 5, 5, 5, 4, 4, 4, 4, 4, 4, 4,  4, 4, /* 0x40 */
    4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 0, 0,  0, 4, /* 0x50 */
    0, 7, 7, 7, 7, 7, 7, 6, 6, 6, 6, 6, 6, 6,  6, 6, /* 0x60 */
    6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6, 0, 0, 0,  4, 0, /* 0x70 */
};

bool mgo_codec__is_device_path(const char *s, bool allow_wildcard)
{
    size_t seg = 0;
    for (const char *p = s;; p++) {
        char c = *p;
        if (c == '\0' || c == '/') {
            if (seg == 0)
                return false;
            if (c == '\0')
                return true;
            if (allow_wildcard && p[1] == '*' && p[2] == '\0')
                return true;
            seg = 0;
            continue;
        }
        if (!(mgo_codec__char_class[(unsigned char)c] & MGO_CC_UNRESERVED))
            return false;
        seg++;
    }
}
