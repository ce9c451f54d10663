"""Charge points built with mobilityhouse `ocpp` v201 and v21 (over `websockets`; the library validates both
directions against its own copies of the schemas) talk to the reference backend through the gateway (SPEC §9): a
whole session, then the calls a CSMS makes to a 2.x charge point."""

from __future__ import annotations

import asyncio
import importlib
from datetime import datetime, timezone

import pytest
import websockets
from ocpp.routing import on

CASES = {"ocpp2.0.1": ("ocpp.v201", "CP011"), "ocpp2.1": ("ocpp.v21", "CP012")}
ID_TOKEN = {"id_token": "04A2B3C4", "type": "ISO14443"}
SESSION_ACTIONS = ["BootNotification", "StatusNotification", "Heartbeat", "Authorize", "TransactionEvent",
                   "MeterValues", "TransactionEvent", "TransactionEvent", "NotifyReport"]
VARIABLE = {"component": {"name": "OCPPCommCtrlr"}, "variable": {"name": "HeartbeatInterval"}}


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


def charge_point_class(library):
    """A ChargePoint of that library version answering the six CSMS calls of the tests."""
    call_result = library.call_result

    class ChargePointUnderTest(library.ChargePoint):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.asked: list[str] = []

        @on("GetVariables")
        async def on_get_variables(self, get_variable_data, **_):
            self.asked.append("GetVariables")
            return call_result.GetVariables(get_variable_result=[
                {"attribute_status": "Accepted", "attribute_value": "300", **VARIABLE}])

        @on("SetVariables")
        async def on_set_variables(self, set_variable_data, **_):
            self.asked.append("SetVariables")
            return call_result.SetVariables(set_variable_result=[{"attribute_status": "Accepted", **VARIABLE}])

        @on("RequestStartTransaction")
        async def on_request_start_transaction(self, id_token, remote_start_id, **_):
            self.asked.append("RequestStartTransaction")
            return call_result.RequestStartTransaction(status="Accepted")

        @on("Reset")
        async def on_reset(self, type, **_):  # noqa: A002 - the OCPP field is called `type`
            self.asked.append("Reset")
            return call_result.Reset(status="Accepted")

        @on("TriggerMessage")
        async def on_trigger_message(self, requested_message, **_):
            self.asked.append("TriggerMessage")
            return call_result.TriggerMessage(status="Accepted")

        @on("GetBaseReport")
        async def on_get_base_report(self, request_id, report_base, **_):
            self.asked.append("GetBaseReport")
            return call_result.GetBaseReport(status="Accepted")

    return ChargePointUnderTest


async def run_connected(gateway, version: str, scenario):
    module, cid = CASES[version]
    library = importlib.import_module(module)
    async with websockets.connect(
        gateway.ws_url(cid), subprotocols=[version],
        additional_headers={"Authorization": gateway.auth_header(cid)}, open_timeout=5,
    ) as connection:
        assert connection.subprotocol == version
        charge_point = charge_point_class(library)(cid, connection, response_timeout=15)
        message_loop = asyncio.create_task(charge_point.start())
        try:
            return await scenario(charge_point, library.call)
        finally:
            message_loop.cancel()


async def charging_session(charge_point, call) -> dict:
    meter = [{"timestamp": now(), "sampled_value": [{"value": 1500.0}]}]
    transaction = {"transaction_id": "tx-1"}

    def event(event_type: str, seq_no: int, trigger: str, **extra):
        return call.TransactionEvent(event_type=event_type, timestamp=now(), trigger_reason=trigger,
                                     seq_no=seq_no, transaction_info=transaction, **extra)

    return {
        "boot": await charge_point.call(call.BootNotification(
            charging_station={"model": "e2e", "vendor_name": "mobilityhouse"}, reason="PowerUp")),
        "status": await charge_point.call(call.StatusNotification(
            timestamp=now(), connector_status="Available", evse_id=1, connector_id=1)),
        "heartbeat": await charge_point.call(call.Heartbeat()),
        "authorize": await charge_point.call(call.Authorize(id_token=ID_TOKEN)),
        "started": await charge_point.call(event("Started", 0, "Authorized", id_token=ID_TOKEN,
                                                 evse={"id": 1, "connector_id": 1})),
        "meter": await charge_point.call(call.MeterValues(evse_id=1, meter_value=meter)),
        "updated": await charge_point.call(event("Updated", 1, "MeterValuePeriodic", meter_value=meter)),
        "ended": await charge_point.call(event("Ended", 2, "StopAuthorized")),
        "report": await charge_point.call(call.NotifyReport(request_id=1, generated_at=now(), seq_no=0)),
    }


@pytest.mark.parametrize("version", list(CASES))
def test_a_2x_charging_session_is_answered_by_the_backend_through_the_gateway(e2e_gateway, responder, version):
    responses = asyncio.run(run_connected(e2e_gateway, version, charging_session))

    cid = CASES[version][1]
    assert responses["boot"].status == "Accepted" and responses["boot"].interval == 300
    assert responses["heartbeat"].current_time
    assert responses["authorize"].id_token_info == {"status": "Accepted"}
    assert responses["started"].id_token_info == {"status": "Accepted"}
    assert responder.actions(cid) == SESSION_ACTIONS
    boot = responder.wait_for_call(cid, "BootNotification")
    assert boot["Protocol"] == version
    assert boot["Payload"]["chargingStation"] == {"model": "e2e", "vendorName": "mobilityhouse"}


@pytest.mark.parametrize("version", list(CASES))
def test_csms_calls_reach_a_2x_charge_point_and_its_replies_carry_the_action(e2e_gateway, responder, version):
    cid = CASES[version][1]
    calls = [
        ("GetVariables", {"getVariableData": [VARIABLE]}),
        ("SetVariables", {"setVariableData": [{"attributeValue": "300", **VARIABLE}]}),
        ("RequestStartTransaction", {"idToken": {"idToken": "04A2B3C4", "type": "ISO14443"}, "remoteStartId": 7}),
        ("Reset", {"type": "Immediate"}),
        ("TriggerMessage", {"requestedMessage": "Heartbeat"}),
        ("GetBaseReport", {"requestId": 2, "reportBase": "FullInventory"}),
    ]

    async def commanded(charge_point, call):
        await charge_point.call(call.BootNotification(
            charging_station={"model": "e2e", "vendor_name": "mobilityhouse"}, reason="PowerUp"))
        replies = [await asyncio.to_thread(responder.call, cid, action, payload, 15) for action, payload in calls]
        return replies, charge_point.asked

    replies, asked = asyncio.run(run_connected(e2e_gateway, version, commanded))

    assert asked == [action for action, _ in calls]
    for (action, _), reply in zip(calls, replies):
        assert (reply["MessageTypeId"], reply["Action"], reply["Protocol"]) == (3, action, version), reply
    assert replies[0]["Payload"]["getVariableResult"][0]["attributeValue"] == "300"
    assert all(reply["Payload"].get("status", "Accepted") == "Accepted" for reply in replies[2:])
