/* broker.c - a private Mosquitto per test (see broker.h). */
#include "broker.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mgo_test.h"

extern char **environ;

#define DEFAULT_MOSQUITTO "/usr/sbin/mosquitto"
#define READY_TIMEOUT_MS 5000
#define STOP_TIMEOUT_MS 5000
#define POLL_STEP_MS 20

static void print_log_tail(const struct mgo_test_broker *b)
{
    FILE *f = fopen(b->log_path, "r");
    if (f == NULL)
        return;
    char buf[2048];
    if (fseek(f, 0, SEEK_END) == 0) {
        long size = ftell(f);
        if (size > (long)sizeof buf - 1)
            (void)fseek(f, size - (long)sizeof buf + 1, SEEK_SET);
        else
            rewind(f);
    }
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = '\0';
    fclose(f);
    fprintf(stderr, "--- %s (tail) ---\n%s--- end ---\n", b->log_path, buf);
}

static int write_conf(const struct mgo_test_broker *b, const char *extra_conf)
{
    FILE *f = fopen(b->conf_path, "w");
    if (f == NULL) {
        fprintf(stderr, "broker: cannot write %s: %s\n", b->conf_path, strerror(errno));
        return -1;
    }
    fprintf(f, "# written by tests/support/broker.c\n");
    fprintf(f, "listener %d 127.0.0.1\n", b->port);
    fprintf(f, "allow_anonymous true\n");
    fprintf(f, "persistence true\n");
    fprintf(f, "persistence_location %s/\n", b->dir);
    fprintf(f, "persistence_file mosquitto.db\n");
    fprintf(f, "log_dest stderr\n");
    /* As root Mosquitto would switch to user "mosquitto", who cannot write our 0700 dir. */
    if (geteuid() == 0) {
        struct passwd *pw = getpwuid(0);
        fprintf(f, "user %s\n", pw != NULL ? pw->pw_name : "root");
    }
    if (extra_conf != NULL)
        fprintf(f, "%s\n", extra_conf);
    if (fclose(f) != 0) {
        fprintf(stderr, "broker: cannot write %s: %s\n", b->conf_path, strerror(errno));
        return -1;
    }
    return 0;
}

/* Child side of spawn(): only async-signal-safe calls (the test process has threads). */
static void exec_broker(const char *bin, const struct mgo_test_broker *b, pid_t parent)
{
    /* The broker dies with the test process, even when a fatal assertion skipped cleanup. */
    if (prctl(PR_SET_PDEATHSIG, SIGTERM) != 0 || getppid() != parent)
        _exit(126);
    int in = open("/dev/null", O_RDONLY);
    int out = open(b->log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
    if (in < 0 || out < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(out, 2) < 0)
        _exit(126);
    char *argv[] = {(char *)"mosquitto", (char *)"-c", (char *)b->conf_path, NULL};
    execve(bin, argv, environ);
    _exit(127);
}

static int spawn(struct mgo_test_broker *b)
{
    const char *bin = getenv("MGO_TEST_MOSQUITTO");
    if (bin == NULL || bin[0] == '\0')
        bin = DEFAULT_MOSQUITTO;
    if (access(bin, X_OK) != 0) {
        fprintf(stderr, "broker: cannot run %s: %s\n", bin, strerror(errno));
        return -1;
    }
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        fprintf(stderr, "broker: fork: %s\n", strerror(errno));
        return -1;
    }
    if (pid == 0)
        exec_broker(bin, b, parent);
    b->pid = pid;

    for (int waited = 0; waited <= READY_TIMEOUT_MS; waited += POLL_STEP_MS) {
        int status = 0;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            b->pid = 0;
            fprintf(stderr, "broker: mosquitto exited early (status %d)\n", status);
            print_log_tail(b);
            return -1;
        }
        if (mgo_test_port_open(b->port))
            return 0;
        mgo_test_sleep_ms(POLL_STEP_MS);
    }
    fprintf(stderr, "broker: port %d not accepting after %d ms\n", b->port, READY_TIMEOUT_MS);
    print_log_tail(b);
    (void)mgo_test_broker_stop(b);
    return -1;
}

int mgo_test_broker_start(struct mgo_test_broker *b, const char *extra_conf)
{
    memset(b, 0, sizeof *b);
    const char *tmp = getenv("TMPDIR");
    if (tmp == NULL || tmp[0] == '\0')
        tmp = "/tmp";
    int n = snprintf(b->dir, sizeof b->dir, "%s/mgo-broker-XXXXXX", tmp);
    if (n < 0 || (size_t)n >= sizeof b->dir || mkdtemp(b->dir) == NULL) {
        fprintf(stderr, "broker: cannot create a temporary directory in %s\n", tmp);
        b->dir[0] = '\0';
        return -1;
    }
    snprintf(b->conf_path, sizeof b->conf_path, "%s/mosquitto.conf", b->dir);
    snprintf(b->log_path, sizeof b->log_path, "%s/mosquitto.log", b->dir);
    b->port = mgo_test_free_port();
    if (b->port <= 0) {
        fprintf(stderr, "broker: no free loopback port: %s\n", strerror(errno));
        return -1;
    }
    snprintf(b->url, sizeof b->url, "tcp://127.0.0.1:%d", b->port);
    if (write_conf(b, extra_conf) != 0)
        return -1;
    return spawn(b);
}

int mgo_test_broker_stop(struct mgo_test_broker *b)
{
    if (b->pid <= 0)
        return 0;
    pid_t pid = b->pid;
    b->pid = 0;
    if (kill(pid, SIGTERM) != 0 && errno != ESRCH) {
        fprintf(stderr, "broker: kill(%d): %s\n", (int)pid, strerror(errno));
        return -1;
    }
    for (int waited = 0; waited < STOP_TIMEOUT_MS; waited += POLL_STEP_MS) {
        pid_t r = waitpid(pid, NULL, WNOHANG);
        if (r == pid || (r < 0 && errno == ECHILD))
            return 0;
        mgo_test_sleep_ms(POLL_STEP_MS);
    }
    fprintf(stderr, "broker: mosquitto %d ignored SIGTERM; killing it\n", (int)pid);
    (void)kill(pid, SIGKILL);
    (void)waitpid(pid, NULL, 0);
    return -1;
}

int mgo_test_broker_restart(struct mgo_test_broker *b)
{
    if (b->dir[0] == '\0' || b->port <= 0) {
        fprintf(stderr, "broker: restart of a broker that was never started\n");
        return -1;
    }
    if (mgo_test_broker_stop(b) != 0)
        return -1;
    return spawn(b);
}

const char *mgo_test_broker_url(const struct mgo_test_broker *b)
{
    return b->url;
}

void mgo_test_broker_cleanup(struct mgo_test_broker *b)
{
    (void)mgo_test_broker_stop(b);
    if (b->dir[0] == '\0')
        return;
    DIR *d = opendir(b->dir);
    if (d != NULL) {
        struct dirent *e;
        char path[600];
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            snprintf(path, sizeof path, "%s/%s", b->dir, e->d_name);
            if (unlink(path) != 0)
                fprintf(stderr, "broker: cannot remove %s: %s\n", path, strerror(errno));
        }
        closedir(d);
    }
    if (rmdir(b->dir) != 0)
        fprintf(stderr, "broker: cannot remove %s: %s\n", b->dir, strerror(errno));
    memset(b, 0, sizeof *b);
}
