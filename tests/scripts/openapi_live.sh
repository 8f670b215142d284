#!/usr/bin/env bash
# openapi_live.sh - docs/openapi.yaml against the real manager (issue 17 item 5): starts
# Mosquitto (scripts/margo-stack.sh), margo-manager with catalog-dir examples/, and two agents
# with the fake Helm runtime (tests/agent/fake-helm), then runs openapi_check.py, which
# validates every example of the document against its schema and replays every request
# example in order, checking the documented status and the reply against the documented
# schema (about 15-20 s with the rollout steps).
#
#   openapi_live.sh MARGOCTL MARGO-MANAGER MARGO-AGENT
#   OPENAPI_DUMP=FILE openapi_live.sh ...   also writes every exchange to FILE (for examples)
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: $0 MARGOCTL MARGO-MANAGER MARGO-AGENT" >&2; exit 2; }
export MS_CTL="$1" MS_MANAGER="$2" MS_AGENT="$3"
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/scripts/margo-stack.sh"
PY=/usr/bin/python3
rc=1
dir=$(mktemp -d /tmp/mgo-openapi-XXXXXX)
finish() {
    trap - EXIT
    ms_cleanup || { echo "FAIL: left running after cleanup:$MS_LEFT"; rc=1; }
    if [ "$rc" -eq 0 ]; then
        rm -rf "$dir"
        echo "PASSED"
    else
        echo "FAILED; logs in $dir"
        for f in "$dir/manager.log" "$dir"/agent-*.log; do
            [ -f "$f" ] && { echo "---- tail of $f"; tail -n 20 "$f"; }
        done
    fi
    exit "$rc"
}
trap finish EXIT
trap 'exit 1' INT TERM

$PY -c 'import jsonschema, yaml' 2>/dev/null ||
    { echo "python3-jsonschema or python3-yaml missing (run: bash scripts/setup.sh)"; exit 1; }
MS_BROKER_PORT=$(mgo_free_port) && MS_API_PORT=$(mgo_free_port) || exit 1
export MS_BROKER_PORT MS_API_PORT
ms_init_broker "$dir" || exit 1
ms_broker_start || exit 1
ms_manager_start --catalog-dir "$src/examples" || exit 1

# The device ids of the document's examples: edge-01 and edge-02 run Helm (fake), no Compose.
for dev in edge-01 edge-02; do
    mkdir -p "$dir/agent-$dev" "$dir/helm-$dev"
    FAKE_HELM_STATE="$dir/helm-$dev" FAKE_HELM_LOG="$dir/helm-$dev.log" \
        _ms_bg "agent-$dev" "$MS_AGENT" --device-id "$dev" --broker-url "$MS_BROKER_URL" \
        --state-dir "$dir/agent-$dev" --compose-command margo-no-compose-here \
        --helm-command "$src/tests/agent/fake-helm" --settle-ms 100 --reconcile-interval 3600 \
        --label site=plant-7 --memory 2Gi --storage 8Gi --cpu-cores 2
    ms_wait 30 "device $dev in the manager" _ms_device_known "$dev" || exit 1
done

$PY "$src/tests/scripts/openapi_check.py" --live "$MS_API_URL" "$MS_TOKEN_FILE" \
    "$src/docs/openapi.yaml" ${OPENAPI_DUMP:+--dump "$OPENAPI_DUMP"}
rc=$?
