/* wfm_client.h - HTTP requests to a Margo WFM on a worker thread (private to agent/).
 *
 * One thread per client runs the submitted requests one at a time, in submission order,
 * with libcurl over mutual TLS (the device's X.509-SVID as client certificate, the WFM's CA;
 * TLS 1.2 at least, 1.3 when the WFM offers it, which Margo makes the default; the WFM
 * authenticated by its SPIFFE ID when peer_id is given). Each answer
 * is posted to the loop, where done() runs; nothing here touches loop state. The loop never
 * waits for the network.
 *
 * Bounds: MGO_WFM_CLIENT_MAX_QUEUE requests waiting, each answer's body capped by the
 * request's max_body, header values cut to their field sizes. free() aborts the transfer in
 * progress (curl's progress callback) and joins the thread; answers not yet run are dropped. */
#ifndef MGO_AGENT_WFM_CLIENT_H
#define MGO_AGENT_WFM_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/err.h"
#include "mgo/loop.h"

#define MGO_WFM_CLIENT_MAX_QUEUE 64u

struct mgo_wfm_client_opts {
    const char *base_url;  /* "https://host:port", no trailing path */
    const char *ca_file;   /* the WFM's trust anchors (PEM); NULL = system store */
    const char *cert_file; /* the device's X.509-SVID (PEM) */
    const char *key_file;
    /* The WFM's SPIFFE ID (spiffe://<td>/margo/wfm/<wfm-id>): its certificate must carry
     * exactly this URI SAN, and the URL's host name is not checked (routing only, Margo).
     * NULL = the usual host name check. */
    const char *peer_id;
    uint32_t timeout_s; /* one whole request */
};

struct mgo_wfm_response {
    int tag;     /* the request's */
    long status; /* HTTP status; 0 = no answer (error says why) */
    char error[256];
    bool too_large; /* the body passed max_body (the request then failed) */
    char etag[160];
    char retry_after[80];
    char content_type[128];
    uint8_t *body; /* owned by the response; freed after done() returns */
    size_t body_len;
};

/* Runs on the loop thread; resp is freed when it returns. */
typedef void (*mgo_wfm_client_done_fn)(void *ctx, const struct mgo_wfm_response *resp);

struct mgo_wfm_client;

/* Starts the thread. opts' strings are copied. MGO_ERR_NOMEM, MGO_ERR_INTERNAL (thread). */
mgo_err mgo_wfm_client_new(struct mgo_loop *loop, const struct mgo_wfm_client_opts *opts,
                           mgo_wfm_client_done_fn done, void *ctx,
                           struct mgo_wfm_client **out) MGO_MUST_CHECK;
/* Aborts and joins; NULL is fine. Loop thread, loop stopped or running. */
void mgo_wfm_client_free(struct mgo_wfm_client *c);

/* Loop thread: queues METHOD base_url+path. accept, if_none_match, content_type and body
 * (copied) are optional. MGO_ERR_LIMIT when MGO_WFM_CLIENT_MAX_QUEUE wait, MGO_ERR_NOMEM. */
mgo_err mgo_wfm_client_submit(struct mgo_wfm_client *c, int tag, const char *method,
                              const char *path, const char *accept, const char *if_none_match,
                              const char *content_type, const void *body, size_t body_len,
                              size_t max_body) MGO_MUST_CHECK;

/* Loop thread: requests started from now on use these TLS files (copied; NULL as in
 * mgo_wfm_client_opts). The request in progress keeps the files it started with. Every
 * request opens its own connection, so a file replaced at the same path is read again by the
 * next request without this call. MGO_ERR_NOMEM (nothing changed). */
mgo_err mgo_wfm_client_set_tls(struct mgo_wfm_client *c, const char *ca_file, const char *cert_file,
                               const char *key_file) MGO_MUST_CHECK;

/* Requests submitted whose answer has not run yet (loop thread). */
size_t mgo_wfm_client_busy(const struct mgo_wfm_client *c);

#endif
