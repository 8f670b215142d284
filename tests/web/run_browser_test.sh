#!/bin/sh
# run_browser_test.sh HARNESS NODE_DIR - the CTest test web/browser (docs/web.md).
# Installs playwright-core from tests/web/package-lock.json into NODE_DIR (npm ci; never a
# browser download) and runs browser.test.mjs against the Debian chromium.
# Exit 77 (CTest: skipped) only when chromium or node/npm are not installed.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
harness=$1
nodedir=$2
chromium=${MGO_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then
    echo "SKIP: $chromium is not installed (Debian package: chromium); the browser tests need it"
    exit 77
fi
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    echo "SKIP: node and npm are not installed (Debian packages: nodejs, npm); the browser tests need them"
    exit 77
fi
mkdir -p "$nodedir"
cp "$here/package.json" "$here/package-lock.json" "$nodedir/"
if ! cmp -s "$here/package-lock.json" "$nodedir/node_modules/.margo-package-lock.json" 2>/dev/null; then
    echo "npm ci in $nodedir (playwright-core from the npm registry)"
    if ! (cd "$nodedir" && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --ignore-scripts --no-audit --no-fund); then
        echo "FAIL: npm ci did not install playwright-core (is the npm registry reachable?)"
        exit 1
    fi
    cp "$here/package-lock.json" "$nodedir/node_modules/.margo-package-lock.json"
fi
MGO_CHROMIUM="$chromium" exec node "$here/browser.test.mjs" "$harness" "$nodedir"
