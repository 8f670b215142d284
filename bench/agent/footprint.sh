#!/bin/bash
# footprint.sh - margo-agent memory idle, during a real Compose deploy (podman-compose, loopback
# registry, busybox image built offline) and after removal. Usage: bench/agent/footprint.sh
# (AGENT=path/to/margo-agent; default build/agent/margo-agent of a release build).
set -u
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
B=$(mktemp -d); trap 'rm -rf "$B"' EXIT
AGENT=${AGENT:-$ROOT/build/agent/margo-agent}
HERE=$ROOT/bench/agent
mkdir -p $B/ct
. $ROOT/scripts/containers-env.sh
mgo_containers_env $B/ct
REG=$(mgo_free_port); HTTP=$(mgo_free_port); APP=$(mgo_free_port); MQ=$(mgo_free_port)
mgo_registry_start $B/ct $REG || exit 1
mgo_busybox_image $B/ct 127.0.0.1:$REG/margo/busybox:1 >/dev/null 2>&1 || exit 1
mkdir -p $B/ct/www
printf 'services:\n  web:\n    image: 127.0.0.1:%s/margo/busybox:1\n    stop_signal: SIGKILL\n    command: ["/bin/sh", "-c", "mkdir -p /www && echo $${GREETING} > /www/index.html && exec httpd -f -p 8080 -h /www"]\n    environment:\n      GREETING: ${GREETING:-unset}\n    ports:\n      - "127.0.0.1:%s:8080"\n' $REG $APP > $B/ct/www/app-v1.yaml
busybox httpd -f -p 127.0.0.1:$HTTP -h $B/ct/www & HP=$!
mosquitto -p $MQ > $B/mosq.log 2>&1 & MQPID=$!
sleep 0.5
$AGENT --device-id bench-1 --broker-url tcp://127.0.0.1:$MQ --state-dir $B/state --reconcile-interval 5 --log-level warn > $B/agent.log 2>&1 & AP=$!
sleep 3
echo "idle: $(grep -E 'VmRSS|VmHWM' /proc/$AP/status | tr -s ' ' | tr '\n' ' ')"
/usr/bin/python3 $HERE/make_docs.py $HTTP $B 1 hello >/dev/null
DEP=33333333-3333-4333-8333-333333333333
mosquitto_pub -p $MQ -q 1 -r -t margo/v1/devices/bench-1/deployments/$DEP -f $B/dep.mp
mosquitto_pub -p $MQ -q 1 -r -t margo/v1/devices/bench-1/desired -f $B/man.mp
max=0; t0=$(date +%s.%N)
for i in $(seq 1 300); do
  r=$(awk '/VmRSS/{print $2}' /proc/$AP/status); [ "$r" -gt "$max" ] && max=$r
  [ "$(curl -s --max-time 1 http://127.0.0.1:$APP/)" = "hello" ] && break
  sleep 0.1
done
echo "deploy: app answered $(awk -v a="$(date +%s.%N)" -v b="$t0" 'BEGIN{printf "%.2f", a-b}') s after the manifest was published; max VmRSS sampled during deploy: ${max} kB; $(grep VmHWM /proc/$AP/status | tr -s ' ')"
sleep 6
echo "after deploy + drift checks: $(grep -E 'VmRSS|VmHWM' /proc/$AP/status | tr -s ' ' | tr '\n' ' ')"
/usr/bin/python3 $HERE/make_docs.py $HTTP $B 2 - >/dev/null
mosquitto_pub -p $MQ -q 1 -r -t margo/v1/devices/bench-1/desired -f $B/man.mp
for i in $(seq 1 100); do [ -z "$(podman ps -aq --filter label=com.docker.compose.project=margo-$DEP)" ] && break; sleep 0.2; done
echo "removed: containers left: $(podman ps -aq --filter label=com.docker.compose.project=margo-$DEP | wc -l)"
kill -TERM $AP; wait $AP; echo "agent exit code after SIGTERM: $?"
kill $MQPID; kill $HP; mgo_registry_stop $B/ct
