/* test_config.c - table-driven config files and flags (mgo/config.h). */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mgo/config.h"
#include "mgo/limits.h"
#include "mgo_test.h"

struct demo {
    char *url;
    int64_t port;
    bool verbose;
    struct mgo_strlist topics;
    char *name;
    int64_t offset;
};

static const struct mgo_cfg_option table[] = {
    {"broker-url", MGO_CFG_STR, offsetof(struct demo, url), 0, 64, "tcp://127.0.0.1:1883",
     "broker URL"},
    {"port", MGO_CFG_INT, offsetof(struct demo, port), 1, 65535, "1883", "listen port"},
    {"verbose", MGO_CFG_BOOL, offsetof(struct demo, verbose), 0, 0, "false", "log more"},
    {"topic", MGO_CFG_LIST, offsetof(struct demo, topics), 0, 32, NULL, "topic to watch"},
    {"name", MGO_CFG_STR, offsetof(struct demo, name), 0, 0, NULL, "display name"},
    {"offset", MGO_CFG_INT, offsetof(struct demo, offset), -10, 10, "0", "signed value"},
};
#define NOPT (sizeof table / sizeof table[0])

static struct demo cfg;
static struct mgo_problems probs;

static void fresh(void)
{
    mgo_cfg_cleanup(table, NOPT, &cfg);
    memset(&cfg, 0, sizeof cfg);
    mgo_problems_init(&probs);
    CU_ASSERT_FATAL(mgo_cfg_defaults(table, NOPT, &cfg) == MGO_OK);
}

static void done(void)
{
    mgo_cfg_cleanup(table, NOPT, &cfg);
    CU_ASSERT_PTR_NULL(cfg.url);
    CU_ASSERT_EQUAL(cfg.topics.len, 0);
}

static mgo_err load(const char *text)
{
    return mgo_cfg_load_text(table, NOPT, &cfg, text, strlen(text), "t.conf", &probs);
}

static bool problem_is(size_t i, const char *field, const char *rule_prefix)
{
    if (i >= probs.count)
        return false;
    return strcmp(probs.items[i].field, field) == 0 &&
           strncmp(probs.items[i].rule, rule_prefix, strlen(rule_prefix)) == 0;
}

/* Writes text to a fresh temporary file; returns its malloc'd path. */
static char *temp_file(const char *text)
{
    char *path = strdup("/tmp/mgo-config-test-XXXXXX");
    CU_ASSERT_FATAL(path != NULL);
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    size_t len = strlen(text);
    CU_ASSERT_FATAL(write(fd, text, len) == (ssize_t)len);
    close(fd);
    return path;
}

static void test_defaults(void)
{
    fresh();
    CU_ASSERT_STRING_EQUAL(cfg.url, "tcp://127.0.0.1:1883");
    CU_ASSERT_EQUAL(cfg.port, 1883);
    CU_ASSERT_FALSE(cfg.verbose);
    CU_ASSERT_EQUAL(cfg.topics.len, 0);
    CU_ASSERT_PTR_NULL(cfg.name);
    /* Defaults again over filled values: old strings are released (ASan checks). */
    CU_ASSERT(load("name x\ntopic a\n") == MGO_OK);
    CU_ASSERT(mgo_cfg_defaults(table, NOPT, &cfg) == MGO_OK);
    CU_ASSERT_PTR_NULL(cfg.name);
    CU_ASSERT_EQUAL(cfg.topics.len, 0);
    done();
}

static void test_int_range_edges(void)
{
    fresh();
    CU_ASSERT(load("port 1\n") == MGO_OK);
    CU_ASSERT_EQUAL(cfg.port, 1);
    CU_ASSERT(load("port 65535\n") == MGO_OK);
    CU_ASSERT_EQUAL(cfg.port, 65535);
    CU_ASSERT(load("offset -10\n") == MGO_OK);
    CU_ASSERT_EQUAL(cfg.offset, -10);
    CU_ASSERT_EQUAL(probs.count, 0);

    CU_ASSERT(load("port 0\n") == MGO_ERR_INVALID);
    CU_ASSERT(problem_is(0, "t.conf:1", "port: must be a whole number from 1 to 65535"));
    CU_ASSERT(load("port 65536\n") == MGO_ERR_INVALID);
    CU_ASSERT(load("offset -11\n") == MGO_ERR_INVALID);
    CU_ASSERT(load("offset 11\n") == MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(probs.count, 4);
    CU_ASSERT_EQUAL(cfg.port, 65535); /* a refused value leaves the old one */
    CU_ASSERT_EQUAL(cfg.offset, -10);
    done();
}

static void test_int_strict_parsing(void)
{
    static const char *const bad[] = {"port 12x\n",  "port 0x10\n",   "port 1.5\n",
                                      "port \"\"\n", "port \" 5\"\n", "port 99999999999999999999\n",
                                      "port --5\n"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fresh();
        CU_ASSERT(load(bad[i]) != MGO_OK);
        CU_ASSERT_EQUAL(probs.count, 1);
        CU_ASSERT_EQUAL(cfg.port, 1883);
        done();
    }
}

static void test_bool_spellings(void)
{
    static const char *const yes[] = {"true", "yes", "on", "1", "TRUE", "Yes"};
    static const char *const no[] = {"false", "no", "off", "0", "OFF"};
    char line[64];
    fresh();
    for (size_t i = 0; i < sizeof yes / sizeof yes[0]; i++) {
        cfg.verbose = false;
        snprintf(line, sizeof line, "verbose %s\n", yes[i]);
        CU_ASSERT(load(line) == MGO_OK);
        CU_ASSERT_TRUE(cfg.verbose);
    }
    for (size_t i = 0; i < sizeof no / sizeof no[0]; i++) {
        cfg.verbose = true;
        snprintf(line, sizeof line, "verbose %s\n", no[i]);
        CU_ASSERT(load(line) == MGO_OK);
        CU_ASSERT_FALSE(cfg.verbose);
    }
    CU_ASSERT(load("verbose maybe\n") == MGO_ERR_INVALID);
    CU_ASSERT(problem_is(0, "t.conf:1", "verbose: must be true/false"));
    done();
}

static void test_string_max_length(void)
{
    char line[128];
    char value[70];
    fresh();
    memset(value, 'a', 64);
    value[64] = '\0';
    snprintf(line, sizeof line, "broker-url %s\n", value);
    CU_ASSERT(load(line) == MGO_OK);
    CU_ASSERT_EQUAL(strlen(cfg.url), 64);
    value[64] = 'b';
    value[65] = '\0';
    snprintf(line, sizeof line, "broker-url %s\n", value);
    CU_ASSERT(load(line) == MGO_ERR_LIMIT);
    CU_ASSERT(problem_is(0, "t.conf:1", "broker-url: longer than 64 bytes"));
    CU_ASSERT_EQUAL(strlen(cfg.url), 64);
    done();
}

static void test_unknown_key_names_file_and_line(void)
{
    fresh();
    CU_ASSERT(load("# comment\nport 10\n\nbogus 1\nport 20\n") == MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(probs.count, 1);
    CU_ASSERT(problem_is(0, "t.conf:4", "bogus: unknown key"));
    char text[256];
    mgo_problems_format(&probs, text, sizeof text);
    CU_ASSERT_STRING_EQUAL(text, "t.conf:4: bogus: unknown key");
    CU_ASSERT_EQUAL(cfg.port, 20); /* the rest of the file still applies */
    done();
}

static void test_comments_blanks_crlf(void)
{
    fresh();
    CU_ASSERT(load("  # indented comment\r\n\r\n\t\n port 42 # trailing\r\n"
                   "broker-url tcp://h:1#frag\nname last") == MGO_OK);
    CU_ASSERT_EQUAL(probs.count, 0);
    CU_ASSERT_EQUAL(cfg.port, 42);
    CU_ASSERT_STRING_EQUAL(cfg.url, "tcp://h:1#frag");
    CU_ASSERT_STRING_EQUAL(cfg.name, "last"); /* no final newline */
    done();
}

static void test_quoted_values(void)
{
    fresh();
    CU_ASSERT(load("name \"hello  world\"  # c\n") == MGO_OK);
    CU_ASSERT_STRING_EQUAL(cfg.name, "hello  world");
    CU_ASSERT(load("name \"say \\\"hi\\\" \\\\ # not a comment\"\n") == MGO_OK);
    CU_ASSERT_STRING_EQUAL(cfg.name, "say \"hi\" \\ # not a comment");
    CU_ASSERT(load("name \"\"\n") == MGO_OK);
    CU_ASSERT_STRING_EQUAL(cfg.name, "");
    CU_ASSERT_EQUAL(probs.count, 0);

    CU_ASSERT(load("name \"open\n") == MGO_ERR_PARSE);
    CU_ASSERT(problem_is(0, "t.conf:1", "name: missing closing quote"));
    CU_ASSERT(load("name \"a\\nb\"\n") == MGO_ERR_PARSE);
    CU_ASSERT(problem_is(1, "t.conf:1", "name: only"));
    CU_ASSERT(load("name \"a\" b\n") == MGO_ERR_PARSE);
    CU_ASSERT(load("name two words\n") == MGO_ERR_PARSE);
    CU_ASSERT(problem_is(3, "t.conf:1", "name: unexpected text after the value"));
    CU_ASSERT(load("name\n") == MGO_ERR_INVALID);
    CU_ASSERT(problem_is(4, "t.conf:1", "name: missing value"));
    CU_ASSERT(load("name   # only a comment\n") == MGO_ERR_INVALID);
    CU_ASSERT_STRING_EQUAL(cfg.name, "");
    done();
}

static void test_lists_append(void)
{
    fresh();
    char *path = temp_file("topic a/b\ntopic \"c d\"\n");
    char *argv[] = {"prog", "--config", path, "--topic", "e", "--topic=f", NULL};
    bool help = true;
    CU_ASSERT(mgo_cfg_parse_args(table, NOPT, &cfg, 6, argv, &help, &probs) == MGO_OK);
    CU_ASSERT_FALSE(help);
    CU_ASSERT_EQUAL_FATAL(cfg.topics.len, 4);
    CU_ASSERT_STRING_EQUAL(cfg.topics.items[0], "a/b");
    CU_ASSERT_STRING_EQUAL(cfg.topics.items[1], "c d");
    CU_ASSERT_STRING_EQUAL(cfg.topics.items[2], "e");
    CU_ASSERT_STRING_EQUAL(cfg.topics.items[3], "f");
    /* Each item obeys the option's max length. */
    CU_ASSERT(load("topic 0123456789012345678901234567890123\n") == MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(cfg.topics.len, 4);
    unlink(path);
    free(path);
    done();
}

static void test_flags_override_file(void)
{
    fresh();
    char *path = temp_file("port 100\nname from-file\nverbose yes\n");
    /* --config comes after the flag on purpose: the file is still applied first. */
    char *argv[] = {"prog", "--port", "200", "--name=from-flag", "--config=", NULL};
    char cfg_arg[128];
    snprintf(cfg_arg, sizeof cfg_arg, "--config=%s", path);
    argv[4] = cfg_arg;
    bool help = false;
    CU_ASSERT(mgo_cfg_parse_args(table, NOPT, &cfg, 5, argv, &help, &probs) == MGO_OK);
    CU_ASSERT_EQUAL(probs.count, 0);
    CU_ASSERT_EQUAL(cfg.port, 200);
    CU_ASSERT_STRING_EQUAL(cfg.name, "from-flag");
    CU_ASSERT_TRUE(cfg.verbose);                             /* from the file, not overridden */
    CU_ASSERT_STRING_EQUAL(cfg.url, "tcp://127.0.0.1:1883"); /* default */

    /* Bare boolean flag, then an explicit false wins because it comes later. */
    fresh();
    char *argv2[] = {"prog", "--verbose", "--port", "7", "--verbose", "off", NULL};
    CU_ASSERT(mgo_cfg_parse_args(table, NOPT, &cfg, 6, argv2, &help, &probs) == MGO_OK);
    CU_ASSERT_FALSE(cfg.verbose);
    CU_ASSERT_EQUAL(cfg.port, 7);
    unlink(path);
    free(path);
    done();
}

static void test_bad_flags(void)
{
    fresh();
    char *argv[] = {"prog", "positional", "--bogus", "1", "--port", "0", "-x", "--name", NULL};
    bool help = false;
    CU_ASSERT(mgo_cfg_parse_args(table, NOPT, &cfg, 8, argv, &help, &probs) == MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(probs.count, 5);
    CU_ASSERT(problem_is(0, "argv", "\"positional\": not an option"));
    CU_ASSERT(problem_is(1, "--bogus", "bogus: unknown option"));
    CU_ASSERT(problem_is(2, "--port", "port: must be a whole number from 1 to 65535"));
    CU_ASSERT(problem_is(3, "argv", "\"-x\": not an option"));
    CU_ASSERT(problem_is(4, "--name", "name: missing value"));
    CU_ASSERT_EQUAL(cfg.port, 1883);
    done();
}

static void test_help(void)
{
    fresh();
    char *argv[] = {"prog", "--port", "bad", "--config", "/nonexistent/x.conf", "-h", NULL};
    bool help = false;
    CU_ASSERT(mgo_cfg_parse_args(table, NOPT, &cfg, 6, argv, &help, &probs) == MGO_OK);
    CU_ASSERT_TRUE(help);
    CU_ASSERT_EQUAL(probs.count, 0);

    char *out = NULL;
    size_t out_len = 0;
    FILE *f = open_memstream(&out, &out_len);
    CU_ASSERT_FATAL(f != NULL);
    mgo_cfg_print_help(table, NOPT, "usage: prog [options]", f);
    fclose(f);
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "usage: prog [options]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "--port N"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "(1..65535)"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "[default: 1883]"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "--topic"));
    CU_ASSERT_PTR_NOT_NULL(strstr(out, "--help"));
    free(out);
    done();
}

static void test_line_length_limit(void)
{
    size_t cap = 3 * 4100;
    char *text = malloc(cap);
    CU_ASSERT_FATAL(text != NULL);
    /* Line 1: exactly 4096 bytes ("name " + 4091 x). Line 2: 4097 bytes. Line 3: port 9. */
    size_t pos = 0;
    memcpy(text + pos, "name ", 5);
    pos += 5;
    memset(text + pos, 'x', 4091);
    pos += 4091;
    text[pos++] = '\n';
    memcpy(text + pos, "name ", 5);
    pos += 5;
    memset(text + pos, 'y', 4092);
    pos += 4092;
    text[pos++] = '\n';
    memcpy(text + pos, "port 9\n", 7);
    pos += 7;

    fresh();
    CU_ASSERT(mgo_cfg_load_text(table, NOPT, &cfg, text, pos, "big.conf", &probs) == MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(probs.count, 1);
    CU_ASSERT(problem_is(0, "big.conf:2", "line longer than 4096 bytes"));
    CU_ASSERT_EQUAL(strlen(cfg.name), 4091);
    CU_ASSERT_EQUAL(cfg.port, 9);
    free(text);
    done();
}

static void test_file_size_limit(void)
{
    size_t len = MGO_MAX_FILE_BYTES + 1;
    char *text = malloc(len);
    CU_ASSERT_FATAL(text != NULL);
    for (size_t i = 0; i < len; i++)
        text[i] = (i % 64 == 63) ? '\n' : '#';
    fresh();
    CU_ASSERT(mgo_cfg_load_text(table, NOPT, &cfg, text, len - 1, "x", &probs) == MGO_OK);
    CU_ASSERT(mgo_cfg_load_text(table, NOPT, &cfg, text, len, "x", &probs) == MGO_ERR_LIMIT);
    CU_ASSERT(problem_is(0, "x", "larger than 1048576 bytes"));

    /* The same through a file on disk. */
    char path[] = "/tmp/mgo-config-big-XXXXXX";
    int fd = mkstemp(path);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT_FATAL(write(fd, text, len) == (ssize_t)len);
    close(fd);
    CU_ASSERT(mgo_cfg_load_file(table, NOPT, &cfg, path, &probs) == MGO_ERR_LIMIT);
    CU_ASSERT(problem_is(1, path, "larger than 1048576 bytes"));
    unlink(path);
    free(text);
    done();
}

static void test_missing_file(void)
{
    fresh();
    CU_ASSERT(mgo_cfg_load_file(table, NOPT, &cfg, "/nonexistent/dir/m.conf", &probs) ==
              MGO_ERR_NOT_FOUND);
    CU_ASSERT(problem_is(0, "/nonexistent/dir/m.conf", "cannot open"));
    char *argv[] = {"prog", "--config", "/nonexistent/dir/m.conf", "--port", "5", NULL};
    bool help = false;
    CU_ASSERT(mgo_cfg_parse_args(table, NOPT, &cfg, 5, argv, &help, &probs) == MGO_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(cfg.port, 5); /* flags are still checked and applied */
    char *argv2[] = {"prog", "--config", NULL};
    CU_ASSERT(mgo_cfg_parse_args(table, NOPT, &cfg, 2, argv2, &help, &probs) == MGO_ERR_INVALID);
    done();
}

static void test_nul_byte_line(void)
{
    static const char text[] = "port 5\nname a\0b\nport 6\n";
    fresh();
    CU_ASSERT(mgo_cfg_load_text(table, NOPT, &cfg, text, sizeof text - 1, "n", &probs) ==
              MGO_ERR_PARSE);
    CU_ASSERT(problem_is(0, "n:2", "line contains a NUL byte"));
    CU_ASSERT_EQUAL(cfg.port, 6);
    done();
}

/* mgo_cfg_same: what a reload compares, for each type (NULL and "" strings differ). */
static void test_same_per_type(void)
{
    fresh();
    struct demo other;
    memset(&other, 0, sizeof other);
    CU_ASSERT_FATAL(mgo_cfg_defaults(table, NOPT, &other) == MGO_OK);
    CU_ASSERT_EQUAL(load("topic a\ntopic b\n"), MGO_OK);
    const char *same = "topic a\ntopic b\n";
    CU_ASSERT_EQUAL(mgo_cfg_load_text(table, NOPT, &other, same, strlen(same), "o.conf", &probs),
                    MGO_OK);
    for (size_t i = 0; i < NOPT; i++)
        CU_ASSERT_TRUE(mgo_cfg_same(&table[i], &cfg, &other));
    const char *diff = "port 2\nverbose on\ntopic c\nname \"\"\noffset -1\nbroker-url x\n";
    CU_ASSERT_EQUAL(mgo_cfg_load_text(table, NOPT, &other, diff, strlen(diff), "o.conf", &probs),
                    MGO_OK);
    for (size_t i = 0; i < NOPT; i++) /* every option differs now (name: NULL vs "") */
        CU_ASSERT_FALSE(mgo_cfg_same(&table[i], &cfg, &other));
    /* lists: same length, one item different */
    CU_ASSERT_EQUAL(load("topic c\n"), MGO_OK); /* cfg: a b c; other: a b c */
    CU_ASSERT_TRUE(mgo_cfg_same(&table[3], &cfg, &other));
    free(other.topics.items[1]);
    other.topics.items[1] = strdup("B");
    CU_ASSERT_FALSE(mgo_cfg_same(&table[3], &cfg, &other));
    mgo_cfg_cleanup(table, NOPT, &other);
    done();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"defaults", test_defaults},
        {"int: range edges and one past", test_int_range_edges},
        {"int: strict parsing", test_int_strict_parsing},
        {"bool: spellings", test_bool_spellings},
        {"string: max length and one past", test_string_max_length},
        {"unknown key names file:line", test_unknown_key_names_file_and_line},
        {"comments, blank lines, CRLF", test_comments_blanks_crlf},
        {"quoted values and escapes", test_quoted_values},
        {"lists append per occurrence", test_lists_append},
        {"flags override the file", test_flags_override_file},
        {"bad flags are reported", test_bad_flags},
        {"--help", test_help},
        {"line length 4096 and one past", test_line_length_limit},
        {"file size 1 MiB and one past", test_file_size_limit},
        {"missing config file", test_missing_file},
        {"NUL byte in a line", test_nul_byte_line},
        {"same value per type (reload)", test_same_per_type},
        {NULL, NULL},
    };
    mgo_test_add_suite("config", cases);
}
