/* value.c - the generic document tree: lookup, comparison, copy and builders. */
#include "mgo/value.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *mgo_value_kind_name(enum mgo_value_kind kind)
{
    switch (kind) {
    case MGO_V_NULL:
        return "null";
    case MGO_V_BOOL:
        return "boolean";
    case MGO_V_INT:
    case MGO_V_UINT:
        return "integer";
    case MGO_V_FLOAT:
        return "number";
    case MGO_V_STR:
        return "string";
    case MGO_V_BIN:
        return "binary";
    case MGO_V_ARRAY:
        return "array";
    case MGO_V_MAP:
        return "map";
    }
    return "unknown";
}

static int key_cmp(const char *a, size_t alen, const char *b, size_t blen)
{
    size_t n = alen < blen ? alen : blen;
    int c = n ? memcmp(a, b, n) : 0;
    if (c != 0)
        return c;
    return alen < blen ? -1 : (alen > blen ? 1 : 0);
}

static int member_cmp(const void *a, const void *b)
{
    const struct mgo_member *ma = a, *mb = b;
    return key_cmp(ma->key, ma->key_len, mb->key, mb->key_len);
}

mgo_err mgo_value_map_sort(struct mgo_value *map)
{
    if (map->kind != MGO_V_MAP)
        return MGO_ERR_INTERNAL;
    struct mgo_member *items = map->as.map.items;
    size_t n = map->as.map.len;
    bool sorted = true;
    for (size_t i = 1; i < n && sorted; i++)
        sorted = member_cmp(&items[i - 1], &items[i]) < 0;
    if (!sorted) {
        /* qsort is not stable, but equal keys are refused below, so order among them is moot. */
        qsort(items, n, sizeof *items, member_cmp);
        for (size_t i = 1; i < n; i++) {
            if (member_cmp(&items[i - 1], &items[i]) == 0)
                return MGO_ERR_INVALID;
        }
    }
    return MGO_OK;
}

/* Orders member key m->key[0..key_len) against the NUL-terminated key like key_cmp, in
 * one pass without strlen or a memcmp call: most probes of a lookup end at the first byte.
 * A NUL byte in key ends it (a shorter key sorts first), even where m->key holds a NUL. */
/* Orders member key m against key[0..key_len) bytewise, shorter first on a common prefix
 * (the order of mgo_value maps). Both are NUL-terminated, so the first bytes can be compared
 * before the lengths; most probes of a binary search end there. */
static int key_order(const struct mgo_member *m, const char *key, size_t key_len)
{
    const unsigned char *a = (const unsigned char *)m->key, *b = (const unsigned char *)key;
    if (a[0] != b[0])
        return (int)a[0] - (int)b[0];
    size_t n = m->key_len < key_len ? m->key_len : key_len;
    size_t i = 1;
    for (; i < n && n - i >= 8; i += 8) {
        uint64_t wa, wb;
        memcpy(&wa, a + i, sizeof wa);
        memcpy(&wb, b + i, sizeof wb);
        if (wa != wb)
            break; /* the byte loop below finds which byte */
    }
    for (; i < n; i++) {
        if (a[i] != b[i])
            return (int)a[i] - (int)b[i];
    }
    return m->key_len < key_len ? -1 : m->key_len > key_len;
}

const struct mgo_value *mgo_value_get_n(const struct mgo_value *v, const char *key, size_t key_len)
{
    if (v == NULL || v->kind != MGO_V_MAP)
        return NULL;
    size_t lo = 0, hi = v->as.map.len;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct mgo_member *m = &v->as.map.items[mid];
        int c = key_order(m, key, key_len);
        if (c == 0)
            return &m->value;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const struct mgo_value *mgo_value_get(const struct mgo_value *v, const char *key)
{
    return mgo_value_get_n(v, key, strlen(key));
}

/* Decodes one RFC 6901 reference token ("~0" -> "~", "~1" -> "/") into out. */
static bool pointer_token(const char *tok, size_t len, char *out, size_t out_size, size_t *out_len)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = tok[i];
        if (c == '~') {
            if (i + 1 >= len || (tok[i + 1] != '0' && tok[i + 1] != '1'))
                return false;
            c = tok[i + 1] == '0' ? '~' : '/';
            i++;
        }
        if (o + 1 >= out_size)
            return false;
        out[o++] = c;
    }
    out[o] = '\0';
    *out_len = o;
    return true;
}

const struct mgo_value *mgo_value_pointer(const struct mgo_value *v, const char *pointer)
{
    if (pointer[0] == '\0')
        return v;
    if (pointer[0] != '/')
        return NULL;
    const char *p = pointer + 1;
    char token[512];
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t len = slash ? (size_t)(slash - p) : strlen(p);
        size_t tlen = 0;
        if (!pointer_token(p, len, token, sizeof token, &tlen))
            return NULL;
        if (v->kind == MGO_V_MAP) {
            v = mgo_value_get(v, token);
        } else if (v->kind == MGO_V_ARRAY) {
            /* array index: digits only, no leading zeros */
            if (tlen == 0 || (tlen > 1 && token[0] == '0'))
                return NULL;
            size_t idx = 0;
            for (size_t i = 0; i < tlen; i++) {
                if (token[i] < '0' || token[i] > '9' || idx > MGO_MAX_ARRAY_ITEMS)
                    return NULL;
                idx = idx * 10 + (size_t)(token[i] - '0');
            }
            v = idx < v->as.array.len ? &v->as.array.items[idx] : NULL;
        } else {
            return NULL;
        }
        if (v == NULL || slash == NULL)
            return v;
        p = slash + 1;
    }
}

bool mgo_value_equal(const struct mgo_value *a, const struct mgo_value *b)
{
    if (a->kind != b->kind)
        return false;
    switch (a->kind) {
    case MGO_V_NULL:
        return true;
    case MGO_V_BOOL:
        return a->as.b == b->as.b;
    case MGO_V_INT:
        return a->as.i == b->as.i;
    case MGO_V_UINT:
        return a->as.u == b->as.u;
    case MGO_V_FLOAT:
        return a->as.f == b->as.f;
    case MGO_V_STR:
    case MGO_V_BIN:
        return a->as.str.len == b->as.str.len &&
               (a->as.str.len == 0 || memcmp(a->as.str.ptr, b->as.str.ptr, a->as.str.len) == 0);
    case MGO_V_ARRAY:
        if (a->as.array.len != b->as.array.len)
            return false;
        for (size_t i = 0; i < a->as.array.len; i++) {
            if (!mgo_value_equal(&a->as.array.items[i], &b->as.array.items[i]))
                return false;
        }
        return true;
    case MGO_V_MAP:
        if (a->as.map.len != b->as.map.len)
            return false;
        for (size_t i = 0; i < a->as.map.len; i++) {
            const struct mgo_member *ma = &a->as.map.items[i], *mb = &b->as.map.items[i];
            if (key_cmp(ma->key, ma->key_len, mb->key, mb->key_len) != 0 ||
                !mgo_value_equal(&ma->value, &mb->value))
                return false;
        }
        return true;
    }
    return false;
}

mgo_err mgo_value_copy(const struct mgo_value *src, struct mgo_arena *arena, struct mgo_value *out)
{
    *out = *src;
    out->text = NULL;
    if (src->text != NULL && (out->text = mgo_arena_strdup(arena, src->text)) == NULL)
        return MGO_ERR_NOMEM;
    switch (src->kind) {
    case MGO_V_STR:
    case MGO_V_BIN: {
        char *p = mgo_arena_strndup(arena, src->as.str.ptr, src->as.str.len);
        if (p == NULL)
            return MGO_ERR_NOMEM;
        out->as.str.ptr = p;
        return MGO_OK;
    }
    case MGO_V_ARRAY: {
        size_t n = src->as.array.len;
        struct mgo_value *items = mgo_arena_alloc(arena, (n ? n : 1) * sizeof *items);
        if (items == NULL)
            return MGO_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            mgo_err err = mgo_value_copy(&src->as.array.items[i], arena, &items[i]);
            if (err != MGO_OK)
                return err;
        }
        out->as.array.items = items;
        return MGO_OK;
    }
    case MGO_V_MAP: {
        size_t n = src->as.map.len;
        struct mgo_member *items = mgo_arena_alloc(arena, (n ? n : 1) * sizeof *items);
        if (items == NULL)
            return MGO_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            const struct mgo_member *m = &src->as.map.items[i];
            items[i].key = mgo_arena_strndup(arena, m->key, m->key_len);
            items[i].key_len = m->key_len;
            if (items[i].key == NULL)
                return MGO_ERR_NOMEM;
            mgo_err err = mgo_value_copy(&m->value, arena, &items[i].value);
            if (err != MGO_OK)
                return err;
        }
        out->as.map.items = items;
        return MGO_OK;
    }
    default:
        return MGO_OK;
    }
}

/* ---- builders ---------------------------------------------------------------------- */

void mgo_map_builder_init(struct mgo_map_builder *mb, struct mgo_arena *arena)
{
    mb->arena = arena;
    mb->items = NULL;
    mb->len = 0;
    mb->cap = 0;
    mb->failed = false;
}

void mgo_map_put(struct mgo_map_builder *mb, const char *key, const struct mgo_value *value)
{
    if (mb->failed)
        return;
    if (mb->len == mb->cap) {
        size_t cap = mb->cap ? mb->cap * 2 : 8;
        struct mgo_member *items = mgo_arena_alloc(mb->arena, cap * sizeof *items);
        if (items == NULL) {
            mb->failed = true;
            return;
        }
        if (mb->len > 0)
            memcpy(items, mb->items, mb->len * sizeof *items);
        mb->items = items;
        mb->cap = cap;
    }
    struct mgo_member *m = &mb->items[mb->len++];
    m->key = key;
    m->key_len = strlen(key);
    m->value = *value;
}

struct mgo_value mgo_value_str(const char *str)
{
    struct mgo_value v = {.kind = MGO_V_STR};
    v.as.str.ptr = str;
    v.as.str.len = strlen(str);
    return v;
}

struct mgo_value mgo_value_uint(uint64_t u)
{
    struct mgo_value v = {.kind = MGO_V_UINT};
    v.as.u = u;
    return v;
}

struct mgo_value mgo_value_bool(bool b)
{
    struct mgo_value v = {.kind = MGO_V_BOOL};
    v.as.b = b;
    return v;
}

void mgo_map_put_str(struct mgo_map_builder *mb, const char *key, const char *str)
{
    struct mgo_value v = mgo_value_str(str != NULL ? str : "");
    mgo_map_put(mb, key, &v);
}

void mgo_map_put_str_opt(struct mgo_map_builder *mb, const char *key, const char *str)
{
    if (str != NULL)
        mgo_map_put_str(mb, key, str);
}

void mgo_map_put_uint(struct mgo_map_builder *mb, const char *key, uint64_t u)
{
    struct mgo_value v = mgo_value_uint(u);
    mgo_map_put(mb, key, &v);
}

void mgo_map_put_bool(struct mgo_map_builder *mb, const char *key, bool b)
{
    struct mgo_value v = mgo_value_bool(b);
    mgo_map_put(mb, key, &v);
}

void mgo_map_put_float(struct mgo_map_builder *mb, const char *key, double f)
{
    struct mgo_value v = {.kind = MGO_V_FLOAT};
    v.as.f = f;
    mgo_map_put(mb, key, &v);
}

mgo_err mgo_map_builder_finish(struct mgo_map_builder *mb, struct mgo_value *out)
{
    if (mb->failed)
        return MGO_ERR_NOMEM;
    struct mgo_value v = {.kind = MGO_V_MAP};
    v.as.map.items = mb->items;
    v.as.map.len = mb->len;
    mgo_err err = mgo_value_map_sort(&v);
    if (err != MGO_OK)
        return err;
    *out = v;
    return MGO_OK;
}

mgo_err mgo_value_array_new(struct mgo_arena *arena, size_t n, struct mgo_value *out)
{
    struct mgo_value *items = mgo_arena_alloc(arena, (n ? n : 1) * sizeof *items);
    if (items == NULL)
        return MGO_ERR_NOMEM;
    out->kind = MGO_V_ARRAY;
    out->text = NULL;
    out->as.array.items = items;
    out->as.array.len = n;
    return MGO_OK;
}

size_t mgo_format_double(double f, char out[MGO_DOUBLE_STR_SIZE])
{
    int n = 0;
    if (!isfinite(f))
        return (size_t)snprintf(out, MGO_DOUBLE_STR_SIZE, "%g", f);
    /* 15 significant digits print every double whose shortest form has at most 15 exactly
     * (the rounding error of a double is far below half a unit of the 15th digit), so the
     * first precision that reads back is the shortest form */
    for (int prec = 15; prec <= 17; prec++) {
        n = snprintf(out, MGO_DOUBLE_STR_SIZE, "%.*g", prec, f);
        if (strtod(out, NULL) == f)
            break;
    }
    return n > 0 ? (size_t)n : 0;
}
