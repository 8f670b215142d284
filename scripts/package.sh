#!/usr/bin/env bash
# package.sh - builds the Debian packages margo-manager, margo-agent, margoctl and
# margo-broker-config from this tree: a Release build in build-pkg/ (gcc, -Werror, no tests
# or benchmarks), then CPack's DEB generator (packaging/CMakeLists.txt). Writes dist/*.deb.
#   scripts/package.sh                  version from CMakeLists.txt's project()
#   MGO_PKG_VERSION=0.1.1 scripts/package.sh   another version (the package test's upgrade)
#   MGO_PKG_OUT=DIR scripts/package.sh  write the packages to DIR instead of dist/
#   MGO_PKG_BUILD=DIR                   build folder instead of build-pkg/
#   MGO_PKG_JOBS=N                      parallel compile jobs (default 1)
# Needs dpkg-dev (dpkg-shlibdeps computes the shared-library Depends); scripts/setup.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
src=$PWD
out=${MGO_PKG_OUT:-$src/dist}
dir=${MGO_PKG_BUILD:-$src/build-pkg}
jobs=${MGO_PKG_JOBS:-1}
command -v dpkg-shlibdeps >/dev/null ||
    { echo "package.sh: dpkg-shlibdeps missing (apt-get install dpkg-dev; scripts/setup.sh)" >&2; exit 1; }

mkdir -p "$dir"
if ! cmake -S . -B "$dir" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMGO_WERROR=ON -DMGO_TESTS=OFF \
        -DMGO_BENCH=OFF -DCMAKE_INSTALL_PREFIX=/usr -DMGO_PKG_VERSION="${MGO_PKG_VERSION:-}" \
        >"$dir/configure.log" 2>&1; then
    cat "$dir/configure.log" >&2; echo "package.sh: configuring $dir failed" >&2; exit 1
fi
if ! cmake --build "$dir" -j "$jobs" --target margo-manager margo-agent margoctl \
        >"$dir/build.log" 2>&1; then
    grep -E -A3 'error' "$dir/build.log" | head -60 >&2 || true
    echo "package.sh: building failed (full log: $dir/build.log)" >&2; exit 1
fi
mkdir -p "$out"
rm -rf "$dir/_CPack_Packages"
if ! (cd "$dir" && cpack -G DEB -B "$dir/cpack") >"$dir/cpack.log" 2>&1; then
    cat "$dir/cpack.log" >&2; echo "package.sh: cpack failed" >&2; exit 1
fi
for f in "$dir"/cpack/*.deb; do
    name=$(basename "$f")
    rm -f "$out/${name%%_*}"_*.deb
    mv "$f" "$out/"
    echo "$out/$name"
done
