/* log.h - leveled logging with a per-module tag and a replaceable sink.
 * Libraries never print: they call MGO_LOG*, which hands one line to the sink.
 * The level is checked before formatting. Never log secrets or whole payloads. */
#ifndef MGO_LOG_H
#define MGO_LOG_H

#include "mgo/err.h"

enum mgo_log_level { MGO_LOG_ERROR = 0, MGO_LOG_WARN, MGO_LOG_INFO, MGO_LOG_DEBUG };

typedef void (*mgo_log_sink)(enum mgo_log_level level, const char *tag, const char *line,
                             void *ctx);

extern enum mgo_log_level mgo_log_threshold;

/* Default sink: "2026-11-25T13:00:00.123Z I tag: line" on stderr. */
void mgo_log_set_sink(mgo_log_sink sink, void *ctx);
void mgo_log_set_level(enum mgo_log_level level);
/* Parses "error", "warn", "info", "debug". */
mgo_err mgo_log_level_parse(const char *text, enum mgo_log_level *out) MGO_MUST_CHECK;
void mgo_log_write(enum mgo_log_level level, const char *tag, const char *fmt, ...)
    MGO_PRINTF(3, 4);

#define MGO_LOG_(lvl, tag, ...)                                                                    \
    do {                                                                                           \
        if ((lvl) <= mgo_log_threshold)                                                            \
            mgo_log_write((lvl), (tag), __VA_ARGS__);                                              \
    } while (0)
#define MGO_LOGE(tag, ...) MGO_LOG_(MGO_LOG_ERROR, tag, __VA_ARGS__)
#define MGO_LOGW(tag, ...) MGO_LOG_(MGO_LOG_WARN, tag, __VA_ARGS__)
#define MGO_LOGI(tag, ...) MGO_LOG_(MGO_LOG_INFO, tag, __VA_ARGS__)
#define MGO_LOGD(tag, ...) MGO_LOG_(MGO_LOG_DEBUG, tag, __VA_ARGS__)

#endif
