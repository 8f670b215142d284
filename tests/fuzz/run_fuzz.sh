#!/bin/sh
# run_fuzz.sh BINARY CORPUS SECONDS [ARTIFACT_DIR]
#
# Runs one libFuzzer harness for SECONDS over a temporary copy of the seed corpus CORPUS
# (the committed corpus is never modified; new inputs found are thrown away). Crashing,
# leaking or hanging inputs are written to ARTIFACT_DIR (default ./fuzz-artifacts/<binary>/)
# and the script exits non-zero; it exits 0 when the run ends without finding anything.
set -eu

usage() {
    echo "usage: $0 BINARY CORPUS SECONDS [ARTIFACT_DIR]" >&2
    echo "  BINARY        a libFuzzer harness (fuzz_<name>)" >&2
    echo "  CORPUS        seed corpus folder (tests/fuzz/corpus/<name>), copied, not modified" >&2
    echo "  SECONDS       total fuzzing time, a positive integer" >&2
    echo "  ARTIFACT_DIR  where crash inputs are kept (default ./fuzz-artifacts/<binary>)" >&2
    exit 2
}

case "${1:-}" in -h|--help) usage ;; esac
[ $# -ge 3 ] && [ $# -le 4 ] || usage
binary=$1
corpus=$2
seconds=$3
artifacts=${4:-./fuzz-artifacts/$(basename "$binary")}

if [ ! -x "$binary" ]; then
    echo "run_fuzz.sh: BINARY: $binary is not an executable file" >&2
    exit 2
fi
case "$seconds" in
    ''|*[!0-9]*|0) echo "run_fuzz.sh: SECONDS: '$seconds' is not a positive integer" >&2; exit 2 ;;
esac

work=$(mktemp -d "${TMPDIR:-/tmp}/mgo-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT INT TERM
mkdir -p "$work/corpus" "$artifacts"
if [ -d "$corpus" ]; then
    # Seeds only (no dot files such as .gitkeep).
    find "$corpus" -maxdepth 1 -type f ! -name '.*' -exec cp {} "$work/corpus/" \;
else
    echo "run_fuzz.sh: note: no seed corpus at $corpus; starting from an empty corpus" >&2
fi
echo "run_fuzz.sh: $(basename "$binary"): $(ls "$work/corpus" | wc -l) seeds, ${seconds}s," \
     "artifacts in $artifacts"

status=0
"$binary" -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" "$work/corpus" || status=$?
if [ "$status" -ne 0 ]; then
    echo "run_fuzz.sh: $(basename "$binary") failed (exit $status); reproduce with:" >&2
    echo "  $binary $artifacts/<crash-file>" >&2
fi
exit "$status"
