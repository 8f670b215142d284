/* ctl_internal.h - shared by margoctl's command files (ctl_*.c). */
#ifndef MGO_CTL_INTERNAL_H
#define MGO_CTL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/value.h"

/* --output (-o): how listings and shows are printed (docs/manager.md "margoctl"). */
enum mgo_ctl_output {
    MGO_CTL_OUT_TABLE = 0, /* the human text (a table for listings) */
    MGO_CTL_OUT_WIDE,      /* the same with more columns */
    MGO_CTL_OUT_JSON,      /* the API's JSON reply unchanged (also --json) */
    MGO_CTL_OUT_YAML,      /* the same data as YAML (mgo_value_to_yaml) */
};

/* Connection settings common to every command. */
struct mgo_ctl_conn {
    const char *url;        /* --url, MARGO_URL, default http://127.0.0.1:8080 */
    const char *token_file; /* --token-file, MARGO_TOKEN_FILE */
    char token[513];
    enum mgo_ctl_output output; /* --output/-o, --json */
    bool json;                  /* output is MGO_CTL_OUT_JSON */
};

struct mgo_ctl_reply {
    long status; /* HTTP status; 0 when the server was not reached */
    struct mgo_buf body;
    struct mgo_arena arena;
    struct mgo_value tree; /* parsed body (MGO_V_NULL when empty or not JSON) */
};

/* Loads the token (prints the reason on failure). */
int mgo_ctl__conn_ready(struct mgo_ctl_conn *c);
/* One request; body may be NULL. Prints a connection error itself and returns -1; else 0
 * (any HTTP status). reply must be released with mgo_ctl__reply_cleanup. */
int mgo_ctl__request(const struct mgo_ctl_conn *c, const char *method, const char *path,
                     const char *content_type, const void *body, size_t body_len,
                     struct mgo_ctl_reply *reply);
void mgo_ctl__reply_cleanup(struct mgo_ctl_reply *r);
/* With --output json or yaml: prints the reply's data (JSON as received, or YAML) and
 * returns true; for table and wide returns false (the caller prints its text). */
bool mgo_ctl__print_data(const struct mgo_ctl_conn *c, const struct mgo_ctl_reply *r);
/* Prints a problem+json reply as "margoctl: title: detail" plus one line per field error
 * (or the raw JSON with --json). Returns MGO_CTL_EXIT_FAIL. */
int mgo_ctl__print_problem(const struct mgo_ctl_conn *c, const struct mgo_ctl_reply *r);
/* Follows a Server-Sent Events stream; on_event returns false to stop. timeout_ms 0 = none.
 * Returns 0 when on_event stopped it, 3 on timeout, 1 on errors. */
typedef bool (*mgo_ctl_sse_cb)(const char *event, const char *data, void *ctx);
int mgo_ctl__stream(const struct mgo_ctl_conn *c, const char *path, long timeout_ms,
                    mgo_ctl_sse_cb on_event, void *ctx);
/* URL-escapes one path segment or query value into out. */
void mgo_ctl__escape(const char *in, char *out, size_t out_size);

/* Aligned text tables. */
struct mgo_ctl_table {
    size_t cols;
    size_t show; /* columns printed: the first `show` (mgo_ctl__table_columns) */
    size_t rows;
    char **cells; /* rows * cols, malloc'd strings */
    size_t cap;
};
void mgo_ctl__table_init(struct mgo_ctl_table *t, size_t cols);
void mgo_ctl__table_add(struct mgo_ctl_table *t, const char *const *cells);
/* The columns past narrow are the wide ones: printed only with --output wide. */
void mgo_ctl__table_columns(struct mgo_ctl_table *t, const struct mgo_ctl_conn *c, size_t narrow);
void mgo_ctl__table_print(const struct mgo_ctl_table *t, FILE *out);
void mgo_ctl__table_cleanup(struct mgo_ctl_table *t);

/* Value helpers over a parsed reply. */
const char *mgo_ctl__str(const struct mgo_value *map, const char *key); /* "" when absent */
/* Scalar as text ("-" for null/absent); arrays joined with ','. */
void mgo_ctl__text(const struct mgo_value *v, char *out, size_t out_size);
/* Pretty JSON of a value to stdout. */
void mgo_ctl__print_json(const struct mgo_value *v);

/* Common option parsing: consumes --url, --token-file, --output/-o, --json, --help/-h from
 * argv (in place, compacting the rest). Returns 1 when --help was given, -1 on error (the
 * reason printed), else 0. */
int mgo_ctl__common_opts(struct mgo_ctl_conn *c, int *argc, char **argv);

/* margoctl's commands and options (ctl_commands.c): one table for --help, the bash
 * completion and the man page. */
struct mgo_ctl_option {
    const char *name;       /* "--output" */
    const char *short_name; /* "-o", or NULL */
    const char *value;      /* the value's placeholder ("FILE"), NULL for a flag */
    const char *choices;    /* the values, space-separated, or NULL for free text */
    const char *help;
};
struct mgo_ctl_command {
    const char *name;        /* "deployment" */
    const char *subcommands; /* space-separated, "" when none */
    const char *synopsis;    /* "deployment list|show|update|rm" */
    const char *summary;
    const struct mgo_ctl_option *options; /* its own, ending with {NULL} */
    bool remote;                          /* talks to the manager: takes the remote options too */
    bool file_args;                       /* its arguments are files (completion) */
    int (*run)(int argc, char **argv);
};
const struct mgo_ctl_command *mgo_ctl__commands(size_t *len);
/* The options of every command that talks to the manager (mgo_ctl__common_opts). */
const struct mgo_ctl_option *mgo_ctl__remote_options(void);
void mgo_ctl__usage(FILE *out);
void mgo_ctl__version(FILE *out);
void mgo_ctl__completion_bash(FILE *out);
/* margoctl device label DEVICE [KEY=VALUE...] [KEY-...] (ctl_rollout.c); argv[0] is
 * "label". */
int mgo_ctl__device_label(int argc, char **argv);

#endif
