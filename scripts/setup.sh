#!/usr/bin/env bash
# setup.sh - installs the Debian packages margo-mqtt needs that are missing.
# Idempotent and quiet when nothing is missing.
#   scripts/setup.sh            build + test dependencies
#   scripts/setup.sh containers also the container engine and registry for the demo and e2e
#   scripts/setup.sh web        also Chromium and Node.js for the browser tests of the web UI
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake pkg-config clang libclang-rt-14-dev clang-format
  libpaho-mqtt-dev libmsgpack-dev libssl-dev openssl libcunit1-dev libyaml-dev
  libsqlite3-dev sqlite3 libcurl4-openssl-dev libmicrohttpd-dev
  mosquitto mosquitto-clients python3 python3-msgpack python3-yaml curl ca-certificates
  python3-paho-mqtt python3-jsonschema
  libcjson-dev libsystemd-dev
  # Chart.js for the web UI's fleet overview, embedded into margo-manager at build time
  libjs-chart.js
  # the southbound Margo API (manager/src/southbound*.c): bundles (libarchive) and the
  # client certificate libmicrohttpd's TLS session presents (GnuTLS)
  libarchive-dev libgnutls28-dev
  # the PostgreSQL store (--store postgresql://..., manager/src/db_pg.c): libpq, and the
  # server the tests start a private cluster of (tests/support/pg.sh)
  libpq-dev postgresql-15
  # Debian packages (scripts/package.sh, tests/packaging): shlibdeps, systemd-analyze, lintian,
  # and a clean Debian 12 root for the install test
  dpkg-dev systemd lintian debootstrap
  # tests/scripts/prometheus_scrape.sh scrapes the manager with Debian's real Prometheus
  prometheus
  # man pages generated from the programs' --help (packaging/CMakeLists.txt)
  help2man
)
CONTAINER_PKGS=(
  podman runc podman-compose docker-registry busybox-static slirp4netns uidmap
  fuse-overlayfs iproute2 iptables
)

WEB_PKGS=(chromium)

want=("${BUILD_PKGS[@]}")
for arg in "$@"; do
  case "$arg" in
    containers) want+=("${CONTAINER_PKGS[@]}") ;;
    web)
      want+=("${WEB_PKGS[@]}")
      # Node.js may come from elsewhere (it includes npm); Debian's packages only when absent.
      command -v node >/dev/null 2>&1 || want+=(nodejs)
      command -v npm >/dev/null 2>&1 || want+=(npm)
      ;;
    *) echo "setup.sh: unknown profile '$arg' (known: containers, web)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
  echo "setup.sh: missing packages: ${missing[*]}; run as root to install them" >&2
  exit 1
fi
echo "setup: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# Debian starts a system mosquitto on install; margo-mqtt runs its own brokers.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet mosquitto 2>/dev/null; then
  systemctl disable --now mosquitto >/dev/null 2>&1 || true
fi
# ... and a system prometheus (port 9090); the tests start their own on free ports.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet prometheus 2>/dev/null; then
  systemctl disable --now prometheus >/dev/null 2>&1 || true
fi
