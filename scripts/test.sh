#!/usr/bin/env bash
# test.sh - the whole test suite: installs what is missing, builds with warnings as errors
# (gcc release build and clang ASan+UBSan build), then runs every test through CTest on the
# sanitizer build, and the threaded ones again on a ThreadSanitizer build. Extra arguments go
# to ctest (e.g. -R codec) and skip the ThreadSanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh containers web
echo "== build (gcc, -Werror)"
bash scripts/build.sh release
echo "== build (clang, Debug, ASan+UBSan, fuzzers)"
bash scripts/build.sh test
echo "== tests"
(cd build-test && ctest --output-on-failure --timeout 600 "$@")
# The daemons run Paho threads, libmicrohttpd threads, the runtime worker and the loop: the
# tests that run them in-process (and the loop, MQTT and HTTP units) run again under
# ThreadSanitizer. A race report fails the test (halt_on_error).
if [ $# -eq 0 ]; then
  echo "== build (clang, Debug, ThreadSanitizer)"
  bash scripts/build.sh tsan
  echo "== tests under ThreadSanitizer"
  (cd build-tsan && ctest --output-on-failure --timeout 600 \
     -R '^(common|manager|agent|web)/' -E '^web/browser')
fi
