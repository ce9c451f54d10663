"""EMQX 4.x topic-addressed layout (ocpp.payload_format = bare), end to end with a real broker and CP."""

import asyncio
import json

import pytest
import websockets
from websockets.sync.client import connect as ws_connect
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result

from tests.integration._support import EMQX4


class Charger(ChargePoint):
    @on("Reset")
    async def on_reset(self, type, **_):
        return call_result.Reset(status="Accepted")


async def _session(gateway, probe, cid="CP001"):
    async with websockets.connect(gateway.ws_url(cid), subprotocols=["ocpp1.6"],
                                  additional_headers={"Authorization": gateway.auth_header(cid)}) as ws:
        charger = Charger(cid, ws, response_timeout=5)
        task = asyncio.create_task(charger.start())
        boot = asyncio.create_task(charger.call(call.BootNotification(
            charge_point_vendor="Vendor", charge_point_model="Model")))
        up = await asyncio.to_thread(probe.expect, f"ocpp/{cid}/up/request/BootNotification/+")
        assert up.json == {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
        unique_id = up.topic.rsplit("/", 1)[1]
        probe.publish(f"ocpp/{cid}/dn/response/BootNotification/{unique_id}",
                      {"status": "Accepted", "interval": 300, "currentTime": "2026-11-22T00:00:00Z"})
        result = await boot
        assert result.status == "Accepted" and result.interval == 300

        probe.publish(f"ocpp/{cid}/dn/request/Reset/r-1", {"type": "Soft"})
        reply = await asyncio.to_thread(probe.expect, f"ocpp/{cid}/up/response/Reset/r-1")
        assert reply.json == {"status": "Accepted"}
        task.cancel()


def test_emqx4_layout_carries_bare_payloads_both_ways(gateway_factory, mqtt_probe):
    gateway = gateway_factory(EMQX4)
    mqtt_probe.subscribe("ocpp/+/up/#")
    asyncio.run(_session(gateway, mqtt_probe))


@pytest.fixture
def bare_cp(gateway_factory, mqtt_probe):
    gateway = gateway_factory({**EMQX4, "ocpp.awaiting_timeout": "500ms"})
    mqtt_probe.subscribe("ocpp/+/up/#")
    mqtt_probe.subscribe("ocpp/events/#")
    with ws_connect(gateway.ws_url("CP002"), subprotocols=["ocpp1.6"], compression=None,
                    additional_headers={"Authorization": gateway.auth_header("CP002")}) as ws:
        mqtt_probe.expect_json("ocpp/events/CP002", {"event": "connected"})
        yield ws


def test_gateway_error_in_bare_mode_travels_on_the_error_topic(bare_cp, mqtt_probe):
    mqtt_probe.publish("ocpp/CP002/dn/request/GetConfiguration/g-1", {})
    assert json.loads(bare_cp.recv(timeout=5)) == [2, "g-1", "GetConfiguration", {}]
    error = mqtt_probe.expect("ocpp/CP002/up/error/GetConfiguration/g-1", timeout=5).json
    assert error["ErrorCode"] == "InternalError"
    assert error["ErrorDetails"]["origin"] == "ocpp_gw"
    assert error["ErrorDetails"]["reason"] == "timeout"


def test_cp_call_error_reply_in_bare_mode_is_the_error_object(bare_cp, mqtt_probe):
    mqtt_probe.publish("ocpp/CP002/dn/request/Reset/r-2", {"type": "Hard"})
    assert json.loads(bare_cp.recv(timeout=5))[1] == "r-2"
    bare_cp.send(json.dumps([4, "r-2", "NotSupported", "no hard resets", {"why": "policy"}]))
    error = mqtt_probe.expect("ocpp/CP002/up/error/Reset/r-2").json
    assert error == {"ErrorCode": "NotSupported", "ErrorDescription": "no hard resets",
                     "ErrorDetails": {"why": "policy"}}


def test_bare_payload_that_is_not_an_object_gets_invalid_envelope(bare_cp, mqtt_probe):
    mqtt_probe.publish("ocpp/CP002/dn/request/Reset/r-3", [1, 2, 3])
    error = mqtt_probe.expect("ocpp/CP002/up/error/Reset/r-3").json
    assert error["ErrorDetails"]["reason"] == "invalid_envelope"
