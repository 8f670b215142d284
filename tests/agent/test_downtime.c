/* test_downtime.c - downtime window parsing and arithmetic (UTC, midnight wrap, day ranges). */
#include <string.h>
#include <time.h>

#include "downtime.h"
#include "mgo_test.h"

/* 2026-11-23 is a Monday. */
static time_t at(int mday, int hour, int min)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    tm.tm_year = 2026 - 1900;
    tm.tm_mon = 10;
    tm.tm_mday = mday;
    tm.tm_hour = hour;
    tm.tm_min = min;
    return timegm(&tm);
}

static void test_parse(void)
{
    struct mgo_downtime w;
    char why[256];
    CU_ASSERT(mgo_downtime_parse("Mon-Fri 01:00-03:00", &w, why, sizeof why) == MGO_OK);
    CU_ASSERT_EQUAL(w.days, 0x1Fu);
    CU_ASSERT_EQUAL(w.start_min, 60u);
    CU_ASSERT_EQUAL(w.end_min, 180u);
    CU_ASSERT(mgo_downtime_parse("daily 22:00-06:00", &w, why, sizeof why) == MGO_OK);
    CU_ASSERT_EQUAL(w.days, 0x7Fu);
    CU_ASSERT(mgo_downtime_parse("Sat,Sun 00:00-24:00", &w, why, sizeof why) == MGO_OK);
    CU_ASSERT_EQUAL(w.days, 0x60u);
    CU_ASSERT(mgo_downtime_parse("Fri-Mon 10:00-11:00", &w, why, sizeof why) == MGO_OK);
    CU_ASSERT_EQUAL(w.days, 0x71u); /* Fri Sat Sun Mon */
    CU_ASSERT(mgo_downtime_parse("Mon-Fri 1:00-3:00", &w, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, "HH:MM") != NULL);
    CU_ASSERT(mgo_downtime_parse("Moon 01:00-03:00", &w, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(mgo_downtime_parse("daily 24:30-01:00", &w, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(mgo_downtime_parse("daily 02:00-02:00", &w, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(mgo_downtime_parse("daily", &w, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(mgo_downtime_parse("daily 01:00-02:00 extra", &w, why, sizeof why) ==
              MGO_ERR_INVALID);
}

static void test_active(void)
{
    struct mgo_downtime w[2];
    char why[256];
    CU_ASSERT_FATAL(mgo_downtime_parse("Mon-Fri 01:00-03:00", &w[0], why, sizeof why) == MGO_OK);
    time_t end = 0;
    CU_ASSERT(!mgo_downtime_active(w, 1, at(23, 0, 59), NULL)); /* Mon 00:59 */
    CU_ASSERT(mgo_downtime_active(w, 1, at(23, 1, 0), &end));   /* Mon 01:00 */
    CU_ASSERT_EQUAL(end, at(23, 3, 0));
    CU_ASSERT(mgo_downtime_active(w, 1, at(27, 2, 59), NULL)); /* Fri 02:59 */
    CU_ASSERT(!mgo_downtime_active(w, 1, at(27, 3, 0), NULL)); /* end is exclusive */
    CU_ASSERT(!mgo_downtime_active(w, 1, at(28, 2, 0), NULL)); /* Sat */

    /* crossing midnight: belongs to the day it starts on */
    CU_ASSERT_FATAL(mgo_downtime_parse("Fri 22:00-06:00", &w[1], why, sizeof why) == MGO_OK);
    CU_ASSERT(mgo_downtime_active(&w[1], 1, at(27, 23, 0), &end)); /* Fri 23:00 */
    CU_ASSERT_EQUAL(end, at(28, 6, 0));
    CU_ASSERT(mgo_downtime_active(&w[1], 1, at(28, 5, 59), &end)); /* Sat 05:59 */
    CU_ASSERT_EQUAL(end, at(28, 6, 0));
    CU_ASSERT(!mgo_downtime_active(&w[1], 1, at(28, 6, 0), NULL));
    CU_ASSERT(!mgo_downtime_active(&w[1], 1, at(27, 5, 0), NULL)); /* Fri 05:00: Thu not listed */
    /* several windows */
    CU_ASSERT(mgo_downtime_active(w, 2, at(28, 1, 0), NULL));
    CU_ASSERT(!mgo_downtime_active(w, 0, at(23, 1, 0), NULL));
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"parse windows", test_parse},
        {"window arithmetic", test_active},
        {NULL, NULL},
    };
    mgo_test_add_suite("agent.downtime", cases);
}
