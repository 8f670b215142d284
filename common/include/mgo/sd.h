/* sd.h - the systemd service manager's notification protocol (sd_notify(3)) for the daemons:
 * readiness, status lines, reload, stop, and the watchdog. Wraps libsystemd's sd-daemon
 * (only common/src/sd.c includes it; log.c uses sd-journal itself, since sd.c logs through
 * log.c and the two files must not call each other).
 *
 * Outside systemd (no NOTIFY_SOCKET in the environment) every call does nothing, and the
 * watchdog is off unless WATCHDOG_USEC asks for it. Messages are best effort: a service
 * manager that went away costs nothing but a debug line. Any thread (sd_notify is), except
 * the watchdog functions, which belong to the loop thread. */
#ifndef MGO_SD_H
#define MGO_SD_H

#include <stdint.h>

#include "mgo/err.h"
#include "mgo/loop.h"

/* READY=1 with STATUS=<status>: start-up is over, the daemon serves. */
void mgo_sd_ready(const char *fmt, ...) MGO_PRINTF(1, 2);
/* STATUS=<status>: one line for `systemctl status`. */
void mgo_sd_status(const char *fmt, ...) MGO_PRINTF(1, 2);
/* RELOADING=1 and MONOTONIC_USEC (what a reload starts with); end it with mgo_sd_ready(). */
void mgo_sd_reloading(void);
/* STOPPING=1 with STATUS=<status>. */
void mgo_sd_stopping(const char *fmt, ...) MGO_PRINTF(1, 2);

/* The watchdog: when the service manager asked for one (sd_watchdog_enabled: WATCHDOG_USEC,
 * and WATCHDOG_PID if set names this process), a timer on the daemon's own loop sends
 * WATCHDOG=1 every half of the interval, so a loop that stops turning stops the pings and the
 * service manager restarts the daemon. Caller storage; zero it first. */
struct mgo_sd_watchdog {
    struct mgo_loop *loop;
    uint64_t timer;    /* the pending ping, 0: none */
    int64_t period_ms; /* half of the interval; 0: no watchdog */
};
/* Loop thread. MGO_OK also when no watchdog was asked for (period_ms stays 0);
 * MGO_ERR_NOMEM. */
mgo_err mgo_sd_watchdog_start(struct mgo_sd_watchdog *w, struct mgo_loop *loop) MGO_MUST_CHECK;
/* Loop thread: no more pings. Idempotent. */
void mgo_sd_watchdog_stop(struct mgo_sd_watchdog *w);

#endif
