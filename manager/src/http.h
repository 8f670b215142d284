/* http.h - the HTTP front end (libmicrohttpd): MGO_HTTP_THREADS polling threads (epoll)
 * serve every connection. A request's bearer token is checked, its body read (capped), and
 * it is handed to the loop thread (mgo_loop_post; no other module touches that hand-over)
 * while its connection is suspended; the loop answers and resumes it. Event streams are read
 * from the hub and suspended while they have nothing to send, so neither costs a thread. The
 * embedded web front end (web.c) is served straight from the polling thread.
 * A second instance serves the southbound Margo API (cfg->southbound, docs/margo-http.md):
 * the client's X.509-SVID is verified on the polling thread (southbound_id.c) instead of a
 * token, and its requests go to mgo_southbound__handle on the loop thread.
 *
 * One client cannot lock the API out (docs/security.md): connections in total and per client
 * address are capped, event streams have their own cap below the total (the rest is kept for
 * other requests), and a connection that has not sent a complete request (headers and body)
 * within request_timeout_s is closed, however slowly it trickles bytes. */
#ifndef MGO_MGR_HTTP_H
#define MGO_MGR_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "mgo/err.h"

/* Longest API bearer token accepted (bytes). */
#define MGO_API_TOKEN_MAX 512

/* Defaults of struct mgo_http_limits (a field left 0 takes its default). */
#define MGO_HTTP_DEFAULT_MAX_CONNECTIONS 512u
#define MGO_HTTP_DEFAULT_MAX_STREAMS 128u
#define MGO_HTTP_DEFAULT_MAX_PER_ADDRESS 64u
#define MGO_HTTP_DEFAULT_REQUEST_TIMEOUT_S 30u
#define MGO_HTTP_DEFAULT_IDLE_TIMEOUT_S 120u
/* Connections always left to requests other than event streams. */
#define MGO_HTTP_MIN_RESERVE 16u
/* How often the manager's loop calls mgo_http__tick. */
#define MGO_HTTP_TICK_MS 1000

struct mgo_http_limits {
    unsigned max_connections;   /* api-max-connections: open connections in total */
    unsigned max_streams;       /* api-max-event-streams: at most max_connections - 16 */
    unsigned max_per_address;   /* api-max-connections-per-address: past it, closed unanswered */
    unsigned request_timeout_s; /* api-request-timeout: to send a whole request */
    unsigned idle_timeout_s;    /* api-idle-timeout: no byte either way */
};

/* Fills every 0 field with its default. */
void mgo_http_limits_defaults(struct mgo_http_limits *lim);

struct mgo_api;
struct mgo_http;
struct mgo_loop;
struct mgo_sse_hub;

struct mgo_southbound;
/* A listener for the southbound Margo API instead of the northbound one (docs/margo-http.md):
 * TLS required, client certificates asked for and verified against client_ca, the client id
 * read from their X.509-SVID; no bearer token, web front end or event streams. */
struct mgo_http_southbound {
    const char *client_ca;     /* PEM file: trust anchors of client certificates */
    const char *trust_domain;  /* SPIFFE trust domain (copied) */
    const char *wfm_id;        /* this WFM's id in client SPIFFE IDs (copied) */
    struct mgo_southbound *sb; /* requests are answered with mgo_southbound__handle(sb, ...) */
};

struct mgo_http_config {
    const char *listen;   /* ADDRESS:PORT */
    const char *tls_cert; /* PEM file; NULL or "" with tls_key: plain HTTP */
    const char *tls_key;
    const char *token; /* bearer token (copied) */
    size_t token_len;
    struct mgo_api *api; /* requests are answered with mgo_api__handle(api, ...) */
    struct mgo_sse_hub *hub;
    struct mgo_loop *loop; /* requests are posted to it; must outlive the server */
    struct mgo_http_limits limits;
    const struct mgo_http_southbound *southbound; /* NULL: the northbound API */
};

/* Starts listening. Logs and returns MGO_ERR_INVALID (bad listen address, half a TLS pair,
 * event streams leaving fewer than MGO_HTTP_MIN_RESERVE connections),
 * MGO_ERR_IO (cannot read the TLS files, cannot listen), MGO_ERR_NOMEM. */
mgo_err mgo_http__start(const struct mgo_http_config *cfg, struct mgo_http **out) MGO_MUST_CHECK;
uint16_t mgo_http__port(const struct mgo_http *h);
/* Any thread: every later request is answered 503 (shutting down) without reaching the
 * loop. Requests already posted are answered by the loop, or with 503 when the loop is
 * freed before running them (so: close, free the loop, then free the server). */
void mgo_http__close(struct mgo_http *h);
/* Loop thread, every MGO_HTTP_TICK_MS: closes connections past the request deadline and
 * sends event-stream keepalives (every 5 s). NULL is fine. */
void mgo_http__tick(struct mgo_http *h);
/* Closes, ends the event streams of the hub, stops the server (waits for its threads, so
 * every posted request must have been answered or the loop freed) and frees. NULL is fine. */
void mgo_http__free(struct mgo_http *h);

#endif
