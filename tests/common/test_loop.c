/* test_loop.c - the daemons' event loop (mgo/loop.h): posts from other threads in order,
 * monotonic timers in due order, cancel, fd watches, stop, triggers pulled from a signal
 * handler, and the MQTT readiness fd. */
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "mgo/loop.h"
#include "mgo/mqtt.h"
#include "mgo_test.h"

struct rec {
    struct mgo_loop *loop;
    int seen[4096];
    size_t n;
    size_t stop_after;
};

struct item {
    struct rec *r;
    int v;
};

static void record(void *c)
{
    struct item *it = c;
    it->r->seen[it->r->n++] = it->v;
    if (it->r->n == it->r->stop_after)
        mgo_loop_stop(it->r->loop);
    free(it);
}

static struct item *item(struct rec *r, int v)
{
    struct item *it = malloc(sizeof *it);
    it->r = r;
    it->v = v;
    return it;
}

struct poster {
    struct rec *r;
    int base;
};

static void *post_thread(void *c)
{
    struct poster *p = c;
    for (int i = 0; i < 1000; i++) {
        struct item *it = item(p->r, p->base + i);
        while (mgo_loop_post(p->r->loop, record, free, it) != MGO_OK)
            usleep(1000);
    }
    return NULL;
}

static void test_posts_from_threads_keep_order(void)
{
    struct rec r = {.stop_after = 2000};
    CU_ASSERT_FATAL(mgo_loop_new(&r.loop) == MGO_OK);
    struct poster a = {&r, 0}, b = {&r, 100000};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, post_thread, &a);
    pthread_create(&tb, NULL, post_thread, &b);
    CU_ASSERT(mgo_loop_run(r.loop) == MGO_OK);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    CU_ASSERT_EQUAL(r.n, 2000);
    int last_a = -1, last_b = 99999;
    for (size_t i = 0; i < r.n; i++) {
        if (r.seen[i] < 100000) {
            CU_ASSERT(r.seen[i] == last_a + 1);
            last_a = r.seen[i];
        } else {
            CU_ASSERT(r.seen[i] == last_b + 1);
            last_b = r.seen[i];
        }
    }
    mgo_loop_free(r.loop);
}

static void test_timers_fire_in_due_order_and_cancel(void)
{
    struct rec r = {.stop_after = 3};
    CU_ASSERT_FATAL(mgo_loop_new(&r.loop) == MGO_OK);
    uint64_t id = 0;
    int64_t t0 = mgo_loop_now_ms();
    CU_ASSERT(mgo_loop_timer_add(r.loop, 60, record, item(&r, 3), NULL) == MGO_OK);
    CU_ASSERT(mgo_loop_timer_add(r.loop, 20, record, item(&r, 1), NULL) == MGO_OK);
    struct item *cancelled = item(&r, 99);
    CU_ASSERT(mgo_loop_timer_add(r.loop, 30, record, cancelled, &id) == MGO_OK);
    CU_ASSERT(id != 0);
    CU_ASSERT(mgo_loop_timer_add(r.loop, 40, record, item(&r, 2), NULL) == MGO_OK);
    mgo_loop_timer_cancel(r.loop, id);
    free(cancelled);
    mgo_loop_timer_cancel(r.loop, 0); /* no-op */
    CU_ASSERT(mgo_loop_run(r.loop) == MGO_OK);
    CU_ASSERT(mgo_loop_now_ms() - t0 >= 60);
    CU_ASSERT_EQUAL(r.n, 3);
    CU_ASSERT(r.seen[0] == 1 && r.seen[1] == 2 && r.seen[2] == 3);
    mgo_loop_free(r.loop);
}

/* A zero-delay timer added by a timer runs after what was already due, not in the same turn
 * before it: a sliced job cannot starve the rest. */
static struct rec slice_rec;
static int slices;
static void slice(void *c)
{
    (void)c;
    slice_rec.seen[slice_rec.n++] = 1000 + slices;
    if (++slices < 3) {
        mgo_err err = mgo_loop_timer_add(slice_rec.loop, 0, slice, NULL, NULL);
        CU_ASSERT(err == MGO_OK);
    } else {
        mgo_loop_stop(slice_rec.loop);
    }
}

static void test_zero_delay_timer_yields(void)
{
    memset(&slice_rec, 0, sizeof slice_rec);
    slices = 0;
    CU_ASSERT_FATAL(mgo_loop_new(&slice_rec.loop) == MGO_OK);
    CU_ASSERT(mgo_loop_timer_add(slice_rec.loop, 0, slice, NULL, NULL) == MGO_OK);
    CU_ASSERT(mgo_loop_post(slice_rec.loop, record, free, item(&slice_rec, 7)) == MGO_OK);
    CU_ASSERT(mgo_loop_run(slice_rec.loop) == MGO_OK);
    /* the post ran before the second slice */
    CU_ASSERT_EQUAL(slice_rec.n, 4);
    CU_ASSERT(slice_rec.seen[0] == 7 || slice_rec.seen[1] == 7);
    CU_ASSERT(slice_rec.seen[3] == 1002);
    mgo_loop_free(slice_rec.loop);
}

struct fdctx {
    struct mgo_loop *loop;
    int fd;
    int calls;
};

static void on_fd(void *c, int fd, short revents)
{
    struct fdctx *f = c;
    uint64_t v;
    CU_ASSERT(revents & POLLIN);
    CU_ASSERT(read(fd, &v, sizeof v) == (ssize_t)sizeof v);
    if (++f->calls == 2) {
        mgo_loop_unwatch(f->loop, fd);
        mgo_loop_stop(f->loop);
    }
}

static void bump(void *c)
{
    struct fdctx *f = c;
    uint64_t one = 1;
    CU_ASSERT(write(f->fd, &one, sizeof one) == (ssize_t)sizeof one);
}

static void test_fd_watch(void)
{
    struct fdctx f = {0};
    CU_ASSERT_FATAL(mgo_loop_new(&f.loop) == MGO_OK);
    f.fd = eventfd(0, EFD_NONBLOCK);
    CU_ASSERT(mgo_loop_watch(f.loop, f.fd, POLLIN, on_fd, &f) == MGO_OK);
    CU_ASSERT(mgo_loop_watch(f.loop, f.fd, POLLIN, on_fd, &f) == MGO_ERR_EXISTS);
    CU_ASSERT(mgo_loop_timer_add(f.loop, 5, bump, &f, NULL) == MGO_OK);
    CU_ASSERT(mgo_loop_timer_add(f.loop, 30, bump, &f, NULL) == MGO_OK);
    CU_ASSERT(mgo_loop_run(f.loop) == MGO_OK);
    CU_ASSERT_EQUAL(f.calls, 2);
    close(f.fd);
    mgo_loop_free(f.loop);
}

static void *stop_later(void *c)
{
    usleep(50 * 1000);
    mgo_loop_stop(c);
    return NULL;
}

static void never(void *c)
{
    (void)c;
    CU_FAIL("a post ran after stop");
}

static int freed;
static void count_free(void *c)
{
    (void)c;
    freed++;
}

/* An idle loop sleeps until stopped from another thread; posts left at free are released. */
static void test_stop_from_thread_and_free_releases_posts(void)
{
    struct mgo_loop *l;
    CU_ASSERT_FATAL(mgo_loop_new(&l) == MGO_OK);
    pthread_t t;
    pthread_create(&t, NULL, stop_later, l);
    CU_ASSERT(mgo_loop_run(l) == MGO_OK);
    pthread_join(t, NULL);
    CU_ASSERT(mgo_loop_stopping(l));
    freed = 0;
    CU_ASSERT(mgo_loop_post(l, never, count_free, NULL) == MGO_OK);
    CU_ASSERT(mgo_loop_run(l) == MGO_OK); /* stopped: returns at once */
    mgo_loop_free(l);
    CU_ASSERT_EQUAL(freed, 1);
}

static void test_post_limit(void)
{
    struct mgo_loop *l;
    CU_ASSERT_FATAL(mgo_loop_new(&l) == MGO_OK);
    freed = 0;
    for (unsigned i = 0; i < MGO_LOOP_MAX_POSTS; i++)
        CU_ASSERT_FATAL(mgo_loop_post(l, never, count_free, NULL) == MGO_OK);
    CU_ASSERT(mgo_loop_post(l, never, count_free, NULL) == MGO_ERR_LIMIT);
    mgo_loop_free(l);
    CU_ASSERT_EQUAL(freed, (int)MGO_LOOP_MAX_POSTS);
}

/* The MQTT readiness fd: readable after a wake, consumed by an empty 0-timeout next. */
/* ---- triggers ---- */

static struct mgo_loop *g_trigger_loop;

static void on_usr1(int sig)
{
    (void)sig;
    mgo_loop_trigger(g_trigger_loop, 3); /* what margo-manager's SIGHUP handler does */
}

struct trig {
    struct mgo_loop *loop;
    pthread_t loop_thread;
    int runs;
    bool on_loop_thread;
};

static void trig_fn(void *ctx)
{
    struct trig *t = ctx;
    t->runs++;
    t->on_loop_thread = t->on_loop_thread && pthread_equal(pthread_self(), t->loop_thread);
}

static void stop_loop(void *ctx)
{
    mgo_loop_stop(ctx);
}

static void *raise_usr1(void *arg)
{
    (void)arg;
    mgo_test_sleep_ms(50);
    kill(getpid(), SIGUSR1); /* delivered to any thread: a Paho or HTTP thread in a daemon */
    return NULL;
}

static void check_runs(void *ctx)
{
    struct trig *t = ctx;
    if (t->runs >= 2)
        mgo_loop_stop(t->loop);
    else if (mgo_loop_timer_add(t->loop, 10, check_runs, t, NULL) != MGO_OK)
        mgo_loop_stop(t->loop);
}

static void test_trigger_from_signal_handler(void)
{
    struct mgo_loop *l;
    CU_ASSERT_FATAL(mgo_loop_new(&l) == MGO_OK);
    struct trig t = {.loop = l, .loop_thread = pthread_self(), .on_loop_thread = true};
    CU_ASSERT_EQUAL(mgo_loop_on_trigger(l, MGO_LOOP_MAX_TRIGGERS, trig_fn, &t), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_loop_on_trigger(l, 3, trig_fn, &t), MGO_OK);
    mgo_loop_trigger(l, MGO_LOOP_MAX_TRIGGERS); /* out of range: ignored */
    mgo_loop_trigger(l, 5);                     /* no function: ignored */
    CU_ASSERT_EQUAL(mgo_loop_on_trigger(l, 6, trig_fn, &t), MGO_OK);
    CU_ASSERT_EQUAL(mgo_loop_on_trigger(l, 6, NULL, NULL), MGO_OK); /* forgotten */
    mgo_loop_trigger(l, 6);
    /* pulled three times before the loop looks: one call */
    mgo_loop_trigger(l, 3);
    mgo_loop_trigger(l, 3);
    mgo_loop_trigger(l, 3);
    CU_ASSERT_FATAL(mgo_loop_timer_add(l, 20, stop_loop, l, NULL) == MGO_OK);
    CU_ASSERT_EQUAL(mgo_loop_run(l), MGO_OK);
    CU_ASSERT_EQUAL(t.runs, 1);

    /* a real signal handler on another thread's signal: the function runs on the loop */
    mgo_loop_free(l);
    CU_ASSERT_FATAL(mgo_loop_new(&l) == MGO_OK);
    t = (struct trig){.loop = l, .loop_thread = pthread_self(), .on_loop_thread = true};
    CU_ASSERT_EQUAL(mgo_loop_on_trigger(l, 3, trig_fn, &t), MGO_OK);
    g_trigger_loop = l;
    struct sigaction sa, old;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    sigemptyset(&sa.sa_mask);
    CU_ASSERT_FATAL(sigaction(SIGUSR1, &sa, &old) == 0);
    kill(getpid(), SIGUSR1);
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, raise_usr1, NULL) == 0);
    CU_ASSERT_FATAL(mgo_loop_timer_add(l, 10, check_runs, &t, NULL) == MGO_OK);
    CU_ASSERT_EQUAL(mgo_loop_run(l), MGO_OK);
    pthread_join(th, NULL);
    sigaction(SIGUSR1, &old, NULL);
    CU_ASSERT_EQUAL(t.runs, 2); /* one before the loop ran, one 50 ms later */
    CU_ASSERT_TRUE(t.on_loop_thread);
    mgo_loop_free(l);
}

static void test_mqtt_fd_consumed_by_empty_next(void)
{
    struct mgo_mqtt_config cfg = {.url = "tcp://127.0.0.1:1", .client_id = "loop-test"};
    struct mgo_mqtt *m;
    CU_ASSERT_FATAL(mgo_mqtt_new(&cfg, &m) == MGO_OK);
    int fd = mgo_mqtt_fd(m);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    CU_ASSERT(poll(&p, 1, 0) == 0);
    mgo_mqtt_wake(m);
    CU_ASSERT(poll(&p, 1, 0) == 1);
    struct mgo_mqtt_event ev;
    CU_ASSERT(mgo_mqtt_next(m, 0, &ev) == MGO_ERR_TIMEOUT); /* the wake request */
    CU_ASSERT(mgo_mqtt_next(m, 0, &ev) == MGO_ERR_TIMEOUT); /* empty: consumes readiness */
    CU_ASSERT(poll(&p, 1, 0) == 0);
    mgo_mqtt_free(m);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"posts from two threads keep each thread's order", test_posts_from_threads_keep_order},
        {"timers fire in due order; a cancelled one never",
         test_timers_fire_in_due_order_and_cancel},
        {"a zero-delay timer added by a timer yields", test_zero_delay_timer_yields},
        {"fd watch, unwatch inside the callback", test_fd_watch},
        {"stop from another thread; free releases posts",
         test_stop_from_thread_and_free_releases_posts},
        {"posts are bounded", test_post_limit},
        {"triggers: from a signal handler, folded, run on the loop thread",
         test_trigger_from_signal_handler},
        {"mqtt readiness fd consumed by an empty next", test_mqtt_fd_consumed_by_empty_next},
        {NULL, NULL},
    };
    mgo_test_add_suite("loop", cases);
}
