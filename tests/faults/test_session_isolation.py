"""Isolation (issue 6): an exception while handling one charge point is logged with its traceback, closes only that
connection, and the threads and sockets of that connection are released.

The fault is injected: `injected/sitecustomize.py`, loaded by that gateway process alone, makes one charge point's
pipe raise when it handles a frame. (The real trigger this test once used, a BootNotification `interval` too large
for a float, is fixed; `test_an_absurd_heartbeat_interval_from_the_csms_keeps_the_cp_connected` keeps it fixed.)"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.faults._support import resources, settle_resources, start_gateway
from tools.harness import json_matches
from tests.integration._support import EMQX4, connect_cp, recv_frame, topics, wait_closed

BOOT = {"chargePointVendor": "Vendor", "chargePointModel": "Model"}
HEARTBEAT_REPLY = {"currentTime": "2026-01-01T00:00:00Z"}


def test_an_exception_in_one_session_closes_only_that_connection_and_releases_its_threads_and_sockets(
        gateway_factory, mqtt_probe):
    gateway = start_gateway(gateway_factory, start=False)
    gateway.python_path.append(Path(__file__).parent / "injected")
    gateway.env["OCPP_GW_FAULT_CID"] = "CP011"
    gateway.start()
    bystander_topics = topics(gateway, "CP010")
    mqtt_probe.subscribe(f"{gateway.mountpoint}cp/#")
    idle = resources(gateway.process.pid)

    with connect_cp(gateway, "CP010") as bystander, connect_cp(gateway, "CP011") as victim:
        since = gateway.mark()
        victim.send(json.dumps([2, "boot-1", "BootNotification", BOOT]))

        assert wait_closed(victim).code == 1011
        gateway.wait_for_log(r"ERROR .*\[CP011\] session failed", since=since)
        gateway.wait_for_log(r"^Traceback", since=since)
        gateway.wait_for_log(r"RuntimeError: fault injected for CP011", since=since)

        bystander.send(json.dumps([2, "still-served", "Heartbeat", {}]))
        mqtt_probe.expect(bystander_topics.call, json_matches({"UniqueId": "still-served"}))
        mqtt_probe.publish(bystander_topics.dnstream, {"MessageTypeId": 3, "UniqueId": "still-served",
                                                        "Payload": HEARTBEAT_REPLY})
        assert recv_frame(bystander) == [3, "still-served", HEARTBEAT_REPLY]

    assert settle_resources(gateway.process.pid, idle) == idle


@pytest.mark.parametrize("interval", [3_000_000, 10**400], ids=["35 days", "10**400"])
def test_an_absurd_heartbeat_interval_from_the_csms_keeps_the_cp_connected(gateway_factory, mqtt_probe, interval):
    # 3,000,000 s (35 days) made the keepalive wait longer than poll() takes; 10**400 is more than a float holds.
    gateway = start_gateway(gateway_factory)
    cp_topics = topics(gateway, "CP013")
    mqtt_probe.subscribe(f"{gateway.mountpoint}cp/#")
    with connect_cp(gateway, "CP013") as cp:
        cp.send(json.dumps([2, "boot-1", "BootNotification", BOOT]))
        mqtt_probe.expect(cp_topics.call, json_matches({"UniqueId": "boot-1"}))
        accepted = {"status": "Accepted", "currentTime": "2026-01-01T00:00:00Z", "interval": interval}
        mqtt_probe.publish(cp_topics.dnstream, {"MessageTypeId": 3, "UniqueId": "boot-1", "Payload": accepted})
        assert recv_frame(cp) == [3, "boot-1", accepted]

        cp.send(json.dumps([2, "hb-1", "Heartbeat", {}]))
        mqtt_probe.expect(cp_topics.call, json_matches({"UniqueId": "hb-1"}))
        mqtt_probe.publish(cp_topics.dnstream, {"MessageTypeId": 3, "UniqueId": "hb-1", "Payload": HEARTBEAT_REPLY})
        assert recv_frame(cp) == [3, "hb-1", HEARTBEAT_REPLY]
    assert not [line for line in gateway.logs if "session failed" in line or "Traceback" in line]


def test_a_unique_id_that_cannot_be_a_topic_level_is_refused_with_a_call_error(gateway_factory):
    # `+` and `#` make paho raise; `/` adds topic levels, so the backend reads another id and its answer, sent to
    # a topic the gateway's subscription does not match, never arrives.
    gateway = start_gateway(gateway_factory, EMQX4)
    with connect_cp(gateway, "CP012") as cp:
        for unique_id in ("a+b", "a#", "a/b"):
            cp.send(json.dumps([2, unique_id, "Heartbeat", {}]))
            assert recv_frame(cp)[:2] == [4, unique_id]  # refused, and the connection stays open
