"""Takeover between two gateway instances on one broker (Mosquitto, then RabbitMQ) when the old
connection is half-open: the charge point's line to instance A went dead without a close, and it
connects again to instance B."""

from __future__ import annotations

import uuid

from tests.cluster._support import RawChargePoint, csms_call
from tools.harness import json_matches
from tests.integration._support import (
    answered_marker,
    connect_cp,
    csms_marker,
    recv_frame,
)

CID = "CP002"
# Long enough that nothing in the test times out; a short offline hold so that a call the old
# instance wrongly kept would be answered `offline` while the test still watches.
SETTINGS = {"ocpp.awaiting_timeout": "30s", "ocpp.idle_timeout": "30s", "ocpp.dnstream.offline_hold": "1s"}
BOOT = {"chargePointVendor": "v", "chargePointModel": "m"}
QUEUED = ("queued-1", "queued-2")


def is_gateway_error(message) -> bool:
    body = message.json
    return body.get("MessageTypeId") == 4 and (body.get("ErrorDetails") or {}).get("origin") == "ocpp_gw"


class TakeoverScene:
    """Instance `old` holds CID on a socket that then goes dead, with two CSMS calls queued behind an
    open BootNotification; the charge point connects again to instance `new`."""

    def __init__(self, gateway_factory, probe, broker):
        mountpoint = f"to-{uuid.uuid4().hex[:8]}/"
        settings = {**SETTINGS, "ocpp.mountpoint": mountpoint}
        self.old = gateway_factory(settings, broker=broker)
        self.new = gateway_factory(settings, broker=broker)
        self.probe = probe
        self.events, self.downstream = f"{mountpoint}events/{CID}", f"{mountpoint}cs/{CID}"
        self.replies = f"{mountpoint}cp/{CID}/Reply"
        probe.subscribe(f"{mountpoint}#")

        self.frozen = RawChargePoint("127.0.0.1", self.old.port, f"/ocpp/{CID}", self.old.auth_header(CID))
        assert probe.expect_json(self.events, {"event": "connected"})["gateway"] == self.old.client_id
        # A call of the charge point the CSMS leaves open: the CSMS's calls queue behind it.
        self.frozen.send_text([2, "boot-1", "BootNotification", BOOT])
        probe.expect(f"{mountpoint}cp/{CID}", json_matches({"UniqueId": "boot-1"}))
        for unique_id in QUEUED:
            probe.publish(self.downstream, csms_call(unique_id))
        csms_marker(probe, self.old, CID)  # both are in the old instance's queue now
        # From here on the old socket is neither read nor written: the line is dead, no close was seen.

    def reconnect_to_new(self):
        """The charge point connects to `new`; returns once `old` has handed its calls over."""
        since = self.old.mark()
        charge_point = connect_cp(self.new, CID)
        assert self.probe.expect_json(self.events, {"event": "connected"})["gateway"] == self.new.client_id
        self.left = self.probe.expect_json(self.events, {"event": "disconnected"})
        self.old.wait_for_log(r"2 CSMS call\(s\) handed to", since=since)
        return charge_point

    def serve_handed_over_calls(self, charge_point) -> list[str]:
        delivered = []
        for _ in QUEUED:
            call = recv_frame(charge_point)
            delivered.append(call[1])
            charge_point.send(f'[3,"{call[1]}",{{"configurationKey":[]}}]')
        for unique_id in delivered:
            assert self.probe.expect_json(self.replies, {"UniqueId": unique_id})["MessageTypeId"] == 3
        return delivered


def test_half_open_connection_is_closed_and_its_queued_calls_follow_the_charge_point(
        gateway_factory, probe_on, any_broker):
    scene = TakeoverScene(gateway_factory, probe_on(any_broker), any_broker)
    old, new = scene.old, scene.new
    with scene.reconnect_to_new() as charge_point:
        assert scene.left["gateway"] == old.client_id
        assert scene.left["reason"] == f"taken over by {new.client_id}"
        assert scene.serve_handed_over_calls(charge_point) == list(QUEUED)
        assert answered_marker(charge_point) == []  # nothing delivered twice

        # The old instance's `disconnected` (seen above) did not replace the retained state.
        retained = probe_on(any_broker).subscribe(scene.events).expect(scene.events)
        assert retained.retain
        assert (retained.json["event"], retained.json["gateway"]) == ("connected", new.client_id)

    texts, close = scene.frozen.frames_until_close()
    assert texts == []  # the queued calls never went out on the dead line
    assert (close.close_code, close.close_reason) == (1000, f"taken over by {new.client_id}")
    scene.frozen.close()


def test_old_instance_gives_no_gateway_error_for_calls_it_handed_over(gateway_factory, probe_on, any_broker):
    scene = TakeoverScene(gateway_factory, probe_on(any_broker), any_broker)
    mqtt_probe = scene.probe
    with scene.reconnect_to_new() as charge_point:
        scene.serve_handed_over_calls(charge_point)
        # The CSMS got the charge point's answers; no instance may also answer them `offline` (the
        # old instance's hold is 1 s, so such an answer would come within the wait).
        mqtt_probe.expect_none(scene.replies, is_gateway_error, within=2.0)
    scene.frozen.close()
