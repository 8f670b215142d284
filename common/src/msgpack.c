/* msgpack.c - MessagePack <-> mgo_value, on msgpack-c.
 *
 * Decoding first runs a bounds scan over the raw bytes (msgpack-c allocates a container's
 * claimed item count up front, so a 5-byte message could ask for gigabytes): every length
 * must fit in the bytes that remain, every limit of mgo/limits.h holds, ext types are
 * refused, and the message is exactly one object. Only then does msgpack-c unpack it. */
#include <math.h>
#include <msgpack.h>
#include <string.h>

#include "mgo/limits.h"
#include "mgo/log.h"
#include "mgo/value.h"
#include "utf8.h"

/* ---- bounds scan ------------------------------------------------------------------- */

struct scan {
    const uint8_t *p;
    size_t len;
    size_t pos;
};

static bool need(const struct scan *s, size_t n)
{
    return s->len - s->pos >= n;
}

static uint64_t be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = (v << 8) | p[i];
    return v;
}

/* Reads the header at s->pos; sets *count for containers (items still to read), *skip for
 * payload bytes. Returns false with *why on malformed or over-limit input. */
static bool scan_header(struct scan *s, uint64_t *count, bool *is_container, uint64_t *skip,
                        const char **why, mgo_err *err)
{
    *count = 0;
    *skip = 0;
    *is_container = false;
    *err = MGO_ERR_PARSE;
    if (!need(s, 1)) {
        *why = "truncated: expected a value";
        return false;
    }
    uint8_t t = s->p[s->pos++];
    size_t hdr = 0;
    enum { SCALAR, STR, BIN, ARR, MAP } kind = SCALAR;
    if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
        return true;
    } else if (t >= 0x80 && t <= 0x8f) {
        *count = t & 0x0f;
        kind = MAP;
    } else if (t >= 0x90 && t <= 0x9f) {
        *count = t & 0x0f;
        kind = ARR;
    } else if (t >= 0xa0 && t <= 0xbf) {
        *skip = t & 0x1f;
        kind = STR;
    } else {
        switch (t) {
        case 0xc4:
            hdr = 1;
            kind = BIN;
            break;
        case 0xc5:
            hdr = 2;
            kind = BIN;
            break;
        case 0xc6:
            hdr = 4;
            kind = BIN;
            break;
        case 0xca:
            *skip = 4;
            return need(s, 4) || (*why = "truncated float32", false);
        case 0xcb:
            *skip = 8;
            return need(s, 8) || (*why = "truncated float64", false);
        case 0xcc:
        case 0xd0:
            *skip = 1;
            break;
        case 0xcd:
        case 0xd1:
            *skip = 2;
            break;
        case 0xce:
        case 0xd2:
            *skip = 4;
            break;
        case 0xcf:
        case 0xd3:
            *skip = 8;
            break;
        case 0xd9:
            hdr = 1;
            kind = STR;
            break;
        case 0xda:
            hdr = 2;
            kind = STR;
            break;
        case 0xdb:
            hdr = 4;
            kind = STR;
            break;
        case 0xdc:
            hdr = 2;
            kind = ARR;
            break;
        case 0xdd:
            hdr = 4;
            kind = ARR;
            break;
        case 0xde:
            hdr = 2;
            kind = MAP;
            break;
        case 0xdf:
            hdr = 4;
            kind = MAP;
            break;
        default:
            *why = "ext types and reserved bytes are not part of the contract";
            *err = MGO_ERR_INVALID;
            return false;
        }
        if (kind == SCALAR) {
            if (!need(s, *skip)) {
                *why = "truncated integer";
                return false;
            }
            return true;
        }
        if (!need(s, hdr)) {
            *why = "truncated length";
            return false;
        }
        uint64_t n = be(s->p + s->pos, hdr);
        s->pos += hdr;
        if (kind == STR || kind == BIN)
            *skip = n;
        else
            *count = n;
    }
    if (kind == STR || kind == BIN) {
        if (*skip > MGO_MAX_STRING_BYTES) {
            *why = "string longer than MGO_MAX_STRING_BYTES (16384)";
            *err = MGO_ERR_LIMIT;
            return false;
        }
        if (!need(s, *skip)) {
            *why = "truncated string";
            return false;
        }
        return true;
    }
    *is_container = true;
    if (*count > (kind == MAP ? MGO_MAX_MAP_ENTRIES : MGO_MAX_ARRAY_ITEMS)) {
        *why = kind == MAP ? "map has more than MGO_MAX_MAP_ENTRIES (1024) entries"
                           : "array has more than MGO_MAX_ARRAY_ITEMS (1024) items";
        *err = MGO_ERR_LIMIT;
        return false;
    }
    if (kind == MAP)
        *count *= 2;
    /* Each item takes at least one byte. */
    if (*count > s->len - s->pos) {
        *why = "truncated: container claims more items than bytes remain";
        return false;
    }
    return true;
}

/* What the tree of a scanned document takes, so the decoder can allocate it in one piece. */
struct scan_totals {
    size_t values;  /* array items */
    size_t members; /* map entries */
};

static mgo_err scan_all(const uint8_t *data, size_t len, struct scan_totals *tot,
                        struct mgo_problems *problems)
{
    struct scan s = {data, len, 0};
    /* rem: items left in the innermost open container (the root counts as one item);
     * parents[]: the same for the containers around it; depth: how many those are. */
    uint64_t parents[MGO_MAX_DEPTH];
    size_t depth = 0;
    uint64_t rem = 1;
    size_t values = 0, members = 0;
    for (;;) {
        while (rem == 0) {
            if (depth == 0)
                goto scanned;
            rem = parents[--depth];
        }
        rem--;
        size_t at = s.pos;
        /* Fast paths for the headers that make up most documents (fixint, nil, booleans,
         * fixstr, fixmap, fixarray); anything else, and every error, goes through
         * scan_header and the checks below, which word the problem. */
        if (at < len) {
            uint8_t t = data[at];
            size_t left = len - at - 1;
            if (t <= 0x7f || t >= 0xe0 || t == 0xc0 || t == 0xc2 || t == 0xc3) {
                s.pos = at + 1;
                continue;
            }
            if (t >= 0xa0 && t <= 0xbf && left >= (size_t)(t & 0x1f)) {
                s.pos = at + 1 + (size_t)(t & 0x1f);
                continue;
            }
            if (t >= 0x80 && t <= 0x9f && depth + 1 <= MGO_MAX_DEPTH) {
                size_t n = t & 0x0f;
                size_t items = t <= 0x8f ? 2 * n : n;
                if (items <= left) {
                    s.pos = at + 1;
                    if (t <= 0x8f)
                        members += n;
                    else
                        values += n;
                    if (items > 0) {
                        parents[depth++] = rem;
                        rem = items;
                    }
                    continue;
                }
            }
        }
        uint64_t count, skip;
        bool is_container;
        const char *why = NULL;
        mgo_err err;
        uint8_t t = at < len ? data[at] : 0;
        if (!scan_header(&s, &count, &is_container, &skip, &why, &err)) {
            mgo_problems_add(problems, "$", "offset %zu: %s", at, why);
            return err;
        }
        s.pos += (size_t)skip;
        if (is_container) {
            /* depth open containers around this one: it would be number depth + 1 */
            if (depth + 1 > MGO_MAX_DEPTH) {
                mgo_problems_add(problems, "$",
                                 "offset %zu: nesting deeper than MGO_MAX_DEPTH (%u)", at,
                                 MGO_MAX_DEPTH);
                return MGO_ERR_LIMIT;
            }
            bool is_map = (t >= 0x80 && t <= 0x8f) || t == 0xde || t == 0xdf;
            if (is_map)
                members += (size_t)count / 2; /* scan_header counted keys and values */
            else
                values += (size_t)count;
            if (count > 0) {
                parents[depth++] = rem;
                rem = count;
            }
        }
    }
scanned:
    if (s.pos != len) {
        mgo_problems_add(problems, "$", "offset %zu: trailing bytes after the document", s.pos);
        return MGO_ERR_PARSE;
    }
    tot->values = values;
    tot->members = members;
    return MGO_OK;
}

/* ---- msgpack_object -> mgo_value ----------------------------------------------------- */

/* Storage for the tree. When it fits under the cap, the arena gets, in one piece, every
 * array item and map entry (counted by the scan) and a copy of the message, which msgpack-c
 * then parses: its strings point into the copy, and once parsed, the byte after each
 * string (the next header, or one spare byte at the end) is free to become the string's
 * NUL, so strings are checked in place and never copied one by one. When it does not fit,
 * every node and string comes from the arena on its own as it is converted, so a document
 * too large for the cap fails at the same node with the same problem as always. */
struct pool {
    struct mgo_arena *arena;
    bool in_place;     /* strings live in the arena's copy of the message */
    const char *empty; /* the spare NUL after the copy: empty strings (msgpack-c may give
                        * them a NULL pointer) */
    struct mgo_value *values;
    size_t values_left;
    struct mgo_member *members;
    size_t members_left;
};

static struct mgo_value *take_values(struct pool *pl, size_t n)
{
    if (pl->in_place && n <= pl->values_left) {
        struct mgo_value *v = pl->values;
        pl->values += n;
        pl->values_left -= n;
        return v;
    }
    return mgo_arena_alloc(pl->arena, (n ? n : 1) * sizeof(struct mgo_value));
}

static struct mgo_member *take_members(struct pool *pl, size_t n)
{
    if (pl->in_place && n <= pl->members_left) {
        struct mgo_member *m = pl->members;
        pl->members += n;
        pl->members_left -= n;
        return m;
    }
    return mgo_arena_alloc(pl->arena, (n ? n : 1) * sizeof(struct mgo_member));
}

/* The NUL-terminated string for src[0..n) (validated when utf8); *bad when that fails. */
static inline const char *take_str(struct pool *pl, const char *src, size_t n, bool utf8, bool *bad)
{
    if (utf8 && !mgo_utf8__check(src, n)) {
        *bad = true;
        return NULL;
    }
    if (!pl->in_place)
        return mgo_arena_strndup(pl->arena, src, n);
    if (n == 0)
        return pl->empty;
    /* src points into the arena's copy of the message (see struct pool) */
    ((char *)(uintptr_t)src)[n] = '\0';
    return src;
}

/* Bytewise key order (shorter first on a common prefix), without a call when the first
 * bytes differ, which they mostly do. */
static inline bool key_less(const struct mgo_member *a, const struct mgo_member *b)
{
    if (a->key_len > 0 && b->key_len > 0 && a->key[0] != b->key[0])
        return (unsigned char)a->key[0] < (unsigned char)b->key[0];
    size_t n = a->key_len < b->key_len ? a->key_len : b->key_len;
    int c = n ? memcmp(a->key, b->key, n) : 0;
    return c < 0 || (c == 0 && a->key_len < b->key_len);
}

static mgo_err convert_array(const msgpack_object *o, struct pool *pl, struct mgo_value *out,
                             struct mgo_problems *problems);
static mgo_err convert_map(const msgpack_object *o, struct pool *pl, struct mgo_value *out,
                           struct mgo_problems *problems);

/* One value, every field of *out written (the pool's storage is not zeroed). Inline, so
 * the leaves of a container (most of a document) cost no call; containers recurse. The
 * recursive copy starts on a cache line: placed 32 bytes off one it took a deployment
 * decode from 2.9 to 3.05-3.3 µs (same instructions; bench/codec, A/B of two builds). */
static inline __attribute__((aligned(64))) mgo_err convert(const msgpack_object *o, struct pool *pl,
                                                           struct mgo_value *out,
                                                           struct mgo_problems *problems)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL:
        *out = (struct mgo_value){.kind = MGO_V_NULL};
        return MGO_OK;
    case MSGPACK_OBJECT_BOOLEAN:
        *out = (struct mgo_value){.kind = MGO_V_BOOL, .as.b = o->via.boolean};
        return MGO_OK;
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (struct mgo_value){.kind = MGO_V_UINT, .as.u = o->via.u64};
        return MGO_OK;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (struct mgo_value){.kind = MGO_V_INT, .as.i = o->via.i64};
        return MGO_OK;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(o->via.f64)) {
            mgo_problems_add(problems, "$", "non-finite numbers (NaN, Infinity) are not allowed");
            return MGO_ERR_INVALID;
        }
        *out = (struct mgo_value){.kind = MGO_V_FLOAT, .as.f = o->via.f64};
        return MGO_OK;
    case MSGPACK_OBJECT_STR:
    case MSGPACK_OBJECT_BIN: {
        bool is_str = o->type == MSGPACK_OBJECT_STR;
        const char *ptr = is_str ? o->via.str.ptr : o->via.bin.ptr;
        size_t n = is_str ? o->via.str.size : o->via.bin.size;
        bool bad = false;
        const char *copy = take_str(pl, ptr, n, is_str, &bad);
        if (bad) {
            mgo_problems_add(problems, "$", "string is not valid UTF-8 or contains NUL");
            return MGO_ERR_INVALID;
        }
        if (copy == NULL)
            return MGO_ERR_NOMEM;
        *out = (struct mgo_value){.kind = is_str ? MGO_V_STR : MGO_V_BIN,
                                  .as.str = {.ptr = copy, .len = n}};
        return MGO_OK;
    }
    case MSGPACK_OBJECT_ARRAY:
        return convert_array(o, pl, out, problems);
    case MSGPACK_OBJECT_MAP:
        return convert_map(o, pl, out, problems);
    case MSGPACK_OBJECT_EXT:
        break;
    }
    mgo_problems_add(problems, "$", "ext types are not part of the contract");
    return MGO_ERR_INVALID;
}

static mgo_err convert_array(const msgpack_object *o, struct pool *pl, struct mgo_value *out,
                             struct mgo_problems *problems)
{
    size_t n = o->via.array.size;
    struct mgo_value *items = take_values(pl, n);
    if (items == NULL)
        return MGO_ERR_NOMEM;
    *out = (struct mgo_value){.kind = MGO_V_ARRAY, .as.array = {.items = items, .len = n}};
    for (size_t i = 0; i < n; i++) {
        mgo_err err = convert(&o->via.array.ptr[i], pl, &items[i], problems);
        if (err != MGO_OK)
            return err;
    }
    return MGO_OK;
}

static mgo_err convert_map(const msgpack_object *o, struct pool *pl, struct mgo_value *out,
                           struct mgo_problems *problems)
{
    size_t n = o->via.map.size;
    struct mgo_member *items = take_members(pl, n);
    if (items == NULL)
        return MGO_ERR_NOMEM;
    bool sorted = true;
    for (size_t i = 0; i < n; i++) {
        const msgpack_object_kv *kv = &o->via.map.ptr[i];
        if (kv->key.type != MSGPACK_OBJECT_STR) {
            mgo_problems_add(problems, "$", "map key is a %s, keys must be strings",
                             kv->key.type == MSGPACK_OBJECT_BIN ? "binary" : "non-string");
            return MGO_ERR_INVALID;
        }
        bool bad = false;
        items[i].key = take_str(pl, kv->key.via.str.ptr, kv->key.via.str.size, true, &bad);
        items[i].key_len = kv->key.via.str.size;
        if (bad) {
            mgo_problems_add(problems, "$", "map key is not valid UTF-8 or contains NUL");
            return MGO_ERR_INVALID;
        }
        if (items[i].key == NULL)
            return MGO_ERR_NOMEM;
        if (i > 0 && sorted)
            sorted = key_less(&items[i - 1], &items[i]);
        mgo_err err = convert(&kv->val, pl, &items[i].value, problems);
        if (err != MGO_OK)
            return err;
    }
    *out = (struct mgo_value){.kind = MGO_V_MAP, .as.map = {.items = items, .len = n}};
    /* Our encoder sends keys sorted; strictly increasing keys are also free of duplicates,
     * so only a map that arrives out of order is sorted and checked. */
    if (!sorted && mgo_value_map_sort(out) != MGO_OK) {
        mgo_problems_add(problems, "$", "map has a duplicate key");
        return MGO_ERR_INVALID;
    }
    return MGO_OK;
}

/* Room msgpack-c needs for the objects of a scanned document (one zone chunk, one malloc). */
static size_t zone_bytes(const struct scan_totals *tot)
{
    return tot->values * sizeof(msgpack_object) + tot->members * sizeof(msgpack_object_kv) + 256;
}

/* Takes the tree's storage and the message copy from the arena in one piece (see struct
 * pool); returns the copy, or NULL (nodes then come from the arena one by one) when the
 * piece does not fit under the cap. */
static const char *pool_fill(struct pool *pl, const struct scan_totals *tot, const void *data,
                             size_t len)
{
    size_t vbytes = tot->values * sizeof(struct mgo_value);
    size_t mbytes = tot->members * sizeof(struct mgo_member);
    size_t total = vbytes + mbytes + len + 1;
    if (total > pl->arena->max)
        return NULL;
    unsigned char *block = mgo_arena_alloc_raw(pl->arena, total); /* convert() fills it */
    if (block == NULL)
        return NULL;
    pl->in_place = true;
    pl->values = (struct mgo_value *)(void *)block;
    pl->values_left = tot->values;
    pl->members = (struct mgo_member *)(void *)(block + vbytes);
    pl->members_left = tot->members;
    char *copy = (char *)block + vbytes + mbytes;
    memcpy(copy, data, len);
    copy[len] = '\0';
    pl->empty = copy + len; /* string ends only ever write NUL here */
    return copy;
}

mgo_err mgo_value_from_msgpack(const void *data, size_t len, struct mgo_arena *arena,
                               struct mgo_value *out, struct mgo_problems *problems)
{
    if (len > MGO_MAX_MESSAGE_BYTES) {
        mgo_problems_add(problems, "$", "message of %zu bytes exceeds MGO_MAX_MESSAGE_BYTES (%u)",
                         len, MGO_MAX_MESSAGE_BYTES);
        return MGO_ERR_LIMIT;
    }
    if (len == 0) {
        mgo_problems_add(problems, "$", "empty message");
        return MGO_ERR_PARSE;
    }
    struct scan_totals tot;
    mgo_err err = scan_all(data, len, &tot, problems);
    if (err != MGO_OK)
        return err;

    msgpack_zone zone;
    if (!msgpack_zone_init(&zone, zone_bytes(&tot))) {
        mgo_problems_add(problems, "$", "not a MessagePack document (msgpack-c code %d)",
                         (int)MSGPACK_UNPACK_NOMEM_ERROR);
        return MGO_ERR_NOMEM;
    }
    struct pool pl = {.arena = arena};
    const char *input = pool_fill(&pl, &tot, data, len);
    if (input == NULL)
        input = data;
    msgpack_object obj;
    size_t off = 0;
    msgpack_unpack_return ret = msgpack_unpack(input, len, &off, &zone, &obj);
    if (ret != MSGPACK_UNPACK_SUCCESS) {
        MGO_LOGD("msgpack", "msgpack_unpack returned %d", (int)ret);
        mgo_problems_add(problems, "$", "not a MessagePack document (msgpack-c code %d)", (int)ret);
        err = ret == MSGPACK_UNPACK_NOMEM_ERROR ? MGO_ERR_NOMEM : MGO_ERR_PARSE;
        goto out_zone;
    }
    struct mgo_value v;
    memset(&v, 0, sizeof v);
    err = convert(&obj, &pl, &v, problems);
    if (err == MGO_ERR_NOMEM)
        mgo_problems_add(problems, "$", "document needs more than MGO_MAX_DOC_ARENA_BYTES");
    if (err == MGO_OK)
        *out = v;
out_zone:
    msgpack_zone_destroy(&zone);
    return err;
}

/* ---- mgo_value -> MessagePack ------------------------------------------------------- */

struct pack_ctx {
    struct mgo_buf *buf;
    mgo_err err; /* first failure of buf_write */
};

static int buf_write(void *data, const char *bytes, size_t len)
{
    struct pack_ctx *ctx = data;
    mgo_err err = mgo_buf_append(ctx->buf, bytes, len);
    if (err != MGO_OK && ctx->err == MGO_OK)
        ctx->err = err;
    return err == MGO_OK ? 0 : -1;
}

/* depth counts containers as the decoder does: the root container is depth 1 */
static int pack(msgpack_packer *pk, const struct mgo_value *v, unsigned depth)
{
    if ((v->kind == MGO_V_ARRAY || v->kind == MGO_V_MAP) && depth > MGO_MAX_DEPTH)
        return -1;
    switch (v->kind) {
    case MGO_V_NULL:
        return msgpack_pack_nil(pk);
    case MGO_V_BOOL:
        return v->as.b ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case MGO_V_INT:
        return msgpack_pack_int64(pk, v->as.i);
    case MGO_V_UINT:
        return msgpack_pack_uint64(pk, v->as.u);
    case MGO_V_FLOAT:
        return msgpack_pack_double(pk, v->as.f);
    case MGO_V_STR:
        if (msgpack_pack_str(pk, v->as.str.len) != 0)
            return -1;
        return msgpack_pack_str_body(pk, v->as.str.ptr, v->as.str.len);
    case MGO_V_BIN:
        if (msgpack_pack_bin(pk, v->as.str.len) != 0)
            return -1;
        return msgpack_pack_bin_body(pk, v->as.str.ptr, v->as.str.len);
    case MGO_V_ARRAY:
        if (v->as.array.len > UINT32_MAX || msgpack_pack_array(pk, v->as.array.len) != 0)
            return -1;
        for (size_t i = 0; i < v->as.array.len; i++) {
            if (pack(pk, &v->as.array.items[i], depth + 1) != 0)
                return -1;
        }
        return 0;
    case MGO_V_MAP:
        if (v->as.map.len > UINT32_MAX || msgpack_pack_map(pk, v->as.map.len) != 0)
            return -1;
        for (size_t i = 0; i < v->as.map.len; i++) {
            const struct mgo_member *m = &v->as.map.items[i];
            if (i > 0) {
                /* canonical form: the tree must already be sorted (builders and decoders do it) */
                const struct mgo_member *prev = &v->as.map.items[i - 1];
                size_t n = prev->key_len < m->key_len ? prev->key_len : m->key_len;
                int c = memcmp(prev->key, m->key, n);
                if (c > 0 || (c == 0 && prev->key_len >= m->key_len))
                    return -1;
            }
            if (msgpack_pack_str(pk, m->key_len) != 0 ||
                msgpack_pack_str_body(pk, m->key, m->key_len) != 0 ||
                pack(pk, &m->value, depth + 1) != 0)
                return -1;
        }
        return 0;
    }
    return -1;
}

mgo_err mgo_value_to_msgpack(const struct mgo_value *v, struct mgo_buf *buf)
{
    size_t start = buf->len;
    struct pack_ctx ctx = {buf, MGO_OK};
    msgpack_packer pk;
    msgpack_packer_init(&pk, &ctx, buf_write);
    if (pack(&pk, v, 1) != 0) {
        buf->len = start;
        if (buf->data != NULL)
            buf->data[start] = '\0';
        /* a write failure (size cap, memory) or a tree that is unsorted or too deep */
        return ctx.err != MGO_OK ? ctx.err : MGO_ERR_INVALID;
    }
    return MGO_OK;
}
