/* exec.h - run an external command as an argument vector (never a shell), with captured
 * and bounded output, a deadline, and cancellation (private to agent/). */
#ifndef MGO_AGENT_EXEC_H
#define MGO_AGENT_EXEC_H

#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/buf.h"
#include "mgo/err.h"

#define MGO_EXEC_MAX_STDOUT (1024u * 1024u) /* first bytes kept */
#define MGO_EXEC_MAX_STDERR (16u * 1024u)   /* last bytes kept */
#define MGO_EXEC_MAX_ARGS 512u
#define MGO_EXEC_KILL_GRACE_MS 3000

struct mgo_exec_result {
    int exit_code; /* valid when exited */
    bool exited;
    int signal; /* when killed by a signal */
    bool timed_out;
    bool cancelled;
    bool not_found;     /* the program was not found or not executable */
    struct mgo_buf out; /* stdout, first MGO_EXEC_MAX_STDOUT bytes */
    struct mgo_buf err; /* stderr, last MGO_EXEC_MAX_STDERR bytes */
    bool out_truncated;
};

struct mgo_exec_opts {
    const char *cwd;            /* NULL = inherit */
    const char *const *env_add; /* "K=V" entries added to (or replacing in) the environment */
    size_t env_add_len;
    uint32_t timeout_ms; /* 0 = none */
    /* Checked every 100 ms; non-zero kills the child. Atomic: another thread sets it. */
    const atomic_int *cancel;
};

void mgo_exec_result_init(struct mgo_exec_result *r);
void mgo_exec_result_cleanup(struct mgo_exec_result *r);

/* Runs argv[0] (searched in PATH when it has no '/'). The child gets its own process group;
 * on timeout or cancel the group gets SIGTERM, then SIGKILL after MGO_EXEC_KILL_GRACE_MS.
 * Returns MGO_OK when the command ran (whatever its exit code; see r), MGO_ERR_NOT_FOUND when
 * it is not in PATH, MGO_ERR_IO/NOMEM when the machinery failed. */
mgo_err mgo_exec_run(const char *const *argv, const struct mgo_exec_opts *opts,
                     struct mgo_exec_result *r) MGO_MUST_CHECK;

/* Resolves a program name in PATH into out (size out_size). */
mgo_err mgo_exec_which(const char *prog, char *out, size_t out_size) MGO_MUST_CHECK;

/* The useful tail of stderr for an error message: last non-empty lines, at most out_size-1
 * bytes, control characters replaced. Falls back to stdout's tail when stderr is empty. */
void mgo_exec_tail(const struct mgo_exec_result *r, char *out, size_t out_size);

/* Splits a command line like "docker compose" on spaces into argv (no quoting rules);
 * words point into buf. Returns the number of words or 0 when there are too many. */
size_t mgo_exec_split(char *buf, const char **words, size_t max_words);

#endif
