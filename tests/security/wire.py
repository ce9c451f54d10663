"""A raw WebSocket client for hostile-input tests: it sends exactly the bytes a test asks for (bad UTF-8, RSV1
frames, deflate bombs, garbage) over plain TCP or TLS, and reads back HTTP answers, frames and close codes."""

from __future__ import annotations

import base64
import os
import socket
import ssl
import struct
import time
import zlib
from dataclasses import dataclass

OCPP16 = "ocpp1.6"
TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


@dataclass(frozen=True)
class HttpAnswer:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def request_bytes(target: str, headers: dict[str, str | None] | None = None) -> bytes:
    """A valid WebSocket upgrade for `target`; `headers` adds or replaces headers, a None value drops one."""
    fields: dict[str, str | None] = {
        "Host": "localhost",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Protocol": OCPP16,
    }
    fields.update(headers or {})
    lines = [f"GET {target} HTTP/1.1"] + [f"{name}: {value}" for name, value in fields.items() if value is not None]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def basic(username: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()


class RawClient:
    """One connection. Use as a context manager; every read has a deadline."""

    def __init__(self, address: tuple[str, int], *, tls: ssl.SSLContext | None = None, timeout: float = 5.0):
        self.timeout = timeout
        raw = socket.create_connection(address, timeout=timeout)
        try:
            self.sock = tls.wrap_socket(raw, server_hostname="localhost") if tls is not None else raw
        except BaseException:
            raw.close()
            raise
        self.buffer = b""

    def __enter__(self) -> "RawClient":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    # -- HTTP -------------------------------------------------------------------------------------

    def upgrade(self, target: str, headers: dict[str, str | None] | None = None) -> HttpAnswer:
        self.sock.sendall(request_bytes(target, headers))
        return self.read_answer()

    def read_answer(self) -> HttpAnswer:
        while b"\r\n\r\n" not in self.buffer:
            if not self._fill():
                raise ConnectionError(f"closed before a complete HTTP answer: {self.buffer!r}")
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        status_line, *lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length and self._fill():
            pass
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return HttpAnswer(int(status_line.split(" ")[1]), headers, body)

    # -- frames -----------------------------------------------------------------------------------

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False) -> None:
        self.sock.sendall(frame_bytes(opcode, payload, fin=fin, rsv1=rsv1))

    def send_text(self, text: str) -> None:
        self.send_frame(TEXT, text.encode())

    def recv_frame(self, timeout: float | None = None) -> tuple[int, bytes]:
        """(opcode, payload) of the next frame from the gateway (never masked, never fragmented by it)."""
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            parsed = _parse_frame(self.buffer)
            if parsed is not None:
                opcode, payload, used = parsed
                self.buffer = self.buffer[used:]
                return opcode, payload
            if not self._fill(deadline):
                raise ConnectionError("closed without a frame")

    def recv_text(self, timeout: float | None = None) -> str:
        opcode, payload = self.recv_frame(timeout)
        assert opcode == TEXT, f"expected a text frame, got opcode {opcode}: {payload!r}"
        return payload.decode()

    def wait_close(self, timeout: float | None = None) -> tuple[int | None, str, list[bytes]]:
        """The gateway's close code and reason, and the text frames that came before it."""
        frames = []
        while True:
            try:
                opcode, payload = self.recv_frame(timeout)
            except ConnectionError:
                return None, "", frames
            if opcode == CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                return code, payload[2:].decode(errors="replace"), frames
            if opcode == TEXT:
                frames.append(payload)

    def _fill(self, deadline: float | None = None) -> bool:
        remaining = (deadline - time.monotonic()) if deadline is not None else self.timeout
        if remaining <= 0:
            raise TimeoutError("no data from the gateway in time")
        self.sock.settimeout(remaining)
        try:
            chunk = self.sock.recv(65536)
        except (ConnectionResetError, ssl.SSLError):
            return False
        self.buffer += chunk
        return bool(chunk)


class SplitTlsSocket:
    """A TLS client over memory BIOs, so a test decides how the encrypted bytes are cut into TCP writes.

    Has what :class:`RawClient` uses of a socket; :meth:`seal` encrypts without sending.
    """

    def __init__(self, address: tuple[str, int], context: ssl.SSLContext, timeout: float = 5.0):
        self.raw = socket.create_connection(address, timeout=timeout)
        self._incoming, self._outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_hostname="localhost")
        while True:
            try:
                self._tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                self.raw.sendall(self._outgoing.read())
                self._take_in()
        self.raw.sendall(self._outgoing.read())

    def seal(self, data: bytes) -> bytes:
        """`data` as TLS records, ready for the wire."""
        self._tls.write(data)
        return self._outgoing.read()

    def sendall(self, data: bytes) -> None:
        self.raw.sendall(self.seal(data))

    def recv(self, n: int) -> bytes:
        while True:
            try:
                return self._tls.read(n)
            except ssl.SSLWantReadError:
                if not self._take_in():
                    return b""
            except ssl.SSLZeroReturnError:
                return b""

    def _take_in(self) -> bool:
        data = self.raw.recv(65536)
        self._incoming.write(data)
        return bool(data)

    def settimeout(self, timeout: float) -> None:
        self.raw.settimeout(timeout)

    def close(self) -> None:
        self.raw.close()


def split_tls_client(address: tuple[str, int], context: ssl.SSLContext, timeout: float = 5.0) -> RawClient:
    """A :class:`RawClient` whose socket is a :class:`SplitTlsSocket` (``client.sock``)."""
    client = RawClient.__new__(RawClient)
    client.timeout = timeout
    client.sock = SplitTlsSocket(address, context, timeout)
    client.buffer = b""
    return client


def frame_bytes(opcode: int, payload: bytes, *, fin: bool = True, rsv1: bool = False, mask: bool = True) -> bytes:
    first = (0x80 if fin else 0) | (0x40 if rsv1 else 0) | opcode
    length = len(payload)
    mask_bit = 0x80 if mask else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _xor(payload, key)


def deflated(data: bytes) -> bytes:
    """`data` as one permessage-deflate message payload (RFC 7692: raw deflate, sync flush tail removed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert body.endswith(b"\x00\x00\xff\xff")
    return body[:-4]


def _xor(payload: bytes, key: bytes) -> bytes:
    repeated = (key * (len(payload) // 4 + 1))[:len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(len(payload), "big")


def _parse_frame(buf: bytes) -> tuple[int, bytes, int] | None:
    if len(buf) < 2:
        return None
    opcode = buf[0] & 0x0F
    length = buf[1] & 0x7F
    offset = 2
    if length == 126:
        if len(buf) < 4:
            return None
        length = struct.unpack("!H", buf[2:4])[0]
        offset = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length = struct.unpack("!Q", buf[2:10])[0]
        offset = 10
    if len(buf) < offset + length:
        return None
    return opcode, buf[offset:offset + length], offset + length
