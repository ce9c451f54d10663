"""paho's MQTT client, with fewer GIL hand-offs in its network thread.

Every downstream message passes through paho's one network thread. Each system call there that
releases the GIL hands it to one of the thousand connection threads waiting for it, and the paho
thread then waits its turn to get it back (issue 7, ``docs/performance.md``). :class:`BufferedClient`
changes only how bytes are moved, never which:

- paho reads each packet with at least three ``recv`` calls (the type byte, each byte of the
  length, the body); here one read of up to 64 KiB serves them from a buffer;
- on a plain TCP connection, reads, writes and the wake-up byte paho sends itself for every queued
  packet go through :mod:`ocpp_gw.gil_io`, keeping the GIL (they cannot block: the sockets are
  non-blocking). TLS connections keep paho's own calls.

It relies on paho internals: ``_sock``, ``_sock_recv``, ``_sock_send`` and ``_sockpairW``.
``tests/unit/test_mqtt_client.py`` checks that paho still uses them, so an upgrade that renames
them fails a test instead of silently turning this off.
"""

from __future__ import annotations

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from . import gil_io

READ_SIZE = 65536


class _Waker:
    """paho's wake-up socket (the write end of its socketpair), written keeping the GIL."""

    def __init__(self, sock):
        self._sock = sock
        self._fd = sock.fileno()

    def send(self, data: bytes) -> int:
        sent = gil_io.send_nowait(self._fd, data)
        if sent is None:
            raise BlockingIOError  # already full of wake-ups: paho ignores this
        return sent

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._fd


class BufferedClient(mqtt.Client):
    """A paho Client whose socket reads are buffered and whose plain-socket calls keep the GIL."""

    def __init__(self, *args, **kwargs):
        self._waker = None
        super().__init__(*args, **kwargs)
        self._rx_sock = None  # the socket the buffered bytes came from
        self._rx = b""
        self._rx_pos = 0
        self._rx_buffer = gil_io.receive_buffer(READ_SIZE)

    # paho assigns its socketpair's write end here (loop_start) and sends one byte on it per
    # queued packet, from whichever thread queues it.
    @property
    def _sockpairW(self):
        return self._waker

    @_sockpairW.setter
    def _sockpairW(self, sock) -> None:
        self._waker = _Waker(sock) if gil_io.is_plain_socket(sock) else sock

    def buffered_bytes(self) -> int:
        if self._rx_sock is not self._sock:
            return 0
        return len(self._rx) - self._rx_pos

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rx_sock is not self._sock or self._rx_pos >= len(self._rx):
            # Nothing buffered for this socket (or a new connection): one large read.
            data = self._read_socket()
            self._rx_sock, self._rx, self._rx_pos = self._sock, data, 0
            if not data:
                return data  # end of stream: paho handles it
        start = self._rx_pos
        self._rx_pos = min(start + bufsize, len(self._rx))
        return self._rx[start:self._rx_pos]

    def _read_socket(self) -> bytes:
        sock = self._sock
        if not gil_io.is_plain_socket(sock):
            return super()._sock_recv(READ_SIZE)
        data = gil_io.recv_nowait(sock.fileno(), self._rx_buffer)
        if data is None:
            raise BlockingIOError
        return data

    def _sock_send(self, buf) -> int:
        sock = self._sock
        if not gil_io.is_plain_socket(sock):
            return super()._sock_send(buf)
        sent = gil_io.send_nowait(sock.fileno(), buf)
        if sent is None:
            self._call_socket_register_write()
            raise BlockingIOError
        return sent

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        # paho returns after a few packets; select() cannot see what is already buffered here,
        # so keep reading until the buffer is used up.
        rc = super().loop_read(max_packets)
        while rc == MQTTErrorCode.MQTT_ERR_SUCCESS and self._sock is not None and self.buffered_bytes():
            rc = super().loop_read(max_packets)
        return rc
