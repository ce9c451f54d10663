"""simple-websocket, fed with a handshake we already read and checked ourselves.

simple-websocket's server expects a WSGI server to have read the HTTP request; we read it in
:mod:`ocpp_gw.listener`, so :class:`CpWebSocket` replays those exact bytes into wsproto. Its reader
thread moves frames into the pipe's ``ChargeStationRx`` and nothing else. simple-websocket does not
serialize writes, and its reader thread writes too (pongs, close replies): every write to the socket
goes through :class:`LockedSocket`, which also records when bytes last arrived (for keepalive).

permessage-deflate is accepted when a CP offers it, through :class:`BoundedPerMessageDeflate`:
wsproto's own extension inflates whatever a frame holds in one go, so a few kilobytes could become
gigabytes before simple-websocket's size check ever sees them.
"""

from __future__ import annotations

import functools
import socket
import threading
import zlib
from typing import Callable

import simple_websocket
from wsproto.events import AcceptConnection, CloseConnection, Request, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, ParseFailed

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


class BoundedPerMessageDeflate(PerMessageDeflate):
    """permessage-deflate that inflates at most `max_size` bytes per message.

    Each piece of compressed payload is inflated with a cap of what is left of the message's budget (plus one
    byte, to tell "exactly full" from "over"); going over ends the connection with 1009 at once, so memory stays
    near `max_size` however well the payload compresses.
    """

    SYNC_FLUSH_TAIL = b"\x00\x00\xff\xff"  # RFC 7692 §7.2.2: appended before the last inflate of a message

    def __init__(self, max_size: int, on_too_big: Callable[[], None]):
        super().__init__()
        self.max_size = max_size
        self._on_too_big = on_too_big
        self._inflated = 0  # bytes of the current message so far

    def frame_inbound_payload_data(self, proto, data: bytes) -> bytes | CloseReason:
        if not self._inbound_compressed or not self._inbound_is_compressible:
            return data
        return self._inflate(bytes(data))

    def frame_inbound_complete(self, proto, fin: bool) -> bytes | CloseReason | None:
        if not fin or not self._inbound_is_compressible or not self._inbound_compressed:
            return super().frame_inbound_complete(proto, fin)
        data = self._inflate(self.SYNC_FLUSH_TAIL)
        no_context_takeover = self.server_no_context_takeover if proto.client else self.client_no_context_takeover
        if no_context_takeover:
            self._decompressor = None
        self._inbound_compressed = None
        self._inflated = 0
        return data

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        room = self.max_size - self._inflated
        try:
            out = self._decompressor.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._inflated += len(out)
        if self._inflated > self.max_size or self._decompressor.unconsumed_tail:
            self._on_too_big()
            # Raised, not returned, for a close reason that says what happened (wsproto's is "error in extension").
            raise ParseFailed(f"message larger than {self.max_size} bytes once inflated", CloseReason.MESSAGE_TOO_BIG)
        return out


class CpWebSocket(simple_websocket.Server):
    """The WebSocket of one charge point, after our own handshake checks."""

    def __init__(self, sock: LockedSocket, raw_request: bytes, subprotocol: str | None, *,
                 max_message_size: int, on_event: Callable[[], None], thread_name: str):
        self._raw_request = raw_request
        self._chosen_subprotocol = subprotocol
        self.frame_too_big = False  # we closed with 1009: simple-websocket's size check or the deflate bound
        super().__init__(
            {"werkzeug.socket": sock},  # the key simple-websocket looks the socket up by
            max_message_size=max_message_size,
            # 64 KiB reads, shrunk after each recv, fragmented glibc's arenas: RSS crept
            # ~270 bytes per message in a 10-minute soak (docs/reliability.md).
            receive_bytes=4096,
            thread_class=functools.partial(threading.Thread, name=thread_name, daemon=True),
            event_class=functools.partial(_Doorbell, on_event),
        )

    def handshake(self) -> None:
        """Accept the replayed request ourselves, to choose the deflate extension; then handle any frames that
        came right behind the request, as simple-websocket would."""
        self.ws.receive_data(self._raw_request)
        for event in self.ws.events():
            if isinstance(event, Request):
                break
        else:
            self.connected = False
            return
        self.subprotocol = self._chosen_subprotocol
        extension = (BoundedPerMessageDeflate(self.max_message_size, self._note_too_big)
                     if self.max_message_size else PerMessageDeflate())
        self.sock.send(self.ws.send(AcceptConnection(subprotocol=self.subprotocol, extensions=[extension])))
        self.connected = self._handle_events()

    def _note_too_big(self) -> None:
        self.frame_too_big = True

    def _handle_events(self) -> bool:
        keep_going = super()._handle_events()
        if not keep_going and self.max_message_size \
                and self.incoming_message_len > self.max_message_size:
            self.frame_too_big = True
        return keep_going

    def _thread(self) -> None:
        try:
            super()._thread()
        finally:
            # When simple-websocket gives up on its own (frame too big, protocol error) it rings
            # the event before it marks the connection closed, so the owner, woken too early,
            # would never hear of the end: ring once more now that it is marked.
            self.connected = False
            self.event.set()

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
