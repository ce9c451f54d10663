"""paho's MQTT client, with fewer GIL hand-offs in its network thread.

Every downstream message passes through paho's one network thread. Each system call there that
releases the GIL hands it to one of the thousand connection threads waiting for it, and the paho
thread then waits its turn to get it back (issue 7, ``docs/performance.md``). :class:`BufferedClient`
changes only how bytes are moved, never which:

- paho reads each packet with at least three ``recv`` calls (the type byte, each byte of the
  length, the body); here one read of up to 64 KiB serves them from a buffer;
- on a plain TCP connection, reads, writes and the wake-up byte paho sends itself for every queued
  packet go through :mod:`ocpp_gw.netio.gil_io`, keeping the GIL (they cannot block: the sockets are
  non-blocking). TLS connections keep paho's own calls;
- on a plain TCP connection a PUBLISH or PUBACK is sent at once by the thread that queues it, when
  nothing is queued before it and no other thread is writing: a connection thread's upstream publish
  no longer wakes paho's thread, and paho's thread sends its PUBACK in the same pass instead of
  waking itself for it. Everything else (and whatever cannot be sent whole at once) goes the usual
  way, through paho's thread, in order;
- a PUBACK that is its message id alone (every PUBACK of MQTT 3.1.1; one of MQTT 5 that says
  "success" and nothing else) settles its message directly: paho builds a reason code and a properties
  object for each one, only to hand them to an ``on_publish`` callback the gateway does not set, which
  was the largest single cost of an upstream message on paho's thread;
- a SUBACK nobody reads (no ``on_subscribe``: the gateway sets none) is dropped undecoded, where paho
  would build a reason-code object for each filter; one comes for every charge point that connects;
- how many QoS 1 messages may be unacknowledged at once is the broker's to say: MQTT 3.1.1 has no
  such limit and paho's own (20 by default, 100 here before) held a storm's messages back behind
  their PUBACKs, and each PUBACK then walked paho's list of unacknowledged messages to find the next
  one to send; MQTT 5 brokers state theirs in CONNACK (Receive Maximum), which
  :meth:`BufferedClient.limit_in_flight` applies;
- a PUBLISH of QoS 0 or 1 (MQTT 5: with no properties) goes to :attr:`BufferedClient.on_received` as
  topic and payload, then gets its PUBACK: paho would build a message object (with a lock and a
  condition of its own), match its topic against per-filter callbacks the gateway never adds, and
  format a debug line for each one.

paho's network loop waits in ``select.select()``, which cannot watch a descriptor numbered 1024 or
more: with two descriptors per charge point, an MQTT reconnect while a few hundred CPs are connected
gets such a number, and paho then never connects again (reproduced: a socket on descriptor 1105 never
got its CONNACK). :func:`use_poll_in_paho` gives paho a ``select`` that waits with ``poll()``.

Several brokers (the nodes of a cluster, ``mqtt.server``): paho connects to one ``host``/``port``, which it
refuses to change while it is (re)connecting, so :meth:`BufferedClient.reconnect` points ``_host``/``_port``
at the next address before each attempt: the first attempt goes to the first address, every retry after a
failed attempt or a lost connection to the next one, round the list; after a lost connection without the
usual pause.

It relies on paho internals: ``_sock``, ``_sock_recv``, ``_sock_send``, ``_sockpairW``, ``_sockpairR``,
``_call_socket_register_write``, ``_thread``, ``_packet_queue``, ``_packet_write``, ``_out_packet``,
``_msgtime_mutex``, ``_last_msg_out``, ``MQTTMessageInfo._set_as_published``, ``_handle_pubackcomp``,
``_in_packet``, ``_out_message_mutex``, ``_out_messages``, ``_inflight_messages``, ``_max_inflight_messages``,
``_update_inflight``, ``_handle_publish``, ``_manual_ack``, ``_protocol``, ``_send_puback``, ``_host``,
``_port``, ``_reconnect_wait``, ``_reconnect_delay``, ``_reconnect_min_delay``, ``_handle_suback``, the message
states ``mqtt_ms_publish`` and ``mqtt_ms_queued``, its calling ``reconnect()``
for every (re)connection attempt and its use of ``select.select``; this is the only module that names them. ``tests/unit/test_library_internals.py`` checks
that paho still has every one, so an upgrade that renames them fails a test naming the member instead of
silently turning this off.
"""

from __future__ import annotations

import select
import threading
import types
from typing import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.enums import MQTTErrorCode

from ..netio import gil_io

READ_SIZE = 65536


def _descriptor(obj) -> int:
    return obj if isinstance(obj, int) else obj.fileno()


class _Pollers(threading.local):
    """Each thread's last poll object and what it watches: paho's loop asks for the same two or
    three descriptors pass after pass, so the object is made again only when they change."""

    wanted: dict[int, int] | None = None
    poller = None


_pollers = _Pollers()


def _poller_for(wanted: dict[int, int]):
    if _pollers.wanted != wanted:
        poller = select.poll()
        for fd, events in wanted.items():
            poller.register(fd, events)
        _pollers.wanted, _pollers.poller = wanted, poller
    return _pollers.poller


_TROUBLE = select.POLLERR | select.POLLHUP | select.POLLNVAL
_KINDS = ((0, select.POLLIN), (1, select.POLLOUT), (2, select.POLLPRI))


def poll_select(rlist, wlist, xlist, timeout=None):
    """``select.select`` for any descriptor number, waiting with ``poll()``; same arguments and answer
    (errors and hang-ups count as readable and writable, as select reports them)."""
    wanted: dict[int, int] = {}
    watched = []  # (object, its descriptor, which list, the event it waits for)
    for (kind, event), objects in zip(_KINDS, (rlist, wlist, xlist)):
        for obj in objects:
            fd = _descriptor(obj)
            if fd < 0:
                raise ValueError("file descriptor cannot be a negative integer")
            wanted[fd] = wanted.get(fd, 0) | event
            watched.append((obj, fd, kind, event | _TROUBLE))
    ready = _poller_for(wanted).poll(None if timeout is None else timeout * 1000.0)
    answer: tuple[list, list, list] = ([], [], [])
    if ready:  # a timeout, most passes of an idle loop, needs no matching
        events = dict(ready)
        for obj, fd, kind, accepted in watched:
            if events.get(fd, 0) & accepted:
                answer[kind].append(obj)
    return answer


def use_poll_in_paho() -> None:
    """Point paho's module-level ``select`` at one whose ``select()`` is :func:`poll_select`."""
    if getattr(mqtt.select, "select", None) is not poll_select:
        shim = types.ModuleType("select")
        shim.__dict__.update(select.__dict__)
        shim.select = poll_select
        mqtt.select = shim


use_poll_in_paho()


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


class _Drain:
    """paho's wake-up socket (the read end), emptied keeping the GIL."""

    def __init__(self, sock):
        self._sock = sock
        self._fd = sock.fileno()
        self._buffer = gil_io.receive_buffer(4096)

    def recv(self, _size: int) -> bytes:
        data = gil_io.recv_nowait(self._fd, self._buffer)
        if data is None:
            raise BlockingIOError
        return data

    def close(self) -> None:
        self._sock.close()

    def fileno(self) -> int:
        return self._fd


def _parse_publish(body: bytes, qos: int, mqtt5: bool) -> tuple[str, int, bytes] | None:
    """(topic, packet id or 0, payload) of a PUBLISH body (what follows the fixed header); None when
    it is not that simple: short, a topic that is not UTF-8, MQTT 5 properties."""
    end = 2 + (body[0] << 8 | body[1]) if len(body) >= 2 else len(body) + 1
    start = end + (2 if qos else 0) + (1 if mqtt5 else 0)
    if start > len(body) or (mqtt5 and body[start - 1] != 0):
        return None
    try:
        topic = body[2:end].decode("utf-8")
    except UnicodeDecodeError:
        return None
    return topic, (body[end] << 8 | body[end + 1]) if qos else 0, bytes(body[start:])


# Packets a thread may send at once when first in line (see the module docstring).
_SENT_AT_ONCE = (mqtt.PUBLISH, mqtt.PUBACK)


class BufferedClient(mqtt.Client):
    """A paho Client whose socket reads are buffered and whose plain-socket calls keep the GIL."""

    def __init__(self, *args, **kwargs):
        # When set, ``on_received(topic, payload)`` takes each plain QoS 0/1 PUBLISH instead of on_message.
        self.on_received: Callable[[str, bytes], None] | None = None
        self._waker = None
        self._drain = None
        # Held by whichever thread writes to the socket: paho's, or one sending its packet at once.
        self._write_lock = threading.RLock()
        super().__init__(*args, **kwargs)
        self._servers: tuple[tuple[str, int], ...] = ()
        self._next_server = 0
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

    @property
    def _sockpairR(self):
        return self._drain

    @_sockpairR.setter
    def _sockpairR(self, sock) -> None:
        self._drain = _Drain(sock) if gil_io.is_plain_socket(sock) else sock

    def _packet_write(self) -> MQTTErrorCode:
        with self._write_lock:
            return super()._packet_write()

    def _packet_queue(self, command: int, packet, mid: int, qos: int, info=None) -> MQTTErrorCode:
        if command & 0xF0 not in _SENT_AT_ONCE or self._thread is None or self.on_publish is not None \
                or not gil_io.is_plain_socket(self._sock):
            return super()._packet_queue(command, packet, mid, qos, info)
        entry = {"command": command, "mid": mid, "qos": qos, "pos": 0, "to_process": len(packet),
                 "packet": packet, "info": info}
        self._out_packet.append(entry)
        if not self._send_at_once(entry) and threading.current_thread() is not self._thread:
            # paho's thread may be asleep in select(): wake it to send what is queued.
            if self._sockpairW is not None:
                try:
                    self._sockpairW.send(mqtt.sockpair_data)
                except BlockingIOError:
                    pass
            self._call_socket_register_write()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _send_at_once(self, entry: dict) -> bool:
        """Send `entry` from this thread if it is first in line, nobody else is writing, and the socket
        takes it whole; False leaves it (or what is left of it) to paho's thread."""
        if not self._write_lock.acquire(blocking=False):
            return False
        try:
            if not self._out_packet or self._out_packet[0] is not entry:
                return False
            sent = gil_io.send_nowait(self._sock.fileno(), entry["packet"])
            if sent is None:
                return False
            entry["pos"] += sent
            entry["to_process"] -= sent
            if entry["to_process"]:
                return False
            self._out_packet.popleft()
            if entry["qos"] == 0 and entry["info"] is not None:
                entry["info"]._set_as_published()
            with self._msgtime_mutex:
                self._last_msg_out = mqtt.time_func()
            return True
        except (OSError, AttributeError):
            return False  # the connection is going: paho's thread finds out and reconnects
        finally:
            self._write_lock.release()

    def _handle_pubackcomp(self, cmd) -> MQTTErrorCode:
        packet = self._in_packet["packet"]
        if cmd != "PUBACK" or len(packet) != 2 or self.on_publish is not None:
            return super()._handle_pubackcomp(cmd)
        mid = packet[0] << 8 | packet[1]
        with self._out_message_mutex:
            message = self._out_messages.pop(mid, None)
            if message is None:  # not ours (any more): paho ignores it too
                return MQTTErrorCode.MQTT_ERR_SUCCESS
            message.info._set_as_published()
            if message.qos > 0:
                self._inflight_messages -= 1
                if self._max_inflight_messages > 0:
                    return self._update_inflight()
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def _handle_suback(self) -> None:
        if self.on_subscribe is None:
            return  # nobody reads it: paho would decode its reason codes into objects for no one
        super()._handle_suback()

    def _handle_publish(self) -> MQTTErrorCode:
        # See the module docstring; anything but a plain QoS 0 or 1 PUBLISH takes paho's path.
        received = self.on_received
        command = self._in_packet["command"]
        qos = (command & 0x06) >> 1
        if received is None or qos > 1 or self._manual_ack:
            return super()._handle_publish()
        parsed = _parse_publish(self._in_packet["packet"], qos, self._protocol == mqtt.MQTTv5)
        if parsed is None:
            return super()._handle_publish()
        topic, mid, payload = parsed
        received(topic, payload)
        return self._send_puback(mid) if qos else MQTTErrorCode.MQTT_ERR_SUCCESS

    def limit_in_flight(self, limit: int) -> None:
        """Send at most `limit` QoS 1 and 2 messages ahead of their acknowledgements (0: no limit); the rest
        wait here, in order. Called from ``on_connect``, before paho sends again what the last connection
        left unacknowledged: paho marked all of it to be sent at once."""
        with self._out_message_mutex:
            self._max_inflight_messages = limit
            if not limit:
                return
            allowed = limit
            for message in self._out_messages.values():
                if message.qos == 0 or message.state != mqtt.mqtt_ms_publish:
                    continue
                if allowed:
                    allowed -= 1
                else:
                    message.state = mqtt.mqtt_ms_queued

    def unacknowledged(self) -> int:
        """QoS 1 and 2 messages sent and not yet acknowledged by the broker."""
        with self._out_message_mutex:
            return self._inflight_messages

    def use_servers(self, servers) -> None:
        """The brokers to try in turn, ``(host, port)`` each; call before connect_async."""
        self._servers = tuple(servers)
        self._next_server = 0

    def reconnect(self) -> MQTTErrorCode:
        if self._servers:
            self._host, self._port = self._servers[self._next_server]
            self._next_server = (self._next_server + 1) % len(self._servers)
        return super().reconnect()

    def _reconnect_wait(self) -> None:
        # paho waits reconnect_min_delay before any retry. Right after a working connection was lost
        # (paho clears _reconnect_delay on each CONNACK) the next node is tried at once: every moment
        # away from the cluster is downstream traffic the gateway misses. Retries after failed attempts
        # back off as paho does, starting from the minimum.
        if len(self._servers) > 1 and self._reconnect_delay is None:
            self._reconnect_delay = self._reconnect_min_delay / 2
            return
        super()._reconnect_wait()

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

    def network_thread_alive(self) -> bool:
        """paho's network loop thread (``loop_start``) runs."""
        thread = getattr(self, "_thread", None)
        return thread is not None and thread.is_alive()
