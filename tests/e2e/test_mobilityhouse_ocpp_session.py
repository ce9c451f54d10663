"""A charge point built with mobilityhouse `ocpp` (over `websockets`) talks to the reference backend through the
gateway: a whole charging session, then calls the CSMS makes to the charge point."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, RemoteStartStopStatus, ResetStatus

CID = "CP010"
ID_TAG = "TAG-PY"
BOOT = call.BootNotification(charge_point_model="e2e", charge_point_vendor="mobilityhouse")
SESSION_ACTIONS = [
    "BootNotification", "StatusNotification", "Authorize", "StartTransaction", "MeterValues", "StopTransaction",
    "Heartbeat",
]


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


class ChargePointUnderTest(ChargePoint):
    """Answers the three CSMS calls the tests make and remembers what it was asked."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.asked: list[tuple[str, dict]] = []

    @on(Action.remote_start_transaction)
    async def on_remote_start_transaction(self, id_tag, **optional):
        self.asked.append(("RemoteStartTransaction", {"id_tag": id_tag, **optional}))
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)

    @on(Action.reset)
    async def on_reset(self, type):  # noqa: A002 - the OCPP field is called `type`
        self.asked.append(("Reset", {"type": type}))
        return call_result.Reset(status=ResetStatus.accepted)

    @on(Action.get_configuration)
    async def on_get_configuration(self, key=None):
        self.asked.append(("GetConfiguration", {"key": key}))
        return call_result.GetConfiguration(
            configuration_key=[{"key": "HeartbeatInterval", "readonly": False, "value": "300"}], unknown_key=[]
        )


async def run_connected(gateway, scenario):
    """Connect CID to the gateway, run its message loop, and await `scenario(charge_point)`."""
    async with websockets.connect(
        gateway.ws_url(CID),
        subprotocols=["ocpp1.6"],
        additional_headers={"Authorization": gateway.auth_header(CID)},
        open_timeout=5,
    ) as connection:
        assert connection.subprotocol == "ocpp1.6"
        charge_point = ChargePointUnderTest(CID, connection, response_timeout=15)
        message_loop = asyncio.create_task(charge_point.start())
        try:
            return await scenario(charge_point)
        finally:
            message_loop.cancel()


async def charging_session(charge_point: ChargePointUnderTest) -> dict:
    responses = {
        "boot": await charge_point.call(BOOT),
        "status": await charge_point.call(
            call.StatusNotification(connector_id=1, error_code="NoError", status="Available")
        ),
        "authorize": await charge_point.call(call.Authorize(id_tag=ID_TAG)),
        "start": await charge_point.call(
            call.StartTransaction(connector_id=1, id_tag=ID_TAG, meter_start=0, timestamp=now())
        ),
    }
    transaction_id = responses["start"].transaction_id
    responses["meter"] = await charge_point.call(call.MeterValues(
        connector_id=1,
        transaction_id=transaction_id,
        meter_value=[{"timestamp": now(), "sampledValue": [{"value": "1500", "unit": "Wh"}]}],
    ))
    responses["stop"] = await charge_point.call(
        call.StopTransaction(meter_stop=1500, timestamp=now(), transaction_id=transaction_id, id_tag=ID_TAG)
    )
    responses["heartbeat"] = await charge_point.call(call.Heartbeat())
    return responses


def test_charging_session_is_answered_by_the_backend_through_the_gateway(e2e_gateway, responder):
    responses = asyncio.run(run_connected(e2e_gateway, charging_session))

    assert responses["boot"].status == "Accepted"
    assert responses["boot"].interval == 300
    assert responses["authorize"].id_tag_info == {"status": "Accepted"}
    assert responses["start"].id_tag_info == {"status": "Accepted"}
    assert isinstance(responses["start"].transaction_id, int)
    assert responses["stop"].id_tag_info == {"status": "Accepted"}
    assert responses["heartbeat"].current_time
    assert responder.actions(CID) == SESSION_ACTIONS

    start = responder.wait_for_call(CID, "StartTransaction")
    assert start["MessageTypeId"] == 2
    assert start["Payload"]["idTag"] == ID_TAG and start["Payload"]["connectorId"] == 1
    meter = responder.wait_for_call(CID, "MeterValues")
    assert meter["Payload"]["transactionId"] == responses["start"].transaction_id


def test_csms_calls_reach_the_charge_point_and_its_replies_carry_the_action(e2e_gateway, responder):
    def csms_call(action: str, payload: dict) -> dict:
        return responder.call(CID, action, payload, timeout=15)

    async def commanded(charge_point: ChargePointUnderTest) -> tuple[dict, list]:
        await charge_point.call(BOOT)
        replies = {
            "RemoteStartTransaction": await asyncio.to_thread(
                csms_call, "RemoteStartTransaction", {"idTag": ID_TAG, "connectorId": 1}
            ),
            "Reset": await asyncio.to_thread(csms_call, "Reset", {"type": "Soft"}),
            "GetConfiguration": await asyncio.to_thread(csms_call, "GetConfiguration", {"key": ["HeartbeatInterval"]}),
        }
        return replies, charge_point.asked

    replies, asked = asyncio.run(run_connected(e2e_gateway, commanded))

    assert asked == [
        ("RemoteStartTransaction", {"id_tag": ID_TAG, "connector_id": 1}),
        ("Reset", {"type": "Soft"}),
        ("GetConfiguration", {"key": ["HeartbeatInterval"]}),
    ]
    expected_payloads = {
        "RemoteStartTransaction": {"status": "Accepted"},
        "Reset": {"status": "Accepted"},
        "GetConfiguration": {
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}], "unknownKey": [],
        },
    }
    for action, reply in replies.items():
        assert reply["MessageTypeId"] == 3, reply
        assert reply["Action"] == action
        assert reply["Payload"] == expected_payloads[action]
    reply_topics = {r.topic for r in responder.received if r.envelope.get("MessageTypeId") == 3}
    assert reply_topics == {f"ocpp/cp/{CID}/Reply"}
