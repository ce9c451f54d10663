"""Two gateway instances behind HAProxy (deploy/haproxy.cfg) on one Mosquitto: a charge point follows
the balancer to the surviving instance when its instance is SIGKILLed, and so do its commands."""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections import Counter

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.cluster._support import HAPROXY_TEMPLATE, csms_call
from tools.harness import json_matches

CID = "CP001"


class Ledger:
    """Every CSMS call published, every delivery to the charge point, every answer seen on MQTT."""

    def __init__(self, probe, mountpoint: str, cid: str):
        self.probe, self.cid = probe, cid
        self.downstream = f"{mountpoint}cs/{cid}"
        self.replies = f"{mountpoint}cp/{cid}/Reply"
        self.published: list[str] = []
        self.delivered: Counter = Counter()
        self.answers: dict[str, dict] = {}

    def command(self, unique_id: str) -> None:
        self.probe.publish(self.downstream, csms_call(unique_id))
        self.published.append(unique_id)

    def serve(self, charge_point, unique_id: str) -> None:
        """The charge point receives `unique_id` and answers it; the answer must reach MQTT."""
        frame = json.loads(charge_point.recv(timeout=5))
        assert frame[:3] == [2, unique_id, "GetConfiguration"], frame
        self.delivered[unique_id] += 1
        charge_point.send(json.dumps([3, unique_id, {"configurationKey": []}]))
        answer = self.probe.expect(self.replies, json_matches({"UniqueId": unique_id})).json
        self.answers[unique_id] = answer

    def assert_nothing_more_delivered(self, charge_point) -> None:
        # A frame the gateway answers on its own: whatever it sent before would arrive first.
        charge_point.send('[2,"marker",')
        frame = json.loads(charge_point.recv(timeout=5))
        assert frame[:3] == [4, "marker", "FormationViolation"], f"delivered again: {frame}"


def connect_through(proxy, cid: str, gateway):
    return connect(f"ws://127.0.0.1:{proxy.port}/ocpp/{cid}", subprotocols=["ocpp1.6"],
                   additional_headers={"Authorization": gateway.auth_header(cid)}, open_timeout=5,
                   compression=None, ping_interval=None, close_timeout=1)


def wait_closed(charge_point, timeout: float = 5.0) -> None:
    with pytest.raises(ConnectionClosed):
        charge_point.recv(timeout=timeout)


def test_shipped_haproxy_config_is_valid():
    binary = shutil.which("haproxy") or "/usr/sbin/haproxy"
    result = subprocess.run([binary, "-c", "-f", str(HAPROXY_TEMPLATE)], check=False, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stdout + result.stderr


def test_charge_point_and_its_commands_move_to_the_other_instance_when_its_instance_is_killed(
        gateway_factory, haproxy_in_front, mqtt_probe):
    mountpoint = f"lb-{uuid.uuid4().hex[:8]}/"
    settings = {"ocpp.mountpoint": mountpoint, "ocpp.awaiting_timeout": "5s", "ocpp.listener.proxy_protocol": "v2"}
    instances = [gateway_factory(settings), gateway_factory(settings)]
    by_client_id = {gateway.client_id: gateway for gateway in instances}
    proxy = haproxy_in_front(instances)
    mqtt_probe.subscribe(f"{mountpoint}#")
    events = f"{mountpoint}events/{CID}"
    ledger = Ledger(mqtt_probe, mountpoint, CID)

    with connect_through(proxy, CID, instances[0]) as charge_point:
        first = mqtt_probe.expect_json(events, {"event": "connected"})
        serving = by_client_id[first["gateway"]]
        survivor = next(gateway for gateway in instances if gateway is not serving)
        ledger.command("before-kill")
        ledger.serve(charge_point, "before-kill")

        serving.kill()
        wait_closed(charge_point)

    mqtt_probe.expect(f"{mountpoint}gateway/{serving.client_id}/status", lambda m: m.payload == b"offline")
    with connect_through(proxy, CID, instances[0]) as charge_point:
        second = mqtt_probe.expect_json(events, {"event": "connected"})
        assert second["gateway"] == survivor.client_id
        ledger.command("after-move")
        ledger.serve(charge_point, "after-move")
        ledger.assert_nothing_more_delivered(charge_point)

    assert dict(ledger.delivered) == {"before-kill": 1, "after-move": 1}
    for unique_id in ledger.published:
        assert ledger.answers[unique_id]["MessageTypeId"] == 3, ledger.answers[unique_id]
    # Nothing else about this charge point went up: no gateway error for a command that was delivered.
    left = [m for m in mqtt_probe.drain() if m.topic == ledger.replies]
    assert left == []
    assert "taken over" not in "\n".join(survivor.logs)
