/* test_lease.c - the store's leases (schema 9, docs/scaling.md "Several managers"): take,
 * renew, refusal while another holds it, takeover after expiry with a new term (the fencing
 * token), release, and the reaping of expired member leases; one device's statuses stored
 * through two handles in any order, also concurrently, each exactly once (the shared ingest of
 * several managers). Two store handles on one database stand for two managers. */
#include "mgo_test.h"

#include <pthread.h>
#include <string.h>
#include <time.h>

#include "../../manager/src/lease.h"
#include "mgo/mgr_store.h"
#include "pg.h"

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
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &a), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &b), MGO_OK);
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
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &a), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &b), MGO_OK);
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
static mgo_err count_id(const char *id, uint64_t version, uint64_t published, void *ctx)
{
    (void)published;
    (void)id;
    (void)version;
    (*(int *)ctx)++;
    return MGO_OK;
}

static void test_unpublished_manifests(void)
{
    char dir[256];
    mgo_test_tmpdir("lease", dir);
    struct mgo_mgr_store *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &a), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &b), MGO_OK);
    uint64_t v = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(a, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(v, 1u);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(b, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(v, 2u); /* the other handle goes on from the stored version */
    int n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_page(b, true, "", 100, count_id, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 1);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(a, "dev1", 1), MGO_OK);
    n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_page(b, true, "", 100, count_id, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 1); /* 1 of 2 acknowledged */
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(a, "dev1", 2), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(a, "dev1", 1), MGO_OK); /* late ack */
    n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_page(b, true, "", 100, count_id, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 0);
    mgo_mgr_store_close(a);
    mgo_mgr_store_close(b);
    mgo_test_rm_rf(dir);
}

static mgo_err count_status(const struct mgo_mgr_status_row *row, void *ctx)
{
    uint64_t *seen = ctx;
    if (row->seq >= 1 && row->seq <= 400)
        seen[row->seq]++;
    return MGO_OK;
}

/* Out of order through two handles: the later status first (a gap, a new epoch), the earlier
 * one through the other handle (the gap closes), replays refused on both. */
static void test_statuses_across_two_handles(void)
{
    char dir[256];
    mgo_test_tmpdir("lease", dir);
    struct mgo_mgr_store *a = NULL, *b = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &a), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &b), MGO_OK);
    mgo_mgr_store_set_epoch(a, "00000000000000aa");
    mgo_mgr_store_set_epoch(b, "00000000000000bb");
    CU_ASSERT_EQUAL(mgo_mgr_store_receipts_reset(a), MGO_OK);
    struct mgo_mgr_status_row r = {.deployment_id = "dep-1",
                                   .device_id = "dev1",
                                   .state = "installing",
                                   .has_journal = true,
                                   .boot = 1,
                                   .doc_json = "{}"};
    struct mgo_mgr_status_outcome out = {0};
    snprintf(out.position.new_epoch, sizeof out.position.new_epoch, "00000000000000a1");
    r.seq = 2;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_status_apply(a, &r, &out), MGO_OK);
    CU_ASSERT_TRUE(out.position.gap_opened);
    CU_ASSERT_EQUAL(out.position.seq, 0u);
    CU_ASSERT_STRING_EQUAL(out.position.epoch, "00000000000000a1");
    memset(&out, 0, sizeof out);
    snprintf(out.position.new_epoch, sizeof out.position.new_epoch, "00000000000000b1");
    r.seq = 1;
    r.state = "pending";
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_status_apply(b, &r, &out), MGO_OK);
    CU_ASSERT_FALSE(out.position.gap_opened);
    CU_ASSERT_EQUAL(out.position.seq, 2u); /* over what the other handle stored */
    CU_ASSERT_STRING_EQUAL(out.position.epoch, "00000000000000a1");
    CU_ASSERT_FALSE(out.newest); /* older than the current status: history only */
    for (uint64_t q = 1; q <= 2; q++) {
        r.seq = q;
        CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(a, &r, NULL), MGO_ERR_STALE);
        CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(b, &r, NULL), MGO_ERR_STALE);
    }
    uint64_t seen[401] = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_history(b, "dep-1", count_status, seen), MGO_OK);
    CU_ASSERT_EQUAL(seen[1], 1u);
    CU_ASSERT_EQUAL(seen[2], 1u);
    mgo_mgr_store_close(a);
    mgo_mgr_store_close(b);
    mgo_test_rm_rf(dir);
}

/* Two threads, each with its own handle, store one device's 400 statuses: every position
 * offered to both, in opposite orders, at the same time (a status and its replay reaching two
 * managers). A write the database refuses for a moment (SQLite allows one writer; a
 * serialization failure) is retried, as ingest retries held messages. */
#define RACE_N 400
struct racer {
    struct mgo_mgr_store *s;
    bool reverse;
    size_t stored, stale, retries;
    mgo_err failed;
};

static void *race(void *arg)
{
    struct racer *rc = arg;
    struct mgo_mgr_status_row r = {.deployment_id = "dep-r",
                                   .device_id = "dev-r",
                                   .state = "installing",
                                   .has_journal = true,
                                   .boot = 1,
                                   .doc_json = "{}"};
    for (size_t i = 0; i < RACE_N; i++) {
        r.seq = rc->reverse ? RACE_N - i : i + 1;
        for (int attempt = 0;; attempt++) {
            struct mgo_mgr_status_outcome out = {0};
            snprintf(out.position.new_epoch, sizeof out.position.new_epoch, "%016zx", i + 1);
            mgo_err err = mgo_mgr_store_status_apply(rc->s, &r, &out);
            if (err == MGO_OK) {
                rc->stored++;
                break;
            }
            if (err == MGO_ERR_STALE) {
                rc->stale++;
                break;
            }
            if (attempt == 2000) {
                rc->failed = err;
                return NULL;
            }
            rc->retries++;
            sleep_ms(1);
        }
    }
    return NULL;
}

static void test_statuses_raced_by_two_handles(void)
{
    char dir[256];
    mgo_test_tmpdir("lease", dir);
    struct racer rc[2] = {{.reverse = false}, {.reverse = true}};
    for (int k = 0; k < 2; k++)
        CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &rc[k].s), MGO_OK);
    pthread_t t[2];
    for (int k = 0; k < 2; k++)
        CU_ASSERT_EQUAL_FATAL(pthread_create(&t[k], NULL, race, &rc[k]), 0);
    for (int k = 0; k < 2; k++)
        pthread_join(t[k], NULL);
    for (int k = 0; k < 2; k++)
        CU_ASSERT_EQUAL(rc[k].failed, MGO_OK);
    /* each position stored by exactly one of them, refused as handled by the other */
    CU_ASSERT_EQUAL(rc[0].stored + rc[1].stored, (size_t)RACE_N);
    CU_ASSERT_EQUAL(rc[0].stale + rc[1].stale, (size_t)RACE_N);
    uint64_t seen[401] = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_history(rc[0].s, "dep-r", count_status, seen), MGO_OK);
    for (size_t q = 1; q <= RACE_N; q++) {
        if (seen[q] != 1)
            fprintf(stderr, "position %zu stored %llu times\n", q, (unsigned long long)seen[q]);
        CU_ASSERT_EQUAL(seen[q], 1u);
    }
    /* the receipt covers everything: no gap is left open */
    struct mgo_mgr_position pos = {0};
    CU_ASSERT_EQUAL(mgo_mgr_store_position_take(rc[1].s, "dev-r", 1, RACE_N, &pos), MGO_ERR_STALE);
    CU_ASSERT_EQUAL(pos.seq, (uint64_t)RACE_N);
    fprintf(stderr, "raced: stored %zu + %zu, retries %zu + %zu\n", rc[0].stored, rc[1].stored,
            rc[0].retries, rc[1].retries);
    for (int k = 0; k < 2; k++)
        mgo_mgr_store_close(rc[k].s);
    mgo_test_rm_rf(dir);
}

/* lease.c on top: what a renewal reports to the manager, the local deadline, the reaping of
 * another manager's member lease and a clean stop's release. */
static mgo_err note_holder(const char *holder, void *ctx)
{
    snprintf(ctx, MGO_MGR_LEASE_NAME_MAX + 1, "%s", holder);
    return MGO_OK;
}

static void test_lease_module(void)
{
    char dir[256];
    mgo_test_tmpdir("lease", dir);
    struct mgo_mgr_store *sa = NULL, *sb = NULL;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &sa), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(dir), &sb), MGO_OK);
    struct mgo_lease a, b;
    CU_ASSERT_EQUAL_FATAL(mgo_lease__init(&a, sa, "margo-manager-a"), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_lease__init(&b, sb, "margo-manager-a"), MGO_OK);
    CU_ASSERT(strncmp(a.instance, "margo-manager-a/", 16) == 0 && strlen(a.instance) == 32);
    CU_ASSERT_STRING_NOT_EQUAL(a.instance, b.instance); /* a restart is a new holder */
    CU_ASSERT_FALSE(mgo_lease__held(&a));
    const char *why = NULL;
    CU_ASSERT_EQUAL(mgo_lease__renew(&a, &why), MGO_LEASE_TAKEN);
    CU_ASSERT_TRUE(mgo_lease__held(&a));
    CU_ASSERT_EQUAL(mgo_lease__renew(&b, &why), MGO_LEASE_SAME);
    CU_ASSERT_FALSE(mgo_lease__held(&b));
    CU_ASSERT_EQUAL(mgo_lease__renew(&a, &why), MGO_LEASE_SAME);
    /* the local deadline passed (a stalled loop): no longer held; the next renewal takes it
     * again under the same term, reported as taken (its work had stopped) */
    a.until_ns = 1;
    CU_ASSERT_FALSE(mgo_lease__held(&a));
    CU_ASSERT_EQUAL(mgo_lease__renew(&a, &why), MGO_LEASE_TAKEN);
    CU_ASSERT_EQUAL(a.term, 1u);
    /* a stops cleanly: b takes over at its next try, a new term; a's renewal reports the loss */
    mgo_lease__release(&a);
    CU_ASSERT_FALSE(mgo_lease__held(&a));
    CU_ASSERT_EQUAL(mgo_lease__renew(&b, &why), MGO_LEASE_TAKEN);
    CU_ASSERT_EQUAL(b.term, 2u);
    /* a's member lease was released too: b, the holder, reaps it (its own is left alone) */
    char gone[MGO_MGR_LEASE_NAME_MAX + 1] = "";
    CU_ASSERT_EQUAL(mgo_lease__reap(&b, note_holder, gone), MGO_OK);
    CU_ASSERT_STRING_EQUAL(gone, a.instance);
    a.until_ns = 0;
    struct mgo_lease a2 = a; /* a, not stopped after all: it was held until now */
    CU_ASSERT_EQUAL(mgo_lease__renew(&a2, &why), MGO_LEASE_SAME); /* b holds it */
    a2.until_ns = (uint64_t)INT64_MAX;
    CU_ASSERT_EQUAL(mgo_lease__renew(&a2, &why), MGO_LEASE_LOST);
    CU_ASSERT_STRING_EQUAL(why, "another manager holds it");
    CU_ASSERT_FALSE(mgo_lease__held(&a2));
    mgo_mgr_store_close(sa);
    mgo_mgr_store_close(sb);
    mgo_test_rm_rf(dir);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"take, renew, refuse, take over", test_take_renew_refuse_takeover},
        {"reap expired members", test_reap_expired_members},
        {"unpublished manifests across handles", test_unpublished_manifests},
        {"statuses out of order across two handles", test_statuses_across_two_handles},
        {"statuses raced by two handles, each stored once", test_statuses_raced_by_two_handles},
        {"lease.c: renewals, local deadline, reaping, release", test_lease_module},
        {NULL, NULL},
    };
    mgo_test_add_suite("manager leases", cases);
}
