#!/usr/bin/python3
"""example_monitor.py - examples/monitor/fleet_monitor.py shows the fleet from the topics.

Starts its own Mosquitto on a free loopback port and publishes MessagePack documents shaped
like margo-agent's (docs/schemas/ validates them first, so the test cannot drift from the
contract), then:
  1. retained state only: three devices (online with status, offline by last will with a
     failed status, online without deployments); `fleet_monitor.py --once` must print one
     row per (device, deployment) with presence, the app from the status alone (name and
     version; the name only for a document without version), state, adopted version,
     "retained" and the error code and message;
  2. live: while the monitor runs, a newer status (installing), then a stale one (pending,
     lower journal position) for the same deployment, a new online presence for the offline
     device, a stale presence (lower boot), and an empty retained payload deleting the failed
     status; the final table must show installing (not pending), the device online, the
     deleted row gone, a received time instead of "retained", and the app version of the
     newer status (an update); a status without app shows "-".

  example_monitor.py
"""
import datetime
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import msgpack
import paho.mqtt.client as mqtt
from jsonschema import Draft202012Validator

SRC = os.path.abspath(os.path.join(os.path.dirname(__file__), "../.."))
MONITOR = os.path.join(SRC, "examples/monitor/fleet_monitor.py")
PY = "/usr/bin/python3"
P = "margo/v1/devices"
U1 = "3f1c2d4e-0000-4000-8000-000000000001"
U2 = "3f1c2d4e-0000-4000-8000-000000000002"
T0 = 1796450000000  # ms; presence of boot b says T0 + b s


def iso(ms):
    return datetime.datetime.fromtimestamp(ms / 1000, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")

problems = []


def check(cond, what):
    print(("ok: " if cond else "FAIL: ") + what)
    if not cond:
        problems.append(what)


def schema(name):
    with open(os.path.join(SRC, "docs/schemas", name), encoding="utf-8") as f:
        return Draft202012Validator(json.load(f))


SCHEMAS = {"state": schema("presence.schema.json"), "status": schema("status.schema.json")}


def presence(dev, state, boot, ts=True):
    d = {"deviceId": dev, "state": state, "boot": boot, "agentVersion": "0.1.0"}
    if ts:
        d["timestamp"] = T0 + boot * 1000
    return d


def status(dev, dep, state, boot, seq, adopted, comps=("web",), error=None, app=None):
    """app: (id, version or None, name) for x-margo-mqtt-extensions.app, None for none."""
    d = {"apiVersion": "deployment.margo.org/v1alpha1", "kind": "DeploymentStatusManifest",
         "deploymentId": dep, "deviceId": dev, "adoptedManifestVersion": adopted,
         "status": {"state": state},
         "components": [{"name": c, "state": state} for c in comps],
         "x-margo-mqtt-extensions": {"boot": boot, "seq": seq}}
    if app is not None:
        d["x-margo-mqtt-extensions"]["app"] = {"id": app[0], "name": app[2]}
        if app[1] is not None:
            d["x-margo-mqtt-extensions"]["app"]["version"] = app[1]
    if error:
        d["status"]["error"] = {"code": error[0], "source": "hello", "message": error[1]}
        d["components"][0]["error"] = {"code": error[0], "source": comps[0], "message": error[1]}
    return d


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_broker(tmp):
    port = free_port()
    conf = os.path.join(tmp, "mosquitto.conf")
    with open(conf, "w", encoding="ascii") as f:
        f.write(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n")
        if os.getuid() == 0:
            f.write("user root\n")  # else it would switch to user mosquitto
    log = open(os.path.join(tmp, "mosquitto.log"), "w")
    proc = subprocess.Popen(["mosquitto", "-c", conf], stdout=log, stderr=subprocess.STDOUT)
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, port
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit("FATAL: mosquitto did not start")


class Pub:
    def __init__(self, port):
        self.c = mqtt.Client(client_id="example-monitor-test", protocol=mqtt.MQTTv5)
        self.c.connect("127.0.0.1", port)
        self.c.loop_start()

    def put(self, topic, doc, retain=True):
        if doc is None:
            payload = b""
        else:
            kind = "state" if topic.endswith("/state") else "status"
            errs = list(SCHEMAS[kind].iter_errors(doc))
            if errs:
                sys.exit(f"FATAL: the test's own {kind} document breaks docs/schemas: {errs[0].message}")
            payload = msgpack.packb(doc, use_bin_type=True)
        self.c.publish(topic, payload, qos=1, retain=retain).wait_for_publish(5)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()


def run_monitor(port, once, during=None):
    """Runs fleet_monitor.py --once ONCE; calls during() after it subscribed. Returns stdout."""
    proc = subprocess.Popen([PY, MONITOR, "--port", str(port), "--once", str(once)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    if line.strip() != "subscribed":
        proc.kill()
        sys.exit(f"FATAL: the monitor did not subscribe: {line}{proc.stderr.read()}")
    if during:
        during()
    try:
        out, err = proc.communicate(timeout=once + 20)
    except subprocess.TimeoutExpired:
        proc.kill()
        sys.exit("FATAL: the monitor did not exit after --once")
    check(proc.returncode == 0, f"monitor exit status {proc.returncode} {err.strip()}")
    print(out)
    return out


def row(out, dev, dep):
    """The cells of DEV's row for DEP (split on runs of 2+ spaces), or None."""
    for line in out.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
        if cells[0] == dev and len(cells) > 2 and cells[2] == dep:
            return cells
    return None


def main():
    tmp = tempfile.mkdtemp(prefix="mgo-monitor-")
    broker, port = start_broker(tmp)
    try:
        pub = Pub(port)
        # 1. retained state only
        pub.put(f"{P}/dev-a/state", presence("dev-a", "online", 4))
        pub.put(f"{P}/dev-a/status/{U1}", status("dev-a", U1, "installed", 4, 12, 7, ("web", "worker"),
                                                 app=("hello-world", "1.2.1", "hello-world-3f1c2d4e")))
        pub.put(f"{P}/dev-b/state", presence("dev-b", "offline", 2, ts=False))  # a last will
        pub.put(f"{P}/dev-b/status/{U2}",
                status("dev-b", U2, "failed", 2, 3, 5,
                       error=("RUNTIME_FAILED", "podman-compose up exited with code 125"),
                       app=("hello-world", None, "hello-world-3f1c2d4e")))  # an older manager's document
        pub.put(f"{P}/dev-c/state", presence("dev-c", "online", 1))
        out = run_monitor(port, 1.0)
        r = row(out, "dev-a", U1)
        check(r is not None and r[1] == "online since " + iso(T0 + 4000) and r[4] == "installed"
              and r[5] == "7" and r[6] == "retained",
              f"dev-a: online since its presence timestamp, {U1} installed, adopted 7, retained: {r}")
        check(r is not None and r[3] == "hello-world-3f1c2d4e 1.2.1",
              f"dev-a: the row is labelled with the app name and version from the status: {r}")
        r = row(out, "dev-b", U2)
        check(r is not None and r[1] == "offline" and r[4] == "failed"
              and r[7] == "RUNTIME_FAILED podman-compose up exited with code 125",
              f"dev-b: offline (last will, no time), {U2} failed with code and message: {r}")
        check(r is not None and r[3] == "hello-world-3f1c2d4e",
              f"dev-b: a status without app version shows the name alone: {r}")
        r = row(out, "dev-c", "-")
        check(r is not None and r[1].startswith("online") and r[3] == "-" and r[4] == "-",
              f"dev-c: online, no deployment: {r}")
        check(out.splitlines()[0].split() == ["DEVICE", "PRESENCE", "DEPLOYMENT", "APP", "STATE",
                                              "ADOPTED", "UPDATED", "ERROR"], "header")

        # 2. live changes, including stale ones that must be ignored
        def during():
            pub.put(f"{P}/dev-a/status/{U1}", status("dev-a", U1, "installing", 5, 1, 8,
                                                     app=("hello-world", "1.3.0", "hello-world-3f1c2d4e")),
                    retain=True)
            pub.put(f"{P}/dev-a/status/{U1}", status("dev-a", U1, "pending", 4, 13, 8,
                                                     app=("hello-world", "1.2.1", "hello-world-3f1c2d4e")),
                    retain=False)
            pub.put(f"{P}/dev-c/status/{U2}", status("dev-c", U2, "failed", 1, 1, 1,
                                                     error=("INVALID_DEPLOYMENT", "not a document")))
            pub.put(f"{P}/dev-b/state", presence("dev-b", "online", 3))
            pub.put(f"{P}/dev-b/state", presence("dev-b", "offline", 2, ts=False), retain=False)
            pub.put(f"{P}/dev-b/status/{U2}", None)  # retained status deleted
        out = run_monitor(port, 1.5, during)
        r = row(out, "dev-a", U1)
        check(r is not None and r[4] == "installing" and r[5] == "8",
              f"dev-a: the newer status (5,1) installing is shown, the stale (4,13) pending dropped: {r}")
        check(r is not None and r[3] == "hello-world-3f1c2d4e 1.3.0",
              f"dev-a: the update's version comes with its status: {r}")
        check(r is not None and re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r[6]) is not None,
              f"dev-a: a live status shows when it was received: {r}")
        r = row(out, "dev-c", U2)
        check(r is not None and r[3] == "-" and r[4] == "failed",
              f"dev-c: a status without app (unusable document) is labelled '-': {r}")
        r = row(out, "dev-b", "-")
        check(r is not None and r[1] == "online since " + iso(T0 + 3000),
              f"dev-b: online again (boot 3), the stale offline of boot 2 dropped, its deleted status gone: {r}")
        check(row(out, "dev-b", U2) is None, f"dev-b: no row for the deleted status {U2}")
        pub.close()
    finally:
        broker.send_signal(signal.SIGTERM)
        try:
            broker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            broker.kill()
        shutil.rmtree(tmp, ignore_errors=True)
    if problems:
        print(f"{len(problems)} check(s) failed")
        return 1
    print("PASSED")
    return 0


if __name__ == "__main__":
    sys.exit(main())
