/* agent.c - the margo-agent loop: session, desired state, plan execution, status journal,
 * capabilities, presence, drift. One thread owns everything here. */
#include "mgo/agent.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "caps.h"
#include "downtime.h"
#include "journal.h"
#include "mgo/backoff.h"
#include "mgo/log.h"
#include "mgo/margo.h"
#include "mgo/mqtt.h"
#include "mgo/sign.h"
#include "mgo/topic.h"
#include "plan.h"
#include "runtime.h"
#include "state.h"

#define TAG "agent"
#define AGENT_VERSION "0.1.0"
#define MAX_DOCS (2u * MGO_MAX_DEPLOYMENTS + 16u)
#define MAX_RECS (2u * MGO_MAX_DEPLOYMENTS)
#define MAX_INFLIGHT 32u
#define MAX_DOWNTIME 32u
#define MAX_MANAGER_KEYS 8u
#define STORAGE_RETRY_MS 2000u

/* ---- configuration table ------------------------------------------------------------- */

#define OPT(name, type, field, min, max, def, help)                                          \
    {name, type, offsetof(struct mgo_agent_config, field), min, max, def, help}

const struct mgo_cfg_option mgo_agent_cfg_table[] = {
    OPT("device-id", MGO_CFG_STR, device_id, 0, MGO_MAX_DEVICE_ID_LEN, NULL,
        "this device's id (one topic level, [A-Za-z0-9._~-]); required"),
    OPT("broker-url", MGO_CFG_STR, broker_url, 0, 512, "tcp://127.0.0.1:1883",
        "MQTT broker, tcp://host:port or ssl://host:port"),
    OPT("topic-prefix", MGO_CFG_STR, topic_prefix, 0, MGO_MAX_TOPIC_PREFIX_LEN, "margo/v1",
        "topic root"),
    OPT("ca-file", MGO_CFG_STR, ca_file, 0, 1024, NULL, "TLS: CA certificates (PEM)"),
    OPT("cert-file", MGO_CFG_STR, cert_file, 0, 1024, NULL, "TLS: client certificate (PEM)"),
    OPT("key-file", MGO_CFG_STR, key_file, 0, 1024, NULL, "TLS: client key (PEM)"),
    OPT("username", MGO_CFG_STR, username, 0, 256, NULL, "MQTT user name"),
    OPT("password-file", MGO_CFG_STR, password_file, 0, 1024, NULL,
        "file holding the MQTT password (never logged)"),
    OPT("state-dir", MGO_CFG_STR, state_dir, 0, 900, "/var/lib/margo-agent",
        "durable state: manifest version, boot counter, records, journal"),
    OPT("compose-command", MGO_CFG_STR, compose_command, 0, 200, "podman-compose",
        "compose command: podman-compose, 'docker compose', 'podman compose'"),
    OPT("container-command", MGO_CFG_STR, container_command, 0, 200, NULL,
        "container CLI for probes (default: podman or docker, from compose-command)"),
    OPT("helm-command", MGO_CFG_STR, helm_command, 0, 200, "helm", "helm CLI"),
    OPT("kube-context", MGO_CFG_STR, kube_context, 0, 200, NULL, "helm --kube-context"),
    OPT("reconcile-interval", MGO_CFG_INT, reconcile_interval_s, 1, 86400, "60",
        "seconds between drift checks"),
    OPT("session-expiry", MGO_CFG_INT, session_expiry_s, 0, 4294967295LL, "604800",
        "MQTT session expiry in seconds (default 7 days)"),
    OPT("keepalive", MGO_CFG_INT, keepalive_s, 5, 3600, "30", "MQTT keepalive seconds"),
    OPT("backoff-min-ms", MGO_CFG_INT, backoff_min_ms, 10, 600000, "500",
        "first reconnect delay (jittered, doubles per attempt)"),
    OPT("backoff-max-ms", MGO_CFG_INT, backoff_max_ms, 100, 3600000, "60000",
        "largest reconnect delay"),
    OPT("settle-ms", MGO_CFG_INT, settle_ms, 0, 60000, "300",
        "quiet time after the last desired-state message before acting"),
    OPT("default-timeout", MGO_CFG_INT, default_timeout_s, 1, 86400, "600",
        "component timeout in seconds when the deployment gives none"),
    OPT("downtime", MGO_CFG_LIST, downtime, 0, 64, NULL,
        "downtime window (UTC), e.g. \"Mon-Fri 01:00-03:00\" or \"daily 22:00-06:00\"; repeatable"),
    OPT("label", MGO_CFG_LIST, label, 0, 512, NULL, "capability label key=value; repeatable"),
    OPT("peripheral", MGO_CFG_LIST, peripheral, 0, 256, NULL,
        "extra peripheral TYPE[:MANUFACTURER[:MODEL]]; repeatable"),
    OPT("oci-plain-http", MGO_CFG_LIST, oci_plain_http, 0, 256, NULL,
        "registry host:port reached over plain http (loopback test registries); repeatable"),
    OPT("manager-public-key", MGO_CFG_LIST, manager_public_key, 0, 1024, NULL,
        "manager signing key (PEM EC P-256 public key or certificate); when set, unsigned or "
        "badly signed desired state is refused; repeatable (key rotation)"),
    OPT("vendor", MGO_CFG_STR, vendor, 0, 256, NULL, "capabilities vendor (default: DMI)"),
    OPT("model", MGO_CFG_STR, model, 0, 256, NULL, "capabilities modelNumber (default: DMI)"),
    OPT("serial", MGO_CFG_STR, serial, 0, 256, NULL, "capabilities serialNumber (default: DMI)"),
    OPT("memory", MGO_CFG_STR, memory, 0, 32, NULL, "memory set aside for workloads, e.g. 4Gi"),
    OPT("storage", MGO_CFG_STR, storage, 0, 32, NULL, "storage set aside, e.g. 59Gi"),
    OPT("cpu-cores", MGO_CFG_STR, cpu_cores, 0, 32, NULL, "cores set aside, e.g. 2 or 1.5"),
    OPT("otel-collector", MGO_CFG_BOOL, otel_collector, 0, 0, "false",
        "an OpenTelemetry collector runs on this device"),
    OPT("otel-http-endpoint", MGO_CFG_STR, otel_http_endpoint, 0, 512, NULL,
        "HTTP_OTEL_EXPORTER_OTLP_ENDPOINT injected into workloads"),
    OPT("otel-grpc-endpoint", MGO_CFG_STR, otel_grpc_endpoint, 0, 512, NULL,
        "GRPC_OTEL_EXPORTER_OTLP_ENDPOINT injected into workloads"),
    OPT("otel-certificate", MGO_CFG_STR, otel_certificate, 0, 1024, NULL,
        "OTEL_EXPORTER_OTLP_CERTIFICATE injected into workloads"),
    OPT("otel-protocol", MGO_CFG_STR, otel_protocol, 0, 32, NULL,
        "OTEL_EXPORTER_OTLP_PROTOCOL: grpc or http/protobuf"),
    OPT("log-level", MGO_CFG_STR, log_level, 0, 16, "info", "error, warn, info, debug"),
};
const size_t mgo_agent_cfg_table_len = sizeof mgo_agent_cfg_table / sizeof mgo_agent_cfg_table[0];

mgo_err mgo_agent_config_check(const struct mgo_agent_config *cfg, struct mgo_problems *problems)
{
    size_t before = mgo_problems_total(problems);
    if (cfg->device_id == NULL ||
        mgo_topic_check_device_id(cfg->device_id, strlen(cfg->device_id)) != MGO_OK)
        mgo_problems_add(problems, "device-id", "required; 1..%u of [A-Za-z0-9._~-]",
                         MGO_MAX_DEVICE_ID_LEN);
    if (cfg->topic_prefix == NULL || mgo_topic_check_prefix(cfg->topic_prefix) != MGO_OK)
        mgo_problems_add(problems, "topic-prefix", "levels of [^+#], not starting with $");
    if (cfg->broker_url == NULL ||
        (strncmp(cfg->broker_url, "tcp://", 6) != 0 && strncmp(cfg->broker_url, "ssl://", 6) != 0 &&
         strncmp(cfg->broker_url, "mqtt://", 7) != 0 && strncmp(cfg->broker_url, "mqtts://", 8) != 0))
        mgo_problems_add(problems, "broker-url", "must start with tcp://, ssl://, mqtt:// or mqtts://");
    if (cfg->state_dir == NULL || cfg->state_dir[0] == '\0')
        mgo_problems_add(problems, "state-dir", "required");
    if (cfg->downtime.len > MAX_DOWNTIME)
        mgo_problems_add(problems, "downtime", "at most %u windows", MAX_DOWNTIME);
    for (size_t i = 0; i < cfg->downtime.len; i++) {
        struct mgo_downtime w;
        char why[256];
        if (mgo_downtime_parse(cfg->downtime.items[i], &w, why, sizeof why) != MGO_OK)
            mgo_problems_add(problems, "downtime", "%s", why);
    }
    if (cfg->manager_public_key.len > MAX_MANAGER_KEYS)
        mgo_problems_add(problems, "manager-public-key", "at most %u keys", MAX_MANAGER_KEYS);
    for (size_t i = 0; i < cfg->manager_public_key.len; i++)
        if (cfg->manager_public_key.items[i] == NULL || cfg->manager_public_key.items[i][0] == '\0')
            mgo_problems_add(problems, "manager-public-key", "a file name, not empty");
    if (cfg->backoff_max_ms < cfg->backoff_min_ms)
        mgo_problems_add(problems, "backoff-max-ms", "must be >= backoff-min-ms");
    if (cfg->cpu_cores != NULL) {
        char *end = NULL;
        double c = strtod(cfg->cpu_cores, &end);
        if (end == cfg->cpu_cores || *end != '\0' || !(c > 0) || c > 4096)
            mgo_problems_add(problems, "cpu-cores", "a number in (0, 4096]");
    }
    if (cfg->otel_protocol != NULL && strcmp(cfg->otel_protocol, "grpc") != 0 &&
        strcmp(cfg->otel_protocol, "http/protobuf") != 0)
        mgo_problems_add(problems, "otel-protocol", "grpc or http/protobuf");
    if (cfg->log_level != NULL) {
        enum mgo_log_level l;
        if (mgo_log_level_parse(cfg->log_level, &l) != MGO_OK)
            mgo_problems_add(problems, "log-level", "error, warn, info or debug");
    }
    return mgo_problems_total(problems) > before ? MGO_ERR_INVALID : MGO_OK;
}

/* ---- loop state -------------------------------------------------------------------- */

struct doc_entry {
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char digest[MGO_DIGEST_STR_SIZE];
    char params_hash[MGO_DIGEST_STR_SIZE];
    char profile_hash[MGO_DIGEST_STR_SIZE];
    uint8_t *bytes;
    size_t len;
    bool received; /* from the broker in this run (else loaded from disk) */
};

struct inflight {
    int token;
    uint64_t boot, seq;
};

struct agent {
    const struct mgo_agent_config *cfg;
    volatile sig_atomic_t *stop;
    struct mgo_agent_state st;
    struct mgo_journal journal;
    struct mgo_dep_record recs[MAX_RECS];
    size_t recs_len;
    struct doc_entry docs[MAX_DOCS];
    size_t docs_len;
    uint64_t seq;

    /* pending manifest (not yet accepted) */
    uint8_t *manifest_bytes;
    size_t manifest_len;
    uint64_t manifest_version;
    uint64_t last_mismatch_version;
    uint64_t storage_error_version; /* manifest whose acceptance the disk refused */
    bool dirty;
    uint64_t dirty_since_ms;

    struct mgo_mqtt *mqtt;
    bool connected, connecting;
    uint64_t next_attempt_ms;
    struct mgo_backoff backoff;
    struct inflight inflight[MAX_INFLIGHT];
    size_t inflight_len;

    struct mgo_downtime downtime[MAX_DOWNTIME];
    size_t downtime_len;

    /* manager signing keys: when any is loaded, desired state must be signed by one */
    struct mgo_verify_key *keys[MAX_MANAGER_KEYS];
    size_t keys_len;
    bool in_downtime;

    struct mgo_rt_settings rt;
    char work_dir[MGO_AGENT_MAX_PATH];
    uint8_t *caps_bytes;
    size_t caps_len;
    bool caps_published;
    uint64_t next_reconcile_ms;
    char password[512];
    char topic_buf[MGO_MAX_TOPIC_LEN + 1];
};

static uint64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *topic(struct agent *a, enum mgo_topic_kind kind, const char *dep_id)
{
    if (mgo_topic_format(a->cfg->topic_prefix, kind, a->cfg->device_id, dep_id, a->topic_buf,
                         sizeof a->topic_buf) != MGO_OK)
        return NULL;
    return a->topic_buf;
}

/* ---- publishing ---------------------------------------------------------------------- */

static void publish_event(struct agent *a, const char *type, const char *severity,
                          const char *dep_id, bool has_version, uint64_t version, const char *msg)
{
    MGO_LOGW(TAG, "event %s%s%s: %s", type, dep_id ? " " : "", dep_id ? dep_id : "", msg);
    if (!a->connected)
        return; /* events are not journaled; the log keeps them */
    struct mgo_event ev = {
        .device_id = a->cfg->device_id, .type = type, .severity = severity, .message = msg,
        .deployment_id = dep_id, .has_manifest_version = has_version,
        .manifest_version = version, .timestamp_ms = wall_ms(),
    };
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    const char *t = topic(a, MGO_TOPIC_EVENTS, NULL);
    if (t != NULL && mgo_event_encode(&ev, &buf) == MGO_OK &&
        mgo_mqtt_publish(a->mqtt, t, buf.data, buf.len, 1, false, NULL) != MGO_OK)
        MGO_LOGW(TAG, "event %s not published", type);
    mgo_buf_cleanup(&buf);
}

static bool is_inflight(const struct agent *a, uint64_t boot, uint64_t seq)
{
    for (size_t i = 0; i < a->inflight_len; i++)
        if (a->inflight[i].boot == boot && a->inflight[i].seq == seq)
            return true;
    return false;
}

/* Publishes journal entries not yet in flight, in journal order. */
static void flush_journal(struct agent *a)
{
    if (!a->connected)
        return;
    for (size_t i = 0; i < a->journal.pending_len && a->inflight_len < MAX_INFLIGHT; i++) {
        const struct mgo_journal_entry *e = &a->journal.pending[i];
        if (e->delivered || is_inflight(a, e->boot, e->seq))
            continue;
        const char *t = topic(a, MGO_TOPIC_STATUS, e->deployment_id);
        int token = 0;
        if (t == NULL ||
            mgo_mqtt_publish(a->mqtt, t, e->payload, e->payload_len, 1, true, &token) != MGO_OK) {
            MGO_LOGD(TAG, "status %" PRIu64 ".%" PRIu64 " not published yet", e->boot, e->seq);
            return; /* keep order: retry from here later */
        }
        a->inflight[a->inflight_len++] = (struct inflight){token, e->boot, e->seq};
    }
}

static void on_published(struct agent *a, int token, bool ok)
{
    for (size_t i = 0; i < a->inflight_len; i++) {
        if (a->inflight[i].token != token)
            continue;
        struct inflight f = a->inflight[i];
        memmove(&a->inflight[i], &a->inflight[i + 1], (a->inflight_len - i - 1) * sizeof f);
        a->inflight_len--;
        if (ok) {
            mgo_err err = mgo_journal_ack(&a->journal, f.boot, f.seq);
            if (err != MGO_OK && err != MGO_ERR_NOT_FOUND)
                MGO_LOGE(TAG, "journal ack %" PRIu64 ".%" PRIu64 ": %s", f.boot, f.seq,
                         mgo_strerror(err));
        }
        break;
    }
    flush_journal(a);
}

/* Journals one status transition (fsync) and then publishes it. */
static void report(struct agent *a, const char *dep_id, const char *dep_name,
                   uint64_t adopted_version, const struct mgo_app_deployment *dep,
                   const struct mgo_rt_result *results, size_t n, enum mgo_state forced,
                   bool use_forced, const struct mgo_rt_error *overall_error)
{
    struct mgo_component_status comps[MGO_MAX_COMPONENTS];
    enum mgo_state states[MGO_MAX_COMPONENTS];
    if (n > MGO_MAX_COMPONENTS)
        n = MGO_MAX_COMPONENTS;
    const struct mgo_rt_result *first_err = NULL;
    for (size_t i = 0; i < n; i++) {
        comps[i] = (struct mgo_component_status){
            .name = dep ? dep->profile.components[i].name : "", .state = results[i].state,
            .has_error = results[i].has_error,
            .error = {results[i].error.code, results[i].error.source, results[i].error.message},
        };
        states[i] = results[i].state;
        if (results[i].has_error && first_err == NULL)
            first_err = &results[i];
    }
    struct mgo_deployment_status s = {
        .deployment_id = dep_id, .device_id = a->cfg->device_id,
        .has_adopted_manifest_version = adopted_version > 0,
        .adopted_manifest_version = adopted_version,
        .state = use_forced ? forced : mgo_state_overall(states, n),
        .components = comps, .components_len = n,
        .has_journal = true, .boot = a->st.boot, .seq = a->seq + 1,
    };
    if (overall_error != NULL) {
        s.has_error = true;
        s.error = (struct mgo_error_info){overall_error->code, overall_error->source,
                                          overall_error->message};
    } else if (s.state == MGO_STATE_FAILED && first_err != NULL) {
        s.has_error = true;
        s.error = (struct mgo_error_info){first_err->error.code,
                                          dep_name ? dep_name : first_err->error.source,
                                          first_err->error.message};
    }
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = mgo_deployment_status_encode(&s, &buf);
    if (err == MGO_OK)
        err = mgo_journal_append(&a->journal, a->st.boot, a->seq + 1, dep_id, buf.data, buf.len);
    if (err != MGO_OK) {
        MGO_LOGE(TAG, "%s: status %s not journaled: %s", dep_id, mgo_state_name(s.state),
                 mgo_strerror(err));
    } else {
        a->seq++;
        MGO_LOGI(TAG, "%s: %s (seq %" PRIu64 ")", dep_id, mgo_state_name(s.state), a->seq);
    }
    mgo_buf_cleanup(&buf);
    flush_journal(a);
}

/* ---- documents --------------------------------------------------------------------- */

static mgo_err sub_digest(const struct mgo_value *root, const char *pointer,
                          char out[MGO_DIGEST_STR_SIZE])
{
    const struct mgo_value *v = mgo_value_pointer(root, pointer);
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    struct mgo_value nil = {.kind = MGO_V_NULL};
    mgo_err err = mgo_value_to_msgpack(v ? v : &nil, &buf);
    if (err == MGO_OK)
        err = mgo_digest_sha256(buf.data, buf.len, out);
    mgo_buf_cleanup(&buf);
    return err;
}

/* Decodes and validates a deployment document; fills the digests. dep (optional) receives
 * the struct, living in arena. */
static mgo_err doc_examine(const uint8_t *bytes, size_t len, struct mgo_arena *arena,
                           struct doc_entry *e, struct mgo_app_deployment *dep, char *why,
                           size_t why_len)
{
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_value root;
    mgo_err err = mgo_value_from_msgpack(bytes, len, arena, &root, &probs);
    struct mgo_app_deployment tmp;
    if (err == MGO_OK)
        err = mgo_app_deployment_from_value(&root, arena, dep ? dep : &tmp, &probs);
    if (err != MGO_OK) {
        mgo_problems_format(&probs, why, why_len);
        return err;
    }
    err = mgo_doc_digest(&root, e->digest);
    if (err == MGO_OK)
        err = sub_digest(&root, "/spec/parameters", e->params_hash);
    if (err == MGO_OK)
        err = sub_digest(&root, "/spec/deploymentProfile", e->profile_hash);
    if (err != MGO_OK)
        snprintf(why, why_len, "digest: %s", mgo_strerror(err));
    return err;
}

static struct doc_entry *doc_find(struct agent *a, const char *id, const char *digest)
{
    for (size_t i = 0; i < a->docs_len; i++)
        if (strcmp(a->docs[i].id, id) == 0 && (digest == NULL || strcmp(a->docs[i].digest, digest) == 0))
            return &a->docs[i];
    return NULL;
}

static void doc_drop(struct agent *a, size_t i)
{
    free(a->docs[i].bytes);
    a->docs[i] = a->docs[a->docs_len - 1];
    a->docs_len--;
}

/* Keeps one received version per id, plus the persisted ones records still need. */
static mgo_err doc_put(struct agent *a, const struct doc_entry *e, const uint8_t *bytes,
                       size_t len, bool received)
{
    if (doc_find(a, e->id, e->digest) != NULL)
        return MGO_OK;
    if (received) {
        for (size_t i = 0; i < a->docs_len; i++) {
            if (a->docs[i].received && strcmp(a->docs[i].id, e->id) == 0) {
                doc_drop(a, i);
                break;
            }
        }
    }
    if (a->docs_len == MAX_DOCS)
        return MGO_ERR_LIMIT;
    struct doc_entry *d = &a->docs[a->docs_len];
    *d = *e;
    d->bytes = malloc(len ? len : 1);
    if (d->bytes == NULL)
        return MGO_ERR_NOMEM;
    memcpy(d->bytes, bytes, len);
    d->len = len;
    d->received = received;
    a->docs_len++;
    return MGO_OK;
}

static struct mgo_dep_record *rec_find(struct agent *a, const char *id)
{
    for (size_t i = 0; i < a->recs_len; i++)
        if (strcmp(a->recs[i].id, id) == 0)
            return &a->recs[i];
    return NULL;
}

static void rec_drop(struct agent *a, const char *id)
{
    for (size_t i = 0; i < a->recs_len; i++) {
        if (strcmp(a->recs[i].id, id) == 0) {
            a->recs[i] = a->recs[--a->recs_len];
            return;
        }
    }
}

/* Loads a persisted document for a record (verifying its digest). */
static struct doc_entry *doc_for(struct agent *a, const char *id, const char *digest)
{
    if (digest == NULL || digest[0] == '\0')
        return NULL;
    struct doc_entry *d = doc_find(a, id, digest);
    if (d != NULL)
        return d;
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct doc_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", id);
    char why[256] = "";
    if (mgo_agent_doc_load(&a->st, digest, &buf) == MGO_OK &&
        doc_examine(buf.data, buf.len, &arena, &e, NULL, why, sizeof why) == MGO_OK &&
        strcmp(e.digest, digest) == 0 && doc_put(a, &e, buf.data, buf.len, false) == MGO_OK)
        d = doc_find(a, id, digest);
    else
        MGO_LOGE(TAG, "%s: stored document %s missing or altered %s", id, digest, why);
    mgo_arena_cleanup(&arena);
    mgo_buf_cleanup(&buf);
    return d;
}

static void docs_gc(struct agent *a)
{
    const char *keep[2 * MAX_RECS];
    size_t n = 0;
    for (size_t i = 0; i < a->recs_len; i++) {
        keep[n++] = a->recs[i].desired_digest;
        keep[n++] = a->recs[i].installed_digest;
    }
    mgo_agent_doc_gc(&a->st, keep, n);
}

/* ---- executing ----------------------------------------------------------------------- */

struct progress_ctx {
    struct agent *a;
    const char *dep_id;
    const struct mgo_app_deployment *dep;
    uint64_t adopted;
    enum mgo_state last_overall;
    bool started;
};

static void on_progress(void *vctx, const struct mgo_rt_result *results, size_t n)
{
    struct progress_ctx *c = vctx;
    enum mgo_state states[MGO_MAX_COMPONENTS] = {MGO_STATE_PENDING};
    for (size_t i = 0; i < n && i < MGO_MAX_COMPONENTS; i++)
        states[i] = results[i].state;
    enum mgo_state overall = mgo_state_overall(states, n < MGO_MAX_COMPONENTS ? n : MGO_MAX_COMPONENTS);
    /* report transitions of the overall state, and each component starting */
    bool component_started = false;
    for (size_t i = 0; i < n; i++)
        if (results[i].state == MGO_STATE_INSTALLING || results[i].state == MGO_STATE_REMOVING)
            component_started = true;
    if (overall == MGO_STATE_INSTALLED || overall == MGO_STATE_REMOVED ||
        overall == MGO_STATE_FAILED)
        return; /* the final report follows from the caller */
    if (c->started && overall == c->last_overall && !component_started)
        return;
    c->started = true;
    c->last_overall = overall;
    report(c->a, c->dep_id, c->dep ? c->dep->name : NULL, c->adopted, c->dep, results, n, overall,
           false, NULL);
}

static bool stopping(const struct agent *a)
{
    return *a->stop != 0;
}

/* Applies document d to deployment rec. */
static void do_apply(struct agent *a, struct mgo_dep_record *rec, const struct doc_entry *d,
                     const char *action)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_app_deployment dep;
    struct doc_entry tmp;
    char why[512] = "";
    memset(&tmp, 0, sizeof tmp);
    if (doc_examine(d->bytes, d->len, &arena, &tmp, &dep, why, sizeof why) != MGO_OK) {
        struct mgo_rt_error e;
        snprintf(e.code, sizeof e.code, "INVALID_DEPLOYMENT");
        snprintf(e.source, sizeof e.source, "%s", rec->id);
        snprintf(e.message, sizeof e.message, "%s", why);
        report(a, rec->id, NULL, rec->adopted_manifest_version, NULL, NULL, 0, MGO_STATE_FAILED,
               true, &e);
        goto cleanup;
    }
    MGO_LOGI(TAG, "%s: %s (%s, %zu components)", rec->id, action,
             mgo_profile_type_name(dep.profile.type), dep.profile.components_len);
    size_t n = dep.profile.components_len;
    struct mgo_rt_result results[MGO_MAX_COMPONENTS];
    memset(results, 0, sizeof results);
    struct progress_ctx pc = {a, rec->id, &dep, rec->adopted_manifest_version,
                              MGO_STATE_PENDING, false};
    mgo_err err;
    if (!mgo_rt_available(&a->rt, dep.profile.type)) {
        for (size_t i = 0; i < n; i++)
            mgo_rt__set_error(&results[i], "UNSUPPORTED_TYPE", dep.profile.components[i].name,
                              "no %s runtime on this device", mgo_profile_type_name(dep.profile.type));
        err = MGO_ERR_RUNTIME;
    } else {
        err = mgo_rt_apply(&a->rt, &dep, results, on_progress, &pc);
    }
    if (err != MGO_OK && stopping(a)) {
        MGO_LOGW(TAG, "%s: interrupted by shutdown; resumed at the next start", rec->id);
        goto cleanup; /* record still says desired != installed */
    }
    snprintf(rec->installed_digest, sizeof rec->installed_digest, "%s", d->digest);
    snprintf(rec->params_hash, sizeof rec->params_hash, "%s", tmp.params_hash);
    snprintf(rec->profile_hash, sizeof rec->profile_hash, "%s", tmp.profile_hash);
    rec->installed_ok = err == MGO_OK;
    rec->state = err == MGO_OK ? MGO_STATE_INSTALLED : MGO_STATE_FAILED;
    if (mgo_agent_record_save(&a->st, rec) != MGO_OK)
        MGO_LOGE(TAG, "%s: record not saved; the next start re-applies it", rec->id);
    report(a, rec->id, dep.name, rec->adopted_manifest_version, &dep, results, n,
           err == MGO_OK ? MGO_STATE_INSTALLED : MGO_STATE_FAILED, true, NULL);
cleanup:
    mgo_arena_cleanup(&arena);
}

static void do_remove(struct agent *a, struct mgo_dep_record *rec)
{
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    snprintf(id, sizeof id, "%s", rec->id);
    const struct doc_entry *d = doc_for(a, rec->id, rec->installed_digest);
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_app_deployment dep;
    struct doc_entry tmp;
    char why[512];
    mgo_err err = MGO_OK;
    struct mgo_rt_result results[MGO_MAX_COMPONENTS];
    memset(results, 0, sizeof results);
    size_t n = 0;
    const struct mgo_app_deployment *depp = NULL;
    if (d != NULL && doc_examine(d->bytes, d->len, &arena, &tmp, &dep, why, sizeof why) == MGO_OK) {
        depp = &dep;
        n = dep.profile.components_len;
        struct progress_ctx pc = {a, id, &dep, rec->adopted_manifest_version, MGO_STATE_PENDING,
                                  false};
        err = mgo_rt_remove(&a->rt, &dep, results, on_progress, &pc);
    } else if (rec->installed_digest[0] != '\0') {
        MGO_LOGW(TAG, "%s: installed document unavailable; nothing to uninstall", id);
    }
    if (err != MGO_OK && stopping(a))
        goto cleanup;
    if (err != MGO_OK) {
        rec->state = MGO_STATE_FAILED;
        if (mgo_agent_record_save(&a->st, rec) != MGO_OK)
            MGO_LOGE(TAG, "%s: record not saved", id);
        report(a, id, depp ? depp->name : NULL, rec->adopted_manifest_version, depp, results, n,
               MGO_STATE_FAILED, true, NULL);
        goto cleanup;
    }
    report(a, id, depp ? depp->name : NULL, rec->adopted_manifest_version, depp, results, n,
           MGO_STATE_REMOVED, true, NULL);
    if (mgo_agent_record_delete(&a->st, id) != MGO_OK)
        MGO_LOGE(TAG, "%s: record not deleted", id);
    rec_drop(a, id);
cleanup:
    mgo_arena_cleanup(&arena);
}

/* Finishes whatever the records say is not done (after a restart or a failed step). */
static void resume_work(struct agent *a)
{
    char ids[MAX_RECS][MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    size_t n = a->recs_len;
    for (size_t i = 0; i < n; i++)
        snprintf(ids[i], sizeof ids[i], "%s", a->recs[i].id);
    for (size_t i = 0; i < n && !stopping(a); i++) {
        struct mgo_dep_record *r = rec_find(a, ids[i]);
        if (r == NULL)
            continue;
        if (r->remove) {
            do_remove(a, r);
        } else if (strcmp(r->desired_digest, r->installed_digest) != 0 ||
                   (r->state != MGO_STATE_INSTALLED && r->state != MGO_STATE_FAILED)) {
            const struct doc_entry *d = doc_for(a, r->id, r->desired_digest);
            if (d != NULL)
                do_apply(a, r, d, "resume");
        }
    }
    docs_gc(a);
}

/* ---- desired state ---------------------------------------------------------------------- */

static void drop_manifest(struct agent *a)
{
    free(a->manifest_bytes);
    a->manifest_bytes = NULL;
    a->manifest_len = 0;
    a->manifest_version = 0;
}

/* The state directory refused a write while accepting a manifest (full, read-only, I/O
 * error; state.c logged the path and errno). Nothing was acted on. The manifest stays the
 * candidate and is tried again every STORAGE_RETRY_MS, so the agent recovers by itself once
 * the disk is fixed; one "storage-error" event per manifest version tells the operator. */
static void storage_failed(struct agent *a, uint64_t version, const char *what)
{
    if (a->storage_error_version != version) {
        a->storage_error_version = version;
        char msg[MGO_AGENT_MAX_PATH + 256];
        snprintf(msg, sizeof msg, "state directory %s: cannot store %s (full, read-only or I/O "
                 "error; see the agent log); manifest %" PRIu64 " not acted on, retrying",
                 a->cfg->state_dir, what, version);
        publish_event(a, "storage-error", "error", NULL, true, version, msg);
    }
    a->dirty = true;
    a->dirty_since_ms = mono_ms() + STORAGE_RETRY_MS;
}

static void try_accept(struct agent *a)
{
    a->dirty = false;
    if (a->manifest_bytes == NULL)
        return;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_desired_state ds;
    static struct mgo_plan plan;
    struct mgo_plan_doc pdocs[MAX_DOCS];
    if (mgo_desired_state_decode(a->manifest_bytes, a->manifest_len, &arena, &ds, &probs) != MGO_OK) {
        drop_manifest(a);
        goto cleanup;
    }
    /* persisted documents the records still point at take part too */
    for (size_t i = 0; i < a->recs_len; i++)
        (void)doc_for(a, a->recs[i].id, a->recs[i].installed_digest);
    for (size_t i = 0; i < a->docs_len; i++)
        pdocs[i] = (struct mgo_plan_doc){a->docs[i].id, a->docs[i].digest, a->docs[i].params_hash,
                                         a->docs[i].profile_hash};
    mgo_err err = mgo_plan_compute(a->st.manifest_version, &ds, pdocs, a->docs_len, a->recs,
                                   a->recs_len, &plan);
    if (err == MGO_ERR_NOT_FOUND) {
        MGO_LOGI(TAG, "manifest %" PRIu64 ": waiting for %s (%s)", ds.manifest_version,
                 plan.why_deployment, plan.why);
        goto cleanup;
    }
    if (err == MGO_ERR_CRYPTO) {
        if (a->last_mismatch_version != ds.manifest_version) {
            a->last_mismatch_version = ds.manifest_version;
            publish_event(a, "digest-mismatch", "warning", plan.why_deployment, true,
                          ds.manifest_version, plan.why);
        }
        goto cleanup;
    }
    if (err != MGO_OK) {
        publish_event(a, "manifest-refused", err == MGO_ERR_STALE ? "warning" : "error", NULL,
                      true, ds.manifest_version, plan.why);
        drop_manifest(a);
        goto cleanup;
    }

    /* 1. record the plan durably: documents, then records */
    MGO_LOGI(TAG, "accepting manifest %" PRIu64 " (%zu deployments)", ds.manifest_version,
             ds.deployments_len);
    for (size_t i = 0; i < plan.len; i++) {
        const struct mgo_plan_item *it = &plan.items[i];
        struct mgo_dep_record *r = rec_find(a, it->deployment_id);
        if (it->action == MGO_PLAN_REMOVE) {
            r->remove = true;
            r->desired_digest[0] = '\0';
            r->adopted_manifest_version = ds.manifest_version; /* removal statuses carry it */
        } else {
            const struct doc_entry *d = doc_find(a, it->doc->deployment_id, it->doc->digest);
            if (d == NULL || mgo_agent_doc_save(&a->st, d->digest, d->bytes, d->len) != MGO_OK) {
                MGO_LOGE(TAG, "%s: document not stored; manifest not accepted", it->deployment_id);
                storage_failed(a, ds.manifest_version, "its deployment documents");
                goto cleanup;
            }
            if (r == NULL) {
                r = &a->recs[a->recs_len++];
                memset(r, 0, sizeof *r);
                snprintf(r->id, sizeof r->id, "%s", it->deployment_id);
                r->state = MGO_STATE_PENDING;
            }
            r->remove = false;
            if (it->action != MGO_PLAN_NOOP || r->adopted_manifest_version == 0)
                r->adopted_manifest_version = ds.manifest_version;
            snprintf(r->desired_digest, sizeof r->desired_digest, "%s", d->digest);
        }
        if (mgo_agent_record_save(&a->st, r) != MGO_OK) {
            MGO_LOGE(TAG, "%s: record not stored; manifest not accepted", it->deployment_id);
            storage_failed(a, ds.manifest_version, "its deployment records");
            goto cleanup;
        }
    }
    /* 2. only then the accepted version */
    uint64_t previous = a->st.manifest_version;
    a->st.manifest_version = ds.manifest_version;
    if (mgo_agent_state_save(&a->st) != MGO_OK) {
        a->st.manifest_version = previous;
        MGO_LOGE(TAG, "manifest %" PRIu64 " not persisted; not acted on", ds.manifest_version);
        storage_failed(a, ds.manifest_version, "the accepted manifestVersion");
        goto cleanup;
    }
    drop_manifest(a);

    /* 3. act: pending for everything that changes, then each item in order */
    for (size_t i = 0; i < plan.len; i++) {
        const struct mgo_plan_item *it = &plan.items[i];
        if (it->action == MGO_PLAN_NOOP || it->action == MGO_PLAN_REMOVE)
            continue;
        struct mgo_dep_record *r = rec_find(a, it->deployment_id);
        if (r == NULL || r->installed_digest[0] != '\0')
            continue;
        /* a new deployment: pending, with every component listed as pending */
        const struct doc_entry *d = doc_find(a, it->doc->deployment_id, it->doc->digest);
        struct mgo_arena darena;
        mgo_arena_init(&darena, MGO_MAX_DOC_ARENA_BYTES);
        struct mgo_app_deployment dep;
        struct doc_entry tmp;
        char why[256];
        struct mgo_rt_result results[MGO_MAX_COMPONENTS];
        memset(results, 0, sizeof results);
        bool ok = d != NULL && doc_examine(d->bytes, d->len, &darena, &tmp, &dep, why,
                                           sizeof why) == MGO_OK;
        size_t n = ok ? dep.profile.components_len : 0;
        report(a, r->id, ok ? dep.name : NULL, r->adopted_manifest_version, ok ? &dep : NULL,
               results, n, MGO_STATE_PENDING, true, NULL);
        mgo_arena_cleanup(&darena);
    }
    for (size_t i = 0; i < plan.len && !stopping(a); i++) {
        const struct mgo_plan_item *it = &plan.items[i];
        struct mgo_dep_record *r = rec_find(a, it->deployment_id);
        if (r == NULL)
            continue;
        MGO_LOGI(TAG, "%s: %s", it->deployment_id, mgo_plan_action_name(it->action));
        if (it->action == MGO_PLAN_REMOVE)
            do_remove(a, r);
        else if (it->action != MGO_PLAN_NOOP)
            do_apply(a, r, doc_find(a, it->doc->deployment_id, it->doc->digest),
                     mgo_plan_action_name(it->action));
    }
    /* drop received documents no record needs any more, and stored ones */
    for (size_t i = a->docs_len; i > 0; i--) {
        struct mgo_dep_record *r = rec_find(a, a->docs[i - 1].id);
        if (r == NULL || (strcmp(r->desired_digest, a->docs[i - 1].digest) != 0 &&
                          strcmp(r->installed_digest, a->docs[i - 1].digest) != 0))
            doc_drop(a, i - 1);
    }
    docs_gc(a);
cleanup:
    mgo_arena_cleanup(&arena);
}

static void on_desired(struct agent *a, const uint8_t *payload, size_t len)
{
    if (len == 0)
        return; /* retained manifest cleared: nothing to do (removal needs a manifest) */
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_desired_state ds;
    char why[512];
    if (mgo_desired_state_decode(payload, len, &arena, &ds, &probs) != MGO_OK) {
        mgo_problems_format(&probs, why, sizeof why);
        publish_event(a, "manifest-invalid", "error", NULL, false, 0, why);
        goto cleanup;
    }
    if (ds.manifest_version < a->st.manifest_version) {
        snprintf(why, sizeof why, "manifestVersion %" PRIu64 " is older than the accepted %" PRIu64
                 " (anti-rollback)", ds.manifest_version, a->st.manifest_version);
        publish_event(a, "manifest-refused", "warning", NULL, true, ds.manifest_version, why);
        goto cleanup;
    }
    if (ds.manifest_version == a->st.manifest_version) {
        MGO_LOGD(TAG, "manifest %" PRIu64 " already accepted", ds.manifest_version);
        goto cleanup;
    }
    if (a->manifest_bytes != NULL && a->manifest_version >= ds.manifest_version)
        goto cleanup; /* an older one queued while offline */
    uint8_t *copy = malloc(len);
    if (copy == NULL)
        goto cleanup;
    memcpy(copy, payload, len);
    drop_manifest(a);
    a->manifest_bytes = copy;
    a->manifest_len = len;
    a->manifest_version = ds.manifest_version;
    a->dirty = true;
    a->dirty_since_ms = mono_ms();
    MGO_LOGI(TAG, "manifest %" PRIu64 " received (%zu deployments)", ds.manifest_version,
             ds.deployments_len);
cleanup:
    mgo_arena_cleanup(&arena);
}

static void on_deployment(struct agent *a, const char *dep_id, const uint8_t *payload, size_t len)
{
    if (len == 0) {
        for (size_t i = 0; i < a->docs_len; i++) {
            if (a->docs[i].received && strcmp(a->docs[i].id, dep_id) == 0) {
                doc_drop(a, i);
                break;
            }
        }
        return;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct doc_entry e;
    memset(&e, 0, sizeof e);
    snprintf(e.id, sizeof e.id, "%s", dep_id);
    struct mgo_app_deployment dep;
    char why[512] = "";
    if (doc_examine(payload, len, &arena, &e, &dep, why, sizeof why) != MGO_OK) {
        publish_event(a, "deployment-invalid", "error", dep_id, false, 0, why);
        goto cleanup;
    }
    if (dep.id == NULL || strcmp(dep.id, dep_id) != 0) {
        snprintf(why, sizeof why, "document id %s does not match its topic's %s",
                 dep.id ? dep.id : "(none)", dep_id);
        publish_event(a, "deployment-invalid", "error", dep_id, false, 0, why);
        goto cleanup;
    }
    if (doc_put(a, &e, payload, len, true) != MGO_OK) {
        MGO_LOGE(TAG, "%s: document cache full", dep_id);
        goto cleanup;
    }
    MGO_LOGD(TAG, "%s: document %s received", dep_id, e.digest);
    a->dirty = true;
    a->dirty_since_ms = mono_ms();
cleanup:
    mgo_arena_cleanup(&arena);
}

/* ---- session ---------------------------------------------------------------------------- */

static mgo_err encode_presence(const struct agent *a, bool online, struct mgo_buf *buf)
{
    struct mgo_presence p = {.device_id = a->cfg->device_id, .online = online, .boot = a->st.boot,
                             .timestamp_ms = online ? wall_ms() : 0,
                             .agent_version = AGENT_VERSION};
    return mgo_presence_encode(&p, buf);
}

static mgo_err build_caps(struct agent *a)
{
    const struct mgo_agent_config *c = a->cfg;
    struct mgo_caps_config cc = {
        .device_id = c->device_id, .vendor = c->vendor, .model = c->model, .serial = c->serial,
        .cpu_cores = c->cpu_cores ? strtod(c->cpu_cores, NULL) : 0, .memory = c->memory,
        .storage = c->storage, .storage_path = c->state_dir, .otel_collector = c->otel_collector,
        .compose_available = mgo_rt_available(&a->rt, MGO_PROFILE_COMPOSE),
        .helm_available = mgo_rt_available(&a->rt, MGO_PROFILE_HELM),
        .labels = (const char *const *)c->label.items, .labels_len = c->label.len,
        .peripherals = (const char *const *)c->peripheral.items,
        .peripherals_len = c->peripheral.len,
    };
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_capabilities caps;
    char why[256];
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    mgo_err err = mgo_caps_detect(&cc, &arena, &caps, why, sizeof why);
    if (err != MGO_OK)
        MGO_LOGE(TAG, "capabilities: %s", why);
    if (err == MGO_OK)
        err = mgo_capabilities_encode(&caps, &buf);
    if (err == MGO_OK && (a->caps_bytes == NULL || a->caps_len != buf.len ||
                          memcmp(a->caps_bytes, buf.data, buf.len) != 0)) {
        free(a->caps_bytes);
        a->caps_bytes = mgo_buf_take(&buf, &a->caps_len);
        a->caps_published = false;
    }
    mgo_buf_cleanup(&buf);
    mgo_arena_cleanup(&arena);
    return err;
}

static void publish_caps(struct agent *a)
{
    if (!a->connected || a->caps_published || a->caps_bytes == NULL)
        return;
    const char *t = topic(a, MGO_TOPIC_CAPABILITIES, NULL);
    if (t != NULL && mgo_mqtt_publish(a->mqtt, t, a->caps_bytes, a->caps_len, 1, true, NULL) == MGO_OK)
        a->caps_published = true;
}

static void on_connected(struct agent *a, bool session_present)
{
    a->connected = true;
    a->connecting = false;
    mgo_backoff_reset(&a->backoff);
    a->inflight_len = 0;
    MGO_LOGI(TAG, "connected (session %s)", session_present ? "resumed" : "new");
    struct mgo_buf buf;
    mgo_buf_init(&buf, 4096);
    const char *t = topic(a, MGO_TOPIC_STATE, NULL);
    if (t != NULL && encode_presence(a, true, &buf) == MGO_OK &&
        mgo_mqtt_publish(a->mqtt, t, buf.data, buf.len, 1, true, NULL) != MGO_OK)
        MGO_LOGW(TAG, "presence not published");
    mgo_buf_cleanup(&buf);
    a->caps_published = false;
    publish_caps(a);
    char filter[MGO_MAX_TOPIC_LEN + 1];
    if (mgo_topic_filter(a->cfg->topic_prefix, MGO_TOPIC_DESIRED, a->cfg->device_id, filter,
                         sizeof filter) == MGO_OK &&
        mgo_mqtt_subscribe(a->mqtt, filter, 1, NULL) != MGO_OK)
        MGO_LOGW(TAG, "subscribe %s failed", filter);
    if (mgo_topic_filter(a->cfg->topic_prefix, MGO_TOPIC_DEPLOYMENT, a->cfg->device_id, filter,
                         sizeof filter) == MGO_OK &&
        mgo_mqtt_subscribe(a->mqtt, filter, 1, NULL) != MGO_OK)
        MGO_LOGW(TAG, "subscribe %s failed", filter);
    flush_journal(a);
}

static void schedule_reconnect(struct agent *a, const char *why)
{
    uint32_t delay = mgo_backoff_next_ms(&a->backoff);
    a->next_attempt_ms = mono_ms() + delay;
    if (a->in_downtime)
        MGO_LOGD(TAG, "%s (downtime window)", why);
    else
        MGO_LOGW(TAG, "%s; next attempt in %u ms", why, delay);
}

/* With manager keys configured, a non-empty manifest or deployment document must carry a
 * valid signature by one of them, made for this device; checked before anything decodes,
 * stores or plans it. An empty payload (a retained message cleared) carries nothing to act
 * on and is let through. On failure: one event "signature-invalid" (it logs one line). */
static bool signature_ok(struct agent *a, const struct mgo_topic *t, const uint8_t *payload,
                         size_t len)
{
    if (a->keys_len == 0 || len == 0)
        return true;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    char why[MGO_SIGN_WHY_SIZE] = "";
    mgo_err err = mgo_sign_verify_msgpack((const struct mgo_verify_key *const *)a->keys,
                                          a->keys_len, payload, len, a->cfg->device_id, &arena,
                                          why);
    mgo_arena_cleanup(&arena);
    if (err == MGO_OK)
        return true;
    if (why[0] == '\0')
        snprintf(why, sizeof why, "signature not verified: %s", mgo_strerror(err));
    const char *dep_id = t->kind == MGO_TOPIC_DEPLOYMENT ? t->deployment_id : NULL;
    char msg[MGO_SIGN_WHY_SIZE + 64];
    snprintf(msg, sizeof msg, "%s refused: %s",
             t->kind == MGO_TOPIC_DESIRED ? "desired-state manifest" : "deployment document", why);
    publish_event(a, "signature-invalid", "error", dep_id, false, 0, msg);
    return false;
}

static void handle_event(struct agent *a, struct mgo_mqtt_event *ev)
{
    switch (ev->kind) {
    case MGO_MQTT_EV_CONNECTED:
        on_connected(a, ev->session_present);
        break;
    case MGO_MQTT_EV_CONNECT_FAILED: {
        a->connecting = false;
        a->connected = false;
        char why[64];
        snprintf(why, sizeof why, "connect failed (reason %d)", ev->reason);
        schedule_reconnect(a, why);
        break;
    }
    case MGO_MQTT_EV_DISCONNECTED:
        a->connected = false;
        a->connecting = false;
        a->inflight_len = 0;
        schedule_reconnect(a, "connection lost");
        break;
    case MGO_MQTT_EV_PUBLISHED:
        on_published(a, ev->token, true);
        break;
    case MGO_MQTT_EV_PUBLISH_FAILED:
        on_published(a, ev->token, false);
        break;
    case MGO_MQTT_EV_MESSAGE: {
        struct mgo_topic t;
        if (ev->topic == NULL ||
            mgo_topic_parse(a->cfg->topic_prefix, ev->topic, strlen(ev->topic), &t) != MGO_OK ||
            strcmp(t.device_id, a->cfg->device_id) != 0) {
            MGO_LOGW(TAG, "message on an unexpected topic ignored");
            break;
        }
        if (ev->payload_len > MGO_MAX_MESSAGE_BYTES) {
            publish_event(a, "message-too-large", "error", NULL, false, 0,
                          "message larger than the limit refused");
            break;
        }
        if ((t.kind == MGO_TOPIC_DESIRED || t.kind == MGO_TOPIC_DEPLOYMENT) &&
            !signature_ok(a, &t, ev->payload, ev->payload_len))
            break; /* dropped: the current state and any pending manifest stay as they are */
        if (t.kind == MGO_TOPIC_DESIRED)
            on_desired(a, ev->payload, ev->payload_len);
        else if (t.kind == MGO_TOPIC_DEPLOYMENT)
            on_deployment(a, t.deployment_id, ev->payload, ev->payload_len);
        break;
    }
    default:
        break;
    }
}

static void maybe_connect(struct agent *a)
{
    time_t ends = 0;
    bool down = mgo_downtime_active(a->downtime, a->downtime_len, time(NULL), &ends);
    if (down != a->in_downtime) {
        a->in_downtime = down;
        if (down)
            MGO_LOGI(TAG, "downtime window until %lld (UTC seconds); no connection attempts",
                     (long long)ends);
        else
            MGO_LOGI(TAG, "downtime window over");
        if (!down)
            a->next_attempt_ms = mono_ms(); /* connect at once */
    }
    if (a->connected || a->connecting || down || mono_ms() < a->next_attempt_ms)
        return;
    if (mgo_mqtt_connect(a->mqtt) == MGO_OK) {
        a->connecting = true;
    } else {
        schedule_reconnect(a, "connect could not start");
    }
}

/* ---- drift ---------------------------------------------------------------------------- */

static void reconcile(struct agent *a)
{
    if (build_caps(a) == MGO_OK)
        publish_caps(a);
    for (size_t i = 0; i < a->recs_len && !stopping(a); i++) {
        struct mgo_dep_record *r = &a->recs[i];
        if (r->remove || !r->installed_ok || strcmp(r->installed_digest, r->desired_digest) != 0)
            continue;
        const struct doc_entry *d = doc_for(a, r->id, r->installed_digest);
        if (d == NULL)
            continue;
        struct mgo_arena arena;
        mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
        struct mgo_app_deployment dep;
        struct doc_entry tmp;
        char why[256];
        struct mgo_rt_result results[MGO_MAX_COMPONENTS];
        bool healthy = true;
        if (doc_examine(d->bytes, d->len, &arena, &tmp, &dep, why, sizeof why) == MGO_OK &&
            mgo_rt_probe(&a->rt, &dep, results, &healthy) == MGO_OK && !healthy) {
            MGO_LOGW(TAG, "%s: drift: %s; repairing", r->id,
                     results[0].has_error ? results[0].error.message : "not running");
            do_apply(a, r, d, "repair");
        }
        mgo_arena_cleanup(&arena);
    }
}

/* ---- run ------------------------------------------------------------------------------ */

static mgo_err read_password(const char *path, char *out, size_t out_size)
{
    struct mgo_buf b;
    mgo_buf_init(&b, out_size - 1);
    mgo_err err = mgo_buf_read_file(&b, path);
    if (err == MGO_OK) {
        size_t l = b.len;
        while (l > 0 && (b.data[l - 1] == '\n' || b.data[l - 1] == '\r'))
            l--;
        memcpy(out, b.data, l);
        out[l] = '\0';
    }
    mgo_buf_cleanup(&b);
    return err;
}

mgo_err mgo_agent_run(const struct mgo_agent_config *cfg, volatile sig_atomic_t *stop)
{
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    if (mgo_agent_config_check(cfg, &probs) != MGO_OK) {
        char text[1024];
        mgo_problems_format(&probs, text, sizeof text);
        MGO_LOGE(TAG, "configuration: %s", text);
        return MGO_ERR_INVALID;
    }
    struct agent *a = calloc(1, sizeof *a);
    if (a == NULL)
        return MGO_ERR_NOMEM;
    a->cfg = cfg;
    a->stop = stop;
    mgo_err err = MGO_OK;
    for (size_t i = 0; i < cfg->manager_public_key.len && i < MAX_MANAGER_KEYS; i++) {
        err = mgo_verify_key_load(cfg->manager_public_key.items[i], &a->keys[a->keys_len]);
        if (err != MGO_OK) {
            MGO_LOGE(TAG, "manager-public-key %s: %s (an EC P-256 public key or certificate in "
                     "PEM is required); not starting", cfg->manager_public_key.items[i],
                     mgo_strerror(err));
            goto cleanup_agent;
        }
        MGO_LOGI(TAG, "manager key %s (%s)", mgo_verify_key_id(a->keys[a->keys_len]),
                 cfg->manager_public_key.items[i]);
        a->keys_len++;
    }
    if (a->keys_len == 0)
        MGO_LOGW(TAG, "no manager-public-key: desired state is accepted without a signature");
    err = mgo_agent_state_open(cfg->state_dir, &a->st);
    if (err != MGO_OK)
        goto cleanup_agent;
    char jpath[MGO_AGENT_MAX_PATH];
    err = mgo_agent_state_path(&a->st, "journal", jpath);
    if (err == MGO_OK)
        err = mgo_journal_open(jpath, &a->journal);
    if (err != MGO_OK)
        goto cleanup_agent;
    err = mgo_agent_record_load_all(&a->st, a->recs, MAX_RECS, &a->recs_len);
    if (err != MGO_OK)
        goto cleanup_journal;
    MGO_LOGI(TAG, "device %s boot %" PRIu64 ", manifest %" PRIu64 ", %zu deployments, %zu "
             "unsent statuses", cfg->device_id, a->st.boot, a->st.manifest_version, a->recs_len,
             a->journal.pending_len);
    for (size_t i = 0; i < cfg->downtime.len && i < MAX_DOWNTIME; i++) {
        char why[256];
        if (mgo_downtime_parse(cfg->downtime.items[i], &a->downtime[a->downtime_len], why,
                               sizeof why) == MGO_OK)
            a->downtime_len++;
    }
    if (mgo_agent_state_path(&a->st, "work", a->work_dir) != MGO_OK) {
        err = MGO_ERR_LIMIT;
        goto cleanup_journal;
    }
    a->rt = (struct mgo_rt_settings){
        .work_dir = a->work_dir, .compose_command = cfg->compose_command,
        .container_command = cfg->container_command, .helm_command = cfg->helm_command,
        .kube_context = cfg->kube_context, .otel_http_endpoint = cfg->otel_http_endpoint,
        .otel_grpc_endpoint = cfg->otel_grpc_endpoint, .otel_certificate = cfg->otel_certificate,
        .otel_protocol = cfg->otel_protocol,
        .fetch = {.timeout_s = 300, .ca_file = NULL,
                  .plain_http = (const char *const *)cfg->oci_plain_http.items,
                  .plain_http_len = cfg->oci_plain_http.len},
        .default_timeout_s = (uint32_t)cfg->default_timeout_s, .cancel = stop,
    };
    if (build_caps(a) != MGO_OK) {
        err = MGO_ERR_INVALID;
        goto cleanup_journal;
    }

    struct mgo_buf will;
    mgo_buf_init(&will, 4096);
    const char *state_topic = topic(a, MGO_TOPIC_STATE, NULL);
    char will_topic[MGO_MAX_TOPIC_LEN + 1];
    snprintf(will_topic, sizeof will_topic, "%s", state_topic ? state_topic : "");
    err = encode_presence(a, false, &will);
    if (err != MGO_OK)
        goto cleanup_will;
    if (cfg->password_file != NULL) {
        err = read_password(cfg->password_file, a->password, sizeof a->password);
        if (err != MGO_OK) {
            MGO_LOGE(TAG, "password-file %s: cannot read", cfg->password_file);
            goto cleanup_will;
        }
    }
    struct mgo_mqtt_will w = {will_topic, will.data, will.len, 1, true};
    struct mgo_mqtt_config mc = {
        .url = cfg->broker_url, .client_id = cfg->device_id, .clean_start = false,
        .session_expiry_s = (uint32_t)cfg->session_expiry_s,
        .keepalive_s = (uint16_t)cfg->keepalive_s, .ca_file = cfg->ca_file,
        .cert_file = cfg->cert_file, .key_file = cfg->key_file, .username = cfg->username,
        .password = cfg->password_file ? a->password : NULL, .will = &w,
    };
    err = mgo_mqtt_new(&mc, &a->mqtt);
    if (err != MGO_OK) {
        MGO_LOGE(TAG, "mqtt client: %s", mgo_strerror(err));
        goto cleanup_will;
    }
    mgo_backoff_init(&a->backoff, (uint32_t)cfg->backoff_min_ms, (uint32_t)cfg->backoff_max_ms,
                     (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32) ^ a->st.boot);

    /* finish what a previous run left half done, before taking new work */
    resume_work(a);
    a->next_reconcile_ms = mono_ms() + (uint64_t)cfg->reconcile_interval_s * 1000u;

    while (!stopping(a)) {
        maybe_connect(a);
        uint64_t now = mono_ms();
        int wait_ms = 1000;
        if (!a->connected && !a->connecting && !a->in_downtime && a->next_attempt_ms > now &&
            a->next_attempt_ms - now < (uint64_t)wait_ms)
            wait_ms = (int)(a->next_attempt_ms - now);
        if (a->dirty) {
            uint64_t due = a->dirty_since_ms + (uint64_t)cfg->settle_ms;
            int settle = due > now ? (int)(due - now) : 0;
            if (settle < wait_ms)
                wait_ms = settle;
        }
        struct mgo_mqtt_event ev;
        mgo_err e = mgo_mqtt_next(a->mqtt, wait_ms, &ev);
        if (e == MGO_OK) {
            handle_event(a, &ev);
            mgo_mqtt_event_cleanup(&ev);
            /* drain what is queued (e.g. everything stored while offline) before acting */
            for (int k = 0; k < 4096 && mgo_mqtt_next(a->mqtt, 0, &ev) == MGO_OK; k++) {
                handle_event(a, &ev);
                mgo_mqtt_event_cleanup(&ev);
            }
        }
        now = mono_ms();
        if (a->dirty && now >= a->dirty_since_ms + (uint64_t)cfg->settle_ms)
            try_accept(a);
        if (now >= a->next_reconcile_ms) {
            reconcile(a);
            a->next_reconcile_ms = mono_ms() + (uint64_t)cfg->reconcile_interval_s * 1000u;
        }
    }

    MGO_LOGI(TAG, "shutting down");
    if (a->connected) {
        /* say offline ourselves: a clean disconnect does not fire the will */
        struct mgo_buf off;
        mgo_buf_init(&off, 4096);
        const char *t = topic(a, MGO_TOPIC_STATE, NULL);
        if (t != NULL && encode_presence(a, false, &off) == MGO_OK &&
            mgo_mqtt_publish(a->mqtt, t, off.data, off.len, 1, true, NULL) == MGO_OK) {
            /* give the broker a moment to acknowledge it and pending statuses */
            uint64_t until = mono_ms() + 2000;
            struct mgo_mqtt_event ev;
            while (mono_ms() < until && mgo_mqtt_next(a->mqtt, 100, &ev) == MGO_OK) {
                if (ev.kind == MGO_MQTT_EV_PUBLISHED)
                    on_published(a, ev.token, true);
                mgo_mqtt_event_cleanup(&ev);
            }
        }
        mgo_buf_cleanup(&off);
        if (mgo_mqtt_disconnect(a->mqtt, 2000) != MGO_OK)
            MGO_LOGW(TAG, "disconnect not clean");
    }
    err = MGO_OK;
    mgo_mqtt_free(a->mqtt);
cleanup_will:
    mgo_buf_cleanup(&will);
cleanup_journal:
    mgo_journal_close(&a->journal);
cleanup_agent:
    for (size_t i = 0; i < a->docs_len; i++)
        free(a->docs[i].bytes);
    drop_manifest(a);
    free(a->caps_bytes);
    memset(a->password, 0, sizeof a->password);
    for (size_t i = 0; i < a->keys_len; i++)
        mgo_verify_key_free(a->keys[i]);
    free(a);
    return err;
}
