/* test_publish.c - fleet publishing (manager/src/publish.c) against a temporary store and a
 * recording outbox, no broker: documents and manifest with the topics table's QoS/retain,
 * only changed documents, nothing while disconnected, acknowledgements recorded, signatures,
 * and the after-connect sweep. */
#include "mgo_test.h"
#include "pg.h"

#include "../../manager/src/publish.h"
#include "../../manager/src/rollup.h"
#include "mgo/margo.h"
#include "mgo/sign.h"
#include "mgr_test_util.h"
#include "outbox_rec.h"

#define DEP_A "aaaaaaaa-0000-4000-8000-000000000001"
#define DEP_B "aaaaaaaa-0000-4000-8000-000000000002"
#define DEP_C "aaaaaaaa-0000-4000-8000-000000000003"
#define DIGEST_A "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const uint8_t doc_a[] = {0x81, 0xa2, 'i', 'd', 0xa1, 'A'};
static const uint8_t doc_b[] = {0x81, 0xa2, 'i', 'd', 0xa1, 'B'};

struct fixture {
    char dir[256];
    struct mgo_mgr_store *store;
    struct rec_outbox rec;
    struct mgo_outbox outbox;
    struct mgo_publisher *pub; /* large: on the heap */
};

static void put_dep(struct fixture *f, const char *id, const char *device, const uint8_t *doc,
                    size_t doc_len, enum mgo_mgr_desired desired)
{
    uint64_t v = 0;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_manifest_bump(f->store, device, &v), MGO_OK);
    struct mgo_mgr_deployment_row r = mgr_test_dep_row(id, device, doc, doc_len, DIGEST_A, v);
    r.desired = desired;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_deployment_put(f->store, &r), MGO_OK);
}

static void setup(struct fixture *f, const struct mgo_sign_key *key)
{
    mgo_test_tmpdir("mgr", f->dir);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(f->dir), &f->store), MGO_OK);
    rec_init(&f->rec, &f->outbox);
    f->pub = calloc(1, sizeof *f->pub);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->pub);
    mgo_publish__init(f->pub, f->store, &f->outbox, "margo/v1", key);
    put_dep(f, DEP_A, "dev1", doc_a, sizeof doc_a, MGO_MGR_DESIRED_PRESENT);
    put_dep(f, DEP_B, "dev1", doc_b, sizeof doc_b, MGO_MGR_DESIRED_PRESENT);
}

static void teardown(struct fixture *f)
{
    rec_clear(&f->rec);
    free(f->pub);
    mgo_mgr_store_close(f->store);
    mgo_test_rm_rf(f->dir);
}

/* Polls until a step leaves nothing more (at most 100 steps). */
static void poll_all(struct fixture *f)
{
    bool more = true;
    for (int i = 0; more && i < 100; i++)
        CU_ASSERT_EQUAL(mgo_publish__poll(f->pub, 10, &more), MGO_OK);
    CU_ASSERT_FALSE(more);
}

static void check_table(const struct rec_msg *m, enum mgo_topic_kind kind)
{
    CU_ASSERT_EQUAL(m->qos, mgo_topic_qos(kind));
    CU_ASSERT_EQUAL(m->retain, mgo_topic_retained(kind));
}

static void test_device_publishes_documents_then_manifest(void)
{
    struct fixture f;
    setup(&f, NULL);
    CU_ASSERT_EQUAL(mgo_publish__device(f.pub, "dev1", NULL, 0), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(f.rec.len, 3);
    const struct rec_msg *a = rec_find(&f.rec, "margo/v1/devices/dev1/deployments/" DEP_A);
    const struct rec_msg *b = rec_find(&f.rec, "margo/v1/devices/dev1/deployments/" DEP_B);
    CU_ASSERT_PTR_NOT_NULL_FATAL(a);
    CU_ASSERT_PTR_NOT_NULL_FATAL(b);
    CU_ASSERT(a->len == sizeof doc_a && memcmp(a->payload, doc_a, sizeof doc_a) == 0);
    check_table(a, MGO_TOPIC_DEPLOYMENT);
    check_table(b, MGO_TOPIC_DEPLOYMENT);
    /* the manifest goes last, so an agent never sees a manifest before its documents */
    const struct rec_msg *d = &f.rec.msgs[2];
    CU_ASSERT_STRING_EQUAL(d->topic, "margo/v1/devices/dev1/desired");
    check_table(d, MGO_TOPIC_DESIRED);
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_desired_state ds;
    CU_ASSERT_EQUAL_FATAL(mgo_desired_state_decode(d->payload, d->len, &arena, &ds, &p), MGO_OK);
    CU_ASSERT_EQUAL(ds.manifest_version, 2);
    CU_ASSERT_STRING_EQUAL(ds.device_id, "dev1");
    CU_ASSERT_EQUAL_FATAL(ds.deployments_len, 2);
    CU_ASSERT_STRING_EQUAL(ds.deployments[0].deployment_id, DEP_A);
    CU_ASSERT_STRING_EQUAL(ds.deployments[0].digest, DIGEST_A);
    mgo_arena_cleanup(&arena);
    /* not acknowledged yet; the broker's acknowledgement records it */
    uint64_t version = 0, published = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(f.store, "dev1", &version, &published), MGO_OK);
    CU_ASSERT_EQUAL(published, 0);
    mgo_publish__acked(f.pub, d->token);
    CU_ASSERT_EQUAL(f.pub->pending_len, 0u); /* out of flight at once */
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(f.store, "dev1", &version, &published), MGO_OK);
    CU_ASSERT_EQUAL(published, 0); /* recorded with the others of its drain */
    mgo_publish__record_acked(f.pub);
    CU_ASSERT_EQUAL(f.pub->acked_len, 0u);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(f.store, "dev1", &version, &published), MGO_OK);
    CU_ASSERT_EQUAL(published, 2);
    teardown(&f);
}

static void test_device_only_changed_documents(void)
{
    struct fixture f;
    setup(&f, NULL);
    const char *changed[] = {DEP_B};
    CU_ASSERT_EQUAL(mgo_publish__device(f.pub, "dev1", changed, 1), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 2);
    CU_ASSERT_PTR_NULL(rec_find(&f.rec, "margo/v1/devices/dev1/deployments/" DEP_A));
    CU_ASSERT_PTR_NOT_NULL(rec_find(&f.rec, "margo/v1/devices/dev1/deployments/" DEP_B));
    CU_ASSERT_PTR_NOT_NULL(rec_find(&f.rec, "margo/v1/devices/dev1/desired"));
    teardown(&f);
}

static void test_device_disconnected_publishes_nothing(void)
{
    struct fixture f;
    setup(&f, NULL);
    f.rec.connected = false;
    CU_ASSERT_EQUAL(mgo_publish__device(f.pub, "dev1", NULL, 0), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 0);
    /* a device without a manifest: nothing either */
    f.rec.connected = true;
    CU_ASSERT_EQUAL(mgo_publish__device(f.pub, "nobody", NULL, 0), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 0);
    teardown(&f);
}

static void test_device_signed_when_key_set(void)
{
    char keydir[256];
    mgo_test_tmpdir("mgr", keydir);
    CU_ASSERT_EQUAL_FATAL(mgo_test_sh("cd '%s' && openssl genpkey -algorithm EC -pkeyopt "
                                      "ec_paramgen_curve:P-256 -out sign.key 2>/dev/null && "
                                      "openssl pkey -in sign.key -pubout -out sign.pub",
                                      keydir),
                          0);
    char path[512];
    struct mgo_sign_key *key = NULL;
    struct mgo_verify_key *vkey = NULL;
    snprintf(path, sizeof path, "%s/sign.key", keydir);
    CU_ASSERT_EQUAL_FATAL(mgo_sign_key_load(path, &key), MGO_OK);
    snprintf(path, sizeof path, "%s/sign.pub", keydir);
    CU_ASSERT_EQUAL_FATAL(mgo_verify_key_load(path, &vkey), MGO_OK);
    struct fixture f;
    setup(&f, key);
    CU_ASSERT_EQUAL(mgo_publish__device(f.pub, "dev1", NULL, 0), MGO_OK);
    const struct rec_msg *d = rec_find(&f.rec, "margo/v1/devices/dev1/desired");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    const struct mgo_verify_key *keys[] = {vkey};
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    char why[256] = "";
    CU_ASSERT_EQUAL(mgo_sign_verify_msgpack(keys, 1, d->payload, d->len, "dev1", &arena, why),
                    MGO_OK);
    /* bound to its device: the same bytes do not verify for another one */
    CU_ASSERT_NOT_EQUAL(mgo_sign_verify_msgpack(keys, 1, d->payload, d->len, "dev2", &arena, why),
                        MGO_OK);
    mgo_arena_cleanup(&arena);
    /* encode_doc signs too, and without a key it does not */
    struct mgo_value tree;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml("{a: 1}", 6, &arena, &tree, &p), MGO_OK);
    struct mgo_buf out;
    mgo_buf_init(&out, 1u << 16);
    CU_ASSERT_EQUAL(mgo_publish__encode_doc(f.pub, &tree, &arena, &out), MGO_OK);
    CU_ASSERT_EQUAL(mgo_sign_verify_msgpack(keys, 1, out.data, out.len, NULL, &arena, why), MGO_OK);
    mgo_buf_reset(&out);
    f.pub->sign_key = NULL;
    CU_ASSERT_EQUAL(mgo_publish__encode_doc(f.pub, &tree, &arena, &out), MGO_OK);
    CU_ASSERT_NOT_EQUAL(mgo_sign_verify_msgpack(keys, 1, out.data, out.len, NULL, &arena, why),
                        MGO_OK);
    mgo_buf_cleanup(&out);
    mgo_arena_cleanup(&arena);
    teardown(&f);
    mgo_verify_key_free(vkey);
    mgo_sign_key_free(key);
    mgo_test_rm_rf(keydir);
}

static void manifest_digest(const struct rec_msg *m, struct mgo_arena *arena,
                            char out[MGO_DIGEST_STR_SIZE])
{
    struct mgo_value tree;
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_msgpack(m->payload, m->len, arena, &tree, &p), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_doc_digest(&tree, out), MGO_OK);
}

static void decode_manifest(const struct rec_msg *m, struct mgo_arena *arena,
                            struct mgo_desired_state *ds)
{
    struct mgo_problems p;
    mgo_problems_init(&p);
    CU_ASSERT_EQUAL_FATAL(mgo_desired_state_decode(m->payload, m->len, arena, ds, &p), MGO_OK);
}

/* Every manifest carries a signed validity (protocol.md §3.2 EXP-1); a refresh re-issues
 * each device's manifest with the same version and deployment digests, a later validity,
 * and no document. */
static void test_manifest_validity_and_refresh(void)
{
    struct fixture f;
    setup(&f, NULL);
    put_dep(&f, DEP_C, "dev2", doc_a, sizeof doc_a, MGO_MGR_DESIRED_PRESENT);
    mgo_publish__set_expiry(f.pub, 600);
    uint64_t before = (uint64_t)(mgo_mgr_store_now_ms() / 1000);
    CU_ASSERT_EQUAL(mgo_publish__device(f.pub, "dev1", NULL, 0), MGO_OK);
    const struct rec_msg *d = rec_find(&f.rec, "margo/v1/devices/dev1/desired");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_desired_state first;
    decode_manifest(d, &arena, &first);
    CU_ASSERT_FATAL(first.has_validity);
    CU_ASSERT(first.issued_at >= before && first.issued_at <= before + 2);
    CU_ASSERT_EQUAL(first.expires_at, first.issued_at + 600);
    char first_digest[MGO_DIGEST_STR_SIZE];
    manifest_digest(d, &arena, first_digest);

    sleep(1); /* a later issuedAt */
    rec_clear(&f.rec);
    /* both acknowledged (a refresh of an unacknowledged one carries its documents: below) */
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(f.store, "dev1", 2), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(f.store, "dev2", 1), MGO_OK);
    f.pub->pending_len = 0;
    /* not connected: nothing, and no error (the manager refreshes after the next connect) */
    f.rec.connected = false;
    mgo_publish__refresh(f.pub);
    poll_all(&f);
    CU_ASSERT_EQUAL(f.rec.len, 0);
    f.rec.connected = true; /* the pass goes on once connected */
    mgo_publish__refresh(f.pub);
    poll_all(&f);
    /* one manifest per device, no document */
    CU_ASSERT_EQUAL(f.rec.len, 2);
    CU_ASSERT_PTR_NULL(rec_find(&f.rec, "margo/v1/devices/dev1/deployments/" DEP_A));
    const struct rec_msg *r1 = rec_find(&f.rec, "margo/v1/devices/dev1/desired");
    CU_ASSERT_PTR_NOT_NULL_FATAL(r1);
    CU_ASSERT_PTR_NOT_NULL(rec_find(&f.rec, "margo/v1/devices/dev2/desired"));
    struct mgo_desired_state again;
    decode_manifest(r1, &arena, &again);
    CU_ASSERT_EQUAL(again.manifest_version, first.manifest_version);
    CU_ASSERT_EQUAL_FATAL(again.deployments_len, first.deployments_len);
    for (size_t i = 0; i < again.deployments_len; i++) {
        CU_ASSERT_STRING_EQUAL(again.deployments[i].deployment_id,
                               first.deployments[i].deployment_id);
        CU_ASSERT_STRING_EQUAL(again.deployments[i].digest, first.deployments[i].digest);
    }
    CU_ASSERT(again.has_validity && again.issued_at > first.issued_at);
    CU_ASSERT_EQUAL(again.expires_at, again.issued_at + 600);
    /* the validity is signed content: the manifest digest differs */
    char again_digest[MGO_DIGEST_STR_SIZE];
    manifest_digest(r1, &arena, again_digest);
    CU_ASSERT_STRING_NOT_EQUAL(again_digest, first_digest);
    mgo_arena_cleanup(&arena);
    teardown(&f);
}

static void test_sweep_after_new_session_republishes_all(void)
{
    struct fixture f;
    setup(&f, NULL);
    put_dep(&f, DEP_C, "dev2", doc_a, sizeof doc_a, MGO_MGR_DESIRED_PRESENT);
    /* both devices' newest manifests acknowledged */
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(f.store, "dev1", 2), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(f.store, "dev2", 1), MGO_OK);
    /* resumed session: the broker still holds everything */
    CU_ASSERT_EQUAL(mgo_publish__sweep(f.pub, true), MGO_OK);
    poll_all(&f);
    CU_ASSERT_EQUAL(f.rec.len, 0);
    /* new session: every device's documents and manifest again, by the polls */
    CU_ASSERT_EQUAL(mgo_publish__sweep(f.pub, false), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 0);
    poll_all(&f);
    CU_ASSERT_EQUAL(f.rec.len, 5);
    CU_ASSERT_PTR_NOT_NULL(rec_find(&f.rec, "margo/v1/devices/dev1/desired"));
    CU_ASSERT_PTR_NOT_NULL(rec_find(&f.rec, "margo/v1/devices/dev2/desired"));
    CU_ASSERT_PTR_NOT_NULL(rec_find(&f.rec, "margo/v1/devices/dev2/deployments/" DEP_C));
    teardown(&f);
}

static void test_sweep_resumed_publishes_unacknowledged_and_clears_removed(void)
{
    struct fixture f;
    setup(&f, NULL);
    put_dep(&f, DEP_C, "dev2", doc_a, sizeof doc_a, MGO_MGR_DESIRED_REMOVING);
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(f.store, "dev2", 1), MGO_OK);
    CU_ASSERT_EQUAL(mgo_publish__sweep(f.pub, true), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 2); /* the removal is cleared at once */
    poll_all(&f);
    /* dev1 (never acknowledged): 2 documents + manifest; dev2's removed deployment, never
     * reported, is cleared (an empty retained message) and marked removed */
    CU_ASSERT_PTR_NOT_NULL(rec_find(&f.rec, "margo/v1/devices/dev1/desired"));
    CU_ASSERT_PTR_NULL(rec_find(&f.rec, "margo/v1/devices/dev2/desired"));
    const struct rec_msg *c = rec_find(&f.rec, "margo/v1/devices/dev2/deployments/" DEP_C);
    CU_ASSERT_PTR_NOT_NULL_FATAL(c);
    CU_ASSERT_EQUAL(c->len, 0);
    check_table(c, MGO_TOPIC_DEPLOYMENT);
    /* and its retained status (protocol.md §7.4 step 7), after the document */
    const struct rec_msg *st = rec_find(&f.rec, "margo/v1/devices/dev2/status/" DEP_C);
    CU_ASSERT_PTR_NOT_NULL_FATAL(st);
    CU_ASSERT_EQUAL(st->len, 0);
    check_table(st, MGO_TOPIC_STATUS);
    CU_ASSERT(st > c);
    CU_ASSERT_EQUAL(f.rec.len, 5);
    teardown(&f);
}

/* Several managers (docs/scaling.md): a manager that does not hold the publisher lease stores
 * and sends nothing but receipts; the holder's poll publishes what is stored and not
 * acknowledged, never what is already in flight, and always the version stored now. */
static void test_inactive_then_poll(void)
{
    struct fixture f;
    setup(&f, NULL);
    f.pub->active = false;
    CU_ASSERT_EQUAL(mgo_publish__device(f.pub, "dev1", NULL, 0), MGO_OK);
    CU_ASSERT_EQUAL(mgo_publish__sweep(f.pub, false), MGO_OK);
    mgo_publish__refresh(f.pub);
    CU_ASSERT_FALSE(mgo_publish__waiting(f.pub)); /* not the holder: no pass */
    bool more = true;
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 100, &more), MGO_OK);
    CU_ASSERT_FALSE(more);
    CU_ASSERT_EQUAL(f.rec.len, 0);
    CU_ASSERT_EQUAL(mgo_publish__receipt(f.pub, "dev1", "00112233445566aa", 1, 1), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 1);
    rec_clear(&f.rec);

    /* an active publisher whose lease ran out by the local clock publishes nothing either */
    f.pub->active = true;
    f.pub->active_until_ns = 1;
    CU_ASSERT_EQUAL(mgo_publish__device(f.pub, "dev1", NULL, 0), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 0);

    /* the holder: dev1 (version 2, never acknowledged) and dev2 go out, one device a call */
    f.pub->active_until_ns = 0;
    put_dep(&f, DEP_C, "dev2", doc_a, sizeof doc_a, MGO_MGR_DESIRED_PRESENT);
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 1, &more), MGO_OK);
    CU_ASSERT_TRUE(more);
    CU_ASSERT_EQUAL(f.rec.len, 3); /* dev1: two documents and the manifest */
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK);
    CU_ASSERT_FALSE(more);
    CU_ASSERT_EQUAL(f.rec.len, 5); /* dev2: one document and the manifest; dev1 in flight */
    /* both in flight: nothing again */
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 5);
    /* another manager stores a newer version of dev1: published though v2 is in flight */
    uint64_t v = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(f.store, "dev1", &v), MGO_OK);
    CU_ASSERT_EQUAL(v, 3u);
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 8);
    struct mgo_desired_state ds;
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1 << 20);
    struct mgo_problems pr;
    mgo_problems_init(&pr);
    CU_ASSERT_STRING_EQUAL(f.rec.msgs[7].topic, "margo/v1/devices/dev1/desired");
    CU_ASSERT_EQUAL_FATAL(
        mgo_desired_state_decode(f.rec.msgs[7].payload, f.rec.msgs[7].len, &arena, &ds, &pr),
        MGO_OK);
    CU_ASSERT_EQUAL(ds.manifest_version, 3u);
    mgo_arena_cleanup(&arena);
    /* acknowledged (the tokens of the manifests), or failed: out of flight */
    for (size_t i = 0; i < f.rec.len; i++) {
        if (strstr(f.rec.msgs[i].topic, "/desired") != NULL)
            mgo_publish__acked(f.pub, f.rec.msgs[i].token);
    }
    CU_ASSERT_EQUAL(f.pub->pending_len, 0u);
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 8); /* everything acknowledged */
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(f.store, "dev2", &v), MGO_OK);
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 10);
    mgo_publish__failed(f.pub, f.rec.msgs[9].token);
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 12); /* not acknowledged: sent again */
    teardown(&f);
}

/* The publish window: a device past MGO_PUBLISH_MAX_PENDING manifests in flight is left in
 * the store and goes out with the first poll after an acknowledgement makes room; every
 * acknowledgement finds its manifest (none is forgotten). */
static void test_window_full_then_poll(void)
{
    struct fixture f;
    setup(&f, NULL);
    for (size_t i = 0; i < MGO_PUBLISH_MAX_PENDING; i++) {
        struct mgo_pending_pub *pp = &f.pub->pending[i];
        pp->token = 100000 + (int)i;
        pp->version = 1;
        snprintf(pp->device, sizeof pp->device, "other%zu", i);
    }
    f.pub->pending_len = MGO_PUBLISH_MAX_PENDING;
    CU_ASSERT_EQUAL(mgo_publish__device(f.pub, "dev1", NULL, 0), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 0);
    CU_ASSERT_TRUE(mgo_publish__waiting(f.pub));
    bool more = true;
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK);
    CU_ASSERT_FALSE(more); /* no room: the acknowledgements bring the next poll */
    CU_ASSERT_EQUAL(f.rec.len, 0);
    mgo_publish__acked(f.pub, 100000); /* the oldest: found, not forgotten */
    CU_ASSERT_EQUAL(f.pub->acked_len, 1u);
    /* room for one only: no step yet (a page read for one device) */
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 0);
    CU_ASSERT_FALSE(more);
    for (int t = 1; t < (int)MGO_PUBLISH_MIN_ROOM; t++)
        mgo_publish__acked(f.pub, 100000 + t);
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK);
    CU_ASSERT_EQUAL(f.rec.len, 3); /* dev1: both documents and the manifest */
    CU_ASSERT_EQUAL(f.pub->pending_len, MGO_PUBLISH_MAX_PENDING - MGO_PUBLISH_MIN_ROOM + 1);
    CU_ASSERT_FALSE(more);
    /* the acknowledgement of the one that waited records it */
    const struct rec_msg *d = rec_find(&f.rec, "margo/v1/devices/dev1/desired");
    CU_ASSERT_PTR_NOT_NULL_FATAL(d);
    mgo_publish__acked(f.pub, d->token);
    mgo_publish__record_acked(f.pub);
    uint64_t version = 0, published = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(f.store, "dev1", &version, &published), MGO_OK);
    CU_ASSERT_EQUAL(published, version);
    /* with room and nothing unacknowledged the walk goes round once and the backlog ends */
    f.pub->pending_len = 0;
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK);
    CU_ASSERT_FALSE(mgo_publish__waiting(f.pub));
    CU_ASSERT_EQUAL(f.rec.len, 3);
    teardown(&f);
}

/* A refresh of a manifest the broker never acknowledged (the publisher that stored it was
 * killed before publishing, or the window was full) sends its documents too: a bare manifest
 * would name documents the device never got. */
static void test_refresh_unacknowledged_carries_documents(void)
{
    struct fixture f;
    setup(&f, NULL);
    mgo_publish__refresh(f.pub);
    poll_all(&f);
    CU_ASSERT_EQUAL(f.rec.len, 3);
    CU_ASSERT_PTR_NOT_NULL(rec_find(&f.rec, "margo/v1/devices/dev1/deployments/" DEP_A));
    CU_ASSERT_PTR_NOT_NULL(rec_find(&f.rec, "margo/v1/devices/dev1/deployments/" DEP_B));
    CU_ASSERT_STRING_EQUAL(f.rec.msgs[2].topic, "margo/v1/devices/dev1/desired");
    teardown(&f);
}

/* A pass (refresh) goes a page per poll, picking up after the last device of the one before,
 * and then ends; the unacknowledged walk does the same. */
static void test_pass_pages(void)
{
    struct fixture f;
    setup(&f, NULL);
    put_dep(&f, DEP_C, "dev2", doc_a, sizeof doc_a, MGO_MGR_DESIRED_PRESENT);
    uint64_t v = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(f.store, "dev3", &v), MGO_OK);
    const char *devs[] = {"dev1", "dev2", "dev3"};
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(mgo_mgr_store_manifest_get(f.store, devs[i], &v, NULL), MGO_OK);
        CU_ASSERT_EQUAL(mgo_mgr_store_manifest_set_published(f.store, devs[i], v), MGO_OK);
    }
    mgo_publish__refresh(f.pub);
    bool more = false;
    for (size_t i = 0; i < 3; i++) {
        CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 1, &more), MGO_OK);
        CU_ASSERT_EQUAL_FATAL(f.rec.len, i + 1); /* one manifest a poll, no document */
        char topic[64];
        snprintf(topic, sizeof topic, "margo/v1/devices/%s/desired", devs[i]);
        CU_ASSERT_STRING_EQUAL(f.rec.msgs[i].topic, topic);
        CU_ASSERT_TRUE(more);
    }
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 1, &more), MGO_OK); /* the end of the pass */
    CU_ASSERT_EQUAL(f.rec.len, 3);
    CU_ASSERT_FALSE(mgo_publish__waiting(f.pub));
    /* all three unacknowledged again (newer versions); none in flight: one a poll */
    f.pub->pending_len = 0;
    for (size_t i = 0; i < 3; i++)
        CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(f.store, devs[i], &v), MGO_OK);
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 1, &more), MGO_OK);
    CU_ASSERT_TRUE(more);
    CU_ASSERT_STRING_EQUAL(f.rec.msgs[f.rec.len - 1].topic, "margo/v1/devices/dev1/desired");
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 1, &more), MGO_OK);
    CU_ASSERT_STRING_EQUAL(f.rec.msgs[f.rec.len - 1].topic, "margo/v1/devices/dev2/desired");
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 1, &more), MGO_OK);
    CU_ASSERT_STRING_EQUAL(f.rec.msgs[f.rec.len - 1].topic, "margo/v1/devices/dev3/desired");
    size_t n = f.rec.len;
    CU_ASSERT_EQUAL(mgo_publish__poll(f.pub, 10, &more), MGO_OK); /* all in flight */
    CU_ASSERT_EQUAL(f.rec.len, n);
    CU_ASSERT_FALSE(more);
    teardown(&f);
}

static void test_rollup_period_follows_cost(void)
{
    CU_ASSERT_EQUAL(mgo_rollup__next_ms(0), MGO_ROLLUP_PERIOD_MS);
    CU_ASSERT_EQUAL(mgo_rollup__next_ms(50), MGO_ROLLUP_PERIOD_MS); /* 20 x 50 = the period */
    CU_ASSERT_EQUAL(mgo_rollup__next_ms(51), 51 * MGO_ROLLUP_COST_FACTOR);
    CU_ASSERT_EQUAL(mgo_rollup__next_ms(400), 400 * MGO_ROLLUP_COST_FACTOR);
    CU_ASSERT_EQUAL(mgo_rollup__next_ms(1499), 1499 * MGO_ROLLUP_COST_FACTOR);
    CU_ASSERT_EQUAL(mgo_rollup__next_ms(1500), MGO_ROLLUP_MAX_PERIOD_MS);
    CU_ASSERT_EQUAL(mgo_rollup__next_ms(UINT64_MAX), MGO_ROLLUP_MAX_PERIOD_MS);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"manifests carry a validity; a refresh re-issues them unchanged otherwise",
         test_manifest_validity_and_refresh},
        {"the roll-up period stretches with the cost of a round", test_rollup_period_follows_cost},
        {"device: documents then manifest, table QoS/retain, ack recorded",
         test_device_publishes_documents_then_manifest},
        {"device: only changed documents", test_device_only_changed_documents},
        {"device: nothing while disconnected", test_device_disconnected_publishes_nothing},
        {"device: signed when a key is set", test_device_signed_when_key_set},
        {"sweep: new session republishes all", test_sweep_after_new_session_republishes_all},
        {"sweep: resumed session, unacknowledged and removed",
         test_sweep_resumed_publishes_unacknowledged_and_clears_removed},
        {"several managers: inactive, then the holder's poll", test_inactive_then_poll},
        {"window: full, then the poll after an acknowledgement", test_window_full_then_poll},
        {"passes and the unacknowledged walk go a page a poll", test_pass_pages},
        {"a refresh of an unacknowledged manifest carries its documents",
         test_refresh_unacknowledged_carries_documents},
        {NULL, NULL},
    };
    mgo_test_add_suite("publish", cases);
}
