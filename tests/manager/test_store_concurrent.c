/* test_store_concurrent.c - several managers on one PostgreSQL database (docs/architecture.md
 * "Store"): two store handles, two connections, two threads working on the same devices at
 * once; no manifestVersion is handed out twice and every journal position is taken exactly
 * once. Also: a failed statement inside a transaction, rolled back to its savepoint, leaves
 * the transaction usable (PostgreSQL aborts the whole transaction on an error). Always runs
 * against a private PostgreSQL cluster (tests/support/pg.h). */
#include "mgo_test.h"
#include "pg.h"

#include <pthread.h>
#include <string.h>

#include "manager_thread.h"
#include "mgo/mgr_store.h"
#include "mgr_test_util.h"

#define DEVICES 3
#define ROUNDS 150 /* bumps and positions per device and thread */

struct worker {
    struct mgo_mgr_store *s;
    uint64_t versions[DEVICES][ROUNDS];
    unsigned taken[DEVICES][ROUNDS + 1]; /* positions (1, seq) this worker took */
    unsigned errors;
};

static const char *const DEVS[DEVICES] = {"dev-a", "dev-b", "dev-c"};

static void *work(void *arg)
{
    struct worker *w = arg;
    for (unsigned r = 0; r < ROUNDS; r++) {
        for (unsigned d = 0; d < DEVICES; d++) {
            uint64_t v = 0;
            if (mgo_mgr_store_manifest_bump(w->s, DEVS[d], &v) == MGO_OK)
                w->versions[d][r] = v;
            else
                w->errors++;
            struct mgo_mgr_position pos;
            memset(&pos, 0, sizeof pos);
            /* both workers offer every position in order: one of them takes it */
            mgo_err err = mgo_mgr_store_position_take(w->s, DEVS[d], 1, r + 1, &pos);
            if (err == MGO_OK)
                w->taken[d][r + 1]++;
            else if (err != MGO_ERR_STALE)
                w->errors++;
        }
    }
    return NULL;
}

static void test_two_managers_same_devices(void)
{
    const char *url = mgo_test_pg_new_db();
    static struct worker w[2];
    memset(w, 0, sizeof w);
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(url, &w[i].s), MGO_OK);
    CU_ASSERT_STRING_EQUAL(mgo_mgr_store_driver(w[0].s), "postgresql");
    pthread_t t[2];
    for (int i = 0; i < 2; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, work, &w[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CU_ASSERT_EQUAL(w[0].errors, 0u);
    CU_ASSERT_EQUAL(w[1].errors, 0u);
    for (unsigned d = 0; d < DEVICES; d++) {
        /* 2 * ROUNDS bumps: each version 1..2*ROUNDS handed out exactly once */
        static unsigned seen[2 * ROUNDS + 1];
        memset(seen, 0, sizeof seen);
        unsigned repeated = 0, out_of_range = 0;
        for (int i = 0; i < 2; i++) {
            for (unsigned r = 0; r < ROUNDS; r++) {
                uint64_t v = w[i].versions[d][r];
                if (v < 1 || v > 2 * ROUNDS)
                    out_of_range++;
                else if (seen[v]++ > 0)
                    repeated++;
            }
        }
        CU_ASSERT_EQUAL(repeated, 0u);
        CU_ASSERT_EQUAL(out_of_range, 0u);
        unsigned twice = 0, never = 0;
        for (unsigned q = 1; q <= ROUNDS; q++) {
            unsigned n = w[0].taken[d][q] + w[1].taken[d][q];
            twice += n > 1;
            never += n == 0;
        }
        CU_ASSERT_EQUAL(twice, 0u);
        CU_ASSERT_EQUAL(never, 0u);
        uint64_t version = 0;
        CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(w[0].s, DEVS[d], &version, NULL), MGO_OK);
        CU_ASSERT_EQUAL(version, 2 * ROUNDS);
    }
    for (int i = 0; i < 2; i++)
        mgo_mgr_store_close(w[i].s);
}

static mgo_err count_dep_visit(const struct mgo_mgr_deployment_row *row, void *ctx)
{
    (void)row;
    (*(int *)ctx)++;
    return MGO_OK;
}

static void test_error_inside_transaction(void)
{
    const char *url = mgo_test_pg_new_db();
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(url, &s), MGO_OK);
    struct mgo_mgr_app_row app = {
        .id = "hello", .version = "1.0", .source = (const uint8_t *)"x", .source_len = 1};
    CU_ASSERT_EQUAL(mgo_mgr_store_app_put(s, &app), MGO_OK);
    static const uint8_t doc[] = {0x80};
    struct mgo_mgr_deployment_row d1 = mgr_test_dep_row("dep-1", "dev1", doc, sizeof doc, "s", 1);
    struct mgo_mgr_deployment_row d2 = mgr_test_dep_row("dep-2", "dev1", doc, sizeof doc, "s", 2);
    CU_ASSERT_EQUAL(mgo_mgr_store_begin(s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &d1), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_begin(s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_app_put(s, &app), MGO_ERR_EXISTS); /* a failed statement */
    mgo_mgr_store_rollback(s);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(s, &d2), MGO_OK); /* still usable */
    CU_ASSERT_EQUAL(mgo_mgr_store_commit(s), MGO_OK);
    int n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_list(s, "dev1", NULL, true, count_dep_visit, &n),
                    MGO_OK);
    CU_ASSERT_EQUAL(n, 2);
    /* an error of the outermost level: the transaction is rolled back, the next one works */
    CU_ASSERT_EQUAL(mgo_mgr_store_begin(s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_app_put(s, &app), MGO_ERR_EXISTS);
    mgo_mgr_store_rollback(s);
    uint64_t v = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(v, 1u);
    mgo_mgr_store_close(s);
}

/* Two managers' ingest batches crossing on two devices (mgo_mgr_store_begin_batch): each
 * holds one device's row lock and asks for the other's. Neither waits (no deadlock, no
 * second of PostgreSQL's deadlock detection): both calls fail at once with MGO_ERR_BUSY, undone,
 * and each batch commits what it has; in a new batch the lock is waited for and taken. A plain
 * transaction (not a batch) would wait. */
static mgo_err copy_device(const struct mgo_mgr_device_row *row, void *ctx)
{
    struct mgo_mgr_device_row *out = ctx;
    out->boot = row->boot;
    out->online = row->online;
    return MGO_OK;
}

static void test_batches_never_deadlock(void)
{
    const char *url = mgo_test_pg_new_db();
    struct mgo_mgr_store *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(url, &a), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(url, &b), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_presence(a, "dev-x", true, 1), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_presence(a, "dev-y", true, 1), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_begin_batch(a), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_begin_batch(b), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_presence(a, "dev-x", false, 2), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_presence(b, "dev-y", false, 3), MGO_OK);
    /* one thread drives both: a wait would last until statement_timeout and fail otherwise */
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_presence(a, "dev-y", true, 4), MGO_ERR_BUSY);
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_presence(b, "dev-x", true, 5), MGO_ERR_BUSY);
    /* the batches are still usable: what they did before is kept */
    struct mgo_mgr_position pos;
    memset(&pos, 0, sizeof pos);
    snprintf(pos.new_epoch, sizeof pos.new_epoch, "e1");
    CU_ASSERT_EQUAL(mgo_mgr_store_position_take(a, "dev-x", 1, 1, &pos), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_commit(a), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_commit(b), MGO_OK);
    /* a new batch waits for nothing now and takes the lock */
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_begin_batch(a), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_device_put_presence(a, "dev-y", true, 4), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_commit(a), MGO_OK);
    struct mgo_mgr_device_row row = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_device_get(b, "dev-x", copy_device, &row), MGO_OK);
    CU_ASSERT_EQUAL(row.boot, 2u); /* a's first change; b's refused one is not there */
    CU_ASSERT_EQUAL(mgo_mgr_store_device_get(b, "dev-y", copy_device, &row), MGO_OK);
    CU_ASSERT_EQUAL(row.boot, 4u);
    CU_ASSERT_TRUE(row.online);
    mgo_mgr_store_close(a);
    mgo_mgr_store_close(b);
}

struct opener {
    const char *url;
    struct mgo_mgr_store *s;
    mgo_err err;
};

static void *open_store(void *arg)
{
    struct opener *o = arg;
    o->err = mgo_mgr_store_open(o->url, &o->s);
    return NULL;
}

/* Two managers starting together on a new database: one migrates, the other finds it done
 * (an advisory lock; without it both would create the tables and one would fail). */
static void test_two_managers_migrate(void)
{
    const char *url = mgo_test_pg_new_db();
    struct opener o[3] = {{.url = url}, {.url = url}, {.url = url}};
    pthread_t t[3];
    for (int i = 0; i < 3; i++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[i], NULL, open_store, &o[i]), 0);
    for (int i = 0; i < 3; i++)
        pthread_join(t[i], NULL);
    for (int i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(o[i].err, MGO_OK);
        if (o[i].s)
            CU_ASSERT_EQUAL(mgo_mgr_store_schema_version(o[i].s), MGO_MGR_STORE_SCHEMA_VERSION);
        mgo_mgr_store_close(o[i].s);
    }
    /* one row: the version of the last migration */
    CU_ASSERT(mgo_test_store_sql(url, "DO $$ BEGIN IF (SELECT COUNT(*) FROM schema_version) != 1 "
                                      "THEN RAISE 'schema_version rows'; END IF; END $$"));
}

/* The store's connection ends under it (a database restart, a network cut): the statement
 * then fails, the next use connects again; a transaction that was open fails until the store
 * rolls it back, and nothing of it is kept. */
static void test_lost_connection(void)
{
    const char *url = mgo_test_pg_new_db();
    struct mgo_mgr_store *s = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(url, &s), MGO_OK);
    static const char KILL[] = "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                               "application_name = 'margo-manager'";
    uint64_t v = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
    CU_ASSERT_FATAL(mgo_test_store_sql(url, KILL));
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_ERR_IO);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(v, 2u);
    /* inside a transaction */
    CU_ASSERT_EQUAL(mgo_mgr_store_begin(s), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(v, 3u);
    CU_ASSERT_FATAL(mgo_test_store_sql(url, KILL));
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev2", &v), MGO_ERR_IO);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev2", &v), MGO_ERR_IO); /* still open */
    mgo_mgr_store_rollback(s);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(s, "dev1", &v, NULL), MGO_OK);
    CU_ASSERT_EQUAL(v, 2u); /* the lost transaction's bump is not kept */
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(s, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(v, 3u);
    mgo_mgr_store_close(s);
}

/* margo-manager's store option: a PostgreSQL URL puts the store there (the tables appear in
 * that database, nothing in state-dir); any other URL stops the start naming the option. */
static void test_store_option(void)
{
    char dir[256], token[300];
    mgo_test_tmpdir("store-opt", dir);
    snprintf(token, sizeof token, "%s/token", dir);
    CU_ASSERT_FATAL(mgo_test_write_file(token, "0123456789abcdef0123456789abcdef\n"));
    struct mgo_test_manager t;
    mgo_test_manager_init(&t, "tcp://127.0.0.1:1", dir, "store-opt", token, "warn");
    t.cfg.store = (char *)"mysql://db.example.net/margo";
    mgo_test_log_capture_start(1 << 16);
    CU_ASSERT_EQUAL(mgo_test_manager_start(&t, false), MGO_ERR_INVALID);
    const char *text = mgo_test_log_capture_lock(NULL);
    CU_ASSERT_PTR_NOT_NULL(strstr(text, "store: must be a PostgreSQL URL"));
    CU_ASSERT_PTR_NULL(strstr(text, "db.example.net")); /* the URL is never logged */
    mgo_test_log_capture_unlock();
    mgo_test_log_capture_stop();
    mgo_test_manager_stop(&t);

    const char *url = mgo_test_pg_new_db();
    mgo_test_manager_init(&t, "tcp://127.0.0.1:1", dir, "store-opt", token, "warn");
    t.cfg.store = (char *)url;
    CU_ASSERT_EQUAL(mgo_test_manager_start(&t, false), MGO_OK);
    mgo_test_manager_stop(&t);
    CU_ASSERT(mgo_test_store_sql(url, "SELECT version FROM schema_version"));
    char db[512];
    snprintf(db, sizeof db, "%s/%s", dir, MGO_MGR_STORE_FILE);
    CU_ASSERT_FALSE(mgo_test_file_exists(db));
    mgo_test_rm_rf(dir);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"two managers bump and take positions of the same devices",
         test_two_managers_same_devices},
        {"three managers starting together migrate once", test_two_managers_migrate},
        {"a failed statement inside a transaction", test_error_inside_transaction},
        {"two managers' ingest batches crossing on two devices never wait",
         test_batches_never_deadlock},
        {"a lost connection fails the statement; the next use reconnects", test_lost_connection},
        {"margo-manager's store option", test_store_option},
        {NULL, NULL},
    };
    mgo_test_add_suite("manager store, several managers (PostgreSQL)", cases);
}
