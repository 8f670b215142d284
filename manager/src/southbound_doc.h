/* southbound_doc.h - the content-addressed bytes the southbound Margo API serves
 * (docs/margo-http.md): an ApplicationDeployment as YAML, and bundles (tar+gzip). Both are
 * deterministic, so the same stored deployments always give the same bytes and digests:
 * the manifest can name digests the manager produces again on request, without keeping the
 * bytes. Any thread; pure functions of their input. */
#ifndef MGO_MGR_SOUTHBOUND_DOC_H
#define MGO_MGR_SOUTHBOUND_DOC_H

#include <stddef.h>
#include <stdint.h>

#include "mgo/buf.h"
#include "mgo/err.h"

/* The YAML of a stored deployment document (canonical MessagePack, signed or not): the tree
 * without the MQTT-only root key x-margo-mqtt-extensions (the signature), emitted by libyaml
 * in block style, keys in the tree's sorted order, every string single-quoted (so no value
 * changes type on reading), numbers, booleans and null plain; keys plain when they are plain
 * words. Errors: decoding (MGO_ERR_PARSE, ...), MGO_ERR_INVALID (binary values),
 * MGO_ERR_LIMIT (out full). */
mgo_err mgo_sb_deployment_yaml(const uint8_t *doc, size_t len, struct mgo_buf *out) MGO_MUST_CHECK;

struct mgo_sb_file {
    const char *name; /* at the archive root */
    const uint8_t *data;
    size_t len;
};
/* A bundle: a gzip-compressed POSIX ustar archive holding exactly files, in the given order,
 * as regular files at the root (mode 0644, owner 0:0, mtime 0; no gzip timestamp or name).
 * MGO_ERR_IO when libarchive fails or out is full. */
mgo_err mgo_sb_bundle(const struct mgo_sb_file *files, size_t n,
                      struct mgo_buf *out) MGO_MUST_CHECK;

#endif
