/* outbox_rec.h - a recording outbox for the manager's unit tests (header-only): every
 * message publish.c hands over is kept (topic, payload, QoS, retain), so tests check what
 * would have gone to the broker without one. */
#ifndef MGR_OUTBOX_REC_H
#define MGR_OUTBOX_REC_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

/* the manager's private headers, by path: tests/support has an http.h of its own */
#include "../../manager/src/outbox.h"

#define REC_MAX 256

struct rec_msg {
    char topic[MGO_MAX_TOPIC_LEN + 1];
    uint8_t *payload; /* malloc'd copy; NULL when empty */
    size_t len;
    int qos;
    bool retain;
    int token;
};

struct rec_outbox {
    struct rec_msg msgs[REC_MAX];
    size_t len;
    bool connected;
    int next_token;
};

static inline mgo_err rec_publish(void *ctx, const char *topic, const void *payload, size_t len,
                                  int qos, bool retain, int *token_out)
{
    struct rec_outbox *r = ctx;
    if (!r->connected)
        return MGO_ERR_NET;
    if (r->len == REC_MAX)
        return MGO_ERR_LIMIT;
    struct rec_msg *m = &r->msgs[r->len++];
    snprintf(m->topic, sizeof m->topic, "%s", topic);
    m->payload = NULL;
    if (len > 0) {
        m->payload = malloc(len);
        memcpy(m->payload, payload, len);
    }
    m->len = len;
    m->qos = qos;
    m->retain = retain;
    m->token = ++r->next_token;
    if (token_out)
        *token_out = m->token;
    return MGO_OK;
}

static inline bool rec_connected(void *ctx)
{
    return ((struct rec_outbox *)ctx)->connected;
}

static inline void rec_init(struct rec_outbox *r, struct mgo_outbox *ob)
{
    memset(r, 0, sizeof *r);
    r->connected = true;
    ob->publish = rec_publish;
    ob->connected = rec_connected;
    ob->ctx = r;
}

static inline void rec_clear(struct rec_outbox *r)
{
    for (size_t i = 0; i < r->len; i++)
        free(r->msgs[i].payload);
    r->len = 0;
}

/* The last message on topic, or NULL. */
static inline const struct rec_msg *rec_find(const struct rec_outbox *r, const char *topic)
{
    for (size_t i = r->len; i-- > 0;) {
        if (strcmp(r->msgs[i].topic, topic) == 0)
            return &r->msgs[i];
    }
    return NULL;
}

#endif
