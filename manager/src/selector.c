/* selector.c - label checks and the label selector parser (mgo/selector.h). */
#include "mgo/selector.h"

#include <stdio.h>
#include <string.h>

static bool alnum(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static bool key_char(char c)
{
    return alnum(c) || c == '.' || c == '_' || c == '-' || c == '/';
}

static bool value_char(char c)
{
    return alnum(c) || c == '.' || c == '_' || c == '-';
}

static void say(char *out, size_t size, const char *text)
{
    if (out && size)
        snprintf(out, size, "%s", text);
}

bool mgo_label_key_ok(const char *key, char *why, size_t why_size)
{
    size_t n = strlen(key);
    if (n == 0 || n > MGO_LABEL_MAX_KEY) {
        say(why, why_size, "a label key has 1..128 bytes");
        return false;
    }
    if (!alnum(key[0])) {
        say(why, why_size, "a label key starts with a letter or digit");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!key_char(key[i])) {
            say(why, why_size, "a label key holds only letters, digits and . _ - /");
            return false;
        }
    }
    return true;
}

bool mgo_label_value_ok(const char *value, char *why, size_t why_size)
{
    size_t n = strlen(value);
    if (n > MGO_LABEL_MAX_VALUE) {
        say(why, why_size, "a label value has at most 128 bytes");
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        if (!value_char(value[i])) {
            say(why, why_size, "a label value holds only letters, digits and . _ -");
            return false;
        }
    }
    return true;
}

/* ---- parser ------------------------------------------------------------------------------ */

struct parser {
    const char *text;
    size_t pos;
    struct mgo_selector *sel;
    size_t pool_len;
    char *err;
    size_t err_size;
};

static mgo_err fail(struct parser *p, size_t at, mgo_err code, const char *rule)
{
    if (p->err && p->err_size)
        snprintf(p->err, p->err_size, "at byte %zu: %s", at, rule);
    return code;
}

static void skip_blanks(struct parser *p)
{
    while (p->text[p->pos] == ' ' || p->text[p->pos] == '\t')
        p->pos++;
}

/* Copies text[from, to) into the pool (NUL-terminated); the pool holds every byte of a
 * bounded text plus one NUL per token, so it cannot overflow. */
static const char *keep(struct parser *p, size_t from, size_t to)
{
    char *dst = p->sel->pool + p->pool_len;
    memcpy(dst, p->text + from, to - from);
    dst[to - from] = '\0';
    p->pool_len += to - from + 1;
    return dst;
}

static mgo_err read_key(struct parser *p, const char **out)
{
    size_t start = p->pos;
    while (key_char(p->text[p->pos]))
        p->pos++;
    if (p->pos == start)
        return fail(p, start, MGO_ERR_INVALID, "expected a label key");
    if (!alnum(p->text[start]))
        return fail(p, start, MGO_ERR_INVALID, "a label key starts with a letter or digit");
    if (p->pos - start > MGO_LABEL_MAX_KEY)
        return fail(p, start, MGO_ERR_LIMIT, "a label key has at most 128 bytes");
    *out = keep(p, start, p->pos);
    return MGO_OK;
}

static mgo_err read_value(struct parser *p, const char **out)
{
    size_t start = p->pos;
    while (value_char(p->text[p->pos]))
        p->pos++;
    if (p->pos - start > MGO_LABEL_MAX_VALUE)
        return fail(p, start, MGO_ERR_LIMIT, "a label value has at most 128 bytes");
    *out = keep(p, start, p->pos);
    return MGO_OK;
}

static bool word_at(const struct parser *p, const char *word)
{
    size_t n = strlen(word);
    if (strncmp(p->text + p->pos, word, n) != 0)
        return false;
    char after = p->text[p->pos + n];
    return after == ' ' || after == '\t' || after == '(';
}

static mgo_err read_set(struct parser *p, struct mgo_sel_req *r)
{
    skip_blanks(p);
    if (p->text[p->pos] != '(')
        return fail(p, p->pos, MGO_ERR_INVALID, "expected '(' after in/notin");
    p->pos++;
    for (;;) {
        skip_blanks(p);
        if (r->values_len == MGO_SELECTOR_MAX_VALUES)
            return fail(p, p->pos, MGO_ERR_LIMIT, "a set has at most 16 values");
        size_t at = p->pos;
        mgo_err err = read_value(p, &r->values[r->values_len]);
        if (err)
            return err;
        if (r->values[r->values_len][0] == '\0')
            return fail(p, at, MGO_ERR_INVALID, "expected a value (letters, digits, . _ -)");
        r->values_len++;
        skip_blanks(p);
        char c = p->text[p->pos];
        if (c == ')') {
            p->pos++;
            return MGO_OK;
        }
        if (c != ',')
            return fail(p, p->pos, MGO_ERR_INVALID, "expected ',' or ')' in a set of values");
        p->pos++;
    }
}

static mgo_err read_req(struct parser *p, struct mgo_sel_req *r)
{
    skip_blanks(p);
    memset(r, 0, sizeof *r);
    if (p->text[p->pos] == '!') {
        p->pos++;
        skip_blanks(p);
        r->op = MGO_SEL_ABSENT;
        return read_key(p, &r->key);
    }
    mgo_err err = read_key(p, &r->key);
    if (err)
        return err;
    skip_blanks(p);
    const char *t = p->text + p->pos;
    if (t[0] == '\0' || t[0] == ',') {
        r->op = MGO_SEL_EXISTS;
        return MGO_OK;
    }
    if (t[0] == '=' || (t[0] == '!' && t[1] == '=')) {
        r->op = t[0] == '=' ? MGO_SEL_EQ : MGO_SEL_NE;
        p->pos += (t[0] == '=' && t[1] == '=') || t[0] == '!' ? 2 : 1;
        skip_blanks(p);
        size_t at = p->pos;
        err = read_value(p, &r->values[0]);
        if (err)
            return err;
        r->values_len = 1;
        char c = p->text[p->pos];
        if (c != '\0' && c != ',' && c != ' ' && c != '\t')
            return fail(p, p->pos, MGO_ERR_INVALID,
                        "a label value holds only letters, digits and . _ -");
        (void)at;
        return MGO_OK;
    }
    if (word_at(p, "in")) {
        r->op = MGO_SEL_IN;
        p->pos += 2;
        return read_set(p, r);
    }
    if (word_at(p, "notin")) {
        r->op = MGO_SEL_NOTIN;
        p->pos += 5;
        return read_set(p, r);
    }
    return fail(p, p->pos, MGO_ERR_INVALID,
                "expected '=', '==', '!=', 'in', 'notin', ',' or the end after a key");
}

mgo_err mgo_selector_parse(const char *text, struct mgo_selector *sel, char *err, size_t err_size)
{
    struct parser p = {.text = text, .sel = sel, .err = err, .err_size = err_size};
    sel->reqs_len = 0;
    size_t len = strlen(text);
    if (len > MGO_SELECTOR_MAX_LEN)
        return fail(&p, MGO_SELECTOR_MAX_LEN, MGO_ERR_LIMIT, "a selector has at most 1024 bytes");
    skip_blanks(&p);
    if (text[p.pos] == '\0')
        return MGO_OK; /* every device */
    for (;;) {
        if (sel->reqs_len == MGO_SELECTOR_MAX_REQS)
            return fail(&p, p.pos, MGO_ERR_LIMIT, "a selector has at most 32 requirements");
        mgo_err e = read_req(&p, &sel->reqs[sel->reqs_len]);
        if (e)
            return e;
        sel->reqs_len++;
        skip_blanks(&p);
        if (text[p.pos] == '\0')
            return MGO_OK;
        if (text[p.pos] != ',')
            return fail(&p, p.pos, MGO_ERR_INVALID, "expected ',' between requirements");
        p.pos++;
        skip_blanks(&p);
        if (text[p.pos] == '\0')
            return fail(&p, p.pos, MGO_ERR_INVALID, "expected a requirement after ','");
    }
}

/* ---- matching ---------------------------------------------------------------------------- */

static const char *lookup(const struct mgo_label *labels, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(labels[i].key, key) == 0)
            return labels[i].value;
    }
    return NULL;
}

static bool in_set(const struct mgo_sel_req *r, const char *v)
{
    for (size_t i = 0; v && i < r->values_len; i++) {
        if (strcmp(r->values[i], v) == 0)
            return true;
    }
    return false;
}

static void describe(const struct mgo_sel_req *r, char *out, size_t size)
{
    static const char *const ops[] = {"=", "!=", " in (", " notin (", "", "!"};
    size_t n = 0;
    if (r->op == MGO_SEL_ABSENT)
        n = (size_t)snprintf(out, size, "!%s", r->key);
    else
        n = (size_t)snprintf(out, size, "%s%s", r->key, ops[r->op]);
    for (size_t i = 0; i < r->values_len && n < size; i++)
        n += (size_t)snprintf(out + n, size - n, "%s%s", i ? "," : "", r->values[i]);
    if ((r->op == MGO_SEL_IN || r->op == MGO_SEL_NOTIN) && n < size)
        snprintf(out + n, size - n, ")");
}

bool mgo_selector_match(const struct mgo_selector *sel, const struct mgo_label *labels, size_t n,
                        char *why, size_t why_size)
{
    for (size_t i = 0; i < sel->reqs_len; i++) {
        const struct mgo_sel_req *r = &sel->reqs[i];
        const char *v = lookup(labels, n, r->key);
        bool ok = false;
        switch (r->op) {
        case MGO_SEL_EQ:
            ok = v && strcmp(v, r->values[0]) == 0;
            break;
        case MGO_SEL_NE:
            ok = !v || strcmp(v, r->values[0]) != 0;
            break;
        case MGO_SEL_IN:
            ok = in_set(r, v);
            break;
        case MGO_SEL_NOTIN:
            ok = !in_set(r, v);
            break;
        case MGO_SEL_EXISTS:
            ok = v != NULL;
            break;
        case MGO_SEL_ABSENT:
            ok = v == NULL;
            break;
        }
        if (ok)
            continue;
        if (why && why_size) {
            char req[256];
            describe(r, req, sizeof req);
            if (v)
                snprintf(why, why_size, "label %s=%s does not satisfy %s", r->key, v, req);
            else
                snprintf(why, why_size, "no label %s (selector wants %s)", r->key, req);
        }
        return false;
    }
    return true;
}
