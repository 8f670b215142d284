/* codec_util.h - module-private helpers of the typed codecs: a reader that walks a decoded
 * tree, keeps the current field path ("spec.deploymentProfile.components[1].name") and
 * records one problem per broken rule. */
#ifndef MGO_CODEC_UTIL_H
#define MGO_CODEC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "mgo/limits.h"
#include "mgo/margo.h"

/* One step of the current path: a key, or (key NULL) an array index. */
struct mgo_rd_seg {
    const char *key;
    size_t index;
};

/* Deepest path the reader keeps (the codecs nest about a dozen steps; selectors are capped
 * at 4 levels). Steps past it still count for leave() but are left out of problem paths. */
#define MGO_RD_MAX_SEGS 48u

struct mgo_rd {
    struct mgo_arena *arena;
    struct mgo_problems *problems;
    /* The path is kept as steps and only spelled out when a problem is recorded; keys must
     * stay valid while they are on it (literals and strings of the tree being read). */
    struct mgo_rd_seg segs[MGO_RD_MAX_SEGS];
    size_t depth;
    bool failed; /* any problem recorded */
    bool nomem;  /* the arena ran out */
};

void mgo_codec__rd_init(struct mgo_rd *rd, struct mgo_arena *arena, struct mgo_problems *p);
/* Path handling: enter returns the previous depth to pass to leave. Inline: a deployment
 * enters a step about thirty times. */
static inline size_t mgo_codec__enter(struct mgo_rd *rd, const char *key)
{
    size_t saved = rd->depth;
    if (saved < MGO_RD_MAX_SEGS) {
        rd->segs[saved].key = key;
        rd->segs[saved].index = 0;
    }
    rd->depth = saved + 1;
    return saved;
}

static inline size_t mgo_codec__enter_index(struct mgo_rd *rd, size_t index)
{
    size_t saved = rd->depth;
    if (saved < MGO_RD_MAX_SEGS) {
        rd->segs[saved].key = NULL;
        rd->segs[saved].index = index;
    }
    rd->depth = saved + 1;
    return saved;
}

static inline void mgo_codec__leave(struct mgo_rd *rd, size_t saved)
{
    rd->depth = saved;
}
void mgo_codec__fail(struct mgo_rd *rd, const char *key, const char *fmt, ...) MGO_PRINTF(3, 4);
mgo_err mgo_codec__result(const struct mgo_rd *rd);

/* Member key[0..key_len) of map (which must be a map), or NULL. Inline: the maps the codecs
 * read are small, so a pass over the member lengths finds the candidate, and with a literal
 * key the length and the byte comparison fold into constants at each call site, whose
 * branches the predictor learns per site (one shared loop mispredicted about a third of
 * its probes; perf, bench/codec). */
static inline const struct mgo_value *mgo_codec__lookup(const struct mgo_value *map,
                                                        const char *key, size_t key_len)
{
    const struct mgo_member *items = map->as.map.items;
    size_t len = map->as.map.len;
    if (len > 16)
        return mgo_value_get_n(map, key, key_len);
    for (size_t i = 0; i < len; i++) {
        if (items[i].key_len == key_len && memcmp(items[i].key, key, key_len) == 0)
            return &items[i].value;
    }
    return NULL;
}

/* Field readers. key is a child of map; when the map itself is not a map they fail once.
 * Each is an inline wrapper that passes strlen(key), which the compiler folds for the
 * string literals nearly every call site uses (lookups were a tenth of a decode). The
 * *_slow functions hold the rules and the problems; the inline readers answer the common
 * case (the field is there with the right type) themselves and otherwise call them, which
 * repeat the whole check. */
const struct mgo_value *mgo_codec__field_slow(struct mgo_rd *rd, const struct mgo_value *map,
                                              const char *key, size_t key_len, bool required);
const char *mgo_codec__str_slow(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                                size_t key_len, bool required, size_t max_len);

static inline const struct mgo_value *mgo_codec__field_n(struct mgo_rd *rd,
                                                         const struct mgo_value *map,
                                                         const char *key, size_t key_len,
                                                         bool required)
{
    if (map != NULL && map->kind == MGO_V_MAP) {
        const struct mgo_value *v = mgo_codec__lookup(map, key, key_len);
        if (v != NULL ? v->kind != MGO_V_NULL : !required)
            return v;
    }
    return mgo_codec__field_slow(rd, map, key, key_len, required);
}

static inline const char *mgo_codec__str_n(struct mgo_rd *rd, const struct mgo_value *map,
                                           const char *key, size_t key_len, bool required,
                                           size_t max_len)
{
    if (map != NULL && map->kind == MGO_V_MAP) {
        const struct mgo_value *v = mgo_codec__lookup(map, key, key_len);
        if (v == NULL && !required)
            return NULL;
        if (v != NULL && v->kind == MGO_V_STR &&
            v->as.str.len <= (max_len ? max_len : MGO_MAX_STRING_BYTES))
            return v->as.str.ptr;
    }
    return mgo_codec__str_slow(rd, map, key, key_len, required, max_len);
}
/* mgo_codec__str_n that also gives the string's length in *len (0 when NULL is returned),
 * for checks that can then compare whole words instead of calling strlen or strncmp. */
static inline const char *mgo_codec__str_len_n(struct mgo_rd *rd, const struct mgo_value *map,
                                               const char *key, size_t key_len, bool required,
                                               size_t max_len, size_t *len)
{
    if (map != NULL && map->kind == MGO_V_MAP) {
        const struct mgo_value *v = mgo_codec__lookup(map, key, key_len);
        *len = 0;
        if (v == NULL && !required)
            return NULL;
        if (v != NULL && v->kind == MGO_V_STR &&
            v->as.str.len <= (max_len ? max_len : MGO_MAX_STRING_BYTES)) {
            *len = v->as.str.len;
            return v->as.str.ptr;
        }
    }
    const char *s = mgo_codec__str_slow(rd, map, key, key_len, required, max_len);
    *len = s != NULL ? strlen(s) : 0;
    return s;
}

bool mgo_codec__uint_n(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                       size_t key_len, bool required, uint64_t *out);
bool mgo_codec__number_n(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                         size_t key_len, bool required, double *out);
bool mgo_codec__bool_slow(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                          size_t key_len, bool required, bool *out);
const struct mgo_value *mgo_codec__array_slow(struct mgo_rd *rd, const struct mgo_value *map,
                                              const char *key, size_t key_len, bool required,
                                              size_t min_items, size_t max_items);
const struct mgo_value *mgo_codec__map_slow(struct mgo_rd *rd, const struct mgo_value *map,
                                            const char *key, size_t key_len, bool required);

static inline bool mgo_codec__bool_n(struct mgo_rd *rd, const struct mgo_value *map,
                                     const char *key, size_t key_len, bool required, bool *out)
{
    if (map != NULL && map->kind == MGO_V_MAP) {
        const struct mgo_value *v = mgo_codec__lookup(map, key, key_len);
        if (v == NULL && !required)
            return false;
        if (v != NULL && v->kind == MGO_V_BOOL) {
            *out = v->as.b;
            return true;
        }
    }
    return mgo_codec__bool_slow(rd, map, key, key_len, required, out);
}

static inline const struct mgo_value *
mgo_codec__array_n(struct mgo_rd *rd, const struct mgo_value *map, const char *key, size_t key_len,
                   bool required, size_t min_items, size_t max_items)
{
    if (map != NULL && map->kind == MGO_V_MAP) {
        const struct mgo_value *v = mgo_codec__lookup(map, key, key_len);
        if (v == NULL && !required)
            return NULL;
        if (v != NULL && v->kind == MGO_V_ARRAY && v->as.array.len >= min_items &&
            v->as.array.len <= max_items)
            return v;
    }
    return mgo_codec__array_slow(rd, map, key, key_len, required, min_items, max_items);
}

static inline const struct mgo_value *mgo_codec__map_n(struct mgo_rd *rd,
                                                       const struct mgo_value *map, const char *key,
                                                       size_t key_len, bool required)
{
    if (map != NULL && map->kind == MGO_V_MAP) {
        const struct mgo_value *v = mgo_codec__lookup(map, key, key_len);
        if (v == NULL && !required)
            return NULL;
        if (v != NULL && v->kind == MGO_V_MAP)
            return v;
    }
    return mgo_codec__map_slow(rd, map, key, key_len, required);
}

int mgo_codec__enum_n(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                      size_t key_len, bool required, const char *const *names, size_t n);

static inline const struct mgo_value *
mgo_codec__field(struct mgo_rd *rd, const struct mgo_value *map, const char *key, bool required)
{
    return mgo_codec__field_n(rd, map, key, strlen(key), required);
}

/* String field (a plain YAML scalar like 1.0 counts as its text). max_len 0 = string limit. */
static inline const char *mgo_codec__str(struct mgo_rd *rd, const struct mgo_value *map,
                                         const char *key, bool required, size_t max_len)
{
    return mgo_codec__str_n(rd, map, key, strlen(key), required, max_len);
}

/* String field and its length (see mgo_codec__str_len_n). */
static inline const char *mgo_codec__str_len(struct mgo_rd *rd, const struct mgo_value *map,
                                             const char *key, bool required, size_t max_len,
                                             size_t *len)
{
    return mgo_codec__str_len_n(rd, map, key, strlen(key), required, max_len, len);
}

static inline bool mgo_codec__uint(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                                   bool required, uint64_t *out)
{
    return mgo_codec__uint_n(rd, map, key, strlen(key), required, out);
}

static inline bool mgo_codec__bool(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                                   bool required, bool *out)
{
    return mgo_codec__bool_n(rd, map, key, strlen(key), required, out);
}

static inline bool mgo_codec__number(struct mgo_rd *rd, const struct mgo_value *map,
                                     const char *key, bool required, double *out)
{
    return mgo_codec__number_n(rd, map, key, strlen(key), required, out);
}

/* Array field with at most max items (min_items enforced too). */
static inline const struct mgo_value *mgo_codec__array(struct mgo_rd *rd,
                                                       const struct mgo_value *map, const char *key,
                                                       bool required, size_t min_items,
                                                       size_t max_items)
{
    return mgo_codec__array_n(rd, map, key, strlen(key), required, min_items, max_items);
}

static inline const struct mgo_value *mgo_codec__map(struct mgo_rd *rd, const struct mgo_value *map,
                                                     const char *key, bool required)
{
    return mgo_codec__map_n(rd, map, key, strlen(key), required);
}

/* String field that must equal one of names[0..n); returns the index or -1. */
static inline int mgo_codec__enum(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                                  bool required, const char *const *names, size_t n)
{
    return mgo_codec__enum_n(rd, map, key, strlen(key), required, names, n);
}

/* Allocation from the reader's arena; records nomem on failure. */
void *mgo_codec__alloc(struct mgo_rd *rd, size_t size);

/* Character classes of the identifier rules: one table lookup per byte instead of a chain
 * of range tests (the validators were a twentieth of a deployment decode). */
#define MGO_CC_HEX 1u        /* [0-9a-fA-F] */
#define MGO_CC_NAME 2u       /* [a-z0-9-]: application ids, component names */
#define MGO_CC_UNRESERVED 4u /* [A-Za-z0-9._~-]: device id segments */
#define MGO_CC_DASH 8u       /* '-' */
extern const unsigned char mgo_codec__char_class[256];

/* Margo device ids: one or more segments of [A-Za-z0-9._~-] separated by '/', and, when
 * allow_wildcard, an optional trailing slash-star (a gateway picks the child). */
bool mgo_codec__is_device_path(const char *s, bool allow_wildcard);

/* Shared document pieces (codec_profile.c). */
void mgo_codec__read_resources(struct mgo_rd *rd, const struct mgo_value *v,
                               struct mgo_resources *out, bool require_all);
void mgo_codec__read_profile(struct mgo_rd *rd, const struct mgo_value *v, bool in_description,
                             struct mgo_profile *out);
/* Reads `parameters` against the components of profiles[0..n). */
void mgo_codec__read_parameters(struct mgo_rd *rd, const struct mgo_value *map,
                                const struct mgo_profile *profiles, size_t n_profiles,
                                struct mgo_parameter **out, size_t *out_len);
int mgo_codec__arch_parse(const char *s); /* bit or 0 */
mgo_err mgo_codec__profile_to_value(const struct mgo_profile *p, bool with_id,
                                    struct mgo_arena *arena, struct mgo_value *out);
mgo_err mgo_codec__parameters_to_value(const struct mgo_parameter *params, size_t n,
                                       struct mgo_arena *arena, struct mgo_value *out);
mgo_err mgo_codec__resources_to_value(const struct mgo_resources *r, struct mgo_arena *arena,
                                      struct mgo_value *out);
mgo_err mgo_codec__error_to_value(const struct mgo_error_info *e, struct mgo_arena *arena,
                                  struct mgo_value *out);
void mgo_codec__read_error(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                           bool *has, struct mgo_error_info *out);
/* Array of strings from names (for enums/bitsets). */
mgo_err mgo_codec__str_array(struct mgo_arena *arena, const char *const *items, size_t n,
                             struct mgo_value *out);

/* Defines mgo_<doc>_decode() and mgo_<doc>_encode() from from_value/to_value. */
#define MGO_CODEC_GLUE(doc, type)                                                                  \
    mgo_err mgo_##doc##_decode(const void *data, size_t len, struct mgo_arena *arena,              \
                               struct type *out, struct mgo_problems *problems)                    \
    {                                                                                              \
        struct mgo_value root;                                                                     \
        mgo_err err = mgo_value_from_msgpack(data, len, arena, &root, problems);                   \
        if (err != MGO_OK)                                                                         \
            return err;                                                                            \
        return mgo_##doc##_from_value(&root, arena, out, problems);                                \
    }                                                                                              \
    mgo_err mgo_##doc##_encode(const struct type *in, struct mgo_buf *buf)                         \
    {                                                                                              \
        struct mgo_arena arena;                                                                    \
        mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);                                           \
        struct mgo_value v;                                                                        \
        mgo_err err = mgo_##doc##_to_value(in, &arena, &v);                                        \
        if (err == MGO_OK)                                                                         \
            err = mgo_value_to_msgpack(&v, buf);                                                   \
        mgo_arena_cleanup(&arena);                                                                 \
        return err;                                                                                \
    }

#endif
