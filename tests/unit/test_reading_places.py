"""The accept loop keeps at most READS_AT_ONCE connection threads runnable ahead of their set-up turn: it accepts
the next connection only when a place is free, and a thread gives its place back as soon as it would wait for
its client (nothing sent yet, or half a request) or reaches its turn. A real listener on a loopback port; the
requests go to a path the gateway does not serve, so each is answered 404 after its turn, with no broker."""

from __future__ import annotations

import dataclasses
import logging
import socket
import threading
import time

import pytest

from ocpp_gw.chargers.admission import ReadingPlaces
from ocpp_gw.chargers.listener import Listener
from ocpp_gw.config import Config
from ocpp_gw.runtime import build_runtime
from ocpp_gw.service import make_auth
from ocpp_gw.settings import loads

REQUEST = b"GET /elsewhere/CP1 HTTP/1.1\r\nHost: gateway\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
# Long enough that a client holding a place until its handshake deadline would fail the test's waits.
HANDSHAKE_TIMEOUT = 60


def make_listener(extra_settings: str = "", handshake_timeout: float = HANDSHAKE_TIMEOUT) -> tuple[Listener, object]:
    """A listener, not started, whose runtime has one reading place; (listener, runtime). Its accept loop holds
    the place while it waits in accept(), and hands it to the thread it starts."""
    settings = loads(f"auth.backend = none\nmqtt.server = 127.0.0.1:1\n"
                     f"ocpp.listener.handshake_timeout = {handshake_timeout}\n{extra_settings}")
    runtime = build_runtime(Config.from_settings(settings), make_auth(settings), None)
    runtime = dataclasses.replace(runtime, reading=ReadingPlaces(1))
    return Listener(runtime, ("127.0.0.1", 0), "ws"), runtime


@pytest.fixture
def one_place_listener():
    listener, runtime = make_listener()
    yield listener, runtime
    listener.stop()


@pytest.fixture
def one_place_proxy_listener():
    """The same behind a PROXY protocol v1 proxy (loopback is trusted by default)."""
    listener, runtime = make_listener("ocpp.listener.proxy_protocol = v1\n")
    yield listener, runtime
    listener.stop()


def connect(listener: Listener) -> socket.socket:
    client = socket.create_connection(listener.address)
    client.settimeout(5)
    return client


def answer_of(client: socket.socket) -> bytes:
    answer = b""
    while b"\r\n\r\n" not in answer:
        chunk = client.recv(4096)
        if not chunk:
            break
        answer += chunk
    return answer


def wait_until(condition, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not reached"
        time.sleep(0.01)


def connection_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name.startswith("ocpp-conn-")]


def test_no_connection_thread_starts_while_every_reading_place_is_held(one_place_listener):
    listener, runtime = one_place_listener
    held = runtime.reading.take(timeout=1)
    assert held is not None
    listener.start()
    with connect(listener) as client:
        client.sendall(REQUEST)
        client.settimeout(0.3)  # unpaced, the 404 comes within milliseconds
        with pytest.raises(TimeoutError):
            client.recv(4096)
        assert connection_threads() == []
        held.give_back()
        client.settimeout(5)
        assert answer_of(client).startswith(b"HTTP/1.1 404 ")


@pytest.mark.parametrize("sent_first", [b"", REQUEST[:20]], ids=["nothing", "half a request"])
def test_a_client_that_makes_its_thread_wait_gives_its_reading_place_back(one_place_listener, sent_first):
    listener, runtime = one_place_listener
    listener.start()
    with connect(listener) as slow:
        if sent_first:
            slow.sendall(sent_first)
        wait_until(lambda: runtime.pending.pending() == 1)  # accepted, its thread reading
        with connect(listener) as prompt:
            prompt.sendall(REQUEST)
            assert answer_of(prompt).startswith(b"HTTP/1.1 404 ")  # long before the slow one's deadline
        slow.sendall(REQUEST[len(sent_first):])
        assert answer_of(slow).startswith(b"HTTP/1.1 404 ")


def test_a_proxied_connection_whose_header_has_not_come_gives_its_reading_place_back(one_place_proxy_listener):
    listener, runtime = one_place_proxy_listener
    listener.start()
    header = b"PROXY TCP4 192.0.2.7 192.0.2.1 40000 443\r\n"
    with connect(listener) as silent:
        wait_until(lambda: runtime.pending.pending() == 1)
        with connect(listener) as prompt:
            prompt.sendall(header + REQUEST)
            assert answer_of(prompt).startswith(b"HTTP/1.1 404 ")
        silent.sendall(header + REQUEST)
        assert answer_of(silent).startswith(b"HTTP/1.1 404 ")


def test_a_connection_that_never_speaks_gets_no_thread_and_is_closed_at_its_deadline_warned_and_counted(
        caplog):
    listener, runtime = make_listener(handshake_timeout=0.3)
    listener.start()
    try:
        with caplog.at_level(logging.WARNING, logger="ocpp_gw.listener"):
            silent = [connect(listener) for _ in range(20)]
            wait_until(lambda: runtime.pending.pending() == 20)
            assert connection_threads() == []
            for client in silent:
                assert client.recv(4096) == b""  # closed by the gateway, unanswered
                client.close()
        wait_until(lambda: runtime.stats.get("refused.handshake_timeout") == 20)
        assert runtime.pending.pending() == 0
        assert sum("no handshake within 0.3s" in record.getMessage() for record in caplog.records) == 20
    finally:
        listener.stop()


def test_every_reading_place_is_back_once_the_connections_have_ended(one_place_listener):
    listener, runtime = one_place_listener
    listener.start()
    for _ in range(3):
        with connect(listener) as client:
            client.sendall(REQUEST)
            assert answer_of(client).startswith(b"HTTP/1.1 404 ")
    wait_until(lambda: runtime.pending.pending() == 0)
    listener.stop()  # its accept loop gives back the place it waited with
    place = runtime.reading.take(timeout=1)
    assert place is not None
    place.give_back()
