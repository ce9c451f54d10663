"""Gateway restart (issue 6): what the backend publishes while the gateway is dead waits in its persistent MQTT
session; a charge point back within ocpp.dnstream.offline_hold gets it, one that stays away is answered offline."""

from __future__ import annotations

import json

from tests.faults._support import persistent_backend, start_gateway
from tools.harness import json_matches
from tests.integration._support import connect_cp, recv_frame, topics, wait_closed

RESET = {"type": "Soft"}


def kill_with_cp_connected(gateway, backend, cid: str) -> None:
    """Connect `cid` (so the gateway's session subscribes to its topic), then SIGKILL the gateway under it."""
    with connect_cp(gateway, cid) as cp:
        backend.expect(topics(gateway, cid).event, json_matches({"event": "connected"}))
        gateway.kill()
        assert wait_closed(cp).code in (None, 1006)  # the connection just dies


def test_a_call_published_while_the_gateway_was_dead_reaches_the_cp_that_comes_back_within_the_hold(
        private_broker, gateway_factory):
    # A held call lasts no longer than ocpp.awaiting_timeout: long enough here for the restart.
    gateway = start_gateway(gateway_factory, {"ocpp.dnstream.offline_hold": "30s", "ocpp.awaiting_timeout": "30s"},
                            broker=private_broker)
    cp006 = topics(gateway, "CP006")
    with persistent_backend(private_broker) as backend:
        backend.subscribe(f"{gateway.mountpoint}#")
        kill_with_cp_connected(gateway, backend, "CP006")

        backend.publish(cp006.dnstream, {"MessageTypeId": 2, "UniqueId": "while-dead", "Action": "Reset",
                                         "Payload": RESET})
        gateway.start()  # same config: same mqtt.client_id, same persistent session
        gateway.wait_for_log(r"MQTT connected .*session present: True")
        with connect_cp(gateway, "CP006") as cp:
            assert recv_frame(cp) == [2, "while-dead", "Reset", RESET]
            cp.send(json.dumps([3, "while-dead", {"status": "Accepted"}]))
            reply = backend.expect(cp006.reply, json_matches({"UniqueId": "while-dead"})).json

    assert reply == {"MessageTypeId": 3, "UniqueId": "while-dead", "Action": "Reset",
                     "Payload": {"status": "Accepted"}, "Protocol": "ocpp1.6"}


def test_a_call_for_a_cp_that_does_not_come_back_is_answered_offline_when_the_hold_ends(
        private_broker, gateway_factory):
    gateway = start_gateway(gateway_factory, {"ocpp.dnstream.offline_hold": "1s"}, broker=private_broker)
    cp007 = topics(gateway, "CP007")
    with persistent_backend(private_broker) as backend:
        backend.subscribe(f"{gateway.mountpoint}#")
        kill_with_cp_connected(gateway, backend, "CP007")

        backend.publish(cp007.dnstream, {"MessageTypeId": 2, "UniqueId": "never-back", "Action": "Reset",
                                         "Payload": RESET})
        gateway.start()
        error = backend.expect(cp007.error, json_matches({"UniqueId": "never-back"}), timeout=10).json

    assert error["MessageTypeId"] == 4 and error["Action"] == "Reset"
    assert error["ErrorDetails"]["origin"] == "ocpp_gw" and error["ErrorDetails"]["reason"] == "offline"
    assert "within 1s" in error["ErrorDescription"], error
