/* svid.h - Margo identities: X.509-SVIDs (SPIFFE) as the rc.3 Workload Management API uses
 * them. A WFM client's SPIFFE ID is spiffe://<trust-domain>/margo/wfm/<wfm-id>/client/<id>,
 * the WFM's is spiffe://<trust-domain>/margo/wfm/<wfm-id>; a client derives the identity it
 * expects of the WFM from its own SVID (the URL it connects to is routing only). Segments
 * are RFC 3986 unreserved characters, neither "." nor "..", compared exactly.
 * Wraps OpenSSL (X.509 parsing, the TLS context's peer check). Any thread. */
#ifndef MGO_SVID_H
#define MGO_SVID_H

#include <stddef.h>

#include "mgo/err.h"
#include "mgo/limits.h"

#define MGO_SVID_MAX_SEGMENT 255u
#define MGO_SVID_MAX_URI 1024u

struct mgo_svid_client {
    char trust_domain[MGO_SVID_MAX_SEGMENT + 1];
    char wfm_id[MGO_SVID_MAX_SEGMENT + 1];
    char client_id[MGO_SVID_MAX_SEGMENT + 1];
};

/* Parses a client SPIFFE ID. MGO_ERR_INVALID with why naming the rule. */
mgo_err mgo_svid_parse_client(const char *uri, struct mgo_svid_client *out, char *why,
                              size_t why_len) MGO_MUST_CHECK;

/* The one URI SAN of the first certificate in a PEM file (the leaf of an SVID chain).
 * MGO_ERR_IO (unreadable), MGO_ERR_INVALID (no certificate, no URI SAN or several, longer
 * than MGO_SVID_MAX_URI); why says which. */
mgo_err mgo_svid_file_uri(const char *pem_path, char uri[MGO_SVID_MAX_URI + 1], char *why,
                          size_t why_len) MGO_MUST_CHECK;

/* For a TLS client context (an OpenSSL SSL_CTX, e.g. from libcurl's CURLOPT_SSL_CTX_FUNCTION):
 * besides the usual chain verification, the peer's leaf certificate must carry exactly one
 * URI SAN, equal to expected_uri (borrowed: it must outlive the context). MGO_ERR_INTERNAL
 * when OpenSSL refuses. */
mgo_err mgo_svid_tls_require_peer(void *ssl_ctx, const char *expected_uri) MGO_MUST_CHECK;

#endif
