#!/usr/bin/env bash
# docker_compose_check.sh - the top-level docker-compose.yml and docker/Dockerfile.
#
#   docker_compose_check.sh config        quick (default suite): the file's structure and
#                                         safety rules; `docker-compose config` when installed
#   docker_compose_check.sh up MARGOCTL   real run with Debian's engine (label `slow`):
#                                         skipped (exit 77) unless MGO_E2E_DOCKER=1
#   docker_compose_check.sh scale-config  docker-compose.scale.yml (the scale-out topology):
#                                         structure, safety rules, the edge's bridge config
#                                         built from the shipped bridge-edge.conf; skipped
#                                         (exit 77) after those checks pass while margo-manager
#                                         has no --store or --share-group option
#   docker_compose_check.sh scale-up MARGOCTL  docker-compose.scale.yml for real (label `slow`):
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
#
# `scale-up` shares that machinery (docker_start, compose_up, publish_sample, docker_cleanup):
# after scale-config's checks it builds and starts docker-compose.scale.yml (PostgreSQL, two
# managers on it with --share-group, core + edge broker bridged, an agent on each); checks both
# devices online through each manager; deploys hello-compose through manager 1 to both agents
# (installed, both pages answer) and reads both installed through manager 2; kills (SIGKILL)
# the manager holding the publisher lease (its /metrics), then through the survivor
# reconfigures both (pages change) and finds the lease taken over; restarts the edge broker
# (the bridge with it) and finds the edge's agent online again; removes both deployments
# (nothing left running); starts the killed manager again and finds it serving; tears down.
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
mode="${1:-}"
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# The embedded Python checks: run_py FILE runs the check on stdin after a common preamble
# (src, fail() counting problems, FILE's services as svcs, docker/Dockerfile's text and stage
# names) and exits 1 if it reported a problem.
PY_COMMON='
import os, re, subprocess, sys, tempfile, yaml
src = sys.argv[1]
problems = 0
def fail(m):
    global problems
    problems += 1
    print("FAIL:", m)
def load(name):
    return yaml.safe_load(open(os.path.join(src, name)))
doc = load(sys.argv[2])
svcs = doc.get("services") or {}
dockerfile = open(os.path.join(src, "docker", "Dockerfile")).read()
stages = set(re.findall(r"^FROM\s+\S+\s+AS\s+(\S+)", dockerfile, re.M | re.I))
'
run_py() {
    /usr/bin/python3 -c "$PY_COMMON$(cat)"$'\n''sys.exit(1 if problems else 0)' "$src" "$1"
}

check_config() {
    run_py docker-compose.yml <<'PY' || fails=$((fails + 1))
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

check_scale_config() {
    run_py docker-compose.scale.yml <<'PY' || fails=$((fails + 1))
base = load("docker-compose.yml")["services"]
base_images = {s["build"]["target"]: s["image"] for s in base.values()}
for need in ("postgres", "broker", "edge"):
    if need not in svcs:
        fail(f"services.{need}: missing")
# every image is built here from docker/Dockerfile (nothing pulled), with the same names as
# docker-compose.yml for the stages both use
for name, s in svcs.items():
    b = s.get("build") or {}
    t = b.get("target")
    if b.get("dockerfile") != "docker/Dockerfile" or t not in stages:
        fail(f"services.{name}.build: target {t!r} is not a stage of docker/Dockerfile {sorted(stages)}")
    if t in base_images and s.get("image") != base_images[t]:
        fail(f"services.{name}.image: {s.get('image')!r}, docker-compose.yml builds {base_images[t]!r} from stage {t}")
for name in ("postgres", "broker", "edge"):
    if svcs.get(name, {}).get("ports"):
        fail(f"services.{name}.ports: must not be published (compose network only)")
def arg(cmd, flag):
    return cmd[cmd.index(flag) + 1] if flag in cmd else None
mgrs = {n: s.get("command") or [] for n, s in svcs.items() if (s.get("build") or {}).get("target") == "manager"}
if len(mgrs) < 2:
    fail(f"managers: {len(mgrs)} manager services, the topology has two")
stores = {arg(c, "--store") for c in mgrs.values()}
groups = {arg(c, "--share-group") for c in mgrs.values()}
cids = [arg(c, "--client-id") for c in mgrs.values()]
if len(stores) != 1 or not all(str(x).startswith("postgresql://") and "@postgres:5432/" in str(x) for x in stores):
    fail(f"managers: --store must be the same postgresql://...@postgres:5432/... URL for all: {stores}")
if len(groups) != 1 or None in groups:
    fail(f"managers: --share-group must be set and the same for all: {groups}")
if None in cids or len(set(cids)) != len(cids):
    fail(f"managers: --client-id must be set and unique: {cids}")
for n, c in mgrs.items():
    if arg(c, "--broker-url") != "tcp://broker:1883":
        fail(f"services.{n}.command: not on the core broker tcp://broker:1883")
    for p in svcs[n].get("ports") or []:
        if not str(p).startswith("127.0.0.1:"):
            fail(f"services.{n}.ports: {p} is published beyond the host's loopback")
    if "postgres" not in (svcs[n].get("depends_on") or []):
        fail(f"services.{n}.depends_on: postgres missing")
# agents: one on the core, one on the edge, unique ids, the Docker socket mounted
agents = {n: s.get("command") or [] for n, s in svcs.items() if (s.get("build") or {}).get("target") == "agent"}
urls = sorted(arg(c, "--broker-url") or "" for c in agents.values())
ids = [arg(c, "--device-id") for c in agents.values()]
if "tcp://broker:1883" not in urls or "tcp://edge:1883" not in urls:
    fail(f"agents: need one on tcp://broker:1883 and one on tcp://edge:1883, have {urls}")
if None in ids or len(set(ids)) != len(ids):
    fail(f"agents: device ids missing or not unique: {ids}")
for n in agents:
    if not any(str(v).endswith(":/var/run/docker.sock") for v in svcs[n].get("volumes") or []):
        fail(f"services.{n}.volumes: the Docker socket is not mounted")
# the edge: run its config pipeline on the shipped files (paths mapped into the tree)
edge_cmd = (svcs.get("edge") or {}).get("command") or []
shell = edge_cmd[2] if len(edge_cmd) == 3 and edge_cmd[:2] == ["sh", "-c"] else None
examples = "/usr/share/doc/margo-broker-config/examples/bridge-edge.conf"
if not shell:
    fail("services.edge.command: expected [sh, -c, SCRIPT]")
elif f"COPY broker-config/bridge-edge.conf {examples}" not in dockerfile:
    fail(f"docker/Dockerfile: the broker stage does not COPY broker-config/bridge-edge.conf to {examples}")
else:
    with tempfile.TemporaryDirectory() as tmp:
        margo_conf = os.path.join(tmp, "margo.conf")
        with open(margo_conf, "w") as f:
            f.write(open(os.path.join(src, "broker-config/mosquitto.conf")).read())
        script = (shell.replace("/etc/mosquitto/margo.conf", margo_conf)
                       .replace("/tmp/edge.conf", os.path.join(tmp, "edge.conf"))
                       .replace(examples, os.path.join(src, "broker-config/bridge-edge.conf"))
                       .replace("exec mosquitto -c", "true"))
        r = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
        conf = open(os.path.join(tmp, "edge.conf")).read() if os.path.exists(os.path.join(tmp, "edge.conf")) else ""
        lines = [l for l in conf.splitlines() if l and not l.startswith("#")]
        if r.returncode != 0:
            fail(f"services.edge.command: the config pipeline failed: {r.stderr.strip()}")
        if "address broker:1883" not in lines:
            fail("services.edge: the bridge does not point at the core (address broker:1883)")
        if any(l.startswith(("bridge_cafile", "bridge_certfile", "bridge_keyfile", "bridge_tls", "bridge_insecure")) for l in lines):
            fail("services.edge: TLS lines of bridge-edge.conf left in a plain-MQTT bridge")
        if sum(l.startswith("topic ") for l in lines) != 8:
            fail("services.edge: the bridge section lost topic lines")
        inflight = [l for l in lines if l.startswith("max_inflight_messages")]
        if not inflight or inflight[-1].split()[1] in ("0", "65535"):
            fail(f"services.edge: the edge's last max_inflight_messages is {inflight[-1:]}: the bridge would announce an invalid Receive Maximum")
        print(f"ok: edge config: {len(lines)} lines, bridge to broker:1883, {inflight[-1]}")
# the entrypoint of the postgres stage exists and is a shell script
ep = os.path.join(src, "docker/postgres-entrypoint.sh")
if subprocess.run(["sh", "-n", ep]).returncode != 0:
    fail("docker/postgres-entrypoint.sh: not valid sh")
print(f"ok: docker-compose.scale.yml: {len(svcs)} services, managers {sorted(mgrs)}, agents {ids}")
PY
    if command -v docker-compose >/dev/null 2>&1; then
        local out
        if out=$(cd "$src" && MARGO_PG_PASSWORD=check docker-compose -f docker-compose.scale.yml config -q 2>&1); then
            ok "docker-compose config accepts docker-compose.scale.yml"
        else
            bad "docker-compose config (scale): $out"
        fi
    fi
    # the managers' options come from other work (PostgreSQL store, active-active managers)
    local missing=()
    grep -q 'OPT("store"' "$src"/manager/src/*.c || missing+=(--store)
    grep -q 'OPT("share-group"' "$src"/manager/src/*.c || missing+=(--share-group)
    if [ "$fails" -eq 0 ] && [ ${#missing[@]} -gt 0 ]; then
        echo "skipped: margo-manager has no ${missing[*]} option yet; the file cannot run on this tree"
        exit 77
    fi
}

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# docker_start: what every Docker run needs. Skips (exit 77) unless MGO_E2E_DOCKER=1; installs
# docker.io, docker-compose and debootstrap when missing; starts a private dockerd on the cached
# data root; makes the Debian base image. Sets the globals tmp, subnet_gw and reg_port (the
# registry's address on the compose network's gateway, which the caller's override gives the
# network: 172.31.250.0/24) and arms the EXIT trap; the caller sets dc, the docker-compose
# command line with its project and files. Returns 1 after a failure (reported).
docker_start() {
    if [ "${MGO_E2E_DOCKER:-0}" != 1 ]; then
        echo "skipped: the Docker run builds images (minutes); run it with MGO_E2E_DOCKER=1 ctest -L slow"
        exit 77
    fi
    [ "$(id -u)" -eq 0 ] || { bad "needs root (dockerd)"; return 1; }
    local pkgs=() p
    for p in docker.io docker-compose debootstrap; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || pkgs+=("$p")
    done
    if [ ${#pkgs[@]} -gt 0 ]; then
        echo "installing ${pkgs[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${pkgs[@]}" \
            >/dev/null || { bad "apt-get install ${pkgs[*]} failed"; return 1; }
    fi
    local cache="${MGO_DOCKER_CACHE:-/var/tmp/margo-mqtt-docker}"
    # globals: the EXIT trap uses them after this function returned
    tmp=$(mktemp -d /tmp/mgo-docker-XXXXXX)
    dc=()
    mkdir -p "$cache/data-root"
    export DOCKER_HOST="unix://$tmp/docker.sock"
    project="mgoe2e$$"
    subnet_gw=172.31.250.1
    reg_port=$(free_port)
    export MARGO_BASE_IMAGE=margo-mqtt/debian:12 MARGO_DOCKER_SOCKET="$tmp/docker.sock"
    trap docker_cleanup EXIT
    # The default bridge (docker0, on its own subnet here) is what `docker-compose build` runs
    # the Dockerfile's RUN steps on: with --bridge none they get a loopback only and apt-get
    # cannot reach Debian's archive. docker_cleanup deletes docker0 if this run created it.
    ip link show docker0 >/dev/null 2>&1 || touch "$tmp/own-docker0"
    dockerd --data-root "$cache/data-root" --exec-root "$tmp/exec" --pidfile "$tmp/docker.pid" \
        -H "$DOCKER_HOST" --bip 172.31.249.1/24 --insecure-registry "$subnet_gw:$reg_port" \
        >"$tmp/dockerd.log" 2>&1 &
    local up=0
    for _ in $(seq 1 60); do
        docker info >/dev/null 2>&1 && { up=1; break; }
        sleep 0.5
    done
    [ "$up" = 1 ] || { bad "dockerd did not start within 30 s: $(tail -n 5 "$tmp/dockerd.log")"; return 1; }
    ok "dockerd up ($(dockerd --version | cut -d, -f1), $(docker-compose version --short 2>/dev/null | sed 's/^/docker-compose /'), $DOCKER_HOST, data root $cache/data-root)"

    if ! docker image inspect margo-mqtt/debian:12 >/dev/null 2>&1; then
        if [ ! -s "$cache/debian-12-rootfs.tar" ]; then
            echo "debootstrap bookworm from http://deb.debian.org/debian (cached in $cache)"
            rm -rf "$cache/rootfs.tmp"
            timeout 900 debootstrap --variant=minbase bookworm "$cache/rootfs.tmp" \
                http://deb.debian.org/debian >"$cache/debootstrap.log" 2>&1 ||
                { bad "debootstrap failed (Debian's archive unreachable?): $(tail -n 3 "$cache/debootstrap.log")"; return 1; }
            tar -C "$cache/rootfs.tmp" -cf "$cache/debian-12-rootfs.tar" . && rm -rf "$cache/rootfs.tmp"
        fi
        docker import "$cache/debian-12-rootfs.tar" margo-mqtt/debian:12 >/dev/null ||
            { bad "docker import of the Debian rootfs failed"; return 1; }
    fi
    ok "base image margo-mqtt/debian:12 (debootstrap of Debian's archive)"
}

# The EXIT trap: the compose project down with its volumes, every container left on the
# private dockerd (workloads the agents started), dockerd and the registry stopped.
docker_cleanup() {
    [ ${#dc[@]} -gt 0 ] && (cd "$src" && timeout 120 "${dc[@]}" down -v --remove-orphans >/dev/null 2>&1)
    if [ -f "$tmp/docker.pid" ]; then
        local pid left
        left=$(docker ps -aq 2>/dev/null)
        [ -n "$left" ] && docker rm -f $left >/dev/null 2>&1
        pid=$(cat "$tmp/docker.pid")
        kill "$pid" 2>/dev/null
        for _ in $(seq 1 150); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
        kill -0 "$pid" 2>/dev/null && { kill -9 "$pid"; echo "dockerd killed"; }
    fi
    [ -f "$tmp/registry.pid" ] && kill "$(cat "$tmp/registry.pid")" 2>/dev/null
    [ -f "$tmp/own-docker0" ] && ip link delete docker0 2>/dev/null
    umount "$tmp"/exec/* 2>/dev/null
    rm -rf "$tmp"
}

# compose_up: build the images of "${dc[@]}" and start its services. Returns 1 on failure.
compose_up() {
    local t0=$SECONDS
    if ! (cd "$src" && timeout 2400 "${dc[@]}" build >"$tmp/build.log" 2>&1); then
        bad "docker-compose build failed: $(tail -n 20 "$tmp/build.log")"; return 1
    fi
    ok "images built in $((SECONDS - t0)) s"
    if ! (cd "$src" && timeout 300 "${dc[@]}" up -d >"$tmp/up.log" 2>&1); then
        bad "docker-compose up failed: $(tail -n 20 "$tmp/up.log")"; return 1
    fi
    ok "docker-compose up: $(cd "$src" && "${dc[@]}" ps --services | tr '\n' ' ')"
}

# read_token SERVICE FILE: the API token the manager container SERVICE wrote on its first start.
read_token() {
    for _ in $(seq 1 60); do
        (cd "$src" && "${dc[@]}" exec -T "$1" cat /var/lib/margo-manager/api-token) >"$2" 2>/dev/null &&
            [ -s "$2" ] && return 0
        sleep 1
    done
    bad "$1: no API token after 60 s"
    return 1
}

# wait_rows SECONDS "SUBCOMMAND" SUFFIX CTL... -- ITEM...: until `CTL SUBCOMMAND` lists a line
# matching ^ITEM SUFFIX (an extended regex) for every ITEM; the last listing in $listed.
wait_rows() {
    local secs="$1" sub="$2" suffix="$3" ctlcmd=() d all
    shift 3
    while [ "$1" != -- ]; do ctlcmd+=("$1"); shift; done
    shift
    for _ in $(seq 1 "$secs"); do
        # shellcheck disable=SC2086 # SUBCOMMAND is words ("device list")
        listed=$("${ctlcmd[@]}" $sub 2>/dev/null)
        all=1
        for d in "$@"; do grep -qE "^$d$suffix" <<<"$listed" || all=0; done
        [ "$all" = 1 ] && return 0
        sleep 1
    done
    return 1
}

# wait_online SECONDS CTL... -- DEVICE...: until `CTL device list` shows every DEVICE online
# with the compose type; the last listing in $listed.
wait_online() {
    local secs="$1"
    shift
    wait_rows "$secs" "device list" " +online +compose" "$@"
}

run_up() {
    local ctl="$1"
    docker_start || return
    local api_port
    api_port=$(free_port)
    # A test override: a fixed subnet for the compose network, so the host's registry can
    # listen on its gateway address (reachable from the containers only), and agent-1 told
    # that this registry is plain http.
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
    export MARGO_API_PORT="$api_port"
    compose_up || return

    local token="$tmp/api-token"
    read_token manager "$token" || return
    export MARGO_URL="http://127.0.0.1:$api_port" MARGO_TOKEN_FILE="$token"
    if wait_online 90 "$ctl" -- docker-device-1 docker-device-2; then
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
    grep -qi '<html' <<<"$(curl -fsS --max-time 5 "http://127.0.0.1:$api_port/")" &&
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

# publish_sample: a registry on the compose network's gateway (reachable from the containers
# and the host's dockerd, which pulls the workloads) holding hello-compose's compose artifacts,
# re-pointed there by scripts/publish-package.sh (the package folder in the global pkg); the
# workload image imported into dockerd from busybox-static (offline). Returns 1 on failure.
publish_sample() {
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
        { bad "registry on $subnet_gw:$reg_port did not start: $(cat "$tmp/registry.log")"; return 1; }
    local root="$tmp/rootfs"
    mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/www"
    cp /bin/busybox "$root/bin/busybox" || { bad "busybox-static missing"; return 1; }
    /bin/busybox --list | while read -r a; do [ "$a" = busybox ] || ln -sf busybox "$root/bin/$a"; done
    echo 'root:x:0:0:root:/:/bin/sh' >"$root/etc/passwd"
    tar -C "$root" -cf "$tmp/rootfs.tar" .
    local image="$subnet_gw:$reg_port/margo/examples/busybox:1"
    docker import --change 'CMD ["/bin/sh"]' --change 'ENV PATH=/bin' "$tmp/rootfs.tar" "$image" \
        >/dev/null || { bad "docker import of the busybox image"; return 1; }
    pkg=$(bash "$src/scripts/publish-package.sh" --registry "$subnet_gw:$reg_port" \
        --out "$tmp/pkg" "$src/examples/hello-compose" 2>"$tmp/publish.log") ||
        { bad "publish: $(cat "$tmp/publish.log")"; return 1; }
}

# deploy_sample CTL... -- DEVICE GREETING: deploys hello-compose to DEVICE on two free ports
# with GREETING; prints "ID WEB_PORT". Returns 1 (reported) when refused.
deploy_sample() {
    local ctlcmd=() out web_port worker_port
    while [ "$1" != -- ]; do ctlcmd+=("$1"); shift; done
    shift
    web_port=$(free_port)
    worker_port=$(free_port)
    out=$("${ctlcmd[@]}" deploy hello-compose --device "$1" --no-prompt --set "webPort=$web_port" \
        --set "workerPort=$worker_port" --set "greeting=$2" 2>&1) ||
        { bad "deploy to $1: $out"; return 1; }
    echo "$(grep -oE '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' <<<"$out" | head -n1) $web_port"
}

# wait_page PORT TEXT [SECONDS]: until the workload on the host's PORT answers TEXT (default
# 20 s); the last answer in $got.
wait_page() {
    got=""
    for _ in $(seq 1 $((${3:-20} * 2))); do
        got=$(curl -fsS --max-time 2 "http://127.0.0.1:$1/" 2>/dev/null) && [ "$got" = "$2" ] && return 0
        sleep 0.5
    done
    return 1
}

# A real deployment through agent-1 (docker-compose on the test's dockerd): install, page,
# reconfigure, removal.
deploy_through_docker() {
    local ctl="$1"
    publish_sample || return
    "$ctl" app rm hello-compose >/dev/null 2>&1
    "$ctl" app add "$pkg" >/dev/null || { bad "app add of the re-pointed package"; return; }
    local dep id web_port
    dep=$(deploy_sample "$ctl" -- docker-device-1 "Hello from Docker") || return
    read -r id web_port <<<"$dep"
    if "$ctl" watch "$id" --timeout 180 >"$tmp/watch.txt" 2>&1; then
        ok "deployed through the containerised agent (docker-compose): installed"
    else
        bad "watch: $(cat "$tmp/watch.txt")"
        (cd "$src" && "${dc[@]}" logs --tail 30 agent-1) 2>&1 | tail -n 30
        return
    fi
    wait_page "$web_port" "Hello from Docker" && ok "the workload answers on the host: $got" ||
        bad "the workload answered '$got'"
    "$ctl" deployment update "$id" --set "greeting=Reconfigured in Docker" >/dev/null ||
        bad "deployment update refused"
    if "$ctl" watch "$id" --timeout 180 >"$tmp/watch-2.txt" 2>&1; then
        wait_page "$web_port" "Reconfigured in Docker" && ok "reconfigured through the containerised agent: $got" ||
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

# wait_state SECONDS STATE CTL... -- DEPLOYMENT...: until `CTL status` (the shared store)
# shows every DEPLOYMENT in STATE; the last listing in $listed.
wait_state() {
    local secs="$1" state="$2"
    shift 2
    wait_rows "$secs" status " +[^ ]+ +$state " "$@"
}

# workloads DEPLOYMENT...: how many containers of these deployments exist on the dockerd.
workloads() {
    local d
    for d in "$@"; do docker ps -aq --filter "label=com.docker.compose.project=margo-$d"; done | wc -l
}

# lease_holder: the manager service (manager-1 or manager-2) whose /metrics says it holds the
# publisher lease; empty when none does.
lease_holder() {
    local n
    for n in 1 2; do
        # a here-string, not a pipe: grep -q ending first would SIGPIPE curl (pipefail)
        grep -q '^margo_lease_held{lease="publisher"} 1$' <<<"$(curl -fsS --max-time 5 \
            -H "Authorization: Bearer $(cat "$tmp/token-$n")" \
            "http://127.0.0.1:${api[$n]}/metrics" 2>/dev/null)" && { echo "manager-$n"; return; }
    done
}

# docker-compose.scale.yml for real: PostgreSQL, two managers sharing it, core + edge broker
# bridged, an agent on each; deploys through manager 1 to both agents, reads the status through
# manager 2, kills the publisher-lease holder and changes both deployments through the
# survivor, restarts the edge broker and removes the edge's deployment through the bridge.
run_scale_up() {
    local ctl="$1"
    docker_start || return
    api=([1]=$(free_port) [2]=$(free_port))
    # The test's override: the compose network on a fixed subnet (the registry listens on its
    # gateway), and both agents told that this registry is plain http.
    cat >"$tmp/override.yml" <<EOF2
networks:
  default:
    ipam:
      config:
        - subnet: 172.31.250.0/24
services:
  agent-core:
    command: ["--device-id", "docker-core-device-1", "--broker-url", "tcp://broker:1883",
              "--label", "site=core", "--oci-plain-http", "$subnet_gw:$reg_port",
              "--reconcile-interval", "10"]
  agent-edge:
    command: ["--device-id", "docker-edge-device-1", "--broker-url", "tcp://edge:1883",
              "--label", "site=edge", "--oci-plain-http", "$subnet_gw:$reg_port",
              "--reconcile-interval", "10"]
EOF2
    dc=(docker-compose -p "$project" -f "$src/docker-compose.scale.yml" -f "$tmp/override.yml")
    export MARGO_API_PORT="${api[1]}" MARGO_API_PORT_2="${api[2]}"
    MARGO_PG_PASSWORD=$(openssl rand -hex 24)
    export MARGO_PG_PASSWORD
    compose_up || return
    local t0=$SECONDS n
    read_token manager-1 "$tmp/token-1" && read_token manager-2 "$tmp/token-2" || return
    m1() { MARGO_URL="http://127.0.0.1:${api[1]}" MARGO_TOKEN_FILE="$tmp/token-1" "$ctl" "$@"; }
    m2() { MARGO_URL="http://127.0.0.1:${api[2]}" MARGO_TOKEN_FILE="$tmp/token-2" "$ctl" "$@"; }
    local core=docker-core-device-1 edge=docker-edge-device-1
    for n in 1 2; do
        if wait_online 90 "m$n" -- "$core" "$edge"; then
            ok "manager-$n (127.0.0.1:${api[$n]}): both agents online with the compose type (the edge's through the bridge)"
        else
            bad "manager-$n: devices not online after 90 s: $listed"
            (cd "$src" && "${dc[@]}" logs --tail 15) 2>&1 | tail -n 100
            return
        fi
    done
    publish_sample || return
    m1 app add "$pkg" >/dev/null || { bad "app add through manager-1"; return; }
    grep -q '^hello-compose ' <<<"$(m2 app list 2>&1)" && ok "the app added through manager-1 is in manager-2's catalog" ||
        bad "manager-2 app list: $(m2 app list 2>&1)"
    local dep id_core port_core id_edge port_edge w watches=() wrc=0
    # each deployment watched through both managers from its start: the broker hands its
    # statuses to either manager, and every stream carries what both stored (livebus)
    dep=$(deploy_sample m1 -- "$core" "Hello core") || return
    read -r id_core port_core <<<"$dep"
    m1 watch "$id_core" --timeout 180 >"$tmp/watch-core-m1.txt" 2>&1 &
    watches+=($!)
    m2 watch "$id_core" --timeout 180 >"$tmp/watch-core-m2.txt" 2>&1 &
    watches+=($!)
    dep=$(deploy_sample m1 -- "$edge" "Hello edge") || return
    read -r id_edge port_edge <<<"$dep"
    m1 watch "$id_edge" --timeout 180 >"$tmp/watch-edge-m1.txt" 2>&1 &
    watches+=($!)
    m2 watch "$id_edge" --timeout 180 >"$tmp/watch-edge-m2.txt" 2>&1 &
    watches+=($!)
    for w in "${watches[@]}"; do wait "$w" || wrc=1; done
    [ "$wrc" = 0 ] &&
        ok "margoctl watch through manager-1 and through manager-2: both deployments installed (live events of both managers on each stream)" ||
        bad "watch: $(tail -n 2 "$tmp"/watch-*-m?.txt)"
    if wait_state 180 installed m1 -- "$id_core" "$id_edge"; then
        ok "deployed through manager-1: installed on the core's and the edge's agent (manager-1's status)"
    else
        bad "not installed through manager-1 after 180 s: $listed"
        (cd "$src" && "${dc[@]}" logs --tail 30 agent-core agent-edge) 2>&1 | tail -n 60
        return
    fi
    wait_page "$port_core" "Hello core" && wait_page "$port_edge" "Hello edge" &&
        ok "both workloads answer on the host" || bad "a workload answered '$got'"
    wait_state 10 installed m2 -- "$id_core" "$id_edge" &&
        ok "manager-2 shows both deployments installed" || bad "manager-2 status: $listed"

    # kill (SIGKILL) the manager that holds the publisher lease; the other serves and takes it
    local holder survivor s
    holder=$(lease_holder)
    [ -n "$holder" ] || { bad "no manager holds the publisher lease (/metrics)"; return; }
    [ "$holder" = manager-1 ] && s=2 || s=1
    survivor=manager-$s
    (cd "$src" && "${dc[@]}" kill -s SIGKILL "$holder") >"$tmp/kill.log" 2>&1 ||
        { bad "docker-compose kill $holder: $(cat "$tmp/kill.log")"; return; }
    ok "$holder (the publisher-lease holder) killed with SIGKILL"
    "m$s" device list >/dev/null 2>&1 && ok "$survivor still serves the API" ||
        bad "$survivor does not serve after $holder was killed"
    "m$s" deployment update "$id_core" --set "greeting=Core after failover" >/dev/null &&
        "m$s" deployment update "$id_edge" --set "greeting=Edge after failover" >/dev/null ||
        bad "deployment update through $survivor refused"
    if wait_page "$port_core" "Core after failover" 180 && wait_page "$port_edge" "Edge after failover" 180 &&
        wait_state 60 installed "m$s" -- "$id_core" "$id_edge"; then
        ok "reconfigured both through $survivor after the failover: both pages changed, both installed"
    else
        bad "reconfigure through $survivor: page '$got', status $listed"
    fi
    [ "$(lease_holder)" = "$survivor" ] && ok "$survivor holds the publisher lease" ||
        bad "$survivor does not hold the publisher lease"

    # restart the edge broker (and with it the bridge): the edge's agent comes back and a
    # removal through the bridge converges
    local conns
    conns=$(cd "$src" && "${dc[@]}" logs agent-edge 2>&1 | grep -c 'agent: connected')
    (cd "$src" && timeout 120 "${dc[@]}" restart edge) >"$tmp/restart-edge.log" 2>&1 ||
        { bad "docker-compose restart edge: $(cat "$tmp/restart-edge.log")"; return; }
    for _ in $(seq 1 60); do
        [ "$(cd "$src" && "${dc[@]}" logs agent-edge 2>&1 | grep -c 'agent: connected')" -gt "$conns" ] && break
        sleep 1
    done
    [ "$(cd "$src" && "${dc[@]}" logs agent-edge 2>&1 | grep -c 'agent: connected')" -gt "$conns" ] &&
        ok "edge broker restarted: the edge's agent connected to it again" ||
        bad "the edge's agent did not reconnect within 60 s of the edge's restart"
    if wait_online 90 "m$s" -- "$edge"; then
        ok "$edge online through $survivor after the edge's restart"
    else
        bad "$edge not online 90 s after the edge's restart: $listed"
    fi
    "m$s" deployment rm "$id_edge" >/dev/null && "m$s" deployment rm "$id_core" >/dev/null ||
        bad "deployment rm through $survivor"
    for _ in $(seq 1 120); do
        [ "$(workloads "$id_core" "$id_edge")" -eq 0 ] && break
        sleep 1
    done
    n=$(workloads "$id_core" "$id_edge")
    [ "$n" -eq 0 ] && ok "both removed through $survivor (the edge's through the restarted bridge): no workload container left" ||
        bad "$n workload containers left 120 s after the removal"
    # the agents' `removed` statuses: the edge's crossed the restarted bridge outwards
    wait_state 60 removed "m$s" -- "$id_core" "$id_edge" &&
        ok "$survivor shows both removed (the edge's status through the restarted bridge)" ||
        bad "removal status through $survivor: $listed"

    # the killed manager back: it serves again next to the survivor
    (cd "$src" && "${dc[@]}" start "$holder") >/dev/null 2>&1 || bad "docker-compose start $holder"
    [ "$holder" = manager-1 ] && n=1 || n=2
    if wait_online 60 "m$n" -- "$core" "$edge"; then
        ok "$holder started again: serves, both devices online"
    else
        bad "$holder after its restart: $listed"
    fi
    echo "note: the checks after 'docker-compose up' took $((SECONDS - t0)) s"
}

case "$mode" in
    config) check_config ;;
    scale-config) check_scale_config ;;
    up) [ $# -eq 2 ] || { echo "usage: $0 up MARGOCTL" >&2; exit 2; }; check_config; run_up "$2" ;;
    scale-up)
        [ $# -eq 2 ] || { echo "usage: $0 scale-up MARGOCTL" >&2; exit 2; }
        check_scale_config
        run_scale_up "$2" ;;
    *) echo "usage: $0 config | scale-config | up MARGOCTL | scale-up MARGOCTL" >&2; exit 2 ;;
esac
[ "$fails" -eq 0 ] && echo "PASSED" || { echo "$fails check(s) failed"; exit 1; }
