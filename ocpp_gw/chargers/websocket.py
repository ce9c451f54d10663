"""simple-websocket, fed with a handshake we already read and checked, and driven by our own thread.

simple-websocket's server expects a WSGI server to have read the HTTP request; we read and check it in
:mod:`ocpp_gw.chargers.listener`, so :class:`CpWebSocket` completes the upgrade from what that check
found (:class:`~ocpp_gw.protocol.handshake.Upgrade`) and hands wsproto an open connection. It does not
start simple-websocket's reader thread: the connection's one thread waits in ``poll()`` on the socket
and the pipe's doorbell together and calls :meth:`CpWebSocket.receive_available` when the socket is
readable. That keeps one thread per charge point and one wake-up per message (issue 7).

The socket is non-blocking underneath (:class:`LockedSocket`): a read returns what has arrived, so a
TLS record that arrives in pieces cannot stall the thread past a deadline, and a write waits in
``poll()`` until it is complete or ``send_timeout`` has passed.

A read that holds nothing but whole text frames, while wsproto is between messages with nothing
buffered and no extension in use, is decoded by :mod:`ocpp_gw.chargers.text_frames` without passing
through wsproto, and a text message goes out the same way while wsproto would send it as one plain
frame: the same messages and bytes for about a fifth of the work. Everything else (control frames,
fragments, compression, a frame split across reads, anything malformed) goes through wsproto.

permessage-deflate is accepted when a CP offers it, through :class:`BoundedPerMessageDeflate`:
wsproto's own extension inflates whatever a frame holds in one go, so a few kilobytes could become
gigabytes before simple-websocket's size check ever sees them.

This module is the only one that uses simple-websocket's and wsproto's private or undocumented
members; ``tests/unit/test_library_internals.py`` names each of them and fails on a version that
changed one.
"""

from __future__ import annotations

import math
import select
import socket
import ssl
import threading
import time
import zlib
from typing import Callable

import simple_websocket
from wsproto import ConnectionState, ConnectionType
from wsproto.connection import Connection
from wsproto.events import CloseConnection, TextMessage
from wsproto.extensions import PerMessageDeflate
from wsproto.frame_protocol import CloseReason, ParseFailed
from wsproto.handshake import server_extensions_handshake
from wsproto.utilities import LocalProtocolError

from ..netio import gil_io
from . import text_frames
from ..protocol.handshake import Upgrade, switching_protocols


_NOTHING_YET = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_LONGEST_POLL_MS = 2**31 - 1  # poll() takes a C int; a longer wait only wakes once to wait again


def poll_timeout_ms(seconds: float) -> int:
    """``poll()``'s timeout for a wait of `seconds` (rounded up: waking a fraction of a millisecond
    early would only poll again), never below 0 nor above what poll() accepts."""
    if seconds <= 0:
        return 0
    if seconds >= _LONGEST_POLL_MS / 1000.0:  # also infinity
        return _LONGEST_POLL_MS
    return math.ceil(seconds * 1000.0)


class LockedSocket:
    """A non-blocking socket with complete, serialized writes and time-stamped reads.

    A plain socket is read and written through :mod:`ocpp_gw.gil_io`, keeping the GIL.
    """

    def __init__(self, sock: socket.socket, on_receive: Callable[[], None], *, send_timeout: float):
        sock.setblocking(False)
        self._sock = sock
        self._on_receive = on_receive
        self._send_timeout = send_timeout
        self._tls = isinstance(sock, ssl.SSLSocket)
        self._fd = sock.fileno()
        self._plain = gil_io.is_plain_socket(sock)
        self.write_lock = threading.RLock()

    def send(self, data: bytes) -> int:
        """Write all of `data`, waiting while the CP's window is full; TimeoutError after send_timeout."""
        with self.write_lock:
            # Usually one send takes it all; only a partial send pays for the copy of what is left.
            rest = bytes(data)
            deadline = None
            while rest:
                try:
                    sent = gil_io.send_nowait(self._fd, rest) if self._plain else self._sock.send(rest)
                    if sent is None:
                        raise BlockingIOError
                except _NOTHING_YET as err:
                    if deadline is None:
                        deadline = time.monotonic() + self._send_timeout
                    self._wait_until(deadline, select.POLLIN if isinstance(err, ssl.SSLWantReadError)
                                     else select.POLLOUT)
                    continue
                rest = rest[sent:]
        return len(data)

    def _wait_until(self, deadline: float, events: int) -> None:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(f"send not complete after {self._send_timeout:g}s")
        poller = select.poll()
        poller.register(self._sock, events)
        poller.poll(poll_timeout_ms(remaining))

    def recv(self, n: int) -> bytes | None:
        """What has arrived, up to `n` bytes; b"" at the end of the stream, None if nothing has yet."""
        if self._plain:
            data = gil_io.recv_nowait_shared(self._fd, n)
            if data is None:
                return None
        else:
            try:
                data = self._sock.recv(n)
            except _NOTHING_YET:
                return None
        self._on_receive()
        return data

    def pending(self) -> bool:
        """Whether TLS holds decrypted bytes that poll() cannot see."""
        return self._tls and self._sock.pending() > 0

    def fileno(self) -> int:
        return self._sock.fileno()

    def shutdown(self, how: int = socket.SHUT_RDWR) -> None:
        try:
            self._sock.shutdown(how)
        except OSError:
            pass

    def close(self) -> None:
        self._sock.close()


class _OwnThread:
    """Stands in for simple-websocket's reader thread, which we do not start: the owner reads."""

    name = "not started"

    def __init__(self, target=None):
        pass

    def start(self) -> None:
        pass


class _NoEvent:
    """simple-websocket's wake-up event; nobody waits on it (the owner polls the socket)."""

    def set(self) -> None:
        pass


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


def _agreed_extensions(offers: tuple[str, ...], extension) -> str | None:
    """The Sec-WebSocket-Extensions answer to `offers` for our one `extension` (None: not agreed), as
    wsproto agrees it; an offer whose parameters do not parse is declined."""
    try:
        agreed = server_extensions_handshake(offers, [extension])
    except ValueError:  # e.g. a window size that is not a number
        return None
    return agreed.decode("ascii") if agreed else None


def _line_error(error: OSError) -> str:
    if isinstance(error, ConnectionResetError):
        return "connection reset"
    return error.strerror or type(error).__name__


class CpWebSocket(simple_websocket.Server):
    """The WebSocket of one charge point, after our own handshake checks."""

    def __init__(self, sock: LockedSocket, upgrade: Upgrade, subprotocol: str | None, *,
                 max_message_size: int):
        self._upgrade = upgrade
        self._chosen_subprotocol = subprotocol
        self.frame_too_big = False  # we closed with 1009: simple-websocket's size check or the deflate bound
        self.ended = False  # the stream is over: end of file, an error, or the CP's close frame
        self.line_end = ""  # how the line ended without a close frame: "TCP FIN", "connection reset", ...
        super().__init__(
            {"werkzeug.socket": sock},  # the key simple-websocket looks the socket up by
            max_message_size=max_message_size,
            # 64 KiB reads, shrunk after each recv, fragmented glibc's arenas: RSS crept
            # ~270 bytes per message in a 10-minute soak (docs/reliability.md).
            receive_bytes=4096,
            thread_class=_OwnThread,
            event_class=_NoEvent,
        )
        if upgrade.early_data:  # after simple-websocket's set-up, which raises if they end the connection
            self._take_early_data(upgrade.early_data)

    def handshake(self) -> None:
        """Complete the upgrade (the request passed :mod:`ocpp_gw.protocol.handshake`): answer 101 with the
        subprotocol and the deflate extension if offered, and start wsproto's connection in the open state.
        wsproto's own handshake would parse the request a second time, with h11 (a fifth of a connection's
        CPU in a storm), and drop whatever came right behind it."""
        self.subprotocol = self._chosen_subprotocol
        extension = (BoundedPerMessageDeflate(self.max_message_size, self._note_too_big)
                     if self.max_message_size else PerMessageDeflate())
        agreed = _agreed_extensions(self._upgrade.extension_offers, extension)
        self.ws.connection = Connection(ConnectionType.SERVER, [extension])
        self.sock.send(switching_protocols(self._upgrade.key, self.subprotocol, agreed))
        self.connected = True

    def _take_early_data(self, data: bytes) -> None:
        """Bytes the CP sent right behind its request, before our answer (RFC 6455 §4.1 asks a client to wait;
        a frame sent anyway is not lost): handled as if just read, garbage closing the connection as it would."""
        try:
            if not self._receive(data):
                self.ended = True
        except (OSError, LocalProtocolError) as error:
            self._end_by(error)
        if self.ended:
            self.connected = False

    def receive_available(self, drain: bool = False) -> None:
        """Handle what the socket holds (the owner's poll said it is readable): complete messages go to
        ``input_buffer``; :attr:`ended` turns True when the stream is over. One read suffices when
        poll() will say so again if more is there; with `drain`, read until nothing is left (the
        line is gone and poll() will not tell again)."""
        sock = self.sock
        try:
            while not self.ended:
                data = sock.recv(self.receive_bytes)
                if data is None:
                    return
                if not data:
                    self.ended = True
                    self.line_end = self.line_end or "TCP FIN"
                    break
                if not self._receive(data):
                    self.ended = True
                elif not drain and not sock.pending():
                    return
        except (OSError, LocalProtocolError) as error:
            self._end_by(error)
        self.connected = False

    def _end_by(self, error: OSError | LocalProtocolError) -> None:
        """A socket error or a protocol error while reading ends the stream (the session reports how)."""
        self.ended = True
        if isinstance(error, OSError):
            self.line_end = self.line_end or _line_error(error)

    def _receive(self, data: bytes) -> bool:
        """Handle one read; False when the stream is over. Whole text frames skip wsproto while it is
        between messages with nothing buffered and no extension in use (``text_frames``)."""
        texts = text_frames.client_texts(data, self.max_message_size) if self._wsproto_idle() else None
        if texts is None:
            self.ws.receive_data(data)
            return self._handle_events()
        self.input_buffer.extend(texts)
        return True

    def _plain_frames(self):
        """wsproto's frame protocol while the connection is open with no extension in use (frames are then
        plain: what text_frames reads and writes), else None."""
        connection = self.ws.connection
        if connection is None or connection.state is not ConnectionState.OPEN or connection._proto.extensions:
            return None
        return connection._proto

    def _wsproto_idle(self) -> bool:
        """Whether frames are plain and wsproto holds no part of a frame or message and no event: then a
        frame it does not see leaves nothing of its state behind."""
        proto = self._plain_frames()
        if proto is None or self.ws.connection._events:
            return False
        decoder = proto._frame_decoder
        return (decoder.header is None and not len(decoder.buffer)
                and proto._message_decoder.opcode is None and self.incoming_message is None)

    def line_lost(self, cause: str) -> None:
        """The socket reported an error or a hang-up that recv() did not: the stream is over."""
        if not self.ended:
            self.ended = True
            self.connected = False
            self.line_end = self.line_end or cause

    @property
    def close_frame_seen(self) -> bool:
        """Whether a close frame went either way: the CP's (``close_reason`` is its code), or ours for a frame that
        broke the protocol (``close_reason`` is that code). False: the line ended with the WebSocket still open."""
        return self.ws.state != ConnectionState.OPEN

    def take_messages(self) -> list:
        """The complete messages received so far, oldest first."""
        messages, self.input_buffer = self.input_buffer, []
        return messages

    def _note_too_big(self) -> None:
        self.frame_too_big = True

    def _handle_events(self) -> bool:
        keep_going = super()._handle_events()
        if not keep_going and self.max_message_size \
                and self.incoming_message_len > self.max_message_size:
            self.frame_too_big = True
        return keep_going

    def send_text(self, text: str) -> None:
        """Send one text frame; wsproto's state and the socket write under one lock."""
        with self.sock.write_lock:
            if not self.connected:
                raise simple_websocket.ConnectionClosed(self.close_reason, self.close_message)
            if self._wsproto_sends_plainly():
                self.sock.send(text_frames.server_text(text))  # the frame wsproto would build, with less work
            else:
                self.sock.send(self.ws.send(TextMessage(data=text)))

    def _wsproto_sends_plainly(self) -> bool:
        """Whether wsproto would send a text message as one plain frame: frames are plain and no message
        of its own is half sent."""
        proto = self._plain_frames()
        return proto is not None and proto._outbound_opcode is None

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


CLOSE_PROTOCOL_ERROR = 1002
_UNSERVED_MAX_MESSAGE = 4096   # nothing is read from such a connection but its close frame


def refuse_after_upgrade(sock: socket.socket, upgrade: Upgrade, reason: str, *,
                         close_timeout: float) -> None:
    """Complete the upgrade without Sec-WebSocket-Protocol, close with 1002 and `reason`, wait up
    to `close_timeout` for the CP's close frame, then drop the connection (OCPP-J 2.x §3)."""
    locked = LockedSocket(sock, lambda: None, send_timeout=max(1.0, close_timeout))
    try:
        ws = CpWebSocket(locked, upgrade, None, max_message_size=_UNSERVED_MAX_MESSAGE)
        ws.close_with(CLOSE_PROTOCOL_ERROR, reason)
        deadline = time.monotonic() + close_timeout
        poller = select.poll()
        poller.register(locked.fileno(), select.POLLIN)
        while not ws.ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(poll_timeout_ms(remaining)):
                break
            ws.receive_available()
    except (OSError, LocalProtocolError):
        pass   # the CP went first: nothing left to tell it
    finally:
        locked.shutdown()
        locked.close()
