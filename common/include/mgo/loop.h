/* loop.h - the event loop each daemon runs on its one loop thread.
 *
 * One thread calls mgo_loop_run(); every callback registered here runs on that thread, one
 * at a time, so the state those callbacks touch needs no lock. Other threads (Paho's, the
 * HTTP server's, a runtime worker) never touch that state: they hand work over with
 * mgo_loop_post(), which is the only function here (with mgo_loop_stop and
 * mgo_loop_trigger) that may be called from another thread.
 *
 * Time is CLOCK_MONOTONIC (mgo_loop_now_ms), so a step of the wall clock never stalls or
 * hurries a timer. poll() waits for the earliest timer, a watched descriptor or a post (an
 * eventfd), whichever comes first: an idle daemon does not wake up.
 *
 * Order: posts run in the order they were made; timers due at the same moment run in the
 * order they were added; a callback that posts or adds a zero-delay timer runs after what
 * is already due, so a long job can be cut into slices that let everything else in. */
#ifndef MGO_LOOP_H
#define MGO_LOOP_H

#include <stdbool.h>
#include <stdint.h>

#include "mgo/err.h"

struct mgo_loop;

typedef void (*mgo_loop_fn)(void *ctx);
/* revents: the poll() bits that were set (POLLIN, POLLOUT, POLLERR, POLLHUP). */
typedef void (*mgo_loop_fd_fn)(void *ctx, int fd, short revents);

/* Posts queued at most; past it mgo_loop_post() refuses (MGO_ERR_LIMIT), so a stuck loop
 * cannot make another thread eat all memory. */
#define MGO_LOOP_MAX_POSTS 65536u
#define MGO_LOOP_MAX_FDS 16u
/* Triggers a loop has (mgo_loop_on_trigger): numbered 0 .. MGO_LOOP_MAX_TRIGGERS - 1. */
#define MGO_LOOP_MAX_TRIGGERS 8u

/* Milliseconds on the monotonic clock (any thread). */
int64_t mgo_loop_now_ms(void);

mgo_err mgo_loop_new(struct mgo_loop **out) MGO_MUST_CHECK;
/* Frees the loop; posts never run are dropped, after free_fn of each (see mgo_loop_post).
 * NULL is fine. Not while mgo_loop_run() runs. */
void mgo_loop_free(struct mgo_loop *l);

/* Runs callbacks until mgo_loop_stop(). MGO_ERR_IO when poll() fails. */
mgo_err mgo_loop_run(struct mgo_loop *l) MGO_MUST_CHECK;
/* Makes mgo_loop_run() return after the callback now running (any thread; async-signal-safe:
 * an atomic store and an eventfd write). */
void mgo_loop_stop(struct mgo_loop *l);
bool mgo_loop_stopping(const struct mgo_loop *l);

/* Any thread: fn(ctx) runs on the loop thread. free_fn (may be NULL) is called with ctx
 * instead when the loop is freed before fn ran, so an owned ctx is never leaked.
 * MGO_ERR_NOMEM, MGO_ERR_LIMIT (MGO_LOOP_MAX_POSTS waiting). */
mgo_err mgo_loop_post(struct mgo_loop *l, mgo_loop_fn fn, mgo_loop_fn free_fn,
                      void *ctx) MGO_MUST_CHECK;

/* Loop thread: fn(ctx) runs once, delay_ms from now (0: after what is already due).
 * id_out (optional) names the timer for mgo_loop_timer_cancel(); ids are never 0 and never
 * reused. MGO_ERR_NOMEM. */
mgo_err mgo_loop_timer_add(struct mgo_loop *l, int64_t delay_ms, mgo_loop_fn fn, void *ctx,
                           uint64_t *id_out) MGO_MUST_CHECK;
/* Loop thread: a timer that has not fired yet does not fire. 0 or an old id: no-op. */
void mgo_loop_timer_cancel(struct mgo_loop *l, uint64_t id);

/* Loop thread: fn runs whenever fd is ready for events (POLLIN/POLLOUT; level-triggered).
 * One watch per fd. MGO_ERR_EXISTS, MGO_ERR_LIMIT (MGO_LOOP_MAX_FDS). */
mgo_err mgo_loop_watch(struct mgo_loop *l, int fd, short events, mgo_loop_fd_fn fn,
                       void *ctx) MGO_MUST_CHECK;
void mgo_loop_unwatch(struct mgo_loop *l, int fd);

/* Triggers: a signal handler's way to get work done on the loop thread (SIGHUP -> reload).
 * Loop thread: fn(ctx) runs on the loop thread after each mgo_loop_trigger(l, n); triggers
 * pulled again before fn ran are folded into one call. fn NULL forgets trigger n.
 * MGO_ERR_INVALID when n >= MGO_LOOP_MAX_TRIGGERS. */
mgo_err mgo_loop_on_trigger(struct mgo_loop *l, unsigned n, mgo_loop_fn fn,
                            void *ctx) MGO_MUST_CHECK;
/* Any thread; async-signal-safe (an atomic fetch-or and an eventfd write). A trigger with no
 * function, or n out of range, is ignored. */
void mgo_loop_trigger(struct mgo_loop *l, unsigned n);

#endif
