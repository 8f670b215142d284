#!/usr/bin/env bash
# margoctl_output.sh - margoctl --output against a real manager (issue 17 item 7; about 8 s):
# Mosquitto, margo-manager and one agent on the fake Helm runtime (tests/agent/fake-helm),
# hello-helm added and deployed; then for every listing and show command:
#   -o json and --json print the API's JSON reply unchanged (the reply of the same GET);
#   -o yaml prints the same data (Debian's python3-yaml reads back the same tree);
#   -o table is today's human text, -o wide adds columns to listings (and to nothing else).
#
#   margoctl_output.sh MARGOCTL MARGO-MANAGER MARGO-AGENT
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: $0 MARGOCTL MARGO-MANAGER MARGO-AGENT" >&2; exit 2; }
export MS_CTL="$1" MS_MANAGER="$2" MS_AGENT="$3"
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/scripts/margo-stack.sh"
PY=/usr/bin/python3
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
dir=$(mktemp -d /tmp/mgo-ctlout-XXXXXX)
finish() {
    trap - EXIT
    ms_cleanup || bad "left running after cleanup:$MS_LEFT"
    if [ "$fails" -eq 0 ]; then rm -rf "$dir"; echo "PASSED"; exit 0; fi
    echo "$fails check(s) failed; logs in $dir"
    exit 1
}
trap finish EXIT
trap 'exit 1' INT TERM
fatal() { bad "$*"; exit 1; }

MS_BROKER_PORT=$(mgo_free_port) && MS_API_PORT=$(mgo_free_port) || fatal "no free port"
export MS_BROKER_PORT MS_API_PORT
ms_init_broker "$dir" || fatal "prerequisites"
ms_broker_start || fatal "broker"
ms_manager_start || fatal "manager"
mkdir -p "$dir/agent-edge-01" "$dir/helm"
FAKE_HELM_STATE="$dir/helm" FAKE_HELM_LOG="$dir/helm.log" \
    _ms_bg agent-edge-01 "$MS_AGENT" --device-id edge-01 --broker-url "$MS_BROKER_URL" \
    --state-dir "$dir/agent-edge-01" --compose-command margo-no-compose-here \
    --helm-command "$src/tests/agent/fake-helm" --settle-ms 100 --reconcile-interval 3600
ms_wait 30 "device edge-01" _ms_device_known edge-01 || fatal "agent"
"$MS_CTL" app add "$src/examples/hello-helm" >/dev/null || fatal "app add"
out=$("$MS_CTL" deploy hello-helm --device edge-01 --no-prompt 2>&1) || fatal "deploy: $out"
id=$(grep -oE '[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}' <<<"$out" | head -n1)
"$MS_CTL" watch "$id" --timeout 60 >/dev/null 2>&1 || fatal "deployment $id not installed"

token=$(cat "$MS_TOKEN_FILE")
# check LISTING|SHOW API-PATH MARGOCTL-ARGS...
check() {
    local kind="$1" path="$2"
    shift 2
    local what="margoctl $*"
    curl -sf -H "Authorization: Bearer $token" "$MS_API_URL$path" >"$dir/api.json" ||
        { bad "$what: GET $path failed"; return; }
    "$MS_CTL" "$@" -o json >"$dir/json.out" 2>"$dir/err" || { bad "$what -o json: $(cat "$dir/err")"; return; }
    "$MS_CTL" "$@" --json >"$dir/json2.out" 2>&1 || bad "$what --json failed"
    "$MS_CTL" "$@" -o yaml >"$dir/yaml.out" 2>"$dir/err" || { bad "$what -o yaml: $(cat "$dir/err")"; return; }
    "$MS_CTL" "$@" >"$dir/default.out" 2>&1 || bad "$what failed"
    "$MS_CTL" "$@" -o table >"$dir/table.out" 2>&1 || bad "$what -o table failed"
    "$MS_CTL" "$@" --output=wide >"$dir/wide.out" 2>&1 || bad "$what --output=wide failed"
    # json: the API's bytes unchanged (plus a newline); yaml: the same tree
    if cmp -s <(cat "$dir/api.json"; echo) "$dir/json.out" && cmp -s "$dir/json.out" "$dir/json2.out"; then
        ok "$what -o json / --json: the API's reply unchanged"
    else
        bad "$what -o json differs from GET $path"
    fi
    if $PY -c '
import json, sys, yaml
a = json.load(open(sys.argv[1]))
y = yaml.safe_load(open(sys.argv[2]))
sys.exit(0 if a == y and isinstance(y, dict) else 1)' "$dir/api.json" "$dir/yaml.out"; then
        ok "$what -o yaml: the same data"
    else
        bad "$what -o yaml is not the reply's data: $(head -n 5 "$dir/yaml.out")"
    fi
    cmp -s "$dir/default.out" "$dir/table.out" || bad "$what: -o table differs from the default"
    local tcols wcols
    tcols=$(head -n1 "$dir/table.out" | awk -F'  +' '{print NF}')
    wcols=$(head -n1 "$dir/wide.out" | awk -F'  +' '{print NF}')
    if [ "$kind" = LISTING ]; then
        [ "$wcols" -gt "$tcols" ] && [ "$(wc -l <"$dir/wide.out")" -eq "$(wc -l <"$dir/table.out")" ] &&
            ok "$what: wide has $wcols columns, table $tcols" ||
            bad "$what: wide header '$(head -n1 "$dir/wide.out")' vs table '$(head -n1 "$dir/table.out")'"
    else
        cmp -s "$dir/table.out" "$dir/wide.out" && ok "$what: wide = table for a show" ||
            bad "$what: wide differs from table"
    fi
}
check LISTING /api/v1/apps app list
check SHOW /api/v1/apps/hello-helm app show hello-helm
check LISTING /api/v1/devices device list
check LISTING "/api/v1/devices?compatible=hello-helm" device list --compatible hello-helm
check SHOW /api/v1/devices/edge-01 device show edge-01
check LISTING /api/v1/deployments deployment list
check SHOW "/api/v1/deployments/$id" deployment show "$id"
check LISTING /api/v1/status status
