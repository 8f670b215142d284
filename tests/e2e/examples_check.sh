#!/usr/bin/env bash
# examples_check.sh - the sample packages of examples/ are what they claim to be:
#   * every margo.yaml is a valid ApplicationDescription (margoctl validate);
#   * every compose component has its compose file, with services, and every ENV.X parameter
#     targeting the component is used as ${X...} in that file (no silently ignored parameter);
#     every published port binds 127.0.0.1 only;
#   * the Helm chart's name and version are the component's name and revision, and every
#     parameter pointer is a key path of values.yaml;
#   * scripts/publish-package.sh refuses bad input with a message naming the problem.
#   examples_check.sh MARGOCTL
set -uo pipefail
ctl="$1"
src=$(cd "$(dirname "$0")/../.." && pwd)
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

if out=$("$ctl" validate "$src"/examples/*/margo.yaml 2>&1); then
    ok "every examples/*/margo.yaml is valid"
else
    bad "margoctl validate: $out"
fi

/usr/bin/python3 - "$src/examples" <<'PY' || fails=$((fails + 1))
import os, re, sys, yaml
root = sys.argv[1]
problems = 0
def fail(msg):
    global problems
    problems += 1
    print("FAIL:", msg)
for app in sorted(os.listdir(root)):
    pkg = os.path.join(root, app)
    path = os.path.join(pkg, "margo.yaml")
    if not os.path.isfile(path):
        continue
    doc = yaml.safe_load(open(path))
    params = doc.get("parameters") or {}
    for prof in doc.get("deploymentProfiles") or []:
        for comp in prof.get("components") or []:
            name, props = comp["name"], comp.get("properties") or {}
            targets = [(p, t["pointer"]) for p, v in params.items()
                       for t in v.get("targets") or [] if name in t.get("components", [])]
            if prof["type"] == "compose":
                f = os.path.join(pkg, "compose", name + ".yaml")
                if not os.path.isfile(f):
                    fail(f"{app}: component {name}: {f} missing"); continue
                text = open(f).read()
                cdoc = yaml.safe_load(text)
                if not isinstance(cdoc.get("services"), dict):
                    fail(f"{app}: {f}: no services"); continue
                for p, ptr in targets:
                    var = ptr[4:] if ptr.startswith("ENV.") else ptr
                    if not re.search(r"\$\{" + re.escape(var) + r"[:}?-]", text):
                        fail(f"{app}: parameter {p} -> {ptr} is not used as ${{{var}}} in {f}")
                for svc, s in cdoc["services"].items():
                    for port in s.get("ports") or []:
                        if not str(port).startswith("127.0.0.1:"):
                            fail(f"{app}: {f}: service {svc} publishes {port} beyond loopback")
                print(f"ok: {app}/{name}: compose file present, {len(targets)} parameter(s) used")
            elif prof["type"] in ("helm", "helm.v3"):
                chart = os.path.join(pkg, "chart", name)
                meta = yaml.safe_load(open(os.path.join(chart, "Chart.yaml")))
                if meta.get("name") != name:
                    fail(f"{app}: Chart.yaml name {meta.get('name')!r} is not the component name {name!r}")
                if str(meta.get("version")) != str(props.get("revision")):
                    fail(f"{app}: Chart.yaml version {meta.get('version')} differs from revision {props.get('revision')}")
                values = yaml.safe_load(open(os.path.join(chart, "values.yaml")))
                for p, ptr in targets:
                    node = values
                    for part in ptr.split("."):
                        if not isinstance(node, dict) or part not in node:
                            fail(f"{app}: parameter {p} -> {ptr} is not a key of values.yaml"); break
                        node = node[part]
                print(f"ok: {app}/{name}: chart {meta.get('name')} {meta.get('version')}, {len(targets)} parameter(s) in values.yaml")
sys.exit(1 if problems else 0)
PY

pub="$src/scripts/publish-package.sh"
expect_fail() { # expect_fail WANT-EXIT WANT-TEXT ARGS...
    local want_rc="$1" want="$2"
    shift 2
    local out rc
    out=$(bash "$pub" "$@" 2>&1)
    rc=$?
    if [ "$rc" -eq "$want_rc" ] && grep -qF -- "$want" <<<"$out"; then
        ok "publish-package.sh $*: refused ($(tail -n1 <<<"$out"))"
    else
        bad "publish-package.sh $*: exit $rc, expected $want_rc with '$want': $out"
    fi
}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
expect_fail 1 "margo.yaml: no such file" "$tmp/nothing"
expect_fail 2 "expected HOST:PORT" --registry 'bad host/x' "$src/examples/hello-compose"
expect_fail 1 "no compose component to publish" "$src/examples/hello-helm"
cp -R "$src/examples/hello-compose" "$tmp/pkg"
rm "$tmp/pkg/compose/worker.yaml"
expect_fail 1 "component worker" "$tmp/pkg"
cp "$src/examples/hello-compose/compose/worker.yaml" "$tmp/pkg/compose/"
printf 'version: "3"\n' >"$tmp/pkg/compose/web.yaml"
expect_fail 1 "services: a compose file needs at least one service" "$tmp/pkg"
cp "$src/examples/hello-compose/compose/web.yaml" "$tmp/pkg/compose/"
sed -i 's#oci://127.0.0.1:5000/margo/examples/hello-compose/web#https://example.com/web.yaml#' "$tmp/pkg/margo.yaml"
expect_fail 1 "repository: must be oci://" "$tmp/pkg"
# A registry nobody listens on: the push fails and says so (nothing hangs).
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
expect_fail 1 "is the registry up?" --registry "127.0.0.1:$port" --out "$tmp/out" "$src/examples/hello-compose"
grep -q "oci://127.0.0.1:$port/margo/examples/hello-compose/web" "$tmp/out/margo.yaml" &&
    grep -q "image: 127.0.0.1:$port/margo/examples/busybox:1" "$tmp/out/compose/web.yaml" &&
    ok "--registry rewrote the repositories and the images of the copy" ||
    bad "--registry did not rewrite the copy in $tmp/out"
grep -q "oci://127.0.0.1:5000/" "$src/examples/hello-compose/margo.yaml" &&
    ok "the original package is unchanged" || bad "publish-package.sh changed examples/hello-compose"

[ "$fails" -eq 0 ] && echo "PASSED" || { echo "$fails check(s) failed"; exit 1; }
