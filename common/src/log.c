/* log.c - leveled logging to a replaceable sink. */
#include "mgo/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

enum mgo_log_level mgo_log_threshold = MGO_LOG_INFO;

static mgo_log_sink g_sink;
static void *g_sink_ctx;

void mgo_log_set_sink(mgo_log_sink sink, void *ctx)
{
    g_sink = sink;
    g_sink_ctx = ctx;
}

void mgo_log_set_level(enum mgo_log_level level)
{
    mgo_log_threshold = level;
}

mgo_err mgo_log_level_parse(const char *text, enum mgo_log_level *out)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        if (strcmp(text, names[i]) == 0) {
            *out = (enum mgo_log_level)i;
            return MGO_OK;
        }
    }
    return MGO_ERR_INVALID;
}

void mgo_log_write(enum mgo_log_level level, const char *tag, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    /* One line per event: fold any newline a caller let through. */
    for (char *p = line; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    if (g_sink != NULL) {
        g_sink(level, tag, line, g_sink_ctx);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    static const char letters[] = "EWID";
    fprintf(stderr, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ %c %s: %s\n", tm.tm_year + 1900,
            tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L,
            letters[level], tag, line);
}
