"""Round trip through the gateway with message format checking `all` vs `disable`, same run.

    python -m bench.schema_roundtrip [--count 2000] [--rounds 3]

One CP (a synchronous WebSocket client) sends BootNotification-sized and MeterValues calls one
after another; a paho responder answers each at once. Each round starts a fresh gateway per mode
(alternating, so drift on a shared machine hits both); the figure is the median of per-round
p50s, and the ratio all/disable.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tools.harness import Mosquitto, free_port  # noqa: E402

METER = {"connectorId": 1, "transactionId": 7, "meterValue": [{
    "timestamp": "2026-11-22T10:00:00Z",
    "sampledValue": [{"value": str(v), "measurand": m, "unit": u} for v, m, u in [
        (1234, "Energy.Active.Import.Register", "Wh"), (7.2, "Power.Active.Import", "kW"),
        (16, "Current.Import", "A"), (230, "Voltage", "V"), (54, "SoC", "Percent"),
        (30, "Temperature", "Celsius")]]}]}
BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model", "firmwareVersion": "1.2.3"}
ANSWERS = {"MeterValues": {}, "BootNotification": {"status": "Accepted", "interval": 300,
                                                   "currentTime": "2026-11-22T10:00:00Z"}}


def responder(port: int) -> mqtt.Client:
    client = mqtt.Client(CallbackAPIVersion.VERSION2)

    def on_message(c, _u, msg):
        call = json.loads(msg.payload)
        c.publish("ocpp/cs/" + msg.topic.split("/")[2], json.dumps(
            {"MessageTypeId": 3, "UniqueId": call["UniqueId"], "Action": call["Action"],
             "Payload": ANSWERS[call["Action"]]}), qos=1)

    client.on_connect = lambda c, *a: c.subscribe("ocpp/cp/+", 1)
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def round_trip(mode: str, broker_port: int, count: int, workdir: Path) -> dict[str, float]:
    ws_port = free_port()
    conf = workdir / f"{mode}.conf"
    conf.write_text(f"ocpp.listener.ws = 127.0.0.1:{ws_port}\nadmin.listener = off\n"
                    f"mqtt.server = 127.0.0.1:{broker_port}\nmqtt.client_id = bench-schema-{mode}\n"
                    f"auth.backend = none\nocpp.message_format_checking = {mode}\nlog.level = info\n")
    gateway = subprocess.Popen([sys.executable, "-m", "ocpp_gw", "-c", str(conf)], cwd=ROOT,
                               stderr=subprocess.PIPE, text=True)
    try:
        for line in gateway.stderr:
            if "ocpp_gw ready" in line:
                break
        threading.Thread(target=gateway.stderr.read, daemon=True).start()  # keep the pipe drained
        results = {}
        with connect(f"ws://127.0.0.1:{ws_port}/ocpp/CP1", subprotocols=["ocpp1.6"],
                     compression=None) as ws:
            for action, payload in (("BootNotification", BOOT), ("MeterValues", METER)):
                times = []
                for i in range(count):
                    start = time.perf_counter()
                    ws.send(json.dumps([2, f"{action[0]}{i}", action, payload]))
                    answer = json.loads(ws.recv(timeout=10))
                    times.append(time.perf_counter() - start)
                    assert answer[0] == 3, answer
                results[action] = statistics.median(times) * 1e3
        return results
    finally:
        gateway.terminate()
        gateway.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--count", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Mosquitto(Path(tmp) / "mq") as broker:
        backend = responder(broker.port)
        p50 = {"all": [], "disable": []}
        for _ in range(args.rounds):
            for mode in ("disable", "all"):
                p50[mode].append(round_trip(mode, broker.port, args.count, Path(tmp)))
        backend.loop_stop()
    print(f"round trip p50 (ms), median of {args.rounds} rounds of {args.count} calls each")
    print(f"{'action':18} {'disable':>8} {'all':>8} {'all/disable':>12}")
    for action in ("BootNotification", "MeterValues"):
        off = statistics.median(r[action] for r in p50["disable"])
        on = statistics.median(r[action] for r in p50["all"])
        print(f"{action:18} {off:8.3f} {on:8.3f} {on / off:12.3f}")


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
