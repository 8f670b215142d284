#!/usr/bin/env bash
# e2e_compose.sh - the README's main job without a person, with the real binaries of the
# build folder, real Mosquitto (broker-config/mosquitto.conf), a loopback docker-registry and
# podman + podman-compose (scripts/margo-stack.sh):
#   catalog, compatible devices, refused answers (nothing published), deploy with parameters,
#   the workload answers with the parameter's text, reconfigure, immutable change refused,
#   remove, an image missing from the registry ends `failed` with podman's reason in
#   `margoctl status`, clean SIGTERM exits of manager and agent, nothing left running, and every
#   message on the wire valid against docs/schemas/ (a recorder subscribed to #).
#
#   e2e_compose.sh flow|missing-image|fleet MARGOCTL MARGO-MANAGER MARGO-AGENT
#     flow           everything above except the missing image
#     missing-image  only the missing-image failure path (its own stack)
#     fleet          one fleet of an MQTT agent and an HTTP agent (`--transport http` on the
#                    manager's southbound Margo API, mutual TLS with SVIDs of svid.sh), both
#                    with the real Compose runtime: deploy, reconfigure, a canary rollout of a
#                    version 2.0.0 covering both, remove (issue 15's interoperability evidence)
# Every wait is bounded; a failure names the step and keeps the logs (path printed).
set -uo pipefail
[ $# -eq 4 ] && { [ "$1" = flow ] || [ "$1" = missing-image ] || [ "$1" = fleet ]; } ||
    { echo "usage: $0 flow|missing-image|fleet MARGOCTL MARGO-MANAGER MARGO-AGENT" >&2; exit 2; }
MODE="$1"
export MS_CTL="$2" MS_MANAGER="$3" MS_AGENT="$4"
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/scripts/margo-stack.sh"

DEV=e2e-dev-1
HDEV=e2e-http-1 # fleet: the HTTP agent
fails=0
T0=$SECONDS
log() { printf '[e2e %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
ok() { log "ok: $*"; }
bad() { log "FAIL: $*"; fails=$((fails + 1)); }
fatal() { log "FATAL: $*"; fails=$((fails + 1)); exit 1; }
ctl() { "$MS_CTL" "$@"; }

dir=$(mktemp -d /tmp/mgo-e2e-XXXXXX)
finish() {
    trap - EXIT
    if ! ms_cleanup; then bad "left running after cleanup:$MS_LEFT"; fi
    if [ "$fails" -eq 0 ]; then
        rm -rf "$dir"
        log "PASSED"
        exit 0
    fi
    rm -rf "$dir/image" "$dir/registry/registry-data"
    log "$fails check(s) failed; logs in $dir (manager.log, agent-$DEV.log, mosquitto.log)"
    for f in "$dir/manager.log" "$dir/agent-$DEV.log" "$dir/agent-$HDEV.log"; do
        [ -f "$f" ] && { echo "---- tail of $f"; tail -n 30 "$f"; }
    done
    exit 1
}
trap finish EXIT
trap 'fatal "interrupted"' INT TERM

# Ports are taken free, never the defaults: a demo may be running on this machine.
MS_BROKER_PORT=$(mgo_free_port) && MS_REGISTRY_PORT=$(mgo_free_port) && MS_API_PORT=$(mgo_free_port) ||
    fatal "no free loopback port"
export MS_BROKER_PORT MS_REGISTRY_PORT MS_API_PORT
[ "$MODE" != fleet ] || { MS_SOUTHBOUND_PORT=$(mgo_free_port) || fatal "no free loopback port"; }
ms_init "$dir" || fatal "prerequisites missing"
ms_broker_start || fatal "broker"
ms_record_start || fatal "wire recorder"
ms_registry_start || fatal "registry"
ms_image || fatal "image"
pkg=$(ms_publish "$src/examples/hello-compose") || fatal "publishing examples/hello-compose"
grep -q "oci://$MS_REGISTRY/margo/examples/hello-compose/web" "$pkg/margo.yaml" ||
    fatal "publish-package.sh --registry did not point the package at $MS_REGISTRY"
[ "$MODE" != fleet ] || ms_southbound_init "$HDEV" || fatal "SVIDs for the southbound API"
ms_manager_start --log-level debug || fatal "manager"
ms_agent_start "$DEV" || fatal "agent"
if [ "$MODE" = fleet ]; then
    ms_http_agent_start "$HDEV" || fatal "HTTP agent"
    log "southbound Margo API $MS_WFM_URL"
fi
log "stack up: broker $MS_BROKER_URL, registry $MS_REGISTRY, API $MS_API_URL"

# until_state ID STATE SECONDS: polls `margoctl deployment show` (no event stream).
until_state() {
    local st="" deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        st=$(ctl deployment show "$1" --json 2>/dev/null |
             python3 -c 'import json,sys; print(json.load(sys.stdin).get("state") or "")' 2>/dev/null)
        [ "$st" = "$2" ] && return 0
        sleep 1
    done
    echo "deployment $1 is '$st' after $3 s, expected '$2'" >&2
    return 1
}
body_is() { # body_is URL WANT SECONDS
    local got="" deadline=$((SECONDS + $3))
    while [ "$SECONDS" -lt "$deadline" ]; do
        got=$(curl -fsS --max-time 2 "$1" 2>/dev/null)
        [ "$got" = "$2" ] && return 0
        sleep 0.5
    done
    echo "$1 answered '$got'" >&2
    return 1
}
web_port=$(mgo_free_port)
worker_port=$(mgo_free_port)
if [ "$MODE" = flow ]; then

# ---------------------------------------------------------------- catalog, compatibility
ctl app add "$pkg" >/dev/null || fatal "app add hello-compose"
ctl app add "$src/examples/hello-helm" >/dev/null || fatal "app add hello-helm"
out=$(ctl device list --compatible hello-compose)
grep -E "^$DEV +online .* yes" <<<"$out" >/dev/null && ok "device compatible with hello-compose" ||
    bad "device not listed as compatible with hello-compose: $out"
out=$(ctl device list --compatible hello-helm)
grep -E "^$DEV .* no +deployment type: .*helm" <<<"$out" >/dev/null &&
    ok "hello-helm: device not compatible, reason names the deployment type" ||
    bad "hello-helm compatibility: $out"

# ---------------------------------------------------------------- refused answers
# Everything published for the device while bad answers are sent; and retained afterwards.
mosquitto_sub -p "$MS_BROKER_PORT" -h 127.0.0.1 -t "margo/v1/devices/$DEV/#" -v -F '%t' \
    >"$dir/sub-bad.txt" 2>&1 &
sub=$!
sleep 1
refuse() { # refuse WHAT EXPECTED-TEXT ARGS...
    local what="$1" want="$2"
    shift 2
    local err rc
    err=$(ctl deploy hello-compose --device "$DEV" --no-prompt "$@" 2>&1 >/dev/null)
    rc=$?
    if [ "$rc" -ne 0 ] && grep -qF -- "$want" <<<"$err"; then
        ok "refused $what: $(tr '\n' ' ' <<<"$err" | cut -c1-150)"
    else
        bad "$what: exit $rc, expected a refusal mentioning '$want', got: $err"
    fi
}
refuse "port below the schema's minValue" "webPort" --set webPort=80 --set workerPort="$worker_port"
refuse "greeting shorter than minLength" "greeting" --set greeting=x --set webPort="$web_port"
refuse "siteName not matching regexMatch" "siteName" --set "siteName=Bad Site" --set webPort="$web_port"
refuse "a port that is not an integer (refused by margoctl)" "webPort" --set webPort=eighty
refuse "an unknown parameter" "nosuch" --set nosuch=1 --set webPort="$web_port"
sleep 1
kill "$sub" 2>/dev/null
wait "$sub" 2>/dev/null
if grep -E '/(desired|deployments/)' "$dir/sub-bad.txt"; then
    bad "a desired state or deployment was published for a refused answer"
else
    ok "nothing published on desired/deployments while answers were refused"
fi
retained=$(mosquitto_sub -p "$MS_BROKER_PORT" -h 127.0.0.1 -t "margo/v1/devices/$DEV/desired" \
    -t "margo/v1/devices/$DEV/deployments/+" -F '%t' -W 2 2>/dev/null)
[ -z "$retained" ] && ok "no retained desired/deployment message after the refusals" ||
    bad "retained messages after refusals: $retained"
[ -z "$(ctl deployment list --all --json | grep -o '"id"')" ] && ok "no deployment stored" ||
    bad "a deployment was stored for a refused answer"

# ---------------------------------------------------------------- deploy
greeting="Hello from the e2e test"
out=$(ctl deploy hello-compose --device "$DEV" --no-prompt --set "greeting=$greeting" \
    --set "webPort=$web_port" --set "workerPort=$worker_port" --set heartbeatSeconds=1 \
    --set siteName=e2e-site 2>&1) || fatal "deploy refused: $out"
id=$(grep -oE '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' <<<"$out" | head -n1)
[ -n "$id" ] || fatal "no deployment id in: $out"
ms_track_deployment "$id"
retained=$(mosquitto_sub -p "$MS_BROKER_PORT" -h 127.0.0.1 -t "margo/v1/devices/$DEV/desired" \
    -F '%t' -C 1 -W 5 2>/dev/null)
[ "$retained" = "margo/v1/devices/$DEV/desired" ] &&
    ok "after a valid deploy the retained desired state is there (the refusal check can see it)" ||
    bad "no retained desired state after a valid deploy"
ctl watch "$id" --timeout 180 >"$dir/watch-1.txt" 2>&1
rc=$?
[ "$rc" -eq 0 ] && ok "watch: installed" || fatal "watch exit $rc: $(cat "$dir/watch-1.txt")"
grep -q ' pending' "$dir/watch-1.txt" && grep -q ' installing' "$dir/watch-1.txt" &&
    ok "watch showed pending -> installing -> installed" ||
    bad "watch did not show the transitions: $(cat "$dir/watch-1.txt")"

body_is "http://127.0.0.1:$web_port/" "$greeting" 30 && ok "web answers with the greeting parameter" ||
    bad "web component does not answer with the greeting"
hb=$(curl -fsS --max-time 2 "http://127.0.0.1:$worker_port/heartbeat" 2>/dev/null)
[[ "$hb" == "site=e2e-site beat="* ]] && ok "worker heartbeat: $hb" || bad "worker heartbeat: '$hb'"
sleep 2.5
hb2=$(curl -fsS --max-time 2 "http://127.0.0.1:$worker_port/heartbeat" 2>/dev/null)
[ -n "$hb2" ] && [ "$hb2" != "$hb" ] && ok "heartbeat moves (heartbeatSeconds=1): $hb2" ||
    bad "heartbeat did not change: '$hb' then '$hb2'"
n=$(podman ps -q --filter "label=com.docker.compose.project=margo-$id" | wc -l)
[ "$n" -eq 2 ] && ok "two containers run (web, worker)" || bad "$n containers run, expected 2"
out=$(ctl deployment show "$id")
grep -qE '^web +installed' <<<"$out" && grep -qE '^worker +installed' <<<"$out" &&
    ok "per-component state installed" || bad "components: $out"

# ---------------------------------------------------------------- reconfigure
greeting2="Reconfigured by the e2e test"
ctl deployment update "$id" --set "greeting=$greeting2" >/dev/null || bad "update refused"
ctl watch "$id" --timeout 180 >"$dir/watch-2.txt" 2>&1 && ok "watch: reconfigured, installed" ||
    bad "reconfigure watch: $(cat "$dir/watch-2.txt")"
body_is "http://127.0.0.1:$web_port/" "$greeting2" 30 && ok "the page shows the new greeting" ||
    bad "the page did not change after reconfigure"
err=$(ctl deployment update "$id" --set siteName=other-site 2>&1 >/dev/null)
rc=$?
[ "$rc" -ne 0 ] && grep -q 'siteName' <<<"$err" && grep -qi 'immutable' <<<"$err" &&
    ok "immutable siteName change refused" || bad "immutable change: exit $rc: $err"
mv=$(ctl deployment show "$id" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["manifestVersion"])')
[ "$mv" = 2 ] && ok "manifestVersion 2 (the refused change published nothing)" ||
    bad "manifestVersion $mv after deploy + reconfigure + refused change, expected 2"

# ---------------------------------------------------------------- remove
ctl deployment rm "$id" >/dev/null || bad "deployment rm"
ctl watch "$id" --timeout 120 >"$dir/watch-3.txt" 2>&1 && ok "watch: removed" ||
    bad "remove watch: $(cat "$dir/watch-3.txt")"
n=$(podman ps -aq --filter "label=com.docker.compose.project=margo-$id" | wc -l)
[ "$n" -eq 0 ] && ok "containers removed" || bad "$n containers left after removal"
curl -fsS --max-time 2 "http://127.0.0.1:$web_port/" >/dev/null 2>&1 &&
    bad "web port still answers after removal" || ok "web port closed"

fi # flow

# ---------------------------------------------------------------- image missing from the registry
if [ "$MODE" = missing-image ]; then
broken="$dir/packages/hello-broken"
mkdir -p "$broken" && cp -R "$pkg"/. "$broken"/
sed -i -e 's/^id: hello-compose$/id: hello-broken/' \
    -e 's#/margo/examples/hello-compose/#/margo/examples/hello-broken/#' \
    -e "s/timeout: 2m0s/timeout: 0m25s/" "$broken/margo.yaml"
sed -i 's#margo/examples/busybox:1#margo/examples/busybox:no-such-tag#' "$broken/compose/web.yaml"
bash "$src/scripts/publish-package.sh" "$broken" >/dev/null 2>"$dir/publish-broken.log" ||
    fatal "publishing the broken package: $(cat "$dir/publish-broken.log")"
ctl app add "$broken" >/dev/null || fatal "app add hello-broken"
out=$(ctl deploy hello-broken --device "$DEV" --no-prompt --set "webPort=$web_port" 2>&1) ||
    fatal "deploy hello-broken refused: $out"
bid=$(grep -oE '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' <<<"$out" | head -n1)
ms_track_deployment "$bid"
ctl watch "$bid" --timeout 150 >"$dir/watch-4.txt" 2>&1
rc=$?
[ "$rc" -eq 1 ] && grep -q ' failed' "$dir/watch-4.txt" && ok "missing image: watch ends with failed (exit 1)" ||
    bad "missing image: watch exit $rc: $(cat "$dir/watch-4.txt")"
st=$(ctl status --device "$DEV" | grep "^$bid")
log "margoctl status: $st"
grep -q ' failed ' <<<"$st" && ok "status failed" || bad "status of the broken deployment: $st"
# The runtime's own words: podman says the manifest/tag is unknown or the pull failed.
grep -qiE 'no-such-tag|manifest unknown|not found|pull' <<<"$st" &&
    ok "the runtime's reason is visible in margoctl status" ||
    bad "margoctl status does not show why the image could not be pulled: $st"
ctl deployment rm "$bid" >/dev/null || bad "rm of the failed deployment"
# (polled: `margoctl watch` of a failed deployment being removed ends at the old `failed` report)
until_state "$bid" removed 120 && ok "failed deployment removed" || bad "removing the failed deployment"
n=$(podman ps -aq --filter "label=com.docker.compose.project=margo-$bid" | wc -l)
[ "$n" -eq 0 ] && ok "no container left of the failed deployment" || bad "$n containers left"
fi # missing-image

if [ "$MODE" = fleet ]; then
. "$src/tests/e2e/e2e_fleet.sh"
fi

# ---------------------------------------------------------------- clean exits
if [ "$MODE" = fleet ]; then
    ms_stop "agent-$HDEV"
    rc=$?
    [ "$rc" -eq 0 ] && ok "margo-agent --transport http exits 0 on SIGTERM" ||
        bad "margo-agent --transport http exit status $rc on SIGTERM"
fi
ms_stop "agent-$DEV"
rc=$?
[ "$rc" -eq 0 ] && ok "margo-agent exits 0 on SIGTERM" || bad "margo-agent exit status $rc on SIGTERM"
ms_stop manager
rc=$?
[ "$rc" -eq 0 ] && ok "margo-manager exits 0 on SIGTERM" || bad "margo-manager exit status $rc on SIGTERM"

# ---------------------------------------------------------------- the wire
# Every message of this run (manager, agent, broker will) validates against docs/schemas/.
# (no events in this run: scripts/wire_schemas is the run that must see every topic kind)
if [ "$MODE" = fleet ]; then
    # The manager's retained copies of the HTTP device's statuses are checked by
    # e2e_fleet.sh's fleet_copies_check (no journal position, so the journal checks of
    # wire_validate.py do not apply to them), every other message here.
    needs=(--need status-installed --need status-removed --need presence-offline
        --foreign "margo/v1/devices/$HDEV/status/$id_h")
    if fleet_copies_check; then
        ok "the HTTP device's status copies on MQTT: the status schema, cleared after removed"
    else
        bad "the HTTP device's status copies on MQTT (record: $dir/wire.jsonl)"
    fi
elif [ "$MODE" != missing-image ]; then
    needs=(--need status-installed --need status-removed --need presence-offline)
else
    needs=(--need status-failed --need status-error --need status-removed)
fi
if ms_record_check --partial "${needs[@]}"; then
    ok "every message on the wire validates against docs/schemas/"
else
    bad "messages on the wire do not match docs/schemas/ (record: $dir/wire.jsonl)"
fi
