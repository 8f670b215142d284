/* http.h - the HTTP front end (libmicrohttpd): one thread per connection checks the bearer
 * token, reads the body (capped) and hands the request to the loop thread (mgo_loop_post;
 * no other module touches that hand-over), then waits for the answer; event streams are read from
 * the hub. The embedded web front end (web.c) is served straight from the HTTP thread. */
#ifndef MGO_MGR_HTTP_H
#define MGO_MGR_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "mgo/err.h"

/* Longest API bearer token accepted (bytes). */
#define MGO_API_TOKEN_MAX 512

struct mgo_api;
struct mgo_http;
struct mgo_loop;
struct mgo_sse_hub;

struct mgo_http_config {
    const char *listen;   /* ADDRESS:PORT */
    const char *tls_cert; /* PEM file; NULL or "" with tls_key: plain HTTP */
    const char *tls_key;
    const char *token; /* bearer token (copied) */
    size_t token_len;
    struct mgo_api *api; /* requests are answered with mgo_api__handle(api, ...) */
    struct mgo_sse_hub *hub;
    struct mgo_loop *loop; /* requests are posted to it; must outlive the server */
};

/* Starts listening. Logs and returns MGO_ERR_INVALID (bad listen address, half a TLS pair),
 * MGO_ERR_IO (cannot read the TLS files, cannot listen), MGO_ERR_NOMEM. */
mgo_err mgo_http__start(const struct mgo_http_config *cfg, struct mgo_http **out) MGO_MUST_CHECK;
uint16_t mgo_http__port(const struct mgo_http *h);
/* Any thread: every later request is answered 503 (shutting down) without reaching the
 * loop. Requests already posted are answered by the loop, or with 503 when the loop is
 * freed before running them (so: close, free the loop, then free the server). */
void mgo_http__close(struct mgo_http *h);
/* Closes, stops the server (waits for its threads, so every posted request must have been
 * answered or the loop freed) and frees. NULL is fine. */
void mgo_http__free(struct mgo_http *h);

#endif
