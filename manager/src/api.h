/* api.h - the northbound HTTP JSON API (docs/api.md): routing and replies. Runs on the loop
 * thread (http.c hands each request over and waits); handlers use the store, deploy.c and
 * the event-stream hub through struct mgo_api, never the daemon. */
#ifndef MGO_MGR_API_H
#define MGO_MGR_API_H

#include <stdbool.h>
#include <stddef.h>

#include "mgo/buf.h"
#include "mgo/limits.h"
#include "mgo/mgr_store.h"
#include "mgo/problems.h"

#define MGO_API_MAX_QUERY 16
#define MGO_API_MAX_BODY (MGO_MAX_FILE_BYTES + 64u * 1024u)

struct mgo_publisher;
struct mgo_sse_client;
struct mgo_sse_hub;

struct mgo_api_query {
    char key[32];
    char value[256];
};

/* One HTTP request, filled by an HTTP thread, answered on the loop thread. */
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
    /* the southbound Margo API's listener only (southbound.c, docs/margo-http.md) */
    char client_id[MGO_MAX_DEVICE_ID_LEN + 1]; /* from the verified X.509-SVID */
    char if_none_match[256];                   /* request headers ("" when absent) */
    char accept[256];
    char host[256];
    bool header_overflow;      /* one of them was longer */
    char etag[80];             /* reply headers ("" / NULL: none) */
    const char *cache_control; /* a string literal */
    const char *vary;          /* a string literal */
    unsigned retry_after_s;    /* 429 */
};

/* What the handlers work on. */
struct mgo_api {
    struct mgo_mgr_store *store;
    struct mgo_publisher *pub; /* deploy.c publishes through it */
    struct mgo_sse_hub *hub;
    /* catalog-dir: the folder POST /apps {"path": ...} may read from; NULL or "": the path
     * form is refused */
    const char *catalog_dir;
};

/* A route handler: arg[i] is the value of the i-th {name} segment of the route's path. */
typedef void (*mgo_api_handler)(struct mgo_api *api, struct mgo_api_request *req,
                                const char *const *arg);

#define MGO_API_MAX_PATH_ARGS 4

/* One route of the API: docs/openapi.yaml has exactly these (method, path) pairs. */
struct mgo_api_route {
    const char *method; /* "GET", "POST", "PATCH", "DELETE" */
    const char *path;   /* template, "/api/v1/deployments/{id}"; {name} = one segment */
    mgo_api_handler handler;
    bool no_token; /* answered without the bearer token (http.c asks mgo_api__public) */
};

/* The route table (static, read-only, *len entries), for listing what is served. */
const struct mgo_api_route *mgo_api__routes(size_t *len);
/* The template of the first route whose path matches path (any method), or NULL: a bounded
 * label for metrics. Any thread. */
const char *mgo_api__template(const char *path);
/* Whether method + path is a public route (no token needed). Any thread. */
bool mgo_api__public(const char *method, const char *path);

/* docs/openapi.yaml, embedded at build time (generated openapi_doc.c). */
extern const unsigned char mgo_api__openapi[];
extern const size_t mgo_api__openapi_len;

/* Loop thread: answers req (status, reply, or an event stream in req->sse). */
void mgo_api__handle(struct mgo_api *api, struct mgo_api_request *req);
/* Replaces the reply with an RFC 9457 problem document (docs/api.md "Errors"); 500 and 503
 * are marked retryable. Any thread (it touches only req). */
void mgo_api__problem(struct mgo_api_request *req, unsigned status, const char *type,
                      const char *title, const char *detail, const struct mgo_problems *problems);
/* Parses the JSON body into a map; false after answering 400 with a problem when it is not
 * one (empty, not JSON, not an object). Loop thread. */
struct mgo_arena;
struct mgo_value;
bool mgo_api__body_map(struct mgo_api_request *req, struct mgo_arena *arena, struct mgo_value *out);
/* The value of query parameter key (first one), or NULL. */
const char *mgo_api__query(const struct mgo_api_request *req, const char *key);

#endif
