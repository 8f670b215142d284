#!/usr/bin/python3
"""wire_record.py - records every message on a broker, for tests/scripts/wire_validate.py.

Subscribes (MQTT 5, QoS 1, retain as published) to '#' and appends one JSON line per message to
OUT: {"topic", "retain", "qos", "payload" (hex)}. Creates OUT.ready once the subscription is
acknowledged, so a test starts its traffic only after that. Stops on SIGTERM or SIGINT (the
file is flushed after every line). Debian's python3-paho-mqtt.

  wire_record.py HOST PORT OUT
"""
import json
import signal
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.subscribeoptions import SubscribeOptions

host, port, out_path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
out = open(out_path, "a", encoding="ascii")
stop = False


def on_connect(client, userdata, flags, rc, properties=None):
    if rc != 0:
        print(f"wire_record: connect refused: {rc}", file=sys.stderr)
        sys.exit(1)
    # retain as published: the file then records whether the publisher retained each message
    client.subscribe("#", options=SubscribeOptions(qos=1, retainAsPublished=True))


def on_subscribe(client, userdata, mid, granted, properties=None):
    open(out_path + ".ready", "w").close()


def on_message(client, userdata, msg):
    out.write(json.dumps({"topic": msg.topic, "retain": bool(msg.retain), "qos": msg.qos,
                          "payload": msg.payload.hex()}) + "\n")
    out.flush()


def on_signal(signum, frame):
    global stop
    stop = True


signal.signal(signal.SIGTERM, on_signal)
signal.signal(signal.SIGINT, on_signal)
client = mqtt.Client(client_id="", protocol=mqtt.MQTTv5)
client.on_connect = on_connect
client.on_subscribe = on_subscribe
client.on_message = on_message
client.connect(host, port, keepalive=30)
while not stop:
    client.loop(timeout=0.2)
client.disconnect()
out.close()
