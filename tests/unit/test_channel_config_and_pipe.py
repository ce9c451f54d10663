"""Command channels (SPEC §11): their configuration keys, and the pipe remembering which channel each CSMS call
came on, so that its answer, timeout or refusal goes back to that channel."""

from __future__ import annotations

import pytest

from ocpp_gw.protocol.frames import Call, CallResult
from ocpp_gw.protocol.pipe import Adopted, FromChannel, Pipe, PipeConfig, Upstream, drain
from ocpp_gw.settings import CommandChannel, ConfigError, Settings, loads

BILLING = """
ocpp.dnstream.channels = billing
ocpp.dnstream.channel.billing.topic = billing/${cid}
ocpp.dnstream.channel.billing.allowed_actions = RemoteStartTransaction, RemoteStopTransaction
ocpp.dnstream.channel.billing.reply_topic = billing/${cid}/Reply
"""


def test_a_configured_channel_is_read_with_its_topic_actions_and_reply_topic():
    settings = loads(BILLING)
    assert settings.channels == {"billing": CommandChannel(
        "billing", "billing/${cid}", frozenset({"RemoteStartTransaction", "RemoteStopTransaction"}),
        "billing/${cid}/Reply")}
    assert Settings.defaults().channels == {}


@pytest.mark.parametrize("text, line, key, fragment", [
    ("ocpp.dnstream.channels = billing\n", 1, "ocpp.dnstream.channel.billing.topic", "required for channel"),
    ("ocpp.dnstream.channel.other.topic = o/${cid}\n", 1, "ocpp.dnstream.channel.other.topic",
     "not listed in ocpp.dnstream.channels"),
    (BILLING.replace("billing/${cid}\n", "cs/${cid}\n", 1), 3, "ocpp.dnstream.channel.billing.topic",
     "primary ocpp.dnstream.topic"),
    ("ocpp.dnstream.channel.billing.colour = red\n", 1, "ocpp.dnstream.channel.billing.colour", "unknown key"),
    ("ocpp.dnstream.channel.billing.reply_topic = billing/Reply\n", 1,
     "ocpp.dnstream.channel.billing.reply_topic", "lacks ${cid}"),
])
def test_a_channel_misconfigured_is_refused_naming_line_and_key(text, line, key, fragment):
    with pytest.raises(ConfigError) as caught:
        loads(text, "ocpp.conf")
    error = caught.value
    assert (error.line, error.key) == (line, key), str(error)
    assert fragment in error.problem


def harness(**config) -> Pipe:
    return Pipe("CP001", PipeConfig(awaiting_timeout=30, **config), clock=lambda: 1000.0)


def test_the_cps_answer_to_a_channels_call_goes_up_marked_with_that_channel():
    pipe = harness()
    pipe.CSMSRx.put(FromChannel(Call("c1", "RemoteStartTransaction", {"idTag": "T"}), "billing"))
    pipe.step()
    assert list(drain(pipe.ChargeStationTx)) == [Call("c1", "RemoteStartTransaction", {"idTag": "T"})]
    pipe.ChargeStationRx.put('[3,"c1",{"status":"Accepted"}]')
    pipe.step()
    assert list(drain(pipe.CSMSTx)) == [
        Upstream(CallResult("c1", {"status": "Accepted"}), "RemoteStartTransaction", "billing")]


def test_a_cp_call_with_the_same_id_as_a_channels_call_still_goes_to_the_primary_topic():
    pipe = harness()
    pipe.CSMSRx.put(FromChannel(Call("1", "RemoteStartTransaction", {}), "billing"))
    pipe.step()
    pipe.ChargeStationRx.put('[2,"1","Heartbeat",{}]')
    pipe.step()
    assert list(drain(pipe.CSMSTx)) == [Upstream(Call("1", "Heartbeat", {}), "Heartbeat", None)]


def test_a_channels_call_refused_for_a_full_queue_or_left_unanswered_is_answered_on_its_channel():
    pipe = harness(max_mqueue_len=1)
    pipe.ChargeStationRx.put('[2,"b1","Heartbeat",{}]')  # a CP call out: CSMS calls wait in the queue
    for unique_id in ("q1", "q2"):
        pipe.CSMSRx.put(FromChannel(Call(unique_id, "RemoteStartTransaction", {}), "billing"))
    pipe.step()
    refused = [item for item in drain(pipe.CSMSTx) if item.message.unique_id == "q2"]
    assert [(item.channel, item.message.details["reason"]) for item in refused] == [("billing", "queue_full")]
    pipe.answer_unfinished("disconnected", "gone")
    assert [(item.message.unique_id, item.channel) for item in drain(pipe.CSMSTx)] == [("q1", "billing")]


def test_calls_handed_to_a_new_connection_keep_their_channel():
    old, new = harness(), harness()
    old.ChargeStationRx.put('[2,"b1","Heartbeat",{}]')
    old.CSMSRx.put(FromChannel(Call("c1", "GetConfiguration", {}), "billing"))
    old.step()
    calls = old.unfinished_calls()
    new.CSMSRx.put(Adopted(tuple(calls), tuple((c.unique_id, old.channel_of(c.unique_id)) for c in calls)))
    new.step()
    assert list(drain(new.ChargeStationTx)) == [Call("c1", "GetConfiguration", {})]
    new.ChargeStationRx.put('[3,"c1",{}]')
    new.step()
    assert [item.channel for item in drain(new.CSMSTx)] == ["billing"]
