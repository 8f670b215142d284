#!/usr/bin/env bash
# docker_compose_check.sh - the top-level docker-compose.yml and docker/Dockerfile.
#
#   docker_compose_check.sh config        quick (default suite): the file's structure and
#                                         safety rules; `docker-compose config` when installed
#   docker_compose_check.sh up MARGOCTL   real run with Debian's engine (label `slow`):
#                                         skipped (exit 77) unless MGO_E2E_DOCKER=1
#
# `up`, as root: installs docker.io, docker-compose and debootstrap when missing; starts its
# own dockerd (data root in $MGO_DOCKER_CACHE, default /var/tmp/margo-mqtt-docker, kept as a
# build cache; socket and exec root in a temp folder); makes a Debian 12 base image from
# Debian's archive (debootstrap, cached as a tar) and `docker import`s it; builds the images;
# starts broker + manager + two agents; checks both devices register online with the Compose
# type and the sample app is compatible with both; deploys hello-compose through agent-1
# (docker-compose on that dockerd; compose artifacts from a registry on the compose network's
# gateway, image imported offline), fetches its page, removes it; restarts the broker container
# and finds a retained message and a persistent session's queued message intact; tears
# everything down and stops dockerd.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
mode="${1:-}"
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

check_config() {
    /usr/bin/python3 - "$src" <<'PY' || fails=$((fails + 1))
import os, re, sys, yaml
src = sys.argv[1]
problems = 0
def fail(m):
    global problems
    problems += 1
    print("FAIL:", m)
doc = yaml.safe_load(open(os.path.join(src, "docker-compose.yml")))
svcs = doc.get("services") or {}
dockerfile = open(os.path.join(src, "docker", "Dockerfile")).read()
stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.M | re.I))
agents = [n for n in svcs if n.startswith("agent")]
for need in ("broker", "manager"):
    if need not in svcs:
        fail(f"services.{need}: missing")
if not agents:
    fail("services: no agent-* service")
for name, s in svcs.items():
    b = s.get("build") or {}
    if b.get("dockerfile") != "docker/Dockerfile" or b.get("target") not in stages:
        fail(f"services.{name}.build: target {b.get('target')!r} is not a stage of docker/Dockerfile {sorted(stages)}")
if svcs.get("broker", {}).get("ports"):
    fail("services.broker.ports: the plain-MQTT broker must not be published")
for p in svcs.get("manager", {}).get("ports") or []:
    if not str(p).startswith("127.0.0.1:"):
        fail(f"services.manager.ports: {p} is published beyond the host's loopback")
ids = []
for a in agents:
    cmd = svcs[a].get("command") or []
    if "--device-id" not in cmd:
        fail(f"services.{a}.command: no --device-id"); continue
    ids.append(cmd[cmd.index("--device-id") + 1])
    if "tcp://broker:1883" not in cmd:
        fail(f"services.{a}.command: not pointed at tcp://broker:1883")
    if not any(str(v).endswith(":/var/run/docker.sock") for v in svcs[a].get("volumes") or []):
        fail(f"services.{a}.volumes: the Docker socket is not mounted (the agent runs workloads on it)")
if len(set(ids)) != len(ids):
    fail(f"agents: device ids are not unique: {ids}")
# Every COPY source of the Dockerfile is let through by .dockerignore.
allowed = [l[1:].rstrip("/") for l in open(os.path.join(src, ".dockerignore")).read().split()
           if l.startswith("!")]
for m in re.finditer(r"^COPY\s+(?!--from)(\S+)", dockerfile, re.M):
    path = m.group(1).rstrip("/")
    if not any(path == a or path.startswith(a + "/") for a in allowed):
        fail(f"docker/Dockerfile: COPY {path} is excluded by .dockerignore")
    if not os.path.exists(os.path.join(src, path)):
        fail(f"docker/Dockerfile: COPY {path}: no such file in the tree")
if "listener 1883 127.0.0.1" not in open(os.path.join(src, "broker-config/mosquitto.conf")).read():
    fail("broker-config/mosquitto.conf: the line the broker stage rewrites ('listener 1883 127.0.0.1') is gone")
print(f"ok: docker-compose.yml: {len(svcs)} services, agents {ids}, stages {sorted(stages)}")
sys.exit(1 if problems else 0)
PY
    if command -v docker-compose >/dev/null 2>&1; then
        local out
        if out=$(cd "$src" && docker-compose -f docker-compose.yml config -q 2>&1); then
            ok "docker-compose config accepts docker-compose.yml"
        else
            bad "docker-compose config: $out"
        fi
    else
        echo "note: docker-compose is not installed; only the structure was checked"
    fi
}

run_up() {
    local ctl="$1"
    if [ "${MGO_E2E_DOCKER:-0}" != 1 ]; then
        echo "skipped: the Docker run builds images (minutes); run it with MGO_E2E_DOCKER=1 ctest -L slow"
        exit 77
    fi
    [ "$(id -u)" -eq 0 ] || { bad "needs root (dockerd)"; return; }
    local pkgs=() p
    for p in docker.io docker-compose debootstrap; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pkgs+=("$p")
    done
    if [ ${#pkgs[@]} -gt 0 ]; then
        echo "installing ${pkgs[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" \
            >/dev/null || { bad "apt-get install ${pkgs[*]} failed"; return; }
    fi
    local cache="${MGO_DOCKER_CACHE:-/var/tmp/margo-mqtt-docker}"
    # globals: the EXIT trap uses them after this function returned
    tmp=$(mktemp -d /tmp/mgo-docker-XXXXXX)
    mkdir -p "$cache/data-root"
    export DOCKER_HOST="unix://$tmp/docker.sock"
    project="mgoe2e$$"
    api_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    # A test override: a fixed subnet for the compose network, so the host's registry can
    # listen on its gateway address (reachable from the containers only), and agent-1 told
    # that this registry is plain http.
    subnet_gw=172.31.250.1
    reg_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    cat >"$tmp/override.yml" <<EOF2
networks:
  default:
    ipam:
      config:
        - subnet: 172.31.250.0/24
services:
  agent-1:
    command: ["--device-id", "docker-device-1", "--broker-url", "tcp://broker:1883",
              "--oci-plain-http", "$subnet_gw:$reg_port", "--reconcile-interval", "10"]
EOF2
    dc=(docker-compose -p "$project" -f "$src/docker-compose.yml" -f "$tmp/override.yml")
    export MARGO_BASE_IMAGE=margo-mqtt/debian:12 MARGO_DOCKER_SOCKET="$tmp/docker.sock"
    export MARGO_API_PORT="$api_port"
    cleanup_up() {
        (cd "$src" && timeout 120 "${dc[@]}" down -v --remove-orphans >/dev/null 2>&1)
        if [ -f "$tmp/docker.pid" ]; then
            local pid
            pid=$(cat "$tmp/docker.pid")
            kill "$pid" 2>/dev/null
            for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
            kill -0 "$pid" 2>/dev/null && { kill -9 "$pid"; echo "dockerd killed"; }
        fi
        [ -f "$tmp/registry.pid" ] && kill "$(cat "$tmp/registry.pid")" 2>/dev/null
        umount "$tmp"/exec/* 2>/dev/null
        rm -rf "$tmp"
    }
    trap cleanup_up EXIT
    dockerd --data-root "$cache/data-root" --exec-root "$tmp/exec" --pidfile "$tmp/docker.pid" \
        -H "$DOCKER_HOST" --bridge none --insecure-registry "$subnet_gw:$reg_port" \
        >"$tmp/dockerd.log" 2>&1 &
    local up=0
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && { up=1; break; }
        sleep 0.5
    done
    [ "$up" = 1 ] || { bad "dockerd did not start within 30 s: $(tail -n 5 "$tmp/dockerd.log")"; return; }
    ok "dockerd up ($DOCKER_HOST, data root $cache/data-root)"

    if ! docker image inspect margo-mqtt/debian:12 >/dev/null 2>&1; then
        if [ ! -s "$cache/debian-12-rootfs.tar" ]; then
            echo "debootstrap bookworm from http://deb.debian.org/debian (cached in $cache)"
            rm -rf "$cache/rootfs.tmp"
            timeout 900 debootstrap --variant=minbase bookworm "$cache/rootfs.tmp" \
                http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
                { bad "debootstrap failed (Debian's archive unreachable?): $(tail -n 3 "$cache/debootstrap.log")"; return; }
            tar -C "$cache/rootfs.tmp" -cf "$cache/debian-12-rootfs.tar" . && rm -rf "$cache/rootfs.tmp"
        fi
        docker import "$cache/debian-12-rootfs.tar" margo-mqtt/debian:12 >/dev/null ||
            { bad "docker import of the Debian rootfs failed"; return; }
    fi
    ok "base image margo-mqtt/debian:12 (debootstrap of Debian's archive)"

    local t0=$SECONDS
    if ! (cd "$src" && timeout 2400 "${dc[@]}" build >"$tmp/build.log" 2>&1); then
        bad "docker-compose build failed: $(tail -n 20 "$tmp/build.log")"; return
    fi
    ok "images built in $((SECONDS - t0)) s"
    if ! (cd "$src" && timeout 300 "${dc[@]}" up -d >"$tmp/up.log" 2>&1); then
        bad "docker-compose up failed: $(tail -n 20 "$tmp/up.log")"; return
    fi
    ok "docker-compose up: $(cd "$src" && "${dc[@]}" ps --services | tr '\n' ' ')"

    local token="$tmp/api-token"
    for _ in $(seq 1 60); do
        (cd "$src" && "${dc[@]}" exec -T manager cat /var/lib/margo-manager/api-token) >"$token" 2>/dev/null &&
            [ -s "$token" ] && break
        sleep 1
    done
    export MARGO_URL="http://127.0.0.1:$api_port" MARGO_TOKEN_FILE="$token"
    local listed=""
    for _ in $(seq 1 90); do
        listed=$("$ctl" device list 2>/dev/null)
        if grep -qE '^docker-device-1 +online +compose' <<<"$listed" &&
           grep -qE '^docker-device-2 +online +compose' <<<"$listed"; then
            break
        fi
        sleep 1
    done
    if grep -qE '^docker-device-1 +online +compose' <<<"$listed" &&
       grep -qE '^docker-device-2 +online +compose' <<<"$listed"; then
        ok "both agents registered online with the compose type through the broker container"
    else
        bad "devices not online with compose after 90 s: $listed"
        (cd "$src" && "${dc[@]}" logs --tail 20) 2>&1 | tail -n 60
        return
    fi
    local inside
    inside=$(cd "$src" && "${dc[@]}" exec -T manager margoctl device list 2>&1)
    grep -q '^docker-device-2 ' <<<"$inside" && ok "margoctl inside the manager container works (README)" ||
        bad "docker-compose exec manager margoctl device list: $inside"
    "$ctl" app add "$src/examples/hello-compose" >/dev/null || bad "app add through the published API"
    local compat
    compat=$("$ctl" device list --compatible hello-compose)
    [ "$(grep -cE '^docker-device-[12] .* yes' <<<"$compat")" = 2 ] &&
        ok "hello-compose is compatible with both containerised agents" || bad "compatibility: $compat"
    curl -fsS --max-time 5 "http://127.0.0.1:$api_port/" | grep -qi '<html' &&
        ok "web UI served on the published port" || bad "web UI not served on 127.0.0.1:$api_port"
    deploy_through_docker "$ctl"
    broker_restart_check
}

# The broker container keeps sessions and retained messages across a restart (its named
# volume is writable by the mosquitto user that runs it): a retained message, and a QoS 1
# message queued for an offline persistent session, are both there after
# `docker-compose restart broker`.
broker_restart_check() {
    local bx=(exec -T broker) P=(-h 127.0.0.1 -p 1883 -V mqttv5) got
    local rt=margo/v1/devices/restart-check/capabilities qt=margo/v1/devices/restart-check/events
    ( cd "$src" &&
      "${dc[@]}" "${bx[@]}" mosquitto_pub "${P[@]}" -q 1 -r -t "$rt" -m retained-1 &&
      "${dc[@]}" "${bx[@]}" mosquitto_sub "${P[@]}" -i restart-check -c -x 3600 -q 1 \
          -t "$qt" -E &&
      "${dc[@]}" "${bx[@]}" mosquitto_pub "${P[@]}" -q 1 -t "$qt" -m queued-1 ) >"$tmp/restart.log" 2>&1 ||
        { bad "broker restart check: preparing failed: $(tail -n 5 "$tmp/restart.log")"; return; }
    (cd "$src" && timeout 120 "${dc[@]}" restart broker) >>"$tmp/restart.log" 2>&1 ||
        { bad "docker-compose restart broker failed: $(tail -n 5 "$tmp/restart.log")"; return; }
    for _ in $(seq 1 40); do
        (cd "$src" && "${dc[@]}" "${bx[@]}" mosquitto_sub "${P[@]}" -t margo/ready -W 1 -E) >/dev/null 2>&1 && break
        sleep 0.5
    done
    got=$(cd "$src" && "${dc[@]}" "${bx[@]}" mosquitto_sub "${P[@]}" -t "$rt" --retained-only -C 1 -W 5 2>&1)
    [ "$got" = retained-1 ] && ok "broker container restart: retained message intact" ||
        bad "broker container restart lost the retained message (got '$got')"
    got=$(cd "$src" && "${dc[@]}" "${bx[@]}" mosquitto_sub "${P[@]}" -i restart-check -c -x 0 -q 1 \
        -t margo/none -v -C 1 -W 5 2>&1)
    [ "$got" = "$qt queued-1" ] && ok "broker container restart: persistent session and its queued message intact" ||
        bad "broker container restart lost the persistent session's queued message (got '$got')"
    if (cd "$src" && "${dc[@]}" logs broker 2>&1) | grep -E 'Error saving|Permission denied'; then
        bad "the broker container could not save its persistence file"
    fi
}

# A real deployment through agent-1 (docker-compose on the test's dockerd): the registry on
# the compose network's gateway holds the compose artifacts; the workload image is imported
# into dockerd from busybox-static (offline).
deploy_through_docker() {
    local ctl="$1"
    cat >"$tmp/registry.yml" <<EOF2
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $tmp/registry-data
http:
  addr: $subnet_gw:$reg_port
EOF2
    docker-registry serve "$tmp/registry.yml" >"$tmp/registry.log" 2>&1 &
    echo $! >"$tmp/registry.pid"
    for _ in $(seq 1 50); do
        curl -fsS "http://$subnet_gw:$reg_port/v2/" >/dev/null 2>&1 && break
        sleep 0.2
    done
    curl -fsS "http://$subnet_gw:$reg_port/v2/" >/dev/null 2>&1 ||
        { bad "registry on $subnet_gw:$reg_port did not start: $(cat "$tmp/registry.log")"; return; }
    local root="$tmp/rootfs"
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/www"
    cp /bin/busybox "$root/bin/busybox" || { bad "busybox-static missing"; return; }
    /bin/busybox --list | while read -r a; do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
    echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
    tar -C "$root" -cf "$tmp/rootfs.tar" .
    local image="$subnet_gw:$reg_port/margo/examples/busybox:1"
    docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$tmp/rootfs.tar" "$image" \
        >/dev/null || { bad "docker import of the busybox image"; return; }
    local pkg
    pkg=$(bash "$src/scripts/publish-package.sh" --registry "$subnet_gw:$reg_port" \
        --out "$tmp/pkg" "$src/examples/hello-compose" 2>"$tmp/publish.log") ||
        { bad "publish: $(cat "$tmp/publish.log")"; return; }
    "$ctl" app rm hello-compose >/dev/null 2>&1
    "$ctl" app add "$pkg" >/dev/null || { bad "app add of the re-pointed package"; return; }
    local web_port worker_port out id
    web_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    worker_port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    out=$("$ctl" deploy hello-compose --device docker-device-1 --no-prompt --set "webPort=$web_port" \
        --set "workerPort=$worker_port" --set "greeting=Hello from Docker" 2>&1) ||
        { bad "deploy: $out"; return; }
    id=$(grep -oE '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' <<<"$out" | head -n1)
    if "$ctl" watch "$id" --timeout 180 >"$tmp/watch.txt" 2>&1; then
        ok "deployed through the containerised agent (docker-compose): installed"
    else
        bad "watch: $(cat "$tmp/watch.txt")"
        (cd "$src" && "${dc[@]}" logs --tail 30 agent-1) 2>&1 | tail -n 30
        return
    fi
    local got=""
    for _ in $(seq 1 40); do
        got=$(curl -fsS --max-time 2 "http://127.0.0.1:$web_port/" 2>/dev/null) && [ "$got" = "Hello from Docker" ] && break
        sleep 0.5
    done
    [ "$got" = "Hello from Docker" ] && ok "the workload answers on the host: $got" ||
        bad "the workload answered '$got'"
    "$ctl" deployment update "$id" --set "greeting=Reconfigured in Docker" >/dev/null ||
        bad "deployment update refused"
    if "$ctl" watch "$id" --timeout 180 >"$tmp/watch-2.txt" 2>&1; then
        got=""
        for _ in $(seq 1 40); do
            got=$(curl -fsS --max-time 2 "http://127.0.0.1:$web_port/" 2>/dev/null) &&
                [ "$got" = "Reconfigured in Docker" ] && break
            sleep 0.5
        done
        [ "$got" = "Reconfigured in Docker" ] && ok "reconfigured through the containerised agent: $got" ||
            bad "after reconfigure the workload answered '$got'"
    else
        bad "reconfigure: $(cat "$tmp/watch-2.txt")"
    fi
    "$ctl" deployment rm "$id" >/dev/null || bad "deployment rm"
    "$ctl" watch "$id" --timeout 120 >"$tmp/watch-rm.txt" 2>&1 && ok "removed through the containerised agent" ||
        bad "remove: $(cat "$tmp/watch-rm.txt")"
    local n
    n=$(docker ps -aq --filter "label=com.docker.compose.project=margo-$id" | wc -l)
    [ "$n" -eq 0 ] && ok "no workload container left" || bad "$n workload containers left"
}

case "$mode" in
    config) check_config ;;
    up) [ $# -eq 2 ] || { echo "usage: $0 up MARGOCTL" >&2; exit 2; }; check_config; run_up "$2" ;;
    *) echo "usage: $0 config | up MARGOCTL" >&2; exit 2 ;;
esac
[ "$fails" -eq 0 ] && echo "PASSED" || { echo "$fails check(s) failed"; exit 1; }
