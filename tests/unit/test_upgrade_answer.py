"""The 101 answer the gateway sends itself: byte for byte wsproto's, deflate agreed as wsproto agrees it,
and frames that came in the same read as the request handled."""

from __future__ import annotations

import socket

import pytest
from wsproto import ConnectionType, WSConnection
from wsproto.events import AcceptConnection, Message, Request
from wsproto.extensions import PerMessageDeflate

from ocpp_gw.chargers.websocket import CpWebSocket, LockedSocket
from ocpp_gw.protocol import handshake

KEY = "dGhlIHNhbXBsZSBub25jZQ=="


def test_the_accept_token_is_rfc_6455s_example():
    assert handshake.accept_token(KEY) == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="  # RFC 6455 §1.3


def _request(offers: str | None, subprotocols: str | None = "ocpp1.6, ocpp2.0.1") -> bytes:
    lines = ["GET /ocpp/CP1 HTTP/1.1", "Host: gw", "Upgrade: websocket", "Connection: Upgrade",
             f"Sec-WebSocket-Key: {KEY}", "Sec-WebSocket-Version: 13"]
    if subprotocols is not None:
        lines.append(f"Sec-WebSocket-Protocol: {subprotocols}")
    if offers is not None:
        lines.append(f"Sec-WebSocket-Extensions: {offers}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")


def _wsproto_answer(raw: bytes, subprotocol: str | None) -> bytes:
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(raw)
    assert any(isinstance(event, Request) for event in server.events())
    return server.send(AcceptConnection(subprotocol=subprotocol, extensions=[PerMessageDeflate()]))


def _our_answer(raw: bytes, subprotocol: str | None, early: bytes = b"") -> tuple[bytes, CpWebSocket, socket.socket]:
    ours, theirs = socket.socketpair()
    request = handshake.parse_request(raw, path_prefix="/ocpp")
    ws = CpWebSocket(LockedSocket(ours, lambda: None, send_timeout=1.0), handshake.Upgrade.of(request, early),
                     subprotocol, max_message_size=0)
    theirs.settimeout(2)
    return theirs.recv(65536), ws, theirs


OFFERS = {
    "no extension offered": None,
    "deflate, no parameters": "permessage-deflate",
    "deflate with the client's window bits": "permessage-deflate; client_max_window_bits",
    "deflate, no context takeover both ways": "permessage-deflate; server_no_context_takeover; "
                                              "client_no_context_takeover",
    "deflate with a smaller server window": "permessage-deflate; server_max_window_bits=10",
    "two deflate offers": "permessage-deflate; server_max_window_bits=9, permessage-deflate",
    "an extension we do not know": "x-webkit-deflate-frame",
}


@pytest.mark.parametrize("what", OFFERS)
@pytest.mark.parametrize("subprotocol", ["ocpp1.6", None])
def test_the_101_answer_is_byte_for_byte_what_wsproto_would_send(what, subprotocol):
    raw = _request(OFFERS[what])
    answer, _ws, theirs = _our_answer(raw, subprotocol)
    theirs.close()
    assert answer == _wsproto_answer(raw, subprotocol)


def test_a_deflate_offer_whose_parameters_do_not_parse_is_declined():
    answer, ws, theirs = _our_answer(_request("permessage-deflate; server_max_window_bits=lots"), "ocpp1.6")
    theirs.close()
    assert b"Sec-WebSocket-Extensions" not in answer and ws.connected


def test_frames_sent_right_behind_the_request_are_received():
    client = WSConnection(ConnectionType.CLIENT)
    raw = client.send(Request(host="gw", target="/ocpp/CP1", subprotocols=["ocpp1.6"]))
    # A client may send its first frames before it reads the answer (built by hand: wsproto's client
    # will not send before the answer).
    early = _masked_text('[2,"1","BootNotification",{}]') + _masked_text('[2,"2","Heartbeat",{}]')
    answer, ws, theirs = _our_answer(raw, "ocpp1.6", early)
    client.receive_data(answer)
    assert any(isinstance(event, AcceptConnection) for event in client.events())
    assert ws.take_messages() == ['[2,"1","BootNotification",{}]', '[2,"2","Heartbeat",{}]']
    ws.send_text('[3,"1",{}]')
    client.receive_data(theirs.recv(4096))
    assert [event.data for event in client.events() if isinstance(event, Message)] == ['[3,"1",{}]']
    theirs.close()


def _masked_text(text: str, key: bytes = b"\x01\x02\x03\x04") -> bytes:
    payload = text.encode()
    masked = bytes(byte ^ key[i % 4] for i, byte in enumerate(payload))
    return bytes((0x81, 0x80 | len(payload))) + key + masked


def test_garbage_right_behind_the_request_ends_the_connection_without_an_error():
    ours, theirs = socket.socketpair()
    request = handshake.parse_request(_request(None), path_prefix="/ocpp")
    ws = CpWebSocket(LockedSocket(ours, lambda: None, send_timeout=1.0),
                     handshake.Upgrade.of(request, b"\x03\xe8 no frame at all"), "ocpp1.6", max_message_size=0)
    theirs.settimeout(2)
    assert theirs.recv(65536).startswith(b"HTTP/1.1 101 ")
    assert ws.ended and not ws.connected and ws.close_reason == 1002
    theirs.close()
