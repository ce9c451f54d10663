"""simple-websocket, fed with a handshake we already read and checked ourselves.

simple-websocket's server expects a WSGI server to have read the HTTP request; we read it in
:mod:`ocpp_gw.listener`, so :class:`CpWebSocket` replays those exact bytes into wsproto. Its reader
thread moves frames into the pipe's ``ChargeStationRx`` and nothing else. simple-websocket does not
serialize writes, and its reader thread writes too (pongs, close replies): every write to the socket
goes through :class:`LockedSocket`, which also records when bytes last arrived (for keepalive).
"""

from __future__ import annotations

import functools
import socket
import threading
from typing import Callable

import simple_websocket
from wsproto.events import CloseConnection, TextMessage

CLOSE_TOO_BIG = 1009


class LockedSocket:
    """A socket whose writes are serialized and complete, and whose reads are time-stamped."""

    def __init__(self, sock: socket.socket, on_receive: Callable[[], None]):
        self._sock = sock
        self._on_receive = on_receive
        self.write_lock = threading.RLock()

    def send(self, data: bytes) -> int:
        with self.write_lock:
            self._sock.sendall(data)
        return len(data)

    def recv(self, n: int) -> bytes:
        data = self._sock.recv(n)
        self._on_receive()
        return data

    def fileno(self) -> int:
        return self._sock.fileno()

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        try:
            self._sock.shutdown(how)
        except OSError:
            pass

    def close(self) -> None:
        self._sock.close()


class _Doorbell(threading.Event):
    """simple-websocket's wake-up event, which also tells us a frame or a close arrived."""

    def __init__(self, on_set: Callable[[], None]):
        super().__init__()
        self._on_set = on_set

    def set(self) -> None:
        super().set()
        self._on_set()


class CpWebSocket(simple_websocket.Server):
    """The WebSocket of one charge point, after our own handshake checks."""

    def __init__(self, sock: LockedSocket, raw_request: bytes, subprotocol: str | None, *,
                 max_message_size: int, on_event: Callable[[], None], thread_name: str):
        self._raw_request = raw_request
        self._chosen_subprotocol = subprotocol
        super().__init__(
            {"werkzeug.socket": sock},  # the key simple-websocket looks the socket up by
            max_message_size=max_message_size,
            receive_bytes=65536,
            thread_class=functools.partial(threading.Thread, name=thread_name, daemon=True),
            event_class=functools.partial(_Doorbell, on_event),
        )

    def handshake(self) -> None:
        self.ws.receive_data(self._raw_request)
        self.connected = self._handle_events()

    def choose_subprotocol(self, request) -> str | None:
        return self._chosen_subprotocol

    def send_text(self, text: str) -> None:
        """Send one text frame; wsproto's state and the socket write under one lock."""
        with self.sock.write_lock:
            if not self.connected:
                raise simple_websocket.ConnectionClosed(self.close_reason, self.close_message)
            self.sock.send(self.ws.send(TextMessage(data=text)))

    def close_with(self, code: int, reason: str) -> None:
        """Send a close frame (if still open) without raising."""
        with self.sock.write_lock:
            if not self.connected:
                return
            self.connected = False
            try:
                self.sock.send(self.ws.send(CloseConnection(code, reason)))
            except Exception:  # noqa: BLE001 - the peer may be gone; closing anyway
                pass
