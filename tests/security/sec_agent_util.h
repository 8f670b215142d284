/* sec_agent_util.h - helpers for the agent security tests (header-only): an event watcher
 * that keeps every event of one device (type, severity, deploymentId, message), counting
 * lines of a recorded command log, and YAML -> signed/unsigned MessagePack documents. */
#ifndef SEC_AGENT_UTIL_H
#define SEC_AGENT_UTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

#include "harness.h"
#include "mgo/margo.h"
#include "mgo/mqtt.h"
#include "mgo/sign.h"
#include "mgo/topic.h"
#include "mgo_test.h"
#include "mqtt_client.h"

struct sec_event {
    char type[64];
    char severity[16];
    char deployment_id[80];
    char message[512];
};

struct sec_events {
    struct mgo_mqtt *m;
    struct sec_event items[64];
    size_t len;
};

static inline void sec_events_start(struct sec_events *w, const char *url, const char *device)
{
    memset(w, 0, sizeof *w);
    char id[64];
    snprintf(id, sizeof id, "sec-events-%s", device);
    w->m = h_client(url, id);
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_EVENTS, device, NULL, t, sizeof t) ==
                    MGO_OK);
    CU_ASSERT_FATAL(mgo_mqtt_subscribe(w->m, t, 1, NULL) == MGO_OK);
}

static inline void sec_events_take(struct sec_events *w, const struct mgo_mqtt_event *ev)
{
    if (ev->kind != MGO_MQTT_EV_MESSAGE || ev->payload_len == 0 || w->len == 64)
        return;
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 16);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_event e;
    if (mgo_event_decode(ev->payload, ev->payload_len, &arena, &e, &p) == MGO_OK) {
        struct sec_event *s = &w->items[w->len++];
        snprintf(s->type, sizeof s->type, "%s", e.type ? e.type : "");
        snprintf(s->severity, sizeof s->severity, "%s", e.severity ? e.severity : "");
        snprintf(s->deployment_id, sizeof s->deployment_id, "%s",
                 e.deployment_id ? e.deployment_id : "");
        snprintf(s->message, sizeof s->message, "%s", e.message ? e.message : "");
        if (getenv("MGO_TEST_VERBOSE"))
            fprintf(stderr, "  event %s %s %s: %s\n", s->type, s->severity, s->deployment_id,
                    s->message);
    }
    mgo_arena_cleanup(&arena);
}

/* Waits at most timeout_ms for a new event (index >= from) of the given type; returns it. */
static inline const struct sec_event *sec_events_wait(struct sec_events *w, size_t from,
                                                      const char *type, int timeout_ms)
{
    int64_t t0 = mgo_test_now_ms();
    for (;;) {
        for (size_t i = from; i < w->len; i++)
            if (strcmp(w->items[i].type, type) == 0)
                return &w->items[i];
        if (mgo_test_now_ms() - t0 >= timeout_ms)
            return NULL;
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(w->m, 200, &ev) == MGO_OK) {
            sec_events_take(w, &ev);
            mgo_mqtt_event_cleanup(&ev);
        }
    }
}

static inline void sec_events_stop(struct sec_events *w)
{
    if (w->m != NULL) {
        if (mgo_mqtt_disconnect(w->m, 1000) != MGO_OK)
            fprintf(stderr, "events: disconnect not clean\n");
        mgo_mqtt_free(w->m);
    }
    w->m = NULL;
}

/* YAML text -> tree in arena (fatal on error). */
static inline struct mgo_value sec_yaml(struct mgo_arena *arena, const char *yaml)
{
    struct mgo_value v;
    if (mgo_test_yaml(yaml, arena, &v) != MGO_OK)
        CU_FAIL_FATAL("test YAML");
    return v;
}

/* Signs root with key (NULL = leave unsigned) into *out (arena memory). */
static inline struct mgo_value sec_sign(const struct mgo_sign_key *key,
                                        const struct mgo_value *root, struct mgo_arena *arena)
{
    if (key == NULL)
        return *root;
    struct mgo_value out;
    CU_ASSERT_FATAL(mgo_sign_document(key, root, arena, &out) == MGO_OK);
    return out;
}

/* Mutable member of a tree the test built itself (arena memory). */
static inline struct mgo_value *sec_member(struct mgo_value *map, const char *key)
{
    return (struct mgo_value *)mgo_value_get(map, key);
}

/* Publishes a tree as MessagePack, retained QoS 1. */
static inline void sec_publish_value(struct mgo_mqtt *m, const char *topic,
                                     const struct mgo_value *v)
{
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_value_to_msgpack(v, &b) == MGO_OK);
    h_publish(m, topic, b.data, b.len);
    mgo_buf_cleanup(&b);
}

#endif
