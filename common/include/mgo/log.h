/* log.h - leveled logging with a per-module tag and a replaceable sink.
 * Libraries never print: they call MGO_LOG*, which hands one line to the sink.
 * The level is checked before formatting. Never log secrets or whole payloads.
 *
 * The default sink writes to stderr in one of three shapes:
 *   text     "2026-11-25T13:00:00.123Z I tag: line"
 *   json     {"time":"2026-11-25T13:00:00.123Z","level":"info","component":"tag",
 *             "message":"line","device":"d1","deployment":"..."} (one object per line;
 *             device and deployment only when the call names them, MGO_LOG?_FOR)
 *   journal  when stderr is the systemd journal (JOURNAL_STREAM names stderr's device and
 *            inode, as systemd.exec(5) documents): sd_journal_send() with MESSAGE,
 *            PRIORITY, SYSLOG_IDENTIFIER, MARGO_COMPONENT, MARGO_DEVICE, MARGO_DEPLOYMENT;
 *            chosen over text and json.
 * Level, format and identifier may be changed at any time from any thread (a reload); a
 * line already being written keeps the old ones. */
#ifndef MGO_LOG_H
#define MGO_LOG_H

#include <stdatomic.h>
#include <stdbool.h>

#include "mgo/err.h"

enum mgo_log_level { MGO_LOG_ERROR = 0, MGO_LOG_WARN, MGO_LOG_INFO, MGO_LOG_DEBUG };
enum mgo_log_format { MGO_LOG_TEXT = 0, MGO_LOG_JSON };

typedef void (*mgo_log_sink)(enum mgo_log_level level, const char *tag, const char *line,
                             void *ctx);

extern _Atomic enum mgo_log_level mgo_log_threshold;

/* A sink replaces the default one (device and deployment are not passed to it). */
void mgo_log_set_sink(mgo_log_sink sink, void *ctx);
void mgo_log_set_level(enum mgo_log_level level);
void mgo_log_set_format(enum mgo_log_format format);
/* SYSLOG_IDENTIFIER of journal entries (a string that lives as long as the process);
 * default "margo". */
void mgo_log_set_ident(const char *ident);
/* Parses "error", "warn", "info", "debug". */
mgo_err mgo_log_level_parse(const char *text, enum mgo_log_level *out) MGO_MUST_CHECK;
/* Parses "text", "json". */
mgo_err mgo_log_format_parse(const char *text, enum mgo_log_format *out) MGO_MUST_CHECK;
void mgo_log_write(enum mgo_log_level level, const char *tag, const char *fmt, ...)
    MGO_PRINTF(3, 4);
/* The same for an event that concerns a device and/or a deployment (either may be NULL):
 * they become the json keys "device" and "deployment" and the journal fields MARGO_DEVICE
 * and MARGO_DEPLOYMENT. */
void mgo_log_write_for(enum mgo_log_level level, const char *tag, const char *device,
                       const char *deployment, const char *fmt, ...) MGO_PRINTF(5, 6);

#define MGO_LOG_(lvl, tag, ...)                                                                    \
    do {                                                                                           \
        if ((lvl) <= mgo_log_threshold)                                                            \
            mgo_log_write((lvl), (tag), __VA_ARGS__);                                              \
    } while (0)
#define MGO_LOGE(tag, ...) MGO_LOG_(MGO_LOG_ERROR, tag, __VA_ARGS__)
#define MGO_LOGW(tag, ...) MGO_LOG_(MGO_LOG_WARN, tag, __VA_ARGS__)
#define MGO_LOGI(tag, ...) MGO_LOG_(MGO_LOG_INFO, tag, __VA_ARGS__)
#define MGO_LOGD(tag, ...) MGO_LOG_(MGO_LOG_DEBUG, tag, __VA_ARGS__)

#define MGO_LOG_FOR_(lvl, tag, dev, dep, ...)                                                      \
    do {                                                                                           \
        if ((lvl) <= mgo_log_threshold)                                                            \
            mgo_log_write_for((lvl), (tag), (dev), (dep), __VA_ARGS__);                            \
    } while (0)
#define MGO_LOGE_FOR(tag, dev, dep, ...) MGO_LOG_FOR_(MGO_LOG_ERROR, tag, dev, dep, __VA_ARGS__)
#define MGO_LOGW_FOR(tag, dev, dep, ...) MGO_LOG_FOR_(MGO_LOG_WARN, tag, dev, dep, __VA_ARGS__)
#define MGO_LOGI_FOR(tag, dev, dep, ...) MGO_LOG_FOR_(MGO_LOG_INFO, tag, dev, dep, __VA_ARGS__)
#define MGO_LOGD_FOR(tag, dev, dep, ...) MGO_LOG_FOR_(MGO_LOG_DEBUG, tag, dev, dep, __VA_ARGS__)

#endif
