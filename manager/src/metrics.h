/* metrics.h - the manager's metrics (docs/operations.md "Metrics") and the answers of
 * GET /metrics, /healthz and /readyz. Counters and histograms are updated where things
 * happen (ingest.c, store.c, http.c, manager.c; any thread, relaxed atomics); gauges that
 * live in the store are counted when scraped, one bounded query each. The answers run on
 * the loop thread (http.c hands them over like API requests), so a stuck loop answers none
 * of them. */
#ifndef MGO_MGR_METRICS_H
#define MGO_MGR_METRICS_H

#include <stdbool.h>
#include <stddef.h>

#include "mgo/metrics.h"
#include "mgo/mgr_store.h"

struct mgo_api_request;

enum mgo_mm_kind { /* ingested message kinds (label kind) */
                   MGO_MM_KIND_STATUS,
                   MGO_MM_KIND_REPLAY,
                   MGO_MM_KIND_CAPABILITIES,
                   MGO_MM_KIND_PRESENCE,
                   MGO_MM_KIND_EVENT,
                   MGO_MM_KIND_OTHER,
                   MGO_MM_KINDS
};
enum mgo_mm_result {                 /* what became of an ingested message (label result) */
                     MGO_MM_HANDLED, /* stored and committed, or refused for good */
                     MGO_MM_HELD,    /* put on hold (the store refused it or its batch) */
                     MGO_MM_DROPPED, /* lost: dropped from a full hold, or out of memory */
                     MGO_MM_RESULTS
};

/* Route templates (label route: the API's route table, the probes and "other") and methods,
 * codes counted for HTTP requests. */
#define MGO_MM_ROUTES 64u
#define MGO_MM_METHODS 8u
#define MGO_MM_CODES 24u

struct mgo_mgr_metrics {
    double start_time_s; /* Unix time of mgo_mgr_metrics_init */
    struct mgo_counter ingest[MGO_MM_KINDS][MGO_MM_RESULTS];
    struct mgo_histogram ingest_batch; /* first message's arrival to its batch's commit */
    struct mgo_histogram store_write;  /* statements without rows */
    struct mgo_histogram store_commit; /* outermost commits */
    struct mgo_counter mqtt_reconnects;
    struct mgo_counter http[MGO_MM_ROUTES][MGO_MM_METHODS][MGO_MM_CODES];
    const char *routes[MGO_MM_ROUTES]; /* the route label of each row of http */
    size_t routes_len;
};

void mgo_mgr_metrics_init(struct mgo_mgr_metrics *mm);
/* Any thread: one HTTP request answered with status (path without its query). */
void mgo_mgr_metrics__http(struct mgo_mgr_metrics *mm, const char *method, const char *path,
                           unsigned status);
/* The route template of a path: a template of the API's route table (mgo_api__routes), one of
 * the probes, or "other" (bounded set: docs/operations.md). */
const char *mgo_mgr_metrics__route(const char *path);
/* Whether path is one of /metrics, /healthz, /readyz (served by mgo_mgr_metrics__handle). */
bool mgo_mgr_metrics__owns(const char *path);

/* Depths the loop reports at scrape time. */
struct mgo_mgr_depths {
    size_t held;          /* device messages held for the store */
    size_t mqtt_received; /* received messages the loop has not taken yet */
    size_t mqtt_outgoing; /* publishes not yet acknowledged by the broker (the outbox) */
    bool mqtt_connected;  /* the MQTT session is up */
    bool publisher;       /* this manager holds the publisher lease (docs/scaling.md) */
};

/* What the answers read; the pointers outlive the HTTP front end. */
struct mgo_mgr_probe {
    struct mgo_mgr_metrics *metrics;
    struct mgo_mgr_store *store;
    /* loop thread: fills the depths (the manager's queues and connection) */
    void (*depths)(void *ctx, struct mgo_mgr_depths *out);
    void *ctx;
};

/* Counts of the HTTP front end (http.c) at the time of the request. */
struct mgo_mgr_http_depths {
    size_t waiting; /* requests handed to the loop and not answered, this one included */
    size_t streams; /* open event streams */
};

/* Loop thread: answers GET/HEAD /metrics, /healthz or /readyz into req. */
void mgo_mgr_metrics__handle(const struct mgo_mgr_probe *p, const struct mgo_mgr_http_depths *hd,
                             struct mgo_api_request *req);

#endif
