/* sec_test_util.h - helpers of the security tests only (header-only): a temporary PKI made
 * by the shipped broker-config/pki.sh and file paths inside it. Folders, removal and shell
 * commands come from the test kit (tests/support/mgo_test.h). */
#ifndef SEC_TEST_UTIL_H
#define SEC_TEST_UTIL_H

#include <stdio.h>
#include <stdlib.h>

#include "mgo_test.h"

/* Makes a temporary directory and runs pki.sh there with the given extra options.
 * dir receives the directory. Exits the test binary when that fails: nothing can be tested. */
static inline void sec_pki_make(char dir[256], const char *options)
{
    mgo_test_tmpdir("sec", dir);
    if (mgo_test_sh("sh '%s' %s '%s/pki' 2>'%s/pki.log'", mgo_test_path("broker-config/pki.sh"),
                    options, dir, dir) != 0) {
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

#endif
