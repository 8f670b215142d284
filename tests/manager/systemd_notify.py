#!/usr/bin/python3
"""systemd_notify.py - margo-manager as systemd runs it (docs/operations.md, "systemd", "Reload",
"Logs"), with the notification socket this test binds in place of systemd's.

A real margo-manager (argv[1]) and a real Mosquitto on free loopback ports. The manager gets
NOTIFY_SOCKET (an AF_UNIX datagram socket bound here) and WATCHDOG_USEC, and logs with
log-format json. Checked:
  - READY=1 arrives once the API listens and the MQTT client started; WATCHDOG=1 arrives
    again and again at about half of WATCHDOG_USEC;
  - every log line is a JSON object with time (RFC 3339 UTC, milliseconds), level,
    component and message; device names the device of a device's log line;
  - SIGHUP with log-level debug in the file: RELOADING=1 then READY=1, and debug lines
    appear (before: none); a changed topic-prefix is reported once as "needs a restart";
  - SIGHUP with a broken file: the file:line error is logged, READY=1 follows, the manager
    keeps running with the level it had;
  - SIGTERM: STOPPING=1 and exit status 0.
"""
import json
import msgpack
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

MANAGER = sys.argv[1]
AGENT = sys.argv[2]
PKI = sys.argv[3]  # broker-config/pki.sh
MOSQUITTO = os.environ.get("MGO_TEST_MOSQUITTO", "/usr/sbin/mosquitto")
TIME_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
failures = []


def check(cond, what):
    if not cond:
        failures.append(what)
        print("FAIL: " + what, file=sys.stderr)
    return cond


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=10):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


def recv_until(sock, want, timeout):
    """Datagrams received until one has the line `want` (returned: all of them)."""
    got = []
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        sock.settimeout(max(0.01, end - time.monotonic()))
        try:
            msg = sock.recv(4096).decode()
        except socket.timeout:
            break
        got.append(msg)
        if want in msg.split("\n"):
            return got
    return got


def log_lines(path):
    with open(path, encoding="utf-8") as f:
        return [l for l in f.read().split("\n") if l]


def wait_log(path, needle, timeout=10, more_than=0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if sum(needle in l for l in log_lines(path)) > more_than:
            return True
        time.sleep(0.05)
    return False


def write_conf(path, state, broker_port, extra):
    with open(path, "w") as f:
        f.write(f"state-dir {state}\nbroker-url tcp://127.0.0.1:{broker_port}\n"
                f"api-listen 127.0.0.1:0\nlog-format json\n{extra}")


def test_manager():
    tmp = tempfile.mkdtemp(prefix="mgo-test-systemd-")
    broker = manager = None
    try:
        bport = free_port()
        broker = start_broker(tmp, f"listener {bport} 127.0.0.1\nallow_anonymous true\n")
        if not check(wait_port(bport), "mosquitto listens"):
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(f"{tmp}/notify.sock")
        conf = f"{tmp}/manager.conf"
        write_conf(conf, f"{tmp}/state", bport, "log-level info\n")
        env = dict(os.environ, NOTIFY_SOCKET=f"{tmp}/notify.sock", WATCHDOG_USEC="400000")
        env.pop("WATCHDOG_PID", None)
        env.pop("JOURNAL_STREAM", None)  # stderr is a file here, never the journal
        log = f"{tmp}/manager.log"
        with open(log, "w") as out:
            manager = subprocess.Popen([MANAGER, "--config", conf], stdout=out, stderr=out,
                                       env=env)

        # readiness, then the watchdog
        got = recv_until(sock, "READY=1", 15)
        check(any("READY=1" in m.split("\n") for m in got), f"READY=1 arrives (got {got})")
        ready = [m for m in got if "READY=1" in m.split("\n")]
        check(ready and re.search(r"STATUS=serving the API on port \d+", ready[0]),
              f"READY=1 comes with a useful STATUS (got {ready})")
        start = time.monotonic()
        pings = 0
        while time.monotonic() - start < 2.0:
            pings += sum(m == "WATCHDOG=1" for m in recv_until(sock, "WATCHDOG=1", 1.0))
        # 200 ms period: about 10 in 2 s; at least 4 even on a loaded machine
        check(pings >= 4, f"WATCHDOG=1 arrives repeatedly ({pings} in 2 s)")

        # a device's presence (protocol.md 3.6) makes a log line about that device, with a
        # message that needs JSON escaping
        check(wait_log(log, "connected to"), "the manager connects to the broker")
        with open(f"{tmp}/presence.bin", "wb") as f:
            f.write(msgpack.packb({"deviceId": "dev-json-1", "state": "online", "boot": 7}))
        with open(f"{tmp}/event.bin", "wb") as f:
            f.write(msgpack.packb({"deviceId": "dev-json-1", "type": "test-event",
                                   "severity": "info", "timestamp": 1,
                                   "message": 'quote " backslash \\ tab \t end'}))
        for kind, payload in (("state", "presence.bin"), ("events", "event.bin")):
            subprocess.run(["mosquitto_pub", "-h", "127.0.0.1", "-p", str(bport), "-q", "1",
                            "-t", f"margo/v1/devices/dev-json-1/{kind}", "-f",
                            f"{tmp}/{payload}"], check=True, timeout=10)
        check(wait_log(log, "test-event"), "the device's event is logged")
        device_lines = [json.loads(l) for l in log_lines(log) if "dev-json-1" in l]
        check(any(o.get("device") == "dev-json-1" and "online" in o["message"]
                  for o in device_lines), f"presence line names the device: {device_lines}")
        check(any(o.get("device") == "dev-json-1"
                  and o["message"].endswith('quote " backslash \\ tab \t end')
                  for o in device_lines), f"event message escaped and read back: {device_lines}")

        # JSON lines
        for line in log_lines(log):
            try:
                obj = json.loads(line)
            except ValueError:
                check(False, f"log line is JSON: {line!r}")
                continue
            check(isinstance(obj, dict) and TIME_RE.match(obj.get("time", "")) is not None,
                  f"time is RFC 3339 UTC with ms: {line!r}")
            check(obj.get("level") in ("error", "warn", "info", "debug"), f"level: {line!r}")
            check(isinstance(obj.get("component"), str) and obj["component"] != "",
                  f"component: {line!r}")
            check(isinstance(obj.get("message"), str), f"message: {line!r}")
        check(not any(json.loads(l).get("level") == "debug" for l in log_lines(log)),
              "no debug line at log-level info")

        # reload: log level debug, topic-prefix changed (needs a restart)
        write_conf(conf, f"{tmp}/state", bport, "log-level debug\ntopic-prefix other/v1\n")
        manager.send_signal(signal.SIGHUP)
        got = recv_until(sock, "READY=1", 10)
        flat = [l for m in got for l in m.split("\n")]
        check("RELOADING=1" in flat and "READY=1" in flat
              and flat.index("RELOADING=1") < flat.index("READY=1"),
              f"RELOADING=1 then READY=1 on SIGHUP (got {got})")
        check(wait_log(log, "reload: done"), "the reload is logged as done")
        check(wait_log(log, "needs a restart: topic-prefix"), "topic-prefix needs a restart")
        # a broker restart makes the MQTT client log its connect at debug level
        broker.terminate()
        broker.wait(10)
        broker = subprocess.Popen([MOSQUITTO, "-c", f"{tmp}/mosquitto.conf"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        check(wait_port(bport), "mosquitto listens again")
        check(wait_log(log, '"level":"debug"', 15), "debug lines after the reload to debug")

        # a second reload of the same file: the restart notice is not repeated
        manager.send_signal(signal.SIGHUP)
        recv_until(sock, "READY=1", 10)
        check(wait_log(log, "reload: done", more_than=1), "second reload done")
        check(sum("needs a restart: topic-prefix" in l for l in log_lines(log)) == 1,
              "a change that needs a restart is reported once")

        # a broken file: error with file:line, still running, still at debug
        write_conf(conf, f"{tmp}/state", bport, "log-level warn\nno-such-option 1\n")
        manager.send_signal(signal.SIGHUP)
        got = recv_until(sock, "READY=1", 10)
        check(any("READY=1" in m.split("\n") for m in got), "READY=1 after a failed reload")
        check(wait_log(log, "manager.conf:6"), "the broken file's line is named (file:line)")
        check(wait_log(log, "the running one is kept"), "the running configuration is kept")
        time.sleep(0.3)
        check(manager.poll() is None, "the manager keeps running after a broken reload")
        pings = sum(m == "WATCHDOG=1" for m in recv_until(sock, "never", 1.0))
        check(pings >= 2, f"the watchdog still pings after the broken reload ({pings})")
        debug_before = sum('"level":"debug"' in l for l in log_lines(log))
        broker.terminate()
        broker.wait(10)
        broker = subprocess.Popen([MOSQUITTO, "-c", f"{tmp}/mosquitto.conf"],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        check(wait_log(log, '"level":"debug"', 15, more_than=debug_before),
              "still at debug level (log-level warn of the broken file not applied)")

        # stop
        manager.send_signal(signal.SIGTERM)
        got = recv_until(sock, "STOPPING=1", 10)
        check(any("STOPPING=1" in m.split("\n") for m in got), f"STOPPING=1 on SIGTERM ({got})")
        check(manager.wait(30) == 0, "exit status 0 after SIGTERM")
        manager = None
        for line in log_lines(log):
            try:
                json.loads(line)
            except ValueError:
                check(False, f"log line is JSON: {line!r}")
    finally:
        for p in (manager, broker):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if failures or os.environ.get("MGO_TEST_SHOW"):  # MGO_TEST_SHOW=1: the log anyway
            try:
                with open(f"{tmp}/manager.log", encoding="utf-8") as f:
                    print(f.read()[-6000:], file=sys.stderr)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


def start_broker(tmp, conf_text):
    # as root Mosquitto would switch to user "mosquitto", who cannot read our 0700 folder
    user = f"user {pwd.getpwuid(os.getuid()).pw_name}\n" if os.getuid() == 0 else ""
    with open(f"{tmp}/mosquitto.conf", "w") as f:
        f.write(conf_text + user)
    return subprocess.Popen([MOSQUITTO, "-c", f"{tmp}/mosquitto.conf"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def test_manager_tls_reload():
    """SIGHUP re-reads the MQTT client certificate: a touched file reconnects, an expired one
    put in its place is refused by the broker on the next connect (the new contents are
    read), the good one back connects again."""
    tmp = tempfile.mkdtemp(prefix="mgo-test-systemd-tls-")
    broker = manager = None
    try:
        subprocess.run(["sh", PKI, "--expired", "margo-old", f"{tmp}/pki"], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
        shutil.copy(f"{tmp}/pki/manager.crt", f"{tmp}/client.crt")
        shutil.copy(f"{tmp}/pki/manager.key", f"{tmp}/client.key")
        bport = free_port()
        broker = start_broker(tmp, f"listener {bport} 127.0.0.1\ncafile {tmp}/pki/ca.crt\n"
                              f"certfile {tmp}/pki/broker.crt\nkeyfile {tmp}/pki/broker.key\n"
                              "require_certificate true\nuse_identity_as_username true\n")
        if not check(wait_port(bport), "TLS mosquitto listens"):
            return
        conf = f"{tmp}/manager.conf"
        with open(conf, "w") as f:
            f.write(f"state-dir {tmp}/state\nbroker-url ssl://127.0.0.1:{bport}\n"
                    f"api-listen 127.0.0.1:0\nca-file {tmp}/pki/ca.crt\n"
                    f"cert-file {tmp}/client.crt\nkey-file {tmp}/client.key\n")
        log = f"{tmp}/manager.log"
        env = {k: v for k, v in os.environ.items()
               if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "JOURNAL_STREAM")}
        with open(log, "w") as out:
            manager = subprocess.Popen([MANAGER, "--config", conf], stdout=out, stderr=out,
                                       env=env)
        check(wait_log(log, "manager: connected to ssl://"), "connected over TLS")
        # unchanged files: a reload does not reconnect
        manager.send_signal(signal.SIGHUP)
        check(wait_log(log, "reload: done"), "reload done")
        check(not any("TLS files changed" in l for l in log_lines(log)),
              "unchanged TLS files: no reconnect")
        # the same files rewritten: reconnect
        time.sleep(0.05)
        os.utime(f"{tmp}/client.crt")
        manager.send_signal(signal.SIGHUP)
        check(wait_log(log, "TLS files changed: reconnecting"), "touched cert: reconnect")
        check(wait_log(log, "manager: connected to ssl://", more_than=1), "connected again")
        # an expired certificate in place of the good one: the broker refuses it
        connected = sum("manager: connected to ssl://" in l for l in log_lines(log))
        shutil.copy(f"{tmp}/pki/expired/margo-old.crt", f"{tmp}/client.crt")
        shutil.copy(f"{tmp}/pki/expired/margo-old.key", f"{tmp}/client.key")
        manager.send_signal(signal.SIGHUP)
        check(wait_log(log, "TLS files changed: reconnecting", more_than=1), "expired: reconnect")
        check(wait_log(log, "failed (reason", 20), "the expired certificate is refused")
        check(sum("manager: connected to ssl://" in l for l in log_lines(log)) == connected,
              "no connection with the expired certificate (the file was read again)")
        # the good one back: the next attempt connects
        shutil.copy(f"{tmp}/pki/manager.crt", f"{tmp}/client.crt")
        shutil.copy(f"{tmp}/pki/manager.key", f"{tmp}/client.key")
        manager.send_signal(signal.SIGHUP)
        check(wait_log(log, "manager: connected to ssl://", 40, more_than=connected),
              "connected again with the good certificate")
        manager.send_signal(signal.SIGTERM)
        check(manager.wait(30) == 0, "TLS manager: exit status 0")
        manager = None
    finally:
        for p in (manager, broker):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if failures or os.environ.get("MGO_TEST_SHOW"):
            try:
                with open(f"{tmp}/manager.log", encoding="utf-8") as f:
                    print(f.read()[-6000:], file=sys.stderr)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


def test_agent():
    """margo-agent: READY=1, WATCHDOG=1, SIGHUP to debug (RELOADING, READY, debug lines,
    needs a restart), a broken file kept out, STOPPING=1 and exit 0."""
    tmp = tempfile.mkdtemp(prefix="mgo-test-systemd-agent-")
    broker = agent = None
    try:
        bport = free_port()
        broker = start_broker(tmp, f"listener {bport} 127.0.0.1\nallow_anonymous true\n")
        if not check(wait_port(bport), "mosquitto listens (agent)"):
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(f"{tmp}/notify.sock")
        conf = f"{tmp}/agent.conf"
        base = (f"device-id dev-sd-1\nstate-dir {tmp}/state\nbroker-url tcp://127.0.0.1:{bport}\n"
                "log-format json\nhelm-command /nonexistent/helm\n"
                "compose-command /nonexistent/compose\n")
        with open(conf, "w") as f:
            f.write(base + "log-level info\n")
        env = dict(os.environ, NOTIFY_SOCKET=f"{tmp}/notify.sock", WATCHDOG_USEC="400000")
        env.pop("WATCHDOG_PID", None)
        env.pop("JOURNAL_STREAM", None)
        log = f"{tmp}/agent.log"
        with open(log, "w") as out:
            agent = subprocess.Popen([AGENT, "--config", conf], stdout=out, stderr=out, env=env)
        got = recv_until(sock, "READY=1", 15)
        ready = [m for m in got if "READY=1" in m.split("\n")]
        check(ready and "STATUS=device dev-sd-1" in ready[0], f"agent READY=1 ({got})")
        pings = 0
        start = time.monotonic()
        while time.monotonic() - start < 2.0:
            pings += sum(m == "WATCHDOG=1" for m in recv_until(sock, "WATCHDOG=1", 1.0))
        check(pings >= 4, f"agent WATCHDOG=1 repeatedly ({pings} in 2 s)")
        check(wait_log(log, "agent: connected") or wait_log(log, "connected"), "agent connects")
        check(not any('"level":"debug"' in l for l in log_lines(log)), "agent: no debug at info")
        with open(conf, "w") as f:
            f.write(base + "log-level debug\nreconcile-interval 7\n")
        agent.send_signal(signal.SIGHUP)
        got = recv_until(sock, "READY=1", 10)
        flat = [l for m in got for l in m.split("\n")]
        check("RELOADING=1" in flat and "READY=1" in flat, f"agent RELOADING/READY ({got})")
        check(wait_log(log, "needs a restart: reconcile-interval"), "agent: needs a restart")
        broker.terminate()
        broker.wait(10)
        broker = start_broker(tmp, f"listener {bport} 127.0.0.1\nallow_anonymous true\n")
        check(wait_log(log, '"level":"debug"', 15), "agent: debug lines after the reload")
        with open(conf, "w") as f:
            f.write(base + "log-level debug\nbroker-url nonsense\n")
        agent.send_signal(signal.SIGHUP)
        recv_until(sock, "READY=1", 10)
        check(wait_log(log, "the running one is kept"), "agent: broken file not applied")
        check(agent.poll() is None, "agent keeps running after a broken reload")
        agent.send_signal(signal.SIGTERM)
        got = recv_until(sock, "STOPPING=1", 10)
        check(any("STOPPING=1" in m.split("\n") for m in got), f"agent STOPPING=1 ({got})")
        check(agent.wait(30) == 0, "agent exit status 0")
        agent = None
        for line in log_lines(log):
            try:
                obj = json.loads(line)
                check(TIME_RE.match(obj["time"]) and obj["level"] and obj["component"]
                      and "message" in obj, f"agent JSON keys: {line!r}")
            except (ValueError, KeyError):
                check(False, f"agent log line is JSON: {line!r}")
    finally:
        for p in (agent, broker):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait()
        if failures or os.environ.get("MGO_TEST_SHOW"):
            try:
                with open(f"{tmp}/agent.log", encoding="utf-8") as f:
                    print(f.read()[-6000:], file=sys.stderr)
            except OSError:
                pass
        shutil.rmtree(tmp, ignore_errors=True)


test_manager()
test_agent()
test_manager_tls_reload()
if failures:
    print(f"{len(failures)} check(s) failed", file=sys.stderr)
    sys.exit(1)
print("systemd_notify: all checks passed")
