/* cunit_main.c - the main() of every CUnit test binary. */
#include "mgo_test.h"

#include <CUnit/Basic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/log.h"

#include <MQTTAsync.h>

void mgo_test_add_suite(const char *suite, const struct mgo_test_case *cases)
{
    CU_pSuite s = CU_add_suite(suite, NULL, NULL);
    if (s == NULL) {
        fprintf(stderr, "CU_add_suite(%s): %s\n", suite, CU_get_error_msg());
        exit(2);
    }
    for (const struct mgo_test_case *c = cases; c->name != NULL; c++) {
        if (CU_add_test(s, c->name, c->fn) == NULL) {
            fprintf(stderr, "CU_add_test(%s): %s\n", c->name, CU_get_error_msg());
            exit(2);
        }
    }
}

/* Paho tears its global state down when the last client is destroyed and builds it again for
 * the next one. Tests create and destroy many clients from several threads; Paho 1.3.12 can then
 * log from a background thread after Log_terminate(), which allocates a fresh trace queue that is
 * never freed (a 124,800-byte LeakSanitizer report from inside libpaho-mqtt3as). The daemons hold
 * one client for their whole life and never hit this. Here one unconnected client is created
 * first and kept for the life of the process, so the global state is set up once and never torn
 * down under running threads. */
static MQTTAsync paho_pin;

static void pin_paho(void)
{
    MQTTAsync_createOptions o = MQTTAsync_createOptions_initializer5;
    if (MQTTAsync_createWithOptions(&paho_pin, "tcp://127.0.0.1:1", "mgo-test-pin",
                                    MQTTCLIENT_PERSISTENCE_NONE, NULL, &o) != MQTTASYNC_SUCCESS) {
        fprintf(stderr, "MQTTAsync_createWithOptions (pin) failed\n");
        exit(2);
    }
}

int main(void)
{
    pin_paho();
    const char *level = getenv("MGO_TEST_LOG");
    enum mgo_log_level lvl = MGO_LOG_WARN;
    if (level == NULL || mgo_log_level_parse(level, &lvl) != MGO_OK)
        lvl = MGO_LOG_WARN;
    mgo_log_set_level(lvl);

    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "CU_initialize_registry: %s\n", CU_get_error_msg());
        return 2;
    }
    mgo_test_register();
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
    unsigned run = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (run == 0) {
        fprintf(stderr, "no test ran\n");
        return 1;
    }
    return failed == 0 ? 0 : 1;
}
