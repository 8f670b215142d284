/* ctl_internal.h - shared by margoctl's command files (ctl_*.c). */
#ifndef MGO_CTL_INTERNAL_H
#define MGO_CTL_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/value.h"

/* Connection settings common to every command. */
struct mgo_ctl_conn {
    const char *url;        /* --url, MARGO_URL, default http://127.0.0.1:8080 */
    const char *token_file; /* --token-file, MARGO_TOKEN_FILE */
    char token[513];
    bool json; /* --json */
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
    size_t rows;
    char **cells; /* rows * cols, malloc'd strings */
    size_t cap;
};
void mgo_ctl__table_init(struct mgo_ctl_table *t, size_t cols);
void mgo_ctl__table_add(struct mgo_ctl_table *t, const char *const *cells);
void mgo_ctl__table_print(const struct mgo_ctl_table *t, FILE *out);
void mgo_ctl__table_cleanup(struct mgo_ctl_table *t);

/* Value helpers over a parsed reply. */
const char *mgo_ctl__str(const struct mgo_value *map, const char *key); /* "" when absent */
/* Scalar as text ("-" for null/absent); arrays joined with ','. */
void mgo_ctl__text(const struct mgo_value *v, char *out, size_t out_size);
/* Pretty JSON of a value to stdout. */
void mgo_ctl__print_json(const struct mgo_value *v);

/* Common option parsing: consumes --url, --token-file, --json, --help/-h from argv (in
 * place, compacting the rest). Returns 1 when --help was given, -1 on error, else 0. */
int mgo_ctl__common_opts(struct mgo_ctl_conn *c, int *argc, char **argv);

/* margoctl device label DEVICE [KEY=VALUE...] [KEY-...] (ctl_rollout.c); argv[0] is
 * "label". */
int mgo_ctl__device_label(int argc, char **argv);

#endif
