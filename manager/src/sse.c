/* sse.c - Server-Sent Events hub. The loop thread appends events to each client's pending
 * text; the HTTP front end takes it from the polling thread that serves the client. A client
 * with nothing to send is parked (its connection suspended, no thread waits for it) and woken
 * when text arrives, at a keepalive or at shutdown. One mutex guards the hub and every client
 * in it; a client whose backlog passes MGO_SSE_MAX_BACKLOG is ended (a slow reader must not
 * grow memory without bound). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sse.h"
#include "mgo/buf.h"
#include "mgo/limits.h"
#include "mgo/log.h"

#define TAG "sse"
#define MGO_SSE_MAX_BACKLOG (1024u * 1024u)
#define MGO_SSE_MAX_FILTER 64

struct mgo_sse_client {
    struct mgo_buf pending;
    size_t sent; /* bytes of pending already handed to MHD */
    bool ended;
    bool in_hub;
    /* parked: the reader found nothing to send; wake(wake_arg) once there is */
    void (*wake)(void *arg);
    void *wake_arg;
    size_t filter_len;
    char filter[MGO_SSE_MAX_FILTER][MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    struct mgo_sse_client *next;
};

struct mgo_sse_hub {
    pthread_mutex_t mu;
    struct mgo_sse_client *clients;
    bool shutdown;
};

/* Under mu: a parked client has something to do (text, its end, the hub's end). */
static void wake(struct mgo_sse_client *c)
{
    if (c->wake == NULL)
        return;
    void (*fn)(void *) = c->wake;
    c->wake = NULL;
    fn(c->wake_arg);
}

mgo_err mgo_sse__hub_new(struct mgo_sse_hub **out)
{
    struct mgo_sse_hub *hub = calloc(1, sizeof *hub);
    if (!hub)
        return MGO_ERR_NOMEM;
    pthread_mutex_init(&hub->mu, NULL);
    *out = hub;
    return MGO_OK;
}

void mgo_sse__hub_shutdown(struct mgo_sse_hub *hub)
{
    if (!hub)
        return;
    pthread_mutex_lock(&hub->mu);
    hub->shutdown = true;
    for (struct mgo_sse_client *c = hub->clients; c; c = c->next)
        wake(c);
    pthread_mutex_unlock(&hub->mu);
}

void mgo_sse__end_all(struct mgo_sse_hub *hub)
{
    pthread_mutex_lock(&hub->mu);
    for (struct mgo_sse_client *c = hub->clients; c; c = c->next) {
        c->ended = true;
        wake(c);
    }
    pthread_mutex_unlock(&hub->mu);
}

static void client_destroy(struct mgo_sse_client *c)
{
    mgo_buf_cleanup(&c->pending);
    free(c);
}

void mgo_sse__hub_free(struct mgo_sse_hub *hub)
{
    if (!hub)
        return;
    /* HTTP threads are gone (MHD stopped): free whatever is left */
    struct mgo_sse_client *c = hub->clients;
    while (c) {
        struct mgo_sse_client *next = c->next;
        client_destroy(c);
        c = next;
    }
    pthread_mutex_destroy(&hub->mu);
    free(hub);
}

struct mgo_sse_client *mgo_sse__client_new(const char *const *deployments, size_t n)
{
    if (n > MGO_SSE_MAX_FILTER)
        return NULL;
    struct mgo_sse_client *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    mgo_buf_init(&c->pending, MGO_SSE_MAX_BACKLOG);
    for (size_t i = 0; i < n; i++)
        snprintf(c->filter[i], sizeof c->filter[i], "%s", deployments[i]);
    c->filter_len = n;
    return c;
}

static void append_event(struct mgo_sse_client *c, const char *event, const char *json)
{
    if (c->ended)
        return;
    if (mgo_buf_printf(&c->pending, "event: %s\ndata: %s\n\n", event, json) != MGO_OK) {
        MGO_LOGW(TAG, "event stream client too slow (backlog over %u bytes); ending it",
                 MGO_SSE_MAX_BACKLOG);
        c->ended = true;
    }
}

void mgo_sse__client_push(struct mgo_sse_client *c, const char *event, const char *json)
{
    append_event(c, event, json); /* not in the hub yet: no other thread sees it */
}

void mgo_sse__hub_add(struct mgo_sse_hub *hub, struct mgo_sse_client *c)
{
    pthread_mutex_lock(&hub->mu);
    c->in_hub = true;
    c->next = hub->clients;
    hub->clients = c;
    pthread_mutex_unlock(&hub->mu);
}

static bool wants(const struct mgo_sse_client *c, const char *deployment_id)
{
    if (c->filter_len == 0)
        return true;
    if (!deployment_id)
        return false;
    for (size_t i = 0; i < c->filter_len; i++) {
        if (strcmp(c->filter[i], deployment_id) == 0)
            return true;
    }
    return false;
}

bool mgo_sse__wanted(struct mgo_sse_hub *hub, const char *deployment_id)
{
    bool any = false;
    pthread_mutex_lock(&hub->mu);
    for (struct mgo_sse_client *c = hub->clients; c && !any; c = c->next)
        any = wants(c, deployment_id);
    pthread_mutex_unlock(&hub->mu);
    return any;
}

void mgo_sse__publish(struct mgo_sse_hub *hub, const char *event, const char *deployment_id,
                      const char *json)
{
    pthread_mutex_lock(&hub->mu);
    for (struct mgo_sse_client *c = hub->clients; c; c = c->next) {
        if (wants(c, deployment_id)) {
            append_event(c, event, json);
            wake(c);
        }
    }
    pthread_mutex_unlock(&hub->mu);
}

void mgo_sse__keepalive(struct mgo_sse_hub *hub)
{
    static const char keepalive[] = ": keepalive\n\n";
    pthread_mutex_lock(&hub->mu);
    for (struct mgo_sse_client *c = hub->clients; c; c = c->next) {
        if (c->wake == NULL)
            continue; /* busy sending: no keepalive needed */
        if (mgo_buf_append(&c->pending, keepalive, sizeof keepalive - 1) != MGO_OK)
            c->ended = true;
        wake(c);
    }
    pthread_mutex_unlock(&hub->mu);
}

long mgo_sse__read(struct mgo_sse_hub *hub, struct mgo_sse_client *c, char *buf, size_t max,
                   void (*park)(void *arg), void (*wake_fn)(void *arg), void *arg)
{
    long n = -1;
    pthread_mutex_lock(&hub->mu);
    if (c->sent < c->pending.len) {
        size_t avail = c->pending.len - c->sent;
        size_t take = avail < max ? avail : max;
        memcpy(buf, c->pending.data + c->sent, take);
        c->sent += take;
        if (c->sent == c->pending.len) {
            mgo_buf_reset(&c->pending);
            c->sent = 0;
        }
        n = (long)take;
    } else if (!c->ended && !hub->shutdown) {
        /* parked under mu: every waker takes mu first, so the wake cannot come before it */
        park(arg);
        c->wake = wake_fn;
        c->wake_arg = arg;
        n = 0;
    }
    pthread_mutex_unlock(&hub->mu);
    return n;
}

void mgo_sse__client_free(struct mgo_sse_hub *hub, struct mgo_sse_client *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&hub->mu);
    if (c->in_hub) {
        for (struct mgo_sse_client **pp = &hub->clients; *pp; pp = &(*pp)->next) {
            if (*pp == c) {
                *pp = c->next;
                break;
            }
        }
    }
    pthread_mutex_unlock(&hub->mu);
    client_destroy(c);
}
