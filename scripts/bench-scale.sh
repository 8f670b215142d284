# bench-scale.sh - the scale-out step of scripts/bench.sh (issue 16), sourced by it for
# `scripts/bench.sh --scale-only [--quick]`; uses its ROOT, BUILD, TMP, QUICK, run, load,
# commit and dirty. Defines scale() (writes $SCALE_SECTION) and scale_cleanup() (bench.sh's
# EXIT trap calls it: the PostgreSQL cluster, when one was started, is stopped and removed).
#
# Every run is a fresh core broker, K edge brokers bridged to it with the shipped
# broker-config/bridge-edge.conf, the manager(s) and the simulated fleet (mgo-bench-fleet
# --edges K); it prints one "SCALE key=value ..." line, tabulated here.

SCALE_SECTION="$TMP/scale.md"
# MGO_SCALE_RUNS_FILE: keep the runs' SCALE lines in that file and add to it (the tables are
# made from every line in it, each with its commit): a second invocation can add combinations
SCALE_RUNS_FILE="${MGO_SCALE_RUNS_FILE:-$TMP/scale-runs.txt}"
SCALE_MISSING="$TMP/scale-missing.txt"
SCALE_FAILED="$TMP/scale-failed.txt"
SCALE_PG_URL=""
SCALE_PG_STOP=""

# edges_for N: one edge per 15,000 devices (an edge's open-files limit is 20,000), at least 2
edges_for() {
  local n="$1" k
  k=$(((n + 14999) / 15000))
  [ "$k" -lt 2 ] && k=2
  echo "$k"
}

# manager_has OPTION: whether this tree's margo-manager --help names OPTION
manager_has() {
  local help
  help="$("$BUILD/manager/margo-manager" --help 2>&1 || true)"
  echo "$help" | grep -q -- "$1[ =]"
}

# scale_pg_start: a throwaway PostgreSQL cluster through the test kit's tests/support/pg.sh
# (as root it runs as an unprivileged user; 127.0.0.1 on a free port); sets SCALE_PG_URL, or
# prints why not.
scale_pg_start() {
  local helper="$ROOT/tests/support/pg.sh" dir port
  if [ ! -f "$helper" ]; then
    echo "tests/support/pg.sh is not in this tree"
    return 1
  fi
  dir="$(mktemp -d /tmp/mgo-test-scalepg.XXXXXX)"
  port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
  SCALE_PG_STOP="bash '$helper' stop '$dir'"
  if ! SCALE_PG_URL="$(bash "$helper" start "$dir" "$port" 2> "$TMP/pg-start.err")"; then
    echo "tests/support/pg.sh start failed: $(tail -1 "$TMP/pg-start.err")"
    return 1
  fi
  SCALE_PG_URL="$(echo "$SCALE_PG_URL" | grep -o 'postgresql://[^ ]*' | tail -1)"
  if [ -z "$SCALE_PG_URL" ]; then
    echo "tests/support/pg.sh start printed no postgresql:// URL"
    return 1
  fi
}

scale_cleanup() {
  if [ -n "$SCALE_PG_STOP" ]; then
    eval "$SCALE_PG_STOP" >/dev/null 2>&1 || true
    SCALE_PG_STOP=""
  fi
}

# scale_db_url SEQ: a fresh database in the cluster for one run (the manager creates its schema)
scale_db_url() {
  local name="mgo_scale_$1" host="${SCALE_PG_URL%%\?*}"
  host="$(echo "$host" | sed -E 's#^(postgresql://[^/]*).*#\1#')"
  psql -X -q -d "$host/postgres" -c "DROP DATABASE IF EXISTS $name" >/dev/null 2>&1 || true
  psql -X -q -d "$host/postgres" -c "CREATE DATABASE $name" >/dev/null 2>&1 || return 1
  echo "$host/$name"
}

# scale_run LABEL N STORE MANAGERS [EXTRA ARGS...]: one run; its SCALE line goes to the runs file
SCALE_SEQ=0
scale_run() {
  local label="$1" n="$2" store="$3" mgrs="$4"
  shift 4
  local k store_arg=sqlite
  k="$(edges_for "$n")"
  SCALE_SEQ=$((SCALE_SEQ + 1))
  if [ "$store" = postgresql ]; then
    store_arg="$(scale_db_url "$SCALE_SEQ")" || {
      echo "$label $n devices, $store, $mgrs manager(s): CREATE DATABASE failed" >> "$SCALE_FAILED"
      return 0
    }
  fi
  echo "bench: scale $label: $n devices, $k edges, $store, $mgrs manager(s) $* (load $(load))"
  local o="$TMP/scale-$SCALE_SEQ.txt" e="$TMP/scale-$SCALE_SEQ.err" rc=0
  local limit=600
  [ "$n" -ge 100000 ] && limit=1200
  run $((limit * 2 + 300)) "$BUILD/bench/mgo-bench-fleet" --build "$BUILD" --app "$ROOT/bench/fleet/bench-app.yaml" \
    --bridge-conf "$ROOT/broker-config/bridge-edge.conf" --devices "$n" --edges "$k" \
    --managers "$mgrs" --store "$store_arg" --connect-rate 1000 --no-backlog \
    --timeout "$limit" "$@" > "$o" 2> "$e" || rc=$?
  if grep -q '^SCALE ' "$o"; then
    sed "s/^SCALE /SCALE label=$label commit=$commit${dirty:+-dirty} /" "$o" | grep '^SCALE ' >> "$SCALE_RUNS_FILE"
  else
    echo "bench: scale run failed (exit $rc):" >&2
    tail -3 "$e" >&2
    echo "$label, $n devices, $k edges, $store, $mgrs manager(s): exit $rc, \`$(grep -v '^$' "$e" | tail -1 | tr '|`' '/ ')\`" >> "$SCALE_FAILED"
  fi
}

scale() {
  [ -n "${MGO_SCALE_RUNS_FILE:-}" ] || : > "$SCALE_RUNS_FILE"
  touch "$SCALE_RUNS_FILE"
  : > "$SCALE_MISSING"
  : > "$SCALE_FAILED"
  local sizes runs ingest_s n i
  if [ "$QUICK" = 1 ]; then
    sizes="${MGO_SCALE_SIZES:-2000 5000}"; runs="${MGO_SCALE_RUNS:-1}"; ingest_s=5
  else
    sizes="${MGO_SCALE_SIZES:-10000 30000 100000}"; runs="${MGO_SCALE_RUNS:-3}"; ingest_s=10
  fi
  # which combinations this tree can run
  local have_pg=0 have_share=0 why_pg="" why_share=""
  if ! manager_has --store; then
    why_pg="this tree's margo-manager has no --store option (the PostgreSQL store is not merged)"
  elif ! command -v psql >/dev/null 2>&1; then
    why_pg="psql is not installed (the benchmark counts through it)"
  elif ! scale_pg_start > "$TMP/pg-why.txt"; then
    why_pg="$(cat "$TMP/pg-why.txt")"
  else
    have_pg=1
  fi
  if ! manager_has --share-group; then
    why_share="this tree's margo-manager has no --share-group option (active-active managers are not merged)"
  elif [ "$have_pg" != 1 ]; then
    why_share="two managers share one PostgreSQL store, which is not available: $why_pg"
  else
    have_share=1
  fi
  # MGO_SCALE_NOTE: a line for the "not measured" list (what this invocation left out, and why)
  [ -n "${MGO_SCALE_NOTE:-}" ] && echo "$MGO_SCALE_NOTE" >> "$SCALE_MISSING"
  [ -n "$why_pg" ] && echo "PostgreSQL, one manager: not measured: $why_pg." >> "$SCALE_MISSING"
  [ -n "$why_share" ] && echo "PostgreSQL, two managers: not measured: $why_share." >> "$SCALE_MISSING"

  # MGO_SCALE_COMBOS: which of sqlite-1 postgresql-1 postgresql-2 to run (default all three);
  # MGO_SCALE_RUNS_MID: runs of the sizes between 10,000 and 100,000 (default MGO_SCALE_RUNS);
# MGO_SCALE_LARGE_COMBOS: the same for sizes of 100,000 and more (default: MGO_SCALE_COMBOS);
# MGO_SCALE_EXTRAS=0: without the bridge-ingest and one-broker comparison runs;
# MGO_SCALE_INGEST=0: no status ingest step
  local combos="${MGO_SCALE_COMBOS:-sqlite-1 postgresql-1 postgresql-2}" c
  # MGO_SCALE_SIZES=none: no runs, only the tables from MGO_SCALE_RUNS_FILE
  [ "$sizes" = none ] && sizes=""
  for n in $sizes; do
    local r=$runs
    [ "$n" -gt 10000 ] && r="${MGO_SCALE_RUNS_MID:-$runs}"
    [ "$n" -ge 100000 ] && r=1
    for i in $(seq 1 "$r"); do
      # status ingest in every run of the smallest size (its rate does not depend on N)
      local ing=()
      [ "$n" = "${sizes%% *}" ] && [ "${MGO_SCALE_INGEST:-1}" = 1 ] && ing=(--ingest-seconds "$ingest_s")
      local cs="$combos"
      [ "$n" -ge 100000 ] && cs="${MGO_SCALE_LARGE_COMBOS:-$combos}"
      for c in $cs; do
        case "$c" in
          sqlite-1) scale_run sqlite-1 "$n" sqlite 1 "${ing[@]}" ;;
          postgresql-1) [ "$have_pg" = 1 ] && scale_run postgresql-1 "$n" postgresql 1 "${ing[@]}" ;;
          postgresql-2) [ "$have_share" = 1 ] && scale_run postgresql-2 "$n" postgresql 2 "${ing[@]}" ;;
        esac
      done
    done
  done
  if [ "${MGO_SCALE_EXTRAS:-1}" = 1 ] && [ -n "$sizes" ]; then
    # the bridge's throughput: the status publisher on edge 1, every status crosses one bridge
    n="${sizes%% *}"
    scale_run bridge-ingest "$n" sqlite 1 --ingest-seconds "$ingest_s" --ingest-edge
    # for comparison: the smallest size on one broker (no edges, no bridge), same ingest
    scale_run one-broker "$n" sqlite 1 --edges 0 --ingest-seconds "$ingest_s"
  fi
  scale_cleanup
  scale_write
}

# scale_write: the markdown section from the SCALE lines
scale_write() {
  local cmdline="scripts/bench.sh --scale-only$( [ "$QUICK" = 1 ] && echo ' --quick')"
  {
    echo
    echo "<!-- bench.sh scale: begin (scripts/bench.sh --scale-only replaces this section) -->"
    echo "## Scale-out (issue 16): edge brokers bridged to a core, SQLite and PostgreSQL, one and two managers"
    echo
    echo "Measured by \`$cmdline\` (tables written $(date -u +%Y-%m-%dT%H:%MZ); the commit of each run is in the last table), same"
    echo "machine and build type as above (2 cores, shared: the load average is in every row)."
    echo "Each run is a fresh core Mosquitto with the manager(s) on it, K edge Mosquittos each joined"
    echo "to the core by \`broker-config/bridge-edge.conf\` as shipped (TLS lines left out, client ids"
    echo "unique per edge; one edge per 15,000 devices, at least 2: an edge holds at most ~19,000"
    echo "connections under the 20,000 open-files limit), and the simulated devices"
    echo "(\`mgo-fleet-sim\`, 2,000 per process, processes spread evenly over the edges, 1,000"
    echo "connects/s in all). Convergence = first \`POST /deployments\` → last \`installed\` status"
    echo "stored by the manager (its own \`received_ms\`; counted in SQLite read-only, or in"
    echo "PostgreSQL through psql with the same SQL); every count is checked against N, a run"
    echo "that falls short is listed as failed, not turned into a rate."
    if [ -s "$SCALE_MISSING" ]; then
      echo
      echo "**Not measured on this commit:**"
      echo
      sed 's/^/- /' "$SCALE_MISSING"
    fi
    if [ -s "$SCALE_FAILED" ]; then
      echo
      echo "**Runs that failed** (no figures from them below):"
      echo
      sed 's/^/- /' "$SCALE_FAILED"
    fi
  } > "$SCALE_SECTION"
  awk '
    function kv(line, a,   n, i, f, p) { delete a; n = split(line, f, " ")
      for (i = 2; i <= n; i++) { p = index(f[i], "="); if (p) a[substr(f[i], 1, p - 1)] = substr(f[i], p + 1) } }
    function med(list,   n, i, j, t, b) { n = split(list, b, " ")
      for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++) if (b[j] + 0 < b[i] + 0) { t = b[i]; b[i] = b[j]; b[j] = t }
      return n ? b[int((n + 1) / 2)] : "" }
    function rng(list,   n, i, lo, hi, b) { n = split(list, b, " "); if (n < 2) return ""
      lo = hi = b[1]; for (i = 2; i <= n; i++) { if (b[i] + 0 < lo + 0) lo = b[i]; if (b[i] + 0 > hi + 0) hi = b[i] }
      return " (" lo "–" hi ")" }
    function add(k, f, v) { col[k, f] = col[k, f] (col[k, f] == "" ? "" : " ") v }
    { kv($0, a); all[++nr] = $0
      if (a["label"] == "bridge-ingest") { bridge = $0; next }
      k = a["devices"] " " a["store"] " " a["managers"] " " a["edges"]
      if (!(k in seen)) { seen[k] = 1; keys[++nk] = k; ed[k] = a["edges"] }
      cnt[k]++
      add(k, "conv", a["conv_s"]); add(k, "p50", a["p50_ms"]); add(k, "p99", a["p99_ms"])
      add(k, "reg", a["reg_s"]); add(k, "api", a["api_ms"]); add(k, "push", a["push_p99_ms"])
      add(k, "mgrcpu", a["mgr_cpu_s"]); add(k, "corecpu", a["core_cpu_s"]); add(k, "edgecpu", a["edge_cpu_s"]); add(k, "simcpu", a["sims_cpu_s"]); add(k, "pgcpu", a["pg_cpu_s"] == "" ? "–" : a["pg_cpu_s"])
      add(k, "wall", a["conv_wall_s"])
      add(k, "mgrkib", a["mgr_kib"]); add(k, "mgrd", a["mgr_delta_kib"]); add(k, "brk", a["core_kib"] + a["edges_kib"])
      add(k, "brkc", a["brokers_kib_conv"]); add(k, "sim", a["sims_kib"]); add(k, "edgerss", a["edge_rss_mib_max"])
      add(k, "edgesock", a["edge_sockets_max"]); add(k, "edgedev", a["edge_devices_max"]); add(k, "corerss", a["core_rss_mib"])
      add(k, "mgrrss", a["mgr_rss_mib"])
      if (a["ingest_rate"] + 0 >= 0 && a["ingest_published"] + 0 > 0) ing[++ni] = $0
    }
    END {
      if (nr == 0) { print "\nNo run completed: no figures."; exit }
      # rows by fleet size (then as run)
      for (i = 2; i <= nk; i++) for (j = i; j > 1; j--) { split(keys[j], x, " "); split(keys[j - 1], y, " ")
        if (x[1] + 0 < y[1] + 0) { t = keys[j]; keys[j] = keys[j - 1]; keys[j - 1] = t } else break }
      print "\n**Convergence** (medians of the runs, nearest rank, so of two runs the lower; min–max in brackets; 100,000 devices run once):\n"
      print "| devices | edges (0: one broker) | store | managers | runs | **convergence total** | p50 / p99 per device | deploy calls (⌈N/256⌉ × POST) | push p99 | registration | CPU during convergence: manager / core / edges / simulators / PostgreSQL backends | goal |"
      print "|---|---|---|---|---|---|---|---|---|---|---|---|"
      for (i = 1; i <= nk; i++) { k = keys[i]; split(k, p, " ")
        goal = p[1] >= 100000 ? (med(col[k, "conv"]) + 0 < 60 ? "< 60 s: met" : "< 60 s: **missed**") : "–"
        printf "| %d | %s | %s | %s | %d | **%s s**%s | %s / %s ms | %s ms | %s ms | %s s | %s / %s / %s / %s / %s core-s in %s s | %s |\n", p[1], ed[k], p[2], p[3], cnt[k],
          med(col[k, "conv"]), rng(col[k, "conv"]), med(col[k, "p50"]), med(col[k, "p99"]), med(col[k, "api"]), med(col[k, "push"]), med(col[k, "reg"]),
          med(col[k, "mgrcpu"]), med(col[k, "corecpu"]), med(col[k, "edgecpu"]), med(col[k, "simcpu"]), p[2] == "sqlite" ? "–" : med(col[k, "pgcpu"]), med(col[k, "wall"]), goal }
      print "\n**Cost curve** (per device, medians): time = convergence total / N; CPU = core-seconds"
      print "during convergence / N; memory = resident memory (VmRSS) with every device registered,"
      print "divided by N, for each part (the managers also without their start-up memory)."
      print "Per broker: the most loaded edge (devices, open sockets, RSS) and the core.\n"
      print "| devices | time per device | manager CPU per device | all CPU per device (manager + brokers + simulators) | manager RSS / N (growth / N) | brokers RSS / N (after the deploy) | simulators RSS / N | busiest edge: devices / sockets / RSS | core RSS |"
      print "|---|---|---|---|---|---|---|---|---|"
      for (i = 1; i <= nk; i++) { k = keys[i]; split(k, p, " ")
        if (p[2] != "sqlite" || p[3] != 1 || p[4] == 0) continue
        n = p[1]; allcpu = med(col[k, "mgrcpu"]) + med(col[k, "corecpu"]) + med(col[k, "edgecpu"]) + med(col[k, "simcpu"])
        printf "| %d | %.2f ms | %.2f ms | %.2f ms | %.2f KiB (%.2f KiB) | %.2f KiB (%.2f KiB) | %.2f KiB | %s / %s / %s MiB | %s MiB |\n", n,
          med(col[k, "conv"]) * 1000 / n, med(col[k, "mgrcpu"]) * 1000 / n, allcpu * 1000 / n, med(col[k, "mgrkib"]), med(col[k, "mgrd"]),
          med(col[k, "brk"]), med(col[k, "brkc"]), med(col[k, "sim"]), med(col[k, "edgedev"]), med(col[k, "edgesock"]), med(col[k, "edgerss"]), med(col[k, "corerss"]) }
      print "\n**Status ingest** (the bench publisher, 8 connections, QoS 1, statuses for up to 20,000 of the"
      print "deployments; stored = the statuses of the publisher (its journal boot) in `status_history`, per second while it published; it runs on"
      print "the same 2 cores and needs about a core itself):\n"
      print "| store | managers | publisher on | devices | published (acknowledged by the broker) | **stored/s while publishing** | overall: published / (start → last stored) | all stored within 300 s (after the end) | CPU while publishing: managers / core broker | load before |"
      print "|---|---|---|---|---|---|---|---|---|---|"
      if (bridge != "") ing[++ni] = bridge
      for (i = 1; i <= ni; i++) { kv(ing[i], a)
        printf "| %s | %s | %s | %s | %s | **%s/s** | %s | %s | %.0f%% / %.0f%% of a core | %s |\n", a["store"], a["managers"],
          a["ingest_via"] == "edge" ? "edge 1 (every status crosses a bridge)" : a["edges"] == 0 ? "the only broker (no edges)" : "core (" a["edges"] " edges)", a["devices"], a["ingest_published"],
          a["ingest_rate"], a["ingest_overall"] == "" ? "–" : a["ingest_overall"] "/s", a["ingest_ok"] == 1 ? (a["ingest_drain_s"] == "" ? "yes" : "yes (+" a["ingest_drain_s"] " s)") : "**no** (" a["ingest_stored"] " of " a["ingest_published"] " stored)", 100 * a["ingest_mgr_core"], 100 * a["ingest_broker_core"], a["load_conv"] }
      print "\n**Every run** (load average 1/5/15 min at the start, after convergence, at the end):\n"
      print "| # | commit | devices | edges | store | managers | convergence total | registration | load: start / after convergence / end |"
      print "|---|---|---|---|---|---|---|---|---|"
      for (i = 1; i <= nr; i++) { kv(all[i], a)
        printf "| %d | %s | %s | %s | %s | %s%s | %s s | %s s | %s / %s / %s |\n", i, a["commit"], a["devices"], a["edges"], a["store"], a["managers"],
          a["label"] == "bridge-ingest" ? " (bridge ingest run)" : a["label"] == "one-broker" ? " (one broker, no edges)" : "", a["conv_s"], a["reg_s"], a["load_start"], a["load_conv"], a["load_end"] }
    }' "$SCALE_RUNS_FILE" >> "$SCALE_SECTION"
  {
    echo
    echo "Reproduce: \`$cmdline\` (builds what it needs in build-bench/, starts and stops every"
    echo "broker, manager and simulator itself; \`MGO_SCALE_SIZES=\"10000 30000\"\` and"
    echo "\`MGO_SCALE_RUNS=1\` shorten it). One run by hand:"
    echo "\`build-bench/bench/mgo-bench-fleet --build build-bench --devices 100000 --edges 7 --connect-rate 1000 --no-backlog --timeout 600\`."
    echo "<!-- bench.sh scale: end -->"
  } >> "$SCALE_SECTION"
}
