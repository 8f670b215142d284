/* proc.c - see proc.h. */
#include "proc.h"

#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mgo_test.h"

#define MAX_CHILDREN 256
#define POLL_STEP_MS 20
#define KILL_WAIT_MS 10000

static pid_t children[MAX_CHILDREN];
static size_t children_len;

void mgo_test_kill_children(void)
{
    for (size_t i = 0; i < children_len; i++) {
        if (children[i] > 0 && waitpid(children[i], NULL, WNOHANG) == 0) {
            kill(children[i], SIGKILL);
            waitpid(children[i], NULL, 0);
        }
    }
    children_len = 0;
}

pid_t mgo_test_spawn(const char *const *argv, const char *log_path)
{
    if (children_len == MAX_CHILDREN) { /* forget the ones that ended */
        size_t k = 0;
        for (size_t i = 0; i < children_len; i++)
            if (children[i] > 0 && kill(children[i], 0) == 0)
                children[k++] = children[i];
        children_len = k;
    }
    pid_t pid = fork();
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, STDOUT_FILENO);
            dup2(fd, STDERR_FILENO);
            close(fd);
        }
        int null = open("/dev/null", O_RDONLY);
        if (null >= 0)
            dup2(null, STDIN_FILENO);
        execv(argv[0], (char *const *)(uintptr_t)argv);
        _exit(127);
    }
    if (pid < 0) {
        perror("mgo_test_spawn: fork");
        return -1;
    }
    if (children_len < MAX_CHILDREN)
        children[children_len++] = pid;
    return pid;
}

int mgo_test_wait_exit(pid_t pid, int timeout_ms)
{
    int64_t deadline = mgo_test_now_ms() + timeout_ms;
    for (;;) {
        int status = 0;
        pid_t r = waitpid(pid, &status, WNOHANG);
        if (r == pid)
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        if (r < 0)
            return -2;
        if (mgo_test_now_ms() > deadline)
            return -1;
        mgo_test_sleep_ms(POLL_STEP_MS);
    }
}

void mgo_test_kill(pid_t pid, int sig)
{
    if (pid <= 0)
        return;
    kill(pid, sig);
    if (mgo_test_wait_exit(pid, KILL_WAIT_MS) == -1) {
        kill(pid, SIGKILL);
        (void)mgo_test_wait_exit(pid, KILL_WAIT_MS);
    }
}

long mgo_test_rss_kb(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[256];
    long kb = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (sscanf(line, "VmRSS: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb;
}

bool mgo_test_log_wait(const char *log, const char *needle, size_t more_than, int timeout_ms)
{
    int64_t deadline = mgo_test_now_ms() + timeout_ms;
    while (mgo_test_now_ms() < deadline) {
        if (mgo_test_count_lines(log, needle) > more_than)
            return true;
        mgo_test_sleep_ms(POLL_STEP_MS);
    }
    return false;
}
