#!/usr/bin/env bash
# build.sh - configures and builds one build folder; stops on the first failure and shows
# the compiler's errors (the full log stays in <folder>/build.log).
#   scripts/build.sh release   -> build/ (gcc, RelWithDebInfo, -Werror)
#   scripts/build.sh test      -> build-test/ (clang, Debug: ASan+UBSan, libFuzzer harnesses)
#   scripts/build.sh tsan      -> build-tsan/ (clang, Debug: ThreadSanitizer; no benchmarks)
# Extra arguments name targets to build instead of everything (the demo builds only the
# three programs: margo-manager margo-agent margoctl).
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
shift || true
targets=()
for t in "$@"; do targets+=(--target "$t"); done
jobs=$(nproc)

build() {
  local dir=$1
  shift
  if ! "$@" -S . -B "$dir" > "$dir.configure.log" 2>&1; then
    cat "$dir.configure.log" >&2
    echo "build.sh: configuring $dir failed" >&2
    return 1
  fi
  rm -f "$dir.configure.log"
  if ! cmake --build "$dir" -j "$jobs" "${targets[@]}" > "$dir/build.log" 2>&1; then
    grep -E -A3 'error|warning' "$dir/build.log" | head -80 >&2 || true
    tail -5 "$dir/build.log" >&2
    echo "build.sh: building $dir failed (full log: $dir/build.log)" >&2
    return 1
  fi
}

case "$kind" in
  release) build build cmake -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMGO_WERROR=ON ;;
  test) CC=clang build build-test cmake -DCMAKE_BUILD_TYPE=Debug -DMGO_WERROR=ON -DMGO_FUZZ=ON ;;
  tsan) CC=clang build build-tsan cmake -DCMAKE_BUILD_TYPE=Debug -DMGO_WERROR=ON \
          -DMGO_SANITIZER=thread -DMGO_BENCH=OFF ;;
  *) echo "build.sh: unknown kind '$kind' (release|test|tsan)" >&2; exit 2 ;;
esac
