"""OCPP-J frames: the data-driven cases of tests/data/frames/*.json, then the codec's own rules."""

import json
import sys
from pathlib import Path

import pytest

from ocpp_gw.protocol import frames
from ocpp_gw.protocol.frames import Call, CallError, CallResult, FrameError, UnknownMessageType

CASE_DIR = Path(__file__).resolve().parent.parent / "data" / "frames"
EXPECTED_TYPES = {"call": Call, "callresult": CallResult, "callerror": CallError}
CASE_KEYS = {"name", "text", "text_parts", "expect", "unique_id", "description_contains", "fields"}


def load_cases():
    for path in sorted(CASE_DIR.glob("*.json")):
        for case in json.loads(path.read_text(encoding="utf-8")):
            yield pytest.param(case, id=f"{path.stem}:{case['name']}")


CASES = list(load_cases())


def frame_text(case: dict) -> str:
    if "text_parts" in case:
        return "".join(chunk * times for chunk, times in case["text_parts"])
    return case["text"]


def test_case_files_are_well_formed():
    names = [param.values[0]["name"] for param in CASES]
    assert sorted(CASE_DIR.glob("*.json")), "no case files"
    assert len(names) == len(set(names)), "case names must be unique"
    for param in CASES:
        case = param.values[0]
        assert set(case) <= CASE_KEYS, case["name"]
        assert ("text" in case) != ("text_parts" in case), case["name"]
        assert case["expect"] in {"call", "callresult", "callerror", "error", "unknown_type"}
        if case["expect"] in {"error", "unknown_type"}:
            assert "unique_id" in case and "description_contains" in case, case["name"]


@pytest.mark.parametrize("case", CASES)
def test_frame_case(case):
    text = frame_text(case)
    expect = case["expect"]
    if expect in EXPECTED_TYPES:
        msg = frames.parse(text)
        assert type(msg) is EXPECTED_TYPES[expect]
        if "unique_id" in case:
            assert msg.unique_id == case["unique_id"]
        for field, value in case.get("fields", {}).items():
            assert getattr(msg, field) == value, field
        assert frames.parse(frames.serialize(msg)) == msg
        return

    with pytest.raises(FrameError) as caught:
        frames.parse(text)
    err = caught.value
    assert isinstance(err, UnknownMessageType) == (expect == "unknown_type")
    assert err.unique_id == case["unique_id"]
    assert case["description_contains"] in err.description
    assert "\n" not in err.description and len(err.description) <= 100
    answer = frames.formation_violation(err)
    if expect == "unknown_type" or case["unique_id"] is None:
        assert answer is None
    else:
        assert answer == CallError(case["unique_id"], "FormationViolation", err.description, {})


def test_error_codes_are_the_ten_of_ocpp_16_as_spelled_there():
    assert frames.ERROR_CODES == {
        "NotImplemented", "NotSupported", "InternalError", "ProtocolError", "SecurityError",
        "FormationViolation", "PropertyConstraintViolation", "OccurenceConstraintViolation",
        "TypeConstraintViolation", "GenericError",
    }


@pytest.mark.parametrize("msg, text", [
    (Call("1", "Heartbeat", {}), '[2,"1","Heartbeat",{}]'),
    (Call("a b", "DataTransfer", {"data": "über ☃", "n": [1, 2.5, None, True]}),
     '[2,"a b","DataTransfer",{"data":"über ☃","n":[1,2.5,null,true]}]'),
    (CallResult("1", {"status": "Accepted"}), '[3,"1",{"status":"Accepted"}]'),
    (CallError("1", "GenericError", "boom", {"k": "v"}), '[4,"1","GenericError","boom",{"k":"v"}]'),
])
def test_serialize_writes_compact_json_with_characters_unescaped(msg, text):
    assert frames.serialize(msg) == text


@pytest.mark.parametrize("msg", [
    Call("19223201", "BootNotification", {"chargePointVendor": "V", "chargePointModel": "M"}),
    Call("x" * 36, "A" * 64, {"nested": {"list": [{"a": [1, [2, [3]]]}], "emoji": "\U0001F600"}}),
    Call("ünï", "MeterValues", {"f": -0.0, "big": 10 ** 40, "tiny": 5e-324, "max": 1.7976931348623157e308}),
    CallResult("1", {}),
    CallResult("id", {"idTagInfo": {"status": "Accepted"}, "quote": "\"\\/"}),
    CallError("1", "NotImplemented", "", {}),
    CallError("1", "VendorSpecificCode", "new\nline\ttab", {"detail": [1, 2]}),
])
def test_parse_of_serialize_gives_back_the_message(msg):
    assert frames.parse(frames.serialize(msg)) == msg


def test_serialize_refuses_a_payload_with_nan():
    with pytest.raises(ValueError):
        frames.serialize(Call("1", "MeterValues", {"v": float("nan")}))


def test_serialize_refuses_what_is_not_a_message():
    with pytest.raises(TypeError):
        frames.serialize([2, "1", "Heartbeat", {}])


def test_parse_of_bytes_is_a_frame_error_not_a_crash():
    with pytest.raises(FrameError) as caught:
        frames.parse(b'[2,"1","Heartbeat",{}]')
    assert caught.value.unique_id is None


def test_huge_integer_is_refused_even_with_the_interpreter_limit_off():
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(0)
    try:
        with pytest.raises(FrameError, match="integer longer than 4300 digits"):
            frames.parse('[3,"a",{"v":' + "7" * 50_000 + "}]")
    finally:
        sys.set_int_max_str_digits(previous)


def test_interpreter_int_limit_lower_than_ours_is_a_frame_error():
    previous = sys.get_int_max_str_digits()
    sys.set_int_max_str_digits(640)
    try:
        with pytest.raises(FrameError) as caught:
            frames.parse('[3,"a",{"v":' + "7" * 1000 + "}]")
        assert caught.value.unique_id == "a"
    finally:
        sys.set_int_max_str_digits(previous)


def test_unknown_message_type_is_a_frame_error_but_never_answered():
    err = UnknownMessageType("unknown MessageTypeId 5", "a")
    assert isinstance(err, FrameError)
    assert frames.formation_violation(err) is None


def test_formation_violation_echoes_the_id_and_description():
    err = FrameError("payload must be a JSON object, not array", "42")
    assert frames.formation_violation(err) == CallError(
        "42", "FormationViolation", "payload must be a JSON object, not array", {})
    assert frames.serialize(frames.formation_violation(err)) == (
        '[4,"42","FormationViolation","payload must be a JSON object, not array",{}]')


def test_formation_violation_is_none_without_an_id():
    assert frames.formation_violation(FrameError("not valid JSON")) is None


def test_parsed_messages_are_immutable():
    msg = frames.parse('[2,"1","Heartbeat",{}]')
    with pytest.raises(AttributeError):
        msg.action = "Reset"


def test_frame_error_str_is_its_description():
    assert str(FrameError("UniqueId must not be empty")) == "UniqueId must not be empty"


def test_deep_nesting_does_not_leave_the_parser_unusable():
    with pytest.raises(FrameError):
        frames.parse("[" * 200_000)
    assert frames.parse('[3,"ok",{}]') == CallResult("ok", {})


@pytest.mark.parametrize("value, name", [
    (None, "null"), (True, "boolean"), (1, "number"), (1.5, "number"), ("s", "string"),
    ([], "array"), ({}, "object"),
])
def test_json_type_names_values_as_json_does(value, name):
    assert frames.json_type(value) == name


def test_excerpt_shortens_long_input_to_one_line():
    text = frames.excerpt("line\n" * 1000)
    assert len(text) <= 40 and "\n" not in text and text.endswith("...")
