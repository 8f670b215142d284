/* mgr_test_util.h - small helpers shared by the manager tests (header-only): temporary
 * directories, and for the integration tests a manager in a thread, its API over HTTP and
 * MQTT clients of the test broker. */
#ifndef MGR_TEST_UTIL_H
#define MGR_TEST_UTIL_H

#include <curl/curl.h>
#include <dirent.h>
#include <poll.h>
#include <pthread.h>
#include <pty.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "mgo/manager.h"
#include "mgo/margo.h"
#include "mgo/mqtt.h"
#include "mgo_test.h"
#include "http.h"

/* Creates a fresh directory under /tmp; path receives it. */
static inline void mgr_test_tmpdir(char path[256])
{
    snprintf(path, 256, "/tmp/mgo-mgr-test-XXXXXX");
    if (mkdtemp(path) == NULL) {
        perror("mkdtemp");
        exit(2);
    }
}

/* Removes a directory made by mgr_test_tmpdir and the plain files in it. */
static inline void mgr_test_rmdir(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char file[1024];
            if (snprintf(file, sizeof file, "%s/%s", path, e->d_name) < (int)sizeof file)
                unlink(file);
        }
        closedir(d);
    }
    rmdir(path);
}

/* ---- integration tests ------------------------------------------------------------------ */

static inline int64_t mgr_test_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A manager running in a thread of the test. */
struct mgr_test_manager {
    struct mgo_manager_config cfg; /* the manager refers to it while it lives */
    struct mgo_manager *m;
    pthread_t thread;
    bool running;
};

static inline void *mgr_test_run_manager(void *arg)
{
    mgo_err err = mgo_manager_run(arg);
    (void)err;
    return NULL;
}

/* Starts a manager on broker_url with its state in dir and its API on a free loopback port;
 * api_base receives "http://127.0.0.1:PORT". */
static inline bool mgr_test_manager_start(struct mgr_test_manager *t, const char *broker_url,
                                          const char *dir, const char *client_id,
                                          const char *token_file, const char *log_level,
                                          char api_base[64])
{
    struct mgo_manager_config *cfg = &t->cfg;
    memset(cfg, 0, sizeof *cfg);
    cfg->state_dir = (char *)dir;
    cfg->broker_url = (char *)broker_url;
    cfg->client_id = (char *)client_id;
    cfg->topic_prefix = (char *)"margo/v1";
    cfg->api_listen = (char *)"127.0.0.1:0";
    cfg->api_token_file = (char *)token_file;
    cfg->log_level = (char *)log_level;
    cfg->session_expiry_s = 600;
    cfg->keepalive_s = 30;
    if (mgo_manager_new(cfg, &t->m) != MGO_OK)
        return false;
    snprintf(api_base, 64, "http://127.0.0.1:%u", mgo_manager_api_port(t->m));
    if (pthread_create(&t->thread, NULL, mgr_test_run_manager, t->m) != 0)
        return false;
    t->running = true;
    return true;
}

static inline void mgr_test_manager_stop(struct mgr_test_manager *t)
{
    if (!t->running)
        return;
    mgo_manager_stop(t->m);
    pthread_join(t->thread, NULL);
    mgo_manager_free(t->m);
    t->m = NULL;
    t->running = false;
}

/* An HTTP reply; json is the body parsed (MGO_V_NULL when empty or not JSON). */
struct mgr_test_reply {
    long status;
    char content_type[128];
    struct mgo_buf body;
    struct mgo_arena arena;
    struct mgo_value json;
};

/* method api_base+path with body (NULL = none) and auth as the Authorization header (NULL =
 * none); r receives the reply (status 0 when the request failed). */
static inline void mgr_test_http(const char *api_base, const char *method, const char *path,
                                 const char *body, const char *auth, struct mgr_test_reply *r)
{
    memset(r, 0, sizeof *r);
    mgo_buf_init(&r->body, 64u << 20);
    mgo_arena_init(&r->arena, 256u << 20);
    char url[512], line[256];
    snprintf(url, sizeof url, "%s%s", api_base, path);
    const char *headers[2] = {NULL, NULL};
    if (auth) {
        snprintf(line, sizeof line, "Authorization: %s", auth);
        headers[0] = line;
    }
    r->status = mgo_test_http(method, url, headers, body, 30000L, &r->body, r->content_type,
                              sizeof r->content_type);
    struct mgo_problems p;
    mgo_problems_init(&p);
    if (r->body.len == 0 ||
        mgo_value_from_yaml(r->body.data, r->body.len, &r->arena, &r->json, &p) != MGO_OK)
        r->json.kind = MGO_V_NULL;
}

static inline void mgr_test_reply_cleanup(struct mgr_test_reply *r)
{
    mgo_buf_cleanup(&r->body);
    mgo_arena_cleanup(&r->arena);
}

/* The string at pointer in v; "" when absent or not a string. */
static inline const char *mgr_test_jstr(const struct mgo_value *v, const char *pointer)
{
    const struct mgo_value *x = mgo_value_pointer(v, pointer);
    return x && x->kind == MGO_V_STR ? x->as.str.ptr : "";
}

/* The reply's "errors" name field with a message containing text. */
static inline bool mgr_test_has_error(const struct mgr_test_reply *r, const char *field,
                                      const char *text)
{
    const struct mgo_value *e = mgo_value_get(&r->json, "errors");
    for (size_t i = 0; e && e->kind == MGO_V_ARRAY && i < e->as.array.len; i++) {
        if (strcmp(mgr_test_jstr(&e->as.array.items[i], "/field"), field) == 0 &&
            strstr(mgr_test_jstr(&e->as.array.items[i], "/message"), text))
            return true;
    }
    return false;
}

/* An MQTT client connected to url (clean start), NULL when it is not within wait_ms. */
static inline struct mgo_mqtt *mgr_test_mqtt_connect(const char *url, const char *client_id,
                                                     int64_t wait_ms)
{
    struct mgo_mqtt_config c = {.url = url, .client_id = client_id, .clean_start = true};
    struct mgo_mqtt *m = NULL;
    if (mgo_mqtt_new(&c, &m) != MGO_OK || mgo_mqtt_connect(m) != MGO_OK)
        return NULL;
    int64_t deadline = mgr_test_now_ms() + wait_ms;
    while (mgr_test_now_ms() < deadline) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 100, &ev) != MGO_OK)
            continue;
        enum mgo_mqtt_event_kind k = ev.kind;
        mgo_mqtt_event_cleanup(&ev);
        if (k == MGO_MQTT_EV_CONNECTED)
            return m;
        if (k == MGO_MQTT_EV_CONNECT_FAILED)
            break;
    }
    mgo_mqtt_free(m);
    return NULL;
}

/* Publishes a YAML/JSON document (text) as MessagePack with QoS 1 from m. */
static inline void mgr_test_publish_yaml(struct mgo_mqtt *m, const char *topic, bool retain,
                                         const char *text)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, 1u << 20);
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value v;
    struct mgo_buf b;
    mgo_buf_init(&b, 1u << 20);
    CU_ASSERT_EQUAL_FATAL(mgo_value_from_yaml(text, strlen(text), &arena, &v, &p), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(mgo_value_to_msgpack(&v, &b), MGO_OK);
    CU_ASSERT_EQUAL(mgo_mqtt_publish(m, topic, b.data, b.len, 1, retain, NULL), MGO_OK);
    mgo_buf_cleanup(&b);
    mgo_arena_cleanup(&arena);
}

/* Starts `margoctl deploy <app> --device <device> --url <api_base> --token-file <token_file>`
 * on a new pseudo-terminal; *master receives the terminal's side. Returns the child's pid,
 * -1 when forkpty failed. */
static inline pid_t mgr_test_ctl_deploy_pty(const char *app, const char *device,
                                            const char *api_base, const char *token_file,
                                            int *master)
{
    char bin[512];
    snprintf(bin, sizeof bin, "%s/manager/margoctl", MGO_BINARY_DIR);
    pid_t pid = forkpty(master, NULL, NULL, NULL);
    if (pid == 0) {
        execl(bin, bin, "deploy", app, "--device", device, "--url", api_base, "--token-file",
              token_file, (char *)NULL);
        _exit(127);
    }
    return pid;
}

/* Appends what the terminal master shows within timeout_ms to out (*used bytes so far; kept
 * NUL-terminated). Returns false when nothing came. */
static inline bool mgr_test_pty_read(int master, int timeout_ms, char *out, size_t size,
                                     size_t *used)
{
    struct pollfd pfd = {master, POLLIN, 0};
    if (poll(&pfd, 1, timeout_ms) <= 0)
        return false;
    ssize_t n = read(master, out + *used, size - *used - 1);
    if (n <= 0)
        return false;
    *used += (size_t)n;
    out[*used] = '\0';
    return true;
}

/* Kills pid unless it exited already; *status receives its wait status. */
static inline void mgr_test_kill_unless_exited(pid_t pid, bool exited, int *status)
{
    if (!exited) {
        kill(pid, SIGKILL);
        waitpid(pid, status, 0);
    }
}

#endif
