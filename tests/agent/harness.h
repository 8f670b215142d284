/* harness.h - shared by the agent integration tests: an in-process agent on a thread, a
 * "manager" client that publishes documents, and a monitor that records status messages. */
#ifndef MGO_AGENT_TEST_HARNESS_H
#define MGO_AGENT_TEST_HARNESS_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/agent.h"
#include "mgo/margo.h"
#include "mgo/mqtt.h"

struct h_agent {
    struct mgo_agent_config cfg;
    struct mgo_agent *agent; /* while started */
    pthread_t thread;
    bool running;
    mgo_err result;
};

/* Sets defaults, then each "key", "value" pair (NULL-terminated list). */
void h_agent_init(struct h_agent *a, ...);
void h_agent_start(struct h_agent *a);
void h_agent_stop(struct h_agent *a);
void h_agent_cleanup(struct h_agent *a);

/* A connected client (waits for CONNECTED). */
struct mgo_mqtt *h_client(const char *url, const char *client_id);
/* Same with a persistent session (clean start off, 5 minutes expiry). */
struct mgo_mqtt *h_client_persistent(const char *url, const char *client_id);

/* YAML text -> canonical msgpack bytes (owned by buf) + mgo_doc_digest. */
void h_doc(const char *yaml, struct mgo_buf *bytes, char digest[MGO_DIGEST_STR_SIZE]);
/* h_doc(yaml) published retained on device's deployment topic for its id (h_publish);
 * digest receives the document's digest. */
void h_publish_doc(struct mgo_mqtt *m, const char *device, const char *id, const char *yaml,
                   char digest[MGO_DIGEST_STR_SIZE]);
/* Publishes retained at QoS 1 and waits for the broker's acknowledgement (at most 10 s). */
void h_publish(struct mgo_mqtt *m, const char *topic, const void *data, size_t len);
/* Desired-state manifest with the given version and (id, digest) pairs. */
void h_publish_manifest(struct mgo_mqtt *m, const char *device, uint64_t version, size_t n,
                        const char *const *ids, const char *const *digests);

struct h_status {
    char deployment_id[80];
    enum mgo_state state;
    uint64_t boot, seq;
    uint64_t adopted;
    char error_code[64];
    char error_message[512];
    char comp_state[8][16];
    size_t comps;
    /* x-margo-mqtt-extensions.app; app_version "" when the status has none */
    bool has_app;
    char app_id[80], app_version[48], app_name[80];
};
struct h_monitor {
    struct mgo_mqtt *m;
    struct h_status items[512];
    size_t len;
    size_t events; /* messages on .../events */
    char last_event_type[64];
};
void h_monitor_start(struct h_monitor *mon, const char *url, const char *device);
/* A monitor with a persistent session under client_id: statuses published while it is away
 * (or while the broker restarts) are delivered when it comes back with the same id. */
void h_monitor_start_persistent(struct h_monitor *mon, const char *url, const char *device,
                                const char *client_id);
/* Pumps messages for at most timeout_ms; returns true as soon as a status of deployment
 * dep with state st (and seq > after_seq) is seen. */
bool h_monitor_wait(struct h_monitor *mon, const char *dep, enum mgo_state st, int timeout_ms);
void h_monitor_pump(struct h_monitor *mon, int ms);
void h_monitor_stop(struct h_monitor *mon);
/* Checks that, per deployment, (boot, seq) only grow in arrival order, ignoring exact
 * re-sends; returns the number of violations. */
size_t h_monitor_order_violations(const struct h_monitor *mon);

#endif
