/* test_secret.c - the one secret-file reader (mgo/secret.h) and the one float formatter
 * (mgo_format_double in mgo/value.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mgo/secret.h"
#include "mgo/value.h"
#include "mgo_test.h"

static const char *write_tmp(const char *content, size_t len)
{
    static char path[64];
    snprintf(path, sizeof path, "/tmp/mgo-secret-XXXXXX");
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, content, len) == (ssize_t)len);
    close(fd);
    return path;
}

static void test_trims_trailing_white_space(void)
{
    const char *p = write_tmp("s3cret-token \t\r\n", 16);
    char out[64];
    size_t len = 0;
    CU_ASSERT(mgo_secret_read(p, out, sizeof out, &len) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(out, "s3cret-token");
    CU_ASSERT_EQUAL(len, 12);
    unlink(p);
}

static void test_refusals(void)
{
    char out[8];
    CU_ASSERT(mgo_secret_read("/nonexistent/secret", out, sizeof out, NULL) == MGO_ERR_NOT_FOUND);
    const char *p = write_tmp("1234567", 7); /* exactly fits */
    CU_ASSERT(mgo_secret_read(p, out, sizeof out, NULL) == MGO_OK);
    unlink(p);
    p = write_tmp("12345678", 8); /* one past */
    CU_ASSERT(mgo_secret_read(p, out, sizeof out, NULL) == MGO_ERR_LIMIT);
    CU_ASSERT_STRING_EQUAL(out, "");
    unlink(p);
    p = write_tmp("ab\0cd", 5);
    CU_ASSERT(mgo_secret_read(p, out, sizeof out, NULL) == MGO_ERR_INVALID);
    unlink(p);
    p = write_tmp("ab\ncd\n", 6);
    CU_ASSERT(mgo_secret_read(p, out, sizeof out, NULL) == MGO_ERR_INVALID);
    unlink(p);
    p = write_tmp("\n", 1);
    CU_ASSERT(mgo_secret_read(p, out, sizeof out, NULL) == MGO_ERR_INVALID);
    unlink(p);
}

static void test_format_double_shortest_round_trip(void)
{
    static const struct {
        double v;
        const char *text;
    } cases[] = {{0.1, "0.1"},
                 {24, "24"},
                 {1.5, "1.5"},
                 {-2.25, "-2.25"},
                 {1e21, "1e+21"},
                 {0.30000000000000004, "0.30000000000000004"},
                 {123456.789, "123456.789"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[MGO_DOUBLE_STR_SIZE];
        size_t n = mgo_format_double(cases[i].v, out);
        CU_ASSERT_STRING_EQUAL(out, cases[i].text);
        CU_ASSERT_EQUAL(n, strlen(cases[i].text));
        CU_ASSERT(strtod(out, NULL) == cases[i].v);
    }
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"trailing white space is not part of a secret", test_trims_trailing_white_space},
        {"missing, too long, NUL, inner line break, empty", test_refusals},
        {"format_double: shortest form that reads back", test_format_double_shortest_round_trip},
        {NULL, NULL},
    };
    mgo_test_add_suite("secret", cases);
}
