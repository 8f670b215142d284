/* test_ingest.c - device messages into the store (manager/src/ingest.c) against a temporary
 * store and a recording outbox, no broker: a status is stored and sent live, an older
 * journal position and forged capabilities are refused, a batch whose commit fails is held
 * (nothing sent live) and stored, in order, by the retry. */
#include "mgo_test.h"
#include "pg.h"

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
    CU_ASSERT_EQUAL_FATAL(mgo_mgr_store_open(mgo_test_store(f->dir), &f->store), MGO_OK);
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

static void no_park(void *arg)
{
    (void)arg;
}

/* Live events the client has been sent so far named event (reads only what is pending: call
 * it when at least one event is known to be there). */
static size_t live_count(struct fixture *f, const char *event)
{
    char buf[64 * 1024];
    long n = mgo_sse__read(f->hub, f->client, buf, sizeof buf - 1, no_park, no_park, NULL);
    CU_ASSERT_FATAL(n > 0);
    buf[n] = '\0';
    char needle[64];
    snprintf(needle, sizeof needle, "event: %s\n", event);
    size_t count = 0;
    for (const char *p = strstr(buf, needle); p; p = strstr(p + 1, needle))
        count++;
    return count;
}

static uint64_t device_counter(struct fixture *f, const char *id, int which);

/* issue 19 item 2: 5,000 events of 2 KiB from one device in a second leave a bounded store
 * and a counted excess (event-rate, event-history). */
static void test_event_flood_bounded_and_counted(void)
{
    struct fixture f;
    setup(&f);
    f.in.event_rate = 1000;
    mgo_mgr_store_set_event_limit(f.store, 100);
    static char yaml[2400], yaml2[2400];
    char msg[2049];
    memset(msg, 'x', sizeof msg - 1);
    msg[sizeof msg - 1] = '\0';
    static const char fmt[] = "{deviceId: %s, type: flood, severity: info, message: %s, "
                              "timestamp: 1}";
    snprintf(yaml, sizeof yaml, fmt, "dev1", msg);
    snprintf(yaml2, sizeof yaml2, fmt, "dev2", msg);
    mgo_ingest__begin(&f.in);
    for (int i = 0; i < 5000; i++) {
        deliver(&f, "margo/v1/devices/dev1/events", yaml);
        if (i % 500 == 499) { /* batches, as the loop makes them */
            CU_ASSERT_EQUAL(mgo_ingest__commit(&f.in), MGO_OK);
            mgo_ingest__begin(&f.in);
        }
    }
    CU_ASSERT_EQUAL(mgo_ingest__commit(&f.in), MGO_OK);
    CU_ASSERT_EQUAL(mgo_ingest__held(&f.in), 0u);
    uint64_t n = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_event_count(f.store, "dev1", &n), MGO_OK);
    /* the limit, passed by less than one pruning interval (64) */
    CU_ASSERT(n >= 100 && n < 164);
    /* 1,000 in the minute's window were taken; the other 4,000 are counted, not stored */
    CU_ASSERT_EQUAL(device_counter(&f, "dev1", 0), 4000u);
    /* another device is not affected by dev1's window */
    deliver(&f, "margo/v1/devices/dev2/events", yaml2);
    CU_ASSERT_EQUAL(mgo_mgr_store_event_count(f.store, "dev2", &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 1u);
    CU_ASSERT_EQUAL(device_counter(&f, "dev2", 0), 0u);
    teardown(&f);
}

/* Statuses past status-rate are stored all the same (the receipt protocol covers them,
 * protocol.md §6.3) and counted; replays are not counted. */
static void test_status_rate_counts_but_keeps(void)
{
    struct fixture f;
    setup(&f);
    f.in.status_rate = 5;
    for (uint64_t seq = 1; seq <= 12; seq++)
        deliver_status(&f, seq % 2 ? "installing" : "installed", seq);
    CU_ASSERT_EQUAL(history_len(&f), 12);
    CU_ASSERT_EQUAL(device_counter(&f, "dev1", 1), 7u);
    char state[32];
    stored_state(&f, state);
    CU_ASSERT_STRING_EQUAL(state, "installed");
    /* the receipt covers every one of them */
    const struct rec_msg *m = rec_find(&f.rec, "margo/v1/devices/dev1/receipt");
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_receipt r;
    CU_ASSERT_EQUAL_FATAL(mgo_receipt_decode(m->payload, m->len, &arena, &r, &p), MGO_OK);
    CU_ASSERT(r.boot == 1 && r.seq == 12);
    mgo_arena_cleanup(&arena);
    teardown(&f);
}

static const char ROLE_CAPS[] =
    "{apiVersion: device.margo.org/v1alpha1, kind: DeviceCapabilitiesManifest,"
    " properties: {id: %s, vendor: Acme, modelNumber: X1, serialNumber: S-1,"
    " cpus: [{cores: 4, architecture: amd64}], memory: 8Gi, storage: 10Gi,"
    " interfaces: [{type: ethernet}], otelCollector: true,"
    " supportedRuntimes: [oci], supportedDeploymentTypes: [compose]}}";

/* issue 19 item 1: a role identity (the margo- prefix, or a configured name) is refused on
 * every topic kind: nothing about it is stored, and the store refuses it as a device too. */
static void test_role_identities_refused(void)
{
    struct fixture f;
    setup(&f);
    CU_ASSERT_EQUAL(mgo_mgr_store_add_role(f.store, "ops-watch"), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mgr_store_add_role(f.store, "bad/name"), MGO_ERR_INVALID);
    const char *roles[] = {"margo-monitor", "Margo-Monitor", "margo-manager", "ops-watch"};
    for (size_t i = 0; i < sizeof roles / sizeof roles[0]; i++) {
        const char *id = roles[i];
        char topic[256], yaml[1024];
        snprintf(topic, sizeof topic, "margo/v1/devices/%s/capabilities", id);
        snprintf(yaml, sizeof yaml, ROLE_CAPS, id);
        deliver(&f, topic, yaml);
        snprintf(topic, sizeof topic, "margo/v1/devices/%s/state", id);
        snprintf(yaml, sizeof yaml, "{deviceId: %s, state: online, boot: 1}", id);
        deliver(&f, topic, yaml);
        snprintf(topic, sizeof topic, "margo/v1/devices/%s/events", id);
        snprintf(yaml, sizeof yaml,
                 "{deviceId: %s, type: t, severity: info, message: m, "
                 "timestamp: 1}",
                 id);
        deliver(&f, topic, yaml);
        snprintf(topic, sizeof topic, "margo/v1/devices/%s/status/%s", id, DEP);
        snprintf(yaml, sizeof yaml,
                 "{apiVersion: deployment.margo.org/v1alpha1, kind: DeploymentStatusManifest,"
                 " deploymentId: %s, adoptedManifestVersion: 1, status: {state: installed},"
                 " components: [{name: c, state: installed}],"
                 " x-margo-mqtt-extensions: {boot: 1, seq: 1}}",
                 DEP);
        deliver(&f, topic, yaml);
        snprintf(topic, sizeof topic, "margo/v1/devices/%s/replay/%s", id, DEP);
        deliver(&f, topic, yaml);
        CU_ASSERT_EQUAL(mgo_mgr_store_device_get(f.store, id, NULL, NULL), MGO_ERR_NOT_FOUND);
        uint64_t n = 1;
        CU_ASSERT_EQUAL(mgo_mgr_store_event_count(f.store, id, &n), MGO_OK);
        CU_ASSERT_EQUAL(n, 0u);
        /* the store's own refusal, under the callers' */
        static const uint8_t caps[] = {0x80};
        CU_ASSERT_EQUAL(mgo_mgr_store_device_put_caps(f.store, id, caps, sizeof caps),
                        MGO_ERR_INVALID);
        uint64_t v = 0;
        CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(f.store, id, &v), MGO_ERR_INVALID);
    }
    CU_ASSERT_EQUAL(mgo_ingest__held(&f.in), 0u);
    CU_ASSERT_EQUAL(history_len(&f), 0); /* dev1's deployment got nothing from them */
    CU_ASSERT_PTR_NULL(rec_find(&f.rec, "margo/v1/devices/margo-monitor/receipt"));
    /* a device id that only contains the prefix is a device */
    CU_ASSERT_FALSE(mgo_mgr_store_is_role(f.store, "dev-margo-1"));
    CU_ASSERT_TRUE(mgo_mgr_store_is_role(f.store, "margo-anything"));
    teardown(&f);
}

struct counters {
    uint64_t v[3];
};

static mgo_err counters_visit(const struct mgo_mgr_device_row *row, void *ctx)
{
    struct counters *c = ctx;
    c->v[0] = row->events_dropped;
    c->v[1] = row->statuses_over_rate;
    c->v[2] = row->positions_dropped;
    return MGO_OK;
}

/* which: 0 events dropped, 1 statuses over the rate, 2 positions dropped */
static uint64_t device_counter(struct fixture *f, const char *id, int which)
{
    struct counters c = {{0}};
    CU_ASSERT_EQUAL(mgo_mgr_store_device_get(f->store, id, counters_visit, &c), MGO_OK);
    return c.v[which];
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
        {"5,000 events from one device: bounded store, counted excess",
         test_event_flood_bounded_and_counted},
        {"statuses over the rate are counted, never dropped", test_status_rate_counts_but_keeps},
        {"role identities refused on every topic kind", test_role_identities_refused},
        {"stale status refused", test_stale_status_refused},
        {"capabilities id mismatch refused", test_caps_id_mismatch_refused},
        {"batch commits once, live events after", test_batch_commits_once_and_sends_live_after},
        {"commit failure keeps the batch and retries", test_commit_failure_keeps_batch_and_retries},
        {NULL, NULL},
    };
    mgo_test_add_suite("ingest", cases);
}
