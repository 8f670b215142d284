/* metrics.c - the manager's metrics, GET /metrics in the Prometheus text format 0.0.4, and
 * the health answers /healthz and /readyz (docs/operations.md "Metrics" and "Health"). */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "api.h"
#include "rollout.h"
#include "metrics.h"
#include "mgo/log.h"

#define TAG "metrics"

static const char *const KIND_NAMES[MGO_MM_KINDS] = {"status",   "replay", "capabilities",
                                                     "presence", "event",  "other"};
static const char *const RESULT_NAMES[MGO_MM_RESULTS] = {"handled", "held", "dropped"};

/* Route labels besides the API's templates: the probes, and "other" for anything else
 * (unknown paths), so the label's values are bounded. The web front end's files are served by
 * the HTTP threads and not counted. */
static const char *const PROBES[] = {"/metrics", "/healthz", "/readyz"};
#define OTHER_ROUTE "other"
static const char *const METHODS[MGO_MM_METHODS] = {"GET",    "POST", "PUT",     "PATCH",
                                                    "DELETE", "HEAD", "OPTIONS", "OTHER"};
/* Status codes counted one by one; any other is counted as code="other". */
static const unsigned CODES[MGO_MM_CODES - 1] = {200, 201, 202, 204, 206, 301, 302, 304,
                                                 400, 401, 403, 404, 405, 406, 409, 412,
                                                 413, 414, 415, 422, 429, 500, 503};

void mgo_mgr_metrics_init(struct mgo_mgr_metrics *mm)
{
    memset(mm, 0, sizeof *mm);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    mm->start_time_s = (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0;
    /* the route labels: every template of the API's route table once, the probes, "other" */
    size_t n = 0;
    const struct mgo_api_route *rt = mgo_api__routes(&n);
    for (size_t i = 0; i < n && mm->routes_len < MGO_MM_ROUTES - 4; i++) {
        bool seen = false;
        for (size_t k = 0; k < mm->routes_len && !seen; k++)
            seen = strcmp(mm->routes[k], rt[i].path) == 0;
        if (!seen)
            mm->routes[mm->routes_len++] = rt[i].path;
    }
    for (size_t i = 0; i < sizeof PROBES / sizeof PROBES[0]; i++)
        mm->routes[mm->routes_len++] = PROBES[i];
    mm->routes[mm->routes_len++] = OTHER_ROUTE; /* last: mgo_mgr_metrics__http relies on it */
    mgo_histogram_init(&mm->ingest_batch, mgo_metrics_latency_bounds,
                       mgo_metrics_latency_bounds_len);
    mgo_histogram_init(&mm->store_write, mgo_metrics_latency_bounds,
                       mgo_metrics_latency_bounds_len);
    mgo_histogram_init(&mm->store_commit, mgo_metrics_latency_bounds,
                       mgo_metrics_latency_bounds_len);
}

bool mgo_mgr_metrics__owns(const char *path)
{
    return strcmp(path, "/metrics") == 0 || strcmp(path, "/healthz") == 0 ||
           strcmp(path, "/readyz") == 0;
}

const char *mgo_mgr_metrics__route(const char *path)
{
    if (mgo_mgr_metrics__owns(path))
        return path;
    const char *t = mgo_api__template(path);
    return t != NULL ? t : OTHER_ROUTE;
}

void mgo_mgr_metrics__http(struct mgo_mgr_metrics *mm, const char *method, const char *path,
                           unsigned status)
{
    const char *route = mgo_mgr_metrics__route(path);
    size_t r = mm->routes_len - 1; /* "other" */
    for (size_t i = 0; i < mm->routes_len; i++) {
        if (strcmp(mm->routes[i], route) == 0) {
            r = i;
            break;
        }
    }
    size_t m = MGO_MM_METHODS - 1;
    for (size_t i = 0; i < MGO_MM_METHODS - 1; i++) {
        if (strcmp(METHODS[i], method) == 0) {
            m = i;
            break;
        }
    }
    size_t c = MGO_MM_CODES - 1;
    for (size_t i = 0; i < MGO_MM_CODES - 1; i++) {
        if (CODES[i] == status) {
            c = i;
            break;
        }
    }
    mgo_counter_inc(&mm->http[r][m][c]);
}

/* ---- GET /metrics ------------------------------------------------------------------------ */

static mgo_err dep_visit(const struct mgo_mgr_state_count *row, void *c)
{
    struct mgo_metrics_label l[] = {{"app", row->app_id ? row->app_id : ""},
                                    {"state", row->state ? row->state : "unreported"}};
    return mgo_metrics_sample_u64(c, "margo_deployments", l, 2, row->count);
}

/* counts[i]: rollouts in mgo_rollout__states[i] */
static mgo_err rollout_visit(const struct mgo_mgr_state_count *row, void *c)
{
    uint64_t *counts = c;
    for (size_t i = 0; row->state != NULL && i < mgo_rollout__states_len; i++)
        if (strcmp(row->state, mgo_rollout__states[i]) == 0)
            counts[i] = row->count;
    return MGO_OK;
}

static mgo_err write_store_gauges(const struct mgo_mgr_probe *p, struct mgo_buf *b)
{
    uint64_t online = 0, offline = 0;
    mgo_err err = mgo_mgr_store_device_counts(p->store, &online, &offline);
    if (!err)
        err = mgo_metrics_family(b, "margo_devices", "gauge",
                                 "Known devices by presence (online: the last presence said "
                                 "online; offline: every other device).");
    if (!err)
        err = mgo_metrics_sample_u64(b, "margo_devices",
                                     &(struct mgo_metrics_label){"state", "online"}, 1, online);
    if (!err)
        err = mgo_metrics_sample_u64(b, "margo_devices",
                                     &(struct mgo_metrics_label){"state", "offline"}, 1, offline);
    if (!err)
        err = mgo_metrics_family(b, "margo_deployments", "gauge",
                                 "Deployments not removed, by app and last reported state "
                                 "(unreported: no status yet).");
    /* bounded: the catalog's apps times the six states */
    if (!err)
        err = mgo_mgr_store_deployment_states(p->store, true, dep_visit, b);
    uint64_t counts[16] = {0};
    _Static_assert(sizeof counts / sizeof counts[0] >= 7, "one count per rollout state");
    if (!err)
        err = mgo_mgr_store_rollout_states(p->store, rollout_visit, counts);
    if (!err)
        err = mgo_metrics_family(b, "margo_rollouts", "gauge",
                                 "Rollouts by state (docs/rollouts.md \"States\"), every state "
                                 "(0 when none is in it).");
    for (size_t i = 0; i < mgo_rollout__states_len && i < 16 && !err; i++) {
        struct mgo_metrics_label l = {"state", mgo_rollout__states[i]};
        err = mgo_metrics_sample_u64(b, "margo_rollouts", &l, 1, counts[i]);
    }
    return err;
}

static mgo_err write_ingest(const struct mgo_mgr_metrics *mm, struct mgo_buf *b)
{
    mgo_err err = mgo_metrics_family(b, "margo_ingest_messages_total", "counter",
                                     "Device messages ingested, by kind and result (handled: "
                                     "stored or refused for good; held: put on hold for the "
                                     "store; dropped: lost from a full hold).");
    for (size_t k = 0; k < MGO_MM_KINDS && !err; k++) {
        for (size_t r = 0; r < MGO_MM_RESULTS && !err; r++) {
            struct mgo_metrics_label l[] = {{"kind", KIND_NAMES[k]}, {"result", RESULT_NAMES[r]}};
            err = mgo_metrics_sample_u64(b, "margo_ingest_messages_total", l, 2,
                                         mgo_counter_get(&mm->ingest[k][r]));
        }
    }
    if (!err)
        err = mgo_metrics_family(b, "margo_ingest_batch_duration_seconds", "histogram",
                                 "Seconds from the arrival of a batch's first MQTT message to "
                                 "the store commit of the batch.");
    if (!err)
        err = mgo_metrics_histogram(b, "margo_ingest_batch_duration_seconds", NULL, 0,
                                    &mm->ingest_batch);
    return err;
}

static mgo_err write_queues(const struct mgo_mgr_depths *d, const struct mgo_mgr_http_depths *hd,
                            struct mgo_buf *b)
{
    mgo_err err = mgo_metrics_family(b, "margo_queue_depth", "gauge",
                                     "Items waiting in the manager's queues (held: device "
                                     "messages held for the store; mqtt_received: received, "
                                     "not yet taken by the loop; outbox: publishes not yet "
                                     "acknowledged by the broker; http_waiting: API requests "
                                     "handed to the loop and not yet answered; event_streams: "
                                     "open event streams).");
    const struct {
        const char *queue;
        size_t n;
    } q[] = {{"held", d->held},
             {"mqtt_received", d->mqtt_received},
             {"outbox", d->mqtt_outgoing},
             {"http_waiting", hd->waiting},
             {"event_streams", hd->streams}};
    for (size_t i = 0; i < sizeof q / sizeof q[0] && !err; i++)
        err = mgo_metrics_sample_u64(b, "margo_queue_depth",
                                     &(struct mgo_metrics_label){"queue", q[i].queue}, 1, q[i].n);
    return err;
}

static mgo_err write_rest(const struct mgo_mgr_metrics *mm, const struct mgo_mgr_depths *d,
                          struct mgo_buf *b)
{
    mgo_err err = mgo_metrics_family(b, "margo_store_duration_seconds", "histogram",
                                     "Seconds taken by store statements that return no rows "
                                     "(op=write) and by outermost commits (op=commit).");
    if (!err)
        err =
            mgo_metrics_histogram(b, "margo_store_duration_seconds",
                                  &(struct mgo_metrics_label){"op", "write"}, 1, &mm->store_write);
    if (!err)
        err = mgo_metrics_histogram(b, "margo_store_duration_seconds",
                                    &(struct mgo_metrics_label){"op", "commit"}, 1,
                                    &mm->store_commit);
    if (!err)
        err = mgo_metrics_family(b, "margo_mqtt_connected", "gauge",
                                 "1 while the MQTT session with the broker is up, else 0.");
    if (!err)
        err = mgo_metrics_sample_u64(b, "margo_mqtt_connected", NULL, 0, d->mqtt_connected);
    if (!err)
        err = mgo_metrics_family(b, "margo_lease_held", "gauge",
                                 "1 while this manager holds the lease (lease=publisher: it "
                                 "publishes desired state and runs the sweeps, rollouts and "
                                 "roll-ups; always 1 without share-group), else 0.");
    if (!err)
        err = mgo_metrics_sample_u64(b, "margo_lease_held",
                                     &(struct mgo_metrics_label){"lease", "publisher"}, 1,
                                     d->publisher);
    if (!err)
        err = mgo_metrics_family(b, "margo_mqtt_reconnects_total", "counter",
                                 "MQTT connections established after the first one.");
    if (!err)
        err = mgo_metrics_sample_u64(b, "margo_mqtt_reconnects_total", NULL, 0,
                                     mgo_counter_get(&mm->mqtt_reconnects));
    if (!err)
        err = mgo_metrics_family(b, "margo_http_requests_total", "counter",
                                 "HTTP requests answered, by route template, method and "
                                 "status code (code=other: a code not listed in "
                                 "docs/operations.md).");
    for (size_t r = 0; r < mm->routes_len && !err; r++) {
        for (size_t m = 0; m < MGO_MM_METHODS && !err; m++) {
            for (size_t c = 0; c < MGO_MM_CODES && !err; c++) {
                uint64_t n = mgo_counter_get(&mm->http[r][m][c]);
                if (n == 0)
                    continue; /* series appear once used */
                char code[8];
                if (c < MGO_MM_CODES - 1)
                    snprintf(code, sizeof code, "%u", CODES[c]);
                else
                    snprintf(code, sizeof code, "other");
                struct mgo_metrics_label l[] = {
                    {"route", mm->routes[r]}, {"method", METHODS[m]}, {"code", code}};
                err = mgo_metrics_sample_u64(b, "margo_http_requests_total", l, 3, n);
            }
        }
    }
    if (!err)
        err = mgo_metrics_family(b, "margo_process_start_time_seconds", "gauge",
                                 "Start time of the manager since the Unix epoch, in seconds.");
    if (!err)
        err = mgo_metrics_sample(b, "margo_process_start_time_seconds", NULL, 0, mm->start_time_s);
    return err;
}

static void scrape(const struct mgo_mgr_probe *p, const struct mgo_mgr_http_depths *hd,
                   struct mgo_api_request *req)
{
    struct mgo_mgr_depths d = {0};
    p->depths(p->ctx, &d);
    struct mgo_buf *b = &req->reply;
    mgo_buf_reset(b);
    mgo_err err = write_store_gauges(p, b);
    if (!err)
        err = write_ingest(p->metrics, b);
    if (!err)
        err = write_queues(&d, hd, b);
    if (!err)
        err = write_rest(p->metrics, &d, b);
    if (err) {
        MGO_LOGW(TAG, "GET /metrics: %s", mgo_strerror(err));
        mgo_api__problem(req, 500, NULL, "Internal Server Error",
                         "the metrics could not be collected (the store did not answer)", NULL);
        return;
    }
    req->status = 200;
    req->content_type = MGO_METRICS_CONTENT_TYPE;
}

/* ---- /healthz, /readyz ------------------------------------------------------------------- */

static void json_reply(struct mgo_api_request *req, unsigned status, const char *json)
{
    mgo_buf_reset(&req->reply);
    if (mgo_buf_append_str(&req->reply, json) != MGO_OK) {
        mgo_api__problem(req, 500, NULL, "Internal Server Error", "out of memory", NULL);
        return;
    }
    req->status = status;
    req->content_type = "application/json";
}

static void ready(const struct mgo_mgr_probe *p, struct mgo_api_request *req)
{
    struct mgo_mgr_depths d = {0};
    p->depths(p->ctx, &d);
    mgo_err store_err = mgo_mgr_store_ping(p->store);
    bool ok = store_err == MGO_OK && d.mqtt_connected;
    char json[256];
    snprintf(json, sizeof json, "{\"ready\":%s,\"store\":\"%s\",\"mqtt\":\"%s\"}\n",
             ok ? "true" : "false", store_err == MGO_OK ? "ok" : mgo_strerror(store_err),
             d.mqtt_connected ? "connected" : "disconnected");
    json_reply(req, ok ? 200 : 503, json);
}

void mgo_mgr_metrics__handle(const struct mgo_mgr_probe *p, const struct mgo_mgr_http_depths *hd,
                             struct mgo_api_request *req)
{
    if (strcmp(req->method, "GET") != 0 && strcmp(req->method, "HEAD") != 0) {
        mgo_api__problem(req, 405, NULL, "Method Not Allowed",
                         "this method is not supported on this resource", NULL);
        return;
    }
    if (strcmp(req->path, "/metrics") == 0)
        scrape(p, hd, req);
    else if (strcmp(req->path, "/readyz") == 0)
        ready(p, req);
    else
        json_reply(req, 200, "{\"alive\":true}\n");
}
