"""Hostile frames over real sockets: deflate bombs, bad UTF-8, deep nesting, huge numbers (SPEC §4, issue 5)."""

from __future__ import annotations

import json

import pytest

from tools.harness import password_for
from tests.security.wire import CLOSE, TEXT, RawClient, basic, deflated

MAX_FRAME = 65536
DEFLATE = {"Sec-WebSocket-Extensions": "permessage-deflate"}


@pytest.fixture(scope="module")
def gw(module_gateways):
    return module_gateways({"ocpp.max_frame_size": "64KB"})


def open_cp(gw, cid: str, headers: dict | None = None) -> RawClient:
    client = RawClient(("127.0.0.1", gw.port))
    answer = client.upgrade(f"/ocpp/{cid}", {"Authorization": basic(cid, password_for(cid)), **(headers or {})})
    assert answer.status == 101, answer
    if headers == DEFLATE:
        assert answer.headers["sec-websocket-extensions"].startswith("permessage-deflate")
    return client


def peak_rss_kib(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise AssertionError("no VmHWM")


def reset_peak_rss(pid: int) -> None:
    with open(f"/proc/{pid}/clear_refs", "w") as control:
        control.write("5")  # Linux: the peak RSS starts again from the current RSS


def bomb(megabytes: int) -> bytes:
    text = '[2,"bomb","DataTransfer",{"vendorId":"x","data":"' + "A" * (megabytes << 20) + '"}]'
    return deflated(text.encode())


def test_small_compressed_frame_inflating_to_10_mb_is_refused_1009_and_memory_stays_flat(gw):
    payload = bomb(10)
    assert len(payload) < 20_000
    with open_cp(gw, "CP021", DEFLATE) as cp:
        pid = gw.process.pid
        reset_peak_rss(pid)
        before = peak_rss_kib(pid)
        cp.send_frame(TEXT, payload, rsv1=True)
        code, reason, frames = cp.wait_close()
        growth = peak_rss_kib(pid) - before
    assert growth < 5 * 1024, f"peak RSS grew by {growth} KiB"
    assert (code, reason, frames) == (1009, f"message larger than {MAX_FRAME} bytes once inflated", [])
    gw.wait_for_log(r"\[CP021\] disconnected: frame larger than 65536 bytes")


def test_deflate_bomb_spread_over_fragments_is_refused_1009(gw):
    payload = bomb(2)
    pieces = [payload[i:i + 512] for i in range(0, len(payload), 512)]
    with open_cp(gw, "CP022", DEFLATE) as cp:
        cp.send_frame(TEXT, pieces[0], fin=False, rsv1=True)
        for piece in pieces[1:-1]:
            cp.send_frame(0x0, piece, fin=False)
        cp.send_frame(0x0, pieces[-1])
        code, _, _ = cp.wait_close()
    assert code == 1009


def test_compressed_frame_within_the_limit_is_handled(gw, mqtt_probe):
    mqtt_probe.subscribe(f"{gw.mountpoint}cp/CP023")
    data = "B" * (MAX_FRAME - 200)
    text = json.dumps([2, "fits-1", "DataTransfer", {"vendorId": "x", "data": data}])
    with open_cp(gw, "CP023", DEFLATE) as cp:
        cp.send_frame(TEXT, deflated(text.encode()), rsv1=True)
        body = mqtt_probe.expect_json(f"{gw.mountpoint}cp/CP023")
        assert (body["UniqueId"], body["Payload"]["data"]) == ("fits-1", data)
        # The budget is per message: the next one starts from zero.
        cp.send_frame(TEXT, deflated(text.replace("fits-1", "fits-2").encode()), rsv1=True)
        assert mqtt_probe.expect_json(f"{gw.mountpoint}cp/CP023")["UniqueId"] == "fits-2"


@pytest.mark.parametrize("compressed", [False, True])
def test_invalid_utf8_in_a_text_frame_closes_with_1007(gw, compressed):
    raw = b'[2,"utf-1","Heartbeat",{"a":"\xff\xfe"}]'
    with open_cp(gw, "CP024", DEFLATE if compressed else None) as cp:
        cp.send_frame(TEXT, deflated(raw) if compressed else raw, rsv1=compressed)
        code, _, frames = cp.wait_close()
    assert (code, frames) == (1007, [])


def test_invalid_utf8_split_across_fragments_closes_with_1007(gw):
    with open_cp(gw, "CP024") as cp:
        cp.send_frame(TEXT, b'[2,"utf-2","Heartbeat",{"a":"\xe2\x82', fin=False)
        cp.send_frame(0x0, b'("}]')  # \xe2\x82 must be followed by a continuation byte, not "("
        code, _, _ = cp.wait_close()
    assert code == 1007


@pytest.mark.parametrize("frame, description", [
    ('[2,"deep-1","DataTransfer",{"vendorId":"v","data":' + "[" * 80 + "]" * 80 + "}]",
     "nesting deeper than 64 levels"),
    ('[2,"deep-2","DataTransfer",' + "[" * 30000 + "]" * 30000 + "]", "nesting deeper than 64 levels"),
    ('[2,"deep-3","DataTransfer",' + '{"a":' * 10000 + "1" + "}" * 10000 + "]", "nesting deeper than 64 levels"),
    ('[2,"num-1","DataTransfer",{"vendorId":"v","data":1e999999}]', "number out of range: '1e999999'"),
    ('[2,"num-2","DataTransfer",{"vendorId":"v","data":' + "9" * 5000 + "}]", "integer longer than 4300 digits"),
    ('[2,"num-3","DataTransfer",{"vendorId":"v","data":-Infinity}]', "-Infinity is not a valid JSON number"),
])
def test_deep_nesting_and_huge_numbers_are_answered_and_never_published(gw, mqtt_probe, frame, description):
    assert len(frame.encode()) <= MAX_FRAME
    mqtt_probe.subscribe(f"{gw.mountpoint}cp/#")
    unique_id = frame.split('"')[1]
    with open_cp(gw, "CP025") as cp:
        cp.send_text(frame)
        answer = json.loads(cp.recv_text())
        assert answer == [4, unique_id, "FormationViolation", description, {}]
        cp.send_text('[2,"after-1","Heartbeat",{}]')  # the connection still works
        assert mqtt_probe.expect_json(f"{gw.mountpoint}cp/#")["UniqueId"] == "after-1"


def test_unmasked_client_frame_is_a_protocol_error(gw):
    from tests.security.wire import frame_bytes
    with open_cp(gw, "CP026") as cp:
        cp.sock.sendall(frame_bytes(TEXT, b'[2,"m","Heartbeat",{}]', mask=False))
        opcode, payload = cp.recv_frame()
    assert opcode == CLOSE and int.from_bytes(payload[:2], "big") == 1002
