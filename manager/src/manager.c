/* manager.c - the margo-manager daemon: lifecycle, the configuration table, and the loop
 * that owns the store and the MQTT client. It only wires the modules together: MQTT
 * messages go to ingest.c, connection events to publish.c, HTTP requests (queued by
 * http.c) to api.c. File map and call directions: mgr_internal.h, docs/architecture.md. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "http.h"
#include "ingest.h"
#include "lease.h"
#include "livebus.h"
#include "metrics.h"
#include "mgr_internal.h"
#include "outbox.h"
#include "publish.h"
#include "southbound.h"
#include "southbound_id.h"
#include "rollout.h"
#include "rollup.h"
#include "sse.h"
#include "mgo/backoff.h"
#include "mgo/log.h"
#include "mgo/loop.h"
#include "mgo/manager.h"
#include "mgo/mqtt.h"
#include "mgo/sd.h"
#include "mgo/secret.h"
#include "mgo/sign.h"

#define TAG "manager"

#define BACKOFF_BASE_MS 500
#define BACKOFF_MAX_MS 30000
/* QoS 1 publishes in flight to the broker. The MQTT wrapper hands the next publish over as
 * soon as one is acknowledged, so a small window keeps the pipe full (window / round trip is
 * far above what the broker takes); a large one made every publish slower, because Paho walks
 * its in-flight list for each new message id (4,096: a quarter of a 10,000-device deploy's
 * CPU; perf, bench/fleet). */
#define MGR_MAX_INFLIGHT 256
/* Received messages waiting for the loop before the MQTT wrapper warns that the manager falls
 * behind (a whole fleet reporting at once, or a backlog after an outage, passes it briefly). */
#define MGR_QUEUE_WARN 65536
/* how often held device messages are retried while the store refuses writes */
#define HELD_RETRY_MS 1000
/* how soon an incomplete after-connect sweep is tried again */
#define SWEEP_RETRY_MS 5000
/* the loop trigger of a reload (mgo_manager_reload) */
#define RELOAD_TRIGGER 0u
/* The publisher's background work (mgo_publish__poll): every PUBLISH_POLL_MS, and at once
 * while a step leaves more and the publish window has room, at most PUBLISH_STEP_MAX devices
 * a loop turn. With several managers (share-group, docs/scaling.md "Several managers"; the
 * leases: lease.h) this is how the holder publishes what the others stored; every
 * REMOVALS_EVERY polls the holder clears the retained documents of removals. */
#define PUBLISH_POLL_MS 250
#define PUBLISH_STEP_MAX 256
/* attempts at a new receipt epoch at start (it changes every device row; see mgo_manager_new) */
#define EPOCH_ATTEMPTS 10
#define REMOVALS_EVERY 20u

struct mgo_manager {
    const struct mgo_manager_config *cfg;
    struct mgo_mgr_store *store;
    struct mgo_mqtt *mqtt;
    char *password;                /* read from password_file */
    struct mgo_sign_key *sign_key; /* signing-key, or NULL: documents go out unsigned */
    struct mgo_loop *loop;
    struct mgo_backoff backoff;
    uint64_t connect_timer; /* pending reconnect, 0: none */
    uint64_t held_timer;    /* pending retry of held messages, 0: none */
    uint64_t sweep_timer;   /* pending retry of an incomplete sweep, 0: none */
    uint64_t http_timer;    /* the HTTP front end's tick (request deadline, keepalives) */
    uint64_t refresh_timer; /* re-issues every manifest at half of manifest-expiry */
    uint64_t sample_timer;  /* samples devices online for the fleet overview */
    uint64_t rollout_timer; /* the rollout engine's next tick (rollout.c) */
    bool rollout_kicked;    /* a status change brought the next tick forward */
    uint64_t rollup_timer;  /* the fleet roll-ups' period (rollup.c) */
    struct mgo_rollup rollup;
    bool drain_scheduled;    /* a continuation of drain_mqtt is queued */
    bool drain_paced;        /* the MQTT descriptor is unwatched until paced_drain runs */
    uint64_t last_commit_ns; /* end of the last drain that committed something, 0: none */
    char token[MGO_API_TOKEN_MAX + 1];
    size_t token_len;
    struct mgo_mqtt_outbox mqtt_outbox;
    struct mgo_outbox outbox;
    struct mgo_publisher pub;
    struct mgo_ingest ingest;
    struct mgo_api api;
    struct mgo_sse_hub *hub;
    struct mgo_http *http;
    /* docs/operations.md "Metrics" */
    struct mgo_mgr_metrics metrics;
    struct mgo_mgr_probe probe;
    char metrics_token[MGO_API_TOKEN_MAX + 1]; /* metrics-token-file; "": none */
    size_t metrics_token_len;
    bool was_connected;        /* a connection was established before (reconnects) */
    uint64_t batch_first_ns;   /* arrival of the open ingest batch's first message */
    struct mgo_southbound *sb; /* the southbound Margo API (NULL: margo-api-listen unset) */
    struct mgo_http *sb_http;  /* its listener */
    struct mgo_sd_watchdog watchdog;
    /* reload: the arguments to parse again, and the configuration the last reload read
     * (compared with the next one, so a change that needs a restart is reported once) */
    int reload_argc;
    char **reload_argv;
    struct mgo_manager_config seen;
    bool seen_valid;
    /* several managers (share-group): the leases and their timers */
    bool shared;
    struct mgo_lease lease;
    uint64_t lease_timer; /* renewal */
    uint64_t publish_timer;
    bool publish_kicked; /* publish_timer is a 0 ms one */
    unsigned publish_n;
    bool epoch_due; /* a new receipt epoch could not be stored: the lease timer tries again */
    struct mgo_livebus *bus; /* share-group on PostgreSQL: the live events of every manager */
};

#define OPT(name, type, field, min, max, def, help)                                                \
    {                                                                                              \
        name, type, offsetof(struct mgo_manager_config, field), min, max, def, help                \
    }

const struct mgo_cfg_option mgo_manager_options[] = {
    OPT("state-dir", MGO_CFG_STR, state_dir, 0, 1024, "/var/lib/margo-manager",
        "directory of the SQLite store and the generated API token"),
    OPT("store", MGO_CFG_STR, store, 0, 1024, NULL,
        "PostgreSQL database of the store instead of SQLite in state-dir: a libpq URL "
        "postgresql://USER@HOST:PORT/DB or postgres://... (several managers may share one); "
        "unset: SQLite"),
    OPT("broker-url", MGO_CFG_STR, broker_url, 0, 512, "tcp://127.0.0.1:1883",
        "MQTT broker (tcp://HOST:PORT or ssl://HOST:PORT)"),
    OPT("client-id", MGO_CFG_STR, client_id, 0, 128, "margo-manager",
        "MQTT client id; the persistent session is kept under it"),
    OPT("topic-prefix", MGO_CFG_STR, topic_prefix, 0, 128, MGO_TOPIC_DEFAULT_PREFIX,
        "root of every topic"),
    OPT("api-listen", MGO_CFG_STR, api_listen, 0, 128, "127.0.0.1:8080",
        "HTTP API address:port (loopback by default; port 0 picks one)"),
    OPT("api-token-file", MGO_CFG_STR, api_token_file, 0, 1024, "",
        "file holding the API bearer token (default: STATE-DIR/api-token, created if missing)"),
    OPT("metrics-token-file", MGO_CFG_STR, metrics_token_file, 0, 1024, NULL,
        "file holding a second bearer token that GET /metrics accepts (and nothing else); "
        "the API token works there too"),
    OPT("api-tls-cert", MGO_CFG_STR, api_tls_cert, 0, 1024, NULL,
        "PEM certificate for HTTPS on api-listen (with api-tls-key); default plain HTTP"),
    OPT("api-tls-key", MGO_CFG_STR, api_tls_key, 0, 1024, NULL, "PEM private key of api-tls-cert"),
    OPT("log-level", MGO_CFG_STR, log_level, 0, 16, "info",
        "error, warn, info or debug (reloaded on SIGHUP)"),
    OPT("log-format", MGO_CFG_STR, log_format, 0, 16, "text",
        "text or json (one JSON object per line); under systemd the journal's own fields "
        "(reloaded on SIGHUP)"),
    OPT("ca-file", MGO_CFG_STR, ca_file, 0, 1024, NULL,
        "CA bundle to verify the broker (TLS; reloaded on SIGHUP)"),
    OPT("cert-file", MGO_CFG_STR, cert_file, 0, 1024, NULL,
        "client certificate (TLS; reloaded on SIGHUP)"),
    OPT("key-file", MGO_CFG_STR, key_file, 0, 1024, NULL,
        "client private key (TLS; reloaded on SIGHUP)"),
    OPT("username", MGO_CFG_STR, username, 0, 256, NULL, "MQTT user name"),
    OPT("password-file", MGO_CFG_STR, password_file, 0, 1024, NULL,
        "file holding the MQTT password"),
    OPT("signing-key", MGO_CFG_STR, signing_key_file, 0, 1024, NULL,
        "PEM EC P-256 private key; when set, every desired-state manifest and deployment "
        "document is signed (ES256, docs/security.md)"),
    OPT("session-expiry", MGO_CFG_INT, session_expiry_s, 0, 4294967295LL, "86400",
        "seconds the broker keeps the session (and queued messages) while disconnected"),
    OPT("keepalive", MGO_CFG_INT, keepalive_s, 5, 3600, "30", "MQTT keepalive seconds"),
    OPT("status-history", MGO_CFG_INT, status_history, 0, 1000000, "1000",
        "status reports kept per deployment in its history (older ones are deleted; 0 = keep "
        "every report)"),
    OPT("event-history", MGO_CFG_INT, event_history, 0, 1000000, "1000",
        "device events kept per device (older ones are deleted; 0 = keep every event)"),
    OPT("event-rate", MGO_CFG_INT, event_rate, 0, 1000000, "600",
        "device events stored per device a minute; the excess is dropped, counted "
        "(eventsDropped in GET /devices/ID) and logged (0 = no limit)"),
    OPT("status-rate", MGO_CFG_INT, status_rate, 0, 1000000, "600",
        "statuses per device a minute past which they are counted (statusesOverRate) and "
        "logged; they are stored all the same (0 = no counting)"),
    OPT("catalog-dir", MGO_CFG_STR, catalog_dir, 0, 1024, NULL,
        "folder that POST /apps {\"path\": ...} may read application files from (relative "
        "paths below it only); unset: the path form is refused"),
    OPT("role-names", MGO_CFG_STR, role_names, 0, 4096, NULL,
        "comma-separated certificate names of non-device identities (monitors, the manager) "
        "that do not start with margo-; never accepted as device ids"),
    OPT("api-max-connections", MGO_CFG_INT, api_max_connections, 32, 60000, "512",
        "open HTTP connections at most (each costs a descriptor and up to 32 KiB, no thread)"),
    OPT("api-max-event-streams", MGO_CFG_INT, api_max_event_streams, 1, 60000, "128",
        "open event streams (GET /api/v1/events) at most; more are refused with 503; at least "
        "16 connections are always left to other requests"),
    OPT("api-max-connections-per-address", MGO_CFG_INT, api_max_per_address, 1, 60000, "64",
        "open HTTP connections per client address at most (past it a connection is closed "
        "unanswered); raise it behind a reverse proxy, where all clients share one address"),
    OPT("api-request-timeout", MGO_CFG_INT, api_request_timeout_s, 1, 3600, "30",
        "seconds a client has to send a whole request (headers and body), also the most a "
        "kept-alive connection waits for its next one; however slowly bytes trickle in"),
    OPT("api-idle-timeout", MGO_CFG_INT, api_idle_timeout_s, 1, 86400, "120",
        "seconds without a byte either way before a connection is closed"),
    OPT("manifest-expiry", MGO_CFG_INT, manifest_expiry_s, 10, 31536000, "604800",
        "seconds a published manifest stays valid (signed expiresAt); every manifest is "
        "re-issued at half of it, so a device that stops receiving them notices (protocol.md "
        "§3.2)"),
    OPT("fleet-sample-interval", MGO_CFG_INT, fleet_sample_interval_s, 1, 86400, "60",
        "seconds between two samples of the devices online and offline (the web UI's fleet "
        "overview, GET /api/v1/overview)"),
    OPT("fleet-samples", MGO_CFG_INT, fleet_samples, 1, 100000, "10080",
        "samples of the devices online kept (older ones are deleted; 10080 = 7 days at one a "
        "minute)"),
    OPT("margo-api-listen", MGO_CFG_STR, margo_api_listen, 0, 128, NULL,
        "address:port of the southbound Margo HTTP API for standard Margo devices "
        "(docs/margo-http.md; mutual TLS); unset: not served"),
    OPT("margo-api-cert", MGO_CFG_STR, margo_api_cert, 0, 1024, NULL,
        "PEM certificate (the WFM's X.509-SVID) of margo-api-listen"),
    OPT("margo-api-key", MGO_CFG_STR, margo_api_key, 0, 1024, NULL,
        "PEM private key of margo-api-cert"),
    OPT("margo-api-client-ca", MGO_CFG_STR, margo_api_client_ca, 0, 1024, NULL,
        "PEM trust anchors that client X.509-SVIDs must chain to; also served as the trust "
        "bundle (/.well-known/spiffe/bundle.json)"),
    OPT("trust-domain", MGO_CFG_STR, trust_domain, 0, 255, NULL,
        "SPIFFE trust domain of client SVIDs (spiffe://TRUST-DOMAIN/margo/wfm/WFM-ID/client/ID)"),
    OPT("wfm-id", MGO_CFG_STR, wfm_id, 0, 255, NULL,
        "this WFM's id in client SVIDs (spiffe://TRUST-DOMAIN/margo/wfm/WFM-ID/client/ID)"),
    OPT("margo-api-rate", MGO_CFG_INT, margo_api_rate, 1, 1000000, "600",
        "requests per client a minute on the southbound Margo API; past it 429 with "
        "Retry-After"),
    OPT("share-group", MGO_CFG_STR, share_group, 0, 64, NULL,
        "several managers on one database (docs/scaling.md): device messages are taken through "
        "the MQTT shared subscription $share/NAME/... (1-64 of [A-Za-z0-9._-]), a clean session "
        "is used, and the manager that holds the publisher lease publishes; unset: one manager"),
};
const size_t mgo_manager_options_len = sizeof mgo_manager_options / sizeof mgo_manager_options[0];

/* ---- small helpers --------------------------------------------------------------------- */

static mgo_err load_token(struct mgo_manager *m)
{
    char path[2048];
    const char *file = m->cfg->api_token_file;
    if (file == NULL || file[0] == '\0') {
        snprintf(path, sizeof path, "%s/api-token", m->cfg->state_dir);
        file = path;
        if (access(file, F_OK) != 0) {
            uint8_t raw[32];
            if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
                return MGO_ERR_IO;
            char hex[65];
            for (size_t i = 0; i < sizeof raw; i++)
                snprintf(hex + 2 * i, 3, "%02x", raw[i]);
            int fd = open(file, O_WRONLY | O_CREAT | O_EXCL, 0600);
            if (fd < 0) {
                MGO_LOGE(TAG, "api-token-file: cannot create %s: %s", file, strerror(errno));
                return MGO_ERR_IO;
            }
            bool ok = write(fd, hex, 64) == 64 && write(fd, "\n", 1) == 1;
            close(fd);
            if (!ok)
                return MGO_ERR_IO;
            MGO_LOGI(TAG, "generated an API token in %s", file);
        }
    }
    mgo_err err = mgo_secret_read(file, m->token, sizeof m->token, &m->token_len);
    if (err) {
        MGO_LOGE(TAG, "api-token-file: cannot read %s: %s", file, mgo_strerror(err));
        return err;
    }
    if (m->token_len < 16) {
        MGO_LOGE(TAG, "api-token-file: %s holds %zu characters; at least 16 are required", file,
                 m->token_len);
        return MGO_ERR_INVALID;
    }
    return MGO_OK;
}

/* Role identities are never device ids (protocol.md §2.3): every name starting with
 * margo- (the store's rule), the manager's own client id and user name, and role-names. */
static mgo_err add_roles(struct mgo_manager *m)
{
    const char *own[] = {m->cfg->client_id, m->cfg->username};
    for (size_t i = 0; i < sizeof own / sizeof own[0]; i++) {
        /* a client id that is no device-id-shaped name cannot collide with one */
        mgo_err err = own[i] && own[i][0] ? mgo_mgr_store_add_role(m->store, own[i]) : MGO_OK;
        if (err == MGO_ERR_LIMIT)
            return err;
    }
    const char *list = m->cfg->role_names ? m->cfg->role_names : "";
    while (*list) {
        size_t n = strcspn(list, ", ");
        if (n > 0) {
            char name[MGO_MAX_DEVICE_ID_LEN + 2];
            snprintf(name, sizeof name, "%.*s", (int)(n < sizeof name - 1 ? n : sizeof name - 1),
                     list);
            mgo_err err = n > MGO_MAX_DEVICE_ID_LEN ? MGO_ERR_INVALID
                                                    : mgo_mgr_store_add_role(m->store, name);
            if (err) {
                MGO_LOGE(TAG,
                         "role-names: \"%.64s\": %s (at most %u names of 1-%u "
                         "characters of [A-Za-z0-9._~-])",
                         name, mgo_strerror(err), MGO_MGR_MAX_ROLES, MGO_MAX_DEVICE_ID_LEN);
                return MGO_ERR_INVALID;
            }
        }
        list += n;
        list += strspn(list, ", ");
    }
    return MGO_OK;
}

/* ---- MQTT events ----------------------------------------------------------------------- */

/* With share-group every filter is $share/NAME/FILTER: the broker hands each device message
 * to one manager of the group (MQTT 5 shared subscriptions). */
static void subscribe_all(struct mgo_manager *m)
{
    static const enum mgo_topic_kind kinds[] = {MGO_TOPIC_STATUS, MGO_TOPIC_REPLAY,
                                                MGO_TOPIC_CAPABILITIES, MGO_TOPIC_STATE,
                                                MGO_TOPIC_EVENTS};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char filter[MGO_MAX_TOPIC_LEN + 1];
        char shared[MGO_MAX_TOPIC_LEN + 80];
        if (mgo_topic_filter(m->cfg->topic_prefix, kinds[i], NULL, filter, sizeof filter) != MGO_OK)
            continue;
        const char *f = filter;
        if (m->shared) {
            snprintf(shared, sizeof shared, "$share/%s/%s", m->cfg->share_group, filter);
            f = shared;
        }
        mgo_err err = mgo_mqtt_subscribe(m->mqtt, f, mgo_topic_qos(kinds[i]), NULL);
        if (err)
            MGO_LOGE(TAG, "subscribe %s: %s", f, mgo_strerror(err));
    }
}

/* Every device's receipts get a new epoch (stored), and are published when connected (and
 * publish): each agent replays the statuses no receipt covers yet (protocol.md §6.3 [ACK-4]). */
static void new_epoch(struct mgo_manager *m, const char *why, bool publish)
{
    char epoch[MGO_MGR_EPOCH_SIZE];
    mgo_ingest__new_epoch(epoch);
    mgo_mgr_store_set_epoch(m->store, epoch);
    mgo_err err = mgo_mgr_store_receipts_reset(m->store);
    if (err) {
        /* e.g. a deadlock with another manager's ingest (every device row is changed): the
         * lease timer tries again until it is stored */
        MGO_LOGW(TAG, "%s: the new receipt epoch is not stored (%s); trying again in %d ms", why,
                 mgo_strerror(err), MGO_LEASE_RENEW_MS);
        m->epoch_due = true;
        return;
    }
    m->epoch_due = false;
    MGO_LOGI(TAG, "%s: receipt epoch %s; agents replay what is not receipted", why, epoch);
    if (publish && m->mqtt_outbox.connected)
        MGO_IGNORE(mgo_publish__receipts(&m->pub)); /* logged by publish.c */
}

static void try_connect(void *ctx);

static void schedule_reconnect(struct mgo_manager *m)
{
    m->mqtt_outbox.connected = false;
    mgo_publish__connection_lost(&m->pub);
    mgo_loop_timer_cancel(m->loop, m->sweep_timer);
    m->sweep_timer = 0;
    mgo_loop_timer_cancel(m->loop, m->connect_timer);
    uint32_t delay = mgo_backoff_next_ms(&m->backoff);
    if (mgo_loop_timer_add(m->loop, delay, try_connect, m, &m->connect_timer) != MGO_OK) {
        MGO_LOGE(TAG, "out of memory: cannot schedule a reconnect; stopping");
        mgo_loop_stop(m->loop);
        return;
    }
    MGO_LOGI(TAG, "reconnecting to %s in %u ms", m->cfg->broker_url, delay);
    mgo_sd_status("serving the API on port %u; not connected to %s, reconnecting",
                  (unsigned)mgo_http__port(m->http), m->cfg->broker_url);
}

/* Timer: starts a connect; its outcome arrives as an MQTT event. */
static void try_connect(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->connect_timer = 0;
    mgo_err err = mgo_mqtt_connect(m->mqtt);
    if (err) {
        MGO_LOGW(TAG, "connect to %s: %s", m->cfg->broker_url, mgo_strerror(err));
        schedule_reconnect(m);
    }
}

static void sweep(struct mgo_manager *m, bool session_present);
static void publish_kick(struct mgo_manager *m);

static void retry_sweep(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->sweep_timer = 0;
    if (m->mqtt_outbox.connected)
        sweep(m, true); /* unacknowledged manifests and pending removals */
}

static void sweep(struct mgo_manager *m, bool session_present)
{
    mgo_err err = mgo_publish__sweep(&m->pub, session_present);
    if (err == MGO_OK || m->sweep_timer != 0)
        return;
    MGO_LOGW(TAG, "after-connect publishing incomplete (%s); trying again in %d ms",
             mgo_strerror(err), SWEEP_RETRY_MS);
    if (mgo_loop_timer_add(m->loop, SWEEP_RETRY_MS, retry_sweep, m, &m->sweep_timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: the sweep is left to the next connect");
}

/* Timer: retries held device messages while the store refuses them. Once the store takes
 * them again the backlog goes in slices of MGO_INGEST_BATCH_MAX with 0 ms timers between
 * (the loop stays responsive); while it still refuses, every HELD_RETRY_MS. */
static void retry_held(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->held_timer = 0;
    size_t before = mgo_ingest__held(&m->ingest);
    size_t left = mgo_ingest__retry_held(&m->ingest, MGO_INGEST_BATCH_MAX);
    if (left == 0)
        return;
    int64_t delay = before - left == MGO_INGEST_BATCH_MAX ? 0 : HELD_RETRY_MS;
    if (mgo_loop_timer_add(m->loop, delay, retry_held, m, &m->held_timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: held messages are retried with the next message");
}

/* Arms the held-message retry when messages are held and it is not armed. */
static void watch_held(struct mgo_manager *m)
{
    if (m->held_timer != 0 || mgo_ingest__held(&m->ingest) == 0)
        return;
    if (mgo_loop_timer_add(m->loop, HELD_RETRY_MS, retry_held, m, &m->held_timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: held messages are retried with the next message");
}

static void on_mqtt_event(struct mgo_manager *m, struct mgo_mqtt_event *ev)
{
    switch (ev->kind) {
    case MGO_MQTT_EV_CONNECTED:
        MGO_LOGI(TAG, "connected to %s (session %s)", m->cfg->broker_url,
                 ev->session_present ? "resumed" : "new");
        mgo_sd_status("serving the API on port %u; connected to %s",
                      (unsigned)mgo_http__port(m->http), m->cfg->broker_url);
        m->mqtt_outbox.connected = true;
        bool reconnect = m->was_connected;
        if (reconnect)
            mgo_counter_inc(&m->metrics.mqtt_reconnects);
        m->was_connected = true;
        mgo_backoff_reset(&m->backoff);
        subscribe_all(m); /* also when resumed: cheap, and the filters may have changed */
        /* share-group: the session was clean, so device messages the broker had handed to the
         * last connection and this run never stored are gone: a new epoch asks every agent to
         * replay what is not receipted (as a new run does; protocol.md §6.3) */
        if (m->shared && !ev->session_present && reconnect)
            new_epoch(m, "a new MQTT session", false); /* published below */
        /* before any status of this connection is stored (protocol.md §6.3) */
        MGO_IGNORE(mgo_publish__receipts(&m->pub));
        sweep(m, ev->session_present);
        if (!ev->session_present)
            mgo_rollup__forget(&m->rollup); /* the broker may have lost the retained roll-ups */
        publish_kick(m);
        break;
    case MGO_MQTT_EV_CONNECT_FAILED:
        MGO_LOGW(TAG, "connect to %s failed (reason %d)", m->cfg->broker_url, ev->reason);
        schedule_reconnect(m);
        break;
    case MGO_MQTT_EV_DISCONNECTED:
        MGO_LOGW(TAG, "connection to %s lost", m->cfg->broker_url);
        schedule_reconnect(m);
        break;
    case MGO_MQTT_EV_MESSAGE:
        /* ownership of topic and payload moves to ingest */
        mgo_ingest__message(&m->ingest, ev->topic, ev->payload, ev->payload_len);
        ev->topic = NULL;
        ev->payload = NULL;
        break;
    case MGO_MQTT_EV_PUBLISHED:
        mgo_publish__acked(&m->pub, ev->token);
        break;
    case MGO_MQTT_EV_PUBLISH_FAILED:
        MGO_LOGW(TAG, "a publish was not acknowledged (token %d); resent on reconnect", ev->token);
        mgo_publish__failed(&m->pub, ev->token);
        break;
    case MGO_MQTT_EV_SUBSCRIBED:
        break;
    case MGO_MQTT_EV_SUBSCRIBE_FAILED:
        MGO_LOGE(TAG, "a subscription was refused by the broker (token %d)", ev->token);
        break;
    }
}

static void drain_mqtt(struct mgo_manager *m);

/* After a drain that committed something, the next one waits this long at least
 * (on_mqtt_ready): commits batch what arrived meanwhile instead of a few messages each. */
#define DRAIN_PACE_MS 5

/* Commits the open ingest batch; a committed one is measured from its first arrival. */
static void commit_batch(struct mgo_manager *m)
{
    if (mgo_ingest__commit(&m->ingest) == MGO_OK) /* else logged; the batch is held */
        mgo_histogram_observe_ns(&m->metrics.ingest_batch,
                                 mgo_metrics_now_ns() - m->batch_first_ns);
}

/* This manager does the publisher's work now: it holds the lease (or runs alone), and the
 * lease has not run out by the local clock (lease_tick and publish_tick then step down). */
static bool is_publisher(const struct mgo_manager *m)
{
    return m->pub.active &&
           (m->pub.active_until_ns == 0 || mgo_metrics_now_ns() < m->pub.active_until_ns);
}

/* Loop thread, for /metrics and /readyz. */
static void report_depths(void *ctx, struct mgo_mgr_depths *out)
{
    struct mgo_manager *m = ctx;
    out->held = mgo_ingest__held(&m->ingest);
    mgo_mqtt_depths(m->mqtt, &out->mqtt_received, &out->mqtt_outgoing);
    out->mqtt_connected = m->mqtt_outbox.connected;
    out->publisher = is_publisher(m);
}

static void continue_drain(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->drain_scheduled = false;
    drain_mqtt(m);
}

/* Takes the MQTT client's queued events. A run of messages is ingested in one store
 * transaction, so a burst of statuses costs one WAL sync instead of one each (the
 * per-message commit capped ingest rates, docs/benchmarks.md); each message still has its
 * own savepoint inside, and a failed commit keeps the whole batch (ingest.h). Publish
 * outcomes do not end the run (they only move the publisher's in-flight list; the
 * acknowledged manifests are recorded together, in their own transaction, when the drain
 * ends or before the next other event). Any other event (connect, connection lost) ends the
 * run and is handled after the commit, in order. After
 * MGO_INGEST_BATCH_MAX events the drain yields to the loop (HTTP requests, timers) and comes
 * back through a 0 ms timer: the descriptor is not readable again until the queue has been
 * emptied once (mgo_mqtt_fd). */
static void drain_mqtt(struct mgo_manager *m)
{
    bool batch = false;
    size_t n = 0;
    for (;; n++) {
        if (n == MGO_INGEST_BATCH_MAX) {
            if (!m->drain_scheduled &&
                mgo_loop_timer_add(m->loop, 0, continue_drain, m, NULL) == MGO_OK)
                m->drain_scheduled = true;
            break; /* without a timer (out of memory) the next readiness comes back here */
        }
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m->mqtt, 0, &ev) != MGO_OK)
            break; /* empty: the readiness is consumed */
        /* a publish outcome touches no ingest state: the run goes on past it */
        bool outcome = ev.kind == MGO_MQTT_EV_PUBLISHED || ev.kind == MGO_MQTT_EV_PUBLISH_FAILED;
        if (ev.kind == MGO_MQTT_EV_MESSAGE && !batch) {
            mgo_ingest__begin(&m->ingest);
            batch = true;
            m->batch_first_ns = ev.arrived_ns;
        } else if (ev.kind != MGO_MQTT_EV_MESSAGE && !outcome) {
            if (batch)
                commit_batch(m); /* logged; the batch is held */
            batch = false;
            mgo_publish__record_acked(&m->pub); /* before a connect or a loss, in order */
        }
        on_mqtt_event(m, &ev);
        mgo_mqtt_event_cleanup(&ev);
    }
    if (batch)
        commit_batch(m); /* logged; the batch is held */
    /* the drain's acknowledgements in one transaction (one commit instead of one each) */
    bool acks = m->pub.acked_len > 0;
    mgo_publish__record_acked(&m->pub);
    if (batch || acks)
        m->last_commit_ns = mgo_metrics_now_ns(); /* paces the next drain (on_mqtt_ready) */
    if (acks && mgo_publish__waiting(&m->pub))
        publish_kick(m); /* the acknowledgements made room in the publish window */
    watch_held(m);
}

static void http_tick(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->http_timer = 0;
    mgo_http__tick(m->http);
    mgo_http__tick(m->sb_http);
    if (mgo_loop_timer_add(m->loop, MGO_HTTP_TICK_MS, http_tick, m, &m->http_timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: the API's request deadline and keepalives stop");
}

static uint64_t expiry_s(const struct mgo_manager *m)
{
    return m->cfg->manifest_expiry_s > 0 ? (uint64_t)m->cfg->manifest_expiry_s
                                         : MGO_PUBLISH_DEFAULT_EXPIRY_S;
}

/* Timer (monotonic), every half of manifest-expiry: every device's manifest is re-issued,
 * so none expires while the manager runs (protocol.md §3.2). */
static void refresh_manifests(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->refresh_timer = 0;
    /* a pass of polls, while connected and the publisher (whoever becomes the publisher
     * starts one of its own) */
    mgo_publish__refresh(&m->pub);
    publish_kick(m);
    int64_t period_ms = (int64_t)(expiry_s(m) * 1000u / 2u);
    if (mgo_loop_timer_add(m->loop, period_ms, refresh_manifests, m, &m->refresh_timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: manifests are re-issued only after a reconnect");
}

/* Timer (monotonic), every fleet-sample-interval: devices online and offline into the store
 * for the fleet overview (one small transaction; the store keeps fleet-samples of them). */
static void sample_fleet(void *ctx)
{
    struct mgo_manager *m = ctx;
    int64_t every_s = m->cfg->fleet_sample_interval_s > 0 ? m->cfg->fleet_sample_interval_s : 60;
    /* one series for the fleet: the publisher samples it */
    mgo_err err =
        is_publisher(m) ? mgo_mgr_store_sample_add(m->store, mgo_mgr_store_now_ms(), NULL) : MGO_OK;
    if (err)
        MGO_LOGW(TAG, "fleet overview: sample not stored: %s", mgo_strerror(err));
    if (mgo_loop_timer_add(m->loop, every_s * 1000, sample_fleet, m, &m->sample_timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: the fleet overview is no longer sampled");
}

/* Timer: the rollout engine moves every active rollout on (rollout.h), then runs again when
 * it asks (at once while changes are waiting, else every MGO_ROLLOUT_TICK_MS). */
static void rollout_tick(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->rollout_timer = 0;
    m->rollout_kicked = false;
    int64_t again = MGO_ROLLOUT_TICK_MS;
    if (is_publisher(m)) /* the engine runs on the publisher only */
        MGO_IGNORE(mgo_rollout__tick(m->store, &m->pub, &again)); /* logged; tried again */
    if (mgo_loop_timer_add(m->loop, again, rollout_tick, m, &m->rollout_timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: rollouts stop moving on");
}

/* Timer: the fleet roll-ups that changed go out (at most once a period per topic). The app
 * roll-ups read every deployment of the fleet, so a round costs in proportion to its size:
 * the next round waits MGO_ROLLUP_COST_FACTOR times as long as this one took when that is
 * more than the period (rollup.h), which keeps them to a bounded share of the loop. */
static void rollup_tick(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->rollup_timer = 0;
    uint64_t t0 = mgo_metrics_now_ns();
    if (is_publisher(m))                             /* the publisher's */
        MGO_IGNORE(mgo_rollup__publish(&m->rollup)); /* logged; again next period */
    int64_t next = mgo_rollup__next_ms((mgo_metrics_now_ns() - t0) / 1000000u);
    if (mgo_loop_timer_add(m->loop, next, rollup_tick, m, &m->rollup_timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: the fleet roll-ups stop");
}

/* A periodic timer (*timer, 0 while its callback runs) brought forward to fire in ms, once
 * until it fires (*kicked); without memory the timer is gone and `lost` says what stops. */
static void bring_forward(struct mgo_manager *m, uint64_t *timer, bool *kicked, int64_t ms,
                          mgo_loop_fn fn, const char *lost)
{
    if (*kicked || *timer == 0)
        return;
    mgo_loop_timer_cancel(m->loop, *timer);
    *timer = 0;
    if (mgo_loop_timer_add(m->loop, ms, fn, m, timer) == MGO_OK)
        *kicked = true;
    else
        MGO_LOGE(TAG, "out of memory: %s", lost);
}

/* Ingest committed a status change: the next rollout tick comes within ROLLOUT_KICK_MS (one
 * tick for a burst of statuses). */
#define ROLLOUT_KICK_MS 200
static void rollout_kick(void *ctx)
{
    struct mgo_manager *m = ctx;
    bring_forward(m, &m->rollout_timer, &m->rollout_kicked, ROLLOUT_KICK_MS, rollout_tick,
                  "rollouts stop moving on");
}

/* ---- several managers: the publisher lease (docs/scaling.md "Several managers") ------- */

static void become_publisher(struct mgo_manager *m)
{
    m->pub.active = true;
    m->pub.active_until_ns = m->lease.until_ns;
    MGO_LOGI(TAG,
             "publisher lease taken (term %llu): publishing desired state and running the "
             "sweeps, rollouts and roll-ups",
             (unsigned long long)m->lease.term);
    /* what the last holder left: unacknowledged manifests and removals; the manifests'
     * validity (its refresh timer is unknown here); the roll-ups it published */
    mgo_rollup__forget(&m->rollup);
    if (m->mqtt_outbox.connected)
        sweep(m, true);
    mgo_publish__refresh(&m->pub);
    publish_kick(m);
    rollout_kick(m);
}

static void step_down(struct mgo_manager *m, const char *why)
{
    if (!m->pub.active)
        return;
    m->pub.active = false;
    m->pub.active_until_ns = 0;
    MGO_LOGW(TAG, "publisher lease lost (%s): publishing stops; the API is still served", why);
}

static mgo_err reaped(const char *holder, void *ctx)
{
    struct mgo_manager *m = ctx;
    /* the device messages that manager had taken and not stored are gone with it */
    char why[MGO_MGR_LEASE_NAME_MAX + 64];
    snprintf(why, sizeof why, "manager %s stopped renewing its lease", holder);
    new_epoch(m, why, true);
    return MGO_OK;
}

/* Timer, every MGO_LEASE_RENEW_MS: renews the leases (lease.h); the publisher's work starts
 * when the publisher lease is taken and stops when it is lost. */
static void lease_tick(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->lease_timer = 0;
    if (m->epoch_due)
        new_epoch(m, "again", true);
    const char *why = "";
    switch (mgo_lease__renew(&m->lease, &why)) {
    case MGO_LEASE_TAKEN:
        step_down(m, "it changed hands meanwhile"); /* when it was still counted as held */
        become_publisher(m);
        break;
    case MGO_LEASE_LOST:
        step_down(m, why);
        break;
    case MGO_LEASE_SAME:
        if (m->pub.active)
            m->pub.active_until_ns = m->lease.until_ns;
        break;
    }
    if (m->pub.active && mgo_lease__reap(&m->lease, reaped, m) != MGO_OK)
        MGO_LOGW(TAG, "expired manager leases not checked; again in %d ms", MGO_LEASE_RENEW_MS);
    if (mgo_loop_timer_add(m->loop, MGO_LEASE_RENEW_MS, lease_tick, m, &m->lease_timer) != MGO_OK) {
        MGO_LOGE(TAG, "out of memory: the publisher lease cannot be renewed; stopping");
        mgo_loop_stop(m->loop);
    }
}

/* Timer, every PUBLISH_POLL_MS (0 ms while a step leaves more): a step of the publisher's
 * background work (mgo_publish__poll: passes, manifests left for room, stored by another
 * manager, or not acknowledged); removals are cleared every REMOVALS_EVERY polls. Also ends
 * publishing at the lease's local deadline. */
static void publish_tick(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->publish_timer = 0;
    m->publish_kicked = false;
    if (m->pub.active && m->pub.active_until_ns != 0 &&
        mgo_metrics_now_ns() >= m->pub.active_until_ns)
        step_down(m, "not renewed in time");
    bool more = false;
    if (is_publisher(m) && m->mqtt_outbox.connected) {
        MGO_IGNORE(mgo_publish__poll(&m->pub, PUBLISH_STEP_MAX, &more)); /* logged; next poll */
        if (m->shared && ++m->publish_n % REMOVALS_EVERY == 0)
            MGO_IGNORE(mgo_publish__clear_pending_removals(&m->pub)); /* next time */
    }
    if (mgo_loop_timer_add(m->loop, more ? 0 : PUBLISH_POLL_MS, publish_tick, m,
                           &m->publish_timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: stored desired state is published only after a reconnect");
    else
        m->publish_kicked = more;
}

/* The next publish step at once (after acknowledgements made room, a connect, a new
 * lease), when it is not already due at once. */
static void publish_kick(struct mgo_manager *m)
{
    bring_forward(m, &m->publish_timer, &m->publish_kicked, 0, publish_tick,
                  "stored desired state is published only after a reconnect");
}

static void on_mqtt_ready(void *ctx, int fd, short revents);

/* Timer: the paced drain is due (on_mqtt_ready). */
static void paced_drain(void *ctx)
{
    struct mgo_manager *m = ctx;
    m->drain_paced = false;
    if (mgo_loop_watch(m->loop, mgo_mqtt_fd(m->mqtt), POLLIN, on_mqtt_ready, m) != MGO_OK) {
        /* not expected (the unwatch freed the slot): the events are taken by timer instead */
        MGO_LOGE(TAG, "cannot watch the MQTT events again; taking them every %d ms", DRAIN_PACE_MS);
        if (mgo_loop_timer_add(m->loop, DRAIN_PACE_MS, paced_drain, m, NULL) == MGO_OK)
            m->drain_paced = true;
    }
    drain_mqtt(m);
}

/* The MQTT events are taken at most once per DRAIN_PACE_MS after a drain that committed
 * something: while statuses keep coming, each drain then takes what came in the meantime
 * as one batch (one commit, one WAL sync) instead of a commit per few messages. The
 * messages wait in the client's queue as they would behind a busy loop (Paho has
 * acknowledged them; their receipts follow their commit, docs/reliability.md). The
 * descriptor is unwatched meanwhile, since it stays readable until drained. */
static void on_mqtt_ready(void *ctx, int fd, short revents)
{
    (void)revents;
    struct mgo_manager *m = ctx;
    uint64_t now = mgo_metrics_now_ns();
    uint64_t pace_ns = (uint64_t)DRAIN_PACE_MS * 1000000u;
    if (m->last_commit_ns != 0 && now - m->last_commit_ns < pace_ns && !m->drain_paced) {
        int64_t wait_ms = (int64_t)((m->last_commit_ns + pace_ns - now + 999999u) / 1000000u);
        if (mgo_loop_timer_add(m->loop, wait_ms, paced_drain, m, NULL) == MGO_OK) {
            mgo_loop_unwatch(m->loop, fd);
            m->drain_paced = true;
            return;
        }
    }
    drain_mqtt(m);
}

/* ---- reload (SIGHUP) -------------------------------------------------------------------- */

/* Parses the arguments again into fresh (zeroed); logs every problem. */
static mgo_err reread(const struct mgo_manager *m, struct mgo_manager_config *fresh)
{
    struct mgo_problems problems;
    mgo_problems_init(&problems);
    bool help = false;
    mgo_err err = mgo_cfg_parse_args(mgo_manager_options, mgo_manager_options_len, fresh,
                                     m->reload_argc, m->reload_argv, &help, &problems);
    enum mgo_log_level lvl;
    enum mgo_log_format fmt;
    if (err == MGO_OK && mgo_log_level_parse(fresh->log_level ? fresh->log_level : "", &lvl))
        mgo_problems_add(&problems, "log-level", "must be error, warn, info or debug");
    if (err == MGO_OK && mgo_log_format_parse(fresh->log_format ? fresh->log_format : "", &fmt))
        mgo_problems_add(&problems, "log-format", "must be text or json");
    mgo_cfg_log_reload_problems(TAG, &problems);
    return mgo_problems_total(&problems) > 0 ? MGO_ERR_INVALID : err;
}

/* Loop thread (trigger): re-reads the configuration and applies what can change while the
 * manager runs (manager.h, mgo_manager_reload). */
static void reload(void *ctx)
{
    struct mgo_manager *m = ctx;
    mgo_sd_reloading();
    if (m->reload_argv == NULL) {
        MGO_LOGW(TAG, "reload: no arguments to re-read the configuration from; nothing changed");
        mgo_sd_ready("reload skipped: no configuration source");
        return;
    }
    MGO_LOGI(TAG, "reload: re-reading the configuration");
    struct mgo_manager_config fresh;
    memset(&fresh, 0, sizeof fresh);
    if (reread(m, &fresh) != MGO_OK) {
        mgo_cfg_cleanup(mgo_manager_options, mgo_manager_options_len, &fresh);
        MGO_LOGE(TAG, "reload: the configuration has errors; the running one is kept");
        mgo_sd_ready("reload failed (configuration errors, see the log); running unchanged");
        return;
    }
    enum mgo_log_level lvl = MGO_LOG_INFO;
    enum mgo_log_format fmt = MGO_LOG_TEXT;
    MGO_IGNORE(mgo_log_level_parse(fresh.log_level, &lvl));   /* checked by reread */
    MGO_IGNORE(mgo_log_format_parse(fresh.log_format, &fmt)); /* checked by reread */
    mgo_log_set_format(fmt);
    mgo_log_set_level(lvl);
    bool dropped = false;
    if (mgo_mqtt_reload_tls(m->mqtt, fresh.ca_file, fresh.cert_file, fresh.key_file, &dropped) !=
        MGO_OK)
        MGO_LOGE(TAG, "reload: out of memory; the MQTT TLS files are unchanged");
    mgo_cfg_report_restart(TAG, mgo_manager_options, mgo_manager_options_len, &fresh,
                           m->seen_valid ? &m->seen : m->cfg);
    if (fresh.api_tls_cert != NULL && fresh.api_tls_cert[0] != '\0')
        MGO_LOGI(TAG, "reload: HTTPS keeps the api-tls-cert and api-tls-key read at start; "
                      "restart to serve new ones");
    mgo_cfg_cleanup(mgo_manager_options, mgo_manager_options_len, &m->seen);
    m->seen = fresh; /* owned now */
    m->seen_valid = true;
    MGO_LOGI(TAG, "reload: done (log-level %s, log-format %s%s)", m->seen.log_level,
             m->seen.log_format, dropped ? ", reconnecting with the new TLS files" : "");
    mgo_sd_ready("reloaded; serving the API on port %u", (unsigned)mgo_http__port(m->http));
}

void mgo_manager_set_reload_args(struct mgo_manager *m, int argc, char **argv)
{
    m->reload_argc = argc;
    m->reload_argv = argv;
}

void mgo_manager_reload(struct mgo_manager *m)
{
    mgo_loop_trigger(m->loop, RELOAD_TRIGGER);
}

/* Timer (0 ms, queued right after the first connect attempt): the store is open, the API
 * listens, the MQTT client has started connecting and the loop turns. */
static void announce_ready(void *ctx)
{
    struct mgo_manager *m = ctx;
    mgo_sd_ready("serving the API on port %u; connecting to %s", (unsigned)mgo_http__port(m->http),
                 m->cfg->broker_url);
}

/* ---- lifecycle --------------------------------------------------------------------------- */

/* share-group: checks the name; this run's holder name is the client id and 16 random hex
 * digits (a restarted manager is a new holder). */
static mgo_err init_shared(struct mgo_manager *m)
{
    const char *g = m->cfg->share_group;
    m->shared = g != NULL && g[0] != '\0';
    if (!m->shared)
        return MGO_OK;
    size_t n = strspn(g, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._-");
    if (g[n] != '\0' || n > 64) {
        MGO_LOGE(TAG, "share-group: \"%.64s\" must be 1-64 of [A-Za-z0-9._-]", g);
        return MGO_ERR_INVALID;
    }
    mgo_err err = mgo_lease__init(&m->lease, m->store, m->cfg->client_id);
    if (err)
        return err;
    m->pub.active = false; /* until the publisher lease is taken (lease_tick) */
    MGO_LOGI(TAG, "share-group %s: device messages through $share/%s/...; instance %s", g, g,
             m->lease.instance);
    return MGO_OK;
}

/* The southbound Margo API (docs/margo-http.md), when margo-api-listen is set: its own
 * listener with the northbound one's bounds. */
static mgo_err start_southbound(struct mgo_manager *m, const struct mgo_http_config *north)
{
    const struct mgo_manager_config *cfg = m->cfg;
    if (!cfg->margo_api_listen || !cfg->margo_api_listen[0])
        return MGO_OK;
    static const char *const names[] = {"margo-api-cert", "margo-api-key", "margo-api-client-ca",
                                        "trust-domain", "wfm-id"};
    const char *values[] = {cfg->margo_api_cert, cfg->margo_api_key, cfg->margo_api_client_ca,
                            cfg->trust_domain, cfg->wfm_id};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (!values[i] || !values[i][0]) {
            MGO_LOGE(TAG, "%s: required with margo-api-listen", names[i]);
            return MGO_ERR_INVALID;
        }
    }
    if (!mgo_sb_segment_ok(cfg->trust_domain, MGO_SB_MAX_SEGMENT) ||
        !mgo_sb_segment_ok(cfg->wfm_id, MGO_SB_MAX_SEGMENT)) {
        MGO_LOGE(TAG, "trust-domain and wfm-id: 1..%u of [A-Za-z0-9._~-], not \".\" or \"..\"",
                 MGO_SB_MAX_SEGMENT);
        return MGO_ERR_INVALID;
    }
    struct mgo_southbound_config sc = {
        .store = m->store,
        .ingest = &m->ingest,
        .pub = &m->pub,
        .hub = m->hub,
        .trust_domain = cfg->trust_domain,
        .client_ca = cfg->margo_api_client_ca,
        .rate_per_minute = (uint32_t)cfg->margo_api_rate,
    };
    mgo_err err = mgo_southbound__new(&sc, &m->sb);
    if (err)
        return err;
    struct mgo_http_southbound hs = {
        .client_ca = cfg->margo_api_client_ca,
        .trust_domain = cfg->trust_domain,
        .wfm_id = cfg->wfm_id,
        .sb = m->sb,
    };
    struct mgo_http_config hc = *north;
    hc.listen = cfg->margo_api_listen;
    hc.tls_cert = cfg->margo_api_cert;
    hc.tls_key = cfg->margo_api_key;
    hc.token = NULL;
    hc.token_len = 0;
    hc.api = NULL;
    hc.hub = NULL;
    hc.southbound = &hs;
    return mgo_http__start(&hc, &m->sb_http);
}

uint16_t mgo_manager_margo_api_port(const struct mgo_manager *m)
{
    return m->sb_http ? mgo_http__port(m->sb_http) : 0;
}

mgo_err mgo_manager_new(const struct mgo_manager_config *cfg, struct mgo_manager **out)
{
    mgo_err err = MGO_OK;
    if (cfg->log_level && cfg->log_level[0]) {
        enum mgo_log_level lvl;
        if (mgo_log_level_parse(cfg->log_level, &lvl) != MGO_OK) {
            MGO_LOGE(TAG, "log-level: must be error, warn, info or debug");
            return MGO_ERR_INVALID;
        }
        mgo_log_set_level(lvl);
    }
    if (cfg->log_format && cfg->log_format[0]) {
        enum mgo_log_format fmt;
        if (mgo_log_format_parse(cfg->log_format, &fmt) != MGO_OK) {
            MGO_LOGE(TAG, "log-format: must be text or json");
            return MGO_ERR_INVALID;
        }
        mgo_log_set_format(fmt);
    }
    if (mgo_topic_check_prefix(cfg->topic_prefix) != MGO_OK) {
        MGO_LOGE(TAG, "topic-prefix: \"%s\" is not a valid topic prefix", cfg->topic_prefix);
        return MGO_ERR_INVALID;
    }
    if (cfg->state_dir == NULL || cfg->state_dir[0] == '\0') {
        MGO_LOGE(TAG, "state-dir: required");
        return MGO_ERR_INVALID;
    }
    if (cfg->store != NULL && cfg->store[0] != '\0' && !mgo_mgr_store_is_url(cfg->store)) {
        MGO_LOGE(TAG, "store: must be a PostgreSQL URL starting with postgresql:// or "
                      "postgres:// (unset: SQLite in state-dir)");
        return MGO_ERR_INVALID;
    }
    if (mkdir(cfg->state_dir, 0700) != 0 && errno != EEXIST) {
        MGO_LOGE(TAG, "state-dir: cannot create %s: %s", cfg->state_dir, strerror(errno));
        return MGO_ERR_IO;
    }
    struct mgo_manager *m = calloc(1, sizeof *m);
    if (!m)
        return MGO_ERR_NOMEM;
    m->cfg = cfg;
    mgo_mgr_metrics_init(&m->metrics);
    err = mgo_loop_new(&m->loop);
    if (err) {
        free(m);
        return err;
    }
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed || seed == 0)
        seed = (uint64_t)mgo_mgr_store_now_ms() | 1u;
    mgo_backoff_init(&m->backoff, BACKOFF_BASE_MS, BACKOFF_MAX_MS, seed);

    bool pg = cfg->store != NULL && cfg->store[0] != '\0';
    err = mgo_mgr_store_open(pg ? cfg->store : cfg->state_dir, &m->store);
    if (err) {
        if (pg) /* the URL is not logged: it may hold a password */
            MGO_LOGE(TAG, "store: cannot open the PostgreSQL store: %s", mgo_strerror(err));
        else
            MGO_LOGE(TAG, "state-dir: cannot open the store in %s: %s", cfg->state_dir,
                     mgo_strerror(err));
        goto fail;
    }
    mgo_mgr_store_set_history_limit(m->store, (uint32_t)cfg->status_history);
    mgo_mgr_store_set_event_limit(m->store, (uint32_t)cfg->event_history);
    if (cfg->fleet_samples > 0)
        mgo_mgr_store_set_sample_limit(m->store, (uint32_t)cfg->fleet_samples);
    err = add_roles(m);
    if (err)
        goto fail;
    /* a new run: every receipt asks the agents to replay what this run has not stored
     * (a status the last run took from the broker but never committed; protocol.md §6.3) */
    char epoch[MGO_MGR_EPOCH_SIZE];
    mgo_ingest__new_epoch(epoch);
    mgo_mgr_store_set_epoch(m->store, epoch);
    /* every device row at once: with several managers on PostgreSQL this can deadlock with
     * another manager's ingest batch (which locks device rows in arrival order); the database
     * aborts one of the two, and the loser tries again (the batch is held and retried) */
    for (int attempt = 1;; attempt++) {
        err = mgo_mgr_store_receipts_reset(m->store);
        if (err == MGO_OK || attempt == EPOCH_ATTEMPTS)
            break;
        struct timespec pause = {0, 100000000L * attempt};
        nanosleep(&pause, NULL); /* before the loop runs: nothing else waits */
    }
    if (err) {
        MGO_LOGE(TAG, "state-dir: cannot start receipts in the store: %s", mgo_strerror(err));
        goto fail;
    }
    MGO_LOGI(TAG, "receipt epoch %s", epoch);
    err = load_token(m);
    if (err)
        goto fail;
    if (cfg->metrics_token_file && cfg->metrics_token_file[0]) {
        err = mgo_secret_read(cfg->metrics_token_file, m->metrics_token, sizeof m->metrics_token,
                              &m->metrics_token_len);
        if (!err && m->metrics_token_len < 16)
            err = MGO_ERR_INVALID;
        if (err) {
            MGO_LOGE(TAG,
                     "metrics-token-file: cannot use %s: %s (a token of at least 16 "
                     "characters is required)",
                     cfg->metrics_token_file, mgo_strerror(err));
            goto fail;
        }
    }
    if (cfg->password_file && cfg->password_file[0]) {
        char pw[512];
        err = mgo_secret_read(cfg->password_file, pw, sizeof pw, NULL);
        if (err) {
            MGO_LOGE(TAG, "password-file: cannot read %s: %s", cfg->password_file,
                     mgo_strerror(err));
            goto fail;
        }
        m->password = strdup(pw);
        memset(pw, 0, sizeof pw);
        if (!m->password) {
            err = MGO_ERR_NOMEM;
            goto fail;
        }
    }
    if (cfg->signing_key_file && cfg->signing_key_file[0]) {
        err = mgo_sign_key_load(cfg->signing_key_file, &m->sign_key);
        if (err) {
            MGO_LOGE(TAG, "signing-key: cannot use %s: %s", cfg->signing_key_file,
                     mgo_strerror(err));
            goto fail;
        }
        MGO_LOGI(TAG, "signing manifests and deployments with key %s",
                 mgo_sign_key_id(m->sign_key));
    }
    err = init_shared(m);
    if (err)
        goto fail;
    struct mgo_mqtt_config mc = {
        .url = cfg->broker_url,
        .client_id = cfg->client_id,
        /* share-group: a stopped manager must not keep a share of the device messages in a
         * session of its own (the broker queues them for it); a clean session ends with the
         * connection, and new_epoch covers what it had taken */
        .clean_start = m->shared,
        .session_expiry_s = m->shared ? 0u : (uint32_t)cfg->session_expiry_s,
        .keepalive_s = (uint16_t)cfg->keepalive_s,
        .ca_file = cfg->ca_file,
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .username = cfg->username,
        .password = m->password,
        .max_inflight = MGR_MAX_INFLIGHT,
        .queue_warn = MGR_QUEUE_WARN,
    };
    err = mgo_mqtt_new(&mc, &m->mqtt);
    if (err) {
        MGO_LOGE(TAG, "broker-url: cannot create the MQTT client for %s: %s", cfg->broker_url,
                 mgo_strerror(err));
        goto fail;
    }
    err = mgo_sse__hub_new(&m->hub);
    if (err)
        goto fail;
    m->mqtt_outbox.mqtt = m->mqtt;
    mgo_outbox__mqtt_init(&m->outbox, &m->mqtt_outbox);
    mgo_publish__init(&m->pub, m->store, &m->outbox, cfg->topic_prefix, m->sign_key);
    mgo_publish__set_expiry(&m->pub, expiry_s(m));
    m->pub.active = !m->shared; /* shared: once the publisher lease is taken */
    mgo_ingest__init(&m->ingest, m->store, &m->pub, m->hub, cfg->topic_prefix);
    m->ingest.metrics = &m->metrics;
    if (m->shared && mgo_mgr_store_is_url(cfg->store ? cfg->store : "")) {
        err = mgo_livebus__new(m->loop, cfg->store, m->store, m->hub, &m->bus);
        if (err)
            goto fail;
        m->ingest.notify_live = true;
    }
    mgo_mgr_store_set_metrics(m->store, &m->metrics.store_write, &m->metrics.store_commit);
    m->probe = (struct mgo_mgr_probe){
        .metrics = &m->metrics, .store = m->store, .depths = report_depths, .ctx = m};
    m->ingest.event_rate = (uint32_t)cfg->event_rate;
    m->ingest.status_rate = (uint32_t)cfg->status_rate;
    mgo_rollup__init(&m->rollup, m->store, &m->outbox, cfg->topic_prefix);
    m->ingest.on_status = rollout_kick;
    m->ingest.on_status_ctx = m;
    m->api = (struct mgo_api){
        .store = m->store, .pub = &m->pub, .hub = m->hub, .catalog_dir = cfg->catalog_dir};
    struct mgo_http_config hc = {
        .listen = cfg->api_listen,
        .tls_cert = cfg->api_tls_cert,
        .tls_key = cfg->api_tls_key,
        .token = m->token,
        .token_len = m->token_len,
        .metrics_token = m->metrics_token,
        .metrics_token_len = m->metrics_token_len,
        .probe = &m->probe,
        .api = &m->api,
        .hub = m->hub,
        .loop = m->loop,
        .limits = {.max_connections = (unsigned)cfg->api_max_connections,
                   .max_streams = (unsigned)cfg->api_max_event_streams,
                   .max_per_address = (unsigned)cfg->api_max_per_address,
                   .request_timeout_s = (unsigned)cfg->api_request_timeout_s,
                   .idle_timeout_s = (unsigned)cfg->api_idle_timeout_s},
    };
    err = mgo_http__start(&hc, &m->http);
    if (!err)
        err = start_southbound(m, &hc);
    if (err)
        goto fail;
    *out = m;
    return MGO_OK;
fail:
    mgo_manager_free(m);
    return err;
}

uint16_t mgo_manager_api_port(const struct mgo_manager *m)
{
    return mgo_http__port(m->http);
}

void mgo_manager_stop(struct mgo_manager *m)
{
    mgo_loop_stop(m->loop);
}

mgo_err mgo_manager_run(struct mgo_manager *m)
{
    if (mgo_mgr_store_is_url(m->cfg->store ? m->cfg->store : ""))
        MGO_LOGI(TAG, "running: broker %s, prefix %s, store PostgreSQL", m->cfg->broker_url,
                 m->cfg->topic_prefix);
    else
        MGO_LOGI(TAG, "running: broker %s, prefix %s, store %s/%s", m->cfg->broker_url,
                 m->cfg->topic_prefix, m->cfg->state_dir, MGO_MGR_STORE_FILE);
    mgo_err err = mgo_loop_watch(m->loop, mgo_mqtt_fd(m->mqtt), POLLIN, on_mqtt_ready, m);
    if (err == MGO_OK && m->shared)
        lease_tick(m); /* takes the publisher lease at once when it is free */
    if (err == MGO_OK)
        err = mgo_loop_timer_add(m->loop, PUBLISH_POLL_MS, publish_tick, m, &m->publish_timer);
    if (err == MGO_OK)
        err = mgo_loop_timer_add(m->loop, 0, try_connect, m, &m->connect_timer);
    if (err == MGO_OK)
        err = mgo_loop_timer_add(m->loop, MGO_HTTP_TICK_MS, http_tick, m, &m->http_timer);
    if (err == MGO_OK)
        err = mgo_loop_timer_add(m->loop, 0, rollout_tick, m, &m->rollout_timer);
    if (err == MGO_OK)
        err = mgo_loop_timer_add(m->loop, MGO_ROLLUP_PERIOD_MS, rollup_tick, m, &m->rollup_timer);
    /* the last run's manifests may be half-way to expiry: re-issue them (once connected) */
    mgo_publish__refresh(&m->pub);
    if (err == MGO_OK)
        err = mgo_loop_timer_add(m->loop, (int64_t)(expiry_s(m) * 1000u / 2u), refresh_manifests, m,
                                 &m->refresh_timer);
    if (err == MGO_OK)
        err = mgo_loop_timer_add(m->loop, 0, sample_fleet, m, &m->sample_timer);
    if (err == MGO_OK)
        err = mgo_loop_timer_add(m->loop, 0, announce_ready, m, NULL);
    if (err == MGO_OK)
        err = mgo_loop_on_trigger(m->loop, RELOAD_TRIGGER, reload, m);
    if (err == MGO_OK)
        err = mgo_sd_watchdog_start(&m->watchdog, m->loop);
    if (err == MGO_OK)
        err = mgo_loop_run(m->loop);
    if (err)
        MGO_LOGE(TAG, "loop: %s", mgo_strerror(err));
    mgo_sd_watchdog_stop(&m->watchdog);
    mgo_sd_stopping("stopping");
    MGO_LOGI(TAG, "stopping");
    mgo_http__close(m->http);
    mgo_http__close(m->sb_http);
    mgo_loop_unwatch(m->loop, mgo_mqtt_fd(m->mqtt));
    if (m->mqtt_outbox.connected)
        MGO_IGNORE(mgo_mqtt_disconnect(m->mqtt, 2000));
    m->mqtt_outbox.connected = false;
    if (m->shared) {
        /* another manager takes over at once (and, reaping the member lease, asks the agents
         * to replay what this one took from the broker and did not store) */
        m->pub.active = false;
        mgo_lease__release(&m->lease);
    }
    return err;
}

void mgo_manager_free(struct mgo_manager *m)
{
    if (!m)
        return;
    mgo_http__close(m->http);
    mgo_http__close(m->sb_http);
    mgo_sse__hub_shutdown(m->hub);
    mgo_livebus__free(m->bus); /* before the loop it watches and times on */
    /* answers requests still posted with 503, so the HTTP threads can end */
    mgo_loop_free(m->loop);
    mgo_http__free(m->http);
    mgo_http__free(m->sb_http);
    mgo_southbound__free(m->sb);
    mgo_sse__hub_free(m->hub);
    mgo_mqtt_free(m->mqtt);
    if (m->store) /* initialised together with the store's users */
        mgo_ingest__cleanup(&m->ingest);
    mgo_mgr_store_close(m->store);
    mgo_sign_key_free(m->sign_key);
    if (m->password) {
        memset(m->password, 0, strlen(m->password));
        free(m->password);
    }
    memset(m->token, 0, sizeof m->token);
    memset(m->metrics_token, 0, sizeof m->metrics_token);
    mgo_cfg_cleanup(mgo_manager_options, mgo_manager_options_len, &m->seen);
    free(m);
}
