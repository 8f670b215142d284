/* fetch.h - getting workload packages: HTTP(S) downloads, OCI artifacts (distribution API),
 * safe tar.gz extraction (private to agent/). */
#ifndef MGO_AGENT_FETCH_H
#define MGO_AGENT_FETCH_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "mgo/buf.h"
#include "mgo/err.h"
#include "mgo/oci.h" /* struct mgo_fetch_opts */

#define MGO_FETCH_MAX_PACKAGE_BYTES (16u * 1024u * 1024u)
#define MGO_FETCH_MAX_UNPACKED_BYTES (64u * 1024u * 1024u)
#define MGO_FETCH_MAX_ENTRIES 1024u

/* GET url (http, https, file) into out (capped by out->max); mgo_http_fetch.
 * why receives "http 404", "too large (> N bytes)", curl's message... */
mgo_err mgo_fetch_url(const char *url, const struct mgo_fetch_opts *opts, struct mgo_buf *out,
                      char *why, size_t why_len) MGO_MUST_CHECK;

/* Fetches an OCI artifact: repository "oci://host[:port]/name", reference revision (tag or
 * sha256 digest): mgo_oci_fetch without a selection (any manifest; the first layer whose
 * media type names compose or yaml, else the first layer), its digest and size verified.
 * media_type (optional, 128 bytes) receives the layer's media type. */
mgo_err mgo_fetch_oci(const char *repository, const char *revision,
                      const struct mgo_fetch_opts *opts, struct mgo_buf *out, char *media_type,
                      char *why, size_t why_len) MGO_MUST_CHECK;

/* true when data starts with the gzip magic. */
bool mgo_fetch_is_gzip(const void *data, size_t len);

/* Extracts a tar.gz held in memory into dir (which must exist). Refuses absolute names,
 * "..", links, devices and other special entries, more than MGO_FETCH_MAX_ENTRIES entries
 * and more than MGO_FETCH_MAX_UNPACKED_BYTES. Files are created 0644, folders 0755. */
mgo_err mgo_fetch_untar_gz(const void *data, size_t len, const char *dir, char *why,
                           size_t why_len) MGO_MUST_CHECK;

#endif
