/* mgr_store.h - the manager's persistent store (SQLite, one file "manager.db" under the
 * state directory, WAL mode, synchronous=FULL so a committed manifestVersion survives a
 * crash or power loss).
 *
 * Owner: the manager's loop thread (one connection, no locking). Rows are handed to
 * visitor callbacks; every pointer in a row is valid only during that callback. A visitor
 * returns MGO_OK to go on; any other value ends the walk, and the listing function returns
 * it (so a visitor that cannot keep a row, e.g. out of memory, is never silently skipped).
 *
 * Schema versions (table schema_version, migrations applied in order inside one
 * transaction each):
 *   1  apps, devices, deployments, manifests, status, status_history
 *   2  per-device status journal position (devices.status_boot/status_seq), device_events,
 *      index on status_history(deployment_id)
 *   3  drops the per-device journal position again (never read; the order check is per
 *      deployment, on the status table)
 *   4  the end-to-end status guarantee (protocol.md §6.3): per device, the journal position
 *      up to which every status was handled, the highest handled, the receipts' epoch, and
 *      the positions handled beyond a gap (device_positions)
 *   5  bounds per device (docs/security.md "Bounded storage"): events stored so far (for
 *      pruning), the rate windows of events and statuses with their excess, the number of
 *      positions waiting beyond a gap and of those not kept past its bound; index on
 *      device_events(device_id)
 *   6  the fleet overview: fleet_samples (devices online/offline over time, bounded) and an
 *      index of the failed reports in status_history by time
 *   7  the southbound Margo HTTP API (docs/margo-http.md): devices.binding ('mqtt' or 'http'),
 *      the accepted-client list (margo_clients)
 *   8  fleet rollouts (docs/rollouts.md): operator labels per device (device_labels),
 *      rollouts and their per-device targets (rollouts, rollout_targets)
 *   9  several managers on one database (docs/scaling.md): leases, and an index of the
 *      manifests the broker has not acknowledged (manifests_unpublished)
 *
 * Multi-row changes: wrap them in mgo_mgr_store_begin()/commit() (SAVEPOINTs, so they
 * nest); a failed step is undone with mgo_mgr_store_rollback(). */
#ifndef MGO_MGR_STORE_H
#define MGO_MGR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mgo/err.h"
#include "mgo/limits.h"

#define MGO_MGR_STORE_SCHEMA_VERSION 9
#define MGO_MGR_STORE_FILE "manager.db"

struct mgo_mgr_store;

/* Opens the store at location and migrates it to the newest schema: a PostgreSQL URL
 * (postgresql://... or postgres://..., see mgo_mgr_store_is_url) or else a directory, whose
 * SQLite file manager.db is created when missing. MGO_ERR_IO when the file or database cannot
 * be opened, MGO_ERR_INVALID when its schema is newer than this program knows (never
 * downgraded). Several managers may open one PostgreSQL database at once (migrations run
 * under an advisory lock, read-modify-writes lock the device row). */
mgo_err mgo_mgr_store_open(const char *location, struct mgo_mgr_store **out) MGO_MUST_CHECK;
/* Same, migrating only up to max_version (tests build older databases with it). */
mgo_err mgo_mgr_store_open_version(const char *location, int max_version,
                                   struct mgo_mgr_store **out) MGO_MUST_CHECK;
void mgo_mgr_store_close(struct mgo_mgr_store *s); /* NULL is fine */
/* Whether location names a PostgreSQL database (starts with postgresql:// or postgres://). */
bool mgo_mgr_store_is_url(const char *location);
/* "sqlite" or "postgresql". */
const char *mgo_mgr_store_driver(const struct mgo_mgr_store *s);
int mgo_mgr_store_schema_version(const struct mgo_mgr_store *s);

mgo_err mgo_mgr_store_begin(struct mgo_mgr_store *s) MGO_MUST_CHECK;
/* A failed commit has rolled the transaction back. */
mgo_err mgo_mgr_store_commit(struct mgo_mgr_store *s) MGO_MUST_CHECK;
/* Opens an ingest batch: the outermost transaction as mgo_mgr_store_begin, in which, once it
 * has taken a device's row lock, a lock another transaction holds is not waited for
 * (PostgreSQL: FOR UPDATE NOWAIT): the call fails with MGO_ERR_BUSY (undone, the transaction
 * usable), and the caller commits what it has and tries again in a new batch. A batch thus
 * waits only while it holds no lock, and two managers' batches never deadlock. SQLite (one
 * writer): as mgo_mgr_store_begin. MGO_ERR_INTERNAL inside a transaction. */
mgo_err mgo_mgr_store_begin_batch(struct mgo_mgr_store *s) MGO_MUST_CHECK;
void mgo_mgr_store_rollback(struct mgo_mgr_store *s);
/* Test hook (fault injection): the next n outermost commits fail with MGO_ERR_IO and roll
 * back, as a full disk or an I/O error at commit would. */
void mgo_mgr_store_fail_commits(struct mgo_mgr_store *s, unsigned n);

/* Milliseconds since the epoch (the store's clock; also used by callers for replies). */
int64_t mgo_mgr_store_now_ms(void);

/* ---- role identities (protocol.md §2.3, docs/security.md "Roles are not devices") ------ */

/* Every certificate CN (MQTT user name) that starts with this prefix, in any letter case, is
 * a role (the manager, a monitor) and never a device id; pki.sh issues role certificates only
 * with it and device certificates only without it. */
#define MGO_MGR_ROLE_PREFIX "margo-"
#define MGO_MGR_MAX_ROLES 16u
/* Adds a name that is never a device id (a role CN outside the prefix, the manager's own
 * client id / user name). MGO_ERR_LIMIT past MGO_MGR_MAX_ROLES, MGO_ERR_INVALID when name is
 * not a device-id-shaped name (then it could not be one anyway). */
mgo_err mgo_mgr_store_add_role(struct mgo_mgr_store *s, const char *name) MGO_MUST_CHECK;
/* Whether id is a role identity: the prefix or an added name. The store itself refuses to
 * take a role as a device (MGO_ERR_INVALID from every call that would add one), and leaves
 * role rows stored by older versions out of the manifest and receipt walks; callers refuse
 * them first with a clear message (ingest, the API). */
bool mgo_mgr_store_is_role(const struct mgo_mgr_store *s, const char *id);

/* ---- catalog ------------------------------------------------------------------------ */

struct mgo_mgr_app_row {
    const char *id;
    const char *version;
    const char *name;
    const uint8_t *source; /* margo.yaml bytes as added */
    size_t source_len;
    const uint8_t *doc; /* the parsed tree as canonical MessagePack */
    size_t doc_len;
    int64_t added_ms;
};
typedef mgo_err (*mgo_mgr_app_visit)(const struct mgo_mgr_app_row *row, void *ctx);

/* MGO_ERR_EXISTS when (id, version) is already in the catalog. */
mgo_err mgo_mgr_store_app_put(struct mgo_mgr_store *s,
                              const struct mgo_mgr_app_row *row) MGO_MUST_CHECK;
/* version NULL = the most recently added version. MGO_ERR_NOT_FOUND when absent. */
mgo_err mgo_mgr_store_app_get(struct mgo_mgr_store *s, const char *id, const char *version,
                              mgo_mgr_app_visit visit, void *ctx) MGO_MUST_CHECK;
/* Every version of every app (id, then order added); id non-NULL limits to one app. */
mgo_err mgo_mgr_store_app_list(struct mgo_mgr_store *s, const char *id, mgo_mgr_app_visit visit,
                               void *ctx) MGO_MUST_CHECK;
/* version NULL = every version. MGO_ERR_CONFLICT while a deployment that is not removed uses
 * it, MGO_ERR_NOT_FOUND when nothing matched. */
mgo_err mgo_mgr_store_app_delete(struct mgo_mgr_store *s, const char *id,
                                 const char *version) MGO_MUST_CHECK;

/* ---- devices ------------------------------------------------------------------------ */

struct mgo_mgr_device_row {
    const char *id;
    uint64_t events_dropped;     /* events refused over the event rate, ever */
    uint64_t statuses_over_rate; /* statuses past the status rate (stored all the same) */
    uint64_t positions_dropped;  /* journal positions not kept past the gap bound */
    const uint8_t *caps; /* DeviceCapabilities as canonical MessagePack; NULL if never sent */
    size_t caps_len;
    bool has_presence;
    bool online;
    uint64_t boot;
    int64_t last_seen_ms;
    const char *binding; /* MGO_MGR_BINDING_MQTT or MGO_MGR_BINDING_HTTP (schema 6) */
};
typedef mgo_err (*mgo_mgr_device_visit)(const struct mgo_mgr_device_row *row, void *ctx);

mgo_err mgo_mgr_store_device_put_caps(struct mgo_mgr_store *s, const char *id, const uint8_t *caps,
                                      size_t caps_len) MGO_MUST_CHECK;
mgo_err mgo_mgr_store_device_put_presence(struct mgo_mgr_store *s, const char *id, bool online,
                                          uint64_t boot) MGO_MUST_CHECK;
mgo_err mgo_mgr_store_device_get(struct mgo_mgr_store *s, const char *id,
                                 mgo_mgr_device_visit visit, void *ctx) MGO_MUST_CHECK;
mgo_err mgo_mgr_store_device_list(struct mgo_mgr_store *s, mgo_mgr_device_visit visit,
                                  void *ctx) MGO_MUST_CHECK;

/* ---- deployments --------------------------------------------------------------------- */

enum mgo_mgr_desired {
    MGO_MGR_DESIRED_PRESENT = 0, /* listed in the device's manifest */
    MGO_MGR_DESIRED_REMOVING,    /* left out of the manifest; waiting for "removed" */
    MGO_MGR_DESIRED_REMOVED,     /* device reported removed; retained document cleared */
};
const char *mgo_mgr_desired_name(enum mgo_mgr_desired d);

struct mgo_mgr_deployment_row {
    const char *id;
    const char *device_id;
    const char *app_id;
    const char *app_version;
    const char *profile_type;
    const char *parameters_json; /* the answers as a JSON object */
    const uint8_t *doc;          /* ApplicationDeployment, canonical MessagePack */
    size_t doc_len;
    const char *digest; /* mgo_doc_digest of doc */
    enum mgo_mgr_desired desired;
    uint64_t manifest_version; /* manifest in which this revision first appeared */
    int64_t created_ms;
    int64_t updated_ms;
};
typedef mgo_err (*mgo_mgr_deployment_visit)(const struct mgo_mgr_deployment_row *row, void *ctx);

/* Inserts or replaces by id (created_ms is kept on replace). */
mgo_err mgo_mgr_store_deployment_put(struct mgo_mgr_store *s,
                                     const struct mgo_mgr_deployment_row *row) MGO_MUST_CHECK;
mgo_err mgo_mgr_store_deployment_set_desired(struct mgo_mgr_store *s, const char *id,
                                             enum mgo_mgr_desired desired) MGO_MUST_CHECK;
mgo_err mgo_mgr_store_deployment_get(struct mgo_mgr_store *s, const char *id,
                                     mgo_mgr_deployment_visit visit, void *ctx) MGO_MUST_CHECK;
/* device / app_id NULL = any; include_removed false skips REMOVED rows. Ordered by
 * creation. */
mgo_err mgo_mgr_store_deployment_list(struct mgo_mgr_store *s, const char *device_id,
                                      const char *app_id, bool include_removed,
                                      mgo_mgr_deployment_visit visit, void *ctx) MGO_MUST_CHECK;

/* ---- per-device manifest versions -------------------------------------------------- */

/* Next manifestVersion for device (last + 1, starting at 1), stored at once. Call inside
 * the transaction that stores the deployment change. */
mgo_err mgo_mgr_store_manifest_bump(struct mgo_mgr_store *s, const char *device_id,
                                    uint64_t *version_out) MGO_MUST_CHECK;
/* version/published 0 when the device never had a manifest. */
mgo_err mgo_mgr_store_manifest_get(struct mgo_mgr_store *s, const char *device_id,
                                   uint64_t *version_out, uint64_t *published_out) MGO_MUST_CHECK;
/* Records that the broker acknowledged manifest `version` (never lowers it). */
mgo_err mgo_mgr_store_manifest_set_published(struct mgo_mgr_store *s, const char *device_id,
                                             uint64_t version) MGO_MUST_CHECK;
typedef mgo_err (*mgo_mgr_id_visit)(const char *id, void *ctx);
/* One page of a walk over the devices with a manifest, in device id order: up to limit
 * devices whose id sorts after `after` ("" or NULL: from the first), with their newest
 * manifestVersion; with unpublished_only, those whose newest manifest the broker has not
 * acknowledged yet. Devices bound to HTTP are left out (they poll; nothing is published for
 * them). Each is visited with its newest version and the newest the broker acknowledged; a
 * role stored as a device by an older version with version 0 (never published). Fewer than
 * limit visits: the walk reached the end. */
typedef mgo_err (*mgo_mgr_manifest_visit)(const char *device_id, uint64_t version,
                                          uint64_t published, void *ctx);
mgo_err mgo_mgr_store_manifest_page(struct mgo_mgr_store *s, bool unpublished_only,
                                    const char *after, size_t limit, mgo_mgr_manifest_visit visit,
                                    void *ctx) MGO_MUST_CHECK;

/* ---- status ------------------------------------------------------------------------- */

struct mgo_mgr_status_row {
    const char *deployment_id;
    const char *device_id;
    const char *state; /* overall state name */
    bool has_journal;
    uint64_t boot;
    uint64_t seq;
    const char *doc_json; /* the DeploymentStatus as JSON */
    int64_t received_ms;
};
typedef mgo_err (*mgo_mgr_status_visit)(const struct mgo_mgr_status_row *row, void *ctx);

/* ---- journal positions and receipts (schema 4, protocol.md §6.3) ------------------- */

#define MGO_MGR_EPOCH_SIZE 65 /* a receipt epoch (at most 64 hex digits) and its NUL */

/* A device's receipt: every status up to (boot, seq) is handled (stored, or refused for
 * good). Statuses handled beyond a gap wait in the store until the gap is filled. */
struct mgo_mgr_position {
    char new_epoch[MGO_MGR_EPOCH_SIZE]; /* in: the epoch to take if this opens a gap */
    bool gap_opened;                    /* out: a replay is needed (the epoch changed) */
    char epoch[MGO_MGR_EPOCH_SIZE];     /* out: the device's receipt epoch */
    uint64_t boot, seq;                 /* out: handled up to */
};
/* The epoch of this manager run: given to devices added from now on. */
void mgo_mgr_store_set_epoch(struct mgo_mgr_store *s, const char *epoch);
/* At start: every device's receipts carry this run's epoch (set first), so every agent
 * replays what this run may not have stored. */
mgo_err mgo_mgr_store_receipts_reset(struct mgo_mgr_store *s) MGO_MUST_CHECK;
typedef mgo_err (*mgo_mgr_receipt_visit)(const char *device_id, const char *epoch, uint64_t boot,
                                         uint64_t seq, void *ctx);
/* Every device that has handled statuses, with its receipt. */
mgo_err mgo_mgr_store_receipts_list(struct mgo_mgr_store *s, mgo_mgr_receipt_visit visit,
                                    void *ctx) MGO_MUST_CHECK;
/* Takes a status position as handled without storing a status (one refused for good, e.g.
 * for a deployment the manager does not know). MGO_ERR_STALE when handled before. */
mgo_err mgo_mgr_store_position_take(struct mgo_mgr_store *s, const char *device_id, uint64_t boot,
                                    uint64_t seq, struct mgo_mgr_position *out) MGO_MUST_CHECK;

struct mgo_mgr_status_outcome {
    bool changed;      /* the deployment's overall state changed (false for an older one) */
    bool newest;       /* it is now the deployment's status; false: an older transition (a
                        * replay), added to the history only */
    bool has_position; /* a journaled status: position tells the device's receipt */
    struct mgo_mgr_position position; /* new_epoch is an input, see above */
};
/* In one transaction: a journaled status whose position was handled before is refused
 * (MGO_ERR_STALE); otherwise it is added to the deployment's history, becomes its current
 * status when it is newer than the current one, and the device's position moves on.
 * received_ms is filled by the store when 0. out may be NULL. */
mgo_err mgo_mgr_store_status_apply(struct mgo_mgr_store *s, const struct mgo_mgr_status_row *row,
                                   struct mgo_mgr_status_outcome *out) MGO_MUST_CHECK;
mgo_err mgo_mgr_store_status_get(struct mgo_mgr_store *s, const char *deployment_id,
                                 mgo_mgr_status_visit visit, void *ctx) MGO_MUST_CHECK;
/* device_id NULL = all devices. */
mgo_err mgo_mgr_store_status_list(struct mgo_mgr_store *s, const char *device_id,
                                  mgo_mgr_status_visit visit, void *ctx) MGO_MUST_CHECK;
/* Keeps at most `per_deployment` reports in each deployment's history (0 = all, the
 * default): a status insert whose history row number is a multiple of
 * min(per_deployment, 64) deletes that deployment's older reports, so a history passes the
 * limit by less than one pruning interval and pruning costs a fraction of a statement per
 * status. */
void mgo_mgr_store_set_history_limit(struct mgo_mgr_store *s, uint32_t per_deployment);
/* Transitions of one deployment in journal-position order (oldest first). */
mgo_err mgo_mgr_store_status_history(struct mgo_mgr_store *s, const char *deployment_id,
                                     mgo_mgr_status_visit visit, void *ctx) MGO_MUST_CHECK;

/* Positions kept per device beyond a gap (device_positions) at most by default: the agent's
 * journal holds at most MGO_JOURNAL_MAX_PENDING (65,536) unreceipted statuses, so an agent
 * that follows the protocol never has more waiting. Past it a status is still stored, but its
 * position is not kept and is counted (positions_dropped): its receipt does not cover it, so
 * the agent replays it after the next epoch (a duplicate in the history at worst). */
#define MGO_MGR_AHEAD_LIMIT 65536u
void mgo_mgr_store_set_ahead_limit(struct mgo_mgr_store *s, uint32_t per_device);

/* ---- rates (schema 5) -------------------------------------------------------------- */

enum mgo_mgr_rate_kind { MGO_MGR_RATE_EVENTS, MGO_MGR_RATE_STATUSES };
struct mgo_mgr_rate {
    bool over;            /* this message is past the limit of its window */
    uint64_t window_over; /* messages past the limit in the current window, this one too */
    uint64_t ended_over;  /* when this message opened a new window: the excess of the one
                           * that ended (0 otherwise) */
    uint64_t total_over;  /* the device's counter: events_dropped / statuses_over_rate */
};
/* Counts one message of kind from device in its per-minute window (a fixed window of 60 s
 * opened by the first message after the last one ended) and tells whether it is past
 * per_minute (0 = no limit: never over). The excess is added to the device's counter. Adds
 * the device when missing; MGO_ERR_INVALID for a role identity. */
mgo_err mgo_mgr_store_rate_take(struct mgo_mgr_store *s, const char *device_id,
                                enum mgo_mgr_rate_kind kind, uint32_t per_minute, int64_t now_ms,
                                struct mgo_mgr_rate *out) MGO_MUST_CHECK;

/* ---- device events (schema 2) ----------------------------------------------------- */

/* Keeps at most per_device events of each device (0 = all): an insert whose per-device count
 * is a multiple of min(per_device, 64) deletes that device's older events, so a device passes
 * the limit by less than one pruning interval. Default 0. */
void mgo_mgr_store_set_event_limit(struct mgo_mgr_store *s, uint32_t per_device);
/* MGO_ERR_INVALID for a role identity. */
mgo_err mgo_mgr_store_event_add(struct mgo_mgr_store *s, const char *device_id, const char *type,
                                const char *severity, const char *message) MGO_MUST_CHECK;
mgo_err mgo_mgr_store_event_count(struct mgo_mgr_store *s, const char *device_id,
                                  uint64_t *count_out) MGO_MUST_CHECK;

/* ---- metrics and readiness (docs/operations.md) ---- */
struct mgo_histogram;
/* Durations of statements that return no rows (write) and of outermost commits go into
 * these (NULL: not measured). Loop thread, like every store call. */
void mgo_mgr_store_set_metrics(struct mgo_mgr_store *s, struct mgo_histogram *write,
                               struct mgo_histogram *commit);
/* A trivial query: MGO_OK when the database answers. */
mgo_err mgo_mgr_store_ping(struct mgo_mgr_store *s) MGO_MUST_CHECK;

/* ---- fleet overview (schema 6, GET /overview) ------------------------------------- */

/* Samples kept by default: 7 days at the default interval of one a minute. */
#define MGO_MGR_SAMPLES_DEFAULT 10080u
struct mgo_mgr_sample {
    int64_t t_ms;     /* wall clock of the sample */
    uint64_t online;  /* devices whose last presence was online */
    uint64_t offline; /* every other known device (offline, or presence never received) */
};
typedef mgo_err (*mgo_mgr_sample_visit)(const struct mgo_mgr_sample *row, void *ctx);
/* Keeps at most `keep` samples (at least 1; default MGO_MGR_SAMPLES_DEFAULT). */
void mgo_mgr_store_set_sample_limit(struct mgo_mgr_store *s, uint32_t keep);
/* Devices online now and the rest (see struct mgo_mgr_sample). */
mgo_err mgo_mgr_store_device_counts(struct mgo_mgr_store *s, uint64_t *online,
                                    uint64_t *offline) MGO_MUST_CHECK;
/* In one transaction: counts the devices, stores the sample at t_ms and deletes the samples
 * older than the newest `keep` (by insertion). out (may be NULL) gets the sample. */
mgo_err mgo_mgr_store_sample_add(struct mgo_mgr_store *s, int64_t t_ms,
                                 struct mgo_mgr_sample *out) MGO_MUST_CHECK;
/* Samples taken from since_ms to until_ms, oldest first, at most one per bucket_ms-wide
 * bucket counted from since_ms (the bucket's newest). */
mgo_err mgo_mgr_store_samples(struct mgo_mgr_store *s, int64_t since_ms, int64_t until_ms,
                              int64_t bucket_ms, mgo_mgr_sample_visit visit,
                              void *ctx) MGO_MUST_CHECK;
mgo_err mgo_mgr_store_sample_count(struct mgo_mgr_store *s, uint64_t *count_out) MGO_MUST_CHECK;

struct mgo_mgr_state_count {
    const char *app_id;
    const char *state; /* overall state of the newest status; NULL: never reported */
    uint64_t count;
};
typedef mgo_err (*mgo_mgr_state_count_visit)(const struct mgo_mgr_state_count *row, void *ctx);
/* Deployments not removed, counted by state (app_id NULL), or with by_app by app and state
 * (app, then state, ascending). */
mgo_err mgo_mgr_store_deployment_states(struct mgo_mgr_store *s, bool by_app,
                                        mgo_mgr_state_count_visit visit, void *ctx) MGO_MUST_CHECK;

struct mgo_mgr_failure_row {
    int64_t received_ms;
    const char *device_id;
    const char *deployment_id;
    const char *app_id;      /* NULL when the deployment is no longer stored */
    const char *app_version; /* likewise */
    const char *component;   /* NULL: the report's overall error (no component failed) */
    const char *code;        /* NULL when the report carries none */
    const char *message;     /* likewise */
};
typedef mgo_err (*mgo_mgr_failure_visit)(const struct mgo_mgr_failure_row *row, void *ctx);
/* The newest failures in the status history received at or after since_ms, newest first, at
 * most limit: each failed component of a report whose overall state is failed, or the
 * report's overall error when no component is marked failed. As long as the history keeps
 * them (status-history). */
mgo_err mgo_mgr_store_failures(struct mgo_mgr_store *s, int64_t since_ms, uint32_t limit,
                               mgo_mgr_failure_visit visit, void *ctx) MGO_MUST_CHECK;
/* ---- the southbound Margo HTTP API (schema 7, docs/margo-http.md) ----------------- */

/* How a device talks to the manager: its own MQTT binding, or Margo's standard HTTP API
 * (the manager publishes no MQTT desired state for it; it polls for its manifest). */
#define MGO_MGR_BINDING_MQTT "mqtt"
#define MGO_MGR_BINDING_HTTP "http"
/* Adds the device when missing. MGO_ERR_INVALID for another binding, a role, or schema < 6. */
mgo_err mgo_mgr_store_device_set_binding(struct mgo_mgr_store *s, const char *id,
                                         const char *binding) MGO_MUST_CHECK;
/* *http_out: the device exists and is bound to HTTP. */
mgo_err mgo_mgr_store_device_is_http(struct mgo_mgr_store *s, const char *id,
                                     bool *http_out) MGO_MUST_CHECK;
/* What ingesting a status of device_id for deployment_id reads, in one statement: whether
 * the device exists and is bound to HTTP (as mgo_mgr_store_device_is_http), and the
 * deployment's device, desired state and manifestVersion (found false: no such deployment).
 * The deployment document and parameters are not read. */
struct mgo_mgr_status_target {
    bool http;
    bool found;
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
    enum mgo_mgr_desired desired;
    uint64_t manifest_version;
};
mgo_err mgo_mgr_store_status_target(struct mgo_mgr_store *s, const char *device_id,
                                    const char *deployment_id,
                                    struct mgo_mgr_status_target *out) MGO_MUST_CHECK;
/* Unregisters a device's capabilities (DELETE /api/v1/capabilities/{id}): it keeps its
 * deployments and history but matches nothing until it reports again. MGO_ERR_NOT_FOUND
 * when it has none. */
mgo_err mgo_mgr_store_device_forget_caps(struct mgo_mgr_store *s, const char *id) MGO_MUST_CHECK;
/* The accepted-client list: a client whose X.509-SVID verifies is served only when its
 * client id is on it. allow: *added_out (may be NULL) false when it was already there. */
mgo_err mgo_mgr_store_client_allow(struct mgo_mgr_store *s, const char *id,
                                   bool *added_out) MGO_MUST_CHECK;
/* MGO_ERR_NOT_FOUND when id is not on the list. */
mgo_err mgo_mgr_store_client_deny(struct mgo_mgr_store *s, const char *id) MGO_MUST_CHECK;
typedef mgo_err (*mgo_mgr_client_visit)(const char *id, int64_t added_ms, void *ctx);
/* id NULL: every client, by id; else just that one (MGO_ERR_NOT_FOUND when absent). */
mgo_err mgo_mgr_store_client_list(struct mgo_mgr_store *s, const char *id,
                                  mgo_mgr_client_visit visit, void *ctx) MGO_MUST_CHECK;

/* ---- device labels, rollouts (schema 8, docs/rollouts.md) ---------------------------- */

/* Devices in id order whose id sorts after `after` ("" = from the first). A visitor that has
 * seen enough ends the walk with a non-MGO_OK value (returned as is), so a page costs only
 * the rows it reads. */
mgo_err mgo_mgr_store_device_list_after(struct mgo_mgr_store *s, const char *after,
                                        mgo_mgr_device_visit visit, void *ctx) MGO_MUST_CHECK;

typedef mgo_err (*mgo_mgr_label_visit)(const char *key, const char *value, void *ctx);
/* Sets (inserts or replaces) one operator label. MGO_ERR_NOT_FOUND for an unknown device,
 * MGO_ERR_LIMIT past max_per_device labels. Keys and values are checked by the caller. */
mgo_err mgo_mgr_store_label_set(struct mgo_mgr_store *s, const char *device_id, const char *key,
                                const char *value, uint32_t max_per_device) MGO_MUST_CHECK;
/* MGO_ERR_NOT_FOUND when the device has no such label. */
mgo_err mgo_mgr_store_label_delete(struct mgo_mgr_store *s, const char *device_id,
                                   const char *key) MGO_MUST_CHECK;
/* A device's operator labels in key order. */
mgo_err mgo_mgr_store_label_list(struct mgo_mgr_store *s, const char *device_id,
                                 mgo_mgr_label_visit visit, void *ctx) MGO_MUST_CHECK;

/* A rollout. Strings are never NULL except parameters_json (NULL: none given). Thresholds
 * are -1 when not set. */
struct mgo_mgr_rollout_row {
    const char *id;
    const char *app_id;
    const char *version;
    const char *parameters_json; /* the answers as a JSON object, or NULL */
    const char *mode;            /* "deploy" | "upgrade" */
    const char *selector;        /* "" when devices were listed */
    const char *on_abort;        /* "stop" | "rollback" */
    const char *offline_count;   /* "skipped" | "failed" */
    uint32_t batch_size, batch_percent, canary_size, max_in_flight;
    uint32_t gate_timeout_s, soak_s, offline_grace_s;
    int64_t fail_batch_count, fail_batch_percent, fail_total_count, fail_total_percent;
    bool app_failures_only;
    const char *state;        /* docs/rollouts.md "States" */
    const char *reason;       /* why it stopped, or "" */
    uint32_t batches;         /* number of batches */
    uint32_t batch;           /* the current batch, 0-based */
    int64_t batch_started_ms; /* 0: the current batch has not started */
    int64_t batch_done_ms;    /* 0: not done; else its soak runs from here */
    int64_t created_ms, updated_ms, finished_ms;
    uint64_t targets; /* filled by get/list */
};
typedef mgo_err (*mgo_mgr_rollout_visit)(const struct mgo_mgr_rollout_row *row, void *ctx);

/* One device of a rollout. */
struct mgo_mgr_target_row {
    const char *rollout_id;
    const char *device_id;
    uint32_t seq;                /* order in the rollout */
    uint32_t batch;              /* 0-based */
    const char *state;           /* waiting updating succeeded failed lagging skipped
                                  * rolling-back rolled-back */
    const char *deployment_id;   /* "" until known */
    const char *prev_version;    /* "" : none (a new deployment; rollback removes it) */
    const char *prev_parameters; /* JSON, NULL when prev_version is "" */
    uint64_t manifest_version;   /* of the change the rollout made (update, or rollback) */
    int64_t started_ms, done_ms;
    const char *code;   /* failure code or "" */
    const char *class_; /* failure class name or "" */
    const char *message;
};
typedef mgo_err (*mgo_mgr_target_visit)(const struct mgo_mgr_target_row *row, void *ctx);

/* Inserts a new rollout (MGO_ERR_EXISTS for a used id); updated with _update. */
mgo_err mgo_mgr_store_rollout_put(struct mgo_mgr_store *s,
                                  const struct mgo_mgr_rollout_row *row) MGO_MUST_CHECK;
/* Stores the progress fields (state, reason, batch, batch_started_ms, batch_done_ms,
 * finished_ms; updated_ms = now). MGO_ERR_NOT_FOUND. */
mgo_err mgo_mgr_store_rollout_update(struct mgo_mgr_store *s,
                                     const struct mgo_mgr_rollout_row *row) MGO_MUST_CHECK;
mgo_err mgo_mgr_store_rollout_get(struct mgo_mgr_store *s, const char *id,
                                  mgo_mgr_rollout_visit visit, void *ctx) MGO_MUST_CHECK;
/* Rollouts counted by state (row.app_id NULL), in state order; at most one row per state. */
mgo_err mgo_mgr_store_rollout_states(struct mgo_mgr_store *s, mgo_mgr_state_count_visit visit,
                                     void *ctx) MGO_MUST_CHECK;
/* Newest first; active_only: those not finished (running, paused, rolling-back). */
mgo_err mgo_mgr_store_rollout_list(struct mgo_mgr_store *s, bool active_only, uint32_t limit,
                                   uint32_t offset, mgo_mgr_rollout_visit visit,
                                   void *ctx) MGO_MUST_CHECK;
/* Inserts or replaces by (rollout_id, device_id). */
mgo_err mgo_mgr_store_target_put(struct mgo_mgr_store *s,
                                 const struct mgo_mgr_target_row *row) MGO_MUST_CHECK;
/* Targets of a rollout in seq order; batch < 0 = every batch; state NULL = any. */
mgo_err mgo_mgr_store_target_list(struct mgo_mgr_store *s, const char *rollout_id, int64_t batch,
                                  const char *state, mgo_mgr_target_visit visit,
                                  void *ctx) MGO_MUST_CHECK;
/* Whether device has a target in a rollout that is not finished (its id in active_out, or
 * "" when none). */
mgo_err mgo_mgr_store_target_active(struct mgo_mgr_store *s, const char *device_id,
                                    char active_out[MGO_UUID_STR_SIZE]) MGO_MUST_CHECK;

/* Every deployment that is not removed, with its app, version, the state of its newest
 * status ("" when none) and that status as JSON when the state is failed (else NULL), in app
 * order: the fleet roll-up per app (rollup.c). */
typedef mgo_err (*mgo_mgr_app_state_visit)(const char *app_id, const char *version,
                                           const char *state, const char *failed_json, void *ctx);
mgo_err mgo_mgr_store_app_states(struct mgo_mgr_store *s, mgo_mgr_app_state_visit visit,
                                 void *ctx) MGO_MUST_CHECK;

/* ---- the paged deployment list (docs/api.md "GET /api/v1/deployments") ----------------- */

/* A page of deployments: rows with id > after in id order (keyset pagination by the
 * primary key), filtered in SQL. NULL strings mean "any". */
struct mgo_mgr_deployment_query {
    const char *after;     /* "" or NULL: from the first */
    const char *device_id; /* exactly this device */
    const char *app_id;    /* exactly this app */
    bool include_removed;  /* false skips REMOVED rows */
    const char *state;     /* overall state of the newest status; "unreported": none stored */
    uint32_t limit;        /* rows at most; 0 = no limit (the visitor ends the walk) */
};
/* Visits the rows of q in id order; a visitor's error ends the walk and is returned. */
mgo_err mgo_mgr_store_deployment_page(struct mgo_mgr_store *s,
                                      const struct mgo_mgr_deployment_query *q,
                                      mgo_mgr_deployment_visit visit, void *ctx) MGO_MUST_CHECK;

/* ---- leases (schema 9, docs/scaling.md "Several managers") ---------------------------- */

#define MGO_MGR_LEASE_NAME_MAX 192 /* a lease's name and a holder's, at most */
struct mgo_mgr_lease {
    bool held;          /* the caller holds it now */
    uint64_t term;      /* grows by one each time the lease changes hands (a fencing token) */
    int64_t expires_ms; /* the database's clock (the statement reads it, not the caller's) */
    char holder[MGO_MGR_LEASE_NAME_MAX + 1];
};
/* One atomic statement: takes lease `name` for holder until ttl_ms from now (the database's
 * clock: clock_timestamp() in PostgreSQL, the file's host in SQLite) when it is free or expired, or
 * renews it when holder has it. Otherwise out tells who holds it until when (held false). */
mgo_err mgo_mgr_store_lease_take(struct mgo_mgr_store *s, const char *name, const char *holder,
                                 uint32_t ttl_ms, struct mgo_mgr_lease *out) MGO_MUST_CHECK;
/* Lets the lease expire now when holder has it (a clean stop: another takes it at once). */
mgo_err mgo_mgr_store_lease_release(struct mgo_mgr_store *s, const char *name,
                                    const char *holder) MGO_MUST_CHECK;
/* Deletes every expired lease whose name starts with prefix (one statement, so of two callers
 * only one deletes a lease) and visits the names it deleted (at most 16 a call; the others are
 * deleted and logged). */
mgo_err mgo_mgr_store_lease_reap(struct mgo_mgr_store *s, const char *prefix,
                                 mgo_mgr_id_visit visit, void *ctx) MGO_MUST_CHECK;

/* Inside a transaction: the device's manifestVersion (0: none), its row locked until the
 * transaction ends where several managers share the database (SELECT ... FOR UPDATE), so that
 * what is read with it (the deployments of that version) is not changed by another manager
 * meanwhile. MGO_ERR_INTERNAL outside a transaction. */
mgo_err mgo_mgr_store_manifest_lock(struct mgo_mgr_store *s, const char *device_id,
                                    uint64_t *version_out) MGO_MUST_CHECK;

/* ---- live events across managers (docs/scaling.md "Several managers") ------------------ */

/* PostgreSQL only: NOTIFY channel with each of the n payloads (each shorter than
 * MGO_MGR_NOTIFY_MAX bytes, no NUL), in one statement. Inside a transaction the notifications
 * go out at its commit, in commit order, and not at all when it is rolled back.
 * MGO_ERR_INVALID on SQLite or for a payload too long. */
#define MGO_MGR_NOTIFY_MAX 8000u
mgo_err mgo_mgr_store_notify(struct mgo_mgr_store *s, const char *channel,
                             const char *const *payloads, size_t n) MGO_MUST_CHECK;

#endif
