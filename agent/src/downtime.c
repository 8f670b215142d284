/* downtime.c - parse and evaluate downtime windows (UTC). */
#include "downtime.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const DAYS[7] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};

static int day_index(const char *s, size_t len)
{
    for (int i = 0; i < 7; i++)
        if (len == 3 && strncasecmp(s, DAYS[i], 3) == 0)
            return i;
    return -1;
}

static bool parse_hhmm(const char *s, size_t len, unsigned *min_out)
{
    if (len != 5 || s[2] != ':')
        return false;
    for (size_t i = 0; i < 5; i++)
        if (i != 2 && (s[i] < '0' || s[i] > '9'))
            return false;
    unsigned h = (unsigned)(s[0] - '0') * 10u + (unsigned)(s[1] - '0');
    unsigned m = (unsigned)(s[3] - '0') * 10u + (unsigned)(s[4] - '0');
    if (m > 59 || h > 24 || (h == 24 && m != 0))
        return false;
    *min_out = h * 60u + m;
    return true;
}

mgo_err mgo_downtime_parse(const char *text, struct mgo_downtime *out, char *why, size_t why_len)
{
    const char *sp = strchr(text, ' ');
    if (sp == NULL || strchr(sp + 1, ' ') != NULL) {
        snprintf(
            why, why_len,
            "'%s' must be 'DAYS HH:MM-HH:MM' (e.g. 'Mon-Fri 01:00-03:00' or 'daily 22:00-06:00')",
            text);
        return MGO_ERR_INVALID;
    }
    struct mgo_downtime w = {0, 0, 0};
    size_t dl = (size_t)(sp - text);
    if (dl == 5 && strncasecmp(text, "daily", 5) == 0) {
        w.days = 0x7Fu;
    } else {
        const char *p = text;
        while (p < sp) {
            const char *comma = memchr(p, ',', (size_t)(sp - p));
            const char *end = comma ? comma : sp;
            const char *dash = memchr(p, '-', (size_t)(end - p));
            int a = day_index(p, (size_t)((dash ? dash : end) - p));
            int b = dash ? day_index(dash + 1, (size_t)(end - dash - 1)) : a;
            if (a < 0 || b < 0) {
                snprintf(
                    why, why_len,
                    "'%.*s': days must be Mon..Sun, a range like Mon-Fri, a comma list, or 'daily'",
                    (int)dl, text);
                return MGO_ERR_INVALID;
            }
            for (int d = a;; d = (d + 1) % 7) {
                w.days |= 1u << d;
                if (d == b)
                    break;
            }
            p = end + (comma ? 1 : 0);
        }
    }
    const char *times = sp + 1;
    const char *dash = strchr(times, '-');
    if (dash == NULL || !parse_hhmm(times, (size_t)(dash - times), &w.start_min) ||
        !parse_hhmm(dash + 1, strlen(dash + 1), &w.end_min) || w.start_min == 1440) {
        snprintf(why, why_len, "'%s': times must be HH:MM-HH:MM (00:00..24:00)", times);
        return MGO_ERR_INVALID;
    }
    if (w.start_min == w.end_min) {
        snprintf(why, why_len, "'%s': an empty window", times);
        return MGO_ERR_INVALID;
    }
    *out = w;
    return MGO_OK;
}

bool mgo_downtime_active(const struct mgo_downtime *w, size_t n, time_t now, time_t *ends_at)
{
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL)
        return false;
    unsigned today = (unsigned)((tm.tm_wday + 6) % 7); /* Monday = 0 */
    unsigned yesterday = (today + 6u) % 7u;
    unsigned minute = (unsigned)(tm.tm_hour * 60 + tm.tm_min);
    time_t midnight = now - (time_t)(tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec);
    for (size_t i = 0; i < n; i++) {
        bool wraps = w[i].end_min <= w[i].start_min;
        if ((w[i].days & (1u << today)) && minute >= w[i].start_min &&
            (wraps || minute < w[i].end_min)) {
            if (ends_at)
                *ends_at = midnight + (time_t)w[i].end_min * 60 + (wraps ? 86400 : 0);
            return true;
        }
        if (wraps && (w[i].days & (1u << yesterday)) && minute < w[i].end_min) {
            if (ends_at)
                *ends_at = midnight + (time_t)w[i].end_min * 60;
            return true;
        }
    }
    return false;
}
