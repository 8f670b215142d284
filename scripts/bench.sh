#!/usr/bin/env bash
# bench.sh - runs every benchmark of issues 8 and 14 in one go and writes docs/benchmarks.md.
#
#   scripts/bench.sh            codec, then fleets of 1,000 and 10,000 simulated devices
#                               (convergence, status ingest, polling baseline, agent footprint,
#                               reconnect storm), then the rollouts (below); about 10-15 minutes
#   scripts/bench.sh --quick    smoke sizes (200 and 1,000 devices, shorter ingest)
#   scripts/bench.sh --rollouts-only [--quick]
#                               only the rollout step (issue 14: 10,000 devices, three runs each
#                               of 0.5 % and 5 % injected failures; --quick: 1,000, one run), and
#                               replaces only the rollouts section of docs/benchmarks.md (between
#                               its markers), leaving every other figure as it was measured
#   scripts/bench.sh --scale-only [--quick]
#                               only the scale-out step (issue 16): 10,000, 30,000 and 100,000
#                               devices over several edge brokers bridged to a core, with SQLite
#                               and with PostgreSQL, one and two managers (each combination this
#                               tree's margo-manager supports; the others are listed as not
#                               measured, with the reason); status ingest with one and two
#                               managers and across a bridge; time and memory per device as the
#                               fleet grows. Replaces only the scale section of docs/benchmarks.md.
#                               --quick: 2,000 and 5,000 devices, one run each. MGO_SCALE_SIZES
#                               ("10000 30000") and MGO_SCALE_RUNS (runs below 100,000; default 3)
#                               override the sizes and the repeats; more knobs in
#                               scripts/bench-scale.sh.
#
# Environment: MGO_BENCH_BUILD (default build-bench), MGO_BENCH_OUT (default
# docs/benchmarks.md). Loopback only: every broker, manager, agent and simulator listens on
# 127.0.0.1 and is started by mgo-bench-fleet, which stops them all at the end, also on
# Ctrl-C (and they get SIGTERM if it dies). Each step is bounded by `timeout`.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
BUILD="${MGO_BENCH_BUILD:-$ROOT/build-bench}"
OUT="${MGO_BENCH_OUT:-$ROOT/docs/benchmarks.md}"
QUICK=0
ROLLOUTS_ONLY=0
SCALE_ONLY=0
for arg in "$@"; do
  case "$arg" in
    --quick) QUICK=1 ;;
    --rollouts-only) ROLLOUTS_ONLY=1 ;;
    --scale-only) SCALE_ONLY=1 ;;
    -h|--help) sed -n '2,30p' "$0"; exit 0 ;;
    *) echo "bench.sh: unknown argument '$arg' (known: --quick, --rollouts-only, --scale-only)" >&2; exit 2 ;;
  esac
done
if [ "$QUICK" = 1 ]; then SMALL=200; LARGE=1000; INGEST_S=5; else SMALL=1000; LARGE=10000; INGEST_S=10; fi
# the rollout step: fleet size and runs per scenario
if [ "$QUICK" = 1 ]; then ROLL_N=1000; ROLL_RUNS=1; else ROLL_N=10000; ROLL_RUNS=3; fi

TMP="$(mktemp -d /tmp/mgo-bench.XXXXXX)"
CHILD=""
cleanup() {
  if [ -n "$CHILD" ] && kill -0 "$CHILD" 2>/dev/null; then
    kill -TERM "$CHILD" 2>/dev/null || true   # the controller stops what it started
    wait "$CHILD" 2>/dev/null || true
  fi
  # the scale step's PostgreSQL cluster, when it started one
  if declare -F scale_cleanup >/dev/null; then scale_cleanup; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "bench.sh: interrupted" >&2; exit 130' INT TERM

# run LIMIT_S CMD...: runs one step in the background (so Ctrl-C reaches our trap) with a limit
run() {
  local limit="$1"; shift
  timeout --signal=TERM --kill-after=30 "$limit" "$@" &
  CHILD=$!
  local rc=0
  wait "$CHILD" || rc=$?
  CHILD=""
  return "$rc"
}

echo "bench: building $BUILD (RelWithDebInfo, no sanitizers)"
cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMGO_BENCH=ON >/dev/null
if [ "$SCALE_ONLY" = 1 ]; then
  cmake --build "$BUILD" -j"$(nproc)" --target mgo-bench-fleet mgo-fleet-sim mgo-bench-ingest \
    margo-manager >/dev/null
elif [ "$ROLLOUTS_ONLY" = 1 ]; then
  cmake --build "$BUILD" -j"$(nproc)" --target mgo-bench-fleet mgo-fleet-sim margo-manager >/dev/null
else
  cmake --build "$BUILD" -j"$(nproc)" --target mgo-bench-codec mgo-bench-fleet mgo-fleet-sim \
    mgo-bench-ingest margo-manager margo-agent >/dev/null
fi

# 10,000 devices need 10,000 broker connections plus the simulators' sockets
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
FD_LIMIT="$(ulimit -n)"

SECTIONS="$TMP/sections.md"
: > "$SECTIONS"
SUMMARY="$TMP/summary.txt"
: > "$SUMMARY"

load() { cut -d' ' -f1-3 /proc/loadavg; }
commit="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)"
dirty="$(git -C "$ROOT" status --porcelain 2>/dev/null | grep -q . && echo ' (with uncommitted changes)' || true)"

# ---- rollouts (issue 14) ----------------------------------------------------------------------
# rollouts: ROLL_RUNS runs (fresh broker, manager and fleet each) of each scenario: 0.5 % of the
# devices fail the new version (must complete) and 5 % (must abort and roll back); the first run
# of each writes its full table, then a table of every run and the medians.
ROLL_SECTION="$TMP/rollouts.md"
rollouts() {
  local pct i out
  {
    echo
    echo "<!-- bench.sh rollouts: begin (scripts/bench.sh --rollouts-only replaces this section) -->"
    echo "## Rollouts (issue 14): a staged upgrade with injected failures, next to a plain deploy"
    echo
    echo "Measured by \`scripts/bench.sh$( [ "$ROLLOUTS_ONLY" = 1 ] && echo ' --rollouts-only')$( [ "$QUICK" = 1 ] && echo ' --quick')\`"
    echo "on $(date -u +%Y-%m-%dT%H:%MZ), commit $commit$dirty, same machine type and build type as above."
    echo "Each run is a fresh Mosquitto, \`margo-manager\` and fleet of $ROLL_N simulated devices"
    echo "(\`mgo-bench-fleet --rollout-fail PCT\`): version 1.0 of the bench app is deployed to every"
    echo "device (the plain deploy, \`POST /deployments\`), then version 2.0 is rolled out to all of"
    echo "them with \`POST /api/v1/rollouts\` (mode \`upgrade\`, empty selector, 10 batches of 10 %,"
    echo "\`maxFailures\` 2 % per batch and overall, app failures only, \`onAbort: rollback\`) and"
    echo "\`GET /api/v1/rollouts/{id}\` is polled every 250 ms until a final state. The simulators fail"
    echo "the 2.0 install with \`RUNTIME_FAILED\` (class \`app\`) on a fixed subset: every 200th"
    echo "device (0.5 %) or every 20th (5 %). Manager CPU = user+sys from \`/proc/PID/stat\`"
    echo "before and after. The two cores are shared with other work (the load average is in"
    echo "every row): absolute times move from run to run, compare the columns of one row."
  } > "$ROLL_SECTION"
  for pct in 0.5 5; do
    for i in $(seq 1 "$ROLL_RUNS"); do
      echo "bench: rollout, $ROLL_N devices, $pct % failing, run $i of $ROLL_RUNS (load $(load))"
      out=/dev/null
      [ "$i" = 1 ] && out="$ROLL_SECTION"
      if ! run 900 "$BUILD/bench/mgo-bench-fleet" --build "$BUILD" --app "$ROOT/bench/fleet/bench-app.yaml" \
          --devices "$ROLL_N" --out "$out" --timeout 300 --rollout-fail "$pct" \
          > "$TMP/rollout-$pct-$i.txt" 2> "$TMP/rollout-$pct-$i.err"; then
        echo "bench: rollout run failed:" >&2
        tail -5 "$TMP/rollout-$pct-$i.err" >&2
        { echo; echo "**Rollout run ($pct % failing, run $i) failed:** \`$(tail -1 "$TMP/rollout-$pct-$i.err")\`"; } >> "$ROLL_SECTION"
      fi
      grep '^SUMMARY rollout-' "$TMP/rollout-$pct-$i.txt" >> "$TMP/rollout-runs.txt" || true
    done
  done
  # SUMMARY rollout-N-fail-P: STATE in T s, abort A s, manager C core-s, on 1.0/2.0 X/Y, app failures F;
  #   plain deploy D s, manager E core-s, rolled back R (load L1 L2 L3)
  awk -v n="$ROLL_N" '
    { p = $2; sub(/^rollout-[0-9]+-fail-/, "", p); sub(/:$/, "", p)
      k = ++c[p]; st[p, k] = $3; t[p, k] = $5; ab[p, k] = $8; cpu[p, k] = $11; ver[p, k] = $15; sub(/,$/, "", ver[p, k])
      fl[p, k] = $18; sub(/;$/, "", fl[p, k]); d[p, k] = $21; dc[p, k] = $24; rb[p, k] = $28
      l = $0; sub(/.*\(load /, "", l); sub(/\)$/, "", l); ld[p, k] = l
      if (!(p in seen)) { seen[p] = 1; order[++np] = p } }
    function med(p, a, k,   i, j, x, b) { for (i = 1; i <= k; i++) b[i] = a[p, i]
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (b[j] + 0 < b[i] + 0) { x = b[i]; b[i] = b[j]; b[j] = x }
      return b[int((k + 1) / 2)] }
    END {
      if (np == 0) exit
      printf "\n**Every run, %d devices** (fresh broker, manager and fleet each):\n\n", n
      printf "| failing | run | rollout final state | rollout: create → final | abort seen | manager CPU, rollout | plain deploy of 1.0: time | manager CPU, plain deploy | installed on 1.0 / 2.0 at the end | app failures | targets rolled back | load average (1/5/15 min) |\n"
      printf "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
      for (q = 1; q <= np; q++) { p = order[q]
        for (i = 1; i <= c[p]; i++)
          printf "| %s %% | %d | `%s` | %s s | %s | %s core-s | %s s | %s core-s | %s | %s | %s | %s |\n", p, i, st[p, i], t[p, i], ab[p, i] == "-" ? "–" : ab[p, i] " s", cpu[p, i], d[p, i], dc[p, i], ver[p, i], fl[p, i], rb[p, i], ld[p, i] }
      printf "\n**Medians** (%s runs per scenario):\n\n", c[order[1]]
      printf "| failing | rollout: create → final state | manager CPU, rollout | plain deploy of 1.0 to the same fleet | manager CPU, plain deploy |\n|---|---|---|---|---|\n"
      for (q = 1; q <= np; q++) { p = order[q]; k = c[p]
        printf "| %s %% (%s) | **%s s** | **%s core-s** | %s s | %s core-s |\n", p, st[p, 1], med(p, t, k), med(p, cpu, k), med(p, d, k), med(p, dc, k)
        printf "SUMMARY rollout-%d %s%% failing, median of %d runs: %s in %s s, manager %s core-s; plain deploy %s s, manager %s core-s\n", n, p, k, st[p, 1], med(p, t, k), med(p, cpu, k), med(p, d, k), med(p, dc, k) > medfile }
    }' medfile="$TMP/rollout-median.txt" "$TMP/rollout-runs.txt" >> "$ROLL_SECTION" 2>/dev/null || true
  {
    echo
    echo "How to read it: the plain deploy is the 1.0 deploy to the whole fleet that precedes each"
    echo "rollout (one \`POST /deployments\` per 256 devices, every device at once). The rollout's"
    echo "batches run one after another: a batch starts when every device of the previous one has"
    echo "reported, and the engine runs every second and 200 ms after statuses that change a"
    echo "deployment's state (docs/rollouts.md), so a rollout that completes takes longer than"
    echo "the plain deploy. With 5 % failing it aborts inside its first batch: the engine changes"
    echo "at most 256 deployments per tick, the batch threshold (2 % of the batch) is exceeded"
    echo "once enough of the devices changed so far have failed, and only those devices (\"targets"
    echo "rolled back\") were touched and are rolled back; the others never see 2.0."
    echo "<!-- bench.sh rollouts: end -->"
  } >> "$ROLL_SECTION"
}

# splice SECTION_FILE NAME: replaces the section between "<!-- bench.sh NAME: begin" and
# "<!-- bench.sh NAME: end" in $OUT, or inserts it before the notes (or at the end)
splice() {
  local sec="$1" name="$2"
  if [ -f "$OUT" ] && grep -q "^<!-- bench.sh $name: begin" "$OUT"; then
    awk -v sec="$sec" -v b="^<!-- bench.sh $name: begin" -v e="^<!-- bench.sh $name: end" '
      $0 ~ b { skip = 1; while ((getline l < sec) > 0) if (l != "" || started++) print l; next }
      $0 ~ e { skip = 0; next }
      !skip { print }' "$OUT" > "$TMP/out.md"
  elif [ -f "$OUT" ] && grep -q '^## How these numbers are made' "$OUT"; then
    awk -v sec="$sec" '
      /^## How these numbers are made/ { while ((getline l < sec) > 0) if (l != "" || started++) print l; print "" }
      { print }' "$OUT" > "$TMP/out.md"
  else
    { [ -f "$OUT" ] && cat "$OUT"; cat "$sec"; } > "$TMP/out.md"
  fi
  cp "$TMP/out.md" "$OUT"
}

if [ "$ROLLOUTS_ONLY" = 1 ]; then
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  : > "$TMP/rollout-runs.txt"
  rollouts
  splice "$ROLL_SECTION" rollouts
  echo "bench: replaced the rollouts section of $OUT"
  sed 's/^SUMMARY /  /' "$TMP/rollout-median.txt" 2>/dev/null || true
  exit 0
fi

if [ "$SCALE_ONLY" = 1 ]; then
  # shellcheck source=scripts/bench-scale.sh
  . "$ROOT/scripts/bench-scale.sh"
  scale
  splice "$SCALE_SECTION" scale
  echo "bench: replaced the scale section of $OUT"
  exit 0
fi

# ---- 1. codec ---------------------------------------------------------------------------------
echo "bench: codec (load $(load))"
IR="$TMP/ir.txt"
: > "$IR"
if command -v valgrind >/dev/null 2>&1; then
  for op in $("$BUILD/bench/mgo-bench-codec" --list); do
    n=2000
    collected="$(valgrind --tool=callgrind --callgrind-out-file="$TMP/cg.out" \
        --toggle-collect="bench_op_$op" "$BUILD/bench/mgo-bench-codec" --op "$op" --iters "$n" 2>&1 |
      sed -n 's/.*Collected : \([0-9]*\).*/\1/p' | tail -1)"
    [ -n "$collected" ] && echo "$op $((collected / n))" >> "$IR"
  done
fi
{
  echo
  echo "## Codec (B1): 5-component ApplicationDeployment and 5-component status"
  echo
  echo "Median of 15 batches of ~10 ms each (min–max in brackets); instructions per op from"
  echo "callgrind (independent of load; cJSON's allocator calls included); allocations = malloc,"
  echo "calloc and realloc calls per op, counted by interposing glibc's allocator."
  echo "MessagePack decode+validate = bytes → tree in a fresh arena → typed struct with every"
  echo "schema rule; cJSON decode+walk = parse → the same struct with required fields and JSON"
  echo "types only (cJSON has no schema, so it checks less)."
  echo
  run 300 "$BUILD/bench/mgo-bench-codec" --markdown --repeats 15 --ir "$IR" | tee "$TMP/codec.txt" |
    grep -v '^SUMMARY'
} >> "$SECTIONS"
grep '^SUMMARY' "$TMP/codec.txt" >> "$SUMMARY" || true

# ---- 2. fleets ------------------------------------------------------------------------------
{
  echo
  echo "## Fleet benchmarks (convergence, ingest, polling baseline, footprint, reconnect storm)"
  echo
  echo "Real Mosquitto 2.0.11 and the real \`margo-manager\` (own state dir, SQLite) on free"
  echo "loopback ports; simulated devices in processes of at most 2,000 MQTT connections each"
  echo "(\`mgo-fleet-sim\`: Paho MQTTAsync, persistent sessions, real codecs, the agent's own"
  echo "planner \`agent/src/plan.c\`, no-op runtime, no on-disk journal, no settle delay)."
  echo "Times are measured from the first deploy API call to the \`installed\` status as stored"
  echo "by the manager (\`status.received_ms\` in its store). Open-files limit: $FD_LIMIT."
} >> "$SECTIONS"

fleet() {
  local n="$1"; shift
  echo "bench: fleet of $n devices $* (load $(load))"
  if ! run 900 "$BUILD/bench/mgo-bench-fleet" --build "$BUILD" --app "$ROOT/bench/fleet/bench-app.yaml" \
      --devices "$n" --out "$SECTIONS" --timeout 240 "$@" > "$TMP/fleet-$n.txt" 2> "$TMP/fleet-$n.err"; then
    echo "bench: fleet of $n devices failed:" >&2
    tail -5 "$TMP/fleet-$n.err" >&2
    { echo; echo "**Fleet of $n devices failed:** \`$(tail -1 "$TMP/fleet-$n.err")\`"; } >> "$SECTIONS"
  fi
  grep '^SUMMARY' "$TMP/fleet-$n.txt" >> "$SUMMARY" || true
}
# repeats N K ARGS...: K more runs (fresh broker and manager each) for the medians
repeats() {
  local n="$1" k="$2"; shift 2
  local i
  for i in $(seq 1 "$k"); do
    echo "bench: fleet of $n devices, repeat $i of $k (load $(load))"
    run 900 "$BUILD/bench/mgo-bench-fleet" --build "$BUILD" --app "$ROOT/bench/fleet/bench-app.yaml" \
      --devices "$n" --out /dev/null --timeout 240 "$@" 2>> "$TMP/repeat-$n.err" |
      grep '^SUMMARY' >> "$TMP/repeat-$n.txt" || true
  done
}

# median_table N: the first run (above) and the repeats, one row each, and the medians
median_table() {
  local n="$1"
  grep "^SUMMARY fleet-$n:\|^SUMMARY storm-$n:" "$SUMMARY" "$TMP/repeat-$n.txt" 2>/dev/null |
    sed 's/^[^:]*://' > "$TMP/runs-$n.txt" || true
  awk -v n="$n" '
    /^SUMMARY fleet-/ { c++; tot[c] = $5; p50[c] = $13; p99[c] = $16; l = $0; sub(/.*\(load /, "", l); sub(/\)$/, "", l); load[c] = l }
    /^SUMMARY storm-/ { s++; st[s] = $5; pr[s] = $14 }
    function med(a, k,   i, j, t, b) { for (i = 1; i <= k; i++) b[i] = a[i];
      for (i = 1; i <= k; i++) for (j = i + 1; j <= k; j++) if (b[j] + 0 < b[i] + 0) { t = b[i]; b[i] = b[j]; b[j] = t }
      return b[int((k + 1) / 2)] }
    END {
      if (c == 0) exit
      printf "\n**Fleet of %d devices, %d runs** (fresh broker and manager each):\n\n", n, c
      printf "| run | convergence total | p50 | p99 |%s load average (1/5/15 min) |\n", s ? " storm resync | storm presence stored |" : ""
      printf "|---|---|---|---|%s---|\n", s ? "---|---|" : ""
      for (i = 1; i <= c; i++) printf "| %d | %s s | %s ms | %s ms |%s %s |\n", i, tot[i], p50[i], p99[i], s ? sprintf(" %s s | %s s |", st[i], pr[i]) : "", load[i]
      printf "| **median** | **%s s** | %s ms | %s ms |%s |\n", med(tot, c), med(p50, c), med(p99, c), s ? sprintf(" **%s s** | %s s |", med(st, s), med(pr, s)) : ""
      g = n <= 1000 ? 1 : n / 1000
      printf "SUMMARY fleet-%d median of %d runs: convergence total %s s (goal < %d s: %s)%s\n", n, c, med(tot, c), g, med(tot, c) + 0 < g ? "met" : "missed", s ? sprintf("; storm resync %s s (goal < 10 s: %s)", med(st, s), med(st, s) + 0 < 10 ? "met" : "missed") : "" > medfile
    }' medfile="$TMP/median-$n.txt" "$TMP/runs-$n.txt" >> "$SECTIONS"
  cat "$TMP/median-$n.txt" >> "$SUMMARY" 2>/dev/null || true
}

fleet "$SMALL" --poll --poll-requests 1000 --ingest-seconds "$INGEST_S" --agent "$BUILD/agent/margo-agent"
fleet "$LARGE" --storm
repeats "$SMALL" 2
repeats "$LARGE" 2 --storm
median_table "$SMALL"
median_table "$LARGE"
# the same deploy with Mosquitto's default in-flight window (20; broker-config/ ships 0 = no limit)
fleet 300 --broker-inflight 20

: > "$TMP/rollout-runs.txt"
rollouts
cat "$ROLL_SECTION" >> "$SECTIONS"
cat "$TMP/rollout-median.txt" >> "$SUMMARY" 2>/dev/null || true

# ---- 3. the document --------------------------------------------------------------------------
cpu="$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)"
mem="$(awk '/MemTotal/ {printf "%.1f GiB", $2 / 1048576}' /proc/meminfo)"
mosq="$(/usr/sbin/mosquitto -h 2>/dev/null | head -1 || true)"
{
  echo "# Benchmarks"
  echo
  echo "Written by \`scripts/bench.sh$( [ "$QUICK" = 1 ] && echo ' --quick')\` on $(date -u +%Y-%m-%dT%H:%MZ). Honest numbers from"
  echo "one run of the script on the machine below (the fleet convergence and storm runs are"
  echo "repeated three times, with their medians); goals are those of issue 8 (anchors in"
  echo "\`../shared/reference/PERF-ANCHORS.md\`). Other work may have been running on the same two"
  echo "cores: the load average is printed next to each group of figures."
  echo
  echo "| machine | |"
  echo "|---|---|"
  echo "| CPU | $cpu, $(nproc) cores |"
  echo "| memory | $mem |"
  echo "| kernel | $(uname -sr) |"
  echo "| broker | ${mosq:-mosquitto} |"
  echo "| build | RelWithDebInfo (-O2 -g), no sanitizers, commit $commit$dirty |"
  echo "| command | \`scripts/bench.sh$( [ "$QUICK" = 1 ] && echo ' --quick')\` |"
  echo
  echo "## Summary"
  echo
  echo '```'
  sed 's/^SUMMARY //' "$SUMMARY"
  echo '```'
  cat "$SECTIONS"
  if [ -f "$ROOT/bench/NOTES.md" ]; then
    echo
    cat "$ROOT/bench/NOTES.md"
  fi
} > "$OUT"
echo "bench: wrote $OUT"
sed 's/^SUMMARY /  /' "$SUMMARY"
