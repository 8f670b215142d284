/* test_store.c - the manager's SQLite store: migrations, manifestVersion monotonicity
 * across restarts, transaction atomicity, journal (boot, seq) ordering. */
#include "mgo_test.h"
#include "pg.h"

#include <string.h>

#include "mgo/mgr_store.h"
#include "mgr_test_util.h"

static struct mgo_mgr_deployment_row dep_row(const char *id, const char *device,
                                             uint64_t manifest_version)
{
    static const uint8_t doc[] = {0x80};
    struct mgo_mgr_deployment_row r =
        mgr_test_dep_row(id, device, doc, sizeof doc, "sha256:00", manifest_version);
    r.parameters_json = "{\"greeting\":\"hi\"}";
    return r;
}

static mgo_err count_dep_visit(const struct mgo_mgr_deployment_row *row, void *ctx)
{
    (void)row;
    (*(int *)ctx)++;
    return MGO_OK;
}

static mgo_err count_app_visit(const struct mgo_mgr_app_row *row, void *ctx)
{
    (void)row;
    (*(int *)ctx)++;
    return MGO_OK;
}

struct seen_ids {
    char ids[8][16];
    uint64_t versions[8];
    size_t len;
};

static mgo_err collect_ids(const char *id, uint64_t version, uint64_t published, void *ctx)
{
    (void)published;
    struct seen_ids *seen = ctx;
    if (seen->len == 8)
        return MGO_ERR_LIMIT;
    snprintf(seen->ids[seen->len], sizeof seen->ids[0], "%s", id);
    seen->versions[seen->len++] = version;
    return MGO_OK;
}

static mgo_err count_id_visit(const char *id, uint64_t version, uint64_t published, void *ctx)
{
    (void)published;
    (void)id;
    (void)version;
    (*(int *)ctx)++;
    return MGO_OK;
}

static int count_deployments(struct mgo_mgr_store *s, const char *device)
{
    int n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_list(s, device, NULL, true, count_dep_visit, &n),
                    MGO_OK);
    return n;
}

static void test_open_empty_reaches_newest_schema(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_schema_version(s), MGO_MGR_STORE_SCHEMA_VERSION);
    /* every table of the newest schema is usable */
    CU_ASSERT_EQUAL(mgo_mgr_store_event_add(s, "dev1", "t", "info", "m"), MGO_OK);
    uint64_t n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_event_count(s, "dev1", &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 1);
    mgo_mgr_store_close(s);
    /* reopening does not migrate again and keeps data */
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_event_count(s, "dev1", &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 1);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

static void test_migrate_from_v1_keeps_data(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open_version(mgo_test_store(dir), 1, &s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_schema_version(s), 1);
    struct mgo_mgr_app_row app = {.id = "hello",
                                  .version = "1.0",
                                  .name = "Hello",
                                  .source = (const uint8_t *)"id: hello",
                                  .source_len = 9,
                                  .doc = (const uint8_t *)"\x80",
                                  .doc_len = 1};
    CU_ASSERT_EQUAL(mgo_mgr_store_app_put(s, &app), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_caps(s, "dev1", (const uint8_t *)"\x80", 1), MGO_OK);
    uint64_t v = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
    struct mgo_mgr_deployment_row d = dep_row("dep-1", "dev1", v);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &d), MGO_OK);
    /* schema-2 features are refused on a v1 store, not half-applied */
    struct mgo_mgr_status_row st = {.deployment_id = "dep-1",
                                    .device_id = "dev1",
                                    .state = "installed",
                                    .has_journal = true,
                                    .boot = 1,
                                    .seq = 1,
                                    .doc_json = "{}"};
    CU_ASSERT_NOT_EQUAL(mgo_mgr_store_status_apply(s, &st, NULL), MGO_OK);
    mgo_mgr_store_close(s);

    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_schema_version(s), MGO_MGR_STORE_SCHEMA_VERSION);
    CU_ASSERT_EQUAL(mgo_mgr_store_app_get(s, "hello", "1.0", NULL, NULL), MGO_OK);
    CU_ASSERT_EQUAL(count_deployments(s, "dev1"), 1);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(s, "dev1", &v, NULL), MGO_OK);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(s, &st, NULL), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_status_get(s, "dep-1", NULL, NULL), MGO_OK);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

static void test_refuses_newer_schema(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    mgo_mgr_store_close(s);
    /* pretend a future program wrote schema 99 */
    CU_ASSERT_FATAL(mgo_test_store_sql(dir, "UPDATE schema_version SET version = 99"));
    s = NULL;
    CU_ASSERT_EQUAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_ERR_INVALID);
    CU_ASSERT_PTR_NULL(s);
    mgo_test_rm_rf(dir);
}

static void test_manifest_version_monotonic_across_restart(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    uint64_t last = 0;
    for (int restart = 0; restart < 3; restart++) {
        CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
        for (int i = 0; i < 4; i++) {
            uint64_t v = 0;
            CU_ASSERT_EQUAL(mgo_mgr_store_begin(s), MGO_OK);
            CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
            CU_ASSERT_EQUAL(mgo_mgr_store_commit(s), MGO_OK);
            CU_ASSERT(v > last);
            last = v;
        }
        /* a change started but never committed (crash) must not lower the next version */
        uint64_t lost = 0;
        CU_ASSERT_EQUAL(mgo_mgr_store_begin(s), MGO_OK);
        CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &lost), MGO_OK);
        mgo_mgr_store_close(s); /* closes with the savepoint open */
    }
    CU_ASSERT_EQUAL(last, 12);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    uint64_t v = 0, published = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(s, "dev1", &v, &published), MGO_OK);
    CU_ASSERT_EQUAL(v, 12);
    CU_ASSERT_EQUAL(published, 0);
    /* another device has its own counter */
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev2", &v), MGO_OK);
    CU_ASSERT_EQUAL(v, 1);
    /* published tracking: never lowered */
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(s, "dev1", 12), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(s, "dev1", 3), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(s, "dev1", &v, &published), MGO_OK);
    CU_ASSERT_EQUAL(published, 12);
    int unpublished = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_page(s, true, "", 100, count_id_visit, &unpublished),
                    MGO_OK);
    CU_ASSERT_EQUAL(unpublished, 1); /* dev2 only */
    int all = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_page(s, false, "", 100, count_id_visit, &all), MGO_OK);
    CU_ASSERT_EQUAL(all, 2);
    /* pages in device id order, each after the last id of the one before */
    struct seen_ids page = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_page(s, false, "", 1, collect_ids, &page), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(page.len, 1);
    CU_ASSERT_STRING_EQUAL(page.ids[0], "dev1");
    CU_ASSERT_EQUAL(page.versions[0], 12u);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_page(s, false, "dev1", 5, collect_ids, &page), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(page.len, 2);
    CU_ASSERT_STRING_EQUAL(page.ids[1], "dev2");
    CU_ASSERT_EQUAL(page.versions[1], 1u);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_page(s, true, "dev2", 5, collect_ids, &page), MGO_OK);
    CU_ASSERT_EQUAL(page.len, 2); /* nothing after the last */
    /* a device bound to HTTP polls for its manifest: never in a publishing walk */
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev3", &v), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_device_set_binding(s, "dev3", MGO_MGR_BINDING_HTTP), MGO_OK);
    page.len = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_page(s, true, "", 5, collect_ids, &page), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(page.len, 1);
    CU_ASSERT_STRING_EQUAL(page.ids[0], "dev2");
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

static void test_transaction_atomicity(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    /* a deploy to two devices that fails half-way leaves nothing behind */
    uint64_t v = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_begin(s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
    struct mgo_mgr_deployment_row d1 = dep_row("dep-1", "dev1", v);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &d1), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev2", &v), MGO_OK);
    mgo_mgr_store_rollback(s);
    CU_ASSERT_EQUAL(count_deployments(s, NULL), 0);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(s, "dev1", &v, NULL), MGO_OK);
    CU_ASSERT_EQUAL(v, 0);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(s, "dev2", &v, NULL), MGO_OK);
    CU_ASSERT_EQUAL(v, 0);
    /* nested: an inner failure rolled back, the outer commit keeps the rest */
    CU_ASSERT_EQUAL(mgo_mgr_store_begin(s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &d1), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_begin(s), MGO_OK);
    struct mgo_mgr_deployment_row d2 = dep_row("dep-2", "dev1", v);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &d2), MGO_OK);
    mgo_mgr_store_rollback(s);
    CU_ASSERT_EQUAL(mgo_mgr_store_commit(s), MGO_OK);
    CU_ASSERT_EQUAL(count_deployments(s, "dev1"), 1);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_get(s, "dep-2", NULL, NULL), MGO_ERR_NOT_FOUND);
    mgo_mgr_store_close(s);
    /* committed data survives reopen */
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    CU_ASSERT_EQUAL(count_deployments(s, "dev1"), 1);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

struct states {
    char list[8][16];
    int n;
};

static mgo_err collect_state(const struct mgo_mgr_status_row *row, void *ctx)
{
    struct states *st = ctx;
    if (st->n < 8)
        snprintf(st->list[st->n++], 16, "%s", row->state);
    return MGO_OK;
}

struct seqs {
    size_t n;
    uint64_t first, last;
};

static mgo_err collect_seq(const struct mgo_mgr_status_row *row, void *ctx)
{
    struct seqs *q = ctx;
    if (q->n++ == 0)
        q->first = row->seq;
    q->last = row->seq;
    return MGO_OK;
}

static void test_status_journal_order(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    struct mgo_mgr_status_row r = {.deployment_id = "dep-1",
                                   .device_id = "dev1",
                                   .state = "pending",
                                   .has_journal = true,
                                   .boot = 2,
                                   .seq = 1,
                                   .doc_json = "{}"};
    struct mgo_mgr_status_outcome out = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(s, &r, &out), MGO_OK);
    CU_ASSERT_TRUE(out.changed); /* the first status */
    r.state = "installing";
    r.seq = 2;
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(s, &r, &out), MGO_OK);
    CU_ASSERT_TRUE(out.changed);
    /* the same state again (a component moved on) is stored, but is no change of state */
    r.seq = 3;
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(s, &r, &out), MGO_OK);
    CU_ASSERT_FALSE(out.changed);
    CU_ASSERT(out.newest && out.has_position && !out.position.gap_opened);
    CU_ASSERT(out.position.boot == 2 && out.position.seq == 3);
    /* duplicate and older positions are refused and change nothing */
    r.state = "failed";
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(s, &r, NULL), MGO_ERR_STALE);
    r.seq = 1;
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(s, &r, NULL), MGO_ERR_STALE);
    r.boot = 1;
    r.seq = 99;
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(s, &r, NULL), MGO_ERR_STALE);
    /* a new boot starts its sequence again */
    r.boot = 3;
    r.seq = 1;
    r.state = "installed";
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(s, &r, NULL), MGO_OK);
    mgo_mgr_store_close(s);

    /* after a restart the journal position is still known */
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(s, &r, NULL), MGO_ERR_STALE);
    struct states hist = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_history(s, "dep-1", collect_state, &hist), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(hist.n, 4);
    CU_ASSERT_STRING_EQUAL(hist.list[0], "pending");
    CU_ASSERT_STRING_EQUAL(hist.list[1], "installing");
    CU_ASSERT_STRING_EQUAL(hist.list[2], "installing");
    CU_ASSERT_STRING_EQUAL(hist.list[3], "installed");
    struct states cur = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_get(s, "dep-1", collect_state, &cur), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(cur.n, 1);
    CU_ASSERT_STRING_EQUAL(cur.list[0], "installed");
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

static void test_status_history_limit(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    mgo_mgr_store_set_history_limit(s, 5);
    struct mgo_mgr_status_row a = {.deployment_id = "dep-a",
                                   .device_id = "dev1",
                                   .state = "installing",
                                   .has_journal = true,
                                   .boot = 1,
                                   .doc_json = "{}"};
    struct mgo_mgr_status_row b = a;
    b.deployment_id = "dep-b";
    b.device_id = "dev2"; /* a journal position names one status of one device */
    for (uint64_t seq = 1; seq <= 100; seq++) {
        a.seq = b.seq = seq;
        CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_status_apply(s, &a, NULL), MGO_OK);
        if (seq <= 3) /* dep-b stays under the limit */
            CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_status_apply(s, &b, NULL), MGO_OK);
    }
    struct seqs ha = {0}, hb = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_history(s, "dep-a", collect_seq, &ha), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_status_history(s, "dep-b", collect_seq, &hb), MGO_OK);
    /* at most the limit plus one pruning interval (5 here), the newest kept; nothing of
     * dep-b is lost */
    CU_ASSERT(ha.n >= 5 && ha.n < 10);
    CU_ASSERT_EQUAL(ha.last, 100);
    CU_ASSERT_EQUAL(ha.first, 100 - ha.n + 1);
    CU_ASSERT_EQUAL(hb.n, 3);
    mgo_mgr_store_close(s);

    /* 0 keeps everything */
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    for (uint64_t seq = 101; seq <= 120; seq++) {
        a.seq = seq;
        CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_status_apply(s, &a, NULL), MGO_OK);
    }
    struct seqs q = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_history(s, "dep-a", collect_seq, &q), MGO_OK);
    CU_ASSERT_EQUAL(q.n, ha.n + 20);
    CU_ASSERT_EQUAL(q.last, 120);
    CU_ASSERT(q.first > 90); /* the newest reports were kept, the oldest deleted */
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

static void test_app_catalog_rules(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    struct mgo_mgr_app_row app = {.id = "hello",
                                  .version = "1.0",
                                  .name = "Hello",
                                  .source = (const uint8_t *)"x",
                                  .source_len = 1,
                                  .doc = (const uint8_t *)"\x80",
                                  .doc_len = 1};
    CU_ASSERT_EQUAL(mgo_mgr_store_app_put(s, &app), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_app_put(s, &app), MGO_ERR_EXISTS);
    app.version = "2.0";
    CU_ASSERT_EQUAL(mgo_mgr_store_app_put(s, &app), MGO_OK);
    int n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_app_list(s, NULL, count_app_visit, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 2);
    /* deployed -> refused; removed deployments do not count */
    struct mgo_mgr_deployment_row d = dep_row("dep-1", "dev1", 1);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &d), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_app_delete(s, "hello", NULL), MGO_ERR_CONFLICT);
    CU_ASSERT_EQUAL(mgo_mgr_store_app_delete(s, "hello", "2.0"), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_app_delete(s, "hello", "2.0"), MGO_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_set_desired(s, "dep-1", MGO_MGR_DESIRED_REMOVED),
                    MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_app_delete(s, "hello", NULL), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_app_get(s, "hello", NULL, NULL, NULL), MGO_ERR_NOT_FOUND);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

/* Stops after *ctx rows with MGO_ERR_NOMEM, as a visitor whose allocation failed would. */
static mgo_err fail_after_visit(const struct mgo_mgr_deployment_row *row, void *ctx)
{
    (void)row;
    int *left = ctx;
    if (*left == 0)
        return MGO_ERR_NOMEM;
    (*left)--;
    return MGO_OK;
}

static void test_visitor_error_ends_the_walk(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    struct mgo_mgr_deployment_row r1 = dep_row("dep-1", "dev1", 1);
    struct mgo_mgr_deployment_row r2 = dep_row("dep-2", "dev1", 2);
    struct mgo_mgr_deployment_row r3 = dep_row("dep-3", "dev1", 3);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &r1), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &r2), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &r3), MGO_OK);
    int left = 1;
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_list(s, "dev1", NULL, true, fail_after_visit, &left),
                    MGO_ERR_NOMEM);
    CU_ASSERT_EQUAL(left, 0); /* one row taken, the second refused, the third never offered */
    /* the statement was given back: the store keeps working */
    CU_ASSERT_EQUAL(count_deployments(s, "dev1"), 3);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

static void test_failed_commit_rolls_back(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_begin(s), MGO_OK);
    struct mgo_mgr_deployment_row r1 = dep_row("dep-1", "dev1", 1);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &r1), MGO_OK);
    mgo_mgr_store_fail_commits(s, 1);
    CU_ASSERT_EQUAL(mgo_mgr_store_commit(s), MGO_ERR_IO);
    CU_ASSERT_EQUAL(count_deployments(s, "dev1"), 0);
    /* the hook fired once: the next commit works */
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &r1), MGO_OK);
    CU_ASSERT_EQUAL(count_deployments(s, "dev1"), 1);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

static mgo_err collect_pos(const struct mgo_mgr_status_row *row, void *ctx)
{
    struct seqs *q = ctx;
    q->n++;
    if (row->seq <= q->last)
        q->first = 0; /* marks "out of order" */
    q->last = row->seq;
    return MGO_OK;
}

struct receipt_seen {
    size_t n;
    char epoch[MGO_MGR_EPOCH_SIZE];
    uint64_t boot, seq;
};

static mgo_err collect_receipt(const char *device, const char *epoch, uint64_t boot, uint64_t seq,
                               void *ctx)
{
    struct receipt_seen *r = ctx;
    if (strcmp(device, "dev1") == 0) {
        snprintf(r->epoch, sizeof r->epoch, "%s", epoch);
        r->boot = boot;
        r->seq = seq;
    }
    r->n++;
    return MGO_OK;
}

/* protocol.md §6.3: a gap in a device's positions holds its receipt back and asks for a
 * replay (a new epoch) once; replays fill it, in any order, each once; the history lists
 * journal order; a refused status still moves the position on. */
static void test_status_positions_gap_and_replay(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    mgo_mgr_store_set_epoch(s, "00000000000000aa");
    CU_ASSERT_EQUAL(mgo_mgr_store_receipts_reset(s), MGO_OK);
    struct mgo_mgr_status_row r = {.deployment_id = "dep-1",
                                   .device_id = "dev1",
                                   .state = "installing",
                                   .has_journal = true,
                                   .boot = 1,
                                   .doc_json = "{}"};
    struct mgo_mgr_status_outcome out;
    static const uint64_t order[] = {1, 2, 5, 4, 3};
    for (size_t i = 0; i < 5; i++) {
        memset(&out, 0, sizeof out);
        snprintf(out.position.new_epoch, sizeof out.position.new_epoch, "00000000000000b%zu", i);
        r.seq = order[i];
        CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_status_apply(s, &r, &out), MGO_OK);
        switch (order[i]) {
        case 5: /* the gap opens: receipt held at (1, 2), new epoch */
            CU_ASSERT(out.newest && out.position.gap_opened);
            CU_ASSERT(out.position.seq == 2);
            CU_ASSERT_STRING_EQUAL(out.position.epoch, "00000000000000b2");
            break;
        case 4: /* a replay older than the current status: history only, no second request */
            CU_ASSERT(!out.newest && !out.changed && !out.position.gap_opened);
            CU_ASSERT(out.position.seq == 2);
            CU_ASSERT_STRING_EQUAL(out.position.epoch, "00000000000000b2");
            break;
        case 3: /* the gap fills: the receipt jumps over everything handled */
            CU_ASSERT(!out.newest && !out.position.gap_opened);
            CU_ASSERT(out.position.seq == 5);
            break;
        default:
            CU_ASSERT(out.newest && !out.position.gap_opened);
            CU_ASSERT_STRING_EQUAL(out.position.epoch, "00000000000000aa");
        }
    }
    /* each position once */
    for (uint64_t q = 1; q <= 5; q++) {
        r.seq = q;
        CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(s, &r, NULL), MGO_ERR_STALE);
    }
    struct seqs h = {.first = 1};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_history(s, "dep-1", collect_pos, &h), MGO_OK);
    CU_ASSERT_EQUAL(h.n, 5);
    CU_ASSERT(h.first != 0); /* journal order */
    /* the newest stays the current status */
    struct seqs cur = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_get(s, "dep-1", collect_seq, &cur), MGO_OK);
    CU_ASSERT_EQUAL(cur.last, 5);
    /* a status refused for good (unknown deployment) moves the position on */
    struct mgo_mgr_position pos = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_position_take(s, "dev1", 1, 6, &pos), MGO_OK);
    CU_ASSERT(pos.seq == 6 && !pos.gap_opened);
    CU_ASSERT_EQUAL(mgo_mgr_store_position_take(s, "dev1", 1, 6, &pos), MGO_ERR_STALE);
    mgo_mgr_store_close(s);

    /* a new run: receipts carry its epoch, positions are kept */
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    mgo_mgr_store_set_epoch(s, "00000000000000cc");
    CU_ASSERT_EQUAL(mgo_mgr_store_receipts_reset(s), MGO_OK);
    struct receipt_seen seen = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_receipts_list(s, collect_receipt, &seen), MGO_OK);
    CU_ASSERT_EQUAL(seen.n, 1);
    CU_ASSERT_STRING_EQUAL(seen.epoch, "00000000000000cc");
    CU_ASSERT(seen.boot == 1 && seen.seq == 6);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

static mgo_err dropped_visit(const struct mgo_mgr_device_row *row, void *ctx)
{
    *(uint64_t *)ctx = row->positions_dropped;
    return MGO_OK;
}

/* Positions waiting beyond a gap are bounded (schema 5, MGO_MGR_AHEAD_LIMIT; 4 here): at the
 * limit they are kept, one past it is not kept (counted; not receipted, so the agent replays
 * it), and once the gap fills the receipt moves over the kept ones; the one not kept is then
 * taken normally. Also: events past the per-device limit are pruned. */
static void test_gap_positions_and_events_bounded(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    mgo_mgr_store_set_epoch(s, "00000000000000aa");
    mgo_mgr_store_set_ahead_limit(s, 4);
    struct mgo_mgr_position pos;
    memset(&pos, 0, sizeof pos);
    CU_ASSERT_EQUAL(mgo_mgr_store_position_take(s, "dev1", 1, 1, &pos), MGO_OK);
    for (uint64_t q = 3; q <= 6; q++) { /* 2 is missing: 4 wait, the limit */
        memset(&pos, 0, sizeof pos);
        CU_ASSERT_EQUAL(mgo_mgr_store_position_take(s, "dev1", 1, q, &pos), MGO_OK);
        CU_ASSERT(pos.boot == 1 && pos.seq == 1);
    }
    uint64_t dropped = 9;
    CU_ASSERT_EQUAL(mgo_mgr_store_device_get(s, "dev1", dropped_visit, &dropped), MGO_OK);
    CU_ASSERT_EQUAL(dropped, 0u);
    memset(&pos, 0, sizeof pos);
    CU_ASSERT_EQUAL(mgo_mgr_store_position_take(s, "dev1", 1, 7, &pos), MGO_OK); /* one past */
    CU_ASSERT(pos.seq == 1 && !pos.gap_opened);
    CU_ASSERT_EQUAL(mgo_mgr_store_device_get(s, "dev1", dropped_visit, &dropped), MGO_OK);
    CU_ASSERT_EQUAL(dropped, 1u);
    memset(&pos, 0, sizeof pos);
    CU_ASSERT_EQUAL(mgo_mgr_store_position_take(s, "dev1", 1, 2, &pos), MGO_OK); /* gap fills */
    CU_ASSERT(pos.seq == 6);
    memset(&pos, 0, sizeof pos);
    CU_ASSERT_EQUAL(mgo_mgr_store_position_take(s, "dev1", 1, 7, &pos), MGO_OK); /* its replay */
    CU_ASSERT(pos.seq == 7);

    mgo_mgr_store_set_event_limit(s, 10);
    for (int i = 0; i < 100; i++)
        CU_ASSERT_EQUAL(mgo_mgr_store_event_add(s, "dev1", "t", "info", "m"), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_event_add(s, "dev2", "t", "info", "m"), MGO_OK);
    uint64_t n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_event_count(s, "dev1", &n), MGO_OK);
    CU_ASSERT(n >= 10 && n < 20);
    CU_ASSERT_EQUAL(mgo_mgr_store_event_count(s, "dev2", &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 1u);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

/* The one read of an ingested status: the device's binding and the deployment's owner. */
static void test_status_target(void)
{
    char dir[256];
    mgo_test_tmpdir("mgr", dir);
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &s), MGO_OK);
    struct mgo_mgr_status_target t;
    /* neither the device nor the deployment */
    CU_ASSERT_EQUAL(mgo_mgr_store_status_target(s, "dev1", "dep-1", &t), MGO_OK);
    CU_ASSERT_FALSE(t.http);
    CU_ASSERT_FALSE(t.found);
    uint64_t v = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
    struct mgo_mgr_deployment_row d = dep_row("dep-1", "dev1", v);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &d), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_status_target(s, "dev1", "dep-1", &t), MGO_OK);
    CU_ASSERT_FALSE(t.http);
    CU_ASSERT_TRUE(t.found);
    CU_ASSERT_STRING_EQUAL(t.device, "dev1");
    CU_ASSERT_EQUAL(t.desired, MGO_MGR_DESIRED_PRESENT);
    CU_ASSERT_EQUAL(t.manifest_version, 2u);
    /* another device's status naming it: the owner is told, the binding is the topic's */
    CU_ASSERT_EQUAL(mgo_mgr_store_device_set_binding(s, "dev2", MGO_MGR_BINDING_HTTP), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_status_target(s, "dev2", "dep-1", &t), MGO_OK);
    CU_ASSERT_TRUE(t.http);
    CU_ASSERT_TRUE(t.found);
    CU_ASSERT_STRING_EQUAL(t.device, "dev1");
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_set_desired(s, "dep-1", MGO_MGR_DESIRED_REMOVING),
                    MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_status_target(s, "dev2", "dep-9", &t), MGO_OK);
    CU_ASSERT_TRUE(t.http);
    CU_ASSERT_FALSE(t.found);
    CU_ASSERT_EQUAL(mgo_mgr_store_status_target(s, "dev1", "dep-1", &t), MGO_OK);
    CU_ASSERT_EQUAL(t.desired, MGO_MGR_DESIRED_REMOVING);
    mgo_mgr_store_close(s);
    mgo_test_rm_rf(dir);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"open empty reaches newest schema", test_open_empty_reaches_newest_schema},
        {"migrate from v1 keeps data", test_migrate_from_v1_keeps_data},
        {"refuses newer schema", test_refuses_newer_schema},
        {"manifestVersion monotonic across restart",
         test_manifest_version_monotonic_across_restart},
        {"transaction atomicity", test_transaction_atomicity},
        {"status journal order", test_status_journal_order},
        {"positions: gap, replay, receipts", test_status_positions_gap_and_replay},
        {"gap positions and events bounded per device", test_gap_positions_and_events_bounded},
        {"status history limit", test_status_history_limit},
        {"app catalog rules", test_app_catalog_rules},
        {"visitor error ends the walk", test_visitor_error_ends_the_walk},
        {"failed commit rolls back", test_failed_commit_rolls_back},
        {"status target: binding and deployment owner in one read", test_status_target},
        {NULL, NULL},
    };
    mgo_test_add_suite("manager store", cases);
}
