#!/usr/bin/env bash
# build.sh - configures and builds one build folder.
#   scripts/build.sh release   -> build/ (gcc, RelWithDebInfo, -Werror)
#   scripts/build.sh test      -> build-test/ (clang, Debug: ASan+UBSan, libFuzzer harnesses)
set -euo pipefail
cd "$(dirname "$0")/.."
kind=${1:-release}
jobs=$(nproc)
case "$kind" in
  release)
    cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMGO_WERROR=ON >/dev/null
    cmake --build build -j "$jobs" 2>&1 | grep -vE '^\[ *[0-9]+%\]|^-- ' || true
    test "${PIPESTATUS[0]}" -eq 0
    ;;
  test)
    CC=clang cmake -S . -B build-test -DCMAKE_BUILD_TYPE=Debug -DMGO_WERROR=ON -DMGO_FUZZ=ON >/dev/null
    cmake --build build-test -j "$jobs" 2>&1 | grep -vE '^\[ *[0-9]+%\]|^-- ' || true
    test "${PIPESTATUS[0]}" -eq 0
    ;;
  *) echo "build.sh: unknown kind '$kind' (release|test)" >&2; exit 2 ;;
esac
