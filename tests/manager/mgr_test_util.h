/* mgr_test_util.h - small helpers shared by the manager tests (header-only). */
#ifndef MGR_TEST_UTIL_H
#define MGR_TEST_UTIL_H

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Creates a fresh directory under /tmp; path receives it. */
static inline void mgr_test_tmpdir(char path[256])
{
    snprintf(path, 256, "/tmp/mgo-mgr-test-XXXXXX");
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
}

/* Removes a directory made by mgr_test_tmpdir and the plain files in it. */
static inline void mgr_test_rmdir(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char file[1024];
            if (snprintf(file, sizeof file, "%s/%s", path, e->d_name) < (int)sizeof file)
                unlink(file);
        }
        closedir(d);
    }
    rmdir(path);
}

#endif
