/* test_ingest.c - device messages into the store (manager/src/ingest.c) against a temporary
 * store and a recording outbox, no broker: a status is stored and sent live, an older
 * journal position and forged capabilities are refused, a batch whose commit fails is held
 * (nothing sent live) and stored, in order, by the retry. */
#include "mgo_test.h"

#include "../../manager/src/ingest.h"
#include "../../manager/src/lookup.h"
#include "../../manager/src/sse.h"
#include "mgo/margo.h"
#include "mgr_test_util.h"
#include "outbox_rec.h"

#define DEP "bbbbbbbb-0000-4000-8000-000000000001"
#define STATUS_TOPIC "margo/v1/devices/dev1/status/" DEP
#define DIGEST "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

struct fixture {
    char dir[256];
    struct mgo_mgr_store *store;
    struct rec_outbox rec;
    struct mgo_outbox outbox;
    struct mgo_publisher *pub;
    struct mgo_sse_hub *hub;
    struct mgo_sse_client *client; /* follows every event */
    struct mgo_ingest in;
};

static void setup(struct fixture *f)
{
    mgo_test_tmpdir("mgr", f->dir);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(f->dir, &f->store), MGO_OK);
    mgo_mgr_store_set_epoch(f->store, "0123456789abcdef"); /* as the manager does at start */
    rec_init(&f->rec, &f->outbox);
    f->pub = calloc(1, sizeof *f->pub);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->pub);
    mgo_publish__init(f->pub, f->store, &f->outbox, "margo/v1", NULL);
    CU_ASSERT_EQUAL_FATAL(mgo_sse__hub_new(&f->hub), MGO_OK);
    f->client = mgo_sse__client_new(NULL, 0);
    CU_ASSERT_PTR_NOT_NULL_FATAL(f->client);
    mgo_sse__hub_add(f->hub, f->client);
    mgo_ingest__init(&f->in, f->store, f->pub, f->hub, "margo/v1");
    uint64_t v = 0;
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_manifest_bump(f->store, "dev1", &v), MGO_OK);
    static const uint8_t doc[] = {0x80};
    struct mgo_mgr_deployment_row r = mgr_test_dep_row(DEP, "dev1", doc, sizeof doc, DIGEST, v);
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_deployment_put(f->store, &r), MGO_OK);
}

static void teardown(struct fixture *f)
{
    mgo_ingest__cleanup(&f->in);
    mgo_sse__hub_shutdown(f->hub);
    mgo_sse__client_free(f->hub, f->client);
    mgo_sse__hub_free(f->hub);
    rec_clear(&f->rec);
    free(f->pub);
    mgo_mgr_store_close(f->store);
    mgo_test_rm_rf(f->dir);
}

/* Hands ingest a message as the loop does: topic and payload malloc'd, ownership moved. */
static void deliver(struct fixture *f, const char *topic, const char *yaml)
{
    struct mgo_buf b;
    mgo_buf_init(&b, 1u << 20);
    CU_ASSERT_EQUAL_FATAL(mgo_test_yaml_msgpack(yaml, &b), MGO_OK);
    uint8_t *payload = malloc(b.len);
    CU_ASSERT_PTR_NOT_NULL_FATAL(payload);
    memcpy(payload, b.data, b.len);
    mgo_ingest__message(&f->in, strdup(topic), payload, b.len);
    mgo_buf_cleanup(&b);
}

static void deliver_status(struct fixture *f, const char *state, uint64_t seq)
{
    char yaml[512];
    snprintf(yaml, sizeof yaml,
             "{apiVersion: deployment.margo.org/v1alpha1, kind: DeploymentStatusManifest,"
             " deploymentId: %s, adoptedManifestVersion: 1, status: {state: %s},"
             " components: [{name: c, state: %s}],"
             " x-margo-mqtt-extensions: {boot: 1, seq: %llu}}",
             DEP, state, state, (unsigned long long)seq);
    deliver(f, STATUS_TOPIC, yaml);
}

static mgo_err state_visit(const struct mgo_mgr_status_row *row, void *ctx)
{
    snprintf(ctx, 32, "%s", row->state);
    return MGO_OK;
}

/* The stored overall state, "" when none. */
static void stored_state(struct fixture *f, char out[32])
{
    out[0] = '\0';
    mgo_err err = mgo_mgr_store_status_get(f->store, DEP, state_visit, out);
    CU_ASSERT(err == MGO_OK || err == MGO_ERR_NOT_FOUND);
}

static mgo_err count_visit(const struct mgo_mgr_status_row *row, void *ctx)
{
    (void)row;
    (*(int *)ctx)++;
    return MGO_OK;
}

static int history_len(struct fixture *f)
{
    int n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_status_history(f->store, DEP, count_visit, &n), MGO_OK);
    return n;
}

/* Live events the client has been sent so far named event (reads only what is pending: call
 * it when at least one event is known to be there). */
static size_t live_count(struct fixture *f, const char *event)
{
    char buf[64 * 1024];
    long n = mgo_sse__read(f->hub, f->client, buf, sizeof buf - 1);
    CU_ASSERT_FATAL(n > 0);
    buf[n] = '\0';
    char needle[64];
    snprintf(needle, sizeof needle, "event: %s\n", event);
    size_t count = 0;
    for (const char *p = strstr(buf, needle); p; p = strstr(p + 1, needle))
        count++;
    return count;
}

static void test_status_stored_and_sent_live(void)
{
    struct fixture f;
    setup(&f);
    deliver_status(&f, "installing", 1);
    char state[32];
    stored_state(&f, state);
    CU_ASSERT_STRING_EQUAL(state, "installing");
    CU_ASSERT_EQUAL(mgo_ingest__held(&f.in), 0);
    /* "hello" is not pushed to this client (added directly): only the status */
    CU_ASSERT_EQUAL(live_count(&f, "status"), 1);
    teardown(&f);
}

static void test_stale_status_refused(void)
{
    struct fixture f;
    setup(&f);
    deliver_status(&f, "installed", 5);
    /* an older journal position (a replay, protocol.md §6.3) joins the history, never
     * replaces the current status */
    deliver_status(&f, "installing", 4);
    char state[32];
    stored_state(&f, state);
    CU_ASSERT_STRING_EQUAL(state, "installed");
    CU_ASSERT_EQUAL(history_len(&f), 2);
    /* a position seen before is refused and changes nothing */
    deliver_status(&f, "failed", 5);
    deliver_status(&f, "failed", 4);
    stored_state(&f, state);
    CU_ASSERT_STRING_EQUAL(state, "installed");
    CU_ASSERT_EQUAL(history_len(&f), 2);
    CU_ASSERT_EQUAL(mgo_ingest__held(&f.in), 0); /* refused for good, not held */
    teardown(&f);
}

static bool has_caps(struct fixture *f, const char *device)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_capabilities caps;
    struct mgo_value tree;
    mgo_err err = mgo_lookup__caps(f->store, device, &arena, &caps, &tree);
    mgo_arena_cleanup(&arena);
    return err == MGO_OK;
}

static void test_caps_id_mismatch_refused(void)
{
    struct fixture f;
    setup(&f);
    static const char caps_fmt[] =
        "{apiVersion: device.margo.org/v1alpha1, kind: DeviceCapabilitiesManifest,"
        " properties: {id: %s, vendor: Acme, modelNumber: X1, serialNumber: S1,"
        " cpus: [{cores: 4, architecture: amd64}], memory: 1Gi, storage: 10Gi,"
        " interfaces: [{type: ethernet}], otelCollector: true,"
        " supportedRuntimes: [oci], supportedDeploymentTypes: [compose]}}";
    char yaml[1024];
    snprintf(yaml, sizeof yaml, caps_fmt, "dev2"); /* forged: dev2's claims on dev1's topic */
    deliver(&f, "margo/v1/devices/dev1/capabilities", yaml);
    CU_ASSERT_FALSE(has_caps(&f, "dev1"));
    CU_ASSERT_FALSE(has_caps(&f, "dev2"));
    snprintf(yaml, sizeof yaml, caps_fmt, "dev1");
    deliver(&f, "margo/v1/devices/dev1/capabilities", yaml);
    CU_ASSERT_TRUE(has_caps(&f, "dev1"));
    CU_ASSERT_EQUAL(mgo_ingest__held(&f.in), 0);
    teardown(&f);
}

static void test_commit_failure_keeps_batch_and_retries(void)
{
    struct fixture f;
    setup(&f);
    mgo_ingest__begin(&f.in);
    deliver_status(&f, "installing", 1);
    deliver_status(&f, "installed", 2);
    mgo_mgr_store_fail_commits(f.store, 1);
    CU_ASSERT_NOT_EQUAL(mgo_ingest__commit(&f.in), MGO_OK);
    /* rolled back, nothing lost: both messages held, in order */
    char state[32];
    stored_state(&f, state);
    CU_ASSERT_STRING_EQUAL(state, "");
    CU_ASSERT_EQUAL(mgo_ingest__held(&f.in), 2);
    /* a message arriving meanwhile goes behind them */
    deliver_status(&f, "failed", 3);
    CU_ASSERT_EQUAL(mgo_ingest__held(&f.in), 3);
    CU_ASSERT_EQUAL(mgo_ingest__retry_held(&f.in, 256), 0);
    stored_state(&f, state);
    CU_ASSERT_STRING_EQUAL(state, "failed");
    CU_ASSERT_EQUAL(history_len(&f), 3);
    /* live events only for what was committed: the three stored by the retry, none of the
     * rolled-back batch */
    CU_ASSERT_EQUAL(live_count(&f, "status"), 3);
    teardown(&f);
}

/* The receipts of the recording outbox, decoded: count, and the last one's fields. */
static size_t receipts(struct fixture *f, struct mgo_arena *arena, struct mgo_receipt *last)
{
    size_t n = 0;
    for (size_t i = 0; i < f->rec.len; i++) {
        const struct rec_msg *m = &f->rec.msgs[i];
        if (strcmp(m->topic, "margo/v1/devices/dev1/receipt") != 0)
            continue;
        CU_ASSERT(m->retain && m->qos == 1); /* the topics table's flags */
        struct mgo_problems p;
        mgo_problems_init(&p);
        CU_ASSERT_EQUAL_FATAL(mgo_receipt_decode(m->payload, m->len, arena, last, &p), MGO_OK);
        n++;
    }
    return n;
}

/* protocol.md §6.3: a receipt goes out after the commit that stored its statuses (one per
 * device and batch, the newest position), never for a batch that was rolled back; a gap in
 * the positions holds the receipt back and changes its epoch once (a replay request); the
 * replay topic is ingested like the status topic. */
static void test_receipts_after_commit(void)
{
    struct fixture f;
    setup(&f);
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_receipt r;
    mgo_ingest__begin(&f.in);
    deliver_status(&f, "installing", 1);
    deliver_status(&f, "installing", 2);
    CU_ASSERT_EQUAL(receipts(&f, &arena, &r), 0); /* nothing before the commit */
    CU_ASSERT_EQUAL(mgo_ingest__commit(&f.in), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(receipts(&f, &arena, &r), 1);
    CU_ASSERT(r.boot == 1 && r.seq == 2);
    char first_epoch[MGO_MGR_EPOCH_SIZE];
    snprintf(first_epoch, sizeof first_epoch, "%s", r.epoch);
    /* a rolled-back batch: no receipt */
    mgo_ingest__begin(&f.in);
    deliver_status(&f, "installing", 3);
    mgo_mgr_store_fail_commits(f.store, 1);
    CU_ASSERT_NOT_EQUAL(mgo_ingest__commit(&f.in), MGO_OK);
    CU_ASSERT_EQUAL(receipts(&f, &arena, &r), 1);
    CU_ASSERT_EQUAL(mgo_ingest__retry_held(&f.in, 256), 0); /* stored now: receipt (1, 3) */
    CU_ASSERT_EQUAL_FATAL(receipts(&f, &arena, &r), 2);
    CU_ASSERT(r.seq == 3);
    CU_ASSERT_STRING_EQUAL(r.epoch, first_epoch);
    /* (1, 4) and (1, 5) lost: (1, 6) opens a gap: the receipt stays at 3, new epoch */
    deliver_status(&f, "installed", 6);
    CU_ASSERT_EQUAL_FATAL(receipts(&f, &arena, &r), 3);
    CU_ASSERT(r.seq == 3);
    CU_ASSERT_STRING_NOT_EQUAL(r.epoch, first_epoch);
    char gap_epoch[MGO_MGR_EPOCH_SIZE];
    snprintf(gap_epoch, sizeof gap_epoch, "%s", r.epoch);
    /* the replays fill it, on the replay topic, out of order; the epoch stays */
    static const char replay_topic[] = "margo/v1/devices/dev1/replay/" DEP;
    char yaml[512];
    for (uint64_t seq = 5; seq >= 4; seq--) {
        snprintf(yaml, sizeof yaml,
                 "{apiVersion: deployment.margo.org/v1alpha1, kind: DeploymentStatusManifest,"
                 " deploymentId: %s, adoptedManifestVersion: 1, status: {state: installing},"
                 " components: [{name: c, state: installing}],"
                 " x-margo-mqtt-extensions: {boot: 1, seq: %llu}}",
                 DEP, (unsigned long long)seq);
        deliver(&f, replay_topic, yaml);
    }
    CU_ASSERT_EQUAL_FATAL(receipts(&f, &arena, &r), 5);
    CU_ASSERT(r.seq == 6);
    CU_ASSERT_STRING_EQUAL(r.epoch, gap_epoch);
    char state[32];
    stored_state(&f, state);
    CU_ASSERT_STRING_EQUAL(state, "installed"); /* the replays did not go backwards */
    CU_ASSERT_EQUAL(history_len(&f), 6);
    mgo_arena_cleanup(&arena);
    teardown(&f);
}

static void test_batch_commits_once_and_sends_live_after(void)
{
    struct fixture f;
    setup(&f);
    mgo_ingest__begin(&f.in);
    deliver_status(&f, "installing", 1);
    deliver_status(&f, "installed", 2);
    CU_ASSERT_EQUAL(mgo_ingest__commit(&f.in), MGO_OK);
    char state[32];
    stored_state(&f, state);
    CU_ASSERT_STRING_EQUAL(state, "installed");
    CU_ASSERT_EQUAL(history_len(&f), 2);
    CU_ASSERT_EQUAL(live_count(&f, "status"), 2);
    teardown(&f);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"receipts after the commit; gaps ask for a replay", test_receipts_after_commit},
        {"status stored and sent live", test_status_stored_and_sent_live},
        {"stale status refused", test_stale_status_refused},
        {"capabilities id mismatch refused", test_caps_id_mismatch_refused},
        {"batch commits once, live events after", test_batch_commits_once_and_sends_live_after},
        {"commit failure keeps the batch and retries", test_commit_failure_keeps_batch_and_retries},
        {NULL, NULL},
    };
    mgo_test_add_suite("ingest", cases);
}
