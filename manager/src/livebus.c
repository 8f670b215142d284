/* livebus.c - live events across several managers through PostgreSQL LISTEN/NOTIFY
 * (livebus.h). One connection of its own, driven by the loop without blocking: connected
 * with PQconnectStart/PQconnectPoll, LISTEN sent with PQsendQuery, notifications read with
 * PQconsumeInput/PQnotifies when the socket is readable. */
#include "livebus.h"

#include <libpq-fe.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "events.h"
#include "jw.h"
#include "mgo/limits.h"
#include "mgo/log.h"

#define TAG "livebus"
#define RETRY_FIRST_MS 1000
#define RETRY_MAX_MS 30000
#define CONNECT_TIMEOUT_MS 10000 /* a connection (and its LISTEN) not made by then is given up */
#define STATUS_REF "status-ref"

enum bus_state { BUS_IDLE, BUS_CONNECTING, BUS_LISTEN_SENT, BUS_LISTENING };

struct mgo_livebus {
    struct mgo_loop *loop;
    struct mgo_mgr_store *store;
    struct mgo_sse_hub *hub;
    char *url;
    PGconn *conn;
    int fd; /* watched socket; -1: none */
    short fd_events;
    enum bus_state state;
    uint64_t retry_timer;
    uint64_t deadline_timer; /* CONNECT_TIMEOUT_MS after a connection attempt started */
    int retry_ms;
    bool was_up; /* the connection was listening before (a loss is logged once) */
    uint64_t relayed;
    /* the parts of a long event so far (see livebus.h); parts_next 0: none */
    struct mgo_buf parts;
    unsigned parts_next;
    char parts_event[32];
    char parts_dep[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
};

static void start_connect(void *ctx);

static void unwatch(struct mgo_livebus *b)
{
    if (b->fd >= 0)
        mgo_loop_unwatch(b->loop, b->fd);
    b->fd = -1;
}

/* The connection is gone (or never came): close it, end every stream (each client starts
 * again from a snapshot, having missed nothing unnoticed) and try again after a backoff. */
static void lost(struct mgo_livebus *b, const char *why)
{
    mgo_loop_timer_cancel(b->loop, b->deadline_timer);
    b->deadline_timer = 0;
    unwatch(b);
    if (b->conn) {
        if (b->was_up || b->state != BUS_CONNECTING)
            MGO_LOGW(TAG,
                     "%s: %s; live events from other managers stop until it is back; "
                     "open event streams are ended (their clients reconnect)",
                     why, PQerrorMessage(b->conn));
        else
            MGO_LOGD(TAG, "%s: %s", why, PQerrorMessage(b->conn));
        PQfinish(b->conn);
        b->conn = NULL;
    }
    if (b->was_up)
        mgo_sse__end_all(b->hub);
    b->was_up = false;
    mgo_buf_reset(&b->parts); /* a long event cut by the loss: its streams were ended */
    b->parts_next = 0;
    b->state = BUS_IDLE;
    if (mgo_loop_timer_add(b->loop, b->retry_ms, start_connect, b, &b->retry_timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: the live event connection is not made again");
    b->retry_ms = b->retry_ms * 2 > RETRY_MAX_MS ? RETRY_MAX_MS : b->retry_ms * 2;
}

static void on_ready(void *ctx, int fd, short revents);

/* Watches the connection's socket (which PQconnectPoll may change) for events. */
static bool watch(struct mgo_livebus *b, short events)
{
    int fd = PQsocket(b->conn);
    if (fd == b->fd && events == b->fd_events)
        return true;
    unwatch(b);
    if (fd < 0 || mgo_loop_watch(b->loop, fd, events, on_ready, b) != MGO_OK)
        return false;
    b->fd = fd;
    b->fd_events = events;
    return true;
}

/* A status reference: the deployment's current status, read from the store. */
struct ref_ctx {
    uint64_t manifest_version;
    char desired[16];
    struct mgo_buf *buf;
};

static mgo_err ref_desired(const struct mgo_mgr_deployment_row *row, void *c)
{
    struct ref_ctx *r = c;
    snprintf(r->desired, sizeof r->desired, "%s", mgo_mgr_desired_name(row->desired));
    r->manifest_version = row->manifest_version;
    return MGO_OK;
}

static mgo_err ref_status(const struct mgo_mgr_status_row *row, void *c)
{
    struct ref_ctx *r = c;
    struct mgo_jw w;
    mgo_jw_init(&w, r->buf);
    mgo_jw_obj(&w);
    mgo_events__status(&w, row, r->desired, r->manifest_version, false);
    mgo_jw_obj_end(&w);
    return w.err;
}

static void relay_status_ref(struct mgo_livebus *b, const char *deployment_id)
{
    if (!mgo_sse__wanted(b->hub, deployment_id))
        return;
    struct mgo_buf buf;
    mgo_buf_init(&buf, 8u * MGO_MAX_MESSAGE_BYTES);
    struct ref_ctx r = {0, "", &buf};
    mgo_err err = mgo_mgr_store_deployment_get(b->store, deployment_id, ref_desired, &r);
    if (!err)
        err = mgo_mgr_store_status_get(b->store, deployment_id, ref_status, &r);
    if (!err)
        mgo_sse__publish(b->hub, "status", deployment_id, (const char *)buf.data);
    else
        MGO_LOGW(TAG, "status of deployment %.64s not relayed: %s", deployment_id,
                 mgo_strerror(err));
    mgo_buf_cleanup(&buf);
}

static void drop_parts(struct mgo_livebus *b)
{
    mgo_buf_reset(&b->parts);
    b->parts_next = 0;
    b->parts_event[0] = b->parts_dep[0] = '\0';
}

/* Part k (1, 2, ...) of a long event; out of turn, or past MGO_LIVEBUS_EVENT_MAX: dropped. */
static void add_part(struct mgo_livebus *b, const char *event, const char *dep, unsigned long k,
                     const char *data)
{
    if (k == 1) {
        drop_parts(b);
        snprintf(b->parts_event, sizeof b->parts_event, "%s", event);
        snprintf(b->parts_dep, sizeof b->parts_dep, "%s", dep);
    } else if (k != b->parts_next || strcmp(event, b->parts_event) != 0 ||
               strcmp(dep, b->parts_dep) != 0) {
        MGO_LOGW(TAG, "part %lu of a long %.32s event out of turn: the event is not relayed", k,
                 event);
        drop_parts(b);
        return;
    }
    if (mgo_buf_append_str(&b->parts, data) != MGO_OK) {
        MGO_LOGW(TAG, "a long %.32s event past %u bytes: not relayed", event,
                 MGO_LIVEBUS_EVENT_MAX);
        drop_parts(b);
        return;
    }
    b->parts_next = (unsigned)k + 1;
}

/* A whole notification while parts are kept: their last part (returns the whole event's
 * JSON, valid until the next notification; NULL: past the bound, not relayed), or an event
 * of its own (the parts had no last part: dropped; returns json). */
static const char *join_parts(struct mgo_livebus *b, const char *event, const char *dep,
                              const char *json)
{
    if (strcmp(event, b->parts_event) != 0 || strcmp(dep, b->parts_dep) != 0) {
        MGO_LOGW(TAG, "a long %.32s event without its last part: not relayed", b->parts_event);
        drop_parts(b);
        return json;
    }
    b->parts_next = 0;
    if (mgo_buf_append_str(&b->parts, json) != MGO_OK) {
        MGO_LOGW(TAG, "a long %.32s event past %u bytes: not relayed", event,
                 MGO_LIVEBUS_EVENT_MAX);
        return NULL;
    }
    return (const char *)b->parts.data;
}

/* One notification: "EVENT\tDEPLOYMENT\tJSON". Anything else is logged and skipped (another
 * program may NOTIFY on the channel too). */
static void relay(struct mgo_livebus *b, char *payload)
{
    char *t1 = strchr(payload, '\t');
    char *t2 = t1 ? strchr(t1 + 1, '\t') : NULL;
    if (!t2 || t1 == payload || (size_t)(t2 - t1 - 1) > MGO_MAX_DEPLOYMENT_ID_LEN) {
        MGO_LOGW(TAG, "a notification on %s that is not EVENT<tab>DEPLOYMENT<tab>JSON: skipped",
                 MGO_LIVEBUS_CHANNEL);
        return;
    }
    *t1 = *t2 = '\0';
    const char *event = payload, *dep = t1 + 1, *json = t2 + 1;
    const char *deployment_id = dep[0] ? dep : NULL;
    char *plus = strchr(payload, '+');
    if (plus != NULL) { /* part K of a long event: kept until its last part */
        *plus = '\0';
        add_part(b, event, dep, strtoul(plus + 1, NULL, 10), json);
        return;
    }
    if (b->parts_next > 0) { /* the last part */
        json = join_parts(b, event, dep, json);
        if (json == NULL)
            return;
    }
    b->relayed++;
    if (strcmp(event, STATUS_REF) == 0 && deployment_id)
        relay_status_ref(b, deployment_id);
    else
        mgo_sse__publish(b->hub, event, deployment_id, json);
}

static void read_notifications(struct mgo_livebus *b)
{
    if (!PQconsumeInput(b->conn)) {
        lost(b, "live event connection lost");
        return;
    }
    /* the LISTEN's result (and any other) */
    while (!PQisBusy(b->conn)) {
        PGresult *res = PQgetResult(b->conn);
        if (res == NULL)
            break;
        if (PQresultStatus(res) != PGRES_COMMAND_OK) {
            MGO_LOGW(TAG, "LISTEN %s: %s", MGO_LIVEBUS_CHANNEL, PQresultErrorMessage(res));
            PQclear(res);
            lost(b, "LISTEN failed");
            return;
        }
        PQclear(res);
        if (b->state == BUS_LISTEN_SENT) {
            mgo_loop_timer_cancel(b->loop, b->deadline_timer);
            b->deadline_timer = 0;
            b->state = BUS_LISTENING;
            b->was_up = true;
            b->retry_ms = RETRY_FIRST_MS;
            MGO_LOGI(TAG, "listening on %s: live events of every manager of the group",
                     MGO_LIVEBUS_CHANNEL);
        }
    }
    PGnotify *n;
    while ((n = PQnotifies(b->conn)) != NULL) {
        if (b->state == BUS_LISTENING)
            relay(b, n->extra);
        PQfreemem(n);
    }
}

static void connect_step(struct mgo_livebus *b)
{
    switch (PQconnectPoll(b->conn)) {
    case PGRES_POLLING_READING:
        if (!watch(b, POLLIN))
            lost(b, "live event connection: socket not watched");
        return;
    case PGRES_POLLING_WRITING:
        if (!watch(b, POLLOUT))
            lost(b, "live event connection: socket not watched");
        return;
    case PGRES_POLLING_OK:
        break;
    default:
        lost(b, "live event connection failed");
        return;
    }
    if (PQsetnonblocking(b->conn, 1) != 0 || !PQsendQuery(b->conn, "LISTEN " MGO_LIVEBUS_CHANNEL) ||
        PQflush(b->conn) != 0 || !watch(b, POLLIN)) {
        lost(b, "LISTEN not sent");
        return;
    }
    b->state = BUS_LISTEN_SENT;
}

static void on_ready(void *ctx, int fd, short revents)
{
    (void)fd;
    (void)revents;
    struct mgo_livebus *b = ctx;
    if (b->state == BUS_CONNECTING)
        connect_step(b);
    else
        read_notifications(b);
}

/* Timer: the connection attempt took too long (a host that does not answer). */
static void connect_deadline(void *ctx)
{
    struct mgo_livebus *b = ctx;
    b->deadline_timer = 0;
    if (b->state == BUS_CONNECTING || b->state == BUS_LISTEN_SENT)
        lost(b, "live event connection not made within 10 s");
}

static void start_connect(void *ctx)
{
    struct mgo_livebus *b = ctx;
    b->retry_timer = 0;
    b->conn = PQconnectStart(b->url);
    if (b->conn == NULL) {
        MGO_LOGE(TAG, "out of memory: no live event connection");
        return;
    }
    b->state = BUS_CONNECTING;
    if (mgo_loop_timer_add(b->loop, CONNECT_TIMEOUT_MS, connect_deadline, b, &b->deadline_timer) !=
        MGO_OK) {
        lost(b, "out of memory");
        return;
    }
    if (PQstatus(b->conn) == CONNECTION_BAD) {
        lost(b, "live event connection failed");
        return;
    }
    connect_step(b);
}

mgo_err mgo_livebus__new(struct mgo_loop *loop, const char *url, struct mgo_mgr_store *store,
                         struct mgo_sse_hub *hub, struct mgo_livebus **out)
{
    struct mgo_livebus *b = calloc(1, sizeof *b);
    if (!b)
        return MGO_ERR_NOMEM;
    b->loop = loop;
    b->store = store;
    b->hub = hub;
    b->fd = -1;
    b->retry_ms = RETRY_FIRST_MS;
    mgo_buf_init(&b->parts, MGO_LIVEBUS_EVENT_MAX + 1u);
    b->url = strdup(url);
    if (!b->url || mgo_loop_timer_add(loop, 0, start_connect, b, &b->retry_timer) != MGO_OK) {
        free(b->url);
        free(b);
        return MGO_ERR_NOMEM;
    }
    *out = b;
    return MGO_OK;
}

void mgo_livebus__free(struct mgo_livebus *b)
{
    if (!b)
        return;
    mgo_loop_timer_cancel(b->loop, b->retry_timer);
    mgo_loop_timer_cancel(b->loop, b->deadline_timer);
    unwatch(b);
    if (b->conn)
        PQfinish(b->conn);
    mgo_buf_cleanup(&b->parts);
    free(b->url);
    free(b);
}

bool mgo_livebus__listening(const struct mgo_livebus *b)
{
    return b != NULL && b->state == BUS_LISTENING;
}

uint64_t mgo_livebus__relayed(const struct mgo_livebus *b)
{
    return b ? b->relayed : 0;
}

/* What a part's event name gains at most: "+K" with K below MGO_LIVEBUS_EVENT_MAX. */
#define PART_SUFFIX_MAX 7u

/* One event's payloads appended to out, each NUL-terminated; *n: how many. */
static mgo_err append_payloads(const char *event, const char *deployment_id, const char *json,
                               struct mgo_buf *out, size_t *n)
{
    const char *dep = deployment_id ? deployment_id : "";
    *n = 0;
    size_t len = strlen(json), head = strlen(event) + strlen(dep) + 2;
    mgo_err err;
    if (head + len < MGO_MGR_NOTIFY_MAX) {
        err = mgo_buf_printf(out, "%s\t%s\t%s", event, dep, json);
    } else if (strcmp(event, "status") == 0 && deployment_id) {
        err = mgo_buf_printf(out, STATUS_REF "\t%s\t", dep);
    } else {
        if (len > MGO_LIVEBUS_EVENT_MAX || head + PART_SUFFIX_MAX + 8 >= MGO_MGR_NOTIFY_MAX)
            return MGO_ERR_LIMIT;
        size_t room = MGO_MGR_NOTIFY_MAX - 1 - head - PART_SUFFIX_MAX, off = 0;
        unsigned k = 0;
        err = MGO_OK;
        while (!err && off < len) {
            size_t take = len - off;
            if (take > room) { /* not inside a UTF-8 sequence: back to its first byte */
                take = room;
                while (take > 1 && ((unsigned char)json[off + take] & 0xC0u) == 0x80u)
                    take--;
            }
            k++;
            if (off + take < len)
                err = mgo_buf_printf(out, "%s+%u\t%s\t%.*s", event, k, dep, (int)take, json + off);
            else
                err = mgo_buf_printf(out, "%s\t%s\t%.*s", event, dep, (int)take, json + off);
            if (!err)
                err = mgo_buf_append(out, "", 1);
            off += take;
        }
        *n = err ? 0 : k;
        return err;
    }
    if (!err)
        err = mgo_buf_append(out, "", 1);
    *n = err ? 0 : 1;
    return err;
}

mgo_err mgo_livebus__payloads(const char *event, const char *deployment_id, const char *json,
                              struct mgo_buf *out, size_t *n)
{
    size_t mark = out->len;
    mgo_err err = append_payloads(event, deployment_id, json, out, n);
    if (err) { /* none of this event's payloads stays */
        out->len = mark;
        if (out->data)
            out->data[mark] = '\0';
        *n = 0;
    }
    return err;
}

mgo_err mgo_livebus__send(struct mgo_mgr_store *store, const struct mgo_buf *payloads, size_t n)
{
    if (n == 0)
        return MGO_OK;
    const char **each = calloc(n, sizeof *each);
    if (each == NULL)
        return MGO_ERR_NOMEM;
    const char *p = (const char *)payloads->data;
    for (size_t i = 0; i < n; i++, p += strlen(p) + 1)
        each[i] = p;
    mgo_err err = mgo_mgr_store_notify(store, MGO_LIVEBUS_CHANNEL, each, n);
    free(each);
    return err;
}

mgo_err mgo_livebus__notify(struct mgo_mgr_store *store, const char *event,
                            const char *deployment_id, const char *json)
{
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_LIVEBUS_EVENT_MAX + 16u * MGO_MGR_NOTIFY_MAX);
    size_t n = 0;
    mgo_err err = mgo_livebus__payloads(event, deployment_id, json, &buf, &n);
    if (!err)
        err = mgo_livebus__send(store, &buf, n);
    mgo_buf_cleanup(&buf);
    return err;
}
