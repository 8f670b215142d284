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
