/* manager.c - the margo-manager loop: owns the store and the MQTT client, ingests status,
 * capabilities, presence and events, and publishes deployments and desired-state
 * manifests (docs/protocol.md). HTTP requests are answered here too (mgo_http__drain). */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jw.h"
#include "mgr_internal.h"
#include "mgo/log.h"

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
/* Messages ingested in one store transaction at most (see ingest_batch). */
#define INGEST_BATCH_MAX 512

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

struct decode_ctx {
    struct mgo_arena *arena;
    struct mgo_value *tree;
    mgo_err err;
};

static void decode_app_row(const struct mgo_mgr_app_row *row, void *c)
{
    struct decode_ctx *ctx = c;
    struct mgo_problems p;
    mgo_problems_init(&p);
    ctx->err = mgo_value_from_msgpack(row->doc, row->doc_len, ctx->arena, ctx->tree, &p);
}

static void decode_caps_row(const struct mgo_mgr_device_row *row, void *c)
{
    struct decode_ctx *ctx = c;
    if (row->caps == NULL || row->caps_len == 0) {
        ctx->err = MGO_ERR_NOT_FOUND;
        return;
    }
    struct mgo_problems p;
    mgo_problems_init(&p);
    ctx->err = mgo_value_from_msgpack(row->caps, row->caps_len, ctx->arena, ctx->tree, &p);
}

mgo_err mgo_manager__load_app(struct mgo_manager *m, const char *id, const char *version,
                              struct mgo_arena *arena, struct mgo_app_description *app,
                              struct mgo_value *tree)
{
    struct decode_ctx ctx = {arena, tree, MGO_ERR_NOT_FOUND};
    mgo_err err = mgo_mgr_store_app_get(m->store, id, version, decode_app_row, &ctx);
    if (err)
        return err;
    if (ctx.err)
        return ctx.err;
    struct mgo_problems p;
    mgo_problems_init(&p);
    err = mgo_app_description_from_value(tree, arena, app, &p);
    if (err)
        MGO_LOGE(TAG, "stored app %s no longer validates", id);
    return err;
}

mgo_err mgo_manager__load_caps(struct mgo_manager *m, const char *device_id,
                               struct mgo_arena *arena, struct mgo_capabilities *caps,
                               struct mgo_value *tree)
{
    struct decode_ctx ctx = {arena, tree, MGO_ERR_NOT_FOUND};
    mgo_err err = mgo_mgr_store_device_get(m->store, device_id, decode_caps_row, &ctx);
    if (err)
        return err;
    if (ctx.err)
        return ctx.err;
    struct mgo_problems p;
    mgo_problems_init(&p);
    return mgo_capabilities_from_value(tree, arena, caps, &p);
}

/* ---- publishing -------------------------------------------------------------------------- */

static const char *prefix(const struct mgo_manager *m)
{
    return m->cfg->topic_prefix;
}

static void remember_pub(struct mgo_manager *m, int token, const char *device, uint64_t version)
{
    if (m->pending_len == MGO_MGR_MAX_PENDING_PUBS) {
        /* forget the oldest; its manifest stays unpublished and is sent again on reconnect */
        memmove(&m->pending[0], &m->pending[1], (m->pending_len - 1) * sizeof m->pending[0]);
        m->pending_len--;
    }
    struct mgo_pending_pub *p = &m->pending[m->pending_len++];
    p->token = token;
    p->version = version;
    snprintf(p->device, sizeof p->device, "%s", device);
}

struct manifest_ctx {
    struct mgo_arena *arena;
    struct mgo_desired_ref refs[MGO_MAX_DEPLOYMENTS];
    size_t len;
    bool overflow;
    /* documents to publish */
    struct {
        const char *id;
        uint8_t *doc;
        size_t doc_len;
    } docs[MGO_MAX_DEPLOYMENTS];
    size_t docs_len;
    const char *const *changed;
    size_t changed_len;
};

static bool is_changed(const struct manifest_ctx *ctx, const char *id)
{
    if (ctx->changed == NULL)
        return true;
    for (size_t i = 0; i < ctx->changed_len; i++) {
        if (strcmp(ctx->changed[i], id) == 0)
            return true;
    }
    return false;
}

static void collect_present(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct manifest_ctx *ctx = c;
    if (row->desired != MGO_MGR_DESIRED_PRESENT)
        return;
    if (ctx->len == MGO_MAX_DEPLOYMENTS) {
        ctx->overflow = true;
        return;
    }
    struct mgo_desired_ref *r = &ctx->refs[ctx->len++];
    r->deployment_id = mgo_arena_strdup(ctx->arena, row->id);
    r->digest = mgo_arena_strdup(ctx->arena, row->digest);
    if (is_changed(ctx, row->id)) {
        size_t i = ctx->docs_len++;
        ctx->docs[i].id = r->deployment_id;
        ctx->docs[i].doc = mgo_arena_alloc(ctx->arena, row->doc_len + 1);
        if (ctx->docs[i].doc)
            memcpy(ctx->docs[i].doc, row->doc, row->doc_len);
        ctx->docs[i].doc_len = row->doc_len;
    }
}

mgo_err mgo_manager__encode_doc(struct mgo_manager *m, const struct mgo_value *tree,
                                struct mgo_arena *arena, struct mgo_buf *out)
{
    if (m->sign_key == NULL)
        return mgo_value_to_msgpack(tree, out);
    struct mgo_value signed_tree;
    mgo_err err = mgo_sign_document(m->sign_key, tree, arena, &signed_tree);
    if (err == MGO_OK)
        err = mgo_value_to_msgpack(&signed_tree, out);
    return err;
}

/* The manifest as published names its device at the root ("deviceId"), so a signed
 * manifest cannot be replayed on another device's topic. */
static mgo_err encode_manifest(struct mgo_manager *m, const struct mgo_desired_state *ds,
                               const char *device_id, struct mgo_arena *arena,
                               struct mgo_buf *out)
{
    struct mgo_desired_state bound = *ds;
    bound.device_id = device_id;
    struct mgo_value tree;
    mgo_err err = mgo_desired_state_to_value(&bound, arena, &tree);
    if (err == MGO_OK)
        err = mgo_manager__encode_doc(m, &tree, arena, out);
    return err;
}

void mgo_manager__publish_device(struct mgo_manager *m, const char *device_id,
                                 const char *const *changed_ids, size_t changed_len)
{
    uint64_t version = 0;
    if (mgo_mgr_store_manifest_get(m->store, device_id, &version, NULL) != MGO_OK || version == 0)
        return;
    if (!m->connected) {
        MGO_LOGI(TAG, "device %s: manifest %llu stored; publishing once connected", device_id,
                 (unsigned long long)version);
        return;
    }
    struct mgo_arena arena;
    mgo_arena_init(&arena, 64u * 1024u * 1024u);
    struct manifest_ctx *ctx = calloc(1, sizeof *ctx);
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    if (!ctx)
        goto cleanup;
    ctx->arena = &arena;
    ctx->changed = changed_ids;
    ctx->changed_len = changed_len;
    if (mgo_mgr_store_deployment_list(m->store, device_id, NULL, false, collect_present, ctx) !=
            MGO_OK ||
        ctx->overflow) {
        MGO_LOGE(TAG, "device %s: cannot collect its deployments (more than %u?)", device_id,
                 MGO_MAX_DEPLOYMENTS);
        goto cleanup;
    }
    char topic[MGO_MAX_TOPIC_LEN + 1];
    for (size_t i = 0; i < ctx->docs_len; i++) {
        if (!ctx->docs[i].doc ||
            mgo_topic_format(prefix(m), MGO_TOPIC_DEPLOYMENT, device_id, ctx->docs[i].id, topic,
                             sizeof topic) != MGO_OK)
            goto cleanup;
        mgo_err err = mgo_mqtt_publish(m->mqtt, topic, ctx->docs[i].doc, ctx->docs[i].doc_len, 1,
                                       true, NULL);
        if (err) {
            MGO_LOGW(TAG, "publish %s: %s (will retry on reconnect)", topic, mgo_strerror(err));
            goto cleanup;
        }
    }
    struct mgo_desired_state ds = {
        .manifest_version = version,
        .has_bundle = false,
        .deployments = ctx->refs,
        .deployments_len = ctx->len,
    };
    mgo_err err = encode_manifest(m, &ds, device_id, &arena, &buf);
    if (err) {
        MGO_LOGE(TAG, "device %s: cannot encode manifest: %s", device_id, mgo_strerror(err));
        goto cleanup;
    }
    if (mgo_topic_format(prefix(m), MGO_TOPIC_DESIRED, device_id, NULL, topic, sizeof topic) !=
        MGO_OK)
        goto cleanup;
    int token = 0;
    err = mgo_mqtt_publish(m->mqtt, topic, buf.data, buf.len, 1, true, &token);
    if (err) {
        MGO_LOGW(TAG, "publish %s: %s (will retry on reconnect)", topic, mgo_strerror(err));
        goto cleanup;
    }
    remember_pub(m, token, device_id, version);
    MGO_LOGI(TAG, "device %s: published manifest %llu (%zu deployments, %zu documents)",
             device_id, (unsigned long long)version, ctx->len, ctx->docs_len);
cleanup:
    mgo_buf_cleanup(&buf);
    free(ctx);
    mgo_arena_cleanup(&arena);
}

static void clear_retained_deployment(struct mgo_manager *m, const char *device_id,
                                      const char *deployment_id)
{
    char topic[MGO_MAX_TOPIC_LEN + 1];
    if (mgo_topic_format(prefix(m), MGO_TOPIC_DEPLOYMENT, device_id, deployment_id, topic,
                         sizeof topic) != MGO_OK)
        return;
    if (!m->connected || mgo_mqtt_publish(m->mqtt, topic, NULL, 0, 1, true, NULL) != MGO_OK) {
        MGO_LOGI(TAG, "deployment %s removed; clearing its document once connected",
                 deployment_id);
        return;
    }
    if (mgo_mgr_store_deployment_set_desired(m->store, deployment_id, MGO_MGR_DESIRED_REMOVED) ==
        MGO_OK)
        MGO_LOGI(TAG, "deployment %s removed from device %s", deployment_id, device_id);
}

void mgo_manager__clear_unreported(struct mgo_manager *m, const char *device_id,
                                   const char *deployment_id)
{
    if (mgo_mgr_store_status_get(m->store, deployment_id, NULL, NULL) == MGO_ERR_NOT_FOUND)
        clear_retained_deployment(m, device_id, deployment_id);
}

/* ---- reconnect sweep --------------------------------------------------------------------- */

struct id_list {
    char (*ids)[MGO_MAX_DEVICE_ID_LEN + 1];
    size_t len;
    size_t cap;
};

static void add_id(const char *id, void *c)
{
    struct id_list *l = c;
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *p = realloc(l->ids, cap * sizeof *l->ids);
        if (!p)
            return;
        l->ids = p;
        l->cap = cap;
    }
    snprintf(l->ids[l->len++], sizeof l->ids[0], "%s", id);
}

struct removal {
    char deployment[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
};

struct removal_list {
    struct removal *items;
    size_t len, cap;
    struct mgo_manager *m;
};

static void state_of(const struct mgo_mgr_status_row *row, void *c)
{
    snprintf(c, 16, "%s", row->state);
}

static void collect_removed(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct removal_list *l = c;
    if (row->desired != MGO_MGR_DESIRED_REMOVING)
        return;
    char state[16] = "";
    mgo_err err = mgo_mgr_store_status_get(l->m->store, row->id, state_of, state);
    /* reported removed, or never reported at all (added and removed while the device was
     * away: it never acts on it, protocol.md §7.4-7.5) */
    if (err != MGO_ERR_NOT_FOUND && (err != MGO_OK || strcmp(state, "removed") != 0))
        return;
    if (l->len == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 16;
        void *p = realloc(l->items, cap * sizeof *l->items);
        if (!p)
            return;
        l->items = p;
        l->cap = cap;
    }
    snprintf(l->items[l->len].deployment, sizeof l->items[0].deployment, "%s", row->id);
    snprintf(l->items[l->len].device, sizeof l->items[0].device, "%s", row->device_id);
    l->len++;
}

/* After a connect: publishes the documents and manifest of every device whose newest
 * manifest the broker has not acknowledged, or of every device when the session is new (the
 * broker may have lost its retained messages with it; protocol.md §6.2; agents ignore the
 * byte-identical copies), and clears retained documents of removed deployments. */
static void sweep_after_connect(struct mgo_manager *m, bool session_present)
{
    struct id_list devices = {0};
    if (mgo_mgr_store_manifest_devices(m->store, session_present, add_id, &devices) == MGO_OK) {
        if (!session_present && devices.len > 0)
            MGO_LOGI(TAG, "new session: publishing the desired state of %zu devices again",
                     devices.len);
        for (size_t i = 0; i < devices.len; i++)
            mgo_manager__publish_device(m, devices.ids[i], NULL, 0);
    }
    free(devices.ids);
    struct removal_list rl = {.m = m};
    if (mgo_mgr_store_deployment_list(m->store, NULL, NULL, false, collect_removed, &rl) == MGO_OK) {
        for (size_t i = 0; i < rl.len; i++)
            clear_retained_deployment(m, rl.items[i].device, rl.items[i].deployment);
    }
    free(rl.items);
}

/* ---- ingest ------------------------------------------------------------------------------ */

static void log_problems(const char *what, const char *topic, const struct mgo_problems *p)
{
    char text[512];
    mgo_problems_format(p, text, sizeof text);
    MGO_LOGW(TAG, "%s on %s refused: %s", what, topic, text);
}

struct dep_owner {
    bool found;
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    enum mgo_mgr_desired desired;
    uint64_t manifest_version;
};

static void dep_owner_visit(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct dep_owner *o = c;
    o->found = true;
    o->desired = row->desired;
    o->manifest_version = row->manifest_version;
    snprintf(o->device, sizeof o->device, "%s", row->device_id);
}

/* A live event for the API's event stream (sse.c). live_begin returns false, and builds
 * nothing, when no client follows deployment_id (NULL: events about no deployment), so the
 * ingest paths pay for the JSON only when someone reads it; otherwise it opens the JSON
 * object, which the caller fills and live_end closes, publishes and frees. */
struct live_event {
    struct mgo_buf buf;
    struct mgo_jw w;
};

static bool live_begin(struct mgo_manager *m, const char *deployment_id, size_t max_bytes,
                       struct live_event *e)
{
    if (!mgo_sse__wanted(m->hub, deployment_id))
        return false;
    mgo_buf_init(&e->buf, max_bytes);
    mgo_jw_init(&e->w, &e->buf);
    mgo_jw_obj(&e->w);
    return true;
}

static void live_end(struct mgo_manager *m, const char *event, const char *deployment_id,
                     struct live_event *e)
{
    mgo_jw_obj_end(&e->w);
    if (e->w.err == MGO_OK)
        mgo_sse__publish(m->hub, event, deployment_id, (const char *)e->buf.data);
    mgo_buf_cleanup(&e->buf);
}

static mgo_err ingest_status(struct mgo_manager *m, const struct mgo_topic *t, const char *topic,
                             const uint8_t *payload, size_t len)
{
    mgo_err result = MGO_OK;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_deployment_status st;
    struct mgo_buf json;
    mgo_buf_init(&json, 4u * MGO_MAX_MESSAGE_BYTES);
    if (mgo_deployment_status_decode(payload, len, &arena, &st, &p) != MGO_OK) {
        log_problems("status", topic, &p);
        goto cleanup;
    }
    if (strcmp(st.deployment_id, t->deployment_id) != 0) {
        MGO_LOGW(TAG, "status on %s refused: deploymentId %.64s differs from the topic", topic,
                 st.deployment_id);
        goto cleanup;
    }
    if (st.device_id && strcmp(st.device_id, t->device_id) != 0) {
        MGO_LOGW(TAG, "status on %s refused: deviceId %.128s differs from the topic", topic,
                 st.device_id);
        goto cleanup;
    }
    struct dep_owner owner = {0};
    mgo_err err = mgo_mgr_store_deployment_get(m->store, t->deployment_id, dep_owner_visit, &owner);
    if (err == MGO_ERR_NOT_FOUND || (owner.found && strcmp(owner.device, t->device_id) != 0)) {
        MGO_LOGW(TAG, "status on %s ignored: unknown deployment %s for device %s", topic,
                 t->deployment_id, t->device_id);
        goto cleanup;
    }
    if (err) {
        result = err; /* the store could not be read: try again later */
        goto cleanup;
    }
    struct mgo_value tree;
    if (mgo_deployment_status_to_value(&st, &arena, &tree) != MGO_OK ||
        mgo_value_to_json(&tree, false, &json) != MGO_OK)
        goto cleanup;
    struct mgo_mgr_status_row row = {
        .deployment_id = t->deployment_id,
        .device_id = t->device_id,
        .state = mgo_state_name(st.state),
        .has_journal = st.has_journal,
        .boot = st.boot,
        .seq = st.seq,
        .doc_json = (const char *)json.data,
        .received_ms = mgo_mgr_store_now_ms(), /* stored and sent live alike */
    };
    bool changed = false;
    err = mgo_mgr_store_status_apply(m->store, &row, &changed);
    if (err == MGO_ERR_STALE) {
        MGO_LOGI(TAG, "status on %s ignored: journal position (%llu, %llu) already seen", topic,
                 (unsigned long long)st.boot, (unsigned long long)st.seq);
        goto cleanup;
    }
    if (err) {
        MGO_LOGE(TAG, "status on %s not stored: %s; kept and retried", topic, mgo_strerror(err));
        result = err;
        goto cleanup;
    }
    /* a line per change of state; repeats (a component moving on, a re-sent status) would
     * be one write per message at fleet rates */
    if (changed)
        MGO_LOGI(TAG, "device %s deployment %s: %s", t->device_id, t->deployment_id, row.state);
    else
        MGO_LOGD(TAG, "device %s deployment %s: %s (again)", t->device_id, t->deployment_id,
                 row.state);
    if (st.state == MGO_STATE_REMOVED && owner.desired == MGO_MGR_DESIRED_REMOVING)
        clear_retained_deployment(m, t->device_id, t->deployment_id);
    struct live_event ev;
    if (live_begin(m, t->deployment_id, 8u * MGO_MAX_MESSAGE_BYTES, &ev)) {
        mgo_api__status_event(&ev.w, &row, mgo_mgr_desired_name(owner.desired),
                              owner.manifest_version, false);
        live_end(m, "status", t->deployment_id, &ev);
    }
cleanup:
    mgo_buf_cleanup(&json);
    mgo_arena_cleanup(&arena);
    return result;
}

static mgo_err ingest_capabilities(struct mgo_manager *m, const struct mgo_topic *t,
                                   const char *topic, const uint8_t *payload, size_t len)
{
    mgo_err result = MGO_OK;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_capabilities caps;
    struct mgo_buf canon;
    mgo_buf_init(&canon, MGO_MAX_MESSAGE_BYTES);
    struct mgo_value tree;
    if (mgo_value_from_msgpack(payload, len, &arena, &tree, &p) != MGO_OK ||
        mgo_capabilities_from_value(&tree, &arena, &caps, &p) != MGO_OK) {
        log_problems("capabilities", topic, &p);
        goto cleanup;
    }
    if (caps.id == NULL || strcmp(caps.id, t->device_id) != 0) {
        MGO_LOGW(TAG, "capabilities on %s refused: properties.id %.128s differs from the topic",
                 topic, caps.id ? caps.id : "(none)");
        goto cleanup;
    }
    if (mgo_value_to_msgpack(&tree, &canon) != MGO_OK)
        goto cleanup;
    result = mgo_mgr_store_device_put_caps(m->store, t->device_id, canon.data, canon.len);
    if (result == MGO_OK) {
        MGO_LOGI(TAG, "device %s: capabilities stored", t->device_id);
        struct live_event ev;
        if (live_begin(m, NULL, 4096, &ev)) {
            mgo_jw_kstr(&ev.w, "deviceId", t->device_id);
            live_end(m, "capabilities", NULL, &ev);
        }
    }
cleanup:
    mgo_buf_cleanup(&canon);
    mgo_arena_cleanup(&arena);
    return result;
}

static mgo_err ingest_presence(struct mgo_manager *m, const struct mgo_topic *t,
                               const char *topic, const uint8_t *payload, size_t len)
{
    mgo_err result = MGO_OK;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_presence pr;
    if (mgo_presence_decode(payload, len, &arena, &pr, &p) != MGO_OK) {
        log_problems("presence", topic, &p);
        goto cleanup;
    }
    if (pr.device_id && strcmp(pr.device_id, t->device_id) != 0) {
        MGO_LOGW(TAG, "presence on %s refused: deviceId differs from the topic", topic);
        goto cleanup;
    }
    result = mgo_mgr_store_device_put_presence(m->store, t->device_id, pr.online, pr.boot);
    if (result == MGO_OK) {
        MGO_LOGI(TAG, "device %s is %s (boot %llu)", t->device_id, pr.online ? "online" : "offline",
                 (unsigned long long)pr.boot);
        struct live_event ev;
        if (live_begin(m, NULL, 4096, &ev)) {
            mgo_jw_kstr(&ev.w, "deviceId", t->device_id);
            mgo_jw_kbool(&ev.w, "online", pr.online);
            mgo_jw_ku64(&ev.w, "boot", pr.boot);
            live_end(m, "presence", NULL, &ev);
        }
    }
cleanup:
    mgo_arena_cleanup(&arena);
    return result;
}

static mgo_err ingest_event(struct mgo_manager *m, const struct mgo_topic *t, const char *topic,
                            const uint8_t *payload, size_t len)
{
    mgo_err result = MGO_OK;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_event e;
    if (mgo_event_decode(payload, len, &arena, &e, &p) != MGO_OK) {
        log_problems("event", topic, &p);
        goto cleanup;
    }
    if (e.device_id && strcmp(e.device_id, t->device_id) != 0) {
        MGO_LOGW(TAG, "event on %s refused: deviceId differs from the topic", topic);
        goto cleanup;
    }
    MGO_LOGI(TAG, "device %s event %s (%s): %.200s", t->device_id, e.type, e.severity,
             e.message ? e.message : "");
    result = mgo_mgr_store_event_add(m->store, t->device_id, e.type, e.severity, e.message);
    struct live_event ev;
    if (result == MGO_OK && live_begin(m, e.deployment_id, 64u * 1024u, &ev)) {
        mgo_jw_kstr(&ev.w, "deviceId", t->device_id);
        mgo_jw_kstr(&ev.w, "type", e.type);
        mgo_jw_kstr(&ev.w, "severity", e.severity);
        mgo_jw_kstr(&ev.w, "message", e.message);
        mgo_jw_kstr(&ev.w, "deploymentId", e.deployment_id);
        live_end(m, "device-event", e.deployment_id, &ev);
    }
cleanup:
    mgo_arena_cleanup(&arena);
    return result;
}

/* Ingests one device message. MGO_OK when it was handled (stored, or refused for a reason
 * that retrying cannot change); another error when the store failed (locked by another
 * process past the busy timeout, disk full, I/O error): the caller keeps it for later. */
static mgo_err ingest(struct mgo_manager *m, const char *topic, const uint8_t *payload,
                      size_t len)
{
    struct mgo_topic t;
    if (mgo_topic_parse(prefix(m), topic, strlen(topic), &t) != MGO_OK) {
        MGO_LOGD(TAG, "ignoring message on %.200s (not a margo topic)", topic);
        return MGO_OK;
    }
    if (len == 0) {
        MGO_LOGD(TAG, "ignoring empty payload on %s (a cleared retained message)", topic);
        return MGO_OK;
    }
    if (len > MGO_MAX_MESSAGE_BYTES) {
        MGO_LOGW(TAG, "ignoring %zu bytes on %s: larger than %u", len, topic,
                 MGO_MAX_MESSAGE_BYTES);
        return MGO_OK;
    }
    switch (t.kind) {
    case MGO_TOPIC_STATUS:
        return ingest_status(m, &t, topic, payload, len);
    case MGO_TOPIC_CAPABILITIES:
        return ingest_capabilities(m, &t, topic, payload, len);
    case MGO_TOPIC_STATE:
        return ingest_presence(m, &t, topic, payload, len);
    case MGO_TOPIC_EVENTS:
        return ingest_event(m, &t, topic, payload, len);
    default:
        /* our own desired/deployments topics: not subscribed, ignore */
        return MGO_OK;
    }
}

/* ---- messages held while the store refuses writes ------------------------------------ */

struct mgo_mgr_held {
    struct mgo_mgr_held *next;
    char *topic;
    uint8_t *payload;
    size_t len;
};

static void held_pop(struct mgo_manager *m)
{
    struct mgo_mgr_held *h = m->held_head;
    m->held_head = h->next;
    if (m->held_head == NULL)
        m->held_tail = NULL;
    m->held_len--;
    free(h->topic);
    free(h->payload);
    free(h);
}

/* Takes ownership of the event's topic and payload. */
static void held_push(struct mgo_manager *m, struct mgo_mqtt_event *ev)
{
    if (m->held_len == MGO_MGR_MAX_HELD) {
        MGO_LOGE(TAG, "store unavailable for too long: %u messages held; dropping the oldest "
                 "(%s); the device's retained state still converges", MGO_MGR_MAX_HELD,
                 m->held_head->topic);
        held_pop(m);
    }
    struct mgo_mgr_held *h = calloc(1, sizeof *h);
    if (h == NULL) {
        MGO_LOGE(TAG, "out of memory: message on %s dropped", ev->topic);
        return;
    }
    h->topic = ev->topic;
    h->payload = ev->payload;
    h->len = ev->payload_len;
    ev->topic = NULL;
    ev->payload = NULL;
    if (m->held_tail)
        m->held_tail->next = h;
    else
        m->held_head = h;
    m->held_tail = h;
    m->held_len++;
    if (m->held_len == 1)
        m->held_retry_ms = mgo_mgr_store_now_ms() + MGO_MGR_HELD_RETRY_MS;
}

/* Retries held messages in order; stops at the first that still fails. */
static void held_drain(struct mgo_manager *m)
{
    if (m->held_len == 0 || mgo_mgr_store_now_ms() < m->held_retry_ms)
        return;
    size_t before = m->held_len;
    for (int i = 0; i < 256 && m->held_head != NULL; i++) {
        if (ingest(m, m->held_head->topic, m->held_head->payload, m->held_head->len) != MGO_OK) {
            m->held_retry_ms = mgo_mgr_store_now_ms() + MGO_MGR_HELD_RETRY_MS;
            break;
        }
        held_pop(m);
    }
    if (m->held_len == 0 && before > 0)
        MGO_LOGI(TAG, "store available again: %zu held messages stored", before);
}

static void on_message(struct mgo_manager *m, struct mgo_mqtt_event *ev)
{
    /* behind held messages, to keep each device's order */
    if (m->held_len > 0 || ingest(m, ev->topic, ev->payload, ev->payload_len) != MGO_OK)
        held_push(m, ev);
}

static void on_published(struct mgo_manager *m, int token)
{
    for (size_t i = 0; i < m->pending_len; i++) {
        if (m->pending[i].token != token)
            continue;
        if (mgo_mgr_store_manifest_set_published(m->store, m->pending[i].device,
                                                 m->pending[i].version) != MGO_OK)
            MGO_LOGE(TAG, "device %s: cannot record manifest as published", m->pending[i].device);
        memmove(&m->pending[i], &m->pending[i + 1],
                (m->pending_len - i - 1) * sizeof m->pending[0]);
        m->pending_len--;
        return;
    }
}

static void subscribe_all(struct mgo_manager *m)
{
    static const enum mgo_topic_kind kinds[] = {MGO_TOPIC_STATUS, MGO_TOPIC_CAPABILITIES,
                                                MGO_TOPIC_STATE, MGO_TOPIC_EVENTS};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        char filter[MGO_MAX_TOPIC_LEN + 1];
        if (mgo_topic_filter(prefix(m), kinds[i], NULL, filter, sizeof filter) != MGO_OK)
            continue;
        mgo_err err = mgo_mqtt_subscribe(m->mqtt, filter, 1, NULL);
        if (err)
            MGO_LOGE(TAG, "subscribe %s: %s", filter, mgo_strerror(err));
    }
}

static void schedule_reconnect(struct mgo_manager *m)
{
    m->connected = false;
    m->connecting = false;
    m->pending_len = 0; /* outcomes of in-flight publishes are unknown: resend on connect */
    uint32_t delay = mgo_backoff_next_ms(&m->backoff);
    m->next_connect_ms = mgo_mgr_store_now_ms() + delay;
    MGO_LOGI(TAG, "reconnecting to %s in %u ms", m->cfg->broker_url, delay);
}

static void on_mqtt_event(struct mgo_manager *m, struct mgo_mqtt_event *ev)
{
    switch (ev->kind) {
    case MGO_MQTT_EV_CONNECTED:
        MGO_LOGI(TAG, "connected to %s (session %s)", m->cfg->broker_url,
                 ev->session_present ? "resumed" : "new");
        m->connected = true;
        m->connecting = false;
        mgo_backoff_reset(&m->backoff);
        subscribe_all(m); /* also when resumed: cheap, and the filters may have changed */
        sweep_after_connect(m, ev->session_present);
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
        on_message(m, ev);
        break;
    case MGO_MQTT_EV_PUBLISHED:
        on_published(m, ev->token);
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
    pthread_mutex_init(&m->req_mu, NULL);
    pthread_cond_init(&m->req_cond, NULL);
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
    err = mgo_http__start(m);
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
    return m->api_port;
}

void mgo_manager_stop(struct mgo_manager *m)
{
    atomic_store(&m->stop, true);
    if (m->mqtt)
        mgo_mqtt_wake(m->mqtt);
}

/* Ingests a run of queued messages (ev first) in one store transaction, so a burst of
 * statuses costs one WAL sync instead of one each: the per-message commit (fdatasync) capped
 * ingest at about 1,000 statuses/s (perf, bench/fleet --ingest-seconds). Paho has already
 * acknowledged these messages when they reach the queue, so committing them together loses
 * nothing a per-message commit would have kept. Each message still has its own savepoint
 * inside (a refused one changes nothing). The run stops at the first other event (connect,
 * publish outcomes), which is handled after the commit, and after INGEST_BATCH_MAX messages
 * so HTTP requests keep being answered. ev stays owned by the caller; *ev may be replaced
 * by the event that ended the run. */
static void ingest_batch(struct mgo_manager *m, struct mgo_mqtt_event *ev)
{
    bool tx = mgo_mgr_store_begin(m->store) == MGO_OK;
    on_mqtt_event(m, ev);
    bool other = false;
    for (size_t n = 1; n < INGEST_BATCH_MAX && !atomic_load(&m->stop); n++) {
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
    if (tx && mgo_mgr_store_commit(m->store) != MGO_OK)
        MGO_LOGE(TAG, "store: cannot commit a batch of ingested messages");
    if (other)
        on_mqtt_event(m, ev);
}

mgo_err mgo_manager_run(struct mgo_manager *m)
{
    MGO_LOGI(TAG, "running: broker %s, prefix %s, store %s/%s", m->cfg->broker_url,
             prefix(m), m->cfg->state_dir, MGO_MGR_STORE_FILE);
    m->next_connect_ms = 0;
    while (!atomic_load(&m->stop)) {
        if (!m->connected && !m->connecting && mgo_mgr_store_now_ms() >= m->next_connect_ms) {
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
        held_drain(m);
        mgo_http__drain(m);
    }
    MGO_LOGI(TAG, "stopping");
    mgo_http__close_queue(m);
    if (m->connected)
        MGO_IGNORE(mgo_mqtt_disconnect(m->mqtt, 2000));
    m->connected = false;
    return MGO_OK;
}

void mgo_manager_free(struct mgo_manager *m)
{
    if (!m)
        return;
    mgo_http__close_queue(m);
    mgo_sse__hub_shutdown(m->hub);
    mgo_http__stop(m);
    mgo_sse__hub_free(m->hub);
    mgo_mqtt_free(m->mqtt);
    if (m->held_len > 0) /* the retained state comes back with the next subscription */
        MGO_LOGE(TAG, "stopping with %zu device messages the store never took", m->held_len);
    while (m->held_head != NULL)
        held_pop(m);
    mgo_mgr_store_close(m->store);
    mgo_sign_key_free(m->sign_key);
    if (m->password) {
        memset(m->password, 0, strlen(m->password));
        free(m->password);
    }
    memset(m->token, 0, sizeof m->token);
    pthread_cond_destroy(&m->req_cond);
    pthread_mutex_destroy(&m->req_mu);
    free(m);
}
