/* rel_util.c - see rel_util.h. */
#include "rel_util.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "mgo/topic.h"
#include "mgo_test.h"
#include "http.h"

/* ---- child processes -------------------------------------------------------------- */

void rel_agent_init(struct rel_agent *a, const char *base_dir, const char *id, const char *url)
{
    memset(a, 0, sizeof *a);
    snprintf(a->id, sizeof a->id, "%s", id);
    snprintf(a->url, sizeof a->url, "%s", url);
    snprintf(a->state_dir, sizeof a->state_dir, "%s/%s", base_dir, id);
    snprintf(a->log, sizeof a->log, "%s/%s.log", base_dir, id);
}

void rel_agent_opt(struct rel_agent *a, const char *name, const char *value)
{
    CU_ASSERT_FATAL(a->extra_len + 2 <= 16);
    snprintf(a->extra[a->extra_len++], sizeof a->extra[0], "--%s", name);
    snprintf(a->extra[a->extra_len++], sizeof a->extra[0], "%s", value);
}

void rel_agent_start(struct rel_agent *a)
{
    const char *argv[64] = {MGO_AGENT_BIN,
                            "--device-id",
                            a->id,
                            "--broker-url",
                            a->url,
                            "--state-dir",
                            a->state_dir,
                            "--helm-command",
                            MGO_SLOW_HELM,
                            "--compose-command",
                            "mgo-no-compose-here",
                            "--settle-ms",
                            "200",
                            "--backoff-min-ms",
                            "100",
                            "--backoff-max-ms",
                            "1000",
                            "--reconcile-interval",
                            "3600",
                            "--keepalive",
                            "5",
                            "--vendor",
                            "Acme",
                            "--model",
                            "R1",
                            "--serial",
                            a->id,
                            "--memory",
                            "4Gi",
                            "--storage",
                            "10Gi",
                            "--cpu-cores",
                            "2"};
    size_t n = 0;
    while (argv[n] != NULL)
        n++;
    for (size_t i = 0; i < a->extra_len && n < 62; i++)
        argv[n++] = a->extra[i];
    argv[n] = NULL;
    setenv("REL_FAKE_HELM", MGO_FAKE_HELM, 1);
    if (getenv("SLOW_HELM_CONF") == NULL)
        setenv("SLOW_HELM_CONF", "/dev/null", 1);
    FILE *f = fopen(a->log, "a");
    if (f) {
        fprintf(f, "==== test: start %s\n", a->id);
        fclose(f);
    }
    a->pid = mgo_test_spawn(argv, a->log);
    CU_ASSERT_FATAL(a->pid > 0);
}

void rel_agent_kill(struct rel_agent *a)
{
    mgo_test_kill(a->pid, SIGKILL);
    a->pid = 0;
}

void rel_agent_stop(struct rel_agent *a)
{
    if (a->pid <= 0)
        return;
    kill(a->pid, SIGTERM);
    int rc = mgo_test_wait_exit(a->pid, 30000);
    if (rc != 0)
        fprintf(stderr, "agent %s exited with %d (see %s)\n", a->id, rc, a->log);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc == -1)
        mgo_test_kill(a->pid, SIGKILL);
    a->pid = 0;
}

/* ---- recorder ---------------------------------------------------------------------- */

#define GROW(arr, len, cap)                                                                        \
    do {                                                                                           \
        if ((len) == (cap)) {                                                                      \
            size_t nc = (cap) ? (cap)*2 : 256;                                                     \
            void *np = realloc((arr), nc * sizeof *(arr));                                         \
            CU_ASSERT_FATAL(np != NULL);                                                           \
            (arr) = np;                                                                            \
            (cap) = nc;                                                                            \
        }                                                                                          \
    } while (0)

static void rec_take(struct rel_recorder *r, const struct mgo_mqtt_event *ev)
{
    if (ev->payload_len == 0 || ev->topic == NULL)
        return; /* a cleared retained message */
    struct mgo_topic t;
    if (mgo_topic_parse("margo/v1", ev->topic, strlen(ev->topic), &t) != MGO_OK)
        return;
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_problems p;
    mgo_problems_init(&p);
    pthread_mutex_lock(&r->mu);
    if (t.kind == MGO_TOPIC_STATUS) {
        struct mgo_deployment_status s;
        if (mgo_deployment_status_decode(ev->payload, ev->payload_len, &arena, &s, &p) == MGO_OK) {
            GROW(r->st, r->st_len, r->st_cap);
            struct rel_status *h = &r->st[r->st_len++];
            memset(h, 0, sizeof *h);
            snprintf(h->device, sizeof h->device, "%s", t.device_id);
            snprintf(h->dep, sizeof h->dep, "%s", s.deployment_id);
            h->state = s.state;
            h->boot = s.boot;
            h->seq = s.seq;
            h->adopted = s.adopted_manifest_version;
            h->retained = ev->retained;
            size_t off = 0;
            for (size_t i = 0; i < s.components_len && off < sizeof h->comps; i++) {
                int w = snprintf(h->comps + off, sizeof h->comps - off, "%s%s=%s", i ? "," : "",
                                 s.components[i].name, mgo_state_name(s.components[i].state));
                if (w < 0)
                    break;
                off += (size_t)w;
            }
            if (s.has_error)
                snprintf(h->error, sizeof h->error, "%s: %s", s.error.code ? s.error.code : "",
                         s.error.message ? s.error.message : "");
            if (getenv("MGO_TEST_VERBOSE"))
                fprintf(stderr, "  [rec] %s %s %s %llu.%llu adopted %llu %s%s\n", h->device, h->dep,
                        mgo_state_name(h->state), (unsigned long long)h->boot,
                        (unsigned long long)h->seq, (unsigned long long)h->adopted, h->comps,
                        h->retained ? " (retained)" : "");
        }
    } else if (t.kind == MGO_TOPIC_STATE) {
        struct mgo_presence pr;
        if (mgo_presence_decode(ev->payload, ev->payload_len, &arena, &pr, &p) == MGO_OK) {
            GROW(r->pr, r->pr_len, r->pr_cap);
            struct rel_presence *h = &r->pr[r->pr_len++];
            snprintf(h->device, sizeof h->device, "%s", t.device_id);
            h->online = pr.online;
            h->boot = pr.boot;
            h->has_timestamp = pr.timestamp_ms != 0;
            if (getenv("MGO_TEST_VERBOSE"))
                fprintf(stderr, "  [rec] %s presence %s boot %llu%s\n", h->device,
                        h->online ? "online" : "offline", (unsigned long long)h->boot,
                        h->has_timestamp ? "" : " (will)");
        }
    } else if (t.kind == MGO_TOPIC_DESIRED) {
        struct mgo_desired_state d;
        if (mgo_desired_state_decode(ev->payload, ev->payload_len, &arena, &d, &p) == MGO_OK) {
            GROW(r->ds, r->ds_len, r->ds_cap);
            struct rel_desired *h = &r->ds[r->ds_len++];
            snprintf(h->device, sizeof h->device, "%s", t.device_id);
            h->version = d.manifest_version;
            h->deployments = d.deployments_len;
        }
    } else if (t.kind == MGO_TOPIC_EVENTS) {
        struct mgo_event e;
        if (mgo_event_decode(ev->payload, ev->payload_len, &arena, &e, &p) == MGO_OK) {
            GROW(r->ev, r->ev_len, r->ev_cap);
            struct rel_event *h = &r->ev[r->ev_len++];
            snprintf(h->device, sizeof h->device, "%s", t.device_id);
            snprintf(h->type, sizeof h->type, "%s", e.type);
            snprintf(h->message, sizeof h->message, "%s", e.message);
            if (getenv("MGO_TEST_VERBOSE"))
                fprintf(stderr, "  [rec] %s event %s: %s\n", h->device, h->type, h->message);
        }
    }
    pthread_mutex_unlock(&r->mu);
    mgo_arena_cleanup(&arena);
}

static void *rec_main(void *arg)
{
    struct rel_recorder *r = arg;
    bool connected = false, connecting = false;
    int64_t next_try = 0;
    while (!atomic_load(&r->stop)) {
        if (!connected && !connecting && mgo_test_now_ms() >= next_try) {
            if (mgo_mqtt_connect(r->m) == MGO_OK)
                connecting = true;
            else
                next_try = mgo_test_now_ms() + 200;
        }
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(r->m, 100, &ev) != MGO_OK)
            continue;
        switch (ev.kind) {
        case MGO_MQTT_EV_CONNECTED:
            connected = true;
            connecting = false;
            pthread_mutex_lock(&r->mu);
            r->connects++;
            pthread_mutex_unlock(&r->mu);
            if (!ev.session_present) {
                static const char *const filters[] = {
                    "margo/v1/devices/+/status/+", "margo/v1/devices/+/state",
                    "margo/v1/devices/+/desired", "margo/v1/devices/+/events"};
                for (size_t i = 0; i < 4; i++)
                    if (mgo_mqtt_subscribe(r->m, filters[i], 1, NULL) != MGO_OK)
                        fprintf(stderr, "recorder: subscribe %s failed\n", filters[i]);
            }
            break;
        case MGO_MQTT_EV_CONNECT_FAILED:
        case MGO_MQTT_EV_DISCONNECTED:
            connected = false;
            connecting = false;
            next_try = mgo_test_now_ms() + 200;
            break;
        case MGO_MQTT_EV_MESSAGE:
            rec_take(r, &ev);
            break;
        default:
            break;
        }
        mgo_mqtt_event_cleanup(&ev);
    }
    return NULL;
}

void rel_recorder_start(struct rel_recorder *r, const char *url, const char *client_id)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    snprintf(r->url, sizeof r->url, "%s", url);
    snprintf(r->client_id, sizeof r->client_id, "%s", client_id);
    struct mgo_mqtt_config c = {.url = r->url,
                                .client_id = r->client_id,
                                .clean_start = false,
                                .session_expiry_s = 3600,
                                .keepalive_s = 30,
                                .queue_warn = 100000};
    CU_ASSERT_FATAL(mgo_mqtt_new(&c, &r->m) == MGO_OK);
    CU_ASSERT_FATAL(pthread_create(&r->thread, NULL, rec_main, r) == 0);
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    for (;;) {
        pthread_mutex_lock(&r->mu);
        size_t c2 = r->connects;
        pthread_mutex_unlock(&r->mu);
        if (c2 > 0)
            break;
        CU_ASSERT_FATAL(mgo_test_now_ms() < deadline);
        mgo_test_sleep_ms(20);
    }
    mgo_test_sleep_ms(300); /* the subscriptions are in place */
}

void rel_recorder_stop(struct rel_recorder *r)
{
    if (r->m == NULL)
        return;
    atomic_store(&r->stop, true);
    pthread_join(r->thread, NULL);
    if (mgo_mqtt_is_connected(r->m))
        if (mgo_mqtt_disconnect(r->m, 1000) != MGO_OK)
            fprintf(stderr, "disconnect not clean\n");
    mgo_mqtt_free(r->m);
    r->m = NULL;
    free(r->st);
    free(r->pr);
    free(r->ds);
    free(r->ev);
    pthread_mutex_destroy(&r->mu);
}

static bool pos_gt(uint64_t b1, uint64_t s1, uint64_t b2, uint64_t s2)
{
    return b1 > b2 || (b1 == b2 && s1 > s2);
}

bool rel_last(struct rel_recorder *r, const char *device, const char *dep, struct rel_status *out)
{
    bool found = false;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->st_len; i++) {
        const struct rel_status *s = &r->st[i];
        if (strcmp(s->device, device) != 0 || strcmp(s->dep, dep) != 0)
            continue;
        if (!found || pos_gt(s->boot, s->seq, out->boot, out->seq)) {
            *out = *s;
            found = true;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

void rel_wait_installed(struct rel_recorder *r, const struct rel_agent *agents,
                        const char (*deps)[64], const uint64_t *v, size_t n, const char *what)
{
    for (size_t i = 0; i < n; i++) {
        bool ok = rel_wait_state(r, agents[i].id, deps[i], MGO_STATE_INSTALLED, v[i], REL_WAIT_MS);
        if (!ok)
            fprintf(stderr, "%s: %s not installed at manifest %llu\n", what, agents[i].id,
                    (unsigned long long)v[i]);
        CU_ASSERT(ok);
    }
}

bool rel_wait_state(struct rel_recorder *r, const char *device, const char *dep, enum mgo_state st,
                    uint64_t min_adopted, int timeout_ms)
{
    int64_t deadline = mgo_test_now_ms() + timeout_ms;
    do {
        struct rel_status s;
        if (rel_last(r, device, dep, &s) && s.state == st && s.adopted >= min_adopted)
            return true;
        mgo_test_sleep_ms(50);
    } while (mgo_test_now_ms() < deadline);
    return false;
}

size_t rel_count_state(struct rel_recorder *r, const char *device, const char *dep,
                       enum mgo_state st)
{
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->st_len; i++) {
        const struct rel_status *s = &r->st[i];
        if (strcmp(s->device, device) == 0 && (dep == NULL || strcmp(s->dep, dep) == 0) &&
            s->state == st)
            n++;
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

bool rel_last_presence(struct rel_recorder *r, const char *device, struct rel_presence *out)
{
    bool found = false;
    pthread_mutex_lock(&r->mu);
    for (size_t i = r->pr_len; i > 0 && !found; i--) {
        if (strcmp(r->pr[i - 1].device, device) == 0) {
            *out = r->pr[i - 1];
            found = true;
        }
    }
    pthread_mutex_unlock(&r->mu);
    return found;
}

size_t rel_count_events(struct rel_recorder *r, const char *device, const char *type)
{
    size_t n = 0;
    pthread_mutex_lock(&r->mu);
    for (size_t i = 0; i < r->ev_len; i++)
        if (strcmp(r->ev[i].device, device) == 0 &&
            (type == NULL || strcmp(r->ev[i].type, type) == 0))
            n++;
    pthread_mutex_unlock(&r->mu);
    return n;
}

static int cmp_pos(const void *x, const void *y)
{
    const struct rel_status *a = x, *b = y;
    int d = strcmp(a->device, b->device);
    if (d != 0)
        return d;
    if (a->boot != b->boot)
        return a->boot < b->boot ? -1 : 1;
    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return 0;
}

static bool same_transition(const struct rel_status *a, const struct rel_status *b)
{
    return strcmp(a->dep, b->dep) == 0 && a->state == b->state && a->adopted == b->adopted &&
           strcmp(a->comps, b->comps) == 0;
}

static bool terminal(enum mgo_state s)
{
    return s == MGO_STATE_INSTALLED || s == MGO_STATE_REMOVED || s == MGO_STATE_FAILED;
}

void rel_check_history(struct rel_recorder *r, const char *device, struct rel_check *out)
{
    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&r->mu);
    size_t n = 0;
    struct rel_status *all = calloc(r->st_len + 1, sizeof *all);
    CU_ASSERT_FATAL(all != NULL);
    for (size_t i = 0; i < r->st_len; i++)
        if (device == NULL || strcmp(r->st[i].device, device) == 0)
            all[n++] = r->st[i];
    out->messages = n;

    /* order per deployment in arrival order; exact re-sends of an earlier position are fine */
    for (size_t i = 0; i < n; i++) {
        bool resend = false, newer = true;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(all[k].device, all[i].device) != 0 || strcmp(all[k].dep, all[i].dep) != 0)
                continue;
            if (all[k].boot == all[i].boot && all[k].seq == all[i].seq)
                resend = true;
            else if (pos_gt(all[k].boot, all[k].seq, all[i].boot, all[i].seq))
                newer = false;
        }
        if (!resend && !newer) {
            out->order++;
            fprintf(stderr, "history: %s %s %s %llu.%llu arrived after a later position\n",
                    all[i].device, all[i].dep, mgo_state_name(all[i].state),
                    (unsigned long long)all[i].boot, (unsigned long long)all[i].seq);
        }
    }
    /* distinct positions, sorted */
    qsort(all, n, sizeof *all, cmp_pos);
    size_t d = 0;
    for (size_t i = 0; i < n; i++) {
        if (d > 0 && cmp_pos(&all[d - 1], &all[i]) == 0) {
            if (!same_transition(&all[d - 1], &all[i])) {
                out->conflicts++;
                fprintf(stderr, "history: %s %llu.%llu carries two different statuses\n",
                        all[i].device, (unsigned long long)all[i].boot,
                        (unsigned long long)all[i].seq);
            }
            continue;
        }
        all[d++] = all[i];
    }
    out->transitions = d;
    /* gaps: within one (device, boot), seq runs 1..max without holes */
    for (size_t i = 0; i < d; i++) {
        bool first = i == 0 || strcmp(all[i - 1].device, all[i].device) != 0 ||
                     all[i - 1].boot != all[i].boot;
        uint64_t expect = first ? 1 : all[i - 1].seq + 1;
        if (all[i].seq > expect) {
            out->lost += all[i].seq - expect;
            fprintf(stderr, "history: %s boot %llu: seq %llu..%llu never received\n", all[i].device,
                    (unsigned long long)all[i].boot, (unsigned long long)expect,
                    (unsigned long long)(all[i].seq - 1));
        }
    }
    /* duplicates: per deployment, the same transition again under a new position */
    for (size_t i = 0; i < d; i++) {
        for (size_t k = i; k > 0; k--) {
            const struct rel_status *p = &all[k - 1];
            if (strcmp(p->device, all[i].device) != 0)
                break;
            if (strcmp(p->dep, all[i].dep) != 0)
                continue;
            if (same_transition(p, &all[i])) {
                if (p->boot != all[i].boot && !terminal(all[i].state)) {
                    out->resumed++;
                } else {
                    out->duplicates++;
                    fprintf(stderr, "history: %s %s %s again at %llu.%llu (was %llu.%llu)\n",
                            all[i].device, all[i].dep, mgo_state_name(all[i].state),
                            (unsigned long long)all[i].boot, (unsigned long long)all[i].seq,
                            (unsigned long long)p->boot, (unsigned long long)p->seq);
                }
            }
            break; /* only the previous transition of this deployment counts */
        }
    }
    /* desired manifests never go back */
    for (size_t i = 0; i < r->ds_len; i++) {
        if (device != NULL && strcmp(r->ds[i].device, device) != 0)
            continue;
        for (size_t k = 0; k < i; k++) {
            if (strcmp(r->ds[k].device, r->ds[i].device) == 0 &&
                r->ds[k].version > r->ds[i].version) {
                out->manifest_regressions++;
                fprintf(stderr, "history: %s manifest %llu after %llu\n", r->ds[i].device,
                        (unsigned long long)r->ds[i].version, (unsigned long long)r->ds[k].version);
                break;
            }
        }
    }
    pthread_mutex_unlock(&r->mu);
    free(all);
}

void rel_check_print(const char *what, const struct rel_check *c)
{
    fprintf(stderr,
            "%s: %zu status messages, %zu transitions, lost %zu, duplicates %zu, resumed %zu, "
            "order %zu, conflicts %zu, manifest regressions %zu\n",
            what, c->messages, c->transitions, c->lost, c->duplicates, c->resumed, c->order,
            c->conflicts, c->manifest_regressions);
}

/* ---- TCP proxy ------------------------------------------------------------------------ */

#define PROXY_MAX 64

static int connect_local(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static void *proxy_main(void *arg)
{
    struct rel_proxy *p = arg;
    int a[PROXY_MAX], b[PROXY_MAX];
    size_t n = 0;
    while (!atomic_load(&p->stop)) {
        if (atomic_load(&p->frozen)) {
            mgo_test_sleep_ms(50); /* no accept, no read, no write; sockets stay open */
            continue;
        }
        struct pollfd fds[1 + 2 * PROXY_MAX];
        fds[0] = (struct pollfd){.fd = p->listen_fd, .events = POLLIN};
        for (size_t i = 0; i < n; i++) {
            fds[1 + 2 * i] = (struct pollfd){.fd = a[i], .events = POLLIN};
            fds[2 + 2 * i] = (struct pollfd){.fd = b[i], .events = POLLIN};
        }
        if (poll(fds, 1 + 2 * n, 50) <= 0)
            continue;
        if (atomic_load(&p->frozen))
            continue;
        for (size_t i = n; i > 0; i--) {
            size_t k = i - 1;
            bool dead = false;
            for (int side = 0; side < 2 && !dead; side++) {
                short re = fds[1 + 2 * k + (size_t)side].revents;
                if (re == 0)
                    continue;
                int from = side == 0 ? a[k] : b[k], to = side == 0 ? b[k] : a[k];
                char buf[65536];
                ssize_t got = read(from, buf, sizeof buf);
                if (got <= 0) {
                    dead = true;
                    break;
                }
                for (ssize_t off = 0; off < got;) {
                    ssize_t w = write(to, buf + off, (size_t)(got - off));
                    if (w <= 0) {
                        dead = true;
                        break;
                    }
                    off += w;
                }
            }
            if (dead) {
                close(a[k]);
                close(b[k]);
                a[k] = a[n - 1];
                b[k] = b[n - 1];
                n--;
                atomic_store(&p->connections, (int)n);
            }
        }
        if ((fds[0].revents & POLLIN) != 0) {
            int c = accept4(p->listen_fd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                int up = connect_local(p->target_port);
                if (up < 0 || n == PROXY_MAX) {
                    close(c);
                    if (up >= 0)
                        close(up);
                } else {
                    a[n] = c;
                    b[n] = up;
                    n++;
                    atomic_store(&p->connections, (int)n);
                }
            }
        }
    }
    for (size_t i = 0; i < n; i++) {
        close(a[i]);
        close(b[i]);
    }
    return NULL;
}

int rel_proxy_start(struct rel_proxy *p, int target_port)
{
    memset(p, 0, sizeof *p);
    p->target_port = target_port;
    p->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (p->listen_fd < 0)
        return -1;
    int one = 1;
    setsockopt(p->listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof sa;
    if (bind(p->listen_fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        listen(p->listen_fd, 16) != 0 ||
        getsockname(p->listen_fd, (struct sockaddr *)&sa, &len) != 0) {
        close(p->listen_fd);
        return -1;
    }
    p->port = ntohs(sa.sin_port);
    snprintf(p->url, sizeof p->url, "tcp://127.0.0.1:%d", p->port);
    if (pthread_create(&p->thread, NULL, proxy_main, p) != 0) {
        close(p->listen_fd);
        return -1;
    }
    return 0;
}

void rel_proxy_freeze(struct rel_proxy *p, bool frozen)
{
    atomic_store(&p->frozen, frozen);
}

void rel_proxy_stop(struct rel_proxy *p)
{
    atomic_store(&p->stop, true);
    pthread_join(p->thread, NULL);
    close(p->listen_fd);
}

/* ---- manager HTTP API ------------------------------------------------------------------ */

void rel_api(const char *base, const char *token, const char *method, const char *path,
             const char *body, struct mgo_test_reply *r)
{
    char auth[256];
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
    const char *headers[] = {auth, "Content-Type: application/json", NULL};
    mgo_test_request(base, method, path, headers, body, 60000L, r);
}

void rel_deploy(const struct rel_manager *m, const char *app, const char *const *devices, size_t n,
                char ids[][64])
{
    char body[1024];
    int off = snprintf(body, sizeof body, "{\"app\": \"%s\", \"devices\": [", app);
    for (size_t i = 0; i < n && off > 0 && (size_t)off < sizeof body; i++)
        off +=
            snprintf(body + off, sizeof body - (size_t)off, "%s\"%s\"", i ? ", " : "", devices[i]);
    CU_ASSERT_FATAL(off > 0 && (size_t)off + 3 <= sizeof body);
    snprintf(body + off, sizeof body - (size_t)off, "]}");
    struct mgo_test_reply r;
    rel_api(m->api, m->token, "POST", "/api/v1/deployments", body, &r);
    if (r.status != 201)
        fprintf(stderr, "deploy %s: %ld %.*s\n", app, r.status, (int)r.body.len,
                r.body.data ? (const char *)r.body.data : "");
    CU_ASSERT_FATAL(r.status == 201);
    for (size_t i = 0; i < n; i++) {
        char ptr[64];
        snprintf(ptr, sizeof ptr, "/deployments/%zu/device", i);
        const char *d = mgo_test_jstr(&r.json, ptr);
        for (size_t k = 0; k < n; k++) {
            if (strcmp(d, devices[k]) == 0) {
                snprintf(ptr, sizeof ptr, "/deployments/%zu/id", i);
                snprintf(ids[k], 64, "%s", mgo_test_jstr(&r.json, ptr));
            }
        }
    }
    mgo_test_reply_cleanup(&r);
}

void rel_add_app(const struct rel_manager *m, const char *path)
{
    char *app = mgo_test_read_file(path, NULL);
    CU_ASSERT_FATAL(app != NULL);
    struct mgo_test_reply r;
    rel_api(m->api, m->token, "POST", "/api/v1/apps", app, &r);
    free(app);
    CU_ASSERT_EQUAL(r.status, 201);
    mgo_test_reply_cleanup(&r);
}

static size_t count_devices(const struct rel_manager *m)
{
    struct mgo_test_reply r;
    rel_api(m->api, m->token, "GET", "/api/v1/devices", NULL, &r);
    const struct mgo_value *a = mgo_value_get(&r.json, "devices");
    size_t n = a && a->kind == MGO_V_ARRAY ? a->as.array.len : 0;
    mgo_test_reply_cleanup(&r);
    return n;
}

bool rel_wait_devices(const struct rel_manager *m, size_t n)
{
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (count_devices(m) < n && mgo_test_now_ms() < deadline)
        mgo_test_sleep_ms(200);
    return count_devices(m) == n;
}

uint64_t rel_reconfigure(const struct rel_manager *m, const char *dep, int replicas)
{
    char path[256], body[128];
    snprintf(path, sizeof path, "/api/v1/deployments/%s", dep);
    snprintf(body, sizeof body, "{\"parameters\": {\"replicas\": %d}}", replicas);
    struct mgo_test_reply r;
    rel_api(m->api, m->token, "PATCH", path, body, &r);
    CU_ASSERT_FATAL(r.status == 200);
    uint64_t v = mgo_test_ju64(&r.json, "/manifestVersion");
    mgo_test_reply_cleanup(&r);
    return v;
}

void rel_manager_init(struct rel_manager *m, const char *dir, const char *broker_url)
{
    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    snprintf(m->url, sizeof m->url, "%s", broker_url);
    snprintf(m->conf, sizeof m->conf, "%s/manager.conf", dir);
    snprintf(m->log, sizeof m->log, "%s/manager.log", dir);
    snprintf(m->token_path, sizeof m->token_path, "%s/token", dir);
    snprintf(m->token, sizeof m->token, "rel-token-0123456789abcdef");
    snprintf(m->client_id, sizeof m->client_id, "margo-manager-rel");
    snprintf(m->state_dir, sizeof m->state_dir, "%s/state", dir);
    (void)mkdir(dir, 0700);
    m->api_port = mgo_test_free_port();
    snprintf(m->api, sizeof m->api, "http://127.0.0.1:%d", m->api_port);
    char line[96];
    snprintf(line, sizeof line, "%s\n", m->token);
    CU_ASSERT_FATAL(mgo_test_write_file(m->token_path, line));
}

void rel_manager_start(struct rel_manager *m)
{
    FILE *f = fopen(m->conf, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f,
            "state-dir %s\nbroker-url %s\napi-listen 127.0.0.1:%d\napi-token-file %s\n"
            "log-level info\nclient-id %s\nkeepalive 5\n%s\n",
            m->state_dir, m->url, m->api_port, m->token_path, m->client_id, m->extra_conf);
    fclose(f);
    const char *argv[] = {MGO_MANAGER_BIN, "--config", m->conf, NULL};
    f = fopen(m->log, "a");
    if (f) {
        fprintf(f, "==== test: start manager\n");
        fclose(f);
    }
    m->pid = mgo_test_spawn(argv, m->log);
    CU_ASSERT_FATAL(m->pid > 0);
}

bool rel_manager_ready(struct rel_manager *m, int timeout_ms)
{
    int64_t deadline = mgo_test_now_ms() + timeout_ms;
    while (mgo_test_now_ms() < deadline) {
        struct mgo_test_reply r;
        rel_api(m->api, m->token, "GET", "/api/v1/apps", NULL, &r);
        long st = r.status;
        mgo_test_reply_cleanup(&r);
        if (st == 200)
            return true;
        if (m->pid > 0 && mgo_test_wait_exit(m->pid, 0) != -1) {
            m->pid = 0;
            return false; /* it exited */
        }
        mgo_test_sleep_ms(100);
    }
    return false;
}

void rel_manager_kill(struct rel_manager *m)
{
    mgo_test_kill(m->pid, SIGKILL);
    m->pid = 0;
}

void rel_manager_stop(struct rel_manager *m)
{
    if (m->pid <= 0)
        return;
    kill(m->pid, SIGTERM);
    int rc = mgo_test_wait_exit(m->pid, 30000);
    if (rc != 0)
        fprintf(stderr, "manager exited with %d (see %s)\n", rc, m->log);
    CU_ASSERT_EQUAL(rc, 0);
    if (rc == -1)
        mgo_test_kill(m->pid, SIGKILL);
    m->pid = 0;
}

/* ---- publishing ------------------------------------------------------------------------ */

void rel_publish(const char *url, const char *client_id, const char *topic, const void *data,
                 size_t len)
{
    struct mgo_mqtt_config c = {.url = url, .client_id = client_id, .clean_start = true};
    struct mgo_mqtt *m = NULL;
    CU_ASSERT_FATAL(mgo_mqtt_new(&c, &m) == MGO_OK);
    CU_ASSERT_FATAL(mgo_mqtt_connect(m) == MGO_OK);
    bool connected = false, acked = false;
    int token = -1;
    int64_t deadline = mgo_test_now_ms() + REL_WAIT_MS;
    while (!acked && mgo_test_now_ms() < deadline) {
        struct mgo_mqtt_event ev;
        if (mgo_mqtt_next(m, 100, &ev) != MGO_OK)
            continue;
        if (ev.kind == MGO_MQTT_EV_CONNECTED) {
            connected = true;
            CU_ASSERT_FATAL(mgo_mqtt_publish(m, topic, data, len, 1, true, &token) == MGO_OK);
        } else if (ev.kind == MGO_MQTT_EV_CONNECT_FAILED) {
            mgo_mqtt_event_cleanup(&ev);
            mgo_test_sleep_ms(200);
            CU_ASSERT_FATAL(mgo_mqtt_connect(m) == MGO_OK);
            continue;
        } else if (ev.kind == MGO_MQTT_EV_PUBLISHED && ev.token == token) {
            acked = true;
        }
        mgo_mqtt_event_cleanup(&ev);
    }
    CU_ASSERT_FATAL(connected && acked);
    if (mgo_mqtt_disconnect(m, 1000) != MGO_OK)
        fprintf(stderr, "disconnect not clean\n");
    mgo_mqtt_free(m);
}

/* ---- the fixture of a test ------------------------------------------------------------ */

static struct rel_env *live_env;

void rel_env_slow(const struct rel_env *e, const char *before, const char *after, bool mark)
{
    FILE *f = fopen(e->conf, "w");
    CU_ASSERT_FATAL(f != NULL);
    fprintf(f, "SLOW_HELM_BEFORE=%s\nSLOW_HELM_AFTER=%s\nSLOW_HELM_MARK=%s\n", before ? before : "",
            after ? after : "", mark ? e->mark : "");
    fclose(f);
}

void rel_env_start(struct rel_env *e, const char *what, const char *recorder_id)
{
    if (live_env != NULL && live_env->live)
        rel_env_cleanup(live_env);
    memset(e, 0, sizeof *e);
    live_env = e;
    e->live = true;
    CU_ASSERT_FATAL(mgo_test_broker_start(&e->broker, NULL) == 0);
    mgo_test_tmpdir(what, e->dir);
    snprintf(e->mark, sizeof e->mark, "%s/mark", e->dir);
    snprintf(e->conf, sizeof e->conf, "%s/slow-helm.conf", e->dir);
    mgo_test_fake_helm_env(e->dir, "success", e->helm_log, e->releases);
    setenv("SLOW_HELM_CONF", e->conf, 1);
    rel_env_slow(e, NULL, NULL, false);
    rel_recorder_start(&e->rec, mgo_test_broker_url(&e->broker), recorder_id);
}

void rel_env_check_history(struct rel_env *e, const char *what)
{
    struct rel_check c;
    rel_check_history(&e->rec, NULL, &c);
    rel_check_print(what, &c);
    CU_ASSERT(c.transitions > 0);
    CU_ASSERT_EQUAL(c.lost, 0);
    CU_ASSERT_EQUAL(c.duplicates, 0);
    CU_ASSERT_EQUAL(c.order, 0);
    CU_ASSERT_EQUAL(c.conflicts, 0);
    CU_ASSERT_EQUAL(c.manifest_regressions, 0);
}

void rel_env_cleanup(struct rel_env *e)
{
    if (!e->live)
        return;
    e->live = false;
    if (live_env == e)
        live_env = NULL;
    mgo_test_kill_children();
    rel_recorder_stop(&e->rec);
    mgo_test_broker_cleanup(&e->broker);
    if (getenv("MGO_TEST_KEEP") == NULL)
        mgo_test_rm_rf(e->dir);
    else
        fprintf(stderr, "kept %s\n", e->dir);
}

void rel_env_start_fleet(struct rel_env *e, struct rel_manager *m, struct rel_agent *agents,
                         size_t n, const char *id_prefix)
{
    const char *url = mgo_test_broker_url(&e->broker);
    char mdir[512];
    snprintf(mdir, sizeof mdir, "%s/manager", e->dir);
    rel_manager_init(m, mdir, url);
    rel_manager_start(m);
    CU_ASSERT_FATAL(rel_manager_ready(m, REL_WAIT_MS));
    for (size_t i = 0; i < n; i++) {
        char id[32];
        snprintf(id, sizeof id, "%s%zu", id_prefix, i + 1);
        rel_agent_init(&agents[i], e->dir, id, url);
        rel_agent_start(&agents[i]);
    }
}
