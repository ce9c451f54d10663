"""SPEC §4 through the real gateway: every malformed frame answered exactly, nothing malformed on MQTT,
and the connection-level rules (binary 1003, too big 1009, ten bad frames 1002)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ocpp_gw.protocol import frames
from tests.integration._support import (
    answered_marker,
    connect_cp,
    logged_marker,
    published_before_marker,
    recv_frame,
    recv_text,
    topics,
    upstream_of,
    wait_closed,
)

CASE_DIR = Path(__file__).resolve().parents[1] / "data" / "frames"


def frame_text(case: dict) -> str:
    if "text_parts" in case:
        return "".join(chunk * times for chunk, times in case["text_parts"])
    return case["text"]


def sendable(text: str) -> bool:
    """A WebSocket text frame carries UTF-8: a lone surrogate in the case text cannot be put on the wire."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def case_file(stem: str) -> list[dict]:
    cases = json.loads((CASE_DIR / f"{stem}.json").read_text(encoding="utf-8"))
    return [case for case in cases if sendable(frame_text(case))]


def expected_answer(text: str) -> str | None:
    """The exact frame SPEC §4 asks for: the codec's FormationViolation, or None for unanswerable."""
    with pytest.raises(frames.FrameError) as caught:
        frames.parse(text)
    answer = frames.formation_violation(caught.value)
    return None if answer is None else frames.serialize(answer)


@pytest.fixture(scope="module")
def tolerant_gw(module_start):
    """A gateway that never gives up on bad frames, so a whole case table runs on one connection."""
    return module_start({"ocpp.max_bad_frames": 100000, "ocpp.max_frame_size": "1MB"})


def check_case(cp, probe, gateway, cid: str, case: dict) -> str | None:
    """Send one case; None when the gateway did exactly what SPEC §4 asks, else what went wrong."""
    text = frame_text(case)
    cp.send(text)
    if case["expect"] == "error":
        answer = expected_answer(text)
        if case["unique_id"] is None:
            before = answered_marker(cp)
            return None if answer is None and before == [] else f"unanswerable, yet got {before}"
        received = recv_text(cp)
        if received != answer or json.loads(received)[:3] != [4, case["unique_id"], "FormationViolation"]:
            return f"answered {received!r}, expected {answer!r}"
        if case["description_contains"] not in json.loads(received)[3]:
            return f"answered {received!r}, whose description lacks {case['description_contains']!r}"
        return None
    if case["expect"] == "unknown_type":
        before = answered_marker(cp)
        return None if before == [] else f"an unknown MessageTypeId was answered: {before}"
    if case["expect"] == "call":
        message = frames.parse(text)
        body = probe.expect_json(topics(gateway, cid).call, {"UniqueId": message.unique_id})
        expected = {"MessageTypeId": 2, "UniqueId": message.unique_id, "Action": message.action,
                    "Payload": message.payload, "Protocol": "ocpp1.6"}
        return None if body == expected else f"published {body}, expected {expected}"
    raise AssertionError(f"unexpected case kind {case['expect']}")


@pytest.mark.parametrize("stem, cid", [
    ("malformed_structure", "CP021"), ("malformed_fields", "CP022"), ("json_hazards", "CP023"),
    ("unknown_type", "CP024"),
])
def test_every_case_of_the_table_is_answered_exactly_and_nothing_malformed_is_published(
        tolerant_gw, watch, stem, cid):
    probe = watch(tolerant_gw)
    cases = case_file(stem)
    assert cases
    with connect_cp(tolerant_gw, cid) as cp:
        problems = {case["name"]: check_case(cp, probe, tolerant_gw, cid, case) for case in cases}
        assert {name: problem for name, problem in problems.items() if problem} == {}
        assert published_before_marker(cp, probe, tolerant_gw, cid) == []


def test_valid_calls_of_the_table_reach_mqtt_as_sent(tolerant_gw, watch):
    probe = watch(tolerant_gw)
    calls = [case for case in case_file("valid") if case["expect"] == "call"]
    with connect_cp(tolerant_gw, "CP025") as cp:
        problems = {case["name"]: check_case(cp, probe, tolerant_gw, "CP025", case) for case in calls}
        assert {name: problem for name, problem in problems.items() if problem} == {}
        assert published_before_marker(cp, probe, tolerant_gw, "CP025") == []


def test_action_with_mqtt_wildcards_is_refused_and_not_published(shared_gw, watch):
    probe = watch(shared_gw)
    with connect_cp(shared_gw, "CP026") as cp:
        cp.send('[2,"x1","Boot/#",{}]')
        assert recv_text(cp) == \
            '[4,"x1","FormationViolation","Action \'Boot/#\' must be letters and digits, starting with a letter",{}]'
        cp.send('[2,"x2","+",{}]')
        assert recv_frame(cp) == [4, "x2", "FormationViolation",
                                  "Action '+' must be letters and digits, starting with a letter", {}]
        assert published_before_marker(cp, probe, shared_gw, "CP026") == []


def test_garbage_without_a_readable_id_gets_no_answer_and_is_logged(shared_gw, watch):
    probe = watch(shared_gw)
    since = shared_gw.mark()
    with connect_cp(shared_gw, "CP027") as cp:
        for garbage in ["hello", "{}", "[]", '[2,42,"Heartbeat",{}]', '[2,"","Heartbeat",{}]',
                        '[2,"' + "i" * 37 + '","Heartbeat",{}]']:
            cp.send(garbage)
        assert answered_marker(cp) == []
        assert published_before_marker(cp, probe, shared_gw, "CP027") == []
    shared_gw.wait_for_log(r"\[CP027\] malformed frame: not valid JSON", since=since)
    shared_gw.wait_for_log(r"\[CP027\] malformed frame: UniqueId longer than 36 characters", since=since)


def test_unique_id_of_36_characters_is_accepted(shared_gw, watch):
    probe = watch(shared_gw)
    unique_id = "u" * 36
    with connect_cp(shared_gw, "CP028") as cp:
        cp.send(f'[2,"{unique_id}","Heartbeat",{{}}]')
        assert probe.expect_json(topics(shared_gw, "CP028").call) == {
            "MessageTypeId": 2, "Protocol": "ocpp1.6", "UniqueId": unique_id, "Action": "Heartbeat", "Payload": {}}


def test_unknown_message_type_is_ignored_and_logged(shared_gw, watch):
    probe = watch(shared_gw)
    since = shared_gw.mark()
    with connect_cp(shared_gw, "CP029") as cp:
        cp.send('[5,"u1","Heartbeat",{}]')
        cp.send('[7,"u2",{}]')
        assert answered_marker(cp) == []
        assert published_before_marker(cp, probe, shared_gw, "CP029") == []
    shared_gw.wait_for_log(r"\[CP029\] u1 ignored frame: unknown MessageTypeId 5", since=since)
    shared_gw.wait_for_log(r"\[CP029\] u2 ignored frame: unknown MessageTypeId 7", since=since)


def test_binary_frame_closes_with_1003(shared_gw, watch):
    probe = watch(shared_gw)
    with connect_cp(shared_gw, "CP030") as cp:
        cp.send(b'[2,"b1","Heartbeat",{}]')
        closed = wait_closed(cp)
    assert (closed.code, closed.reason) == (1003, "binary frames are not OCPP-J")
    event = probe.expect_json(topics(shared_gw, "CP030").event, {"event": "disconnected"})
    assert event["reason"] == "binary frames are not OCPP-J"
    assert upstream_of(probe.drain(), shared_gw, "CP030") == []


def test_text_frame_that_is_not_utf8_closes_with_1007(shared_gw, watch):
    # The table's lone-surrogate cases cannot be sent as text; this is what such bytes get on the wire.
    probe = watch(shared_gw)
    with connect_cp(shared_gw, "CP039") as cp:
        cp.send(b'[2,"n1","Heartbeat",{"x":"\xff"}]', text=True)
        assert wait_closed(cp).code == 1007
        probe.expect_json(topics(shared_gw, "CP039").event, {"event": "disconnected"}, timeout=2)
    assert upstream_of(probe.drain(), shared_gw, "CP039") == []


@pytest.fixture(scope="module")
def small_frames_gw(module_start):
    return module_start({"ocpp.max_frame_size": "1KB"})


def heartbeat_of_size(unique_id: str, size: int, fill: str = "a") -> str:
    head, tail = f'[2,"{unique_id}","DataTransfer",{{"data":"', '"}]'
    return head + fill * (size - len(head) - len(tail)) + tail


def test_frame_of_exactly_max_frame_size_is_accepted(small_frames_gw, watch):
    probe = watch(small_frames_gw)
    with connect_cp(small_frames_gw, "CP031") as cp:
        text = heartbeat_of_size("s1", 1024)
        assert len(text.encode()) == 1024
        cp.send(text)
        body = probe.expect_json(topics(small_frames_gw, "CP031").call, {"UniqueId": "s1"})
    assert len(body["Payload"]["data"]) == 1024 - len('[2,"s1","DataTransfer",{"data":""}]')


def test_frame_over_max_frame_size_closes_with_1009(small_frames_gw, watch):
    probe = watch(small_frames_gw)
    with connect_cp(small_frames_gw, "CP032") as cp:
        cp.send(heartbeat_of_size("s2", 1025))
        closed = wait_closed(cp)
        assert closed.code == 1009
        # The session ends with the connection, not when some later timeout notices.
        event = probe.expect_json(topics(small_frames_gw, "CP032").event, {"event": "disconnected"}, timeout=2)
    assert event["reason"] == "frame larger than 1024 bytes"
    assert upstream_of(probe.drain(), small_frames_gw, "CP032") == []


def test_frame_size_is_counted_in_bytes_not_characters(small_frames_gw, watch):
    probe = watch(small_frames_gw)
    with connect_cp(small_frames_gw, "CP033") as cp:
        text = heartbeat_of_size("s3", 600, fill="é")  # 600 characters, over 1100 bytes of UTF-8
        assert len(text.encode()) > 1024
        cp.send(text)
        closed = wait_closed(cp)
        assert (closed.code, closed.reason) == (1009, "frame larger than 1024 bytes")
        event = probe.expect_json(topics(small_frames_gw, "CP033").event, {"event": "disconnected"}, timeout=2)
    assert event["reason"] == "frame larger than 1024 bytes"
    assert upstream_of(probe.drain(), small_frames_gw, "CP033") == []


def test_ten_bad_frames_in_a_row_close_with_1002(shared_gw, watch):
    probe = watch(shared_gw)
    with connect_cp(shared_gw, "CP034") as cp:
        for n in range(1, 10):
            cp.send(f'[2,"bad-{n}"]')
            assert recv_frame(cp) == [4, f"bad-{n}", "FormationViolation", "Call must have 4 elements, not 2", {}]
        cp.send('[2,"bad-10"]')
        closed = wait_closed(cp, allow_frames=True)
    assert closed.frames == [[4, "bad-10", "FormationViolation", "Call must have 4 elements, not 2", {}]]
    assert (closed.code, closed.reason) == (1002, "10 bad frames in a row")
    assert probe.expect_json(topics(shared_gw, "CP034").event, {"event": "disconnected"})["reason"] == \
        "10 bad frames in a row"
    assert upstream_of(probe.drain(), shared_gw, "CP034") == []


def test_a_good_frame_resets_the_bad_frame_count(shared_gw):
    with connect_cp(shared_gw, "CP035") as cp:
        for round_ in range(2):
            for n in range(9):
                cp.send(f'[2,"r{round_}-{n}"]')
                assert recv_frame(cp)[:3] == [4, f"r{round_}-{n}", "FormationViolation"]
            logged_marker(cp, shared_gw)  # well-formed: the count starts again
        cp.send('[2,"still-open"]')
        assert recv_frame(cp)[:2] == [4, "still-open"]


def test_unknown_message_types_count_as_bad_frames(shared_gw):
    with connect_cp(shared_gw, "CP036") as cp:
        for n in range(10):
            cp.send(f'[9,"t{n}"]')
        closed = wait_closed(cp)
    assert (closed.code, closed.reason) == (1002, "10 bad frames in a row")


def test_call_result_from_cp_matching_nothing_is_dropped_not_published(shared_gw, watch):
    probe = watch(shared_gw)
    since = shared_gw.mark()
    with connect_cp(shared_gw, "CP037") as cp:
        cp.send('[3,"orphan",{"status":"Accepted"}]')
        cp.send('[4,"orphan-2","InternalError","",{}]')
        assert published_before_marker(cp, probe, shared_gw, "CP037") == []
    shared_gw.wait_for_log(r"\[CP037\] orphan dropped CP reply: it matches no recent CSMS call", since=since)
    shared_gw.wait_for_log(r"\[CP037\] orphan-2 dropped CP reply", since=since)
