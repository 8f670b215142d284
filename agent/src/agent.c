/* agent.c - margo-agent's life: the configuration table, start-up, the loop and the wiring
 * between the session, the reporter and the executor, shutdown. Nothing else lives here.
 *
 *   agent.c -> session.c   (MQTT, presence, capabilities, routing of what arrives)
 *           -> reporter.c  (statuses, journal)          -> session.c
 *           -> executor.c  (desired state, plan, jobs)  -> reporter.c, docs.c, session.c,
 *                                                          plan.c, worker.c -> runtime*.c,
 *                                                          metrics.c
 *           -> metrics.c   (the optional metrics listener; fed a snapshot every second)
 * The session calls no other agent file: what it receives reaches the reporter and the
 * executor through the handlers below. See docs/architecture.md. */
#include "mgo/agent.h"

#include <inttypes.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "docs.h"
#include "downtime.h"
#include "executor.h"
#include "metrics.h"
#include "http_transport.h"
#include "mgo/log.h"
#include "mgo/loop.h"
#include "mgo/margo.h"
#include "mgo/sd.h"
#include "mgo/topic.h"
#include "reporter.h"
#include "runtime.h"
#include "session.h"
#include "state.h"

#define TAG "agent"
/* the loop trigger of a reload (mgo_agent_reload) */
#define RELOAD_TRIGGER 0u

/* ---- configuration table ------------------------------------------------------------- */

#define OPT(name, type, field, min, max, def, help)                                                \
    {                                                                                              \
        name, type, offsetof(struct mgo_agent_config, field), min, max, def, help                  \
    }

const struct mgo_cfg_option mgo_agent_cfg_table[] = {
    OPT("device-id", MGO_CFG_STR, device_id, 0, MGO_MAX_DEVICE_ID_LEN, NULL,
        "this device's id (one topic level, [A-Za-z0-9._~-]); required"),
    OPT("broker-url", MGO_CFG_STR, broker_url, 0, 512, "tcp://127.0.0.1:1883",
        "MQTT broker, tcp://host:port or ssl://host:port"),
    OPT("topic-prefix", MGO_CFG_STR, topic_prefix, 0, MGO_MAX_TOPIC_PREFIX_LEN, "margo/v1",
        "topic root"),
    OPT("ca-file", MGO_CFG_STR, ca_file, 0, 1024, NULL,
        "TLS: CA certificates (PEM; reloaded on SIGHUP)"),
    OPT("cert-file", MGO_CFG_STR, cert_file, 0, 1024, NULL,
        "TLS: client certificate (PEM; reloaded on SIGHUP)"),
    OPT("key-file", MGO_CFG_STR, key_file, 0, 1024, NULL,
        "TLS: client key (PEM; reloaded on SIGHUP)"),
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
    OPT("log-level", MGO_CFG_STR, log_level, 0, 16, "info",
        "error, warn, info, debug (reloaded on SIGHUP)"),
    OPT("log-format", MGO_CFG_STR, log_format, 0, 16, "text",
        "text or json (one JSON object per line); under systemd the journal's own fields "
        "(reloaded on SIGHUP)"),
    OPT("metrics-listen", MGO_CFG_STR, metrics_listen, 0, 128, NULL,
        "ADDRESS:PORT of an HTTP listener serving GET /metrics (Prometheus; no token, keep it "
        "on loopback or a trusted network); default none"),
    OPT("transport", MGO_CFG_STR, transport, 0, 8, "mqtt",
        "mqtt (margo-mqtt's binding) or http (Margo's standard HTTP API, any Margo WFM)"),
    OPT("wfm-url", MGO_CFG_STR, wfm_url, 0, 512, NULL,
        "http: the Margo WFM, https://host:port (cert-file/key-file: this device's X.509-SVID)"),
    OPT("poll-interval", MGO_CFG_INT, poll_interval_s, 1, 86400, "30",
        "http: seconds between polls of GET /api/v1/deployments"),
    OPT("poll-window", MGO_CFG_LIST, poll_window, 0, 64, NULL,
        "http: hours polling is allowed (UTC, downtime syntax, e.g. \"daily 08:00-18:00\"); "
        "repeatable; none = always"),
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
         strncmp(cfg->broker_url, "mqtt://", 7) != 0 &&
         strncmp(cfg->broker_url, "mqtts://", 8) != 0))
        mgo_problems_add(problems, "broker-url",
                         "must start with tcp://, ssl://, mqtt:// or mqtts://");
    if (cfg->state_dir == NULL || cfg->state_dir[0] == '\0')
        mgo_problems_add(problems, "state-dir", "required");
    if (cfg->downtime.len > MGO_SESSION_MAX_DOWNTIME)
        mgo_problems_add(problems, "downtime", "at most %u windows", MGO_SESSION_MAX_DOWNTIME);
    for (size_t i = 0; i < cfg->downtime.len; i++) {
        struct mgo_downtime w;
        char why[256];
        if (mgo_downtime_parse(cfg->downtime.items[i], &w, why, sizeof why) != MGO_OK)
            mgo_problems_add(problems, "downtime", "%s", why);
    }
    if (cfg->manager_public_key.len > MGO_SESSION_MAX_KEYS)
        mgo_problems_add(problems, "manager-public-key", "at most %u keys", MGO_SESSION_MAX_KEYS);
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
    bool http = cfg->transport != NULL && strcmp(cfg->transport, "http") == 0;
    if (cfg->transport == NULL || (!http && strcmp(cfg->transport, "mqtt") != 0))
        mgo_problems_add(problems, "transport", "mqtt or http");
    if (http) {
        if (cfg->wfm_url == NULL || strncmp(cfg->wfm_url, "https://", 8) != 0 ||
            cfg->wfm_url[8] == '\0' || cfg->wfm_url[strlen(cfg->wfm_url) - 1] == '/')
            mgo_problems_add(problems, "wfm-url",
                             "required with transport http: https://host[:port], no trailing /");
        if (cfg->cert_file == NULL || cfg->key_file == NULL)
            mgo_problems_add(problems, "cert-file",
                             "transport http needs cert-file and key-file (the device's "
                             "X.509-SVID: Margo's trust is mutual TLS)");
        if (cfg->manager_public_key.len > 0)
            mgo_problems_add(problems, "manager-public-key",
                             "applies to the mqtt transport only (over http the trust is mutual "
                             "TLS; documents carry no signature)");
    }
    if (cfg->poll_window.len > MGO_HTTP_MAX_POLL_WINDOWS)
        mgo_problems_add(problems, "poll-window", "at most %u windows", MGO_HTTP_MAX_POLL_WINDOWS);
    for (size_t i = 0; i < cfg->poll_window.len; i++) {
        struct mgo_downtime w;
        char why[256];
        if (mgo_downtime_parse(cfg->poll_window.items[i], &w, why, sizeof why) != MGO_OK)
            mgo_problems_add(problems, "poll-window", "%s", why);
    }
    if (cfg->log_level != NULL) {
        enum mgo_log_level l;
        if (mgo_log_level_parse(cfg->log_level, &l) != MGO_OK)
            mgo_problems_add(problems, "log-level", "error, warn, info or debug");
    }
    if (cfg->log_format != NULL) {
        enum mgo_log_format f;
        if (mgo_log_format_parse(cfg->log_format, &f) != MGO_OK)
            mgo_problems_add(problems, "log-format", "text or json");
    }
    return mgo_problems_total(problems) > before ? MGO_ERR_INVALID : MGO_OK;
}

/* ---- the loop ------------------------------------------------------------------------- */

struct mgo_agent {
    const struct mgo_agent_config *cfg;
    struct mgo_agent_state st;
    struct mgo_loop *loop;
    struct mgo_session *session;
    struct mgo_http_transport *http; /* transport http; NULL for mqtt */
    struct mgo_reporter reporter;
    bool reporter_open;
    struct mgo_docs docs;
    struct mgo_executor *executor;
    struct mgo_rt_settings rt;
    char work_dir[MGO_AGENT_MAX_PATH];
    struct mgo_agent_metrics metrics; /* docs/operations.md "Metrics" */
    bool metrics_init;
    bool connected, was_connected;
    struct mgo_sd_watchdog watchdog;
    /* reload: the arguments to parse again, and the configuration the last reload read
     * (compared with the next one, so a change that needs a restart is reported once) */
    int reload_argc;
    char **reload_argv;
    struct mgo_agent_config seen;
    bool seen_valid;
};

/* Session handlers: what the session receives goes to the reporter and the executor. */

static void on_connected(void *ctx, bool session_present)
{
    struct mgo_agent *a = ctx;
    if (a->was_connected)
        mgo_counter_inc(&a->metrics.mqtt_reconnects);
    a->was_connected = a->connected = true;
    mgo_sd_status("device %s connected to %s", a->cfg->device_id, a->cfg->broker_url);
    mgo_reporter_connected(&a->reporter, session_present);
}

static void on_disconnected(void *ctx)
{
    struct mgo_agent *a = ctx;
    a->connected = false;
    mgo_sd_status("device %s: not connected to %s, reconnecting", a->cfg->device_id,
                  a->cfg->broker_url);
    mgo_reporter_disconnected(&a->reporter);
}

static void on_published(void *ctx, int token, bool ok)
{
    struct mgo_agent *a = ctx;
    mgo_reporter_published(&a->reporter, token, ok);
}

static void on_receipt(void *ctx, const struct mgo_receipt *receipt)
{
    struct mgo_agent *a = ctx;
    mgo_reporter_receipt(&a->reporter, receipt);
}

static void on_desired(void *ctx, const uint8_t *payload, size_t len)
{
    struct mgo_agent *a = ctx;
    mgo_executor_on_desired(a->executor, payload, len);
}

static void on_deployment(void *ctx, const char *dep_id, const uint8_t *payload, size_t len)
{
    struct mgo_agent *a = ctx;
    mgo_executor_on_deployment(a->executor, dep_id, payload, len);
}

/* HTTP transport handlers (desired, deployment and published are the session's). */

static void on_http_ready(void *ctx)
{
    struct mgo_agent *a = ctx;
    mgo_reporter_flush(&a->reporter);
}

/* Timers. */

static void reconcile(void *ctx)
{
    struct mgo_agent *a = ctx;
    if (mgo_session_refresh_caps(a->session, mgo_rt_available(&a->rt, MGO_PROFILE_COMPOSE),
                                 mgo_rt_available(&a->rt, MGO_PROFILE_HELM)) != MGO_OK)
        MGO_LOGW(TAG, "capabilities not refreshed");
    if (a->http != NULL)
        mgo_http_transport_caps_changed(a->http);
    mgo_executor_reconcile(a->executor);
    if (mgo_loop_timer_add(a->loop, a->cfg->reconcile_interval_s * 1000, reconcile, a, NULL) !=
        MGO_OK)
        MGO_LOGE(TAG, "reconcile timer not set: out of memory; drift checks stop");
}

/* Timer, while the metrics listener runs: the loop-owned gauges into its snapshot. */
static void metrics_snapshot(void *ctx)
{
    struct mgo_agent *a = ctx;
    struct mgo_agent_metrics_view v = {
        .journal_depth = mgo_reporter_unsent(&a->reporter),
        .connected = a->connected,
        .latest = &a->reporter.latest,
    };
    mgo_agent_metrics_snapshot(&a->metrics, &v);
    if (mgo_loop_timer_add(a->loop, MGO_AGENT_METRICS_SNAPSHOT_MS, metrics_snapshot, a, NULL) !=
        MGO_OK)
        MGO_LOGE(TAG, "metrics timer not set: out of memory; the gauges stop");
}

/* ---- reload (SIGHUP) -------------------------------------------------------------------- */

/* Parses the arguments again into fresh (zeroed) and checks it; logs every problem. */
static mgo_err reread(const struct mgo_agent *a, struct mgo_agent_config *fresh)
{
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    bool help = false;
    mgo_err err = mgo_cfg_parse_args(mgo_agent_cfg_table, mgo_agent_cfg_table_len, fresh,
                                     a->reload_argc, a->reload_argv, &help, &probs);
    if (err == MGO_OK)
        err = mgo_agent_config_check(fresh, &probs);
    mgo_cfg_log_reload_problems(TAG, &probs);
    return err;
}

/* Loop thread (trigger): re-reads the configuration and applies what can change while the
 * agent runs (agent.h, mgo_agent_reload). */
static void reload(void *ctx)
{
    struct mgo_agent *a = ctx;
    mgo_sd_reloading();
    if (a->reload_argv == NULL) {
        MGO_LOGW(TAG, "reload: no arguments to re-read the configuration from; nothing changed");
        mgo_sd_ready("reload skipped: no configuration source");
        return;
    }
    MGO_LOGI(TAG, "reload: re-reading the configuration");
    struct mgo_agent_config fresh;
    memset(&fresh, 0, sizeof fresh);
    if (reread(a, &fresh) != MGO_OK) {
        mgo_cfg_cleanup(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &fresh);
        MGO_LOGE(TAG, "reload: the configuration has errors; the running one is kept");
        mgo_sd_ready("reload failed (configuration errors, see the log); running unchanged");
        return;
    }
    enum mgo_log_level lvl = MGO_LOG_INFO;
    enum mgo_log_format fmt = MGO_LOG_TEXT;
    /* both checked by reread: a failure here leaves the default */
    if (fresh.log_level != NULL && mgo_log_level_parse(fresh.log_level, &lvl) != MGO_OK)
        lvl = MGO_LOG_INFO;
    if (fresh.log_format != NULL && mgo_log_format_parse(fresh.log_format, &fmt) != MGO_OK)
        fmt = MGO_LOG_TEXT;
    mgo_log_set_format(fmt);
    mgo_log_set_level(lvl);
    bool dropped = false;
    if (a->http != NULL) {
        if (mgo_http_transport_reload_tls(a->http, fresh.ca_file, fresh.cert_file,
                                          fresh.key_file) != MGO_OK)
            MGO_LOGE(TAG, "reload: the WFM TLS files are unchanged");
    } else if (mgo_session_reload_tls(a->session, fresh.ca_file, fresh.cert_file, fresh.key_file,
                                      &dropped) != MGO_OK) {
        MGO_LOGE(TAG, "reload: out of memory; the MQTT TLS files are unchanged");
    }
    mgo_cfg_report_restart(TAG, mgo_agent_cfg_table, mgo_agent_cfg_table_len, &fresh,
                           a->seen_valid ? &a->seen : a->cfg);
    mgo_cfg_cleanup(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &a->seen);
    a->seen = fresh; /* owned now */
    a->seen_valid = true;
    MGO_LOGI(TAG, "reload: done%s", dropped ? "; reconnecting with the new TLS files" : "");
    mgo_sd_ready("reloaded; device %s", a->cfg->device_id);
}

void mgo_agent_set_reload_args(struct mgo_agent *a, int argc, char **argv)
{
    a->reload_argc = argc;
    a->reload_argv = argv;
}

void mgo_agent_reload(struct mgo_agent *a)
{
    mgo_loop_trigger(a->loop, RELOAD_TRIGGER);
}

mgo_err mgo_agent_new(const struct mgo_agent_config *cfg, struct mgo_agent **out)
{
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    if (mgo_agent_config_check(cfg, &probs) != MGO_OK) {
        char text[1024];
        mgo_problems_format(&probs, text, sizeof text);
        MGO_LOGE(TAG, "configuration: %s", text);
        return MGO_ERR_INVALID;
    }
    struct mgo_agent *a = calloc(1, sizeof *a);
    if (a == NULL)
        return MGO_ERR_NOMEM;
    a->cfg = cfg;
    mgo_agent_metrics_init(&a->metrics);
    a->metrics_init = true;
    mgo_err err = mgo_loop_new(&a->loop);
    if (err != MGO_OK) {
        mgo_agent_metrics_cleanup(&a->metrics);
        free(a);
        return err;
    }
    mgo_docs_init(&a->docs, &a->st);
    struct mgo_session_handlers h = {
        .ctx = a,
        .connected = on_connected,
        .disconnected = on_disconnected,
        .published = on_published,
        .desired = on_desired,
        .deployment = on_deployment,
        .receipt = on_receipt,
    };
    err = mgo_session_new(cfg, a->loop, &h, &a->session);
    if (err != MGO_OK)
        goto fail;
    err = mgo_agent_state_open(cfg->state_dir, &a->st);
    if (err != MGO_OK)
        goto fail;
    char jpath[MGO_AGENT_MAX_PATH], lpath[MGO_AGENT_MAX_PATH];
    err = mgo_agent_state_path(&a->st, "journal", jpath);
    if (err == MGO_OK)
        err = mgo_agent_state_path(&a->st, "status", lpath);
    struct mgo_reporter_delivery delivery = mgo_reporter_delivery_mqtt(a->session);
    if (err == MGO_OK && strcmp(cfg->transport, "http") == 0) {
        struct mgo_http_handlers hh = {.ctx = a,
                                       .desired = on_desired,
                                       .deployment = on_deployment,
                                       .published = on_published,
                                       .ready = on_http_ready};
        err = mgo_http_transport_new(cfg, a->loop, &a->st, a->session, &hh, &a->http);
        if (err == MGO_OK)
            delivery = mgo_http_transport_delivery(a->http);
    }
    if (err == MGO_OK)
        err = mgo_reporter_open(&a->reporter, jpath, lpath, &delivery, cfg->device_id, a->st.boot);
    if (err != MGO_OK)
        goto fail;
    a->reporter_open = true;
    if (mgo_agent_state_path(&a->st, "work", a->work_dir) != MGO_OK) {
        err = MGO_ERR_LIMIT;
        goto fail;
    }
    a->rt = (struct mgo_rt_settings){
        .work_dir = a->work_dir,
        .compose_command = cfg->compose_command,
        .container_command = cfg->container_command,
        .helm_command = cfg->helm_command,
        .kube_context = cfg->kube_context,
        .otel_http_endpoint = cfg->otel_http_endpoint,
        .otel_grpc_endpoint = cfg->otel_grpc_endpoint,
        .otel_certificate = cfg->otel_certificate,
        .otel_protocol = cfg->otel_protocol,
        .fetch = {.timeout_s = 300,
                  .ca_file = NULL,
                  .plain_http = (const char *const *)cfg->oci_plain_http.items,
                  .plain_http_len = cfg->oci_plain_http.len},
        .default_timeout_s = (uint32_t)cfg->default_timeout_s,
    };
    if (mgo_session_refresh_caps(a->session, mgo_rt_available(&a->rt, MGO_PROFILE_COMPOSE),
                                 mgo_rt_available(&a->rt, MGO_PROFILE_HELM)) != MGO_OK) {
        err = MGO_ERR_INVALID;
        goto fail;
    }
    struct mgo_executor_deps xd = {
        .loop = a->loop,
        .st = &a->st,
        .docs = &a->docs,
        .reporter = &a->reporter,
        .session = a->session,
        .rt = &a->rt,
        .state_dir = cfg->state_dir,
        .settle_ms = cfg->settle_ms,
        .metrics = &a->metrics,
    };
    err = mgo_executor_new(&xd, &a->executor);
    if (err != MGO_OK)
        goto fail;
    if (cfg->metrics_listen && cfg->metrics_listen[0]) {
        struct mgo_agent_metrics_view v = {.journal_depth = mgo_reporter_unsent(&a->reporter),
                                           .latest = &a->reporter.latest};
        mgo_agent_metrics_snapshot(&a->metrics, &v); /* before the first scrape */
        err = mgo_agent_metrics_listen(&a->metrics, cfg->metrics_listen);
        if (err != MGO_OK)
            goto fail;
    }
    MGO_LOGI(TAG,
             "device %s boot %" PRIu64 ", manifest %" PRIu64 ", %zu deployments, %zu "
             "unsent statuses",
             cfg->device_id, a->st.boot, a->st.manifest_version, mgo_executor_records(a->executor),
             mgo_reporter_unsent(&a->reporter));

    *out = a;
    return MGO_OK;
fail:
    mgo_agent_free(a);
    return err;
}

mgo_err mgo_agent_run(struct mgo_agent *a)
{
    if (mgo_loop_stopping(a->loop))
        return MGO_OK; /* stopped before it ran */
    mgo_err err = a->http != NULL ? mgo_http_transport_start(a->http)
                                  : mgo_session_start(a->session, a->st.boot);
    if (err != MGO_OK)
        return err;
    /* finish what a previous run left half done before new work (queued first) */
    mgo_executor_resume(a->executor);
    err = mgo_loop_timer_add(a->loop, a->cfg->reconcile_interval_s * 1000, reconcile, a, NULL);
    if (err == MGO_OK && mgo_agent_metrics_port(&a->metrics) != 0)
        err = mgo_loop_timer_add(a->loop, MGO_AGENT_METRICS_SNAPSHOT_MS, metrics_snapshot, a, NULL);
    if (err == MGO_OK)
        err = mgo_loop_on_trigger(a->loop, RELOAD_TRIGGER, reload, a);
    if (err == MGO_OK)
        err = mgo_sd_watchdog_start(&a->watchdog, a->loop);
    /* state loaded (mgo_agent_new), the MQTT client started and its first connect begun */
    if (err == MGO_OK)
        mgo_sd_ready("device %s: connecting to %s", a->cfg->device_id, a->cfg->broker_url);
    if (err == MGO_OK)
        err = mgo_loop_run(a->loop);
    if (err != MGO_OK)
        MGO_LOGE(TAG, "loop: %s", mgo_strerror(err));
    mgo_sd_watchdog_stop(&a->watchdog);
    mgo_sd_stopping("device %s: shutting down", a->cfg->device_id);
    MGO_LOGI(TAG, "shutting down");
    return err;
}

void mgo_agent_stop(struct mgo_agent *a)
{
    mgo_loop_stop(a->loop);
}

void mgo_agent_free(struct mgo_agent *a)
{
    if (a == NULL)
        return;
    /* the listener reads only the snapshot and the counters: stopped first */
    if (a->metrics_init)
        mgo_agent_metrics_cleanup(&a->metrics);
    /* cancel the running job first (its completion may still be reported), then say offline */
    mgo_executor_free(a->executor);
    mgo_http_transport_free(a->http);
    mgo_session_free(a->session);
    if (a->reporter_open)
        mgo_reporter_close(&a->reporter);
    mgo_docs_cleanup(&a->docs);
    mgo_loop_free(a->loop);
    mgo_cfg_cleanup(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &a->seen);
    free(a);
}
