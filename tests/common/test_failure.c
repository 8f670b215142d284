/* test_failure.c - error code -> failure class (mgo/failure.h). The table itself is checked
 * against docs/protocol.md 8.3 by scripts/wire_names. */
#include "mgo/failure.h"
#include "mgo_test.h"

static void test_device_codes(void)
{
    CU_ASSERT_EQUAL(mgo_failure_class_of("IO_ERROR"), MGO_FAILURE_DEVICE);
    CU_ASSERT_EQUAL(mgo_failure_class_of("RUNTIME_NOT_FOUND"), MGO_FAILURE_DEVICE);
    CU_ASSERT_EQUAL(mgo_failure_class_of("FETCH_FAILED"), MGO_FAILURE_DEVICE);
}

static void test_app_codes_and_unknown(void)
{
    CU_ASSERT_EQUAL(mgo_failure_class_of("NOT_RUNNING"), MGO_FAILURE_APP);
    CU_ASSERT_EQUAL(mgo_failure_class_of("RUNTIME_FAILED"), MGO_FAILURE_APP);
    /* an unknown code is never excused as the device's */
    CU_ASSERT_EQUAL(mgo_failure_class_of("SOMETHING_NEW"), MGO_FAILURE_APP);
    CU_ASSERT_EQUAL(mgo_failure_class_of("io_error"), MGO_FAILURE_APP);
}

static void test_not_failures(void)
{
    CU_ASSERT_EQUAL(mgo_failure_class_of(NULL), MGO_FAILURE_NONE);
    CU_ASSERT_EQUAL(mgo_failure_class_of(""), MGO_FAILURE_NONE);
    CU_ASSERT_EQUAL(mgo_failure_class_of("CANCELLED"), MGO_FAILURE_NONE);
    CU_ASSERT_STRING_EQUAL(mgo_failure_class_name(MGO_FAILURE_DEVICE), "device");
    CU_ASSERT_STRING_EQUAL(mgo_failure_class_name(MGO_FAILURE_APP), "app");
    CU_ASSERT_STRING_EQUAL(mgo_failure_class_name(MGO_FAILURE_NONE), "none");
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"device-caused codes", test_device_codes},
        {"app-caused and unknown codes", test_app_codes_and_unknown},
        {"codes that are not failures", test_not_failures},
        {NULL, NULL},
    };
    mgo_test_add_suite("failure-class", cases);
}
