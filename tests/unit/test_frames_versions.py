"""OCPP-J frames per version (SPEC §9): each version's error codes, the "-1" id, unknown
MessageTypeIds, CALLRESULTERROR and SEND on 2.1 only, `-Signed` actions. Table-driven: each row
is one raw frame, the version it arrives on, and the exact answer the gateway owes (or None)."""

from __future__ import annotations

import json

import pytest

from ocpp_gw.protocol import frames
from ocpp_gw.protocol.frames import (
    Call, CallError, CallResult, CallResultError, FrameError, Send, UnknownMessageType,
)
from ocpp_gw.protocol.versions import V16, V201, V21, VERSIONS, foreign_error_codes

BY_NAME = {"1.6": V16, "2.0.1": V201, "2.1": V21}

# (version, raw frame, expected answer as [4, id, code] or None)
MALFORMED = [
    # id readable: 1.6 says FormationViolation to everything
    ("1.6", '[2,"a","Heartbeat",{',                 [4, "a", "FormationViolation"]),
    ("1.6", '[2,"a","Heartbeat"]',                  [4, "a", "FormationViolation"]),
    ("1.6", '[2,"a","Heartbeat",[]]',               [4, "a", "FormationViolation"]),
    ("1.6", '[2,"a","Heart/beat",{}]',              [4, "a", "FormationViolation"]),
    # 2.x: broken JSON and a bad payload are FormatViolation, a bad RPC frame RpcFrameworkError
    ("2.0.1", '[2,"a","Heartbeat",{',               [4, "a", "FormatViolation"]),
    ("2.0.1", '[2,"a","Heartbeat",[]]',             [4, "a", "FormatViolation"]),
    ("2.0.1", '[3,"a",7]',                          [4, "a", "FormatViolation"]),
    ("2.0.1", '[2,"a","Heartbeat"]',                [4, "a", "RpcFrameworkError"]),
    ("2.0.1", '[2,"a","Heart/beat",{}]',            [4, "a", "RpcFrameworkError"]),
    ("2.0.1", '[4,"a",7,"d",{}]',                   [4, "a", "RpcFrameworkError"]),
    ("2.0.1", '["2","a","Heartbeat",{}]',           [4, "a", "RpcFrameworkError"]),
    ("2.1", '[2,"a","Heartbeat",{',                 [4, "a", "FormatViolation"]),
    ("2.1", '[2,"a","Heartbeat"]',                  [4, "a", "RpcFrameworkError"]),
    ("2.1", '[6,"a","NotifyPeriodicEventStream"]',  [4, "a", "RpcFrameworkError"]),
    ("2.1", '[5,"a","Code","d"]',                   [4, "a", "RpcFrameworkError"]),
    ("2.1", '[6,"a","NotifyPeriodicEventStream",1]', [4, "a", "FormatViolation"]),
    # the id cannot be read: 1.6 cannot answer, 2.x answers with "-1" and RpcFrameworkError
    ("1.6", 'hello',                                None),
    ("1.6", '{"a":1}',                              None),
    ("1.6", '[2,42,"Heartbeat",{}]',                None),
    ("2.0.1", 'hello',                              [4, "-1", "RpcFrameworkError"]),
    ("2.0.1", '{"a":1}',                            [4, "-1", "RpcFrameworkError"]),
    ("2.0.1", '[2,42,"Heartbeat",{}]',              [4, "-1", "RpcFrameworkError"]),
    ("2.0.1", '[2,"' + "x" * 37 + '","Heartbeat",{}]', [4, "-1", "RpcFrameworkError"]),
    ("2.1", '[]',                                   [4, "-1", "RpcFrameworkError"]),
    ("2.1", '[2,',                                  [4, "-1", "RpcFrameworkError"]),
    # unknown MessageTypeIds: 1.6 and 2.1 ignore, 2.0.1 answers MessageTypeNotSupported
    ("1.6", '[7,"a",{}]',                           None),
    ("1.6", '[5,"a","GenericError","",{}]',         None),
    ("1.6", '[6,"a","NotifyPeriodicEventStream",{}]', None),
    ("2.0.1", '[7,"a",{}]',                         [4, "a", "MessageTypeNotSupported"]),
    ("2.0.1", '[5,"a","GenericError","",{}]',       [4, "a", "MessageTypeNotSupported"]),
    ("2.0.1", '[6,"a","NotifyPeriodicEventStream",{}]', [4, "a", "MessageTypeNotSupported"]),
    ("2.0.1", '[9,17]',                             [4, "-1", "MessageTypeNotSupported"]),
    ("2.1", '[7,"a",{}]',                           None),
    ("2.1", '[0,"a"]',                              None),
]


@pytest.mark.parametrize("version, text, expected", MALFORMED,
                         ids=[f"{v}:{t[:40]}" for v, t, _ in MALFORMED])
def test_a_malformed_frame_is_answered_in_its_versions_words(version, text, expected):
    with pytest.raises(FrameError) as caught:
        frames.parse(text, BY_NAME[version])
    answer = frames.answer_malformed(caught.value, BY_NAME[version])
    if expected is None:
        assert answer is None
        return
    assert [4, answer.unique_id, answer.code] == expected
    assert answer.code in BY_NAME[version].codes.known
    assert answer.details == {}
    wire = json.loads(frames.serialize(answer, BY_NAME[version]))
    assert wire[:3] == expected and len(wire) == 5


@pytest.mark.parametrize("version", VERSIONS.values(), ids=list(VERSIONS))
def test_the_gateway_never_uses_another_versions_spelling(version):
    codes = version.codes
    own = {codes.format_violation, codes.occurrence_violation, codes.property_violation,
           codes.type_violation, codes.not_implemented, codes.internal_error, codes.security_error,
           codes.generic_error, codes.message_type_not_supported, codes.rpc_framework_error} - {None}
    assert own <= codes.known
    assert not own & foreign_error_codes(version)


def test_the_unreadable_id_answer_does_not_embed_the_raw_frame():
    with pytest.raises(FrameError) as caught:
        frames.parse('{"secret":"do-not-echo"}', V201)
    answer = frames.answer_malformed(caught.value, V201)
    assert answer.unique_id == "-1" and "do-not-echo" not in answer.description


def test_error_descriptions_longer_than_255_are_sent_empty_on_2x_only():
    error = CallError("a", "GenericError", "x" * 300, {})
    assert json.loads(frames.serialize(error, V201))[3] == ""
    assert json.loads(frames.serialize(error, V21))[3] == ""
    at_limit = CallError("a", "GenericError", "x" * 255, {})
    assert json.loads(frames.serialize(at_limit, V201))[3] == "x" * 255
    assert frames.serialize(error, V16) == frames.serialize(error)
    assert len(json.loads(frames.serialize(error, V16))[3]) == 300


# -- 2.1's new message types ---------------------------------------------------------------------

def test_send_and_callresulterror_parse_and_serialize_on_21():
    send = frames.parse('[6,"s1","NotifyPeriodicEventStream",{"id":1,"pending":0,"basetime":"t","data":[]}]', V21)
    assert send == Send("s1", "NotifyPeriodicEventStream",
                        {"id": 1, "pending": 0, "basetime": "t", "data": []})
    assert frames.parse(frames.serialize(send, V21), V21) == send
    error = frames.parse('[5,"r1","FormatViolation","bad answer",{"k":1}]', V21)
    assert error == CallResultError("r1", "FormatViolation", "bad answer", {"k": 1})
    assert frames.serialize(error, V21) == '[5,"r1","FormatViolation","bad answer",{"k":1}]'


@pytest.mark.parametrize("version", [V16, V201], ids=["1.6", "2.0.1"])
@pytest.mark.parametrize("text", ['[5,"r1","GenericError","",{}]', '[6,"s1","X",{}]'])
def test_types_5_and_6_are_unknown_before_21(version, text):
    with pytest.raises(UnknownMessageType):
        frames.parse(text, version)


# -- signed messages -------------------------------------------------------------------------------

SIGNED = '[2,"g1","BootNotification-Signed",{"payload":"eyJ9","signatures":[]}]'


@pytest.mark.parametrize("version", [V201, V21], ids=["2.0.1", "2.1"])
def test_signed_actions_pass_through_on_2x(version):
    call = frames.parse(SIGNED, version)
    assert call == Call("g1", "BootNotification-Signed", {"payload": "eyJ9", "signatures": []})
    assert frames.serialize(call, version) == SIGNED
    assert type(frames.parse('[3,"g1",{"payload":"x"}]', version)) is CallResult


@pytest.mark.parametrize("action", ["-Signed", "Boot-signed", "Boot-Signed-Signed", "Boot/x-Signed"])
def test_only_an_action_name_followed_by_signed_is_a_signed_action(action):
    with pytest.raises(FrameError) as caught:
        frames.parse(f'[2,"g1","{action}",{{}}]', V201)
    assert caught.value.unique_id == "g1"


def test_signed_actions_do_not_exist_in_16():
    with pytest.raises(FrameError) as caught:
        frames.parse(SIGNED, V16)
    assert frames.answer_malformed(caught.value, V16).code == "FormationViolation"


def test_16_parsing_is_unchanged_by_the_version_argument():
    for text in ('[2,"a","Heartbeat",{}]', '[3,"a",{"x":1}]', '[4,"a","GenericError","d",{}]'):
        assert frames.parse(text, V16) == frames.parse(text)
        assert frames.serialize(frames.parse(text)) == text
