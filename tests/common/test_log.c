/* test_log.c - the default log sink's shapes (mgo/log.h): text lines, and JSON lines read back
 * with the project's own YAML/JSON reader: the keys, escaping of quotes, backslashes and
 * control characters, '?' for bytes that are not UTF-8, device and deployment only when given,
 * the level checked before anything is written. stderr is pointed at a file meanwhile.
 * (The journal shape needs a journald; tests/packaging/systemd_container.sh checks it.) */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "mgo/arena.h"
#include "mgo/log.h"
#include "mgo/problems.h"
#include "mgo/value.h"
#include "mgo_test.h"

static char g_dir[256];
static char g_path[320];
static int g_saved_stderr = -1;

/* stderr -> a fresh file until restore_stderr() */
static void capture_stderr(void)
{
    mgo_test_tmpdir("log", g_dir);
    snprintf(g_path, sizeof g_path, "%s/stderr.log", g_dir);
    fflush(stderr);
    g_saved_stderr = dup(2);
    int fd = open(g_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    CU_ASSERT_FATAL(fd >= 0 && g_saved_stderr >= 0);
    dup2(fd, 2);
    close(fd);
}

static char *restore_stderr(void)
{
    fflush(stderr);
    dup2(g_saved_stderr, 2);
    close(g_saved_stderr);
    g_saved_stderr = -1;
    char *text = mgo_test_read_file(g_path, NULL);
    mgo_test_rm_rf(g_dir);
    return text;
}

/* the string at key of a JSON object line, or NULL (storage in arena) */
static const char *str_at(const struct mgo_value *v, const char *pointer, size_t *len)
{
    const struct mgo_value *s = mgo_value_pointer(v, pointer);
    if (s == NULL || s->kind != MGO_V_STR)
        return NULL;
    if (len != NULL)
        *len = s->as.str.len;
    return s->as.str.ptr;
}

static bool is_time(const char *t)
{
    /* 2026-12-05T09:54:15.318Z */
    static const char shape[] = "dddd-dd-ddTdd:dd:dd.dddZ";
    if (t == NULL || strlen(t) != sizeof shape - 1)
        return false;
    for (size_t i = 0; shape[i] != '\0'; i++)
        if (shape[i] == 'd' ? (t[i] < '0' || t[i] > '9') : t[i] != shape[i])
            return false;
    return true;
}

static void test_json_lines(void)
{
    capture_stderr();
    mgo_log_set_format(MGO_LOG_JSON);
    mgo_log_set_level(MGO_LOG_INFO);
    MGO_LOGI_FOR("ingest", "dev-1", "dep-\"9\"", "say \"hi\" \\ tab\there\x01 bad\xff\xfe end");
    MGO_LOGW("mqtt", "plain line\nfolded");
    MGO_LOGD_FOR("ingest", "dev-1", NULL, "below the level: %s", "not written");
    MGO_LOGE_FOR("publish", NULL, "dep-2", "only a deployment");
    mgo_log_set_format(MGO_LOG_TEXT);
    MGO_LOGI("text", "a text line");
    char *out = restore_stderr();

    char *lines[8];
    size_t n = 0;
    for (char *save = NULL, *l = strtok_r(out, "\n", &save); l != NULL && n < 8;
         l = strtok_r(NULL, "\n", &save))
        lines[n++] = l;
    CU_ASSERT_EQUAL_FATAL(n, 4);

    struct mgo_arena arena;
    mgo_arena_init(&arena, 1 << 20);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_value v[3];
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL_FATAL(
            mgo_value_from_yaml(lines[i], strlen(lines[i]), &arena, &v[i], &probs), MGO_OK);
        CU_ASSERT_EQUAL(v[i].kind, MGO_V_MAP);
        CU_ASSERT_TRUE(is_time(str_at(&v[i], "/time", NULL)));
    }
    size_t len = 0;
    CU_ASSERT_STRING_EQUAL(str_at(&v[0], "/level", NULL), "info");
    CU_ASSERT_STRING_EQUAL(str_at(&v[0], "/component", NULL), "ingest");
    const char *msg = str_at(&v[0], "/message", &len);
    static const char want[] = "say \"hi\" \\ tab\there\x01 bad?? end";
    CU_ASSERT_TRUE(msg != NULL && len == sizeof want - 1 && memcmp(msg, want, len) == 0);
    CU_ASSERT_STRING_EQUAL(str_at(&v[0], "/device", NULL), "dev-1");
    CU_ASSERT_STRING_EQUAL(str_at(&v[0], "/deployment", NULL), "dep-\"9\"");
    CU_ASSERT_EQUAL(v[0].as.map.len, 6);

    CU_ASSERT_STRING_EQUAL(str_at(&v[1], "/level", NULL), "warn");
    CU_ASSERT_STRING_EQUAL(str_at(&v[1], "/message", NULL), "plain line folded");
    CU_ASSERT_EQUAL(v[1].as.map.len, 4); /* no device, no deployment */

    CU_ASSERT_STRING_EQUAL(str_at(&v[2], "/level", NULL), "error");
    CU_ASSERT_PTR_NULL(mgo_value_pointer(&v[2], "/device"));
    CU_ASSERT_STRING_EQUAL(str_at(&v[2], "/deployment", NULL), "dep-2");

    /* the text shape: "TIME I tag: line" */
    char t[25];
    snprintf(t, sizeof t, "%s", lines[3]);
    CU_ASSERT_TRUE(is_time(t));
    CU_ASSERT_STRING_EQUAL(lines[3] + 24, " I text: a text line");
    mgo_arena_cleanup(&arena);
    free(out);
}

static void test_format_parse(void)
{
    enum mgo_log_format f = MGO_LOG_TEXT;
    CU_ASSERT_EQUAL(mgo_log_format_parse("json", &f), MGO_OK);
    CU_ASSERT_EQUAL(f, MGO_LOG_JSON);
    CU_ASSERT_EQUAL(mgo_log_format_parse("text", &f), MGO_OK);
    CU_ASSERT_EQUAL(f, MGO_LOG_TEXT);
    CU_ASSERT_EQUAL(mgo_log_format_parse("JSON", &f), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_log_format_parse("", &f), MGO_ERR_INVALID);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"json lines: keys, escaping, ids, level", test_json_lines},
        {"log-format values", test_format_parse},
        {NULL, NULL},
    };
    mgo_test_add_suite("log", cases);
}
