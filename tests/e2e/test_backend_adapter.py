"""A central system written with the PyPI `ocpp` library, unchanged, served two ways: through the gateway by
`ocpp_gw.backend` (real gateway, real Mosquitto), and directly over websockets. The same scenario runs on both:
several real charge points (the `ocpp` library's v16 ChargePoint, npm ocpp-rpc in strict mode) each run a
charging session, the central system makes its own calls to each, then the charge points leave."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
from contextlib import asynccontextmanager
from datetime import datetime, timezone

import pytest
import websockets
from ocpp.routing import on
from ocpp.v16 import ChargePoint, call, call_result
from ocpp.v16.enums import Action, RemoteStartStopStatus, ResetStatus

import ocpp_gw.backend
from ocpp_lib_csms import CentralSystem
from tools.harness import OutputLines, free_port, password_for, stop_process

PYTHON_CPS = ["CP030", "CP031", "CP032"]
NODE_CP = "CP033"
SESSION_ACTIONS = ["BootNotification", "StatusNotification", "Authorize", "StartTransaction", "MeterValues",
                   "StopTransaction", "Heartbeat"]
CONFIGURATION = [{"key": "HeartbeatInterval", "readonly": False, "value": "300"}]


class RecordingCentralSystem(CentralSystem):
    """The example central system, plus a record of the calls that reached its handlers."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.handled: list[str] = []

    async def route_message(self, raw_msg):
        frame = json.loads(raw_msg)
        if frame[0] == 2:
            self.handled.append(frame[2])
        return await super().route_message(raw_msg)


class PythonChargePoint(ChargePoint):
    """The `ocpp` library's charge point side, answering the three calls the central system makes."""

    @on(Action.remote_start_transaction)
    async def on_remote_start_transaction(self, id_tag, **_):
        return call_result.RemoteStartTransaction(status=RemoteStartStopStatus.accepted)

    @on(Action.reset)
    async def on_reset(self, type):  # noqa: A002 - the OCPP field is called `type`
        return call_result.Reset(status=ResetStatus.accepted)

    @on(Action.get_configuration)
    async def on_get_configuration(self, key=None):
        return call_result.GetConfiguration(configuration_key=CONFIGURATION, unknown_key=[])


def now() -> str:
    return datetime.now(timezone.utc).isoformat()


async def charging_session(cp: ChargePoint) -> dict:
    answers = {"BootNotification": await cp.call(call.BootNotification(charge_point_model="e2e",
                                                                     charge_point_vendor="py")),
               "StatusNotification": await cp.call(call.StatusNotification(
                   connector_id=1, error_code="NoError", status="Available")),
               "Authorize": await cp.call(call.Authorize(id_tag="TAG")),
               "StartTransaction": await cp.call(call.StartTransaction(
                   connector_id=1, id_tag="TAG", meter_start=0, timestamp=now()))}
    transaction_id = answers["StartTransaction"].transaction_id
    answers["MeterValues"] = await cp.call(call.MeterValues(connector_id=1, transaction_id=transaction_id, meter_value=[
        {"timestamp": now(), "sampledValue": [{"value": "1500", "unit": "Wh"}]}]))
    answers["StopTransaction"] = await cp.call(call.StopTransaction(
        meter_stop=1500, timestamp=now(), transaction_id=transaction_id, id_tag="TAG"))
    answers["Heartbeat"] = await cp.call(call.Heartbeat())
    return answers


class NodeChargePoint:
    """tests/e2e/node/charge_point.js: a session, then it answers the central system until told to close."""

    def __init__(self, node_dir, endpoint: str, cid: str):
        self.process = subprocess.Popen([shutil.which("node"), "charge_point.js", endpoint, cid, password_for(cid)],
                                        cwd=node_dir, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True)
        self.output = OutputLines(self.process.stdout, f"node-{cid}")

    def event(self, name: str, timeout: float = 30.0) -> dict:
        def is_event(line: str) -> bool:
            return line.startswith("{") and json.loads(line).get("event") in (name, "error")
        line = self.output.wait_for_line(is_event, timeout)
        assert line is not None, f"no {name!r} event; output:\n{self.output.tail()}"
        event = json.loads(line)
        assert event["event"] == name, event
        return event

    def close(self) -> dict:
        self.process.stdin.write("close\n")
        self.process.stdin.flush()
        return self.event("closed")


async def wait_for(condition, timeout: float, what: str) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.02)


async def central_system_calls(central_system: ChargePoint) -> list:
    return [await central_system.call(call.RemoteStartTransaction(id_tag="TAG", connector_id=1)),
            await central_system.call(call.Reset(type="Soft")),
            await central_system.call(call.GetConfiguration(key=["HeartbeatInterval"]))]


async def python_cp(url: str, cid: str, headers: dict, central_systems: dict) -> tuple[dict, list]:
    async with websockets.connect(url, subprotocols=["ocpp1.6"], additional_headers=headers) as ws:
        cp = PythonChargePoint(cid, ws, response_timeout=15)
        loop_task = asyncio.create_task(cp.start())
        try:
            session = await charging_session(cp)
            await wait_for(lambda: cid in central_systems, 5, f"{cid} served")
            return session, await central_system_calls(central_systems[cid])
        finally:
            loop_task.cancel()
            await asyncio.gather(loop_task, return_exceptions=True)


async def scenario(serving, cp_url, node_endpoint, node_dir, headers) -> dict:
    """Run every charge point against the central system that `serving(handler)` serves; what each saw."""
    central_systems: dict[str, RecordingCentralSystem] = {}
    ended: dict[str, BaseException | None] = {}

    async def handler(connection, cid):
        central_system = RecordingCentralSystem(cid, connection, response_timeout=15)
        central_systems[cid] = central_system
        try:
            await central_system.start()
        except BaseException as exc:
            ended[cid] = exc
            raise

    async with serving(handler) as server:
        tasks_before = len(asyncio.all_tasks())
        node = NodeChargePoint(node_dir, node_endpoint, NODE_CP)
        try:
            results = await asyncio.gather(*(python_cp(cp_url(cid), cid, headers(cid), central_systems)
                                             for cid in PYTHON_CPS))
            node_session = (await asyncio.to_thread(node.event, "session"))["responses"]
            node_calls = await central_system_calls(central_systems[NODE_CP])
            node_closed = await asyncio.to_thread(node.close)
        finally:
            stop_process(node.process, timeout=5)
        every_cp = PYTHON_CPS + [NODE_CP]
        await wait_for(lambda: all(cid in ended for cid in every_cp), 10, "every start() ended")
        await wait_for(lambda: len(asyncio.all_tasks()) == tasks_before, 10, "no task left")
        return {"sessions": {cid: session for cid, (session, _) in zip(PYTHON_CPS, results)},
                "calls": {**{cid: calls for cid, (_, calls) in zip(PYTHON_CPS, results)}, NODE_CP: node_calls},
                "node_session": node_session, "node_closed": node_closed, "ended": ended,
                "handled": {cid: central_systems[cid].handled for cid in every_cp}, "server": server}


def check_scenario(seen: dict) -> None:
    for cid, session in seen["sessions"].items():
        assert session["BootNotification"].status == "Accepted" and session["BootNotification"].interval == 300
        assert session["StartTransaction"].id_tag_info == {"status": "Accepted"}
        assert session["Heartbeat"].current_time
    assert seen["node_session"]["BootNotification"]["status"] == "Accepted"
    assert seen["node_session"]["Authorize"] == {"idTagInfo": {"status": "Accepted"}}
    for cid, handled in seen["handled"].items():
        assert handled == SESSION_ACTIONS, cid
    for cid, (remote_start, reset, configuration) in seen["calls"].items():
        assert remote_start.status == "Accepted" and reset.status == "Accepted", cid
        assert configuration.configuration_key == CONFIGURATION, cid
    assert [h["action"] for h in seen["node_closed"]["handled"]] == ["RemoteStartTransaction", "Reset",
                                                                     "GetConfiguration"]
    for cid, exc in seen["ended"].items():
        assert isinstance(exc, websockets.exceptions.ConnectionClosed), (cid, exc)


def test_ocpp_library_csms_served_through_the_gateway_runs_full_sessions_with_several_charge_points(
        e2e_gateway, broker, node_modules):
    @asynccontextmanager
    async def through_gateway(handler):
        async with ocpp_gw.backend.Backend(handler, ocpp_gw.backend.BackendOptions(
                broker=f"{broker.host}:{broker.port}")) as backend:
            yield backend

    async def run():
        seen = await scenario(through_gateway, e2e_gateway.ws_url, e2e_gateway.ws_url("").rstrip("/"),
                              node_modules, lambda cid: {"Authorization": e2e_gateway.auth_header(cid)})
        assert seen["server"].connections == {}
        return seen

    check_scenario(asyncio.run(run()))


def test_the_same_csms_served_directly_over_websockets_passes_the_same_scenario(node_modules):
    port = free_port()

    @asynccontextmanager
    async def over_websockets(handler):
        async def on_websocket(websocket):
            await handler(websocket, websocket.request.path.rsplit("/", 1)[-1])
        async with websockets.serve(on_websocket, "127.0.0.1", port, subprotocols=["ocpp1.6"]) as server:
            yield server

    seen = asyncio.run(scenario(over_websockets, lambda cid: f"ws://127.0.0.1:{port}/ocpp/{cid}",
                                f"ws://127.0.0.1:{port}/ocpp", node_modules, lambda cid: {}))
    check_scenario(seen)


def test_the_example_picks_its_central_system_class_by_the_negotiated_subprotocol():
    from ocpp.v201 import ChargePoint as Station201
    from ocpp.v201 import call as call201

    from ocpp_lib_csms import on_connect
    port = free_port()

    async def run():
        async def on_websocket(websocket):
            await on_connect(websocket, websocket.request.path.rsplit("/", 1)[-1])
        async with websockets.serve(on_websocket, "127.0.0.1", port, subprotocols=["ocpp2.0.1", "ocpp1.6"]):
            async with websockets.connect(f"ws://127.0.0.1:{port}/CS201", subprotocols=["ocpp2.0.1"]) as ws:
                station = Station201("CS201", ws, response_timeout=5)
                loop_task = asyncio.create_task(station.start())
                try:
                    return ws.subprotocol, await station.call(call201.BootNotification(
                        charging_station={"model": "m", "vendor_name": "v"}, reason="PowerUp"))
                finally:
                    loop_task.cancel()

    subprotocol, boot = asyncio.run(run())
    assert subprotocol == "ocpp2.0.1" and boot.status == "Accepted" and boot.interval == 300
