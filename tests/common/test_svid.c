/* test_svid.c - Margo X.509-SVID identities (common/src/svid.c): client SPIFFE ID parsing
 * and the URI SAN of a certificate file. The TLS peer check runs against the real manager in
 * the agent's HTTP integration test. */
#include <stdio.h>
#include <string.h>

#include "mgo/svid.h"
#include "mgo_test.h"

/* openssl req -x509 ... -addext
 * "subjectAltName=URI:spiffe://example.org/margo/wfm/wfm-1/client/dev-1" */
static const char svid_pem[] = "-----BEGIN CERTIFICATE-----\n"
                               "MIIBtTCCAVugAwIBAgIUDgOEpyF3J8uE9+7D1vH48XEK1bkwCgYIKoZIzj0EAwIw\n"
                               "DzENMAsGA1UECgwEdGVzdDAgFw0yNjEyMDUwOTU3MTBaGA8yMTI2MTExMTA5NTcx\n"
                               "MFowDzENMAsGA1UECgwEdGVzdDBZMBMGByqGSM49AgEGCCqGSM49AwEHA0IABPWC\n"
                               "mrlh+QCjl+MuIYpCNGZYOO8JRoYucJ9FkhBgDJ9LxuXjC3tLEOOZbqmuACnAWrpZ\n"
                               "mZu22+IOgyYOyoBYLiejgZIwgY8wHQYDVR0OBBYEFNnKJPUBaV+8PMuNWGpxMeB9\n"
                               "84GZMB8GA1UdIwQYMBaAFNnKJPUBaV+8PMuNWGpxMeB984GZMA8GA1UdEwEB/wQF\n"
                               "MAMBAf8wPAYDVR0RBDUwM4Yxc3BpZmZlOi8vZXhhbXBsZS5vcmcvbWFyZ28vd2Zt\n"
                               "L3dmbS0xL2NsaWVudC9kZXYtMTAKBggqhkjOPQQDAgNIADBFAiAsnfo0oCfUQX75\n"
                               "h0VDklYT6GUJQ8FIDCnyg7RWHeTXmgIhAJWIA2txPuzC2vtdVdEQsAAm6hblEhfc\n"
                               "+y+sivSQmPSB\n"
                               "-----END CERTIFICATE-----\n";
/* the same with subjectAltName=DNS:localhost (not an SVID) */
static const char plain_pem[] = "-----BEGIN CERTIFICATE-----\n"
                                "MIIBjTCCATOgAwIBAgIUXWEnFuYgavRbqFFqGgtGvXf/CSUwCgYIKoZIzj0EAwIw\n"
                                "EDEOMAwGA1UEAwwFcGxhaW4wIBcNMjYxMjA1MDk1NzEwWhgPMjEyNjExMTEwOTU3\n"
                                "MTBaMBAxDjAMBgNVBAMMBXBsYWluMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n"
                                "6Bmz5/dCvfjYpBPw+o1Cmagcw0tZCCTc+ID93zd6ZbUabejuE/5MgfBW0T18MdYQ\n"
                                "GDF3RdHNs/ZdCx/vtxVfOaNpMGcwHQYDVR0OBBYEFJRLdDpnDNLoP4Ohf5PzIIu7\n"
                                "aqcQMB8GA1UdIwQYMBaAFJRLdDpnDNLoP4Ohf5PzIIu7aqcQMA8GA1UdEwEB/wQF\n"
                                "MAMBAf8wFAYDVR0RBA0wC4IJbG9jYWxob3N0MAoGCCqGSM49BAMCA0gAMEUCIAPE\n"
                                "AXdoJ3UTKUHhKCPi0grRq3FCH/WU/+iaDqzNafedAiEAna84QDOpKJHQmYNDxYkD\n"
                                "KjTzvq2iJ2FLrEkeH/LNgoA=\n"
                                "-----END CERTIFICATE-----\n";

static void test_parse(void)
{
    struct mgo_svid_client id;
    char why[256];
    CU_ASSERT(mgo_svid_parse_client("spiffe://example.org/margo/wfm/wfm-1/client/dev-1", &id, why,
                                    sizeof why) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(id.trust_domain, "example.org");
    CU_ASSERT_STRING_EQUAL(id.wfm_id, "wfm-1");
    CU_ASSERT_STRING_EQUAL(id.client_id, "dev-1");
    const char *bad[] = {
        "https://example.org/margo/wfm/wfm-1/client/dev-1",
        "spiffe://example.org/margo/wfm/wfm-1",                /* the WFM's own */
        "spiffe://example.org/margo/wfm/wfm-1/client/",        /* empty client */
        "spiffe://example.org/margo/wfm/../client/dev-1",      /* dot segment */
        "spiffe://example.org/margo/wfm/wfm-1/client/dev-1/x", /* extra segment */
        "spiffe://example.org/margo/wfm/wfm 1/client/dev-1",   /* reserved character */
        "spiffe://example.org/Margo/wfm/wfm-1/client/dev-1",   /* case-sensitive */
        "spiffe:///margo/wfm/wfm-1/client/dev-1",              /* no trust domain */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        CU_ASSERT(mgo_svid_parse_client(bad[i], &id, why, sizeof why) == MGO_ERR_INVALID);
        CU_ASSERT(why[0] != '\0');
    }
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    CU_ASSERT_FATAL(f != NULL);
    fputs(text, f);
    fclose(f);
}

static void test_file_uri(void)
{
    char dir[256], path[512], uri[MGO_SVID_MAX_URI + 1], why[256];
    mgo_test_tmpdir("svid", dir);
    snprintf(path, sizeof path, "%s/svid.pem", dir);
    write_file(path, svid_pem);
    CU_ASSERT(mgo_svid_file_uri(path, uri, why, sizeof why) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(uri, "spiffe://example.org/margo/wfm/wfm-1/client/dev-1");
    snprintf(path, sizeof path, "%s/plain.pem", dir);
    write_file(path, plain_pem);
    CU_ASSERT(mgo_svid_file_uri(path, uri, why, sizeof why) == MGO_ERR_INVALID);
    CU_ASSERT(strstr(why, "exactly one URI SAN") != NULL);
    snprintf(path, sizeof path, "%s/junk.pem", dir);
    write_file(path, "not a certificate\n");
    CU_ASSERT(mgo_svid_file_uri(path, uri, why, sizeof why) == MGO_ERR_INVALID);
    snprintf(path, sizeof path, "%s/absent.pem", dir);
    CU_ASSERT(mgo_svid_file_uri(path, uri, why, sizeof why) == MGO_ERR_IO);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"client SPIFFE IDs", test_parse},
        {"URI SAN of a certificate file", test_file_uri},
        {NULL, NULL},
    };
    mgo_test_add_suite("common.svid", cases);
}
