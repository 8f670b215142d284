/* harness.c - see harness.h. */
#include "harness.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mgo/log.h"
#include "mgo/topic.h"
#include "mgo_test.h"
#include "mqtt_client.h"

#define CONNECT_WAIT_MS 10000

static void *agent_main(void *arg)
{
    struct h_agent *a = arg;
    a->result = mgo_agent_run(a->agent);
    return NULL;
}

void h_agent_init(struct h_agent *a, ...)
{
    memset(a, 0, sizeof *a);
    CU_ASSERT_FATAL(mgo_cfg_defaults(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &a->cfg) ==
                    MGO_OK);
    va_list ap;
    va_start(ap, a);
    for (;;) {
        const char *k = va_arg(ap, const char *);
        if (k == NULL)
            break;
        const char *v = va_arg(ap, const char *);
        struct mgo_problems p;
        mgo_problems_init(&p);
        if (mgo_cfg_set(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &a->cfg, k, v, "test", &p) !=
            MGO_OK) {
            fprintf(stderr, "config %s=%s refused\n", k, v);
            CU_FAIL_FATAL("agent config");
        }
    }
    va_end(ap);
}

void h_agent_start(struct h_agent *a)
{
    a->result = mgo_agent_new(&a->cfg, &a->agent);
    CU_ASSERT_EQUAL_FATAL(a->result, MGO_OK);
    CU_ASSERT_FATAL(pthread_create(&a->thread, NULL, agent_main, a) == 0);
    a->running = true;
}

void h_agent_stop(struct h_agent *a)
{
    if (!a->running)
        return;
    mgo_agent_stop(a->agent); /* any thread */
    pthread_join(a->thread, NULL);
    a->running = false;
    mgo_agent_free(a->agent);
    a->agent = NULL;
    CU_ASSERT_EQUAL(a->result, MGO_OK);
}

void h_agent_cleanup(struct h_agent *a)
{
    h_agent_stop(a);
    mgo_cfg_cleanup(mgo_agent_cfg_table, mgo_agent_cfg_table_len, &a->cfg);
}

struct mgo_mqtt *h_client(const char *url, const char *client_id)
{
    struct mgo_mqtt *m = mgo_test_mqtt_connect(url, client_id, 0, CONNECT_WAIT_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    return m;
}

struct mgo_mqtt *h_client_persistent(const char *url, const char *client_id)
{
    struct mgo_mqtt *m = mgo_test_mqtt_connect(url, client_id, 300, CONNECT_WAIT_MS);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    return m;
}

void h_doc(const char *yaml, struct mgo_buf *bytes, char digest[MGO_DIGEST_STR_SIZE])
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_value root;
    if (mgo_test_yaml(yaml, &arena, &root) != MGO_OK)
        CU_FAIL_FATAL("yaml");
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_app_deployment dep;
    if (mgo_app_deployment_from_value(&root, &arena, &dep, &p) != MGO_OK) {
        char t[512];
        mgo_problems_format(&p, t, sizeof t);
        fprintf(stderr, "deployment: %s\n", t);
        CU_FAIL_FATAL("deployment document");
    }
    mgo_buf_init(bytes, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_value_to_msgpack(&root, bytes) == MGO_OK);
    CU_ASSERT_FATAL(mgo_doc_digest(&root, digest) == MGO_OK);
    mgo_arena_cleanup(&arena);
}

void h_publish(struct mgo_mqtt *m, const char *topic, const void *data, size_t len)
{
    mgo_err err = mgo_test_mqtt_publish_wait(m, topic, data, len, true, CONNECT_WAIT_MS);
    if (err == MGO_ERR_TIMEOUT) {
        CU_FAIL("publish not acknowledged");
    } else {
        CU_ASSERT_FATAL(err == MGO_OK);
    }
}

void h_publish_doc(struct mgo_mqtt *m, const char *device, const char *id, const char *yaml,
                   char digest[MGO_DIGEST_STR_SIZE])
{
    struct mgo_buf bytes;
    h_doc(yaml, &bytes, digest);
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DEPLOYMENT, device, id, t, sizeof t) ==
                    MGO_OK);
    h_publish(m, t, bytes.data, bytes.len);
    mgo_buf_cleanup(&bytes);
}

void h_publish_manifest(struct mgo_mqtt *m, const char *device, uint64_t version, size_t n,
                        const char *const *ids, const char *const *digests)
{
    struct mgo_desired_ref refs[16];
    memset(refs, 0, sizeof refs);
    for (size_t i = 0; i < n; i++) {
        refs[i].deployment_id = ids[i];
        refs[i].digest = digests[i];
    }
    struct mgo_desired_state ds = {.manifest_version = version,
                                   .has_bundle = false,
                                   .deployments = refs,
                                   .deployments_len = n};
    struct mgo_buf buf;
    mgo_buf_init(&buf, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_desired_state_encode(&ds, &buf) == MGO_OK);
    char t[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_DESIRED, device, NULL, t, sizeof t) ==
                    MGO_OK);
    h_publish(m, t, buf.data, buf.len);
    mgo_buf_cleanup(&buf);
}

static void monitor_start(struct h_monitor *mon, const char *url, const char *device,
                          const char *persistent_id)
{
    memset(mon, 0, sizeof *mon);
    char id[64];
    snprintf(id, sizeof id, "monitor-%d", (int)getpid());
    mon->m = persistent_id ? h_client_persistent(url, persistent_id) : h_client(url, id);
    char f[MGO_MAX_TOPIC_LEN + 1];
    CU_ASSERT_FATAL(mgo_topic_filter("margo/v1", MGO_TOPIC_STATUS, device, f, sizeof f) == MGO_OK);
    CU_ASSERT_FATAL(mgo_mqtt_subscribe(mon->m, f, 1, NULL) == MGO_OK);
    CU_ASSERT_FATAL(mgo_topic_format("margo/v1", MGO_TOPIC_EVENTS, device, NULL, f, sizeof f) ==
                    MGO_OK);
    CU_ASSERT_FATAL(mgo_mqtt_subscribe(mon->m, f, 1, NULL) == MGO_OK);
}

void h_monitor_start(struct h_monitor *mon, const char *url, const char *device)
{
    monitor_start(mon, url, device, NULL);
}

void h_monitor_start_persistent(struct h_monitor *mon, const char *url, const char *device,
                                const char *client_id)
{
    monitor_start(mon, url, device, client_id);
}

static void take(struct h_monitor *mon, struct mgo_mqtt_event *ev)
{
    if (ev->kind != MGO_MQTT_EV_MESSAGE || ev->payload_len == 0)
        return;
    struct mgo_topic t;
    if (mgo_topic_parse("margo/v1", ev->topic, strlen(ev->topic), &t) != MGO_OK)
        return;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    if (t.kind == MGO_TOPIC_EVENTS) {
        struct mgo_event e;
        if (mgo_event_decode(ev->payload, ev->payload_len, &arena, &e, &p) == MGO_OK) {
            mon->events++;
            snprintf(mon->last_event_type, sizeof mon->last_event_type, "%s", e.type);
        }
    } else if (t.kind == MGO_TOPIC_STATUS && mon->len < 512) {
        struct mgo_deployment_status s;
        if (mgo_deployment_status_decode(ev->payload, ev->payload_len, &arena, &s, &p) == MGO_OK) {
            struct h_status *h = &mon->items[mon->len++];
            memset(h, 0, sizeof *h);
            snprintf(h->deployment_id, sizeof h->deployment_id, "%s", s.deployment_id);
            h->state = s.state;
            h->boot = s.boot;
            h->seq = s.seq;
            h->adopted = s.adopted_manifest_version;
            if (s.has_error) {
                snprintf(h->error_code, sizeof h->error_code, "%s",
                         s.error.code ? s.error.code : "");
                snprintf(h->error_message, sizeof h->error_message, "%s",
                         s.error.message ? s.error.message : "");
            }
            h->has_app = s.has_app;
            if (s.has_app) {
                snprintf(h->app_id, sizeof h->app_id, "%s", s.app.id);
                snprintf(h->app_version, sizeof h->app_version, "%s",
                         s.app.version ? s.app.version : "");
                snprintf(h->app_name, sizeof h->app_name, "%s", s.app.name);
            }
            h->comps = s.components_len < 8 ? s.components_len : 8;
            for (size_t i = 0; i < h->comps; i++)
                snprintf(h->comp_state[i], sizeof h->comp_state[i], "%s",
                         mgo_state_name(s.components[i].state));
            if (getenv("MGO_TEST_VERBOSE"))
                fprintf(stderr, "  status %s %s boot %llu seq %llu %s\n", h->deployment_id,
                        mgo_state_name(h->state), (unsigned long long)h->boot,
                        (unsigned long long)h->seq, h->error_message);
        } else {
            char text[512];
            mgo_problems_format(&p, text, sizeof text);
            fprintf(stderr, "monitor: undecodable status: %s\n", text);
        }
    }
    mgo_arena_cleanup(&arena);
}

void h_monitor_pump(struct h_monitor *mon, int ms)
{
    int64_t t0 = mgo_test_now_ms();
    for (;;) {
        int64_t el = mgo_test_now_ms() - t0;
        if (el >= ms)
            return;
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(mon->m, (int)(ms - el), &ev) == MGO_OK) {
            take(mon, &ev);
            mgo_mqtt_event_cleanup(&ev);
        }
    }
}

bool h_monitor_wait(struct h_monitor *mon, const char *dep, enum mgo_state st, int timeout_ms)
{
    size_t start = mon->len;
    int64_t t0 = mgo_test_now_ms();
    for (;;) {
        for (size_t i = start; i < mon->len; i++)
            if (strcmp(mon->items[i].deployment_id, dep) == 0 && mon->items[i].state == st)
                return true;
        start = mon->len;
        if (mgo_test_now_ms() - t0 >= timeout_ms)
            return false;
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(mon->m, 200, &ev) == MGO_OK) {
            take(mon, &ev);
            mgo_mqtt_event_cleanup(&ev);
        }
    }
}

void h_monitor_stop(struct h_monitor *mon)
{
    if (mon->m != NULL) {
        if (mgo_mqtt_disconnect(mon->m, 1000) != MGO_OK)
            fprintf(stderr, "monitor: disconnect not clean\n");
        mgo_mqtt_free(mon->m);
    }
    mon->m = NULL;
}

size_t h_monitor_order_violations(const struct h_monitor *mon)
{
    /* per deployment, (boot, seq) only grows; an exact re-send (journal replay, retained
     * copy on a new subscription) of an earlier status is not a violation */
    size_t bad = 0;
    for (size_t i = 0; i < mon->len; i++) {
        const struct h_status *s = &mon->items[i];
        bool resend = false, newer = true;
        for (size_t k = 0; k < i; k++) {
            const struct h_status *o = &mon->items[k];
            if (strcmp(o->deployment_id, s->deployment_id) != 0)
                continue;
            if (o->boot == s->boot && o->seq == s->seq)
                resend = true;
            if (o->boot > s->boot || (o->boot == s->boot && o->seq > s->seq))
                newer = false;
        }
        if (!resend && !newer) {
            fprintf(stderr, "order: %s status %llu.%llu after a later one\n", s->deployment_id,
                    (unsigned long long)s->boot, (unsigned long long)s->seq);
            bad++;
        }
    }
    return bad;
}
