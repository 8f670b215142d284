/* wfm.h - Margo's standard HTTP binding, the pure part (private to agent/): what the agent
 * checks and converts when it talks to a Margo WFM over HTTP (docs/agent.md, "HTTP
 * transport"). No I/O, no clock reads (the caller passes the time), no threads.
 *
 *   manifest   the JSON desired-state manifest of GET /api/v1/deployments: validated, each
 *              digest must be sha256, manifestVersion must be greater than the accepted one
 *   bundles    the tar+gzip bundle of a manifest (wfm_bundle.c, libarchive, in memory): its
 *              sha256 checked, each manifest entry found among its root files by digest
 *   documents  a deployment YAML fetched by digest: sha256 of the exact bytes checked, then
 *              parsed and validated into the agent's internal document (canonical MessagePack,
 *              docs/protocol.md §3.3), which the executor takes like an MQTT one
 *   statuses   a journaled status (MessagePack) as Margo JSON DeploymentStatusManifest
 *   caps       the capabilities document as Margo JSON DeviceCapabilitiesManifest
 *   timing     Retry-After (seconds or HTTP-date), and when polling is allowed (polling
 *              windows, downtime windows) */
#ifndef MGO_AGENT_WFM_H
#define MGO_AGENT_WFM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "downtime.h"
#include "mgo/arena.h"
#include "mgo/buf.h"
#include "mgo/digest.h"
#include "mgo/err.h"
#include "mgo/limits.h"
#include "mgo/margo.h"

/* Largest manifest body and deployment YAML accepted (a hard bound: a manifest's sizeBytes
 * is advisory and never raises it). */
#define MGO_WFM_MAX_MANIFEST_BYTES (1024u * 1024u)
#define MGO_WFM_MAX_YAML_BYTES (1024u * 1024u)
/* A bundle (tar+gzip) fetched at most, and its files and their bytes once unpacked. */
#define MGO_WFM_MAX_BUNDLE_BYTES (32u * 1024u * 1024u)
#define MGO_WFM_MAX_BUNDLE_FILES (2u * MGO_MAX_DEPLOYMENTS)
#define MGO_WFM_MAX_BUNDLE_UNPACKED (64u * 1024u * 1024u)
/* Longest wait a Retry-After may impose (a WFM cannot park a device for longer). */
#define MGO_WFM_MAX_RETRY_AFTER_S 86400u
/* How far ahead the poll schedule looks for an allowed minute. */
#define MGO_WFM_SCHEDULE_HORIZON_S (8 * 86400)

/* One deployment of a validated manifest. */
struct mgo_wfm_ref {
    char id[MGO_MAX_DEPLOYMENT_ID_LEN + 1];
    char digest[MGO_DIGEST_STR_SIZE]; /* sha256:<64 lowercase hex> of the YAML bytes */
};

struct mgo_wfm_manifest {
    uint64_t version;
    bool has_bundle;
    char bundle_digest[MGO_DIGEST_STR_SIZE]; /* sha256 (checked like the others) */
    size_t len;
    struct mgo_wfm_ref refs[MGO_MAX_DEPLOYMENTS];
};

/* Validates a manifest body (JSON, application/vnd.margo.manifest.v1+json) and fills out.
 * accepted: the manifestVersion the agent holds (0 = none).
 *   MGO_ERR_PARSE / MGO_ERR_INVALID  not a valid manifest (why names the field and rule),
 *                                    including a digest of another algorithm than sha256
 *   MGO_ERR_LIMIT                    larger than MGO_WFM_MAX_MANIFEST_BYTES
 *   MGO_ERR_STALE                    manifestVersion not greater than accepted (anti-rollback;
 *                                    out->version is set)
 * sizeBytes is not looked at (advisory only in Margo). */
mgo_err mgo_wfm_manifest_parse(const void *body, size_t len, uint64_t accepted,
                               struct mgo_wfm_manifest *out, char *why,
                               size_t why_len) MGO_MUST_CHECK;

/* Checks a fetched deployment YAML against its manifest entry and converts it into the
 * agent's internal document (canonical MessagePack of the normalised ApplicationDeployment,
 * appended to doc_out).
 *   MGO_ERR_LIMIT    more than MGO_WFM_MAX_YAML_BYTES
 *   MGO_ERR_CRYPTO   sha256 of the exact bytes differs from ref->digest
 *   MGO_ERR_PARSE / MGO_ERR_INVALID  not a valid ApplicationDeployment, or its id is not
 *                    ref->id */
mgo_err mgo_wfm_deployment_doc(const void *yaml, size_t len, const struct mgo_wfm_ref *ref,
                               struct mgo_buf *doc_out, char *why, size_t why_len) MGO_MUST_CHECK;

/* Unpacks a bundle (tar+gzip, application/vnd.margo.bundle.v1+tar+gzip) held in memory after
 * checking that the sha256 of its exact bytes is m->bundle_digest, and gives each manifest
 * entry the bytes of the root file whose sha256 is that entry's digest: yamls[i] (m->len
 * buffers, initialised by the caller) receives entry i's file. Only regular files at the
 * archive root are taken (anything else is refused).
 *   MGO_ERR_CRYPTO   the bundle's digest differs (a security matter: abort the update)
 *   MGO_ERR_LIMIT    past MGO_WFM_MAX_BUNDLE_BYTES / _FILES / _UNPACKED or a file past
 *                    MGO_WFM_MAX_YAML_BYTES
 *   MGO_ERR_PARSE    not a tar+gzip archive
 *   MGO_ERR_INVALID  an entry that is not a regular root file, or an entry of the manifest
 *                    missing from the bundle
 * why names the entry and the rule. Files that no entry names are ignored. */
mgo_err mgo_wfm_bundle_extract(const void *tgz, size_t len, const struct mgo_wfm_manifest *m,
                               struct mgo_buf *yamls, char *why, size_t why_len) MGO_MUST_CHECK;

/* A journaled status (MessagePack DeploymentStatus, protocol.md §3.4) as Margo JSON
 * (deploymentId, deviceId, adoptedManifestVersion, status, components; our apiVersion, kind
 * and x-margo-mqtt-extensions are left out). A status without adoptedManifestVersion gets
 * fallback_version (Margo requires the field); MGO_ERR_INVALID when that is 0 too. */
mgo_err mgo_wfm_status_json(const void *status, size_t len, uint64_t fallback_version,
                            struct mgo_buf *json_out) MGO_MUST_CHECK;

/* The capabilities document (MessagePack, protocol.md §3.5) as Margo rc.3 JSON (root keys
 * properties, labels and x-*-extensions only). */
mgo_err mgo_wfm_caps_json(const void *caps, size_t len, struct mgo_buf *json_out) MGO_MUST_CHECK;

/* A Retry-After value: delta-seconds ("120") or an HTTP-date ("Wed, 21 Oct 2026 07:28:00
 * GMT"; also the obsolete RFC 850 and asctime forms), relative to now. A date in the past
 * is 0 s; more than MGO_WFM_MAX_RETRY_AFTER_S is cut to it. MGO_ERR_INVALID otherwise. */
mgo_err mgo_wfm_retry_after(const char *value, time_t now, uint32_t *delay_s) MGO_MUST_CHECK;

/* Seconds from now until the agent may poll: 0 when now is inside a polling window (or no
 * polling window is configured) and outside every downtime window; otherwise the first such
 * minute within MGO_WFM_SCHEDULE_HORIZON_S, or -1 when there is none (windows that never
 * allow polling). */
int64_t mgo_wfm_poll_wait(const struct mgo_downtime *poll_windows, size_t poll_len,
                          const struct mgo_downtime *downtime, size_t down_len, time_t now);

#endif
