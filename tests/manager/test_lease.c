/* test_lease.c - the store's leases (schema 9, docs/scaling.md "Several managers"): take,
 * renew, refusal while another holds it, takeover after expiry with a new term (the fencing
 * token), release, and the reaping of expired member leases. Two store handles on one
 * database stand for two managers. */
#include "mgo_test.h"

#include <string.h>
#include <time.h>

#include "mgo/mgr_store.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

static void test_take_renew_refuse_takeover(void)
{
    char dir[256];
    mgo_test_tmpdir("lease", dir);
    struct mgo_mgr_store *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(dir, &a), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(dir, &b), MGO_OK);
    struct mgo_mgr_lease la, lb;

    /* a takes the free lease: term 1 */
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(a, "publisher", "mgr-a", 60000, &la), MGO_OK);
    CU_ASSERT_TRUE(la.held);
    CU_ASSERT_EQUAL(la.term, 1u);
    CU_ASSERT_STRING_EQUAL(la.holder, "mgr-a");
    int64_t first_expiry = la.expires_ms;
    CU_ASSERT_TRUE(first_expiry > mgo_mgr_store_now_ms());

    /* b is refused while it has not expired, and told who holds it */
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(b, "publisher", "mgr-b", 60000, &lb), MGO_OK);
    CU_ASSERT_FALSE(lb.held);
    CU_ASSERT_STRING_EQUAL(lb.holder, "mgr-a");
    CU_ASSERT_EQUAL(lb.term, 1u);
    CU_ASSERT_EQUAL(lb.expires_ms, first_expiry);

    /* a renews: same term, a later expiry */
    sleep_ms(5);
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(a, "publisher", "mgr-a", 60000, &la), MGO_OK);
    CU_ASSERT_TRUE(la.held);
    CU_ASSERT_EQUAL(la.term, 1u);
    CU_ASSERT_TRUE(la.expires_ms > first_expiry);

    /* a lets it run out (a renewal with a tiny TTL stands for a holder that stopped) */
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(a, "publisher", "mgr-a", 1, &la), MGO_OK);
    CU_ASSERT_TRUE(la.held);
    sleep_ms(10);
    /* b takes it over: the term grows */
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(b, "publisher", "mgr-b", 60000, &lb), MGO_OK);
    CU_ASSERT_TRUE(lb.held);
    CU_ASSERT_EQUAL(lb.term, 2u);
    /* a's late renewal is refused: it must stop (its term is over) */
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(a, "publisher", "mgr-a", 60000, &la), MGO_OK);
    CU_ASSERT_FALSE(la.held);
    CU_ASSERT_STRING_EQUAL(la.holder, "mgr-b");
    CU_ASSERT_EQUAL(la.term, 2u);

    /* another lease name is independent */
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(a, "other", "mgr-a", 60000, &la), MGO_OK);
    CU_ASSERT_TRUE(la.held);
    CU_ASSERT_EQUAL(la.term, 1u);

    /* release by someone else changes nothing; by the holder frees it at once */
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_release(a, "publisher", "mgr-a"), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(a, "publisher", "mgr-a", 60000, &la), MGO_OK);
    CU_ASSERT_FALSE(la.held);
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_release(b, "publisher", "mgr-b"), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(a, "publisher", "mgr-a", 60000, &la), MGO_OK);
    CU_ASSERT_TRUE(la.held);
    CU_ASSERT_EQUAL(la.term, 3u);

    mgo_mgr_store_close(a);
    mgo_mgr_store_close(b);
    mgo_test_rm_rf(dir);
}

struct names {
    char got[4][MGO_MGR_LEASE_NAME_MAX + 1];
    size_t n;
};

static mgo_err collect(const char *id, void *ctx)
{
    struct names *n = ctx;
    if (n->n < 4)
        snprintf(n->got[n->n], sizeof n->got[0], "%s", id);
    n->n++;
    return MGO_OK;
}

static void test_reap_expired_members(void)
{
    char dir[256];
    mgo_test_tmpdir("lease", dir);
    struct mgo_mgr_store *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(dir, &a), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(dir, &b), MGO_OK);
    struct mgo_mgr_lease l;
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(a, "member/a", "a", 60000, &l), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(b, "member/b", "b", 1, &l), MGO_OK);
    /* an expired lease that is not a member's is never reaped */
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(b, "publisher", "b", 1, &l), MGO_OK);
    sleep_ms(10);
    struct names got = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_reap(a, "member/", collect, &got), MGO_OK);
    CU_ASSERT_EQUAL(got.n, 1u);
    CU_ASSERT_STRING_EQUAL(got.got[0], "member/b");
    /* deleted once: a second reaper (the other handle) finds nothing */
    struct names again = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_reap(b, "member/", collect, &again), MGO_OK);
    CU_ASSERT_EQUAL(again.n, 0u);
    /* the live member and the other lease are still there */
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(b, "member/a", "b", 60000, &l), MGO_OK);
    CU_ASSERT_FALSE(l.held);
    CU_ASSERT_EQUAL(mgo_mgr_store_lease_take(a, "publisher", "a", 60000, &l), MGO_OK);
    CU_ASSERT_TRUE(l.held);
    CU_ASSERT_EQUAL(l.term, 2u);
    mgo_mgr_store_close(a);
    mgo_mgr_store_close(b);
    mgo_test_rm_rf(dir);
}

/* The index the lease holder polls: a bumped manifest is listed until it is acknowledged. */
static mgo_err count_id(const char *id, void *ctx)
{
    (void)id;
    (*(int *)ctx)++;
    return MGO_OK;
}

static void test_unpublished_manifests(void)
{
    char dir[256];
    mgo_test_tmpdir("lease", dir);
    struct mgo_mgr_store *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(dir, &a), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(dir, &b), MGO_OK);
    uint64_t v = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(a, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(v, 1u);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(b, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(v, 2u); /* the other handle goes on from the stored version */
    int n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_devices(b, true, count_id, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(a, "dev1", 1), MGO_OK);
    n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_devices(b, true, count_id, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 1); /* 1 of 2 acknowledged */
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(a, "dev1", 2), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(a, "dev1", 1), MGO_OK); /* late ack */
    n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_devices(b, true, count_id, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 0);
    mgo_mgr_store_close(a);
    mgo_mgr_store_close(b);
    mgo_test_rm_rf(dir);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"take, renew, refuse, take over", test_take_renew_refuse_takeover},
        {"reap expired members", test_reap_expired_members},
        {"unpublished manifests across handles", test_unpublished_manifests},
        {NULL, NULL},
    };
    mgo_test_add_suite("manager leases", cases);
}
