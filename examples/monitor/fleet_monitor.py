#!/usr/bin/python3
"""fleet_monitor.py - a live fleet table from the margo-mqtt topics alone.

A third-party monitor in about 200 lines, written the way docs/protocol.md section 10 tells a
monitor author to: nothing from margo-mqtt but the topic layout and the documents (no manager
API, no C code). Debian packages: python3-paho-mqtt, python3-msgpack.

  fleet_monitor.py [--host H] [--port P] [--prefix margo/v1] [--once SECONDS]
                   [--cafile F --certfile F --keyfile F] [--username U]

Subscribes (MQTT 5, QoS 1) to {prefix}/devices/+/state and {prefix}/devices/+/status/+, the
topics a monitor is allowed to read (ACL, section 2.3), and prints one row per (device,
deployment):

  DEVICE  PRESENCE  DEPLOYMENT  APP  STATE  ADOPTED  UPDATED  ERROR

- PRESENCE is the device's last presence document (section 3.6): "online" or "offline", with
  the time the agent sent it when the document has one (a last will has none).
- APP labels the row from the status alone (section 3.4, x-margo-mqtt-extensions.app): the
  deployment's name and the application version, e.g. "hello-world-3f1c2d4e 1.2.1"; the name
  alone when the deployment was made by a manager that did not write versions; "-" when the
  status does not say (the agent could not use the document). Monitors may not read
  deployments/+ (section 2.3) and need not ask the manager.
- STATE is status.state of the newest status of that deployment (section 3.4); a status whose
  journal position (x-margo-mqtt-extensions.{boot,seq}) is not above the one already shown is
  stale or a duplicate and is dropped (section 8.1), and so is a presence with a lower boot.
- UPDATED is when this monitor received that status (UTC), or "retained" for one the broker
  handed over at subscription, whose age the document does not tell.
- An empty payload deletes the retained document: the row goes (TOP-2).
- A device with presence but no status gets one row with "-" as deployment.

Without --once, the table is printed again after every change (redrawn in place on a
terminal); with --once SECONDS it is printed once, SECONDS after the subscription was
acknowledged, and the program exits (for scripts). "subscribed" is written on stderr once the
broker acknowledged the subscriptions. Ctrl-C stops it.
"""
import argparse
import datetime
import signal
import sys
import time

import msgpack
import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions


def printable(text):
    """text with control characters replaced, so a document cannot drive the terminal."""
    return "".join(c if c.isprintable() else "?" for c in str(text))


def app_label(ext):
    """The APP cell from x-margo-mqtt-extensions.app: "name version", "name" or "-"."""
    app = ext.get("app") if isinstance(ext, dict) else None
    if not isinstance(app, dict) or not isinstance(app.get("name"), str):
        return "-"
    version = app.get("version")
    label = app["name"] + (" " + version if isinstance(version, str) else "")
    return printable(label)


def utc(ms_or_s, ms=True):
    t = ms_or_s / 1000.0 if ms else ms_or_s
    return datetime.datetime.fromtimestamp(t, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Fleet:
    def __init__(self):
        self.presence = {}  # device -> {"state", "boot", "timestamp"}
        self.status = {}    # (device, deployment) -> {"app", "state", "pos", "adopted", "updated", "error"}

    def on_presence(self, dev, doc):
        if doc is None:
            self.presence.pop(dev, None)
            return True
        old = self.presence.get(dev)
        boot = doc.get("boot")
        if old is not None and isinstance(boot, int) and isinstance(old["boot"], int) and boot < old["boot"]:
            return False  # stale: an older boot (section 8.1)
        self.presence[dev] = {"state": doc.get("state", "?"), "boot": boot,
                              "timestamp": doc.get("timestamp")}
        return True

    def on_status(self, dev, dep, doc, retained):
        key = (dev, dep)
        if doc is None:
            return self.status.pop(key, None) is not None
        ext = doc.get("x-margo-mqtt-extensions") or {}
        pos = (ext["boot"], ext["seq"]) if isinstance(ext.get("boot"), int) and isinstance(ext.get("seq"), int) else None
        old = self.status.get(key)
        if old is not None and pos is not None and old["pos"] is not None and pos <= old["pos"]:
            return False  # stale or duplicate (section 8.1)
        st = doc.get("status") or {}
        err = st.get("error") or {}
        self.status[key] = {
            "app": app_label(ext),
            "state": printable(st.get("state", "?")),
            "pos": pos,
            "adopted": doc.get("adoptedManifestVersion"),
            "updated": "retained" if retained else utc(time.time(), ms=False),
            "error": printable(" ".join(x for x in (err.get("code"), err.get("message")) if x)),
        }
        return True

    def rows(self):
        devices = sorted(set(self.presence) | {d for d, _ in self.status})
        out = []
        for dev in devices:
            p = self.presence.get(dev)
            pres = "unknown"
            if p is not None:
                pres = p["state"]
                if isinstance(p.get("timestamp"), int):
                    pres += " since " + utc(p["timestamp"])
            deps = sorted(dep for d, dep in self.status if d == dev)
            if not deps:
                out.append([dev, pres, "-", "-", "-", "-", "-", ""])
            for dep in deps:
                s = self.status[(dev, dep)]
                out.append([dev, pres, dep, s["app"], s["state"],
                            str(s["adopted"]) if s["adopted"] is not None else "-",
                            s["updated"], s["error"]])
        return out

    def table(self):
        head = ["DEVICE", "PRESENCE", "DEPLOYMENT", "APP", "STATE", "ADOPTED", "UPDATED", "ERROR"]
        rows = self.rows()
        widths = [max(len(r[i]) for r in [head] + rows) for i in range(len(head))]
        lines = []
        for r in [head] + rows:
            lines.append("  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip())
        if not rows:
            lines.append("(no device seen yet)")
        return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--prefix", default="margo/v1")
    ap.add_argument("--once", type=float, metavar="SECONDS",
                    help="print the table once, SECONDS after subscribing, and exit")
    ap.add_argument("--cafile")
    ap.add_argument("--certfile")
    ap.add_argument("--keyfile")
    ap.add_argument("--username")
    ap.add_argument("--client-id", default="",
                    help="MQTT client id (default: the broker assigns one)")
    a = ap.parse_args()

    fleet = Fleet()
    state = {"subscribed_at": None, "dirty": False, "stop": False}
    plen = len(a.prefix.split("/"))

    def on_connect(client, userdata, flags, rc, properties=None):
        if rc != 0:
            print(f"fleet_monitor: connection refused: {rc}", file=sys.stderr)
            state["stop"] = True
            return
        opts = SubscribeOptions(qos=1)
        client.subscribe([(a.prefix + "/devices/+/state", opts),
                          (a.prefix + "/devices/+/status/+", opts)])

    def on_subscribe(client, userdata, mid, granted, properties=None):
        state["subscribed_at"] = time.monotonic()
        print("subscribed", file=sys.stderr, flush=True)

    def on_message(client, userdata, msg):
        levels = msg.topic.split("/")[plen:]  # devices, {d}, state | status, {u}
        if len(levels) < 3 or levels[0] != "devices":
            return
        doc = None
        if msg.payload:
            try:
                doc = msgpack.unpackb(msg.payload, raw=False)
            except Exception as e:  # noqa: BLE001 - any decoder error: skip the message
                print(f"fleet_monitor: {msg.topic}: not MessagePack ({e}); ignored", file=sys.stderr)
                return
            if not isinstance(doc, dict):
                return
        dev = levels[1]
        if len(levels) == 3 and levels[2] == "state":
            changed = fleet.on_presence(dev, doc)
        elif len(levels) == 4 and levels[2] == "status":
            changed = fleet.on_status(dev, levels[3], doc, bool(msg.retain))
        else:
            return
        state["dirty"] = state["dirty"] or changed

    def on_signal(signum, frame):
        state["stop"] = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    client = mqtt.Client(client_id=a.client_id, protocol=mqtt.MQTTv5)
    if a.cafile:
        client.tls_set(ca_certs=a.cafile, certfile=a.certfile, keyfile=a.keyfile)
    if a.username:
        client.username_pw_set(a.username)
    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect(a.host, a.port, keepalive=30)
    tty = sys.stdout.isatty()
    while not state["stop"]:
        client.loop(timeout=0.1)
        if a.once is not None:
            if state["subscribed_at"] is not None and time.monotonic() - state["subscribed_at"] >= a.once:
                print(fleet.table(), flush=True)
                break
            continue
        if state["dirty"] and state["subscribed_at"] is not None:
            state["dirty"] = False
            if tty:
                sys.stdout.write("\033[H\033[2J")
            print(fleet.table() + ("" if tty else "\n"), flush=True)
    client.disconnect()
    return 0


if __name__ == "__main__":
    sys.exit(main())
