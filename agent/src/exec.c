/* exec.c - fork/execve with captured output, deadline and cancellation. */
#include "exec.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mgo/log.h"
#include "mgo/loop.h"

#define TAG "agent.exec"

extern char **environ;

void mgo_exec_result_init(struct mgo_exec_result *r)
{
    memset(r, 0, sizeof *r);
    mgo_buf_init(&r->out, MGO_EXEC_MAX_STDOUT);
    mgo_buf_init(&r->err, 2u * MGO_EXEC_MAX_STDERR);
}

void mgo_exec_result_cleanup(struct mgo_exec_result *r)
{
    mgo_buf_cleanup(&r->out);
    mgo_buf_cleanup(&r->err);
}

static uint64_t now_ms(void)
{
    return (uint64_t)mgo_loop_now_ms(); /* the daemons' one monotonic clock */
}

mgo_err mgo_exec_which(const char *prog, char *out, size_t out_size)
{
    if (prog == NULL || *prog == '\0')
        return MGO_ERR_INVALID;
    if (strchr(prog, '/') != NULL) {
        if (access(prog, X_OK) != 0)
            return MGO_ERR_NOT_FOUND;
        int n = snprintf(out, out_size, "%s", prog);
        return (n < 0 || (size_t)n >= out_size) ? MGO_ERR_LIMIT : MGO_OK;
    }
    const char *path = getenv("PATH");
    if (path == NULL)
        path = "/usr/local/bin:/usr/bin:/bin";
    const char *p = path;
    while (*p != '\0') {
        const char *colon = strchr(p, ':');
        size_t len = colon ? (size_t)(colon - p) : strlen(p);
        if (len > 0) {
            int n = snprintf(out, out_size, "%.*s/%s", (int)len, p, prog);
            struct stat sb;
            if (n > 0 && (size_t)n < out_size && stat(out, &sb) == 0 && S_ISREG(sb.st_mode) &&
                access(out, X_OK) == 0)
                return MGO_OK;
        }
        p += len;
        if (*p == ':')
            p++;
    }
    return MGO_ERR_NOT_FOUND;
}

size_t mgo_exec_split(char *buf, const char **words, size_t max_words)
{
    size_t n = 0;
    char *p = buf;
    while (*p != '\0') {
        while (*p == ' ' || *p == '\t')
            *p++ = '\0';
        if (*p == '\0')
            break;
        if (n == max_words)
            return 0;
        words[n++] = p;
        while (*p != '\0' && *p != ' ' && *p != '\t')
            p++;
    }
    return n;
}

/* Builds environ + additions (additions replace same-named entries). */
static char **build_env(const struct mgo_exec_opts *opts)
{
    size_t base = 0;
    while (environ[base] != NULL)
        base++;
    size_t add = opts ? opts->env_add_len : 0;
    char **env = calloc(base + add + 1, sizeof *env);
    if (env == NULL)
        return NULL;
    size_t n = 0;
    for (size_t i = 0; i < base; i++) {
        bool replaced = false;
        const char *eq = strchr(environ[i], '=');
        size_t klen = eq ? (size_t)(eq - environ[i]) : strlen(environ[i]);
        for (size_t k = 0; k < add && !replaced; k++)
            replaced =
                strncmp(opts->env_add[k], environ[i], klen) == 0 && opts->env_add[k][klen] == '=';
        if (!replaced)
            env[n++] = environ[i];
    }
    for (size_t k = 0; k < add; k++)
        env[n++] = (char *)(uintptr_t)opts->env_add[k];
    env[n] = NULL;
    return env;
}

static void keep_tail(struct mgo_buf *b, const uint8_t *data, size_t len)
{
    if (len >= MGO_EXEC_MAX_STDERR) {
        data += len - MGO_EXEC_MAX_STDERR;
        len = MGO_EXEC_MAX_STDERR;
    }
    if (b->len + len > 2u * MGO_EXEC_MAX_STDERR - 1) {
        size_t drop = b->len + len - MGO_EXEC_MAX_STDERR;
        if (drop > b->len)
            drop = b->len;
        memmove(b->data, b->data + drop, b->len - drop);
        b->len -= drop;
    }
    if (mgo_buf_append(b, data, len) != MGO_OK)
        MGO_LOGD(TAG, "stderr tail buffer full");
}

static void kill_group(pid_t pid, int sig)
{
    if (kill(-pid, sig) != 0)
        (void)kill(pid, sig);
}

mgo_err mgo_exec_run(const char *const *argv, const struct mgo_exec_opts *opts,
                     struct mgo_exec_result *r)
{
    char prog[1024];
    mgo_err err = mgo_exec_which(argv[0], prog, sizeof prog);
    if (err != MGO_OK) {
        r->not_found = true;
        MGO_LOGW(TAG, "%s: not found in PATH or not executable", argv[0]);
        return MGO_ERR_NOT_FOUND;
    }
    int out_pipe[2] = {-1, -1}, err_pipe[2] = {-1, -1}, exec_pipe[2] = {-1, -1};
    char **env = build_env(opts);
    if (env == NULL)
        return MGO_ERR_NOMEM;
    if (pipe2(out_pipe, O_CLOEXEC) != 0 || pipe2(err_pipe, O_CLOEXEC) != 0 ||
        pipe2(exec_pipe, O_CLOEXEC) != 0) {
        MGO_LOGE(TAG, "pipe: %s", strerror(errno));
        err = MGO_ERR_IO;
        goto cleanup_pipes;
    }
    pid_t pid = fork();
    if (pid < 0) {
        MGO_LOGE(TAG, "fork: %s", strerror(errno));
        err = MGO_ERR_IO;
        goto cleanup_pipes;
    }
    if (pid == 0) {
        /* child: only async-signal-safe calls from here */
        setpgid(0, 0);
        int devnull = open("/dev/null", O_RDONLY);
        if (devnull >= 0)
            dup2(devnull, 0);
        dup2(out_pipe[1], 1);
        dup2(err_pipe[1], 2);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        signal(SIGPIPE, SIG_DFL);
        if (opts != NULL && opts->cwd != NULL && chdir(opts->cwd) != 0) {
            int e = errno;
            (void)!write(exec_pipe[1], &e, sizeof e);
            _exit(127);
        }
        execve(prog, (char *const *)(uintptr_t)argv, env);
        int e = errno;
        (void)!write(exec_pipe[1], &e, sizeof e);
        _exit(127);
    }
    setpgid(pid, pid); /* also from the parent: no race with kill(-pid) */
    close(out_pipe[1]);
    out_pipe[1] = -1;
    close(err_pipe[1]);
    err_pipe[1] = -1;
    close(exec_pipe[1]);
    exec_pipe[1] = -1;

    int child_errno = 0;
    ssize_t en;
    do {
        en = read(exec_pipe[0], &child_errno, sizeof child_errno);
    } while (en < 0 && errno == EINTR);
    bool exec_failed = en == (ssize_t)sizeof child_errno;

    uint64_t start = now_ms();
    uint64_t kill_at = 0; /* when SIGKILL follows SIGTERM */
    bool open_out = true, open_err = true;
    uint8_t chunk[4096];
    while (open_out || open_err) {
        struct pollfd pfd[2];
        nfds_t nf = 0;
        if (open_out)
            pfd[nf++] = (struct pollfd){.fd = out_pipe[0], .events = POLLIN};
        if (open_err)
            pfd[nf++] = (struct pollfd){.fd = err_pipe[0], .events = POLLIN};
        int pr = poll(pfd, nf, 100);
        if (pr < 0 && errno != EINTR) {
            MGO_LOGE(TAG, "poll: %s", strerror(errno));
            break;
        }
        for (nfds_t i = 0; pr > 0 && i < nf; i++) {
            if ((pfd[i].revents & (POLLIN | POLLHUP | POLLERR)) == 0)
                continue;
            ssize_t n = read(pfd[i].fd, chunk, sizeof chunk);
            if (n < 0 && errno == EINTR)
                continue;
            bool is_out = pfd[i].fd == out_pipe[0];
            if (n <= 0) {
                if (is_out)
                    open_out = false;
                else
                    open_err = false;
                continue;
            }
            if (is_out) {
                if (mgo_buf_append(&r->out, chunk, (size_t)n) != MGO_OK)
                    r->out_truncated = true;
            } else {
                keep_tail(&r->err, chunk, (size_t)n);
            }
        }
        uint64_t t = now_ms();
        if (kill_at == 0) {
            bool cancel = opts != NULL && opts->cancel != NULL && *opts->cancel != 0;
            bool late = opts != NULL && opts->timeout_ms > 0 && t - start >= opts->timeout_ms;
            if (cancel || late) {
                r->cancelled = cancel;
                r->timed_out = late && !cancel;
                MGO_LOGW(TAG, "%s: %s; stopping it", argv[0], cancel ? "cancelled" : "timed out");
                kill_group(pid, SIGTERM);
                kill_at = t + MGO_EXEC_KILL_GRACE_MS;
            }
        } else if (t >= kill_at) {
            kill_group(pid, SIGKILL);
            kill_at = UINT64_MAX;
        }
        /* A grandchild may keep the pipes open after the child exits: stop reading once the
         * child is gone and the pipes are quiet. */
        if (pr == 0) {
            int st;
            pid_t w = waitpid(pid, &st, WNOHANG);
            if (w == pid) {
                if (WIFEXITED(st)) {
                    r->exited = true;
                    r->exit_code = WEXITSTATUS(st);
                } else if (WIFSIGNALED(st)) {
                    r->signal = WTERMSIG(st);
                }
                pid = -1;
                if (r->timed_out || r->cancelled)
                    break;
                /* drain what is left without blocking */
                for (int k = 0; k < 2; k++) {
                    int fd = k == 0 ? out_pipe[0] : err_pipe[0];
                    if ((k == 0 && !open_out) || (k == 1 && !open_err))
                        continue;
                    int fl = fcntl(fd, F_GETFL);
                    if (fl >= 0)
                        (void)fcntl(fd, F_SETFL, fl | O_NONBLOCK);
                    ssize_t n;
                    while ((n = read(fd, chunk, sizeof chunk)) > 0) {
                        if (k == 0) {
                            if (mgo_buf_append(&r->out, chunk, (size_t)n) != MGO_OK)
                                r->out_truncated = true;
                        } else {
                            keep_tail(&r->err, chunk, (size_t)n);
                        }
                    }
                }
                break;
            }
        }
    }
    if (pid > 0) {
        int st;
        for (;;) {
            pid_t w = waitpid(pid, &st, kill_at != 0 ? WNOHANG : 0);
            if (w == pid)
                break;
            if (w < 0 && errno != EINTR)
                break;
            if (w == 0) {
                if (now_ms() >= kill_at) {
                    kill_group(pid, SIGKILL);
                    kill_at = UINT64_MAX - 1;
                }
                struct timespec ts = {0, 50 * 1000 * 1000};
                nanosleep(&ts, NULL);
            }
        }
        if (WIFEXITED(st)) {
            r->exited = true;
            r->exit_code = WEXITSTATUS(st);
        } else if (WIFSIGNALED(st)) {
            r->signal = WTERMSIG(st);
        }
    }
    if (exec_failed) {
        r->not_found = true;
        r->exited = false;
        MGO_LOGW(TAG, "%s: cannot execute: %s", argv[0], strerror(child_errno));
        err = MGO_ERR_NOT_FOUND;
    }

cleanup_pipes:
    for (int i = 0; i < 2; i++) {
        if (out_pipe[i] >= 0)
            close(out_pipe[i]);
        if (err_pipe[i] >= 0)
            close(err_pipe[i]);
        if (exec_pipe[i] >= 0)
            close(exec_pipe[i]);
    }
    free(env);
    return err;
}

void mgo_exec_tail(const struct mgo_exec_result *r, char *out, size_t out_size)
{
    const struct mgo_buf *b = r->err.len > 0 ? &r->err : &r->out;
    out[0] = '\0';
    if (out_size == 0 || b->len == 0)
        return;
    size_t end = b->len;
    while (end > 0 &&
           (b->data[end - 1] == '\n' || b->data[end - 1] == '\r' || b->data[end - 1] == ' '))
        end--;
    size_t start = end > out_size - 1 ? end - (out_size - 1) : 0;
    /* prefer to start at a line boundary when we cut */
    if (start > 0) {
        for (size_t i = start; i < end; i++) {
            if (b->data[i] == '\n') {
                if (end - (i + 1) > 0)
                    start = i + 1;
                break;
            }
        }
    }
    /* skip UTF-8 continuation bytes at the cut */
    while (start < end && (b->data[start] & 0xC0u) == 0x80u)
        start++;
    size_t o = 0;
    for (size_t i = start; i < end && o + 1 < out_size; i++) {
        uint8_t c = b->data[i];
        out[o++] = (c == '\n') ? ' ' : (c < 0x20 || c == 0x7F) ? ' ' : (char)c;
    }
    out[o] = '\0';
}
