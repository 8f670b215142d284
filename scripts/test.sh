#!/usr/bin/env bash
# test.sh - the whole test suite: installs what is missing, builds with warnings as errors
# (gcc release build and clang ASan+UBSan build), then runs every test through CTest on the
# sanitizer build. Extra arguments go to ctest (e.g. -R codec).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh containers web
echo "== build (gcc, -Werror)"
bash scripts/build.sh release
echo "== build (clang, Debug, ASan+UBSan, fuzzers)"
bash scripts/build.sh test
echo "== tests"
cd build-test
ctest --output-on-failure --timeout 600 "$@"
