/* test_latest.c - the latest status of each deployment on disk (agent/src/latest.h): the file
 * format and its checks, newer-only replacement, forgetting on removal, what survives a
 * reopen, an unreadable file skipped, and the MGO_LATEST_MAX bound at the limit and past it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "latest.h"
#include "mgo_test.h"
#include "state.h"

static char dir[256];

static void fresh(void)
{
    snprintf(dir, sizeof dir, "/tmp/mgo-agent-latest-XXXXXX");
    CU_ASSERT_FATAL(mkdtemp(dir) != NULL);
}

static void drop(void)
{
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

static void test_format_and_parse(void)
{
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_MAX_MESSAGE_BYTES + 64u);
    CU_ASSERT_FATAL(mgo_latest__format(7, 42, "abc", 3, &b) == MGO_OK);
    uint64_t boot = 0, seq = 0;
    const uint8_t *p = NULL;
    size_t len = 0;
    CU_ASSERT_FATAL(mgo_latest__parse(b.data, b.len, &boot, &seq, &p, &len) == MGO_OK);
    CU_ASSERT(boot == 7 && seq == 42 && len == 3 && memcmp(p, "abc", 3) == 0);
    /* every single-byte change and every cut is refused */
    for (size_t i = 0; i < b.len; i++) {
        b.data[i] ^= 0x01;
        CU_ASSERT(mgo_latest__parse(b.data, b.len, &boot, &seq, &p, &len) == MGO_ERR_PARSE);
        b.data[i] ^= 0x01;
        CU_ASSERT(mgo_latest__parse(b.data, i, &boot, &seq, &p, &len) == MGO_ERR_PARSE);
    }
    /* payload at the message limit and one past it */
    uint8_t *big = calloc(1, MGO_MAX_MESSAGE_BYTES + 1u);
    CU_ASSERT_FATAL(big != NULL);
    mgo_buf_reset(&b);
    CU_ASSERT(mgo_latest__format(1, 1, big, MGO_MAX_MESSAGE_BYTES, &b) == MGO_OK);
    CU_ASSERT(mgo_latest__parse(b.data, b.len, &boot, &seq, &p, &len) == MGO_OK);
    CU_ASSERT_EQUAL(len, MGO_MAX_MESSAGE_BYTES);
    mgo_buf_reset(&b);
    CU_ASSERT(mgo_latest__format(1, 1, big, MGO_MAX_MESSAGE_BYTES + 1u, &b) == MGO_ERR_LIMIT);
    free(big);
    mgo_buf_cleanup(&b);
}

static void test_newer_only_forget_and_reopen(void)
{
    fresh();
    struct mgo_latest *l = calloc(1, sizeof *l);
    CU_ASSERT_FATAL(l != NULL);
    char sub[300];
    snprintf(sub, sizeof sub, "%s/status", dir);
    CU_ASSERT_FATAL(mgo_latest_open(l, sub) == MGO_OK); /* creates the folder */
    CU_ASSERT_EQUAL(l->len, 0);
    CU_ASSERT(mgo_latest_put(l, "a", 1, 5, "a15", 3) == MGO_OK);
    CU_ASSERT(mgo_latest_put(l, "a", 1, 4, "a14", 3) == MGO_OK); /* older: ignored */
    CU_ASSERT(mgo_latest_put(l, "a", 1, 5, "xxx", 3) == MGO_OK); /* same position: ignored */
    CU_ASSERT(mgo_latest_put(l, "b", 1, 6, "b16", 3) == MGO_OK);
    CU_ASSERT(mgo_latest_put(l, "b", 2, 1, "b21", 3) == MGO_OK); /* newer boot wins */
    CU_ASSERT(mgo_latest_put(l, "c", 2, 2, "c22", 3) == MGO_OK);
    struct mgo_latest_entry *e = mgo_latest_find(l, "a");
    CU_ASSERT_FATAL(e != NULL);
    CU_ASSERT(e->seq == 5 && memcmp(e->payload, "a15", 3) == 0);
    /* a removal older than what is held changes nothing; a newer one forgets */
    CU_ASSERT(mgo_latest_forget(l, "b", 1, 9) == MGO_OK);
    CU_ASSERT(mgo_latest_find(l, "b") != NULL);
    CU_ASSERT(mgo_latest_forget(l, "c", 2, 3) == MGO_OK);
    CU_ASSERT(mgo_latest_find(l, "c") == NULL);
    CU_ASSERT(mgo_latest_forget(l, "never", 1, 1) == MGO_OK);
    mgo_latest_close(l);

    /* what is on disk: a and b, with their newest payloads; a corrupt file is skipped and
     * kept */
    CU_ASSERT_FATAL(mgo_test_sh("printf garbage > %s/d.status", sub) == 0);
    CU_ASSERT_FATAL(mgo_latest_open(l, sub) == MGO_OK);
    CU_ASSERT_EQUAL(l->len, 2);
    e = mgo_latest_find(l, "b");
    CU_ASSERT_FATAL(e != NULL);
    CU_ASSERT(e->boot == 2 && e->seq == 1 && memcmp(e->payload, "b21", 3) == 0);
    CU_ASSERT(!e->restore);
    CU_ASSERT(mgo_latest_find(l, "c") == NULL);
    CU_ASSERT(mgo_latest_find(l, "d") == NULL);
    char p[400];
    snprintf(p, sizeof p, "%s/d.status", sub);
    CU_ASSERT(access(p, F_OK) == 0);
    snprintf(p, sizeof p, "%s/c.status", sub);
    CU_ASSERT(access(p, F_OK) != 0);
    mgo_latest_close(l);
    free(l);
    drop();
}

static void test_limit(void)
{
    fresh();
    struct mgo_latest *l = calloc(1, sizeof *l);
    CU_ASSERT_FATAL(l != NULL);
    CU_ASSERT_FATAL(mgo_latest_open(l, dir) == MGO_OK);
    char id[32];
    for (unsigned i = 0; i < MGO_LATEST_MAX; i++) {
        snprintf(id, sizeof id, "dep-%u", i);
        CU_ASSERT_FATAL(mgo_latest_put(l, id, 1, i + 1u, "s", 1) == MGO_OK);
    }
    CU_ASSERT(mgo_latest_put(l, "one-more", 1, 100000, "s", 1) == MGO_ERR_LIMIT);
    CU_ASSERT(mgo_latest_put(l, "dep-0", 2, 1, "t", 1) == MGO_OK); /* held ones still update */
    /* an id longer than a deployment id */
    char longid[MGO_MAX_DEPLOYMENT_ID_LEN + 2];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    CU_ASSERT(mgo_latest_put(l, longid, 1, 1, "s", 1) == MGO_ERR_LIMIT);
    mgo_latest_close(l);
    /* a folder with one file more than the bound: the first ones load, the open says so */
    CU_ASSERT_FATAL(mgo_test_sh("cp %s/dep-0.status %s/extra.status", dir, dir) == 0);
    CU_ASSERT(mgo_latest_open(l, dir) == MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(l->len, MGO_LATEST_MAX);
    mgo_latest_close(l);
    free(l);
    drop();
}

/* A restore asked for by a new broker session survives a restart until it is done. */
static void test_restore_pending_survives(void)
{
    fresh();
    struct mgo_latest *l = calloc(1, sizeof *l);
    CU_ASSERT_FATAL(l != NULL);
    CU_ASSERT_FATAL(mgo_latest_open(l, dir) == MGO_OK);
    CU_ASSERT(mgo_latest_restore_all(l) == MGO_OK); /* nothing held: no file */
    char p[400];
    snprintf(p, sizeof p, "%s/restore-pending", dir);
    CU_ASSERT(access(p, F_OK) != 0);
    CU_ASSERT(mgo_latest_put(l, "a", 1, 1, "a", 1) == MGO_OK);
    CU_ASSERT(mgo_latest_put(l, "b", 1, 2, "b", 1) == MGO_OK);
    CU_ASSERT(mgo_latest_restore_all(l) == MGO_OK);
    CU_ASSERT(access(p, F_OK) == 0);
    mgo_latest_close(l); /* killed before the restores were acknowledged */
    CU_ASSERT_FATAL(mgo_latest_open(l, dir) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(l->len, 2);
    CU_ASSERT(l->items[0].restore && l->items[1].restore);
    l->items[0].restore = false; /* one acknowledged */
    CU_ASSERT(mgo_latest_restore_check(l) == MGO_OK);
    CU_ASSERT(access(p, F_OK) == 0);
    CU_ASSERT(mgo_latest_put(l, "b", 1, 3, "B", 1) == MGO_OK); /* a newer status replaces it */
    CU_ASSERT(!mgo_latest_find(l, "b")->restore);
    CU_ASSERT(mgo_latest_restore_check(l) == MGO_OK);
    CU_ASSERT(access(p, F_OK) != 0);
    mgo_latest_close(l);
    CU_ASSERT_FATAL(mgo_latest_open(l, dir) == MGO_OK);
    CU_ASSERT(!l->items[0].restore && !l->items[1].restore);
    mgo_latest_close(l);
    free(l);
    drop();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"file format: round trip, every flipped byte and cut refused, size limit",
         test_format_and_parse},
        {"newer positions only, removal forgets, reopen, corrupt file skipped",
         test_newer_only_forget_and_reopen},
        {"MGO_LATEST_MAX deployments: at the limit and one past it", test_limit},
        {"a pending restore survives a restart until done", test_restore_pending_survives},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.latest", cases);
}
