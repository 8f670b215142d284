/* test_sign.c - ES256 document signatures (mgo/sign.h): sign + verify with the keys that
 * broker-config/pki.sh makes; refusal of unsigned, wrong-alg, forged, other-key, replayed
 * across devices; the digest is unchanged by signing; key loading refuses wrong key types. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mgo/margo.h"
#include "mgo/sign.h"
#include "mgo_test.h"
#include "sec_test_util.h"

static char g_dir[256];
static struct mgo_sign_key *g_sign;      /* signing.key */
static struct mgo_sign_key *g_other;     /* manager.key: a valid P-256 key nobody trusts */
static struct mgo_verify_key *g_pub;     /* signing.pub */
static struct mgo_verify_key *g_mgr_crt; /* manager.crt (certificate form) */

static const char MANIFEST_YAML[] =
    "manifestVersion: 7\n"
    "bundle: null\n"
    "deviceId: dev-a\n"
    "deployments:\n"
    "  - deploymentId: 8b8f5c2e-1d3a-4c5b-9e7f-0a1b2c3d4e5f\n"
    "    digest: sha256:0000000000000000000000000000000000000000000000000000000000000000\n";

static const char DEPLOYMENT_YAML[] =
    "apiVersion: application.margo.org/v1alpha1\n"
    "kind: ApplicationDeployment\n"
    "id: 8b8f5c2e-1d3a-4c5b-9e7f-0a1b2c3d4e5f\n"
    "metadata:\n"
    "  deviceId: dev-a\n"
    "  name: web\n"
    "  namespace: default\n"
    "  annotations: {id: 8b8f5c2e-1d3a-4c5b-9e7f-0a1b2c3d4e5f, applicationId: web-app}\n"
    "spec:\n"
    "  parameters:\n"
    "    greeting: {value: 'x; rm -rf /', targets: [{pointer: GREETING, components: [web]}]}\n"
    "x-margo-mqtt-extensions: {note: kept}\n";

static int suite_init(void)
{
    sec_pki_make(g_dir, "--device dev-a");
    char p[512];
    if (mgo_sign_key_load(sec_pki_path(g_dir, "signing.key", p), &g_sign) != MGO_OK ||
        mgo_sign_key_load(sec_pki_path(g_dir, "manager.key", p), &g_other) != MGO_OK ||
        mgo_verify_key_load(sec_pki_path(g_dir, "signing.pub", p), &g_pub) != MGO_OK ||
        mgo_verify_key_load(sec_pki_path(g_dir, "manager.crt", p), &g_mgr_crt) != MGO_OK)
        return 1;
    return 0;
}

static int suite_clean(void)
{
    mgo_sign_key_free(g_sign);
    mgo_sign_key_free(g_other);
    mgo_verify_key_free(g_pub);
    mgo_verify_key_free(g_mgr_crt);
    mgo_test_rm_rf(g_dir);
    return 0;
}

static struct mgo_value parse(struct mgo_arena *arena, const char *yaml)
{
    struct mgo_problems p;
    mgo_problems_init(&p);
    struct mgo_value v;
    CU_ASSERT_FATAL(mgo_value_from_yaml(yaml, strlen(yaml), arena, &v, &p) == MGO_OK);
    return v;
}

/* Mutable access to a member of a tree the test built itself (arena memory). */
static struct mgo_value *member(struct mgo_value *map, const char *key)
{
    return (struct mgo_value *)mgo_value_get(map, key);
}

static struct mgo_value *sig_field(struct mgo_value *root, const char *key)
{
    return member(member(member(root, MGO_EXT_KEY), "signature"), key);
}

static mgo_err verify1(const struct mgo_verify_key *k, const struct mgo_value *root,
                       const char *device, char *why)
{
    const struct mgo_verify_key *keys[1] = {k};
    return mgo_sign_verify_document(keys, 1, root, device, why);
}

static void test_sign_then_verify(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_value doc = parse(&arena, MANIFEST_YAML), signed_doc;
    CU_ASSERT_FATAL(mgo_sign_document(g_sign, &doc, &arena, &signed_doc) == MGO_OK);
    char why[MGO_SIGN_WHY_SIZE];
    CU_ASSERT_EQUAL(verify1(g_pub, &signed_doc, "dev-a", why), MGO_OK);
    /* the wire shape of docs/protocol.md 5.2 */
    const struct mgo_value *alg = sig_field(&signed_doc, "alg");
    const struct mgo_value *kid = sig_field(&signed_doc, "keyId");
    const struct mgo_value *val = sig_field(&signed_doc, "value");
    CU_ASSERT_FATAL(alg && kid && val);
    CU_ASSERT_STRING_EQUAL(alg->as.str.ptr, "ES256");
    CU_ASSERT_STRING_EQUAL(kid->as.str.ptr, mgo_verify_key_id(g_pub));
    CU_ASSERT_EQUAL(val->kind, MGO_V_BIN);
    CU_ASSERT(val->as.str.len >= 8 && val->as.str.len <= MGO_SIGN_MAX_DER);
    CU_ASSERT_EQUAL((unsigned char)val->as.str.ptr[0], 0x30); /* DER SEQUENCE */
    /* the original tree is untouched and has no signature */
    CU_ASSERT_EQUAL(verify1(g_pub, &doc, NULL, why), MGO_ERR_CRYPTO);
    mgo_arena_cleanup(&arena);
}

static void test_digest_unchanged_and_wire_round_trip(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_value doc = parse(&arena, DEPLOYMENT_YAML), signed_doc;
    char d1[MGO_DIGEST_STR_SIZE], d2[MGO_DIGEST_STR_SIZE];
    CU_ASSERT_FATAL(mgo_doc_digest(&doc, d1) == MGO_OK);
    CU_ASSERT_FATAL(mgo_sign_document(g_sign, &doc, &arena, &signed_doc) == MGO_OK);
    CU_ASSERT_FATAL(mgo_doc_digest(&signed_doc, d2) == MGO_OK);
    CU_ASSERT_STRING_EQUAL(d1, d2);
    /* other extension members survive signing */
    const struct mgo_value *note = mgo_value_get(mgo_value_get(&signed_doc, MGO_EXT_KEY), "note");
    CU_ASSERT_FATAL(note != NULL);
    CU_ASSERT_STRING_EQUAL(note->as.str.ptr, "kept");
    /* encode as a publisher does, verify from the bytes as a receiver does */
    struct mgo_buf wire;
    mgo_buf_init(&wire, MGO_MAX_MESSAGE_BYTES);
    CU_ASSERT_FATAL(mgo_value_to_msgpack(&signed_doc, &wire) == MGO_OK);
    const struct mgo_verify_key *keys[1] = {g_pub};
    char why[MGO_SIGN_WHY_SIZE];
    struct mgo_arena rx;
    mgo_arena_init(&rx, MGO_MAX_DOC_ARENA_BYTES);
    CU_ASSERT_EQUAL(mgo_sign_verify_msgpack(keys, 1, wire.data, wire.len, "dev-a", &rx, why),
                    MGO_OK);
    /* one flipped byte in the signed content (the parameter value) -> refused */
    uint8_t *hit = memmem(wire.data, wire.len, "rm -rf", 6);
    CU_ASSERT_FATAL(hit != NULL);
    hit[0] = 'R';
    CU_ASSERT_EQUAL(mgo_sign_verify_msgpack(keys, 1, wire.data, wire.len, "dev-a", &rx, why),
                    MGO_ERR_CRYPTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "does not verify"));
    /* garbage bytes are a decoding error, not a crash */
    CU_ASSERT_NOT_EQUAL(mgo_sign_verify_msgpack(keys, 1, "\xc1", 1, NULL, &rx, why), MGO_OK);
    mgo_buf_cleanup(&wire);
    mgo_arena_cleanup(&rx);
    mgo_arena_cleanup(&arena);
}

static void test_refuses_unsigned(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_value doc = parse(&arena, DEPLOYMENT_YAML); /* ext present, no signature */
    char why[MGO_SIGN_WHY_SIZE];
    CU_ASSERT_EQUAL(verify1(g_pub, &doc, NULL, why), MGO_ERR_CRYPTO);
    CU_ASSERT_STRING_EQUAL(why, "x-margo-mqtt-extensions.signature: missing (unsigned document)");
    struct mgo_value bare = parse(&arena, MANIFEST_YAML); /* no ext at all */
    CU_ASSERT_EQUAL(verify1(g_pub, &bare, NULL, why), MGO_ERR_CRYPTO);
    struct mgo_value not_map = parse(&arena, "[1, 2]");
    CU_ASSERT_EQUAL(verify1(g_pub, &not_map, NULL, why), MGO_ERR_CRYPTO);
    mgo_arena_cleanup(&arena);
}

static void test_refuses_wrong_alg_and_bad_fields(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_value doc = parse(&arena, MANIFEST_YAML), s;
    CU_ASSERT_FATAL(mgo_sign_document(g_sign, &doc, &arena, &s) == MGO_OK);
    char why[MGO_SIGN_WHY_SIZE];
    /* the signature itself stays valid (alg is outside the signed bytes): only the rule refuses */
    static const char *const algs[] = {"none", "ES384", "es256", "HS256"};
    struct mgo_value *alg = sig_field(&s, "alg");
    for (size_t i = 0; i < sizeof algs / sizeof algs[0]; i++) {
        *alg = mgo_value_str(algs[i]);
        alg->as.str.len = strlen(algs[i]);
        CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_ERR_CRYPTO);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, ".alg: must be \"ES256\""));
    }
    *alg = mgo_value_uint(1);
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_ERR_CRYPTO);
    *alg = mgo_value_str("ES256");
    alg->as.str.len = 5;
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_OK);
    /* value as str instead of bin, or truncated */
    struct mgo_value *val = sig_field(&s, "value");
    struct mgo_value saved = *val;
    val->kind = MGO_V_STR;
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_ERR_CRYPTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, ".value: required bin"));
    *val = saved;
    val->as.str.len = saved.as.str.len - 1;
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_ERR_CRYPTO);
    *val = saved;
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_OK);
    mgo_arena_cleanup(&arena);
}

static void test_refuses_forged(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_value doc = parse(&arena, MANIFEST_YAML), s;
    CU_ASSERT_FATAL(mgo_sign_document(g_sign, &doc, &arena, &s) == MGO_OK);
    char why[MGO_SIGN_WHY_SIZE];
    /* a bumped manifestVersion keeps the old signature: refused */
    struct mgo_value *mv = member(&s, "manifestVersion");
    CU_ASSERT_FATAL(mv != NULL);
    mv->as.u = 8;
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_ERR_CRYPTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "does not verify"));
    mv->as.u = 7;
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_OK);
    /* one flipped bit in the signature: refused */
    struct mgo_value *val = sig_field(&s, "value");
    char *bytes = (char *)val->as.str.ptr;
    bytes[val->as.str.len - 1] ^= 0x01;
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_ERR_CRYPTO);
    mgo_arena_cleanup(&arena);
}

static void test_refuses_other_key(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_value doc = parse(&arena, MANIFEST_YAML), s;
    CU_ASSERT_FATAL(mgo_sign_document(g_other, &doc, &arena, &s) == MGO_OK);
    char why[MGO_SIGN_WHY_SIZE];
    /* honest keyId of an unknown key */
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_ERR_CRYPTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "is not a configured manager key"));
    /* re-signed by another key that claims the trusted keyId */
    struct mgo_value *kid = sig_field(&s, "keyId");
    *kid = mgo_value_str(mgo_verify_key_id(g_pub));
    kid->as.str.len = strlen(kid->as.str.ptr);
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_ERR_CRYPTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "does not verify"));
    /* the other key's certificate verifies it (certificate form of a verification key) */
    CU_ASSERT_FATAL(mgo_sign_document(g_other, &doc, &arena, &s) == MGO_OK);
    CU_ASSERT_EQUAL(verify1(g_mgr_crt, &s, NULL, why), MGO_OK);
    /* key rotation: a list of trusted keys, any may sign */
    const struct mgo_verify_key *both[2] = {g_pub, g_mgr_crt};
    CU_ASSERT_EQUAL(mgo_sign_verify_document(both, 2, &s, NULL, why), MGO_OK);
    CU_ASSERT_EQUAL(mgo_sign_verify_document(both, 0, &s, NULL, why), MGO_ERR_CRYPTO);
    mgo_arena_cleanup(&arena);
}

static void test_refuses_other_device(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    char why[MGO_SIGN_WHY_SIZE];
    const char *docs[2] = {MANIFEST_YAML, DEPLOYMENT_YAML};
    for (int i = 0; i < 2; i++) {
        struct mgo_value doc = parse(&arena, docs[i]), s;
        CU_ASSERT_FATAL(mgo_sign_document(g_sign, &doc, &arena, &s) == MGO_OK);
        CU_ASSERT_EQUAL(verify1(g_pub, &s, "dev-a", why), MGO_OK);
        CU_ASSERT_EQUAL(verify1(g_pub, &s, "dev-b", why), MGO_ERR_CRYPTO);
        CU_ASSERT_PTR_NOT_NULL(strstr(why, "replayed from another device"));
    }
    /* signed without naming a device: refused when the receiver binds to one */
    struct mgo_value anon = parse(&arena, "manifestVersion: 1\nbundle: null\ndeployments: []\n"), s;
    CU_ASSERT_FATAL(mgo_sign_document(g_sign, &anon, &arena, &s) == MGO_OK);
    CU_ASSERT_EQUAL(verify1(g_pub, &s, NULL, why), MGO_OK);
    CU_ASSERT_EQUAL(verify1(g_pub, &s, "dev-a", why), MGO_ERR_CRYPTO);
    CU_ASSERT_PTR_NOT_NULL(strstr(why, "must name its device"));
    mgo_arena_cleanup(&arena);
}

static void test_resign_replaces_signature(void)
{
    struct mgo_arena arena;
    mgo_arena_init(&arena, MGO_MAX_DOC_ARENA_BYTES);
    struct mgo_value doc = parse(&arena, MANIFEST_YAML), s1, s2;
    CU_ASSERT_FATAL(mgo_sign_document(g_other, &doc, &arena, &s1) == MGO_OK);
    CU_ASSERT_FATAL(mgo_sign_document(g_sign, &s1, &arena, &s2) == MGO_OK);
    char why[MGO_SIGN_WHY_SIZE];
    CU_ASSERT_EQUAL(verify1(g_pub, &s2, "dev-a", why), MGO_OK);
    CU_ASSERT_EQUAL(verify1(g_mgr_crt, &s2, "dev-a", why), MGO_ERR_CRYPTO);
    CU_ASSERT_EQUAL(mgo_value_get(&s2, MGO_EXT_KEY)->as.map.len, 1u);
    mgo_arena_cleanup(&arena);
}

/* keyId is reproducible by anyone with the public key: sha256 of the DER SubjectPublicKeyInfo. */
static void test_key_id_matches_openssl_cli(void)
{
    char p[512], cmd[1200];
    snprintf(cmd, sizeof cmd,
             "openssl pkey -pubin -in '%s' -outform DER | openssl dgst -sha256 -r > '%s/kid'",
             sec_pki_path(g_dir, "signing.pub", p), g_dir);
    CU_ASSERT_FATAL(mgo_test_sh("%s", cmd) == 0);
    char kidpath[512];
    snprintf(kidpath, sizeof kidpath, "%s/kid", g_dir);
    char *hex = mgo_test_read_file(kidpath, NULL);
    char expect[MGO_DIGEST_STR_SIZE];
    snprintf(expect, sizeof expect, "sha256:%.64s", hex);
    free(hex);
    CU_ASSERT_STRING_EQUAL(mgo_verify_key_id(g_pub), expect);
    CU_ASSERT_STRING_EQUAL(mgo_sign_key_id(g_sign), expect);
}

static void test_key_loading_refusals(void)
{
    char p[512], cmd[1400];
    struct mgo_sign_key *sk = NULL;
    struct mgo_verify_key *vk = NULL;
    /* missing file */
    CU_ASSERT_EQUAL(mgo_sign_key_load("/nonexistent/signing.key", &sk), MGO_ERR_NOT_FOUND);
    CU_ASSERT_EQUAL(mgo_verify_key_load("/nonexistent/signing.pub", &vk), MGO_ERR_NOT_FOUND);
    /* a public key or certificate is not a signing key; a private key is not a public key */
    CU_ASSERT_EQUAL(mgo_sign_key_load(sec_pki_path(g_dir, "signing.pub", p), &sk), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_sign_key_load(sec_pki_path(g_dir, "ca.crt", p), &sk), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_verify_key_load(sec_pki_path(g_dir, "signing.key", p), &vk),
                    MGO_ERR_INVALID);
    /* other key types and curves; an encrypted key (no passphrase prompt, refused) */
    snprintf(cmd, sizeof cmd,
             "cd '%s' && openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out rsa.key "
             "2>/dev/null && openssl pkey -in rsa.key -pubout -out rsa.pub && "
             "openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out p384.key && "
             "openssl genpkey -algorithm ED25519 -out ed.key && "
             "openssl pkey -in pki/signing.key -aes256 -passout pass:secret -out enc.key && "
             "printf 'not a key\\n' > junk.key",
             g_dir);
    CU_ASSERT_FATAL(mgo_test_sh("%s", cmd) == 0);
    static const char *const bad_private[] = {"rsa.key", "p384.key", "ed.key", "enc.key",
                                              "junk.key"};
    for (size_t i = 0; i < sizeof bad_private / sizeof bad_private[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", g_dir, bad_private[i]);
        sk = NULL;
        CU_ASSERT_EQUAL(mgo_sign_key_load(p, &sk), MGO_ERR_INVALID);
        CU_ASSERT_PTR_NULL(sk);
    }
    snprintf(p, sizeof p, "%s/rsa.pub", g_dir);
    CU_ASSERT_EQUAL(mgo_verify_key_load(p, &vk), MGO_ERR_INVALID);
    CU_ASSERT_EQUAL(mgo_verify_key_from_pem("", 0, &vk), MGO_ERR_INVALID);
    CU_ASSERT_PTR_NULL(vk);
}

void mgo_test_register(void)
{
    static const struct mgo_test_case cases[] = {
        {"sign then verify (wire shape of protocol 5.2)", test_sign_then_verify},
        {"digest unchanged by signing; verify from bytes",
         test_digest_unchanged_and_wire_round_trip},
        {"unsigned refused", test_refuses_unsigned},
        {"wrong alg and malformed fields refused", test_refuses_wrong_alg_and_bad_fields},
        {"forged content or signature refused", test_refuses_forged},
        {"signed by another key refused; rotation list", test_refuses_other_key},
        {"signed for another device refused", test_refuses_other_device},
        {"re-signing replaces the signature", test_resign_replaces_signature},
        {"keyId = sha256 of the public key DER", test_key_id_matches_openssl_cli},
        {"key loading refuses wrong types", test_key_loading_refusals},
        {NULL, NULL},
    };
    CU_pSuite s = CU_add_suite("sign", suite_init, suite_clean);
    for (size_t i = 0; s != NULL && cases[i].name != NULL; i++)
        CU_add_test(s, cases[i].name, cases[i].fn);
}
