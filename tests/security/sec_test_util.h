/* sec_test_util.h - helpers shared by the security tests (header-only): a temporary PKI made
 * by the shipped broker-config/pki.sh, file paths inside it, and removal. */
#ifndef SEC_TEST_UTIL_H
#define SEC_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mgo_test.h"

/* Runs a shell command line built by the test itself (fixed words and mkdtemp paths only).
 * Returns its exit status, -1 when it could not run. */
static inline int sec_run(const char *cmdline)
{
    int rc = system(cmdline);
    if (rc == -1 || !WIFEXITED(rc))
        return -1;
    return WEXITSTATUS(rc);
}

/* Makes a temporary directory and runs pki.sh there with the given extra options.
 * dir receives the directory. Exits the test binary when that fails: nothing can be tested. */
static inline void sec_pki_make(char dir[256], const char *options)
{
    snprintf(dir, 256, "/tmp/mgo-sec-test-XXXXXX");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "sh '%s' %s '%s/pki' 2>'%s/pki.log'",
             mgo_test_path("broker-config/pki.sh"), options, dir, dir);
    if (sec_run(cmd) != 0) {
        fprintf(stderr, "pki.sh failed; see %s/pki.log\n", dir);
        exit(2);
    }
}

/* dir "/pki/" rel into out (static storage would clash between calls). */
static inline const char *sec_pki_path(const char *dir, const char *rel, char out[512])
{
    snprintf(out, 512, "%s/pki/%s", dir, rel);
    return out;
}

static inline void sec_rmtree(const char *dir)
{
    if (strncmp(dir, "/tmp/mgo-sec-test-", 18) != 0 || strstr(dir, "..") != NULL)
        return;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    (void)sec_run(cmd);
}

#endif
