#!/usr/bin/env bash
# demo.sh - the main job of the README. Today (foundation stage) it:
#   1. installs the Debian packages that are missing,
#   2. builds margo-mqtt (gcc, warnings as errors),
#   3. runs a self-check of the codecs on the Margo specification's own examples:
#      validates every document, shows how a deployment travels on the wire (canonical
#      MessagePack, its size and sha256 digest) and reads it back.
# The end-to-end flow (broker, manager, agent, a deployed sample app) is added by the
# manager, agent and end-to-end issues; see docs/ and the README's status section.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "1/3 installing missing Debian packages (quiet when nothing is missing)"
bash scripts/setup.sh
step "2/3 building (build/)"
bash scripts/build.sh release
ctl=build/manager/margoctl

step "3/3 codec self-check on the Margo specification's examples"
data=tests/data/margo
echo "-- documents the specification calls valid (all must pass):"
"$ctl" validate "$data"/valid/*
echo "-- documents the specification calls invalid (each must be refused, naming the field):"
if "$ctl" validate "$data"/invalid/*; then
  echo "self-check FAILED: an invalid document was accepted" >&2
  exit 1
fi
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
dep=$data/valid/ApplicationDeployment-compose.yaml
"$ctl" convert --to msgpack "$dep" > "$tmp/deployment.msgpack"
size=$(stat -c %s "$tmp/deployment.msgpack")
yaml_size=$(stat -c %s "$dep")
echo "-- $dep on the wire: $size bytes of canonical MessagePack (the YAML is $yaml_size bytes)"
echo "   sha256 of the bytes: sha256:$(sha256sum "$tmp/deployment.msgpack" | cut -d' ' -f1)"
echo "-- read back from MessagePack and shown as JSON (ENV. pointers and ids normalised):"
"$ctl" convert "$tmp/deployment.msgpack" | head -n 30
echo "   ..."
echo
echo "self-check passed: every valid example accepted, every invalid one refused."
