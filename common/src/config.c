/* config.c - table-driven `key value` files and `--key value` flags.
 *
 * Grammar of a file (at most MGO_MAX_FILE_BYTES, lines at most MAX_LINE bytes):
 *   line    = blank | comment | entry
 *   comment = [spaces] '#' anything
 *   entry   = [spaces] key spaces value [spaces] [ '#' anything ]
 *   value   = bare | '"' { char | '\"' | '\\' } '"'
 * A bare value is one word (no spaces); quote it to keep spaces or a leading '#'.
 * A '#' that follows a value after spaces starts a comment; a '#' inside a word is kept.
 *
 * Every problem is reported as field "file:line" (or "--flag"), rule "key: what is wrong",
 * so mgo_problems_format() prints "file:line: key: rule". Parsing goes on after a problem so
 * that one run reports them all; the first error class is returned. */
#include "mgo/config.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mgo/limits.h"
#include "mgo/log.h"

#define TAG "config"
#define MAX_LINE 4096u
/* Most values one list option takes. */
#define MAX_LIST_ITEMS MGO_MAX_ARRAY_ITEMS

static void keep_first(mgo_err *first, mgo_err err)
{
    if (*first == MGO_OK)
        *first = err;
}

static const struct mgo_cfg_option *find_option(const struct mgo_cfg_option *table, size_t n,
                                                const char *key)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(table[i].name, key) == 0)
            return &table[i];
    }
    return NULL;
}

static void *field_of(void *target, const struct mgo_cfg_option *opt)
{
    return (char *)target + opt->offset;
}

static mgo_err parse_int(const char *text, int64_t *out)
{
    if (text[0] == '\0' || isspace((unsigned char)text[0]))
        return MGO_ERR_INVALID;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(text, &end, 10);
    if (errno == ERANGE)
        return MGO_ERR_LIMIT;
    if (errno != 0 || end == text || *end != '\0')
        return MGO_ERR_INVALID;
    *out = (int64_t)v;
    return MGO_OK;
}

static mgo_err parse_bool(const char *text, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        if (strcasecmp(text, yes[i]) == 0) {
            *out = true;
            return MGO_OK;
        }
        if (strcasecmp(text, no[i]) == 0) {
            *out = false;
            return MGO_OK;
        }
    }
    return MGO_ERR_INVALID;
}

static void list_clear(struct mgo_strlist *l)
{
    for (size_t i = 0; i < l->len; i++)
        free(l->items[i]);
    free(l->items);
    l->items = NULL;
    l->len = 0;
}

static mgo_err list_append(struct mgo_strlist *l, const char *value)
{
    if (l->len >= MAX_LIST_ITEMS)
        return MGO_ERR_LIMIT;
    char *copy = strdup(value);
    if (copy == NULL)
        return MGO_ERR_NOMEM;
    char **items = realloc(l->items, (l->len + 1) * sizeof *items);
    if (items == NULL) {
        free(copy);
        return MGO_ERR_NOMEM;
    }
    items[l->len++] = copy;
    l->items = items;
    return MGO_OK;
}

/* Checks and stores one value; problems name origin and key. */
static mgo_err apply(const struct mgo_cfg_option *opt, void *target, const char *value,
                     const char *origin, struct mgo_problems *problems)
{
    void *field = field_of(target, opt);
    switch (opt->type) {
    case MGO_CFG_INT: {
        int64_t v = 0;
        mgo_err err = parse_int(value, &v);
        if (err != MGO_OK || v < opt->min || v > opt->max) {
            mgo_problems_add(problems, origin,
                             "%s: must be a whole number from %" PRId64 " to %" PRId64
                             ", got \"%.64s\"",
                             opt->name, opt->min, opt->max, value);
            return MGO_ERR_INVALID;
        }
        *(int64_t *)field = v;
        return MGO_OK;
    }
    case MGO_CFG_BOOL: {
        bool v = false;
        if (parse_bool(value, &v) != MGO_OK) {
            mgo_problems_add(problems, origin,
                             "%s: must be true/false, yes/no, on/off or 1/0, got \"%.64s\"",
                             opt->name, value);
            return MGO_ERR_INVALID;
        }
        *(bool *)field = v;
        return MGO_OK;
    }
    case MGO_CFG_STR:
    case MGO_CFG_LIST: {
        size_t len = strlen(value);
        if (opt->max > 0 && (uint64_t)len > (uint64_t)opt->max) {
            mgo_problems_add(problems, origin, "%s: longer than %" PRId64 " bytes (%zu)", opt->name,
                             opt->max, len);
            return MGO_ERR_LIMIT;
        }
        for (size_t i = 0; i < len; i++) {
            if (iscntrl((unsigned char)value[i]) && value[i] != '\t') {
                mgo_problems_add(problems, origin, "%s: control character at byte %zu", opt->name,
                                 i);
                return MGO_ERR_INVALID;
            }
        }
        if (opt->type == MGO_CFG_LIST) {
            mgo_err err = list_append(field, value);
            if (err == MGO_ERR_LIMIT)
                mgo_problems_add(problems, origin, "%s: more than %u values", opt->name,
                                 MAX_LIST_ITEMS);
            else if (err != MGO_OK)
                mgo_problems_add(problems, origin, "%s: out of memory", opt->name);
            return err;
        }
        char *copy = strdup(value);
        if (copy == NULL) {
            mgo_problems_add(problems, origin, "%s: out of memory", opt->name);
            return MGO_ERR_NOMEM;
        }
        char **slot = field;
        free(*slot);
        *slot = copy;
        return MGO_OK;
    }
    }
    mgo_problems_add(problems, origin, "%s: option has an unknown type", opt->name);
    return MGO_ERR_INTERNAL;
}

mgo_err mgo_cfg_set(const struct mgo_cfg_option *table, size_t n, void *target, const char *key,
                    const char *value, const char *origin, struct mgo_problems *problems)
{
    const struct mgo_cfg_option *opt = find_option(table, n, key);
    if (opt == NULL) {
        mgo_problems_add(problems, origin, "%.128s: unknown key", key);
        return MGO_ERR_INVALID;
    }
    return apply(opt, target, value, origin, problems);
}

/* Target must be zeroed or already filled by these functions: old strings are freed. */
mgo_err mgo_cfg_defaults(const struct mgo_cfg_option *table, size_t n, void *target)
{
    mgo_cfg_cleanup(table, n, target);
    for (size_t i = 0; i < n; i++) {
        const struct mgo_cfg_option *opt = &table[i];
        void *field = field_of(target, opt);
        switch (opt->type) {
        case MGO_CFG_INT:
            *(int64_t *)field = 0;
            break;
        case MGO_CFG_BOOL:
            *(bool *)field = false;
            break;
        case MGO_CFG_STR:
        case MGO_CFG_LIST:
            break; /* cleared above */
        }
        if (opt->def == NULL)
            continue;
        struct mgo_problems problems;
        mgo_problems_init(&problems);
        mgo_err err = apply(opt, target, opt->def, "default", &problems);
        if (err != MGO_OK) {
            char text[512];
            mgo_problems_format(&problems, text, sizeof text);
            MGO_LOGE(TAG, "bad default in the option table: %s", text);
            return err == MGO_ERR_NOMEM ? err : MGO_ERR_INTERNAL;
        }
    }
    return MGO_OK;
}

/* Splits one line (NUL-terminated, no newline) into key and value, in place. Blank and
 * comment lines leave *key_out NULL; problems go to origin. */
static mgo_err split_line(char *line, const char *origin, struct mgo_problems *problems,
                          char **key_out, char **value_out)
{
    *key_out = NULL;
    *value_out = NULL;
    char *p = line;
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || *p == '#')
        return MGO_OK;
    char *key = p;
    while (*p != '\0' && *p != ' ' && *p != '\t')
        p++;
    if (*p == '\0') {
        mgo_problems_add(problems, origin, "%.128s: missing value", key);
        return MGO_ERR_INVALID;
    }
    *p++ = '\0';
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p == '\0' || *p == '#') {
        mgo_problems_add(problems, origin, "%.128s: missing value", key);
        return MGO_ERR_INVALID;
    }
    char *value = p;
    if (*p == '"') {
        /* Quoted: unescape in place. */
        char *w = p;
        p++;
        for (;;) {
            if (*p == '\0') {
                mgo_problems_add(problems, origin, "%.128s: missing closing quote", key);
                return MGO_ERR_PARSE;
            }
            if (*p == '"')
                break;
            if (*p == '\\') {
                if (p[1] != '"' && p[1] != '\\') {
                    mgo_problems_add(problems, origin,
                                     "%.128s: only \\\" and \\\\ may follow a backslash", key);
                    return MGO_ERR_PARSE;
                }
                p++;
            }
            *w++ = *p++;
        }
        *w = '\0';
        p++; /* past the closing quote */
    } else {
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
        if (*p != '\0')
            *p++ = '\0';
    }
    while (*p == ' ' || *p == '\t')
        p++;
    if (*p != '\0' && *p != '#') {
        mgo_problems_add(problems, origin,
                         "%.128s: unexpected text after the value (quote values with spaces)", key);
        return MGO_ERR_PARSE;
    }
    *key_out = key;
    *value_out = value;
    return MGO_OK;
}

mgo_err mgo_cfg_load_text(const struct mgo_cfg_option *table, size_t n, void *target,
                          const char *text, size_t len, const char *name,
                          struct mgo_problems *problems)
{
    if (len > MGO_MAX_FILE_BYTES) {
        mgo_problems_add(problems, name, "larger than %u bytes", MGO_MAX_FILE_BYTES);
        return MGO_ERR_LIMIT;
    }
    mgo_err first = MGO_OK;
    char line[MAX_LINE + 1];
    char origin[MGO_MAX_FIELD_PATH];
    size_t pos = 0;
    unsigned long lineno = 0;
    while (pos < len) {
        lineno++;
        const char *start = text + pos;
        const char *nl = memchr(start, '\n', len - pos);
        size_t line_len = nl != NULL ? (size_t)(nl - start) : len - pos;
        pos += line_len + (nl != NULL ? 1u : 0u);
        if (line_len > 0 && start[line_len - 1] == '\r')
            line_len--;
        snprintf(origin, sizeof origin, "%.200s:%lu", name, lineno);
        if (line_len > MAX_LINE) {
            mgo_problems_add(problems, origin, "line longer than %u bytes", MAX_LINE);
            keep_first(&first, MGO_ERR_LIMIT);
            continue;
        }
        if (memchr(start, '\0', line_len) != NULL) {
            mgo_problems_add(problems, origin, "line contains a NUL byte");
            keep_first(&first, MGO_ERR_PARSE);
            continue;
        }
        memcpy(line, start, line_len);
        line[line_len] = '\0';
        char *key = NULL;
        char *value = NULL;
        mgo_err err = split_line(line, origin, problems, &key, &value);
        if (err == MGO_OK && key != NULL)
            err = mgo_cfg_set(table, n, target, key, value, origin, problems);
        if (err != MGO_OK)
            keep_first(&first, err);
    }
    return first;
}

mgo_err mgo_cfg_load_file(const struct mgo_cfg_option *table, size_t n, void *target,
                          const char *path, struct mgo_problems *problems)
{
    mgo_err err;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        mgo_problems_add(problems, path, "cannot open: %s", strerror(e));
        return e == ENOENT ? MGO_ERR_NOT_FOUND : MGO_ERR_IO;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        mgo_problems_add(problems, path, "cannot stat: %s", strerror(errno));
        err = MGO_ERR_IO;
        goto close_fd;
    }
    if (!S_ISREG(st.st_mode)) {
        mgo_problems_add(problems, path, "not a regular file");
        err = MGO_ERR_IO;
        goto close_fd;
    }
    if (st.st_size > (off_t)MGO_MAX_FILE_BYTES) {
        mgo_problems_add(problems, path, "larger than %u bytes", MGO_MAX_FILE_BYTES);
        err = MGO_ERR_LIMIT;
        goto close_fd;
    }
    /* Read up to one byte past the limit: the file may grow after fstat. */
    size_t cap = (size_t)st.st_size + 1;
    if (cap > MGO_MAX_FILE_BYTES + 1u)
        cap = MGO_MAX_FILE_BYTES + 1u;
    char *data = malloc(cap);
    if (data == NULL) {
        err = MGO_ERR_NOMEM;
        goto close_fd;
    }
    size_t len = 0;
    for (;;) {
        if (len == cap) {
            if (cap > MGO_MAX_FILE_BYTES)
                break;
            size_t ncap = cap * 2 > MGO_MAX_FILE_BYTES + 1u ? MGO_MAX_FILE_BYTES + 1u : cap * 2;
            char *nd = realloc(data, ncap);
            if (nd == NULL) {
                err = MGO_ERR_NOMEM;
                goto free_data;
            }
            data = nd;
            cap = ncap;
        }
        ssize_t r = read(fd, data + len, cap - len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            mgo_problems_add(problems, path, "cannot read: %s", strerror(errno));
            err = MGO_ERR_IO;
            goto free_data;
        }
        if (r == 0)
            break;
        len += (size_t)r;
    }
    if (len > MGO_MAX_FILE_BYTES) {
        mgo_problems_add(problems, path, "larger than %u bytes", MGO_MAX_FILE_BYTES);
        err = MGO_ERR_LIMIT;
        goto free_data;
    }
    err = mgo_cfg_load_text(table, n, target, data, len, path, problems);
free_data:
    free(data);
close_fd:
    close(fd);
    return err;
}

static bool is_config_flag(const char *arg, const char **inline_value)
{
    static const char flag[] = "--config";
    size_t fl = sizeof flag - 1;
    if (strncmp(arg, flag, fl) != 0)
        return false;
    if (arg[fl] == '\0') {
        *inline_value = NULL;
        return true;
    }
    if (arg[fl] == '=') {
        *inline_value = arg + fl + 1;
        return true;
    }
    return false;
}

static bool is_help_flag(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

mgo_err mgo_cfg_parse_args(const struct mgo_cfg_option *table, size_t n, void *target, int argc,
                           char **argv, bool *help_out, struct mgo_problems *problems)
{
    *help_out = false;
    mgo_err first = mgo_cfg_defaults(table, n, target);
    if (first != MGO_OK)
        return first;

    /* Pass 1: --help and --config. */
    const char *config_path = NULL;
    for (int i = 1; i < argc; i++) {
        const char *inline_value = NULL;
        if (is_help_flag(argv[i])) {
            *help_out = true;
            return MGO_OK; /* --help works even with a broken config */
        }
        if (!is_config_flag(argv[i], &inline_value))
            continue;
        const char *path = inline_value;
        if (path == NULL) {
            if (i + 1 >= argc) {
                mgo_problems_add(problems, "--config", "config: missing value");
                keep_first(&first, MGO_ERR_INVALID);
                continue;
            }
            path = argv[++i];
        }
        if (path[0] == '\0') {
            mgo_problems_add(problems, "--config", "config: empty file name");
            keep_first(&first, MGO_ERR_INVALID);
        } else if (config_path != NULL) {
            mgo_problems_add(problems, "--config", "config: given more than once");
            keep_first(&first, MGO_ERR_INVALID);
        } else {
            config_path = path;
        }
    }
    if (config_path != NULL) {
        mgo_err err = mgo_cfg_load_file(table, n, target, config_path, problems);
        if (err != MGO_OK)
            keep_first(&first, err);
    }

    /* Pass 2: every other flag, in order, over the file. */
    char origin[MGO_MAX_FIELD_PATH];
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        const char *inline_value = NULL;
        if (is_config_flag(arg, &inline_value)) {
            if (inline_value == NULL)
                i++;
            continue;
        }
        if (strncmp(arg, "--", 2) != 0 || arg[2] == '\0' || arg[2] == '=') {
            mgo_problems_add(problems, "argv",
                             "\"%.128s\": not an option (options look like --key value)", arg);
            keep_first(&first, MGO_ERR_INVALID);
            continue;
        }
        const char *name = arg + 2;
        const char *eq = strchr(name, '=');
        size_t name_len = eq != NULL ? (size_t)(eq - name) : strlen(name);
        char key[128];
        if (name_len >= sizeof key) {
            mgo_problems_add(problems, "argv", "\"%.64s...\": unknown option", arg);
            keep_first(&first, MGO_ERR_INVALID);
            continue;
        }
        memcpy(key, name, name_len);
        key[name_len] = '\0';
        snprintf(origin, sizeof origin, "--%s", key);
        const struct mgo_cfg_option *opt = find_option(table, n, key);
        if (opt == NULL) {
            mgo_problems_add(problems, origin, "%s: unknown option", key);
            keep_first(&first, MGO_ERR_INVALID);
            if (eq == NULL && i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0)
                i++; /* skip its probable value so it is not reported again */
            continue;
        }
        const char *value = NULL;
        if (eq != NULL) {
            value = eq + 1;
        } else if (i + 1 < argc && strncmp(argv[i + 1], "--", 2) != 0) {
            value = argv[++i];
        } else if (opt->type == MGO_CFG_BOOL) {
            value = "true"; /* a bare boolean flag switches it on */
        } else {
            mgo_problems_add(problems, origin, "%s: missing value", key);
            keep_first(&first, MGO_ERR_INVALID);
            continue;
        }
        mgo_err err = apply(opt, target, value, origin, problems);
        if (err != MGO_OK)
            keep_first(&first, err);
    }
    return first;
}

void mgo_cfg_print_help(const struct mgo_cfg_option *table, size_t n, const char *usage, FILE *out)
{
    if (usage != NULL)
        fprintf(out, "%s\n", usage);
    fprintf(out, "\nOptions (also accepted as `key value` lines in the --config file):\n");
    fprintf(out, "  --config FILE         read options from FILE first; flags override it\n");
    fprintf(out, "  -h, --help            show this help\n");
    for (size_t i = 0; i < n; i++) {
        const struct mgo_cfg_option *opt = &table[i];
        char arg[64];
        switch (opt->type) {
        case MGO_CFG_INT:
            snprintf(arg, sizeof arg, "N");
            break;
        case MGO_CFG_BOOL:
            snprintf(arg, sizeof arg, "[BOOL]");
            break;
        case MGO_CFG_STR:
            snprintf(arg, sizeof arg, "TEXT");
            break;
        case MGO_CFG_LIST:
            snprintf(arg, sizeof arg, "TEXT...");
            break;
        default:
            snprintf(arg, sizeof arg, "?");
            break;
        }
        fprintf(out, "  --%s %s\n      %s", opt->name, arg, opt->help != NULL ? opt->help : "");
        if (opt->type == MGO_CFG_INT)
            fprintf(out, " (%" PRId64 "..%" PRId64 ")", opt->min, opt->max);
        else if (opt->type == MGO_CFG_LIST)
            fprintf(out, " (repeatable)");
        else if (opt->type == MGO_CFG_STR && opt->max > 0)
            fprintf(out, " (at most %" PRId64 " bytes)", opt->max);
        if (opt->def != NULL)
            fprintf(out, " [default: %s]", opt->def);
        fputc('\n', out);
    }
}

static bool same_str(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

bool mgo_cfg_reloadable(const char *name)
{
    static const char *const names[] = {"log-level", "log-format", "ca-file", "cert-file",
                                        "key-file"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i]) == 0)
            return true;
    return false;
}

void mgo_cfg_report_restart(const char *tag, const struct mgo_cfg_option *table, size_t n,
                            const void *fresh, const void *last)
{
    for (size_t i = 0; i < n; i++) {
        if (!mgo_cfg_reloadable(table[i].name) && !mgo_cfg_same(&table[i], fresh, last))
            mgo_log_write(MGO_LOG_WARN, tag, "needs a restart: %s", table[i].name);
    }
}

void mgo_cfg_log_reload_problems(const char *tag, const struct mgo_problems *problems)
{
    for (size_t i = 0; i < problems->count; i++)
        mgo_log_write(MGO_LOG_ERROR, tag, "reload: %s: %s", problems->items[i].field,
                      problems->items[i].rule);
    if (mgo_problems_total(problems) > problems->count)
        mgo_log_write(MGO_LOG_ERROR, tag, "reload: %zu more problems",
                      mgo_problems_total(problems) - problems->count);
}

bool mgo_cfg_same(const struct mgo_cfg_option *opt, const void *a, const void *b)
{
    const char *fa = (const char *)a + opt->offset, *fb = (const char *)b + opt->offset;
    switch (opt->type) {
    case MGO_CFG_INT:
        return *(const int64_t *)(const void *)fa == *(const int64_t *)(const void *)fb;
    case MGO_CFG_BOOL:
        return *(const bool *)(const void *)fa == *(const bool *)(const void *)fb;
    case MGO_CFG_STR:
        return same_str(*(char *const *)(const void *)fa, *(char *const *)(const void *)fb);
    case MGO_CFG_LIST: {
        const struct mgo_strlist *la = (const void *)fa, *lb = (const void *)fb;
        if (la->len != lb->len)
            return false;
        for (size_t i = 0; i < la->len; i++)
            if (!same_str(la->items[i], lb->items[i]))
                return false;
        return true;
    }
    }
    return false;
}

void mgo_cfg_cleanup(const struct mgo_cfg_option *table, size_t n, void *target)
{
    for (size_t i = 0; i < n; i++) {
        void *field = field_of(target, &table[i]);
        if (table[i].type == MGO_CFG_STR) {
            char **slot = field;
            free(*slot);
            *slot = NULL;
        } else if (table[i].type == MGO_CFG_LIST) {
            list_clear(field);
        }
    }
}
