"""The whole-text-frame shortcut: the same messages and frames as wsproto, and None for the rest.

Frames are made by wsproto's client and server, so the shortcut is held to the library it skips.
"""

from __future__ import annotations

import socket
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from wsproto import ConnectionType, WSConnection
from wsproto.events import (AcceptConnection, CloseConnection, Message, Ping, Pong, Request,
                            TextMessage)
from wsproto.extensions import PerMessageDeflate

from ocpp_gw.chargers import text_frames
from ocpp_gw.chargers.websocket import CpWebSocket, LockedSocket
from ocpp_gw.protocol import handshake

REQUEST = Request(host="cp", target="/ocpp/CP1", subprotocols=["ocpp1.6"])


def _open_pair(extensions=()):
    client, server = WSConnection(ConnectionType.CLIENT), WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="cp", target="/ocpp/CP1", subprotocols=["ocpp1.6"],
                                            extensions=list(extensions))))
    list(server.events())
    client.receive_data(server.send(AcceptConnection(subprotocol="ocpp1.6")))
    list(client.events())
    return client, server


def _client_frame(text: str, *, finished: bool = True) -> bytes:
    client, _ = _open_pair()
    return client.send(TextMessage(data=text, message_finished=finished))


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 4000, 65535])
def test_a_client_text_frame_of_any_short_or_two_byte_length_reads_as_its_text(size):
    text = "x" * size
    assert text_frames.client_texts(_client_frame(text)) == [text]


def test_several_whole_frames_in_one_read_are_all_returned_in_order():
    texts = ['[2,"1","Heartbeat",{}]', "é" * 100, '[3,"2",{}]']
    assert text_frames.client_texts(b"".join(_client_frame(t) for t in texts)) == texts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(max_size=300), min_size=1, max_size=4))
def test_any_text_wsproto_sends_as_a_client_reads_back_unchanged(texts):
    assert text_frames.client_texts(b"".join(_client_frame(t) for t in texts)) == texts


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=70000))
def test_the_server_frame_is_byte_for_byte_the_one_wsproto_builds(text):
    _, server = _open_pair()
    assert text_frames.server_text(text) == server.send(TextMessage(data=text))


def test_a_server_frame_over_64_kib_has_the_eight_byte_length():
    _, server = _open_pair()
    assert text_frames.server_text("y" * 70000) == server.send(TextMessage(data="y" * 70000))


def _ping() -> bytes:
    client, _ = _open_pair()
    return client.send(Ping(payload=b"hi"))


def _compressed(text: str) -> bytes:
    client = WSConnection(ConnectionType.CLIENT)
    deflate = PerMessageDeflate()
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="cp", target="/", extensions=[deflate])))
    request = next(server.events())
    client.receive_data(server.send(AcceptConnection(extensions=[PerMessageDeflate()])))
    list(client.events())
    assert request.extensions
    return client.send(TextMessage(data=text))


def _with_length(frame: bytes, header: bytes) -> bytes:
    """`frame` (a masked short frame) with its length field replaced by `header`."""
    return header + frame[2:]


NOT_MINE = {
    "a ping": _ping(),
    "a text then a ping in one read": _client_frame("a") + _ping(),
    "a first fragment": _client_frame("part", finished=False),
    "a frame cut by the read": _client_frame("abcdef")[:-2],
    "a header alone": _client_frame("abcdef")[:2],
    "an unmasked frame": b"\x81\x02hi",
    "a binary frame": b"\x82" + _client_frame("hi")[1:],
    "an RSV bit (compressed)": _compressed("hello hello hello"),
    "invalid UTF-8": b"\x81\x82\x00\x00\x00\x00\xc3\x28",
    "a two-byte length under 126": _with_length(_client_frame("hi"), b"\x81\xfe\x00\x02"),
    "an eight-byte length": b"\x81\xff" + struct.pack("!Q", 2) + b"\x00\x00\x00\x00hi",
    "a close frame": _open_pair()[0].send(CloseConnection(code=1000)),
}


@pytest.mark.parametrize("what", NOT_MINE)
def test_anything_but_whole_text_frames_is_left_to_wsproto(what):
    assert text_frames.client_texts(NOT_MINE[what]) is None


def test_a_frame_over_the_size_limit_is_left_to_wsproto_which_closes_1009():
    frame = _client_frame("z" * 200)
    assert text_frames.client_texts(frame, 200) == ["z" * 200]
    assert text_frames.client_texts(frame, 199) is None


# -- the charge point's socket: shortcut and wsproto share one stream ------------------------------


@pytest.fixture
def cp_socket():
    """A CpWebSocket on one end of a socket pair and a wsproto client on the other."""
    ours, theirs = socket.socketpair()
    client = WSConnection(ConnectionType.CLIENT)
    request = handshake.parse_request(client.send(REQUEST), path_prefix="/ocpp")
    ws = CpWebSocket(LockedSocket(ours, lambda: None, send_timeout=1.0), handshake.Upgrade.of(request), "ocpp1.6",
                     max_message_size=1000)
    client.receive_data(theirs.recv(4096))
    assert any(isinstance(event, AcceptConnection) for event in client.events())
    yield ws, client, theirs
    ours.close()
    theirs.close()


def _read(ws, theirs, data: bytes) -> list:
    theirs.sendall(data)
    ws.receive_available(drain=True)
    return ws.take_messages()


def test_a_frame_split_across_reads_then_whole_frames_arrive_complete_and_in_order(cp_socket):
    ws, client, theirs = cp_socket
    first, second, third = (client.send(TextMessage(data=text)) for text in ("one", "two", "three"))
    assert _read(ws, theirs, first[:3]) == []
    assert _read(ws, theirs, first[3:] + second) == ["one", "two"]
    assert _read(ws, theirs, third) == ["three"]


def test_a_fragmented_message_is_joined_and_the_next_whole_frame_follows_it(cp_socket):
    ws, client, theirs = cp_socket
    start = client.send(TextMessage(data="fragm", message_finished=False))
    assert _read(ws, theirs, start) == []
    end = client.send(TextMessage(data="ent", message_finished=True))
    assert _read(ws, theirs, end + client.send(TextMessage(data="next"))) == ["fragment", "next"]


def test_a_new_text_message_inside_a_fragmented_one_is_still_a_protocol_error(cp_socket):
    ws, client, theirs = cp_socket
    assert _read(ws, theirs, client.send(TextMessage(data="fragm", message_finished=False))) == []
    assert _read(ws, theirs, b"\x81\x82\x00\x00\x00\x00hi") == []  # a whole text frame, not a continuation
    assert ws.ended and ws.close_reason == 1002


def test_a_ping_between_two_texts_is_answered_and_both_texts_arrive(cp_socket):
    ws, client, theirs = cp_socket
    data = client.send(TextMessage(data="a")) + client.send(Ping(payload=b"p")) + client.send(TextMessage(data="b"))
    assert _read(ws, theirs, data) == ["a", "b"]
    client.receive_data(theirs.recv(4096))
    assert [type(event) for event in client.events()] == [Pong]


def test_a_message_over_the_limit_still_closes_with_1009(cp_socket):
    ws, client, theirs = cp_socket
    assert _read(ws, theirs, client.send(TextMessage(data="q" * 1001))) == []
    assert ws.ended and ws.frame_too_big
    client.receive_data(theirs.recv(4096))
    closes = [event for event in client.events() if isinstance(event, CloseConnection)]
    assert [close.code for close in closes] == [1009]


def test_invalid_utf8_still_closes_with_1007(cp_socket):
    ws, _client, theirs = cp_socket
    assert _read(ws, theirs, b"\x81\x82\x00\x00\x00\x00\xc3\x28") == []
    assert ws.ended
    assert ws.close_reason == 1007


def test_what_the_gateway_sends_reads_as_text_at_the_charge_point(cp_socket):
    ws, client, theirs = cp_socket
    ws.send_text('[3,"1",{"currentTime":"2026-12-05T00:00:00Z"}]')
    ws.send_text("é" * 300)
    client.receive_data(theirs.recv(65536))
    messages = [event.data for event in client.events() if isinstance(event, Message)]
    assert messages == ['[3,"1",{"currentTime":"2026-12-05T00:00:00Z"}]', "é" * 300]
