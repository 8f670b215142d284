/* http.c - libmicrohttpd glue for the northbound API: a few polling threads (epoll) serve
 * every connection; no connection owns a thread. Checks the bearer token (constant time)
 * before reading a body, caps bodies, hands each request to the loop thread and suspends the
 * connection until the loop has answered; streams Server-Sent Events from the hub, suspended
 * while a stream has nothing to send. Bounds (http.h): connections, connections per client
 * address, event streams, the time to send a whole request, idle time. The same code runs
 * the southbound Margo API's listener (struct mgo_http_southbound): client certificates
 * instead of the token, requests answered by southbound.c. */
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <pthread.h>

#include "api.h"
#include "http.h"
#include "southbound.h"
#include "southbound_id.h"
#include "sse.h"
#include "web.h"
#include "mgo/log.h"
#include "mgo/loop.h"

#define TAG "http"

/* Polling threads of libmicrohttpd: connections are multiplexed (epoll), so this is not a
 * bound on clients; it only spreads TLS handshakes and the web front end's files. */
#define MGO_HTTP_THREADS 2
/* Event-stream keepalive and request-deadline sweep period (mgo_http__tick). */
#define MGO_HTTP_KEEPALIVE_TICKS 5

/* One request on its way to the loop thread; lives in its connection's state, which stays
 * valid while the connection is suspended (libmicrohttpd neither times out nor closes a
 * suspended connection). */
struct queued {
    struct mgo_http *h;
    struct mgo_api_request *req;
    struct MHD_Connection *conn;
    bool done;
};

/* Every open connection, for the request deadline: since when it has been waiting for a
 * request to arrive completely (headers and body). */
struct tracked {
    struct tracked *prev, *next;
    int fd;
    int64_t since_ms; /* monotonic */
    bool waiting;     /* a request is incomplete (or none has started) */
    bool cut;         /* shut down by the sweep */
};

struct mgo_http {
    struct MHD_Daemon *httpd;
    /* the southbound Margo API's listener (docs/margo-http.md) when sb is set: client
     * certificates verified against client_ca, no bearer token, no web front end or event
     * streams, requests answered by mgo_southbound__handle */
    struct mgo_southbound *sb;
    struct mgo_buf client_ca;
    char trust_domain[MGO_SB_MAX_SEGMENT + 1];
    char wfm_id[MGO_SB_MAX_SEGMENT + 1];
    struct mgo_buf tls_cert; /* PEM of api-tls-cert / api-tls-key while the API runs */
    struct mgo_buf tls_key;
    uint16_t port;
    char token[MGO_API_TOKEN_MAX + 1];
    size_t token_len;
    struct mgo_api *api;
    struct mgo_sse_hub *hub;
    /* the request queue: HTTP threads -> loop thread, as posts to the loop */
    struct mgo_loop *loop;
    struct mgo_http_limits limits;
    pthread_mutex_t mu; /* guards closed, streams, conns and every queued.done */
    bool closed;
    unsigned streams; /* event-stream requests open (counted against limits.max_streams) */
    struct tracked *conns;
    unsigned ticks;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static const char *canonical_method(const char *method)
{
    static const char *const known[] = {"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        if (strcmp(method, known[i]) == 0)
            return known[i];
    }
    return "OTHER";
}

static enum MHD_Result collect_query(void *cls, enum MHD_ValueKind kind, const char *key,
                                     const char *value)
{
    (void)kind;
    struct mgo_api_request *req = cls;
    if (req->query_len >= MGO_API_MAX_QUERY || strlen(key) >= sizeof req->query[0].key ||
        (value && strlen(value) >= sizeof req->query[0].value)) {
        req->query_overflow = true;
        return MHD_YES;
    }
    struct mgo_api_query *q = &req->query[req->query_len++];
    snprintf(q->key, sizeof q->key, "%s", key);
    snprintf(q->value, sizeof q->value, "%s", value ? value : "");
    return MHD_YES;
}

/* Constant-time comparison of a presented token with ours (length leaks only via the
 * loop bound of our own token). */
static bool token_ok(const struct mgo_http *h, const char *header)
{
    static const char prefix[] = "Bearer ";
    if (header == NULL || strncmp(header, prefix, sizeof prefix - 1) != 0)
        return false;
    const char *given = header + sizeof prefix - 1;
    size_t given_len = strlen(given);
    unsigned char diff = (unsigned char)(given_len != h->token_len);
    for (size_t i = 0; i < h->token_len; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= (unsigned char)(g ^ (unsigned char)h->token[i]);
    }
    return diff == 0 && h->token_len > 0;
}

struct conn_state {
    struct mgo_api_request req;
    struct queued q;
    bool auth_failed;
    char auth_why[256]; /* southbound: why the client certificate was refused */
    bool stream;        /* GET /api/v1/events, counted in h->streams */
    bool refused;       /* answered here, without the loop */
    bool submitted;     /* posted to the loop; q.done says when it has answered */
};

/* Any thread: the request's connection state is done with the loop; its connection was
 * suspended under mu by on_request, so resuming under mu cannot come before that. */
static void finish(struct queued *q)
{
    struct mgo_http *h = q->h;
    pthread_mutex_lock(&h->mu);
    q->done = true;
    MHD_resume_connection(q->conn);
    pthread_mutex_unlock(&h->mu);
}

/* Loop thread: answers the request. */
static void run_request(void *ctx)
{
    struct queued *q = ctx;
    if (q->h->sb)
        mgo_southbound__handle(q->h->sb, q->req);
    else
        mgo_api__handle(q->h->api, q->req);
    finish(q);
}

/* The loop was freed before the request ran (shutting down). */
static void refuse_request(void *ctx)
{
    struct queued *q = ctx;
    mgo_api__problem(q->req, 503, NULL, "Service Unavailable", "the manager is shutting down",
                     NULL);
    finish(q);
}

/* HTTP thread: hands the request to the loop thread and suspends its connection; the loop
 * resumes it once it has answered (finish), and on_request is called again. Returns false
 * when the request could not be posted: it is answered 503 at once. */
static bool submit(struct mgo_http *h, struct MHD_Connection *conn, struct conn_state *cs)
{
    struct mgo_api_request *req = &cs->req;
    cs->q = (struct queued){h, req, conn, false};
    pthread_mutex_lock(&h->mu);
    /* posted under the lock, so that once mgo_http__close() returns no request reaches the
     * loop any more, and suspended before the loop can resume it */
    mgo_err err =
        h->closed ? MGO_ERR_CONFLICT : mgo_loop_post(h->loop, run_request, refuse_request, &cs->q);
    if (err == MGO_OK) {
        MHD_suspend_connection(conn);
        cs->submitted = true;
    }
    pthread_mutex_unlock(&h->mu);
    if (err == MGO_OK)
        return true;
    if (err != MGO_ERR_CONFLICT)
        MGO_LOGW(TAG, "%s %s: cannot reach the loop: %s", req->method, req->path,
                 mgo_strerror(err));
    mgo_api__problem(req, 503, NULL, "Service Unavailable",
                     err == MGO_ERR_CONFLICT ? "the manager is shutting down"
                                             : "the manager is overloaded",
                     NULL);
    return false;
}

struct sse_ctx {
    struct mgo_http *h;
    struct MHD_Connection *conn;
    struct mgo_sse_client *client;
};

/* Under the hub's lock (mgo_sse__read / the hub's publishers): a stream with nothing to
 * send costs no thread while it waits. */
static void sse_park(void *arg)
{
    MHD_suspend_connection(arg);
}

static void sse_wake(void *arg)
{
    MHD_resume_connection(arg);
}

static ssize_t sse_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    struct sse_ctx *ctx = cls;
    long n = mgo_sse__read(ctx->h->hub, ctx->client, buf, max, sse_park, sse_wake, ctx->conn);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : (ssize_t)n;
}

static void sse_free(void *cls)
{
    struct sse_ctx *ctx = cls;
    mgo_sse__client_free(ctx->h->hub, ctx->client);
    free(ctx);
}

static enum MHD_Result reply(struct mgo_http *h, struct MHD_Connection *conn,
                             struct mgo_api_request *req)
{
    struct MHD_Response *resp = NULL;
    if (req->sse) {
        struct sse_ctx *ctx = calloc(1, sizeof *ctx);
        if (ctx) {
            ctx->h = h;
            ctx->conn = conn;
            ctx->client = req->sse;
            resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, sse_reader, ctx,
                                                     sse_free);
            if (!resp)
                free(ctx);
        }
        if (!resp) {
            mgo_sse__client_free(h->hub, req->sse);
            req->sse = NULL;
            return MHD_NO;
        }
        req->sse = NULL; /* owned by the response now */
        MHD_add_response_header(resp, "Content-Type", "text/event-stream");
        MHD_add_response_header(resp, "Cache-Control", "no-cache");
    } else {
        resp = MHD_create_response_from_buffer(
            req->reply.len, req->reply.data ? req->reply.data : (void *)"", MHD_RESPMEM_MUST_COPY);
        if (!resp)
            return MHD_NO;
        if (req->content_type)
            MHD_add_response_header(resp, "Content-Type", req->content_type);
        if (req->location[0])
            MHD_add_response_header(resp, "Location", req->location);
        if (req->status == 401)
            MHD_add_response_header(resp, "WWW-Authenticate", "Bearer realm=\"margo-manager\"");
        if (req->status == 503)
            MHD_add_response_header(resp, "Retry-After", "5");
        if (req->etag[0])
            MHD_add_response_header(resp, "ETag", req->etag);
        if (req->cache_control)
            MHD_add_response_header(resp, "Cache-Control", req->cache_control);
        if (req->vary)
            MHD_add_response_header(resp, "Vary", req->vary);
        if (req->retry_after_s > 0) {
            char secs[16];
            snprintf(secs, sizeof secs, "%u", req->retry_after_s);
            MHD_add_response_header(resp, "Retry-After", secs);
        }
    }
    enum MHD_Result r = MHD_queue_response(conn, req->status ? req->status : 500, resp);
    MHD_destroy_response(resp);
    return r;
}

static struct tracked *tracked_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The request has arrived completely (or the connection is being reused): the request
 * deadline stops (starts again) for this connection. */
static void request_arrived(struct mgo_http *h, struct MHD_Connection *conn, bool arrived)
{
    struct tracked *t = tracked_of(conn);
    if (!t)
        return;
    pthread_mutex_lock(&h->mu);
    t->waiting = !arrived;
    t->since_ms = mono_ms();
    pthread_mutex_unlock(&h->mu);
}

static bool is_stream_request(const char *method, const char *url)
{
    return strcmp(method, "GET") == 0 && strcmp(url, "/api/v1/events") == 0;
}

/* Southbound: a request header into a fixed field ("" when absent; too long: noted). */
static void copy_header(struct MHD_Connection *conn, const char *name, char *out, size_t size,
                        bool *overflow)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, name);
    if (v && strlen(v) >= size)
        *overflow = true;
    snprintf(out, size, "%s", v ? v : "");
}

/* Southbound, first call of a request: its headers and the client's identity (the
 * well-known trust-bundle documents are served to anyone; everything else needs a verified
 * client X.509-SVID, and the loop checks the accepted-client list). */
static void southbound_begin(struct mgo_http *h, struct MHD_Connection *conn, const char *url,
                             struct conn_state *cs)
{
    struct mgo_api_request *req = &cs->req;
    copy_header(conn, "If-None-Match", req->if_none_match, sizeof req->if_none_match,
                &req->header_overflow);
    copy_header(conn, "Accept", req->accept, sizeof req->accept, &req->header_overflow);
    copy_header(conn, "Host", req->host, sizeof req->host, &req->header_overflow);
    if (mgo_southbound__public(url))
        return;
    cs->auth_failed = mgo_sb_tls_client(conn, h->trust_domain, h->wfm_id, req->client_id,
                                        cs->auth_why, sizeof cs->auth_why) != MGO_SB_AUTH_OK;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    (void)version;
    struct mgo_http *h = cls;
    struct conn_state *cs = *con_cls;
    if (cs == NULL && !h->sb && mgo_web__owns(url)) {
        request_arrived(h, conn, true);
        return mgo_web__serve(conn, method, url); /* the embedded web front end (web.c) */
    }
    if (cs == NULL) {
        cs = calloc(1, sizeof *cs);
        if (!cs)
            return MHD_NO;
        mgo_buf_init(&cs->req.body, h->sb ? MGO_SOUTHBOUND_MAX_BODY : MGO_API_MAX_BODY);
        mgo_buf_init(&cs->req.reply, h->sb ? MGO_SOUTHBOUND_MAX_REPLY : 16u * 1024u * 1024u);
        cs->req.method = canonical_method(method);
        if (strlen(url) >= sizeof cs->req.path)
            cs->req.query_overflow = true;
        snprintf(cs->req.path, sizeof cs->req.path, "%s", url);
        MHD_get_connection_values(conn, MHD_GET_ARGUMENT_KIND, collect_query, &cs->req);
        if (h->sb)
            southbound_begin(h, conn, url, cs);
        else
            cs->auth_failed =
                !token_ok(h, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
        *con_cls = cs;
        return MHD_YES;
    }
    if (cs->submitted) { /* resumed: the loop has answered */
        bool done;
        pthread_mutex_lock(&h->mu);
        done = cs->q.done;
        pthread_mutex_unlock(&h->mu);
        if (!done)
            return MHD_YES; /* cannot happen: only finish() resumes a submitted request */
        return reply(h, conn, &cs->req);
    }
    if (*upload_data_size > 0) {
        if (!cs->auth_failed && !cs->req.body_too_large &&
            mgo_buf_append(&cs->req.body, upload_data, *upload_data_size) != MGO_OK)
            cs->req.body_too_large = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    request_arrived(h, conn, true);
    if (cs->auth_failed && h->sb) {
        MGO_LOGW(TAG, "%s %s: client refused: %s", cs->req.method, cs->req.path, cs->auth_why);
        mgo_southbound__refuse(&cs->req, cs->auth_why);
        return reply(h, conn, &cs->req);
    }
    if (cs->auth_failed) {
        MGO_LOGW(TAG, "%s %s: missing or wrong bearer token", cs->req.method, cs->req.path);
        mgo_api__problem(&cs->req, 401, NULL, "Unauthorized",
                         "a valid bearer token is required (Authorization: Bearer <token>)", NULL);
        return reply(h, conn, &cs->req);
    }
    if (cs->req.body_too_large && h->sb) {
        mgo_southbound__too_large(&cs->req);
        return reply(h, conn, &cs->req);
    }
    if (cs->req.body_too_large) {
        mgo_api__problem(&cs->req, 413, NULL, "Content Too Large",
                         "request bodies are limited to 1 MiB plus 64 KiB", NULL);
        return reply(h, conn, &cs->req);
    }
    if (!h->sb && is_stream_request(method, url)) {
        bool full;
        pthread_mutex_lock(&h->mu);
        full = h->streams >= h->limits.max_streams;
        if (!full) {
            h->streams++;
            cs->stream = true;
        }
        pthread_mutex_unlock(&h->mu);
        if (full) {
            MGO_LOGW(TAG,
                     "GET /api/v1/events: refused, %u event streams are open "
                     "(api-max-event-streams)",
                     h->limits.max_streams);
            mgo_api__problem(&cs->req, 503, NULL, "Too Many Event Streams",
                             "the manager serves at most api-max-event-streams event streams "
                             "at once; retry later",
                             NULL);
            return reply(h, conn, &cs->req);
        }
    }
    if (!submit(h, conn, cs))
        return reply(h, conn, &cs->req);
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct mgo_http *h = cls;
    request_arrived(h, conn, false); /* a kept-alive connection waits for its next request */
    struct conn_state *cs = *con_cls;
    if (!cs)
        return;
    if (cs->stream) {
        pthread_mutex_lock(&h->mu);
        h->streams--;
        pthread_mutex_unlock(&h->mu);
    }
    if (cs->req.sse)
        mgo_sse__client_free(h->hub, cs->req.sse);
    mgo_buf_cleanup(&cs->req.body);
    mgo_buf_cleanup(&cs->req.reply);
    free(cs);
    *con_cls = NULL;
}

/* Connection opened / closed: tracked for the request deadline. */
static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct mgo_http *h = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        struct tracked *t = ci ? calloc(1, sizeof *t) : NULL;
        *socket_context = t;
        if (!t)
            return; /* out of memory: this connection has only the idle timeout */
        t->fd = ci->connect_fd;
        t->since_ms = mono_ms();
        t->waiting = true;
        pthread_mutex_lock(&h->mu);
        t->next = h->conns;
        if (h->conns)
            h->conns->prev = t;
        h->conns = t;
        pthread_mutex_unlock(&h->mu);
        return;
    }
    struct tracked *t = *socket_context;
    if (!t)
        return;
    /* called before libmicrohttpd closes the socket: the sweep never touches a closed fd */
    pthread_mutex_lock(&h->mu);
    if (t->prev)
        t->prev->next = t->next;
    else
        h->conns = t->next;
    if (t->next)
        t->next->prev = t->prev;
    pthread_mutex_unlock(&h->mu);
    free(t);
    *socket_context = NULL;
}

void mgo_http__tick(struct mgo_http *h)
{
    if (!h)
        return;
    if (++h->ticks % MGO_HTTP_KEEPALIVE_TICKS == 0 && h->hub)
        mgo_sse__keepalive(h->hub);
    int64_t now = mono_ms();
    int64_t deadline_ms = (int64_t)h->limits.request_timeout_s * 1000;
    unsigned cut = 0;
    pthread_mutex_lock(&h->mu);
    for (struct tracked *t = h->conns; t; t = t->next) {
        if (t->waiting && !t->cut && now - t->since_ms > deadline_ms) {
            /* libmicrohttpd sees the end of the stream and closes the connection */
            shutdown(t->fd, SHUT_RDWR);
            t->cut = true;
            cut++;
        }
    }
    pthread_mutex_unlock(&h->mu);
    if (cut)
        MGO_LOGW(TAG,
                 "closed %u connection%s that did not send a complete request within %u s "
                 "(api-request-timeout)",
                 cut, cut == 1 ? "" : "s", h->limits.request_timeout_s);
}

/* "127.0.0.1:8080", "[::1]:8080", "0.0.0.0:80" */
static mgo_err parse_listen(const char *text, struct sockaddr_storage *ss, bool *ipv6)
{
    memset(ss, 0, sizeof *ss);
    char host[64];
    const char *port_text;
    if (text[0] == '[') {
        const char *end = strchr(text, ']');
        if (!end || end[1] != ':' || (size_t)(end - text - 1) >= sizeof host)
            return MGO_ERR_INVALID;
        memcpy(host, text + 1, (size_t)(end - text - 1));
        host[end - text - 1] = '\0';
        port_text = end + 2;
        *ipv6 = true;
    } else {
        const char *colon = strrchr(text, ':');
        if (!colon || (size_t)(colon - text) >= sizeof host)
            return MGO_ERR_INVALID;
        memcpy(host, text, (size_t)(colon - text));
        host[colon - text] = '\0';
        port_text = colon + 1;
        *ipv6 = false;
    }
    char *end = NULL;
    long port = strtol(port_text, &end, 10);
    if (port_text[0] == '\0' || *end != '\0' || port < 0 || port > 65535)
        return MGO_ERR_INVALID;
    if (*ipv6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host, &a->sin6_addr) != 1)
            return MGO_ERR_INVALID;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;
        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return MGO_ERR_INVALID;
    }
    return MGO_OK;
}

static mgo_err start_daemon(struct mgo_http *h, const struct mgo_http_config *cfg)
{
    struct sockaddr_storage ss;
    bool ipv6 = false;
    if (parse_listen(cfg->listen, &ss, &ipv6) != MGO_OK) {
        MGO_LOGE(TAG, "api-listen: \"%s\" is not ADDRESS:PORT (e.g. 127.0.0.1:8080, [::1]:8080)",
                 cfg->listen);
        return MGO_ERR_INVALID;
    }
    /* epoll where there is epoll; suspend/resume so that neither a request waiting for the
     * loop nor an idle event stream holds a thread */
    unsigned flags =
        (MHD_is_feature_supported(MHD_FEATURE_EPOLL) == MHD_YES ? MHD_USE_EPOLL_INTERNAL_THREAD
                                                                : MHD_USE_POLL_INTERNAL_THREAD) |
        MHD_ALLOW_SUSPEND_RESUME | (ipv6 ? MHD_USE_IPv6 : 0);
    const char *cert = cfg->tls_cert, *key = cfg->tls_key;
    bool tls = (cert && cert[0]) || (key && key[0]);
    if (h->sb && !tls) {
        MGO_LOGE(TAG, "margo-api-cert and margo-api-key: the southbound Margo API needs both "
                      "(mutual TLS only)");
        return MGO_ERR_INVALID;
    }
    if (tls) {
        if (!cert || !cert[0] || !key || !key[0]) {
            MGO_LOGE(TAG, "api-tls-cert and api-tls-key: set both (HTTPS) or neither (HTTP)");
            return MGO_ERR_INVALID;
        }
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            MGO_LOGE(TAG, "api-tls-cert: this libmicrohttpd has no TLS support; terminate TLS "
                          "in a reverse proxy instead (docs/security.md)");
            return MGO_ERR_INVALID;
        }
        if (mgo_buf_read_file(&h->tls_cert, cert) != MGO_OK ||
            mgo_buf_read_file(&h->tls_key, key) != MGO_OK) {
            MGO_LOGE(TAG, "api-tls-cert / api-tls-key: cannot read %s or %s", cert, key);
            return MGO_ERR_IO;
        }
        flags |= MHD_USE_TLS;
        /* MHD_OPTION_END ends the list early for plain HTTP (the TLS options follow it) */
    }
    h->httpd = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION, on_connection,
        h, MHD_OPTION_THREAD_POOL_SIZE, (unsigned)MGO_HTTP_THREADS, MHD_OPTION_CONNECTION_LIMIT,
        h->limits.max_connections, MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->limits.max_per_address,
        MHD_OPTION_CONNECTION_TIMEOUT, h->limits.idle_timeout_s,
        tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, (const char *)h->tls_cert.data,
        MHD_OPTION_HTTPS_MEM_KEY, (const char *)h->tls_key.data, MHD_OPTION_HTTPS_PRIORITIES,
        "SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3",
        /* southbound: ask for a client certificate, verified against the client CA */
        h->sb ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, (const char *)h->client_ca.data,
        MHD_OPTION_END);
    if (!h->httpd) {
        MGO_LOGE(TAG, "cannot listen on %s (address in use or not available%s)", cfg->listen,
                 tls ? ", or api-tls-cert/api-tls-key unusable" : "");
        return MGO_ERR_IO;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->httpd, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    MGO_LOGI(TAG,
             "%s listening on %s (port %u, %s; at most %u connections, %u per address, "
             "%u event streams)",
             h->sb ? "southbound Margo API" : "API", cfg->listen, (unsigned)h->port,
             h->sb ? "HTTPS with client certificates"
             : tls ? "HTTPS"
                   : "plain HTTP",
             h->limits.max_connections, h->limits.max_per_address,
             h->sb ? 0u : h->limits.max_streams);
    return MGO_OK;
}

mgo_err mgo_http__start(const struct mgo_http_config *cfg, struct mgo_http **out)
{
    if (cfg->token_len > MGO_API_TOKEN_MAX)
        return MGO_ERR_LIMIT;
    struct mgo_http_limits lim = cfg->limits;
    mgo_http_limits_defaults(&lim);
    if (lim.max_streams + MGO_HTTP_MIN_RESERVE > lim.max_connections) {
        MGO_LOGE(TAG,
                 "api-max-event-streams (%u) must leave at least %u of api-max-connections "
                 "(%u) to other requests",
                 lim.max_streams, MGO_HTTP_MIN_RESERVE, lim.max_connections);
        return MGO_ERR_INVALID;
    }
    struct mgo_http *h = calloc(1, sizeof *h);
    if (!h)
        return MGO_ERR_NOMEM;
    if (cfg->token_len > 0) /* the southbound listener has none */
        memcpy(h->token, cfg->token, cfg->token_len);
    h->token_len = cfg->token_len;
    h->api = cfg->api;
    h->hub = cfg->hub;
    h->loop = cfg->loop;
    h->limits = lim;
    pthread_mutex_init(&h->mu, NULL);
    mgo_buf_init(&h->tls_cert, 256u * 1024u);
    mgo_buf_init(&h->tls_key, 64u * 1024u);
    mgo_buf_init(&h->client_ca, 256u * 1024u);
    mgo_err err = MGO_OK;
    if (cfg->southbound) {
        const struct mgo_http_southbound *sbc = cfg->southbound;
        h->sb = sbc->sb;
        snprintf(h->trust_domain, sizeof h->trust_domain, "%s", sbc->trust_domain);
        snprintf(h->wfm_id, sizeof h->wfm_id, "%s", sbc->wfm_id);
        if (mgo_buf_read_file(&h->client_ca, sbc->client_ca) != MGO_OK) {
            MGO_LOGE(TAG, "margo-api-client-ca: cannot read %s", sbc->client_ca);
            err = MGO_ERR_IO;
        }
    }
    if (!err)
        err = start_daemon(h, cfg);
    if (err) {
        mgo_http__free(h);
        return err;
    }
    *out = h;
    return MGO_OK;
}

void mgo_http_limits_defaults(struct mgo_http_limits *lim)
{
    if (lim->max_connections == 0)
        lim->max_connections = MGO_HTTP_DEFAULT_MAX_CONNECTIONS;
    if (lim->max_streams == 0)
        lim->max_streams = MGO_HTTP_DEFAULT_MAX_STREAMS;
    if (lim->max_per_address == 0)
        lim->max_per_address = MGO_HTTP_DEFAULT_MAX_PER_ADDRESS;
    if (lim->request_timeout_s == 0)
        lim->request_timeout_s = MGO_HTTP_DEFAULT_REQUEST_TIMEOUT_S;
    if (lim->idle_timeout_s == 0)
        lim->idle_timeout_s = MGO_HTTP_DEFAULT_IDLE_TIMEOUT_S;
}

uint16_t mgo_http__port(const struct mgo_http *h)
{
    return h->port;
}

void mgo_http__close(struct mgo_http *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->mu);
    h->closed = true;
    pthread_mutex_unlock(&h->mu);
}

void mgo_http__free(struct mgo_http *h)
{
    if (!h)
        return;
    mgo_http__close(h);
    /* every suspended connection must be resumed before libmicrohttpd stops: event streams
     * end here (requests posted to the loop were answered when it was freed) */
    mgo_sse__hub_shutdown(h->hub);
    if (h->httpd)
        MHD_stop_daemon(h->httpd);
    if (h->tls_key.data)
        memset(h->tls_key.data, 0, h->tls_key.len);
    mgo_buf_cleanup(&h->tls_key);
    mgo_buf_cleanup(&h->tls_cert);
    mgo_buf_cleanup(&h->client_ca);
    memset(h->token, 0, sizeof h->token);
    pthread_mutex_destroy(&h->mu);
    free(h);
}
