/* downtime.h - Margo downtime windows (private to agent/): during a window the agent makes
 * no connection attempts and reports no communication errors. Times are UTC.
 *
 *   "daily 22:00-06:00"     every day (a window may cross midnight)
 *   "Mon-Fri 01:00-03:00"   a day range (Mon Tue Wed Thu Fri Sat Sun; Fri-Mon wraps)
 *   "Sat,Sun 00:00-24:00"   a comma list of days or ranges
 * The window starts at the first minute and ends before the second; a window that crosses
 * midnight belongs to the day it starts on. */
#ifndef MGO_AGENT_DOWNTIME_H
#define MGO_AGENT_DOWNTIME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "mgo/err.h"

struct mgo_downtime {
    unsigned days;      /* bit 0 = Monday ... bit 6 = Sunday */
    unsigned start_min; /* 0..1439 */
    unsigned end_min;   /* 1..1440; <= start_min means it ends the next day */
};

/* why names the rule broken. */
mgo_err mgo_downtime_parse(const char *text, struct mgo_downtime *out, char *why,
                           size_t why_len) MGO_MUST_CHECK;
/* Whether now (UTC seconds) falls inside any window; *ends_at (optional) receives the end of
 * the window it is in. */
bool mgo_downtime_active(const struct mgo_downtime *w, size_t n, time_t now, time_t *ends_at);

#endif
