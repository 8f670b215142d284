/* mgr_internal.h - what the manager's modules share (private to manager/src).
 *
 *   manager.c  loop thread, MQTT ingest (status, capabilities, presence, events),
 *              publishing of deployments and desired-state manifests
 *   deploy.c   deploy / update / remove (store transaction, then publish)
 *   api.c      northbound HTTP API routes (run on the loop thread)
 *   http.c     libmicrohttpd glue: auth, bodies, hand-off to the loop thread
 *   sse.c      Server-Sent Events hub shared by the loop thread and HTTP threads
 *   jw.c       JSON writer */
#ifndef MGO_MGR_INTERNAL_H
#define MGO_MGR_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "mgo/backoff.h"
#include "mgo/buf.h"
#include "mgo/manager.h"
#include "mgo/margo.h"
#include "mgo/mgr_store.h"
#include "mgo/mqtt.h"
#include "mgo/problems.h"
#include "mgo/sign.h"
#include "mgo/topic.h"

/* Deliberately ignores a result (a (void) cast does not silence warn_unused_result). */
#define MGO_IGNORE(expr)                                                                       \
    do {                                                                                       \
        mgo_err ignored_ = (expr);                                                             \
        (void)ignored_;                                                                        \
    } while (0)

#define MGO_API_MAX_QUERY 16
#define MGO_API_MAX_BODY (MGO_MAX_FILE_BYTES + 64u * 1024u)
#define MGO_API_TOKEN_MAX 512
#define MGO_MGR_MAX_PENDING_PUBS 1024
/* device messages held while the store refuses writes, and how often they are retried */
#define MGO_MGR_MAX_HELD 65536u
#define MGO_MGR_HELD_RETRY_MS 1000

struct mgo_sse_client;
struct mgo_sse_hub;
struct MHD_Daemon;

struct mgo_api_query {
    char key[32];
    char value[256];
};

/* One HTTP request handed from an HTTP thread to the loop thread. */
struct mgo_api_request {
    const char *method; /* "GET", "POST", "PATCH", "DELETE", ... */
    char path[512];
    struct mgo_api_query query[MGO_API_MAX_QUERY];
    size_t query_len;
    bool query_overflow;
    struct mgo_buf body;
    bool body_too_large;
    /* reply, filled on the loop thread */
    unsigned status;
    const char *content_type;
    struct mgo_buf reply;
    char location[256];
    struct mgo_sse_client *sse; /* set for GET /api/v1/events */
    bool done;
    struct mgo_api_request *next;
};

struct mgo_pending_pub {
    int token;
    uint64_t version;
    char device[MGO_MAX_DEVICE_ID_LEN + 1];
};

struct mgo_manager {
    const struct mgo_manager_config *cfg;
    struct mgo_mgr_store *store;
    struct mgo_mqtt *mqtt;
    char *password; /* read from password_file */
    struct mgo_sign_key *sign_key; /* signing-key, or NULL: documents go out unsigned */
    struct mgo_backoff backoff;
    bool connected;
    bool connecting;
    int64_t next_connect_ms;
    struct mgo_pending_pub pending[MGO_MGR_MAX_PENDING_PUBS];
    size_t pending_len;
    char token[MGO_API_TOKEN_MAX + 1];
    size_t token_len;
    struct MHD_Daemon *httpd;
    struct mgo_buf api_tls_cert; /* PEM of api-tls-cert / api-tls-key while the API runs */
    struct mgo_buf api_tls_key;
    uint16_t api_port;
    struct mgo_sse_hub *hub;
    /* request queue: HTTP threads -> loop thread */
    pthread_mutex_t req_mu;
    pthread_cond_t req_cond;
    struct mgo_api_request *req_head;
    struct mgo_api_request *req_tail;
    bool req_closed;
    atomic_bool stop;
    /* device messages the store could not take (locked, full, I/O error): kept in arrival
     * order and retried, so nothing acknowledged to the broker is lost (manager.c) */
    struct mgo_mgr_held *held_head;
    struct mgo_mgr_held *held_tail;
    size_t held_len;
    int64_t held_retry_ms;
};

/* manager.c */
/* Publishes device's present deployments (only_id non-NULL: just that one) and its current
 * manifest. Not connected -> left for the reconnect sweep (manifest stays unpublished). */
void mgo_manager__publish_device(struct mgo_manager *m, const char *device_id,
                                 const char *const *changed_ids, size_t changed_len);
/* A deployment being removed that its device never reported (added and removed while the
 * device was away, so the device never acts on it): clears its retained document and
 * marks it removed, since no "removed" status will ever come. No-op once reported. */
void mgo_manager__clear_unreported(struct mgo_manager *m, const char *device_id,
                                   const char *deployment_id);
/* Encodes a document tree for publishing into out: as is, or signed (ES256) when a
 * signing key is configured. The digest of the result equals mgo_doc_digest(tree). */
mgo_err mgo_manager__encode_doc(struct mgo_manager *m, const struct mgo_value *tree,
                                struct mgo_arena *arena, struct mgo_buf *out) MGO_MUST_CHECK;
/* Loads an app version (NULL = newest) from the store into arena. */
mgo_err mgo_manager__load_app(struct mgo_manager *m, const char *id, const char *version,
                              struct mgo_arena *arena, struct mgo_app_description *app,
                              struct mgo_value *tree) MGO_MUST_CHECK;
/* Loads a device's capabilities; MGO_ERR_NOT_FOUND when the device never sent any. */
mgo_err mgo_manager__load_caps(struct mgo_manager *m, const char *device_id,
                               struct mgo_arena *arena, struct mgo_capabilities *caps,
                               struct mgo_value *tree) MGO_MUST_CHECK;

/* deploy.c: each validates everything first and adds problems (field, rule); store
 * changes happen in one transaction, then publishing. */
struct mgo_deploy_request {
    const char *app_id;
    const char *version;           /* NULL = newest */
    const char *const *devices;
    size_t devices_len;
    const struct mgo_value *answers; /* map or NULL */
};
/* ids_out receives devices_len deployment ids (37 bytes each). MGO_ERR_INVALID (problems),
 * MGO_ERR_NOT_FOUND (app), MGO_ERR_CONFLICT (already deployed there). */
mgo_err mgo_deploy__create(struct mgo_manager *m, const struct mgo_deploy_request *req,
                           char (*ids_out)[37], struct mgo_problems *problems) MGO_MUST_CHECK;
/* version NULL = keep; answers NULL = keep. */
mgo_err mgo_deploy__update(struct mgo_manager *m, const char *deployment_id, const char *version,
                           const struct mgo_value *answers, struct mgo_problems *problems)
    MGO_MUST_CHECK;
mgo_err mgo_deploy__remove(struct mgo_manager *m, const char *deployment_id) MGO_MUST_CHECK;

/* api.c */
void mgo_api__handle(struct mgo_manager *m, struct mgo_api_request *req);
const char *mgo_api__query(const struct mgo_api_request *req, const char *key);
struct mgo_jw;
/* The members of a "status" event of the event stream (docs/api.md), written into an open
 * JSON object: sent live by the loop as statuses arrive, and as a snapshot (snapshot: true)
 * to a client that has just joined. */
void mgo_api__status_event(struct mgo_jw *w, const struct mgo_mgr_status_row *row,
                           const char *desired, uint64_t manifest_version, bool snapshot);

/* http.c */
mgo_err mgo_http__start(struct mgo_manager *m) MGO_MUST_CHECK;
void mgo_http__stop(struct mgo_manager *m);
/* Loop thread: answers every queued request. */
void mgo_http__drain(struct mgo_manager *m);
/* Loop thread at exit: refuses queued and future requests with 503. */
void mgo_http__close_queue(struct mgo_manager *m);

/* sse.c */
mgo_err mgo_sse__hub_new(struct mgo_sse_hub **out) MGO_MUST_CHECK;
void mgo_sse__hub_shutdown(struct mgo_sse_hub *hub); /* ends every stream */
void mgo_sse__hub_free(struct mgo_sse_hub *hub);
/* A client following deployment ids (none = everything); not yet in the hub. */
struct mgo_sse_client *mgo_sse__client_new(const char *const *deployments, size_t n);
/* Queues one event for this client only (snapshot before it joins). */
void mgo_sse__client_push(struct mgo_sse_client *c, const char *event, const char *json);
void mgo_sse__hub_add(struct mgo_sse_hub *hub, struct mgo_sse_client *c);
/* Whether any client follows deployment_id (NULL: events about no deployment), so the loop
 * can skip building an event nobody reads. */
bool mgo_sse__wanted(struct mgo_sse_hub *hub, const char *deployment_id);
/* Loop thread: an event concerning deployment_id (may be NULL) to every interested client. */
void mgo_sse__publish(struct mgo_sse_hub *hub, const char *event, const char *deployment_id,
                      const char *json);
/* HTTP thread: copies up to max bytes of pending stream into buf, waiting for data;
 * returns bytes, 0 never, -1 at end of stream. */
long mgo_sse__read(struct mgo_sse_hub *hub, struct mgo_sse_client *c, char *buf, size_t max);
/* HTTP thread: the connection ended; removes and frees the client. */
void mgo_sse__client_free(struct mgo_sse_hub *hub, struct mgo_sse_client *c);

#endif
