/* rel_util.h - shared by the reliability tests (issue 7, docs/reliability.md):
 *
 *  - child processes: margo-agent and margo-manager binaries started with fork/execv, their
 *    output in a log file, stopped with SIGTERM or killed with SIGKILL;
 *  - the recorder: an independent MQTT subscriber (persistent session, reconnects across
 *    broker restarts) that keeps the full ordered history of status, presence, desired and
 *    event messages of every device;
 *  - the history check: lost transitions (gaps in a device's (boot, seq) within a boot),
 *    duplicates (the same transition again under a new position), order per deployment,
 *    conflicting payloads under one position;
 *  - a TCP proxy that can be frozen (stops forwarding without closing) to partition a
 *    client from the broker;
 *  - the manager's HTTP API with its token.
 * Time, folders, child processes, logs and HTTP come from the test kit (tests/support).
 * Nothing here asserts on time: waits poll with generous deadlines. */
#ifndef MGO_REL_UTIL_H
#define MGO_REL_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "mgo/limits.h"
#include "mgo/margo.h"
#include "mgo/mqtt.h"
#include "broker.h"
#include "mgo/value.h"
#include "http.h"
#include "mgo_test.h"
#include "proc.h"

#define REL_WAIT_MS 60000

struct rel_agent {
    char id[64];
    char url[64];
    char state_dir[512];
    char log[512];
    char extra[16][128]; /* "--option", "value" pairs added to every start */
    size_t extra_len;
    pid_t pid;
};
/* base_dir/id/state, base_dir/id.log; helm = slow-helm (see that file). */
void rel_agent_init(struct rel_agent *a, const char *base_dir, const char *id, const char *url);
void rel_agent_opt(struct rel_agent *a, const char *name, const char *value);
void rel_agent_start(struct rel_agent *a);
void rel_agent_kill(struct rel_agent *a); /* SIGKILL */
void rel_agent_stop(struct rel_agent *a); /* SIGTERM, expects exit 0 */
/* Waits until the agent's log contains needle (count > already). */
bool rel_log_wait(const char *log, const char *needle, size_t more_than, int timeout_ms);

/* ---- recorder ---------------------------------------------------------------------- */

struct rel_status {
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    char dep[40];
    enum mgo_state state;
    uint64_t boot, seq, adopted;
    char comps[128]; /* "name=state,..." */
    char error[128];
    bool retained;
};
struct rel_presence {
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    bool online;
    uint64_t boot;
    bool has_timestamp; /* false for the last will */
};
struct rel_desired {
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    uint64_t version;
    size_t deployments;
};
struct rel_event {
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    char type[48];
    char message[256];
};

struct rel_recorder {
    pthread_mutex_t mu;
    pthread_t thread;
    atomic_bool stop;
    char url[64];
    char client_id[64];
    struct mgo_mqtt *m;
    struct rel_status *st;
    size_t st_len, st_cap;
    struct rel_presence *pr;
    size_t pr_len, pr_cap;
    struct rel_desired *ds;
    size_t ds_len, ds_cap;
    struct rel_event *ev;
    size_t ev_len, ev_cap;
    size_t connects;
};
void rel_recorder_start(struct rel_recorder *r, const char *url, const char *client_id);
void rel_recorder_stop(struct rel_recorder *r);
/* The status of (device, dep) with the highest (boot, seq); false when none. */
bool rel_last(struct rel_recorder *r, const char *device, const char *dep, struct rel_status *out);
/* Waits until the highest status of (device, dep) has state st (and adopted >= min_adopted). */
bool rel_wait_state(struct rel_recorder *r, const char *device, const char *dep, enum mgo_state st,
                    uint64_t min_adopted, int timeout_ms);
/* rel_wait_state(installed, min adopted v[i], REL_WAIT_MS) for each of the n agents and their
 * deployments deps[i], asserted (CU_ASSERT); each one that does not get there is named on
 * stderr with what. */
void rel_wait_installed(struct rel_recorder *r, const struct rel_agent *agents,
                        const char (*deps)[64], const uint64_t *v, size_t n, const char *what);
/* Number of statuses of (device, dep) (NULL dep = any) with state st, all positions. */
size_t rel_count_state(struct rel_recorder *r, const char *device, const char *dep,
                       enum mgo_state st);
/* Last presence of a device; false when none. */
bool rel_last_presence(struct rel_recorder *r, const char *device, struct rel_presence *out);
size_t rel_count_events(struct rel_recorder *r, const char *device, const char *type);

struct rel_check {
    size_t messages;             /* status messages received (resends included) */
    size_t transitions;          /* distinct (device, boot, seq) received */
    size_t lost;                 /* positions missing inside a boot's 1..max */
    size_t duplicates;           /* same transition again under a new position */
    size_t resumed;              /* a non-terminal state re-entered after a restart (new boot) */
    size_t order;                /* a deployment's position going backwards */
    size_t conflicts;            /* one position, two different payloads */
    size_t manifest_regressions; /* a desired manifestVersion lower than an earlier one */
};
/* Checks the history of one device (NULL = every device); prints every finding. */
void rel_check_history(struct rel_recorder *r, const char *device, struct rel_check *out);
void rel_check_print(const char *what, const struct rel_check *c);

/* ---- TCP proxy ------------------------------------------------------------------------ */

struct rel_proxy {
    int listen_fd;
    int port;
    int target_port;
    pthread_t thread;
    atomic_bool frozen;
    atomic_bool stop;
    atomic_int connections; /* pairs being forwarded */
    char url[64];
};
int rel_proxy_start(struct rel_proxy *p, int target_port);
/* Frozen: nothing is read, written or accepted; connections stay open (a partition). */
void rel_proxy_freeze(struct rel_proxy *p, bool frozen);
void rel_proxy_stop(struct rel_proxy *p);

/* ---- manager HTTP API ------------------------------------------------------------------ */

/* base = "http://127.0.0.1:PORT"; the token as a Bearer header, body (may be NULL) as JSON. */
void rel_api(const char *base, const char *token, const char *method, const char *path,
             const char *body, struct mgo_test_reply *r);

struct rel_manager {
    char dir[256];
    char conf[512];
    char log[512];
    char token_path[512];
    char token[80];
    char url[64]; /* broker */
    char api[64]; /* http://127.0.0.1:PORT */
    int api_port;
    pid_t pid;
    char extra_conf[1024];
    char client_id[64];  /* default margo-manager-rel */
    char state_dir[512]; /* default dir/state */
};
/* A config file in dir (api on a free port, token file, log-level info). */
void rel_manager_init(struct rel_manager *m, const char *dir, const char *broker_url);
void rel_manager_start(struct rel_manager *m);
/* Waits until GET /api/v1/apps answers 200. */
bool rel_manager_ready(struct rel_manager *m, int timeout_ms);
/* POST /api/v1/deployments of app to devices (201 or a fatal assertion); ids[k] receives the
 * deployment id of devices[k]. */
void rel_deploy(const struct rel_manager *m, const char *app, const char *const *devices, size_t n,
                char ids[][64]);
/* POST /api/v1/apps with the application file `path` as the body (201 or an assertion). */
void rel_add_app(const struct rel_manager *m, const char *path);
/* Waits until GET /api/v1/devices lists n devices; false when it does not within REL_WAIT_MS. */
bool rel_wait_devices(const struct rel_manager *m, size_t n);
/* PATCH deployment dep with {"parameters": {"replicas": replicas}} (200 or a fatal assertion);
 * returns the new manifest version. */
uint64_t rel_reconfigure(const struct rel_manager *m, const char *dep, int replicas);
void rel_manager_kill(struct rel_manager *m);
void rel_manager_stop(struct rel_manager *m); /* SIGTERM, expects exit 0 */

/* ---- publishing ------------------------------------------------------------------------ */

/* Publishes retained at QoS 1 on a connection of its own (client_id, clean start; connecting
 * again while the broker refuses) and waits for the acknowledgement: independent of broker
 * restarts between calls. Fatal assertion when that does not happen within REL_WAIT_MS. */
void rel_publish(const char *url, const char *client_id, const char *topic, const void *data,
                 size_t len);

/* ---- the fixture of a test ------------------------------------------------------------ */

/* A private broker, a temporary folder, fake-helm behind slow-helm (both configured through
 * the environment of the children started from now on), and the recorder. */
struct rel_env {
    struct mgo_test_broker broker;
    struct rel_recorder rec;
    char dir[256];
    char helm_log[512]; /* fake-helm's call log */
    char releases[512]; /* fake-helm's installed releases */
    char mark[512];     /* slow-helm's mark file, see rel_env_slow() */
    char conf[512];     /* slow-helm's settings */
    bool live;
};
/* Starts everything (fatal assertions). A fixture still live from an earlier case (a fatal
 * assertion skipped its cleanup) is cleaned up first. */
void rel_env_start(struct rel_env *e, const char *what, const char *recorder_id);
/* slow-helm's settings, read by every helm call (so they change while agents run): seconds
 * to sleep before and after installing (NULL = none), and whether to write the mark files. */
void rel_env_slow(const struct rel_env *e, const char *before, const char *after, bool mark);
/* Asserts the recorded history of every device is clean: transitions, none lost, duplicated,
 * out of order or conflicting, no manifest regression (each finding printed). */
void rel_env_check_history(struct rel_env *e, const char *what);
/* Kills every child, stops the recorder and the broker, removes the folder (kept with
 * MGO_TEST_KEEP set). Safe when not live. */
void rel_env_cleanup(struct rel_env *e);
/* A manager in e->dir/manager (ready) and n agents <id_prefix>1..n, all started. */
void rel_env_start_fleet(struct rel_env *e, struct rel_manager *m, struct rel_agent *agents,
                         size_t n, const char *id_prefix);

#endif
