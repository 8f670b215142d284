/* southbound_id.h - identity on the southbound Margo API (docs/margo-http.md): the client's
 * X.509-SVID (verified by GnuTLS against the client CA that libmicrohttpd's TLS session
 * holds, read with OpenSSL), its SPIFFE ID, and the trust bundle published at
 * /.well-known/spiffe/bundle.json (a JWK set with x5c).
 *
 * The client id is the last segment of spiffe://<trust-domain>/margo/wfm/<wfm-id>/client/<id>;
 * margo-mqtt takes it as the device id. Any thread; nothing here touches the store. */
#ifndef MGO_MGR_SOUTHBOUND_ID_H
#define MGO_MGR_SOUTHBOUND_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "mgo/buf.h"
#include "mgo/err.h"
#include "mgo/limits.h"

/* A SPIFFE segment (trust domain, wfm id) in the options: at most this long. */
#define MGO_SB_MAX_SEGMENT 255u
#define MGO_SB_CLIENT_ID_SIZE (MGO_MAX_DEVICE_ID_LEN + 1u)

/* Whether s is a usable SPIFFE path segment: 1..max bytes of RFC 3986 unreserved characters
 * ([A-Za-z0-9._~-]), and neither "." nor "..". */
bool mgo_sb_segment_ok(const char *s, size_t max);

/* Parses a client SPIFFE ID for this trust domain and WFM: the client id (a device id,
 * at most MGO_MAX_DEVICE_ID_LEN) into out. False with the reason in why. Comparisons are
 * exact and case-sensitive. */
bool mgo_sb_parse_client_uri(const char *uri, const char *trust_domain, const char *wfm_id,
                             char out[MGO_SB_CLIENT_ID_SIZE], char *why, size_t why_size);

/* The client certificate of a TLS connection (libmicrohttpd), checked in that order. */
enum mgo_sb_auth {
    MGO_SB_AUTH_OK = 0,
    MGO_SB_AUTH_NO_CERT,   /* no client certificate presented */
    MGO_SB_AUTH_UNTRUSTED, /* does not chain to the client CA, expired, not yet valid */
    MGO_SB_AUTH_NOT_SVID,  /* not a client X.509-SVID of this trust domain and WFM */
};
struct MHD_Connection;
/* HTTP thread: verifies conn's peer certificate and reads its client id into out; why
 * tells the reason of a refusal (for the log and the problem's detail). */
enum mgo_sb_auth mgo_sb_tls_client(struct MHD_Connection *conn, const char *trust_domain,
                                   const char *wfm_id, char out[MGO_SB_CLIENT_ID_SIZE], char *why,
                                   size_t why_size);

/* The SPIFFE trust bundle of the PEM certificates in ca_pem (the client CA): a JSON JWK set
 * {"keys": [{"kty", "use": "x509-svid", "x5c": [DER base64], public key members}],
 * "spiffe_sequence": 1, "spiffe_refresh_hint": 3600} into out. MGO_ERR_INVALID when the PEM
 * holds no certificate or a key type other than EC (P-256/P-384/P-521) or RSA. */
mgo_err mgo_sb_trust_bundle(const void *ca_pem, size_t ca_len, struct mgo_buf *out) MGO_MUST_CHECK;

#endif
