#!/usr/bin/env bash
# wire_schemas.sh - every message margo-manager and margo-agent put on the wire validates
# against the JSON Schemas of docs/schemas/, and every topic kind is seen.
#
# Runs the real binaries of the build folder: the stack's broker (scripts/margo-stack.sh),
# a recorder subscribed to '#' before anything else connects (wire_record.py), margo-manager
# with a signing key, and two agents whose Helm runtime is tests/agent/fake-helm (no
# cluster). Traffic: registration (presence, capabilities), deploy hello-helm with
# parameters (deployment document, desired manifest, pending -> installing -> installed), a
# reconfigure, a failing update (status with errors), undecodable documents and manifests
# published by hand (events), removal (removed, deployment cleared), a clean agent stop
# (offline presence) and a kill -9 of the other agent (its last will). Then
# wire_validate.py checks each recorded message against its topic's schema, the topic/payload
# ids and the retain flags, and that every kind and each listed case was seen. A rollout to the
# second agent puts the fleet roll-ups on the wire.
#
#   wire_schemas.sh MARGOCTL MARGO-MANAGER MARGO-AGENT
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: $0 MARGOCTL MARGO-MANAGER MARGO-AGENT" >&2; exit 2; }
export MS_CTL="$1" MS_MANAGER="$2" MS_AGENT="$3"
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/scripts/margo-stack.sh"
PY=/usr/bin/python3
FAKE_HELM="$src/tests/agent/fake-helm"

fails=0
T0=$SECONDS
log() { printf '[wire %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
ok() { log "ok: $*"; }
bad() { log "FAIL: $*"; fails=$((fails + 1)); }
fatal() { log "FATAL: $*"; fails=$((fails + 1)); exit 1; }
ctl() { "$MS_CTL" "$@"; }

dir=$(mktemp -d /tmp/mgo-wire-XXXXXX)
rec_pid=""
finish() {
    trap - EXIT
    [ -n "$rec_pid" ] && { kill -TERM "$rec_pid" 2>/dev/null; wait "$rec_pid" 2>/dev/null; }
    ms_cleanup || bad "left running after cleanup:$MS_LEFT"
    if [ "$fails" -eq 0 ]; then
        rm -rf "$dir"
        log "PASSED"
        exit 0
    fi
    log "$fails check(s) failed; record and logs in $dir (wire.jsonl, manager.log, agent-*.log)"
    for f in "$dir/manager.log" "$dir"/agent-*.log; do
        [ -f "$f" ] && { echo "---- tail of $f"; tail -n 20 "$f"; }
    done
    exit 1
}
trap finish EXIT
trap 'fatal "interrupted"' INT TERM

$PY -c 'import paho.mqtt.client, msgpack, jsonschema' 2>/dev/null ||
    fatal "python3-paho-mqtt, python3-msgpack or python3-jsonschema missing (run: bash scripts/setup.sh)"
for b in "$MS_CTL" "$MS_MANAGER" "$MS_AGENT"; do [ -x "$b" ] || fatal "binary $b missing"; done
MS_BROKER_PORT=$(mgo_free_port) && MS_API_PORT=$(mgo_free_port) || fatal "no free loopback port"
export MS_BROKER_PORT MS_API_PORT
ms_init_broker "$dir" || fatal "prerequisites missing"
ms_broker_start || fatal "broker"

$PY "$src/tests/scripts/wire_record.py" 127.0.0.1 "$MS_BROKER_PORT" "$dir/wire.jsonl" \
    >"$dir/recorder.log" 2>&1 &
rec_pid=$!
ms_wait 10 "the recorder's subscription (log: $dir/recorder.log)" test -e "$dir/wire.jsonl.ready" ||
    fatal "recorder"

openssl ecparam -name prime256v1 -genkey -noout -out "$dir/signing.pem" 2>/dev/null ||
    fatal "openssl could not make a signing key"
ms_manager_start --signing-key "$dir/signing.pem" || fatal "manager"

# agent DEVICE [OPTION VALUE]...: an agent with the fake Helm runtime and no Compose runtime.
agent() {
    local dev="$1"
    shift
    mkdir -p "$dir/agent-$dev" "$dir/helm-$dev"
    FAKE_HELM_STATE="$dir/helm-$dev" FAKE_HELM_LOG="$dir/helm-$dev.log" \
        _ms_bg "agent-$dev" "$MS_AGENT" --device-id "$dev" --broker-url "$MS_BROKER_URL" \
        --state-dir "$dir/agent-$dev" --compose-command margo-no-compose-here \
        --helm-command "$FAKE_HELM" --settle-ms 100 --reconcile-interval 3600 \
        --label site=wire --label rack=2 --memory 1Gi --storage 2Gi --cpu-cores 1.5 "$@"
    ms_wait 30 "device $dev in the manager (log: $dir/agent-$dev.log)" _ms_device_known "$dev" ||
        fatal "agent $dev"
}
agent wire-dev-1
# otelCollector is the agent's otel-collector setting (docs/protocol.md 3.5): default false
# (wire-dev-1, like the demo), true where the operator says a collector runs (wire-dev-2).
agent wire-dev-2 --otel-collector true
ok "manager and two agents up (broker $MS_BROKER_URL)"

ctl app add "$src/examples/hello-helm" >/dev/null || fatal "app add hello-helm"
out=$(ctl deploy hello-helm --device wire-dev-1 --no-prompt --set "greeting=Schema check" 2>&1) ||
    fatal "deploy: $out"
id=$(grep -oE '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' <<<"$out" | head -n1)
ctl watch "$id" --timeout 60 >"$dir/watch-1.txt" 2>&1 && ok "deployed $id: installed" ||
    bad "deploy did not reach installed: $(tail -n 3 "$dir/watch-1.txt")"
ctl deployment update "$id" --set "greeting=Reconfigured" >/dev/null || bad "reconfigure refused"
ctl watch "$id" --timeout 60 >"$dir/watch-2.txt" 2>&1 && ok "reconfigured: installed" ||
    bad "reconfigure did not reach installed: $(tail -n 3 "$dir/watch-2.txt")"

# A rollout with a real agent (docs/rollouts.md): hello-helm deployed to wire-dev-2 by a
# rollout; its summary goes out on the fleet roll-up topic, the app's on fleet/apps.
out=$(ctl rollout create hello-helm --mode deploy --device wire-dev-2 --set "greeting=Rolled out" \
    --json 2>&1) || bad "rollout create: $out"
rid=$(grep -oE '"id":"[0-9a-f-]{36}"' <<<"$out" | head -n1 | cut -d'"' -f4)
ctl rollout show "$rid" --watch >"$dir/rollout.txt" 2>&1 && ok "rollout $rid succeeded" ||
    bad "rollout did not succeed: $(tail -n 3 "$dir/rollout.txt")"

# A failing Helm upgrade: a status with component and overall errors. fake-helm reads its mode
# from the agent's environment, so this agent is restarted with the failure mode.
ms_stop agent-wire-dev-1 || true
FAKE_HELM_MODE_UPGRADE=failure agent wire-dev-1
ctl deployment update "$id" --set "greeting=Fails" >/dev/null || bad "second reconfigure refused"
ctl watch "$id" --timeout 60 >"$dir/watch-3.txt" 2>&1
[ $? -eq 1 ] && ok "failing upgrade reported failed" ||
    bad "failing upgrade did not end failed: $(tail -n 3 "$dir/watch-3.txt")"

# Events: messages the agent must refuse, published by hand (not retained).
P=(-h 127.0.0.1 -p "$MS_BROKER_PORT" -V mqttv5 -q 1)
bad_doc_topic=margo/v1/devices/wire-dev-2/deployments/00000000-0000-4000-8000-000000000001
bad_desired_topic=margo/v1/devices/wire-dev-2/desired
mosquitto_pub "${P[@]}" -t "$bad_doc_topic" -m 'not messagepack' || bad "publishing a bad document"
mosquitto_pub "${P[@]}" -t "$bad_desired_topic" -m 'not messagepack either' ||
    bad "publishing a bad manifest"

ms_stop agent-wire-dev-1 || true
agent wire-dev-1
ctl deployment rm "$id" >/dev/null || bad "deployment rm"
ctl watch "$id" --timeout 60 >"$dir/watch-rm.txt" 2>&1 && ok "removed" ||
    bad "remove did not finish: $(tail -n 3 "$dir/watch-rm.txt")"
sleep 1 # the manager clears the removed deployment's document after storing `removed`

ms_stop agent-wire-dev-1 && ok "agent wire-dev-1 stopped cleanly (offline presence)" ||
    bad "agent wire-dev-1 exit status"
pid=$(awk '$1 == "agent-wire-dev-2" { print $2 }' "$dir/pids" | tail -n1)
kill -KILL "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
sed -i '/^agent-wire-dev-2 /d' "$dir/pids"
will_seen() { [ "$(grep -c '"margo/v1/devices/wire-dev-2/state"' "$dir/wire.jsonl")" -ge 2 ]; }
ms_wait 10 "the last will of wire-dev-2" will_seen || bad "no last will of wire-dev-2 recorded"
sleep 1
ms_stop manager || bad "manager exit status"
kill -TERM "$rec_pid" 2>/dev/null && wait "$rec_pid" 2>/dev/null
rec_pid=""

# presence-offline: a clean stop's offline presence, with timestamp (docs/protocol.md 6.1)
if $PY "$src/tests/scripts/wire_validate.py" "$src/docs/schemas" "$dir/wire.jsonl" \
    --foreign "$bad_doc_topic" --foreign "$bad_desired_topic" \
    --need presence-online --need presence-offline --need presence-will \
    --need status-pending --need status-installing --need status-installed \
    --need status-failed --need status-error --need status-removing --need status-removed \
    --need event-deployment-invalid --need event-manifest-invalid \
    --need desired-signed --need deployment-signed \
    --need deployment-app-version --need status-app-version \
    --need capabilities-otel-false --need capabilities-otel-true; then
    ok "recorded traffic validates against docs/schemas/"
else
    bad "recorded traffic does not validate (record: $dir/wire.jsonl)"
fi
