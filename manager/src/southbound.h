/* southbound.h - Margo's standard southbound HTTP API, Workload Management API 1.0.0-rc.3
 * (docs/margo-http.md), served on its own mutual-TLS listener (http.c with a
 * struct mgo_http_southbound): a standard Margo device enrolls with PUT /api/v1/capabilities,
 * polls GET /api/v1/deployments, fetches YAML or bundles by digest and POSTs statuses.
 *
 * The device id is the client id of the caller's X.509-SVID (southbound_id.h); it must be on
 * the accepted-client list (store, managed with margoctl client / the northbound
 * /api/v1/clients). Statuses take the MQTT statuses' path (mgo_ingest__http_status) and are
 * also published, retained, on the device's MQTT status topic; manifests are built from the
 * same present-deployment set as MQTT manifests (mgo_publish__collect) and share their
 * manifestVersion. Routing and handlers run on the loop thread; the functions marked "any
 * thread" only touch the request. */
#ifndef MGO_MGR_SOUTHBOUND_H
#define MGO_MGR_SOUTHBOUND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "api.h"
#include "mgo/err.h"

/* Request bodies (capabilities, statuses) at most. */
#define MGO_SOUTHBOUND_MAX_BODY (256u * 1024u)
/* Replies at most: a bundle of MGO_MAX_DEPLOYMENTS documents of MGO_MAX_MESSAGE_BYTES. */
#define MGO_SOUTHBOUND_MAX_REPLY (80u * 1024u * 1024u)
/* Clients whose request rate is tracked at once (the least recently seen is forgotten). */
#define MGO_SOUTHBOUND_RATE_SLOTS 1024u
/* Default margo-api-rate: requests per client a minute. */
#define MGO_SOUTHBOUND_DEFAULT_RATE 600u
/* Problem types of the Margo specification. */
#define MGO_SB_PROBLEM_BASE                                                                        \
    "https://docs.margo.org/specification/margo-management-interface/problem-types#"

struct mgo_mgr_store;
struct mgo_ingest;
struct mgo_publisher;
struct mgo_sse_hub;
struct mgo_southbound;

struct mgo_southbound_config {
    struct mgo_mgr_store *store;
    struct mgo_ingest *ingest; /* statuses go in through it */
    struct mgo_publisher *pub; /* its outbox and prefix publish the statuses' MQTT copies */
    struct mgo_sse_hub *hub;   /* the event stream (capabilities unregistered); NULL: none */
    const char *trust_domain;  /* answered by GET /.well-known/margo */
    const char *client_ca;     /* PEM file: the trust bundle (bundle.json) */
    uint32_t rate_per_minute;  /* requests per client a minute; 0 = the default */
};

/* Reads the client CA into the trust bundle. MGO_ERR_IO (unreadable), MGO_ERR_INVALID (no
 * usable certificate), MGO_ERR_NOMEM. The pointers must outlive the result. */
mgo_err mgo_southbound__new(const struct mgo_southbound_config *cfg,
                            struct mgo_southbound **out) MGO_MUST_CHECK;
void mgo_southbound__free(struct mgo_southbound *sb); /* NULL is fine */

/* Loop thread: answers req (req->client_id is the verified client id, "" for the public
 * well-known documents). */
void mgo_southbound__handle(struct mgo_southbound *sb, struct mgo_api_request *req);

/* Any thread: whether path is served without a client certificate (the trust bundle). */
bool mgo_southbound__public(const char *path);
/* Any thread: a 403 not-authorized problem for a refused client certificate. */
void mgo_southbound__refuse(struct mgo_api_request *req, const char *why);
/* Any thread: a 413 problem for a body past MGO_SOUTHBOUND_MAX_BODY. */
void mgo_southbound__too_large(struct mgo_api_request *req);

/* Loop thread, northbound (api.c): GET /api/v1/clients, PUT and DELETE /api/v1/clients/{id}
 * (the accepted-client list; id NULL for the collection). */
void mgo_southbound__clients_api(struct mgo_mgr_store *store, struct mgo_api_request *req,
                                 const char *id);

#endif
