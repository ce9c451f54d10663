"""SPEC §6 through the real gateway and Mosquitto: envelopes, topics, events, the will, gateway errors."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from tools.harness import MqttProbe, json_matches
from tests.integration._support import (
    answered_marker,
    connect_cp,
    connected_event,
    csms_marker,
    recv_frame,
    recv_text,
    status_topic,
    topics,
    unique_mountpoint,
)

BOOT_PAYLOAD = {"chargePointVendor": "VendorX", "chargePointModel": "ModelY"}
BOOT_ACCEPTED = {"status": "Accepted", "currentTime": "2024-01-01T00:00:00Z", "interval": 60}


def retained(broker, topic: str, timeout: float = 5.0):
    """What a newcomer subscribing to `topic` gets from the broker's retained store. Call it once the
    message is known to have reached the broker (a subscriber saw it): else it may arrive live."""
    with MqttProbe(broker.host, broker.port) as newcomer:
        message = newcomer.subscribe(topic).expect(topic, timeout=timeout)
    assert message.retain, f"not retained: {message!r}"
    return message


@pytest.fixture(scope="module")
def mqtt_gw(module_start):
    return module_start({"ocpp.dnstream.offline_hold": "0s"})


# -- envelopes ----------------------------------------------------------------------------------

def test_default_topics_and_envelope_both_ways(start, watch):
    gw = start({"ocpp.mountpoint": "ocpp/"})
    probe, cid = watch(gw), "CP050"
    with connect_cp(gw, cid) as cp:
        cp.send('[2,"u1","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"ModelY"}]')
        up = probe.expect(f"ocpp/cp/{cid}", json_matches({"UniqueId": "u1"}))
        assert up.json == {"MessageTypeId": 2, "Protocol": "ocpp1.6", "UniqueId": "u1", "Action": "BootNotification",
                           "Payload": BOOT_PAYLOAD}
        assert up.qos == 1 and not up.retain

        probe.publish(f"ocpp/cs/{cid}", {"MessageTypeId": 3, "UniqueId": "u1", "Payload": BOOT_ACCEPTED})
        assert recv_text(cp) == \
            '[3,"u1",{"status":"Accepted","currentTime":"2024-01-01T00:00:00Z","interval":60}]'

        probe.publish(f"ocpp/cs/{cid}", {"MessageTypeId": 2, "UniqueId": "g1", "Action": "GetConfiguration",
                                          "Payload": {"key": ["HeartbeatInterval"]}})
        assert recv_text(cp) == '[2,"g1","GetConfiguration",{"key":["HeartbeatInterval"]}]'
        cp.send('[3,"g1",{"configurationKey":[{"key":"HeartbeatInterval","readonly":false,"value":"60"}]}]')
        assert probe.expect_json(f"ocpp/cp/{cid}/Reply", {"UniqueId": "g1"}) == {
            "MessageTypeId": 3, "Protocol": "ocpp1.6", "UniqueId": "g1", "Action": "GetConfiguration",
            "Payload": {"configurationKey": [{"key": "HeartbeatInterval", "readonly": False, "value": "60"}]}}

        probe.publish(f"ocpp/cs/{cid}", {"MessageTypeId": 2, "UniqueId": "x1", "Action": "UnlockConnector",
                                          "Payload": {"connectorId": 1}})
        assert recv_frame(cp) == [2, "x1", "UnlockConnector", {"connectorId": 1}]
        cp.send('[4,"x1","NotSupported","no lock",{}]')
        assert probe.expect_json(f"ocpp/cp/{cid}/Reply", {"UniqueId": "x1"}) == {
            "MessageTypeId": 4, "Protocol": "ocpp1.6", "UniqueId": "x1", "Action": "UnlockConnector", "ErrorCode": "NotSupported",
            "ErrorDescription": "no lock", "ErrorDetails": {}}

        cp.send('[2,"a1","Authorize",{"idTag":"T1"}]')
        probe.expect_json(f"ocpp/cp/{cid}", {"UniqueId": "a1"})
        probe.publish(f"ocpp/cs/{cid}", {"MessageTypeId": 4, "UniqueId": "a1", "ErrorCode": "InternalError",
                                          "ErrorDescription": "backend down", "ErrorDetails": {"retry": True}})
        assert recv_frame(cp) == [4, "a1", "InternalError", "backend down", {"retry": True}]


@pytest.fixture(scope="module")
def custom_topics_gw(module_start):
    return module_start({"ocpp.mountpoint": f"site-{unique_mountpoint()}7/",
                         "ocpp.upstream.topic.BootNotification": "cp/${cid}/Notify/${action}",
                         "ocpp.upstream.error_topic": "cp/${cid}/Err/${type}"})


def test_per_action_topic_override_and_own_error_topic(custom_topics_gw, watch):
    gw = custom_topics_gw
    probe, cid = watch(gw), "CP001"
    mp = gw.mountpoint
    with connect_cp(gw, cid) as cp:
        cp.send('[2,"b1","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"ModelY"}]')
        assert probe.expect(f"{mp}cp/#", json_matches({"UniqueId": "b1"})).topic == \
            f"{mp}cp/{cid}/Notify/BootNotification"
        cp.send('[2,"h1","Heartbeat",{}]')
        assert probe.expect(f"{mp}cp/#", json_matches({"UniqueId": "h1"})).topic == f"{mp}cp/{cid}"
        probe.publish(f"{mp}cs/{cid}", {"MessageTypeId": 2, "UniqueId": "bad-1", "Action": "Reset"})
        assert probe.expect(f"{mp}cp/#", json_matches({"UniqueId": "bad-1"})).topic == f"{mp}cp/{cid}/Err/error"


def test_mountpoint_prefixes_every_topic(custom_topics_gw, mqtt_probe):
    gw = custom_topics_gw
    mountpoint, cid = gw.mountpoint, "CP002"
    assert mountpoint.count("/") == 2  # a nested one: "site-…/7/"
    probe = mqtt_probe.subscribe(f"{mountpoint}#").subscribe("ocpp/#")
    assert probe.expect(f"{mountpoint}gateway/{gw.client_id}/status").payload == b"online"
    with connect_cp(gw, cid) as cp:
        assert probe.expect_json(f"{mountpoint}events/{cid}")["event"] == "connected"
        cp.send('[2,"m1","Heartbeat",{}]')
        assert probe.expect_json(f"{mountpoint}cp/{cid}")["UniqueId"] == "m1"
        probe.publish(f"{mountpoint}cs/{cid}", {"MessageTypeId": 3, "UniqueId": "m1",
                                               "Payload": {"currentTime": "2024-01-01T00:00:00Z"}})
        assert recv_frame(cp) == [3, "m1", {"currentTime": "2024-01-01T00:00:00Z"}]
    probe.expect_json(f"{mountpoint}events/{cid}", {"event": "disconnected"})
    assert [m for m in probe.drain() if m.topic.startswith("ocpp/") and not m.retain] == []


# -- events and the gateway's status ------------------------------------------------------------

ISO_MILLIS_UTC = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def check_event(body: dict, gw, cid: str, event: str, reason: str, peer: str, started: datetime,
                code: int | None = None) -> None:
    fields = {"cid", "event", "reason", "peer", "username", "subprotocol", "version", "gateway", "ts"}
    assert set(body) == (fields if code is None else fields | {"code"})
    expected = {"cid": cid, "event": event, "reason": reason, "peer": peer, "username": cid,
                "subprotocol": "ocpp1.6", "version": "ocpp1.6", "gateway": gw.client_id}
    if code is not None:
        expected["code"] = code
    assert {key: value for key, value in body.items() if key != "ts"} == expected
    assert ISO_MILLIS_UTC.fullmatch(body["ts"]), body["ts"]
    stamp = datetime.strptime(body["ts"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert started - timedelta(seconds=1) <= stamp <= datetime.now(UTC) + timedelta(seconds=1)


def test_connect_and_disconnect_events_are_retained_with_every_field(mqtt_gw, watch, broker):
    probe, cid = watch(mqtt_gw), "CP003"
    event_topic = topics(mqtt_gw, cid).event
    started = datetime.now(UTC)
    with connect_cp(mqtt_gw, cid) as cp:
        peer = "{}:{}".format(*cp.local_address[:2])
        probe.expect_json(event_topic, {"event": "connected"})
        message = retained(broker, event_topic)
        assert message.qos == 1
        check_event(message.json, mqtt_gw, cid, "connected", "", peer, started)
    probe.expect_json(event_topic, {"event": "disconnected"})
    message = retained(broker, event_topic)
    assert message.qos == 1
    check_event(message.json, mqtt_gw, cid, "disconnected", "closed by charge point (code 1000)", peer, started,
                code=1000)


def test_status_topic_is_online_while_running_and_offline_after_sigterm(start, broker, watch):
    gw = start()
    probe = watch(gw)
    assert probe.expect(status_topic(gw)).payload == b"online"
    assert retained(broker, status_topic(gw)).payload == b"online"
    gw.stop()
    assert probe.expect(status_topic(gw)).payload == b"offline"
    assert retained(broker, status_topic(gw)).payload == b"offline"


def test_will_marks_the_gateway_offline_when_it_dies(start, broker):
    gw = start()
    with MqttProbe(broker.host, broker.port) as probe:
        probe.subscribe(status_topic(gw))
        assert probe.expect(status_topic(gw)).payload == b"online"
        gw.kill()
        assert probe.expect(status_topic(gw), timeout=5).payload == b"offline"
    assert retained(broker, status_topic(gw)).payload == b"offline"


# -- gateway errors -----------------------------------------------------------------------------

@pytest.mark.parametrize("cid, payload, description", [
    ("CP004", {"MessageTypeId": 2, "UniqueId": "bad-1", "Action": "Reset"},
     "Payload must be a JSON object, not missing"),
    ("CP005", {"MessageTypeId": 5, "UniqueId": "bad-1", "Action": "Reset", "Payload": {}},
     "MessageTypeId must be 2, 3 or 4, not 5"),
    ("CP006", {"MessageTypeId": 2, "UniqueId": "bad-1", "Action": "Re/set", "Payload": {}},
     "Action 'Re/set' must be letters and digits, starting with a letter"),
    ("CP007", {"MessageTypeId": 2, "UniqueId": "bad-1", "Action": "Reset", "Payload": []},
     "Payload must be a JSON object, not array"),
    ("CP008", '{"MessageTypeId":2,"UniqueId":"bad-1","Action":', None),
])
def test_invalid_downstream_envelope_gets_gateway_error_with_its_unique_id(mqtt_gw, watch, cid, payload, description):
    probe = watch(mqtt_gw)
    tp = topics(mqtt_gw, cid)
    with connect_cp(mqtt_gw, cid) as cp:
        connected_event(probe, mqtt_gw, cid)
        probe.publish(tp.dnstream, payload)
        error = probe.expect_json(tp.error, {"UniqueId": "bad-1"})
        assert answered_marker(cp) == []  # the CP got nothing
    error.pop("Action", None)  # the envelope was not read: its Action may or may not be known
    assert {key: value for key, value in error.items() if key != "ErrorDescription"} == {
        "MessageTypeId": 4, "Protocol": "ocpp1.6", "UniqueId": "bad-1", "ErrorCode": "FormationViolation",
        "ErrorDetails": {"origin": "ocpp_gw", "reason": "invalid_envelope"}}
    if description is None:
        assert error["ErrorDescription"].startswith("envelope: not valid JSON")
    else:
        assert error["ErrorDescription"] == description


def test_invalid_envelope_without_a_unique_id_is_logged_not_answered(mqtt_gw, watch):
    probe, cid = watch(mqtt_gw), "CP009"
    tp = topics(mqtt_gw, cid)
    since = mqtt_gw.mark()
    with connect_cp(mqtt_gw, cid) as cp:
        connected_event(probe, mqtt_gw, cid)
        probe.publish(tp.dnstream, {"MessageTypeId": 2, "Action": "Reset", "Payload": {}})
        mqtt_gw.wait_for_log(rf"\[{cid}\] - downstream message refused \(invalid_envelope\): UniqueId missing",
                             since=since)
        csms_marker(probe, mqtt_gw, cid)
        assert answered_marker(cp) == []
    assert [m for m in probe.drain() if m.topic == tp.error and m.json["MessageTypeId"] == 4] == []


def test_csms_reply_matching_nothing_is_dropped_and_logged(mqtt_gw, watch):
    probe, cid = watch(mqtt_gw), "CP010"
    tp = topics(mqtt_gw, cid)
    since = mqtt_gw.mark()
    with connect_cp(mqtt_gw, cid) as cp:
        connected_event(probe, mqtt_gw, cid)
        probe.publish(tp.dnstream, {"MessageTypeId": 3, "UniqueId": "nomatch", "Payload": {}})
        probe.publish(tp.dnstream, {"MessageTypeId": 4, "UniqueId": "nomatch-2", "ErrorCode": "GenericError",
                                    "ErrorDescription": "", "ErrorDetails": {}})
        mqtt_gw.wait_for_log(rf"\[{cid}\] nomatch dropped CSMS reply: it matches no open call of the CP",
                             since=since)
        mqtt_gw.wait_for_log(rf"\[{cid}\] nomatch-2 dropped CSMS reply", since=since)
        assert answered_marker(cp) == []
    assert [m for m in probe.drain() if m.topic == tp.error and m.json["MessageTypeId"] == 4] == []


@pytest.fixture(scope="module")
def hold_gw(module_start):
    return module_start({"ocpp.dnstream.offline_hold": "1s"})


def test_call_for_a_cp_that_did_not_come_back_within_offline_hold_gets_offline(hold_gw, watch):
    gw = hold_gw
    probe, cid = watch(gw), "CP011"
    tp = topics(gw, cid)
    with connect_cp(gw, cid):
        connected_event(probe, gw, cid)
    probe.expect_json(tp.event, {"event": "disconnected"})
    probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "off-1", "Action": "Reset",
                                "Payload": {"type": "Soft"}})
    assert probe.expect_json(tp.error, {"UniqueId": "off-1"}, timeout=4) == {
        "MessageTypeId": 4, "Protocol": "ocpp1.6", "UniqueId": "off-1", "Action": "Reset", "ErrorCode": "InternalError",
        "ErrorDescription": f"{cid} did not connect within 1s",
        "ErrorDetails": {"origin": "ocpp_gw", "reason": "offline", "action": "Reset"}}


def test_a_held_call_expires_at_the_awaiting_timeout_answered_offline_once_and_never_reaches_the_cp(start, watch):
    """Its backend's deadline has passed by then: a stale command must not run when the CP comes back."""
    gw = start({"ocpp.dnstream.offline_hold": "30s", "ocpp.awaiting_timeout": "1s"})
    probe, cid = watch(gw), "CP017"
    tp = topics(gw, cid)
    with connect_cp(gw, cid):
        connected_event(probe, gw, cid)
    probe.expect_json(tp.event, {"event": "disconnected"})
    probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "stale-1", "Action": "RemoteStartTransaction",
                                "Payload": {"idTag": "T"}})
    assert probe.expect_json(tp.error, {"UniqueId": "stale-1"}, timeout=4)["ErrorDetails"] == {
        "origin": "ocpp_gw", "reason": "offline", "action": "RemoteStartTransaction"}
    with connect_cp(gw, cid) as cp:
        connected_event(probe, gw, cid)
        probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "fresh-1", "Action": "Reset",
                                    "Payload": {"type": "Soft"}})
        assert recv_frame(cp) == [2, "fresh-1", "Reset", {"type": "Soft"}]
    assert [m for m in probe.drain() if b"stale-1" in m.payload and m.topic != tp.dnstream] == []  # answered once


def test_a_call_published_right_after_a_disconnect_is_delivered_when_the_cp_is_back_within_the_timeout(start, watch):
    gw = start({"ocpp.dnstream.offline_hold": "30s", "ocpp.awaiting_timeout": "20s"})
    probe, cid = watch(gw), "CP018"
    tp = topics(gw, cid)
    with connect_cp(gw, cid):
        connected_event(probe, gw, cid)
    probe.expect_json(tp.event, {"event": "disconnected"})
    probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "held-2", "Action": "Reset",
                                "Payload": {"type": "Soft"}})
    with connect_cp(gw, cid) as cp:
        assert recv_frame(cp) == [2, "held-2", "Reset", {"type": "Soft"}]


def test_call_published_while_the_gateway_was_down_gets_offline_after_restart(start, watch):
    """The persistent MQTT session keeps the dead gateway's subscription: the call waits in the broker
    and, the CP not being back, is answered `offline` once the gateway returns."""
    gw = start({"ocpp.dnstream.offline_hold": "0s"})
    probe, cid = watch(gw), "CP012"
    tp = topics(gw, cid)
    with connect_cp(gw, cid):
        connected_event(probe, gw, cid)
        gw.kill()
    probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "down-1", "Action": "Reset",
                                "Payload": {"type": "Soft"}})
    gw.start()
    assert probe.expect_json(tp.error, {"UniqueId": "down-1"}) == {
        "MessageTypeId": 4, "Protocol": "ocpp1.6", "UniqueId": "down-1", "Action": "Reset", "ErrorCode": "InternalError",
        "ErrorDescription": f"{cid} is not connected",
        "ErrorDetails": {"origin": "ocpp_gw", "reason": "offline", "action": "Reset"}}


def test_downstream_topic_is_unsubscribed_when_the_cp_leaves(mqtt_gw, watch):
    probe = watch(mqtt_gw)
    gone, present = topics(mqtt_gw, "CP013"), topics(mqtt_gw, "CP014")
    since = mqtt_gw.mark()
    with connect_cp(mqtt_gw, "CP013") as cp:
        connected_event(probe, mqtt_gw, "CP013")
    probe.expect_json(gone.event, {"event": "disconnected"})
    with connect_cp(mqtt_gw, "CP014") as cp:
        connected_event(probe, mqtt_gw, "CP014")
        probe.publish(gone.dnstream, {"MessageTypeId": 2, "UniqueId": "unsub-1", "Action": "Reset",
                                      "Payload": {"type": "Soft"}})
        # Published after it on the same connection: once CP014 has its call, CP013's would have arrived.
        probe.publish(present.dnstream, {"MessageTypeId": 2, "UniqueId": "sub-1", "Action": "ClearCache",
                                         "Payload": {}})
        assert recv_frame(cp) == [2, "sub-1", "ClearCache", {}]
    assert not any("unsub-1" in line for line in mqtt_gw.logs[since:])
    assert [m for m in probe.drain() if m.topic == gone.error and m.json["MessageTypeId"] == 4] == []


def test_downstream_topic_is_unsubscribed_once_the_offline_hold_has_passed(hold_gw, watch):
    gw = hold_gw
    probe = watch(gw)
    gone, present = topics(gw, "CP015"), topics(gw, "CP016")
    with connect_cp(gw, "CP015") as cp:
        connected_event(probe, gw, "CP015")
    probe.expect_json(gone.event, {"event": "disconnected"})
    probe.publish(gone.dnstream, {"MessageTypeId": 2, "UniqueId": "held-1", "Action": "Reset",
                                  "Payload": {"type": "Soft"}})
    assert probe.expect_json(gone.error, {"UniqueId": "held-1"}, timeout=4)["ErrorDetails"]["reason"] == "offline"
    since = gw.mark()
    with connect_cp(gw, "CP016") as cp:
        connected_event(probe, gw, "CP016")
        probe.publish(gone.dnstream, {"MessageTypeId": 2, "UniqueId": "after-1", "Action": "Reset",
                                      "Payload": {"type": "Soft"}})
        probe.publish(present.dnstream, {"MessageTypeId": 2, "UniqueId": "sub-2", "Action": "ClearCache",
                                         "Payload": {}})
        assert recv_frame(cp) == [2, "sub-2", "ClearCache", {}]
    assert not any("after-1" in line for line in gw.logs[since:])
    assert [m for m in probe.drain() if m.topic == gone.error and m.json["MessageTypeId"] == 4] == []


# -- MQTT 5 -------------------------------------------------------------------------------------

def test_mqtt5_end_to_end(start, watch, broker):
    gw = start({"mqtt.protocol": "5"})
    probe, cid = watch(gw), "CP017"
    tp = topics(gw, cid)
    assert probe.expect(status_topic(gw)).payload == b"online"
    with connect_cp(gw, cid) as cp:
        assert probe.expect_json(tp.event)["event"] == "connected"
        cp.send('[2,"b5","BootNotification",{"chargePointVendor":"VendorX","chargePointModel":"ModelY"}]')
        assert probe.expect_json(tp.call, {"UniqueId": "b5"})["Payload"] == BOOT_PAYLOAD
        probe.publish(tp.dnstream, {"MessageTypeId": 3, "UniqueId": "b5", "Payload": BOOT_ACCEPTED})
        assert recv_frame(cp) == [3, "b5", BOOT_ACCEPTED]
        probe.publish(tp.dnstream, {"MessageTypeId": 2, "UniqueId": "r5", "Action": "Reset",
                                    "Payload": {"type": "Soft"}})
        assert recv_frame(cp) == [2, "r5", "Reset", {"type": "Soft"}]
        cp.send('[3,"r5",{"status":"Accepted"}]')
        assert probe.expect_json(tp.reply, {"UniqueId": "r5"}) == {
            "MessageTypeId": 3, "Protocol": "ocpp1.6", "UniqueId": "r5", "Action": "Reset", "Payload": {"status": "Accepted"}}
    assert probe.expect_json(tp.event, {"event": "disconnected"})["reason"] == "closed by charge point (code 1000)"
    gw.stop()
    assert probe.expect(status_topic(gw)).payload == b"offline"
    assert retained(broker, status_topic(gw)).payload == b"offline"
