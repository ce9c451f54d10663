"""The MQTT payload codec: envelope and bare modes, gateway errors."""

import json

import pytest

from ocpp_gw.protocol import envelope
from ocpp_gw.protocol.envelope import EnvelopeError
from ocpp_gw.protocol.frames import Call, CallError, CallResult


def obj(data: bytes) -> dict:
    return json.loads(data)


def raw(value) -> bytes:
    return json.dumps(value).encode()


# --- encode -----------------------------------------------------------------------------------

def test_call_envelope_carries_its_action_and_payload():
    data = envelope.encode(Call("1", "BootNotification", {"chargePointModel": "M"}))
    assert data == (b'{"MessageTypeId":2,"UniqueId":"1","Action":"BootNotification",'
                    b'"Payload":{"chargePointModel":"M"}}')


def test_call_envelope_keeps_its_own_action_over_the_argument():
    assert obj(envelope.encode(Call("1", "Heartbeat", {}), "Reset"))["Action"] == "Heartbeat"


def test_callresult_envelope_gets_the_call_action_merged_in():
    data = envelope.encode(CallResult("7", {"status": "Accepted"}), "RemoteStartTransaction")
    assert data == (b'{"MessageTypeId":3,"UniqueId":"7","Action":"RemoteStartTransaction",'
                    b'"Payload":{"status":"Accepted"}}')


def test_callresult_envelope_without_action_has_no_action_key():
    assert obj(envelope.encode(CallResult("7", {}))) == {
        "MessageTypeId": 3, "UniqueId": "7", "Payload": {}}


def test_callerror_envelope_carries_code_description_details_and_action():
    data = envelope.encode(CallError("7", "NotSupported", "no", {"a": 1}), "Reset")
    assert data == (b'{"MessageTypeId":4,"UniqueId":"7","Action":"Reset","ErrorCode":"NotSupported",'
                    b'"ErrorDescription":"no","ErrorDetails":{"a":1}}')


def test_callerror_envelope_without_action_has_no_action_key():
    assert obj(envelope.encode(CallError("7", "GenericError", "", {}))) == {
        "MessageTypeId": 4, "UniqueId": "7", "ErrorCode": "GenericError",
        "ErrorDescription": "", "ErrorDetails": {}}


def test_encode_writes_utf8_characters_unescaped():
    assert envelope.encode(CallResult("1", {"t": "über"})).decode("utf-8").endswith('"über"}}')


def test_encode_of_an_unpaired_surrogate_still_gives_valid_utf8_json():
    data = envelope.encode(CallResult("1", {"t": "a\ud800b"}))
    data.decode("utf-8")
    assert obj(data)["Payload"]["t"] == "a\ud800b"


def test_encode_refuses_what_is_not_a_message():
    with pytest.raises(TypeError):
        envelope.encode({"MessageTypeId": 2})


@pytest.mark.parametrize("msg, action", [
    (Call("1", "Heartbeat", {}), "Heartbeat"),
    (Call("x" * 36, "DataTransfer", {"data": "☃", "n": [1, 2.5, None, {"d": True}]}), "DataTransfer"),
    (CallResult("1", {"currentTime": "2024-01-01T00:00:00Z"}), None),
    (CallResult("1", {}), "Heartbeat"),
    (CallError("1", "GenericError", "boom", {"k": "v"}), None),
    (CallError("1", "SomeVendorCode", "", {}), "Reset"),
])
def test_decode_of_encode_gives_back_the_message_and_action(msg, action):
    assert envelope.decode(envelope.encode(msg, action)) == (msg, action)


# --- decode -----------------------------------------------------------------------------------

def test_decode_reads_a_call():
    data = raw({"MessageTypeId": 2, "UniqueId": "u1", "Action": "Reset", "Payload": {"type": "Soft"}})
    assert envelope.decode(data) == (Call("u1", "Reset", {"type": "Soft"}), "Reset")


def test_decode_ignores_unknown_keys():
    data = raw({"MessageTypeId": 3, "UniqueId": "u1", "Payload": {}, "Extra": [1], "ts": 5})
    assert envelope.decode(data) == (CallResult("u1", {}), None)


def test_decode_defaults_error_description_and_details():
    data = raw({"MessageTypeId": 4, "UniqueId": "u1", "ErrorCode": "GenericError"})
    assert envelope.decode(data) == (CallError("u1", "GenericError", "", {}), None)


def test_decode_accepts_a_str():
    assert envelope.decode('{"MessageTypeId":3,"UniqueId":"u","Payload":{}}')[0] == CallResult("u", {})


def test_decode_keeps_unknown_error_codes():
    data = raw({"MessageTypeId": 4, "UniqueId": "u1", "ErrorCode": "Whatever",
                "ErrorDescription": "d", "ErrorDetails": {"x": 1}})
    assert envelope.decode(data)[0] == CallError("u1", "Whatever", "d", {"x": 1})


CALL = {"MessageTypeId": 2, "UniqueId": "u1", "Action": "Reset", "Payload": {}}
RESULT = {"MessageTypeId": 3, "UniqueId": "u1", "Payload": {}}
ERROR = {"MessageTypeId": 4, "UniqueId": "u1", "ErrorCode": "GenericError",
         "ErrorDescription": "", "ErrorDetails": {}}


def changed(base: dict, **changes) -> bytes:
    value = {**base, **changes}
    return raw({k: v for k, v in value.items() if v is not DROP})


DROP = object()

INVALID = [
    # (name, data, unique_id readable, reason fragment)
    ("not_json", b"{", None, "not valid JSON"),
    ("truncated", b'{"MessageTypeId":2,"UniqueId" : "u1","Action":"Re', "u1", "not valid JSON"),
    ("truncated_before_id_value", b'{"MessageTypeId":2,"UniqueId":"u1', None, "not valid JSON"),
    ("broken_with_two_ids", b'{"UniqueId":"u1","Payload":{"UniqueId":"u2"},}', None, "not valid JSON"),
    ("broken_with_escaped_id", b'{"UniqueId":"u\\"1",', None, "not valid JSON"),
    ("empty", b"", None, "not valid JSON"),
    ("not_utf8", b'{"UniqueId":"\xff"}', None, "not UTF-8"),
    ("utf16", '{"MessageTypeId":3}'.encode("utf-16"), None, "not UTF-8"),
    ("bom", b'\xef\xbb\xbf{"MessageTypeId":3,"UniqueId":"u","Payload":{}}', "u", "byte order mark"),
    ("array", b'[2,"u1","Reset",{}]', None, "must be a JSON object, not array"),
    ("string", b'"x"', None, "must be a JSON object, not string"),
    ("null", b"null", None, "must be a JSON object, not null"),
    ("trailing_garbage", raw(RESULT) + b"x", "u1", "Extra data"),
    ("id_missing", changed(CALL, UniqueId=DROP), None, "UniqueId missing"),
    ("id_number", changed(CALL, UniqueId=1), None, "UniqueId must be a string, not number"),
    ("id_null", changed(CALL, UniqueId=None), None, "UniqueId must be a string, not null"),
    ("id_empty", changed(CALL, UniqueId=""), None, "UniqueId must not be empty"),
    ("id_too_long", changed(CALL, UniqueId="x" * 37), None, "UniqueId longer than 36"),
    ("type_missing", changed(CALL, MessageTypeId=DROP), "u1", "MessageTypeId missing"),
    ("type_string", changed(CALL, MessageTypeId="2"), "u1", "MessageTypeId must be 2, 3 or 4, not string"),
    ("type_bool", changed(CALL, MessageTypeId=True), "u1", "not boolean"),
    ("type_float", changed(CALL, MessageTypeId=2.0), "u1", "not number"),
    ("type_5", changed(CALL, MessageTypeId=5), "u1", "not 5"),
    ("call_action_missing", changed(CALL, Action=DROP), "u1", "Action missing"),
    ("call_action_null", changed(CALL, Action=None), "u1", "Action must be a string, not null"),
    ("call_action_empty", changed(CALL, Action=""), "u1", "Action must not be empty"),
    ("call_action_wildcard", changed(CALL, Action="Reset/#"), "u1", "letters and digits"),
    ("call_action_plus", changed(CALL, Action="a+b"), "u1", "letters and digits"),
    ("call_action_too_long", changed(CALL, Action="A" * 65), "u1", "longer than 64"),
    ("reply_action_not_a_string", changed(RESULT, Action=3), "u1", "Action must be a string"),
    ("reply_action_null", changed(RESULT, Action=None), "u1", "Action must be a string, not null"),
    ("error_action_wildcard", changed(ERROR, Action="#"), "u1", "letters and digits"),
    ("call_payload_missing", changed(CALL, Payload=DROP), "u1", "Payload must be a JSON object, not missing"),
    ("call_payload_array", changed(CALL, Payload=[]), "u1", "Payload must be a JSON object, not array"),
    ("call_payload_string", changed(CALL, Payload="{}"), "u1", "not string"),
    ("call_payload_null", changed(CALL, Payload=None), "u1", "not null"),
    ("result_payload_missing", changed(RESULT, Payload=DROP), "u1", "not missing"),
    ("result_payload_number", changed(RESULT, Payload=0), "u1", "not number"),
    ("error_code_missing", changed(ERROR, ErrorCode=DROP), "u1", "ErrorCode must be a string, not missing"),
    ("error_code_number", changed(ERROR, ErrorCode=1), "u1", "ErrorCode must be a string, not number"),
    ("error_description_number", changed(ERROR, ErrorDescription=1), "u1", "ErrorDescription must be a string"),
    ("error_description_null", changed(ERROR, ErrorDescription=None), "u1", "not null"),
    ("error_details_array", changed(ERROR, ErrorDetails=[]), "u1", "ErrorDetails must be a JSON object"),
    ("error_details_null", changed(ERROR, ErrorDetails=None), "u1", "not null"),
    ("nan", b'{"MessageTypeId":3,"UniqueId":"u1","Payload":{"v":NaN}}', "u1", "NaN"),
    ("infinity", b'{"MessageTypeId":3,"UniqueId":"u1","Payload":{"v":-Infinity}}', "u1", "Infinity"),
    ("float_overflow", b'{"MessageTypeId":3,"UniqueId":"u1","Payload":{"v":1e999}}', "u1", "out of range"),
    ("huge_int", b'{"MessageTypeId":3,"UniqueId":"u1","Payload":{"v":' + b"9" * 5000 + b"}}", "u1",
     "integer longer than 4300 digits"),
    ("deep_100k", b'{"MessageTypeId":3,"UniqueId":"u1","Payload":{"v":' + b"[" * 100_000
     + b"]" * 100_000 + b"}}", "u1", "nesting deeper than 64"),
    ("deep_65", b'{"MessageTypeId":3,"UniqueId":"u1","Payload":' + b'{"a":' * 63 + b"{}" + b"}" * 64,
     "u1", "nesting deeper than 64"),
    ("lone_surrogate", b'{"MessageTypeId":3,"UniqueId":"u1","Payload":{"v":"\\udfff"}}', "u1",
     "unpaired UTF-16 surrogate"),
]


@pytest.mark.parametrize("data, unique_id, fragment",
                         [pytest.param(d, u, f, id=n) for n, d, u, f in INVALID])
def test_decode_refuses_invalid_envelopes_with_a_precise_reason(data, unique_id, fragment):
    with pytest.raises(EnvelopeError) as caught:
        envelope.decode(data)
    assert caught.value.unique_id == unique_id
    assert fragment in caught.value.reason
    assert "\n" not in caught.value.reason and len(caught.value.reason) <= 100


def test_decode_accepts_nesting_of_64_levels_counting_the_envelope():
    data = b'{"MessageTypeId":3,"UniqueId":"u1","Payload":' + b'{"a":' * 62 + b"{}" + b"}" * 62 + b"}"
    msg, _ = envelope.decode(data)
    assert msg.unique_id == "u1"


# --- bare mode --------------------------------------------------------------------------------

def test_bare_call_is_its_payload():
    assert envelope.encode_bare(Call("1", "Heartbeat", {"a": "ü"})) == '{"a":"ü"}'.encode()


def test_bare_callresult_is_its_payload():
    assert envelope.encode_bare(CallResult("1", {})) == b"{}"


def test_bare_callerror_is_code_description_details():
    assert envelope.encode_bare(CallError("1", "GenericError", "boom", {"k": 1})) == (
        b'{"ErrorCode":"GenericError","ErrorDescription":"boom","ErrorDetails":{"k":1}}')


@pytest.mark.parametrize("msg, action", [
    (Call("1", "Reset", {"type": "Hard"}), "Reset"),
    (CallResult("2", {"status": "Accepted"}), None),
    (CallError("3", "NotSupported", "no", {"x": [1]}), None),
])
def test_decode_bare_of_encode_bare_gives_back_the_message(msg, action):
    data = envelope.encode_bare(msg)
    assert envelope.decode_bare(data, envelope.type_name(msg), msg.unique_id, action) == msg


def test_decode_bare_defaults_error_description_and_details():
    assert envelope.decode_bare(b'{"ErrorCode":"GenericError"}', "error", "9", None) == (
        CallError("9", "GenericError", "", {}))


@pytest.mark.parametrize("data, type_, unique_id, action, expected_id, fragment", [
    (b"{}", "request", "", "Reset", None, "topic UniqueId must not be empty"),
    (b"{}", "request", "x" * 37, "Reset", None, "topic UniqueId longer than 36"),
    (b"{}", "request", "1", None, "1", "topic Action must be a string"),
    (b"{}", "request", "1", "", "1", "topic Action must not be empty"),
    (b"{}", "request", "1", "Re-set", "1", "letters and digits"),
    (b"{}", "notice", "1", "Reset", "1", "topic type must be request, response or error"),
    (b"{}", "", "1", "Reset", "1", "topic type must be"),
    (b"[]", "request", "1", "Reset", "1", "payload must be a JSON object, not array"),
    (b"null", "response", "1", None, "1", "payload must be a JSON object, not null"),
    (b"{", "response", "1", None, "1", "payload: not valid JSON"),
    (b'{"v":NaN}', "response", "1", None, "1", "NaN"),
    (b"\xff", "response", "1", None, "1", "not UTF-8"),
    (b'{"ErrorDescription":"x"}', "error", "1", None, "1", "ErrorCode must be a string, not missing"),
    (b'{"ErrorCode":"E","ErrorDetails":"x"}', "error", "1", None, "1", "ErrorDetails must be a JSON object"),
])
def test_decode_bare_refuses_with_a_precise_reason(data, type_, unique_id, action, expected_id, fragment):
    with pytest.raises(EnvelopeError) as caught:
        envelope.decode_bare(data, type_, unique_id, action)
    assert caught.value.unique_id == expected_id
    assert fragment in caught.value.reason


@pytest.mark.parametrize("msg, name", [
    (Call("1", "A", {}), "request"), (CallResult("1", {}), "response"),
    (CallError("1", "E", "", {}), "error"),
])
def test_type_names_are_those_of_emqx_4(msg, name):
    assert envelope.type_name(msg) == name == envelope.TYPE_NAMES[type(msg)]


# --- gateway errors ---------------------------------------------------------------------------

@pytest.mark.parametrize("reason, code", [
    ("queue_full", "InternalError"), ("timeout", "InternalError"), ("offline", "InternalError"),
    ("disconnected", "InternalError"), ("invalid_envelope", "FormationViolation"),
    ("schema", "FormationViolation"),
])
def test_gateway_error_code_follows_the_reason(reason, code):
    err = envelope.gateway_error("u1", reason, "what happened")
    assert err == CallError("u1", code, "what happened", {"origin": "ocpp_gw", "reason": reason})


def test_gateway_error_records_the_action_and_extra_details():
    err = envelope.gateway_error("u1", "schema", "idTag: too long", "Authorize",
                                 payload={"idTag": "x" * 30})
    assert err.details == {"origin": "ocpp_gw", "reason": "schema", "action": "Authorize",
                           "payload": {"idTag": "x" * 30}}


def test_gateway_error_takes_a_precise_code_for_schema_failures():
    err = envelope.gateway_error("u1", "schema", "idTag missing", code="OccurenceConstraintViolation")
    assert err.code == "OccurenceConstraintViolation"


def test_gateway_error_refuses_an_unknown_reason():
    with pytest.raises(ValueError):
        envelope.gateway_error("u1", "bored", "x")


def test_gateway_error_refuses_to_overwrite_its_origin():
    with pytest.raises(ValueError):
        envelope.gateway_error("u1", "timeout", "x", origin="csms")


def test_gateway_error_envelope_is_what_the_csms_receives():
    err = envelope.gateway_error("u1", "timeout", "CP001 did not answer within 30s", "Reset")
    assert obj(envelope.encode(err, "Reset")) == {
        "MessageTypeId": 4, "UniqueId": "u1", "Action": "Reset", "ErrorCode": "InternalError",
        "ErrorDescription": "CP001 did not answer within 30s",
        "ErrorDetails": {"origin": "ocpp_gw", "reason": "timeout", "action": "Reset"}}
