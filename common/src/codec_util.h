/* codec_util.h - module-private helpers of the typed codecs: a reader that walks a decoded
 * tree, keeps the current field path ("spec.deploymentProfile.components[1].name") and
 * records one problem per broken rule. */
#ifndef MGO_CODEC_UTIL_H
#define MGO_CODEC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/margo.h"

struct mgo_rd {
    struct mgo_arena *arena;
    struct mgo_problems *problems;
    char path[MGO_MAX_FIELD_PATH];
    size_t path_len;
    bool failed;   /* any problem recorded */
    bool nomem;    /* the arena ran out */
};

void mgo_codec__rd_init(struct mgo_rd *rd, struct mgo_arena *arena, struct mgo_problems *p);
/* Path handling: enter returns the previous length to pass to leave. */
size_t mgo_codec__enter(struct mgo_rd *rd, const char *key);
size_t mgo_codec__enter_index(struct mgo_rd *rd, size_t index);
void mgo_codec__leave(struct mgo_rd *rd, size_t saved);
void mgo_codec__fail(struct mgo_rd *rd, const char *key, const char *fmt, ...) MGO_PRINTF(3, 4);
mgo_err mgo_codec__result(const struct mgo_rd *rd);

/* Field readers. key is a child of map; when the map itself is not a map they fail once. */
const struct mgo_value *mgo_codec__field(struct mgo_rd *rd, const struct mgo_value *map,
                                         const char *key, bool required);
/* String field (a plain YAML scalar like 1.0 counts as its text). max_len 0 = string limit. */
const char *mgo_codec__str(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                           bool required, size_t max_len);
bool mgo_codec__uint(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                     bool required, uint64_t *out);
bool mgo_codec__bool(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                     bool required, bool *out);
bool mgo_codec__number(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                       bool required, double *out);
/* Array field with at most max items (min_items enforced too). */
const struct mgo_value *mgo_codec__array(struct mgo_rd *rd, const struct mgo_value *map,
                                         const char *key, bool required, size_t min_items,
                                         size_t max_items);
const struct mgo_value *mgo_codec__map(struct mgo_rd *rd, const struct mgo_value *map,
                                       const char *key, bool required);
/* String field that must equal one of names[0..n); returns the index or -1. */
int mgo_codec__enum(struct mgo_rd *rd, const struct mgo_value *map, const char *key,
                    bool required, const char *const *names, size_t n);
/* Allocation from the reader's arena; records nomem on failure. */
void *mgo_codec__alloc(struct mgo_rd *rd, size_t size);

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
#define MGO_CODEC_GLUE(doc, type)                                                              \
    mgo_err mgo_##doc##_decode(const void *data, size_t len, struct mgo_arena *arena,          \
                               struct type *out, struct mgo_problems *problems)                \
    {                                                                                          \
        struct mgo_value root;                                                                 \
        mgo_err err = mgo_value_from_msgpack(data, len, arena, &root, problems);               \
        if (err != MGO_OK)                                                                     \
            return err;                                                                        \
        return mgo_##doc##_from_value(&root, arena, out, problems);                            \
    }                                                                                          \
    mgo_err mgo_##doc##_encode(const struct type *in, struct mgo_buf *buf)                     \
    {                                                                                          \
        struct mgo_arena arena;                                                                \
        mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);                                       \
        struct mgo_value v;                                                                    \
        mgo_err err = mgo_##doc##_to_value(in, &arena, &v);                                    \
        if (err == MGO_OK)                                                                     \
            err = mgo_value_to_msgpack(&v, buf);                                               \
        mgo_arena_cleanup(&arena);                                                             \
        return err;                                                                            \
    }

#endif
