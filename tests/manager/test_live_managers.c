/* test_live_managers.c - the API's live event stream with several managers (share-group on
 * PostgreSQL, manager/src/livebus.h, docs/api.md "GET /events"): two managers in this process
 * on one Mosquitto and one database of the kit's private cluster (tests/support/pg.h).
 *
 * Checked:
 *   1. a stream on either manager carries every device message's event, whichever manager
 *      the broker handed it to, and both streams carry them in the same order (the store's
 *      commit order); both managers did take a share of the messages (their metrics);
 *   2. a status too long for one notification reaches a stream as a reference, which the
 *      listener resolves from the store (and mgo_livebus__payloads makes that reference);
 *      a device event too long for one goes in parts, cut at UTF-8 boundaries, and reaches
 *      the streams of both managers whole;
 *   3. the listening connections killed in the database: every open stream is ended (its
 *      client reconnects and starts again from a snapshot), the managers listen again, and
 *      new streams carry events again. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../manager/src/livebus.h"
#include "mgo_test.h"
#include "mgr_test_util.h"
#include "pg.h"
#include "proc.h"

#define TOKEN "live-token-0123456789abcdef"
#define GROUP "live"
#define NEVENTS 40
#define WAIT_MS 15000 /* hang guard for one expected event; never a timing assertion */

static struct mgo_test_broker broker;
static struct mgo_test_manager mgr[2];
static struct mgo_mqtt *dev;
static char dir[256], token_path[320], state[2][320];
static char *db_url;

static int suite_init(void)
{
    mgo_test_tmpdir("live", dir);
    snprintf(token_path, sizeof token_path, "%s/token", dir);
    if (!mgo_test_write_file(token_path, TOKEN "\n") || mgo_test_broker_start(&broker, NULL) != 0)
        return -1;
    db_url = (char *)mgo_test_pg_new_db(); /* lives until exit */
    for (int i = 0; i < 2; i++) {
        snprintf(state[i], sizeof state[i], "%s/state-%d", dir, i);
        mgo_test_manager_init(&mgr[i], mgo_test_broker_url(&broker), state[i],
                              i == 0 ? "margo-manager-live-a" : "margo-manager-live-b", token_path,
                              "warn");
        mgr[i].cfg.store = db_url;
        mgr[i].cfg.share_group = GROUP;
        if (mgo_test_manager_start(&mgr[i], true) != MGO_OK)
            return -1;
    }
    dev = mgo_test_mqtt_connect(mgo_test_broker_url(&broker), "live-devices", 0, WAIT_MS);
    return dev ? 0 : -1;
}

static int suite_clean(void)
{
    mgo_test_kill_children();
    if (dev)
        mgo_mqtt_free(dev);
    for (int i = 1; i >= 0; i--)
        mgo_test_manager_stop(&mgr[i]);
    mgo_test_broker_stop(&broker);
    mgo_test_broker_cleanup(&broker);
    return 0;
}

/* An unfiltered stream of manager i, written to log by curl; its pid. */
static pid_t open_stream(int i, const char *log)
{
    char url[128];
    snprintf(url, sizeof url, "%s/api/v1/events", mgr[i].api_base);
    const char *argv[] = {"/usr/bin/curl", "-sN", "-H", "Authorization: Bearer " TOKEN, url, NULL};
    pid_t pid = mgo_test_spawn(argv, log);
    if (pid > 0 && !mgo_test_log_wait(log, "event: hello", 0, WAIT_MS)) {
        mgo_test_kill(pid, SIGTERM);
        return -1;
    }
    return pid;
}

/* An unfiltered stream on each manager, logged to DIR/NAME-0.txt and DIR/NAME-1.txt. */
static void open_streams(const char *name, char log[2][320], pid_t s[2])
{
    for (int i = 0; i < 2; i++) {
        snprintf(log[i], 320, "%s/%s-%d.txt", dir, name, i);
        s[i] = open_stream(i, log[i]);
        CU_ASSERT_FATAL(s[i] > 0);
    }
}

static void device_event(const char *device, const char *message)
{
    char topic[128];
    snprintf(topic, sizeof topic, "margo/v1/devices/%s/events", device);
    CU_ASSERT_EQUAL(mgo_test_publish_yamlf(dev, topic, false, WAIT_MS,
                                           "deviceId: %s\ntype: test-probe\nseverity: info\n"
                                           "message: %s\ntimestamp: 1796428800000\n",
                                           device, message),
                    MGO_OK);
}

/* Publishes probe events until both logs show one (both managers listen); false after 30 s. */
static bool wait_listening(const char *log0, const char *log1, const char *tag)
{
    char msg[64];
    for (int k = 0; k < 150; k++) {
        snprintf(msg, sizeof msg, "probe-%s-%d", tag, k);
        device_event("live-probe", msg);
        mgo_test_sleep_ms(200);
        char needle[80];
        snprintf(needle, sizeof needle, "probe-%s-", tag);
        if (mgo_test_log_wait(log0, needle, 0, 1) && mgo_test_log_wait(log1, needle, 0, 1))
            return true;
    }
    return false;
}

/* The messages "ev-NN" of a stream's log, in order, as one string. */
static void event_order(const char *log, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen(log, "r");
    if (!f)
        return;
    char line[4096];
    size_t len = 0;
    while (fgets(line, sizeof line, f)) {
        const char *p = strstr(line, "\"message\":\"ev-");
        if (p && len + 8 < size) {
            memcpy(out + len, p + 11, 5);
            len += 5;
            out[len++] = ' ';
            out[len] = '\0';
        }
    }
    fclose(f);
}

static uint64_t handled_events(int i)
{
    struct mgo_test_reply r;
    mgr_test_http(mgr[i].api_base, "GET", "/metrics", NULL, "Bearer " TOKEN, &r);
    uint64_t n = 0;
    const char *p = r.body.data ? strstr((const char *)r.body.data,
                                         "margo_ingest_messages_total{kind=\"event\","
                                         "result=\"handled\"} ")
                                : NULL;
    if (p)
        n = strtoull(strchr(p, '}') + 2, NULL, 10);
    mgo_test_reply_cleanup(&r);
    return n;
}

static void test_every_stream_sees_every_manager(void)
{
    char log[2][320];
    pid_t s[2];
    open_streams("stream", log, s);
    CU_ASSERT_FATAL(wait_listening(log[0], log[1], "a"));
    uint64_t h0 = handled_events(0), h1 = handled_events(1);
    char msg[16];
    for (int k = 0; k < NEVENTS; k++) {
        char device[16];
        snprintf(device, sizeof device, "live-%d", k % 4);
        snprintf(msg, sizeof msg, "ev-%02d", k);
        device_event(device, msg);
    }
    for (int k = 0; k < NEVENTS; k++) {
        char needle[48];
        snprintf(needle, sizeof needle, "\"message\":\"ev-%02d\"", k);
        for (int i = 0; i < 2; i++)
            CU_ASSERT(mgo_test_log_wait(log[i], needle, 0, WAIT_MS));
    }
    char order[2][NEVENTS * 6 + 8];
    event_order(log[0], order[0], sizeof order[0]);
    event_order(log[1], order[1], sizeof order[1]);
    CU_ASSERT_EQUAL(strlen(order[0]), (size_t)NEVENTS * 6);
    CU_ASSERT_STRING_EQUAL(order[0], order[1]);
    /* each manager stored some of them itself: the relay carried the other's */
    uint64_t d0 = handled_events(0) - h0, d1 = handled_events(1) - h1;
    printf("\n    managers stored %llu and %llu of %d events; order %s\n", (unsigned long long)d0,
           (unsigned long long)d1, NEVENTS, order[0]);
    CU_ASSERT(d0 > 0 && d1 > 0);
    CU_ASSERT_EQUAL(d0 + d1, (uint64_t)NEVENTS);
    for (int i = 0; i < 2; i++)
        mgo_test_kill(s[i], SIGTERM);
}

static void test_long_status_goes_by_reference(void)
{
    /* the payload: a reference only for a status too long for one notification */
    struct mgo_buf b;
    mgo_buf_init(&b, MGO_MGR_NOTIFY_MAX);
    size_t n = 0;
    CU_ASSERT_EQUAL(mgo_livebus__payloads("status", "dep-1", "{\"a\":1}", &b, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 1u);
    CU_ASSERT_STRING_EQUAL((const char *)b.data, "status\tdep-1\t{\"a\":1}");
    char *big = malloc(9000);
    CU_ASSERT_FATAL(big != NULL);
    memset(big, 'x', 8999);
    big[0] = '"';
    big[8997] = '"';
    big[8998] = '\0';
    mgo_buf_reset(&b); /* payloads are appended */
    CU_ASSERT_EQUAL(mgo_livebus__payloads("status", "dep-1", big, &b, &n), MGO_OK);
    CU_ASSERT_EQUAL(n, 1u);
    CU_ASSERT_STRING_EQUAL((const char *)b.data, "status-ref\tdep-1\t");
    mgo_buf_cleanup(&b);

    /* a deployment with a status of its own in the shared store, then its reference */
    struct mgo_mgr_store *st = NULL;
    CU_ASSERT_FATAL(mgo_mgr_store_open(db_url, &st) == MGO_OK);
    uint64_t v = 0;
    CU_ASSERT_EQUAL(mgo_mgr_store_manifest_bump(st, "live-ref", &v), MGO_OK);
    struct mgo_mgr_deployment_row d =
        mgr_test_dep_row("dep-live-ref", "live-ref", (const uint8_t *)"\x80", 1, "sha256:x", v);
    CU_ASSERT_EQUAL(mgo_mgr_store_deployment_put(st, &d), MGO_OK);
    snprintf(big, 9000, "{\"note\":\"%0*d\"}", 8500, 7);
    struct mgo_mgr_status_row row = {.deployment_id = "dep-live-ref",
                                     .device_id = "live-ref",
                                     .state = "installed",
                                     .has_journal = true,
                                     .boot = 1,
                                     .seq = 1,
                                     .doc_json = big};
    CU_ASSERT_EQUAL(mgo_mgr_store_status_apply(st, &row, NULL), MGO_OK);
    char log[320];
    snprintf(log, sizeof log, "%s/stream-ref.txt", dir);
    char url[160];
    snprintf(url, sizeof url, "%s/api/v1/events?deployment=dep-live-ref", mgr[1].api_base);
    const char *argv[] = {"/usr/bin/curl", "-sN", "-H", "Authorization: Bearer " TOKEN, url, NULL};
    pid_t s = mgo_test_spawn(argv, log);
    CU_ASSERT_FATAL(s > 0);
    CU_ASSERT(mgo_test_log_wait(log, "\"snapshot\":true", 0, WAIT_MS));
    const char *payload = "status-ref\tdep-live-ref\t";
    CU_ASSERT_EQUAL(mgo_mgr_store_notify(st, MGO_LIVEBUS_CHANNEL, &payload, 1), MGO_OK);
    /* the live event (no snapshot mark) with the whole status, read from the store */
    CU_ASSERT(
        mgo_test_log_wait(log, "\"state\":\"installed\",\"desired\":\"present\"", 0, WAIT_MS));
    CU_ASSERT(mgo_test_log_wait(log, "0007\"}}", 1, WAIT_MS)); /* snapshot's and the live one */
    mgo_test_kill(s, SIGTERM);
    mgo_mgr_store_close(st);
    free(big);
}

/* A device event message of 3,009 bytes (events allow 4,096) whose live JSON is over 8,000:
 * "long-", then 1,000 times e-acute (two bytes, so cuts fall inside characters) and U+0001
 * (six bytes in JSON), then "-end"; as YAML (double-quoted) and as the JSON text expected. */
#define LONG_UNITS 1000
static void long_message(char *yaml, size_t yaml_size, char *json, size_t json_size)
{
    size_t y = (size_t)snprintf(yaml, yaml_size, "\"long-");
    size_t j = (size_t)snprintf(json, json_size, "long-");
    for (int i = 0; i < LONG_UNITS; i++) {
        y += (size_t)snprintf(yaml + y, yaml_size - y, "\xc3\xa9\\x01");
        j += (size_t)snprintf(json + j, json_size - j, "\xc3\xa9\\u0001");
    }
    snprintf(yaml + y, yaml_size - y, "-end\"");
    snprintf(json + j, json_size - j, "-end");
}

static void test_long_device_event_in_parts(void)
{
    static char yaml[16384], msg[16384];
    long_message(yaml, sizeof yaml, msg, sizeof msg);
    CU_ASSERT(strlen(msg) > MGO_MGR_NOTIFY_MAX);
    char json[16600];
    snprintf(json, sizeof json, "{\"message\":\"%s\"}", msg);
    /* the parts: each short enough, none starting inside a character, joined the whole */
    struct mgo_buf b;
    mgo_buf_init(&b, 1u << 20);
    size_t n = 0;
    CU_ASSERT_EQUAL_FATAL(mgo_livebus__payloads("device-event", "dep-9", json, &b, &n), MGO_OK);
    CU_ASSERT(n >= 2);
    char joined[16600] = "";
    const char *p = (const char *)b.data;
    for (size_t k = 0; k < n; k++, p += strlen(p) + 1) {
        CU_ASSERT(strlen(p) < MGO_MGR_NOTIFY_MAX);
        char head[48];
        if (k + 1 < n)
            snprintf(head, sizeof head, "device-event+%zu\tdep-9\t", k + 1);
        else
            snprintf(head, sizeof head, "device-event\tdep-9\t");
        CU_ASSERT_FATAL(strncmp(p, head, strlen(head)) == 0);
        const char *data = p + strlen(head);
        CU_ASSERT(((unsigned char)data[0] & 0xC0u) != 0x80u);
        strncat(joined, data, sizeof joined - strlen(joined) - 1);
    }
    CU_ASSERT_STRING_EQUAL(joined, json);
    /* past 64 KiB: not relayed */
    char *huge = malloc(MGO_LIVEBUS_EVENT_MAX + 2);
    CU_ASSERT_FATAL(huge != NULL);
    memset(huge, 'x', MGO_LIVEBUS_EVENT_MAX + 1);
    huge[MGO_LIVEBUS_EVENT_MAX + 1] = '\0';
    size_t before = b.len;
    CU_ASSERT_EQUAL(mgo_livebus__payloads("device-event", NULL, huge, &b, &n), MGO_ERR_LIMIT);
    CU_ASSERT_EQUAL(b.len, before); /* nothing of it appended */
    free(huge);
    mgo_buf_cleanup(&b);

    /* end to end: whichever manager stores it, both streams carry it whole */
    char log[2][320];
    pid_t s[2];
    open_streams("stream-long", log, s);
    CU_ASSERT_FATAL(wait_listening(log[0], log[1], "d"));
    CU_ASSERT_EQUAL(mgo_test_publish_yamlf(dev, "margo/v1/devices/live-long/events", false, WAIT_MS,
                                           "deviceId: live-long\ntype: test-probe\nseverity: "
                                           "info\nmessage: %s\ntimestamp: 1796428800000\n",
                                           yaml),
                    MGO_OK);
    char needle[16600];
    snprintf(needle, sizeof needle, "\"message\":\"%s\"", msg);
    for (int i = 0; i < 2; i++) {
        bool whole = false;
        for (int waited = 0; !whole && waited < WAIT_MS; waited += 100) {
            char *text = mgo_test_read_file(log[i], NULL); /* curl created it */
            whole = strstr(text, needle) != NULL;
            free(text);
            if (!whole)
                mgo_test_sleep_ms(100);
        }
        CU_ASSERT(whole);
        mgo_test_kill(s[i], SIGTERM);
    }
}

static void test_lost_listener_ends_streams(void)
{
    char log[2][320];
    pid_t s[2];
    open_streams("stream-lost", log, s);
    CU_ASSERT_FATAL(wait_listening(log[0], log[1], "b"));
    CU_ASSERT_FATAL(mgo_test_store_sql(db_url, "SELECT pg_terminate_backend(pid) FROM "
                                               "pg_stat_activity WHERE query = 'LISTEN "
                                               "margo_live'"));
    /* both streams end (curl exits at the end of the stream) */
    for (int i = 0; i < 2; i++)
        CU_ASSERT(mgo_test_wait_exit(s[i], WAIT_MS) == 0);
    /* listening again: new streams carry events of both managers again */
    open_streams("stream-again", log, s);
    CU_ASSERT(wait_listening(log[0], log[1], "c"));
    for (int i = 0; i < 2; i++)
        mgo_test_kill(s[i], SIGTERM);
}

void mgo_test_register(void)
{
    CU_pSuite s = CU_add_suite("live events across managers", suite_init, suite_clean);
    CU_add_test(s, "every stream sees what every manager stored, in one order",
                test_every_stream_sees_every_manager);
    CU_add_test(s, "a long status goes by reference", test_long_status_goes_by_reference);
    CU_add_test(s, "a long device event goes in parts", test_long_device_event_in_parts);
    CU_add_test(s, "a lost listening connection ends the streams, then listens again",
                test_lost_listener_ends_streams);
}
