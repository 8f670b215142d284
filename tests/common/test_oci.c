/* test_oci.c - OCI references (mgo_oci_split_ref) and the loopback rule margoctl uses for
 * plain http (mgo_oci_host_is_loopback). Fetching is tested against real registries in
 * tests/agent/test_runtime.c and tests/manager/test_oci_app.c. */
#include "mgo_test.h"

#include <string.h>

#include "mgo/oci.h"

static void test_split_ref(void)
{
    char repo[128], rev[128], host[256], why[256];
    CU_ASSERT_EQUAL(mgo_oci_split_ref("oci://127.0.0.1:5000/margo/app:1.2", repo, sizeof repo, rev,
                                      sizeof rev, host, why, sizeof why),
                    MGO_OK);
    CU_ASSERT_STRING_EQUAL(repo, "oci://127.0.0.1:5000/margo/app");
    CU_ASSERT_STRING_EQUAL(rev, "1.2");
    CU_ASSERT_STRING_EQUAL(host, "127.0.0.1:5000");
    const char *d = "sha256:0123456789012345678901234567890123456789012345678901234567890123";
    char ref[256];
    snprintf(ref, sizeof ref, "oci://reg.example.com/a/b@%s", d);
    CU_ASSERT_EQUAL(
        mgo_oci_split_ref(ref, repo, sizeof repo, rev, sizeof rev, host, why, sizeof why), MGO_OK);
    CU_ASSERT_STRING_EQUAL(repo, "oci://reg.example.com/a/b");
    CU_ASSERT_STRING_EQUAL(rev, d);
    CU_ASSERT_STRING_EQUAL(host, "reg.example.com");
    /* no tag (the port's colon is not one), no scheme, no name, too long */
    static const char *const bad[] = {"oci://127.0.0.1:5000/margo/app",
                                      "https://x/y:1",
                                      "oci:///y:1",
                                      "oci://x/:1",
                                      "oci://x/y:",
                                      NULL};
    for (size_t i = 0; bad[i] != NULL; i++) {
        why[0] = '\0';
        CU_ASSERT_NOT_EQUAL(
            mgo_oci_split_ref(bad[i], repo, sizeof repo, rev, sizeof rev, NULL, why, sizeof why),
            MGO_OK);
        CU_ASSERT_TRUE(strncmp(why, "reference: ", 11) == 0);
    }
    char small[8];
    CU_ASSERT_EQUAL(mgo_oci_split_ref("oci://host/longname:1", small, sizeof small, rev, sizeof rev,
                                      NULL, why, sizeof why),
                    MGO_ERR_LIMIT);
}

static void test_loopback(void)
{
    CU_ASSERT_TRUE(mgo_oci_host_is_loopback("127.0.0.1:5000"));
    CU_ASSERT_TRUE(mgo_oci_host_is_loopback("127.1.2.3"));
    CU_ASSERT_TRUE(mgo_oci_host_is_loopback("localhost:5000"));
    CU_ASSERT_TRUE(mgo_oci_host_is_loopback("[::1]:5000"));
    CU_ASSERT_FALSE(mgo_oci_host_is_loopback("localhost.example.com"));
    CU_ASSERT_FALSE(mgo_oci_host_is_loopback("128.0.0.1"));
    CU_ASSERT_FALSE(mgo_oci_host_is_loopback("127.example.com:5000"));
    CU_ASSERT_FALSE(mgo_oci_host_is_loopback("[::2]:5000"));
    CU_ASSERT_FALSE(mgo_oci_host_is_loopback("registry.example.com"));
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"references split", test_split_ref},
        {"loopback registries", test_loopback},
        {NULL, NULL},
    };
    mgo_test_add_suite("oci", cases);
}
