#!/usr/bin/env bash
# demo.sh - the main job of the README, fully real, on one machine:
#   installs what is missing (scripts/setup.sh containers), builds build/ (gcc, -Werror),
#   runs the codec self-check on the Margo specification's examples, then starts Mosquitto
#   (broker-config/mosquitto.conf), a loopback docker-registry and podman configured as in
#   DESIGN.md, builds a busybox image offline and pushes it, publishes the sample Compose
#   package examples/hello-compose as OCI artifacts, starts margo-manager and one margo-agent,
#   adds the samples to the catalog, shows the compatible devices, deploys with parameters,
#   follows the status live, proves the workload answers, reconfigures it, removes it, and
#   stops and removes everything it started (also on Ctrl-C).
#
#   bash scripts/demo.sh            the whole run (a few minutes)
#   bash scripts/demo.sh --keep     leave the stack running at the end for exploring
#   bash scripts/demo.sh --stop     stop a stack left running by --keep
#
# State and logs: run/demo/ (git-ignored). Every wait has a timeout and says what it waited for.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

keep=0 stop=0
for a in "$@"; do
  case "$a" in
    --keep) keep=1 ;;
    --stop) stop=1 ;;
    -h|--help) sed -n '2,17s/^# \{0,1\}//p' "$0"; exit 0 ;;
    *) echo "demo.sh: unknown option $a (known: --keep, --stop, --help)" >&2; exit 2 ;;
  esac
done

export MS_CTL="$root/build/manager/margoctl" MS_MANAGER="$root/build/manager/margo-manager"
export MS_AGENT="$root/build/agent/margo-agent"
DEMO_DIR="$root/run/demo"
DEVICE=demo-device-1
T0=$SECONDS
nsteps=15 n=0
step() { n=$((n + 1)); printf '\n\033[1m== [%d/%d] %s\033[0m  (%ds)\n' "$n" "$nsteps" "$*" "$((SECONDS - T0))"; }
show() { printf '\033[2m$ %s\033[0m\n' "$*"; "$@"; }
die() {
  printf '\n\033[31mdemo FAILED:\033[0m %s\n' "$*" >&2
  if [ -n "${MS_PID_manager:-}" ] && ! kill -0 "$MS_PID_manager" 2>/dev/null; then
    echo "   (margo-manager is no longer running: interrupted, or see run/demo/manager.log)" >&2
  fi
  exit 1
}

if [ "$stop" = 1 ]; then
  [ -f "$DEMO_DIR/pids" ] || { echo "demo.sh: nothing to stop ($DEMO_DIR/pids missing)"; exit 0; }
  . scripts/margo-stack.sh
  MS_DIR="$DEMO_DIR"
  ms_cleanup
  rm -rf "$DEMO_DIR"
  echo "stopped the demo stack and removed $DEMO_DIR"
  exit 0
fi
if [ -s "$DEMO_DIR/pids" ]; then
  die "a demo stack is still running from --keep ($DEMO_DIR); stop it first: bash scripts/demo.sh --stop"
fi

step "installing missing Debian packages (quiet when nothing is missing)"
bash scripts/setup.sh containers

step "building (build/, gcc, warnings as errors)"
bash scripts/build.sh release margo-manager margo-agent margoctl
ctl=$MS_CTL

step "codec self-check on the Margo specification's examples"
data=tests/data/margo
echo "-- documents the specification calls valid (all must pass):"
"$ctl" validate "$data"/valid/* | sed 's/^/   /'
echo "-- documents the specification calls invalid (each must be refused, naming the field):"
if "$ctl" validate "$data"/invalid/* >"${TMPDIR:-/tmp}/mgo-demo-invalid.$$" 2>&1; then
  rm -f "${TMPDIR:-/tmp}/mgo-demo-invalid.$$"
  die "self-check: an invalid document was accepted"
fi
sed 's/^/   /' "${TMPDIR:-/tmp}/mgo-demo-invalid.$$"; rm -f "${TMPDIR:-/tmp}/mgo-demo-invalid.$$"
dep=$data/valid/ApplicationDeployment-compose.yaml
wire=$("$ctl" convert --to msgpack "$dep" | wc -c)
echo "-- $dep travels as $wire bytes of canonical MessagePack (the YAML is $(stat -c %s "$dep") bytes)"
echo "   self-check passed."

# From here on, everything started is stopped by the trap, also on Ctrl-C.
. scripts/margo-stack.sh
rm -rf "$DEMO_DIR"
ms_init "$DEMO_DIR" || die "cannot prepare $DEMO_DIR"
finish() {
  local rc=$?
  trap - EXIT INT TERM
  if [ "$keep" = 1 ] && [ "$rc" = 0 ]; then
    return 0
  fi
  printf '\n\033[1m== stopping and cleaning up everything the demo started\033[0m\n'
  local left
  if ms_cleanup; then left="nothing"; else left="$MS_LEFT"; fi
  if [ "$rc" = 0 ]; then
    rm -rf "$DEMO_DIR"
  else
    echo "   logs kept in $DEMO_DIR (mosquitto.log, manager.log, agent-$DEVICE.log, registry/registry.log)"
    rm -rf "$DEMO_DIR/image" "$DEMO_DIR/registry/registry-data" || true
  fi
  echo "   done after $((SECONDS - T0))s; left running: $left"
}
trap finish EXIT
trap 'echo; echo "interrupted"; exit 130' INT TERM

step "starting Mosquitto with broker-config/mosquitto.conf"
ms_broker_start || die "Mosquitto did not start"
[ "$MS_BROKER_PORT" = 1883 ] || echo "   (1883 is busy: using the free loopback port $MS_BROKER_PORT)"
ms_say "broker: $MS_BROKER_URL (log: run/demo/mosquitto.log)"

step "starting the loopback registry, podman's project-local config, and the sample image"
ms_registry_start || die "docker-registry did not start"
ms_say "registry: http://$MS_REGISTRY/v2/ (podman: CONTAINERS_CONF=$CONTAINERS_CONF)"
ms_image || die "the sample image could not be built"
ms_say "image $MS_IMAGE built offline from busybox-static and pushed"

step "publishing the sample Compose package examples/hello-compose as OCI artifacts"
pkg_dir=$(ms_publish examples/hello-compose 2> >(sed 's/^/   /' >&2)) || die "publishing examples/hello-compose failed"
[ -f "$pkg_dir/margo.yaml" ] || die "publishing examples/hello-compose wrote no package"

step "starting margo-manager"
ms_manager_start || die "margo-manager did not start"
ms_say "web UI:     $MS_API_URL/  (sign in with the token below)"
ms_say "API token:  $MS_TOKEN_FILE"
ms_say "margoctl:   export MARGO_URL=$MS_API_URL MARGO_TOKEN_FILE=$MS_TOKEN_FILE"

step "starting one margo-agent (device $DEVICE, Compose runtime: podman-compose)"
ms_agent_start "$DEVICE" --label site=demo || die "the agent did not register"
show "$ctl" device list

step "adding the sample apps to the catalog"
show "$ctl" app add "$pkg_dir"
show "$ctl" app add examples/hello-helm
show "$ctl" app list
show "$ctl" app show hello-compose

step "devices compatible with each app"
show "$ctl" device list --compatible hello-compose
show "$ctl" device list --compatible hello-helm
echo "   (hello-helm needs a Helm device: there is no Kubernetes or helm here, so none is compatible)"

web_port=$(ms_pick_port 8081)
worker_port=$(mgo_free_port)
greeting="Hello from margo-mqtt"
step "deploying hello-compose to $DEVICE with parameters"
out=$(show "$ctl" deploy hello-compose --device "$DEVICE" --no-prompt \
  --set "greeting=$greeting" --set "webPort=$web_port" --set "workerPort=$worker_port" \
  --set heartbeatSeconds=2 --set siteName=demo-site) || { echo "$out"; die "deploy refused"; }
echo "$out"
id=$(grep -oE '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}' <<<"$out" | head -n1)
[ -n "$id" ] || die "no deployment id in the deploy output"
ms_track_deployment "$id"
echo "-- status, live (margoctl watch; at most 4 minutes):"
show "$ctl" watch "$id" --timeout 240 ||
  die "deployment $id did not reach installed; see '$ctl status' and run/demo/agent-$DEVICE.log"

# curl_until URL WANT SECONDS: retries until the body equals (or, for ~WANT, contains) WANT.
curl_until() {
  local url="$1" want="$2" secs="$3" got="" deadline=$((SECONDS + $3))
  while [ "$SECONDS" -lt "$deadline" ]; do
    got=$(curl -fsS --max-time 2 "$url" 2>/dev/null || true)
    case "$want" in
      "~"*) [[ "$got" == *"${want#\~}"* ]] && { echo "   $url -> $got"; return 0; } ;;
      *) [ "$got" = "$want" ] && { echo "   $url -> $got"; return 0; } ;;
    esac
    sleep 0.5
  done
  echo "   $url answered '$got' after ${secs}s, expected '${want#\~}'" >&2
  return 1
}

step "the workload answers"
curl_until "http://127.0.0.1:$web_port/" "$greeting" 30 || die "the web component does not serve the greeting"
curl_until "http://127.0.0.1:$worker_port/heartbeat" "~site=demo-site" 30 ||
  die "the worker component does not serve its heartbeat"
show "$ctl" deployment show "$id"

greeting2="Reconfigured live over MQTT"
step "reconfiguring: greeting -> \"$greeting2\""
show "$ctl" deployment update "$id" --set "greeting=$greeting2"
show "$ctl" watch "$id" --timeout 240 || die "the reconfiguration did not reach installed"
curl_until "http://127.0.0.1:$web_port/" "$greeting2" 30 || die "the page did not change"
echo "-- an immutable setting cannot change after the first deployment (refused, nothing published):"
if show "$ctl" deployment update "$id" --set siteName=other-site; then
  die "an immutable parameter change was accepted"
fi

step "removing the deployment"
show "$ctl" deployment rm "$id"
show "$ctl" watch "$id" --timeout 180 || die "the deployment was not removed"
left=$(podman ps -aq --filter "label=com.docker.compose.project=margo-${id,,}" | wc -l)
[ "$left" = 0 ] || die "$left container(s) of the deployment are still there"
if curl -fsS --max-time 2 "http://127.0.0.1:$web_port/" >/dev/null 2>&1; then
  die "the web port still answers after the removal"
fi
echo "   containers gone, port $web_port closed"
show "$ctl" status

if [ "$keep" = 1 ]; then
  step "leaving the stack running (--keep)"
  cat <<EOF
   web UI:    $MS_API_URL/   token: $MS_TOKEN_FILE
   margoctl:  export MARGO_URL=$MS_API_URL MARGO_TOKEN_FILE=$MS_TOKEN_FILE
              $ctl deploy hello-compose --device $DEVICE --set webPort=$web_port
   podman:    export CONTAINERS_CONF=$CONTAINERS_CONF CONTAINERS_REGISTRIES_CONF=$CONTAINERS_REGISTRIES_CONF
   broker:    mosquitto_sub -p $MS_BROKER_PORT -t 'margo/v1/#' -v
   logs:      $DEMO_DIR/*.log
   stop it:   bash scripts/demo.sh --stop
EOF
else
  step "all done: deployed, answered, reconfigured, removed"
fi
