/* test_mqtt.c - the MQTT 5 client (mgo/mqtt.h) against a real Mosquitto per test.
 *
 * The last-will test needs a client that dies without a clean disconnect: it starts this
 * same binary again with MGO_TEST_MQTT_WILL_CHILD set; the constructor below then plays
 * the client (connect with a will, report "connected" on stdout, wait) and is SIGKILLed. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "broker.h"
#include "mgo/limits.h"
#include "mgo/log.h"
#include "mgo/mqtt.h"
#include "mgo_test.h"

extern char **environ;

#define WAIT_MS 10000 /* hang guard for one expected event; never a timing assertion */

static struct mgo_test_broker broker;

static void cleanup_broker_at_exit(void)
{
    mgo_test_broker_cleanup(&broker);
}

/* Each test starts its own broker; one left by a test that failed fatally is removed. */
static void start_broker(void)
{
    static bool registered;
    if (!registered) {
        registered = atexit(cleanup_broker_at_exit) == 0;
    }
    mgo_test_broker_cleanup(&broker);
    CU_ASSERT_FATAL(mgo_test_broker_start(&broker, NULL) == 0);
}

static struct mgo_mqtt *new_client(const char *id, bool clean_start, uint32_t expiry_s,
                                   size_t queue_warn, const struct mgo_mqtt_will *will)
{
    struct mgo_mqtt_config cfg = {
        .url = mgo_test_broker_url(&broker),
        .client_id = id,
        .clean_start = clean_start,
        .session_expiry_s = expiry_s,
        .queue_warn = queue_warn,
        .will = will,
    };
    struct mgo_mqtt *m = NULL;
    CU_ASSERT_FATAL(mgo_mqtt_new(&cfg, &m) == MGO_OK);
    CU_ASSERT_FATAL(m != NULL);
    return m;
}

/* Waits for the next event of `kind`, skipping others. Skipping a MESSAGE fails the test:
 * no test here may lose one. */
static bool expect(struct mgo_mqtt *m, enum mgo_mqtt_event_kind kind, struct mgo_mqtt_event *out)
{
    for (;;) {
        struct mgo_mqtt_event ev;
        mgo_err err = mgo_mqtt_next(m, WAIT_MS, &ev);
        if (err != MGO_OK) {
            fprintf(stderr, "expected event %d, got %s\n", (int)kind, mgo_strerror(err));
            return false;
        }
        if (ev.kind == kind) {
            if (out != NULL)
                *out = ev;
            else
                mgo_mqtt_event_cleanup(&ev);
            return true;
        }
        CU_ASSERT(ev.kind != MGO_MQTT_EV_MESSAGE);
        mgo_mqtt_event_cleanup(&ev);
    }
}

static bool session_was_present;

static void connect_ok(struct mgo_mqtt *m)
{
    struct mgo_mqtt_event ev;
    CU_ASSERT_FATAL(mgo_mqtt_connect(m) == MGO_OK);
    CU_ASSERT_FATAL(expect(m, MGO_MQTT_EV_CONNECTED, &ev));
    session_was_present = ev.session_present;
    CU_ASSERT_TRUE(mgo_mqtt_is_connected(m));
    mgo_mqtt_event_cleanup(&ev);
}

static void subscribe_ok(struct mgo_mqtt *m, const char *filter)
{
    int token = -1;
    struct mgo_mqtt_event ev;
    CU_ASSERT_FATAL(mgo_mqtt_subscribe(m, filter, 1, &token) == MGO_OK);
    CU_ASSERT_FATAL(expect(m, MGO_MQTT_EV_SUBSCRIBED, &ev));
    CU_ASSERT_EQUAL(ev.token, token);
    mgo_mqtt_event_cleanup(&ev);
}

static void publish_ok(struct mgo_mqtt *m, const char *topic, const char *text, bool retain)
{
    int token = -1;
    struct mgo_mqtt_event ev;
    CU_ASSERT_FATAL(mgo_mqtt_publish(m, topic, text, strlen(text), 1, retain, &token) == MGO_OK);
    CU_ASSERT_FATAL(expect(m, MGO_MQTT_EV_PUBLISHED, &ev));
    CU_ASSERT_EQUAL(ev.token, token);
    mgo_mqtt_event_cleanup(&ev);
}

static bool payload_is(const struct mgo_mqtt_event *ev, const char *text)
{
    size_t len = strlen(text);
    return ev->payload_len == len && (len == 0 || memcmp(ev->payload, text, len) == 0);
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_retained_message_reaches_late_subscriber(void)
{
    start_broker();
    struct mgo_mqtt *a = new_client("ret-a", true, 0, 0, NULL);
    struct mgo_mqtt *b = new_client("ret-b", true, 0, 0, NULL);
    connect_ok(a);
    publish_ok(a, "margo/v1/devices/d1/state", "online", true);

    connect_ok(b);
    subscribe_ok(b, "margo/v1/devices/+/state");
    struct mgo_mqtt_event ev;
    CU_ASSERT_FATAL(expect(b, MGO_MQTT_EV_MESSAGE, &ev));
    CU_ASSERT_STRING_EQUAL(ev.topic, "margo/v1/devices/d1/state");
    CU_ASSERT_TRUE(payload_is(&ev, "online"));
    CU_ASSERT_TRUE(ev.retained);
    mgo_mqtt_event_cleanup(&ev);

    /* A live publish to a current subscriber is not flagged retained. */
    publish_ok(a, "margo/v1/devices/d1/state", "offline", true);
    CU_ASSERT_FATAL(expect(b, MGO_MQTT_EV_MESSAGE, &ev));
    CU_ASSERT_TRUE(payload_is(&ev, "offline"));
    CU_ASSERT_FALSE(ev.retained);
    mgo_mqtt_event_cleanup(&ev);

    /* An empty retained payload clears it: a new subscriber gets nothing. */
    publish_ok(a, "margo/v1/devices/d1/state", "", true);
    CU_ASSERT_FATAL(expect(b, MGO_MQTT_EV_MESSAGE, &ev));
    CU_ASSERT_EQUAL(ev.payload_len, 0);
    mgo_mqtt_event_cleanup(&ev);
    struct mgo_mqtt *c = new_client("ret-c", true, 0, 0, NULL);
    connect_ok(c);
    subscribe_ok(c, "margo/v1/devices/+/state");
    publish_ok(a, "margo/v1/devices/d2/state", "marker", false);
    CU_ASSERT_FATAL(expect(c, MGO_MQTT_EV_MESSAGE, &ev));
    CU_ASSERT_STRING_EQUAL(ev.topic, "margo/v1/devices/d2/state"); /* not the cleared d1 */
    mgo_mqtt_event_cleanup(&ev);

    CU_ASSERT(mgo_mqtt_disconnect(a, 5000) == MGO_OK);
    CU_ASSERT_FALSE(mgo_mqtt_is_connected(a));
    mgo_mqtt_free(a);
    mgo_mqtt_free(b); /* still connected, with nothing queued */
    mgo_mqtt_free(c);
    mgo_test_broker_cleanup(&broker);
}

static void test_published_events_carry_tokens(void)
{
    start_broker();
    struct mgo_mqtt *a = new_client("tok-a", true, 0, 0, NULL);
    connect_ok(a);
    enum { N = 5 };
    int tokens[N];
    bool seen[N] = {false};
    for (int i = 0; i < N; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        CU_ASSERT_FATAL(mgo_mqtt_publish(a, "tok/t", text, strlen(text), 1, false, &tokens[i]) ==
                        MGO_OK);
        for (int j = 0; j < i; j++)
            CU_ASSERT(tokens[j] != tokens[i]);
    }
    for (int k = 0; k < N; k++) {
        struct mgo_mqtt_event ev;
        CU_ASSERT_FATAL(expect(a, MGO_MQTT_EV_PUBLISHED, &ev));
        int match = -1;
        for (int i = 0; i < N; i++) {
            if (tokens[i] == ev.token && !seen[i])
                match = i;
        }
        CU_ASSERT(match >= 0);
        if (match >= 0)
            seen[match] = true;
        mgo_mqtt_event_cleanup(&ev);
    }
    mgo_mqtt_free(a);
    mgo_test_broker_cleanup(&broker);
}

static void test_closed_port_gives_connect_failed(void)
{
    start_broker();
    CU_ASSERT_FATAL(mgo_test_broker_stop(&broker) == 0);
    struct mgo_mqtt_config cfg = {
        .url = mgo_test_broker_url(&broker),
        .client_id = "closed",
        .clean_start = true,
        .connect_timeout_s = 5,
    };
    struct mgo_mqtt *m = NULL;
    CU_ASSERT_FATAL(mgo_mqtt_new(&cfg, &m) == MGO_OK);
    CU_ASSERT(mgo_mqtt_publish(m, "x/y", "z", 1, 1, false, NULL) == MGO_ERR_NET);
    CU_ASSERT(mgo_mqtt_connect(m) == MGO_OK);
    struct mgo_mqtt_event ev;
    CU_ASSERT_FATAL(expect(m, MGO_MQTT_EV_CONNECT_FAILED, &ev));
    CU_ASSERT(ev.reason != 0);
    mgo_mqtt_event_cleanup(&ev);
    CU_ASSERT_FALSE(mgo_mqtt_is_connected(m));

    /* The owner retries when it wants: after the broker is back the same client connects. */
    CU_ASSERT_FATAL(mgo_test_broker_restart(&broker) == 0);
    connect_ok(m);
    mgo_mqtt_free(m);
    mgo_test_broker_cleanup(&broker);
}

static void test_disconnected_event_when_broker_goes_away(void)
{
    start_broker();
    struct mgo_mqtt *m = new_client("lost", true, 0, 0, NULL);
    connect_ok(m);
    CU_ASSERT_FATAL(mgo_test_broker_stop(&broker) == 0);
    CU_ASSERT(expect(m, MGO_MQTT_EV_DISCONNECTED, NULL));
    CU_ASSERT_FALSE(mgo_mqtt_is_connected(m));
    CU_ASSERT(mgo_mqtt_publish(m, "x/y", "z", 1, 1, false, NULL) == MGO_ERR_NET);
    CU_ASSERT(mgo_mqtt_subscribe(m, "x/#", 1, NULL) == MGO_ERR_NET);
    mgo_mqtt_free(m);
    mgo_test_broker_cleanup(&broker);
}

/* Child role of the will test (runs before main when the variable is set). */
__attribute__((constructor)) static void will_child(void)
{
    const char *url = getenv("MGO_TEST_MQTT_WILL_CHILD");
    if (url == NULL)
        return;
    static const char gone[] = "offline";
    struct mgo_mqtt_will will = {
        .topic = "margo/v1/devices/dying/state",
        .payload = gone,
        .payload_len = sizeof gone - 1,
        .qos = 1,
        .retain = true,
    };
    struct mgo_mqtt_config cfg = {
        .url = url, .client_id = "dying", .clean_start = true, .will = &will};
    struct mgo_mqtt *m = NULL;
    if (mgo_mqtt_new(&cfg, &m) != MGO_OK || mgo_mqtt_connect(m) != MGO_OK)
        _exit(2);
    for (;;) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, WAIT_MS, &ev) != MGO_OK)
            _exit(3);
        bool ok = ev.kind == MGO_MQTT_EV_CONNECTED;
        mgo_mqtt_event_cleanup(&ev);
        if (ok)
            break;
    }
    if (write(STDOUT_FILENO, "R", 1) != 1)
        _exit(4);
    for (;;)
        pause(); /* until SIGKILL */
}

static void test_last_will_on_killed_client(void)
{
    start_broker();
    struct mgo_mqtt *s = new_client("will-watcher", true, 0, 0, NULL);
    connect_ok(s);
    subscribe_ok(s, "margo/v1/devices/+/state");

    int fds[2];
    CU_ASSERT_FATAL(pipe(fds) == 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
    posix_spawn_file_actions_addclose(&fa, fds[0]);
    char env_var[128];
    snprintf(env_var, sizeof env_var, "MGO_TEST_MQTT_WILL_CHILD=%s", mgo_test_broker_url(&broker));
    size_t n_env = 0;
    while (environ[n_env] != NULL)
        n_env++;
    char **env = calloc(n_env + 2, sizeof *env);
    CU_ASSERT_FATAL(env != NULL);
    for (size_t i = 0; i < n_env; i++)
        env[i] = environ[i];
    env[n_env] = env_var;
    char *argv[] = {"test_mqtt-will-child", NULL};
    pid_t pid = 0;
    int rc = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, env);
    posix_spawn_file_actions_destroy(&fa);
    free(env);
    close(fds[1]);
    CU_ASSERT_FATAL(rc == 0);

    struct pollfd pfd = {.fd = fds[0], .events = POLLIN, .revents = 0};
    char ready = 0;
    CU_ASSERT(poll(&pfd, 1, WAIT_MS) == 1 && read(fds[0], &ready, 1) == 1 && ready == 'R');
    close(fds[0]);
    CU_ASSERT(kill(pid, SIGKILL) == 0);
    int status = 0;
    CU_ASSERT(waitpid(pid, &status, 0) == pid);
    CU_ASSERT(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);

    struct mgo_mqtt_event ev;
    CU_ASSERT_FATAL(expect(s, MGO_MQTT_EV_MESSAGE, &ev));
    CU_ASSERT_STRING_EQUAL(ev.topic, "margo/v1/devices/dying/state");
    CU_ASSERT_TRUE(payload_is(&ev, "offline"));
    mgo_mqtt_event_cleanup(&ev);

    /* The will was retained: a monitor arriving later still learns the device is offline. */
    struct mgo_mqtt *late = new_client("will-late", true, 0, 0, NULL);
    connect_ok(late);
    subscribe_ok(late, "margo/v1/devices/dying/state");
    CU_ASSERT_FATAL(expect(late, MGO_MQTT_EV_MESSAGE, &ev));
    CU_ASSERT_TRUE(ev.retained);
    CU_ASSERT_TRUE(payload_is(&ev, "offline"));
    mgo_mqtt_event_cleanup(&ev);

    /* A clean disconnect does not fire the will. */
    static const char bye[] = "offline-clean";
    struct mgo_mqtt_will will = {.topic = "margo/v1/devices/polite/state",
                                 .payload = bye,
                                 .payload_len = sizeof bye - 1,
                                 .qos = 1};
    struct mgo_mqtt *polite = new_client("polite", true, 0, 0, &will);
    connect_ok(polite);
    CU_ASSERT(mgo_mqtt_disconnect(polite, 5000) == MGO_OK);
    mgo_mqtt_free(polite);
    publish_ok(late, "margo/v1/devices/marker/state", "m", false);
    CU_ASSERT_FATAL(expect(s, MGO_MQTT_EV_MESSAGE, &ev));
    CU_ASSERT_STRING_EQUAL(ev.topic, "margo/v1/devices/marker/state");
    mgo_mqtt_event_cleanup(&ev);

    mgo_mqtt_free(late);
    mgo_mqtt_free(s);
    mgo_test_broker_cleanup(&broker);
}

static void test_persistent_session_survives_absence_and_restart(void)
{
    start_broker();
    struct mgo_mqtt *p = new_client("agent-d1", false, 3600, 0, NULL);
    connect_ok(p);
    CU_ASSERT_FALSE(session_was_present);
    subscribe_ok(p, "margo/v1/devices/d1/desired");
    CU_ASSERT(mgo_mqtt_disconnect(p, 5000) == MGO_OK);
    mgo_mqtt_free(p);

    struct mgo_mqtt *mgr = new_client("manager", true, 0, 0, NULL);
    connect_ok(mgr);
    publish_ok(mgr, "margo/v1/devices/d1/desired", "v1", false);
    mgo_mqtt_free(mgr);

    /* The broker restarts while the device is away; its queue is on disk. */
    CU_ASSERT_FATAL(mgo_test_broker_restart(&broker) == 0);
    mgr = new_client("manager", true, 0, 0, NULL);
    connect_ok(mgr);
    publish_ok(mgr, "margo/v1/devices/d1/desired", "v2", false);
    mgo_mqtt_free(mgr);

    p = new_client("agent-d1", false, 3600, 0, NULL);
    connect_ok(p);
    CU_ASSERT_TRUE(session_was_present);
    struct mgo_mqtt_event ev;
    CU_ASSERT_FATAL(expect(p, MGO_MQTT_EV_MESSAGE, &ev));
    CU_ASSERT_TRUE(payload_is(&ev, "v1"));
    CU_ASSERT_FALSE(ev.retained);
    mgo_mqtt_event_cleanup(&ev);
    CU_ASSERT_FATAL(expect(p, MGO_MQTT_EV_MESSAGE, &ev));
    CU_ASSERT_TRUE(payload_is(&ev, "v2"));
    mgo_mqtt_event_cleanup(&ev);
    mgo_mqtt_free(p);

    /* clean_start=true discards the session. */
    p = new_client("agent-d1", true, 0, 0, NULL);
    connect_ok(p);
    CU_ASSERT_FALSE(session_was_present);
    mgo_mqtt_free(p);
    mgo_test_broker_cleanup(&broker);
}

static atomic_int behind_logs;

static void count_behind(enum mgo_log_level level, const char *tag, const char *line, void *ctx)
{
    (void)level;
    (void)ctx;
    if (strcmp(tag, "mqtt") == 0 && strstr(line, "falling behind") != NULL)
        atomic_fetch_add(&behind_logs, 1);
}

/* A consumer that does not read while a burst arrives gets every message afterwards, in
 * order, exactly once and without waiting for more traffic; past queue_warn the wrapper
 * warns once. (Until this change the wrapper refused messages past its limit, and Paho then
 * offered them again one per broker round trip: a backlog drained at a trickle.) */
static void test_slow_consumer_gets_everything_in_order(void)
{
    enum { N = 2000 };
    start_broker();
    atomic_store(&behind_logs, 0);
    mgo_log_set_sink(count_behind, NULL);

    struct mgo_mqtt *s = new_client("slow-consumer", true, 0, 2, NULL);
    connect_ok(s);
    subscribe_ok(s, "bp/t");
    struct mgo_mqtt *pub = new_client("fast-producer", true, 0, 0, NULL);
    connect_ok(pub);
    for (int i = 0; i < N; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        publish_ok(pub, "bp/t", text, false);
    }
    /* Only now does the consumer drain. */
    for (int i = 0; i < N; i++) {
        struct mgo_mqtt_event ev;
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        if (!expect(s, MGO_MQTT_EV_MESSAGE, &ev)) {
            fprintf(stderr, "message %d of %d never arrived\n", i, (int)N);
            CU_FAIL_FATAL("message lost behind a slow consumer");
        }
        CU_ASSERT_TRUE(payload_is(&ev, text));
        mgo_mqtt_event_cleanup(&ev);
    }
    struct mgo_mqtt_event ev;
    CU_ASSERT(mgo_mqtt_next(s, 0, &ev) == MGO_ERR_TIMEOUT);
    CU_ASSERT(atomic_load(&behind_logs) >= 1);
    mgo_log_set_sink(NULL, NULL);
    mgo_mqtt_free(pub);
    mgo_mqtt_free(s);
    mgo_test_broker_cleanup(&broker);
}

/* A burst far larger than the in-flight window: the wrapper queues what does not fit, hands
 * it to Paho as earlier publishes are acknowledged, and every publish reports exactly once,
 * with the token its call returned, and reaches the subscriber in publish order. */
static void test_publish_burst_beyond_window(void)
{
    enum { N = 3000, WINDOW = 8 };
    start_broker();
    struct mgo_mqtt *sub = new_client("burst-sub", true, 0, 0, NULL);
    connect_ok(sub);
    subscribe_ok(sub, "burst/t");
    struct mgo_mqtt_config cfg = {
        .url = mgo_test_broker_url(&broker),
        .client_id = "burst-pub",
        .clean_start = true,
        .max_inflight = WINDOW,
    };
    struct mgo_mqtt *pub = NULL;
    CU_ASSERT_FATAL(mgo_mqtt_new(&cfg, &pub) == MGO_OK);
    connect_ok(pub);
    static int tokens[N];
    static bool seen[N];
    memset(seen, 0, sizeof seen);
    for (int i = 0; i < N; i++) {
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        CU_ASSERT_FATAL(
            mgo_mqtt_publish(pub, "burst/t", text, strlen(text), 1, false, &tokens[i]) == MGO_OK);
        CU_ASSERT_FATAL(i == 0 || tokens[i] != tokens[i - 1]);
    }
    for (int done = 0; done < N; done++) {
        struct mgo_mqtt_event ev;
        CU_ASSERT_FATAL(expect(pub, MGO_MQTT_EV_PUBLISHED, &ev));
        /* tokens are handed out in increasing order from the first one */
        int i = ev.token - tokens[0];
        CU_ASSERT_FATAL(i >= 0 && i < N && tokens[i] == ev.token);
        CU_ASSERT_FALSE(seen[i]);
        seen[i] = true;
        mgo_mqtt_event_cleanup(&ev);
    }
    for (int i = 0; i < N; i++) {
        struct mgo_mqtt_event ev;
        char text[16];
        snprintf(text, sizeof text, "%d", i);
        CU_ASSERT_FATAL(expect(sub, MGO_MQTT_EV_MESSAGE, &ev));
        CU_ASSERT_TRUE(payload_is(&ev, text));
        mgo_mqtt_event_cleanup(&ev);
    }
    mgo_mqtt_free(pub);
    mgo_mqtt_free(sub);
    mgo_test_broker_cleanup(&broker);
}

/* Publishes still waiting in the wrapper when the connection breaks are reported failed
 * (none is silently dropped), and publishing while disconnected fails at once. */
static void test_queued_publishes_fail_on_connection_loss(void)
{
    enum { N = 2000 };
    start_broker();
    struct mgo_mqtt_config cfg = {
        .url = mgo_test_broker_url(&broker),
        .client_id = "loss-pub",
        .clean_start = true,
        .max_inflight = 1,
    };
    struct mgo_mqtt *pub = NULL;
    CU_ASSERT_FATAL(mgo_mqtt_new(&cfg, &pub) == MGO_OK);
    connect_ok(pub);
    for (int i = 0; i < N; i++)
        CU_ASSERT_FATAL(mgo_mqtt_publish(pub, "loss/t", "x", 1, 1, false, NULL) == MGO_OK);
    mgo_test_broker_cleanup(&broker); /* the broker goes away mid-burst */
    int outcomes = 0, failed = 0;
    bool disconnected = false;
    /* every outcome but the one Paho holds in flight (reported at a reconnect, or never
     * when the client is freed first) */
    while (outcomes < N - 1 || !disconnected) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(pub, WAIT_MS, &ev) != MGO_OK)
            break;
        if (ev.kind == MGO_MQTT_EV_PUBLISHED || ev.kind == MGO_MQTT_EV_PUBLISH_FAILED)
            outcomes++;
        if (ev.kind == MGO_MQTT_EV_PUBLISH_FAILED)
            failed++;
        if (ev.kind == MGO_MQTT_EV_DISCONNECTED)
            disconnected = true;
        mgo_mqtt_event_cleanup(&ev);
    }
    CU_ASSERT_TRUE(disconnected);
    CU_ASSERT(outcomes >= N - 1);
    CU_ASSERT(failed >= 1);
    CU_ASSERT_EQUAL(mgo_mqtt_publish(pub, "loss/t", "x", 1, 1, false, NULL), MGO_ERR_NET);
    mgo_mqtt_free(pub); /* ASan: nothing leaks with publishes still queued or handed over */
}

static void test_free_with_queued_messages(void)
{
    start_broker();
    struct mgo_mqtt *s = new_client("hoarder", true, 0, 4, NULL);
    connect_ok(s);
    subscribe_ok(s, "fq/t");
    struct mgo_mqtt *pub = new_client("fq-pub", true, 0, 0, NULL);
    connect_ok(pub);
    for (int i = 0; i < 10; i++)
        publish_ok(pub, "fq/t", "payload", false);
    struct mgo_mqtt_event ev;
    CU_ASSERT_FATAL(expect(s, MGO_MQTT_EV_MESSAGE, &ev)); /* at least one was queued */
    mgo_mqtt_event_cleanup(&ev);
    mgo_mqtt_free(s); /* queued and held-back messages are released (ASan checks) */
    mgo_mqtt_free(pub);
    mgo_test_broker_cleanup(&broker);
}

static void test_wake(void)
{
    start_broker();
    struct mgo_mqtt *m = new_client("waker", true, 0, 0, NULL);
    struct mgo_mqtt_event ev;
    mgo_mqtt_wake(m);
    CU_ASSERT(mgo_mqtt_next(m, -1, &ev) == MGO_ERR_TIMEOUT); /* would block forever otherwise */
    /* The wake is consumed; events queued before it are still delivered. */
    CU_ASSERT(mgo_mqtt_connect(m) == MGO_OK);
    CU_ASSERT(expect(m, MGO_MQTT_EV_CONNECTED, NULL));
    CU_ASSERT(mgo_mqtt_next(m, 0, &ev) == MGO_ERR_TIMEOUT);
    mgo_mqtt_wake(NULL);
    mgo_mqtt_free(m);
    mgo_test_broker_cleanup(&broker);
}

static void test_invalid_arguments(void)
{
    struct mgo_mqtt *m = NULL;
    struct mgo_mqtt_config cfg = {.url = "http://127.0.0.1:1", .client_id = "x"};
    CU_ASSERT(mgo_mqtt_new(&cfg, &m) == MGO_ERR_INVALID);
    CU_ASSERT_PTR_NULL(m);
    cfg.url = "tcp://127.0.0.1:1";
    cfg.client_id = "";
    CU_ASSERT(mgo_mqtt_new(&cfg, &m) == MGO_ERR_INVALID);
    cfg.client_id = "x";
    struct mgo_mqtt_will will = {.topic = "", .qos = 1};
    cfg.will = &will;
    CU_ASSERT(mgo_mqtt_new(&cfg, &m) == MGO_ERR_INVALID);
    will.topic = "w";
    will.qos = 3;
    CU_ASSERT(mgo_mqtt_new(&cfg, &m) == MGO_ERR_INVALID);
    will.qos = 1;
    will.payload_len = MGO_MAX_MESSAGE_BYTES + 1;
    will.payload = "";
    CU_ASSERT(mgo_mqtt_new(&cfg, &m) == MGO_ERR_LIMIT);
    cfg.will = NULL;
    cfg.url = "mqtts://127.0.0.1:1";
    CU_ASSERT_FATAL(mgo_mqtt_new(&cfg, &m) == MGO_OK);

    static uint8_t big[MGO_MAX_MESSAGE_BYTES + 1];
    CU_ASSERT(mgo_mqtt_publish(m, "t", big, sizeof big, 1, false, NULL) == MGO_ERR_LIMIT);
    CU_ASSERT(mgo_mqtt_publish(m, "t", "x", 1, 3, false, NULL) == MGO_ERR_INVALID);
    CU_ASSERT(mgo_mqtt_publish(m, "", "x", 1, 1, false, NULL) == MGO_ERR_INVALID);
    CU_ASSERT(mgo_mqtt_subscribe(m, "t", -1, NULL) == MGO_ERR_INVALID);
    /* At the limit the wrapper accepts it and Paho says "not connected". */
    CU_ASSERT(mgo_mqtt_publish(m, "t", big, MGO_MAX_MESSAGE_BYTES, 1, false, NULL) == MGO_ERR_NET);
    mgo_mqtt_free(m);
    mgo_mqtt_free(NULL);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"retained QoS 1 message reaches a late subscriber",
         test_retained_message_reaches_late_subscriber},
        {"PUBLISHED events carry the publish token", test_published_events_carry_tokens},
        {"closed port gives CONNECT_FAILED; owner retries", test_closed_port_gives_connect_failed},
        {"DISCONNECTED when the broker goes away", test_disconnected_event_when_broker_goes_away},
        {"last will when a client is killed", test_last_will_on_killed_client},
        {"persistent session across absence and broker restart",
         test_persistent_session_survives_absence_and_restart},
        {"slow consumer gets everything in order", test_slow_consumer_gets_everything_in_order},
        {"publish burst beyond the in-flight window", test_publish_burst_beyond_window},
        {"queued publishes fail on connection loss", test_queued_publishes_fail_on_connection_loss},
        {"free with queued messages", test_free_with_queued_messages},
        {"wake interrupts a wait", test_wake},
        {"invalid arguments", test_invalid_arguments},
        {NULL, NULL},
    };
    mgo_test_add_suite("mqtt", cases);
}
