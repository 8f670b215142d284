/* fleet_sim.c - one process of the fleet simulator: --count devices (≤ ~2000 per process, so
 * 10,000 fit in five processes under the 20,000-open-files limit), each with its own MQTT 5
 * connection (Paho MQTTAsync, persistent session, last will), speaking the real protocol with
 * the real codecs:
 *
 *   connect (clean start off) -> subscribe desired + deployments/+ (on every connect) ->
 *   retained presence online + capabilities -> on a manifest: decode + validate, wait for every
 *   referenced document with a matching mgo_doc_digest, plan with the agent's own planner
 *   (mgo/plan.h from the agent library, when built with it), then pending -> installing (per
 * component) -> installed, each status with a growing (boot, seq) journal position.
 *
 * The runtime is a no-op that answers at once or after --delay-ms per component. Unlike
 * margo-agent, the simulator keeps no on-disk journal (no fsync per status) and acts as soon
 * as a manifest is complete (--settle-ms 0 by default; the agent waits settle-ms, 300 ms).
 *
 * One loop thread owns every device; Paho's callbacks only copy into one process-wide queue
 * and wake the loop through an eventfd. The loop is event-driven: it visits only the devices
 * that had an event or whose timer is due (a min-heap of per-device due times: reconnect
 * backoff, --delay-ms steps, --settle-ms, a manifest that waited for running jobs) and sleeps
 * until the earliest due time, the next rate-limited initial connect, or an event; its CPU per
 * wake-up does not grow with --count. Reconnects use mgo/backoff.h (jittered exponential, the
 * agent's helper).
 *
 * Progress goes to stdout, one line per event, monotonic ns (same clock as the controller):
 *   READY <n>                 every device connected, subscribed, presence + capabilities sent
 *   C <idx> <ns> <session>    CONNACK (session present 0/1)
 *   M <idx> <ns> <version>    manifest accepted (documents complete and digests match)
 *   R <idx> <ns>              back in sync after a reconnect (session resumed, or the retained
 *                             manifest of the accepted version received again)
 *   I <idx> <ns>              final "installed" status published
 *   F <idx> <ns> <why>        the device refused something
 *   X <idx> <ns>              an install failed as injected (--fail-version)
 *
 * Injected failures (tests of rollouts): with --fail-version V, installing a document whose
 * applicationVersion is V ends `failed` with the error code --fail-code (RUNTIME_FAILED by
 * default) on its last component, on the devices --fail-ids lists (absolute indices,
 * comma-separated; every device of the process when not given).
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <MQTTAsync.h>

#include "bench_util.h"
#include "mgo/arena.h"
#include "mgo/backoff.h"
#include "mgo/buf.h"
#include "mgo/limits.h"
#include "mgo/margo.h"
#include "mgo/topic.h"
#include "mgo/value.h"

#ifdef MGO_SIM_AGENT_PLAN
#include "mgo/plan.h" /* the agent library's public planner */
#endif

#define SIM_MAX_DEPS 4
#define SIM_MAX_COMPS 8

/* ---- configuration -------------------------------------------------------------------- */

struct sim_cfg {
    const char *url;
    const char *prefix;
    const char *id_prefix;
    int first;
    int count;
    uint64_t boot;
    int delay_ms;
    int settle_ms;
    int connect_rate; /* initial connects per second */
    uint32_t backoff_min_ms, backoff_max_ms;
    uint32_t session_expiry_s;
    const char *fail_version; /* installs of this applicationVersion fail */
    const char *fail_code;
    const char *fail_ids; /* "1,5,9" or NULL: every device */
};

static struct sim_cfg cfg = {
    .url = NULL,
    .prefix = "margo/v1",
    .id_prefix = "sim",
    .first = 0,
    .count = 100,
    .boot = 1,
    .delay_ms = 0,
    .settle_ms = 0,
    .connect_rate = 500,
    .backoff_min_ms = 500,
    .backoff_max_ms = 60000,
    .session_expiry_s = 86400,
    .fail_version = NULL,
    .fail_code = "RUNTIME_FAILED",
    .fail_ids = NULL,
};

/* ---- device state ----------------------------------------------------------------------- */

struct sim_doc {
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char version[MGO_MAX_APP_VERSION_LEN + 1]; /* applicationVersion, "" when none */
    char digest[MGO_DIGEST_STR_SIZE];
    size_t ncomp;
    char comps[SIM_MAX_COMPS][64];
    bool used;
};

struct sim_installed {
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char digest[MGO_DIGEST_STR_SIZE];
    enum mgo_state state;
    uint64_t adopted;
    bool used;
};

struct sim_job { /* one plan item being executed */
    int doc;     /* index in docs (install) or -1 (remove) */
    int inst;    /* index in installed */
    bool remove;
    int step;
};

struct sim_device {
    int idx;
    char id[48];
    MQTTAsync h;
    bool connected, connecting, subscribed, ready_reported, started;
    bool resync_wait; /* reconnected with a new session: waiting for the retained manifest */
    int64_t next_connect_ns;
    struct mgo_backoff bo;
    uint64_t seq;
    uint64_t accepted;
    bool has_pending;
    int64_t pending_at_ns;
    uint64_t pend_version;
    size_t pend_n;
    char pend_ids[SIM_MAX_DEPS][MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char pend_digests[SIM_MAX_DEPS][MGO_DIGEST_STR_SIZE];
    struct sim_doc docs[SIM_MAX_DEPS];
    struct sim_installed inst[SIM_MAX_DEPS];
    struct sim_job jobs[2 * SIM_MAX_DEPS];
    size_t njobs, job_pos;
    int64_t next_step_ns;
    uint8_t *last_status; /* latest status per device (republished after a new session) */
    size_t last_status_len;
    char last_status_topic[MGO_MAX_TOPIC_LEN + 1];
    int64_t due_ns; /* when the loop visits this device next (valid while heap_pos >= 0) */
    int heap_pos;   /* index in the due heap, -1 when not in it */
};

static struct sim_device *devs;
static volatile sig_atomic_t stop_flag;

/* ---- the process-wide event queue (filled by Paho's threads) ------------------------------ */

enum sim_ev_kind { EV_CONNECTED = 1, EV_CONNECT_FAILED, EV_LOST, EV_MESSAGE, EV_SUBSCRIBED };

struct sim_ev {
    struct sim_ev *next;
    enum sim_ev_kind kind;
    int dev;
    bool session_present;
    char *topic;
    uint8_t *payload;
    size_t len;
};

static pthread_mutex_t q_mu = PTHREAD_MUTEX_INITIALIZER;
static struct sim_ev *q_head, *q_tail;
static int q_efd = -1; /* wakes the loop: written when the queue becomes non-empty, on signals */

static void q_wake(void)
{
    uint64_t one = 1;
    ssize_t n = write(q_efd, &one, sizeof one); /* fails only when the counter is full: awake */
    (void)n;
}

static void q_push(struct sim_ev *e)
{
    e->next = NULL;
    pthread_mutex_lock(&q_mu);
    bool was_empty = !q_head;
    if (q_tail)
        q_tail->next = e;
    else
        q_head = e;
    q_tail = e;
    pthread_mutex_unlock(&q_mu);
    if (was_empty) /* otherwise the loop has been woken and has not taken the queue yet */
        q_wake();
}

static void q_push_kind(int dev, enum sim_ev_kind kind, bool sp)
{
    struct sim_ev *e = calloc(1, sizeof *e);
    if (!e)
        return;
    e->kind = kind;
    e->dev = dev;
    e->session_present = sp;
    q_push(e);
}

/* Takes every queued event (a list); when there is none, sleeps until a callback or a signal
 * wakes the loop or until the monotonic time deadline_ns (INT64_MAX: no deadline). */
static struct sim_ev *q_take_all(int64_t deadline_ns)
{
    uint64_t cnt;
    ssize_t n = read(q_efd, &cnt, sizeof cnt); /* non-blocking: clears a pending wake-up */
    (void)n;
    pthread_mutex_lock(&q_mu);
    struct sim_ev *all = q_head;
    q_head = q_tail = NULL;
    pthread_mutex_unlock(&q_mu);
    if (all || stop_flag || deadline_ns <= mgo_bench_now_ns())
        return all;
    /* a push after the take finds the queue empty and writes the eventfd: no wake-up is lost */
    struct pollfd pfd = {.fd = q_efd, .events = POLLIN};
    struct timespec ts, *tsp = NULL;
    if (deadline_ns != INT64_MAX) {
        int64_t left = deadline_ns - mgo_bench_now_ns();
        if (left < 0)
            left = 0;
        ts.tv_sec = (time_t)(left / 1000000000);
        ts.tv_nsec = (long)(left % 1000000000);
        tsp = &ts;
    }
    ppoll(&pfd, 1, tsp, NULL);
    return NULL; /* the caller takes what arrived on its next turn */
}

static void ev_free(struct sim_ev *e)
{
    free(e->topic);
    free(e->payload);
    free(e);
}

/* ---- Paho callbacks (Paho's threads: copy and return) ------------------------------------ */

static int dev_index(void *ctx)
{
    return (int)((struct sim_device *)ctx - devs);
}

static void on_lost(void *ctx, char *cause)
{
    (void)cause;
    q_push_kind(dev_index(ctx), EV_LOST, false);
}

static int on_message(void *ctx, char *topic, int tlen, MQTTAsync_message *m)
{
    struct sim_ev *e = calloc(1, sizeof *e);
    size_t n = tlen > 0 ? (size_t)tlen : strlen(topic);
    size_t plen = m->payloadlen > 0 ? (size_t)m->payloadlen : 0;
    if (!e || plen > MGO_MAX_MESSAGE_BYTES)
        goto done;
    e->kind = EV_MESSAGE;
    e->dev = dev_index(ctx);
    e->topic = malloc(n + 1);
    e->payload = plen ? malloc(plen) : NULL;
    if (!e->topic || (plen && !e->payload)) {
        ev_free(e);
        e = NULL;
        goto done;
    }
    memcpy(e->topic, topic, n);
    e->topic[n] = '\0';
    if (plen)
        memcpy(e->payload, m->payload, plen);
    e->len = plen;
    q_push(e);
    e = NULL;
done:
    free(e);
    MQTTAsync_freeMessage(&m);
    MQTTAsync_free(topic);
    return 1;
}

static void on_connect_ok(void *ctx, MQTTAsync_successData5 *r)
{
    q_push_kind(dev_index(ctx), EV_CONNECTED, r && r->alt.connect.sessionPresent);
}

static void on_connect_fail(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)r;
    q_push_kind(dev_index(ctx), EV_CONNECT_FAILED, false);
}

static void on_sub_ok(void *ctx, MQTTAsync_successData5 *r)
{
    (void)r;
    q_push_kind(dev_index(ctx), EV_SUBSCRIBED, false);
}

static void on_sub_fail(void *ctx, MQTTAsync_failureData5 *r)
{
    (void)r;
    q_push_kind(dev_index(ctx), EV_LOST, false); /* treated as a broken connection */
}

/* ---- output --------------------------------------------------------------------------------- */

static void out_event(char kind, const struct sim_device *d, const char *extra)
{
    printf("%c %d %" PRId64 "%s%s\n", kind, d->idx, mgo_bench_now_ns(), extra ? " " : "",
           extra ? extra : "");
}

/* ---- publishing ---------------------------------------------------------------------------- */

static void publish(struct sim_device *d, const char *topic, const void *data, size_t len,
                    bool retain)
{
    MQTTAsync_message m = MQTTAsync_message_initializer;
    m.payload = (void *)data;
    m.payloadlen = (int)len;
    m.qos = 1;
    m.retained = retain;
    int rc = MQTTAsync_sendMessage(d->h, topic, &m, NULL);
    if (rc != MQTTASYNC_SUCCESS)
        fprintf(stderr, "sim %s: publish %s: paho %d\n", d->id, topic, rc);
}

static int topic_of(const struct sim_device *d, enum mgo_topic_kind kind, const char *dep,
                    char *out)
{
    return mgo_topic_format(cfg.prefix, kind, d->id, dep, out, MGO_MAX_TOPIC_LEN + 1) == MGO_OK
               ? 0
               : -1;
}

static void publish_presence(struct sim_device *d, bool online)
{
    struct mgo_presence p = {.device_id = d->id,
                             .online = online,
                             .boot = cfg.boot,
                             .timestamp_ms = online ? (uint64_t)mgo_bench_wall_ms() : 0,
                             .agent_version = "sim-0.1"};
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_MAX_MESSAGE_BYTES);
    char topic[MGO_MAX_TOPIC_LEN + 1];
    if (mgo_presence_encode(&p, &b) == MGO_OK && topic_of(d, MGO_TOPIC_STATE, NULL, topic) == 0)
        publish(d, topic, b.data, b.len, true);
    mgo_buf_cleanup(&b);
}

static uint8_t *caps_template;
static size_t caps_template_len;

static void publish_caps(struct sim_device *d)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml,
             "{apiVersion: device.margo.org/v1alpha1, kind: DeviceCapabilitiesManifest,"
             " properties: {id: %s, vendor: SimCorp, modelNumber: S1, serialNumber: SN-%s,"
             " cpus: [{cores: 4, architecture: amd64}], memory: 4Gi, storage: 64Gi,"
             " interfaces: [{type: ethernet}], otelCollector: false,"
             " supportedRuntimes: [oci], supportedDeploymentTypes: [compose]}}",
             d->id, d->id);
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value v;
    struct mgo_capabilities caps;
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_MAX_MESSAGE_BYTES);
    char topic[MGO_MAX_TOPIC_LEN + 1];
    /* validated with the real codec before it goes out */
    if (mgo_value_from_yaml(yaml, strlen(yaml), &arena, &v, &p) == MGO_OK &&
        mgo_capabilities_from_value(&v, &arena, &caps, &p) == MGO_OK &&
        mgo_capabilities_encode(&caps, &b) == MGO_OK &&
        topic_of(d, MGO_TOPIC_CAPABILITIES, NULL, topic) == 0)
        publish(d, topic, b.data, b.len, true);
    else
        fprintf(stderr, "sim %s: capabilities do not validate\n", d->id);
    mgo_buf_cleanup(&b);
    mgo_arena_cleanup(&arena);
    (void)caps_template;
    (void)caps_template_len;
}

/* Publishes one status of deployment inst with component states derived from step. */
static void publish_status(struct sim_device *d, const struct sim_installed *in,
                           const struct sim_doc *doc, enum mgo_state overall,
                           const enum mgo_state *comp_states)
{
    struct mgo_component_status comps[SIM_MAX_COMPS];
    size_t n = doc ? doc->ncomp : 0;
    for (size_t i = 0; i < n; i++)
        comps[i] = (struct mgo_component_status){.name = doc->comps[i], .state = comp_states[i]};
    struct mgo_error_info injected = {cfg.fail_code, n ? doc->comps[n - 1] : d->id,
                                      "injected by mgo-fleet-sim --fail-version"};
    if (overall == MGO_STATE_FAILED && n > 0) {
        comps[n - 1].has_error = true;
        comps[n - 1].error = injected;
    }
    struct mgo_deployment_status st = {
        .api_version = "deployment.margo.org/v1alpha1",
        .deployment_id = in->id,
        .device_id = d->id,
        .has_adopted_manifest_version = true,
        .adopted_manifest_version = in->adopted,
        .state = overall,
        .has_error = overall == MGO_STATE_FAILED,
        .error = injected,
        .components = comps,
        .components_len = n,
        .has_journal = true,
        .boot = cfg.boot,
        .seq = ++d->seq,
    };
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_MAX_MESSAGE_BYTES);
    char topic[MGO_MAX_TOPIC_LEN + 1];
    if (mgo_deployment_status_encode(&st, &b) == MGO_OK &&
        topic_of(d, MGO_TOPIC_STATUS, in->id, topic) == 0) {
        publish(d, topic, b.data, b.len, true);
        free(d->last_status);
        d->last_status_len = b.len;
        d->last_status = mgo_buf_take(&b, &d->last_status_len);
        snprintf(d->last_status_topic, sizeof d->last_status_topic, "%s", topic);
    }
    mgo_buf_cleanup(&b);
}

/* ---- connection ------------------------------------------------------------------------- */

static void dev_connect(struct sim_device *d)
{
    char will_topic[MGO_MAX_TOPIC_LEN + 1];
    struct mgo_presence p = {.device_id = d->id, .online = false, .boot = cfg.boot};
    struct mgo_buf will;
    mgo_buf_init(&will, 4096);
    if (topic_of(d, MGO_TOPIC_STATE, NULL, will_topic) != 0 ||
        mgo_presence_encode(&p, &will) != MGO_OK) {
        mgo_buf_cleanup(&will);
        return;
    }
    MQTTAsync_connectOptions o = MQTTAsync_connectOptions_initializer5;
    MQTTAsync_willOptions w = MQTTAsync_willOptions_initializer;
    w.topicName = will_topic;
    w.payload.data = will.data;
    w.payload.len = (int)will.len;
    w.qos = 1;
    w.retained = 1;
    MQTTProperties props = MQTTProperties_initializer;
    MQTTProperty sx = {.identifier = MQTTPROPERTY_CODE_SESSION_EXPIRY_INTERVAL};
    sx.value.integer4 = cfg.session_expiry_s;
    MQTTProperties_add(&props, &sx);
    o.keepAliveInterval = 60;
    o.cleanstart = 0;
    /* generous: on two shared cores a CONNACK can take long; a connect given up on while the
     * broker completed it comes back as a session takeover */
    o.connectTimeout = 120;
    o.will = &w;
    o.connectProperties = &props;
    o.onSuccess5 = on_connect_ok;
    o.onFailure5 = on_connect_fail;
    o.context = d;
    int rc = MQTTAsync_connect(d->h, &o);
    MQTTProperties_free(&props);
    mgo_buf_cleanup(&will);
    if (rc == MQTTASYNC_SUCCESS) {
        d->connecting = true;
    } else {
        d->next_connect_ns = mgo_bench_now_ns() + (int64_t)mgo_backoff_next_ms(&d->bo) * 1000000;
    }
}

/* A connection that is gone although no connection-lost event says so (Paho refused a call
 * with MQTTASYNC_DISCONNECTED: the connection dropped between its connect callback and our
 * handling of it, and the lost event, if any, was handled before): connect again later, as
 * for a lost one. */
static void dev_wake_at(struct sim_device *d, int64_t t);

static void dev_gone(struct sim_device *d)
{
    d->connected = false;
    d->connecting = false;
    d->next_connect_ns = mgo_bench_now_ns() + (int64_t)mgo_backoff_next_ms(&d->bo) * 1000000;
    dev_wake_at(d, d->next_connect_ns);
}

static bool dev_subscribe(struct sim_device *d)
{
    char t1[MGO_MAX_TOPIC_LEN + 1], t2[MGO_MAX_TOPIC_LEN + 1];
    if (mgo_topic_filter(cfg.prefix, MGO_TOPIC_DESIRED, d->id, t1, sizeof t1) != MGO_OK ||
        mgo_topic_filter(cfg.prefix, MGO_TOPIC_DEPLOYMENT, d->id, t2, sizeof t2) != MGO_OK)
        return false;
    char *topics[2] = {t1, t2};
    int qos[2] = {1, 1};
    MQTTAsync_responseOptions ro = MQTTAsync_responseOptions_initializer;
    ro.onSuccess5 = on_sub_ok;
    ro.onFailure5 = on_sub_fail;
    ro.context = d;
    int rc = MQTTAsync_subscribeMany(d->h, 2, topics, qos, &ro);
    if (rc != MQTTASYNC_SUCCESS)
        fprintf(stderr, "sim %s: subscribe: paho %d\n", d->id, rc);
    return rc == MQTTASYNC_SUCCESS;
}

/* ---- desired state ---------------------------------------------------------------------- */

static struct sim_doc *doc_find(struct sim_device *d, const char *id)
{
    for (int i = 0; i < SIM_MAX_DEPS; i++) {
        if (d->docs[i].used && strcmp(d->docs[i].id, id) == 0)
            return &d->docs[i];
    }
    return NULL;
}

static struct sim_installed *inst_find(struct sim_device *d, const char *id, bool create)
{
    struct sim_installed *free_slot = NULL;
    for (int i = 0; i < SIM_MAX_DEPS; i++) {
        if (d->inst[i].used && strcmp(d->inst[i].id, id) == 0)
            return &d->inst[i];
        if (!d->inst[i].used && !free_slot)
            free_slot = &d->inst[i];
    }
    if (!create || !free_slot)
        return NULL;
    memset(free_slot, 0, sizeof *free_slot);
    free_slot->used = true;
    snprintf(free_slot->id, sizeof free_slot->id, "%s", id);
    return free_slot;
}

static void on_deployment_doc(struct sim_device *d, const struct mgo_topic *t, const uint8_t *data,
                              size_t len)
{
    struct sim_doc *doc = doc_find(d, t->deployment_id);
    if (len == 0) { /* cleared retained document */
        if (doc)
            doc->used = false;
        return;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value tree;
    struct mgo_app_deployment ad;
    char digest[MGO_DIGEST_STR_SIZE];
    if (mgo_value_from_msgpack(data, len, &arena, &tree, &p) != MGO_OK ||
        mgo_app_deployment_from_value(&tree, &arena, &ad, &p) != MGO_OK ||
        mgo_doc_digest(&tree, digest) != MGO_OK || strcmp(ad.id, t->deployment_id) != 0 ||
        (ad.device_id && strcmp(ad.device_id, d->id) != 0)) {
        out_event('F', d, "deployment-invalid");
        goto cleanup;
    }
    if (!doc) {
        for (int i = 0; i < SIM_MAX_DEPS && !doc; i++) {
            if (!d->docs[i].used)
                doc = &d->docs[i];
        }
    }
    if (!doc) {
        out_event('F', d, "too-many-documents");
        goto cleanup;
    }
    memset(doc, 0, sizeof *doc);
    doc->used = true;
    snprintf(doc->id, sizeof doc->id, "%s", ad.id);
    snprintf(doc->digest, sizeof doc->digest, "%s", digest);
    snprintf(doc->version, sizeof doc->version, "%s",
             ad.application_version ? ad.application_version : "");
    for (size_t i = 0; i < ad.profile.components_len && i < SIM_MAX_COMPS; i++)
        snprintf(doc->comps[doc->ncomp++], sizeof doc->comps[0], "%s",
                 ad.profile.components[i].name);
cleanup:
    mgo_arena_cleanup(&arena);
}

static void on_desired(struct sim_device *d, const uint8_t *data, size_t len)
{
    if (len == 0)
        return;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_desired_state ds;
    if (mgo_desired_state_decode(data, len, &arena, &ds, &p) != MGO_OK ||
        (ds.device_id && strcmp(ds.device_id, d->id) != 0) || ds.deployments_len > SIM_MAX_DEPS) {
        out_event('F', d, "manifest-invalid");
        goto cleanup;
    }
    if (ds.manifest_version <= d->accepted) {
        /* a retained re-delivery of what we hold: after a reconnect that means "in sync" */
        if (d->resync_wait && ds.manifest_version == d->accepted) {
            d->resync_wait = false;
            out_event('R', d, NULL);
        }
        goto cleanup;
    }
    d->has_pending = true;
    d->pending_at_ns = mgo_bench_now_ns();
    d->pend_version = ds.manifest_version;
    d->pend_n = ds.deployments_len;
    for (size_t i = 0; i < ds.deployments_len; i++) {
        snprintf(d->pend_ids[i], sizeof d->pend_ids[i], "%s", ds.deployments[i].deployment_id);
        snprintf(d->pend_digests[i], sizeof d->pend_digests[i], "%s", ds.deployments[i].digest);
    }
cleanup:
    mgo_arena_cleanup(&arena);
}

/* Plans the pending manifest when every document is present with its digest. */
static void try_plan(struct sim_device *d)
{
    if (!d->has_pending || d->njobs > d->job_pos)
        return;
    if (cfg.settle_ms > 0 &&
        mgo_bench_now_ns() - d->pending_at_ns < (int64_t)cfg.settle_ms * 1000000)
        return;
    d->njobs = d->job_pos = 0;
#ifdef MGO_SIM_AGENT_PLAN
    struct mgo_desired_ref refs[SIM_MAX_DEPS];
    for (size_t i = 0; i < d->pend_n; i++)
        refs[i] =
            (struct mgo_desired_ref){.deployment_id = d->pend_ids[i], .digest = d->pend_digests[i]};
    struct mgo_desired_state ds = {
        .manifest_version = d->pend_version, .deployments = refs, .deployments_len = d->pend_n};
    struct mgo_plan_doc pdocs[SIM_MAX_DEPS];
    size_t npd = 0;
    for (int i = 0; i < SIM_MAX_DEPS; i++) {
        if (d->docs[i].used)
            pdocs[npd++] = (struct mgo_plan_doc){d->docs[i].id, d->docs[i].digest,
                                                 d->docs[i].digest, d->docs[i].digest};
    }
    struct mgo_plan_installed recs[SIM_MAX_DEPS];
    size_t nr = 0;
    for (int i = 0; i < SIM_MAX_DEPS; i++) {
        if (!d->inst[i].used || d->inst[i].state == MGO_STATE_REMOVED)
            continue;
        struct mgo_plan_installed *r = &recs[nr++];
        memset(r, 0, sizeof *r);
        snprintf(r->id, sizeof r->id, "%s", d->inst[i].id);
        snprintf(r->desired_digest, sizeof r->desired_digest, "%s", d->inst[i].digest);
        snprintf(r->installed_digest, sizeof r->installed_digest, "%s", d->inst[i].digest);
        snprintf(r->profile_hash, sizeof r->profile_hash, "%s", d->inst[i].digest);
        r->installed_ok = d->inst[i].state == MGO_STATE_INSTALLED;
    }
    static struct mgo_plan plan; /* large; the loop thread is the only user */
    mgo_err err = mgo_plan_compute(d->accepted, &ds, pdocs, npd, recs, nr, &plan);
    if (err == MGO_ERR_NOT_FOUND || err == MGO_ERR_CRYPTO)
        return; /* wait for the documents */
    if (err != MGO_OK) {
        d->has_pending = false;
        out_event('F', d, "manifest-refused");
        return;
    }
    for (size_t i = 0; i < plan.len && d->njobs < 2 * SIM_MAX_DEPS; i++) {
        const struct mgo_plan_item *it = &plan.items[i];
        if (it->action == MGO_PLAN_NOOP)
            continue;
        struct sim_job *j = &d->jobs[d->njobs++];
        j->remove = it->action == MGO_PLAN_REMOVE;
        struct sim_doc *doc = j->remove ? NULL : doc_find(d, it->deployment_id);
        j->doc = doc ? (int)(doc - d->docs) : -1;
        struct sim_installed *in = inst_find(d, it->deployment_id, true);
        j->inst = in ? (int)(in - d->inst) : -1;
        j->step = 0;
        if (j->inst < 0 || (!j->remove && j->doc < 0))
            d->njobs--;
    }
#else
    for (size_t i = 0; i < d->pend_n; i++) {
        struct sim_doc *doc = doc_find(d, d->pend_ids[i]);
        if (!doc || strcmp(doc->digest, d->pend_digests[i]) != 0)
            return; /* wait for the documents */
    }
    for (size_t i = 0; i < d->pend_n; i++) {
        struct sim_installed *in = inst_find(d, d->pend_ids[i], true);
        if (!in ||
            (strcmp(in->digest, d->pend_digests[i]) == 0 && in->state == MGO_STATE_INSTALLED))
            continue;
        d->jobs[d->njobs++] = (struct sim_job){(int)(doc_find(d, d->pend_ids[i]) - d->docs),
                                               (int)(in - d->inst), false, 0};
    }
#endif
    d->accepted = d->pend_version;
    d->has_pending = false;
    char v[32];
    snprintf(v, sizeof v, "%" PRIu64, d->accepted);
    out_event('M', d, v);
    d->next_step_ns = 0;
}

/* Whether installing doc on d fails by injection (--fail-version, --fail-ids). */
static bool fails_here(const struct sim_device *d, const struct sim_doc *doc)
{
    if (!cfg.fail_version || !doc || doc->ncomp == 0 || strcmp(doc->version, cfg.fail_version))
        return false;
    if (!cfg.fail_ids)
        return true;
    for (const char *p = cfg.fail_ids; *p;) {
        char *end = NULL;
        long idx = strtol(p, &end, 10);
        if (end == p)
            return false;
        if (idx == d->idx)
            return true;
        p = *end == ',' ? end + 1 : end;
    }
    return false;
}

/* Runs the next step of the current job when its time has come. Returns true while busy. */
static bool run_jobs(struct sim_device *d, int64_t now)
{
    while (d->job_pos < d->njobs) {
        if (now < d->next_step_ns)
            return true;
        if (!d->connected)
            return true; /* the agent journals and sends later; the simulator just waits */
        struct sim_job *j = &d->jobs[d->job_pos];
        struct sim_installed *in = &d->inst[j->inst];
        struct sim_doc *doc = j->doc >= 0 ? &d->docs[j->doc] : NULL;
        enum mgo_state cs[SIM_MAX_COMPS];
        size_t n = doc ? doc->ncomp : 0;
        if (j->remove) {
            in->state = j->step == 0 ? MGO_STATE_REMOVING : MGO_STATE_REMOVED;
            publish_status(d, in, NULL, in->state, cs);
            if (j->step++ >= 1) {
                in->used = false;
                d->job_pos++;
            }
            continue;
        }
        if (j->step == 0) {
            snprintf(in->digest, sizeof in->digest, "%s", doc->digest);
            in->adopted = d->accepted;
        }
        /* step 0: all pending; step k (1..n): component k-1 installing, earlier installed;
         * step n+1: all installed */
        for (size_t i = 0; i < n; i++) {
            if (j->step == 0)
                cs[i] = MGO_STATE_PENDING;
            else if ((int)i < j->step - 1)
                cs[i] = MGO_STATE_INSTALLED;
            else if ((int)i == j->step - 1)
                cs[i] = MGO_STATE_INSTALLING;
            else
                cs[i] = MGO_STATE_PENDING;
        }
        bool last = (size_t)j->step == n + 1;
        bool fail = last && fails_here(d, doc);
        in->state = j->step == 0 ? MGO_STATE_PENDING
                    : fail       ? MGO_STATE_FAILED
                    : last       ? MGO_STATE_INSTALLED
                                 : MGO_STATE_INSTALLING;
        if (fail)
            cs[n - 1] = MGO_STATE_FAILED;
        publish_status(d, in, doc, in->state, cs);
        if (last) {
            out_event(fail ? 'X' : 'I', d, NULL);
            d->job_pos++;
        } else {
            j->step++;
            if (j->step > 1 && cfg.delay_ms > 0) /* each component "installs" for delay_ms */
                d->next_step_ns = now + (int64_t)cfg.delay_ms * 1000000;
        }
    }
    d->njobs = d->job_pos = 0;
    return false;
}

/* ---- the due heap: devices by the time the loop must visit them ------------------------- */

static struct sim_device **heap; /* min-heap on due_ns, cfg.count slots */
static int heap_len;

static void heap_set(int i, struct sim_device *d)
{
    heap[i] = d;
    d->heap_pos = i;
}

static void heap_up(int i)
{
    struct sim_device *d = heap[i];
    while (i > 0 && heap[(i - 1) / 2]->due_ns > d->due_ns) {
        heap_set(i, heap[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
    heap_set(i, d);
}

static void heap_down(int i)
{
    struct sim_device *d = heap[i];
    for (;;) {
        int c = 2 * i + 1;
        if (c >= heap_len)
            break;
        if (c + 1 < heap_len && heap[c + 1]->due_ns < heap[c]->due_ns)
            c++;
        if (heap[c]->due_ns >= d->due_ns)
            break;
        heap_set(i, heap[c]);
        i = c;
    }
    heap_set(i, d);
}

/* Makes the loop visit d at t at the latest (an earlier visit already planned stays). */
static void dev_wake_at(struct sim_device *d, int64_t t)
{
    if (d->heap_pos >= 0) {
        if (t < d->due_ns) {
            d->due_ns = t;
            heap_up(d->heap_pos);
        }
        return;
    }
    d->due_ns = t;
    heap_set(heap_len++, d);
    heap_up(heap_len - 1);
}

/* Removes and returns the earliest device when it is due at now, else NULL. */
static struct sim_device *heap_pop_due(int64_t now)
{
    if (heap_len == 0 || heap[0]->due_ns > now)
        return NULL;
    struct sim_device *d = heap[0];
    d->heap_pos = -1;
    if (--heap_len > 0) {
        heap_set(0, heap[heap_len]);
        heap_down(0);
    }
    return d;
}

/* Plans d's next visit from its state: what the loop used to find by scanning every device. */
static void dev_rearm(struct sim_device *d, int64_t now)
{
    int64_t t = INT64_MAX;
    if (!d->connected && !d->connecting)
        t = d->next_connect_ns; /* a connect that fails or ends comes back as an event */
    if (d->has_pending && cfg.settle_ms > 0) {
        int64_t settled = d->pending_at_ns + (int64_t)cfg.settle_ms * 1000000;
        if (settled > now && settled < t)
            t = settled; /* settled and still pending: it waits for documents (events) */
    }
    if (d->job_pos < d->njobs && d->connected && d->next_step_ns < t)
        t = d->next_step_ns; /* not connected: the CONNACK event wakes it */
    if (t != INT64_MAX)
        dev_wake_at(d, t);
}

/* One visit: the work the loop used to do for every device on every wake-up. */
static void dev_visit(struct sim_device *d, int64_t now)
{
    if (!d->connected && !d->connecting && now >= d->next_connect_ns)
        dev_connect(d);
    if (d->has_pending)
        try_plan(d);
    if (d->njobs) {
        run_jobs(d, now);
        if (d->njobs == 0 && d->has_pending) {
            dev_wake_at(d, now); /* the manifest that waited for these jobs: plan it now */
            return;
        }
    }
    dev_rearm(d, now);
}

/* ---- events ----------------------------------------------------------------------------- */

static size_t n_ready;

static void handle(struct sim_ev *e)
{
    struct sim_device *d = &devs[e->dev];
    switch (e->kind) {
    case EV_CONNECTED: {
        d->connected = true;
        d->connecting = false;
        mgo_backoff_reset(&d->bo);
        char sp[8];
        snprintf(sp, sizeof sp, "%d", e->session_present ? 1 : 0);
        out_event('C', d, sp);
        /* subscribed on every connect, as margo-agent does (agent/src/session.c): a resumed
         * session may hold no subscription when the first connection ended before its
         * SUBSCRIBE (a connect that timed out on our side but reached the broker) */
        d->subscribed = false;
        if (!dev_subscribe(d)) {
            dev_gone(d);
            break;
        }
        if (!e->session_present) {
            if (d->accepted > 0)
                d->resync_wait = true;
            /* the broker may have lost its retained state: restore our last status (rule 5) */
            if (d->last_status)
                publish(d, d->last_status_topic, d->last_status, d->last_status_len, true);
        } else if (d->ready_reported) {
            out_event('R', d, NULL);
        }
        publish_presence(d, true);
        publish_caps(d);
        if (e->session_present && !d->ready_reported) {
            d->ready_reported = true;
            n_ready++;
        }
        break;
    }
    case EV_SUBSCRIBED:
        d->subscribed = true;
        if (!d->ready_reported) {
            d->ready_reported = true;
            n_ready++;
        }
        break;
    case EV_CONNECT_FAILED:
    case EV_LOST:
        if (!d->connected && !d->connecting)
            break;
        d->connected = false;
        d->connecting = false;
        d->next_connect_ns = mgo_bench_now_ns() + (int64_t)mgo_backoff_next_ms(&d->bo) * 1000000;
        break;
    case EV_MESSAGE: {
        struct mgo_topic t;
        if (mgo_topic_parse(cfg.prefix, e->topic, strlen(e->topic), &t) != MGO_OK ||
            strcmp(t.device_id, d->id) != 0)
            break;
        if (t.kind == MGO_TOPIC_DESIRED)
            on_desired(d, e->payload, e->len);
        else if (t.kind == MGO_TOPIC_DEPLOYMENT)
            on_deployment_doc(d, &t, e->payload, e->len);
        try_plan(d);
        break;
    }
    }
}

static void on_signal(int sig)
{
    (void)sig;
    int saved = errno;
    stop_flag = 1;
    q_wake(); /* write(2) is async-signal-safe */
    errno = saved;
}

static void usage(void)
{
    fprintf(
        stderr,
        "usage: mgo-fleet-sim --url URL [--prefix P] [--id-prefix sim] [--first K] [--count N]\n"
        "                     [--boot B] [--delay-ms D] [--settle-ms S] [--connect-rate R]\n"
        "                     [--backoff-min-ms MS] [--backoff-max-ms MS]\n"
        "                     [--fail-version V [--fail-code CODE] [--fail-ids I,J,...]]\n");
}

static int arg_int(const char *name, const char *v, long lo, long hi, long *out)
{
    char *end = NULL;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || !end || *end || x < lo || x > hi) {
        fprintf(stderr, "mgo-fleet-sim: %s: must be an integer in %ld..%ld\n", name, lo, hi);
        return -1;
    }
    *out = x;
    return 0;
}

int main(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long x = 0;
        if (!v) {
            usage();
            return 2;
        }
        i++;
        if (strcmp(a, "--url") == 0)
            cfg.url = v;
        else if (strcmp(a, "--prefix") == 0)
            cfg.prefix = v;
        else if (strcmp(a, "--id-prefix") == 0)
            cfg.id_prefix = v;
        else if (strcmp(a, "--first") == 0 && arg_int(a, v, 0, 10000000, &x) == 0)
            cfg.first = (int)x;
        else if (strcmp(a, "--count") == 0 && arg_int(a, v, 1, 5000, &x) == 0)
            cfg.count = (int)x;
        else if (strcmp(a, "--boot") == 0 && arg_int(a, v, 1, 1000000000, &x) == 0)
            cfg.boot = (uint64_t)x;
        else if (strcmp(a, "--delay-ms") == 0 && arg_int(a, v, 0, 600000, &x) == 0)
            cfg.delay_ms = (int)x;
        else if (strcmp(a, "--settle-ms") == 0 && arg_int(a, v, 0, 600000, &x) == 0)
            cfg.settle_ms = (int)x;
        else if (strcmp(a, "--connect-rate") == 0 && arg_int(a, v, 1, 1000000, &x) == 0)
            cfg.connect_rate = (int)x;
        else if (strcmp(a, "--backoff-min-ms") == 0 && arg_int(a, v, 1, 600000, &x) == 0)
            cfg.backoff_min_ms = (uint32_t)x;
        else if (strcmp(a, "--backoff-max-ms") == 0 && arg_int(a, v, 1, 3600000, &x) == 0)
            cfg.backoff_max_ms = (uint32_t)x;
        else if (strcmp(a, "--fail-version") == 0)
            cfg.fail_version = v;
        else if (strcmp(a, "--fail-code") == 0)
            cfg.fail_code = v;
        else if (strcmp(a, "--fail-ids") == 0)
            cfg.fail_ids = v;
        else {
            usage();
            return 2;
        }
    }
    if (!cfg.url || mgo_topic_check_prefix(cfg.prefix) != MGO_OK) {
        usage();
        return 2;
    }
    prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the controller */
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOFBF, 1 << 16);

    q_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    devs = calloc((size_t)cfg.count, sizeof *devs);
    heap = calloc((size_t)cfg.count, sizeof *heap);
    if (q_efd < 0 || !devs || !heap)
        return 1;
    for (int i = 0; i < cfg.count; i++) {
        struct sim_device *d = &devs[i];
        d->idx = cfg.first + i;
        snprintf(d->id, sizeof d->id, "%s-%05d", cfg.id_prefix, d->idx);
        d->heap_pos = -1;
        mgo_backoff_init(&d->bo, cfg.backoff_min_ms, cfg.backoff_max_ms,
                         (uint64_t)d->idx * 2654435761u + 1);
        MQTTAsync_createOptions co = MQTTAsync_createOptions_initializer5;
        co.MQTTVersion = MQTTVERSION_5;
        int rc = MQTTAsync_createWithOptions(&d->h, cfg.url, d->id, MQTTCLIENT_PERSISTENCE_NONE,
                                             NULL, &co);
        if (rc != MQTTASYNC_SUCCESS) {
            fprintf(stderr, "mgo-fleet-sim: create client %s: paho %d\n", d->id, rc);
            return 1;
        }
        MQTTAsync_setCallbacks(d->h, d, on_lost, on_message, NULL);
    }

    int started = 0;
    int64_t t_start = mgo_bench_now_ns();
    bool ready_printed = false;
    while (!stop_flag) {
        int64_t now = mgo_bench_now_ns();
        /* initial connects, rate limited: device k starts at t_start + k / rate */
        int64_t allowed = (now - t_start) * cfg.connect_rate / 1000000000 + 1;
        while (started < cfg.count && started < allowed) {
            struct sim_device *d = &devs[started++];
            d->started = true;
            dev_connect(d);
            dev_rearm(d, now); /* a refused connect retries after its backoff */
        }
        /* sleep until an event, the next initial connect or the earliest due device */
        int64_t deadline = heap_len > 0 ? heap[0]->due_ns : INT64_MAX;
        if (started < cfg.count) {
            int64_t next_start =
                t_start + ((int64_t)started * 1000000000 + cfg.connect_rate - 1) / cfg.connect_rate;
            if (next_start < deadline)
                deadline = next_start;
        }
        struct sim_ev *e = q_take_all(deadline);
        while (e) {
            struct sim_ev *next = e->next;
            handle(e);
            dev_wake_at(&devs[e->dev], 0); /* visited once this batch is handled */
            ev_free(e);
            e = next;
        }
        /* visit only the devices with something due (in due order; a device's own order of
         * events, then its visit, is what it was) */
        now = mgo_bench_now_ns();
        struct sim_device *d;
        while ((d = heap_pop_due(now)) != NULL)
            dev_visit(d, now);
        if (!ready_printed && n_ready == (size_t)cfg.count) {
            printf("READY %d\n", cfg.count);
            ready_printed = true;
        }
        fflush(stdout);
    }
    for (int i = 0; i < cfg.count; i++)
        MQTTAsync_destroy(&devs[i].h); /* closes the socket; the will fires (like a crash) */
    for (int i = 0; i < cfg.count; i++)
        free(devs[i].last_status);
    free(devs);
    free(heap);
    close(q_efd);
    return 0;
}
