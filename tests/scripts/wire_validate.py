#!/usr/bin/python3
"""wire_validate.py - every recorded margo-mqtt message validates against docs/schemas/.

Reads the JSON lines written by wire_record.py. For every message on a topic under PREFIX:
  - the topic must be one of docs/protocol.md 2.1 (desired, deployments/{u}, status/{u},
    capabilities, state, events, receipt, replay/{u}); anything else under PREFIX fails;
  - an empty payload is a retained-message deletion (TOP-2): allowed on retained topics only,
    counted, not validated;
  - otherwise the payload is decoded as MessagePack (Debian's python3-msgpack; bin values
    become base64 strings, as in the JSON export of 4.4), validated with the topic kind's
    schema (jsonschema Draft202012Validator) and checked against the topic: the device id
    and deployment id in the payload equal the topic's (ID-1), and the retain flag is the one
    of the topic table (events are never retained).
Fails unless every topic kind was seen at least once with a non-empty payload (unless
--partial; replays only happen after a manager lost statuses, so they are validated when seen
but not required), and each case listed with --need was seen.

  wire_validate.py SCHEMA_DIR RECORD [--prefix margo/v1] [--partial] [--foreign TOPIC]...
                   [--need CASE]...

--partial: a run that does not exercise every topic kind (validates what was seen).

--foreign names a topic the test itself published malformed messages on (skipped). Cases:
presence-online, presence-offline (with timestamp), presence-will (offline, no timestamp),
status-<state>, status-error, event-<type>, desired-signed, deployment-signed,
capabilities-otel-true, capabilities-otel-false, deployment-app-version (a document with
metadata.annotations.applicationVersion), status-app-version (a status whose
x-margo-mqtt-extensions.app has a version).

A status's app {id, version, name} must be the one of a deployment document recorded
earlier for the same device and deployment (3.4: the agent copies it from the document).
"""
import base64
import json
import os
import re
import sys

import msgpack
from jsonschema import Draft202012Validator

args = sys.argv[1:]
if len(args) < 2:
    print(__doc__, file=sys.stderr)
    sys.exit(2)
schema_dir, record = args[0], args[1]
prefix = "margo/v1"
needs = []
foreign = set()
partial = False
rest = args[2:]
while rest:
    if rest[0] == "--prefix" and len(rest) > 1:
        prefix, rest = rest[1], rest[2:]
    elif rest[0] == "--partial":
        partial = True
        rest = rest[1:]
    elif rest[0] == "--foreign" and len(rest) > 1:
        foreign.add(rest[1])
        rest = rest[2:]
    elif rest[0] == "--need" and len(rest) > 1:
        needs.append(rest[1])
        rest = rest[2:]
    else:
        print(f"wire_validate: unknown argument {rest[0]}", file=sys.stderr)
        sys.exit(2)

# kinds a run need not show (replays happen only when a manager lost statuses, §6.3)
OPTIONAL = {"replay"}
KINDS = {  # kind: (topic regex after PREFIX/devices/, schema file, retained)
    "desired": (r"(?P<d>[^/]+)/desired", "desired.schema.json", True),
    "deployment": (r"(?P<d>[^/]+)/deployments/(?P<u>[^/]+)", "deployment.schema.json", True),
    "status": (r"(?P<d>[^/]+)/status/(?P<u>[^/]+)", "status.schema.json", True),
    "capabilities": (r"(?P<d>[^/]+)/capabilities", "capabilities.schema.json", True),
    "presence": (r"(?P<d>[^/]+)/state", "presence.schema.json", True),
    "event": (r"(?P<d>[^/]+)/events", "event.schema.json", False),
    "receipt": (r"(?P<d>[^/]+)/receipt", "receipt.schema.json", True),
    "replay": (r"(?P<d>[^/]+)/replay/(?P<u>[^/]+)", "status.schema.json", False),
    # fleet roll-ups (§2.4): not under devices/
    "fleet-rollout": (r"/fleet/rollouts/(?P<r>[^/]+)", "fleet-rollout.schema.json", True),
    "fleet-app": (r"/fleet/apps/(?P<a>[^/]+)", "fleet-app.schema.json", True),
}
validators = {}
for kind, (_, fname, _) in KINDS.items():
    with open(os.path.join(schema_dir, fname), encoding="utf-8") as f:
        schema = json.load(f)
    Draft202012Validator.check_schema(schema)
    validators[kind] = Draft202012Validator(schema)

problems = []


def fail(msg):
    problems.append(msg)
    if len(problems) <= 40:
        print("FAIL:", msg)


def jsonable(v):
    if isinstance(v, bytes):
        return base64.b64encode(v).decode("ascii")
    if isinstance(v, dict):
        return {k: jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    return v


def ids_in(kind, doc):
    """(device ids, deployment ids) the payload names (ID-1)."""
    devs, deps = [], []
    if not isinstance(doc, dict):
        return devs, deps
    if kind in ("desired", "status", "replay", "presence", "event", "receipt") and "deviceId" in doc:
        devs.append(doc["deviceId"])
    if kind == "capabilities":
        devs.append((doc.get("properties") or {}).get("id"))
    if kind == "deployment":
        meta = doc.get("metadata") or {}
        if "deviceId" in meta:
            devs.append(meta["deviceId"])
        deps.append(doc.get("id"))
        deps.append((meta.get("annotations") or {}).get("id"))
    if kind in ("status", "replay"):
        deps.append(doc.get("deploymentId"))
    return devs, deps


seen = {k: 0 for k in KINDS}
cleared = {k: 0 for k in KINDS}
cases = set()
apps = {}  # (device, deployment) -> {(id, version, name)} of the documents recorded so far
n = 0
with open(record, encoding="ascii") as f:
    for lineno, line in enumerate(f, 1):
        m = json.loads(line)
        topic, payload = m["topic"], bytes.fromhex(m["payload"])
        if not topic.startswith(prefix + "/"):
            continue  # the test's own probes (e.g. margo/ready-check)
        if topic in foreign:
            continue  # published by the test itself, e.g. a malformed document
        n += 1
        where = f"{record}:{lineno} {topic}"
        tail = topic[len(prefix) + 1:]
        kind = None
        for k, (rx, _, _) in KINDS.items():
            mm = re.fullmatch(rx[1:] if rx.startswith("/") else "devices/" + rx, tail)
            if mm:
                kind = k
                break
        if kind is None:
            fail(f"{where}: not a topic of docs/protocol.md 2.1")
            continue
        retained_kind = KINDS[kind][2]
        if m["retain"] != retained_kind:
            fail(f"{where}: retain={m['retain']}, the topic table says {retained_kind}")
        if not payload:
            if not retained_kind:
                fail(f"{where}: empty payload on a topic that is not retained")
            cleared[kind] += 1
            continue
        try:
            doc = msgpack.unpackb(payload, raw=False, strict_map_key=True)
        except Exception as e:  # noqa: BLE001 - any decoder error is the finding
            fail(f"{where}: not MessagePack: {e}")
            continue
        doc = jsonable(doc)
        errs = sorted(validators[kind].iter_errors(doc), key=lambda e: list(e.absolute_path))
        for e in errs[:5]:
            path = "/".join(str(p) for p in e.absolute_path) or "(root)"
            fail(f"{where}: {KINDS[kind][1]}: {path}: {e.message}")
        devs, deps = ids_in(kind, doc)
        for d in devs:
            if d is not None and d != mm.group("d"):
                fail(f"{where}: payload names device {d!r}, the topic {mm.group('d')!r}")
        for u in deps:
            if u is not None and "u" in mm.groupdict() and u != mm.group("u"):
                fail(f"{where}: payload names deployment {u!r}, the topic {mm.group('u')!r}")
        if kind == "fleet-rollout" and doc.get("id") != mm.group("r"):
            fail(f"{where}: payload names rollout {doc.get('id')!r}, the topic {mm.group('r')!r}")
        if kind == "fleet-app" and doc.get("app") != mm.group("a"):
            fail(f"{where}: payload names app {doc.get('app')!r}, the topic {mm.group('a')!r}")
        if errs:
            continue
        seen[kind] += 1
        if kind == "presence":
            if doc["state"] == "online":
                cases.add("presence-online")
            else:
                cases.add("presence-offline" if "timestamp" in doc else "presence-will")
        if kind == "deployment":
            meta = doc["metadata"]
            ann = meta["annotations"]
            apps.setdefault((mm.group("d"), mm.group("u")), set()).add(
                (ann["applicationId"], ann.get("applicationVersion"), meta["name"]))
            if "applicationVersion" in ann:
                cases.add("deployment-app-version")
        if kind in ("status", "replay"):
            app = (doc.get("x-margo-mqtt-extensions") or {}).get("app")
            key = (mm.group("d"), mm.group("u"))
            if app is not None and key in apps:
                got = (app["id"], app.get("version"), app["name"])
                if got not in apps[key]:
                    fail(f"{where}: app {got} is not that of any document of this deployment "
                         f"{sorted(apps[key], key=str)}")
            if app is not None and "version" in app:
                cases.add(kind + "-app-version")
        if kind == "status":
            cases.add("status-" + doc["status"]["state"])
            if "error" in doc["status"]:
                cases.add("status-error")
        if kind == "capabilities" and "otelCollector" in doc["properties"]:
            cases.add("capabilities-otel-" + str(doc["properties"]["otelCollector"]).lower())
        if kind == "event":
            cases.add("event-" + doc["type"])
        if kind in ("desired", "deployment") and "signature" in (doc.get("x-margo-mqtt-extensions") or {}):
            cases.add(kind + "-signed")

for k in KINDS:
    if seen[k] == 0 and not partial and k not in OPTIONAL:
        fail(f"no valid {k} message recorded (topic kind never seen with a payload)")
for c in needs:
    if c not in cases:
        fail(f"case {c} not recorded (seen: {' '.join(sorted(cases))})")
print(f"{n} messages under {prefix}: " + ", ".join(f"{k} {seen[k]}" + (f" (+{cleared[k]} cleared)" if cleared[k] else "") for k in KINDS))
print("cases: " + " ".join(sorted(cases)))
if problems:
    print(f"{len(problems)} problem(s)")
    sys.exit(1)
print("ok: every recorded message validates against docs/schemas/")
