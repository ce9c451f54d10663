"""A wss connection gives its reading place back before the TLS handshake, which waits for the client's
answers: a client that has not sent its ClientHello does not keep the next one from being accepted. A real
listener with one reading place and a certificate the test PKI made; no broker (the request is answered 404)."""

from __future__ import annotations

import dataclasses
import socket
import ssl
import types

import pytest

from ocpp_gw.chargers.admission import ReadingPlaces
from ocpp_gw.chargers.listener import Listener
from ocpp_gw.config import Config
from ocpp_gw.runtime import build_runtime
from ocpp_gw.service import make_auth
from ocpp_gw.settings import loads

REQUEST = b"GET /elsewhere/CP1 HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"


@pytest.fixture
def one_place_wss_listener(pki):
    settings = loads("auth.backend = none\nmqtt.server = 127.0.0.1:1\nocpp.listener.handshake_timeout = 60\n")
    runtime = build_runtime(Config.from_settings(settings), make_auth(settings), None)
    runtime = dataclasses.replace(runtime, reading=ReadingPlaces(1))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.server.cert, pki.server.key)
    listener = Listener(runtime, ("127.0.0.1", 0), "wss", types.SimpleNamespace(context=context))
    listener.start()
    yield listener, runtime
    listener.stop()


def test_a_client_that_has_not_started_tls_gives_its_reading_place_back(one_place_wss_listener, pki):
    listener, runtime = one_place_wss_listener
    with socket.create_connection(listener.address) as silent:
        with socket.create_connection(listener.address, timeout=5) as raw, \
                pki.client_context().wrap_socket(raw, server_hostname="localhost") as prompt:
            prompt.sendall(REQUEST)
            assert prompt.recv(4096).startswith(b"HTTP/1.1 404 ")  # long before the silent one's deadline
        assert runtime.pending.pending() >= 1  # the silent one is still in its handshake
        silent.close()
