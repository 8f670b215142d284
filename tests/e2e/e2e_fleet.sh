# shellcheck shell=bash
# shellcheck disable=SC2154,SC2015 # the variables and the `check && ok || bad` idiom of e2e_compose.sh
# e2e_fleet.sh - the `fleet` mode of e2e_compose.sh (sourced by it, after its stack is up: the
# MQTT agent $DEV, the HTTP agent $HDEV on the southbound API, the manager with both
# listeners; it uses that script's ctl/ok/bad/fatal/body_is/until_state helpers).
# One fleet, both agents with the real Compose runtime (podman-compose):
#   both devices compatible, $HDEV bound `http`; hello-compose 1.0.0 deployed to each (the
#   HTTP one fetches it from GET /api/v1/deployments, the agent logs the verified manifest);
#   no MQTT desired state for $HDEV, its statuses copied retained on the MQTT status topic;
#   both pages answer with their greeting, two containers each; a reconfigure of each reaches
#   its container; a rollout of hello-compose 2.0.0 (a copy whose web component also serves
#   /version) over both devices with a canary batch of one succeeds on both, each container
#   serves 2.0.0 and kept its greeting; removal stops every container and closes the ports.

wp_m=$web_port wk_m=$worker_port # the MQTT device's ports (e2e_compose.sh picked them)
wp_h=$(mgo_free_port)
wk_h=$(mgo_free_port)

# ---------------------------------------------------------------- one fleet
ctl app add "$pkg" >/dev/null || fatal "app add hello-compose"
out=$(ctl device list --compatible hello-compose)
grep -E "^$DEV +online .* yes" <<<"$out" >/dev/null && grep -E "^$HDEV .* yes" <<<"$out" >/dev/null &&
    ok "both devices compatible with hello-compose" || bad "compatibility of both devices: $out"
binding() { ctl device show "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("binding"))'; }
b_m=$(binding "$DEV") b_h=$(binding "$HDEV")
[ "$b_m" = mqtt ] && [ "$b_h" = http ] && ok "bindings: $DEV mqtt, $HDEV http" ||
    bad "bindings: $DEV '$b_m', $HDEV '$b_h' (expected mqtt, http)"

# ---------------------------------------------------------------- deploy to both
deploy_to() { # deploy_to DEVICE GREETING WEB-PORT WORKER-PORT: prints the deployment id
    local out
    out=$(ctl deploy hello-compose --version 1.0.0 --device "$1" --no-prompt --set "greeting=$2" \
        --set "webPort=$3" --set "workerPort=$4" --set heartbeatSeconds=1 \
        --set siteName=fleet-site 2>&1) || { echo "deploy to $1 refused: $out" >&2; return 1; }
    grep -oE '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' <<<"$out" | head -n1
}
g_m="Hello MQTT device" g_h="Hello HTTP device"
id_m=$(deploy_to "$DEV" "$g_m" "$wp_m" "$wk_m") && [ -n "$id_m" ] || fatal "deploy to $DEV"
ms_track_deployment "$id_m"
id_h=$(deploy_to "$HDEV" "$g_h" "$wp_h" "$wk_h") && [ -n "$id_h" ] || fatal "deploy to $HDEV"
ms_track_deployment "$id_h"
for id in "$id_m" "$id_h"; do
    ctl watch "$id" --timeout 180 >"$dir/watch-$id.txt" 2>&1 && ok "watch $id: installed" ||
        fatal "watch $id: $(cat "$dir/watch-$id.txt")"
done
grep -E "wfm: manifest [0-9]+ verified" "$dir/agent-$HDEV.log" >/dev/null &&
    ok "the HTTP agent fetched and verified the manifest from the southbound API" ||
    bad "no 'wfm: manifest N verified' in $dir/agent-$HDEV.log"
retained=$(mosquitto_sub -p "$MS_BROKER_PORT" -h 127.0.0.1 -t "margo/v1/devices/$HDEV/desired" \
    -t "margo/v1/devices/$HDEV/deployments/+" -F '%t' -W 2 2>/dev/null)
[ -z "$retained" ] && ok "no MQTT desired state or deployment document for the HTTP device" ||
    bad "MQTT messages retained for the HTTP device: $retained"
copy=$(mosquitto_sub -p "$MS_BROKER_PORT" -h 127.0.0.1 -t "margo/v1/devices/$HDEV/status/$id_h" \
    -F '%t' -C 1 -W 5 2>/dev/null)
[ "$copy" = "margo/v1/devices/$HDEV/status/$id_h" ] &&
    ok "the HTTP device's status is copied, retained, on the MQTT status topic" ||
    bad "no retained MQTT copy of the HTTP device's status"

containers() { podman ps -q --filter "label=com.docker.compose.project=margo-$1" | wc -l; }
body_is "http://127.0.0.1:$wp_m/" "$g_m" 30 && ok "MQTT device's page: '$g_m'" ||
    bad "MQTT device's web component does not answer with its greeting"
body_is "http://127.0.0.1:$wp_h/" "$g_h" 30 && ok "HTTP device's page: '$g_h'" ||
    bad "HTTP device's web component does not answer with its greeting"
for id in "$id_m" "$id_h"; do
    n=$(containers "$id")
    [ "$n" -eq 2 ] && ok "deployment $id: two containers run" || bad "deployment $id: $n containers, expected 2"
done
hb=$(curl -fsS --max-time 2 "http://127.0.0.1:$wk_h/heartbeat" 2>/dev/null)
[[ "$hb" == "site=fleet-site beat="* ]] && ok "HTTP device's worker heartbeat: $hb" ||
    bad "HTTP device's worker heartbeat: '$hb'"

# ---------------------------------------------------------------- reconfigure both
g_m2="Reconfigured MQTT device" g_h2="Reconfigured HTTP device"
ctl deployment update "$id_m" --set "greeting=$g_m2" >/dev/null || bad "update of $id_m refused"
ctl deployment update "$id_h" --set "greeting=$g_h2" >/dev/null || bad "update of $id_h refused"
for id in "$id_m" "$id_h"; do
    ctl watch "$id" --timeout 180 >"$dir/watch-$id-2.txt" 2>&1 && ok "watch $id: reconfigured, installed" ||
        bad "reconfigure watch $id: $(cat "$dir/watch-$id-2.txt")"
done
body_is "http://127.0.0.1:$wp_m/" "$g_m2" 30 && ok "MQTT device's page after reconfigure: '$g_m2'" ||
    bad "MQTT device's page did not change after reconfigure"
body_is "http://127.0.0.1:$wp_h/" "$g_h2" 30 && ok "HTTP device's page after reconfigure: '$g_h2'" ||
    bad "HTTP device's page did not change after reconfigure"

# ---------------------------------------------------------------- rollout of 2.0.0 to both
# Version 2.0.0: a copy of the sample whose compose files are published at revision 2.0.0 and
# whose web component also serves /version.
v2="$dir/src/hello-compose-v2"
mkdir -p "$dir/src" && cp -R "$src/examples/hello-compose" "$v2" || fatal "copying the sample"
sed -i -e 's/^  version: 1\.0\.0$/  version: 2.0.0/' -e 's/revision: 1\.0\.0$/revision: 2.0.0/' \
    "$v2/margo.yaml"
sed -i 's#> /www/index.html && exec httpd#> /www/index.html \&\& echo 2.0.0 > /www/version \&\& exec httpd#' \
    "$v2/compose/web.yaml"
[ "$(grep -c -e '^  version: 2\.0\.0$' -e 'revision: 2\.0\.0$' "$v2/margo.yaml")" = 3 ] &&
    grep -q 'echo 2.0.0 > /www/version' "$v2/compose/web.yaml" ||
    fatal "the 2.0.0 copy of examples/hello-compose was not made (the sample changed?)"
pkg2=$(ms_publish "$v2") || fatal "publishing hello-compose 2.0.0"
ctl app add "$pkg2" >/dev/null || fatal "app add hello-compose 2.0.0"
out=$(ctl rollout create hello-compose --version 2.0.0 --mode upgrade --device "$DEV" \
    --device "$HDEV" --canary 1 --timeout 180 --soak 0 --json 2>&1) || fatal "rollout create: $out"
rid=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["id"])' "$out" 2>/dev/null)
[ -n "$rid" ] || fatal "no rollout id in: $out"
timeout 400 "$MS_CTL" rollout show "$rid" --watch >"$dir/rollout-watch.txt" 2>&1
rc=$?
[ "$rc" -eq 0 ] && ok "rollout $rid: succeeded ($(tail -n1 "$dir/rollout-watch.txt"))" ||
    bad "rollout watch exit $rc: $(cat "$dir/rollout-watch.txt")"
ctl rollout show "$rid" --json >"$dir/rollout.json" 2>&1
ctl rollout show "$rid" --targets --json >"$dir/rollout-targets.json" 2>&1
check=$(python3 - "$dir/rollout.json" "$dir/rollout-targets.json" "$DEV" "$HDEV" <<'PY'
import json, sys
ro = json.load(open(sys.argv[1]))
doc = json.load(open(sys.argv[2]))
targets = doc.get("targets", doc) if isinstance(doc, dict) else doc
problems = []
if ro.get("state") != "succeeded":
    problems.append(f"state {ro.get('state')!r}")
sizes = [b.get("size") for b in ro.get("batches", [])]
if sizes != [1, 1]:
    problems.append(f"batch sizes {sizes}, expected a canary of 1 then 1")
by_dev = {t.get("device"): t for t in targets}
for dev in sys.argv[3:]:
    t = by_dev.get(dev)
    if t is None or t.get("state") != "succeeded" or t.get("previousVersion") != "1.0.0":
        problems.append(f"target {dev}: {t}")
print("; ".join(problems))
PY
)
[ -z "$check" ] && ok "rollout: canary batch of 1 then 1, both targets succeeded from 1.0.0" ||
    bad "rollout documents: $check (see $dir/rollout*.json)"
version_of() { ctl deployment show "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin).get("version"))'; }
for id in "$id_m" "$id_h"; do
    v=$(version_of "$id")
    [ "$v" = 2.0.0 ] && ok "deployment $id at version 2.0.0" || bad "deployment $id at version '$v'"
done
body_is "http://127.0.0.1:$wp_m/version" "2.0.0" 30 && ok "MQTT device's container serves version 2.0.0" ||
    bad "MQTT device's container does not serve /version 2.0.0"
body_is "http://127.0.0.1:$wp_h/version" "2.0.0" 30 && ok "HTTP device's container serves version 2.0.0" ||
    bad "HTTP device's container does not serve /version 2.0.0"
body_is "http://127.0.0.1:$wp_m/" "$g_m2" 5 && body_is "http://127.0.0.1:$wp_h/" "$g_h2" 5 &&
    ok "both kept their reconfigured greeting through the upgrade" ||
    bad "a greeting was lost in the upgrade"
for id in "$id_m" "$id_h"; do
    n=$(containers "$id")
    [ "$n" -eq 2 ] && ok "deployment $id: two containers after the upgrade" ||
        bad "deployment $id: $n containers after the upgrade, expected 2"
done

# ---------------------------------------------------------------- remove both
for id in "$id_m" "$id_h"; do
    ctl deployment rm "$id" >/dev/null || bad "deployment rm $id"
done
for id in "$id_m" "$id_h"; do
    ctl watch "$id" --timeout 120 >"$dir/watch-$id-3.txt" 2>&1 && ok "watch $id: removed" ||
        bad "remove watch $id: $(cat "$dir/watch-$id-3.txt")"
    n=$(podman ps -aq --filter "label=com.docker.compose.project=margo-$id" | wc -l)
    [ "$n" -eq 0 ] && ok "deployment $id: containers removed" || bad "deployment $id: $n containers left"
done
for p in "$wp_m" "$wp_h"; do
    curl -fsS --max-time 2 "http://127.0.0.1:$p/" >/dev/null 2>&1 &&
        bad "port $p still answers after removal" || ok "port $p closed"
done

# fleet_copies_check: the manager's retained copies of $HDEV's statuses on the MQTT status
# topic (recorded in wire.jsonl) validate against docs/schemas/status.schema.json (a copy has
# no journal position, so no `x-margo-mqtt-extensions`: docs/margo-http.md "One fleet"), name
# the device and deployment of their topic, include installed and removed, and the topic ends
# cleared (the removal's empty retained message comes after the `removed` copy, so no stale
# status stays retained). Called by e2e_compose.sh after the recorder stopped.
fleet_copies_check() {
    /usr/bin/python3 - "$src/docs/schemas/status.schema.json" "$dir/wire.jsonl" \
        "margo/v1/devices/$HDEV/status/$id_h" "$HDEV" "$id_h" <<'PY'
import json, sys
import msgpack
from jsonschema import Draft202012Validator
schema_path, record, topic, dev, dep = sys.argv[1:]
schema = json.load(open(schema_path))
validator = Draft202012Validator(schema)
states, problems = set(), []
last_empty = False
for n, line in enumerate(open(record), 1):
    m = json.loads(line)
    if m["topic"] != topic:
        continue
    last_empty = not m["payload"]
    if last_empty:
        continue
    if "x-margo-mqtt-extensions" in msgpack.unpackb(bytes.fromhex(m["payload"]), raw=False):
        problems.append(f"line {n}: a copy with x-margo-mqtt-extensions (no journal over HTTP)")
    doc = msgpack.unpackb(bytes.fromhex(m["payload"]), raw=False)
    for e in validator.iter_errors(doc):
        problems.append(f"line {n}: {e.json_path}: {e.message}")
    if doc.get("deviceId") != dev or doc.get("deploymentId") != dep or not m["retain"]:
        problems.append(f"line {n}: device/deployment/retain do not match the topic")
    states.add((doc.get("status") or {}).get("state"))
for want in ("installed", "removed"):
    if want not in states:
        problems.append(f"no {want} copy (seen: {sorted(s for s in states if s)})")
if not last_empty:
    problems.append("the status topic is not cleared last: a stale retained status stays")
for p in problems:
    print("FAIL:", p)
sys.exit(1 if problems else 0)
PY
}
