#!/usr/bin/env bash
# test.sh - the whole test suite: installs what is missing, builds with warnings as errors
# (gcc release build and clang ASan+UBSan build), then runs every test through CTest on the
# sanitizer build, and the threaded ones again on a ThreadSanitizer build. Extra arguments go
# to ctest (e.g. -R codec) and skip the ThreadSanitizer pass.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh containers web
echo "== format (clang-format --dry-run)"
bash scripts/format.sh --check
echo "== shell syntax (bash -n: scripts the suite does not run, such as the benchmarks)"
for f in scripts/*.sh tests/*/*.sh tests/*/*/*.sh .ci/run; do
  if [ -f "$f" ]; then bash -n "$f"; fi
done
echo "== build (gcc, -Werror)"
bash scripts/build.sh release
echo "== build (clang, Debug, ASan+UBSan, fuzzers)"
bash scripts/build.sh test
echo "== tests"
# Two tests at a time (MGO_TEST_JOBS): every test starts its own brokers, databases and folders
# on free ports; tests with real containers run alone (RUN_SERIAL, tests/CMakeLists.txt).
(cd build-test && ctest --output-on-failure --timeout 600 -j"${MGO_TEST_JOBS:-2}" "$@")
# The daemons run Paho threads, libmicrohttpd threads, the runtime worker and the loop: the
# tests that run them in-process (and the loop, MQTT and HTTP units) run again under
# ThreadSanitizer. A race report fails the test (halt_on_error).
# The set: the loop and the MQTT client (common; test_mqtt_restart retires Paho clients under
# broker restarts), the manager in-process with its HTTP
# threads (API, ingest, the integration test, the connection limits, the web front end) and
# the agent with its runtime worker (cancellation), and two store handles on one PostgreSQL
# database from two threads (test_store_concurrent), two managers in one process relaying live
# events through PostgreSQL to each other's event streams (test_live_managers). The other tests add runtimes and
# processes, not threads, and would only double the suite's time.
TSAN_TARGETS=(common_test_loop common_test_mqtt common_test_mqtt_restart manager_test_api manager_test_ingest
              manager_test_manager_it manager_test_store_concurrent manager_test_live_managers agent_test_agent_cancel security_test_api_limits
              web_test_web web_harness margo-manager margo-agent margoctl)
TSAN_TESTS='^(common/test_(loop|mqtt|mqtt_restart)|manager/test_(api|ingest|manager_it|store_concurrent|live_managers)|agent/test_agent_cancel|security/test_api_limits|web/test_web)$'
if [ $# -eq 0 ]; then
  echo "== build (clang, Debug, ThreadSanitizer)"
  bash scripts/build.sh tsan "${TSAN_TARGETS[@]}"
  echo "== tests under ThreadSanitizer"
  (cd build-tsan && ctest --output-on-failure --timeout 600 -R "$TSAN_TESTS")
fi
