#!/usr/bin/env bash
# broker_persistence.sh - the demo/e2e stack's broker keeps its state across a restart.
#
# Starts Mosquitto exactly as scripts/margo-stack.sh does for the demo and the e2e tests
# (ms_broker_start: broker-config/mosquitto.conf with the port and persistence folder moved;
# as root, which is how the demo and CI run), then:
#   - publishes a retained status (what monitors and the manager relearn state from);
#   - opens a persistent MQTT 5 session (clean start off, session expiry 1 h) with a QoS 1
#     subscription, disconnects, and publishes a QoS 1 message that the broker must queue;
#   - restarts the broker (ms_broker_restart: SIGTERM, which saves, then the same command);
#   - expects the retained message, and the queued message delivered to the resumed session
#     without subscribing again, and a broker log without "Error saving ... Permission denied".
# Before the fix, a root-started broker dropped to user `mosquitto`, could not write the
# root-owned persistence folder, and came back empty. About 3 s; needs only mosquitto and
# mosquitto-clients.
#
#   broker_persistence.sh
set -uo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
MS_CTL=/nonexistent MS_MANAGER=/nonexistent MS_AGENT=/nonexistent
. "$src/scripts/margo-stack.sh"

fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
fatal() { echo "FATAL: $*"; fails=$((fails + 1)); exit 1; }

dir=$(mktemp -d /tmp/mgo-persist-XXXXXX)
finish() {
    trap - EXIT
    ms_cleanup || bad "left running after cleanup:$MS_LEFT"
    if [ "$fails" -eq 0 ]; then
        rm -rf "$dir"
        echo "PASSED"
        exit 0
    fi
    echo "$fails check(s) failed; broker logs in $dir"
    for f in "$dir"/mosquitto.log*; do echo "---- $f"; tail -n 20 "$f"; done
    exit 1
}
trap finish EXIT

MS_BROKER_PORT=$(mgo_free_port) || fatal "no free loopback port"
ms_init_broker "$dir" || fatal "prerequisites missing"
ms_broker_start || fatal "broker did not start"
[ "$(id -u)" -eq 0 ] && echo "note: running as root, the way the demo and CI start the broker"

P=(-h 127.0.0.1 -p "$MS_BROKER_PORT" -V mqttv5)
status_topic=margo/v1/devices/persist-dev/status/3f1c2d4e-0000-4000-8000-000000000001
queued_topic=margo/v1/devices/persist-dev/events
session=persist-monitor-$$

mosquitto_pub "${P[@]}" -q 1 -r -t "$status_topic" -m "retained-status-1" ||
    fatal "publishing the retained status"
# A persistent session: clean start off (-c), session expiry 3600 s; -E: exit once subscribed.
mosquitto_sub "${P[@]}" -i "$session" -c -x 3600 -q 1 -t 'margo/v1/devices/+/events' -E ||
    fatal "opening the persistent session"
mosquitto_pub "${P[@]}" -q 1 -t "$queued_topic" -m "queued-event-1" ||
    fatal "publishing the message to queue"

ms_broker_restart || fatal "restarting the broker"
ok "broker restarted on port $MS_BROKER_PORT"
[ -s "$dir/broker/mosquitto.db" ] && ok "persistence file written ($dir/broker/mosquitto.db)" ||
    bad "no persistence file in $dir/broker/"

got=$(mosquitto_sub "${P[@]}" -t "$status_topic" --retained-only -C 1 -W 5 2>&1)
if [ "$got" = "retained-status-1" ]; then
    ok "retained status intact after the restart"
else
    bad "retained status lost after the restart (got '$got')"
fi

# Resume the session on a topic nobody publishes to: the only message that can arrive is the
# one queued for the subscription the session made before the restart.
got=$(mosquitto_sub "${P[@]}" -i "$session" -c -x 3600 -q 1 -t 'margo/none/nothing' -v -C 1 -W 5 2>&1)
if [ "$got" = "$queued_topic queued-event-1" ]; then
    ok "persistent session, its subscription and its queued QoS 1 message intact after the restart"
else
    bad "queued QoS 1 message of the persistent session lost after the restart (got '$got')"
fi
# The session is gone once ended with expiry 0 (tidy, and proves nothing else is queued).
mosquitto_sub "${P[@]}" -i "$session" -x 0 -t 'margo/none/nothing' -E >/dev/null 2>&1 || true

if grep -E 'Error saving|Permission denied' "$dir"/mosquitto.log* >/dev/null 2>&1; then
    bad "the broker log reports a failed save: $(grep -hE 'Error saving|Permission denied' "$dir"/mosquitto.log* | head -n 2)"
fi
