/* kit.c - see mgo_test.h: paths, files, temporary folders, time, shell commands, ports. */
#include "mgo_test.h"

#include <arpa/inet.h>
#include <errno.h>
#include <ftw.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

const char *mgo_test_path(const char *rel)
{
    static char path[4096];
    snprintf(path, sizeof path, "%s/%s", MGO_SOURCE_DIR, rel);
    return path;
}

char *mgo_test_read_file(const char *path, size_t *len_out)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "cannot open %s\n", path);
        exit(2);
    }
    size_t cap = 4096, len = 0;
    char *data = malloc(cap);
    for (;;) {
        if (data == NULL) {
            fprintf(stderr, "out of memory reading %s\n", path);
            exit(2);
        }
        size_t n = fread(data + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
        if (len + 1 == cap) {
            cap *= 2;
            data = realloc(data, cap);
        }
    }
    fclose(f);
    data[len] = '\0';
    if (len_out != NULL)
        *len_out = len;
    return data;
}

size_t mgo_test_count_lines(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    char line[8192];
    size_t n = 0;
    while (fgets(line, sizeof line, f) != NULL)
        if (strstr(line, needle) != NULL)
            n++;
    fclose(f);
    return n;
}

bool mgo_test_file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

bool mgo_test_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    bool ok = f != NULL && fputs(text, f) >= 0;
    if (f != NULL && fclose(f) != 0)
        ok = false;
    if (!ok)
        fprintf(stderr, "cannot write %s: %s\n", path, strerror(errno));
    return ok;
}

long mgo_test_read_long(const char *path)
{
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    long v = 0;
    if (fscanf(f, "%ld", &v) != 1)
        v = 0;
    fclose(f);
    return v;
}

void mgo_test_tmpdir(const char *what, char out[256])
{
    int n = snprintf(out, 256, "%s%s-XXXXXX", MGO_TEST_TMP_PREFIX, what);
    if (n < 0 || n >= 256 || mkdtemp(out) == NULL) {
        fprintf(stderr, "mgo_test_tmpdir(%s): %s\n", what, strerror(errno));
        exit(2);
    }
}

static int remove_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "mgo_test_rm_rf: cannot remove %s: %s\n", path, strerror(errno));
    return 0; /* remove what can be removed */
}

void mgo_test_rm_rf(const char *path)
{
    if (strncmp(path, MGO_TEST_TMP_PREFIX, strlen(MGO_TEST_TMP_PREFIX)) != 0 ||
        strstr(path, "..") != NULL) {
        if (path[0] != '\0')
            fprintf(stderr, "mgo_test_rm_rf: %s is not a test folder; left alone\n", path);
        return;
    }
    if (access(path, F_OK) != 0)
        return;
    (void)nftw(path, remove_one, 16, FTW_DEPTH | FTW_PHYS);
}

int64_t mgo_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void mgo_test_sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

__attribute__((format(printf, 3, 0))) static int vformat(char *cmd, size_t size, const char *fmt,
                                                         va_list ap)
{
    int n = vsnprintf(cmd, size, fmt, ap);
    if (n < 0 || (size_t)n >= size) {
        fprintf(stderr, "mgo_test_sh: command longer than %zu bytes\n", size - 1);
        return -1;
    }
    return 0;
}

int mgo_test_sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int ok = vformat(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    if (ok != 0)
        return -1;
    int rc = system(cmd);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

int mgo_test_sh_out(char *out, size_t out_size, const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    int ok = vformat(cmd, sizeof cmd, fmt, ap);
    va_end(ap);
    out[0] = '\0';
    if (ok != 0)
        return -1;
    FILE *p = popen(cmd, "r");
    if (p == NULL)
        return -1;
    if (fgets(out, (int)out_size, p) != NULL)
        out[strcspn(out, "\n")] = '\0';
    int rc = pclose(p);
    return rc == -1 || !WIFEXITED(rc) ? -1 : WEXITSTATUS(rc);
}

void mgo_test_fake_helm_env(const char *dir, const char *mode, char *log, char *releases)
{
    char path[512];
    snprintf(path, sizeof path, "%s/helm.log", dir);
    setenv("FAKE_HELM_LOG", path, 1);
    if (log != NULL)
        snprintf(log, 512, "%s", path);
    snprintf(path, sizeof path, "%s/releases", dir);
    setenv("FAKE_HELM_STATE", path, 1);
    if (releases != NULL)
        snprintf(releases, 512, "%s", path);
    setenv("FAKE_HELM_MODE", mode, 1);
    unsetenv("FAKE_HELM_MODE_UPGRADE");
}

static struct sockaddr_in loopback(int port)
{
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = htons((uint16_t)port);
    return sa;
}

int mgo_test_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = loopback(0);
    socklen_t len = sizeof sa;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0 &&
        getsockname(fd, (struct sockaddr *)&sa, &len) == 0)
        port = ntohs(sa.sin_port);
    close(fd);
    return port;
}

bool mgo_test_port_open(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return false;
    struct sockaddr_in sa = loopback(port);
    bool ok = connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
    close(fd);
    return ok;
}
