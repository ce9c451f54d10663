"""ocpp_gw.backend against the real Mosquitto, with the test playing the gateway (its events and envelopes):
which handler runs when, what recv() yields in which order, what send() publishes, and that a CP's leaving
leaves no task behind."""

from __future__ import annotations

import asyncio
import json

from websockets.exceptions import ConnectionClosed

import ocpp_gw.backend
from tools.harness import MqttProbe
from tests.integration._support import unique_mountpoint


class Served:
    """A handler that records, per cid, each visit's subprotocol, the frames recv() yielded and how it ended."""

    def __init__(self, reply: bool = False):
        self.visits: list[dict] = []
        self.reply = reply

    async def __call__(self, connection, cid):
        visit = {"cid": cid, "subprotocol": connection.subprotocol, "frames": [], "ended": None}
        self.visits.append(visit)
        try:
            while True:
                frame = await connection.recv()
                visit["frames"].append(json.loads(frame))
                if self.reply and frame.startswith("[2"):
                    await connection.send(json.dumps([3, json.loads(frame)[1], {"seen": cid}]))
        except ConnectionClosed as exc:
            visit["ended"] = exc
            raise

    def of(self, cid: str) -> list[dict]:
        return [visit for visit in self.visits if visit["cid"] == cid]


def event(cid: str, kind: str, subprotocol: str = "ocpp1.6", gateway: str = "gw-a", reason: str = "") -> dict:
    return {"cid": cid, "event": kind, "reason": reason, "peer": "127.0.0.1:1", "username": cid,
            "subprotocol": subprotocol, "gateway": gateway, "ts": "2026-12-04T18:00:00.000Z"}


def call(unique_id: str, action: str = "Heartbeat", **extra) -> dict:
    return {"MessageTypeId": 2, "UniqueId": unique_id, "Action": action, "Payload": {}, **extra}


async def until(condition, what: str, timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.01)


def run(broker, body, served: Served):
    """Run `body(backend, probe, mountpoint)` with an adapter serving `served` on a mountpoint of its own."""
    mountpoint = unique_mountpoint()

    async def main():
        options = ocpp_gw.backend.BackendOptions(broker=f"{broker.host}:{broker.port}", mountpoint=mountpoint)
        with MqttProbe(broker.host, broker.port) as probe:
            async with ocpp_gw.backend.Backend(served, options) as backend:
                return await body(backend, probe, mountpoint)

    return asyncio.run(main())


def test_frames_of_several_cps_arrive_in_order_each_in_its_own_handler(broker):
    served = Served()
    cids = ["A1", "A2", "A3"]

    async def body(backend, probe, mp):
        for cid in cids:
            await asyncio.to_thread(probe.publish, f"{mp}events/{cid}", event(cid, "connected"))
        for n in range(40):
            for cid in cids:
                probe.client.publish(f"{mp}cp/{cid}", json.dumps(call(f"{cid}-{n}")), qos=1)
        await until(lambda: sum(len(v["frames"]) for v in served.visits) == 120, "every frame received")

    run(broker, body, served)
    for cid in cids:
        (visit,) = served.of(cid)
        assert [frame[1] for frame in visit["frames"]] == [f"{cid}-{n}" for n in range(40)]
        assert visit["frames"][0] == [2, f"{cid}-0", "Heartbeat", {}]


def test_send_publishes_the_frame_as_an_envelope_on_the_cps_downstream_topic_with_the_action_merged(broker):
    served = Served(reply=True)

    async def body(backend, probe, mp):
        await asyncio.to_thread(probe.subscribe, f"{mp}cs/#")
        await asyncio.to_thread(probe.publish, f"{mp}cp/B1", call("b-1", "BootNotification"))
        return await asyncio.to_thread(probe.expect_json, f"{mp}cs/B1")

    reply = run(broker, body, served)
    assert reply == {"MessageTypeId": 3, "UniqueId": "b-1", "Action": "BootNotification", "Payload": {"seen": "B1"}}


def test_a_disconnect_ends_recv_after_the_frames_already_received_and_leaves_no_task(broker):
    served = Served()

    async def body(backend, probe, mp):
        tasks_before = len(asyncio.all_tasks())
        await asyncio.to_thread(probe.publish, f"{mp}events/C1", event("C1", "connected"))
        await asyncio.to_thread(probe.publish, f"{mp}cp/C1", call("c-1"))
        await asyncio.to_thread(probe.publish, f"{mp}events/C1", event("C1", "disconnected", reason="closed"))
        await until(lambda: served.of("C1") and served.of("C1")[0]["ended"] is not None, "recv() raised")
        await until(lambda: len(asyncio.all_tasks()) == tasks_before, "the handler task gone")
        return backend.connections

    connections = run(broker, body, served)
    (visit,) = served.of("C1")
    assert [frame[1] for frame in visit["frames"]] == ["c-1"]
    assert visit["ended"].rcvd.reason == "closed"
    assert connections == {}


def test_the_version_comes_from_the_connected_event_else_the_envelope_protocol_else_ocpp16(broker):
    served = Served()

    async def body(backend, probe, mp):
        await asyncio.to_thread(probe.publish, f"{mp}events/D1", event("D1", "connected", subprotocol="ocpp2.0.1"))
        await asyncio.to_thread(probe.publish, f"{mp}cp/D2", call("d-2", Protocol="ocpp2.1"))
        await asyncio.to_thread(probe.publish, f"{mp}cp/D3", call("d-3"))
        await until(lambda: len(served.visits) == 3, "three handlers")

    run(broker, body, served)
    assert {v["cid"]: v["subprotocol"] for v in served.visits} == {"D1": "ocpp2.0.1", "D2": "ocpp2.1",
                                                                  "D3": "ocpp1.6"}


def test_a_cp_that_moved_to_another_gateway_is_not_ended_by_the_old_gateways_late_disconnect(broker):
    served = Served()

    async def body(backend, probe, mp):
        await asyncio.to_thread(probe.publish, f"{mp}events/E1", event("E1", "connected", gateway="gw-a"))
        await asyncio.to_thread(probe.publish, f"{mp}events/E1", event("E1", "connected", gateway="gw-b"))
        await asyncio.to_thread(probe.publish, f"{mp}events/E1", event("E1", "disconnected", gateway="gw-a"))
        await asyncio.to_thread(probe.publish, f"{mp}cp/E1", call("e-1"))
        await until(lambda: len(served.of("E1")) == 2 and served.of("E1")[1]["frames"], "frame on the new visit")
        first, second = served.of("E1")
        assert first["ended"] is not None and second["ended"] is None
        # the gateway serving it goes offline (its MQTT will): that ends the visit
        await asyncio.to_thread(probe.publish, f"{mp}gateway/gw-b/status", "offline")
        await until(lambda: served.of("E1")[1]["ended"] is not None, "ended by the gateway's will")

    run(broker, body, served)


def test_a_connected_event_left_retained_by_a_gateway_that_has_gone_offline_starts_no_handler(broker):
    served = Served()
    mountpoint = unique_mountpoint()
    with MqttProbe(broker.host, broker.port) as probe:
        probe.publish(f"{mountpoint}events/F1", event("F1", "connected", gateway="gw-dead"), retain=True)
        probe.publish(f"{mountpoint}gateway/gw-dead/status", "offline", retain=True)
        probe.publish(f"{mountpoint}events/F2", event("F2", "connected", gateway="gw-live"), retain=True)
        probe.publish(f"{mountpoint}gateway/gw-live/status", "online", retain=True)

    async def main():
        options = ocpp_gw.backend.BackendOptions(broker=f"{broker.host}:{broker.port}", mountpoint=mountpoint)
        async with ocpp_gw.backend.Backend(served, options) as backend:
            await until(lambda: served.of("F2"), "the live gateway's CP served")
            return sorted(backend.connections)

    assert asyncio.run(main()) == ["F2"]
    assert served.of("F1") == []
