"""One charge point connection, from an accepted handshake to the last byte (socketserver style).

``setup`` opens the WebSocket and claims the cid (taking over an older connection), ``handle``
runs the pipe on this thread and forwards what it emits, ``finish`` answers or hands over the
CSMS calls still held, publishes the disconnect event and releases the socket, always.

One thread does all of it: it sleeps in ``poll()`` on the CP's socket and the pipe's doorbell (an
eventfd the paho thread rings for CSMS messages), wakes once per event, reads what arrived, steps
the pipe and sends what the pipe emitted, then sleeps until the next event or deadline.
"""

from __future__ import annotations

import logging
import select
import socket
import threading
import time
from dataclasses import dataclass
from queue import Full
from typing import Callable

from simple_websocket import ConnectionClosed
from wsproto.utilities import LocalProtocolError

from ..protocol import frames
from ..netio.doorbell import Doorbell
from ..protocol.frames import Message
from ..protocol.handshake import Upgrade
from ..protocol.history import FROM_CSMS, TO_CP, History
from ..protocol.close_codes import (CLOSE_ABNORMAL, CLOSE_GOING_AWAY, CLOSE_INTERNAL_ERROR, CLOSE_NORMAL,
                                    CLOSE_TOO_BIG)
from ..protocol.pipe import Adopted, Close, Disconnected, FromChannel, Pipe, drain
from ..protocol.versions import V16, OcppVersion
from .websocket import CpWebSocket, LockedSocket, poll_timeout_ms

log = logging.getLogger("ocpp_gw.session")



def _utf8_length_over(text: str, limit: int) -> bool:
    # A character takes at most 4 bytes: only long texts need encoding to tell.
    return bool(limit) and len(text) * 4 > limit and len(text.encode("utf-8", "surrogatepass")) > limit


@dataclass(frozen=True)
class SessionConfig:
    """How a connection treats its socket (built by ``ocpp_gw.config``)."""

    send_timeout: float = 30.0  # a write waits at most this long for the CP's window
    max_frame_size: int = 65536  # bytes of one message, after inflation
    close_timeout: float = 1.0  # for the CP's answer to our close frame


@dataclass(frozen=True)
class Peer:
    """What the handshake established about the connecting charge point."""

    cid: str
    address: str
    username: str | None
    subprotocol: str | None          # echoed in the handshake; None when the CP sent no header
    version: OcppVersion = V16       # what the connection speaks (SPEC §9)


class Session:
    """One charge point connection. Other threads use only the public surface below the three
    phases: ``deliver``, ``adopt``, ``close``, ``move_to``, ``describe``, ``history``, ``closed``."""

    def __init__(self, runtime, sock: socket.socket, upgrade: Upgrade, peer: Peer):
        self.runtime = runtime
        self.config: SessionConfig = runtime.config.session
        self.cid = peer.cid
        self.peer = peer
        self.connected_at = time.time()
        self._doorbell = Doorbell()
        self.version = peer.version   # negotiated at the handshake, fixed for the connection
        self._pipe = Pipe(peer.cid, runtime.config.pipe, stats=runtime.stats,
                          checker=runtime.checker_for(peer.version), doorbell=self._doorbell,
                          version=peer.version)
        self.finished = threading.Event()
        self._successor: Session | None = None  # the connection that took this cid over here
        self.moved_to: str | None = None  # another gateway instance that took this CP over
        self.ws: CpWebSocket | None = None
        self._sock = LockedSocket(sock, self._stamp_receive, send_timeout=self.config.send_timeout)
        self._upgrade = upgrade
        self._reader_done = False  # the CP's side of the stream is over, and the pipe has been told

    # -- the three phases --------------------------------------------------------------------

    def run(self, ready: Callable[[], None] | None = None) -> None:
        """The connection, to its end; ``ready()`` once it is set up (registered, subscribed, announced)."""
        threading.current_thread().name = f"ocpp-cp-{self.cid}"
        registered = False
        try:
            self.ws = CpWebSocket(
                self._sock, self._upgrade, self.peer.subprotocol,
                max_message_size=self.config.max_frame_size)
            self._take_frames()  # any that came right behind the handshake
            self._claim_cid()
            registered = True
            if ready is not None:
                ready()
            self._handle()
        except Exception:  # noqa: BLE001 - one CP's failure must not touch the others
            log.exception("[%s] session failed", self.cid, extra={"cid": self.cid})
            self.runtime.stats.incr("errors.session")
            if self._pipe.closed is None:
                self._pipe.closed = Close(CLOSE_INTERNAL_ERROR, "internal error")
        finally:
            self._finish(registered)

    def _claim_cid(self) -> None:
        previous = self.runtime.registry.register(self)
        if previous is not None:
            log.info("[%s] takes over the connection from %s", self.cid, previous.peer.address,
                     extra={"cid": self.cid})
            self.runtime.stats.incr("connections.taken_over")
            previous.hand_to(self)
            if not previous.finished.wait(self.config.close_timeout + 2.0):
                log.warning("[%s] previous connection did not finish in time", self.cid,
                            extra={"cid": self.cid})
        self.runtime.stats.incr("connections.opened")
        self.runtime.stats.incr(f"connections.opened.{self.version.subprotocol}")
        log.info("[%s] connected from %s as %s (%s%s)", self.cid, self.peer.address,
                 self.peer.username or "-", self.version.subprotocol,
                 "" if self.peer.subprotocol else ", no subprotocol header",
                 extra={"cid": self.cid})
        self.runtime.bridge.upstream.event(self.peer, "connected", "")

    def _handle(self) -> None:
        pipe = self._pipe
        clock = pipe.clock
        sock_fd = self._sock.fileno()
        poller = select.poll()
        poller.register(self._doorbell, select.POLLIN)
        if not self._reader_done:
            poller.register(sock_fd, select.POLLIN)
        while True:
            deadline = pipe.step()
            self._flush()
            if pipe.closed is not None:
                return
            timeout = None if deadline is None else poll_timeout_ms(deadline - clock())
            for fd, events in poller.poll(timeout):
                if fd == sock_fd:
                    self._receive(events)
                    if self._reader_done:
                        poller.unregister(sock_fd)

    def _receive(self, events: int) -> None:
        ws = self.ws
        line_gone = bool(events & (select.POLLERR | select.POLLHUP | select.POLLNVAL))
        ws.receive_available(drain=line_gone)  # what arrived before the end still counts
        if line_gone:
            ws.line_lost("connection reset" if events & select.POLLERR else "hang-up")
        self._take_frames()

    def _finish(self, registered: bool) -> None:
        pipe = self._pipe
        reason = pipe.closed.reason if pipe.closed is not None else "ended"
        code = pipe.closed.code if pipe.closed is not None else CLOSE_GOING_AWAY
        try:
            if registered:
                # Leave the registry first: from then on new CSMS messages are held (or handed
                # on), and what was already routed to this pipe is settled under the route lock.
                self.runtime.registry.unregister(self)
                with self.runtime.bridge.router.routing_stopped():
                    self._settle_unfinished_calls(reason)
                self._flush_upstream()
                self.runtime.stats.incr("connections.closed")
                self.runtime.stats.incr(f"connections.closed.code_{code}")
                # Per version, once per connection rather than once per message (for /metrics).
                self.runtime.stats.incr(f"messages.in.{self.version.subprotocol}", pipe.messages_in)
                self.runtime.stats.incr(f"messages.out.{self.version.subprotocol}", pipe.messages_out)
                shown = reason if f"code {code}" in reason else f"{reason} (code {code})"
                log.info("[%s] disconnected: %s", self.cid, shown, extra={"cid": self.cid})
                # Not retained after a move: the retained event must stay the new instance's.
                self.runtime.bridge.upstream.event(self.peer, "disconnected", reason, code=code,
                                                   retain=self.moved_to is None)
        finally:
            self._close_socket(pipe.closed)
            self.finished.set()

    def _settle_unfinished_calls(self, reason: str) -> None:
        if self.moved_to is not None:
            calls = self._pipe.unfinished_calls()
            for call in calls:
                self.runtime.bridge.handover.hand_over(self.cid, call, self._pipe.channel_of(call.unique_id))
            if calls:
                log.info("[%s] %d CSMS call(s) handed to %s", self.cid, len(calls), self.moved_to,
                         extra={"cid": self.cid})
            return
        successor = self._successor
        if successor is not None:
            calls = self._pipe.unfinished_calls()
            if calls:
                successor.adopt(calls, tuple((call.unique_id, channel) for call in calls
                                             if (channel := self._pipe.channel_of(call.unique_id)) is not None))
                log.info("[%s] %d CSMS call(s) handed to the new connection", self.cid, len(calls),
                         extra={"cid": self.cid})
            return
        self._pipe.answer_unfinished("disconnected", f"{self.cid} disconnected: {reason}")

    # -- moving messages ---------------------------------------------------------------------

    def _flush(self) -> None:
        pipe = self._pipe
        while True:
            for item in drain(pipe.ChargeStationTx):
                if isinstance(item, Close):
                    self.ws.close_with(item.code, item.reason)
                elif self.ws.connected:
                    self._send(item)
                else:
                    log.warning("[%s] %s not delivered: the connection is closed", self.cid,
                                item.unique_id, extra={"cid": self.cid, "unique_id": item.unique_id})
                    self.runtime.stats.incr("dropped.cp_gone")
            self._flush_upstream()
            if pipe.ChargeStationTx.empty():  # a refused upstream call is answered to the CP
                return

    def _send(self, message: frames.Message) -> None:
        text = frames.serialize(message, self.version)
        self._pipe.history.record(TO_CP, message, None, len(text))
        try:
            self.ws.send_text(text)
        except (ConnectionClosed, OSError, LocalProtocolError) as err:
            log.warning("[%s] send of %s failed: %s", self.cid, message.unique_id, err,
                        extra={"cid": self.cid, "unique_id": message.unique_id})
            self.runtime.stats.incr("dropped.cp_send_failed")
            self._pipe.ChargeStationRx.put(Disconnected(None, "send failed"))

    def _flush_upstream(self) -> None:
        publish = self.runtime.bridge.upstream.publish
        history = self._pipe.history
        for item in drain(self._pipe.CSMSTx):
            if not publish(self.cid, item, history, self.version):
                self._pipe.upstream_refused(item)

    def _take_frames(self) -> None:
        """Move the messages the WebSocket has received onto ChargeStationRx, then the end of the stream."""
        ws = self.ws
        if self._reader_done:
            return
        rx = self._pipe.ChargeStationRx
        limit = ws.max_message_size
        for data in ws.take_messages():
            if isinstance(data, str) and _utf8_length_over(data, limit):
                # simple-websocket counts characters; the limit is in bytes.
                self._reader_done = True
                rx.put_quietly(Close(CLOSE_TOO_BIG, self._too_big_reason()))
                return
            rx.put_quietly(data)
        if ws.ended:
            self._reader_done = True
            if ws.frame_too_big:
                rx.put_quietly(Disconnected(CLOSE_TOO_BIG, self._too_big_reason()))
            elif ws.close_frame_seen:
                rx.put_quietly(Disconnected(ws.close_reason, "closed by charge point"
                                            f" (code {int(ws.close_reason)})"))
            else:
                rx.put_quietly(Disconnected(CLOSE_ABNORMAL, "connection lost without a close frame"
                                            f" ({ws.line_end or 'end of stream'}, code {CLOSE_ABNORMAL})"))

    def _too_big_reason(self) -> str:
        return f"frame larger than {self.ws.max_message_size} bytes"

    def _stamp_receive(self) -> None:
        self._pipe.last_rx = self._pipe.clock()

    def _close_socket(self, closed: Close | None) -> None:
        ws = self.ws
        try:
            if ws is not None:
                ws.close_with(closed.code if closed else CLOSE_GOING_AWAY,
                              closed.reason if closed else "going away")
                self._await_close_reply(self.config.close_timeout)
            self._sock.shutdown()
            self._sock.close()
        finally:
            self._doorbell.close()

    def _await_close_reply(self, timeout: float) -> None:
        """Give the CP a moment to answer the close handshake, then the caller cuts the line."""
        ws = self.ws
        deadline = time.monotonic() + timeout
        poller = select.poll()
        poller.register(self._sock.fileno(), select.POLLIN)
        while not ws.ended:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not poller.poll(poll_timeout_ms(remaining)):
                return
            ws.receive_available()

    # -- the public surface (any thread) -----------------------------------------------------

    def deliver(self, message: Message, action: str | None, size: int, channel: str | None = None) -> bool:
        """A CSMS message for this CP (paho's thread: never blocks); False when its queue is full.
        ``channel``: the command channel it came on (an allowed Call), None for the primary topic."""
        self._pipe.history.record(FROM_CSMS, message, action, size)
        item = FromChannel(message, channel) if channel is not None else (message, action)
        try:
            self._pipe.CSMSRx.put_nowait(item)
        except Full:
            return False
        return True

    def adopt(self, calls: list, channels: tuple[tuple[str, str], ...] = ()) -> None:
        """CSMS calls the previous connection of this cid had not finished: they go first, each
        still answered to the channel it came on (``channels``: (UniqueId, channel) pairs)."""
        self._pipe.CSMSRx.put(Adopted(tuple(calls), channels))

    def close(self, code: int, reason: str) -> None:
        """Ask the connection to close (kick, shutdown); its own thread does it."""
        self._pipe.request_close(code, reason)

    def hand_to(self, successor: Session) -> None:
        """A new connection of this cid took over here: close, handing it the unfinished CSMS calls."""
        self._successor = successor
        self.close(CLOSE_NORMAL, "taken over")

    def move_to(self, gateway: str) -> None:
        """Another gateway instance now holds this CP: close; the unfinished calls go there."""
        self.moved_to = gateway
        self.close(CLOSE_NORMAL, f"taken over by {gateway}")

    @property
    def history(self) -> History:
        """The last messages of this connection (admin API, gateway errors)."""
        return self._pipe.history

    @property
    def closed(self) -> Close | None:
        """Why the connection closed (code and reason), once it has."""
        return self._pipe.closed

    @property
    def queue_depth(self) -> int:
        return self._pipe.queue_depth

    def describe(self) -> dict:
        pipe = self._pipe
        return {
            "cid": self.cid,
            "peer": self.peer.address,
            "username": self.peer.username,
            "subprotocol": self.peer.subprotocol,
            "version": self.version.subprotocol,
            "connected_at": self.connected_at,
            "state": pipe.state,
            "queue_depth": pipe.queue_depth,
            "heartbeat_interval": pipe.heartbeat_interval,
            "last_action": pipe.last_action,
            "messages_in": pipe.messages_in,
            "messages_out": pipe.messages_out,
            "last_message_at": pipe.last_message_wall,
        }
