/* mgo_test.h - shared by every CUnit test binary.
 *
 * Each tests/<area>/test_*.c defines mgo_test_register(), which adds its suites with
 * CU_add_suite()/CU_add_test(); cunit_main.c runs them, prints CUnit's summary and exits
 * non-zero when any assertion failed. MGO_SOURCE_DIR and MGO_BINARY_DIR point at the
 * repository and the build folder. */
#ifndef MGO_TEST_H
#define MGO_TEST_H

#include <CUnit/CUnit.h>
#include <stddef.h>

void mgo_test_register(void);

/* Adds a suite with the given tests (NULL-terminated {name, fn} pairs). */
struct mgo_test_case {
    const char *name;
    void (*fn)(void);
};
void mgo_test_add_suite(const char *suite, const struct mgo_test_case *cases);

/* Path under the source tree: MGO_SOURCE_DIR "/" rel. Static buffer (one at a time). */
const char *mgo_test_path(const char *rel);
/* Reads a file into a malloc'd buffer (NUL-terminated); aborts the test binary on error. */
char *mgo_test_read_file(const char *path, size_t *len_out);
/* Runs a shell command (test set-up only); its exit status, -1 when it could not run. */
int mgo_test_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Lines of a file containing needle (0 when the file does not exist). */
size_t mgo_test_count_lines(const char *path, const char *needle);

#endif
