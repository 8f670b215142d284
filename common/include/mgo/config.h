/* config.h - table-driven configuration: `key value` lines (like mosquitto.conf) and
 * `--key value` / `--key=value` flags, both checked against one table of options with
 * types and ranges. Unknown keys and bad values fail with "file:line: key: rule".
 * Command-line flags override the file. '#' starts a comment; blank lines are ignored;
 * a value may be double-quoted to keep spaces. */
#ifndef MGO_CONFIG_H
#define MGO_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "mgo/err.h"
#include "mgo/problems.h"

enum mgo_cfg_type {
    MGO_CFG_STR,  /* char * (malloc'd; freed by mgo_cfg_cleanup) */
    MGO_CFG_INT,  /* int64_t within [min, max] */
    MGO_CFG_BOOL, /* bool: true/false/yes/no/on/off/1/0 */
    MGO_CFG_LIST, /* struct mgo_strlist: the key may repeat; each occurrence appends */
};

struct mgo_strlist {
    char **items;
    size_t len;
};

struct mgo_cfg_option {
    const char *name; /* "broker-url"; also the flag "--broker-url" */
    enum mgo_cfg_type type;
    size_t offset;    /* offsetof(struct your_config, field) */
    int64_t min, max; /* MGO_CFG_INT bounds; for MGO_CFG_STR max length when max > 0 */
    const char *def;  /* default as text, or NULL */
    const char *help; /* one line for --help */
};

/* Sets every option to its default. target must start zeroed (old strings are freed). */
mgo_err mgo_cfg_defaults(const struct mgo_cfg_option *table, size_t n, void *target) MGO_MUST_CHECK;
/* Applies one key = value; origin ("file.conf:12" or "--flag") is used in problems. */
mgo_err mgo_cfg_set(const struct mgo_cfg_option *table, size_t n, void *target, const char *key,
                    const char *value, const char *origin,
                    struct mgo_problems *problems) MGO_MUST_CHECK;
/* Parses a whole file (at most 1 MiB). */
mgo_err mgo_cfg_load_file(const struct mgo_cfg_option *table, size_t n, void *target,
                          const char *path, struct mgo_problems *problems) MGO_MUST_CHECK;
/* Parses text already in memory (used by the fuzz harness and tests). */
mgo_err mgo_cfg_load_text(const struct mgo_cfg_option *table, size_t n, void *target,
                          const char *text, size_t len, const char *name,
                          struct mgo_problems *problems) MGO_MUST_CHECK;
/* Defaults, then "--config FILE" (if given anywhere in argv), then every other flag.
 * Sets *help_out when --help/-h was given (the caller prints mgo_cfg_print_help()).
 * Positional arguments are refused. */
mgo_err mgo_cfg_parse_args(const struct mgo_cfg_option *table, size_t n, void *target, int argc,
                           char **argv, bool *help_out,
                           struct mgo_problems *problems) MGO_MUST_CHECK;
void mgo_cfg_print_help(const struct mgo_cfg_option *table, size_t n, const char *usage, FILE *out);
/* True when option opt holds the same value in a and b (two configs of the table's type):
 * what a reload compares. */
bool mgo_cfg_same(const struct mgo_cfg_option *opt, const void *a, const void *b);
/* What a SIGHUP reload of either daemon applies (docs/operations.md "Reload"): log-level,
 * log-format and the broker TLS files ca-file, cert-file, key-file. */
bool mgo_cfg_reloadable(const char *name);
/* Logs "needs a restart: NAME" (warning, under tag) for every option of the table whose value
 * differs between fresh and last and that a reload does not apply. */
void mgo_cfg_report_restart(const char *tag, const struct mgo_cfg_option *table, size_t n,
                            const void *fresh, const void *last);
/* Logs each problem as "reload: FIELD: RULE" (error, under tag) and how many more there were. */
void mgo_cfg_log_reload_problems(const char *tag, const struct mgo_problems *problems);
/* Frees strings and lists owned by target. */
void mgo_cfg_cleanup(const struct mgo_cfg_option *table, size_t n, void *target);

#endif
