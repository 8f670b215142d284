/* manager.h - the margo-manager daemon as a library (main() only parses arguments and
 * calls these; tests run the same code in a thread).
 *
 * One loop thread (the caller of mgo_manager_run) owns all state: the store, the MQTT
 * client, device knowledge. HTTP requests arrive on libmicrohttpd threads and are handed
 * to the loop thread, which answers them; Server-Sent Event streams are fed by the loop
 * thread through a locked hub. Threads and file map: docs/architecture.md. */
#ifndef MGO_MANAGER_H
#define MGO_MANAGER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mgo/config.h"
#include "mgo/err.h"

struct mgo_manager_config {
    char *state_dir;      /* SQLite store and the generated API token live here */
    char *store;          /* postgresql://... : the store in PostgreSQL; NULL/"": SQLite */
    char *broker_url;     /* tcp://127.0.0.1:1883 or ssl://host:8883 */
    char *client_id;      /* MQTT client id (persistent session key) */
    char *topic_prefix;   /* margo/v1 */
    char *api_listen;     /* 127.0.0.1:8080, [::1]:8080; port 0 picks a free one */
    char *api_token_file; /* bearer token; empty = <state-dir>/api-token (made if missing) */
    char *api_tls_cert;   /* PEM certificate (chain) for HTTPS on api-listen; NULL = plain HTTP */
    char *api_tls_key;    /* its PEM private key (both or neither) */
    char *log_level;
    char *log_format; /* text or json (log.h) */
    char *ca_file;
    char *cert_file;
    char *key_file;
    char *username;
    char *password_file;
    char *signing_key_file; /* PEM EC P-256 key: sign manifests and deployments (ES256) */
    int64_t session_expiry_s;
    int64_t keepalive_s;
    int64_t status_history; /* reports kept per deployment in its history; 0 = all */
    char *catalog_dir;      /* POST /apps {"path"} reads only below it; NULL/"" = refused */
    char *role_names;       /* extra identities that are never devices (comma-separated) */
    int64_t event_history;  /* events kept per device; 0 = all */
    int64_t event_rate;     /* events stored per device a minute; 0 = no limit */
    int64_t status_rate;    /* statuses per device a minute before they are counted */
    /* HTTP API bounds (docs/security.md); 0 = the default (http.h) */
    int64_t api_max_connections;
    int64_t api_max_event_streams;
    int64_t api_max_per_address;
    int64_t api_request_timeout_s;
    int64_t api_idle_timeout_s;
    /* signed manifests expire this long after they are issued and are re-issued at half of
     * it (protocol.md §3.2); 0 = the default, 7 days */
    int64_t manifest_expiry_s;
    /* the fleet overview's samples of devices online (GET /overview): taken every
     * fleet_sample_interval_s, at most fleet_samples kept; 0 = the defaults (60 s, 10080) */
    int64_t fleet_sample_interval_s;
    int64_t fleet_samples;
    /* a second bearer token accepted on GET /metrics only (docs/operations.md "Metrics");
     * NULL = none */
    char *metrics_token_file;
    /* the southbound Margo HTTP API (docs/margo-http.md); margo_api_listen NULL/"": off */
    char *margo_api_listen;
    char *margo_api_cert; /* PEM: the WFM's X.509-SVID */
    char *margo_api_key;
    char *margo_api_client_ca; /* PEM: trust anchors of client SVIDs (the trust bundle) */
    char *trust_domain;
    char *wfm_id;
    int64_t margo_api_rate; /* requests per client a minute */
    /* several managers on one database (docs/scaling.md): the MQTT shared-subscription group
     * of device messages; NULL/"": off (one manager, today's behaviour) */
    char *share_group;
};

extern const struct mgo_cfg_option mgo_manager_options[];
extern const size_t mgo_manager_options_len;

struct mgo_manager;

/* Opens the store, reads (or creates) the API token, creates the MQTT client and starts the
 * HTTP API. Logs and returns the reason on failure. cfg must outlive the manager. */
mgo_err mgo_manager_new(const struct mgo_manager_config *cfg,
                        struct mgo_manager **out) MGO_MUST_CHECK;
/* Runs the loop until mgo_manager_stop(). Connects to the broker with jittered backoff. */
mgo_err mgo_manager_run(struct mgo_manager *m) MGO_MUST_CHECK;
/* Where a reload re-reads the configuration: the program's arguments (--config FILE and the
 * flags, which still override the file). argv must live as long as the manager. Without it
 * a reload re-reads nothing. */
void mgo_manager_set_reload_args(struct mgo_manager *m, int argc, char **argv);
/* Asks the loop thread to reload (SIGHUP); async-signal-safe (mgo_loop_trigger). The loop
 * re-reads the configuration and applies log-level, log-format and the MQTT TLS files
 * (ca-file, cert-file, key-file: a reconnect when they changed); any other option whose value
 * changed is logged once as "needs a restart: <option>". A configuration with errors is
 * logged (file:line) and the running one kept. docs/operations.md, "Reload". */
void mgo_manager_reload(struct mgo_manager *m);
/* Asks the loop to finish; async-signal-safe (mgo_loop_stop: an atomic store and an eventfd
 * write). */
void mgo_manager_stop(struct mgo_manager *m);
/* Stops the HTTP API, disconnects, closes the store. NULL is fine. */
void mgo_manager_free(struct mgo_manager *m);
/* The southbound Margo API's bound port (0 when it is not served). */
uint16_t mgo_manager_margo_api_port(const struct mgo_manager *m);
/* The port the HTTP API listens on (useful with port 0). */
uint16_t mgo_manager_api_port(const struct mgo_manager *m);

#endif
