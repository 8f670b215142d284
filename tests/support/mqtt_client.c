/* mqtt_client.c - see mqtt_client.h. */
#include "mqtt_client.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "mgo/limits.h"
#include "mgo/problems.h"
#include "mgo_test.h"

#define NEXT_STEP_MS 100

struct mgo_mqtt *mgo_test_mqtt_connect(const char *url, const char *client_id,
                                       uint32_t session_expiry_s, int wait_ms)
{
    struct mgo_mqtt_config c = {.url = url,
                                .client_id = client_id,
                                .clean_start = session_expiry_s == 0,
                                .session_expiry_s = session_expiry_s};
    struct mgo_mqtt *m = NULL;
    if (mgo_mqtt_new(&c, &m) != MGO_OK) {
        fprintf(stderr, "mqtt client %s: cannot create it for %s\n", client_id, url);
        return NULL;
    }
    if (mgo_mqtt_connect(m) != MGO_OK) {
        fprintf(stderr, "mqtt client %s: connect to %s refused\n", client_id, url);
        mgo_mqtt_free(m);
        return NULL;
    }
    int64_t deadline = mgo_test_now_ms() + wait_ms;
    while (mgo_test_now_ms() < deadline) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, NEXT_STEP_MS, &ev) != MGO_OK)
            continue;
        enum mgo_mqtt_event_kind k = ev.kind;
        mgo_mqtt_event_cleanup(&ev);
        if (k == MGO_MQTT_EV_CONNECTED)
            return m;
        if (k == MGO_MQTT_EV_CONNECT_FAILED)
            break;
    }
    fprintf(stderr, "mqtt client %s: not connected to %s\n", client_id, url);
    mgo_mqtt_free(m);
    return NULL;
}

mgo_err mgo_test_mqtt_publish_wait(struct mgo_mqtt *m, const char *topic, const void *data,
                                   size_t len, bool retain, int wait_ms)
{
    int token = -1;
    mgo_err err = mgo_mqtt_publish(m, topic, data, len, 1, retain, &token);
    if (err != MGO_OK)
        return err;
    int64_t deadline = mgo_test_now_ms() + wait_ms;
    while (mgo_test_now_ms() < deadline) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, NEXT_STEP_MS, &ev) != MGO_OK)
            continue;
        bool done = ev.kind == MGO_MQTT_EV_PUBLISHED && ev.token == token;
        bool failed = ev.kind == MGO_MQTT_EV_PUBLISH_FAILED && ev.token == token;
        mgo_mqtt_event_cleanup(&ev);
        if (done)
            return MGO_OK;
        if (failed)
            return MGO_ERR_NET;
    }
    return MGO_ERR_TIMEOUT;
}

mgo_err mgo_test_yaml(const char *text, struct mgo_arena *arena, struct mgo_value *out)
{
    struct mgo_problems p;
    mgo_problems_init(&p);
    mgo_err err = mgo_value_from_yaml(text, strlen(text), arena, out, &p);
    if (err != MGO_OK) {
        char t[512];
        mgo_problems_format(&p, t, sizeof t);
        fprintf(stderr, "test YAML: %s\n", t);
    }
    return err;
}

mgo_err mgo_test_yaml_msgpack(const char *text, struct mgo_buf *out)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_value v;
    mgo_err err = mgo_test_yaml(text, &arena, &v);
    if (err == MGO_OK)
        err = mgo_value_to_msgpack(&v, out);
    mgo_arena_cleanup(&arena);
    return err;
}

mgo_err mgo_test_publish_yaml(struct mgo_mqtt *m, const char *topic, bool retain, const char *text,
                              int wait_ms)
{
    struct mgo_buf b;
    mgo_buf_init(&b, 1u << 20); /* tests may send more than MGO_MAX_MESSAGE_BYTES */
    mgo_err err = mgo_test_yaml_msgpack(text, &b);
    if (err == MGO_OK)
        err = wait_ms > 0 ? mgo_test_mqtt_publish_wait(m, topic, b.data, b.len, retain, wait_ms)
                          : mgo_mqtt_publish(m, topic, b.data, b.len, 1, retain, NULL);
    mgo_buf_cleanup(&b);
    return err;
}

mgo_err mgo_test_publish_vyamlf(struct mgo_mqtt *m, const char *topic, bool retain, int wait_ms,
                                const char *fmt, va_list ap)
{
    char text[16384];
    int n = vsnprintf(text, sizeof text, fmt, ap);
    if (n < 0 || (size_t)n >= sizeof text) {
        fprintf(stderr, "test YAML longer than %zu bytes\n", sizeof text - 1);
        return MGO_ERR_LIMIT;
    }
    return mgo_test_publish_yaml(m, topic, retain, text, wait_ms);
}

mgo_err mgo_test_publish_yamlf(struct mgo_mqtt *m, const char *topic, bool retain, int wait_ms,
                               const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    mgo_err err = mgo_test_publish_vyamlf(m, topic, retain, wait_ms, fmt, ap);
    va_end(ap);
    return err;
}
