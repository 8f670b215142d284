/* manager.c - the margo-manager daemon: lifecycle, the configuration table, and the loop
 * that owns the store and the MQTT client. It only wires the modules together: MQTT
 * messages go to ingest.c, connection events to publish.c, HTTP requests (queued by
 * http.c) to api.c. File map and call directions: mgr_internal.h, docs/architecture.md. */
#include <errno.h>
#include <stdatomic.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "api.h"
#include "http.h"
#include "ingest.h"
#include "mgr_internal.h"
#include "outbox.h"
#include "publish.h"
#include "sse.h"
#include "mgo/backoff.h"
#include "mgo/log.h"
#include "mgo/manager.h"
#include "mgo/mqtt.h"
#include "mgo/sign.h"

#define TAG "manager"

#define LOOP_WAIT_MS 200
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
#define API_TOKEN_MAX 512
/* how often held device messages are retried while the store refuses writes */
#define HELD_RETRY_MS 1000
/* how soon an incomplete after-connect sweep is tried again */
#define SWEEP_RETRY_MS 5000

struct mgo_manager {
    const struct mgo_manager_config *cfg;
    struct mgo_mgr_store *store;
    struct mgo_mqtt *mqtt;
    char *password; /* read from password_file */
    struct mgo_sign_key *sign_key; /* signing-key, or NULL: documents go out unsigned */
    struct mgo_backoff backoff;
    bool connecting;
    int64_t next_connect_ms;
    int64_t held_retry_ms;
    int64_t sweep_retry_ms; /* 0: no sweep to redo */
    char token[API_TOKEN_MAX + 1];
    size_t token_len;
    struct mgo_mqtt_outbox mqtt_outbox;
    struct mgo_outbox outbox;
    struct mgo_publisher pub;
    struct mgo_ingest ingest;
    struct mgo_api api;
    struct mgo_sse_hub *hub;
    struct mgo_http *http;
    atomic_bool stop;
};

#define OPT(name, type, field, min, max, def, help)                                            \
    {name, type, offsetof(struct mgo_manager_config, field), min, max, def, help}

const struct mgo_cfg_option mgo_manager_options[] = {
    OPT("state-dir", MGO_CFG_STR, state_dir, 0, 1024, "/var/lib/margo-manager",
        "directory of the SQLite store and the generated API token"),
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
    OPT("api-tls-cert", MGO_CFG_STR, api_tls_cert, 0, 1024, NULL,
        "PEM certificate for HTTPS on api-listen (with api-tls-key); default plain HTTP"),
    OPT("api-tls-key", MGO_CFG_STR, api_tls_key, 0, 1024, NULL,
        "PEM private key of api-tls-cert"),
    OPT("log-level", MGO_CFG_STR, log_level, 0, 16, "info", "error, warn, info or debug"),
    OPT("ca-file", MGO_CFG_STR, ca_file, 0, 1024, NULL, "CA bundle to verify the broker (TLS)"),
    OPT("cert-file", MGO_CFG_STR, cert_file, 0, 1024, NULL, "client certificate (TLS)"),
    OPT("key-file", MGO_CFG_STR, key_file, 0, 1024, NULL, "client private key (TLS)"),
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
};
const size_t mgo_manager_options_len = sizeof mgo_manager_options / sizeof mgo_manager_options[0];

/* ---- small helpers --------------------------------------------------------------------- */

static mgo_err read_secret(const char *path, char *out, size_t out_size, size_t *len_out)
{
    struct mgo_buf b;
    mgo_buf_init(&b, out_size - 1);
    mgo_err err = mgo_buf_read_file(&b, path);
    if (err) {
        mgo_buf_cleanup(&b);
        return err;
    }
    size_t len = b.len;
    while (len > 0 && (b.data[len - 1] == '\n' || b.data[len - 1] == '\r' ||
                       b.data[len - 1] == ' ' || b.data[len - 1] == '\t'))
        len--;
    memcpy(out, b.data, len);
    out[len] = '\0';
    *len_out = len;
    mgo_buf_cleanup(&b);
    return memchr(out, '\0', len) ? MGO_ERR_INVALID : MGO_OK;
}

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
    mgo_err err = read_secret(file, m->token, sizeof m->token, &m->token_len);
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

/* ---- MQTT events ----------------------------------------------------------------------- */

static void subscribe_all(struct mgo_manager *m)
{
    static const enum mgo_topic_kind kinds[] = {MGO_TOPIC_STATUS, MGO_TOPIC_CAPABILITIES,
                                                MGO_TOPIC_STATE, MGO_TOPIC_EVENTS};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char filter[MGO_MAX_TOPIC_LEN + 1];
        if (mgo_topic_filter(m->cfg->topic_prefix, kinds[i], NULL, filter, sizeof filter) !=
            MGO_OK)
            continue;
        mgo_err err = mgo_mqtt_subscribe(m->mqtt, filter, mgo_topic_qos(kinds[i]), NULL);
        if (err)
            MGO_LOGE(TAG, "subscribe %s: %s", filter, mgo_strerror(err));
    }
}

static void schedule_reconnect(struct mgo_manager *m)
{
    m->mqtt_outbox.connected = false;
    m->connecting = false;
    m->sweep_retry_ms = 0;
    mgo_publish__connection_lost(&m->pub);
    uint32_t delay = mgo_backoff_next_ms(&m->backoff);
    m->next_connect_ms = mgo_mgr_store_now_ms() + delay;
    MGO_LOGI(TAG, "reconnecting to %s in %u ms", m->cfg->broker_url, delay);
}

static void sweep(struct mgo_manager *m, bool session_present)
{
    mgo_err err = mgo_publish__sweep(&m->pub, session_present);
    if (err) {
        MGO_LOGW(TAG, "after-connect publishing incomplete (%s); trying again in %d ms",
                 mgo_strerror(err), SWEEP_RETRY_MS);
        m->sweep_retry_ms = mgo_mgr_store_now_ms() + SWEEP_RETRY_MS;
    } else {
        m->sweep_retry_ms = 0;
    }
}

static void on_mqtt_event(struct mgo_manager *m, struct mgo_mqtt_event *ev)
{
    switch (ev->kind) {
    case MGO_MQTT_EV_CONNECTED:
        MGO_LOGI(TAG, "connected to %s (session %s)", m->cfg->broker_url,
                 ev->session_present ? "resumed" : "new");
        m->mqtt_outbox.connected = true;
        m->connecting = false;
        mgo_backoff_reset(&m->backoff);
        subscribe_all(m); /* also when resumed: cheap, and the filters may have changed */
        sweep(m, ev->session_present);
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
        break;
    case MGO_MQTT_EV_SUBSCRIBED:
        break;
    case MGO_MQTT_EV_SUBSCRIBE_FAILED:
        MGO_LOGE(TAG, "a subscription was refused by the broker (token %d)", ev->token);
        break;
    }
}

/* Ingests a run of queued messages (ev first) in one store transaction, so a burst of
 * statuses costs one WAL sync instead of one each: the per-message commit (fdatasync)
 * capped ingest rates (docs/benchmarks.md). Each message still has its own savepoint inside
 * (a refused one changes nothing); a failed commit keeps the whole batch (ingest.h). The run
 * stops at the first other event (connect, publish outcomes), which is handled after the
 * commit, and after MGO_INGEST_BATCH_MAX messages so HTTP requests keep being answered. ev
 * stays owned by the caller; *ev may be replaced by the event that ended the run. */
static void ingest_batch(struct mgo_manager *m, struct mgo_mqtt_event *ev)
{
    mgo_ingest__begin(&m->ingest);
    on_mqtt_event(m, ev);
    bool other = false;
    for (size_t n = 1; n < MGO_INGEST_BATCH_MAX && !atomic_load(&m->stop); n++) {
        mgo_mqtt_event_cleanup(ev);
        if (mgo_mqtt_next(m->mqtt, 0, ev) != MGO_OK) {
            memset(ev, 0, sizeof *ev);
            break;
        }
        if (ev->kind != MGO_MQTT_EV_MESSAGE) {
            other = true;
            break;
        }
        on_mqtt_event(m, ev);
    }
    if (mgo_ingest__commit(&m->ingest) != MGO_OK && m->held_retry_ms == 0)
        m->held_retry_ms = mgo_mgr_store_now_ms() + HELD_RETRY_MS;
    if (other)
        on_mqtt_event(m, ev);
}

static void retry_held(struct mgo_manager *m)
{
    size_t held = mgo_ingest__held(&m->ingest);
    if (held == 0) {
        m->held_retry_ms = 0;
        return;
    }
    int64_t now = mgo_mgr_store_now_ms();
    if (m->held_retry_ms == 0)
        m->held_retry_ms = now + HELD_RETRY_MS;
    if (now < m->held_retry_ms)
        return;
    held = mgo_ingest__retry_held(&m->ingest, 256);
    m->held_retry_ms = held ? now + HELD_RETRY_MS : 0;
}

static void wake_loop(void *ctx)
{
    struct mgo_manager *m = ctx;
    if (m->mqtt)
        mgo_mqtt_wake(m->mqtt);
}

/* ---- lifecycle --------------------------------------------------------------------------- */

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
    if (mgo_topic_check_prefix(cfg->topic_prefix) != MGO_OK) {
        MGO_LOGE(TAG, "topic-prefix: \"%s\" is not a valid topic prefix", cfg->topic_prefix);
        return MGO_ERR_INVALID;
    }
    if (cfg->state_dir == NULL || cfg->state_dir[0] == '\0') {
        MGO_LOGE(TAG, "state-dir: required");
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
    atomic_init(&m->stop, false);
    uint64_t seed = 0;
    if (getrandom(&seed, sizeof seed, 0) != (ssize_t)sizeof seed || seed == 0)
        seed = (uint64_t)mgo_mgr_store_now_ms() | 1u;
    mgo_backoff_init(&m->backoff, BACKOFF_BASE_MS, BACKOFF_MAX_MS, seed);

    err = mgo_mgr_store_open(cfg->state_dir, &m->store);
    if (err) {
        MGO_LOGE(TAG, "state-dir: cannot open the store in %s: %s", cfg->state_dir,
                 mgo_strerror(err));
        goto fail;
    }
    mgo_mgr_store_set_history_limit(m->store, (uint32_t)cfg->status_history);
    err = load_token(m);
    if (err)
        goto fail;
    if (cfg->password_file && cfg->password_file[0]) {
        char pw[512];
        size_t pw_len = 0;
        err = read_secret(cfg->password_file, pw, sizeof pw, &pw_len);
        if (err) {
            MGO_LOGE(TAG, "password-file: cannot read %s", cfg->password_file);
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
    struct mgo_mqtt_config mc = {
        .url = cfg->broker_url,
        .client_id = cfg->client_id,
        .clean_start = false,
        .session_expiry_s = (uint32_t)cfg->session_expiry_s,
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
    mgo_ingest__init(&m->ingest, m->store, &m->pub, m->hub, cfg->topic_prefix);
    m->api = (struct mgo_api){.store = m->store, .pub = &m->pub, .hub = m->hub};
    struct mgo_http_config hc = {
        .listen = cfg->api_listen,
        .tls_cert = cfg->api_tls_cert,
        .tls_key = cfg->api_tls_key,
        .token = m->token,
        .token_len = m->token_len,
        .api = &m->api,
        .hub = m->hub,
        .wake = wake_loop,
        .wake_ctx = m,
    };
    err = mgo_http__start(&hc, &m->http);
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
    atomic_store(&m->stop, true);
    if (m->mqtt)
        mgo_mqtt_wake(m->mqtt);
}

mgo_err mgo_manager_run(struct mgo_manager *m)
{
    MGO_LOGI(TAG, "running: broker %s, prefix %s, store %s/%s", m->cfg->broker_url,
             m->cfg->topic_prefix, m->cfg->state_dir, MGO_MGR_STORE_FILE);
    m->next_connect_ms = 0;
    while (!atomic_load(&m->stop)) {
        bool connected = m->mqtt_outbox.connected;
        if (!connected && !m->connecting && mgo_mgr_store_now_ms() >= m->next_connect_ms) {
            mgo_err err = mgo_mqtt_connect(m->mqtt);
            if (err) {
                MGO_LOGW(TAG, "connect to %s: %s", m->cfg->broker_url, mgo_strerror(err));
                schedule_reconnect(m);
            } else {
                m->connecting = true;
            }
        }
        struct mgo_mqtt_event ev;
        mgo_err err = mgo_mqtt_next(m->mqtt, LOOP_WAIT_MS, &ev);
        if (err == MGO_OK && ev.kind == MGO_MQTT_EV_MESSAGE)
            ingest_batch(m, &ev);
        else if (err == MGO_OK)
            on_mqtt_event(m, &ev);
        if (err == MGO_OK)
            mgo_mqtt_event_cleanup(&ev);
        retry_held(m);
        if (m->sweep_retry_ms && mgo_mgr_store_now_ms() >= m->sweep_retry_ms)
            sweep(m, true);
        mgo_http__drain(m->http);
    }
    MGO_LOGI(TAG, "stopping");
    mgo_http__close(m->http);
    if (m->mqtt_outbox.connected)
        MGO_IGNORE(mgo_mqtt_disconnect(m->mqtt, 2000));
    m->mqtt_outbox.connected = false;
    return MGO_OK;
}

void mgo_manager_free(struct mgo_manager *m)
{
    if (!m)
        return;
    mgo_http__close(m->http);
    mgo_sse__hub_shutdown(m->hub);
    mgo_http__free(m->http);
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
    free(m);
}
