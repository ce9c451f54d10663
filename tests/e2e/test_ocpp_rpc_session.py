"""A charge point built with the npm package `ocpp-rpc` in strict mode (tests/e2e/node/charge_point.js): a whole
charging session answered by the reference backend, then three CSMS calls driven from here."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from tools.harness import OutputLines, stop_process

CID = "CP020"


class NodeChargePoint:
    """The node process; its stdout carries one JSON event per line."""

    def __init__(self, node_dir, gateway, cid: str):
        endpoint = gateway.ws_url(cid).rsplit("/", 1)[0]
        self.process = subprocess.Popen(
            [shutil.which("node"), "charge_point.js", endpoint, cid, gateway.password(cid)],
            cwd=node_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.output = OutputLines(self.process.stdout, f"node-{cid}")
        self.read_up_to = 0

    def expect_event(self, name: str, timeout: float = 20.0) -> dict:
        """The next event called `name`; fails on timeout or when the charge point reports an error first."""
        index = self.output.wait_for_index(lambda text: self._event(text) in (name, "error"), timeout, self.read_up_to)
        assert index is not None, f"no {name!r} event within {timeout}s; output:\n{self.output.tail()}"
        self.read_up_to = index + 1
        event = json.loads(self.output.lines[index])
        assert event["event"] == name, f"the charge point failed: {event}\noutput:\n{self.output.tail()}"
        return event

    @staticmethod
    def _event(line: str) -> str | None:
        try:
            return json.loads(line).get("event")
        except (ValueError, AttributeError):
            return None

    def say(self, line: str) -> None:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait(self, timeout: float = 10.0) -> int:
        return self.process.wait(timeout)

    def stop(self) -> None:
        stop_process(self.process, timeout=5)


@pytest.fixture
def node_charge_point(node_modules, e2e_gateway):
    started = []

    def start(cid: str = CID) -> NodeChargePoint:
        started.append(NodeChargePoint(node_modules, e2e_gateway, cid))
        return started[-1]

    yield start
    for charge_point in started:
        charge_point.stop()


def test_strict_ocpp_rpc_charge_point_runs_a_charging_session_and_answers_csms_calls(node_charge_point, responder):
    charge_point = node_charge_point()
    assert charge_point.expect_event("connected")["protocol"] == "ocpp1.6"

    responses = charge_point.expect_event("session")["responses"]
    assert responses["BootNotification"]["status"] == "Accepted"
    assert responses["BootNotification"]["interval"] == 300
    assert responses["Authorize"] == {"idTagInfo": {"status": "Accepted"}}
    assert responses["StartTransaction"]["idTagInfo"] == {"status": "Accepted"}
    assert isinstance(responses["StartTransaction"]["transactionId"], int)
    assert responses["StatusNotification"] == {} and responses["MeterValues"] == {}
    assert "currentTime" in responses["Heartbeat"]
    assert responder.actions(CID) == [
        "BootNotification", "StatusNotification", "Authorize", "StartTransaction", "MeterValues", "StopTransaction",
        "Heartbeat",
    ]

    csms_calls = [
        ("RemoteStartTransaction", {"idTag": "TAG-NODE", "connectorId": 1}, {"status": "Accepted"}),
        ("Reset", {"type": "Hard"}, {"status": "Accepted"}),
        ("GetConfiguration", {"key": ["HeartbeatInterval"]},
         {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}], "unknownKey": []}),
    ]
    for action, payload, expected in csms_calls:
        reply = responder.call(CID, action, payload, timeout=15)
        assert reply["MessageTypeId"] == 3, reply
        assert reply["Action"] == action
        assert reply["Payload"] == expected
        assert charge_point.expect_event("handled") == {"event": "handled", "action": action, "params": payload}

    charge_point.say("close")
    closed = charge_point.expect_event("closed")
    assert closed["code"] == 1000
    assert [handled["action"] for handled in closed["handled"]] == [action for action, _, _ in csms_calls]
    assert charge_point.wait() == 0
