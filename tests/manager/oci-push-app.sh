#!/usr/bin/env bash
# oci-push-app.sh REG NAME TAG FILE [ARTIFACT-TYPE] [LAYER-MEDIA-TYPE]
#   pushes FILE to the plain-http registry REG (HOST:PORT) as a Margo application package:
#   an OCI image manifest with artifactType (default application/vnd.margo.app.v1+json), the
#   empty config (application/vnd.oci.empty.v1+json, "{}") and FILE as its one layer (default
#   media type application/vnd.margo.app.description.v1+yaml), tagged TAG. Prints the layer's
#   digest. Used by tests/manager/test_oci_app.c.
set -euo pipefail
reg="$1" name="$2" tag="$3" file="$4"
at="${5:-application/vnd.margo.app.v1+json}"
lt="${6:-application/vnd.margo.app.description.v1+yaml}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
printf '{}' >"$tmp/config"
push_blob() {
    local f="$1" d loc
    d="sha256:$(sha256sum "$f" | cut -d' ' -f1)"
    loc=$(curl -fsS -D - -o /dev/null -X POST "http://$reg/v2/$name/blobs/uploads/" |
          tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
    [ -n "$loc" ] || { echo "oci-push-app.sh: upload not started" >&2; exit 1; }
    case "$loc" in http*) ;; *) loc="http://$reg$loc" ;; esac
    case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
    curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$f" "$loc" >/dev/null
}
push_blob "$tmp/config"
push_blob "$file"
cd_="sha256:$(sha256sum "$tmp/config" | cut -d' ' -f1)"
ld="sha256:$(sha256sum "$file" | cut -d' ' -f1)"
ls_=$(stat -c %s "$file")
man=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","artifactType":"%s","config":{"mediaType":"application/vnd.oci.empty.v1+json","digest":"%s","size":2},"layers":[{"mediaType":"%s","digest":"%s","size":%s}]}' \
      "$at" "$cd_" "$lt" "$ld" "$ls_")
curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
    --data-binary "$man" "http://$reg/v2/$name/manifests/$tag" >/dev/null
echo "$ld"
