/* agent.h - margo-agent: the device side of margo-mqtt.
 *
 * mgo_agent_new/run/stop/free (the manager's shape): the thread that calls mgo_agent_run()
 * is the agent's loop thread. It keeps the MQTT session (persistent, last will, jittered
 * reconnect outside downtime windows), accepts desired-state manifests, plans and applies
 * them through the Compose or Helm runtime (on a worker thread), journals and publishes every
 * status transition, publishes capabilities and presence, and checks for drift. See
 * docs/agent.md and docs/architecture.md. */
#ifndef MGO_AGENT_H
#define MGO_AGENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/config.h"
#include "mgo/err.h"

struct mgo_agent_config {
    char *device_id;
    char *broker_url;
    char *topic_prefix;
    char *ca_file, *cert_file, *key_file;
    char *username, *password_file;
    char *state_dir;
    char *compose_command, *container_command, *helm_command, *kube_context;
    int64_t reconcile_interval_s;
    int64_t session_expiry_s;
    int64_t keepalive_s;
    int64_t backoff_min_ms, backoff_max_ms;
    int64_t settle_ms;         /* quiet time before acting on a new manifest */
    int64_t default_timeout_s; /* component timeout when the deployment gives none */
    struct mgo_strlist downtime;
    struct mgo_strlist label;
    struct mgo_strlist peripheral;
    struct mgo_strlist oci_plain_http;
    struct mgo_strlist manager_public_key; /* PEM P-256 keys or certificates (rotation) */
    char *vendor, *model, *serial, *memory, *storage;
    char *cpu_cores;
    bool otel_collector;
    char *otel_http_endpoint, *otel_grpc_endpoint, *otel_certificate, *otel_protocol;
    char *log_level;
    char *metrics_listen; /* ADDRESS:PORT of GET /metrics; NULL or "": no listener */
    /* transport (docs/agent.md "HTTP transport") */
    char *transport;                /* "mqtt" (default) or "http" */
    char *wfm_url;                  /* http: https://host:port of the Margo WFM */
    int64_t poll_interval_s;        /* http: seconds between polls of the desired state */
    struct mgo_strlist poll_window; /* http: hours polling is allowed (downtime syntax) */
    char *log_format;               /* text or json (log.h) */
};

extern const struct mgo_cfg_option mgo_agent_cfg_table[];
extern const size_t mgo_agent_cfg_table_len;

/* Checks the parts of the configuration the table cannot (ids, URLs, windows); adds
 * problems naming the option. */
mgo_err mgo_agent_config_check(const struct mgo_agent_config *cfg,
                               struct mgo_problems *problems) MGO_MUST_CHECK;

struct mgo_agent;

/* Checks the configuration, loads the manager keys, opens the state directory (the boot
 * counter grows), the journal and the records, and detects capabilities; no network yet.
 * cfg is borrowed for the agent's life. MGO_ERR_INVALID (configuration, logged), the state
 * directory's errors, MGO_ERR_NOMEM. */
mgo_err mgo_agent_new(const struct mgo_agent_config *cfg, struct mgo_agent **out) MGO_MUST_CHECK;
/* Connects and runs the agent's loop on the calling thread until mgo_agent_stop(). MGO_OK
 * after a clean stop; MGO_ERR_IO when the loop itself failed. */
mgo_err mgo_agent_run(struct mgo_agent *a) MGO_MUST_CHECK;
/* Makes mgo_agent_run() return: any thread, and async-signal-safe (an atomic store and an
 * eventfd write), so a signal handler may call it. Before run: run returns at once. */
void mgo_agent_stop(struct mgo_agent *a);
/* Where a reload re-reads the configuration: the program's arguments (--config FILE and the
 * flags). argv must live as long as the agent. Without it a reload re-reads nothing. */
void mgo_agent_set_reload_args(struct mgo_agent *a, int argc, char **argv);
/* Asks the loop thread to reload (SIGHUP); async-signal-safe (mgo_loop_trigger). Applies
 * log-level, log-format and the MQTT TLS files (ca-file, cert-file, key-file: a reconnect
 * when they changed); any other option whose value changed is logged once as "needs a
 * restart: <option>". A configuration with errors is logged (file:line) and the running one
 * kept. docs/operations.md, "Reload". */
void mgo_agent_reload(struct mgo_agent *a);
/* Cancels running work (resumed at the next start), says offline, disconnects and frees.
 * Not while mgo_agent_run() runs. NULL is fine. */
void mgo_agent_free(struct mgo_agent *a);

#endif
