"""Charge points built with the npm package `ocpp-rpc` in strict mode with `ocpp2.0.1` and `ocpp2.1`
(tests/e2e/node/charge_point_v2.js; ocpp-rpc checks every message both ways against its own copies of the
schemas): a whole session answered by the reference backend, then six CSMS calls driven from here (SPEC §9)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from tests.e2e.test_ocpp_rpc_session import NodeChargePoint
from tools.harness import OutputLines

CIDS = {"ocpp2.0.1": "CP021", "ocpp2.1": "CP022"}
VARIABLE = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}
CSMS_CALLS = [
    ("GetVariables", {"getVariableData": [VARIABLE]}),
    ("SetVariables", {"setVariableData": [{"attributeValue": "300", **VARIABLE}]}),
    ("RequestStartTransaction", {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}, "remoteStartId": 7}),
    ("Reset", {"type": "Immediate"}),
    ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
    ("GetBaseReport", {"requestId": 2, "reportBase": "FullInventory"}),
]


class NodeChargePointV2(NodeChargePoint):
    def __init__(self, node_dir, gateway, cid: str, protocol: str):  # noqa: D107 - same events, one more argument
        endpoint = gateway.ws_url(cid).rsplit("/", 1)[0]
        self.process = subprocess.Popen(
            [shutil.which("node"), "charge_point_v2.js", endpoint, cid, gateway.password(cid), protocol],
            cwd=node_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.output = OutputLines(self.process.stdout, f"node-{cid}")
        self.read_up_to = 0


@pytest.fixture
def node_charge_point_v2(node_modules, e2e_gateway):
    started = []

    def start(protocol: str) -> NodeChargePointV2:
        started.append(NodeChargePointV2(node_modules, e2e_gateway, CIDS[protocol], protocol))
        return started[-1]

    yield start
    for charge_point in started:
        charge_point.stop()


@pytest.mark.parametrize("protocol", list(CIDS))
def test_strict_ocpp_rpc_2x_charge_point_runs_a_session_and_answers_csms_calls(node_charge_point_v2, responder,
                                                                                protocol):
    cid = CIDS[protocol]
    charge_point = node_charge_point_v2(protocol)
    assert charge_point.expect_event("connected")["protocol"] == protocol

    responses = charge_point.expect_event("session")["responses"]
    assert responses["BootNotification"]["status"] == "Accepted" and responses["BootNotification"]["interval"] == 300
    assert responses["Authorize"] == {"idTokenInfo": {"status": "Accepted"}}
    assert responses["Started"] == {"idTokenInfo": {"status": "Accepted"}}
    assert responses["Updated"] == {} and responses["Ended"] == {} and responses["NotifyReport"] == {}
    assert responder.actions(cid) == ["BootNotification", "StatusNotification", "Heartbeat", "Authorize",
                                      "TransactionEvent", "MeterValues", "TransactionEvent", "TransactionEvent",
                                      "NotifyReport"]

    for action, payload in CSMS_CALLS:
        reply = responder.call(cid, action, payload, timeout=15)
        assert (reply["MessageTypeId"], reply["Action"], reply["Protocol"]) == (3, action, protocol), reply
        assert charge_point.expect_event("handled") == {"event": "handled", "action": action, "params": payload}

    charge_point.say("close")
    closed = charge_point.expect_event("closed")
    assert closed["code"] == 1000
    assert [handled["action"] for handled in closed["handled"]] == [action for action, _ in CSMS_CALLS]
    assert charge_point.wait() == 0
