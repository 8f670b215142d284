/* loop.c - mgo_loop: poll() over an eventfd (posts, stop, triggers) and the watched descriptors,
 * with timers on the monotonic clock.
 *
 * Posts are a mutex-guarded FIFO; a post into an empty FIFO bumps the eventfd, and the loop
 * takes the whole FIFO in one lock, so a burst costs one wakeup. Timers are a list sorted by
 * (due, id): few timers live at once in a daemon (reconnect, settle, sweeps), so a sorted
 * insert is simpler than a heap and as fast. */
#include "mgo/loop.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "mgo/log.h"

#define TAG "loop"

struct post {
    struct post *next;
    mgo_loop_fn fn;
    mgo_loop_fn free_fn;
    void *ctx;
};

struct timer {
    struct timer *next;
    uint64_t id;
    int64_t due_ms;
    mgo_loop_fn fn;
    void *ctx;
};

struct watch {
    int fd;
    short events;
    mgo_loop_fd_fn fn;
    void *ctx;
};

struct trigger {
    mgo_loop_fn fn;
    void *ctx;
};

struct mgo_loop {
    int wake_fd;
    atomic_bool stop;
    atomic_uint triggered; /* bit n: mgo_loop_trigger(l, n) since the loop last looked */
    struct trigger triggers[MGO_LOOP_MAX_TRIGGERS];
    pthread_mutex_t mu; /* guards the post FIFO */
    struct post *head, *tail;
    size_t posts_len;
    struct timer *timers; /* sorted by (due_ms, id) */
    uint64_t next_timer_id;
    struct watch watches[MGO_LOOP_MAX_FDS];
    size_t watches_len;
    bool watches_changed; /* a callback changed the set while the loop walked it */
};

int64_t mgo_loop_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void wake(struct mgo_loop *l)
{
    uint64_t one = 1;
    /* EAGAIN only when the counter is full, which means a wakeup is pending anyway */
    ssize_t n = write(l->wake_fd, &one, sizeof one);
    (void)n;
}

mgo_err mgo_loop_new(struct mgo_loop **out)
{
    struct mgo_loop *l = calloc(1, sizeof *l);
    if (l == NULL)
        return MGO_ERR_NOMEM;
    l->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (l->wake_fd < 0) {
        MGO_LOGE(TAG, "eventfd: %s", strerror(errno));
        free(l);
        return MGO_ERR_IO;
    }
    if (pthread_mutex_init(&l->mu, NULL) != 0) {
        close(l->wake_fd);
        free(l);
        return MGO_ERR_NOMEM;
    }
    atomic_init(&l->stop, false);
    atomic_init(&l->triggered, 0u);
    *out = l;
    return MGO_OK;
}

void mgo_loop_free(struct mgo_loop *l)
{
    if (l == NULL)
        return;
    struct post *p = l->head;
    while (p != NULL) {
        struct post *next = p->next;
        if (p->free_fn != NULL)
            p->free_fn(p->ctx);
        free(p);
        p = next;
    }
    struct timer *t = l->timers;
    while (t != NULL) {
        struct timer *next = t->next;
        free(t);
        t = next;
    }
    pthread_mutex_destroy(&l->mu);
    close(l->wake_fd);
    free(l);
}

void mgo_loop_stop(struct mgo_loop *l)
{
    atomic_store(&l->stop, true);
    wake(l);
}

bool mgo_loop_stopping(const struct mgo_loop *l)
{
    return atomic_load(&l->stop);
}

mgo_err mgo_loop_post(struct mgo_loop *l, mgo_loop_fn fn, mgo_loop_fn free_fn, void *ctx)
{
    struct post *p = malloc(sizeof *p);
    if (p == NULL)
        return MGO_ERR_NOMEM;
    *p = (struct post){NULL, fn, free_fn, ctx};
    pthread_mutex_lock(&l->mu);
    if (l->posts_len == MGO_LOOP_MAX_POSTS) {
        pthread_mutex_unlock(&l->mu);
        free(p);
        return MGO_ERR_LIMIT;
    }
    bool was_empty = l->head == NULL;
    if (l->tail != NULL)
        l->tail->next = p;
    else
        l->head = p;
    l->tail = p;
    l->posts_len++;
    pthread_mutex_unlock(&l->mu);
    if (was_empty)
        wake(l);
    return MGO_OK;
}

mgo_err mgo_loop_timer_add(struct mgo_loop *l, int64_t delay_ms, mgo_loop_fn fn, void *ctx,
                           uint64_t *id_out)
{
    struct timer *t = malloc(sizeof *t);
    if (t == NULL)
        return MGO_ERR_NOMEM;
    *t = (struct timer){NULL, ++l->next_timer_id, mgo_loop_now_ms() + (delay_ms > 0 ? delay_ms : 0),
                        fn, ctx};
    struct timer **at = &l->timers;
    while (*at != NULL && (*at)->due_ms <= t->due_ms)
        at = &(*at)->next;
    t->next = *at;
    *at = t;
    if (id_out != NULL)
        *id_out = t->id;
    return MGO_OK;
}

void mgo_loop_timer_cancel(struct mgo_loop *l, uint64_t id)
{
    if (id == 0)
        return;
    for (struct timer **at = &l->timers; *at != NULL; at = &(*at)->next) {
        if ((*at)->id == id) {
            struct timer *t = *at;
            *at = t->next;
            free(t);
            return;
        }
    }
}

mgo_err mgo_loop_watch(struct mgo_loop *l, int fd, short events, mgo_loop_fd_fn fn, void *ctx)
{
    for (size_t i = 0; i < l->watches_len; i++)
        if (l->watches[i].fd == fd)
            return MGO_ERR_EXISTS;
    if (l->watches_len == MGO_LOOP_MAX_FDS)
        return MGO_ERR_LIMIT;
    l->watches[l->watches_len++] = (struct watch){fd, events, fn, ctx};
    l->watches_changed = true;
    return MGO_OK;
}

void mgo_loop_unwatch(struct mgo_loop *l, int fd)
{
    for (size_t i = 0; i < l->watches_len; i++) {
        if (l->watches[i].fd == fd) {
            l->watches[i] = l->watches[--l->watches_len];
            l->watches_changed = true;
            return;
        }
    }
}

mgo_err mgo_loop_on_trigger(struct mgo_loop *l, unsigned n, mgo_loop_fn fn, void *ctx)
{
    if (n >= MGO_LOOP_MAX_TRIGGERS)
        return MGO_ERR_INVALID;
    l->triggers[n] = (struct trigger){fn, ctx};
    return MGO_OK;
}

void mgo_loop_trigger(struct mgo_loop *l, unsigned n)
{
    if (n >= MGO_LOOP_MAX_TRIGGERS)
        return;
    atomic_fetch_or(&l->triggered, 1u << n);
    wake(l);
}

/* Runs the function of each trigger pulled since the last look (in trigger order). */
static void run_triggers(struct mgo_loop *l)
{
    unsigned bits = atomic_exchange(&l->triggered, 0u);
    for (unsigned n = 0; n < MGO_LOOP_MAX_TRIGGERS && bits != 0 && !atomic_load(&l->stop); n++) {
        if ((bits & (1u << n)) != 0 && l->triggers[n].fn != NULL)
            l->triggers[n].fn(l->triggers[n].ctx);
    }
}

/* Runs the posts queued now (not those they queue in turn: those wait for the next turn). */
static void run_posts(struct mgo_loop *l)
{
    uint64_t count;
    ssize_t r = read(l->wake_fd, &count, sizeof count);
    (void)r; /* EAGAIN: nothing pending; the FIFO decides */
    pthread_mutex_lock(&l->mu);
    struct post *p = l->head;
    l->head = l->tail = NULL;
    l->posts_len = 0;
    pthread_mutex_unlock(&l->mu);
    while (p != NULL) {
        struct post *next = p->next;
        if (atomic_load(&l->stop)) {
            /* give the rest back to the FIFO, in order, so mgo_loop_free releases them */
            pthread_mutex_lock(&l->mu);
            struct post *last = p;
            size_t n = 1;
            while (last->next != NULL) {
                last = last->next;
                n++;
            }
            last->next = l->head;
            if (l->head == NULL)
                l->tail = last;
            l->head = p;
            l->posts_len += n;
            pthread_mutex_unlock(&l->mu);
            return;
        }
        p->fn(p->ctx);
        free(p);
        p = next;
    }
}

/* Runs the timers due now; a timer added by one of them for "now" waits for the next turn. */
static void run_timers(struct mgo_loop *l, int64_t now)
{
    uint64_t last_id = l->next_timer_id;
    while (l->timers != NULL && l->timers->due_ms <= now && !atomic_load(&l->stop)) {
        struct timer **at = &l->timers;
        while (*at != NULL && (*at)->due_ms <= now && (*at)->id > last_id)
            at = &(*at)->next;
        if (*at == NULL || (*at)->due_ms > now)
            return;
        struct timer *t = *at;
        *at = t->next;
        mgo_loop_fn fn = t->fn;
        void *ctx = t->ctx;
        free(t);
        fn(ctx);
    }
}

mgo_err mgo_loop_run(struct mgo_loop *l)
{
    struct pollfd pfds[MGO_LOOP_MAX_FDS + 1];
    struct watch polled[MGO_LOOP_MAX_FDS];
    while (!atomic_load(&l->stop)) {
        int64_t now = mgo_loop_now_ms();
        int wait_ms = -1;
        if (l->timers != NULL) {
            int64_t left = l->timers->due_ms - now;
            wait_ms = left <= 0 ? 0 : left > 60000 ? 60000 : (int)left;
        }
        pfds[0] = (struct pollfd){.fd = l->wake_fd, .events = POLLIN};
        size_t n = l->watches_len;
        for (size_t i = 0; i < n; i++) {
            polled[i] = l->watches[i];
            pfds[i + 1] = (struct pollfd){.fd = polled[i].fd, .events = polled[i].events};
        }
        int pr = poll(pfds, (nfds_t)(n + 1), wait_ms);
        if (pr < 0) {
            if (errno == EINTR)
                continue;
            MGO_LOGE(TAG, "poll: %s", strerror(errno));
            return MGO_ERR_IO;
        }
        if (pfds[0].revents != 0) {
            run_posts(l);
            run_triggers(l);
        }
        l->watches_changed = false;
        for (size_t i = 0; i < n && pr > 0 && !atomic_load(&l->stop); i++) {
            if (pfds[i + 1].revents == 0)
                continue;
            if (l->watches_changed) {
                /* a callback unwatched something: call only fds still watched by the same fn */
                bool still = false;
                for (size_t k = 0; k < l->watches_len; k++)
                    still = still ||
                            (l->watches[k].fd == polled[i].fd && l->watches[k].fn == polled[i].fn &&
                             l->watches[k].ctx == polled[i].ctx);
                if (!still)
                    continue;
            }
            polled[i].fn(polled[i].ctx, polled[i].fd, pfds[i + 1].revents);
        }
        run_timers(l, mgo_loop_now_ms());
    }
    return MGO_OK;
}
