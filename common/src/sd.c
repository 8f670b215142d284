/* sd.c - sd_notify(3) messages and the watchdog timer (sd.h). */
#include "mgo/sd.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "mgo/log.h"

#define TAG "systemd"

static void notify(const char *state)
{
    int rc = sd_notify(0, state);
    if (rc < 0)
        MGO_LOGD(TAG, "sd_notify: %s", strerror(-rc));
}

/* head (e.g. "READY=1\n") then STATUS=<fmt...>; the status loses any newline (one line) */
static void notify_status(const char *head, const char *fmt, va_list ap) MGO_PRINTF(2, 0);
static void notify_status(const char *head, const char *fmt, va_list ap)
{
    char status[512];
    vsnprintf(status, sizeof status, fmt, ap);
    for (char *p = status; *p != '\0'; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    char msg[600];
    snprintf(msg, sizeof msg, "%sSTATUS=%s", head, status);
    notify(msg);
}

void mgo_sd_ready(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notify_status("READY=1\n", fmt, ap);
    va_end(ap);
}

void mgo_sd_status(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notify_status("", fmt, ap);
    va_end(ap);
}

void mgo_sd_stopping(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    notify_status("STOPPING=1\n", fmt, ap);
    va_end(ap);
}

void mgo_sd_reloading(void)
{
    /* MONOTONIC_USEC: systemd >= 253 wants it with RELOADING=1 (Type=notify-reload) */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    char msg[96];
    snprintf(msg, sizeof msg,
             "RELOADING=1\nSTATUS=reloading the configuration\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000u);
    notify(msg);
}

static void ping(void *ctx)
{
    struct mgo_sd_watchdog *w = ctx;
    w->timer = 0;
    notify("WATCHDOG=1");
    if (mgo_loop_timer_add(w->loop, w->period_ms, ping, w, &w->timer) != MGO_OK)
        MGO_LOGE(TAG, "out of memory: the watchdog pings stop (systemd will restart us)");
}

mgo_err mgo_sd_watchdog_start(struct mgo_sd_watchdog *w, struct mgo_loop *loop)
{
    uint64_t usec = 0;
    w->loop = loop;
    w->period_ms = 0;
    int rc = sd_watchdog_enabled(0, &usec);
    if (rc <= 0 || usec == 0) {
        if (rc < 0)
            MGO_LOGW(TAG, "WATCHDOG_USEC: %s; no watchdog", strerror(-rc));
        return MGO_OK;
    }
    w->period_ms = (int64_t)(usec / 2000u);
    if (w->period_ms < 1)
        w->period_ms = 1;
    MGO_LOGI(TAG, "watchdog: %llu ms, pinged every %lld ms", (unsigned long long)(usec / 1000u),
             (long long)w->period_ms);
    notify("WATCHDOG=1");
    return mgo_loop_timer_add(loop, w->period_ms, ping, w, &w->timer);
}

void mgo_sd_watchdog_stop(struct mgo_sd_watchdog *w)
{
    if (w->loop != NULL)
        mgo_loop_timer_cancel(w->loop, w->timer);
    w->timer = 0;
}
