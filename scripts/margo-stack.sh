# shellcheck shell=bash
# margo-stack.sh - sourced helper shared by scripts/demo.sh and tests/e2e: starts and stops a
# whole margo-mqtt stack on this machine with real parts and no system file changed:
# Mosquitto (broker-config/mosquitto.conf on a free loopback port), the loopback
# docker-registry and podman configuration of scripts/containers-env.sh, an offline busybox
# image, margo-manager and margo-agents. Everything lives under one folder and is stopped by
# ms_cleanup (only processes, containers and images this stack started).
#
#   MS_CTL=.../margoctl MS_MANAGER=.../margo-manager MS_AGENT=.../margo-agent
#   . scripts/margo-stack.sh
#   ms_init DIR                      folder for state, logs, configs
#   ms_init_broker DIR               instead of ms_init for a stack of only the broker
#   ms_broker_start                  sets MS_BROKER_PORT, MS_BROKER_URL
#   ms_broker_restart                stop (it saves) + start on the same port
#   ms_record_start / ms_record_check   record every message; validate against docs/schemas/
#   ms_registry_start                sets MS_REGISTRY (127.0.0.1:PORT); podman env exported
#   ms_image                         builds + pushes MS_IMAGE (REGISTRY/margo/examples/busybox:1)
#   ms_publish PACKAGE-DIR           prints the folder to `margoctl app add`
#   ms_manager_start                 sets MS_API_URL, MS_TOKEN_FILE, exports MARGO_URL/TOKEN_FILE
#   ms_agent_start DEVICE-ID [OPTION VALUE]...
#   ms_southbound_init CLIENT-ID...  before ms_manager_start: SVIDs (broker-config/svid.sh) in
#                                    $MS_DIR/pki; ms_manager_start then also serves the
#                                    southbound Margo HTTP API (docs/margo-http.md) at MS_WFM_URL
#   ms_http_agent_start DEVICE-ID [OPTION VALUE]...   `margoctl client allow`, then a
#                                    margo-agent --transport http (Compose runtime) on MS_WFM_URL
#   ms_track_deployment ID           its containers are removed by ms_cleanup
#   ms_cleanup                       stops everything (idempotent)
#   ms_wait SECONDS WHAT CMD...      polls CMD every 0.5 s; fails naming WHAT on timeout
#
# Every function prints a one-line reason on stderr and returns non-zero when it fails.

MS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
. "$MS_ROOT/scripts/containers-env.sh"

ms_say() { printf '   %s\n' "$*"; }
ms_fail() { printf '\033[31mFAILED:\033[0m %s\n' "$*" >&2; return 1; }

# ms_port_free PORT: true when nothing listens on 127.0.0.1:PORT.
ms_port_free() {
    python3 -c 'import socket,sys
s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind(("127.0.0.1", int(sys.argv[1])))
except OSError:
    sys.exit(1)' "$1"
}

# ms_pick_port PREFERRED: PREFERRED when free, else any free loopback port.
ms_pick_port() {
    if ms_port_free "$1"; then echo "$1"; else mgo_free_port; fi
}

ms_wait() {
    local secs="$1" what="$2"
    shift 2
    local deadline=$((SECONDS + secs))
    while ! "$@" >/dev/null 2>&1; do
        if [ "$SECONDS" -ge "$deadline" ]; then
            ms_fail "timed out after ${secs}s waiting for $what"
            return 1
        fi
        sleep 0.5
    done
}

ms_init() {
    _ms_init_dir "$1" || return 1
    local b
    for b in "$MS_CTL" "$MS_MANAGER" "$MS_AGENT"; do
        [ -x "$b" ] || { ms_fail "binary $b missing (build first)"; return 1; }
    done
    for b in mosquitto mosquitto_sub podman podman-compose docker-registry curl python3; do
        command -v "$b" >/dev/null ||
            { ms_fail "$b not installed (run: bash scripts/setup.sh containers)"; return 1; }
    done
}

# ms_init_broker DIR: like ms_init for a stack that is only the broker (ms_broker_start,
# ms_broker_restart, ms_cleanup): needs neither the margo binaries nor the container tools.
ms_init_broker() {
    _ms_init_dir "$1" || return 1
    local b
    for b in mosquitto mosquitto_sub python3; do
        command -v "$b" >/dev/null ||
            { ms_fail "$b not installed (run: bash scripts/setup.sh)"; return 1; }
    done
}

_ms_init_dir() {
    MS_DIR="$1"
    mkdir -p "$MS_DIR" || return 1
    MS_DIR=$(cd "$MS_DIR" && pwd)
    : >"$MS_DIR/pids"
    : >"$MS_DIR/deployments"
}

# _ms_bg NAME CMD...: starts CMD in the background, output in $MS_DIR/NAME.log, in its own
# session: a Ctrl-C on the terminal reaches the script, whose trap stops the daemons in order
# (agents, manager, broker), not the daemons all at once.
_ms_bg() {
    local name="$1"
    shift
    setsid "$@" >"$MS_DIR/$name.log" 2>&1 </dev/null &
    local pid=$!
    echo "$name $pid" >>"$MS_DIR/pids"
    eval "MS_PID_${name//[^A-Za-z0-9]/_}=$pid"
}

_ms_alive() { kill -0 "$1" 2>/dev/null; }

# ms_broker_start: Mosquitto with broker-config/mosquitto.conf, persisting in $MS_DIR/broker/.
# Started as root, Mosquitto switches to the user named by `user` (default `mosquitto`), and
# that user could not write $MS_DIR/broker/ (created by root, below a 0700 folder): every
# save failed with "Permission denied" and a restart lost all sessions and retained messages.
# So the broker runs as the user who starts the stack, like the manager and the agents.
ms_broker_start() {
    command -v mosquitto >/dev/null || { ms_fail "mosquitto not installed"; return 1; }
    MS_BROKER_PORT=$(ms_pick_port "${MS_BROKER_PORT:-1883}")
    mkdir -p "$MS_DIR/broker"
    # The development configuration as is, except the listener port, where it persists and
    # the user it runs as.
    sed -e "s|^listener 1883 127.0.0.1\$|listener $MS_BROKER_PORT 127.0.0.1|" \
        -e "s|^persistence_location .*|persistence_location $MS_DIR/broker/|" \
        "$MS_ROOT/broker-config/mosquitto.conf" >"$MS_DIR/mosquitto.conf"
    grep -q "^listener $MS_BROKER_PORT 127.0.0.1\$" "$MS_DIR/mosquitto.conf" ||
        { ms_fail "broker-config/mosquitto.conf has no 'listener 1883 127.0.0.1' line to move"; return 1; }
    grep -q "^persistence_location $MS_DIR/broker/\$" "$MS_DIR/mosquitto.conf" ||
        { ms_fail "broker-config/mosquitto.conf has no 'persistence_location' line to move"; return 1; }
    if grep -q '^user ' "$MS_DIR/mosquitto.conf"; then
        sed -i "s|^user .*|user $(id -un)|" "$MS_DIR/mosquitto.conf"
    else
        printf '\n# margo-stack.sh: run as the user who started the stack (it owns %s)\nuser %s\n' \
            "$MS_DIR/broker/" "$(id -un)" >>"$MS_DIR/mosquitto.conf"
    fi
    _ms_bg mosquitto mosquitto -c "$MS_DIR/mosquitto.conf"
    MS_BROKER_URL="tcp://127.0.0.1:$MS_BROKER_PORT"
    ms_wait 15 "Mosquitto on 127.0.0.1:$MS_BROKER_PORT (log: $MS_DIR/mosquitto.log)" \
        mosquitto_sub -p "$MS_BROKER_PORT" -h 127.0.0.1 -t 'margo/ready-check' -W 1 -E || return 1
}

# ms_broker_restart: stops the broker (SIGTERM: it saves its persistence file) and starts it
# again on the same port with the same configuration. Fails if the save failed (the broker's
# log says so) or the port was taken meanwhile.
ms_broker_restart() {
    local port="$MS_BROKER_PORT"
    ms_stop mosquitto || true
    if grep -E 'Error saving|Permission denied|Unable to open' "$MS_DIR/mosquitto.log" >&2; then
        ms_fail "Mosquitto could not save its persistence file (log: $MS_DIR/mosquitto.log)"
        return 1
    fi
    mv "$MS_DIR/mosquitto.log" "$MS_DIR/mosquitto.log.$(date +%s%N)"
    ms_port_free "$port" || { ms_fail "port $port taken while the broker restarted"; return 1; }
    MS_BROKER_PORT="$port"
    ms_broker_start || return 1
    [ "$MS_BROKER_PORT" = "$port" ] ||
        { ms_fail "the broker came back on port $MS_BROKER_PORT, not $port"; return 1; }
}

# ms_record_start: records every message on the broker into $MS_DIR/wire.jsonl
# (tests/scripts/wire_record.py, Debian's python3-paho-mqtt) from now on; returns once the
# recorder is subscribed. ms_record_check [--need CASE]... stops it and validates the record
# against docs/schemas/ (tests/scripts/wire_validate.py); ms_cleanup also stops it.
ms_record_start() {
    _ms_bg recorder /usr/bin/python3 "$MS_ROOT/tests/scripts/wire_record.py" 127.0.0.1 \
        "$MS_BROKER_PORT" "$MS_DIR/wire.jsonl"
    ms_wait 10 "the wire recorder's subscription (log: $MS_DIR/recorder.log)" \
        test -e "$MS_DIR/wire.jsonl.ready"
}

ms_record_check() {
    ms_stop recorder || true
    /usr/bin/python3 "$MS_ROOT/tests/scripts/wire_validate.py" "$MS_ROOT/docs/schemas" \
        "$MS_DIR/wire.jsonl" "$@"
}

ms_registry_start() {
    MS_REGISTRY_PORT=$(ms_pick_port "${MS_REGISTRY_PORT:-5000}")
    MS_REGISTRY="127.0.0.1:$MS_REGISTRY_PORT"
    export MGO_REGISTRY_PORT="$MS_REGISTRY_PORT"
    mgo_containers_env "$MS_DIR/containers" || return 1
    mgo_registry_start "$MS_DIR/registry" "$MS_REGISTRY_PORT" || return 1
    echo "registry $(cat "$MS_DIR/registry/registry.pid")" >>"$MS_DIR/pids"
}

ms_image() {
    MS_IMAGE="$MS_REGISTRY/margo/examples/busybox:1"
    mgo_busybox_image "$MS_DIR/image" "$MS_IMAGE" >"$MS_DIR/image.log" 2>&1 ||
        { ms_fail "building or pushing $MS_IMAGE (log: $MS_DIR/image.log)"; return 1; }
    echo "$MS_IMAGE" >"$MS_DIR/image.ref"
}

ms_publish() {
    bash "$MS_ROOT/scripts/publish-package.sh" --registry "$MS_REGISTRY" \
        --out "$MS_DIR/packages/$(basename "$1")" "$1"
}

ms_manager_start() {
    MS_API_PORT=$(ms_pick_port "${MS_API_PORT:-8080}")
    MS_API_URL="http://127.0.0.1:$MS_API_PORT"
    MS_TOKEN_FILE="$MS_DIR/manager/api-token"
    mkdir -p "$MS_DIR/manager"
    _ms_bg manager "$MS_MANAGER" --state-dir "$MS_DIR/manager" --broker-url "$MS_BROKER_URL" \
        --client-id "margo-manager-$$" --api-listen "127.0.0.1:$MS_API_PORT" \
        ${MS_SOUTHBOUND_ARGS[@]+"${MS_SOUTHBOUND_ARGS[@]}"} "$@"
    export MARGO_URL="$MS_API_URL" MARGO_TOKEN_FILE="$MS_TOKEN_FILE"
    ms_wait 20 "margo-manager's API on $MS_API_URL (log: $MS_DIR/manager.log)" \
        _ms_api_up || return 1
}

_ms_api_up() {
    _ms_alive "${MS_PID_manager:-0}" || return 1
    [ -s "$MS_TOKEN_FILE" ] && "$MS_CTL" app list >/dev/null 2>&1
}

# ms_agent_start DEVICE [OPTION VALUE]...: one margo-agent with a Compose runtime.
ms_agent_start() {
    local dev="$1"
    shift
    mkdir -p "$MS_DIR/agent-$dev"
    _ms_bg "agent-$dev" "$MS_AGENT" --device-id "$dev" --broker-url "$MS_BROKER_URL" \
        --state-dir "$MS_DIR/agent-$dev" --compose-command podman-compose \
        --container-command podman --helm-command margo-no-helm-here \
        --oci-plain-http "$MS_REGISTRY" --reconcile-interval 10 --settle-ms 200 \
        --default-timeout 120 "$@"
    ms_wait 30 "device $dev to appear in the manager (agent log: $MS_DIR/agent-$dev.log)" \
        _ms_device_known "$dev" || return 1
}

# ms_southbound_init CLIENT-ID...: mints the trust anchor, the WFM's SVID and one client SVID
# per CLIENT-ID in $MS_DIR/pki (trust domain margo-stack.test, WFM id wfm-1) and picks a free
# loopback port: the next ms_manager_start serves the southbound API there (MS_WFM_URL).
ms_southbound_init() {
    MS_PKI="$MS_DIR/pki"
    local args=() c
    for c in "$@"; do args+=(--client "$c"); done
    sh "$MS_ROOT/broker-config/svid.sh" --trust-domain margo-stack.test --wfm-id wfm-1 \
        "${args[@]}" "$MS_PKI" >"$MS_DIR/svid.log" 2>&1 ||
        { ms_fail "minting SVIDs (log: $MS_DIR/svid.log)"; return 1; }
    MS_SOUTHBOUND_PORT=$(ms_pick_port "${MS_SOUTHBOUND_PORT:-8443}")
    MS_WFM_URL="https://127.0.0.1:$MS_SOUTHBOUND_PORT"
    MS_SOUTHBOUND_ARGS=(--margo-api-listen "127.0.0.1:$MS_SOUTHBOUND_PORT"
        --margo-api-cert "$MS_PKI/wfm.crt" --margo-api-key "$MS_PKI/wfm.key"
        --margo-api-client-ca "$MS_PKI/svid-ca.crt" --trust-domain margo-stack.test
        --wfm-id wfm-1)
}

# ms_http_agent_start DEVICE [OPTION VALUE]...: accepts DEVICE's client SVID on the manager,
# then starts a margo-agent with the HTTP transport (poll every second) and the same Compose
# runtime options as ms_agent_start (its broker-url does not apply over HTTP).
ms_http_agent_start() {
    local dev="$1"
    shift
    [ -n "${MS_WFM_URL:-}" ] || { ms_fail "ms_http_agent_start: no ms_southbound_init"; return 1; }
    "$MS_CTL" client allow "$dev" >/dev/null || { ms_fail "margoctl client allow $dev"; return 1; }
    ms_agent_start "$dev" --transport http --wfm-url "$MS_WFM_URL" \
        --cert-file "$MS_PKI/clients/$dev.crt" --key-file "$MS_PKI/clients/$dev.key" \
        --ca-file "$MS_PKI/svid-ca.crt" --poll-interval 1 "$@"
}

_ms_device_known() {
    "$MS_CTL" device show "$1" >/dev/null 2>&1
}

ms_track_deployment() { echo "$1" >>"$MS_DIR/deployments"; }

# Stops one process by pid: SIGTERM, then SIGKILL after 10 s. Returns its exit status.
_ms_stop_pid() {
    local pid="$1"
    _ms_alive "$pid" || { wait "$pid" 2>/dev/null; return $?; }
    kill -TERM "$pid" 2>/dev/null
    for _ in $(seq 1 100); do
        _ms_alive "$pid" || break
        sleep 0.1
    done
    if _ms_alive "$pid"; then
        kill -KILL "$pid" 2>/dev/null
        echo "   (pid $pid did not stop within 10 s; killed)" >&2
    fi
    wait "$pid" 2>/dev/null
}

# ms_stop NAME: stops the process started under NAME; returns its exit status.
ms_stop() {
    local name="$1" pid
    pid=$(awk -v n="$name" '$1 == n { print $2 }' "$MS_DIR/pids" 2>/dev/null | tail -n1)
    [ -n "$pid" ] || return 0
    sed -i "/^$name $pid\$/d" "$MS_DIR/pids"
    _ms_stop_pid "$pid"
}

# ms_cleanup: stops everything this stack started. Sets MS_LEFT to what is still there
# afterwards ("" when nothing) and returns 1 if something is.
ms_cleanup() {
    MS_LEFT=""
    [ -n "${MS_DIR:-}" ] && [ -d "$MS_DIR" ] || return 0
    local name pid id all_pids tracked
    all_pids=$(awk '{ print $2 }' "$MS_DIR/pids" 2>/dev/null)
    tracked=$(cat "$MS_DIR/deployments" 2>/dev/null)
    # Agents and the manager first (they talk to the broker), the broker and registry last.
    for name in $(awk '$1 ~ /^agent-/ { print $1 }' "$MS_DIR/pids") manager; do
        ms_stop "$name" || true
    done
    # Also every compose project an agent of this stack ran (its working directory is under
    # MS_DIR), e.g. deployments made by hand on a stack kept with demo.sh --keep.
    local p
    for p in $(podman ps -a --format '{{index .Labels "com.docker.compose.project"}} {{index .Labels "com.docker.compose.project.working_dir"}}' 2>/dev/null |
               awk -v d="$MS_DIR/" 'index($2, d) == 1 && $1 ~ /^margo-/ { print substr($1, 7) }' | sort -u); do
        grep -qx "$p" <<<"$tracked" || tracked="$tracked $p"
    done
    for id in $tracked; do
        local project="margo-${id,,}" ids
        ids=$(podman ps -aq --filter "label=com.docker.compose.project=$project" 2>/dev/null)
        [ -z "$ids" ] || podman rm -f $ids >/dev/null 2>&1 || true
        podman network rm "${project}_default" >/dev/null 2>&1 || true
    done
    ms_stop recorder || true
    ms_stop mosquitto || true
    if grep -q '^registry ' "$MS_DIR/pids" 2>/dev/null; then
        mgo_registry_stop "$MS_DIR/registry"
        sed -i '/^registry /d' "$MS_DIR/pids"
    fi
    if [ -f "$MS_DIR/image.ref" ]; then
        podman rmi -f "$(cat "$MS_DIR/image.ref")" >/dev/null 2>&1 || true
        rm -f "$MS_DIR/image.ref"
    fi
    # What is still there: processes we started, containers of our deployments.
    for pid in $all_pids; do
        for _ in $(seq 1 30); do _ms_alive "$pid" || break; sleep 0.1; done
        if _ms_alive "$pid"; then MS_LEFT="$MS_LEFT process $pid;"; fi
    done
    for id in $tracked; do
        local n
        n=$(podman ps -aq --filter "label=com.docker.compose.project=margo-${id,,}" 2>/dev/null | wc -l)
        [ "$n" = 0 ] || MS_LEFT="$MS_LEFT $n container(s) of deployment $id;"
    done
    : >"$MS_DIR/deployments"
    [ -z "$MS_LEFT" ]
}
