"""A connection whose upgrade request is read waits for one of SETUPS_AT_ONCE set-up turns (SETUP_WAIT at
most); one that gets none in time is answered 503 busy, warned about and counted, and gives back nothing it
did not take. The connection runs on the test's thread against a real TCP socket; no broker is needed, since
it never gets as far as a session."""

from __future__ import annotations

import logging
import socket

import pytest

from ocpp_gw.chargers import listener
from ocpp_gw.chargers.admission import SETUPS_AT_ONCE
from ocpp_gw.config import Config
from ocpp_gw.runtime import build_runtime
from ocpp_gw.service import make_auth
from ocpp_gw.settings import loads

REQUEST = (b"GET /ocpp/CP-BUSY HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
           b"Sec-WebSocket-Protocol: ocpp1.6\r\n\r\n")


@pytest.fixture
def runtime():
    settings = loads("auth.backend = none\nmqtt.server = 127.0.0.1:1\n")
    return build_runtime(Config.from_settings(settings), make_auth(settings), None)


@pytest.fixture
def tcp_pair():
    """(the gateway's end, the charge point's end) of a loopback TCP connection."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
    yield accepted, client
    client.close()


def test_a_request_that_gets_no_setup_turn_in_time_is_answered_503_busy_warned_and_counted(
        runtime, tcp_pair, monkeypatch, caplog):
    for _ in range(SETUPS_AT_ONCE):  # every turn taken, as by connections still being set up
        assert runtime.setting_up.acquire(blocking=False)
    monkeypatch.setattr(listener, "SETUP_WAIT", 0.05)
    ours, charge_point = tcp_pair
    charge_point.sendall(REQUEST)
    with caplog.at_level(logging.WARNING, logger="ocpp_gw.listener"):
        listener.Connection(runtime, ours, "127.0.0.1:40000", None).handle()

    charge_point.settimeout(5)
    answer = charge_point.recv(4096)
    assert answer.startswith(b"HTTP/1.1 503 ")
    assert b"\r\nRetry-After: 10\r\n" in answer
    assert charge_point.recv(4096) == b""  # and the connection is closed
    assert runtime.stats.get("refused.http_503") == 1
    assert any(f"{SETUPS_AT_ONCE} connections were being set up" in record.getMessage()
               and record.levelno == logging.WARNING for record in caplog.records)
    # It released no turn it did not hold: all of them are still ours to give back, and no more.
    assert not runtime.setting_up.acquire(blocking=False)
    for _ in range(SETUPS_AT_ONCE):
        runtime.setting_up.release()
    with pytest.raises(ValueError):
        runtime.setting_up.release()
