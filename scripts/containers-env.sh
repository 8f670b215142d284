# containers-env.sh - sourced helper: project-local podman configuration, a loopback
# docker-registry, and an offline busybox test image. No system file is changed.
#
#   . scripts/containers-env.sh
#   mgo_containers_env DIR            write DIR/containers.conf + DIR/registries.conf, export
#                                     CONTAINERS_CONF / CONTAINERS_REGISTRIES_CONF
#   mgo_registry_start DIR PORT       start docker-registry on 127.0.0.1:PORT (data under DIR)
#   mgo_registry_stop DIR             stop the registry started with DIR
#   mgo_busybox_image DIR REF         build REF (e.g. 127.0.0.1:5000/margo/busybox:1) from
#                                     busybox-static without network, and push it
#   mgo_free_port                     print a free loopback TCP port
#
# Every function returns non-zero with a message on stderr when it fails.

mgo_free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1]); s.close()'
}

mgo_containers_env() {
    local dir="$1"
    [ -n "$dir" ] || { echo "mgo_containers_env: DIR missing" >&2; return 2; }
    mkdir -p "$dir" || return 1
    cat >"$dir/containers.conf" <<'EOF'
[containers]
default_ulimits = []

[engine]
runtime = "runc"
EOF
    cat >"$dir/registries.conf" <<'EOF'
unqualified-search-registries = []

[[registry]]
location = "127.0.0.1"
insecure = true

[[registry]]
location = "localhost"
insecure = true
EOF
    # registries.conf matches "host:port" prefixes; add the common loopback ports explicitly.
    local p
    for p in $(seq 5000 5010) ${MGO_REGISTRY_PORT:-}; do
        printf '\n[[registry]]\nlocation = "127.0.0.1:%s"\ninsecure = true\n' "$p" >>"$dir/registries.conf"
    done
    export CONTAINERS_CONF="$dir/containers.conf"
    export CONTAINERS_REGISTRIES_CONF="$dir/registries.conf"
}

mgo_registry_start() {
    local dir="$1" port="$2"
    [ -n "$dir" ] && [ -n "$port" ] || { echo "mgo_registry_start: DIR PORT" >&2; return 2; }
    mkdir -p "$dir/registry-data" || return 1
    cat >"$dir/registry.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $dir/registry-data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$port
EOF
    docker-registry serve "$dir/registry.yml" >"$dir/registry.log" 2>&1 &
    echo $! >"$dir/registry.pid"
    local i
    for i in $(seq 1 100); do
        if curl -fsS "http://127.0.0.1:$port/v2/" >/dev/null 2>&1; then
            return 0
        fi
        sleep 0.1
    done
    echo "mgo_registry_start: registry on 127.0.0.1:$port did not answer; see $dir/registry.log" >&2
    return 1
}

mgo_registry_stop() {
    local dir="$1"
    [ -f "$dir/registry.pid" ] || return 0
    kill "$(cat "$dir/registry.pid")" 2>/dev/null || true
    rm -f "$dir/registry.pid"
}

mgo_busybox_image() {
    local dir="$1" ref="$2"
    [ -n "$dir" ] && [ -n "$ref" ] || { echo "mgo_busybox_image: DIR REF" >&2; return 2; }
    local root="$dir/busybox-rootfs"
    rm -rf "$root" && mkdir -p "$root/bin" "$root/www" "$root/tmp" "$root/etc" || return 1
    cp /bin/busybox "$root/bin/busybox" || { echo "busybox-static missing (/bin/busybox)" >&2; return 1; }
    local applet
    for applet in sh httpd echo cat sleep ls mkdir printf env wget; do
        ln -sf busybox "$root/bin/$applet"
    done
    echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
    echo 'root:x:0:' >"$root/etc/group"
    tar -C "$root" -cf "$dir/busybox-rootfs.tar" . || return 1
    podman import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' \
        "$dir/busybox-rootfs.tar" "$ref" >/dev/null || return 1
    podman push --tls-verify=false "$ref" >/dev/null || return 1
}

# mgo_oci_push_file HOST:PORT NAME TAG FILE [MEDIA_TYPE]
#   pushes FILE as a one-layer OCI artifact (e.g. a compose file) to a plain-http registry
#   with the distribution API; prints the manifest digest.
mgo_oci_push_file() {
    local reg="$1" name="$2" tag="$3" file="$4" mt="${5:-application/vnd.margo.compose.v1+yaml}"
    [ -f "$file" ] || { echo "mgo_oci_push_file: $file missing" >&2; return 2; }
    local cfg; cfg=$(mktemp) || return 1
    printf '{}' >"$cfg"
    local f d s loc
    for f in "$cfg" "$file"; do
        d="sha256:$(sha256sum "$f" | cut -d' ' -f1)"
        loc=$(curl -fsS -D - -o /dev/null -X POST "http://$reg/v2/$name/blobs/uploads/" |
              tr -d '\r' | sed -n 's/^[Ll]ocation: //p')
        [ -n "$loc" ] || { echo "mgo_oci_push_file: upload not started" >&2; rm -f "$cfg"; return 1; }
        case "$loc" in http*) ;; *) loc="http://$reg$loc" ;; esac
        case "$loc" in *\?*) loc="$loc&digest=$d" ;; *) loc="$loc?digest=$d" ;; esac
        curl -fsS -X PUT -H 'Content-Type: application/octet-stream' --data-binary "@$f" "$loc" \
            >/dev/null || { echo "mgo_oci_push_file: blob upload failed" >&2; rm -f "$cfg"; return 1; }
    done
    local cd cs ld ls
    cd="sha256:$(sha256sum "$cfg" | cut -d' ' -f1)"; cs=$(stat -c %s "$cfg")
    ld="sha256:$(sha256sum "$file" | cut -d' ' -f1)"; ls=$(stat -c %s "$file")
    local man
    man=$(printf '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.manifest.v1+json","config":{"mediaType":"application/vnd.oci.image.config.v1+json","digest":"%s","size":%s},"layers":[{"mediaType":"%s","digest":"%s","size":%s}]}' "$cd" "$cs" "$mt" "$ld" "$ls")
    rm -f "$cfg"
    curl -fsS -X PUT -H 'Content-Type: application/vnd.oci.image.manifest.v1+json' \
        --data-binary "$man" "http://$reg/v2/$name/manifests/$tag" >/dev/null ||
        { echo "mgo_oci_push_file: manifest upload failed" >&2; return 1; }
    printf 'sha256:%s\n' "$(printf '%s' "$man" | sha256sum | cut -d' ' -f1)"
}
