/* metrics.c - the agent's metrics, their snapshot and the metrics listener
 * (docs/operations.md "Metrics"). */
#include "metrics.h"

#include <microhttpd.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "latest.h"
#include "mgo/arena.h"
#include "mgo/listen.h"
#include "mgo/log.h"
#include "mgo/problems.h"

#define TAG "metrics"

/* Connections of the listener at most (a scraper or two). */
#define MAX_CONNECTIONS 8u
/* Seconds a connection may stay idle. */
#define IDLE_TIMEOUT_S 10u

static const char *const OP_NAMES[MGO_AM_OPS] = {"apply", "remove", "probe"};
static const char *const RESULT_NAMES[MGO_AM_RESULTS] = {"ok", "failed", "cancelled"};

void mgo_agent_metrics_init(struct mgo_agent_metrics *am)
{
    memset(am, 0, sizeof *am);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    am->start_time_s = (double)ts.tv_sec + (double)(ts.tv_nsec / 1000000) / 1000.0;
    for (size_t i = 0; i < MGO_AM_OPS; i++)
        mgo_histogram_init(&am->op_duration[i], mgo_metrics_latency_bounds,
                           mgo_metrics_latency_bounds_len);
    pthread_mutex_init(&am->mu, NULL);
}

void mgo_agent_metrics_cleanup(struct mgo_agent_metrics *am)
{
    if (am->httpd)
        MHD_stop_daemon(am->httpd);
    am->httpd = NULL;
    pthread_mutex_destroy(&am->mu);
}

void mgo_agent_metrics_op(struct mgo_agent_metrics *am, enum mgo_am_op op,
                          enum mgo_am_result result, uint64_t duration_ns)
{
    mgo_counter_inc(&am->ops[op][result]);
    mgo_histogram_observe_ns(&am->op_duration[op], duration_ns);
}

void mgo_agent_metrics_snapshot(struct mgo_agent_metrics *am,
                                const struct mgo_agent_metrics_view *v)
{
    uint64_t by_state[MGO_STATE_COUNT] = {0};
    for (size_t i = 0; v->latest && i < v->latest->len; i++) {
        const struct mgo_latest_entry *e = &v->latest->items[i];
        struct mgo_arena arena;
        mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
        struct mgo_problems p;
        mgo_problems_init(&p);
        struct mgo_deployment_status st;
        /* journaled by this agent, so it decodes; one that does not is not counted */
        if (mgo_deployment_status_decode(e->payload, e->payload_len, &arena, &st, &p) == MGO_OK &&
            (unsigned)st.state < MGO_STATE_COUNT)
            by_state[st.state]++;
        mgo_arena_cleanup(&arena);
    }
    pthread_mutex_lock(&am->mu);
    am->journal_depth = v->journal_depth;
    am->connected = v->connected;
    memcpy(am->by_state, by_state, sizeof by_state);
    pthread_mutex_unlock(&am->mu);
}

mgo_err mgo_agent_metrics_render(struct mgo_agent_metrics *am, struct mgo_buf *b)
{
    uint64_t journal_depth, by_state[MGO_STATE_COUNT];
    bool connected;
    pthread_mutex_lock(&am->mu);
    journal_depth = am->journal_depth;
    connected = am->connected;
    memcpy(by_state, am->by_state, sizeof by_state);
    pthread_mutex_unlock(&am->mu);

    mgo_err err = mgo_metrics_family(b, "margo_agent_runtime_operations_total", "counter",
                                     "Runtime operations ended, by operation and result (probe "
                                     "ok: found running; failed: an error, or not running).");
    for (size_t o = 0; o < MGO_AM_OPS && !err; o++) {
        for (size_t r = 0; r < MGO_AM_RESULTS && !err; r++) {
            struct mgo_metrics_label l[] = {{"operation", OP_NAMES[o]},
                                            {"result", RESULT_NAMES[r]}};
            err = mgo_metrics_sample_u64(b, "margo_agent_runtime_operations_total", l, 2,
                                         mgo_counter_get(&am->ops[o][r]));
        }
    }
    if (!err)
        err = mgo_metrics_family(b, "margo_agent_runtime_operation_duration_seconds", "histogram",
                                 "Seconds a runtime operation took on the worker thread.");
    for (size_t o = 0; o < MGO_AM_OPS && !err; o++)
        err = mgo_metrics_histogram(b, "margo_agent_runtime_operation_duration_seconds",
                                    &(struct mgo_metrics_label){"operation", OP_NAMES[o]}, 1,
                                    &am->op_duration[o]);
    if (!err)
        err = mgo_metrics_family(b, "margo_agent_journal_depth", "gauge",
                                 "Journaled statuses the manager has not confirmed yet.");
    if (!err)
        err = mgo_metrics_sample_u64(b, "margo_agent_journal_depth", NULL, 0, journal_depth);
    if (!err)
        err = mgo_metrics_family(b, "margo_agent_deployments", "gauge",
                                 "Deployments by the state of their latest status.");
    for (size_t s = 0; s < MGO_STATE_COUNT && !err; s++)
        err = mgo_metrics_sample_u64(
            b, "margo_agent_deployments",
            &(struct mgo_metrics_label){"state", mgo_state_name((enum mgo_state)s)}, 1,
            by_state[s]);
    if (!err)
        err = mgo_metrics_family(b, "margo_agent_mqtt_connected", "gauge",
                                 "1 while the MQTT session with the broker is up, else 0.");
    if (!err)
        err = mgo_metrics_sample_u64(b, "margo_agent_mqtt_connected", NULL, 0, connected);
    if (!err)
        err = mgo_metrics_family(b, "margo_agent_mqtt_reconnects_total", "counter",
                                 "MQTT connections established after the first one.");
    if (!err)
        err = mgo_metrics_sample_u64(b, "margo_agent_mqtt_reconnects_total", NULL, 0,
                                     mgo_counter_get(&am->mqtt_reconnects));
    if (!err)
        err = mgo_metrics_family(b, "margo_agent_process_start_time_seconds", "gauge",
                                 "Start time of the agent since the Unix epoch, in seconds.");
    if (!err)
        err = mgo_metrics_sample(b, "margo_agent_process_start_time_seconds", NULL, 0,
                                 am->start_time_s);
    return err;
}

/* ---- the listener (its own thread) ------------------------------------------------------ */

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned status, const char *type,
                              const void *body, size_t len)
{
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    enum MHD_Result r = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return r;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    (void)upload_data;
    struct mgo_agent_metrics *am = cls;
    if (*con_cls == NULL) { /* headers only so far */
        *con_cls = am;
        return MHD_YES;
    }
    if (*upload_data_size > 0) {
        *upload_data_size = 0; /* bodies are not read */
        return MHD_YES;
    }
    static const char text[] = "text/plain; charset=utf-8";
    if (strcmp(url, "/metrics") != 0)
        return answer(conn, 404, text, "not found: only /metrics is served here\n", 41);
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return answer(conn, 405, text, "method not allowed\n", 19);
    struct mgo_buf b;
    mgo_buf_init(&b, 1024u * 1024u);
    enum MHD_Result r;
    if (mgo_agent_metrics_render(am, &b) == MGO_OK)
        r = answer(conn, 200, MGO_METRICS_CONTENT_TYPE, b.data ? b.data : (void *)"", b.len);
    else
        r = answer(conn, 500, text, "out of memory\n", 14);
    mgo_buf_cleanup(&b);
    return r;
}

mgo_err mgo_agent_metrics_listen(struct mgo_agent_metrics *am, const char *listen)
{
    struct sockaddr_storage ss;
    bool ipv6 = false;
    if (mgo_listen_parse(listen, &ss, &ipv6) != MGO_OK) {
        MGO_LOGE(TAG, "metrics-listen: \"%s\" is not ADDRESS:PORT (e.g. 127.0.0.1:9101)", listen);
        return MGO_ERR_INVALID;
    }
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | (ipv6 ? MHD_USE_IPv6 : 0);
    if (MHD_is_feature_supported(MHD_FEATURE_POLL) == MHD_YES)
        flags |= MHD_USE_POLL;
    am->httpd =
        MHD_start_daemon(flags, 0, NULL, NULL, on_request, am, MHD_OPTION_SOCK_ADDR,
                         (struct sockaddr *)&ss, MHD_OPTION_CONNECTION_LIMIT, MAX_CONNECTIONS,
                         MHD_OPTION_CONNECTION_TIMEOUT, IDLE_TIMEOUT_S, MHD_OPTION_END);
    if (!am->httpd) {
        MGO_LOGE(TAG, "metrics-listen: cannot listen on %s (address in use or not available)",
                 listen);
        return MGO_ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(am->httpd, MHD_DAEMON_INFO_BIND_PORT);
    am->port = info ? info->port : 0;
    MGO_LOGI(TAG, "metrics on http://%s/metrics (port %u)", listen, (unsigned)am->port);
    return MGO_OK;
}

uint16_t mgo_agent_metrics_port(const struct mgo_agent_metrics *am)
{
    return am->port;
}
