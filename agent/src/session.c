/* session.c - the agent's MQTT session (session.h). */
#include "session.h"

#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "caps.h"
#include "downtime.h"
#include "mgo/backoff.h"
#include "mgo/buf.h"
#include "mgo/log.h"
#include "mgo/margo.h"
#include "mgo/mqtt.h"
#include "mgo/secret.h"
#include "mgo/sign.h"

#define TAG "agent"
/* Events handled per wake-up before the loop lets timers and posts in. */
#define DRAIN_BATCH 256
/* Inside a downtime window the end is checked at least this often (the wall clock may step). */
#define DOWNTIME_CHECK_MAX_MS 60000

struct mgo_session {
    const struct mgo_agent_config *cfg;
    struct mgo_loop *loop;
    struct mgo_session_handlers h;
    uint64_t boot;
    struct mgo_mqtt *mqtt;
    bool watching;
    bool connected, connecting;
    struct mgo_backoff backoff;
    uint64_t attempt_timer;
    struct mgo_downtime downtime[MGO_SESSION_MAX_DOWNTIME];
    size_t downtime_len;
    bool in_downtime;
    /* manager signing keys: when any is loaded, desired state must be signed by one */
    struct mgo_verify_key *keys[MGO_SESSION_MAX_KEYS];
    size_t keys_len;
    uint8_t *caps_bytes;
    size_t caps_len;
    bool caps_published;
    struct mgo_buf will;
    char will_topic[MGO_MAX_TOPIC_LEN + 1];
    char password[512];
    char topic_buf[MGO_MAX_TOPIC_LEN + 1];
};

static uint64_t wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *topic(struct mgo_session *s, enum mgo_topic_kind kind, const char *dep_id)
{
    if (mgo_topic_format(s->cfg->topic_prefix, kind, s->cfg->device_id, dep_id, s->topic_buf,
                         sizeof s->topic_buf) != MGO_OK)
        return NULL;
    return s->topic_buf;
}

bool mgo_session_connected(const struct mgo_session *s)
{
    return s->connected;
}

mgo_err mgo_session_publish(struct mgo_session *s, enum mgo_topic_kind kind, const char *dep_id,
                            const void *payload, size_t len, int *token_out)
{
    if (!s->connected)
        return MGO_ERR_NET;
    const char *t = topic(s, kind, dep_id);
    if (t == NULL)
        return MGO_ERR_INVALID;
    return mgo_mqtt_publish(s->mqtt, t, payload, len, mgo_topic_qos(kind), mgo_topic_retained(kind),
                            token_out);
}

void mgo_session_event(struct mgo_session *s, const char *type, const char *severity,
                       const char *dep_id, bool has_version, uint64_t version, const char *msg)
{
    MGO_LOGW(TAG, "event %s%s%s: %s", type, dep_id ? " " : "", dep_id ? dep_id : "", msg);
    if (!s->connected)
        return; /* events are not journaled; the log keeps them */
    struct mgo_event ev = {
        .device_id = s->cfg->device_id,
        .type = type,
        .severity = severity,
        .message = msg,
        .deployment_id = dep_id,
        .has_manifest_version = has_version,
        .manifest_version = version,
        .timestamp_ms = wall_ms(),
    };
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    if (mgo_event_encode(&ev, &buf) == MGO_OK &&
        mgo_session_publish(s, MGO_TOPIC_EVENTS, NULL, buf.data, buf.len, NULL) != MGO_OK)
        MGO_LOGW(TAG, "event %s not published", type);
    mgo_buf_cleanup(&buf);
}

/* timestamped: every presence the agent publishes itself; the last will, composed at
 * connect time, carries none (protocol.md §3.6, §6.1). */
static mgo_err encode_presence(const struct mgo_session *s, bool online, bool timestamped,
                               struct mgo_buf *buf)
{
    struct mgo_presence p = {.device_id = s->cfg->device_id,
                             .online = online,
                             .boot = s->boot,
                             .timestamp_ms = timestamped ? wall_ms() : 0,
                             .agent_version = MGO_SESSION_VERSION};
    return mgo_presence_encode(&p, buf);
}

static void publish_caps(struct mgo_session *s)
{
    if (!s->connected || s->caps_published || s->caps_bytes == NULL)
        return;
    if (mgo_session_publish(s, MGO_TOPIC_CAPABILITIES, NULL, s->caps_bytes, s->caps_len, NULL) ==
        MGO_OK)
        s->caps_published = true;
}

mgo_err mgo_session_refresh_caps(struct mgo_session *s, bool compose_available, bool helm_available)
{
    const struct mgo_agent_config *c = s->cfg;
    struct mgo_caps_config cc = {
        .device_id = c->device_id,
        .vendor = c->vendor,
        .model = c->model,
        .serial = c->serial,
        .cpu_cores = c->cpu_cores ? strtod(c->cpu_cores, NULL) : 0,
        .memory = c->memory,
        .storage = c->storage,
        .storage_path = c->state_dir,
        .otel_collector = c->otel_collector,
        .compose_available = compose_available,
        .helm_available = helm_available,
        .labels = (const char *const *)c->label.items,
        .labels_len = c->label.len,
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
    if (err == MGO_OK && (s->caps_bytes == NULL || s->caps_len != buf.len ||
                          memcmp(s->caps_bytes, buf.data, buf.len) != 0)) {
        free(s->caps_bytes);
        s->caps_bytes = mgo_buf_take(&buf, &s->caps_len);
        s->caps_published = false;
    }
    mgo_buf_cleanup(&buf);
    mgo_arena_cleanup(&arena);
    if (err == MGO_OK)
        publish_caps(s);
    return err;
}

const uint8_t *mgo_session_caps(const struct mgo_session *s, size_t *len_out)
{
    *len_out = s->caps_len;
    return s->caps_bytes;
}

/* ---- connecting ------------------------------------------------------------------------ */

static void attempt(void *ctx);

static void arm_attempt(struct mgo_session *s, int64_t delay_ms)
{
    mgo_loop_timer_cancel(s->loop, s->attempt_timer);
    s->attempt_timer = 0;
    if (mgo_loop_timer_add(s->loop, delay_ms, attempt, s, &s->attempt_timer) != MGO_OK)
        MGO_LOGE(TAG, "reconnect timer not set: out of memory");
}

static void schedule_reconnect(struct mgo_session *s, const char *why)
{
    uint32_t delay = mgo_backoff_next_ms(&s->backoff);
    arm_attempt(s, delay);
    if (s->in_downtime)
        MGO_LOGD(TAG, "%s (downtime window)", why);
    else
        MGO_LOGW(TAG, "%s; next attempt in %u ms", why, delay);
}

/* Connection attempt timer: outside downtime windows, connect unless already (being)
 * connected; inside one, look again when it ends. */
static void attempt(void *ctx)
{
    struct mgo_session *s = ctx;
    s->attempt_timer = 0;
    time_t now = time(NULL), ends = 0;
    bool down = mgo_downtime_active(s->downtime, s->downtime_len, now, &ends);
    if (down != s->in_downtime) {
        s->in_downtime = down;
        if (down)
            MGO_LOGI(TAG, "downtime window until %lld (UTC seconds); no connection attempts",
                     (long long)ends);
        else
            MGO_LOGI(TAG, "downtime window over");
    }
    if (down) {
        int64_t wait_ms = ends > now ? (int64_t)(ends - now) * 1000 : 1000;
        arm_attempt(s, wait_ms < DOWNTIME_CHECK_MAX_MS ? wait_ms : DOWNTIME_CHECK_MAX_MS);
        return;
    }
    if (s->connected || s->connecting)
        return;
    if (mgo_mqtt_connect(s->mqtt) == MGO_OK)
        s->connecting = true;
    else
        schedule_reconnect(s, "connect could not start");
}

static void subscribe(struct mgo_session *s, enum mgo_topic_kind kind)
{
    char filter[MGO_MAX_TOPIC_LEN + 1];
    if (mgo_topic_filter(s->cfg->topic_prefix, kind, s->cfg->device_id, filter, sizeof filter) ==
            MGO_OK &&
        mgo_mqtt_subscribe(s->mqtt, filter, mgo_topic_qos(kind), NULL) != MGO_OK)
        MGO_LOGW(TAG, "subscribe %s failed", filter);
}

static void on_connected(struct mgo_session *s, bool session_present)
{
    s->connected = true;
    s->connecting = false;
    mgo_backoff_reset(&s->backoff);
    MGO_LOGI(TAG, "connected (session %s)", session_present ? "resumed" : "new");
    struct mgo_buf buf;
    mgo_buf_init(&buf, 4096);
    if (encode_presence(s, true, true, &buf) == MGO_OK &&
        mgo_session_publish(s, MGO_TOPIC_STATE, NULL, buf.data, buf.len, NULL) != MGO_OK)
        MGO_LOGW(TAG, "presence not published");
    mgo_buf_cleanup(&buf);
    s->caps_published = false;
    publish_caps(s);
    subscribe(s, MGO_TOPIC_DESIRED);
    subscribe(s, MGO_TOPIC_DEPLOYMENT);
    subscribe(s, MGO_TOPIC_RECEIPT);
    if (s->h.connected != NULL)
        s->h.connected(s->h.ctx, session_present);
}

/* ---- receiving --------------------------------------------------------------------------- */

/* With manager keys configured, a non-empty manifest or deployment document must carry a
 * valid signature by one of them, made for this device; checked before anything decodes,
 * stores or plans it. An empty payload (a retained message cleared) carries nothing to act
 * on and is let through. On failure: one event "signature-invalid" (it logs one line). */
static bool signature_ok(struct mgo_session *s, const struct mgo_topic *t, const uint8_t *payload,
                         size_t len)
{
    if (s->keys_len == 0 || len == 0)
        return true;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    char why[MGO_SIGN_WHY_SIZE] = "";
    mgo_err err =
        mgo_sign_verify_msgpack((const struct mgo_verify_key *const *)s->keys, s->keys_len, payload,
                                len, s->cfg->device_id, &arena, why);
    mgo_arena_cleanup(&arena);
    if (err == MGO_OK)
        return true;
    if (why[0] == '\0')
        snprintf(why, sizeof why, "signature not verified: %s", mgo_strerror(err));
    const char *dep_id = t->kind == MGO_TOPIC_DEPLOYMENT ? t->deployment_id : NULL;
    char msg[MGO_SIGN_WHY_SIZE + 64];
    snprintf(msg, sizeof msg, "%s refused: %s",
             t->kind == MGO_TOPIC_DESIRED ? "desired-state manifest" : "deployment document", why);
    mgo_session_event(s, "signature-invalid", "error", dep_id, false, 0, msg);
    return false;
}

/* A receipt that does not decode or names another device is logged and ignored: it can
 * only make the agent keep its journal longer (docs/protocol.md §6.3). */
static void on_receipt(struct mgo_session *s, const uint8_t *payload, size_t len)
{
    if (len == 0 || s->h.receipt == NULL)
        return; /* a cleared receipt: nothing stored to report */
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems probs;
    mgo_problems_init(&probs);
    struct mgo_receipt r;
    if (mgo_receipt_decode(payload, len, &arena, &r, &probs) != MGO_OK) {
        char why[256];
        mgo_problems_format(&probs, why, sizeof why);
        MGO_LOGW(TAG, "receipt refused: %s", why);
    } else if (strcmp(r.device_id, s->cfg->device_id) != 0) {
        MGO_LOGW(TAG, "receipt refused: deviceId %.128s is not this device", r.device_id);
    } else {
        s->h.receipt(s->h.ctx, &r);
    }
    mgo_arena_cleanup(&arena);
}

static void on_message(struct mgo_session *s, const struct mgo_mqtt_event *ev)
{
    struct mgo_topic t;
    if (ev->topic == NULL ||
        mgo_topic_parse(s->cfg->topic_prefix, ev->topic, strlen(ev->topic), &t) != MGO_OK ||
        strcmp(t.device_id, s->cfg->device_id) != 0) {
        MGO_LOGW(TAG, "message on an unexpected topic ignored");
        return;
    }
    if (ev->payload_len > MGO_MAX_MESSAGE_BYTES) {
        mgo_session_event(s, "message-too-large", "error", NULL, false, 0,
                          "message larger than the limit refused");
        return;
    }
    if ((t.kind == MGO_TOPIC_DESIRED || t.kind == MGO_TOPIC_DEPLOYMENT) &&
        !signature_ok(s, &t, ev->payload, ev->payload_len))
        return; /* dropped: the current state and any pending manifest stay as they are */
    if (t.kind == MGO_TOPIC_DESIRED && s->h.desired != NULL)
        s->h.desired(s->h.ctx, ev->payload, ev->payload_len);
    else if (t.kind == MGO_TOPIC_DEPLOYMENT && s->h.deployment != NULL)
        s->h.deployment(s->h.ctx, t.deployment_id, ev->payload, ev->payload_len);
    else if (t.kind == MGO_TOPIC_RECEIPT)
        on_receipt(s, ev->payload, ev->payload_len);
}

static void handle_event(struct mgo_session *s, const struct mgo_mqtt_event *ev)
{
    switch (ev->kind) {
    case MGO_MQTT_EV_CONNECTED:
        on_connected(s, ev->session_present);
        break;
    case MGO_MQTT_EV_CONNECT_FAILED: {
        s->connecting = false;
        s->connected = false;
        char why[64];
        snprintf(why, sizeof why, "connect failed (reason %d)", ev->reason);
        schedule_reconnect(s, why);
        break;
    }
    case MGO_MQTT_EV_DISCONNECTED:
        s->connected = false;
        s->connecting = false;
        if (s->h.disconnected != NULL)
            s->h.disconnected(s->h.ctx);
        schedule_reconnect(s, "connection lost");
        break;
    case MGO_MQTT_EV_PUBLISHED:
    case MGO_MQTT_EV_PUBLISH_FAILED:
        if (s->h.published != NULL)
            s->h.published(s->h.ctx, ev->token, ev->kind == MGO_MQTT_EV_PUBLISHED);
        break;
    case MGO_MQTT_EV_MESSAGE:
        on_message(s, ev);
        break;
    default:
        break;
    }
}

static void drain(void *ctx)
{
    struct mgo_session *s = ctx;
    struct mgo_mqtt_event ev;
    for (int k = 0; k < DRAIN_BATCH; k++) {
        if (mgo_mqtt_next(s->mqtt, 0, &ev) != MGO_OK)
            return; /* empty: the readiness is consumed */
        handle_event(s, &ev);
        mgo_mqtt_event_cleanup(&ev);
    }
    /* more may wait: continue after what else is due (loop.h: a 0 ms timer) */
    if (mgo_loop_timer_add(s->loop, 0, drain, s, NULL) != MGO_OK)
        MGO_LOGE(TAG, "mqtt drain not continued: out of memory");
}

static void on_ready(void *ctx, int fd, short revents)
{
    (void)fd;
    (void)revents;
    drain(ctx);
}

/* ---- life ------------------------------------------------------------------------------- */

mgo_err mgo_session_new(const struct mgo_agent_config *cfg, struct mgo_loop *loop,
                        const struct mgo_session_handlers *h, struct mgo_session **out)
{
    struct mgo_session *s = calloc(1, sizeof *s);
    if (s == NULL)
        return MGO_ERR_NOMEM;
    s->cfg = cfg;
    s->loop = loop;
    s->h = *h;
    mgo_buf_init(&s->will, 4096);
    mgo_err err = MGO_OK;
    for (size_t i = 0; i < cfg->manager_public_key.len && i < MGO_SESSION_MAX_KEYS; i++) {
        err = mgo_verify_key_load(cfg->manager_public_key.items[i], &s->keys[s->keys_len]);
        if (err != MGO_OK) {
            MGO_LOGE(TAG,
                     "manager-public-key %s: %s (an EC P-256 public key or certificate in "
                     "PEM is required); not starting",
                     cfg->manager_public_key.items[i], mgo_strerror(err));
            goto fail;
        }
        MGO_LOGI(TAG, "manager key %s (%s)", mgo_verify_key_id(s->keys[s->keys_len]),
                 cfg->manager_public_key.items[i]);
        s->keys_len++;
    }
    /* over HTTP the trust is mutual TLS and documents carry no signature (docs/agent.md) */
    if (s->keys_len == 0 && (cfg->transport == NULL || strcmp(cfg->transport, "http") != 0))
        MGO_LOGW(TAG, "no manager-public-key: desired state is accepted without a signature");
    for (size_t i = 0; i < cfg->downtime.len && i < MGO_SESSION_MAX_DOWNTIME; i++) {
        char why[256];
        if (mgo_downtime_parse(cfg->downtime.items[i], &s->downtime[s->downtime_len], why,
                               sizeof why) == MGO_OK)
            s->downtime_len++;
    }
    *out = s;
    return MGO_OK;
fail:
    mgo_session_free(s);
    return err;
}

mgo_err mgo_session_start(struct mgo_session *s, uint64_t boot)
{
    const struct mgo_agent_config *cfg = s->cfg;
    s->boot = boot;
    const char *state_topic = topic(s, MGO_TOPIC_STATE, NULL);
    snprintf(s->will_topic, sizeof s->will_topic, "%s", state_topic ? state_topic : "");
    mgo_err err = encode_presence(s, false, false, &s->will);
    if (err != MGO_OK)
        return err;
    if (cfg->password_file != NULL) {
        err = mgo_secret_read(cfg->password_file, s->password, sizeof s->password, NULL);
        if (err != MGO_OK) {
            MGO_LOGE(TAG, "password-file %s: %s", cfg->password_file, mgo_strerror(err));
            return err;
        }
    }
    struct mgo_mqtt_will w = {s->will_topic, s->will.data, s->will.len,
                              mgo_topic_qos(MGO_TOPIC_STATE), mgo_topic_retained(MGO_TOPIC_STATE)};
    struct mgo_mqtt_config mc = {
        .url = cfg->broker_url,
        .client_id = cfg->device_id,
        .clean_start = false,
        .session_expiry_s = (uint32_t)cfg->session_expiry_s,
        .keepalive_s = (uint16_t)cfg->keepalive_s,
        .ca_file = cfg->ca_file,
        .cert_file = cfg->cert_file,
        .key_file = cfg->key_file,
        .username = cfg->username,
        .password = cfg->password_file ? s->password : NULL,
        .will = &w,
    };
    err = mgo_mqtt_new(&mc, &s->mqtt);
    if (err != MGO_OK) {
        MGO_LOGE(TAG, "mqtt client: %s", mgo_strerror(err));
        return err;
    }
    mgo_backoff_init(&s->backoff, (uint32_t)cfg->backoff_min_ms, (uint32_t)cfg->backoff_max_ms,
                     (uint64_t)wall_ms() ^ ((uint64_t)getpid() << 32) ^ boot);
    err = mgo_loop_watch(s->loop, mgo_mqtt_fd(s->mqtt), POLLIN, on_ready, s);
    if (err != MGO_OK)
        return err;
    s->watching = true;
    arm_attempt(s, 0);
    return MGO_OK;
}

mgo_err mgo_session_reload_tls(struct mgo_session *s, const char *ca_file, const char *cert_file,
                               const char *key_file, bool *dropped_out)
{
    *dropped_out = false;
    if (s->mqtt == NULL)
        return MGO_OK;
    return mgo_mqtt_reload_tls(s->mqtt, ca_file, cert_file, key_file, dropped_out);
}

void mgo_session_free(struct mgo_session *s)
{
    if (s == NULL)
        return;
    if (s->watching) {
        mgo_loop_unwatch(s->loop, mgo_mqtt_fd(s->mqtt));
        mgo_loop_timer_cancel(s->loop, s->attempt_timer);
    }
    if (s->mqtt != NULL && s->connected) {
        /* say offline ourselves: a clean disconnect does not fire the will */
        struct mgo_buf off;
        mgo_buf_init(&off, 4096);
        if (encode_presence(s, false, true, &off) == MGO_OK &&
            mgo_session_publish(s, MGO_TOPIC_STATE, NULL, off.data, off.len, NULL) == MGO_OK) {
            /* give the broker a moment to acknowledge it and pending statuses */
            int64_t until = mgo_loop_now_ms() + 2000;
            struct mgo_mqtt_event ev;
            while (mgo_loop_now_ms() < until && mgo_mqtt_next(s->mqtt, 100, &ev) == MGO_OK) {
                if (ev.kind == MGO_MQTT_EV_PUBLISHED && s->h.published != NULL)
                    s->h.published(s->h.ctx, ev.token, true);
                mgo_mqtt_event_cleanup(&ev);
            }
        }
        mgo_buf_cleanup(&off);
        if (mgo_mqtt_disconnect(s->mqtt, 2000) != MGO_OK)
            MGO_LOGW(TAG, "disconnect not clean");
    }
    mgo_mqtt_free(s->mqtt);
    mgo_buf_cleanup(&s->will);
    free(s->caps_bytes);
    memset(s->password, 0, sizeof s->password);
    for (size_t i = 0; i < s->keys_len; i++)
        mgo_verify_key_free(s->keys[i]);
    free(s);
}
