/* oci.h - HTTP(S) downloads with libcurl and OCI artifacts from registries (distribution API
 * v2): shared by margo-agent (workload packages) and margoctl (application packages). */
#ifndef MGO_OCI_H
#define MGO_OCI_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/buf.h"
#include "mgo/err.h"

/* The artifact type of a Margo application package, and the layer media types taken as its
 * ApplicationDescription (docs/manager.md, "margoctl app add"). */
#define MGO_OCI_APP_ARTIFACT_TYPE "application/vnd.margo.app.v1+json"
#define MGO_OCI_EMPTY_CONFIG_TYPE "application/vnd.oci.empty.v1+json"

struct mgo_fetch_opts {
    uint32_t timeout_s;            /* whole transfer; 0 = 300 */
    const char *ca_file;           /* NULL = system store */
    const char *const *plain_http; /* registries ("host:port") reached over http:// */
    size_t plain_http_len;
    /* Non-zero aborts a transfer in progress (checked by curl's progress callback, about
     * once a second and on every block received); why then says "cancelled". */
    const atomic_int *cancel;
    const char *user_agent; /* NULL = "margo-agent/0.1" */
};

/* GET url (http, https; file only when allow_file) into out (capped by out->max), with an
 * Accept header when accept is not NULL. why receives "http status 404", "too large (more
 * than N bytes)", curl's message... 404 -> MGO_ERR_NOT_FOUND, 401/403 -> MGO_ERR_AUTH. */
mgo_err mgo_http_fetch(const char *url, const char *accept, const struct mgo_fetch_opts *opts,
                       bool allow_file, struct mgo_buf *out, char *why,
                       size_t why_len) MGO_MUST_CHECK;

/* What an artifact must be. NULL (the agent's packages): any manifest; the first layer whose
 * media type names compose or yaml, else the first layer. */
struct mgo_oci_select {
    /* the manifest's artifactType, or (older artifacts) its config.mediaType, must equal it */
    const char *artifact_type;
    /* the layer taken is the first whose mediaType is one of these (NULL-terminated) */
    const char *const *layer_types;
};

/* Fetches an OCI artifact: repository "oci://host[:port]/name", reference revision (tag or
 * sha256 digest). Reads the image manifest (Accept: the OCI image manifest and Docker v2
 * types; a digest revision must match the manifest's bytes), picks a layer (see
 * mgo_oci_select), refuses a layer larger than out->max, and returns the layer's bytes after
 * checking their sha256 and size against the manifest (MGO_ERR_CRYPTO when they differ).
 * Hosts listed in opts->plain_http are reached over http, every other over https.
 * media_type (optional, 128 bytes) receives the layer's media type. */
mgo_err mgo_oci_fetch(const char *repository, const char *revision,
                      const struct mgo_fetch_opts *opts, const struct mgo_oci_select *sel,
                      struct mgo_buf *out, char *media_type, char *why,
                      size_t why_len) MGO_MUST_CHECK;

/* Splits "oci://host[:port]/name:tag" or "oci://host[:port]/name@sha256:<hex>" into
 * repository ("oci://host[:port]/name", repo_size bytes) and revision (rev_size bytes).
 * host_out (optional, 256 bytes) receives "host[:port]". */
mgo_err mgo_oci_split_ref(const char *ref, char *repo, size_t repo_size, char *rev, size_t rev_size,
                          char *host_out, char *why, size_t why_len) MGO_MUST_CHECK;

/* true for a loopback registry host ("127.x.y.z", "localhost", "[::1]", with or without
 * ":port"): the ones reached over plain http by margoctl. */
bool mgo_oci_host_is_loopback(const char *host);

#endif
