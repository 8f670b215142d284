/* test_state.c - agent durable state: boot counter, manifest version, records, documents,
 * and what a crash between the steps of an atomic write leaves behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "mgo_test.h"
#include "state.h"

static char dir[256];

static void fresh_dir(void)
{
    mgo_test_tmpdir("agent-state", dir);
}

static void drop_dir(void)
{
    CU_ASSERT(mgo_agent__rm_rf(dir) == MGO_OK);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void test_boot_counter_grows(void)
{
    fresh_dir();
    struct mgo_agent_state st;
    CU_ASSERT_FATAL(mgo_agent_state_open(dir, &st) == MGO_OK);
    CU_ASSERT_EQUAL(st.boot, 1);
    CU_ASSERT_EQUAL(st.manifest_version, 0);
    st.manifest_version = 42;
    CU_ASSERT_FATAL(mgo_agent_state_save(&st) == MGO_OK);
    CU_ASSERT_FATAL(mgo_agent_state_open(dir, &st) == MGO_OK);
    CU_ASSERT_EQUAL(st.boot, 2);
    CU_ASSERT_EQUAL(st.manifest_version, 42);
    CU_ASSERT_FATAL(mgo_agent_state_open(dir, &st) == MGO_OK);
    CU_ASSERT_EQUAL(st.boot, 3);
    drop_dir();
}

/* Crash after the temp file was written but before rename: the old state stays, the
 * stray temp file is removed at the next open. */
static void test_crash_before_rename_keeps_old(void)
{
    fresh_dir();
    struct mgo_agent_state st;
    CU_ASSERT_FATAL(mgo_agent_state_open(dir, &st) == MGO_OK);
    st.manifest_version = 7;
    CU_ASSERT_FATAL(mgo_agent_state_save(&st) == MGO_OK);
    char tmp[512];
    snprintf(tmp, sizeof tmp, "%s/.agent.state.tmp", dir);
    write_file(tmp, "manifest-version 9"); /* half-written new version, never renamed */
    CU_ASSERT_FATAL(mgo_agent_state_open(dir, &st) == MGO_OK);
    CU_ASSERT_EQUAL(st.manifest_version, 7);
    CU_ASSERT_EQUAL(st.boot, 2);
    CU_ASSERT(access(tmp, F_OK) != 0);
    drop_dir();
}

static void test_corrupt_state_refused(void)
{
    fresh_dir();
    char p[512];
    snprintf(p, sizeof p, "%s/agent.state", dir);
    write_file(p, "manifest-version 12x\nboot 1\n");
    struct mgo_agent_state st;
    CU_ASSERT(mgo_agent_state_open(dir, &st) == MGO_ERR_PARSE);
    write_file(p, "colour blue\n");
    CU_ASSERT(mgo_agent_state_open(dir, &st) == MGO_ERR_PARSE);
    write_file(p, "boot 18446744073709551615\n");
    CU_ASSERT(mgo_agent_state_open(dir, &st) == MGO_ERR_LIMIT);
    drop_dir();
}

static const char *D1 = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
static const char *D2 = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

static void test_records_roundtrip(void)
{
    fresh_dir();
    struct mgo_agent_state st;
    CU_ASSERT_FATAL(mgo_agent_state_open(dir, &st) == MGO_OK);
    struct mgo_dep_record a = {0}, b = {0};
    snprintf(a.id, sizeof a.id, "b-second");
    snprintf(a.desired_digest, sizeof a.desired_digest, "%s", D1);
    snprintf(a.installed_digest, sizeof a.installed_digest, "%s", D1);
    snprintf(a.params_hash, sizeof a.params_hash, "%s", D2);
    a.adopted_manifest_version = 5;
    a.installed_ok = true;
    a.state = MGO_STATE_INSTALLED;
    snprintf(b.id, sizeof b.id, "a-first");
    b.remove = true;
    b.state = MGO_STATE_REMOVING;
    CU_ASSERT_FATAL(mgo_agent_record_save(&st, &a) == MGO_OK);
    CU_ASSERT_FATAL(mgo_agent_record_save(&st, &b) == MGO_OK);

    struct mgo_dep_record recs[4];
    size_t n = 0;
    CU_ASSERT_FATAL(mgo_agent_record_load_all(&st, recs, 4, &n) == MGO_OK);
    CU_ASSERT_EQUAL_FATAL(n, 2);
    CU_ASSERT_STRING_EQUAL(recs[0].id, "a-first");
    CU_ASSERT(recs[0].remove);
    CU_ASSERT_EQUAL(recs[0].state, MGO_STATE_REMOVING);
    CU_ASSERT_STRING_EQUAL(recs[1].id, "b-second");
    CU_ASSERT_STRING_EQUAL(recs[1].installed_digest, D1);
    CU_ASSERT_STRING_EQUAL(recs[1].params_hash, D2);
    CU_ASSERT_EQUAL(recs[1].adopted_manifest_version, 5);
    CU_ASSERT(recs[1].installed_ok);

    /* a limit of one record refuses the second */
    CU_ASSERT(mgo_agent_record_load_all(&st, recs, 1, &n) == MGO_ERR_LIMIT);

    CU_ASSERT_FATAL(mgo_agent_record_delete(&st, "a-first") == MGO_OK);
    CU_ASSERT_FATAL(mgo_agent_record_load_all(&st, recs, 4, &n) == MGO_OK);
    CU_ASSERT_EQUAL(n, 1);
    /* ids that would escape the folder are refused */
    struct mgo_dep_record bad = {0};
    snprintf(bad.id, sizeof bad.id, "../x");
    CU_ASSERT(mgo_agent_record_save(&st, &bad) == MGO_ERR_INVALID);
    drop_dir();
}

static void test_bad_record_skipped_not_deleted(void)
{
    fresh_dir();
    struct mgo_agent_state st;
    CU_ASSERT_FATAL(mgo_agent_state_open(dir, &st) == MGO_OK);
    char p[512];
    snprintf(p, sizeof p, "%s/deployments/x.rec", dir);
    write_file(p, "id x\ndesired sha256:nothex\n");
    snprintf(p, sizeof p, "%s/deployments/y.rec", dir);
    write_file(p, "id other\n"); /* id does not match the file name */
    struct mgo_dep_record recs[4];
    size_t n = 9;
    CU_ASSERT_FATAL(mgo_agent_record_load_all(&st, recs, 4, &n) == MGO_OK);
    CU_ASSERT_EQUAL(n, 0);
    CU_ASSERT(access(p, F_OK) == 0);
    drop_dir();
}

static void test_docs_by_digest(void)
{
    fresh_dir();
    struct mgo_agent_state st;
    CU_ASSERT_FATAL(mgo_agent_state_open(dir, &st) == MGO_OK);
    CU_ASSERT_FATAL(mgo_agent_doc_save(&st, D1, "one", 3) == MGO_OK);
    CU_ASSERT_FATAL(mgo_agent_doc_save(&st, D2, "two", 3) == MGO_OK);
    struct mgo_buf b;
    mgo_buf_init(&b, 1024);
    CU_ASSERT_FATAL(mgo_agent_doc_load(&st, D1, &b) == MGO_OK);
    CU_ASSERT_EQUAL(b.len, 3);
    CU_ASSERT(memcmp(b.data, "one", 3) == 0);
    const char *keep[] = {D2};
    mgo_agent_doc_gc(&st, keep, 1);
    CU_ASSERT(mgo_agent_doc_load(&st, D1, &b) == MGO_ERR_NOT_FOUND);
    CU_ASSERT(mgo_agent_doc_load(&st, D2, &b) == MGO_OK);
    CU_ASSERT(mgo_agent_doc_save(&st, "sha256:../../etc", "x", 1) == MGO_ERR_INVALID);
    mgo_buf_cleanup(&b);
    drop_dir();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"boot counter grows on every open", test_boot_counter_grows},
        {"crash before rename keeps the old state", test_crash_before_rename_keeps_old},
        {"corrupt state file is refused", test_corrupt_state_refused},
        {"records round trip", test_records_roundtrip},
        {"bad record skipped, kept on disk", test_bad_record_skipped_not_deleted},
        {"documents stored by digest, gc", test_docs_by_digest},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.state", cases);
}
