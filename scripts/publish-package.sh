#!/usr/bin/env bash
# publish-package.sh - publishes the Compose files of a Margo package to an OCI registry, so
# that margo-agent can fetch them from the `repository: oci://...` + `revision` of each
# component.
#
#   scripts/publish-package.sh [--registry HOST:PORT] [--out DIR] PACKAGE-DIR
#
# PACKAGE-DIR holds margo.yaml and, for every component of every compose profile, its compose
# file compose/<component>.yaml (or .yml). Each one is pushed as a one-layer OCI artifact
# (media type application/vnd.margo.compose.v1+yaml) to the component's repository at tag
# `revision`, over plain http (loopback registries such as the demo's docker-registry).
#
# --registry HOST:PORT  publish to this registry instead of the one named in margo.yaml: a copy
#                       of the package is written to --out DIR (default: a new temp folder)
#                       with that registry in margo.yaml and in the compose files' images.
# The folder to give to `margoctl app add` is printed on stdout (PACKAGE-DIR itself without
# --registry); progress and errors go to stderr. Exit 0 ok, 1 failure, 2 usage.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/containers-env.sh"

usage() { sed -n '2,19s/^# \{0,1\}//p' "$0" >&2; exit 2; }
registry="" out="" pkg=""
while [ $# -gt 0 ]; do
  case "$1" in
    --registry) [ $# -ge 2 ] || usage; registry="$2"; shift 2 ;;
    --out) [ $# -ge 2 ] || usage; out="$2"; shift 2 ;;
    -h|--help) usage ;;
    -*) echo "publish-package.sh: unknown option $1" >&2; usage ;;
    *) [ -z "$pkg" ] || usage; pkg="$1"; shift ;;
  esac
done
[ -n "$pkg" ] || usage
[ -f "$pkg/margo.yaml" ] || { echo "publish-package.sh: $pkg/margo.yaml: no such file" >&2; exit 1; }
if [ -n "$registry" ] && ! [[ "$registry" =~ ^[A-Za-z0-9.-]+(:[0-9]{1,5})?$ ]]; then
  echo "publish-package.sh: --registry '$registry': expected HOST:PORT" >&2; exit 2
fi

# One line per compose component: NAME<TAB>HOST<TAB>REPOSITORY-PATH<TAB>REVISION.
list_components() {
  python3 - "$1" <<'PY'
import re, sys, yaml
path = sys.argv[1]
try:
    with open(path) as f:
        doc = yaml.safe_load(f)
except Exception as e:
    sys.exit(f"{path}: not YAML: {e}")
profiles = (doc or {}).get("deploymentProfiles") or []
n = 0
for pi, p in enumerate(profiles):
    if p.get("type") != "compose":
        continue
    for ci, c in enumerate(p.get("components") or []):
        field = f"deploymentProfiles[{pi}].components[{ci}]"
        props = c.get("properties") or {}
        repo, rev = props.get("repository"), props.get("revision")
        if not repo:
            sys.exit(f"{path}: {field}.properties.repository: required to publish (packageLocation components are served over HTTP, not published)")
        m = re.fullmatch(r"oci://([A-Za-z0-9.-]+(?::[0-9]+)?)/([a-z0-9._/-]+)", str(repo))
        if not m:
            sys.exit(f"{path}: {field}.properties.repository: must be oci://HOST[:PORT]/name, got {repo!r}")
        if not rev or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9._-]{0,127}", str(rev)):
            sys.exit(f"{path}: {field}.properties.revision: must be an OCI tag, got {rev!r}")
        print(f"{c.get('name')}\t{m.group(1)}\t{m.group(2)}\t{rev}")
        n += 1
if n == 0:
    sys.exit(f"{path}: no compose component to publish")
PY
}

check_compose() {
  python3 - "$1" <<'PY'
import sys, yaml
path = sys.argv[1]
try:
    with open(path) as f:
        doc = yaml.safe_load(f)
except Exception as e:
    sys.exit(f"{path}: not YAML: {e}")
if not isinstance(doc, dict) or not isinstance(doc.get("services"), dict) or not doc["services"]:
    sys.exit(f"{path}: services: a compose file needs at least one service")
PY
}

comps=$(list_components "$pkg/margo.yaml") || exit 1
# The first line's host, without a pipe into head: bash writes line by line, so head could
# exit before the second line and the writer's SIGPIPE would fail the script (pipefail).
first=${comps%%$'\n'*}
src_host=$(cut -f2 <<<"$first")
dir="$pkg"
if [ -n "$registry" ] && [ "$registry" != "$src_host" ]; then
  if [ -z "$out" ]; then out=$(mktemp -d /tmp/margo-package-XXXXXX); fi
  mkdir -p "$out"
  cp -R "$pkg"/. "$out"/
  # The registry in repositories (oci://HOST/...) and in the compose files' image references.
  find "$out" -type f \( -name '*.yaml' -o -name '*.yml' \) -print0 |
    xargs -0 sed -i "s#${src_host//./\\.}/#${registry}/#g"
  dir="$out"
  comps=$(list_components "$dir/margo.yaml") || exit 1
fi

# Every file is checked before anything is pushed: a bad package publishes nothing.
files=()
while IFS=$'\t' read -r name host repo rev; do
  file=""
  for f in "$dir/compose/$name.yaml" "$dir/compose/$name.yml"; do
    [ -f "$f" ] && { file="$f"; break; }
  done
  [ -n "$file" ] || { echo "publish-package.sh: component $name: $dir/compose/$name.yaml missing" >&2; exit 1; }
  check_compose "$file" || exit 1
  files+=("$file")
done <<<"$comps"
i=0
while IFS=$'\t' read -r name host repo rev; do
  file=${files[$i]}
  i=$((i + 1))
  digest=$(mgo_oci_push_file "$host" "$repo" "$rev" "$file") ||
    { echo "publish-package.sh: push of $file to $host/$repo:$rev failed (is the registry up?)" >&2; exit 1; }
  echo "published $name: oci://$host/$repo:$rev ($digest)" >&2
done <<<"$comps"
printf '%s\n' "$dir"
