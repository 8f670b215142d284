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
    struct mgo_mgr_app_row app = {.id = "hello", .version = "1.0", .source = (const uint8_t *)"x", .source_len = 1};
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

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"two managers bump and take positions of the same devices",
         test_two_managers_same_devices},
        {"a failed statement inside a transaction", test_error_inside_transaction},
        {NULL, NULL},
    };
    mgo_test_add_suite("manager store, several managers (PostgreSQL)", cases);
}
