"""Filtered command channels (SPEC §11): a second backend may send a CP only the actions its channel allows; the
CP's answers to its calls, and what the gateway refuses it, go to the channel's reply topic only; the primary
command topic works as before."""

from __future__ import annotations

import pytest

from tools.harness import ROOT, MqttProbe
from tests.integration._support import (answered_marker, connect_cp, connected_event, recv_frame, start_gateway,
                                        topics)

CHANNEL = {
    "ocpp.dnstream.channels": "billing",
    "ocpp.dnstream.channel.billing.topic": "billing/${cid}",
    "ocpp.dnstream.channel.billing.allowed_actions": "RemoteStartTransaction GetConfiguration",
    "ocpp.dnstream.channel.billing.reply_topic": "billing/${cid}/Reply",
}
START = {"idTag": "TAG", "connectorId": 1}


@pytest.fixture(scope="module")
def channel_gw(module_start):
    return module_start({**CHANNEL, "ocpp.awaiting_timeout": "30s"})


def call(unique_id: str, action: str, payload: dict | None = None) -> dict:
    return {"MessageTypeId": 2, "UniqueId": unique_id, "Action": action, "Payload": payload or {}}


def billing(gateway, cid: str) -> str:
    return f"{gateway.mountpoint}billing/{cid}"


def not_allowed(unique_id: str, action: str | None, description: str) -> dict:
    error = {"MessageTypeId": 4, "Protocol": "ocpp1.6", "UniqueId": unique_id, "ErrorCode": "SecurityError", "ErrorDescription": description,
             "ErrorDetails": {"origin": "ocpp_gw", "reason": "not_allowed"}}
    if action is not None:
        error["Action"] = action
        error["ErrorDetails"]["action"] = action
    return error


def test_an_allowed_channel_call_reaches_the_cp_and_its_answer_goes_to_the_channels_reply_topic_only(
        channel_gw, watch):
    probe, cid = watch(channel_gw), "CP045"
    with connect_cp(channel_gw, cid) as cp:
        connected_event(probe, channel_gw, cid)
        probe.publish(billing(channel_gw, cid), call("bill-1", "RemoteStartTransaction", START))
        assert recv_frame(cp) == [2, "bill-1", "RemoteStartTransaction", START]
        cp.send('[3,"bill-1",{"status":"Accepted"}]')
        assert probe.expect_json(f"{billing(channel_gw, cid)}/Reply") == {
            "MessageTypeId": 3, "Protocol": "ocpp1.6", "UniqueId": "bill-1", "Action": "RemoteStartTransaction",
            "Payload": {"status": "Accepted"}}
        probe.expect_none(topics(channel_gw, cid).upstream, within=0.3)


def test_a_channel_call_outside_its_list_is_refused_not_allowed_and_never_reaches_the_cp(channel_gw, watch):
    probe, cid = watch(channel_gw), "CP046"
    with connect_cp(channel_gw, cid) as cp:
        connected_event(probe, channel_gw, cid)
        probe.publish(billing(channel_gw, cid), call("bill-2", "Reset", {"type": "Hard"}))
        assert probe.expect_json(f"{billing(channel_gw, cid)}/Reply") == not_allowed(
            "bill-2", "Reset", "channel billing may not send Reset")
        assert answered_marker(cp) == []
        probe.expect_none(topics(channel_gw, cid).upstream, within=0.3)


def test_a_channels_answer_to_a_cp_call_is_refused_not_allowed_and_the_primary_answer_still_counts(
        channel_gw, watch):
    probe, cid = watch(channel_gw), "CP047"
    tp = topics(channel_gw, cid)
    with connect_cp(channel_gw, cid) as cp:
        connected_event(probe, channel_gw, cid)
        cp.send('[2,"hb-1","Heartbeat",{}]')
        assert probe.expect_json(tp.call, {"UniqueId": "hb-1"})["Action"] == "Heartbeat"
        probe.publish(billing(channel_gw, cid), {"MessageTypeId": 3, "UniqueId": "hb-1", "Payload": {}})
        assert probe.expect_json(f"{billing(channel_gw, cid)}/Reply") == not_allowed(
            "hb-1", None, f"channel billing may not answer calls of {cid}")
        assert answered_marker(cp) == []
        answer = {"currentTime": "2026-01-01T00:00:00Z"}
        probe.publish(tp.dnstream, {"MessageTypeId": 3, "UniqueId": "hb-1", "Payload": answer})
        assert recv_frame(cp) == [3, "hb-1", answer]


def test_the_primary_topic_is_unaffected_by_channels(channel_gw, watch):
    probe, cid = watch(channel_gw), "CP048"
    tp = topics(channel_gw, cid)
    with connect_cp(channel_gw, cid) as cp:
        connected_event(probe, channel_gw, cid)
        probe.publish(tp.dnstream, call("main-1", "Reset", {"type": "Soft"}))  # not in the channel's list
        assert recv_frame(cp) == [2, "main-1", "Reset", {"type": "Soft"}]
        cp.send('[3,"main-1",{"status":"Accepted"}]')
        assert probe.expect_json(tp.reply, {"UniqueId": "main-1"})["Action"] == "Reset"
        probe.expect_none(f"{billing(channel_gw, cid)}/#", within=0.3)


def test_a_channel_call_the_cp_does_not_answer_times_out_on_the_channels_reply_topic(start, watch):
    gateway = start({**CHANNEL, "ocpp.awaiting_timeout": "1s"})
    probe, cid = watch(gateway), "CP049"
    with connect_cp(gateway, cid) as cp:
        connected_event(probe, gateway, cid)
        probe.publish(billing(gateway, cid), call("bill-3", "GetConfiguration"))
        assert recv_frame(cp) == [2, "bill-3", "GetConfiguration", {}]
        error = probe.expect_json(f"{billing(gateway, cid)}/Reply", timeout=5)
        assert (error["UniqueId"], error["ErrorDetails"]["reason"]) == ("bill-3", "timeout")
        probe.expect_none(topics(gateway, cid).upstream, within=0.3)


def documented_acl() -> str:
    """The Mosquitto ACL docs/mqtt-api.md gives for a channel (the code block that starts with the gateway's user)."""
    text = (ROOT / "docs" / "mqtt-api.md").read_text()
    blocks = text.split("```")[1::2]
    (acl,) = [block for block in blocks if "\nuser billing\n" in block]
    return acl


def test_the_documented_broker_acl_keeps_a_channels_client_off_the_primary_topic(broker_factory, gateway_factory,
                                                                                  tmp_path):
    acl_file = tmp_path / "acl"
    acl_file.write_text(documented_acl())
    acl_broker = broker_factory(extra_config=f"acl_file {acl_file}")
    gateway = start_gateway(gateway_factory, {**CHANNEL, "ocpp.mountpoint": "ocpp/", "mqtt.username": "ocpp-gw",
                                              "ocpp.awaiting_timeout": "30s"}, broker=acl_broker)
    cid = "CP044"
    billing_client = MqttProbe(acl_broker.host, acl_broker.port)
    billing_client.client.username_pw_set("billing")
    with billing_client.connect() as bill, connect_cp(gateway, cid) as cp:
        bill.subscribe("ocpp/events/#").subscribe(f"ocpp/billing/{cid}/Reply")
        bill.expect_json(f"ocpp/events/{cid}", {"event": "connected"})
        bill.publish(f"ocpp/cs/{cid}", call("forged-1", "Reset", {"type": "Hard"}))  # the broker drops it
        bill.publish(f"ocpp/billing/{cid}", call("bill-9", "RemoteStartTransaction", START))
        assert recv_frame(cp) == [2, "bill-9", "RemoteStartTransaction", START]
        cp.send('[3,"bill-9",{"status":"Accepted"}]')
        assert bill.expect_json(f"ocpp/billing/{cid}/Reply")["UniqueId"] == "bill-9"
        assert answered_marker(cp) == []
