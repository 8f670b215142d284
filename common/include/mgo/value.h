/* value.h - a generic document tree (the shape shared by MessagePack, YAML and JSON).
 *
 * Every decoder produces this tree inside a caller's arena; maps are kept sorted by key
 * (bytewise) with duplicates refused, which makes every encoder deterministic: the same
 * tree always yields the same MessagePack and JSON bytes. Strings are valid UTF-8, never
 * contain NUL, and are NUL-terminated for convenience (len excludes the NUL). */
#ifndef MGO_VALUE_H
#define MGO_VALUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/problems.h"

enum mgo_value_kind {
    MGO_V_NULL = 0,
    MGO_V_BOOL,
    MGO_V_INT,  /* negative integers only (i < 0) */
    MGO_V_UINT, /* non-negative integers */
    MGO_V_FLOAT,
    MGO_V_STR,
    MGO_V_BIN,
    MGO_V_ARRAY,
    MGO_V_MAP,
};

struct mgo_member;

struct mgo_value {
    enum mgo_value_kind kind;
    /* For scalars read from YAML/JSON without quotes: the original text ("1.0", "true"),
     * so string-typed fields can accept `version: 1.0`. NULL otherwise. */
    const char *text;
    union {
        bool b;
        int64_t i;
        uint64_t u;
        double f;
        struct {
            const char *ptr;
            size_t len;
        } str; /* also MGO_V_BIN */
        struct {
            struct mgo_value *items;
            size_t len;
        } array;
        struct {
            struct mgo_member *items; /* sorted by key, no duplicates */
            size_t len;
        } map;
    } as;
};

struct mgo_member {
    const char *key; /* NUL-terminated UTF-8 */
    size_t key_len;
    struct mgo_value value;
};

enum mgo_format { MGO_FORMAT_MSGPACK, MGO_FORMAT_YAML, MGO_FORMAT_JSON };

/* Decoders. All memory comes from arena; on failure *out is untouched and a problem that
 * names the position ("$" for the root, "offset 17", "line 3 column 5") and the rule is
 * added. Limits from mgo/limits.h apply (string bytes, items, depth, total size).
 * Returns MGO_ERR_PARSE, MGO_ERR_LIMIT, MGO_ERR_INVALID (duplicate key, bad UTF-8) or
 * MGO_ERR_NOMEM. */
mgo_err mgo_value_from_msgpack(const void *data, size_t len, struct mgo_arena *arena,
                               struct mgo_value *out, struct mgo_problems *problems) MGO_MUST_CHECK;
/* YAML 1.2 core schema (JSON is accepted as YAML). One document only; aliases, anchors and
 * non-string keys are refused. */
mgo_err mgo_value_from_yaml(const void *data, size_t len, struct mgo_arena *arena,
                            struct mgo_value *out, struct mgo_problems *problems) MGO_MUST_CHECK;

/* Encoders append to buf. Canonical MessagePack: sorted keys (as stored), the shortest
 * integer form, float64 for floats, str for strings. JSON: sorted keys, binary as base64
 * strings, floats in the shortest form that reads back to the same double. */
mgo_err mgo_value_to_msgpack(const struct mgo_value *v, struct mgo_buf *buf) MGO_MUST_CHECK;
mgo_err mgo_value_to_json(const struct mgo_value *v, bool pretty,
                          struct mgo_buf *buf) MGO_MUST_CHECK;
/* YAML (libyaml's emitter), block style, keys sorted as stored; strings that would read
 * back as another type ("true", "1.0", "null", "") are double-quoted, so
 * mgo_value_from_yaml gives back an equal tree. MGO_ERR_LIMIT when buf's cap is reached or
 * the tree is deeper than MGO_MAX_DEPTH; MGO_ERR_NOMEM. */
mgo_err mgo_value_to_yaml(const struct mgo_value *v, struct mgo_buf *buf) MGO_MUST_CHECK;
/* Appends s[0..len) as a quoted JSON string with the same escaping as mgo_value_to_json
 * (for streaming JSON writers that build replies piece by piece). */
mgo_err mgo_json_put_string(struct mgo_buf *buf, const char *s, size_t len) MGO_MUST_CHECK;

/* Lookup in a map (binary search); NULL when v is not a map or has no such key. */
const struct mgo_value *mgo_value_get(const struct mgo_value *v, const char *key);
/* The same for key[0..key_len), which must also be NUL-terminated (key[key_len] == 0). */
const struct mgo_value *mgo_value_get_n(const struct mgo_value *v, const char *key, size_t key_len);
/* RFC 6901 JSON Pointer ("/a/0/b"); NULL when it does not resolve. "" is v itself. */
const struct mgo_value *mgo_value_pointer(const struct mgo_value *v, const char *pointer);
bool mgo_value_equal(const struct mgo_value *a, const struct mgo_value *b);
const char *mgo_value_kind_name(enum mgo_value_kind kind);
/* Deep copy into another arena (e.g. to keep a subtree past the message's arena). */
mgo_err mgo_value_copy(const struct mgo_value *src, struct mgo_arena *arena,
                       struct mgo_value *out) MGO_MUST_CHECK;

/* Builders used by the typed codecs. Maps are built with mgo_map_builder and sorted once
 * by mgo_map_builder_finish(), which refuses duplicate keys. */
struct mgo_map_builder {
    struct mgo_arena *arena;
    struct mgo_member *items;
    size_t len;
    size_t cap;
    bool failed;
};
void mgo_map_builder_init(struct mgo_map_builder *mb, struct mgo_arena *arena);
/* Adds key -> *value (value copied shallowly). Keys must be string literals or arena strings. */
void mgo_map_put(struct mgo_map_builder *mb, const char *key, const struct mgo_value *value);
void mgo_map_put_str(struct mgo_map_builder *mb, const char *key, const char *str);
void mgo_map_put_str_opt(struct mgo_map_builder *mb, const char *key,
                         const char *str); /* skips NULL */
void mgo_map_put_uint(struct mgo_map_builder *mb, const char *key, uint64_t u);
void mgo_map_put_bool(struct mgo_map_builder *mb, const char *key, bool b);
void mgo_map_put_float(struct mgo_map_builder *mb, const char *key, double f);
mgo_err mgo_map_builder_finish(struct mgo_map_builder *mb, struct mgo_value *out) MGO_MUST_CHECK;

struct mgo_value mgo_value_str(const char *str); /* str must outlive the value */
struct mgo_value mgo_value_uint(uint64_t u);
struct mgo_value mgo_value_bool(bool b);
/* Array of n items allocated in arena, zero (MGO_V_NULL) items; NULL items ptr on failure. */
mgo_err mgo_value_array_new(struct mgo_arena *arena, size_t n,
                            struct mgo_value *out) MGO_MUST_CHECK;

/* Sorts a map's members in place and refuses duplicates (used by decoders). */
mgo_err mgo_value_map_sort(struct mgo_value *map) MGO_MUST_CHECK;

/* Bytes a formatted double needs at most, with its NUL. */
#define MGO_DOUBLE_STR_SIZE 32u
/* The one float formatter: the shortest decimal form that reads back (strtod) to the same
 * double, as printf's %g writes it ("0.1", "24", "1e+21"); non-finite values as %g writes
 * them ("nan", "inf"). Returns the length written. */
size_t mgo_format_double(double f, char out[MGO_DOUBLE_STR_SIZE]);

#endif
