/* southbound_id.c - client X.509-SVIDs and the SPIFFE trust bundle (southbound_id.h). */
#include "southbound_id.h"

#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "jw.h"

static bool unreserved(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '~' || c == '-';
}

static bool segment_n_ok(const char *s, size_t len, size_t max)
{
    if (len == 0 || len > max)
        return false;
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        if (!unreserved(s[i]))
            return false;
    }
    return true;
}

bool mgo_sb_segment_ok(const char *s, size_t max)
{
    return s != NULL && segment_n_ok(s, strlen(s), max);
}

/* Consumes "<lit>" at *p. */
static bool eat(const char **p, const char *lit, size_t lit_len)
{
    if (strncmp(*p, lit, lit_len) != 0)
        return false;
    *p += lit_len;
    return true;
}

bool mgo_sb_parse_client_uri(const char *uri, const char *trust_domain, const char *wfm_id,
                             char out[MGO_SB_CLIENT_ID_SIZE], char *why, size_t why_size)
{
    const char *p = uri;
    if (!eat(&p, "spiffe://", 9)) {
        snprintf(why, why_size, "the URI SAN \"%.100s\" is not a spiffe:// ID", uri);
        return false;
    }
    size_t td_len = strlen(trust_domain), wfm_len = strlen(wfm_id);
    if (!eat(&p, trust_domain, td_len) || *p != '/') {
        snprintf(why, why_size, "the SPIFFE ID \"%.100s\" is not of trust domain %s", uri,
                 trust_domain);
        return false;
    }
    if (!eat(&p, "/margo/wfm/", 11) || !eat(&p, wfm_id, wfm_len) || !eat(&p, "/client/", 8)) {
        snprintf(why, why_size,
                 "the SPIFFE ID \"%.100s\" is not spiffe://%s/margo/wfm/%s/client/<client-id>", uri,
                 trust_domain, wfm_id);
        return false;
    }
    if (!segment_n_ok(p, strlen(p), MGO_MAX_DEVICE_ID_LEN)) {
        snprintf(why, why_size,
                 "the client id of \"%.100s\" must be 1..%u of [A-Za-z0-9._~-], not \".\" or "
                 "\"..\"",
                 uri, MGO_MAX_DEVICE_ID_LEN);
        return false;
    }
    snprintf(out, MGO_SB_CLIENT_ID_SIZE, "%s", p);
    return true;
}

/* The one URI SAN of an X.509-SVID (SPIFFE: exactly one), or false. */
static bool svid_uri(X509 *x, char *uri, size_t uri_size, char *why, size_t why_size)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int found = 0;
    for (int i = 0; names && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *gn = sk_GENERAL_NAME_value(names, i);
        if (gn->type != GEN_URI)
            continue;
        found++;
        const ASN1_IA5STRING *s = gn->d.uniformResourceIdentifier;
        int len = ASN1_STRING_length(s);
        const unsigned char *data = ASN1_STRING_get0_data(s);
        if (len <= 0 || (size_t)len >= uri_size || memchr(data, 0, (size_t)len) != NULL)
            found = 99; /* unusable */
        else
            snprintf(uri, uri_size, "%.*s", len, (const char *)data);
    }
    GENERAL_NAMES_free(names);
    if (found != 1) {
        snprintf(why, why_size,
                 found == 0 ? "the certificate has no URI SAN (not an X.509-SVID)"
                            : "the certificate must have exactly one usable URI SAN");
        return false;
    }
    return true;
}

enum mgo_sb_auth mgo_sb_tls_client(struct MHD_Connection *conn, const char *trust_domain,
                                   const char *wfm_id, char out[MGO_SB_CLIENT_ID_SIZE], char *why,
                                   size_t why_size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    gnutls_session_t session = ci ? (gnutls_session_t)ci->tls_session : NULL;
    unsigned int n = 0;
    const gnutls_datum_t *peers = session ? gnutls_certificate_get_peers(session, &n) : NULL;
    if (!peers || n == 0) {
        snprintf(why, why_size, "no client certificate was presented");
        return MGO_SB_AUTH_NO_CERT;
    }
    unsigned int status = 0;
    int rc = gnutls_certificate_verify_peers2(session, &status);
    if (rc < 0 || status != 0) {
        gnutls_datum_t text = {NULL, 0};
        if (rc >= 0 &&
            gnutls_certificate_verification_status_print(status, GNUTLS_CRT_X509, &text, 0) >= 0)
            snprintf(why, why_size, "the client certificate does not verify: %s",
                     (const char *)text.data);
        else
            snprintf(why, why_size, "the client certificate does not verify: %s",
                     gnutls_strerror(rc));
        gnutls_free(text.data);
        return MGO_SB_AUTH_UNTRUSTED;
    }
    const unsigned char *der = peers[0].data;
    X509 *x = d2i_X509(NULL, &der, (long)peers[0].size);
    if (!x) {
        snprintf(why, why_size, "the client certificate cannot be parsed");
        return MGO_SB_AUTH_NOT_SVID;
    }
    enum mgo_sb_auth result = MGO_SB_AUTH_NOT_SVID;
    char uri[512];
    if (X509_check_ca(x) != 0)
        snprintf(why, why_size, "a CA certificate is not an X.509-SVID leaf");
    else if (svid_uri(x, uri, sizeof uri, why, why_size) &&
             mgo_sb_parse_client_uri(uri, trust_domain, wfm_id, out, why, why_size))
        result = MGO_SB_AUTH_OK;
    X509_free(x);
    return result;
}

/* ---- the trust bundle ------------------------------------------------------------------ */

static void b64(struct mgo_jw *w, const unsigned char *data, size_t len, bool url)
{
    char enc[8192];
    if (len > (sizeof enc / 4) * 3 - 3) {
        w->err = MGO_ERR_LIMIT;
        return;
    }
    int n = EVP_EncodeBlock((unsigned char *)enc, data, (int)len);
    if (url) {
        while (n > 0 && enc[n - 1] == '=')
            n--;
        for (int i = 0; i < n; i++)
            enc[i] = enc[i] == '+' ? '-' : enc[i] == '/' ? '_' : enc[i];
    }
    mgo_jw_strn(w, enc, (size_t)n);
}

/* A big-number parameter of pkey as base64url (unsigned, big-endian, optionally padded to
 * pad bytes as JWK EC coordinates require). */
static void bn_member(struct mgo_jw *w, const EVP_PKEY *pkey, const char *param, const char *key,
                      int pad)
{
    BIGNUM *bn = NULL;
    unsigned char buf[1024];
    int len = 0;
    if (EVP_PKEY_get_bn_param(pkey, param, &bn) != 1 || BN_num_bytes(bn) > (int)sizeof buf ||
        (len = pad > 0 ? BN_bn2binpad(bn, buf, pad) : BN_bn2bin(bn, buf)) < 0) {
        w->err = MGO_ERR_INVALID;
    } else {
        mgo_jw_key(w, key);
        b64(w, buf, (size_t)len, true);
    }
    BN_free(bn);
}

static mgo_err key_members(struct mgo_jw *w, X509 *x)
{
    EVP_PKEY *pkey = X509_get0_pubkey(x);
    if (!pkey)
        return MGO_ERR_INVALID;
    if (EVP_PKEY_is_a(pkey, "RSA")) {
        mgo_jw_kstr(w, "kty", "RSA");
        bn_member(w, pkey, OSSL_PKEY_PARAM_RSA_N, "n", 0);
        bn_member(w, pkey, OSSL_PKEY_PARAM_RSA_E, "e", 0);
        return MGO_OK;
    }
    if (!EVP_PKEY_is_a(pkey, "EC"))
        return MGO_ERR_INVALID;
    char group[64] = "";
    size_t glen = 0;
    if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                       &glen) != 1)
        return MGO_ERR_INVALID;
    static const struct {
        const char *group, *crv;
        int bytes;
    } curves[] = {
        {"prime256v1", "P-256", 32}, {"secp384r1", "P-384", 48}, {"secp521r1", "P-521", 66}};
    for (size_t i = 0; i < sizeof curves / sizeof curves[0]; i++) {
        if (strcmp(group, curves[i].group) != 0)
            continue;
        mgo_jw_kstr(w, "kty", "EC");
        mgo_jw_kstr(w, "crv", curves[i].crv);
        bn_member(w, pkey, OSSL_PKEY_PARAM_EC_PUB_X, "x", curves[i].bytes);
        bn_member(w, pkey, OSSL_PKEY_PARAM_EC_PUB_Y, "y", curves[i].bytes);
        return MGO_OK;
    }
    return MGO_ERR_INVALID;
}

mgo_err mgo_sb_trust_bundle(const void *ca_pem, size_t ca_len, struct mgo_buf *out)
{
    if (ca_len > INT32_MAX)
        return MGO_ERR_LIMIT;
    BIO *bio = BIO_new_mem_buf(ca_pem, (int)ca_len);
    if (!bio)
        return MGO_ERR_NOMEM;
    struct mgo_jw w;
    mgo_jw_init(&w, out);
    mgo_jw_obj(&w);
    mgo_jw_key(&w, "keys");
    mgo_jw_arr(&w);
    size_t n = 0;
    mgo_err err = MGO_OK;
    X509 *x;
    while (!err && (x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
        unsigned char *der = NULL;
        int der_len = i2d_X509(x, &der);
        mgo_jw_obj(&w);
        err = der_len > 0 ? key_members(&w, x) : MGO_ERR_INVALID;
        mgo_jw_kstr(&w, "use", "x509-svid");
        mgo_jw_key(&w, "x5c");
        mgo_jw_arr(&w);
        if (der_len > 0)
            b64(&w, der, (size_t)der_len, false);
        mgo_jw_arr_end(&w);
        mgo_jw_obj_end(&w);
        OPENSSL_free(der);
        X509_free(x);
        n++;
    }
    BIO_free(bio);
    ERR_clear_error(); /* the end of the PEM data */
    mgo_jw_arr_end(&w);
    mgo_jw_ku64(&w, "spiffe_sequence", 1);
    mgo_jw_ku64(&w, "spiffe_refresh_hint", 3600);
    mgo_jw_obj_end(&w);
    if (!err && n == 0)
        err = MGO_ERR_INVALID; /* a bundle without X.509 anchors is useless */
    return err ? err : w.err;
}
