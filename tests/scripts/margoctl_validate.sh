#!/usr/bin/env bash
# margoctl_validate.sh MARGOCTL DATADIR - `margoctl validate` as a user runs it: every example
# of the specification's valid/ folder passes, every one of invalid/ fails naming a field,
# exit codes follow the documented contract, --json is machine readable.
set -u
ctl=$1 data=$2
pass=0 fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*"; }

for f in "$data"/valid/*; do
  out=$("$ctl" validate "$f" 2>&1); rc=$?
  [ $rc -eq 0 ] && [[ $out == *": valid ("* ]] && ok || bad "valid $f -> rc=$rc: $out"
done
for f in "$data"/invalid/*; do
  out=$("$ctl" validate "$f" 2>&1); rc=$?
  # exit 1, INVALID, and at least one indented "field: rule" line naming a field
  if [ $rc -eq 1 ] && [[ $out == *"INVALID"* ]] && grep -qE '^  [A-Za-z$][^ ]*: .+' <<<"$out"; then ok
  else bad "invalid $f -> rc=$rc: $out"; fi
done

# several files: one invalid makes the whole run fail, every file is still reported
out=$("$ctl" validate "$data"/valid/DesiredStateManifest-001.json "$data"/invalid/DesiredStateManifest-001.json); rc=$?
[ $rc -eq 1 ] && [ "$(grep -c '^[^ ]' <<<"$out")" -eq 2 ] && ok || bad "mixed files rc=$rc: $out"

# --json: an array with file, kind, valid and problems[{field, rule}]
json=$("$ctl" validate --json "$data"/invalid/DeviceCapabilitiesManifest-004.json "$data"/valid/ProblemDetail-001.yaml); rc=$?
if [ $rc -eq 1 ] && /usr/bin/python3 -c '
import json, sys
r = json.loads(sys.argv[1])
assert len(r) == 2, r
assert r[0]["valid"] is False and r[0]["kind"] == "DeviceCapabilitiesManifest", r[0]
assert r[0]["problems"][0]["field"] == "properties.resources.memory", r[0]
assert r[1]["valid"] is True and r[1]["problems"] == [], r[1]
' "$json"; then ok; else bad "--json: rc=$rc $json"; fi

# stdin, unreadable file, usage errors
"$ctl" validate - < "$data"/valid/DesiredStateManifest-001.json >/dev/null && ok || bad "stdin"
"$ctl" validate /nonexistent.yaml >/dev/null 2>&1; [ $? -eq 1 ] && ok || bad "missing file must exit 1"
"$ctl" validate >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "no file must exit 2"
"$ctl" validate --bogus x >/dev/null 2>&1; [ $? -eq 2 ] && ok || bad "unknown option must exit 2"
"$ctl" validate --help | grep -q "usage: margoctl validate" && ok || bad "--help"

# garbage and hostile files are refused, never crash
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
head -c 4096 /dev/urandom > "$tmp/random.bin"
printf 'a: &x [1]\nb: *x\n' > "$tmp/alias.yaml"
printf '\xdd\xff\xff\xff\xff' > "$tmp/huge.msgpack"
for f in "$tmp"/*; do
  "$ctl" validate "$f" >/dev/null 2>&1; rc=$?
  [ $rc -eq 1 ] && ok || bad "hostile $f -> rc=$rc"
done

# MessagePack files validate too (the wire form of the same documents)
"$ctl" convert --to msgpack "$data"/valid/ApplicationDeployment-001.yaml > "$tmp/dep.msgpack" && \
  "$ctl" validate "$tmp/dep.msgpack" | grep -q "valid (ApplicationDeployment)" && ok || bad "msgpack validate"

echo "margoctl validate: $pass passed, $fail failed"
[ $fail -eq 0 ]
