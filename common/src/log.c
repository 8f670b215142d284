/* log.c - leveled logging to a replaceable sink; the default sink writes text, JSON lines or
 * native journal entries (log.h). */
#include "mgo/log.h"

#define SD_JOURNAL_SUPPRESS_LOCATION /* CODE_FILE/CODE_LINE would name this file, not the caller   \
                                      */
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <systemd/sd-journal.h>
#include <time.h>

#include "mgo/buf.h"
#include "mgo/value.h"
#include "utf8.h"

/* a JSON line: the message (1 KiB) escaped at most 6 bytes a byte, plus ids and keys */
#define JSON_LINE_MAX 8192

_Atomic enum mgo_log_level mgo_log_threshold = MGO_LOG_INFO;

static mgo_log_sink g_sink;
static void *g_sink_ctx;
static _Atomic enum mgo_log_format g_format = MGO_LOG_TEXT;
static _Atomic(const char *) g_ident = "margo";
static pthread_once_t g_journal_once = PTHREAD_ONCE_INIT;
static bool g_journal;

void mgo_log_set_sink(mgo_log_sink sink, void *ctx)
{
    g_sink = sink;
    g_sink_ctx = ctx;
}

void mgo_log_set_level(enum mgo_log_level level)
{
    mgo_log_threshold = level;
}

void mgo_log_set_format(enum mgo_log_format format)
{
    g_format = format;
}

void mgo_log_set_ident(const char *ident)
{
    g_ident = ident;
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

mgo_err mgo_log_format_parse(const char *text, enum mgo_log_format *out)
{
    if (strcmp(text, "text") == 0)
        *out = MGO_LOG_TEXT;
    else if (strcmp(text, "json") == 0)
        *out = MGO_LOG_JSON;
    else
        return MGO_ERR_INVALID;
    return MGO_OK;
}

/* systemd.exec(5): JOURNAL_STREAM is "DEVICE:INODE" of the stream the service manager
 * connected to stdout/stderr; stderr is still the journal when its fstat matches. */
static void detect_journal(void)
{
    const char *env = getenv("JOURNAL_STREAM");
    if (env == NULL || env[0] == '\0')
        return;
    char *end = NULL;
    unsigned long long dev = strtoull(env, &end, 10);
    if (end == env || *end != ':')
        return;
    const char *ino_text = end + 1;
    unsigned long long ino = strtoull(ino_text, &end, 10);
    if (end == ino_text || *end != '\0')
        return;
    struct stat st;
    if (fstat(2, &st) != 0)
        return;
    g_journal = (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* True when stderr is connected to the journal (decided at the first line). */
static bool to_journal(void)
{
    pthread_once(&g_journal_once, detect_journal);
    return g_journal;
}

static void write_journal(enum mgo_log_level level, const char *tag, const char *device,
                          const char *deployment, const char *line)
{
    static const int priorities[] = {3, 4, 6, 7}; /* LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG */
    /* sd_journal_send takes a NULL-terminated list: absent ids end it early */
    const char *dev_fmt = device != NULL ? "MARGO_DEVICE=%s" : NULL;
    const char *dep_fmt = deployment != NULL ? "MARGO_DEPLOYMENT=%s" : NULL;
    if (dev_fmt == NULL) {
        dev_fmt = dep_fmt;
        device = deployment;
        dep_fmt = NULL;
    }
    int rc = sd_journal_send("MESSAGE=%s: %s", tag, line, "PRIORITY=%d", priorities[level],
                             "SYSLOG_IDENTIFIER=%s", (const char *)g_ident, "MARGO_COMPONENT=%s",
                             tag, dev_fmt, device, dep_fmt, deployment, NULL);
    if (rc < 0) /* the journal went away: the line is not lost */
        fprintf(stderr, "%s: %s\n", tag, line);
}

/* 96: what the format could take for any int, as the compiler counts; the time takes 24 */
#define TIME_MAX 96

static void format_time(char out[TIME_MAX])
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    snprintf(out, TIME_MAX, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000L);
}

static mgo_err put_field(struct mgo_buf *b, const char *key, const char *value)
{
    mgo_err err = mgo_buf_printf(b, ",\"%s\":", key);
    if (err == MGO_OK)
        err = mgo_json_put_string(b, value, strlen(value));
    return err;
}

static void write_json(enum mgo_log_level level, const char *tag, const char *device,
                       const char *deployment, char *line)
{
    static const char *const names[] = {"error", "warn", "info", "debug"};
    /* JSON text is UTF-8: a line with bytes that are not (a peer's string cut at a byte
     * limit) keeps its ASCII and shows '?' for every other byte */
    if (!mgo_utf8__check(line, strlen(line)))
        for (char *p = line; *p != '\0'; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
    char ts[TIME_MAX];
    format_time(ts);
    struct mgo_buf b;
    mgo_buf_init(&b, JSON_LINE_MAX);
    mgo_err err = mgo_buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\"", ts, names[level]);
    if (err == MGO_OK)
        err = put_field(&b, "component", tag);
    if (err == MGO_OK)
        err = put_field(&b, "message", line);
    if (err == MGO_OK && device != NULL)
        err = put_field(&b, "device", device);
    if (err == MGO_OK && deployment != NULL)
        err = put_field(&b, "deployment", deployment);
    if (err == MGO_OK)
        err = mgo_buf_append(&b, "}\n", 2);
    if (err == MGO_OK)
        fwrite(b.data, 1, b.len, stderr); /* one write of a whole line (stderr is unbuffered) */
    else
        fprintf(stderr,
                "{\"time\":\"%s\",\"level\":\"error\",\"component\":\"log\","
                "\"message\":\"a log line could not be written as JSON\"}\n",
                ts);
    mgo_buf_cleanup(&b);
}

static void write_line(enum mgo_log_level level, const char *tag, const char *device,
                       const char *deployment, const char *fmt, va_list ap) MGO_PRINTF(5, 0);
static void write_line(enum mgo_log_level level, const char *tag, const char *device,
                       const char *deployment, const char *fmt, va_list ap)
{
    char line[1024];
    vsnprintf(line, sizeof line, fmt, ap);
    /* One line per event: fold any newline a caller let through. */
    for (char *p = line; *p != '\0'; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    if (g_sink != NULL) {
        g_sink(level, tag, line, g_sink_ctx);
        return;
    }
    if (to_journal()) {
        write_journal(level, tag, device, deployment, line);
        return;
    }
    if (g_format == MGO_LOG_JSON) {
        write_json(level, tag, device, deployment, line);
        return;
    }
    char ts[TIME_MAX];
    format_time(ts);
    static const char letters[] = "EWID";
    fprintf(stderr, "%s %c %s: %s\n", ts, letters[level], tag, line);
}

void mgo_log_write(enum mgo_log_level level, const char *tag, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line(level, tag, NULL, NULL, fmt, ap);
    va_end(ap);
}

void mgo_log_write_for(enum mgo_log_level level, const char *tag, const char *device,
                       const char *deployment, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    write_line(level, tag, device, deployment, fmt, ap);
    va_end(ap);
}
