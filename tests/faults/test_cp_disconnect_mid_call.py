"""A charge point that disconnects mid-call (issue 6): the backend's calls it leaves behind are answered with gateway
error `disconnected`, and the backend's answer to a call of a charge point that has gone is logged and counted."""

from __future__ import annotations

import json

from tests.faults._support import counters, start_gateway
from tools.harness import json_matches, wait_until
from tests.integration._support import connect_cp, csms_marker, recv_frame, topics

RESET = {"type": "Soft"}


def test_the_call_out_and_the_calls_queued_when_the_cp_disconnects_are_answered_disconnected(gateway_factory,
                                                                                               mqtt_probe):
    gateway = start_gateway(gateway_factory, {"ocpp.awaiting_timeout": "30s"})
    cp008 = topics(gateway, "CP008")
    mqtt_probe.subscribe(f"{gateway.mountpoint}#")
    uids = ["out-1", "queued-2", "queued-3"]
    with connect_cp(gateway, "CP008") as cp:
        mqtt_probe.expect(cp008.event, json_matches({"event": "connected"}))
        for uid in uids:
            mqtt_probe.publish(cp008.dnstream, {"MessageTypeId": 2, "UniqueId": uid, "Action": "Reset",
                                                "Payload": RESET})
        assert recv_frame(cp) == [2, "out-1", "Reset", RESET]  # the others wait behind it
        csms_marker(mqtt_probe, gateway, "CP008")  # all three are in the pipe
    # The CP closed without answering.

    errors = [mqtt_probe.expect(cp008.error, json_matches({"UniqueId": uid})).json for uid in uids]
    assert [(e["MessageTypeId"], e["Action"], e["ErrorCode"], e["ErrorDetails"]["origin"],
             e["ErrorDetails"]["reason"]) for e in errors] == [(4, "Reset", "InternalError", "ocpp_gw",
                                                                "disconnected")] * 3


def test_the_backend_answer_to_a_cp_that_has_gone_is_logged_and_counted(gateway_factory, mqtt_probe):
    gateway = start_gateway(gateway_factory, {"ocpp.awaiting_timeout": "30s", "ocpp.dnstream.offline_hold": "1s"})
    cp009 = topics(gateway, "CP009")
    mqtt_probe.subscribe(f"{gateway.mountpoint}#")
    with connect_cp(gateway, "CP009") as cp:
        cp.send(json.dumps([2, "asked-then-gone", "Heartbeat", {}]))
        mqtt_probe.expect(cp009.call, json_matches({"UniqueId": "asked-then-gone"}))
    mqtt_probe.expect(cp009.event, json_matches({"event": "disconnected"}))
    before = counters(gateway)

    since = gateway.mark()
    mqtt_probe.publish(cp009.dnstream, {"MessageTypeId": 3, "UniqueId": "asked-then-gone",
                                        "Payload": {"currentTime": "2026-01-01T00:00:00Z"}})

    line = gateway.wait_for_log(r"\[CP009\] asked-then-gone .*(refused|dropped)", timeout=5, since=since)

    def grown() -> dict[str, int]:
        after = counters(gateway)
        return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}
    counted = lambda: any(name.startswith(("refused.", "dropped.")) for name in grown())
    assert wait_until(counted, timeout=5), (line, grown())
