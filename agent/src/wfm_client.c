/* wfm_client.c - HTTP requests to a Margo WFM on a worker thread (wfm_client.h). */
#include "wfm_client.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "mgo/log.h"
#include "mgo/svid.h"

#define TAG "agent"

struct request {
    struct request *next;
    int tag;
    char method[8];
    char *url;
    char *accept, *if_none_match, *content_type;
    uint8_t *body;
    size_t body_len;
    size_t max_body;
};

struct mgo_wfm_client {
    struct mgo_loop *loop;
    mgo_wfm_client_done_fn done;
    void *ctx;
    char *base_url, *peer_id;
    uint32_t timeout_s;
    /* the TLS files: replaced by the loop thread (mgo_wfm_client_set_tls), copied by the
     * worker for each request, both under mu */
    char *ca_file, *cert_file, *key_file; /* mu */
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct request *head, *tail; /* mu */
    size_t queued;               /* mu */
    bool quit;                   /* mu */
    atomic_int abort;            /* read by curl's progress callback */
    size_t busy;                 /* loop thread: submitted, answer not run */
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

static char *dup_opt(const char *s)
{
    return s ? strdup(s) : NULL;
}

static void request_free(struct request *r)
{
    if (r == NULL)
        return;
    free(r->url);
    free(r->accept);
    free(r->if_none_match);
    free(r->content_type);
    free(r->body);
    free(r);
}

/* ---- answers to the loop ---------------------------------------------------------------- */

struct answer {
    struct mgo_wfm_client *c;
    struct mgo_wfm_response resp;
};

static void answer_free(void *ctx)
{
    struct answer *a = ctx;
    free(a->resp.body);
    free(a);
}

static void answer_run(void *ctx)
{
    struct answer *a = ctx;
    a->c->busy--;
    a->c->done(a->c->ctx, &a->resp);
    answer_free(a);
}

/* ---- the transfer ---------------------------------------------------------------------- */

struct sink {
    uint8_t *data;
    size_t len, max;
    bool too_large;
};

static size_t write_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct sink *s = ud;
    size_t n = size * nmemb;
    if (n > s->max - s->len) {
        s->too_large = true;
        return 0;
    }
    uint8_t *p = realloc(s->data, s->len + n + 1);
    if (p == NULL)
        return 0;
    s->data = p;
    memcpy(s->data + s->len, ptr, n);
    s->len += n;
    return n;
}

/* Header lines: keeps ETag, Retry-After and Content-Type (cut to their field sizes). */
static size_t header_cb(char *ptr, size_t size, size_t nmemb, void *ud)
{
    struct mgo_wfm_response *r = ud;
    size_t n = size * nmemb;
    static const struct {
        const char *name;
        size_t off, cap;
    } keep[] = {
        {"etag", offsetof(struct mgo_wfm_response, etag), sizeof r->etag},
        {"retry-after", offsetof(struct mgo_wfm_response, retry_after), sizeof r->retry_after},
        {"content-type", offsetof(struct mgo_wfm_response, content_type), sizeof r->content_type},
    };
    if (n >= 5 && memcmp(ptr, "HTTP/", 5) == 0) { /* a new response (after 100 Continue) */
        r->etag[0] = r->retry_after[0] = r->content_type[0] = '\0';
        return n;
    }
    for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++) {
        size_t kl = strlen(keep[i].name);
        if (n <= kl || ptr[kl] != ':' || strncasecmp(ptr, keep[i].name, kl) != 0)
            continue;
        const char *v = ptr + kl + 1;
        size_t vl = n - kl - 1;
        while (vl > 0 && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl > 0 && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
            vl--;
        char *dst = (char *)r + keep[i].off;
        if (vl >= keep[i].cap)
            vl = keep[i].cap - 1;
        memcpy(dst, v, vl);
        dst[vl] = '\0';
    }
    return n;
}

static int progress_cb(void *ud, curl_off_t dt, curl_off_t dn, curl_off_t ut, curl_off_t un)
{
    (void)dt, (void)dn, (void)ut, (void)un;
    const atomic_int *abort_flag = ud;
    return atomic_load(abort_flag) ? 1 : 0;
}

/* libcurl hands over the OpenSSL context before the handshake: add the SPIFFE ID check. */
static CURLcode ssl_ctx_cb(CURL *h, void *ssl_ctx, void *ud)
{
    (void)h;
    const struct mgo_wfm_client *c = ud;
    return mgo_svid_tls_require_peer(ssl_ctx, c->peer_id) == MGO_OK ? CURLE_OK
                                                                    : CURLE_SSL_CERTPROBLEM;
}

/* One request's TLS files, copied from the client's under its lock. */
struct tls_files {
    char *ca_file, *cert_file, *key_file;
};

static void tls_files_free(struct tls_files *f)
{
    free(f->ca_file), free(f->cert_file), free(f->key_file);
    memset(f, 0, sizeof *f);
}

/* Copies src's files into dst (dst's old ones freed). false: out of memory, dst unchanged. */
static bool tls_files_copy(struct tls_files *dst, const char *ca, const char *cert, const char *key)
{
    struct tls_files f = {dup_opt(ca), dup_opt(cert), dup_opt(key)};
    if ((ca && !f.ca_file) || (cert && !f.cert_file) || (key && !f.key_file)) {
        tls_files_free(&f);
        return false;
    }
    tls_files_free(dst);
    *dst = f;
    return true;
}

static void perform(struct mgo_wfm_client *c, const struct request *rq, const struct tls_files *tls,
                    struct mgo_wfm_response *resp)
{
    CURL *h = curl_easy_init();
    if (h == NULL) {
        snprintf(resp->error, sizeof resp->error, "out of memory");
        return;
    }
    struct curl_slist *hdrs = NULL;
    char line[512];
    if (rq->accept) {
        snprintf(line, sizeof line, "Accept: %s", rq->accept);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (rq->if_none_match) {
        snprintf(line, sizeof line, "If-None-Match: %s", rq->if_none_match);
        hdrs = curl_slist_append(hdrs, line);
    }
    if (rq->content_type) {
        snprintf(line, sizeof line, "Content-Type: %s", rq->content_type);
        hdrs = curl_slist_append(hdrs, line);
    }
    hdrs = curl_slist_append(hdrs, "Expect:"); /* no 100-continue round trip */
    struct sink s = {.max = rq->max_body};
    char errbuf[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, rq->url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
    curl_easy_setopt(h, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
    if (strcmp(rq->method, "GET") != 0 || rq->body != NULL) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, rq->body ? (const char *)rq->body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)rq->body_len);
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &s);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, (long)c->timeout_s);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 30L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "margo-agent/0.1");
    curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, ""); /* Margo digests the decoded bytes */
    /* a new handle per request: the files are read again for every connection */
    if (tls->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, tls->ca_file);
    if (tls->cert_file)
        curl_easy_setopt(h, CURLOPT_SSLCERT, tls->cert_file);
    if (tls->key_file)
        curl_easy_setopt(h, CURLOPT_SSLKEY, tls->key_file);
    if (c->peer_id) {
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 0L);
        curl_easy_setopt(h, CURLOPT_SSL_CTX_FUNCTION, ssl_ctx_cb);
        curl_easy_setopt(h, CURLOPT_SSL_CTX_DATA, (void *)c);
    }
    curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, progress_cb);
    curl_easy_setopt(h, CURLOPT_XFERINFODATA, (void *)&c->abort);
    curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    CURLcode rc = curl_easy_perform(h);
    if (s.too_large) {
        resp->too_large = true;
        snprintf(resp->error, sizeof resp->error, "answer larger than %zu bytes", rq->max_body);
    } else if (rc != CURLE_OK) {
        snprintf(resp->error, sizeof resp->error, "%s",
                 errbuf[0] ? errbuf : curl_easy_strerror(rc));
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
        resp->body = s.data;
        resp->body_len = s.len;
        s.data = NULL;
    }
    free(s.data);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
}

static void *thread_main(void *arg)
{
    struct mgo_wfm_client *c = arg;
    for (;;) {
        pthread_mutex_lock(&c->mu);
        while (!c->quit && c->head == NULL)
            pthread_cond_wait(&c->cv, &c->mu);
        if (c->quit) {
            pthread_mutex_unlock(&c->mu);
            return NULL;
        }
        struct request *rq = c->head;
        c->head = rq->next;
        if (c->head == NULL)
            c->tail = NULL;
        c->queued--;
        struct tls_files tls = {0};
        bool tls_ok = tls_files_copy(&tls, c->ca_file, c->cert_file, c->key_file);
        pthread_mutex_unlock(&c->mu);

        struct answer *a = tls_ok ? calloc(1, sizeof *a) : NULL;
        if (a != NULL) {
            a->c = c;
            a->resp.tag = rq->tag;
            perform(c, rq, &tls, &a->resp);
            /* the loop may be full for a moment; the answer is what the transport waits for */
            while (mgo_loop_post(c->loop, answer_run, answer_free, a) != MGO_OK) {
                if (atomic_load(&c->abort)) {
                    answer_free(a);
                    break;
                }
                nanosleep(&(struct timespec){0, 100 * 1000 * 1000}, NULL);
            }
        } else {
            MGO_LOGE(TAG, "wfm: out of memory; %s %s dropped", rq->method, rq->url);
        }
        tls_files_free(&tls);
        request_free(rq);
    }
}

mgo_err mgo_wfm_client_new(struct mgo_loop *loop, const struct mgo_wfm_client_opts *opts,
                           mgo_wfm_client_done_fn done, void *ctx, struct mgo_wfm_client **out)
{
    pthread_once(&curl_once, curl_init_once);
    struct mgo_wfm_client *c = calloc(1, sizeof *c);
    if (c == NULL)
        return MGO_ERR_NOMEM;
    c->loop = loop;
    c->done = done;
    c->ctx = ctx;
    c->timeout_s = opts->timeout_s ? opts->timeout_s : 60;
    c->base_url = dup_opt(opts->base_url);
    c->ca_file = dup_opt(opts->ca_file);
    c->cert_file = dup_opt(opts->cert_file);
    c->key_file = dup_opt(opts->key_file);
    c->peer_id = dup_opt(opts->peer_id);
    atomic_init(&c->abort, 0);
    if (c->base_url == NULL || (opts->ca_file && !c->ca_file) ||
        (opts->cert_file && !c->cert_file) || (opts->key_file && !c->key_file) ||
        (opts->peer_id && !c->peer_id))
        goto fail_strings;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->thread, NULL, thread_main, c) != 0) {
        pthread_cond_destroy(&c->cv);
        pthread_mutex_destroy(&c->mu);
        free(c->base_url), free(c->ca_file), free(c->cert_file), free(c->key_file),
            free(c->peer_id);
        free(c);
        return MGO_ERR_INTERNAL;
    }
    *out = c;
    return MGO_OK;
fail_strings:
    free(c->base_url), free(c->ca_file), free(c->cert_file), free(c->key_file), free(c->peer_id);
    free(c);
    return MGO_ERR_NOMEM;
}

void mgo_wfm_client_free(struct mgo_wfm_client *c)
{
    if (c == NULL)
        return;
    atomic_store(&c->abort, 1);
    pthread_mutex_lock(&c->mu);
    c->quit = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    for (struct request *r = c->head, *next; r != NULL; r = next) {
        next = r->next;
        request_free(r);
    }
    pthread_cond_destroy(&c->cv);
    pthread_mutex_destroy(&c->mu);
    free(c->base_url), free(c->ca_file), free(c->cert_file), free(c->key_file), free(c->peer_id);
    free(c);
}

mgo_err mgo_wfm_client_set_tls(struct mgo_wfm_client *c, const char *ca_file, const char *cert_file,
                               const char *key_file)
{
    struct tls_files fresh = {0};
    if (!tls_files_copy(&fresh, ca_file, cert_file, key_file))
        return MGO_ERR_NOMEM;
    pthread_mutex_lock(&c->mu);
    struct tls_files old = {c->ca_file, c->cert_file, c->key_file};
    c->ca_file = fresh.ca_file;
    c->cert_file = fresh.cert_file;
    c->key_file = fresh.key_file;
    pthread_mutex_unlock(&c->mu);
    tls_files_free(&old);
    return MGO_OK;
}

mgo_err mgo_wfm_client_submit(struct mgo_wfm_client *c, int tag, const char *method,
                              const char *path, const char *accept, const char *if_none_match,
                              const char *content_type, const void *body, size_t body_len,
                              size_t max_body)
{
    struct request *rq = calloc(1, sizeof *rq);
    if (rq == NULL)
        return MGO_ERR_NOMEM;
    rq->tag = tag;
    snprintf(rq->method, sizeof rq->method, "%s", method);
    size_t ul = strlen(c->base_url) + strlen(path) + 1;
    rq->url = malloc(ul);
    rq->accept = dup_opt(accept);
    rq->if_none_match = dup_opt(if_none_match);
    rq->content_type = dup_opt(content_type);
    rq->max_body = max_body;
    if (body != NULL) {
        rq->body = malloc(body_len + 1);
        if (rq->body != NULL) {
            memcpy(rq->body, body, body_len);
            rq->body_len = body_len;
        }
    }
    if (rq->url == NULL || (accept && !rq->accept) || (if_none_match && !rq->if_none_match) ||
        (content_type && !rq->content_type) || (body && !rq->body)) {
        request_free(rq);
        return MGO_ERR_NOMEM;
    }
    snprintf(rq->url, ul, "%s%s", c->base_url, path);
    pthread_mutex_lock(&c->mu);
    if (c->queued >= MGO_WFM_CLIENT_MAX_QUEUE) {
        pthread_mutex_unlock(&c->mu);
        request_free(rq);
        return MGO_ERR_LIMIT;
    }
    if (c->tail)
        c->tail->next = rq;
    else
        c->head = rq;
    c->tail = rq;
    c->queued++;
    c->busy++;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return MGO_OK;
}

size_t mgo_wfm_client_busy(const struct mgo_wfm_client *c)
{
    return c->busy;
}
