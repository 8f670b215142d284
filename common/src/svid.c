/* svid.c - Margo identities: X.509-SVIDs (svid.h). */
#include "mgo/svid.h"

#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static bool segment_ok(const char *s, size_t n)
{
    if (n == 0 || n > MGO_SVID_MAX_SEGMENT || (n == 1 && s[0] == '.') ||
        (n == 2 && s[0] == '.' && s[1] == '.'))
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '.' || c == '_' || c == '~'))
            return false;
    }
    return true;
}

/* Copies the segment starting at *p (up to '/' or the end) and advances past it. */
static bool take_segment(const char **p, char *out, size_t out_size)
{
    const char *end = strchr(*p, '/');
    size_t n = end ? (size_t)(end - *p) : strlen(*p);
    if (!segment_ok(*p, n) || n >= out_size)
        return false;
    memcpy(out, *p, n);
    out[n] = '\0';
    *p += n;
    return true;
}

static bool take_literal(const char **p, const char *lit)
{
    size_t n = strlen(lit);
    if (strncmp(*p, lit, n) != 0)
        return false;
    *p += n;
    return true;
}

mgo_err mgo_svid_parse_client(const char *uri, struct mgo_svid_client *out, char *why,
                              size_t why_len)
{
    const char *p = uri;
    memset(out, 0, sizeof *out);
    if (!take_literal(&p, "spiffe://")) {
        snprintf(why, why_len, "\"%.80s\" is not a SPIFFE ID (spiffe://...)", uri);
        return MGO_ERR_INVALID;
    }
    if (!take_segment(&p, out->trust_domain, sizeof out->trust_domain) ||
        !take_literal(&p, "/margo/wfm/") || !take_segment(&p, out->wfm_id, sizeof out->wfm_id) ||
        !take_literal(&p, "/client/") || !take_segment(&p, out->client_id, sizeof out->client_id) ||
        *p != '\0') {
        snprintf(why, why_len,
                 "\"%.120s\" is not spiffe://<trust-domain>/margo/wfm/<wfm-id>/client/<client-id> "
                 "(segments of [A-Za-z0-9._~-], not . or ..)",
                 uri);
        return MGO_ERR_INVALID;
    }
    return MGO_OK;
}

/* The URI SANs of cert: how many, and the first (cut to out_size). */
static int uri_sans(X509 *cert, char *out, size_t out_size, bool *too_long)
{
    GENERAL_NAMES *names = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
    int count = 0;
    *too_long = false;
    for (int i = 0; names != NULL && i < sk_GENERAL_NAME_num(names); i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(names, i);
        if (g->type != GEN_URI)
            continue;
        if (count++ == 0) {
            const unsigned char *d = ASN1_STRING_get0_data(g->d.uniformResourceIdentifier);
            int n = ASN1_STRING_length(g->d.uniformResourceIdentifier);
            if (n < 0 || (size_t)n >= out_size || memchr(d, '\0', (size_t)n) != NULL) {
                *too_long = true;
                out[0] = '\0';
            } else {
                memcpy(out, d, (size_t)n);
                out[n] = '\0';
            }
        }
    }
    GENERAL_NAMES_free(names);
    return count;
}

mgo_err mgo_svid_file_uri(const char *pem_path, char uri[MGO_SVID_MAX_URI + 1], char *why,
                          size_t why_len)
{
    FILE *f = fopen(pem_path, "r");
    if (f == NULL) {
        snprintf(why, why_len, "%s: cannot be read", pem_path);
        return MGO_ERR_IO;
    }
    X509 *cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (cert == NULL) {
        snprintf(why, why_len, "%s: no PEM certificate", pem_path);
        return MGO_ERR_INVALID;
    }
    bool too_long = false;
    int n = uri_sans(cert, uri, MGO_SVID_MAX_URI + 1, &too_long);
    X509_free(cert);
    if (n != 1 || too_long) {
        snprintf(why, why_len,
                 "%s: an X.509-SVID has exactly one URI SAN of at most %u bytes "
                 "(this one has %d)",
                 pem_path, MGO_SVID_MAX_URI, n);
        return MGO_ERR_INVALID;
    }
    return MGO_OK;
}

static int ex_index = -1;
static pthread_once_t ex_once = PTHREAD_ONCE_INIT;
static void ex_init(void)
{
    ex_index = SSL_CTX_get_ex_new_index(0, NULL, NULL, NULL, NULL);
}

static int verify_cb(int ok, X509_STORE_CTX *store)
{
    if (!ok || X509_STORE_CTX_get_error_depth(store) != 0)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx());
    const char *want = ssl ? SSL_CTX_get_ex_data(SSL_get_SSL_CTX(ssl), ex_index) : NULL;
    X509 *cert = X509_STORE_CTX_get_current_cert(store);
    char got[MGO_SVID_MAX_URI + 1];
    bool too_long = false;
    if (want != NULL && cert != NULL && uri_sans(cert, got, sizeof got, &too_long) == 1 &&
        !too_long && strcmp(got, want) == 0)
        return 1;
    X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
    return 0;
}

mgo_err mgo_svid_tls_require_peer(void *ssl_ctx, const char *expected_uri)
{
    pthread_once(&ex_once, ex_init);
    if (ex_index < 0 || SSL_CTX_set_ex_data(ssl_ctx, ex_index, (void *)expected_uri) != 1)
        return MGO_ERR_INTERNAL;
    SSL_CTX_set_verify(ssl_ctx, SSL_VERIFY_PEER, verify_cb);
    return MGO_OK;
}
