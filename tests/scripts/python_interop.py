"""python_interop.py MARGOCTL DATADIR - a third-party MessagePack decoder (python3-msgpack)
reads margo-mqtt's bytes into the same structure as the Margo JSON, and margo-mqtt reads
MessagePack written by that library.

For every valid example:
  1. `margoctl convert --to msgpack` bytes, unpacked by python3-msgpack, equal
     `margoctl convert --to json` parsed by Python's json module (same tree, Margo names);
  2. the bytes are canonical: map keys sorted, shortest integer forms (re-packing the
     unpacked tree with sorted keys gives the same bytes);
  3. for documents that need no normalisation (JSON examples in the newest shape), the
     unpacked tree equals the original Margo JSON file field for field;
  4. the original document packed by python3-msgpack validates with `margoctl validate`.
"""
import json
import os
import subprocess
import sys
import tempfile

import msgpack
import yaml

ctl, data = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("FAIL:", what)


def canon(o):
    if isinstance(o, dict):
        return {k: canon(o[k]) for k in sorted(o)}
    if isinstance(o, list):
        return [canon(x) for x in o]
    return o


# Documents whose normalised form is the input itself.
UNCHANGED = {"DesiredStateManifest-001.json", "DeploymentStatusManifest-001.json",
             "ProblemDetail-001.yaml"}

valid = os.path.join(data, "valid")
for name in sorted(os.listdir(valid)):
    path = os.path.join(valid, name)
    mp = subprocess.run([ctl, "convert", "--to", "msgpack", path], capture_output=True)
    js = subprocess.run([ctl, "convert", "--to", "json", path], capture_output=True)
    check(mp.returncode == 0 and js.returncode == 0, f"{name}: convert failed {mp.stderr!r}")
    if mp.returncode != 0:
        continue
    tree = msgpack.unpackb(mp.stdout, raw=False, strict_map_key=True)
    check(tree == json.loads(js.stdout), f"{name}: msgpack and JSON trees differ")
    # canonical: sorted keys everywhere; python packs ints in their shortest form too
    repacked = msgpack.packb(canon(tree), use_bin_type=True)
    check(repacked == mp.stdout, f"{name}: bytes are not canonical")
    original = yaml.safe_load(open(path))
    if name in UNCHANGED:
        check(tree == original, f"{name}: unpacked tree differs from the Margo document")
    # the other direction: python writes, margo-mqtt reads
    with tempfile.NamedTemporaryFile(suffix=".msgpack") as f:
        f.write(msgpack.packb(original, use_bin_type=True))
        f.flush()
        r = subprocess.run([ctl, "validate", f.name], capture_output=True, text=True)
        check(r.returncode == 0, f"{name}: python-packed document refused: {r.stdout}")

# a map with a duplicate key, built by hand, is refused
with tempfile.NamedTemporaryFile(suffix=".msgpack") as f:
    f.write(b"\x82\xa1a\x01\xa1a\x02")
    f.flush()
    r = subprocess.run([ctl, "validate", f.name], capture_output=True, text=True)
    check(r.returncode == 1 and "duplicate" in r.stdout, "duplicate keys must be refused")

print(f"python interop: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
