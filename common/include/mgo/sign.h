/* sign.h - ES256 signatures on desired-state manifests and ApplicationDeployments
 * (docs/protocol.md section 5.2, docs/security.md).
 *
 * A signed document carries, at its root,
 *
 *     x-margo-mqtt-extensions: {signature: {alg: "ES256", keyId: "sha256:<hex>", value: <bin>}}
 *
 * - the signed bytes are the canonical MessagePack of the tree WITHOUT the root key
 *   x-margo-mqtt-extensions (mgo_doc_canonical), the same bytes mgo_doc_digest() hashes, so
 *   signing never changes a document's digest;
 * - alg "ES256" = ECDSA over P-256 with SHA-256; value is the DER signature (SEQUENCE {r, s});
 * - keyId is "sha256:" + hex SHA-256 of the public key's DER SubjectPublicKeyInfo, so any
 *   holder of the public key (or the certificate) can compute it.
 *
 * Binding to a device: the manager signs manifests with a top-level "deviceId" and
 * deployments with "metadata.deviceId"; mgo_sign_verify_document() with a device id refuses a
 * validly signed document made for another device (a replay across devices). Replays of an
 * older document of the SAME device are refused by the agent's manifestVersion rule (A1),
 * which the signature makes unforgeable.
 *
 * Keys are loaded once and are immutable afterwards, so they may be shared between threads. */
#ifndef MGO_SIGN_H
#define MGO_SIGN_H

#include <stddef.h>
#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/digest.h"
#include "mgo/err.h"
#include "mgo/value.h"

#define MGO_SIGN_ALG "ES256"
#define MGO_SIGN_MAX_DER 72 /* largest DER ECDSA P-256 signature */
#define MGO_SIGN_WHY_SIZE 256

struct mgo_sign_key;   /* a P-256 private key and its keyId */
struct mgo_verify_key; /* a P-256 public key and its keyId */

/* The bytes a digest and a signature cover: canonical MessagePack of root (a map) without
 * the root member MGO_EXT_KEY, appended to out. MGO_ERR_INVALID when root is not a map. */
mgo_err mgo_doc_canonical(const struct mgo_value *root, struct mgo_buf *out) MGO_MUST_CHECK;

/* Loads a PEM private key (PKCS#8 "PRIVATE KEY" or "EC PRIVATE KEY", unencrypted). Refuses
 * anything but an EC P-256 key with MGO_ERR_INVALID; MGO_ERR_NOT_FOUND / MGO_ERR_IO when the
 * file is missing or unreadable. The reason is
 * logged, naming the file; key material never is. */
mgo_err mgo_sign_key_load(const char *path, struct mgo_sign_key **out) MGO_MUST_CHECK;
void mgo_sign_key_free(struct mgo_sign_key *key);
/* "sha256:<64 hex>" of the public half. */
const char *mgo_sign_key_id(const struct mgo_sign_key *key);

/* Loads a PEM public key ("PUBLIC KEY") or an X.509 certificate ("CERTIFICATE", its subject
 * public key is used; dates are not checked: the key is pinned by configuration). EC P-256 only. */
mgo_err mgo_verify_key_load(const char *path, struct mgo_verify_key **out) MGO_MUST_CHECK;
/* Same from PEM text in memory (len bytes). */
mgo_err mgo_verify_key_from_pem(const void *pem, size_t len,
                                struct mgo_verify_key **out) MGO_MUST_CHECK;
void mgo_verify_key_free(struct mgo_verify_key *key);
const char *mgo_verify_key_id(const struct mgo_verify_key *key);

/* Signs root (a map): *out becomes a copy of root (members shallow-copied into arena) whose
 * MGO_EXT_KEY map holds {signature: {alg, keyId, value}}; other members of an existing
 * MGO_EXT_KEY map are kept, an existing signature is replaced. */
mgo_err mgo_sign_document(const struct mgo_sign_key *key, const struct mgo_value *root,
                          struct mgo_arena *arena, struct mgo_value *out) MGO_MUST_CHECK;

/* Verifies root against any of keys[0..n): the signature must be present, alg "ES256", keyId
 * one of the keys' ids and value a valid signature of mgo_doc_canonical(root) by that key.
 * With device_id non-NULL the signed document must also name that device: "deviceId" at the
 * root (manifest) or "metadata.deviceId" (ApplicationDeployment), byte for byte.
 * Returns MGO_OK, or MGO_ERR_CRYPTO with why (optional, MGO_SIGN_WHY_SIZE bytes) naming the
 * field and the rule, e.g. "x-margo-mqtt-extensions.signature: missing (unsigned document)";
 * MGO_ERR_NOMEM/MGO_ERR_INTERNAL for local failures. */
mgo_err mgo_sign_verify_document(const struct mgo_verify_key *const *keys, size_t n,
                                 const struct mgo_value *root, const char *device_id,
                                 char *why) MGO_MUST_CHECK;

/* Convenience for receivers that hold raw bytes: decodes MessagePack (limits of value.h)
 * into arena, then verifies as above. A decoding failure is MGO_ERR_PARSE/LIMIT/INVALID. */
mgo_err mgo_sign_verify_msgpack(const struct mgo_verify_key *const *keys, size_t n,
                                const void *data, size_t len, const char *device_id,
                                struct mgo_arena *arena, char *why) MGO_MUST_CHECK;

#endif
