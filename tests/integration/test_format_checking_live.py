"""Message format checking (SPEC §7) through the real gateway and broker: every mode × direction,
cases from tests/data/format_checking/*.json."""

import json
from pathlib import Path

import pytest
from websockets.sync.client import connect

DATA = Path(__file__).resolve().parents[1] / "data" / "format_checking"
CASES = [case for path in sorted(DATA.glob("*.json")) for case in json.loads(path.read_text())]
UPSTREAM = {"cp_call", "cp_result"}
CID = "CP040"


def checked(mode, direction):
    upstream = direction in UPSTREAM
    return mode == "all" or (mode == "upstream_only" and upstream) or (mode == "dnstream_only" and not upstream)


def run_case(case, mode, ws, probe, n):
    uid, action, payload = f"u{n}", case["action"], case["payload"]
    refused = case["code"] is not None and checked(mode, case["direction"])
    direction = case["direction"]
    if direction == "cp_call":
        ws.send(json.dumps([2, uid, action, payload]))
        if refused:
            answer = json.loads(ws.recv(timeout=5))
            assert answer[:3] == [4, uid, case["code"]], (case, answer)
            probe.expect_none(f"ocpp/cp/{CID}", lambda m: m.json.get("UniqueId") == uid, within=0.3)
        else:
            up = probe.expect_json(f"ocpp/cp/{CID}", {"UniqueId": uid})
            assert up["Payload"] == payload
            probe.publish(f"ocpp/cs/{CID}", {"MessageTypeId": 4, "UniqueId": uid, "ErrorCode": "GenericError",
                                             "ErrorDescription": "test", "ErrorDetails": {}})
            assert json.loads(ws.recv(timeout=5))[:2] == [4, uid]
    elif direction == "csms_call":
        probe.publish(f"ocpp/cs/{CID}", {"MessageTypeId": 2, "UniqueId": uid, "Action": action, "Payload": payload})
        if refused:
            error = probe.expect_json(f"ocpp/cp/{CID}/Reply", {"UniqueId": uid, "MessageTypeId": 4})
            assert error["ErrorCode"] == case["code"]
            assert error["ErrorDetails"]["reason"] == "schema" and error["ErrorDetails"]["payload"] == payload
        else:
            assert json.loads(ws.recv(timeout=5)) == [2, uid, action, payload]
            ws.send(json.dumps([4, uid, "NotSupported", "test", {}]))
            probe.expect_json(f"ocpp/cp/{CID}/Reply", {"UniqueId": uid})
    elif direction == "cp_result":
        probe.publish(f"ocpp/cs/{CID}", {"MessageTypeId": 2, "UniqueId": uid, "Action": action,
                                         "Payload": {"type": "Soft"}})
        assert json.loads(ws.recv(timeout=5))[1] == uid
        ws.send(json.dumps([3, uid, payload]))
        reply = probe.expect_json(f"ocpp/cp/{CID}/Reply", {"UniqueId": uid})
        if refused:
            assert (reply["MessageTypeId"], reply["ErrorCode"]) == (4, case["code"])
            assert reply["ErrorDetails"]["reason"] == "schema"
        else:
            assert (reply["MessageTypeId"], reply["Payload"], reply["Action"]) == (3, payload, action)
    else:  # csms_result
        ws.send(json.dumps([2, uid, action, {}]))
        probe.expect_json(f"ocpp/cp/{CID}", {"UniqueId": uid})
        probe.publish(f"ocpp/cs/{CID}", {"MessageTypeId": 3, "UniqueId": uid, "Action": action, "Payload": payload})
        if refused:
            error = probe.expect_json(f"ocpp/cp/{CID}/Reply", {"UniqueId": uid, "MessageTypeId": 4})
            assert error["ErrorCode"] == case["code"] and error["ErrorDetails"]["reason"] == "schema"
        else:
            assert json.loads(ws.recv(timeout=5)) == [3, uid, payload]


@pytest.mark.parametrize("mode", ["all", "upstream_only", "dnstream_only", "disable"])
def test_every_case_in_every_mode_gets_exactly_the_answer_spec_names(mode, gateway_factory, mqtt_probe):
    gateway = gateway_factory({"ocpp.message_format_checking": mode, "auth.throttle.max_failures": 0})
    mqtt_probe.subscribe(f"ocpp/cp/{CID}/#")
    mqtt_probe.subscribe(f"ocpp/cp/{CID}")
    mqtt_probe.subscribe(f"ocpp/events/{CID}")
    with connect(gateway.ws_url(CID), subprotocols=["ocpp1.6"], compression=None,
                 additional_headers={"Authorization": gateway.auth_header(CID)}) as ws:
        mqtt_probe.expect_json(f"ocpp/events/{CID}", {"event": "connected"})
        for n, case in enumerate(CASES):
            run_case(case, mode, ws, mqtt_probe, n)
