/* metrics.h - the agent's metrics and its optional metrics listener (metrics-listen, off by
 * default; docs/operations.md "Metrics"): GET /metrics in the Prometheus text format, served
 * by a libmicrohttpd thread of its own (private to agent/).
 *
 * Threads: counters and histograms are relaxed atomics (the executor bumps them on the loop
 * thread); the gauges that live in loop-owned state (journal depth, connection, deployments
 * by state) are copied by the loop into a snapshot under a mutex every
 * MGO_AGENT_METRICS_SNAPSHOT_MS, and the listener thread reads only that snapshot and the
 * atomics. No call goes from here into another agent file. */
#ifndef MGO_AGENT_METRICS_H
#define MGO_AGENT_METRICS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/margo.h"
#include "mgo/metrics.h"

/* How often the loop refreshes the snapshot while the listener runs. */
#define MGO_AGENT_METRICS_SNAPSHOT_MS 1000

enum mgo_am_op { MGO_AM_APPLY, MGO_AM_REMOVE, MGO_AM_PROBE, MGO_AM_OPS };
enum mgo_am_result { MGO_AM_OK, MGO_AM_FAILED, MGO_AM_CANCELLED, MGO_AM_RESULTS };

struct MHD_Daemon;

struct mgo_agent_metrics {
    double start_time_s;
    struct mgo_counter ops[MGO_AM_OPS][MGO_AM_RESULTS];
    struct mgo_histogram op_duration[MGO_AM_OPS];
    struct mgo_counter mqtt_reconnects;
    /* the loop's snapshot, guarded by mu */
    pthread_mutex_t mu;
    uint64_t journal_depth;
    bool connected;
    uint64_t by_state[MGO_STATE_COUNT];
    struct MHD_Daemon *httpd; /* NULL: no listener */
    uint16_t port;
};

void mgo_agent_metrics_init(struct mgo_agent_metrics *am);
/* Stops the listener (waits for its thread) and releases everything. */
void mgo_agent_metrics_cleanup(struct mgo_agent_metrics *am);

/* Starts the listener on ADDRESS:PORT (loopback advised: it has no token). Logs and returns
 * MGO_ERR_INVALID (not ADDRESS:PORT) or MGO_ERR_IO (cannot listen). */
mgo_err mgo_agent_metrics_listen(struct mgo_agent_metrics *am, const char *listen) MGO_MUST_CHECK;
/* The port listened on (0: none). */
uint16_t mgo_agent_metrics_port(const struct mgo_agent_metrics *am);

/* Loop thread: one runtime operation ended after duration_ns. */
void mgo_agent_metrics_op(struct mgo_agent_metrics *am, enum mgo_am_op op,
                          enum mgo_am_result result, uint64_t duration_ns);

/* Loop thread: the gauges as they are now. latest holds the newest status of every
 * deployment the agent reports on (latest.h); each is counted by its state. */
struct mgo_latest;
struct mgo_agent_metrics_view {
    uint64_t journal_depth;
    bool connected;
    const struct mgo_latest *latest;
};
void mgo_agent_metrics_snapshot(struct mgo_agent_metrics *am,
                                const struct mgo_agent_metrics_view *v);

/* The text of GET /metrics into b (any thread). Errors of mgo_buf. */
mgo_err mgo_agent_metrics_render(struct mgo_agent_metrics *am, struct mgo_buf *b) MGO_MUST_CHECK;

#endif
