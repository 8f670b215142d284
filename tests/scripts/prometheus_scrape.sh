#!/usr/bin/env bash
# prometheus_scrape.sh - Debian's real Prometheus scrapes a real margo-manager and a value
# comes back through its query API; the metrics list of docs/operations.md is what a scrape
# exposes (metrics_doc.py).
#
# Starts the stack's broker (scripts/margo-stack.sh), margo-manager with a metrics token
# (metrics-token-file), one margo-agent with the fake Helm runtime (so a device is online) and
# its metrics listener (metrics-listen), scraped too,
# then Prometheus on a free loopback port with a temporary storage folder and a
# prometheus.yml scraping the manager's /metrics every second with the metrics token. Waits
# until the target is up, then asks Prometheus for margo_devices{state="online"} (1) and the
# presence messages ingested (> 0).
#
#   prometheus_scrape.sh MARGOCTL MARGO-MANAGER MARGO-AGENT
set -uo pipefail
[ $# -eq 3 ] || { echo "usage: $0 MARGOCTL MARGO-MANAGER MARGO-AGENT" >&2; exit 2; }
export MS_CTL="$1" MS_MANAGER="$2" MS_AGENT="$3"
src=$(cd "$(dirname "$0")/../.." && pwd)
. "$src/scripts/margo-stack.sh"
PY=/usr/bin/python3

fails=0
T0=$SECONDS
log() { printf '[prom %3ds] %s\n' "$((SECONDS - T0))" "$*"; }
ok() { log "ok: $*"; }
bad() { log "FAIL: $*"; fails=$((fails + 1)); }
fatal() { log "FATAL: $*"; fails=$((fails + 1)); exit 1; }

dir=$(mktemp -d /tmp/mgo-prom-XXXXXX)
prom_pid=""
finish() {
    trap - EXIT
    if [ -n "$prom_pid" ]; then
        kill -TERM "$prom_pid" 2>/dev/null
        wait "$prom_pid" 2>/dev/null
    fi
    ms_cleanup || bad "left running after cleanup:$MS_LEFT"
    if [ "$fails" -eq 0 ]; then
        rm -rf "$dir"
        log "PASSED"
        exit 0
    fi
    log "$fails check(s) failed; logs in $dir"
    for f in "$dir/manager.log" "$dir"/agent-*.log "$dir/prometheus.log"; do
        [ -f "$f" ] && { echo "---- tail of $f"; tail -n 20 "$f"; }
    done
    exit 1
}
trap finish EXIT
trap 'fatal "interrupted"' INT TERM

command -v prometheus >/dev/null || fatal "prometheus not installed (run: bash scripts/setup.sh)"
for b in "$MS_CTL" "$MS_MANAGER" "$MS_AGENT"; do [ -x "$b" ] || fatal "binary $b missing"; done
MS_BROKER_PORT=$(mgo_free_port) && MS_API_PORT=$(mgo_free_port) && PROM_PORT=$(mgo_free_port) &&
    AGENT_PORT=$(mgo_free_port) || fatal "no free loopback port"
export MS_BROKER_PORT MS_API_PORT
ms_init_broker "$dir" || fatal "prerequisites missing"
ms_broker_start || fatal "broker"

# a token that opens /metrics and nothing else
head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$dir/metrics-token"
ms_manager_start --metrics-token-file "$dir/metrics-token" || fatal "manager"
mkdir -p "$dir/agent-prom-dev-1" "$dir/helm"
FAKE_HELM_STATE="$dir/helm" FAKE_HELM_LOG="$dir/helm.log" \
    _ms_bg agent-prom-dev-1 "$MS_AGENT" --device-id prom-dev-1 --broker-url "$MS_BROKER_URL" \
    --state-dir "$dir/agent-prom-dev-1" --compose-command margo-no-compose-here \
    --helm-command "$src/tests/agent/fake-helm" --settle-ms 100 --reconcile-interval 3600 \
    --metrics-listen "127.0.0.1:$AGENT_PORT"
ms_wait 30 "device prom-dev-1 in the manager" _ms_device_known prom-dev-1 || fatal "agent"
ok "manager and agent up (API $MS_API_URL)"

# the metrics token opens /metrics only
code=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(cat "$dir/metrics-token")" \
    "$MS_API_URL/api/v1/devices")
[ "$code" = 401 ] && ok "metrics token refused on /api/v1/devices" || bad "metrics token on the API: $code"

cat >"$dir/prometheus.yml" <<YML
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: margo-manager
    metrics_path: /metrics
    authorization:
      type: Bearer
      credentials_file: $dir/metrics-token
    static_configs:
      - targets: ['127.0.0.1:$MS_API_PORT']
  - job_name: margo-agent
    static_configs:
      - targets: ['127.0.0.1:$AGENT_PORT']
YML
mkdir -p "$dir/tsdb"
prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/tsdb" \
    --web.listen-address="127.0.0.1:$PROM_PORT" >"$dir/prometheus.log" 2>&1 &
prom_pid=$!
PROM="http://127.0.0.1:$PROM_PORT"

# query EXPR: the first result's value, or nothing.
query() {
    curl -s -G "$PROM/api/v1/query" --data-urlencode "query=$1" | $PY -c '
import json, sys
r = json.load(sys.stdin)
res = r.get("data", {}).get("result", [])
if r.get("status") == "success" and res:
    print(res[0]["value"][1])'
}
is_value() { [ "$(query "$1")" = "$2" ]; }
is_positive() { local n; n=$(query "$1"); [ -n "$n" ] && [ "${n%%.*}" -gt 0 ]; }

ms_wait 30 "Prometheus on $PROM to see the target up (log: $dir/prometheus.log)" \
    is_value 'up{job="margo-manager"}' 1 && ok "manager target up" || fatal "manager target never up"
ms_wait 15 "the agent's target up" is_value 'up{job="margo-agent"}' 1 && ok "agent target up" ||
    fatal "agent target never up"
ms_wait 15 'margo_agent_mqtt_connected == 1' is_value 'margo_agent_mqtt_connected' 1 &&
    ok "margo_agent_mqtt_connected is 1 in Prometheus" ||
    bad "margo_agent_mqtt_connected: $(query margo_agent_mqtt_connected)"
ms_wait 15 'margo_devices{state="online"} == 1' is_value 'margo_devices{state="online"}' 1 &&
    ok 'margo_devices{state="online"} is 1 in Prometheus' ||
    bad "margo_devices{state=\"online\"}: $(query 'margo_devices{state="online"}')"
n=$(query 'sum(margo_ingest_messages_total{result="handled"})')
[ -n "$n" ] && [ "${n%%.*}" -gt 0 ] && ok "ingested messages handled: $n" ||
    bad "sum(margo_ingest_messages_total{result=\"handled\"}): '$n'"
n=$(query 'margo_ingest_batch_duration_seconds_count')
[ -n "$n" ] && [ "${n%%.*}" -gt 0 ] && ok "ingest batches measured: $n" ||
    bad "margo_ingest_batch_duration_seconds_count: '$n'"
# a scrape is counted once it is answered, so Prometheus sees the count from its next scrape on
scrapes='margo_http_requests_total{route="/metrics",method="GET",code="200"}'
ms_wait 15 "Prometheus's own scrapes counted" is_positive "$scrapes" &&
    ok "Prometheus's own scrapes counted: $(query "$scrapes")" ||
    bad "margo_http_requests_total for /metrics: '$(query "$scrapes")'"

# the documented list is the exposed one
curl -s -H "Authorization: Bearer $(cat "$MS_TOKEN_FILE")" "$MS_API_URL/metrics" >"$dir/scrape.txt"
if $PY "$src/tests/scripts/metrics_doc.py" "$src/docs/operations.md" manager "$dir/scrape.txt"; then
    ok "docs/operations.md lists exactly the manager's metrics"
else
    bad "docs/operations.md and the manager's metrics differ"
fi
curl -s "http://127.0.0.1:$AGENT_PORT/metrics" >"$dir/scrape-agent.txt"
if $PY "$src/tests/scripts/metrics_doc.py" "$src/docs/operations.md" agent "$dir/scrape-agent.txt"; then
    ok "docs/operations.md lists exactly the agent's metrics"
else
    bad "docs/operations.md and the agent's metrics differ"
fi
