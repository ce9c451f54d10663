"""MQTT envelopes per OCPP version (SPEC §9): Protocol upstream, 5 and 6 on 2.1 only,
downstream envelopes for another version refused (version_mismatch), each version's codes."""

from __future__ import annotations

import json

import pytest

from ocpp_gw.protocol import envelope
from ocpp_gw.protocol.envelope import EnvelopeError
from ocpp_gw.protocol.frames import Call, CallError, CallResult, CallResultError, Send
from ocpp_gw.protocol.versions import V16, V201, V21


def raw(obj) -> bytes:
    return json.dumps(obj).encode()


@pytest.mark.parametrize("message, action", [
    (Call("1", "BootNotification", {}), None), (CallResult("1", {}), "Reset"),
    (CallError("1", "GenericError", "", {}), "Reset"), (Send("1", "NotifyPeriodicEventStream", {}), None),
    (CallResultError("1", "FormatViolation", "d", {}), "Heartbeat")])
def test_every_upstream_envelope_carries_the_protocol(message, action):
    obj = json.loads(envelope.encode(message, action, "ocpp2.1"))
    assert obj["Protocol"] == "ocpp2.1"
    assert envelope.decode(envelope.encode(message, action, "ocpp2.1"), V21) == (
        message, action if action is not None or not hasattr(message, "action") else message.action)


def test_send_and_callresulterror_envelopes_have_types_6_and_5():
    assert json.loads(envelope.encode(Send("s", "NotifyPeriodicEventStream", {"id": 1}), None, "ocpp2.1")) == {
        "MessageTypeId": 6, "UniqueId": "s", "Action": "NotifyPeriodicEventStream", "Payload": {"id": 1},
        "Protocol": "ocpp2.1"}
    assert json.loads(envelope.encode(CallResultError("r", "FormatViolation", "d", {}), "Heartbeat", "ocpp2.1")) == {
        "MessageTypeId": 5, "UniqueId": "r", "Action": "Heartbeat", "ErrorCode": "FormatViolation",
        "ErrorDescription": "d", "ErrorDetails": {}, "Protocol": "ocpp2.1"}


def test_without_a_protocol_the_16_envelope_is_byte_for_byte_as_before():
    assert envelope.encode(Call("1", "Heartbeat", {})) == b'{"MessageTypeId":2,"UniqueId":"1","Action":"Heartbeat","Payload":{}}'


@pytest.mark.parametrize("version", [V16, V201], ids=["1.6", "2.0.1"])
@pytest.mark.parametrize("obj", [
    {"MessageTypeId": 6, "UniqueId": "s", "Action": "NotifyPeriodicEventStream", "Payload": {}},
    {"MessageTypeId": 5, "UniqueId": "s", "ErrorCode": "GenericError"}])
def test_types_5_and_6_are_refused_downstream_before_21(version, obj):
    with pytest.raises(EnvelopeError) as caught:
        envelope.decode(raw(obj), version)
    assert "MessageTypeId must be 2, 3 or 4, not" in caught.value.reason
    assert caught.value.gateway_reason == "invalid_envelope" and caught.value.unique_id == "s"


def test_a_downstream_envelope_naming_another_version_is_a_version_mismatch():
    obj = {"MessageTypeId": 2, "UniqueId": "u1", "Action": "Reset", "Payload": {}, "Protocol": "ocpp1.6"}
    with pytest.raises(EnvelopeError) as caught:
        envelope.decode(raw(obj), V201)
    assert caught.value.gateway_reason == "version_mismatch" and caught.value.unique_id == "u1"
    assert "ocpp1.6" in caught.value.reason and "ocpp2.0.1" in caught.value.reason
    assert envelope.decode(raw({**obj, "Protocol": "ocpp2.0.1"}), V201)[0] == Call("u1", "Reset", {})
    assert envelope.decode(raw({k: v for k, v in obj.items() if k != "Protocol"}), V201)[0] == Call("u1", "Reset", {})


@pytest.mark.parametrize("version, code", [
    (V201, "FormationViolation"), (V201, "OccurenceConstraintViolation"),
    (V16, "FormatViolation"), (V16, "RpcFrameworkError"), (V16, "MessageTypeNotSupported")])
def test_another_versions_error_code_is_refused_downstream(version, code):
    obj = {"MessageTypeId": 4, "UniqueId": "e1", "ErrorCode": code, "ErrorDescription": "", "ErrorDetails": {}}
    with pytest.raises(EnvelopeError) as caught:
        envelope.decode(raw(obj), version)
    assert f"ErrorCode {code} is not an {version.subprotocol} code" == caught.value.reason


def test_vendor_error_codes_pass_in_every_version():
    obj = {"MessageTypeId": 4, "UniqueId": "e1", "ErrorCode": "VendorSpecific"}
    for version in (V16, V201, V21):
        assert envelope.decode(raw(obj), version)[0].code == "VendorSpecific"


def test_signed_actions_are_allowed_downstream_on_2x_only():
    obj = {"MessageTypeId": 2, "UniqueId": "g", "Action": "Reset-Signed", "Payload": {"payload": "x"}}
    assert envelope.decode(raw(obj), V201)[1] == "Reset-Signed"
    with pytest.raises(EnvelopeError):
        envelope.decode(raw(obj), V16)


@pytest.mark.parametrize("version, reason, code", [
    (V16, "invalid_envelope", "FormationViolation"), (V201, "invalid_envelope", "FormatViolation"),
    (V21, "version_mismatch", "FormatViolation"), (V201, "timeout", "InternalError")])
def test_gateway_errors_are_spelled_as_the_cps_version_spells_them(version, reason, code):
    assert envelope.gateway_error("u", reason, "d", version=version).code == code


def test_for_a_cp_not_known_yet_the_envelopes_protocol_is_trusted():
    obj = {"MessageTypeId": 6, "UniqueId": "s", "Action": "NotifyPeriodicEventStream", "Payload": {},
           "Protocol": "ocpp2.1"}
    assert envelope.decode(raw(obj), V16, trust_protocol=True)[0] == Send("s", "NotifyPeriodicEventStream", {})
    with pytest.raises(EnvelopeError) as caught:
        envelope.decode(raw(obj), V16)
    assert caught.value.gateway_reason == "version_mismatch"
