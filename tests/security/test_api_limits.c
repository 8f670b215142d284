/* test_api_limits.c - one client cannot lock the manager's API (issue 19 item 3,
 * docs/security.md), against a real manager on loopback:
 *   - 200 open event streams and 100 connections that send one header byte every 2 s: a
 *     normal client's GET is still answered within 1 s (measured, printed), and the event
 *     stream past api-max-event-streams is refused with 503 and Retry-After;
 *   - api-max-connections-per-address: one address past the limit gets its connection closed
 *     unanswered while another address (127.0.0.2) is still served;
 *   - api-request-timeout: a connection that trickles a request byte by byte (never idle) is
 *     closed once the deadline passes.
 * Clients are raw sockets bound to several 127.0.0.x source addresses. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "mgo/log.h"
#include "mgo/manager.h"
#include "mgo_test.h"
#include "sec_test_util.h"

#define TOKEN "api-limits-token-0123456789abcdef"
#define STREAMS 200
#define SLOW 100

static char g_dir[256];
static char g_token[512];
static char g_state[512];

static int suite_init(void)
{
    mgo_test_tmpdir("sec-limits", g_dir);
    snprintf(g_token, sizeof g_token, "%s/api-token", g_dir);
    snprintf(g_state, sizeof g_state, "%s/state", g_dir);
    if (!mgo_test_write_file(g_token, TOKEN "\n"))
        return 1;
    /* client and server ends of ~320 connections live in this process */
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < 4096) {
        rl.rlim_cur = rl.rlim_max < 4096 ? rl.rlim_max : 4096;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
    }
    mgo_log_set_level(MGO_LOG_WARN);
    return 0;
}

static int suite_clean(void)
{
    mgo_test_rm_rf(g_dir);
    return 0;
}

static void config(struct mgo_manager_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->state_dir = g_state;
    cfg->broker_url = (char *)"tcp://127.0.0.1:1"; /* nothing listens: the manager keeps retrying */
    cfg->client_id = (char *)"margo-manager";
    cfg->topic_prefix = (char *)"margo/v1";
    cfg->api_listen = (char *)"127.0.0.1:0";
    cfg->api_token_file = g_token;
    cfg->log_level = (char *)"warn";
    cfg->session_expiry_s = 600;
    cfg->keepalive_s = 30;
}

struct running {
    struct mgo_manager *m;
    pthread_t thread;
    uint16_t port;
};

static void *run_manager(void *arg)
{
    mgo_err err = mgo_manager_run(arg);
    (void)err;
    return NULL;
}

static void start(struct running *r, const struct mgo_manager_config *cfg)
{
    CU_ASSERT_EQUAL_FATAL(mgo_manager_new(cfg, &r->m), MGO_OK);
    CU_ASSERT_EQUAL_FATAL(pthread_create(&r->thread, NULL, run_manager, r->m), 0);
    r->port = mgo_manager_api_port(r->m);
}

static void stop(struct running *r)
{
    mgo_manager_stop(r->m);
    pthread_join(r->thread, NULL);
    mgo_manager_free(r->m);
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A TCP connection from source address src to the API; -1 when it cannot connect. */
static int connect_from(const char *src, uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in a = {.sin_family = AF_INET};
    struct sockaddr_in d = {.sin_family = AF_INET, .sin_port = htons(port)};
    if (inet_pton(AF_INET, src, &a.sin_addr) != 1 ||
        inet_pton(AF_INET, "127.0.0.1", &d.sin_addr) != 1 ||
        bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        connect(fd, (struct sockaddr *)&d, sizeof d) != 0) {
        perror("connect_from");
        close(fd);
        return -1;
    }
    return fd;
}

static bool send_text(int fd, const char *text)
{
    size_t len = strlen(text);
    return send(fd, text, len, MSG_NOSIGNAL) == (ssize_t)len;
}

/* Reads into buf (NUL-terminated) until needle appears; returns 1 when it did, 0 at the end
 * of the stream (closed by the server) or an error, -1 on timeout. */
static int read_until(int fd, char *buf, size_t cap, const char *needle, int timeout_ms)
{
    size_t len = 0;
    buf[0] = '\0';
    int64_t end = now_ms() + timeout_ms;
    for (;;) {
        if (strstr(buf, needle) != NULL)
            return 1;
        int64_t left = end - now_ms();
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, (int)left);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc <= 0)
            return -1;
        if (len + 1 >= cap) { /* keep the tail: the needle may straddle */
            memmove(buf, buf + cap / 2, len - cap / 2 + 1);
            len -= cap / 2;
        }
        ssize_t n = recv(fd, buf + len, cap - 1 - len, 0);
        if (n <= 0)
            return 0;
        len += (size_t)n;
        buf[len] = '\0';
    }
}

static const char *stream_request(void)
{
    return "GET /api/v1/events HTTP/1.1\r\nHost: manager\r\nAuthorization: Bearer " TOKEN
           "\r\n\r\n";
}

/* One GET /api/v1/apps from src on a new connection; returns the status (0: no answer) and
 * its time in *ms. */
static int timed_get(const char *src, uint16_t port, long *ms)
{
    int64_t t0 = now_ms();
    int fd = connect_from(src, port);
    if (fd < 0)
        return 0;
    char buf[8192];
    int status = 0;
    if (send_text(fd, "GET /api/v1/apps HTTP/1.1\r\nHost: manager\r\nAuthorization: Bearer " TOKEN
                      "\r\nConnection: close\r\n\r\n") &&
        read_until(fd, buf, sizeof buf, "\r\n\r\n", 10000) == 1 &&
        strncmp(buf, "HTTP/1.1 ", 9) == 0)
        status = atoi(buf + 9);
    *ms = (long)(now_ms() - t0);
    close(fd);
    return status;
}

/* ---- slow clients: one more header byte every 2 s -------------------------------------- */

struct slow {
    int fds[SLOW];
    size_t n;
    atomic_int stop;
    size_t rounds;
    pthread_t thread;
};

static void *slow_run(void *arg)
{
    static const char header[] = "GET /api/v1/apps HTTP/1.1\r\nHost: manager\r\nX-Slow: "
                                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    struct slow *s = arg;
    for (size_t pos = 1; !atomic_load(&s->stop); pos++) {
        for (int i = 0; i < 20 && !atomic_load(&s->stop); i++)
            usleep(100 * 1000);
        for (size_t i = 0; i < s->n && pos < sizeof header - 1; i++)
            (void)send(s->fds[i], header + pos, 1, MSG_NOSIGNAL);
        s->rounds++;
    }
    return NULL;
}

static void test_streams_and_slow_clients(void)
{
    struct mgo_manager_config cfg;
    config(&cfg);
    cfg.api_max_connections = 1000;
    cfg.api_max_event_streams = STREAMS;
    cfg.api_max_per_address = 64;
    struct running r;
    start(&r, &cfg);

    /* 200 event streams, 50 from each of 127.0.0.10-13 */
    static int streams[STREAMS];
    char buf[4096], src[32];
    int64_t t0 = now_ms();
    for (int i = 0; i < STREAMS; i++) {
        snprintf(src, sizeof src, "127.0.0.%d", 10 + i / 50);
        streams[i] = connect_from(src, r.port);
        CU_ASSERT_FATAL(streams[i] >= 0);
        CU_ASSERT_FATAL(send_text(streams[i], stream_request()));
    }
    int open = 0;
    for (int i = 0; i < STREAMS; i++) {
        if (read_until(streams[i], buf, sizeof buf, "event: hello", 10000) == 1 &&
            strncmp(buf, "HTTP/1.1 200", 12) == 0)
            open++;
    }
    CU_ASSERT_EQUAL(open, STREAMS);
    fprintf(stderr, "\n  %d event streams open after %ld ms\n", open, (long)(now_ms() - t0));

    /* 100 slow connections, 50 from each of 127.0.0.20-21 */
    struct slow slow = {.n = SLOW};
    for (size_t i = 0; i < SLOW; i++) {
        snprintf(src, sizeof src, "127.0.0.%zu", 20 + i / 50);
        slow.fds[i] = connect_from(src, r.port);
        CU_ASSERT_FATAL(slow.fds[i] >= 0);
        CU_ASSERT_FATAL(send(slow.fds[i], "G", 1, MSG_NOSIGNAL) == 1);
    }
    CU_ASSERT_FATAL(pthread_create(&slow.thread, NULL, slow_run, &slow) == 0);
    usleep(2500 * 1000); /* at least one round of slow bytes */

    /* a normal client is answered within 1 s (generous: the machine is shared) */
    long worst = 0;
    for (int i = 0; i < 5; i++) {
        long ms = 0;
        int status = timed_get("127.0.0.2", r.port, &ms);
        CU_ASSERT_EQUAL(status, 200);
        if (ms > worst)
            worst = ms;
    }
    fprintf(stderr,
            "  GET /api/v1/apps beside %d streams and %d slow connections: worst of 5 "
            "%ld ms\n",
            STREAMS, SLOW, worst);
    CU_ASSERT(worst < 1000);

    /* the stream past the cap: 503 problem with Retry-After, at once */
    long ms = 0;
    int64_t t1 = now_ms();
    int extra = connect_from("127.0.0.3", r.port);
    CU_ASSERT_FATAL(extra >= 0);
    CU_ASSERT(send_text(extra, stream_request()));
    CU_ASSERT_EQUAL(read_until(extra, buf, sizeof buf, "Too Many Event Streams", 5000), 1);
    ms = (long)(now_ms() - t1);
    CU_ASSERT(strncmp(buf, "HTTP/1.1 503", 12) == 0);
    CU_ASSERT(strstr(buf, "Retry-After: 5") != NULL);
    CU_ASSERT(strstr(buf, "application/problem+json") != NULL);
    fprintf(stderr, "  event stream %d refused with 503 in %ld ms\n", STREAMS + 1, ms);
    close(extra);

    /* the slow connections were not answered (they never finished a request) and the
     * streams are still alive: one stream ends, and a new one takes its place */
    CU_ASSERT(slow.rounds >= 1);
    close(streams[0]);
    bool reopened = false;
    int64_t t2 = now_ms();
    while (!reopened && now_ms() - t2 < 15000) {
        usleep(250 * 1000);
        streams[0] = connect_from("127.0.0.3", r.port);
        CU_ASSERT_FATAL(streams[0] >= 0);
        CU_ASSERT(send_text(streams[0], stream_request()));
        /* the manager notices the closed stream at its next keepalive (every 5 s) */
        if (read_until(streams[0], buf, sizeof buf, "\r\n\r\n", 5000) == 1 &&
            strncmp(buf, "HTTP/1.1 200", 12) == 0)
            reopened = true;
        else
            close(streams[0]);
    }
    CU_ASSERT(reopened);
    fprintf(stderr, "  a closed stream's place was taken again after %ld ms\n",
            (long)(now_ms() - t2));

    atomic_store(&slow.stop, 1);
    pthread_join(slow.thread, NULL);
    for (size_t i = 0; i < SLOW; i++)
        close(slow.fds[i]);
    for (int i = 0; i < STREAMS; i++)
        close(streams[i]);
    stop(&r);
}

static void test_per_address_limit(void)
{
    struct mgo_manager_config cfg;
    config(&cfg);
    cfg.api_max_per_address = 8;
    struct running r;
    start(&r, &cfg);
    int fds[8];
    for (int i = 0; i < 8; i++) {
        fds[i] = connect_from("127.0.0.5", r.port);
        CU_ASSERT_FATAL(fds[i] >= 0);
    }
    usleep(200 * 1000);
    /* the ninth from the same address is closed without an answer */
    int ninth = connect_from("127.0.0.5", r.port);
    CU_ASSERT_FATAL(ninth >= 0);
    char buf[4096];
    (void)send_text(ninth, "GET /api/v1/apps HTTP/1.1\r\nHost: manager\r\nAuthorization: "
                           "Bearer " TOKEN "\r\n\r\n");
    CU_ASSERT_EQUAL(read_until(ninth, buf, sizeof buf, "HTTP/1.1", 3000), 0);
    close(ninth);
    /* another address is served */
    long ms = 0;
    CU_ASSERT_EQUAL(timed_get("127.0.0.2", r.port, &ms), 200);
    fprintf(stderr, "\n  9th connection from 127.0.0.5 closed; 127.0.0.2 answered in %ld ms\n", ms);
    /* and the address gets its place back once one of its connections ends */
    close(fds[0]);
    usleep(300 * 1000);
    CU_ASSERT_EQUAL(timed_get("127.0.0.5", r.port, &ms), 200);
    for (int i = 1; i < 8; i++)
        close(fds[i]);
    stop(&r);
}

static void test_request_deadline(void)
{
    struct mgo_manager_config cfg;
    config(&cfg);
    cfg.api_request_timeout_s = 2;
    struct running r;
    start(&r, &cfg);
    int fd = connect_from("127.0.0.7", r.port);
    CU_ASSERT_FATAL(fd >= 0);
    static const char header[] = "GET /api/v1/apps HTTP/1.1\r\nHost: manager\r\nX-Slow: aaaaaaaa"
                                 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    int64_t t0 = now_ms();
    long closed_after = -1;
    /* a byte every 300 ms: never idle, never complete */
    for (size_t i = 0; i < sizeof header - 1 && closed_after < 0; i++) {
        if (send(fd, header + i, 1, MSG_NOSIGNAL) != 1) {
            closed_after = (long)(now_ms() - t0);
            break;
        }
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (poll(&p, 1, 300) == 1) {
            char c;
            if (recv(fd, &c, 1, 0) <= 0)
                closed_after = (long)(now_ms() - t0);
        }
    }
    fprintf(stderr, "\n  trickling connection closed after %ld ms (api-request-timeout 2 s)\n",
            closed_after);
    CU_ASSERT(closed_after >= 1900 && closed_after < 5000);
    close(fd);
    /* a complete request on a fresh connection is still answered */
    long ms = 0;
    CU_ASSERT_EQUAL(timed_get("127.0.0.7", r.port, &ms), 200);
    stop(&r);
}

static void test_streams_must_leave_a_reserve(void)
{
    struct mgo_manager_config cfg;
    config(&cfg);
    cfg.api_max_connections = 100;
    cfg.api_max_event_streams = 90;
    struct mgo_manager *m = NULL;
    CU_ASSERT_EQUAL(mgo_manager_new(&cfg, &m), MGO_ERR_INVALID);
    mgo_manager_free(m);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"200 streams + 100 slow clients: a GET within 1 s; stream 201 gets 503",
         test_streams_and_slow_clients},
        {"per-address limit: another address is still served", test_per_address_limit},
        {"a request trickled byte by byte is cut at api-request-timeout", test_request_deadline},
        {"event streams must leave connections to other requests",
         test_streams_must_leave_a_reserve},
        {NULL, NULL},
    };
    CU_pSuite s = CU_add_suite("api_limits", suite_init, suite_clean);
    for (size_t i = 0; cases[i].name; i++)
        CU_add_test(s, cases[i].name, cases[i].fn);
}
