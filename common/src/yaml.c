/* yaml.c - YAML (and JSON, which is YAML) -> mgo_value, on libyaml's event parser.
 *
 * Scalars follow the YAML 1.2 core schema: quoted or !!str-tagged scalars are strings; plain
 * scalars resolve to null, booleans, integers (decimal, 0x, 0o) or floats, else strings.
 * Refused: aliases (entity expansion), more than one document, non-scalar keys, duplicate
 * keys, non-finite numbers, integers out of range, and anything past mgo/limits.h. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <yaml.h>

#include "mgo/limits.h"
#include "mgo/value.h"
#include "utf8.h"

struct frame {
    bool is_map;
    struct mgo_value *items; /* malloc'd scratch, copied to the arena when closed */
    char **keys;             /* arena strings, maps only */
    size_t *key_lens;
    size_t len, cap;
    char *pending_key; /* map: key read, value not yet */
    size_t pending_key_len;
    size_t line; /* where the container started, for messages */
};

struct builder {
    struct mgo_arena *arena;
    struct mgo_problems *problems;
    struct frame stack[MGO_MAX_DEPTH];
    size_t depth;
    struct mgo_value root;
    bool have_root;
};

static void frame_free(struct frame *f)
{
    free(f->items);
    free(f->keys);
    free(f->key_lens);
    memset(f, 0, sizeof *f);
}

static mgo_err problem_at(struct builder *b, const yaml_mark_t *m, mgo_err err, const char *rule)
{
    char where[64];
    snprintf(where, sizeof where, "line %zu column %zu", m->line + 1, m->column + 1);
    mgo_problems_add(b->problems, where, "%s", rule);
    return err;
}

static bool all_digits(const char *s, size_t n, int base)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        bool ok = base == 16
                      ? ((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'))
                  : base == 8 ? (c >= '0' && c <= '7')
                              : (c >= '0' && c <= '9');
        if (!ok)
            return false;
    }
    return true;
}

static bool is_float_text(const char *s)
{
    /* [-+]? ( \.[0-9]+ | [0-9]+ ( \.[0-9]* )? ) ( [eE] [-+]? [0-9]+ )? */
    const char *p = s;
    if (*p == '-' || *p == '+')
        p++;
    size_t ip = 0, fp = 0;
    while (*p >= '0' && *p <= '9') {
        p++;
        ip++;
    }
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9') {
            p++;
            fp++;
        }
    }
    if (ip == 0 && fp == 0)
        return false;
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '-' || *p == '+')
            p++;
        if (!(*p >= '0' && *p <= '9'))
            return false;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    return *p == '\0';
}

/* Resolves a plain scalar; returns MGO_OK with out set, or an error with *why. */
static mgo_err resolve_plain(const char *s, size_t n, struct mgo_value *out, const char **why)
{
    static const char *const nulls[] = {"", "~", "null", "Null", "NULL"};
    static const char *const trues[] = {"true", "True", "TRUE"};
    static const char *const falses[] = {"false", "False", "FALSE"};
    for (size_t i = 0; i < 5; i++) {
        if (strcmp(s, nulls[i]) == 0) {
            out->kind = MGO_V_NULL;
            return MGO_OK;
        }
    }
    for (size_t i = 0; i < 3; i++) {
        if (strcmp(s, trues[i]) == 0 || strcmp(s, falses[i]) == 0) {
            out->kind = MGO_V_BOOL;
            out->as.b = strcmp(s, trues[i]) == 0;
            return MGO_OK;
        }
    }
    const char *d = s;
    bool neg = false;
    if (*d == '-' || *d == '+') {
        neg = *d == '-';
        d++;
    }
    size_t dn = n - (size_t)(d - s);
    int base = 0;
    if (!neg && s[0] != '+' && dn > 2 && d[0] == '0' && (d[1] == 'x' || d[1] == 'o')) {
        base = d[1] == 'x' ? 16 : 8;
        if (!all_digits(d + 2, dn - 2, base))
            base = 0;
        else
            d += 2;
    } else if (all_digits(d, dn, 10)) {
        base = 10;
    }
    if (base != 0) {
        errno = 0;
        char *end = NULL;
        if (neg) {
            long long v = strtoll(s, &end, 10);
            if (errno == ERANGE || *end != '\0') {
                *why = "integer out of range";
                return MGO_ERR_INVALID;
            }
            if (v == 0) {
                out->kind = MGO_V_UINT;
                out->as.u = 0;
            } else {
                out->kind = MGO_V_INT;
                out->as.i = v;
            }
            return MGO_OK;
        }
        unsigned long long v = strtoull(d, &end, base);
        if (errno == ERANGE || *end != '\0') {
            *why = "integer out of range";
            return MGO_ERR_INVALID;
        }
        out->kind = MGO_V_UINT;
        out->as.u = v;
        return MGO_OK;
    }
    if (is_float_text(s)) {
        errno = 0;
        char *end = NULL;
        double f = strtod(s, &end);
        if (*end != '\0' || !isfinite(f)) {
            *why = "number out of range";
            return MGO_ERR_INVALID;
        }
        out->kind = MGO_V_FLOAT;
        out->as.f = f;
        return MGO_OK;
    }
    static const char *const nonfinite[] = {".inf",  ".Inf",  ".INF", "-.inf", "-.Inf",
                                            "-.INF", "+.inf", ".nan", ".NaN",  ".NAN"};
    for (size_t i = 0; i < sizeof nonfinite / sizeof nonfinite[0]; i++) {
        if (strcmp(s, nonfinite[i]) == 0) {
            *why = "non-finite numbers (.inf, .nan) are not supported";
            return MGO_ERR_INVALID;
        }
    }
    out->kind = MGO_V_STR;
    out->as.str.ptr = s;
    out->as.str.len = n;
    return MGO_OK;
}

static mgo_err frame_push_value(struct builder *b, const struct mgo_value *v, const yaml_mark_t *m)
{
    if (b->depth == 0) {
        b->root = *v;
        b->have_root = true;
        return MGO_OK;
    }
    struct frame *f = &b->stack[b->depth - 1];
    if (f->len >= (f->is_map ? MGO_MAX_MAP_ENTRIES : MGO_MAX_ARRAY_ITEMS))
        return problem_at(b, m, MGO_ERR_LIMIT,
                          f->is_map ? "map has more than MGO_MAX_MAP_ENTRIES (1024) entries"
                                    : "array has more than MGO_MAX_ARRAY_ITEMS (1024) items");
    if (f->len == f->cap) {
        size_t cap = f->cap ? f->cap * 2 : 8;
        struct mgo_value *items = realloc(f->items, cap * sizeof *items);
        if (items == NULL)
            return MGO_ERR_NOMEM;
        f->items = items;
        if (f->is_map) {
            char **keys = realloc(f->keys, cap * sizeof *keys);
            if (keys == NULL)
                return MGO_ERR_NOMEM;
            f->keys = keys;
            size_t *lens = realloc(f->key_lens, cap * sizeof *lens);
            if (lens == NULL)
                return MGO_ERR_NOMEM;
            f->key_lens = lens;
        }
        f->cap = cap;
    }
    if (f->is_map) {
        f->keys[f->len] = f->pending_key;
        f->key_lens[f->len] = f->pending_key_len;
        f->pending_key = NULL;
    }
    f->items[f->len++] = *v;
    return MGO_OK;
}

static mgo_err on_scalar(struct builder *b, const yaml_event_t *ev)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    const yaml_mark_t *m = &ev->start_mark;
    if (n > MGO_MAX_STRING_BYTES)
        return problem_at(b, m, MGO_ERR_LIMIT, "string longer than MGO_MAX_STRING_BYTES (16384)");
    if (!mgo_utf8__valid(s, n))
        return problem_at(b, m, MGO_ERR_INVALID, "string contains NUL or invalid UTF-8");
    char *copy = mgo_arena_strndup(b->arena, s, n);
    if (copy == NULL)
        return MGO_ERR_NOMEM;

    struct frame *f = b->depth > 0 ? &b->stack[b->depth - 1] : NULL;
    if (f != NULL && f->is_map && f->pending_key == NULL) {
        f->pending_key = copy;
        f->pending_key_len = n;
        return MGO_OK;
    }

    struct mgo_value v = {.kind = MGO_V_STR};
    v.as.str.ptr = copy;
    v.as.str.len = n;
    const char *tag = (const char *)ev->data.scalar.tag;
    bool forced_str = tag != NULL && strcmp(tag, YAML_STR_TAG) == 0;
    if (ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !forced_str && tag == NULL) {
        const char *why = NULL;
        mgo_err err = resolve_plain(copy, n, &v, &why);
        if (err != MGO_OK)
            return problem_at(b, m, err, why);
        if (v.kind != MGO_V_STR && v.kind != MGO_V_NULL)
            v.text = copy;
    } else if (tag != NULL && !forced_str) {
        return problem_at(b, m, MGO_ERR_INVALID,
                          "explicit tags other than !!str are not supported");
    }
    return frame_push_value(b, &v, m);
}

static mgo_err on_start(struct builder *b, const yaml_event_t *ev, bool is_map)
{
    const yaml_mark_t *m = &ev->start_mark;
    struct frame *parent = b->depth > 0 ? &b->stack[b->depth - 1] : NULL;
    if (parent != NULL && parent->is_map && parent->pending_key == NULL)
        return problem_at(b, m, MGO_ERR_INVALID, "map keys must be scalars");
    if (b->depth >= MGO_MAX_DEPTH)
        return problem_at(b, m, MGO_ERR_LIMIT, "nesting deeper than MGO_MAX_DEPTH (24)");
    struct frame *f = &b->stack[b->depth++];
    memset(f, 0, sizeof *f);
    f->is_map = is_map;
    f->line = m->line + 1;
    return MGO_OK;
}

static mgo_err on_end(struct builder *b, const yaml_event_t *ev)
{
    struct frame *f = &b->stack[b->depth - 1];
    struct mgo_value v = {.kind = f->is_map ? MGO_V_MAP : MGO_V_ARRAY};
    size_t n = f->len;
    if (f->is_map) {
        struct mgo_member *items = mgo_arena_alloc(b->arena, (n ? n : 1) * sizeof *items);
        if (items == NULL)
            return MGO_ERR_NOMEM;
        for (size_t i = 0; i < n; i++) {
            items[i].key = f->keys[i];
            items[i].key_len = f->key_lens[i];
            items[i].value = f->items[i];
        }
        v.as.map.items = items;
        v.as.map.len = n;
        if (mgo_value_map_sort(&v) != MGO_OK) {
            const char *dup = "?";
            for (size_t i = 1; i < n; i++) {
                if (items[i - 1].key_len == items[i].key_len &&
                    memcmp(items[i - 1].key, items[i].key, items[i].key_len) == 0)
                    dup = items[i].key;
            }
            char rule[MGO_MAX_PROBLEM_TEXT];
            snprintf(rule, sizeof rule, "duplicate key \"%.200s\" in the map starting on line %zu",
                     dup, f->line);
            return problem_at(b, &ev->start_mark, MGO_ERR_INVALID, rule);
        }
    } else {
        mgo_err err = mgo_value_array_new(b->arena, n, &v);
        if (err != MGO_OK)
            return err;
        if (n > 0)
            memcpy(v.as.array.items, f->items, n * sizeof *f->items);
    }
    frame_free(f);
    b->depth--;
    return frame_push_value(b, &v, &ev->start_mark);
}

mgo_err mgo_value_from_yaml(const void *data, size_t len, struct mgo_arena *arena,
                            struct mgo_value *out, struct mgo_problems *problems)
{
    if (len > MGO_MAX_FILE_BYTES) {
        mgo_problems_add(problems, "$", "document of %zu bytes exceeds MGO_MAX_FILE_BYTES (%u)",
                         len, MGO_MAX_FILE_BYTES);
        return MGO_ERR_LIMIT;
    }
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser))
        return MGO_ERR_NOMEM;
    yaml_parser_set_input_string(&parser, data, len);

    struct builder b = {.arena = arena, .problems = problems};
    mgo_err err = MGO_OK;
    size_t documents = 0;
    bool done = false;
    while (!done && err == MGO_OK) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) {
            char rule[MGO_MAX_PROBLEM_TEXT];
            snprintf(rule, sizeof rule, "not valid YAML/JSON: %s%s%s",
                     parser.problem ? parser.problem : "syntax error", parser.context ? " " : "",
                     parser.context ? parser.context : "");
            err = problem_at(&b, &parser.problem_mark, MGO_ERR_PARSE, rule);
            break;
        }
        switch (ev.type) {
        case YAML_DOCUMENT_START_EVENT:
            if (++documents > 1)
                err = problem_at(&b, &ev.start_mark, MGO_ERR_INVALID,
                                 "more than one document in the stream");
            break;
        case YAML_ALIAS_EVENT:
            err = problem_at(&b, &ev.start_mark, MGO_ERR_INVALID,
                             "aliases (*name) are not supported");
            break;
        case YAML_SCALAR_EVENT:
            err = on_scalar(&b, &ev);
            break;
        case YAML_SEQUENCE_START_EVENT:
            err = on_start(&b, &ev, false);
            break;
        case YAML_MAPPING_START_EVENT:
            err = on_start(&b, &ev, true);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            err = on_end(&b, &ev);
            break;
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    while (b.depth > 0)
        frame_free(&b.stack[--b.depth]);
    yaml_parser_delete(&parser);
    if (err == MGO_ERR_NOMEM)
        mgo_problems_add(problems, "$", "document needs more than MGO_MAX_DOC_ARENA_BYTES");
    if (err == MGO_OK && !b.have_root) {
        mgo_problems_add(problems, "$", "empty document");
        err = MGO_ERR_PARSE;
    }
    if (err == MGO_OK)
        *out = b.root;
    return err;
}

/* ---- mgo_value -> YAML (libyaml's emitter) ------------------------------------------- */

static int emit_write(void *data, unsigned char *buffer, size_t size)
{
    return mgo_buf_append(data, buffer, size) == MGO_OK;
}

/* A string that would read back as something else (null, bool, number, .inf) or that is
 * empty is double-quoted; so is one a YAML 1.1 reader (PyYAML, ...) would take for a
 * boolean, number or timestamp (yes/no/on/off/y/n, anything starting with a digit, '+',
 * '-' or '.' then a digit, "2026-12-05T10:05:26.668Z"). Every other string lets libyaml
 * choose (plain when it can). */
static bool needs_quotes(const char *s, size_t n)
{
    if (n == 0)
        return true;
    struct mgo_value v;
    const char *why = NULL;
    if (resolve_plain(s, n, &v, &why) != MGO_OK || v.kind != MGO_V_STR)
        return true;
    static const char *const yaml11[] = {"yes", "no", "on", "off", "y", "n"};
    for (size_t i = 0; i < sizeof yaml11 / sizeof yaml11[0]; i++) {
        if (strcasecmp(s, yaml11[i]) == 0)
            return true;
    }
    size_t d = (s[0] == '+' || s[0] == '-' || s[0] == '.') ? 1 : 0;
    return d < n && s[d] >= '0' && s[d] <= '9';
}

static int emit_scalar(yaml_emitter_t *em, const char *tag, const char *text, size_t n,
                       bool implicit, yaml_scalar_style_t style)
{
    yaml_event_t ev;
    if (!yaml_scalar_event_initialize(&ev, NULL, (yaml_char_t *)tag, (yaml_char_t *)text, (int)n,
                                      implicit, implicit, style))
        return 0;
    return yaml_emitter_emit(em, &ev);
}

static int emit_string(yaml_emitter_t *em, const char *s, size_t n)
{
    return emit_scalar(em, NULL, s, n, true,
                       needs_quotes(s, n) ? YAML_DOUBLE_QUOTED_SCALAR_STYLE
                                          : YAML_ANY_SCALAR_STYLE);
}

/* The shortest decimal form that reads back to f, always with a '.' or an exponent. */
static void float_text(double f, char *out, size_t size)
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, size, "%.*g", prec, f);
        if (strtod(out, NULL) == f)
            break;
    }
    if (!strpbrk(out, ".eEn"))
        strncat(out, ".0", size - strlen(out) - 1);
}

static void base64(const unsigned char *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v = (unsigned)in[i] << 16;
        if (i + 1 < n)
            v |= (unsigned)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[(v >> 18) & 63];
        out[o++] = tab[(v >> 12) & 63];
        out[o++] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = '\0';
}

static int emit_value(yaml_emitter_t *em, const struct mgo_value *v, size_t depth)
{
    yaml_event_t ev;
    char t[40];
    if (depth > MGO_MAX_DEPTH)
        return 0;
    switch (v->kind) {
    case MGO_V_NULL:
        return emit_scalar(em, NULL, "null", 4, true, YAML_PLAIN_SCALAR_STYLE);
    case MGO_V_BOOL:
        return emit_scalar(em, NULL, v->as.b ? "true" : "false", v->as.b ? 4 : 5, true,
                           YAML_PLAIN_SCALAR_STYLE);
    case MGO_V_INT:
        snprintf(t, sizeof t, "%lld", (long long)v->as.i);
        return emit_scalar(em, NULL, t, strlen(t), true, YAML_PLAIN_SCALAR_STYLE);
    case MGO_V_UINT:
        snprintf(t, sizeof t, "%llu", (unsigned long long)v->as.u);
        return emit_scalar(em, NULL, t, strlen(t), true, YAML_PLAIN_SCALAR_STYLE);
    case MGO_V_FLOAT:
        float_text(v->as.f, t, sizeof t);
        return emit_scalar(em, NULL, t, strlen(t), true, YAML_PLAIN_SCALAR_STYLE);
    case MGO_V_STR:
        return emit_string(em, v->as.str.ptr, v->as.str.len);
    case MGO_V_BIN: {
        char *b = malloc(v->as.str.len / 3 * 4 + 8);
        if (!b)
            return 0;
        base64((const unsigned char *)v->as.str.ptr, v->as.str.len, b);
        int ok =
            emit_scalar(em, "tag:yaml.org,2002:binary", b, strlen(b), false, YAML_ANY_SCALAR_STYLE);
        free(b);
        return ok;
    }
    case MGO_V_ARRAY:
        if (!yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE) ||
            !yaml_emitter_emit(em, &ev))
            return 0;
        for (size_t i = 0; i < v->as.array.len; i++) {
            if (!emit_value(em, &v->as.array.items[i], depth + 1))
                return 0;
        }
        return yaml_sequence_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    case MGO_V_MAP:
        if (!yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE) ||
            !yaml_emitter_emit(em, &ev))
            return 0;
        for (size_t i = 0; i < v->as.map.len; i++) {
            const struct mgo_member *m = &v->as.map.items[i];
            if (!emit_string(em, m->key, strlen(m->key)) || !emit_value(em, &m->value, depth + 1))
                return 0;
        }
        return yaml_mapping_end_event_initialize(&ev) && yaml_emitter_emit(em, &ev);
    }
    return 0;
}

mgo_err mgo_value_to_yaml(const struct mgo_value *v, struct mgo_buf *buf)
{
    yaml_emitter_t em;
    if (!yaml_emitter_initialize(&em))
        return MGO_ERR_NOMEM;
    yaml_emitter_set_output(&em, emit_write, buf);
    yaml_emitter_set_unicode(&em, 1);
    yaml_emitter_set_width(&em, 100);
    yaml_emitter_set_indent(&em, 2);
    yaml_event_t ev;
    size_t start = buf->len;
    int ok = yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING) &&
             yaml_emitter_emit(&em, &ev) &&
             yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, 1) &&
             yaml_emitter_emit(&em, &ev) && emit_value(&em, v, 0) &&
             yaml_document_end_event_initialize(&ev, 1) && yaml_emitter_emit(&em, &ev) &&
             yaml_stream_end_event_initialize(&ev) && yaml_emitter_emit(&em, &ev) &&
             yaml_emitter_flush(&em);
    yaml_emitter_delete(&em);
    if (!ok) {
        buf->len = start;
        if (buf->data)
            buf->data[start] = 0;
        return MGO_ERR_LIMIT; /* the buffer's cap, or a tree deeper than MGO_MAX_DEPTH */
    }
    return MGO_OK;
}
