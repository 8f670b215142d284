/* test_rollout_store.c - the store's rollout tables (schema 8): the migration keeps older
 * data, operator labels and their bound, rollouts and their targets (progress, filters, the
 * active-rollout check), and the per-app states of the roll-ups. */
#include "mgo_test.h"
#include "pg.h"

#include <stdio.h>
#include <string.h>

#include "mgo/mgr_store.h"
#include "mgr_test_util.h"

static struct mgo_mgr_store *store;
static char dir[256];

static void open_fresh(void)
{
    mgo_test_tmpdir("rollout-store", dir);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &store), MGO_OK);
}

static void close_fresh(void)
{
    mgo_mgr_store_close(store);
    store = NULL;
    mgo_test_rm_rf(dir);
}

struct labels_seen {
    char text[256];
};

static mgo_err labels_visit(const char *key, const char *value, void *c)
{
    struct labels_seen *l = c;
    snprintf(l->text + strlen(l->text), sizeof l->text - strlen(l->text), "%s=%s;", key, value);
    return MGO_OK;
}

static const char *labels_of(const char *device, struct labels_seen *l)
{
    l->text[0] = '\0';
    CU_ASSERT_EQUAL(mgo_mgr_store_label_list(store, device, labels_visit, l), MGO_OK);
    return l->text;
}

static void test_migration_from_5(void)
{
    mgo_test_tmpdir("rollout-store", dir);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open_version(mgo_test_store(dir), 5, &store), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_schema_version(store), 5);
    static const uint8_t caps[] = {0x80};
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_caps(store, "dev1", caps, sizeof caps), MGO_OK);
    mgo_mgr_store_close(store);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &store), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_schema_version(store), MGO_MGR_STORE_SCHEMA_VERSION);
    CU_ASSERT_EQUAL(mgo_mgr_store_label_set(store, "dev1", "site", "p7", 64), MGO_OK);
    struct labels_seen l;
    CU_ASSERT_STRING_EQUAL(labels_of("dev1", &l), "site=p7;");
    close_fresh();
}

static void test_labels(void)
{
    open_fresh();
    static const uint8_t caps[] = {0x80};
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_caps(store, "dev1", caps, sizeof caps), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_label_set(store, "nobody", "a", "1", 64), MGO_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(mgo_mgr_store_label_set(store, "margo-monitor", "a", "1", 64),
                    MGO_ERR_NOT_FOUND);
    /* a bound of 3: three keys fit, a fourth does not, replacing one still does */
    CU_ASSERT_EQUAL(mgo_mgr_store_label_set(store, "dev1", "b", "2", 3), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_label_set(store, "dev1", "a", "1", 3), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_label_set(store, "dev1", "c", "3", 3), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_label_set(store, "dev1", "d", "4", 3), MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(mgo_mgr_store_label_set(store, "dev1", "a", "one", 3), MGO_OK);
    struct labels_seen l;
    CU_ASSERT_STRING_EQUAL(labels_of("dev1", &l), "a=one;b=2;c=3;");
    CU_ASSERT_EQUAL(mgo_mgr_store_label_delete(store, "dev1", "b"), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_label_delete(store, "dev1", "b"), MGO_ERR_NOT_FOUND);
    CU_ASSERT_STRING_EQUAL(labels_of("dev1", &l), "a=one;c=3;");
    close_fresh();
}

static struct mgo_mgr_rollout_row rollout_row(const char *id)
{
    struct mgo_mgr_rollout_row r = {
        .id = id,
        .app_id = "hello",
        .version = "2.0",
        .mode = "upgrade",
        .selector = "site=p7",
        .on_abort = "rollback",
        .offline_count = "skipped",
        .batch_size = 2,
        .max_in_flight = 0,
        .gate_timeout_s = 600,
        .offline_grace_s = 300,
        .fail_batch_count = -1,
        .fail_batch_percent = 10,
        .fail_total_count = 3,
        .fail_total_percent = -1,
        .app_failures_only = true,
        .state = "running",
        .reason = "",
        .batches = 2,
    };
    return r;
}

struct rollout_seen {
    int n;
    char ids[4][40];
    struct mgo_mgr_rollout_row last;
    char state[16], reason[64];
};

static mgo_err rollout_visit(const struct mgo_mgr_rollout_row *row, void *c)
{
    struct rollout_seen *s = c;
    if (s->n < 4)
        snprintf(s->ids[s->n], sizeof s->ids[0], "%s", row->id);
    s->n++;
    s->last = *row;
    snprintf(s->state, sizeof s->state, "%s", row->state);
    snprintf(s->reason, sizeof s->reason, "%s", row->reason);
    s->last.state = s->last.reason = NULL; /* valid only during the visit */
    s->last.id = s->last.app_id = s->last.version = NULL;
    s->last.mode = s->last.selector = s->last.on_abort = s->last.offline_count = NULL;
    s->last.parameters_json = NULL;
    return MGO_OK;
}

struct target_seen {
    char text[512];
};

static mgo_err target_visit(const struct mgo_mgr_target_row *t, void *c)
{
    struct target_seen *s = c;
    snprintf(s->text + strlen(s->text), sizeof s->text - strlen(s->text), "%s/%u/%s/%s;",
             t->device_id, t->batch, t->state, t->prev_parameters ? t->prev_parameters : "-");
    return MGO_OK;
}

static const char *targets_of(const char *id, int64_t batch, const char *state,
                              struct target_seen *s)
{
    s->text[0] = '\0';
    CU_ASSERT_EQUAL(mgo_mgr_store_target_list(store, id, batch, state, target_visit, s), MGO_OK);
    return s->text;
}

static void test_rollouts_and_targets(void)
{
    open_fresh();
    struct mgo_mgr_rollout_row a = rollout_row("r-a"), b = rollout_row("r-b");
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_put(store, &a), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_put(store, &a), MGO_ERR_EXISTS);
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_put(store, &b), MGO_OK);
    const char *devs[] = {"d1", "d2", "d3"};
    for (uint32_t i = 0; i < 3; i++) {
        struct mgo_mgr_target_row t = {.rollout_id = "r-a",
                                       .device_id = devs[i],
                                       .seq = i,
                                       .batch = i / 2,
                                       .state = "waiting"};
        CU_ASSERT_EQUAL(mgo_mgr_store_target_put(store, &t), MGO_OK);
    }
    /* d2 started: its previous revision is kept */
    struct mgo_mgr_target_row t = {.rollout_id = "r-a",
                                   .device_id = "d2",
                                   .seq = 1,
                                   .batch = 0,
                                   .state = "updating",
                                   .prev_version = "1.0",
                                   .prev_parameters = "{\"x\":1}",
                                   .manifest_version = 7};
    CU_ASSERT_EQUAL(mgo_mgr_store_target_put(store, &t), MGO_OK);
    struct target_seen ts;
    CU_ASSERT_STRING_EQUAL(targets_of("r-a", -1, NULL, &ts),
                           "d1/0/waiting/-;d2/0/updating/{\"x\":1};d3/1/waiting/-;");
    CU_ASSERT_STRING_EQUAL(targets_of("r-a", 1, NULL, &ts), "d3/1/waiting/-;");
    CU_ASSERT_STRING_EQUAL(targets_of("r-a", -1, "updating", &ts), "d2/0/updating/{\"x\":1};");

    struct rollout_seen rs = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_get(store, "r-a", rollout_visit, &rs), MGO_OK);
    CU_ASSERT_EQUAL(rs.last.targets, 3);
    CU_ASSERT_EQUAL(rs.last.fail_batch_count, -1);
    CU_ASSERT_EQUAL(rs.last.fail_batch_percent, 10);
    CU_ASSERT_EQUAL(rs.last.fail_total_count, 3);
    CU_ASSERT_TRUE(rs.last.app_failures_only);
    CU_ASSERT(rs.last.created_ms > 0);
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_get(store, "r-x", rollout_visit, &rs), MGO_ERR_NOT_FOUND);

    char active[MGO_UUID_STR_SIZE];
    CU_ASSERT_EQUAL(mgo_mgr_store_target_active(store, "d2", active), MGO_OK);
    CU_ASSERT_STRING_EQUAL(active, "r-a");
    CU_ASSERT_EQUAL(mgo_mgr_store_target_active(store, "d9", active), MGO_OK);
    CU_ASSERT_STRING_EQUAL(active, "");

    /* progress, then finished: no longer active */
    a.batch = 1;
    a.batch_started_ms = 11;
    a.state = "aborted";
    a.reason = "2 of 2 devices failed in batch 1";
    a.finished_ms = 22;
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_update(store, &a), MGO_OK);
    memset(&rs, 0, sizeof rs);
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_get(store, "r-a", rollout_visit, &rs), MGO_OK);
    CU_ASSERT_STRING_EQUAL(rs.state, "aborted");
    CU_ASSERT_STRING_EQUAL(rs.reason, "2 of 2 devices failed in batch 1");
    CU_ASSERT_EQUAL(rs.last.batch, 1);
    CU_ASSERT_EQUAL(rs.last.batch_started_ms, 11);
    CU_ASSERT_EQUAL(rs.last.finished_ms, 22);
    CU_ASSERT_EQUAL(mgo_mgr_store_target_active(store, "d2", active), MGO_OK);
    CU_ASSERT_STRING_EQUAL(active, "");
    struct mgo_mgr_rollout_row ghost = rollout_row("r-ghost");
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_update(store, &ghost), MGO_ERR_NOT_FOUND);

    /* lists: newest first; active only; pages */
    memset(&rs, 0, sizeof rs);
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_list(store, false, 10, 0, rollout_visit, &rs), MGO_OK);
    CU_ASSERT_EQUAL(rs.n, 2);
    CU_ASSERT_STRING_EQUAL(rs.ids[0], "r-b");
    CU_ASSERT_STRING_EQUAL(rs.ids[1], "r-a");
    memset(&rs, 0, sizeof rs);
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_list(store, true, 10, 0, rollout_visit, &rs), MGO_OK);
    CU_ASSERT_EQUAL(rs.n, 1);
    CU_ASSERT_STRING_EQUAL(rs.ids[0], "r-b");
    memset(&rs, 0, sizeof rs);
    CU_ASSERT_EQUAL(mgo_mgr_store_rollout_list(store, false, 1, 1, rollout_visit, &rs), MGO_OK);
    CU_ASSERT_EQUAL(rs.n, 1);
    CU_ASSERT_STRING_EQUAL(rs.ids[0], "r-a");
    close_fresh();
}

struct states_seen {
    char text[256];
};

static mgo_err states_visit(const char *app, const char *version, const char *state,
                            const char *failed_json, void *c)
{
    struct states_seen *s = c;
    snprintf(s->text + strlen(s->text), sizeof s->text - strlen(s->text), "%s/%s/%s/%s;", app,
             version, state[0] ? state : "-", failed_json ? "json" : "-");
    return MGO_OK;
}

static void test_app_states(void)
{
    open_fresh();
    static const uint8_t doc[] = {0x80};
    struct mgo_mgr_deployment_row d1 = mgr_test_dep_row("u1", "dev1", doc, sizeof doc, "s", 1);
    struct mgo_mgr_deployment_row d2 = mgr_test_dep_row("u2", "dev2", doc, sizeof doc, "s", 1);
    struct mgo_mgr_deployment_row d3 = mgr_test_dep_row("u3", "dev3", doc, sizeof doc, "s", 1);
    d3.desired = MGO_MGR_DESIRED_REMOVED; /* left out */
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(store, &d1), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(store, &d2), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(store, &d3), MGO_OK);
    struct mgo_mgr_status_row st = {.deployment_id = "u2",
                                    .device_id = "dev2",
                                    .state = "failed",
                                    .doc_json = "{\"status\":{\"state\":\"failed\"}}"};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(store, &st, NULL), MGO_OK);
    struct states_seen s = {""};
    CU_ASSERT_EQUAL(mgo_mgr_store_app_states(store, states_visit, &s), MGO_OK);
    CU_ASSERT_STRING_EQUAL(s.text, "hello/1.0/-/-;hello/1.0/failed/json;");
    close_fresh();
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"migration from schema 5", test_migration_from_5},
        {"operator labels", test_labels},
        {"rollouts and targets", test_rollouts_and_targets},
        {"app states", test_app_states},
        {NULL, NULL},
    };
    mgo_test_add_suite("manager rollout store", cases);
}
