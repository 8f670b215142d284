#!/usr/bin/env bash
# bench_ingest_count.sh - the status ingest step of mgo-bench-fleet (bench/fleet) counts the
# statuses its publisher sent, and nothing else: a small fleet (20 devices, SQLite, one broker)
# with a 1 s ingest step, and MGO_BENCH_INGEST_PAUSE_MS holding the controller back after the
# publisher connected (as a slow psql start does), so that the manager has stored some of the
# publisher's statuses before the measurement starts. A count of new status_history rows
# since a baseline taken then reported those statuses as "not stored" (docs/benchmarks.md,
# "Scale-out"); the step must report every acknowledged status stored.
#   bench_ingest_count.sh MGO_BENCH_FLEET BUILD_DIR APP_YAML
set -euo pipefail
fleet=$1 build=$2 app=$3
dir="$(mktemp -d /tmp/mgo-test-benchingest.XXXXXX)"
trap 'rm -rf "$dir"' EXIT

rc=0
MGO_BENCH_INGEST_PAUSE_MS=500 "$fleet" --build "$build" --app "$app" --devices 20 --edges 0 \
  --no-backlog --timeout 120 --ingest-seconds 1 >"$dir/out" 2>"$dir/err" || rc=$?
line="$(grep '^SCALE ' "$dir/out" || true)"
if [ "$rc" != 0 ] || [ -z "$line" ]; then
  echo "FAIL: mgo-bench-fleet exited $rc without a SCALE line:" >&2
  tail -20 "$dir/err" >&2
  exit 1
fi
get() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
published="$(get ingest_published)" stored="$(get ingest_stored)" ok="$(get ingest_ok)"
echo "ingest: published $published, stored $stored, ok $ok"
if ! [ "$published" -gt 0 ] 2>/dev/null; then
  echo "FAIL: the publisher published nothing (ingest_published=$published)" >&2
  exit 1
fi
if [ "$stored" != "$published" ] || [ "$ok" != 1 ]; then
  echo "FAIL: $stored of $published statuses counted as stored (ingest_ok=$ok)" >&2
  grep 'bench-fleet: ingest' "$dir/err" >&2 || true
  exit 1
fi
echo "PASS: every status the broker acknowledged was counted as stored"
