"""How a connection ended, as the `disconnected` event, the log and the counters say (SPEC §10): a line the charge
point's side ends without a close frame is 1006, an empty close frame 1005, the gateway's own closes keep theirs."""

from __future__ import annotations

import json
import socket
import struct
import urllib.request

import pytest

from tools.harness import free_port
from tests.integration._support import topics
from tests.security.wire import CLOSE, TEXT, RawClient, basic


def with_admin() -> dict:
    return {"admin.listener": f"127.0.0.1:{free_port()}"}


@pytest.fixture(scope="module")
def shared_gw(module_start):
    """The integration defaults, with the admin API on for the counters."""
    return module_start(with_admin())


def open_session(gw, cid: str) -> RawClient:
    client = RawClient(("127.0.0.1", gw.port))
    answer = client.upgrade(f"/ocpp/{cid}", {"Authorization": basic(cid, gw.password(cid))})
    assert answer.status == 101
    return client


def stats(gw) -> dict:
    with urllib.request.urlopen(f"http://{gw.settings['admin.listener']}/api/v1/stats", timeout=5) as answer:
        return json.load(answer)


def counter(gw, name: str) -> int:
    return stats(gw)["counters"].get(name, 0)


def ended(probe, gw, cid: str) -> dict:
    probe.expect_json(topics(gw, cid).event, {"event": "connected"})
    return probe.expect_json(topics(gw, cid).event, {"event": "disconnected"})


def test_a_line_ended_with_a_tcp_fin_and_no_close_frame_is_1006(shared_gw, watch):
    probe, cid = watch(shared_gw), "CP040"
    since, before = shared_gw.mark(), counter(shared_gw, "connections.closed.code_1006")
    client = open_session(shared_gw, cid)
    client.sock.shutdown(socket.SHUT_WR)  # FIN, no close frame
    event = ended(probe, shared_gw, cid)
    client.close()
    assert (event["code"], event["reason"]) == (1006, "connection lost without a close frame (TCP FIN, code 1006)")
    shared_gw.wait_for_log(rf"\[{cid}\] disconnected: connection lost without a close frame \(TCP FIN, code 1006\)",
                           since=since)
    assert counter(shared_gw, "connections.closed.code_1006") == before + 1


def test_a_line_reset_without_a_close_frame_is_1006(shared_gw, watch):
    probe, cid = watch(shared_gw), "CP041"
    client = open_session(shared_gw, cid)
    client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST
    event = ended(probe, shared_gw, cid)
    assert event["code"] == 1006
    assert event["reason"] == "connection lost without a close frame (connection reset, code 1006)"


def test_an_empty_close_frame_is_1005(shared_gw, watch):
    probe, cid = watch(shared_gw), "CP042"
    with open_session(shared_gw, cid) as client:
        client.send_frame(CLOSE, b"")
        event = ended(probe, shared_gw, cid)
    assert (event["code"], event["reason"]) == (1005, "closed by charge point (code 1005)")


@pytest.mark.parametrize("cid, code", [("CP043", 1000), ("CP044", 4001)])
def test_a_close_frame_with_a_code_keeps_it(shared_gw, watch, cid, code):
    probe = watch(shared_gw)
    with open_session(shared_gw, cid) as client:
        client.send_frame(CLOSE, struct.pack("!H", code) + b"bye")
        event = ended(probe, shared_gw, cid)
    assert (event["code"], event["reason"]) == (code, f"closed by charge point (code {code})")


def test_the_gateways_own_idle_cut_stays_1001_though_the_line_then_ends(start, watch):
    gw = start({"ocpp.idle_timeout": "1s", **with_admin()})
    probe, cid = watch(gw), "CP045"
    with open_session(gw, cid) as client:
        code, reason, _ = client.wait_close(timeout=5)
        assert code == 1001
        event = ended(probe, gw, cid)
    assert event["code"] == 1001 and "code 1006" not in event["reason"]
    assert counter(gw, "connections.closed.code_1001") == 1
    assert counter(gw, "connections.closed.code_1006") == 0


def test_a_frame_that_breaks_the_protocol_keeps_the_gateways_close_code(shared_gw, watch):
    probe, cid = watch(shared_gw), "CP046"
    with open_session(shared_gw, cid) as client:
        client.send_frame(TEXT, b"\xff\xfe not UTF-8")
        code, _, _ = client.wait_close(timeout=5)
        assert code == 1007
        event = ended(probe, shared_gw, cid)
    assert event["code"] == 1007
